/*
 * An HTTP request on an IO thread (net.h): its request line and headers checked, its body read
 * (Content-Length or chunked, bounded by --max-body and --request-timeout-ms), then routed
 * (server.h routes; an OPTIONS preflight is answered here); its answer queued and written in
 * bounded pieces; hang-ups watched while the answer is outstanding; its end handed to the
 * transport that owns what it started. io.c calls in from the lws callback. No protocol of
 * hubstream's here.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include "proto/json.h"
#include "ringbuf/budget.h"
#include "server/net/net.h"
#include "util/time.h"
#include "util/utf8.h"

typedef hs_wsi_data_t wsi_data_t;

/* --access-log: a request's record, from its headers until its answer (or a stream's head) is
 * queued. */
struct hs_access {
    int64_t t0_us; /* when the request's headers were in */
    uint64_t id;   /* the request's number on its IO thread */
    char line[];   /* "METHOD path" */
};

static hs_io_t *io_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

/* ---- responses ---- */

/* A response of len bytes to queue (after LWS_PRE of headroom, with room for `cap` bytes);
 * NULL on ENOMEM. */
static hs_conn_resp_t *resp_new(size_t cap)
{
    hs_conn_resp_t *r = malloc(sizeof(*r) + LWS_PRE + cap);
    if (r)
        *r = (hs_conn_resp_t){0};
    return r;
}

void hs_conn_charge(hs_conn_t *c, hs_budget_t *budget, size_t n)
{
    if (!c->resp) { /* nothing queued to carry the charge: it goes back at once */
        hs_budget_give(budget, n);
        return;
    }
    if (c->resp->budget) {
        hs_budget_give(c->resp->budget, c->resp->charge);
        hs_budget_unref(c->resp->budget);
    }
    c->resp->budget = hs_budget_ref(budget);
    c->resp->charge = n;
}

/* Drops a queued response (and gives back its charge). */
static void resp_drop(hs_conn_t *c)
{
    hs_conn_resp_t *r = c->resp;
    if (!r)
        return;
    if (r->budget) {
        hs_budget_give(r->budget, r->charge);
        hs_budget_unref(r->budget);
    }
    free(r);
    c->resp = NULL;
}

/* Queues r (its len set) and asks for a writable callback. */
static void resp_queue(hs_conn_t *c, hs_conn_resp_t *r, bool final)
{
    resp_drop(c);
    c->resp = r;
    c->resp_final = final;
    lws_callback_on_writable(c->wsi);
}

int hs_metrics_pub_slot(int status)
{
    static const int codes[] = {201, 400, 401, 403, 404, 408, 409, 410, 413, 429, 503};
    for (int i = 0; i < (int)(sizeof codes / sizeof codes[0]); i++)
        if (codes[i] == status)
            return i;
    return HS_MPUB_OTHER;
}

/* --access-log: the request's id (its IO thread and its number there), for its access record
 * and its answer's X-Request-Id; "" when the access log is off. */
static const char *request_id(const hs_conn_t *c, char id[40])
{
    id[0] = '\0';
    if (c->access)
        snprintf(id, 40, "%x-%llx", (unsigned)c->io->index, (unsigned long long)c->access->id);
    return id;
}

/* --access-log: the record of a request, once its answer (or a stream's head) is queued. */
static void access_record(hs_conn_t *c, int status, size_t bytes)
{
    if (!c->access)
        return;
    char st[8], by[24], ms[32], id[40], peer[64] = "";
    snprintf(st, sizeof st, "%d", status);
    snprintf(by, sizeof by, "%zu", bytes);
    snprintf(ms, sizeof ms, "%.3f", (double)(hs_mono_us() - c->access->t0_us) / 1000.0);
    request_id(c, id);
    lws_get_peer_simple(c->wsi, peer, sizeof peer);
    char *sp = strchr(c->access->line, ' ');
    if (sp)
        *sp = '\0';
    /* the token's user, once a route has asked who the client is (none on a 404, say) */
    const char *user = c->who ? hs_principal_user(c->who) : NULL;
    hs_log(&c->io->srv->log, HS_LOG_INFO, "request", "method", c->access->line, "path",
           sp ? sp + 1 : "", "status", st, "bytes", by, "ms", ms, "peer", peer, "request_id", id,
           user && user[0] ? "user" : NULL, user, NULL);
    free(c->access);
    c->access = NULL;
}

