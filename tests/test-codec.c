/*
 * Unit tests of the codecs (libagent/src/codec.c). msgpack-c serves as the reference: our
 * hand-written encoder must produce its bytes, and its unpacker must read ours back.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include <agent/error.h>
#include <agent/json.h>

#include "codec.h"

/* tap.h's macros use GNU's `, ##__VA_ARGS__` (the tests build as gnu11); clang -Wpedantic
 * would flag every call without extra arguments. */
#ifdef __clang__
#endif
#include "tap.h"

/* Bytes of a string literal, embedded NULs included. */
#define LIT_INIT(s) \
	{ \
		(s), sizeof(s) - 1 \
	}
#define LIT(s) ((struct ag_bytes)LIT_INIT(s))

static void
test_names(void)
{
	enum ag_codec c = AG_CODEC_RAW;
	ok_str_eq(ag__codec_name(AG_CODEC_RAW), "raw", "name raw");
	ok_str_eq(ag__codec_name(AG_CODEC_STRING), "string", "name string");
	ok_str_eq(ag__codec_name(AG_CODEC_JSON), "json", "name json");
	ok_str_eq(ag__codec_name(AG_CODEC_MSGPACK), "msgpack", "name msgpack");
	ok_str_eq(ag__codec_name(AG_CODEC_INT64), "int64", "name int64");
	ok_str_eq(ag__codec_name(AG_CODEC_DOUBLE), "double", "name double");
	ok_str_eq(ag__codec_name(AG_CODEC_CUSTOM), "unknown", "custom codecs are named by the app");
	ok(ag__codec_name((enum ag_codec)99) != NULL, "unknown codec has a name");
	ok_int_eq(ag__codec_parse("json", &c), 0, "parse json");
	ok_int_eq(c, AG_CODEC_JSON, "json parsed");
	ok_int_eq(ag__codec_parse("string", &c), 0, "parse string");
	ok_int_eq(c, AG_CODEC_STRING, "string parsed");
	ok_int_eq(ag__codec_parse("raw", &c), 0, "parse raw");
	ok_int_eq(c, AG_CODEC_RAW, "raw parsed");
	static const enum ag_codec all[] = {AG_CODEC_RAW,     AG_CODEC_STRING, AG_CODEC_JSON,
					    AG_CODEC_MSGPACK, AG_CODEC_INT64,  AG_CODEC_DOUBLE};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		c = AG_CODEC_CUSTOM;
		ok(ag__codec_parse(ag__codec_name(all[i]), &c) == 0 && c == all[i],
		   "parse(name(%s)) round-trips", ag__codec_name(all[i]));
	}
	ok_int_eq(ag__codec_parse("JSON2", &c), -EINVAL, "unknown name: -EINVAL");
	ok_int_eq(ag__codec_parse("unknown", &c), -EINVAL, "\"unknown\": -EINVAL");
	ok_int_eq(ag__codec_parse("", &c), -EINVAL, "empty name: -EINVAL");
	ok_int_eq(ag__codec_parse(NULL, &c), -EINVAL, "NULL name: -EINVAL");
}

/* Validates data with a heap copy of exactly its size, so ASan sees any overread. */
static int
validate(enum ag_codec codec, struct ag_bytes data, char *err, size_t errlen)
{
	void *copy = malloc(data.len ? data.len : 1);
	memcpy(copy, data.ptr, data.len);
	int rc = ag__codec_validate(codec, (struct ag_bytes){copy, data.len}, err, errlen);
	free(copy);
	return rc;
}

static void
test_string(void)
{
	static const struct {
		struct ag_bytes s;
		const char *what;
	} good[] = {
		{LIT_INIT(""), "empty"},
		{LIT_INIT("hello"), "ASCII"},
		{LIT_INIT("\xc2\x80"), "U+0080"},
		{LIT_INIT("\xc3\xa9"), "U+00E9"},
		{LIT_INIT("\xdf\xbf"), "U+07FF"},
		{LIT_INIT("\xe0\xa0\x80"), "U+0800"},
		{LIT_INIT("\xe2\x82\xac"), "U+20AC"},
		{LIT_INIT("\xed\x9f\xbf"), "U+D7FF, below the surrogates"},
		{LIT_INIT("\xee\x80\x80"), "U+E000, above the surrogates"},
		{LIT_INIT("\xef\xbf\xbf"), "U+FFFF"},
		{LIT_INIT("\xf0\x90\x80\x80"), "U+10000"},
		{LIT_INIT("\xf0\x9d\x84\x9e"), "U+1D11E"},
		{LIT_INIT("\xf4\x8f\xbf\xbf"), "U+10FFFF"},
		{LIT_INIT("a\x7f z"), "DEL"},
	};
	static const struct {
		struct ag_bytes s;
		const char *what;
		size_t at;
	} bad[] = {
		{LIT_INIT("a\0b"), "NUL", 1},
		{LIT_INIT("\xc0\x80"), "overlong NUL", 0},
		{LIT_INIT("\xc1\xbf"), "overlong 2-byte", 0},
		{LIT_INIT("\xe0\x80\xaf"), "overlong 3-byte", 0},
		{LIT_INIT("\xe0\x9f\xbf"), "overlong U+07FF in 3 bytes", 0},
		{LIT_INIT("\xf0\x8f\xbf\xbf"), "overlong U+FFFF in 4 bytes", 0},
		{LIT_INIT("\xed\xa0\x80"), "surrogate U+D800", 0},
		{LIT_INIT("\xed\xbf\xbf"), "surrogate U+DFFF", 0},
		{LIT_INIT("\xf4\x90\x80\x80"), "U+110000", 0},
		{LIT_INIT("\xf5\x80\x80\x80"), "lead byte F5", 0},
		{LIT_INIT("\xf8\x88\x80\x80\x80"), "5-byte form", 0},
		{LIT_INIT("ab\xff"), "byte FF", 2},
		{LIT_INIT("\x80"), "lone continuation byte", 0},
		{LIT_INIT("x\xc3"), "truncated 2-byte", 1},
		{LIT_INIT("\xe2\x82"), "truncated 3-byte", 0},
		{LIT_INIT("\xf0\x9d\x84"), "truncated 4-byte", 0},
		{LIT_INIT("\xe2\x28\xa1"), "bad continuation", 0},
		{LIT_INIT("\xc3\xa9\xc3"), "truncated after a good one", 2},
	};
	char err[128];
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ok_int_eq(validate(AG_CODEC_STRING, good[i].s, err, sizeof(err)), 0,
			  "string accepts %s", good[i].what);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ok_int_eq(validate(AG_CODEC_STRING, bad[i].s, err, sizeof(err)), AG_EDECODE,
			  "string rejects %s", bad[i].what);
		char where[32];
		snprintf(where, sizeof(where), "at byte %zu", bad[i].at);
		ok(strstr(err, where) != NULL, "  and says where: %s", err);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok_int_eq(validate(AG_CODEC_RAW, bad[i].s, err, sizeof(err)), 0, "raw accepts %s",
			  bad[i].what);
	ok_int_eq(ag__codec_validate(AG_CODEC_STRING, LIT("\xff"), NULL, 0), AG_EDECODE,
		  "err is optional");
	char tiny[4];
	ok_int_eq(ag__codec_validate(AG_CODEC_STRING, LIT("\xff"), tiny, sizeof(tiny)), AG_EDECODE,
		  "a small err buffer is fine");
	ok_int_eq(strlen(tiny), 3, "and is truncated, terminated");
}

