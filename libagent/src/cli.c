/*
 * The faustc command line, shared by `faustc -A APP ...` and apps built as their own
 * binary (ag_app_main). Commands follow Faust's: worker, send, agents, topics, broker.
 * Exit status: 0 success, 1 runtime failure, 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli_tables.h"
#include "codec.h"
#include "web/web.h"
#include "worker.h"

static const char usage_main[] =
	"usage: faustc [-A APP] COMMAND [OPTIONS]\n"
	"\n"
	"Commands:\n"
	"  worker    run the app's agents (hosts an embedded broker unless --broker is given)\n"
	"  send      send a value to a topic or an agent: send TOPIC|@AGENT [--key K] "
	"[VALUE|--file F]\n"
	"  agents    list the app's agents\n"
	"  topics    list the app's topics (internal ones too)\n"
	"  models    list the app's record types; `model NAME` shows one's fields\n"
	"  tables    list the app's tables: partitions, key counts, changelog positions\n"
	"  table     dump a table from the data dir: table NAME [--key K] [--json]\n"
	"  reset     delete the local table state: reset --yes\n"
	"  status    one-screen summary of a running worker: status [--web URL]\n"
	"  broker    run an embedded Kafka broker for several workers\n"
	"  new       write a new app project: faustc new NAME [DIR] (no -A)\n"
	"\n"
	"Options (before or after the command):\n"
	"  -A, --app APP             app module: NAME (NAME.so/libNAME.so searched in ., "
	"$FAUSTC_PATH\n"
	"                            and the apps dir) or a path to a .so\n"
	"  -l, --loglevel LEVEL      debug, info, warn, error (default info)\n"
	"  -b, --broker URL          kafka://host:9092,... or mock://host:port (from faustc "
	"broker);\n"
	"                            default: the embedded broker (worker) or DATADIR/broker.addr\n"
	"      --datadir DIR         data dir (default ./<app_id>-data)\n"
	"      --kafka-config K=V    librdkafka property for every client (repeatable)\n"
	"      --commit-interval S   seconds between offset commits (default 2.8)\n"
	"      --processing-guarantee at_least_once|exactly_once  exactly_once: Kafka\n"
	"                            transactions (needs a real Kafka broker; default\n"
	"                            at_least_once)\n"
	"      --idle-timeout S      seconds before a quiet source partition stops holding\n"
	"                            windows open (default 5)\n"
	"      --late-events drop|topic  late window events: dropped and counted (default),\n"
	"                            or sent to <app_id>-<table>-late\n"
	"      --web-bind ADDR       address of the worker's web server (default 127.0.0.1)\n"
	"      --web-port PORT       its port (default 6066; taken: the next free one; 0: any\n"
	"                            free port); the URL is written to DATADIR/web.addr\n"
	"      --no-web              no web server (/health, /info, /metrics, /tables, /)\n"
	"      --worker-id ID        this worker's static group membership on Kafka\n"
	"                            (default: from the app id, host and data dir)\n"
	"      --replication-factor N  replicas of the topics faustc creates on Kafka\n"
	"                            (default min(3, brokers))\n"
	"  -h, --help                this help; `faustc COMMAND --help` for a command\n"
	"      --version             print the version\n";

static const char *const usage_cmd[][2] = {
	{"worker", "usage: faustc -A APP worker [-l LEVEL] [--broker URL] [--datadir DIR]\n"
		   "                 [--kafka-config K=V]... [--commit-interval S]\n"
		   "                 [--processing-guarantee at_least_once|exactly_once]\n"
		   "                 [--idle-timeout S] [--late-events drop|topic]\n"
		   "                 [--web-bind ADDR] [--web-port PORT] [--no-web]\n"
		   "Runs the app's agents until SIGINT/SIGTERM, then commits and exits 0.\n"
		   "Serves /health, /info, /metrics, /tables/NAME[/KEY] and a live page on\n"
		   "http://127.0.0.1:6066 (see --web-port; the URL is in DATADIR/web.addr).\n"},
	{"status", "usage: faustc -A APP status [--web URL] [--datadir DIR]\n"
		   "Prints a one-screen summary of a running worker (health, agents with rates,\n"
		   "lag and latency, partitions, tables), asked over HTTP at URL (default: the\n"
		   "one in DATADIR/web.addr).\n"},
	{"send",
	 "usage: faustc -A APP send TOPIC|@AGENT [--key K] [VALUE | --file FILE]\n"
	 "                 [--key-delimiter D] [--broker URL] [--datadir DIR] [--timeout S]\n"
	 "Validates and sends one VALUE (or one value per line of FILE; - is stdin).\n"
	 "With --key-delimiter D each value is KEY D VALUE, split at the first D.\n"
	 "Without --broker it uses DATADIR/broker.addr written by a running worker.\n"},
	{"agents",
	 "usage: faustc -A APP agents\nLists the app's agents, their topics and sinks.\n"},
	{"models", "usage: faustc -A APP models\nLists the app's record types.\n"},
	{"model", "usage: faustc -A APP model NAME\nPrints the fields of record type NAME.\n"},
	{"topics",
	 "usage: faustc -A APP topics\nLists the app's topics with partitions and codecs.\n"},
	{"tables", "usage: faustc -A APP tables [--datadir DIR]\n"
		   "Lists the app's tables with each partition's key count and the changelog\n"
		   "offset LMDB is durable up to, read from DATADIR (safe while a worker runs).\n"},
	{"table", "usage: faustc -A APP table NAME [--key K] [--json] [--datadir DIR]\n"
		  "Prints the keys and values of table NAME (windows with their bounds in ms)\n"
		  "straight from DATADIR's LMDB, read-only (safe while a worker runs).\n"},
	{"reset", "usage: faustc -A APP reset --yes [--datadir DIR]\n"
		  "Deletes the local table state (DATADIR/tables); the next worker rebuilds it\n"
		  "from the changelogs. Refused without --yes and while a worker uses DATADIR.\n"},
	{"broker",
	 "usage: faustc [-A APP] broker [--addr-file FILE]\n"
	 "Runs an embedded Kafka broker (librdkafka's mock cluster) until SIGINT/SIGTERM.\n"
	 "Prints the URL to pass to --broker (mock://127.0.0.1:PORT) and writes it to FILE.\n"
	 "With -A it creates the app's topics with their partition counts.\n"},
};

enum {
	OPT_DATADIR = 256,
	OPT_KAFKA,
	OPT_COMMIT,
	OPT_GUARANTEE,
	OPT_IDLE,
	OPT_LATE,
	OPT_REPLICATION,
	OPT_WORKER_ID,
	OPT_KEY,
	OPT_KEY_DELIM,
	OPT_FILE,
	OPT_ADDR_FILE,
	OPT_TIMEOUT,
	OPT_VERSION,
	OPT_JSON,
	OPT_YES,
	OPT_WEB_BIND,
	OPT_WEB_PORT,
	OPT_NO_WEB,
	OPT_WEB,
};

static const struct option options[] = {
	{"app", required_argument, NULL, 'A'},
	{"loglevel", required_argument, NULL, 'l'},
	{"broker", required_argument, NULL, 'b'},
	{"datadir", required_argument, NULL, OPT_DATADIR},
	{"kafka-config", required_argument, NULL, OPT_KAFKA},
	{"commit-interval", required_argument, NULL, OPT_COMMIT},
	{"processing-guarantee", required_argument, NULL, OPT_GUARANTEE},
	{"idle-timeout", required_argument, NULL, OPT_IDLE},
	{"late-events", required_argument, NULL, OPT_LATE},
	{"replication-factor", required_argument, NULL, OPT_REPLICATION},
	{"worker-id", required_argument, NULL, OPT_WORKER_ID},
	{"key", required_argument, NULL, OPT_KEY},
	{"key-delimiter", required_argument, NULL, OPT_KEY_DELIM},
	{"file", required_argument, NULL, OPT_FILE},
	{"addr-file", required_argument, NULL, OPT_ADDR_FILE},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, OPT_VERSION},
	{"json", no_argument, NULL, OPT_JSON},
	{"yes", no_argument, NULL, OPT_YES},
	{"web-bind", required_argument, NULL, OPT_WEB_BIND},
	{"web-port", required_argument, NULL, OPT_WEB_PORT},
	{"no-web", no_argument, NULL, OPT_NO_WEB},
	{"web", required_argument, NULL, OPT_WEB},
	{NULL, 0, NULL, 0},
};

static const char *
cmd_usage(const char *cmd)
{
	for (size_t i = 0; i < AG__ARRAY_SIZE(usage_cmd); i++)
		if (cmd && strcmp(cmd, usage_cmd[i][0]) == 0)
			return usage_cmd[i][1];
	return NULL;
}

static int
bad_usage(const char *cmd, const char *fmt, const char *arg)
{
	fprintf(stderr, "faustc: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nRun `faustc %s%s--help` for usage.\n", cmd ? cmd : "", cmd ? " " : "");
	return 2;
}

static void
list_agents(const struct ag_app *app)
{
	printf("%-24s %-32s %-32s %s\n", "AGENT", "TOPIC", "SINKS", "OPERATORS");
	for (size_t i = 0; i < app->nagents; i++) {
		const struct ag_agent *a = app->agents[i];
		char sinks[512] = "";
		size_t n = 0;
		for (size_t j = 0; j < a->nsinks && n < sizeof(sinks) - 80; j++) {
			const struct ag__sink *s = &a->sinks[j];
			n += (size_t)snprintf(sinks + n, sizeof(sinks) - n, "%s%s%s", j ? ", " : "",
					      s->kind == AG__SINK_TOPIC   ? "topic:"
					      : s->kind == AG__SINK_AGENT ? "@"
									  : "callback",
					      s->kind == AG__SINK_TOPIC   ? s->topic->name
					      : s->kind == AG__SINK_AGENT ? s->agent->name
									  : "");
		}
		char ops[512] = "";
		size_t m = 0;
		for (size_t j = 0; j < a->nstages && m < sizeof(ops) - 300; j++) {
			const struct ag__stage *st = &a->stages[j];
			static const char *const names[] = {
				[AG__STAGE_FILTER] = "filter",
				[AG__STAGE_PROCESSOR] = "processor",
				[AG__STAGE_ECHO] = "echo:",
				[AG__STAGE_GROUP_BY] = "group_by:",
				[AG__STAGE_THROUGH] = "through:",
			};
			m += (size_t)snprintf(ops + m, sizeof(ops) - m, "%s%s%s", j ? ", " : "",
					      names[st->kind], st->topic ? st->topic->name : "");
		}
		if (a->concurrency > 1 && m < sizeof(ops) - 40)
			m += (size_t)snprintf(ops + m, sizeof(ops) - m, "%sconcurrency=%d",
					      m ? ", " : "", a->concurrency);
		printf("%-24s %-32s %-32s %s\n", a->name, a->source->name, n ? sinks : "-",
		       m ? ops : "-");
	}
}

static void
list_topics(const struct ag_app *app)
{
	printf("%-40s %10s %-7s %-7s %-8s %s\n", "TOPIC", "PARTITIONS", "KEY", "VALUE", "KIND",
	       "RECORD");
	for (size_t i = 0; i < app->ntopics; i++) {
		const struct ag_topic *t = app->topics[i];
		printf("%-40s %10d %-7s %-7s %-8s %s\n", t->name, t->partitions,
		       ag__app_codec_name(app, t->key_codec),
		       ag__app_codec_name(app, t->value_codec), t->internal ? "internal" : "app",
		       t->value_type ? t->value_type->name : "-");
	}
}

static void
list_models(const struct ag_app *app)
{
	printf("%-32s %6s %s\n", "MODEL", "FIELDS", "TOPICS");
	for (size_t i = 0; i < app->nmodels; i++) {
		const struct ag_record_type *m = app->models[i];
		char topics[512] = "";
		size_t n = 0;
		for (size_t j = 0; j < app->ntopics && n < sizeof(topics) - 64; j++) {
			const struct ag_topic *t = app->topics[j];
			if (t->value_type == m || t->key_type == m)
				n += (size_t)snprintf(topics + n, sizeof(topics) - n, "%s%s%s",
						      n ? ", " : "", t->name,
						      t->key_type == m ? " (key)" : "");
		}
		printf("%-32s %6zu %s\n", m->name, m->nfields, n ? topics : "-");
	}
}

static int
show_model(const struct ag_app *app, const char *name)
{
	for (size_t i = 0; i < app->nmodels; i++) {
		const struct ag_record_type *m = app->models[i];
		if (strcmp(m->name, name) != 0)
			continue;
		printf("%s\n%-24s %-16s %s\n", m->name, "FIELD", "TYPE", "REQUIRED");
		for (size_t f = 0; f < m->nfields; f++) {
			const struct ag_field *fd = &m->fields[f];
			printf("%-24s %-16s %s\n", fd->name,
			       fd->type == AG_FIELD_RECORD ? fd->record->name
							   : ag_field_type_name(fd->type),
			       fd->flags & AG_FIELD_OPTIONAL ? "no" : "yes");
		}
		return 0;
	}
	fprintf(stderr, "faustc: the app has no record type '%s'; `faustc models` lists them\n",
		name);
	return 2;
}

AG_EXPORT int
ag_app_main(int argc, char **argv, ag_app_setup_fn setup)
{
	const char *cmd = NULL, *addr_file = NULL, *web_url = NULL;
	struct ag__send_args send = {.timeout = 10.0};
	int help = 0, status = 2, rc, json = 0, yes = 0;
	struct ag_app *app = NULL;
	const char *positional[8];
	int npositional = 0;
	struct {
		const char *name;
		const char *value;
	} opts[64];
	size_t nopts = 0;

	if (ag_app_new(&app) < 0)
		return 1;
	optind = 1;
	opterr = 0;
	for (;;) {
		int c = getopt_long(argc, argv, "-A:l:b:h", options, NULL);
		if (c == -1)
			break;
		if (nopts >= AG__ARRAY_SIZE(opts) - 1) {
			status = bad_usage(cmd, "too many options%s", "");
			goto out;
		}
		switch (c) {
		case 1:
			if (!cmd)
				cmd = optarg;
			else if (npositional < (int)AG__ARRAY_SIZE(positional))
				positional[npositional++] = optarg;
			else {
				status = bad_usage(cmd, "too many arguments: %s", optarg);
				goto out;
			}
			break;
		case 'A':
			break; /* the faustc binary loaded the app already */
		case 'l':
			opts[nopts].name = "loglevel";
			opts[nopts++].value = optarg;
			break;
		case 'b':
			opts[nopts].name = "broker";
			opts[nopts++].value = optarg;
			break;
		case OPT_DATADIR:
			opts[nopts].name = "datadir";
			opts[nopts++].value = optarg;
			break;
		case OPT_COMMIT:
			opts[nopts].name = "commit_interval";
			opts[nopts++].value = optarg;
			break;
		case OPT_GUARANTEE:
			opts[nopts].name = "processing_guarantee";
			opts[nopts++].value = optarg;
			break;
		case OPT_IDLE:
			opts[nopts].name = "idle_timeout";
			opts[nopts++].value = optarg;
			break;
		case OPT_LATE:
			opts[nopts].name = "late_events";
			opts[nopts++].value = optarg;
			break;
		case OPT_WEB_BIND:
			opts[nopts].name = "web_bind";
			opts[nopts++].value = optarg;
			break;
		case OPT_WEB_PORT:
			opts[nopts].name = "web_port";
			opts[nopts++].value = optarg;
			break;
		case OPT_NO_WEB:
			opts[nopts].name = "web";
			opts[nopts++].value = "0";
			break;
		case OPT_WEB:
			web_url = optarg;
			break;
		case OPT_REPLICATION:
			opts[nopts].name = "topic_replication_factor";
			opts[nopts++].value = optarg;
			break;
		case OPT_WORKER_ID:
			opts[nopts].name = "worker_id";
			opts[nopts++].value = optarg;
			break;
		case OPT_KAFKA:
			if (!strchr(optarg, '=') || optarg[0] == '=') {
				status = bad_usage(cmd, "--kafka-config wants KEY=VALUE, got '%s'",
						   optarg);
				goto out;
			}
			opts[nopts].name = "kafka.";
			opts[nopts++].value = optarg;
			break;
		case OPT_KEY:
			send.key = optarg;
			break;
		case OPT_KEY_DELIM:
			if (!*optarg) {
				status = bad_usage(cmd, "%s",
						   "--key-delimiter wants a non-empty string");
				goto out;
			}
			send.key_delimiter = optarg;
			break;
		case OPT_FILE:
			send.file = optarg;
			break;
		case OPT_ADDR_FILE:
			addr_file = optarg;
			break;
		case OPT_TIMEOUT: {
			char *end;
			send.timeout = strtod(optarg, &end);
			if (*end || end == optarg || !(send.timeout > 0)) {
				status = bad_usage(cmd, "--timeout wants seconds > 0, got '%s'",
						   optarg);
				goto out;
			}
			break;
		}
		case 'h':
			help = 1;
			break;
		case OPT_JSON:
			json = 1;
			break;
		case OPT_YES:
			yes = 1;
			break;
		case OPT_VERSION:
			printf("faustc %s\n", ag_version());
			status = 0;
			goto out;
		case '?':
		default:
			if (optopt && optopt < 256)
				status = bad_usage(cmd, "unknown or incomplete option -%s",
						   (char[]){(char)optopt, 0});
			else
				status = bad_usage(cmd, "unknown or incomplete option %s",
						   argv[optind - 1]);
			goto out;
		}
	}
	if (help || !cmd) {
		const char *u = cmd_usage(cmd);
		fputs(u ? u : usage_main, help ? stdout : stderr);
		status = help ? 0 : 2;
		goto out;
	}
	if (!cmd_usage(cmd)) {
		status = bad_usage(NULL,
				   "unknown command '%s' (commands: worker, send, agents, "
				   "topics, models, model, tables, table, reset, broker, status)",
				   cmd);
		goto out;
	}
	if (setup) {
		rc = setup(app);
		if (rc < 0) {
			fprintf(stderr, "faustc: the app's setup failed: %s (%s)\n",
				ag_strerror(rc), ag_err_name(rc));
			status = 1;
			goto out;
		}
	} else if (strcmp(cmd, "broker") != 0) {
		status = bad_usage(cmd, "%s needs an app: pass -A APP", cmd);
		goto out;
	}
	for (size_t i = 0; i < nopts; i++) {
		if (strcmp(opts[i].name, "kafka.") == 0) {
			char key[256];
			const char *eq = strchr(opts[i].value, '=');
			snprintf(key, sizeof(key), "kafka.%.*s", (int)(eq - opts[i].value),
				 opts[i].value);
			rc = ag_app_set_option(app, key, eq + 1);
		} else {
			rc = ag_app_set_option(app, opts[i].name, opts[i].value);
		}
		if (rc < 0) {
			char what[512];
			snprintf(what, sizeof(what), "%s '%s'%s", opts[i].name, opts[i].value,
				 strcmp(opts[i].name, "processing_guarantee") == 0
					 ? " (at_least_once or exactly_once)"
					 : "");
			status = bad_usage(cmd, "bad value for %s", what);
			goto out;
		}
	}
	if (setup && ag__app_finalize(app) < 0) {
		status = 1;
		goto out;
	}
	if (strcmp(cmd, "worker") == 0) {
		if (npositional) {
			status = bad_usage("worker", "unexpected argument '%s'", positional[0]);
			goto out;
		}
		status = ag__worker_run(app);
	} else if (strcmp(cmd, "send") == 0) {
		if (npositional < 1 || npositional > 2 || (npositional == 2 && send.file) ||
		    (npositional == 1 && !send.file) || (send.key && send.key_delimiter)) {
			status = bad_usage(
				"send ", "%s",
				"send wants TOPIC|@AGENT, either VALUE or --file FILE, and "
				"--key or --key-delimiter (not both)");
			goto out;
		}
		send.target = positional[0];
		send.value = npositional == 2 ? positional[1] : NULL;
		status = ag__cmd_send(app, &send);
	} else if (strcmp(cmd, "agents") == 0) {
		list_agents(app);
		status = 0;
	} else if (strcmp(cmd, "topics") == 0) {
		list_topics(app);
		status = 0;
	} else if (strcmp(cmd, "models") == 0) {
		list_models(app);
		status = 0;
	} else if (strcmp(cmd, "model") == 0) {
		if (npositional != 1) {
			status = bad_usage("model", "%s", "model wants one NAME");
			goto out;
		}
		status = show_model(app, positional[0]);
	} else if (strcmp(cmd, "tables") == 0) {
		status = npositional
				 ? bad_usage("tables", "unexpected argument '%s'", positional[0])
				 : ag__cmd_tables(app);
	} else if (strcmp(cmd, "table") == 0) {
		if (npositional != 1) {
			status = bad_usage("table", "%s", "table wants one NAME");
			goto out;
		}
		status = ag__cmd_table(app, positional[0], send.key, json);
	} else if (strcmp(cmd, "status") == 0) {
		status = npositional
				 ? bad_usage("status", "unexpected argument '%s'", positional[0])
				 : ag__cmd_status(app, web_url);
	} else if (strcmp(cmd, "reset") == 0) {
		status = npositional ? bad_usage("reset", "unexpected argument '%s'", positional[0])
				     : ag__cmd_reset(app, yes);
	} else {
		/* Without an app, --broker kafka:// still names the cluster to serve. */
		int cluster = !setup && app->broker && *app->broker;
		if (cluster && !ag_app_id(app) && ag_app_set_id(app, "faustc") < 0) {
			status = 1;
			goto out;
		}
		status = ag__broker_serve(setup || cluster ? app : NULL, addr_file);
	}
out:
	ag_app_free(app);
	return status;
}
