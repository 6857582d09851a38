/*
 * Windowed tables: one value per key and time window, on top of the table's write cache,
 * LMDB and changelog (table.c).
 *
 * A window's stored key is its start (8 bytes, big-endian, offset by 2^63 so that byte
 * order is time order) followed by the user key. A partition's windows therefore sit in
 * LMDB in the order they start, so the windows to close or to delete are always a range at
 * the head of the partition, and the keys of one window are a contiguous range.
 *
 * Each partition has a stream time (the highest event time its writes have seen) and
 * closed_to (windows starting at or before it are closed). Both live in the partition's
 * window state record, stored under the key "\0" (no window key is that short) in LMDB and
 * in the changelog like any value, and written by the commit cycle after the window values
 * of the partition: a record that says a window closed is only ever durable together with
 * the values it closed over. A worker that rebuilds the partition from the changelog
 * therefore knows which windows were closed and never closes them again.
 *
 * Closing happens on the write that moves stream time past a window's end + grace: the
 * keys of every window up to that point are collected (cache over LMDB) and on_close is
 * called for each, on the writing agent's coroutine (it may send and park). Writes to a
 * window that is closing or closed are late and dropped. Windows past end + expires are
 * deleted (tombstones to the changelog) right after.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "table_rt.h"

#define WINDOW_BIAS ((uint64_t)1 << 63)
#define WINDOWS_MAX 1024
#define SECONDS_MAX 1e9

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The newest window start at or before time, for a windowed table. */
static int64_t
window_start(const struct ag_table *t, int64_t time)
{
	return floor_div(time, t->win.step) * t->win.step;
}

static int
ms_of(double s, int64_t *out)
{
	if (!isfinite(s) || s < 0 || s > SECONDS_MAX)
		return -EINVAL;
	*out = (int64_t)llround(s * 1000.0);
	return 0;
}

AG_EXPORT int
ag_table_window(struct ag_table *t, const struct ag_window_opts *o)
{
	if (!t || !o)
		return -EINVAL;
	if (t->win.on)
		return -EEXIST;
	if (t->opts.global)
		return -EINVAL;
	struct ag__window w = {.on = 1, .opts = *o};
	if (ms_of(o->size_s, &w.size) < 0 || ms_of(o->step_s, &w.step) < 0 ||
	    ms_of(o->expires_s, &w.expires) < 0 || ms_of(o->grace_s, &w.grace) < 0)
		return -EINVAL;
	if (w.size < 1 || (o->step_s > 0 && w.step < 1))
		return -EINVAL;
	if (w.step == 0)
		w.step = w.size;
	if (w.step > w.size || (w.size + w.step - 1) / w.step > WINDOWS_MAX)
		return -EINVAL;
	if (w.expires == 0)
		w.expires = w.size;
	if (o->clock > AG_WINDOW_FIELD || (o->clock == AG_WINDOW_FIELD && !o->time_fn))
		return -EINVAL;
	if (t->opts.ttl_s > 0)
		return -EINVAL;
	t->win = w;
	return 0;
}

AG_EXPORT int
ag_table_window_of(const struct ag_table *t, int64_t time_ms, struct ag_window *out)
{
	if (!t || !t->win.on || !out)
		return -EINVAL;
	out->start_ms = window_start(t, time_ms);
	out->end_ms = out->start_ms + t->win.size;
	return 0;
}

AG_EXPORT uint64_t
ag_table_late_writes(const struct ag_table *t)
{
	return t && t->rt ? t->rt->late : 0;
}

size_t
ag__window_starts(const struct ag_table *t, int64_t time, int64_t *starts)
{
	size_t n = 0;
	for (int64_t s = window_start(t, time); s > time - t->win.size && n < WINDOWS_MAX;
	     s -= t->win.step)
		starts[n++] = s;
	return n;
}

