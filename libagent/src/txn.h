/*
 * The transactional commit (processing_guarantee=exactly_once): one transactional producer
 * per worker, each commit cycle one Kafka transaction (EOS v2, KIP-447). The worker's commit
 * cycle (worker.c) decides when; this file holds the client settings and the librdkafka
 * transaction calls, and says what each outcome means. Private to the library.
 */
#ifndef AG_TXN_H
#define AG_TXN_H

#include <librdkafka/rdkafka.h>

#include "internal.h"

struct ag__worker;

/* Room ag__txn_conf needs in the caller's property list. */
#define AG__TXN_CONF_MAX 2

/*
 * Appends the exactly-once settings of a client of type `type` to kv (at most
 * AG__TXN_CONF_MAX entries; the strings live in w or are literals): the producer's
 * transactional.id, read_committed for consumers. Nothing with at_least_once. Returns the
 * number of entries appended.
 */
size_t ag__txn_conf(struct ag__worker *w, rd_kafka_type_t type, struct ag__kv *kv);

/*
 * Refuses exactly_once on a broker that does not enforce transactions (the embedded or a
 * `faustc broker` mock cluster): logs what to do and returns AG_ECONFIG; 0 otherwise.
 */
int ag__txn_check_broker(struct ag__worker *w);

/*
 * init_transactions (fences an earlier incarnation of this worker's transactional.id and
 * aborts what it left open) and begins the first transaction. Blocks the loop for up to
 * 60 s, once at start-up. Returns 0, AG_EKAFKA (logged).
 */
int ag__txn_open(struct ag__worker *w);

enum ag__txn_outcome {
	AG__TXN_COMMITTED = 0,
	AG__TXN_ABORTED, /* nothing of the cycle is visible; the caller rewinds */
	AG__TXN_FATAL, /* fenced or broken: the worker must stop */
};

/*
 * Ends the open transaction: with offs (may be empty) sent in it along with the consumer
 * group metadata, then committed; or aborted right away when `abort_it` (a delivery of the
 * cycle failed). Begins the next transaction unless fatal. Logs, counts
 * (w->txn_commits, txn_aborts) and returns what happened.
 */
enum ag__txn_outcome ag__txn_end(struct ag__worker *w, rd_kafka_topic_partition_list_t *offs,
				 int abort_it);

/*
 * The end of an exactly_once commit cycle whose deliveries are done: commits the
 * transaction with offs (or aborts it when a delivery failed) unless nothing is due; after
 * a commit writes the cycle's table entries to LMDB; after an abort sends every assigned
 * partition back to its committed offset; after a fatal error stops the worker. offs stays
 * the caller's.
 */
void ag__txn_cycle_end(struct ag__worker *w, rd_kafka_topic_partition_list_t *offs);

#endif
