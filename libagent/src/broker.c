/*
 * The broker: where the Kafka cluster is and how clients reach it. With no broker option a
 * worker hosts librdkafka's mock cluster (a Kafka-protocol broker in memory on 127.0.0.1)
 * and writes its address to <datadir>/broker.addr, so `faustc send` on this machine finds
 * it. `faustc broker` hosts one as its own process for several workers.
 *
 * The mock has no CreateTopics and auto-creates any topic a producer touches with 4
 * partitions, so topics are created before any client sees them: through the mock API when
 * the cluster is ours, through a control topic that `faustc broker` consumes when it is
 * another process's, and through the admin API on a real cluster. Whatever created them,
 * every topic is then checked against its declared partition count with a metadata request
 * for all topics (which never auto-creates).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "internal.h"
#include "kafka.h"

#include <librdkafka/rdkafka_mock.h> /* after rdkafka.h, which internal.h includes */

#define ADDR_FILE "broker.addr"
#define CONTROL_TOPIC "__faustc_control"
#define PROBE_MS 1500
#define DEFAULT_WAIT_S 30.0
#define METADATA_MS 2000
#define URL_FORMS "mock://HOST:PORT[,...], kafka://HOST:PORT[,...] or HOST:PORT[,...]"

/* ---- small helpers ---- */

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	/* A stop signal (a worker waiting for its broker) cuts the sleep short. */
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !ag__stop_signal)
		;
}

static double
elapsed_s(uint64_t since)
{
	return (double)(ag__now_ns() - since) / 1e9;
}

/* librdkafka's own lines are for debugging: what matters reaches the user through us. */
static void
log_to_debug(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	const struct ag_app *app = rd_kafka_opaque(rk);
	(void)level;
	ag__log(app, AG_LOG_DEBUG, "librdkafka %s: %s", fac, buf);
}

static void
errors_to_debug(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)rk;
	ag__log(opaque, AG_LOG_DEBUG, "librdkafka: %s: %s",
		rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void
quiet(rd_kafka_conf_t *conf, const struct ag_app *app)
{
	rd_kafka_conf_set_opaque(conf, (void *)app);
	rd_kafka_conf_set_log_cb(conf, log_to_debug);
	rd_kafka_conf_set_error_cb(conf, errors_to_debug);
}

static int
conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err, size_t errlen)
{
	char why[256];
	if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) == RD_KAFKA_CONF_OK)
		return 0;
	snprintf(err, errlen, "librdkafka property %s=%s: %s", name, value, why);
	return AG_ECONFIG;
}

static int
mkdir_p(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	int rc = 0;
	for (char *p = copy + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(copy, 0755) < 0 && errno != EEXIST) {
			rc = -errno;
			break;
		}
		*p = c;
		if (!c)
			break;
	}
	free(copy);
	return rc;
}

/* Reads the first line of a small file, without its line end. Returns 0, -errno. */
static int
read_line(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	int rc = fgets(buf, (int)cap, f) ? 0 : -EIO;
	fclose(f);
	if (rc == 0)
		buf[strcspn(buf, "\r\n")] = '\0';
	return rc;
}

/* Writes one line to path through a temporary file and rename(). Returns 0, -errno. */
static int
write_line_atomic(const char *path, const char *line)
{
	char tmp[4096];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	int rc = 0;
	if (fprintf(f, "%s\n", line) < 0 || fflush(f) != 0 || fsync(fileno(f)) < 0)
		rc = errno ? -errno : -EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

/* ---- broker URLs ---- */

/* Checks "host:port[,host:port...]" (hosts may be [v6] literals). */
static int
valid_bootstrap(const char *list)
{
	if (!*list)
		return 0;
	const char *p = list;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *colon = NULL;
		for (size_t i = 0; i < len; i++) {
			if (p[i] == ':')
				colon = p + i;
		}
		if (!colon || colon == p || colon + 1 == p + len ||
		    (size_t)(colon + 1 - p) + 5 < len)
			return 0;
		int port = 0;
		for (const char *q = colon + 1; q < p + len; q++) {
			if (*q < '0' || *q > '9')
				return 0;
			port = port * 10 + (*q - '0');
		}
		if (port < 1 || port > 65535)
			return 0;
		for (const char *q = p; q < colon; q++) {
			if (*q == '/' || *q == ' ' || *q == '@')
				return 0;
		}
		if (!end)
			return 1;
		p = end + 1;
	}
}

