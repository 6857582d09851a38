/*
 * Event time on a broker, with the withdrawals example (argv[1]: its module): windows after
 * a group_by close by the watermark over the source partitions, so they are exact on any
 * backlog; idle sources stop holding them open; late data is counted, logged and kept.
 *
 *   backlog     20,000 withdrawals keyed by user, timestamps spread evenly over 120 s, in
 *               time order into the 8 partitions of `withdrawals`, all produced before the
 *               worker starts (one partition's fetch runs ahead of another's). Every closed
 *               country window equals the recomputation from the input, each is published
 *               once, and the worker counts no late event. (Before watermarks about 40 % of
 *               the amounts were dropped as late here.)
 *   crash       the same withdrawals, a quarter of them before two workers start, the rest
 *               streaming in while one worker is SIGKILLed and started again. Exact windows
 *               (a close redone after the crash may be published again, with the same
 *               total).
 *   idle        one partition stops getting data at 20 s while the others go on to 205 s:
 *               after idle_timeout it no longer holds the windows open, and once every
 *               partition is idle, stream time goes on with the clock and a window whose
 *               end + grace lies beyond all data closes without another event.
 *   moved       withdrawals to 40 s, processed by one worker until every source is idle;
 *               a second worker takes half the partitions, is SIGKILLed and started again
 *               (on Kafka a static member: no rebalance, the first worker's forwarders
 *               go on), and only its sources get events far ahead: every window closes,
 *               so its fresh readers learned again that the other sources are idle (said
 *               once, they never would).
 *   revoked     one worker takes withdrawals to 40 s and one at 200 s, commits nothing
 *               until a second worker joins (its partitions revoked), then dies: the
 *               channel times committed in that revoke cycle reach the second worker,
 *               which closes every window (they were not stored there before).
 *   late        withdrawals for windows that closed long ago, with --late-events topic: not
 *               in any window total, counted in the stats line, logged at warn, and found
 *               byte for byte in withdrawals-country_to_total-late with headers naming the
 *               table and the window.
 */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define N 20000
#define USERS 200
#define T0 1700000000000ll /* a multiple of 10 s */
#define SPAN_MS 120000
#define NWIN 40 /* windows of 10 s this test may look at: [T0, T0 + 400 s) */
#define LATE_TOPIC "withdrawals-country_to_total-late"

static const char *const countries[] = {"NO", "SE", "DK", "FI", "IS"};
#define NCOUNTRY 5

static ag_app_setup_fn setup;
static char *url;
static const char *bootstrap;
static double expect[NCOUNTRY][NWIN];
static int scenario;

static double
amount_of(int i)
{
	return (double)(i % 40) * 0.25 + 1.0; /* exact in binary: sums do not round */
}

/* Produces one withdrawal (partition < 0: by the user key, murmur2). */
static void
withdraw(rd_kafka_t *p, int i, int32_t partition, int64_t ts, int count)
{
	char user[16];
	int c = (i / 3) % NCOUNTRY;
	snprintf(user, sizeof(user), "u%d", (i * 7) % USERS);
	h_withdrawal(p, partition, user, countries[c], amount_of(i), ts);
	if (count && (ts - T0) / 10000 < NWIN)
		expect[c][(ts - T0) / 10000] += amount_of(i);
}

/* Withdrawals [from, to) of the backlog: T0 + i * SPAN_MS / N, keyed by user. */
static void
produce_backlog(int from, int to)
{
	rd_kafka_t *p = producer_new(bootstrap);
	for (int i = from; i < to; i++)
		withdraw(p, i, -1, T0 + (int64_t)i * SPAN_MS / N, 1);
	producer_close(p, "withdrawals");
}

/* One event per partition at time at: every window ending before at - grace closes. */
static void
produce_flush(int64_t at)
{
	rd_kafka_t *p = producer_new(bootstrap);
	for (int32_t part = 0; part < 8; part++)
		withdraw(p, N + part, part, at, 0);
	producer_close(p, "the flush events");
}

/* A worker committing every commit_s seconds, its sources idle after idle_s. */
static pid_t
start_worker_at(const char *name, const char *data, const char *late, const char *commit_s,
		const char *idle_s)
{
	char dir[300];
	path_in(dir, sizeof(dir), data);
	/* FAUSTC_TEST_LOG=debug: the workers' logs say more. */
	const char *level = getenv("FAUSTC_TEST_LOG") ? getenv("FAUSTC_TEST_LOG") : "info";
	const char *const args[] = {"worker", "--broker",
				    url,      "--datadir",
				    dir,      "--commit-interval",
				    commit_s, "--idle-timeout",
				    idle_s,   "--late-events",
				    late,     "-l",
				    level,    NULL};
	return spawn(name, setup, args);
}

