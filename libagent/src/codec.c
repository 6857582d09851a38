/*
 * Codecs: validation of keys and values against their topic's codec (raw, string, json,
 * msgpack, int64, double), the 8-byte numbers of Kafka's LongSerializer and
 * DoubleSerializer, and the msgpack scalars tables store as values.
 *
 * The msgpack encoder and decoder are written out by hand: table values are single
 * scalars, so a switch over the format byte is all msgpack-c's unpacker would do, minus its
 * zone allocation on every read. The forms are the msgpack spec's (and msgpack-c's, which
 * the tests check byte for byte): integers in their smallest form, doubles as float64,
 * bytes as bin8/16/32.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"
#include "codec.h"

static const char *const codec_names[] = {
	[AG_CODEC_RAW] = "raw",         [AG_CODEC_STRING] = "string", [AG_CODEC_JSON] = "json",
	[AG_CODEC_MSGPACK] = "msgpack", [AG_CODEC_INT64] = "int64",   [AG_CODEC_DOUBLE] = "double",
};

const char *
ag__codec_name(enum ag_codec codec)
{
	if ((unsigned)codec < AG__ARRAY_SIZE(codec_names))
		return codec_names[codec];
	return "unknown";
}

int
ag__codec_parse(const char *name, enum ag_codec *out)
{
	if (!name)
		return -EINVAL;
	for (size_t i = 0; i < AG__ARRAY_SIZE(codec_names); i++) {
		if (strcmp(name, codec_names[i]) == 0) {
			*out = (enum ag_codec)i;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * Length of the well-formed UTF-8 sequence at p (at most n bytes), or 0 when it is not one:
 * truncated, a stray continuation byte, an overlong form, a surrogate (U+D800..U+DFFF) or
 * beyond U+10FFFF. The ranges are those of Unicode's table 3-7.
 */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
	if (c < 0x80)
		return 1;
	if (c < 0xc2)
		return 0; /* continuation byte, or overlong 2-byte lead */
	if (c < 0xe0) {
		len = 2;
	} else if (c < 0xf0) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c < 0xf5) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* > U+10FFFF */
	} else {
		return 0;
	}
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	}
	return len;
}

static int
validate_string(struct ag_bytes data, char *err, size_t errlen)
{
	const unsigned char *p = data.ptr;
	size_t i = 0;
	while (i < data.len) {
		if (p[i] == 0) {
			snprintf(err, errlen, "string: NUL byte at byte %zu", i);
			return AG_EDECODE;
		}
		size_t len = utf8_seq(p + i, data.len - i);
		if (len == 0) {
			snprintf(err, errlen, "string: invalid UTF-8 at byte %zu (0x%02x)", i,
				 p[i]);
			return AG_EDECODE;
		}
		i += len;
	}
	return 0;
}

/*
 * Flags the JSON codec parses with: any value at the top, duplicate keys allowed (the last
 * wins, as in Python), "\u0000" allowed because RFC 8259 allows it. Whoever parses event
 * values should use the same flags so what validates also parses.
 */
#define CODEC_JSON_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)

static int
validate_json(struct ag_bytes data, char *err, size_t errlen)
{
	/* No raw NUL is valid JSON text, but jansson skips one between tokens. */
	const char *nul = data.len ? memchr(data.ptr, '\0', data.len) : NULL;
	if (nul) {
		snprintf(err, errlen, "json: NUL byte at byte %zu",
			 (size_t)(nul - (const char *)data.ptr));
		return AG_EDECODE;
	}
	json_error_t jerr;
	json_t *v = json_loadb(data.ptr ? data.ptr : "", data.len, CODEC_JSON_FLAGS, &jerr);
	if (v) {
		json_decref(v);
		return 0;
	}
	snprintf(err, errlen, "json: %s at line %d column %d (byte %d)", jerr.text, jerr.line,
		 jerr.column, jerr.position);
	return AG_EDECODE;
}

