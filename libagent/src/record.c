/*
 * Records: typed C structs decoded from and encoded to JSON or msgpack, driven by the
 * field table of AG_RECORD (see agent/record.h for the contract).
 *
 * Decoding writes strings and lists into an arena so that an event costs no malloc per
 * field: JSON goes through jansson's tree (its own allocations) and is then copied out;
 * msgpack is read in place by a bounds-checked reader below, so a msgpack decode into a
 * warm arena allocates nothing. Both decoders must survive any input (the fuzzer's), so
 * every read checks the remaining length first and nothing recurses on input depth: only
 * the record type's own nesting drives recursion, and unknown values are skipped with a
 * counter instead of a call per level.
 *
 * Error messages name the field path ("field address.city: missing") because they reach
 * the user through the worker's log of an undecodable event.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"
#include "json_scan.h"

/* ---- arena ---- */

#define ARENA_FIRST 4096u
/* Every allocation is aligned for any field item type (pointers, int64, double). */
#define ARENA_ALIGN 8u
_Static_assert(ARENA_ALIGN >= alignof(void *) && ARENA_ALIGN >= alignof(int64_t) &&
		       ARENA_ALIGN >= alignof(double) && ARENA_ALIGN >= alignof(struct ag_str),
	       "arena alignment");

struct arena_block {
	struct arena_block *next;
	size_t cap;
	size_t used;
	alignas(ARENA_ALIGN) unsigned char data[];
};

struct ag_arena {
	struct arena_block *head; /* the block being filled; the first block is last */
	struct arena_block *first;
};

static struct arena_block *
block_new(size_t cap)
{
	if (cap > SIZE_MAX - sizeof(struct arena_block))
		return NULL;
	struct arena_block *b = malloc(sizeof(*b) + cap);
	if (!b)
		return NULL;
	b->next = NULL;
	b->cap = cap;
	b->used = 0;
	return b;
}

