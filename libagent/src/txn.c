/*
 * The transactional commit: processing_guarantee=exactly_once.
 *
 * Each worker has one transactional producer (Kafka's EOS v2, KIP-447) whose
 * transactional.id is stable per worker (app id + worker id): a restarted worker's
 * init_transactions fences its previous incarnation and aborts what that one left open.
 * Everything the worker produces between two commit cycles (sink values, ag_send,
 * on_close sends, forwards to repartition and through topics, changelog records) belongs to
 * one transaction; the cycle adds the consumer offsets with the consumer's group metadata
 * (so the group coordinator refuses them from a member that lost its partitions: a zombie
 * is fenced by its generation) and commits. Consumers read read_committed, so a reader sees
 * a cycle's outputs only once its offsets are committed with them, and never an aborted
 * cycle's.
 *
 * The worker (worker.c) holds agents and timers at their next safe point before it takes
 * the offsets (no event half processed, so every output in the transaction belongs to an
 * event whose offset is in it), and writes LMDB only after the commit (so the local table
 * state never holds an aborted cycle). The librdkafka transaction calls block; they run on
 * the loop while the agents are held anyway, with bounded timeouts, and a timed-out call is
 * retried as librdkafka allows.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "channel.h"
#include "kafka.h"
#include "txn.h"
#include "worker.h"

/* Each blocking transaction call waits at most this long per attempt. */
#define TXN_CALL_MS 30000
/* Attempts of a call that timed out (retriable) before the worker gives up on it. */
#define TXN_ATTEMPTS 4

size_t
ag__txn_conf(struct ag__worker *w, rd_kafka_type_t type, struct ag__kv *kv)
{
	if (!w->app->exactly_once)
		return 0;
	if (type == RD_KAFKA_CONSUMER) {
		kv[0] = (struct ag__kv){"isolation.level", "read_committed"};
		return 1;
	}
	kv[0] = (struct ag__kv){"transactional.id", w->txn_id};
	/* The broker aborts a transaction left open longer (a stopped worker's). */
	kv[1] = (struct ag__kv){"transaction.timeout.ms", "60000"};
	return 2;
}

int
ag__txn_check_broker(struct ag__worker *w)
{
	struct ag_app *app = w->app;
	if (!app->exactly_once)
		return 0;
	if (w->broker.kind != AG__BROKER_KAFKA) {
		ag__log(app, AG_LOG_ERROR,
			"processing_guarantee=exactly_once needs a real Kafka broker: the embedded "
			"broker (librdkafka's mock cluster) accepts transactions but does not "
			"enforce "
			"them, so exactly-once cannot be promised on it. Start Apache Kafka "
			"(scripts/kafka.sh start prints its bootstrap) and pass --broker "
			"kafka://HOST:PORT, or run with --processing-guarantee at_least_once");
		return AG_ECONFIG;
	}
	/* Stable per worker: the next incarnation fences this one. */
	char inst[256];
	int rc = ag__kafka_instance_id(app, inst, sizeof(inst));
	if (rc < 0)
		return rc;
	int n = app->worker_id ? snprintf(w->txn_id, sizeof(w->txn_id), "%s-%s", app->id, inst)
			       : snprintf(w->txn_id, sizeof(w->txn_id), "%s", inst);
	if (n < 0 || (size_t)n >= sizeof(w->txn_id))
		return -ENAMETOOLONG;
	return 0;
}

/* Logs a transaction error with what it means. Returns the outcome it calls for. */
static enum ag__txn_outcome
txn_error(struct ag__worker *w, const char *what, rd_kafka_error_t *e)
{
	enum ag__txn_outcome o = AG__TXN_ABORTED;
	if (rd_kafka_error_is_fatal(e) || rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__FENCED ||
	    rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
	    rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH) {
		o = AG__TXN_FATAL;
		w->txn_fenced++;
		ag__log(w->app, AG_LOG_ERROR,
			"%s failed for good: %s. This worker's transactional producer (%s) was "
			"fenced "
			"or broke: another worker with the same worker id took over, or this one "
			"was "
			"paused longer than transaction.timeout.ms. Nothing it produced since its "
			"last commit is visible to read_committed readers; it stops consuming and "
			"exits (restart it to rejoin the group)",
			what, rd_kafka_error_string(e), w->txn_id);
	} else {
		ag__log(w->app, AG_LOG_WARN,
			"%s failed: %s; the transaction is aborted (nothing of this cycle becomes "
			"visible), every assigned partition goes back to its committed offset and "
			"the events are processed again",
			what, rd_kafka_error_string(e));
	}
	rd_kafka_error_destroy(e);
	return o;
}

