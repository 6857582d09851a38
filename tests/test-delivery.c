/*
 * Commit only after delivery (docs/guarantees.md, "The commit cycle", step 3): a worker
 * never commits the offset of an event whose outputs are not delivered, and a SIGKILL
 * while outputs are undelivered loses none of them.
 *
 * The embedded broker delivers within milliseconds, so a worker that committed without
 * waiting would pass every other test. Here the cluster is a steerable mock (mock.h) of
 * three brokers: the input topic and the group coordinator live on broker 1, the output
 * topic on broker 2, the changelog of the agent's table (a count per key) on broker 3.
 * One broker's Produce requests are made to fail (NOT_ENOUGH_REPLICAS, which librdkafka
 * retries) while new inputs arrive: the outputs, or the changelog records, of those inputs
 * stay undelivered for a few seconds, the events themselves are processed at once.
 *
 *  1. While the outputs are stalled, the group's committed offset never passes an input
 *     whose output is not in the output topic (sampled repeatedly during the stall).
 *  2. The worker is killed with SIGKILL during the stall; a new worker of the group
 *     produces every input's output (at-least-once: nothing lost).
 *  2b. The same with the changelog stalled (the outputs are delivered): the committed
 *     offset does not move during the stall; after a SIGKILL, a worker on an empty data
 *     dir (rebuilt from the changelog) counts on exactly (checked at the end: one more
 *     input per key, whose output carries the key's count).
 *  3. A permanent refusal (TOPIC_AUTHORIZATION_FAILED, not retried): the worker commits
 *     nothing past the refused output and stops with status 1; the next worker produces
 *     the refused outputs.
 *
 * Breaking the guarantee (committing the cycle's offsets without waiting for
 * ag__acks_committable(&w->delivered) in worker.c's cycle_check) fails checks 1 and 2;
 * waiting only for what was produced before the cycle's changelog records (cycle_seq taken
 * before ag__tables_cycle_begin) fails 2b; committing after a failed delivery (ignoring
 * w->no_commit) fails check 3.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "mock.h"

#define N_FIRST 200 /* inputs processed and committed before the stall */
#define N_STALLED 100 /* inputs whose outputs stall */
#define N_CL 100 /* inputs whose changelog records stall */
#define N_REFUSED 50 /* inputs whose first outputs are refused */
#define D_KEYS 4 /* input i has key "k(i % D_KEYS)" */
#define STALL_ERRORS 40 /* failed Produce requests: ~100 ms of retry backoff each */
#define API_PRODUCE 0
#define ERR_NOT_ENOUGH_REPLICAS 19
#define ERR_TOPIC_AUTHORIZATION_FAILED 29

static struct ag_table *dcount;

/* D: counts inputs per key; "out-VALUE=COUNT" for each input, to d-out. */
static int
agent_d(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes k = ag_event_key(ev), v = ag_event_value(ev);
		int64_t n = 0;
		TRY(ag_table_add_i64(dcount, &k, 1, &n));
		char out[64];
		snprintf(out, sizeof(out), "out-%.*s=%lld", (int)v.len,
			 v.ptr ? (const char *)v.ptr : "", (long long)n);
		TRY(ag_stream_yield(s, NULL, &(struct ag_bytes){out, strlen(out)}));
	}
	return rc == AG_EOF ? 0 : rc;
}

static int
setup_d(struct ag_app *app)
{
	struct ag_topic *in, *out;
	struct ag_agent *a;
	TRY(ag_app_set_id(app, "td"));
	TRY(ag_app_topic(app, "d-in", &(struct ag_topic_opts){.partitions = 1}, &in));
	TRY(ag_app_topic(app, "d-out", &(struct ag_topic_opts){.partitions = 1}, &out));
	TRY(ag_app_table(app, "dcount", in, NULL, &dcount));
	TRY(ag_app_agent(app, "D", in, agent_d, NULL, &a));
	TRY(ag_agent_sink_topic(a, out));
	return 0;
}

static struct h_mock mock;

static pid_t
start_worker(const char *name)
{
	char dir[300];
	path_in(dir, sizeof(dir), name);
	const char *const args[] = {
		"worker", "--broker", mock.url, "--datadir", dir, "--commit-interval",
		"0.2",    "-l",       "info",   NULL};
	return spawn(name, setup_d, args);
}

static void
produce_inputs(int from, int to)
{
	rd_kafka_t *p = producer_new(mock.bootstrap);
	for (int i = from; i < to; i++) {
		char key[16], value[16];
		snprintf(key, sizeof(key), "k%d", i % D_KEYS);
		snprintf(value, sizeof(value), "%05d", i);
		produce_text(p, "d-in", 0, key, value);
	}
	producer_close(p, "inputs");
}

