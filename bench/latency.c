/*
 * End-to-end latency of the stateless pipe (bench/latency.sh): produces withdrawals to
 * `withdrawals` at a fixed rate, each with amount > 100 so each one makes one output, and
 * consumes `large`, where the worker's pipe (pipe_app.so) sends them. The key carries a
 * sequence number, so every output is matched to the time its input was produced.
 *
 * Latency = the time this program receives the output from the broker minus the time it
 * handed the input to its producer (both CLOCK_MONOTONIC in this process): produce time to
 * output delivery, plus the consumer's fetch wait (fetch.wait.max.ms=1), so an upper
 * bound. Before measuring it sends warm-up values (100 a second) until outputs came back
 * on every partition of `large`, so the group joins are not measured, and then runs at the
 * rate for a ramp of -w seconds (default 2) whose outputs are not counted either: the
 * clients' batches and a JVM broker's compiled code settle at the new rate in the first
 * second (on Apache Kafka that second alone had outputs 100-200 ms late).
 *
 * With LATENCY_DUMP=FILE it also writes one line per output: its input's send time (s since
 * the measured phase started) and its latency in ms, to see when the slow ones were sent.
 *
 * Prints `latency events=N received=M rate=R p50_ms=.. p99_ms=.. p999_ms=.. max_ms=..`.
 * Exit status 1 when an output is missing after 30 s or a client fails.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define IN_TOPIC "withdrawals"
#define OUT_TOPIC "large"
#define OUT_PARTITIONS 8 /* of `large`, as pipe_app declares it */
#define DRAIN_SECONDS 30.0

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static rd_kafka_t *
client(rd_kafka_type_t type, const char *bootstrap, const char *const *conf_kv)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char err[256];

	if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) != 0)
		goto fail;
	for (; conf_kv[0]; conf_kv += 2)
		if (rd_kafka_conf_set(conf, conf_kv[0], conf_kv[1], err, sizeof(err)) != 0)
			goto fail;
	rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
	if (rk)
		return rk;
	fprintf(stderr, "latency: %s\n", err);
	return NULL;
fail:
	fprintf(stderr, "latency: %s\n", err);
	rd_kafka_conf_destroy(conf);
	return NULL;
}

static int
produce(rd_kafka_t *p, const char *prefix, long seq)
{
	char key[32], value[128];
	int kl = snprintf(key, sizeof(key), "%s-%09ld", prefix, seq);
	int vl = snprintf(value, sizeof(value),
			  "{\"account\": \"%s\", \"amount\": 150.25, \"country\": \"US\"}", key);

	rd_kafka_vu_t vu[] = {
		{.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = IN_TOPIC},
		{.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY},
		{.vtype = RD_KAFKA_VTYPE_KEY, .u.mem = {key, (size_t)kl}},
		{.vtype = RD_KAFKA_VTYPE_VALUE, .u.mem = {value, (size_t)vl}},
	};

	for (;;) {
		rd_kafka_error_t *e = rd_kafka_produceva(p, vu, sizeof(vu) / sizeof(vu[0]));
		rd_kafka_resp_err_t err = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
		if (e)
			rd_kafka_error_destroy(e);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
			return 0;
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			fprintf(stderr, "latency: produce: %s\n", rd_kafka_err2str(err));
			return -EIO;
		}
		rd_kafka_poll(p, 1);
	}
}

