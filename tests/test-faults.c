/*
 * Broker and worker faults on a real Apache Kafka, with the withdrawals example: while
 * withdrawals stream in, something fails; afterwards every user's last total (topic
 * user-totals) and every closed country window (topic country-window-totals) must equal a
 * plain recomputation of the input.
 *
 *   test-faults MODULE SCENARIO KAFKA_SH
 *
 * MODULE is build/examples/withdrawals.so, KAFKA_SH scripts/kafka.sh. Scenarios:
 *
 *   outage       the single broker SIGKILLed mid-stream and restarted after 10 s; during
 *                the outage a worker started with no broker reachable says what it waits
 *                for and exits 0 on SIGTERM, and another one joins once the broker is back
 *   outage-short the same with a 3 s outage and a shorter stream (suite kafka)
 *   leader       three brokers; the one leading the most partitions SIGKILLed mid-stream
 *   storm        three workers SIGKILLed 12 times at random moments during a 60 s stream,
 *                each restarted at once; the group must settle after the last kill
 *   compaction   the user table's changelog compacted by the broker, then restored into an
 *                empty data dir: the exact table
 *
 * outage-short runs on the cluster of FAUSTC_TEST_KAFKA, whose scripts/kafka.sh dir is
 * FAUSTC_TEST_KAFKA_DIR (scripts/test.sh sets both), and skips without them; compaction
 * runs on FAUSTC_TEST_KAFKA and skips without it (both suite kafka). The others start a
 * cluster of their own in the test's temporary directory (suite faults).
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define USERS 40
#define NWIN_MAX 16
#define T0 1700000000000ll /* a multiple of 10 s */
#define STEP_MS 20 /* event i at T0 + i * STEP_MS: 50 per window of 10 s */
#define MAX_WORKERS 5

static const char *const countries[] = {"NO", "SE", "DK", "FI", "IS"};
#define NCOUNTRY 5

static ag_app_setup_fn setup;
static const char *kafka_sh;
static char kdir[300];
static char bootstrap[512];
static char url[600];
static int nevents;
static double user_total[USERS];
static double window_total[NCOUNTRY][NWIN_MAX];
static const char *const *extra_args; /* worker arguments of the scenario */
/* The workers w0..: pid and generation (wK-G.log); exits seen by supervise(). */
static pid_t wpid[MAX_WORKERS];
static int wgen[MAX_WORKERS];
static int nworkers;
static int fatal_restarts, bad_exits;

static double
amount_of(int i)
{
	return (double)(i % 40) * 0.25 + 1.0; /* exact in binary: sums do not round */
}

static void
produce_range(int from, int to)
{
	rd_kafka_t *p = producer_new(bootstrap);
	for (int i = from; i < to; i++) {
		char user[16];
		int u = (i * 7) % USERS, c = (i / 3) % NCOUNTRY;
		snprintf(user, sizeof(user), "u%d", u);
		int64_t ts = T0 + (int64_t)i * STEP_MS;
		h_withdrawal(p, -1, user, countries[c], amount_of(i), ts);
		user_total[u] += amount_of(i);
		window_total[c][(ts - T0) / 10000] += amount_of(i);
	}
	producer_close(p, "a batch of withdrawals");
}

/* One event per country far ahead in time: closes every window of the input. */
static void
produce_flush(void)
{
	h_withdrawals_flush(bootstrap, countries, NCOUNTRY, T0 + 3600000);
}

/* Runs scripts/kafka.sh with args; returns its exit status (its stderr goes to ours). */
static int
kafka_cmd(const char *args)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s %s --dir %s >&2", kafka_sh, args, kdir);
	int st = system(cmd);
	return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Starts a cluster of n brokers in h_tmp/kafka; bootstrap is set. */