AG_EXPORT int
ag_arena_new(struct ag_arena **out)
{
	struct ag_arena *a = malloc(sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->first = block_new(ARENA_FIRST);
	if (!a->first) {
		free(a);
		return -ENOMEM;
	}
	a->head = a->first;
	*out = a;
	return 0;
}

AG_EXPORT void
ag_arena_reset(struct ag_arena *arena)
{
	if (!arena)
		return;
	struct arena_block *b = arena->head;
	while (b != arena->first) {
		struct arena_block *next = b->next;
		free(b);
		b = next;
	}
	arena->first->used = 0;
	arena->head = arena->first;
}

AG_EXPORT void
ag_arena_free(struct ag_arena *arena)
{
	if (!arena)
		return;
	ag_arena_reset(arena);
	free(arena->first);
	free(arena);
}

/* n bytes aligned to ARENA_ALIGN, or NULL when out of memory. */
static void *
arena_alloc(struct ag_arena *a, size_t n)
{
	struct arena_block *b = a->head;
	size_t at = (b->used + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	if (at <= b->cap && n <= b->cap - at) {
		b->used = at + n;
		return b->data + at;
	}
	/* A new block, twice the last one's size (so a big event needs few), at least n. */
	size_t cap = b->cap <= SIZE_MAX / 2 ? b->cap * 2 : b->cap;
	if (cap < n)
		cap = n;
	struct arena_block *nb = block_new(cap);
	if (!nb)
		return NULL;
	nb->next = b;
	nb->used = n;
	a->head = nb;
	return nb->data;
}

void *
ag__arena_alloc(struct ag_arena *arena, size_t n)
{
	return arena_alloc(arena, n ? n : 1);
}

/* A NUL-terminated copy of s[0..len) in the arena. */
static const char *
arena_strdup(struct ag_arena *a, const char *s, size_t len)
{
	if (len == SIZE_MAX)
		return NULL;
	char *p = arena_alloc(a, len + 1);
	if (!p)
		return NULL;
	if (len)
		memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

/* ---- field types ---- */

static const char *const field_type_names[] = {
	[AG_FIELD_STRING] = "string",        [AG_FIELD_INT] = "int",
	[AG_FIELD_FLOAT] = "float",          [AG_FIELD_BOOL] = "bool",
	[AG_FIELD_RECORD] = "record",        [AG_FIELD_LIST_STRING] = "list[string]",
	[AG_FIELD_LIST_INT] = "list[int]",   [AG_FIELD_LIST_FLOAT] = "list[float]",
	[AG_FIELD_LIST_BOOL] = "list[bool]",
};

AG_EXPORT const char *
ag_field_type_name(enum ag_field_type type)
{
	if ((unsigned)type < AG__ARRAY_SIZE(field_type_names) && field_type_names[type])
		return field_type_names[type];
	return "unknown";
}

static bool
is_list(enum ag_field_type t)
{
	return t >= AG_FIELD_LIST_STRING && t <= AG_FIELD_LIST_BOOL;
}

/* The scalar type of a list's items (or the type itself for scalars). */
enum ag_field_type
ag__field_item_type(enum ag_field_type t)
{
	switch (t) {
	case AG_FIELD_LIST_STRING:
		return AG_FIELD_STRING;
	case AG_FIELD_LIST_INT:
		return AG_FIELD_INT;
	case AG_FIELD_LIST_FLOAT:
		return AG_FIELD_FLOAT;
	case AG_FIELD_LIST_BOOL:
		return AG_FIELD_BOOL;
	default:
		return t;
	}
}

size_t
ag__field_item_size(enum ag_field_type t)
{
	switch (t) {
	case AG_FIELD_STRING:
		return sizeof(struct ag_str);
	case AG_FIELD_INT:
		return sizeof(int64_t);
	case AG_FIELD_FLOAT:
		return sizeof(double);
	case AG_FIELD_BOOL:
		return sizeof(bool);
	default:
		return sizeof(struct ag_list);
	}
}

/* What a field expects, for error messages ("expected a number"). */
static const char *
expected_name(enum ag_field_type t)
{
	switch (t) {
	case AG_FIELD_STRING:
		return "a string";
	case AG_FIELD_INT:
		return "an integer";
	case AG_FIELD_FLOAT:
		return "a number";
	case AG_FIELD_BOOL:
		return "a boolean";
	case AG_FIELD_RECORD:
		return "an object";
	default:
		return "an array";
	}
}

/* Nested records deeper than this are refused by the type check (and cycles with them). */
#define MAX_DEPTH 32

static int
type_check(const struct ag_record_type *type, int depth, char *err, size_t errlen)
{
	if (!type || !type->fields) {
		snprintf(err, errlen, "record type without fields");
		return -EINVAL;
	}
	const char *tname = type->name ? type->name : "(unnamed)";
	if (depth > MAX_DEPTH) {
		snprintf(err, errlen, "%s: records nested more than %d deep (a cycle?)", tname,
			 MAX_DEPTH);
		return -EINVAL;
	}
	if (type->nfields == 0 || type->nfields > 64) {
		snprintf(err, errlen, "%s: %zu fields (a record has 1 to 64)", tname,
			 type->nfields);
		return -EINVAL;
	}
	if (type->present > type->size || type->size - type->present < sizeof(uint64_t)) {
		snprintf(err, errlen, "%s: ag_present outside the struct", tname);
		return -EINVAL;
	}
	for (size_t i = 0; i < type->nfields; i++) {
		const struct ag_field *f = &type->fields[i];
		if (!f->name || !f->name[0] || strchr(f->name, '.')) {
			snprintf(err, errlen, "%s: field %zu has no name or a dot in it", tname, i);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(type->fields[j].name, f->name) == 0) {
				snprintf(err, errlen, "%s: duplicate field name %s", tname,
					 f->name);
				return -EINVAL;
			}
		}
		if (f->type < AG_FIELD_STRING || f->type > AG_FIELD_LIST_BOOL) {
			snprintf(err, errlen, "%s: field %s has unknown type %d", tname, f->name,
				 (int)f->type);
			return -EINVAL;
		}
		if (f->flags & ~AG_FIELD_OPTIONAL) {
			snprintf(err, errlen, "%s: field %s has unknown flags 0x%x", tname, f->name,
				 f->flags);
			return -EINVAL;
		}
		size_t size;
		if (f->type == AG_FIELD_RECORD) {
			if (!f->record) {
				snprintf(err, errlen, "%s: record field %s without a type", tname,
					 f->name);
				return -EINVAL;
			}
			int rc = type_check(f->record, depth + 1, err, errlen);
			if (rc < 0)
				return rc;
			size = f->record->size;
		} else {
			size = ag__field_item_size(f->type);
		}
		if (f->offset > type->size || type->size - f->offset < size) {
			snprintf(err, errlen, "%s: field %s lies outside the struct", tname,
				 f->name);
			return -EINVAL;
		}
	}
	return 0;
}

AG_EXPORT int
ag_record_type_check(const struct ag_record_type *type, char *err, size_t errlen)
{
	char dummy[1];
	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	return type_check(type, 0, err, errlen);
}

/* ---- decoding: shared parts ---- */

static uint64_t *
present_bits(const struct ag_record_type *type, void *rec)
{
	return (uint64_t *)((char *)rec + type->present);
}

static const uint64_t *
present_bits_const(const struct ag_record_type *type, const void *rec)
{
	return (const uint64_t *)((const char *)rec + type->present);
}

/* Where a decode is in the value, for error messages: a chain up to the top record. */
struct path {
	const struct path *up;
	const char *name; /* a field, or NULL for a list index */
	size_t index;
};

struct dctx {
	struct ag_arena *arena;
	char *err;
	size_t errlen;
};

static void
path_render(const struct path *p, char *buf, size_t cap)
{
	const struct path *seg[MAX_DEPTH * 2 + 2];
	size_t n = 0, len = 0;
	for (; p && n < AG__ARRAY_SIZE(seg); p = p->up)
		seg[n++] = p;
	buf[0] = '\0';
	while (n-- && len < cap) {
		int w;
		if (seg[n]->name)
			w = snprintf(buf + len, cap - len, "%s%s", len ? "." : "", seg[n]->name);
		else
			w = snprintf(buf + len, cap - len, "[%zu]", seg[n]->index);
		if (w < 0)
			break;
		len += (size_t)w;
	}
}

/* Writes "field <path>: <message>" into err and returns code. */
__attribute__((format(printf, 4, 5))) static int
fail(struct dctx *c, int code, const struct path *at, const char *fmt, ...)
{
	char where[256], what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (at) {
		path_render(at, where, sizeof(where));
		snprintf(c->err, c->errlen, "field %s: %s", where, what);
	} else {
		snprintf(c->err, c->errlen, "%s", what);
	}
	return code;
}

/* Gives an absent field its default: zero, with "" for strings so ptr is never NULL. */
void
ag__record_set_default(const struct ag_field *f, void *base)
{
	char *p = (char *)base + f->offset;
	if (f->type == AG_FIELD_RECORD) {
		memset(p, 0, f->record->size);
		for (size_t i = 0; i < f->record->nfields; i++)
			ag__record_set_default(&f->record->fields[i], p);
	} else if (f->type == AG_FIELD_STRING) {
		*(struct ag_str *)p = (struct ag_str){"", 0};
	} else {
		memset(p, 0, ag__field_item_size(f->type));
	}
}

/* Range check for doubles that int fields accept: integral and within int64. */
bool
ag__double_to_int64(double d, int64_t *out)
{
	if (!(d >= -0x1p63 && d < 0x1p63) || d != trunc(d))
		return false;
	*out = (int64_t)d;
	return true;
}

/* ---- decoding JSON (jansson's tree) ---- */

static const char *
json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

static int json_record(const struct ag_record_type *type, const json_t *obj, void *out,
		       struct dctx *c, const struct path *up);

/* Decodes a scalar JSON value v into p (an item of type t). */
static int
json_scalar(enum ag_field_type t, const json_t *v, void *p, struct dctx *c, const struct path *at)
{
	switch (t) {
	case AG_FIELD_STRING: {
		if (!json_is_string(v))
			break;
		size_t len = json_string_length(v);
		const char *s = arena_strdup(c->arena, json_string_value(v), len);
		if (!s)
			return -ENOMEM;
		*(struct ag_str *)p = (struct ag_str){s, len};
		return 0;
	}
	case AG_FIELD_INT:
		if (json_is_integer(v)) {
			*(int64_t *)p = (int64_t)json_integer_value(v);
			return 0;
		}
		if (json_is_real(v)) {
			double d = json_real_value(v);
			if (ag__double_to_int64(d, p))
				return 0;
			return fail(c, AG_ETYPE, at, "expected an integer, got %.17g", d);
		}
		break;
	case AG_FIELD_FLOAT:
		if (json_is_number(v)) {
			*(double *)p = json_number_value(v);
			return 0;
		}
		break;
	case AG_FIELD_BOOL:
		if (json_is_boolean(v)) {
			*(bool *)p = json_is_true(v);
			return 0;
		}
		break;
	default:
		break;
	}
	return fail(c, AG_ETYPE, at, "expected %s, got %s", expected_name(t), json_kind(v));
}

static int
json_field(const struct ag_field *f, const json_t *v, void *base, struct dctx *c,
	   const struct path *at)
{
	void *p = (char *)base + f->offset;
	if (f->type == AG_FIELD_RECORD) {
		if (!json_is_object(v))
			return fail(c, AG_ETYPE, at, "expected an object, got %s", json_kind(v));
		return json_record(f->record, v, p, c, at);
	}
	if (!is_list(f->type))
		return json_scalar(f->type, v, p, c, at);
	if (!json_is_array(v))
		return fail(c, AG_ETYPE, at, "expected an array, got %s", json_kind(v));
	enum ag_field_type it = ag__field_item_type(f->type);
	size_t n = json_array_size(v), isz = ag__field_item_size(it);
	unsigned char *items = NULL;
	if (n) {
		if (n > SIZE_MAX / isz || !(items = arena_alloc(c->arena, n * isz)))
			return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct path here = {at, NULL, i};
		const json_t *e = json_array_get(v, i);
		if (json_is_null(e))
			return fail(c, AG_ETYPE, &here, "expected %s, got null", expected_name(it));
		int rc = json_scalar(it, e, items + i * isz, c, &here);
		if (rc < 0)
			return rc;
	}
	*(struct ag_list *)p = (struct ag_list){items, n};
	return 0;
}

static int
json_record(const struct ag_record_type *type, const json_t *obj, void *out, struct dctx *c,
	    const struct path *up)
{
	uint64_t present = 0;
	for (size_t i = 0; i < type->nfields; i++) {
		const struct ag_field *f = &type->fields[i];
		struct path here = {up, f->name, 0};
		const json_t *v = json_object_get(obj, f->name);
		if (!v || json_is_null(v)) {
			if (!(f->flags & AG_FIELD_OPTIONAL))
				return fail(c, AG_EMISSING, &here, "missing");
			ag__record_set_default(f, out);
			continue;
		}
		int rc = json_field(f, v, out, c, &here);
		if (rc < 0)
			return rc;
		present |= (uint64_t)1 << i;
	}
	*present_bits(type, out) = present;
	return 0;
}

/*
 * Same flags as the JSON codec's validation (codec.c), so what validates also decodes:
 * any value at the top (so a non-object gets a clear message), "\u0000" allowed.
 */
#define RECORD_JSON_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL)

static int
decode_json_tree(const struct ag_record_type *type, struct ag_bytes data, void *out, struct dctx *c)
{
	/* jansson skips a raw NUL between tokens; no JSON text contains one. */
	const char *nul = memchr(data.ptr, '\0', data.len);
	if (nul)
		return fail(c, AG_EDECODE, NULL, "not valid JSON: NUL byte at byte %zu",
			    (size_t)(nul - (const char *)data.ptr));
	json_error_t jerr;
	json_t *root = json_loadb(data.ptr, data.len, RECORD_JSON_FLAGS, &jerr);
	if (!root)
		return fail(c, AG_EDECODE, NULL, "not valid JSON: %s at line %d column %d",
			    jerr.text, jerr.line, jerr.column);
	int rc;
	if (!json_is_object(root))
		rc = fail(c, AG_EDECODE, NULL, "not a JSON object (got %s)", json_kind(root));
	else
		rc = json_record(type, root, out, c, NULL);
	json_decref(root);
	return rc;
}

/*
 * JSON: the scanner (json_scan.c) decodes the common case without a tree; whatever it
 * defers goes through jansson's tree, which also writes every error message.
 */
static int
decode_json(const struct ag_record_type *type, struct ag_bytes data, void *out, struct dctx *c)
{
	int rc = ag__json_scan_record(type, data, out, c->arena);
	if (rc != AG__JSON_SCAN_DEFER)
		return rc;
	memset(out, 0, type->size);
	return decode_json_tree(type, data, out, c);
}

int
ag__record_decode_json_tree(const struct ag_record_type *type, struct ag_bytes data, void *out,
			    struct ag_arena *arena, char *err, size_t errlen)
{
	struct dctx c = {arena, err, errlen};
	err[0] = '\0';
	memset(out, 0, type->size);
	if (data.len == 0)
		return fail(&c, AG_EDECODE, NULL, "empty value");
	return decode_json_tree(type, data, out, &c);
}

/* ---- decoding msgpack (in place) ---- */

enum mp_kind {
	MP_NIL,
	MP_BOOL,
	MP_INT, /* fits int64 */
	MP_UINT, /* above INT64_MAX */
	MP_FLOAT,
	MP_STR,
	MP_BIN,
	MP_EXT,
	MP_ARRAY,
	MP_MAP,
};

struct mp_val {
	enum mp_kind kind;
	bool b;
	int64_t i;
	uint64_t u;
	double d;
	const char *s; /* STR, BIN, EXT payload */
	size_t n; /* payload length, or ARRAY/MAP item count */
};

struct mp_reader {
	const unsigned char *p;
	const unsigned char *end;
};

static uint64_t
be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * Reads one value's header at r->p; the payload of str/bin/ext is consumed too (and
 * pointed at), the items of arrays and maps are not. Returns 0, or -1 when the input is
 * truncated or holds the never-used byte 0xc1.
 */
static int
mp_read(struct mp_reader *r, struct mp_val *v)
{
	const unsigned char *p = r->p;
	size_t left = (size_t)(r->end - p);
	if (left == 0)
		return -1;
	unsigned char c = *p++;
	left--;
	size_t w = 0; /* width of the length or value that follows */
	if (c <= 0x7f) {
		v->kind = MP_INT, v->i = c;
		goto done;
	}
	if (c >= 0xe0) {
		v->kind = MP_INT, v->i = (int8_t)c;
		goto done;
	}
	if (c >= 0xa0 && c <= 0xbf) {
		v->kind = MP_STR, v->n = c & 0x1f;
		goto payload;
	}
	if (c >= 0x90 && c <= 0x9f) {
		v->kind = MP_ARRAY, v->n = c & 0x0f;
		goto done;
	}
	if (c >= 0x80 && c <= 0x8f) {
		v->kind = MP_MAP, v->n = c & 0x0f;
		goto done;
	}
	switch (c) {
	case 0xc0:
		v->kind = MP_NIL;
		goto done;
	case 0xc2:
	case 0xc3:
		v->kind = MP_BOOL, v->b = c == 0xc3;
		goto done;
	case 0xc4:
	case 0xc5:
	case 0xc6:
		v->kind = MP_BIN, w = (size_t)1 << (c - 0xc4);
		break;
	case 0xd9:
	case 0xda:
	case 0xdb:
		v->kind = MP_STR, w = (size_t)1 << (c - 0xd9);
		break;
	case 0xdc:
	case 0xdd:
		v->kind = MP_ARRAY, w = c == 0xdc ? 2 : 4;
		break;
	case 0xde:
	case 0xdf:
		v->kind = MP_MAP, w = c == 0xde ? 2 : 4;
		break;
	case 0xc7:
	case 0xc8:
	case 0xc9: /* ext 8/16/32: length, type byte, payload */
		w = (size_t)1 << (c - 0xc7);
		if (left < w + 1)
			return -1;
		v->kind = MP_EXT, v->n = (size_t)be(p, w);
		p += w + 1, left -= w + 1;
		goto payload;
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8: /* fixext 1/2/4/8/16 */
		if (left < 1)
			return -1;
		v->kind = MP_EXT, v->n = (size_t)1 << (c - 0xd4);
		p++, left--;
		goto payload;
	case 0xca:
	case 0xcb: {
		w = c == 0xca ? 4 : 8;
		if (left < w)
			return -1;
		uint64_t bits = be(p, w);
		if (w == 4) {
			uint32_t b32 = (uint32_t)bits;
			float f;
			memcpy(&f, &b32, sizeof(f));
			v->d = f;
		} else {
			memcpy(&v->d, &bits, sizeof(v->d));
		}
		v->kind = MP_FLOAT;
		p += w;
		goto done;
	}
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf: {
		w = (size_t)1 << (c - 0xcc);
		if (left < w)
			return -1;
		uint64_t u = be(p, w);
		if (u > INT64_MAX)
			v->kind = MP_UINT, v->u = u;
		else
			v->kind = MP_INT, v->i = (int64_t)u;
		p += w;
		goto done;
	}
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3: {
		w = (size_t)1 << (c - 0xd0);
		if (left < w)
			return -1;
		uint64_t u = be(p, w);
		v->kind = MP_INT;
		v->i = w == 1 ? (int8_t)u : w == 2 ? (int16_t)u : w == 4 ? (int32_t)u : (int64_t)u;
		p += w;
		goto done;
	}
	default: /* 0xc1: never used */
		return -1;
	}
	/* A length of width w follows: bin, str, array, map. */
	if (left < w)
		return -1;
	v->n = (size_t)be(p, w);
	p += w, left -= w;
	if (v->kind == MP_ARRAY || v->kind == MP_MAP)
		goto done;
payload:
	if (left < v->n)
		return -1;
	v->s = (const char *)p;
	p += v->n;
done:
	r->p = p;
	return 0;
}

/* Skips one complete value, however deeply nested, without recursing. */
static int
mp_skip(struct mp_reader *r)
{
	uint64_t pending = 1;
	struct mp_val v;
	while (pending) {
		pending--;
		if (mp_read(r, &v) < 0)
			return -1;
		if (v.kind == MP_ARRAY)
			pending += v.n;
		else if (v.kind == MP_MAP)
			pending += 2 * (uint64_t)v.n;
		/* Each item takes a byte at least: refuse counts the input cannot hold. */
		if (pending > (uint64_t)(r->end - r->p))
			return -1;
	}
	return 0;
}

static const char *
mp_kind_name(enum mp_kind k)
{
	switch (k) {
	case MP_NIL:
		return "nil";
	case MP_BOOL:
		return "a boolean";
	case MP_INT:
	case MP_UINT:
		return "an integer";
	case MP_FLOAT:
		return "a number";
	case MP_STR:
		return "a string";
	case MP_BIN:
		return "binary data";
	case MP_EXT:
		return "an extension";
	case MP_ARRAY:
		return "an array";
	default:
		return "a map";
	}
}

/* Whether s[0..n) is well-formed UTF-8 (no overlongs, surrogates, or > U+10FFFF). */
static bool
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		unsigned char lo = 0x80, hi = 0xbf;
		if (c < 0xc2)
			return false;
		if (c < 0xe0) {
			len = 2;
		} else if (c < 0xf0) {
			len = 3;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c < 0xf5) {
			len = 4;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else {
			return false;
		}
		if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		}
		i += len;
	}
	return true;
}

