/*
 * Tables: a write cache over LMDB, a changelog per table, and recovery.
 *
 * Updates land in a per-partition hash map of entries (the write cache). A commit cycle
 * sends one changelog record per dirty key and, once every record is delivered, writes the
 * same entries plus the changelog position to LMDB in one transaction; so a key updated
 * 10,000 times in an interval costs one record and one put. Reads look in the cache, then
 * in LMDB.
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
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "worker.h"

#define AG__CACHE_EVICT_AT 65536

struct entry {
	struct entry *next;
	uint64_t hash;
	int dirty;
	int deleted;
	uint8_t *val;
	size_t vlen;
	size_t klen;
	uint8_t key[];
};

struct part {
	struct entry **buckets;
	uint32_t nbuckets;
	uint32_t count;
	uint32_t ndirty;
	int64_t clog_high; /* next changelog offset known delivered, -1 unknown */
	int64_t clog_stored; /* what LMDB holds */
	int restoring;
	int64_t restore_end;
	uint64_t restored;
	uint64_t restore_start_ns;
};

struct ag__table_rt {
	struct part *parts;
	uint8_t *scratch;
	size_t scratch_cap;
};

struct ag__tables {
	struct ag__store_op *ops;
	size_t nops, capops;
	void **owned;
	size_t nowned, capowned;
};

static uint64_t
hash_bytes(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	return h;
}

static struct entry *
cache_find(struct part *pt, const void *key, size_t klen, uint64_t h)
{
	if (!pt->nbuckets)
		return NULL;
	for (struct entry *e = pt->buckets[h & (pt->nbuckets - 1)]; e; e = e->next) {
		if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
			return e;
	}
	return NULL;
}

