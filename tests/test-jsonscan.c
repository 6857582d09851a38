/*
 * The JSON scanner of record decoding (libagent/src/json_scan.c) against jansson's tree:
 * on every seed input of the fuzz corpora named on the command line, on random valid
 * records (which the scanner must decode itself) and on random mutations of them (where it
 * may defer). json_scan_check() aborts on any disagreement in values, codes or messages.
 * Also the word-at-a-time check both the scanner and the JSON encoder use for plain string
 * bytes, lane by lane, and strings long enough to take it, through both.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz/json_scan_check.h"
#include "json_scan.h"
#include "tap.h"

struct text {
	char buf[4096];
	size_t len;
};

static void
put(struct text *t, const char *s)
{
	size_t n = strlen(s);
	if (t->len + n < sizeof(t->buf)) {
		memcpy(t->buf + t->len, s, n);
		t->len += n;
	}
}

static void
ws(struct text *t)
{
	static const char *const spaces[] = {"", "", "", " ", "\n", "\t ", "\r\n  "};
	put(t, spaces[tap_rand(7)]);
}

/* A string without escapes: ASCII, and sometimes 2-, 3- and 4-byte UTF-8. */
static void
put_string(struct text *t)
{
	static const char *const parts[] = {
		"acct-", "US", "x", " ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
		"0",     "/",  "~"};
	put(t, "\"");
	for (uint32_t i = tap_rand(6); i > 0; i--)
		put(t, parts[tap_rand(10)]);
	put(t, "\"");
}

static void
put_number(struct text *t, bool integer)
{
	static const char *const ints[] = {"0",
					   "-0",
					   "7",
					   "-12",
					   "123456789012345678",
					   "-9223372036854775808",
					   "9223372036854775807"};
	static const char *const reals[] = {"107.89", "-0.5",   "1e3",     "2.5E+3",    "1E-7",
					    "0.0",    "1e-400", "3.14159", "-1.5e-300", "1.0"};
	put(t, integer ? ints[tap_rand(7)] : reals[tap_rand(10)]);
}

/* Any value, for unknown fields (depth-bounded). */
static void
put_any(struct text *t, int depth)
{
	switch (tap_rand(depth > 3 ? 4 : 6)) {
	case 0:
		put_string(t);
		break;
	case 1:
		put_number(t, tap_rand(2));
		break;
	case 2:
		put(t, tap_rand(2) ? "true" : "null");
		break;
	case 3:
		put(t, "false");
		break;
	case 4:
		put(t, "[");
		for (uint32_t i = tap_rand(4); i > 0; i--) {
			ws(t);
			put_any(t, depth + 1);
			if (i > 1)
				put(t, ",");
		}
		put(t, "]");
		break;
	default:
		put(t, "{");
		for (uint32_t i = tap_rand(4); i > 0; i--) {
			ws(t);
			put_string(t);
			put(t, ":");
			put_any(t, depth + 1);
			if (i > 1)
				put(t, ",");
		}
		put(t, "}");
		break;
	}
}

/* A valid record for json_scan_check's type: required fields, optional ones, unknowns. */
static void
gen_record(struct text *t)
{
	const char *order[13];
	size_t n = 0;
	order[n++] = "account";
	order[n++] = "amount";
	order[n++] = "country";
	static const char *const optional[] = {"count", "ok",  "tags",     "ints",  "reals",
					       "inner", "fee", "unknown1", "other", "nested"};
	for (size_t i = 0; i < 10; i++)
		if (tap_rand(2))
			order[n++] = optional[i];
	for (size_t i = n; i > 1; i--) {
		size_t j = tap_rand((uint32_t)i);
		const char *tmp = order[i - 1];
		order[i - 1] = order[j];
		order[j] = tmp;
	}
	t->len = 0;
	ws(t);
	put(t, "{");
	for (size_t i = 0; i < n; i++) {
		const char *k = order[i];
		ws(t);
		put(t, "\"");
		put(t, k);
		put(t, "\"");
		ws(t);
		put(t, ":");
		ws(t);
		if (!strcmp(k, "account") || !strcmp(k, "country"))
			put_string(t);
		else if (!strcmp(k, "amount") || !strcmp(k, "fee"))
			put_number(t, tap_rand(2));
		else if (!strcmp(k, "count"))
			put_number(t, true);
		else if (!strcmp(k, "ok"))
			put(t, tap_rand(2) ? "true" : "null");
		else if (!strcmp(k, "tags"))
			put(t, tap_rand(2) ? "[\"a\", \"\xc3\xa9\", \"\"]" : "[]");
		else if (!strcmp(k, "ints"))
			put(t, tap_rand(2) ? "[1, -2, 3.0, 1e2]" : "[ ]");
		else if (!strcmp(k, "reals"))
			put(t, "[1, 2.5, -1e-3]");
		else if (!strcmp(k, "inner"))
			put(t, tap_rand(2)
				       ? "{\"name\": \"in\", \"n\": 4, \"flags\": [true, false]}"
				       : "{\"flags\": null, \"name\": \"\"}");
		else
			put_any(t, 0);
		ws(t);
		if (i + 1 < n)
			put(t, ",");
	}
	ws(t);
	put(t, "}");
	ws(t);
}

