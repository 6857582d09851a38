/*
 * The check behind fuzz_record_json and fuzz_record_msgpack. Whatever the input,
 * ag_record_decode answers 0 or one of its documented errors with a message, and never reads
 * outside the input (ASan). When it succeeds, the struct holds what the contract promises
 * (required fields present, strings NUL-terminated, absent optional fields zero), and the
 * record survives encoding: encode, decode, encode again gives the same bytes, in the
 * input's codec and in the other one.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <agent/error.h>
#include <agent/record.h>

#include "fuzz_record.h"

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

struct fuzz_address {
	struct ag_str city;
	int64_t zip; /* optional */
	uint64_t ag_present;
};

AG_RECORD(fuzz_address_type, fuzz_address, AG_FIELD(fuzz_address, city, AG_FIELD_STRING, 0),
	  AG_FIELD(fuzz_address, zip, AG_FIELD_INT, AG_FIELD_OPTIONAL));

struct fuzz_withdrawal {
	struct ag_str user;
	struct ag_str country;
	double amount;
	int64_t count;
	bool flagged;
	struct ag_list scores; /* of int64_t */
	struct ag_str date; /* optional */
	double fee; /* optional */
	struct fuzz_address address; /* optional */
	uint64_t ag_present;
};

enum { F_USER, F_COUNTRY, F_AMOUNT, F_COUNT, F_FLAGGED, F_SCORES, F_DATE, F_FEE, F_ADDRESS };

AG_RECORD_NAMED(fuzz_withdrawal_type, fuzz_withdrawal, "fuzz.Withdrawal",
		AG_FIELD(fuzz_withdrawal, user, AG_FIELD_STRING, 0),
		AG_FIELD(fuzz_withdrawal, country, AG_FIELD_STRING, 0),
		AG_FIELD(fuzz_withdrawal, amount, AG_FIELD_FLOAT, 0),
		AG_FIELD(fuzz_withdrawal, count, AG_FIELD_INT, 0),
		AG_FIELD(fuzz_withdrawal, flagged, AG_FIELD_BOOL, 0),
		AG_FIELD(fuzz_withdrawal, scores, AG_FIELD_LIST_INT, 0),
		AG_FIELD(fuzz_withdrawal, date, AG_FIELD_STRING, AG_FIELD_OPTIONAL),
		AG_FIELD(fuzz_withdrawal, fee, AG_FIELD_FLOAT, AG_FIELD_OPTIONAL),
		AG_FIELD_REC(fuzz_withdrawal, address, fuzz_address_type, AG_FIELD_OPTIONAL));

#define BIT(i) ((uint64_t)1 << (i))

static void
check_str(const struct ag_str *s, bool present)
{
	if (!present) {
		CHECK(s->len == 0);
		return;
	}
	CHECK(s->ptr != NULL && s->ptr[s->len] == '\0');
}

static void
check_decoded(const struct fuzz_withdrawal *w)
{
	const uint64_t required = BIT(F_USER) | BIT(F_COUNTRY) | BIT(F_AMOUNT) | BIT(F_COUNT) |
				  BIT(F_FLAGGED) | BIT(F_SCORES);
	CHECK((w->ag_present & required) == required);
	CHECK((w->ag_present & ~(BIT(F_ADDRESS + 1) - 1)) == 0);
	check_str(&w->user, true);
	check_str(&w->country, true);
	check_str(&w->date, w->ag_present & BIT(F_DATE));
	if (!(w->ag_present & BIT(F_FEE)))
		CHECK(w->fee == 0);
	if (w->ag_present & BIT(F_ADDRESS)) {
		CHECK(w->address.ag_present & BIT(0));
		check_str(&w->address.city, true);
		if (!(w->address.ag_present & BIT(1)))
			CHECK(w->address.zip == 0);
	} else {
		CHECK(w->address.ag_present == 0 && w->address.city.len == 0);
	}
	CHECK(w->scores.len == 0 || w->scores.items != NULL);
	/* Touch every item, so ASan sees a list shorter than it claims. */
	volatile int64_t sum = 0;
	for (size_t i = 0; i < w->scores.len; i++)
		sum += ((const int64_t *)w->scores.items)[i] & 1;
	(void)sum;
}

static bool
all_finite(const struct fuzz_withdrawal *w)
{
	return isfinite(w->amount) && isfinite(w->fee);
}

/*
 * Encodes w in codec, decodes that, and checks that encoding the result again gives the
 * same bytes. Returns false when the encoder refuses w (-EINVAL: the contract allows it for
 * strings that are not UTF-8 in JSON).
 */
static bool
roundtrip(const struct fuzz_withdrawal *w, enum ag_codec codec)
{
	struct ag_buf first = {0}, second = {0};
	struct ag_arena *arena = NULL;
	struct fuzz_withdrawal back;
	char err[256];
	int rc = ag_record_encode(&fuzz_withdrawal_type, codec, w, 0, &first);
	if (rc == -EINVAL && codec == AG_CODEC_JSON) {
		free(first.ptr);
		return false;
	}
	CHECK(rc == 0);
	CHECK(ag_arena_new(&arena) == 0);
	rc = ag_record_decode(&fuzz_withdrawal_type, codec, (struct ag_bytes){first.ptr, first.len},
			      &back, arena, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "re-decoding %.*s: %s\n", (int)first.len, first.ptr, err);
		abort();
	}
	check_decoded(&back);
	CHECK(ag_record_encode(&fuzz_withdrawal_type, codec, &back, 0, &second) == 0);
	CHECK(first.len == second.len && memcmp(first.ptr, second.ptr, first.len) == 0);
	free(first.ptr);
	free(second.ptr);
	ag_arena_free(arena);
	return true;
}

int
fuzz_record_one(enum ag_codec codec, const uint8_t *data, size_t size)
{
	static int checked;
	char err[256];
	if (!checked) {
		CHECK(ag_record_type_check(&fuzz_withdrawal_type, err, sizeof(err)) == 0);
		checked = 1;
	}
	struct ag_arena *arena = NULL;
	CHECK(ag_arena_new(&arena) == 0);
	struct fuzz_withdrawal w;
	memset(&w, 0xa5, sizeof(w)); /* decoding zeroes it first */
	memset(err, 'x', sizeof(err));
	int rc = ag_record_decode(&fuzz_withdrawal_type, codec, (struct ag_bytes){data, size}, &w,
				  arena, err, sizeof(err));
	CHECK(rc == 0 || rc == AG_EDECODE || rc == AG_ETYPE || rc == AG_EMISSING);
	CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (rc == 0) {
		check_decoded(&w);
		CHECK(roundtrip(&w, codec)); /* what decoded from JSON is valid UTF-8 */
		/* JSON has no NaN or infinities; msgpack can carry them. */
		if (codec == AG_CODEC_JSON || all_finite(&w))
			roundtrip(&w, codec == AG_CODEC_JSON ? AG_CODEC_MSGPACK : AG_CODEC_JSON);
	} else {
		CHECK(err[0] != '\0');
	}
	ag_arena_free(arena);
	return 0;
}
