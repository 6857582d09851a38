/*
 * `faustc send TOPIC|@AGENT [--key K] [VALUE | --file FILE]`: produces values to a topic of
 * the app, or to an agent's topic. Every value is checked against the topic's codec before
 * anything is sent, so a bad line in a file sends nothing. Keys are partitioned with
 * murmur2, as the worker and Java clients do.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "internal.h"

#define SEND_DEFAULT_TIMEOUT 10.0
#define PROGRESS_FROM 10000
#define MAX_REPORTED 20

struct values {
	char *data; /* the file's contents, lines NUL-terminated in place */
	char **ptr; /* each value */
	size_t *len; /* its length */
	char **kptr; /* each key (with --key-delimiter), else NULL */
	size_t *klen;
	struct ag_buf conv; /* values converted from JSON to msgpack */
	size_t n;
};

struct delivery {
	size_t total;
	size_t ok;
	size_t failed;
	size_t next_progress;
	rd_kafka_resp_err_t first_err;
	int32_t partition; /* of the last delivered value */
	int64_t offset;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("faustc send: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Lists the declared topics and agents into buf, for "unknown target" messages. */
static void
list_targets(const struct ag_app *app, char *buf, size_t cap)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < app->ntopics && used < cap; i++) {
		if (app->topics[i]->internal)
			continue;
		int n = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "",
				 app->topics[i]->name);
		used += n > 0 ? (size_t)n : 0;
	}
	for (size_t i = 0; i < app->nagents && used < cap; i++) {
		int n = snprintf(buf + used, cap - used, "%s@%s", used ? ", " : "",
				 app->agents[i]->name);
		used += n > 0 ? (size_t)n : 0;
	}
	if (!buf[0])
		snprintf(buf, cap, "(none)");
}

static struct ag_topic *
resolve_target(const struct ag_app *app, const char *target)
{
	char known[2048];
	if (target[0] == '@') {
		struct ag_agent *a = ag_app_find_agent(app, target + 1);
		if (a && a->source)
			return a->source;
		list_targets(app, known, sizeof(known));
		say("the app has no agent %s; it declares: %s", target + 1, known);
		return NULL;
	}
	struct ag_topic *t = ag_app_find_topic(app, target);
	if (t)
		return t;
	list_targets(app, known, sizeof(known));
	say("the app declares no topic %s; send to one of: %s", target, known);
	return NULL;
}

static void
values_free(struct values *v)
{
	free(v->data);
	free(v->ptr);
	free(v->len);
	free(v->kptr);
	free(v->klen);
}

/*
 * With --key-delimiter D, a line is KEY D VALUE, split at the first D (kcat's -K). Returns
 * 0, or 2 after naming the first line without the delimiter.
 */
static int
split_keys(const struct ag__send_args *args, struct values *v)
{
	size_t dlen = strlen(args->key_delimiter);
	v->kptr = malloc((v->n ? v->n : 1) * sizeof(*v->kptr));
	v->klen = malloc((v->n ? v->n : 1) * sizeof(*v->klen));
	if (!v->kptr || !v->klen) {
		say("out of memory");
		return 1;
	}
	for (size_t i = 0; i < v->n; i++) {
		char *d = dlen ? memmem(v->ptr[i], v->len[i], args->key_delimiter, dlen) : NULL;
		if (!d) {
			say("%s:%zu: no key delimiter '%s' in the line; write KEY%sVALUE",
			    args->file ? args->file : "VALUE", i + 1, args->key_delimiter,
			    args->key_delimiter);
			return 2;
		}
		v->kptr[i] = v->ptr[i];
		v->klen[i] = (size_t)(d - v->ptr[i]);
		v->len[i] -= v->klen[i] + dlen;
		v->ptr[i] = d + dlen;
	}
	return 0;
}

/* Splits a file into lines (a trailing empty line is not a value). Returns 0, -errno. */
static int
read_values(const char *path, struct values *v)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (!f)
		return -errno;
	size_t cap = 1 << 16, len = 0;
	char *data = malloc(cap);
	int rc = 0;
	while (data) {
		len += fread(data + len, 1, cap - len - 1, f);
		if (ferror(f)) {
			rc = -EIO;
			break;
		}
		if (feof(f))
			break;
		if (cap - len - 1 == 0) {
			char *grown = realloc(data, cap * 2);
			if (!grown) {
				free(data);
				data = NULL;
				break;
			}
			data = grown;
			cap *= 2;
		}
	}
	if (f != stdin)
		fclose(f);
	if (!data)
		return -ENOMEM;
	if (rc < 0) {
		free(data);
		return rc;
	}
	data[len] = '\0';
	size_t lines = 1;
	for (size_t i = 0; i < len; i++)
		lines += data[i] == '\n';
	v->data = data;
	v->ptr = malloc(lines * sizeof(*v->ptr));
	v->len = malloc(lines * sizeof(*v->len));
	if (!v->ptr || !v->len) {
		values_free(v);
		return -ENOMEM;
	}
	char *p = data, *end = data + len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *stop = nl ? nl : end;
		if (stop > p && stop[-1] == '\r')
			stop--;
		*stop = '\0';
		v->ptr[v->n] = p;
		v->len[v->n++] = (size_t)(stop - p);
		if (!nl)
			break;
		p = nl + 1;
	}
	return 0;
}

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct delivery *d = opaque;
	(void)rk;
	if (m->err) {
		if (!d->failed++)
			d->first_err = m->err;
		return;
	}
	d->ok++;
	d->partition = m->partition;
	d->offset = m->offset;
	if (d->total > PROGRESS_FROM && d->ok >= d->next_progress) {
		fprintf(stderr, "faustc send: %zu of %zu values delivered (%zu%%)\n", d->ok,
			d->total, d->ok * 100 / d->total);
		d->next_progress += d->total / 10;
	}
}

