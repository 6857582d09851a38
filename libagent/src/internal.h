/*
 * Private definitions shared by the library's modules: the declared app (topics, agents,
 * tables and options) and the hooks the worker fills in at run time.
 */
#ifndef AG_INTERNAL_H
#define AG_INTERNAL_H

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>

#include <agent/agent.h>

#include "web/metrics.h"

#define AG_EXPORT __attribute__((visibility("default")))

#define AG__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct ag__worker;
struct ag__tpart;
struct ag__flow;
struct ag__channel;

/* Reasons an event is bad input; counted per topic. */
enum ag__bad {
	AG__BAD_DECODE = 0, /* does not decode with the codec */
	AG__BAD_TYPE, /* a field has the wrong type */
	AG__BAD_MISSING, /* a required field is missing */
	AG__BAD_EMPTY, /* empty or null value where one is needed */
	AG__BAD_NULL_KEY, /* no key where one is required */
	AG__BAD_TOO_LARGE, /* larger than max_message_bytes */
	AG__BAD_N,
};

/* "decode", "type", "missing", "empty", "null_key", "too_large". */
const char *ag__bad_name(enum ag__bad reason);

struct ag_topic {
	struct ag_app *app;
	char *name;
	int partitions;
	enum ag_codec key_codec;
	enum ag_codec value_codec;
	int internal; /* created by faustc (changelogs, agent topics) */
	const struct ag_record_type *key_type;
	const struct ag_record_type *value_type;
	int key_required;
	uint64_t bad[AG__BAD_N]; /* bad input seen, per reason */
	uint64_t bad_window_ns; /* start of the current log rate window */
	uint32_t bad_window_logged;
	struct ag_agent *agent; /* the first agent it feeds, if any */
	struct ag__seg **readers; /* the pipeline segments that read it (ag__app_finalize) */
	size_t nreaders;
	/* run time (worker) */
	rd_kafka_topic_t *rkt; /* producer topic handle, created lazily */
	struct ag__tpart *parts; /* consumer-side partition state, [partitions] */
	struct ag__flow *flow; /* forwarded-to topics: how far ahead forwarders are (flow.c) */
	/* event time (watermark.c), set by ag__app_finalize */
	int windowed; /* an event-time windowed table follows it: its partitions keep watermarks */
	ag_window_time_fn wm_fn; /* those tables' time function; NULL: the Kafka timestamp */
	void *wm_userdata;
	uint32_t wm_sources; /* a boundary topic: its forwarder's source partitions; 0: plain */
	uint64_t produced; /* messages this worker produced to it (/metrics) */
	struct ag__channel *channel; /* an in-memory channel (channel.c), NULL for Kafka */
};

/* A topic, agent or channel name: [a-zA-Z0-9._-], 1..249 bytes (app.c). */
int ag__name_valid(const char *name);

/* Frees a declared topic or channel (app.c). */
void ag__topic_free(struct ag_topic *t);

enum ag__sink_kind {
	AG__SINK_TOPIC,
	AG__SINK_AGENT,
	AG__SINK_CALLBACK,
};

struct ag__sink {
	enum ag__sink_kind kind;
	struct ag_topic *topic;
	struct ag_agent *agent;
	ag_sink_fn fn;
	void *userdata;
};

struct ag__agent_rt;

/* One operator of an agent's pipeline (ag_agent_filter, _group_by, ...). */
enum ag__stage_kind {
	AG__STAGE_FILTER,
	AG__STAGE_PROCESSOR,
	AG__STAGE_ECHO,
	AG__STAGE_GROUP_BY, /* a boundary: re-keys into topic */
	AG__STAGE_THROUGH, /* a boundary: forwards into topic */
};

struct ag__stage {
	enum ag__stage_kind kind;
	ag_filter_fn filter;
	ag_processor_fn processor;
	ag_key_fn key_fn; /* GROUP_BY by function */
	char *field; /* GROUP_BY by record field (path) */
	void *userdata;
	struct ag_topic *topic; /* ECHO target; GROUP_BY/THROUGH: the topic read next */
};

