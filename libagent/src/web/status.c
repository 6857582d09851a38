/*
 * `faustc status`: a one-screen summary of a running worker, read from its web server
 * (the URL in DATADIR/web.addr unless --web names one). A plain blocking HTTP/1.1 client
 * is enough here: the command runs outside any loop. Rates come from two /metrics scrapes
 * one second apart.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "web.h"

/* GETs path from url (http://host:port). Returns the status and the body (caller frees). */
static int
http_get(const char *url, const char *path, char **body, char *err, size_t errlen)
{
	char host[256], port[16] = "80";
	const char *p = strncmp(url, "http://", 7) == 0 ? url + 7 : NULL;
	if (!p) {
		snprintf(err, errlen, "%s is not an http:// URL", url);
		return -EINVAL;
	}
	size_t hl;
	const char *colon;
	if (*p == '[') {
		const char *close = strchr(p, ']');
		if (!close) {
			snprintf(err, errlen, "bad URL %s", url);
			return -EINVAL;
		}
		hl = (size_t)(close - p - 1);
		p++;
		colon = close[1] == ':' ? close + 1 : NULL;
	} else {
		colon = strchr(p, ':');
		hl = colon ? (size_t)(colon - p) : strcspn(p, "/");
	}
	if (hl == 0 || hl >= sizeof(host)) {
		snprintf(err, errlen, "bad URL %s", url);
		return -EINVAL;
	}
	memcpy(host, p, hl);
	host[hl] = '\0';
	if (colon)
		snprintf(port, sizeof(port), "%.*s", (int)strcspn(colon + 1, "/"), colon + 1);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	int rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -EINVAL;
	}
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	struct timeval tv = {.tv_sec = 5};
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		snprintf(err, errlen, "cannot connect to %s: %s", url, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -ECONNREFUSED;
	}
	freeaddrinfo(ai);
	char req[512];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host);
	if (write(fd, req, (size_t)n) != n) {
		snprintf(err, errlen, "cannot send to %s: %s", url, strerror(errno));
		close(fd);
		return -EIO;
	}
	struct ag__sbuf b = {0};
	char chunk[8192];
	ssize_t got;
	while ((got = read(fd, chunk, sizeof(chunk))) > 0)
		ag__sbuf_append(&b, chunk, (size_t)got);
	close(fd);
	int status = 0;
	char *sep = b.ptr ? strstr(b.ptr, "\r\n\r\n") : NULL;
	if (b.oom || !sep || sscanf(b.ptr, "HTTP/1.%*d %d", &status) != 1) {
		snprintf(err, errlen, "no HTTP answer from %s%s", url, path);
		free(b.ptr);
		return -EPROTO;
	}
	*body = strdup(sep + 4);
	free(b.ptr);
	return *body ? status : -ENOMEM;
}

/* Sum of the samples of metric `name` whose labels contain `with` (NULL: all). */
static double
metric_sum(const char *text, const char *name, const char *with)
{
	double sum = 0;
	size_t nl = strlen(name);
	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (strncmp(l, name, nl) != 0 || (l[nl] != '{' && l[nl] != ' '))
			continue;
		const char *end = strchr(l, '\n');
		size_t len = end ? (size_t)(end - l) : strlen(l);
		char line[1024];
		if (len >= sizeof(line))
			continue;
		memcpy(line, l, len);
		line[len] = '\0';
		if (with && !strstr(line, with))
			continue;
		const char *v = strrchr(line, ' ');
		if (v)
			sum += strtod(v + 1, NULL);
	}
	return sum;
}

static void
fmt_seconds(double s, char *buf, size_t cap)
{
	if (s <= 0)
		snprintf(buf, cap, "-");
	else if (s < 0.001)
		snprintf(buf, cap, "%.0fus", s * 1e6);
	else if (s < 1)
		snprintf(buf, cap, "%.1fms", s * 1e3);
	else
		snprintf(buf, cap, "%.2fs", s);
}

