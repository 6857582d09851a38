/*
 * withdrawals: Faust's withdrawals example, typed with a record.
 *
 * Topic `withdrawals` carries JSON {"user": str, "country": str, "amount": float,
 * "date": optional str} keyed by user. Agent `track_user_withdrawal` adds each amount to
 * table `user_to_total` (per user) and sends the new total to topic `user-totals` as JSON
 * {"user": ..., "total": ...}. Bad input (not JSON, a wrong type, a missing field, no key)
 * goes to `withdrawals-track_user_withdrawal-dead-letter` with headers saying why.
 *
 *     faustc -A withdrawals worker
 *     faustc -A withdrawals send withdrawals --key ann \
 *             '{"user": "ann", "country": "US", "amount": 12.5}'
 *
 * The per-country windowed totals of Faust's example come with windowed tables.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <agent/agent.h>

struct withdrawal {
	struct ag_str user;
	struct ag_str country;
	double amount;
	struct ag_str date;
	uint64_t ag_present;
};

AG_RECORD(withdrawal_type, withdrawal, AG_FIELD(withdrawal, user, AG_FIELD_STRING, 0),
	  AG_FIELD(withdrawal, country, AG_FIELD_STRING, 0),
	  AG_FIELD(withdrawal, amount, AG_FIELD_FLOAT, 0),
	  AG_FIELD(withdrawal, date, AG_FIELD_STRING, AG_FIELD_OPTIONAL));

struct user_total {
	struct ag_str user;
	double total;
	uint64_t ag_present;
};

AG_RECORD(user_total_type, user_total, AG_FIELD(user_total, user, AG_FIELD_STRING, 0),
	  AG_FIELD(user_total, total, AG_FIELD_FLOAT, 0));

static struct ag_table *user_to_total;

static int
track_user_withdrawal(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	struct ag_buf out = {0};
	int rc;
	(void)userdata;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		const struct withdrawal *w;
		if ((rc = ag_event_record(ev, (const void **)&w)) < 0)
			break;
		struct ag_bytes user = {w->user.ptr, w->user.len};
		struct user_total t = {.user = w->user};
		if ((rc = ag_table_add_f64(user_to_total, &user, w->amount, &t.total)) < 0)
			break;
		out.len = 0;
		if ((rc = ag_record_encode(&user_total_type, AG_CODEC_JSON, &t, 0, &out)) < 0 ||
		    (rc = ag_stream_yield(s, &user, &(struct ag_bytes){out.ptr, out.len})) < 0)
			break;
	}
	free(out.ptr);
	return rc == AG_EOF ? 0 : rc;
}

static int
setup(struct ag_app *app)
{
	struct ag_topic *withdrawals, *totals;
	struct ag_agent *agent;
	int rc;
	struct ag_topic_opts in = {.partitions = 8,
				   .key_codec = AG_CODEC_STRING,
				   .value_codec = AG_CODEC_JSON,
				   .value_type = &withdrawal_type,
				   .key_required = 1};
	struct ag_topic_opts out = {.partitions = 8,
				    .key_codec = AG_CODEC_STRING,
				    .value_codec = AG_CODEC_JSON,
				    .value_type = &user_total_type};
	if ((rc = ag_app_set_id(app, "withdrawals")) < 0 ||
	    (rc = ag_app_topic(app, "withdrawals", &in, &withdrawals)) < 0 ||
	    (rc = ag_app_topic(app, "user-totals", &out, &totals)) < 0 ||
	    (rc = ag_app_table(app, "user_to_total", withdrawals, NULL, &user_to_total)) < 0 ||
	    (rc = ag_app_agent(app, "track_user_withdrawal", withdrawals, track_user_withdrawal,
			       NULL, &agent)) < 0 ||
	    (rc = ag_agent_on_bad_input(agent, AG_BAD_INPUT_DEAD_LETTER)) < 0 ||
	    (rc = ag_agent_sink_topic(agent, totals)) < 0)
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
