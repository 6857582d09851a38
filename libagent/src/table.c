/*
 * Tables: a write cache over LMDB, a changelog per table, exactness, and recovery.
 *
 * Updates land in a per-partition hash map of entries (the write cache). A commit cycle
 * sends one changelog record per dirty key and, once every record is delivered, writes the
 * same entries plus the changelog position to LMDB in one transaction; so a key updated
 * 10,000 times in an interval costs one record and one put. Reads look in the cache, then
 * in LMDB.
 *
 * Stored values (LMDB and changelog alike) are envelopes (codec.h): the msgpack payload
 * behind the source offset of the last event applied to it and, for TTL tables, the time of
 * the last write. The offset makes table state exact across crashes (see table_rt.h and
 * docs/guarantees.md): an event processed again does not apply itself twice to a key.
 *
 * When a partition is assigned, its tables are brought up to date before the agent sees an
 * event: LMDB remembers the changelog offset it is durable up to (N); the changelog's
 * watermarks say what the broker holds [low, high). N == high: nothing to do. N < high:
 * replay [max(N, low), high) with the restore consumer. N > high: the broker lost the
 * changelog (the embedded broker forgets everything when it stops): the store is the truth,
 * so every key of the partition is published again. Querying the watermarks is a blocking
 * round trip per partition on assignment (~1 ms on loopback).
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka.h"
#include "table_rt.h"

/*
 * The write cache is bounded for the whole worker, not per partition, so a table lives in
 * LMDB and not in the heap whatever its size or partition count: once more than
 * AG__CACHE_KEEP keys are cached after a commit cycle, the clean ones are dropped (reads go
 * to LMDB), and a key made dirty beyond AG__CACHE_DIRTY_MAX since the last cycle began
 * starts the next cycle early (dirty keys stay until a cycle sends them).
 */
#define AG__CACHE_KEEP 65536
#define AG__CACHE_DIRTY_MAX 65536
/* A restore logs its progress (percent done, time left) every this many seconds. */
#define AG__RESTORE_LOG_SECONDS 3
/* Changelog records restored per LMDB transaction. */
#define AG__RESTORE_BATCH 32768

/*
 * A restored record's place in the sort of its batch: the (table, partition) as a number in
 * the store's order (the table's rank by name, then the partition), the key's first 8
 * bytes big-endian (zero-padded), and the record's index in the batch (changelog order).
 */
struct restore_ix {
	uint64_t grp;
	uint64_t pfx;
	uint32_t idx;
};

/* LMDB ops collected for one transaction, with the buffers they point into. */
struct opbuf {
	struct ag__store_op *ops;
	size_t nops, capops;
	void **owned;
	size_t nowned, capowned;
};

/*
 * The commit cycle's ops live from cycle_begin to cycle_end (across delivery waits);
 * restore batches may come in between and have a buffer of their own.
 */
struct ag__tables {
	uint64_t dirtied; /* keys made dirty since the last commit cycle began */
	struct opbuf cycle;
	struct opbuf restore;
	/* the restore batch: the messages taken, their records in changelog order, and the
	 * sort of those records (ix, with tmp for the radix passes) */
	rd_kafka_message_t **msgs;
	struct ag__store_op *recs;
	struct restore_ix *ix, *tmp;
	uint32_t *trank; /* the rank of each table (w->app->tables order) by name */
};

int64_t
ag__wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t
ag__table_hash(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	return h;
}

struct ag__entry *
ag__cache_find(struct ag__part *pt, const void *key, size_t klen, uint64_t h)
{
	if (!pt->nbuckets)
		return NULL;
	for (struct ag__entry *e = pt->buckets[h & (pt->nbuckets - 1)]; e; e = e->next) {
		if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
			return e;
	}
	return NULL;
}

