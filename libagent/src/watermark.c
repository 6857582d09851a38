/*
 * Watermarks: when a windowed table's windows may close.
 *
 * A window closes once stream time passes its end plus the grace period. A single running
 * maximum of event times is the wrong stream time after a group_by: a repartition partition
 * gets forwards from every source partition, and a source partition read ahead of another
 * (normal: fetches come per partition, in large batches) would make every event of the
 * others late. So stream time is a watermark, as in Flink: each partition that a windowed
 * table follows has channels (the source partitions whose events reach it, or just itself
 * for a plain topic), each channel's progress is the highest event time seen on it, and
 * stream time is the minimum over the channels. A lagging source partition then holds the
 * windows open instead of losing its events.
 *
 * Progress crosses the broker with the data: every forward's faustc-src header carries its
 * source partition's progress (with its source position, in a compact binary form; readers
 * also take the older text form: watermark.h, ag__fwd_src_format), and each forwarder sends heartbeats (records with no key and
 * no value and a faustc-wm header) to every partition of a boundary topic that a windowed
 * table follows, at most every AG__WM_HEARTBEAT_MS, so a partition also learns the progress
 * of a source that sends it nothing. Readers take heartbeats in stream order, ack them and
 * never hand them to an agent.
 *
 * Idleness: a source partition that has nothing buffered, is caught up to its high
 * watermark (the consumer's partition-EOF event) and took nothing for idle_timeout is idle:
 * its forwarder says so in a heartbeat (for a plain topic the reader decides it itself), and
 * it is left out of the minimum until it has data again. When every channel is idle, stream
 * time goes on with the worker's clock from the highest event time reached, so windows
 * close without new events (see docs/tables.md).
 *
 * The watermark moves when an agent has finished the events it holds (at its next
 * ag_stream_next or take, and when woken by the tick while waiting), never in the middle of
 * a batch, so an event that was already taken cannot be made late by those taken after it.
 * Closing runs on that agent's coroutine, so on_close may send and park. Channel times are
 * stored with each windowed table's window state record, restored with it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table_rt.h"
#include "watermark.h"

/* ---- the core ---- */

int
ag__wm_init(struct ag__wm *wm, uint32_t nchan)
{
	memset(wm, 0, sizeof(*wm));
	wm->time = malloc((nchan ? nchan : 1) * sizeof(*wm->time));
	wm->idle = malloc(nchan ? nchan : 1);
	if (!wm->time || !wm->idle) {
		ag__wm_free(wm);
		return -ENOMEM;
	}
	wm->nchan = nchan;
	ag__wm_reset(wm);
	return 0;
}

void
ag__wm_free(struct ag__wm *wm)
{
	free(wm->time);
	free(wm->idle);
	memset(wm, 0, sizeof(*wm));
}

void
ag__wm_reset(struct ag__wm *wm)
{
	for (uint32_t i = 0; i < wm->nchan; i++) {
		wm->time[i] = INT64_MIN;
		wm->idle[i] = 0;
	}
	wm->nidle = 0;
	wm->idle_base = INT64_MIN;
	wm->idle_ns = 0;
	wm->last_ns = 0;
	wm->dirty = 0;
}

static int64_t
highest(const struct ag__wm *wm)
{
	int64_t hi = INT64_MIN;
	for (uint32_t i = 0; i < wm->nchan; i++)
		hi = wm->time[i] > hi ? wm->time[i] : hi;
	return hi;
}

void
ag__wm_set_idle(struct ag__wm *wm, uint32_t chan, int idle, uint64_t now_ns)
{
	if (chan >= wm->nchan || wm->idle[chan] == !!idle)
		return;
	wm->idle[chan] = (uint8_t) !!idle;
	wm->nidle += idle ? 1 : (uint32_t)-1;
	if (wm->nidle == wm->nchan) {
		wm->idle_base = highest(wm);
		wm->idle_ns = now_ns ? now_ns : 1;
	} else {
		wm->idle_ns = 0;
	}
}

