/*
 * The app: what a faustc program declares. An app has an id (the Kafka consumer group
 * and the prefix of every internal topic), topics, agents that consume them and tables
 * that agents update. Declarations happen in a setup function before the worker runs;
 * the worker then subscribes, recovers tables and starts the agents.
 *
 * An app is built either as a shared object that `faustc -A NAME` loads (export the
 * setup function with AG_APP_MODULE) or as its own binary (call ag_app_main from main).
 */
#ifndef AGENT_APP_H
#define AGENT_APP_H

#include <agent/types.h>

struct ag_app;
struct ag_topic;
struct ag_agent;
struct ag_table;
struct ag_stream;

/* Declares the app: sets the id, topics, agents, tables. Returns 0 or a negative error. */
typedef int (*ag_app_setup_fn)(struct ag_app *app);

/*
 * Runs the faustc command line (worker, send, agents, topics, broker, ...) for the app
 * that setup declares. Returns the process exit status.
 */
int ag_app_main(int argc, char **argv, ag_app_setup_fn setup);

/* ABI version of the module entry point; bumped on incompatible changes. */
#define AG_MODULE_ABI 2

/* The one symbol an app module exports. */
struct ag_module {
	int abi;
	ag_app_setup_fn setup;
};

/*
 * Exports `setup` as the app module's entry point:
 *     static int setup(struct ag_app *app) { ... }
 *     AG_APP_MODULE(setup)
 */
#define AG_APP_MODULE(setup) \
	__attribute__((visibility("default"))) \
	const struct ag_module ag_module_entry = {AG_MODULE_ABI, (setup)}

/*
 * Creates an empty app. The id is set by ag_app_set_id (usually in setup).
 * Caller frees with ag_app_free. Returns 0, -ENOMEM.
 */
int ag_app_new(struct ag_app **out);

/* Frees the app and every topic, agent and table it declared. NULL is a no-op. */
void ag_app_free(struct ag_app *app);

/*
 * Sets the app id: letters, digits, '.', '_' and '-', at most 200 bytes. Returns 0,
 * -EINVAL for a bad id.
 */
int ag_app_set_id(struct ag_app *app, const char *id);

/* The app id, or NULL before it is set. Borrowed, valid while the app lives. */
const char *ag_app_id(const struct ag_app *app);

/*
 * Sets a worker option by name. The value is copied. Options the command line also
 * sets (it wins over the app):
 *   "broker"          URL: kafka://h1:9092,h2:9092, mock://h:p (a `faustc broker`), or
 *                     empty for the embedded broker (default)
 *   "datadir"         data directory (default ./<app_id>-data)
 *   "commit_interval" seconds between offset commits, a decimal (default 2.8); with
 *                     exactly_once it also bounds how late read_committed readers see the
 *                     outputs (down to 0.1 s is fine on Kafka)
 *   "processing_guarantee" "at_least_once" (default) or "exactly_once": each commit
 *                     cycle is one Kafka transaction holding the outputs, forwards,
 *                     changelog records and consumer offsets; needs a real Kafka broker
 *                     (refused at start on the embedded one); docs/guarantees.md
 *   "loglevel"        debug, info, warn, error (default info)
 *   "max_message_bytes" larger keys+values are bad input (default 1048576)
 *   "standby_replicas" 1 (default): each worker follows the changelogs of some table
 *                     partitions other workers own, so a failover replays only the tail;
 *                     0: none (docs/tables.md)
 *   "idle_timeout"    seconds (decimal, default 5) after which a source partition that is
 *                     caught up and quiet stops holding windowed tables' windows open
 *   "late_events"     "drop" (default): events older than their window's end + grace are
 *                     counted, logged and dropped; "topic": also sent unchanged, with
 *                     faustc-late-* headers, to <app_id>-<table>-late (docs/tables.md)
 *   "web"             "1" (default): serve /health, /info, /metrics, /tables and the live
 *                     page over HTTP on the worker's loop; "0": no web server (docs/cli.md)
 *   "web_bind"        address the web server listens on (default 127.0.0.1)
 *   "web_port"        its port (default 6066; taken: the next free one, with a warning;
 *                     0: any free port); the URL is written to DATADIR/web.addr
 *   "worker_id"       this worker's group.instance.id on Kafka (static membership: a
 *                     restart within the session timeout gets its partitions back without
 *                     a rebalance); [a-zA-Z0-9._-], default from app id, host, data dir
 *   "topic_replication_factor" replicas of the topics created on a Kafka cluster, 1..32;
 *                     0 (default): min(3, brokers in the cluster)
 *   "kafka.NAME"      librdkafka property NAME passed to every client
 * Returns 0, -EINVAL for an unknown name or a bad value, -ENOMEM.
 */
