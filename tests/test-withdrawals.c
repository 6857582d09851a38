/*
 * The withdrawals example under crashes: three workers share one `faustc broker` while
 * withdrawals stream in, and workers are killed with SIGKILL at random points and started
 * again on their data dirs. Afterwards every user's last total (topic user-totals) and every
 * closed country window (topic country-window-totals) must equal what a plain recomputation
 * of the input gives: exact, not at least once. A closed window may be published more than
 * once (a close that was not committed before a crash is done again), but always with the
 * same total.
 *
 * The app is the example module (argv[1]: build/examples/withdrawals.so), loaded here and
 * run by ag_app_main in forked children.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define N 3000
#define BATCH 250
#define USERS 40
#define WORKERS 3
#define T0 1700000000000ll /* a multiple of 10 s */
#define STEP_MS 20 /* event i at T0 + i * STEP_MS: 60 s, six windows of 10 s */

static const char *const countries[] = {"NO", "SE", "DK", "FI", "IS"};
#define NCOUNTRY 5

static ag_app_setup_fn setup;
static char *url;
static const char *bootstrap;
static double user_total[USERS];
static double window_total[NCOUNTRY][N * STEP_MS / 10000 + 1];

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

static pid_t
start_worker(int k, int generation)
{
	char dir[300], name[64], d[32];
	snprintf(d, sizeof(d), "w%d-data", k);
	path_in(dir, sizeof(dir), d);
	snprintf(name, sizeof(name), "w%d-%d", k, generation);
	const char *const args[] = {
		"worker", "--broker", url,    "--datadir", dir, "--commit-interval",
		"0.5",    "-l",       "info", NULL};
	return spawn(name, setup, args);
}

static void
check_users(struct coll *c)
{
	h_check_user_totals(c, user_total, USERS);
}

static void
check_windows(struct coll *c)
{
	h_check_window_totals(c, countries, NCOUNTRY, &window_total[0][0], N * STEP_MS / 10000 + 1,
			      N * STEP_MS / 10000, T0);
}

int
main(int argc, char **argv)
{
	setup = h_module_setup(argc, argv, "test-withdrawals");
	if (h_tmp_init("withdrawals") < 0)
		return 99;
	unsigned seed = (unsigned)getpid();
	srand(seed);
	printf("# seed %u\n", seed);
	char url_file[300], dir[300];
	path_in(url_file, sizeof(url_file), "broker.url");
	path_in(dir, sizeof(dir), "broker-data");
	const char *const broker_args[] = {"broker", "--addr-file", url_file, "--datadir",
					   dir,      "-l",          "warn",   NULL};
	pid_t broker = spawn("broker", setup, broker_args);
	url = wait_line(url_file, 20000);
	ok(url != NULL, "faustc broker serves at %s", url ? url : "(nothing)");
	if (!url)
		return tap_done();
	bootstrap = h_bootstrap(url);

	pid_t w[WORKERS];
	int generation[WORKERS] = {0};
	for (int k = 0; k < WORKERS; k++)
		w[k] = start_worker(k, generation[k]);
	usleep(4000 * 1000); /* the group forms */
	int kills = 0;
	for (int from = 0; from < N; from += BATCH) {
		produce_range(from, from + BATCH < N ? from + BATCH : N);
		usleep((useconds_t)(200 + rand() % 800) * 1000);
		if (from / BATCH % 3 == 1) {
			int k = rand() % WORKERS;
			kill(w[k], SIGKILL);
			waitpid(w[k], NULL, 0);
			kills++;
			usleep((useconds_t)(rand() % 500) * 1000);
			w[k] = start_worker(k, ++generation[k]);
		}
	}
	printf("# %d SIGKILLs while %d withdrawals streamed in\n", kills, N);
	/*
	 * The flush events close every window: they must come after every withdrawal has been
	 * forwarded to the repartition topic (else those are more than the grace late). The
	 * source is committed only when both agents are done with it.
	 */
	int64_t committed[8], high[8];
	int settled = 0;
	for (int tries = 0; tries < 120 && !settled; tries++) {
		settled = group_offsets(bootstrap, "withdrawals", "withdrawals", 8, committed, NULL,
					high) == 0;
		for (int p = 0; p < 8 && settled; p++)
			settled = committed[p] == high[p];
		if (!settled)
			usleep(500 * 1000);
	}
	ok(settled, "every withdrawal is processed and committed");
	produce_flush();

	struct coll users, windows;
	coll_open(&users, bootstrap, "user-totals", 8);
	coll_open(&windows, bootstrap, "country-window-totals", 8);
	/* Let everything settle: replays after the last kill, rebalances, closes. */
	uint64_t t0 = now_ms();
	size_t expect_windows = 0;
	for (int k = 0; k < NCOUNTRY; k++)
		for (int x = 0; x < N * STEP_MS / 10000; x++)
			expect_windows += window_total[k][x] != 0;
	coll_wait(&windows, expect_windows, 60000);
	coll_wait(&users, N, 30000);
	sleep_ticking(5000);
	coll_poll(&users, 0);
	coll_poll(&windows, 0);
	printf("# settled after %.1f s: %zu user totals, %zu window totals\n",
	       (double)(now_ms() - t0) / 1000.0, users.n, windows.n);
	check_users(&users);
	check_windows(&windows);
	coll_close(&users);
	coll_close(&windows);
	for (int k = 0; k < WORKERS; k++) {
		char what[32];
		snprintf(what, sizeof(what), "worker %d", k);
		stop_child(w[k], what);
	}
	kill(broker, SIGTERM);
	wait_exit(broker, 10000);
	free(url);
	h_tmp_cleanup();
	return tap_done();
}
