/* placeholder: broker */
