/*
 * Codecs: check that a key or value is what its topic declares (raw, string, json) and
 * encode table values (msgpack) for the store and the changelog.
 */
#ifndef AG_CODEC_H
#define AG_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <agent/types.h>

/* "raw", "string", "json". Never NULL. */
const char *ag__codec_name(enum ag_codec codec);

/* Parses a codec name. Returns 0 and sets *out, -EINVAL. */
int ag__codec_parse(const char *name, enum ag_codec *out);

/*
 * Checks that data is valid for the codec: raw accepts anything, string accepts valid
 * UTF-8 without NUL bytes, json accepts exactly one JSON value (surrounding whitespace
 * allowed). On failure writes the reason (with byte position where known) into err.
 * Returns 0, AG_EDECODE.
 */
int ag__codec_validate(enum ag_codec codec, struct ag_bytes data, char *err, size_t errlen);

/* Table values: msgpack scalars. */
enum ag__val_type {
	AG__VAL_NONE = 0,
	AG__VAL_I64,
	AG__VAL_F64,
	AG__VAL_BYTES,
};

struct ag__val {
	enum ag__val_type type;
	int64_t i64;
	double f64;
	struct ag_bytes bytes; /* borrowed from the encoded input */
};

/*
 * Encodes v into buf (cap bytes). Returns the encoded length (> 0), or -ENOBUFS when cap
 * is too small (call again with at least the returned... use ag__val_encoded_size).
 */
size_t ag__val_encoded_size(const struct ag__val *v);
int ag__val_encode(const struct ag__val *v, void *buf, size_t cap);

/* Decodes a msgpack scalar (int, uint, float32/64, bin, str). Returns 0, AG_EDECODE. */
int ag__val_decode(struct ag_bytes data, struct ag__val *out);

/* Renders a decoded value for humans/JSON dumps into buf ("42", "1.5", "\"text\""). */
int ag__val_to_json(const struct ag__val *v, char *buf, size_t cap);

#endif
