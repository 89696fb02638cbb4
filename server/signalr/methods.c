/*
 * The hub methods of /hub (API.md): Publish, Subscribe, Unsubscribe, Read, GetStream and
 * CloseStream, as a table the connection (hub.c) dispatches invocations through, and what they
 * start on other threads: appends acked by the writer, reads run on reader threads, and their
 * Completions once back on the home thread. Argument binding follows ASP.NET: a wrong count or
 * type is a bind error; names are checked before anything is started. Home thread, except
 * run_read (a reader thread), which only builds an answer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/codec.h"
#include "proto/json.h"
#include "ringbuf/budget.h"
#include "server/auth.h"
#include "server/signalr/hub.h"
#include "util/time.h"

enum { M_PUBLISH, M_SUBSCRIBE, M_UNSUBSCRIBE, M_READ, M_GETSTREAM, M_CLOSESTREAM };

/* An invocation waiting for the writer or a reader thread. Holds a hub reference. */
typedef struct op {
    hs_hub_t *hub;
    int method;
    bool has_id;
    char id[HS_HUB_ID_MAX + 1];
    char stream[HS_NAME_MAX + 1];
    size_t stream_len;
} op_t;

enum { R_EVENTS, R_INFO, R_SUBHEAD };

typedef struct hub_read {
    hs_read_req_t base; /* base.node becomes the inbox node (HS_NODE_HUB_READ) */
    hs_io_t *io;
    op_t op;
    int kind;
    int64_t from;
    size_t count;
    bool all;
    /* result */
    int status;
    bool found;
    hs_stream_head_t head;
    hs_buf_t out; /* JSON; its capacity is charged to the connection's read budget */
    size_t n;
    bool oom;
    bool spent; /* the budget could not take the answer's next growth */
} hub_read_t;

/* The end of a Read whose page is full (not an error). */
#define PAGE_FULL 1

/* Stream name argument: unescaped into buf. Returns length, or -1 if not a string, -2 if the
 * name is invalid. */
static long stream_arg(const hs_json_span_t *v, char *buf)
{
    if (v->type != HS_JSON_STRING)
        return -1;
    long n = hs_json_unescape(v, buf, HS_NAME_MAX + 1);
    if (n < 0 || n > HS_NAME_MAX || hs_stream_name_check(buf, (size_t)n))
        return -2;
    buf[n] = '\0';
    return n;
}

static op_t *new_op(hs_hub_t *h, const hs_hubmsg_t *m, int method, const char *stream, size_t len)
{
    op_t *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->hub = hs_hub_ref(h);
    op->method = method;
    op->has_id = m->has_id;
    memcpy(op->id, m->id, sizeof(op->id));
    memcpy(op->stream, stream, len);
    op->stream_len = len;
    return op;
}

static void submit_ingest(hs_hub_t *h, const hs_hubmsg_t *m, int method, hs_ingest_t *e)
{
    op_t *op = new_op(h, m, method, e->stream, e->stream_len);
    if (!op) {
        hs_ingest_free(e);
        if (m->has_id)
            hs_hub_complete_err(h, m->id, "Unavailable: out of memory");
        return;
    }
    e->node.kind = HS_NODE_HUB_INGEST;
    e->conn = op;
    if (!hs_io_submit_entry(h->io, e)) {
        hs_hub_unref(op->hub);
        free(op);
        hs_ingest_free(e);
        if (m->has_id)
            hs_hub_complete_err(h, m->id, "TooManyRequests: the writer is behind; retry later");
        return;
    }
    h->pending++;
}

/* ---- reads on reader threads ---- */

/* Grows a Read's answer, charging the growth to the connection's budget (and so to the
 * server's) first: false when the budget is spent (r->spent) or memory is (r->oom). */
