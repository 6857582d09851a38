/*
 * The benchmark pipe as a faustc app: the same work as raw_pipe.c, written only against
 * the public API. The agent `pipe` reads JSON withdrawals, keeps amount > 100 and sends
 * {"account", "country", "amount_cents"} keyed by account to `large`.
 *
 * With BENCH_EVENTS=N in the environment the agent asks the worker to stop after N
 * events; the worker then delivers what is pending and logs its stats line, which
 * bench/run.sh reads.
 */
#include <errno.h>
#include <stdlib.h>

#include <agent/agent.h>

struct pipe {
	struct ag_topic *large;
	long stop_after; /* 0: run until the worker is stopped */
	long events;
};

static struct pipe pipe_state;

/* Filters and transforms one event. Malformed values are skipped. */
static int
handle(struct pipe *p, struct ag_event *ev)
{
	json_t *v = ag_event_json(ev);
	json_t *account = json_object_get(v, "account");
	json_t *amount = json_object_get(v, "amount");
	json_t *country = json_object_get(v, "country");
	struct ag_bytes key, value;
	double cents;
	json_t *out;
	int rc;

	if (!json_is_string(account) || !json_is_number(amount) || !json_is_string(country))
		return 0;
	cents = json_number_value(amount) * 100.0;
	if (!(cents > 10000.0))
		return 0;

	out = json_object();
	if (!out)
		return -ENOMEM;
	json_object_set(out, "account", account);
	json_object_set(out, "country", country);
	json_object_set_new(out, "amount_cents", json_integer((json_int_t)(cents + 0.5)));
	rc = ag_json_dump(out, &value);
	json_decref(out);
	if (rc < 0)
		return rc;

	key.ptr = json_string_value(account);
	key.len = json_string_length(account);
	rc = ag_send(p->large, &key, &value);
	free((void *)value.ptr);
	return rc;
}

static int
pipe_agent(struct ag_stream *s, void *userdata)
{
	struct pipe *p = userdata;
	struct ag_event *ev;
	int rc;

	while ((rc = ag_stream_next(s, &ev)) == 0) {
		rc = handle(p, ev);
		if (rc < 0)
			return rc;
		if (++p->events == p->stop_after)
			ag_app_stop(ag_stream_app(s));
	}
	return rc == AG_EOF ? 0 : rc;
}

static int
setup(struct ag_app *app)
{
	const struct ag_topic_opts in_opts = {
		.partitions = 8,
		.key_codec = AG_CODEC_RAW,
		.value_codec = AG_CODEC_JSON,
	};
	const struct ag_topic_opts out_opts = {
		.partitions = 8,
		.value_codec = AG_CODEC_JSON,
	};
	const char *env = getenv("BENCH_EVENTS");
	struct ag_topic *withdrawals;
	int rc;

	if (env && *env) {
		char *end;

		pipe_state.stop_after = strtol(env, &end, 10);
		if (*end || pipe_state.stop_after <= 0) {
			ag_log(app, AG_LOG_ERROR, "BENCH_EVENTS=%s: expected a positive count",
			       env);
			return -EINVAL;
		}
	}

	/* BENCH_APP_ID: another consumer group, reading the topic from its start again. */
	const char *id = getenv("BENCH_APP_ID");
	rc = ag_app_set_id(app, id && *id ? id : "bench");
	if (rc == 0)
		rc = ag_app_topic(app, "withdrawals", &in_opts, &withdrawals);
	if (rc == 0)
		rc = ag_app_topic(app, "large", &out_opts, &pipe_state.large);
	if (rc == 0)
		rc = ag_app_agent(app, "pipe", withdrawals, pipe_agent, &pipe_state, NULL);
	return rc;
}

AG_APP_MODULE(setup);