static int
parse_url(struct ag__broker *b, const char *url, char *err, size_t errlen)
{
	enum ag__broker_kind kind = AG__BROKER_KAFKA;
	const char *list = url;
	if (strncmp(url, AG__MOCK_SCHEME, strlen(AG__MOCK_SCHEME)) == 0) {
		kind = AG__BROKER_MOCK;
		list = url + strlen(AG__MOCK_SCHEME);
	} else if (strncmp(url, AG__KAFKA_SCHEME, strlen(AG__KAFKA_SCHEME)) == 0) {
		list = url + strlen(AG__KAFKA_SCHEME);
	}
	if (!valid_bootstrap(list)) {
		snprintf(err, errlen, "broker \"%s\" is not a broker URL; use %s", url, URL_FORMS);
		return AG_ECONFIG;
	}
	if (!(b->bootstrap = strdup(list)))
		return -ENOMEM;
	b->kind = kind;
	return 0;
}

/* ---- probing ---- */

/*
 * A producer handle for our own requests (metadata, control records), quiet: a broker
 * that does not answer is reported by the caller, not by librdkafka's log lines.
 */
static int
admin_handle(const struct ag__broker *b, const struct ag_app *app, rd_kafka_t **out, char *err,
	     size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (!conf)
		return -ENOMEM;
	int rc = ag__broker_client_conf(b, app, RD_KAFKA_PRODUCER, NULL, 0, conf, err, errlen);
	if (rc == 0)
		rc = conf_set(conf, "linger.ms", "0", err, errlen);
	if (rc < 0) {
		rd_kafka_conf_destroy(conf);
		return rc;
	}
	quiet(conf, app);
	char why[256];
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		snprintf(err, errlen, "cannot create a Kafka client for %s: %s", b->bootstrap, why);
		return AG_ECONFIG;
	}
	*out = rk;
	return 0;
}

/* Whether a broker answers a metadata request at bootstrap within PROBE_MS. */
static int
broker_answers(const struct ag_app *app, const char *bootstrap)
{
	struct ag__broker probe = {.kind = AG__BROKER_MOCK, .bootstrap = (char *)bootstrap};
	char err[256];
	rd_kafka_t *rk;
	if (admin_handle(&probe, app, &rk, err, sizeof(err)) < 0)
		return 0;
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, PROBE_MS);
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_destroy(rk);
	return e == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* ---- open / close ---- */

static int
addr_path(const struct ag_app *app, char **out)
{
	const char *dir = ag__app_datadir(app);
	size_t len = strlen(dir) + sizeof("/" ADDR_FILE);
	char *path = malloc(len);
	if (!path)
		return -ENOMEM;
	snprintf(path, len, "%s/%s", dir, ADDR_FILE);
	*out = path;
	return 0;
}

/* Strips a "mock://" a user may have put into an address file. */
static const char *
strip_mock_scheme(const char *line)
{
	if (strncmp(line, AG__MOCK_SCHEME, strlen(AG__MOCK_SCHEME)) == 0)
		return line + strlen(AG__MOCK_SCHEME);
	return line;
}

static int
host_mock(struct ag__broker *b, const struct ag_app *app, char *err, size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (!conf)
		return -ENOMEM;
	int rc = conf_set(conf, "test.mock.num.brokers", "1", err, errlen);
	if (rc < 0) {
		rd_kafka_conf_destroy(conf);
		return rc;
	}
	quiet(conf, app);
	char why[256];
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		snprintf(err, errlen, "cannot start the embedded broker: %s", why);
		return AG_ENOBROKER;
	}
	rd_kafka_mock_cluster_t *mock = rd_kafka_handle_mock_cluster(rk);
	const char *bootstrap = mock ? rd_kafka_mock_cluster_bootstraps(mock) : NULL;
	if (!bootstrap || !(b->bootstrap = strdup(bootstrap))) {
		rd_kafka_destroy(rk);
		if (!bootstrap) {
			snprintf(err, errlen,
				 "cannot start the embedded broker: this librdkafka has no mock "
				 "cluster; pass --broker kafka://HOST:PORT");
			return AG_ENOBROKER;
		}
		return -ENOMEM;
	}
	b->kind = AG__BROKER_EMBEDDED;
	b->mock = mock;
	b->mock_rk = rk;
	return 0;
}

