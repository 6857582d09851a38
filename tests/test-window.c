/*
 * The parts of windowed tables that need no worker: declaring windows, which windows a time
 * falls in (tumbling and hopping, at the boundaries, before 1970), the stored window keys
 * (byte order is time order), and the table value envelope (offsets, write times, values
 * written before envelopes existed).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "table_rt.h"

#include "tap.h"

static struct ag_table *
table(struct ag_app *app, const char *name)
{
	struct ag_topic *topic;
	struct ag_table *t = NULL;
	if (ag_app_topic(app, "in", NULL, &topic) < 0 ||
	    ag_app_table(app, name, topic, NULL, &t) < 0)
		return NULL;
	return t;
}

static void
test_declare(struct ag_app *app)
{
	struct ag_table *t = table(app, "decl");
	ok_int_eq(ag_table_window(t, &(struct ag_window_opts){.size_s = 0}), -EINVAL,
		  "size 0 is refused");
	ok_int_eq(ag_table_window(t, &(struct ag_window_opts){.size_s = -1}), -EINVAL,
		  "a negative size is refused");
	ok_int_eq(ag_table_window(t, &(struct ag_window_opts){.size_s = 10, .step_s = 20}), -EINVAL,
		  "a step larger than the size is refused");
	ok_int_eq(ag_table_window(t, &(struct ag_window_opts){.size_s = 10, .step_s = 0.001}),
		  -EINVAL, "more than 1024 windows per event is refused");
	ok_int_eq(ag_table_window(t,
				  &(struct ag_window_opts){.size_s = 10, .clock = AG_WINDOW_FIELD}),
		  -EINVAL, "a field clock without a time function is refused");
	ok_int_eq(ag_table_window(t, &(struct ag_window_opts){.size_s = 10, .grace_s = 1.0 / 0.0}),
		  -EINVAL, "an infinite grace is refused");
	ok_int_eq(ag_table_window(t, &(struct ag_window_opts){.size_s = 10}), 0, "tumbling(10)");
	ok_int_eq(ag_table_window(t, &(struct ag_window_opts){.size_s = 10}), -EEXIST,
		  "a table is made windowed once");
	ok_int_eq(t->win.expires, 10000, "expires defaults to the size");

	struct ag_topic *topic = ag_app_find_topic(app, "in");
	struct ag_table *ttl = NULL;
	ag_app_table(app, "ttl", topic, &(struct ag_table_opts){.ttl_s = 60}, &ttl);
	ok_int_eq(ag_table_window(ttl, &(struct ag_window_opts){.size_s = 10}), -EINVAL,
		  "a table with a TTL cannot be windowed");
	struct ag_window w;
	ok_int_eq(ag_table_window_of(ttl, 0, &w), -EINVAL, "window_of a plain table is -EINVAL");
}

static void
test_tumbling(struct ag_app *app)
{
	struct ag_table *t = table(app, "tumbling");
	ag_table_window(t, &(struct ag_window_opts){.size_s = 10, .expires_s = 3600});
	struct ag_window w;
	const int64_t t0 = 1700000000000; /* a multiple of 10 s */
	ag_table_window_of(t, t0, &w);
	ok(w.start_ms == t0 && w.end_ms == t0 + 10000, "the start of a window is in it");
	ag_table_window_of(t, t0 + 9999, &w);
	ok(w.start_ms == t0 && w.end_ms == t0 + 10000, "end - 1 ms is in the same window");
	ag_table_window_of(t, t0 + 10000, &w);
	ok(w.start_ms == t0 + 10000, "the end is the next window's start");
	ag_table_window_of(t, -1, &w);
	ok(w.start_ms == -10000 && w.end_ms == 0, "before 1970: [-10 s, 0) holds -1 ms");
	int64_t starts[1024];
	size_t n = ag__window_starts(t, t0 + 5000, starts);
	ok(n == 1 && starts[0] == t0, "a tumbling window per time (%zu)", n);
	ok_int_eq(t->win.expires, 3600000, "expires in ms");
}

static void
test_hopping(struct ag_app *app)
{
	struct ag_table *t = table(app, "hopping");
	ag_table_window(t, &(struct ag_window_opts){.size_s = 10, .step_s = 5});
	int64_t starts[1024];
	size_t n = ag__window_starts(t, 12000, starts);
	ok(n == 2 && starts[0] == 10000 && starts[1] == 5000,
	   "hopping(10, 5): 12 s is in [10, 20) and [5, 15), newest first");
	n = ag__window_starts(t, 10000, starts);
	ok(n == 2 && starts[0] == 10000 && starts[1] == 5000,
	   "10 s (a boundary) is in [10, 20) and [5, 15), not [0, 10)");
	n = ag__window_starts(t, 9999, starts);
	ok(n == 2 && starts[0] == 5000 && starts[1] == 0, "9.999 s is in [5, 15) and [0, 10)");
	struct ag_window w;
	ag_table_window_of(t, 12000, &w);
	ok(w.start_ms == 10000 && w.end_ms == 20000, "window_of is the newest window");

	struct ag_table *u = table(app, "hop3");
	ag_table_window(u, &(struct ag_window_opts){.size_s = 10, .step_s = 3});
	n = ag__window_starts(u, 10000, starts);
	ok(n == 3 && starts[0] == 9000 && starts[1] == 6000 && starts[2] == 3000,
	   "hopping(10, 3): 10 s is in the windows starting at 9, 6 and 3 s, not 0 (%zu)", n);
	n = ag__window_starts(u, 9999, starts);
	ok(n == 4 && starts[0] == 9000 && starts[3] == 0,
	   "hopping(10, 3): 9.999 s is in four windows, the oldest [0, 10) (%zu)", n);
}

