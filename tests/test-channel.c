/*
 * In-memory channels inside a worker (embedded broker; the channels never touch it):
 *  - chain: a once-task sends N events into `ch-in` (capacity 64), agent relay reads them
 *    and yields each into `ch-mid` (capacity 16), agent slow takes batches from it and
 *    sleeps after each: every event arrives once, in order, with its key, offsets 0..N-1,
 *    partition 0 and a timestamp; both senders parked (back-pressure) and the log's
 *    channel summary shows no reader ever held more than the capacity;
 *  - headers: events produced to the Kafka topic `ch-src` with headers are echoed into
 *    `ch-hdr` and arrive there with key, value, headers and the Kafka timestamp;
 *  - stop: a task fills `ch-stuck` (capacity 4), whose reader sleeps on its first event;
 *    the task parks on the full channel, gets AG_ESTOPPED at SIGTERM, and the events left
 *    in the channel are counted and logged at warn as dropped at shutdown; before the
 *    stop, /metrics shows the channels' counts and what waits in ch-stuck;
 *  - the worker never subscribes to a channel, and no channel exists on the broker.
 * The children write what they saw into files under the test's directory.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

#define N_CHAIN 5000
#define N_HDR 20

static struct ag_topic *ch_in, *ch_mid, *ch_hdr, *ch_stuck;

static void
write_file(const char *name, const char *text)
{
	char path[400];
	path_in(path, sizeof(path), name);
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* Sends "i" with key "k<i>" for i in 0..N_CHAIN. */
static int
task_chain(struct ag_app *app, void *userdata)
{
	(void)app;
	(void)userdata;
	for (int i = 0; i < N_CHAIN; i++) {
		char k[32], v[32];
		snprintf(k, sizeof(k), "k%d", i);
		snprintf(v, sizeof(v), "%d", i);
		struct ag_bytes key = {k, strlen(k)}, value = {v, strlen(v)};
		TRY(ag_send(ch_in, &key, &value));
	}
	return 0;
}

/* Re-keys nothing: yields key and value into its sink, ch-mid. */
static int
relay(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	(void)userdata;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes k = ag_event_key(ev), v = ag_event_value(ev);
		TRY(ag_stream_yield(s, &k, &v));
	}
	return rc == AG_EOF ? 0 : rc;
}

/* Checks every event of ch-mid; sleeps after each batch (a slow consumer). */
static int
slow(struct ag_stream *s, void *userdata)
{
	struct ag_event **evs;
	size_t n;
	int rc, next = 0, bad = 0;
	(void)userdata;
	char first_bad[200] = "";
	while (next < N_CHAIN && (rc = ag_stream_take(s, 50, 0.05, &evs, &n)) == 0) {
		for (size_t i = 0; i < n; i++, next++) {
			struct ag_event *ev = evs[i];
			char k[32], v[32];
			snprintf(k, sizeof(k), "k%d", next);
			snprintf(v, sizeof(v), "%d", next);
			struct ag_bytes key = ag_event_key(ev), value = ag_event_value(ev);
			int good = key.len == strlen(k) && memcmp(key.ptr, k, key.len) == 0 &&
				   value.len == strlen(v) && memcmp(value.ptr, v, value.len) == 0 &&
				   ag_event_offset(ev) == next && ag_event_partition(ev) == 0 &&
				   ag_event_timestamp(ev) > 0 &&
				   strcmp(ag_event_topic(ev), "ch-mid") == 0;
			if (!good && !bad++)
				snprintf(first_bad, sizeof(first_bad),
					 "event %d: key %.*s value %.*s offset %lld", next,
					 (int)key.len, (const char *)key.ptr, (int)value.len,
					 (const char *)value.ptr, (long long)ag_event_offset(ev));
		}
		TRY(ag_sleep(0.002));
	}
	char text[400];
	snprintf(text, sizeof(text), "events=%d bad=%d %s\n", next, bad, first_bad);
	write_file("chain.txt", text);
	/* Waits for the stop like any agent. */
	while ((rc = ag_stream_next(s, &(struct ag_event *){0})) == 0)
		;
	return rc == AG_EOF ? 0 : rc;
}

