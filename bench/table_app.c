/*
 * The recovery benchmark's app (bench/recovery.sh): app `rec`, topic `rec-in` (16
 * partitions, raw), table `big` following it, agent `fill` adding 1 per event to the
 * event's key. With BENCH_EVENTS=N in the environment the agent stops the worker after N
 * events (after the final commit the table is in LMDB and the changelog).
 */
#include <errno.h>
#include <stdlib.h>

#include <agent/agent.h>

static struct ag_table *big;
static long long stop_after;

static int
fill(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	long long n = 0;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes key = ag_event_key(ev);
		if ((rc = ag_table_add_i64(big, &key, 1, NULL)) < 0)
			return rc;
		if (stop_after && ++n == stop_after)
			ag_app_stop(ag_stream_app(s));
	}
	return rc == AG_EOF ? 0 : rc;
}

static int
setup(struct ag_app *app)
{
	struct ag_topic *in;
	struct ag_topic_opts o = {.partitions = 16};
	int rc;
	const char *env = getenv("BENCH_EVENTS");
	stop_after = env ? atoll(env) : 0;
	if ((rc = ag_app_set_id(app, "rec")) < 0 ||
	    (rc = ag_app_topic(app, "rec-in", &o, &in)) < 0 ||
	    (rc = ag_app_table(app, "big", in, NULL, &big)) < 0 ||
	    (rc = ag_app_agent(app, "fill", in, fill, NULL, NULL)) < 0)
		return rc;
	return 0;
}

AG_APP_MODULE(setup);
