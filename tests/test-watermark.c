/*
 * The watermark rules without a worker (watermark.c): stream time is the minimum over a
 * partition's channels, idle channels are left out, every channel idle lets time go on with
 * the clock, stored channel times come back on restore, and the heartbeat header and the
 * window state record (with channel times, and as written before watermarks) round-trip.
 * Plus the app checks at finalize: the late topics, and conflicting time functions.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "table_rt.h"
#include "watermark.h"

#include "tap.h"

#define S(x) ((uint64_t)(x)*1000000000u) /* seconds on the monotonic clock, in ns */

static void
test_minimum(void)
{
	struct ag__wm wm;
	ok_int_eq(ag__wm_init(&wm, 3), 0, "a watermark with 3 channels");
	ok(ag__wm_value(&wm, S(1)) == INT64_MIN, "no stream time before any channel is seen");
	ag__wm_observe(&wm, 0, 100000, S(1));
	ag__wm_observe(&wm, 1, 50000, S(1));
	ok(ag__wm_value(&wm, S(1)) == INT64_MIN, "a channel not seen yet holds it back");
	ag__wm_observe(&wm, 2, 70000, S(1));
	ok_int_eq(ag__wm_value(&wm, S(1)), 50000, "the minimum over the channels");
	ag__wm_observe(&wm, 1, 40000, S(2));
	ok_int_eq(ag__wm_value(&wm, S(2)), 50000, "a channel never goes back (out-of-order event)");
	ag__wm_observe(&wm, 1, 120000, S(2));
	ok_int_eq(ag__wm_value(&wm, S(2)), 70000, "the lagging channel moves, the minimum follows");
	ok(wm.dirty, "moved channel times are to be stored");
	ag__wm_observe(&wm, 7, 999999, S(2));
	ok_int_eq(ag__wm_value(&wm, S(2)), 70000, "a channel out of range is ignored");
	ag__wm_free(&wm);
}

static void
test_idle(void)
{
	struct ag__wm wm;
	ag__wm_init(&wm, 3);
	ag__wm_observe(&wm, 0, 10000, S(1));
	ag__wm_observe(&wm, 1, 90000, S(1));
	ag__wm_observe(&wm, 2, 60000, S(1));
	ag__wm_set_idle(&wm, 0, 1, S(2));
	ok_int_eq(ag__wm_value(&wm, S(2)), 60000, "an idle channel no longer holds it back");
	ag__wm_set_idle(&wm, 0, 1, S(2));
	ok_int_eq(wm.nidle, 1, "marking a channel idle twice counts it once");
	ag__wm_observe(&wm, 0, 20000, S(3));
	ok_int_eq(ag__wm_value(&wm, S(3)), 20000,
		  "data makes it active again: its progress counts (its events may be late)");
	ag__wm_set_idle(&wm, 0, 1, S(4));
	ag__wm_set_idle(&wm, 1, 1, S(4));
	ag__wm_set_idle(&wm, 2, 1, S(5));
	ok_int_eq(ag__wm_value(&wm, S(5)), 90000,
		  "every channel idle: the highest time reached, when the last one went idle");
	ok_int_eq(ag__wm_value(&wm, S(5) + 2500000000u), 92500,
		  "then time goes on with the clock (2.5 s later: +2500 ms)");
	ag__wm_observe(&wm, 2, 61000, S(9));
	ok_int_eq(ag__wm_value(&wm, S(9)), 61000,
		  "a channel with data again ends the clock: the minimum of the active ones");
	ag__wm_reset(&wm);
	ok(ag__wm_value(&wm, S(9)) == INT64_MIN && wm.nidle == 0,
	   "a reset (new assignment) forgets progress and idleness");
	ag__wm_set_idle(&wm, 0, 1, S(10));
	ag__wm_set_idle(&wm, 1, 1, S(10));
	ag__wm_set_idle(&wm, 2, 1, S(10));
	ok(ag__wm_value(&wm, S(20)) == INT64_MIN,
	   "every channel idle but none ever seen: still no stream time");
	ag__wm_free(&wm);

	ag__wm_init(&wm, 1);
	ag__wm_observe(&wm, 0, 5000, S(1));
	ok_int_eq(ag__wm_value(&wm, S(1)), 5000, "a plain topic: its one channel is the time");
	ag__wm_set_idle(&wm, 0, 1, S(2));
	ok_int_eq(ag__wm_value(&wm, S(4)), 7000, "idle, it goes on with the clock");
	ag__wm_free(&wm);
}