static char *
nested(size_t depth)
{
	char *s = malloc(2 * depth + 2);
	memset(s, '[', depth);
	memset(s + depth, ']', depth);
	s[2 * depth] = '\0';
	return s;
}

static void
test_json(void)
{
	static const char *const good[] = {
		"1",
		"-0.5e10",
		"  {\"a\": [1, 2, {\"b\": null}]}  \n",
		"\"text\"",
		"\"\xc3\xa9\\u00e9\\ud834\\udd1e\"",
		"null",
		"true",
		"[]",
		"{\"a\":1,\"a\":2}",
		"\"\\u0000\"",
	};
	static const struct {
		const char *s;
		const char *what;
	} bad[] = {
		{"", "empty input"},
		{"   \n", "only whitespace"},
		{"1 2", "two values"},
		{"{} {}", "two objects"},
		{"{\"a\":1} x", "trailing garbage"},
		{"{\"a\":1}}", "an extra brace"},
		{"[1,]", "a trailing comma"},
		{"{'a':1}", "single quotes"},
		{"NaN", "NaN"},
		{"01", "a leading zero"},
		{"\"\xff\"", "invalid UTF-8 in a string"},
		{"\"\xed\xa0\x80\"", "an encoded surrogate"},
		{"\"\\ud800\"", "a lone surrogate escape"},
		{"\"a\nb\"", "a raw newline in a string"},
		{"[", "unterminated array"},
		{"\"abc", "unterminated string"},
	};
	char err[256];
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int rc = validate(AG_CODEC_JSON, (struct ag_bytes){good[i], strlen(good[i])}, err,
				  sizeof(err));
		ok_int_eq(rc, 0, "json accepts %s", good[i]);
		if (rc)
			printf("#   %s\n", err);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ok_int_eq(validate(AG_CODEC_JSON, (struct ag_bytes){bad[i].s, strlen(bad[i].s)},
				   err, sizeof(err)),
			  AG_EDECODE, "json rejects %s", bad[i].what);
		ok(strncmp(err, "json: ", 6) == 0 && strstr(err, "(byte "), "  with a reason: %s",
		   err);
	}
	ok_int_eq(validate(AG_CODEC_JSON, LIT("1\0"), err, sizeof(err)), AG_EDECODE,
		  "json rejects a raw NUL after the value");
	ok_str_eq(err, "json: NUL byte at byte 1", "  and says where");
	ok_int_eq(validate(AG_CODEC_JSON, LIT("[1\0]"), err, sizeof(err)), AG_EDECODE,
		  "json rejects a raw NUL between tokens (jansson alone skips it)");
	ok_int_eq(validate(AG_CODEC_JSON, LIT("\"a\0b\""), err, sizeof(err)), AG_EDECODE,
		  "json rejects a raw NUL in a string");
	ok(strstr(err, "at byte 2"), "  at its position: %s", err);
	ok_int_eq(validate(AG_CODEC_JSON, LIT("1 x"), err, sizeof(err)), AG_EDECODE,
		  "json: garbage after a value");
	ok(strstr(err, "(byte 2)") || strstr(err, "(byte 3)"), "  with its position: %s", err);

	char *deep = nested(500);
	ok_int_eq(validate(AG_CODEC_JSON, (struct ag_bytes){deep, strlen(deep)}, err, sizeof(err)),
		  0, "json accepts 500 levels of nesting");
	free(deep);
	deep = nested(100000);
	ok_int_eq(validate(AG_CODEC_JSON, (struct ag_bytes){deep, strlen(deep)}, err, sizeof(err)),
		  AG_EDECODE, "json rejects 100000 levels without crashing");
	printf("#   %s\n", err);
	free(deep);
}

/* msgpack-c packs a value of every type; the validator must take it whole and refuse every
 * strict prefix of it and the value with one byte more. */