void
ag__wm_observe(struct ag__wm *wm, uint32_t chan, int64_t time, uint64_t now_ns)
{
	if (chan >= wm->nchan)
		return;
	if (time > wm->time[chan]) {
		wm->time[chan] = time;
		wm->dirty = 1;
	}
	ag__wm_set_idle(wm, chan, 0, now_ns);
}

int64_t
ag__wm_value(const struct ag__wm *wm, uint64_t now_ns)
{
	if (!wm->nchan)
		return INT64_MIN;
	if (wm->nidle == wm->nchan) {
		if (wm->idle_base == INT64_MIN)
			return INT64_MIN;
		uint64_t ms = now_ns > wm->idle_ns ? (now_ns - wm->idle_ns) / 1000000u : 0;
		return ms > (uint64_t)(INT64_MAX - wm->idle_base) ? INT64_MAX
								  : wm->idle_base + (int64_t)ms;
	}
	int64_t lo = INT64_MAX;
	for (uint32_t i = 0; i < wm->nchan; i++) {
		if (!wm->idle[i] && wm->time[i] < lo)
			lo = wm->time[i];
	}
	return lo;
}

void
ag__wm_merge(struct ag__wm *wm, const int64_t *times, uint32_t n)
{
	for (uint32_t i = 0; i < n && i < wm->nchan; i++) {
		if (times[i] > wm->time[i])
			wm->time[i] = times[i];
	}
	if (wm->nidle == wm->nchan && highest(wm) > wm->idle_base)
		wm->idle_base = highest(wm); /* all idle already: the clock goes on from there */
}

int
ag__wm_heartbeat_format(char *buf, size_t cap, uint32_t part, int64_t time, int idle)
{
	return snprintf(buf, cap, "%u:%lld:%d", part, (long long)time, idle ? 1 : 0);
}

int
ag__wm_heartbeat_parse(const void *v, size_t len, uint32_t *part, int64_t *time, int *idle)
{
	char buf[64], *end;
	if (!v || len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, v, len);
	buf[len] = 0;
	errno = 0;
	unsigned long p = strtoul(buf, &end, 10);
	if (end == buf || *end != ':' || p > 1000000)
		return -1;
	char *t = end + 1;
	long long tm = strtoll(t, &end, 10);
	if (end == t || *end != ':' || errno)
		return -1;
	if ((end[1] != '0' && end[1] != '1') || end[2])
		return -1;
	*part = (uint32_t)p;
	*time = tm;
	*idle = end[1] == '1';
	return 0;
}

static void
put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t
get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

size_t
ag__fwd_src_format(uint8_t *buf, int32_t part, int64_t off, int64_t time)
{
	buf[0] = AG__FWD_SRC_V1;
	put_be(buf + 1, (uint32_t)part, 4);
	put_be(buf + 5, (uint64_t)off, 8);
	if (time == INT64_MIN)
		return 13;
	put_be(buf + 13, (uint64_t)time, 8);
	return 21;
}

/* The text form of earlier versions: "PARTITION:OFFSET[:PROGRESS]". */
static int
fwd_src_parse_text(const char *v, size_t len, int32_t *part, int64_t *off, int64_t *time)
{
	char buf[80], *end;
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, v, len);
	buf[len] = 0;
	long p = strtol(buf, &end, 10);
	if (end == buf || *end != ':' || p < 0 || p > 1000000)
		return -1;
	char *o = end + 1;
	long long offset = strtoll(o, &end, 10);
	if (end == o || (*end && *end != ':'))
		return -1;
	*part = (int32_t)p;
	*off = offset;
	*time = INT64_MIN;
	if (*end == ':') {
		char *t = end + 1;
		long long tm = strtoll(t, &end, 10);
		if (end != t && !*end)
			*time = tm;
	}
	return 0;
}

