/*
 * The admin routes of /eventstreamhub under /api/EventStream/ (README, "/eventstreamhub"): the
 * routes of AspNetCore.SignalR.EventStream's EventStreamController with its JSON (camelCase, as
 * ASP.NET's controllers write it), plus what it lacked: pagination, and 4xx JSON errors
 * ({"error", "message"} as everywhere else) instead of 500s carrying an exception. Every route
 * needs the `admin` permission when auth is on.
 *
 *   GET    streams/{guid}            a stream by its GUID
 *   GET    streams/stream/{text}     streams whose name contains text (ASCII case ignored)
 *   POST   streams/search            {streamId?, name?, createdStart?, createdEnd?}
 *   DELETE streams/{id}              a stream by its id, with its events, subscribers and links
 *   GET    events/{streamId}/{guid}  one event
 *   POST   events/search             {streamId, type?, createdStart?, createdEnd?,
 *                                     maxReturnRecords? (50)}
 *   GET    subscribers/{guid}        a subscriber and its cursors
 *   PUT    subscribers/{guid}        replay a range of event Ids to the subscriber (es.c)
 *   POST   streams/associate         link streams into a target (storage/es_stage.c)
 *   POST   subscriptionprocessor     {start?, stop?}: pause or resume /eventstreamhub delivery
 *
 * Lists are pages: ?limit=N (default 100, at most 1000; events/search's maxReturnRecords is its
 * default) and ?after=K, the id (streams) or Id (events) the page goes on after; a full page
 * has a `Link: <...>; rel="next"` header. Reads run on reader threads; the delete and the
 * association go through the writer. IO thread, except run_read (a reader thread).
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "proto/codec.h"
#include "proto/escodec.h"
#include "proto/json.h"
#include "proto/route.h"
#include "ringbuf/budget.h"
#include "server/auth.h"
#include "server/signalr/es.h"
#include "util/time.h"
#include "util/uuid.h"

enum { MSG_READ = HS_NODE_T(HS_T_ESADMIN, 0), MSG_INGEST = HS_NODE_T(HS_T_ESADMIN, 1) };

enum { R_STREAM_GUID, R_STREAM_ID, R_STREAMS, R_EVENT, R_EVENTS, R_SUBSCRIBER, R_REPLAY };

#define LIMIT_DEFAULT 100
#define LIMIT_MAX     1000

typedef struct es_req {
    hs_read_req_t base; /* base.node doubles as the IO inbox node */
    hs_io_t *io;
    hs_conn_t *conn; /* NULL once the connection closed */
    hs_server_t *srv;
    int kind; /* R_* */
    bool then_delete;
    bool pascal; /* events as /eventstreamhub delivers them (R_REPLAY), not camelCase */
    /* arguments */
    char guid[37];
    int64_t id, from_us, to_us, after;
    char text[HS_NAME_MAX + 1];
    size_t text_len;
    size_t limit;
    /* result */
    int status; /* HTTP status; 0 until answered */
    hs_buf_t body;
    size_t charged; /* read budget taken for body */
    size_t n;
    int64_t last; /* the key of the last row (the next page's `after`) */
    char name[HS_STORE_NAME_MAX + 1];
    size_t name_len;
    bool spent, oom;
} es_req_t;

/* Per request state in c->tdata: the read or entry in flight. */
typedef struct admin_conn {
    es_req_t *pending_read;
    hs_ingest_t *pending;
} admin_conn_t;

static admin_conn_t *ac(hs_conn_t *c)
{
    _Static_assert(sizeof(admin_conn_t) <= HS_CONN_TDATA, "tdata too small");
    return (admin_conn_t *)c->tdata;
}

static const hs_transport_t admin_transport;

static void req_free(es_req_t *r)
{
    if (r->charged)
        hs_budget_give(r->srv->read_budget, r->charged);
    hs_buf_free(&r->body);
    free(r);
}

/* ---- values ---- */

/* ---- building the answers (reader thread) ---- */

static bool put(es_req_t *r, const char *s, size_t n)
{
    if (r->spent || r->oom)
        return false;
    if (r->body.len + n > r->body.cap) {
        size_t before = r->body.cap;
        if (hs_buf_reserve(&r->body, n)) {
            r->oom = true;
            return false;
        }
        size_t more = r->body.cap - before;
        if (!hs_budget_take(r->srv->read_budget, more)) {
            r->spent = true;
            return false;
        }
        r->charged += more;
    }
    memcpy(r->body.p + r->body.len, s, n);
    r->body.len += n;
    return true;
}