static int
cache_grow(struct ag__part *pt)
{
	uint32_t n = pt->nbuckets ? pt->nbuckets * 2 : 256;
	struct ag__entry **b = calloc(n, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (uint32_t i = 0; i < pt->nbuckets; i++) {
		struct ag__entry *e = pt->buckets[i];
		while (e) {
			struct ag__entry *next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(pt->buckets);
	pt->buckets = b;
	pt->nbuckets = n;
	return 0;
}

/*
 * Drops cache entries: every one, or (only_clean) those already durable, except entries an
 * event still in hand wrote (live_off >= keep_from): dropping those would make that event's
 * next write of the key look like a replay.
 */
static void
cache_clear(struct ag__part *pt, int only_clean, int64_t keep_from)
{
	for (uint32_t i = 0; i < pt->nbuckets; i++) {
		struct ag__entry **pe = &pt->buckets[i];
		while (*pe) {
			struct ag__entry *e = *pe;
			if (only_clean &&
			    (e->dirty || (e->live_off >= 0 && e->live_off >= keep_from))) {
				pe = &e->next;
				continue;
			}
			*pe = e->next;
			if (e->dirty)
				pt->ndirty--;
			free(e->val);
			free(e);
			pt->count--;
		}
	}
	if (!only_clean) {
		free(pt->buckets);
		pt->buckets = NULL;
		pt->nbuckets = 0;
	}
}

/* Stores val (NULL: deleted) for key as a dirty entry. Returns the entry or NULL (ENOMEM). */
static struct ag__entry *
cache_put(struct ag__part *pt, const void *key, size_t klen, const void *val, size_t vlen,
	  int64_t off, int64_t mtime)
{
	uint64_t h = ag__table_hash(key, klen);
	struct ag__entry *e = ag__cache_find(pt, key, klen, h);
	uint8_t *copy = NULL;
	if (val) {
		copy = malloc(vlen ? vlen : 1);
		if (!copy)
			return NULL;
		if (vlen)
			memcpy(copy, val, vlen);
	}
	if (!e) {
		if (pt->count >= pt->nbuckets && cache_grow(pt) < 0) {
			free(copy);
			return NULL;
		}
		e = calloc(1, sizeof(*e) + klen);
		if (!e) {
			free(copy);
			return NULL;
		}
		e->hash = h;
		e->klen = klen;
		e->live_off = -1;
		memcpy(e->key, key, klen);
		e->next = pt->buckets[h & (pt->nbuckets - 1)];
		pt->buckets[h & (pt->nbuckets - 1)] = e;
		pt->count++;
	}
	free(e->val);
	e->val = copy;
	e->vlen = vlen;
	e->deleted = val == NULL;
	e->off = off;
	e->mtime = mtime;
	if (!e->dirty) {
		e->dirty = 1;
		pt->ndirty++;
	}
	return e;
}

static struct ag__worker *
table_worker(struct ag_table *t)
{
	return t->app->worker;
}

int
ag__op_begin(struct ag_table *t, const struct ag_bytes *key, struct ag__op *op)
{
	if (!table_worker(t) || !t->rt)
		return AG_ESTOPPED;
	const struct ag_event *ev = ag__current_event();
	*op = (struct ag__op){.t = t, .off = -1, .ev = ev};
	if (t->opts.global) {
		/* A key's home is murmur2(key); the owner's own events write it exactly. */
		op->p = ag__murmur2_partition(key->ptr, key->len, t->changelog->partitions);
		if (ev && ev->tp->topic == t->source && ev->msg->partition == op->p &&
		    (!ev->rt || ev->rt->seg->reader == 0))
			op->off = ev->msg->offset;
	} else if (ev) {
		if (ev->tp->topic->partitions != t->changelog->partitions) {
			if (!t->rt->copart_logged++)
				ag__log(t->app, AG_LOG_ERROR,
					"table %s is written while processing %s[%d]@%lld, but %s "
					"has "
					"%d partitions and the table (like its source topic %s) "
					"%d: "
					"they are not co-partitioned, so the write could land in a "
					"partition another worker owns. Declare the table on the "
					"topic "
					"the agent reads (or group_by into one with %d partitions)",
					t->name, ev->tp->topic->name, (int)ev->msg->partition,
					(long long)ev->msg->offset, ev->tp->topic->name,
					ev->tp->topic->partitions, t->source->name,
					t->changelog->partitions, t->changelog->partitions);
			return AG_ECONFIG;
		}
		op->p = ev->msg->partition;
		/*
		 * Offsets make writes exact only from one sequence of events: the first agent
		 * reading the source (reader 0). Other readers of the topic are at their own
		 * positions; their writes count as writes from outside (at-least-once).
		 */
		const struct ag__seg *seg = ev->rt ? ev->rt->seg : NULL;
		if (ev->tp->topic == t->source && (!seg || seg->reader == 0))
			op->off = ev->msg->offset;
		else if (ev->tp->topic == t->source && !t->rt->foreign_logged++)
			ag__log(t->app, AG_LOG_WARN,
				"table %s is written by agent %s, which reads %s after agent %s: "
				"only the first reader's writes are exact across crashes, these "
				"are "
				"at-least-once (docs/guarantees.md)",
				t->name, seg->agent->name, t->source->name,
				t->source->agent ? t->source->agent->name : "?");
	} else {
		op->p = ag__murmur2_partition(key->ptr, key->len, t->changelog->partitions);
	}
	op->pt = &t->rt->parts[op->p];
	return 0;
}

/* Whether a value last written at mtime has outlived the table's TTL. */
static int
expired(const struct ag_table *t, int64_t mtime, int64_t now)
{
	return t->opts.ttl_s > 0 && mtime >= 0 && mtime + (int64_t)(t->opts.ttl_s * 1000.0) <= now;
}

int
ag__table_fetch(const struct ag__op *op, struct ag_bytes skey, struct ag__found *f)
{
	struct ag_table *t = op->t;
	int64_t now = t->opts.ttl_s > 0 ? ag__wall_ms() : 0;
	*f = (struct ag__found){.off = -1};
	struct ag__entry *e =
		ag__cache_find(op->pt, skey.ptr, skey.len, ag__table_hash(skey.ptr, skey.len));
	if (e) {
		f->e = e;
		if (expired(t, e->mtime, now))
			return 0; /* gone, offset and all */
		f->off = e->off;
		if (!e->deleted) {
			f->present = 1;
			f->payload = (struct ag_bytes){e->val, e->vlen};
		}
		return 0;
	}
	struct ag_bytes raw;
	int rc = ag__store_get(table_worker(t)->store, t->name, op->p, skey, &raw);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	struct ag__tval tv;
	if (ag__tval_parse(raw, &tv) < 0 || tv.meta) {
		ag__log(t->app, AG_LOG_ERROR,
			"table %s partition %d: a stored value of %zu bytes is not in a format "
			"this version reads (written by a newer faustc?)",
			t->name, (int)op->p, raw.len);
		return AG_ETYPE;
	}
	if (expired(t, tv.mtime, now))
		return 0;
	f->present = 1;
	f->payload = tv.payload;
	f->off = tv.offset;
	return 0;
}

int
ag__table_skip(const struct ag__op *op, const struct ag__found *f)
{
	if (op->off < 0)
		return 0; /* a timer or another topic: always applied */
	if (f->e && f->e->live_off == op->off)
		return 0; /* this event wrote it already in this run */
	return op->off <= f->off;
}

int
ag__table_write(const struct ag__op *op, struct ag_bytes skey, const struct ag_bytes *payload,
		const struct ag__found *f)
{
	struct ag_table *t = op->t;
	if (skey.len + strlen(t->name) + 5 > AG__TABLE_KEY_MAX)
		return -EINVAL;
	/* Outside a source event the value keeps the offset of the events it already holds. */
	int64_t off = op->off >= 0 ? op->off : f->off;
	int64_t mtime = t->opts.ttl_s > 0 ? ag__wall_ms() : -1;
	uint32_t dirty = op->pt->ndirty;
	struct ag__entry *e = cache_put(op->pt, skey.ptr, skey.len, payload ? payload->ptr : NULL,
					payload ? payload->len : 0, off, mtime);
	if (!e)
		return -ENOMEM;
	struct ag__worker *w = table_worker(t);
	if (op->pt->ndirty > dirty && w && ++w->tables->dirtied == AG__CACHE_DIRTY_MAX)
		ag__worker_cycle_wanted(w);
	if (op->off >= 0)
		e->live_off = op->off;
	return 0;
}

int
ag__table_value(struct ag_bytes payload, struct ag_value *out)
{
	struct ag__val v;
	if (ag__val_decode(payload, &v) == 0) {
		*out = (struct ag_value){.bytes = v.bytes};
		out->type = v.type == AG__VAL_I64   ? AG_VALUE_I64
			    : v.type == AG__VAL_F64 ? AG_VALUE_F64
						    : AG_VALUE_BYTES;
		out->i64 = v.i64;
		out->f64 = v.f64;
		return 0;
	}
	const uint8_t *p = payload.ptr;
	/* Records are msgpack maps (fixmap, map16, map32). */
	if (payload.len && ((p[0] & 0xf0) == 0x80 || p[0] == 0xde || p[0] == 0xdf)) {
		*out = (struct ag_value){.type = AG_VALUE_RECORD, .bytes = payload};
		return 0;
	}
	return AG_ETYPE;
}

/* ---- one update, on a plain key or on every window of a windowed one ---- */

enum upd_kind {
	UPD_SET,
	UPD_ADD,
	UPD_DEL,
};

struct upd {
	enum upd_kind kind;
	struct ag_bytes payload; /* SET */
	struct ag__val delta; /* ADD: I64 or F64 */
	struct ag__val result; /* ADD: the value of the first key updated */
};

/* The number stored in f as delta->type, or the table's default. */
static int
num_of(const struct ag_table *t, const struct ag__found *f, enum ag__val_type type,
       struct ag__val *out)
{
	if (!f->present) {
		*out = (struct ag__val){
			.type = type, .i64 = t->opts.default_i64, .f64 = t->opts.default_f64};
		return 0;
	}
	if (ag__val_decode(f->payload, out) < 0)
		return AG_ETYPE;
	if (type == AG__VAL_F64 && out->type == AG__VAL_I64)
		*out = (struct ag__val){.type = AG__VAL_F64, .f64 = (double)out->i64};
	return out->type == type ? 0 : AG_ETYPE;
}

/* Applies u to one stored key; readonly: only reads (a closed window). */
static int
apply_one(struct ag__op *op, struct ag_bytes skey, struct upd *u, int first, int readonly)
{
	struct ag__found f;
	int rc = ag__table_fetch(op, skey, &f);
	if (rc < 0)
		return rc;
	int skip = readonly || ag__table_skip(op, &f);
	if (u->kind != UPD_ADD) {
		if (skip)
			return 0;
		return ag__table_write(op, skey, u->kind == UPD_DEL ? NULL : &u->payload, &f);
	}
	struct ag__val cur;
	if ((rc = num_of(op->t, &f, u->delta.type, &cur)) < 0)
		return rc;
	if (!skip) {
		if (u->delta.type == AG__VAL_I64)
			cur.i64 += u->delta.i64;
		else
			cur.f64 += u->delta.f64;
		uint8_t buf[16];
		int n = ag__val_encode(&cur, buf, sizeof(buf));
		if (n < 0)
			return n;
		if ((rc = ag__table_write(op, skey, &(struct ag_bytes){buf, (size_t)n}, &f)) < 0)
			return rc;
	}
	if (first)
		u->result = cur;
	return 0;
}

static int
update(struct ag_table *t, const struct ag_bytes *key, struct upd *u)
{
	struct ag__op op;
	int rc = ag__op_begin(t, key, &op);
	if (rc < 0)
		return rc;
	if (t->opts.global && !(t->source->parts && t->source->parts[op.p].assigned &&
				!t->source->parts[op.p].revoking))
		return -EPERM; /* another worker owns the key's partition: read-only here */
	if (!t->win.on)
		return apply_one(&op, *key, u, 1, 0);
	int64_t time, starts[1024];
	if ((rc = ag__window_prepare(&op, 1, &time)) < 0)
		return rc;
	size_t n = ag__window_starts(t, time, starts), nlate = 0, first_late = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t buf[AG__TABLE_KEY_MAX];
		struct ag_bytes skey;
		if ((rc = ag__window_key(buf, starts[i], key, &skey)) < 0)
			return rc;
		int late = ag__window_closed(&op, starts[i]);
		if (late && !nlate++)
			first_late = i;
		t->rt->late += (uint64_t)late;
		if ((rc = apply_one(&op, skey, u, i == 0, late)) < 0)
			return rc;
	}
	/* Closed windows are a suffix of starts (newest first): the event missed those. */
	return nlate ? ag__window_late(&op, time, starts + first_late, nlate) : 0;
}

/* Looks key up for a read: the key, or the window of the table's time. */
static int
lookup(struct ag_table *t, const struct ag_bytes *key, struct ag_bytes *out)
{
	struct ag__op op;
	int rc = ag__op_begin(t, key, &op);
	if (rc < 0)
		return rc;
	struct ag__found f;
	uint8_t buf[AG__TABLE_KEY_MAX];
	struct ag_bytes skey = *key;
	if (t->win.on) {
		int64_t time, starts[1024];
		if ((rc = ag__window_prepare(&op, 0, &time)) < 0)
			return rc;
		ag__window_starts(t, time, starts);
		if ((rc = ag__window_key(buf, starts[0], key, &skey)) < 0)
			return -ENOENT;
	}
	if ((rc = ag__table_fetch(&op, skey, &f)) < 0)
		return rc;
	if (!f.present)
		return -ENOENT;
	*out = f.payload;
	return 0;
}

static int
get_num(struct ag_table *t, const struct ag_bytes *key, enum ag__val_type type, struct ag__val *out)
{
	struct ag_bytes raw;
	int rc = lookup(t, key, &raw);
	struct ag__found f = {.present = rc == 0, .payload = raw};
	if (rc < 0 && rc != -ENOENT)
		return rc;
	return num_of(t, &f, type, out);
}

static int
put_val(struct ag_table *t, const struct ag_bytes *key, const struct ag__val *v)
{
	uint8_t small[64];
	size_t need = ag__val_encoded_size(v);
	if (need == 0)
		return v->type == AG__VAL_BYTES ? -EMSGSIZE : -EINVAL;
	uint8_t *buf = need <= sizeof(small) ? small : malloc(need);
	if (!buf)
		return -ENOMEM;
	int n = ag__val_encode(v, buf, need);
	int rc = n;
	if (n >= 0) {
		struct upd u = {.kind = UPD_SET, .payload = {buf, (size_t)n}};
		rc = update(t, key, &u);
	}
	if (buf != small)
		free(buf);
	return rc;
}

static int
add_num(struct ag_table *t, const struct ag_bytes *key, const struct ag__val *delta,
	struct ag__val *sum)
{
	struct upd u = {.kind = UPD_ADD, .delta = *delta};
	int rc = update(t, key, &u);
	if (rc == 0)
		*sum = u.result;
	return rc;
}

AG_EXPORT int
ag_table_get_i64(struct ag_table *t, const struct ag_bytes *key, int64_t *out)
{
	struct ag__val v;
	int rc = get_num(t, key, AG__VAL_I64, &v);
	if (rc == 0)
		*out = v.i64;
	return rc;
}

AG_EXPORT int
ag_table_set_i64(struct ag_table *t, const struct ag_bytes *key, int64_t value)
{
	return put_val(t, key, &(struct ag__val){.type = AG__VAL_I64, .i64 = value});
}

AG_EXPORT int
ag_table_add_i64(struct ag_table *t, const struct ag_bytes *key, int64_t delta, int64_t *out)
{
	struct ag__val sum;
	int rc = add_num(t, key, &(struct ag__val){.type = AG__VAL_I64, .i64 = delta}, &sum);
	if (rc == 0 && out)
		*out = sum.i64;
	return rc;
}

AG_EXPORT int
ag_table_get_f64(struct ag_table *t, const struct ag_bytes *key, double *out)
{
	struct ag__val v;
	int rc = get_num(t, key, AG__VAL_F64, &v);
	if (rc == 0)
		*out = v.f64;
	return rc;
}

AG_EXPORT int
ag_table_set_f64(struct ag_table *t, const struct ag_bytes *key, double value)
{
	return put_val(t, key, &(struct ag__val){.type = AG__VAL_F64, .f64 = value});
}

AG_EXPORT int
ag_table_add_f64(struct ag_table *t, const struct ag_bytes *key, double delta, double *out)
{
	struct ag__val sum;
	int rc = add_num(t, key, &(struct ag__val){.type = AG__VAL_F64, .f64 = delta}, &sum);
	if (rc == 0 && out)
		*out = sum.f64;
	return rc;
}

AG_EXPORT int
ag_table_get_bytes(struct ag_table *t, const struct ag_bytes *key, struct ag_bytes *out)
{
	struct ag_bytes raw;
	struct ag__val v;
	int rc = lookup(t, key, &raw);
	if (rc < 0)
		return rc;
	if (ag__val_decode(raw, &v) < 0 || v.type != AG__VAL_BYTES)
		return AG_ETYPE;
	if (v.bytes.len > t->rt->scratch_cap) {
		uint8_t *s = realloc(t->rt->scratch, v.bytes.len);
		if (!s)
			return -ENOMEM;
		t->rt->scratch = s;
		t->rt->scratch_cap = v.bytes.len;
	}
	if (v.bytes.len)
		memcpy(t->rt->scratch, v.bytes.ptr, v.bytes.len);
	*out = (struct ag_bytes){t->rt->scratch, v.bytes.len};
	return 0;
}

AG_EXPORT int
ag_table_set_bytes(struct ag_table *t, const struct ag_bytes *key, const struct ag_bytes *value)
{
	return put_val(t, key, &(struct ag__val){.type = AG__VAL_BYTES, .bytes = *value});
}

AG_EXPORT int
ag_table_get_record(struct ag_table *t, const struct ag_bytes *key,
		    const struct ag_record_type *type, void *out, struct ag_arena *arena)
{
	struct ag_bytes raw;
	int rc = lookup(t, key, &raw);
	if (rc < 0)
		return rc;
	char why[256];
	rc = ag_record_decode(type, AG_CODEC_MSGPACK, raw, out, arena, why, sizeof(why));
	if (rc == -ENOMEM)
		return rc;
	return rc < 0 ? AG_ETYPE : 0;
}

AG_EXPORT int
ag_table_set_record(struct ag_table *t, const struct ag_bytes *key,
		    const struct ag_record_type *type, const void *rec)
{
	if (!table_worker(t) || !t->rt)
		return AG_ESTOPPED;
	struct ag_buf buf = {0};
	int rc = ag_record_encode(type, AG_CODEC_MSGPACK, rec, 0, &buf);
	if (rc == 0) {
		struct upd u = {.kind = UPD_SET, .payload = {buf.ptr, buf.len}};
		rc = update(t, key, &u);
	}
	free(buf.ptr);
	return rc;
}

AG_EXPORT int
ag_table_del(struct ag_table *t, const struct ag_bytes *key)
{
	struct upd u = {.kind = UPD_DEL};
	return update(t, key, &u);
}

/* ---- worker hooks ---- */

int
ag__tables_open(struct ag__worker *w)
{
	w->tables = calloc(1, sizeof(*w->tables));
	if (!w->tables)
		return -ENOMEM;
	for (size_t i = 0; i < w->app->ntables; i++) {
		struct ag_table *t = w->app->tables[i];
		t->rt = calloc(1, sizeof(*t->rt));
		if (!t->rt)
			return -ENOMEM;
		t->rt->parts = calloc((size_t)t->changelog->partitions, sizeof(struct ag__part));
		if (!t->rt->parts)
			return -ENOMEM;
		for (int p = 0; p < t->changelog->partitions; p++) {
			t->rt->parts[p].clog_high = -1;
			t->rt->parts[p].clog_stored = -1;
			t->rt->parts[p].batch_next = -1;
			ag__window_part_reset(&t->rt->parts[p]);
		}
	}
	return 0;
}

static void
cycle_ops_free(struct opbuf *ts)
{
	for (size_t i = 0; i < ts->nowned; i++)
		free(ts->owned[i]);
	ts->nowned = 0;
	ts->nops = 0;
}

void
ag__tables_close(struct ag__worker *w)
{
	for (size_t i = 0; i < w->app->ntables; i++) {
		struct ag_table *t = w->app->tables[i];
		if (!t->rt)
			continue;
		for (int p = 0; p < t->changelog->partitions; p++)
			cache_clear(&t->rt->parts[p], 0, 0);
		free(t->rt->parts);
		free(t->rt->scratch);
		free(t->rt);
		t->rt = NULL;
	}
	if (w->tables) {
		struct opbuf *bufs[] = {&w->tables->cycle, &w->tables->restore};
		for (size_t i = 0; i < AG__ARRAY_SIZE(bufs); i++) {
			cycle_ops_free(bufs[i]);
			free(bufs[i]->ops);
			free(bufs[i]->owned);
		}
		free(w->tables->msgs);
		free(w->tables->recs);
		free(w->tables->ix);
		free(w->tables->tmp);
		free(w->tables->trank);
		free(w->tables);
		w->tables = NULL;
	}
}

static int
push_op(struct opbuf *ts, const struct ag__store_op *op, void *owned)
{
	if (ts->nops == ts->capops) {
		size_t cap = ts->capops ? ts->capops * 2 : 256;
		struct ag__store_op *ops = realloc(ts->ops, cap * sizeof(*ops));
		if (!ops)
			return -ENOMEM;
		ts->ops = ops;
		ts->capops = cap;
	}
	if (owned) {
		if (ts->nowned == ts->capowned) {
			size_t cap = ts->capowned ? ts->capowned * 2 : 256;
			void **o = realloc(ts->owned, cap * sizeof(*o));
			if (!o)
				return -ENOMEM;
			ts->owned = o;
			ts->capowned = cap;
		}
		ts->owned[ts->nowned++] = owned;
	}
	ts->ops[ts->nops++] = *op;
	return 0;
}

/* Whether this worker holds partition p of t's source (its tables are its to change). */
static int
part_owned(const struct ag_table *t, int32_t p)
{
	const struct ag__tpart *tp = t->source->parts ? &t->source->parts[p] : NULL;
	return tp && tp->assigned && !tp->revoking && !tp->recovering;
}

struct sweep {
	struct ag_table *t;
	struct ag__part *pt;
	int64_t now;
	uint64_t n;
};

static int
sweep_one(int32_t part, struct ag_bytes key, struct ag_bytes val, void *userdata)
{
	struct sweep *s = userdata;
	struct ag__tval tv;
	if (ag__tval_parse(val, &tv) < 0 || !expired(s->t, tv.mtime, s->now))
		return 0;
	if (ag__cache_find(s->pt, key.ptr, key.len, ag__table_hash(key.ptr, key.len)))
		return 0; /* the cache has a newer word on it: looked at below */
	if (!cache_put(s->pt, key.ptr, key.len, NULL, 0, -1, -1))
		return -ENOMEM;
	s->n++;
	return 0;
}

/*
 * TTL tables: deletes the keys of owned partitions not written for ttl_s (tombstones go out
 * with this cycle). Runs at most every ttl_s / 4 (and at least 1 s apart): it walks every
 * key of the partition in LMDB.
 */
static int
ttl_sweep(struct ag__worker *w, struct ag_table *t)
{
	uint64_t now_ns = ag__now_ns();
	if (t->opts.ttl_s <= 0 || now_ns < t->rt->next_sweep_ns)
		return 0;
	double every = t->opts.ttl_s / 4 > 1.0 ? t->opts.ttl_s / 4 : 1.0;
	t->rt->next_sweep_ns = now_ns + (uint64_t)(every * 1e9);
	struct sweep s = {.t = t, .now = ag__wall_ms()};
	for (int p = 0; p < t->changelog->partitions; p++) {
		if (!part_owned(t, p))
			continue;
		struct ag__part *pt = &t->rt->parts[p];
		s.pt = pt;
		for (uint32_t b = 0; b < pt->nbuckets; b++) {
			for (struct ag__entry *e = pt->buckets[b]; e; e = e->next) {
				if (e->deleted || !expired(t, e->mtime, s.now))
					continue;
				if (!cache_put(pt, e->key, e->klen, NULL, 0, -1, -1))
					return -ENOMEM;
				s.n++;
			}
		}
		int rc = ag__store_iter(w->store, t->name, p, sweep_one, &s);
		if (rc < 0)
			return rc;
	}
	if (s.n)
		ag__log(w->app, AG_LOG_DEBUG, "table %s: %llu keys expired (ttl %.3f s)", t->name,
			(unsigned long long)s.n, t->opts.ttl_s);
	return 0;
}

/* Produces one record to t's changelog and queues the same for LMDB. */
static int
flush_record(struct ag__worker *w, struct ag_table *t, int32_t p, struct ag_bytes key,
	     const struct ag__tval *tv, int deleted)
{
	struct opbuf *ts = &w->tables->cycle;
	uint8_t *copy = malloc(key.len + AG__TVAL_HEADER_MAX + tv->payload.len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, key.ptr, key.len);
	uint8_t *val = copy + key.len;
	size_t vlen = ag__tval_header(tv, val);
	if (tv->payload.len)
		memcpy(val + vlen, tv->payload.ptr, tv->payload.len);
	vlen += tv->payload.len;
	struct ag_bytes k = {copy, key.len}, v = {val, vlen};
	int rc = ag__produce(w, t->changelog, p, &k, deleted ? NULL : &v);
	if (rc < 0) {
		free(copy);
		return rc;
	}
	struct ag__store_op op = {
		.kind = deleted ? AG__STORE_DEL : AG__STORE_PUT,
		.table = t->name,
		.part = p,
		.key = k,
		.val = v,
	};
	if ((rc = push_op(ts, &op, copy)) < 0) {
		free(copy);
		return rc;
	}
	return 0;
}

/* Queues the forwarded positions of t's source partition p (a boundary topic's). */
static int
flush_fwd(struct ag__worker *w, struct ag_table *t, int32_t p)
{
	struct ag__tpart *tp = t->source->parts ? &t->source->parts[p] : NULL;
	if (!tp || !tp->fwd_dirty || !tp->assigned || !tp->nfwd)
		return 0;
	uint8_t *buf = malloc(AG__TVAL_HEADER_MAX + 8 * (size_t)tp->nfwd);
	if (!buf)
		return -ENOMEM;
	struct ag__tval tv = {.offset = -1, .mtime = -1, .meta = 1};
	size_t n = ag__tval_header(&tv, buf);
	for (uint32_t i = 0; i < tp->nfwd; i++) {
		uint64_t v = (uint64_t)tp->fwd_acked[i];
		for (int b = 0; b < 8; b++)
			buf[n++] = (uint8_t)(v >> (56 - 8 * b));
	}
	ag__tval_parse((struct ag_bytes){buf, n}, &tv);
	int rc = flush_record(w, t, p, (struct ag_bytes){AG__FWD_META_KEY, AG__FWD_META_KEYLEN},
			      &tv, 0);
	free(buf);
	return rc;
}

/* Reads the forwarded positions of tp back from the first table that follows its topic. */
static int
load_fwd(struct ag__worker *w, struct ag__tpart *tp)
{
	if (!tp->topic->flow)
		return 0;
	for (size_t i = 0; i < w->app->ntables; i++) {
		struct ag_table *t = w->app->tables[i];
		if (t->source != tp->topic)
			continue;
		struct ag_bytes raw;
		int rc = ag__store_get(w->store, t->name, tp->partition,
				       (struct ag_bytes){AG__FWD_META_KEY, AG__FWD_META_KEYLEN},
				       &raw);
		if (rc == -ENOENT)
			return ag__fwd_set(tp, NULL, 0);
		struct ag__tval tv;
		if (rc < 0 || ag__tval_parse(raw, &tv) < 0 || !tv.meta || tv.payload.len % 8 ||
		    tv.payload.len / 8 > 1000000)
			return rc < 0 ? rc : AG_ESTORE;
		uint32_t n = (uint32_t)(tv.payload.len / 8);
		int64_t *acked = malloc((n ? n : 1) * sizeof(*acked));
		if (!acked)
			return -ENOMEM;
		const uint8_t *q = tv.payload.ptr;
		for (uint32_t k = 0; k < n; k++) {
			uint64_t v = 0;
			for (int b = 0; b < 8; b++)
				v = v << 8 | q[k * 8 + (uint32_t)b];
			acked[k] = (int64_t)v;
		}
		rc = ag__fwd_set(tp, acked, n);
		free(acked);
		return rc;
	}
	return ag__fwd_set(tp, NULL, 0);
}

/*
 * Queues the window state of windowed (t, p) when it changed: stream time, closed-to and
 * the watermark's channel times. It goes after the partition's values: once it is in the
 * changelog, so is every window value it depends on (one partition keeps its order).
 */
static int
flush_window_state(struct ag__worker *w, struct ag_table *t, int32_t p)
{
	struct ag__part *pt = &t->rt->parts[p];
	const struct ag__tpart *tp = t->source->parts ? &t->source->parts[p] : NULL;
	/*
	 * A revoked partition's last cycle stores its channel times too: they go with the
	 * offsets it commits, and the next owner has no other way to learn them.
	 */
	const struct ag__wm *wm = tp && tp->wm && tp->assigned ? tp->wm : NULL;
	if (!t->win.on || (!pt->meta_dirty && !(wm && wm->dirty)))
		return 0;
	int rc = ag__window_meta_load(w, t, p); /* never write over what was not read */
	if (rc < 0)
		return rc;
	uint8_t small[AG__WINDOW_META_MAX(16)];
	size_t cap = AG__WINDOW_META_MAX(wm ? wm->nchan : 0);
	uint8_t *buf = cap <= sizeof(small) ? small : malloc(cap);
	if (!buf)
		return -ENOMEM;
	size_t n = ag__window_meta_encode(pt, wm, buf);
	struct ag__tval tv;
	ag__tval_parse((struct ag_bytes){buf, n}, &tv);
	rc = flush_record(w, t, p, (struct ag_bytes){AG__WINDOW_META_KEY, AG__WINDOW_META_KEYLEN},
			  &tv, 0);
	if (buf != small)
		free(buf);
	if (rc == 0)
		pt->meta_dirty = 0;
	return rc;
}

int
ag__tables_cycle_begin(struct ag__worker *w, int more)
{
	struct opbuf *ts = &w->tables->cycle;
	int rc = 0;
	if (!more) {
		cycle_ops_free(ts);
		w->tables->dirtied = 0;
	}
	for (size_t i = 0; i < w->app->ntables; i++) {
		struct ag_table *t = w->app->tables[i];
		if (!more && (rc = ttl_sweep(w, t)) < 0)
			ag__log(w->app, AG_LOG_WARN, "table %s: expiring keys failed: %s", t->name,
				ag_strerror(rc));
		for (int p = 0; p < t->changelog->partitions; p++) {
			struct ag__part *pt = &t->rt->parts[p];
			for (uint32_t b = 0; pt->ndirty && b < pt->nbuckets; b++) {
				for (struct ag__entry *e = pt->buckets[b]; e; e = e->next) {
					if (!e->dirty)
						continue;
					struct ag__tval tv = {.offset = e->off,
							      .mtime = e->mtime,
							      .payload = {e->val, e->vlen}};
					rc = flush_record(w, t, p,
							  (struct ag_bytes){e->key, e->klen}, &tv,
							  e->deleted);
					if (rc < 0)
						goto out; /* stays dirty: cycle_check sends it */
					e->dirty = 0;
					pt->ndirty--;
				}
			}
			/*
			 * The window state goes last: once it is in the changelog, so is every
			 * window value it depends on (one partition keeps its order).
			 */
			if ((rc = flush_window_state(w, t, p)) < 0)
				goto out;
			if ((rc = flush_fwd(w, t, p)) < 0)
				goto out;
		}
	}
out:
	if (rc == 0) {
		for (size_t i = 0; i < w->app->ntopics; i++) {
			struct ag_topic *t = w->app->topics[i];
			for (int q = 0; t->parts && q < t->partitions; q++) {
				t->parts[q].fwd_dirty = 0;
				if (t->parts[q].wm)
					t->parts[q].wm->dirty = 0;
			}
		}
	}
	return rc == -ENOBUFS ? 1 : rc;
}

/* After a cycle stored its changes: drops the clean keys when the cache is over its bound. */
static void
cache_trim(struct ag__worker *w)
{
	uint64_t cached = 0;
	for (size_t i = 0; i < w->app->ntables; i++) {
		struct ag_table *t = w->app->tables[i];
		for (int p = 0; p < t->changelog->partitions; p++)
			cached += t->rt->parts[p].count;
	}
	if (cached <= AG__CACHE_KEEP)
		return;
	for (size_t i = 0; i < w->app->ntables; i++) {
		struct ag_table *t = w->app->tables[i];
		for (int p = 0; p < t->changelog->partitions; p++) {
			struct ag__part *pt = &t->rt->parts[p];
			if (!pt->count)
				continue;
			const struct ag__tpart *tp = t->source->parts ? &t->source->parts[p] : NULL;
			/* Events in hand of any reader are at or after its position. */
			int64_t keep_from = INT64_MAX;
			for (uint32_t r = 0; tp && tp->have_pos && r < tp->nreaders; r++) {
				int64_t pos = ag__acks_committable(&tp->acks[r]);
				if (pos < keep_from)
					keep_from = pos;
			}
			cache_clear(pt, 1, keep_from);
		}
	}
}

int
ag__tables_cycle_end(struct ag__worker *w)
{
	struct opbuf *ts = &w->tables->cycle;
	int rc = 0;
	for (size_t i = 0; i < w->app->ntables; i++) {
		struct ag_table *t = w->app->tables[i];
		for (int p = 0; p < t->changelog->partitions; p++) {
			struct ag__part *pt = &t->rt->parts[p];
			if (pt->clog_high < 0 || pt->clog_high == pt->clog_stored)
				continue;
			struct ag__store_op op = {.kind = AG__STORE_OFFSET,
						  .table = t->name,
						  .part = p,
						  .offset = pt->clog_high};
			if ((rc = push_op(ts, &op, NULL)) < 0)
				return rc;
		}
	}
	if (ts->nops)
		rc = ag__store_write(w->store, ts->ops, ts->nops);
	if (rc == 0) {
		for (size_t i = 0; i < ts->nops; i++) {
			const struct ag__store_op *op = &ts->ops[i];
			if (op->kind == AG__STORE_OFFSET) {
				struct ag_table *t = NULL;
				for (size_t j = 0; j < w->app->ntables && !t; j++)
					if (w->app->tables[j]->name == op->table)
						t = w->app->tables[j];
				if (t)
					t->rt->parts[op->part].clog_stored = op->offset;
			}
		}
		cache_trim(w);
	}
	cycle_ops_free(ts);
	return rc;
}

void
ag__tables_cycle_abort(struct ag__worker *w)
{
	cycle_ops_free(&w->tables->cycle);
}

void
ag__tables_delivered(struct ag__worker *w, const rd_kafka_message_t *m)
{
	for (size_t i = 0; i < w->app->ntables; i++) {
		struct ag_table *t = w->app->tables[i];
		if (t->changelog->rkt != m->rkt || !t->rt)
			continue;
		struct ag__part *pt = &t->rt->parts[m->partition];
		if (m->offset + 1 > pt->clog_high)
			pt->clog_high = m->offset + 1;
		return;
	}
}

/* ---- recovery ---- */

struct republish {
	struct ag__worker *w;
	struct ag_table *t;
	uint64_t n;
	struct opbuf ops; /* LMDB rewrites (offsets dropped), applied after the walk */
};

/*
 * Publishes a stored value again. A broker that lost the changelog lost the source topic's
 * records too (the embedded broker forgets everything), so the source offsets the values
 * carry mean nothing any more: they are dropped, here and in LMDB, or new events (numbered
 * from 0 again) would look like replays.
 */
static int
republish_one(int32_t part, struct ag_bytes key, struct ag_bytes val, void *userdata)
{
	struct republish *r = userdata;
	struct ag__tval tv;
	if (key.len == AG__FWD_META_KEYLEN && memcmp(key.ptr, AG__FWD_META_KEY, key.len) == 0) {
		/* Forwarded positions name offsets of a source topic that is gone too. */
		struct ag__store_op op = {
			.kind = AG__STORE_DEL, .table = r->t->name, .part = part, .key = key};
		uint8_t *copy = malloc(key.len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, key.ptr, key.len);
		op.key = (struct ag_bytes){copy, key.len};
		int rc = push_op(&r->ops, &op, copy);
		if (rc < 0)
			free(copy);
		return rc;
	}
	if (ag__tval_parse(val, &tv) == 0 && tv.offset >= 0) {
		uint8_t *copy = malloc(key.len + AG__TVAL_HEADER_MAX + tv.payload.len + 1);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, key.ptr, key.len);
		tv.offset = -1;
		size_t n = ag__tval_header(&tv, copy + key.len);
		if (tv.payload.len)
			memcpy(copy + key.len + n, tv.payload.ptr, tv.payload.len);
		struct ag__store_op op = {.kind = AG__STORE_PUT,
					  .table = r->t->name,
					  .part = part,
					  .key = {copy, key.len},
					  .val = {copy + key.len, n + tv.payload.len}};
		int rc = push_op(&r->ops, &op, copy);
		if (rc < 0) {
			free(copy);
			return rc;
		}
		key = op.key;
		val = op.val;
	}
	for (;;) {
		int rc = ag__produce(r->w, r->t->changelog, part, &key, &val);
		if (rc != -ENOBUFS) {
			r->n += rc == 0;
			return rc;
		}
		rd_kafka_poll(r->w->producer, 100);
	}
}

static void
tpart_recovered(struct ag__worker *w, struct ag__tpart *tp)
{
	if (--tp->recovering > 0)
		return;
	int rc = load_fwd(w, tp);
	if (rc < 0) {
		ag__log(w->app, AG_LOG_ERROR,
			"%s[%d]: the forwarded positions stored with its tables cannot be read "
			"(%s); "
			"the worker stops rather than count forwards twice",
			tp->topic->name, (int)tp->partition, ag_strerror(rc));
		w->exit_status = 1;
		ag_app_stop(w->app);
		return;
	}
	/*
	 * The stored channel times go into the watermark now, not at the first window
	 * operation: when every source is idle, stream time goes on with the clock from the
	 * highest time reached, and a restarted worker that takes no event must know it.
	 */
	for (size_t i = 0; tp->wm && i < w->app->ntables; i++) {
		struct ag_table *t = w->app->tables[i];
		if (t->source != tp->topic || !t->win.on || !t->rt)
			continue;
		if ((rc = ag__window_meta_load(w, t, tp->partition)) < 0)
			ag__log(w->app, AG_LOG_ERROR,
				"table %s partition %d: its window state cannot be read (%s)",
				t->name, (int)tp->partition, ag_strerror(rc));
	}
	tp->ready = tp->assigned && !tp->revoking;
	if (tp->ready && ag__tpart_most(tp))
		ag__tpart_wake(w, tp);
}

/* ---- standby replicas ---- */

static void
standby_stop(struct ag__worker *w, struct ag_table *t, int32_t p)
{
	struct ag__part *pt = &t->rt->parts[p];
	if (!pt->standby)
		return;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, t->changelog->name, p);
	rd_kafka_error_t *e = rd_kafka_incremental_unassign(w->restorer, l);
	if (e)
		rd_kafka_error_destroy(e);
	rd_kafka_topic_partition_list_destroy(l);
	pt->standby = 0;
	ag__log(w->app, AG_LOG_DEBUG, "standby of %s[%d] stops after %llu records", t->name, (int)p,
		(unsigned long long)pt->standby_applied);
}

