/*
 * Kafka plumbing shared by the worker: creating clients from the app's settings, turning
 * a librdkafka queue into a file descriptor the loop can watch, and error conversion.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka.h"

int
ag__kafka_err(rd_kafka_resp_err_t err)
{
	switch (err) {
	case RD_KAFKA_RESP_ERR_NO_ERROR:
		return 0;
	case RD_KAFKA_RESP_ERR__QUEUE_FULL:
		return -ENOBUFS;
	case RD_KAFKA_RESP_ERR__TIMED_OUT:
	case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
		return -ETIMEDOUT;
	case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
	case RD_KAFKA_RESP_ERR__TRANSPORT:
		return AG_ENOBROKER;
	case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
	case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
		return -ENOENT;
	case RD_KAFKA_RESP_ERR__INVALID_ARG:
		return -EINVAL;
	default:
		return AG_EKAFKA;
	}
}

int
ag__kafka_new(rd_kafka_t **out, rd_kafka_type_t type, struct ag__broker *b, struct ag_app *app,
	      const struct ag__kv *extra, size_t nextra, void *opaque, char *err, size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (!conf)
		return -ENOMEM;
	int rc = ag__broker_client_conf(b, app, type, extra, nextra, conf, err, errlen);
	if (rc < 0) {
		rd_kafka_conf_destroy(conf);
		return rc;
	}
	ag__worker_conf_hooks(conf, type);
	rd_kafka_conf_set_opaque(conf, opaque);
	return ag__kafka_create(out, type, conf, err, errlen);
}

/*
 * librdkafka's property table (rd_kafka_conf_properties_show), parsed once: for each
 * property its C/P column, '*', 'C' or 'P'. Rows look like
 * "session.timeout.ms                       |  C  | 1 .. 3600000 | ...".
 */
static char *prop_table;

static void
prop_table_load(void)
{
	size_t len = 0;
	FILE *f = open_memstream(&prop_table, &len);
	if (!f)
		return;
	rd_kafka_conf_properties_show(f);
	fclose(f);
}

int
ag__kafka_prop_applies(const char *name, rd_kafka_type_t type)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, prop_table_load);
	size_t n = strlen(name);
	for (const char *line = prop_table; line && *line;) {
		const char *end = strchr(line, '\n');
		if (strncmp(line, name, n) == 0 && line[n] == ' ') {
			const char *c = strchr(line + n, '|');
			c = c ? c + strspn(c + 1, " ") + 1 : "*";
			char scope = *c;
			if (scope == 'C')
				return type == RD_KAFKA_CONSUMER;
			if (scope == 'P')
				return type == RD_KAFKA_PRODUCER;
			return 1;
		}
		line = end ? end + 1 : NULL;
	}
	return 1;
}

rd_kafka_resp_err_t
ag__kafka_watermarks(rd_kafka_t *rk, const char *topic, int32_t partition, int64_t *lo, int64_t *hi,
		     int timeout_ms)
{
	int64_t *out[2] = {lo, hi};
	static const int64_t spec[2] = {RD_KAFKA_OFFSET_BEGINNING, RD_KAFKA_OFFSET_END};
	rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
	for (int i = 0; i < 2 && !err; i++) {
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(l, topic, partition)->offset = spec[i];
		err = rd_kafka_offsets_for_times(rk, l, timeout_ms);
		if (!err)
			err = l->elems[0].err;
		if (!err)
			*out[i] = l->elems[0].offset;
		rd_kafka_topic_partition_list_destroy(l);
	}
	return err;
}

/* Kafka takes [a-zA-Z0-9._-] in a group.instance.id; anything else becomes '_'. */
static void
sanitize(char *s)
{
	for (; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			*s = '_';
	}
}

int
ag__kafka_instance_id(const struct ag_app *app, char *buf, size_t cap)
{
	if (app->worker_id) {
		int n = snprintf(buf, cap, "%s", app->worker_id);
		return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
	}
	char host[64] = "host", real[PATH_MAX];
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	const char *dir = ag__app_datadir(app);
	if (!realpath(dir, real))
		snprintf(real, sizeof(real), "%s", dir);
	uint64_t h = 14695981039346656037ull; /* FNV-1a */
	for (const char *c = real; *c; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ull;
	int n = snprintf(buf, cap, "%.100s-%.60s-%016llx", app->id, host, (unsigned long long)h);
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	sanitize(buf);
	return 0;
}

int
ag__kafka_create(rd_kafka_t **out, rd_kafka_type_t type, rd_kafka_conf_t *conf, char *err,
		 size_t errlen)
{
	rd_kafka_t *rk = rd_kafka_new(type, conf, err, errlen);
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		return AG_ECONFIG;
	}
	*out = rk;
	return 0;
}

int
ag__queue_fd(rd_kafka_queue_t *q, int fds[2])
{
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return -errno;
	static const char one = 1;
	rd_kafka_queue_io_event_enable(q, fds[1], &one, 1);
	return 0;
}

void
ag__queue_fd_drain(int fd)
{
	char buf[256];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

void
ag__queue_fd_close(rd_kafka_queue_t *q, int fds[2])
{
	if (q)
		rd_kafka_queue_io_event_enable(q, -1, NULL, 0);
	for (int i = 0; i < 2; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}
