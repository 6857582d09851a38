/*
 * Unit tests of records (libagent/src/record.c): round trips through both codecs, JSON as
 * Python, Faust and kcat write it, every error with its code and message, hostile msgpack,
 * the arena, field paths and keys. msgpack-c is the reference for the bytes we write.
 */
#include <errno.h>
#include <float.h>
#include <malloc.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include <agent/error.h>
#include <agent/record.h>

/* tap.h's macros use GNU's `, ##__VA_ARGS__` (the tests build as gnu11); clang -Wpedantic
 * would flag every call without extra arguments. */
#ifdef __clang__
#endif
#include "tap.h"

/* ---- the record types ---- */

struct withdrawal {
	struct ag_str user;
	struct ag_str country;
	double amount;
	struct ag_str date;
	uint64_t ag_present;
};
AG_RECORD(withdrawal_type, withdrawal, AG_FIELD(withdrawal, user, AG_FIELD_STRING, 0),
	  AG_FIELD(withdrawal, country, AG_FIELD_STRING, 0),
	  AG_FIELD(withdrawal, amount, AG_FIELD_FLOAT, 0),
	  AG_FIELD(withdrawal, date, AG_FIELD_STRING, AG_FIELD_OPTIONAL));

/* The same struct under its Faust name. */
AG_RECORD_NAMED(faust_withdrawal_type, withdrawal, "app.Withdrawal",
		AG_FIELD(withdrawal, user, AG_FIELD_STRING, 0),
		AG_FIELD(withdrawal, country, AG_FIELD_STRING, 0),
		AG_FIELD(withdrawal, amount, AG_FIELD_FLOAT, 0),
		AG_FIELD(withdrawal, date, AG_FIELD_STRING, AG_FIELD_OPTIONAL));

struct address {
	struct ag_str city;
	struct ag_str zip;
	uint64_t ag_present;
};
AG_RECORD(address_type, address, AG_FIELD(address, city, AG_FIELD_STRING, 0),
	  AG_FIELD(address, zip, AG_FIELD_STRING, AG_FIELD_OPTIONAL));

/* Every field type, required and optional. */
struct person {
	struct ag_str name;
	int64_t age;
	double height;
	bool active;
	struct address address;
	struct address work; /* optional */
	struct ag_list tags; /* strings */
	struct ag_list scores; /* int64 */
	struct ag_list ratios; /* double */
	struct ag_list flags; /* bool */
	struct ag_str nick; /* optional */
	int64_t rank; /* optional */
	uint64_t ag_present;
};
AG_RECORD(person_type, person, AG_FIELD(person, name, AG_FIELD_STRING, 0),
	  AG_FIELD(person, age, AG_FIELD_INT, 0), AG_FIELD(person, height, AG_FIELD_FLOAT, 0),
	  AG_FIELD(person, active, AG_FIELD_BOOL, 0),
	  AG_FIELD_REC(person, address, address_type, 0),
	  AG_FIELD_REC(person, work, address_type, AG_FIELD_OPTIONAL),
	  AG_FIELD(person, tags, AG_FIELD_LIST_STRING, 0),
	  AG_FIELD(person, scores, AG_FIELD_LIST_INT, 0),
	  AG_FIELD(person, ratios, AG_FIELD_LIST_FLOAT, 0),
	  AG_FIELD(person, flags, AG_FIELD_LIST_BOOL, 0),
	  AG_FIELD(person, nick, AG_FIELD_STRING, AG_FIELD_OPTIONAL),
	  AG_FIELD(person, rank, AG_FIELD_INT, AG_FIELD_OPTIONAL));

#define S(lit) ((struct ag_str){(lit), sizeof(lit) - 1})
#define LIT(lit) ((struct ag_bytes){(lit), sizeof(lit) - 1})

static struct ag_arena *arena;
static char err[256];

/* Decodes from a heap copy of exactly data.len bytes, so ASan sees any overread. */
static int
decode(const struct ag_record_type *t, enum ag_codec codec, struct ag_bytes data, void *out)
{
	void *copy = malloc(data.len ? data.len : 1);
	if (data.len)
		memcpy(copy, data.ptr, data.len);
	int rc = ag_record_decode(t, codec, (struct ag_bytes){copy, data.len}, out, arena, err,
				  sizeof(err));
	free(copy);
	return rc;
}

static size_t
item_size(enum ag_field_type t)
{
	switch (t) {
	case AG_FIELD_LIST_STRING:
		return sizeof(struct ag_str);
	case AG_FIELD_LIST_INT:
		return sizeof(int64_t);
	case AG_FIELD_LIST_FLOAT:
		return sizeof(double);
	default:
		return sizeof(bool);
	}
}