/* One random edit: a byte replaced, deleted or inserted, or the text cut short. */
static void
mutate(struct text *t)
{
	static const char bytes[] = "\"\\{}[],:0-.eE+ntfu\x01\x80\xc3\xed\xff aZ9";
	size_t at = t->len ? tap_rand((uint32_t)t->len) : 0;
	switch (tap_rand(4)) {
	case 0:
		if (t->len)
			t->buf[at] = bytes[tap_rand(sizeof(bytes) - 1)];
		break;
	case 1:
		if (t->len) {
			memmove(t->buf + at, t->buf + at + 1, t->len - at - 1);
			t->len--;
		}
		break;
	case 2:
		if (t->len + 1 < sizeof(t->buf)) {
			memmove(t->buf + at + 1, t->buf + at, t->len - at);
			t->buf[at] = bytes[tap_rand(sizeof(bytes) - 1)];
			t->len++;
		}
		break;
	default:
		t->len = at;
		break;
	}
}

/* Runs the check on every regular file of dir; returns how many, or -1. */
static int
replay_dir(const char *dir, int *scanned)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[4096];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		uint8_t *buf = malloc(65536);
		size_t len = buf ? fread(buf, 1, 65536, f) : 0;
		fclose(f);
		if (!buf)
			break;
		/* A heap copy of exactly the input's size, so ASan sees reads past its end. */
		uint8_t *exact = malloc(len ? len : 1);
		memcpy(exact, buf, len);
		*scanned += json_scan_check(exact, len);
		free(exact);
		free(buf);
		n++;
	}
	closedir(d);
	return n;
}

static bool
plain_byte(unsigned b)
{
	return b >= 0x20 && b < 0x80 && b != '"' && b != '\\';
}

/*
 * ag__json_plain_prefix8 on every byte value in every lane, alone and in every pair of
 * lanes: the index of the first byte that is not plain, 8 when all are.
 */
static int
check_plain8(void)
{
	int wrong = 0;
	unsigned char w[8];
	for (unsigned i = 0; i < 8; i++) {
		for (unsigned a = 0; a < 256; a++) {
			memset(w, 'a', sizeof(w));
			w[i] = (unsigned char)a;
			wrong += ag__json_plain_prefix8(w) != (plain_byte(a) ? 8 : i);
			for (unsigned j = i + 1; j < 8; j++) {
				for (unsigned b = 0; b < 256; b++) {
					w[j] = (unsigned char)b;
					unsigned want = !plain_byte(a) ? i : !plain_byte(b) ? j : 8;
					wrong += ag__json_plain_prefix8(w) != want;
				}
				w[j] = 'a';
			}
		}
	}
	return wrong;
}

/* A raw string of 0..48 bytes: mostly plain ASCII, with any byte now and then. */
static size_t
gen_raw(unsigned char *s)
{
	static const unsigned char odd[] = {0x00, 0x01, 0x1f, '"',  '\\', 0x7f, 0x80, 0xbf,
					    0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xff};
	size_t n = tap_rand(49);
	for (size_t i = 0; i < n; i++) {
		uint32_t r = tap_rand(40);
		if (r == 0)
			s[i] = (unsigned char)tap_rand(256);
		else if (r == 1)
			s[i] = odd[tap_rand(sizeof(odd))];
		else if (r == 2 && i + 2 <= n) {
			s[i++] = 0xc3; /* é */
			s[i] = 0xa9;
		} else
			s[i] = (unsigned char)(' ' + 1 + tap_rand(94) % 94);
	}
	return n;
}

struct one_string {
	struct ag_str s;
	uint64_t ag_present;
};

AG_RECORD(one_string_type, one_string, AG_FIELD(one_string, s, AG_FIELD_STRING, 0));

/*
 * Random raw strings as a record's string value: the encoder writes valid UTF-8 as JSON that
 * jansson reads back to the same bytes (with no raw control character in it) and refuses
 * the rest; the decoder reads them back, and a value with the raw bytes between quotes
 * (escapes and invalid bytes included) agrees with jansson in json_scan_check.
 */
