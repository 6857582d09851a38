/*
 * The worker's web endpoints, served on its own loop by http.c:
 *   GET /health             200 while consuming; 503 starting, recovering, rebalancing,
 *                           disconnected or stopping; {"status": ..., "checks": {...}}
 *   GET /info               app, version, worker, agents, topics, tables, partitions
 *   GET /metrics            Prometheus text format 0.0.4 (metrics.c)
 *   GET /tables/NAME/KEY    the key's rows as `faustc table NAME --key KEY --json` prints them
 *   GET /tables/NAME?prefix=P&limit=N   keys of the partitions this worker owns
 *   GET /                   the live page (page.c)
 * Table reads go to the worker's LMDB store, which holds what the last commit cycle made
 * durable (at most commit_interval old), the same state `faustc table` reads.
 *
 * Keys of partitions another worker owns are answered 307 to that worker's address (Faust's
 * table_route). Workers learn each other's addresses through Kafka: each one writes
 * {"worker_id", "web", "partitions": [[topic, partition], ...]} keyed by its worker id to the
 * compacted topic <app_id>-__workers after every assignment, and reads that topic from the
 * start with its restore consumer. The newest record claiming a partition names its owner
 * (a record is superseded by the next assignment, so a worker that died stops being named
 * once its partitions are handed out again).
 *
 * The listener binds --web-bind:--web-port (127.0.0.1:6066). When the port is taken (a
 * second worker on the machine) the next free one is taken, with a warning naming the
 * option; the URL goes to DATADIR/web.addr for `faustc status`. A server that cannot start
 * is a warning, never a reason to stop processing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../cli_tables.h"
#include "../table_rt.h"
#include "web.h"

/* Keys listed by /tables/NAME at most (and by default). */
#define KEYS_LIMIT_MAX 10000
#define KEYS_LIMIT_DEFAULT 100

static void
json_body(struct ag__http_res *res, int status, json_t *doc)
{
	res->status = status;
	char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_ENCODE_ANY) : NULL;
	if (text) {
		ag__sbuf_append(&res->body, text, strlen(text));
		ag__sbuf_append(&res->body, "\n", 1);
	} else {
		res->body.oom = 1;
	}
	free(text);
	json_decref(doc);
}

static void
json_error(struct ag__http_res *res, int status, const char *msg)
{
	json_body(res, status, json_pack("{s:s}", "error", msg));
}

/* ---- /health ---- */

static void
count_parts(const struct ag__worker *w, int *assigned, int *recovering, int *paused)
{
	*assigned = *recovering = *paused = 0;
	for (size_t i = 0; i < w->app->ntopics; i++) {
		const struct ag_topic *t = w->app->topics[i];
		for (int p = 0; t->parts && p < t->partitions; p++) {
			const struct ag__tpart *tp = &t->parts[p];
			if (!tp->assigned)
				continue;
			(*assigned)++;
			*recovering += !tp->ready && !tp->revoking;
			*paused += tp->paused;
		}
	}
}

const char *
ag__web_state(const struct ag__worker *w)
{
	int assigned, recovering, paused;
	count_parts(w, &assigned, &recovering, &paused);
	if (w->stopping)
		return "stopping";
	if (w->assignments == 0)
		return "starting";
	if (w->rebalancing || w->unassign_pending)
		return "rebalancing";
	if (recovering)
		return "recovering";
	if (w->brokers_down)
		return "disconnected";
	return "running";
}

static json_t *
check(int ok, const char *detail)
{
	return json_pack("{s:b,s:s}", "ok", ok, "detail", detail);
}

