/*
 * Forwarding flow control: how far a forwarder (group_by, through) may run ahead of the
 * consumers of the topic it writes.
 *
 * A forwarder reads its source as fast as the broker delivers it, while the events it
 * forwards are consumed by a body that may be slower, on this worker or another. Without a
 * bound the boundary topic grows without limit; on the embedded broker, which keeps only
 * the newest ~5 MiB of a partition, the oldest forwarded events would then be dropped
 * before anyone read them (Faust, on that broker, lost ~14,000 events this way). So for
 * each partition of a boundary topic the worker estimates the bytes between the group's
 * committed offset and the end (delivered + in flight, at the average size of what it
 * produced there), and a forwarder about to write past AG__FLOW_BUDGET_* waits.
 *
 * Committed offsets come from the group coordinator (ListConsumerGroupOffsets, an
 * asynchronous admin request whose answer a short poll timer picks up), so consumers on
 * other workers count too. A wait also asks this worker for an early commit cycle, so a
 * local consumer's progress shows without waiting for the commit interval.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"

/* Per-partition budgets: below the embedded broker's ~5 MiB; generous on a real cluster. */
#define AG__FLOW_BUDGET_MOCK (3u << 20)
#define AG__FLOW_BUDGET_KAFKA (256u << 20)
/* Bytes a record costs in the log beyond its key and value (batch and record headers). */
#define AG__FLOW_OVERHEAD 70
/* How often the answer to a committed-offsets request is looked for (ms). */
#define AG__FLOW_POLL_MS 5
/* Waiting forwarders ask (and ask for a commit) at most this often (ms). */
#define AG__FLOW_ASK_MS 50

struct ag__flow_part {
	int64_t end; /* delivered up to here (offset + 1) */
	int64_t committed; /* the group's committed offset; 0 until known */
	int64_t pending; /* produced, not yet delivered */
};

struct ag__flow {
	struct ag__flow_part *parts;
	uint64_t bytes, msgs; /* what this worker produced to the topic */
};

static int
is_boundary(const struct ag_app *app, const struct ag_topic *t)
{
	for (size_t i = 0; i < app->nagents; i++) {
		const struct ag_agent *a = app->agents[i];
		for (size_t k = 0; k < a->nsegs; k++) {
			if (a->segs[k].boundary && a->segs[k].boundary->topic == t)
				return 1;
		}
	}
	return 0;
}

int
ag__flow_open(struct ag__worker *w)
{
	int any = 0;
	for (size_t i = 0; i < w->app->ntopics; i++) {
		struct ag_topic *t = w->app->topics[i];
		if (!is_boundary(w->app, t))
			continue;
		if (!(t->flow = calloc(1, sizeof(*t->flow))) ||
		    !(t->flow->parts = calloc((size_t)t->partitions, sizeof(*t->flow->parts))))
			return -ENOMEM;
		any = 1;
	}
	if (!any)
		return 0;
	w->flow_budget =
		w->broker.kind == AG__BROKER_KAFKA ? AG__FLOW_BUDGET_KAFKA : AG__FLOW_BUDGET_MOCK;
	if (!(w->aq = rd_kafka_queue_new(w->consumer)))
		return -ENOMEM;
	int rc = uv_timer_init(&w->loop, &w->flow_timer);
	if (rc < 0)
		return rc;
	w->flow_timer.data = w;
	w->flow_timer_open = 1;
	return 0;
}

void
ag__flow_close(struct ag__worker *w)
{
	if (w->flow_timer_open) {
		w->flow_timer_open = 0;
		uv_close((uv_handle_t *)&w->flow_timer, NULL);
	}
}

void
ag__flow_free(struct ag__worker *w)
{
	for (size_t i = 0; i < w->app->ntopics; i++) {
		struct ag_topic *t = w->app->topics[i];
		if (t->flow)
			free(t->flow->parts);
		free(t->flow);
		t->flow = NULL;
	}
	if (w->aq)
		rd_kafka_queue_destroy(w->aq);
	w->aq = NULL;
}

void
ag__flow_produced(struct ag_topic *t, int32_t partition, size_t bytes)
{
	if (!t->flow || partition < 0 || partition >= t->partitions)
		return;
	t->flow->parts[partition].pending++;
	t->flow->bytes += bytes + AG__FLOW_OVERHEAD;
	t->flow->msgs++;
}

void
ag__flow_delivered(const rd_kafka_message_t *m)
{
	struct ag_topic *t = m->rkt ? rd_kafka_topic_opaque(m->rkt) : NULL;
	if (!t || !t->flow || m->partition < 0 || m->partition >= t->partitions)
		return;
	struct ag__flow_part *fp = &t->flow->parts[m->partition];
	fp->pending--;
	if (!m->err && m->offset + 1 > fp->end)
		fp->end = m->offset + 1;
}

/* The bytes estimated between the group's committed offset and the end of partition p. */
static uint64_t
ahead(const struct ag_topic *t, int32_t p)
{
	const struct ag__flow_part *fp = &t->flow->parts[p];
	int64_t n = fp->end - fp->committed;
	n = (n > 0 ? n : 0) + fp->pending;
	uint64_t avg = t->flow->msgs ? t->flow->bytes / t->flow->msgs : AG__FLOW_OVERHEAD;
	return (uint64_t)n * avg;
}