static void
standby_start(struct ag__worker *w, struct ag_table *t, int32_t p)
{
	struct ag__part *pt = &t->rt->parts[p];
	int64_t stored = -1;
	if (ag__store_get_offset(w->store, t->name, p, &stored) < 0)
		stored = -1;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, t->changelog->name, p)->offset =
		stored >= 0 ? stored : RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_error_t *e = rd_kafka_incremental_assign(w->restorer, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		ag__log(w->app, AG_LOG_WARN, "cannot follow %s[%d] as a standby: %s", t->name,
			(int)p, rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		return;
	}
	pt->standby = 1;
	pt->standby_applied = 0;
	ag__log(w->app, AG_LOG_INFO, "standby: following %s[%d] from %lld", t->name, (int)p,
		(long long)(stored >= 0 ? stored : 0));
}

/*
 * Standby replicas: the partition half way round from each partition this worker owns,
 * when another worker owns it (with the range assignor, partitions are split into blocks,
 * so this gives each partition one standby on another worker as long as no worker owns
 * more than half). A standby follows the partition's changelog into LMDB, so when the
 * partition moves here only the changelog's tail is restored.
 */
void
ag__tables_standby(struct ag__worker *w)
{
	for (size_t i = 0; i < w->app->ntables; i++) {
		struct ag_table *t = w->app->tables[i];
		const struct ag_topic *src = t->source;
		int n = t->changelog->partitions;
		if (!t->rt || !src->parts || src->partitions != n)
			continue;
		for (int32_t s = 0; s < n; s++) {
			const struct ag__tpart *own = &src->parts[s];
			const struct ag__tpart *partner = &src->parts[(s + n - n / 2) % n];
			int owned = own->assigned && !own->revoking;
			int want = !w->stopping && !owned &&
				   (t->opts.global || (w->app->standby_replicas && n >= 2 &&
						       partner->assigned && !partner->revoking));
			if (want && !t->rt->parts[s].standby && !t->rt->parts[s].restoring)
				standby_start(w, t, s);
			else if (!want)
				standby_stop(w, t, s);
		}
	}
}