int hs_conn_respond_hdrs(hs_conn_t *c, int status, const char *ctype, const char *body, size_t len,
                         const char *const *hdrs)
{
    char id[40];
    request_id(c, id);
    access_record(c, status, len);
    /* the caller's headers (the first 5), then the connection's own (at most 4) */
    const char *h[2 * (5 + 4) + 1];
    size_t n = 0, hlen = 0;
    bool own_cache = false;
    for (size_t i = 0; hdrs && hdrs[i] && i < 2 * 5; i += 2) {
        h[n++] = hdrs[i];
        h[n++] = hdrs[i + 1];
        own_cache |= !strcmp(hdrs[i], "cache-control:");
    }
    if (c->close_after) {
        h[n++] = "connection:";
        h[n++] = "close";
    }
    if (c->retry_after) {
        h[n++] = "retry-after:";
        h[n++] = "1";
    }
    if (!own_cache) { /* no-store, unless the caller gave a cache-control of its own */
        h[n++] = "cache-control:";
        h[n++] = "no-store";
    }
    if (id[0]) {
        h[n++] = "x-request-id:";
        h[n++] = id;
    }
    h[n] = NULL;
    for (size_t i = 0; i < n; i += 2)
        hlen += strlen(h[i]) + strlen(h[i + 1]) + 4;
    c->retry_after = false;
    if (c->m_publish) {
        c->m_publish = false;
        hs_ctr_add(&c->io->m.publishes[0][hs_metrics_pub_slot(status)], 1);
    }
    size_t cap = 1024 + hlen + len;
    hs_conn_resp_t *r = resp_new(cap);
    if (!r) {
        /* no answer can be made: close the connection rather than leave the client waiting */
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return -1;
    }
    unsigned char *start = r->buf + LWS_PRE, *p = start, *end = start + cap - len - 1;
    int bad = lws_add_http_common_headers(c->wsi, (unsigned int)status, ctype, (lws_filepos_t)len,
                                          &p, end);
    for (size_t i = 0; !bad && i < n; i += 2)
        bad = lws_add_http_header_by_name(c->wsi, (const unsigned char *)h[i],
                                          (const unsigned char *)h[i + 1], (int)strlen(h[i + 1]),
                                          &p, end);
    if (bad || hs_cors_headers(c->wsi, &p, end) || lws_finalize_http_header(c->wsi, &p, end)) {
        free(r);
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return -1;
    }
    if (len)
        memcpy(p, body, len);
    p += len;
    r->len = (size_t)(p - start);
    resp_queue(c, r, true);
    return 0;
}

int hs_conn_respond(hs_conn_t *c, int status, const char *ctype, const char *body, size_t len,
                    const char *extra_name, const char *extra_value)
{
    const char *h[] = {extra_name, extra_value, NULL};
    return hs_conn_respond_hdrs(c, status, ctype, body, len, h);
}