static int
cache_grow(struct part *pt)
{
	uint32_t n = pt->nbuckets ? pt->nbuckets * 2 : 256;
	struct entry **b = calloc(n, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (uint32_t i = 0; i < pt->nbuckets; i++) {
		struct entry *e = pt->buckets[i];
		while (e) {
			struct entry *next = e->next;
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

static void
cache_clear(struct part *pt, int only_clean)
{
	for (uint32_t i = 0; i < pt->nbuckets; i++) {
		struct entry **pe = &pt->buckets[i];
		while (*pe) {
			struct entry *e = *pe;
			if (only_clean && e->dirty) {
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

/* Stores val (NULL: deleted) for key as a dirty entry. */
static int
cache_put(struct part *pt, const void *key, size_t klen, const void *val, size_t vlen)
{
	uint64_t h = hash_bytes(key, klen);
	struct entry *e = cache_find(pt, key, klen, h);
	uint8_t *copy = NULL;
	if (val) {
		copy = malloc(vlen ? vlen : 1);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, val, vlen);
	}
	if (!e) {
		if (pt->count >= pt->nbuckets && cache_grow(pt) < 0) {
			free(copy);
			return -ENOMEM;
		}
		e = calloc(1, sizeof(*e) + klen);
		if (!e) {
			free(copy);
			return -ENOMEM;
		}
		e->hash = h;
		e->klen = klen;
		memcpy(e->key, key, klen);
		e->next = pt->buckets[h & (pt->nbuckets - 1)];
		pt->buckets[h & (pt->nbuckets - 1)] = e;
		pt->count++;
	}
	free(e->val);
	e->val = copy;
	e->vlen = vlen;
	e->deleted = val == NULL;
	if (!e->dirty) {
		e->dirty = 1;
		pt->ndirty++;
	}
	return 0;
}

static struct ag__worker *
table_worker(struct ag_table *t)
{
	return t->app->worker;
}

static int32_t
table_partition(struct ag_table *t, const struct ag_bytes *key)
{
	const struct ag_event *ev = ag__current_event();
	if (ev && ev->tp->topic->partitions == t->changelog->partitions)
		return ev->msg->partition;
	return ag__murmur2_partition(key->ptr, key->len, t->changelog->partitions);
}

/* Looks key up: 0 and *out (borrowed) when present, -ENOENT when missing. */
static int
lookup(struct ag_table *t, const struct ag_bytes *key, struct ag_bytes *out)
{
	struct ag__worker *w = table_worker(t);
	if (!w || !t->rt)
		return AG_ESTOPPED;
	int32_t p = table_partition(t, key);
	struct entry *e =
		cache_find(&t->rt->parts[p], key->ptr, key->len, hash_bytes(key->ptr, key->len));
	if (e) {
		if (e->deleted)
			return -ENOENT;
		*out = (struct ag_bytes){e->val, e->vlen};
		return 0;
	}
	return ag__store_get(w->store, t->name, p, *key, out);
}

static int
get_val(struct ag_table *t, const struct ag_bytes *key, struct ag__val *v)
{
	struct ag_bytes raw;
	int rc = lookup(t, key, &raw);
	if (rc < 0)
		return rc;
	return ag__val_decode(raw, v) < 0 ? AG_ETYPE : 0;
}

static int
put_val(struct ag_table *t, const struct ag_bytes *key, const struct ag__val *v)
{
	if (!table_worker(t) || !t->rt)
		return AG_ESTOPPED;
	uint8_t small[64];
	size_t need = ag__val_encoded_size(v);
	uint8_t *buf = need <= sizeof(small) ? small : malloc(need);
	if (!buf)
		return -ENOMEM;
	int n = ag__val_encode(v, buf, need);
	int rc = n < 0 ? n
		       : cache_put(&t->rt->parts[table_partition(t, key)], key->ptr, key->len, buf,
				   (size_t)n);
	if (buf != small)
		free(buf);
	return rc;
}

/*
 * Reads a number as `type` (AG__VAL_I64 or AG__VAL_F64) into *out; a missing key gives the
 * table's default. An integer reads as a float; a float does not read as an integer.
 */
static int
get_num(struct ag_table *t, const struct ag_bytes *key, enum ag__val_type type, struct ag__val *out)
{
	int rc = get_val(t, key, out);
	if (rc == -ENOENT) {
		*out = (struct ag__val){
			.type = type, .i64 = t->opts.default_i64, .f64 = t->opts.default_f64};
		return 0;
	}
	if (rc < 0)
		return rc;
	if (type == AG__VAL_F64 && out->type == AG__VAL_I64)
		*out = (struct ag__val){.type = AG__VAL_F64, .f64 = (double)out->i64};
	return out->type == type ? 0 : AG_ETYPE;
}

/* Adds delta (of the type wanted) to the stored number; *sum gets the new value. */
static int
add_num(struct ag_table *t, const struct ag_bytes *key, const struct ag__val *delta,
	struct ag__val *sum)
{
	int rc = get_num(t, key, delta->type, sum);
	if (rc < 0)
		return rc;
	if (delta->type == AG__VAL_I64)
		sum->i64 += delta->i64;
	else
		sum->f64 += delta->f64;
	return put_val(t, key, sum);
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
	struct ag__val v;
	int rc = get_val(t, key, &v);
	if (rc < 0)
		return rc;
	if (v.type != AG__VAL_BYTES)
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
	if (rc == 0)
		rc = cache_put(&t->rt->parts[table_partition(t, key)], key->ptr, key->len, buf.ptr,
			       buf.len);
	free(buf.ptr);
	return rc;
}

AG_EXPORT int
ag_table_del(struct ag_table *t, const struct ag_bytes *key)
{
	if (!table_worker(t) || !t->rt)
		return AG_ESTOPPED;
	return cache_put(&t->rt->parts[table_partition(t, key)], key->ptr, key->len, NULL, 0);
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
		t->rt->parts = calloc((size_t)t->changelog->partitions, sizeof(struct part));
		if (!t->rt->parts)
			return -ENOMEM;
		for (int p = 0; p < t->changelog->partitions; p++) {
			t->rt->parts[p].clog_high = -1;
			t->rt->parts[p].clog_stored = -1;
		}
	}
	return 0;
}

static void
cycle_ops_free(struct ag__tables *ts)
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
			cache_clear(&t->rt->parts[p], 0);
		free(t->rt->parts);
		free(t->rt->scratch);
		free(t->rt);
		t->rt = NULL;
	}
	if (w->tables) {
		cycle_ops_free(w->tables);
		free(w->tables->ops);
		free(w->tables->owned);
		free(w->tables);
		w->tables = NULL;
	}
}

static int
push_op(struct ag__tables *ts, const struct ag__store_op *op, void *owned)
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

int
ag__tables_cycle_begin(struct ag__worker *w)
{
	struct ag__tables *ts = w->tables;
	int rc = 0;
	cycle_ops_free(ts);
	for (size_t i = 0; i < w->app->ntables; i++) {
		struct ag_table *t = w->app->tables[i];
		for (int p = 0; p < t->changelog->partitions; p++) {
			struct part *pt = &t->rt->parts[p];
			for (uint32_t b = 0; pt->ndirty && b < pt->nbuckets; b++) {
				for (struct entry *e = pt->buckets[b]; e; e = e->next) {
					if (!e->dirty)
						continue;
					struct ag_bytes k = {e->key, e->klen};
					struct ag_bytes v = {e->val, e->vlen};
					rc = ag__produce(w, t->changelog, p, &k,
							 e->deleted ? NULL : &v);
					if (rc < 0)
						goto out; /* stays dirty: the next cycle sends it */
					uint8_t *copy = malloc(e->klen + e->vlen + 1);
					if (!copy)
						return -ENOMEM;
					memcpy(copy, e->key, e->klen);
					if (e->vlen)
						memcpy(copy + e->klen, e->val, e->vlen);
					struct ag__store_op op = {
						.kind = e->deleted ? AG__STORE_DEL : AG__STORE_PUT,
						.table = t->name,
						.part = p,
						.key = {copy, e->klen},
						.val = {copy + e->klen, e->vlen},
					};
					if ((rc = push_op(ts, &op, copy)) < 0) {
						free(copy);
						return rc;
					}
					e->dirty = 0;
					pt->ndirty--;
				}
			}
		}
	}
out:
	return rc == -ENOBUFS ? 0 : rc;
}

int
ag__tables_cycle_end(struct ag__worker *w)
{
	struct ag__tables *ts = w->tables;
	int rc = 0;
	for (size_t i = 0; i < w->app->ntables; i++) {
		struct ag_table *t = w->app->tables[i];
		for (int p = 0; p < t->changelog->partitions; p++) {
			struct part *pt = &t->rt->parts[p];
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
		for (size_t i = 0; i < w->app->ntables; i++) {
			struct ag_table *t = w->app->tables[i];
			for (int p = 0; p < t->changelog->partitions; p++)
				if (t->rt->parts[p].count > AG__CACHE_EVICT_AT)
					cache_clear(&t->rt->parts[p], 1);
		}
	}
	cycle_ops_free(ts);
	return rc;
}

void
ag__tables_delivered(struct ag__worker *w, const rd_kafka_message_t *m)
{
	for (size_t i = 0; i < w->app->ntables; i++) {
		struct ag_table *t = w->app->tables[i];
		if (t->changelog->rkt != m->rkt || !t->rt)
			continue;
		struct part *pt = &t->rt->parts[m->partition];
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
};

static int
republish_one(int32_t part, struct ag_bytes key, struct ag_bytes val, void *userdata)
{
	struct republish *r = userdata;
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
	tp->ready = tp->assigned && !tp->revoking;
	if (tp->ready && ag__tpart_most(tp))
		ag__tpart_wake(w, tp);
}

static int
restore_part(struct ag__worker *w, struct ag_table *t, struct ag__tpart *tp)
{
	int32_t p = tp->partition;
	struct part *pt = &t->rt->parts[p];
	const char *clog = t->changelog->name;
	cache_clear(pt, 0);
	int64_t stored = -1, lo = 0, hi = 0;
	int rc = ag__store_get_offset(w->store, t->name, p, &stored);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	pt->clog_stored = stored;
	pt->clog_high = -1;
	rd_kafka_resp_err_t err =
		rd_kafka_query_watermark_offsets(w->producer, clog, p, &lo, &hi, 10000);
	if (err) {
		ag__log(w->app, AG_LOG_ERROR, "cannot read the changelog positions of %s[%d]: %s",
			clog, (int)p, rd_kafka_err2str(err));
		return ag__kafka_err(err);
	}
	int64_t keys = ag__store_count(w->store, t->name, p);
	if (stored > hi || (stored < 0 && hi == 0 && keys > 0)) {
		ag__log(w->app, AG_LOG_WARN,
			"changelog %s[%d] ends at %lld but the local store is at %lld with %lld "
			"keys: the broker lost it (an embedded broker restarted?); publishing the "
			"local state again",
			clog, (int)p, (long long)hi, (long long)stored, (long long)keys);
		struct republish r = {w, t, 0};
		rc = ag__store_iter(w->store, t->name, p, republish_one, &r);
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
		return 0;
	}
	pt->restoring = 1;
	pt->restore_end = hi;
	pt->restored = 0;
	pt->restore_start_ns = ag__now_ns();
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
			ag__log(w->app, AG_LOG_ERROR,
				"table %s partition %d could not be recovered (%s); the worker "
				"stops "
				"rather than run on wrong state",
				t->name, (int)tp->partition, ag_strerror(rc));
			w->exit_status = 1;
			ag_app_stop(w->app);
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
		struct part *pt = &t->rt->parts[tp->partition];
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
		cache_clear(pt, 0);
	}
	tp->recovering = 0;
}

static void
restore_done(struct ag__worker *w, struct ag_table *t, int32_t p)
{
	struct part *pt = &t->rt->parts[p];
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

static struct ag_table *
changelog_table(struct ag__worker *w, const char *topic)
{
	for (size_t i = 0; i < w->app->ntables; i++)
		if (strcmp(w->app->tables[i]->changelog->name, topic) == 0)
			return w->app->tables[i];
	return NULL;
}

void
ag__tables_restore_poll(struct ag__worker *w)
{
	rd_kafka_message_t *msgs[1024];
	ssize_t n = rd_kafka_consume_batch_queue(w->rq, 0, msgs, AG__ARRAY_SIZE(msgs));
	w->restore_more = n == (ssize_t)AG__ARRAY_SIZE(msgs);
	struct ag__tables *ts = w->tables;
	struct {
		struct ag_table *t;
		int32_t p;
	} done[64];
	size_t ndone = 0;
	cycle_ops_free(ts);
	for (ssize_t i = 0; i < n; i++) {
		rd_kafka_message_t *m = msgs[i];
		if (m->rkt && w->app->reply_topic &&
		    strcmp(rd_kafka_topic_name(m->rkt), w->app->reply_topic->name) == 0) {
			ag__agents_reply(w, m);
			continue;
		}
		struct ag_table *t =
			m->rkt ? changelog_table(w, rd_kafka_topic_name(m->rkt)) : NULL;
		struct part *pt = t && t->rt ? &t->rt->parts[m->partition] : NULL;
		if (!pt || !pt->restoring)
			continue;
		int finished = 0;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			finished = 1;
		} else if (m->err) {
			ag__log(w->app, AG_LOG_ERROR, "restoring %s[%d]: %s", t->name,
				(int)m->partition, rd_kafka_message_errstr(m));
			continue;
		} else {
			struct ag__store_op op = {
				.kind = m->payload ? AG__STORE_PUT : AG__STORE_DEL,
				.table = t->name,
				.part = m->partition,
				.key = {m->key, m->key_len},
				.val = {m->payload, m->len},
			};
			struct ag__store_op off = {.kind = AG__STORE_OFFSET,
						   .table = t->name,
						   .part = m->partition,
						   .offset = m->offset + 1};
			if (push_op(ts, &op, NULL) < 0 || push_op(ts, &off, NULL) < 0)
				continue;
			pt->restored++;
			finished = m->offset + 1 >= pt->restore_end;
		}
		if (finished && ndone < AG__ARRAY_SIZE(done)) {
			pt->restoring = 0; /* later messages of this batch are ignored */
			done[ndone].t = t;
			done[ndone].p = m->partition;
			ndone++;
		}
	}
	int rc = ts->nops ? ag__store_write(w->store, ts->ops, ts->nops) : 0;
	cycle_ops_free(ts);
	for (ssize_t i = 0; i < n; i++)
		rd_kafka_message_destroy(msgs[i]);
	if (rc < 0) {
		ag__log(w->app, AG_LOG_ERROR, "restoring tables failed: %s; the worker stops",
			ag_strerror(rc));
		w->exit_status = 1;
		ag_app_stop(w->app);
		return;
	}
	for (size_t i = 0; i < ndone; i++)
		restore_done(w, done[i].t, done[i].p);
	if (w->restore_more)
		ag__worker_kick(w);
}
