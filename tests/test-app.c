/*
 * App declarations: topics, agents, tables, record types, codecs and options, and the
 * checks the worker and `faustc send` share (ag__check_value). No broker involved.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tap.h"

struct point {
	int64_t x;
	int64_t y;
	uint64_t ag_present;
};
AG_RECORD(point_type, point, AG_FIELD(point, x, AG_FIELD_INT, 0),
	  AG_FIELD(point, y, AG_FIELD_INT, AG_FIELD_OPTIONAL));

struct bad {
	int64_t a;
	int64_t b;
	uint64_t ag_present;
};
/* Two fields with one name: refused by ag_record_type_check. */
static const struct ag_field bad_fields[] = {
	{"a", AG_FIELD_INT, offsetof(struct bad, a), 0, NULL},
	{"a", AG_FIELD_INT, offsetof(struct bad, b), 0, NULL},
};
static const struct ag_record_type bad_type = {"bad", sizeof(struct bad),
					       offsetof(struct bad, ag_present), bad_fields, 2};

/* A codec for even-length data. */
static int
even_validate(struct ag_bytes data, char *err, size_t errlen, void *userdata)
{
	int *calls = userdata;
	(*calls)++;
	if (data.len % 2 == 0)
		return 0;
	snprintf(err, errlen, "odd length %zu", data.len);
	return -EINVAL;
}

static int
tick(struct ag_app *app, void *userdata)
{
	(void)app;
	(void)userdata;
	return 0;
}

static int
body(struct ag_stream *s, void *userdata)
{
	(void)s;
	(void)userdata;
	return 0;
}

static int
keep(struct ag_event *ev, void *userdata)
{
	return 1;
}

static int
key_of(struct ag_event *ev, struct ag_bytes *key, void *userdata)
{
	return 0;
}

struct addr {
	struct ag_str city;
	uint64_t ag_present;
};
AG_RECORD(addr_type, addr, AG_FIELD(addr, city, AG_FIELD_STRING, 0));
struct person {
	struct ag_str name;
	struct addr home;
	struct ag_list tags;
	uint64_t ag_present;
};
AG_RECORD(person_type, person, AG_FIELD(person, name, AG_FIELD_STRING, 0),
	  AG_FIELD_REC(person, home, addr_type, 0),
	  AG_FIELD(person, tags, AG_FIELD_LIST_STRING, AG_FIELD_OPTIONAL));