static int
cluster_start(int n)
{
	char cmd[1024];
	path_in(kdir, sizeof(kdir), "kafka");
	snprintf(cmd, sizeof(cmd), "%s start --brokers %d --dir %s | tail -1", kafka_sh, n, kdir);
	FILE *f = popen(cmd, "r");
	if (!f || !fgets(bootstrap, sizeof(bootstrap), f)) {
		if (f)
			pclose(f);
		return -1;
	}
	bootstrap[strcspn(bootstrap, "\n")] = 0;
	return pclose(f) == 0 && bootstrap[0] ? 0 : -1;
}

static pid_t
start_worker(const char *name, const char *datadir)
{
	char dir[300];
	path_in(dir, sizeof(dir), datadir);
	/* FAUSTC_TEST_LOG=debug: the workers' logs say more (docs/broker.md). */
	const char *level = getenv("FAUSTC_TEST_LOG") ? getenv("FAUSTC_TEST_LOG") : "info";
	const char *args[32] = {"worker", "--broker", url,   "--datadir",  dir, "--commit-interval",
				"0.5",    "-l",       level, "--web-port", "0"};
	int n = 11;
	for (int i = 0; extra_args && extra_args[i] && n < 30; i++)
		args[n++] = extra_args[i];
	args[n] = NULL;
	return spawn(name, setup, args);
}

static void
worker_name(char *buf, size_t cap, int k, int generation)
{
	snprintf(buf, cap, "w%d-%d", k, generation);
}

static pid_t
start_numbered(int k, int generation)
{
	char name[64], d[32];
	snprintf(d, sizeof(d), "w%d-data", k);
	worker_name(name, sizeof(name), k, generation);
	return start_worker(name, d);
}

static void
worker_add(void)
{
	wpid[nworkers] = start_numbered(nworkers, 0);
	nworkers++;
}

/*
 * Does what a supervisor (systemd, Kubernetes) does: a worker that exited is started
 * again. The only exit expected is a consumer's fatal error (librdkafka fences a static
 * member whose session timed out while its coordinator moved): counted; any other counts
 * as bad.
 */
static void
supervise(void)
{
	for (int k = 0; k < nworkers; k++) {
		int st;
		if (waitpid(wpid[k], &st, WNOHANG) != wpid[k])
			continue;
		char name[64], path[400];
		worker_name(name, sizeof(name), k, wgen[k]);
		snprintf(path, sizeof(path), "%s/%s.log", h_tmp, name);
		char *text = slurp(path);
		const char *line =
			text ? find_line(text,
					 (const char *const[]){"consumer failed for good", NULL})
			     : NULL;
		printf("# %s exited (wait status %d)%s; started again\n", name, st,
		       line ? " on a fatal consumer error" : "");
		if (line)
			printf("#   %.*s\n", (int)strcspn(line, "\n"), line);
		if (line && WIFEXITED(st) && WEXITSTATUS(st) == 1)
			fatal_restarts++;
		else
			bad_exits++;
		free(text);
		wpid[k] = start_numbered(k, ++wgen[k]);
	}
}

/* The child's log (NAME.log) holds a line with every needle; waits up to ms. */
static const char *
log_has(const char *name, const char *const *needles, int ms, char **text)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/%s.log", h_tmp, name);
	uint64_t end = now_ms() + (uint64_t)ms;
	for (;;) {
		free(*text);
		*text = slurp(path);
		const char *line = *text ? find_line(*text, needles) : NULL;
		if (line || now_ms() > end)
			return line;
		usleep(100 * 1000);
	}
}

/* Some worker's log (any generation) holds a line with every needle; waits up to ms. */
static const char *
any_log_has(const char *const *needles, int ms, char **text)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	for (;;) {
		for (int k = 0; k < nworkers; k++) {
			for (int g = 0; g <= wgen[k]; g++) {
				char name[64];
				worker_name(name, sizeof(name), k, g);
				const char *line = log_has(name, needles, 0, text);
				if (line)
					return line;
			}
		}
		if (now_ms() > end)
			return NULL;
		supervise();
		usleep(200 * 1000);
	}
}

