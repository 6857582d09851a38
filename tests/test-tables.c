/*
 * Tables end to end, on a shared mock cluster child (mock.h: changelogs and committed
 * offsets outlive the workers, and the test can make offset commits fail). Apps are
 * declared with the public API and run as `worker` by ag_app_main in forked children; this
 * process produces inputs, reads outputs and changelogs with plain librdkafka clients, and
 * reads the workers' LMDB read-only.
 *
 * The crash points that matter are made by hand: the cluster refuses offset commits
 * (OffsetCommit fails with OFFSET_METADATA_TOO_LARGE) while a worker goes on processing,
 * delivering outputs and changelog records and writing LMDB; the worker is killed with
 * SIGKILL after its log shows refused commits. Its successor processes again events whose
 * effects are already durable.
 *
 *  1. exactness: a stream of increments; the worker is killed so mid-stream, restarted on
 *     its data dir (the replayed effects are in LMDB), killed so again, and a third worker
 *     on an empty data dir (the partitions moved, rebuilt from the changelog) finishes.
 *     Every key's count and sum equal the recomputation from the input exactly, in LMDB
 *     and in the changelog, although events were processed more than once (the sink saw
 *     duplicates). Disabling the per-key offset dedupe (table.c) fails these checks.
 *  2. windows: tumbling(10 s, grace 2 s, expires 15 s) and hopping(10 s, 5 s) tables fed
 *     events with chosen Kafka timestamps: assignment at boundaries, out-of-order and late
 *     events, reads (current, delta, at, each, keys), on_close with final values, expiry
 *     with tombstones; then a restart on the same data dir whose closing event is killed
 *     after the close is durable but before its offset is committed (close-once: the
 *     replay closes nothing again; ignoring the stored window state fails the check), and
 *     a worker on an empty data dir (rebuilt from the changelog): every window closes
 *     exactly once overall.
 *  3. key TTL: a key not written for 1 s reads as missing and is swept (tombstone).
 *  6. restore batches: a changelog written by hand with several records per key in one
 *     batch (a value then a tombstone, a tombstone then a value, two values) is restored
 *     onto an empty data dir: the last record of each key wins, tombstones delete, and
 *     LMDB's changelog offset of each partition is the changelog's end.
 *  5. forwards processed again: a group_by whose source is processed a second time (all
 *     commits refused, SIGKILL, a worker on an empty data dir): the reader drops the
 *     copies (forward dedupe) and the counts behind the group_by stay exact.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "table_rt.h"

#include "harness.h"
#include "mock.h"

#define T0 1700000000000LL

#define X_PARTS 4
#define X_KEYS 16
#define X_EVENTS 30000

#define G_KEYS 8
#define G_EVENTS 3000

/* ---- the apps (their agents run in the worker children) ---- */

static struct ag_table *xcount, *xsum, *wsum, *whop, *seen, *gcount;
static struct ag_topic *w_closed;

/* X: counts events and sums their values per key; yields "KEY=COUNT". */
static int
agent_x(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		usleep(30);
		struct ag_bytes k = ag_event_key(ev), v = ag_event_value(ev);
		char num[32];
		snprintf(num, sizeof(num), "%.*s", (int)v.len, v.ptr ? (const char *)v.ptr : "");
		int64_t n;
		TRY(ag_table_add_i64(xcount, &k, 1, &n));
		TRY(ag_table_add_i64(xsum, &k, strtoll(num, NULL, 10), NULL));
		char out[64];
		snprintf(out, sizeof(out), "%.*s=%lld", (int)k.len, (const char *)k.ptr,
			 (long long)n);
		TRY(ag_stream_yield(s, &k, &(struct ag_bytes){out, strlen(out)}));
	}
	return rc == AG_EOF ? 0 : rc;
}

/* on_close: "TABLE|KEY|START|END|VALUE" (times relative to T0) to w-closed. */
static int
on_close(struct ag_table *t, const struct ag_bytes *key, const struct ag_window *w,
	 const struct ag_value *v, void *userdata)
{
	char out[128];
	snprintf(out, sizeof(out), "%s|%.*s|%lld|%lld|%lld", ag_table_name(t), (int)key->len,
		 (const char *)key->ptr, (long long)(w->start_ms - T0), (long long)(w->end_ms - T0),
		 (long long)v->i64);
	return ag_send(w_closed, key, &(struct ag_bytes){out, strlen(out)});
}

struct buf {
	char s[512];
	size_t n;
};

static int
each_window(struct ag_table *t, const struct ag_bytes *key, const struct ag_window *w,
	    const struct ag_value *v, void *userdata)
{
	struct buf *b = userdata;
	b->n += (size_t)snprintf(b->s + b->n, sizeof(b->s) - b->n, "%lld:%lld,",
				 (long long)(w->start_ms - T0), (long long)v->i64);
	return 0;
}

static int
each_key(struct ag_table *t, const struct ag_bytes *key, const struct ag_window *w,
	 const struct ag_value *v, void *userdata)
{
	struct buf *b = userdata;
	b->n += (size_t)snprintf(b->s + b->n, sizeof(b->s) - b->n, "%.*s=%lld,", (int)key->len,
				 (const char *)key->ptr, (long long)v->i64);
	return 0;
}

