/*
 * Table run time shared by table.c (write cache, changelog, recovery) and window.c
 * (windowed tables): the cache entries of a partition, the context of one table operation,
 * and the exactness rule. Private to the library.
 *
 * Exactness: every value carries the source offset of the last event applied to it
 * (entry->off, the envelope's offset in LMDB and the changelog). An event of the table's
 * source topic at offset O writes a key only when O is newer than the key's offset, or
 * when O already wrote the key in this run (entry->live_off: an event may write a key
 * several times). So an event processed again after a crash, whose effect on the key is
 * already stored, leaves the key alone.
 */
#ifndef AG_TABLE_RT_H
#define AG_TABLE_RT_H

#include "codec.h"
#include "worker.h"

/* The key of a windowed partition's window state in the data and the changelog. */
#define AG__WINDOW_META_KEY "\0"
#define AG__WINDOW_META_KEYLEN 1
/*
 * The record of a table on a boundary topic (group_by, through) that holds, per source
 * partition, the highest source offset of the forwarded events its partition processed
 * (n x 8 bytes, big-endian). Written with the table's values, so a worker that restores
 * the partition skips exactly the forwards made again after a crash.
 */
#define AG__FWD_META_KEY "\1"
#define AG__FWD_META_KEYLEN 1
/* Window keys: start (8 bytes) then the user key. */
#define AG__WINDOW_KEY_PREFIX 8
/* The longest stored key we build (LMDB takes 511 bytes, table name and partition included). */
#define AG__TABLE_KEY_MAX 511

/* A cached key: the newest value (or a deletion), dirty until a commit cycle sends it. */
struct ag__entry {
	struct ag__entry *next;
	uint64_t hash;
	int dirty;
	int deleted;
	int64_t off; /* source offset of the last event applied, -1: none */
	int64_t mtime; /* wall-clock ms of the last write (TTL tables), -1: none */
	int64_t live_off; /* the event whose writes to it are applied in this run, -1 */
	uint8_t *val; /* the payload (msgpack), without the envelope */
	size_t vlen;
	size_t klen;
	uint8_t key[];
};

/* One partition of a table. */
struct ag__part {
	struct ag__entry **buckets;
	uint32_t nbuckets;
	uint32_t count;
	uint32_t ndirty;
	int64_t clog_high; /* next changelog offset known delivered, -1 unknown */
	int64_t clog_stored; /* what LMDB holds */
	int restoring;
	/* the changelog's positions being asked off the loop (restore_part), or NULL */
	struct ag__clog_query *query;
	int standby; /* followed as a standby replica (not owned): changelog -> LMDB */
	uint64_t standby_applied; /* records a standby wrote */
	int restore_finished; /* reached restore_end in the batch being stored */
	int64_t restore_end;
	int64_t restore_from;
	uint64_t restored;
	uint64_t restore_logged; /* records when progress was last logged */
	uint64_t restore_start_ns;
	uint64_t restore_log_ns; /* when progress was last logged */
	int64_t restore_pos; /* next changelog offset to restore (progress, /metrics) */
	int64_t batch_next; /* restore batch being stored: next changelog offset, -1: none */
	/* windowed tables (window.c) */
	int meta_loaded; /* stream_time and closed_to read from LMDB */
	int meta_dirty; /* changed since the last commit cycle */
	int closing; /* on_close callbacks in progress */
	uint32_t epoch; /* bumped by every reset: callbacks that yielded notice a revocation */
	int64_t stream_time; /* the watermark reached (never goes back), INT64_MIN: none */
	int64_t closed_to; /* windows starting at or before it are closed (durably, with meta) */
	int64_t closing_to; /* ... or being closed now: writes to them are late */
	int64_t expired_to; /* windows starting at or before it were deleted (this run) */
};

struct ag__table_rt {
	struct ag__part *parts;
	uint8_t *scratch;
	size_t scratch_cap;
	uint64_t late; /* writes to closed windows dropped */
	uint64_t late_events; /* events that had such writes (each counted once) */
	uint64_t late_sent; /* ... sent to the late topic */
	const void *late_tp; /* the last late event (its partition and offset) */
	int64_t late_off;
	uint64_t late_log_ns; /* start of the current log rate window */
	uint32_t late_logged; /* lines in it */
	uint64_t next_sweep_ns; /* TTL tables: when the next expiry sweep is due */
	int copart_logged;
	int foreign_logged; /* a second reader of the source wrote: said once */
};

/* One table operation: where it goes and which event it belongs to. */
struct ag__op {
	struct ag_table *t;
	struct ag__part *pt;
	int32_t p;
	int64_t off; /* offset of the source event being processed, -1: none (timer, other topic) */
	const struct ag_event *ev; /* the event being processed, or NULL */
};

