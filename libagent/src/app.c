/*
 * The app object: declarations of topics, agents and tables, and worker options. Nothing
 * here touches Kafka; the worker reads these declarations when it starts.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "codec.h"
#include "internal.h"

#define AG__ID_MAX 200

static int codec_known(const struct ag_app *app, enum ag_codec codec);
static int type_fits(const struct ag_app *app, const char *topic, const struct ag_record_type *type,
		     enum ag_codec codec);

static int
push(void *arrayp, size_t *n, void *item)
{
	void ***array = arrayp;
	void **grown = realloc(*array, (*n + 1) * sizeof(void *));
	if (!grown)
		return -ENOMEM;
	grown[(*n)++] = item;
	*array = grown;
	return 0;
}

static int
valid_name(const char *name)
{
	if (!name || !*name || strlen(name) > 249)
		return 0;
	for (const char *p = name; *p; p++) {
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
			return 0;
	}
	return 1;
}

int
ag__name_valid(const char *name)
{
	return valid_name(name);
}

AG_EXPORT int
ag_app_new(struct ag_app **out)
{
	struct ag_app *app = calloc(1, sizeof(*app));
	if (!app)
		return -ENOMEM;
	app->commit_interval = 2.8;
	app->max_message_bytes = 1u << 20;
	app->standby_replicas = 1;
	app->idle_timeout = 5.0;
	app->web_port = 6066;
	app->web = 1;
	app->loglevel = AG_LOG_INFO;
	*out = app;
	return 0;
}

void
ag__topic_free(struct ag_topic *t)
{
	ag__channel_free(t->channel);
	free(t->readers);
	free(t->name);
	free(t->parts);
	free(t);
}

AG_EXPORT void
ag_app_free(struct ag_app *app)
{
	if (!app)
		return;
	for (size_t i = 0; i < app->ntopics; i++)
		ag__topic_free(app->topics[i]);
	free(app->topics);
	for (size_t i = 0; i < app->nchannels; i++)
		ag__topic_free(app->channels[i]);
	free(app->channels);
	for (size_t i = 0; i < app->nagents; i++) {
		struct ag_agent *a = app->agents[i];
		for (size_t k = 0; k < a->nstages; k++)
			free(a->stages[k].field);
		free(a->stages);
		free(a->segs);
		free(a->name);
		free(a->sinks);
		free(a);
	}
	for (size_t i = 0; i < app->ntables; i++) {
		free(app->tables[i]->name);
		free(app->tables[i]);
	}
	for (size_t i = 0; i < app->ntimers; i++) {
		free(app->timers[i]->name);
		free(app->timers[i]);
	}
	free(app->timers);
	for (size_t i = 0; i < app->nkafka_conf; i++) {
		free(app->kafka_conf[i].key);
		free(app->kafka_conf[i].value);
	}
	free(app->kafka_conf);
	free(app->models);
	free(app->codecs);
	free(app->agents);
	free(app->tables);
	free(app->id);
	free(app->broker);
	free(app->datadir);
	free(app->web_bind);
	free(app->worker_id);
	free(app);
}

AG_EXPORT int
ag_app_set_id(struct ag_app *app, const char *id)
{
	if (!id || strlen(id) > AG__ID_MAX || !valid_name(id))
		return -EINVAL;
	char *copy = strdup(id);
	if (!copy)
		return -ENOMEM;
	free(app->id);
	app->id = copy;
	return 0;
}

AG_EXPORT const char *
ag_app_id(const struct ag_app *app)
{
	return app->id;
}

static int
set_string(char **slot, const char *value)
{
	char *copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	free(*slot);
	*slot = copy;
	return 0;
}

AG_EXPORT int
ag_app_set_option(struct ag_app *app, const char *name, const char *value)
{
	if (!name || !value)
		return -EINVAL;
	if (strcmp(name, "broker") == 0)
		return set_string(&app->broker, value);
	if (strcmp(name, "datadir") == 0)
		return *value ? set_string(&app->datadir, value) : -EINVAL;
	if (strcmp(name, "loglevel") == 0)
		return ag__log_level_parse(value, &app->loglevel);
	if (strcmp(name, "commit_interval") == 0) {
		char *end;
		errno = 0;
		double v = strtod(value, &end);
		if (errno || end == value || *end || !(v >= 0.01 && v <= 3600.0))
			return -EINVAL;
		app->commit_interval = v;
		return 0;
	}
	if (strcmp(name, "processing_guarantee") == 0) {
		if (strcmp(value, "at_least_once") != 0 && strcmp(value, "exactly_once") != 0)
			return -EINVAL;
		app->exactly_once = strcmp(value, "exactly_once") == 0;
		return 0;
	}
	if (strcmp(name, "standby_replicas") == 0) {
		if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0)
			return -EINVAL;
		app->standby_replicas = value[0] - '0';
		return 0;
	}
	if (strcmp(name, "idle_timeout") == 0) {
		char *end;
		errno = 0;
		double v = strtod(value, &end);
		if (errno || end == value || *end || !(v >= 0.0 && v <= 86400.0))
			return -EINVAL;
		app->idle_timeout = v;
		return 0;
	}
	if (strcmp(name, "late_events") == 0) {
		if (strcmp(value, "drop") != 0 && strcmp(value, "topic") != 0)
			return -EINVAL;
		app->late_to_topic = strcmp(value, "topic") == 0;
		return 0;
	}
	if (strcmp(name, "web_bind") == 0)
		return *value ? set_string(&app->web_bind, value) : -EINVAL;
	if (strcmp(name, "web_port") == 0) {
		char *end;
		errno = 0;
		long v = strtol(value, &end, 10);
		if (errno || end == value || *end || v < 0 || v > 65535)
			return -EINVAL;
		app->web_port = (int)v;
		return 0;
	}
	if (strcmp(name, "web") == 0) {
		if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0)
			return -EINVAL;
		app->web = value[0] - '0';
		return 0;
	}
	if (strcmp(name, "worker_id") == 0) {
		for (const char *c = value; *c; c++) {
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			      (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
				return -EINVAL;
		}
		return *value && strlen(value) <= 200 ? set_string(&app->worker_id, value)
						      : -EINVAL;
	}
	if (strcmp(name, "topic_replication_factor") == 0) {
		char *end;
		errno = 0;
		long v = strtol(value, &end, 10);
		if (errno || end == value || *end || v < 0 || v > 32)
			return -EINVAL;
		app->replication_factor = (int)v;
		return 0;
	}
	if (strcmp(name, "max_message_bytes") == 0) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(value, &end, 10);
		if (errno || end == value || *end || v < 1024 || v > (1ull << 31))
			return -EINVAL;
		app->max_message_bytes = (size_t)v;
		return 0;
	}
	if (strncmp(name, "kafka.", 6) == 0 && name[6]) {
		struct ag__kv *grown =
			realloc(app->kafka_conf, (app->nkafka_conf + 1) * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		app->kafka_conf = grown;
		struct ag__kv *kv = &grown[app->nkafka_conf];
		kv->key = strdup(name + 6);
		kv->value = strdup(value);
		if (!kv->key || !kv->value) {
			free(kv->key);
			free(kv->value);
			return -ENOMEM;
		}
		app->nkafka_conf++;
		return 0;
	}
	return -EINVAL;
}

AG_EXPORT struct ag_topic *
ag_app_find_topic(const struct ag_app *app, const char *name)
{
	for (size_t i = 0; i < app->ntopics; i++) {
		if (strcmp(app->topics[i]->name, name) == 0)
			return app->topics[i];
	}
	return NULL;
}

AG_EXPORT struct ag_agent *
ag_app_find_agent(const struct ag_app *app, const char *name)
{
	for (size_t i = 0; i < app->nagents; i++) {
		if (strcmp(app->agents[i]->name, name) == 0)
			return app->agents[i];
	}
	return NULL;
}

static struct ag_table *
find_table(const struct ag_app *app, const char *name)
{
	for (size_t i = 0; i < app->ntables; i++) {
		if (strcmp(app->tables[i]->name, name) == 0)
			return app->tables[i];
	}
	return NULL;
}

AG_EXPORT int
ag_app_topic(struct ag_app *app, const char *name, const struct ag_topic_opts *opts,
	     struct ag_topic **out)
{
	static const struct ag_topic_opts defaults;
	if (!opts)
		opts = &defaults;
	if (!valid_name(name) || opts->partitions < 0 || opts->partitions > 10000 ||
	    !codec_known(app, opts->key_codec) || !codec_known(app, opts->value_codec) ||
	    !type_fits(app, name, opts->key_type, opts->key_codec) ||
	    !type_fits(app, name, opts->value_type, opts->value_codec))
		return -EINVAL;
	int partitions = opts->partitions ? opts->partitions : 8;
	struct ag_topic *t = ag_app_find_topic(app, name);
	if (t) {
		if (t->partitions != partitions || t->key_codec != opts->key_codec ||
		    t->value_codec != opts->value_codec || t->key_type != opts->key_type ||
		    t->value_type != opts->value_type)
			return -EEXIST;
		if (out)
			*out = t;
		return 0;
	}
	t = calloc(1, sizeof(*t));
	if (!t || !(t->name = strdup(name))) {
		free(t);
		return -ENOMEM;
	}
	t->app = app;
	t->partitions = partitions;
	t->key_codec = opts->key_codec;
	t->value_codec = opts->value_codec;
	t->internal = opts->internal;
	t->key_type = opts->key_type;
	t->value_type = opts->value_type;
	t->key_required = opts->key_required;
	if ((t->key_type && ag_app_model(app, t->key_type) < 0) ||
	    (t->value_type && ag_app_model(app, t->value_type) < 0) ||
	    push(&app->topics, &app->ntopics, t) < 0) {
		ag__topic_free(t);
		return -ENOMEM;
	}
	if (out)
		*out = t;
	return 0;
}

static int
codec_known(const struct ag_app *app, enum ag_codec codec)
{
	return (unsigned)codec <= AG_CODEC_DOUBLE ||
	       ((unsigned)codec >= AG_CODEC_CUSTOM &&
		(unsigned)codec - AG_CODEC_CUSTOM < app->ncodecs);
}

static int
type_fits(const struct ag_app *app, const char *topic, const struct ag_record_type *type,
	  enum ag_codec codec)
{
	char why[256];
	if (!type)
		return 1;
	if (codec != AG_CODEC_JSON && codec != AG_CODEC_MSGPACK) {
		ag__log(app, AG_LOG_ERROR,
			"topic %s: record type %s needs the json or msgpack codec", topic,
			type->name);
		return 0;
	}
	if (ag_record_type_check(type, why, sizeof(why)) < 0) {
		ag__log(app, AG_LOG_ERROR, "topic %s: record type %s: %s", topic, type->name, why);
		return 0;
	}
	return 1;
}

AG_EXPORT int
ag_app_model(struct ag_app *app, const struct ag_record_type *type)
{
	char why[256];
	if (!type)
		return -EINVAL;
	for (size_t i = 0; i < app->nmodels; i++) {
		if (app->models[i] == type)
			return 0;
	}
	if (ag_record_type_check(type, why, sizeof(why)) < 0) {
		ag__log(app, AG_LOG_ERROR, "record type %s: %s", type->name ? type->name : "?",
			why);
		return -EINVAL;
	}
	const struct ag_record_type **grown =
		realloc(app->models, (app->nmodels + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	grown[app->nmodels++] = type;
	app->models = grown;
	for (size_t i = 0; i < type->nfields; i++) {
		const struct ag_field *f = &type->fields[i];
		int rc = f->type == AG_FIELD_RECORD ? ag_app_model(app, f->record) : 0;
		if (rc < 0)
			return rc;
	}
	return 0;
}

AG_EXPORT int
ag_app_codec(struct ag_app *app, const struct ag_codec_ops *ops, enum ag_codec *id)
{
	enum ag_codec builtin;
	if (!ops || !ops->name || !*ops->name || !ops->validate)
		return -EINVAL;
	if (ag__codec_parse(ops->name, &builtin) == 0)
		return -EEXIST;
	for (size_t i = 0; i < app->ncodecs; i++) {
		if (strcmp(app->codecs[i].name, ops->name) == 0)
			return -EEXIST;
	}
	struct ag_codec_ops *grown = realloc(app->codecs, (app->ncodecs + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	grown[app->ncodecs] = *ops;
	app->codecs = grown;
	*id = (enum ag_codec)(AG_CODEC_CUSTOM + app->ncodecs++);
	return 0;
}

const char *
ag__app_codec_name(const struct ag_app *app, enum ag_codec codec)
{
	if ((unsigned)codec >= AG_CODEC_CUSTOM && (unsigned)codec - AG_CODEC_CUSTOM < app->ncodecs)
		return app->codecs[codec - AG_CODEC_CUSTOM].name;
	return ag__codec_name(codec);
}

int
ag__app_codec_validate(const struct ag_app *app, enum ag_codec codec, struct ag_bytes data,
		       char *err, size_t errlen)
{
	if ((unsigned)codec >= AG_CODEC_CUSTOM &&
	    (unsigned)codec - AG_CODEC_CUSTOM < app->ncodecs) {
		const struct ag_codec_ops *ops = &app->codecs[codec - AG_CODEC_CUSTOM];
		err[0] = 0;
		if (ops->validate(data, err, errlen, ops->userdata) == 0)
			return 0;
		if (!err[0])
			snprintf(err, errlen, "rejected by codec %s", ops->name);
		return AG_EDECODE;
	}
	return ag__codec_validate(codec, data, err, errlen);
}

const char *
ag__bad_name(enum ag__bad reason)
{
	static const char *const names[AG__BAD_N] = {"decode", "type",     "missing",
						     "empty",  "null_key", "too_large"};
	return (unsigned)reason < AG__BAD_N ? names[reason] : "unknown";
}

int
ag__check_value(const struct ag_app *app, enum ag_codec codec, const struct ag_record_type *type,
		struct ag_bytes data, void *rec, struct ag_arena *arena, char *err, size_t errlen)
{
	if (!type && codec == AG_CODEC_RAW)
		return -1;
	if (!data.ptr || !data.len) {
		if (codec == AG_CODEC_STRING && !type)
			return -1;
		snprintf(err, errlen, "empty value where %s is expected",
			 type ? type->name : ag__app_codec_name(app, codec));
		return AG__BAD_EMPTY;
	}
	int rc;
	if (type && rec)
		rc = ag_record_decode(type, codec, data, rec, arena, err, errlen);
	else if (type) {
		struct ag_arena *scratch;
		void *tmp = calloc(1, type->size);
		rc = tmp && ag_arena_new(&scratch) == 0 ? 0 : -ENOMEM;
		if (rc == 0) {
			rc = ag_record_decode(type, codec, data, tmp, scratch, err, errlen);
			ag_arena_free(scratch);
		}
		free(tmp);
	} else {
		rc = ag__app_codec_validate(app, codec, data, err, errlen);
	}
	switch (rc) {
	case 0:
		return -1;
	case AG_ETYPE:
		return AG__BAD_TYPE;
	case AG_EMISSING:
		return AG__BAD_MISSING;
	case -ENOMEM:
		snprintf(err, errlen, "out of memory while decoding");
		return AG__BAD_DECODE;
	default:
		return AG__BAD_DECODE;
	}
}

AG_EXPORT const char *
ag_topic_name(const struct ag_topic *topic)
{
	return topic->name;
}

AG_EXPORT int
ag_topic_partitions(const struct ag_topic *topic)
{
	return topic->partitions;
}

AG_EXPORT int
ag_app_agent(struct ag_app *app, const char *name, struct ag_topic *source, ag_agent_fn fn,
	     void *userdata, struct ag_agent **out)
{
	if (!valid_name(name) || !fn || (source && source->app != app))
		return -EINVAL;
	if (ag_app_find_agent(app, name))
		return -EEXIST;
	struct ag_agent *a = calloc(1, sizeof(*a));
	if (!a || !(a->name = strdup(name))) {
		free(a);
		return -ENOMEM;
	}
	a->app = app;
	a->source = source;
	a->concurrency = 1;
	a->fn = fn;
	a->userdata = userdata;
	if (push(&app->agents, &app->nagents, a) < 0) {
		free(a->name);
		free(a);
		return -ENOMEM;
	}
	if (source && !source->agent)
		source->agent = a;
	if (out)
		*out = a;
	return 0;
}

AG_EXPORT int
ag_app_timer(struct ag_app *app, const char *name, double interval_s, unsigned flags,
	     ag_timer_fn fn, void *userdata)
{
	if (!valid_name(name) || !fn || (flags & ~(AG_TIMER_ONCE | AG_TIMER_LEADER)))
		return -EINVAL;
	/* Written so that NaN fails too. */
	if (!(interval_s >= 0.0 && interval_s <= 1e9) ||
	    (!(flags & AG_TIMER_ONCE) && !(interval_s > 0.0)))
		return -EINVAL;
	for (size_t i = 0; i < app->ntimers; i++) {
		if (strcmp(app->timers[i]->name, name) == 0)
			return -EEXIST;
	}
	struct ag__timer *t = calloc(1, sizeof(*t));
	if (!t || !(t->name = strdup(name))) {
		free(t);
		return -ENOMEM;
	}
	t->app = app;
	t->interval = interval_s;
	t->flags = flags;
	t->fn = fn;
	t->userdata = userdata;
	if (push(&app->timers, &app->ntimers, t) < 0) {
		free(t->name);
		free(t);
		return -ENOMEM;
	}
	return 0;
}

