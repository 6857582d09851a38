/*
 * router: the Spring Cloud Data Flow polyglot router, Faust style.
 *
 * A leader timer (one worker of the group runs it) produces the current time in
 * milliseconds, as a decimal string, to topic `timeDest` every 100 ms (environment
 * variable ROUTER_INTERVAL_MS changes that). Agent `router` sends even timestamps to
 * `evenDest` and odd ones to `oddDest`; agents `even_logger` and `odd_logger` print
 * `Even timestamp: TS` / `Odd timestamp: TS` to stdout, one flushed line each.
 *
 *     faustc -A router worker
 *     ROUTER_INTERVAL_MS=1000 faustc -A router worker
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <agent/agent.h>

static struct ag_topic *time_dest, *even_dest, *odd_dest;

/* The leader's timer: now, in ms since the epoch, to timeDest (no key). */
static int
tick(struct ag_app *app, void *userdata)
{
	struct timespec ts;
	char buf[32];
	(void)app;
	(void)userdata;
	clock_gettime(CLOCK_REALTIME, &ts);
	long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	int n = snprintf(buf, sizeof(buf), "%lld", ms);
	struct ag_bytes value = {buf, (size_t)n};
	return ag_send(time_dest, NULL, &value);
}

/* Whether a decimal string ends in an even digit; -1 when it is not a number. */
static int
is_even(struct ag_bytes v)
{
	const char *s = v.ptr;
	if (!v.len || v.len > 20)
		return -1;
	for (size_t i = 0; i < v.len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
	}
	return (s[v.len - 1] - '0') % 2 == 0;
}

static int
route(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	(void)userdata;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes v = ag_event_value(ev);
		int even = is_even(v);
		if (even < 0) {
			ag_log(ag_stream_app(s), AG_LOG_WARN,
			       "timeDest[%d]@%lld: not a timestamp (%.*s); skipped",
			       (int)ag_event_partition(ev), (long long)ag_event_offset(ev),
			       (int)(v.len > 32 ? 32 : v.len), v.len ? (const char *)v.ptr : "");
			continue;
		}
		if ((rc = ag_send(even ? even_dest : odd_dest, NULL, &v)) < 0)
			return rc;
	}
	return rc == AG_EOF ? 0 : rc;
}

static int
log_timestamps(struct ag_stream *s, void *userdata)
{
	const char *label = userdata;
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes v = ag_event_value(ev);
		printf("%s timestamp: %.*s\n", label, (int)v.len, v.len ? (const char *)v.ptr : "");
		fflush(stdout);
	}
	return rc == AG_EOF ? 0 : rc;
}

static int
setup(struct ag_app *app)
{
	struct ag_topic_opts text = {
		.partitions = 1, .key_codec = AG_CODEC_RAW, .value_codec = AG_CODEC_RAW};
	double interval = 0.1;
	const char *env = getenv("ROUTER_INTERVAL_MS");
	int rc;
	if (env && *env) {
		char *end;
		long ms = strtol(env, &end, 10);
		if (*end || ms <= 0 || ms > 86400000) {
			ag_log(app, AG_LOG_ERROR,
			       "ROUTER_INTERVAL_MS=%s: expected milliseconds, 1 to 86400000", env);
			return -EINVAL;
		}
		interval = (double)ms / 1000.0;
	}
	if ((rc = ag_app_set_id(app, "router")) < 0 ||
	    (rc = ag_app_topic(app, "timeDest", &text, &time_dest)) < 0 ||
	    (rc = ag_app_topic(app, "evenDest", &text, &even_dest)) < 0 ||
	    (rc = ag_app_topic(app, "oddDest", &text, &odd_dest)) < 0 ||
	    (rc = ag_app_timer(app, "time_source", interval, AG_TIMER_LEADER, tick, NULL)) < 0 ||
	    (rc = ag_app_agent(app, "router", time_dest, route, NULL, NULL)) < 0 ||
	    (rc = ag_app_agent(app, "even_logger", even_dest, log_timestamps, "Even", NULL)) < 0 ||
	    (rc = ag_app_agent(app, "odd_logger", odd_dest, log_timestamps, "Odd", NULL)) < 0)
		return rc;
	return 0;
}

#ifdef AG_APP_AS_MODULE
AG_APP_MODULE(setup);
#else
int
main(int argc, char **argv)
{
	return ag_app_main(argc, argv, setup);
}
#endif
