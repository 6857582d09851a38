/*
 * The worker: one libuv loop that drives librdkafka's consumer and producer through their
 * queues' io-event fds, runs agents as coroutines, tracks acks and commits offsets, and
 * keeps tables (LMDB + changelog). Private to the library.
 */
#ifndef AG_WORKER_H
#define AG_WORKER_H

#include <uv.h>
#include <jansson.h>

#include "acks.h"
#include "coro.h"
#include "internal.h"
#include "store.h"
#include "watermark.h"

/* Messages the loop takes from the consumer queue per turn (libuv reads 32 per stream). */
#define AG__CONSUME_BUDGET 512
/* Events an agent handles before it yields so other agents get their turn. */
#define AG__AGENT_SLICE 64
/*
 * The loop takes messages from the consumer queue only while some agent has fewer than
 * AG__AGENT_LOW buffered; otherwise they wait in librdkafka's queue, whose prefetch is
 * bounded by queued.max.messages.kbytes, and fetching slows down by itself.
 */
#define AG__AGENT_LOW 2048
/* A partition's buffer pauses fetching at this many messages and resumes below the low mark. */
#define AG__BUF_HIGH 8192
#define AG__BUF_LOW 2048

/*
 * A fetched message as a reader holds it. A topic read by several agents gives each its own
 * ring; the copies share one message and a count of the readers that still hold it.
 */
struct ag__held {
	rd_kafka_message_t *m;
	uint32_t *refs; /* NULL with one reader */
};

/* One reader's fetched, not yet handed out messages of a partition. */
struct ag__ring {
	struct ag__held *buf;
	uint32_t cap, head, count;
};

/* Consumer-side state of one partition of a source topic. */
struct ag__tpart {
	struct ag_topic *topic;
	int32_t partition;
	int assigned;
	int ready; /* tables recovered: the agent may see its events */
	int paused; /* fetching paused by back-pressure */
	int recovering; /* table partitions still restoring */
	int revoking; /* revoked, waiting for the commit cycle */
	uint32_t nreaders; /* the topic's readers (at least 1) */
	struct ag__ring *rings; /* [nreaders] */
	struct ag__acks *acks; /* [nreaders]: offsets received and each reader's acks */
	int have_pos; /* acks hold a real position */
	int64_t committed; /* last committed position, -1 none */
	/*
	 * A boundary topic's partition: per source partition, the highest source offset of the
	 * forwarded events taken (duplicate detection) and acked (persisted with its tables).
	 */
	int64_t *fwd_taken, *fwd_acked;
	uint32_t nfwd;
	int fwd_dirty; /* fwd_acked changed since the last commit cycle */
	/* a windowed table's source: its first reader's event-time progress (watermark.c) */
	struct ag__wm *wm;
	int at_eof; /* the consumer reached the end: nothing fetched since its EOF event */
	uint64_t received; /* messages fetched (/metrics) */
	int64_t last_offset; /* of the last message fetched, -1 none */
};

enum ag__agent_state {
	AG__AGENT_NEW = 0,
	AG__AGENT_RUNNING,
	AG__AGENT_WAIT_EVENT,
	AG__AGENT_WAIT_SEND,
	AG__AGENT_RUNNABLE,
	AG__AGENT_WAIT_TIMER, /* a timer's coroutine between calls */
	AG__AGENT_WAIT_CLOCK, /* ag_sleep, or an ask's timeout */
	AG__AGENT_WAIT_FLOW, /* a forwarder ahead of the consumers of its topic */
	AG__AGENT_DONE,
};

struct ag_event {
	rd_kafka_message_t *msg;
	struct ag__tpart *tp;
	uint32_t *refs; /* shared with the other readers' copies, or NULL */
	struct ag__agent_rt *rt; /* the coroutine holding it */
	int acked;
	int replied; /* an answer to its ask went out */
	json_t *json;
	int json_tried;
	void *rec; /* decoded value record, or NULL */
	void *key_rec; /* decoded key record, or NULL */
	void *rec_mem, *key_rec_mem; /* this slot's record buffers (sized by the topic's types) */
	struct ag_bytes value; /* set by ag_event_set_value (in the arena) */
	int value_set;
	/* a forward's source position and progress (faustc-src), read once when taken */
	int32_t src_part; /* < 0: not a forward */
	int64_t src_off, src_time; /* src_time INT64_MIN: the header carries none */
	/* the forwarded position acked with the event (fwd_part < 0: not tracked) */
	int32_t fwd_part;
	int64_t fwd_off;
};