static void
take_answer(struct ag__worker *w, rd_kafka_event_t *ev)
{
	const rd_kafka_ListConsumerGroupOffsets_result_t *res =
		rd_kafka_event_ListConsumerGroupOffsets_result(ev);
	size_t n = 0;
	const rd_kafka_group_result_t **groups =
		res ? rd_kafka_ListConsumerGroupOffsets_result_groups(res, &n) : NULL;
	if (rd_kafka_event_error(ev))
		ag__log(w->app, AG_LOG_DEBUG, "committed offsets of the forwarded topics: %s",
			rd_kafka_event_error_string(ev));
	for (size_t g = 0; g < n; g++) {
		const rd_kafka_topic_partition_list_t *l =
			rd_kafka_group_result_partitions(groups[g]);
		for (int i = 0; l && i < l->cnt; i++) {
			const rd_kafka_topic_partition_t *e = &l->elems[i];
			struct ag_topic *t = ag_app_find_topic(w->app, e->topic);
			if (!t || !t->flow || e->err || e->partition < 0 ||
			    e->partition >= t->partitions || e->offset < 0)
				continue;
			t->flow->parts[e->partition].committed = e->offset;
		}
	}
}

static void ask_committed(struct ag__worker *w);

/*
 * The flow timer either polls for the answer to a request (flow_asking) or, while
 * forwarders wait, makes the next request when AG__FLOW_ASK_MS have passed since the last.
 */
static void
on_flow_timer(uv_timer_t *h)
{
	struct ag__worker *w = h->data;
	if (!w->flow_asking) {
		uv_timer_stop(&w->flow_timer);
		if (w->flow_waiters)
			ask_committed(w);
		return;
	}
	rd_kafka_event_t *ev = rd_kafka_queue_poll(w->aq, 0);
	if (!ev)
		return;
	take_answer(w, ev);
	rd_kafka_event_destroy(ev);
	w->flow_asking = 0;
	uv_timer_stop(&w->flow_timer);
	ag__agents_wake_all(w, AG__AGENT_WAIT_FLOW);
}

/*
 * Asks the group coordinator for the committed offsets of every forwarded topic, and this
 * worker for a commit (its own consumers' progress), at most every AG__FLOW_ASK_MS.
 */
static void
ask_committed(struct ag__worker *w)
{
	if (w->flow_asking || !w->flow_timer_open || uv_is_active((uv_handle_t *)&w->flow_timer))
		return;
	uint64_t now = ag__now_ns(), next = w->flow_asked_ns + AG__FLOW_ASK_MS * 1000000ull;
	if (now < next) {
		uv_timer_start(&w->flow_timer, on_flow_timer, (next - now) / 1000000u + 1, 0);
		return;
	}
	w->flow_asked_ns = now;
	ag__worker_commit_soon(w);
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
	for (size_t i = 0; i < w->app->ntopics; i++) {
		const struct ag_topic *t = w->app->topics[i];
		for (int p = 0; t->flow && p < t->partitions; p++)
			rd_kafka_topic_partition_list_add(l, t->name, p);
	}
	rd_kafka_ListConsumerGroupOffsets_t *req =
		rd_kafka_ListConsumerGroupOffsets_new(w->app->id, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (!req)
		return;
	rd_kafka_ListConsumerGroupOffsets(w->consumer, &req, 1, NULL, w->aq);
	rd_kafka_ListConsumerGroupOffsets_destroy(req);
	w->flow_asking = 1;
	uv_timer_start(&w->flow_timer, on_flow_timer, AG__FLOW_POLL_MS, AG__FLOW_POLL_MS);
}

void
ag__flow_tick(struct ag__worker *w)
{
	if (w->flow_waiters)
		ask_committed(w);
}

int
ag__flow_wait(struct ag__agent_rt *rt, struct ag_topic *t, int32_t partition)
{
	struct ag__worker *w = rt->w;
	uint64_t rewinds = w->rewinds;
	/*
	 * exactly_once: a commit cycle holds the forwarder here, its event taken but not yet
	 * forwarded (so nothing of it is in the transaction); an abort meanwhile released the
	 * event (-ECANCELED: the forwarder goes on with the next one).
	 */
	while (w->txn_hold) {
		if (w->stopping)
			return AG_ESTOPPED;
		ag__agent_park(rt, AG__AGENT_WAIT_FLOW);
	}
	if (w->rewinds != rewinds)
		return -ECANCELED;
	if (!t->flow || partition < 0 || partition >= t->partitions)
		return 0;
	int logged = 0;
	while (ahead(t, partition) > w->flow_budget) {
		if (w->stopping)
			return AG_ESTOPPED;
		if (!logged++)
			ag__log(w->app, AG_LOG_DEBUG,
				"forwarding to %s[%d] waits: %llu bytes not yet consumed", t->name,
				(int)partition, (unsigned long long)ahead(t, partition));
		w->flow_waits++;
		w->flow_waiters++;
		ask_committed(w);
		ag__agent_park(rt, AG__AGENT_WAIT_FLOW);
		w->flow_waiters--;
		while (w->txn_hold && !w->stopping)
			ag__agent_park(rt, AG__AGENT_WAIT_FLOW);
		if (w->rewinds != rewinds)
			return -ECANCELED;
	}
	return 0;
}
