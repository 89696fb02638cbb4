/*
 * The HTTP API (everything but SSE, which sse.c serves): routing, argument checks, and the
 * responses for publishes (acked by the writer) and reads (run on reader threads). The HS_T_HTTP
 * transport owns a request while its commit or read is in flight. Runs on IO threads, except
 * the run_* functions, which run on reader threads and only build a response body.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/codec.h"
#include "proto/json.h"
#include "proto/route.h"
#include "ringbuf/budget.h"
#include "server/auth.h"
#include "server/http/http.h"
#include "util/time.h"

/* Inbox messages of the HTTP transport. */
enum { MSG_INGEST = HS_NODE_T(HS_T_HTTP, 0), MSG_READ = HS_NODE_T(HS_T_HTTP, 1) };

/* A request's state while its commit or read is in flight (the connection's transport data):
 * the other thread holds a pointer back, cleared when the request ends first. */
typedef struct http_conn {
    hs_ingest_t *pending;
    struct hs_http_read *pending_read;
} http_conn_t;

_Static_assert(sizeof(http_conn_t) <= HS_CONN_TDATA, "http_conn_t must fit hs_conn_t.tdata");

static const hs_transport_t http_transport;

static http_conn_t *hc(hs_conn_t *c)
{
    return hs_conn_tdata(c, http_conn_t);
}

typedef enum { READ_EVENTS, READ_INFO, READ_LIST } read_kind_t;

struct hs_http_read {
    hs_read_req_t base; /* base.node doubles as the IO inbox node */
    hs_io_t *io;
    hs_conn_t *conn; /* NULL once the connection closed */
    hs_server_t *srv;
    read_kind_t kind;
    char stream[HS_NAME_MAX + 1];
    size_t stream_len;
    char after[HS_NAME_MAX + 1];
    size_t after_len;
    int64_t from;
    bool has_from, backward;
    size_t limit;
    /* result */
    int status; /* HTTP status */
    char *body;
    size_t len, cap;
    size_t count;
    size_t seen;         /* READ_LIST: rows looked at (count: those the principal may read) */
    hs_principal_t *who; /* READ_LIST: whose list (a reference), NULL when auth is off */
    int64_t last_seq;
    bool oom;
    bool spent;          /* the read budget could not take the body's next growth */
    hs_budget_t *budget; /* the server's read budget: the body is charged to it */
    size_t page_cap;     /* most event bytes in the answer (--max-page-bytes) */
};

/* The end of a read whose page is full (not an error). */
#define PAGE_FULL 1

/* ---- small helpers ---- */

/* Who is asking (c->who): false when refused (answered 401 / 403). */
static bool identify(hs_conn_t *c, const char *path)
{
    char why[256];
    int rc = hs_auth_identify(c->io->srv, c->wsi, path, &c->who, why, sizeof(why));
    if (rc == HS_EFORBIDDEN)
        hs_conn_error(c, 403, "Forbidden", "%s", why);
    else if (rc == HS_ENOMEM)
        hs_conn_error(c, 503, "Unavailable", "out of memory");
    else if (rc)
        hs_conn_error(c, 401, "Unauthorized", "%s", why);
    return rc == 0;
}

static const char *const action_names[] = {"publish",   "close",  "read",
                                           "subscribe", "delete", "admin"};

/* Whether c's principal may do action on the stream: false when refused (answered 403). */
static bool permit(hs_conn_t *c, hs_action_t action, const char *stream, size_t len)
{
    if (hs_auth_allows(c->io->srv, c->who, action, stream, len))
        return true;
    hs_conn_error(c, 403, "Forbidden", "no %s permission on stream '%.*s'", action_names[action],
                  (int)(len > 300 ? 300 : len), stream);
    return false;
}