static bool read_reserve(hub_read_t *r, size_t more)
{
    hs_buf_t *b = &r->out;
    if (more <= b->cap - b->len)
        return true;
    size_t nc = b->cap ? b->cap : 256; /* hs_buf_reserve's growth, to charge it exactly */
    while (nc < b->len + more)
        nc *= 2;
    hs_budget_t *budget = r->op.hub->budget;
    if (!hs_budget_take(budget, nc - b->cap)) {
        r->spent = true;
        return false;
    }
    size_t before = b->cap;
    if (hs_buf_reserve(b, more)) { /* grows to nc: the same rule */
        hs_budget_give(budget, nc - before);
        r->oom = true;
        return false;
    }
    return true;
}

static int on_read_record(void *ctx, const hs_record_t *rec)
{
    hub_read_t *r = ctx;
    size_t need = hs_record_json_len(rec) + 1;
    /* a page ends early rather than pass --max-page-bytes or the budget; it always holds one
     * event (the client reads on from the last version it got) */
    if (r->n && r->out.len + need > r->op.hub->srv->cfg.max_page_bytes)
        return PAGE_FULL;
    if (!read_reserve(r, need)) {
        if (r->spent && r->n) {
            r->spent = false;
            return PAGE_FULL;
        }
        return HS_ENOMEM;
    }
    if (r->n++)
        r->out.p[r->out.len++] = ',';
    r->out.len += hs_record_json(rec, (char *)r->out.p + r->out.len);
    return 0;
}

static int run_read(hs_store_t *st, hs_read_req_t *base)
{
    hub_read_t *r = (hub_read_t *)base;
    int rc;
    switch (r->kind) {
    case R_EVENTS:
        if (!read_reserve(r, 2))
            return 0; /* spent or oom: answered by the IO thread */
        r->out.p[r->out.len++] = '[';
        rc = r->all ? hs_store_read_all(st, r->from, false, r->count, on_read_record, r)
                    : hs_store_read_stream(st, r->op.stream, r->op.stream_len, r->from, false,
                                           r->count, on_read_record, r);
        if (rc < 0)
            return r->spent || r->oom ? 0 : rc;
        if (!read_reserve(r, 1))
            return 0;
        r->out.p[r->out.len++] = ']';
        return 0;
    case R_INFO:
    case R_SUBHEAD:
        rc = hs_store_get_stream(st, r->op.stream, r->op.stream_len, &r->head);
        if (rc == HS_ENOENT)
            return 0;
        if (rc)
            return rc;
        r->found = true;
        return 0;
    }
    return HS_EINVAL;
}

static void read_done(hs_read_req_t *base)
{
    hub_read_t *r = (hub_read_t *)base;
    r->base.node.kind = HS_NODE_HUB_READ;
    hs_io_post(r->io, &r->base.node); /* once pushed, the IO thread may free r */
}

static void free_read(hub_read_t *r)
{
    if (r->out.cap)
        hs_budget_give(r->op.hub->budget, r->out.cap);
    hs_hub_unref(r->op.hub);
    hs_buf_free(&r->out);
    free(r);
}

static void submit_read(hs_hub_t *h, const hs_hubmsg_t *m, int method, int kind, const char *stream,
                        size_t len, int64_t from, size_t count)
{
    hub_read_t *r = calloc(1, sizeof(*r));
    if (!r) {
        if (m->has_id)
            hs_hub_complete_err(h, m->id, "Unavailable: out of memory");
        return;
    }
    r->op.hub = hs_hub_ref(h);
    r->op.method = method;
    r->op.has_id = m->has_id;
    memcpy(r->op.id, m->id, sizeof(r->op.id));
    memcpy(r->op.stream, stream, len);
    r->op.stream_len = len;
    r->io = h->io;
    r->kind = kind;
    r->from = from;
    r->count = count;
    r->all = len == 4 && memcmp(stream, "$all", 4) == 0;
    r->base.run = run_read;
    r->base.done = read_done;
    r->base.owner = hs_read_owner(h->wsi, h);
    if (!hs_reader_submit(h->srv->reader, &r->base)) {
        free_read(r);
        if (m->has_id)
            hs_hub_complete_err(h, m->id, "Unavailable: the server is stopping");
        return;
    }
    h->pending++;
}

