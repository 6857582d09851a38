/*
 * Topics on a real Kafka cluster. The embedded broker has no CreateTopics (broker.c creates
 * topics there through the mock API); a real cluster gets an admin request with everything
 * a topic needs to behave as faustc expects: the declared partition count (tables and
 * group_by rely on co-partitioning), a replication factor (by default min(3, brokers), so
 * a three-broker cluster survives the loss of one broker), and a cleanup policy that
 * matches how the topic is read: a changelog is compacted (a restore needs the last value
 * of every key, forever), a repartition topic deletes (each record is read once by the
 * agent behind the group_by; Kafka Streams does the same).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "worker.h"

enum ag__topic_role
ag__topic_role(const struct ag_app *app, const struct ag_topic *t)
{
	for (size_t i = 0; i < app->ntables; i++) {
		if (app->tables[i]->changelog == t)
			return AG__TOPIC_CHANGELOG;
	}
	if (t == app->workers_topic)
		return AG__TOPIC_CHANGELOG; /* the last address per worker, kept like a changelog */
	for (size_t i = 0; i < app->nagents; i++) {
		const struct ag_agent *a = app->agents[i];
		for (size_t k = 0; k < a->nstages; k++) {
			if (a->stages[k].kind == AG__STAGE_GROUP_BY && a->stages[k].topic == t)
				return AG__TOPIC_REPARTITION;
		}
	}
	return AG__TOPIC_PLAIN;
}

int
ag__replication_factor(const struct ag_app *app, int brokers)
{
	if (app->replication_factor > 0)
		return app->replication_factor;
	return brokers < 1 ? 1 : brokers < 3 ? brokers : 3;
}