int
ag__window_key(uint8_t *buf, int64_t start, const struct ag_bytes *key, struct ag_bytes *out)
{
	if (key->len > AG__TABLE_KEY_MAX - AG__WINDOW_KEY_PREFIX)
		return -EINVAL;
	uint64_t u = (uint64_t)start + WINDOW_BIAS;
	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)(u >> (56 - 8 * i));
	if (key->len)
		memcpy(buf + AG__WINDOW_KEY_PREFIX, key->ptr, key->len);
	*out = (struct ag_bytes){buf, AG__WINDOW_KEY_PREFIX + key->len};
	return 0;
}

int
ag__window_key_split(struct ag_bytes skey, int64_t *start, struct ag_bytes *key)
{
	if (skey.len < AG__WINDOW_KEY_PREFIX)
		return -EINVAL;
	const uint8_t *p = skey.ptr;
	uint64_t u = 0;
	for (int i = 0; i < 8; i++)
		u = u << 8 | p[i];
	*start = (int64_t)(u - WINDOW_BIAS);
	*key = (struct ag_bytes){p + AG__WINDOW_KEY_PREFIX, skey.len - AG__WINDOW_KEY_PREFIX};
	return 0;
}

void
ag__window_part_reset(struct ag__part *pt)
{
	pt->meta_loaded = 0;
	pt->meta_dirty = 0;
	pt->closing = 0;
	pt->stream_time = INT64_MIN;
	pt->closed_to = pt->closing_to = pt->expired_to = INT64_MIN;
	pt->epoch++;
}

static void
put64(uint8_t *p, int64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
}

int64_t
ag__window_get64(const uint8_t *p)
{
	uint64_t u = 0;
	for (int i = 0; i < 8; i++)
		u = u << 8 | p[i];
	return (int64_t)u;
}

size_t
ag__window_meta_encode(const struct ag__part *pt, const struct ag__wm *wm, uint8_t *buf)
{
	struct ag__tval tv = {.offset = -1, .mtime = -1, .meta = 1};
	size_t n = ag__tval_header(&tv, buf);
	put64(buf + n, pt->stream_time);
	put64(buf + n + 8, pt->closed_to);
	n += 16;
	for (uint32_t i = 0; wm && i < wm->nchan; i++, n += 8)
		put64(buf + n, wm->time[i]);
	return n;
}

int
ag__window_meta_decode(struct ag_bytes payload, int64_t *stream_time, int64_t *closed_to,
		       const uint8_t **times, uint32_t *ntimes)
{
	if (payload.len < 16 || payload.len % 8 || payload.len / 8 > 1000002)
		return AG_EDECODE;
	*stream_time = ag__window_get64(payload.ptr);
	*closed_to = ag__window_get64((const uint8_t *)payload.ptr + 8);
	if (times)
		*times = (const uint8_t *)payload.ptr + 16;
	if (ntimes)
		*ntimes = (uint32_t)(payload.len / 8 - 2);
	return 0;
}

int
ag__window_meta_load(struct ag__worker *w, struct ag_table *t, int32_t p)
{
	struct ag__part *pt = &t->rt->parts[p];
	if (pt->meta_loaded)
		return 0;
	struct ag_bytes raw;
	int rc =
		ag__store_get(w->store, t->name, p,
			      (struct ag_bytes){AG__WINDOW_META_KEY, AG__WINDOW_META_KEYLEN}, &raw);
	if (rc == 0) {
		struct ag__tval tv;
		int64_t st, closed;
		const uint8_t *times = NULL;
		uint32_t ntimes = 0;
		if (ag__tval_parse(raw, &tv) < 0 || !tv.meta ||
		    ag__window_meta_decode(tv.payload, &st, &closed, &times, &ntimes) < 0) {
			ag__log(t->app, AG_LOG_ERROR,
				"table %s partition %d: the window state record is damaged (%zu "
				"bytes); remove the data dir's tables to rebuild from the "
				"changelog",
				t->name, (int)p, raw.len);
			return AG_ESTORE;
		}
		pt->stream_time = st;
		pt->closed_to = pt->closing_to = closed;
		/* The channel times the partition had reached: its watermark goes on from them. */
		struct ag__tpart *tp = t->source->parts ? &t->source->parts[p] : NULL;
		uint32_t n = tp && tp->wm && tp->assigned ? ntimes : 0;
		n = tp && n > tp->wm->nchan ? tp->wm->nchan : n;
		int64_t *v = n ? malloc(n * sizeof(*v)) : NULL;
		if (n && !v)
			return -ENOMEM;
		for (uint32_t i = 0; i < n; i++)
			v[i] = ag__window_get64(times + 8 * (size_t)i);
		if (n)
			ag__wm_merge(tp->wm, v, n);
		free(v);
	} else if (rc != -ENOENT) {
		return rc;
	}
	pt->meta_loaded = 1;
	return 0;
}

