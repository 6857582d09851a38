/* See json_scan_check.h. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <agent/error.h>
#include <agent/record.h>

#include "internal.h"
#include "json_scan.h"
#include "json_scan_check.h"

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

struct scan_inner {
	struct ag_str name;
	int64_t n; /* optional */
	struct ag_list flags; /* of bool, optional */
	uint64_t ag_present;
};

AG_RECORD(scan_inner_type, scan_inner, AG_FIELD(scan_inner, name, AG_FIELD_STRING, 0),
	  AG_FIELD(scan_inner, n, AG_FIELD_INT, AG_FIELD_OPTIONAL),
	  AG_FIELD(scan_inner, flags, AG_FIELD_LIST_BOOL, AG_FIELD_OPTIONAL));

struct scan_rec {
	struct ag_str account;
	double amount;
	struct ag_str country;
	int64_t count; /* optional */
	bool ok; /* optional */
	struct ag_list tags; /* of ag_str, optional */
	struct ag_list ints; /* of int64_t, optional */
	struct ag_list reals; /* of double, optional */
	struct scan_inner inner; /* optional */
	double fee; /* optional */
	uint64_t ag_present;
};

AG_RECORD(scan_rec_type, scan_rec, AG_FIELD(scan_rec, account, AG_FIELD_STRING, 0),
	  AG_FIELD(scan_rec, amount, AG_FIELD_FLOAT, 0),
	  AG_FIELD(scan_rec, country, AG_FIELD_STRING, 0),
	  AG_FIELD(scan_rec, count, AG_FIELD_INT, AG_FIELD_OPTIONAL),
	  AG_FIELD(scan_rec, ok, AG_FIELD_BOOL, AG_FIELD_OPTIONAL),
	  AG_FIELD(scan_rec, tags, AG_FIELD_LIST_STRING, AG_FIELD_OPTIONAL),
	  AG_FIELD(scan_rec, ints, AG_FIELD_LIST_INT, AG_FIELD_OPTIONAL),
	  AG_FIELD(scan_rec, reals, AG_FIELD_LIST_FLOAT, AG_FIELD_OPTIONAL),
	  AG_FIELD_REC(scan_rec, inner, scan_inner_type, AG_FIELD_OPTIONAL),
	  AG_FIELD(scan_rec, fee, AG_FIELD_FLOAT, AG_FIELD_OPTIONAL));

/* The record as msgpack (exact doubles, every present field) plus its ag_present words. */
static void
fingerprint(const struct scan_rec *r, struct ag_buf *out)
{
	CHECK(ag_record_encode(&scan_rec_type, AG_CODEC_MSGPACK, r, 0, out) == 0);
	CHECK(r->account.ptr && r->account.ptr[r->account.len] == '\0');
	CHECK(r->country.ptr && r->country.ptr[r->country.len] == '\0');
	char words[2 * sizeof(uint64_t)];
	memcpy(words, &r->ag_present, sizeof(uint64_t));
	memcpy(words + sizeof(uint64_t), &r->inner.ag_present, sizeof(uint64_t));
	size_t need = out->len + sizeof(words);
	if (need > out->cap) {
		char *p = realloc(out->ptr, need);
		CHECK(p);
		out->ptr = p;
		out->cap = need;
	}
	memcpy(out->ptr + out->len, words, sizeof(words));
	out->len = need;
}

int
json_scan_check(const uint8_t *data, size_t size)
{
	struct ag_bytes in = {data, size};
	struct ag_arena *arena = NULL;
	struct scan_rec scanned, tree, both;
	char tree_err[256], both_err[256];
	struct ag_buf a = {0}, b = {0};
	int decoded = 0;

	CHECK(ag_arena_new(&arena) == 0);
	memset(&tree, 0xa5, sizeof(tree));
	int tree_rc = ag__record_decode_json_tree(&scan_rec_type, in, &tree, arena, tree_err,
						  sizeof(tree_err));
	CHECK(tree_rc == 0 || tree_rc == AG_EDECODE || tree_rc == AG_ETYPE ||
	      tree_rc == AG_EMISSING);

	if (size > 0) {
		memset(&scanned, 0, sizeof(scanned));
		int rc = ag__json_scan_record(&scan_rec_type, in, &scanned, arena);
		CHECK(rc == 0 || rc == AG__JSON_SCAN_DEFER);
		if (rc == 0) {
			decoded = 1;
			CHECK(tree_rc == 0); /* never accepts what jansson refuses */
			fingerprint(&scanned, &a);
			fingerprint(&tree, &b);
			CHECK(a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0);
			a.len = b.len = 0;
		}
	}

	memset(&both, 0x5a, sizeof(both));
	int both_rc = ag_record_decode(&scan_rec_type, AG_CODEC_JSON, in, &both, arena, both_err,
				       sizeof(both_err));
	CHECK(both_rc == tree_rc);
	if (tree_rc == 0) {
		fingerprint(&both, &a);
		fingerprint(&tree, &b);
		CHECK(a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0);
	} else {
		CHECK(strcmp(both_err, tree_err) == 0);
	}
	free(a.ptr);
	free(b.ptr);
	ag_arena_free(arena);
	return decoded;
}