int ag_app_set_option(struct ag_app *app, const char *name, const char *value);

/* Topic declaration options. A zeroed struct (or NULL) means the defaults. */
struct ag_topic_opts {
	int partitions; /* 0: 8 partitions (Faust's topic_partitions) */
	enum ag_codec key_codec; /* default AG_CODEC_RAW */
	enum ag_codec value_codec; /* default AG_CODEC_RAW; AG_CODEC_JSON for JSON */
	int internal; /* not listed as user topic; created by the worker */
	/*
	 * Record types (agent/record.h) of keys and values, or NULL. A typed value needs
	 * value_codec AG_CODEC_JSON or AG_CODEC_MSGPACK; the worker decodes it before the
	 * agent sees the event (ag_event_record) and treats failures as bad input.
	 */
	const struct ag_record_type *key_type;
	const struct ag_record_type *value_type;
	int key_required; /* an event without a key is bad input */
};

/*
 * Declares a topic. Declaring the same name twice returns the first declaration when the
 * options agree and -EEXIST when they do not. *out (optional) is borrowed, valid while
 * the app lives. Returns 0, -EINVAL, -EEXIST, -ENOMEM.
 */
int ag_app_topic(struct ag_app *app, const char *name, const struct ag_topic_opts *opts,
		 struct ag_topic **out);

/*
 * In-memory channels, Faust's app.channel(): a queue inside one worker process that agents
 * read and send to like a topic, without a broker. ag_app_channel returns a struct ag_topic
 * usable wherever a topic is used for reading and sending: an agent's source
 * (ag_app_agent), a sink (ag_agent_sink_topic), the target of ag_send, ag_agent_send,
 * ag_agent_echo and ag_stream_yield. Events keep key, value, headers and timestamp (a send without one gets the
 * wall clock in ms, read once per loop turn); ag_stream_next and ag_stream_take hand them
 * out as usual.
 *
 * A channel has one partition (ag_event_partition is 0) and no Kafka offsets:
 * ag_event_offset is the channel's own sequence number (0, 1, 2, ... per worker run),
 * nothing is committed and nothing is replayed. Order is FIFO per channel; each agent
 * reading it gets every event, as with a topic.
 *
 * Not durable: events live only in this worker's memory. Events sent but not yet handed
 * to an agent are lost when the worker stops or crashes; at stop they are counted and
 * logged at warn ("channel NAME: N events dropped at shutdown"), as are sends refused
 * because the worker stops or no agent reads the channel.
 *
 * Back-pressure: each reading agent holds at most `capacity` events not yet handed out
 * (0: AG_CHANNEL_CAPACITY). A send to a full channel parks the calling agent or timer until
 * the readers have taken half of them; outside a coroutine it returns -ENOBUFS. A parked
 * sender whose worker stops gets AG_ESTOPPED (the event is counted as dropped). A channel
 * never holds up the commit cycle or the stop: it has no offsets to commit.
 *
 * Not for tables (a table follows a topic's partitions and its changelog) nor as the
 * topic of through: ag_app_table and ag_agent_through return -EINVAL. Declaring the same name twice
 * returns the first channel when the capacity agrees and -EEXIST when it does not. *out
 * (optional) is borrowed, valid while the app lives. Returns 0, -EINVAL (bad name,
 * capacity above 1048576), -EEXIST, -ENOMEM.
 */
