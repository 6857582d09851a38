/*
 * Timers and tasks inside a worker (embedded broker): a once-task runs exactly once at
 * start; a periodic timer whose every other call fails is logged and keeps its schedule;
 * a stop while timers run exits 0. Timer functions send to `tm-out`, read here while the
 * worker runs (the embedded broker dies with it).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

static struct ag_topic *out_topic;
static int ticks;

static int
send_text(const char *key, const char *text)
{
	struct ag_bytes k = {key, strlen(key)}, v = {text, strlen(text)};
	return ag_send(out_topic, &k, &v);
}

static int
task_start(struct ag_app *app, void *userdata)
{
	(void)app;
	(void)userdata;
	return send_text("task", "started");
}

/* Sends "tick N"; every even call fails after sending. */
static int
timer_flaky(struct ag_app *app, void *userdata)
{
	char text[32];
	(void)app;
	(void)userdata;
	ticks++;
	snprintf(text, sizeof(text), "tick %d", ticks);
	int rc = send_text("tick", text);
	if (rc < 0)
		return rc;
	return ticks % 2 == 0 ? -EIO : 0;
}

static int
setup(struct ag_app *app)
{
	struct ag_topic_opts one = {.partitions = 1};
	int rc;
	if ((rc = ag_app_set_id(app, "tm")) < 0 ||
	    (rc = ag_app_topic(app, "tm-out", &one, &out_topic)) < 0 ||
	    (rc = ag_app_timer(app, "start", 0, AG_TIMER_ONCE, task_start, NULL)) < 0 ||
	    (rc = ag_app_timer(app, "flaky", 0.2, 0, timer_flaky, NULL)) < 0)
		return rc;
	return 0;
}

int
main(void)
{
	static const char *const topics[] = {"tm-out", NULL};
	char dir[300], addr[400], log[300];
	if (h_tmp_init("timer") < 0)
		return 99;
	path_in(dir, sizeof(dir), "data");
	snprintf(addr, sizeof(addr), "%s/broker.addr", dir);
	const char *const args[] = {"worker", "--datadir", dir, "-l", "info", NULL};
	pid_t pid = spawn("tm", setup, args);
	char *bootstrap = wait_line(addr, 20000);
	ok(bootstrap != NULL, "the worker hosts the embedded broker");
	if (!bootstrap) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return tap_done();
	}
	rd_kafka_t *probe = producer_new(bootstrap);
	ok_int_eq(wait_topics(probe, topics, 20000), 0, "its topic exists");
	rd_kafka_destroy(probe);
	struct coll out;
	coll_open(&out, bootstrap, "tm-out", 1);
	coll_wait(&out, 8, 20000); /* "started" and at least 7 ticks: 1.4 s of schedule */
	size_t started = 0, tick_n = 0;
	int in_order = 1;
	for (size_t i = 0; i < out.n; i++) {
		const char *v = out.m[i].value ? out.m[i].value : "";
		if (strcmp(v, "started") == 0) {
			started++;
			continue;
		}
		char expect[32];
		snprintf(expect, sizeof(expect), "tick %zu", ++tick_n);
		in_order &= strcmp(v, expect) == 0;
	}
	ok_int_eq(started, 1, "the once-task ran exactly once");
	ok(tick_n >= 7, "the periodic timer kept its schedule through failures (%zu ticks)",
	   tick_n);
	ok(in_order, "its calls came one after another (tick 1, tick 2, ...)");
	coll_close(&out);
	free(bootstrap);
	stop_child(pid, "the worker with timers");
	path_in(log, sizeof(log), "tm.log");
	char *text = slurp(log);
	static const char *const failed[] = {"timer flaky failed: ", "(EIO)",
					     "it runs again on schedule (failure 1)", NULL};
	ok(text && find_line(text, failed), "a failing timer is logged and keeps its schedule");
	static const char *const once_failed[] = {"timer start failed", NULL};
	ok(text && !find_line(text, once_failed), "the once-task did not fail");
	free(text);
	check_log_clean("tm");
	h_tmp_cleanup();
	return tap_done();
}
