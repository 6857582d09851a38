/* Unit tests of the LMDB table store (libagent/src/store.c). */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <agent/error.h>

#include "store.h"

/* tap.h's macros use GNU's `, ##__VA_ARGS__` (the tests build as gnu11); clang -Wpedantic
 * would flag every call without extra arguments. */
#ifdef __clang__
#endif
#include "tap.h"

static char tmpdir[64];

static int
remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (remove(path) < 0)
		printf("# could not remove %s: %s\n", path, strerror(errno));
	return 0;
}

/* Removes the test directory and everything in it. */
static void
cleanup(void)
{
	nftw(tmpdir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int
put(struct ag__store *s, const char *table, int32_t part, const char *key, const char *val)
{
	struct ag__store_op op = {.kind = AG__STORE_PUT,
				  .table = table,
				  .part = part,
				  .key = AG_STR(key),
				  .val = AG_STR(val)};
	return ag__store_write(s, &op, 1);
}

/* Returns the value of key as a static string, or NULL when the get fails. */
static const char *
get(struct ag__store *s, const char *table, int32_t part, const char *key)
{
	static char buf[256];
	struct ag_bytes v;
	if (ag__store_get(s, table, part, AG_STR(key), &v) != 0 || v.len >= sizeof(buf))
		return NULL;
	memcpy(buf, v.ptr, v.len);
	buf[v.len] = '\0';
	return buf;
}

struct collect {
	char seen[512];
	int calls;
	int stop_after;
};

static int
collect_fn(int32_t part, struct ag_bytes key, struct ag_bytes val, void *userdata)
{
	struct collect *c = userdata;
	size_t n = strlen(c->seen);
	snprintf(c->seen + n, sizeof(c->seen) - n, "%d:%.*s=%.*s ", (int)part, (int)key.len,
		 (const char *)key.ptr, (int)val.len, (const char *)val.ptr);
	c->calls++;
	return c->stop_after && c->calls >= c->stop_after ? 42 : 0;
}

static void
test_basics(struct ag__store *s)
{
	ok_int_eq(put(s, "t", 0, "a", "1"), 0, "put t[0] a");
	ok_str_eq(get(s, "t", 0, "a"), "1", "get t[0] a");
	ok_int_eq(put(s, "t", 0, "a", "22"), 0, "overwrite t[0] a");
	ok_str_eq(get(s, "t", 0, "a"), "22", "get sees the overwrite");
	struct ag_bytes v;
	ok_int_eq(ag__store_get(s, "t", 0, AG_STR("zz"), &v), -ENOENT, "missing key: -ENOENT");
	ok_int_eq(ag__store_get(s, "t", 1, AG_STR("a"), &v), -ENOENT, "partitions are isolated");
	ok_int_eq(ag__store_get(s, "u", 0, AG_STR("a"), &v), -ENOENT, "tables are isolated");
	ok_int_eq(ag__store_get(s, "t", -1, AG_STR("a"), &v), -ENOENT, "part < 0: -ENOENT");
	ok_int_eq(put(s, "t", 1, "a", "p1"), 0, "put t[1] a");
	ok_int_eq(put(s, "tt", 0, "a", "other"), 0, "put tt[0] a (table name a prefix)");
	ok_str_eq(get(s, "t", 0, "a"), "22", "t[0] a unchanged by t[1] and tt[0]");
	ok_str_eq(get(s, "t", 1, "a"), "p1", "t[1] a");
	ok_str_eq(get(s, "tt", 0, "a"), "other", "tt[0] a");

	/* The empty key and binary keys are keys like any other. */
	struct ag__store_op bin = {.kind = AG__STORE_PUT,
				   .table = "t",
				   .part = 2,
				   .key = {"\0\xff", 2},
				   .val = {"", 0}};
	ok_int_eq(ag__store_write(s, &bin, 1), 0, "put binary key, empty value");
	ok_int_eq(ag__store_get(s, "t", 2, bin.key, &v), 0, "get binary key");
	ok_int_eq(v.len, 0, "empty value comes back empty");
	ok_int_eq(put(s, "t", 2, "", "e"), 0, "put the empty key");
	ok_str_eq(get(s, "t", 2, ""), "e", "get the empty key");

	struct ag__store_op del = {
		.kind = AG__STORE_DEL, .table = "t", .part = 0, .key = AG_STR("a")};
	ok_int_eq(ag__store_write(s, &del, 1), 0, "del t[0] a");
	ok_int_eq(ag__store_get(s, "t", 0, AG_STR("a"), &v), -ENOENT, "deleted key is gone");
	ok_int_eq(ag__store_write(s, &del, 1), 0, "deleting a missing key is not an error");
	ok_str_eq(get(s, "t", 1, "a"), "p1", "del left t[1] alone");

	/* A batch is all or nothing: a bad op keeps the good ones out. */
	char longkey[600];
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	struct ag__store_op batch[2] = {
		{.kind = AG__STORE_PUT,
		 .table = "t",
		 .part = 3,
		 .key = AG_STR("x"),
		 .val = AG_STR("1")},
		{.kind = AG__STORE_PUT,
		 .table = "t",
		 .part = 3,
		 .key = AG_STR(longkey),
		 .val = AG_STR("1")},
	};
	ok_int_eq(ag__store_write(s, batch, 2), -EINVAL, "a key too long fails the batch");
	ok_int_eq(ag__store_get(s, "t", 3, AG_STR("x"), &v), -ENOENT, "nothing of it was written");
	ok_int_eq(ag__store_get(s, "t", 3, AG_STR(longkey), &v), -ENOENT,
		  "get of a too long key: -ENOENT");
	batch[1].part = -1;
	batch[1].key = AG_STR("y");
	ok_int_eq(ag__store_write(s, batch, 2), -EINVAL, "part < 0 in a write: -EINVAL");
	ok_int_eq(ag__store_write(s, NULL, 0), 0, "empty batch");
}

static void
test_offsets(struct ag__store *s)
{
	int64_t off = 0;
	ok_int_eq(ag__store_get_offset(s, "t", 0, &off), -ENOENT, "no offset stored: -ENOENT");
	struct ag__store_op ops[3] = {
		{.kind = AG__STORE_OFFSET, .table = "t", .part = 0, .offset = 1234},
		{.kind = AG__STORE_OFFSET, .table = "t", .part = 1, .offset = INT64_MAX},
		{.kind = AG__STORE_OFFSET, .table = "u", .part = 0, .offset = -1},
	};
	ok_int_eq(ag__store_write(s, ops, 3), 0, "write three offsets");
	ok_int_eq(ag__store_get_offset(s, "t", 0, &off), 0, "get offset t[0]");
	ok_int_eq(off, 1234, "offset t[0]");
	ok_int_eq(ag__store_get_offset(s, "t", 1, &off), 0, "get offset t[1]");
	ok_int_eq(off, INT64_MAX, "offset t[1]");
	ok_int_eq(ag__store_get_offset(s, "u", 0, &off), 0, "get offset u[0]");
	ok_int_eq(off, -1, "offset u[0]");
	ok_int_eq(ag__store_get_offset(s, "t", 2, &off), -ENOENT, "offset t[2] unset");
	ok_int_eq(ag__store_get_offset(s, "tt", 0, &off), -ENOENT, "offset tt[0] unset");
	ops[0].offset = 99;
	ok_int_eq(ag__store_write(s, ops, 1), 0, "overwrite offset t[0]");
	ok_int_eq(ag__store_get_offset(s, "t", 0, &off), 0, "get offset t[0] again");
	ok_int_eq(off, 99, "offset t[0] overwritten");
	ok_int_eq(ag__store_count(s, "t", 0), 0, "offsets are not keys");
}

static void
test_iter(struct ag__store *s)
{
	struct ag__store_op ops[] = {
		{.kind = AG__STORE_PUT,
		 .table = "it",
		 .part = 1,
		 .key = AG_STR("b"),
		 .val = AG_STR("2")},
		{.kind = AG__STORE_PUT,
		 .table = "it",
		 .part = 1,
		 .key = AG_STR("a"),
		 .val = AG_STR("1")},
		{.kind = AG__STORE_PUT,
		 .table = "it",
		 .part = 1,
		 .key = AG_STR("c"),
		 .val = AG_STR("3")},
		{.kind = AG__STORE_PUT,
		 .table = "it",
		 .part = 0,
		 .key = AG_STR("z"),
		 .val = AG_STR("0")},
		{.kind = AG__STORE_PUT,
		 .table = "it",
		 .part = 300,
		 .key = AG_STR("a"),
		 .val = AG_STR("x")},
		{.kind = AG__STORE_PUT,
		 .table = "itx",
		 .part = 1,
		 .key = AG_STR("a"),
		 .val = AG_STR("n")},
		{.kind = AG__STORE_OFFSET, .table = "it", .part = 1, .offset = 7},
		{.kind = AG__STORE_OFFSET, .table = "it", .part = 0, .offset = 8},
	};
	ok_int_eq(ag__store_write(s, ops, sizeof(ops) / sizeof(ops[0])), 0, "write iter fixture");

	struct collect c = {0};
	ok_int_eq(ag__store_iter(s, "it", 1, collect_fn, &c), 0, "iter it[1]");
	ok_str_eq(c.seen, "1:a=1 1:b=2 1:c=3 ", "it[1] in key order, only it[1]");

	memset(&c, 0, sizeof(c));
	ok_int_eq(ag__store_iter(s, "it", -1, collect_fn, &c), 0, "iter every partition of it");
	ok_str_eq(c.seen, "0:z=0 1:a=1 1:b=2 1:c=3 300:a=x ", "partition order, then key order");

	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	ok_int_eq(ag__store_iter(s, "it", -1, collect_fn, &c), 42, "early stop returns fn's value");
	ok_int_eq(c.calls, 2, "no call after the stop");

	memset(&c, 0, sizeof(c));
	ok_int_eq(ag__store_iter(s, "none", -1, collect_fn, &c), 0, "iter of an empty table");
	ok_int_eq(c.calls, 0, "no calls for an empty table");

	ok_int_eq(ag__store_count(s, "it", 1), 3, "count it[1]");
	ok_int_eq(ag__store_count(s, "it", 0), 1, "count it[0]");
	ok_int_eq(ag__store_count(s, "it", -1), 5, "count it, every partition");
	ok_int_eq(ag__store_count(s, "itx", -1), 1, "count itx");
	ok_int_eq(ag__store_count(s, "none", -1), 0, "count of an empty table");

	ok_int_eq(ag__store_drop(s, "it", 1), 0, "drop it[1]");
	ok_int_eq(ag__store_count(s, "it", 1), 0, "it[1] is empty");
	ok_int_eq(ag__store_count(s, "it", -1), 2, "it's other partitions remain");
	ok_int_eq(ag__store_count(s, "itx", 1), 1, "itx[1] remains");
	int64_t off;
	ok_int_eq(ag__store_get_offset(s, "it", 1, &off), -ENOENT, "drop removed it[1]'s offset");
	ok_int_eq(ag__store_get_offset(s, "it", 0, &off), 0, "it[0]'s offset remains");
	ok_int_eq(off, 8, "it[0]'s offset value");
	ok_int_eq(ag__store_drop(s, "it", 1), 0, "dropping an empty partition");
	ok_int_eq(ag__store_drop(s, "it", -1), 0, "drop every partition of it");
	ok_int_eq(ag__store_count(s, "it", -1), 0, "it is empty");
	ok_int_eq(ag__store_get_offset(s, "it", 0, &off), -ENOENT, "and has no offsets");
	ok_int_eq(ag__store_count(s, "itx", -1), 1, "itx survives dropping it");
}

/* Child side of the read-only test: exit status 0 when everything matched. */
static int
reader_child(const char *dir)
{
	struct ag__store *r = NULL;
	char err[256];
	if (ag__store_open(&r, dir, AG__STORE_RDONLY, err, sizeof(err)) != 0) {
		printf("# child open: %s\n", err);
		return 1;
	}
	int bad = 0;
	const char *v = get(r, "ro", 5, "k");
	bad |= !v || strcmp(v, "committed") != 0;
	int64_t off = 0;
	bad |= ag__store_get_offset(r, "ro", 5, &off) != 0 || off != 77;
	bad |= ag__store_count(r, "ro", -1) != 1;
	bad |= (put(r, "ro", 5, "k", "nope") != AG_ESTORE) << 1;
	ag__store_close(r);
	return bad;
}

/*
 * Restore batches commit deferred (MDB_NOMETASYNC): visible at once, data and offset
 * together, kept by a close without a sync (a process crash loses nothing), and a failed
 * deferred write leaves nothing and the next write fully synced.
 */
static void
test_deferred(struct ag__store *s)
{
	struct ag__store_op ops[2] = {
		{.kind = AG__STORE_PUT,
		 .table = "df",
		 .part = 3,
		 .key = AG_STR("k"),
		 .val = AG_STR("v1")},
		{.kind = AG__STORE_OFFSET, .table = "df", .part = 3, .offset = 41},
	};
	ok_int_eq(ag__store_write_deferred(s, ops, 2), 0, "deferred write commits");
	ok_str_eq(get(s, "df", 3, "k"), "v1", "a deferred write is visible at once");
	int64_t off = 0;
	ok_int_eq(ag__store_get_offset(s, "df", 3, &off), 0, "its offset is stored");
	ok_int_eq(off, 41, "with the data, in the same transaction");
	struct ag__store_op bad[2] = {ops[0], ops[1]};
	bad[0].val = AG_STR("v2");
	bad[1].part = -1;
	ok_int_eq(ag__store_write_deferred(s, bad, 2), -EINVAL, "a bad deferred write fails");
	ok_str_eq(get(s, "df", 3, "k"), "v1", "and leaves nothing");
	ops[0].val = AG_STR("v3");
	ops[1].offset = 42;
	ok_int_eq(ag__store_write(s, ops, 2), 0, "a synced write after it");
	ok_str_eq(get(s, "df", 3, "k"), "v3", "sees its own data");
	ops[0].val = AG_STR("v4");
	ops[1].offset = 43;
	ok_int_eq(ag__store_write_deferred(s, ops, 2), 0, "another deferred write");
	ok_int_eq(ag__store_sync(s), 0, "ag__store_sync makes it durable");
	ops[0].val = AG_STR("v5");
	ops[1].offset = 44;
	ok_int_eq(ag__store_write_deferred(s, ops, 2), 0, "a last deferred write, not synced");
}

static void
test_readonly(struct ag__store *s, const char *dir)
{
	struct ag__store_op ops[2] = {
		{.kind = AG__STORE_PUT,
		 .table = "ro",
		 .part = 5,
		 .key = AG_STR("k"),
		 .val = AG_STR("committed")},
		{.kind = AG__STORE_OFFSET, .table = "ro", .part = 5, .offset = 77},
	};
	ok_int_eq(ag__store_write(s, ops, 2), 0, "writer commits");
	/* LMDB forbids opening one environment twice in a process: read from a child. */
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		_exit(reader_child(dir));
	int status = -1;
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "read-only open in another process sees committed data while the writer is open");
	ok_str_eq(get(s, "ro", 5, "k"), "committed", "writer still works");
}

static void
test_growth(const char *dir)
{
	struct ag__store *s = NULL;
	char err[256];
	ok_int_eq(ag__store_open(&s, dir, 0, err, sizeof(err)), 0, "open a fresh store for growth");
	if (!s)
		return;
	enum { VLEN = 4000, PER_BATCH = 12000, BATCHES = 5 };
	char *val = malloc(VLEN);
	struct ag__store_op *ops = calloc(PER_BATCH, sizeof(*ops));
	char(*keys)[16] = calloc(PER_BATCH, 16);
	int rc = 0;
	for (int b = 0; b < BATCHES && rc == 0; b++) {
		for (int i = 0; i < PER_BATCH; i++) {
			int n = b * PER_BATCH + i;
			snprintf(keys[i], 16, "k%09d", n);
			ops[i] = (struct ag__store_op){.kind = AG__STORE_PUT,
						       .table = "big",
						       .part = n % 4,
						       .key = {keys[i], strlen(keys[i])},
						       .val = {val, VLEN}};
		}
		memset(val, 'a' + b, VLEN); /* every op of a batch shares the buffer */
		rc = ag__store_write(s, ops, PER_BATCH);
	}
	ok_int_eq(rc, 0, "%d batches of %d MB each: the map grew as needed", BATCHES,
		  VLEN * PER_BATCH / 1000000);
	ok_int_eq(ag__store_count(s, "big", -1), (int64_t)BATCHES * PER_BATCH,
		  "every key is there");
	int bad = 0;
	for (int n = 0; n < BATCHES * PER_BATCH; n += 997) {
		char k[16];
		struct ag_bytes v;
		snprintf(k, sizeof(k), "k%09d", n);
		if (ag__store_get(s, "big", n % 4, AG_STR(k), &v) != 0 || v.len != VLEN ||
		    ((const char *)v.ptr)[0] != 'a' + n / PER_BATCH ||
		    ((const char *)v.ptr)[VLEN - 1] != 'a' + n / PER_BATCH)
			bad++;
	}
	ok_int_eq(bad, 0, "sampled values are right");

	/* One batch larger than the map was at its start: retried whole after growing. */
	ag__store_close(s);
	s = NULL;
	ok_int_eq(ag__store_open(&s, dir, 0, err, sizeof(err)), 0, "reopen the big store");
	free(val);
	enum { HUGE_LEN = 150 << 20 };
	val = malloc(HUGE_LEN);
	memset(val, 'h', HUGE_LEN);
	struct ag__store_op huge[2] = {
		{.kind = AG__STORE_PUT,
		 .table = "huge",
		 .part = 0,
		 .key = AG_STR("h"),
		 .val = {val, 1}},
		{.kind = AG__STORE_PUT,
		 .table = "huge",
		 .part = 0,
		 .key = AG_STR("h"),
		 .val = {val, HUGE_LEN}},
	};
	ok_int_eq(ag__store_write(s, huge, 2), 0, "one 150 MiB batch");
	struct ag_bytes v = {0};
	ok_int_eq(ag__store_get(s, "huge", 0, AG_STR("h"), &v), 0, "get the 150 MiB value");
	ok(v.len == HUGE_LEN && memcmp(v.ptr, val, HUGE_LEN) == 0, "150 MiB value intact");
	ok_int_eq(ag__store_drop(s, "big", -1), 0, "drop the big table");
	ok_int_eq(ag__store_count(s, "big", -1), 0, "big is empty");
	ag__store_close(s);
	free(val);
	free(ops);
	free(keys);
}

static void
test_bad_dirs(void)
{
	struct ag__store *s = (struct ag__store *)&s; /* must stay untouched */
	struct ag__store *keep = s;
	char err[512], path[128];
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	FILE *f = fopen(path, "w");
	if (f)
		fclose(f);
	snprintf(path, sizeof(path), "%s/file/tables", tmpdir);
	ok_int_eq(ag__store_open(&s, path, 0, err, sizeof(err)), AG_ESTORE,
		  "a directory under a file fails");
	ok(s == keep, "*out untouched on failure");
	printf("# %s\n", err);
	ok(strstr(err, "cannot open table store at ") && strstr(err, path) &&
		   strstr(err, "Not a directory") && strstr(err, "--datadir"),
	   "the message says what happened and what to do");

	snprintf(path, sizeof(path), "%s/absent", tmpdir);
	ok_int_eq(ag__store_open(&s, path, AG__STORE_RDONLY, err, sizeof(err)), AG_ESTORE,
		  "read-only open of a missing store fails");
	printf("# %s\n", err);
	ok(strstr(err, "No such file or directory") && strstr(err, "run a worker"),
	   "and says to run a worker");
	ok(access(path, F_OK) != 0, "read-only open created nothing");

	snprintf(path, sizeof(path), "%s/notlmdb", tmpdir);
	char file[512];
	snprintf(file, sizeof(file), "mkdir -p %s && head -c 65536 /dev/urandom > %s/data.mdb",
		 path, path);
	if (system(file) == 0) {
		ok_int_eq(ag__store_open(&s, path, 0, err, sizeof(err)), AG_ESTORE,
			  "a directory with a foreign data.mdb fails");
		printf("# %s\n", err);
	}
	/* Nothing to observe but surviving: close(NULL) must not touch memory. */
	ag__store_close(NULL);
	ok(1, "ag__store_close(NULL) is a no-op (surviving is the check)");
}

/*
 * Random batches against a model: puts (small values, and some larger than a page), deletes
 * of present and missing keys and offsets, over two tables of three partitions, in batches
 * in key order (as a restore writes them) and in random order (as a commit cycle does),
 * enough keys for leaf splits. After each batch every partition is read back whole.
 */
#define M_KEYS 3000
#define M_TABLES 2
#define M_PARTS 3

static struct {
	uint32_t ver[M_TABLES][M_PARTS][M_KEYS]; /* 0: absent; else the value's version */
	int64_t offset[M_TABLES][M_PARTS];
} model;
static const char *const m_table[M_TABLES] = {"model_a", "mb"};

/* The value of key k at version v: its length and bytes follow from both. */
static size_t
m_value(char *buf, int k, uint32_t v)
{
	size_t len = v % 17 == 0 ? 4000 + v % 3000 : 1 + (k * 7 + v) % 90;
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)('a' + (k + v + i) % 26);
	return len;
}