static void
print_line(const char *line)
{
	if (line)
		printf("#   %.*s\n", (int)strcspn(line, "\n"), line);
}

/*
 * Waits until the group committed every withdrawal produced so far. Returns the seconds it
 * took, or -1 after timeout_ms.
 */
static double
wait_committed(int timeout_ms)
{
	uint64_t t0 = now_ms();
	int64_t committed[8], high[8];
	while (now_ms() - t0 < (uint64_t)timeout_ms) {
		int settled = group_offsets(bootstrap, "withdrawals", "withdrawals", 8, committed,
					    NULL, high) == 0;
		for (int p = 0; p < 8 && settled; p++)
			settled = committed[p] == high[p];
		if (settled)
			return (double)(now_ms() - t0) / 1000.0;
		supervise();
		usleep(250 * 1000);
	}
	return -1;
}

static void
check_users(struct coll *c)
{
	h_check_user_totals(c, user_total, USERS);
}

static void
check_windows(struct coll *c)
{
	h_check_window_totals(c, countries, NCOUNTRY, &window_total[0][0], NWIN_MAX,
			      nevents * STEP_MS / 10000, T0);
}

/* Every withdrawal committed, then the flush, then the outputs compared. */
static void
check_totals(void)
{
	double s = wait_committed(180000);
	ok(s >= 0, "every withdrawal is processed and committed (%.1f s after the last batch)", s);
	produce_flush();
	struct coll users, windows;
	coll_open(&users, bootstrap, "user-totals", 8);
	coll_open(&windows, bootstrap, "country-window-totals", 8);
	size_t expect_windows = 0;
	for (int k = 0; k < NCOUNTRY; k++)
		for (int x = 0; x < nevents * STEP_MS / 10000; x++)
			expect_windows += window_total[k][x] != 0;
	coll_wait(&windows, expect_windows, 60000);
	coll_wait(&users, (size_t)nevents, 30000);
	sleep_ticking(3000);
	coll_poll(&users, 0);
	coll_poll(&windows, 0);
	printf("# %zu user totals, %zu window totals\n", users.n, windows.n);
	check_users(&users);
	check_windows(&windows);
	coll_close(&users);
	coll_close(&windows);
}

/* `faustc broker` on the cluster: creates the app's topics, then waits for SIGTERM. */
static pid_t
topics_create(void)
{
	char url_file[300], dir[300], kurl[600];
	path_in(url_file, sizeof(url_file), "broker.url");
	path_in(dir, sizeof(dir), "broker-data");
	snprintf(kurl, sizeof(kurl), "kafka://%s", bootstrap);
	const char *const args[] = {"broker",    "--broker", kurl, "--addr-file", url_file,
				    "--datadir", dir,        "-l", "warn",        NULL};
	pid_t pid = spawn("broker", setup, args);
	char *u = wait_line(url_file, 120000);
	ok(u != NULL, "the app's topics are created on %s", bootstrap);
	if (!u) {
		printf("# Bail out! no topics\n");
		kill(pid, SIGKILL);
		exit(99);
	}
	snprintf(url, sizeof(url), "%s", u);
	free(u);
	return pid;
}

static void
stop_all(pid_t broker)
{
	supervise();
	ok(bad_exits == 0,
	   "no worker exited but on a consumer's fatal error (%d did and were started again)",
	   fatal_restarts);
	for (int k = 0; k < nworkers; k++) {
		char what[32], name[64], *text = NULL;
		/* One just started again: SIGTERM once it runs (its handlers are set). */
		worker_name(name, sizeof(name), k, wgen[k]);
		log_has(name, (const char *const[]){"worker started", NULL}, 60000, &text);
		free(text);
		snprintf(what, sizeof(what), "worker %d", k);
		text = NULL;
		if (log_has(name, (const char *const[]){"consumer failed for good", NULL}, 0,
			    &text)) {
			/* Fenced just now: it is on its way out with status 1 (as supervise sees). */
			int st = wait_exit(wpid[k], 30000);
			ok(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
			   "%s, its consumer fenced, exits with status 1 (wait status %d)", what,
			   st);
			fatal_restarts++;
		} else {
			stop_child(wpid[k], what);
		}
		free(text);
		check_log_clean(name);
	}
	kill(broker, SIGTERM);
	wait_exit(broker, 30000);
}

