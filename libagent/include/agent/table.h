/*
 * Tables: partitioned key/value state that agents update. A table follows the partitions
 * of its source topic: the partition written is the partition of the event being
 * processed (so state is co-located with the stream), or murmur2(key) outside an agent.
 * Every partition lives in LMDB under the data dir and every change goes to the changelog
 * topic `<app_id>-<table>-changelog` (same partition), from which a worker rebuilds the
 * partition when it has no local copy. Changes are buffered per commit interval: a key
 * updated many times writes one LMDB put and one changelog record per interval.
 *
 * Values are stored as msgpack; the typed accessors below read and write int64,
 * double and byte-string values. Reading a value of another type returns AG_ETYPE.
 * Tables are used from agents on the worker's loop thread only.
 */
#ifndef AGENT_TABLE_H
#define AGENT_TABLE_H

#include <agent/types.h>

struct ag_app;
struct ag_topic;
struct ag_table;

/* Table options. A zeroed struct (or NULL) gives default 0 / 0.0 / absent. */
struct ag_table_opts {
	int64_t default_i64; /* returned by ag_table_get_i64 for a missing key */
	double default_f64; /* returned by ag_table_get_f64 for a missing key */
};

/*
 * Declares table `name` partitioned like `source` (its changelog has the same partition
 * count). *out (optional) is borrowed. Returns 0, -EINVAL, -EEXIST, -ENOMEM.
 */
int ag_app_table(struct ag_app *app, const char *name, struct ag_topic *source,
		 const struct ag_table_opts *opts, struct ag_table **out);

const char *ag_table_name(const struct ag_table *table);

/* Integer values. get returns the default for a missing key. Returns 0, AG_ETYPE, AG_ESTORE. */
int ag_table_get_i64(struct ag_table *table, const struct ag_bytes *key, int64_t *out);
int ag_table_set_i64(struct ag_table *table, const struct ag_bytes *key, int64_t value);
/* Adds delta and stores *out (optional) = the new value. */
int ag_table_add_i64(struct ag_table *table, const struct ag_bytes *key, int64_t delta,
		     int64_t *out);

/* Floating-point values, as above. */
int ag_table_get_f64(struct ag_table *table, const struct ag_bytes *key, double *out);
int ag_table_set_f64(struct ag_table *table, const struct ag_bytes *key, double value);
int ag_table_add_f64(struct ag_table *table, const struct ag_bytes *key, double delta, double *out);

/*
 * Byte-string values. get sets *out to a borrowed copy valid until the next call on this
 * table; returns -ENOENT for a missing key.
 */
int ag_table_get_bytes(struct ag_table *table, const struct ag_bytes *key, struct ag_bytes *out);
int ag_table_set_bytes(struct ag_table *table, const struct ag_bytes *key,
		       const struct ag_bytes *value);

/*
 * Record values (agent/record.h), stored as msgpack. get decodes into *out (type->size
 * bytes) with strings and lists in arena; returns -ENOENT for a missing key, AG_ETYPE when
 * the stored value is not such a record.
 */
struct ag_record_type;
struct ag_arena;
int ag_table_get_record(struct ag_table *table, const struct ag_bytes *key,
			const struct ag_record_type *type, void *out, struct ag_arena *arena);
int ag_table_set_record(struct ag_table *table, const struct ag_bytes *key,
			const struct ag_record_type *type, const void *rec);

/* Deletes a key (a tombstone goes to the changelog). Returns 0, AG_ESTORE. */
int ag_table_del(struct ag_table *table, const struct ag_bytes *key);

#endif