static void
route_health(struct ag__web *web, struct ag__http_res *res)
{
	struct ag__worker *w = web->w;
	int assigned, recovering, paused;
	count_parts(w, &assigned, &recovering, &paused);
	const char *state = ag__web_state(w);
	char detail[256];
	json_t *checks = json_object();
	if (w->assignments == 0)
		snprintf(detail, sizeof(detail),
			 "waiting for the consumer group's first assignment");
	else if (w->rebalancing || w->unassign_pending)
		snprintf(detail, sizeof(detail),
			 "partitions revoked, waiting for the new assignment");
	else
		snprintf(detail, sizeof(detail), "%d partitions assigned", assigned);
	json_object_set_new(
		checks, "consumer",
		check(w->assignments > 0 && !w->rebalancing && !w->unassign_pending, detail));
	snprintf(detail, sizeof(detail), "%d partitions restoring their tables", recovering);
	json_object_set_new(checks, "tables", check(recovering == 0, detail));
	json_object_set_new(
		checks, "broker",
		check(!w->brokers_down, w->brokers_down ? "all brokers are down" : "connected"));
	json_object_set_new(checks, "lifecycle",
			    check(!w->stopping, w->stopping ? "stopping" : "running"));
	snprintf(detail, sizeof(detail), "%d partitions paused by back-pressure", paused);
	json_object_set_new(checks, "backpressure", check(1, detail));
	int ok = strcmp(state, "running") == 0;
	json_body(res, ok ? 200 : 503, json_pack("{s:s,s:o}", "status", state, "checks", checks));
}

/* ---- /info ---- */

static const char *const stage_names[] = {
	[AG__STAGE_FILTER] = "filter",   [AG__STAGE_PROCESSOR] = "processor",
	[AG__STAGE_ECHO] = "echo",       [AG__STAGE_GROUP_BY] = "group_by",
	[AG__STAGE_THROUGH] = "through",
};

static const char *
tpart_state(const struct ag__tpart *tp)
{
	if (tp->revoking)
		return "revoking";
	if (!tp->ready)
		return "recovering";
	if (tp->paused)
		return "paused";
	return "active";
}

static const char *peer_owner(struct ag__web *web, const char *topic, int32_t p);