#define MP_TRUNCATED(c, at) fail((c), AG_EDECODE, (at), "truncated or invalid msgpack")

static int mp_record(const struct ag_record_type *type, struct mp_reader *r, void *out,
		     struct dctx *c, const struct path *up);

/* Decodes the scalar whose header is v into p (an item of type t). */
static int
mp_scalar(enum ag_field_type t, const struct mp_val *v, void *p, struct dctx *c,
	  const struct path *at)
{
	switch (t) {
	case AG_FIELD_STRING: {
		if (v->kind != MP_STR)
			break;
		if (!utf8_valid((const unsigned char *)v->s, v->n))
			return fail(c, AG_EDECODE, at, "string is not valid UTF-8");
		const char *s = arena_strdup(c->arena, v->s, v->n);
		if (!s)
			return -ENOMEM;
		*(struct ag_str *)p = (struct ag_str){s, v->n};
		return 0;
	}
	case AG_FIELD_INT:
		if (v->kind == MP_INT) {
			*(int64_t *)p = v->i;
			return 0;
		}
		if (v->kind == MP_UINT)
			return fail(c, AG_ETYPE, at,
				    "expected an integer, got %" PRIu64 " (out of range)", v->u);
		if (v->kind == MP_FLOAT) {
			if (ag__double_to_int64(v->d, p))
				return 0;
			return fail(c, AG_ETYPE, at, "expected an integer, got %.17g", v->d);
		}
		break;
	case AG_FIELD_FLOAT:
		if (v->kind == MP_FLOAT || v->kind == MP_INT || v->kind == MP_UINT) {
			*(double *)p = v->kind == MP_FLOAT ? v->d
				       : v->kind == MP_INT ? (double)v->i
							   : (double)v->u;
			return 0;
		}
		break;
	case AG_FIELD_BOOL:
		if (v->kind == MP_BOOL) {
			*(bool *)p = v->b;
			return 0;
		}
		break;
	default:
		break;
	}
	return fail(c, AG_ETYPE, at, "expected %s, got %s", expected_name(t),
		    mp_kind_name(v->kind));
}

