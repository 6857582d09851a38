/*
 * The ack tracker: in-order and out-of-order acks, gaps, double acks, growth, reset, the
 * pending count, and a randomized run against a plain array model.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "acks.h"
#include "tap.h"

static void
test_empty(void)
{
	struct ag__acks a;

	ag__acks_init(&a, 42);
	ok_int_eq(ag__acks_committable(&a), 42, "empty: committable is the start");
	ok_int_eq(ag__acks_pending(&a), 0, "empty: nothing pending");
	ok_int_eq(ag__acks_ack(&a, 42), -ENOENT, "empty: ack of anything is -ENOENT");
	ok_int_eq(ag__acks_add(&a, 41), -EINVAL, "add below the start is refused");
	ag__acks_free(&a);
	ag__acks_free(&a);
	ok_int_eq(ag__acks_committable(&a), 42, "free twice, still committable at the start");
}

static void
test_in_order(void)
{
	struct ag__acks a;
	int rc = 0;

	ag__acks_init(&a, 0);
	for (int64_t o = 0; o < 10; o++)
		rc |= ag__acks_add(&a, o);
	ok_int_eq(rc, 0, "add 0..9");
	ok_int_eq(ag__acks_add(&a, 9), -EINVAL, "adding the same offset again is refused");
	ok_int_eq(ag__acks_add(&a, 5), -EINVAL, "adding a lower offset is refused");
	ok_int_eq(ag__acks_pending(&a), 10, "10 pending");
	ok_int_eq(ag__acks_committable(&a), 0, "committable is the first unacked");
	for (int64_t o = 0; o < 10; o++) {
		rc |= ag__acks_ack(&a, o);
		if (ag__acks_committable(&a) != o + 1)
			rc = -1;
	}
	ok_int_eq(rc, 0, "each in-order ack moves committable by one");
	ok_int_eq(ag__acks_committable(&a), 10, "all acked: last + 1");
	ok_int_eq(ag__acks_pending(&a), 0, "nothing pending");
	ok_int_eq(ag__acks_ack(&a, 3), -ENOENT, "acking a released offset is -ENOENT");
	ok_int_eq(ag__acks_add(&a, 9), -EINVAL, "adding below last + 1 after release is refused");
	ok_int_eq(ag__acks_add(&a, 10), 0, "adding last + 1 works");
	ag__acks_free(&a);
}

static void
test_out_of_order(void)
{
	struct ag__acks a;

	ag__acks_init(&a, 100);
	for (int64_t o = 100; o < 105; o++)
		ag__acks_add(&a, o);
	ok_int_eq(ag__acks_ack(&a, 103), 0, "ack 103");
	ok_int_eq(ag__acks_ack(&a, 101), 0, "ack 101");
	ok_int_eq(ag__acks_committable(&a), 100, "100 unacked: committable stays 100");
	ok_int_eq(ag__acks_pending(&a), 3, "3 pending");
	ok_int_eq(ag__acks_ack(&a, 101), -ENOENT, "double ack of a held offset is -ENOENT");
	ok_int_eq(ag__acks_pending(&a), 3, "and changes nothing");
	ok_int_eq(ag__acks_ack(&a, 100), 0, "ack 100");
	ok_int_eq(ag__acks_committable(&a), 102, "committable jumps over the acked 101");
	ok_int_eq(ag__acks_ack(&a, 104), 0, "ack 104");
	ok_int_eq(ag__acks_committable(&a), 102, "still 102");
	ok_int_eq(ag__acks_ack(&a, 102), 0, "ack 102");
	ok_int_eq(ag__acks_committable(&a), 105, "all acked: 105");
	ok_int_eq(ag__acks_ack(&a, 105), -ENOENT, "never added: -ENOENT");
	ag__acks_free(&a);
}

static void
test_gaps(void)
{
	struct ag__acks a;
	const int64_t offs[] = {5, 7, 8, 20, 21, 1000};

	ag__acks_init(&a, 0);
	ok_int_eq(ag__acks_committable(&a), 0, "start 0");
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		ag__acks_add(&a, offs[i]);
	ok_int_eq(ag__acks_committable(&a), 5, "first received is 5");
	ok_int_eq(ag__acks_ack(&a, 6), -ENOENT, "6 is in a gap: -ENOENT");
	ok_int_eq(ag__acks_ack(&a, 999), -ENOENT, "999 is in a gap: -ENOENT");
	ok_int_eq(ag__acks_ack(&a, 1001), -ENOENT, "1001 is past the last: -ENOENT");
	ok_int_eq(ag__acks_ack(&a, 4), -ENOENT, "4 is before the first: -ENOENT");
	ok_int_eq(ag__acks_ack(&a, 20), 0, "ack 20 (binary search)");
	ok_int_eq(ag__acks_ack(&a, 5), 0, "ack 5");
	ok_int_eq(ag__acks_committable(&a), 7, "committable 7");
	ok_int_eq(ag__acks_ack(&a, 7), 0, "ack 7");
	ok_int_eq(ag__acks_ack(&a, 8), 0, "ack 8");
	ok_int_eq(ag__acks_committable(&a), 21, "committable jumps the gap and the acked 20");
	ok_int_eq(ag__acks_pending(&a), 2, "21 and 1000 pending");
	ok_int_eq(ag__acks_ack(&a, 1000), 0, "ack 1000");
	ok_int_eq(ag__acks_ack(&a, 21), 0, "ack 21");
	ok_int_eq(ag__acks_committable(&a), 1001, "all acked: 1001");
	ok_int_eq(ag__acks_add(&a, INT64_MAX), -EINVAL, "INT64_MAX has no successor: refused");
	ag__acks_free(&a);
}

static void
test_growth(void)
{
	struct ag__acks a;
	const int64_t n = 100000;
	int rc = 0, mono = 1;
	int64_t prev;

	ag__acks_init(&a, 0);
	/* Keep offset 0 unacked so nothing is released while the ring grows and wraps. */
	for (int64_t o = 0; o < n; o++) {
		rc |= ag__acks_add(&a, o);
		if (o > 0 && o % 2 == 0)
			rc |= ag__acks_ack(&a, o);
	}
	ok_int_eq(rc, 0, "added %lld offsets, acked the even ones but 0", (long long)n);
	ok_int_eq(ag__acks_pending(&a), n / 2 + 1, "the odd ones and 0 are pending");
	ok_int_eq(ag__acks_committable(&a), 0, "committable held at 0");
	ok(a.cap >= (uint32_t)n && (a.cap & (a.cap - 1)) == 0, "capacity %u is a power of two",
	   a.cap);
	ok_int_eq(ag__acks_ack(&a, 0), 0, "ack 0");
	ok_int_eq(ag__acks_committable(&a), 1, "committable 1");
	prev = 1;
	for (int64_t o = 1; o < n; o += 2) {
		rc |= ag__acks_ack(&a, o);
		if (ag__acks_committable(&a) < prev)
			mono = 0;
		prev = ag__acks_committable(&a);
	}
	ok_int_eq(rc, 0, "acked the odd ones");
	ok(mono, "committable never moved back");
	ok_int_eq(ag__acks_committable(&a), n, "all acked: n");

	/* Wrap-around then growth: release from the front while adding at the back. */
	ag__acks_reset(&a, 0);
	for (int64_t o = 0; o < 48; o++)
		rc |= ag__acks_add(&a, o);
	for (int64_t o = 0; o < 40; o++)
		rc |= ag__acks_ack(&a, o);
	for (int64_t o = 48; o < 4000; o++)
		rc |= ag__acks_add(&a, o);
	ok_int_eq(rc, 0, "wrapped and grew");
	ok_int_eq(ag__acks_committable(&a), 40, "committable 40 after the growth");
	for (int64_t o = 40; o < 4000; o++)
		if (ag__acks_ack(&a, o) != 0 || ag__acks_committable(&a) != o + 1)
			rc = -1;
	ok_int_eq(rc, 0, "entries kept their order across the growth");
	ag__acks_free(&a);
}

