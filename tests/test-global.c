/*
 * Global tables on a broker: two workers share one `faustc broker`. Agent `put` writes every
 * event of gl-in (4 partitions) into the global table `g`; each worker owns two of its
 * partitions. Then agent `get`, on the one worker that owns gl-q's only partition, reads
 * every key: all of them must be there, also the keys the other worker wrote (it follows
 * their changelog), and writing a key of the other worker's partitions is refused.
 *
 * `put` also writes the plain table `s`, of which each worker keeps standby replicas of the
 * other's partitions. Then the worker without gl-q is killed with SIGKILL: the survivor
 * takes its partitions over and restores nothing, because its standbys already hold them.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define KEYS 20

static struct ag_table *g, *s_table;

static int
agent_put(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes k = ag_event_key(ev), v = ag_event_value(ev);
		if ((rc = ag_table_set_bytes(g, &k, &v)) < 0 ||
		    (rc = ag_table_set_bytes(s_table, &k, &v)) < 0)
			return rc;
	}
	return rc == AG_EOF ? 0 : rc;
}

/* Reads the key named by the value, then tries to write it: "KEY=VALUE|write-result". */
static int
agent_get(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes k = ag_event_value(ev), v;
		char out[256];
		int got = ag_table_get_bytes(g, &k, &v);
		int n = snprintf(out, sizeof(out), "%.*s=%.*s|", (int)k.len, (const char *)k.ptr,
				 got == 0 ? (int)v.len : 7,
				 got == 0 ? (const char *)v.ptr : "missing");
		int w = ag_table_set_bytes(g, &k, &AG_STR("x"));
		snprintf(out + n, sizeof(out) - (size_t)n, "%s", w == 0 ? "0" : ag_err_name(w));
		if ((rc = ag_stream_yield(s, NULL, &(struct ag_bytes){out, strlen(out)})) < 0)
			return rc;
	}
	return rc == AG_EOF ? 0 : rc;
}

static int
setup(struct ag_app *app)
{
	struct ag_topic *in, *q, *out;
	struct ag_agent *a;
	TRY(ag_app_set_id(app, "gl"));
	TRY(ag_app_topic(app, "gl-in", &(struct ag_topic_opts){.partitions = 4}, &in));
	TRY(ag_app_topic(app, "gl-q", &(struct ag_topic_opts){.partitions = 1}, &q));
	TRY(ag_app_topic(app, "gl-out", &(struct ag_topic_opts){.partitions = 1}, &out));
	TRY(ag_app_table(app, "g", in, &(struct ag_table_opts){.global = 1}, &g));
	TRY(ag_app_table(app, "s", in, NULL, &s_table));
	TRY(ag_app_agent(app, "put", in, agent_put, NULL, NULL));
	TRY(ag_app_agent(app, "get", q, agent_get, NULL, &a));
	TRY(ag_agent_sink_topic(a, out));
	return 0;
}