static void
test_keys(void)
{
	uint8_t a[AG__TABLE_KEY_MAX], b[AG__TABLE_KEY_MAX], c[AG__TABLE_KEY_MAX];
	struct ag_bytes ka, kb, kc, key = AG_STR("user");
	ag__window_key(a, -5000, &key, &ka);
	ag__window_key(b, 0, &key, &kb);
	ag__window_key(c, 1700000000000, &(struct ag_bytes){"", 0}, &kc);
	ok(ka.len == 12 && memcmp(ka.ptr, kb.ptr, 8) < 0 && memcmp(kb.ptr, kc.ptr, 8) < 0,
	   "window keys sort by start, before 1970 included");
	int64_t start;
	struct ag_bytes user;
	ok(ag__window_key_split(ka, &start, &user) == 0 && start == -5000 && user.len == 4 &&
		   memcmp(user.ptr, "user", 4) == 0,
	   "a window key splits back into start and key");
	ok(ag__window_key_split(kc, &start, &user) == 0 && start == 1700000000000 && user.len == 0,
	   "an empty user key");
	ok_int_eq(
		ag__window_key_split((struct ag_bytes){AG__WINDOW_META_KEY, AG__WINDOW_META_KEYLEN},
				     &start, &user),
		-EINVAL, "the window state key is no window key");
	uint8_t big[600] = {0};
	ok_int_eq(ag__window_key(a, 0, &(struct ag_bytes){big, sizeof(big)}, &ka), -EINVAL,
		  "a key too long for LMDB is refused");
}

static void
test_envelope(void)
{
	uint8_t buf[64];
	struct ag__tval in = {.offset = 123456789012, .mtime = 1700000000123, .meta = 0};
	size_t n = ag__tval_header(&in, buf);
	ok_int_eq(n, AG__TVAL_HEADER_MAX, "offset and mtime: an 18-byte header");
	buf[n] = 0x2a; /* msgpack 42 */
	struct ag__tval out;
	ok(ag__tval_parse((struct ag_bytes){buf, n + 1}, &out) == 0 && out.offset == in.offset &&
		   out.mtime == in.mtime && !out.meta && out.payload.len == 1 &&
		   ((const uint8_t *)out.payload.ptr)[0] == 0x2a,
	   "the envelope reads back");
	in = (struct ag__tval){.offset = -1, .mtime = -1};
	n = ag__tval_header(&in, buf);
	ok_int_eq(n, 2, "without offset and mtime: two bytes");
	ok(ag__tval_parse((struct ag_bytes){buf, n}, &out) == 0 && out.offset == -1 &&
		   out.mtime == -1 && out.payload.len == 0,
	   "an empty payload");
	in = (struct ag__tval){.offset = 0, .mtime = -1, .meta = 1};
	n = ag__tval_header(&in, buf);
	ok(ag__tval_parse((struct ag_bytes){buf, n}, &out) == 0 && out.offset == 0 && out.meta,
	   "offset 0 and the meta flag");
	const uint8_t old[] = {0xcb, 0x40, 0x29, 0, 0, 0, 0, 0, 0}; /* 12.5, before envelopes */
	ok(ag__tval_parse((struct ag_bytes){old, sizeof(old)}, &out) == 0 && out.offset == -1 &&
		   out.mtime == -1 && out.payload.ptr == old && out.payload.len == sizeof(old),
	   "a value stored before envelopes reads as the payload, without offset");
	const uint8_t future[] = {0xc1, 0x80, 0x2a};
	ok_int_eq(ag__tval_parse((struct ag_bytes){future, sizeof(future)}, &out), AG_EDECODE,
		  "unknown flags (a newer format) are refused");
	const uint8_t cut[] = {0xc1, 0x01, 0, 0, 0};
	ok_int_eq(ag__tval_parse((struct ag_bytes){cut, sizeof(cut)}, &out), AG_EDECODE,
		  "a truncated envelope is refused");
	struct ag_value v;
	ok(ag__table_value((struct ag_bytes){old, sizeof(old)}, &v) == 0 &&
		   v.type == AG_VALUE_F64 && v.f64 == 12.5,
	   "a payload decodes as a value");
	const uint8_t rec[] = {0x81, 0xa1, 'x', 0x01};
	ok(ag__table_value((struct ag_bytes){rec, sizeof(rec)}, &v) == 0 &&
		   v.type == AG_VALUE_RECORD && v.bytes.len == sizeof(rec),
	   "a msgpack map is a record value");
}

int
main(void)
{
	struct ag_app *app;
	if (ag_app_new(&app) < 0 || ag_app_set_id(app, "tw") < 0)
		return 99;
	test_declare(app);
	test_tumbling(app);
	test_hopping(app);
	test_keys();
	test_envelope();
	ag_app_free(app);
	return tap_done();
}
