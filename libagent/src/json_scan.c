/*
 * The JSON fast path of record decoding (see json_scan.h for the contract): a
 * recursive-descent scanner over the value's bytes that follows jansson's grammar exactly
 * (the same whitespace, number syntax and ranges, literals, UTF-8 rules and control
 * characters in strings) and defers to jansson on everything it does not decode itself.
 *
 * Cost per event: no allocation besides the strings and lists the record keeps (in the
 * arena), no copy of skipped values, one strtod per real number. Recursion follows the
 * record type's nesting and, for skipped values, at most SKIP_DEPTH levels of the input;
 * deeper input is deferred, so no input can exhaust the stack.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "json_scan.h"

#define DEFER AG__JSON_SCAN_DEFER
#define SKIP_DEPTH 64 /* nesting of skipped values the scanner follows before deferring */

struct scan {
	const unsigned char *p;
	const unsigned char *end;
	struct ag_arena *arena;
};

static inline void
skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

static inline bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Length of the UTF-8 sequence at p (its first byte >= 0x80), or 0 when it is not valid
 * UTF-8 as jansson checks it: no overlong forms, no surrogates, nothing above U+10FFFF.
 */
static size_t
utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/*
 * The string whose opening quote is at s->p: its bytes between the quotes. Defers on an
 * escape (jansson decodes those), a control character or invalid UTF-8 (jansson refuses
 * them) and an unterminated string.
 */
static int
scan_string(struct scan *s, const char **str, size_t *len)
{
	const unsigned char *p = s->p + 1, *start = p;

	for (;;) {
		if (s->end - p >= 8) {
			unsigned k = ag__json_plain_prefix8(p);
			p += k;
			if (k == 8)
				continue;
		}
		/* p is at a byte that is not plain ASCII, or within 8 bytes of the end. */
		if (p >= s->end)
			return DEFER;
		unsigned char c = *p;
		if (c == '"')
			break;
		if (c == '\\' || c < 0x20)
			return DEFER;
		if (c < 0x80) {
			p++;
			continue;
		}
		size_t n = utf8_len(p, s->end);
		if (!n)
			return DEFER;
		p += n;
	}
	*str = (const char *)start;
	*len = (size_t)(p - start);
	s->p = p + 1;
	return 0;
}

/* A number token: an integer (no '.', 'e' or 'E', as jansson tells them) or a real. */
struct number {
	bool is_int;
	int64_t i;
	double d;
};

/*
 * The number at s->p, with jansson's syntax (an optional '-', no leading zeros, digits
 * after '.' and after the exponent) and ranges: an integer outside int64 or a real that
 * overflows is an error there, so it defers here.
 */
static int
scan_number(struct scan *s, struct number *num)
{
	const unsigned char *p = s->p, *start = p;
	bool neg = false;

	if (p < s->end && *p == '-') {
		neg = true;
		p++;
	}
	if (p >= s->end)
		return DEFER;
	if (*p == '0') {
		p++;
		if (p < s->end && is_digit(*p))
			return DEFER;
	} else if (is_digit(*p)) {
		while (p < s->end && is_digit(*p))
			p++;
	} else {
		return DEFER;
	}
	const unsigned char *int_end = p, *frac_end = p;
	bool exponent = false;
	num->is_int = true;
	if (p < s->end && *p == '.') {
		num->is_int = false;
		p++;
		if (p >= s->end || !is_digit(*p))
			return DEFER;
		while (p < s->end && is_digit(*p))
			p++;
		frac_end = p;
	}
	if (p < s->end && (*p == 'e' || *p == 'E')) {
		num->is_int = false;
		exponent = true;
		p++;
		if (p < s->end && (*p == '+' || *p == '-'))
			p++;
		if (p >= s->end || !is_digit(*p))
			return DEFER;
		while (p < s->end && is_digit(*p))
			p++;
	}
	size_t len = (size_t)(p - start);
	if (num->is_int && int_end - start - neg <= 18) {
		/* At most 18 digits: fits int64 without a check. */
		int64_t v = 0;
		for (const unsigned char *q = start + neg; q < int_end; q++)
			v = v * 10 + (*q - '0');
		num->i = neg ? -v : v;
		s->p = p;
		return 0;
	}
#if FLT_EVAL_METHOD == 0
	if (!num->is_int && !exponent && frac_end - start - neg - 1 <= 15) {
		/*
		 * At most 15 digits and no exponent: the digits as an integer and the power of
		 * ten are both exact doubles, so one IEEE division rounds correctly, to the
		 * double strtod returns (Clinger's fast path).
		 */
		static const double pow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
					       1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
		int64_t m = 0;
		for (const unsigned char *q = start + neg; q < frac_end; q++)
			if (*q != '.')
				m = m * 10 + (*q - '0');
		double d = (double)m / pow10[frac_end - int_end - 1];
		num->d = neg ? -d : d;
		s->p = p;
		return 0;
	}
#endif
	char buf[64], *endp;
	if (len >= sizeof(buf))
		return DEFER;
	memcpy(buf, start, len);
	buf[len] = '\0';
	errno = 0;
	if (num->is_int) {
		long long v = strtoll(buf, &endp, 10);
		if (errno == ERANGE || endp != buf + len)
			return DEFER;
		num->i = (int64_t)v;
	} else {
		num->d = strtod(buf, &endp);
		if (endp != buf + len || isinf(num->d))
			return DEFER;
	}
	s->p = p;
	return 0;
}