struct ag_stream {
	struct ag__agent_rt *rt;
};

/*
 * The coroutine of an agent's body or forwarder (seg set), or of a timer (timer set): all
 * are scheduled on the same run queue and park the same way while the producer queue is
 * full.
 */
struct ag__agent_rt {
	struct ag_agent *agent;
	struct ag__seg *seg; /* the part of the pipeline it runs */
	struct ag__timer_rt *timer;
	struct ag__worker *w;
	struct ag__coro *coro;
	struct ag_stream stream;
	struct ag_event *evs; /* events in hand: evs[0..nevs) */
	struct ag_event **ptrs; /* &evs[i], what ag_stream_take hands out */
	size_t nevs, cap;
	struct ag_event *cur; /* the focused event, or NULL */
	enum ag__agent_state state;
	int queued; /* on the run queue */
	struct ag__agent_rt *next; /* run queue link */
	uint32_t rr; /* next partition to look at */
	struct ag_arena *arena; /* the events' decoded strings and lists */
	uint32_t slice; /* events in the current slice */
	uint64_t events, failures;
	uint64_t handed_us; /* wall clock when the body got its events (latency), 0: none */
	uint64_t yields; /* times it gave the loop back (parked or ended a slice) */
	uv_timer_t clock; /* wakes it from ag_sleep, an ask or a take's `within` */
	int clock_open, clock_fired;
	struct ag__ask *ask; /* the ask it waits for */
	void *reply; /* the last answer (malloc) */
	size_t reply_len;
	/* watermark.c: a forwarder's progress per source partition (its boundary is windowed) */
	struct ag__wm_src *wsrc;
	int wm_due; /* the tick asks it to move its partitions' watermarks */
	struct ag__tpart *wm_last; /* the partition of the last event taken (its watermark moved) */
};

/* A timer at run time: its coroutine and the libuv timer that makes it due. */
struct ag__timer_rt {
	struct ag__agent_rt co; /* co.agent is NULL, co.timer points back here */
	struct ag__timer *timer;
	uv_timer_t handle;
	int handle_open;
	int due; /* the libuv timer fired since the last call */
	uint64_t runs, failures;
};

/* Table state of one partition. */
struct ag__tpart_table;

struct ag__worker {
	struct ag_app *app;
	uv_loop_t loop;
	struct ag__broker broker;
	struct ag__store *store;
	rd_kafka_t *consumer, *producer, *restorer;
	rd_kafka_queue_t *cq, *pq, *rq;
	int cfd[2], pfd[2], rfd[2];
	int lock_fd; /* flock on DATADIR/LOCK */
	uv_poll_t cpoll, ppoll, rpoll;
	uv_idle_t idle;
	uv_timer_t commit_timer;
	uv_signal_t sigint, sigterm;
	int handles_open;

	/* run queue of agents */
	struct ag__agent_rt *runq_head, *runq_tail;
	struct ag__agent_rt *current; /* agent running now */
	int consume_more; /* consumer budget ran out: continue next turn */
	int intake_blocked; /* every agent has enough buffered: the queue is left alone */
	int restore_more;

	/* producer: every message gets a sequence number; delivered ones are acked here */
	uint64_t next_seq;
	struct ag__acks delivered;
	int send_waiters;

	/* commit cycle */
	int cycle_active;
	int cycle_again;
	int cycle_wanted; /* start a cycle at the loop's next turn (ag__worker_cycle_wanted) */
	uint64_t cycle_seq; /* producer messages before this one must be delivered */
	int final_cycle;
	int no_commit; /* a delivery failed for good: commit nothing more */
	int flush_failed; /* at_least_once: this cycle's table changes failed (< 0): no commit */
	int cycle_quiet; /* exactly_once: the cycle waits until every coroutine is held */
	int cycle_flush_more; /* table entries still to send in this cycle (queue was full) */