AG_EXPORT int
ag_agent_on_bad_input(struct ag_agent *agent, enum ag_bad_input policy)
{
	if ((unsigned)policy > AG_BAD_INPUT_STOP)
		return -EINVAL;
	agent->on_bad_input = policy;
	return 0;
}

AG_EXPORT const char *
ag_agent_name(const struct ag_agent *agent)
{
	return agent->name;
}

AG_EXPORT struct ag_topic *
ag_agent_topic(const struct ag_agent *agent)
{
	return agent->source;
}

static int
add_sink(struct ag_agent *agent, const struct ag__sink *sink)
{
	struct ag__sink *grown = realloc(agent->sinks, (agent->nsinks + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	grown[agent->nsinks++] = *sink;
	agent->sinks = grown;
	return 0;
}

AG_EXPORT int
ag_agent_sink_topic(struct ag_agent *agent, struct ag_topic *topic)
{
	if (!topic || topic->app != agent->app)
		return -EINVAL;
	return add_sink(agent, &(struct ag__sink){.kind = AG__SINK_TOPIC, .topic = topic});
}

AG_EXPORT int
ag_agent_sink_agent(struct ag_agent *agent, struct ag_agent *target)
{
	if (!target || target->app != agent->app)
		return -EINVAL;
	return add_sink(agent, &(struct ag__sink){.kind = AG__SINK_AGENT, .agent = target});
}

AG_EXPORT int
ag_agent_sink_callback(struct ag_agent *agent, ag_sink_fn fn, void *userdata)
{
	if (!fn)
		return -EINVAL;
	return add_sink(agent, &(struct ag__sink){
				       .kind = AG__SINK_CALLBACK, .fn = fn, .userdata = userdata});
}

static int
add_stage(struct ag_agent *agent, const struct ag__stage *stage)
{
	struct ag__stage *grown = realloc(agent->stages, (agent->nstages + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	grown[agent->nstages++] = *stage;
	agent->stages = grown;
	return 0;
}

AG_EXPORT int
ag_agent_filter(struct ag_agent *agent, ag_filter_fn fn, void *userdata)
{
	if (!fn)
		return -EINVAL;
	return add_stage(
		agent,
		&(struct ag__stage){.kind = AG__STAGE_FILTER, .filter = fn, .userdata = userdata});
}

AG_EXPORT int
ag_agent_processor(struct ag_agent *agent, ag_processor_fn fn, void *userdata)
{
	if (!fn)
		return -EINVAL;
	return add_stage(agent, &(struct ag__stage){.kind = AG__STAGE_PROCESSOR,
						    .processor = fn,
						    .userdata = userdata});
}

AG_EXPORT int
ag_agent_echo(struct ag_agent *agent, struct ag_topic *topic)
{
	if (!topic || topic->app != agent->app)
		return -EINVAL;
	return add_stage(agent, &(struct ag__stage){.kind = AG__STAGE_ECHO, .topic = topic});
}

static int agent_own_topic(struct ag_app *app, struct ag_agent *a);

/* Whether path (a.b.c) names a scalar field of type: what a message key can be made of. */
static int
scalar_path(const struct ag_record_type *type, const char *path)
{
	while (type) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);
		const struct ag_field *f = NULL;
		for (size_t i = 0; i < type->nfields && !f; i++) {
			if (strncmp(type->fields[i].name, path, n) == 0 &&
			    type->fields[i].name[n] == '\0')
				f = &type->fields[i];
		}
		if (!f)
			return 0;
		if (!dot)
			return f->type >= AG_FIELD_STRING && f->type <= AG_FIELD_BOOL;
		type = f->type == AG_FIELD_RECORD ? f->record : NULL;
		path = dot + 1;
	}
	return 0;
}

/* The topic the stream reads at the end of agent's pipeline so far. */
static struct ag_topic *
stream_topic(struct ag_agent *agent)
{
	for (size_t i = agent->nstages; i-- > 0;) {
		enum ag__stage_kind k = agent->stages[i].kind;
		if (k == AG__STAGE_GROUP_BY || k == AG__STAGE_THROUGH)
			return agent->stages[i].topic;
	}
	return agent->source;
}

static int
add_boundary(struct ag_agent *agent, struct ag__stage *stage, struct ag_topic *topic)
{
	stage->topic = topic;
	int rc = add_stage(agent, stage);
	if (rc < 0)
		return rc;
	if (!topic->agent)
		topic->agent = agent;
	return 0;
}

static int
group_by(struct ag_agent *agent, const char *name, ag_key_fn fn, const char *field, void *userdata,
	 int partitions, struct ag_topic **out)
{
	struct ag_app *app = agent->app;
	if (!valid_name(name) || !app->id || partitions < 0 || partitions > 100000)
		return -EINVAL;
	int rc = agent_own_topic(app, agent);
	if (rc < 0)
		return rc;
	struct ag_topic *from = stream_topic(agent);
	if (field && !scalar_path(from->value_type, field))
		return -EINVAL;
	char suffix[300];
	if ((size_t)snprintf(suffix, sizeof(suffix), "%s-%s", agent->name, name) >= sizeof(suffix))
		return -EINVAL;
	char full[600];
	snprintf(full, sizeof(full), "%s-%s-repartition", app->id, suffix);
	if (ag_app_find_topic(app, full))
		return -EEXIST;
	struct ag_topic_opts o = {
		.partitions = partitions ? partitions : from->partitions,
		.key_codec = AG_CODEC_RAW,
		.value_codec = from->value_codec,
		.value_type = from->value_type,
		.internal = 1,
	};
	struct ag_topic *t;
	if ((rc = ag_app_topic(app, full, &o, &t)) < 0)
		return rc;
	struct ag__stage st = {.kind = AG__STAGE_GROUP_BY, .key_fn = fn, .userdata = userdata};
	if (field && !(st.field = strdup(field)))
		return -ENOMEM;
	if ((rc = add_boundary(agent, &st, t)) < 0) {
		free(st.field);
		return rc;
	}
	if (out)
		*out = t;
	return 0;
}

AG_EXPORT int
ag_agent_group_by(struct ag_agent *agent, const char *name, ag_key_fn fn, void *userdata,
		  int partitions, struct ag_topic **out)
{
	if (!fn)
		return -EINVAL;
	return group_by(agent, name, fn, NULL, userdata, partitions, out);
}

AG_EXPORT int
ag_agent_group_by_field(struct ag_agent *agent, const char *field, int partitions,
			struct ag_topic **out)
{
	if (!field)
		return -EINVAL;
	return group_by(agent, field, NULL, field, NULL, partitions, out);
}

AG_EXPORT int
ag_agent_through(struct ag_agent *agent, struct ag_topic *topic)
{
	if (!topic || topic->app != agent->app || topic->channel)
		return -EINVAL;
	/* Forwarding into a topic the agent already reads would loop. */
	if (topic == agent->source)
		return -EEXIST;
	for (size_t i = 0; i < agent->nstages; i++) {
		if (agent->stages[i].topic == topic && agent->stages[i].kind != AG__STAGE_ECHO)
			return -EEXIST;
	}
	return add_boundary(agent, &(struct ag__stage){.kind = AG__STAGE_THROUGH}, topic);
}

AG_EXPORT int
ag_agent_concurrency(struct ag_agent *agent, int n)
{
	if (n < 1 || n > 1024)
		return -EINVAL;
	agent->concurrency = n;
	return 0;
}

AG_EXPORT int
ag_app_table(struct ag_app *app, const char *name, struct ag_topic *source,
	     const struct ag_table_opts *opts, struct ag_table **out)
{
	if (!valid_name(name) || !source || source->app != app || source->channel)
		return -EINVAL;
	if (find_table(app, name))
		return -EEXIST;
	struct ag_table *t = calloc(1, sizeof(*t));
	if (!t || !(t->name = strdup(name))) {
		free(t);
		return -ENOMEM;
	}
	t->app = app;
	t->source = source;
	if (opts)
		t->opts = *opts;
	if (push(&app->tables, &app->ntables, t) < 0) {
		free(t->name);
		free(t);
		return -ENOMEM;
	}
	if (out)
		*out = t;
	return 0;
}

AG_EXPORT const char *
ag_table_name(const struct ag_table *table)
{
	return table->name;
}

static int
internal_topic(struct ag_app *app, const char *suffix_a, const char *suffix_b, int partitions,
	       struct ag_topic **out)
{
	char name[512];
	int n = snprintf(name, sizeof(name), "%s-%s%s", app->id, suffix_a, suffix_b);
	if (n < 0 || (size_t)n >= sizeof(name))
		return -EINVAL;
	struct ag_topic_opts o = {.partitions = partitions,
				  .key_codec = AG_CODEC_RAW,
				  .value_codec = AG_CODEC_RAW,
				  .internal = 1};
	int rc = ag_app_topic(app, name, &o, out);
	if (rc == -EEXIST)
		ag__log(app, AG_LOG_ERROR,
			"topic %s is declared by the app with other options than faustc needs "
			"for its internal topic; rename the app's topic",
			name);
	return rc;
}

/*
 * Event time: marks the topics windowed tables follow (their partitions keep watermarks),
 * takes their tables' time function, finds the forwarder feeding a boundary topic (its
 * source partitions are the watermark's channels) and declares the late topics.
 */
static int
event_time_setup(struct ag_app *app)
{
	for (size_t i = 0; i < app->ntables; i++) {
		struct ag_table *t = app->tables[i];
		if (!t->win.on)
			continue;
		struct ag_topic *src = t->source;
		src->windowed = 1;
		if (t->win.opts.clock == AG_WINDOW_FIELD) {
			if (src->wm_fn && (src->wm_fn != t->win.opts.time_fn ||
					   src->wm_userdata != t->win.opts.time_userdata)) {
				ag__log(app, AG_LOG_ERROR,
					"windowed tables on topic %s take event time from "
					"different "
					"time functions (table %s is one): one stream has one "
					"event "
					"time; give them the same function",
					src->name, t->name);
				return AG_ECONFIG;
			}
			src->wm_fn = t->win.opts.time_fn;
			src->wm_userdata = t->win.opts.time_userdata;
		}
		if (app->late_to_topic && !t->late_topic) {
			int rc = internal_topic(app, t->name, "-late", src->partitions,
						&t->late_topic);
			if (rc < 0)
				return rc == -EEXIST ? AG_ECONFIG : rc;
		}
	}
	for (size_t i = 0; i < app->nagents; i++) {
		const struct ag_agent *a = app->agents[i];
		for (size_t k = 0; k < a->nsegs; k++) {
			const struct ag__seg *seg = &a->segs[k];
			struct ag_topic *b = seg->boundary ? seg->boundary->topic : NULL;
			if (!b || !b->windowed)
				continue;
			if (b->wm_sources) {
				ag__log(app, AG_LOG_ERROR,
					"topic %s is followed by a windowed table and more than "
					"one "
					"agent forwards to it (%s is one): its event time would "
					"mix "
					"their sources; give each its own topic",
					b->name, a->name);
				return AG_ECONFIG;
			}
			b->wm_sources = (uint32_t)seg->input->partitions;
		}
	}
	return 0;
}

/* An agent declared without a source gets its own topic <app_id>-<agent>. */
static int
agent_own_topic(struct ag_app *app, struct ag_agent *a)
{
	if (a->source)
		return 0;
	if (!app->id)
		return -EINVAL;
	int rc = internal_topic(app, a->name, "", 8, &a->source);
	if (rc < 0)
		return rc == -EEXIST ? AG_ECONFIG : rc;
	a->source->key_codec = AG_CODEC_STRING;
	if (a->source->agent && a->source->agent != a) {
		ag__log(app, AG_LOG_ERROR, "agent %s: its topic %s already feeds agent %s", a->name,
			a->source->name, a->source->agent->name);
		return AG_ECONFIG;
	}
	a->source->agent = a;
	return 0;
}

/* Whether a table follows one of the topics the agent reads (it then keeps state). */
static const struct ag_table *
agent_table(const struct ag_app *app, const struct ag_agent *a)
{
	for (size_t i = 0; i < app->ntables; i++) {
		for (size_t k = 0; k < a->nsegs; k++) {
			if (app->tables[i]->source == a->segs[k].input)
				return app->tables[i];
		}
	}
	return NULL;
}

/* Cuts the agent's pipeline at its boundaries into segments, one per topic it reads. */
static int
build_segments(struct ag_app *app, struct ag_agent *a)
{
	size_t n = 1;
	for (size_t i = 0; i < a->nstages; i++)
		n += a->stages[i].kind == AG__STAGE_GROUP_BY ||
		     a->stages[i].kind == AG__STAGE_THROUGH;
	if (!(a->segs = calloc(n, sizeof(*a->segs))))
		return -ENOMEM;
	a->nsegs = n;
	struct ag_topic *input = a->source;
	size_t first = 0, k = 0;
	for (size_t i = 0; i <= a->nstages; i++) {
		const struct ag__stage *st = i < a->nstages ? &a->stages[i] : NULL;
		if (st && st->kind != AG__STAGE_GROUP_BY && st->kind != AG__STAGE_THROUGH)
			continue;
		struct ag__seg *seg = &a->segs[k++];
		seg->agent = a;
		seg->input = input;
		seg->first = first;
		seg->end = i;
		seg->boundary = st;
		struct ag__seg **readers =
			realloc(input->readers, (input->nreaders + 1) * sizeof(*readers));
		if (!readers)
			return -ENOMEM;
		seg->reader = (uint32_t)input->nreaders;
		readers[input->nreaders++] = seg;
		input->readers = readers;
		if (!input->agent)
			input->agent = a;
		if (st)
			input = st->topic;
		first = i + 1;
	}
	if (a->concurrency > 1) {
		const struct ag_table *t = agent_table(app, a);
		if (a->nsegs > 1 || t) {
			char why[300];
			if (t)
				snprintf(why, sizeof(why), "table %s follows its stream", t->name);
			else
				snprintf(why, sizeof(why), "it repartitions its stream");
			ag__log(app, AG_LOG_ERROR,
				"agent %s has concurrency %d, but %s: concurrent instances would "
				"update one key's state out of order; use concurrency 1 (or move "
				"the "
				"state to an agent of its own)",
				a->name, a->concurrency, why);
			return AG_ECONFIG;
		}
	}
	return 0;
}

int
ag__app_finalize(struct ag_app *app)
{
	if (app->finalized)
		return 0;
	if (!app->id) {
		ag__log(app, AG_LOG_ERROR,
			"the app did not set an id: call ag_app_set_id(app, \"name\") in setup");
		return AG_ECONFIG;
	}
	if (!app->datadir) {
		char dir[AG__ID_MAX + 16];
		snprintf(dir, sizeof(dir), "./%s-data", app->id);
		if (set_string(&app->datadir, dir) < 0)
			return -ENOMEM;
	}
	for (size_t i = 0; i < app->nagents; i++) {
		int rc = agent_own_topic(app, app->agents[i]);
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < app->nagents; i++) {
		int rc = build_segments(app, app->agents[i]);
		if (rc < 0)
			return rc;
	}
	if (app->nagents) {
		/* Every worker reads one partition of it, for the answers to its asks. */
		int rc = internal_topic(app, "__reply", "", 8, &app->reply_topic);
		if (rc < 0)
			return rc == -EEXIST ? AG_ECONFIG : rc;
		/* Workers tell each other their web addresses and partitions (table redirects). */
		rc = internal_topic(app, "__workers", "", 1, &app->workers_topic);
		if (rc < 0)
			return rc == -EEXIST ? AG_ECONFIG : rc;
	}
	for (size_t i = 0; i < app->nagents; i++) {
		struct ag_agent *a = app->agents[i];
		if (a->on_bad_input != AG_BAD_INPUT_DEAD_LETTER)
			continue;
		int rc = internal_topic(app, a->name, "-dead-letter", a->source->partitions,
					&a->dead_letter);
		if (rc < 0)
			return rc == -EEXIST ? AG_ECONFIG : rc;
	}
	for (size_t i = 0; i < app->ntables; i++) {
		struct ag_table *t = app->tables[i];
		int rc = internal_topic(app, t->name, "-changelog", t->source->partitions,
					&t->changelog);
		if (rc < 0)
			return rc == -EEXIST ? AG_ECONFIG : rc;
	}
	int erc = event_time_setup(app);
	if (erc < 0)
		return erc;
	for (size_t i = 0; i < app->ntimers; i++) {
		if (!(app->timers[i]->flags & AG_TIMER_LEADER))
			continue;
		/* The group's member assigned its only partition is the leader. */
		int rc = internal_topic(app, "__leader", "", 1, &app->leader_topic);
		if (rc < 0)
			return rc == -EEXIST ? AG_ECONFIG : rc;
		break;
	}
	app->finalized = 1;
	return 0;
}

const char *
ag__app_datadir(const struct ag_app *app)
{
	return app->datadir;
}