/*
 * The changelog's first and next offsets, asked on libuv's thread pool: the request waits
 * for the partition's leader, which after a broker failure or during a rebalance storm can
 * take seconds, and the loop (heartbeat of the agents, the commit cycle, the other
 * partitions) must not wait with it. A revocation while it runs cancels it.
 */
struct ag__clog_query {
	uv_work_t req;
	struct ag__worker *w;
	struct ag_table *t;
	struct ag__tpart *tp;
	int cancelled;
	rd_kafka_resp_err_t err;
	int64_t lo, hi;
};

static void
clog_query_work(uv_work_t *req)
{
	struct ag__clog_query *q = req->data;
	q->err = ag__kafka_watermarks(q->w->producer, q->t->changelog->name, q->tp->partition,
				      &q->lo, &q->hi, 10000);
}

static void
recover_failed(struct ag__worker *w, struct ag_table *t, struct ag__tpart *tp, int rc)
{
	ag__log(w->app, AG_LOG_ERROR,
		"table %s partition %d could not be recovered (%s); the worker stops rather than "
		"run on wrong state",
		t->name, (int)tp->partition, ag_strerror(rc));
	w->exit_status = 1;
	ag_app_stop(w->app);
}

/* The rest of restore_part, once the changelog runs from lo to hi. Returns 0 or < 0. */
static int
restore_from(struct ag__worker *w, struct ag_table *t, struct ag__tpart *tp, int64_t lo, int64_t hi)
{
	int32_t p = tp->partition;
	struct ag__part *pt = &t->rt->parts[p];
	const char *clog = t->changelog->name;
	int64_t stored = pt->clog_stored;
	/* Counting walks every key of the partition: only where the changelog may be lost. */
	int lost = stored > hi || (stored < 0 && hi == 0);
	int64_t keys = lost ? ag__store_count(w->store, t->name, p) : 0;
	int rc;
	if (stored > hi || (stored < 0 && hi == 0 && keys > 0)) {
		ag__log(w->app, AG_LOG_WARN,
			"changelog %s[%d] ends at %lld but the local store is at %lld with %lld "
			"keys: the broker lost it (an embedded broker restarted?); publishing the "
			"local state again",
			clog, (int)p, (long long)hi, (long long)stored, (long long)keys);
		struct republish r = {w, t, 0, {0}};
		rc = ag__store_iter(w->store, t->name, p, republish_one, &r);
		if (rc == 0 && r.ops.nops)
			rc = ag__store_write(w->store, r.ops.ops, r.ops.nops);
		cycle_ops_free(&r.ops);
		free(r.ops.ops);
		free(r.ops.owned);
		ag__log(w->app, AG_LOG_INFO, "re-published %llu keys to %s[%d]",
			(unsigned long long)r.n, clog, (int)p);
		return rc < 0 ? rc : 0;
	}
	int64_t from = stored < 0 ? lo : stored;
	if (from < lo) {
		ag__log(w->app, AG_LOG_WARN,
			"changelog %s[%d] starts at %lld but the local store stopped at %lld: "
			"records in between were removed by retention; restoring from %lld",
			clog, (int)p, (long long)lo, (long long)from, (long long)lo);
		from = lo;
	}
	if (from >= hi) {
		pt->clog_high = hi;
		ag__log(w->app, AG_LOG_DEBUG, "table %s[%d] is current at changelog offset %lld",
			t->name, (int)p, (long long)hi);
		return 0;
	}
	pt->restoring = 1;
	pt->restore_end = hi;
	pt->restore_from = from;
	pt->restored = 0;
	pt->restore_logged = 0;
	pt->restore_start_ns = ag__now_ns();
	pt->restore_log_ns = pt->restore_start_ns;
	pt->restore_pos = from;
	tp->recovering++;
	ag__log(w->app, AG_LOG_INFO, "restoring %s[%d] from the changelog: %lld records", t->name,
		(int)p, (long long)(hi - from));
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, clog, p)->offset = from;
	rd_kafka_error_t *e = rd_kafka_incremental_assign(w->restorer, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		ag__log(w->app, AG_LOG_ERROR, "cannot restore %s[%d]: %s", clog, (int)p,
			rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		tp->recovering--;
		pt->restoring = 0;
		return AG_EKAFKA;
	}
	return 0;
}

