/*
 * A tiny TAP producer for the unit tests: each check prints "ok N - what" or
 * "not ok N - what" with both sides of a failed comparison, and tap_done() prints the
 * plan and returns the exit status. Tests never build with NDEBUG.
 */
#ifndef FAUSTC_TESTS_TAP_H
#define FAUSTC_TESTS_TAP_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int tap__n, tap__failed;

/* tap_check(cond, printf-format, args...): the description is a printf format. */
#define tap_check(cond, ...) \
	do { \
		int tap__ok = !!(cond); \
		tap__n++; \
		if (!tap__ok) \
			tap__failed++; \
		printf("%sok %d - ", tap__ok ? "" : "not ", tap__n); \
		printf(__VA_ARGS__); \
		printf("\n"); \
		if (!tap__ok) \
			printf("#   at %s:%d\n", __FILE__, __LINE__); \
	} while (0)

#define ok(cond, ...) tap_check(cond, __VA_ARGS__)

#define ok_int_eq(a, b, ...) \
	do { \
		long long tap__a = (long long)(a), tap__b = (long long)(b); \
		tap_check(tap__a == tap__b, __VA_ARGS__); \
		if (tap__a != tap__b) \
			printf("#   got: %lld (%s)\n#   expected: %lld (%s)\n", tap__a, #a, \
			       tap__b, #b); \
	} while (0)

#define ok_str_eq(a, b, ...) \
	do { \
		const char *tap__a = (a), *tap__b = (b); \
		int tap__eq = tap__a && tap__b && strcmp(tap__a, tap__b) == 0; \
		tap_check(tap__eq, __VA_ARGS__); \
		if (!tap__eq) \
			printf("#   got: \"%s\" (%s)\n#   expected: \"%s\" (%s)\n", \
			       tap__a ? tap__a : "(null)", #a, tap__b ? tap__b : "(null)", #b); \
	} while (0)

#define ok_mem_eq(p, n, q, m, ...) \
	do { \
		size_t tap__n1 = (n), tap__n2 = (m); \
		int tap__eq = tap__n1 == tap__n2 && memcmp((p), (q), tap__n1) == 0; \
		tap_check(tap__eq, __VA_ARGS__); \
		if (!tap__eq) \
			printf("#   got: \"%.*s\"\n#   expected: \"%.*s\"\n", (int)tap__n1, \
			       (const char *)(p), (int)tap__n2, (const char *)(q)); \
	} while (0)

/* A number below n from a fixed-seed xorshift: random inputs that repeat run to run. */
static uint64_t tap__rng = 0x9e3779b97f4a7c15u;

static inline uint32_t
tap_rand(uint32_t n)
{
	tap__rng ^= tap__rng << 13;
	tap__rng ^= tap__rng >> 7;
	tap__rng ^= tap__rng << 17;
	return (uint32_t)(tap__rng % n);
}

static inline int
tap_done(void)
{
	printf("1..%d\n", tap__n);
	if (tap__failed)
		printf("# %d of %d checks failed\n", tap__failed, tap__n);
	return tap__failed ? 1 : 0;
}

#endif
