/* placeholder: coro */