/* The number of leading inputs (0, 1, ...) whose output c holds. */
static int
covered_prefix(const struct coll *c, int total)
{
	char *seen = calloc((size_t)total, 1);
	for (size_t i = 0; i < c->n; i++) {
		int v;
		if (c->m[i].value && sscanf(c->m[i].value, "out-%d", &v) == 1 && v >= 0 &&
		    v < total)
			seen[v] = 1;
	}
	int n = 0;
	while (n < total && seen[n])
		n++;
	free(seen);
	return n;
}

static int64_t
committed_in(void)
{
	int64_t committed[1] = {-2}, high[1];
	if (group_offsets(mock.bootstrap, "td", "d-in", 1, committed, NULL, high) < 0)
		return -2;
	return committed[0];
}

/* Failed Produce requests still to come from broker b. */
static long
stall_left(int b)
{
	return h_mock_cmd(&mock, "stack %d %d", b, API_PRODUCE);
}

int
main(void)
{
	if (h_tmp_init("delivery") < 0)
		return 99;
	const int total = N_FIRST + N_STALLED, t2 = total + N_CL, all = t2 + N_REFUSED;
	static const ag_app_setup_fn setups[] = {setup_d, NULL};
	if (h_mock_start(&mock, "mock", setups, 3) < 0) {
		printf("# Bail out! cannot start the mock cluster\n");
		return 99;
	}
	ok(h_mock_cmd(&mock, "leader d-in 0 1") == 0 &&
		   h_mock_cmd(&mock, "leader d-out 0 2") == 0 &&
		   h_mock_cmd(&mock, "leader td-dcount-changelog 0 3") == 0 &&
		   h_mock_cmd(&mock, "coordinator td 1") == 0,
	   "the input and the group on broker 1, the output on broker 2, the changelog on 3");

	uint64_t t0 = now_ms();
	produce_inputs(0, N_FIRST);
	pid_t w1 = start_worker("w1");
	struct coll out;
	coll_open(&out, mock.bootstrap, "d-out", 1);
	coll_wait(&out, N_FIRST, 30000);
	int64_t c = -2;
	for (uint64_t end = now_ms() + 20000; (c = committed_in()) < N_FIRST && now_ms() < end;)
		usleep(100 * 1000);
	ok_int_eq(c, N_FIRST, "before the stall: the first %d inputs are committed", N_FIRST);
	ok_int_eq(covered_prefix(&out, total), N_FIRST, "and their outputs delivered");

	/* Outputs stall from here; the inputs still arrive and are processed at once. */
	ok_int_eq(h_mock_cmd(&mock, "broker-errors 2 %d %d %d", API_PRODUCE, STALL_ERRORS,
			     ERR_NOT_ENOUGH_REPLICAS),
		  0, "broker 2 fails the next %d Produce requests", STALL_ERRORS);
	produce_inputs(N_FIRST, total);

	/*
	 * 1: sample the committed offset, then the outputs, until half the failures are used
	 * (the worker has been retrying its outputs for a while, through several commit
	 * intervals). An output read after the offset was cannot make the check pass wrongly:
	 * outputs only grow.
	 */
	int samples = 0, passed = 0, worst_c = -1, worst_cov = -1;
	long left = STALL_ERRORS;
	for (uint64_t end = now_ms() + 30000; now_ms() < end;) {
		left = stall_left(2);
		if (left <= STALL_ERRORS / 2)
			break;
		c = committed_in();
		coll_poll(&out, 50);
		int cov = covered_prefix(&out, total);
		samples++;
		if (c > cov && passed++ == 0) {
			worst_c = (int)c;
			worst_cov = cov;
		}
	}
	printf("# %d samples during the stall; %ld failures left; %zu outputs\n", samples, left,
	       out.n);
	ok(samples >= 3 && left > 0 && left <= STALL_ERRORS / 2,
	   "1: the stall was observed (%d samples, %ld of %d failures left)", samples, left,
	   STALL_ERRORS);
	ok(passed == 0,
	   "1: the committed offset never passed an input whose output was undelivered (%d "
	   "samples did; first: committed %d, outputs up to %d)",
	   passed, worst_c, worst_cov);
	ok(covered_prefix(&out, total) < total, "1: outputs were still missing during the stall");

	/* 2: SIGKILL while outputs are undelivered; the next worker makes up for them. */
	kill(w1, SIGKILL);
	int status;
	waitpid(w1, &status, 0);
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "2: the worker killed with SIGKILL");
	long after_kill = stall_left(2);
	ok(after_kill > 0, "2: killed during the stall (%ld failures left)", after_kill);
	int64_t c_kill = committed_in();
	printf("# at the kill: committed %lld, outputs cover %d of %d\n", (long long)c_kill,
	       covered_prefix(&out, total), total);

	coll_close(&out); /* no librdkafka handle may live across a fork */
	pid_t w2 = start_worker("w2");
	coll_open(&out, mock.bootstrap, "d-out", 1);
	for (uint64_t end = now_ms() + 60000;
	     covered_prefix(&out, total) < total && now_ms() < end;)
		coll_poll(&out, 100);
	for (uint64_t end = now_ms() + 20000; (c = committed_in()) < total && now_ms() < end;)
		usleep(100 * 1000);
	ok_int_eq(covered_prefix(&out, total), total,
		  "2: every input has its output after the restart (none lost in the kill)");
	ok_int_eq(c, total, "2: the new worker commits every input");

	/* 2b: the changelog stalls; the outputs do not. */
	ok_int_eq(h_mock_cmd(&mock, "broker-errors 3 %d %d %d", API_PRODUCE, STALL_ERRORS,
			     ERR_NOT_ENOUGH_REPLICAS),
		  0, "2b: broker 3 fails the next %d Produce requests", STALL_ERRORS);
	produce_inputs(total, t2);
	samples = passed = 0;
	int64_t worst = -1;
	for (uint64_t end = now_ms() + 30000; now_ms() < end;) {
		left = stall_left(3);
		if (left <= STALL_ERRORS / 2)
			break;
		c = committed_in();
		samples++;
		if (c != total && passed++ == 0)
			worst = c;
	}
	coll_poll(&out, 50);
	ok(samples >= 3 && left > 0 && left <= STALL_ERRORS / 2,
	   "2b: the stall was observed (%d samples, %ld of %d failures left)", samples, left,
	   STALL_ERRORS);
	ok(passed == 0,
	   "2b: while the changelog is undelivered the committed offset stays at %d (%d samples "
	   "moved; first: %lld)",
	   total, passed, (long long)worst);
	ok_int_eq(covered_prefix(&out, t2), t2, "2b: the outputs were delivered meanwhile");
	kill(w2, SIGKILL);
	waitpid(w2, &status, 0);
	long left3 = stall_left(3);
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && left3 > 0,
	   "2b: the worker killed with SIGKILL during the stall (%ld failures left)", left3);
	coll_close(&out);
	w2 = start_worker("w2b"); /* an empty data dir: the table comes from the changelog */
	coll_open(&out, mock.bootstrap, "d-out", 1);
	for (uint64_t end = now_ms() + 30000; (c = committed_in()) < t2 && now_ms() < end;)
		usleep(100 * 1000);
	ok_int_eq(c, t2, "2b: a worker on an empty data dir commits every input");

	/* 3: the next Produce request to broker 2 is refused for good. */
	ok_int_eq(h_mock_cmd(&mock, "broker-errors 2 %d 1 %d", API_PRODUCE,
			     ERR_TOPIC_AUTHORIZATION_FAILED),
		  0, "3: broker 2 refuses the next Produce request");
	produce_inputs(t2, all);
	status = wait_exit(w2, 30000);
	ok(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1,
	   "3: the worker stops with status 1 after a refused delivery (wait status %d)", status);
	c = committed_in();
	coll_poll(&out, 200);
	int cov = covered_prefix(&out, all);
	ok(c <= cov,
	   "3: its committed offset (%lld) does not pass a refused output (outputs up "
	   "to %d)",
	   (long long)c, cov);
	ok(cov < all, "3: outputs were refused (outputs up to %d of %d)", cov, all);
	char log[300];
	path_in(log, sizeof(log), "w2b.log");
	char *text = slurp(log);
	static const char *const refusal[] = {"could not deliver a message to d-out", NULL};
	ok(text && find_line(text, refusal), "3: the log names the refused topic");
	free(text);
	coll_close(&out);
	pid_t w3 = start_worker("w3");
	coll_open(&out, mock.bootstrap, "d-out", 1);
	for (uint64_t end = now_ms() + 60000; covered_prefix(&out, all) < all && now_ms() < end;)
		coll_poll(&out, 100);
	ok_int_eq(covered_prefix(&out, all), all,
		  "3: the next worker produces the refused outputs (none lost)");

	/* The counts went through every crash above exactly: one more input per key. */
	produce_inputs(all, all + D_KEYS);
	for (uint64_t end = now_ms() + 30000;
	     covered_prefix(&out, all + D_KEYS) < all + D_KEYS && now_ms() < end;)
		coll_poll(&out, 100);
	int exact = 0;
	for (size_t i = 0; i < out.n; i++) {
		int v, n;
		if (out.m[i].value && sscanf(out.m[i].value, "out-%d=%d", &v, &n) == 2 &&
		    v >= all) {
			int expect = (all + D_KEYS - 1 - v % D_KEYS) / D_KEYS + 1;
			if (n == expect)
				exact++;
			else
				printf("# input %d: count %d, expected %d\n", v, n, expect);
		}
	}
	ok_int_eq(exact, D_KEYS, "every key's count is exact after the kills and the rebuild");
	stop_child(w3, "3: the next worker");
	check_log_clean("w1");
	check_log_clean("w2");
	check_log_clean("w2b");
	check_log_clean("w3");
	coll_close(&out);
	printf("# %.1f s\n", (double)(now_ms() - t0) / 1000.0);
	int st = h_mock_stop(&mock);
	ok(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the mock cluster exits with 0");
	h_tmp_cleanup();
	return tap_done();
}
