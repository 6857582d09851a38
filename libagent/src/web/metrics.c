/*
 * /metrics: the worker's counters in Prometheus text format 0.0.4, every family with
 * `# HELP` and `# TYPE`, every name prefixed faustc_. Nothing is counted here: the loop
 * keeps plain integers and fixed-bucket histograms (metrics.h) as it works, and a scrape
 * only reads them, so scraping costs the pipeline nothing between scrapes. Two values are
 * asked for at scrape time: librdkafka's cached high watermarks (consumer lag; no broker
 * round trip) and LMDB's key counts per table (a cursor walk, so cached for a few seconds).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../acks.h"
#include "../channel.h"
#include "../table_rt.h"
#include "web.h"

/* How long table key counts are reused between scrapes. */
#define TABLE_KEYS_TTL_NS (5ull * 1000000000u)

uint64_t
ag__wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A label value, escaped as the text format wants (\\, \" and \n). */
static void
label(struct ag__sbuf *o, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			ag__sbuf_printf(o, "\\%c", *s);
		else if (*s == '\n')
			ag__sbuf_append(o, "\\n", 2);
		else
			ag__sbuf_append(o, s, 1);
	}
}

static void
family(struct ag__sbuf *o, const char *name, const char *type, const char *help)
{
	ag__sbuf_printf(o, "# HELP faustc_%s %s\n# TYPE faustc_%s %s\n", name, help, name, type);
}

/* name{k1="v1"[,k2="v2"]} value */
static void
sample(struct ag__sbuf *o, const char *name, const char *k1, const char *v1, const char *k2,
       const char *v2, double value)
{
	ag__sbuf_printf(o, "faustc_%s", name);
	if (k1) {
		ag__sbuf_printf(o, "{%s=\"", k1);
		label(o, v1);
		ag__sbuf_append(o, "\"", 1);
		if (k2) {
			ag__sbuf_printf(o, ",%s=\"", k2);
			label(o, v2);
			ag__sbuf_append(o, "\"", 1);
		}
		ag__sbuf_append(o, "}", 1);
	}
	/* Counts as integers; other values with enough digits and no float noise. */
	if (value == (double)(int64_t)value && value < 9007199254740992.0)
		ag__sbuf_printf(o, " %lld\n", (long long)value);
	else
		ag__sbuf_printf(o, " %.9g\n", value);
}

static void
hist(struct ag__sbuf *o, const char *name, const char *k, const char *v, const struct ag__hist *h)
{
	static const uint64_t bounds[AG__HIST_N] = AG__HIST_BOUNDS;
	uint64_t cum = 0;
	for (int i = 0; i <= AG__HIST_N; i++) {
		char le[32];
		if (i < AG__HIST_N) {
			cum += h->b[i];
			snprintf(le, sizeof(le), "%g", (double)bounds[i] / 1e6);
		} else {
			cum = h->count;
			snprintf(le, sizeof(le), "+Inf");
		}
		ag__sbuf_printf(o, "faustc_%s_bucket{", name);
		if (k) {
			ag__sbuf_printf(o, "%s=\"", k);
			label(o, v);
			ag__sbuf_append(o, "\",", 2);
		}
		ag__sbuf_printf(o, "le=\"%s\"} %llu\n", le, (unsigned long long)cum);
	}
	const char *suffix[] = {"sum", "count"};
	for (int i = 0; i < 2; i++) {
		char n[128];
		snprintf(n, sizeof(n), "%s_%s", name, suffix[i]);
		sample(o, n, k, v, NULL, NULL, i == 0 ? (double)h->sum_us / 1e6 : (double)h->count);
	}
}