static void
route_info(struct ag__web *web, struct ag__http_res *res)
{
	struct ag__worker *w = web->w;
	const struct ag_app *app = w->app;
	json_t *agents = json_array(), *topics = json_array(), *tables = json_array(),
	       *parts = json_array();
	for (size_t i = 0; i < app->nagents; i++) {
		const struct ag_agent *a = app->agents[i];
		json_t *ops = json_array(), *sinks = json_array();
		for (size_t j = 0; j < a->nstages; j++) {
			const struct ag__stage *st = &a->stages[j];
			json_array_append_new(ops, json_pack("{s:s,s:s?}", "kind",
							     stage_names[st->kind], "topic",
							     st->topic ? st->topic->name : NULL));
		}
		for (size_t j = 0; j < a->nsinks; j++) {
			const struct ag__sink *s = &a->sinks[j];
			json_array_append_new(sinks,
					      json_pack("{s:s,s:s?}", "kind",
							s->kind == AG__SINK_TOPIC   ? "topic"
							: s->kind == AG__SINK_AGENT ? "agent"
										    : "callback",
							"name",
							s->kind == AG__SINK_TOPIC   ? s->topic->name
							: s->kind == AG__SINK_AGENT ? s->agent->name
										    : NULL));
		}
		uint64_t events = 0;
		for (size_t k = 0; k < a->nsegs; k++)
			for (size_t r = 0; r < a->segs[k].nrts; r++)
				events += a->segs[k].rts[r]->events;
		json_array_append_new(agents,
				      json_pack("{s:s,s:s,s:i,s:o,s:o,s:I,s:I,s:I}", "name",
						a->name, "topic", a->source->name, "concurrency",
						a->concurrency > 0 ? a->concurrency : 1,
						"operators", ops, "sinks", sinks, "events",
						(json_int_t)events, "sent", (json_int_t)a->sent,
						"failures", (json_int_t)a->failures));
	}
	for (size_t i = 0; i < app->ntopics; i++) {
		const struct ag_topic *t = app->topics[i];
		json_array_append_new(
			topics, json_pack("{s:s,s:i,s:b,s:s,s:s}", "name", t->name, "partitions",
					  t->partitions, "internal", t->internal, "key_codec",
					  ag__app_codec_name(app, t->key_codec), "value_codec",
					  ag__app_codec_name(app, t->value_codec)));
		for (int p = 0; t->parts && p < t->partitions; p++) {
			const struct ag__tpart *tp = &t->parts[p];
			if (!tp->assigned)
				continue;
			json_array_append_new(parts,
					      json_pack("{s:s,s:i,s:s,s:I,s:I}", "topic", t->name,
							"partition", p, "state", tpart_state(tp),
							"buffered", (json_int_t)ag__tpart_most(tp),
							"committed", (json_int_t)tp->committed));
		}
	}
	for (size_t i = 0; i < app->ntables; i++) {
		const struct ag_table *t = app->tables[i];
		json_t *standby = json_array(), *restoring = json_array();
		for (int p = 0; t->rt && p < t->changelog->partitions; p++) {
			if (t->rt->parts[p].standby)
				json_array_append_new(standby, json_integer(p));
			if (t->rt->parts[p].restoring)
				json_array_append_new(restoring, json_integer(p));
		}
		json_array_append_new(tables,
				      json_pack("{s:s,s:s?,s:s,s:i,s:b,s:o,s:o}", "name", t->name,
						"source", t->source ? t->source->name : NULL,
						"changelog", t->changelog->name, "partitions",
						t->changelog->partitions, "windowed", t->win.on,
						"standby_partitions", standby,
						"recovering_partitions", restoring));
	}
	/* Every worker of the app that announced itself on __workers, this one first. */
	json_t *workers = json_array();
	json_t *mine = json_array();
	for (size_t i = 0; i < app->ntopics; i++) {
		const struct ag_topic *t = app->topics[i];
		for (int p = 0; t->parts && p < t->partitions; p++)
			if (t->parts[p].assigned)
				json_array_append_new(mine, json_pack("[s,i]", t->name, p));
	}
	json_array_append_new(workers, json_pack("{s:s,s:s,s:o}", "worker_id", w->worker_id, "web",
						 web->url, "partitions", mine));
	const char *pid;
	json_t *peer;
	json_object_foreach(web->peers, pid, peer)
	{
		/* Listed while it is the newest claim of one of its partitions (or claims none). */
		json_t *claims = json_object_get(peer, "partitions");
		int current = json_array_size(claims) == 0;
		size_t k;
		json_t *c;
		json_array_foreach(claims, k, c)
		{
			const char *owner =
				json_is_string(json_array_get(c, 0))
					? peer_owner(
						  web, json_string_value(json_array_get(c, 0)),
						  (int32_t)json_integer_value(json_array_get(c, 1)))
					: NULL;
			current |=
				owner && json_is_string(json_object_get(peer, "web")) &&
				strcmp(owner, json_string_value(json_object_get(peer, "web"))) == 0;
		}
		if (!current)
			continue;
		json_array_append_new(workers, json_pack("{s:s,s:O?,s:O?}", "worker_id", pid, "web",
							 json_object_get(peer, "web"), "partitions",
							 json_object_get(peer, "partitions")));
	}
	static char recent[AG__LOG_RECENT][AG__LOG_RECENT_LEN];
	size_t nrecent = ag__log_recent(recent, AG__LOG_RECENT);
	json_t *errors = json_array();
	for (size_t i = 0; i < nrecent; i++)
		json_array_append_new(errors, json_string(recent[i]));
	json_body(res, 200,
		  json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o}", "app", app->id,
			    "version", ag_version(), "worker_id", w->worker_id, "pid",
			    (int)getpid(), "web", web->url, "broker",
			    w->broker.bootstrap ? w->broker.bootstrap : "", "state",
			    ag__web_state(w), "agents", agents, "topics", topics, "tables", tables,
			    "partitions", parts, "workers", workers, "recent_errors", errors));
}

/* ---- /tables ---- */

struct keys_walk {
	const struct ag_table *t;
	const char *prefix;
	size_t prefix_len;
	size_t limit;
	json_t *keys; /* array, in walk order */
	json_t *seen; /* windowed: keys already listed */
	int truncated;
};

