/*
 * Agents and streams. An agent's pipeline (its operators, app.h) is cut at its boundaries
 * (group_by, through) into segments, one per topic it reads. The last segment is what the
 * body iterates, on `concurrency` coroutines; every other segment is run by a forwarder
 * coroutine that applies its operators and produces each event into the next topic.
 *
 * ag_stream_next hands out the next buffered event of the segment's topic (round robin
 * over partitions, so they interleave fairly) without switching; only when nothing is
 * buffered does the coroutine yield to the loop, which resumes it when the consumer
 * delivers more. A coroutine also yields after AG__AGENT_SLICE events so that others and
 * the loop's I/O get their turn.
 *
 * Every event is checked against its topic (bad input, agent.h's policy), then goes through
 * the segment's filters, processors and echoes. A body that returns an error is logged
 * with the event it failed on, the event is acked (a poison message must not stop the
 * partition) and the body is started again; an operator that fails skips the event alone.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "kafka.h"
#include "worker.h"

/* An ask waiting for its answer. */
struct ag__ask {
	struct ag__ask *next;
	struct ag__agent_rt *rt;
	char id[48];
	int answered;
};

static struct ag__agent_rt *running;

static void fwd_acked(const struct ag_event *ev);

struct ag__agent_rt *
ag__agent_current(void)
{
	return running;
}

const struct ag_event *
ag__current_event(void)
{
	return running ? running->cur : NULL;
}

void
ag__tpart_wake(struct ag__worker *w, struct ag__tpart *tp)
{
	const struct ag_topic *t = tp->topic;
	for (size_t k = 0; k < t->nreaders; k++) {
		const struct ag__seg *seg = t->readers[k];
		for (size_t i = 0; i < seg->nrts; i++) {
			if (seg->rts[i]->state == AG__AGENT_WAIT_EVENT &&
			    tp->rings[seg->reader].count)
				ag__agent_wake(w, seg->rts[i]);
		}
	}
}

int32_t
ag__murmur2_partition(const void *key, size_t len, int32_t partitions)
{
	/* Kafka's murmur2 (seed 0x9747b28c), as the Java client and Faust partition keys. */
	const uint32_t m = 0x5bd1e995;
	const int r = 24;
	const uint8_t *data = key;
	uint32_t h = 0x9747b28cu ^ (uint32_t)len;
	size_t n4 = len / 4;
	for (size_t i = 0; i < n4; i++) {
		uint32_t k = (uint32_t)data[i * 4] | (uint32_t)data[i * 4 + 1] << 8 |
			     (uint32_t)data[i * 4 + 2] << 16 | (uint32_t)data[i * 4 + 3] << 24;
		k *= m;
		k ^= k >> r;
		k *= m;
		h *= m;
		h ^= k;
	}
	const uint8_t *tail = data + n4 * 4;
	switch (len & 3) {
	case 3:
		h ^= (uint32_t)tail[2] << 16;
		/* fall through */
	case 2:
		h ^= (uint32_t)tail[1] << 8;
		/* fall through */
	case 1:
		h ^= tail[0];
		h *= m;
	}
	h ^= h >> 13;
	h *= m;
	h ^= h >> 15;
	return (int32_t)((h & 0x7fffffffu) % (uint32_t)partitions);
}

void
ag__agent_wake(struct ag__worker *w, struct ag__agent_rt *rt)
{
	if (rt->queued || rt->state == AG__AGENT_DONE || rt->state == AG__AGENT_RUNNING)
		return;
	rt->state = AG__AGENT_RUNNABLE;
	rt->queued = 1;
	rt->next = NULL;
	if (w->runq_tail)
		w->runq_tail->next = rt;
	else
		w->runq_head = rt;
	w->runq_tail = rt;
	ag__worker_kick(w);
}

void
ag__agents_wake_all(struct ag__worker *w, enum ag__agent_state from)
{
	for (size_t i = 0; i < w->nrts; i++) {
		if (w->rts[i]->state == from)
			ag__agent_wake(w, w->rts[i]);
	}
	for (size_t i = 0; i < w->app->ntimers; i++) {
		struct ag__timer_rt *tr = w->app->timers[i]->rt;
		if (tr && tr->co.state == from)
			ag__agent_wake(w, &tr->co);
	}
}

int
ag__agents_all_done(const struct ag__worker *w)
{
	for (size_t i = 0; i < w->nrts; i++) {
		if (w->rts[i]->state != AG__AGENT_DONE)
			return 0;
	}
	for (size_t i = 0; i < w->app->ntimers; i++) {
		const struct ag__timer_rt *tr = w->app->timers[i]->rt;
		if (tr && tr->co.state != AG__AGENT_DONE)
			return 0;
	}
	return 1;
}

int
ag__agents_quiet(const struct ag__worker *w)
{
	for (size_t i = 0; i < w->nrts; i++) {
		enum ag__agent_state st = w->rts[i]->state;
		if (st != AG__AGENT_WAIT_EVENT && st != AG__AGENT_WAIT_FLOW && st != AG__AGENT_DONE)
			return 0;
	}
	for (size_t i = 0; i < w->app->ntimers; i++) {
		const struct ag__timer_rt *tr = w->app->timers[i]->rt;
		if (tr && tr->co.state != AG__AGENT_WAIT_TIMER && tr->co.state != AG__AGENT_DONE &&
		    tr->co.state != AG__AGENT_NEW)
			return 0;
	}
	return 1;
}

void
ag__agents_rewind(struct ag__worker *w)
{
	for (size_t i = 0; i < w->nrts; i++) {
		struct ag__agent_rt *rt = w->rts[i];
		if (rt->state == AG__AGENT_WAIT_EVENT || rt->state == AG__AGENT_WAIT_FLOW) {
			ag__event_release(rt, 0);
			rt->wm_last = NULL;
		}
	}
}

/* ---- events in hand ---- */

static void
tpart_ack(struct ag__tpart *tp, uint32_t reader, int64_t offset)
{
	if (tp->assigned && tp->have_pos)
		ag__acks_ack(&tp->acks[reader], offset);
}

/* Makes room for n events in hand; each slot owns buffers for the topic's records. */
static int
slots_reserve(struct ag__agent_rt *rt, size_t n)
{
	if (n <= rt->cap)
		return 0;
	const struct ag_topic *t = rt->seg->input;
	struct ag_event *evs = realloc(rt->evs, n * sizeof(*evs));
	if (!evs)
		return -ENOMEM;
	rt->evs = evs;
	struct ag_event **ptrs = realloc(rt->ptrs, n * sizeof(*ptrs));
	if (!ptrs)
		return -ENOMEM;
	rt->ptrs = ptrs;
	for (size_t i = 0; i < rt->cap; i++)
		ptrs[i] = &evs[i];
	for (size_t i = rt->cap; i < n; i++) {
		struct ag_event *ev = &evs[i];
		memset(ev, 0, sizeof(*ev));
		ev->rt = rt;
		ptrs[i] = ev;
		rt->cap = i + 1; /* counted now so that a failure below frees what is made */
		if ((t->value_type && !(ev->rec_mem = malloc(t->value_type->size))) ||
		    (t->key_type && !(ev->key_rec_mem = malloc(t->key_type->size))))
			return -ENOMEM;
	}
	return 0;
}