/* The answer of hs_conn_error and hs_conn_not_allowed: {"error": code, "message": msg}. */
static int error_answer(hs_conn_t *c, int status, const char *code, const char *msg,
                        const char *allow)
{
    /* msg may carry client text (a path, a stream name); quoting can make every byte of it six
     * (a control character, or a byte that is not UTF-8), so body is sized for the worst case */
    char body[512 * 6 + 64];
    size_t cl = strnlen(code, 32), ml = strnlen(msg, 511), o = 0;
    memcpy(body, "{\"error\":\"", 10);
    o = 10;
    memcpy(body + o, code, cl); /* a constant of ours, plain ASCII */
    o += cl;
    memcpy(body + o, "\",\"message\":", 12);
    o += 12;
    o += hs_json_quote(msg, hs_utf8_boundary(msg, ml), body + o);
    body[o++] = '}';
    const char *xn = NULL, *xv = NULL;
    if (status == 401) {
        xn = "www-authenticate:";
        xv = "Bearer";
    } else if (allow) {
        xn = "allow:";
        xv = allow;
    }
    return hs_conn_respond(c, status, "application/json", body, o, xn, xv);
}

int hs_conn_not_allowed(hs_conn_t *c, const char *allow)
{
    char msg[128];
    snprintf(msg, sizeof msg, "use %s", allow);
    return error_answer(c, 405, "MethodNotAllowed", msg, allow);
}

int hs_conn_error(hs_conn_t *c, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return error_answer(c, status, code, msg, NULL);
}

int hs_wsi_respond(struct lws *wsi, int status, const char *body)
{
    size_t len = strlen(body);
    unsigned char buf[LWS_PRE + 2048];
    if (len > 1024)
        len = 1024;
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - len - 1;
    if (lws_add_http_common_headers(wsi, (unsigned int)status, "text/plain", (lws_filepos_t)len, &p,
                                    end) ||
        (status == 401 &&
         lws_add_http_header_by_name(wsi, (const unsigned char *)"www-authenticate:",
                                     (const unsigned char *)"Bearer", 6, &p, end)) ||
        hs_cors_headers(wsi, &p, end) || lws_finalize_http_header(wsi, &p, end))
        return -1;
    memcpy(p, body, len);
    p += len;
    return lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL) < 0 ? -1 : 0;
}

int hs_conn_stream_head(hs_conn_t *c, const char *ctype, const char *extra)
{
    char id[40];
    request_id(c, id);
    access_record(c, 200, 0); /* a stream: its answer goes on after the head */
    size_t el = strlen(extra), cap = 1024 + el;
    hs_conn_resp_t *r = resp_new(cap);
    if (!r)
        return -1;
    unsigned char *start = r->buf + LWS_PRE, *p = start, *end = start + cap - el;
    if (lws_add_http_common_headers(c->wsi, 200, ctype, LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
        lws_add_http_header_by_name(c->wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-cache", 8, &p, end) ||
        lws_add_http_header_by_name(c->wsi, (const unsigned char *)"x-accel-buffering:",
                                    (const unsigned char *)"no", 2, &p, end) ||
        (id[0] && lws_add_http_header_by_name(
                      c->wsi, (const unsigned char *)"x-request-id:", (const unsigned char *)id,
                      (int)strlen(id), &p, end)) ||
        hs_cors_headers(c->wsi, &p, end) || lws_finalize_http_header(c->wsi, &p, end)) {
        free(r);
        return -1;
    }
    memcpy(p, extra, el);
    p += el;
    r->len = (size_t)(p - start);
    c->stream = true;
    lws_http_mark_sse(c->wsi); /* no Content-Length: the answer ends when the socket does */
    resp_queue(c, r, false);
    return 0;
}

/* A CORS preflight, for every path: browsers send one before a cross-origin POST with custom
 * headers (the SignalR clients' negotiate) and before DELETE. */
static void preflight(hs_conn_t *c)
{
    const char *allow =
        c->io->srv->cors_headers[0] ? c->io->srv->cors_headers : "authorization, content-type";
    const char *const h[][2] = {
        {"access-control-allow-methods:", "GET, POST, DELETE, OPTIONS"},
        {"access-control-allow-headers:", allow},
        {"access-control-max-age:", "600"},
    };
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf);
    if (lws_add_http_common_headers(c->wsi, 204, NULL, 0, &p, end) ||
        hs_cors_headers(c->wsi, &p, end)) {
        hs_conn_error(c, 500, "Internal", "headers do not fit");
        return;
    }
    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
        if (lws_add_http_header_by_name(c->wsi, (const unsigned char *)h[i][0],
                                        (const unsigned char *)h[i][1], (int)strlen(h[i][1]), &p,
                                        end))
            return;
    if (lws_finalize_http_header(c->wsi, &p, end))
        return;
    hs_conn_resp_t *r = resp_new((size_t)(p - start));
    if (!r)
        return;
    r->len = (size_t)(p - start);
    memcpy(r->buf + LWS_PRE, start, r->len);
    resp_queue(c, r, true);
}

/* Serves a request whose body (if any) is in: a preflight here, else the first route that
 * takes its path. */
static void route(hs_conn_t *c, const char *path)
{
    if (c->method == WSI_TOKEN_OPTIONS_URI) {
        preflight(c);
        return;
    }
    hs_server_t *srv = c->io->srv;
    /* exact paths, then prefixes, then the catch-all */
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < srv->nroutes; i++) {
            const char *rp = srv->routes[i].path;
            bool pre = srv->routes[i].prefix;
            if (pass == 0   ? rp && !pre && !strcmp(rp, path)
                : pass == 1 ? rp && pre && !strncasecmp(rp, path, strlen(rp))
                            : !rp) {
                srv->routes[i].fn(c, path, srv->routes[i].arg);
                return;
            }
        }
    hs_conn_error(c, 404, "NotFound", "no route for %.300s", path);
}

