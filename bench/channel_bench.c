/*
 * In-memory channels' overhead (issue 13): channel -> agent (JSON decode, transform, JSON
 * encode) -> channel inside one worker, on its loop thread (one core), against the same
 * decode/transform/encode as a plain C loop in the same program (the baseline).
 *
 * The inputs are 4096 distinct withdrawals ({"account", "amount", "country"}, fixed-seed
 * generator), cycled through for N events (-n or BENCH_EVENTS, default 2,000,000). The
 * pipeline: a once-task ag_sends N values keyed by account into the channel `in`; the agent
 * `xform` takes each with ag_stream_next, decodes it with ag_record_decode (the record
 * scanner), turns amount into amount_cents and yields the ag_record_encode'd
 * {"account", "country", "amount_cents"} into its sink, the channel `out`; the agent `drain`
 * takes batches from `out`, counts events and bytes, and stops the worker after the last.
 * Channels have the default capacity (AG_CHANNEL_CAPACITY), so the sender parks and wakes
 * as in any pipeline whose source is faster than its agent.
 *
 * Reported: events/s from the task's first send to the drain's last event
 * (CLOCK_MONOTONIC) and the loop thread's CPU time over that interval, for the pipeline and
 * for the baseline loop (one untimed warm-up pass first), and their ratio. The output byte
 * counts of both must agree (every event through, once). The worker (embedded broker,
 * which the channels never use) starts in a temporary data dir; start-up is not timed.
 *
 * Usage: channel_bench [-n EVENTS]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <agent/agent.h>

struct withdrawal {
	struct ag_str account;
	double amount;
	struct ag_str country;
	uint64_t ag_present;
};

AG_RECORD(withdrawal_type, withdrawal, AG_FIELD(withdrawal, account, AG_FIELD_STRING, 0),
	  AG_FIELD(withdrawal, amount, AG_FIELD_FLOAT, 0),
	  AG_FIELD(withdrawal, country, AG_FIELD_STRING, 0));

struct large {
	struct ag_str account;
	struct ag_str country;
	int64_t amount_cents;
	uint64_t ag_present;
};

AG_RECORD(large_type, large, AG_FIELD(large, account, AG_FIELD_STRING, 0),
	  AG_FIELD(large, country, AG_FIELD_STRING, 0),
	  AG_FIELD(large, amount_cents, AG_FIELD_INT, 0));

#define DISTINCT 4096

static char *values[DISTINCT];
static size_t value_lens[DISTINCT];
static char *keys[DISTINCT];
static size_t key_lens[DISTINCT];
static long n_events = 2000000;

static struct ag_topic *ch_in, *ch_out;
static double t_start, t_end, cpu_start, cpu_end;
static long drained;
static uint64_t drained_bytes;
static int failed;

static double
mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of the calling thread (the worker's loop thread runs every agent and task). */
static double
thread_cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
make_inputs(void)
{
	static const char *const countries[] = {"US", "DE", "FR", "GB", "JP", "BR", "IN", "NO"};
	uint64_t x = 0x9e3779b97f4a7c15u;
	for (int i = 0; i < DISTINCT; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		char v[128], k[32];
		snprintf(k, sizeof(k), "acct-%llu", (unsigned long long)(x % 100000));
		snprintf(v, sizeof(v),
			 "{\"account\": \"%s\", \"amount\": %llu.%02llu, \"country\": \"%s\"}", k,
			 (unsigned long long)(x >> 20) % 200, (unsigned long long)(x >> 40) % 100,
			 countries[(x >> 50) % 8]);
		values[i] = strdup(v);
		value_lens[i] = strlen(v);
		keys[i] = strdup(k);
		key_lens[i] = strlen(k);
	}
}

/* The pipeline's work on one value: decode, transform, encode into out. */
static int
transform(struct ag_bytes in, struct ag_arena *arena, struct ag_buf *out, struct ag_bytes *key)
{
	struct withdrawal w;
	char err[128];
	int rc = ag_record_decode(&withdrawal_type, AG_CODEC_JSON, in, &w, arena, err, sizeof(err));
	if (rc < 0)
		return rc;
	const struct large l = {w.account, w.country, (int64_t)(w.amount * 100.0 + 0.5), 0};
	out->len = 0;
	*key = (struct ag_bytes){w.account.ptr, w.account.len};
	return ag_record_encode(&large_type, AG_CODEC_JSON, &l, 0, out);
}

static int
task_feed(struct ag_app *app, void *userdata)
{
	(void)app;
	(void)userdata;
	cpu_start = thread_cpu();
	t_start = mono();
	for (long i = 0; i < n_events; i++) {
		size_t j = (size_t)i % DISTINCT;
		struct ag_bytes k = {keys[j], key_lens[j]}, v = {values[j], value_lens[j]};
		int rc = ag_send(ch_in, &k, &v);
		if (rc < 0) {
			fprintf(stderr, "channel_bench: send %ld: %s\n", i, ag_strerror(rc));
			failed = 1;
			return rc;
		}
	}
	return 0;
}