static void
test_restore(void)
{
	struct ag__wm wm;
	ag__wm_init(&wm, 4);
	int64_t stored[5] = {300, INT64_MIN, 100, 200, 999};
	ag__wm_observe(&wm, 0, 500, S(1));
	ag__wm_merge(&wm, stored, 5);
	ok(wm.time[0] == 500 && wm.time[1] == INT64_MIN && wm.time[2] == 100 && wm.time[3] == 200,
	   "stored channel times are taken where higher; extra ones are ignored");
	ok(ag__wm_value(&wm, S(1)) == INT64_MIN, "a channel never seen still holds it back");
	ag__wm_observe(&wm, 1, 150, S(1));
	ok_int_eq(ag__wm_value(&wm, S(1)), 100, "restored progress counts in the minimum");

	/* The window state record carries them. */
	struct ag__part pt;
	memset(&pt, 0, sizeof(pt));
	ag__window_part_reset(&pt);
	pt.stream_time = 100;
	pt.closed_to = 50;
	uint8_t buf[AG__WINDOW_META_MAX(4)];
	size_t n = ag__window_meta_encode(&pt, &wm, buf);
	struct ag__tval tv;
	ok_int_eq(ag__tval_parse((struct ag_bytes){buf, n}, &tv), 0, "the window state parses");
	int64_t st, closed;
	const uint8_t *times;
	uint32_t ntimes;
	ok_int_eq(ag__window_meta_decode(tv.payload, &st, &closed, &times, &ntimes), 0,
		  "and decodes");
	ok(st == 100 && closed == 50 && ntimes == 4 && ag__window_get64(times) == 500 &&
		   ag__window_get64(times + 8) == 150 && ag__window_get64(times + 24) == 200,
	   "stream time, closed-to and the 4 channel times round-trip");
	n = ag__window_meta_encode(&pt, NULL, buf);
	ag__tval_parse((struct ag_bytes){buf, n}, &tv);
	ok(ag__window_meta_decode(tv.payload, &st, &closed, &times, &ntimes) == 0 && ntimes == 0 &&
		   st == 100,
	   "a record without channel times (written before watermarks) still decodes");
	ok_int_eq(ag__window_meta_decode((struct ag_bytes){buf, 12}, &st, &closed, NULL, NULL),
		  AG_EDECODE, "a short record is damaged");
	ag__wm_free(&wm);

	/* Every source said idle before anything was seen, then the stored times came. */
	ag__wm_init(&wm, 2);
	ag__wm_set_idle(&wm, 0, 1, S(1));
	ag__wm_set_idle(&wm, 1, 1, S(1));
	ok(ag__wm_value(&wm, S(5)) == INT64_MIN, "all idle, nothing known: no stream time");
	int64_t had[2] = {700, 4000};
	ag__wm_merge(&wm, had, 2);
	ok_int_eq(ag__wm_value(&wm, S(5)), 4000 + 4000,
		  "stored times taken while all are idle: the clock goes on from the highest");
	ag__wm_free(&wm);
}

static void
test_heartbeat(void)
{
	char buf[64];
	uint32_t p;
	int64_t t;
	int idle;
	int n = ag__wm_heartbeat_format(buf, sizeof(buf), 7, -1234, 1);
	ok(ag__wm_heartbeat_parse(buf, (size_t)n, &p, &t, &idle) == 0 && p == 7 && t == -1234 &&
		   idle == 1,
	   "a heartbeat header round-trips (%s)", buf);
	n = ag__wm_heartbeat_format(buf, sizeof(buf), 0, INT64_MIN, 0);
	ok(ag__wm_heartbeat_parse(buf, (size_t)n, &p, &t, &idle) == 0 && t == INT64_MIN && !idle,
	   "a source with no progress yet says so");
	const char *bad[] = {"", "7", "7:", "x:1:0", "7:1:2", "7:1:0x", "7::0", "7:1:01"};
	int refused = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused += ag__wm_heartbeat_parse(bad[i], strlen(bad[i]), &p, &t, &idle) < 0;
	ok_int_eq(refused, (int)(sizeof(bad) / sizeof(bad[0])), "malformed heartbeats are refused");
}

/*
 * The forward header faustc-src: the binary form round-trips every value (negative progress,
 * INT64 extremes, no progress), the text form of earlier versions is still read the way it
 * was, and malformed values of either form are refused.
 */
