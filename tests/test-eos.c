/*
 * processing_guarantee=exactly_once on real Kafka, checked exactly with read_committed
 * readers (the collector of harness.c keeps librdkafka's default isolation.level,
 * read_committed). One executable, one part per run (argv[2]):
 *   refusal     the embedded broker refuses exactly_once at start, saying why and how to
 *               run a real broker (runs on every broker: it always uses the embedded one)
 *   withdrawals the withdrawals example (argv[1]) on two workers, SIGKILLed at random
 *               moments while withdrawals stream in (FAUSTC_EOS_KILLS, default 3): per user,
 *               user-totals holds one value per input event, in order, each the exact
 *               running total; country-window-totals holds every closed window exactly once
 *               with its exact total
 *   zombie      two workers; one is stopped (SIGSTOP) past the session timeout while the
 *               other takes its partitions over and writes, then continued: nothing it
 *               wrote becomes visible, and it rejoins (its transaction aborted) or exits
 *               saying it was fenced
 *   abort       a value over the output topic's max.message.bytes fails one cycle's
 *               delivery: the transaction is aborted, nothing of it is visible, the events
 *               are processed again and no output is lost or doubled
 * The Kafka parts print a TAP skip on the embedded broker (it does not enforce
 * transactions). Usage: test-eos WITHDRAWALS_MODULE PART
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
#define NCOUNTRY 5
#define T0 1700000000000ll /* a multiple of 10 s */
#define STEP_MS 20 /* event i at T0 + i * STEP_MS */
#define MAXN 4000
#define NWIN (MAXN * STEP_MS / 10000 + 1)

static const char *const countries[NCOUNTRY] = {"NO", "SE", "DK", "FI", "IS"};

static ag_app_setup_fn withdrawals_setup;
static char kafka_url[512];
static const char *bootstrap;
static int produced; /* withdrawals 0..produced-1 went out */
static double window_total[NCOUNTRY][NWIN];

static double
amount_of(int i)
{
	return (double)(i % 40) * 0.25 + 1.0; /* exact in binary: sums do not round */
}

static int
user_of(int i)
{
	return (i * 7) % USERS;
}

/* Produces withdrawal i (its user as the key, its Kafka timestamp) and counts it in its window. */
static void
produce_withdrawal(rd_kafka_t *p, int i)
{
	char user[16];
	int c = (i / 3) % NCOUNTRY;
	snprintf(user, sizeof(user), "u%d", user_of(i));
	int64_t ts = T0 + (int64_t)i * STEP_MS;
	h_withdrawal(p, -1, user, countries[c], amount_of(i), ts);
	window_total[c][(ts - T0) / 10000] += amount_of(i);
}

static void
produce_withdrawals(int from, int to)
{
	rd_kafka_t *p = producer_new(bootstrap);
	for (int i = from; i < to; i++)
		produce_withdrawal(p, i);
	producer_close(p, "a batch of withdrawals");
	produced = to;
}

/*
 * Produces withdrawals from..to at a steady pace (20 every 20 ms, each group flushed) and
 * sends SIGSTOP to stop_pid halfway: the stopped worker is in the middle of the stream,
 * with events taken since its last commit in an open transaction.
 */
static void
produce_and_stop(int from, int to, pid_t stop_pid)
{
	rd_kafka_t *p = producer_new(bootstrap);
	for (int i = from; i < to; i++) {
		produce_withdrawal(p, i);
		if ((i - from) % 20 == 19) {
			rd_kafka_flush(p, 5000);
			usleep(20 * 1000);
		}
		if (i == from + (to - from) / 2)
			kill(stop_pid, SIGSTOP);
	}
	producer_close(p, "withdrawals around the SIGSTOP");
	produced = to;
}

/* One event per country far ahead in time: closes every window of the input. */
static void
produce_flush(void)
{
	h_withdrawals_flush(bootstrap, countries, NCOUNTRY, T0 + 3600000);
}

