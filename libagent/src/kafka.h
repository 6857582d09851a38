/* Kafka plumbing shared by the worker and the table restorer. Private. */
#ifndef AG_KAFKA_H
#define AG_KAFKA_H

#include "internal.h"

/*
 * Creates a client: the broker's client settings, then the `extra` properties, then the
 * app's kafka.* options (each wins over the ones before). Returns 0, AG_ECONFIG with
 * librdkafka's text in err.
 */
int ag__kafka_new(rd_kafka_t **out, rd_kafka_type_t type, struct ag__broker *b, struct ag_app *app,
		  const struct ag__kv *extra, size_t nextra, void *opaque, char *err,
		  size_t errlen);

/*
 * The worker's static group membership id (group.instance.id): the "worker_id" option, or
 * "<app_id>-<host>-<hash of the data dir's real path>", stable across restarts of the worker
 * of one data dir, different for each data dir. Returns 0, -ENAMETOOLONG.
 */
int ag__kafka_instance_id(const struct ag_app *app, char *buf, size_t cap);

/*
 * Whether a client of this type uses the librdkafka property `name`, by librdkafka's own
 * property table (its C/P column: consumer, producer, both). A producer given a consumer
 * property only warns (CONFWARN) and ignores it, so kafka.* options go to the clients that
 * use them. A name the table lacks counts as used (rd_kafka_conf_set then judges it).
 */
int ag__kafka_prop_applies(const char *name, rd_kafka_type_t type);

/*
 * A partition's first and next offsets (ListOffsets, earliest and latest), within
 * timeout_ms each. rd_kafka_query_watermark_offsets of librdkafka before 2.3.0 never
 * returns while the partition's leader is down (librdkafka issue #2588), which stopped a
 * worker for good when a broker died; rd_kafka_offsets_for_times keeps its timeout. Blocks:
 * call it off the loop. Returns librdkafka's error.
 */
rd_kafka_resp_err_t ag__kafka_watermarks(rd_kafka_t *rk, const char *topic, int32_t partition,
					 int64_t *lo, int64_t *hi, int timeout_ms);

/* rd_kafka_new that frees conf on failure. */
int ag__kafka_create(rd_kafka_t **out, rd_kafka_type_t type, rd_kafka_conf_t *conf, char *err,
		     size_t errlen);

/*
 * A non-blocking pipe librdkafka writes a byte to when q goes from empty to non-empty;
 * fds[0] is for the loop to watch. Returns 0 or -errno.
 */
int ag__queue_fd(rd_kafka_queue_t *q, int fds[2]);
void ag__queue_fd_drain(int fd);
void ag__queue_fd_close(rd_kafka_queue_t *q, int fds[2]);

/* Sets the worker's callbacks (errors, logs, deliveries, rebalances) on a client conf. */
int ag__worker_conf_hooks(rd_kafka_conf_t *conf, rd_kafka_type_t type);

#endif
