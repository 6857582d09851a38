/* Fuzz target: ag_record_decode of msgpack input into a withdrawal record (see fuzz_record.c). */
#include <stdint.h>

#include "fuzz_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_record_one(AG_CODEC_MSGPACK, data, size);
}
