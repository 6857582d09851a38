/*
 * The benchmark pipe as a faustc app: the same work as raw_pipe.c, written only against
 * the public API. The agent `pipe` reads JSON withdrawals, keeps amount > 100 and sends
 * {"account", "country", "amount_cents"} keyed by account to `large`.
 *
 * Both topics are typed (AG_RECORD), the way a faustc app declares its data: the worker
 * decodes each value into a struct withdrawal before the agent sees it (a value that does
 * not decode is bad input, counted and logged by the worker), and the output is encoded
 * from a struct into one reused buffer.
 *
 * With BENCH_EVENTS=N in the environment the agent asks the worker to stop after N
 * events; the worker then delivers what is pending and logs its stats line, which
 * bench/run.sh reads.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

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

struct large {
	struct ag_str account;
	struct ag_str country;
	int64_t amount_cents;
	uint64_t ag_present;
};

AG_RECORD(large_type, large, AG_FIELD(large, account, AG_FIELD_STRING, 0),
	  AG_FIELD(large, country, AG_FIELD_STRING, 0),
	  AG_FIELD(large, amount_cents, AG_FIELD_INT, 0));

struct pipe {
	struct ag_topic *large;
	struct ag_buf out; /* the encoded output, reused */
	long stop_after; /* 0: run until the worker is stopped */
	long events;
};

static struct pipe pipe_state;

/* Filters and transforms one event. */
static int
handle(struct pipe *p, struct ag_event *ev)
{
	const struct withdrawal *w;
	int rc = ag_event_record(ev, (const void **)&w);

	if (rc < 0)
		return rc;
	double cents = w->amount * 100.0;
	if (!(cents > 10000.0))
		return 0;

	const struct large out = {w->account, w->country, (int64_t)(cents + 0.5), 0};
	p->out.len = 0;
	rc = ag_record_encode(&large_type, AG_CODEC_JSON, &out, 0, &p->out);
	if (rc < 0)
		return rc;
	const struct ag_bytes key = {w->account.ptr, w->account.len};
	const struct ag_bytes value = {p->out.ptr, p->out.len};
	return ag_send(p->large, &key, &value);
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
		.value_type = &withdrawal_type,
	};
	const struct ag_topic_opts out_opts = {
		.partitions = 8,
		.value_codec = AG_CODEC_JSON,
		.value_type = &large_type,
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