static pid_t
start_worker(const char *name, const char *data, const char *late)
{
	return start_worker_at(name, data, late, "0.5", "1");
}

/* A fresh `faustc broker` for one scenario. */
static pid_t
start_broker(void)
{
	char url_file[300], dir[300], name[32];
	scenario++;
	snprintf(name, sizeof(name), "broker%d.url", scenario);
	path_in(url_file, sizeof(url_file), name);
	snprintf(name, sizeof(name), "broker%d-data", scenario);
	path_in(dir, sizeof(dir), name);
	const char *const args[] = {"broker", "--addr-file", url_file, "--datadir",
				    dir,      "-l",          "warn",   NULL};
	snprintf(name, sizeof(name), "broker%d", scenario);
	pid_t pid = spawn(name, setup, args);
	free(url);
	url = wait_line(url_file, 20000);
	if (!url) {
		printf("# Bail out! no faustc broker\n");
		exit(99);
	}
	bootstrap = h_bootstrap(url);
	memset(expect, 0, sizeof(expect));
	return pid;
}

struct tally {
	int seen[NCOUNTRY][NWIN];
	double total[NCOUNTRY][NWIN];
	int wrong,
		changed; /* a total that differs from the input; a republished one that differs */
};

static void
tally(const struct coll *c, struct tally *t)
{
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < c->n; i++) {
		const char *v = c->m[i].value;
		long w = lround((h_json_num(v, "window_start") * 1000.0 - (double)T0) / 10000.0);
		int k = -1;
		for (int x = 0; x < NCOUNTRY; x++)
			k = c->m[i].key && strcmp(c->m[i].key, countries[x]) == 0 ? x : k;
		if (k < 0 || w < 0 || w >= NWIN)
			continue;
		double total = h_json_num(v, "total");
		if (t->seen[k][w]++ && total != t->total[k][w])
			t->changed++;
		t->total[k][w] = total;
		if (total != expect[k][w]) {
			t->wrong++;
			printf("#   %s [%ld s, +10 s): published %.2f, the input sums to %.2f\n",
			       countries[k], w * 10, total, expect[k][w]);
		}
	}
}

/* Waits until every window below nwin with input is published; returns how many are missing. */
static int
wait_windows(struct coll *c, int nwin, int timeout_ms, struct tally *t)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		coll_poll(c, 200);
		tally(c, t);
		int missing = 0;
		for (int k = 0; k < NCOUNTRY; k++)
			for (int w = 0; w < nwin; w++)
				missing += expect[k][w] != 0 && !t->seen[k][w];
		if (!missing || now_ms() > end)
			return missing;
	}
}

static int
republished(const struct tally *t)
{
	int n = 0;
	for (int k = 0; k < NCOUNTRY; k++)
		for (int w = 0; w < NWIN; w++)
			n += t->seen[k][w] > 1;
	return n;
}

/* The number after "late_events=" in the stats line of NAME.log, or -1. */
static long
late_events_of(const char *name)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/%s.log", h_tmp, name);
	char *text = slurp(path);
	const char *s = text ? strstr(text, "stats: events=") : NULL;
	const char *l = s ? strstr(s, "late_events=") : NULL;
	long n = l ? strtol(l + strlen("late_events="), NULL, 10) : -1;
	free(text);
	return n;
}

static void
stop_and_count(pid_t pid, const char *name, long late)
{
	stop_child(pid, name);
	check_log_clean(name);
	ok_int_eq(late_events_of(name), late, "%s's stats line counts %ld late events", name, late);
}

static void
test_backlog(void)
{
	pid_t broker = start_broker();
	produce_backlog(0, N);
	produce_flush(T0 + SPAN_MS + 70000);
	pid_t w = start_worker("backlog", "backlog-data", "drop");
	struct coll c;
	coll_open(&c, bootstrap, "country-window-totals", 8);
	struct tally t;
	int missing = wait_windows(&c, SPAN_MS / 10000, 60000, &t);
	sleep_ticking(1500); /* a second publication would come now */
	coll_poll(&c, 0);
	tally(&c, &t);
	ok(missing == 0 && t.wrong == 0,
	   "backlog: every closed window has the input's total (%d missing, %d wrong)", missing,
	   t.wrong);
	ok_int_eq(republished(&t), 0, "backlog: each window is published once");
	coll_close(&c);
	stop_and_count(w, "backlog", 0);
	kill(broker, SIGTERM);
	wait_exit(broker, 10000);
}

