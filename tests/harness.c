/* The broker tests' shared harness: see harness.h. */
#define HARNESS_IMPL
#include "harness.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char h_tmp[256];
const char *h_kafka;
void (*h_tick)(void);
int h_delivery_failures;
void (*h_delivered)(const rd_kafka_message_t *m);

int
h_tmp_init(const char *name)
{
	const char *k = getenv("FAUSTC_TEST_KAFKA");
	h_kafka = k && *k ? k : NULL;
	if (h_kafka)
		printf("# on Kafka at %s\n", h_kafka);
	snprintf(h_tmp, sizeof(h_tmp), "/tmp/faustc-test-%s-XXXXXX", name);
	return mkdtemp(h_tmp) ? 0 : -1;
}

const char *
h_bootstrap(const char *url)
{
	if (strncmp(url, "mock://", 7) == 0)
		return url + 7;
	if (strncmp(url, "kafka://", 8) == 0)
		return url + 8;
	return url;
}

int
h_url_ok(const char *url)
{
	const char *scheme = h_kafka ? "kafka://" : "mock://";
	return url && strncmp(url, scheme, strlen(scheme)) == 0 && url[strlen(scheme)];
}

static void
drop_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	(void)level;
	(void)fac;
	(void)buf;
}

/* Runs one admin request (already started on q) and returns its event, or NULL. */
static rd_kafka_event_t *
admin_wait(rd_kafka_queue_t *q, const char *what)
{
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
	if (!ev)
		printf("# reset: %s: no answer\n", what);
	else if (rd_kafka_event_error(ev))
		printf("# reset: %s: %s\n", what, rd_kafka_event_error_string(ev));
	return ev;
}

static int
user_topics(rd_kafka_t *rk, const struct rd_kafka_metadata **md)
{
	if (rd_kafka_metadata(rk, 1, NULL, md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return -1;
	int n = 0;
	for (int i = 0; i < (*md)->topic_cnt; i++)
		n += strncmp((*md)->topics[i].topic, "__", 2) != 0;
	return n;
}

void
h_kafka_reset(void)
{
	if (!h_kafka)
		return;
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "bootstrap.servers", h_kafka, err, sizeof(err));
	rd_kafka_conf_set_log_cb(conf, drop_log);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk) {
		printf("# Bail out! reset: %s\n", err);
		exit(99);
	}
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	/*
	 * Groups first: a group's offsets for a deleted topic would otherwise linger. A
	 * stopped worker stays a static member until its session times out (10 s): retry
	 * until the group is empty and gone.
	 */
	uint64_t groups_end = now_ms() + 20000;
	const struct rd_kafka_group_list *gl = NULL;
again:
	if (rd_kafka_list_groups(rk, NULL, &gl, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    gl->group_cnt > 0) {
		int busy = 0;
		rd_kafka_DeleteGroup_t **dg = calloc((size_t)gl->group_cnt, sizeof(*dg));
		for (int i = 0; i < gl->group_cnt; i++)
			dg[i] = rd_kafka_DeleteGroup_new(gl->groups[i].group);
		rd_kafka_DeleteGroups(rk, dg, (size_t)gl->group_cnt, NULL, q);
		rd_kafka_event_t *ev = admin_wait(q, "DeleteGroups");
		if (ev) {
			size_t cnt;
			const rd_kafka_group_result_t **res = rd_kafka_DeleteGroups_result_groups(
				rd_kafka_event_DeleteGroups_result(ev), &cnt);
			for (size_t i = 0; i < cnt; i++) {
				const rd_kafka_error_t *e = rd_kafka_group_result_error(res[i]);
				busy += e &&
					rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP;
				if (e &&
				    (rd_kafka_error_code(e) != RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP ||
				     now_ms() > groups_end))
					printf("# reset: group %s: %s\n",
					       rd_kafka_group_result_name(res[i]),
					       rd_kafka_error_string(e));
			}
			rd_kafka_event_destroy(ev);
		}
		rd_kafka_DeleteGroup_destroy_array(dg, (size_t)gl->group_cnt);
		free(dg);
		rd_kafka_group_list_destroy(gl);
		gl = NULL;
		if (busy && now_ms() <= groups_end) {
			usleep(200 * 1000);
			goto again;
		}
	}
	if (gl)
		rd_kafka_group_list_destroy(gl);
	const struct rd_kafka_metadata *md;
	int n = user_topics(rk, &md);
	if (n > 0) {
		rd_kafka_DeleteTopic_t **dt = calloc((size_t)n, sizeof(*dt));
		int k = 0;
		for (int i = 0; i < md->topic_cnt; i++) {
			if (strncmp(md->topics[i].topic, "__", 2) != 0)
				dt[k++] = rd_kafka_DeleteTopic_new(md->topics[i].topic);
		}
		rd_kafka_DeleteTopics(rk, dt, (size_t)k, NULL, q);
		rd_kafka_event_t *ev = admin_wait(q, "DeleteTopics");
		if (ev)
			rd_kafka_event_destroy(ev);
		rd_kafka_DeleteTopic_destroy_array(dt, (size_t)k);
		free(dt);
	}
	if (n >= 0)
		rd_kafka_metadata_destroy(md);
	uint64_t end = now_ms() + 30000;
	while (n != 0 && now_ms() < end) {
		usleep(50 * 1000);
		if ((n = user_topics(rk, &md)) >= 0)
			rd_kafka_metadata_destroy(md);
	}
	if (n != 0)
		printf("# reset: %d topics are still there after 30 s\n", n);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
}

static rd_kafka_t *
admin_new(const char *bootstrap)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
	rd_kafka_conf_set_log_cb(conf, drop_log);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk) {
		printf("# Bail out! admin client: %s\n", err);
		exit(99);
	}
	return rk;
}