static pid_t
start_worker(ag_app_setup_fn setup, const char *id, int generation)
{
	/* FAUSTC_EOS_GUARANTEE=at_least_once shows what the checks catch without transactions. */
	const char *guarantee = getenv("FAUSTC_EOS_GUARANTEE");
	if (!guarantee)
		guarantee = "exactly_once";
	char dir[300], name[64], d[64];
	snprintf(d, sizeof(d), "%s-data", id);
	path_in(dir, sizeof(dir), d);
	snprintf(name, sizeof(name), "%s-%d", id, generation);
	/* --broker given: spawn does not empty the cluster for a restart. */
	const char *const args[] = {"worker",  "--broker",
				    kafka_url, "--datadir",
				    dir,       "--worker-id",
				    id,        "--processing-guarantee",
				    guarantee, "--commit-interval",
				    "0.3",     "--no-web",
				    "-l",      "info",
				    NULL};
	return spawn(name, setup, args);
}

/* Waits until the group committed every partition of topic up to its end. */
static int
wait_committed(const char *group, const char *topic, int partitions, int timeout_ms)
{
	int64_t committed[16], high[16];
	uint64_t t0 = now_ms();
	while (now_ms() - t0 < (uint64_t)timeout_ms) {
		int settled = group_offsets(bootstrap, group, topic, partitions, committed, NULL,
					    high) == 0;
		for (int p = 0; p < partitions && settled; p++)
			settled = committed[p] == high[p] || (high[p] == 0 && committed[p] < 0);
		if (settled)
			return 1;
		usleep(300 * 1000);
	}
	for (int p = 0; p < partitions; p++)
		printf("#   %s[%d]: committed %lld, end %lld\n", topic, p, (long long)committed[p],
		       (long long)high[p]);
	return 0;
}

/*
 * user-totals: per user, the totals in the order read must be the running totals of that
 * user's withdrawals 0..produced-1, one per withdrawal, nothing twice, nothing missing.
 */
static void
check_user_sequences(struct coll *c, const char *phase)
{
	int bad_users = 0;
	size_t seen[USERS] = {0}, expect[USERS] = {0};
	double running[USERS] = {0};
	int next_i[USERS]; /* the next withdrawal of the user to match */
	for (int i = 0; i < produced; i++)
		expect[user_of(i)]++;
	for (int u = 0; u < USERS; u++) {
		next_i[u] = -1;
		for (int i = 0; i < produced && next_i[u] < 0; i++)
			if (user_of(i) == u)
				next_i[u] = i;
	}
	int wrong[USERS] = {0};
	for (size_t k = 0; k < c->n; k++) {
		const struct msg *m = &c->m[k];
		int u = m->key && m->key[0] == 'u' ? atoi(m->key + 1) : -1;
		if (u < 0 || u >= USERS)
			continue;
		seen[u]++;
		if (next_i[u] < 0) {
			wrong[u]++;
			continue;
		}
		running[u] += amount_of(next_i[u]);
		double got = h_json_num(m->value, "total");
		if (got != running[u] && wrong[u]++ < 1)
			printf("#   u%d value %zu: %.2f, expected the running total %.2f\n", u,
			       seen[u], got, running[u]);
		int i = next_i[u] + 1;
		while (i < produced && user_of(i) != u)
			i++;
		next_i[u] = i < produced ? i : -1;
	}
	for (int u = 0; u < USERS; u++) {
		if (seen[u] != expect[u] || wrong[u]) {
			if (bad_users < 5)
				printf("#   u%d: %zu values for %zu withdrawals, %d wrong\n", u,
				       seen[u], expect[u], wrong[u]);
			bad_users++;
		}
	}
	ok(bad_users == 0,
	   "%s: every user's values in user-totals are its exact running totals, one per "
	   "withdrawal, in order (%d of %d users wrong; %zu values read)",
	   phase, bad_users, USERS, c->n);
}

static void
check_windows_once(struct coll *c)
{
	int repeated = h_check_window_totals(c, countries, NCOUNTRY, &window_total[0][0], NWIN,
					     produced * STEP_MS / 10000, T0);
	ok(repeated == 0, "no country window is published more than once (%d were)", repeated);
}