/* W: "N" adds N to both windowed tables; "?" reads them and yields what it read. */
static int
agent_w(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes k = ag_event_key(ev), v = ag_event_value(ev);
		char text[32];
		snprintf(text, sizeof(text), "%.*s", (int)v.len, v.ptr ? (const char *)v.ptr : "");
		if (text[0] != '?') {
			int64_t n = strtoll(text, NULL, 10);
			TRY(ag_table_add_i64(wsum, &k, n, NULL));
			TRY(ag_table_add_i64(whop, &k, n, NULL));
			continue;
		}
		int64_t cur, get, delta, at;
		struct ag_window wc, wd, wa;
		TRY(ag_table_window_get_i64(wsum, &k, AG_WINDOW_CURRENT, 0, &cur, &wc));
		TRY(ag_table_get_i64(wsum, &k, &get));
		TRY(ag_table_window_get_i64(wsum, &k, AG_WINDOW_DELTA, 10000, &delta, &wd));
		TRY(ag_table_window_get_i64(wsum, &k, AG_WINDOW_AT, T0 + 25000, &at, &wa));
		struct buf each = {.n = 0}, keys = {.n = 0};
		each.s[0] = keys.s[0] = '\0';
		TRY(ag_table_window_each(wsum, &k, each_window, &each));
		TRY(ag_table_window_keys(wsum, T0, each_key, &keys));
		char out[1400];
		snprintf(out, sizeof(out),
			 "cur=%lld@%lld get=%lld delta=%lld@%lld at=%lld@%lld each=%s keys=%s "
			 "late=%llu/%llu",
			 (long long)cur, (long long)(wc.start_ms - T0), (long long)get,
			 (long long)delta, (long long)(wd.start_ms - T0), (long long)at,
			 (long long)(wa.start_ms - T0), each.s, keys.s,
			 (unsigned long long)ag_table_late_writes(wsum),
			 (unsigned long long)ag_table_late_writes(whop));
		TRY(ag_stream_yield(s, &k, &(struct ag_bytes){out, strlen(out)}));
	}
	return rc == AG_EOF ? 0 : rc;
}

/* L: counts per key in the TTL table; yields "KEY=COUNT". */
static int
agent_l(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes k = ag_event_key(ev);
		int64_t n;
		TRY(ag_table_add_i64(seen, &k, 1, &n));
		char out[64];
		snprintf(out, sizeof(out), "%.*s=%lld", (int)k.len, (const char *)k.ptr,
			 (long long)n);
		TRY(ag_stream_yield(s, &k, &(struct ag_bytes){out, strlen(out)}));
	}
	return rc == AG_EOF ? 0 : rc;
}

/* G's group_by key: the whole value. */
static int
value_key(struct ag_event *ev, struct ag_bytes *key, void *userdata)
{
	*key = ag_event_value(ev);
	return key->len ? 0 : -EINVAL;
}

/* G, after its group_by: counts events per key; yields "KEY=COUNT". */
static int
agent_g(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes k = ag_event_key(ev);
		int64_t n;
		TRY(ag_table_add_i64(gcount, &k, 1, &n));
		char out[64];
		snprintf(out, sizeof(out), "%.*s=%lld", (int)k.len, (const char *)k.ptr,
			 (long long)n);
		TRY(ag_stream_yield(s, &k, &(struct ag_bytes){out, strlen(out)}));
	}
	return rc == AG_EOF ? 0 : rc;
}

static int
topic_decl(struct ag_app *app, const char *name, int partitions, struct ag_topic **out)
{
	struct ag_topic_opts o = {.partitions = partitions};
	return ag_app_topic(app, name, &o, out);
}

static int
setup_x(struct ag_app *app)
{
	struct ag_topic *in, *out;
	struct ag_agent *a;
	TRY(ag_app_set_id(app, "tx"));
	TRY(topic_decl(app, "x-in", X_PARTS, &in));
	TRY(topic_decl(app, "x-out", 1, &out));
	TRY(ag_app_table(app, "xcount", in, NULL, &xcount));
	TRY(ag_app_table(app, "xsum", in, NULL, &xsum));
	TRY(ag_app_agent(app, "X", in, agent_x, NULL, &a));
	TRY(ag_agent_sink_topic(a, out));
	return 0;
}

static int
setup_w(struct ag_app *app)
{
	struct ag_topic *in, *out, *l_in, *l_out;
	struct ag_agent *a, *l;
	TRY(ag_app_set_id(app, "tw"));
	TRY(topic_decl(app, "w-in", 2, &in));
	TRY(topic_decl(app, "w-out", 1, &out));
	TRY(topic_decl(app, "w-closed", 1, &w_closed));
	TRY(topic_decl(app, "l-in", 1, &l_in));
	TRY(topic_decl(app, "l-out", 1, &l_out));
	TRY(ag_app_table(app, "wsum", in, NULL, &wsum));
	TRY(ag_table_window(
		wsum, &(struct ag_window_opts){
			      .size_s = 10, .expires_s = 15, .grace_s = 2, .on_close = on_close}));
	TRY(ag_app_table(app, "whop", in, NULL, &whop));
	TRY(ag_table_window(
		whop, &(struct ag_window_opts){
			      .size_s = 10, .step_s = 5, .grace_s = 2, .on_close = on_close}));
	TRY(ag_app_table(app, "seen", l_in, &(struct ag_table_opts){.ttl_s = 1}, &seen));
	TRY(ag_app_agent(app, "W", in, agent_w, NULL, &a));
	TRY(ag_agent_sink_topic(a, out));
	TRY(ag_app_agent(app, "L", l_in, agent_l, NULL, &l));
	TRY(ag_agent_sink_topic(l, l_out));
	return 0;
}

/* App "tg": a count per key behind a group_by (table on the repartition topic). */
static int
setup_g(struct ag_app *app)
{
	struct ag_topic *in, *out, *rep;
	struct ag_agent *a;
	TRY(ag_app_set_id(app, "tg"));
	TRY(topic_decl(app, "g-in", 2, &in));
	TRY(topic_decl(app, "g-out", 1, &out));
	TRY(ag_app_agent(app, "G", in, agent_g, NULL, &a));
	TRY(ag_agent_group_by(a, "k", value_key, NULL, 2, &rep));
	TRY(ag_app_table(app, "gcount", rep, NULL, &gcount));
	TRY(ag_agent_sink_topic(a, out));
	return 0;
}

/* App "tc": a table on a 3-partition topic whose changelog exists with 2 (setup_broker). */
static int
setup_c(struct ag_app *app)
{
	struct ag_topic *in;
	struct ag_agent *a;
	TRY(ag_app_set_id(app, "tc"));
	TRY(topic_decl(app, "c-in", 3, &in));
	TRY(ag_app_table(app, "t", in, NULL, &xcount));
	TRY(ag_app_agent(app, "C", in, agent_x, NULL, &a));
	return 0;
}