static int
xform(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	struct ag_arena *arena;
	struct ag_buf out = {0};
	int rc;
	(void)userdata;
	if ((rc = ag_arena_new(&arena)) < 0)
		return rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes key;
		ag_arena_reset(arena);
		if ((rc = transform(ag_event_value(ev), arena, &out, &key)) < 0)
			break;
		struct ag_bytes value = {out.ptr, out.len};
		if ((rc = ag_stream_yield(s, &key, &value)) < 0)
			break;
	}
	ag_arena_free(arena);
	free(out.ptr);
	return rc == AG_EOF ? 0 : rc;
}

static int
drain(struct ag_stream *s, void *userdata)
{
	struct ag_event **evs;
	size_t n;
	int rc;
	(void)userdata;
	while ((rc = ag_stream_take(s, 1024, 0, &evs, &n)) == 0) {
		for (size_t i = 0; i < n; i++)
			drained_bytes += ag_event_value(evs[i]).len;
		drained += (long)n;
		if (drained == n_events) {
			t_end = mono();
			cpu_end = thread_cpu();
			ag_app_stop(ag_stream_app(s));
		}
	}
	return rc == AG_EOF ? 0 : rc;
}

static int
setup(struct ag_app *app)
{
	struct ag_agent *a;
	int rc;
	if ((rc = ag_app_set_id(app, "channel-bench")) < 0 ||
	    (rc = ag_app_set_option(app, "web", "0")) < 0 ||
	    (rc = ag_app_channel(app, "in", 0, &ch_in)) < 0 ||
	    (rc = ag_app_channel(app, "out", 0, &ch_out)) < 0 ||
	    (rc = ag_app_agent(app, "xform", ch_in, xform, NULL, &a)) < 0 ||
	    (rc = ag_agent_sink_topic(a, ch_out)) < 0 ||
	    (rc = ag_app_agent(app, "drain", ch_out, drain, NULL, NULL)) < 0 ||
	    (rc = ag_app_timer(app, "feed", 0, AG_TIMER_ONCE, task_feed, NULL)) < 0)
		return rc;
	return 0;
}

/* The same work as a plain loop. Returns the output bytes; *secs, *cpu: its times. */
static uint64_t
baseline(double *secs, double *cpu)
{
	struct ag_arena *arena;
	struct ag_buf out = {0};
	uint64_t bytes = 0;
	if (ag_arena_new(&arena) < 0)
		exit(1);
	for (int pass = 0; pass < 2; pass++) {
		double t0 = mono(), c0 = thread_cpu();
		long n = pass ? n_events : DISTINCT;
		bytes = 0;
		for (long i = 0; i < n; i++) {
			size_t j = (size_t)i % DISTINCT;
			struct ag_bytes key;
			ag_arena_reset(arena);
			if (transform((struct ag_bytes){values[j], value_lens[j]}, arena, &out,
				      &key) < 0)
				exit(1);
			bytes += out.len;
		}
		*secs = mono() - t0;
		*cpu = thread_cpu() - c0;
	}
	ag_arena_free(arena);
	free(out.ptr);
	return bytes;
}

int
main(int argc, char **argv)
{
	const char *env = getenv("BENCH_EVENTS");
	if (env && *env)
		n_events = strtol(env, NULL, 10);
	if (argc == 3 && strcmp(argv[1], "-n") == 0)
		n_events = strtol(argv[2], NULL, 10);
	else if (argc != 1) {
		fprintf(stderr, "usage: channel_bench [-n EVENTS]\n");
		return 2;
	}
	if (n_events <= 0) {
		fprintf(stderr, "channel_bench: the event count must be positive\n");
		return 2;
	}
	make_inputs();
	double base_s, base_cpu;
	uint64_t base_bytes = baseline(&base_s, &base_cpu);

	char dir[] = "/tmp/channel-bench-XXXXXX";
	if (!mkdtemp(dir)) {
		perror("channel_bench: mkdtemp");
		return 1;
	}
	char data[sizeof(dir) + 8];
	snprintf(data, sizeof(data), "%s/data", dir);
	char *wargv[] = {argv[0], "worker", "--datadir", data, "-l", "warn", NULL};
	int status = ag_app_main(6, wargv, setup);
	char cmd[sizeof(dir) + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "channel_bench: could not remove %s\n", dir);
	if (status != 0 || failed || drained != n_events || drained_bytes != base_bytes) {
		fprintf(stderr,
			"channel_bench: FAILED: worker status %d, %ld of %ld events drained, %llu "
			"bytes (baseline %llu)\n",
			status, drained, n_events, (unsigned long long)drained_bytes,
			(unsigned long long)base_bytes);
		return 1;
	}
	double secs = t_end - t_start, cpu = cpu_end - cpu_start;
	double rate = (double)n_events / secs, base_rate = (double)n_events / base_s;
	printf("events=%ld\n", n_events);
	printf("baseline (plain loop: decode, transform, encode): %.0f events/s, %.3f CPU s per "
	       "1M events\n",
	       base_rate, base_cpu / (double)n_events * 1e6);
	printf("channels (channel -> agent -> channel):           %.0f events/s, %.3f CPU s per "
	       "1M events\n",
	       rate, cpu / (double)n_events * 1e6);
	printf("ratio channels/baseline: events/s %.2f, CPU per event %.2f\n", rate / base_rate,
	       (cpu / (double)n_events) / (base_cpu / (double)n_events));
	printf("goal >= 2000000 events/s: %s\n", rate >= 2e6 ? "met" : "not met");
	return 0;
}
