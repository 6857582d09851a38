/*
 * The worker: one libuv loop per process.
 *
 * librdkafka's consumer, producer and table-restore consumer each get a queue whose
 * io-event fd (a pipe) the loop watches with uv_poll. The consumer queue is drained in
 * batches of at most AG__CONSUME_BUDGET messages per turn; when a batch fills the budget,
 * the rest is taken on the next turn through an idle handle (librdkafka writes the fd only
 * when the queue goes from empty to non-empty, so no new wake-up would come). Messages go
 * into per-partition buffers; agents (coroutines) take them from there.
 *
 * Commits run every commit_interval as a cycle: take each partition's committable offset
 * (the longest acked prefix), flush dirty table entries to their changelogs, wait until
 * every message produced so far is delivered (producer sequence numbers tracked like
 * offsets), write table entries and changelog positions to LMDB in one transaction, and
 * only then commit the consumer offsets. A crash anywhere in between replays events but
 * loses none. With processing_guarantee=exactly_once the cycle first holds every agent and
 * timer at a safe point, and the offsets go into the cycle's Kafka transaction with
 * everything produced since the last one; LMDB is written after the commit (txn.c).
 *
 * SIGINT/SIGTERM (or ag_app_stop) stop consumption; agents finish the event in hand and
 * get AG_EOF; a final cycle commits; the consumer leaves the group; every handle closes.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kafka.h"
#include "admin.h"
#include "channel.h"
#include "txn.h"
#include "worker.h"

volatile sig_atomic_t ag__stop_signal;

static void
early_signal(int signum)
{
	ag__stop_signal = signum;
}

static void cycle_start(struct ag__worker *w);
static void cycle_check(struct ag__worker *w);
static void begin_close(struct ag__worker *w);
static void on_idle(uv_idle_t *h);

struct ag__cycle {
	rd_kafka_topic_partition_list_t *offsets;
};

void
ag__worker_kick(struct ag__worker *w)
{
	if (w->handles_open && !uv_is_active((uv_handle_t *)&w->idle))
		uv_idle_start(&w->idle, on_idle);
}

static int
topic_parts_init(struct ag_topic *t)
{
	if (t->parts)
		return 0;
	t->parts = calloc((size_t)t->partitions, sizeof(*t->parts));
	if (!t->parts)
		return -ENOMEM;
	uint32_t readers = t->nreaders ? (uint32_t)t->nreaders : 1;
	for (int p = 0; p < t->partitions; p++) {
		struct ag__tpart *tp = &t->parts[p];
		tp->topic = t;
		tp->partition = p;
		tp->committed = -1;
		tp->last_offset = -1;
		tp->rings = calloc(readers, sizeof(*tp->rings));
		tp->acks = calloc(readers, sizeof(*tp->acks));
		if (!tp->rings || !tp->acks)
			return -ENOMEM;
		tp->nreaders = readers;
		for (uint32_t r = 0; r < readers; r++)
			ag__acks_init(&tp->acks[r], 0);
		int rc = ag__wm_tpart_init(tp);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void
ag__held_release(rd_kafka_message_t *m, uint32_t *refs)
{
	if (ag__chmsg_is(m)) {
		ag__chmsg_free(m);
		return;
	}
	if (refs && --*refs > 0)
		return;
	free(refs);
	rd_kafka_message_destroy(m);
}

static void
tpart_drop_buffer(struct ag__tpart *tp)
{
	for (uint32_t r = 0; r < tp->nreaders; r++) {
		struct ag__ring *ring = &tp->rings[r];
		while (ring->count) {
			struct ag__held *h = &ring->buf[ring->head];
			ag__held_release(h->m, h->refs);
			ring->head = (ring->head + 1) & (ring->cap - 1);
			ring->count--;
		}
	}
}

static void
topic_parts_free(struct ag_topic *t)
{
	if (!t->parts)
		return;
	for (int p = 0; p < t->partitions; p++) {
		struct ag__tpart *tp = &t->parts[p];
		if (tp->rings)
			tpart_drop_buffer(tp);
		for (uint32_t r = 0; r < tp->nreaders; r++) {
			free(tp->rings[r].buf);
			ag__acks_free(&tp->acks[r]);
		}
		free(tp->rings);
		free(tp->acks);
		ag__fwd_set(tp, NULL, 0);
		ag__wm_tpart_free(tp);
	}
	free(t->parts);
	t->parts = NULL;
}

static int
ring_push(struct ag__ring *ring, struct ag__held h)
{
	if (ring->count == ring->cap) {
		uint32_t cap = ring->cap ? ring->cap * 2 : 64;
		struct ag__held *buf = malloc(cap * sizeof(*buf));
		if (!buf)
			return -ENOMEM;
		for (uint32_t i = 0; i < ring->count; i++)
			buf[i] = ring->buf[(ring->head + i) & (ring->cap - 1)];
		free(ring->buf);
		ring->buf = buf;
		ring->cap = cap;
		ring->head = 0;
	}
	ring->buf[(ring->head + ring->count) & (ring->cap - 1)] = h;
	ring->count++;
	return 0;
}

/* Hands m to every reader of its topic. */
static int
tpart_push(struct ag__tpart *tp, rd_kafka_message_t *m)
{
	struct ag__held h = {m, NULL};
	if (tp->nreaders > 1) {
		if (!(h.refs = malloc(sizeof(*h.refs))))
			return -ENOMEM;
		*h.refs = tp->nreaders;
	}
	for (uint32_t r = 0; r < tp->nreaders; r++) {
		if (ring_push(&tp->rings[r], h) < 0) {
			/* The readers that got it keep it; the others never see it. */
			if (h.refs && (*h.refs -= tp->nreaders - r) == 0)
				free(h.refs);
			return r ? 0 : -ENOMEM;
		}
	}
	return 0;
}

uint32_t
ag__tpart_most(const struct ag__tpart *tp)
{
	uint32_t most = 0;
	for (uint32_t r = 0; r < tp->nreaders; r++)
		most = tp->rings[r].count > most ? tp->rings[r].count : most;
	return most;
}

/* The committable position: no reader has an unacked event before it. */
static int64_t
tpart_committable(const struct ag__tpart *tp)
{
	int64_t pos = INT64_MAX;
	for (uint32_t r = 0; r < tp->nreaders; r++) {
		int64_t p = ag__acks_committable(&tp->acks[r]);
		pos = p < pos ? p : pos;
	}
	return pos;
}

static void
tpart_acks_reset(struct ag__tpart *tp, int64_t start)
{
	for (uint32_t r = 0; r < tp->nreaders; r++)
		ag__acks_reset(&tp->acks[r], start);
}

static struct ag__tpart *
find_tpart(struct ag__worker *w, const char *topic, int32_t partition)
{
	struct ag_topic *t = ag_app_find_topic(w->app, topic);
	if (!t || !t->parts || partition < 0 || partition >= t->partitions)
		return NULL;
	return &t->parts[partition];
}

struct ag__tpart *
ag__tpart_find(struct ag__worker *w, const char *topic, int32_t partition)
{
	return find_tpart(w, topic, partition);
}

void
ag__tpart_forget(struct ag__tpart *tp)
{
	tpart_drop_buffer(tp);
	tp->ready = 0;
	tp->have_pos = 0;
	tp->paused = 0;
	tp->committed = -1;
	tp->at_eof = 0;
	tpart_acks_reset(tp, 0);
}