/* Decodes the value whose header is v (already read from r) into field f of base. */
static int
mp_field(const struct ag_field *f, const struct mp_val *v, struct mp_reader *r, void *base,
	 struct dctx *c, const struct path *at)
{
	void *p = (char *)base + f->offset;
	if (f->type == AG_FIELD_RECORD) {
		if (v->kind != MP_MAP)
			return fail(c, AG_ETYPE, at, "expected a map, got %s",
				    mp_kind_name(v->kind));
		/* The caller stepped r back over the header: mp_record reads it itself. */
		return mp_record(f->record, r, p, c, at);
	}
	if (!is_list(f->type))
		return mp_scalar(f->type, v, p, c, at);
	if (v->kind != MP_ARRAY)
		return fail(c, AG_ETYPE, at, "expected an array, got %s", mp_kind_name(v->kind));
	enum ag_field_type it = ag__field_item_type(f->type);
	size_t n = v->n, isz = ag__field_item_size(it);
	unsigned char *items = NULL;
	/* Each item takes a byte at least: do not allocate for counts the input cannot hold. */
	if (n > (size_t)(r->end - r->p))
		return MP_TRUNCATED(c, at);
	if (n && !(items = arena_alloc(c->arena, n * isz)))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct path here = {at, NULL, i};
		struct mp_val e;
		if (mp_read(r, &e) < 0)
			return MP_TRUNCATED(c, &here);
		if (e.kind == MP_ARRAY || e.kind == MP_MAP)
			return fail(c, AG_ETYPE, &here, "expected %s, got %s", expected_name(it),
				    mp_kind_name(e.kind));
		int rc = mp_scalar(it, &e, items + i * isz, c, &here);
		if (rc < 0)
			return rc;
	}
	*(struct ag_list *)p = (struct ag_list){items, n};
	return 0;
}

