/*
 * The table commands of faustc: `tables` (tables, partitions, key counts, changelog
 * positions), `table NAME` (keys and values, windows with their bounds) and `reset` (delete
 * the local table state). They read the data dir's LMDB through a read-only environment:
 * LMDB readers never block the worker's writer and see one consistent snapshot, so they are
 * safe while a worker runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <msgpack.h>

#include "cli_tables.h"
#include "table_rt.h"

/* Opens DATADIR/tables read-only. Returns the store, or NULL with a message on stderr. */
static struct ag__store *
open_tables(const struct ag_app *app, int quiet_missing)
{
	char path[4096], err[1024];
	snprintf(path, sizeof(path), "%s/tables", ag__app_datadir(app));
	struct stat st;
	if (stat(path, &st) < 0) {
		if (!quiet_missing)
			fprintf(stderr,
				"faustc: no table store at %s; run a worker with this --datadir "
				"first\n",
				path);
		return NULL;
	}
	struct ag__store *s = NULL;
	if (ag__store_open(&s, path, AG__STORE_RDONLY, err, sizeof(err)) < 0) {
		fprintf(stderr, "faustc: %s\n", err);
		return NULL;
	}
	return s;
}

static void
window_desc(const struct ag_table *t, char *buf, size_t cap)
{
	if (!t->win.on)
		snprintf(buf, cap, "plain%s", t->opts.ttl_s > 0 ? " ttl" : "");
	else if (t->win.step == t->win.size)
		snprintf(buf, cap, "tumbling %gs", (double)t->win.size / 1000.0);
	else
		snprintf(buf, cap, "hopping %gs/%gs", (double)t->win.size / 1000.0,
			 (double)t->win.step / 1000.0);
}

/* The window state of (t, p): 0 and the two times, or -ENOENT. */
static int
window_state(struct ag__store *s, const struct ag_table *t, int32_t p, int64_t *stream_time,
	     int64_t *closed_to)
{
	struct ag_bytes raw;
	struct ag__tval tv;
	if (!t->win.on ||
	    ag__store_get(s, t->name, p,
			  (struct ag_bytes){AG__WINDOW_META_KEY, AG__WINDOW_META_KEYLEN},
			  &raw) < 0 ||
	    ag__tval_parse(raw, &tv) < 0 || !tv.meta ||
	    ag__window_meta_decode(tv.payload, stream_time, closed_to, NULL, NULL) < 0)
		return -ENOENT;
	return 0;
}

int
ag__cmd_tables(const struct ag_app *app)
{
	struct ag__store *s = open_tables(app, 1);
	printf("%-24s %-18s %9s %10s %16s\n", "TABLE", "KIND", "PARTITION", "KEYS",
	       "CHANGELOG-OFFSET");
	for (size_t i = 0; i < app->ntables; i++) {
		const struct ag_table *t = app->tables[i];
		char kind[64];
		window_desc(t, kind, sizeof(kind));
		for (int32_t p = 0; p < t->changelog->partitions; p++) {
			int64_t keys = s ? ag__store_count(s, t->name, p) : 0, off = -1, st, closed;
			if (s && window_state(s, t, p, &st, &closed) == 0)
				keys--;
			if (s)
				ag__store_get_offset(s, t->name, p, &off);
			char offs[32] = "-";
			if (off >= 0)
				snprintf(offs, sizeof(offs), "%lld", (long long)off);
			printf("%-24s %-18s %9d %10lld %16s\n", t->name, kind, (int)p,
			       (long long)(keys < 0 ? 0 : keys), offs);
		}
	}
	if (!s)
		printf("# no table store at %s/tables yet\n", ag__app_datadir(app));
	ag__store_close(s);
	return 0;
}

/* ---- dumping one table ---- */

