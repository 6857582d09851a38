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

/*
 * Batches, Faust's stream.take(max, within=within_s): acks the previous batch (or event)
 * and hands out the next up to `max` events in *events[0..*n), in arrival order. A batch is
 * handed out when it holds `max` events, or when `within_s` seconds have passed since its
 * first event arrived (within_s <= 0: hand out what is buffered as soon as there is one).
 * The array and events are borrowed, valid until the next ag_stream_take or
 * ag_stream_next. Table writes made while working on a batch are attributed to the event
 * given to ag_event_focus (none until then). Returns 0, AG_EOF when the worker stops (the
 * events not yet handed out are processed again after a restart), -EINVAL (max 0 or more
 * than 65536), AG_ENOAGENT as ag_stream_next, -ENOMEM.
 */
int ag_stream_take(struct ag_stream *stream, size_t max, double within_s, struct ag_event ***events,
		   size_t *n);

/*
 * Makes ev, an event of the current batch, the one that table writes (partition, source
 * offset) and ag_stream_yield's replies to ag_agent_ask are attributed to. ag_stream_next
 * focuses the event it returns. Returns 0, AG_ENOAGENT outside the agent holding ev.
 */
int ag_event_focus(struct ag_event *ev);

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
 * before the offsets of the events processed so far are committed. To a channel
 * (ag_app_channel) the event goes to this worker's agents reading it: a full channel parks
 * the caller likewise (-ENOBUFS outside an agent or timer), -EPIPE when no agent reads it.
 * Returns 0, -ENOBUFS, -EPIPE, AG_ESTOPPED, AG_EKAFKA.
 */
int ag_send(struct ag_topic *topic, const struct ag_bytes *key, const struct ag_bytes *value);

/*
 * Sends key/value to an agent (to its source topic), as `faustc send @agent` does.
 * Returns as ag_send.
 */
int ag_agent_send(struct ag_agent *agent, const struct ag_bytes *key, const struct ag_bytes *value);

/*
 * Sends key/value to an agent and waits for its answer, Faust's agent.ask(): the request
 * carries the reply topic (`<app_id>-__reply`) and a correlation id in headers; the first
 * value the agent yields while working on that event goes back as the reply. Parks the
 * calling agent or timer (never the loop) up to timeout_s seconds. *reply is borrowed,
 * valid until the caller's next ag_agent_ask, ag_stream_next or ag_stream_take.
 * Returns 0, -ETIMEDOUT, AG_ESTOPPED, AG_ENOAGENT (not called from an agent or a timer),
 * -EINVAL, or ag_send's errors.
 */
int ag_agent_ask(struct ag_agent *agent, const struct ag_bytes *key, const struct ag_bytes *value,
		 double timeout_s, struct ag_bytes *reply);

/*
 * Parks the calling agent or timer for `seconds` (asyncio.sleep in Faust); the loop and the
 * other agents go on. Returns 0, AG_EOF when the worker stops meanwhile, AG_ENOAGENT
 * outside an agent or timer, -EINVAL for a negative or not finite time.
 */
int ag_sleep(double seconds);

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
 * Headers. ag_event_header finds the last header called `name`: *value is borrowed (ptr
 * NULL for a header without a value). Returns 0, -ENOENT. ag_event_header_at walks them in
 * order: returns 0, -ENOENT past the last.
 */
int ag_event_header(const struct ag_event *ev, const char *name, struct ag_bytes *value);
int ag_event_header_at(const struct ag_event *ev, size_t idx, const char **name,
		       struct ag_bytes *value);

/*
 * Replaces the event's value (what ag_event_value returns and what is forwarded, echoed and
 * decoded). Copies value. On a topic with a record type the new value is decoded again.
 * Meant for processors. Returns 0, AG_EDECODE (does not decode; the old value stays),
 * -ENOMEM.
 */
int ag_event_set_value(struct ag_event *ev, const struct ag_bytes *value);

/*
 * The event's value (or key) decoded with the topic's record type: *rec points to a struct
 * of that type, borrowed, valid until the next ag_stream_next (its strings too).
 * Returns 0, -ENOENT when the topic declares no record type for it.
 */
int ag_event_record(const struct ag_event *ev, const void **rec);
int ag_event_key_record(const struct ag_event *ev, const void **rec);

#endif