/* Reads a map header and its entries from r into the record at out. */
static int
mp_record(const struct ag_record_type *type, struct mp_reader *r, void *out, struct dctx *c,
	  const struct path *up)
{
	struct mp_val v;
	if (mp_read(r, &v) < 0)
		return MP_TRUNCATED(c, up);
	if (v.kind != MP_MAP) {
		if (up)
			return fail(c, AG_ETYPE, up, "expected a map, got %s",
				    mp_kind_name(v.kind));
		return fail(c, AG_EDECODE, NULL, "not a msgpack map (got %s)",
			    mp_kind_name(v.kind));
	}
	/* Each entry takes two bytes at least: refuse counts the input cannot hold. */
	if (v.n > (size_t)(r->end - r->p) / 2)
		return MP_TRUNCATED(c, up);
	uint64_t present = 0;
	size_t hint = 0; /* producers keep one order: look where the last key was, first */
	for (size_t e = 0; e < v.n; e++) {
		struct mp_val key, val;
		if (mp_read(r, &key) < 0)
			return MP_TRUNCATED(c, up);
		if (key.kind != MP_STR)
			return fail(c, AG_EDECODE, up, "map key is %s, not a string",
				    mp_kind_name(key.kind));
		size_t i, nf = type->nfields;
		for (i = 0; i < nf; i++) {
			size_t k = hint + i < nf ? hint + i : hint + i - nf;
			const char *name = type->fields[k].name;
			/* Keys may hold NULs: compare lengths first, never read past name. */
			if (strnlen(name, key.n + 1) == key.n && memcmp(name, key.s, key.n) == 0) {
				i = k;
				break;
			}
		}
		if (i == nf) { /* unknown member */
			if (mp_skip(r) < 0)
				return MP_TRUNCATED(c, up);
			continue;
		}
		hint = i + 1 < nf ? i + 1 : 0;
		const struct ag_field *f = &type->fields[i];
		struct path here = {up, f->name, 0};
		const unsigned char *at = r->p;
		if (mp_read(r, &val) < 0)
			return MP_TRUNCATED(c, &here);
		if (val.kind == MP_NIL) { /* as missing; a later duplicate key may still set it */
			ag__record_set_default(f, out);
			present &= ~((uint64_t)1 << i);
			continue;
		}
		if (f->type == AG_FIELD_RECORD && val.kind == MP_MAP)
			r->p = at; /* mp_record reads the header again */
		int rc = mp_field(f, &val, r, out, c, &here);
		if (rc < 0)
			return rc;
		present |= (uint64_t)1 << i;
	}
	for (size_t i = 0; i < type->nfields; i++) {
		if (present & ((uint64_t)1 << i))
			continue;
		const struct ag_field *f = &type->fields[i];
		struct path here = {up, f->name, 0};
		if (!(f->flags & AG_FIELD_OPTIONAL))
			return fail(c, AG_EMISSING, &here, "missing");
		ag__record_set_default(f, out);
	}
	*present_bits(type, out) = present;
	return 0;
}

