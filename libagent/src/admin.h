/*
 * Topics on a real Kafka cluster, through the admin API: creating the app's topics with
 * their partition count, replication factor and cleanup policy. Private.
 */
#ifndef AG_ADMIN_H
#define AG_ADMIN_H

#include "internal.h"

/* The cleanup policy a topic is created with: what its readers need of it. */
enum ag__topic_role {
	AG__TOPIC_PLAIN, /* the broker's defaults */
	AG__TOPIC_CHANGELOG, /* cleanup.policy=compact: the last value per key */
	AG__TOPIC_REPARTITION, /* cleanup.policy=delete: read once, then deletable */
};

/* What t is to the app (a table's changelog, a group_by's repartition topic, ...). */
enum ag__topic_role ag__topic_role(const struct ag_app *app, const struct ag_topic *t);

/*
 * The replication factor new topics get: the app's topic_replication_factor, or
 * min(3, brokers) when that is 0 (unset).
 */
int ag__replication_factor(const struct ag_app *app, int brokers);

/*
 * Creates, with CreateTopics on rk, every declared topic that md does not list: declared
 * partitions, ag__replication_factor() replicas, and the cleanup policy of its role. A
 * topic another client created meanwhile is not an error (the caller checks the counts
 * afterwards). Blocking, at most timeout_ms (+2 s): for start-up, before the loop runs.
 * Returns 0, AG_ENOBROKER (no answer), AG_EKAFKA (the broker refused: its reason and the
 * topic in err), AG_ECONFIG, -ENOMEM.
 */
int ag__admin_create_topics(rd_kafka_t *rk, const struct ag_app *app,
			    const struct rd_kafka_metadata *md, const char *bootstrap,
			    int timeout_ms, char *err, size_t errlen);

/*
 * Waits until every partition of the app's topics answers a ListOffsets at its leader: a
 * topic just created (or just re-created) is listed in metadata before its leaders serve
 * it, and a worker's first reads would fail with "Not leader for partition". Blocking, at
 * most timeout_ms: for start-up. Returns 0, AG_ETOPIC (naming a partition that never
 * answered, and why, in err), -ENOMEM.
 */
int ag__admin_wait_leaders(rd_kafka_t *rk, const struct ag_app *app, const char *bootstrap,
			   int timeout_ms, char *err, size_t errlen);

struct ag__worker;

/*
 * Repartition topics do not grow without bound (as in Kafka Streams): after a commit of
 * offsets of a repartition topic, the records below them are deleted with DeleteRecords,
 * at most once per AG__PURGE_MS per worker. Asynchronous: the answers are read (and
 * failures logged) at the next purge. Called on the loop, from the offset commit callback.
 */
#define AG__PURGE_MS 1000
void ag__admin_purge(struct ag__worker *w, const rd_kafka_topic_partition_list_t *committed);
void ag__admin_purge_free(struct ag__worker *w);

#endif
