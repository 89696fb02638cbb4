/*
 * The codec: events in and out of their wire forms.
 *
 * In: a publish body (one EventInput or an array) becomes an ingest entry, validated, with
 * `data` and `metadata` kept as the publisher wrote them (compacted). Out: a committed record
 * becomes a refcounted block holding its EventRecord JSON and its SSE block, encoded once and
 * shared by every subscriber. Also the small value rules every front end shares: stream names,
 * event types, ids, timestamps. No I/O here.
 */
#ifndef HS_CODEC_H
#define HS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringbuf/block.h"
#include "storage/store.h"
#include "storage/writer.h"

#define HS_NAME_MAX 200
#define HS_TYPE_MAX 200
#define HS_ID_MAX   100

/* 0 if `name` may be read or subscribed to; HS_EINVAL if malformed. `$all` is valid. */
int hs_stream_name_check(const char *name, size_t len);
/* 0 if events may be published to it: valid and not reserved (HS_ERESERVED for `$...`). */
int hs_stream_name_check_publish(const char *name, size_t len);

/*
 * Parses a publish body into a new ingest entry (kind APPEND) for `stream`. Events without an id
 * get a generated time-ordered UUID (v7). Returns 0 with *out set, HS_EINVAL with a reason in why
 * (malformed JSON, missing type, ...), HS_ETOOLARGE if one event exceeds max_event bytes,
 * HS_ENOMEM.
 */
int hs_codec_parse_publish(const char *body, size_t len, const char *stream, size_t stream_len,
                           size_t max_event, hs_ingest_t **out, char *why, size_t whylen);

/* Builds an ingest entry from C-API events (validating them the same way). */
int hs_codec_build_publish(const char *stream, const hs_event_t *events, size_t n, size_t max_event,
                           hs_ingest_t **out, char *why, size_t whylen);

/* Builds a close or delete entry. */
hs_ingest_t *hs_codec_build_admin(hs_ingest_kind_t kind, const char *stream, size_t len);

/* Encodes a committed record into a block (refs = 1). NULL on ENOMEM. Thread-safe. */
hs_block_t *hs_codec_encode(const hs_record_t *rec);

/* Encodes a closed/deleted marker: json {"stream":..,"reason":"closed"|"deleted"}, sse
 * "event: close\ndata: <json>\n\n". */
hs_block_t *hs_codec_encode_marker(hs_block_kind_t kind, const char *stream, size_t len,
                                   int64_t version);

/* Room for any PublishResult (and for the close answer, which is shorter): the stream name
 * quoted in the worst case, and four int64 fields with their names. */
#define HS_PUBLISH_RESULT_MAX (6 * HS_NAME_MAX + 160)

/* Writes the PublishResult JSON of a committed append entry ({"stream", "firstVersion",
 * "lastVersion", "firstPosition", "lastPosition"}) into out; returns its length. cap must be at
 * least HS_PUBLISH_RESULT_MAX. */
size_t hs_publish_result_json(const hs_ingest_t *e, char *out, size_t cap);

/* Appends the EventRecord JSON of rec to out (room: hs_record_json_len(rec)); returns length. */
size_t hs_record_json(const hs_record_t *rec, char *out);
size_t hs_record_json_len(const hs_record_t *rec);

#endif
