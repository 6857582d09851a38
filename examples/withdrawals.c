/*
 * withdrawals: Faust's withdrawals example, typed with a record.
 *
 * Topic `withdrawals` carries JSON {"user": str, "country": str, "amount": float,
 * "date": optional str} keyed by user. Agent `track_user_withdrawal` adds each amount to
 * table `user_to_total` (per user) and sends the new total to topic `user-totals` as JSON
 * {"user": ..., "total": ...}. Bad input (not JSON, a wrong type, a missing field, no key)
 * goes to `withdrawals-track_user_withdrawal-dead-letter` with headers saying why.
 *
 * Agent `track_country_withdrawal` reads the same topic, re-keys it by country (group_by
 * through `withdrawals-track_country_withdrawal-country-repartition`) and adds each amount
 * to table `country_to_total`: tumbling 10 s windows by the event's Kafka timestamp, kept
 * for an hour, with a minute of grace for late events. When a country's window closes
 * (stream time passed its end by the grace), its final total
 * goes once to topic `country-window-totals` as JSON {"country": ..., "window_start": ...,
 * "window_end": ..., "total": ...}, times in seconds since the epoch, keyed by country.
 *
 *     faustc -A withdrawals worker
 *     faustc -A withdrawals send withdrawals --key ann \
 *             '{"user": "ann", "country": "US", "amount": 12.5}'
 *
 * Faust's version:
 *     user_to_total = app.Table('user_to_total', default=float)
 *     country_to_total = app.Table('country_to_total', default=float,
 *         on_window_close=publish).tumbling(10.0, expires=timedelta(hours=1))
 *     @app.agent(withdrawals_topic)
 *     async def track_country_withdrawal(withdrawals):
 *         async for w in withdrawals.group_by(Withdrawal.country):
 *             country_to_total[w.country] += w.amount
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

struct window_total {
	struct ag_str country;
	double window_start;
	double window_end;
	double total;
	uint64_t ag_present;
};

AG_RECORD(window_total_type, window_total, AG_FIELD(window_total, country, AG_FIELD_STRING, 0),
	  AG_FIELD(window_total, window_start, AG_FIELD_FLOAT, 0),
	  AG_FIELD(window_total, window_end, AG_FIELD_FLOAT, 0),
	  AG_FIELD(window_total, total, AG_FIELD_FLOAT, 0));

static struct ag_table *user_to_total;
static struct ag_table *country_to_total;
static struct ag_topic *window_totals;

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
track_country_withdrawal(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	(void)userdata;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		const struct withdrawal *w;
		if ((rc = ag_event_record(ev, (const void **)&w)) < 0)
			break;
		struct ag_bytes country = {w->country.ptr, w->country.len};
		if ((rc = ag_table_add_f64(country_to_total, &country, w->amount, NULL)) < 0)
			break;
	}
	return rc == AG_EOF ? 0 : rc;
}

/* A country's window closed: its final total goes to country-window-totals, once. */
static int
publish_window(struct ag_table *table, const struct ag_bytes *key, const struct ag_window *win,
	       const struct ag_value *value, void *userdata)
{
	struct ag_buf out = {0};
	(void)table;
	(void)userdata;
	struct window_total t = {
		.country = {key->ptr, key->len},
		.window_start = (double)win->start_ms / 1000.0,
		.window_end = (double)win->end_ms / 1000.0,
		.total = value->type == AG_VALUE_F64 ? value->f64 : (double)value->i64,
	};
	int rc = ag_record_encode(&window_total_type, AG_CODEC_JSON, &t, 0, &out);
	if (rc == 0)
		rc = ag_send(window_totals, key, &(struct ag_bytes){out.ptr, out.len});
	free(out.ptr);
	return rc;
}

static int
setup(struct ag_app *app)
{
	struct ag_topic *withdrawals, *totals, *by_country;
	struct ag_agent *agent, *countries;
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
	struct ag_topic_opts wt = {.partitions = 8,
				   .key_codec = AG_CODEC_STRING,
				   .value_codec = AG_CODEC_JSON,
				   .value_type = &window_total_type};
	/*
	 * After group_by a country's events come from every source partition; stream time is
	 * the watermark over them, so a lagging partition holds windows open rather than
	 * making the others late. The minute of grace is for events out of order within one
	 * partition (producers whose clocks differ). A window closes, and is published, once
	 * stream time is a minute past its end.
	 */
	struct ag_window_opts win = {
		.size_s = 10.0, .expires_s = 3600.0, .grace_s = 60.0, .on_close = publish_window};
	if ((rc = ag_app_topic(app, "country-window-totals", &wt, &window_totals)) < 0 ||
	    (rc = ag_app_agent(app, "track_country_withdrawal", withdrawals,
			       track_country_withdrawal, NULL, &countries)) < 0 ||
	    (rc = ag_agent_group_by_field(countries, "country", 0, &by_country)) < 0 ||
	    (rc = ag_app_table(app, "country_to_total", by_country, NULL, &country_to_total)) < 0 ||
	    (rc = ag_table_window(country_to_total, &win)) < 0)
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
