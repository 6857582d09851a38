/*
 * Topics on a real Kafka cluster (FAUSTC_TEST_KAFKA=HOST:PORT; skipped without it): created
 * through the admin API with the declared partition counts, min(3, brokers) replicas or the
 * topic_replication_factor option, changelogs compacted and repartition topics deleting;
 * an existing topic with another partition count is an error naming both counts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "internal.h"

static int
body(struct ag_stream *s, void *userdata)
{
	(void)s;
	(void)userdata;
	return 0;
}

static int
by_value(struct ag_event *ev, struct ag_bytes *key, void *userdata)
{
	(void)userdata;
	*key = ag_event_value(ev);
	return 0;
}

static int
declare(struct ag_app *app, const char *id, int in_partitions)
{
	struct ag_topic *in, *rep;
	struct ag_agent *a;
	TRY(ag_app_set_id(app, id));
	char url[512], dir[300];
	snprintf(url, sizeof(url), "kafka://%s", h_kafka);
	path_in(dir, sizeof(dir), id);
	TRY(ag_app_set_option(app, "broker", url));
	TRY(ag_app_set_option(app, "datadir", dir));
	TRY(ag_app_set_option(app, "loglevel", "warn"));
	struct ag_topic_opts o = {.partitions = in_partitions};
	TRY(ag_app_topic(app, "kt-in", &o, &in));
	TRY(ag_app_agent(app, "count", in, body, NULL, &a));
	TRY(ag_agent_group_by(a, "v", by_value, NULL, 0, &rep));
	TRY(ag_app_table(app, "counts", rep, NULL, NULL));
	return 0;
}

/* Opens the broker and makes the app's topics. Returns ensure_topics' result. */
static int
ensure(struct ag_app *app, char *err, size_t errlen)
{
	struct ag__broker b;
	int rc = ag__broker_open(&b, app, 0, err, errlen);
	if (rc == 0)
		rc = ag__broker_ensure_topics(&b, app, err, errlen);
	ag__broker_close(&b);
	return rc;
}

/* Partitions and replicas of a topic, from metadata; -1 when missing. */
static void
shape(rd_kafka_t *rk, const char *topic, int *partitions, int *replicas, int *brokers)
{
	const struct rd_kafka_metadata *md;
	*partitions = *replicas = -1;
	if (rd_kafka_metadata(rk, 1, NULL, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	*brokers = md->broker_cnt;
	for (int i = 0; i < md->topic_cnt; i++) {
		if (strcmp(md->topics[i].topic, topic) != 0 || md->topics[i].err)
			continue;
		*partitions = md->topics[i].partition_cnt;
		*replicas =
			md->topics[i].partition_cnt ? md->topics[i].partitions[0].replica_cnt : 0;
	}
	rd_kafka_metadata_destroy(md);
}

/* The topic's cleanup.policy as the broker describes it; "" when it cannot be had. */
static void
cleanup_policy(rd_kafka_t *rk, const char *topic, char *out, size_t cap)
{
	snprintf(out, cap, "%s", "");
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_ConfigResource_t *res =
		rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
	rd_kafka_DescribeConfigs(rk, &res, 1, NULL, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 20000);
	if (ev && !rd_kafka_event_error(ev)) {
		size_t n, nc;
		const rd_kafka_ConfigResource_t **rs = rd_kafka_DescribeConfigs_result_resources(
			rd_kafka_event_DescribeConfigs_result(ev), &n);
		for (size_t i = 0; i < n; i++) {
			const rd_kafka_ConfigEntry_t **cs =
				rd_kafka_ConfigResource_configs(rs[i], &nc);
			for (size_t k = 0; k < nc; k++) {
				if (strcmp(rd_kafka_ConfigEntry_name(cs[k]), "cleanup.policy") == 0)
					snprintf(out, cap, "%s", rd_kafka_ConfigEntry_value(cs[k]));
			}
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_ConfigResource_destroy(res);
	rd_kafka_queue_destroy(q);
}

int
main(void)
{
	if (h_tmp_init("kafka") < 0)
		return 99;
	if (!h_kafka) {
		printf("1..0 # SKIP set FAUSTC_TEST_KAFKA=HOST:PORT to run on a Kafka cluster\n");
		h_tmp_cleanup();
		return 0;
	}
	h_kafka_reset();
	char err[1024];
	struct ag_app *app;
	if (ag_app_new(&app) < 0 || declare(app, "kt", 6) < 0)
		return 99;
	int rc = ensure(app, err, sizeof(err));
	ok_int_eq(rc, 0, "the app's topics are created on Kafka (%s)", rc ? err : "");
	ag_app_free(app);

	rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, h_kafka, NULL);
	int parts, replicas, brokers = 0;
	static const char *const names[] = {"kt-in", "kt-count-v-repartition",
					    "kt-counts-changelog"};
	for (size_t i = 0; i < 3; i++) {
		shape(rk, names[i], &parts, &replicas, &brokers);
		int want = brokers < 3 ? brokers : 3;
		ok(parts == 6 && replicas == want,
		   "%s: 6 partitions (%d), min(3, %d brokers) replicas (%d)", names[i], parts,
		   brokers, replicas);
	}
	char policy[64];
	cleanup_policy(rk, "kt-counts-changelog", policy, sizeof(policy));
	ok_str_eq(policy, "compact", "the changelog is compacted");
	cleanup_policy(rk, "kt-count-v-repartition", policy, sizeof(policy));
	ok_str_eq(policy, "delete", "the repartition topic deletes");
	rd_kafka_destroy(rk);

	/* Declared with 4 partitions where kt-in has 6. */
	if (ag_app_new(&app) < 0 || declare(app, "kt", 4) < 0)
		return 99;
	rc = ensure(app, err, sizeof(err));
	ok_int_eq(rc, AG_ETOPIC, "another partition count is an error");
	ok(strstr(err, "topic kt-in exists with 6 partitions but the app declares 4") != NULL,
	   "naming both counts: %s", err);
	ag_app_free(app);

	/* More replicas than brokers: the broker's refusal, with what to do. */
	if (ag_app_new(&app) < 0 || declare(app, "kr", 2) < 0 ||
	    ag_app_set_option(app, "topic_replication_factor", "4") < 0)
		return 99;
	rc = ensure(app, err, sizeof(err));
	ok_int_eq(rc, AG_EKAFKA, "topic_replication_factor above the broker count is refused");
	ok(strstr(err, "4 replicas") && strstr(err, "topic_replication_factor"), "saying so: %s",
	   err);
	ag_app_free(app);
	ok_int_eq(ag_app_new(&app), 0, "an app");
	ok_int_eq(ag_app_set_option(app, "topic_replication_factor", "x"), -EINVAL,
		  "topic_replication_factor must be a number");
	ok_int_eq(ag_app_set_option(app, "worker_id", "a b"), -EINVAL,
		  "worker_id takes Kafka's group.instance.id characters only");
	ok_int_eq(ag_app_set_option(app, "worker_id", "w-1.a_b"), 0, "a valid worker_id");
	ag_app_free(app);
	h_tmp_cleanup();
	return tap_done();
}