int
ag__fwd_src_parse(const void *v, size_t len, int32_t *part, int64_t *off, int64_t *time)
{
	const uint8_t *b = v;
	if (!v || len == 0)
		return -1;
	if (b[0] != AG__FWD_SRC_V1)
		return fwd_src_parse_text(v, len, part, off, time);
	if (len != 13 && len != 21)
		return -1;
	int32_t p = (int32_t)(uint32_t)get_be(b + 1, 4);
	if (p < 0 || p > 1000000)
		return -1;
	*part = p;
	*off = (int64_t)get_be(b + 5, 8);
	*time = len == 21 ? (int64_t)get_be(b + 13, 8) : INT64_MIN;
	return 0;
}

/* ---- in the worker ---- */

int64_t
ag__wm_event_time(const struct ag_topic *t, const struct ag_event *ev)
{
	int64_t ms = -1;
	if (t->wm_fn)
		ms = t->wm_fn(ev, t->wm_userdata);
	if (ms < 0)
		ms = ag_event_timestamp(ev);
	return ms < 0 ? ag__wall_ms() : ms;
}

int
ag__wm_tpart_init(struct ag__tpart *tp)
{
	if (!tp->topic->windowed || tp->wm)
		return 0;
	tp->wm = malloc(sizeof(*tp->wm));
	if (!tp->wm)
		return -ENOMEM;
	int rc = ag__wm_init(tp->wm, tp->topic->wm_sources ? tp->topic->wm_sources : 1);
	if (rc < 0) {
		free(tp->wm);
		tp->wm = NULL;
	}
	return rc;
}

void
ag__wm_tpart_free(struct ag__tpart *tp)
{
	if (!tp->wm)
		return;
	ag__wm_free(tp->wm);
	free(tp->wm);
	tp->wm = NULL;
}

int
ag__wm_rt_init(struct ag__agent_rt *rt)
{
	const struct ag__seg *seg = rt->seg;
	if (!seg || !seg->boundary || !seg->boundary->topic->windowed)
		return 0;
	int n = seg->input->partitions;
	rt->wsrc = calloc((size_t)n, sizeof(*rt->wsrc));
	if (!rt->wsrc)
		return -ENOMEM;
	uint64_t now = ag__now_ns();
	for (int p = 0; p < n; p++)
		rt->wsrc[p] = (struct ag__wm_src){
			.time = INT64_MIN, .sent_time = INT64_MIN, .last_ns = now};
	return 0;
}

void
ag__wm_assigned(struct ag__tpart *tp)
{
	uint64_t now = ag__now_ns();
	tp->at_eof = 0;
	if (tp->wm) {
		ag__wm_reset(tp->wm);
		tp->wm->last_ns = now; /* quiet time counts from the assignment */
	}
	/* So does a forwarder's of this partition. */
	for (size_t i = 0; i < tp->topic->nreaders; i++) {
		const struct ag__seg *seg = tp->topic->readers[i];
		for (size_t k = 0; k < seg->nrts; k++) {
			struct ag__wm_src *src = seg->rts[k]->wsrc;
			if (src) {
				src[tp->partition].last_ns = now;
				src[tp->partition].idle_sent = 0;
			}
		}
	}
}

int64_t
ag__wm_forward_time(const struct ag__agent_rt *rt, const struct ag_event *ev)
{
	return rt->wsrc ? rt->wsrc[ev->tp->partition].time : INT64_MIN;
}