static bool put_quoted(es_req_t *r, const char *s, size_t n)
{
    char tmp[HS_STORE_NAME_MAX * 6 + 2];
    if (n > HS_STORE_NAME_MAX)
        n = HS_STORE_NAME_MAX;
    return put(r, tmp, hs_json_quote(s, n, tmp));
}

/* An EventStreamModel. */
static bool put_stream(es_req_t *r, const char *name, size_t len, const hs_stream_head_t *h)
{
    char guid[37], created[40], head[160];
    hs_uuid_of_name(name, len, guid);
    hs_format_offset_time(h->created_us, created);
    int n = snprintf(head, sizeof head,
                     "{\"id\":%lld,\"streamId\":\"%s\",\"name\":", (long long)h->id, guid);
    if (!put(r, head, (size_t)n) || !put_quoted(r, name, len))
        return false;
    n = snprintf(head, sizeof head, ",\"createdAt\":\"%s\",\"lastAssociatedEventId\":null}",
                 created);
    return put(r, head, (size_t)n);
}

static int on_stream(void *ctx, const char *name, size_t len, const hs_stream_head_t *h)
{
    es_req_t *r = ctx;
    if (r->body.len > r->srv->cfg.max_page_bytes)
        return 1; /* the page ends here; `last` says where the next one starts */
    if ((r->n++ && !put(r, ",", 1)) || !put_stream(r, name, len, h))
        return -1;
    r->last = h->id;
    return 0;
}

static int on_event(void *ctx, const hs_record_t *rec)
{
    es_req_t *r = ctx;
    if (r->n && r->body.len > r->srv->cfg.max_page_bytes)
        return 1;
    if (r->to_us && r->kind == R_REPLAY && rec->position > r->to_us)
        return 1; /* past the replay's last Id (to_us holds it for a replay) */
    char *json = malloc(hs_record_json_len(rec));
    if (!json) {
        r->oom = true;
        return -1;
    }
    size_t jl = hs_record_json(rec, json);
    hs_buf_t one = {0};
    int rc = hs_es_render(json, jl, !r->pascal, &one);
    free(json);
    bool ok = rc == 0 && (!r->n || put(r, ",", 1)) && put(r, (const char *)one.p, one.len);
    hs_buf_free(&one);
    if (!ok) {
        r->oom |= rc == HS_ENOMEM;
        return -1;
    }
    r->n++;
    r->last = rec->position;
    return 0;
}

/* A JSON array of a stream's events (hs_store_es_search_events' arguments) into the answer. */
static int events_array(hs_store_t *st, es_req_t *r, int64_t stream_id, const char *type,
                        size_t type_len, int64_t from_us, int64_t to_us, int64_t after,
                        size_t limit)
{
    if (!put(r, "[", 1))
        return 0;
    int rc = hs_store_es_search_events(st, stream_id, type, type_len, from_us, to_us, after, limit,
                                       on_event, r);
    if (rc < 0)
        return r->spent || r->oom ? 0 : rc;
    put(r, "]", 1);
    return 0;
}

