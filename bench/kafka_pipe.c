/*
 * The Kafka loop of the benchmark's baselines (kafka_pipe.h): it consumes `withdrawals` in
 * batches from the consumer queue, hands each value to the baseline's process(), and
 * produces to `large` with a producer polled for delivery reports.
 *
 * Elapsed time runs from the first consumed message to the last delivery report, the
 * same interval the faustc worker reports, so the numbers compare.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "kafka_pipe.h"

/* Producer topic handle, destroyed before the producer. */
static rd_kafka_topic_t *produce_rkt;

/* The baseline's name, prefixed to every message. */
static const char *prog = "pipe";
#define BATCH 1000
#define STALL_SECONDS 60.0 /* give up when nothing moves for this long */

struct pipe {
	const struct pipe_kind *kind;
	rd_kafka_t *consumer;
	rd_kafka_t *producer;
	rd_kafka_queue_t *queue;
	long events; /* consumed */
	long produced; /* handed to the producer */
	long delivered; /* delivery reports without error */
	long failed; /* delivery reports with an error */
	int idempotent; /* -i: the producer as the worker's, enable.idempotence=true */
	long skipped; /* malformed values */
	double first; /* time of the first consumed message, 0 before */
	double last; /* time of the last delivery report */
	double progress; /* time of the last consumed message or delivery */
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	struct pipe *p = opaque;

	p->last = p->progress = now();
	if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		p->delivered++;
		return;
	}
	if (p->failed++ == 0)
		say("delivery to %s [%" PRId32 "] key %.*s failed: %s\n", OUT_TOPIC, msg->partition,
		    (int)msg->key_len, (const char *)msg->key, rd_kafka_err2str(msg->err));
}

static int
set_conf(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char err[256];

	if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) == RD_KAFKA_CONF_OK)
		return 0;
	say("%s=%s: %s\n", name, value, err);
	return -EINVAL;
}

static rd_kafka_t *
new_client(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
	char err[256];
	rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));

	if (!rk) {
		say("%s: %s\n", type == RD_KAFKA_CONSUMER ? "consumer" : "producer", err);
		rd_kafka_conf_destroy(conf);
	}
	return rk;
}

static int
open_consumer(struct pipe *p, const char *bootstrap)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_topic_partition_list_t *topics;
	rd_kafka_resp_err_t err;
	/* BENCH_APP_ID, as for the worker: a group of its own reads the topic from its start. */
	const char *group = getenv("BENCH_APP_ID");

	if (set_conf(conf, "bootstrap.servers", bootstrap) ||
	    set_conf(conf, "group.id", group && *group ? group : p->kind->group) ||
	    set_conf(conf, "auto.offset.reset", "earliest") ||
	    set_conf(conf, "enable.auto.commit", "true") ||
	    set_conf(conf, "fetch.wait.max.ms", "10") ||
	    set_conf(conf, "session.timeout.ms", "6000") ||
	    set_conf(conf, "heartbeat.interval.ms", "1000") ||
	    set_conf(conf, "topic.metadata.refresh.interval.ms", "1000")) {
		rd_kafka_conf_destroy(conf);
		return -EINVAL;
	}
	p->consumer = new_client(RD_KAFKA_CONSUMER, conf);
	if (!p->consumer)
		return -EINVAL;
	rd_kafka_poll_set_consumer(p->consumer);
	p->queue = rd_kafka_queue_get_consumer(p->consumer);

	topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, IN_TOPIC, RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(p->consumer, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err) {
		say("subscribe to %s: %s\n", IN_TOPIC, rd_kafka_err2str(err));
		return -EINVAL;
	}
	return 0;
}

static int
open_producer(struct pipe *p, const char *bootstrap)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	if (set_conf(conf, "bootstrap.servers", bootstrap) || set_conf(conf, "linger.ms", "5") ||
	    set_conf(conf, "partitioner", "murmur2_random") ||
	    set_conf(conf, "topic.metadata.refresh.interval.ms", "1000") ||
	    (p->idempotent && set_conf(conf, "enable.idempotence", "true"))) {
		rd_kafka_conf_destroy(conf);
		return -EINVAL;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_opaque(conf, p);
	p->producer = new_client(RD_KAFKA_PRODUCER, conf);
	return p->producer ? 0 : -EINVAL;
}

/*
 * Fetches the output topic's metadata before consuming starts. Without it the producer
 * looks `large` up on the first send, and on the mock that first lookup took up to ~0.9 s
 * of the timed interval in some runs and none in others: a start-up cost, not throughput.
 */
static int
warm_up(struct pipe *p)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->producer, OUT_TOPIC, NULL);
	rd_kafka_resp_err_t err;

	if (!rkt)
		return -ENOMEM;
	err = rd_kafka_metadata(p->producer, 0, rkt, &md, 10000);
	rd_kafka_topic_destroy(rkt);
	if (err) {
		say("metadata for %s: %s\n", OUT_TOPIC, rd_kafka_err2str(err));
		return -EIO;
	}
	rd_kafka_metadata_destroy(md);
	return 0;
}

