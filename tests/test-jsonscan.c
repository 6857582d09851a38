/*
 * The JSON scanner of record decoding (libagent/src/json_scan.c) against jansson's tree:
 * on every seed input of the fuzz corpora named on the command line, on random valid
 * records (which the scanner must decode itself) and on random mutations of them (where it
 * may defer). json_scan_check() aborts on any disagreement in values, codes or messages.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/json_scan_check.h"
#include "tap.h"

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t
rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

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
	put(t, spaces[rnd(7)]);
}

/* A string without escapes: ASCII, and sometimes 2-, 3- and 4-byte UTF-8. */
static void
put_string(struct text *t)
{
	static const char *const parts[] = {
		"acct-", "US", "x", " ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
		"0",     "/",  "~"};
	put(t, "\"");
	for (uint32_t i = rnd(6); i > 0; i--)
		put(t, parts[rnd(10)]);
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
	put(t, integer ? ints[rnd(7)] : reals[rnd(10)]);
}

/* Any value, for unknown fields (depth-bounded). */
static void
put_any(struct text *t, int depth)
{
	switch (rnd(depth > 3 ? 4 : 6)) {
	case 0:
		put_string(t);
		break;
	case 1:
		put_number(t, rnd(2));
		break;
	case 2:
		put(t, rnd(2) ? "true" : "null");
		break;
	case 3:
		put(t, "false");
		break;
	case 4:
		put(t, "[");
		for (uint32_t i = rnd(4); i > 0; i--) {
			ws(t);
			put_any(t, depth + 1);
			if (i > 1)
				put(t, ",");
		}
		put(t, "]");
		break;
	default:
		put(t, "{");
		for (uint32_t i = rnd(4); i > 0; i--) {
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
		if (rnd(2))
			order[n++] = optional[i];
	for (size_t i = n; i > 1; i--) {
		size_t j = rnd((uint32_t)i);
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
			put_number(t, rnd(2));
		else if (!strcmp(k, "count"))
			put_number(t, true);
		else if (!strcmp(k, "ok"))
			put(t, rnd(2) ? "true" : "null");
		else if (!strcmp(k, "tags"))
			put(t, rnd(2) ? "[\"a\", \"\xc3\xa9\", \"\"]" : "[]");
		else if (!strcmp(k, "ints"))
			put(t, rnd(2) ? "[1, -2, 3.0, 1e2]" : "[ ]");
		else if (!strcmp(k, "reals"))
			put(t, "[1, 2.5, -1e-3]");
		else if (!strcmp(k, "inner"))
			put(t, rnd(2) ? "{\"name\": \"in\", \"n\": 4, \"flags\": [true, false]}"
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
	size_t at = t->len ? rnd((uint32_t)t->len) : 0;
	switch (rnd(4)) {
	case 0:
		if (t->len)
			t->buf[at] = bytes[rnd(sizeof(bytes) - 1)];
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
			t->buf[at] = bytes[rnd(sizeof(bytes) - 1)];
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

int
main(int argc, char **argv)
{
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
			for (uint32_t k = 1 + rnd(2); k > 0; k--)
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
		if (rnd(2))
			num[n++] = '-';
		uint32_t int_digits = 1 + rnd(8), frac_digits = rnd(3) ? 1 + rnd(18) : 0;
		num[n++] = (char)(int_digits == 1 ? '0' + rnd(10) : '1' + rnd(9));
		for (uint32_t d = 1; d < int_digits; d++)
			num[n++] = (char)('0' + rnd(10));
		if (frac_digits)
			num[n++] = '.';
		for (uint32_t d = 0; d < frac_digits; d++)
			num[n++] = (char)('0' + rnd(10));
		if (rnd(8) == 0)
			n += (size_t)snprintf(num + n, sizeof(num) - n, "e%d", (int)rnd(40) - 20);
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
