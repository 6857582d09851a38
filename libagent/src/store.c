/*
 * The table store on LMDB (see store.h for the layout). One environment, two named
 * databases, used from the loop thread only. LMDB's codes are converted here, where they
 * enter: MDB_NOTFOUND becomes -ENOENT, ENOSPC stays -ENOSPC, the rest become AG_ESTORE
 * with LMDB's message logged. MDB_MAP_FULL never leaves this file: the write is aborted,
 * the map doubled (with no transaction live in this process, as LMDB requires) and the
 * whole batch retried, so a batch is still all or nothing.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <lmdb.h>

#include "internal.h"
#include "store.h"

/* The map starts at 64 MiB and doubles whenever a write finds it full. */
#define STORE_MAP_INITIAL ((size_t)64 << 20)

/* Keys are built on the stack; LMDB's default build limits keys to 511 bytes. */
#define STORE_KEY_MAX 511

/* Free space below which an EIO from a write is taken for a full disk. */
#define STORE_FULL_BELOW ((uint64_t)1 << 20)

/* The meta key prefix for changelog offsets: "clog", NUL. */
#define STORE_CLOG "clog"

struct ag__store {
	MDB_env *env;
	MDB_dbi data;
	MDB_dbi meta;
	unsigned flags;
	size_t keymax; /* the longest key LMDB takes, at most STORE_KEY_MAX */
	char *dir;
	/*
	 * The one read transaction. NULL until the first read; reset (not live) after each
	 * write, renewed by the next read. With MDB_NOTLS it is not bound to a thread.
	 */
	MDB_txn *rtxn;
	int rtxn_live;
};

/* A key under construction: prefix (table, part) then the user key. */
struct store_key {
	unsigned char buf[STORE_KEY_MAX];
	size_t len;
};

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/*
 * Builds "table NUL [part BE32]" into k; part < 0 leaves the partition out (a prefix of
 * every partition). Returns 0, -EINVAL when it does not fit.
 */
static int
key_prefix(const struct ag__store *s, struct store_key *k, const char *ns, const char *table,
	   int32_t part)
{
	size_t nslen = ns ? strlen(ns) + 1 : 0;
	size_t tlen = strlen(table) + 1;
	size_t need = nslen + tlen + (part >= 0 ? 4 : 0);
	if (need > s->keymax)
		return -EINVAL;
	k->len = 0;
	if (ns) {
		memcpy(k->buf, ns, nslen);
		k->len = nslen;
	}
	memcpy(k->buf + k->len, table, tlen);
	k->len += tlen;
	if (part >= 0) {
		put_be32(k->buf + k->len, (uint32_t)part);
		k->len += 4;
	}
	return 0;
}

/* Builds the "data" key of (table, part, key). Returns 0, -EINVAL when it is too long. */
static int
data_key(const struct ag__store *s, struct store_key *k, const char *table, int32_t part,
	 struct ag_bytes key)
{
	int rc = key_prefix(s, k, NULL, table, part);
	if (rc < 0)
		return rc;
	if (key.len > s->keymax - k->len)
		return -EINVAL;
	if (key.len)
		memcpy(k->buf + k->len, key.ptr, key.len);
	k->len += key.len;
	return 0;
}

/*
 * Is the filesystem of the store full? LMDB reports a short write as EIO, not ENOSPC, so an
 * EIO with (almost) no space left is taken for a full disk.
 */
static int
disk_full(const struct ag__store *s, int rc)
{
	if (rc == ENOSPC || rc == EDQUOT)
		return 1;
	struct statvfs st;
	if (rc != EIO || statvfs(s->dir, &st) < 0)
		return 0;
	return (uint64_t)st.f_bavail * st.f_frsize < STORE_FULL_BELOW;
}