static void
clog_query_done(uv_work_t *req, int status)
{
	struct ag__clog_query *q = req->data;
	struct ag__worker *w = q->w;
	struct ag_table *t = q->t;
	struct ag__tpart *tp = q->tp;
	int cancelled = q->cancelled || status == UV_ECANCELED || w->stopping;
	rd_kafka_resp_err_t err = q->err;
	int64_t lo = q->lo, hi = q->hi;
	if (!cancelled && (err == RD_KAFKA_RESP_ERR__TIMED_OUT ||
			   err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
			   err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
			   err == RD_KAFKA_RESP_ERR__TRANSPORT)) {
		/* A leader moving or a broker down: ask again while the partition is ours. */
		ag__log(w->app, AG_LOG_WARN,
			"waiting for the leader of changelog %s[%d] (%s) before restoring table %s",
			t->changelog->name, (int)tp->partition, rd_kafka_err2str(err), t->name);
		q->err = 0;
		if (uv_queue_work(&w->loop, &q->req, clog_query_work, clog_query_done) == 0)
			return;
	}
	/*
	 * A revocation already let go of it; a stop did not: the partition must not keep a
	 * pointer to it (ag__tables_revoke at the close would write into freed memory).
	 */
	if (t->rt->parts[tp->partition].query == q)
		t->rt->parts[tp->partition].query = NULL;
	free(q);
	if (cancelled)
		return; /* revoked (ag__tables_revoke reset the partition) or stopping */
	int rc = 0;
	if (err) {
		ag__log(w->app, AG_LOG_ERROR, "cannot read the changelog positions of %s[%d]: %s",
			t->changelog->name, (int)tp->partition, rd_kafka_err2str(err));
		rc = ag__kafka_err(err);
	} else {
		rc = restore_from(w, t, tp, lo, hi);
	}
	if (rc < 0) {
		recover_failed(w, t, tp, rc);
		return;
	}
	tpart_recovered(w, tp); /* the query's hold */
}