enum literal { LIT_TRUE, LIT_FALSE, LIT_NULL };

/* The literal at s->p: jansson reads a run of letters and wants one of the three words. */
static int
scan_literal(struct scan *s, enum literal *lit)
{
	const unsigned char *p = s->p;

	while (p < s->end && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
		p++;
	size_t len = (size_t)(p - s->p);
	if (len == 4 && memcmp(s->p, "true", 4) == 0)
		*lit = LIT_TRUE;
	else if (len == 5 && memcmp(s->p, "false", 5) == 0)
		*lit = LIT_FALSE;
	else if (len == 4 && memcmp(s->p, "null", 4) == 0)
		*lit = LIT_NULL;
	else
		return DEFER;
	s->p = p;
	return 0;
}

/* Steps over one value of any kind, checking it as jansson would parse it. */
static int
skip_value(struct scan *s, int depth)
{
	const char *str;
	size_t len;
	struct number num;
	enum literal lit;
	int rc;

	if (s->p >= s->end)
		return DEFER;
	switch (*s->p) {
	case '"':
		return scan_string(s, &str, &len);
	case '{':
		if (depth >= SKIP_DEPTH)
			return DEFER;
		s->p++;
		skip_ws(s);
		if (s->p < s->end && *s->p == '}') {
			s->p++;
			return 0;
		}
		for (;;) {
			if (s->p >= s->end || *s->p != '"')
				return DEFER;
			if ((rc = scan_string(s, &str, &len)) != 0)
				return rc;
			skip_ws(s);
			if (s->p >= s->end || *s->p != ':')
				return DEFER;
			s->p++;
			skip_ws(s);
			if ((rc = skip_value(s, depth + 1)) != 0)
				return rc;
			skip_ws(s);
			if (s->p >= s->end)
				return DEFER;
			if (*s->p == '}') {
				s->p++;
				return 0;
			}
			if (*s->p != ',')
				return DEFER;
			s->p++;
			skip_ws(s);
		}
	case '[':
		if (depth >= SKIP_DEPTH)
			return DEFER;
		s->p++;
		skip_ws(s);
		if (s->p < s->end && *s->p == ']') {
			s->p++;
			return 0;
		}
		for (;;) {
			if ((rc = skip_value(s, depth + 1)) != 0)
				return rc;
			skip_ws(s);
			if (s->p >= s->end)
				return DEFER;
			if (*s->p == ']') {
				s->p++;
				return 0;
			}
			if (*s->p != ',')
				return DEFER;
			s->p++;
			skip_ws(s);
		}
	default:
		if (*s->p == '-' || is_digit(*s->p))
			return scan_number(s, &num);
		return scan_literal(s, &lit);
	}
}

/* Decodes one scalar item of type t into p, as record.c's json_scalar would. */
static int
scan_scalar(struct scan *s, enum ag_field_type t, void *p)
{
	struct number num;
	enum literal lit;
	int rc;

	if (s->p >= s->end)
		return DEFER;
	if (*s->p == '"') {
		const char *str;
		size_t len;
		if (t != AG_FIELD_STRING)
			return DEFER;
		if ((rc = scan_string(s, &str, &len)) != 0)
			return rc;
		char *copy = ag__arena_alloc(s->arena, len + 1);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, str, len);
		copy[len] = '\0';
		*(struct ag_str *)p = (struct ag_str){copy, len};
		return 0;
	}
	if (*s->p == '-' || is_digit(*s->p)) {
		if ((rc = scan_number(s, &num)) != 0)
			return rc;
		if (t == AG_FIELD_FLOAT) {
			*(double *)p = num.is_int ? (double)num.i : num.d;
			return 0;
		}
		if (t != AG_FIELD_INT)
			return DEFER;
		if (num.is_int) {
			*(int64_t *)p = num.i;
			return 0;
		}
		return ag__double_to_int64(num.d, p) ? 0 : DEFER;
	}
	if ((rc = scan_literal(s, &lit)) != 0)
		return rc;
	if (t != AG_FIELD_BOOL || lit == LIT_NULL)
		return DEFER;
	*(bool *)p = lit == LIT_TRUE;
	return 0;
}