void
ag__tpart_maybe_resume(struct ag__worker *w, struct ag__tpart *tp)
{
	if (tp->topic->channel) {
		ag__channel_drained(w, tp);
		return;
	}
	if (!tp->paused || ag__tpart_most(tp) > AG__BUF_LOW)
		return;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, tp->topic->name, tp->partition);
	rd_kafka_resume_partitions(w->consumer, l);
	rd_kafka_topic_partition_list_destroy(l);
	tp->paused = 0;
	w->resumes++;
	ag__log(w->app, AG_LOG_DEBUG, "back-pressure: resumed fetching %s[%d]", tp->topic->name,
		(int)tp->partition);
}

static void
pause_tpart(struct ag__worker *w, struct ag__tpart *tp)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, tp->topic->name, tp->partition);
	rd_kafka_pause_partitions(w->consumer, l);
	rd_kafka_topic_partition_list_destroy(l);
	tp->paused = 1;
	/* The first pause says what is going on; the rest are counted in the stats line. */
	w->pauses++;
	ag__log(w->app, w->pauses == 1 ? AG_LOG_INFO : AG_LOG_DEBUG,
		"back-pressure: paused fetching %s[%d] (%u events buffered)%s", tp->topic->name,
		(int)tp->partition, ag__tpart_most(tp),
		w->pauses == 1 ? "; further pauses and resumes are counted in the stats line" : "");
}

/* Traffic from a broker: after an outage, says that it is over. */
static void
broker_ok(struct ag__worker *w)
{
	if (!w->brokers_down)
		return;
	w->brokers_down = 0;
	ag__log(w->app, AG_LOG_WARN,
		"broker %s reachable again after %.1f s (%llu connection errors not logged); "
		"processing resumes",
		w->broker.bootstrap, (double)(ag__now_ns() - w->down_ns) / 1e9,
		(unsigned long long)w->errors_repeated);
	w->last_err = 0;
	w->errors_repeated = 0;
}

static void
dispatch(struct ag__worker *w, rd_kafka_message_t *m)
{
	/* Messages come in runs of one topic: remember the last handle's topic. */
	if (m->rkt != w->last_rkt) {
		w->last_rkt = m->rkt;
		w->last_topic = ag_app_find_topic(w->app, rd_kafka_topic_name(m->rkt));
	}
	struct ag_topic *t = w->last_topic;
	struct ag__tpart *tp = t && t->parts && m->partition >= 0 && m->partition < t->partitions
				       ? &t->parts[m->partition]
				       : NULL;
	if (!tp || !tp->assigned || w->stopping) {
		rd_kafka_message_destroy(m);
		return;
	}
	if (!tp->have_pos) {
		tpart_acks_reset(tp, m->offset);
		tp->have_pos = 1;
	}
	int rc = 0;
	for (uint32_t r = 0; r < tp->nreaders && rc == 0; r++)
		rc = ag__acks_add(&tp->acks[r], m->offset);
	if (rc < 0 || tpart_push(tp, m) < 0) {
		ag__log(w->app, AG_LOG_WARN, "dropping re-fetched %s[%d]@%lld (already buffered)",
			tp->topic->name, (int)tp->partition, (long long)m->offset);
		rd_kafka_message_destroy(m);
		return;
	}
	tp->at_eof = 0;
	tp->received++;
	tp->last_offset = m->offset;
	broker_ok(w);
	if (!w->first_event_ns)
		w->first_event_ns = ag__now_ns();
	uint32_t most = ag__tpart_most(tp);
	if (most > w->buffer_peak)
		w->buffer_peak = most;
	if (!tp->paused && most >= AG__BUF_HIGH)
		pause_tpart(w, tp);
	if (tp->ready)
		ag__tpart_wake(w, tp);
}

static void
consumer_error(struct ag__worker *w, rd_kafka_message_t *m)
{
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		/* Caught up: what idleness looks at (watermark.c). */
		struct ag__tpart *tp =
			m->rkt ? find_tpart(w, rd_kafka_topic_name(m->rkt), m->partition) : NULL;
		if (tp && tp->assigned)
			tp->at_eof = 1;
		return;
	}
	if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
		/*
		 * A consumer's fatal error (librdkafka hands it to the consumer, not error_cb)
		 * leaves it dead: it never joins the group again and its partitions stay
		 * unprocessed for ever (the wedge of issue 10). Seen on Kafka 4.1: a static
		 * member whose session timed out while its coordinator moved (a broker killed)
		 * rejoined and was fenced as FENCED_INSTANCE_ID (librdkafka issue #3437).
		 * Stop: a restart rejoins with the same --worker-id and gets the partitions
		 * back; the events since the last commit are processed again.
		 */
		char why[512];
		rd_kafka_fatal_error(w->consumer, why, sizeof(why));
		ag__log(w->app, AG_LOG_ERROR,
			"the consumer failed for good (%s); the worker stops (exit status 1): "
			"start "
			"it again (a supervisor should), it takes its partitions back",
			why[0] ? why : rd_kafka_message_errstr(m));
		w->exit_status = 1;
		ag_app_stop(w->app);
		return;
	}
	const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : NULL;
	if (topic)
		ag__log(w->app, AG_LOG_ERROR, "consumer: %s[%d]: %s", topic, (int)m->partition,
			rd_kafka_message_errstr(m));
	else
		ag__log(w->app, AG_LOG_WARN, "consumer: %s", rd_kafka_message_errstr(m));
}

static void
consumer_serve(struct ag__worker *w)
{
	rd_kafka_message_t *msgs[AG__CONSUME_BUDGET];
	ssize_t n = rd_kafka_consume_batch_queue(w->cq, 0, msgs, AG__CONSUME_BUDGET);
	w->consume_more = n == AG__CONSUME_BUDGET;
	for (ssize_t i = 0; i < n; i++) {
		if (msgs[i]->err) {
			consumer_error(w, msgs[i]);
			rd_kafka_message_destroy(msgs[i]);
		} else if (w->closing) {
			rd_kafka_message_destroy(msgs[i]);
		} else {
			dispatch(w, msgs[i]);
		}
	}
	if (w->consume_more)
		ag__worker_kick(w);
}

/* Whether some running agent is short of buffered events (or there is no agent). */
static int
intake_wanted(const struct ag__worker *w)
{
	int agents = 0;
	for (size_t i = 0; i < w->nrts; i++) {
		const struct ag__agent_rt *rt = w->rts[i];
		const struct ag_topic *t = rt->seg->input;
		if (rt->state == AG__AGENT_DONE || !t->parts)
			continue;
		agents++;
		uint32_t buffered = 0;
		for (int p = 0; p < t->partitions; p++)
			buffered += t->parts[p].rings[rt->seg->reader].count;
		if (buffered < AG__AGENT_LOW)
			return 1;
	}
	return agents == 0;
}

/* Takes a batch from the consumer queue unless every agent has enough to do. */
static void
consumer_intake(struct ag__worker *w)
{
	w->intake_blocked = !w->closing && !intake_wanted(w);
	if (!w->intake_blocked)
		consumer_serve(w);
}

static void
close_handles(struct ag__worker *w)
{
	if (!w->handles_open)
		return;
	w->handles_open = 0;
	uv_close((uv_handle_t *)&w->cpoll, NULL);
	uv_close((uv_handle_t *)&w->ppoll, NULL);
	uv_close((uv_handle_t *)&w->rpoll, NULL);
	uv_close((uv_handle_t *)&w->idle, NULL);
	uv_close((uv_handle_t *)&w->commit_timer, NULL);
	uv_close((uv_handle_t *)&w->sigint, NULL);
	uv_close((uv_handle_t *)&w->sigterm, NULL);
	ag__timers_close(w);
	ag__agents_close(w);
	ag__flow_close(w);
	ag__wm_close(w);
	ag__web_close(w);
}

