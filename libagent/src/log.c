/* The logger: one line per message on stderr, with a UTC timestamp and the level. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

int
ag__log_level_parse(const char *name, enum ag_log_level *out)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	for (size_t i = 0; i < AG__ARRAY_SIZE(names); i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (enum ag_log_level)i;
			return 0;
		}
	}
	if (strcmp(name, "warning") == 0) {
		*out = AG_LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

uint64_t
ag__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The last warnings and errors, for the web page (web/web.c). */
static char recent[AG__LOG_RECENT][AG__LOG_RECENT_LEN];
static size_t recent_next;
static pthread_mutex_t recent_lock = PTHREAD_MUTEX_INITIALIZER;

void
ag__vlog(const struct ag_app *app, enum ag_log_level level, const char *fmt, va_list ap)
{
	if (level < (app ? app->loglevel : AG_LOG_INFO))
		return;
	if ((unsigned)level > AG_LOG_ERROR)
		level = AG_LOG_ERROR;
	struct timespec ts;
	struct tm tm;
	char when[32];
	char line[2048];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	int n = snprintf(line, sizeof(line), "[%s.%03ldZ] %-5s %s: ", when, ts.tv_nsec / 1000000L,
			 level_names[level], app && app->id ? app->id : "faustc");
	if (n < 0)
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	fprintf(stderr, "%s\n", line);
	if (level >= AG_LOG_WARN) {
		/* librdkafka may log from its own threads: the ring has a lock (rarely taken). */
		pthread_mutex_lock(&recent_lock);
		char *slot = recent[recent_next % AG__LOG_RECENT];
		size_t len = strnlen(line, AG__LOG_RECENT_LEN - 1);
		memcpy(slot, line, len);
		slot[len] = '\0';
		recent_next++;
		pthread_mutex_unlock(&recent_lock);
	}
}

size_t
ag__log_recent(char (*out)[AG__LOG_RECENT_LEN], size_t max)
{
	pthread_mutex_lock(&recent_lock);
	size_t n = recent_next < AG__LOG_RECENT ? recent_next : AG__LOG_RECENT;
	n = n < max ? n : max;
	for (size_t i = 0; i < n; i++)
		memcpy(out[i], recent[(recent_next - n + i) % AG__LOG_RECENT], sizeof(out[i]));
	pthread_mutex_unlock(&recent_lock);
	return n;
}

AG_EXPORT void
ag_log(const struct ag_app *app, enum ag_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ag__vlog(app, level, fmt, ap);
	va_end(ap);
}