/* A list field: the array at s->p, counted first, then decoded into the arena. */
static int
scan_list(struct scan *s, enum ag_field_type it, struct ag_list *out)
{
	struct scan count = *s;
	size_t n = 0;
	int rc;

	if (s->p >= s->end || *s->p != '[')
		return DEFER;
	count.p++;
	skip_ws(&count);
	if (count.p < count.end && *count.p == ']') {
		s->p = count.p + 1;
		*out = (struct ag_list){NULL, 0};
		return 0;
	}
	for (;;) {
		if ((rc = skip_value(&count, 1)) != 0)
			return rc;
		n++;
		skip_ws(&count);
		if (count.p < count.end && *count.p == ']')
			break;
		if (count.p >= count.end || *count.p != ',')
			return DEFER;
		count.p++;
		skip_ws(&count);
	}
	size_t isz = ag__field_item_size(it);
	if (n > SIZE_MAX / isz)
		return -ENOMEM;
	unsigned char *items = ag__arena_alloc(s->arena, n * isz);
	if (!items)
		return -ENOMEM;
	s->p++;
	for (size_t i = 0; i < n; i++) {
		skip_ws(s);
		if ((rc = scan_scalar(s, it, items + i * isz)) != 0)
			return rc;
		skip_ws(s);
		s->p++; /* the ',' or the ']' the count pass saw */
	}
	*out = (struct ag_list){items, n};
	return 0;
}

static int scan_record(struct scan *s, const struct ag_record_type *type, void *out);

static int
scan_field(struct scan *s, const struct ag_field *f, void *base)
{
	void *p = (char *)base + f->offset;

	if (f->type == AG_FIELD_RECORD) {
		if (s->p >= s->end || *s->p != '{')
			return DEFER;
		return scan_record(s, f->record, p);
	}
	enum ag_field_type it = ag__field_item_type(f->type);
	if (it != f->type)
		return scan_list(s, it, p);
	return scan_scalar(s, f->type, p);
}

/* The field of type named by key[0..len), or NULL. */
static const struct ag_field *
find_field(const struct ag_record_type *type, const char *key, size_t len, size_t *index)
{
	for (size_t i = 0; i < type->nfields; i++) {
		const char *name = type->fields[i].name;
		if (name[0] == key[0] && strncmp(name, key, len) == 0 && name[len] == '\0') {
			*index = i;
			return &type->fields[i];
		}
	}
	return NULL;
}

/* The object at s->p into out, a struct of type. */
static int
scan_record(struct scan *s, const struct ag_record_type *type, void *out)
{
	uint64_t seen = 0, present = 0;
	int rc;

	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		goto done;
	}
	for (;;) {
		const char *key;
		size_t len, i;

		if (s->p >= s->end || *s->p != '"')
			return DEFER;
		if ((rc = scan_string(s, &key, &len)) != 0)
			return rc;
		skip_ws(s);
		if (s->p >= s->end || *s->p != ':')
			return DEFER;
		s->p++;
		skip_ws(s);
		const struct ag_field *f = len ? find_field(type, key, len, &i) : NULL;
		if (!f) {
			rc = skip_value(s, 1);
		} else if (seen & (uint64_t)1 << i) {
			return DEFER; /* a duplicate key: the last one wins in jansson */
		} else {
			seen |= (uint64_t)1 << i;
			if (s->p < s->end && *s->p == 'n') {
				enum literal lit;
				if ((rc = scan_literal(s, &lit)) == 0 && lit != LIT_NULL)
					rc = DEFER;
				/* null: absent (the field's default is set below) */
				seen &= ~((uint64_t)1 << i);
			} else if ((rc = scan_field(s, f, out)) == 0) {
				present |= (uint64_t)1 << i;
			}
		}
		if (rc != 0)
			return rc;
		skip_ws(s);
		if (s->p >= s->end)
			return DEFER;
		if (*s->p == '}') {
			s->p++;
			break;
		}
		if (*s->p != ',')
			return DEFER;
		s->p++;
		skip_ws(s);
	}
done:
	for (size_t i = 0; i < type->nfields; i++) {
		if (present & (uint64_t)1 << i)
			continue;
		if (!(type->fields[i].flags & AG_FIELD_OPTIONAL))
			return DEFER; /* missing: jansson's path writes the error */
		ag__record_set_default(&type->fields[i], out);
	}
	*(uint64_t *)((char *)out + type->present) = present;
	return 0;
}

int
ag__json_scan_record(const struct ag_record_type *type, struct ag_bytes data, void *out,
		     struct ag_arena *arena)
{
	struct scan s = {data.ptr, (const unsigned char *)data.ptr + data.len, arena};
	int rc;

	skip_ws(&s);
	if (s.p >= s.end || *s.p != '{')
		return DEFER;
	if ((rc = scan_record(&s, type, out)) != 0)
		return rc;
	skip_ws(&s);
	return s.p == s.end ? 0 : DEFER;
}