static void push_subscribed(hs_hub_t *h, const op_t *op, int64_t from)
{
    hs_hubsub_t *old = hs_hub_find_push(h, op->stream, op->stream_len);
    if (old)
        hs_hub_sub_free(h, old);
    int rc = hs_hub_add_sub(h, op->stream, op->stream_len, true, NULL, true, from, false);
    if (rc == HS_EBUSY) {
        if (op->has_id)
            hs_hub_complete_err(h, op->id, "TooManySubscriptions: at most %d per connection",
                                h->srv->cfg.max_subscriptions);
        return;
    }
    if (rc) {
        if (op->has_id)
            hs_hub_complete_err(h, op->id, "Unavailable: out of memory");
        return;
    }
    if (!op->has_id)
        return;
    char body[HS_NAME_MAX * 6 + 64];
    size_t o = 0;
    memcpy(body, "{\"stream\":", 10);
    o = 10;
    o += hs_json_quote(op->stream, op->stream_len, body + o);
    o += (size_t)snprintf(body + o, sizeof(body) - o, ",\"version\":%lld}", (long long)from);
    hs_hub_complete(h, op->id, NULL, body, o);
}

static void on_read_done(hs_io_t *io, hs_mpsc_node_t *n)
{
    (void)io;
    hub_read_t *r = hs_container_of(n, hub_read_t, base.node);
    hs_hub_t *h = r->op.hub;
    h->pending--;
    if (h->ended || h->closing)
        goto out;
    const char *id = r->op.has_id ? r->op.id : NULL;
    if (r->spent) {
        if (id)
            hs_hub_complete_err(h, id,
                                "Unavailable: the read budget is spent (this connection's or "
                                "the server's); retry shortly");
        goto out;
    }
    if (r->base.status || r->oom) {
        if (id)
            hs_hub_complete_err(h, id, "Unavailable: the database read failed");
        goto out;
    }
    switch (r->kind) {
    case R_EVENTS:
        if (id) {
            size_t before = h->ctl.len;
            hs_hub_complete(h, id, NULL, (const char *)r->out.p, r->out.len);
            if (h->ctl.len > before) {
                /* the answer's charge follows its copy in ctl until it is written */
                h->ctl_charge += r->out.cap;
                r->out.cap = 0;
                hs_buf_free(&r->out);
            }
        }
        break;
    case R_INFO: {
        if (!id)
            break;
        if (!r->found) {
            hs_hub_complete_err(h, id, "NotFound: %.*s", (int)r->op.stream_len, r->op.stream);
            break;
        }
        char created[32], updated[32], body[HS_NAME_MAX * 6 + 256];
        hs_format_time(r->head.created_us, created);
        hs_format_time(r->head.updated_us, updated);
        size_t o = 8;
        memcpy(body, "{\"name\":", 8);
        o += hs_json_quote(r->op.stream, r->op.stream_len, body + o);
        o +=
            (size_t)snprintf(body + o, sizeof(body) - o,
                             ",\"version\":%lld,\"position\":%lld,\"closed\":%s,\"created\":\"%s\","
                             "\"updated\":\"%s\"}",
                             (long long)r->head.version, (long long)r->head.position,
                             r->head.closed ? "true" : "false", created, updated);
        hs_hub_complete(h, id, NULL, body, o);
        break;
    }
    case R_SUBHEAD:
        push_subscribed(h, &r->op, r->found ? r->head.version : 0);
        break;
    }
out:
    hs_hub_ref(h); /* free_read drops the read's reference */
    free_read(r);
    hs_hub_resume_input(h);
    hs_hub_unref(h);
}