/* Operators: declaration rules, the topics they make, the pipeline's segments. */
static void
test_operators(void)
{
	struct ag_app *app;
	struct ag_topic *src, *plain, *rep, *rep2, *mid;
	struct ag_agent *a, *b, *c;
	ag_app_new(&app);
	struct ag_topic_opts po = {
		.partitions = 6, .value_codec = AG_CODEC_JSON, .value_type = &person_type};
	ag_app_topic(app, "people", &po, &src);
	ag_app_topic(app, "plain", NULL, &plain);
	ag_app_topic(app, "mid", &(struct ag_topic_opts){.partitions = 3}, &mid);
	ag_app_agent(app, "a", src, body, NULL, &a);
	ok_int_eq(ag_agent_group_by_field(a, "name", 0, &rep), -EINVAL,
		  "group_by before the app has an id: -EINVAL");
	ag_app_set_id(app, "ops");
	ok_int_eq(ag_agent_filter(a, NULL, NULL), -EINVAL, "a filter needs a function");
	ok_int_eq(ag_agent_filter(a, keep, NULL), 0, "filter");
	ok_int_eq(ag_agent_group_by_field(a, "nope", 0, NULL), -EINVAL,
		  "group_by an unknown field");
	ok_int_eq(ag_agent_group_by_field(a, "tags", 0, NULL), -EINVAL, "group_by a list field");
	ok_int_eq(ag_agent_group_by_field(a, "home", 0, NULL), -EINVAL, "group_by a record field");
	ok_int_eq(ag_agent_group_by_field(a, "home.city", 0, &rep), 0, "group_by a nested field");
	ok(rep && strcmp(ag_topic_name(rep), "ops-a-home.city-repartition") == 0 &&
		   ag_topic_partitions(rep) == 6 && rep->value_type == &person_type &&
		   rep->internal,
	   "the repartition topic: <app_id>-<agent>-<name>-repartition, the source's partitions "
	   "and record type");
	ok_int_eq(ag_agent_group_by_field(a, "home.city", 0, NULL), -EEXIST,
		  "the same group_by twice: -EEXIST");
	ok_int_eq(ag_agent_group_by(a, "by key", key_of, NULL, 0, NULL), -EINVAL,
		  "a group_by name must be a valid topic name part");
	ok_int_eq(ag_agent_group_by(a, "k", key_of, NULL, 2, &rep2), 0, "group_by a key function");
	ok(ag_topic_partitions(rep2) == 2, "group_by with a partition count");
	ok_int_eq(ag_agent_through(a, src), -EEXIST, "through a topic an agent reads: -EEXIST");
	ok_int_eq(ag_agent_through(a, mid), 0, "through");
	ok_int_eq(ag_agent_echo(a, plain), 0, "echo");
	ok_int_eq(ag_agent_concurrency(a, 0), -EINVAL, "concurrency 0");
	ok_int_eq(ag_agent_concurrency(a, 1025), -EINVAL, "concurrency 1025");
	ok_int_eq(ag__app_finalize(app), 0, "finalize");
	ok(a->nsegs == 4 && a->segs[0].input == src && a->segs[1].input == rep &&
		   a->segs[2].input == rep2 && a->segs[3].input == mid && !a->segs[3].boundary &&
		   a->segs[3].first == 4 && a->segs[3].end == 5,
	   "the pipeline is cut at group_by, group_by, through: four segments");
	ok(rep->agent == a && rep->nreaders == 1 && rep->readers[0] == &a->segs[1],
	   "a repartition topic feeds its agent");
	ok(app->reply_topic && strcmp(ag_topic_name(app->reply_topic), "ops-__reply") == 0,
	   "apps with agents get the reply topic for asks");
	ag_app_free(app);

	ag_app_new(&app);
	ag_app_set_id(app, "conc");
	ag_app_topic(app, "in", NULL, &src);
	ag_app_agent(app, "b", src, body, NULL, &b);
	ag_agent_group_by(b, "k", key_of, NULL, 0, NULL);
	ag_agent_concurrency(b, 4);
	ok_int_eq(ag__app_finalize(app), AG_ECONFIG, "concurrency with group_by is refused");
	ag_app_free(app);

	ag_app_new(&app);
	ag_app_set_id(app, "conc2");
	ag_app_topic(app, "in", NULL, &src);
	ag_app_agent(app, "c", src, body, NULL, &c);
	ag_agent_concurrency(c, 4);
	ag_app_table(app, "t", src, NULL, NULL);
	ok_int_eq(ag__app_finalize(app), AG_ECONFIG,
		  "concurrency on a stream a table follows is refused");
	ag_app_free(app);

	ag_app_new(&app);
	ag_app_set_id(app, "conc3");
	ag_app_topic(app, "in", NULL, &src);
	ag_app_agent(app, "c", src, body, NULL, &c);
	ag_agent_filter(c, keep, NULL);
	ok_int_eq(ag_agent_concurrency(c, 8), 0, "concurrency on a stateless agent");
	ok_int_eq(ag__app_finalize(app), 0, "is accepted");
	ag_app_free(app);
}

