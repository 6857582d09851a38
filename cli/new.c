/*
 * `faustc new NAME [DIR]`: writes a ready app project into DIR (default ./NAME): NAME.c
 * with one topic, one agent and one table, a meson.build that finds the installed library
 * with dependency('libagent'), and a README with the commands to build and run it. The
 * templates are kept here, in the binary, so an installed faustc needs no data files.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "new.h"

static const char usage_new[] =
	"usage: faustc new NAME [DIR]\n"
	"\n"
	"Writes a new app project into DIR (default ./NAME): NAME.c (topic `events`, agent\n"
	"`count`, table `counts`), meson.build (finds libagent with pkg-config) and README.md.\n"
	"NAME is the app id: a letter, then letters, digits, '_' or '-'. DIR is created if\n"
	"needed; files already in it are never overwritten.\n";

/* Every @NAME@ in a template becomes the app's name. */
static const char template_c[] =
	"/*\n"
	" * @NAME@: a faustc app. Agent `count` reads topic `events`, counts the events of each\n"
	" * key in table `counts` and logs the new count.\n"
	" *\n"
	" *     faustc -A build/@NAME@.so worker\n"
	" *     faustc -A build/@NAME@.so send events hello --key k1\n"
	" *     faustc -A build/@NAME@.so table counts\n"
	" */\n"
	"#include <agent/agent.h>\n"
	"\n"
	"static struct ag_table *counts;\n"
	"\n"
	"static int\n"
	"count(struct ag_stream *s, void *userdata)\n"
	"{\n"
	"\tstruct ag_event *ev;\n"
	"\tint rc;\n"
	"\t(void)userdata;\n"
	"\twhile ((rc = ag_stream_next(s, &ev)) == 0) {\n"
	"\t\tstruct ag_bytes key = ag_event_key(ev);\n"
	"\t\tint64_t n;\n"
	"\t\tif (!key.ptr || !key.len) {\n"
	"\t\t\tag_log(ag_stream_app(s), AG_LOG_WARN, \"events[%d]@%lld: no key; skipped\",\n"
	"\t\t\t       (int)ag_event_partition(ev), (long long)ag_event_offset(ev));\n"
	"\t\t\tcontinue;\n"
	"\t\t}\n"
	"\t\tif ((rc = ag_table_add_i64(counts, &key, 1, &n)) < 0)\n"
	"\t\t\treturn rc;\n"
	"\t\tag_log(ag_stream_app(s), AG_LOG_INFO, \"count: %.*s seen %lld time%s\", "
	"(int)key.len,\n"
	"\t\t       (const char *)key.ptr, (long long)n, n == 1 ? \"\" : \"s\");\n"
	"\t}\n"
	"\treturn rc == AG_EOF ? 0 : rc;\n"
	"}\n"
	"\n"
	"static int\n"
	"setup(struct ag_app *app)\n"
	"{\n"
	"\tstruct ag_topic *events;\n"
	"\tstruct ag_agent *agent;\n"
	"\tint rc;\n"
	"\tif ((rc = ag_app_set_id(app, \"@NAME@\")) < 0 ||\n"
	"\t    (rc = ag_app_topic(app, \"events\", NULL, &events)) < 0 ||\n"
	"\t    (rc = ag_app_agent(app, \"count\", events, count, NULL, &agent)) < 0 ||\n"
	"\t    (rc = ag_app_table(app, \"counts\", events, NULL, &counts)) < 0)\n"
	"\t\treturn rc;\n"
	"\treturn 0;\n"
	"}\n"
	"\n"
	"AG_APP_MODULE(setup);\n";

static const char template_meson[] =
	"project('@NAME@', 'c',\n"
	"\tversion: '0.1.0',\n"
	"\tdefault_options: ['c_std=c11', 'warning_level=3'])\n"
	"\n"
	"# The installed library, through pkg-config (libagent.pc). For a prefix pkg-config does\n"
	"# not search, set PKG_CONFIG_PATH=PREFIX/LIBDIR/pkgconfig.\n"
	"libagent = dependency('libagent')\n"
	"\n"
	"# The app as a module that `faustc -A build/@NAME@.so` loads.\n"
	"shared_module('@NAME@', '@NAME@.c', name_prefix: '', dependencies: libagent)\n";