static void
test_msgpack_reference(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	static const char blob[300] = "blob";
	char err[256];

	msgpack_pack_map(&pk, 12);
	msgpack_pack_str_with_body(&pk, "nil", 3);
	msgpack_pack_nil(&pk);
	msgpack_pack_str_with_body(&pk, "bools", 5);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_true(&pk);
	msgpack_pack_false(&pk);
	msgpack_pack_str_with_body(&pk, "ints", 4);
	msgpack_pack_array(&pk, 8);
	msgpack_pack_int64(&pk, 0);
	msgpack_pack_int64(&pk, -1);
	msgpack_pack_int64(&pk, 200);
	msgpack_pack_int64(&pk, -200);
	msgpack_pack_int64(&pk, 70000);
	msgpack_pack_int64(&pk, -70000);
	msgpack_pack_int64(&pk, INT64_MIN);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	msgpack_pack_str_with_body(&pk, "floats", 6);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_float(&pk, 1.5f);
	msgpack_pack_double(&pk, 107.89);
	msgpack_pack_str_with_body(&pk, "str8", 4);
	msgpack_pack_str_with_body(&pk, blob, 200);
	msgpack_pack_str_with_body(&pk, "str16", 5);
	msgpack_pack_str_with_body(&pk, blob, 300);
	msgpack_pack_str_with_body(&pk, "bin", 3);
	msgpack_pack_bin_with_body(&pk, blob, 10);
	msgpack_pack_str_with_body(&pk, "fixext", 6);
	msgpack_pack_array(&pk, 5);
	for (size_t len = 1; len <= 16; len *= 2)
		msgpack_pack_ext_with_body(&pk, blob, len, 7);
	msgpack_pack_str_with_body(&pk, "ext", 3);
	msgpack_pack_ext_with_body(&pk, blob, 3, -1);
	msgpack_pack_str_with_body(&pk, "array16", 7);
	msgpack_pack_array(&pk, 20);
	for (int i = 0; i < 20; i++)
		msgpack_pack_int(&pk, i);
	msgpack_pack_str_with_body(&pk, "map16", 5);
	msgpack_pack_map(&pk, 16);
	for (int i = 0; i < 16; i++) {
		msgpack_pack_int(&pk, i);
		msgpack_pack_map(&pk, 0);
	}
	msgpack_pack_int(&pk, 12); /* integer keys are msgpack too */
	msgpack_pack_array(&pk, 0);

	int rc = validate(AG_CODEC_MSGPACK, (struct ag_bytes){sb.data, sb.size}, err, sizeof(err));
	ok_int_eq(rc, 0, "msgpack accepts a map of every type msgpack-c packs (%zu bytes)",
		  sb.size);
	if (rc)
		printf("#   %s\n", err);
	int bad = 0;
	for (size_t len = 0; len < sb.size; len++) {
		if (validate(AG_CODEC_MSGPACK, (struct ag_bytes){sb.data, len}, err, sizeof(err)) !=
			    AG_EDECODE ||
		    !strstr(err, "at byte ")) {
			printf("#   prefix of %zu bytes: %s\n", len, err);
			bad++;
		}
	}
	ok_int_eq(bad, 0, "msgpack rejects each of its %zu strict prefixes, saying where", sb.size);
	msgpack_pack_nil(&pk);
	ok_int_eq(validate(AG_CODEC_MSGPACK, (struct ag_bytes){sb.data, sb.size}, err, sizeof(err)),
		  AG_EDECODE, "msgpack rejects one byte after the value");
	char where[64];
	snprintf(where, sizeof(where), "trailing bytes after the value at byte %zu", sb.size - 1);
	ok(strstr(err, where) != NULL, "  at its offset: %s", err);
	msgpack_sbuffer_destroy(&sb);
}

/* n arrays of one element each around an innermost value (bytes of inner). */
static unsigned char *
nested_msgpack(size_t n, struct ag_bytes inner, size_t *len)
{
	unsigned char *p = malloc(n + inner.len);
	memset(p, 0x91, n);
	memcpy(p + n, inner.ptr, inner.len);
	*len = n + inner.len;
	return p;
}