static void
agent_metrics(struct ag__worker *w, struct ag__sbuf *o)
{
	const struct ag_app *app = w->app;
	family(o, "events_in_total", "counter",
	       "Events an agent took from a topic (its source, or a repartition topic).");
	for (size_t i = 0; i < app->nagents; i++) {
		const struct ag_agent *a = app->agents[i];
		for (size_t k = 0; k < a->nsegs; k++) {
			uint64_t n = 0;
			for (size_t r = 0; r < a->segs[k].nrts; r++)
				n += a->segs[k].rts[r]->events;
			sample(o, "events_in_total", "agent", a->name, "topic",
			       a->segs[k].input->name, (double)n);
		}
	}
	family(o, "events_out_total", "counter",
	       "Messages an agent produced (sinks, forwards, sends, dead letters).");
	for (size_t i = 0; i < app->nagents; i++)
		sample(o, "events_out_total", "agent", app->agents[i]->name, NULL, NULL,
		       (double)app->agents[i]->sent);
	family(o, "agent_inflight_events", "gauge",
	       "Events fetched for an agent and not yet acked (buffered or in hand).");
	for (size_t i = 0; i < app->nagents; i++) {
		const struct ag_agent *a = app->agents[i];
		uint64_t n = 0;
		for (size_t k = 0; k < a->nsegs; k++) {
			const struct ag_topic *t = a->segs[k].input;
			for (int p = 0; t->parts && p < t->partitions; p++)
				if (t->parts[p].assigned)
					n += ag__acks_pending(&t->parts[p].acks[a->segs[k].reader]);
		}
		sample(o, "agent_inflight_events", "agent", a->name, NULL, NULL, (double)n);
	}
	family(o, "processing_latency_seconds", "histogram",
	       "Time from handing an event to an agent's body to the body asking for the next.");
	for (size_t i = 0; i < app->nagents; i++)
		hist(o, "processing_latency_seconds", "agent", app->agents[i]->name,
		     &app->agents[i]->proc_hist);
	family(o, "end_to_end_latency_seconds", "histogram",
	       "Time from an event's Kafka timestamp to its hand-out to the agent's body.");
	for (size_t i = 0; i < app->nagents; i++)
		hist(o, "end_to_end_latency_seconds", "agent", app->agents[i]->name,
		     &app->agents[i]->e2e_hist);
	family(o, "agent_failures_total", "counter",
	       "Events an agent's operators or body failed on (skipped).");
	for (size_t i = 0; i < app->nagents; i++)
		sample(o, "agent_failures_total", "agent", app->agents[i]->name, NULL, NULL,
		       (double)app->agents[i]->failures);
	family(o, "agent_restarts_total", "counter",
	       "Times an agent's body was restarted after it returned an error.");
	for (size_t i = 0; i < app->nagents; i++)
		sample(o, "agent_restarts_total", "agent", app->agents[i]->name, NULL, NULL,
		       (double)app->agents[i]->restarts);
	family(o, "dead_lettered_total", "counter",
	       "Bad input events an agent sent to its dead-letter topic.");
	for (size_t i = 0; i < app->nagents; i++)
		sample(o, "dead_lettered_total", "agent", app->agents[i]->name, NULL, NULL,
		       (double)app->agents[i]->dead_lettered);
}

static void
partition_metrics(struct ag__worker *w, struct ag__sbuf *o)
{
	const struct ag_app *app = w->app;
	char num[16];
	family(o, "topic_messages_received_total", "counter",
	       "Messages fetched from an assigned partition.");
	for (size_t i = 0; i < app->ntopics; i++) {
		const struct ag_topic *t = app->topics[i];
		for (int p = 0; t->parts && p < t->partitions; p++) {
			snprintf(num, sizeof(num), "%d", p);
			if (t->parts[p].received || t->parts[p].assigned)
				sample(o, "topic_messages_received_total", "topic", t->name,
				       "partition", num, (double)t->parts[p].received);
		}
	}
	family(o, "topic_messages_produced_total", "counter",
	       "Messages this worker produced to a topic.");
	for (size_t i = 0; i < app->ntopics; i++)
		if (app->topics[i]->produced)
			sample(o, "topic_messages_produced_total", "topic", app->topics[i]->name,
			       NULL, NULL, (double)app->topics[i]->produced);
	struct ag__sbuf lag = {0}, paused = {0}, buffered = {0};
	for (size_t i = 0; i < app->ntopics; i++) {
		const struct ag_topic *t = app->topics[i];
		for (int p = 0; t->parts && p < t->partitions; p++) {
			const struct ag__tpart *tp = &t->parts[p];
			if (!tp->assigned)
				continue;
			snprintf(num, sizeof(num), "%d", p);
			int64_t lo, hi, pos = tp->committed;
			if (tp->have_pos) {
				pos = INT64_MAX;
				for (uint32_t r = 0; r < tp->nreaders; r++) {
					int64_t c = ag__acks_committable(&tp->acks[r]);
					pos = c < pos ? c : pos;
				}
			}
			if (rd_kafka_get_watermark_offsets(w->consumer, t->name, p, &lo, &hi) ==
				    RD_KAFKA_RESP_ERR_NO_ERROR &&
			    hi >= 0) {
				if (pos < lo)
					pos = lo;
				sample(&lag, "consumer_lag", "topic", t->name, "partition", num,
				       (double)(hi > pos ? hi - pos : 0));
			}
			sample(&paused, "partition_paused", "topic", t->name, "partition", num,
			       tp->paused);
			sample(&buffered, "partition_buffered", "topic", t->name, "partition", num,
			       ag__tpart_most(tp));
		}
	}
	/* Each family's samples follow its own header. */
	family(o, "consumer_lag", "gauge",
	       "Messages of an assigned partition not yet processed: the high watermark "
	       "librdkafka last saw minus the committable position.");
	ag__sbuf_append(o, lag.ptr ? lag.ptr : "", lag.len);
	family(o, "partition_paused", "gauge",
	       "1 while back-pressure pauses fetching from the partition.");
	ag__sbuf_append(o, paused.ptr ? paused.ptr : "", paused.len);
	family(o, "partition_buffered", "gauge", "Messages fetched and not yet handed out.");
	ag__sbuf_append(o, buffered.ptr ? buffered.ptr : "", buffered.len);
	o->oom |= lag.oom | paused.oom | buffered.oom;
	free(lag.ptr);
	free(paused.ptr);
	free(buffered.ptr);
}