static int
check_args(const struct ag__send_args *args)
{
	if (!args->target || !*args->target) {
		say("usage: faustc send TOPIC|@AGENT [--key K] [VALUE | --file FILE]");
		return 2;
	}
	if (!args->value == !args->file) {
		say("%s", args->value ? "give either a VALUE or --file FILE, not both"
				      : "nothing to send: give a VALUE or --file FILE");
		return 2;
	}
	return 0;
}

/* Reports a bad key or value (the first MAX_REPORTED of them). */
static void
report(const struct ag_app *app, const struct ag_topic *t, const struct ag__send_args *args,
       size_t line, const char *what, enum ag_codec codec, const struct ag_record_type *type,
       int reason, const char *why, size_t *bad)
{
	if ((*bad)++ >= MAX_REPORTED)
		return;
	const char *as = type ? type->name : ag__app_codec_name(app, codec);
	if (args->file)
		say("%s:%zu: not a valid %s %s for topic %s (%s): %s", args->file, line, as, what,
		    t->name, ag__bad_name((enum ag__bad)reason), why);
	else
		say("the %s is not a valid %s %s for topic %s (%s): %s", what, as, what, t->name,
		    ag__bad_name((enum ag__bad)reason), why);
}

/*
 * Validates keys and values as the worker will (codecs, record types, sizes); reports
 * every bad one. Values for a msgpack topic with a record type are written as JSON and
 * converted here. Returns 0 or 2.
 */
static int
validate(const struct ag_app *app, const struct ag_topic *t, const struct ag__send_args *args,
	 struct values *v)
{
	char why[512];
	size_t bad = 0;
	int convert = t->value_codec == AG_CODEC_MSGPACK && t->value_type;
	struct ag_arena *arena = NULL;
	void *rec = NULL;
	size_t *offs = NULL;
	int status = 2;
	if (ag_arena_new(&arena) < 0 || (t->value_type && !(rec = malloc(t->value_type->size))) ||
	    (convert && !(offs = malloc(v->n * sizeof(*offs))))) {
		say("out of memory");
		goto out;
	}
	for (size_t i = 0; i < v->n; i++) {
		const char *kp = v->kptr ? v->kptr[i] : args->key;
		size_t kl = v->kptr ? v->klen[i] : args->key ? strlen(args->key) : 0;
		if (!kp && (t->key_required || t->key_type)) {
			snprintf(why, sizeof(why), "no key (pass --key or --key-delimiter)");
			report(app, t, args, i + 1, "key", t->key_codec, t->key_type,
			       AG__BAD_NULL_KEY, why, &bad);
		} else if (kp) {
			int r = ag__check_value(app, t->key_codec, t->key_type,
						(struct ag_bytes){kp, kl}, NULL, NULL, why,
						sizeof(why));
			if (r >= 0)
				report(app, t, args, i + 1, "key", t->key_codec, t->key_type, r,
				       why, &bad);
		}
		struct ag_bytes value = {v->ptr[i], v->len[i]};
		enum ag_codec codec = convert ? AG_CODEC_JSON : t->value_codec;
		ag_arena_reset(arena);
		int r = ag__check_value(app, codec, t->value_type, value, rec, arena, why,
					sizeof(why));
		if (r < 0 && value.len + kl > app->max_message_bytes) {
			snprintf(why, sizeof(why), "%zu bytes, more than max_message_bytes (%zu)",
				 value.len + kl, app->max_message_bytes);
			r = AG__BAD_TOO_LARGE;
		}
		if (r >= 0) {
			report(app, t, args, i + 1, "value", codec, t->value_type, r, why, &bad);
			continue;
		}
		if (convert) {
			offs[i] = v->conv.len;
			if (ag_record_encode(t->value_type, AG_CODEC_MSGPACK, rec, 0, &v->conv) <
			    0) {
				say("out of memory");
				goto out;
			}
			v->len[i] = v->conv.len - offs[i];
		}
	}
	if (bad > MAX_REPORTED)
		say("... and %zu more invalid lines", bad - MAX_REPORTED);
	if (bad) {
		if (args->file)
			say("%zu invalid keys or values in %zu lines; nothing was sent", bad, v->n);
		goto out;
	}
	for (size_t i = 0; convert && i < v->n; i++)
		v->ptr[i] = v->conv.ptr + offs[i];
	status = 0;
out:
	free(offs);
	free(rec);
	ag_arena_free(arena);
	return status;
}