static int
keys_one(int32_t part, struct ag_bytes skey, struct ag_bytes val, void *userdata)
{
	struct keys_walk *k = userdata;
	struct ag_bytes key = skey;
	int64_t start;
	if (k->t->win.on && ag__window_key_split(skey, &start, &key) < 0)
		return 0;
	if (!k->t->win.on && skey.len == 1 &&
	    (((const char *)skey.ptr)[0] == '\0' || ((const char *)skey.ptr)[0] == '\1'))
		return 0; /* the table's own state */
	if (key.len < k->prefix_len || memcmp(key.ptr, k->prefix, k->prefix_len) != 0)
		return k->t->win.on ? 0 : 1; /* plain keys are sorted: past the prefix */
	char *text = ag__table_key_json(key);
	if (!text)
		return -ENOMEM;
	if (k->seen && json_object_get(k->seen, text)) {
		free(text);
		return 0;
	}
	if (json_array_size(k->keys) >= k->limit) {
		k->truncated = 1;
		free(text);
		return 1;
	}
	json_array_append_new(k->keys, json_loads(text, JSON_DECODE_ANY, NULL));
	if (k->seen)
		json_object_set_new(k->seen, text, json_true());
	free(text);
	return 0;
}

static const struct ag__tpart *
table_tpart(const struct ag_table *t, int32_t p)
{
	const struct ag_topic *src = t->source;
	if (!src || !src->parts || p >= src->partitions)
		return NULL;
	return &src->parts[p];
}

static void
route_table_keys(struct ag__web *web, const struct ag_table *t, const char *query,
		 struct ag__http_res *res)
{
	char prefix[512] = "", num[32];
	size_t limit = KEYS_LIMIT_DEFAULT;
	if (ag__http_query(query, "prefix", prefix, sizeof(prefix)) < 0) {
		if (strstr(query, "prefix=")) {
			json_error(res, 400, "bad or too long prefix");
			return;
		}
		prefix[0] = '\0';
	}
	if (ag__http_query(query, "limit", num, sizeof(num)) >= 0) {
		char *end;
		long v = strtol(num, &end, 10);
		if (*end || end == num || v < 1 || v > KEYS_LIMIT_MAX) {
			json_error(res, 400, "limit wants a number from 1 to 10000");
			return;
		}
		limit = (size_t)v;
	}
	struct keys_walk k = {.t = t,
			      .prefix = prefix,
			      .prefix_len = strlen(prefix),
			      .limit = limit,
			      .keys = json_array(),
			      .seen = t->win.on ? json_object() : NULL};
	json_t *owned = json_array();
	int rc = 0;
	for (int32_t p = 0; p < t->changelog->partitions && rc >= 0 && !k.truncated; p++) {
		const struct ag__tpart *tp = table_tpart(t, p);
		if (!tp || !tp->assigned || !tp->ready)
			continue;
		json_array_append_new(owned, json_integer(p));
		if (t->win.on)
			rc = ag__store_iter(web->w->store, t->name, p, keys_one, &k);
		else
			rc = ag__store_iter_from(web->w->store, t->name, p,
						 (struct ag_bytes){prefix, k.prefix_len}, keys_one,
						 &k);
	}
	json_decref(k.seen);
	if (rc < 0) {
		json_decref(k.keys);
		json_decref(owned);
		json_error(res, 500, "reading the table store failed");
		return;
	}
	json_body(res, 200,
		  json_pack("{s:s,s:o,s:o,s:b}", "table", t->name, "partitions", owned, "keys",
			    k.keys, "truncated", k.truncated));
}

struct rows_walk {
	const struct ag_table *t;
	struct ag_bytes key;
	json_t *rows;
};