static bool
str_eq(const struct ag_str *a, const struct ag_str *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

/* Field by field, present bits included; doubles bit for bit (so -0.0 counts). */
static bool
record_eq(const struct ag_record_type *t, const void *a, const void *b)
{
	uint64_t pa, pb;
	memcpy(&pa, (const char *)a + t->present, sizeof(pa));
	memcpy(&pb, (const char *)b + t->present, sizeof(pb));
	if (pa != pb)
		return false;
	for (size_t i = 0; i < t->nfields; i++) {
		const struct ag_field *f = &t->fields[i];
		const char *x = (const char *)a + f->offset, *y = (const char *)b + f->offset;
		if (!(pa & (1ull << i)))
			continue;
		switch (f->type) {
		case AG_FIELD_STRING:
			if (!str_eq((const void *)x, (const void *)y))
				return false;
			break;
		case AG_FIELD_INT:
		case AG_FIELD_FLOAT:
			if (memcmp(x, y, 8))
				return false;
			break;
		case AG_FIELD_BOOL:
			if (*(const bool *)x != *(const bool *)y)
				return false;
			break;
		case AG_FIELD_RECORD:
			if (!record_eq(f->record, x, y))
				return false;
			break;
		default: {
			const struct ag_list *la = (const void *)x, *lb = (const void *)y;
			if (la->len != lb->len)
				return false;
			for (size_t k = 0; k < la->len; k++) {
				size_t sz = item_size(f->type);
				const char *ia = (const char *)la->items + k * sz;
				const char *ib = (const char *)lb->items + k * sz;
				if (f->type == AG_FIELD_LIST_STRING
					    ? !str_eq((const void *)ia, (const void *)ib)
					    : memcmp(ia, ib, sz) != 0)
					return false;
			}
		}
		}
	}
	return true;
}

/* Encodes rec with codec, decodes it back and compares. */
static void
round_trip(const struct ag_record_type *t, const void *rec, void *back, const char *what)
{
	static const enum ag_codec codecs[] = {AG_CODEC_JSON, AG_CODEC_MSGPACK};
	for (size_t c = 0; c < 2; c++) {
		const char *cname = c ? "msgpack" : "json";
		struct ag_buf buf = {0};
		int rc = ag_record_encode(t, codecs[c], rec, 0, &buf);
		ok_int_eq(rc, 0, "%s: %s encodes", what, cname);
		rc = decode(t, codecs[c], (struct ag_bytes){buf.ptr, buf.len}, back);
		ok_int_eq(rc, 0, "%s: %s decodes (%s)", what, cname, err);
		ok(rc == 0 && record_eq(t, rec, back), "%s: %s round trip is exact", what, cname);
		if (c == 0 && rc == 0 && !record_eq(t, rec, back))
			printf("#   json: %.*s\n", (int)buf.len, buf.ptr);
		free(buf.ptr);
		ag_arena_reset(arena);
	}
}

static const uint64_t all_person = 0xfff & ~((1u << 5) | (1u << 10) | (1u << 11));

static void
test_round_trips(void)
{
	struct withdrawal w = {S("alice"), S("FR"), 12.5, S("2024-05-01"), 0xf}, wb;
	round_trip(&withdrawal_type, &w, &wb, "withdrawal with date");
	w.ag_present = 0x7;
	w.date = (struct ag_str){"", 0};
	round_trip(&withdrawal_type, &w, &wb, "withdrawal without date");

	static const char *const strings[] = {
		"",
		"plain",
		"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
		"quote\" backslash\\ slash/ \b\f\n\r\t \x01\x1f \x7f",
	};
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		w = (struct withdrawal){{strings[i], strlen(strings[i])}, S("X"), 1, S(""), 7};
		round_trip(&withdrawal_type, &w, &wb, "string");
	}
	w = (struct withdrawal){{"a\0b", 3}, S("X"), 1, S(""), 7};
	round_trip(&withdrawal_type, &w, &wb, "string with NUL");

	static const double doubles[] = {0.0,       -0.0,    0.1,      1.0 / 3,
					 1e300,     -1e-300, 4.9e-324, 1e16,
					 123456789, -2.5,    DBL_MAX,  9007199254740993.0};
	for (size_t i = 0; i < sizeof(doubles) / sizeof(doubles[0]); i++) {
		w = (struct withdrawal){S("u"), S("c"), doubles[i], S(""), 7};
		char what[64];
		snprintf(what, sizeof(what), "float %.17g", doubles[i]);
		round_trip(&withdrawal_type, &w, &wb, what);
	}

	static const char *const tags[] = {"", "a", "\xc3\xa9"};
	struct ag_str tagv[3];
	for (size_t i = 0; i < 3; i++)
		tagv[i] = (struct ag_str){tags[i], strlen(tags[i])};
	int64_t scores[] = {INT64_MIN, -1, 0, 127, 128, 65536, INT64_MAX};
	double ratios[] = {0.1, -0.0, 1e300};
	bool flags[] = {true, false, true};
	struct person p = {
		.name = S("Ren\xc3\xa9"),
		.age = INT64_MAX,
		.height = 1.85,
		.active = true,
		.address = {S("Paris"), S("75001"), 3},
		.work = {S("Lyon"), S(""), 1},
		.tags = {tagv, 3},
		.scores = {scores, 7},
		.ratios = {ratios, 3},
		.flags = {flags, 3},
		.nick = S("rr"),
		.rank = INT64_MIN,
		.ag_present = 0xfff,
	};
	struct person pb;
	round_trip(&person_type, &p, &pb, "person, every field");
	p.age = INT64_MIN;
	p.active = false;
	p.tags = p.scores = p.ratios = p.flags = (struct ag_list){NULL, 0};
	p.ag_present = all_person;
	round_trip(&person_type, &p, &pb, "person, empty lists, optionals absent");
	int64_t checked = 0;
	for (int64_t v = -70000; v <= 70000; v += 7) {
		p.age = v * (v % 3 ? 1 : 31337);
		struct ag_buf b = {0};
		ag_record_encode(&person_type, AG_CODEC_MSGPACK, &p, 0, &b);
		int rc = decode(&person_type, AG_CODEC_MSGPACK, (struct ag_bytes){b.ptr, b.len},
				&pb);
		free(b.ptr);
		ag_arena_reset(arena);
		if (rc != 0 || pb.age != p.age) {
			ok(0, "int %lld round trips through msgpack", (long long)p.age);
			return;
		}
		checked++;
	}
	ok_int_eq(checked, 2 * 70000 / 7 + 1,
		  "ints across msgpack's form boundaries round trip (every one checked)");
}

static void
expect_json(const struct ag_record_type *t, const void *rec, unsigned flags, const char *want,
	    const char *what)
{
	struct ag_buf b = {0};
	int rc = ag_record_encode(t, AG_CODEC_JSON, rec, flags, &b);
	ok_int_eq(rc, 0, "%s: encodes", what);
	ok_mem_eq(b.ptr, b.len, want, strlen(want), "%s: %s", what, want);
	free(b.ptr);
}