static int
decode_msgpack(const struct ag_record_type *type, struct ag_bytes data, void *out, struct dctx *c)
{
	struct mp_reader r = {data.ptr, (const unsigned char *)data.ptr + data.len};
	int rc = mp_record(type, &r, out, c, NULL);
	if (rc < 0)
		return rc;
	if (r.p != r.end)
		return fail(c, AG_EDECODE, NULL, "%zu bytes after the msgpack map",
			    (size_t)(r.end - r.p));
	return 0;
}

AG_EXPORT int
ag_record_decode(const struct ag_record_type *type, enum ag_codec codec, struct ag_bytes data,
		 void *out, struct ag_arena *arena, char *err, size_t errlen)
{
	char dummy[1];
	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	struct dctx c = {arena, err, errlen};
	if (!type || !out || !arena || type->nfields > 64)
		return -EINVAL;
	if (codec != AG_CODEC_JSON && codec != AG_CODEC_MSGPACK) {
		snprintf(err, errlen, "records decode from json or msgpack, not codec %d",
			 (int)codec);
		return -EINVAL;
	}
	memset(out, 0, type->size);
	if (data.len == 0)
		return fail(&c, AG_EDECODE, NULL, "empty value");
	if (!data.ptr)
		return fail(&c, AG_EDECODE, NULL, "NULL data of %zu bytes", data.len);
	int rc = codec == AG_CODEC_JSON ? decode_json(type, data, out, &c)
					: decode_msgpack(type, data, out, &c);
	if (rc == -ENOMEM && !err[0])
		snprintf(err, errlen, "out of memory");
	return rc;
}

/* ---- encoding ---- */

static int
buf_reserve(struct ag_buf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return 0;
	if (n > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n)
		cap *= 2;
	char *p = realloc(b->ptr, cap);
	if (!p)
		return -ENOMEM;
	b->ptr = p;
	b->cap = cap;
	return 0;
}

static int
buf_put(struct ag_buf *b, const void *s, size_t n)
{
	if (n == 0)
		return 0;
	if (buf_reserve(b, n) < 0)
		return -ENOMEM;
	memcpy(b->ptr + b->len, s, n);
	b->len += n;
	return 0;
}

static int
buf_putc(struct ag_buf *b, char ch)
{
	if (b->len == b->cap && buf_reserve(b, 1) < 0)
		return -ENOMEM;
	b->ptr[b->len++] = ch;
	return 0;
}

/* Writes i in decimal into buf (at least 21 bytes); returns the length. */
static size_t
fmt_int64(int64_t i, char *buf)
{
	char tmp[21];
	size_t n = 0, len = 0;
	uint64_t u = i < 0 ? 0 - (uint64_t)i : (uint64_t)i;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (i < 0)
		buf[len++] = '-';
	while (n)
		buf[len++] = tmp[--n];
	return len;
}

static int
json_put_string(struct ag_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	if (n && !s)
		return -EINVAL;
	/* The common case, nothing to escape or check: out in one copy. */
	size_t plain = 0;
	while (n - plain >= 8) {
		unsigned k = ag__json_plain_prefix8(p + plain);
		plain += k;
		if (k < 8)
			break;
	}
	while (plain < n && p[plain] >= 0x20 && p[plain] < 0x80 && p[plain] != '"' &&
	       p[plain] != '\\')
		plain++;
	if (plain == n) {
		if (buf_reserve(b, n + 2) < 0)
			return -ENOMEM;
		b->ptr[b->len++] = '"';
		if (n)
			memcpy(b->ptr + b->len, p, n);
		b->len += n;
		b->ptr[b->len++] = '"';
		return 0;
	}
	if (!utf8_valid(p, n))
		return -EINVAL;
	if (buf_putc(b, '"') < 0)
		return -ENOMEM;
	size_t run = 0; /* start of the bytes that go out as they are */
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = p[i];
		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		if (buf_put(b, p + run, i - run) < 0)
			return -ENOMEM;
		char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
		size_t elen = 2;
		switch (ch) {
		case '"':
		case '\\':
			esc[1] = (char)ch;
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			elen = 6;
			break;
		}
		if (buf_put(b, esc, elen) < 0)
			return -ENOMEM;
		run = i + 1;
	}
	if (buf_put(b, p + run, n - run) < 0 || buf_putc(b, '"') < 0)
		return -ENOMEM;
	return 0;
}

