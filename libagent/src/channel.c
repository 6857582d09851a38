/*
 * In-memory channels, Faust's app.channel(): queues inside one worker that agents read and
 * send to like topics, without a broker. A channel is a struct ag_topic with one partition
 * that is never assigned by Kafka: senders put messages straight into the rings of its
 * ag__tpart, one ring per reading agent, and the agents' pull path (agent.c) takes them
 * out as it takes fetched messages. Because the partition is never assigned, acks of its
 * events track nothing and the commit cycle never looks at it: a channel cannot hold up a
 * commit or the stop.
 *
 * Messages are rd_kafka_message_t structs allocated here, with the key and value copied
 * behind them; the `_private` pointer marks them as ours, so the few places that would
 * hand a message to librdkafka (destroy, timestamp, headers) ask ag__chmsg_is first.
 *
 * Back-pressure is a bound per reader: a send that would put more than `capacity` events
 * in some reader's ring parks the sending coroutine until the readers have taken half of
 * them (a low mark, so a sender and a reader do not switch on every event). Nothing is
 * durable: what is buffered at stop is counted and logged as dropped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "channel.h"
#include "worker.h"

/* Largest capacity a channel may have (events per reader). */
#define AG__CHANNEL_MAX 1048576u

/*
 * Messages whose key and value fit in a block of this many bytes (with the header) are
 * recycled through their channel's free list instead of going back to malloc: one
 * malloc/free pair per event per hop cost about 7 % of a channel pipeline (bench/README.md).
 */
#define AG__CHMSG_BLOCK 256

/* A channel's message: the librdkafka struct agents see, then what it points to. */
struct ag__chmsg {
	rd_kafka_message_t m; /* first: the event's msg points here */
	rd_kafka_headers_t *hdrs;
	int64_t timestamp;
	struct ag__channel *ch;
	struct ag__chmsg *next; /* on the free list */
	uint32_t refs; /* readers still holding it */
	int block; /* AG__CHMSG_BLOCK bytes: goes back to the free list */
};

/* m._private of every channel message: a mark no librdkafka message carries. */
static const char chmsg_mark;

int
ag__chmsg_is(const rd_kafka_message_t *m)
{
	return m->_private == (void *)&chmsg_mark;
}

void
ag__chmsg_free(rd_kafka_message_t *m)
{
	struct ag__chmsg *cm = (struct ag__chmsg *)m;
	if (--cm->refs > 0)
		return;
	if (cm->hdrs)
		rd_kafka_headers_destroy(cm->hdrs);
	struct ag__channel *ch = cm->ch;
	/* At most a full ring's worth is kept: what a burst needs again, no more. */
	if (cm->block && ch->nfree < ch->capacity) {
		cm->next = ch->free;
		ch->free = cm;
		ch->nfree++;
		return;
	}
	free(cm);
}

void
ag__channel_free(struct ag__channel *ch)
{
	if (!ch)
		return;
	while (ch->free) {
		struct ag__chmsg *cm = ch->free;
		ch->free = cm->next;
		free(cm);
	}
	free(ch);
}

int64_t
ag__msg_timestamp(const rd_kafka_message_t *m)
{
	if (ag__chmsg_is(m))
		return ((const struct ag__chmsg *)m)->timestamp;
	return rd_kafka_message_timestamp(m, NULL);
}

rd_kafka_headers_t *
ag__msg_headers(const rd_kafka_message_t *m)
{
	if (ag__chmsg_is(m))
		return ((const struct ag__chmsg *)m)->hdrs;
	rd_kafka_headers_t *h = NULL;
	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return NULL;
	return h;
}

/* ---- declaration ---- */

