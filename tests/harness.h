/*
 * What the broker tests share: a temporary directory, apps run by ag_app_main in forked
 * children, plain librdkafka producers and an output collector that reads a topic from the
 * beginning without a group (headers included).
 *
 * Children are forked only while this process holds no librdkafka handle (spawn checks),
 * so it has no librdkafka threads: fork copies the calling thread only, and a lock another
 * thread held would stay locked forever in the child.
 *
 * tap.h keeps its counters in each test's translation unit, so the helpers that make TAP
 * checks are static inline functions at the end of this header; harness.c (which defines
 * HARNESS_IMPL) has only the parts that check nothing.
 */
#ifndef FAUSTC_TESTS_HARNESS_H
#define FAUSTC_TESTS_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <librdkafka/rdkafka.h>

#include <agent/agent.h>

/* In an app's setup or agent: returns x when it is an error (< 0). */
#define TRY(x) \
	do { \
		int try__rc = (x); \
		if (try__rc < 0) \
			return try__rc; \
	} while (0)

/*
 * Real Kafka: with FAUSTC_TEST_KAFKA=HOST:PORT[,...] in the environment the broker tests run
 * on that cluster instead of the embedded broker. spawn() then turns `broker` into
 * `broker --broker kafka://...` (which creates the app's topics there and writes that URL
 * to its --addr-file), and gives a `worker` without --broker the cluster and a broker.addr
 * in its data dir. Where a test expects a fresh broker (spawning `broker`, or a worker
 * that would host one), every topic and consumer group of the cluster is deleted first:
 * the cluster must serve one test run alone (scripts/test.sh starts its own).
 */
extern const char *h_kafka; /* the bootstrap list, or NULL on the embedded broker */

/* A broker URL's bootstrap list: url without "mock://" or "kafka://". Borrowed. */
const char *h_bootstrap(const char *url);

/* Whether url is a broker URL of the kind the run uses (mock:// or kafka://). */
int h_url_ok(const char *url);

/*
 * Deletes every topic (but Kafka's own, "__*") and every consumer group of the Kafka
 * cluster, and waits until metadata shows them gone. No-op on the embedded broker.
 */
void h_kafka_reset(void);

/* The test's temporary directory (h_tmp_init creates it). */
extern char h_tmp[256];

/* Creates /tmp/faustc-test-NAME-XXXXXX as h_tmp. Returns 0, -1. */
int h_tmp_init(const char *name);

/* Removes h_tmp, or keeps it (and says so) when $KEEP is set. */
void h_tmp_cleanup(void);

/* Monotonic clock in milliseconds. */
uint64_t now_ms(void);

/* buf = h_tmp/name. */
void path_in(char *buf, size_t cap, const char *name);

/* The whole file as a NUL-terminated string the caller frees; NULL when unreadable. */
char *slurp(const char *path);

/* The line of text containing every one of the NULL-terminated needles, or NULL. */
const char *find_line(const char *text, const char *const *needles);

/* Waits until path holds a line; returns it without the line end (caller frees) or NULL. */
char *wait_line(const char *path, int timeout_ms);

/*
 * Called while the helpers below wait (coll_wait, sleep_ticking), e.g. to sample a child's
 * memory; NULL for none.
 */
extern void (*h_tick)(void);

/* Sleeps ms, calling h_tick every 10 ms. */
void sleep_ticking(int ms);

/*
 * Forks a child running ag_app_main("test", args...) with stdout in NAME.out and stderr in
 * NAME.log under h_tmp. Returns the child's pid.
 */
pid_t spawn(const char *name, ag_app_setup_fn setup, const char *const *args);

/* Waits for pid to exit. Returns its wait status, or -1 when it had to be killed. */
int wait_exit(pid_t pid, int timeout_ms);

/* Whether NAME.log has no sanitizer report and no "still has handles". */
int h_log_clean(const char *name);

/*
 * The setup function of an app module (ag_module_entry of a .so built with AG_APP_MODULE),
 * from argv[1] of a test run as `test MODULE`. Bails out (exit 99) when it cannot be had.
 */
ag_app_setup_fn h_module_setup(int argc, char **argv, const char *test);

/* The number after "name": in a JSON text (a flat search, enough for test outputs), or NAN. */
double h_json_num(const char *text, const char *name);

/* ---- plain librdkafka clients ---- */

/* Deliveries that failed so far (printed as they happen). */
extern int h_delivery_failures;

/* Called for every successful delivery (m->_private is the opaque produced with); or NULL. */
extern void (*h_delivered)(const rd_kafka_message_t *m);

