/*
 * Stream operators end to end, with exact expected outputs. One `faustc broker` child
 * serves a worker child (app "ws") whose agents each exercise one operator:
 *   flt   filter: only even numbers pass; the dropped ones are committed too;
 *   gb    group_by a record field into ws-gb-country-repartition (4 partitions): keys,
 *         partitions (murmur2), per-key order, timestamps and headers carried over;
 *   cmp   filter, processor, group_by by a key function, then take: composed in order;
 *   tk    take(10, within 1 s): batches of 10, 10, then the 5 left after `within`;
 *   thr   through a user topic: the body sees that topic's events;
 *   old   through, with forwards already in the topic in the text form of earlier versions;
 *   ech   echo to two topics while the body goes on;
 *   conc  concurrency 4 with out-of-order finishing; the commit stops at the one event
 *         that never finishes;
 *   dbl / mute  ask: an answer, and a timeout when the agent never yields.
 * Then the worker is killed (SIGKILL) while group_by forwards, and a new one resumes the
 * repartitioned stream without losing an event.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker.h"

#include "harness.h"

#define FLT_N 200
#define GB_USERS 12
#define GB_PER_USER 25
#define GB_TS0 1700000000000ll
#define CMP_N 60
#define TK_N 25
#define THR_N 40
#define ECH_N 30
#define CONC_N 100
#define CONC_STUCK 10
#define KILL_N 300
#define MULTI_N 50
/* old: forwards in the text form of earlier versions; old2 is a duplicate of old1. */
#define OLD_N 5
static const char *const old_src[OLD_N] = {"0:1", "0:2:1700000000000", "0:2", "1:7", "0:3"};
#define MULTI_STUCK 20
/* Flow: 12 MiB over 8 source partitions, all re-keyed into one partition behind a slow body. */
#define WF_N 60000
#define WF_VALUE 200

static const char *const countries[] = {"NO", "SE", "DK", "FI", "IS"};

struct wd {
	struct ag_str user;
	struct ag_str country;
	int64_t n;
	uint64_t ag_present;
};
AG_RECORD(wd_type, wd, AG_FIELD(wd, user, AG_FIELD_STRING, 0),
	  AG_FIELD(wd, country, AG_FIELD_STRING, 0), AG_FIELD(wd, n, AG_FIELD_INT, 0));

/* ---- the agents (in the worker child) ---- */

static int yield_fmt(struct ag_stream *s, const struct ag_bytes *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
yield_fmt(struct ag_stream *s, const struct ag_bytes *key, const char *fmt, ...)
{
	char out[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out, sizeof(out), fmt, ap);
	va_end(ap);
	struct ag_bytes v = {out, strlen(out)};
	return ag_stream_yield(s, key && key->ptr ? key : NULL, &v);
}

static long
value_num(const struct ag_event *ev)
{
	struct ag_bytes v = ag_event_value(ev);
	char buf[32];
	size_t n = v.len < sizeof(buf) - 1 ? v.len : sizeof(buf) - 1;
	memcpy(buf, v.ptr ? v.ptr : "", n);
	buf[n] = 0;
	return strtol(buf, NULL, 10);
}

static int
keep_even(struct ag_event *ev, void *userdata)
{
	return value_num(ev) % 2 == 0;
}

/* Echoes every value it gets (flt, thr, ech). */
static int
agent_copy(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes k = ag_event_key(ev), v = ag_event_value(ev);
		if ((rc = yield_fmt(s, &k, "%.*s@%s", (int)v.len, (const char *)v.ptr,
				    ag_event_topic(ev))) < 0)
			return rc;
	}
	return rc == AG_EOF ? 0 : rc;
}

/* gb: "country|user|n|partition|timestamp|trace header", keyed by the new key. */
static int
agent_gb(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		const struct wd *w;
		struct ag_bytes k = ag_event_key(ev), trace = {"-", 1};
		if ((rc = ag_event_record(ev, (const void **)&w)) < 0)
			return rc;
		ag_event_header(ev, "trace", &trace);
		if ((rc = yield_fmt(s, &k, "%.*s|%s|%lld|%d|%lld|%.*s", (int)k.len,
				    (const char *)k.ptr, w->user.ptr, (long long)w->n,
				    (int)ag_event_partition(ev), (long long)ag_event_timestamp(ev),
				    (int)trace.len, (const char *)trace.ptr)) < 0)
			return rc;
	}
	return rc == AG_EOF ? 0 : rc;
}

/* cmp's operators: drop values starting with 'x', fail on "boom", upper-case the rest. */
static int
not_x(struct ag_event *ev, void *userdata)
{
	struct ag_bytes v = ag_event_value(ev);
	return !(v.len && ((const char *)v.ptr)[0] == 'x');
}

static int
upper(struct ag_event *ev, void *userdata)
{
	struct ag_bytes v = ag_event_value(ev);
	if (v.len == 4 && memcmp(v.ptr, "boom", 4) == 0)
		return -EINVAL;
	char buf[64];
	size_t n = v.len < sizeof(buf) ? v.len : sizeof(buf);
	for (size_t i = 0; i < n; i++) {
		char c = ((const char *)v.ptr)[i];
		buf[i] = c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
	}
	struct ag_bytes nv = {buf, n};
	return ag_event_set_value(ev, &nv);
}