rd_kafka_topic_partition_list_t *
h_group_committed(const char *bootstrap, const char *group)
{
	rd_kafka_t *rk = admin_new(bootstrap);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_ListConsumerGroupOffsets_t *req =
		rd_kafka_ListConsumerGroupOffsets_new(group, NULL);
	rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, NULL, q);
	rd_kafka_ListConsumerGroupOffsets_destroy(req);
	rd_kafka_topic_partition_list_t *out = NULL;
	rd_kafka_event_t *ev = admin_wait(q, "ListConsumerGroupOffsets");
	if (ev && !rd_kafka_event_error(ev)) {
		size_t cnt;
		const rd_kafka_group_result_t **res =
			rd_kafka_ListConsumerGroupOffsets_result_groups(
				rd_kafka_event_ListConsumerGroupOffsets_result(ev), &cnt);
		const rd_kafka_error_t *e = cnt == 1 ? rd_kafka_group_result_error(res[0]) : NULL;
		if (cnt == 1 && !e) {
			const rd_kafka_topic_partition_list_t *l =
				rd_kafka_group_result_partitions(res[0]);
			out = rd_kafka_topic_partition_list_new(l ? l->cnt : 0);
			for (int i = 0; l && i < l->cnt; i++) {
				if (!l->elems[i].err && l->elems[i].offset >= 0)
					rd_kafka_topic_partition_list_add(out, l->elems[i].topic,
									  l->elems[i].partition)
						->offset = l->elems[i].offset;
			}
		} else {
			printf("# offsets of group %s: %s\n", group,
			       e ? rd_kafka_error_string(e) : "no result");
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
	return out;
}

/* One admin call on group with retries while it has members; 0 or the last error code. */
static rd_kafka_resp_err_t
group_call(rd_kafka_t *rk, rd_kafka_queue_t *q, const char *group,
	   const rd_kafka_topic_partition_list_t *to)
{
	rd_kafka_event_t *ev;
	const rd_kafka_group_result_t **res;
	size_t cnt = 0;
	if (!to) {
		rd_kafka_DeleteGroup_t *dg = rd_kafka_DeleteGroup_new(group);
		rd_kafka_DeleteGroups(rk, &dg, 1, NULL, q);
		rd_kafka_DeleteGroup_destroy(dg);
		if (!(ev = admin_wait(q, "DeleteGroups")))
			return RD_KAFKA_RESP_ERR__TIMED_OUT;
		res = rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev),
							  &cnt);
	} else {
		rd_kafka_AlterConsumerGroupOffsets_t *a =
			rd_kafka_AlterConsumerGroupOffsets_new(group, to);
		rd_kafka_AlterConsumerGroupOffsets(rk, &a, 1, NULL, q);
		rd_kafka_AlterConsumerGroupOffsets_destroy(a);
		if (!(ev = admin_wait(q, "AlterConsumerGroupOffsets")))
			return RD_KAFKA_RESP_ERR__TIMED_OUT;
		res = rd_kafka_AlterConsumerGroupOffsets_result_groups(
			rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &cnt);
	}
	rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
	if (!err && cnt == 1) {
		const rd_kafka_error_t *e = rd_kafka_group_result_error(res[0]);
		const rd_kafka_topic_partition_list_t *l = rd_kafka_group_result_partitions(res[0]);
		err = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
		for (int i = 0; !err && l && i < l->cnt; i++)
			err = l->elems[i].err;
	} else if (!err) {
		err = RD_KAFKA_RESP_ERR__FAIL;
	}
	rd_kafka_event_destroy(ev);
	return err;
}

