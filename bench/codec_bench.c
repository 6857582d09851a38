/*
 * Record codec throughput: how fast ag_record_decode and ag_record_encode turn withdrawal
 * records into structs and back, in JSON and msgpack, against jansson's bare parse of the
 * same JSON bytes (json_loadb + json_decref, no field access), the floor any JSON-based
 * decoding pays in the raw pipe. Single-threaded, CPU only, no Kafka.
 *
 * The inputs are 1024 distinct records from a fixed-seed generator, cycled through for a
 * fixed number of records (-n, default 1,000,000) after one untimed warm-up pass. Decoding
 * resets the arena after each record, as the worker does per event; encoding reuses one
 * output buffer. Times come from CLOCK_MONOTONIC.
 *
 * Usage: codec_bench [-n RECORDS]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <agent/agent.h>
#include <agent/record.h>

struct withdrawal {
	struct ag_str user;
	struct ag_str country;
	double amount;
	struct ag_str date; /* optional */
	uint64_t ag_present;
};

AG_RECORD(withdrawal_type, withdrawal, AG_FIELD(withdrawal, user, AG_FIELD_STRING, 0),
	  AG_FIELD(withdrawal, country, AG_FIELD_STRING, 0),
	  AG_FIELD(withdrawal, amount, AG_FIELD_FLOAT, 0),
	  AG_FIELD(withdrawal, date, AG_FIELD_STRING, AG_FIELD_OPTIONAL));

#define DISTINCT 1024

struct input {
	struct ag_bytes json[DISTINCT];
	struct ag_bytes msgpack[DISTINCT];
	size_t json_bytes, msgpack_bytes; /* totals over the DISTINCT records */
};

struct result {
	const char *what;
	double seconds;
	size_t bytes; /* input bytes decoded, or output bytes encoded */
};

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

/* xorshift64*: fixed seed, so every run measures the same records. */
static uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1du;
}

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what, int rc, const char *err)
{
	fprintf(stderr, "codec_bench: %s: %s%s%s\n", what, ag_strerror(rc), err ? ": " : "",
		err ? err : "");
	exit(1);
}

static struct ag_bytes
copy_bytes(const char *p, size_t len)
{
	char *q = malloc(len + 1);
	if (!q)
		die("malloc", -ENOMEM, NULL);
	memcpy(q, p, len);
	q[len] = '\0';
	return (struct ag_bytes){q, len};
}

/* JSON as other producers write it; msgpack as ag_record_encode writes the same records. */
static void
make_inputs(struct input *in, struct ag_arena *arena)
{
	static const char *const countries[] = {"US", "GB", "DE", "FR", "NO", "SE", "JP", "BR"};
	char text[256], err[256];
	struct ag_buf out = {0};
	memset(in, 0, sizeof(*in));
	for (size_t i = 0; i < DISTINCT; i++) {
		uint64_t r = rng();
		int n = snprintf(
			text, sizeof(text),
			"{\"user\": \"user-%05u\", \"country\": \"%s\", \"amount\": %u.%02u, "
			"\"date\": \"2026-11-%02uT%02u:00:00Z\"}",
			(unsigned)(r % 100000), countries[(r >> 20) % 8],
			(unsigned)((r >> 24) % 200), (unsigned)((r >> 32) % 100),
			(unsigned)((r >> 40) % 28 + 1), (unsigned)((r >> 48) % 24));
		in->json[i] = copy_bytes(text, (size_t)n);
		in->json_bytes += (size_t)n;

		struct withdrawal w;
		int rc = ag_record_decode(&withdrawal_type, AG_CODEC_JSON, in->json[i], &w, arena,
					  err, sizeof(err));
		if (rc)
			die("decoding a generated record", rc, err);
		out.len = 0;
		rc = ag_record_encode(&withdrawal_type, AG_CODEC_MSGPACK, &w, 0, &out);
		if (rc)
			die("encoding msgpack", rc, NULL);
		in->msgpack[i] = copy_bytes(out.ptr, out.len);
		in->msgpack_bytes += out.len;
		ag_arena_reset(arena);
	}
	free(out.ptr);
}

static volatile double sink; /* keeps the loops' results alive */

static struct result
bench_jansson(const struct input *in, size_t records)
{
	double t0 = now();
	size_t bytes = 0, sum = 0;
	for (size_t i = 0; i < records; i++) {
		struct ag_bytes b = in->json[i % DISTINCT];
		json_error_t jerr;
		json_t *v = json_loadb(b.ptr, b.len, 0, &jerr);
		if (!v)
			die("json_loadb", AG_EDECODE, jerr.text);
		sum += json_object_size(v);
		json_decref(v);
		bytes += b.len;
	}
	sink = (double)sum;
	return (struct result){"jansson json_loadb+decref", now() - t0, bytes};
}