static int
first_letter(struct ag_event *ev, struct ag_bytes *key, void *userdata)
{
	struct ag_bytes v = ag_event_value(ev);
	if (!v.len)
		return -EINVAL;
	*key = (struct ag_bytes){v.ptr, 1};
	return 0;
}

/* cmp and tk: one output per batch, "size:v1,v2,...". */
static int
agent_batches(struct ag_stream *s, void *userdata)
{
	size_t max = (size_t)(uintptr_t)userdata;
	struct ag_event **evs;
	size_t n;
	int rc;
	while ((rc = ag_stream_take(s, max, 1.0, &evs, &n)) == 0) {
		char out[1024];
		size_t len = (size_t)snprintf(out, sizeof(out), "%zu:", n);
		for (size_t i = 0; i < n && len < sizeof(out) - 64; i++) {
			struct ag_bytes k = ag_event_key(evs[i]), v = ag_event_value(evs[i]);
			len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%.*s%s%.*s",
						i ? "," : "", (int)k.len, (const char *)k.ptr,
						k.len ? "/" : "", (int)v.len, (const char *)v.ptr);
		}
		struct ag_bytes k = ag_event_key(evs[0]);
		if ((rc = yield_fmt(s, &k, "%s", out)) < 0)
			return rc;
	}
	return rc == AG_EOF ? 0 : rc;
}

/* conc: sleeps a little (event CONC_STUCK: for ever) and yields the value. */
static int
agent_conc(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		long n = value_num(ev);
		if ((rc = ag_sleep(n == CONC_STUCK ? 1e6 : (double)(n % 7) * 0.01)) < 0)
			return rc;
		if ((rc = yield_fmt(s, NULL, "%ld", n)) < 0)
			return rc;
	}
	return rc == AG_EOF ? 0 : rc;
}

/* m2: as agent_copy, but event MULTI_STUCK never finishes (and m2 takes no more). */
static int
agent_m2(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		if (ag_event_offset(ev) == MULTI_STUCK && (rc = ag_sleep(1e6)) < 0)
			return rc;
		struct ag_bytes v = ag_event_value(ev);
		if ((rc = yield_fmt(s, NULL, "m2:%.*s", (int)v.len, (const char *)v.ptr)) < 0)
			return rc;
	}
	return rc == AG_EOF ? 0 : rc;
}

/* dbl: yields twice the number; mute: never yields. */
static int
agent_dbl(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		if ((rc = yield_fmt(s, NULL, "%ld", value_num(ev) * 2)) < 0)
			return rc;
	}
	return rc == AG_EOF ? 0 : rc;
}

static int
agent_mute(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0)
		;
	return rc == AG_EOF ? 0 : rc;
}

/* A task: asks dbl and mute once the group has formed, reports to ask-out. */
static int
task_ask(struct ag_app *app, void *userdata)
{
	struct ag_agent *dbl = ag_app_find_agent(app, "dbl");
	struct ag_agent *mute = ag_app_find_agent(app, "mute");
	struct ag_topic *out = ag_app_find_topic(app, "ask-out");
	struct ag_bytes reply;
	char line[128];
	int rc = ag_agent_ask(dbl, NULL, &AG_STR("21"), 30.0, &reply);
	if (rc == 0)
		snprintf(line, sizeof(line), "dbl=%.*s", (int)reply.len, (const char *)reply.ptr);
	else
		snprintf(line, sizeof(line), "dbl-error=%s", ag_err_name(rc));
	TRY(ag_send(out, NULL, &(struct ag_bytes){line, strlen(line)}));
	rc = ag_agent_ask(mute, NULL, &AG_STR("1"), 1.0, &reply);
	snprintf(line, sizeof(line), "mute=%s", rc == 0 ? "answered" : ag_err_name(rc));
	return ag_send(out, NULL, &(struct ag_bytes){line, strlen(line)});
}

/* wf: every event to one key; the body is slower than the forwarder. */
static int
key_all(struct ag_event *ev, struct ag_bytes *key, void *userdata)
{
	*key = AG_STR("all");
	return 0;
}

/*
 * wf's body: slow without holding the loop up (a forwarder on the same loop could not run
 * ahead of a body that blocks it): 10 ms of ag_sleep per batch of at most 100 events.
 */