AG_EXPORT int
ag_app_channel(struct ag_app *app, const char *name, size_t capacity, struct ag_topic **out)
{
	if (!app || !ag__name_valid(name) || capacity > AG__CHANNEL_MAX)
		return -EINVAL;
	if (!capacity)
		capacity = AG_CHANNEL_CAPACITY;
	for (size_t i = 0; i < app->nchannels; i++) {
		struct ag_topic *t = app->channels[i];
		if (strcmp(t->name, name) != 0)
			continue;
		if (t->channel->capacity != capacity)
			return -EEXIST;
		if (out)
			*out = t;
		return 0;
	}
	/* One name, one thing: a channel named like a topic would make logs ambiguous. */
	if (ag_app_find_topic(app, name))
		return -EEXIST;
	struct ag_topic **grown = realloc(app->channels, (app->nchannels + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	app->channels = grown;
	struct ag_topic *t = calloc(1, sizeof(*t));
	if (!t || !(t->name = strdup(name)) || !(t->channel = calloc(1, sizeof(*t->channel)))) {
		if (t)
			ag__topic_free(t);
		return -ENOMEM;
	}
	t->app = app;
	t->partitions = 1;
	t->key_codec = AG_CODEC_RAW;
	t->value_codec = AG_CODEC_RAW;
	t->channel->capacity = (uint32_t)capacity;
	app->channels[app->nchannels++] = t;
	if (out)
		*out = t;
	return 0;
}

AG_EXPORT int
ag_topic_is_channel(const struct ag_topic *topic)
{
	return topic && topic->channel != NULL;
}

/* ---- run time ---- */

int
ag__channels_open(struct ag__worker *w)
{
	for (size_t i = 0; i < w->app->nchannels; i++) {
		struct ag_topic *t = w->app->channels[i];
		struct ag__tpart *tp = t->parts;
		if (!tp)
			continue; /* no agent reads it: sends are refused (and counted) */
		uint32_t cap = 1;
		while (cap < t->channel->capacity)
			cap *= 2;
		for (uint32_t r = 0; r < tp->nreaders; r++) {
			struct ag__ring *ring = &tp->rings[r];
			if (!(ring->buf = calloc(cap, sizeof(*ring->buf))))
				return -ENOMEM;
			ring->cap = cap;
		}
		tp->ready = 1; /* never assigned: acks of its events are not tracked */
	}
	return 0;
}

static void
dropped_log(struct ag__worker *w, const struct ag_topic *t, uint64_t count, const char *why)
{
	/* The first drop of a run says what happens; the rest are in the stop's summary. */
	if (count == 1)
		ag__log(w->app, AG_LOG_WARN,
			"channel %s: an event was dropped: %s (further drops are counted and "
			"reported at stop)",
			t->name, why);
}

/*
 * Now in ms since the epoch, at the loop's clock: the wall clock read once per loop turn
 * (uv_now moves then), not per event; reading the clock per send cost about 5 % of a
 * channel pipeline's time on this VM (bench/README.md).
 */
static int64_t
loop_wall_ms(struct ag__worker *w, struct ag__channel *ch)
{
	uint64_t now = uv_now(&w->loop);
	if (now != ch->clock_loop || !ch->clock_wall) {
		struct timeval tv;
		gettimeofday(&tv, NULL);
		ch->clock_wall = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
		ch->clock_loop = now;
	}
	return ch->clock_wall;
}

int
ag__channel_send(struct ag__worker *w, struct ag_topic *t, const struct ag_bytes *key,
		 const struct ag_bytes *value, rd_kafka_headers_t *hdrs, int64_t timestamp)
{
	struct ag__channel *ch = t->channel;
	struct ag__tpart *tp = t->parts;
	int rc;
	if (!tp || !tp->ready) {
		dropped_log(w, t, ++ch->dropped_unread, "no agent reads the channel");
		rc = -EPIPE;
		goto fail;
	}
	for (;;) {
		if (w->stopping) {
			dropped_log(w, t, ++ch->dropped_stop, "the worker is stopping");
			rc = AG_ESTOPPED;
			goto fail;
		}
		if (ag__tpart_most(tp) < ch->capacity)
			break;
		struct ag__agent_rt *rt = ag__agent_current();
		if (!rt) {
			rc = -ENOBUFS;
			goto fail;
		}
		ch->waiters++;
		ch->parks++;
		ag__agent_park(rt, AG__AGENT_WAIT_SEND);
	}
	size_t klen = key && key->ptr ? key->len : 0;
	size_t vlen = value && value->ptr ? value->len : 0;
	size_t size = sizeof(struct ag__chmsg) + klen + vlen;
	int block = size <= AG__CHMSG_BLOCK;
	struct ag__chmsg *cm = block ? ch->free : NULL;
	if (cm) {
		ch->free = cm->next;
		ch->nfree--;
	} else if (!(cm = malloc(block ? AG__CHMSG_BLOCK : size))) {
		rc = -ENOMEM;
		goto fail;
	}
	char *data = (char *)(cm + 1);
	memset(&cm->m, 0, sizeof(cm->m));
	cm->m.partition = 0;
	cm->m.offset = ch->next_offset++;
	cm->m._private = (void *)&chmsg_mark;
	if (key && key->ptr) {
		memcpy(data, key->ptr, klen);
		cm->m.key = data;
		cm->m.key_len = klen;
	}
	if (value && value->ptr) {
		memcpy(data + klen, value->ptr, vlen);
		cm->m.payload = data + klen;
		cm->m.len = vlen;
	}
	cm->hdrs = hdrs;
	cm->ch = ch;
	cm->block = block;
	cm->timestamp = timestamp > 0 ? timestamp : loop_wall_ms(w, ch);
	cm->refs = tp->nreaders;
	for (uint32_t r = 0; r < tp->nreaders; r++) {
		struct ag__ring *ring = &tp->rings[r];
		ring->buf[(ring->head + ring->count) & (ring->cap - 1)] =
			(struct ag__held){&cm->m, NULL};
		if (++ring->count > ch->peak)
			ch->peak = ring->count;
	}
	ch->sent++;
	ag__tpart_wake(w, tp);
	return 0;
fail:
	if (hdrs)
		rd_kafka_headers_destroy(hdrs);
	return rc;
}

void
ag__channel_drained(struct ag__worker *w, struct ag__tpart *tp)
{
	struct ag__channel *ch = tp->topic->channel;
	if (!ch->waiters || ag__tpart_most(tp) > ch->capacity / 2)
		return;
	ch->waiters = 0;
	ag__agents_wake_all(w, AG__AGENT_WAIT_SEND);
}

void
ag__channels_stop(struct ag__worker *w)
{
	int any = 0;
	for (size_t i = 0; i < w->app->nchannels; i++) {
		struct ag__channel *ch = w->app->channels[i]->channel;
		any |= ch->waiters != 0;
		ch->waiters = 0;
	}
	if (any)
		ag__agents_wake_all(w, AG__AGENT_WAIT_SEND);
}

/* Events the readers of t were handed so far: each reader gets every event sent. */
static uint64_t
taken(const struct ag_topic *t)
{
	const struct ag__tpart *tp = t->parts;
	uint64_t n = 0;
	for (uint32_t r = 0; tp && r < tp->nreaders; r++)
		n += t->channel->sent - tp->rings[r].count;
	return n;
}

void
ag__channels_txn_end(struct ag__worker *w, int committed)
{
	for (size_t i = 0; i < w->app->nchannels; i++) {
		const struct ag_topic *t = w->app->channels[i];
		struct ag__channel *ch = t->channel;
		uint64_t now = taken(t);
		uint64_t lost = now - ch->taken_committed;
		ch->taken_committed = now;
		if (committed || !lost)
			continue;
		ch->dropped_abort += lost;
		ag__log(w->app, AG_LOG_WARN,
			"channel %s: %llu events taken by agents since the last commit were part "
			"of the aborted transaction; a channel cannot hand them out again, so "
			"their effects are lost (%llu so far)",
			t->name, (unsigned long long)lost, (unsigned long long)ch->dropped_abort);
	}
}

void
ag__channels_report(struct ag__worker *w)
{
	for (size_t i = 0; i < w->app->nchannels; i++) {
		const struct ag_topic *t = w->app->channels[i];
		const struct ag__channel *ch = t->channel;
		const struct ag__tpart *tp = t->parts;
		uint64_t buffered = 0; /* events some reader had not been handed */
		for (uint32_t r = 0; tp && r < tp->nreaders; r++)
			buffered += tp->rings[r].count;
		ag__log(w->app, AG_LOG_INFO,
			"channel %s: sent=%llu parks=%llu peak=%u capacity=%u dropped=%llu",
			t->name, (unsigned long long)ch->sent, (unsigned long long)ch->parks,
			ch->peak, ch->capacity,
			(unsigned long long)(buffered + ch->dropped_stop + ch->dropped_unread +
					     ch->dropped_abort));
		if (buffered)
			ag__log(w->app, AG_LOG_WARN,
				"channel %s: %llu events dropped at shutdown (buffered in memory, "
				"not "
				"yet handed to an agent; channels are not durable)",
				t->name, (unsigned long long)buffered);
		if (ch->dropped_stop)
			ag__log(w->app, AG_LOG_WARN,
				"channel %s: %llu sends refused while the worker stopped "
				"(AG_ESTOPPED)",
				t->name, (unsigned long long)ch->dropped_stop);
		if (ch->dropped_abort)
			ag__log(w->app, AG_LOG_WARN,
				"channel %s: %llu events taken in aborted transactions were lost",
				t->name, (unsigned long long)ch->dropped_abort);
		if (ch->dropped_unread)
			ag__log(w->app, AG_LOG_WARN,
				"channel %s: %llu sends refused: no agent reads the channel "
				"(-EPIPE)",
				t->name, (unsigned long long)ch->dropped_unread);
	}
}