static void
test_encode_json(void)
{
	struct withdrawal w = {S("alice"), S("FR"), 12.5, S(""), 7};
	expect_json(&withdrawal_type, &w, 0,
		    "{\"user\":\"alice\",\"country\":\"FR\",\"amount\":12.5}", "compact");
	w.date = S("2024-05-01");
	w.ag_present = 0xf;
	w.amount = 100;
	expect_json(&faust_withdrawal_type, &w, AG_RECORD_FAUST,
		    "{\"__faust\":{\"ns\":\"app.Withdrawal\"},\"user\":\"alice\",\"country\":"
		    "\"FR\",\"amount\":100.0,\"date\":\"2024-05-01\"}",
		    "Faust flag, integral float keeps .0");
	w = (struct withdrawal){S("a\"\\\n\x01\x7f\xc3\xa9"), S(""), -0.0, S(""), 7};
	expect_json(
		&withdrawal_type, &w, 0,
		"{\"user\":\"a\\\"\\\\\\n\\u0001\x7f\xc3\xa9\",\"country\":\"\",\"amount\":-0.0}",
		"escapes, -0.0");
	w.amount = 1e300;
	expect_json(
		&withdrawal_type, &w, 0,
		"{\"user\":\"a\\\"\\\\\\n\\u0001\x7f\xc3\xa9\",\"country\":\"\",\"amount\":1e+300}",
		"1e300 in its shortest round-trip form");

	/* Nested records are blessed too, as Faust does. */
	struct person p = {.name = S("n"), .address = {S("c"), S(""), 1}, .ag_present = all_person};
	expect_json(
		&person_type, &p, AG_RECORD_FAUST,
		"{\"__faust\":{\"ns\":\"person\"},\"name\":\"n\",\"age\":0,\"height\":0.0,"
		"\"active\":false,\"address\":{\"__faust\":{\"ns\":\"address\"},\"city\":\"c\"},"
		"\"tags\":[],\"scores\":[],\"ratios\":[],\"flags\":[]}",
		"nested, empty lists");

	struct ag_buf b = {0};
	ag_record_encode(&withdrawal_type, AG_CODEC_JSON, &w, 0, &b);
	size_t len = b.len;
	static const double bad[] = {NAN, INFINITY, -INFINITY};
	for (size_t i = 0; i < 3; i++) {
		w.amount = bad[i];
		ok_int_eq(ag_record_encode(&withdrawal_type, AG_CODEC_JSON, &w, 0, &b), -EINVAL,
			  "%g: -EINVAL", bad[i]);
		ok_int_eq(b.len, len, "%g: nothing appended", bad[i]);
	}
	w.amount = 1;
	w.user = S("bad \xff utf-8");
	ok_int_eq(ag_record_encode(&withdrawal_type, AG_CODEC_JSON, &w, 0, &b), -EINVAL,
		  "invalid UTF-8: -EINVAL");
	w.user = S("\xed\xa0\x80"); /* a UTF-8-encoded surrogate */
	ok_int_eq(ag_record_encode(&withdrawal_type, AG_CODEC_JSON, &w, 0, &b), -EINVAL,
		  "encoded surrogate: -EINVAL");
	ok_int_eq(ag_record_encode(&withdrawal_type, AG_CODEC_RAW, &w, 0, &b), -EINVAL,
		  "raw codec: -EINVAL");
	ok_int_eq(b.len, len, "failed encodes append nothing");
	free(b.ptr);
}

/* Our msgpack must be msgpack-c's bytes for the same map. */
static void
test_encode_msgpack(void)
{
	static const int64_t ints[] = {0,          1,          127,       128,
				       255,        256,        65535,     65536,
				       4294967295, 4294967296, INT64_MAX, -1,
				       -32,        -33,        -128,      -129,
				       -32768,     -32769,     INT32_MIN, (int64_t)INT32_MIN - 1,
				       INT64_MIN};
	struct person p = {.name = S("n"), .address = {S("c"), S(""), 1}, .ag_present = all_person};
	size_t bad = 0;
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		p.age = ints[i];
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		msgpack_packer pk;
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 9);
		msgpack_pack_str_with_body(&pk, "name", 4);
		msgpack_pack_str_with_body(&pk, "n", 1);
		msgpack_pack_str_with_body(&pk, "age", 3);
		msgpack_pack_int64(&pk, ints[i]);
		msgpack_pack_str_with_body(&pk, "height", 6);
		msgpack_pack_double(&pk, 0.0);
		msgpack_pack_str_with_body(&pk, "active", 6);
		msgpack_pack_false(&pk);
		msgpack_pack_str_with_body(&pk, "address", 7);
		msgpack_pack_map(&pk, 1);
		msgpack_pack_str_with_body(&pk, "city", 4);
		msgpack_pack_str_with_body(&pk, "c", 1);
		static const char *const lists[] = {"tags", "scores", "ratios", "flags"};
		for (size_t k = 0; k < 4; k++) {
			msgpack_pack_str_with_body(&pk, lists[k], strlen(lists[k]));
			msgpack_pack_array(&pk, 0);
		}
		struct ag_buf b = {0};
		ag_record_encode(&person_type, AG_CODEC_MSGPACK, &p, 0, &b);
		if (b.len != sb.size || memcmp(b.ptr, sb.data, b.len) != 0) {
			bad++;
			printf("# differs from msgpack-c for %lld\n", (long long)ints[i]);
		}
		free(b.ptr);
		msgpack_sbuffer_destroy(&sb);
	}
	ok_int_eq(bad, 0, "msgpack bytes equal msgpack-c's for ints of every form");

	/* Strings of each length form, read back by msgpack-c. */
	static const size_t lens[] = {0, 31, 32, 255, 256, 65535, 65536};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		char *s = malloc(lens[i] + 1);
		memset(s, 'x', lens[i]);
		struct withdrawal w = {{s, lens[i]}, S("c"), 1.5, S(""), 7};
		struct ag_buf b = {0};
		ag_record_encode(&withdrawal_type, AG_CODEC_MSGPACK, &w, 0, &b);
		msgpack_unpacked u;
		msgpack_unpacked_init(&u);
		size_t off = 0;
		int rc = msgpack_unpack_next(&u, b.ptr, b.len, &off);
		bool good = rc == MSGPACK_UNPACK_SUCCESS && off == b.len &&
			    u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size == 3 &&
			    u.data.via.map.ptr[0].val.type == MSGPACK_OBJECT_STR &&
			    u.data.via.map.ptr[0].val.via.str.size == lens[i] &&
			    u.data.via.map.ptr[2].val.type == MSGPACK_OBJECT_FLOAT64 &&
			    u.data.via.map.ptr[2].val.via.f64 == 1.5;
		ok(good, "string of %zu bytes: msgpack-c reads our map", lens[i]);
		msgpack_unpacked_destroy(&u);
		free(b.ptr);
		free(s);
	}
}

/* ---- JSON from other producers ---- */