static int
open_embedded(struct ag__broker *b, struct ag_app *app, char *err, size_t errlen)
{
	const char *dir = ag__app_datadir(app);
	char *path = NULL;
	int rc = mkdir_p(dir);
	if (rc < 0) {
		snprintf(err, errlen, "cannot create the data dir %s: %s; check the --datadir path",
			 dir, strerror(-rc));
		return AG_ECONFIG;
	}
	if ((rc = addr_path(app, &path)) < 0)
		return rc;
	char line[512];
	if (read_line(path, line, sizeof(line)) == 0 && *strip_mock_scheme(line)) {
		const char *addr = strip_mock_scheme(line);
		if (broker_answers(app, addr)) {
			snprintf(
				err, errlen,
				"another worker (or faustc broker) is serving %s's embedded broker "
				"at %s; use another --datadir, or pass --broker mock://%s to share "
				"it",
				dir, addr, addr);
			free(path);
			return AG_ECONFIG;
		}
		ag__log(app, AG_LOG_INFO, "replacing stale %s (nobody answers at %s)", path, addr);
	}
	if ((rc = host_mock(b, app, err, errlen)) < 0) {
		free(path);
		return rc;
	}
	if ((rc = write_line_atomic(path, b->bootstrap)) < 0) {
		snprintf(err, errlen, "cannot write the broker address to %s: %s", path,
			 strerror(-rc));
		free(path);
		return AG_ECONFIG;
	}
	b->addr_file = path;
	ag__log(app, AG_LOG_INFO, "embedded broker at %s (address in %s)", b->bootstrap, path);
	return 0;
}

static int
open_from_file(struct ag__broker *b, struct ag_app *app, char *err, size_t errlen)
{
	char *path;
	int rc = addr_path(app, &path);
	if (rc < 0)
		return rc;
	char line[512];
	rc = read_line(path, line, sizeof(line));
	if (rc == -ENOENT) {
		snprintf(err, errlen,
			 "no broker: %s does not exist; start `faustc -A APP worker` (it hosts the "
			 "embedded broker) or pass --broker URL",
			 path);
		free(path);
		return AG_ENOBROKER;
	}
	if (rc < 0 || !valid_bootstrap(strip_mock_scheme(line))) {
		snprintf(err, errlen,
			 "no broker: cannot read a broker address from %s (%s); start `faustc -A "
			 "APP worker` or pass --broker URL",
			 path, rc < 0 ? strerror(-rc) : "not HOST:PORT");
		free(path);
		return AG_ENOBROKER;
	}
	free(path);
	if (!(b->bootstrap = strdup(strip_mock_scheme(line))))
		return -ENOMEM;
	b->kind = AG__BROKER_MOCK;
	return 0;
}

int
ag__broker_open(struct ag__broker *b, struct ag_app *app, int host, char *err, size_t errlen)
{
	memset(b, 0, sizeof(*b));
	int rc = ag__app_finalize(app);
	if (rc < 0) {
		snprintf(err, errlen, "the app's declarations are invalid (see the log above)");
		return rc;
	}
	if (app->broker && *app->broker)
		rc = parse_url(b, app->broker, err, errlen);
	else if (host)
		rc = open_embedded(b, app, err, errlen);
	else
		rc = open_from_file(b, app, err, errlen);
	if (rc < 0)
		ag__broker_close(b);
	return rc;
}

void
ag__broker_close(struct ag__broker *b)
{
	if (b->addr_file) {
		char line[512];
		if (read_line(b->addr_file, line, sizeof(line)) == 0 && b->bootstrap &&
		    strcmp(strip_mock_scheme(line), b->bootstrap) == 0)
			unlink(b->addr_file);
	}
	if (b->mock_rk)
		rd_kafka_destroy(b->mock_rk);
	free(b->bootstrap);
	free(b->addr_file);
	memset(b, 0, sizeof(*b));
}

/* ---- client configuration ---- */

