/*
 * Agents and streams. Each agent runs on its own coroutine. ag_stream_next hands out the
 * next buffered event of the agent's source partitions (round robin over partitions, so
 * they interleave fairly) without switching; only when nothing is buffered does the agent
 * yield to the loop, which resumes it when the consumer delivers more. An agent also yields
 * after AG__AGENT_SLICE events so that other agents and the loop's I/O get their turn.
 *
 * An agent body that returns an error is logged with the event it failed on, the event is
 * acked (a poison message must not stop the partition) and the body is started again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"

static struct ag__agent_rt *running;

struct ag__agent_rt *
ag__agent_current(void)
{
	return running;
}

const struct ag_event *
ag__current_event(void)
{
	return running && running->ev.msg ? &running->ev : NULL;
}

void
ag__tpart_wake(struct ag__worker *w, struct ag__tpart *tp)
{
	struct ag__agent_rt *rt = tp->topic->agent ? tp->topic->agent->rt : NULL;
	if (rt && rt->state == AG__AGENT_WAIT_EVENT)
		ag__agent_wake(w, rt);
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
	for (size_t i = 0; i < w->app->nagents; i++) {
		struct ag__agent_rt *rt = w->app->agents[i]->rt;
		if (rt && rt->state == from)
			ag__agent_wake(w, rt);
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
	for (size_t i = 0; i < w->app->nagents; i++) {
		const struct ag__agent_rt *rt = w->app->agents[i]->rt;
		if (rt && rt->state != AG__AGENT_DONE)
			return 0;
	}
	for (size_t i = 0; i < w->app->ntimers; i++) {
		const struct ag__timer_rt *tr = w->app->timers[i]->rt;
		if (tr && tr->co.state != AG__AGENT_DONE)
			return 0;
	}
	return 1;
}

static void
tpart_ack(struct ag__tpart *tp, int64_t offset)
{
	if (tp->assigned && tp->have_pos)
		ag__acks_ack(&tp->acks, offset);
}

void
ag__event_release(struct ag__agent_rt *rt, int ack)
{
	struct ag_event *ev = &rt->ev;
	if (!ev->msg)
		return;
	if (ack && !ev->acked)
		tpart_ack(ev->tp, ev->msg->offset);
	if (ev->json)
		json_decref(ev->json);
	rd_kafka_message_destroy(ev->msg);
	memset(ev, 0, sizeof(*ev));
	if (rt->arena)
		ag_arena_reset(rt->arena);
}

static void
agent_main(void *arg)
{
	struct ag__agent_rt *rt = arg;
	struct ag__worker *w = rt->w;
	struct ag_agent *a = rt->agent;
	for (;;) {
		int rc = a->fn(&rt->stream, a->userdata);
		if (w->stopping || rc == AG_EOF)
			break;
		if (rc == 0) {
			ag__log(w->app, AG_LOG_WARN,
				"agent %s returned while the worker runs; it gets no more events",
				a->name);
			break;
		}
		rt->failures++;
		if (rt->ev.msg) {
			const rd_kafka_message_t *m = rt->ev.msg;
			ag__log(w->app, AG_LOG_ERROR,
				"agent %s failed on %s[%d]@%lld (key %.*s): %s (%s); the event is "
				"skipped and the agent restarted (failure %llu)",
				a->name, rt->ev.tp->topic->name, (int)m->partition,
				(long long)m->offset, (int)(m->key_len > 64 ? 64 : m->key_len),
				m->key ? (const char *)m->key : "", ag_strerror(rc),
				ag_err_name(rc), (unsigned long long)rt->failures);
		} else {
			ag__log(w->app, AG_LOG_ERROR,
				"agent %s failed before its first event: %s (%s); restarting",
				a->name, ag_strerror(rc), ag_err_name(rc));
		}
		ag__event_release(rt, 1);
		if (!rt->ev.msg && rt->failures > 3 && rt->events == 0) {
			/* A body that fails without consuming would spin: give up on it. */
			ag__log(w->app, AG_LOG_ERROR,
				"agent %s keeps failing without consuming; it is stopped", a->name);
			break;
		}
	}
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

int
ag__agents_start(struct ag__worker *w)
{
	for (size_t i = 0; i < w->app->nagents; i++) {
		struct ag_agent *a = w->app->agents[i];
		struct ag__agent_rt *rt = calloc(1, sizeof(*rt));
		if (!rt)
			return -ENOMEM;
		rt->agent = a;
		rt->w = w;
		rt->stream.rt = rt;
		a->rt = rt;
		const struct ag_topic *t = a->source;
		if (ag_arena_new(&rt->arena) < 0 ||
		    (t->value_type && !(rt->rec_buf = malloc(t->value_type->size))) ||
		    (t->key_type && !(rt->key_rec_buf = malloc(t->key_type->size))))
			return -ENOMEM;
		int rc = ag__coro_new(&rt->coro, agent_main, rt, 0);
		if (rc < 0)
			return rc;
	}
	/* Run every body up to its first ag_stream_next. */
	for (size_t i = 0; i < w->app->nagents; i++)
		ag__agent_resume(w, w->app->agents[i]->rt);
	return 0;
}

