/* The event forms of /eventstreamhub (see escodec.h). */
#include "proto/escodec.h"

#include <stdio.h>
#include <string.h>

#include "proto/codec.h"
#include "util/uuid.h"

#define ES_FORMAT "{\"$format\":\"eventstream\"}"

/* The string members, in the order they are stored and delivered. */
enum { F_DESCRIPTION, F_DATA, F_B64DATA, F_JSONDATA, F_METADATA, F_B64METADATA, F_NSTR };
static const char *const str_name[F_NSTR] = {
    "Description", "Data", "Base64StringData", "JsonData", "MetaData", "Base64StringMetaData",
};

typedef struct model {
    hs_json_span_t type; /* HS_JSON_NULL when absent */
    hs_json_span_t str[F_NSTR];
    bool is_json, is_b64;
} model_t;

/* Standard base64 with padding, as .NET writes and reads byte[]. */
static bool base64_ok(const hs_json_span_t *s)
{
    if (s->n < 2)
        return false;
    const char *p = s->p + 1;
    size_t n = s->n - 2, pad = 0;
    if (n % 4)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '=') {
            if (i < n - 2)
                return false;
            pad++;
            continue;
        }
        if (pad || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '+' || c == '/'))
            return false;
    }
    return true;
}

static int read_model(const hs_json_span_t *obj, size_t idx, model_t *m, char *why, size_t whylen)
{
    memset(m, 0, sizeof(*m));
    m->type.type = HS_JSON_NULL;
    for (int i = 0; i < F_NSTR; i++)
        m->str[i].type = HS_JSON_NULL;
    if (obj->type != HS_JSON_OBJECT) {
        snprintf(why, whylen, "event %zu is not an object", idx);
        return HS_EINVAL;
    }
    size_t pos = 0;
    hs_json_span_t k, v;
    while (hs_json_object_next(obj, &pos, &k, &v)) {
        if (hs_json_string_eq(&k, "Type", true)) {
            if (v.type != HS_JSON_STRING && v.type != HS_JSON_NULL)
                goto bad_type;
            m->type = v;
            continue;
        }
        if (hs_json_string_eq(&k, "IsJson", true) ||
            hs_json_string_eq(&k, "IsBase64String", true)) {
            if (v.type != HS_JSON_TRUE && v.type != HS_JSON_FALSE && v.type != HS_JSON_NULL)
                goto bad_type;
            bool on = v.type == HS_JSON_TRUE;
            if (hs_json_string_eq(&k, "IsJson", true))
                m->is_json = on;
            else
                m->is_b64 = on;
            continue;
        }
        for (int i = 0; i < F_NSTR; i++) {
            if (!hs_json_string_eq(&k, str_name[i], true))
                continue;
            if (v.type != HS_JSON_STRING && v.type != HS_JSON_NULL)
                goto bad_type;
            if ((i == F_DATA || i == F_METADATA) && v.type == HS_JSON_STRING && !base64_ok(&v)) {
                snprintf(why, whylen, "event %zu: \"%s\" must be base64 (a byte array)", idx,
                         str_name[i]);
                return HS_EINVAL;
            }
            m->str[i] = v;
        }
        /* other members (StreamId, StreamName, ...) are ignored, as the seed's binder does */
        continue;
    bad_type:
        snprintf(why, whylen, "event %zu: member \"%.*s\" has the wrong type", idx,
                 (int)(k.n > 2 ? (k.n - 2 > 40 ? 40 : k.n - 2) : 0), k.p + 1);
        return HS_EINVAL;
    }
    return 0;
}

/* What read_model's event takes in the arena at most: type, data object, metadata, id. */
static size_t model_room(const hs_json_span_t *obj)
{
    return obj->n + 256 + sizeof(ES_FORMAT) + 37 + sizeof(HS_ES_NULL_TYPE);
}

