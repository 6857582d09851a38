/*
 * The stateful benchmark pipe: the workload of bench/load, re-keyed by country through a
 * repartition topic (group_by) and summed per country in 10 s tumbling windows by event
 * time (LMDB and changelog on): Faust's withdrawals example, the amount per country.
 *
 * The input is typed (AG_RECORD): the worker decodes each value into a struct withdrawal
 * on both sides of the repartition topic, and group_by re-keys by the record's field.
 *
 * With BENCH_EVENTS=N the body asks the worker to stop after N events (every event reaches
 * the body once, through the repartition topic); bench/stateful.sh reads the stats line.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

struct group {
	struct ag_table *totals;
	long stop_after;
	long events;
};

static struct group group_state;

static int
by_country(struct ag_stream *s, void *userdata)
{
	struct group *g = userdata;
	struct ag_event *ev;
	int rc;

	while ((rc = ag_stream_next(s, &ev)) == 0) {
		const struct withdrawal *w;
		struct ag_bytes key = ag_event_key(ev);
		if ((rc = ag_event_record(ev, (const void **)&w)) < 0 ||
		    (rc = ag_table_add_f64(g->totals, &key, w->amount, NULL)) < 0)
			return rc;
		if (++g->events == g->stop_after)
			ag_app_stop(ag_stream_app(s));
	}
	return rc == AG_EOF ? 0 : rc;
}

static int
setup(struct ag_app *app)
{
	const struct ag_topic_opts in_opts = {
		.partitions = 8,
		.value_codec = AG_CODEC_JSON,
		.value_type = &withdrawal_type,
	};
	const struct ag_topic_opts large_opts = {.partitions = 8, .value_codec = AG_CODEC_JSON};
	const char *env = getenv("BENCH_EVENTS");
	struct ag_topic *withdrawals, *by;
	struct ag_agent *agent;
	int rc;

	if (env && *env) {
		char *end;
		group_state.stop_after = strtol(env, &end, 10);
		if (*end || group_state.stop_after <= 0) {
			ag_log(app, AG_LOG_ERROR, "BENCH_EVENTS=%s: expected a positive count",
			       env);
			return -EINVAL;
		}
	}
	/* BENCH_APP_ID: another consumer group, reading the topic from its start again. */
	const char *id = getenv("BENCH_APP_ID");
	rc = ag_app_set_id(app, id && *id ? id : "bench-group");
	if (rc == 0)
		rc = ag_app_topic(app, "withdrawals", &in_opts, &withdrawals);
	/* The stateless pipe's output topic, so that one broker serves both benchmarks. */
	if (rc == 0)
		rc = ag_app_topic(app, "large", &large_opts, NULL);
	if (rc == 0)
		rc = ag_app_agent(app, "by_country", withdrawals, by_country, &group_state, &agent);
	if (rc == 0)
		rc = ag_agent_group_by_field(agent, "country", 0, &by);
	if (rc == 0)
		rc = ag_app_table(app, "country_total", by, NULL, &group_state.totals);
	if (rc == 0)
		rc = ag_table_window(group_state.totals,
				     &(struct ag_window_opts){.size_s = 10.0, .expires_s = 3600.0});
	return rc;
}

AG_APP_MODULE(setup);