static void
after_work(struct ag__worker *w)
{
	if (w->closing) {
		/* A consumer with a fatal error never finishes closing: nothing to wait for. */
		if (rd_kafka_consumer_closed(w->consumer) ||
		    rd_kafka_fatal_error(w->consumer, NULL, 0))
			close_handles(w);
		return;
	}
	if (w->cycle_quiet && ag__agents_quiet(w)) {
		cycle_check(w); /* calls after_work again once the cycle is done */
		return;
	}
	if (w->cycle_wanted && !w->stopping) {
		cycle_start(w);
		return;
	}
	if (w->stopping && !w->cycle_active && ag__agents_all_done(w)) {
		if (w->final_cycle) {
			begin_close(w);
		} else {
			w->final_cycle = 1;
			cycle_start(w);
		}
	}
}

static void
on_consumer(uv_poll_t *h, int status, int events)
{
	struct ag__worker *w = h->data;
	ag__queue_fd_drain(w->cfd[0]);
	consumer_intake(w);
	after_work(w);
}

static void
on_idle(uv_idle_t *h)
{
	struct ag__worker *w = h->data;
	if (w->consume_more || w->intake_blocked)
		consumer_intake(w);
	if (w->restore_more)
		ag__tables_restore_poll(w);
	ag__agents_run(w);
	/*
	 * A blocked intake is looked at again on the agents' next turn; with no agent
	 * runnable (all waiting for deliveries or for a restore) the idle handle must not
	 * spin: the wake-ups that make them runnable, and the commit timer, look again.
	 */
	if (!w->runq_head && !w->consume_more && !w->restore_more)
		uv_idle_stop(&w->idle);
	after_work(w);
}

static void
on_producer(uv_poll_t *h, int status, int events)
{
	struct ag__worker *w = h->data;
	ag__queue_fd_drain(w->pfd[0]);
	rd_kafka_poll(w->producer, 0);
	if (w->send_waiters) {
		w->send_waiters = 0;
		ag__agents_wake_all(w, AG__AGENT_WAIT_SEND);
	}
	if (w->txn_failed)
		ag__worker_commit_soon(w); /* the abort (dr_cb) */
	cycle_check(w);
	after_work(w);
}

static void
on_restorer(uv_poll_t *h, int status, int events)
{
	struct ag__worker *w = h->data;
	ag__queue_fd_drain(w->rfd[0]);
	ag__tables_restore_poll(w);
	after_work(w);
}

static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct ag__worker *w = opaque;
	uint64_t seq = (uint64_t)(uintptr_t)m->_private;
	if (m->_private == AG__OPAQUE_UNTRACKED) {
		if (m->err)
			ag__log(w->app, AG_LOG_DEBUG, "%s: %s", rd_kafka_topic_name(m->rkt),
				rd_kafka_err2str(m->err));
		return;
	}
	if (m->err && w->app->exactly_once) {
		/*
		 * The transaction this message belongs to cannot commit: the cycle aborts it at
		 * once (the messages still queued are purged with it, not waited for) and the
		 * events since the last commit are processed again. A purged message is part of
		 * an aborted transaction: not news.
		 */
		if (m->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE &&
		    m->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
			w->failed_deliveries++;
			if (w->txn_open && !w->txn_failed) {
				ag__log(w->app, AG_LOG_WARN,
					"could not deliver a message to %s[%d]: %s; this cycle's "
					"transaction is aborted and its events are processed again",
					rd_kafka_topic_name(m->rkt), (int)m->partition,
					rd_kafka_err2str(m->err));
				w->txn_failed = 1;
				/*
				 * Sends are dropped from now on: agents waiting for room go on.
				 * on_producer starts the cycle once this poll is over: the abort
				 * must serve the other delivery reports, not run inside one.
				 */
				ag__agents_wake_all(w, AG__AGENT_WAIT_SEND);
			}
		}
	} else if (m->err) {
		/*
		 * librdkafka retries for ever (message.timeout.ms=0), so this is a permanent
		 * refusal (too large, unknown topic, not authorized). Committing past the event
		 * that produced it would lose the message: stop without committing, and the
		 * events since the last commit are processed again after a restart.
		 */
		w->failed_deliveries++;
		ag__log(w->app, AG_LOG_ERROR,
			"could not deliver a message to %s[%d]: %s; the worker stops without "
			"committing (fix the cause and restart: the events are processed again)",
			rd_kafka_topic_name(m->rkt), (int)m->partition, rd_kafka_err2str(m->err));
		w->no_commit = 1;
		w->exit_status = 1;
		ag_app_stop(w->app);
	} else {
		ag__tables_delivered(w, m);
		broker_ok(w);
	}
	ag__flow_delivered(m);
	ag__acks_ack(&w->delivered, (int64_t)seq);
	w->last_delivery_ns = ag__now_ns();
}

/* The producer's handle of a topic; its opaque leads delivery reports back to the topic. */
static rd_kafka_topic_t *
producer_rkt(struct ag__worker *w, struct ag_topic *t)
{
	rd_kafka_topic_conf_t *tc = rd_kafka_topic_conf_new();
	rd_kafka_topic_conf_set_opaque(tc, t);
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(w->producer, t->name, tc);
	if (!rkt)
		rd_kafka_topic_conf_destroy(tc);
	return rkt;
}

int
ag__produce_hdrs(struct ag__worker *w, struct ag_topic *topic, int32_t partition,
		 const struct ag_bytes *key, const struct ag_bytes *value, rd_kafka_headers_t *hdrs,
		 int64_t timestamp)
{
	if (w->closing)
		return AG_ESTOPPED;
	if (w->txn_failed) {
		/* Its transaction is aborted anyway: the event is processed again after it. */
		w->txn_dropped++;
		if (hdrs)
			rd_kafka_headers_destroy(hdrs); /* taken over: success for the caller */
		return 0;
	}
	if (!topic->rkt && !(topic->rkt = producer_rkt(w, topic)))
		return ag__kafka_err(rd_kafka_last_error());
	if (partition < 0 && key && key->ptr)
		partition = ag__murmur2_partition(key->ptr, key->len, topic->partitions);
	else if (partition < 0)
		partition = topic->flow ? (int32_t)(w->next_seq % (uint64_t)topic->partitions)
					: RD_KAFKA_PARTITION_UA;
	uint64_t seq = w->next_seq;
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	if (!hdrs && timestamp <= 0) {
		if (rd_kafka_produce(topic->rkt, partition, RD_KAFKA_MSG_F_COPY,
				     value ? (void *)value->ptr : NULL, value ? value->len : 0,
				     key ? key->ptr : NULL, key ? key->len : 0,
				     (void *)(uintptr_t)seq) == -1)
			err = rd_kafka_last_error();
	} else {
		rd_kafka_vu_t vu[8] = {
			{.vtype = RD_KAFKA_VTYPE_RKT, .u.rkt = topic->rkt},
			{.vtype = RD_KAFKA_VTYPE_PARTITION, .u.i32 = partition},
			{.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY},
			{.vtype = RD_KAFKA_VTYPE_VALUE,
			 .u.mem = {value ? (void *)value->ptr : NULL, value ? value->len : 0}},
			{.vtype = RD_KAFKA_VTYPE_KEY,
			 .u.mem = {key ? (void *)key->ptr : NULL, key ? key->len : 0}},
			{.vtype = RD_KAFKA_VTYPE_OPAQUE, .u.ptr = (void *)(uintptr_t)seq},
			{.vtype = RD_KAFKA_VTYPE_TIMESTAMP, .u.i64 = timestamp > 0 ? timestamp : 0},
			{.vtype = RD_KAFKA_VTYPE_HEADERS, .u.headers = hdrs},
		};
		/* Without headers the last entry is left out. */
		size_t nvu = hdrs ? AG__ARRAY_SIZE(vu) : AG__ARRAY_SIZE(vu) - 1;
		rd_kafka_error_t *e = rd_kafka_produceva(w->producer, vu, nvu);
		if (e) {
			err = rd_kafka_error_code(e);
			rd_kafka_error_destroy(e);
		}
	}
	if (err == RD_KAFKA_RESP_ERR__STATE && w->app->exactly_once) {
		/* The transaction failed (its delivery report is on its way): it is aborted. */
		w->txn_failed = 1;
		w->txn_dropped++;
		if (hdrs)
			rd_kafka_headers_destroy(hdrs);
		return 0;
	}
	if (err) {
		if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			return -ENOBUFS;
		ag__log(w->app, AG_LOG_ERROR,
			"cannot produce to %s: %s; the sending agent gets the error (check the "
			"message size against message.max.bytes and that the topic is declared)",
			topic->name, rd_kafka_err2str(err));
		return ag__kafka_err(err);
	}
	ag__acks_add(&w->delivered, (int64_t)seq);
	ag__flow_produced(topic, partition, (key ? key->len : 0) + (value ? value->len : 0));
	w->next_seq++;
	w->sent++;
	topic->produced++;
	struct ag__agent_rt *cur = ag__agent_current();
	if (cur && cur->agent)
		cur->agent->sent++;
	return 0;
}