/* Converts an LMDB code to ours, logging LMDB's message for anything unexpected. */
static int
store_err(const struct ag__store *s, int rc, const char *what)
{
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc == ENOMEM)
		return -ENOMEM;
	if (disk_full(s, rc)) {
		ag__log(NULL, AG_LOG_ERROR,
			"table store at %s: %s failed: disk full (%s); nothing of it was written. "
			"Free space on the filesystem of --datadir or move --datadir to a larger "
			"one",
			s->dir, what, mdb_strerror(rc == EDQUOT ? EDQUOT : ENOSPC));
		return -ENOSPC;
	}
	ag__log(NULL, AG_LOG_ERROR, "table store at %s: %s failed: %s%s", s->dir, what,
		mdb_strerror(rc),
		rc == MDB_PANIC ? "; the store cannot be written any more: restart the worker"
				: "");
	return AG_ESTORE;
}

/* Makes the read transaction live. Returns an LMDB code. */
static int
reader_begin(struct ag__store *s)
{
	int rc;
	if (s->rtxn_live)
		return 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (s->rtxn)
			rc = mdb_txn_renew(s->rtxn);
		else
			rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rtxn);
		if (rc == 0) {
			s->rtxn_live = 1;
			return 0;
		}
		if (s->rtxn) {
			mdb_txn_abort(s->rtxn);
			s->rtxn = NULL;
		}
		if (rc != MDB_MAP_RESIZED)
			return rc;
		/* Another process grew the map: adopt its size, then try once more. */
		rc = mdb_env_set_mapsize(s->env, 0);
		if (rc)
			return rc;
	}
	return MDB_MAP_RESIZED;
}

/* Ends the read snapshot so values and the map can change. */
static void
reader_reset(struct ag__store *s)
{
	if (s->rtxn && s->rtxn_live)
		mdb_txn_reset(s->rtxn);
	s->rtxn_live = 0;
}

/* Doubles the map. No transaction of this process may be live. Returns an LMDB code. */
static int
map_grow(struct ag__store *s)
{
	MDB_envinfo info;
	int rc = mdb_env_info(s->env, &info);
	if (rc)
		return rc;
	if (info.me_mapsize > SIZE_MAX / 2)
		return MDB_MAP_FULL;
	size_t size = info.me_mapsize * 2;
	rc = mdb_env_set_mapsize(s->env, size);
	if (rc) /* no address space for it: keep the map LMDB had, rather than none */
		mdb_env_set_mapsize(s->env, info.me_mapsize);
	else
		ag__log(NULL, AG_LOG_INFO, "table store at %s: map grown to %zu MiB", s->dir,
			size >> 20);
	return rc;
}

/*
 * Runs body in a write transaction and commits it durably, growing the map and rerunning
 * the whole body when LMDB reports MDB_MAP_FULL. body returns an LMDB code; to abort with a
 * code of ours (already logged) it sets *ours and returns non-zero. Returns 0 or our code.
 */
typedef int (*store_txn_fn)(struct ag__store *s, MDB_txn *txn, void *ctx, int *ours);

static int
store_txn(struct ag__store *s, store_txn_fn body, void *ctx, const char *what)
{
	if (s->flags & AG__STORE_RDONLY) {
		ag__log(NULL, AG_LOG_ERROR,
			"table store at %s: %s: the store is open read-only; only a worker writes",
			s->dir, what);
		return AG_ESTORE;
	}
	/* Values handed out by gets end here; a live snapshot would also pin old pages. */
	reader_reset(s);
	for (;;) {
		MDB_txn *txn;
		int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
		if (rc == MDB_MAP_RESIZED) {
			rc = mdb_env_set_mapsize(s->env, 0);
			if (rc == 0)
				continue;
		}
		if (rc)
			return store_err(s, rc, what);
		int ours = 0;
		rc = body(s, txn, ctx, &ours);
		if (rc == 0) {
			rc = mdb_txn_commit(txn); /* frees txn, even on failure */
		} else {
			mdb_txn_abort(txn);
			if (ours)
				return ours;
		}
		if (rc == MDB_MAP_FULL) {
			rc = map_grow(s);
			if (rc == 0)
				continue;
		}
		return rc ? store_err(s, rc, what) : 0;
	}
}