/* App "tr": a table whose changelog the test writes itself (6). */
static int
setup_r(struct ag_app *app)
{
	struct ag_topic *in;
	TRY(ag_app_set_id(app, "tr"));
	TRY(topic_decl(app, "r-in", 2, &in));
	TRY(ag_app_table(app, "t", in, NULL, &xcount));
	TRY(ag_app_agent(app, "R", in, agent_x, NULL, NULL));
	return 0;
}

/* The broker creates the topics of the apps (and a changelog with the wrong count). */
static int
setup_broker(struct ag_app *app)
{
	TRY(setup_w(app));
	TRY(topic_decl(app, "c-in", 3, NULL));
	TRY(topic_decl(app, "tc-t-changelog", 2, NULL));
	TRY(topic_decl(app, "x-in", X_PARTS, NULL));
	TRY(topic_decl(app, "x-out", 1, NULL));
	TRY(topic_decl(app, "tx-xcount-changelog", X_PARTS, NULL));
	TRY(topic_decl(app, "tx-xsum-changelog", X_PARTS, NULL));
	TRY(topic_decl(app, "r-in", 2, NULL));
	TRY(topic_decl(app, "tr-t-changelog", 2, NULL));
	return 0;
}

/* On Kafka, `faustc broker` creates what the mock cluster has up front (setups in main). */
static int
setup_kafka(struct ag_app *app)
{
	TRY(setup_broker(app));
	TRY(topic_decl(app, "g-in", 2, NULL));
	TRY(topic_decl(app, "g-out", 1, NULL));
	return 0;
}

/* ---- helpers ---- */

static char url[300];
static const char *bootstrap;
static struct h_mock mock;

#define API_OFFSET_COMMIT 8
#define ERR_OFFSET_METADATA_TOO_LARGE 12

/*
 * On real Kafka nothing can make the broker refuse commits: the test snapshots the group's
 * committed offsets instead, lets the worker commit, and after the kill sets the offsets
 * back to the snapshot (h_group_rewind). The successor sees the same state as on the mock:
 * effects durable in LMDB and the changelog, offsets from before them.
 */
static rd_kafka_topic_partition_list_t *snapshot;

/* From now on the cluster refuses every offset commit of group (on Kafka: they are undone). */
static void
refuse_commits(const char *group)
{
	if (!h_kafka) {
		ok_int_eq(h_mock_cmd(&mock, "errors %d 100000 %d", API_OFFSET_COMMIT,
				     ERR_OFFSET_METADATA_TOO_LARGE),
			  0, "the cluster refuses offset commits from now on");
		return;
	}
	if (snapshot)
		rd_kafka_topic_partition_list_destroy(snapshot);
	snapshot = h_group_committed(bootstrap, group);
	ok(snapshot != NULL, "group %s: its committed offsets noted (%d partitions), to be undone",
	   group, snapshot ? snapshot->cnt : -1);
}

static void
accept_commits(const char *group)
{
	if (!h_kafka) {
		ok_int_eq(h_mock_cmd(&mock, "clear %d", API_OFFSET_COMMIT), 0,
			  "the cluster accepts offset commits again");
		return;
	}
	ok_int_eq(h_group_rewind(bootstrap, group, snapshot, 60000), 0,
		  "group %s: the commits since the note are undone", group);
}

/* How many refused commits NAME.log reports. */
static int
refused_commits(const char *name)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/%s.log", h_tmp, name);
	char *text = slurp(path);
	int n = 0;
	for (const char *p = text; p && (p = strstr(p, "offset commit failed")); p++)
		n++;
	free(text);
	return n;
}

/* Whether two offset lists are the same (in the same order, as the broker lists them). */
static int
same_offsets(const rd_kafka_topic_partition_list_t *a, const rd_kafka_topic_partition_list_t *b)
{
	if (!a || !b || a->cnt != b->cnt)
		return !a && !b;
	for (int i = 0; i < a->cnt; i++) {
		if (strcmp(a->elems[i].topic, b->elems[i].topic) != 0 ||
		    a->elems[i].partition != b->elems[i].partition ||
		    a->elems[i].offset != b->elems[i].offset)
			return 0;
	}
	return 1;
}

/* On Kafka: how many times group's committed offsets changed in up to timeout_ms (at most n). */
static int
commits_seen(const char *group, int n, int timeout_ms)
{
	rd_kafka_topic_partition_list_t *last =
		snapshot ? rd_kafka_topic_partition_list_copy(snapshot) : NULL;
	int got = 0;
	for (uint64_t end = now_ms() + (uint64_t)timeout_ms; got < n && now_ms() < end;) {
		rd_kafka_topic_partition_list_t *now = h_group_committed(bootstrap, group);
		if (now && !same_offsets(now, last)) {
			got++;
			if (last)
				rd_kafka_topic_partition_list_destroy(last);
			last = now;
		} else {
			if (now)
				rd_kafka_topic_partition_list_destroy(now);
			usleep(100 * 1000);
		}
	}
	if (last)
		rd_kafka_topic_partition_list_destroy(last);
	return got;
}

/*
 * Waits until worker NAME of group reports n refused commits (on Kafka: until the group
 * committed n times since the snapshot): every cycle before the last of them delivered its
 * changelog records and wrote LMDB (a cycle commits only after both).
 */
static void
wait_refused(const char *name, const char *group, int n)
{
	int got = 0;
	if (h_kafka) {
		got = commits_seen(group, n, 30000);
		ok(got >= n, "%s: %d offset commits to undo (waited for %d)", name, got, n);
		return;
	}
	for (uint64_t end = now_ms() + 30000; (got = refused_commits(name)) < n && now_ms() < end;)
		usleep(20 * 1000);
	ok(got >= n, "%s: %d offset commits refused (waited for %d)", name, got, n);
}

/* Starts a worker on h_tmp/dir; extra (may be NULL) is one more option and its value. */
static pid_t
start_worker_with(const char *name, ag_app_setup_fn setup, const char *dir, const char *extra,
		  const char *value)
{
	char path[300];
	path_in(path, sizeof(path), dir);
	const char *const args[] = {
		"worker", "--broker", url,    "--datadir", path,  "--commit-interval",
		"0.3",    "-l",       "info", extra,       value, NULL};
	return spawn(name, setup, args);
}