static const rd_kafka_metadata_topic_t *
listed(const struct rd_kafka_metadata *md, const char *name)
{
	for (int i = 0; i < md->topic_cnt; i++) {
		if (strcmp(md->topics[i].topic, name) == 0 &&
		    md->topics[i].err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
			return &md->topics[i];
	}
	return NULL;
}

static int
new_topic(rd_kafka_NewTopic_t **out, const struct ag_app *app, const struct ag_topic *t,
	  int replicas, char *err, size_t errlen)
{
	char why[256];
	rd_kafka_NewTopic_t *nt =
		rd_kafka_NewTopic_new(t->name, t->partitions, replicas, why, sizeof(why));
	if (!nt) {
		snprintf(err, errlen, "cannot create topic %s (%d partitions, %d replicas): %s",
			 t->name, t->partitions, replicas, why);
		return AG_ECONFIG;
	}
	const char *policy = NULL;
	switch (ag__topic_role(app, t)) {
	case AG__TOPIC_CHANGELOG:
		policy = "compact";
		break;
	case AG__TOPIC_REPARTITION:
		policy = "delete";
		break;
	case AG__TOPIC_PLAIN:
		break;
	}
	if (policy && rd_kafka_NewTopic_set_config(nt, "cleanup.policy", policy) != 0) {
		rd_kafka_NewTopic_destroy(nt);
		return -ENOMEM;
	}
	*out = nt;
	return 0;
}

/* Checks one answer of CreateTopics; an existing topic is fine (the caller verifies it). */
static int
check_results(rd_kafka_event_t *ev, const char *bootstrap, int replicas, char *err, size_t errlen)
{
	size_t cnt;
	const rd_kafka_topic_result_t **res =
		rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
	for (size_t i = 0; i < cnt; i++) {
		rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
		if (!e || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
			continue;
		const char *hint = e == RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR
					   ? "; set the option topic_replication_factor to at "
					     "most the number of brokers"
					   : "";
		snprintf(err, errlen, "cannot create topic %s on %s (%d replicas): %s%s",
			 rd_kafka_topic_result_name(res[i]), bootstrap, replicas,
			 rd_kafka_topic_result_error_string(res[i]), hint);
		return AG_EKAFKA;
	}
	return 0;
}

int
ag__admin_create_topics(rd_kafka_t *rk, const struct ag_app *app,
			const struct rd_kafka_metadata *md, const char *bootstrap, int timeout_ms,
			char *err, size_t errlen)
{
	size_t cap = app->ntopics ? app->ntopics : 1;
	rd_kafka_NewTopic_t **nt = calloc(cap, sizeof(*nt));
	const struct ag_topic **which = calloc(cap, sizeof(*which));
	if (!nt || !which) {
		free(nt);
		free(which);
		return -ENOMEM;
	}
	int replicas = ag__replication_factor(app, md->broker_cnt);
	size_t n = 0;
	int rc = 0;
	for (size_t i = 0; i < app->ntopics && rc == 0; i++) {
		if (!listed(md, app->topics[i]->name) &&
		    (rc = new_topic(&nt[n], app, app->topics[i], replicas, err, errlen)) == 0)
			which[n++] = app->topics[i];
	}
	if (rc < 0 || n == 0)
		goto out;
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_AdminOptions_t *opts =
		rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	if (!q || !opts) {
		if (q)
			rd_kafka_queue_destroy(q);
		if (opts)
			rd_kafka_AdminOptions_destroy(opts);
		rc = -ENOMEM;
		goto out;
	}
	char why[256];
	rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, why, sizeof(why));
	rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, why, sizeof(why));
	rd_kafka_CreateTopics(rk, nt, n, opts, q);
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
	if (!ev) {
		snprintf(err, errlen, "no answer from the broker at %s to CreateTopics", bootstrap);
		rc = AG_ENOBROKER;
	} else if (rd_kafka_event_error(ev)) {
		snprintf(err, errlen, "cannot create topics on %s: %s", bootstrap,
			 rd_kafka_event_error_string(ev));
		rc = AG_EKAFKA;
	} else {
		rc = check_results(ev, bootstrap, replicas, err, errlen);
	}
	if (rc == 0) {
		for (size_t i = 0; i < n; i++) {
			enum ag__topic_role role = ag__topic_role(app, which[i]);
			ag__log(app, AG_LOG_INFO, "created topic %s (%d partitions, %d replicas%s)",
				which[i]->name, which[i]->partitions, replicas,
				role == AG__TOPIC_CHANGELOG     ? ", compacted"
				: role == AG__TOPIC_REPARTITION ? ", cleanup.policy=delete"
								: "");
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_AdminOptions_destroy(opts);
	rd_kafka_queue_destroy(q);
out:
	for (size_t i = 0; i < n; i++)
		rd_kafka_NewTopic_destroy(nt[i]);
	free(nt);
	free(which);
	return rc;
}

int
ag__admin_wait_leaders(rd_kafka_t *rk, const struct ag_app *app, const char *bootstrap,
		       int timeout_ms, char *err, size_t errlen)
{
	uint64_t end = ag__now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (int attempt = 0;; attempt++) {
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
		if (!l)
			return -ENOMEM;
		for (size_t i = 0; i < app->ntopics; i++) {
			for (int p = 0; p < app->topics[i]->partitions; p++)
				rd_kafka_topic_partition_list_add(l, app->topics[i]->name, p)
					->offset = RD_KAFKA_OFFSET_END; /* the latest offset */
		}
		if (l->cnt == 0) { /* no topics (`faustc broker` without an app) */
			rd_kafka_topic_partition_list_destroy(l);
			return 0;
		}
		/* offsets_for_times() is a ListOffsets per leader, all partitions at once. */
		rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, l, 5000);
		const rd_kafka_topic_partition_t *bad = NULL;
		for (int i = 0; i < l->cnt && !e && !bad; i++) {
			if (l->elems[i].err)
				bad = &l->elems[i];
		}
		int done = !e && !bad;
		if (!done && ag__now_ns() >= end) {
			if (bad)
				snprintf(err, errlen,
					 "partition %s[%d] on %s has no leader that answers (%s) "
					 "after %d ms; check the cluster's health",
					 bad->topic, (int)bad->partition, bootstrap,
					 rd_kafka_err2str(bad->err), timeout_ms);
			else
				snprintf(err, errlen,
					 "the leaders of the app's topics on %s do not answer (%s) "
					 "after %d ms",
					 bootstrap, rd_kafka_err2str(e), timeout_ms);
		} else if (!done && attempt == 10) {
			ag__log(app, AG_LOG_INFO, "waiting for the leaders of %s[%d] on %s (%s)",
				bad ? bad->topic : "the app's topics",
				bad ? (int)bad->partition : -1, bootstrap,
				rd_kafka_err2str(bad ? bad->err : e));
		}
		rd_kafka_topic_partition_list_destroy(l);
		if (done)
			return 0;
		if (ag__now_ns() >= end)
			return AG_ETOPIC;
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/* Reads the answers to earlier DeleteRecords requests; logs what failed. */
static void
purge_answers(struct ag__worker *w)
{
	rd_kafka_event_t *ev;
	while (w->purge_q && (ev = rd_kafka_queue_poll(w->purge_q, 0))) {
		const rd_kafka_DeleteRecords_result_t *res =
			rd_kafka_event_DeleteRecords_result(ev);
		const rd_kafka_topic_partition_list_t *l =
			res ? rd_kafka_DeleteRecords_result_offsets(res) : NULL;
		if (rd_kafka_event_error(ev))
			ag__log(w->app, AG_LOG_WARN, "deleting consumed repartition records: %s",
				rd_kafka_event_error_string(ev));
		for (int i = 0; l && i < l->cnt; i++) {
			if (l->elems[i].err)
				ag__log(w->app, AG_LOG_WARN,
					"deleting consumed records of %s[%d]: %s",
					l->elems[i].topic, (int)l->elems[i].partition,
					rd_kafka_err2str(l->elems[i].err));
		}
		rd_kafka_event_destroy(ev);
	}
}

void
ag__admin_purge(struct ag__worker *w, const rd_kafka_topic_partition_list_t *committed)
{
	purge_answers(w);
	uint64_t now = ag__now_ns();
	if (now < w->purged_ns + (uint64_t)AG__PURGE_MS * 1000000u)
		return;
	rd_kafka_topic_partition_list_t *l = NULL;
	for (int i = 0; i < committed->cnt; i++) {
		const rd_kafka_topic_partition_t *e = &committed->elems[i];
		const struct ag_topic *t = ag_app_find_topic(w->app, e->topic);
		if (e->err || e->offset <= 0 || !t ||
		    ag__topic_role(w->app, t) != AG__TOPIC_REPARTITION)
			continue;
		if (!l && !(l = rd_kafka_topic_partition_list_new(committed->cnt)))
			return;
		rd_kafka_topic_partition_list_add(l, e->topic, e->partition)->offset = e->offset;
	}
	if (!l)
		return;
	if (!w->purge_q)
		w->purge_q = rd_kafka_queue_new(w->producer);
	rd_kafka_DeleteRecords_t *del = rd_kafka_DeleteRecords_new(l);
	rd_kafka_topic_partition_list_destroy(l);
	if (!w->purge_q || !del) {
		if (del)
			rd_kafka_DeleteRecords_destroy(del);
		return;
	}
	rd_kafka_DeleteRecords(w->producer, &del, 1, NULL, w->purge_q);
	rd_kafka_DeleteRecords_destroy(del);
	w->purged_ns = now;
}

void
ag__admin_purge_free(struct ag__worker *w)
{
	if (w->purge_q)
		rd_kafka_queue_destroy(w->purge_q);
	w->purge_q = NULL;
}