static void
test_fwd_src(void)
{
	uint8_t buf[AG__FWD_SRC_MAX];
	int32_t p;
	int64_t off, t;
	static const struct {
		int32_t part;
		int64_t off, time;
	} cases[] = {
		{0, 0, INT64_MIN}, {7, 123456789012, 1733100000000}, {1000000, INT64_MAX, -1},
		{3, 1, INT64_MAX}, {255, 256, INT64_MIN + 1},
	};
	int good = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = ag__fwd_src_format(buf, cases[i].part, cases[i].off, cases[i].time);
		good += n == (cases[i].time == INT64_MIN ? 13u : 21u) && buf[0] == AG__FWD_SRC_V1 &&
			ag__fwd_src_parse(buf, n, &p, &off, &t) == 0 && p == cases[i].part &&
			off == cases[i].off && t == cases[i].time;
	}
	ok_int_eq(good, (int)(sizeof(cases) / sizeof(cases[0])),
		  "the binary faustc-src value round-trips partition, offset and progress");
	ag__fwd_src_format(buf, 2, 0x0102030405060708, -2);
	ok(buf[1] == 0 && buf[4] == 2 && buf[5] == 1 && buf[12] == 8 && buf[13] == 0xff &&
		   buf[20] == 0xfe,
	   "its fields are big-endian, progress in two's complement");

	ok(ag__fwd_src_parse("3:42", 4, &p, &off, &t) == 0 && p == 3 && off == 42 && t == INT64_MIN,
	   "the old text form PARTITION:OFFSET is still read");
	ok(ag__fwd_src_parse("12:9000000000:-5", 16, &p, &off, &t) == 0 && p == 12 &&
		   off == 9000000000 && t == -5,
	   "the old text form PARTITION:OFFSET:PROGRESS is still read");
	ok(ag__fwd_src_parse("1:2:x", 5, &p, &off, &t) == 0 && p == 1 && off == 2 && t == INT64_MIN,
	   "an old text value with unreadable progress is a forward without progress, as before");

	const char *bad[] = {"", "7", "7:", "x:1", ":1", "-1:5", "1000001:5", "7:1x", "7::3"};
	int refused = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refused += ag__fwd_src_parse(bad[i], strlen(bad[i]), &p, &off, &t) < 0;
	ok_int_eq(refused, (int)(sizeof(bad) / sizeof(bad[0])),
		  "malformed text values are refused");
	size_t n = ag__fwd_src_format(buf, 5, 10, 20);
	refused = ag__fwd_src_parse(buf, n - 1, &p, &off, &t) < 0;
	refused += ag__fwd_src_parse(buf, 14, &p, &off, &t) < 0;
	refused += ag__fwd_src_parse(buf, 12, &p, &off, &t) < 0;
	buf[0] = 0xfb;
	refused += ag__fwd_src_parse(buf, n, &p, &off, &t) < 0;
	ag__fwd_src_format(buf, -1, 10, 20);
	refused += ag__fwd_src_parse(buf, n, &p, &off, &t) < 0;
	ok_int_eq(refused, 5,
		  "binary values of a wrong length, an unknown version or a negative partition "
		  "are refused");
	ok(ag__fwd_src_parse(NULL, 0, &p, &off, &t) < 0, "no value is refused");
}

static int64_t
time_a(const struct ag_event *ev, void *userdata)
{
	return 1;
}

static int64_t
time_b(const struct ag_event *ev, void *userdata)
{
	return 2;
}

static void
test_finalize(void)
{
	struct ag_app *app;
	struct ag_topic *in, *out;
	struct ag_table *t1, *t2;
	ag_app_new(&app);
	ag_app_set_id(app, "wm");
	ok_int_eq(ag_app_set_option(app, "late_events", "keep"), -EINVAL,
		  "late_events takes drop or topic only");
	ok_int_eq(ag_app_set_option(app, "idle_timeout", "-1"), -EINVAL,
		  "a negative idle_timeout is refused");
	ok_int_eq(ag_app_set_option(app, "idle_timeout", "0.5"), 0, "idle_timeout 0.5");
	ok_int_eq(ag_app_set_option(app, "late_events", "topic"), 0, "late_events=topic");
	ag_app_topic(app, "in", &(struct ag_topic_opts){.partitions = 3}, &in);
	ag_app_topic(app, "plain", NULL, &out);
	ag_app_table(app, "w1", in, NULL, &t1);
	ag_app_table(app, "plain_table", out, NULL, &t2);
	ag_table_window(t1, &(struct ag_window_opts){.size_s = 10});
	ok_int_eq(ag__app_finalize(app), 0, "the app finalizes");
	struct ag_topic *late = ag_app_find_topic(app, "wm-w1-late");
	ok(late && late->partitions == 3, "the windowed table has its late topic, 3 partitions");
	ok(!ag_app_find_topic(app, "wm-plain_table-late"), "a plain table has none");
	ok(in->windowed && !out->windowed, "only the windowed table's source keeps watermarks");
	ag_app_free(app);

	ag_app_new(&app);
	ag_app_set_id(app, "wm2");
	ag_app_topic(app, "in", NULL, &in);
	ag_app_table(app, "a", in, NULL, &t1);
	ag_app_table(app, "b", in, NULL, &t2);
	ag_table_window(t1, &(struct ag_window_opts){
				    .size_s = 10, .clock = AG_WINDOW_FIELD, .time_fn = time_a});
	ag_table_window(t2, &(struct ag_window_opts){
				    .size_s = 10, .clock = AG_WINDOW_FIELD, .time_fn = time_b});
	ok_int_eq(ag__app_finalize(app), AG_ECONFIG,
		  "two windowed tables on one topic with different time functions are refused");
	ag_app_free(app);
}

int
main(void)
{
	test_minimum();
	test_idle();
	test_restore();
	test_heartbeat();
	test_fwd_src();
	test_finalize();
	return tap_done();
}
