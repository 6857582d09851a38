/* placeholder: table */