/*
 * A segment of a pipeline: the operators between two boundaries, run on the events of one
 * topic. Every segment but the last ends in a boundary and is run by a forwarder coroutine;
 * the last is what the agent body iterates, on `concurrency` coroutines.
 */
struct ag__seg {
	struct ag_agent *agent;
	struct ag_topic *input;
	size_t first, end; /* stages [first, end) */
	const struct ag__stage *boundary; /* stages[end], or NULL for the body's segment */
	uint32_t reader; /* its index among input's readers */
	/* run time (worker) */
	struct ag__agent_rt **rts;
	size_t nrts;
};

struct ag_agent {
	struct ag_app *app;
	char *name;
	struct ag_topic *source;
	ag_agent_fn fn;
	void *userdata;
	struct ag__sink *sinks;
	size_t nsinks;
	enum ag_bad_input on_bad_input;
	struct ag_topic *dead_letter; /* <app_id>-<agent>-dead-letter, with DEAD_LETTER */
	struct ag__stage *stages; /* the pipeline, in declaration order */
	size_t nstages;
	struct ag__seg *segs; /* built by ag__app_finalize */
	size_t nsegs;
	int concurrency; /* body coroutines (default 1) */
	uint64_t failures; /* events an operator or the body failed on */
	/* /metrics */
	uint64_t sent; /* messages its coroutines produced */
	uint64_t restarts; /* the body was restarted after a failure */
	uint64_t dead_lettered;
	struct ag__hist proc_hist; /* event handed out to the next one asked for */
	struct ag__hist e2e_hist; /* the event's timestamp to its hand-out */
	uint64_t fail_window_ns; /* start of the current log rate window */
	uint32_t fail_window_logged;
};

struct ag__table_rt;

/* A windowed table's windows (ag_table_window), durations in ms. */
struct ag__window {
	int on;
	int64_t size, step, expires, grace;
	struct ag_window_opts opts;
};

struct ag_table {
	struct ag_app *app;
	char *name;
	struct ag_topic *source;
	struct ag_topic *changelog; /* resolved when the app is finalized */
	struct ag_table_opts opts;
	struct ag__window win;
	struct ag_topic *late_topic; /* <app_id>-<table>-late with late_events=topic, or NULL */
	struct ag__table_rt *rt; /* run time (worker) */
};

struct ag__timer_rt;

struct ag__timer {
	struct ag_app *app;
	char *name;
	double interval; /* seconds; with AG_TIMER_ONCE a delay */
	unsigned flags; /* AG_TIMER_ONCE, AG_TIMER_LEADER */
	ag_timer_fn fn;
	void *userdata;
	struct ag__timer_rt *rt; /* run time (worker) */
};

struct ag__kv {
	char *key;
	char *value;
};

struct ag_app {
	char *id;
	/* options */
	char *broker; /* URL, NULL/"" = embedded */
	char *datadir; /* NULL = ./<id>-data */
	double commit_interval;
	int exactly_once; /* processing_guarantee=exactly_once: transactions (txn.c) */
	enum ag_log_level loglevel;
	struct ag__kv *kafka_conf; /* librdkafka properties for every client */
	size_t nkafka_conf;
	size_t max_message_bytes;
	int standby_replicas; /* 0 or 1: keep warm copies of partitions other workers own */
	double idle_timeout; /* seconds before a quiet source stops holding windows open */
	int late_to_topic; /* late_events=topic: late events go to <app_id>-<table>-late */
	int web; /* serve the web endpoints (default 1; --no-web) */
	char *web_bind; /* NULL = 127.0.0.1 */
	int web_port; /* default 6066; 0 = a free port */
	int replication_factor; /* topics created on Kafka; 0 = min(3, brokers) */
	char *worker_id; /* group.instance.id on Kafka; NULL = derived from the data dir */
	const struct ag_record_type **models;
	size_t nmodels;
	struct ag_codec_ops *codecs; /* id AG_CODEC_CUSTOM + i */
	size_t ncodecs;
	/* declarations, in declaration order */
	struct ag_topic **topics;
	size_t ntopics;
	struct ag_topic **channels; /* in-memory channels: never on the broker (channel.c) */
	size_t nchannels;
	struct ag_agent **agents;
	size_t nagents;
	struct ag_table **tables;
	size_t ntables;
	struct ag__timer **timers;
	size_t ntimers;
	struct ag_topic *leader_topic; /* <id>-__leader, with AG_TIMER_LEADER timers */
	struct ag_topic *reply_topic; /* <id>-__reply: answers to ag_agent_ask */
	struct ag_topic *workers_topic; /* <id>-__workers: workers' web addresses (web/web.c) */
	int finalized;
	struct ag__worker *worker; /* run time, NULL outside `worker` */
};