static void
test_reset(void)
{
	struct ag__acks a;

	ag__acks_init(&a, 0);
	for (int64_t o = 0; o < 100; o++)
		ag__acks_add(&a, o);
	ag__acks_ack(&a, 5);
	ag__acks_reset(&a, 500);
	ok_int_eq(ag__acks_committable(&a), 500, "reset: committable is the new start");
	ok_int_eq(ag__acks_pending(&a), 0, "reset: nothing pending");
	ok_int_eq(ag__acks_ack(&a, 5), -ENOENT, "reset: old offsets are forgotten");
	ok_int_eq(ag__acks_add(&a, 499), -EINVAL, "reset: below the new start is refused");
	ok_int_eq(ag__acks_add(&a, 500), 0, "reset: add at the new start");
	ok_int_eq(ag__acks_add(&a, 510), 0, "add 510");
	ok_int_eq(ag__acks_ack(&a, 510), 0, "ack 510");
	ok_int_eq(ag__acks_committable(&a), 500, "500 unacked");
	ag__acks_reset(&a, 10);
	ok_int_eq(ag__acks_add(&a, 10), 0, "reset backwards (seek) and add");
	ok_int_eq(ag__acks_ack(&a, 10), 0, "ack");
	ok_int_eq(ag__acks_committable(&a), 11, "committable 11");
	ag__acks_free(&a);
}