/* ---- query arguments ---- */

int hs_conn_arg(hs_conn_t *c, const char *name_eq, char *buf, size_t cap, const char **val)
{
    return hs_wsi_arg(c->wsi, name_eq, buf, cap, val);
}

/* ---- hang-ups during an outstanding answer (server.h) ---- */

void hs_conn_watch_hangup(hs_conn_t *c)
{
    if (c->hup_watched || !c->wsi || c->io->hup_ep < 0)
        return;
    int fd = lws_get_socket_fd(c->wsi);
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (fd < 0)
        return;
    /* a keep-alive connection keeps its fd across requests, and each request a new c */
    if (epoll_ctl(c->io->hup_ep, EPOLL_CTL_ADD, fd, &ev) == 0 ||
        (errno == EEXIST && epoll_ctl(c->io->hup_ep, EPOLL_CTL_MOD, fd, &ev) == 0))
        c->hup_watched = true;
}

void hs_conn_unwatch_hangup(hs_conn_t *c)
{
    if (!c->hup_watched)
        return;
    c->hup_watched = false;
    int fd = lws_get_socket_fd(c->wsi);
    if (fd >= 0)
        epoll_ctl(c->io->hup_ep, EPOLL_CTL_DEL, fd, NULL);
}

/* Closes the watched connections whose client hung up. */
/* After a request was dispatched: watch it if its answer is not complete yet. */
static void watch_if_outstanding(hs_conn_t *c)
{
    if (!c->resp || !c->resp_final)
        hs_conn_watch_hangup(c);
}

/* ---- request bodies ---- */

static void body_list_add(hs_io_t *io, hs_conn_t *c)
{
    if (c->in_body_list)
        return;
    c->in_body_list = true;
    c->rx->body_prev = NULL;
    c->rx->body_next = io->body_head;
    if (io->body_head)
        io->body_head->rx->body_prev = c;
    io->body_head = c;
}

void hs_conn_body_unlist(hs_conn_t *c)
{
    if (!c->in_body_list)
        return;
    c->in_body_list = false;
    hs_conn_rx_t *rx = c->rx; /* a listed request has one */
    if (rx->body_prev)
        rx->body_prev->rx->body_next = rx->body_next;
    else
        c->io->body_head = rx->body_next;
    if (rx->body_next)
        rx->body_next->rx->body_prev = rx->body_prev;
    rx->body_prev = rx->body_next = NULL;
}