static void
test_msgpack(void)
{
	static const struct {
		struct ag_bytes b;
		const char *what;
	} good[] = {
		{LIT_INIT("\x00"), "fixint 0"},
		{LIT_INIT("\x7f"), "fixint 127"},
		{LIT_INIT("\xff"), "fixint -1"},
		{LIT_INIT("\xc0"), "nil"},
		{LIT_INIT("\xc3"), "true"},
		{LIT_INIT("\xa0"), "empty fixstr"},
		{LIT_INIT("\xa3"
			  "abc"),
		 "fixstr"},
		{LIT_INIT("\xbf"
			  "0123456789012345678901234567890"),
		 "fixstr of 31"},
		{LIT_INIT("\xa2\xff\x00"), "fixstr with bytes that are not UTF-8 (not checked)"},
		{LIT_INIT("\xd9\x00"), "empty str8"},
		{LIT_INIT("\xda\x00\x01x"), "str16 of 1"},
		{LIT_INIT("\xdb\x00\x00\x00\x02xy"), "str32 of 2"},
		{LIT_INIT("\xc4\x00"), "empty bin8"},
		{LIT_INIT("\xc6\x00\x00\x00\x01\x00"), "bin32 of 1"},
		{LIT_INIT("\xc7\x00\x05"), "empty ext8"},
		{LIT_INIT("\xc8\x00\x01\x05x"), "ext16 of 1"},
		{LIT_INIT("\xc9\x00\x00\x00\x00\xff"), "empty ext32"},
		{LIT_INIT("\xd4\x01x"), "fixext1"},
		{LIT_INIT("\xd8\x01"
			  "0123456789abcdef"),
		 "fixext16"},
		{LIT_INIT("\xca\x3f\xc0\x00\x00"), "float32"},
		{LIT_INIT("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"), "float64 NaN"},
		{LIT_INIT("\xcf\xff\xff\xff\xff\xff\xff\xff\xff"), "uint64 max"},
		{LIT_INIT("\xd3\x80\x00\x00\x00\x00\x00\x00\x00"), "int64 min"},
		{LIT_INIT("\x90"), "empty fixarray"},
		{LIT_INIT("\x80"), "empty fixmap"},
		{LIT_INIT("\xdc\x00\x00"), "empty array16"},
		{LIT_INIT("\xdd\x00\x00\x00\x00"), "empty array32"},
		{LIT_INIT("\xde\x00\x00"), "empty map16"},
		{LIT_INIT("\xdf\x00\x00\x00\x01\xc0\xc0"), "map32 nil: nil"},
		{LIT_INIT("\x92\x90\x80"), "array of an empty array and an empty map"},
		{LIT_INIT("\x82\xa1x\x91\x01\xa1y\x81\x00\x90"), "nested map"},
	};
	static const struct {
		struct ag_bytes b;
		const char *what;
		const char *says; /* a part of the message, with the offset */
	} bad[] = {
		{LIT_INIT(""), "empty input", "empty input at byte 0"},
		{LIT_INIT("\xc1"), "format byte 0xc1", "invalid format byte 0xc1 at byte 0"},
		{LIT_INIT("\x92\x01\xc1"), "0xc1 inside an array", "0xc1 at byte 2"},
		{LIT_INIT("\x01\x02"), "two values", "trailing bytes after the value at byte 1"},
		{LIT_INIT("\x90\x90"), "two arrays", "at byte 1"},
		{LIT_INIT("\x91"), "an array missing its item", "array at byte 0"},
		{LIT_INIT("\x92\x01"), "an array one item short", "array at byte 0"},
		{LIT_INIT("\x81\x01"), "a map missing a value", "map at byte 0"},
		{LIT_INIT("\x91\x91\x91"), "nested arrays missing the innermost item",
		 "array at byte 2"},
		{LIT_INIT("\x92\x91\x01"), "an outer array one item short",
		 "value expected at byte 3"},
		{LIT_INIT("\xa3"
			  "ab"),
		 "fixstr one byte short", "at byte 0"},
		{LIT_INIT("\xd9"), "str8 without its length", "at byte 0"},
		{LIT_INIT("\xd9\x02x"), "str8 one byte short", "at byte 0"},
		{LIT_INIT("\xda\x00"), "str16 with half its length", "at byte 0"},
		{LIT_INIT("\xdb\xff\xff\xff\xff"), "str32 claiming 4 GiB", "at byte 0"},
		{LIT_INIT("\xc6\xff\xff\xff\xff\x00"), "bin32 claiming 4 GiB", "at byte 0"},
		{LIT_INIT("\xc9\xff\xff\xff\xff\x01"), "ext32 claiming 4 GiB", "at byte 0"},
		{LIT_INIT("\xc7\x01"), "ext8 without its type", "at byte 0"},
		{LIT_INIT("\xc7\x01\x01"), "ext8 without its payload", "at byte 0"},
		{LIT_INIT("\xd4\x01"), "fixext1 without its payload", "at byte 0"},
		{LIT_INIT("\xd8\x01"
			  "0123456789abcde"),
		 "fixext16 one byte short", "at byte 0"},
		{LIT_INIT("\xca\x00\x00\x00"), "float32 one byte short", "at byte 0"},
		{LIT_INIT("\xcb\x00\x00\x00\x00\x00\x00\x00"), "float64 one byte short",
		 "at byte 0"},
		{LIT_INIT("\xcf\x00\x00\x00\x00\x00\x00\x00"), "uint64 one byte short",
		 "at byte 0"},
		{LIT_INIT("\xcc"), "uint8 without its byte", "at byte 0"},
		{LIT_INIT("\xdd\xff\xff\xff\xff\xc0"), "array32 claiming 4G items",
		 "array at byte 0 (4294967295 items, 1 bytes left)"},
		{LIT_INIT("\xdf\xff\xff\xff\xff\xc0\xc0"), "map32 claiming 4G pairs",
		 "map at byte 0 (8589934590 items"},
		{LIT_INIT("\xdc\x00"), "array16 with half its count", "at byte 0"},
		{LIT_INIT("\xde\x00\x01\xc0"), "map16 of one pair with only its key", "at byte 0"},
		{LIT_INIT("\x81\xa1x\xa3"
			  "ab"),
		 "a map's truncated string value", "at byte 3"},
	};
	char err[256];
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int rc = validate(AG_CODEC_MSGPACK, good[i].b, err, sizeof(err));
		ok_int_eq(rc, 0, "msgpack accepts %s", good[i].what);
		if (rc)
			printf("#   %s\n", err);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ok_int_eq(validate(AG_CODEC_MSGPACK, bad[i].b, err, sizeof(err)), AG_EDECODE,
			  "msgpack rejects %s", bad[i].what);
		ok(strncmp(err, "msgpack: ", 9) == 0 && strstr(err, bad[i].says),
		   "  says \"%s\": %s", bad[i].says, err);
	}

	/* Depth: the top value is depth 1; 64 nested containers pass, 65 do not. */
	size_t len;
	unsigned char *deep = nested_msgpack(AG__MSGPACK_MAX_DEPTH - 1, LIT("\x90"), &len);
	ok_int_eq(validate(AG_CODEC_MSGPACK, (struct ag_bytes){deep, len}, err, sizeof(err)), 0,
		  "msgpack accepts %d nested arrays", AG__MSGPACK_MAX_DEPTH);
	free(deep);
	deep = nested_msgpack(AG__MSGPACK_MAX_DEPTH, LIT("\x01"), &len);
	ok_int_eq(validate(AG_CODEC_MSGPACK, (struct ag_bytes){deep, len}, err, sizeof(err)), 0,
		  "msgpack accepts %d nested arrays around a scalar", AG__MSGPACK_MAX_DEPTH);
	free(deep);
	deep = nested_msgpack(AG__MSGPACK_MAX_DEPTH, LIT("\x90"), &len);
	ok_int_eq(validate(AG_CODEC_MSGPACK, (struct ag_bytes){deep, len}, err, sizeof(err)),
		  AG_EDECODE, "msgpack rejects %d nested arrays", AG__MSGPACK_MAX_DEPTH + 1);
	snprintf(err + 128, 64, "nesting deeper than 64 at byte %d", AG__MSGPACK_MAX_DEPTH);
	ok(strstr(err, err + 128) != NULL, "  at the container too deep: %s", err);
	free(deep);
	deep = nested_msgpack(AG__MSGPACK_MAX_DEPTH, LIT("\x81\x01\x90"), &len);
	ok_int_eq(validate(AG_CODEC_MSGPACK, (struct ag_bytes){deep, len}, err, sizeof(err)),
		  AG_EDECODE, "msgpack rejects a map one level too deep");
	free(deep);
	deep = nested_msgpack(1000000, LIT("\xc0"), &len);
	ok_int_eq(validate(AG_CODEC_MSGPACK, (struct ag_bytes){deep, len}, err, sizeof(err)),
		  AG_EDECODE, "msgpack rejects a million levels without crashing");
	free(deep);
	/* Wide is fine where deep is not: many siblings at one level. */
	deep = malloc(3 + 65535);
	memcpy(deep, "\xdc\xff\xff", 3);
	memset(deep + 3, 0x90, 65535);
	ok_int_eq(validate(AG_CODEC_MSGPACK, (struct ag_bytes){deep, 3 + 65535}, err, sizeof(err)),
		  0, "msgpack accepts an array16 of 65535 empty arrays");
	free(deep);

	ok_int_eq(validate(AG_CODEC_MSGPACK, LIT("\xc1"), NULL, 0), AG_EDECODE,
		  "msgpack: err is optional");
	ok_int_eq(
		ag__codec_validate(AG_CODEC_MSGPACK, (struct ag_bytes){NULL, 0}, err, sizeof(err)),
		AG_EDECODE, "msgpack rejects NULL data of 0 bytes");
	ok_int_eq(ag__codec_validate(AG_CODEC_CUSTOM, LIT("x"), err, sizeof(err)), AG_EDECODE,
		  "custom codecs are not validated here");
}