static int
rows_one(int32_t part, struct ag_bytes skey, struct ag_bytes val, void *userdata)
{
	struct rows_walk *r = userdata;
	struct ag_bytes key;
	int64_t start;
	if (ag__window_key_split(skey, &start, &key) < 0 || key.len != r->key.len ||
	    memcmp(key.ptr, r->key.ptr, key.len) != 0)
		return 0;
	json_t *row = ag__table_row(r->t, part, skey, val);
	if (row)
		json_array_append_new(r->rows, row);
	return 0;
}

/* The web address of the other worker that owns (topic, p), or NULL. Borrowed. */
static const char *
peer_owner(struct ag__web *web, const char *topic, int32_t p)
{
	const char *id, *best = NULL;
	json_int_t best_off = -1;
	json_t *peer;
	json_object_foreach(web->peers, id, peer)
	{
		size_t i;
		json_t *tp;
		json_array_foreach(json_object_get(peer, "partitions"), i, tp)
		{
			json_int_t off = json_integer_value(json_object_get(peer, "offset"));
			if (json_integer_value(json_array_get(tp, 1)) == p &&
			    json_is_string(json_array_get(tp, 0)) &&
			    strcmp(json_string_value(json_array_get(tp, 0)), topic) == 0 &&
			    off > best_off) {
				best_off = off;
				best = json_string_value(json_object_get(peer, "web"));
			}
		}
	}
	return best;
}

static void
route_table_key(struct ag__web *web, const struct ag__http_req *req, const struct ag_table *t,
		struct ag_bytes key, struct ag__http_res *res)
{
	int32_t p = ag__murmur2_partition(key.ptr, key.len, t->changelog->partitions);
	const struct ag__tpart *tp = table_tpart(t, p);
	char msg[512];
	const char *owner = tp && !tp->assigned ? peer_owner(web, t->source->name, p) : NULL;
	if (owner && strlen(owner) + strlen(req->path) + 2 < sizeof(res->location)) {
		size_t ol = strlen(owner), pl = strlen(req->path);
		memcpy(res->location, owner, ol);
		memcpy(res->location + ol, req->path, pl + 1);
		snprintf(msg, sizeof(msg), "partition %d of %s is owned by the worker at %s",
			 (int)p, t->name, owner);
		json_body(res, 307,
			  json_pack("{s:s,s:s,s:i,s:s}", "error", msg, "table", t->name,
				    "partition", (int)p, "location", res->location));
		return;
	}
	if (!tp || !tp->assigned) {
		snprintf(msg, sizeof(msg),
			 "key is in partition %d of %s, which this worker does not own; ask the "
			 "worker that does (GET /info lists a worker's partitions)",
			 (int)p, t->name);
		json_body(res, 404,
			  json_pack("{s:s,s:s,s:i}", "error", msg, "table", t->name, "partition",
				    (int)p));
		return;
	}
	if (!tp->ready) {
		snprintf(msg, sizeof(msg), "partition %d of %s is being recovered; try again",
			 (int)p, t->name);
		json_body(res, 503,
			  json_pack("{s:s,s:s,s:i}", "error", msg, "table", t->name, "partition",
				    (int)p));
		return;
	}
	json_t *rows = json_array();
	if (t->win.on) {
		struct rows_walk r = {.t = t, .key = key, .rows = rows};
		if (ag__store_iter(web->w->store, t->name, p, rows_one, &r) < 0) {
			json_decref(rows);
			json_error(res, 500, "reading the table store failed");
			return;
		}
	} else {
		struct ag_bytes val;
		int rc = ag__store_get(web->w->store, t->name, p, key, &val);
		json_t *row = rc == 0 ? ag__table_row(t, p, key, val) : NULL;
		if (row)
			json_array_append_new(rows, row);
	}
	char *k = ag__table_key_json(key);
	int found = json_array_size(rows) > 0;
	json_body(res, found ? 200 : 404,
		  json_pack("{s:s,s:o,s:i,s:o}", "table", t->name, "key",
			    k ? json_loads(k, JSON_DECODE_ANY, NULL) : json_null(), "partition",
			    (int)p, "rows", rows));
	free(k);
}