/* Lets go of one event: acks it (when asked to) and frees the message. */
static void
event_drop(struct ag_event *ev, int ack)
{
	if (!ev->msg)
		return;
	if (ack && !ev->acked) {
		tpart_ack(ev->tp, ev->rt->seg->reader, ev->msg->offset);
		fwd_acked(ev);
	}
	if (ev->json)
		json_decref(ev->json);
	ag__held_release(ev->msg, ev->refs);
	ev->msg = NULL;
	ev->refs = NULL;
	ev->tp = NULL;
	ev->acked = ev->replied = ev->json_tried = ev->value_set = 0;
	ev->json = NULL;
	ev->rec = ev->key_rec = NULL;
	ev->value = (struct ag_bytes){NULL, 0};
	ev->fwd_part = -1;
}

void
ag__event_release(struct ag__agent_rt *rt, int ack)
{
	for (size_t i = 0; i < rt->nevs; i++)
		event_drop(&rt->evs[i], ack);
	rt->nevs = 0;
	rt->cur = NULL;
	if (rt->arena)
		ag_arena_reset(rt->arena);
}

/* Drops the last event taken (it was bad input or filtered out). */
static void
event_unhand(struct ag__agent_rt *rt, int ack)
{
	struct ag_event *ev = &rt->evs[rt->nevs - 1];
	if (rt->cur == ev)
		rt->cur = NULL;
	event_drop(ev, ack);
	rt->nevs--;
}

/* ---- failures ---- */

/*
 * Logs and counts a failure on ev (NULL: before the first event). At most 10 lines per
 * agent per second are written, so a stream of poison messages cannot flood the log; the
 * failures are counted all the same.
 */
static void
log_failure(struct ag__agent_rt *rt, const struct ag_event *ev, const char *what, int rc,
	    const char *then)
{
	struct ag__worker *w = rt->w;
	struct ag_agent *a = rt->agent;
	rt->failures++;
	a->failures++;
	uint64_t now = ag__now_ns();
	if (now - a->fail_window_ns > 1000000000u) {
		a->fail_window_ns = now;
		a->fail_window_logged = 0;
	}
	if (a->fail_window_logged++ >= 10) {
		if (a->fail_window_logged == 12)
			ag__log(w->app, AG_LOG_ERROR,
				"agent %s: more failures this second are counted, not logged",
				a->name);
		return;
	}
	if (!ev || !ev->msg) {
		ag__log(w->app, AG_LOG_ERROR,
			"agent %s%s failed before its first event: %s (%s); %s", a->name, what,
			ag_strerror(rc), ag_err_name(rc), then);
		return;
	}
	const rd_kafka_message_t *m = ev->msg;
	ag__log(w->app, AG_LOG_ERROR,
		"agent %s%s failed on %s[%d]@%lld (%s%.*s): %s (%s); %s (failure %llu)", a->name,
		what, ev->tp->topic->name, (int)m->partition, (long long)m->offset,
		m->key ? "key " : "no key", (int)(m->key ? (m->key_len > 64 ? 64 : m->key_len) : 0),
		m->key ? (const char *)m->key : "", ag_strerror(rc), ag_err_name(rc), then,
		(unsigned long long)a->failures);
}

/* ---- the coroutines ---- */

static int forward(struct ag__agent_rt *rt);

static void
body_main(struct ag__agent_rt *rt)
{
	struct ag__worker *w = rt->w;
	struct ag_agent *a = rt->agent;
	int idle_failures = 0; /* failures in a row without taking an event */
	for (;;) {
		uint64_t events = rt->events;
		int rc = a->fn(&rt->stream, a->userdata);
		if (w->stopping || rc == AG_EOF)
			break;
		if (rc == 0) {
			ag__log(w->app, AG_LOG_WARN,
				"agent %s returned while the worker runs; it gets no more events",
				a->name);
			break;
		}
		const struct ag_event *ev = rt->cur ? rt->cur : rt->nevs ? &rt->evs[0] : NULL;
		log_failure(rt, ev, "", rc,
			    rt->nevs > 1 ? "the batch is skipped and the body restarted"
					 : "the event is skipped and the body restarted");
		ag__event_release(rt, 1);
		a->restarts++;
		idle_failures = rt->events == events ? idle_failures + 1 : 0;
		if (idle_failures > 3) {
			/* A body that fails without consuming would spin: give up on it. */
			ag__log(w->app, AG_LOG_ERROR,
				"agent %s keeps failing without taking events; it is stopped",
				a->name);
			break;
		}
	}
}

static void
agent_main(void *arg)
{
	struct ag__agent_rt *rt = arg;
	if (rt->seg->boundary)
		forward(rt);
	else
		body_main(rt);
	ag__event_release(rt, 0);
	rt->state = AG__AGENT_DONE;
}

void
ag__agent_resume(struct ag__worker *w, struct ag__agent_rt *rt)
{
	rt->state = AG__AGENT_RUNNING;
	running = rt;
	w->current = rt;
	ag__coro_resume(rt->coro);
	running = NULL;
	w->current = NULL;
}

static int
rt_new(struct ag__worker *w, struct ag__seg *seg, struct ag__agent_rt **out)
{
	struct ag__agent_rt *rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	struct ag__agent_rt **grown = realloc(w->rts, (w->nrts + 1) * sizeof(*grown));
	if (!grown) {
		free(rt);
		return -ENOMEM;
	}
	w->rts = grown;
	w->rts[w->nrts++] = rt;
	rt->agent = seg->agent;
	rt->seg = seg;
	rt->w = w;
	rt->stream.rt = rt;
	*out = rt;
	int rc;
	if ((rc = ag_arena_new(&rt->arena)) < 0 || (rc = slots_reserve(rt, 1)) < 0 ||
	    (rc = ag__wm_rt_init(rt)) < 0)
		return rc;
	return ag__coro_new(&rt->coro, agent_main, rt, 0);
}

int
ag__agents_start(struct ag__worker *w)
{
	for (size_t i = 0; i < w->app->nagents; i++) {
		struct ag_agent *a = w->app->agents[i];
		for (size_t k = 0; k < a->nsegs; k++) {
			struct ag__seg *seg = &a->segs[k];
			size_t n = seg->boundary ? 1 : (size_t)a->concurrency;
			if (!(seg->rts = calloc(n, sizeof(*seg->rts))))
				return -ENOMEM;
			for (; seg->nrts < n; seg->nrts++) {
				int rc = rt_new(w, seg, &seg->rts[seg->nrts]);
				if (rc < 0)
					return rc;
			}
		}
	}
	/* Run every body up to its first ag_stream_next. */
	for (size_t i = 0; i < w->nrts; i++)
		ag__agent_resume(w, w->rts[i]);
	return 0;
}