struct m_check {
	int t, p, next, bad;
};

static int
m_check_fn(int32_t part, struct ag_bytes key, struct ag_bytes val, void *userdata)
{
	struct m_check *c = userdata;
	static char want[8000];
	int k = -1;
	if (part != c->p || key.len != 6 || sscanf((const char *)key.ptr, "%6d", &k) != 1)
		return c->bad++, 0;
	while (c->next < k && !model.ver[c->t][c->p][c->next])
		c->next++;
	if (c->next != k || !model.ver[c->t][c->p][k])
		return c->bad++, 0;
	size_t n = m_value(want, k, model.ver[c->t][c->p][k]);
	if (val.len != n || memcmp(val.ptr, want, n) != 0)
		c->bad++;
	c->next = k + 1;
	return 0;
}

static void
test_model(struct ag__store *s)
{
	enum { BATCH = 1500 };
	static struct ag__store_op ops[BATCH];
	static char keys[BATCH][12];
	static char *vals[BATCH];
	int failures = 0, splits_seen = 0;
	for (int i = 0; i < BATCH && !failures; i++)
		failures += !(vals[i] = malloc(8000));
	if (failures)
		ok(0, "model: out of memory for the values");
	uint32_t version = 1;
	for (int round = 0; round < 40 && failures == 0; round++) {
		int sorted = round % 2 == 0;
		int n = 0;
		/* Sorted: a run of rising keys per (table, partition); else anywhere. */
		int t = (int)tap_rand(M_TABLES), p = (int)tap_rand(M_PARTS);
		int k = (int)tap_rand(50);
		while (n < BATCH) {
			if (sorted) {
				k += 1 + (int)tap_rand(4);
				if (k >= M_KEYS) {
					t = (int)tap_rand(M_TABLES);
					p = (int)tap_rand(M_PARTS);
					k = (int)tap_rand(50);
				}
			} else {
				t = (int)tap_rand(M_TABLES);
				p = (int)tap_rand(M_PARTS);
				k = (int)tap_rand(M_KEYS);
			}
			struct ag__store_op *op = &ops[n];
			uint32_t r = tap_rand(20);
			op->table = m_table[t];
			op->part = p;
			if (r == 0) {
				op->kind = AG__STORE_OFFSET;
				op->offset = model.offset[t][p] = (int64_t)version++;
			} else {
				snprintf(keys[n], sizeof(keys[n]), "%06d", k);
				op->key = AG_STR(keys[n]);
				if (r < 5) {
					op->kind = AG__STORE_DEL;
					model.ver[t][p][k] = 0;
				} else {
					op->kind = AG__STORE_PUT;
					model.ver[t][p][k] = version;
					op->val = (struct ag_bytes){vals[n],
								    m_value(vals[n], k, version)};
					version++;
				}
			}
			n++;
		}
		int rc = round % 4 == 1 ? ag__store_write_deferred(s, ops, (size_t)n)
					: ag__store_write(s, ops, (size_t)n);
		if (rc != 0) {
			failures++;
			ok(0, "model round %d: write failed: %s", round, ag_strerror(rc));
			break;
		}
		for (t = 0; t < M_TABLES; t++) {
			for (p = 0; p < M_PARTS; p++) {
				struct m_check c = {t, p, 0, 0};
				int64_t want = 0, off = -1;
				for (k = 0; k < M_KEYS; k++)
					want += model.ver[t][p][k] != 0;
				splits_seen += want > 200;
				ag__store_iter(s, m_table[t], p, m_check_fn, &c);
				int64_t got = ag__store_count(s, m_table[t], p);
				int orc = ag__store_get_offset(s, m_table[t], p, &off);
				if (c.bad || got != want ||
				    (model.offset[t][p] ? orc != 0 || off != model.offset[t][p]
							: orc != -ENOENT)) {
					failures++;
					ok(0,
					   "model round %d (%s), %s[%d]: %d wrong keys, %lld keys "
					   "(want %lld), offset %lld (want %lld)",
					   round, sorted ? "sorted" : "random", m_table[t], p,
					   c.bad, (long long)got, (long long)want, (long long)off,
					   (long long)model.offset[t][p]);
				}
			}
		}
	}
	ok(failures == 0,
	   "40 random batches of %d ops (sorted and not, puts, deletes, "
	   "offsets, values over a page) equal the model after each",
	   BATCH);
	ok(splits_seen > 0, "the partitions grew past a leaf page");
	for (int i = 0; i < BATCH; i++)
		free(vals[i]);
}