/*
 * Starts recovering table t's partition of tp: what LMDB holds, then (off the loop) where
 * the changelog runs, then restore_from. Holds tp->recovering until done.
 */
static int
restore_part(struct ag__worker *w, struct ag_table *t, struct ag__tpart *tp)
{
	int32_t p = tp->partition;
	struct ag__part *pt = &t->rt->parts[p];
	standby_stop(w, t, p); /* LMDB has what it followed: only the rest is restored */
	cache_clear(pt, 0, 0);
	ag__window_part_reset(pt);
	int64_t stored = -1;
	int rc = ag__store_get_offset(w->store, t->name, p, &stored);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	pt->clog_stored = stored;
	pt->clog_high = -1;
	if (pt->query) /* assigned again without a revocation between: ask again */
		pt->query->cancelled = 1;
	struct ag__clog_query *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->w = w;
	q->t = t;
	q->tp = tp;
	q->req.data = q;
	if ((rc = uv_queue_work(&w->loop, &q->req, clog_query_work, clog_query_done)) < 0) {
		free(q);
		return rc;
	}
	pt->query = q;
	tp->recovering++;
	return 0;
}

int
ag__tables_assign(struct ag__worker *w, struct ag__tpart *tp)
{
	tp->recovering = 1; /* held until every table is looked at */
	for (size_t i = 0; i < w->app->ntables; i++) {
		struct ag_table *t = w->app->tables[i];
		if (t->source != tp->topic)
			continue;
		int rc = restore_part(w, t, tp);
		if (rc < 0) {
			recover_failed(w, t, tp, rc);
			return rc;
		}
	}
	tpart_recovered(w, tp);
	return 0;
}