int
ag__produce(struct ag__worker *w, struct ag_topic *topic, int32_t partition,
	    const struct ag_bytes *key, const struct ag_bytes *value)
{
	return ag__produce_hdrs(w, topic, partition, key, value, NULL, 0);
}

/* ---- commit cycle ---- */

/*
 * Table changes could not be queued (out of memory): committing the cycle's offsets without
 * them would lose them. exactly_once aborts the transaction; at_least_once commits nothing
 * and stops (cycle_check).
 */
static void
flush_failed(struct ag__worker *w, int rc)
{
	ag__log(w->app, AG_LOG_ERROR, "flushing table changes failed: %s", ag_strerror(rc));
	if (w->app->exactly_once)
		w->txn_failed = 1;
	else if (!w->flush_failed)
		w->flush_failed = rc;
}

/* Takes the cycle's offsets and sends the dirty table entries to their changelogs. */
static void
cycle_take(struct ag__worker *w)
{
	rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(16);
	for (size_t i = 0; i < w->app->ntopics; i++) {
		struct ag_topic *t = w->app->topics[i];
		if (!t->parts)
			continue;
		for (int p = 0; p < t->partitions; p++) {
			struct ag__tpart *tp = &t->parts[p];
			if (!tp->assigned || !tp->have_pos)
				continue;
			int64_t pos = tpart_committable(tp);
			if (pos > tp->committed)
				rd_kafka_topic_partition_list_add(offs, t->name, p)->offset = pos;
		}
	}
	int rc = ag__tables_cycle_begin(w, 0);
	if (rc < 0)
		flush_failed(w, rc);
	/*
	 * The producer queue filled before every table change was queued: the cycle sends
	 * the rest as the queue drains (cycle_check) and commits only then, since its offsets
	 * cover the events of those changes (committed without them, a crash would lose
	 * them, and so would a stop). Agents wait meanwhile, so the queue only drains.
	 */
	w->cycle_flush_more = rc == 1;
	if (rc == 1 && !w->app->exactly_once) {
		w->txn_hold = 1;
		ag__log(w->app, AG_LOG_DEBUG,
			"commit cycle: the producer queue is full of table changes; agents wait "
			"until the rest is queued");
	}
	w->cycle->offsets = offs;
	w->cycle_seq = w->next_seq;
}

static void
cycle_start(struct ag__worker *w)
{
	w->cycle_wanted = 0;
	if (w->cycle_active) {
		w->cycle_again = 1;
		return;
	}
	w->cycle_active = 1;
	w->cycle_start_ns = ag__now_ns();
	if (w->app->exactly_once) {
		/* The offsets are taken once every agent is held at a safe point. */
		w->txn_hold = 1;
		w->cycle_quiet = 1;
	} else {
		cycle_take(w);
	}
	cycle_check(w);
}

static void
finish_revoke(struct ag__worker *w)
{
	w->unassign_pending = 0;
	for (size_t i = 0; i < w->app->ntopics; i++) {
		struct ag_topic *t = w->app->topics[i];
		if (!t->parts)
			continue;
		for (int p = 0; p < t->partitions; p++) {
			struct ag__tpart *tp = &t->parts[p];
			if (!tp->revoking)
				continue;
			tp->revoking = 0;
			tp->assigned = 0;
			tp->ready = 0;
			tp->have_pos = 0;
			tp->paused = 0;
			tpart_drop_buffer(tp);
			tpart_acks_reset(tp, 0);
			ag__fwd_set(tp, NULL, 0);
			ag__tables_revoke(w, tp);
		}
	}
	ag__tables_standby(w);
	rd_kafka_assign(w->consumer, NULL);
}

static void
cycle_check(struct ag__worker *w)
{
	if (!w->cycle_active)
		return;
	if (w->cycle_quiet) {
		if (!ag__agents_quiet(w))
			return;
		w->cycle_quiet = 0;
		cycle_take(w);
	}
	while (w->cycle_flush_more) {
		/* The agents are held: the producer queue only drains. Send the rest. */
		if (rd_kafka_outq_len(w->producer) > 1000)
			return; /* on_producer looks again */
		int rc = ag__tables_cycle_begin(w, 1);
		w->cycle_seq = w->next_seq;
		w->cycle_flush_more = rc == 1;
		if (rc == 1)
			return;
		if (rc < 0)
			flush_failed(w, rc);
	}
	/*
	 * A failed transaction is aborted without waiting: the abort purges what is queued.
	 * at_least_once commits nothing after a failed flush (below), so it need not wait.
	 */
	if (ag__acks_committable(&w->delivered) < (int64_t)w->cycle_seq && !w->txn_failed &&
	    !w->flush_failed)
		return;
	rd_kafka_topic_partition_list_t *offs = w->cycle->offsets;
	w->cycle->offsets = NULL;
	int rc = 0;
	if (!w->no_commit && !w->app->exactly_once)
		rc = w->flush_failed ? w->flush_failed : ag__tables_cycle_end(w);
	w->flush_failed = 0;
	if (w->app->exactly_once) {
		ag__txn_cycle_end(w, offs);
	} else if (w->no_commit) {
		ag__log(w->app, AG_LOG_WARN, "not committing: a message could not be delivered");
	} else if (rc < 0) {
		ag__log(w->app, AG_LOG_ERROR,
			"table changes could not be stored (%s); offsets are not committed and the "
			"worker stops: free disk space or check the data dir, then restart",
			ag_strerror(rc));
		w->exit_status = 1;
		ag_app_stop(w->app);
	} else if (offs->cnt > 0 && !w->closing) {
		rd_kafka_resp_err_t err = rd_kafka_commit(w->consumer, offs, 1);
		if (err)
			ag__log(w->app, AG_LOG_WARN, "offset commit failed: %s",
				rd_kafka_err2str(err));
		for (int i = 0; i < offs->cnt; i++) {
			struct ag__tpart *tp =
				find_tpart(w, offs->elems[i].topic, offs->elems[i].partition);
			if (tp)
				tp->committed = offs->elems[i].offset;
		}
	}
	rd_kafka_topic_partition_list_destroy(offs);
	w->cycle_active = 0;
	ag__hist_observe(&w->commit_hist, (ag__now_ns() - w->cycle_start_ns) / 1000u);
	if (w->txn_hold) {
		w->txn_hold = 0;
		ag__agents_wake_all(w, AG__AGENT_WAIT_EVENT);
		ag__agents_wake_all(w, AG__AGENT_WAIT_FLOW);
		ag__agents_wake_all(w, AG__AGENT_WAIT_TIMER);
	}
	if (w->cycle_again) {
		w->cycle_again = 0;
		cycle_start(w);
		return;
	}
	if (w->unassign_pending)
		finish_revoke(w);
	after_work(w);
}

