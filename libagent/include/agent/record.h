/*
 * Records: typed C structs carried as JSON (the default, as in Faust) or msgpack.
 *
 * A record type is a C struct plus a table of its fields, declared once with AG_RECORD:
 *
 *     struct withdrawal {
 *             struct ag_str user;
 *             struct ag_str country;
 *             double amount;
 *             struct ag_str date;       // optional
 *             uint64_t ag_present;      // bit i set: field i was present
 *     };
 *     AG_RECORD(withdrawal_type, withdrawal,
 *             AG_FIELD(withdrawal, user, AG_FIELD_STRING, 0),
 *             AG_FIELD(withdrawal, country, AG_FIELD_STRING, 0),
 *             AG_FIELD(withdrawal, amount, AG_FIELD_FLOAT, 0),
 *             AG_FIELD(withdrawal, date, AG_FIELD_STRING, AG_FIELD_OPTIONAL));
 *
 * Every record struct has a `uint64_t ag_present` member; a record has at most 64 fields.
 *
 * Decoding fills a struct. Strings and lists point into an arena (struct ag_arena) that
 * the caller owns; they stay valid until the arena is reset or freed. The worker decodes
 * an event's record into a per-event arena, so an agent's record is valid until its next
 * ag_stream_next, and decoding costs no malloc per field.
 *
 * JSON decoding is interoperable with other producers: fields in any order, unknown fields
 * ignored, missing optional fields defaulted (zero, empty, and their ag_present bit clear),
 * integers accepted for float fields, floats with an integral value accepted for int
 * fields, Unicode escapes and UTF-8 handled, and Faust's `"__faust": {"ns": ...}` member
 * accepted (and ignored). Encoding can emit that member (AG_RECORD_FAUST).
 */
#ifndef AGENT_RECORD_H
#define AGENT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <agent/types.h>

enum ag_field_type {
	AG_FIELD_STRING = 1, /* struct ag_str */
	AG_FIELD_INT, /* int64_t */
	AG_FIELD_FLOAT, /* double */
	AG_FIELD_BOOL, /* bool */
	AG_FIELD_RECORD, /* a nested record struct, stored inline */
	AG_FIELD_LIST_STRING, /* struct ag_list of struct ag_str */
	AG_FIELD_LIST_INT, /* struct ag_list of int64_t */
	AG_FIELD_LIST_FLOAT, /* struct ag_list of double */
	AG_FIELD_LIST_BOOL, /* struct ag_list of bool */
};

/* Field flags. */
#define AG_FIELD_OPTIONAL 1u /* may be missing (or null); otherwise missing is an error */

/* A decoded string: ptr is NUL-terminated (len excludes the NUL); borrowed from the arena. */
struct ag_str {
	const char *ptr;
	size_t len;
};

/* A decoded list: items is an array of len elements of the field's item type. */
struct ag_list {
	const void *items;
	size_t len;
};

struct ag_record_type;

struct ag_field {
	const char *name;
	enum ag_field_type type;
	size_t offset;
	unsigned flags;
	const struct ag_record_type *record; /* AG_FIELD_RECORD: the nested type */
};

struct ag_record_type {
	const char *name; /* the record's name; Faust's "__faust": {"ns": name} */
	size_t size; /* sizeof the struct */
	size_t present; /* offset of the uint64_t ag_present member */
	const struct ag_field *fields;
	size_t nfields; /* at most 64 */
};

/* A field of struct S. */
#define AG_FIELD(S, member, type, flags) \
	{ \
#member, (type), offsetof(struct S, member), (flags), NULL \
	}

/* A nested record field of struct S whose type is the record type object `rtype`. */
#define AG_FIELD_REC(S, member, rtype, flags) \
	{ \
#member, AG_FIELD_RECORD, offsetof(struct S, member), (flags), &(rtype) \
	}

/* Defines `const struct ag_record_type var` for struct S, named "S". */
#define AG_RECORD(var, S, ...) AG_RECORD_NAMED(var, S, #S, __VA_ARGS__)

/* As AG_RECORD with an explicit name (e.g. a Faust namespace "myapp.models.Withdrawal"). */
#define AG_RECORD_NAMED(var, S, name, ...) \
	static const struct ag_field var##_fields_[] = {__VA_ARGS__}; \
	const struct ag_record_type var = {(name), sizeof(struct S), \
					   offsetof(struct S, ag_present), var##_fields_, \
					   sizeof(var##_fields_) / sizeof(var##_fields_[0])}

/* Memory for decoded strings and lists: a chain of blocks, reset in O(blocks). */
struct ag_arena;

/* Creates an arena. Caller frees with ag_arena_free. Returns 0, -ENOMEM. */
int ag_arena_new(struct ag_arena **out);
/* Frees the arena and everything decoded into it. NULL is a no-op. */
void ag_arena_free(struct ag_arena *arena);
/* Forgets everything decoded into the arena, keeping (some of) its memory. */
void ag_arena_reset(struct ag_arena *arena);

/*
 * Checks a record type: field names unique, at most 64 fields, offsets inside the struct,
 * nested types valid. Returns 0, -EINVAL (with the reason in err).
 */
int ag_record_type_check(const struct ag_record_type *type, char *err, size_t errlen);

/*
 * Decodes data (AG_CODEC_JSON or AG_CODEC_MSGPACK) into *out (type->size bytes, zeroed
 * first). Strings and lists go into arena. On failure err gets the reason with the field
 * path ("field amount: expected a number, got a string").
 * Returns 0;
 *   AG_EDECODE  not valid JSON/msgpack, or not an object/map, or empty;
 *   AG_ETYPE    a field has the wrong type;
 *   AG_EMISSING a required field is missing;
 *   -EINVAL     another codec; -ENOMEM.
 */
int ag_record_decode(const struct ag_record_type *type, enum ag_codec codec, struct ag_bytes data,
		     void *out, struct ag_arena *arena, char *err, size_t errlen);

/* Encoding flags. */
#define AG_RECORD_FAUST 1u /* JSON: add "__faust": {"ns": type->name} */

/* A growable output buffer; free ptr with free(). */
struct ag_buf {
	char *ptr;
	size_t len;
	size_t cap;
};

/*
 * Appends the encoding of rec (JSON or msgpack) to out. Optional fields whose ag_present
 * bit is clear are left out. Returns 0, -EINVAL (codec, or a string that is not valid UTF-8
 * for JSON), -ENOMEM.
 */
int ag_record_encode(const struct ag_record_type *type, enum ag_codec codec, const void *rec,
		     unsigned flags, struct ag_buf *out);

/*
 * Finds a field by name; a dotted path ("address.city") walks nested records.
 * Sets *field and *value (a pointer to the field inside rec, or inside the nested struct).
 * Returns 0, -ENOENT (no such field; also when a nested optional record is absent).
 */
int ag_record_field(const struct ag_record_type *type, const void *rec, const char *path,
		    const struct ag_field **field, const void **value);

/*
 * Renders a scalar field as the bytes of a message key (what group_by(field) uses):
 * strings as they are, integers in decimal, floats as %.17g, booleans as true/false.
 * Appends to out. Returns 0, -ENOENT, AG_ETYPE (lists and records), -ENOMEM.
 */
int ag_record_field_key(const struct ag_record_type *type, const void *rec, const char *path,
			struct ag_buf *out);

/* "string", "int", "float", "bool", "record", "list[string]", ... Never NULL. */
const char *ag_field_type_name(enum ag_field_type type);

#endif