	/* txn.c: exactly_once */
	char txn_id[300]; /* transactional.id */
	int txn_open; /* a transaction is begun */
	int txn_hold; /* agents and timers stop at their next safe point */
	int txn_failed; /* a delivery of the open transaction failed: it is aborted */
	uint64_t txn_seq; /* next_seq when the open transaction began */
	uint64_t txn_begin_ns;
	uint64_t txn_commits, txn_aborts, txn_fenced;
	uint32_t txn_aborts_in_row;
	uint64_t rewinds; /* aborts that sent the partitions back to their committed offsets */
	struct ag__cycle *cycle;
	struct ag__tables *tables; /* table.c's state */
	const rd_kafka_topic_t *last_rkt; /* dispatch's cache: the last message's topic */
	struct ag_topic *last_topic;

	/* lifecycle */
	int stopping; /* stop requested: agents get AG_EOF */
	int closing; /* final commit done: closing the consumer */
	int exit_status;
	int unassign_pending; /* revoke waits for a commit cycle */
	uint64_t stop_ns;
	int leader; /* assigned partition 0 of the app's leader topic */

	/* every agent coroutine (forwarders and bodies), for the loop's sweeps */
	struct ag__agent_rt **rts;
	size_t nrts;

	/* admin.c: repartition records below the committed offset are deleted (Kafka) */
	rd_kafka_queue_t *purge_q; /* answers to DeleteRecords, drained at the next purge */
	uint64_t purged_ns;

	/* flow.c: forwarders wait while too far ahead of their topics' consumers */
	rd_kafka_queue_t *aq; /* answers to committed-offset requests */
	uv_timer_t flow_timer;
	int flow_timer_open, flow_asking, flow_waiters;
	uint64_t flow_budget, flow_asked_ns, flow_waits;

	/* ag_agent_ask: requests waiting for answers on reply_partition of the reply topic */
	struct ag__ask *asks;
	char worker_id[20];
	uint64_t next_ask;
	int32_t reply_partition;

	/* watermark.c: idleness and heartbeats */
	uv_timer_t wm_timer;
	int wm_timer_open;
	uint64_t wm_heartbeats;

	/* stats */
	uint64_t events, sent, failed_deliveries, fwd_duplicates, late_events;
	uint64_t txn_dropped; /* sends skipped because their transaction is aborted anyway */
	uint64_t pauses, resumes; /* back-pressure pauses and resumes of partitions */
	uint32_t buffer_peak; /* most events ever buffered for one reader of a partition */
	uint64_t first_event_ns, last_delivery_ns;
	/* /metrics and /health (web/) */
	uint64_t rebalances, assignments;
	int rebalancing; /* partitions revoked, no assignment since */
	int brokers_down; /* librdkafka said all brokers are down; cleared by traffic */
	uint64_t down_ns; /* when brokers_down was set */
	/* error_cb: the last error logged, when, and the repeats of it not logged since */
	int last_err;
	uint64_t last_err_ns;
	uint64_t errors_repeated;
	uint64_t cycle_start_ns;
	struct ag__hist commit_hist;
	struct ag__web *web;
};

/* Runs the worker until stopped. Returns the process exit status. */
int ag__worker_run(struct ag_app *app);

/* agent.c */
int ag__agents_start(struct ag__worker *w);
void ag__agents_free(struct ag__worker *w);
/* Closes the agents' libuv handles (with the worker's other handles). */
void ag__agents_close(struct ag__worker *w);
/* A message of the reply topic (from the restore consumer): hands answers to asks. */
void ag__agents_reply(struct ag__worker *w, const rd_kafka_message_t *m);
/* Starts reading this worker's partition of the reply topic (from its end). */
int ag__agents_replies_open(struct ag__worker *w);
void ag__agent_wake(struct ag__worker *w, struct ag__agent_rt *rt);
void ag__agents_run(struct ag__worker *w);
void ag__agents_wake_all(struct ag__worker *w, enum ag__agent_state from);
int ag__agents_all_done(const struct ag__worker *w);
/*
 * exactly_once: whether every coroutine is at a safe point while w->txn_hold is set (waiting
 * for events, for a timer tick, for flow, or done): no event is half processed, so every
 * output produced belongs to an acked event.
 */
int ag__agents_quiet(const struct ag__worker *w);
/* An aborted transaction: drops the events agents hold, unacked (they are fetched again). */
void ag__agents_rewind(struct ag__worker *w);
void ag__event_release(struct ag__agent_rt *rt, int ack);
struct ag__agent_rt *ag__agent_current(void);
/*
 * The event the running agent works on (the one its last ag_stream_next returned), or
 * NULL: outside an agent, in a timer, or between events. Tables take the partition (and
 * source offset) of a write from it.
 */