/* ---- collecting windows: the cache over LMDB ---- */

struct item {
	int64_t start;
	uint8_t *key;
	size_t klen;
	uint8_t *val; /* payload */
	size_t vlen;
};

struct items {
	struct item *v;
	size_t n, cap;
};

/* What to collect: windows starting in (lo, hi], of one user key or any. */
struct range {
	struct ag__part *pt;
	int64_t lo, hi;
	const struct ag_bytes *key;
	struct items *out;
};

static void
items_free(struct items *it)
{
	for (size_t i = 0; i < it->n; i++)
		free(it->v[i].key);
	free(it->v);
	*it = (struct items){0};
}

static int
items_add(struct items *it, int64_t start, struct ag_bytes key, const void *val, size_t vlen,
	  int has_val)
{
	if (it->n == it->cap) {
		size_t cap = it->cap ? it->cap * 2 : 64;
		struct item *v = realloc(it->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		it->v = v;
		it->cap = cap;
	}
	uint8_t *mem = malloc(key.len + vlen + 1);
	if (!mem)
		return -ENOMEM;
	if (key.len)
		memcpy(mem, key.ptr, key.len);
	if (vlen)
		memcpy(mem + key.len, val, vlen);
	it->v[it->n++] = (struct item){start, mem, key.len, has_val ? mem + key.len : NULL, vlen};
	return 0;
}

static int
in_range(const struct range *r, int64_t start, struct ag_bytes key)
{
	if (start <= r->lo || start > r->hi)
		return 0;
	return !r->key || (r->key->len == key.len && memcmp(r->key->ptr, key.ptr, key.len) == 0);
}

static int
collect_stored(int32_t part, struct ag_bytes skey, struct ag_bytes val, void *userdata)
{
	struct range *r = userdata;
	int64_t start;
	struct ag_bytes key;
	if (ag__window_key_split(skey, &start, &key) < 0)
		return 0; /* the window state record */
	if (start > r->hi)
		return 1; /* past the range: stop */
	if (!in_range(r, start, key))
		return 0;
	if (ag__cache_find(r->pt, skey.ptr, skey.len, ag__table_hash(skey.ptr, skey.len)))
		return 0; /* the cache has the newer word: collected from there */
	struct ag__tval tv;
	if (ag__tval_parse(val, &tv) < 0)
		return AG_ETYPE;
	return items_add(r->out, start, key, tv.payload.ptr, tv.payload.len, 1);
}

static int
item_cmp(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = n ? memcmp(x->key, y->key, n) : 0;
	if (c)
		return c;
	return x->klen < y->klen ? -1 : x->klen > y->klen;
}

/* Collects the windows of r from LMDB and the cache of (t, p), sorted by start and key. */
static int
collect(struct ag__worker *w, struct ag_table *t, int32_t p, struct range *r)
{
	uint8_t from[AG__WINDOW_KEY_PREFIX];
	struct ag_bytes fromkey = {NULL, 0};
	if (r->lo != INT64_MIN)
		ag__window_key(from, r->lo + 1, &(struct ag_bytes){NULL, 0}, &fromkey);
	int rc = ag__store_iter_from(w->store, t->name, p, fromkey, collect_stored, r);
	if (rc < 0)
		return rc;
	struct ag__part *pt = r->pt;
	for (uint32_t b = 0; b < pt->nbuckets; b++) {
		for (struct ag__entry *e = pt->buckets[b]; e; e = e->next) {
			int64_t start;
			struct ag_bytes key;
			if (ag__window_key_split((struct ag_bytes){e->key, e->klen}, &start, &key) <
				    0 ||
			    !in_range(r, start, key) || e->deleted)
				continue;
			if ((rc = items_add(r->out, start, key, e->val, e->vlen, 1)) < 0)
				return rc;
		}
	}
	if (r->out->n > 1)
		qsort(r->out->v, r->out->n, sizeof(*r->out->v), item_cmp);
	return 0;
}

/* Calls fn for each collected item that holds a value. */
static int
call_items(struct ag_table *t, const struct items *it, ag_window_fn fn, void *userdata,
	   int log_failures)
{
	for (size_t i = 0; i < it->n; i++) {
		const struct item *x = &it->v[i];
		if (!x->val)
			continue;
		struct ag_value v;
		struct ag_bytes key = {x->key, x->klen};
		struct ag_window win = {x->start, x->start + t->win.size};
		if (ag__table_value((struct ag_bytes){x->val, x->vlen}, &v) < 0) {
			ag__log(t->app, AG_LOG_WARN,
				"table %s: window [%lld, %lld) of a key holds a value of an "
				"unknown type; skipped",
				t->name, (long long)win.start_ms, (long long)win.end_ms);
			continue;
		}
		int rc = fn(t, &key, &win, &v, userdata);
		if (rc < 0 && log_failures) {
			ag__log(t->app, AG_LOG_ERROR,
				"table %s: on_close of window [%lld, %lld) key %.*s failed: %s; "
				"the "
				"window stays closed",
				t->name, (long long)win.start_ms, (long long)win.end_ms,
				(int)(x->klen > 200 ? 200 : x->klen), (const char *)x->key,
				ag_strerror(rc));
		} else if (rc < 0) {
			return rc;
		}
	}
	return 0;
}

/* ---- stream time: closing and expiring ---- */

static int64_t
event_time(const struct ag_table *t, const struct ag_event *ev)
{
	if (!ev || t->win.opts.clock == AG_WINDOW_WALL_CLOCK)
		return ag__wall_ms();
	int64_t ms = -1;
	if (t->win.opts.clock == AG_WINDOW_FIELD)
		ms = t->win.opts.time_fn(ev, t->win.opts.time_userdata);
	if (ms < 0)
		ms = ag_event_timestamp(ev);
	return ms < 0 ? ag__wall_ms() : ms;
}

/* Deletes every window of (t, p) starting at or before to. */
static int
expire(struct ag__worker *w, struct ag_table *t, int32_t p, int64_t to)
{
	struct ag__part *pt = &t->rt->parts[p];
	struct items it = {0};
	struct range r = {.pt = pt, .lo = pt->expired_to, .hi = to, .out = &it};
	int rc = collect(w, t, p, &r);
	struct ag__op op = {.t = t, .pt = pt, .p = p, .off = -1};
	struct ag__found none = {.off = -1};
	uint8_t buf[AG__TABLE_KEY_MAX];
	for (size_t i = 0; rc == 0 && i < it.n; i++) {
		struct ag_bytes skey;
		rc = ag__window_key(buf, it.v[i].start,
				    &(struct ag_bytes){it.v[i].key, it.v[i].klen}, &skey);
		if (rc == 0)
			rc = ag__table_write(&op, skey, NULL, &none);
	}
	if (rc == 0 && it.n)
		ag__log(t->app, AG_LOG_DEBUG,
			"table %s partition %d: %zu window keys up to start %lld expired", t->name,
			(int)p, it.n, (long long)to);
	items_free(&it);
	return rc;
}

/* Closes the windows of (t, p) starting in (from, to]: on_close for each key. */
static int
close_windows(struct ag__worker *w, struct ag_table *t, int32_t p, int64_t from, int64_t to)
{
	struct ag__part *pt = &t->rt->parts[p];
	struct items it = {0};
	struct range r = {.pt = pt, .lo = from, .hi = to, .out = &it};
	int rc = collect(w, t, p, &r);
	if (rc == 0)
		rc = call_items(t, &it, t->win.opts.on_close, t->win.opts.close_userdata, 1);
	items_free(&it);
	return rc;
}

/* Stream time moved: closes and deletes what it passed. */
static int
advance(struct ag__worker *w, struct ag_table *t, int32_t p)
{
	struct ag__part *pt = &t->rt->parts[p];
	if (pt->closing || pt->stream_time == INT64_MIN)
		return 0;
	const struct ag__window *win = &t->win;
	int64_t st = pt->stream_time;
	int64_t last = window_start(t, st - win->size - win->grace);
	if (last > pt->closing_to) {
		int64_t from = pt->closing_to;
		uint32_t epoch = pt->epoch;
		ag__log(t->app, AG_LOG_DEBUG,
			"table %s partition %d: stream time %lld closes the windows starting in "
			"(%lld, %lld]",
			t->name, (int)p, (long long)st, (long long)from, (long long)last);
		pt->closing_to = last;
		if (win->opts.on_close) {
			pt->closing = 1;
			int rc = close_windows(w, t, p, from, last);
			if (pt->epoch != epoch)
				return AG_ESTOPPED; /* revoked while callbacks ran */
			pt->closing = 0;
			if (rc < 0) {
				pt->closing_to = from;
				return rc;
			}
		}
		pt->closed_to = last;
		pt->meta_dirty = 1;
	}
	int64_t keep = win->expires > win->grace ? win->expires : win->grace;
	int64_t gone = window_start(t, st - win->size - keep);
	if (gone > pt->closed_to)
		gone = pt->closed_to;
	if (gone > pt->expired_to) {
		int rc = expire(w, t, p, gone);
		if (rc < 0)
			return rc;
		pt->expired_to = gone;
	}
	return 0;
}

int
ag__window_advance_to(struct ag__worker *w, struct ag_table *t, int32_t p, int64_t time)
{
	int rc = ag__window_meta_load(w, t, p);
	if (rc < 0)
		return rc;
	struct ag__part *pt = &t->rt->parts[p];
	if (time <= pt->stream_time)
		return 0;
	pt->stream_time = time;
	pt->meta_dirty = 1;
	return advance(w, t, p);
}

/* Whether the watermark of the table's source partition p moves its stream time. */
static int
has_watermark(const struct ag_table *t, int32_t p)
{
	const struct ag__tpart *tp = t->source->parts ? &t->source->parts[p] : NULL;
	return tp && tp->wm && tp->assigned && t->win.opts.clock != AG_WINDOW_WALL_CLOCK;
}

int
ag__window_prepare(struct ag__op *op, int advance_time, int64_t *time)
{
	struct ag_table *t = op->t;
	struct ag__worker *w = t->app->worker;
	int rc = ag__window_meta_load(w, t, op->p);
	if (rc < 0)
		return rc;
	*time = event_time(t, op->ev);
	/*
	 * Where an agent of this worker reads the table's source, the watermark moves stream
	 * time (watermark.c); otherwise the writes do, as the highest event time written.
	 */
	if (!advance_time || !op->ev || has_watermark(t, op->p))
		return 0;
	return ag__window_advance_to(w, t, op->p, *time);
}

/* ---- late events ---- */

/* Lines a table logs about late events per second; the rest are counted. */
#define LATE_LOG_PER_S 10

int
ag__window_late(const struct ag__op *op, int64_t time, const int64_t *starts, size_t n)
{
	struct ag_table *t = op->t;
	struct ag__table_rt *rt = t->rt;
	const struct ag_event *ev = op->ev;
	if (ev && rt->late_tp == ev->tp && rt->late_off == ev->msg->offset)
		return 0; /* another write of the same event: counted and sent once */
	rt->late_tp = ev ? (const void *)ev->tp : NULL;
	rt->late_off = ev ? ev->msg->offset : -1;
	rt->late_events++;
	struct ag__worker *w = t->app->worker;
	w->late_events++;
	/* starts[0] is the newest window missed; how late: past its end + grace */
	int64_t close_at = starts[0] + t->win.size + t->win.grace;
	int64_t past = op->pt->stream_time - close_at;
	uint64_t now = ag__now_ns();
	if (now - rt->late_log_ns >= 1000000000u) {
		rt->late_log_ns = now;
		rt->late_logged = 0;
	}
	int sending = t->late_topic && ev;
	if (rt->late_logged++ < LATE_LOG_PER_S) {
		char where[320] = "outside an event";
		if (ev)
			snprintf(where, sizeof(where), "%s[%d]@%lld", ev->tp->topic->name,
				 (int)ev->msg->partition, (long long)ev->msg->offset);
		ag__log(t->app, AG_LOG_WARN,
			"table %s: late event %s (time %lld) for window [%lld, %lld)%s: stream "
			"time %lld is %lld ms past its end + grace; %s (%llu late so far)",
			t->name, where, (long long)time, (long long)starts[0],
			(long long)(starts[0] + t->win.size), n > 1 ? " and older ones" : "",
			(long long)op->pt->stream_time, (long long)past,
			sending ? "sent to the late topic" : "dropped",
			(unsigned long long)rt->late_events);
	}
	if (!sending)
		return 0;
	/* The event as it came, with headers saying what it missed. */
	rd_kafka_headers_t *h = NULL;
	if (rd_kafka_message_headers(ev->msg, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h)
		h = rd_kafka_headers_copy(h);
	else
		h = rd_kafka_headers_new(3);
	char buf[64], windows[512];
	size_t len = 0;
	windows[0] = 0;
	for (size_t i = n; i-- > 0 && len < sizeof(windows) - 48;)
		len += (size_t)snprintf(windows + len, sizeof(windows) - len, "%s%lld-%lld",
					len ? "," : "", (long long)starts[i],
					(long long)(starts[i] + t->win.size));
	rd_kafka_header_add(h, "faustc-late-table", -1, t->name, -1);
	rd_kafka_header_add(h, "faustc-late-window", -1, windows, -1);
	snprintf(buf, sizeof(buf), "%lld", (long long)op->pt->stream_time);
	rd_kafka_header_add(h, "faustc-late-stream-time", -1, buf, -1);
	const rd_kafka_message_t *m = ev->msg;
	struct ag_bytes key = {m->key, m->key ? m->key_len : 0};
	struct ag_bytes value = {m->payload, m->payload ? m->len : 0};
	int rc = ag__produce_wait(w, t->late_topic, op->p % t->late_topic->partitions,
				  m->key ? &key : NULL, m->payload ? &value : NULL, h,
				  ag_event_timestamp(ev));
	if (rc < 0)
		ag__log(t->app, AG_LOG_ERROR,
			"table %s: cannot send late event %s[%d]@%lld to %s: %s", t->name,
			ev->tp->topic->name, (int)m->partition, (long long)m->offset,
			t->late_topic->name, ag_strerror(rc));
	else
		rt->late_sent++;
	return rc;
}

void
ag__window_report(const struct ag_table *t)
{
	if (!t->rt || !t->rt->late_events)
		return;
	if (t->late_topic)
		ag__log(t->app, AG_LOG_WARN,
			"table %s: %llu late events (older than their window's end + grace), "
			"%llu sent to %s",
			t->name, (unsigned long long)t->rt->late_events,
			(unsigned long long)t->rt->late_sent, t->late_topic->name);
	else
		ag__log(t->app, AG_LOG_WARN,
			"table %s: %llu late events (older than their window's end + grace) "
			"dropped; late_events=topic keeps them in <app_id>-%s-late",
			t->name, (unsigned long long)t->rt->late_events, t->name);
}

int
ag__window_closed(const struct ag__op *op, int64_t start)
{
	return start <= op->pt->closing_to;
}

/* ---- reads ---- */

static int
window_op(struct ag_table *t, const struct ag_bytes *key, struct ag__op *op)
{
	if (!t || !t->win.on)
		return -EINVAL;
	return ag__op_begin(t, key, op);
}

AG_EXPORT int
ag_table_window_get(struct ag_table *t, const struct ag_bytes *key, enum ag_window_rel rel,
		    int64_t ms, struct ag_value *out, struct ag_window *window)
{
	struct ag__op op;
	int rc = window_op(t, key, &op);
	if (rc < 0)
		return rc;
	int64_t time;
	switch (rel) {
	case AG_WINDOW_CURRENT:
		time = event_time(t, op.ev);
		break;
	case AG_WINDOW_NOW:
		time = ag__wall_ms();
		break;
	case AG_WINDOW_AT:
		time = ms;
		break;
	case AG_WINDOW_DELTA:
		time = event_time(t, op.ev) - ms;
		break;
	default:
		return -EINVAL;
	}
	int64_t start = window_start(t, time);
	if (window)
		*window = (struct ag_window){start, start + t->win.size};
	uint8_t buf[AG__TABLE_KEY_MAX];
	struct ag_bytes skey;
	struct ag__found f;
	if ((rc = ag__window_key(buf, start, key, &skey)) < 0)
		return -ENOENT;
	if ((rc = ag__table_fetch(&op, skey, &f)) < 0)
		return rc;
	if (!f.present)
		return -ENOENT;
	return ag__table_value(f.payload, out);
}

AG_EXPORT int
ag_table_window_get_i64(struct ag_table *t, const struct ag_bytes *key, enum ag_window_rel rel,
			int64_t ms, int64_t *out, struct ag_window *window)
{
	struct ag_value v;
	int rc = ag_table_window_get(t, key, rel, ms, &v, window);
	if (rc == -ENOENT) {
		*out = t->opts.default_i64;
		return 0;
	}
	if (rc < 0)
		return rc;
	if (v.type != AG_VALUE_I64)
		return AG_ETYPE;
	*out = v.i64;
	return 0;
}

AG_EXPORT int
ag_table_window_get_f64(struct ag_table *t, const struct ag_bytes *key, enum ag_window_rel rel,
			int64_t ms, double *out, struct ag_window *window)
{
	struct ag_value v;
	int rc = ag_table_window_get(t, key, rel, ms, &v, window);
	if (rc == -ENOENT) {
		*out = t->opts.default_f64;
		return 0;
	}
	if (rc < 0)
		return rc;
	if (v.type != AG_VALUE_F64 && v.type != AG_VALUE_I64)
		return AG_ETYPE;
	*out = v.type == AG_VALUE_F64 ? v.f64 : (double)v.i64;
	return 0;
}

AG_EXPORT int
ag_table_window_each(struct ag_table *t, const struct ag_bytes *key, ag_window_fn fn,
		     void *userdata)
{
	struct ag__op op;
	int rc = window_op(t, key, &op);
	if (rc < 0)
		return rc;
	if (!fn)
		return -EINVAL;
	struct items it = {0};
	struct range r = {.pt = op.pt, .lo = INT64_MIN, .hi = INT64_MAX, .key = key, .out = &it};
	rc = collect(t->app->worker, t, op.p, &r);
	if (rc == 0)
		rc = call_items(t, &it, fn, userdata, 0);
	items_free(&it);
	return rc;
}

AG_EXPORT int
ag_table_window_keys(struct ag_table *t, int64_t start_ms, ag_window_fn fn, void *userdata)
{
	if (!t || !t->win.on || !fn || start_ms == INT64_MIN)
		return -EINVAL;
	struct ag__worker *w = t->app->worker;
	if (!w || !t->rt)
		return AG_ESTOPPED;
	int rc = 0;
	for (int32_t p = 0; rc == 0 && p < t->changelog->partitions; p++) {
		const struct ag__tpart *tp = t->source->parts ? &t->source->parts[p] : NULL;
		if (!tp || !tp->assigned)
			continue;
		struct items it = {0};
		struct range r = {
			.pt = &t->rt->parts[p], .lo = start_ms - 1, .hi = start_ms, .out = &it};
		rc = collect(w, t, p, &r);
		if (rc == 0)
			rc = call_items(t, &it, fn, userdata, 0);
		items_free(&it);
	}
	return rc;
}