int
main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/faustc-test-store-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/data/tables", tmpdir);
	struct ag__store *s = NULL;
	char err[256];
	ok_int_eq(ag__store_open(&s, dir, 0, err, sizeof(err)), 0, "open creates %s", dir);
	if (s) {
		test_basics(s);
		test_offsets(s);
		test_iter(s);
		test_readonly(s, dir);
		test_deferred(s);
		test_model(s);
		ag__store_close(s);
		s = NULL;
		ok_int_eq(ag__store_open(&s, dir, 0, err, sizeof(err)), 0, "reopen");
		ok_str_eq(get(s, "t", 1, "a"), "p1", "reopen keeps data");
		int64_t off = 0;
		ok_int_eq(ag__store_get_offset(s, "t", 0, &off), 0, "reopen keeps offsets");
		ok_int_eq(off, 99, "offset after reopen");
		ok_str_eq(get(s, "df", 3, "k"), "v5",
			  "reopen keeps the deferred write a close without a sync left");
		ok_int_eq(ag__store_get_offset(s, "df", 3, &off), 0, "and its offset");
		ok_int_eq(off, 44, "the deferred write's offset after reopen");
		ag__store_close(s);
	}
	char big[128];
	snprintf(big, sizeof(big), "%s/big", tmpdir);
	test_growth(big);
	test_bad_dirs();
	cleanup();
	return tap_done();
}