int
main(void)
{
	if (h_tmp_init("global") < 0)
		return 99;
	char url_file[300], dir[300], d1[300], d2[300];
	path_in(url_file, sizeof(url_file), "broker.url");
	path_in(dir, sizeof(dir), "broker-data");
	path_in(d1, sizeof(d1), "w1-data");
	path_in(d2, sizeof(d2), "w2-data");
	const char *const broker_args[] = {"broker", "--addr-file", url_file, "--datadir",
					   dir,      "-l",          "warn",   NULL};
	pid_t broker = spawn("broker", setup, broker_args);
	char *url = wait_line(url_file, 20000);
	ok(url != NULL, "faustc broker serves at %s", url ? url : "(nothing)");
	if (!url)
		return tap_done();
	const char *bootstrap = h_bootstrap(url);
	const char *const a1[] = {
		"worker", "--broker", url,    "--datadir", d1, "--commit-interval",
		"0.3",    "-l",       "info", NULL};
	const char *const a2[] = {
		"worker", "--broker", url,    "--datadir", d2, "--commit-interval",
		"0.3",    "-l",       "info", NULL};
	pid_t w1 = spawn("w1", setup, a1);
	pid_t w2 = spawn("w2", setup, a2);
	sleep_ticking(8000); /* both join; the group settles on two members */

	rd_kafka_t *p = producer_new(bootstrap);
	for (int i = 0; i < KEYS; i++) {
		char k[16], v[16];
		snprintf(k, sizeof(k), "k%d", i);
		snprintf(v, sizeof(v), "v%d", i);
		produce_text(p, "gl-in", RD_KAFKA_PARTITION_UA, k, v);
	}
	producer_close(p, "the table's inputs");
	sleep_ticking(4000); /* written, committed, followed by the other worker */
	p = producer_new(bootstrap);
	for (int i = 0; i < KEYS; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		produce_text(p, "gl-q", 0, NULL, k);
	}
	producer_close(p, "the queries");

	struct coll out;
	coll_open(&out, bootstrap, "gl-out", 1);
	coll_wait(&out, KEYS, 20000);
	int found = 0, refused = 0, written = 0;
	for (size_t i = 0; i < out.n; i++) {
		int k;
		char v[32], w[32];
		if (sscanf(out.m[i].value, "k%d=%31[^|]|%31s", &k, v, w) != 3) {
			printf("#   unexpected output %s\n", out.m[i].value);
			continue;
		}
		char want[16];
		snprintf(want, sizeof(want), "v%d", k);
		found += strcmp(v, want) == 0;
		refused += strcmp(w, "EPERM") == 0;
		written += strcmp(w, "0") == 0;
		if (strcmp(w, "EPERM") != 0 && strcmp(w, "0") != 0)
			printf("#   k%d: write %s\n", k, w);
	}
	ok(out.n == KEYS && found == KEYS,
	   "one worker reads all %d keys of the global table, the other worker's too (%d)", KEYS,
	   found);
	ok(refused > 0 && written > 0 && refused + written == KEYS,
	   "it writes the keys of its own partitions (%d) and is refused the others' (%d)", written,
	   refused);
	coll_close(&out);

	/* Failover: kill the worker that does not own gl-q (the other answered the queries). */
	char log1[300], log2[300];
	path_in(log1, sizeof(log1), "w1.log");
	path_in(log2, sizeof(log2), "w2.log");
	char *t1 = slurp(log1);
	int w1_has_q = t1 && strstr(t1, "gl-q[0]");
	free(t1);
	pid_t victim = w1_has_q ? w2 : w1, survivor = w1_has_q ? w1 : w2;
	const char *slog = w1_has_q ? log1 : log2;
	kill(victim, SIGKILL);
	wait_exit(victim, 10000);
	int took_over = 0;
	for (int i = 0; i < 300 && !took_over; i++) {
		sleep_ticking(100);
		char *text = slurp(slog);
		const char *const all[] = {
			"partitions assigned: gl-in[0] gl-in[1] gl-in[2] gl-in[3]", NULL};
		took_over = text && find_line(text, all) != NULL;
		free(text);
	}
	sleep_ticking(1000);
	char *text = slurp(slog);
	const char *last = NULL;
	for (const char *at = text; at && (at = strstr(at, "partitions assigned: gl-in[0] gl-in[1] "
							   "gl-in[2] gl-in[3]"));
	     at++)
		last = at;
	int standby = text && strstr(text, "standby: following s[");
	int restored = last && strstr(last, "restoring s[");
	ok(took_over && standby && !restored,
	   "after a SIGKILL the survivor owns every partition and restores nothing of s: its "
	   "standbys held them (took over %d, standby %d, restored %d)",
	   took_over, standby, restored);
	free(text);
	stop_child(survivor, "the surviving worker");
	kill(broker, SIGTERM);
	wait_exit(broker, 10000);
	free(url);
	h_tmp_cleanup();
	return tap_done();
}
