/* Plain value types shared by every module. */
#ifndef AGENT_TYPES_H
#define AGENT_TYPES_H

#include <stddef.h>
#include <stdint.h>

/*
 * A borrowed byte range. Who owns the memory is said by the function that hands one
 * out; functions that take one copy what they keep.
 */
struct ag_bytes {
	const void *ptr;
	size_t len;
};

/* Builds an ag_bytes over a NUL-terminated string (the NUL is not included). */
#define AG_STR(s) ((struct ag_bytes){(s), __builtin_strlen(s)})

/* Value codecs a topic's keys and values use on the wire. */
enum ag_codec {
	AG_CODEC_RAW = 0, /* bytes as they are */
	AG_CODEC_STRING, /* UTF-8 text, no NUL bytes */
	AG_CODEC_JSON, /* one JSON value (the default for values, as in Faust) */
	AG_CODEC_MSGPACK, /* one msgpack value */
	AG_CODEC_INT64, /* 8 bytes, big-endian two's complement (Kafka's LongSerializer) */
	AG_CODEC_DOUBLE, /* 8 bytes, big-endian IEEE 754 (Kafka's DoubleSerializer) */
	AG_CODEC_CUSTOM = 64, /* first id of the codecs an app registers (ag_app_codec) */
};

/* Log levels, lowest first. */
enum ag_log_level {
	AG_LOG_DEBUG = 0,
	AG_LOG_INFO,
	AG_LOG_WARN,
	AG_LOG_ERROR,
};

#endif
