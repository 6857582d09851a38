/*
 * The broker module against librdkafka's mock cluster: the embedded broker and its address
 * file, topic creation and verification, broker URLs, client settings, and `faustc broker`'s
 * control channel (served by a forked child).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#include <librdkafka/rdkafka_mock.h>

#include "tap.h"

static char tmp[256];

static int
body(struct ag_stream *s, void *userdata)
{
	(void)s;
	(void)userdata;
	return 0;
}

static struct ag_app *
app_new(const char *id, const char *datadir, const char *broker)
{
	struct ag_app *app;
	if (ag_app_new(&app) < 0 || ag_app_set_id(app, id) < 0)
		abort();
	if (datadir && ag_app_set_option(app, "datadir", datadir) < 0)
		abort();
	if (broker && ag_app_set_option(app, "broker", broker) < 0)
		abort();
	ag_app_set_option(app, "loglevel", "warn");
	return app;
}

static void
topic(struct ag_app *app, const char *name, int partitions, enum ag_codec value_codec)
{
	struct ag_topic_opts o = {.partitions = partitions, .value_codec = value_codec};
	if (ag_app_topic(app, name, &o, NULL) < 0)
		abort();
}

static void
drop_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	(void)level;
	(void)fac;
	(void)buf;
}

/* Partition count of a topic as the broker reports it; -1 when missing or unreachable. */
static int
partitions_of(const char *bootstrap, const char *name)
{
	char err[256];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
	rd_kafka_conf_set_log_cb(conf, drop_log);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk)
		return -1;
	const struct rd_kafka_metadata *md;
	int n = -1;
	if (rd_kafka_metadata(rk, 1, NULL, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
		for (int i = 0; i < md->topic_cnt; i++) {
			if (strcmp(md->topics[i].topic, name) == 0 && !md->topics[i].err)
				n = md->topics[i].partition_cnt;
		}
		rd_kafka_metadata_destroy(md);
	}
	rd_kafka_destroy(rk);
	return n;
}

static int
read_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	size_t n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
	return 0;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		abort();
	fputs(text, f);
	fclose(f);
}

static void
path_in(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", tmp, name);
}

/* ---- the child: `faustc broker` ---- */

static pid_t
start_serve(const char *addr_file, const char *out_file)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	int fd = open(out_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
		_exit(99);
	close(fd);
	struct ag_app *app = app_new("served", NULL, NULL);
	char dir[300];
	path_in(dir, sizeof(dir), "served-data");
	ag_app_set_option(app, "datadir", dir);
	topic(app, "served-pre", 3, AG_CODEC_RAW);
	int rc = ag__broker_serve(app, addr_file);
	ag_app_free(app);
	exit(rc);
}

/* ---- embedded broker ---- */