int
h_group_rewind(const char *bootstrap, const char *group, const rd_kafka_topic_partition_list_t *to,
	       int timeout_ms)
{
	rd_kafka_t *rk = admin_new(bootstrap);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	rd_kafka_resp_err_t err;
	/* A killed static member stays in the group until its session times out. */
	while ((err = group_call(rk, q, group, NULL)) != RD_KAFKA_RESP_ERR_NO_ERROR &&
	       err != RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND && now_ms() < end)
		usleep(200 * 1000);
	if (err == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND)
		err = RD_KAFKA_RESP_ERR_NO_ERROR;
	if (!err && to && to->cnt > 0)
		err = group_call(rk, q, group, to);
	if (err)
		printf("# rewinding group %s: %s\n", group, rd_kafka_err2str(err));
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(rk);
	return err ? -1 : 0;
}

void
h_withdrawal(rd_kafka_t *p, int32_t partition, const char *user, const char *country, double amount,
	     int64_t ts)
{
	char value[160];
	snprintf(value, sizeof(value), "{\"user\": \"%s\", \"country\": \"%s\", \"amount\": %.2f}",
		 user, country, amount);
	rd_kafka_vu_t vu[] = {
		{.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = "withdrawals"},
		{.vtype = RD_KAFKA_VTYPE_KEY, .u.mem = {(void *)user, strlen(user)}},
		{.vtype = RD_KAFKA_VTYPE_VALUE, .u.mem = {value, strlen(value)}},
		{.vtype = RD_KAFKA_VTYPE_TIMESTAMP, .u.i64 = ts},
		{.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY},
		{.vtype = RD_KAFKA_VTYPE_PARTITION, .u.i32 = partition},
	};
	size_t n = sizeof(vu) / sizeof(vu[0]) - (partition < 0 ? 1 : 0);
	rd_kafka_error_t *e;
	while ((e = rd_kafka_produceva(p, vu, n)) &&
	       rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
		rd_kafka_error_destroy(e);
		rd_kafka_poll(p, 50);
	}
	if (e) {
		printf("# Bail out! produce: %s\n", rd_kafka_error_string(e));
		exit(99);
	}
}

/* The value following option name in a NULL-terminated argument list, or NULL. */
static const char *
arg_value(const char *const *args, const char *name)
{
	for (; *args; args++) {
		if (strcmp(*args, name) == 0)
			return args[1];
	}
	return NULL;
}

void
h_tmp_cleanup(void)
{
	if (getenv("KEEP")) {
		printf("# kept %s\n", h_tmp);
		return;
	}
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h_tmp);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", h_tmp);
}

uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void
path_in(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", h_tmp, name);
}