/*
 * The single broker killed mid-stream and restarted after outage_s. During the outage a
 * worker with no broker reachable waits (and exits 0 on SIGTERM), another one joins later.
 */
static void
scenario_outage(int outage_s, int batches, int batch)
{
	/* A consumer and a producer property: each goes to its clients only, no CONFWARN. */
	static const char *const conf[] = {"--kafka-config", "session.timeout.ms=10000",
					   "--kafka-config", "linger.ms=5", NULL};
	extra_args = conf;
	nevents = batches * batch;
	pid_t broker = topics_create();
	for (int k = 0; k < 3; k++)
		worker_add();
	int kill_after = batches / 2;
	for (int b = 0; b < batches; b++) {
		produce_range(b * batch, (b + 1) * batch);
		if (b != kill_after - 1)
			continue;
		/* Processing is under way (the group formed, totals flow) when the broker dies. */
		ok(wait_committed(120000) >= 0, "the first %d withdrawals are processed",
		   (b + 1) * batch);
		ok(kafka_cmd("kill --broker 1") == 0, "the broker is SIGKILLed");
		uint64_t killed = now_ms();
		pid_t nb = start_worker("nobroker", "nobroker-data");
		char *text = NULL;
		const char *line =
			log_has("nobroker", (const char *const[]){"waiting for broker at", NULL},
				30000, &text);
		ok(line != NULL,
		   "a worker started with no broker reachable says what it waits for");
		print_line(line);
		stop_child(nb, "the worker waiting for a broker");
		worker_add(); /* w3, joins when the broker is back */
		const char *const down[] = {"WARN", "no broker reachable at", NULL};
		line = any_log_has(down, 30000, &text);
		ok(line != NULL, "a running worker warns that the broker is down");
		print_line(line);
		while (now_ms() - killed < (uint64_t)outage_s * 1000)
			usleep(100 * 1000);
		ok(kafka_cmd("restart --broker 1") == 0, "the broker is started again after %d s",
		   outage_s);
		uint64_t back = now_ms();
		double s = wait_committed(180000);
		ok(s >= 0,
		   "every withdrawal before the outage is committed %.1f s after the restart",
		   s >= 0 ? (double)(now_ms() - back) / 1000.0 : -1.0);
		const char *const joined[] = {"partitions assigned: ", "withdrawals[", NULL};
		line = log_has("w3-0", joined, 60000, &text);
		ok(line != NULL, "the worker started during the outage joined the group");
		print_line(line);
		const char *const again[] = {"reachable again", NULL};
		line = any_log_has(again, 30000, &text);
		ok(line != NULL, "a running worker says the broker is reachable again");
		print_line(line);
		free(text);
	}
	check_totals();
	char *text = NULL;
	const char *line = any_log_has((const char *const[]){"CONFWARN", NULL}, 0, &text);
	ok(line == NULL, "no client warns about a --kafka-config property it does not use");
	print_line(line);
	free(text);
	stop_all(broker);
}

