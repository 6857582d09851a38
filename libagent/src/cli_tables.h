/*
 * faustc's table commands (cli_tables.c), called by ag_app_main with a finalized app.
 * Each returns the process exit status: 0, 1 (store or worker problem, message on stderr),
 * 2 (usage).
 */
#ifndef AG_CLI_TABLES_H
#define AG_CLI_TABLES_H

#include "internal.h"

/* `faustc tables`: every table's partitions with key counts and changelog positions. */
int ag__cmd_tables(const struct ag_app *app);

/* `faustc table NAME [--key K] [--json]`: keys and values (windows with bounds). */
int ag__cmd_table(const struct ag_app *app, const char *name, const char *key, int json);

/* `faustc reset --yes`: deletes DATADIR/tables unless a worker holds DATADIR/LOCK. */
int ag__cmd_reset(const struct ag_app *app, int yes);

#endif