static void
route_tables(struct ag__web *web, const struct ag__http_req *req, struct ag__http_res *res)
{
	const char *rest = req->path + 8, *query = req->query;
	const char *slash = strchr(rest, '/');
	char name[256], key[AG__TABLE_KEY_MAX + 1];
	size_t nlen = slash ? (size_t)(slash - rest) : strlen(rest);
	if (ag__http_unescape(rest, nlen, 0, name, sizeof(name)) < 0) {
		json_error(res, 400, "bad table name");
		return;
	}
	const struct ag_table *t = NULL;
	for (size_t i = 0; i < web->w->app->ntables && !t; i++)
		if (strcmp(web->w->app->tables[i]->name, name) == 0)
			t = web->w->app->tables[i];
	if (!t) {
		json_error(res, 404, "no such table (GET /info lists them)");
		return;
	}
	if (!slash || !slash[1]) {
		route_table_keys(web, t, query, res);
		return;
	}
	int klen = ag__http_unescape(slash + 1, strlen(slash + 1), 0, key, sizeof(key));
	if (klen <= 0) {
		json_error(res, 400, "bad or too long key");
		return;
	}
	route_table_key(web, req, t, (struct ag_bytes){key, (size_t)klen}, res);
}

/* ---- routing ---- */

extern const unsigned char ag__web_page[];
extern const size_t ag__web_page_len;

static void
route(const struct ag__http_req *req, struct ag__http_res *res, void *userdata)
{
	struct ag__web *web = userdata;
	if (strcmp(req->path, "/health") == 0) {
		route_health(web, res);
	} else if (strcmp(req->path, "/info") == 0) {
		route_info(web, res);
	} else if (strcmp(req->path, "/metrics") == 0) {
		res->status = 200;
		res->type = "text/plain; version=0.0.4; charset=utf-8";
		ag__web_metrics(web, &res->body);
	} else if (strncmp(req->path, "/tables/", 8) == 0 && req->path[8]) {
		route_tables(web, req, res);
	} else if (strcmp(req->path, "/") == 0) {
		res->status = 200;
		res->type = "text/html; charset=utf-8";
		ag__sbuf_append(&res->body, (const char *)ag__web_page, ag__web_page_len);
	} else {
		json_error(res, 404,
			   "no such path; the endpoints are /, /health, /info, /metrics, "
			   "/tables/NAME and /tables/NAME/KEY");
	}
}

/* ---- lifecycle ---- */

static void
write_addr(struct ag__web *web)
{
	char tmp[4300];
	snprintf(web->addr_path, sizeof(web->addr_path), "%s/web.addr",
		 ag__app_datadir(web->w->app));
	snprintf(tmp, sizeof(tmp), "%s.tmp", web->addr_path);
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "%s\n", web->url) < 0 || fclose(f) != 0 ||
	    rename(tmp, web->addr_path) < 0) {
		ag__log(web->w->app, AG_LOG_WARN,
			"cannot write %s: %s; `faustc status` needs --web", web->addr_path,
			strerror(errno));
		web->addr_path[0] = '\0';
	}
}