/* The reference: every offset ever added, with a flag, scanned linearly. */
struct model {
	int64_t *offs;
	uint8_t *acked;
	size_t n;
	int64_t start;
};

static int64_t
model_committable(const struct model *m)
{
	for (size_t i = 0; i < m->n; i++)
		if (!m->acked[i])
			return m->offs[i];
	return m->n ? m->offs[m->n - 1] + 1 : m->start;
}

static uint32_t
model_pending(const struct model *m)
{
	uint32_t p = 0;

	for (size_t i = 0; i < m->n; i++)
		p += !m->acked[i];
	return p;
}

/* -ENOENT unless the offset was added and not acked. */
static int
model_ack(struct model *m, int64_t off)
{
	for (size_t i = 0; i < m->n; i++) {
		if (m->offs[i] == off) {
			if (m->acked[i])
				return -ENOENT;
			m->acked[i] = 1;
			return 0;
		}
	}
	return -ENOENT;
}

static void
test_random(void)
{
	enum { STEPS = 200000, MAXN = 20000 };
	struct model m = {.offs = calloc(MAXN, sizeof(int64_t)), .acked = calloc(MAXN, 1)};
	struct ag__acks a;
	int64_t next = 0;
	int bad_rc = 0, bad_commit = 0, bad_pending = 0, passed_unacked = 0;
	unsigned seed = 12345;

	srand(seed);
	ag__acks_init(&a, 0);
	for (int step = 0; step < STEPS; step++) {
		int r = rand() % 100;

		if (r < 1) {
			/* Seek: both restart. */
			next = rand() % 1000;
			ag__acks_reset(&a, next);
			m.n = 0;
			m.start = next;
		} else if (r < 45 && m.n < MAXN) {
			/* Receive, sometimes after a gap. */
			if (rand() % 4 == 0)
				next += 1 + rand() % 5;
			if (ag__acks_add(&a, next) != 0)
				bad_rc++;
			m.offs[m.n] = next;
			m.acked[m.n] = 0;
			m.n++;
			next++;
		} else if (m.n > 0) {
			/* Ack something recent, old or unknown (double acks and gaps included). */
			size_t window = m.n < 64 ? m.n : 64;
			int64_t off;

			if (rand() % 3 == 0)
				off = m.offs[rand() % m.n];
			else
				off = m.offs[m.n - 1 - (size_t)rand() % window];
			off += rand() % 8 == 0 ? rand() % 3 - 1 : 0;
			if (ag__acks_ack(&a, off) != model_ack(&m, off))
				bad_rc++;
		}
		if (ag__acks_committable(&a) != model_committable(&m))
			bad_commit++;
		if (ag__acks_pending(&a) != model_pending(&m))
			bad_pending++;
		/* The safety property, stated directly. */
		for (size_t i = 0; i < m.n; i++)
			if (!m.acked[i] && m.offs[i] < ag__acks_committable(&a))
				passed_unacked++;
		/* Drop the model's acked prefix now and then to keep the scans short. */
		if (m.n == MAXN || (step % 1000 == 0 && m.n > 0)) {
			size_t k = 0;

			while (k < m.n && m.acked[k])
				k++;
			if (k == m.n && k > 0) {
				m.start = m.offs[k - 1] + 1;
				m.n = 0;
			} else if (k > 0) {
				memmove(m.offs, m.offs + k, (m.n - k) * sizeof(*m.offs));
				memmove(m.acked, m.acked + k, m.n - k);
				m.n -= k;
			}
		}
	}
	ok_int_eq(bad_rc, 0, "random (seed %u): return codes match the model", seed);
	ok_int_eq(bad_commit, 0, "random: committable matches the model");
	ok_int_eq(bad_pending, 0, "random: pending matches the model");
	ok_int_eq(passed_unacked, 0, "random: committable never passed an unacked offset");
	ag__acks_free(&a);
	free(m.offs);
	free(m.acked);
}

int
main(void)
{
	test_empty();
	test_in_order();
	test_out_of_order();
	test_gaps();
	test_growth();
	test_reset();
	test_random();
	return tap_done();
}