static void on_ingest_done(hs_io_t *io, hs_ingest_t *e)
{
    (void)io;
    op_t *op = e->conn;
    hs_hub_t *h = op->hub;
    h->pending--;
    if (op->method == M_PUBLISH)
        hs_metrics_hub_publish(h->io, e->status);
    if (h->ended || h->closing || !op->has_id)
        goto out;
    char body[HS_PUBLISH_RESULT_MAX];
    size_t o;
    switch (e->status) {
    case 0:
        if (e->kind != HS_INGEST_APPEND) {
            hs_hub_complete(h, op->id, NULL, "true", 4);
            break;
        }
        o = hs_publish_result_json(e, body, sizeof(body));
        hs_hub_complete(h, op->id, NULL, body, o);
        break;
    case HS_ECONFLICT:
        hs_hub_complete_err(h, op->id, "WrongExpectedVersion: expected %lld, actual %lld",
                            (long long)e->expected_version, (long long)e->result.actual_version);
        break;
    case HS_ECLOSED:
        hs_hub_complete_err(h, op->id, "StreamClosed: %.*s", (int)e->stream_len, e->stream);
        break;
    case HS_ENOENT:
        hs_hub_complete_err(h, op->id, "NotFound: %.*s", (int)e->stream_len, e->stream);
        break;
    case HS_EINVAL:
        hs_hub_complete_err(
            h, op->id,
            "InvalidEvent: event ids repeat within the publish, or only some of them "
            "were already appended: retry with exactly the original events");
        break;
    case HS_EUNKNOWN:
        hs_hub_complete_err(
            h, op->id,
            "Unavailable: %s; the events may have been appended: retry with the same "
            "event ids",
            hs_strerror(e->status));
        break;
    default:
        hs_hub_complete_err(h, op->id, "Unavailable: nothing was appended: %s",
                            hs_strerror(e->status));
        break;
    }
out:
    free(op);
    hs_ingest_free(e);
    hs_hub_resume_input(h);
    hs_hub_unref(h);
}

/* ---- the methods ---- */

/* Fails the invocation (when the client waits for a Completion). */
__attribute__((format(printf, 3, 4))) static void fail(hs_hub_t *h, const hs_hubmsg_t *m,
                                                       const char *fmt, ...)
{
    if (!m->has_id)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    hs_hub_complete_err(h, m->id, "%s", msg);
}

/* The stream name every method of /hub takes first, unescaped into buf: its length, or -1 once
 * the invocation failed (not a string: a bind error; not a valid name: InvalidStreamName). */
static long stream_first(hs_hub_t *h, const hs_hubmsg_t *m, const hs_json_span_t *a, char *buf)
{
    long sl = stream_arg(&a[0], buf);
    if (sl == -1)
        fail(h, m, HS_HUB_BIND_ERROR, m->target);
    else if (sl == -2)
        fail(h, m, "InvalidStreamName");
    return sl < 0 ? -1 : sl;
}

/* Whether the connection's principal (fixed at its negotiate or connect) may do action on the
 * stream: false after answering `Unauthorized`. */
static bool permitted(hs_hub_t *h, const hs_hubmsg_t *m, hs_action_t action, const char *stream,
                      size_t len)
{
    if (hs_auth_allows(h->srv, h->who, action, stream, len))
        return true;
    fail(h, m, "Unauthorized");
    return false;
}

static bool is_all(const char *stream, size_t len)
{
    return len == 4 && memcmp(stream, "$all", 4) == 0;
}

/* An optional non-negative integer argument (null: absent). False after a bind error. */
static bool opt_uint(hs_hub_t *h, const hs_hubmsg_t *m, const hs_json_span_t *v, int64_t *out,
                     bool *has)
{
    *has = false;
    if (v->type == HS_JSON_NULL)
        return true;
    if (v->type != HS_JSON_NUMBER || !hs_json_int64(v, out) || *out < 0) {
        fail(h, m, HS_HUB_BIND_ERROR, m->target);
        return false;
    }
    *has = true;
    return true;
}