static struct result
bench_decode(const struct input *in, enum ag_codec codec, struct ag_arena *arena, size_t records)
{
	const struct ag_bytes *src = codec == AG_CODEC_JSON ? in->json : in->msgpack;
	char err[256];
	double sum = 0, t0 = now();
	size_t bytes = 0;
	for (size_t i = 0; i < records; i++) {
		struct ag_bytes b = src[i % DISTINCT];
		struct withdrawal w;
		int rc = ag_record_decode(&withdrawal_type, codec, b, &w, arena, err, sizeof(err));
		if (rc)
			die("ag_record_decode", rc, err);
		sum += w.amount + (double)w.user.len;
		ag_arena_reset(arena);
		bytes += b.len;
	}
	sink = sum;
	return (struct result){codec == AG_CODEC_JSON ? "ag_record_decode json"
						      : "ag_record_decode msgpack",
			       now() - t0, bytes};
}

static struct result
bench_encode(const struct input *in, enum ag_codec codec, struct ag_arena *arena, size_t records)
{
	static struct withdrawal recs[DISTINCT];
	struct ag_buf out = {0};
	char err[256];
	for (size_t i = 0; i < DISTINCT; i++) {
		int rc = ag_record_decode(&withdrawal_type, AG_CODEC_JSON, in->json[i], &recs[i],
					  arena, err, sizeof(err));
		if (rc)
			die("ag_record_decode", rc, err);
	}
	double t0 = now();
	size_t bytes = 0;
	for (size_t i = 0; i < records; i++) {
		out.len = 0;
		int rc = ag_record_encode(&withdrawal_type, codec, &recs[i % DISTINCT], 0, &out);
		if (rc)
			die("ag_record_encode", rc, NULL);
		bytes += out.len;
	}
	double t = now() - t0;
	sink = (double)out.len;
	free(out.ptr);
	ag_arena_reset(arena);
	return (struct result){codec == AG_CODEC_JSON ? "ag_record_encode json"
						      : "ag_record_encode msgpack",
			       t, bytes};
}

int
main(int argc, char **argv)
{
	size_t records = 1000000;
	int opt;
	while ((opt = getopt(argc, argv, "n:")) != -1) {
		if (opt == 'n' && atol(optarg) > 0) {
			records = (size_t)atol(optarg);
		} else {
			fprintf(stderr, "usage: %s [-n RECORDS]\n", argv[0]);
			return 2;
		}
	}
	struct ag_arena *arena;
	int rc = ag_arena_new(&arena);
	if (rc)
		die("ag_arena_new", rc, NULL);
	char err[256];
	rc = ag_record_type_check(&withdrawal_type, err, sizeof(err));
	if (rc)
		die("ag_record_type_check", rc, err);
	static struct input in;
	make_inputs(&in, arena);

	/* Warm-up: one untimed pass over the distinct records of each kind. */
	bench_jansson(&in, DISTINCT);
	bench_decode(&in, AG_CODEC_JSON, arena, DISTINCT);
	bench_decode(&in, AG_CODEC_MSGPACK, arena, DISTINCT);

	struct result res[] = {
		bench_jansson(&in, records),
		bench_decode(&in, AG_CODEC_JSON, arena, records),
		bench_decode(&in, AG_CODEC_MSGPACK, arena, records),
		bench_encode(&in, AG_CODEC_JSON, arena, records),
		bench_encode(&in, AG_CODEC_MSGPACK, arena, records),
	};
	printf("codec_bench: %zu records (%d distinct), JSON %.1f B, msgpack %.1f B on average\n",
	       records, DISTINCT, (double)in.json_bytes / DISTINCT,
	       (double)in.msgpack_bytes / DISTINCT);
	printf("%-28s %12s %9s %12s\n", "operation", "records/s", "MB/s", "vs jansson");
	double base = (double)records / res[0].seconds;
	for (size_t i = 0; i < sizeof(res) / sizeof(res[0]); i++) {
		double rps = (double)records / res[i].seconds;
		printf("%-28s %12.0f %9.1f %11.2fx\n", res[i].what, rps,
		       (double)res[i].bytes / res[i].seconds / 1e6, rps / base);
	}
	printf("(MB/s counts input bytes for jansson and decoding, output bytes for encoding; "
	       "vs jansson is records/s over jansson's records/s)\n");

	for (size_t i = 0; i < DISTINCT; i++) {
		free((void *)in.json[i].ptr);
		free((void *)in.msgpack[i].ptr);
	}
	ag_arena_free(arena);
	return 0;
}
