/*
 * The table store: one LMDB environment per worker data dir (<datadir>/tables), opened
 * with MDB_NOTLS and used from the loop thread only. Two databases:
 *   "data": key = table name, NUL, partition (4 bytes big-endian), user key -> value bytes
 *   "meta": key = "clog", NUL, table name, NUL, partition (4 bytes BE) -> int64 (8 bytes
 *           little-endian): the changelog offset the partition is durable up to (the next
 *           changelog offset to replay from).
 * Writes come in batches (one write transaction each, i.e. once per commit interval).
 * MDB_MAP_FULL is handled inside ag__store_write: abort, double the map size, retry.
 * Reads use a read transaction that ag__store_write renews, so values returned by a get
 * stay valid until the next write.
 * A read-only store reads one snapshot, taken at its first read: it sees what writers had
 * committed by then, and nothing later (reopen it to look again).
 * Keys are limited by LMDB (511 bytes with the prefix, i.e. about 500 - strlen(table)).
 */
#ifndef AG_STORE_H
#define AG_STORE_H

#include <stdint.h>
#include <agent/types.h>

struct ag__store;

enum ag__store_flags {
	AG__STORE_RDONLY = 1, /* open read-only (faustc table dump while a worker runs) */
};

enum ag__store_op_kind {
	AG__STORE_PUT = 0,
	AG__STORE_DEL, /* deleting a missing key is not an error */
	AG__STORE_OFFSET, /* set the changelog offset of (table, part) to `offset` */
};

struct ag__store_op {
	enum ag__store_op_kind kind;
	const char *table;
	int32_t part;
	struct ag_bytes key; /* PUT, DEL */
	struct ag_bytes val; /* PUT */
	int64_t offset; /* OFFSET */
};

/*
 * Opens (creating the directory and its parents when not read-only) the store at `dir`.
 * Returns 0 and sets *out; AG_ESTORE, -ENOMEM. On failure errbuf (optional) receives
 * "what happened and what to do", with LMDB's message; without errbuf it is logged.
 */
int ag__store_open(struct ag__store **out, const char *dir, unsigned flags, char *errbuf,
		   size_t errlen);

/* Closes the store. NULL is a no-op. */
void ag__store_close(struct ag__store *s);

/*
 * Looks a key up. *val is borrowed from LMDB's map, valid until the next ag__store_write,
 * ag__store_drop or ag__store_close. Returns 0, -ENOENT (also for part < 0 or a key too
 * long to be stored), AG_ESTORE.
 */
int ag__store_get(struct ag__store *s, const char *table, int32_t part, struct ag_bytes key,
		  struct ag_bytes *val);

/* Reads the changelog offset of (table, part). Returns 0, -ENOENT (none stored), AG_ESTORE. */
int ag__store_get_offset(struct ag__store *s, const char *table, int32_t part, int64_t *out);

/*
 * Applies ops in one write transaction (all or nothing), growing the map as needed, and
 * synchronously makes it durable. Returns 0, AG_ESTORE (also on a read-only store),
 * -ENOSPC when the disk is full, -EINVAL for a bad op (no table, part < 0, key too long),
 * -ENOMEM; nothing is written on failure, and the reason is logged.
 */
int ag__store_write(struct ag__store *s, const struct ag__store_op *ops, size_t n);

/*
 * As ag__store_write, but durable only once ag__store_sync returns or the next
 * ag__store_write commits: a system crash before that may undo the transaction (whole: its
 * data and offsets stay together, and what it leaves is a state the store had); a process
 * crash does not. For restore batches, where a lost batch is fetched again.
 */
int ag__store_write_deferred(struct ag__store *s, const struct ag__store_op *ops, size_t n);

/* Makes every committed write durable. Returns 0, AG_ESTORE. */
int ag__store_sync(struct ag__store *s);

/*
 * Calls fn for every key of (table, part) in key order; fn's key and val are borrowed for
 * the call; a non-zero return stops the walk and is returned. part < 0: every partition
 * (in partition order). fn may read the store but must not write or drop.
 * Returns 0, fn's value, AG_ESTORE.
 */
typedef int (*ag__store_iter_fn)(int32_t part, struct ag_bytes key, struct ag_bytes val,
				 void *userdata);
int ag__store_iter(struct ag__store *s, const char *table, int32_t part, ag__store_iter_fn fn,
		   void *userdata);

/*
 * As ag__store_iter for one partition (part >= 0), starting at the first user key >= from
 * (byte order). fn may read the store but must not write or drop.
 */
int ag__store_iter_from(struct ag__store *s, const char *table, int32_t part, struct ag_bytes from,
			ag__store_iter_fn fn, void *userdata);

/* Number of keys of (table, part); part < 0: all partitions. Returns >= 0 or AG_ESTORE. */
int64_t ag__store_count(struct ag__store *s, const char *table, int32_t part);

/*
 * Deletes every key and the offset of (table, part); part < 0: of every partition. Like a
 * write, it ends the values borrowed from gets. Returns 0, AG_ESTORE, -ENOSPC.
 */
int ag__store_drop(struct ag__store *s, const char *table, int32_t part);

#endif