char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	for (size_t got; buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
		n += got;
		if (cap - n - 1 == 0) {
			char *grown = realloc(buf, cap * 2);
			if (!grown) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = grown;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf)
		buf[n] = '\0';
	return buf;
}

const char *
find_line(const char *text, const char *const *needles)
{
	for (const char *line = text; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		int all = 1;
		for (const char *const *n = needles; *n && all; n++) {
			const char *hit = strstr(line, *n);
			all = hit && hit + strlen(*n) <= line + len;
		}
		if (all)
			return line;
		line = end ? end + 1 : NULL;
	}
	return NULL;
}

char *
wait_line(const char *path, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	do {
		char *text = slurp(path);
		if (text && strchr(text, '\n')) {
			text[strcspn(text, "\r\n")] = '\0';
			return text;
		}
		free(text);
		usleep(20 * 1000);
	} while (now_ms() < end);
	return NULL;
}

void
sleep_ticking(int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	while (now_ms() < end) {
		if (h_tick)
			h_tick();
		usleep(10 * 1000);
	}
}

/* ---- children ---- */

/* The children spawn() started, by pid, for what wait_exit says about a hung one. */
static struct {
	pid_t pid;
	char name[64];
} children[256];
static size_t nchildren;

pid_t
spawn(const char *name, ag_app_setup_fn setup, const char *const *args)
{
	/* Kafka: a `broker`, or a worker that would host one, means a fresh cluster. */
	const char *kafka_args[4] = {NULL};
	char kafka_url[512], addr_file[300] = "";
	if (h_kafka && (strcmp(args[0], "broker") == 0 ||
			(strcmp(args[0], "worker") == 0 && !arg_value(args, "--broker")))) {
		h_kafka_reset();
		snprintf(kafka_url, sizeof(kafka_url), "kafka://%s", h_kafka);
		kafka_args[0] = "--broker";
		kafka_args[1] = kafka_url;
		const char *dir = arg_value(args, "--datadir");
		if (strcmp(args[0], "worker") == 0 && dir) {
			/* What the embedded broker would write, for the test to wait on. */
			char tmp[300];
			snprintf(addr_file, sizeof(addr_file), "%s/broker.addr", dir);
			snprintf(tmp, sizeof(tmp), "%s.tmp", addr_file);
			mkdir(dir, 0755);
			FILE *f = fopen(tmp, "w");
			if (!f || fprintf(f, "%s\n", h_kafka) < 0 || fclose(f) != 0 ||
			    rename(tmp, addr_file) < 0) {
				printf("# Bail out! cannot write %s\n", addr_file);
				exit(99);
			}
		}
	}
	if (rd_kafka_wait_destroyed(10000) != 0) {
		printf("# Bail out! librdkafka handles still alive: cannot fork safely\n");
		exit(99);
	}
	fflush(stdout);
	fflush(stderr);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid > 0 && nchildren < sizeof(children) / sizeof(children[0])) {
		children[nchildren].pid = pid;
		snprintf(children[nchildren].name, sizeof(children[nchildren].name), "%s", name);
		nchildren++;
	}
	if (pid != 0)
		return pid;
	/* A test that dies (or bails out) must not leave its broker and workers running. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(99);
	char out[300], log[300], *argv[32];
	snprintf(out, sizeof(out), "%s/%s.out", h_tmp, name);
	snprintf(log, sizeof(log), "%s/%s.log", h_tmp, name);
	int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int fe = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fo < 0 || fe < 0 || dup2(fo, STDOUT_FILENO) < 0 || dup2(fe, STDERR_FILENO) < 0)
		_exit(99);
	close(fo);
	close(fe);
	int argc = 0;
	argv[argc++] = "test";
	for (; *args && argc < 29; args++)
		argv[argc++] = (char *)*args;
	for (const char *const *k = kafka_args; *k; k++)
		argv[argc++] = (char *)*k;
	argv[argc] = NULL;
	/* exit(), not _exit(): under ASan the leak check then covers the worker too. */
	exit(ag_app_main(argc, argv, setup));
}

