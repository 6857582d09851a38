/*
 * Bad input end to end (docs/records.md, "Bad input"). Apps are declared with the public
 * API and run as `worker` by ag_app_main in forked children; this process produces their
 * inputs and reads their outputs with plain librdkafka clients (harness.h).
 *
 *   1. App "bi" on the worker's embedded broker: topic withdrawals carries a record type
 *      (JSON) and requires keys; agent track dead-letters bad input and sums amounts per
 *      user in a table; topic plain (JSON, no type) feeds count_plain with the default
 *      policy (skip). Valid events interleave with every kind of bad input. Checked
 *      exactly: one output per valid event, in order per user; the dead-letter topic holds
 *      exactly the bad events as they came, with the headers saying why; the table totals
 *      in LMDB after the stop; the per-reason counts the worker logs at exit.
 *   2. App "bs": an agent with policy STOP. The worker exits by itself with status 1 on
 *      the bad event, names it, and neither processes nor commits anything after it. It
 *      runs on a `faustc broker` child: the output and the group's offsets must outlive
 *      the worker.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "internal.h"
#include "store.h"

#include "harness.h"

#define USERS 20
#define VALID 400
#define PARTS 4
/*
 * The too-large events: 1.5 MiB, over the default max_message_bytes (1 MiB) and over
 * librdkafka's default producer limit (message.max.bytes, 1,000,000), which the worker must
 * not apply when it dead-letters them (the test's producer raises it). Not 10 MiB: the mock
 * broker keeps only about 5 MiB per partition and would drop the partition's other records.
 */
#define LARGE_VALUE (1536 * 1024)

/* ---- the apps (their agents run in the worker children) ---- */

struct withdrawal {
	struct ag_str user;
	struct ag_str country;
	double amount;
	struct ag_str date;
	uint64_t ag_present;
};
AG_RECORD(withdrawal_type, withdrawal, AG_FIELD(withdrawal, user, AG_FIELD_STRING, 0),
	  AG_FIELD(withdrawal, country, AG_FIELD_STRING, 0),
	  AG_FIELD(withdrawal, amount, AG_FIELD_FLOAT, 0),
	  AG_FIELD(withdrawal, date, AG_FIELD_STRING, AG_FIELD_OPTIONAL));

/* track: adds the amount to the user's total and yields "user@partition:offset". */
static int
agent_track(struct ag_stream *s, void *userdata)
{
	struct ag_table *totals = userdata;
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		const struct withdrawal *w;
		if ((rc = ag_event_record(ev, (const void **)&w)) < 0)
			return rc;
		struct ag_bytes user = {w->user.ptr, w->user.len};
		if ((rc = ag_table_add_f64(totals, &user, w->amount, NULL)) < 0)
			return rc;
		char out[128];
		int n = snprintf(out, sizeof(out), "%s@%d:%lld", w->user.ptr,
				 (int)ag_event_partition(ev), (long long)ag_event_offset(ev));
		struct ag_bytes v = {out, (size_t)n};
		if ((rc = ag_stream_yield(s, &user, &v)) < 0)
			return rc;
	}
	return rc == AG_EOF ? 0 : rc;
}

/* count_plain and guard: yield the value as it came. */
static int
agent_copy(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes v = ag_event_value(ev);
		if ((rc = ag_stream_yield(s, NULL, &v)) < 0)
			return rc;
	}
	return rc == AG_EOF ? 0 : rc;
}