int
ag__wm_taken(struct ag__agent_rt *rt, struct ag_event *ev)
{
	struct ag__tpart *tp = ev->tp;
	const rd_kafka_message_t *m = ev->msg;
	const struct ag_topic *topic = tp->topic;
	uint64_t now = ag__now_ns();
	if (topic->wm_sources && !m->payload && !m->key) {
		struct ag_bytes v;
		if (ag_event_header(ev, AG__WM_HEADER, &v) == 0) {
			uint32_t part;
			int64_t time;
			int idle;
			if (rt->seg->reader == 0 && tp->wm &&
			    ag__wm_heartbeat_parse(v.ptr, v.len, &part, &time, &idle) == 0 &&
			    !(idle && part < tp->wm->nchan && tp->wm->idle[part] &&
			      time <= tp->wm->time[part])) {
				/* (An idleness said again changes nothing: the idle clock runs on.) */
				int was = part < tp->wm->nchan ? tp->wm->idle[part] : -1;
				if (time != INT64_MIN)
					ag__wm_observe(tp->wm, part, time, now);
				ag__wm_set_idle(tp->wm, part, idle, now);
				if (was >= 0 && was != idle)
					ag__log(rt->w->app, AG_LOG_DEBUG,
						"%s[%d]: source partition %u is %s at %lld",
						topic->name, (int)tp->partition, part,
						idle ? "idle" : "active",
						(long long)tp->wm->time[part]);
			}
			return 1;
		}
	}
	if (tp->wm && rt->seg->reader == 0) {
		if (!topic->wm_sources) {
			ag__wm_observe(tp->wm, 0, ag__wm_event_time(topic, ev), now);
		} else if (ev->src_part >= 0 && ev->src_time != INT64_MIN) {
			ag__wm_observe(tp->wm, (uint32_t)ev->src_part, ev->src_time, now);
		}
		tp->wm->last_ns = now;
	}
	if (rt->wsrc) {
		struct ag__wm_src *src = &rt->wsrc[tp->partition];
		int64_t time = ag__wm_event_time(rt->seg->boundary->topic, ev);
		if (time > src->time)
			src->time = time;
		src->last_ns = now;
		src->idle_sent = 0;
	}
	return 0;
}

void
ag__wm_apply(struct ag__agent_rt *rt, struct ag__tpart *only)
{
	struct ag__worker *w = rt->w;
	struct ag_topic *topic = rt->seg->input;
	if (rt->nevs || !topic->windowed || !topic->parts)
		return;
	uint64_t now = ag__now_ns();
	for (int p = 0; p < topic->partitions; p++) {
		struct ag__tpart *tp = only ? only : &topic->parts[p];
		if (!tp->wm || !tp->assigned || !tp->ready || tp->revoking)
			goto next;
		int64_t value = ag__wm_value(tp->wm, now);
		for (size_t i = 0; i < w->app->ntables; i++) {
			struct ag_table *t = w->app->tables[i];
			if (t->source != topic || !t->win.on || !t->rt)
				continue;
			int64_t target =
				t->win.opts.clock == AG_WINDOW_WALL_CLOCK ? ag__wall_ms() : value;
			if (target == INT64_MIN)
				continue;
			int rc = ag__window_advance_to(w, t, tp->partition, target);
			if (rc < 0 && rc != AG_ESTOPPED)
				ag__log(w->app, AG_LOG_WARN,
					"table %s partition %d: closing windows failed: %s",
					t->name, (int)tp->partition, ag_strerror(rc));
			if (rt->nevs || !tp->assigned)
				break; /* on_close parked, and things moved meanwhile */
		}
	next:
		if (only)
			break;
	}
}

/* Sends a heartbeat for source partition p to every partition of out. Returns 0, < 0. */
static int
heartbeat(struct ag__worker *w, struct ag_topic *out, int32_t p, int64_t time, int idle)
{
	char v[64];
	ag__wm_heartbeat_format(v, sizeof(v), (uint32_t)p, time, idle);
	for (int q = 0; q < out->partitions; q++) {
		rd_kafka_headers_t *h = rd_kafka_headers_new(1);
		rd_kafka_header_add(h, AG__WM_HEADER, -1, v, -1);
		int rc = ag__produce_hdrs(w, out, q, NULL, NULL, h, 0);
		if (rc < 0) {
			rd_kafka_headers_destroy(h);
			return rc; /* the queue is full: the next tick tries again */
		}
		w->sent--; /* a control record, not an output: the stats count it apart */
		w->wm_heartbeats++;
	}
	return 0;
}

