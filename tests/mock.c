/* A mock Kafka cluster a test can steer: see mock.h. */
#include "mock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "internal.h"

#include "harness.h"

/* Reads one line from fd into buf (without the newline). Returns its length or -1. */
static int
read_line_fd(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return (int)n;
}

static void
answer(FILE *out, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputc('\n', out);
	fflush(out);
}

/* Creates the topics the app of setup declares. Returns 0 or -1. */
static int
create_topics(rd_kafka_mock_cluster_t *mc, ag_app_setup_fn setup)
{
	struct ag_app *app;
	if (ag_app_new(&app) < 0)
		return -1;
	int rc = setup(app) < 0 || ag__app_finalize(app) < 0 ? -1 : 0;
	for (size_t i = 0; rc == 0 && i < app->ntopics; i++) {
		const struct ag_topic *t = app->topics[i];
		rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, t->name, t->partitions, 1);
		if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
			fprintf(stderr, "mock: cannot create %s: %s\n", t->name,
				rd_kafka_err2str(e));
			rc = -1;
		}
	}
	ag_app_free(app);
	return rc;
}

static void
serve(rd_kafka_mock_cluster_t *mc, int in, FILE *out)
{
	char line[512], a[256];
	int x, y, z, w;
	while (read_line_fd(in, line, sizeof(line)) >= 0) {
		rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
		long n = 0;
		if (sscanf(line, "leader %255s %d %d", a, &x, &y) == 3) {
			e = rd_kafka_mock_partition_set_leader(mc, a, x, y);
		} else if (sscanf(line, "coordinator %255s %d", a, &x) == 2) {
			e = rd_kafka_mock_coordinator_set(mc, "group", a, x);
		} else if (sscanf(line, "broker-errors %d %d %d %d", &x, &y, &z, &w) == 4) {
			for (int i = 0; i < z && !e; i++)
				e = rd_kafka_mock_broker_push_request_error_rtts(
					mc, x, (int16_t)y, 1, (rd_kafka_resp_err_t)w, 0);
		} else if (sscanf(line, "errors %d %d %d", &x, &y, &z) == 3) {
			rd_kafka_resp_err_t *errs =
				calloc((size_t)y ? (size_t)y : 1, sizeof(*errs));
			for (int i = 0; errs && i < y; i++)
				errs[i] = (rd_kafka_resp_err_t)z;
			rd_kafka_mock_push_request_errors_array(mc, (int16_t)x, (size_t)y, errs);
			free(errs);
		} else if (sscanf(line, "stack %d %d", &x, &y) == 2) {
			size_t cnt = 0;
			e = rd_kafka_mock_broker_error_stack_cnt(mc, x, (int16_t)y, &cnt);
			n = (long)cnt;
		} else if (sscanf(line, "clear %d", &x) == 1) {
			rd_kafka_mock_clear_request_errors(mc, (int16_t)x);
		} else if (sscanf(line, "rtt %d %d", &x, &y) == 2) {
			e = rd_kafka_mock_broker_set_rtt(mc, x, y);
		} else {
			answer(out, "error unknown command: %s", line);
			continue;
		}
		if (e)
			answer(out, "error %s: %s", line, rd_kafka_err2str(e));
		else
			answer(out, "ok %ld", n);
		fprintf(stderr, "mock: %s: %s\n", line, e ? rd_kafka_err2str(e) : "ok");
	}
}

int
h_mock_start(struct h_mock *m, const char *name, const ag_app_setup_fn *setups, int brokers)
{
	int cmd[2], ans[2];
	memset(m, 0, sizeof(*m));
	if (rd_kafka_wait_destroyed(10000) != 0 || pipe(cmd) < 0)
		return -1;
	if (pipe(ans) < 0) {
		close(cmd[0]);
		close(cmd[1]);
		return -1;
	}
	char log[300];
	snprintf(log, sizeof(log), "%s/%s.log", h_tmp, name);
	fflush(stdout);
	fflush(stderr);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(99);
		close(cmd[1]);
		close(ans[0]);
		int fe = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fe < 0 || dup2(fe, STDERR_FILENO) < 0)
			_exit(99);
		close(fe);
		FILE *out = fdopen(ans[1], "w");
		char err[512], num[16];
		snprintf(num, sizeof(num), "%d", brokers);
		rd_kafka_conf_t *conf = rd_kafka_conf_new();
		if (rd_kafka_conf_set(conf, "test.mock.num.brokers", num, err, sizeof(err)) ||
		    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err))) {
			fprintf(stderr, "mock: %s\n", err);
			_exit(99);
		}
		rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
		rd_kafka_mock_cluster_t *mc = rk ? rd_kafka_handle_mock_cluster(rk) : NULL;
		for (const ag_app_setup_fn *s = setups; out && mc && *s; s++) {
			if (create_topics(mc, *s) < 0)
				mc = NULL;
		}
		if (!out || !mc) {
			fprintf(stderr, "mock: cannot start: %s\n", rk ? "topics" : err);
			_exit(99);
		}
		answer(out, "%s", rd_kafka_mock_cluster_bootstraps(mc));
		serve(mc, cmd[0], out);
		/* The test closed the pipe: the cluster goes with the process. */
		rd_kafka_destroy(rk);
		_exit(0);
	}
	close(cmd[0]);
	close(ans[1]);
	m->pid = pid;
	m->cmd_fd = cmd[1];
	m->answer_fd = ans[0];
	if (read_line_fd(m->answer_fd, m->bootstrap, sizeof(m->bootstrap)) <= 0) {
		h_mock_stop(m);
		return -1;
	}
	snprintf(m->url, sizeof(m->url), "mock://%s", m->bootstrap);
	return 0;
}

long
h_mock_cmd(struct h_mock *m, const char *fmt, ...)
{
	char line[512], reply[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 1)
		return -1;
	line[n++] = '\n';
	if (write(m->cmd_fd, line, (size_t)n) != n ||
	    read_line_fd(m->answer_fd, reply, sizeof(reply)) < 0)
		return -1;
	if (strncmp(reply, "ok", 2) != 0) {
		printf("# mock: %s\n", reply);
		return -1;
	}
	return strtol(reply + 2, NULL, 10);
}

int
h_mock_stop(struct h_mock *m)
{
	int status = -1;
	if (m->cmd_fd > 0)
		close(m->cmd_fd);
	if (m->answer_fd > 0)
		close(m->answer_fd);
	m->cmd_fd = m->answer_fd = -1;
	if (m->pid > 0)
		status = wait_exit(m->pid, 20000);
	m->pid = 0;
	return status;
}