void
ag__tables_revoke(struct ag__worker *w, struct ag__tpart *tp)
{
	for (size_t i = 0; i < w->app->ntables; i++) {
		struct ag_table *t = w->app->tables[i];
		if (t->source != tp->topic || !t->rt)
			continue;
		struct ag__part *pt = &t->rt->parts[tp->partition];
		if (pt->query) {
			pt->query->cancelled = 1;
			pt->query = NULL;
		}
		if (pt->restoring) {
			rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
			rd_kafka_topic_partition_list_add(l, t->changelog->name, tp->partition);
			rd_kafka_error_t *e = rd_kafka_incremental_unassign(w->restorer, l);
			if (e)
				rd_kafka_error_destroy(e);
			rd_kafka_topic_partition_list_destroy(l);
			pt->restoring = 0;
		}
		/* Another worker may change it now: drop the cached copy (LMDB keeps ours). */
		cache_clear(pt, 0, 0);
		ag__window_part_reset(pt);
	}
	tp->recovering = 0;
}

static void
restore_done(struct ag__worker *w, struct ag_table *t, int32_t p)
{
	struct ag__part *pt = &t->rt->parts[p];
	pt->restoring = 0;
	pt->clog_high = pt->restore_end;
	pt->clog_stored = pt->restore_end;
	double secs = (double)(ag__now_ns() - pt->restore_start_ns) / 1e9;
	ag__log(w->app, AG_LOG_INFO, "restored %s[%d]: %llu records in %.3f s", t->name, (int)p,
		(unsigned long long)pt->restored, secs);
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(l, t->changelog->name, p);
	rd_kafka_error_t *e = rd_kafka_incremental_unassign(w->restorer, l);
	if (e)
		rd_kafka_error_destroy(e);
	rd_kafka_topic_partition_list_destroy(l);
	struct ag__tpart *tp = &t->source->parts[p];
	tpart_recovered(w, tp);
}

/*
 * Logs a restore's progress every AG__RESTORE_LOG_SECONDS: percent done and an estimate of
 * the time left at the rate so far.
 */
static void
restore_progress(struct ag__worker *w, struct ag_table *t, struct ag__part *pt,
		 const rd_kafka_message_t *m)
{
	int64_t total = pt->restore_end - pt->restore_from;
	pt->restore_pos = m->offset + 1;
	uint64_t now = ag__now_ns();
	if (now - pt->restore_log_ns < AG__RESTORE_LOG_SECONDS * 1000000000ull)
		return;
	pt->restore_log_ns = now;
	pt->restore_logged = pt->restored;
	double frac = total > 0 ? (double)(m->offset + 1 - pt->restore_from) / (double)total : 1.0;
	double elapsed = (double)(now - pt->restore_start_ns) / 1e9;
	double left = frac > 0 ? elapsed * (1.0 - frac) / frac : 0.0;
	ag__log(w->app, AG_LOG_INFO,
		"restoring %s[%d]: %llu records, %.0f %% done, about %.0f s left", t->name,
		(int)m->partition, (unsigned long long)pt->restored, 100.0 * frac, left);
}

/* The index in w->app->tables of the table whose changelog is topic, or -1. */
static int
changelog_table(struct ag__worker *w, const char *topic)
{
	for (size_t i = 0; i < w->app->ntables; i++)
		if (strcmp(w->app->tables[i]->changelog->name, topic) == 0)
			return (int)i;
	return -1;
}

/*
 * Sorting a restore batch into the store's key order. LMDB's keys are (table name,
 * partition, user key) compared bytewise, so the batch sorts by (table rank, partition),
 * then by the user key 8 bytes at a time, then by length (keys equal but for trailing
 * zero bytes), then by changelog order: of two writes to one key the later sorts last.
 * A stable LSD radix sort on compact entries does it in a few linear passes where qsort
 * of the records took n log n indirect comparisons (bench/README.md, "Recovery and
 * memory").
 */

/* The 8 bytes of key k from byte 8 * d on, big-endian, zero-padded. */
static uint64_t
key_chunk(struct ag_bytes k, size_t d)
{
	const unsigned char *b = k.ptr;
	uint64_t v = 0;
	for (size_t i = 8 * d; i < 8 * d + 8; i++)
		v = v << 8 | (i < k.len ? b[i] : 0);
	return v;
}

/* Stable sort of a[0..n) by the 64-bit field at offset off, tmp as scratch of n entries. */
static void
ix_radix(struct restore_ix *a, struct restore_ix *tmp, size_t n, size_t off)
{
	size_t count[8][256];
	memset(count, 0, sizeof(count));
	for (size_t i = 0; i < n; i++) {
		uint64_t v;
		memcpy(&v, (const char *)&a[i] + off, sizeof(v));
		for (int b = 0; b < 8; b++)
			count[b][(v >> (8 * b)) & 0xff]++;
	}
	struct restore_ix *src = a, *dst = tmp;
	for (int b = 0; b < 8; b++) {
		size_t *c = count[b], sum = 0;
		int uniform = 0;
		for (int d = 0; d < 256 && !uniform; d++)
			uniform = c[d] == n;
		if (uniform)
			continue; /* every entry has the same byte here: nothing moves */
		for (int d = 0; d < 256; d++) {
			size_t k = c[d];
			c[d] = sum;
			sum += k;
		}
		for (size_t i = 0; i < n; i++) {
			uint64_t v;
			memcpy(&v, (const char *)&src[i] + off, sizeof(v));
			dst[c[(v >> (8 * b)) & 0xff]++] = src[i];
		}
		struct restore_ix *t = src;
		src = dst;
		dst = t;
	}
	if (src != a)
		memcpy(a, src, n * sizeof(*a));
}

/*
 * Orders a run of entries with equal (grp, key bytes before 8 * d), sorted by changelog
 * order, by the rest of their keys, then length.
 */