int
pipe_produce(struct pipe *p, const char *key, size_t key_len, const char *value, size_t value_len)
{
	rd_kafka_resp_err_t err;

	for (;;) {
		if (!produce_rkt)
			produce_rkt = rd_kafka_topic_new(p->producer, OUT_TOPIC, NULL);
		err = RD_KAFKA_RESP_ERR_NO_ERROR;
		if (!produce_rkt ||
		    rd_kafka_produce(produce_rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
				     (void *)value, value_len, key, key_len, NULL) == -1)
			err = rd_kafka_last_error();
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		rd_kafka_poll(p->producer, 10);
	}
	if (err) {
		say("produce to %s key %.*s: %s\n", OUT_TOPIC, (int)key_len, key,
		    rd_kafka_err2str(err));
		return -EIO;
	}
	p->produced++;
	return 0;
}

static int
run(struct pipe *p, long want_events, long want_outputs)
{
	rd_kafka_message_t *msgs[BATCH];

	p->progress = now();
	while (p->events < want_events || p->delivered + p->failed < p->produced) {
		ssize_t n = 0;

		if (p->events < want_events) {
			n = rd_kafka_consume_batch_queue(p->queue, 100, msgs, BATCH);
			if (n < 0) {
				say("consume: %s\n", rd_kafka_err2str(rd_kafka_last_error()));
				return -EIO;
			}
		}
		if (n > 0)
			p->progress = now();
		for (ssize_t i = 0; i < n; i++) {
			rd_kafka_message_t *msg = msgs[i];
			int rc = 0;

			if (msg->err) {
				if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
					say("consumer: %s\n", rd_kafka_message_errstr(msg));
			} else if (p->events < want_events) {
				if (p->events++ == 0)
					p->first = now();
				rc = p->kind->process(p, msg);
			}
			rd_kafka_message_destroy(msg);
			if (rc) {
				while (++i < n)
					rd_kafka_message_destroy(msgs[i]);
				return rc;
			}
		}
		rd_kafka_poll(p->producer, p->events < want_events ? 0 : 10);
		if (p->failed) {
			say("%ld deliveries failed\n", p->failed);
			return -EIO;
		}
		if (now() - p->progress > STALL_SECONDS) {
			say("no progress for %.0f s: events=%ld/%ld produced=%ld "
			    "delivered=%ld/%ld\n",
			    STALL_SECONDS, p->events, want_events, p->produced, p->delivered,
			    want_outputs);
			return -ETIMEDOUT;
		}
	}
	if (p->produced != want_outputs)
		say("produced %ld outputs, expected %ld\n", p->produced, want_outputs);
	return 0;
}

void
pipe_skip(struct pipe *p, const rd_kafka_message_t *msg)
{
	if (p->skipped++ == 0)
		say("%s [%" PRId32 "] offset %" PRId64 ": malformed value skipped\n", IN_TOPIC,
		    msg->partition, msg->offset);
}

static void
usage(void)
{
	fprintf(stderr,
		"usage: %s -b HOST:PORT -n EVENTS -e EXPECTED_OUTPUTS [-i]\n"
		"  -i: an idempotent producer (enable.idempotence=true), as the faustc worker's\n"
		"environment: BENCH_APP_ID, the consumer group (default: the program's own)\n",
		prog);
}

int
pipe_main(const struct pipe_kind *kind, int argc, char **argv)
{
	struct pipe p = {.kind = kind};
	const char *bootstrap = NULL;
	long want_events = -1, want_outputs = -1;
	int opt, rc = 1;

	prog = kind->name;
	while ((opt = getopt(argc, argv, "b:n:e:i")) != -1) {
		switch (opt) {
		case 'i':
			p.idempotent = 1;
			break;
		case 'b':
			bootstrap = optarg;
			break;
		case 'n':
			want_events = strtol(optarg, NULL, 10);
			break;
		case 'e':
			want_outputs = strtol(optarg, NULL, 10);
			break;
		default:
			usage();
			return 2;
		}
	}
	if (!bootstrap || want_events <= 0 || want_outputs < 0 || optind != argc) {
		usage();
		return 2;
	}

	if (open_producer(&p, bootstrap) || warm_up(&p) || open_consumer(&p, bootstrap))
		goto out;
	if (run(&p, want_events, want_outputs))
		goto out;
	printf("%s events=%ld outputs=%ld elapsed=%.3f\n", kind->label, p.events, p.delivered,
	       p.last - p.first);
	if (p.skipped)
		say("%ld malformed values skipped\n", p.skipped);
	rc = p.produced == want_outputs ? 0 : 1;
out:
	if (p.queue)
		rd_kafka_queue_destroy(p.queue);
	if (p.consumer) {
		rd_kafka_consumer_close(p.consumer);
		rd_kafka_destroy(p.consumer);
	}
	if (p.producer) {
		rd_kafka_flush(p.producer, 5000);
		if (produce_rkt)
			rd_kafka_topic_destroy(produce_rkt);
		rd_kafka_destroy(p.producer);
	}
	return rc;
}