static size_t
expected_windows(void)
{
	size_t n = 0;
	for (int k = 0; k < NCOUNTRY; k++)
		for (int w = 0; w < produced * STEP_MS / 10000; w++)
			n += window_total[k][w] != 0;
	return n;
}

static int
log_has(const char *name, const char *needle)
{
	char path[300];
	path_in(path, sizeof(path), name);
	char *text = slurp(path);
	int found = text && strstr(text, needle);
	free(text);
	return found;
}

/* ---- refusal ---- */

static int
part_refusal(void)
{
	char dir[300];
	path_in(dir, sizeof(dir), "refused-data");
	/* An empty --broker is the embedded broker, on every run. */
	const char *const args[] = {"worker",       "--broker", "",
				    "--datadir",    dir,        "--processing-guarantee",
				    "exactly_once", "--no-web", NULL};
	pid_t pid = spawn("refused", withdrawals_setup, args);
	int status = wait_exit(pid, 60000);
	ok(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 1,
	   "exactly_once on the embedded broker: the worker exits 1 at start (wait status %d)",
	   status);
	ok(log_has("refused.log", "does not enforce") && log_has("refused.log", "scripts/kafka.sh"),
	   "it says the embedded broker does not enforce transactions and how to run Kafka "
	   "(scripts/kafka.sh)");
	ok(!log_has("refused.log", "partitions assigned"), "it never joined the group");
	check_log_clean("refused");
	return 0;
}

/* ---- withdrawals under SIGKILLs ---- */

static void
settle_and_check(pid_t *w, int nworkers, const char *phase, int check_windows)
{
	ok(wait_committed("withdrawals", "withdrawals", 8, 90000),
	   "%s: every withdrawal is processed and committed", phase);
	if (check_windows)
		produce_flush();
	struct coll users, windows;
	coll_open(&users, bootstrap, "user-totals", 8);
	coll_wait(&users, (size_t)produced, 60000);
	if (check_windows) {
		coll_open(&windows, bootstrap, "country-window-totals", 8);
		coll_wait(&windows, expected_windows(), 60000);
	}
	sleep_ticking(2000); /* anything doubled would show by now */
	coll_poll(&users, 0);
	check_user_sequences(&users, phase);
	coll_close(&users);
	if (check_windows) {
		coll_poll(&windows, 0);
		check_windows_once(&windows);
		coll_close(&windows);
	}
	(void)w;
	(void)nworkers;
}

static int
part_withdrawals(void)
{
	const char *k = getenv("FAUSTC_EOS_KILLS");
	int kills_wanted = k ? atoi(k) : 3;
	int n = kills_wanted > 3 ? MAXN : 2000, batch = n / (kills_wanted + 2);
	unsigned seed = (unsigned)getpid();
	srand(seed);
	printf("# seed %u, %d withdrawals, %d SIGKILLs\n", seed, n, kills_wanted);
	pid_t w[2];
	int generation[2] = {0, 0};
	const char *ids[2] = {"w0", "w1"};
	for (int x = 0; x < 2; x++)
		w[x] = start_worker(withdrawals_setup, ids[x], 0);
	int kills = 0;
	for (int from = 0; from < n; from += batch) {
		produce_withdrawals(from, from + batch < n ? from + batch : n);
		/* Within a commit interval or two of the batch: outputs out, offsets not yet. */
		usleep((useconds_t)(rand() % 500) * 1000);
		if (kills < kills_wanted) {
			int x = rand() % 2;
			kill(w[x], SIGKILL);
			waitpid(w[x], NULL, 0);
			kills++;
			usleep((useconds_t)(rand() % 500) * 1000);
			w[x] = start_worker(withdrawals_setup, ids[x], ++generation[x]);
		}
		usleep((useconds_t)(500 + rand() % 1000) * 1000);
	}
	printf("# %d SIGKILLs while %d withdrawals streamed in\n", kills, n);
	settle_and_check(w, 2, "after the kills", 1);
	int commits = 0;
	for (int x = 0; x < 2; x++) {
		char name[64];
		snprintf(name, sizeof(name), "%s-%d.log", ids[x], generation[x]);
		commits += log_has(name, "exactly_once: transactional producer");
		char what[32];
		snprintf(what, sizeof(what), "worker %s", ids[x]);
		stop_child(w[x], what);
		snprintf(name, sizeof(name), "%s-%d", ids[x], generation[x]);
		check_log_clean(name);
	}
	ok(commits == 2, "both workers ran a transactional producer");
	return 0;
}

