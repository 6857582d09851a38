/*
 * The JSON fast path of record decoding: one pass over the bytes, driven by the record's
 * field table, that writes the fields it finds straight into the struct and steps over
 * the rest without building a tree. It decides only the common case: when it cannot prove
 * that jansson would decode the value to the same struct (an escape in a string, a type
 * mismatch, a missing field, a duplicate key, invalid JSON, very deep nesting), it gives
 * the value back and record.c decodes it through jansson's tree, which then also writes
 * the error message. So values and errors are jansson's by construction; the scanner only
 * has to never accept what jansson would refuse or read differently (tests/test-jsonscan.c
 * and the fuzz target record_json_scan check exactly that).
 */
#ifndef AG_JSON_SCAN_H
#define AG_JSON_SCAN_H

#include <agent/record.h>

/* What ag__json_scan_record answers besides 0 (decoded) and -ENOMEM. */
#define AG__JSON_SCAN_DEFER 1

/*
 * Decodes data (JSON) into out, a zeroed struct of type, with strings and lists in arena.
 * Returns 0 when decoded (out holds what ag_record_decode's jansson path would write),
 * AG__JSON_SCAN_DEFER when the caller must decode through jansson instead (out is then
 * partly written: zero it first), -ENOMEM.
 */
int ag__json_scan_record(const struct ag_record_type *type, struct ag_bytes data, void *out,
			 struct ag_arena *arena);

#endif