/* A client; kv is a NULL-terminated list of property, value pairs. Exits on failure. */
rd_kafka_t *client_new(rd_kafka_type_t type, const char *bootstrap, const char *const *kv);

/*
 * A producer that partitions keys like the worker and Java clients (murmur2); kv (may be
 * NULL) adds properties.
 */
rd_kafka_t *h_producer_new(const char *bootstrap, const char *const *kv);
rd_kafka_t *producer_new(const char *bootstrap);

/*
 * Waits until full metadata (which never auto-creates a topic) lists every topic of the
 * NULL-terminated names. Returns 0 or -ETIMEDOUT.
 */
int wait_topics(rd_kafka_t *rk, const char *const *names, int timeout_ms);

/* Whether full metadata lists topic: 1, 0, or -1 when metadata cannot be had. */
int h_topic_exists(rd_kafka_t *rk, const char *topic);

/*
 * Produces one message; partition RD_KAFKA_PARTITION_UA lets the partitioner choose. key
 * NULL: no key; value NULL: a null value. opaque comes back in h_delivered.
 */
void h_produce(rd_kafka_t *rk, const char *topic, int32_t partition, const void *key,
	       size_t key_len, const void *value, size_t len, void *opaque);
void produce(rd_kafka_t *rk, const char *topic, int32_t partition, const char *key,
	     const void *value, size_t len);
void produce_text(rd_kafka_t *rk, const char *topic, int32_t partition, const char *key,
		  const char *value);

/*
 * Produces one event of the withdrawals example to topic withdrawals: {"user", "country",
 * "amount"} keyed by user, with Kafka timestamp ts (ms); partition < 0: by the key
 * (murmur2). Waits while the producer's queue is full; bails out (exit 99) on any other
 * refusal.
 */
void h_withdrawal(rd_kafka_t *p, int32_t partition, const char *user, const char *country,
		  double amount, int64_t ts);

/* Flushes (30 s at most) and destroys the producer. Returns librdkafka's flush result. */
rd_kafka_resp_err_t h_producer_flush_close(rd_kafka_t *rk);

/* ---- the output collector ---- */

struct h_header {
	char *name;
	char *value; /* NUL-terminated; NULL for a null header value */
	size_t len;
};

/* A message read; key and value are NUL-terminated copies (NULL when null). */
struct msg {
	int32_t partition;
	int64_t offset;
	char *key;
	size_t key_len;
	char *value;
	size_t len;
	struct h_header *headers;
	size_t nheaders;
};

/* A topic read from the beginning of every partition, without a group. */
struct coll {
	rd_kafka_t *rk;
	struct msg *m;
	size_t n, cap;
};

void coll_open(struct coll *c, const char *bootstrap, const char *topic, int partitions);

/* Takes what has arrived, waiting at most ms for the first message. */
void coll_poll(struct coll *c, int ms);

/* Waits until c holds at least n messages or timeout_ms passed. Returns the count. */
size_t coll_wait(struct coll *c, size_t n, int timeout_ms);

void coll_close(struct coll *c);

/* The value of m's first header called name (NUL-terminated), or NULL. */
const char *msg_header(const struct msg *m, const char *name);

/*
 * The consumer group's committed offsets and the high watermarks of topic's partitions,
 * asked without joining the group. low may be NULL. Returns 0 or -1.
 */
int group_offsets(const char *bootstrap, const char *group, const char *topic, int partitions,
		  int64_t *committed, int64_t *low, int64_t *high);

/*
 * Real Kafka: every offset the consumer group has committed (topic, partition, offset),
 * through the admin API. The caller destroys the list; NULL when it cannot be had.
 */
rd_kafka_topic_partition_list_t *h_group_committed(const char *bootstrap, const char *group);

/*
 * Real Kafka: sets the group's committed offsets back to `to` (an h_group_committed
 * snapshot; NULL or empty: no offsets at all), as if no commit after the snapshot had
 * succeeded. The group must be empty: a killed static member stays until its session times
 * out, so this retries for up to timeout_ms. Returns 0 or -1.
 */
int h_group_rewind(const char *bootstrap, const char *group,
		   const rd_kafka_topic_partition_list_t *to, int timeout_ms);

#ifndef HARNESS_IMPL
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tap.h"

/* Sends SIGTERM and checks a clean exit (status 0 also means uv_loop_close() was 0). */
static inline void
stop_child(pid_t pid, const char *what)
{
	ok_int_eq(kill(pid, SIGTERM), 0, "SIGTERM %s", what);
	int status = wait_exit(pid, 30000);
	ok(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "%s exits with status 0 (wait status %d)", what, status);
}