/* Runs a blocking transaction call, again while it times out retriably. */
static rd_kafka_error_t *
retry(struct ag__worker *w, const char *what,
      rd_kafka_error_t *(*call)(struct ag__worker *w, void *arg), void *arg)
{
	rd_kafka_error_t *e = NULL;
	for (int i = 0; i < TXN_ATTEMPTS; i++) {
		if (e)
			rd_kafka_error_destroy(e);
		e = call(w, arg);
		if (!e || !rd_kafka_error_is_retriable(e))
			return e;
		ag__log(w->app, AG_LOG_WARN, "%s: %s; trying again", what,
			rd_kafka_error_string(e));
	}
	return e;
}

static rd_kafka_error_t *
call_init(struct ag__worker *w, void *arg)
{
	(void)arg;
	return rd_kafka_init_transactions(w->producer, TXN_CALL_MS);
}

static rd_kafka_error_t *
call_commit(struct ag__worker *w, void *arg)
{
	(void)arg;
	return rd_kafka_commit_transaction(w->producer, TXN_CALL_MS);
}

static rd_kafka_error_t *
call_abort(struct ag__worker *w, void *arg)
{
	(void)arg;
	return rd_kafka_abort_transaction(w->producer, TXN_CALL_MS);
}

static rd_kafka_error_t *
call_offsets(struct ag__worker *w, void *arg)
{
	rd_kafka_consumer_group_metadata_t *md = rd_kafka_consumer_group_metadata(w->consumer);
	rd_kafka_error_t *e =
		rd_kafka_send_offsets_to_transaction(w->producer, arg, md, TXN_CALL_MS);
	rd_kafka_consumer_group_metadata_destroy(md);
	return e;
}