/*
 * A child that does not exit: the end of its log and, where gdb is installed, its threads'
 * stacks, as TAP comments (what is needed to find a hang seen once in CI).
 */
static void
hung_report(pid_t pid)
{
	const char *name = NULL;
	for (size_t i = 0; i < nchildren && !name; i++)
		if (children[i].pid == pid)
			name = children[i].name;
	char cmd[1024];
	if (name) {
		snprintf(cmd, sizeof(cmd), "tail -n 25 '%s/%s.log' | sed 's/^/#   /'", h_tmp, name);
		printf("# the end of %s.log:\n", name);
		fflush(stdout);
		if (system(cmd) != 0)
			printf("#   (unreadable)\n");
	}
	snprintf(cmd, sizeof(cmd),
		 "command -v gdb >/dev/null && timeout 30 gdb -p %d -batch -nx "
		 "-ex 'thread apply all bt 12' 2>/dev/null | grep -E '^(Thread|#)' | "
		 "sed 's/^/#   /' | head -n 120",
		 (int)pid);
	fflush(stdout);
	if (system(cmd) != 0)
		printf("#   (no stacks: gdb missing or not allowed)\n");
	fflush(stdout);
}

int
wait_exit(pid_t pid, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	int status;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r < 0)
			return -1;
		if (now_ms() > end) {
			printf("# pid %d did not exit within %d ms: killing it\n", (int)pid,
			       timeout_ms);
			hung_report(pid);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		usleep(20 * 1000);
	}
}

int
h_log_clean(const char *name)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/%s.log", h_tmp, name);
	char *text = slurp(path);
	int clean = text && !strstr(text, "runtime error:") && !strstr(text, "Sanitizer") &&
		    !strstr(text, "still has handles");
	free(text);
	return clean;
}

/* ---- plain librdkafka clients ---- */

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	if (m->err) {
		h_delivery_failures++;
		printf("# delivery to %s failed: %s\n", rd_kafka_topic_name(m->rkt),
		       rd_kafka_err2str(m->err));
	} else if (h_delivered) {
		h_delivered(m);
	}
}

rd_kafka_t *
client_new(rd_kafka_type_t type, const char *bootstrap, const char *const *kv)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) ||
	    rd_kafka_conf_set(conf, "broker.address.family", "v4", err, sizeof(err))) {
		printf("# Bail out! %s\n", err);
		exit(99);
	}
	for (; kv && *kv; kv += 2) {
		if (rd_kafka_conf_set(conf, kv[0], kv[1], err, sizeof(err))) {
			printf("# Bail out! %s\n", err);
			exit(99);
		}
	}
	if (type == RD_KAFKA_PRODUCER)
		rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
	if (!rk) {
		printf("# Bail out! %s\n", err);
		exit(99);
	}
	return rk;
}

rd_kafka_t *
h_producer_new(const char *bootstrap, const char *const *kv)
{
	const char *conf[32] = {"partitioner", "murmur2_random", "linger.ms", "5"};
	size_t n = 4;
	for (; kv && *kv && n + 2 < 32; kv += 2) {
		conf[n++] = kv[0];
		conf[n++] = kv[1];
	}
	conf[n] = NULL;
	return client_new(RD_KAFKA_PRODUCER, bootstrap, conf);
}

rd_kafka_t *
producer_new(const char *bootstrap)
{
	return h_producer_new(bootstrap, NULL);
}