/* Checks the echoed Kafka events: key, value, header, timestamp. */
static int
hdr(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc, n = 0, good = 0;
	(void)userdata;
	while (n < N_HDR && (rc = ag_stream_next(s, &ev)) == 0) {
		char k[32], v[32], h[32];
		snprintf(k, sizeof(k), "hk%d", n);
		snprintf(v, sizeof(v), "hv%d", n);
		snprintf(h, sizeof(h), "h%d", n);
		struct ag_bytes key = ag_event_key(ev), value = ag_event_value(ev), hv = {0};
		good += key.len == strlen(k) && memcmp(key.ptr, k, key.len) == 0 &&
			value.len == strlen(v) && memcmp(value.ptr, v, value.len) == 0 &&
			ag_event_header(ev, "trace", &hv) == 0 && hv.len == strlen(h) &&
			memcmp(hv.ptr, h, hv.len) == 0 &&
			ag_event_timestamp(ev) == 1700000000000 + n;
		n++;
	}
	char text[100];
	snprintf(text, sizeof(text), "events=%d good=%d\n", n, good);
	write_file("hdr.txt", text);
	while ((rc = ag_stream_next(s, &ev)) == 0)
		;
	return rc == AG_EOF ? 0 : rc;
}

/* Reads ch-src (Kafka) and does nothing; ag_agent_echo copies its events into ch-hdr. */
static int
src(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	(void)userdata;
	while ((rc = ag_stream_next(s, &ev)) == 0)
		;
	return rc == AG_EOF ? 0 : rc;
}

/* Sends until refused: parks on the full ch-stuck until the worker stops. */
static int
task_stuck(struct ag_app *app, void *userdata)
{
	(void)app;
	(void)userdata;
	int sent = 0, rc;
	for (;;) {
		struct ag_bytes v = {"x", 1};
		if ((rc = ag_send(ch_stuck, NULL, &v)) < 0)
			break;
		sent++;
	}
	char text[100];
	snprintf(text, sizeof(text), "sent=%d rc=%s\n", sent, ag_err_name(rc));
	write_file("stuck.txt", text);
	return 0;
}

/* Takes one event and sleeps until the worker stops. */
static int
stuck(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	(void)userdata;
	if ((rc = ag_stream_next(s, &ev)) == 0) {
		write_file("stuck-reader.txt", "got one\n");
		rc = ag_sleep(1000);
	}
	return rc == AG_EOF ? 0 : rc;
}

static int
setup(struct ag_app *app)
{
	struct ag_topic_opts one = {.partitions = 1};
	struct ag_topic *src_topic;
	struct ag_agent *a;
	TRY(ag_app_set_id(app, "ch"));
	TRY(ag_app_channel(app, "ch-in", 64, &ch_in));
	TRY(ag_app_channel(app, "ch-mid", 16, &ch_mid));
	TRY(ag_app_channel(app, "ch-hdr", 0, &ch_hdr));
	TRY(ag_app_channel(app, "ch-stuck", 4, &ch_stuck));
	TRY(ag_app_topic(app, "ch-src", &one, &src_topic));
	TRY(ag_app_agent(app, "relay", ch_in, relay, NULL, &a));
	TRY(ag_agent_sink_topic(a, ch_mid));
	TRY(ag_app_agent(app, "slow", ch_mid, slow, NULL, NULL));
	TRY(ag_app_agent(app, "src", src_topic, src, NULL, &a));
	TRY(ag_agent_echo(a, ch_hdr));
	TRY(ag_app_agent(app, "hdr", ch_hdr, hdr, NULL, NULL));
	TRY(ag_app_agent(app, "stuck", ch_stuck, stuck, NULL, NULL));
	TRY(ag_app_timer(app, "chain", 0, AG_TIMER_ONCE, task_chain, NULL));
	TRY(ag_app_timer(app, "stuck", 0, AG_TIMER_ONCE, task_stuck, NULL));
	return 0;
}