/* Publish(stream, event | events[], expectedVersion?) */
static void m_publish(hs_hub_t *h, const hs_hubmsg_t *m, const hs_json_span_t *a, int na,
                      bool streaming)
{
    (void)streaming;
    hs_server_t *srv = h->srv;
    char stream[HS_NAME_MAX + 1];
    long sl = stream_first(h, m, a, stream);
    if (sl < 0)
        return;
    size_t slen = (size_t)sl;
    if (a[1].type != HS_JSON_OBJECT && a[1].type != HS_JSON_ARRAY) {
        fail(h, m, HS_HUB_BIND_ERROR, m->target);
        return;
    }
    int64_t expected = HS_ANY_VERSION;
    bool has;
    if (na == 3 && !opt_uint(h, m, &a[2], &expected, &has))
        return;
    if (hs_stream_name_check_publish(stream, slen)) {
        fail(h, m, "InvalidStreamName");
        return;
    }
    if (!permitted(h, m, HS_ACTION_PUBLISH, stream, slen))
        return;
    if (!hs_rate_take(&h->publishes, srv->cfg.max_publishes_per_s, hs_now_ms())) {
        fail(h, m, "TooManyRequests: more than %d publishes per second on this connection",
             srv->cfg.max_publishes_per_s);
        return;
    }
    hs_ingest_t *e;
    char why[256];
    int rc = hs_codec_parse_publish(a[1].p, a[1].n, stream, slen, srv->cfg.max_event, &e, why,
                                    sizeof(why));
    if (rc == HS_ENOMEM) {
        fail(h, m, "Unavailable: out of memory");
        return;
    }
    if (rc) {
        fail(h, m, "InvalidEvent: %s", why);
        return;
    }
    e->expected_version = expected;
    if (hs_server_events_hook(srv, e, why, sizeof(why))) {
        hs_ingest_free(e);
        fail(h, m, "InvalidEvent: %s", why);
        return;
    }
    submit_ingest(h, m, M_PUBLISH, e);
}

/* Subscribe(stream, fromVersion?): a push subscription (target "event"), or, as a
 * StreamInvocation, a stream of items for the invocation. */
static void m_subscribe(hs_hub_t *h, const hs_hubmsg_t *m, const hs_json_span_t *a, int na,
                        bool streaming)
{
    hs_server_t *srv = h->srv;
    char stream[HS_NAME_MAX + 1];
    long sl = stream_first(h, m, a, stream);
    if (sl < 0)
        return;
    size_t slen = (size_t)sl;
    int64_t from = 0;
    bool has_from = false;
    if (na >= 2 && !opt_uint(h, m, &a[1], &from, &has_from))
        return;
    if (stream[0] == '$' && !is_all(stream, slen)) {
        fail(h, m, "InvalidStreamName");
        return;
    }
    if (!permitted(h, m, HS_ACTION_SUBSCRIBE, stream, slen))
        return;
    if (streaming) {
        int rc = hs_hub_add_sub(h, stream, slen, false, m->id, has_from, from, false);
        if (rc == HS_EBUSY)
            fail(h, m, "TooManySubscriptions: at most %d per connection",
                 srv->cfg.max_subscriptions);
        else if (rc)
            fail(h, m, "Unavailable: out of memory");
        return;
    }
    if (has_from || is_all(stream, slen)) {
        op_t op = {h, M_SUBSCRIBE, m->has_id, {0}, {0}, slen};
        memcpy(op.id, m->id, sizeof(op.id));
        memcpy(op.stream, stream, slen);
        if (!has_from) {
            hs_writer_stats_t ws;
            hs_writer_stats(srv->writer, &ws);
            from = ws.last_position;
        }
        push_subscribed(h, &op, from);
        return;
    }
    /* live only: the version it continues after is the stream's current one */
    submit_read(h, m, M_SUBSCRIBE, R_SUBHEAD, stream, slen, 0, 0);
}

/* Read(stream, fromVersion?, count?) */
static void m_read(hs_hub_t *h, const hs_hubmsg_t *m, const hs_json_span_t *a, int na,
                   bool streaming)
{
    (void)streaming;
    char stream[HS_NAME_MAX + 1];
    long sl = stream_first(h, m, a, stream);
    if (sl < 0)
        return;
    size_t slen = (size_t)sl;
    int64_t from = 0, n = 0;
    bool has_from = false, has_n = false;
    if (na >= 2 && !opt_uint(h, m, &a[1], &from, &has_from))
        return;
    if (na >= 3 && !opt_uint(h, m, &a[2], &n, &has_n))
        return;
    if (stream[0] == '$' && !is_all(stream, slen)) {
        fail(h, m, "InvalidStreamName");
        return;
    }
    if (!permitted(h, m, HS_ACTION_READ, stream, slen))
        return;
    size_t count = has_n ? (n > 1000 ? 1000 : (size_t)n) : 100;
    if (!count) {
        if (m->has_id)
            hs_hub_complete(h, m->id, NULL, "[]", 2);
        return;
    }
    submit_read(h, m, M_READ, R_EVENTS, stream, slen, from, count);
}