void
ag__agents_free(struct ag__worker *w)
{
	for (size_t i = 0; i < w->app->nagents; i++) {
		struct ag__agent_rt *rt = w->app->agents[i]->rt;
		if (!rt)
			continue;
		ag__event_release(rt, 0);
		ag__coro_free(rt->coro);
		ag_arena_free(rt->arena);
		free(rt->rec_buf);
		free(rt->key_rec_buf);
		free(rt);
		w->app->agents[i]->rt = NULL;
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
	ag__coro_yield();
}

static rd_kafka_message_t *
take(struct ag__worker *w, struct ag__agent_rt *rt, struct ag__tpart **tpp)
{
	struct ag_topic *t = rt->agent->source;
	uint32_t n = (uint32_t)t->partitions;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t idx = (rt->rr + i) % n;
		struct ag__tpart *tp = &t->parts[idx];
		if (!tp->ready || !tp->count)
			continue;
		rd_kafka_message_t *m = tp->buf[tp->head];
		tp->head = (tp->head + 1) & (tp->cap - 1);
		tp->count--;
		rt->rr = idx + 1;
		if (tp->paused && tp->count <= AG__BUF_LOW) {
			rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
			rd_kafka_topic_partition_list_add(l, t->name, tp->partition);
			rd_kafka_resume_partitions(w->consumer, l);
			rd_kafka_topic_partition_list_destroy(l);
			tp->paused = 0;
		}
		*tpp = tp;
		return m;
	}
	return NULL;
}

/*
 * Checks the event in hand against its topic's declarations (size, key, codecs, record
 * types), decoding records and JSON once. Returns -1 when it is good, else the reason.
 */
static int
check_event(struct ag__agent_rt *rt, char *why, size_t len)
{
	struct ag_event *ev = &rt->ev;
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
					(struct ag_bytes){m->key, m->key_len}, rt->key_rec_buf,
					rt->arena, why, len);
		if (r >= 0) {
			size_t n = strlen(why);
			if (n + 8 < len) {
				memmove(why + 5, why, n + 1);
				memcpy(why, "key: ", 5);
			}
			return r;
		}
		ev->key_rec = t->key_type ? rt->key_rec_buf : NULL;
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
	int r = ag__check_value(app, t->value_codec, t->value_type, value, rt->rec_buf, rt->arena,
				why, len);
	if (r < 0)
		ev->rec = t->value_type ? rt->rec_buf : NULL;
	return r;
}