/* Appends body bytes, growing the buffer as they arrive (never to a claimed length up front:
 * a client that announces 1 MiB and sends nothing costs nothing). -1 past body_limit (0
 * without rx: a request that announced no body) or on ENOMEM (*oom set). */
static int body_append(hs_conn_t *c, const void *in, size_t len, bool *oom)
{
    *oom = false;
    hs_conn_rx_t *rx = c->rx;
    if (!rx)
        return -1;
    if (len > rx->body_limit - rx->body_len)
        return -1;
    if (rx->body_len + len > rx->body_cap) {
        size_t need = rx->body_len + len, nc = rx->body_cap ? rx->body_cap : 4096;
        while (nc < need)
            nc *= 2;
        if (nc > rx->body_limit)
            nc = rx->body_limit;
        char *nb = realloc(rx->body, nc + 1); /* + 1: room for a terminating NUL */
        if (!nb) {
            *oom = true;
            return -1;
        }
        rx->body = nb;
        rx->body_cap = nc;
    }
    memcpy(rx->body + rx->body_len, in, len);
    rx->body_len += len;
    return 0;
}

/* Refuses a request whose body is still arriving (or never will): the answer goes out at once
 * and the connection closes after it (lws would go on reading what it takes for the body). */
static void refuse_body(hs_conn_t *c, int status, const char *code, const char *msg)
{
    hs_conn_body_unlist(c);
    c->close_after = true;
    c->body_done = true;
    hs_conn_error(c, status, code, "%s", msg);
}

/* Strict Content-Length: decimal digits only (no sign, no list, no white space inside). */
static bool parse_content_length(const char *s, long long *out)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    if (!n || n > 18)
        return false;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* The body is complete: serve the request whose path was kept for it. */
static void body_complete(hs_conn_t *c)
{
    char *pcopy = c->rx->path; /* a request with a body to read has rx */
    c->rx->path = NULL;
    hs_conn_body_unlist(c);
    c->body_done = true;
    if (c->rx->body)
        c->rx->body[c->rx->body_len] = '\0';
    route(c, pcopy ? pcopy : "/");
    free(pcopy);
    watch_if_outstanding(c);
}

/* Decodes a piece of a chunked body. Returns -1 to close the connection now. */
static int chunked_body(hs_conn_t *c, const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    while (!c->body_done) {
        const uint8_t *data;
        size_t dl;
        int rc = hs_chunked_next(&c->rx->chunk, &p, end, &data, &dl);
        if (rc == HS_CHUNKED_NEED)
            return 0;
        if (rc == HS_CHUNKED_ERROR) {
            char why[128];
            snprintf(why, sizeof(why), "malformed chunked body: %s", c->rx->chunk.why);
            refuse_body(c, 400, "BadRequest", why);
            return 0;
        }
        if (rc == HS_CHUNKED_DATA) {
            bool oom;
            if (c->body_too_large)
                continue; /* refused already: read to its end, then close */
            if (body_append(c, data, dl, &oom)) {
                if (oom)
                    return -1;
                char why[128];
                snprintf(why, sizeof(why), "the body is over the %zu-byte limit",
                         c->io->srv->cfg.max_body);
                c->body_too_large = true;
                c->close_after = true;
                hs_conn_error(c, 413, "TooLarge", "%s", why);
            }
            continue;
        }
        /* HS_CHUNKED_DONE: whatever follows is not ours to read (lws still counts it as body) */
        if (c->body_too_large) {
            hs_conn_body_unlist(c);
            c->body_done = true;
            return c->resp ? 0 : -1; /* the refusal is out: close now, else after it */
        }
        c->close_after = true;
        body_complete(c);
    }
    return 0;
}

/* Tick: requests whose body did not arrive whole by its deadline get 408 and are closed. */
void hs_conn_expire_bodies(hs_io_t *io, int64_t now)
{
    for (hs_conn_t *c = io->body_head, *next; c; c = next) {
        next = c->rx->body_next;
        if (now < c->rx->body_deadline_ms)
            continue;
        if (c->close_after) {
            /* already refused (413), and still sending: stop waiting for its end */
            hs_conn_body_unlist(c);
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            continue;
        }
        refuse_body(c, 408, "RequestTimeout", "the request body did not arrive in time");
    }
}