static void
test_interop(void)
{
	struct withdrawal w;
	int rc = decode(&withdrawal_type, AG_CODEC_JSON,
			LIT("{\"user\": \"Ren\\u00e9e\", \"country\": \"FR\", \"amount\": 12.5, "
			    "\"date\": \"2024-01-01\"}"),
			&w);
	ok_int_eq(rc, 0, "Python json.dumps (ensure_ascii) decodes");
	ok_str_eq(w.user.ptr,
		  "Ren\xc3\xa9"
		  "e",
		  "\\u00e9 becomes UTF-8");
	ok_int_eq(w.user.len, 6, "length in bytes");
	ok_str_eq(w.date.ptr, "2024-01-01", "optional date present");
	ok_int_eq(w.ag_present, 0xf, "all four present");

	rc = decode(&withdrawal_type, AG_CODEC_JSON,
		    LIT("{\"user\": \"\\ud83d\\ude00\", \"country\": \"\\u65e5\", \"amount\": 1}"),
		    &w);
	ok_int_eq(rc, 0, "surrogate pair decodes");
	ok_str_eq(w.user.ptr, "\xf0\x9f\x98\x80", "surrogate pair becomes U+1F600");
	ok_str_eq(w.country.ptr, "\xe6\x97\xa5", "BMP escape");
	ok(w.amount == 1.0, "integer accepted for a float");
	ok_int_eq(w.ag_present, 0x7, "date absent");
	ok_str_eq(w.date.ptr, "", "absent string is empty, not NULL");

	rc = decode(&faust_withdrawal_type, AG_CODEC_JSON,
		    LIT("{\"user\": \"alice\", \"country\": \"US\", \"amount\": 100, \"date\": "
			"null, \"__faust\": {\"ns\": \"app.Withdrawal\"}}"),
		    &w);
	ok_int_eq(rc, 0, "Faust record decodes (%s)", err);
	ok(w.amount == 100.0 && w.ag_present == 0x7, "Faust: amount 100, null date absent");

	rc = decode(&withdrawal_type, AG_CODEC_JSON,
		    LIT("{\"user\":\"bob\",\"country\":\"DE\",\"amount\":7.25}\n"), &w);
	ok_int_eq(rc, 0, "kcat line decodes");
	ok(w.amount == 7.25 && strcmp(w.user.ptr, "bob") == 0, "kcat line values");

	rc = decode(&withdrawal_type, AG_CODEC_JSON,
		    LIT("{\"amount\":-3e2,\"extra\":[1,{\"a\":null,\"b\":[[]]}],\"date\":\"d\","
			"\"country\":\"x\",\"n\":18446744073709551615.0,\"user\":\"y\"}"),
		    &w);
	ok_int_eq(rc, 0, "field order free, unknown fields ignored (%s)", err);
	ok(w.amount == -300 && strcmp(w.user.ptr, "y") == 0 && w.ag_present == 0xf,
	   "values of a reordered record");

	rc = decode(&withdrawal_type, AG_CODEC_JSON,
		    LIT("{\"user\":\"a\\\"b\\\\c\\/d\\n\\t\\u0001\\u0000e\",\"country\":\"\","
			"\"amount\":0}"),
		    &w);
	ok_int_eq(rc, 0, "escapes decode");
	ok_mem_eq(w.user.ptr, w.user.len, "a\"b\\c/d\n\t\x01\0e", 12, "escapes, \\u0000 kept");
	ok(w.user.ptr[w.user.len] == '\0', "NUL-terminated");

	rc = decode(&withdrawal_type, AG_CODEC_JSON,
		    LIT("{\"user\":\"a\",\"user\":\"b\",\"country\":\"\",\"amount\":0}"), &w);
	ok(rc == 0 && strcmp(w.user.ptr, "b") == 0, "duplicate member: the last wins");

	struct person p;
	rc = decode(&person_type, AG_CODEC_JSON,
		    LIT("{\"name\": \"n\", \"age\": 4.0, \"height\": 2, \"active\": true, "
			"\"address\": {\"city\": \"Oslo\", \"zip\": \"0150\"}, "
			"\"work\": {\"city\": \"Bergen\"}, \"tags\": [\"x\", \"\"], "
			"\"scores\": [1, -2.0, 9223372036854775807, -9223372036854775808], "
			"\"ratios\": [1, 0.5], \"flags\": [false], \"rank\": null}"),
		    &p);
	ok_int_eq(rc, 0, "nested and lists decode (%s)", err);
	ok_int_eq(p.age, 4, "4.0 accepted for an int");
	ok_str_eq(p.address.city.ptr, "Oslo", "nested string");
	ok_int_eq(p.address.ag_present, 3, "nested present bits");
	ok_int_eq(p.work.ag_present, 1, "optional nested record present");
	ok_int_eq(p.ag_present, 0x3ff, "nick and rank absent");
	ok(p.tags.len == 2 && strcmp(((const struct ag_str *)p.tags.items)[0].ptr, "x") == 0,
	   "list of strings");
	const int64_t *sc = p.scores.items;
	ok(p.scores.len == 4 && sc[0] == 1 && sc[1] == -2 && sc[2] == INT64_MAX &&
		   sc[3] == INT64_MIN,
	   "list of ints, int64 limits");
	ok(((uintptr_t)p.scores.items % 8) == 0 && ((uintptr_t)p.ratios.items % 8) == 0,
	   "arena lists are aligned");
	ag_arena_reset(arena);
}

/* ---- errors ---- */

struct bad_case {
	const struct ag_record_type *type;
	const char *json;
	int code;
	const char *msg; /* the exact message, or a prefix ending in '*' */
};

static void
check_err(int rc, const struct bad_case *bc, const char *what)
{
	ok_int_eq(rc, bc->code, "%s %s: %s", what, bc->json, ag_err_name(bc->code));
	size_t n = strlen(bc->msg);
	if (bc->msg[n - 1] == '*')
		ok(strncmp(err, bc->msg, n - 1) == 0, "message \"%s\" starts with \"%.*s\"", err,
		   (int)n - 1, bc->msg);
	else
		ok_str_eq(err, bc->msg, "message");
}