/* Starts reading <app_id>-__workers from the start, and says where this worker is. */
static void
peers_open(struct ag__web *web)
{
	struct ag__worker *w = web->w;
	const struct ag_topic *t = w->app->workers_topic;
	if (!t || !(web->peers = json_object()))
		return;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, t->name, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_error_t *e = rd_kafka_incremental_assign(w->restorer, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		ag__log(w->app, AG_LOG_WARN,
			"web server: cannot read %s (%s); keys other workers own are answered 404 "
			"instead of a redirect",
			t->name, rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
	ag__web_announce(w);
}

void
ag__web_announce(struct ag__worker *w)
{
	struct ag__web *web = w->web;
	if (!web || !w->app->workers_topic || w->closing)
		return;
	rd_kafka_topic_t *rkt = w->app->workers_topic->rkt;
	if (!rkt)
		return;
	if (w->stopping) {
		/* A tombstone takes this worker off the others' lists (not when it cannot go). */
		if (!w->brokers_down)
			rd_kafka_produce(rkt, 0, RD_KAFKA_MSG_F_COPY, NULL, 0, w->worker_id,
					 strlen(w->worker_id), AG__OPAQUE_UNTRACKED);
		return;
	}
	json_t *parts = json_array();
	for (size_t i = 0; i < w->app->ntopics; i++) {
		const struct ag_topic *t = w->app->topics[i];
		for (int p = 0; t->parts && p < t->partitions; p++)
			if (t->parts[p].assigned && !t->parts[p].revoking)
				json_array_append_new(parts, json_pack("[s,i]", t->name, p));
	}
	json_t *doc = json_pack("{s:s,s:s,s:o}", "worker_id", w->worker_id, "web", web->url,
				"partitions", parts);
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!text)
		return;
	/*
	 * Untracked: a lost announcement only costs redirects, so nothing (commits, the stop)
	 * waits for it, and it is not one of the app's outputs.
	 */
	if (rd_kafka_produce(rkt, 0, RD_KAFKA_MSG_F_COPY, text, strlen(text), w->worker_id,
			     strlen(w->worker_id), AG__OPAQUE_UNTRACKED) == -1)
		ag__log(w->app, AG_LOG_WARN, "web server: cannot announce this worker on %s: %s",
			w->app->workers_topic->name, rd_kafka_err2str(rd_kafka_last_error()));
	free(text);
}

void
ag__web_peer(struct ag__worker *w, const rd_kafka_message_t *m)
{
	struct ag__web *web = w->web;
	char id[64];
	if (!web || !web->peers || !m->key || m->key_len >= sizeof(id))
		return;
	memcpy(id, m->key, m->key_len);
	id[m->key_len] = '\0';
	if (strcmp(id, w->worker_id) == 0)
		return;
	json_t *doc = m->payload ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
	if (!json_is_object(doc) || !json_is_string(json_object_get(doc, "web"))) {
		json_decref(doc);
		json_object_del(web->peers, id);
		return;
	}
	json_object_set_new(doc, "offset", json_integer(m->offset));
	json_object_set_new(web->peers, id, doc);
}

void
ag__web_open(struct ag__worker *w)
{
	struct ag_app *app = w->app;
	if (!app->web)
		return;
	const char *host = app->web_bind ? app->web_bind : "127.0.0.1";
	int port = app->web_port, bound = 0;
	struct ag__web *web = calloc(1, sizeof(*web));
	if (!web || !(web->table_keys = calloc(app->ntables + 1, sizeof(*web->table_keys)))) {
		free(web);
		ag__log(app, AG_LOG_WARN, "web server: out of memory; running without it");
		return;
	}
	web->w = w;
	int rc = ag__http_open(&web->http, &w->loop, host, port, 1, &bound, route, web);
	if (rc < 0) {
		ag__log(app, AG_LOG_WARN,
			"web server: cannot listen on %s:%d: %s; the worker runs without it (pass "
			"--web-bind ADDR, --web-port N, --web-port 0 for any free port, or "
			"--no-web)",
			host, port, uv_strerror(rc));
		free(web->table_keys);
		free(web);
		return;
	}
	if (port != 0 && bound != port)
		ag__log(app, AG_LOG_WARN,
			"web server: port %d is taken (another worker on this machine?); using %d "
			"instead (choose one with --web-port N, or --web-port 0 for any free port)",
			port, bound);
	snprintf(web->url, sizeof(web->url), strchr(host, ':') ? "http://[%s]:%d" : "http://%s:%d",
		 host, bound);
	write_addr(web);
	w->web = web;
	peers_open(web);
	ag__log(app, AG_LOG_INFO, "web server: %s (/health, /info, /metrics, /tables, /)",
		web->url);
}

void
ag__web_close(struct ag__worker *w)
{
	struct ag__web *web = w->web;
	if (!web)
		return;
	w->web = NULL;
	ag__http_close(web->http);
	if (web->addr_path[0])
		unlink(web->addr_path);
	json_decref(web->peers);
	free(web->table_keys);
	free(web);
}
