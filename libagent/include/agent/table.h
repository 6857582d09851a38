/*
 * Tables: partitioned key/value state that agents update. A table follows the partitions
 * of its source topic: the partition written is the partition of the event being
 * processed (so state is co-located with the stream), or murmur2(key) outside an agent.
 * Every partition lives in LMDB under the data dir and every change goes to the changelog
 * topic `<app_id>-<table>-changelog` (same partition), from which a worker rebuilds the
 * partition when it has no local copy. Changes are buffered per commit interval: a key
 * updated many times writes one LMDB put and one changelog record per interval.
 *
 * State is exact across crashes (docs/guarantees.md): every stored value remembers the
 * source offset of the last event applied to it, and when an event is processed again
 * after a crash its writes to keys that already hold it are not applied again (reads see
 * the stored value, so an add returns the value it already produced). Sinks and sends stay
 * at-least-once. This assumes an agent does the same writes when it sees the same event
 * again (processing is deterministic per event).
 *
 * Values are stored as msgpack; the typed accessors below read and write int64,
 * double and byte-string values. Reading a value of another type returns AG_ETYPE.
 * Tables are used from agents (and timers) on the worker's loop thread only.
 *
 * A windowed table (ag_table_window) keeps one value per key and time window; see below.
 */
#ifndef AGENT_TABLE_H
#define AGENT_TABLE_H

#include <agent/types.h>

struct ag_app;
struct ag_topic;
struct ag_table;
struct ag_event;

/* Table options. A zeroed struct (or NULL) gives default 0 / 0.0 / absent, no TTL. */
struct ag_table_opts {
	int64_t default_i64; /* returned by ag_table_get_i64 for a missing key */
	double default_f64; /* returned by ag_table_get_f64 for a missing key */
	/*
	 * Key TTL in seconds (0: none). A key not written for ttl_s seconds of wall-clock time
	 * reads as missing (so as the default), and is deleted from LMDB, with a tombstone to
	 * the changelog, by a sweep that runs with the commit cycle at most every ttl_s / 4
	 * seconds. Expiry follows the wall clock, so it is not part of the exactness guarantee.
	 * Not for windowed tables (their windows expire by stream time).
	 */
	double ttl_s;
	/*
	 * Global table (Faust's GlobalTable): every worker keeps every partition. A key lives in
	 * partition murmur2(key) whatever the event being processed; the worker that owns that
	 * partition of the source topic writes it (a write elsewhere returns -EPERM), and every
	 * other worker follows the partition's changelog into its LMDB, so reads of any key work
	 * on every worker, a little behind the owner's writes. Not for windowed tables.
	 */
	int global;
};

/*
 * Declares table `name` partitioned like `source` (its changelog has the same partition
 * count). *out (optional) is borrowed. Returns 0, -EINVAL, -EEXIST, -ENOMEM.
 */
int ag_app_table(struct ag_app *app, const char *name, struct ag_topic *source,
		 const struct ag_table_opts *opts, struct ag_table **out);

const char *ag_table_name(const struct ag_table *table);

/* Integer values. get returns the default for a missing key. Returns 0, AG_ETYPE, AG_ESTORE. */
int ag_table_get_i64(struct ag_table *table, const struct ag_bytes *key, int64_t *out);
int ag_table_set_i64(struct ag_table *table, const struct ag_bytes *key, int64_t value);
/* Adds delta and stores *out (optional) = the new value. */
int ag_table_add_i64(struct ag_table *table, const struct ag_bytes *key, int64_t delta,
		     int64_t *out);

/* Floating-point values, as above. */
int ag_table_get_f64(struct ag_table *table, const struct ag_bytes *key, double *out);
int ag_table_set_f64(struct ag_table *table, const struct ag_bytes *key, double value);
int ag_table_add_f64(struct ag_table *table, const struct ag_bytes *key, double delta, double *out);

/*
 * Byte-string values. get sets *out to a borrowed copy valid until the next call on this
 * table; returns -ENOENT for a missing key.
 */
int ag_table_get_bytes(struct ag_table *table, const struct ag_bytes *key, struct ag_bytes *out);
int ag_table_set_bytes(struct ag_table *table, const struct ag_bytes *key,
		       const struct ag_bytes *value);

