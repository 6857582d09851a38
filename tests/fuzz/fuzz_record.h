/*
 * The record type the record fuzz targets decode (a withdrawal with every kind of field)
 * and the check they share.
 */
#ifndef FAUSTC_FUZZ_RECORD_H
#define FAUSTC_FUZZ_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include <agent/types.h>

/*
 * Decodes data as a fuzz_withdrawal in codec; when that succeeds, checks the decoded
 * struct, encodes it in both codecs and decodes those again. Aborts when an invariant does
 * not hold. Returns 0.
 */
int fuzz_record_one(enum ag_codec codec, const uint8_t *data, size_t size);

#endif