static void
on_commit_timer(uv_timer_t *h)
{
	struct ag__worker *w = h->data;
	if (w->intake_blocked)
		consumer_intake(w);
	if (!w->stopping)
		cycle_start(w);
	ag__flow_tick(w);
}

void
ag__worker_cycle_wanted(struct ag__worker *w)
{
	w->cycle_wanted = 1;
	if (w->handles_open)
		uv_idle_start(&w->idle, on_idle); /* so that the loop turns: after_work starts it */
}

void
ag__worker_commit_soon(struct ag__worker *w)
{
	if (!w->stopping && !w->cycle_active)
		cycle_start(w);
}

static void
offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offs,
		 void *opaque)
{
	struct ag__worker *w = opaque;
	if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
		ag__log(w->app, AG_LOG_WARN, "offset commit failed: %s", rd_kafka_err2str(err));
	else if (!err && offs && w->broker.kind == AG__BROKER_KAFKA)
		ag__admin_purge(w, offs);
	if (!err)
		broker_ok(w);
}

/* ---- rebalance ---- */

static void
log_parts(struct ag__worker *w, const char *what, const rd_kafka_topic_partition_list_t *parts)
{
	char line[1024];
	size_t n = 0;
	line[0] = 0;
	for (int i = 0; i < parts->cnt && n < sizeof(line) - 64; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s[%d]", i ? " " : "",
				      parts->elems[i].topic, (int)parts->elems[i].partition);
	ag__log(w->app, AG_LOG_INFO, "%s: %s", what, parts->cnt ? line : "(none)");
}

/* Whether parts hold partition 0 of the leader topic. */
static int
holds_leader(const struct ag__worker *w, const rd_kafka_topic_partition_list_t *parts)
{
	const struct ag_topic *lt = w->app->leader_topic;
	for (int i = 0; lt && i < parts->cnt; i++) {
		if (parts->elems[i].partition == 0 && strcmp(parts->elems[i].topic, lt->name) == 0)
			return 1;
	}
	return 0;
}

static void
rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
	     void *opaque)
{
	struct ag__worker *w = opaque;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		log_parts(w, "partitions assigned", parts);
		w->assignments++;
		w->rebalancing = 0;
		for (int i = 0; i < parts->cnt; i++) {
			struct ag__tpart *tp =
				find_tpart(w, parts->elems[i].topic, parts->elems[i].partition);
			if (!tp)
				continue;
			tp->assigned = 1;
			tp->revoking = 0;
			tp->have_pos = 0;
			tp->committed = -1;
			tp->ready = 0;
			tpart_acks_reset(tp, 0);
			ag__wm_assigned(tp);
			ag__tables_assign(w, tp);
		}
		rd_kafka_assign(rk, parts);
		ag__tables_standby(w);
		ag__web_announce(w);
		if (holds_leader(w, parts))
			ag__timers_set_leader(w, 1);
		return;
	}
	if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
		ag__log(w->app, AG_LOG_ERROR, "rebalance failed: %s", rd_kafka_err2str(err));
	else
		log_parts(w, "partitions revoked", parts);
	w->rebalances++;
	w->rebalancing = !w->stopping;
	if (holds_leader(w, parts) || err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
		ag__timers_set_leader(w, 0);
	for (int i = 0; i < parts->cnt; i++) {
		struct ag__tpart *tp =
			find_tpart(w, parts->elems[i].topic, parts->elems[i].partition);
		if (tp && tp->assigned) {
			tp->revoking = 1;
			tp->ready = 0; /* hand out no more of its events */
		}
	}
	if (w->closing) {
		finish_revoke(w);
		return;
	}
	/* Commit what was processed before giving the partitions up (assign(NULL) later). */
	w->unassign_pending = 1;
	cycle_start(w);
}

/* A repeated librdkafka error is logged again at most this often (with its count). */
#define ERROR_REPEAT_NS (30ull * 1000000000u)

static void
error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct ag__worker *w = opaque;
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		ag__log(w->app, AG_LOG_ERROR, "kafka (%s): %s", rd_kafka_name(rk), reason);
		w->exit_status = 1;
		ag_app_stop(w->app);
		return;
	}
	/*
	 * During an outage each of the three clients reports every failed reconnect: one
	 * warning when it starts, then each kind of error once per 30 s with how often it
	 * came (broker_ok() logs the end).
	 */
	uint64_t now = ag__now_ns();
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && !w->brokers_down) {
		w->brokers_down = 1;
		w->down_ns = now;
		ag__log(w->app, AG_LOG_WARN,
			"no broker reachable at %s (%s): waiting for it; events, deliveries and "
			"commits wait too (nothing is lost)",
			w->broker.bootstrap, reason);
		w->last_err = err;
		w->last_err_ns = now;
		w->errors_repeated = 0;
		return;
	}
	int repeat = w->brokers_down || err == w->last_err; /* an outage: one kind of error */
	if (repeat && now - w->last_err_ns < ERROR_REPEAT_NS) {
		w->errors_repeated++;
		return;
	}
	if (w->brokers_down)
		ag__log(w->app, AG_LOG_WARN,
			"still waiting for the broker at %s after %.0f s: %s (%llu more errors "
			"since the last message)",
			w->broker.bootstrap, (double)(now - w->down_ns) / 1e9, reason,
			(unsigned long long)w->errors_repeated);
	else if (repeat && w->errors_repeated)
		ag__log(w->app, AG_LOG_WARN, "kafka: %s (%llu times in the last %.0f s)", reason,
			(unsigned long long)w->errors_repeated + 1,
			(double)(now - w->last_err_ns) / 1e9);
	else
		ag__log(w->app, AG_LOG_WARN, "kafka: %s", reason);
	w->last_err = err;
	w->last_err_ns = now;
	w->errors_repeated = 0;
}

/*
 * librdkafka's warnings and errors of one facility (GETPID retrying while the broker loads
 * its coordinator, ...) at most once per 30 s each: the ones between go to debug and are
 * counted in the next one logged. log_cb runs on librdkafka's threads, hence the lock.
 */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char fac[16];
	uint64_t ns;
	unsigned long skipped;
} log_seen[16];

