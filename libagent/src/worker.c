/* placeholder: worker */
