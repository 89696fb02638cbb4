/* The codec (see codec.h). */
#include "util/uuid.h"
#include "util/time.h"
#include "proto/codec.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "proto/json.h"
#include "util/utf8.h"

static bool has_ctl(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

int hs_stream_name_check(const char *name, size_t len)
{
    if (len == 0 || len > HS_NAME_MAX || has_ctl(name, len) || memchr(name, '/', len) ||
        !hs_utf8_valid(name, len))
        return HS_EINVAL;
    return 0;
}

int hs_stream_name_check_publish(const char *name, size_t len)
{
    int rc = hs_stream_name_check(name, len);
    if (rc)
        return rc;
    return name[0] == '$' ? HS_ERESERVED : 0;
}

/* ---- parsing ---- */

typedef struct fields {
    hs_json_span_t type, data, metadata, id;
    bool has_data, has_metadata, has_id;
} fields_t;

static int event_fields(const hs_json_span_t *obj, fields_t *f, size_t idx, char *why,
                        size_t whylen)
{
    memset(f, 0, sizeof(*f));
    if (obj->type != HS_JSON_OBJECT) {
        snprintf(why, whylen, "event %zu is not an object", idx);
        return HS_EINVAL;
    }
    if (!hs_json_object_get(obj, "type", true, &f->type) || f->type.type != HS_JSON_STRING) {
        snprintf(why, whylen, "event %zu: \"type\" (a string) is required", idx);
        return HS_EINVAL;
    }
    f->has_data = hs_json_object_get(obj, "data", true, &f->data);
    f->has_metadata = hs_json_object_get(obj, "metadata", true, &f->metadata);
    if (f->has_metadata && f->metadata.type == HS_JSON_NULL)
        f->has_metadata = false;
    if (f->has_metadata && f->metadata.type != HS_JSON_OBJECT) {
        snprintf(why, whylen, "event %zu: \"metadata\" must be an object", idx);
        return HS_EINVAL;
    }
    f->has_id = hs_json_object_get(obj, "id", true, &f->id);
    if (f->has_id && f->id.type == HS_JSON_NULL)
        f->has_id = false;
    if (f->has_id && f->id.type != HS_JSON_STRING) {
        snprintf(why, whylen, "event %zu: \"id\" must be a string", idx);
        return HS_EINVAL;
    }
    return 0;
}

/* Copies a validated type or id string into the arena; checks its length and characters. */
static int put_string(const hs_json_span_t *s, size_t max, const char *what, size_t idx,
                      char **arena, const char **out, uint32_t *out_len, char *why, size_t whylen)
{
    long l = hs_json_unescape(s, *arena, max + 1);
    if (l < 0 || (size_t)l > max || l == 0) {
        snprintf(why, whylen, "event %zu: \"%s\" must be 1 to %zu bytes", idx, what, max);
        return HS_EINVAL;
    }
    if (has_ctl(*arena, (size_t)l)) {
        snprintf(why, whylen, "event %zu: \"%s\" contains a control character", idx, what);
        return HS_EINVAL;
    }
    *out = *arena;
    *out_len = (uint32_t)l;
    (*arena)[l] = '\0';
    *arena += l + 1;
    return 0;
}

int hs_codec_parse_publish(const char *body, size_t len, const char *stream, size_t stream_len,
                           size_t max_event, hs_ingest_t **out, char *why, size_t whylen)
{
    hs_json_span_t root;
    char jwhy[96];
    *out = NULL;
    if (hs_json_parse(body, len, &root, jwhy, sizeof(jwhy))) {
        snprintf(why, whylen, "malformed JSON: %s", jwhy);
        return HS_EINVAL;
    }
    size_t n;
    if (root.type == HS_JSON_OBJECT)
        n = 1;
    else if (root.type == HS_JSON_ARRAY)
        n = hs_json_array_len(&root);
    else {
        snprintf(why, whylen, "the body must be an event object or an array of events");
        return HS_EINVAL;
    }
    if (n == 0) {
        snprintf(why, whylen, "no events");
        return HS_EINVAL;
    }
    /* every string lands in the arena no larger than its span, plus a generated id and NULs */
    size_t arena_sz = len + stream_len + 1 + n * (37 + 8);
    char *arena;
    hs_ingest_t *e = hs_ingest_alloc((uint32_t)n, arena_sz, &arena);
    if (!e)
        return HS_ENOMEM;
    memcpy(arena, stream, stream_len);
    arena[stream_len] = '\0';
    e->stream = arena;
    e->stream_len = (uint32_t)stream_len;
    arena += stream_len + 1;
    e->kind = HS_INGEST_APPEND;

    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        hs_json_span_t obj = root;
        if (root.type == HS_JSON_ARRAY)
            hs_json_array_next(&root, &pos, &obj);
        fields_t f;
        int rc = event_fields(&obj, &f, i, why, whylen);
        hs_ingest_event_t *ev = &e->events[i];
        if (!rc)
            rc = put_string(&f.type, HS_TYPE_MAX, "type", i, &arena, &ev->type, &ev->type_len, why,
                            whylen);
        if (!rc && f.has_id) {
            rc = put_string(&f.id, HS_ID_MAX, "id", i, &arena, &ev->id, &ev->id_len, why, whylen);
            ev->client_id = true;
        }
        if (rc) {
            hs_ingest_free(e);
            return rc;
        }
        if (!f.has_id) {
            hs_uuid7(arena);
            ev->id = arena;
            ev->id_len = 36;
            arena += 37;
        }
        if (f.has_data) {
            ev->data = arena;
            ev->data_len = (uint32_t)hs_json_compact(&f.data, arena);
            arena += ev->data_len;
        } else {
            memcpy(arena, "null", 4);
            ev->data = arena;
            ev->data_len = 4;
            arena += 4;
        }
        if (f.has_metadata) {
            ev->metadata = arena;
            ev->metadata_len = (uint32_t)hs_json_compact(&f.metadata, arena);
            arena += ev->metadata_len;
        }
        size_t sz = (size_t)ev->type_len + ev->data_len + ev->metadata_len + ev->id_len;
        if (sz > max_event) {
            snprintf(why, whylen, "event %zu is %zu bytes, over the %zu-byte limit", i, sz,
                     max_event);
            hs_ingest_free(e);
            return HS_ETOOLARGE;
        }
    }
    *out = e;
    return 0;
}