int
main(void)
{
	struct ag_app *app;
	struct ag_topic *t, *t2, *pts;
	struct ag_agent *a;
	struct ag_table *tab;
	char why[256];
	int calls = 0;

	ok_int_eq(ag_app_new(&app), 0, "app");
	ok_int_eq(ag_app_set_id(app, "bad id"), -EINVAL, "ids have no spaces");
	ok_int_eq(ag_app_set_id(app, "shop"), 0, "id");

	/* topics */
	ok_int_eq(ag_app_topic(app, "orders", NULL, &t), 0, "a topic with defaults");
	ok_int_eq(ag_topic_partitions(t), 8, "8 partitions by default");
	ok_int_eq(ag_app_topic(app, "orders", NULL, &t2), 0, "the same declaration again");
	ok(t == t2, "returns the first declaration");
	struct ag_topic_opts four = {.partitions = 4};
	ok_int_eq(ag_app_topic(app, "orders", &four, NULL), -EEXIST, "other options: -EEXIST");
	ok_int_eq(ag_app_topic(app, "has space", NULL, NULL), -EINVAL, "bad topic name");
	struct ag_topic_opts raw_typed = {.value_type = &point_type};
	ok_int_eq(ag_app_topic(app, "p-raw", &raw_typed, NULL), -EINVAL,
		  "a record type needs json or msgpack");
	struct ag_topic_opts bad_typed = {.value_codec = AG_CODEC_JSON, .value_type = &bad_type};
	ok_int_eq(ag_app_topic(app, "p-bad", &bad_typed, NULL), -EINVAL,
		  "a record type that fails its check is refused");
	struct ag_topic_opts typed = {
		.value_codec = AG_CODEC_MSGPACK, .value_type = &point_type, .key_required = 1};
	ok_int_eq(ag_app_topic(app, "points", &typed, &pts), 0, "a typed msgpack topic");
	ok_int_eq((long long)app->nmodels, 1, "its record type is registered");
	ok_int_eq(ag_app_model(app, &point_type), 0, "registering it again is fine");
	ok_int_eq((long long)app->nmodels, 1, "and does not list it twice");
	ok_int_eq(ag_app_model(app, &bad_type), -EINVAL, "a bad record type is refused");

	/* codecs */
	enum ag_codec even;
	struct ag_codec_ops ops = {.name = "even", .validate = even_validate, .userdata = &calls};
	ok_int_eq(ag_app_codec(app, &ops, &even), 0, "register a codec");
	ok_int_eq(even, AG_CODEC_CUSTOM, "the first one gets AG_CODEC_CUSTOM");
	ok_int_eq(ag_app_codec(app, &ops, &even), -EEXIST, "names are unique");
	struct ag_codec_ops json = {.name = "json", .validate = even_validate};
	ok_int_eq(ag_app_codec(app, &json, &even), -EEXIST, "built-in names are taken");
	struct ag_topic_opts custom = {.value_codec = even};
	ok_int_eq(ag_app_topic(app, "evens", &custom, &t), 0, "a topic with the app's codec");
	ok_str_eq(ag__app_codec_name(app, t->value_codec), "even", "its codec's name");
	struct ag_topic_opts unknown = {.value_codec = (enum ag_codec)(AG_CODEC_CUSTOM + 5)};
	ok_int_eq(ag_app_topic(app, "odd", &unknown, NULL), -EINVAL, "an unregistered codec id");
	ok_int_eq(ag__check_value(app, even, NULL, AG_STR("ab"), NULL, NULL, why, sizeof(why)), -1,
		  "the app's codec accepts");
	ok_int_eq(ag__check_value(app, even, NULL, AG_STR("abc"), NULL, NULL, why, sizeof(why)),
		  AG__BAD_DECODE, "and rejects");
	ok_str_eq(why, "odd length 3", "with its reason");
	ok_int_eq(calls, 2, "the codec was asked twice");

	/* the shared value check */
	struct point p;
	struct ag_arena *arena;
	ok_int_eq(ag_arena_new(&arena), 0, "arena");
	ok_int_eq(ag__check_value(app, AG_CODEC_JSON, &point_type, AG_STR("{\"x\": 3}"), &p, arena,
				  why, sizeof(why)),
		  -1, "a record that decodes");
	ok(p.x == 3 && !(p.ag_present & 2), "is decoded, y absent");
	ok_int_eq(ag__check_value(app, AG_CODEC_JSON, &point_type, AG_STR("{\"x\": \"3\"}"), &p,
				  arena, why, sizeof(why)),
		  AG__BAD_TYPE, "a wrong type");
	ok(strstr(why, "x") != NULL, "names the field: %s", why);
	ok_int_eq(ag__check_value(app, AG_CODEC_JSON, &point_type, AG_STR("{\"y\": 1}"), NULL, NULL,
				  why, sizeof(why)),
		  AG__BAD_MISSING, "a missing field (checked without a struct)");
	ok_int_eq(ag__check_value(app, AG_CODEC_JSON, NULL, (struct ag_bytes){NULL, 0}, NULL, NULL,
				  why, sizeof(why)),
		  AG__BAD_EMPTY, "an empty JSON value");
	ok_int_eq(ag__check_value(app, AG_CODEC_RAW, NULL, (struct ag_bytes){NULL, 0}, NULL, NULL,
				  why, sizeof(why)),
		  -1, "raw takes anything, empty too");
	ok_int_eq(ag__check_value(app, AG_CODEC_INT64, NULL, AG_STR("1234567"), NULL, NULL, why,
				  sizeof(why)),
		  AG__BAD_DECODE, "int64 wants 8 bytes");
	ok_int_eq(ag__check_value(app, AG_CODEC_DOUBLE, NULL, AG_STR("12345678"), NULL, NULL, why,
				  sizeof(why)),
		  -1, "double takes 8 bytes");
	ag_arena_free(arena);

	/* agents and tables */
	ok_int_eq(ag_app_agent(app, "worker1", pts, body, NULL, &a), 0, "an agent");
	ok_int_eq(ag_app_agent(app, "worker2", pts, body, NULL, NULL), 0,
		  "a second agent on the same topic");
	ok_int_eq(ag_app_agent(app, "worker1", NULL, body, NULL, NULL), -EEXIST, "agent names");
	ok_int_eq(ag_agent_on_bad_input(a, AG_BAD_INPUT_DEAD_LETTER), 0, "dead-letter policy");
	ok_int_eq(ag_agent_on_bad_input(a, (enum ag_bad_input)9), -EINVAL, "unknown policy");
	ok_int_eq(ag_app_agent(app, "mailbox", NULL, body, NULL, NULL), 0,
		  "an agent without a topic");
	ok_int_eq(ag_app_table(app, "counts", pts, NULL, &tab), 0, "a table");
	ok_int_eq(ag_app_table(app, "counts", pts, NULL, NULL), -EEXIST, "table names");

	/* options */
	ok_int_eq(ag_app_set_option(app, "max_message_bytes", "100"), -EINVAL,
		  "max_message_bytes has a floor");
	ok_int_eq(ag_app_set_option(app, "max_message_bytes", "65536"), 0, "max_message_bytes");
	ok_int_eq((long long)app->max_message_bytes, 65536, "is set");
	ok_int_eq(ag_app_set_option(app, "commit_interval", "0"), -EINVAL, "commit_interval > 0");
	ok_int_eq(ag_app_set_option(app, "nonsense", "1"), -EINVAL, "unknown option");
	ok_int_eq(ag_app_set_option(app, "kafka.linger.ms", "7"), 0, "kafka.* options");

	/* finalize: internal topics */
	/* timers */
	ok_int_eq(ag_app_timer(app, "bad name", 1.0, 0, tick, NULL), -EINVAL, "timer: bad name");
	ok_int_eq(ag_app_timer(app, "", 1.0, 0, tick, NULL), -EINVAL, "timer: empty name");
	ok_int_eq(ag_app_timer(app, "t", 1.0, 0, NULL, NULL), -EINVAL, "timer: no function");
	ok_int_eq(ag_app_timer(app, "t", 0.0, 0, tick, NULL), -EINVAL,
		  "timer: interval 0 without ONCE");
	ok_int_eq(ag_app_timer(app, "t", -1.0, 0, tick, NULL), -EINVAL, "timer: negative interval");
	ok_int_eq(ag_app_timer(app, "t", -1.0, AG_TIMER_ONCE, tick, NULL), -EINVAL,
		  "task: negative delay");
	ok_int_eq(ag_app_timer(app, "t", NAN, 0, tick, NULL), -EINVAL, "timer: NaN interval");
	ok_int_eq(ag_app_timer(app, "t", 1.0, 0x10, tick, NULL), -EINVAL, "timer: unknown flag");
	ok_int_eq(ag_app_is_leader(app), 0, "not a leader outside a worker");
	ok_int_eq(ag_app_timer(app, "t", 1.0, 0, tick, NULL), 0, "a timer");
	ok_int_eq(ag_app_timer(app, "t", 2.0, 0, tick, NULL), -EEXIST, "timer names are unique");
	ok_int_eq(ag_app_timer(app, "start", 0.0, AG_TIMER_ONCE, tick, NULL), 0,
		  "a task with no delay");
	ok(app->leader_topic == NULL, "no leader topic before finalize");
	ok_int_eq(ag_app_timer(app, "lead", 0.5, AG_TIMER_LEADER, tick, NULL), 0, "a leader timer");

	ok_int_eq(ag__app_finalize(app), 0, "finalize");
	ok(ag_app_find_topic(app, "shop-mailbox") ==
		   ag_agent_topic(ag_app_find_agent(app, "mailbox")),
	   "an agent without a topic gets <app_id>-<agent>");
	t = ag_app_find_topic(app, "shop-worker1-dead-letter");
	ok(t && t->internal && t->partitions == pts->partitions,
	   "a dead-letter agent gets <app_id>-<agent>-dead-letter, partitioned like its source");
	t = ag_app_find_topic(app, "shop-counts-changelog");
	ok(t && t->internal && t->partitions == pts->partitions, "the table's changelog");
	ok_str_eq(ag__app_datadir(app), "./shop-data", "the default data dir");
	t = ag_app_find_topic(app, "shop-__leader");
	ok(t && t->internal && t->partitions == 1 && app->leader_topic == t,
	   "a leader timer adds the one-partition topic <app_id>-__leader");
	ag_app_free(app);
	ag_app_free(NULL);
	test_operators();
	return tap_done();
}