/* The sequence number of an output whose key starts with prefix, or -1. */
static long
seq_of(const rd_kafka_message_t *m, const char *prefix)
{
	size_t n = strlen(prefix);
	char buf[32];

	if (m->err || m->key_len <= n + 1 || m->key_len >= sizeof(buf) ||
	    memcmp(m->key, prefix, n) != 0 || ((const char *)m->key)[n] != '-')
		return -1;
	memcpy(buf, (const char *)m->key + n + 1, m->key_len - n - 1);
	buf[m->key_len - n - 1] = '\0';
	return strtol(buf, NULL, 10);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	const char *bootstrap = NULL;
	long n = 0;
	double rate = 0;
	const char *linger = "5", *fetch_wait = "1";
	double ramp_secs = 2.0;
	int opt;

	while ((opt = getopt(argc, argv, "b:f:l:n:r:w:")) != -1) {
		if (opt == 'b')
			bootstrap = optarg;
		else if (opt == 'f')
			fetch_wait = optarg;
		else if (opt == 'l')
			linger = optarg;
		else if (opt == 'n')
			n = strtol(optarg, NULL, 10);
		else if (opt == 'r')
			rate = strtod(optarg, NULL);
		else if (opt == 'w')
			ramp_secs = strtod(optarg, NULL);
		else
			break;
	}
	if (!bootstrap || n <= 0 || rate <= 0 || !(ramp_secs >= 0) || optind != argc) {
		fprintf(stderr, "usage: latency -b HOST:PORT -n EVENTS -r EVENTS_PER_SECOND "
				"[-f FETCH_WAIT_MS] [-l LINGER_MS] [-w RAMP_SECONDS]\n");
		return 2;
	}
	/* Keys and group of this run only: a Kafka topic may hold an earlier run's outputs. */
	char group[64], warm_prefix[16], lat_prefix[16];
	snprintf(group, sizeof(group), "bench-latency-%ld", (long)getpid());
	snprintf(warm_prefix, sizeof(warm_prefix), "warm%ld", (long)getpid());
	snprintf(lat_prefix, sizeof(lat_prefix), "lat%ld", (long)getpid());
	const char *pconf[] = {"linger.ms", linger, "partitioner", "murmur2_random", NULL};
	const char *cconf[] = {"group.id",
			       group,
			       "auto.offset.reset",
			       "earliest",
			       "fetch.wait.max.ms",
			       fetch_wait,
			       "enable.auto.commit",
			       "false",
			       NULL};
	rd_kafka_t *p = client(RD_KAFKA_PRODUCER, bootstrap, pconf);
	rd_kafka_t *c = client(RD_KAFKA_CONSUMER, bootstrap, cconf);
	/* Sequence numbers below ramp are the ramp's, n more are measured. */
	long ramp = (long)(ramp_secs * rate), total = ramp + n;
	double *sent_at = calloc((size_t)total, sizeof(double));
	double *lat = calloc((size_t)total, sizeof(double));
	int rc = 1;
	if (!p || !c || !sent_at || !lat)
		goto out;
	rd_kafka_poll_set_consumer(c);
	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, OUT_TOPIC, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t err = rd_kafka_subscribe(c, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err) {
		fprintf(stderr, "latency: subscribe: %s\n", rd_kafka_err2str(err));
		goto out;
	}

	/*
	 * Warm-up: until the output of a warm-up value came back on every partition of
	 * `large` (the worker and this consumer have joined and fetch from all of them).
	 */
	double start = now(), next_warm = start;
	long warm = 0;
	unsigned seen = 0; /* partitions of `large` that returned a warm-up output */
	for (int back = 0; !back;) {
		if (now() - start > 120.0) {
			fprintf(stderr, "latency: no warm-up output within 120 s; is the worker "
					"running pipe_app.so on this broker?\n");
			goto out;
		}
		if (now() >= next_warm) {
			if (produce(p, warm_prefix, warm++) < 0)
				goto out;
			next_warm += 0.01;
		}
		rd_kafka_poll(p, 0);
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 10);
		if (m) {
			if (seq_of(m, warm_prefix) >= 0 && m->partition >= 0 && m->partition < 32)
				seen |= 1u << m->partition;
			back = seen == (1u << OUT_PARTITIONS) - 1;
			rd_kafka_message_destroy(m);
		}
	}

	/* Ramp, then measure: produce at the rate, consume as outputs arrive. */
	long sent = 0, received = 0;
	start = now();
	double done_at = 0;
	while (received < total) {
		double t = now();
		long due = (long)((t - start) * rate) + 1;
		if (due > total)
			due = total;
		while (sent < due) {
			sent_at[sent] = now();
			if (produce(p, lat_prefix, sent) < 0)
				goto out;
			sent++;
		}
		if (sent == total && done_at == 0)
			done_at = t;
		rd_kafka_poll(p, 0);
		rd_kafka_message_t *m;
		while ((m = rd_kafka_consumer_poll(c, 0))) {
			long s = seq_of(m, lat_prefix);
			if (s >= 0 && s < sent && lat[s] == 0) {
				lat[s] = now() - sent_at[s];
				received++;
			}
			rd_kafka_message_destroy(m);
		}
		if (done_at && now() - done_at > DRAIN_SECONDS)
			break;
		if (sent == due)
			usleep(50);
	}
	/* From here on only the measured events count: shift them to the front. */
	start = ramp < total ? sent_at[ramp] : start;
	received = 0;
	for (long i = 0; i < n; i++) {
		sent_at[i] = sent_at[ramp + i];
		lat[i] = lat[ramp + i];
		received += lat[i] > 0;
	}
	double produce_secs = (done_at ? done_at : now()) - start;
	/* LATENCY_DUMP=FILE: one line per output, "seconds_since_start latency_ms". */
	const char *dump = getenv("LATENCY_DUMP");
	FILE *df = dump && *dump ? fopen(dump, "w") : NULL;
	for (long i = 0; df && i < n; i++)
		if (lat[i] > 0)
			fprintf(df, "%.4f %.3f\n", sent_at[i] - start, lat[i] * 1e3);
	if (df)
		fclose(df);
	long got = 0;
	for (long i = 0; i < n; i++)
		if (lat[i] > 0)
			lat[got++] = lat[i];
	qsort(lat, (size_t)got, sizeof(double), cmp_double);
#define PCT(q) (got ? lat[(long)((double)(got - 1) * (q))] * 1e3 : 0.0)
	printf("latency events=%ld received=%ld rate=%.0f p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f "
	       "max_ms=%.2f\n",
	       n, received, produce_secs > 0 ? (double)n / produce_secs : 0.0, PCT(0.5), PCT(0.99),
	       PCT(0.999), got ? lat[got - 1] * 1e3 : 0.0);
	if (received < n)
		fprintf(stderr, "latency: %ld of %ld outputs missing after %.0f s\n", n - received,
			n, DRAIN_SECONDS);
	rc = received == n ? 0 : 1;
out:
	if (c) {
		rd_kafka_consumer_close(c);
		rd_kafka_destroy(c);
	}
	if (p) {
		rd_kafka_flush(p, 5000);
		rd_kafka_destroy(p);
	}
	free(sent_at);
	free(lat);
	return rc;
}