/*
 * Checks a child's stderr (NAME.log) for sanitizer reports: UBSan's do not change the exit
 * status, and a leak report only shows there.
 */
static inline void
check_log_clean(const char *name)
{
	ok(h_log_clean(name), "%s's log has no sanitizer report and no handle left at exit", name);
}

/* Flushes and destroys a producer, checking that everything was delivered. */
static inline void
producer_close(rd_kafka_t *rk, const char *what)
{
	rd_kafka_resp_err_t err = h_producer_flush_close(rk);
	ok(err == RD_KAFKA_RESP_ERR_NO_ERROR && h_delivery_failures == 0,
	   "%s delivered (%s, %d failures)", what, rd_kafka_err2str(err), h_delivery_failures);
}

/*
 * The withdrawals example: one event per country at time ts, far ahead of the input, so
 * that every window of the input closes (user "flush", amount 0).
 */
static inline void
h_withdrawals_flush(const char *bootstrap, const char *const *countries, int n, int64_t ts)
{
	rd_kafka_t *p = producer_new(bootstrap);
	for (int c = 0; c < n; c++)
		h_withdrawal(p, -1, "flush", countries[c], 0, ts);
	producer_close(p, "the flush events");
}

/*
 * The withdrawals example's user-totals (c) against the input: the last total of each user
 * u0..u<nusers-1> equals user_total[u].
 */
static inline void
h_check_user_totals(const struct coll *c, const double *user_total, int nusers)
{
	double *last = malloc((size_t)nusers * sizeof(*last));
	if (!last)
		exit(99);
	for (int u = 0; u < nusers; u++)
		last[u] = NAN;
	for (size_t i = 0; i < c->n; i++) {
		const struct msg *m = &c->m[i];
		int u = m->key && m->key[0] == 'u' ? atoi(m->key + 1) : -1;
		if (u >= 0 && u < nusers)
			last[u] = h_json_num(m->value, "total");
	}
	int exact = 0;
	for (int u = 0; u < nusers; u++) {
		if (last[u] == user_total[u])
			exact++;
		else
			printf("#   u%d: last total %.2f, recomputed %.2f\n", u, last[u],
			       user_total[u]);
	}
	free(last);
	ok(exact == nusers, "every user's last total equals the recomputation (%d of %d)", exact,
	   nusers);
}

/*
 * The withdrawals example's country-window-totals (c) against the input: every window of
 * 10 s from t0 below nwin with input (window_total[k * stride + w] for countries[k]) is
 * published with that total, nothing else is. Returns how many windows were published more
 * than once (closes redone after a crash: exactly_once checks it is 0).
 */
static inline int
h_check_window_totals(const struct coll *c, const char *const *countries, int ncountry,
		      const double *window_total, int stride, int nwin, int64_t t0)
{
	int *seen = calloc((size_t)(ncountry * stride), sizeof(*seen));
	if (!seen)
		exit(99);
	int wrong = 0, stray = 0;
	for (size_t i = 0; i < c->n; i++) {
		const char *v = c->m[i].value;
		double start = h_json_num(v, "window_start"), end = h_json_num(v, "window_end");
		double total = h_json_num(v, "total");
		int k = -1;
		for (int x = 0; x < ncountry; x++) {
			if (c->m[i].key && strcmp(c->m[i].key, countries[x]) == 0)
				k = x;
		}
		long w = lround((start * 1000.0 - (double)t0) / 10000.0);
		if (k < 0 || w < 0 || w >= nwin || end - start != 10.0) {
			stray++;
			printf("#   stray window %s\n", v);
			continue;
		}
		seen[k * stride + w]++;
		if (total != window_total[k * stride + w]) {
			wrong++;
			printf("#   %s [%ld]: published %.2f, recomputed %.2f\n", countries[k], w,
			       total, window_total[k * stride + w]);
		}
	}
	int missing = 0, repeated = 0;
	for (int k = 0; k < ncountry; k++) {
		for (int w = 0; w < nwin; w++) {
			missing += window_total[k * stride + w] != 0 && !seen[k * stride + w];
			repeated += seen[k * stride + w] > 1;
		}
	}
	free(seen);
	ok(missing == 0 && wrong == 0 && stray == 0,
	   "every closed country window is published with the recomputed total (%d missing, "
	   "%d wrong, %d stray)",
	   missing, wrong, stray);
	printf("# %d windows published more than once (closes redone after a crash)\n", repeated);
	return repeated;
}
#endif

#endif