/* In-memory channels (channel.c): what went through, what waits, what was refused. */
static void
channel_metrics(struct ag__worker *w, struct ag__sbuf *o)
{
	const struct ag_app *app = w->app;
	if (!app->nchannels)
		return;
	family(o, "channel_sent_total", "counter", "Events put into an in-memory channel.");
	for (size_t i = 0; i < app->nchannels; i++)
		sample(o, "channel_sent_total", "channel", app->channels[i]->name, NULL, NULL,
		       (double)app->channels[i]->channel->sent);
	family(o, "channel_buffered", "gauge",
	       "Events of a channel its fullest reader has not been handed yet (lost if the "
	       "worker stops now).");
	for (size_t i = 0; i < app->nchannels; i++) {
		const struct ag_topic *t = app->channels[i];
		sample(o, "channel_buffered", "channel", t->name, NULL, NULL,
		       t->parts ? (double)ag__tpart_most(t->parts) : 0.0);
	}
	family(o, "channel_parks_total", "counter",
	       "Sends that parked on a full channel (back-pressure).");
	for (size_t i = 0; i < app->nchannels; i++)
		sample(o, "channel_parks_total", "channel", app->channels[i]->name, NULL, NULL,
		       (double)app->channels[i]->channel->parks);
	family(o, "channel_dropped_total", "counter",
	       "Sends to a channel refused because the worker stops or no agent reads it.");
	for (size_t i = 0; i < app->nchannels; i++) {
		const struct ag__channel *ch = app->channels[i]->channel;
		sample(o, "channel_dropped_total", "channel", app->channels[i]->name, NULL, NULL,
		       (double)(ch->dropped_stop + ch->dropped_unread + ch->dropped_abort));
	}
}

static void
table_metrics(struct ag__web *web, struct ag__sbuf *o)
{
	struct ag__worker *w = web->w;
	const struct ag_app *app = w->app;
	uint64_t now = ag__now_ns();
	int refresh = !web->table_keys_ns || now - web->table_keys_ns > TABLE_KEYS_TTL_NS;
	if (refresh)
		web->table_keys_ns = now;
	family(o, "table_keys", "gauge",
	       "Keys of a table in this worker's store (all partitions it holds, standbys "
	       "included; windowed tables count one per key and window; refreshed every 5 s).");
	for (size_t i = 0; i < app->ntables; i++) {
		const struct ag_table *t = app->tables[i];
		if (refresh) {
			int64_t n = 0;
			for (int p = 0; p < t->changelog->partitions; p++) {
				int64_t c = ag__store_count(w->store, t->name, p);
				struct ag_bytes v;
				if (c > 0 && t->win.on &&
				    ag__store_get(w->store, t->name, p,
						  (struct ag_bytes){AG__WINDOW_META_KEY,
								    AG__WINDOW_META_KEYLEN},
						  &v) == 0)
					c--;
				n += c > 0 ? c : 0;
			}
			web->table_keys[i] = n;
		}
		sample(o, "table_keys", "table", t->name, NULL, NULL, (double)web->table_keys[i]);
	}
	family(o, "changelog_records_total", "counter",
	       "Records this worker wrote to a table's changelog topic.");
	for (size_t i = 0; i < app->ntables; i++)
		sample(o, "changelog_records_total", "table", app->tables[i]->name, NULL, NULL,
		       (double)app->tables[i]->changelog->produced);
	family(o, "table_recovery_restored", "gauge",
	       "Changelog records restored so far by the partitions now recovering.");
	for (size_t i = 0; i < app->ntables; i++) {
		const struct ag_table *t = app->tables[i];
		uint64_t n = 0;
		for (int p = 0; t->rt && p < t->changelog->partitions; p++)
			if (t->rt->parts[p].restoring)
				n += t->rt->parts[p].restored;
		sample(o, "table_recovery_restored", "table", t->name, NULL, NULL, (double)n);
	}
	family(o, "table_recovery_remaining", "gauge",
	       "Changelog offsets the partitions now recovering have still to restore (an "
	       "upper bound on records: compaction leaves gaps).");
	for (size_t i = 0; i < app->ntables; i++) {
		const struct ag_table *t = app->tables[i];
		int64_t n = 0;
		for (int p = 0; t->rt && p < t->changelog->partitions; p++) {
			const struct ag__part *pt = &t->rt->parts[p];
			if (!pt->restoring)
				continue;
			int64_t left = pt->restore_end - pt->restore_pos;
			n += left > 0 ? left : 0;
		}
		sample(o, "table_recovery_remaining", "table", t->name, NULL, NULL, (double)n);
	}
	family(o, "late_events_total", "counter",
	       "Events too late for their windows (past end + grace) of a windowed table.");
	for (size_t i = 0; i < app->ntables; i++) {
		const struct ag_table *t = app->tables[i];
		if (t->win.on)
			sample(o, "late_events_total", "table", t->name, NULL, NULL,
			       t->rt ? (double)t->rt->late_events : 0.0);
	}
}