/* A key as the store and the cache hold it. */
struct ag__found {
	int present;
	struct ag_bytes payload; /* borrowed: until the next cache or store write */
	int64_t off;
	struct ag__entry *e; /* the cache entry, or NULL */
};

/*
 * Starts an operation on key of t: the partition (the current event's, else murmur2) and
 * the source offset. Returns 0, AG_ESTOPPED (no worker), AG_ECONFIG (the event's topic is
 * not co-partitioned with the table; logged once).
 */
int ag__op_begin(struct ag_table *t, const struct ag_bytes *key, struct ag__op *op);

/* Looks a stored key up (cache, then LMDB). Returns 0 (f->present says), AG_ESTORE, AG_ETYPE. */
int ag__table_fetch(const struct ag__op *op, struct ag_bytes skey, struct ag__found *f);

/* Whether the operation's event must leave the key alone (its effect is already stored). */
int ag__table_skip(const struct ag__op *op, const struct ag__found *f);

/*
 * Writes payload (NULL: deletes) for skey as a dirty cache entry carrying the operation's
 * offset (or f's, for writes outside a source event). Returns 0, -EINVAL (key too long),
 * -ENOMEM.
 */
int ag__table_write(const struct ag__op *op, struct ag_bytes skey, const struct ag_bytes *payload,
		    const struct ag__found *f);

/* Decodes a payload as a public value. Returns 0, AG_ETYPE. */
int ag__table_value(struct ag_bytes payload, struct ag_value *out);

/* Wall-clock ms since the epoch. */
int64_t ag__wall_ms(void);

uint64_t ag__table_hash(const void *p, size_t n);
struct ag__entry *ag__cache_find(struct ag__part *pt, const void *key, size_t klen, uint64_t h);

/* window.c */

/*
 * The time of the operation's event (per the table's clock; the wall clock outside an
 * event) in *time. With advance and an event it advances the partition's stream time, closing windows
 * (on_close callbacks may yield) and deleting expired ones. Returns 0, AG_ESTORE, -ENOMEM.
 */
int ag__window_prepare(struct ag__op *op, int advance, int64_t *time);
/* Starts of the windows containing time, newest first, into starts[1024]. Returns the count. */
size_t ag__window_starts(const struct ag_table *t, int64_t time, int64_t *starts);
/* Whether the window starting at start is closed (writes to it are late). */
int ag__window_closed(const struct ag__op *op, int64_t start);
/*
 * The operation's event at time was late for the n windows starting at starts (its writes
 * to them were dropped): counts it once per event, logs it (rate-limited) and, with
 * late_events=topic, sends it unchanged to the table's late topic. Returns 0, or the send's
 * error.
 */
int ag__window_late(const struct ag__op *op, int64_t time, const int64_t *starts, size_t n);
/* Moves the stream time of (t, p) up to time, closing and deleting what it passes. */
int ag__window_advance_to(struct ag__worker *w, struct ag_table *t, int32_t p, int64_t time);
/* Builds the stored key of (start, key) into buf (AG__TABLE_KEY_MAX bytes). -EINVAL: too long. */
int ag__window_key(uint8_t *buf, int64_t start, const struct ag_bytes *key, struct ag_bytes *out);
/* Splits a stored window key. Returns 0, -EINVAL (the meta key, or not a window key). */
int ag__window_key_split(struct ag_bytes skey, int64_t *start, struct ag_bytes *key);
/* Loads the partition's window state from LMDB if not yet loaded. Returns 0, AG_ESTORE. */
int ag__window_meta_load(struct ag__worker *w, struct ag_table *t, int32_t p);
/*
 * The meta record's envelope+payload into buf (AG__WINDOW_META_MAX(wm)): stream time, closed
 * to and, with wm, the watermark's channel times. Returns its length.
 */
#define AG__WINDOW_META_MAX(nchan) (AG__TVAL_HEADER_MAX + 16 + 8 * (size_t)(nchan))
size_t ag__window_meta_encode(const struct ag__part *pt, const struct ag__wm *wm, uint8_t *buf);
/*
 * Parses a meta payload: 16 bytes, then 8 per channel time (a record written before
 * watermarks has none). times (may be NULL) points into payload, *ntimes is their count.
 * Returns 0, AG_EDECODE.
 */
int ag__window_meta_decode(struct ag_bytes payload, int64_t *stream_time, int64_t *closed_to,
			   const uint8_t **times, uint32_t *ntimes);
/* Reads a big-endian 64-bit value. */
int64_t ag__window_get64(const uint8_t *p);
/* Resets the partition's window state (assignment, revocation). */
void ag__window_part_reset(struct ag__part *pt);

#endif