int hs_codec_build_publish(const char *stream, const hs_event_t *events, size_t n, size_t max_event,
                           hs_ingest_t **out, char *why, size_t whylen)
{
    size_t stream_len = strlen(stream);
    size_t arena_sz = stream_len + 1;
    *out = NULL;
    if (n == 0) {
        snprintf(why, whylen, "no events");
        return HS_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const hs_event_t *ev = &events[i];
        arena_sz += (ev->type ? strlen(ev->type) : 0) + (ev->data ? strlen(ev->data) : 4) +
                    (ev->metadata ? strlen(ev->metadata) : 0) + (ev->id ? strlen(ev->id) : 36) + 8;
    }
    char *arena;
    hs_ingest_t *e = hs_ingest_alloc((uint32_t)n, arena_sz, &arena);
    if (!e)
        return HS_ENOMEM;
    memcpy(arena, stream, stream_len + 1);
    e->stream = arena;
    e->stream_len = (uint32_t)stream_len;
    arena += stream_len + 1;
    e->kind = HS_INGEST_APPEND;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const hs_event_t *in = &events[i];
        hs_ingest_event_t *ev = &e->events[i];
        size_t tl = in->type ? strlen(in->type) : 0;
        if (tl == 0 || tl > HS_TYPE_MAX || has_ctl(in->type, tl)) {
            snprintf(why, whylen,
                     "event %zu: type must be 1 to %d bytes without control "
                     "characters",
                     i, HS_TYPE_MAX);
            rc = HS_EINVAL;
            break;
        }
        memcpy(arena, in->type, tl + 1);
        ev->type = arena;
        ev->type_len = (uint32_t)tl;
        arena += tl + 1;
        if (in->id) {
            size_t il = strlen(in->id);
            if (il == 0 || il > HS_ID_MAX || has_ctl(in->id, il)) {
                snprintf(why, whylen, "event %zu: id must be 1 to %d bytes", i, HS_ID_MAX);
                rc = HS_EINVAL;
                break;
            }
            memcpy(arena, in->id, il + 1);
            ev->id_len = (uint32_t)il;
            ev->client_id = true;
        } else {
            hs_uuid7(arena);
            ev->id_len = 36;
        }
        ev->id = arena;
        arena += ev->id_len + 1;
        hs_json_span_t sp;
        const char *data = in->data ? in->data : "null";
        char jwhy[96];
        if (hs_json_parse(data, strlen(data), &sp, jwhy, sizeof(jwhy))) {
            snprintf(why, whylen, "event %zu: data is not JSON: %s", i, jwhy);
            rc = HS_EINVAL;
            break;
        }
        ev->data = arena;
        ev->data_len = (uint32_t)hs_json_compact(&sp, arena);
        arena += ev->data_len;
        if (in->metadata) {
            if (hs_json_parse(in->metadata, strlen(in->metadata), &sp, jwhy, sizeof(jwhy)) ||
                sp.type != HS_JSON_OBJECT) {
                snprintf(why, whylen, "event %zu: metadata must be a JSON object", i);
                rc = HS_EINVAL;
                break;
            }
            ev->metadata = arena;
            ev->metadata_len = (uint32_t)hs_json_compact(&sp, arena);
            arena += ev->metadata_len;
        }
        if ((size_t)ev->type_len + ev->data_len + ev->metadata_len + ev->id_len > max_event) {
            snprintf(why, whylen, "event %zu is over the %zu-byte limit", i, max_event);
            rc = HS_ETOOLARGE;
        }
    }
    if (rc) {
        hs_ingest_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

hs_ingest_t *hs_codec_build_admin(hs_ingest_kind_t kind, const char *stream, size_t len)
{
    char *arena;
    hs_ingest_t *e = hs_ingest_alloc(0, len + 1, &arena);
    if (!e)
        return NULL;
    memcpy(arena, stream, len);
    arena[len] = '\0';
    e->stream = arena;
    e->stream_len = (uint32_t)len;
    e->kind = kind;
    return e;
}

/* ---- encoding ---- */

static size_t put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return n;
}