static void
test_json_errors(void)
{
	static const struct bad_case cases[] = {
		{&withdrawal_type, "{\"user\":\"a\",\"country\":\"b\",\"amount\":\"x\"}", AG_ETYPE,
		 "field amount: expected a number, got a string"},
		{&withdrawal_type, "{\"user\":\"a\",\"amount\":1}", AG_EMISSING,
		 "field country: missing"},
		{&withdrawal_type, "{\"user\":null,\"country\":\"b\",\"amount\":1}", AG_EMISSING,
		 "field user: missing"},
		{&withdrawal_type, "{\"user\":1,\"country\":\"b\",\"amount\":1}", AG_ETYPE,
		 "field user: expected a string, got an integer"},
		{&withdrawal_type, "{\"user\":\"a\",\"country\":\"b\",\"amount\":1,\"date\":[]}",
		 AG_ETYPE, "field date: expected a string, got an array"},
		{&withdrawal_type, "[1,2]", AG_EDECODE, "not a JSON object (got an array)"},
		{&withdrawal_type, "\"s\"", AG_EDECODE, "not a JSON object (got a string)"},
		{&withdrawal_type, "{\"user\":", AG_EDECODE, "not valid JSON: *"},
		{&withdrawal_type, "{\"user\":\"a\"} x", AG_EDECODE, "not valid JSON: *"},
		{&withdrawal_type, "{\"user\":\"\\ud800\"}", AG_EDECODE, "not valid JSON: *"},
		{&withdrawal_type, "{\"user\":\"\xff\"}", AG_EDECODE, "not valid JSON: *"},
		{&withdrawal_type, "{\"n\":1e999999}", AG_EDECODE, "not valid JSON: *"},
		{&withdrawal_type, "  ", AG_EDECODE, "not valid JSON: *"},
		{&person_type,
		 "{\"name\":\"n\",\"age\":1.5,\"height\":1,\"active\":true,\"address\":{}}",
		 AG_ETYPE, "field age: expected an integer, got 1.5"},
		{&person_type,
		 "{\"name\":\"n\",\"age\":1e30,\"height\":1,\"active\":true,\"address\":{}}",
		 AG_ETYPE, "field age: expected an integer, got 1e+30"},
		{&person_type,
		 "{\"name\":\"n\",\"age\":1,\"height\":1,\"active\":1,\"address\":{}}", AG_ETYPE,
		 "field active: expected a boolean, got an integer"},
		{&person_type,
		 "{\"name\":\"n\",\"age\":1,\"height\":1,\"active\":true,\"address\":{\"zip\":"
		 "\"z\"}}",
		 AG_EMISSING, "field address.city: missing"},
		{&person_type,
		 "{\"name\":\"n\",\"age\":1,\"height\":1,\"active\":true,\"address\":{\"city\":"
		 "\"c\"},\"work\":{\"city\":false}}",
		 AG_ETYPE, "field work.city: expected a string, got a boolean"},
		{&person_type,
		 "{\"name\":\"n\",\"age\":1,\"height\":1,\"active\":true,\"address\":[]}", AG_ETYPE,
		 "field address: expected an object, got an array"},
		{&person_type,
		 "{\"name\":\"n\",\"age\":1,\"height\":1,\"active\":true,\"address\":{\"city\":"
		 "\"c\"},\"tags\":[\"a\",2]}",
		 AG_ETYPE, "field tags[1]: expected a string, got an integer"},
		{&person_type,
		 "{\"name\":\"n\",\"age\":1,\"height\":1,\"active\":true,\"address\":{\"city\":"
		 "\"c\"},\"tags\":[],\"scores\":[1,null]}",
		 AG_ETYPE, "field scores[1]: expected an integer, got null"},
		{&person_type,
		 "{\"name\":\"n\",\"age\":1,\"height\":1,\"active\":true,\"address\":{\"city\":"
		 "\"c\"},\"tags\":{}}",
		 AG_ETYPE, "field tags: expected an array, got an object"},
		{&person_type,
		 "{\"name\":\"n\",\"age\":1,\"height\":1,\"active\":true,\"address\":{\"city\":"
		 "\"c\"},\"tags\":[],\"scores\":[],\"ratios\":[],\"flags\":[true,\"no\"]}",
		 AG_ETYPE, "field flags[1]: expected a boolean, got a string"},
	};
	struct person p;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = decode(cases[i].type, AG_CODEC_JSON,
				(struct ag_bytes){cases[i].json, strlen(cases[i].json)}, &p);
		check_err(rc, &cases[i], "json");
		ag_arena_reset(arena);
	}
	int rc = decode(&withdrawal_type, AG_CODEC_JSON, LIT(""), &p);
	ok_int_eq(rc, AG_EDECODE, "empty JSON: AG_EDECODE");
	ok_str_eq(err, "empty value", "empty: message");
	rc = decode(&withdrawal_type, AG_CODEC_MSGPACK, LIT(""), &p);
	ok_int_eq(rc, AG_EDECODE, "empty msgpack: AG_EDECODE");
	ok_str_eq(err, "empty value", "empty: message");
	rc = decode(&withdrawal_type, AG_CODEC_JSON, LIT("{\"user\":\"a\"}\0"), &p);
	ok_int_eq(rc, AG_EDECODE, "raw NUL: AG_EDECODE");
	rc = decode(&withdrawal_type, AG_CODEC_RAW, LIT("{}"), &p);
	ok_int_eq(rc, -EINVAL, "raw codec: -EINVAL");
	rc = ag_record_decode(&withdrawal_type, AG_CODEC_JSON, LIT("{}"), &p, arena, NULL, 0);
	ok_int_eq(rc, AG_EMISSING, "no error buffer is fine");
}

/* ---- msgpack from elsewhere, and hostile msgpack ---- */

static msgpack_sbuffer sb;
static msgpack_packer pk;

static void
pk_begin(size_t n)
{
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, n);
}

static void
pk_key(const char *k)
{
	msgpack_pack_str_with_body(&pk, k, strlen(k));
}

static void
pk_str(const char *k, const char *v)
{
	pk_key(k);
	msgpack_pack_str_with_body(&pk, v, strlen(v));
}

static struct ag_bytes
pk_bytes(void)
{
	return (struct ag_bytes){sb.data, sb.size};
}