static json_t *
mp_to_json(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return json_integer(o->via.u64 > INT64_MAX ? INT64_MAX : (json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer(o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return json_real(o->via.f64);
	case MSGPACK_OBJECT_STR:
		return json_stringn_nocheck(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return json_stringn_nocheck(o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_ARRAY: {
		json_t *a = json_array();
		for (uint32_t i = 0; a && i < o->via.array.size; i++)
			json_array_append_new(a, mp_to_json(&o->via.array.ptr[i]));
		return a;
	}
	case MSGPACK_OBJECT_MAP: {
		json_t *m = json_object();
		for (uint32_t i = 0; m && i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			char key[256];
			if (kv->key.type == MSGPACK_OBJECT_STR)
				snprintf(key, sizeof(key), "%.*s", (int)kv->key.via.str.size,
					 kv->key.via.str.ptr);
			else
				snprintf(key, sizeof(key), "#%u", i);
			json_object_set_new(m, key, mp_to_json(&kv->val));
		}
		return m;
	}
	default:
		return json_null();
	}
}

/* A payload as JSON text (caller frees), or NULL when it is not msgpack. */
static char *
payload_json(struct ag_bytes payload)
{
	struct ag__val v;
	char buf[512];
	if (ag__val_decode(payload, &v) == 0 && ag__val_to_json(&v, buf, sizeof(buf)) >= 0)
		return strdup(buf);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	size_t off = 0;
	char *out = NULL;
	if (msgpack_unpack_next(&u, payload.ptr, payload.len, &off) == MSGPACK_UNPACK_SUCCESS &&
	    off == payload.len) {
		json_t *j = mp_to_json(&u.data);
		out = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		json_decref(j);
	}
	msgpack_unpacked_destroy(&u);
	return out;
}

char *
ag__table_key_json(struct ag_bytes key)
{
	struct ag__val v = {.type = AG__VAL_BYTES, .bytes = key};
	size_t cap = key.len * 6 + 3;
	char *buf = malloc(cap);
	if (buf && ag__val_to_json(&v, buf, cap) < 0)
		buf[0] = '\0';
	return buf;
}

/* A key for the text listing: as it is when it is plain text, else as a JSON string. */
static void
print_key(struct ag_bytes key)
{
	const unsigned char *p = key.ptr;
	int plain = key.len > 0;
	for (size_t i = 0; i < key.len && plain; i++)
		plain = p[i] > ' ' && p[i] < 0x7f && p[i] != '"';
	if (plain) {
		printf("%-24.*s", (int)key.len, (const char *)key.ptr);
		return;
	}
	char *k = ag__table_key_json(key);
	printf("%-24s", k ? k : "?");
	free(k);
}

struct dump {
	const struct ag_table *t;
	const char *key; /* --key, or NULL */
	size_t keylen;
	int json;
	json_t *rows;
	uint64_t n, bad;
};

json_t *
ag__table_row(const struct ag_table *t, int32_t part, struct ag_bytes skey, struct ag_bytes val)
{
	struct ag_bytes key = skey;
	int64_t start = 0;
	struct ag__tval tv;
	char *value = NULL;
	if ((t->win.on && ag__window_key_split(skey, &start, &key) < 0) ||
	    ag__tval_parse(val, &tv) < 0 || tv.meta || !(value = payload_json(tv.payload)))
		return NULL;
	json_t *row = json_object();
	char *k = ag__table_key_json(key);
	json_object_set_new(row, "partition", json_integer(part));
	json_object_set_new(row, "key", k ? json_loads(k, JSON_DECODE_ANY, NULL) : json_null());
	if (t->win.on)
		json_object_set_new(row, "window",
				    json_pack("{s:I,s:I}", "start", (json_int_t)start, "end",
					      (json_int_t)(start + t->win.size)));
	json_object_set_new(row, "value", json_loads(value, JSON_DECODE_ANY, NULL));
	json_object_set_new(row, "offset", tv.offset >= 0 ? json_integer(tv.offset) : json_null());
	if (tv.mtime >= 0)
		json_object_set_new(row, "written_ms", json_integer(tv.mtime));
	free(k);
	free(value);
	return row;
}

static int
dump_one(int32_t part, struct ag_bytes skey, struct ag_bytes val, void *userdata)
{
	struct dump *d = userdata;
	struct ag_bytes key = skey;
	int64_t start = 0;
	if (d->t->win.on && ag__window_key_split(skey, &start, &key) < 0)
		return 0; /* the window state */
	if (d->key && (d->keylen != key.len || memcmp(d->key, key.ptr, key.len) != 0))
		return 0;
	struct ag__tval tv;
	char *value = NULL;
	if (ag__tval_parse(val, &tv) < 0 || tv.meta || !(value = payload_json(tv.payload))) {
		d->bad++;
		return 0;
	}
	d->n++;
	if (d->json) {
		json_t *row = ag__table_row(d->t, part, skey, val);
		if (row)
			json_array_append_new(d->rows, row);
	} else {
		printf("%9d ", (int)part);
		print_key(key);
		if (d->t->win.on)
			printf(" %15lld %15lld", (long long)start,
			       (long long)(start + d->t->win.size));
		char off[32] = "-";
		if (tv.offset >= 0)
			snprintf(off, sizeof(off), "%lld", (long long)tv.offset);
		printf(" %12s %s\n", off, value);
	}
	free(value);
	return 0;
}

int
ag__cmd_table(const struct ag_app *app, const char *name, const char *key, int json)
{
	const struct ag_table *t = NULL;
	for (size_t i = 0; i < app->ntables && !t; i++)
		if (strcmp(app->tables[i]->name, name) == 0)
			t = app->tables[i];
	if (!t) {
		fprintf(stderr, "faustc: the app has no table '%s'; `faustc tables` lists them\n",
			name);
		return 2;
	}
	struct ag__store *s = open_tables(app, 0);
	if (!s)
		return 1;
	struct dump d = {.t = t,
			 .key = key,
			 .keylen = key ? strlen(key) : 0,
			 .json = json,
			 .rows = json ? json_array() : NULL};
	if (!json)
		printf("%9s %-24s%s %12s %s\n", "PARTITION", "KEY",
		       t->win.on ? "    WINDOW-START      WINDOW-END" : "", "OFFSET", "VALUE");
	int rc = 0;
	for (int32_t p = 0; p < t->changelog->partitions && rc == 0; p++)
		rc = ag__store_iter(s, t->name, p, dump_one, &d);
	if (json && rc == 0) {
		json_t *doc = json_pack("{s:s,s:o}", "table", t->name, "rows", d.rows);
		d.rows = NULL;
		if (t->win.on) {
			json_t *parts = json_array();
			for (int32_t p = 0; p < t->changelog->partitions; p++) {
				int64_t st, closed;
				if (window_state(s, t, p, &st, &closed) == 0)
					json_array_append_new(
						parts,
						json_pack("{s:i,s:I,s:I}", "partition", (int)p,
							  "stream_time", (json_int_t)st,
							  "closed_to", (json_int_t)closed));
			}
			json_object_set_new(doc, "windows", parts);
		}
		char *text = json_dumps(doc, JSON_INDENT(2));
		printf("%s\n", text ? text : "{}");
		free(text);
		json_decref(doc);
	} else if (rc == 0 && t->win.on) {
		for (int32_t p = 0; p < t->changelog->partitions; p++) {
			int64_t st, closed;
			if (window_state(s, t, p, &st, &closed) == 0)
				printf("# partition %d: stream time %lld, windows closed up to the "
				       "one starting at %lld\n",
				       (int)p, (long long)st, (long long)closed);
		}
	}
	json_decref(d.rows);
	ag__store_close(s);
	if (d.bad)
		fprintf(stderr,
			"faustc: %llu values of table %s are in a format this version does "
			"not read\n",
			(unsigned long long)d.bad, t->name);
	if (rc < 0) {
		fprintf(stderr, "faustc: reading table %s failed: %s\n", t->name, ag_strerror(rc));
		return 1;
	}
	if (key && d.n == 0) {
		fprintf(stderr, "faustc: table %s has no key '%s' in %s/tables\n", t->name, key,
			ag__app_datadir(app));
		return 1;
	}
	return 0;
}

/* ---- reset ---- */

int
ag__cmd_reset(const struct ag_app *app, int yes)
{
	const char *dir = ag__app_datadir(app);
	char path[4096], lock[4096], pid[32] = "";
	snprintf(path, sizeof(path), "%s/tables", dir);
	if (!yes) {
		fprintf(stderr,
			"faustc: reset deletes the local table state in %s; the next worker "
			"rebuilds it from the changelogs (all of it is lost if the broker lost "
			"them, as an embedded broker does when it stops). Run again with --yes\n",
			path);
		return 2;
	}
	struct stat st;
	if (stat(path, &st) < 0) {
		printf("nothing to reset: %s does not exist\n", path);
		return 0;
	}
	snprintf(lock, sizeof(lock), "%s/LOCK", dir);
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "faustc: cannot open %s: %s; check --datadir\n", lock,
			strerror(errno));
		return 1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ssize_t n = read(fd, pid, sizeof(pid) - 1);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		fprintf(stderr,
			"faustc: a worker (pid %s) is using %s; stop it before resetting its "
			"tables\n",
			pid[0] ? pid : "unknown", dir);
		close(fd);
		return 1;
	}
	static const char *const files[] = {"data.mdb", "lock.mdb"};
	int status = 0;
	for (size_t i = 0; i < AG__ARRAY_SIZE(files); i++) {
		char f[4200];
		snprintf(f, sizeof(f), "%s/%s", path, files[i]);
		if (unlink(f) < 0 && errno != ENOENT) {
			fprintf(stderr, "faustc: cannot delete %s: %s\n", f, strerror(errno));
			status = 1;
		}
	}
	if (status == 0 && rmdir(path) < 0) {
		fprintf(stderr, "faustc: cannot remove %s: %s\n", path, strerror(errno));
		status = 1;
	}
	close(fd); /* releases the lock */
	if (status == 0)
		printf("deleted the table state in %s; the next worker rebuilds it from the "
		       "changelogs\n",
		       path);
	return status;
}
