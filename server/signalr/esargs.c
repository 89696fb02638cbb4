/*
 * The admin routes' request bodies and answers that need no state of esadmin.c (es.h): a JSON
 * body's members, times and stream references (a 400 is answered when one is wrong), an
 * association's request and its answer. IO thread.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/codec.h"
#include "proto/json.h"
#include "server/signalr/es.h"
#include "util/time.h"
#include "util/uuid.h"

/* Guid.Empty: what a .NET client sends for a StreamId it did not set */
#define HS_NIL_GUID "00000000-0000-0000-0000-000000000000"

/* The JSON body as an object: false after a 400. */
bool hs_esa_body_object(hs_conn_t *c, hs_json_span_t *obj)
{
    char why[96];
    size_t blen;
    const char *body = hs_conn_body(c, &blen);
    if (!blen || hs_json_parse(body, blen, obj, why, sizeof why)) {
        hs_conn_error(c, 400, "BadRequest", "the body must be a JSON object%s%s", blen ? ": " : "",
                      blen ? why : "");
        return false;
    }
    if (obj->type != HS_JSON_OBJECT) {
        hs_conn_error(c, 400, "BadRequest", "the body must be a JSON object");
        return false;
    }
    return true;
}

/* An optional member: absent or null gives false with *v untouched. */
bool hs_esa_member(const hs_json_span_t *obj, const char *name, hs_json_span_t *v)
{
    return hs_json_object_get(obj, name, true, v) && v->type != HS_JSON_NULL;
}

bool hs_esa_time_member(hs_conn_t *c, const hs_json_span_t *obj, const char *name, int64_t *us)
{
    hs_json_span_t v;
    if (!hs_esa_member(obj, name, &v))
        return true;
    char s[64];
    long n = v.type == HS_JSON_STRING ? hs_json_unescape(&v, s, sizeof s) : -1;
    if (n < 0 || !hs_parse_iso_time(s, (size_t)n, us)) {
        hs_conn_error(c, 400, "BadRequest", "%s must be a date and time (ISO 8601)", name);
        return false;
    }
    return true;
}

void hs_esa_entry_free(hs_ingest_t *e)
{
    if (e->es) {
        free(e->es->refs);
        free(e->es);
    }
    hs_ingest_free(e);
}

static const char *ref_text(const hs_es_ref_t *r, int *len)
{
    if (r->len) {
        *len = (int)(r->len > 300 ? 300 : r->len);
        return r->name;
    }
    *len = 36;
    return r->guid;
}

void hs_esa_associated(hs_conn_t *c, hs_ingest_t *e)
{
    hs_es_op_t *op = e->es;
    int fl = 0;
    const char *f = op->failed >= 0 ? ref_text(&op->refs[op->failed], &fl) : "";
    switch (e->status) {
    case 0: {
        char b[48];
        int n = snprintf(b, sizeof b, "\"%s\"", op->target_guid);
        hs_conn_respond(c, 200, "application/json", b, (size_t)n, NULL, NULL);
        return;
    }
    case HS_ENOENT:
        hs_conn_error(c, 404, "NotFound", "The %sstream %.*s does not exist.",
                      op->failed > 0 ? "associated " : "", fl, f);
        return;
    case HS_ECONFLICT:
        hs_conn_error(c, 409, "Conflict",
                      "linking %.*s into the stream would make a cycle: its events already flow "
                      "from that stream",
                      fl, f);
        return;
    case HS_ETOOLARGE:
        if (op->failed > 0)
            hs_conn_error(c, 413, "TooLarge",
                          "%.*s has more than %d events or %zu MiB to backfill at once", fl, f,
                          HS_ES_BACKFILL_EVENTS, HS_ES_BACKFILL_BYTES >> 20);
        else
            hs_conn_error(c, 413, "TooLarge", "a database holds at most %d links", HS_ES_LINKS_MAX);
        return;
    default:
        hs_conn_error(c, 503, "Unavailable", "nothing was linked: %s", hs_strerror(e->status));
    }
}