/* Big-endian integers of n bytes (msgpack and Kafka both use network order). */
static void
put_be(unsigned char *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

static uint64_t
get_be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * Checks one msgpack value without building it: a walk over the format bytes with a stack
 * of the items each open array or map still expects. Lengths are compared against the bytes
 * left before anything is added to them, so no claimed length can wrap around or make the
 * walk read outside data; a container that claims more items than there are bytes left is
 * refused at once (each item takes at least one byte). str payloads are not checked for
 * UTF-8, as msgpack-c does not check them either.
 */
static int
validate_msgpack(struct ag_bytes data, char *err, size_t errlen)
{
	const unsigned char *p = data.ptr;
	size_t n = data.len, i = 0;
	uint64_t left[AG__MSGPACK_MAX_DEPTH + 1]; /* items still expected at each depth */
	size_t depth = 0;
	left[0] = 1;
	if (n == 0) {
		snprintf(err, errlen, "msgpack: empty input at byte 0");
		return AG_EDECODE;
	}
	for (;;) {
		while (depth > 0 && left[depth] == 0)
			depth--;
		if (left[depth] == 0)
			break;
		left[depth]--;
		if (i == n) {
			snprintf(err, errlen, "msgpack: truncated: value expected at byte %zu", i);
			return AG_EDECODE;
		}
		size_t at = i;
		unsigned char c = p[i++];
		size_t width = 0; /* bytes of the length field (or the fixed payload) */
		size_t extra = 0; /* bytes between the length field and the payload (ext type) */
		int kind = 's'; /* 's' fixed-size scalar, 'l' length-prefixed, 'a' array, 'm' map */
		uint64_t count = 0; /* items of a fix container */
		if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
			/* fixint, nil, bool: the format byte is the whole value */
		} else if (c <= 0x8f) {
			kind = 'm', count = c & 0x0f;
		} else if (c <= 0x9f) {
			kind = 'a', count = c & 0x0f;
		} else if (c <= 0xbf) {
			width = c & 0x1f; /* fixstr: a payload of that many bytes */
		} else {
			switch (c) {
			case 0xc4: /* bin 8/16/32 */
			case 0xc5:
			case 0xc6:
				kind = 'l', width = (size_t)1 << (c - 0xc4);
				break;
			case 0xc7: /* ext 8/16/32: length, type byte, payload */
			case 0xc8:
			case 0xc9:
				kind = 'l', width = (size_t)1 << (c - 0xc7), extra = 1;
				break;
			case 0xca:
				width = 4;
				break;
			case 0xcb:
				width = 8;
				break;
			case 0xcc: /* uint 8/16/32/64 */
			case 0xcd:
			case 0xce:
			case 0xcf:
				width = (size_t)1 << (c - 0xcc);
				break;
			case 0xd0: /* int 8/16/32/64 */
			case 0xd1:
			case 0xd2:
			case 0xd3:
				width = (size_t)1 << (c - 0xd0);
				break;
			case 0xd4: /* fixext 1/2/4/8/16: type byte and payload */
			case 0xd5:
			case 0xd6:
			case 0xd7:
			case 0xd8:
				width = 1 + ((size_t)1 << (c - 0xd4));
				break;
			case 0xd9: /* str 8/16/32 */
			case 0xda:
			case 0xdb:
				kind = 'l', width = (size_t)1 << (c - 0xd9);
				break;
			case 0xdc: /* array 16/32 */
			case 0xdd:
				kind = 'a', width = (size_t)2 << (c - 0xdc);
				break;
			case 0xde: /* map 16/32 */
			case 0xdf:
				kind = 'm', width = (size_t)2 << (c - 0xde);
				break;
			default: /* 0xc1 */
				snprintf(err, errlen,
					 "msgpack: invalid format byte 0x%02x at byte %zu", c, at);
				return AG_EDECODE;
			}
		}
		if (width + extra > n - i) {
			snprintf(err, errlen,
				 "msgpack: truncated value 0x%02x at byte %zu (needs %zu more "
				 "bytes, "
				 "%zu left)",
				 c, at, width + extra, n - i);
			return AG_EDECODE;
		}
		if (kind == 's') {
			i += width;
			continue;
		}
		if (kind == 'l') {
			uint64_t len = get_be(p + i, width);
			i += width + extra;
			if (len > n - i) {
				snprintf(err, errlen,
					 "msgpack: truncated value 0x%02x at byte %zu (%" PRIu64
					 " payload bytes, %zu left)",
					 c, at, len, n - i);
				return AG_EDECODE;
			}
			i += (size_t)len;
			continue;
		}
		if (width) {
			count = get_be(p + i, width);
			i += width;
		}
		if (kind == 'm')
			count *= 2; /* at most 2^33: no overflow */
		if (depth == AG__MSGPACK_MAX_DEPTH) {
			snprintf(err, errlen, "msgpack: nesting deeper than %d at byte %zu",
				 AG__MSGPACK_MAX_DEPTH, at);
			return AG_EDECODE;
		}
		if (count > n - i) {
			snprintf(err, errlen,
				 "msgpack: truncated %s at byte %zu (%" PRIu64
				 " items, %zu bytes left)",
				 kind == 'm' ? "map" : "array", at, count, n - i);
			return AG_EDECODE;
		}
		left[++depth] = count;
	}
	if (i != n) {
		snprintf(err, errlen, "msgpack: trailing bytes after the value at byte %zu", i);
		return AG_EDECODE;
	}
	return 0;
}

