/*
 * chain: three agents in a row, each reaching the next in another way.
 *
 * Agent `a` reads topic `chain-in` and yields to topic `chain-mid`; agent `b` reads
 * `chain-mid` and yields to agent `c` (into c's own topic `chain-c`); agent `c` yields to
 * a C callback that prints each value on stdout, one flushed line, and to topic
 * `chain-out`. Each stage wraps the value in its name, so value V comes out of the chain
 * as `c(b(a(V)))`: the output shows that every stage ran, once and in order. Keys are
 * kept all the way, so the values of one key stay in order.
 *
 *     faustc -A chain worker
 *     faustc -A chain send chain-in hello --key k1
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <agent/agent.h>

/*
 * The largest key plus value a stage yields. A stage skips (and logs) an event whose key
 * and value would not fit once the stages still to come have wrapped it, so whatever `a`
 * accepts also passes `b` and `c`, far below the worker's max_message_bytes (1 MiB).
 */
#define CHAIN_MAX_BYTES (64 * 1024)

/* What a stage adds: its name and two parentheses. */
#define WRAP_BYTES 3

/* One stage: its name, and how many stages (itself included) still wrap the value. */
struct stage {
	const char *name;
	size_t left;
};

static struct stage stage_a = {"a", 3}, stage_b = {"b", 2}, stage_c = {"c", 1};

/* Yields NAME(VALUE) with the event's key; a null value counts as an empty one. */
static int
wrap(struct ag_stream *s, const struct stage *st)
{
	struct ag_event *ev;
	int rc;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes key = ag_event_key(ev);
		struct ag_bytes v = ag_event_value(ev);
		if (key.len + v.len + st->left * WRAP_BYTES > CHAIN_MAX_BYTES) {
			ag_log(ag_stream_app(s), AG_LOG_WARN,
			       "%s[%d]@%lld (key %.*s): %zu bytes of key and value, too many for "
			       "stage %s (the chain's limit is %d bytes after wrapping); skipped",
			       ag_event_topic(ev), (int)ag_event_partition(ev),
			       (long long)ag_event_offset(ev), (int)(key.len > 64 ? 64 : key.len),
			       key.len ? (const char *)key.ptr : "", key.len + v.len, st->name,
			       CHAIN_MAX_BYTES);
			continue;
		}
		char *buf = malloc(v.len + WRAP_BYTES);
		if (!buf)
			return -ENOMEM;
		buf[0] = st->name[0];
		buf[1] = '(';
		if (v.len)
			memcpy(buf + 2, v.ptr, v.len);
		buf[v.len + 2] = ')';
		struct ag_bytes out = {buf, v.len + WRAP_BYTES};
		rc = ag_stream_yield(s, key.ptr ? &key : NULL, &out); /* copies out */
		free(buf);
		if (rc < 0)
			return rc;
	}
	return rc == AG_EOF ? 0 : rc;
}

static int
agent_fn(struct ag_stream *s, void *userdata)
{
	return wrap(s, userdata);
}

/*
 * c's first sink: one line per value on stdout. Control characters (a newline inside a
 * value) are printed as \xNN so that a value never spans two lines.
 */
static int
print_value(struct ag_agent *agent, const struct ag_bytes *key, const struct ag_bytes *value,
	    void *userdata)
{
	const unsigned char *p = value->ptr;
	(void)agent;
	(void)key;
	(void)userdata;
	for (size_t i = 0; i < value->len; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			printf("\\x%02x", p[i]);
		else
			putchar(p[i]);
	}
	putchar('\n');
	fflush(stdout);
	return 0;
}

static int
setup(struct ag_app *app)
{
	struct ag_topic *in, *mid, *out;
	struct ag_agent *a, *b, *c;
	struct ag_topic_opts text = {
		.partitions = 4, .key_codec = AG_CODEC_STRING, .value_codec = AG_CODEC_RAW};
	int rc;
	if ((rc = ag_app_set_id(app, "chain")) < 0 ||
	    (rc = ag_app_topic(app, "chain-in", &text, &in)) < 0 ||
	    (rc = ag_app_topic(app, "chain-mid", &text, &mid)) < 0 ||
	    (rc = ag_app_topic(app, "chain-out", &text, &out)) < 0 ||
	    (rc = ag_app_agent(app, "a", in, agent_fn, &stage_a, &a)) < 0 ||
	    (rc = ag_app_agent(app, "b", mid, agent_fn, &stage_b, &b)) < 0 ||
	    (rc = ag_app_agent(app, "c", NULL, agent_fn, &stage_c, &c)) < 0 ||
	    (rc = ag_agent_sink_topic(a, mid)) < 0 || (rc = ag_agent_sink_agent(b, c)) < 0 ||
	    (rc = ag_agent_sink_callback(c, print_value, NULL)) < 0 ||
	    (rc = ag_agent_sink_topic(c, out)) < 0)
		return rc;
	return 0;
}

#ifdef AG_APP_AS_MODULE
AG_APP_MODULE(setup);
#else
int
main(int argc, char **argv)
{
	return ag_app_main(argc, argv, setup);
}
#endif