/*
 * Record values (agent/record.h), stored as msgpack. get decodes into *out (type->size
 * bytes) with strings and lists in arena; returns -ENOENT for a missing key, AG_ETYPE when
 * the stored value is not such a record.
 */
struct ag_record_type;
struct ag_arena;
int ag_table_get_record(struct ag_table *table, const struct ag_bytes *key,
			const struct ag_record_type *type, void *out, struct ag_arena *arena);
int ag_table_set_record(struct ag_table *table, const struct ag_bytes *key,
			const struct ag_record_type *type, const void *rec);

/*
 * Deletes a key (a tombstone goes to the changelog); on a windowed table, the key's
 * windows that contain the current event's time. Returns 0, AG_ESTORE.
 */
int ag_table_del(struct ag_table *table, const struct ag_bytes *key);

/*
 * Every function above that takes a key also returns AG_ESTOPPED outside a running worker,
 * -EINVAL for a key too long for LMDB (about 500 bytes less the table name, 8 bytes less
 * for windowed tables), and AG_ECONFIG when called while processing an event of a topic
 * whose partition count differs from the table's (the table is not co-partitioned with
 * it: the write could land in a partition another worker owns; logged once).
 */

/* ---- values handed to callbacks ---- */

enum ag_value_type {
	AG_VALUE_I64 = 1,
	AG_VALUE_F64,
	AG_VALUE_BYTES,
	AG_VALUE_RECORD, /* bytes hold the record's msgpack: ag_record_decode(..AG_CODEC_MSGPACK..) */
};

/* A stored value; bytes are borrowed for the duration of the callback that gets it. */
struct ag_value {
	enum ag_value_type type;
	int64_t i64;
	double f64;
	struct ag_bytes bytes;
};

/* ---- windowed tables ---- */

/* A time window [start_ms, end_ms), in ms since the epoch. */
struct ag_window {
	int64_t start_ms;
	int64_t end_ms;
};

/* Where a windowed table takes an event's time from. */
enum ag_window_clock {
	AG_WINDOW_EVENT_TIME = 0, /* the Kafka timestamp of the event (Faust's default) */
	AG_WINDOW_WALL_CLOCK, /* the worker's clock when the write happens (relative_to_now) */
	AG_WINDOW_FIELD, /* time_fn(event): a record field (relative_to_field) */
};

/*
 * A time function for AG_WINDOW_FIELD: the event's time in ms since the epoch, or a
 * negative number when the event has none (its Kafka timestamp is used then). Called on
 * the loop inside the agent; ev is borrowed for the call.
 */
typedef int64_t (*ag_window_time_fn)(const struct ag_event *ev, void *userdata);

/*
 * A window callback: key and value are borrowed for the call, window points to its bounds.
 * Used for closed windows (on_close) and the iterations below. A negative return stops an
 * iteration and is returned by it; from on_close it is logged and the window still counts
 * as closed.
 */
typedef int (*ag_window_fn)(struct ag_table *table, const struct ag_bytes *key,
			    const struct ag_window *window, const struct ag_value *value,
			    void *userdata);

/*
 * Window options. Durations in seconds; the worker works in milliseconds (rounded).
 *  size_s     window length (> 0; at least 1 ms)
 *  step_s     0: tumbling windows (step = size); else hopping windows that start every
 *             step_s (0 < step <= size, size / step <= 1024): an event updates every
 *             window that contains its time
 *  expires_s  how long a window is kept after its end (0: size_s); never before it closes
 *  grace_s    how long after its end a window still takes late events (default 0)
 *  clock      where an event's time comes from; time_fn/time_userdata for AG_WINDOW_FIELD
 *  on_close   called once per key of a window when the window closes, with its final value
 */
struct ag_window_opts {
	double size_s;
	double step_s;
	double expires_s;
	double grace_s;
	enum ag_window_clock clock;
	ag_window_time_fn time_fn;
	void *time_userdata;
	ag_window_fn on_close;
	void *close_userdata;
};

