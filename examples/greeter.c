/*
 * greeter: the Stateful Functions walkthrough, Faust style.
 *
 * Agent `greet` reads names from topic `names` (key = the name; value JSON
 * {"name": "..."}, a bare JSON string, or plain text), counts in table `seen_count` how
 * often it has seen each name, and yields a greeting to topic `greetings`
 * (key = name, value JSON {"name": ..., "greeting": ...}).
 *
 *     faustc -A greeter worker
 *     faustc -A greeter send names '{"name": "Ann"}' --key Ann
 *
 * Option: GREETER_SEEN_TTL=60 in the worker's environment makes the count of a name
 * expire after 60 s without a visit (the walkthrough's "reset seen_count after 60 s of
 * inactivity"): a key TTL on the table. Without it counts are kept for ever.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <agent/agent.h>

static struct ag_table *seen_count;

/* The name of an event: the JSON "name" field, a JSON string, the text, or the key. */
static struct ag_bytes
event_name(struct ag_event *ev)
{
	json_t *v = ag_event_json(ev);
	json_t *name = json_is_object(v) ? json_object_get(v, "name") : v;
	if (json_is_string(name))
		return (struct ag_bytes){json_string_value(name), json_string_length(name)};
	struct ag_bytes raw = ag_event_value(ev);
	if (!v && raw.len)
		return raw;
	return ag_event_key(ev);
}

static void
greeting_for(char *buf, size_t cap, int64_t seen, const struct ag_bytes *name)
{
	int n = (int)name->len;
	const char *s = name->ptr;
	if (seen == 1)
		snprintf(buf, cap, "Welcome %.*s", n, s);
	else if (seen == 2)
		snprintf(buf, cap, "Nice to see you again %.*s", n, s);
	else if (seen == 3)
		snprintf(buf, cap, "Third time is a charm %.*s", n, s);
	else
		snprintf(buf, cap, "Nice to see you at the %lld-nth time %.*s!", (long long)seen, n,
			 s);
}

static int
greet(struct ag_stream *s, void *userdata)
{
	struct ag_event *ev;
	int rc;
	(void)userdata;
	while ((rc = ag_stream_next(s, &ev)) == 0) {
		struct ag_bytes name = event_name(ev);
		if (!name.len || name.len > 1024) {
			ag_log(ag_stream_app(s), AG_LOG_WARN, "names[%d]@%lld: no name; skipped",
			       (int)ag_event_partition(ev), (long long)ag_event_offset(ev));
			continue;
		}
		int64_t seen;
		if ((rc = ag_table_add_i64(seen_count, &name, 1, &seen)) < 0)
			return rc;
		char greeting[1200];
		greeting_for(greeting, sizeof(greeting), seen, &name);
		json_t *out =
			json_pack("{s:s%,s:s}", "name", name.ptr, name.len, "greeting", greeting);
		struct ag_bytes value;
		rc = out ? ag_json_dump(out, &value) : -1;
		json_decref(out);
		if (rc < 0)
			return rc;
		rc = ag_stream_yield(s, &name, &value);
		free((void *)value.ptr);
		if (rc < 0)
			return rc;
	}
	return rc == AG_EOF ? 0 : rc;
}

static int
setup(struct ag_app *app)
{
	struct ag_topic *names, *greetings;
	struct ag_agent *agent;
	int rc;
	struct ag_topic_opts json = {
		.partitions = 8, .key_codec = AG_CODEC_STRING, .value_codec = AG_CODEC_JSON};
	struct ag_topic_opts text = {
		.partitions = 8, .key_codec = AG_CODEC_STRING, .value_codec = AG_CODEC_RAW};
	struct ag_table_opts seen_opts = {0};
	const char *ttl = getenv("GREETER_SEEN_TTL");
	if (ttl && *ttl) {
		char *end;
		seen_opts.ttl_s = strtod(ttl, &end);
		if (*end || !(seen_opts.ttl_s > 0)) {
			ag_log(app, AG_LOG_ERROR, "GREETER_SEEN_TTL wants seconds > 0, got '%s'",
			       ttl);
			return -EINVAL;
		}
	}
	if ((rc = ag_app_set_id(app, "greeter")) < 0 ||
	    (rc = ag_app_topic(app, "names", &text, &names)) < 0 ||
	    (rc = ag_app_topic(app, "greetings", &json, &greetings)) < 0 ||
	    (rc = ag_app_table(app, "seen_count", names, &seen_opts, &seen_count)) < 0 ||
	    (rc = ag_app_agent(app, "greet", names, greet, NULL, &agent)) < 0 ||
	    (rc = ag_agent_sink_topic(agent, greetings)) < 0)
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
