/*
 * The ack tracker: which offsets of one partition are safe to commit. Offsets are added
 * in the order they are received (increasing, with gaps where the log has none: compacted
 * records, transaction markers); acks come in any order. The committable position is the
 * offset after the longest acked prefix of what was received: never past an event that
 * was received and not yet acked. The same structure tracks the producer's sequence
 * numbers, so "delivered up to" is computed the same way.
 */
#ifndef AG_ACKS_H
#define AG_ACKS_H

#include <stdint.h>

struct ag__acks {
	int64_t *offs; /* ring of received, not yet released offsets */
	uint8_t *acked; /* parallel ring of acked flags */
	uint32_t cap; /* ring capacity (power of two) */
	uint32_t head; /* index of the oldest entry */
	uint32_t count; /* entries in the ring */
	int64_t next; /* committable position when the ring is empty */
};

/* Initializes an empty tracker whose committable position is `start`. Allocates lazily. */
void ag__acks_init(struct ag__acks *a, int64_t start);

/* Frees the tracker's memory; it is empty (committable `next`) afterwards. */
void ag__acks_free(struct ag__acks *a);

/*
 * Records that `offset` was received. Must be greater than every offset added before and
 * not below the start. Returns 0, -EINVAL (not increasing), -ENOMEM.
 */
int ag__acks_add(struct ag__acks *a, int64_t offset);

/*
 * Marks a received offset acked. Returns 0, -ENOENT when the offset is not pending
 * (never added, or already released: acking twice is harmless and returns -ENOENT).
 */
int ag__acks_ack(struct ag__acks *a, int64_t offset);

/* The position to commit: the lowest pending unacked offset, else last added + 1. */
int64_t ag__acks_committable(const struct ag__acks *a);

/* Number of received offsets not yet acked. */
uint32_t ag__acks_pending(const struct ag__acks *a);

/* Forgets everything and restarts at `start` (partition revoked / seeked). */
void ag__acks_reset(struct ag__acks *a, int64_t start);

#endif