static pid_t
start_worker(const char *name, ag_app_setup_fn setup, const char *dir)
{
	return start_worker_with(name, setup, dir, NULL, NULL);
}

static void
kill_worker(pid_t pid, const char *what)
{
	kill(pid, SIGKILL);
	int status;
	waitpid(pid, &status, 0);
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "%s killed with SIGKILL", what);
}

/* Produces value with key to topic[partition] with Kafka timestamp ts (ms). */
static void
produce_at(rd_kafka_t *p, const char *topic, int32_t partition, const char *key, const char *value,
	   int64_t ts)
{
	rd_kafka_vu_t vu[] = {
		{.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = topic},
		{.vtype = RD_KAFKA_VTYPE_PARTITION, .u.i32 = partition},
		{.vtype = RD_KAFKA_VTYPE_KEY, .u.mem = {(void *)key, strlen(key)}},
		{.vtype = RD_KAFKA_VTYPE_VALUE, .u.mem = {(void *)value, strlen(value)}},
		{.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY},
		{.vtype = RD_KAFKA_VTYPE_TIMESTAMP, .u.i64 = ts},
	};
	rd_kafka_error_t *e = rd_kafka_produceva(p, vu, sizeof(vu) / sizeof(vu[0]));
	if (e) {
		printf("# produce to %s: %s\n", topic, rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
}

/* Waits until the group committed every partition of topic up to its end. */
static int
wait_committed(const char *group, const char *topic, int partitions, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	int64_t committed[16], high[16];
	do {
		if (group_offsets(bootstrap, group, topic, partitions, committed, NULL, high) ==
		    0) {
			int done = 1;
			for (int p = 0; p < partitions; p++)
				done = done && committed[p] == high[p];
			if (done)
				return 0;
		}
		usleep(200 * 1000);
	} while (now_ms() < end);
	return -1;
}

/* Waits until the group committed topic[partition] up to its end. */
static int
wait_committed_part(const char *group, const char *topic, int partition, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	int64_t committed[16], high[16];
	do {
		if (group_offsets(bootstrap, group, topic, partition + 1, committed, NULL, high) ==
			    0 &&
		    committed[partition] == high[partition])
			return 0;
		usleep(200 * 1000);
	} while (now_ms() < end);
	return -1;
}

/* Reads a table of a worker's data dir: value of key in any partition, -ENOENT if none. */
struct lookup {
	const char *key;
	int found;
	int64_t value;
	int64_t offset;
};

static int
find_key(int32_t part, struct ag_bytes key, struct ag_bytes val, void *userdata)
{
	struct lookup *l = userdata;
	if (key.len != strlen(l->key) || memcmp(key.ptr, l->key, key.len) != 0)
		return 0;
	struct ag__tval tv;
	struct ag__val v;
	if (ag__tval_parse(val, &tv) == 0 && ag__val_decode(tv.payload, &v) == 0 &&
	    v.type == AG__VAL_I64) {
		l->found++;
		l->value = v.i64;
		l->offset = tv.offset;
	}
	return 0;
}

static struct ag__store *
open_store(const char *dir)
{
	char path[300], sub[320], err[512];
	path_in(path, sizeof(path), dir);
	snprintf(sub, sizeof(sub), "%s/tables", path);
	struct ag__store *s = NULL;
	if (ag__store_open(&s, sub, AG__STORE_RDONLY, err, sizeof(err)) < 0)
		printf("# %s\n", err);
	return s;
}

static int
store_value(struct ag__store *s, const char *table, const char *key, int64_t *value)
{
	struct lookup l = {.key = key};
	if (ag__store_iter(s, table, -1, find_key, &l) < 0 || l.found != 1)
		return l.found ? -EEXIST : -ENOENT;
	*value = l.value;
	return 0;
}

/* The newest changelog record of each key: value (i64) or a tombstone. */
struct latest {
	char key[64];
	size_t klen;
	int tomb;
	int64_t value;
};

static size_t
changelog_latest(const char *topic, int partitions, size_t expect, struct latest *out, size_t cap)
{
	int64_t committed[16], low[16], high[16], total = 0;
	if (group_offsets(bootstrap, "tables-test", topic, partitions, committed, low, high) == 0)
		for (int p = 0; p < partitions; p++)
			total += high[p] - low[p];
	struct coll c;
	coll_open(&c, bootstrap, topic, partitions);
	coll_wait(&c, (size_t)total > expect ? (size_t)total : expect, 30000);
	coll_poll(&c, 200);
	size_t n = 0;
	for (size_t i = 0; i < c.n; i++) {
		const struct msg *m = &c.m[i];
		size_t klen = m->key_len < sizeof(out->key) ? m->key_len : sizeof(out->key);
		size_t j = 0;
		while (j < n && (out[j].klen != klen || memcmp(out[j].key, m->key, klen) != 0))
			j++;
		if (j == n) {
			if (n == cap)
				continue;
			memcpy(out[n].key, m->key, klen);
			out[n].klen = klen;
			n++;
		}
		out[j].tomb = m->value == NULL;
		out[j].value = -1;
		struct ag__tval tv;
		struct ag__val v;
		if (m->value && ag__tval_parse((struct ag_bytes){m->value, m->len}, &tv) == 0 &&
		    ag__val_decode(tv.payload, &v) == 0)
			out[j].value = v.i64;
	}
	coll_close(&c);
	return n;
}

/* ---- 1. exactness ---- */

static size_t outputs(void);
static void check_exact(const char *when, const char *dir, const int64_t *count,
			const int64_t *sum);

static void
test_exact(void)
{
	int64_t count[X_KEYS] = {0}, sum[X_KEYS] = {0};
	rd_kafka_t *p = producer_new(bootstrap);
	static const char *const topics[] = {"x-in", "x-out", "tx-xcount-changelog", NULL};
	ok_int_eq(wait_topics(p, topics, 20000), 0, "1: the broker created the topics");
	for (int i = 0; i < X_EVENTS; i++) {
		int k = (int)((unsigned)i * 7919u % X_KEYS);
		char key[16], value[16];
		snprintf(key, sizeof(key), "k%02d", k);
		snprintf(value, sizeof(value), "%d", i % 5 + 1);
		count[k]++;
		sum[k] += i % 5 + 1;
		produce_text(p, "x-in", RD_KAFKA_PARTITION_UA, key, value);
	}
	producer_close(p, "1: the increments");

	/*
	 * Kill at about a third and two thirds of the outputs, each time after three commit
	 * cycles whose changelog records and LMDB writes completed but whose offset commits
	 * were refused: the next worker processes those cycles' events again, on state that
	 * holds them (in LMDB for the restart, in the changelog for the empty data dir).
	 */
	static const size_t kill_at[2] = {X_EVENTS / 3, 2 * X_EVENTS / 3};
	for (int round = 0; round < 2; round++) {
		const char *name = round ? "xa2" : "xa1";
		pid_t pid = start_worker(name, setup_x, "xa");
		struct coll out;
		coll_open(&out, bootstrap, "x-out", 1);
		size_t got = coll_wait(&out, kill_at[round] - X_EVENTS / 10, 60000);
		refuse_commits("tx");
		got = coll_wait(&out, kill_at[round], 60000);
		coll_close(&out);
		ok(got >= kill_at[round], "1: round %d: %zu outputs before the kill", round, got);
		wait_refused(name, "tx", 3);
		kill_worker(pid, round ? "the restarted worker" : "the worker");
		accept_commits("tx");
	}
	pid_t pid = start_worker("xb", setup_x, "xb");
	ok_int_eq(wait_committed("tx", "x-in", X_PARTS, 90000), 0,
		  "1: the worker on an empty data dir finishes the stream");
	stop_child(pid, "1: the last worker");
	check_log_clean("xb");

	check_exact("after two kills and a move to an empty data dir", "xb", count, sum);

	/*
	 * The extreme case: a worker in a consumer group without committed offsets (as if no
	 * commit had ever succeeded) on an empty data dir (rebuilding from the changelog)
	 * processes every event a second time.
	 */
	size_t before = outputs();
	pid = start_worker_with("xc", setup_x, "xc", "--kafka-config", "group.id=tx-replay");
	struct coll out;
	coll_open(&out, bootstrap, "x-out", 1);
	coll_wait(&out, before + X_EVENTS, 90000);
	coll_close(&out);
	ok_int_eq(wait_committed("tx-replay", "x-in", X_PARTS, 60000), 0,
		  "1: the worker processes the whole stream again");
	stop_child(pid, "1: the replaying worker");
	check_log_clean("xc");
	size_t after = outputs();
	ok(after >= before + X_EVENTS, "1: every event was processed again (%zu more outputs)",
	   after - before);
	check_exact("after every event was processed twice", "xc", count, sum);
}

static size_t
outputs(void)
{
	struct coll out;
	coll_open(&out, bootstrap, "x-out", 1);
	int64_t committed[1], high[1] = {0};
	group_offsets(bootstrap, "tables-test", "x-out", 1, committed, NULL, high);
	coll_wait(&out, (size_t)high[0], 30000);
	size_t n = out.n;
	coll_close(&out);
	return n;
}

static void
check_exact(const char *when, const char *dir, const int64_t *count, const int64_t *sum)
{
	size_t n_out = outputs();
	printf("# %s: %zu outputs for %d events\n", when, n_out, X_EVENTS);
	ok(n_out > X_EVENTS,
	   "1: %s: events were processed more than once (%zu outputs for %d events): the sink "
	   "is at-least-once",
	   when, n_out, X_EVENTS);
	struct ag__store *s = open_store(dir);
	int bad_count = 0, bad_sum = 0;
	for (int k = 0; k < X_KEYS; k++) {
		char key[16];
		snprintf(key, sizeof(key), "k%02d", k);
		int64_t c = -1, m = -1;
		if (!s || store_value(s, "xcount", key, &c) < 0 || c != count[k]) {
			if (bad_count++ < 3)
				printf("# %s: count %lld, expected %lld\n", key, (long long)c,
				       (long long)count[k]);
		}
		if (!s || store_value(s, "xsum", key, &m) < 0 || m != sum[k]) {
			if (bad_sum++ < 3)
				printf("# %s: sum %lld, expected %lld\n", key, (long long)m,
				       (long long)sum[k]);
		}
	}
	ag__store_close(s);
	ok_int_eq(bad_count, 0, "1: %s: every key's count in LMDB equals the input's, exactly",
		  when);
	ok_int_eq(bad_sum, 0, "1: %s: every key's sum in LMDB equals the input's, exactly", when);

	struct latest latest[X_KEYS + 4];
	size_t n = changelog_latest("tx-xcount-changelog", X_PARTS, X_KEYS, latest, X_KEYS + 4);
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		latest[i].key[latest[i].klen < 63 ? latest[i].klen : 63] = '\0';
		int k = atoi(latest[i].key + 1);
		bad += latest[i].tomb || k < 0 || k >= X_KEYS || latest[i].value != count[k];
	}
	ok(n == X_KEYS && bad == 0, "1: %s: the changelog's newest counts are exact too (%zu keys)",
	   when, n);
}

/* ---- 5. forwards processed again ---- */

/*
 * A group_by forwarder that processes its source again forwards copies with new offsets in
 * the repartition topic, so the table's per-key offsets cannot tell them from new events:
 * only the reader's forward dedupe (the faustc-src header against the highest source
 * position taken, restored from the tables' meta record) keeps the counts exact.
 * Every offset commit is refused while the first worker forwards and counts the whole
 * stream; it is killed once a commit after the last output was refused (everything is in
 * the changelog), and a worker on an empty data dir processes the whole source again.
 * Disabling the forward dedupe (agent.c, fwd_duplicate) fails the counts.
 */
static void
test_forwards(void)
{
	int64_t count[G_KEYS] = {0};
	refuse_commits("tg");
	rd_kafka_t *p = producer_new(bootstrap);
	for (int i = 0; i < G_EVENTS; i++) {
		int k = (int)((unsigned)i * 7919u % G_KEYS);
		char value[16];
		snprintf(value, sizeof(value), "g%d", k);
		count[k]++;
		produce_text(p, "g-in", i % 2, NULL, value);
	}
	producer_close(p, "5: the events");
	pid_t pid = start_worker("g1", setup_g, "g1");
	struct coll out;
	coll_open(&out, bootstrap, "g-out", 1);
	size_t got = coll_wait(&out, G_EVENTS, 60000);
	coll_close(&out);
	ok_int_eq(got, G_EVENTS, "5: the first worker counts every event once");
	/* Every count durable in the changelog (with the meta record after it), none committed. */
	int durable = 0;
	for (uint64_t end = now_ms() + 30000; !durable && now_ms() < end;) {
		struct latest latest[G_KEYS + 4];
		size_t n = changelog_latest("tg-gcount-changelog", 2, G_KEYS, latest, G_KEYS + 4);
		int exact = 0;
		for (size_t i = 0; i < n; i++) {
			int k = latest[i].klen == 2 && latest[i].key[0] == 'g'
					? latest[i].key[1] - '0'
					: -1;
			exact += k >= 0 && k < G_KEYS && !latest[i].tomb &&
				 latest[i].value == count[k];
		}
		durable = exact == G_KEYS;
		if (!durable)
			usleep(100 * 1000);
	}
	ok(durable, "5: every count is in the changelog");
	wait_refused("g1", "tg", 1);
	kill_worker(pid, "5: the first worker");
	accept_commits("tg");

	pid = start_worker("g2", setup_g, "g2");
	ok_int_eq(wait_committed("tg", "g-in", 2, 60000), 0,
		  "5: a worker on an empty data dir processes the source again and commits it");
	ok_int_eq(wait_committed("tg", "tg-G-k-repartition", 2, 60000), 0,
		  "5: and the repartition topic");
	stop_child(pid, "5: the second worker");
	check_log_clean("g2");

	char log[300];
	path_in(log, sizeof(log), "g2.log");
	char *text = slurp(log);
	const char *st = text ? strstr(text, "forward_duplicates=") : NULL;
	long dups = st ? strtol(st + strlen("forward_duplicates="), NULL, 10) : -1;
	free(text);
	ok(dups > 0, "5: the second worker dropped forwards it had already counted (%ld)", dups);

	struct ag__store *s = open_store("g2");
	int bad = 0;
	for (int k = 0; k < G_KEYS; k++) {
		char key[16];
		snprintf(key, sizeof(key), "g%d", k);
		int64_t c = -1;
		if (!s || store_value(s, "gcount", key, &c) < 0 || c != count[k]) {
			if (bad++ < 3)
				printf("# %s: count %lld, expected %lld\n", key, (long long)c,
				       (long long)count[k]);
		}
	}
	ag__store_close(s);
	ok_int_eq(bad, 0, "5: every key's count behind the group_by is exact after the replay");
}

/* ---- 2. windows, 3. TTL ---- */

static const char *const want_closed[] = {
	"wsum|a|0|10000|9",     "wsum|b|0|10000|2",      "wsum|a|10000|20000|20",
	"wsum|a|40000|50000|1", "wsum|a|50000|60000|1",  "whop|a|-5000|5000|1",
	"whop|a|0|10000|9",     "whop|b|0|10000|2",      "whop|a|5000|15000|28",
	"whop|b|5000|15000|2",  "whop|a|10000|20000|20", "whop|a|35000|45000|1",
	"whop|a|40000|50000|1", "whop|a|45000|55000|1",  "whop|a|50000|60000|1",
};

/* Checks the closes so far: exactly the first `upto` of the expected set, each once. */
static void
check_closed(const char *when, size_t n_expected)
{
	struct coll c;
	coll_open(&c, bootstrap, "w-closed", 1);
	coll_wait(&c, n_expected, 20000);
	coll_poll(&c, 1000);
	size_t missing = 0, extra = 0;
	int seen_count[AG__ARRAY_SIZE(want_closed)] = {0};
	for (size_t i = 0; i < c.n; i++) {
		size_t j = 0;
		while (j < AG__ARRAY_SIZE(want_closed) &&
		       (!c.m[i].value || strcmp(c.m[i].value, want_closed[j]) != 0))
			j++;
		if (j == AG__ARRAY_SIZE(want_closed)) {
			printf("#   unexpected close: %s\n", c.m[i].value ? c.m[i].value : "");
			extra++;
		} else if (seen_count[j]++) {
			printf("#   closed again: %s\n", want_closed[j]);
			extra++;
		}
	}
	for (size_t j = 0; j < AG__ARRAY_SIZE(want_closed); j++)
		missing += !seen_count[j];
	ok(c.n == n_expected && extra == 0 && missing == AG__ARRAY_SIZE(want_closed) - n_expected,
	   "2: %s: %zu window closes with their final values, none twice (got %zu)", when,
	   n_expected, c.n);
	coll_close(&c);
}

static char *
wait_output(const char *topic, size_t n)
{
	struct coll c;
	coll_open(&c, bootstrap, topic, 1);
	coll_wait(&c, n, 30000);
	char *v = c.n >= n && c.m[n - 1].value ? strdup(c.m[n - 1].value) : NULL;
	coll_close(&c);
	return v;
}

static void
test_windows(void)
{
	pid_t pid = start_worker("w1", setup_w, "w1");
	rd_kafka_t *p = producer_new(bootstrap);
	static const char *const topics[] = {"w-in", "w-closed", "tw-wsum-changelog", NULL};
	ok_int_eq(wait_topics(p, topics, 20000), 0, "2: the broker created the topics");
	/* time, key, value: a boundary, out of order, a close, a late event, a probe */
	produce_at(p, "w-in", 0, "a", "1", T0 + 1000);
	produce_at(p, "w-in", 0, "b", "2", T0 + 9999);
	produce_at(p, "w-in", 0, "a", "4", T0 + 10000);
	produce_at(p, "w-in", 0, "a", "8", T0 + 5000);
	produce_at(p, "w-in", 0, "a", "16", T0 + 12000);
	produce_at(p, "w-in", 0, "a", "32", T0 + 3000);
	produce_at(p, "w-in", 0, "a", "?", T0 + 13000);
	produce_text(p, "l-in", 0, "k", "x");
	produce_text(p, "l-in", 0, "k", "x");
	produce_text(p, "l-in", 0, "j", "x");
	producer_close(p, "2: the first window events");
	char *probe = wait_output("w-out", 1);
	ok_str_eq(probe,
		  "cur=20@10000 get=20 delta=9@0 at=0@20000 each=0:9,10000:20, keys=a=9,b=2, "
		  "late=1/2",
		  "2: reads: current, plain get, delta, at; every window of a; every key of "
		  "[0, 10 s); late writes counted");
	free(probe);
	check_closed("after a close by stream time", 5);

	/* TTL: k and j are seen, then k again after the TTL. */
	char *l = wait_output("l-out", 3);
	ok_str_eq(l, "j=1", "3: three counts before the TTL");
	free(l);
	sleep_ticking(2500);
	p = producer_new(bootstrap);
	produce_text(p, "l-in", 0, "k", "x");
	/* Stream time to 40 s: closes [10, 20) and the hopping windows to 25 s, expires up to 10 s */
	produce_at(p, "w-in", 0, "a", "1", T0 + 40000);
	produce_at(p, "w-in", 0, "a", "?", T0 + 40001);
	producer_close(p, "2: the second window events");
	l = wait_output("l-out", 4);
	ok_str_eq(l, "k=1", "3: a key not written for longer than its TTL starts again");
	free(l);
	probe = wait_output("w-out", 2);
	ok_str_eq(probe, "cur=1@40000 get=1 delta=0@30000 at=0@20000 each=40000:1, keys= late=1/2",
		  "2: expired windows are gone from reads");
	free(probe);
	check_closed("after stream time moved to 40 s", 9);
	sleep_ticking(1000);
	stop_child(pid, "2: the window worker");
	check_log_clean("w1");

	struct ag__store *s = open_store("w1");
	uint8_t buf[AG__TABLE_KEY_MAX];
	struct ag_bytes skey, val;
	ag__window_key(buf, T0, &AG_STR("a"), &skey);
	ok(s && ag__store_get(s, "wsum", 0, skey, &val) == -ENOENT,
	   "2: an expired window is deleted from LMDB");
	ag__window_key(buf, T0 + 40000, &AG_STR("a"), &skey);
	ok(s && ag__store_get(s, "wsum", 0, skey, &val) == 0, "2: an open window is in LMDB");
	int64_t v = -1;
	ok(s && store_value(s, "seen", "j", &v) == -ENOENT,
	   "3: the sweep deleted the expired key j from LMDB");
	ag__store_close(s);

	struct latest latest[32];
	size_t n = changelog_latest("tw-wsum-changelog", 2, 4, latest, 32);
	int tombs = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t start;
		struct ag_bytes key;
		if (ag__window_key_split((struct ag_bytes){latest[i].key, latest[i].klen}, &start,
					 &key) < 0)
			continue;
		tombs += latest[i].tomb && start <= T0 + 10000;
	}
	ok_int_eq(tombs, 3, "2: tombstones in the changelog for the 3 expired window keys");
	n = changelog_latest("tw-seen-changelog", 1, 2, latest, 32);
	int j_tomb = 0;
	for (size_t i = 0; i < n; i++)
		j_tomb += latest[i].klen == 1 && latest[i].key[0] == 'j' && latest[i].tomb;
	ok_int_eq(j_tomb, 1, "3: a tombstone in the changelog for the expired key");

	/*
	 * The same data dir: closes go on where they stopped. The closing event's offset is
	 * never committed: the worker is killed after the cycle that made the closes durable
	 * had its commit refused, and the next worker processes the event again.
	 */
	pid = start_worker("w2", setup_w, "w1");
	refuse_commits("tw");
	p = producer_new(bootstrap);
	produce_at(p, "w-in", 0, "a", "1", T0 + 52000);
	producer_close(p, "2: an event after the restart");
	check_closed("after a restart on the same data dir", 12);
	wait_refused("w2", "tw", 1);
	kill_worker(pid, "2: the restarted window worker");
	accept_commits("tw");
	pid = start_worker("w2b", setup_w, "w1");
	ok_int_eq(wait_committed_part("tw", "w-in", 0, 30000), 0,
		  "2: the next worker processes the closing event again and commits it");
	check_closed("after the closing event was processed again", 12);
	stop_child(pid, "2: the window worker after the kill");
	check_log_clean("w2b");

	/* An empty data dir: the window state comes back from the changelog. */
	pid = start_worker("w3", setup_w, "w3");
	p = producer_new(bootstrap);
	produce_at(p, "w-in", 0, "a", "1", T0 + 70000);
	producer_close(p, "2: an event for the worker on an empty data dir");
	check_closed("after a worker rebuilt the table from the changelog", 15);
	stop_child(pid, "2: the window worker on an empty data dir");
	check_log_clean("w3");
}