static void
check_long_strings(int *encoded, int *refused, int *bad)
{
	struct ag_arena *arena;
	struct ag_buf buf = {0};
	if (ag_arena_new(&arena) < 0)
		abort();
	for (int k = 0; k < 20000; k++) {
		unsigned char s[64];
		size_t n = gen_raw(s);
		json_t *ref = json_stringn((const char *)s, n);
		const struct one_string in = {{(const char *)s, n}, 0};
		buf.len = 0;
		int rc = ag_record_encode(&one_string_type, AG_CODEC_JSON, &in, 0, &buf);
		if (!ref) {
			*refused += rc == -EINVAL;
			*bad += rc != -EINVAL;
			continue;
		}
		json_decref(ref);
		struct one_string out;
		memset(&out, 0, sizeof(out));
		ag_arena_reset(arena);
		if (rc < 0 || memchr(buf.ptr, '\n', buf.len) || memchr(buf.ptr, '\0', buf.len) ||
		    ag_record_decode(&one_string_type, AG_CODEC_JSON,
				     (struct ag_bytes){buf.ptr, buf.len}, &out, arena, NULL,
				     0) < 0 ||
		    out.s.len != n || memcmp(out.s.ptr, s, n) != 0) {
			(*bad)++;
			continue;
		}
		(*encoded)++;
		/* The raw bytes between quotes, as a value to decode: the scanner against jansson. */
		char doc[160];
		int len = snprintf(doc, sizeof(doc),
				   "{\"account\":\"%.*s\",\"amount\":1,\"country\":\"c\"}", (int)n,
				   (const char *)s);
		if (len > 0 && (size_t)len < sizeof(doc) && !memchr(s, '\0', n)) {
			char *exact = malloc((size_t)len);
			memcpy(exact, doc, (size_t)len);
			json_scan_check((const uint8_t *)exact, (size_t)len);
			free(exact);
		}
	}
	free(buf.ptr);
	ag_arena_free(arena);
}

int
main(int argc, char **argv)
{
	ok_int_eq(check_plain8(), 0,
		  "the 8-byte plain prefix agrees with the byte rule for every byte in every lane "
		  "and every pair of lanes");
	int encoded = 0, refused = 0, bad = 0;
	check_long_strings(&encoded, &refused, &bad);
	ok(bad == 0 && encoded > 10000 && refused > 100,
	   "strings of 0-48 bytes: %d encoded and read back exactly, %d invalid UTF-8 refused "
	   "as jansson does, %d wrong",
	   encoded, refused, bad);

	for (int i = 1; i < argc; i++) {
		int scanned = 0;
		int n = replay_dir(argv[i], &scanned);
		ok(n > 0, "corpus %s: %d inputs agree with jansson (%d decoded by the scanner)",
		   argv[i], n, scanned);
	}

	struct text t;
	int valid = 0, valid_scanned = 0, mutants = 0, mutants_scanned = 0;
	for (int i = 0; i < 3000; i++) {
		gen_record(&t);
		char *exact = malloc(t.len);
		memcpy(exact, t.buf, t.len);
		valid++;
		valid_scanned += json_scan_check((const uint8_t *)exact, t.len);
		free(exact);
		for (int m = 0; m < 5; m++) {
			struct text u = t;
			for (uint32_t k = 1 + tap_rand(2); k > 0; k--)
				mutate(&u);
			exact = malloc(u.len ? u.len : 1);
			memcpy(exact, u.buf, u.len);
			mutants++;
			mutants_scanned += json_scan_check((const uint8_t *)exact, u.len);
			free(exact);
		}
	}
	ok_int_eq(valid_scanned, valid,
		  "every random valid record without escapes is decoded by the scanner itself, "
		  "with jansson's values");
	/* Numbers: the scanner's own conversions (integers, short decimals) against strtod's. */
	int numbers = 0, numbers_scanned = 0;
	for (int i = 0; i < 20000; i++) {
		char num[64], doc[128];
		size_t n = 0;
		if (tap_rand(2))
			num[n++] = '-';
		uint32_t int_digits = 1 + tap_rand(8),
			 frac_digits = tap_rand(3) ? 1 + tap_rand(18) : 0;
		num[n++] = (char)(int_digits == 1 ? '0' + tap_rand(10) : '1' + tap_rand(9));
		for (uint32_t d = 1; d < int_digits; d++)
			num[n++] = (char)('0' + tap_rand(10));
		if (frac_digits)
			num[n++] = '.';
		for (uint32_t d = 0; d < frac_digits; d++)
			num[n++] = (char)('0' + tap_rand(10));
		if (tap_rand(8) == 0)
			n += (size_t)snprintf(num + n, sizeof(num) - n, "e%d",
					      (int)tap_rand(40) - 20);
		num[n] = '\0';
		int len = snprintf(doc, sizeof(doc),
				   "{\"account\":\"a\",\"amount\":%s,\"country\":\"c\"}", num);
		char *exact = malloc((size_t)len);
		memcpy(exact, doc, (size_t)len);
		numbers++;
		numbers_scanned += json_scan_check((const uint8_t *)exact, (size_t)len);
		free(exact);
	}
	ok_int_eq(numbers_scanned, numbers,
		  "random numbers (up to 8 integer and 18 fraction digits, some exponents) "
		  "decode to jansson's doubles, bit for bit");
	ok(mutants_scanned > 0 && mutants_scanned < mutants,
	   "%d random mutations agree with jansson (%d decoded by the scanner, the rest "
	   "deferred to jansson with its code and message)",
	   mutants, mutants_scanned);
	return tap_done();
}