static void
test_crash(void)
{
	pid_t broker = start_broker();
	produce_backlog(0, N / 4);
	pid_t a = start_worker("crash-a0", "crash-a", "drop");
	pid_t b = start_worker("crash-b", "crash-b", "drop");
	/* The rest streams in while they work; a is killed in the middle and started again. */
	int64_t committed[8], high[8], done = 0;
	uint64_t until = now_ms() + 30000;
	while (done == 0 && now_ms() < until) {
		usleep(100 * 1000);
		if (group_offsets(bootstrap, "withdrawals", "withdrawals", 8, committed, NULL,
				  high) == 0)
			for (int p = 0; p < 8; p++)
				done += committed[p] > 0 ? committed[p] : 0;
	}
	ok(done > 0, "crash: the workers are processing (%lld committed)", (long long)done);
	int batch = (N - N / 4) / 10;
	for (int k = 0; k < 10; k++) {
		produce_backlog(N / 4 + k * batch, k == 9 ? N : N / 4 + (k + 1) * batch);
		usleep(150 * 1000);
		if (k == 3) {
			kill(a, SIGKILL);
			waitpid(a, NULL, 0);
		} else if (k == 6) {
			a = start_worker("crash-a1", "crash-a", "drop");
		}
	}
	produce_flush(T0 + SPAN_MS + 70000);
	struct coll c;
	coll_open(&c, bootstrap, "country-window-totals", 8);
	struct tally t;
	int missing = wait_windows(&c, SPAN_MS / 10000, 90000, &t);
	ok(missing == 0 && t.wrong == 0 && t.changed == 0,
	   "crash: every closed window has the input's total (%d missing, %d wrong, %d changed)",
	   missing, t.wrong, t.changed);
	printf("# crash: %d windows published again (closes redone after the SIGKILL)\n",
	       republished(&t));
	coll_close(&c);
	stop_and_count(a, "crash-a1", 0);
	stop_and_count(b, "crash-b", 0);
	kill(broker, SIGTERM);
	wait_exit(broker, 10000);
}

static void
test_idle_and_late(void)
{
	pid_t broker = start_broker();
	pid_t w = start_worker("idle", "idle-data", "topic");
	/* Partitions 0-6 go on to 205 s; partition 7 stops at 20 s. */
	rd_kafka_t *p = producer_new(bootstrap);
	for (int i = 0; i < 4100; i++) {
		int64_t ts = T0 + (int64_t)i * 50;
		int32_t part = i % 8;
		if (part == 7 && ts >= T0 + 20000)
			part = i % 7;
		withdraw(p, i, part, ts, 1);
	}
	producer_close(p, "withdrawals, partition 7 stopping at 20 s");
	struct coll c;
	coll_open(&c, bootstrap, "country-window-totals", 8);
	struct tally t;
	/* end + 60 s of grace <= 205 s: windows up to [130 s, 140 s) */
	int missing = wait_windows(&c, 14, 60000, &t);
	ok(missing == 0 && t.wrong == 0,
	   "idle: the quiet partition stops holding windows open after idle_timeout; they "
	   "close exact (%d missing, %d wrong)",
	   missing, t.wrong);
	/* [140 s, 150 s) closes at 210 s: past every event, by the clock once all are idle */
	missing = wait_windows(&c, 15, 30000, &t);
	ok(missing == 0 && t.wrong == 0,
	   "idle: with every partition idle, a window whose end + grace is past all data closes "
	   "without another event (%d missing, %d wrong)",
	   missing, t.wrong);
	coll_close(&c);

	/* Late: windows [0 s, 10 s) and [10 s, 20 s) closed long ago. */
	p = producer_new(bootstrap);
	char sent[10][160];
	for (int i = 0; i < 10; i++) {
		withdraw(p, 100000 + i, i % 8, T0 + 1000 + i * 1500, 0);
		snprintf(sent[i], sizeof(sent[i]),
			 "{\"user\": \"u%d\", \"country\": \"%s\", \"amount\": %.2f}",
			 ((100000 + i) * 7) % USERS, countries[((100000 + i) / 3) % NCOUNTRY],
			 amount_of(100000 + i));
	}
	producer_close(p, "10 late withdrawals");
	struct coll late;
	coll_open(&late, bootstrap, LATE_TOPIC, 8);
	size_t got = coll_wait(&late, 10, 30000);
	int found = 0, headed = 0;
	for (int i = 0; i < 10; i++) {
		for (size_t k = 0; k < late.n; k++) {
			const struct msg *m = &late.m[k];
			if (m->len != strlen(sent[i]) || memcmp(m->value, sent[i], m->len) != 0)
				continue;
			found++;
			const char *table = msg_header(m, "faustc-late-table");
			const char *win = msg_header(m, "faustc-late-window");
			char want[64];
			long long start = (T0 + 1000 + i * 1500) / 10000 * 10000;
			snprintf(want, sizeof(want), "%lld-%lld", start, start + 10000);
			headed += table && strcmp(table, "country_to_total") == 0 && win &&
				  strcmp(win, want) == 0;
			break;
		}
	}
	ok(got == 10 && found == 10,
	   "late: the 10 late events are in %s byte for byte (%zu records, %d matched)", LATE_TOPIC,
	   got, found);
	ok_int_eq(headed, 10, "late: each names the table and the window it missed");
	coll_close(&late);
	coll_open(&c, bootstrap, "country-window-totals", 8);
	coll_poll(&c, 2000);
	tally(&c, &t);
	ok(t.wrong == 0 && republished(&t) == 0,
	   "late: no window total changed or was published again (%d wrong, %d republished)",
	   t.wrong, republished(&t));
	coll_close(&c);
	char path[300];
	path_in(path, sizeof(path), "idle.log");
	char *log = slurp(path);
	const char *const needles[] = {"WARN", "late event", "country_to_total", "past its end",
				       NULL};
	ok(log && find_line(log, needles), "late: each is logged at warn with how late it is");
	free(log);
	stop_and_count(w, "idle", 10);
	kill(broker, SIGTERM);
	wait_exit(broker, 10000);
}