int
ag__broker_client_conf(const struct ag__broker *b, const struct ag_app *app, rd_kafka_type_t type,
		       const struct ag__kv *extra, size_t nextra, rd_kafka_conf_t *conf, char *err,
		       size_t errlen)
{
	static const char *const mock_all[][2] = {
		{"topic.metadata.refresh.interval.ms", "2000"},
		{"socket.nagle.disable", "true"},
		{"broker.address.family", "v4"},
	};
	/*
	 * The mock's group joins take ~3 s: the session must be longer. The mock holds a fetch
	 * that finds no data for the whole fetch.wait.max.ms, even when data arrives meanwhile
	 * (Kafka answers at once), so the wait is latency on every hop: 5 ms gave ~3 ms lower
	 * p50 than 10 at 50,000 events/s, and costs an idle worker and broker ~5 % of a core
	 * more (bench/README.md, "Latency").
	 */
	static const char *const mock_consumer[][2] = {
		{"fetch.wait.max.ms", "5"},
		{"session.timeout.ms", "6000"},
		{"heartbeat.interval.ms", "500"},
	};
	/*
	 * A real cluster: librdkafka's 45 s session would leave a dead worker's partitions
	 * unprocessed that long; 10 s is the broker's range (group.min.session.timeout.ms is
	 * 6 s by default) with heartbeats ten times as often.
	 */
	static const char *const kafka_consumer[][2] = {
		{"session.timeout.ms", "10000"},
		{"heartbeat.interval.ms", "1000"},
	};
	int rc = conf_set(conf, "bootstrap.servers", b->bootstrap, err, errlen);
	if (rc < 0)
		return rc;
	for (size_t i = 0; b->kind == AG__BROKER_KAFKA && type == RD_KAFKA_CONSUMER &&
			   i < AG__ARRAY_SIZE(kafka_consumer);
	     i++) {
		rc = conf_set(conf, kafka_consumer[i][0], kafka_consumer[i][1], err, errlen);
		if (rc < 0)
			return rc;
	}
	if (b->kind != AG__BROKER_KAFKA) {
		for (size_t i = 0; i < AG__ARRAY_SIZE(mock_all); i++) {
			if ((rc = conf_set(conf, mock_all[i][0], mock_all[i][1], err, errlen)) < 0)
				return rc;
		}
		for (size_t i = 0; type == RD_KAFKA_CONSUMER && i < AG__ARRAY_SIZE(mock_consumer);
		     i++) {
			rc = conf_set(conf, mock_consumer[i][0], mock_consumer[i][1], err, errlen);
			if (rc < 0)
				return rc;
		}
	}
	/*
	 * A producer must be able to send whatever a consumer of ours receives: a dead letter
	 * is a bad event as it came, and a too_large one is over max_message_bytes (1 MiB by
	 * default), beyond librdkafka's producer limit (1,000,000 bytes), which would refuse
	 * it and stop the worker. The consumers' limit (receive.message.max.bytes) is the
	 * bound; the broker still applies its own (a kafka.* option may lower this one).
	 */
	if (type == RD_KAFKA_PRODUCER &&
	    (rc = conf_set(conf, "message.max.bytes", "100000000", err, errlen)) < 0)
		return rc;
	for (size_t i = 0; i < nextra; i++) {
		if ((rc = conf_set(conf, extra[i].key, extra[i].value, err, errlen)) < 0)
			return rc;
	}
	for (size_t i = 0; app && i < app->nkafka_conf; i++) {
		const struct ag__kv *kv = &app->kafka_conf[i];
		char why[256];
		if (!ag__kafka_prop_applies(kv->key, type))
			continue; /* a consumer property for a producer, or the reverse */
		if (rd_kafka_conf_set(conf, kv->key, kv->value, why, sizeof(why)) !=
		    RD_KAFKA_CONF_OK) {
			snprintf(err, errlen, "option kafka.%s=%s: %s; fix or remove it", kv->key,
				 kv->value, why);
			return AG_ECONFIG;
		}
	}
	return 0;
}

/* ---- topics ---- */