/* Creates dir and its parents, like mkdir -p. Returns 0 or an errno value. */
static int
mkdir_p(const char *dir)
{
	if (!dir[0])
		return ENOENT;
	char *path = strdup(dir);
	if (!path)
		return ENOMEM;
	int err = 0;
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(path, 0777) < 0 && errno != EEXIST) {
			err = errno;
			break;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	if (!err) {
		struct stat st;
		if (stat(dir, &st) < 0)
			err = errno;
		else if (!S_ISDIR(st.st_mode))
			err = ENOTDIR;
	}
	free(path);
	return err;
}

/* What to do about an error that stopped the open. */
static const char *
open_hint(int rc, unsigned flags)
{
	switch (rc) {
	case EACCES:
	case EPERM:
		return "check the --datadir permissions";
	case ENOENT:
		return (flags & AG__STORE_RDONLY)
			       ? "check --datadir, or run a worker once to create "
				 "the tables"
			       : "check --datadir";
	case ENOTDIR:
		return "--datadir or one of its parents is not a directory; check --datadir";
	case ENOSPC:
		return "free space on the filesystem of --datadir";
	case EROFS:
		return "the filesystem is read-only; point --datadir at a writable one";
	case EAGAIN:
	case EBUSY:
		return "another process holds the store locked; wait for it or check --datadir";
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		return "the directory holds something that is not a table store of this version; "
		       "point --datadir elsewhere or remove the directory";
	case MDB_NOTFOUND:
		return "the store has no tables yet; run a worker once to create them";
	default:
		return "check --datadir";
	}
}

static int
open_fail(struct ag__store *s, const char *dir, int rc, char *errbuf, size_t errlen)
{
	char msg[1024];
	snprintf(msg, sizeof(msg), "cannot open table store at %s: %s; %s", dir,
		 rc == MDB_NOTFOUND ? "no table databases" : mdb_strerror(rc),
		 open_hint(rc, s->flags));
	if (errbuf && errlen)
		snprintf(errbuf, errlen, "%s", msg);
	else
		ag__log(NULL, AG_LOG_ERROR, "%s", msg);
	ag__store_close(s);
	return rc == ENOMEM ? -ENOMEM : AG_ESTORE;
}

int
ag__store_open(struct ag__store **out, const char *dir, unsigned flags, char *errbuf, size_t errlen)
{
	if (errbuf && errlen)
		errbuf[0] = '\0';
	struct ag__store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->flags = flags;
	s->dir = strdup(dir);
	if (!s->dir) {
		free(s);
		return -ENOMEM;
	}
	int rdonly = !!(flags & AG__STORE_RDONLY);
	int rc = rdonly ? 0 : mkdir_p(dir);
	if (rc)
		return open_fail(s, dir, rc, errbuf, errlen);
	rc = mdb_env_create(&s->env);
	if (rc)
		return open_fail(s, dir, rc, errbuf, errlen);
	rc = mdb_env_set_maxdbs(s->env, 2);
	if (rc == 0)
		rc = mdb_env_open(s->env, dir, MDB_NOTLS | (rdonly ? MDB_RDONLY : 0), 0666);
	/*
	 * The map keeps the size the last writer recorded (set before the open, a smaller size
	 * would shrink it to the data and make the next write grow it again); a new store
	 * starts at STORE_MAP_INITIAL.
	 */
	MDB_envinfo info;
	if (rc == 0 && !rdonly)
		rc = mdb_env_info(s->env, &info);
	if (rc == 0 && !rdonly && info.me_mapsize < STORE_MAP_INITIAL)
		rc = mdb_env_set_mapsize(s->env, STORE_MAP_INITIAL);
	if (rc)
		return open_fail(s, dir, rc, errbuf, errlen);
	int keymax = mdb_env_get_maxkeysize(s->env);
	s->keymax = keymax > 0 && keymax < STORE_KEY_MAX ? (size_t)keymax : STORE_KEY_MAX;
	if (!rdonly) {
		int dead = 0;
		mdb_reader_check(s->env, &dead); /* slots of crashed readers */
	}

	MDB_txn *txn;
	rc = mdb_txn_begin(s->env, NULL, rdonly ? MDB_RDONLY : 0, &txn);
	if (rc == MDB_MAP_RESIZED && mdb_env_set_mapsize(s->env, 0) == 0)
		rc = mdb_txn_begin(s->env, NULL, rdonly ? MDB_RDONLY : 0, &txn);
	if (rc)
		return open_fail(s, dir, rc, errbuf, errlen);
	unsigned dbflags = rdonly ? 0 : MDB_CREATE;
	rc = mdb_dbi_open(txn, "data", dbflags, &s->data);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "meta", dbflags, &s->meta);
	if (rc == 0)
		rc = mdb_txn_commit(txn); /* also for the reader: keeps the handles open */
	else
		mdb_txn_abort(txn);
	if (rc)
		return open_fail(s, dir, rc, errbuf, errlen);
	*out = s;
	return 0;
}