/* The shortest %g form (15, 16 or 17 digits) that reads back as exactly d. */
static int
fmt_double(double d, char *tmp, size_t cap)
{
	int n = 0;
	for (int digits = 15; digits <= 17; digits++) {
		n = snprintf(tmp, cap, "%.*g", digits, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	return n;
}

static int
json_put_double(struct ag_buf *b, double d)
{
	char tmp[40];
	if (!isfinite(d))
		return -EINVAL; /* JSON has no NaN or infinities */
	int n = fmt_double(d, tmp, sizeof(tmp));
	if (n < 0 || (size_t)n >= sizeof(tmp) - 2)
		return -EINVAL;
	/* Keep it a float for readers that tell 1.0 from 1 (Python). */
	if (!strpbrk(tmp, ".eE"))
		memcpy(tmp + n, ".0", 2), n += 2;
	return buf_put(b, tmp, (size_t)n);
}

static int
json_put_scalar(struct ag_buf *b, enum ag_field_type t, const void *p)
{
	char tmp[40];
	switch (t) {
	case AG_FIELD_STRING: {
		const struct ag_str *s = p;
		return json_put_string(b, s->ptr, s->len);
	}
	case AG_FIELD_INT:
		return buf_put(b, tmp, fmt_int64(*(const int64_t *)p, tmp));
	case AG_FIELD_FLOAT:
		return json_put_double(b, *(const double *)p);
	default:
		return *(const bool *)p ? buf_put(b, "true", 4) : buf_put(b, "false", 5);
	}
}

static int
json_put_record(struct ag_buf *b, const struct ag_record_type *type, const void *rec,
		unsigned flags)
{
	uint64_t present = *present_bits_const(type, rec);
	bool first = true;
	int rc;
	if (buf_putc(b, '{') < 0)
		return -ENOMEM;
	if (flags & AG_RECORD_FAUST) {
		/* Faust blesses nested records too, so its reader knows their model. */
		const char *name = type->name ? type->name : "";
		if (buf_put(b, "\"__faust\":{\"ns\":", 16) < 0)
			return -ENOMEM;
		if ((rc = json_put_string(b, name, strlen(name))) < 0)
			return rc;
		if (buf_putc(b, '}') < 0)
			return -ENOMEM;
		first = false;
	}
	for (size_t i = 0; i < type->nfields; i++) {
		const struct ag_field *f = &type->fields[i];
		const char *p = (const char *)rec + f->offset;
		if ((f->flags & AG_FIELD_OPTIONAL) && !(present & ((uint64_t)1 << i)))
			continue;
		if (!first && buf_putc(b, ',') < 0)
			return -ENOMEM;
		first = false;
		if ((rc = json_put_string(b, f->name, strlen(f->name))) < 0)
			return rc;
		if (buf_putc(b, ':') < 0)
			return -ENOMEM;
		if (f->type == AG_FIELD_RECORD) {
			rc = json_put_record(b, f->record, p, flags);
		} else if (is_list(f->type)) {
			const struct ag_list *l = (const struct ag_list *)p;
			enum ag_field_type it = ag__field_item_type(f->type);
			size_t isz = ag__field_item_size(it);
			if (l->len && !l->items)
				return -EINVAL;
			rc = buf_putc(b, '[');
			for (size_t k = 0; rc == 0 && k < l->len; k++) {
				if (k && buf_putc(b, ',') < 0)
					return -ENOMEM;
				rc = json_put_scalar(b, it, (const char *)l->items + k * isz);
			}
			if (rc == 0)
				rc = buf_putc(b, ']');
		} else {
			rc = json_put_scalar(b, f->type, p);
		}
		if (rc < 0)
			return rc;
	}
	return buf_putc(b, '}');
}

/* msgpack: a format byte followed by v in w big-endian bytes. */
static int
mp_put(struct ag_buf *b, unsigned char fmt, uint64_t v, size_t w)
{
	if (buf_reserve(b, 1 + w) < 0)
		return -ENOMEM;
	unsigned char *p = (unsigned char *)b->ptr + b->len;
	p[0] = fmt;
	for (size_t i = 0; i < w; i++)
		p[1 + i] = (unsigned char)(v >> (8 * (w - 1 - i)));
	b->len += 1 + w;
	return 0;
}

static int
mp_put_int(struct ag_buf *b, int64_t i)
{
	if (i >= 0) {
		uint64_t u = (uint64_t)i;
		if (u <= 0x7f)
			return mp_put(b, (unsigned char)u, 0, 0);
		if (u <= UINT8_MAX)
			return mp_put(b, 0xcc, u, 1);
		if (u <= UINT16_MAX)
			return mp_put(b, 0xcd, u, 2);
		if (u <= UINT32_MAX)
			return mp_put(b, 0xce, u, 4);
		return mp_put(b, 0xcf, u, 8);
	}
	if (i >= -32)
		return mp_put(b, (unsigned char)(int8_t)i, 0, 0);
	if (i >= INT8_MIN)
		return mp_put(b, 0xd0, (uint8_t)i, 1);
	if (i >= INT16_MIN)
		return mp_put(b, 0xd1, (uint16_t)i, 2);
	if (i >= INT32_MIN)
		return mp_put(b, 0xd2, (uint32_t)i, 4);
	return mp_put(b, 0xd3, (uint64_t)i, 8);
}

static int
mp_put_str(struct ag_buf *b, const char *s, size_t n)
{
	int rc;
	if (n && !s)
		return -EINVAL;
	if (n <= 31)
		rc = mp_put(b, (unsigned char)(0xa0 | n), 0, 0);
	else if (n <= UINT8_MAX)
		rc = mp_put(b, 0xd9, n, 1);
	else if (n <= UINT16_MAX)
		rc = mp_put(b, 0xda, n, 2);
	else if (n <= UINT32_MAX)
		rc = mp_put(b, 0xdb, n, 4);
	else
		return -EINVAL;
	return rc < 0 ? rc : buf_put(b, s, n);
}

static int
mp_put_len(struct ag_buf *b, unsigned char fix, unsigned char f16, size_t n)
{
	if (n <= 15)
		return mp_put(b, (unsigned char)(fix | n), 0, 0);
	if (n <= UINT16_MAX)
		return mp_put(b, f16, n, 2);
	if (n <= UINT32_MAX)
		return mp_put(b, (unsigned char)(f16 + 1), n, 4);
	return -EINVAL;
}

static int
mp_put_scalar(struct ag_buf *b, enum ag_field_type t, const void *p)
{
	uint64_t bits;
	switch (t) {
	case AG_FIELD_STRING: {
		const struct ag_str *s = p;
		return mp_put_str(b, s->ptr, s->len);
	}
	case AG_FIELD_INT:
		return mp_put_int(b, *(const int64_t *)p);
	case AG_FIELD_FLOAT:
		memcpy(&bits, p, sizeof(bits));
		return mp_put(b, 0xcb, bits, 8);
	default:
		return mp_put(b, *(const bool *)p ? 0xc3 : 0xc2, 0, 0);
	}
}

static int
mp_put_record(struct ag_buf *b, const struct ag_record_type *type, const void *rec)
{
	uint64_t present = *present_bits_const(type, rec);
	size_t n = 0;
	int rc;
	for (size_t i = 0; i < type->nfields; i++) {
		if (!(type->fields[i].flags & AG_FIELD_OPTIONAL) || (present & ((uint64_t)1 << i)))
			n++;
	}
	if ((rc = mp_put_len(b, 0x80, 0xde, n)) < 0)
		return rc;
	for (size_t i = 0; i < type->nfields; i++) {
		const struct ag_field *f = &type->fields[i];
		const char *p = (const char *)rec + f->offset;
		if ((f->flags & AG_FIELD_OPTIONAL) && !(present & ((uint64_t)1 << i)))
			continue;
		if ((rc = mp_put_str(b, f->name, strlen(f->name))) < 0)
			return rc;
		if (f->type == AG_FIELD_RECORD) {
			rc = mp_put_record(b, f->record, p);
		} else if (is_list(f->type)) {
			const struct ag_list *l = (const struct ag_list *)p;
			enum ag_field_type it = ag__field_item_type(f->type);
			size_t isz = ag__field_item_size(it);
			if (l->len && !l->items)
				return -EINVAL;
			rc = mp_put_len(b, 0x90, 0xdc, l->len);
			for (size_t k = 0; rc == 0 && k < l->len; k++)
				rc = mp_put_scalar(b, it, (const char *)l->items + k * isz);
		} else {
			rc = mp_put_scalar(b, f->type, p);
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

AG_EXPORT int
ag_record_encode(const struct ag_record_type *type, enum ag_codec codec, const void *rec,
		 unsigned flags, struct ag_buf *out)
{
	if (!type || !rec || !out)
		return -EINVAL;
	size_t len = out->len;
	int rc;
	if (codec == AG_CODEC_JSON)
		rc = json_put_record(out, type, rec, flags);
	else if (codec == AG_CODEC_MSGPACK)
		rc = mp_put_record(out, type, rec);
	else
		rc = -EINVAL;
	if (rc < 0)
		out->len = len; /* nothing half-written */
	return rc;
}

/* ---- fields by path ---- */

AG_EXPORT int
ag_record_field(const struct ag_record_type *type, const void *rec, const char *path,
		const struct ag_field **field, const void **value)
{
	if (!type || !rec || !path)
		return -ENOENT;
	for (;;) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);
		const struct ag_field *f = NULL;
		size_t i;
		for (i = 0; i < type->nfields; i++) {
			const char *name = type->fields[i].name;
			if (strncmp(name, path, n) == 0 && name[n] == '\0') {
				f = &type->fields[i];
				break;
			}
		}
		if (!f)
			return -ENOENT;
		const void *p = (const char *)rec + f->offset;
		if (!dot) {
			*field = f;
			*value = p;
			return 0;
		}
		if (f->type != AG_FIELD_RECORD)
			return -ENOENT;
		if ((f->flags & AG_FIELD_OPTIONAL) &&
		    !(*present_bits_const(type, rec) & ((uint64_t)1 << i)))
			return -ENOENT;
		type = f->record;
		rec = p;
		path = dot + 1;
	}
}

AG_EXPORT int
ag_record_field_key(const struct ag_record_type *type, const void *rec, const char *path,
		    struct ag_buf *out)
{
	const struct ag_field *f;
	const void *p;
	char tmp[40];
	int rc = ag_record_field(type, rec, path, &f, &p);
	if (rc < 0)
		return rc;
	switch (f->type) {
	case AG_FIELD_STRING: {
		const struct ag_str *s = p;
		if (s->len && !s->ptr)
			return -EINVAL;
		return buf_put(out, s->ptr, s->len);
	}
	case AG_FIELD_INT:
		return buf_put(out, tmp, fmt_int64(*(const int64_t *)p, tmp));
	case AG_FIELD_FLOAT: {
		int n = fmt_double(*(const double *)p, tmp, sizeof(tmp));
		return buf_put(out, tmp, (size_t)n);
	}
	case AG_FIELD_BOOL:
		return *(const bool *)p ? buf_put(out, "true", 4) : buf_put(out, "false", 5);
	default:
		return AG_ETYPE;
	}
}