/* Unsubscribe(stream): true when a push subscription ended. */
static void m_unsubscribe(hs_hub_t *h, const hs_hubmsg_t *m, const hs_json_span_t *a, int na,
                          bool streaming)
{
    (void)na;
    (void)streaming;
    char stream[HS_NAME_MAX + 1];
    long sl = stream_first(h, m, a, stream);
    if (sl < 0)
        return;
    hs_hubsub_t *s = hs_hub_find_push(h, stream, (size_t)sl);
    if (s)
        hs_hub_sub_free(h, s);
    if (m->has_id)
        hs_hub_complete(h, m->id, NULL, s ? "true" : "false", s ? 4 : 5);
}

/* GetStream(stream) */
static void m_getstream(hs_hub_t *h, const hs_hubmsg_t *m, const hs_json_span_t *a, int na,
                        bool streaming)
{
    (void)na;
    (void)streaming;
    char stream[HS_NAME_MAX + 1];
    long sl = stream_first(h, m, a, stream);
    if (sl >= 0 && permitted(h, m, HS_ACTION_READ, stream, (size_t)sl))
        submit_read(h, m, M_GETSTREAM, R_INFO, stream, (size_t)sl, 0, 0);
}

/* CloseStream(stream) */
static void m_closestream(hs_hub_t *h, const hs_hubmsg_t *m, const hs_json_span_t *a, int na,
                          bool streaming)
{
    (void)na;
    (void)streaming;
    char stream[HS_NAME_MAX + 1];
    long sl = stream_first(h, m, a, stream);
    if (sl < 0)
        return;
    if (hs_stream_name_check_publish(stream, (size_t)sl)) {
        fail(h, m, "InvalidStreamName");
        return;
    }
    if (!permitted(h, m, HS_ACTION_CLOSE, stream, (size_t)sl))
        return;
    hs_ingest_t *e = hs_codec_build_admin(HS_INGEST_CLOSE, stream, (size_t)sl);
    if (!e) {
        fail(h, m, "Unavailable: out of memory");
        return;
    }
    submit_ingest(h, m, M_CLOSESTREAM, e);
}

static const hs_hub_method_t hub_methods[] = {
    {"Publish", 2, 3, false, m_publish},         {"Subscribe", 1, 2, true, m_subscribe},
    {"Unsubscribe", 1, 1, false, m_unsubscribe}, {"Read", 1, 3, false, m_read},
    {"GetStream", 1, 1, false, m_getstream},     {"CloseStream", 1, 1, false, m_closestream},
};

/* ---- the dialect's messages on an IO thread's inbox ---- */

static bool on_message(hs_io_t *io, hs_mpsc_node_t *n)
{
    switch (n->kind) {
    case HS_NODE_HUB_INGEST:
        on_ingest_done(io, hs_container_of(n, hs_ingest_t, node));
        return true;
    case HS_NODE_HUB_READ:
        on_read_done(io, n);
        return true;
    }
    return false;
}

/* At shutdown: drops an append or read still on an inbox. */
static bool discard(hs_mpsc_node_t *n)
{
    switch (n->kind) {
    case HS_NODE_HUB_INGEST: {
        hs_ingest_t *e = hs_container_of(n, hs_ingest_t, node);
        op_t *op = e->conn;
        hs_hub_unref(op->hub);
        free(op);
        hs_ingest_free(e);
        return true;
    }
    case HS_NODE_HUB_READ:
        free_read(hs_container_of(n, hub_read_t, base.node));
        return true;
    }
    return false;
}

const hs_hub_dialect_t hs_hub_dialect = {
    .name = "hub",
    .methods = hub_methods,
    .nmethods = sizeof(hub_methods) / sizeof(hub_methods[0]),
    .on_message = on_message,
    .discard = discard,
};