static void
rt_free(struct ag__agent_rt *rt)
{
	ag__event_release(rt, 0);
	for (size_t i = 0; i < rt->cap; i++) {
		free(rt->evs[i].rec_mem);
		free(rt->evs[i].key_rec_mem);
	}
	free(rt->evs);
	free(rt->ptrs);
	ag__coro_free(rt->coro);
	ag_arena_free(rt->arena);
	free(rt->reply);
	free(rt->wsrc);
	free(rt);
}

void
ag__agents_free(struct ag__worker *w)
{
	for (size_t i = 0; i < w->nrts; i++)
		rt_free(w->rts[i]);
	free(w->rts);
	w->rts = NULL;
	w->nrts = 0;
	for (size_t i = 0; i < w->app->nagents; i++) {
		struct ag_agent *a = w->app->agents[i];
		for (size_t k = 0; k < a->nsegs; k++) {
			free(a->segs[k].rts);
			a->segs[k].rts = NULL;
			a->segs[k].nrts = 0;
		}
	}
	while (w->asks) {
		struct ag__ask *next = w->asks->next;
		free(w->asks);
		w->asks = next;
	}
}

static void
clock_close(struct ag__agent_rt *rt)
{
	if (rt->clock_open) {
		rt->clock_open = 0;
		uv_close((uv_handle_t *)&rt->clock, NULL);
	}
}

void
ag__agents_close(struct ag__worker *w)
{
	for (size_t i = 0; i < w->nrts; i++)
		clock_close(w->rts[i]);
	for (size_t i = 0; i < w->app->ntimers; i++) {
		struct ag__timer_rt *tr = w->app->timers[i]->rt;
		if (tr)
			clock_close(&tr->co);
	}
}

void
ag__agents_run(struct ag__worker *w)
{
	/* Only the agents queued when the turn starts run now: a fair round. */
	struct ag__agent_rt *tail = w->runq_tail;
	while (w->runq_head) {
		struct ag__agent_rt *rt = w->runq_head;
		w->runq_head = rt->next;
		if (!w->runq_head)
			w->runq_tail = NULL;
		rt->queued = 0;
		rt->next = NULL;
		ag__agent_resume(w, rt);
		if (rt == tail)
			break;
	}
}

void
ag__agent_park(struct ag__agent_rt *rt, enum ag__agent_state state)
{
	rt->state = state;
	rt->yields++;
	ag__coro_yield();
}

/* ---- the clock: ag_sleep, ask timeouts, take's `within` ---- */

static void
on_clock(uv_timer_t *h)
{
	struct ag__agent_rt *rt = h->data;
	rt->clock_fired = 1;
	if (rt->state == AG__AGENT_WAIT_CLOCK || rt->state == AG__AGENT_WAIT_EVENT)
		ag__agent_wake(rt->w, rt);
}

/* Arms rt's clock to fire in ms milliseconds. */
static int
clock_arm(struct ag__agent_rt *rt, uint64_t ms)
{
	struct ag__worker *w = rt->w;
	if (!w->handles_open)
		return AG_ESTOPPED;
	if (!rt->clock_open) {
		int rc = uv_timer_init(&w->loop, &rt->clock);
		if (rc < 0)
			return rc;
		rt->clock.data = rt;
		rt->clock_open = 1;
	}
	rt->clock_fired = 0;
	return uv_timer_start(&rt->clock, on_clock, ms, 0);
}

static void
clock_stop(struct ag__agent_rt *rt)
{
	if (rt->clock_open)
		uv_timer_stop(&rt->clock);
}

static uint64_t
seconds_ms(double s)
{
	return s <= 0 ? 0 : s >= 1e9 ? (uint64_t)1e12 : (uint64_t)(s * 1000.0 + 0.5);
}

AG_EXPORT int
ag_sleep(double seconds)
{
	struct ag__agent_rt *rt = running;
	if (!rt)
		return AG_ENOAGENT;
	if (!(seconds >= 0.0 && seconds <= 1e9))
		return -EINVAL;
	int rc = clock_arm(rt, seconds_ms(seconds));
	if (rc < 0)
		return rc;
	while (!rt->clock_fired && !rt->w->stopping)
		ag__agent_park(rt, AG__AGENT_WAIT_CLOCK);
	clock_stop(rt);
	return rt->clock_fired ? 0 : AG_EOF;
}

/* ---- taking events ---- */

/*
 * Takes the next message for rt's reader, round robin over the ready partitions. A
 * forwarder takes the buffered message with the smallest timestamp instead (as Kafka
 * Streams' partition group does), so what it forwards is close to time order.
 */
static int
take_message(struct ag__worker *w, struct ag__agent_rt *rt, struct ag_event *ev)
{
	struct ag_topic *t = rt->seg->input;
	uint32_t reader = rt->seg->reader;
	uint32_t n = (uint32_t)t->partitions;
	int ordered = rt->seg->boundary != NULL;
	int64_t best_ts = INT64_MAX;
	struct ag__tpart *best = NULL;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t idx = (rt->rr + i) % n;
		struct ag__tpart *tp = &t->parts[idx];
		struct ag__ring *ring = &tp->rings[reader];
		if (!tp->ready || !ring->count)
			continue;
		if (!ordered) {
			best = tp;
			break;
		}
		int64_t ts = ag__msg_timestamp(ring->buf[ring->head].m);
		if (!best || ts < best_ts) {
			best = tp;
			best_ts = ts;
		}
	}
	if (!best)
		return 0;
	struct ag__ring *ring = &best->rings[reader];
	struct ag__held h = ring->buf[ring->head];
	ring->head = (ring->head + 1) & (ring->cap - 1);
	ring->count--;
	rt->rr = (uint32_t)best->partition + 1;
	ag__tpart_maybe_resume(w, best);
	ev->msg = h.m;
	ev->refs = h.refs;
	ev->tp = best;
	return 1;
}

/*
 * Checks an event against its topic's declarations (size, key, codecs, record types),
 * decoding records and JSON once. Returns -1 when it is good, else the reason.
 */