/* ---- a zombie ---- */

static int
count_in_log(const char *name, const char *needle)
{
	char path[300];
	path_in(path, sizeof(path), name);
	char *text = slurp(path);
	int n = 0;
	for (const char *p = text; p && (p = strstr(p, needle)); p++)
		n++;
	free(text);
	return n;
}

static int
part_zombie(void)
{
	pid_t a = start_worker(withdrawals_setup, "za", 0);
	pid_t b = start_worker(withdrawals_setup, "zb", 0);
	/* Both in the group, each with partitions, for two seconds in a row. */
	uint64_t t0 = now_ms();
	int steady = 0;
	while (steady < 10 && now_ms() - t0 < 90000) {
		int both = 1;
		const char *logs[2] = {"za-0.log", "zb-0.log"};
		for (int x = 0; x < 2; x++)
			both = both &&
			       count_in_log(logs[x], "partitions assigned: withdrawals[") >
				       count_in_log(logs[x], "partitions revoked: withdrawals[");
		steady = both ? steady + 1 : 0;
		usleep(200 * 1000);
	}
	ok(steady == 10, "both workers hold partitions of withdrawals");
	produce_withdrawals(0, 400);
	ok(wait_committed("withdrawals", "withdrawals", 8, 90000),
	   "two workers processed and committed the first withdrawals");
	int b_assigned = count_in_log("zb-0.log", "partitions assigned");
	/*
	 * Stopped in the middle of a steady stream: it is processing its share, with outputs
	 * in its open transaction (the commit interval is 0.3 s). Then more events for both
	 * workers' partitions.
	 */
	produce_and_stop(400, 800, a);
	produce_withdrawals(800, 1200);
	t0 = now_ms();
	while (count_in_log("zb-0.log", "partitions assigned") <= b_assigned &&
	       now_ms() - t0 < 60000)
		usleep(200 * 1000);
	ok(count_in_log("zb-0.log", "partitions assigned") > b_assigned,
	   "with the first worker stopped past the session timeout, the other took its "
	   "partitions over (%.1f s)",
	   (double)(now_ms() - t0) / 1000.0);
	ok(wait_committed("withdrawals", "withdrawals", 8, 90000),
	   "the other worker processed and committed the stopped one's withdrawals");
	kill(a, SIGCONT);
	/* The zombie wakes up with events in hand and a transaction open. */
	t0 = now_ms();
	int reacted = 0;
	while (!reacted && now_ms() - t0 < 60000) {
		reacted = count_in_log("za-0.log", "transaction aborted") > 0 ||
			  count_in_log("za-0.log", "fenced") > 0 || waitpid(a, NULL, WNOHANG) == a;
		if (!reacted)
			usleep(200 * 1000);
	}
	ok(reacted,
	   "the continued zombie's transaction was aborted or it exited saying it was fenced");
	produce_withdrawals(1200, 1600);
	settle_and_check(&a, 1, "after the zombie", 0);
	if (kill(a, 0) == 0) {
		ok(1, "the zombie rejoined the group and goes on");
		stop_child(a, "the former zombie");
	} else {
		ok(log_has("za-0.log", "fenced"), "the zombie exited saying it was fenced");
	}
	stop_child(b, "the other worker");
	check_log_clean("za-0");
	check_log_clean("zb-0");
	return 0;
}

/* ---- an abort in the middle ---- */

#define ABORT_KEYS 10
#define ABORT_N 600
#define POISON_AT 300

static struct ag_table *sums;
static struct ag_topic *abort_out, *abort_tap;
static int poisoned; /* per worker process: the first pass over the poison event */

