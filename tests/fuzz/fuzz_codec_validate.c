/*
 * Fuzz target: ag__codec_validate. The first byte picks the codec, the rest is the data.
 *
 * Beyond "no crash, no read outside the input" (ASan), it checks what must hold for every
 * input: the result is 0 or AG_EDECODE; a failure leaves a terminated message that names
 * the byte offset; int64 and double agree with their decoders and re-encode to the same
 * bytes; msgpack agrees with msgpack-c's unpacker, the reference implementation.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

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

/*
 * msgpack-c must read what we accept as one whole value, and we must accept what it reads
 * whole. Its unpacker nests at most 32 deep (MSGPACK_EMBED_STACK_SIZE) where we allow 64, so
 * a value it refuses for depth alone is no disagreement. It allocates an array's or map's
 * objects before reading them, so inputs we refused for claiming more items than there are
 * bytes are not given to it: they would ask malloc for gigabytes.
 */
static void
check_msgpack(struct ag_bytes b, int rc, const char *err)
{
	if (rc != 0 && strstr(err, " items, "))
		return;
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	size_t off = 0;
	msgpack_unpack_return urc = msgpack_unpack_next(&u, b.ptr, b.len, &off);
	int whole = urc == MSGPACK_UNPACK_SUCCESS && off == b.len;
	msgpack_unpacked_destroy(&u);
	if (whole)
		CHECK(rc == 0);
	else if (rc == 0)
		CHECK(urc == MSGPACK_UNPACK_NOMEM_ERROR); /* its depth limit */
}

static void
check_fixed8(enum ag_codec codec, struct ag_bytes b, int rc)
{
	unsigned char again[8];
	int64_t i64;
	double f64;
	if (codec == AG_CODEC_INT64) {
		CHECK(ag__codec_int64_decode(b, &i64) == rc);
		if (rc == 0) {
			CHECK(ag__codec_int64_encode(i64, again, sizeof(again)) == 8);
			CHECK(memcmp(again, b.ptr, 8) == 0);
		}
	} else {
		CHECK(ag__codec_double_decode(b, &f64) == rc);
		if (rc == 0) {
			CHECK(ag__codec_double_encode(f64, again, sizeof(again)) == 8);
			CHECK(memcmp(again, b.ptr, 8) == 0);
		}
	}
	CHECK((rc == 0) == (b.len == 8));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum ag_codec codecs[] = {
		AG_CODEC_RAW,   AG_CODEC_STRING, AG_CODEC_JSON,   AG_CODEC_MSGPACK,
		AG_CODEC_INT64, AG_CODEC_DOUBLE, AG_CODEC_CUSTOM,
	};
	if (size == 0)
		return 0;
	enum ag_codec codec = codecs[data[0] % (sizeof(codecs) / sizeof(codecs[0]))];
	struct ag_bytes b = {data + 1, size - 1};
	char err[256];
	memset(err, 'x', sizeof(err));
	int rc = ag__codec_validate(codec, b, err, sizeof(err));
	CHECK(rc == 0 || rc == AG_EDECODE);
	CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (rc == 0)
		CHECK(err[0] == '\0');
	else if (codec != AG_CODEC_CUSTOM)
		CHECK(strstr(err, "byte") != NULL);
	if (codec == AG_CODEC_RAW || codec == AG_CODEC_CUSTOM)
		CHECK((rc == 0) == (codec == AG_CODEC_RAW));
	if (codec == AG_CODEC_MSGPACK)
		check_msgpack(b, rc, err);
	if (codec == AG_CODEC_INT64 || codec == AG_CODEC_DOUBLE)
		check_fixed8(codec, b, rc);
	/* A small err buffer gives the same answer. */
	char tiny[3];
	CHECK(ag__codec_validate(codec, b, tiny, sizeof(tiny)) == rc);
	CHECK(memchr(tiny, '\0', sizeof(tiny)) != NULL);
	return 0;
}