static int
check_event(struct ag__agent_rt *rt, struct ag_event *ev, char *why, size_t len)
{
	const rd_kafka_message_t *m = ev->msg;
	const struct ag_topic *t = ev->tp->topic;
	const struct ag_app *app = t->app;
	if (m->len + m->key_len > app->max_message_bytes) {
		snprintf(why, len, "%zu bytes, more than max_message_bytes (%zu)",
			 m->len + m->key_len, app->max_message_bytes);
		return AG__BAD_TOO_LARGE;
	}
	if (!m->key) {
		if (t->key_required || t->key_type) {
			snprintf(why, len, "no key, and topic %s requires one", t->name);
			return AG__BAD_NULL_KEY;
		}
	} else {
		int r = ag__check_value(app, t->key_codec, t->key_type,
					(struct ag_bytes){m->key, m->key_len}, ev->key_rec_mem,
					rt->arena, why, len);
		if (r >= 0) {
			size_t n = strlen(why);
			if (n + 8 < len) {
				memmove(why + 5, why, n + 1);
				memcpy(why, "key: ", 5);
			}
			return r;
		}
		ev->key_rec = t->key_type ? ev->key_rec_mem : NULL;
	}
	struct ag_bytes value = {m->payload, m->payload ? m->len : 0};
	if (t->value_codec == AG_CODEC_JSON && !t->value_type && value.len) {
		/* Parse once: the agent's ag_event_json gets this tree. */
		json_error_t jerr;
		ev->json_tried = 1;
		ev->json =
			json_loadb(value.ptr, value.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		if (ev->json)
			return -1;
		snprintf(why, len, "not valid JSON: %s at line %d column %d", jerr.text, jerr.line,
			 jerr.column);
		return AG__BAD_DECODE;
	}
	int r = ag__check_value(app, t->value_codec, t->value_type, value, ev->rec_mem, rt->arena,
				why, len);
	if (r < 0)
		ev->rec = t->value_type ? ev->rec_mem : NULL;
	return r;
}

static void
log_bad(const struct ag_event *ev, int reason, const char *why)
{
	struct ag_topic *t = ev->tp->topic;
	const rd_kafka_message_t *m = ev->msg;
	uint64_t now = ag__now_ns();
	if (now - t->bad_window_ns > 1000000000u) {
		t->bad_window_ns = now;
		t->bad_window_logged = 0;
	}
	if (t->bad_window_logged < 10) {
		ag__log(t->app, AG_LOG_WARN, "bad input on %s[%d]@%lld (%s): %s", t->name,
			(int)m->partition, (long long)m->offset, ag__bad_name((enum ag__bad)reason),
			why);
	} else if (t->bad_window_logged == 10) {
		ag__log(t->app, AG_LOG_WARN,
			"more bad input on %s: not logged for the rest of this second (counted)",
			t->name);
	}
	t->bad_window_logged++;
}

/* Produces, parking the calling coroutine while the producer queue is full (worker.h). */
int
ag__produce_wait(struct ag__worker *w, struct ag_topic *topic, int32_t partition,
		 const struct ag_bytes *key, const struct ag_bytes *value, rd_kafka_headers_t *hdrs,
		 int64_t timestamp)
{
	if (topic->channel)
		return ag__channel_send(w, topic, key, value, hdrs, timestamp);
	for (;;) {
		/* hdrs are taken over when it succeeds, and still ours to retry with when not. */
		int rc = ag__produce_hdrs(w, topic, partition, key, value, hdrs, timestamp);
		if (rc >= 0)
			return rc;
		if (rc != -ENOBUFS || !running) {
			if (hdrs)
				rd_kafka_headers_destroy(hdrs);
			return rc;
		}
		/* Producer queue full: wait for deliveries to drain it. */
		w->send_waiters++;
		ag__agent_park(running, AG__AGENT_WAIT_SEND);
	}
}

/* Sends the event, as it came, to the agent's dead-letter topic. */
static int
dead_letter(struct ag__agent_rt *rt, const struct ag_event *ev, int reason, const char *why)
{
	const rd_kafka_message_t *m = ev->msg;
	char num[32];
	rd_kafka_headers_t *h = rd_kafka_headers_new(5);
	rd_kafka_header_add(h, "faustc-reason", -1, ag__bad_name((enum ag__bad)reason), -1);
	rd_kafka_header_add(h, "faustc-error", -1, why, -1);
	rd_kafka_header_add(h, "faustc-topic", -1, ev->tp->topic->name, -1);
	snprintf(num, sizeof(num), "%d", (int)m->partition);
	rd_kafka_header_add(h, "faustc-partition", -1, num, -1);
	snprintf(num, sizeof(num), "%lld", (long long)m->offset);
	rd_kafka_header_add(h, "faustc-offset", -1, num, -1);
	struct ag_bytes key = {m->key, m->key ? m->key_len : 0};
	struct ag_bytes value = {m->payload, m->payload ? m->len : 0};
	int rc = ag__produce_wait(rt->w, rt->agent->dead_letter, m->partition, m->key ? &key : NULL,
				  m->payload ? &value : NULL, h, 0);
	if (rc == 0)
		rt->agent->dead_lettered++;
	return rc;
}

/*
 * Handles bad input (the last event taken) per the agent's policy. Returns 0 to go on,
 * AG_EOF to stop.
 */
static int
bad_input(struct ag__agent_rt *rt, int reason, const char *why)
{
	struct ag_event *ev = &rt->evs[rt->nevs - 1];
	struct ag_topic *t = ev->tp->topic;
	const rd_kafka_message_t *m = ev->msg;
	t->bad[reason]++;
	switch (rt->agent->on_bad_input) {
	case AG_BAD_INPUT_STOP:
		ag__log(t->app, AG_LOG_ERROR,
			"agent %s stops the worker on bad input %s[%d]@%lld (%s): %s; fix or "
			"remove the message, or change the agent's bad-input policy",
			rt->agent->name, t->name, (int)m->partition, (long long)m->offset,
			ag__bad_name((enum ag__bad)reason), why);
		rt->w->exit_status = 1;
		event_unhand(rt, 0);
		ag_app_stop(t->app);
		return AG_EOF;
	case AG_BAD_INPUT_DEAD_LETTER: {
		log_bad(ev, reason, why);
		int rc = dead_letter(rt, ev, reason, why);
		if (rc < 0) {
			ag__log(t->app, AG_LOG_ERROR,
				"cannot dead-letter %s[%d]@%lld: %s; the worker stops (the event "
				"is not acked)",
				t->name, (int)m->partition, (long long)m->offset, ag_strerror(rc));
			rt->w->exit_status = 1;
			event_unhand(rt, 0);
			ag_app_stop(t->app);
			return AG_EOF;
		}
		break;
	}
	case AG_BAD_INPUT_SKIP:
	default:
		log_bad(ev, reason, why);
		break;
	}
	event_unhand(rt, 1);
	return 0;
}

static rd_kafka_headers_t *
event_headers(const struct ag_event *ev)
{
	return ag__msg_headers(ev->msg);
}

/*
 * The header a forward carries: the event's source partition and offset, so that the
 * reader of the boundary topic can tell a forward made again after a crash (a duplicate
 * with a new offset) from a new event, and, when a windowed table follows the boundary
 * topic, the source partition's event-time progress (watermark.c). Its value is binary
 * (watermark.h, ag__fwd_src_format); readers also take the text form "PARTITION:OFFSET[:
 * PROGRESS]" that earlier versions wrote.
 */
#define AG__FWD_HEADER "faustc-src"

/*
 * Produces a copy of ev (key given, value, timestamp, headers) to topic's partition; a
 * boundary forward (src set) adds AG__FWD_HEADER.
 */
static int
forward_event(struct ag__agent_rt *rt, const struct ag_event *ev, struct ag_topic *topic,
	      int32_t partition, const struct ag_bytes *key, int src)
{
	rd_kafka_headers_t *h = event_headers(ev);
	struct ag_bytes value = ag_event_value(ev);
	if (h && !rd_kafka_header_cnt(h))
		h = NULL; /* a record with an empty header list: nothing to copy */
	if (h) {
		h = rd_kafka_headers_copy(h);
		if (src)
			rd_kafka_header_remove(h, AG__FWD_HEADER);
	} else if (src) {
		h = rd_kafka_headers_new(1);
	}
	if (src) {
		uint8_t pos[AG__FWD_SRC_MAX];
		size_t n = ag__fwd_src_format(pos, ev->msg->partition, ev->msg->offset,
					      ag__wm_forward_time(rt, ev));
		rd_kafka_header_add(h, AG__FWD_HEADER, sizeof(AG__FWD_HEADER) - 1, pos, (ssize_t)n);
	}
	return ag__produce_wait(rt->w, topic, partition, key,
				ev->msg->payload || ev->value_set ? &value : NULL, h,
				ag_event_timestamp(ev));
}

int
ag__fwd_set(struct ag__tpart *tp, const int64_t *acked, uint32_t n)
{
	free(tp->fwd_taken);
	free(tp->fwd_acked);
	tp->fwd_taken = tp->fwd_acked = NULL;
	tp->nfwd = 0;
	tp->fwd_dirty = 0;
	if (!n)
		return 0;
	tp->fwd_taken = malloc(n * sizeof(int64_t));
	tp->fwd_acked = malloc(n * sizeof(int64_t));
	if (!tp->fwd_taken || !tp->fwd_acked)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		tp->fwd_taken[i] = tp->fwd_acked[i] = acked ? acked[i] : -1;
	tp->nfwd = n;
	return 0;
}

/* Reads a forwarded event's source position and progress (ev->src_*) from its header. */
static void
src_parse(struct ag_event *ev)
{
	struct ag_bytes v;
	ev->src_part = -1;
	ev->src_time = INT64_MIN;
	ev->fwd_part = -1;
	if (!ev->tp->topic->flow || ag_event_header(ev, AG__FWD_HEADER, &v) < 0 ||
	    ag__fwd_src_parse(v.ptr, v.len, &ev->src_part, &ev->src_off, &ev->src_time) < 0)
		ev->src_part = -1;
}

/*
 * Whether the event just taken is a forward this partition has seen: the forwarder of its
 * source partition went back after a crash or a rebalance and forwarded it again. The
 * offsets of one source partition only go up in a boundary partition otherwise.
 */
static int
fwd_duplicate(struct ag_event *ev)
{
	struct ag__tpart *tp = ev->tp;
	/*
	 * Positions are tracked for one reader: a boundary topic that other agents read too is
	 * at-least-once for them all (each reader would need its own positions).
	 */
	if (!tp->topic->flow || tp->nreaders != 1 || ev->src_part < 0)
		return 0;
	uint32_t p = (uint32_t)ev->src_part;
	int64_t off = ev->src_off;
	if (p >= tp->nfwd) {
		uint32_t n = p + 1;
		int64_t *t = realloc(tp->fwd_taken, n * sizeof(*t));
		if (!t)
			return 0;
		tp->fwd_taken = t;
		int64_t *a = realloc(tp->fwd_acked, n * sizeof(*a));
		if (!a)
			return 0;
		tp->fwd_acked = a;
		for (uint32_t i = tp->nfwd; i < n; i++)
			tp->fwd_taken[i] = tp->fwd_acked[i] = -1;
		tp->nfwd = n;
	}
	if (off <= tp->fwd_taken[p])
		return 1;
	tp->fwd_taken[p] = off;
	ev->fwd_part = (int32_t)p;
	ev->fwd_off = off;
	return 0;
}

/* The event is done: a forwarded one's position counts as processed. */
static void
fwd_acked(const struct ag_event *ev)
{
	struct ag__tpart *tp = ev->tp;
	int32_t p = ev->fwd_part;
	if (p >= 0 && (uint32_t)p < tp->nfwd && ev->fwd_off > tp->fwd_acked[p]) {
		tp->fwd_acked[p] = ev->fwd_off;
		tp->fwd_dirty = 1;
	}
}

/*
 * Runs the segment's operators on the last event taken. Returns 1 to hand it out, 0 when
 * it was dropped (filtered out, or an operator failed: logged).
 */
static int
run_stages(struct ag__agent_rt *rt, struct ag_event *ev)
{
	const struct ag__seg *seg = rt->seg;
	for (size_t i = seg->first; i < seg->end; i++) {
		const struct ag__stage *st = &rt->agent->stages[i];
		int rc;
		const char *what;
		switch (st->kind) {
		case AG__STAGE_FILTER:
			what = " (filter)";
			rc = st->filter(ev, st->userdata);
			if (rc == 0) {
				event_unhand(rt, 1);
				return 0;
			}
			break;
		case AG__STAGE_PROCESSOR:
			what = " (processor)";
			rc = st->processor(ev, st->userdata);
			break;
		case AG__STAGE_ECHO: {
			what = " (echo)";
			struct ag_bytes key = ag_event_key(ev);
			rc = forward_event(rt, ev, st->topic, -1, ev->msg->key ? &key : NULL, 0);
			break;
		}
		default:
			continue;
		}
		if (rc < 0) {
			log_failure(rt, ev, what, rc, "the event is skipped");
			event_unhand(rt, 1);
			return 0;
		}
	}
	return 1;
}

/*
 * Takes the next buffered event into the next slot, checked and through the operators.
 * Returns 0 (rt->evs[rt->nevs - 1] is it), -EAGAIN (nothing buffered), AG_EOF (stop).
 */
static int
pull_one(struct ag__agent_rt *rt)
{
	struct ag__worker *w = rt->w;
	for (;;) {
		if (w->stopping)
			return AG_EOF;
		if (w->txn_hold)
			return -EAGAIN; /* a commit cycle of exactly_once takes its offsets */
		if (!rt->nevs && (rt->wm_due || rt->wm_last)) {
			/* Every event taken is done: stream time may move (watermark.c). */
			struct ag__tpart *moved = rt->wm_due ? NULL : rt->wm_last;
			rt->wm_due = 0;
			rt->wm_last = NULL;
			ag__wm_apply(rt, moved);
			continue;
		}
		if (slots_reserve(rt, rt->nevs + 1) < 0)
			return -ENOMEM;
		struct ag_event *ev = &rt->evs[rt->nevs];
		if (!take_message(w, rt, ev))
			return -EAGAIN;
		char why[512];
		rt->nevs++;
		src_parse(ev);
		if (rt->wsrc || ev->tp->topic->windowed) {
			struct ag__tpart *tp = ev->tp;
			int heartbeat = ag__wm_taken(rt, ev);
			if (tp->topic->windowed && rt->seg->reader == 0)
				rt->wm_last = tp;
			if (heartbeat) {
				event_unhand(rt, 1); /* acked, handed to nobody */
				continue;
			}
		}
		w->events++;
		if (fwd_duplicate(ev)) {
			/* Acked, but its position is the original's to record. */
			w->fwd_duplicates++;
			tpart_ack(ev->tp, rt->seg->reader, ev->msg->offset);
			event_unhand(rt, 0);
			continue;
		}
		int reason = check_event(rt, ev, why, sizeof(why));
		if (reason >= 0) {
			if (bad_input(rt, reason, why) == AG_EOF)
				return AG_EOF;
			continue;
		}
		if (run_stages(rt, ev))
			return 0;
	}
}

/*
 * Goes back to the loop every AG__AGENT_SLICE events, even when no other agent waits: the
 * consumer, the producer's deliveries, the commit timer and signals are served there, and
 * a busy agent must not starve them (nor keep its own partitions from filling up to the
 * back-pressure mark).
 */
static void
slice_tick(struct ag__agent_rt *rt)
{
	if (++rt->slice <= AG__AGENT_SLICE)
		return;
	rt->slice = 0;
	rt->state = AG__AGENT_NEW; /* lets wake queue it at the back */
	ag__agent_wake(rt->w, rt);
	rt->yields++;
	ag__coro_yield();
}

/* Waits for one event (in the next slot). Returns 0, AG_EOF, -ENOMEM. */
static int
pull_wait(struct ag__agent_rt *rt)
{
	for (;;) {
		slice_tick(rt);
		int rc = pull_one(rt);
		if (rc != -EAGAIN)
			return rc;
		rt->slice = 0;
		ag__agent_park(rt, AG__AGENT_WAIT_EVENT);
	}
}

/* The forwarder of a segment that ends in group_by or through. */
static int
forward(struct ag__agent_rt *rt)
{
	const struct ag__stage *b = rt->seg->boundary;
	struct ag_buf keybuf = {0};
	for (;;) {
		ag__event_release(rt, 1);
		if (pull_wait(rt) < 0)
			break;
		struct ag_event *ev = &rt->evs[0];
		rt->cur = ev;
		rt->events++;
		struct ag_bytes key = ag_event_key(ev);
		int has_key = ev->msg->key != NULL;
		int rc = 0;
		if (b->kind == AG__STAGE_GROUP_BY && b->key_fn) {
			rc = b->key_fn(ev, &key, b->userdata);
			has_key = 1;
		} else if (b->kind == AG__STAGE_GROUP_BY) {
			keybuf.len = 0;
			rc = ev->rec ? ag_record_field_key(ev->tp->topic->value_type, ev->rec,
							   b->field, &keybuf)
				     : -ENOENT;
			key = (struct ag_bytes){keybuf.ptr, keybuf.len};
			has_key = 1;
		}
		int32_t p = has_key && key.ptr
				    ? ag__murmur2_partition(key.ptr, key.len, b->topic->partitions)
				    : (int32_t)(rt->events % (uint64_t)b->topic->partitions);
		if (rc == 0)
			rc = ag__flow_wait(rt, b->topic, p);
		if (rc == 0)
			rc = forward_event(rt, ev, b->topic, p, has_key ? &key : NULL, 1);
		if (rc == AG_ESTOPPED && rt->w->stopping)
			break;
		if (rc == -ECANCELED)
			continue; /* an aborted transaction released the event: it comes again */
		if (rc < 0)
			log_failure(rt, ev,
				    b->kind == AG__STAGE_GROUP_BY ? " (group_by)" : " (through)",
				    rc, "the event is skipped");
	}
	ag__event_release(rt, 0);
	free(keybuf.ptr);
	return 0;
}

/*
 * The latency clocks, one wall clock read per hand-out. When the body asks for its next
 * events, the clock read that ends its processing latency (done) is also the hand-out time
 * of the events it gets next, unless the agent gave the loop back in between (it parked for
 * events or ended a slice: then the clock is read again). So a busy agent pays one read per
 * hand-out, not two; its processing latency runs from that read to the next ask and thus
 * includes taking the events (decode, checks, a few microseconds), and the end-to-end
 * latency ends there.
 */

/* The body is done with the events it was handed: their processing latency. Returns the
 * clock read (0 when nothing was handed) and the yield count at the read in *yields. */
static uint64_t
latency_done(struct ag__agent_rt *rt, uint64_t *yields)
{
	*yields = rt->yields;
	if (!rt->handed_us)
		return 0;
	uint64_t now = ag__wall_us();
	ag__hist_observe(&rt->agent->proc_hist, now > rt->handed_us ? now - rt->handed_us : 0);
	rt->handed_us = 0;
	return now;
}

/* The body gets rt->evs: their end-to-end latency (timestamp to hand-out). done, yields:
 * what latency_done returned, reused as the hand-out time when the agent did not yield. */
static void
latency_handed(struct ag__agent_rt *rt, uint64_t done, uint64_t yields)
{
	uint64_t now = done && yields == rt->yields ? done : ag__wall_us();
	rt->handed_us = now;
	for (size_t i = 0; i < rt->nevs; i++) {
		int64_t ts = ag__msg_timestamp(rt->evs[i].msg);
		if (ts > 0)
			ag__hist_observe(&rt->agent->e2e_hist, now > (uint64_t)ts * 1000u
								       ? now - (uint64_t)ts * 1000u
								       : 0);
	}
}

AG_EXPORT int
ag_stream_next(struct ag_stream *stream, struct ag_event **ev)
{
	struct ag__agent_rt *rt = stream->rt;
	if (running != rt)
		return AG_ENOAGENT;
	uint64_t yields, done = latency_done(rt, &yields);
	ag__event_release(rt, 1);
	int rc = pull_wait(rt);
	if (rc < 0) {
		ag__event_release(rt, 0);
		return rc;
	}
	rt->events++;
	rt->cur = &rt->evs[0];
	*ev = rt->cur;
	latency_handed(rt, done, yields);
	return 0;
}

AG_EXPORT int
ag_stream_take(struct ag_stream *stream, size_t max, double within_s, struct ag_event ***events,
	       size_t *n)
{
	struct ag__agent_rt *rt = stream->rt;
	if (running != rt)
		return AG_ENOAGENT;
	if (max == 0 || max > 65536 || isnan(within_s))
		return -EINVAL;
	uint64_t yields, done = latency_done(rt, &yields);
	ag__event_release(rt, 1);
	uint64_t within_ms = seconds_ms(within_s), first_ns = 0;
	int rc;
	for (;;) {
		rc = -EAGAIN;
		while (rt->nevs < max) {
			slice_tick(rt);
			if ((rc = pull_one(rt)) != 0)
				break;
			if (rt->nevs == 1)
				first_ns = ag__now_ns();
		}
		if (rt->nevs == max || (rc != 0 && rc != -EAGAIN))
			break;
		uint64_t waited_ms = rt->nevs ? (ag__now_ns() - first_ns) / 1000000u : 0;
		/* exactly_once: a held batch waits for the commit cycle, like single events. */
		if (rt->nevs && waited_ms >= within_ms && !rt->w->txn_hold)
			break;
		rt->slice = 0;
		if (rt->nevs && waited_ms < within_ms &&
		    (rc = clock_arm(rt, within_ms - waited_ms)) < 0)
			break;
		ag__agent_park(rt, AG__AGENT_WAIT_EVENT);
		clock_stop(rt);
	}
	clock_stop(rt);
	if (rc < 0 && rc != -EAGAIN) {
		ag__event_release(rt, 0);
		return rc;
	}
	rt->events += rt->nevs;
	*events = rt->ptrs;
	*n = rt->nevs;
	latency_handed(rt, done, yields);
	return 0;
}

AG_EXPORT int
ag_event_focus(struct ag_event *ev)
{
	if (!ev || ev->rt != running || !ev->msg)
		return AG_ENOAGENT;
	running->cur = ev;
	return 0;
}

AG_EXPORT struct ag_agent *
ag_stream_agent(const struct ag_stream *stream)
{
	return stream->rt->agent;
}

AG_EXPORT struct ag_app *
ag_stream_app(const struct ag_stream *stream)
{
	return stream->rt->agent->app;
}

AG_EXPORT int
ag_ack(struct ag_event *ev)
{
	if (ev->msg && !ev->acked) {
		tpart_ack(ev->tp, ev->rt->seg->reader, ev->msg->offset);
		fwd_acked(ev);
		ev->acked = 1;
	}
	return 0;
}

/* ---- event fields ---- */

AG_EXPORT struct ag_bytes
ag_event_key(const struct ag_event *ev)
{
	return (struct ag_bytes){ev->msg->key, ev->msg->key ? ev->msg->key_len : 0};
}

AG_EXPORT struct ag_bytes
ag_event_value(const struct ag_event *ev)
{
	if (ev->value_set)
		return ev->value;
	return (struct ag_bytes){ev->msg->payload, ev->msg->payload ? ev->msg->len : 0};
}

AG_EXPORT const char *
ag_event_topic(const struct ag_event *ev)
{
	return ev->tp->topic->name;
}

AG_EXPORT int32_t
ag_event_partition(const struct ag_event *ev)
{
	return ev->msg->partition;
}

AG_EXPORT int64_t
ag_event_offset(const struct ag_event *ev)
{
	return ev->msg->offset;
}

AG_EXPORT int64_t
ag_event_timestamp(const struct ag_event *ev)
{
	return ag__msg_timestamp(ev->msg);
}

AG_EXPORT int
ag_event_header(const struct ag_event *ev, const char *name, struct ag_bytes *value)
{
	rd_kafka_headers_t *h = event_headers(ev);
	const void *p;
	size_t len;
	if (!h || !name || rd_kafka_header_get_last(h, name, &p, &len))
		return -ENOENT;
	*value = (struct ag_bytes){p, p ? len : 0};
	return 0;
}

AG_EXPORT int
ag_event_header_at(const struct ag_event *ev, size_t idx, const char **name, struct ag_bytes *value)
{
	rd_kafka_headers_t *h = event_headers(ev);
	const void *p;
	size_t len;
	if (!h || rd_kafka_header_get_all(h, idx, name, &p, &len))
		return -ENOENT;
	*value = (struct ag_bytes){p, p ? len : 0};
	return 0;
}

AG_EXPORT int
ag_event_set_value(struct ag_event *ev, const struct ag_bytes *value)
{
	struct ag__agent_rt *rt = ev->rt;
	const struct ag_topic *t = ev->tp->topic;
	size_t len = value && value->ptr ? value->len : 0;
	char *copy = ag__arena_alloc(rt->arena, len);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, value->ptr, len);
	if (t->value_type) {
		char why[256];
		if (ag__check_value(t->app, t->value_codec, t->value_type,
				    (struct ag_bytes){copy, len}, ev->rec_mem, rt->arena, why,
				    sizeof(why)) >= 0) {
			ag__log(t->app, AG_LOG_DEBUG, "ag_event_set_value on %s: %s", t->name, why);
			return AG_EDECODE;
		}
		ev->rec = ev->rec_mem;
	} else if (ev->json_tried) {
		if (ev->json)
			json_decref(ev->json);
		ev->json = NULL;
		ev->json_tried = 0;
	}
	ev->value = (struct ag_bytes){copy, len};
	ev->value_set = 1;
	return 0;
}