static void
test_msgpack(void)
{
	struct withdrawal w;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

	/* As Python's msgpack.packb writes it, in another order, with extras. */
	pk_begin(6);
	pk_key("amount");
	msgpack_pack_float(&pk, 2.5f);
	pk_key("extra");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_nil(&pk);
	msgpack_pack_bin_with_body(&pk, "\x00\x01", 2);
	msgpack_pack_ext_with_body(&pk, "abc", 3, 5);
	pk_str("country", "SE");
	pk_key("date");
	msgpack_pack_nil(&pk);
	pk_str("user", "\xc3\xa5sa");
	pk_key("big");
	msgpack_pack_uint64(&pk, UINT64_MAX);
	int rc = decode(&withdrawal_type, AG_CODEC_MSGPACK, pk_bytes(), &w);
	ok_int_eq(rc, 0, "msgpack-c map with float32, extras and nil decodes (%s)", err);
	ok(w.amount == 2.5 && strcmp(w.country.ptr, "SE") == 0 && w.ag_present == 0x7,
	   "msgpack values");

	struct bad {
		const char *what;
		const char *bytes;
		size_t len;
		int code;
		const char *msg;
	};
#define B(s) s, sizeof(s) - 1
	static const struct bad bad[] = {
		{"array at the top", B("\x92\x01\x02"), AG_EDECODE,
		 "not a msgpack map (got an array)"},
		{"never-used byte", B("\xc1"), AG_EDECODE, "truncated or invalid msgpack"},
		{"int key", B("\x81\x01\x02"), AG_EDECODE, "map key is an integer, not a string"},
		{"trailing bytes",
		 B("\x83\xa4user\xa1u\xa7"
		   "country\xa1"
		   "c\xa6"
		   "amount\x01\xc0"),
		 AG_EDECODE, "1 bytes after the msgpack map"},
		{"string amount",
		 B("\x83\xa4user\xa1u\xa7"
		   "country\xa1"
		   "c\xa6"
		   "amount\xa1x"),
		 AG_ETYPE, "field amount: expected a number, got a string"},
		{"bin user",
		 B("\x83\xa4user\xc4\x01u\xa7"
		   "country\xa1"
		   "c\xa6"
		   "amount\x01"),
		 AG_ETYPE, "field user: expected a string, got binary data"},
		{"missing country",
		 B("\x82\xa4user\xa1u\xa6"
		   "amount\x01"),
		 AG_EMISSING, "field country: missing"},
		{"nil user",
		 B("\x83\xa4user\xc0\xa7"
		   "country\xa1"
		   "c\xa6"
		   "amount\x01"),
		 AG_EMISSING, "field user: missing"},
		{"invalid UTF-8",
		 B("\x83\xa4user\xa1\xff\xa7"
		   "country\xa1"
		   "c\xa6"
		   "amount\x01"),
		 AG_EDECODE, "field user: string is not valid UTF-8"},
		{"huge map count", B("\xdf\xff\xff\xff\xff\xa4user"), AG_EDECODE,
		 "truncated or invalid msgpack"},
		{"huge string length", B("\x81\xa4user\xdb\xff\xff\xff\xf0u"), AG_EDECODE,
		 "field user: truncated or invalid msgpack"},
		{"huge skipped array", B("\x81\xa1x\xdd\x7f\xff\xff\xff\x00"), AG_EDECODE,
		 "truncated or invalid msgpack"},
		{"key with a NUL", B("\x81\xa5user\x00\xa1u"), AG_EMISSING, "field user: missing"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rc = decode(&withdrawal_type, AG_CODEC_MSGPACK,
			    (struct ag_bytes){bad[i].bytes, bad[i].len}, &w);
		ok_int_eq(rc, bad[i].code, "msgpack %s: %s", bad[i].what, ag_err_name(bad[i].code));
		ok_str_eq(err, bad[i].msg, "msgpack %s: message", bad[i].what);
	}

	struct person p;
	pk_begin(5);
	pk_str("name", "n");
	pk_key("age");
	msgpack_pack_uint64(&pk, (uint64_t)INT64_MAX + 1);
	rc = decode(&person_type, AG_CODEC_MSGPACK, pk_bytes(), &p);
	ok_int_eq(rc, AG_ETYPE, "uint64 above INT64_MAX for an int: AG_ETYPE");
	ok_str_eq(err, "field age: expected an integer, got 9223372036854775808 (out of range)",
		  "message");
	pk_begin(2);
	pk_key("scores");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_array(&pk, 0);
	rc = decode(&person_type, AG_CODEC_MSGPACK, pk_bytes(), &p);
	ok_int_eq(rc, AG_ETYPE, "nested array in list of ints: AG_ETYPE");
	ok_str_eq(err, "field scores[1]: expected an integer, got an array", "message");
	pk_begin(2);
	pk_key("address");
	msgpack_pack_map(&pk, 1);
	pk_str("zip", "z");
	rc = decode(&person_type, AG_CODEC_MSGPACK, pk_bytes(), &p);
	ok_int_eq(rc, AG_EMISSING, "nested required field missing: AG_EMISSING");
	ok_str_eq(err, "field address.city: missing", "message");
	pk_begin(1);
	pk_key("address");
	msgpack_pack_array(&pk, 0);
	rc = decode(&person_type, AG_CODEC_MSGPACK, pk_bytes(), &p);
	ok_int_eq(rc, AG_ETYPE, "array for a record: AG_ETYPE");
	ok_str_eq(err, "field address: expected a map, got an array", "message");

	/* Deep nesting in an unknown member is skipped without recursion. */
	size_t depth = 200000;
	char *deep = malloc(depth + 8);
	memcpy(deep, "\x81\xa1x", 3);
	memset(deep + 3, 0x91, depth);
	deep[3 + depth] = (char)0xc0;
	rc = decode(&withdrawal_type, AG_CODEC_MSGPACK, (struct ag_bytes){deep, depth + 4}, &w);
	ok_int_eq(rc, AG_EMISSING, "200000 nested arrays are skipped (%s)", err);
	rc = decode(&withdrawal_type, AG_CODEC_MSGPACK, (struct ag_bytes){deep, depth + 3}, &w);
	ok_int_eq(rc, AG_EDECODE, "200000 nested arrays, truncated: AG_EDECODE");
	free(deep);

	/* Every prefix of a full record is refused, within bounds (ASan watches). */
	struct ag_str tagv[2] = {S("a"), S("bb")};
	int64_t sc[2] = {1, 1 << 20};
	double ra[1] = {0.5};
	bool fl[1] = {true};
	struct person full = {.name = S("name"),
			      .age = -5000000000,
			      .height = 1.5,
			      .active = true,
			      .address = {S("city"), S("zip"), 3},
			      .work = {S("w"), S(""), 1},
			      .tags = {tagv, 2},
			      .scores = {sc, 2},
			      .ratios = {ra, 1},
			      .flags = {fl, 1},
			      .nick = S("nick"),
			      .rank = 3,
			      .ag_present = 0xfff};
	struct ag_buf b = {0};
	ag_record_encode(&person_type, AG_CODEC_MSGPACK, &full, 0, &b);
	size_t wrong = 0;
	for (size_t n = 0; n < b.len; n++) {
		rc = decode(&person_type, AG_CODEC_MSGPACK, (struct ag_bytes){b.ptr, n}, &p);
		if (rc != AG_EDECODE && rc != AG_EMISSING)
			wrong++;
	}
	ok_int_eq(wrong, 0, "all %zu truncations of a msgpack person are refused", b.len);
	rc = decode(&person_type, AG_CODEC_MSGPACK, (struct ag_bytes){b.ptr, b.len}, &p);
	ok(rc == 0 && record_eq(&person_type, &full, &p), "the whole of it decodes");

	/* Garbage: random bytes, and single-byte mutations of a valid record. */
	uint32_t seed = 12345;
	size_t crashes_would_show = 0;
	for (int i = 0; i < 20000; i++) {
		unsigned char g[48];
		size_t n = 1 + (seed % sizeof(g));
		for (size_t k = 0; k < n; k++) {
			seed = seed * 1103515245 + 12345;
			g[k] = (unsigned char)(seed >> 16);
		}
		if (i & 1)
			g[0] = (unsigned char)(0x80 | (g[0] & 0x0f)); /* a fixmap, to get further */
		rc = decode(&person_type, AG_CODEC_MSGPACK, (struct ag_bytes){g, n}, &p);
		crashes_would_show +=
			rc == 0 || rc == AG_EDECODE || rc == AG_ETYPE || rc == AG_EMISSING;
		ag_arena_reset(arena);
	}
	ok_int_eq(crashes_would_show, 20000, "20000 random inputs: decoded or refused");
	size_t odd = 0;
	for (size_t k = 0; k < b.len; k++) {
		for (int bit = 0; bit < 8; bit++) {
			b.ptr[k] ^= (char)(1 << bit);
			rc = decode(&person_type, AG_CODEC_MSGPACK, (struct ag_bytes){b.ptr, b.len},
				    &p);
			odd += !(rc == 0 || rc == AG_EDECODE || rc == AG_ETYPE ||
				 rc == AG_EMISSING);
			b.ptr[k] ^= (char)(1 << bit);
			ag_arena_reset(arena);
		}
	}
	ok_int_eq(odd, 0, "every bit flip of a msgpack person: decoded or refused");
	free(b.ptr);
	msgpack_sbuffer_destroy(&sb);
}

/* ---- arena ---- */

static size_t
heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
	return mallinfo2().uordblks;
#else
	return 0;
#endif
}