static bool has_ctl(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

static char *put(char *a, const char *s, size_t n)
{
    memcpy(a, s, n);
    return a + n;
}

int hs_es_parse_events(const hs_json_span_t *arg, const char *stream, size_t stream_len,
                       size_t max_event, hs_ingest_t **out, char *why, size_t whylen)
{
    *out = NULL;
    size_t n = arg->type == HS_JSON_ARRAY    ? hs_json_array_len(arg)
               : arg->type == HS_JSON_OBJECT ? 1
                                             : 0;
    if (n == 0) {
        snprintf(why, whylen, "no events");
        return HS_EINVAL;
    }
    size_t arena_sz = stream_len + 1, pos = 0;
    hs_json_span_t obj;
    for (size_t i = 0; i < n; i++) {
        obj = *arg;
        if (arg->type == HS_JSON_ARRAY)
            hs_json_array_next(arg, &pos, &obj);
        arena_sz += model_room(&obj);
    }
    char *arena;
    hs_ingest_t *e = hs_ingest_alloc((uint32_t)n, arena_sz, &arena);
    if (!e)
        return HS_ENOMEM;
    memcpy(arena, stream, stream_len);
    arena[stream_len] = '\0';
    e->stream = arena;
    e->stream_len = (uint32_t)stream_len;
    e->kind = HS_INGEST_APPEND;
    e->fold = true;
    arena += stream_len + 1;
    pos = 0;
    for (size_t i = 0; i < n; i++) {
        obj = *arg;
        if (arg->type == HS_JSON_ARRAY)
            hs_json_array_next(arg, &pos, &obj);
        model_t m;
        int rc = read_model(&obj, i, &m, why, whylen);
        hs_ingest_event_t *ev = &e->events[i];
        bool null_type = true;
        if (rc == 0 && m.type.type == HS_JSON_STRING) {
            long l = hs_json_unescape(&m.type, arena, HS_TYPE_MAX + 1);
            if (l < 0 || l > HS_TYPE_MAX) {
                snprintf(why, whylen, "event %zu: \"Type\" must be at most %d bytes", i,
                         HS_TYPE_MAX);
                rc = HS_EINVAL;
            } else if (has_ctl(arena, (size_t)l)) {
                snprintf(why, whylen, "event %zu: \"Type\" contains a control character", i);
                rc = HS_EINVAL;
            } else if (l > 0) {
                null_type = false;
                ev->type = arena;
                ev->type_len = (uint32_t)l;
                arena[l] = '\0';
                arena += l + 1;
            }
        }
        if (rc) {
            hs_ingest_free(e);
            return rc;
        }
        if (null_type) {
            ev->type = arena;
            ev->type_len = (uint32_t)strlen(HS_ES_NULL_TYPE);
            arena = put(arena, HS_ES_NULL_TYPE, sizeof(HS_ES_NULL_TYPE));
        }
        /* data: the members as sent */
        char *d = arena;
        arena = put(arena, "{", 1);
        if (null_type && m.type.type == HS_JSON_NULL)
            arena = put(arena, "\"Type\":null,", 12);
        else if (null_type)
            arena = put(arena, "\"Type\":\"\",", 10);
        for (int f = 0; f < F_NSTR; f++) {
            if (m.str[f].type != HS_JSON_STRING)
                continue;
            arena += sprintf(arena, "\"%s\":", str_name[f]);
            arena += hs_json_compact(&m.str[f], arena);
            *arena++ = ',';
        }
        arena += sprintf(arena, "\"IsJson\":%s,\"IsBase64String\":%s}",
                         m.is_json ? "true" : "false", m.is_b64 ? "true" : "false");
        ev->data = d;
        ev->data_len = (uint32_t)(arena - d);
        ev->metadata = arena;
        ev->metadata_len = sizeof(ES_FORMAT) - 1;
        arena = put(arena, ES_FORMAT, sizeof(ES_FORMAT) - 1);
        hs_uuid7(arena);
        ev->id = arena;
        ev->id_len = 36;
        arena += 37;
        size_t sz = (size_t)ev->type_len + ev->data_len + ev->metadata_len + ev->id_len;
        if (sz > max_event) {
            snprintf(why, whylen, "event %zu is %zu bytes, over the %zu-byte limit", i, sz,
                     max_event);
            hs_ingest_free(e);
            return HS_ETOOLARGE;
        }
    }
    e->nevents = (uint32_t)n;
    *out = e;
    return 0;
}

/* ---- out ---- */

static int put_str(hs_buf_t *out, const char *s, size_t n)
{
    return hs_buf_put(out, s, n);
}

/* A member `,"Name":` (`,"name":` in camel case) followed by a raw JSON value (or null). */
static int member(hs_buf_t *out, const char *name, const hs_json_span_t *v, bool camel)
{
    char head[48];
    int n = snprintf(head, sizeof head, ",\"%c%s\":", camel ? name[0] + 32 : name[0], name + 1);
    int rc = put_str(out, head, (size_t)n);
    if (rc)
        return rc;
    if (!v || v->type == HS_JSON_INVALID)
        return put_str(out, "null", 4);
    if (hs_buf_reserve(out, v->n))
        return HS_ENOMEM;
    out->len += hs_json_compact(v, (char *)out->p + out->len);
    return 0;
}

int hs_es_render(const char *record, size_t len, bool camel, hs_buf_t *out)
{
    hs_json_span_t root, stream = {0}, position = {0}, id = {0}, type = {0}, time = {0}, data = {0},
                         meta = {0};
    char why[64];
    if (hs_json_parse(record, len, &root, why, sizeof why) || root.type != HS_JSON_OBJECT)
        return HS_EINVAL;
    if (!hs_json_object_get(&root, "stream", false, &stream) ||
        !hs_json_object_get(&root, "position", false, &position) ||
        !hs_json_object_get(&root, "id", false, &id) ||
        !hs_json_object_get(&root, "type", false, &type) ||
        !hs_json_object_get(&root, "time", false, &time) ||
        !hs_json_object_get(&root, "data", false, &data) || stream.type != HS_JSON_STRING ||
        position.type != HS_JSON_NUMBER || id.type != HS_JSON_STRING ||
        time.type != HS_JSON_STRING || time.n != 29 || time.p[27] != 'Z')
        return HS_EINVAL; /* time: "YYYY-MM-DDTHH:MM:SS.ffffffZ", quoted */
    hs_json_object_get(&root, "metadata", false, &meta);
    hs_json_span_t fmt = {0}, orig = {0};
    bool es = false;
    if (meta.type == HS_JSON_OBJECT) {
        es = hs_json_object_get(&meta, "$format", false, &fmt) &&
             hs_json_string_eq(&fmt, "eventstream", false) && data.type == HS_JSON_OBJECT;
        if (!hs_json_object_get(&meta, "$originalEventId", false, &orig) ||
            orig.type != HS_JSON_STRING)
            orig.type = HS_JSON_INVALID;
    }
    int rc = put_str(out, camel ? "{\"id\":" : "{\"Id\":", 6);
    if (!rc)
        rc = put_str(out, position.p, position.n);
    if (!rc)
        rc = member(out, "EventId", &id, camel);
    if (!rc)
        rc = member(out, "OriginalEventId", &orig, camel);
    /* "2026-11-22T05:30:00.123456Z" as DateTimeOffset's round-trip form */
    if (!rc) {
        char t[64];
        int n = snprintf(t, sizeof t, ",\"%s\":\"%.*s0+00:00\"", camel ? "createdAt" : "CreatedAt",
                         (int)(time.n - 3), time.p + 1);
        rc = put_str(out, t, (size_t)n);
    }
    hs_json_span_t v[F_NSTR] = {0}, t = type, is_json = {0}, is_b64 = {0};
    if (es) {
        hs_json_span_t tv;
        if (hs_json_object_get(&data, "Type", false, &tv))
            t = tv.type == HS_JSON_NULL ? (hs_json_span_t){0} : tv;
        for (int f = 0; f < F_NSTR; f++)
            hs_json_object_get(&data, str_name[f], false, &v[f]);
        hs_json_object_get(&data, "IsJson", false, &is_json);
        hs_json_object_get(&data, "IsBase64String", false, &is_b64);
    }
    if (!rc)
        rc = member(out, "Description", &v[F_DESCRIPTION], camel);
    if (!rc)
        rc = member(out, "Type", &t, camel);
    if (!rc)
        rc = member(out, "Data", &v[F_DATA], camel);
    if (!rc)
        rc = member(out, "Base64StringData", &v[F_B64DATA], camel);
    if (!rc && es) {
        rc = member(out, "JsonData", &v[F_JSONDATA], camel);
    } else if (!rc) {
        /* an event published elsewhere: its data as JSON text */
        size_t n = hs_json_quoted_len(data.p, data.n);
        rc = put_str(out, camel ? ",\"jsonData\":" : ",\"JsonData\":", 12);
        if (!rc && hs_buf_reserve(out, n))
            rc = HS_ENOMEM;
        if (!rc)
            out->len += hs_json_quote(data.p, data.n, (char *)out->p + out->len);
    }
    if (!rc)
        rc = member(out, "MetaData", &v[F_METADATA], camel);
    if (!rc)
        rc = member(out, "Base64StringMetaData", &v[F_B64METADATA], camel);
    if (!rc) {
        bool j = es ? is_json.type == HS_JSON_TRUE : true, b = is_b64.type == HS_JSON_TRUE;
        char tail[64];
        int n = snprintf(tail, sizeof tail,
                         camel ? ",\"isJson\":%s,\"isBase64String\":%s"
                               : ",\"IsJson\":%s,\"IsBase64String\":%s",
                         j ? "true" : "false", b ? "true" : "false");
        rc = put_str(out, tail, (size_t)n);
    }
    char name[HS_NAME_MAX + 1];
    long nl = hs_json_unescape(&stream, name, sizeof name);
    if (!rc && (nl < 0 || nl > HS_NAME_MAX))
        rc = HS_EINVAL;
    if (!rc) {
        char guid[37], g[96];
        hs_uuid_of_name(name, (size_t)nl, guid);
        int n = snprintf(g, sizeof g,
                         camel ? ",\"streamId\":\"%s\",\"streamName\":"
                               : ",\"StreamId\":\"%s\",\"StreamName\":",
                         guid);
        rc = put_str(out, g, (size_t)n);
    }
    if (!rc)
        rc = put_str(out, stream.p, stream.n);
    if (!rc)
        rc = put_str(out, "}", 1);
    return rc;
}
