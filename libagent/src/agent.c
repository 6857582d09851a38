/* placeholder: agent */