/* Three brokers: the one leading the most partitions killed mid-stream, not restarted. */
static void
scenario_leader(void)
{
	int batches = 8, batch = 250;
	nevents = batches * batch;
	pid_t broker = topics_create();
	for (int k = 0; k < 3; k++)
		worker_add();
	for (int b = 0; b < batches; b++) {
		produce_range(b * batch, (b + 1) * batch);
		if (b != 2)
			continue;
		ok(wait_committed(120000) >= 0, "the first %d withdrawals are processed",
		   (b + 1) * batch);
		char cmd[1024], leader[16] = "";
		snprintf(cmd, sizeof(cmd), "%s leader --dir %s", kafka_sh, kdir);
		FILE *f = popen(cmd, "r");
		if (f && fgets(leader, sizeof(leader), f))
			leader[strcspn(leader, "\n")] = 0;
		if (f)
			pclose(f);
		ok(atoi(leader) >= 1 && atoi(leader) <= 3, "broker %s leads the most partitions",
		   leader);
		snprintf(cmd, sizeof(cmd), "kill --broker %d", atoi(leader) ? atoi(leader) : 1);
		ok(kafka_cmd(cmd) == 0, "broker %s is SIGKILLed", leader);
		uint64_t t0 = now_ms();
		produce_range((b + 1) * batch, (b + 2) * batch);
		b++;
		double s = wait_committed(180000);
		ok(s >= 0, "a batch produced after the kill is processed and committed (%.1f s)",
		   s >= 0 ? (double)(now_ms() - t0) / 1000.0 : -1.0);
	}
	check_totals();
	stop_all(broker);
}

/* Twelve SIGKILLs at random moments of a 60 s stream, each worker restarted at once. */
static void
scenario_storm(void)
{
	static const char *const storm_conf[] = {"--kafka-config",
						 "session.timeout.ms=6000",
						 "--kafka-config",
						 "heartbeat.interval.ms=500",
						 "--kafka-config",
						 "max.poll.interval.ms=15000",
						 NULL};
	extra_args = storm_conf;
	int batches = 24, batch = 125; /* 3000 events, one batch every 2.5 s */
	nevents = batches * batch;
	pid_t broker = topics_create();
	for (int k = 0; k < 3; k++)
		worker_add();
	/* Kill times: 12 random moments in the 60 s. */
	uint64_t at[12];
	for (int i = 0; i < 12; i++)
		at[i] = (uint64_t)(rand() % 58000) + 1000;
	for (int i = 0; i < 12; i++)
		for (int j = i + 1; j < 12; j++)
			if (at[j] < at[i]) {
				uint64_t t = at[i];
				at[i] = at[j];
				at[j] = t;
			}
	uint64_t t0 = now_ms(), last_kill = 0;
	int kills = 0;
	for (int b = 0; b < batches || kills < 12;) {
		uint64_t now = now_ms() - t0;
		if (kills < 12 && now >= at[kills]) {
			int k = rand() % 3;
			kill(wpid[k], SIGKILL);
			waitpid(wpid[k], NULL, 0);
			kills++;
			last_kill = now_ms();
			usleep(500 * 1000); /* as the wedge was seen: restarted 0.5 s later */
			wpid[k] = start_numbered(k, ++wgen[k]);
			continue;
		}
		if (b < batches && now >= (uint64_t)b * 2500) {
			produce_range(b * batch, (b + 1) * batch);
			b++;
			continue;
		}
		usleep(20 * 1000);
	}
	printf("# %d SIGKILLs during a %.1f s stream of %d withdrawals\n", kills,
	       (double)(now_ms() - t0) / 1000.0, nevents);
	double s = wait_committed(240000);
	ok(s >= 0,
	   "the group settles after the last kill: every withdrawal committed %.1f s "
	   "after it",
	   s >= 0 ? (double)(now_ms() - last_kill) / 1000.0 : -1.0);
	check_totals();
	stop_all(broker);
}

/* Creates topic with partitions and the NULL-terminated config pairs, through the admin API. */
static int
topic_create(const char *topic, int partitions, const char *const *conf)
{
	rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, bootstrap, NULL);
	char err[256];
	rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof(err));
	for (int i = 0; nt && conf[i]; i += 2)
		rd_kafka_NewTopic_set_config(nt, conf[i], conf[i + 1]);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
	int rc = -1;
	if (ev && !rd_kafka_event_error(ev)) {
		size_t n = 0;
		const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(
			rd_kafka_event_CreateTopics_result(ev), &n);
		rc = n == 1 && !rd_kafka_topic_result_error(res[0]) ? 0 : -1;
		if (rc < 0 && n == 1)
			printf("# create %s: %s\n", topic,
			       rd_kafka_topic_result_error_string(res[0]));
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(q);
	rd_kafka_NewTopic_destroy(nt);
	rd_kafka_destroy(rk);
	return rc;
}