static void
test_arena(void)
{
	struct withdrawal w;
	struct ag_arena *a;
	ok_int_eq(ag_arena_new(&a), 0, "ag_arena_new");
	ag_arena_free(NULL);
	ag_arena_reset(NULL);
	struct ag_bytes json = LIT("{\"user\":\"alice\",\"country\":\"FR\",\"amount\":1}");
	const char *first = NULL;
	size_t moved = 0, failed = 0, before = 0;
	for (int i = 0; i < 10000; i++) {
		ag_arena_reset(a);
		if (ag_record_decode(&withdrawal_type, AG_CODEC_JSON, json, &w, a, err,
				     sizeof(err)) != 0)
			failed++;
		if (!first)
			first = w.user.ptr;
		moved += w.user.ptr != first;
		if (i == 100)
			before = heap_in_use();
	}
	ok_int_eq(failed, 0, "10000 decodes into one arena");
	ok_int_eq(moved, 0, "after each reset the arena hands out the same memory");
	ok(heap_in_use() <= before + 4096, "heap did not grow over 10000 decodes (%zu -> %zu)",
	   before, heap_in_use());

	/* Events bigger than the first block: more blocks, freed again by the reset. */
	size_t big = 100000;
	char *s = malloc(big + 64);
	memcpy(s, "{\"country\":\"c\",\"amount\":1,\"user\":\"", 34);
	memset(s + 34, 'u', big);
	memcpy(s + 34 + big, "\"}", 2);
	for (int i = 0; i < 1000; i++) {
		ag_arena_reset(a);
		if (ag_record_decode(&withdrawal_type, AG_CODEC_JSON,
				     (struct ag_bytes){s, 34 + big + 2}, &w, a, err,
				     sizeof(err)) != 0 ||
		    w.user.len != big)
			failed++;
		if (i == 100)
			before = heap_in_use();
	}
	ok_int_eq(failed, 0, "1000 decodes of 100 kB records");
	ok(heap_in_use() <= before + 4096, "heap bounded with big records (%zu -> %zu)", before,
	   heap_in_use());
	free(s);
	ag_arena_free(a);
}

/* ---- type check ---- */