#define AG_CHANNEL_CAPACITY 4096
int ag_app_channel(struct ag_app *app, const char *name, size_t capacity, struct ag_topic **out);

/* 1 when topic is a channel (ag_app_channel), 0 when it is a Kafka topic. */
int ag_topic_is_channel(const struct ag_topic *topic);

/* Topic name and partition count. Borrowed. */
const char *ag_topic_name(const struct ag_topic *topic);
int ag_topic_partitions(const struct ag_topic *topic);

/*
 * An agent body. It runs as a coroutine on the worker's loop and pulls events:
 *     struct ag_event *ev;
 *     while ((rc = ag_stream_next(s, &ev)) == 0) { ... }
 *     return rc == AG_EOF ? 0 : rc;
 * Returning a negative error is logged and the agent is restarted on its next event.
 */
typedef int (*ag_agent_fn)(struct ag_stream *stream, void *userdata);

/*
 * Declares an agent named `name` consuming `source`. With source NULL the agent gets its
 * own topic `<app_id>-<name>` (string keys, raw values) that others send to. Several
 * agents may read one topic, as in Faust: each gets every event, and an offset is
 * committed only when every one of them is done with the events before it. *out
 * (optional) is borrowed. Returns 0, -EINVAL, -EEXIST (name taken), -ENOMEM.
 */
int ag_app_agent(struct ag_app *app, const char *name, struct ag_topic *source, ag_agent_fn fn,
		 void *userdata, struct ag_agent **out);

/*
 * What an agent does with bad input: a key or value that does not decode with its topic's
 * codec or record type, has a wrong type, misses a required field, is empty, has no key
 * where one is required, or is larger than the "max_message_bytes" option. Every bad event
 * is logged (rate-limited) with topic, partition, offset and reason and counted per topic
 * and reason; then:
 */
enum ag_bad_input {
	AG_BAD_INPUT_SKIP = 0, /* ack it and go on (the default) */
	AG_BAD_INPUT_DEAD_LETTER, /* send it as it came to <app_id>-<agent>-dead-letter, with
				     headers saying why, ack it and go on */
	AG_BAD_INPUT_STOP, /* stop the worker with an error; the event is not acked */
};

/* Sets the agent's bad-input policy. Returns 0, -EINVAL. */
int ag_agent_on_bad_input(struct ag_agent *agent, enum ag_bad_input policy);

/*
 * Registers a record type so `faustc models` lists it (types used by topics are registered
 * by ag_app_topic). Returns 0, -EINVAL (ag_record_type_check failed; logged), -ENOMEM.
 */
int ag_app_model(struct ag_app *app, const struct ag_record_type *type);

/* A codec the app defines: it says whether bytes are valid. */
struct ag_codec_ops {
	const char *name; /* shown by `faustc topics`; unique in the app */
	/* Returns 0 for valid data, or a negative error with the reason in err. */
	int (*validate)(struct ag_bytes data, char *err, size_t errlen, void *userdata);
	void *userdata;
};

/*
 * Registers a codec; *id (AG_CODEC_CUSTOM + n) is then usable as a topic's key or value
 * codec. ops is copied; ops->name must outlive the app. Returns 0, -EINVAL, -EEXIST, -ENOMEM.
 */
int ag_app_codec(struct ag_app *app, const struct ag_codec_ops *ops, enum ag_codec *id);

/* The agent's name; its source topic (NULL until the worker resolves an own topic). */
const char *ag_agent_name(const struct ag_agent *agent);
struct ag_topic *ag_agent_topic(const struct ag_agent *agent);

/* Sinks: every value the agent yields goes to each sink in the order they were added. */

/* Sink into a topic (key kept, partition by murmur2 of the key). Returns 0, -ENOMEM. */
int ag_agent_sink_topic(struct ag_agent *agent, struct ag_topic *topic);

/* Sink into another agent: the value is sent to that agent's topic. Returns 0, -ENOMEM. */
int ag_agent_sink_agent(struct ag_agent *agent, struct ag_agent *target);