const struct ag_event *ag__current_event(void);
/* Events of tp became available: wakes the coroutines that read its topic. */
void ag__tpart_wake(struct ag__worker *w, struct ag__tpart *tp);
/* worker.c: the messages tp's fullest ring holds (what back-pressure looks at). */
uint32_t ag__tpart_most(const struct ag__tpart *tp);
/*
 * agent.c: a boundary partition's forwarded positions, n of them (the source's partition
 * count), as loaded from its tables (restore) or cleared (n 0). Returns 0, -ENOMEM.
 */
int ag__fwd_set(struct ag__tpart *tp, const int64_t *acked, uint32_t n);
/* worker.c: lets go of a reader's copy of a message. */
void ag__held_release(rd_kafka_message_t *m, uint32_t *refs);
/* worker.c: resumes tp's fetching when back-pressure paused it and every ring drained. */
void ag__tpart_maybe_resume(struct ag__worker *w, struct ag__tpart *tp);
/*
 * agent.c: produces, parking the calling coroutine while the producer queue is full. hdrs
 * is taken over (also on failure). Outside a coroutine a full queue is -ENOBUFS.
 */
int ag__produce_wait(struct ag__worker *w, struct ag_topic *topic, int32_t partition,
		     const struct ag_bytes *key, const struct ag_bytes *value,
		     rd_kafka_headers_t *hdrs, int64_t timestamp);
/* Runs rt's coroutine until it yields (from the loop). */
void ag__agent_resume(struct ag__worker *w, struct ag__agent_rt *rt);
/* From inside rt's coroutine: sets its state and yields to the loop. */
void ag__agent_park(struct ag__agent_rt *rt, enum ag__agent_state state);

/* timer.c */
/* Starts every timer's coroutine and arms the timers that do not wait for leadership. */
int ag__timers_start(struct ag__worker *w);
/* Stops the schedules; idle timers end, a call in progress finishes first. */
void ag__timers_stop(struct ag__worker *w);
/* Closes the libuv timers (with the worker's other handles). */
void ag__timers_close(struct ag__worker *w);
/* Frees the run time (after the loop closed the handles). */
void ag__timers_free(struct ag__worker *w);
/* The worker gained or lost partition 0 of the leader topic. */
void ag__timers_set_leader(struct ag__worker *w, int leader);

/* Kafka murmur2 partition of a key (Java client compatible). */
int32_t ag__murmur2_partition(const void *key, size_t len, int32_t partitions);

/* worker.c: produce with a sequence number; partition < 0: murmur2 of the key. */
int ag__produce(struct ag__worker *w, struct ag_topic *topic, int32_t partition,
		const struct ag_bytes *key, const struct ag_bytes *value);
void ag__worker_kick(struct ag__worker *w);
/*
 * As ag__produce with headers (taken over when it returns >= 0, also when an aborted
 * transaction drops the record; the caller keeps them on an error; NULL: none) and a
 * timestamp (ms since the epoch; 0: now).
 */
int ag__produce_hdrs(struct ag__worker *w, struct ag_topic *topic, int32_t partition,
		     const struct ag_bytes *key, const struct ag_bytes *value,
		     rd_kafka_headers_t *hdrs, int64_t timestamp);

/* flow.c */
/* Sets up flow control for the topics forwarders write to (after the clients). */
int ag__flow_open(struct ag__worker *w);
void ag__flow_close(struct ag__worker *w);
void ag__flow_free(struct ag__worker *w);
/* A message of `bytes` was produced to t's partition (>= 0). */
void ag__flow_produced(struct ag_topic *t, int32_t partition, size_t bytes);
/* The producer's delivery report of a message. */
void ag__flow_delivered(const rd_kafka_message_t *m);
/*
 * From a forwarder's coroutine: waits while partition of t is too far ahead of its
 * consumers. Returns 0, AG_ESTOPPED.
 */
int ag__flow_wait(struct ag__agent_rt *rt, struct ag_topic *t, int32_t partition);
/* The commit timer's tick. */
void ag__flow_tick(struct ag__worker *w);
/* worker.c: starts a commit cycle now unless one runs (or the worker stops). */
void ag__worker_commit_soon(struct ag__worker *w);
/*
 * Asks for a commit cycle at the loop's next turn, from anywhere (an agent's table write
 * included): the write cache has many dirty keys (table.c).
 */
