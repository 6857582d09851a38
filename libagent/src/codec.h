/*
 * Codecs: check that a key or value is what its topic declares (raw, string, json) and
 * encode table values (msgpack) for the store and the changelog.
 */
#ifndef AG_CODEC_H
#define AG_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <agent/types.h>

/* "raw", "string", "json", "msgpack", "int64", "double", or "unknown". Never NULL. */
const char *ag__codec_name(enum ag_codec codec);

/* Parses a codec name. Returns 0 and sets *out, -EINVAL. */
int ag__codec_parse(const char *name, enum ag_codec *out);

/*
 * Checks that data is valid for the codec: raw accepts anything, string accepts valid
 * UTF-8 without NUL bytes, json accepts exactly one JSON value (surrounding whitespace
 * allowed), msgpack exactly one msgpack value, int64 and double exactly 8 bytes. On failure writes the reason (with byte position where known) into err.
 * Returns 0, AG_EDECODE.
 */
int ag__codec_validate(enum ag_codec codec, struct ag_bytes data, char *err, size_t errlen);

/*
 * Checks that data is exactly one msgpack value, however nested (record.c reads msgpack).
 * Returns 0, AG_EDECODE with the reason in err.
 */
int ag__msgpack_validate(struct ag_bytes data, char *err, size_t errlen);

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
 * ag__val_encoded_size: the bytes ag__val_encode needs for v; 0 when v cannot be encoded
 * (AG__VAL_NONE, or bytes longer than INT_MAX - 5).
 * ag__val_encode: encodes v into buf (cap bytes) in msgpack's smallest form (ints), float64,
 * or bin8/16/32. Returns the encoded length (> 0); -ENOBUFS when cap is smaller than
 * ag__val_encoded_size(v) (nothing written); -EINVAL for AG__VAL_NONE (no msgpack nil in
 * tables); -EMSGSIZE for bytes too long.
 */
size_t ag__val_encoded_size(const struct ag__val *v);
int ag__val_encode(const struct ag__val *v, void *buf, size_t cap);

/*
 * Decodes a msgpack scalar (int, uint, float32/64, bin, str) that fills data exactly.
 * Ints come back as I64 (uint64 above INT64_MAX is AG_EDECODE), floats as F64, bin and str
 * as BYTES borrowed from data. Never reads outside data. Returns 0, AG_EDECODE (nil, bool,
 * containers, ext, truncated input, trailing bytes; *out is then untouched).
 */
int ag__val_decode(struct ag_bytes data, struct ag__val *out);

/*
 * Renders a decoded value for humans/JSON dumps into buf ("42", "1.5", "\"text\""), always
 * valid JSON: doubles in the shortest form that reads back exactly, with ".0" when integral,
 * NaN and infinities as null; bytes as a JSON string where each byte that is not part of
 * valid UTF-8 (and each control byte) becomes \u00XX (so such bytes read back as U+0080..
 * U+00FF, not as themselves); AG__VAL_NONE as null. NUL-terminates. Returns the length
 * (without the NUL), or -ENOBUFS when it does not fit in cap (buf then holds "").
 */
int ag__val_to_json(const struct ag__val *v, char *buf, size_t cap);

#endif