static const char template_readme[] =
	"# @NAME@\n"
	"\n"
	"A faustc app: agent `count` reads topic `events` and counts the events of each key in\n"
	"table `counts`. It needs libagent and the `faustc` command installed (`meson install`\n"
	"of faustc); when they are in a prefix pkg-config does not search, set\n"
	"`PKG_CONFIG_PATH=PREFIX/LIBDIR/pkgconfig` first.\n"
	"\n"
	"Build it, and run its worker on the embedded broker:\n"
	"\n"
	"```sh\n"
	"meson setup build && meson compile -C build\n"
	"faustc -A build/@NAME@.so worker\n"
	"```\n"
	"\n"
	"From another shell in this directory, send an event and read the table (the worker\n"
	"logs `count: k1 seen 1 time`; the table shows the count after its next commit, within\n"
	"3 s):\n"
	"\n"
	"```sh\n"
	"faustc -A build/@NAME@.so send events hello --key k1\n"
	"faustc -A build/@NAME@.so table counts\n"
	"```\n"
	"\n"
	"Run `man faustc` for the commands, or see faustc's docs/apps.md for the C API.\n";

static int
valid_name(const char *name)
{
	if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')))
		return 0;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
			return 0;
	return strlen(name) <= 100;
}

/* Writes template `text` with @NAME@ replaced to DIR/FILE. Returns 0 or -errno. */
static int
write_template(const char *dir, const char *file, const char *text, const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	FILE *f = fopen(path, "wx");
	if (!f) {
		int err = -errno;
		fprintf(stderr, "faustc new: cannot create %s: %s\n", path, strerror(errno));
		return err;
	}
	for (const char *p = text; *p;) {
		const char *at = strstr(p, "@NAME@");
		size_t len = at ? (size_t)(at - p) : strlen(p);
		fwrite(p, 1, len, f);
		if (!at)
			break;
		fputs(name, f);
		p = at + strlen("@NAME@");
	}
	if (fclose(f) != 0) {
		int err = -errno;
		fprintf(stderr, "faustc new: cannot write %s: %s\n", path, strerror(errno));
		return err;
	}
	return 0;
}

/* Creates DIR, or accepts an existing directory. Returns 0 or -errno (reported). */
static int
make_dir(const char *dir)
{
	if (mkdir(dir, 0777) == 0)
		return 0;
	if (errno != EEXIST) {
		int err = -errno;
		fprintf(stderr, "faustc new: cannot create %s: %s\n", dir, strerror(errno));
		return err;
	}
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "faustc new: %s exists and is not a directory\n", dir);
		return -EEXIST;
	}
	return 0;
}

int
faustc_new(int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		fputs(usage_new, stdout);
		return 0;
	}
	if (argc < 2 || argc > 3 || argv[1][0] == '-' || (argc == 3 && argv[2][0] == '-')) {
		fputs(usage_new, stderr);
		return 2;
	}
	const char *name = argv[1];
	const char *dir = argc == 3 ? argv[2] : name;
	if (!valid_name(name)) {
		fprintf(stderr,
			"faustc new: '%s' is not an app name: start with a letter, then use "
			"letters, digits, '_' or '-'\n",
			name);
		return 2;
	}
	if (make_dir(dir) < 0)
		return 1;
	char file[128];
	snprintf(file, sizeof(file), "%s.c", name);
	/* An existing project is never clobbered (and "wx" below checks again, atomically). */
	const char *files[] = {file, "meson.build", "README.md"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		if (access(path, F_OK) == 0) {
			fprintf(stderr, "faustc new: %s exists; choose another DIR\n", path);
			return 1;
		}
	}
	if (write_template(dir, file, template_c, name) < 0 ||
	    write_template(dir, "meson.build", template_meson, name) < 0 ||
	    write_template(dir, "README.md", template_readme, name) < 0)
		return 1;
	printf("created %s/%s, %s/meson.build and %s/README.md; build it with\n"
	       "  cd %s && meson setup build && meson compile -C build\n",
	       dir, file, dir, dir, dir);
	return 0;
}