/*
 * Resolves what declarations leave open: agents' own topics, tables' changelog topics, the
 * leader election topic.
 * Idempotent. Needs the id. Returns 0, AG_ECONFIG (message logged), -ENOMEM.
 */
int ag__app_finalize(struct ag_app *app);

/* "raw", "json", ... or a registered codec's name. Never NULL. */
const char *ag__app_codec_name(const struct ag_app *app, enum ag_codec codec);

/*
 * Checks bytes against a codec, registered ones included (ag__codec_validate for the
 * built-in ones). Returns 0, AG_EDECODE with the reason in err.
 */
int ag__app_codec_validate(const struct ag_app *app, enum ag_codec codec, struct ag_bytes data,
			   char *err, size_t errlen);

/*
 * Checks one key or value as the worker and `faustc send` do: emptiness, codec, record
 * type (decoded into rec with arena when type is set and rec is not NULL). Returns -1
 * when valid, else the reason, with a message in err.
 */
int ag__check_value(const struct ag_app *app, enum ag_codec codec,
		    const struct ag_record_type *type, struct ag_bytes data, void *rec,
		    struct ag_arena *arena, char *err, size_t errlen);

/* n bytes (aligned) from an arena, valid until it is reset; NULL when out of memory. */
void *ag__arena_alloc(struct ag_arena *arena, size_t n);

/* Record decoding's shared parts (record.c), for its JSON scanner (json_scan.c). */
void ag__record_set_default(const struct ag_field *f, void *base); /* zero, "" for strings */
bool ag__double_to_int64(double d, int64_t *out); /* integral and within int64 */
enum ag_field_type ag__field_item_type(enum ag_field_type t); /* a list's items, or t */
size_t ag__field_item_size(enum ag_field_type t); /* bytes of one scalar item of type t */

/*
 * ag_record_decode of JSON through jansson's tree only, without the scanner in front:
 * what the scanner must agree with (tests/test-jsonscan.c, the record_json_scan fuzzer).
 */
int ag__record_decode_json_tree(const struct ag_record_type *type, struct ag_bytes data, void *out,
				struct ag_arena *arena, char *err, size_t errlen);

/* The data dir (option, or ./<id>-data once finalized). Borrowed. */
const char *ag__app_datadir(const struct ag_app *app);

/* Logging: "2026-11-22T02:50:01.123Z INFO  greeter: message" to stderr. */
void ag__vlog(const struct ag_app *app, enum ag_log_level level, const char *fmt, va_list ap);
#define ag__log ag_log

/*
 * The last (up to AG__LOG_RECENT) warning and error lines, oldest first, copied into out.
 * Returns how many. Thread-safe.
 */
#define AG__LOG_RECENT 20
#define AG__LOG_RECENT_LEN 512
size_t ag__log_recent(char (*out)[AG__LOG_RECENT_LEN], size_t max);

/* Parses "debug", "info", "warn", "error". Returns 0, -EINVAL. */
int ag__log_level_parse(const char *name, enum ag_log_level *out);

/*
 * Set by the worker's early SIGINT/SIGTERM handler (before the loop runs): blocking
 * start-up steps (waiting for a broker) give up, and the loop stops as soon as it starts.
 */
extern volatile sig_atomic_t ag__stop_signal;

/* Monotonic clock in nanoseconds. */
uint64_t ag__now_ns(void);

/* Converts a librdkafka error to ours (AG_EKAFKA, -ETIMEDOUT, -ENOBUFS, ...). */
int ag__kafka_err(rd_kafka_resp_err_t err);