static int
setup_bi(struct ag_app *app)
{
	struct ag_topic *withdrawals, *out, *plain, *plain_out;
	struct ag_table *totals;
	struct ag_agent *track, *count;
	TRY(ag_app_set_id(app, "bi"));
	struct ag_topic_opts wo = {.partitions = PARTS,
				   .key_codec = AG_CODEC_STRING,
				   .value_codec = AG_CODEC_JSON,
				   .value_type = &withdrawal_type,
				   .key_required = 1};
	TRY(ag_app_topic(app, "withdrawals", &wo, &withdrawals));
	TRY(ag_app_topic(app, "bi-out", &(struct ag_topic_opts){.partitions = 1}, &out));
	struct ag_topic_opts po = {.partitions = 2, .value_codec = AG_CODEC_JSON};
	TRY(ag_app_topic(app, "plain", &po, &plain));
	TRY(ag_app_topic(app, "plain-out", &(struct ag_topic_opts){.partitions = 1}, &plain_out));
	TRY(ag_app_table(app, "user_to_total", withdrawals, NULL, &totals));
	TRY(ag_app_agent(app, "track", withdrawals, agent_track, totals, &track));
	TRY(ag_agent_on_bad_input(track, AG_BAD_INPUT_DEAD_LETTER));
	TRY(ag_agent_sink_topic(track, out));
	TRY(ag_app_agent(app, "count_plain", plain, agent_copy, NULL, &count));
	TRY(ag_agent_sink_topic(count, plain_out));
	return 0;
}

static int
setup_bs(struct ag_app *app)
{
	struct ag_topic *in, *out;
	struct ag_agent *guard;
	TRY(ag_app_set_id(app, "bs"));
	struct ag_topic_opts io = {.partitions = 1, .value_codec = AG_CODEC_JSON};
	TRY(ag_app_topic(app, "bs-in", &io, &in));
	TRY(ag_app_topic(app, "bs-out", &(struct ag_topic_opts){.partitions = 1}, &out));
	TRY(ag_app_agent(app, "guard", in, agent_copy, NULL, &guard));
	TRY(ag_agent_on_bad_input(guard, AG_BAD_INPUT_STOP));
	TRY(ag_agent_sink_topic(guard, out));
	return 0;
}

/* ---- what the test sends ---- */

enum { VALID_EVENT = -1 };

struct sent {
	int reason; /* VALID_EVENT or an enum ag__bad */
	char *key; /* NULL: no key */
	char *value; /* NULL: a null value */
	size_t len;
	char user[8]; /* valid withdrawals */
	double amount;
	int32_t partition; /* from the delivery report */
	int64_t offset;
	int delivered;
};

static struct sent *sent;
static size_t nsent, capsent;

static void
on_delivered(const rd_kafka_message_t *m)
{
	size_t i = (size_t)(uintptr_t)m->_private;
	if (i == 0 || i > nsent)
		return;
	sent[i - 1].partition = m->partition;
	sent[i - 1].offset = m->offset;
	sent[i - 1].delivered = 1;
}