/* ---- 4. co-partitioning ---- */

static void
test_copartition(void)
{
	pid_t pid = start_worker("tc", setup_c, "tc");
	int status = wait_exit(pid, 30000);
	ok(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1,
	   "4: a table whose changelog has another partition count than its source stops the "
	   "worker at start-up (wait status %d)",
	   status);
	char log[300];
	path_in(log, sizeof(log), "tc.log");
	char *text = slurp(log);
	static const char *const needles[] = {"table t is not co-partitioned", "c-in has 3",
					      "tc-t-changelog exists with 2", NULL};
	ok(text && find_line(text, needles), "4: the error names the table, topics and counts");
	free(text);
}

/*
 * 6: records of one key in one restore batch. The batch is written sorted by key with only
 * each key's last record: a tombstone after a value must delete, a value after a
 * tombstone must stay, and the stored changelog offset must be the changelog's end. The
 * sort goes by the keys' first 8 bytes and then the rest: keys that share those 8 bytes,
 * and keys equal but for a trailing zero byte, must each keep their own last record.
 */
static void
test_restore_batch(void)
{
	static const struct {
		int32_t part;
		const char *key, *value; /* value NULL: a tombstone */
		size_t klen; /* 0: strlen(key) */
	} recs[] = {
		{0, "k1", "a", 0},  {0, "k2", NULL, 0},        {0, "user-0000001-x", "1", 0},
		{0, "k3", "c", 0},  {0, "abcdefgh", "p", 0},   {0, "user-0000001-y", "2", 0},
		{0, "k1", NULL, 0}, {0, "abcdefgh\0", "q", 9}, {0, "user-0000001-x", NULL, 0},
		{0, "k2", "b", 0},  {0, "abcdefgh", NULL, 0},  {0, "user-0000001-y", "3", 0},
		{0, "k3", "d", 0},  {0, "abcdefgh\0", "r", 9}, {0, "user-0000001-x", "4", 0},
		{1, "k4", "e", 0},  {1, "k4", NULL, 0},        {1, "k4", "f", 0},
		{1, "k5", "g", 0},  {1, "k5", NULL, 0},
	};
	rd_kafka_t *p = producer_new(bootstrap);
	for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++)
		h_produce(p, "tr-t-changelog", recs[i].part, recs[i].key,
			  recs[i].klen ? recs[i].klen : strlen(recs[i].key), recs[i].value,
			  recs[i].value ? strlen(recs[i].value) : 0, NULL);
	ok_int_eq(rd_kafka_flush(p, 30000), 0, "6: the changelog records are delivered");
	int64_t end[2] = {-1, -1};
	for (int32_t i = 0; i < 2; i++) {
		int64_t lo;
		rd_kafka_query_watermark_offsets(p, "tr-t-changelog", i, &lo, &end[i], 10000);
	}
	producer_close(p, "the changelog records");
	pid_t pid = start_worker("tr", setup_r, "tr");
	char log[300];
	path_in(log, sizeof(log), "tr.log");
	int restored = 0;
	for (int i = 0; i < 600 && restored < 2; i++) {
		sleep_ticking(100);
		char *text = slurp(log);
		restored = 0;
		for (const char *at = text; at && (at = strstr(at, "restored t[")); at++)
			restored++;
		free(text);
	}
	ok_int_eq(restored, 2, "6: both partitions of t restored from the changelog");
	stop_child(pid, "worker tr");
	struct ag__store *s = open_store("tr");
	static const struct {
		int32_t part;
		const char *key, *value;
		size_t klen;
	} want[] = {
		{0, "k1", NULL, 0},
		{0, "k2", "b", 0},
		{0, "k3", "d", 0},
		{0, "user-0000001-x", "4", 0},
		{0, "user-0000001-y", "3", 0},
		{0, "abcdefgh", NULL, 0},
		{0, "abcdefgh\0", "r", 9},
		{1, "k4", "f", 0},
		{1, "k5", NULL, 0},
	};
	size_t nwant = sizeof(want) / sizeof(want[0]);
	int right = 0;
	for (size_t i = 0; s && i < nwant; i++) {
		struct ag_bytes v;
		struct ag_bytes k = {want[i].key,
				     want[i].klen ? want[i].klen : strlen(want[i].key)};
		int rc = ag__store_get(s, "t", want[i].part, k, &v);
		int good = want[i].value ? rc == 0 && v.len == strlen(want[i].value) &&
						   memcmp(v.ptr, want[i].value, v.len) == 0
					 : rc == -ENOENT;
		if (!good)
			printf("#   %s: rc %d, %.*s\n", want[i].key, rc, rc == 0 ? (int)v.len : 0,
			       rc == 0 ? (const char *)v.ptr : "");
		right += good;
	}
	ok_int_eq(right, (int)nwant, "6: each key holds its last record (tombstones deleted)");
	int64_t off0 = -1, off1 = -1;
	if (s) {
		ag__store_get_offset(s, "t", 0, &off0);
		ag__store_get_offset(s, "t", 1, &off1);
	}
	ok(off0 == end[0] && off1 == end[1] && end[0] > 0,
	   "6: LMDB's changelog offsets are the changelog's ends (%lld %lld, ends %lld %lld)",
	   (long long)off0, (long long)off1, (long long)end[0], (long long)end[1]);
	ag__store_close(s);
}

