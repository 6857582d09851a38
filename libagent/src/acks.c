/*
 * The ack tracker (see acks.h for the contract).
 *
 * Received offsets sit in a ring in the order they arrived, with a parallel ring of acked
 * flags. The oldest entry is always unacked: as soon as it is acked, it and every acked
 * entry behind it are released (the head moves on), so the committable position is the
 * head's offset, or `next` (last added + 1, or the start) when the ring is empty. Each
 * entry is released once, so releasing is amortized O(1).
 *
 * Finding an offset: when the ring holds contiguous offsets (the usual case: a partition
 * without compaction or transactions), the index is offset - first offset; otherwise a
 * binary search over the ring, which is sorted.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acks.h"

#define ACKS_INITIAL_CAP 64u

void
ag__acks_init(struct ag__acks *a, int64_t start)
{
	memset(a, 0, sizeof(*a));
	a->next = start;
}

void
ag__acks_free(struct ag__acks *a)
{
	free(a->offs);
	free(a->acked);
	a->offs = NULL;
	a->acked = NULL;
	a->cap = 0;
	a->head = 0;
	a->count = 0;
}

/* Ring slot of the i-th oldest entry. */
static inline uint32_t
slot(const struct ag__acks *a, uint32_t i)
{
	return (a->head + i) & (a->cap - 1);
}

/*
 * Doubles the capacity, keeping the entries in order. Each array is grown on its own; if
 * the second allocation fails the first one is merely larger than needed and the
 * tracker is unchanged.
 */
static int
grow(struct ag__acks *a)
{
	uint32_t cap = a->cap ? a->cap * 2 : ACKS_INITIAL_CAP;
	size_t bytes = (size_t)cap * sizeof(*a->offs);
	uint32_t wrapped;
	int64_t *offs;
	uint8_t *acked;

	/* The capacity is a uint32_t (and on 32-bit machines the byte count a size_t). */
	if (cap < a->cap || bytes / sizeof(*a->offs) != cap)
		return -ENOMEM;
	offs = realloc(a->offs, bytes);
	if (offs == NULL)
		return -ENOMEM;
	a->offs = offs;
	acked = realloc(a->acked, cap * sizeof(*acked));
	if (acked == NULL)
		return -ENOMEM;
	a->acked = acked;
	/*
	 * Entries that wrapped past the end of the old ring move to just after it, where the
	 * new ring continues. The ring is full here, so they are the first head slots.
	 */
	if (a->count > 0 && a->head + a->count > a->cap) {
		wrapped = a->head + a->count - a->cap;
		memcpy(a->offs + a->cap, a->offs, wrapped * sizeof(*a->offs));
		memcpy(a->acked + a->cap, a->acked, wrapped * sizeof(*a->acked));
	}
	a->cap = cap;
	return 0;
}

int
ag__acks_add(struct ag__acks *a, int64_t offset)
{
	uint32_t s;
	int err;

	/* next is last added + 1 (or the start); INT64_MAX has no successor. */
	if (offset < a->next || offset == INT64_MAX)
		return -EINVAL;
	if (a->count == a->cap) {
		err = grow(a);
		if (err < 0)
			return err;
	}
	s = slot(a, a->count);
	a->offs[s] = offset;
	a->acked[s] = 0;
	a->count++;
	a->next = offset + 1;
	return 0;
}

/* Index (0 = oldest) of offset in the ring, or -1. */
static int64_t
find(const struct ag__acks *a, int64_t offset)
{
	int64_t first, last;
	uint32_t lo, hi, mid;

	if (a->count == 0)
		return -1;
	first = a->offs[a->head];
	last = a->offs[slot(a, a->count - 1)];
	if (offset < first || offset > last)
		return -1;
	if (last - first == (int64_t)a->count - 1)
		return offset - first;
	lo = 0;
	hi = a->count;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (a->offs[slot(a, mid)] < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < a->count && a->offs[slot(a, lo)] == offset)
		return lo;
	return -1;
}

int
ag__acks_ack(struct ag__acks *a, int64_t offset)
{
	int64_t i = find(a, offset);
	uint32_t s;

	if (i < 0)
		return -ENOENT;
	s = slot(a, (uint32_t)i);
	if (a->acked[s])
		return -ENOENT;
	a->acked[s] = 1;
	if (i != 0)
		return 0;
	/* The oldest entry was acked: release the acked prefix. */
	while (a->count > 0 && a->acked[a->head]) {
		a->head = (a->head + 1) & (a->cap - 1);
		a->count--;
	}
	if (a->count == 0)
		a->head = 0;
	return 0;
}

int64_t
ag__acks_committable(const struct ag__acks *a)
{
	return a->count > 0 ? a->offs[a->head] : a->next;
}

uint32_t
ag__acks_pending(const struct ag__acks *a)
{
	uint32_t n = 0;

	/* acks.h has no counter for this; a scan is fine for a metric read now and then. */
	for (uint32_t i = 0; i < a->count; i++)
		n += !a->acked[slot(a, i)];
	return n;
}

void
ag__acks_reset(struct ag__acks *a, int64_t start)
{
	a->head = 0;
	a->count = 0;
	a->next = start;
}