void
ag__web_metrics(struct ag__web *web, struct ag__sbuf *o)
{
	struct ag__worker *w = web->w;
	const struct ag_app *app = w->app;
	family(o, "info", "gauge", "The worker: app id, version and worker id (always 1).");
	ag__sbuf_printf(o, "faustc_info{app=\"");
	label(o, app->id);
	ag__sbuf_printf(o, "\",version=\"%s\",worker_id=\"%s\"} 1\n", ag_version(), w->worker_id);
	static const char *const states[] = {"starting",     "recovering", "rebalancing",
					     "disconnected", "running",    "stopping"};
	const char *state = ag__web_state(w);
	family(o, "worker_state", "gauge", "1 for the worker's current state (as /health says).");
	for (size_t i = 0; i < AG__ARRAY_SIZE(states); i++)
		sample(o, "worker_state", "state", states[i], NULL, NULL,
		       strcmp(state, states[i]) == 0);
	agent_metrics(w, o);
	partition_metrics(w, o);
	channel_metrics(w, o);
	table_metrics(web, o);
	family(o, "bad_input_total", "counter",
	       "Events that failed their topic's codec or record type, by reason.");
	for (size_t i = 0; i < app->ntopics; i++) {
		const struct ag_topic *t = app->topics[i];
		for (int r = 0; r < AG__BAD_N; r++)
			if (t->bad[r])
				sample(o, "bad_input_total", "topic", t->name, "reason",
				       ag__bad_name((enum ag__bad)r), (double)t->bad[r]);
	}
	family(o, "commit_duration_seconds", "histogram",
	       "Commit cycles (flush, deliveries, LMDB, offsets) and how long each took.");
	hist(o, "commit_duration_seconds", NULL, NULL, &w->commit_hist);
	family(o, "rebalances_total", "counter",
	       "Partition revocations (consumer group rebalances).");
	sample(o, "rebalances_total", NULL, NULL, NULL, NULL, (double)w->rebalances);
	family(o, "broker_up", "gauge",
	       "0 after librdkafka reported all brokers down, until traffic flows again.");
	sample(o, "broker_up", NULL, NULL, NULL, NULL, !w->brokers_down);
	family(o, "messages_sent_total", "counter", "Messages this worker produced.");
	sample(o, "messages_sent_total", NULL, NULL, NULL, NULL, (double)w->sent);
	family(o, "failed_deliveries_total", "counter", "Messages the broker refused for good.");
	sample(o, "failed_deliveries_total", NULL, NULL, NULL, NULL, (double)w->failed_deliveries);
	family(o, "forward_duplicates_total", "counter",
	       "Forwarded events seen again after a crash and skipped.");
	sample(o, "forward_duplicates_total", NULL, NULL, NULL, NULL, (double)w->fwd_duplicates);
	family(o, "forward_waits_total", "counter",
	       "Times a forwarder waited for the consumers of its topic to catch up.");
	sample(o, "forward_waits_total", NULL, NULL, NULL, NULL, (double)w->flow_waits);
	family(o, "transactions_committed_total", "counter",
	       "exactly_once: commit cycles committed as one Kafka transaction.");
	sample(o, "transactions_committed_total", NULL, NULL, NULL, NULL, (double)w->txn_commits);
	family(o, "transactions_aborted_total", "counter",
	       "exactly_once: transactions aborted (their events were processed again).");
	sample(o, "transactions_aborted_total", NULL, NULL, NULL, NULL, (double)w->txn_aborts);
}
