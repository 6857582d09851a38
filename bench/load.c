/*
 * Preloads the benchmark workload: JSON withdrawals keyed by account, produced to the
 * topic `withdrawals` with murmur2 partitioning (as Java clients and faustc place keys).
 * The values come from a fixed-seed generator, so every run sees the same data. Prints
 * the number of records with amount > 100, which is how many outputs the pipes must
 * deliver, as the only line on stdout.
 *
 * The topic must already exist with 8 partitions: the embedded broker cannot create
 * topics on request and would auto-create it with 4, so a wrong count is a hard error.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define TOPIC "withdrawals"
#define PARTITIONS 8
#define DEFAULT_COUNT 240000
#define DEFAULT_SEED UINT64_C(0x5eed2024)
#define ACCOUNTS 100000
#define CENTS_RANGE 20000 /* amount in [0, 200) with two decimals */
#define LARGE_CENTS 10000 /* amount > 100 */

/* Producer topic handle, destroyed before the producer. */
static rd_kafka_topic_t *produce_rkt;

static const char *const countries[32] = {
	"US", "GB", "DE", "FR", "ES", "IT", "NL", "BE", "SE", "NO", "DK",
	"FI", "PL", "PT", "IE", "AT", "CH", "CZ", "GR", "HU", "RO", "CA",
	"MX", "BR", "AR", "JP", "KR", "CN", "IN", "AU", "NZ", "ZA",
};

static long delivery_errors;

/* splitmix64: small, fast, and the same on every libc, unlike rand(). */
static uint64_t
next_random(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	if (delivery_errors++ == 0)
		fprintf(stderr, "load: delivery to %s [%" PRId32 "] failed: %s\n", TOPIC,
			msg->partition, rd_kafka_err2str(msg->err));
}

static int
set_conf(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char err[256];

	if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) == RD_KAFKA_CONF_OK)
		return 0;
	fprintf(stderr, "load: %s=%s: %s\n", name, value, err);
	return -EINVAL;
}

static int
check_partitions(rd_kafka_t *rk)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, TOPIC, NULL);
	rd_kafka_resp_err_t err;
	int rc = -EINVAL;

	if (!rkt)
		return -ENOMEM;
	err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
	if (err) {
		fprintf(stderr, "load: metadata for %s: %s (is the broker at the address?)\n",
			TOPIC, rd_kafka_err2str(err));
		goto out;
	}
	if (md->topic_cnt != 1 || md->topics[0].err) {
		fprintf(stderr, "load: topic %s: %s\n", TOPIC,
			md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "not in metadata");
	} else if (md->topics[0].partition_cnt != PARTITIONS) {
		fprintf(stderr,
			"load: topic %s has %d partitions, the workload needs %d; create it "
			"before loading (start the broker with the bench app: faustc -A "
			"pipe_app.so broker)\n",
			TOPIC, md->topics[0].partition_cnt, PARTITIONS);
	} else {
		rc = 0;
	}
	rd_kafka_metadata_destroy(md);
out:
	rd_kafka_topic_destroy(rkt);
	return rc;
}

/* Produces one record; timestamp 0: now. */
static int
produce_one(rd_kafka_t *rk, const char *key, size_t key_len, const char *value, size_t value_len,
	    int64_t timestamp)
{
	rd_kafka_resp_err_t err;

	for (;;) {
		if (!produce_rkt)
			produce_rkt = rd_kafka_topic_new(rk, TOPIC, NULL);
		err = RD_KAFKA_RESP_ERR_NO_ERROR;
		if (!produce_rkt)
			err = rd_kafka_last_error();
		else {
			/* produceva: the RD_KAFKA_V_* macros are statement expressions (clang warns) */
			rd_kafka_vu_t vu[] = {
				{.vtype = RD_KAFKA_VTYPE_RKT, .u.rkt = produce_rkt},
				{.vtype = RD_KAFKA_VTYPE_PARTITION, .u.i32 = RD_KAFKA_PARTITION_UA},
				{.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY},
				{.vtype = RD_KAFKA_VTYPE_VALUE,
				 .u.mem = {(void *)value, value_len}},
				{.vtype = RD_KAFKA_VTYPE_KEY, .u.mem = {(void *)key, key_len}},
				{.vtype = RD_KAFKA_VTYPE_TIMESTAMP, .u.i64 = timestamp},
			};
			rd_kafka_error_t *e =
				rd_kafka_produceva(rk, vu, sizeof(vu) / sizeof(vu[0]));
			if (e) {
				err = rd_kafka_error_code(e);
				rd_kafka_error_destroy(e);
			}
		}
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(rk, 50);
	}
	if (err) {
		fprintf(stderr, "load: produce to %s key %.*s: %s\n", TOPIC, (int)key_len, key,
			rd_kafka_err2str(err));
		return -EIO;
	}
	rd_kafka_poll(rk, 0);
	return 0;
}

