/*
 * The limit baseline of the faustc benchmark: the withdrawals pipe with nothing on top of
 * librdkafka that the job does not need. The Kafka loop is the one raw_pipe uses
 * (kafka_pipe.c); the per-value work is a single pass over the JSON bytes that finds the
 * top-level "account", "amount" and "country" members, steps over everything else
 * without building anything, and writes the output with one snprintf into a stack buffer.
 * No JSON library, no allocation per event: what a hand-written C loop costs.
 *
 * The scan checks the structure it walks (an object of string keys, values that are
 * strings, numbers, literals or balanced nested containers) but is not a validator: it
 * does not check UTF-8 or the grammar inside skipped numbers and literals. Strings with
 * escapes in the needed fields are counted as malformed, as are values without all three
 * fields; the bench workload has neither, and run.sh checks the output count.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_pipe.h"

struct cursor {
	const char *p;
	const char *end;
};

static void
skip_space(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/*
 * Reads a string at the cursor (which is on its opening quote). On success *s and *len
 * are its raw bytes between the quotes and *escaped says whether they hold a backslash.
 */
static bool
scan_string(struct cursor *c, const char **s, size_t *len, bool *escaped)
{
	const char *p = c->p + 1;

	*escaped = false;
	while (p < c->end && *p != '"') {
		if (*p == '\\') {
			*escaped = true;
			p++;
		}
		p++;
	}
	if (p >= c->end)
		return false;
	*s = c->p + 1;
	*len = (size_t)(p - *s);
	c->p = p + 1;
	return true;
}

/* Steps over one value of any kind; nested containers by counting brackets. */
static bool
skip_value(struct cursor *c)
{
	const char *s;
	size_t len;
	bool escaped;
	int depth = 0;

	do {
		skip_space(c);
		if (c->p >= c->end)
			return false;
		switch (*c->p) {
		case '"':
			if (!scan_string(c, &s, &len, &escaped))
				return false;
			break;
		case '{':
		case '[':
			depth++;
			c->p++;
			break;
		case '}':
		case ']':
			if (depth-- == 0)
				return false;
			c->p++;
			break;
		default: /* a number, a literal, or a ':' or ',' inside a container */
			if (depth == 0 && (*c->p == ':' || *c->p == ','))
				return false;
			c->p++;
			while (c->p < c->end && !strchr(" \t\r\n,:]}\"[{", *c->p))
				c->p++;
			break;
		}
	} while (depth > 0);
	return true;
}

struct withdrawal {
	const char *account, *country;
	size_t account_len, country_len;
	double amount;
	unsigned found; /* bit 0 account, 1 amount, 2 country */
};

/* Reads the number at the cursor into *out (strtod on a bounded copy). */
static bool
scan_number(struct cursor *c, double *out)
{
	char buf[64], *endp;
	size_t n = 0;

	while (c->p + n < c->end && n < sizeof(buf) - 1 && strchr("+-.0123456789eE", c->p[n]))
		n++;
	if (n == 0 || n == sizeof(buf) - 1)
		return false;
	memcpy(buf, c->p, n);
	buf[n] = '\0';
	*out = strtod(buf, &endp);
	if (endp != buf + n)
		return false;
	c->p += n;
	return true;
}

static bool
scan_withdrawal(const char *json, size_t len, struct withdrawal *w)
{
	struct cursor c = {json, json + len};
	const char *key;
	size_t key_len;
	bool escaped;

	w->found = 0;
	skip_space(&c);
	if (c.p >= c.end || *c.p++ != '{')
		return false;
	skip_space(&c);
	if (c.p < c.end && *c.p == '}') {
		c.p++;
		goto end;
	}
	for (;;) {
		skip_space(&c);
		if (c.p >= c.end || *c.p != '"' || !scan_string(&c, &key, &key_len, &escaped))
			return false;
		skip_space(&c);
		if (c.p >= c.end || *c.p++ != ':')
			return false;
		skip_space(&c);
		if (c.p >= c.end)
			return false;
		if (key_len == 7 && !escaped && memcmp(key, "account", 7) == 0 && *c.p == '"') {
			if (!scan_string(&c, &w->account, &w->account_len, &escaped) || escaped)
				return false;
			w->found |= 1;
		} else if (key_len == 6 && !escaped && memcmp(key, "amount", 6) == 0) {
			if (!scan_number(&c, &w->amount))
				return false;
			w->found |= 2;
		} else if (key_len == 7 && !escaped && memcmp(key, "country", 7) == 0 &&
			   *c.p == '"') {
			if (!scan_string(&c, &w->country, &w->country_len, &escaped) || escaped)
				return false;
			w->found |= 4;
		} else if (!skip_value(&c)) {
			return false;
		}
		skip_space(&c);
		if (c.p < c.end && *c.p == ',') {
			c.p++;
			continue;
		}
		if (c.p < c.end && *c.p == '}') {
			c.p++;
			break;
		}
		return false;
	}
end:
	skip_space(&c);
	return c.p == c.end && w->found == 7;
}

/* Filters and transforms one value. Malformed values are counted and skipped. */
static int
process(struct pipe *p, const rd_kafka_message_t *msg)
{
	struct withdrawal w;
	char out[512];
	int n;

	if (!scan_withdrawal(msg->payload, msg->len, &w)) {
		pipe_skip(p, msg);
		return 0;
	}
	if (!(w.amount > 100.0))
		return 0;
	n = snprintf(out, sizeof(out),
		     "{\"account\":\"%.*s\",\"country\":\"%.*s\",\"amount_cents\":%lld}",
		     (int)w.account_len, w.account, (int)w.country_len, w.country,
		     (long long)(w.amount * 100.0 + 0.5));
	if (n < 0 || (size_t)n >= sizeof(out)) {
		pipe_skip(p, msg);
		return 0;
	}
	return pipe_produce(p, w.account, w.account_len, out, (size_t)n);
}

int
main(int argc, char **argv)
{
	static const struct pipe_kind limit = {
		.name = "limit_pipe",
		.label = "limit",
		.group = "bench-limit",
		.process = process,
	};

	return pipe_main(&limit, argc, argv);
}