static void
test_fixed8(void)
{
	static const struct {
		int64_t v;
		struct ag_bytes be;
	} ints[] = {
		{0, LIT_INIT("\x00\x00\x00\x00\x00\x00\x00\x00")},
		{1, LIT_INIT("\x00\x00\x00\x00\x00\x00\x00\x01")},
		{-1, LIT_INIT("\xff\xff\xff\xff\xff\xff\xff\xff")},
		{256, LIT_INIT("\x00\x00\x00\x00\x00\x00\x01\x00")},
		{-256, LIT_INIT("\xff\xff\xff\xff\xff\xff\xff\x00")},
		{INT32_MAX, LIT_INIT("\x00\x00\x00\x00\x7f\xff\xff\xff")},
		{INT32_MIN, LIT_INIT("\xff\xff\xff\xff\x80\x00\x00\x00")},
		{INT64_MAX, LIT_INIT("\x7f\xff\xff\xff\xff\xff\xff\xff")},
		{INT64_MIN, LIT_INIT("\x80\x00\x00\x00\x00\x00\x00\x00")},
		{INT64_MIN + 1, LIT_INIT("\x80\x00\x00\x00\x00\x00\x00\x01")},
		{0x0102030405060708, LIT_INIT("\x01\x02\x03\x04\x05\x06\x07\x08")},
	};
	static const struct {
		double v;
		struct ag_bytes be;
		const char *what;
	} dbls[] = {
		{0.0, LIT_INIT("\x00\x00\x00\x00\x00\x00\x00\x00"), "0.0"},
		{-0.0, LIT_INIT("\x80\x00\x00\x00\x00\x00\x00\x00"), "-0.0"},
		{1.0, LIT_INIT("\x3f\xf0\x00\x00\x00\x00\x00\x00"), "1.0"},
		{-2.0, LIT_INIT("\xc0\x00\x00\x00\x00\x00\x00\x00"), "-2.0"},
		{107.89, LIT_INIT("\x40\x5a\xf8\xf5\xc2\x8f\x5c\x29"), "107.89"},
		{5e-324, LIT_INIT("\x00\x00\x00\x00\x00\x00\x00\x01"), "smallest subnormal"},
		{1.7976931348623157e308, LIT_INIT("\x7f\xef\xff\xff\xff\xff\xff\xff"), "DBL_MAX"},
		{INFINITY, LIT_INIT("\x7f\xf0\x00\x00\x00\x00\x00\x00"), "+inf"},
		{-INFINITY, LIT_INIT("\xff\xf0\x00\x00\x00\x00\x00\x00"), "-inf"},
	};
	unsigned char buf[9];
	char err[128];
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		int64_t out = 42;
		memset(buf, 0xee, sizeof(buf));
		ok_int_eq(ag__codec_int64_encode(ints[i].v, buf, 8), 8, "int64 %" PRId64 " encodes",
			  ints[i].v);
		ok_mem_eq(buf, 8, ints[i].be.ptr, 8, "  to Kafka's big-endian bytes");
		ok_int_eq(buf[8], 0xee, "  and no more");
		ok(ag__codec_int64_decode(ints[i].be, &out) == 0 && out == ints[i].v,
		   "  and decodes back");
		ok_int_eq(validate(AG_CODEC_INT64, ints[i].be, err, sizeof(err)), 0,
			  "  and validates");
	}
	for (size_t i = 0; i < sizeof(dbls) / sizeof(dbls[0]); i++) {
		double out = 42;
		ok_int_eq(ag__codec_double_encode(dbls[i].v, buf, 8), 8, "double %s encodes",
			  dbls[i].what);
		ok_mem_eq(buf, 8, dbls[i].be.ptr, 8, "  to Kafka's big-endian bytes");
		ok(ag__codec_double_decode(dbls[i].be, &out) == 0 &&
			   memcmp(&out, &dbls[i].v, sizeof(out)) == 0,
		   "  and decodes back bit for bit");
		ok_int_eq(validate(AG_CODEC_DOUBLE, dbls[i].be, err, sizeof(err)), 0,
			  "  and validates");
	}
	double d = 0;
	ok(ag__codec_double_decode(LIT("\x7f\xf8\x00\x00\x00\x00\x00\x01"), &d) == 0 && isnan(d),
	   "a NaN with a payload decodes as NaN");
	ok_int_eq(ag__codec_double_encode(d, buf, 8), 8, "  and encodes");
	ok_mem_eq(buf, 8, "\x7f\xf8\x00\x00\x00\x00\x00\x01", 8, "  keeping its payload");

	ok_int_eq(ag__codec_int64_encode(1, buf, 7), -ENOBUFS, "int64 into 7 bytes: -ENOBUFS");
	ok_int_eq(ag__codec_double_encode(1, buf, 0), -ENOBUFS, "double into 0 bytes: -ENOBUFS");
	static const char sixteen[16] = "0123456789abcdef";
	static const size_t lens[] = {0, 1, 7, 9, 16};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct ag_bytes b = {sixteen, lens[i]};
		int64_t i64 = 42;
		double f64 = 42;
		ok(ag__codec_int64_decode(b, &i64) == AG_EDECODE && i64 == 42,
		   "int64 decode of %zu bytes: AG_EDECODE, out untouched", lens[i]);
		ok(ag__codec_double_decode(b, &f64) == AG_EDECODE && f64 == 42,
		   "double decode of %zu bytes: AG_EDECODE, out untouched", lens[i]);
		ok_int_eq(validate(AG_CODEC_INT64, b, err, sizeof(err)), AG_EDECODE,
			  "int64 rejects %zu bytes", lens[i]);
		char where[32];
		snprintf(where, sizeof(where), "at byte %zu", lens[i] < 8 ? lens[i] : 8);
		ok(strncmp(err, "int64: ", 7) == 0 && strstr(err, where), "  at its offset: %s",
		   err);
		ok_int_eq(validate(AG_CODEC_DOUBLE, b, err, sizeof(err)), AG_EDECODE,
			  "double rejects %zu bytes", lens[i]);
		ok(strncmp(err, "double: ", 8) == 0 && strstr(err, where), "  at its offset: %s",
		   err);
	}
	ok_int_eq(ag__codec_int64_decode((struct ag_bytes){NULL, 8}, &(int64_t){0}), AG_EDECODE,
		  "int64 decode of NULL: AG_EDECODE");
}