static int run_read(hs_store_t *st, hs_read_req_t *base)
{
    es_req_t *r = (es_req_t *)base;
    hs_stream_head_t h;
    int rc = 0;
    r->status = 200;
    switch (r->kind) {
    case R_STREAM_GUID:
    case R_STREAM_ID:
        rc = r->kind == R_STREAM_GUID
                 ? hs_store_es_stream_by_guid(st, r->guid, &h, r->name, sizeof r->name)
                 : hs_store_es_stream_by_id(st, r->id, &h, r->name, sizeof r->name);
        if (rc == HS_ENOENT) {
            r->status = 404;
            return 0;
        }
        if (rc)
            return rc;
        r->name_len = strlen(r->name);
        if (!r->then_delete && !put_stream(r, r->name, r->name_len, &h))
            return 0;
        return 0;
    case R_STREAMS:
        if (!put(r, "[", 1))
            return 0;
        rc = hs_store_es_search_streams(st, r->guid, r->text, r->text_len, r->from_us, r->to_us,
                                        r->after, r->limit, on_stream, r);
        if (rc < 0)
            return r->spent || r->oom ? 0 : rc;
        put(r, "]", 1);
        return 0;
    case R_EVENT:
        rc = hs_store_es_event(st, r->id, r->guid, 36, on_event, r);
        if (rc == HS_ENOENT) {
            r->status = 404;
            return 0;
        }
        return rc < 0 && !(r->spent || r->oom) ? rc : 0;
    case R_EVENTS:
        return events_array(st, r, r->id, r->text, r->text_len, r->from_us, r->to_us, r->after,
                            r->limit);
    case R_REPLAY: {
        /* the subscriber's stream, then its events with Id in [from, to] (0: either end) */
        hs_es_sub_info_t s;
        rc = hs_store_es_sub_show(st, r->guid, &s);
        if (rc == HS_ENOENT) {
            r->status = 404;
            return 0;
        }
        if (rc)
            return rc;
        memcpy(r->name, s.stream, s.stream_len + 1);
        r->name_len = s.stream_len;
        if ((rc = hs_store_es_sub_range(st, r->guid, r->from_us, r->to_us)))
            return rc;
        return events_array(st, r, s.stream_id, "", 0, INT64_MIN, INT64_MAX,
                            r->from_us > 0 ? r->from_us - 1 : 0, LIMIT_MAX);
    }
    case R_SUBSCRIBER: {
        hs_es_sub_info_t s;
        rc = hs_store_es_sub_show(st, r->guid, &s);
        if (rc == HS_ENOENT) {
            r->status = 404;
            return 0;
        }
        if (rc)
            return rc;
        char guid[37], created[40], screated[40], b[512];
        hs_uuid_of_name(s.stream, s.stream_len, guid);
        hs_format_offset_time(s.created_us, created);
        hs_format_offset_time(s.stream_created_us, screated);
        int n =
            snprintf(b, sizeof b,
                     "{\"id\":%lld,\"streamId\":%lld,\"stream\":{\"id\":%lld,\"streamId\":\"%s\","
                     "\"name\":",
                     (long long)s.id, (long long)s.stream_id, (long long)s.stream_id, guid);
        if (!put(r, b, (size_t)n) || !put_quoted(r, s.stream, s.stream_len))
            return 0;
        n = snprintf(
            b, sizeof b,
            ",\"createdAt\":\"%s\",\"lastAssociatedEventId\":null},\"subscriberId\":\"%s\","
            "\"connectionId\":",
            screated, r->guid);
        if (!put(r, b, (size_t)n))
            return 0;
        if (s.conn[0] ? !put_quoted(r, s.conn, strlen(s.conn)) : !put(r, "null", 4))
            return 0;
        n = snprintf(b, sizeof b,
                     ",\"receiveMethod\":null,\"lastAccessedCurrentEventId\":%lld,"
                     "\"lastAccessedFromEventId\":%lld,\"lastAccessedToEventId\":%lld,"
                     "\"createdAt\":\"%s\"}",
                     (long long)s.cur_position, (long long)s.from_position,
                     (long long)s.to_position, created);
        put(r, b, (size_t)n);
        return 0;
    }
    }
    return HS_EINVAL;
}

static void read_done(hs_read_req_t *base)
{
    es_req_t *r = (es_req_t *)base;
    r->base.node.kind = MSG_READ;
    hs_io_post(r->io, &r->base.node);
}

/* ---- answering (IO thread) ---- */

static void submit_read(hs_conn_t *c, es_req_t *r)
{
    r->base.run = run_read;
    r->base.done = read_done;
    r->io = c->io;
    r->conn = c;
    r->base.owner = hs_read_owner(c->wsi, c);
    c->owner = &admin_transport;
    ac(c)->pending_read = r;
    if (!hs_reader_submit(c->io->srv->reader, &r->base)) {
        ac(c)->pending_read = NULL;
        req_free(r);
        hs_conn_error(c, 503, "Unavailable", "the server is stopping");
    }
}

static void delete_stream(hs_conn_t *c, es_req_t *r);

