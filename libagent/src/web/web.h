/*
 * The worker's web endpoints (web.c) and what they share with the Prometheus text
 * (metrics.c). The server itself is http.h. Private to the library.
 */
#ifndef AG_WEB_WEB_H
#define AG_WEB_WEB_H

#include "../worker.h"
#include "http.h"

struct ag__web {
	struct ag__worker *w;
	struct ag__http *http;
	char url[320]; /* http://host:port */
	char addr_path[4200]; /* DATADIR/web.addr, "" when not written */
	/* table key counts are a walk over LMDB: taken at most every few seconds */
	int64_t *table_keys; /* [app->ntables] */
	uint64_t table_keys_ns;
	/* other workers, from <app_id>-__workers: worker id -> {"web", "partitions", "offset"} */
	json_t *peers;
};

/* The worker's state as /health names it: "starting", "recovering", ..., "running". */
const char *ag__web_state(const struct ag__worker *w);

/*
 * `faustc status [--web URL]`: the summary of a running worker. Returns the exit status:
 * 0 running, 3 reachable but not healthy (starting, recovering, ...), 1 unreachable.
 */
int ag__cmd_status(const struct ag_app *app, const char *url);

/* Writes every metric family in Prometheus text format 0.0.4 into out. */
void ag__web_metrics(struct ag__web *web, struct ag__sbuf *out);

#endif