/* Adds each value (a decimal) to its key's sum and yields the new sum; see POISON_AT. */
static int
sum_agent(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	(void)userdata;
	char *big = NULL;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes key = ag_event_key(ev), v = ag_event_value(ev);
		char num[32];
		snprintf(num, sizeof(num), "%.*s", (int)(v.len < 31 ? v.len : 31),
			 (const char *)v.ptr);
		int poison = strcmp(num, "poison") == 0;
		int64_t total;
		if ((rc = ag_table_add_i64(sums, &key, poison ? 0 : atoll(num), &total)) < 0)
			break;
		char out[32];
		int len = snprintf(out, sizeof(out), "%lld", (long long)total);
		struct ag_bytes val = {out, (size_t)len};
		if (poison && !poisoned) {
			/* Over the topic's max.message.bytes: the broker refuses it. */
			poisoned = 1;
			big = malloc(200000);
			if (!big)
				return -ENOMEM;
			memset(big, 'x', 200000);
			val = (struct ag_bytes){big, 200000};
		}
		rc = ag_send(abort_out, &key, &val);
		free(big);
		big = NULL;
		if (rc < 0 || (rc = ag_send(abort_tap, &key, &v)) < 0)
			break;
	}
	return rc == AG_EOF ? 0 : rc;
}

/* Reads the in-memory channel the sums agent copies its inputs to. */
static int
tap_agent(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	(void)userdata;
	while ((rc = ag_stream_next(s, &ev)) == 0)
		;
	return rc == AG_EOF ? 0 : rc;
}

static int
abort_setup(struct ag_app *app)
{
	struct ag_topic *in;
	struct ag_agent *agent;
	struct ag_topic_opts io = {
		.partitions = 4, .key_codec = AG_CODEC_STRING, .value_codec = AG_CODEC_RAW};
	TRY(ag_app_set_id(app, "eosabort"));
	TRY(ag_app_topic(app, "eos-in", &io, &in));
	TRY(ag_app_topic(app, "eos-out", &io, &abort_out));
	TRY(ag_app_table(app, "sums", in, NULL, &sums));
	TRY(ag_app_agent(app, "sum", in, sum_agent, NULL, &agent));
	TRY(ag_app_channel(app, "eos-tap", 0, &abort_tap));
	TRY(ag_app_agent(app, "tap", abort_tap, tap_agent, NULL, &agent));
	return 0;
}

/* Creates eos-out with a small max.message.bytes before the worker does. */
static int
create_small_topic(void)
{
	rd_kafka_t *rk = producer_new(bootstrap);
	char err[256];
	rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new("eos-out", 4, 1, err, sizeof(err));
	rd_kafka_NewTopic_set_config(nt, "max.message.bytes", "100000");
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
	int rc = -1;
	if (ev) {
		const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
		size_t cnt;
		const rd_kafka_topic_result_t **tr =
			res ? rd_kafka_CreateTopics_result_topics(res, &cnt) : NULL;
		rc = tr && cnt == 1 && !rd_kafka_topic_result_error(tr[0]) ? 0 : -1;
		if (rc < 0)
			printf("# create eos-out: %s\n",
			       tr && cnt ? rd_kafka_topic_result_error_string(tr[0]) : "no result");
		rd_kafka_event_destroy(ev);
	}
	rd_kafka_NewTopic_destroy(nt);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
	return rc;
}