static int
agent_wf(struct ag_stream *s, void *userdata)
{
	struct ag_event **evs;
	size_t n;
	int rc;
	while ((rc = ag_stream_take(s, 100, 0, &evs, &n)) == 0) {
		if ((rc = ag_sleep(0.01)) < 0)
			return rc;
		for (size_t i = 0; i < n; i++) {
			char out[32];
			snprintf(out, sizeof(out), "%ld", value_num(evs[i]));
			struct ag_bytes v = {out, strlen(out)};
			if ((rc = ag_stream_yield(s, NULL, &v)) < 0)
				return rc;
		}
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
setup_ws(struct ag_app *app)
{
	struct ag_topic *t, *o, *mid, *c1, *c2, *gb_in, *rep;
	struct ag_agent *a;
	TRY(ag_app_set_id(app, "ws"));

	TRY(topic_decl(app, "flt-in", 2, &t));
	TRY(topic_decl(app, "flt-out", 1, &o));
	TRY(ag_app_agent(app, "flt", t, agent_copy, NULL, &a));
	TRY(ag_agent_filter(a, keep_even, NULL));
	TRY(ag_agent_sink_topic(a, o));

	struct ag_topic_opts jo = {
		.partitions = 3, .value_codec = AG_CODEC_JSON, .value_type = &wd_type};
	TRY(ag_app_topic(app, "gb-in", &jo, &gb_in));
	TRY(topic_decl(app, "gb-out", 1, &o));
	TRY(ag_app_agent(app, "gb", gb_in, agent_gb, NULL, &a));
	TRY(ag_agent_group_by_field(a, "country", 4, &rep));
	TRY(ag_agent_sink_topic(a, o));

	TRY(topic_decl(app, "cmp-in", 2, &t));
	TRY(topic_decl(app, "cmp-out", 1, &o));
	TRY(ag_app_agent(app, "cmp", t, agent_batches, (void *)(uintptr_t)5, &a));
	TRY(ag_agent_filter(a, not_x, NULL));
	TRY(ag_agent_processor(a, upper, NULL));
	TRY(ag_agent_group_by(a, "letter", first_letter, NULL, 0, NULL));
	TRY(ag_agent_sink_topic(a, o));

	TRY(topic_decl(app, "tk-in", 1, &t));
	TRY(topic_decl(app, "tk-out", 1, &o));
	TRY(ag_app_agent(app, "tk", t, agent_batches, (void *)(uintptr_t)10, &a));
	TRY(ag_agent_sink_topic(a, o));

	TRY(topic_decl(app, "thr-in", 2, &t));
	TRY(topic_decl(app, "thr-mid", 3, &mid));
	TRY(topic_decl(app, "thr-out", 1, &o));
	TRY(ag_app_agent(app, "thr", t, agent_copy, NULL, &a));
	TRY(ag_agent_through(a, mid));
	TRY(ag_agent_sink_topic(a, o));

	TRY(topic_decl(app, "old-in", 1, &t));
	TRY(topic_decl(app, "old-mid", 1, &mid));
	TRY(topic_decl(app, "old-out", 1, &o));
	TRY(ag_app_agent(app, "old", t, agent_copy, NULL, &a));
	TRY(ag_agent_through(a, mid));
	TRY(ag_agent_sink_topic(a, o));

	TRY(topic_decl(app, "ech-in", 1, &t));
	TRY(topic_decl(app, "ech-copy1", 1, &c1));
	TRY(topic_decl(app, "ech-copy2", 2, &c2));
	TRY(topic_decl(app, "ech-out", 1, &o));
	TRY(ag_app_agent(app, "ech", t, agent_copy, NULL, &a));
	TRY(ag_agent_echo(a, c1));
	TRY(ag_agent_echo(a, c2));
	TRY(ag_agent_sink_topic(a, o));

	TRY(topic_decl(app, "conc-in", 1, &t));
	TRY(topic_decl(app, "conc-out", 1, &o));
	TRY(ag_app_agent(app, "conc", t, agent_conc, NULL, &a));
	TRY(ag_agent_concurrency(a, 4));
	TRY(ag_agent_sink_topic(a, o));

	TRY(topic_decl(app, "multi-in", 1, &t));
	TRY(topic_decl(app, "multi-out", 1, &o));
	TRY(ag_app_agent(app, "m1", t, agent_copy, NULL, &a));
	TRY(ag_agent_sink_topic(a, o));
	TRY(ag_app_agent(app, "m2", t, agent_m2, NULL, &a));
	TRY(ag_agent_sink_topic(a, o));

	TRY(topic_decl(app, "ask-out", 1, NULL));
	TRY(ag_app_agent(app, "dbl", NULL, agent_dbl, NULL, NULL));
	TRY(ag_app_agent(app, "mute", NULL, agent_mute, NULL, NULL));
	TRY(ag_app_timer(app, "asker", 0.5, AG_TIMER_ONCE, task_ask, NULL));
	return 0;
}

static int
setup_wf(struct ag_app *app)
{
	struct ag_topic *in, *out;
	struct ag_agent *a;
	TRY(ag_app_set_id(app, "wf"));
	TRY(topic_decl(app, "wf-in", 8, &in));
	TRY(topic_decl(app, "wf-out", 1, &out));
	TRY(ag_app_agent(app, "wf", in, agent_wf, NULL, &a));
	TRY(ag_agent_group_by(a, "all", key_all, NULL, 1, NULL));
	TRY(ag_agent_sink_topic(a, out));
	return 0;
}

/* The shared broker creates both apps' topics. */
static int
setup_broker(struct ag_app *app)
{
	TRY(setup_ws(app));
	TRY(topic_decl(app, "wf-in", 8, NULL));
	TRY(topic_decl(app, "wf-out", 1, NULL));
	return 0;
}

/* ---- checks (in this process) ---- */

static char *url;
static const char *bootstrap;

static void
produce_hdr(rd_kafka_t *rk, const char *topic, int32_t partition, const char *key,
	    const char *value, int64_t ts, const char *name, const char *hval)
{
	rd_kafka_headers_t *h = rd_kafka_headers_new(1);
	rd_kafka_header_add(h, name, -1, hval, -1);
	rd_kafka_vu_t vu[] = {
		{.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = topic},
		{.vtype = RD_KAFKA_VTYPE_PARTITION, .u.i32 = partition},
		{.vtype = RD_KAFKA_VTYPE_KEY, .u.mem = {(void *)key, key ? strlen(key) : 0}},
		{.vtype = RD_KAFKA_VTYPE_VALUE, .u.mem = {(void *)value, strlen(value)}},
		{.vtype = RD_KAFKA_VTYPE_TIMESTAMP, .u.i64 = ts},
		{.vtype = RD_KAFKA_VTYPE_HEADERS, .u.headers = h},
		{.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY},
	};
	rd_kafka_error_t *e = rd_kafka_produceva(rk, vu, sizeof(vu) / sizeof(vu[0]));
	rd_kafka_resp_err_t err = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
	if (e) {
		rd_kafka_headers_destroy(h);
		rd_kafka_error_destroy(e);
	}
	if (err) {
		fprintf(stderr, "produce: %s\n", rd_kafka_err2str(err));
		exit(99);
	}
}

static void
produce_gb(rd_kafka_t *p, int from, int to)
{
	/* User u's events go to one source partition, in n order, with country by n. */
	for (int n = from; n < to; n++) {
		int u = n % GB_USERS;
		char user[16], value[128], trace[16];
		snprintf(user, sizeof(user), "u%d", u);
		snprintf(value, sizeof(value), "{\"user\":\"%s\",\"country\":\"%s\",\"n\":%d}",
			 user, countries[(n / GB_USERS) % 5], n);
		snprintf(trace, sizeof(trace), "t%d", n);
		produce_hdr(p, "gb-in", u % 3, user, value, GB_TS0 + n, "trace", trace);
	}
}

static void
produce_inputs(void)
{
	rd_kafka_t *p = producer_new(bootstrap);
	char v[32], k[16];
	for (int i = 0; i < FLT_N; i++) {
		snprintf(v, sizeof(v), "%d", i);
		produce_text(p, "flt-in", i % 2, NULL, v);
	}
	produce_gb(p, 0, GB_USERS * GB_PER_USER);
	for (int i = 0; i < CMP_N; i++) {
		static const char *const words[] = {"apple", "xray",   "banana",   "avocado",
						    "boom",  "cherry", "blueberry"};
		snprintf(v, sizeof(v), "%s%d", words[i % 7], i);
		if (i % 7 == 4)
			snprintf(v, sizeof(v), "boom");
		produce_text(p, "cmp-in", i % 2, NULL, v);
	}
	for (int i = 0; i < TK_N; i++) {
		snprintf(v, sizeof(v), "%d", i);
		produce_text(p, "tk-in", 0, NULL, v);
	}
	for (int i = 0; i < THR_N; i++) {
		snprintf(v, sizeof(v), "%d", i);
		snprintf(k, sizeof(k), "k%d", i % 5);
		produce_text(p, "thr-in", i % 2, k, v);
	}
	for (int i = 0; i < ECH_N; i++) {
		snprintf(v, sizeof(v), "%d", i);
		snprintf(k, sizeof(k), "e%d", i % 3);
		produce_hdr(p, "ech-in", 0, k, v, GB_TS0 + i, "trace", "echo");
	}
	for (int i = 0; i < CONC_N; i++) {
		snprintf(v, sizeof(v), "%d", i);
		produce_text(p, "conc-in", 0, NULL, v);
	}
	for (int i = 0; i < MULTI_N; i++) {
		snprintf(v, sizeof(v), "%d", i);
		produce_text(p, "multi-in", 0, NULL, v);
	}
	/*
	 * Forwards as an earlier version wrote them (faustc-src in text), already in old's
	 * through topic as after an upgrade: the third repeats the second's source position.
	 */
	for (int i = 0; i < OLD_N; i++) {
		snprintf(v, sizeof(v), "old%d", i);
		produce_hdr(p, "old-mid", 0, NULL, v, GB_TS0 + i, "faustc-src", old_src[i]);
	}
	producer_close(p, "the inputs");
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
check_filter(struct coll *c)
{
	int seen[FLT_N] = {0}, bad = 0, order = 1;
	long last[2] = {-1, -1};
	for (size_t i = 0; i < c->n; i++) {
		long n = strtol(c->m[i].value, NULL, 10);
		if (n < 0 || n >= FLT_N || n % 2 || !strstr(c->m[i].value, "@flt-in")) {
			bad++;
			continue;
		}
		seen[n]++;
		if (n <= last[n % 4 / 2])
			order = 0;
		last[n % 4 / 2] = n;
	}
	int once = 1;
	for (int n = 0; n < FLT_N; n += 2)
		once &= seen[n] == 1;
	ok(c->n == FLT_N / 2 && bad == 0 && once,
	   "filter: exactly the %d even values pass, once each (%zu outputs, %d wrong)", FLT_N / 2,
	   c->n, bad);
	ok(order, "filter: each partition's values stay in order");
}

static void
check_group_by(struct coll *c, int total)
{
	int seen[KILL_N + GB_USERS * GB_PER_USER] = {0}, bad = 0, misplaced = 0, order = 1;
	int ts_ok = 1, hdr_ok = 1;
	long last[GB_USERS][5]; /* per user and country: one source partition, one key */
	for (int u = 0; u < GB_USERS; u++)
		for (int k = 0; k < 5; k++)
			last[u][k] = -1;
	for (size_t i = 0; i < c->n; i++) {
		char country[8], user[16], trace[16];
		long n, part;
		long long ts;
		const struct msg *m = &c->m[i];
		if (sscanf(m->value, "%7[^|]|%15[^|]|%ld|%ld|%lld|%15s", country, user, &n, &part,
			   &ts, trace) != 6 ||
		    n < 0 || n >= total) {
			bad++;
			continue;
		}
		seen[n]++;
		const char *expect = countries[(n / GB_USERS) % 5];
		if (strcmp(country, expect) != 0 || !m->key || strcmp(m->key, expect) != 0)
			bad++;
		if (part != ag__murmur2_partition(expect, strlen(expect), 4))
			misplaced++;
		if (ts != GB_TS0 + n)
			ts_ok = 0;
		char want[16];
		snprintf(want, sizeof(want), "t%ld", n);
		if (strcmp(trace, want) != 0)
			hdr_ok = 0;
		int u = atoi(user + 1), k = (int)((n / GB_USERS) % 5);
		if (u >= 0 && u < GB_USERS) {
			/* A replay after a crash may repeat a tail; it never reorders. */
			if (n <= last[u][k] && seen[n] == 1)
				order = 0;
			if (n > last[u][k])
				last[u][k] = n;
		}
	}
	int missing = 0, dup = 0;
	for (int n = 0; n < total; n++) {
		missing += seen[n] == 0;
		dup += seen[n] > 1;
	}
	ok(missing == 0 && bad == 0,
	   "group_by: all %d events, keyed by country (%d missing, %d wrong)", total, missing, bad);
	ok(misplaced == 0, "group_by: every country on its murmur2 partition of 4 (%d misplaced)",
	   misplaced);
	ok(order, "group_by: per key, each source partition's events keep their order");
	ok(ts_ok && hdr_ok, "group_by: timestamps and headers are carried over");
	printf("# group_by: %d events seen more than once\n", dup);
}

static void
check_compose(struct coll *c)
{
	/* Expected: every value not starting with x and not "boom", upper-cased. */
	char *want[CMP_N], *got[CMP_N * 2];
	size_t nwant = 0, ngot = 0;
	int sizes_ok = 1, keys_ok = 1;
	static const char *const words[] = {"apple", "xray",   "banana",   "avocado",
					    "boom",  "cherry", "blueberry"};
	for (int i = 0; i < CMP_N; i++) {
		if (i % 7 == 1 || i % 7 == 4)
			continue;
		char v[32];
		snprintf(v, sizeof(v), "%s%d", words[i % 7], i);
		for (char *p = v; *p; p++)
			*p = *p >= 'a' && *p <= 'z' ? (char)(*p - 32) : *p;
		want[nwant++] = strdup(v);
	}
	for (size_t i = 0; i < c->n; i++) {
		char *dup = strdup(c->m[i].value), *save = NULL;
		char *colon = strchr(dup, ':');
		size_t size = strtoul(dup, NULL, 10), count = 0;
		for (char *tok = colon ? strtok_r(colon + 1, ",", &save) : NULL; tok;
		     tok = strtok_r(NULL, ",", &save)) {
			count++;
			char *slash = strchr(tok, '/');
			if (!slash || slash != tok + 1 || tok[0] != slash[1])
				keys_ok = 0;
			if (ngot < CMP_N * 2)
				got[ngot++] = strdup(slash ? slash + 1 : tok);
		}
		if (size != count || size == 0 || size > 5)
			sizes_ok = 0;
		free(dup);
	}
	qsort(want, nwant, sizeof(*want), cmp_str);
	qsort(got, ngot, sizeof(*got), cmp_str);
	int same = ngot == nwant;
	for (size_t i = 0; same && i < nwant; i++)
		same = strcmp(want[i], got[i]) == 0;
	ok(same, "filter+processor+group_by+take: exactly the %zu kept values, upper-cased (%zu)",
	   nwant, ngot);
	ok(sizes_ok && keys_ok, "take: batches of 1..5 events; each keyed by its first letter");
	for (size_t i = 0; i < nwant; i++)
		free(want[i]);
	for (size_t i = 0; i < ngot; i++)
		free(got[i]);
}

static void
check_take(struct coll *c)
{
	static const char *const expect[] = {
		"10:0,1,2,3,4,5,6,7,8,9",
		"10:10,11,12,13,14,15,16,17,18,19",
		"5:20,21,22,23,24",
	};
	int same = c->n == 3;
	for (size_t i = 0; same && i < 3; i++)
		same = strcmp(c->m[i].value, expect[i]) == 0;
	ok(same, "take(10, 1 s): batches 10, 10 and the last 5 after `within` (%zu batches%s%s)",
	   c->n, c->n ? ", first " : "", c->n ? c->m[0].value : "");
}

/*
 * A through topic's reader takes the faustc-src text form of earlier versions: the
 * duplicate is dropped, everything else reaches the body once, in order.
 */
static void
check_old_forwards(struct coll *out)
{
	static const char *const want[] = {"old0@old-mid", "old1@old-mid", "old3@old-mid",
					   "old4@old-mid"};
	size_t n = sizeof(want) / sizeof(want[0]);
	int same = out->n == n;
	for (size_t i = 0; same && i < n; i++)
		same = out->m[i].value && strcmp(out->m[i].value, want[i]) == 0;
	ok(same, "through: forwards in the old text form are read, their duplicate dropped (%zu)",
	   out->n);
}

static void
check_through(struct coll *mid, struct coll *out)
{
	int seen[THR_N] = {0}, bad = 0, keyed = 1;
	for (size_t i = 0; i < out->n; i++) {
		long n = strtol(out->m[i].value, NULL, 10);
		if (n < 0 || n >= THR_N || !strstr(out->m[i].value, "@thr-mid")) {
			bad++;
			continue;
		}
		seen[n]++;
		char k[16];
		snprintf(k, sizeof(k), "k%ld", n % 5);
		if (!out->m[i].key || strcmp(out->m[i].key, k) != 0)
			keyed = 0;
	}
	int once = 1;
	for (int n = 0; n < THR_N; n++)
		once &= seen[n] == 1;
	ok(out->n == THR_N && bad == 0 && once && keyed,
	   "through: the body iterates thr-mid and sees every value once, key kept (%zu)", out->n);
	int placed = mid->n == THR_N;
	for (size_t i = 0; i < mid->n; i++) {
		const struct msg *m = &mid->m[i];
		if (!m->key || m->partition != ag__murmur2_partition(m->key, strlen(m->key), 3))
			placed = 0;
	}
	ok(placed, "through: thr-mid holds each event once, on its key's partition (%zu)", mid->n);
}

static void
check_echo(struct coll *c1, struct coll *c2, struct coll *out)
{
	int in_order = c1->n == ECH_N, hdrs = 1;
	for (size_t i = 0; i < c1->n; i++) {
		char v[32], k[32];
		snprintf(v, sizeof(v), "%zu", i);
		snprintf(k, sizeof(k), "e%zu", i % 3);
		const char *h = msg_header(&c1->m[i], "trace");
		if (strcmp(c1->m[i].value, v) != 0 || !c1->m[i].key || strcmp(c1->m[i].key, k) != 0)
			in_order = 0;
		if (!h || strcmp(h, "echo") != 0)
			hdrs = 0;
	}
	ok(in_order && hdrs, "echo: ech-copy1 holds every event in order, key and headers kept");
	ok(c2->n == ECH_N, "echo: ech-copy2 holds every event (%zu)", c2->n);
	ok(out->n == ECH_N, "echo: the body still gets every event (%zu)", out->n);
}

static void
check_concurrency(struct coll *c)
{
	int seen[CONC_N] = {0}, inversions = 0;
	long prev = -1;
	for (size_t i = 0; i < c->n; i++) {
		long n = strtol(c->m[i].value, NULL, 10);
		if (n >= 0 && n < CONC_N)
			seen[n]++;
		inversions += n < prev;
		prev = n;
	}
	int all = 1;
	for (int n = 0; n < CONC_N; n++)
		all &= seen[n] == (n != CONC_STUCK);
	ok(all, "concurrency 4: every event but the stuck one finished once (%zu)", c->n);
	ok(inversions > 0, "concurrency 4: events finished out of order (%d inversions)",
	   inversions);
}

static void
check_committed(const char *topic, int partitions, const int64_t *expect, const char *what)
{
	int64_t committed[8], high[8];
	int rc = group_offsets(bootstrap, "ws", topic, partitions, committed, NULL, high);
	int same = rc == 0;
	char line[256] = "";
	size_t len = 0;
	for (int p = 0; p < partitions && rc == 0; p++) {
		int64_t want = expect ? expect[p] : high[p];
		/* A partition that never had a message has nothing to commit. */
		same &= committed[p] == want || (want == 0 && committed[p] < 0);
		len += (size_t)snprintf(line + len, sizeof(line) - len, " [%d] %lld/%lld", p,
					(long long)committed[p], (long long)want);
	}
	ok(same, "%s: committed offsets%s", what, line);
}

/*
 * Kafka: a repartition topic's records below the committed offset are deleted (as Kafka
 * Streams does), so each partition that was committed to starts above 0.
 */
static void
check_purged(const char *topic, int partitions, const char *what)
{
	int64_t committed[8], low[8], high[8];
	int rc = group_offsets(bootstrap, "ws", topic, partitions, committed, low, high);
	int purged = rc == 0;
	char line[256] = "";
	size_t len = 0;
	for (int p = 0; p < partitions && rc == 0; p++) {
		purged &= committed[p] <= 0 || (low[p] > 0 && low[p] <= committed[p]);
		len += (size_t)snprintf(line + len, sizeof(line) - len, " [%d] %lld..%lld/%lld", p,
					(long long)low[p], (long long)committed[p],
					(long long)high[p]);
	}
	ok(purged, "%s: first offset..committed/end%s", what, line);
}

static void
check_multi(struct coll *c)
{
	int m1[MULTI_N] = {0}, m2[MULTI_N] = {0}, bad = 0;
	for (size_t i = 0; i < c->n; i++) {
		long n;
		if (sscanf(c->m[i].value, "m2:%ld", &n) == 1 && n >= 0 && n < MULTI_N)
			m2[n]++;
		else if ((n = strtol(c->m[i].value, NULL, 10)) >= 0 && n < MULTI_N &&
			 strstr(c->m[i].value, "@multi-in"))
			m1[n]++;
		else
			bad++;
	}
	int all1 = 1, all2 = 1;
	for (int n = 0; n < MULTI_N; n++) {
		all1 &= m1[n] == 1;
		all2 &= m2[n] == (n < MULTI_STUCK);
	}
	ok(all1 && all2 && bad == 0,
	   "two agents on one topic: m1 gets every event once, m2 those before its stuck one");
}

static void
check_ask(struct coll *c)
{
	int answered = 0, timed_out = 0;
	for (size_t i = 0; i < c->n; i++) {
		answered |= strcmp(c->m[i].value, "dbl=42") == 0;
		timed_out |= strcmp(c->m[i].value, "mute=ETIMEDOUT") == 0;
	}
	ok(answered, "ask: dbl answers 21 with 42");
	ok(timed_out, "ask: an agent that never yields makes the ask time out");
	if (!answered || !timed_out) {
		printf("# ask-out holds %zu:", c->n);
		for (size_t i = 0; i < c->n; i++)
			printf(" %s", c->m[i].value);
		printf("\n");
	}
}

static pid_t
spawn_worker(const char *name)
{
	char dir[300];
	path_in(dir, sizeof(dir), "ws-data");
	const char *const args[] = {
		"worker", "--broker", url,    "--datadir", dir, "--commit-interval",
		"0.3",    "-l",       "warn", NULL};
	return spawn(name, setup_ws, args);
}

static void
test_operators(void)
{
	produce_inputs();
	pid_t w = spawn_worker("ws");
	struct coll flt, gb, cmp, tk, mid, thr, c1, c2, ech, conc, ask, multi, old;
	coll_open(&flt, bootstrap, "flt-out", 1);
	coll_open(&gb, bootstrap, "gb-out", 1);
	coll_open(&cmp, bootstrap, "cmp-out", 1);
	coll_open(&tk, bootstrap, "tk-out", 1);
	coll_open(&mid, bootstrap, "thr-mid", 3);
	coll_open(&thr, bootstrap, "thr-out", 1);
	coll_open(&c1, bootstrap, "ech-copy1", 1);
	coll_open(&c2, bootstrap, "ech-copy2", 2);
	coll_open(&ech, bootstrap, "ech-out", 1);
	coll_open(&conc, bootstrap, "conc-out", 1);
	coll_open(&ask, bootstrap, "ask-out", 1);
	coll_open(&multi, bootstrap, "multi-out", 1);
	coll_open(&old, bootstrap, "old-out", 1);
	uint64_t t0 = now_ms();
	coll_wait(&flt, FLT_N / 2, 30000);
	coll_wait(&gb, GB_USERS * GB_PER_USER, 30000);
	coll_wait(&tk, 3, 20000);
	coll_wait(&thr, THR_N, 20000);
	coll_wait(&ech, ECH_N, 20000);
	coll_wait(&conc, CONC_N - 1, 20000);
	coll_wait(&ask, 2, 40000); /* dbl's ask gives up after 30 s */
	coll_wait(&multi, MULTI_N + MULTI_STUCK, 20000);
	coll_wait(&old, OLD_N - 1, 20000);
	sleep_ticking(1500); /* batches still in `within`, extra outputs, several commits */
	printf("# outputs after %.1f s\n", (double)(now_ms() - t0) / 1000.0);
	coll_poll(&flt, 0);
	coll_poll(&gb, 0);
	coll_poll(&cmp, 0);
	coll_poll(&tk, 0);
	coll_poll(&mid, 0);
	coll_poll(&thr, 0);
	coll_poll(&c1, 0);
	coll_poll(&c2, 0);
	coll_poll(&ech, 0);
	coll_poll(&conc, 0);
	coll_poll(&ask, 0);
	coll_poll(&multi, 0);
	coll_poll(&old, 0);
	/* The stuck event holds conc-in's commit while the worker runs. */
	int64_t stuck = CONC_STUCK;
	check_committed("conc-in", 1, &stuck, "concurrency: the commit waits for the stuck event");
	int64_t multi_pos = MULTI_STUCK;
	check_committed("multi-in", 1, &multi_pos,
			"two agents on one topic: the commit waits for the slower one");
	stop_child(w, "the worker");
	check_log_clean("ws");

	check_filter(&flt);
	check_group_by(&gb, GB_USERS * GB_PER_USER);
	check_compose(&cmp);
	check_take(&tk);
	check_through(&mid, &thr);
	check_old_forwards(&old);
	check_echo(&c1, &c2, &ech);
	check_concurrency(&conc);
	check_ask(&ask);
	check_multi(&multi);
	check_committed("flt-in", 2, NULL, "filter: dropped events are committed");
	check_committed("gb-in", 3, NULL, "group_by: the source is committed once forwarded");
	check_committed("ws-gb-country-repartition", 4, NULL,
			"group_by: the repartition topic is committed");
	check_committed("tk-in", 1, NULL, "take: every batch acked");
	check_committed("conc-in", 1, &stuck, "concurrency: never past the unfinished event");

	char log[300];
	path_in(log, sizeof(log), "ws.log");
	char *text = slurp(log);
	static const char *const failure[] = {"agent cmp (processor) failed on cmp-in[0]@2",
					      "EINVAL", "skipped", NULL};
	ok(text && find_line(text, failure), "an operator's failure is logged with the event");
	free(text);
	coll_close(&flt);
	coll_close(&cmp);
	coll_close(&tk);
	coll_close(&mid);
	coll_close(&thr);
	coll_close(&c1);
	coll_close(&c2);
	coll_close(&ech);
	coll_close(&conc);
	coll_close(&ask);
	coll_close(&multi);
	coll_close(&old);

	/* A worker killed while group_by forwards; a new one resumes without loss. */
	int base = GB_USERS * GB_PER_USER;
	coll_close(&gb);
	w = spawn_worker("ws-kill1");
	coll_open(&gb, bootstrap, "gb-out", 1);
	rd_kafka_t *p = producer_new(bootstrap);
	produce_gb(p, base, base + KILL_N / 2);
	producer_close(p, "group_by inputs before the kill");
	coll_wait(&gb, (size_t)base + 20, 30000);
	kill(w, SIGKILL);
	waitpid(w, NULL, 0);
	p = producer_new(bootstrap);
	produce_gb(p, base + KILL_N / 2, base + KILL_N);
	producer_close(p, "group_by inputs while no worker runs");
	coll_close(&gb);
	w = spawn_worker("ws-kill2");
	coll_open(&gb, bootstrap, "gb-out", 1);
	coll_wait(&gb, (size_t)base + KILL_N, 40000);
	sleep_ticking(1000);
	coll_poll(&gb, 0);
	stop_child(w, "the worker after the kill");
	check_group_by(&gb, base + KILL_N);
	check_committed("ws-gb-country-repartition", 4, NULL,
			"group_by after the kill: the repartition topic is committed");
	if (h_kafka)
		check_purged("ws-gb-country-repartition", 4,
			     "group_by on Kafka: consumed repartition records are deleted");
	coll_close(&gb);
}

/*
 * A forwarder far faster than its body must wait for the body instead of pushing the
 * repartition partition past what the embedded broker keeps (~5 MiB): then nothing is lost.
 */
static void
test_flow(void)
{
	rd_kafka_t *p = producer_new(bootstrap);
	char v[WF_VALUE + 1];
	memset(v, 'x', WF_VALUE);
	v[WF_VALUE] = 0;
	for (int i = 0; i < WF_N; i++) {
		int n = snprintf(v, sizeof(v), "%d", i);
		v[n] = ' ';
		produce(p, "wf-in", i % 8, NULL, v, WF_VALUE);
	}
	producer_close(p, "12 MiB for the flow test");
	char dir[300];
	path_in(dir, sizeof(dir), "wf-data");
	const char *const args[] = {"worker", "--broker", url,    "--datadir",
				    dir,      "-l",       "info", NULL};
	pid_t w = spawn("wf", setup_wf, args);
	struct coll out;
	coll_open(&out, bootstrap, "wf-out", 1);
	uint64_t t0 = now_ms();
	coll_wait(&out, WF_N, 90000);
	printf("# flow: %zu outputs after %.1f s\n", out.n, (double)(now_ms() - t0) / 1000.0);
	stop_child(w, "the flow worker");
	static char seen[WF_N];
	size_t once = 0, wrong = 0;
	for (size_t i = 0; i < out.n; i++) {
		long n = strtol(out.m[i].value, NULL, 10);
		if (n < 0 || n >= WF_N)
			wrong++;
		else
			once += seen[n]++ == 0;
	}
	ok(once == WF_N && wrong == 0,
	   "flow: all %d events through one repartition partition (%zu)", WF_N, once);
	char log[300];
	path_in(log, sizeof(log), "wf.log");
	char *text = slurp(log);
	const char *stats = text ? strstr(text, "forward_waits=") : NULL;
	long waits = stats ? strtol(stats + strlen("forward_waits="), NULL, 10) : -1;
	if (h_kafka) /* 12 MiB is far below a real cluster's budget (256 MiB, flow.c) */
		ok(waits == 0, "flow: on Kafka the forwarder never waits for 12 MiB (%ld times)",
		   waits);
	else
		ok(waits > 0, "flow: the forwarder waited for the body (%ld times)", waits);
	ok(text && !strstr(text, "out of range"), "flow: no offset was reset");
	free(text);
	coll_close(&out);
}

int
main(void)
{
	if (h_tmp_init("streams") < 0)
		return 99;
	char url_file[300], dir[300];
	path_in(url_file, sizeof(url_file), "broker.url");
	path_in(dir, sizeof(dir), "broker-data");
	const char *const broker_args[] = {"broker", "--addr-file", url_file, "--datadir",
					   dir,      "-l",          "warn",   NULL};
	pid_t broker = spawn("broker", setup_broker, broker_args);
	url = wait_line(url_file, 20000);
	ok(url != NULL, "faustc broker serves at %s", url ? url : "(nothing)");
	if (url) {
		bootstrap = h_bootstrap(url);
		test_operators();
		test_flow();
	}
	kill(broker, SIGTERM);
	wait_exit(broker, 10000);
	free(url);
	h_tmp_cleanup();
	return tap_done();
}
