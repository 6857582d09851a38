/*
 * Codecs: check that a key or value is what its topic declares (raw, string, json, msgpack,
 * int64, double), convert Kafka's 8-byte numbers, and encode table values (msgpack) for the
 * store and the changelog.
 */
#ifndef AG_CODEC_H
#define AG_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <agent/types.h>

/* Deepest nesting of arrays and maps the msgpack codec accepts (the top value is depth 1). */
#define AG__MSGPACK_MAX_DEPTH 64

/* "raw", "string", "json", "msgpack", "int64", "double"; "unknown" otherwise. Never NULL. */
const char *ag__codec_name(enum ag_codec codec);

/* Parses a codec name. Returns 0 and sets *out, -EINVAL. */
int ag__codec_parse(const char *name, enum ag_codec *out);

/*
 * Checks that data is valid for the codec: raw accepts anything, string accepts valid
 * UTF-8 without NUL bytes, json accepts exactly one JSON value (surrounding whitespace
 * allowed), msgpack exactly one complete msgpack value (any type, arrays and maps nested at
 * most AG__MSGPACK_MAX_DEPTH deep; str payloads are not checked for UTF-8), int64 and double
 * exactly 8 bytes. Never reads outside data. On failure writes the reason with the byte
 * offset of the problem into err (may be NULL); AG_CODEC_CUSTOM and unknown codecs always
 * fail (an app's codecs are checked by the app). Returns 0, AG_EDECODE.
 */
int ag__codec_validate(enum ag_codec codec, struct ag_bytes data, char *err, size_t errlen);

/*
 * Kafka's LongSerializer and DoubleSerializer format: 8 bytes, big-endian two's complement
 * or IEEE 754 bits (NaN payloads kept as they are).
 * The decoders return 0, or AG_EDECODE when data is not exactly 8 bytes (*out untouched).
 * The encoders write 8 bytes to buf and return 8, or -ENOBUFS when cap < 8 (nothing
 * written).
 */
int ag__codec_int64_decode(struct ag_bytes data, int64_t *out);
int ag__codec_double_decode(struct ag_bytes data, double *out);
int ag__codec_int64_encode(int64_t v, void *buf, size_t cap);
int ag__codec_double_encode(double v, void *buf, size_t cap);

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

/*
 * The table value envelope: what LMDB and the changelog hold for a key. msgpack never uses
 * the byte 0xc1, so a stored value that starts with it is an envelope and anything else is
 * a value written before envelopes existed (read as a bare payload without offset):
 *
 *   0xc1, flags, [source offset: 8 bytes BE], [mtime: 8 bytes BE], payload
 *
 * flags: AG__TVAL_OFFSET (the source offset of the last event applied to the value is
 * present), AG__TVAL_MTIME (the wall-clock ms of the last write, for key TTL), AG__TVAL_META
 * (the payload is a windowed table partition's window state, not a value). Other bits are
 * refused (a newer format). The payload is the msgpack value (ag__val or a record).
 */
#define AG__TVAL_MAGIC 0xc1
#define AG__TVAL_OFFSET 0x01u
#define AG__TVAL_MTIME 0x02u
#define AG__TVAL_META 0x04u
#define AG__TVAL_HEADER_MAX 18

struct ag__tval {
	int64_t offset; /* -1: none */
	int64_t mtime; /* -1: none */
	int meta;
	struct ag_bytes payload; /* borrowed from the parsed input */
};

/* Parses a stored value. Returns 0, AG_EDECODE (truncated envelope, unknown flags). */
int ag__tval_parse(struct ag_bytes stored, struct ag__tval *out);

/*
 * Writes the envelope header for v (offset, mtime, meta; payload ignored) into buf, which
 * has room for AG__TVAL_HEADER_MAX bytes. Returns the header length.
 */
size_t ag__tval_header(const struct ag__tval *v, uint8_t *buf);

#endif