int
main(void)
{
	if (h_tmp_init("tables") < 0)
		return 99;
	pid_t kafka_topics = 0;
	if (h_kafka) {
		/* `faustc broker` on the cluster: it creates the topics the apps read up front. */
		char url_file[300], dir[300];
		path_in(url_file, sizeof(url_file), "broker.url");
		path_in(dir, sizeof(dir), "broker-data");
		const char *const args[] = {"broker", "--addr-file", url_file, "--datadir",
					    dir,      "-l",          "warn",   NULL};
		kafka_topics = spawn("broker", setup_kafka, args);
		char *line = wait_line(url_file, 60000);
		ok(line != NULL, "the topics are created on Kafka at %s",
		   line ? line : "(nothing)");
		if (!line)
			return tap_done();
		snprintf(url, sizeof(url), "%s", line);
		free(line);
	} else {
		static const ag_app_setup_fn setups[] = {setup_broker, setup_x, setup_c,
							 setup_g,      setup_r, NULL};
		ok_int_eq(h_mock_start(&mock, "broker", setups, 1), 0,
			  "the mock cluster serves at %s", mock.url);
		if (!mock.pid)
			return tap_done();
		snprintf(url, sizeof(url), "%s", mock.url);
	}
	bootstrap = h_bootstrap(url);
	test_copartition();
	uint64_t t0 = now_ms();
	test_windows();
	printf("# windows and TTL: %.1f s\n", (double)(now_ms() - t0) / 1000.0);
	t0 = now_ms();
	test_exact();
	printf("# exactness: %.1f s\n", (double)(now_ms() - t0) / 1000.0);
	t0 = now_ms();
	test_forwards();
	printf("# forwards: %.1f s\n", (double)(now_ms() - t0) / 1000.0);
	t0 = now_ms();
	test_restore_batch();
	printf("# restore batches: %.1f s\n", (double)(now_ms() - t0) / 1000.0);
	if (h_kafka) {
		stop_child(kafka_topics, "faustc broker");
		if (snapshot)
			rd_kafka_topic_partition_list_destroy(snapshot);
	} else {
		int st = h_mock_stop(&mock);
		ok(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		   "the mock cluster exits with 0");
	}
	h_tmp_cleanup();
	return tap_done();
}
