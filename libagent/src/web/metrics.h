/*
 * Counters the loop keeps for /metrics that are not plain integers: latency histograms with
 * fixed buckets, observed without allocation or locks (one loop thread), so that an event
 * costs a clock read and a few compares. Private to the library.
 */
#ifndef AG_WEB_METRICS_H
#define AG_WEB_METRICS_H

#include <stdint.h>

/* Bucket upper bounds in microseconds (Prometheus `le`, in seconds: 0.0001 ... 60). */
#define AG__HIST_BOUNDS \
	{ \
		100, 500, 1000, 5000, 10000, 50000, 100000, 500000, 1000000, 5000000, 10000000, \
			60000000 \
	}
#define AG__HIST_N 12

struct ag__hist {
	uint64_t b[AG__HIST_N]; /* observations <= bound i (not cumulative) */
	uint64_t count;
	uint64_t sum_us;
};

static inline void
ag__hist_observe(struct ag__hist *h, uint64_t us)
{
	static const uint64_t bounds[AG__HIST_N] = AG__HIST_BOUNDS;
	h->count++;
	h->sum_us += us;
	for (int i = 0; i < AG__HIST_N; i++) {
		if (us <= bounds[i]) {
			h->b[i]++;
			return;
		}
	}
}

/* Wall-clock microseconds since the epoch (what event timestamps are compared with). */
uint64_t ag__wall_us(void);

#endif