static void
test_type_check(void)
{
	char e[200];
	ok_int_eq(ag_record_type_check(&withdrawal_type, e, sizeof(e)), 0, "withdrawal is valid");
	ok_int_eq(ag_record_type_check(&person_type, e, sizeof(e)), 0, "person is valid (%s)", e);

	AG_RECORD(dup_type, withdrawal, AG_FIELD(withdrawal, user, AG_FIELD_STRING, 0),
		  AG_FIELD(withdrawal, country, AG_FIELD_STRING, 0),
		  AG_FIELD(withdrawal, user, AG_FIELD_STRING, 0));
	ok_int_eq(ag_record_type_check(&dup_type, e, sizeof(e)), -EINVAL, "duplicate: -EINVAL");
	ok(strstr(e, "duplicate") && strstr(e, "user"), "message names the field: %s", e);

	struct ag_field many[65];
	char names[65][8];
	for (int i = 0; i < 65; i++) {
		snprintf(names[i], sizeof(names[i]), "f%d", i);
		many[i] = (struct ag_field){names[i], AG_FIELD_BOOL, 0, 0, NULL};
	}
	struct ag_record_type big = {"big", 128, 0, many, 65};
	ok_int_eq(ag_record_type_check(&big, e, sizeof(e)), -EINVAL, "65 fields: -EINVAL");
	ok(strstr(e, "65") != NULL, "message says how many: %s", e);
	big.nfields = 64;
	for (int i = 0; i < 64; i++)
		many[i].offset = 8 + (size_t)i;
	ok_int_eq(ag_record_type_check(&big, e, sizeof(e)), 0, "64 fields are fine (%s)", e);

	struct ag_field outside[] = {{"x", AG_FIELD_INT, 40, 0, NULL}};
	struct ag_record_type out_t = {"o", 16, 0, outside, 1};
	ok_int_eq(ag_record_type_check(&out_t, e, sizeof(e)), -EINVAL, "offset outside: -EINVAL");
	ok(strstr(e, "x") != NULL, "message: %s", e);
	struct ag_field norec[] = {{"r", AG_FIELD_RECORD, 8, 0, NULL}};
	struct ag_record_type norec_t = {"n", 64, 0, norec, 1};
	ok_int_eq(ag_record_type_check(&norec_t, e, sizeof(e)), -EINVAL,
		  "record field without a type: -EINVAL");
	struct ag_field badt[] = {{"t", (enum ag_field_type)42, 8, 0, NULL}};
	struct ag_record_type badt_t = {"t", 64, 0, badt, 1};
	ok_int_eq(ag_record_type_check(&badt_t, e, sizeof(e)), -EINVAL, "unknown type: -EINVAL");
	struct ag_record_type present_t = {"p", 8, 4, badt, 1};
	ok_int_eq(ag_record_type_check(&present_t, e, sizeof(e)), -EINVAL,
		  "ag_present outside: -EINVAL");
	/* A type that contains itself (impossible as a C struct) must not loop forever. */
	static struct ag_field selff[1];
	static const struct ag_record_type self_t = {"self", 64, 0, selff, 1};
	selff[0] = (struct ag_field){"me", AG_FIELD_RECORD, 8, 0, &self_t};
	ok_int_eq(ag_record_type_check(&self_t, e, sizeof(e)), -EINVAL, "cycle: -EINVAL");
}

/* ---- fields by path, keys, names ---- */

static void
expect_key(const struct person *p, const char *path, int code, const char *want)
{
	struct ag_buf b = {0};
	ag_record_field_key(&person_type, p, "name", &b); /* keys append */
	size_t pre = b.len;
	int rc = ag_record_field_key(&person_type, p, path, &b);
	ok_int_eq(rc, code, "key %s: %s", path, ag_err_name(code));
	if (want)
		ok_mem_eq(b.ptr + pre, b.len - pre, want, strlen(want), "key %s renders %s", path,
			  want);
	free(b.ptr);
}

static void
test_fields(void)
{
	struct person p = {.name = S("Zoe"),
			   .age = INT64_MIN,
			   .height = 0.1,
			   .active = true,
			   .address = {S("Rome"), S("00100"), 3},
			   .ag_present = all_person};
	const struct ag_field *f;
	const void *v;
	ok_int_eq(ag_record_field(&person_type, &p, "address.city", &f, &v), 0, "address.city");
	ok(v == &p.address.city && f->type == AG_FIELD_STRING && strcmp(f->name, "city") == 0,
	   "address.city points into the nested struct");
	ok_int_eq(ag_record_field(&person_type, &p, "age", &f, &v), 0, "age");
	ok(v == &p.age && f->type == AG_FIELD_INT, "age field");
	ok_int_eq(ag_record_field(&person_type, &p, "address", &f, &v), 0, "a record field");
	ok(v == &p.address, "address");
	ok_int_eq(ag_record_field(&person_type, &p, "nope", &f, &v), -ENOENT, "unknown: -ENOENT");
	ok_int_eq(ag_record_field(&person_type, &p, "address.nope", &f, &v), -ENOENT,
		  "unknown nested: -ENOENT");
	ok_int_eq(ag_record_field(&person_type, &p, "name.x", &f, &v), -ENOENT,
		  "path through a scalar: -ENOENT");
	ok_int_eq(ag_record_field(&person_type, &p, "addr", &f, &v), -ENOENT, "prefix: -ENOENT");
	ok_int_eq(ag_record_field(&person_type, &p, "", &f, &v), -ENOENT, "empty: -ENOENT");
	ok_int_eq(ag_record_field(&person_type, &p, "work.city", &f, &v), -ENOENT,
		  "absent optional record: -ENOENT");
	p.ag_present |= 1u << 5;
	ok_int_eq(ag_record_field(&person_type, &p, "work.city", &f, &v), 0,
		  "present optional record");

	expect_key(&p, "name", 0, "Zoe");
	expect_key(&p, "address.zip", 0, "00100");
	expect_key(&p, "age", 0, "-9223372036854775808");
	expect_key(&p, "height", 0, "0.1");
	expect_key(&p, "active", 0, "true");
	p.active = false;
	p.height = 2;
	expect_key(&p, "active", 0, "false");
	expect_key(&p, "height", 0, "2");
	expect_key(&p, "tags", AG_ETYPE, NULL);
	expect_key(&p, "address", AG_ETYPE, NULL);
	expect_key(&p, "missing", -ENOENT, NULL);

	static const char *const names[] = {
		"?",      "string",       "int",       "float",       "bool",
		"record", "list[string]", "list[int]", "list[float]", "list[bool]",
	};
	for (int t = AG_FIELD_STRING; t <= AG_FIELD_LIST_BOOL; t++)
		ok_str_eq(ag_field_type_name((enum ag_field_type)t), names[t], "type name %d", t);
	ok(ag_field_type_name((enum ag_field_type)0) != NULL &&
		   ag_field_type_name((enum ag_field_type)999) != NULL,
	   "unknown type names are not NULL");
}

int
main(void)
{
	if (ag_arena_new(&arena) != 0)
		return 1;
	test_round_trips();
	test_encode_json();
	test_encode_msgpack();
	test_interop();
	test_json_errors();
	test_msgpack();
	test_arena();
	test_type_check();
	test_fields();
	ag_arena_free(arena);
	return tap_done();
}