static const rd_kafka_metadata_topic_t *
md_find(const struct rd_kafka_metadata *md, const char *name)
{
	for (int i = 0; i < md->topic_cnt; i++) {
		if (strcmp(md->topics[i].topic, name) == 0 &&
		    md->topics[i].err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
			return &md->topics[i];
	}
	return NULL;
}

static double
wait_s(const struct ag__broker *b)
{
	return b->wait > 0 ? b->wait : DEFAULT_WAIT_S;
}

/*
 * Milliseconds one request may take once the broker answered metadata: the wait, capped
 * at a minute (a worker's wait is unbounded, and librdkafka takes an int).
 */
static int
request_ms(const struct ag__broker *b)
{
	double s = wait_s(b);
	return (int)((s < 60.0 ? s : 60.0) * 1000);
}

/*
 * Full metadata (all topics: never auto-creates), retried with backoff while the broker
 * does not answer, up to the broker's wait. Returns 0, AG_ENOBROKER.
 */
static int
metadata_all(const struct ag__broker *b, const struct ag_app *app, rd_kafka_t *rk,
	     const struct rd_kafka_metadata **md, char *err, size_t errlen)
{
	uint64_t start = ag__now_ns();
	int backoff = 250;
	for (;;) {
		double left = wait_s(b) - elapsed_s(start);
		int ms = left * 1000 < METADATA_MS ? (int)(left * 1000) : METADATA_MS;
		rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, md, ms > 100 ? ms : 100);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
			return 0;
		if (elapsed_s(start) + backoff / 1000.0 >= wait_s(b)) {
			snprintf(err, errlen,
				 "no broker reachable at %s (%s after %.1f s); start it, or check "
				 "--broker and the data dir's broker.addr",
				 b->bootstrap, rd_kafka_err2str(e), elapsed_s(start));
			return AG_ENOBROKER;
		}
		if (ag__stop_signal) {
			snprintf(err, errlen, "stopped while waiting for the broker at %s",
				 b->bootstrap);
			return AG_ESTOPPED;
		}
		ag__log(app, AG_LOG_WARN, "waiting for broker at %s (%s)", b->bootstrap,
			rd_kafka_err2str(e));
		sleep_ms(backoff);
		backoff = backoff * 2 > 4000 ? 4000 : backoff * 2;
	}
}

/* Names the declared topics missing from md into buf, comma-separated. Returns the count. */
static size_t
missing_topics(const struct ag_app *app, const struct rd_kafka_metadata *md, char *buf, size_t cap)
{
	size_t n = 0, used = 0;
	if (cap)
		buf[0] = '\0';
	for (size_t i = 0; i < app->ntopics; i++) {
		if (md_find(md, app->topics[i]->name))
			continue;
		int w = snprintf(buf + used, cap - used, "%s%s", n ? ", " : "",
				 app->topics[i]->name);
		if (w > 0 && used + (size_t)w < cap)
			used += (size_t)w;
		n++;
	}
	return n;
}

static int
verify(const struct ag__broker *b, const struct ag_app *app, const struct rd_kafka_metadata *md,
       char *err, size_t errlen)
{
	for (size_t i = 0; i < app->ntopics; i++) {
		const struct ag_topic *t = app->topics[i];
		const rd_kafka_metadata_topic_t *mt = md_find(md, t->name);
		if (!mt) {
			snprintf(err, errlen,
				 "topic %s does not exist on the broker at %s and was not created; "
				 "create it with %d partitions",
				 t->name, b->bootstrap, t->partitions);
			return AG_ETOPIC;
		}
		const struct ag_table *tab = NULL;
		for (size_t k = 0; k < app->ntables && !tab; k++)
			if (app->tables[k]->changelog == t)
				tab = app->tables[k];
		if (mt->partition_cnt != t->partitions && tab) {
			/* Co-partitioning: a table's partitions are its source's partitions. */
			snprintf(err, errlen,
				 "table %s is not co-partitioned: its source topic %s has %d "
				 "partitions but its changelog %s exists with %d; a table's "
				 "partition N holds the state of the source's partition N, so the "
				 "counts must match (delete the changelog, losing the table, or "
				 "declare the source with %d partitions)",
				 tab->name, tab->source->name, tab->source->partitions, t->name,
				 mt->partition_cnt, mt->partition_cnt);
			return AG_ETOPIC;
		}
		if (mt->partition_cnt != t->partitions) {
			snprintf(err, errlen,
				 "topic %s exists with %d partitions but the app declares %d; "
				 "delete "
				 "it or change the declaration",
				 t->name, mt->partition_cnt, t->partitions);
			return AG_ETOPIC;
		}
	}
	return 0;
}

