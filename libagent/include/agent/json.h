/*
 * JSON access for events of topics whose value codec is AG_CODEC_JSON. The parser is
 * jansson (Debian's libjansson); values are jansson json_t trees.
 */
#ifndef AGENT_JSON_H
#define AGENT_JSON_H

#include <jansson.h>
#include <agent/types.h>

struct ag_event;

/*
 * The event's value parsed as JSON, parsed on first use. Borrowed: owned by the event,
 * valid until the next ag_stream_next. NULL when the value is not valid JSON.
 */
json_t *ag_event_json(struct ag_event *ev);

/*
 * Serializes `value` compactly into a buffer the caller frees with free().
 * Returns 0 and sets *out, or -ENOMEM.
 */
int ag_json_dump(const json_t *value, struct ag_bytes *out);

#endif