/* ---- broker.c: where the Kafka cluster is and how clients reach it ---- */

enum ag__broker_kind {
	AG__BROKER_EMBEDDED, /* mock cluster hosted in this process */
	AG__BROKER_MOCK, /* mock cluster of a `faustc broker` or another worker */
	AG__BROKER_KAFKA, /* a real Kafka cluster */
};

struct ag__broker {
	enum ag__broker_kind kind;
	char *bootstrap; /* "host:port,host:port" */
	struct rd_kafka_mock_cluster_s *mock; /* EMBEDDED: the hosted cluster */
	rd_kafka_t *mock_rk; /* EMBEDDED: the handle that owns it */
	char *addr_file; /* EMBEDDED: <datadir>/broker.addr we wrote */
	double wait; /* seconds ensure_topics waits for an unreachable broker; 0 = 30 */
};

/* The URL scheme of a `faustc broker`: "mock://127.0.0.1:PORT". */
#define AG__MOCK_SCHEME "mock://"
/* The scheme of a real cluster (also assumed when there is none). */
#define AG__KAFKA_SCHEME "kafka://"

/*
 * Decides which broker the app talks to, from its "broker" option:
 *  - "kafka://h:p,..." or "h:p,..." : a Kafka cluster;
 *  - "mock://h:p,..."               : the embedded broker of another process;
 *  - unset: with `host` non-zero (worker), start a mock cluster in this process and write
 *    its bootstrap list to <datadir>/broker.addr; with `host` zero (send, ...), read
 *    <datadir>/broker.addr, or fail with a message saying to start a worker or pass
 *    --broker.
 * Returns 0, AG_ENOBROKER / AG_ECONFIG with the reason in err, -ENOMEM.
 */
int ag__broker_open(struct ag__broker *b, struct ag_app *app, int host, char *err, size_t errlen);

/* Stops a hosted cluster (removing broker.addr) and frees the settings. */
void ag__broker_close(struct ag__broker *b);

/*
 * Fills a client configuration: bootstrap.servers, settings tuned for the mock when the
 * broker is embedded/mock (short fetch wait, session timeout > 3 s), then the caller's
 * `extra` settings (which may override those), then the app's "kafka.*" options. `type` is
 * the client the conf is for: consumer-only settings are left out of a producer's conf
 * (librdkafka warns about them at rd_kafka_new).
 * Returns 0, AG_ECONFIG with librdkafka's message in err.
 */
int ag__broker_client_conf(const struct ag__broker *b, const struct ag_app *app,
			   rd_kafka_type_t type, const struct ag__kv *extra, size_t nextra,
			   rd_kafka_conf_t *conf, char *err, size_t errlen);

/*
 * Makes sure every topic the app declares (internal ones included) exists with its
 * declared partition count, before any client touches it. Embedded: mock API; mock://:
 * through the broker's control topic; kafka://: the admin API. Blocking; call before the
 * loop starts. Returns 0, AG_ETOPIC (naming topic and counts in err), AG_ENOBROKER.
 */
int ag__broker_ensure_topics(struct ag__broker *b, struct ag_app *app, char *err, size_t errlen);

/*
 * `faustc broker`: hosts a mock cluster in this process, creates the app's topics (app may
 * be NULL), serves create requests from workers, prints the URL and writes it to addr_file
 * (optional), runs until SIGINT/SIGTERM. Returns the exit status.
 */
int ag__broker_serve(struct ag_app *app, const char *addr_file);

/* ---- send.c: `faustc send` ---- */

struct ag__send_args {
	const char *target; /* "topic" or "@agent" */
	const char *key; /* optional */
	const char *value; /* optional: one value */
	const char *file; /* optional: one value per line */
	const char *key_delimiter; /* optional: lines are KEY<delimiter>VALUE */
	double timeout; /* seconds to wait for a broker and for delivery (default 10) */
};

/* Sends values to a topic or an agent, validating them first. Returns the exit status. */
int ag__cmd_send(struct ag_app *app, const struct ag__send_args *args);

#endif