static void
usage(void)
{
	fprintf(stderr,
		"usage: load -b HOST:PORT [-n COUNT] [-s SEED] [-t SECONDS]\n"
		"  -t: Kafka timestamps spread evenly over the SECONDS before now, in order\n"
		"      (default: the produce time)\n");
}

int
main(int argc, char **argv)
{
	const char *bootstrap = NULL;
	long count = DEFAULT_COUNT;
	uint64_t seed = DEFAULT_SEED;
	long large = 0;
	double span_s = 0;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	char err[256];
	int opt, rc = 1;

	while ((opt = getopt(argc, argv, "b:n:s:t:")) != -1) {
		switch (opt) {
		case 'b':
			bootstrap = optarg;
			break;
		case 'n':
			count = strtol(optarg, NULL, 10);
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 't':
			span_s = strtod(optarg, NULL);
			if (!(span_s > 0 && span_s < 1e7)) {
				usage();
				return 2;
			}
			break;
		default:
			usage();
			return 2;
		}
	}
	if (!bootstrap || count <= 0 || optind != argc) {
		usage();
		return 2;
	}

	conf = rd_kafka_conf_new();
	if (set_conf(conf, "bootstrap.servers", bootstrap) || set_conf(conf, "linger.ms", "5") ||
	    set_conf(conf, "batch.num.messages", "10000") || set_conf(conf, "acks", "all") ||
	    set_conf(conf, "partitioner", "murmur2_random")) {
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk) {
		fprintf(stderr, "load: producer: %s\n", err);
		rd_kafka_conf_destroy(conf);
		return 1;
	}
	if (check_partitions(rk))
		goto out;

	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t span_ms = (int64_t)(span_s * 1000.0);
	int64_t first_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - span_ms;
	for (long i = 0; i < count; i++) {
		char key[32], value[128];
		int64_t ts = span_ms ? first_ms + span_ms * i / count : 0;
		int account = (int)(next_random(&seed) % ACCOUNTS);
		int cents = (int)(next_random(&seed) % CENTS_RANGE);
		const char *country = countries[next_random(&seed) % 32];
		int key_len = snprintf(key, sizeof(key), "acct-%d", account);
		int value_len = snprintf(value, sizeof(value),
					 "{\"account\": \"%s\", \"amount\": %d.%02d, "
					 "\"country\": \"%s\"}",
					 key, cents / 100, cents % 100, country);

		if (cents > LARGE_CENTS)
			large++;
		if (produce_one(rk, key, (size_t)key_len, value, (size_t)value_len, ts))
			goto out;
	}

	if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
		fprintf(stderr, "load: %d messages not delivered after 60 s\n",
			rd_kafka_outq_len(rk));
		goto out;
	}
	if (delivery_errors) {
		fprintf(stderr, "load: %ld of %ld messages failed delivery\n", delivery_errors,
			count);
		goto out;
	}
	printf("%ld\n", large);
	rc = 0;
out:
	if (produce_rkt)
		rd_kafka_topic_destroy(produce_rkt);
	rd_kafka_destroy(rk);
	return rc;
}