/*
 * The withdrawals partitions worker NAME was given last (from its "partitions assigned"
 * log line): bit p set for withdrawals[p]. 0 while it has none yet.
 */
static unsigned
assigned_sources(const char *name)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/%s.log", h_tmp, name);
	char *text = slurp(path);
	const char *line = NULL;
	for (const char *at = text; at && (at = strstr(at, "partitions assigned: ")); at++)
		line = at;
	unsigned set = 0;
	const char *end = line ? strchr(line, '\n') : NULL;
	for (const char *at = line; at && (at = strstr(at, " withdrawals[")) && at < end; at++)
		set |= 1u << (atoi(at + strlen(" withdrawals[")) & 7);
	free(text);
	return set;
}

/* Waits until the group committed every withdrawal produced. Returns 0 or -1. */
static int
wait_all_committed(int timeout_ms)
{
	int64_t committed[8], high[8];
	for (uint64_t end = now_ms() + (uint64_t)timeout_ms; now_ms() < end;) {
		int done = group_offsets(bootstrap, "withdrawals", "withdrawals", 8, committed,
					 NULL, high) == 0;
		for (int p = 0; p < 8 && done; p++)
			done = committed[p] == high[p];
		if (done)
			return 0;
		usleep(200 * 1000);
	}
	return -1;
}

/* Checks that the first 4 windows (to 40 s) close within timeout_ms, exact. */
static void
windows_close(int timeout_ms, const char *what)
{
	struct coll c;
	coll_open(&c, bootstrap, "country-window-totals", 8);
	struct tally t;
	int missing = wait_windows(&c, 4, timeout_ms, &t);
	ok(missing == 0 && t.wrong == 0, "%s; every window closes exact (%d missing, %d wrong)",
	   what, missing, t.wrong);
	coll_close(&c);
}

