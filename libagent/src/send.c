/* placeholder: send */