/* A stream a request names: {name} or {streamId}; false after a 400. */
bool hs_esa_ref(hs_conn_t *c, const hs_json_span_t *obj, hs_es_ref_t *r, bool create)
{
    hs_json_span_t v;
    char raw[HS_NAME_MAX * 2 + 2];
    if (hs_esa_member(obj, "name", &v) && v.type == HS_JSON_STRING) {
        long n = hs_json_unescape(&v, raw, sizeof raw);
        size_t a = 0, b = n < 0 ? 0 : (size_t)n;
        while (a < b && isspace((unsigned char)raw[a]))
            a++;
        while (b > a && isspace((unsigned char)raw[b - 1]))
            b--;
        if (b > a) {
            if (n < 0 || b - a > HS_NAME_MAX ||
                (create ? hs_stream_name_check_publish(raw + a, b - a)
                        : hs_stream_name_check(raw + a, b - a)) ||
                raw[a] == '$') {
                hs_conn_error(c, 400, "BadRequest", "invalid stream name");
                return false;
            }
            memcpy(r->name, raw + a, b - a);
            r->name[b - a] = '\0';
            r->len = (uint32_t)(b - a);
            return true;
        }
    }
    char g[48];
    long n = hs_esa_member(obj, "streamId", &v) && v.type == HS_JSON_STRING
                 ? hs_json_unescape(&v, g, sizeof g)
                 : -1;
    if (n < 0 || !hs_uuid_parse(g, (size_t)n, r->guid) || !strcmp(r->guid, HS_NIL_GUID)) {
        hs_conn_error(c, 400, "BadRequest",
                      "a stream is named by \"name\" or \"streamId\" (a GUID)");
        return false;
    }
    return true;
}

/* POST streams/associate {name? | streamId?, existing?, associatedStreams: [{name? | streamId?}],
 * backfill?}: the writer's operation, or NULL once a 400 (or 503) was answered. */
hs_es_op_t *hs_esa_associate_op(hs_conn_t *c)
{
    hs_json_span_t obj, v, list, item;
    if (!hs_esa_body_object(c, &obj))
        return NULL;
    if (!hs_esa_member(&obj, "associatedStreams", &list) || list.type != HS_JSON_ARRAY ||
        hs_json_array_len(&list) < 1 || hs_json_array_len(&list) > HS_ES_REFS_MAX - 1) {
        hs_conn_error(c, 400, "BadRequest", "associatedStreams must list 1 to %d streams",
                      HS_ES_REFS_MAX - 1);
        return NULL;
    }
    hs_es_op_t *op = calloc(1, sizeof(*op));
    size_t nrefs = 1 + hs_json_array_len(&list);
    hs_es_ref_t *refs = op ? calloc(nrefs, sizeof(*refs)) : NULL;
    if (!refs) {
        free(op);
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return NULL;
    }
    op->refs = refs;
    op->nrefs = nrefs;
    op->existing = hs_esa_member(&obj, "existing", &v) && v.type == HS_JSON_TRUE;
    op->backfill = hs_esa_member(&obj, "backfill", &v) && v.type == HS_JSON_TRUE;
    bool ok = hs_esa_ref(c, &obj, &refs[0], !op->existing);
    if (ok && !op->existing && !refs[0].len) {
        hs_conn_error(c, 400, "BadRequest", "a new stream needs a \"name\" (or set \"existing\")");
        ok = false;
    }
    size_t pos = 0;
    for (size_t i = 1; ok && i < nrefs; i++) {
        hs_json_array_next(&list, &pos, &item);
        if (item.type != HS_JSON_OBJECT) {
            hs_conn_error(c, 400, "BadRequest", "associatedStreams holds objects");
            ok = false;
        } else {
            ok = hs_esa_ref(c, &item, &refs[i], false);
        }
    }
    if (!ok) {
        free(refs);
        free(op);
        return NULL;
    }
    return op;
}