static void
ix_refine(const struct ag__store_op *recs, struct restore_ix *a, struct restore_ix *tmp, size_t n,
	  size_t d)
{
	int longer = 0;
	for (size_t i = 0; i < n && !longer; i++)
		longer = recs[a[i].idx].key.len > 8 * d;
	for (size_t i = 0; i < n; i++)
		a[i].pfx = longer ? key_chunk(recs[a[i].idx].key, d) : recs[a[i].idx].key.len;
	ix_radix(a, tmp, n, offsetof(struct restore_ix, pfx));
	if (!longer)
		return; /* equal keys (or equal but for trailing zeros, now by length) */
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && a[j].pfx == a[i].pfx; j++)
			;
		if (j - i > 1)
			ix_refine(recs, a + i, tmp, j - i, d + 1);
	}
}

/* Sorts the batch's tb->ix[0..n) (grp, pfx and idx set) into store order. */
static void
restore_sort(struct ag__tables *tb, size_t n)
{
	struct restore_ix *a = tb->ix;
	ix_radix(a, tb->tmp, n, offsetof(struct restore_ix, pfx));
	ix_radix(a, tb->tmp, n, offsetof(struct restore_ix, grp));
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && a[j].grp == a[i].grp && a[j].pfx == a[i].pfx; j++)
			;
		if (j - i > 1)
			ix_refine(tb->recs, a + i, tb->tmp, j - i, 1);
	}
}

static int
restore_same_key(const struct ag__store_op *x, const struct ag__store_op *y)
{
	return x->table == y->table && x->part == y->part && x->key.len == y->key.len &&
	       (!x->key.len || memcmp(x->key.ptr, y->key.ptr, x->key.len) == 0);
}

/*
 * The batch's records in one LMDB transaction: sorted into the store's key order (LMDB
 * then walks its B-tree in one direction and touches each page once, where changelog order
 * is random order), only the last write of each key, and for each partition the changelog
 * offset the batch reached, so data and offset are durable together.
 */
static int
restore_store(struct ag__worker *w, struct ag__tables *tb, size_t nrecs)
{
	struct opbuf *ts = &tb->restore;
	int rc = 0;
	cycle_ops_free(ts);
	restore_sort(tb, nrecs);
	for (size_t i = 0; i < nrecs && rc == 0; i++) {
		const struct ag__store_op *op = &tb->recs[tb->ix[i].idx];
		if (i + 1 < nrecs && restore_same_key(op, &tb->recs[tb->ix[i + 1].idx]))
			continue; /* a later record of the batch sets the key */
		rc = push_op(ts, op, NULL);
	}
	for (size_t i = 0; i < w->app->ntables && rc == 0; i++) {
		struct ag_table *t = w->app->tables[i];
		for (int32_t p = 0; t->rt && p < t->changelog->partitions && rc == 0; p++) {
			struct ag__part *pt = &t->rt->parts[p];
			if (pt->batch_next < 0)
				continue;
			struct ag__store_op off = {.kind = AG__STORE_OFFSET,
						   .table = t->name,
						   .part = p,
						   .offset = pt->batch_next};
			pt->batch_next = -1;
			rc = push_op(ts, &off, NULL);
		}
	}
	/* deferred: a batch a system crash undoes is fetched again, from the offset stored
	 * with the data before it; a finished restore syncs (ag__tables_restore_poll) */
	if (rc == 0 && ts->nops)
		rc = ag__store_write_deferred(w->store, ts->ops, ts->nops);
	cycle_ops_free(ts);
	return rc;
}

/*
 * Allocates the restore batch's arrays (AG__RESTORE_BATCH entries) and ranks the tables
 * by name. Returns 0, -ENOMEM.
 */
static int
restore_bufs(struct ag__worker *w, struct ag__tables *tb)
{
	if (tb->msgs)
		return 0;
	size_t nt = w->app->ntables;
	tb->msgs = malloc(AG__RESTORE_BATCH * sizeof(*tb->msgs));
	tb->recs = malloc(AG__RESTORE_BATCH * sizeof(*tb->recs));
	tb->ix = malloc(AG__RESTORE_BATCH * sizeof(*tb->ix));
	tb->tmp = malloc(AG__RESTORE_BATCH * sizeof(*tb->tmp));
	tb->trank = calloc(nt ? nt : 1, sizeof(*tb->trank));
	if (!tb->msgs || !tb->recs || !tb->ix || !tb->tmp || !tb->trank) {
		free(tb->msgs);
		free(tb->recs);
		free(tb->ix);
		free(tb->tmp);
		free(tb->trank);
		tb->msgs = NULL;
		tb->recs = NULL;
		tb->ix = tb->tmp = NULL;
		tb->trank = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; i < nt; i++)
		for (size_t j = 0; j < nt; j++)
			tb->trank[i] +=
				strcmp(w->app->tables[j]->name, w->app->tables[i]->name) < 0;
	return 0;
}

static void
restore_failed(struct ag__worker *w, int rc)
{
	ag__log(w->app, AG_LOG_ERROR, "restoring tables failed: %s; the worker stops",
		ag_strerror(rc));
	w->exit_status = 1;
	ag_app_stop(w->app);
}

void
ag__tables_restore_poll(struct ag__worker *w)
{
	/*
	 * One LMDB transaction (with its fsync) per call, of up to AG__RESTORE_BATCH records
	 * (bench/README.md, "Table recovery", has the measurements behind the size).
	 */
	struct ag__tables *tb = w->tables;
	int rc = restore_bufs(w, tb);
	if (rc < 0) {
		restore_failed(w, rc);
		return;
	}
	rd_kafka_message_t **msgs = tb->msgs;
	ssize_t n = rd_kafka_consume_batch_queue(w->rq, 0, msgs, AG__RESTORE_BATCH);
	w->restore_more = n == (ssize_t)AG__RESTORE_BATCH;
	size_t ndone = 0, nrecs = 0;
	for (ssize_t i = 0; i < n; i++) {
		rd_kafka_message_t *m = msgs[i];
		if (m->rkt && w->app->reply_topic &&
		    strcmp(rd_kafka_topic_name(m->rkt), w->app->reply_topic->name) == 0) {
			ag__agents_reply(w, m);
			continue;
		}
		if (m->rkt && w->app->workers_topic &&
		    strcmp(rd_kafka_topic_name(m->rkt), w->app->workers_topic->name) == 0) {
			ag__web_peer(w, m);
			continue;
		}
		int ti = m->rkt ? changelog_table(w, rd_kafka_topic_name(m->rkt)) : -1;
		struct ag_table *t = ti >= 0 ? w->app->tables[ti] : NULL;
		struct ag__part *pt = t && t->rt ? &t->rt->parts[m->partition] : NULL;
		if (!pt || !(pt->restoring || pt->standby))
			continue;
		int finished = 0;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			finished = pt->restoring;
		} else if (m->err) {
			ag__log(w->app, AG_LOG_ERROR, "restoring %s[%d]: %s", t->name,
				(int)m->partition, rd_kafka_message_errstr(m));
			continue;
		} else {
			struct ag_bytes key = {m->key, m->key_len};
			tb->recs[nrecs] = (struct ag__store_op){
				.kind = m->payload ? AG__STORE_PUT : AG__STORE_DEL,
				.table = t->name,
				.part = m->partition,
				.key = key,
				.val = {m->payload, m->len},
			};
			tb->ix[nrecs] = (struct restore_ix){
				.grp = (uint64_t)tb->trank[ti] << 32 | (uint32_t)m->partition,
				.pfx = key_chunk(key, 0),
				.idx = (uint32_t)nrecs,
			};
			nrecs++;
			pt->batch_next = m->offset + 1;
			if (pt->standby) {
				pt->standby_applied++;
				continue;
			}
			pt->restored++;
			finished = m->offset + 1 >= pt->restore_end;
			restore_progress(w, t, pt, m);
		}
		if (finished) {
			pt->restoring = 0; /* later messages of this batch are ignored */
			pt->restore_finished = 1; /* restore_done once the batch is stored */
			ndone++;
		}
	}
	rc = nrecs ? restore_store(w, tb, nrecs) : 0;
	if (rc == 0 && ndone)
		rc = ag__store_sync(w->store); /* a ready partition's table is durable */
	for (ssize_t i = 0; i < n; i++)
		rd_kafka_message_destroy(msgs[i]);
	if (rc < 0) {
		restore_failed(w, rc);
		return;
	}
	for (size_t i = 0; ndone && i < w->app->ntables; i++) {
		struct ag_table *t = w->app->tables[i];
		for (int32_t p = 0; t->rt && p < t->changelog->partitions; p++) {
			if (t->rt->parts[p].restore_finished) {
				t->rt->parts[p].restore_finished = 0;
				restore_done(w, t, p);
			}
		}
	}
	if (w->restore_more)
		ag__worker_kick(w);
}