/* A replay's events were read: to the subscriber's connections on this server. */
static void replayed(hs_conn_t *c, es_req_t *r)
{
    if (r->n && hs_es_replay_post(r->srv, r->guid, r->name, r->name_len, (const char *)r->body.p,
                                  r->body.len)) {
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    char b[160];
    int n = snprintf(b, sizeof b, "{\"subscriberId\":\"%s\",\"events\":%zu,\"lastEventId\":%lld}",
                     r->guid, r->n, (long long)(r->n ? r->last : 0));
    hs_conn_respond(c, 200, "application/json", b, (size_t)n, NULL, NULL);
}

static void on_read_done(es_req_t *r)
{
    hs_conn_t *c = r->conn;
    if (!c)
        goto out;
    ac(c)->pending_read = NULL;
    if (r->spent) {
        c->retry_after = true;
        hs_conn_error(c, 503, "Unavailable",
                      "the server holds its whole read budget for other answers; retry shortly");
    } else if (r->base.status || r->oom) {
        hs_conn_error(c, 503, "Unavailable", "the database read failed");
    } else if (r->status == 404) {
        if (r->kind == R_SUBSCRIBER || r->kind == R_REPLAY)
            hs_conn_error(c, 404, "NotFound", "Subscriber: %s not found.", r->guid);
        else if (r->kind == R_EVENT)
            hs_conn_error(c, 404, "NotFound", "Event: %s not found.", r->guid);
        else if (r->kind == R_STREAM_GUID)
            hs_conn_error(c, 404, "NotFound", "Stream: %s not found.", r->guid);
        else
            hs_conn_error(c, 404, "NotFound", "Stream: %lld not found.", (long long)r->id);
    } else if (r->then_delete) {
        delete_stream(c, r);
    } else if (r->kind == R_REPLAY) {
        replayed(c, r);
    } else {
        /* a full page: where the next one starts */
        char link[256] = "";
        bool more = (r->kind == R_STREAMS || r->kind == R_EVENTS) && r->n && r->n >= r->limit;
        if (more)
            snprintf(link, sizeof link, "<?after=%lld&limit=%zu>; rel=\"next\"", (long long)r->last,
                     r->limit);
        if (hs_conn_respond(c, 200, "application/json", (const char *)r->body.p, r->body.len,
                            more ? "link:" : NULL, more ? link : NULL) == 0 &&
            r->charged) {
            hs_conn_charge(c, r->srv->read_budget, r->charged);
            r->charged = 0;
        }
    }
out:
    req_free(r);
}

static void delete_stream(hs_conn_t *c, es_req_t *r)
{
    hs_ingest_t *e = hs_codec_build_admin(HS_INGEST_DELETE, r->name, r->name_len);
    if (!e) {
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    e->node.kind = MSG_INGEST;
    e->conn = c;
    c->owner = &admin_transport;
    ac(c)->pending = e;
    if (!hs_io_submit_entry(c->io, e)) {
        ac(c)->pending = NULL;
        hs_ingest_free(e);
        c->retry_after = true;
        hs_conn_error(c, 429, "TooManyRequests", "the writer is behind; retry later");
    }
}

static void on_ingest_done(hs_ingest_t *e)
{
    hs_conn_t *c = e->conn;
    if (c && e->kind == HS_INGEST_ES_ASSOCIATE) {
        ac(c)->pending = NULL;
        hs_esa_associated(c, e);
    } else if (c) {
        ac(c)->pending = NULL;
        if (e->status == 0)

            hs_conn_respond(c, 200, "application/json", "", 0, NULL, NULL);
        else if (e->status == HS_ENOENT)
            hs_conn_error(c, 404, "NotFound", "Stream: %.*s not found.", (int)e->stream_len,
                          e->stream);
        else
            hs_conn_error(c, 503, "Unavailable", "nothing was deleted: %s", hs_strerror(e->status));
    }
    hs_esa_entry_free(e);
}

/* ---- requests ---- */

static es_req_t *new_req(hs_conn_t *c, int kind)
{
    es_req_t *r = calloc(1, sizeof(*r));
    if (!r) {
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return NULL;
    }
    r->srv = c->io->srv;
    r->kind = kind;
    r->from_us = INT64_MIN;
    r->to_us = INT64_MAX;
    r->limit = LIMIT_DEFAULT;
    return r;
}

/* ?limit= and ?after=: false after a 400. */
static bool page_args(hs_conn_t *c, es_req_t *r)
{
    char buf[32];
    const char *v;
    int rc = hs_conn_arg(c, "limit=", buf, sizeof buf, &v);
    int64_t n;
    if (rc > 0) {
        if (!hs_route_uint(v, strlen(v), &n) || n < 1 || n > LIMIT_MAX) {
            hs_conn_error(c, 400, "BadRequest", "limit must be 1 to %d", LIMIT_MAX);
            return false;
        }
        r->limit = (size_t)n;
    }
    rc = hs_conn_arg(c, "after=", buf, sizeof buf, &v);
    if (rc > 0 && !hs_route_uint(v, strlen(v), &r->after)) {
        hs_conn_error(c, 400, "BadRequest", "after must be a non-negative integer");
        return false;
    }
    if (rc < 0) {
        hs_conn_error(c, 400, "BadRequest", "bad query arguments");
        return false;
    }
    return true;
}

/* What both searches take: a text member (the part a name or type contains), the creation
 * times and the page arguments. False after a 400. */
static bool search_args(hs_conn_t *c, const hs_json_span_t *obj, const char *text, long max,
                        es_req_t *r)
{
    hs_json_span_t v;
    if (hs_esa_member(obj, text, &v)) {
        long n = v.type == HS_JSON_STRING ? hs_json_unescape(&v, r->text, sizeof r->text) : -1;
        if (n < 0 || n > max) {
            hs_conn_error(c, 400, "BadRequest", "%s must be a string of at most %ld bytes", text,
                          max);
            return false;
        }
        r->text_len = (size_t)n;
    }
    return hs_esa_time_member(c, obj, "createdStart", &r->from_us) &&
           hs_esa_time_member(c, obj, "createdEnd", &r->to_us) && page_args(c, r);
}

static void streams_search(hs_conn_t *c)
{
    hs_json_span_t obj, v;
    if (!hs_esa_body_object(c, &obj))
        return;
    es_req_t *r = new_req(c, R_STREAMS);
    if (!r)
        return;
    if (hs_esa_member(&obj, "streamId", &v)) {
        char g[48];
        long n = v.type == HS_JSON_STRING ? hs_json_unescape(&v, g, sizeof g) : -1;
        if (n < 0 || !hs_uuid_parse(g, (size_t)n, r->guid)) {
            req_free(r);
            hs_conn_error(c, 400, "BadRequest", "streamId must be a GUID");
            return;
        }
    }
    if (!search_args(c, &obj, "name", HS_NAME_MAX, r)) {
        req_free(r);
        return;
    }
    submit_read(c, r);
}

static void events_search(hs_conn_t *c)
{
    hs_json_span_t obj, v;
    if (!hs_esa_body_object(c, &obj))
        return;
    es_req_t *r = new_req(c, R_EVENTS);
    if (!r)
        return;
    if (!hs_esa_member(&obj, "streamId", &v) || v.type != HS_JSON_NUMBER ||
        !hs_json_int64(&v, &r->id)) {
        req_free(r);
        hs_conn_error(c, 400, "BadRequest", "streamId must be a stream's id (an integer)");
        return;
    }
    r->limit = 50; /* the seed's MaxReturnRecords */
    int64_t max;
    if (hs_esa_member(&obj, "maxReturnRecords", &v)) {
        if (v.type != HS_JSON_NUMBER || !hs_json_int64(&v, &max) || max < 1 || max > LIMIT_MAX) {
            req_free(r);
            hs_conn_error(c, 400, "BadRequest", "maxReturnRecords must be 1 to %d", LIMIT_MAX);
            return;
        }
        r->limit = (size_t)max;
    }
    if (!search_args(c, &obj, "type", HS_TYPE_MAX, r)) {
        req_free(r);
        return;
    }
    submit_read(c, r);
}

/* PUT subscribers/{guid} {lastAccessedFromEventId?, lastAccessedToEventId?} */
static void replay(hs_conn_t *c, const char *guid)
{
    hs_json_span_t obj, v;
    if (!hs_esa_body_object(c, &obj))
        return;
    es_req_t *r = new_req(c, R_REPLAY);
    if (!r)
        return;
    memcpy(r->guid, guid, sizeof r->guid);
    r->pascal = true;
    /* for a replay from_us / to_us hold the Id range */
    r->from_us = r->to_us = 0;
    int64_t *at[2] = {&r->from_us, &r->to_us};
    static const char *const names[2] = {"lastAccessedFromEventId", "lastAccessedToEventId"};
    for (int i = 0; i < 2; i++) {
        if (hs_esa_member(&obj, names[i], &v) &&
            (v.type != HS_JSON_NUMBER || !hs_json_int64(&v, at[i]) || *at[i] < 0)) {
            req_free(r);
            hs_conn_error(c, 400, "BadRequest", "%s must be an event Id (a non-negative integer)",
                          names[i]);
            return;
        }
    }
    if (r->to_us && r->to_us < r->from_us) {
        req_free(r);
        hs_conn_error(c, 400, "BadRequest",
                      "lastAccessedToEventId is before lastAccessedFromEventId");
        return;
    }
    submit_read(c, r);
}

/* POST streams/associate: the association goes through the writer */
static void associate(hs_conn_t *c)
{
    hs_es_op_t *op = hs_esa_associate_op(c);
    if (!op)
        return;
    hs_ingest_t *e = hs_codec_build_admin(HS_INGEST_CLOSE, "-", 1);
    if (!e) {
        free(op->refs);
        free(op);
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    e->kind = HS_INGEST_ES_ASSOCIATE;
    e->es = op;
    e->node.kind = MSG_INGEST;
    e->conn = c;
    c->owner = &admin_transport;
    ac(c)->pending = e;
    if (!hs_io_submit_entry(c->io, e)) {
        ac(c)->pending = NULL;
        hs_esa_entry_free(e);
        c->retry_after = true;
        hs_conn_error(c, 429, "TooManyRequests", "the writer is behind; retry later");
    }
}

/* POST subscriptionprocessor {start?, stop?} */
static void processor(hs_conn_t *c)
{
    hs_json_span_t obj, v;
    if (!hs_esa_body_object(c, &obj))
        return;
    bool stop = hs_esa_member(&obj, "stop", &v) && v.type == HS_JSON_TRUE;
    bool start = hs_esa_member(&obj, "start", &v) && v.type == HS_JSON_TRUE;
    /* the seed applies Stop, then Start */
    if (stop)
        hs_es_set_paused(c->io->srv, true);
    if (start)
        hs_es_set_paused(c->io->srv, false);
    bool paused = atomic_load(&c->io->srv->es_paused);
    char b[32];
    int n = snprintf(b, sizeof b, "{\"started\":%s}", paused ? "false" : "true");
    hs_conn_respond(c, 200, "application/json", b, (size_t)n, NULL, NULL);
}

/* Copies a path segment; false when it does not fit. */
static bool seg(const char *s, size_t n, char *out, size_t cap)
{
    if (n >= cap)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

static void route(hs_conn_t *c, const char *path, void *arg)
{
    (void)arg;
    int m = c->method;
    bool get = m == WSI_TOKEN_GET_URI, post = m == WSI_TOKEN_POST_URI,
         del = m == WSI_TOKEN_DELETE_URI, put_ = m == WSI_TOKEN_PUT_URI;
    hs_esroute_t rt;
    hs_esroute_parse(path, strlen(path), &rt);
    if (rt.kind == HS_ESR_NONE) {
        hs_conn_error(c, 404, "NotFound", "no route for %.300s", path);
        return;
    }
    char why[256];
    int rc = hs_auth_identify(c->io->srv, c->wsi, path, &c->who, why, sizeof(why));
    if (rc) {
        if (rc == HS_EFORBIDDEN)
            hs_conn_error(c, 403, "Forbidden", "%s", why);
        else if (rc == HS_ENOMEM)
            hs_conn_error(c, 503, "Unavailable", "out of memory");
        else
            hs_conn_error(c, 401, "Unauthorized", "%s", why);
        return;
    }
    if (!hs_auth_allows(c->io->srv, c->who, HS_ACTION_ADMIN, NULL, 0)) {
        hs_conn_error(c, 403, "Forbidden", "the /api/EventStream/ routes need admin permission");
        return;
    }
    char a[64], b[64];
    es_req_t *r;
    switch (rt.kind) {
    case HS_ESR_STREAM:
        if (get) {
            if (!seg(rt.a, rt.alen, a, sizeof a) || !(r = new_req(c, R_STREAM_GUID)))
                goto bad_guid;
            if (!hs_uuid_parse(a, rt.alen, r->guid)) {
                req_free(r);
                goto bad_guid;
            }
            submit_read(c, r);
        } else if (del) {
            if (!(r = new_req(c, R_STREAM_ID)))
                return;
            if (!hs_route_uint(rt.a, rt.alen, &r->id)) {
                req_free(r);
                hs_conn_error(c, 400, "BadRequest", "a stream's id is a non-negative integer");
                return;
            }
            r->then_delete = true;
            submit_read(c, r);
        } else {
            hs_conn_not_allowed(c, "GET, DELETE");
        }
        return;
    case HS_ESR_STREAMS_BY_NAME:
        if (!get) {
            hs_conn_not_allowed(c, "GET");
            return;
        }
        if (!(r = new_req(c, R_STREAMS)))
            return;
        if (rt.alen > HS_NAME_MAX) {
            req_free(r);
            hs_conn_error(c, 400, "BadRequest", "a name is at most %d bytes", HS_NAME_MAX);
            return;
        }
        memcpy(r->text, rt.a, rt.alen);
        r->text_len = rt.alen;
        if (!page_args(c, r)) {
            req_free(r);
            return;
        }
        submit_read(c, r);
        return;
    case HS_ESR_STREAMS_SEARCH:
        if (post)
            streams_search(c);
        else
            hs_conn_not_allowed(c, "POST");
        return;
    case HS_ESR_EVENT:
        if (!get) {
            hs_conn_not_allowed(c, "GET");
            return;
        }
        if (!(r = new_req(c, R_EVENT)))
            return;
        if (!hs_route_uint(rt.a, rt.alen, &r->id) || !seg(rt.b, rt.blen, b, sizeof b) ||
            !hs_uuid_parse(b, rt.blen, r->guid)) {
            req_free(r);
            hs_conn_error(c, 400, "BadRequest",
                          "events/{streamId}/{eventId}: a stream's id and an event's GUID");
            return;
        }
        submit_read(c, r);
        return;
    case HS_ESR_EVENTS_SEARCH:
        if (post)
            events_search(c);
        else
            hs_conn_not_allowed(c, "POST");
        return;
    case HS_ESR_SUBSCRIBER:
        if (!seg(rt.a, rt.alen, a, sizeof a))
            goto bad_guid;
        if (get) {
            if (!(r = new_req(c, R_SUBSCRIBER)))
                return;
            if (!hs_uuid_parse(a, rt.alen, r->guid)) {
                req_free(r);
                goto bad_guid;
            }
            submit_read(c, r);
        } else if (put_) {
            char guid[37];
            if (!hs_uuid_parse(a, rt.alen, guid))
                goto bad_guid;
            replay(c, guid);
        } else {
            hs_conn_not_allowed(c, "GET, PUT");
        }
        return;
    case HS_ESR_ASSOCIATE:
        if (post)
            associate(c);
        else
            hs_conn_not_allowed(c, "POST");
        return;
    case HS_ESR_PROCESSOR:
        if (post)
            processor(c);
        else
            hs_conn_not_allowed(c, "POST");
        return;
    case HS_ESR_NONE:
        break;
    }
    return;
bad_guid:
    hs_conn_error(c, 400, "BadRequest", "not a GUID: %.*s", (int)(rt.alen > 64 ? 64 : rt.alen),
                  rt.a);
}

/* ---- the transport ---- */

static void http_closed(hs_conn_t *c)
{
    admin_conn_t *t = ac(c);
    if (t->pending_read) {
        t->pending_read->conn = NULL;
        t->pending_read = NULL;
    }
    if (t->pending) {
        t->pending->conn = NULL;
        t->pending = NULL;
    }
}

static void on_message(hs_io_t *io, hs_mpsc_node_t *n)
{
    (void)io;
    if (n->kind == MSG_READ)
        on_read_done((es_req_t *)n);
    else if (n->kind == MSG_INGEST)
        on_ingest_done(hs_container_of(n, hs_ingest_t, node));
}

static void drop_message(hs_io_t *io, hs_mpsc_node_t *n)
{
    (void)io;
    if (n->kind == MSG_READ)
        req_free((es_req_t *)n);
    else if (n->kind == MSG_INGEST)
        hs_esa_entry_free(hs_container_of(n, hs_ingest_t, node));
}

static const hs_transport_t admin_transport = {
    .id = HS_T_ESADMIN,
    .name = "eventstream-admin",
    .on_message = on_message,
    .drop_message = drop_message,
    .http_closed = http_closed,
};

void hs_esadmin_register(hs_server_t *srv)
{
    hs_server_add_transport(srv, &admin_transport);
    hs_server_add_prefix_route(srv, HS_ESROUTE_PREFIX, route, NULL);
}