static void
test_embedded(void)
{
	char dir[300], addr_path[400], text[512], err[1024];
	path_in(dir, sizeof(dir), "nested/d1");
	snprintf(addr_path, sizeof(addr_path), "%s/broker.addr", dir);

	struct ag_app *app = app_new("t1", dir, NULL);
	topic(app, "orders", 3, AG_CODEC_JSON);
	topic(app, "events", 0, AG_CODEC_RAW);
	ag_app_agent(app, "greeter", NULL, body, NULL, NULL);

	struct ag__broker b;
	int rc = ag__broker_open(&b, app, 1, err, sizeof(err));
	ok_int_eq(rc, 0, "embedded open succeeds (%s)", rc ? err : "");
	if (rc < 0) {
		ag_app_free(app);
		return;
	}
	ok_int_eq(b.kind, AG__BROKER_EMBEDDED, "no broker option hosts the mock");
	ok(b.mock && b.mock_rk, "the mock cluster and its handle are kept");
	ok_int_eq(read_file(addr_path, text, sizeof(text)), 0, "broker.addr is written (mkdir -p)");
	char expect[300];
	snprintf(expect, sizeof(expect), "%s\n", b.bootstrap);
	ok_str_eq(text, expect, "broker.addr holds the bootstrap list, one line");
	ok(strncmp(b.bootstrap, "127.0.0.1:", 10) == 0, "the mock listens on 127.0.0.1 (%s)",
	   b.bootstrap);
	ok_int_eq(partitions_of(text, "__nothing__"), -1, "the address in broker.addr answers");

	rc = ag__broker_ensure_topics(&b, app, err, sizeof(err));
	ok_int_eq(rc, 0, "ensure_topics creates the declared topics (%s)", rc ? err : "");
	ok_int_eq(partitions_of(b.bootstrap, "orders"), 3, "orders has 3 partitions");
	ok_int_eq(partitions_of(b.bootstrap, "events"), 8, "events has the default 8");
	ok_int_eq(partitions_of(b.bootstrap, "t1-greeter"), 8, "the agent's own topic exists");
	rc = ag__broker_ensure_topics(&b, app, err, sizeof(err));
	ok_int_eq(rc, 0, "ensure_topics again is a no-op (%s)", rc ? err : "");

	/* A client (send) on the same data dir finds it. */
	struct ag_app *client = app_new("t1", dir, NULL);
	topic(client, "orders", 3, AG_CODEC_JSON);
	struct ag__broker c;
	rc = ag__broker_open(&c, client, 0, err, sizeof(err));
	ok_int_eq(rc, 0, "host=0 open reads broker.addr (%s)", rc ? err : "");
	if (rc == 0) {
		ok_int_eq(c.kind, AG__BROKER_MOCK, "broker.addr means a mock of another process");
		ok_str_eq(c.bootstrap, b.bootstrap, "same address");
		ok(!c.mock && !c.addr_file, "a client hosts nothing");
		rc = ag__broker_ensure_topics(&c, client, err, sizeof(err));
		ok_int_eq(rc, 0, "existing topics verify over mock:// (%s)", rc ? err : "");
		ag__broker_close(&c);
	}
	ok_int_eq(access(addr_path, F_OK), 0, "a client's close leaves broker.addr alone");

	/* A topic the worker's embedded broker lacks cannot be created over mock://. */
	topic(client, "late", 2, AG_CODEC_RAW);
	rc = ag__broker_open(&c, client, 0, err, sizeof(err));
	if (rc == 0) {
		c.wait = 2;
		rc = ag__broker_ensure_topics(&c, client, err, sizeof(err));
		ok_int_eq(rc, AG_ETOPIC, "missing topic on a worker's broker is AG_ETOPIC");
		ok(strstr(err, "late") && strstr(err, "faustc broker"), "and says why: %s", err);
		ok_int_eq(partitions_of(b.bootstrap, "late"), -1, "nothing was auto-created");
		ok_int_eq(partitions_of(b.bootstrap, "__faustc_control"), -1,
			  "not even the control topic");
		ag__broker_close(&c);
	}
	ag_app_free(client);

	/* A second worker on the same data dir. */
	struct ag_app *second = app_new("t1", dir, NULL);
	rc = ag__broker_open(&c, second, 1, err, sizeof(err));
	ok_int_eq(rc, AG_ECONFIG, "a second host on the same data dir fails");
	ok(strstr(err, "another worker (or faustc broker) is serving") &&
		   strstr(err, b.bootstrap) && strstr(err, "--broker mock://"),
	   "with a clear error: %s", err);
	ok_int_eq(c.mock_rk == NULL && c.bootstrap == NULL, 1, "and leaves nothing open");
	ag_app_free(second);
	ok_int_eq(read_file(addr_path, text, sizeof(text)), 0, "broker.addr is still there");
	ok_str_eq(text, expect, "still ours");

	/* A topic that exists with another partition count. */
	rd_kafka_mock_topic_create(b.mock, "wrong", 2, 1);
	struct ag_app *mis = app_new("t1", dir, NULL);
	topic(mis, "wrong", 5, AG_CODEC_RAW);
	rc = ag__broker_ensure_topics(&b, mis, err, sizeof(err));
	ok_int_eq(rc, AG_ETOPIC, "a partition count mismatch is AG_ETOPIC");
	ok_str_eq(err,
		  "topic wrong exists with 2 partitions but the app declares 5; delete it or "
		  "change the declaration",
		  "and names topic and counts");
	ag_app_free(mis);

	ag__broker_close(&b);
	ok_int_eq(access(addr_path, F_OK), -1, "close removes broker.addr");
	ok_int_eq(b.mock_rk == NULL && b.bootstrap == NULL, 1, "close resets the struct");
	ag__broker_close(&b); /* twice is harmless */

	/* A stale file (nobody answers) is replaced. */
	write_file(addr_path, "127.0.0.1:1\n");
	rc = ag__broker_open(&b, app, 1, err, sizeof(err));
	ok_int_eq(rc, 0, "a stale broker.addr is replaced (%s)", rc ? err : "");
	if (rc == 0) {
		read_file(addr_path, text, sizeof(text));
		snprintf(expect, sizeof(expect), "%s\n", b.bootstrap);
		ok_str_eq(text, expect, "with the new address");
		/* Someone else rewrote it: close must not remove their file. */
		write_file(addr_path, "127.0.0.1:2\n");
		ag__broker_close(&b);
		ok_int_eq(access(addr_path, F_OK), 0, "close keeps a broker.addr that is not ours");
		unlink(addr_path);
	}

	struct ag_app *bad = app_new("t1", "/proc/faustc-no/such", NULL);
	rc = ag__broker_open(&b, bad, 1, err, sizeof(err));
	ok_int_eq(rc, AG_ECONFIG, "a data dir that cannot be created is AG_ECONFIG");
	ok(strstr(err, "cannot create the data dir /proc/faustc-no/such") != NULL, "%s", err);
	ag_app_free(bad);

	rc = ag__broker_open(&b, app, 0, err, sizeof(err));
	ok_int_eq(rc, AG_ENOBROKER, "host=0 without broker.addr is AG_ENOBROKER");
	ok(strstr(err, "broker.addr does not exist") && strstr(err, "--broker"),
	   "and says what to do: %s", err);
	ag_app_free(app);
}

