/*
 * faustc: loads an app module (-A NAME or -A PATH) and runs the command line on it.
 * A module is a shared object exporting `ag_module_entry` (see AG_APP_MODULE).
 * `faustc new` needs no app: it writes a new app project (new.c).
 *
 * FAUSTC_APPS_DIR is the last directory -A NAME searches: the build's examples dir for the
 * faustc in the build tree, $libdir/faustc/apps for the installed one (cli/installed/),
 * which knows nothing of the build tree.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <agent/agent.h>

#include "new.h"

static const char *
app_arg(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-A") == 0 || strcmp(argv[i], "--app") == 0) && i + 1 < argc)
			return argv[i + 1];
		if (strncmp(argv[i], "--app=", 6) == 0)
			return argv[i] + 6;
		if (strncmp(argv[i], "-A", 2) == 0 && argv[i][2])
			return argv[i] + 2;
		if (strcmp(argv[i], "--") == 0)
			break;
	}
	return NULL;
}

struct search {
	char tried[4096];
	size_t n;
};

static void *
try_open(struct search *s, const char *path, char *why, size_t whylen)
{
	s->n += (size_t)snprintf(s->tried + s->n, sizeof(s->tried) - s->n, "\n  %s", path);
	if (s->n >= sizeof(s->tried))
		s->n = sizeof(s->tried) - 1;
	if (access(path, F_OK) != 0)
		return NULL;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		snprintf(why, whylen, "%s", dlerror());
	return h;
}

static void *
find_in_dir(struct search *s, const char *dir, const char *name, char *why, size_t whylen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.so", dir, name);
	void *h = try_open(s, path, why, whylen);
	if (h || *why)
		return h;
	snprintf(path, sizeof(path), "%s/lib%s.so", dir, name);
	return try_open(s, path, why, whylen);
}

static void *
load_app(const char *name, char *why, size_t whylen, struct search *s)
{
	*why = 0;
	if (strchr(name, '/') || strstr(name, ".so"))
		return try_open(s, name, why, whylen);
	void *h = find_in_dir(s, ".", name, why, whylen);
	const char *env = getenv("FAUSTC_PATH");
	if (!h && !*why && env) {
		char *copy = strdup(env);
		char *save = NULL;
		for (char *dir = strtok_r(copy, ":", &save); dir && !h && !*why;
		     dir = strtok_r(NULL, ":", &save))
			h = find_in_dir(s, dir, name, why, whylen);
		free(copy);
	}
	if (!h && !*why)
		h = find_in_dir(s, FAUSTC_APPS_DIR, name, why, whylen);
	return h;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "new") == 0)
		return faustc_new(argc - 1, argv + 1);
	const char *name = app_arg(argc, argv);
	if (!name)
		return ag_app_main(argc, argv, NULL);
	struct search s = {.n = 0};
	char why[1024];
	void *h = load_app(name, why, sizeof(why), &s);
	if (!h) {
		if (*why)
			fprintf(stderr, "faustc: cannot load app %s: %s\n", name, why);
		else
			fprintf(stderr,
				"faustc: unknown app '%s'; searched:%s\n"
				"Build the app as a shared object (`faustc new` writes a project), "
				"put it in one "
				"of "
				"these places or in $FAUSTC_PATH, or pass its path to -A.\n",
				name, s.tried);
		return 2;
	}
	const struct ag_module *mod = dlsym(h, "ag_module_entry");
	if (!mod || mod->abi != AG_MODULE_ABI || !mod->setup) {
		fprintf(stderr,
			"faustc: %s is not a faustc app module (no ag_module_entry, or ABI %d "
			"where "
			"faustc expects %d); export one with AG_APP_MODULE(setup)\n",
			name, mod ? mod->abi : -1, AG_MODULE_ABI);
		dlclose(h);
		return 2;
	}
	int status = ag_app_main(argc, argv, mod->setup);
	dlclose(h);
	return status;
}