/* Writes the next piece of the queued response: -1 to close, 1 while pieces remain (a writable
 * callback is requested), 0 once it is all out (c may then be gone: a completed transaction
 * frees it). */
static int write_response(hs_conn_t *c)
{
    hs_conn_resp_t *r = c->resp;
    size_t left = r->len - r->off;
    size_t n = left > HS_WRITE_BUDGET ? HS_WRITE_BUDGET : left;
    bool last = n == left, final = c->resp_final;
    /* lws may write framing before the buffer it is given: each piece goes from the IO
     * thread's write buffer, which has the headroom */
    unsigned char *out = c->io->wbuf + LWS_PRE;
    memcpy(out, r->buf + LWS_PRE + r->off, n);
    int w =
        hs_io_write(c->io, c->wsi, out, n, last && final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
    if (w < (int)n)
        return -1;
    r->off += n;
    if (!last) {
        lws_callback_on_writable(c->wsi);
        return 1;
    }
    resp_drop(c);
    if (c->close_after && c->body_done)
        return -1;
    wsi_data_t *wd = lws_get_opaque_user_data(c->wsi);
    if (wd && final)
        wd->busy = false;
    if (final)
        hs_conn_unwatch_hangup(c);
    if (c->close_after)
        return 0; /* keep reading (and dropping) the body; close at its end */
    if (final)
        return lws_http_transaction_completed(c->wsi) ? -1 : 0;
    return 0;
}

/* A request's body state and what it holds (taken off the body list first). */
static void rx_free(hs_conn_t *c)
{
    if (!c->rx)
        return;
    free(c->rx->body);
    free(c->rx->path);
    free(c->rx);
    c->rx = NULL;
}

/* The end of a request (its transaction or its connection): whatever it holds goes. */
void hs_conn_closed(hs_conn_t *c)
{
    hs_conn_unwatch_hangup(c);
    hs_conn_body_unlist(c);
    if (c->owner && c->owner->http_closed)
        c->owner->http_closed(c);
    c->owner = NULL;
    c->stream = false;
    hs_principal_free(c->who);
    c->who = NULL;
    free(c->access); /* a request that got no answer: nothing to log */
    c->access = NULL;
    resp_drop(c);
    rx_free(c);
}

/* ---- lws callbacks of a request (io.c) ---- */

/* LWS_CALLBACK_HTTP: a request line and its headers are in (in: the path). */
int hs_conn_on_request(struct lws *wsi, hs_conn_t *c, const char *in)
{
    if (!c)
        return -1;
    wsi_data_t *wd = lws_get_opaque_user_data(wsi);
    if (!wd || wd->busy) {
        /* HTTP/1.1 pipelining: lws starts the next request before this one's answer is
         * out, which the asynchronous answers here cannot order; close the connection (the
         * client retries unanswered requests on a new one) */
        return -1;
    }
    wd->busy = true;
    hs_io_t *io = io_of(wsi);
    c->wsi = wsi;
    c->io = io;
    hs_conn_body_unlist(c);
    rx_free(c);
    c->body_too_large = false;
    c->close_after = false;
    c->m_publish = false;
    c->body_done = false;
    c->method = hs_wsi_method(wsi);
    char path[1024];
    /* a path too long is logged by its first bytes (and answered 414 below) */
    bool too_long = c->method >= 0 && lws_hdr_total_length(wsi, c->method) >= (int)sizeof(path);
    size_t pl = strnlen((const char *)in, sizeof(path) - 1);
    memcpy(path, in, pl);
    path[pl] = '\0';
    free(c->access);
    c->access = NULL;
    uint64_t id = ++io->nrequests;
    if (io->srv->cfg.access_log) {
        const char *m = hs_wsi_method_name(c->method);
        size_t ml = strlen(m ? m : "?");
        c->access = malloc(sizeof(*c->access) + ml + 1 + pl + 1);
        if (c->access) {
            c->access->t0_us = hs_mono_us();
            c->access->id = id;
            memcpy(c->access->line, m ? m : "?", ml);
            c->access->line[ml] = ' ';
            memcpy(c->access->line + ml + 1, path, pl + 1);
        }
    }
    if (too_long) {
        c->body_done = true;
        c->close_after = true;
        hs_conn_error(c, 414, "TooLarge", "the path is over %zu bytes", sizeof(path) - 1);
        return 0;
    }
    /* lws decodes %00 into the URI and cuts it there, and takes a decoded %0A or %0D for
     * the end of the request line (the HTTP version then goes missing): refuse what it cut
     * rather than serve a shorter path, which could name another stream */
    if (c->method >= 0 && ((size_t)lws_hdr_total_length(wsi, c->method) != pl ||
                           lws_hdr_total_length(wsi, WSI_TOKEN_HTTP) <= 0)) {
        c->body_done = true;
        c->close_after = true;
        hs_conn_error(c, 400, "BadRequest", "the path holds a NUL or control character");
        return 0;
    }
    bool body = c->method == WSI_TOKEN_POST_URI || c->method == WSI_TOKEN_PUT_URI ||
                c->method == WSI_TOKEN_PATCH_URI;
    if ((body || c->method == WSI_TOKEN_DELETE_URI) && !hs_cors_may_act(wsi)) {
        /* a page of another origin, which browsers let send this without asking first (cors.c):
         * refused before anything is read or done; the connection closes after the answer */
        char origin[128];
        if (lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) < 0)
            snprintf(origin, sizeof(origin), "(over %zu bytes)", sizeof(origin) - 1);
        c->body_done = true;
        c->close_after = true;
        hs_conn_error(c, 403, "Forbidden",
                      "requests from the origin '%s' may not change anything here (--cors-origins)",
                      origin);
        return 0;
    }
    if (body) {
        hs_server_t *srv = io->srv;
        bool has_te = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
        bool has_cl = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
        c->chunked = false;
        c->body_too_large = false;
        if (!(c->rx = calloc(1, sizeof(*c->rx))))
            return -1; /* out of memory: close the connection */
        if (has_te) {
            char te[64] = "";
            if (lws_hdr_copy(wsi, te, sizeof(te), WSI_TOKEN_HTTP_TRANSFER_ENCODING) <= 0 ||
                strcasecmp(te, "chunked")) {
                refuse_body(c, 400, "BadRequest", "the only transfer coding taken is 'chunked'");
                return 0;
            }
            if (has_cl) {
                /* RFC 9112 6.3: a message with both is a smuggling attempt or broken */
                refuse_body(c, 400, "BadRequest", "Content-Length and Transfer-Encoding together");
                return 0;
            }
            c->chunked = true;
            hs_chunked_init(&c->rx->chunk);
            c->rx->body_limit = srv->cfg.max_body;
        } else if (has_cl) {
            char cl[32] = "";
            long long n = 0;
            if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) >= (int)sizeof(cl) ||
                lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0 ||
                !parse_content_length(cl, &n)) {
                refuse_body(c, 400, "BadRequest", "Content-Length must be a decimal number");
                return 0;
            }
            if (n > (long long)srv->cfg.max_body) {
                /* answer now, read and drop the body (within the deadline), then close */
                c->close_after = true;
                hs_conn_error(c, 413, "TooLarge", "the body is %lld bytes, over the %zu-byte limit",
                              n, srv->cfg.max_body);
                c->rx->body_deadline_ms = hs_now_ms() + srv->cfg.request_timeout_ms;
                body_list_add(io, c);
                return 0;
            }
            c->rx->body_limit = (size_t)n;
        } else {
            /* neither: the body is empty (RFC 9112 6.3). lws 4.1 would read on as if a
             * body of 100 MiB followed, so the connection closes after the answer. */
            c->close_after = true;
            c->body_done = true;
            route(c, path);
            watch_if_outstanding(c);
            return 0;
        }
        if (!(c->rx->path = malloc(pl + 1)))
            return -1;
        memcpy(c->rx->path, path, pl + 1);
        c->rx->body_deadline_ms = hs_now_ms() + srv->cfg.request_timeout_ms;
        body_list_add(io, c);
        return 0;
    }
    route(c, path);
    watch_if_outstanding(c);
    return 0;
}