static int
create_embedded(const struct ag__broker *b, const struct ag_app *app, char *err, size_t errlen)
{
	for (size_t i = 0; i < app->ntopics; i++) {
		const struct ag_topic *t = app->topics[i];
		rd_kafka_resp_err_t e =
			rd_kafka_mock_topic_create(b->mock, t->name, t->partitions, 1);
		if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
			continue;
		if (e) {
			snprintf(err, errlen, "cannot create topic %s on the embedded broker: %s",
				 t->name, rd_kafka_err2str(e));
			return AG_EKAFKA;
		}
		ag__log(app, AG_LOG_DEBUG, "created topic %s (%d partitions)", t->name,
			t->partitions);
	}
	return 0;
}

static int
request_mock(const struct ag__broker *b, const struct ag_app *app, rd_kafka_t *rk,
	     const struct rd_kafka_metadata *md, char *err, size_t errlen)
{
	if (!md_find(md, CONTROL_TOPIC))
		return 0; /* a worker's embedded broker: its worker creates them (or nobody) */
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, CONTROL_TOPIC, NULL);
	if (!rkt) {
		snprintf(err, errlen, "cannot use the control topic of %s: %s", b->bootstrap,
			 rd_kafka_err2str(rd_kafka_last_error()));
		return AG_EKAFKA;
	}
	int rc = 0;
	for (size_t i = 0; i < app->ntopics && rc == 0; i++) {
		const struct ag_topic *t = app->topics[i];
		if (md_find(md, t->name))
			continue;
		char req[512];
		int n = snprintf(req, sizeof(req), "create %s %d", t->name, t->partitions);
		if (rd_kafka_produce(rkt, 0, RD_KAFKA_MSG_F_COPY, req, (size_t)n, NULL, 0, NULL) <
		    0) {
			snprintf(err, errlen, "cannot ask the broker at %s to create %s: %s",
				 b->bootstrap, t->name, rd_kafka_err2str(rd_kafka_last_error()));
			rc = AG_EKAFKA;
			break;
		}
		ag__log(app, AG_LOG_INFO,
			"asked the broker at %s to create topic %s (%d partitions)", b->bootstrap,
			t->name, t->partitions);
	}
	rd_kafka_topic_destroy(rkt);
	if (rc < 0)
		return rc;
	rd_kafka_resp_err_t e = rd_kafka_flush(rk, request_ms(b));
	if (e) {
		snprintf(err, errlen,
			 "no broker reachable at %s (create requests not delivered: %s)",
			 b->bootstrap, rd_kafka_err2str(e));
		return AG_ENOBROKER;
	}
	return 0;
}

int
ag__broker_ensure_topics(struct ag__broker *b, struct ag_app *app, char *err, size_t errlen)
{
	int rc = ag__app_finalize(app);
	if (rc < 0) {
		snprintf(err, errlen, "the app's declarations are invalid (see the log above)");
		return rc;
	}
	rd_kafka_t *rk;
	if ((rc = admin_handle(b, app, &rk, err, errlen)) < 0)
		return rc;
	const struct rd_kafka_metadata *md = NULL;
	if ((rc = metadata_all(b, app, rk, &md, err, errlen)) < 0)
		goto out;
	char names[16];
	if (b->kind == AG__BROKER_EMBEDDED)
		rc = create_embedded(b, app, err, errlen);
	else if (missing_topics(app, md, names, sizeof(names)) == 0)
		rc = 0;
	else if (b->kind == AG__BROKER_MOCK)
		rc = request_mock(b, app, rk, md, err, errlen);
	else
		rc = ag__admin_create_topics(rk, app, md, b->bootstrap, request_ms(b), err, errlen);
	if (rc < 0)
		goto out;
	/* Creation is asynchronous on mock:// and Kafka: wait until metadata shows it. */
	uint64_t start = ag__now_ns();
	for (;;) {
		rd_kafka_metadata_destroy(md);
		md = NULL;
		if ((rc = metadata_all(b, app, rk, &md, err, errlen)) < 0)
			goto out;
		if (missing_topics(app, md, names, sizeof(names)) == 0 ||
		    elapsed_s(start) > wait_s(b))
			break;
		sleep_ms(100);
	}
	if (b->kind == AG__BROKER_MOCK && !md_find(md, CONTROL_TOPIC)) {
		char missing[1024];
		if (missing_topics(app, md, missing, sizeof(missing)) != 0) {
			snprintf(err, errlen,
				 "topics %s do not exist on the broker at %s, and it takes no "
				 "create requests (it is a worker's embedded broker, not `faustc "
				 "broker`); start a worker of this app on it first, or run "
				 "`faustc broker`",
				 missing, b->bootstrap);
			rc = AG_ETOPIC;
			goto out;
		}
	}
	rc = verify(b, app, md, err, errlen);
	if (rc == 0 && b->kind == AG__BROKER_KAFKA)
		rc = ag__admin_wait_leaders(rk, app, b->bootstrap, request_ms(b), err, errlen);
out:
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_destroy(rk);
	return rc;
}