/* ---- URLs and client settings ---- */

static void
test_urls(void)
{
	static const char *const bad[] = {
		"http://h:1", "mock://", "kafka://host", "host", "h:99999",      "h:0",   "h:",
		":9092",      "h:1,",    "h:1,,g:2",     "h:x",  "mock://h:1/x", "h 1:2",
	};
	char err[1024];
	struct ag__broker b;
	for (size_t i = 0; i < AG__ARRAY_SIZE(bad); i++) {
		struct ag_app *app = app_new("u", "/nonexistent/u", bad[i]);
		int rc = ag__broker_open(&b, app, 1, err, sizeof(err));
		ok_int_eq(rc, AG_ECONFIG, "\"%s\" is rejected", bad[i]);
		ok(strstr(err, "mock://HOST:PORT") != NULL, "listing the accepted forms");
		ag_app_free(app);
	}
	static const struct {
		const char *url, *bootstrap;
		enum ag__broker_kind kind;
	} good[] = {
		{"kafka://a:9092,b:9093", "a:9092,b:9093", AG__BROKER_KAFKA},
		{"k1.example.com:9092", "k1.example.com:9092", AG__BROKER_KAFKA},
		{"[::1]:9092", "[::1]:9092", AG__BROKER_KAFKA},
		{"mock://127.0.0.1:4567", "127.0.0.1:4567", AG__BROKER_MOCK},
	};
	for (size_t i = 0; i < AG__ARRAY_SIZE(good); i++) {
		struct ag_app *app = app_new("u", "/nonexistent/u", good[i].url);
		int rc = ag__broker_open(&b, app, 1, err, sizeof(err));
		ok_int_eq(rc, 0, "\"%s\" is accepted (%s)", good[i].url, rc ? err : "");
		if (rc == 0) {
			ok_int_eq(b.kind, good[i].kind, "of the right kind");
			ok_str_eq(b.bootstrap, good[i].bootstrap, "with its bootstrap list");
			ok(!b.mock_rk && !b.addr_file, "hosting nothing");
			ag__broker_close(&b);
		}
		ag_app_free(app);
	}

	/* Client settings. */
	struct ag_app *app = app_new("u", "/nonexistent/u", "mock://127.0.0.1:4567");
	ag_app_set_option(app, "kafka.fetch.wait.max.ms", "77");
	ag__broker_open(&b, app, 1, err, sizeof(err));
	char val[64];
	size_t len;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const struct ag__kv extra[] = {{"fetch.wait.max.ms", "99"},
				       {"heartbeat.interval.ms", "700"}};
	int rc = ag__broker_client_conf(&b, app, RD_KAFKA_CONSUMER, extra, 2, conf, err,
					sizeof(err));
	ok_int_eq(rc, 0, "consumer conf (%s)", rc ? err : "");
	len = sizeof(val);
	rd_kafka_conf_get(conf, "heartbeat.interval.ms", val, &len);
	ok_str_eq(val, "700", "the caller's settings win over the broker's");
	len = sizeof(val);
	rd_kafka_conf_get(conf, "session.timeout.ms", val, &len);
	ok_str_eq(val, "6000", "mock consumers get a session timeout above the 3 s join");
	len = sizeof(val);
	rd_kafka_conf_get(conf, "fetch.wait.max.ms", val, &len);
	ok_str_eq(val, "77", "the app's kafka.* options win, over the caller's as well");
	len = sizeof(val);
	rd_kafka_conf_get(conf, "bootstrap.servers", val, &len);
	ok_str_eq(val, "127.0.0.1:4567", "bootstrap.servers is set");
	rd_kafka_conf_destroy(conf);
	conf = rd_kafka_conf_new();
	rc = ag__broker_client_conf(&b, NULL, RD_KAFKA_PRODUCER, NULL, 0, conf, err, sizeof(err));
	len = sizeof(val);
	rd_kafka_conf_get(conf, "session.timeout.ms", val, &len);
	ok_str_eq(val, "45000", "producers get no consumer-only settings");
	len = sizeof(val);
	rd_kafka_conf_get(conf, "socket.nagle.disable", val, &len);
	ok_str_eq(val, "true", "but the common ones");
	rd_kafka_conf_destroy(conf);

	ag_app_set_option(app, "kafka.no.such.property", "1");
	conf = rd_kafka_conf_new();
	rc = ag__broker_client_conf(&b, app, RD_KAFKA_CONSUMER, NULL, 0, conf, err, sizeof(err));
	ok_int_eq(rc, AG_ECONFIG, "an unknown kafka.* option is AG_ECONFIG");
	ok(strstr(err, "kafka.no.such.property") != NULL, "naming it: %s", err);
	rd_kafka_conf_destroy(conf);

	/* Nobody at that address. */
	b.wait = 1;
	uint64_t start = ag__now_ns();
	struct ag_app *dead = app_new("u", "/nonexistent/u", NULL);
	ag_app_set_option(dead, "loglevel", "error");
	rc = ag__broker_ensure_topics(&b, dead, err, sizeof(err));
	ok_int_eq(rc, AG_ENOBROKER, "an unreachable broker is AG_ENOBROKER");
	ok(strstr(err, "no broker reachable at 127.0.0.1:4567") != NULL, "saying where: %s", err);
	ok((ag__now_ns() - start) / 1000000000u < 10, "within the wait");
	ag_app_free(dead);
	ag__broker_close(&b);
	ag_app_free(app);
}