int
wait_topics(rd_kafka_t *rk, const char *const *names, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	do {
		const struct rd_kafka_metadata *md;
		if (rd_kafka_metadata(rk, 1, NULL, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
			int missing = 0;
			for (const char *const *n = names; *n; n++) {
				int found = 0;
				for (int i = 0; i < md->topic_cnt && !found; i++)
					found = strcmp(md->topics[i].topic, *n) == 0 &&
						!md->topics[i].err;
				missing += !found;
			}
			rd_kafka_metadata_destroy(md);
			if (!missing)
				return 0;
		}
		usleep(50 * 1000);
	} while (now_ms() < end);
	return -ETIMEDOUT;
}

int
h_topic_exists(rd_kafka_t *rk, const char *topic)
{
	const struct rd_kafka_metadata *md;
	if (rd_kafka_metadata(rk, 1, NULL, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return -1;
	int found = 0;
	for (int i = 0; i < md->topic_cnt && !found; i++)
		found = strcmp(md->topics[i].topic, topic) == 0 && !md->topics[i].err;
	rd_kafka_metadata_destroy(md);
	return found;
}

void
h_produce(rd_kafka_t *rk, const char *topic, int32_t partition, const void *key, size_t key_len,
	  const void *value, size_t len, void *opaque)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	for (;;) {
		if (rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, (void *)value, len, key,
				     key_len, opaque) == 0)
			break;
		if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			h_delivery_failures++;
			printf("# cannot produce to %s: %s\n", topic,
			       rd_kafka_err2str(rd_kafka_last_error()));
			break;
		}
		rd_kafka_poll(rk, 10);
	}
	rd_kafka_topic_destroy(rkt);
}

void
produce(rd_kafka_t *rk, const char *topic, int32_t partition, const char *key, const void *value,
	size_t len)
{
	h_produce(rk, topic, partition, key, key ? strlen(key) : 0, value, len, NULL);
}

void
produce_text(rd_kafka_t *rk, const char *topic, int32_t partition, const char *key,
	     const char *value)
{
	produce(rk, topic, partition, key, value, strlen(value));
}

rd_kafka_resp_err_t
h_producer_flush_close(rd_kafka_t *rk)
{
	rd_kafka_resp_err_t err = rd_kafka_flush(rk, 30000);
	rd_kafka_destroy(rk);
	return err;
}

/* ---- the output collector ---- */

/* A NUL-terminated copy of len bytes, NULL for NULL. */
static char *
copy_or_null(const void *p, size_t len)
{
	if (!p)
		return NULL;
	char *s = malloc(len + 1);
	if (!s)
		abort();
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

void
coll_open(struct coll *c, const char *bootstrap, const char *topic, int partitions)
{
	static const char *const conf[] = {"group.id", "wt-test-reader", "enable.auto.commit",
					   "false", NULL};
	memset(c, 0, sizeof(*c));
	c->rk = client_new(RD_KAFKA_CONSUMER, bootstrap, conf);
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
	for (int p = 0; p < partitions; p++)
		rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_resp_err_t err = rd_kafka_assign(c->rk, l);
	if (err)
		printf("# assign %s: %s\n", topic, rd_kafka_err2str(err));
	rd_kafka_topic_partition_list_destroy(l);
}

static void
copy_headers(struct msg *out, const rd_kafka_message_t *m)
{
	rd_kafka_headers_t *h;
	if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return;
	size_t n = rd_kafka_header_cnt(h);
	out->headers = calloc(n ? n : 1, sizeof(*out->headers));
	if (!out->headers)
		abort();
	const char *name;
	const void *value;
	size_t len;
	for (size_t i = 0; i < n && !rd_kafka_header_get_all(h, i, &name, &value, &len); i++) {
		struct h_header *hd = &out->headers[out->nheaders++];
		hd->name = copy_or_null(name, strlen(name));
		hd->value = copy_or_null(value, len);
		hd->len = len;
	}
}

void
coll_poll(struct coll *c, int ms)
{
	rd_kafka_message_t *m;
	while ((m = rd_kafka_consumer_poll(c->rk, ms)) != NULL) {
		ms = 0;
		if (m->err) {
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				printf("# consumer: %s\n", rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			continue;
		}
		if (c->n == c->cap) {
			c->cap = c->cap ? c->cap * 2 : 256;
			c->m = realloc(c->m, c->cap * sizeof(*c->m));
			if (!c->m)
				abort();
		}
		struct msg *out = &c->m[c->n++];
		*out = (struct msg){m->partition,
				    m->offset,
				    copy_or_null(m->key, m->key_len),
				    m->key ? m->key_len : 0,
				    copy_or_null(m->payload, m->len),
				    m->payload ? m->len : 0,
				    NULL,
				    0};
		copy_headers(out, m);
		rd_kafka_message_destroy(m);
	}
}

size_t
coll_wait(struct coll *c, size_t n, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	while (c->n < n && now_ms() < end) {
		coll_poll(c, 20);
		if (h_tick)
			h_tick();
	}
	return c->n;
}

void
coll_close(struct coll *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->m[i].key);
		free(c->m[i].value);
		for (size_t j = 0; j < c->m[i].nheaders; j++) {
			free(c->m[i].headers[j].name);
			free(c->m[i].headers[j].value);
		}
		free(c->m[i].headers);
	}
	free(c->m);
	rd_kafka_destroy(c->rk);
	memset(c, 0, sizeof(*c));
}