/*
 * A C callback sink. Runs on the loop inside the yielding agent; key and value are
 * borrowed for the call. A negative return is reported to the yielding agent.
 */
typedef int (*ag_sink_fn)(struct ag_agent *agent, const struct ag_bytes *key,
			  const struct ag_bytes *value, void *userdata);
int ag_agent_sink_callback(struct ag_agent *agent, ag_sink_fn fn, void *userdata);

/*
 * Operators: an agent's pipeline. Each operator added to an agent applies, in the order
 * they are added, to the events of its source before the body's ag_stream_next (or
 * ag_stream_take) hands them out, as Faust's chained stream methods do:
 *     async for w in stream.filter(big).group_by(Withdrawal.country, name='country'):
 * is, in setup:
 *     ag_agent_filter(agent, big, NULL);
 *     ag_agent_group_by_field(agent, "country", 0, &by_country);
 * Operators are declared in setup, after ag_app_set_id, so that every internal topic is
 * known (and created) before the worker subscribes. They run on the agent's coroutines, so
 * they may call ag_send; a negative return from an operator function is a failure of that
 * event: it is logged with topic/partition/offset/key, counted, acked and skipped.
 *
 * group_by and through are boundaries: the events so far are forwarded into a topic (each
 * with its timestamp and headers), acked once the forward is sent, and the operators after
 * the boundary, and the body, run on that topic's stream. A worker forwards the source
 * partitions it is assigned and iterates the boundary topic's partitions it is assigned:
 * after group_by, every event of one key reaches the same worker, in order.
 */
struct ag_event;

/*
 * Keeps the events for which fn returns 1; an event fn returns 0 for is acked at once and
 * never seen by the body. Faust's stream.filter(fn). Returns 0, -EINVAL, -ENOMEM.
 */
typedef int (*ag_filter_fn)(struct ag_event *ev, void *userdata);
int ag_agent_filter(struct ag_agent *agent, ag_filter_fn fn, void *userdata);

/*
 * Calls fn on every event; fn may replace the value with ag_event_set_value (on a topic
 * with a record type the new value is decoded again). Returns 0 or a failure.
 * Faust's processors=[fn]. Returns 0, -EINVAL, -ENOMEM.
 */
typedef int (*ag_processor_fn)(struct ag_event *ev, void *userdata);
int ag_agent_processor(struct ag_agent *agent, ag_processor_fn fn, void *userdata);

/*
 * A key function: sets *key to the new key of ev; the bytes are borrowed until the function
 * is called again (point into the event, into userdata or into static storage).
 * Returns 0 or a failure.
 */
typedef int (*ag_key_fn)(struct ag_event *ev, struct ag_bytes *key, void *userdata);

/*
 * Re-keys the stream by fn through the repartition topic
 * `<app_id>-<agent>-<name>-repartition` (value codec and record type of the stream, raw
 * keys), with `partitions` partitions (0: as many as the stream's topic). Faust's
 * stream.group_by(fn, name=name). *out (optional, borrowed) is that topic: declare the
 * tables the body updates on it. Returns 0, -EINVAL (bad name, no app id yet), -EEXIST
 * (name taken), -ENOMEM.
 */
int ag_agent_group_by(struct ag_agent *agent, const char *name, ag_key_fn fn, void *userdata,
		      int partitions, struct ag_topic **out);

/*
 * Re-keys by a field of the stream's record type (ag_record_field_key renders it: strings
 * as they are, numbers in decimal); the name is the field path. Faust's
 * stream.group_by(Withdrawal.country). An event whose field is missing fails.
 * Returns as ag_agent_group_by; -EINVAL also when the stream has no record type or no such
 * scalar field.
 */
int ag_agent_group_by_field(struct ag_agent *agent, const char *field, int partitions,
			    struct ag_topic **out);

/*
 * Forwards every event (key kept) to `topic` and iterates that topic's stream from then
 * on. Faust's stream.through(topic). Other agents may read the topic too.
 * Returns 0, -EINVAL, -EEXIST (the agent already reads the topic: it would loop), -ENOMEM.
 */