/* ---- control channel and send ---- */

/* Runs `faustc send` with its stdout in a file, so it stays out of the TAP stream. */
static int
send_capture(struct ag_app *app, const struct ag__send_args *args, char *out, size_t cap)
{
	char path[300];
	path_in(path, sizeof(path), "send.out");
	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (saved < 0 || fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
		abort();
	close(fd);
	int status = ag__cmd_send(app, args);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	read_file(path, out, cap);
	out[strcspn(out, "\n")] = '\0';
	return status;
}

static void
test_served(pid_t child, const char *addr_file, const char *out_file)
{
	char url[512] = "", out[512] = "", err[1024];
	for (int i = 0; i < 200 && read_file(addr_file, url, sizeof(url)) < 0; i++)
		usleep(50 * 1000);
	read_file(out_file, out, sizeof(out));
	ok_str_eq(out, url, "faustc broker prints the line it writes to its address file");
	url[strcspn(url, "\n")] = '\0';
	ok(strncmp(url, "mock://127.0.0.1:", 17) == 0, "a mock:// URL (%s)", url);
	const char *bootstrap = url + strlen(AG__MOCK_SCHEME);
	ok_int_eq(partitions_of(bootstrap, "served-pre"), 3, "it created its app's topics");
	ok_int_eq(partitions_of(bootstrap, "__faustc_control"), 1, "and the control topic");

	struct ag_app *app = app_new("c", NULL, url);
	char dir[300];
	path_in(dir, sizeof(dir), "c-data");
	ag_app_set_option(app, "datadir", dir);
	topic(app, "c1", 3, AG_CODEC_JSON);
	topic(app, "c2", 6, AG_CODEC_RAW);
	topic(app, "served-pre", 3, AG_CODEC_RAW);
	struct ag__broker b;
	int rc = ag__broker_open(&b, app, 1, err, sizeof(err));
	ok_int_eq(rc, 0, "mock:// opens (%s)", rc ? err : "");
	ok_int_eq(b.kind, AG__BROKER_MOCK, "as MOCK");
	b.wait = 20;
	rc = ag__broker_ensure_topics(&b, app, err, sizeof(err));
	ok_int_eq(rc, 0, "ensure_topics through the control topic (%s)", rc ? err : "");
	ok_int_eq(partitions_of(bootstrap, "c1"), 3, "c1 has 3 partitions");
	ok_int_eq(partitions_of(bootstrap, "c2"), 6, "c2 has 6 partitions");
	ag__broker_close(&b);

	struct ag_app *mis = app_new("c", NULL, url);
	topic(mis, "c2", 4, AG_CODEC_RAW);
	ag__broker_open(&b, mis, 0, err, sizeof(err));
	rc = ag__broker_ensure_topics(&b, mis, err, sizeof(err));
	ok_int_eq(rc, AG_ETOPIC, "a mismatch over mock:// is AG_ETOPIC");
	ok(strstr(err, "topic c2 exists with 6 partitions but the app declares 4") != NULL,
	   "naming it: %s", err);
	ag__broker_close(&b);
	ag_app_free(mis);

	/* faustc send, against the served broker. */
	struct ag__send_args args = {.target = "c1", .value = "{\"n\": 1}", .timeout = 10};
	char sent[256], again[256];
	ok_int_eq(send_capture(app, &args, sent, sizeof(sent)), 0, "send one JSON value");
	ok(strncmp(sent, "sent to c1[", 11) == 0 && strstr(sent, "]@"), "prints where: %s", sent);
	args.key = "k";
	send_capture(app, &args, sent, sizeof(sent));
	ok_int_eq(send_capture(app, &args, again, sizeof(again)), 0, "send with a key");
	ok_int_eq(strcspn(sent, "@"), strcspn(again, "@"), "a key keeps its partition");
	ok(strncmp(sent, again, strcspn(sent, "@")) == 0, "%s and %s", sent, again);
	args.value = "{not json";
	ok_int_eq(send_capture(app, &args, sent, sizeof(sent)), 2,
		  "an invalid value is a bad argument");
	ok_str_eq(sent, "", "and sends nothing");
	args.target = "nope";
	ok_int_eq(ag__cmd_send(app, &args), 2, "an unknown topic is a bad argument");
	args.target = "@nobody";
	ok_int_eq(ag__cmd_send(app, &args), 2, "an unknown agent is a bad argument");
	args.value = NULL;
	args.target = "c1";
	ok_int_eq(ag__cmd_send(app, &args), 2, "nothing to send is a bad argument");

	char file[300];
	path_in(file, sizeof(file), "values.txt");
	FILE *f = fopen(file, "w");
	for (int i = 0; i < 25000; i++)
		fprintf(f, "{\"i\": %d}\n", i);
	fclose(f);
	args.file = file;
	args.key = NULL;
	ok_int_eq(send_capture(app, &args, sent, sizeof(sent)), 0, "send 25,000 lines from a file");
	ok_str_eq(sent, "sent 25000 values to c1", "and says so");
	write_file(file, "1\n{bad\n3\n\"four\"\n");
	ok_int_eq(ag__cmd_send(app, &args), 2, "a file with a bad line sends nothing");

	struct ag_app *gone = app_new("c", NULL, "mock://127.0.0.1:1");
	topic(gone, "c1", 3, AG_CODEC_JSON);
	ag_app_set_option(gone, "loglevel", "error");
	args.timeout = 1;
	args.file = NULL;
	args.value = "1";
	ok_int_eq(ag__cmd_send(gone, &args), 1, "no broker is a runtime failure");
	ag_app_free(gone);
	ag_app_free(app);

	ok_int_eq(kill(child, SIGTERM), 0, "SIGTERM the broker");
	int status = 0;
	ok_int_eq(waitpid(child, &status, 0), child, "it exits");
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "with status 0 (wait status %d)", status);
	ok_int_eq(access(addr_file, F_OK), -1, "and removes its address file");
}

int
main(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/faustc-test-broker-XXXXXX");
	if (!mkdtemp(tmp))
		return 99;
	char addr_file[300], out_file[300];
	path_in(addr_file, sizeof(addr_file), "served.addr");
	path_in(out_file, sizeof(out_file), "served.out");
	/* Fork first, while this process has no librdkafka threads. */
	pid_t child = start_serve(addr_file, out_file);
	if (child < 0)
		return 99;

	test_urls();
	test_embedded();
	test_served(child, addr_file, out_file);

	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmp);
	return tap_done();
}
