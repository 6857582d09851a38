/*
 * Watermarks: the event-time progress of a stream partition that windowed tables close by.
 * Private to the library; the rules are in watermark.c and docs/tables.md.
 *
 * A partition of a topic that a windowed table follows has channels: the source partitions
 * whose events reach it. A plain topic has one, the partition itself. A boundary topic
 * (group_by, through) has one per partition of the forwarder's source topic: every forward
 * carries its source partition's progress, and forwarders broadcast heartbeats so that a
 * partition also learns the progress of sources that send it nothing. The stream time is
 * the minimum over the channels that are not idle.
 *
 * The core (struct ag__wm and its functions) is plain bookkeeping without a worker, so the
 * rules are unit-tested directly (tests/test-watermark.c).
 */
#ifndef AG_WATERMARK_H
#define AG_WATERMARK_H

#include <stdint.h>

/* How often idleness and heartbeats are looked at, and the most a heartbeat waits (ms). */
#define AG__WM_TICK_MS 250
#define AG__WM_HEARTBEAT_MS 1000
/* The header of a forwarder's heartbeat record (no key, no value): "P:TIME:IDLE". */
#define AG__WM_HEADER "faustc-wm"

/* The progress of one partition's channels, as its first reader has taken them. */
struct ag__wm {
	uint32_t nchan;
	int64_t *time; /* per channel: the highest event time seen, INT64_MIN: none yet */
	uint8_t *idle; /* per channel: idle, left out of the minimum */
	uint32_t nidle;
	int64_t idle_base; /* every channel idle: the highest time any of them reached ... */
	uint64_t idle_ns; /* ... when the last one went idle (monotonic ns); 0: not all idle */
	uint64_t last_ns; /* when an event was last taken (plain topics decide idleness here) */
	int dirty; /* channel times changed since the last commit cycle */
};

/* Makes wm hold nchan channels, none seen, none idle. Returns 0, -ENOMEM. */
int ag__wm_init(struct ag__wm *wm, uint32_t nchan);
void ag__wm_free(struct ag__wm *wm);
/* Forgets every channel's progress (a new assignment). */
void ag__wm_reset(struct ag__wm *wm);
/*
 * Channel chan (< nchan) reached time: an event or a heartbeat. It is active again.
 * now_ns: the monotonic clock.
 */
void ag__wm_observe(struct ag__wm *wm, uint32_t chan, int64_t time, uint64_t now_ns);
/* Marks channel chan idle (1) or active (0). */
void ag__wm_set_idle(struct ag__wm *wm, uint32_t chan, int idle, uint64_t now_ns);
/*
 * The stream time: the minimum over the active channels, INT64_MIN while an active channel
 * has not been seen. When every channel is idle, time goes on with the clock: the highest
 * time reached plus the time since the last channel went idle (INT64_MIN if none was ever
 * seen).
 */
int64_t ag__wm_value(const struct ag__wm *wm, uint64_t now_ns);
/* Takes stored channel times (n of them; extra ones are ignored) where they are higher. */
void ag__wm_merge(struct ag__wm *wm, const int64_t *times, uint32_t n);

/* A forwarder's view of one of its source partitions. */
struct ag__wm_src {
	int64_t time; /* the highest event time taken, INT64_MIN: none */
	uint64_t last_ns; /* when an event was last taken (or the forwarder started) */
	int64_t sent_time; /* what the last heartbeat carried */
	uint64_t sent_ns;
	int idle_sent; /* an idle heartbeat went out and nothing was taken since */
};

/* Formats and parses a heartbeat's header value. parse returns 0, -1 when malformed. */
int ag__wm_heartbeat_format(char *buf, size_t cap, uint32_t part, int64_t time, int idle);
int ag__wm_heartbeat_parse(const void *v, size_t len, uint32_t *part, int64_t *time, int *idle);

/*
 * A forward's faustc-src header value: its source partition, source offset and (time not
 * INT64_MIN) the source partition's progress. Written in binary: the version byte
 * AG__FWD_SRC_V1, then the partition as 4 bytes and the offset and progress as 8 bytes,
 * big-endian two's complement; 13 bytes without progress, 21 with it. Readers also take the
 * text form earlier versions wrote, "PARTITION:OFFSET[:PROGRESS]" in decimal (a boundary
 * topic may still hold it after an upgrade): it starts with a digit, never with the version
 * byte.
 */
#define AG__FWD_SRC_V1 0xfa
#define AG__FWD_SRC_MAX 21
/* Writes the binary form into buf (AG__FWD_SRC_MAX bytes). Returns its length. */
size_t ag__fwd_src_format(uint8_t *buf, int32_t part, int64_t off, int64_t time);
/*
 * Reads either form. Returns 0 (*time INT64_MIN when it carries no progress), -1 when it is
 * malformed (a wrong version or length, text that is not the form, a partition outside
 * 0..1,000,000): the record is then not taken as a forward, as before.
 */
int ag__fwd_src_parse(const void *v, size_t len, int32_t *part, int64_t *off, int64_t *time);

#endif
