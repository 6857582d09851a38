/* placeholder: acks */