/*
 * The broker compacts the user table's changelog (a test-only topic config that makes the
 * cleaner run within seconds), then a worker with an empty data dir restores the table from
 * it: every user's total in its LMDB must equal the recomputation.
 */
static void
scenario_compaction(void)
{
	static const char *const clog = "withdrawals-user_to_total-changelog";
	static const char *const conf[] = {"cleanup.policy",
					   "compact",
					   "segment.ms",
					   "200",
					   "min.cleanable.dirty.ratio",
					   "0.01",
					   "min.compaction.lag.ms",
					   "0",
					   "delete.retention.ms",
					   "0",
					   NULL};
	ok(topic_create(clog, 8, conf) == 0,
	   "%s is created with segment.ms=200 and "
	   "min.cleanable.dirty.ratio=0.01",
	   clog);
	int batches = 12, batch = 250;
	nevents = batches * batch;
	pid_t broker = topics_create();
	for (int k = 0; k < 3; k++)
		worker_add();
	for (int b = 0; b < batches; b++) {
		produce_range(b * batch, (b + 1) * batch);
		usleep(700 * 1000); /* a commit cycle or so each: many records per key */
	}
	ok(wait_committed(180000) >= 0, "every withdrawal is processed and committed");
	for (int k = 0; k < 3; k++) {
		char what[32];
		snprintf(what, sizeof(what), "worker %d", k);
		stop_child(wpid[k], what);
	}
	/* Compacted: fewer records readable than offsets written. */
	int64_t committed[8], lo[8], hi[8];
	size_t readable = 0;
	int64_t written = 0;
	uint64_t t0 = now_ms();
	for (int tries = 0; tries < 40; tries++) {
		written = 0;
		if (group_offsets(bootstrap, "compaction-check", clog, 8, committed, lo, hi) < 0)
			continue;
		for (int p = 0; p < 8; p++)
			written += hi[p] - lo[p];
		struct coll c;
		coll_open(&c, bootstrap, clog, 8);
		coll_wait(&c, (size_t)written, 3000);
		readable = c.n;
		coll_close(&c);
		if ((int64_t)readable < written)
			break;
		usleep(2000 * 1000);
	}
	ok((int64_t)readable < written,
	   "the broker compacted the changelog: %zu records readable of %lld written (%.0f s "
	   "after the workers stopped)",
	   readable, (long long)written, (double)(now_ms() - t0) / 1000.0);
	/* An empty data dir: the whole table comes from the compacted changelog. */
	char dir[300];
	path_in(dir, sizeof(dir), "fresh-data");
	const char *const fresh_args[] = {"worker", "--broker",          url,   "--datadir",
					  dir,      "--commit-interval", "0.5", "-l",
					  "info",   "--web-port",        "0",   NULL};
	pid_t fresh = spawn("fresh", setup, fresh_args);
	char *text = NULL;
	int restored = 0;
	uint64_t end = now_ms() + 120000;
	while (restored < 8 && now_ms() < end) {
		restored = 0;
		for (int p = 0; p < 8; p++) {
			char needle[64];
			snprintf(needle, sizeof(needle), "restored user_to_total[%d]:", p);
			restored += log_has("fresh", (const char *const[]){needle, NULL}, 0,
					    &text) != NULL;
		}
		usleep(500 * 1000);
	}
	free(text);
	ok(restored == 8, "a worker with an empty data dir restored all 8 partitions (%d)",
	   restored);
	stop_child(fresh, "the restoring worker");
	check_log_clean("fresh");
	const char *const dump_args[] = {"table", "user_to_total", "--json", "--datadir", dir,
					 NULL};
	int st = wait_exit(spawn("dump", setup, dump_args), 30000);
	ok(st == 0, "faustc table user_to_total --json reads its LMDB");
	char path[400];
	snprintf(path, sizeof(path), "%s/dump.out", h_tmp);
	char *json = slurp(path);
	int exact = 0;
	for (int u = 0; u < USERS; u++) {
		char needle[32];
		snprintf(needle, sizeof(needle), "\"key\": \"u%d\"", u);
		const char *at = json ? strstr(json, needle) : NULL;
		double v = at ? h_json_num(at, "value") : NAN;
		if (v == user_total[u])
			exact++;
		else
			printf("#   u%d: restored %.2f, recomputed %.2f\n", u, v, user_total[u]);
	}
	free(json);
	ok(exact == USERS,
	   "every user's total restored from the compacted changelog equals the recomputation "
	   "(%d of %d)",
	   exact, USERS);
	kill(broker, SIGTERM);
	wait_exit(broker, 30000);
}