static size_t put_lit(char *o, const char *s)
{
    return put(o, s, strlen(s));
}

static size_t put_i64(char *out, int64_t v)
{
    char tmp[24];
    int k = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[k++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t o = 0;
    if (v < 0)
        out[o++] = '-';
    while (k)
        out[o++] = tmp[--k];
    return o;
}

size_t hs_record_json_len(const hs_record_t *rec)
{
    return 120 + hs_json_quoted_len(rec->stream, rec->stream_len) +
           hs_json_quoted_len(rec->event_id, rec->event_id_len) +
           hs_json_quoted_len(rec->type, rec->type_len) + rec->data_len +
           (rec->metadata ? rec->metadata_len : 2) + 32;
}

size_t hs_record_json(const hs_record_t *rec, char *out)
{
    char ts[32];
    size_t o = 0;
    o += put_lit(out + o, "{\"stream\":");
    o += hs_json_quote(rec->stream, rec->stream_len, out + o);
    o += put_lit(out + o, ",\"version\":");
    o += put_i64(out + o, rec->version);
    o += put_lit(out + o, ",\"position\":");
    o += put_i64(out + o, rec->position);
    o += put_lit(out + o, ",\"id\":");
    o += hs_json_quote(rec->event_id, rec->event_id_len, out + o);
    o += put_lit(out + o, ",\"type\":");
    o += hs_json_quote(rec->type, rec->type_len, out + o);
    o += put_lit(out + o, ",\"time\":\"");
    hs_format_time(rec->time_us, ts);
    o += put_lit(out + o, ts);
    o += put_lit(out + o, "\",\"data\":");
    o += put(out + o, rec->data, rec->data_len);
    o += put_lit(out + o, ",\"metadata\":");
    if (rec->metadata)
        o += put(out + o, rec->metadata, rec->metadata_len);
    else
        o += put_lit(out + o, "{}");
    out[o++] = '}';
    return o;
}

hs_block_t *hs_codec_encode(const hs_record_t *rec)
{
    size_t jl = hs_record_json_len(rec);
    /* stream\0 type\0 "event: " type "\ndata: " json "\n\n"\0: the JSON is the SSE
     * block's data line, not a copy of its own */
    size_t extra = rec->stream_len + 1 + rec->type_len + 1 + 7 + rec->type_len + 7 + jl + 3;
    hs_block_t *b = hs_block_alloc(extra);
    if (!b)
        return NULL;
    char *m = b->mem;
    b->kind = HS_BLOCK_EVENT;
    b->version = rec->version;
    b->position = rec->position;
    b->time_us = rec->time_us;
    b->stream_hash = hs_stream_hash(rec->stream, rec->stream_len);
    b->stream = m;
    b->stream_len = (uint32_t)rec->stream_len;
    m += put(m, rec->stream, rec->stream_len);
    *m++ = '\0';
    b->type = m;
    b->type_len = (uint32_t)rec->type_len;
    m += put(m, rec->type, rec->type_len);
    *m++ = '\0';
    b->sse = m;
    m += put_lit(m, "event: ");
    m += put(m, rec->type, rec->type_len);
    m += put_lit(m, "\ndata: ");
    b->json = m;
    b->json_len = (uint32_t)hs_record_json(rec, m);
    m += b->json_len;
    m += put_lit(m, "\n\n");
    b->sse_len = (uint32_t)(m - b->sse);
    *m = '\0';
    return b;
}

hs_block_t *hs_codec_encode_marker(hs_block_kind_t kind, const char *stream, size_t len,
                                   int64_t version)
{
    const char *reason = kind == HS_BLOCK_DELETED ? "deleted" : "closed";
    size_t ql = hs_json_quoted_len(stream, len);
    size_t jl = 32 + ql;
    size_t extra = len + 1 + 6 + 20 + jl + 3;
    hs_block_t *b = hs_block_alloc(extra);
    if (!b)
        return NULL;
    char *m = b->mem;
    b->kind = (uint8_t)kind;
    b->version = version;
    b->stream_hash = hs_stream_hash(stream, len);
    b->stream = m;
    b->stream_len = (uint32_t)len;
    m += put(m, stream, len);
    *m++ = '\0';
    b->type = m;
    m += put_lit(m, "close");
    *m++ = '\0';
    b->type_len = 5;
    b->sse = m;
    m += put_lit(m, "event: close\ndata: ");
    b->json = m;
    m += put_lit(m, "{\"stream\":");
    m += hs_json_quote(stream, len, m);
    m += put_lit(m, ",\"reason\":\"");
    m += put_lit(m, reason);
    m += put_lit(m, "\"}");
    b->json_len = (uint32_t)(m - b->json);
    m += put_lit(m, "\n\n");
    b->sse_len = (uint32_t)(m - b->sse);
    *m = '\0';
    return b;
}

size_t hs_publish_result_json(const hs_ingest_t *e, char *out, size_t cap)
{
    if (cap < 10 + hs_json_quoted_len(e->stream, e->stream_len) + 160)
        return 0; /* a caller's bug: never write past out */
    memcpy(out, "{\"stream\":", 10);
    size_t o = 10 + hs_json_quote(e->stream, e->stream_len, out + 10);
    o += (size_t)snprintf(out + o, cap - o,
                          ",\"firstVersion\":%lld,\"lastVersion\":%lld,\"firstPosition\":%lld,"
                          "\"lastPosition\":%lld}",
                          (long long)e->result.first_version, (long long)e->result.last_version,
                          (long long)e->result.first_position, (long long)e->result.last_position);
    return o;
}