const char *
msg_header(const struct msg *m, const char *name)
{
	for (size_t i = 0; i < m->nheaders; i++) {
		if (strcmp(m->headers[i].name, name) == 0)
			return m->headers[i].value;
	}
	return NULL;
}

/*
 * rd_kafka_query_watermark_offsets of librdkafka < 2.3 never returns while the partition's
 * leader is down (librdkafka #2588); offsets_for_times keeps its timeout.
 */
static rd_kafka_resp_err_t
watermarks(rd_kafka_t *rk, const char *topic, int32_t p, int64_t *low, int64_t *high)
{
	int64_t *out[2] = {low, high};
	static const int64_t spec[2] = {RD_KAFKA_OFFSET_BEGINNING, RD_KAFKA_OFFSET_END};
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	for (int i = 0; i < 2 && !err; i++) {
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(l, topic, p)->offset = spec[i];
		err = rd_kafka_offsets_for_times(rk, l, 10000);
		if (!err)
			err = l->elems[0].err;
		if (!err)
			*out[i] = l->elems[0].offset;
		rd_kafka_topic_partition_list_destroy(l);
	}
	return err;
}

int
group_offsets(const char *bootstrap, const char *group, const char *topic, int partitions,
	      int64_t *committed, int64_t *low, int64_t *high)
{
	const char *const conf[] = {"group.id", group, "enable.auto.commit", "false", NULL};
	rd_kafka_t *rk = client_new(RD_KAFKA_CONSUMER, bootstrap, conf);
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
	for (int p = 0; p < partitions; p++)
		rd_kafka_topic_partition_list_add(l, topic, p);
	rd_kafka_resp_err_t err = rd_kafka_committed(rk, l, 10000);
	int rc = err ? -1 : 0;
	if (err)
		printf("# committed(%s, %s): %s\n", group, topic, rd_kafka_err2str(err));
	for (int p = 0; p < partitions && rc == 0; p++) {
		int64_t lo;
		committed[p] = l->elems[p].err ? -2 : l->elems[p].offset;
		err = watermarks(rk, topic, p, low ? &low[p] : &lo, &high[p]);
		if (err) {
			printf("# watermarks of %s[%d]: %s\n", topic, p, rd_kafka_err2str(err));
			rc = -1;
		}
	}
	rd_kafka_topic_partition_list_destroy(l);
	rd_kafka_destroy(rk);
	return rc;
}

ag_app_setup_fn
h_module_setup(int argc, char **argv, const char *test)
{
	if (argc < 2) {
		printf("usage: %s build/examples/APP.so\n", test);
		exit(99);
	}
	void *mod = dlopen(argv[1], RTLD_NOW);
	const struct ag_module *entry = mod ? dlsym(mod, "ag_module_entry") : NULL;
	if (!entry) {
		printf("# Bail out! cannot load %s: %s\n", argv[1], dlerror());
		exit(99);
	}
	return entry->setup;
}

double
h_json_num(const char *text, const char *name)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\":", name);
	const char *p = text ? strstr(text, pat) : NULL;
	return p ? strtod(p + strlen(pat), NULL) : NAN;
}
