/*
 * The Kafka side shared by the benchmark's baselines (raw_pipe.c, limit_pipe.c): one
 * consumer taking batches of `withdrawals` from its queue, one producer to `large` polled
 * for delivery reports, the timed interval and the result line. Each baseline supplies
 * only how it turns one consumed value into an output, so the baselines differ in that
 * and in nothing else.
 */
#ifndef BENCH_KAFKA_PIPE_H
#define BENCH_KAFKA_PIPE_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#define IN_TOPIC "withdrawals"
#define OUT_TOPIC "large"

struct pipe;

/*
 * One baseline: its program name (prefixed to its messages), the label its result line
 * starts with, its consumer group (each baseline reads the topic from its start) and its
 * per-value work. process() returns 0, or a negative errno that stops the run; a
 * malformed value is reported with pipe_skip() and is not an error.
 */
struct pipe_kind {
	const char *name;
	const char *label;
	const char *group;
	int (*process)(struct pipe *p, const rd_kafka_message_t *msg);
};

/* Produces one output keyed by key to `large` (both copied). 0 or -EIO. */
int pipe_produce(struct pipe *p, const char *key, size_t key_len, const char *value,
		 size_t value_len);

/* Counts a malformed value; the first one is logged with its partition and offset. */
void pipe_skip(struct pipe *p, const rd_kafka_message_t *msg);

/*
 * Parses `-b HOST:PORT -n EVENTS -e EXPECTED_OUTPUTS`, runs the pipe until EVENTS values
 * were consumed and every output was delivered, and prints
 * `LABEL events=N outputs=M elapsed=S`. Returns main()'s exit status.
 */
int pipe_main(const struct pipe_kind *kind, int argc, char **argv);

#endif
