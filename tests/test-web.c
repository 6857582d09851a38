/*
 * The web server's pieces that need no loop: percent-decoding of paths and query strings,
 * query lookup, the text buffer, and the latency histogram's buckets.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "web/http.h"
#include "web/metrics.h"

static void
test_unescape(void)
{
	char out[16];
	ok_int_eq(ag__http_unescape("a%20b", 5, 0, out, sizeof(out)), 3, "%%20 is one byte");
	ok_str_eq(out, "a b", "%%20 decodes to a space");
	ok_int_eq(ag__http_unescape("a+b", 3, 0, out, sizeof(out)), 3, "a path keeps '+'");
	ok_str_eq(out, "a+b", "... as it is");
	ag__http_unescape("a+b", 3, 1, out, sizeof(out));
	ok_str_eq(out, "a b", "a query's '+' is a space");
	ok_int_eq(ag__http_unescape("%2F%2f", 6, 0, out, sizeof(out)), 2, "either case of hex");
	ok_str_eq(out, "//", "... decodes");
	ok_int_eq(ag__http_unescape("%00x", 4, 0, out, sizeof(out)), 2, "%%00 is a byte too");
	ok(out[0] == '\0' && out[1] == 'x', "... kept with its length");
	ok_int_eq(ag__http_unescape("%4", 2, 0, out, sizeof(out)), -1, "a cut escape is refused");
	ok_int_eq(ag__http_unescape("%zz", 3, 0, out, sizeof(out)), -1, "bad hex is refused");
	ok_int_eq(ag__http_unescape("abcdefghijklmnopq", 17, 0, out, sizeof(out)), -1,
		  "too long for the buffer is refused");
	ok_int_eq(ag__http_unescape("", 0, 0, out, sizeof(out)), 0, "empty is empty");
}

static void
test_query(void)
{
	char out[32];
	ok_int_eq(ag__http_query("prefix=k1&limit=5", "limit", out, sizeof(out)), 1,
		  "limit found after another parameter");
	ok_str_eq(out, "5", "... its value");
	ok_int_eq(ag__http_query("prefix=a%26b+c", "prefix", out, sizeof(out)), 5,
		  "a value is decoded");
	ok_str_eq(out, "a&b c", "... with %%26 and '+'");
	ok_int_eq(ag__http_query("prefixes=1", "prefix", out, sizeof(out)), -1,
		  "a longer name does not match");
	ok_int_eq(ag__http_query("prefix", "prefix", out, sizeof(out)), 0,
		  "a name without '=' has an empty value");
	ok_int_eq(ag__http_query("", "limit", out, sizeof(out)), -1, "absent in an empty query");
}

static void
test_sbuf(void)
{
	struct ag__sbuf b = {0};
	for (int i = 0; i < 1000; i++)
		ag__sbuf_printf(&b, "%d,", i);
	ok_int_eq(b.oom, 0, "the buffer grows");
	ok(b.len == strlen(b.ptr) && strncmp(b.ptr, "0,1,2,", 6) == 0, "and holds the text");
	char big[2000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	size_t before = b.len;
	ag__sbuf_printf(&b, "%s", big);
	ok_int_eq(b.len - before, sizeof(big) - 1, "a long formatted piece is appended whole");
	free(b.ptr);
}

static void
test_hist(void)
{
	struct ag__hist h = {0};
	ag__hist_observe(&h, 0);
	ag__hist_observe(&h, 100);
	ag__hist_observe(&h, 101);
	ag__hist_observe(&h, 60000000);
	ag__hist_observe(&h, 60000001);
	ok_int_eq(h.count, 5, "every observation counted");
	ok_int_eq(h.b[0], 2, "<= 100 us in the first bucket (bounds are inclusive)");
	ok_int_eq(h.b[1], 1, "101 us in the second");
	ok_int_eq(h.b[AG__HIST_N - 1], 1, "60 s in the last bound");
	uint64_t in = 0;
	for (int i = 0; i < AG__HIST_N; i++)
		in += h.b[i];
	ok_int_eq(h.count - in, 1, "beyond the last bound only in +Inf (count)");
	ok_int_eq(h.sum_us, 0 + 100 + 101 + 60000000 + 60000001, "the sum");
}

int
main(void)
{
	test_unescape();
	test_query();
	test_sbuf();
	test_hist();
	return tap_done();
}