int ag_agent_through(struct ag_agent *agent, struct ag_topic *topic);

/*
 * Copies every event (key, value, timestamp, headers) to `topic` and goes on with the same
 * stream. Faust's stream.echo(topic); call once per topic. Returns 0, -EINVAL, -ENOMEM.
 */
int ag_agent_echo(struct ag_agent *agent, struct ag_topic *topic);

/*
 * Runs n (1..1024) coroutines of the body on the stream, Faust's concurrency=n: events of
 * one partition are handed out in order, but finish in any order; the offset committed is
 * still never past an event that is not finished. Refused at worker start-up (with a
 * message) for agents with group_by or through, and for agents whose topics tables follow:
 * per-key state needs one event per key at a time. Returns 0, -EINVAL.
 */
int ag_agent_concurrency(struct ag_agent *agent, int n);

/*
 * Timers and tasks: C functions the worker calls on its loop, every interval or once, each
 * on a coroutine of its own, so a function may ag_send() (and park while the producer
 * queue is full) without holding agents up. What it sends is covered by commits like an
 * agent's sends: a commit waits until it is delivered.
 */

/* Run once, `interval_s` seconds after the worker has started (0: at once); a task. */
#define AG_TIMER_ONCE 0x1u
/*
 * Run only on the leader: the one worker of the app's consumer group that is assigned
 * partition 0 of the internal topic `<app_id>-__leader`. A periodic leader timer starts
 * its schedule when the worker becomes the leader and stops when it no longer is; a
 * leader task runs once, the first time the worker is the leader when it is due.
 */
#define AG_TIMER_LEADER 0x2u

/*
 * A timer function. Runs on its own coroutine on the loop thread; it may call ag_send and
 * table functions (tables use murmur2 of the key for the partition). A negative return is
 * logged with the timer's name and the error; the timer keeps its schedule.
 */
typedef int (*ag_timer_fn)(struct ag_app *app, void *userdata);

/*
 * Declares a timer named `name` (letters, digits, '.', '_', '-'; unique among timers)
 * that calls fn(app, userdata) every `interval_s` seconds, the first time one interval
 * after the worker has started, Faust's @app.timer(interval). Calls are not stacked:
 * while fn runs, ticks that come due collapse into one call after it returns. Flags:
 * AG_TIMER_ONCE (then interval_s is a delay and may be 0, Faust's @app.task),
 * AG_TIMER_LEADER (Faust's on_leader=True). On SIGTERM/SIGINT or ag_app_stop no further
 * call starts; the worker's stop waits for a call in progress to return.
 * Returns 0, -EINVAL (bad name, fn NULL, unknown flags, interval_s <= 0 without
 * AG_TIMER_ONCE, negative, not finite or above 1e9), -EEXIST (name taken), -ENOMEM.
 */
int ag_app_timer(struct ag_app *app, const char *name, double interval_s, unsigned flags,
		 ag_timer_fn fn, void *userdata);

/*
 * Non-zero while this worker is the leader of its group (see AG_TIMER_LEADER). Always 0
 * outside a worker and in apps without an AG_TIMER_LEADER timer (no election is held).
 */
int ag_app_is_leader(const struct ag_app *app);

/*
 * Asks the running worker to stop gracefully, as SIGTERM does: stop consuming, let agents
 * finish the event in hand, flush, commit, exit. Returns at once; a no-op outside a worker.
 */
void ag_app_stop(struct ag_app *app);

/* Looks a declared topic or agent up by name; NULL when unknown. Borrowed. */
struct ag_topic *ag_app_find_topic(const struct ag_app *app, const char *name);
struct ag_agent *ag_app_find_agent(const struct ag_app *app, const char *name);

/*
 * Logs a line through the worker's logger ("[time] LEVEL app: message"), filtered by
 * the "loglevel" option. Safe to call anywhere on the loop thread.
 */
void ag_log(const struct ag_app *app, enum ag_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