/* Whether fac logged within ERROR_REPEAT_NS; else *skipped is how many were not logged. */
static int
log_repeated(const char *fac, unsigned long *skipped)
{
	uint64_t now = ag__now_ns();
	int repeated = 0;
	size_t slot = 0;
	pthread_mutex_lock(&log_mu);
	for (size_t i = 0; i < AG__ARRAY_SIZE(log_seen); i++) {
		if (strncmp(log_seen[i].fac, fac, sizeof(log_seen[i].fac) - 1) == 0) {
			slot = i;
			break;
		}
		if (log_seen[i].ns < log_seen[slot].ns)
			slot = i; /* the oldest, reused for a new facility */
	}
	if (strncmp(log_seen[slot].fac, fac, sizeof(log_seen[slot].fac) - 1) == 0 &&
	    now - log_seen[slot].ns < ERROR_REPEAT_NS) {
		log_seen[slot].skipped++;
		repeated = 1;
	} else {
		if (strncmp(log_seen[slot].fac, fac, sizeof(log_seen[slot].fac) - 1) != 0)
			log_seen[slot].skipped = 0;
		snprintf(log_seen[slot].fac, sizeof(log_seen[slot].fac), "%s", fac);
		*skipped = log_seen[slot].skipped;
		log_seen[slot].skipped = 0;
		log_seen[slot].ns = now;
	}
	pthread_mutex_unlock(&log_mu);
	return repeated;
}

/*
 * librdkafka logs each connection failure (facility FAIL) and also hands it to error_cb:
 * error_cb logs it, the log line goes to debug.
 */
static void
log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	struct ag__worker *w = rd_kafka_opaque(rk);
	enum ag_log_level l = level <= 3 ? AG_LOG_ERROR : level <= 4 ? AG_LOG_WARN : AG_LOG_DEBUG;
	unsigned long skipped = 0;
	if (strcmp(fac, "FAIL") == 0 || (l != AG_LOG_DEBUG && log_repeated(fac, &skipped)))
		l = AG_LOG_DEBUG;
	if (skipped)
		ag__log(w ? w->app : NULL, l, "kafka %s: %s (%lu more like it in the last 30 s)",
			fac, buf, skipped);
	else
		ag__log(w ? w->app : NULL, l, "kafka %s: %s", fac, buf);
}

/* ---- lifecycle ---- */

static void
on_close_tick(uv_timer_t *h)
{
	struct ag__worker *w = h->data;
	if (ag__now_ns() - w->stop_ns > 15ull * 1000000000u) {
		ag__log(w->app, AG_LOG_WARN,
			"the consumer did not close within 15 s; exiting anyway");
		close_handles(w);
		return;
	}
	consumer_serve(w);
	after_work(w);
}

