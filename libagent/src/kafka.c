/* placeholder: kafka */