static void
test_moved(void)
{
	pid_t broker = start_broker();
	pid_t a = start_worker("moved-a", "moved-a", "drop");
	rd_kafka_t *p = producer_new(bootstrap);
	for (int i = 0; i < 800; i++)
		withdraw(p, i, i % 8, T0 + (int64_t)i * 50, 1);
	producer_close(p, "moved: withdrawals to 40 s in every partition");
	ok_int_eq(wait_all_committed(60000), 0, "moved: one worker processed them");
	sleep_ticking(3000); /* idle_timeout is 1 s: every source is idle, and said so */
	/* A second worker: the readers of half the country partitions move to it. */
	pid_t b = start_worker("moved-b", "moved-b", "drop");
	unsigned mine = 0;
	for (uint64_t end = now_ms() + 60000;
	     !(mine = assigned_sources("moved-b")) && now_ms() < end;)
		usleep(200 * 1000);
	ok(mine != 0 && mine != 0xff, "moved: the second worker took half the partitions (%#x)",
	   mine);
	sleep_ticking(3000); /* every source idle again after the rebalance, and said so */
	/*
	 * SIGKILLed and started again on its data dir: on Kafka a static member takes its
	 * partitions back without a rebalance, so the first worker's forwarders go on as they
	 * were, their sources idle, while the restarted readers start afresh.
	 */
	kill(b, SIGKILL);
	waitpid(b, NULL, 0);
	b = start_worker("moved-b1", "moved-b", "drop");
	mine = 0;
	for (uint64_t end = now_ms() + 60000;
	     !(mine = assigned_sources("moved-b1")) && now_ms() < end;)
		usleep(200 * 1000);
	ok(mine != 0 && mine != 0xff, "moved: restarted, it holds half the partitions (%#x)", mine);
	sleep_ticking(3000); /* its readers start from the stored channel times */
	/*
	 * Events far ahead only in the second worker's source partitions: for every window
	 * to close, each reader must know that the first worker's sources are idle. The
	 * readers that moved read past that worker's first idle heartbeats before the move.
	 */
	p = producer_new(bootstrap);
	for (int32_t part = 0; part < 8; part++)
		if (mine & (1u << part))
			withdraw(p, N + part, part, T0 + 200000, 0);
	producer_close(p, "moved: events at 200 s in the second worker's partitions");
	windows_close(30000, "moved: the restarted readers learn again that the sources which "
			     "stayed with the other worker are idle");
	stop_and_count(a, "moved-a", 0);
	stop_and_count(b, "moved-b1", 0);
	kill(broker, SIGTERM);
	wait_exit(broker, 10000);
}

/* How many lines of NAME.log hold needle. */
static int
log_count(const char *name, const char *needle)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/%s.log", h_tmp, name);
	char *text = slurp(path);
	int n = 0;
	for (const char *at = text; at && (at = strstr(at, needle)); at++)
		n++;
	free(text);
	return n;
}

static void
test_revoked(void)
{
	pid_t broker = start_broker();
	/*
	 * The first worker commits only when its partitions are revoked (a 600 s interval),
	 * and its sources never go idle: its windows stay open, all the progress it took is
	 * in the channel times of that one commit cycle.
	 */
	pid_t a = start_worker_at("revoked-a", "revoked-a", "drop", "600", "600");
	rd_kafka_t *p = producer_new(bootstrap);
	for (int i = 0; i < 800; i++)
		withdraw(p, i, i % 8, T0 + (int64_t)i * 50, 1);
	withdraw(p, N, 3, T0 + 200000, 0); /* one source far ahead */
	producer_close(p, "revoked: withdrawals to 40 s, one at 200 s");
	struct coll users;
	coll_open(&users, bootstrap, "user-totals", 8);
	ok(coll_wait(&users, 801, 60000) >= 801, "revoked: the first worker took every event");
	coll_close(&users);
	sleep_ticking(3000); /* its readers take the forwards */
	/* A second worker joins: every partition is revoked and committed, then split. */
	pid_t b = start_worker("revoked-b", "revoked-b", "drop");
	for (uint64_t end = now_ms() + 60000; (!assigned_sources("revoked-b") ||
					       log_count("revoked-a", "partitions assigned") < 2) &&
					      now_ms() < end;)
		usleep(200 * 1000);
	ok(assigned_sources("revoked-b") != 0, "revoked: the second worker took partitions (%#x)",
	   assigned_sources("revoked-b"));
	/* The first worker dies without another commit: its revoke cycle said everything. */
	kill(a, SIGKILL);
	waitpid(a, NULL, 0);
	windows_close(60000, "revoked: the channel times committed with a revoked partition "
			     "reach its next owner");
	stop_and_count(b, "revoked-b", 0);
	kill(broker, SIGTERM);
	wait_exit(broker, 10000);
}

int
main(int argc, char **argv)
{
	setup = h_module_setup(argc, argv, "test-eventtime");
	if (h_tmp_init("eventtime") < 0)
		return 99;
	const char *only = getenv("EVENTTIME_ONLY");
	if (!only || strstr(only, "backlog"))
		test_backlog();
	if (!only || strstr(only, "crash"))
		test_crash();
	if (!only || strstr(only, "idle"))
		test_idle_and_late();
	if (!only || strstr(only, "moved"))
		test_moved();
	if (!only || strstr(only, "revoked"))
		test_revoked();
	free(url);
	h_tmp_cleanup();
	return tap_done();
}