/* LWS_CALLBACK_HTTP_BODY: a piece of the body. */
int hs_conn_on_body(struct lws *wsi, hs_conn_t *c, const void *in, size_t len)
{
    (void)wsi;
    if (!c || !len || c->body_done)
        return 0;
    if (c->chunked)
        return chunked_body(c, in, len);
    if (c->close_after)
        return 0; /* refused: read and drop */
    bool oom;
    if (body_append(c, in, len, &oom)) {
        if (oom)
            return -1;
        c->body_too_large = true; /* lws bounds it by Content-Length: cannot happen */
    }
    return 0;
}

/* LWS_CALLBACK_HTTP_BODY_COMPLETION */
int hs_conn_on_body_done(struct lws *wsi, hs_conn_t *c)
{
    if (!c)
        return -1;
    if (c->chunked)
        return 0; /* a chunked body ended at its last chunk; lws's count is moot */
    if (c->body_done) {
        bool first = !c->completed;
        c->completed = true;
        if (first)
            /* refused before its body (close_after): close once the answer is out */
            return c->close_after && c->resp ? 0 : -1;
        /* lws 4.1 calls this again for bytes after a completed body (a pipelined request)
         * without consuming them: close, or, with an answer still to write, stop reading
         * until it is out (write_response then closes) */
        if (!c->close_after || !c->resp)
            return -1;
        lws_rx_flow_control(wsi, 0);
        return 0;
    }
    c->completed = true;
    hs_conn_body_unlist(c);
    if (c->close_after) {
        if (c->rx) {
            free(c->rx->path);
            c->rx->path = NULL;
        }
        c->body_done = true;
        /* the refusal was queued before the body: close once it is out */
        return c->resp ? 0 : -1;
    }
    if (!c->rx || !c->rx->path)
        return -1; /* a body with no request of ours: lws ran on into a pipelined one */
    if (c->body_too_large) {
        c->body_done = true;
        free(c->rx->path);
        c->rx->path = NULL;
        hs_conn_error(c, 413, "TooLarge", "the body is longer than its Content-Length");
        return 0;
    }
    body_complete(c);
    return 0;
}

/* LWS_CALLBACK_HTTP_WRITEABLE */
int hs_conn_on_writable(hs_conn_t *c)
{
    if (!c)
        return 0;
    if (c->resp) {
        bool stream = c->stream;
        /* a completed transaction frees c (lws re-creates it for the next request) */
        int rc = write_response(c);
        if (rc < 0)
            return -1;
        if (rc > 0 || !stream)
            return 0;
    }
    if (c->stream && c->owner && c->owner->http_writable)
        return c->owner->http_writable(c);
    return 0;
}

/* ---- the body, for the routes ---- */

const char *hs_conn_body(const hs_conn_t *c, size_t *len)
{
    *len = c->rx ? c->rx->body_len : 0;
    return c->rx ? c->rx->body : NULL;
}

char *hs_conn_take_body(hs_conn_t *c, size_t *len)
{
    char *b = NULL;
    *len = 0;
    if (c->rx) {
        b = c->rx->body;
        *len = c->rx->body_len;
        c->rx->body = NULL;
        c->rx->body_len = c->rx->body_cap = 0;
    }
    return b;
}