static char *
dup_bytes(const void *p, size_t len)
{
	char *s = malloc(len + 1);
	if (!s)
		abort();
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

/* Records and produces one event; value NULL sends a null value. */
static struct sent *
send_event(rd_kafka_t *p, const char *topic, int reason, const char *key, const void *value,
	   size_t len)
{
	if (nsent == capsent) {
		capsent = capsent ? capsent * 2 : 512;
		sent = realloc(sent, capsent * sizeof(*sent));
		if (!sent)
			abort();
	}
	struct sent *e = &sent[nsent++];
	*e = (struct sent){.reason = reason,
			   .key = key ? dup_bytes(key, strlen(key)) : NULL,
			   .value = value ? dup_bytes(value, len) : NULL,
			   .len = value ? len : 0,
			   .partition = -1,
			   .offset = -1};
	h_produce(p, topic, RD_KAFKA_PARTITION_UA, key, key ? strlen(key) : 0, value, len,
		  (void *)(uintptr_t)nsent);
	return e;
}

static uint64_t
fnv1a(const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3u;
	return h;
}

/* A valid withdrawal in one of five shapes other producers write. */
static void
send_valid(rd_kafka_t *p, int i)
{
	char user[8], value[256];
	snprintf(user, sizeof(user), "u%d", i % USERS);
	double amount = (double)((i * 37) % 1000) / 8.0; /* multiples of 0.125: exact sums */
	switch (i % 5) {
	case 0:
		snprintf(value, sizeof(value),
			 "{\"user\":\"%s\",\"country\":\"DE\",\"amount\":%.3f,"
			 "\"date\":\"2024-01-%02d\"}",
			 user, amount, 1 + i % 28);
		break;
	case 1: /* the optional date missing, fields in another order */
		snprintf(value, sizeof(value),
			 "{\"amount\":%.3f,\"country\":\"FR\",\"user\":\"%s\"}", amount, user);
		break;
	case 2: /* unknown fields */
		snprintf(value, sizeof(value),
			 "{\"user\":\"%s\",\"note\":{\"a\":[1,2]},\"country\":\"IT\","
			 "\"amount\":%.3f,\"tags\":[\"x\"]}",
			 user, amount);
		break;
	case 3: /* Faust's namespace member */
		snprintf(value, sizeof(value),
			 "{\"__faust\":{\"ns\":\"x\"},\"user\":\"%s\",\"country\":\"ES\","
			 "\"amount\":%.3f}",
			 user, amount);
		break;
	default: /* null is missing */
		snprintf(value, sizeof(value),
			 "{\"user\":\"%s\",\"country\":\"PT\",\"amount\":%.3f,\"date\":null}", user,
			 amount);
		break;
	}
	struct sent *e = send_event(p, "withdrawals", VALID_EVENT, user, value, strlen(value));
	memcpy(e->user, user, sizeof(user));
	e->amount = amount;
}

#define NBAD_KINDS 10

/* Bad withdrawal number k of a round (NBAD_KINDS kinds); round 1 varies the details. */
static void
send_bad(rd_kafka_t *p, int k, int round)
{
	char key[8];
	snprintf(key, sizeof(key), "u%d", (k * 7 + round * 3) % USERS);
	switch (k) {
	case 0:
		send_event(p, "withdrawals", AG__BAD_DECODE, key, "not json at all", 15);
		break;
	case 1: {
		static const char v[] = "{\"user\":\"u1\",\"country\":\"FR\",\"amount\":";
		send_event(p, "withdrawals", AG__BAD_DECODE, key, v, strlen(v));
		break;
	}
	case 2:
		send_event(p, "withdrawals", AG__BAD_DECODE, key, "[1,2,3]", 7);
		break;
	case 3:
		send_event(p, "withdrawals", AG__BAD_DECODE, key, "\"a string\"", 10);
		break;
	case 4: {
		static const char v[] = "{\"user\":\"u2\",\"country\":\"FR\",\"amount\":\"12.5\"}";
		send_event(p, "withdrawals", AG__BAD_TYPE, key, v, strlen(v));
		break;
	}
	case 5: {
		static const char v[] = "{\"user\":42,\"country\":\"FR\",\"amount\":1.5}";
		send_event(p, "withdrawals", AG__BAD_TYPE, key, v, strlen(v));
		break;
	}
	case 6: {
		static const char v[] = "{\"user\":\"u4\",\"country\":\"FR\",\"date\":\"x\"}";
		send_event(p, "withdrawals", AG__BAD_MISSING, key, v, strlen(v));
		break;
	}
	case 7: /* round 0: an empty value; round 1: a null one */
		send_event(p, "withdrawals", AG__BAD_EMPTY, key, round ? NULL : "", 0);
		break;
	case 8: {
		static const char v[] = "{\"user\":\"u9\",\"country\":\"NL\",\"amount\":3.0}";
		send_event(p, "withdrawals", AG__BAD_NULL_KEY, NULL, v, strlen(v));
		break;
	}
	default: {
		/* A valid withdrawal, only too large: the size is checked first. */
		char *v = malloc(LARGE_VALUE);
		if (!v)
			abort();
		int n = snprintf(v, LARGE_VALUE, "{\"user\":\"%s\",\"amount\":1.0,\"country\":\"",
				 key);
		memset(v + n, 'a' + round, LARGE_VALUE - (size_t)n - 2);
		memcpy(v + LARGE_VALUE - 2, "\"}", 2);
		send_event(p, "withdrawals", AG__BAD_TOO_LARGE, key, v, LARGE_VALUE);
		free(v);
		break;
	}
	}
}

static const char *const plain_valid[] = {"{\"n\":1}", "42",   "\"text\"",
					  "[1,2,3]",   "true", "{\"a\":\"\\u00e9\"}"};
#define NPLAIN (sizeof(plain_valid) / sizeof(plain_valid[0]))

static void
produce_bi(rd_kafka_t *p, int bad_counts[AG__BAD_N], int plain_bad[AG__BAD_N])
{
	int nbad = 0;
	for (int i = 0; i < VALID; i++) {
		send_valid(p, i);
		/* 20 bad events, one after every 20 valid ones: two rounds of every kind. */
		if (i % 20 == 10) {
			int k = nbad % NBAD_KINDS, round = nbad / NBAD_KINDS;
			send_bad(p, k, round);
			bad_counts[sent[nsent - 1].reason]++;
			nbad++;
		}
		if (i % 60 == 30 && (size_t)(i / 60) < NPLAIN)
			send_event(p, "plain", VALID_EVENT, NULL, plain_valid[i / 60],
				   strlen(plain_valid[i / 60]));
	}
	send_event(p, "plain", AG__BAD_DECODE, NULL, "{\"n\":", 5);
	send_event(p, "plain", VALID_EVENT, NULL, "{\"after\":\"bad\"}", 15);
	send_event(p, "plain", AG__BAD_DECODE, NULL, "nope", 4);
	send_event(p, "plain", AG__BAD_EMPTY, NULL, "", 0);
	plain_bad[AG__BAD_DECODE] += 2;
	plain_bad[AG__BAD_EMPTY] += 1;
}

/* ---- checks of scenario 1 ---- */

static int
is_withdrawal(const struct sent *e)
{
	/* Plain events have no key and the bad one without a key is a null_key withdrawal. */
	return e->key || e->reason == AG__BAD_NULL_KEY;
}

static int
is_plain(size_t i)
{
	return !is_withdrawal(&sent[i]);
}

static void
check_outputs(const struct coll *out)
{
	/* "user@partition:offset": each valid withdrawal once, in offset order per user. */
	int64_t last[USERS];
	int32_t part[USERS];
	for (int u = 0; u < USERS; u++) {
		last[u] = -1;
		part[u] = -1;
	}
	size_t nvalid = 0, matched = 0, bad = 0;
	char *seen = calloc(nsent, 1);
	for (size_t i = 0; i < nsent; i++)
		nvalid += sent[i].reason == VALID_EVENT && is_withdrawal(&sent[i]);
	for (size_t j = 0; j < out->n; j++) {
		int u = -1, p = -1;
		long long off = -1;
		const char *v = out->m[j].value ? out->m[j].value : "";
		size_t hit = nsent;
		if (sscanf(v, "u%d@%d:%lld", &u, &p, &off) == 3 && u >= 0 && u < USERS) {
			for (size_t i = 0; i < nsent && hit == nsent; i++) {
				const struct sent *e = &sent[i];
				if (e->reason == VALID_EVENT && is_withdrawal(e) &&
				    e->partition == p && e->offset == off && atoi(e->user + 1) == u)
					hit = i;
			}
		}
		if (hit == nsent || seen[hit] || off <= last[u] || (part[u] >= 0 && part[u] != p) ||
		    !out->m[j].key || strcmp(out->m[j].key, sent[hit].user) != 0) {
			if (bad++ < 5)
				printf("# unexpected output %zu: \"%s\"\n", j, v);
			continue;
		}
		seen[hit] = 1;
		last[u] = off;
		part[u] = p;
		matched++;
	}
	free(seen);
	ok_int_eq(nvalid, VALID, "1: %d valid withdrawals were sent", VALID);
	ok_int_eq(out->n, nvalid, "1: bi-out holds one output per valid withdrawal");
	ok_int_eq(matched, nvalid, "1: each names a valid withdrawal's user, partition and offset");
	ok_int_eq(bad, 0, "1: none twice, none unknown, offsets increasing per user");
}

static void
check_dead_letters(const struct coll *dl, const int bad_counts[AG__BAD_N])
{
	size_t expect = 0, matched = 0, wrong = 0;
	for (int r = 0; r < AG__BAD_N; r++)
		expect += (size_t)bad_counts[r];
	char *seen = calloc(nsent, 1);
	for (size_t j = 0; j < dl->n; j++) {
		const struct msg *m = &dl->m[j];
		const char *hp = msg_header(m, "faustc-partition");
		const char *ho = msg_header(m, "faustc-offset");
		const char *reason = msg_header(m, "faustc-reason");
		const char *error = msg_header(m, "faustc-error");
		const char *topic = msg_header(m, "faustc-topic");
		size_t hit = nsent;
		for (size_t i = 0; hp && ho && i < nsent && hit == nsent; i++) {
			const struct sent *e = &sent[i];
			char num[32];
			snprintf(num, sizeof(num), "%lld", (long long)e->offset);
			if (e->reason != VALID_EVENT && is_withdrawal(e) &&
			    atoi(hp) == e->partition && strcmp(ho, num) == 0)
				hit = i;
		}
		const char *why = NULL;
		if (hit == nsent)
			why = "no bad withdrawal at faustc-partition/faustc-offset";
		else if (seen[hit])
			why = "dead-lettered twice";
		else if (m->partition != sent[hit].partition)
			why = "not on the partition it came from";
		else if (!reason || strcmp(reason, ag__bad_name((enum ag__bad)sent[hit].reason)))
			why = "faustc-reason";
		else if (!error || !*error)
			why = "faustc-error empty";
		else if (!topic || strcmp(topic, "withdrawals") != 0)
			why = "faustc-topic";
		else if (!sent[hit].key != !m->key ||
			 (m->key && strcmp(m->key, sent[hit].key) != 0))
			why = "key";
		else if (m->len != sent[hit].len ||
			 fnv1a(m->value ? m->value : "", m->len) !=
				 fnv1a(sent[hit].value ? sent[hit].value : "", sent[hit].len))
			why = "value bytes";
		if (why) {
			if (wrong++ < 8)
				printf("# dead letter %d@%lld: %s (reason %s, offset %s, %zu "
				       "bytes)\n",
				       (int)m->partition, (long long)m->offset, why,
				       reason ? reason : "-", ho ? ho : "-", m->len);
			continue;
		}
		seen[hit] = 1;
		matched++;
		if (sent[hit].len == LARGE_VALUE && matched < 40)
			printf("# %s: %zu bytes, checksum %016llx as sent\n", reason, m->len,
			       (unsigned long long)fnv1a(m->value, m->len));
		if (sent[hit].reason == AG__BAD_EMPTY)
			printf("# empty: value %s as sent (%s)\n", m->value ? "empty" : "null",
			       sent[hit].value ? "empty" : "null");
	}
	free(seen);
	ok_int_eq(dl->n, expect, "1: bi-track-dead-letter holds one message per bad withdrawal");
	ok_int_eq(matched, expect,
		  "1: each with its key, value bytes and partition as it came, and the headers "
		  "faustc-reason/-error/-topic/-partition/-offset");
	ok_int_eq(wrong, 0, "1: no dead letter is wrong");
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void
check_plain(const struct coll *out)
{
	const char *expect[32], *got[64];
	size_t ne = 0, ng = 0;
	for (size_t i = 0; i < nsent && ne < 32; i++) {
		if (is_plain(i) && sent[i].reason == VALID_EVENT)
			expect[ne++] = sent[i].value;
	}
	for (size_t j = 0; j < out->n && ng < 64; j++)
		got[ng++] = out->m[j].value ? out->m[j].value : "(null)";
	qsort(expect, ne, sizeof(*expect), cmp_str);
	qsort(got, ng, sizeof(*got), cmp_str);
	int same = ne == ng;
	for (size_t i = 0; same && i < ne; i++)
		same = strcmp(expect[i], got[i]) == 0;
	ok_int_eq(out->n, ne, "1: plain-out holds %zu values", ne);
	ok(same, "1: exactly the valid plain values");
}

struct totals {
	double sum[USERS];
	int n[USERS];
	int unknown, not_f64;
};

static int
total_of(int32_t part, struct ag_bytes key, struct ag_bytes val, void *userdata)
{
	struct totals *t = userdata;
	char user[16];
	int u = -1;
	snprintf(user, sizeof(user), "%.*s", (int)key.len, (const char *)key.ptr);
	struct ag__val v;
	struct ag__tval tv; /* the stored envelope: source offset, then the msgpack value */
	if (sscanf(user, "u%d", &u) != 1 || u < 0 || u >= USERS) {
		t->unknown++;
		return 0;
	}
	if (ag__tval_parse(val, &tv) < 0 || ag__val_decode(tv.payload, &v) < 0 ||
	    v.type != AG__VAL_F64) {
		t->not_f64++;
		return 0;
	}
	t->sum[u] = v.f64;
	t->n[u]++;
	return 0;
}

static void
check_table(const char *datadir)
{
	char dir[400], err[512] = "";
	snprintf(dir, sizeof(dir), "%s/tables", datadir);
	struct ag__store *store = NULL;
	int rc = ag__store_open(&store, dir, AG__STORE_RDONLY, err, sizeof(err));
	ok_int_eq(rc, 0, "1: the table store opens read-only (%s)", err);
	if (rc < 0)
		return;
	struct totals t = {{0}, {0}, 0, 0};
	for (int32_t p = 0; p < PARTS; p++) {
		rc = ag__store_iter(store, "user_to_total", p, total_of, &t);
		ok_int_eq(rc, 0, "1: user_to_total[%d] reads", (int)p);
	}
	ag__store_close(store);
	double expect[USERS] = {0};
	for (size_t i = 0; i < nsent; i++) {
		if (sent[i].reason == VALID_EVENT && is_withdrawal(&sent[i]))
			expect[atoi(sent[i].user + 1)] += sent[i].amount;
	}
	int wrong = 0;
	for (int u = 0; u < USERS; u++) {
		if (t.n[u] != 1 || t.sum[u] != expect[u]) {
			if (wrong++ < 5)
				printf("# u%d: %d keys, total %.3f, expected %.3f\n", u, t.n[u],
				       t.sum[u], expect[u]);
		}
	}
	ok(t.unknown == 0 && t.not_f64 == 0, "1: the table holds only users with double values");
	ok_int_eq(wrong, 0, "1: every user's total in LMDB is exactly the sum of valid amounts");
}

static void
summary_of(char *buf, size_t cap, const char *topic, const int counts[AG__BAD_N])
{
	size_t n = (size_t)snprintf(buf, cap, "bad input on %s:", topic);
	for (int r = 0; r < AG__BAD_N && n < cap; r++) {
		if (counts[r])
			n += (size_t)snprintf(buf + n, cap - n, " %s=%d",
					      ag__bad_name((enum ag__bad)r), counts[r]);
	}
}

/* The summary line ends right after the counts: no reason more. */
static int
has_summary(const char *text, const char *summary)
{
	for (const char *hit = text; (hit = strstr(hit, summary)) != NULL; hit++) {
		char next = hit[strlen(summary)];
		if (next == '\n' || next == '\0')
			return 1;
	}
	return 0;
}

static void
check_log(const char *name, const int bad_counts[AG__BAD_N], const int plain_bad[AG__BAD_N])
{
	char path[300], summary[256];
	snprintf(path, sizeof(path), "%s/%s.log", h_tmp, name);
	char *text = slurp(path);
	summary_of(summary, sizeof(summary), "withdrawals", bad_counts);
	ok(text && has_summary(text, summary), "1: the worker logs \"%s\" at exit", summary);
	summary_of(summary, sizeof(summary), "plain", plain_bad);
	ok(text && has_summary(text, summary), "1: the worker logs \"%s\" at exit", summary);
	size_t named = 0;
	const char *example = NULL;
	for (size_t i = 0; text && i < nsent; i++) {
		if (sent[i].reason == VALID_EVENT)
			continue;
		char where[128], reason[32];
		snprintf(where, sizeof(where), "%s[%d]@%lld ",
			 is_withdrawal(&sent[i]) ? "withdrawals" : "plain", (int)sent[i].partition,
			 (long long)sent[i].offset);
		snprintf(reason, sizeof(reason), "(%s)",
			 ag__bad_name((enum ag__bad)sent[i].reason));
		const char *const needles[] = {"WARN", "bad input on", where, reason, NULL};
		const char *line = find_line(text, needles);
		if (line) {
			named++;
			example = example ? example : line;
		}
	}
	ok(named > 0, "1: %zu bad events are logged with topic[partition]@offset and reason",
	   named);
	if (example)
		printf("#   %.*s\n", (int)strcspn(example, "\n"), example);
	free(text);
}

static void
test_dead_letters(void)
{
	static const char *const topics[] = {"withdrawals",
					     "bi-out",
					     "plain",
					     "plain-out",
					     "bi-track-dead-letter",
					     "bi-user_to_total-changelog",
					     NULL};
	char dir[300], addr[400];
	path_in(dir, sizeof(dir), "bi-data");
	snprintf(addr, sizeof(addr), "%s/broker.addr", dir);
	const char *const args[] = {"worker", "--datadir", dir,    "--commit-interval",
				    "0.3",    "-l",        "warn", NULL};
	uint64_t t0 = now_ms();
	pid_t pid = spawn("bi", setup_bi, args);
	char *bootstrap = wait_line(addr, 20000);
	ok(bootstrap != NULL, "1: the worker hosts the embedded broker at %s",
	   bootstrap ? bootstrap : "(nothing)");
	if (!bootstrap) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return;
	}
	int bad_counts[AG__BAD_N] = {0}, plain_bad[AG__BAD_N] = {0};
	static const char *const big[] = {"message.max.bytes", "16777216", NULL};
	rd_kafka_t *p = h_producer_new(bootstrap, big);
	ok_int_eq(wait_topics(p, topics, 20000), 0, "1: the worker created its topics");
	ok_int_eq(h_topic_exists(p, "bi-count_plain-dead-letter"), 0,
		  "1: count_plain (policy skip) has no dead-letter topic");
	h_delivered = on_delivered;
	produce_bi(p, bad_counts, plain_bad);
	producer_close(p, "inputs");
	h_delivered = NULL;
	size_t undelivered = 0;
	for (size_t i = 0; i < nsent; i++)
		undelivered += !sent[i].delivered;
	ok_int_eq(undelivered, 0, "1: every input has its partition and offset");

	size_t nbad = 0;
	for (int r = 0; r < AG__BAD_N; r++)
		nbad += (size_t)bad_counts[r];
	struct coll out, dl, pout;
	coll_open(&out, bootstrap, "bi-out", 1);
	coll_open(&dl, bootstrap, "bi-track-dead-letter", PARTS);
	coll_open(&pout, bootstrap, "plain-out", 1);
	coll_wait(&out, VALID, 30000);
	coll_wait(&dl, nbad, 10000);
	coll_wait(&pout, NPLAIN + 1, 10000);
	printf("# outputs after %.1f s\n", (double)(now_ms() - t0) / 1000.0);
	sleep_ticking(1000); /* more than 3 commit intervals: anything extra shows */
	coll_poll(&out, 0);
	coll_poll(&dl, 0);
	coll_poll(&pout, 0);
	check_outputs(&out);
	check_dead_letters(&dl, bad_counts);
	check_plain(&pout);
	coll_close(&out);
	coll_close(&dl);
	coll_close(&pout);
	free(bootstrap);
	stop_child(pid, "the bi worker");
	check_table(dir);
	check_log("bi", bad_counts, plain_bad);
	check_log_clean("bi");
}

/* ---- scenario 2: policy STOP ---- */

static void
test_stop(void)
{
	char url_file[300], dir[300], wdir[300], log[300];
	path_in(url_file, sizeof(url_file), "broker.url");
	path_in(dir, sizeof(dir), "broker-data");
	path_in(wdir, sizeof(wdir), "bs-data");
	const char *const broker_args[] = {"broker", "--addr-file", url_file, "--datadir",
					   dir,      "-l",          "warn",   NULL};
	pid_t broker = spawn("broker", setup_bs, broker_args);
	char *url = wait_line(url_file, 20000);
	ok(url != NULL, "2: faustc broker serves at %s", url ? url : "(nothing)");
	if (!url) {
		kill(broker, SIGKILL);
		waitpid(broker, NULL, 0);
		return;
	}
	const char *bootstrap = h_bootstrap(url);
	static const char *const topics[] = {"bs-in", "bs-out", NULL};
	rd_kafka_t *p = producer_new(bootstrap);
	ok_int_eq(wait_topics(p, topics, 20000), 0, "2: the broker created bs-in and bs-out");
	produce_text(p, "bs-in", 0, NULL, "\"ok1\"");
	produce_text(p, "bs-in", 0, NULL, "{\"oops\":");
	produce_text(p, "bs-in", 0, NULL, "\"ok2\"");
	producer_close(p, "2: ok1, a bad one and ok2");

	const char *const args[] = {
		"worker", "--broker", url,    "--datadir", wdir, "--commit-interval",
		"0.3",    "-l",       "warn", NULL};
	uint64_t t0 = now_ms();
	pid_t pid = spawn("bs", setup_bs, args);
	int status = wait_exit(pid, 30000);
	printf("# the worker exited after %.1f s\n", (double)(now_ms() - t0) / 1000.0);
	ok(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1,
	   "2: the worker stops by itself with status 1 (wait status %d)", status);

	struct coll out;
	coll_open(&out, bootstrap, "bs-out", 1);
	coll_wait(&out, 2, 3000);
	ok(out.n == 1 && out.m[0].value && strcmp(out.m[0].value, "\"ok1\"") == 0,
	   "2: the output holds only ok1 (%zu values, first %s)", out.n,
	   out.n && out.m[0].value ? out.m[0].value : "-");
	coll_close(&out);
	int64_t committed[1] = {-1}, high[1] = {-1};
	group_offsets(bootstrap, "bs", "bs-in", 1, committed, NULL, high);
	ok(committed[0] < 2 && high[0] == 3,
	   "2: the bad event is not committed (committed %lld of %lld)", (long long)committed[0],
	   (long long)high[0]);

	path_in(log, sizeof(log), "bs.log");
	char *text = slurp(log);
	static const char *const names[] = {"ERROR", "bs-in[0]@1", "(decode)", "fix or remove",
					    NULL};
	const char *line = text ? find_line(text, names) : NULL;
	ok(line != NULL, "2: the log names bs-in[0]@1, the reason and what to do");
	if (line)
		printf("#   %.*s\n", (int)strcspn(line, "\n"), line);
	free(text);
	check_log_clean("bs");
	stop_child(broker, "faustc broker");
	check_log_clean("broker");
	free(url);
}

int
main(void)
{
	if (h_tmp_init("badinput") < 0)
		return 99;
	uint64_t t0 = now_ms();
	test_dead_letters();
	printf("# scenario 1: %.1f s\n", (double)(now_ms() - t0) / 1000.0);
	t0 = now_ms();
	test_stop();
	printf("# scenario 2: %.1f s\n", (double)(now_ms() - t0) / 1000.0);
	for (size_t i = 0; i < nsent; i++) {
		free(sent[i].key);
		free(sent[i].value);
	}
	free(sent);
	h_tmp_cleanup();
	return tap_done();
}