int
main(int argc, char **argv)
{
	setup = h_module_setup(argc, argv, "test-faults");
	if (argc < 4) {
		printf("# Bail out! usage: test-faults MODULE SCENARIO KAFKA_SH\n");
		return 99;
	}
	const char *scenario = argv[2];
	kafka_sh = argv[3];
	if (h_tmp_init("faults") < 0)
		return 99;
	unsigned seed = (unsigned)getpid();
	srand(seed);
	printf("# seed %u, scenario %s\n", seed, scenario);
	if (strcmp(scenario, "outage-short") == 0) {
		const char *dir = getenv("FAUSTC_TEST_KAFKA_DIR");
		char bfile[400];
		snprintf(bfile, sizeof(bfile), "%s/brokers", dir ? dir : "");
		char *nb = dir ? slurp(bfile) : NULL;
		if (!h_kafka || !dir || !nb || atoi(nb) != 1) {
			printf("1..0 # SKIP needs a single Kafka broker to kill and restart: "
			       "FAUSTC_TEST_KAFKA and FAUSTC_TEST_KAFKA_DIR (scripts/kafka.sh "
			       "--dir)\n");
			free(nb);
			h_tmp_cleanup();
			return 0;
		}
		free(nb);
		snprintf(kdir, sizeof(kdir), "%s", dir);
		snprintf(bootstrap, sizeof(bootstrap), "%s", h_kafka);
		h_kafka_reset();
		h_kafka = NULL; /* emptied once: spawn() leaves the cluster alone */
		scenario_outage(3, 4, 250);
	} else if (strcmp(scenario, "compaction") == 0) {
		if (!h_kafka) {
			printf("1..0 # SKIP compaction is Kafka's: needs FAUSTC_TEST_KAFKA\n");
			h_tmp_cleanup();
			return 0;
		}
		snprintf(bootstrap, sizeof(bootstrap), "%s", h_kafka);
		h_kafka_reset();
		h_kafka =
			NULL; /* spawn() must not empty the cluster again: the changelog is ours */
		scenario_compaction();
	} else {
		h_kafka =
			NULL; /* a cluster of its own: nothing of FAUSTC_TEST_KAFKA's is touched */
		int brokers = strcmp(scenario, "leader") == 0 ? 3 : 1;
		if (cluster_start(brokers) < 0) {
			printf("# Bail out! scripts/kafka.sh could not start %d broker(s) in %s\n",
			       brokers, kdir);
			kafka_cmd("stop");
			return 99;
		}
		printf("# Kafka: %d broker(s) at %s\n", brokers, bootstrap);
		if (strcmp(scenario, "outage") == 0)
			scenario_outage(10, 8, 250);
		else if (strcmp(scenario, "leader") == 0)
			scenario_leader();
		else if (strcmp(scenario, "storm") == 0)
			scenario_storm();
		else
			printf("# Bail out! unknown scenario %s\n", scenario);
		kafka_cmd("stop");
	}
	h_tmp_cleanup();
	return tap_done();
}