void
ag__store_close(struct ag__store *s)
{
	if (!s)
		return;
	if (s->rtxn)
		mdb_txn_abort(s->rtxn);
	if (s->env)
		mdb_env_close(s->env);
	free(s->dir);
	free(s);
}

int
ag__store_get(struct ag__store *s, const char *table, int32_t part, struct ag_bytes key,
	      struct ag_bytes *val)
{
	struct store_key k;
	if (part < 0 || data_key(s, &k, table, part, key) < 0)
		return -ENOENT; /* no such key can have been stored */
	int rc = reader_begin(s);
	if (rc)
		return store_err(s, rc, "read");
	MDB_val mk = {k.len, k.buf}, mv;
	rc = mdb_get(s->rtxn, s->data, &mk, &mv);
	if (rc)
		return rc == MDB_NOTFOUND ? -ENOENT : store_err(s, rc, "read");
	val->ptr = mv.mv_data;
	val->len = mv.mv_size;
	return 0;
}

int
ag__store_get_offset(struct ag__store *s, const char *table, int32_t part, int64_t *out)
{
	struct store_key k;
	if (part < 0 || key_prefix(s, &k, STORE_CLOG, table, part) < 0)
		return -ENOENT;
	int rc = reader_begin(s);
	if (rc)
		return store_err(s, rc, "read of a changelog offset");
	MDB_val mk = {k.len, k.buf}, mv;
	rc = mdb_get(s->rtxn, s->meta, &mk, &mv);
	if (rc)
		return rc == MDB_NOTFOUND ? -ENOENT
					  : store_err(s, rc, "read of a changelog offset");
	if (mv.mv_size != 8) {
		ag__log(NULL, AG_LOG_ERROR,
			"table store at %s: changelog offset of %s[%d] has %zu bytes, not 8; "
			"the store is damaged: remove it to rebuild the tables from their "
			"changelogs",
			s->dir, table, (int)part, mv.mv_size);
		return AG_ESTORE;
	}
	const unsigned char *p = mv.mv_data;
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	*out = (int64_t)v;
	return 0;
}

struct write_ctx {
	const struct ag__store_op *ops;
	size_t n;
};