AG_EXPORT int
ag_event_record(const struct ag_event *ev, const void **rec)
{
	if (!ev->rec)
		return -ENOENT;
	*rec = ev->rec;
	return 0;
}

AG_EXPORT int
ag_event_key_record(const struct ag_event *ev, const void **rec)
{
	if (!ev->key_rec)
		return -ENOENT;
	*rec = ev->key_rec;
	return 0;
}

AG_EXPORT json_t *
ag_event_json(struct ag_event *ev)
{
	if (!ev->json_tried) {
		struct ag_bytes v = ag_event_value(ev);
		ev->json_tried = 1;
		if (v.ptr)
			ev->json = json_loadb(v.ptr, v.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	}
	return ev->json;
}

/* ---- sending ---- */

AG_EXPORT int
ag_send(struct ag_topic *topic, const struct ag_bytes *key, const struct ag_bytes *value)
{
	struct ag__worker *w = topic->app->worker;
	if (!w)
		return AG_ESTOPPED;
	return ag__produce_wait(w, topic, -1, key, value, NULL, 0);
}

AG_EXPORT int
ag_agent_send(struct ag_agent *agent, const struct ag_bytes *key, const struct ag_bytes *value)
{
	return ag_send(agent->source, key, value);
}

/* Sends value back to the asker of the focused event, once. */
static int
reply(struct ag__agent_rt *rt, const struct ag_bytes *value)
{
	struct ag_event *ev = rt->cur;
	struct ag_bytes to, part, id;
	if (!ev || ev->replied || ag_event_header(ev, "faustc-reply-to", &to) < 0 ||
	    ag_event_header(ev, "faustc-correlation-id", &id) < 0 ||
	    ag_event_header(ev, "faustc-reply-partition", &part) < 0)
		return 0;
	ev->replied = 1;
	struct ag_topic *t = rt->agent->app->reply_topic;
	char pnum[16];
	long p = -1;
	if (part.len < sizeof(pnum)) {
		memcpy(pnum, part.ptr, part.len);
		pnum[part.len] = 0;
		p = strtol(pnum, NULL, 10);
	}
	if (!t || to.len != strlen(t->name) || memcmp(to.ptr, t->name, to.len) != 0 || p < 0 ||
	    p >= t->partitions) {
		ag__log(rt->w->app, AG_LOG_WARN,
			"agent %s: cannot answer an ask whose reply topic is %.*s[%.*s] (this app "
			"answers on %s)",
			rt->agent->name, (int)to.len, (const char *)to.ptr, (int)part.len,
			(const char *)part.ptr, t ? t->name : "nothing");
		return 0;
	}
	rd_kafka_headers_t *h = rd_kafka_headers_new(1);
	rd_kafka_header_add(h, "faustc-correlation-id", -1, id.ptr, (ssize_t)id.len);
	return ag__produce_wait(rt->w, t, (int32_t)p, NULL, value, h, 0);
}

AG_EXPORT int
ag_stream_yield(struct ag_stream *stream, const struct ag_bytes *key, const struct ag_bytes *value)
{
	struct ag_agent *a = stream->rt->agent;
	int rc = reply(stream->rt, value);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < a->nsinks; i++) {
		const struct ag__sink *s = &a->sinks[i];
		switch (s->kind) {
		case AG__SINK_TOPIC:
			rc = ag_send(s->topic, key, value);
			break;
		case AG__SINK_AGENT:
			rc = ag_send(s->agent->source, key, value);
			break;
		case AG__SINK_CALLBACK:
		default:
			rc = s->fn(a, key, value, s->userdata);
			break;
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- ask and reply ---- */

int
ag__agents_replies_open(struct ag__worker *w)
{
	const struct ag_topic *t = w->app->reply_topic;
	if (!t)
		return 0;
	uint64_t r = ag__now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)w;
	r ^= r >> 29;
	r *= 0xbf58476d1ce4e5b9ull;
	r ^= r >> 32;
	snprintf(w->worker_id, sizeof(w->worker_id), "%016" PRIx64, r);
	w->reply_partition = (int32_t)(r % (uint64_t)t->partitions);
	/*
	 * Reading starts at the partition's end, pinned to a number now: a logical "end",
	 * resolved only when the restorer first fetches, could land after a quick answer and
	 * skip it. The topic exists by now (start-up waited for its leaders), so the query is
	 * quick; it runs once, before the loop (through offsets_for_times, which keeps its
	 * timeout while a leader is down).
	 */
	int64_t lo, hi;
	rd_kafka_resp_err_t qerr =
		ag__kafka_watermarks(w->restorer, t->name, w->reply_partition, &lo, &hi, 10000);
	if (qerr) {
		ag__log(w->app, AG_LOG_WARN,
			"reply topic %s[%d]: cannot read its end offset (%s); reading from its "
			"end as the broker resolves it, so an answer to an ask made at once may "
			"be missed",
			t->name, (int)w->reply_partition, rd_kafka_err2str(qerr));
		hi = RD_KAFKA_OFFSET_END;
	}
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, t->name, w->reply_partition)->offset = hi;
	rd_kafka_error_t *e = rd_kafka_incremental_assign(w->restorer, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		ag__log(w->app, AG_LOG_ERROR, "cannot read the reply topic %s: %s", t->name,
			rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		return AG_EKAFKA;
	}
	return 0;
}

void
ag__agents_reply(struct ag__worker *w, const rd_kafka_message_t *m)
{
	rd_kafka_headers_t *h = NULL;
	const void *id;
	size_t len;
	if (m->err || rd_kafka_message_headers(m, &h) ||
	    rd_kafka_header_get_last(h, "faustc-correlation-id", &id, &len) || !id)
		return;
	for (struct ag__ask *a = w->asks; a; a = a->next) {
		if (a->answered || strlen(a->id) != len || memcmp(a->id, id, len) != 0)
			continue;
		struct ag__agent_rt *rt = a->rt;
		void *copy = malloc(m->len ? m->len : 1);
		if (!copy)
			return;
		if (m->len)
			memcpy(copy, m->payload, m->len);
		free(rt->reply);
		rt->reply = copy;
		rt->reply_len = m->payload ? m->len : 0;
		a->answered = 1;
		if (rt->state == AG__AGENT_WAIT_CLOCK)
			ag__agent_wake(w, rt);
		return;
	}
}

static void
ask_forget(struct ag__worker *w, struct ag__ask *ask)
{
	for (struct ag__ask **p = &w->asks; *p; p = &(*p)->next) {
		if (*p == ask) {
			*p = ask->next;
			free(ask);
			return;
		}
	}
}

AG_EXPORT int
ag_agent_ask(struct ag_agent *agent, const struct ag_bytes *key, const struct ag_bytes *value,
	     double timeout_s, struct ag_bytes *out)
{
	struct ag__agent_rt *rt = running;
	struct ag__worker *w = agent->app->worker;
	if (!w)
		return AG_ESTOPPED;
	if (!rt)
		return AG_ENOAGENT;
	if (!(timeout_s > 0.0 && timeout_s <= 1e9) || !out)
		return -EINVAL;
	struct ag__ask *ask = calloc(1, sizeof(*ask));
	if (!ask)
		return -ENOMEM;
	ask->rt = rt;
	snprintf(ask->id, sizeof(ask->id), "%s-%" PRIu64, w->worker_id, ++w->next_ask);
	ask->next = w->asks;
	w->asks = ask;
	char part[16];
	snprintf(part, sizeof(part), "%d", (int)w->reply_partition);
	rd_kafka_headers_t *h = rd_kafka_headers_new(3);
	rd_kafka_header_add(h, "faustc-reply-to", -1, w->app->reply_topic->name, -1);
	rd_kafka_header_add(h, "faustc-reply-partition", -1, part, -1);
	rd_kafka_header_add(h, "faustc-correlation-id", -1, ask->id, -1);
	int rc = ag__produce_wait(w, agent->source, -1, key, value, h, 0);
	if (rc == 0)
		rc = clock_arm(rt, seconds_ms(timeout_s));
	while (rc == 0 && !ask->answered && !rt->clock_fired && !w->stopping)
		ag__agent_park(rt, AG__AGENT_WAIT_CLOCK);
	clock_stop(rt);
	if (rc == 0 && !ask->answered)
		rc = w->stopping ? AG_ESTOPPED : -ETIMEDOUT;
	if (rc == 0)
		*out = (struct ag_bytes){rt->reply, rt->reply_len};
	ask_forget(w, ask);
	return rc;
}