static int
validate_fixed8(enum ag_codec codec, struct ag_bytes data, char *err, size_t errlen)
{
	if (data.len == 8)
		return 0;
	if (data.len < 8)
		snprintf(err, errlen, "%s: truncated at byte %zu (exactly 8 bytes expected)",
			 ag__codec_name(codec), data.len);
	else
		snprintf(err, errlen,
			 "%s: trailing bytes at byte 8 (exactly 8 bytes expected, got %zu)",
			 ag__codec_name(codec), data.len);
	return AG_EDECODE;
}

int
ag__codec_validate(enum ag_codec codec, struct ag_bytes data, char *err, size_t errlen)
{
	char dummy[1];
	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (data.len && !data.ptr) {
		snprintf(err, errlen, "%s: NULL data of %zu bytes", ag__codec_name(codec),
			 data.len);
		return AG_EDECODE;
	}
	switch (codec) {
	case AG_CODEC_RAW:
		return 0;
	case AG_CODEC_STRING:
		return validate_string(data, err, errlen);
	case AG_CODEC_JSON:
		return validate_json(data, err, errlen);
	case AG_CODEC_MSGPACK:
		return validate_msgpack(data, err, errlen);
	case AG_CODEC_INT64:
	case AG_CODEC_DOUBLE:
		return validate_fixed8(codec, data, err, errlen);
	case AG_CODEC_CUSTOM:
		break; /* an app's codecs are checked by the app's own functions */
	}
	snprintf(err, errlen, "unknown codec %d", (int)codec);
	return AG_EDECODE;
}

/* ---- Kafka's LongSerializer and DoubleSerializer: 8 bytes, big-endian ---- */

int
ag__codec_int64_decode(struct ag_bytes data, int64_t *out)
{
	if (data.len != 8 || !data.ptr)
		return AG_EDECODE;
	uint64_t u = get_be(data.ptr, 8);
	/* Two's complement without the implementation-defined conversion of large values. */
	*out = u <= INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
	return 0;
}

int
ag__codec_double_decode(struct ag_bytes data, double *out)
{
	if (data.len != 8 || !data.ptr)
		return AG_EDECODE;
	uint64_t u = get_be(data.ptr, 8);
	memcpy(out, &u, sizeof(*out));
	return 0;
}

int
ag__codec_int64_encode(int64_t v, void *buf, size_t cap)
{
	if (cap < 8)
		return -ENOBUFS;
	put_be(buf, (uint64_t)v, 8);
	return 8;
}

int
ag__codec_double_encode(double v, void *buf, size_t cap)
{
	uint64_t u;
	if (cap < 8)
		return -ENOBUFS;
	memcpy(&u, &v, sizeof(u));
	put_be(buf, u, 8);
	return 8;
}