static bool buf_reserve(struct hs_http_read *r, size_t more)
{
    if (r->len + more <= r->cap)
        return true;
    size_t nc = r->cap ? r->cap : 4096;
    while (nc < r->len + more)
        nc *= 2;
    /* the answer's memory is charged to the read budget until it is written (or dropped) */
    if (!hs_budget_take(r->budget, nc - r->cap)) {
        r->spent = true;
        return false;
    }
    char *p = realloc(r->body, nc);
    if (!p) {
        hs_budget_give(r->budget, nc - r->cap);
        r->oom = true;
        return false;
    }
    r->body = p;
    r->cap = nc;
    return true;
}

/* Frees a read's answer and gives its charge back. */
static void read_free(struct hs_http_read *r)
{
    hs_principal_free(r->who);
    if (r->cap)
        hs_budget_give(r->budget, r->cap);
    free(r->body);
    free(r);
}

static void buf_put(struct hs_http_read *r, const char *s, size_t n)
{
    if (buf_reserve(r, n)) {
        memcpy(r->body + r->len, s, n);
        r->len += n;
    }
}

__attribute__((format(printf, 2, 3))) static void buf_printf(struct hs_http_read *r,
                                                             const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        buf_put(r, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void buf_quote(struct hs_http_read *r, const char *s, size_t n)
{
    if (buf_reserve(r, hs_json_quoted_len(s, n)))
        r->len += hs_json_quote(s, n, r->body + r->len);
}

/* A query argument's value ("name=..."), decoded, into buf: 1 when present, 0 when absent; -1
 * (after answering 400) when it does not fit buf. */
static int arg(hs_conn_t *c, const char *name_eq, char *buf, size_t len, const char **val)
{
    int rc = hs_conn_arg(c, name_eq, buf, len, val);
    if (rc < 0)
        hs_conn_error(c, 400, "BadRequest", "the %.*s argument is longer than %zu bytes",
                      (int)strlen(name_eq) - 1, name_eq, len - strlen(name_eq) - 1);
    return rc;
}

static void stream_info_json(struct hs_http_read *r, const char *name, size_t len,
                             const hs_stream_head_t *h, bool with_subs)
{
    char created[32], updated[32];
    hs_format_time(h->created_us, created);
    hs_format_time(h->updated_us, updated);
    buf_put(r, "{\"name\":", 8);
    buf_quote(r, name, len);
    buf_printf(r,
               ",\"version\":%lld,\"position\":%lld,\"closed\":%s,\"created\":\"%s\","
               "\"updated\":\"%s\"",
               (long long)h->version, (long long)h->position, h->closed ? "true" : "false", created,
               updated);
    if (with_subs)
        buf_printf(r, ",\"subscribers\":%zu", hs_fanout_count(r->srv->fanout, name, len));
    buf_put(r, "}", 1);
}

/* ---- reads (reader threads) ---- */

static int on_event(void *ctx, const hs_record_t *rec)
{
    struct hs_http_read *r = ctx;
    size_t need = hs_record_json_len(rec) + 1;
    /* a page ends early rather than grow past --max-page-bytes or the read budget; it always
     * holds one event, however large (next continues after the last one it holds) */
    if (r->count && r->len + need > r->page_cap)
        return PAGE_FULL;
    if (!buf_reserve(r, need)) {
        if (r->spent && r->count) {
            r->spent = false;
            return PAGE_FULL;
        }
        return HS_ENOMEM;
    }
    if (r->count)
        r->body[r->len++] = ',';
    r->len += hs_record_json(rec, r->body + r->len);
    r->count++;
    r->last_seq =
        r->stream_len == 4 && memcmp(r->stream, "$all", 4) == 0 ? rec->position : rec->version;
    return 0;
}

static int on_stream(void *ctx, const char *name, size_t len, const hs_stream_head_t *h)
{
    struct hs_http_read *r = ctx;
    r->seen++;
    memcpy(r->after, name, len < HS_NAME_MAX ? len : HS_NAME_MAX);
    r->after_len = len < HS_NAME_MAX ? len : HS_NAME_MAX;
    /* only the streams the principal may read are listed (next still pages past the others) */
    if (!hs_auth_allows(r->srv, r->who, HS_ACTION_READ, name, len))
        return 0;
    if (r->count)
        buf_put(r, ",", 1);
    stream_info_json(r, name, len, h, true);
    r->count++;
    return r->oom ? HS_ENOMEM : 0;
}

static int run_read(hs_store_t *st, hs_read_req_t *base)
{
    struct hs_http_read *r = (struct hs_http_read *)base;
    bool all = r->stream_len == 4 && memcmp(r->stream, "$all", 4) == 0;
    int rc;
    hs_stream_head_t h;
    switch (r->kind) {
    case READ_EVENTS:
        if (!all) {
            rc = hs_store_get_stream(st, r->stream, r->stream_len, &h);
            if (rc == HS_ENOENT) {
                r->status = 404;
                return 0;
            }
            if (rc)
                return rc;
        }
        buf_put(r, "{\"events\":[", 11);
        int64_t after = r->has_from ? r->from : 0; /* backward from 0: the newest */
        rc = all ? hs_store_read_all(st, after, r->backward, r->limit, on_event, r)
                 : hs_store_read_stream(st, r->stream, r->stream_len, after, r->backward, r->limit,
                                        on_event, r);
        if (rc == PAGE_FULL)
            rc = 0;
        if (rc)
            return r->spent ? 0 : rc;
        buf_printf(r, "],\"next\":%lld}", (long long)(r->count ? r->last_seq : after));
        r->status = 200;
        return r->oom ? HS_ENOMEM : 0;
    case READ_INFO:
        rc = hs_store_get_stream(st, r->stream, r->stream_len, &h);
        if (rc == HS_ENOENT) {
            r->status = 404;
            return 0;
        }
        if (rc)
            return rc;
        stream_info_json(r, r->stream, r->stream_len, &h, true);
        r->status = 200;
        return r->oom ? HS_ENOMEM : 0;
    case READ_LIST:
        buf_put(r, "{\"streams\":[", 12);
        rc = hs_store_list_streams(st, r->stream, r->stream_len, r->after, r->after_len, r->limit,
                                   on_stream, r);
        if (rc)
            return rc;
        buf_put(r, "],\"next\":", 9);
        if (r->seen == r->limit)
            buf_quote(r, r->after, r->after_len);
        else
            buf_put(r, "null", 4);
        buf_put(r, "}", 1);
        r->status = 200;
        return r->oom ? HS_ENOMEM : 0;
    }
    return HS_EINVAL;
}

static void read_done(hs_read_req_t *base)
{
    struct hs_http_read *r = (struct hs_http_read *)base;
    r->base.node.kind = MSG_READ;
    hs_io_post(r->io, &r->base.node); /* once pushed, the IO thread may free r */
}

static void on_read_done(struct hs_http_read *r)
{
    hs_conn_t *c = r->conn;
    if (c) {
        hc(c)->pending_read = NULL;
        if (r->spent) {
            c->retry_after = true;
            hs_conn_error(c, 503, "Unavailable",
                          "the server holds its whole read budget (--read-budget) for other "
                          "clients' answers; retry shortly");
        } else if (r->base.status || r->oom) {
            hs_conn_error(c, 503, "Unavailable", "the database read failed");
        } else if (r->status == 404) {
            hs_conn_error(c, 404, "NotFound", "no stream named '%.*s'", (int)r->stream_len,
                          r->stream);
        } else if (hs_conn_respond(c, r->status, "application/json", r->body, r->len, NULL, NULL) ==
                   0) {
            /* the copy in the response takes over the charge, until it is written */
            hs_conn_charge(c, r->budget, r->cap);
            r->cap = 0;
        }
    }
    read_free(r);
}

static void submit_read(hs_conn_t *c, struct hs_http_read *r)
{
    r->base.run = run_read;
    r->base.done = read_done;
    r->io = c->io;
    r->conn = c;
    r->srv = c->io->srv;
    r->budget = c->io->srv->read_budget;
    r->page_cap = c->io->srv->cfg.max_page_bytes;
    r->base.owner = hs_read_owner(c->wsi, c);
    c->owner = &http_transport;
    hc(c)->pending_read = r;
    if (!hs_reader_submit(c->io->srv->reader, &r->base)) {
        hc(c)->pending_read = NULL;
        read_free(r);
        hs_conn_error(c, 503, "Unavailable", "the server is stopping");
    }
}

/* ---- writes ---- */

/* Submits an append or admin entry for c (the ring, else the backlog, else 429). */
static void submit(hs_conn_t *c, hs_ingest_t *e)
{
    e->node.kind = MSG_INGEST;
    e->conn = c;
    c->owner = &http_transport;
    hc(c)->pending = e;
    if (hs_io_submit_entry(c->io, e))
        return;
    hc(c)->pending = NULL;
    hs_ingest_free(e);
    hs_conn_error(c, 429, "TooManyRequests", "the writer is %d entries behind; retry later",
                  HS_BACKLOG_MAX);
}

static void publish(hs_conn_t *c, const char *stream, size_t len)
{
    hs_server_t *srv = c->io->srv;
    c->m_publish = true; /* its answer, whatever it is, is counted */
    hs_wsi_data_t *wd = lws_get_opaque_user_data(c->wsi);
    if (wd && srv->cfg.max_publishes_per_s > 0 && !wd->publishes &&
        !(wd->publishes = calloc(1, sizeof(*wd->publishes)))) {
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    if (wd && wd->publishes &&
        !hs_rate_take(wd->publishes, srv->cfg.max_publishes_per_s, hs_now_ms())) {
        c->retry_after = true;
        hs_conn_error(c, 429, "TooManyRequests",
                      "more than %d publishes per second on this connection",
                      srv->cfg.max_publishes_per_s);
        return;
    }
    int rc = hs_stream_name_check_publish(stream, len);
    if (rc) {
        hs_conn_error(c, 400, "BadRequest",
                      rc == HS_ERESERVED ? "stream names starting with '$' are reserved"
                                         : "invalid stream name");
        return;
    }
    int64_t expected = HS_ANY_VERSION;
    char ev[32];
    int evl = lws_hdr_custom_length(c->wsi, "expected-version:", 17);
    if (evl > 0) {
        if (evl >= (int)sizeof(ev) ||
            lws_hdr_custom_copy(c->wsi, ev, sizeof(ev), "expected-version:", 17) < 0 ||
            !hs_route_uint(ev, strlen(ev), &expected)) {
            hs_conn_error(c, 400, "BadRequest", "Expected-Version must be a version >= 0");
            return;
        }
    }
    size_t blen;
    const char *body = hs_conn_body(c, &blen);
    if (!blen) {
        hs_conn_error(c, 400, "BadRequest", "the body must be an event or an array of events");
        return;
    }
    hs_ingest_t *e;
    char why[256];
    rc = hs_codec_parse_publish(body, blen, stream, len, srv->cfg.max_event, &e, why, sizeof(why));
    if (rc == HS_ETOOLARGE) {
        hs_conn_error(c, 413, "TooLarge", "%s", why);
        return;
    }
    if (rc == HS_ENOMEM) {
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    if (rc) {
        hs_conn_error(c, 400, "BadRequest", "%s", why);
        return;
    }
    e->expected_version = expected;
    char why2[256];
    if (hs_server_events_hook(srv, e, why2, sizeof(why2))) {
        hs_ingest_free(e);
        hs_conn_error(c, 400, "InvalidEvent", "InvalidEvent: %s", why2);
        return;
    }
    submit(c, e);
}

static void admin(hs_conn_t *c, hs_ingest_kind_t kind, const char *stream, size_t len)
{
    int rc = hs_stream_name_check_publish(stream, len);
    if (rc) {
        hs_conn_error(c, 400, "BadRequest", "invalid stream name");
        return;
    }
    hs_ingest_t *e = hs_codec_build_admin(kind, stream, len);
    if (!e) {
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    submit(c, e);
}

static void on_ingest_done(hs_ingest_t *e)
{
    hs_conn_t *c = e->conn;
    if (!c) {
        hs_ingest_free(e); /* the client went away; the outcome stands in the database */
        return;
    }
    hc(c)->pending = NULL;
    char body[HS_PUBLISH_RESULT_MAX];
    size_t o = 0;
    switch (e->status) {
    case 0:
        if (e->kind == HS_INGEST_DELETE) {
            hs_conn_respond(c, 204, "application/json", "", 0, NULL, NULL);
            break;
        }
        o += (size_t)snprintf(body, sizeof(body), "{\"stream\":");
        o += hs_json_quote(e->stream, e->stream_len, body + o);
        if (e->kind == HS_INGEST_CLOSE) {
            o += (size_t)snprintf(body + o, sizeof(body) - o, ",\"closed\":true,\"version\":%lld}",
                                  (long long)e->result.last_version);
            hs_conn_respond(c, 200, "application/json", body, o, NULL, NULL);
            break;
        }
        o = hs_publish_result_json(e, body, sizeof(body));
        hs_conn_respond(c, 201, "application/json", body, o, NULL, NULL);
        break;
    case HS_ECONFLICT: {
        long long exp = (long long)e->expected_version, act = (long long)e->result.actual_version;
        o = (size_t)snprintf(
            body, sizeof(body),
            "{\"error\":\"WrongExpectedVersion\",\"message\":\"WrongExpectedVersion:"
            " expected %lld, actual %lld\",\"actual\":%lld}",
            exp, act, act);
        hs_conn_respond(c, 409, "application/json", body, o, NULL, NULL);
        break;
    }
    case HS_ECLOSED:
        hs_conn_error(c, 410, "StreamClosed", "StreamClosed: %.*s", (int)e->stream_len, e->stream);
        break;
    case HS_ENOENT:
        hs_conn_error(c, 404, "NotFound", "no stream named '%.*s'", (int)e->stream_len, e->stream);
        break;
    case HS_EINVAL:
        hs_conn_error(c, 400, "BadRequest",
                      "event ids repeat within the publish, or only some of them were already "
                      "appended: retry with exactly the original events");
        break;
    case HS_EUNKNOWN:
        hs_conn_error(c, 503, "Unavailable",
                      "%s; the events may have been appended: retry with the same event ids",
                      hs_strerror(e->status));
        break;
    default:
        hs_conn_error(c, 503, "Unavailable", "nothing was appended: %s", hs_strerror(e->status));
        break;
    }
    hs_ingest_free(e);
}

/* ---- routing ---- */

static bool parse_limit(hs_conn_t *c, size_t def, size_t *out)
{
    char buf[40];
    const char *v;
    int64_t n;
    int rc = arg(c, "limit=", buf, sizeof(buf), &v);
    if (rc < 0)
        return false;
    if (!rc) {
        *out = def;
        return true;
    }
    if (!hs_route_uint(v, strlen(v), &n) || n < 1) {
        hs_conn_error(c, 400, "BadRequest", "limit must be a positive integer");
        return false;
    }
    *out = n > 1000 ? 1000 : (size_t)n;
    return true;
}

static void get_events(hs_conn_t *c, const char *stream, size_t len)
{
    if (hs_stream_name_check(stream, len) ||
        (stream[0] == '$' && !(len == 4 && memcmp(stream, "$all", 4) == 0))) {
        hs_conn_error(c, 400, "BadRequest", "invalid stream name");
        return;
    }
    char accept[256] = "";
    lws_hdr_copy(c->wsi, accept, sizeof(accept), WSI_TOKEN_HTTP_ACCEPT);
    bool sse = strstr(accept, "text/event-stream") != NULL;
    if (!permit(c, sse ? HS_ACTION_SUBSCRIBE : HS_ACTION_READ, stream, len))
        return;
    if (sse) {
        hs_sse_start(c, stream, len);
        return;
    }
    struct hs_http_read *r = calloc(1, sizeof(*r));
    if (!r) {
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    r->kind = READ_EVENTS;
    memcpy(r->stream, stream, len);
    r->stream_len = len;
    char buf[64];
    const char *v;
    int rc = arg(c, "from=", buf, sizeof(buf), &v);
    if (rc < 0 || (rc && !hs_route_uint(v, strlen(v), &r->from))) {
        free(r);
        if (rc > 0)
            hs_conn_error(c, 400, "BadRequest", "from must be an integer >= 0");
        return;
    }
    r->has_from = rc > 0;
    rc = arg(c, "direction=", buf, sizeof(buf), &v);
    if (rc < 0 || (rc && strcmp(v, "forward") && strcmp(v, "backward"))) {
        free(r);
        if (rc > 0)
            hs_conn_error(c, 400, "BadRequest", "direction must be forward or backward");
        return;
    }
    r->backward = rc > 0 && !strcmp(v, "backward");
    if (!parse_limit(c, 100, &r->limit)) {
        free(r);
        return;
    }
    submit_read(c, r);
}

static void get_info(hs_conn_t *c, const char *stream, size_t len)
{
    if (hs_stream_name_check(stream, len)) {
        hs_conn_error(c, 400, "BadRequest", "invalid stream name");
        return;
    }
    struct hs_http_read *r = calloc(1, sizeof(*r));
    if (!r) {
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    r->kind = READ_INFO;
    memcpy(r->stream, stream, len);
    r->stream_len = len;
    submit_read(c, r);
}

static void list_streams(hs_conn_t *c)
{
    struct hs_http_read *r = calloc(1, sizeof(*r));
    if (!r) {
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    r->kind = READ_LIST;
    r->who = hs_principal_ref(c->who);
    char buf[HS_NAME_MAX + 16];
    const char *v;
    int rc = arg(c, "prefix=", buf, sizeof(buf), &v);
    if (rc > 0 && strlen(v) > HS_NAME_MAX)
        rc = -2;
    if (rc > 0) {
        r->stream_len = strlen(v);
        memcpy(r->stream, v, r->stream_len);
    }
    if (rc >= 0)
        rc = arg(c, "after=", buf, sizeof(buf), &v);
    if (rc > 0 && strlen(v) > HS_NAME_MAX)
        rc = -2;
    if (rc > 0) {
        r->after_len = strlen(v);
        memcpy(r->after, v, r->after_len);
    }
    if (rc < 0) {
        read_free(r);
        if (rc == -2)
            hs_conn_error(c, 400, "BadRequest",
                          "prefix and after are at most %d bytes (a "
                          "stream name)",
                          HS_NAME_MAX);
        return;
    }
    if (!parse_limit(c, 100, &r->limit)) {
        read_free(r);
        return;
    }
    submit_read(c, r);
}

static void readyz(hs_conn_t *c)
{
    char why[300];
    if (!hs_writer_ready(c->io->srv->writer, why, sizeof why - 1)) {
        size_t n = strlen(why);
        why[n++] = '\n';
        hs_conn_respond(c, 503, "text/plain", why, n, NULL, NULL);
        return;
    }
    hs_conn_respond(c, 200, "text/plain", "ready\n", 6, NULL, NULL);
}

/* Every path no other front end registered (server.h routes). */
static void route(hs_conn_t *c, const char *path, void *arg)
{
    (void)arg;
    int m = c->method;
    bool get = m == WSI_TOKEN_GET_URI, post = m == WSI_TOKEN_POST_URI,
         del = m == WSI_TOKEN_DELETE_URI;
    hs_route_t rt;
    hs_route_parse(path, strlen(path), &rt);
    const char *name = rt.name;
    size_t nlen = rt.name_len;
    switch (rt.kind) {
    case HS_ROUTE_HEALTHZ:
        if (get)
            hs_conn_respond(c, 200, "text/plain", "ok\n", 3, NULL, NULL);
        else
            hs_conn_not_allowed(c, "GET");
        return;
    case HS_ROUTE_READYZ:
        if (get)
            readyz(c);
        else
            hs_conn_not_allowed(c, "GET");
        return;
    default:
        break;
    }
    /* everything but the health checks: who is asking, then whether they may */
    if (!identify(c, path))
        return;
    switch (rt.kind) {
    case HS_ROUTE_HEALTHZ:
    case HS_ROUTE_READYZ:
        return;
    case HS_ROUTE_STREAMS:
        if (get)
            list_streams(c);
        else
            hs_conn_not_allowed(c, "GET");
        return;
    case HS_ROUTE_STREAM:
        if (get) {
            if (permit(c, HS_ACTION_READ, name, nlen))
                get_info(c, name, nlen);
        } else if (del) {
            if (permit(c, HS_ACTION_DELETE, name, nlen))
                admin(c, HS_INGEST_DELETE, name, nlen);
        } else {
            hs_conn_not_allowed(c, "GET, DELETE");
        }
        return;
    case HS_ROUTE_EVENTS:
        if (get) {
            get_events(c, name, nlen); /* read or subscribe: checked there */
        } else if (post) {
            if (permit(c, HS_ACTION_PUBLISH, name, nlen))
                publish(c, name, nlen);
        } else {
            hs_conn_not_allowed(c, "GET, POST");
        }
        return;
    case HS_ROUTE_CLOSE:
        if (post) {
            if (permit(c, HS_ACTION_CLOSE, name, nlen))
                admin(c, HS_INGEST_CLOSE, name, nlen);
        } else {
            hs_conn_not_allowed(c, "POST");
        }
        return;
    case HS_ROUTE_HUB: /* the SignalR front end's, when it is registered */
    case HS_ROUTE_NEGOTIATE:
    case HS_ROUTE_NONE:
        break;
    }
    hs_conn_error(c, 404, "NotFound", "no route for %.300s", path);
}

/* ---- the transport ---- */

static void http_closed(hs_conn_t *c)
{
    http_conn_t *t = hc(c);
    if (t->pending) {
        t->pending->conn = NULL;
        t->pending = NULL;
    }
    if (t->pending_read) {
        t->pending_read->conn = NULL;
        t->pending_read = NULL;
    }
}

static void on_message(hs_io_t *io, hs_mpsc_node_t *n)
{
    (void)io;
    if (n->kind == MSG_INGEST)
        on_ingest_done(hs_container_of(n, hs_ingest_t, node));
    else if (n->kind == MSG_READ)
        on_read_done((struct hs_http_read *)n);
}

static void drop_message(hs_io_t *io, hs_mpsc_node_t *n)
{
    (void)io;
    if (n->kind == MSG_INGEST)
        hs_ingest_free(hs_container_of(n, hs_ingest_t, node));
    else if (n->kind == MSG_READ)
        read_free((struct hs_http_read *)n);
}

static const hs_transport_t http_transport = {
    .id = HS_T_HTTP,
    .name = "http",
    .on_message = on_message,
    .drop_message = drop_message,
    .http_closed = http_closed,
};

void hs_http_register(hs_server_t *srv)
{
    hs_server_add_transport(srv, &http_transport);
    hs_server_add_transport(srv, hs_sse_transport());
    hs_server_add_route(srv, NULL, route, NULL);
    hs_server_add_cors_headers(srv, "expected-version, last-event-id");
}