int
ag__cmd_status(const struct ag_app *app, const char *url)
{
	char buf[1024], path[4200], err[512];
	if (!url) {
		snprintf(path, sizeof(path), "%s/web.addr", ag__app_datadir(app));
		FILE *f = fopen(path, "r");
		if (!f || !fgets(buf, sizeof(buf), f)) {
			fprintf(stderr,
				"faustc: no %s: is a worker running with this --datadir (and "
				"without "
				"--no-web)? Or pass --web URL\n",
				path);
			if (f)
				fclose(f);
			return 1;
		}
		fclose(f);
		buf[strcspn(buf, "\r\n")] = '\0';
		url = buf;
	}
	char *health = NULL, *info = NULL, *m1 = NULL, *m2 = NULL;
	int status = 1, hs;
	json_t *h = NULL, *in = NULL;
	if ((hs = http_get(url, "/health", &health, err, sizeof(err))) < 0 ||
	    http_get(url, "/info", &info, err, sizeof(err)) < 0 ||
	    http_get(url, "/metrics", &m1, err, sizeof(err)) < 0) {
		fprintf(stderr, "faustc: %s\n", err);
		goto out;
	}
	sleep(1);
	if (http_get(url, "/metrics", &m2, err, sizeof(err)) < 0) {
		fprintf(stderr, "faustc: %s\n", err);
		goto out;
	}
	h = json_loads(health, 0, NULL);
	in = json_loads(info, 0, NULL);
	if (!h || !in) {
		fprintf(stderr, "faustc: %s does not answer as a faustc worker\n", url);
		goto out;
	}
	printf("%s  worker %s  pid %lld  %s  version %s\n",
	       json_string_value(json_object_get(in, "app")),
	       json_string_value(json_object_get(in, "worker_id")),
	       (long long)json_integer_value(json_object_get(in, "pid")), url,
	       json_string_value(json_object_get(in, "version")));
	printf("health: %s\n", json_string_value(json_object_get(h, "status")));
	const char *ck;
	json_t *cv;
	json_object_foreach(json_object_get(h, "checks"), ck, cv)
	{
		printf("  %-13s %-4s %s\n", ck,
		       json_is_true(json_object_get(cv, "ok")) ? "ok" : "FAIL",
		       json_string_value(json_object_get(cv, "detail")));
	}
	printf("\n%-20s %-24s %10s %9s %8s %11s %9s %8s\n", "AGENT", "TOPIC", "EVENTS", "EVENTS/S",
	       "LAG", "AVG-LATENCY", "IN-FLIGHT", "FAILURES");
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(in, "agents"), i, a)
	{
		const char *name = json_string_value(json_object_get(a, "name"));
		char with[300], lat[32];
		snprintf(with, sizeof(with), "agent=\"%s\"", name);
		double e1 = metric_sum(m1, "faustc_events_in_total", with);
		double e2 = metric_sum(m2, "faustc_events_in_total", with);
		double ls = metric_sum(m2, "faustc_processing_latency_seconds_sum", with);
		double lc = metric_sum(m2, "faustc_processing_latency_seconds_count", with);
		char twith[300];
		const char *topic = json_string_value(json_object_get(a, "topic"));
		snprintf(twith, sizeof(twith), "topic=\"%s\"", topic);
		fmt_seconds(lc > 0 ? ls / lc : 0, lat, sizeof(lat));
		printf("%-20s %-24s %10.0f %9.0f %8.0f %11s %9.0f %8.0f\n", name, topic, e2,
		       e2 - e1, metric_sum(m2, "faustc_consumer_lag", twith), lat,
		       metric_sum(m2, "faustc_agent_inflight_events", with),
		       metric_sum(m2, "faustc_agent_failures_total", with));
	}
	printf("\n%-40s %9s %-10s %8s %8s\n", "PARTITION", "", "STATE", "LAG", "BUFFERED");
	json_array_foreach(json_object_get(in, "partitions"), i, a)
	{
		const char *topic = json_string_value(json_object_get(a, "topic"));
		int p = (int)json_integer_value(json_object_get(a, "partition"));
		char with[400];
		snprintf(with, sizeof(with), "topic=\"%s\",partition=\"%d\"", topic, p);
		printf("%-40s %9d %-10s %8.0f %8lld\n", topic, p,
		       json_string_value(json_object_get(a, "state")),
		       metric_sum(m2, "faustc_consumer_lag", with),
		       (long long)json_integer_value(json_object_get(a, "buffered")));
	}
	printf("\n%-24s %10s %-9s %-12s %s\n", "TABLE", "KEYS", "WINDOWED", "RECOVERING",
	       "RECORDS-LEFT");
	json_array_foreach(json_object_get(in, "tables"), i, a)
	{
		const char *name = json_string_value(json_object_get(a, "name"));
		char with[300];
		snprintf(with, sizeof(with), "table=\"%s\"", name);
		printf("%-24s %10.0f %-9s %-12zu %.0f\n", name,
		       metric_sum(m2, "faustc_table_keys", with),
		       json_is_true(json_object_get(a, "windowed")) ? "yes" : "no",
		       json_array_size(json_object_get(a, "recovering_partitions")),
		       metric_sum(m2, "faustc_table_recovery_remaining", with));
	}
	json_t *errs = json_object_get(in, "recent_errors");
	if (json_array_size(errs)) {
		printf("\nrecent warnings and errors:\n");
		size_t from = json_array_size(errs) > 5 ? json_array_size(errs) - 5 : 0;
		for (i = from; i < json_array_size(errs); i++)
			printf("  %s\n", json_string_value(json_array_get(errs, i)));
	}
	status = hs == 200 ? 0 : 3;
out:
	json_decref(h);
	json_decref(in);
	free(health);
	free(info);
	free(m1);
	free(m2);
	return status;
}