/* ---- msgpack scalars ---- */

/* Format byte and payload width of an integer's smallest msgpack form. */
static void
int_form(int64_t i, unsigned char *fmt, size_t *width)
{
	if (i >= 0) {
		uint64_t u = (uint64_t)i;
		if (u <= 0x7f)
			*fmt = (unsigned char)u, *width = 0; /* positive fixint */
		else if (u <= UINT8_MAX)
			*fmt = 0xcc, *width = 1;
		else if (u <= UINT16_MAX)
			*fmt = 0xcd, *width = 2;
		else if (u <= UINT32_MAX)
			*fmt = 0xce, *width = 4;
		else
			*fmt = 0xcf, *width = 8;
	} else {
		if (i >= -32)
			*fmt = (unsigned char)(int8_t)i, *width = 0; /* negative fixint */
		else if (i >= INT8_MIN)
			*fmt = 0xd0, *width = 1;
		else if (i >= INT16_MIN)
			*fmt = 0xd1, *width = 2;
		else if (i >= INT32_MIN)
			*fmt = 0xd2, *width = 4;
		else
			*fmt = 0xd3, *width = 8;
	}
}

size_t
ag__val_encoded_size(const struct ag__val *v)
{
	unsigned char fmt;
	size_t width;
	switch (v->type) {
	case AG__VAL_I64:
		int_form(v->i64, &fmt, &width);
		return 1 + width;
	case AG__VAL_F64:
		return 9;
	case AG__VAL_BYTES:
		if (v->bytes.len <= UINT8_MAX)
			return 2 + v->bytes.len;
		if (v->bytes.len <= UINT16_MAX)
			return 3 + v->bytes.len;
		if (v->bytes.len <= INT_MAX - 5)
			return 5 + v->bytes.len;
		return 0;
	case AG__VAL_NONE:
	default:
		return 0;
	}
}

int
ag__val_encode(const struct ag__val *v, void *buf, size_t cap)
{
	size_t need = ag__val_encoded_size(v);
	if (need == 0)
		return v->type == AG__VAL_BYTES ? -EMSGSIZE : -EINVAL;
	if (cap < need)
		return -ENOBUFS;
	unsigned char *p = buf;
	unsigned char fmt;
	size_t width;
	uint64_t bits;
	switch (v->type) {
	case AG__VAL_I64:
		int_form(v->i64, &fmt, &width);
		p[0] = fmt;
		put_be(p + 1, (uint64_t)v->i64, width);
		break;
	case AG__VAL_F64:
		memcpy(&bits, &v->f64, sizeof(bits));
		p[0] = 0xcb;
		put_be(p + 1, bits, 8);
		break;
	default: /* AG__VAL_BYTES: ag__val_encoded_size refused the rest */
		width = need - 1 - v->bytes.len;
		p[0] = width == 1 ? 0xc4 : width == 2 ? 0xc5 : 0xc6;
		put_be(p + 1, v->bytes.len, width);
		if (v->bytes.len)
			memcpy(p + 1 + width, v->bytes.ptr, v->bytes.len);
		break;
	}
	return (int)need;
}