static void
log_bad(struct ag__agent_rt *rt, int reason, const char *why)
{
	struct ag_topic *t = rt->ev.tp->topic;
	const rd_kafka_message_t *m = rt->ev.msg;
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

/* Sends the event in hand, as it came, to the agent's dead-letter topic. */
static int
dead_letter(struct ag__agent_rt *rt, int reason, const char *why)
{
	const rd_kafka_message_t *m = rt->ev.msg;
	char num[32];
	for (;;) {
		rd_kafka_headers_t *h = rd_kafka_headers_new(5);
		rd_kafka_header_add(h, "faustc-reason", -1, ag__bad_name((enum ag__bad)reason), -1);
		rd_kafka_header_add(h, "faustc-error", -1, why, -1);
		rd_kafka_header_add(h, "faustc-topic", -1, rt->ev.tp->topic->name, -1);
		snprintf(num, sizeof(num), "%d", (int)m->partition);
		rd_kafka_header_add(h, "faustc-partition", -1, num, -1);
		snprintf(num, sizeof(num), "%lld", (long long)m->offset);
		rd_kafka_header_add(h, "faustc-offset", -1, num, -1);
		struct ag_bytes key = {m->key, m->key ? m->key_len : 0};
		struct ag_bytes value = {m->payload, m->payload ? m->len : 0};
		int rc = ag__produce_hdrs(rt->w, rt->agent->dead_letter, m->partition,
					  m->key ? &key : NULL, m->payload ? &value : NULL, h);
		if (rc == 0)
			return 0;
		rd_kafka_headers_destroy(h);
		if (rc != -ENOBUFS)
			return rc;
		rt->w->send_waiters++;
		ag__agent_park(rt, AG__AGENT_WAIT_SEND);
	}
}

/* Handles bad input per the agent's policy. Returns 0 to go on, AG_EOF to stop. */
static int
bad_input(struct ag__agent_rt *rt, int reason, const char *why)
{
	struct ag_topic *t = rt->ev.tp->topic;
	const rd_kafka_message_t *m = rt->ev.msg;
	t->bad[reason]++;
	switch (rt->agent->on_bad_input) {
	case AG_BAD_INPUT_STOP:
		ag__log(t->app, AG_LOG_ERROR,
			"agent %s stops the worker on bad input %s[%d]@%lld (%s): %s; fix or "
			"remove "
			"the message, or change the agent's bad-input policy",
			rt->agent->name, t->name, (int)m->partition, (long long)m->offset,
			ag__bad_name((enum ag__bad)reason), why);
		rt->w->exit_status = 1;
		ag__event_release(rt, 0);
		ag_app_stop(t->app);
		return AG_EOF;
	case AG_BAD_INPUT_DEAD_LETTER: {
		log_bad(rt, reason, why);
		int rc = dead_letter(rt, reason, why);
		if (rc < 0) {
			ag__log(t->app, AG_LOG_ERROR,
				"cannot dead-letter %s[%d]@%lld: %s; the worker stops (the event "
				"is "
				"not acked)",
				t->name, (int)m->partition, (long long)m->offset, ag_strerror(rc));
			rt->w->exit_status = 1;
			ag__event_release(rt, 0);
			ag_app_stop(t->app);
			return AG_EOF;
		}
		break;
	}
	case AG_BAD_INPUT_SKIP:
	default:
		log_bad(rt, reason, why);
		break;
	}
	ag__event_release(rt, 1);
	return 0;
}

AG_EXPORT int
ag_stream_next(struct ag_stream *stream, struct ag_event **ev)
{
	struct ag__agent_rt *rt = stream->rt;
	struct ag__worker *w = rt->w;
	if (running != rt)
		return AG_ENOAGENT;
	ag__event_release(rt, 1);
	for (;;) {
		if (w->stopping)
			return AG_EOF;
		if (++rt->slice > AG__AGENT_SLICE) {
			/*
			 * Back to the loop even when no other agent waits: the consumer, the
			 * producer's deliveries, the commit timer and signals are served there,
			 * and a busy agent must not starve them (nor keep its own partitions
			 * from filling up to the back-pressure mark).
			 */
			rt->slice = 0;
			rt->state = AG__AGENT_NEW; /* lets wake queue it at the back */
			ag__agent_wake(w, rt);
			ag__coro_yield();
			continue;
		}
		struct ag__tpart *tp;
		rd_kafka_message_t *m = take(w, rt, &tp);
		if (m) {
			char why[512];
			rt->ev.msg = m;
			rt->ev.tp = tp;
			w->events++;
			int reason = check_event(rt, why, sizeof(why));
			if (reason >= 0) {
				if (bad_input(rt, reason, why) == AG_EOF)
					return AG_EOF;
				continue;
			}
			rt->events++;
			*ev = &rt->ev;
			return 0;
		}
		rt->slice = 0;
		ag__agent_park(rt, AG__AGENT_WAIT_EVENT);
	}
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
		tpart_ack(ev->tp, ev->msg->offset);
		ev->acked = 1;
	}
	return 0;
}

AG_EXPORT struct ag_bytes
ag_event_key(const struct ag_event *ev)
{
	return (struct ag_bytes){ev->msg->key, ev->msg->key ? ev->msg->key_len : 0};
}

AG_EXPORT struct ag_bytes
ag_event_value(const struct ag_event *ev)
{
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
	rd_kafka_timestamp_type_t type;
	return rd_kafka_message_timestamp(ev->msg, &type);
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
		ev->json_tried = 1;
		if (ev->msg->payload)
			ev->json = json_loadb(ev->msg->payload, ev->msg->len,
					      JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	}
	return ev->json;
}

AG_EXPORT int
ag_send(struct ag_topic *topic, const struct ag_bytes *key, const struct ag_bytes *value)
{
	struct ag__worker *w = topic->app->worker;
	if (!w)
		return AG_ESTOPPED;
	for (;;) {
		int rc = ag__produce(w, topic, -1, key, value);
		if (rc != -ENOBUFS || !running)
			return rc;
		/* Producer queue full: wait for deliveries to drain it. */
		w->send_waiters++;
		ag__agent_park(running, AG__AGENT_WAIT_SEND);
	}
}

AG_EXPORT int
ag_stream_yield(struct ag_stream *stream, const struct ag_bytes *key, const struct ag_bytes *value)
{
	struct ag_agent *a = stream->rt->agent;
	for (size_t i = 0; i < a->nsinks; i++) {
		const struct ag__sink *s = &a->sinks[i];
		int rc;
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