static void
begin_close(struct ag__worker *w)
{
	if (w->closing)
		return;
	w->closing = 1;
	/* Serve the consumer queue until the group is left, whether or not the fd fires. */
	uv_timer_stop(&w->commit_timer);
	uv_timer_start(&w->commit_timer, on_close_tick, 20, 20);
	rd_kafka_error_t *e = rd_kafka_consumer_close_queue(w->consumer, w->cq);
	if (e) {
		ag__log(w->app, AG_LOG_WARN, "closing the consumer: %s", rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
	}
	consumer_serve(w);
	after_work(w);
}

static void
on_signal(uv_signal_t *h, int signum)
{
	struct ag__worker *w = h->data;
	if (w->stopping) {
		ag__log(w->app, AG_LOG_WARN,
			"second %s: leaving without the final commit (events since the last commit "
			"will be processed again)",
			strsignal(signum));
		w->exit_status = 1;
		if (w->cycle->offsets)
			rd_kafka_topic_partition_list_destroy(w->cycle->offsets);
		w->cycle->offsets = NULL;
		w->cycle_active = 0;
		w->cycle_quiet = 0;
		w->txn_hold = 0;
		w->unassign_pending = 0;
		begin_close(w);
		return;
	}
	ag__log(w->app, AG_LOG_INFO, "%s: stopping (again to force)", strsignal(signum));
	ag_app_stop(w->app);
}

AG_EXPORT void
ag_app_stop(struct ag_app *app)
{
	struct ag__worker *w = app ? app->worker : NULL;
	if (!w || w->stopping)
		return;
	w->stopping = 1;
	w->stop_ns = ag__now_ns();
	ag__agents_wake_all(w, AG__AGENT_WAIT_EVENT);
	ag__agents_wake_all(w, AG__AGENT_WAIT_CLOCK);
	ag__agents_wake_all(w, AG__AGENT_WAIT_FLOW);
	ag__channels_stop(w);
	ag__timers_stop(w);
	ag__web_announce(w); /* leaves the other workers' list */
	ag__worker_kick(w);
}

static int
mkdir_p(const char *path)
{
	char buf[4096];
	size_t len = strlen(path);
	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/*
 * Producer topic handles for every declared topic, made up front: librdkafka then learns
 * their leaders while the group forms instead of holding the first sends back.
 */
static int
producer_topics(struct ag__worker *w)
{
	for (size_t i = 0; i < w->app->ntopics; i++) {
		struct ag_topic *t = w->app->topics[i];
		if (!t->rkt && !(t->rkt = producer_rkt(w, t)))
			return ag__kafka_err(rd_kafka_last_error());
	}
	return 0;
}

/*
 * One worker per data dir: LMDB, broker.addr and the tables' changelog positions belong
 * to one process. Holds an flock on DATADIR/LOCK (with our pid in it) until exit.
 * Returns the fd, or -1 after logging who holds it.
 */
static int
lock_datadir(struct ag_app *app, const char *datadir)
{
	char path[4096], pid[32] = "";
	snprintf(path, sizeof(path), "%s/LOCK", datadir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		ag__log(app, AG_LOG_ERROR, "cannot open %s: %s; check --datadir", path,
			strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ssize_t n = read(fd, pid, sizeof(pid) - 1);
		pid[n > 0 ? n : 0] = 0;
		pid[strcspn(pid, "\n")] = 0;
		ag__log(app, AG_LOG_ERROR,
			"data dir %s is used by another worker (pid %s); give each worker its own "
			"--datadir",
			datadir, pid[0] ? pid : "unknown");
		close(fd);
		return -1;
	}
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || write(fd, pid, (size_t)n) != n)
		ag__log(app, AG_LOG_WARN, "cannot write the pid to %s: %s", path, strerror(errno));
	return fd;
}

static int
subscribe(struct ag__worker *w)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
	for (size_t i = 0; i < w->app->nagents; i++) {
		const struct ag_agent *a = w->app->agents[i];
		for (size_t k = 0; k < a->nsegs; k++) {
			const char *name = a->segs[k].input->name;
			if (a->segs[k].input->channel)
				continue; /* in memory: never on the broker (channel.c) */
			if (!rd_kafka_topic_partition_list_find(l, name, RD_KAFKA_PARTITION_UA))
				rd_kafka_topic_partition_list_add(l, name, RD_KAFKA_PARTITION_UA);
		}
	}
	if (w->app->leader_topic)
		rd_kafka_topic_partition_list_add(l, w->app->leader_topic->name,
						  RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t err = l->cnt ? rd_kafka_subscribe(w->consumer, l) : 0;
	rd_kafka_topic_partition_list_destroy(l);
	if (err) {
		ag__log(w->app, AG_LOG_ERROR, "cannot subscribe: %s", rd_kafka_err2str(err));
		return ag__kafka_err(err);
	}
	return 0;
}

static int
clients_open(struct ag__worker *w)
{
	char err[512];
	char group_restore[512];
	snprintf(group_restore, sizeof(group_restore), "%s-restore", w->app->id);
	char instance[256] = "";
	if (w->broker.kind == AG__BROKER_KAFKA &&
	    ag__kafka_instance_id(w->app, instance, sizeof(instance)) < 0)
		return -ENAMETOOLONG;
	struct ag__kv consumer_conf[8 + AG__TXN_CONF_MAX] = {
		/* Static membership on Kafka: a restarted worker takes its partitions back. */
		{"group.instance.id", instance},
		{"group.id", w->app->id},
		{"enable.auto.commit", "false"},
		{"enable.auto.offset.store", "false"},
		{"auto.offset.reset", "earliest"},
		{"enable.partition.eof", "true"}, /* idleness: a partition is caught up */
		{"partition.assignment.strategy", "range"},
		{"queued.max.messages.kbytes", "16384"},
	};
	struct ag__kv producer_conf[5 + AG__TXN_CONF_MAX] = {
		{"linger.ms", "5"},
		{"enable.idempotence", "true"},
		{"message.timeout.ms", "0"},
		{"queue.buffering.max.messages", "200000"},
		{"batch.num.messages", "10000"},
	};
	/*
	 * The restorer's queue may run up to 1M records ahead of the LMDB writes: librdkafka
	 * 2.0 stops fetching when the queue holds queued.min.messages (one count for all
	 * partitions) and starts again only on its broker thread's next wake-up, ~0.5 s
	 * later; at the default 100,000 a restore paused that long every 100,000 records
	 * (bench/README.md, "Table recovery"). The kbytes bound still caps its memory.
	 *
	 * On the embedded broker the restorer waits 100 ms for a fetch, not the worker
	 * consumer's 5 ms: it reads this worker's reply partition all the time, and the mock
	 * holds a fetch that finds no data for the whole wait, so 5 ms meant 200 empty fetches
	 * a second, about 3 % of a core in the worker and 4 % in the broker while idle and ~9 %
	 * of the stateless pipe's CPU (bench/README.md). The price: an ask's answer may come up
	 * to 100 ms later there. Restores are not slowed: a fetch that finds data returns at
	 * once. Kafka answers as soon as data arrives and keeps librdkafka's 500 ms.
	 */
	struct ag__kv restorer_conf[8 + AG__TXN_CONF_MAX] = {
		{"group.id", group_restore},
		{"enable.auto.commit", "false"},
		{"enable.auto.offset.store", "false"},
		{"auto.offset.reset", "earliest"},
		{"enable.partition.eof", "true"},
		{"queued.min.messages", "1000000"},
		{"queued.max.messages.kbytes", "65536"},
	};
	/* exactly_once: the transactional.id and read_committed (txn.c) */
	size_t nc = 8 + ag__txn_conf(w, RD_KAFKA_CONSUMER, consumer_conf + 8);
	size_t np = 5 + ag__txn_conf(w, RD_KAFKA_PRODUCER, producer_conf + 5);
	size_t nr = 7;
	if (w->broker.kind != AG__BROKER_KAFKA)
		restorer_conf[nr++] = (struct ag__kv){"fetch.wait.max.ms", "100"};
	nr += ag__txn_conf(w, RD_KAFKA_CONSUMER, restorer_conf + nr);
	size_t skip = *instance ? 0 : 1; /* the mock: no static membership */
	int rc = ag__kafka_new(&w->consumer, RD_KAFKA_CONSUMER, &w->broker, w->app,
			       consumer_conf + skip, nc - skip, w, err, sizeof(err));
	if (rc == 0)
		rc = ag__kafka_new(&w->producer, RD_KAFKA_PRODUCER, &w->broker, w->app,
				   producer_conf, np, w, err, sizeof(err));
	if (rc == 0)
		rc = ag__kafka_new(&w->restorer, RD_KAFKA_CONSUMER, &w->broker, w->app,
				   restorer_conf, nr, w, err, sizeof(err));
	if (rc < 0) {
		ag__log(w->app, AG_LOG_ERROR, "cannot create Kafka clients: %s", err);
		return rc;
	}
	rd_kafka_poll_set_consumer(w->consumer);
	rd_kafka_poll_set_consumer(w->restorer);
	w->cq = rd_kafka_queue_get_consumer(w->consumer);
	w->rq = rd_kafka_queue_get_consumer(w->restorer);
	w->pq = rd_kafka_queue_get_main(w->producer);
	if (!w->cq || !w->rq || !w->pq)
		return AG_EKAFKA;
	if ((rc = ag__queue_fd(w->cq, w->cfd)) < 0 || (rc = ag__queue_fd(w->pq, w->pfd)) < 0 ||
	    (rc = ag__queue_fd(w->rq, w->rfd)) < 0)
		return rc;
	return 0;
}

/* Client settings every worker client gets: callbacks on the loop thread. */
int
ag__worker_conf_hooks(rd_kafka_conf_t *conf, rd_kafka_type_t type)
{
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	if (type == RD_KAFKA_PRODUCER) {
		rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	} else {
		rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
		rd_kafka_conf_set_offset_commit_cb(conf, offset_commit_cb);
	}
	return 0;
}

static void
clients_close(struct ag__worker *w)
{
	for (size_t i = 0; i < w->app->ntopics; i++) {
		struct ag_topic *t = w->app->topics[i];
		if (t->rkt)
			rd_kafka_topic_destroy(t->rkt);
		t->rkt = NULL;
	}
	ag__queue_fd_close(w->cq, w->cfd);
	ag__queue_fd_close(w->pq, w->pfd);
	ag__queue_fd_close(w->rq, w->rfd);
	if (w->cq)
		rd_kafka_queue_destroy(w->cq);
	if (w->pq)
		rd_kafka_queue_destroy(w->pq);
	if (w->rq)
		rd_kafka_queue_destroy(w->rq);
	if (w->restorer)
		rd_kafka_destroy_flags(w->restorer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	if (w->consumer)
		rd_kafka_destroy_flags(w->consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	if (w->producer && w->txn_open) {
		/* Not committed: nothing of it may become visible. */
		rd_kafka_error_t *e = rd_kafka_abort_transaction(w->producer, 5000);
		if (e)
			rd_kafka_error_destroy(e);
		w->txn_open = 0;
	}
	if (w->producer) {
		rd_kafka_flush(w->producer, 5000);
		rd_kafka_destroy(w->producer);
	}
}

static int
handles_open(struct ag__worker *w)
{
	uv_loop_t *l = &w->loop;
	int rc;
	if ((rc = uv_poll_init(l, &w->cpoll, w->cfd[0])) < 0 ||
	    (rc = uv_poll_init(l, &w->ppoll, w->pfd[0])) < 0 ||
	    (rc = uv_poll_init(l, &w->rpoll, w->rfd[0])) < 0)
		return rc;
	uv_idle_init(l, &w->idle);
	uv_timer_init(l, &w->commit_timer);
	uv_signal_init(l, &w->sigint);
	uv_signal_init(l, &w->sigterm);
	w->cpoll.data = w->ppoll.data = w->rpoll.data = w->idle.data = w->commit_timer.data = w;
	w->sigint.data = w->sigterm.data = w;
	w->handles_open = 1;
	uv_poll_start(&w->cpoll, UV_READABLE, on_consumer);
	uv_poll_start(&w->ppoll, UV_READABLE, on_producer);
	uv_poll_start(&w->rpoll, UV_READABLE, on_restorer);
	uv_signal_start(&w->sigint, on_signal, SIGINT);
	uv_signal_start(&w->sigterm, on_signal, SIGTERM);
	uint64_t ms = (uint64_t)(w->app->commit_interval * 1000.0);
	uv_timer_start(&w->commit_timer, on_commit_timer, ms, ms);
	return 0;
}

int
ag__worker_run(struct ag_app *app)
{
	struct ag__worker *w = calloc(1, sizeof(*w));
	struct ag__cycle cycle = {0};
	char err[1024];
	int rc;
	if (!w)
		return 1;
	w->cycle = &cycle;
	w->app = app;
	w->cfd[0] = w->cfd[1] = w->pfd[0] = w->pfd[1] = w->rfd[0] = w->rfd[1] = -1;
	w->lock_fd = -1;
	ag__acks_init(&w->delivered, 0);
	w->exit_status = 1;
	/*
	 * Until the loop's signal handles exist, a stop signal only sets a flag: start-up
	 * gives up waiting for a broker, and the loop stops as soon as it runs.
	 */
	struct sigaction sa = {.sa_handler = early_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if ((rc = ag__app_finalize(app)) < 0)
		goto out_free;
	for (size_t i = 0; i < app->nagents; i++) {
		for (size_t k = 0; k < app->agents[i]->nsegs; k++) {
			if ((rc = topic_parts_init(app->agents[i]->segs[k].input)) < 0)
				goto out_free;
		}
	}
	const char *datadir = ag__app_datadir(app);
	if ((rc = mkdir_p(datadir)) < 0) {
		ag__log(app, AG_LOG_ERROR, "cannot create data dir %s: %s; pass --datadir DIR",
			datadir, strerror(-rc));
		goto out_free;
	}
	if ((w->lock_fd = lock_datadir(app, datadir)) < 0) {
		rc = AG_ECONFIG;
		goto out_free;
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/tables", datadir);
	if ((rc = ag__store_open(&w->store, path, 0, err, sizeof(err))) < 0) {
		ag__log(app, AG_LOG_ERROR, "%s", err);
		goto out_free;
	}
	if ((rc = ag__broker_open(&w->broker, app, 1, err, sizeof(err))) < 0) {
		ag__log(app, AG_LOG_ERROR, "%s", err);
		goto out_store;
	}
	if ((rc = ag__txn_check_broker(w)) < 0)
		goto out_broker;
	w->broker.wait = 1e9; /* a worker waits for its broker as long as it takes */
	if ((rc = ag__broker_ensure_topics(&w->broker, app, err, sizeof(err))) < 0) {
		if (rc == AG_ESTOPPED) {
			ag__log(app, AG_LOG_INFO, "%s", err);
			w->exit_status = 0;
			rc = 0;
		} else {
			ag__log(app, AG_LOG_ERROR, "%s", err);
		}
		goto out_broker;
	}
	if ((rc = uv_loop_init(&w->loop)) < 0)
		goto out_broker;
	app->worker = w;
	if ((rc = clients_open(w)) < 0 || (rc = ag__txn_open(w)) < 0 ||
	    (rc = handles_open(w)) < 0 || (rc = ag__flow_open(w)) < 0 || (rc = ag__wm_open(w)) < 0)
		goto out_loop;
	if ((rc = ag__tables_open(w)) < 0 || (rc = producer_topics(w)) < 0 ||
	    (rc = ag__channels_open(w)) < 0 || (rc = ag__agents_start(w)) < 0 ||
	    (rc = ag__agents_replies_open(w)) < 0 || (rc = subscribe(w)) < 0 ||
	    (rc = ag__timers_start(w)) < 0) {
		ag__log(app, AG_LOG_ERROR, "worker start-up failed: %s", ag_strerror(rc));
		ag_app_stop(app);
		w->exit_status = 1;
	} else {
		w->exit_status = 0;
		ag__log(app, AG_LOG_INFO,
			"worker started (faustc %s): %zu agents, %zu tables, %zu timers, data dir "
			"%s",
			ag_version(), app->nagents, app->ntables, app->ntimers, datadir);
		ag__web_open(w);
		if (ag__stop_signal) {
			ag__log(app, AG_LOG_INFO, "%s during start-up: stopping",
				strsignal(ag__stop_signal));
			ag_app_stop(app);
		}
	}
	uv_run(&w->loop, UV_RUN_DEFAULT);
	double elapsed = w->first_event_ns && w->last_delivery_ns > w->first_event_ns
				 ? (double)(w->last_delivery_ns - w->first_event_ns) / 1e9
				 : 0.0;
	ag__log(app, AG_LOG_INFO,
		"stats: events=%llu sent=%llu elapsed=%.6f failed_deliveries=%llu "
		"forward_waits=%llu forward_duplicates=%llu paused=%llu resumed=%llu "
		"buffer_peak=%u late_events=%llu watermark_heartbeats=%llu txn_commits=%llu "
		"txn_aborts=%llu",
		(unsigned long long)w->events, (unsigned long long)w->sent, elapsed,
		(unsigned long long)w->failed_deliveries, (unsigned long long)w->flow_waits,
		(unsigned long long)w->fwd_duplicates, (unsigned long long)w->pauses,
		(unsigned long long)w->resumes, w->buffer_peak, (unsigned long long)w->late_events,
		(unsigned long long)w->wm_heartbeats, (unsigned long long)w->txn_commits,
		(unsigned long long)w->txn_aborts);
	for (size_t i = 0; i < app->ntopics; i++) {
		const struct ag_topic *t = app->topics[i];
		char line[256];
		size_t n = 0;
		for (int r = 0; r < AG__BAD_N; r++) {
			if (t->bad[r])
				n += (size_t)snprintf(line + n, sizeof(line) - n, " %s=%llu",
						      ag__bad_name((enum ag__bad)r),
						      (unsigned long long)t->bad[r]);
		}
		if (n)
			ag__log(app, AG_LOG_WARN, "bad input on %s:%s", t->name, line);
	}
	for (size_t i = 0; i < app->ntables; i++)
		ag__window_report(app->tables[i]);
	ag__channels_report(w);
	for (size_t i = 0; i < app->nagents; i++) {
		const struct ag_agent *a = app->agents[i];
		if (a->failures)
			ag__log(app, AG_LOG_WARN, "agent %s failed on %llu events (skipped)",
				a->name, (unsigned long long)a->failures);
	}
	if (app->loglevel > AG_LOG_INFO)
		fprintf(stderr,
			"stats: events=%llu sent=%llu elapsed=%.6f forward_waits=%llu paused=%llu "
			"resumed=%llu buffer_peak=%u\n",
			(unsigned long long)w->events, (unsigned long long)w->sent, elapsed,
			(unsigned long long)w->flow_waits, (unsigned long long)w->pauses,
			(unsigned long long)w->resumes, w->buffer_peak);
out_loop:
	if (w->handles_open) {
		close_handles(w);
		uv_run(&w->loop, UV_RUN_DEFAULT);
	}
	ag__agents_free(w);
	ag__timers_free(w);
	ag__flow_free(w);
	ag__admin_purge_free(w);
	ag__tables_close(w);
	clients_close(w);
	for (size_t i = 0; i < app->ntopics; i++)
		topic_parts_free(app->topics[i]);
	for (size_t i = 0; i < app->nchannels; i++)
		topic_parts_free(app->channels[i]);
	app->worker = NULL;
	rc = uv_loop_close(&w->loop);
	if (rc != 0) {
		ag__log(app, AG_LOG_ERROR, "event loop still has handles at exit: %s",
			uv_strerror(rc));
		w->exit_status = 1;
	}
out_broker:
	ag__broker_close(&w->broker);
out_store:
	ag__store_close(w->store);
out_free:
	/* Also when start-up stopped before the loop (no broker, a stop signal): idempotent. */
	for (size_t i = 0; i < app->ntopics; i++)
		topic_parts_free(app->topics[i]);
	for (size_t i = 0; i < app->nchannels; i++)
		topic_parts_free(app->channels[i]);
	if (w->lock_fd >= 0)
		close(w->lock_fd);
	int status = rc < 0 && !w->handles_open && w->exit_status == 0 ? 1 : w->exit_status;
	ag__acks_free(&w->delivered);
	free(w);
	return status;
}
