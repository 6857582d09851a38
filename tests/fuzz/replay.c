/*
 * Runs a fuzz target without libFuzzer: feeds each file named on the command line, or each
 * regular file of a directory named there, to LLVMFuzzerTestOneInput once, in a heap copy
 * of exactly its size so ASan sees any read past the end. Prints TAP, one line per input;
 * a target that finds a broken invariant aborts, which fails the test. Exit status 1 when
 * an input cannot be read or nothing was given.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int n_inputs, n_failed;

static void
run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	n_inputs++;
	if (!f)
		goto fail;
	for (;;) {
		if (len == cap) {
			cap = cap ? 2 * cap : 4096;
			uint8_t *p = realloc(buf, cap);
			if (!p)
				goto fail;
			buf = p;
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f))
		goto fail;
	fclose(f);
	uint8_t *exact = malloc(len ? len : 1);
	if (!exact) {
		f = NULL;
		goto fail;
	}
	if (len)
		memcpy(exact, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	printf("ok %d - %s (%zu bytes)\n", n_inputs, path, len);
	return;
fail:
	printf("not ok %d - %s: %s\n", n_inputs, path, strerror(errno));
	n_failed++;
	if (f)
		fclose(f);
	free(buf);
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of dir, in name order so runs are repeatable. */
static void
run_dir(const char *dir)
{
	DIR *d = opendir(dir);
	char **names = NULL;
	size_t n = 0;
	struct dirent *e;
	if (!d) {
		printf("not ok %d - %s: %s\n", ++n_inputs, dir, strerror(errno));
		n_failed++;
		return;
	}
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char **p = realloc(names, (n + 1) * sizeof(*names));
		if (!p)
			break;
		names = p;
		size_t len = strlen(dir) + strlen(e->d_name) + 2;
		char *path = malloc(len);
		if (!path)
			break;
		snprintf(path, len, "%s/%s", dir, e->d_name);
		names[n++] = path;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
			run_file(names[i]);
		free(names[i]);
	}
	free(names);
}

int
main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
			run_dir(argv[i]);
		else
			run_file(argv[i]);
	}
	if (n_inputs == 0) {
		printf("not ok 1 - no inputs given (usage: %s FILE|DIR...)\n", argv[0]);
		n_inputs = n_failed = 1;
	}
	printf("1..%d\n", n_inputs);
	return n_failed ? 1 : 0;
}