/* Encodes v; checks size, msgpack-c's bytes (when given), and that it decodes back. */
static void
roundtrip(const struct ag__val *v, const msgpack_sbuffer *ref, const char *what)
{
	size_t size = ag__val_encoded_size(v);
	unsigned char *buf = malloc(size ? size : 1);
	int n = ag__val_encode(v, buf, size);
	ok_int_eq(n, (long long)size, "%s: encodes to its encoded size", what);
	if (ref)
		ok_mem_eq(buf, size, ref->data, ref->size, "%s: same bytes as msgpack-c", what);
	if (size > 0)
		ok_int_eq(ag__val_encode(v, buf, size - 1), -ENOBUFS,
			  "%s: one byte short: -ENOBUFS", what);

	struct ag__val out;
	memset(&out, 0xa5, sizeof(out));
	int rc = ag__val_decode((struct ag_bytes){buf, size}, &out);
	ok_int_eq(rc, 0, "%s: decodes", what);
	ok_int_eq(out.type, v->type, "%s: same type", what);
	if (v->type == AG__VAL_I64)
		ok_int_eq(out.i64, v->i64, "%s: same int", what);
	else if (v->type == AG__VAL_F64)
		ok(memcmp(&out.f64, &v->f64, sizeof(double)) == 0 ||
			   (isnan(out.f64) && isnan(v->f64)),
		   "%s: same double", what);
	else
		ok(out.bytes.len == v->bytes.len &&
			   (out.bytes.len == 0 ||
			    memcmp(out.bytes.ptr, v->bytes.ptr, out.bytes.len) == 0),
		   "%s: same bytes", what);

	/* msgpack-c reads it as the same thing. */
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	size_t off = 0;
	int urc = msgpack_unpack_next(&u, (const char *)buf, size, &off);
	int same = urc == MSGPACK_UNPACK_SUCCESS && off == size;
	if (same && v->type == AG__VAL_I64)
		same = (u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
			u.data.via.u64 == (uint64_t)v->i64 && v->i64 >= 0) ||
		       (u.data.type == MSGPACK_OBJECT_NEGATIVE_INTEGER && u.data.via.i64 == v->i64);
	else if (same && v->type == AG__VAL_F64)
		same = u.data.type == MSGPACK_OBJECT_FLOAT64;
	else if (same)
		same = u.data.type == MSGPACK_OBJECT_BIN && u.data.via.bin.size == v->bytes.len;
	ok(same, "%s: msgpack-c unpacks it", what);
	msgpack_unpacked_destroy(&u);

	/* Every truncation fails cleanly; buffers of exact size let ASan catch overreads. */
	int bad = 0;
	for (size_t len = 0; len < size; len++) {
		if (len > 64 && len < size - 64)
			continue; /* the length fields and the ends are what matter */
		unsigned char *cut = malloc(len ? len : 1);
		memcpy(cut, buf, len);
		bad += ag__val_decode((struct ag_bytes){cut, len}, &out) != AG_EDECODE;
		free(cut);
	}
	ok_int_eq(bad, 0, "%s: every truncation is AG_EDECODE", what);
	unsigned char *longer = malloc(size + 1);
	memcpy(longer, buf, size);
	longer[size] = 0;
	ok_int_eq(ag__val_decode((struct ag_bytes){longer, size + 1}, &out), AG_EDECODE,
		  "%s: a trailing byte is AG_EDECODE", what);
	free(longer);
	free(buf);
}

static void
test_ints(void)
{
	static const int64_t ints[] = {
		0,      1,         127,        128,           255,           256,       65535,
		65536,  INT32_MAX, 2147483648, UINT32_MAX,    4294967296,    INT64_MAX, -1,
		-31,    -32,       -33,        -127,          -128,          -129,      -32767,
		-32768, -32769,    INT32_MIN,  -2147483649LL, INT64_MIN + 1, INT64_MIN,
	};
	static const size_t sizes[] = {
		1, 1, 1, 2, 2, 3, 3, 5, 5, 5, 5, 9, 9, 1, 1, 1, 2, 2, 2, 3, 3, 3, 5, 5, 9, 9, 9,
	};
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		struct ag__val v = {.type = AG__VAL_I64, .i64 = ints[i]};
		char what[64];
		snprintf(what, sizeof(what), "int %" PRId64, ints[i]);
		ok_int_eq(ag__val_encoded_size(&v), sizes[i], "%s: smallest form", what);
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_int64(&pk, ints[i]);
		roundtrip(&v, &sb, what);
		msgpack_sbuffer_destroy(&sb);
	}
}