int
ag__val_decode(struct ag_bytes data, struct ag__val *out)
{
	const unsigned char *p = data.ptr;
	size_t n = data.len;
	if (n == 0 || !p)
		return AG_EDECODE;
	unsigned char c = p[0];
	size_t width = 0; /* payload (or length field) bytes after the format byte */
	int kind; /* 'u' uint, 'i' int, 'f' float32, 'd' float64, 'b' bytes */
	if (c <= 0x7f || c >= 0xe0) { /* positive and negative fixint */
		if (n != 1)
			return AG_EDECODE;
		*out = (struct ag__val){.type = AG__VAL_I64, .i64 = (int8_t)c};
		return 0;
	}
	if (c >= 0xa0 && c <= 0xbf) { /* fixstr */
		size_t len = c & 0x1f;
		if (n != 1 + len)
			return AG_EDECODE;
		*out = (struct ag__val){.type = AG__VAL_BYTES, .bytes = {p + 1, len}};
		return 0;
	}
	switch (c) {
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf:
		kind = 'u', width = (size_t)1 << (c - 0xcc);
		break;
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3:
		kind = 'i', width = (size_t)1 << (c - 0xd0);
		break;
	case 0xca:
		kind = 'f', width = 4;
		break;
	case 0xcb:
		kind = 'd', width = 8;
		break;
	case 0xc4:
	case 0xc5:
	case 0xc6: /* bin 8/16/32 */
		kind = 'b', width = (size_t)1 << (c - 0xc4);
		break;
	case 0xd9:
	case 0xda:
	case 0xdb: /* str 8/16/32 */
		kind = 'b', width = (size_t)1 << (c - 0xd9);
		break;
	default:
		return AG_EDECODE; /* nil, bool, containers, ext: not table scalars */
	}
	if (n - 1 < width)
		return AG_EDECODE;
	uint64_t u = get_be(p + 1, width);
	if (kind == 'b') {
		/* Compare without adding, so a huge length cannot wrap around. */
		if (u != n - 1 - width)
			return AG_EDECODE;
		*out = (struct ag__val){.type = AG__VAL_BYTES, .bytes = {p + 1 + width, (size_t)u}};
		return 0;
	}
	if (n != 1 + width)
		return AG_EDECODE;
	switch (kind) {
	case 'u':
		if (u > INT64_MAX)
			return AG_EDECODE; /* does not fit the table's int64 */
		*out = (struct ag__val){.type = AG__VAL_I64, .i64 = (int64_t)u};
		return 0;
	case 'i': {
		/* Sign-extend from the payload's width (two's complement, as C23 requires). */
		int64_t i = width == 1   ? (int8_t)u
			    : width == 2 ? (int16_t)u
			    : width == 4 ? (int32_t)u
					 : (int64_t)u;
		*out = (struct ag__val){.type = AG__VAL_I64, .i64 = i};
		return 0;
	}
	case 'f': {
		uint32_t b32 = (uint32_t)u;
		float f;
		memcpy(&f, &b32, sizeof(f));
		*out = (struct ag__val){.type = AG__VAL_F64, .f64 = f};
		return 0;
	}
	default: {
		double d;
		memcpy(&d, &u, sizeof(d));
		*out = (struct ag__val){.type = AG__VAL_F64, .f64 = d};
		return 0;
	}
	}
}

/* Appends to a bounded buffer, counting what would have been written. */
struct outbuf {
	char *p;
	size_t cap;
	size_t len;
};