static int
part_abort(void)
{
	ok(create_small_topic() == 0, "eos-out created with max.message.bytes=100000");
	pid_t w = start_worker(abort_setup, "ab", 0);
	rd_kafka_t *p = producer_new(bootstrap);
	int64_t expect[ABORT_KEYS][ABORT_N / ABORT_KEYS + 1];
	int nexp[ABORT_KEYS] = {0};
	int64_t sum[ABORT_KEYS] = {0};
	for (int i = 0; i < ABORT_N; i++) {
		char key[16], val[32];
		int k = i % ABORT_KEYS;
		snprintf(key, sizeof(key), "k%d", k);
		if (i == POISON_AT)
			snprintf(val, sizeof(val), "poison");
		else
			snprintf(val, sizeof(val), "%d", i);
		sum[k] += i == POISON_AT ? 0 : i;
		expect[k][nexp[k]++] = sum[k];
		produce_text(p, "eos-in", RD_KAFKA_PARTITION_UA, key, val);
		if (i % 100 == 99)
			rd_kafka_flush(p, 10000);
	}
	producer_close(p, "the sums' input");
	ok(wait_committed("eosabort", "eos-in", 4, 90000),
	   "every input is processed and committed after the abort");
	struct coll c;
	coll_open(&c, bootstrap, "eos-out", 4);
	coll_wait(&c, ABORT_N, 60000);
	sleep_ticking(2000);
	coll_poll(&c, 0);
	int got[ABORT_KEYS] = {0}, wrong = 0, big = 0;
	for (size_t i = 0; i < c.n; i++) {
		const struct msg *m = &c.m[i];
		if (m->len > 64) {
			big++;
			continue;
		}
		int k = m->key && m->key[0] == 'k' ? atoi(m->key + 1) : -1;
		if (k < 0 || k >= ABORT_KEYS || got[k] >= nexp[k] ||
		    atoll(m->value) != expect[k][got[k]])
			wrong++;
		if (k >= 0 && k < ABORT_KEYS)
			got[k]++;
	}
	int short_keys = 0;
	for (int k = 0; k < ABORT_KEYS; k++)
		short_keys += got[k] != nexp[k];
	ok(big == 0, "the refused value is not visible to a read_committed reader");
	ok(c.n == ABORT_N && wrong == 0 && short_keys == 0,
	   "eos-out holds each key's running sums, one per input, in order (%zu values for %d "
	   "inputs, %d wrong, %d keys short or long)",
	   c.n, ABORT_N, wrong, short_keys);
	coll_close(&c);
	ok(log_has("ab-0.log", "transaction aborted"),
	   "the worker logged the aborted transaction at warn");
	ok(log_has("ab-0.log", "channel eos-tap: ") &&
		   log_has("ab-0.log", "were part of the aborted transaction"),
	   "what an agent took from a channel in the aborted transaction is logged as lost");
	stop_child(w, "the worker");
	ok(!log_has("ab-0.log", "txn_aborts=0"), "its stats line counts the abort");
	char path[300];
	path_in(path, sizeof(path), "ab-0.log");
	char *text = slurp(path);
	const char *line = text ? strstr(text, "channel eos-tap: sent=") : NULL;
	const char *d = line ? strstr(line, " dropped=") : NULL;
	long dropped = d ? strtol(d + strlen(" dropped="), NULL, 10) : -1;
	free(text);
	ok(dropped > 0, "the channel's summary counts those events as dropped (%ld)", dropped);
	check_log_clean("ab-0");
	return 0;
}

int
main(int argc, char **argv)
{
	withdrawals_setup = h_module_setup(argc, argv, "test-eos");
	const char *part = argc > 2 ? argv[2] : "refusal";
	char name[64];
	snprintf(name, sizeof(name), "eos-%s", part);
	if (h_tmp_init(name) < 0)
		return 99;
	if (strcmp(part, "refusal") == 0) {
		part_refusal();
	} else if (!h_kafka) {
		printf("1..0 # SKIP exactly_once needs a real Kafka broker "
		       "(FAUSTC_TEST_KAFKA=HOST:PORT, scripts/kafka.sh start)\n");
		h_tmp_cleanup();
		return 0;
	} else {
		snprintf(kafka_url, sizeof(kafka_url), "kafka://%s", h_kafka);
		bootstrap = h_kafka;
		h_kafka_reset();
		if (strcmp(part, "withdrawals") == 0)
			part_withdrawals();
		else if (strcmp(part, "zombie") == 0)
			part_zombie();
		else if (strcmp(part, "abort") == 0)
			part_abort();
		else
			printf("# Bail out! unknown part %s\n", part);
	}
	h_tmp_cleanup();
	return tap_done();
}