/* ---- `faustc broker` ---- */

static volatile sig_atomic_t serve_stop;

static void
on_stop_signal(int sig)
{
	(void)sig;
	serve_stop = 1;
}

/* One control record: "create NAME PARTITIONS". */
static void
serve_request(struct ag__broker *b, const struct ag_app *app, rd_kafka_t *rk,
	      const rd_kafka_message_t *m)
{
	char req[512], name[300];
	int partitions;
	if (m->len >= sizeof(req)) {
		ag__log(app, AG_LOG_ERROR, "ignoring an oversized control record at offset %lld",
			(long long)m->offset);
		return;
	}
	memcpy(req, m->payload, m->len);
	req[m->len] = '\0';
	char extra;
	if (sscanf(req, "create %299s %d %c", name, &partitions, &extra) != 2 || partitions < 1 ||
	    partitions > 10000) {
		ag__log(app, AG_LOG_ERROR, "ignoring control record \"%s\": not \"create TOPIC N\"",
			req);
		return;
	}
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, METADATA_MS);
	if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
		const rd_kafka_metadata_topic_t *mt = md_find(md, name);
		if (mt && mt->partition_cnt != partitions)
			ag__log(app, AG_LOG_ERROR,
				"topic %s exists with %d partitions but a client asked for %d; "
				"delete "
				"it (restart this broker) or change the declaration",
				name, mt->partition_cnt, partitions);
		int exists = mt != NULL;
		rd_kafka_metadata_destroy(md);
		if (exists)
			return;
	}
	e = rd_kafka_mock_topic_create(b->mock, name, partitions, 1);
	if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
		ag__log(app, AG_LOG_INFO, "created topic %s (%d partitions)", name, partitions);
	else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
		ag__log(app, AG_LOG_ERROR, "cannot create topic %s: %s", name, rd_kafka_err2str(e));
}

/* A consumer of the control topic's only partition, from its current end. */
static int
control_consumer(struct ag__broker *b, const struct ag_app *app, rd_kafka_t **out)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (!conf)
		return -ENOMEM;
	int rc = ag__broker_client_conf(b, app, RD_KAFKA_CONSUMER, NULL, 0, conf, err, sizeof(err));
	/* librdkafka wants a group for assign(); it is never joined nor committed to. */
	if (rc == 0)
		rc = conf_set(conf, "group.id", "__faustc_broker", err, sizeof(err));
	if (rc == 0)
		rc = conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
	if (rc < 0) {
		rd_kafka_conf_destroy(conf);
		ag__log(app, AG_LOG_ERROR, "%s", err);
		return rc;
	}
	quiet(conf, app);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		ag__log(app, AG_LOG_ERROR, "cannot create the control consumer: %s", err);
		return AG_EKAFKA;
	}
	/*
	 * Start at the end known now, not at OFFSET_END: that is resolved later, and requests
	 * produced in between would be skipped.
	 */
	int64_t lo, hi;
	rd_kafka_resp_err_t e =
		rd_kafka_query_watermark_offsets(rk, CONTROL_TOPIC, 0, &lo, &hi, 10000);
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(parts, CONTROL_TOPIC, 0)->offset = hi;
	if (!e)
		e = rd_kafka_assign(rk, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	if (e) {
		ag__log(app, AG_LOG_ERROR, "cannot read the control topic %s: %s", CONTROL_TOPIC,
			rd_kafka_err2str(e));
		rd_kafka_destroy(rk);
		return AG_EKAFKA;
	}
	*out = rk;
	return 0;
}