/* A forwarder's heartbeats: progress at most every AG__WM_HEARTBEAT_MS, idleness while it lasts. */
static void
forwarder_tick(struct ag__worker *w, struct ag__agent_rt *rt, uint64_t now, uint64_t idle_ns)
{
	struct ag_topic *in = rt->seg->input, *out = rt->seg->boundary->topic;
	for (int p = 0; in->parts && p < in->partitions; p++) {
		const struct ag__tpart *tp = &in->parts[p];
		struct ag__wm_src *src = &rt->wsrc[p];
		if (!tp->assigned || !tp->ready || tp->revoking)
			continue;
		/*
		 * Idleness is said again every idle timeout (1 s at least) while it lasts: a
		 * reader that moves to another worker starts its channels afresh (busy, the
		 * stored times) and has read past the first heartbeat; said once, a source
		 * that stays idle would hold that reader's windows open for good.
		 */
		uint64_t repeat_ns = idle_ns > 1000000000u ? idle_ns : 1000000000u;
		int idle = !rt->nevs && tp->at_eof && !tp->rings[rt->seg->reader].count &&
			   now - src->last_ns >= idle_ns &&
			   (!src->idle_sent || now - src->sent_ns >= repeat_ns);
		int progress = src->time != INT64_MIN && src->time > src->sent_time &&
			       now - src->sent_ns >= (uint64_t)AG__WM_HEARTBEAT_MS * 1000000u;
		if (!idle && !progress)
			continue;
		if (heartbeat(w, out, p, src->time, idle) < 0)
			return;
		src->sent_time = src->time;
		src->sent_ns = now;
		if (idle && !src->idle_sent) {
			src->idle_sent = 1;
			ag__log(w->app, AG_LOG_DEBUG,
				"%s[%d] is idle: it no longer holds back the windows after %s",
				in->name, p, out->name);
		}
	}
}

/* A plain topic's first reader decides its partitions' idleness itself. */
static void
reader_tick(struct ag__agent_rt *rt, uint64_t now, uint64_t idle_ns)
{
	struct ag_topic *in = rt->seg->input;
	for (int p = 0; !in->wm_sources && in->parts && p < in->partitions; p++) {
		struct ag__tpart *tp = &in->parts[p];
		if (!tp->wm || !tp->assigned || !tp->ready || tp->wm->idle[0])
			continue;
		if (tp->at_eof && !tp->rings[0].count && !rt->nevs &&
		    now - tp->wm->last_ns >= idle_ns)
			ag__wm_set_idle(tp->wm, 0, 1, now);
	}
}

static void
on_tick(uv_timer_t *h)
{
	struct ag__worker *w = h->data;
	if (w->stopping)
		return;
	uint64_t now = ag__now_ns();
	uint64_t idle_ns = (uint64_t)(w->app->idle_timeout * 1e9);
	for (size_t i = 0; i < w->nrts; i++) {
		struct ag__agent_rt *rt = w->rts[i];
		if (!rt->seg || rt->state == AG__AGENT_DONE)
			continue;
		if (rt->wsrc)
			forwarder_tick(w, rt, now, idle_ns);
		if (!rt->seg->input->windowed || rt->seg->reader != 0)
			continue;
		reader_tick(rt, now, idle_ns);
		rt->wm_due = 1;
		if (rt->state == AG__AGENT_WAIT_EVENT)
			ag__agent_wake(w, rt);
	}
}

int
ag__wm_open(struct ag__worker *w)
{
	int any = 0;
	for (size_t i = 0; i < w->app->ntopics; i++)
		any |= w->app->topics[i]->windowed;
	if (!any)
		return 0;
	int rc = uv_timer_init(&w->loop, &w->wm_timer);
	if (rc < 0)
		return rc;
	w->wm_timer.data = w;
	w->wm_timer_open = 1;
	return uv_timer_start(&w->wm_timer, on_tick, AG__WM_TICK_MS, AG__WM_TICK_MS);
}

void
ag__wm_close(struct ag__worker *w)
{
	if (!w->wm_timer_open)
		return;
	w->wm_timer_open = 0;
	uv_close((uv_handle_t *)&w->wm_timer, NULL);
}