static void
test_doubles(void)
{
	static const double dbls[] = {0.0,     -0.0,   1.5, -2.25,    1e300,
				      -1e-300, 5e-324, NAN, INFINITY, -INFINITY};
	for (size_t i = 0; i < sizeof(dbls) / sizeof(dbls[0]); i++) {
		struct ag__val v = {.type = AG__VAL_F64, .f64 = dbls[i]};
		char what[64];
		snprintf(what, sizeof(what), "double %g", dbls[i]);
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_double(&pk, dbls[i]);
		roundtrip(&v, &sb, what);
		msgpack_sbuffer_destroy(&sb);
	}
}

static void
test_bytes(void)
{
	static const size_t lens[] = {0, 1, 255, 256, 65535, 65536, 1000000};
	static const size_t hdr[] = {2, 2, 2, 3, 3, 5, 5};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		unsigned char *data = malloc(lens[i] ? lens[i] : 1);
		for (size_t j = 0; j < lens[i]; j++)
			data[j] = (unsigned char)(j * 7 + i);
		struct ag__val v = {.type = AG__VAL_BYTES, .bytes = {data, lens[i]}};
		char what[64];
		snprintf(what, sizeof(what), "bytes of %zu", lens[i]);
		ok_int_eq(ag__val_encoded_size(&v), hdr[i] + lens[i], "%s: bin8/16/32 header",
			  what);
		msgpack_sbuffer sb;
		msgpack_packer pk;
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_bin(&pk, lens[i]);
		msgpack_pack_bin_body(&pk, data, lens[i]);
		roundtrip(&v, &sb, what);
		msgpack_sbuffer_destroy(&sb);
		free(data);
	}
	struct ag__val none = {.type = AG__VAL_NONE};
	unsigned char buf[16];
	ok_int_eq(ag__val_encoded_size(&none), 0, "NONE has no encoding");
	ok_int_eq(ag__val_encode(&none, buf, sizeof(buf)), -EINVAL, "encoding NONE: -EINVAL");
}

/* Decodes what msgpack-c packs in forms our encoder never writes. */
static void
test_foreign_forms(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct ag__val out;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

	msgpack_pack_float(&pk, 1.5f);
	ok_int_eq(ag__val_decode((struct ag_bytes){sb.data, sb.size}, &out), 0, "float32 decodes");
	ok(out.type == AG__VAL_F64 && out.f64 == 1.5, "float32 1.5 -> F64 1.5");
	msgpack_sbuffer_clear(&sb);

	static const size_t lens[] = {0, 31, 32, 255, 256, 70000};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		char *s = malloc(lens[i] + 1);
		memset(s, 's', lens[i]);
		msgpack_pack_str(&pk, lens[i]);
		msgpack_pack_str_body(&pk, s, lens[i]);
		ok_int_eq(ag__val_decode((struct ag_bytes){sb.data, sb.size}, &out), 0,
			  "str of %zu decodes", lens[i]);
		ok(out.type == AG__VAL_BYTES && out.bytes.len == lens[i] &&
			   (lens[i] == 0 || memcmp(out.bytes.ptr, s, lens[i]) == 0),
		   "str of %zu -> BYTES", lens[i]);
		msgpack_sbuffer_clear(&sb);
		free(s);
	}
	msgpack_sbuffer_destroy(&sb);

	/* Wider forms than needed are still valid msgpack. */
	static const struct {
		struct ag_bytes b;
		int64_t want;
		const char *what;
	} wide[] = {
		{LIT_INIT("\xcc\x05"), 5, "uint8 5"},
		{LIT_INIT("\xcf\x00\x00\x00\x00\x00\x00\x00\x01"), 1, "uint64 1"},
		{LIT_INIT("\xd0\x05"), 5, "int8 5"},
		{LIT_INIT("\xd0\x80"), -128, "int8 -128"},
		{LIT_INIT("\xd1\xff\xff"), -1, "int16 -1"},
		{LIT_INIT("\xd2\x80\x00\x00\x00"), INT32_MIN, "int32 min"},
		{LIT_INIT("\xd3\x00\x00\x00\x00\x00\x00\x00\x07"), 7, "int64 7"},
		{LIT_INIT("\xcf\x7f\xff\xff\xff\xff\xff\xff\xff"), INT64_MAX, "uint64 INT64_MAX"},
	};
	for (size_t i = 0; i < sizeof(wide) / sizeof(wide[0]); i++) {
		int rc = ag__val_decode(wide[i].b, &out);
		ok(rc == 0 && out.type == AG__VAL_I64 && out.i64 == wide[i].want, "decodes %s",
		   wide[i].what);
	}
}

