/*
 * Fuzz target: the JSON scanner of record decoding against jansson's tree on any input
 * (json_scan_check.c says what must agree).
 */
#include <stdint.h>

#include "json_scan_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_scan_check(data, size);
	return 0;
}