static rd_kafka_t *
producer_new(const struct ag__broker *b, const struct ag_app *app, struct delivery *d,
	     double timeout)
{
	char err[512], ms[32];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (!conf)
		return NULL;
	snprintf(ms, sizeof(ms), "%d", (int)(timeout * 1000));
	const char *const settings[][2] = {
		{"partitioner", "murmur2_random"},
		{"linger.ms", "5"},
		{"acks", "all"},
		{"message.timeout.ms", ms},
	};
	int rc = ag__broker_client_conf(b, app, RD_KAFKA_PRODUCER, NULL, 0, conf, err, sizeof(err));
	for (size_t i = 0; rc == 0 && i < AG__ARRAY_SIZE(settings); i++) {
		if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], err, sizeof(err)))
			rc = AG_ECONFIG;
	}
	if (rc < 0) {
		rd_kafka_conf_destroy(conf);
		say("%s", err);
		return NULL;
	}
	rd_kafka_conf_set_opaque(conf, d);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		say("cannot create a Kafka producer: %s", err);
	}
	return rk;
}

static int
produce_all(rd_kafka_t *rk, const struct ag_topic *t, const struct ag__send_args *args,
	    const struct values *v)
{
	size_t klen = args->key ? strlen(args->key) : 0;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, t->name, NULL);
	if (!rkt) {
		say("cannot send to %s: %s", t->name, rd_kafka_err2str(rd_kafka_last_error()));
		return 1;
	}
	int status = 0;
	for (size_t i = 0; i < v->n && status == 0; i++) {
		const char *key = v->kptr ? v->kptr[i] : args->key;
		size_t key_len = v->kptr ? v->klen[i] : klen;
		while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, v->ptr[i],
					v->len[i], (void *)key, key_len, NULL) < 0) {
			rd_kafka_resp_err_t e = rd_kafka_last_error();
			if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
				say("cannot send to %s: %s", t->name, rd_kafka_err2str(e));
				status = 1;
				break;
			}
			rd_kafka_poll(rk, 100);
		}
		rd_kafka_poll(rk, 0);
	}
	rd_kafka_topic_destroy(rkt);
	return status;
}

int
ag__cmd_send(struct ag_app *app, const struct ag__send_args *args)
{
	int status = check_args(args);
	if (status)
		return status;
	if (ag__app_finalize(app) < 0)
		return 1;
	const struct ag_topic *t = resolve_target(app, args->target);
	if (!t)
		return 2;
	double timeout = args->timeout > 0 ? args->timeout : SEND_DEFAULT_TIMEOUT;

	struct values v = {0};
	char *one_ptr = (char *)args->value;
	size_t one_len = args->value ? strlen(args->value) : 0;
	if (args->file) {
		int rc = read_values(args->file, &v);
		if (rc < 0) {
			say("cannot read %s: %s", args->file, strerror(-rc));
			return rc == -ENOMEM ? 1 : 2;
		}
		if (v.n == 0) {
			say("%s has no values (one per line)", args->file);
			values_free(&v);
			return 2;
		}
	} else {
		v.ptr = &one_ptr;
		v.len = &one_len;
		v.n = 1;
	}
	struct ag__broker b;
	rd_kafka_t *rk = NULL;
	char err[1024];
	struct delivery d = {.total = v.n, .next_progress = v.n / 10};
	if (args->key_delimiter && (status = split_keys(args, &v)) != 0)
		goto out_values;
	if ((status = validate(app, t, args, &v)) != 0)
		goto out_values;
	status = 1;
	if (ag__broker_open(&b, app, 0, err, sizeof(err)) < 0) {
		say("%s", err);
		goto out_values;
	}
	b.wait = timeout;
	if (ag__broker_ensure_topics(&b, app, err, sizeof(err)) < 0) {
		say("%s", err);
		goto out_broker;
	}
	if (!(rk = producer_new(&b, app, &d, timeout)))
		goto out_broker;
	if (produce_all(rk, t, args, &v) != 0)
		goto out_producer;
	rd_kafka_flush(rk, (int)(timeout * 1000));
	if (d.ok == d.total) {
		if (args->file)
			printf("sent %zu values to %s\n", d.total, t->name);
		else
			printf("sent to %s[%d]@%lld\n", t->name, (int)d.partition,
			       (long long)d.offset);
		status = 0;
	} else if (d.failed && d.first_err != RD_KAFKA_RESP_ERR__MSG_TIMED_OUT) {
		say("could not deliver %zu of %zu values to %s at %s: %s", d.total - d.ok, d.total,
		    t->name, b.bootstrap, rd_kafka_err2str(d.first_err));
	} else {
		say("could not deliver %zu of %zu values to %s at %s within %g s: is the broker "
		    "running?",
		    d.total - d.ok, d.total, t->name, b.bootstrap, timeout);
	}
out_producer:
	rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_poll(rk, 0);
	rd_kafka_destroy(rk);
out_broker:
	ag__broker_close(&b);
out_values:
	free(v.conv.ptr);
	if (args->file) {
		values_free(&v);
	} else {
		free(v.kptr);
		free(v.klen);
	}
	return status;
}