static int
write_ops(struct ag__store *s, MDB_cursor *dc, MDB_cursor *mc, const struct write_ctx *c, int *ours)
{
	for (size_t i = 0; i < c->n; i++) {
		const struct ag__store_op *op = &c->ops[i];
		struct store_key k;
		MDB_val mk, mv;
		unsigned char le[8];
		int rc;
		if (!op->table || op->part < 0) {
			ag__log(NULL, AG_LOG_ERROR,
				"table store at %s: write op %zu has %s; this is a bug in the "
				"caller",
				s->dir, i, op->table ? "a negative partition" : "no table");
			return *ours = -EINVAL;
		}
		switch (op->kind) {
		case AG__STORE_PUT:
		case AG__STORE_DEL:
			if (data_key(s, &k, op->table, op->part, op->key) < 0) {
				ag__log(NULL, AG_LOG_ERROR,
					"table store at %s: key of %zu bytes for table %s "
					"partition %d "
					"is too long (keys, table name included, take at most %zu "
					"bytes); use shorter keys",
					s->dir, op->key.len, op->table, (int)op->part,
					s->keymax - 5);
				return *ours = -EINVAL;
			}
			mk.mv_size = k.len;
			mk.mv_data = k.buf;
			if (op->kind == AG__STORE_DEL) {
				rc = mdb_cursor_get(dc, &mk, NULL, MDB_SET);
				if (rc == 0)
					rc = mdb_cursor_del(dc, 0);
				else if (rc == MDB_NOTFOUND)
					rc = 0;
			} else {
				mv.mv_size = op->val.len;
				mv.mv_data = (void *)op->val.ptr;
				rc = mdb_cursor_put(dc, &mk, &mv, 0);
			}
			break;
		case AG__STORE_OFFSET:
			if (key_prefix(s, &k, STORE_CLOG, op->table, op->part) < 0) {
				ag__log(NULL, AG_LOG_ERROR,
					"table store at %s: table name %s is too long", s->dir,
					op->table);
				return *ours = -EINVAL;
			}
			for (int b = 0; b < 8; b++)
				le[b] = (unsigned char)((uint64_t)op->offset >> (8 * b));
			mk.mv_size = k.len;
			mk.mv_data = k.buf;
			mv.mv_size = sizeof(le);
			mv.mv_data = le;
			rc = mdb_cursor_put(mc, &mk, &mv, 0);
			break;
		default:
			ag__log(NULL, AG_LOG_ERROR,
				"table store at %s: write op %zu has unknown kind %d; this is a "
				"bug",
				s->dir, i, (int)op->kind);
			return *ours = -EINVAL;
		}
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * One cursor per database for the whole batch: LMDB's cursor put first checks whether the
 * key belongs on the leaf page the cursor is on and searches from the root only if not, so
 * a batch in key order (a restore batch is sorted) mostly skips the descent and the dirty
 * page lookups; an unsorted batch costs one or two key comparisons more per op (the
 * check against the page's first and last key in LMDB's mdb_cursor_set).
 */
static int
write_body(struct ag__store *s, MDB_txn *txn, void *arg, int *ours)
{
	MDB_cursor *dc = NULL, *mc = NULL;
	int rc = mdb_cursor_open(txn, s->data, &dc);
	if (rc == 0)
		rc = mdb_cursor_open(txn, s->meta, &mc);
	if (rc == 0)
		rc = write_ops(s, dc, mc, arg, ours);
	if (mc)
		mdb_cursor_close(mc);
	if (dc)
		mdb_cursor_close(dc);
	return rc;
}

int
ag__store_write(struct ag__store *s, const struct ag__store_op *ops, size_t n)
{
	struct write_ctx c = {ops, n};
	return store_txn(s, write_body, &c, "write");
}

int
ag__store_write_deferred(struct ag__store *s, const struct ag__store_op *ops, size_t n)
{
	struct write_ctx c = {ops, n};
	/*
	 * MDB_NOMETASYNC: the commit still syncs the data pages, then writes the meta page
	 * that makes them current without waiting for it; the next commit's sync (or
	 * ag__store_sync) flushes it. The meta page can reach the disk only after its data,
	 * so the stored offsets never run ahead of durable data.
	 */
	int rc = mdb_env_set_flags(s->env, MDB_NOMETASYNC, 1);
	if (rc)
		return store_err(s, rc, "write");
	int wrc = store_txn(s, write_body, &c, "write");
	rc = mdb_env_set_flags(s->env, MDB_NOMETASYNC, 0);
	if (rc && wrc == 0)
		return store_err(s, rc, "write");
	return wrc;
}

int
ag__store_sync(struct ag__store *s)
{
	if (s->flags & AG__STORE_RDONLY)
		return 0;
	int rc = mdb_env_sync(s->env, 1);
	return rc ? store_err(s, rc, "sync") : 0;
}

/* Does key k (of length len) start with prefix p? */
static int
has_prefix(const MDB_val *k, const struct store_key *p)
{
	return k->mv_size >= p->len && memcmp(k->mv_data, p->buf, p->len) == 0;
}

int
ag__store_iter(struct ag__store *s, const char *table, int32_t part, ag__store_iter_fn fn,
	       void *userdata)
{
	return ag__store_iter_from(s, table, part, (struct ag_bytes){NULL, 0}, fn, userdata);
}

int
ag__store_iter_from(struct ag__store *s, const char *table, int32_t part, struct ag_bytes from,
		    ag__store_iter_fn fn, void *userdata)
{
	struct store_key p, start;
	if (key_prefix(s, &p, NULL, table, part) < 0)
		return 0; /* nothing can be stored under it */
	start = p;
	if (from.len && part >= 0) {
		if (from.len > s->keymax - start.len)
			return 0; /* no stored key can be that long, so none is larger */
		memcpy(start.buf + start.len, from.ptr, from.len);
		start.len += from.len;
	}
	size_t tlen = strlen(table) + 1;
	int rc = reader_begin(s);
	if (rc)
		return store_err(s, rc, "read");
	MDB_cursor *cur;
	rc = mdb_cursor_open(s->rtxn, s->data, &cur);
	if (rc)
		return store_err(s, rc, "read");
	MDB_val mk = {start.len, start.buf}, mv;
	int ret = 0;
	for (rc = mdb_cursor_get(cur, &mk, &mv, MDB_SET_RANGE); rc == 0 && has_prefix(&mk, &p);
	     rc = mdb_cursor_get(cur, &mk, &mv, MDB_NEXT)) {
		if (mk.mv_size < tlen + 4)
			continue; /* not a key this file writes */
		const unsigned char *kp = mk.mv_data;
		struct ag_bytes key = {kp + tlen + 4, mk.mv_size - tlen - 4};
		struct ag_bytes val = {mv.mv_data, mv.mv_size};
		ret = fn((int32_t)get_be32(kp + tlen), key, val, userdata);
		if (ret)
			break;
	}
	mdb_cursor_close(cur);
	if (ret)
		return ret;
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_err(s, rc, "read");
}

int64_t
ag__store_count(struct ag__store *s, const char *table, int32_t part)
{
	struct store_key p;
	if (key_prefix(s, &p, NULL, table, part) < 0)
		return 0;
	int rc = reader_begin(s);
	if (rc)
		return store_err(s, rc, "count");
	MDB_cursor *cur;
	rc = mdb_cursor_open(s->rtxn, s->data, &cur);
	if (rc)
		return store_err(s, rc, "count");
	MDB_val mk = {p.len, p.buf}, mv;
	int64_t n = 0;
	for (rc = mdb_cursor_get(cur, &mk, &mv, MDB_SET_RANGE); rc == 0 && has_prefix(&mk, &p);
	     rc = mdb_cursor_get(cur, &mk, &mv, MDB_NEXT))
		n++;
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? n : store_err(s, rc, "count");
}

/* Deletes every key of dbi that starts with p. Returns an LMDB code. */
static int
delete_prefix(MDB_txn *txn, MDB_dbi dbi, const struct store_key *p)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc)
		return rc;
	MDB_val mk = {p->len, (void *)p->buf}, mv;
	rc = mdb_cursor_get(cur, &mk, &mv, MDB_SET_RANGE);
	while (rc == 0 && has_prefix(&mk, p)) {
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
		/* Seek again rather than rely on where a delete leaves the cursor. */
		mk.mv_size = p->len;
		mk.mv_data = (void *)p->buf;
		rc = mdb_cursor_get(cur, &mk, &mv, MDB_SET_RANGE);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

struct drop_ctx {
	const char *table;
	int32_t part;
};

static int
drop_body(struct ag__store *s, MDB_txn *txn, void *arg, int *ours)
{
	const struct drop_ctx *c = arg;
	struct store_key p;
	if (key_prefix(s, &p, NULL, c->table, c->part) < 0)
		return 0;
	int rc = delete_prefix(txn, s->data, &p);
	if (rc)
		return rc;
	if (key_prefix(s, &p, STORE_CLOG, c->table, c->part) < 0)
		return 0;
	return delete_prefix(txn, s->meta, &p);
}

int
ag__store_drop(struct ag__store *s, const char *table, int32_t part)
{
	struct drop_ctx c = {table, part};
	return store_txn(s, drop_body, &c, "drop");
}
