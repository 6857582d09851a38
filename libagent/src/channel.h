/*
 * In-memory channels (channel.c): the worker's side. A channel is a struct ag_topic with
 * one partition whose ag__tpart rings are filled by senders instead of the consumer, so
 * agents read it through the same pull path as a topic. Its messages are
 * rd_kafka_message_t structs that channel.c allocates (marked, so that the places that
 * would hand them to librdkafka ask here first).
 */
#ifndef AG_CHANNEL_H
#define AG_CHANNEL_H

#include "internal.h"

struct ag__worker;
struct ag__tpart;
struct ag__chmsg;

/* A channel's state, hung off its struct ag_topic. */
struct ag__channel {
	uint32_t capacity; /* events per reader not yet handed out */
	int64_t next_offset; /* the sequence number of the next event */
	uint32_t waiters; /* coroutines parked on a full channel */
	uint32_t peak; /* most events one reader ever had buffered */
	uint64_t sent; /* events put into the channel */
	uint64_t parks; /* sends that parked on a full channel */
	uint64_t dropped_stop; /* refused because the worker stops, or buffered at the end */
	uint64_t dropped_unread; /* refused because no agent reads the channel */
	uint64_t dropped_abort; /* exactly_once: taken by agents in an aborted transaction */
	uint64_t taken_committed; /* exactly_once: events taken by readers at the last commit */
	uint64_t clock_loop; /* uv_now when clock_wall was read */
	int64_t clock_wall; /* the wall clock then, ms since the epoch (0: not read yet) */
	struct ag__chmsg *free; /* recycled small messages, at most capacity of them */
	uint32_t nfree;
};

/* Frees a channel's state (with its topic, app.c). NULL is a no-op. */
void ag__channel_free(struct ag__channel *ch);

/* 1 when m is a channel's message (not librdkafka's). */
int ag__chmsg_is(const rd_kafka_message_t *m);

/* Frees a channel message (from ag__held_release). */
void ag__chmsg_free(rd_kafka_message_t *m);

/* A message's timestamp (ms since the epoch, -1 none), channel or Kafka. */
int64_t ag__msg_timestamp(const rd_kafka_message_t *m);

/* A message's headers (borrowed), or NULL, channel or Kafka. */
rd_kafka_headers_t *ag__msg_headers(const rd_kafka_message_t *m);

/* Sets up the read side of the channels agents read (after their partitions exist). */
int ag__channels_open(struct ag__worker *w);

/*
 * Sends to channel t from the loop thread: parks the calling coroutine while a reader's
 * buffer is full. hdrs is taken over (also on failure). Returns 0, -ENOBUFS (full, not in
 * a coroutine), AG_ESTOPPED (the worker stops), -EPIPE (no agent reads t), -ENOMEM.
 */
int ag__channel_send(struct ag__worker *w, struct ag_topic *t, const struct ag_bytes *key,
		     const struct ag_bytes *value, rd_kafka_headers_t *hdrs, int64_t timestamp);

/* A reader took events from tp, a channel's partition: wakes parked senders when due. */
void ag__channel_drained(struct ag__worker *w, struct ag__tpart *tp);

/* The worker stops: parked senders wake up to AG_ESTOPPED. */
void ag__channels_stop(struct ag__worker *w);

/*
 * exactly_once: a transaction committed (what agents took from channels so far is settled)
 * or was aborted: what agents took from a channel since the last commit had its effects
 * aborted, and a channel cannot hand it out again, so it is counted as dropped and logged.
 */
void ag__channels_txn_end(struct ag__worker *w, int committed);

/* At exit: logs each channel's counts, events dropped at warn. */
void ag__channels_report(struct ag__worker *w);

#endif