static void
out_put(struct outbuf *o, const char *s, size_t n)
{
	if (o->len < o->cap) {
		size_t room = o->cap - o->len;
		memcpy(o->p + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

/* The letter of JSON's two-character escape of c, or 0. */
static char
short_escape(unsigned char c)
{
	switch (c) {
	case '\b':
		return 'b';
	case '\f':
		return 'f';
	case '\n':
		return 'n';
	case '\r':
		return 'r';
	case '\t':
		return 't';
	default:
		return 0;
	}
}

/* Writes bytes as a JSON string: escapes, and \u00XX for each byte that is not UTF-8. */
static void
put_json_string(struct outbuf *o, struct ag_bytes b)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = b.ptr;
	out_put(o, "\"", 1);
	for (size_t i = 0; i < b.len;) {
		unsigned char c = p[i];
		size_t len = utf8_seq(p + i, b.len - i);
		char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
		if (c == '"' || c == '\\') {
			esc[1] = (char)c;
			out_put(o, esc, 2);
			i++;
		} else if (short_escape(c)) {
			esc[1] = short_escape(c);
			out_put(o, esc, 2);
			i++;
		} else if (c < 0x20 || c == 0x7f || len == 0) {
			/* A control byte, DEL, or a byte that is not UTF-8. */
			out_put(o, esc, sizeof(esc));
			i++;
		} else {
			out_put(o, (const char *)p + i, len);
			i += len;
		}
	}
	out_put(o, "\"", 1);
}

/* Shortest "%.*g" that reads back as d, with ".0" added to integral values. */
static void
put_json_double(struct outbuf *o, double d)
{
	char tmp[40];
	if (!isfinite(d)) {
		out_put(o, "null", 4); /* JSON has no NaN or infinities */
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	out_put(o, tmp, strlen(tmp));
	if (!strpbrk(tmp, ".eE"))
		out_put(o, ".0", 2);
}

int
ag__val_to_json(const struct ag__val *v, char *buf, size_t cap)
{
	struct outbuf o = {buf, cap, 0};
	char tmp[32];
	switch (v->type) {
	case AG__VAL_I64:
		snprintf(tmp, sizeof(tmp), "%" PRId64, v->i64);
		out_put(&o, tmp, strlen(tmp));
		break;
	case AG__VAL_F64:
		put_json_double(&o, v->f64);
		break;
	case AG__VAL_BYTES:
		put_json_string(&o, v->bytes);
		break;
	case AG__VAL_NONE:
	default:
		out_put(&o, "null", 4);
		break;
	}
	if (o.len >= cap || o.len > INT_MAX) {
		if (cap)
			buf[0] = '\0';
		return -ENOBUFS;
	}
	buf[o.len] = '\0';
	return (int)o.len;
}

AG_EXPORT int
ag_json_dump(const json_t *value, struct ag_bytes *out)
{
	const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
	if (!value)
		return -EINVAL;
	/* Sized first and copied into our own malloc, so free() is right whatever allocator
	 * jansson was given (json_set_alloc_funcs). */
	size_t need = json_dumpb(value, NULL, 0, flags);
	if (need == 0)
		return -EINVAL;
	char *buf = malloc(need + 1);
	if (!buf)
		return -ENOMEM;
	if (json_dumpb(value, buf, need, flags) != need) {
		free(buf);
		return -EINVAL;
	}
	buf[need] = '\0';
	out->ptr = buf;
	out->len = need;
	return 0;
}

/* ---- the table value envelope ---- */

static int64_t
get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return (int64_t)v;
}

int
ag__tval_parse(struct ag_bytes stored, struct ag__tval *out)
{
	const unsigned char *p = stored.ptr;
	if (!p || stored.len == 0 || p[0] != AG__TVAL_MAGIC) {
		*out = (struct ag__tval){.offset = -1, .mtime = -1, .payload = stored};
		return 0;
	}
	if (stored.len < 2)
		return AG_EDECODE;
	unsigned flags = p[1];
	if (flags & ~(AG__TVAL_OFFSET | AG__TVAL_MTIME | AG__TVAL_META))
		return AG_EDECODE;
	size_t need = 2 + (flags & AG__TVAL_OFFSET ? 8 : 0) + (flags & AG__TVAL_MTIME ? 8 : 0);
	if (stored.len < need)
		return AG_EDECODE;
	struct ag__tval v = {.offset = -1, .mtime = -1, .meta = !!(flags & AG__TVAL_META)};
	size_t at = 2;
	if (flags & AG__TVAL_OFFSET) {
		v.offset = get_be64(p + at);
		at += 8;
	}
	if (flags & AG__TVAL_MTIME) {
		v.mtime = get_be64(p + at);
		at += 8;
	}
	v.payload = (struct ag_bytes){p + at, stored.len - at};
	*out = v;
	return 0;
}

size_t
ag__tval_header(const struct ag__tval *v, uint8_t *buf)
{
	size_t at = 2;
	unsigned flags = 0;
	if (v->offset >= 0) {
		flags |= AG__TVAL_OFFSET;
		put_be(buf + at, (uint64_t)v->offset, 8);
		at += 8;
	}
	if (v->mtime >= 0) {
		flags |= AG__TVAL_MTIME;
		put_be(buf + at, (uint64_t)v->mtime, 8);
		at += 8;
	}
	if (v->meta)
		flags |= AG__TVAL_META;
	buf[0] = AG__TVAL_MAGIC;
	buf[1] = (uint8_t)flags;
	return at;
}