/*
 * Makes a declared table windowed (Faust's table.tumbling(size, expires=...) and
 * table.hopping(size, step, expires=...)), in setup, before the worker runs. opts is
 * copied. Returns 0, -EINVAL (bad durations, AG_WINDOW_FIELD without time_fn, a table with
 * a TTL), -EEXIST (already windowed).
 *
 * Writes (set, add, del) on a windowed table go to every window that contains the current
 * event's time; the value an add returns is the newest of them (the window starting at
 * floor(time / step) * step). Reads with the plain getters read that window too (Faust's
 * .value()). Outside an event (timers) the time is the wall clock.
 *
 * Stream time is a watermark: the minimum, over the source partitions whose events reach the
 * table's partition (after a group_by, every partition of the source topic), of each one's
 * highest event time, leaving out sources idle for the "idle_timeout" option; when every
 * source is idle it goes on with the worker's clock (docs/tables.md). A window closes when
 * stream time reaches its end + grace. Then on_close gets key, window and final value once
 * per key, on the coroutine of the agent reading the table's source. Events for a closed
 * window are late: their writes to it are dropped, counted (ag_table_late_writes, and per
 * event in the stats line), logged at warn and, with the "late_events" option "topic", sent
 * to <app_id>-<table>-late. A closed window is deleted (LMDB, and
 * a tombstone to the changelog) when stream time reaches its end + max(expires, grace).
 * Closing is recorded with the commit cycle: a window whose close is durable never closes
 * again, even on another worker rebuilding from the changelog; a close that was not yet
 * committed when a worker crashed is done again (on_close is called again, with the same
 * value, so its sends are at-least-once). See docs/guarantees.md.
 */
int ag_table_window(struct ag_table *table, const struct ag_window_opts *opts);

/* Which window a windowed read means (Faust's WindowSet methods). */
enum ag_window_rel {
	AG_WINDOW_CURRENT = 0, /* the window of the current event's time: .current() */
	AG_WINDOW_NOW, /* the window of the wall clock now: .now() */
	AG_WINDOW_AT, /* the window containing time ms: table[key][ms] */
	AG_WINDOW_DELTA, /* the window of (current event's time - ms): .delta(ms) */
};

/*
 * Reads key's value in the window `rel` (with `ms`) selects; the newest window containing
 * that time for hopping tables. window (optional) receives the window's bounds. A missing
 * key gives the default (i64/f64) or -ENOENT (ag_table_window_get). Outside an event, the
 * current event's time is the wall clock. Returns 0, -ENOENT, AG_ETYPE, -EINVAL (not a
 * windowed table), AG_ESTOPPED, AG_ESTORE. ag_table_window_get's value->bytes is borrowed
 * until the next call on this table.
 */
int ag_table_window_get_i64(struct ag_table *table, const struct ag_bytes *key,
			    enum ag_window_rel rel, int64_t ms, int64_t *out,
			    struct ag_window *window);
int ag_table_window_get_f64(struct ag_table *table, const struct ag_bytes *key,
			    enum ag_window_rel rel, int64_t ms, double *out,
			    struct ag_window *window);
int ag_table_window_get(struct ag_table *table, const struct ag_bytes *key, enum ag_window_rel rel,
			int64_t ms, struct ag_value *out, struct ag_window *window);

/*
 * Calls fn for every window of key (in the key's partition: the current event's, else
 * murmur2), oldest first, closed windows not yet expired included (Faust's
 * table[key].items()). Cost: the windows stored in that partition. Returns 0, fn's negative
 * return, -EINVAL (not windowed), AG_ESTOPPED, AG_ESTORE, -ENOMEM.
 */
int ag_table_window_each(struct ag_table *table, const struct ag_bytes *key, ag_window_fn fn,
			 void *userdata);

/*
 * Calls fn for every key of the window starting at start_ms in every partition this worker
 * holds, partition by partition, keys in byte order. Returns as ag_table_window_each.
 */
int ag_table_window_keys(struct ag_table *table, int64_t start_ms, ag_window_fn fn, void *userdata);

/*
 * The newest window of a windowed table that contains time_ms. Returns 0, -EINVAL (not
 * windowed).
 */
int ag_table_window_of(const struct ag_table *table, int64_t time_ms, struct ag_window *out);

/* Writes to closed windows dropped since the worker started (late events past grace). */
uint64_t ag_table_late_writes(const struct ag_table *table);

#endif
