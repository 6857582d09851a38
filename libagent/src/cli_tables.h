/*
 * faustc's table commands (cli_tables.c), called by ag_app_main with a finalized app.
 * Each returns the process exit status: 0, 1 (store or worker problem, message on stderr),
 * 2 (usage).
 */
#ifndef AG_CLI_TABLES_H
#define AG_CLI_TABLES_H

#include <jansson.h>

#include "internal.h"

/*
 * One stored entry of table t as `faustc table --json` prints it (partition, key, window,
 * value, offset, written_ms), or NULL for a table's own state or an unreadable value.
 * Caller owns the result. Also used by the web server's /tables.
 */
json_t *ag__table_row(const struct ag_table *t, int32_t part, struct ag_bytes skey,
		      struct ag_bytes val);

/* A key as JSON text (a string; bytes that are not UTF-8 as \u00XX). Caller frees. */
char *ag__table_key_json(struct ag_bytes key);

/* `faustc tables`: every table's partitions with key counts and changelog positions. */
int ag__cmd_tables(const struct ag_app *app);

/* `faustc table NAME [--key K] [--json]`: keys and values (windows with bounds). */
int ag__cmd_table(const struct ag_app *app, const char *name, const char *key, int json);

/* `faustc reset --yes`: deletes DATADIR/tables unless a worker holds DATADIR/LOCK. */
int ag__cmd_reset(const struct ag_app *app, int yes);

#endif
