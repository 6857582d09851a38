/*
 * Fuzz target: ag__val_decode, the msgpack scalars tables store.
 *
 * Checks for every input: the result is 0 or AG_EDECODE and *out is untouched on failure;
 * decoded bytes lie inside the input; what decodes is a msgpack value the msgpack codec
 * accepts, re-encodes (ag__val_encode) to something that decodes to the same value, and
 * renders (ag__val_to_json) as JSON that jansson parses.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <agent/error.h>

#include "codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

static int
same_val(const struct ag__val *a, const struct ag__val *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case AG__VAL_I64:
		return a->i64 == b->i64;
	case AG__VAL_F64:
		return memcmp(&a->f64, &b->f64, sizeof(double)) == 0;
	case AG__VAL_BYTES:
		return a->bytes.len == b->bytes.len &&
		       (a->bytes.len == 0 || memcmp(a->bytes.ptr, b->bytes.ptr, a->bytes.len) == 0);
	default:
		return 0;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ag__val v, before;
	memset(&v, 0x5a, sizeof(v));
	before = v;
	int rc = ag__val_decode((struct ag_bytes){data, size}, &v);
	CHECK(rc == 0 || rc == AG_EDECODE);
	if (rc != 0) {
		CHECK(memcmp(&v, &before, sizeof(v)) == 0);
		return 0;
	}
	CHECK(v.type == AG__VAL_I64 || v.type == AG__VAL_F64 || v.type == AG__VAL_BYTES);
	if (v.type == AG__VAL_BYTES) {
		const uint8_t *p = v.bytes.ptr;
		CHECK(p >= data && v.bytes.len <= size && p + v.bytes.len <= data + size);
	}
	char err[256];
	CHECK(ag__codec_validate(AG_CODEC_MSGPACK, (struct ag_bytes){data, size}, err,
				 sizeof(err)) == 0);

	size_t need = ag__val_encoded_size(&v);
	CHECK(need > 0);
	unsigned char *buf = malloc(need);
	CHECK(buf != NULL);
	CHECK(ag__val_encode(&v, buf, need) == (int)need);
	struct ag__val again;
	CHECK(ag__val_decode((struct ag_bytes){buf, need}, &again) == 0);
	CHECK(same_val(&v, &again) || (v.type == AG__VAL_F64 && isnan(v.f64) && isnan(again.f64)));
	free(buf);

	/* Worst case of the JSON rendering: six bytes per input byte, quotes, NUL. */
	size_t cap = 6 * size + 64;
	char *json = malloc(cap);
	CHECK(json != NULL);
	int n = ag__val_to_json(&v, json, cap);
	CHECK(n > 0 && (size_t)n == strlen(json));
	json_error_t jerr;
	json_t *j = json_loadb(json, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	CHECK(j != NULL);
	json_decref(j);
	/* One byte short of room: -ENOBUFS and an empty string. */
	CHECK(ag__val_to_json(&v, json, (size_t)n) == -ENOBUFS && json[0] == '\0');
	free(json);
	return 0;
}
