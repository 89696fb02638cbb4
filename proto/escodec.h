/*
 * The event forms of /eventstreamhub, the drop-in for AspNetCore.SignalR.EventStream.
 *
 * In: the seed's EventModel objects (member names matched ignoring case, as its JSON binder
 * does) become an ordinary append. Such an event is stored as
 *   type      its Type (a null or empty Type is stored as "eventstream" and delivered as null)
 *   data      an object of the seed's payload members exactly as sent: Description, Data,
 *             Base64StringData, JsonData, MetaData, Base64StringMetaData (each only when not
 *             null), IsJson and IsBase64String, and "Type": null when the Type was null
 *   metadata  {"$format":"eventstream"}
 * so /hub, SSE and the HTTP API show it like any other event, and nothing is lost for
 * /eventstreamhub's subscribers.
 *
 * Out: a committed event (its EventRecord JSON, from any front end) becomes the seed's
 * PascalCase object, in the order System.Text.Json wrote it: Id (the global position), EventId,
 * OriginalEventId (metadata "$originalEventId" of a copy made by a stream association, else
 * null), CreatedAt, Description, Type, Data, Base64StringData, JsonData, MetaData,
 * Base64StringMetaData, IsJson, IsBase64String, StreamId (hs_uuid_of_name of the stream),
 * StreamName. An event published elsewhere arrives with its data as JsonData text and IsJson
 * true. No I/O; any thread.
 */
#ifndef HS_ESCODEC_H
#define HS_ESCODEC_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/json.h"
#include "storage/writer.h"
#include "util/buf.h"

/* The type stored for an event whose Type was null or empty. */
#define HS_ES_NULL_TYPE "eventstream"

/*
 * Parses Publish's events argument (an array of EventModel objects, or one object) into a new
 * append entry for `stream` with e->fold set. Returns 0 with *out, HS_EINVAL with a reason in
 * why (a member of the wrong type, Data or MetaData not base64, a Type over 200 bytes, no
 * events), HS_ETOOLARGE when one event is over max_event bytes, HS_ENOMEM.
 */
int hs_es_parse_events(const hs_json_span_t *arg, const char *stream, size_t stream_len,
                       size_t max_event, hs_ingest_t **out, char *why, size_t whylen);

/* Appends the PascalCase object of an event from its EventRecord JSON to out (camelCase member
 * names when camel: the admin routes' JSON, as ASP.NET's controllers write it): 0, HS_EINVAL
 * (not an EventRecord), HS_ENOMEM. */
int hs_es_render(const char *record, size_t len, bool camel, hs_buf_t *out);

#endif