static int
begin(struct ag__worker *w)
{
	rd_kafka_error_t *e = rd_kafka_begin_transaction(w->producer);
	if (e) {
		ag__log(w->app, AG_LOG_ERROR,
			"cannot begin a transaction: %s; the worker stops without committing",
			rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		return AG_EKAFKA;
	}
	w->txn_open = 1;
	w->txn_seq = w->next_seq;
	w->txn_begin_ns = ag__now_ns();
	return 0;
}

int
ag__txn_open(struct ag__worker *w)
{
	if (!w->app->exactly_once)
		return 0;
	rd_kafka_error_t *e = retry(w, "init_transactions", call_init, NULL);
	if (e) {
		ag__log(w->app, AG_LOG_ERROR,
			"cannot start the transactional producer %s: %s (does the broker run with "
			"transaction.state.log.replication.factor <= its brokers?)",
			w->txn_id, rd_kafka_error_string(e));
		rd_kafka_error_destroy(e);
		return AG_EKAFKA;
	}
	ag__log(w->app, AG_LOG_INFO, "exactly_once: transactional producer %s ready", w->txn_id);
	return begin(w);
}

enum ag__txn_outcome
ag__txn_end(struct ag__worker *w, rd_kafka_topic_partition_list_t *offs, int abort_it)
{
	if (!w->txn_open)
		return AG__TXN_FATAL;
	enum ag__txn_outcome o = AG__TXN_COMMITTED;
	rd_kafka_error_t *e = NULL;
	if (!abort_it && offs->cnt > 0) {
		e = retry(w, "sending the offsets to the transaction", call_offsets, offs);
		if (e)
			o = txn_error(w, "sending the offsets to the transaction", e);
	}
	if (!abort_it && o == AG__TXN_COMMITTED) {
		e = retry(w, "committing the transaction", call_commit, NULL);
		if (e)
			o = txn_error(w, "committing the transaction", e);
	}
	if (abort_it)
		o = AG__TXN_ABORTED;
	if (o == AG__TXN_ABORTED) {
		e = retry(w, "aborting the transaction", call_abort, NULL);
		if (e) {
			/* An abort that fails leaves the producer unusable. */
			txn_error(w, "aborting the transaction", e);
			o = AG__TXN_FATAL;
		}
	}
	w->txn_open = 0;
	if (o == AG__TXN_COMMITTED)
		w->txn_commits++;
	else if (o == AG__TXN_ABORTED)
		w->txn_aborts++;
	if (o != AG__TXN_FATAL && begin(w) < 0)
		o = AG__TXN_FATAL;
	return o;
}

/*
 * exactly_once, after an aborted transaction: every assigned partition goes back to its
 * committed offset, as if it were revoked and assigned again. Buffered and held events are
 * dropped unacked, the tables' cached entries are dropped and restored from LMDB and the
 * changelog's committed tail, and the consumer fetches from the committed offsets again.
 */
static void
rewind_assigned(struct ag__worker *w)
{
	w->rewinds++;
	ag__agents_rewind(w);
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
	for (size_t i = 0; i < w->app->ntopics; i++) {
		struct ag_topic *t = w->app->topics[i];
		for (int p = 0; t->parts && p < t->partitions; p++) {
			struct ag__tpart *tp = &t->parts[p];
			if (!tp->assigned)
				continue;
			rd_kafka_topic_partition_list_add(l, t->name, p);
			ag__tpart_forget(tp);
			ag__fwd_set(tp, NULL, 0);
			ag__tables_revoke(w, tp);
		}
	}
	rd_kafka_resp_err_t err = rd_kafka_assign(w->consumer, NULL);
	for (int i = 0; i < l->cnt; i++) {
		struct ag__tpart *tp = ag__tpart_find(w, l->elems[i].topic, l->elems[i].partition);
		if (tp->revoking)
			continue; /* given up after this cycle: finish_revoke */
		ag__wm_assigned(tp);
		ag__tables_assign(w, tp);
	}
	if (!err)
		err = rd_kafka_assign(w->consumer, l);
	if (err) {
		ag__log(w->app, AG_LOG_ERROR,
			"cannot go back to the committed offsets after an abort: %s; the "
			"worker stops",
			rd_kafka_err2str(err));
		w->no_commit = 1;
		w->exit_status = 1;
		ag_app_stop(w->app);
	}
	ag__log(w->app, AG_LOG_WARN,
		"transaction aborted (%llu so far): %d partitions went back to their committed "
		"offsets; their events are processed again",
		(unsigned long long)w->txn_aborts, l->cnt);
	rd_kafka_topic_partition_list_destroy(l);
}

/* Aborted transactions in a row after which the worker gives up (the cause persists). */
#define TXN_ABORTS_MAX 10

void
ag__txn_cycle_end(struct ag__worker *w, rd_kafka_topic_partition_list_t *offs)
{
	if (w->no_commit || w->closing) {
		if (w->no_commit)
			ag__log(w->app, AG_LOG_WARN,
				"not committing: the transaction cannot commit");
		return;
	}
	/* An idle worker still commits now and then: web announcements are in the txn too. */
	int due = offs->cnt > 0 || w->next_seq != w->txn_seq || w->txn_failed ||
		  ag__now_ns() - w->txn_begin_ns > 10ull * 1000000000u;
	if (!due)
		return;
	enum ag__txn_outcome o = ag__txn_end(w, offs, w->txn_failed);
	w->txn_failed = 0;
	ag__channels_txn_end(w, o == AG__TXN_COMMITTED);
	if (o == AG__TXN_COMMITTED) {
		w->txn_aborts_in_row = 0;
		int rc = ag__tables_cycle_end(w);
		if (rc < 0) {
			ag__log(w->app, AG_LOG_ERROR,
				"table changes could not be stored (%s); they are committed in "
				"the changelog, and the worker stops: free disk space or check "
				"the data dir, then restart (the changelog's tail is restored)",
				ag_strerror(rc));
			w->no_commit = 1;
			w->exit_status = 1;
			ag_app_stop(w->app);
		}
		for (int i = 0; i < offs->cnt; i++) {
			struct ag__tpart *tp =
				ag__tpart_find(w, offs->elems[i].topic, offs->elems[i].partition);
			if (tp)
				tp->committed = offs->elems[i].offset;
		}
		if (offs->cnt && w->broker.kind == AG__BROKER_KAFKA)
			ag__admin_purge(w, offs);
		return;
	}
	ag__tables_cycle_abort(w);
	if (o == AG__TXN_FATAL) {
		w->no_commit = 1;
		w->exit_status = 1;
		ag_app_stop(w->app);
		return;
	}
	rewind_assigned(w);
	if (++w->txn_aborts_in_row >= TXN_ABORTS_MAX) {
		ag__log(w->app, AG_LOG_ERROR,
			"%u transactions in a row were aborted; the worker stops without "
			"committing (fix the cause logged above and restart: the events are "
			"processed again)",
			w->txn_aborts_in_row);
		w->no_commit = 1;
		w->exit_status = 1;
		ag_app_stop(w->app);
	}
}