/* GET /metrics from the worker whose web.addr ("http://127.0.0.1:PORT") is at path. */
static char *
get_metrics(const char *addr_path)
{
	char *url = wait_line(addr_path, 20000);
	int port = 0;
	if (!url || sscanf(url, "http://127.0.0.1:%d", &port) != 1) {
		free(url);
		return NULL;
	}
	free(url);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				  "Connection: close\r\n\r\n";
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	if (!buf || write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
		free(buf);
		close(fd);
		return NULL;
	}
	for (;;) {
		if (len + 1 == cap) {
			char *grown = realloc(buf, cap * 2);
			if (!grown)
				break;
			buf = grown;
			cap *= 2;
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	close(fd);
	return buf;
}

/* Declarations that do not run a worker. */
static void
check_declarations(void)
{
	struct ag_app *app;
	struct ag_topic *c, *c2, *t;
	struct ag_agent *a;
	ok_int_eq(ag_app_new(&app), 0, "app");
	ok_int_eq(ag_app_set_id(app, "decl"), 0, "id");
	ok_int_eq(ag_app_channel(app, "c", 0, &c), 0, "a channel with the default capacity");
	ok(ag_topic_is_channel(c) && ag_topic_partitions(c) == 1 &&
		   strcmp(ag_topic_name(c), "c") == 0,
	   "it is a channel of one partition named c");
	ok_int_eq(ag_app_channel(app, "c", AG_CHANNEL_CAPACITY, &c2), 0, "declared again");
	ok(c2 == c, "the same channel comes back");
	ok_int_eq(ag_app_channel(app, "c", 8, NULL), -EEXIST, "another capacity: -EEXIST");
	ok_int_eq(ag_app_channel(app, "bad name", 0, NULL), -EINVAL, "a bad name: -EINVAL");
	ok_int_eq(ag_app_channel(app, "big", 2000000, NULL), -EINVAL,
		  "a capacity above 1048576: -EINVAL");
	ok_int_eq(ag_app_topic(app, "t", NULL, &t), 0, "a topic");
	ok(!ag_topic_is_channel(t), "a topic is not a channel");
	ok_int_eq(ag_app_channel(app, "t", 0, NULL), -EEXIST, "a channel named like a topic");
	ok_int_eq(ag_app_agent(app, "a", t, src, NULL, &a), 0, "an agent");
	ok_int_eq(ag_agent_through(a, c), -EINVAL, "through a channel: -EINVAL");
	ok_int_eq(ag_app_table(app, "tab", c, NULL, NULL), -EINVAL,
		  "a table on a channel: -EINVAL");
	struct ag_bytes v = {"x", 1};
	ok_int_eq(ag_send(c, NULL, &v), AG_ESTOPPED, "ag_send outside a worker: AG_ESTOPPED");
	ag_app_free(app);
}

int
main(void)
{
	char dir[300], addr[400], log[300], path[300];
	check_declarations();
	if (h_tmp_init("channel") < 0)
		return 99;
	path_in(dir, sizeof(dir), "data");
	snprintf(addr, sizeof(addr), "%s/broker.addr", dir);
	const char *const args[] = {"worker", "--datadir", dir, "-l", "info", NULL};
	pid_t pid = spawn("ch", setup, args);
	char *bootstrap = wait_line(addr, 20000);
	ok(bootstrap != NULL, "the worker hosts the embedded broker");
	if (!bootstrap) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return tap_done();
	}
	rd_kafka_t *p = h_producer_new(bootstrap, NULL);
	/* Producing before the worker created ch-src would auto-create it with 4 partitions. */
	static const char *const topics[] = {"ch-src", NULL};
	ok_int_eq(wait_topics(p, topics, 20000), 0, "the worker created ch-src");
	for (int i = 0; i < N_HDR; i++) {
		char k[32], v[32], h[32];
		snprintf(k, sizeof(k), "hk%d", i);
		snprintf(v, sizeof(v), "hv%d", i);
		snprintf(h, sizeof(h), "h%d", i);
		rd_kafka_headers_t *hs = rd_kafka_headers_new(1);
		rd_kafka_header_add(hs, "trace", -1, h, -1);
		rd_kafka_vu_t vu[] = {
			{.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = "ch-src"},
			{.vtype = RD_KAFKA_VTYPE_PARTITION, .u.i32 = 0},
			{.vtype = RD_KAFKA_VTYPE_KEY, .u.mem = {k, strlen(k)}},
			{.vtype = RD_KAFKA_VTYPE_VALUE, .u.mem = {v, strlen(v)}},
			{.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY},
			{.vtype = RD_KAFKA_VTYPE_TIMESTAMP, .u.i64 = 1700000000000 + i},
			{.vtype = RD_KAFKA_VTYPE_HEADERS, .u.headers = hs},
		};
		rd_kafka_error_t *e = rd_kafka_produceva(p, vu, sizeof(vu) / sizeof(vu[0]));
		rd_kafka_resp_err_t err = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
		if (e) {
			rd_kafka_error_destroy(e);
			rd_kafka_headers_destroy(hs);
		}
		ok(err == RD_KAFKA_RESP_ERR_NO_ERROR, "produce %d to ch-src", i);
	}
	static const char *const channels[] = {"ch-in", "ch-mid", "ch-hdr", "ch-stuck"};
	int on_broker = 0;
	for (size_t i = 0; i < 4; i++)
		on_broker += h_topic_exists(p, channels[i]) != 0;
	ok_int_eq(on_broker, 0, "no channel exists as a topic on the broker");
	producer_close(p, "the events with headers");
	free(bootstrap);

	path_in(path, sizeof(path), "chain.txt");
	char *chain = wait_line(path, 120000);
	ok(chain && strncmp(chain, "events=5000 bad=0 ", 18) == 0,
	   "chain: every event once, in order, key, offset, partition, timestamp (%s)",
	   chain ? chain : "no result");
	free(chain);
	path_in(path, sizeof(path), "hdr.txt");
	char *h = wait_line(path, 60000);
	ok(h && strcmp(h, "events=20 good=20") == 0,
	   "Kafka events echoed into a channel keep key, value, headers, timestamp (%s)",
	   h ? h : "no result");
	free(h);
	path_in(path, sizeof(path), "stuck-reader.txt");
	char *sr = wait_line(path, 60000);
	ok(sr != NULL, "the stuck reader took its first event");
	free(sr);

	path_in(path, sizeof(path), "data/web.addr");
	char *metrics = get_metrics(path);
	ok(metrics && strstr(metrics, "faustc_channel_sent_total{channel=\"ch-in\"} 5000\n") &&
		   strstr(metrics, "faustc_channel_sent_total{channel=\"ch-mid\"} 5000\n"),
	   "/metrics counts the events sent into the channels");
	const char *buffered =
		metrics ? strstr(metrics, "faustc_channel_buffered{channel=\"ch-stuck\"} ") : NULL;
	int held =
		buffered ? atoi(buffered + strlen("faustc_channel_buffered{channel=\"ch-stuck\"} "))
			 : -1;
	ok(held == 3 || held == 4, "/metrics shows the events waiting in ch-stuck (%d)", held);
	free(metrics);

	stop_child(pid, "the worker with channels");
	path_in(path, sizeof(path), "stuck.txt");
	char *st = slurp(path);
	/*
	 * The task parks when ch-stuck holds 4; its reader took one, so a wake-up (another
	 * channel's, they share the parked state) may let it send a fifth before it parks for
	 * good: 4 or 5 sent, all but the one taken left in the channel.
	 */
	int sent = 0;
	char rc_name[40] = "";
	if (st) {
		sscanf(st, "sent=%d rc=%39s", &sent, rc_name);
		st[strcspn(st, "\n")] = '\0'; /* one TAP line */
	}
	ok((sent == 4 || sent == 5) && strcmp(rc_name, "AG_ESTOPPED") == 0,
	   "the task parked on the full channel got AG_ESTOPPED at stop (%s)", st ? st : "none");
	free(st);
	char dropped_text[100], summary_text[100];
	snprintf(dropped_text, sizeof(dropped_text),
		 "channel ch-stuck: %d events dropped at shutdown", sent - 1);
	snprintf(summary_text, sizeof(summary_text), "dropped=%d", sent);
	path_in(log, sizeof(log), "ch.log");
	char *text = slurp(log);
	static const char *const in_line[] = {"channel ch-in: sent=5000", "capacity=64 dropped=0",
					      NULL};
	static const char *const mid_line[] = {"channel ch-mid: sent=5000", "capacity=16 dropped=0",
					       NULL};
	const char *in = text ? find_line(text, in_line) : NULL;
	const char *mid = text ? find_line(text, mid_line) : NULL;
	ok(in && mid, "the channels' summaries: all sent, nothing dropped");
	unsigned long long parks_in = 0, parks_mid = 0;
	unsigned peak_in = 99999, peak_mid = 99999;
	if (in)
		sscanf(strstr(in, "parks="), "parks=%llu peak=%u", &parks_in, &peak_in);
	if (mid)
		sscanf(strstr(mid, "parks="), "parks=%llu peak=%u", &parks_mid, &peak_mid);
	ok(parks_in > 0 && parks_mid > 0, "both senders parked on full channels (%llu, %llu)",
	   parks_in, parks_mid);
	ok(peak_in <= 64 && peak_mid <= 16,
	   "no reader ever held more than the capacity (peaks %u/64, %u/16)", peak_in, peak_mid);
	const char *const dropped[] = {"WARN", dropped_text, NULL};
	ok(text && find_line(text, dropped), "the events left in ch-stuck are logged at warn");
	static const char *const refused[] = {
		"WARN", "channel ch-stuck: 1 sends refused while the worker stopped", NULL};
	ok(text && find_line(text, refused), "the refused send is logged at warn");
	const char *const summary[] = {"channel ch-stuck: sent=", summary_text, NULL};
	ok(text && find_line(text, summary), "and counted in its summary (%s)", summary_text);
	static const char *const subscribed[] = {"partitions assigned", "ch-in[", NULL};
	ok(text && !find_line(text, subscribed), "the worker did not subscribe to a channel");
	free(text);
	check_log_clean("ch");
	h_tmp_cleanup();
	return tap_done();
}