/*
 * `faustc -A APP broker --broker kafka://...`: the cluster is the broker. Creates the
 * app's topics there, prints and writes the URL, and waits for SIGINT/SIGTERM, so a
 * script written for `faustc broker` runs unchanged on a real cluster.
 */
static int
serve_cluster(struct ag_app *app, const char *addr_file)
{
	struct ag__broker b;
	char err[1024], url[600];
	int rc = ag__broker_open(&b, app, 0, err, sizeof(err));
	if (rc == 0 && b.kind != AG__BROKER_KAFKA) {
		snprintf(err, sizeof(err),
			 "faustc broker hosts a broker or serves a Kafka cluster's topics; "
			 "--broker %s is neither (use kafka://HOST:PORT)",
			 app->broker);
		rc = AG_ECONFIG;
	}
	if (rc == 0)
		rc = ag__broker_ensure_topics(&b, app, err, sizeof(err));
	if (rc < 0) {
		ag__log(app, AG_LOG_ERROR, "%s", err);
		ag__broker_close(&b);
		return 1;
	}
	snprintf(url, sizeof(url), "%s%s", AG__KAFKA_SCHEME, b.bootstrap);
	ag__broker_close(&b);
	if (addr_file && (rc = write_line_atomic(addr_file, url)) < 0) {
		ag__log(app, AG_LOG_ERROR, "cannot write the broker address to %s: %s", addr_file,
			strerror(-rc));
		return 1;
	}
	printf("%s\n", url);
	fflush(stdout);
	ag__log(app, AG_LOG_INFO, "topics ready on %s; waiting for SIGINT/SIGTERM", url);
	while (!serve_stop)
		sleep_ms(100);
	char line[600];
	if (addr_file && read_line(addr_file, line, sizeof(line)) == 0 && strcmp(line, url) == 0)
		unlink(addr_file);
	return 0;
}

int
ag__broker_serve(struct ag_app *app, const char *addr_file)
{
	struct ag__broker b = {0};
	rd_kafka_t *consumer = NULL;
	char err[1024];
	int status = 1, wrote = 0;
	char url[600] = "";
	struct sigaction sa = {.sa_handler = on_stop_signal}, old_int, old_term;
	sigemptyset(&sa.sa_mask);
	serve_stop = 0;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);

	if (app && ag__app_finalize(app) < 0)
		goto out;
	if (app && app->broker && *app->broker) {
		status = serve_cluster(app, addr_file);
		goto out;
	}
	if (host_mock(&b, app, err, sizeof(err)) < 0) {
		ag__log(app, AG_LOG_ERROR, "%s", err);
		goto out;
	}
	rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(b.mock, CONTROL_TOPIC, 1, 1);
	if (e) {
		ag__log(app, AG_LOG_ERROR, "cannot create the control topic: %s",
			rd_kafka_err2str(e));
		goto out;
	}
	if (app && ag__broker_ensure_topics(&b, app, err, sizeof(err)) < 0) {
		ag__log(app, AG_LOG_ERROR, "%s", err);
		goto out;
	}
	if (control_consumer(&b, app, &consumer) < 0)
		goto out;
	snprintf(url, sizeof(url), "%s%s", AG__MOCK_SCHEME, b.bootstrap);
	int rc;
	if (addr_file && (rc = write_line_atomic(addr_file, url)) < 0) {
		ag__log(app, AG_LOG_ERROR, "cannot write the broker address to %s: %s", addr_file,
			strerror(-rc));
		goto out;
	}
	wrote = addr_file != NULL;
	printf("%s\n", url);
	fflush(stdout);
	ag__log(app, AG_LOG_INFO, "serving %s until SIGINT/SIGTERM", url);

	while (!serve_stop) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 100);
		if (!m)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
			serve_request(&b, app, consumer, m);
		else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			ag__log(app, AG_LOG_WARN, "control topic: %s", rd_kafka_message_errstr(m));
		rd_kafka_message_destroy(m);
	}
	ag__log(app, AG_LOG_INFO, "stopping the broker at %s", url);
	status = 0;
out:
	if (consumer) {
		rd_kafka_consumer_close(consumer);
		rd_kafka_destroy(consumer);
	}
	char line[600];
	if (wrote && read_line(addr_file, line, sizeof(line)) == 0 && strcmp(line, url) == 0)
		unlink(addr_file);
	ag__broker_close(&b);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	return status;
}
