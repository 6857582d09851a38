/*
 * A mock Kafka cluster that a test can steer: librdkafka's mock cluster hosted in a forked
 * child (so this process keeps no librdkafka threads and may fork workers), with the
 * topics of an app created up front, and a pipe of commands that make it slow or failing
 * (rd_kafka_mock_*: request errors, round-trip times, leaders, coordinators). Workers reach
 * it as `--broker mock://BOOTSTRAP`.
 *
 * Commands (one line each; the answer is "ok [N]" or "error ..."):
 *   leader TOPIC PARTITION BROKER     rd_kafka_mock_partition_set_leader
 *   coordinator GROUP BROKER          rd_kafka_mock_coordinator_set("group", ...)
 *   errors APIKEY COUNT ERR           COUNT requests of APIKEY fail with ERR (any broker)
 *   broker-errors BROKER APIKEY COUNT ERR
 *                                     the same, on one broker only
 *   stack BROKER APIKEY               answers "ok N": N of the broker's errors are left
 *   clear APIKEY                      forgets the cluster-wide errors of APIKEY
 *   rtt BROKER MS                     rd_kafka_mock_broker_set_rtt
 */
#ifndef FAUSTC_TESTS_MOCK_H
#define FAUSTC_TESTS_MOCK_H

#include <sys/types.h>

#include <agent/agent.h>

struct h_mock {
	pid_t pid;
	int cmd_fd, answer_fd;
	char bootstrap[256]; /* host:port,... */
	char url[300]; /* mock://bootstrap, for --broker */
};

/*
 * Starts a cluster of `brokers` brokers in a child (its log in h_tmp/NAME.log) and
 * creates every topic the apps of the NULL-terminated setups declare (internal ones
 * included; a topic that two declare keeps the first one's partition count). Returns 0,
 * -1.
 */
int h_mock_start(struct h_mock *m, const char *name, const ag_app_setup_fn *setups, int brokers);

/*
 * Sends one command (printf format) and waits for its answer. Returns -1 on "error" or a
 * dead child, else the number after "ok" (0 without one).
 */
long h_mock_cmd(struct h_mock *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Stops the child. Returns its wait status. */
int h_mock_stop(struct h_mock *m);

#endif
