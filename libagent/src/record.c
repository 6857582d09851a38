/* placeholder: record */