static void
test_garbage(void)
{
	static const struct {
		struct ag_bytes b;
		const char *what;
	} bad[] = {
		{LIT_INIT(""), "empty"},
		{LIT_INIT("\xc0"), "nil"},
		{LIT_INIT("\xc2"), "false"},
		{LIT_INIT("\xc3"), "true"},
		{LIT_INIT("\x90"), "fixarray"},
		{LIT_INIT("\x80"), "fixmap"},
		{LIT_INIT("\xdc\x00\x00"), "array16"},
		{LIT_INIT("\xd4\x01\x02"), "fixext1"},
		{LIT_INIT("\xc1"), "never used"},
		{LIT_INIT("\xcf\x80\x00\x00\x00\x00\x00\x00\x00"), "uint64 above INT64_MAX"},
		{LIT_INIT("\xc6\xff\xff\xff\xff\x00"), "bin32 claiming 4 GiB"},
		{LIT_INIT("\xdb\xff\xff\xff\xff"), "str32 claiming 4 GiB"},
		{LIT_INIT("\xc4\x02\x00"), "bin8 one byte short"},
		{LIT_INIT("\xa3"
			  "ab"),
		 "fixstr one byte short"},
		{LIT_INIT("\xa1"
			  "ab"),
		 "fixstr one byte long"},
		{LIT_INIT("\x01\x02"), "two fixints"},
	};
	struct ag__val out;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		void *copy = malloc(bad[i].b.len ? bad[i].b.len : 1);
		memcpy(copy, bad[i].b.ptr, bad[i].b.len);
		memset(&out, 0x5a, sizeof(out));
		struct ag__val before = out;
		ok_int_eq(ag__val_decode((struct ag_bytes){copy, bad[i].b.len}, &out), AG_EDECODE,
			  "decode rejects %s", bad[i].what);
		ok(memcmp(&out, &before, sizeof(out)) == 0, "  and leaves out alone");
		free(copy);
	}
	/* Random bytes: any answer but a crash or an overread (ASan watches). */
	srand(42);
	int odd = 0;
	for (int i = 0; i < 20000; i++) {
		size_t len = (size_t)(rand() % 12);
		unsigned char *g = malloc(len ? len : 1);
		for (size_t j = 0; j < len; j++)
			g[j] = (unsigned char)rand();
		int rc = ag__val_decode((struct ag_bytes){g, len}, &out);
		if (rc != 0 && rc != AG_EDECODE)
			odd++;
		else if (rc == 0 && out.type == AG__VAL_BYTES &&
			 (const unsigned char *)out.bytes.ptr + out.bytes.len > g + len)
			odd++;
		free(g);
	}
	ok_int_eq(odd, 0, "20000 random inputs: only 0 or AG_EDECODE, bytes inside the input");
}

static void
json_is(const struct ag__val *v, const char *want, const char *what)
{
	char buf[128];
	int n = ag__val_to_json(v, buf, sizeof(buf));
	ok_str_eq(buf, want, "to_json %s", what);
	ok_int_eq(n, (long long)strlen(want), "to_json %s: length", what);
	json_error_t jerr;
	json_t *j = json_loads(buf, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	ok(j != NULL, "to_json %s: valid JSON", what);
	json_decref(j);
}

static void
test_to_json(void)
{
	struct ag__val v = {.type = AG__VAL_I64, .i64 = 42};
	json_is(&v, "42", "42");
	v.i64 = INT64_MIN;
	json_is(&v, "-9223372036854775808", "INT64_MIN");
	v = (struct ag__val){.type = AG__VAL_F64, .f64 = 1.5};
	json_is(&v, "1.5", "1.5");
	v.f64 = 0.1;
	json_is(&v, "0.1", "0.1 (shortest form)");
	v.f64 = 2.0;
	json_is(&v, "2.0", "2.0 keeps its point");
	v.f64 = 1e300;
	json_is(&v, "1e+300", "1e300");
	v.f64 = NAN;
	json_is(&v, "null", "NaN");
	v.f64 = -INFINITY;
	json_is(&v, "null", "-inf");
	v = (struct ag__val){.type = AG__VAL_BYTES, .bytes = LIT("a\"b\\c\n\t\x01\x7f")};
	json_is(&v, "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f\"", "escapes");
	v.bytes = LIT("\xc3\xa9\xf0\x9d\x84\x9e");
	json_is(&v, "\"\xc3\xa9\xf0\x9d\x84\x9e\"", "UTF-8 passes through");
	v.bytes = LIT("x\xff\xc3y\0");
	json_is(&v, "\"x\\u00ff\\u00c3y\\u0000\"", "bytes that are not UTF-8 become \\u00XX");
	v.bytes = LIT("");
	json_is(&v, "\"\"", "empty bytes");
	v = (struct ag__val){.type = AG__VAL_NONE};
	json_is(&v, "null", "NONE");

	char small[5];
	v = (struct ag__val){.type = AG__VAL_I64, .i64 = 1234};
	ok_int_eq(ag__val_to_json(&v, small, 5), 4, "exactly fits with its NUL");
	v.i64 = 12345;
	ok_int_eq(ag__val_to_json(&v, small, 5), -ENOBUFS, "one byte too many: -ENOBUFS");
	ok_str_eq(small, "", "and leaves an empty string");
	v = (struct ag__val){.type = AG__VAL_BYTES, .bytes = LIT("\x01\x01\x01")};
	ok_int_eq(ag__val_to_json(&v, small, sizeof(small)), -ENOBUFS, "escapes count");
}

static void
test_json_dump(void)
{
	struct ag_bytes out = {0};
	json_t *j = json_pack("{s:i, s:[s, n]}", "a", 1, "b", "x\"y", "z");
	ok_int_eq(ag_json_dump(j, &out), 0, "dump an object");
	ok_mem_eq(out.ptr, out.len, "{\"a\":1,\"b\":[\"x\\\"y\",null]}", 25, "compact form");
	ok(((const char *)out.ptr)[out.len] == '\0', "NUL-terminated too");
	free((void *)out.ptr);
	json_decref(j);
	j = json_integer(5);
	ok_int_eq(ag_json_dump(j, &out), 0, "dump a scalar");
	ok_mem_eq(out.ptr, out.len, "5", 1, "scalar");
	free((void *)out.ptr);
	json_decref(j);
	out = (struct ag_bytes){0};
	ok_int_eq(ag_json_dump(NULL, &out), -EINVAL, "dump NULL: -EINVAL");
	ok(out.ptr == NULL, "out untouched on failure");
}

int
main(void)
{
	test_names();
	test_string();
	test_json();
	test_msgpack_reference();
	test_msgpack();
	test_fixed8();
	test_ints();
	test_doubles();
	test_bytes();
	test_foreign_forms();
	test_garbage();
	test_to_json();
	test_json_dump();
	return tap_done();
}
