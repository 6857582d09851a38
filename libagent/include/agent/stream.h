/*
 * Streams and events: what an agent sees. An agent pulls events with ag_stream_next;
 * an event is acked (its offset may be committed) when the agent asks for the next one
 * or calls ag_ack. Events come from every partition of the source topic assigned to
 * this worker, interleaved fairly; order is kept within a partition.
 */
#ifndef AGENT_STREAM_H
#define AGENT_STREAM_H

#include <agent/types.h>

struct ag_app;
struct ag_agent;
struct ag_topic;
struct ag_stream;
struct ag_event;

/*
 * Acks the previous event (if not yet acked) and returns the next one in *ev. Returns
 * without switching when events are buffered; otherwise yields to the loop until one
 * arrives. *ev is borrowed, valid until the next call of ag_stream_next.
 * Returns 0, AG_EOF when the worker stops (return from the agent then),
 * AG_ENOAGENT when called outside the agent that owns the stream.
 */
int ag_stream_next(struct ag_stream *stream, struct ag_event **ev);

/* The agent and app a stream belongs to. Borrowed. */
struct ag_agent *ag_stream_agent(const struct ag_stream *stream);
struct ag_app *ag_stream_app(const struct ag_stream *stream);

/*
 * Sends key/value to every sink of the stream's agent, in order. key may be NULL (no
 * key). Copies both. May yield while the producer queue is full; never blocks the loop.
 * Returns 0, AG_ESTOPPED, or the first sink's error.
 */
int ag_stream_yield(struct ag_stream *stream, const struct ag_bytes *key,
		    const struct ag_bytes *value);

/*
 * Sends key/value to a topic: the partition is murmur2(key) % partitions (Java/Faust
 * compatible), random without a key. Copies both. Inside an agent it yields while the
 * producer queue is full; outside one it returns -ENOBUFS then. Delivery is confirmed
 * before the offsets of the events processed so far are committed.
 * Returns 0, -ENOBUFS, AG_ESTOPPED, AG_EKAFKA.
 */
int ag_send(struct ag_topic *topic, const struct ag_bytes *key, const struct ag_bytes *value);

/* Acks an event now (idempotent). Returns 0. */
int ag_ack(struct ag_event *ev);

/* Event fields. All borrowed, valid as long as the event. */
struct ag_bytes ag_event_key(const struct ag_event *ev); /* {NULL,0} without a key */
struct ag_bytes ag_event_value(const struct ag_event *ev); /* {NULL,0} for a null value */
const char *ag_event_topic(const struct ag_event *ev);
int32_t ag_event_partition(const struct ag_event *ev);
int64_t ag_event_offset(const struct ag_event *ev);
int64_t ag_event_timestamp(const struct ag_event *ev); /* ms since the epoch, -1 if none */

/*
 * The event's value (or key) decoded with the topic's record type: *rec points to a struct
 * of that type, borrowed, valid until the next ag_stream_next (its strings too).
 * Returns 0, -ENOENT when the topic declares no record type for it.
 */
int ag_event_record(const struct ag_event *ev, const void **rec);
int ag_event_key_record(const struct ag_event *ev, const void **rec);

#endif
