/*
 * The check behind the record_json_scan fuzz target and tests/test-jsonscan.c: the JSON
 * scanner in front of record decoding (libagent/src/json_scan.c) against jansson's tree.
 */
#ifndef FAUSTC_JSON_SCAN_CHECK_H
#define FAUSTC_JSON_SCAN_CHECK_H

#include <stddef.h>
#include <stdint.h>

/*
 * Decodes data as JSON into a record with every kind of field three ways: the scanner
 * alone, ag_record_decode (scanner, then jansson for what it defers) and jansson's tree
 * alone. Aborts unless all three agree: when the scanner decodes, the tree decodes to the
 * same struct (same msgpack encoding, same ag_present bits); ag_record_decode returns the
 * tree's code with the tree's message, and on success the tree's struct.
 * Returns 1 when the scanner decoded the value itself, 0 when it deferred.
 */
int json_scan_check(const uint8_t *data, size_t size);

#endif
