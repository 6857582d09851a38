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

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <agent/record.h>

/*
 * How many of the 8 bytes at p, from the first, stand for themselves inside a JSON string
 * (0 to 8): ASCII (< 0x80), not a control character (< 0x20), not '"' and not '\\'. One
 * word at a time: a byte of 0x80 or more shows its own high bit; among the others, a byte
 * below 0x20 or equal to the quote or the backslash makes its lane borrow in the
 * subtraction, which sets that lane's high bit. A borrow only starts at such a byte and
 * only moves to higher lanes, so the lowest lane flagged is the first byte that is not
 * plain (lanes above it may be flagged falsely and are not looked at).
 */
static inline unsigned
ag__json_plain_prefix8(const unsigned char *p)
{
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
	uint64_t x;
	memcpy(&x, p, sizeof(x));
	uint64_t bad =
		x | (x - ones * 0x20) | ((x ^ (ones * '"')) - ones) | ((x ^ (ones * '\\')) - ones);
	bad &= highs;
	if (!bad)
		return 8;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return (unsigned)__builtin_clzll(bad) / 8;
#else
	return (unsigned)__builtin_ctzll(bad) / 8;
#endif
}

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