void ag__worker_cycle_wanted(struct ag__worker *w);

/* watermark.c */
/* Starts the idleness and heartbeat tick when a windowed table follows some topic. */
int ag__wm_open(struct ag__worker *w);
void ag__wm_close(struct ag__worker *w);
/* Watermark state of a partition (topic_parts_init) and of a forwarder; freed with them. */
int ag__wm_tpart_init(struct ag__tpart *tp);
void ag__wm_tpart_free(struct ag__tpart *tp);
int ag__wm_rt_init(struct ag__agent_rt *rt);
/* The partition was assigned: its channels start over (the tables' stored times come next). */
void ag__wm_assigned(struct ag__tpart *tp);
/*
 * From pull_one, for the event just taken (rt->evs[rt->nevs - 1]): a heartbeat is taken
 * into the channels and returns 1 (ack it and hand it to nobody); otherwise the event's
 * progress is recorded (first reader, and forwarders) and 0 is returned.
 */
int ag__wm_taken(struct ag__agent_rt *rt, struct ag_event *ev);
/*
 * From an agent's coroutine holding no event: moves the stream time of the windowed tables
 * on tp (all of rt's input partitions when tp is NULL) to the watermark, closing windows.
 */
void ag__wm_apply(struct ag__agent_rt *rt, struct ag__tpart *tp);
/* A forwarder's source progress for ev's partition (the faustc-src header carries it). */
int64_t ag__wm_forward_time(const struct ag__agent_rt *rt, const struct ag_event *ev);
/* The event's time in topic t's event-time clock (its windowed tables' time function). */
int64_t ag__wm_event_time(const struct ag_topic *t, const struct ag_event *ev);

/*
 * The opaque of a message nothing waits for (web/web.c's announcements): its delivery is
 * not tracked, so the commit cycle does not wait for it and its failure stops nothing.
 */
#define AG__OPAQUE_UNTRACKED ((void *)~(uintptr_t)0)

/* web/web.c: the HTTP endpoints. Open after the clients; a failure is logged, never fatal. */
void ag__web_open(struct ag__worker *w);
/* Closes the server's handles (with the worker's other handles) and removes web.addr. */
void ag__web_close(struct ag__worker *w);
/*
 * The partitions changed (after an assignment): tells the other workers through __workers;
 * once the worker stops, a tombstone takes it off their list.
 */
void ag__web_announce(struct ag__worker *w);
/* A record of __workers (from the restore consumer): another worker's address and partitions. */
void ag__web_peer(struct ag__worker *w, const rd_kafka_message_t *m);

/* window.c: logs a windowed table's late events at exit (warn) when there were any. */
void ag__window_report(const struct ag_table *t);

/* worker.c: a partition of a source topic by name, or NULL */
struct ag__tpart *ag__tpart_find(struct ag__worker *w, const char *topic, int32_t partition);
/* Drops a partition's buffered events and position: it is fetched again from its commit. */
void ag__tpart_forget(struct ag__tpart *tp);

/* table.c */
int ag__tables_open(struct ag__worker *w);
void ag__tables_close(struct ag__worker *w);
/* Starts restoring the tables of tp; sets tp->ready when nothing is to restore. */
int ag__tables_assign(struct ag__worker *w, struct ag__tpart *tp);
void ag__tables_revoke(struct ag__worker *w, struct ag__tpart *tp);
/* Starts and stops standby replicas to follow the partitions this worker now owns. */
void ag__tables_standby(struct ag__worker *w);
/*
 * Collects dirty entries into the cycle (producing changelog records). Returns 0, 1 when
 * the producer queue filled up before every entry was sent (the rest stays dirty; with
 * more = 1 a later call adds them to the same cycle), or an error.
 */
int ag__tables_cycle_begin(struct ag__worker *w, int more);
/* Writes the collected entries and changelog offsets to LMDB. */
int ag__tables_cycle_end(struct ag__worker *w);
/* The cycle's transaction was aborted: forgets the collected entries (LMDB stays). */
void ag__tables_cycle_abort(struct ag__worker *w);
/* A changelog record was delivered. */
void ag__tables_delivered(struct ag__worker *w, const rd_kafka_message_t *msg);
/* Serves the restore consumer's queue. */
void ag__tables_restore_poll(struct ag__worker *w);

#endif
