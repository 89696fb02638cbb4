/*
 * The SignalR transports' glue with libwebsockets (see hub.h): WebSockets (one frame carries
 * whole records), Server-Sent Events (records as `data:` lines) and long polling (GET parks
 * until records exist; POST carries client records; DELETE ends the connection); requests of a
 * connection that reach another IO thread travel to its home thread and back. The HS_T_SIGNALR
 * transport, and the registration of /hub's routes and endpoint. Not here: the registry and
 * negotiate (registry.c), the connection itself (hub.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "proto/codec.h"
#include "proto/json.h"
#include "proto/route.h"
#include "ringbuf/budget.h"
#include "server/auth.h"
#include "server/signalr/hub.h"
#include "util/time.h"
#include "util/uuid.h"

/* An HTTP request of a connection (the hs_conn_t's transport data): the SSE response it
 * carries, or a request forwarded to the connection's home thread. */
typedef struct hub_conn {
    hs_hub_t *hub;        /* the SSE transport of a hub connection (a reference) */
    hs_hubreq_t *pending; /* a request forwarded to a connection's home thread */
} hub_conn_t;

_Static_assert(sizeof(hub_conn_t) <= HS_CONN_TDATA, "hub_conn_t must fit hs_conn_t.tdata");

static const hs_transport_t signalr_transport;

static hub_conn_t *hcn(hs_conn_t *c)
{
    return hs_conn_tdata(c, hub_conn_t);
}

static void on_req(hs_io_t *io, hs_hubreq_t *r);
static void on_rep(hs_io_t *io, hs_hubreq_t *r);

/* The hub dialects served over these transports. */
static const hs_hub_dialect_t *const dialects[] = {&hs_hub_dialect, &hs_es_dialect};

/* ---- small HTTP helpers ---- */

static void text(hs_conn_t *c, int status, const char *msg)
{
    hs_conn_respond(c, status, "text/plain", msg, strlen(msg), NULL, NULL);
}

/* ---- forwarded requests (SSE and long-polling POST, polls, DELETE) ---- */

static void forward(hs_conn_t *c, hs_hub_t *h, int op)
{
    hs_io_t *io = c->io;
    hs_hubreq_t *r = calloc(1, sizeof(*r));
    if (!r) {
        hs_hub_unref(h);
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    r->op = op;
    r->hub = h; /* takes the claim's reference */
    r->origin = io;
    r->conn = c;
    if (op == HS_HUBREQ_POST) {
        r->body = (uint8_t *)hs_conn_take_body(c, &r->len);
    }
    c->owner = &signalr_transport;
    hcn(c)->pending = r;
    if (op == HS_HUBREQ_POLL)
        lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0); /* the poll may wait for minutes */
    if (h->home == io->index) {
        on_req(io, r);
        return;
    }
    r->node.kind = HS_NODE_HUB_REQ;
    hs_io_post(io->srv->io[h->home], &r->node);
}

static void free_req(hs_hubreq_t *r)
{
    hs_budget_give(r->hub->budget, r->charge);
    hs_hub_unref(r->hub);
    free(r->body);
    hs_buf_free(&r->resp);
    free(r);
}

static void reply(hs_io_t *home, hs_hubreq_t *r, int status)
{
    r->status = status;
    hs_io_t *origin = r->origin;
    if (origin == home) {
        on_rep(origin, r);
        return;
    }
    r->node.kind = HS_NODE_HUB_REP;
    hs_io_post(origin, &r->node);
}

static void on_rep(hs_io_t *io, hs_hubreq_t *r)
{
    (void)io;
    hs_conn_t *c = r->conn;
    if (c) {
        hcn(c)->pending = NULL;
        if (r->status == 200) {
            if (hs_conn_respond(c, 200, r->ctype ? r->ctype : "text/plain", (const char *)r->resp.p,
                                r->resp.len, NULL, NULL) == 0 &&
                r->charge) {
                hs_conn_charge(c, r->hub->budget, r->charge);
                r->charge = 0;
            }
        } else if (r->status == 404)
            text(c, 404, "No Connection with that ID");
        else
            hs_conn_respond(c, r->status, "text/plain", "", 0, NULL, NULL);
    }
    free_req(r);
}

static void release_posts(hs_hub_t *h)
{
    if (!h->ended && !hs_hub_input_idle(h))
        return;
    while (h->posts) {
        hs_hubreq_t *r = h->posts;
        h->posts = r->post_next;
        reply(h->io, r, h->ended ? 404 : 200);
    }
}

/* Answers a parked or new poll with whatever is queued (home thread). */
static void answer_poll(hs_hub_t *h, hs_hubreq_t *r)
{
    hs_hub_pack(h, &r->resp, 1 << 20);
    r->charge = h->out_charge; /* the answer's HTTP response carries it until written */
    h->out_charge = 0;
    r->ctype = h->fmt == HS_HUB_MSGPACK ? "application/octet-stream" : "text/plain;charset=UTF-8";
    h->poll_end_ms = hs_now_ms();
    h->last_send_ms = h->poll_end_ms;
    reply(h->io, r, 200);
    if (h->closing && !hs_hub_has_output(h))
        hs_hub_end(h);
    else
        hs_hub_output_drained(h);
}

static void on_req(hs_io_t *io, hs_hubreq_t *r)
{
    hs_hub_t *h = r->hub;
    switch (r->op) {
    case HS_HUBREQ_POST:
        if (h->ended) {
            reply(io, r, 404);
            return;
        }
        hs_hub_input(h, r->body, r->len);
        free(r->body);
        r->body = NULL;
        if (!h->ended && !hs_hub_input_idle(h)) {
            /* its records wait (an invocation runs, or the client does not read its answers):
             * the answer waits with them, so that the client's next send does too */
            hs_hubreq_t **pp = &h->posts;
            while (*pp)
                pp = &(*pp)->post_next;
            r->post_next = NULL;
            *pp = r;
            return;
        }
        reply(io, r, h->ended ? 404 : 200);
        return;
    case HS_HUBREQ_DELETE:
        if (!h->ended) {
            h->peer_closed = true;
            hs_hub_end(h);
        }
        hs_hubreg_remove(h); /* the next request for it is unknown (404) */
        reply(io, r, 202);
        return;
    case HS_HUBREQ_POLL:
        if (h->ended) {
            reply(io, r, 204);
            return;
        }
        if (h->poll) {
            hs_hubreq_t *old = h->poll;
            h->poll = NULL;
            reply(io, old, 204);
        }
        if (hs_hub_has_output(h)) {
            answer_poll(h, r);
            return;
        }
        r->parked_ms = hs_now_ms();
        h->poll = r;
        return;
    }
}

/* ---- what a connection asks of its transport (hs_hub_tops_t) ---- */

static void want_write(hs_hub_t *h)
{
    if (h->transport == HS_HUB_T_LP) {
        if (h->poll && hs_hub_has_output(h)) {
            hs_hubreq_t *r = h->poll;
            h->poll = NULL;
            answer_poll(h, r);
        }
        return;
    }
    if (h->relay)
        hs_relay_want_write(h);
    else if (h->wsi)
        lws_callback_on_writable(h->wsi);
}

static void ended(hs_hub_t *h)
{
    if (h->poll) {
        hs_hubreq_t *r = h->poll;
        h->poll = NULL;
        reply(h->io, r, 204);
    }
    release_posts(h);
    hs_relay_release(h, false);
    if (h->wsi)
        lws_callback_on_writable(h->wsi); /* the socket closes on its next turn */
}

static void pause_input(hs_hub_t *h, bool stop)
{
    if (h->relay)
        hs_relay_pause(h, stop);
    else if (h->wsi)
        lws_rx_flow_control(h->wsi, stop ? 0 : 1);
}

static void cut_off(hs_hub_t *h)
{
    hs_relay_release(h, true);
    if (h->wsi)
        lws_set_timeout(h->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

const hs_hub_tops_t hs_hub_transport_ops = {
    .want_write = want_write,
    .input_taken = release_posts,
    .ended = ended,
    .pause_input = pause_input,
    .cut_off = cut_off,
};

/* ---- negotiate ---- */

static void negotiate(hs_conn_t *c, const char *path, const hs_hub_dialect_t *dialect)
{
    hs_server_t *srv = c->io->srv;
    hs_wsi_data_t *wd = lws_get_opaque_user_data(c->wsi);
    if (wd && !hs_peers_negotiate(srv, &wd->peer)) {
        c->retry_after = true;
        hs_conn_error(c, 429, "TooManyRequests",
                      "more than %d negotiates per second from this address",
                      srv->cfg.max_negotiates_per_ip_s);
        return;
    }
    /* who is asking: the connection keeps this principal for its life */
    char why[256];
    int arc = hs_auth_identify(srv, c->wsi, path, &c->who, why, sizeof(why));
    if (arc) {
        if (arc == HS_ENOMEM)
            hs_conn_error(c, 503, "Unavailable", "out of memory");
        else
            hs_conn_error(c, arc == HS_EFORBIDDEN ? 403 : 401,
                          arc == HS_EFORBIDDEN ? "Forbidden" : "Unauthorized", "%s", why);
        return;
    }
    char buf[64];
    int version = 0;
    const char *v;
    int rc = hs_conn_arg(c, "negotiateVersion=", buf, sizeof(buf), &v);
    int64_t asked = 0;
    if (rc < 0 || (rc > 0 && !hs_route_uint(v, strlen(v), &asked))) {
        /* what ASP.NET answers: 200 with an error the client reports */
        static const char err[] = "{\"error\":\"The client requested an invalid protocol "
                                  "version; negotiateVersion must be 0 or 1\"}";
        hs_conn_respond(c, 200, "application/json", err, sizeof(err) - 1, NULL, NULL);
        return;
    }
    version = asked > 1 ? 1 : (int)asked;
    bool stateful = false;
    if (hs_conn_arg(c, "useStatefulReconnect=", buf, sizeof(buf), &v) > 0 &&
        !strcasecmp(v, "true") && srv->cfg.hub_stateful_reconnect)
        stateful = true;
    hs_hub_t *h = hs_hub_create(srv, dialect, &hs_hub_transport_ops);
    if (!h) {
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    hs_hubreg_new_id(h->conn_id);
    if (version >= 1)
        hs_hubreg_new_id(h->token);
    else
        memcpy(h->token, h->conn_id, sizeof(h->token));
    h->stateful_ok = stateful;
    h->who = hs_principal_ref(c->who);
    if (hs_hubreg_add(h)) {
        hs_hub_unref(h);
        hs_conn_error(c, 429, "TooManyRequests",
                      "%d negotiated connections are waiting for their transport; retry later",
                      srv->cfg.hub_max_unclaimed);
        return;
    }
    /* the registry holds the one reference now */

    char body[512];
    int n = snprintf(body, sizeof(body), "{\"negotiateVersion\":%d,\"connectionId\":\"%s\"",
                     version, h->conn_id);
    if (version >= 1)
        n += snprintf(body + n, sizeof(body) - (size_t)n, ",\"connectionToken\":\"%s\"", h->token);
    if (stateful)
        n += snprintf(body + n, sizeof(body) - (size_t)n, ",\"useStatefulReconnect\":true");
    n += snprintf(body + n, sizeof(body) - (size_t)n,
                  ",\"availableTransports\":["
                  "{\"transport\":\"WebSockets\",\"transferFormats\":[\"Text\",\"Binary\"]},"
                  "{\"transport\":\"ServerSentEvents\",\"transferFormats\":[\"Text\"]},"
                  "{\"transport\":\"LongPolling\",\"transferFormats\":[\"Text\",\"Binary\"]}]}");
    hs_conn_respond(c, 200, "application/json", body, (size_t)n, NULL, NULL);
}

static void negotiate_route(hs_conn_t *c, const char *path, void *arg)
{
    if (c->method == WSI_TOKEN_POST_URI) {
        negotiate(c, path, arg);
        return;
    }
    hs_conn_not_allowed(c, "POST");
}

/* ---- HTTP routes of /hub ---- */

/* The id= argument: 1 with *token set, 0 when absent or empty, -1 when longer than any token
 * handed out (no connection has it). */
static int token_arg(struct lws *wsi, char *buf, size_t len, const char **token)
{
    int rc = hs_wsi_arg(wsi, "id=", buf, len, token);
    return rc > 0 && !**token ? 0 : rc;
}

static void sse_start(hs_conn_t *c, hs_hub_t *h)
{
    if (hs_conn_stream_head(c, "text/event-stream", ":\r\n")) {
        hs_hubreg_remove(h);
        hs_hub_unref(h);
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    c->owner = &signalr_transport;
    hcn(c)->hub = h; /* the claim's reference */
    h->sse_conn = c;
    h->wsi = c->wsi;
    hs_hub_start(h, c->io);
}

static void route_hub(hs_conn_t *c, const char *path, void *arg)
{
    (void)path;
    const hs_hub_dialect_t *dialect = arg;
    hs_io_t *io = c->io;
    hs_server_t *srv = io->srv;
    int m = c->method;
    char tokbuf[64];
    const char *token;
    int op;
    if (m == WSI_TOKEN_GET_URI)
        op = HS_HUBREQ_POLL;
    else if (m == WSI_TOKEN_POST_URI)
        op = HS_HUBREQ_POST;
    else if (m == WSI_TOKEN_DELETE_URI)
        op = HS_HUBREQ_DELETE;
    else {
        hs_conn_not_allowed(c, "GET, POST, DELETE");
        return;
    }
    int trc = token_arg(c->wsi, tokbuf, sizeof(tokbuf), &token);
    if (trc <= 0) {
        text(c, trc < 0 ? 404 : 400,
             trc < 0 ? "No Connection with that ID" : "Connection ID required");
        return;
    }
    bool sse = false;
    if (op == HS_HUBREQ_POLL) {
        char accept[256] = "";
        lws_hdr_copy(c->wsi, accept, sizeof(accept), WSI_TOKEN_HTTP_ACCEPT);
        sse = strstr(accept, "text/event-stream") != NULL;
    }
    hs_hub_t *h;
    const char *msg;
    int rc = hs_hubreg_claim(srv, dialect, token, op, sse ? HS_HUB_T_SSE : HS_HUB_T_LP, io->index,
                             &h, &msg);
    if (rc >= 100) {
        text(c, rc, msg);
        return;
    }
    if (rc == CLAIM_NEW) {
        if (sse) {
            sse_start(c, h);
            return;
        }
        /* long polling: the first poll starts the connection and comes back empty at once */
        hs_hub_start(h, io);
        h->poll_end_ms = hs_now_ms();
        hs_hub_unref(h);
        hs_conn_respond(c, 200, "application/octet-stream", "", 0, NULL, NULL);
        return;
    }
    forward(c, h, op);
    return;
}

/* ---- SSE transport writes ---- */

/* The batch in h->out is written: give back what its Read answers were charged. */
static void out_done(hs_hub_t *h)
{
    hs_buf_free(&h->out); /* only batches too large for one write use it: rare */
    h->out_off = 0;
    hs_budget_give(h->budget, h->out_charge);
    h->out_charge = 0;
    h->last_send_ms = hs_now_ms();
}

/* A batch up to this size goes to lws in one write; a larger one (it holds a large Read answer
 * or event) in pieces of HS_WRITE_BUDGET, one per writable callback: lws copies whatever the
 * socket does not take at once into a buffer of its own, which must stay small for a client
 * that does not read. */
#define ONE_WRITE_MAX (2 * HS_WRITE_BUDGET)

/*
 * Packs the next batch after `prefix` into the IO thread's scratch buffer (after LWS_PRE), with
 * `suffix` after it. A batch too large for one write moves into h->out (the buffers are swapped,
 * not copied) to go out in pieces. Returns the batch's length (0: nothing to send), or -1.
 */
static long pack_batch(hs_hub_t *h, const char *prefix, const char *suffix)
{
    hs_buf_t *b = &h->io->scratch;
    size_t pl = strlen(prefix), sl = strlen(suffix);
    b->len = 0;
    if (hs_buf_reserve(b, LWS_PRE + pl + sl + 16))
        return -1;
    b->len = LWS_PRE;
    memcpy(b->p + b->len, prefix, pl);
    b->len += pl;
    if (!hs_hub_pack(h, b, HS_WRITE_BUDGET))
        return 0;
    if (hs_buf_put(b, suffix, sl))
        return -1;
    size_t n = b->len - LWS_PRE;
    if (n > ONE_WRITE_MAX) {
        hs_buf_t t = h->out;
        h->out = *b;
        *b = t;
        h->out_off = LWS_PRE;
    }
    return (long)n;
}

/* Writes the next piece of h->out (as `first` / continuation WebSocket fragments when ws). */
static int write_piece(struct lws *wsi, hs_hub_t *h, bool ws)
{
    size_t left = h->out.len - h->out_off;
    size_t k = left > HS_WRITE_BUDGET ? HS_WRITE_BUDGET : left;
    int wp = LWS_WRITE_HTTP;
    if (ws) {
        /* one WebSocket message in fragments (lws writes each fragment's header into the
         * bytes before it: the previous fragment's, already sent) */
        wp = h->out_off == LWS_PRE ? (h->fmt == HS_HUB_MSGPACK ? LWS_WRITE_BINARY : LWS_WRITE_TEXT)
                                   : LWS_WRITE_CONTINUATION;
        if (k < left)
            wp |= LWS_WRITE_NO_FIN;
    }
    if (hs_io_write(h->io, wsi, h->out.p + h->out_off, k, (enum lws_write_protocol)wp) < (int)k)
        return -1;
    h->out_off += k;
    return 0;
}

/* The shared tail of both writable callbacks. 0, or -1 to end the response / close. */
static int after_write(struct lws *wsi, hs_hub_t *h, bool wrote)
{
    if (h->out.len && h->out_off < h->out.len) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (wrote) {
        if (h->out.len)
            out_done(h);
        else {
            hs_budget_give(h->budget, h->out_charge);
            h->out_charge = 0;
            h->last_send_ms = hs_now_ms();
        }
        hs_hub_output_drained(h);
    }
    if (h->closing && !hs_hub_has_output(h)) {
        if (wrote) { /* let lws flush it, then end */
            lws_callback_on_writable(wsi);
            return 0;
        }
        return -1;
    }
    if (hs_hub_has_output(h))
        lws_callback_on_writable(wsi);
    return 0;
}

static int sse_writable(hs_conn_t *c)
{
    hs_hub_t *h = hcn(c)->hub;
    if (!h || h->ended)
        return -1;
    bool wrote = false;
    if (h->out.len && h->out_off < h->out.len) {
        if (write_piece(c->wsi, h, false))
            return -1;
        wrote = true;
    } else {
        long n = pack_batch(h, "data: ", "\r\n\r\n");
        if (n < 0)
            return -1;
        if (n > 0) {
            if (h->out.len) {
                if (write_piece(c->wsi, h, false))
                    return -1;
            } else if (hs_io_write(h->io, c->wsi, h->io->scratch.p + LWS_PRE, (size_t)n,
                                   LWS_WRITE_HTTP) < (int)n) {
                return -1;
            }
            wrote = true;
        }
    }
    return after_write(c->wsi, h, wrote);
}

/* The end of an HTTP request of a connection: its SSE response, or a forwarded request whose
 * answer now has nowhere to go. */
static void http_closed(hs_conn_t *c)
{
    hub_conn_t *t = hcn(c);
    if (t->pending) {
        t->pending->conn = NULL;
        t->pending = NULL;
    }
    hs_hub_t *h = t->hub;
    if (!h)
        return;
    t->hub = NULL;
    if (h->sse_conn == c) {
        h->sse_conn = NULL;
        h->wsi = NULL;
    }
    if (!h->ended)
        hs_hub_end(h);
    hs_hub_unref(h);
}

/* ---- WebSockets ---- */

/* An upgrade at /hub: 0 with *out set to the connection to attach, 1 when an HTTP answer was
 * written instead, -1 to hang up. */
static int ws_confirm(struct lws *wsi, void *arg, void **out)
{
    const hs_hub_dialect_t *dialect = arg;
    hs_io_t *io = lws_context_user(lws_get_context(wsi));
    hs_server_t *srv = io->srv;
    *out = NULL;
    char tokbuf[64];
    const char *token;
    int trc = token_arg(wsi, tokbuf, sizeof(tokbuf), &token);
    hs_hub_t *h;
    if (trc < 0)
        return hs_wsi_respond(wsi, 404, "No Connection with that ID") ? -1 : 1;
    if (!trc) {
        /* skipNegotiation: a connection made on the spot, with no token to resume by; who is
         * asking is decided here, as negotiate would have */
        hs_principal_t *who;
        char why[256], path[256];
        if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) < 0)
            path[0] = '\0';
        int arc = hs_auth_identify(srv, wsi, path, &who, why, sizeof(why));
        if (arc) {
            int status = arc == HS_EFORBIDDEN ? 403 : 401;
            if (arc == HS_ENOMEM)
                status = 503;
            return hs_wsi_respond(wsi, status, why) ? -1 : 1;
        }
        h = hs_hub_create(srv, dialect, &hs_hub_transport_ops);
        if (!h) {
            hs_principal_free(who);
            return hs_wsi_respond(wsi, 503, "out of memory") ? -1 : 1;
        }
        h->who = who;
        hs_hubreg_new_id(h->conn_id);
        h->transport = HS_HUB_T_WS;
        h->home = io->index;
        h->attached = true;
        *out = h;
        return 0;
    }
    const char *msg;
    int rc = hs_hubreg_claim(srv, dialect, token, HS_HUBREQ_POLL, HS_HUB_T_WS, io->index, &h, &msg);
    if (rc >= 100)
        return hs_wsi_respond(wsi, rc, msg) ? -1 : 1;
    if (rc == CLAIM_RELAY) {
        /* a resume the acceptor could not send home (TLS, a reused connection): relayed */
        hs_relay_t *r = hs_relay_create(h, io, srv->io[h->home]);
        if (!r) {
            hs_hub_unref(h);
            return hs_wsi_respond(wsi, 503, "out of memory") ? -1 : 1;
        }
        *out = hs_relay_ctx(r);
        return 0;
    }
    *out = h;
    return 0;
}

static void ws_established(struct lws *wsi, void *ctx)
{
    if (hs_relay_of(ctx)) {
        hs_relay_established(wsi, hs_relay_of(ctx));
        return;
    }
    hs_hub_t *h = ctx;
    hs_io_t *io = lws_context_user(lws_get_context(wsi));
    hs_relay_drop_socket(h, wsi); /* a resume: the socket it replaces, if any */
    h->wsi = wsi;
    h->peer_closed = false;
    if (!h->io)
        hs_hub_start(h, io);
    else
        hs_hub_resume(h);
}

static int ws_receive(struct lws *wsi, void *ctx, const void *in, size_t len)
{
    if (hs_relay_of(ctx))
        return hs_relay_receive(wsi, hs_relay_of(ctx), in, len);
    hs_hub_t *h = ctx;
    if (!h || h->ended)
        return -1;
    hs_hub_input(h, in, len);
    if (h->ended) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    return 0;
}

static int ws_writable(struct lws *wsi, void *ctx)
{
    if (hs_relay_of(ctx))
        return hs_relay_writable(wsi, hs_relay_of(ctx));
    hs_hub_t *h = ctx;
    if (!h || h->ended) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    bool wrote = false;
    if (h->out.len && h->out_off < h->out.len) {
        if (write_piece(wsi, h, true))
            return -1;
        wrote = true;
    } else {
        long n = pack_batch(h, "", "");
        if (n < 0)
            return -1;
        if (n > 0) {
            if (h->out.len) {
                if (write_piece(wsi, h, true))
                    return -1;
            } else {
                enum lws_write_protocol wp =
                    h->fmt == HS_HUB_MSGPACK ? LWS_WRITE_BINARY : LWS_WRITE_TEXT;
                if (hs_io_write(h->io, wsi, h->io->scratch.p + LWS_PRE, (size_t)n, wp) < (int)n)
                    return -1;
            }
            wrote = true;
        }
    }
    int rc = after_write(wsi, h, wrote);
    if (rc)
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
    return rc;
}

static void ws_peer_close(void *ctx)
{
    if (hs_relay_of(ctx))
        hs_relay_peer_close(hs_relay_of(ctx));
    else
        ((hs_hub_t *)ctx)->peer_closed = true;
}

static void ws_closed(struct lws *wsi, void *ctx)
{
    if (hs_relay_of(ctx)) {
        hs_relay_closed(wsi, hs_relay_of(ctx));
        return;
    }
    hs_hub_t *h = ctx;
    if (h->wsi == wsi)
        h->wsi = NULL;
    else if (h->io && hs_hub_attached(h)) {
        /* a resume that failed before it took over: the connection keeps its socket */
        hs_hub_unref(h);
        return;
    }
    if (!h->io) {
        hs_hubreg_remove(h); /* claimed, never started */
    } else if (!h->ended) {
        if (h->stateful && !h->peer_closed && !h->closing && atomic_load(&h->srv->state) == 1)
            hs_hub_detach(h);
        else
            hs_hub_end(h);
    }
    hs_hub_unref(h);
}

/* ---- the transport ---- */

static void on_message(hs_io_t *io, hs_mpsc_node_t *n)
{
    switch (n->kind) {
    case HS_NODE_HUB_REQ:
        on_req(io, (hs_hubreq_t *)n);
        return;
    case HS_NODE_HUB_REP:
        on_rep(io, (hs_hubreq_t *)n);
        return;
    }
    if (hs_relay_on_message(io, n))
        return;
    for (size_t i = 0; i < sizeof(dialects) / sizeof(dialects[0]); i++)
        if (dialects[i]->on_message(io, n))
            return;
}

static void drop_message(hs_io_t *io, hs_mpsc_node_t *n)
{
    (void)io;
    switch (n->kind) {
    case HS_NODE_HUB_REQ:
    case HS_NODE_HUB_REP:
        free_req((hs_hubreq_t *)n);
        return;
    }
    if (hs_relay_discard(n))
        return;
    for (size_t i = 0; i < sizeof(dialects) / sizeof(dialects[0]); i++)
        if (dialects[i]->discard(n))
            return;
}

/* Long polling's timers: a poll parked for --hub-longpoll-ms is answered empty; a connection
 * whose client stopped polling ends. */
static void tick_polls(hs_io_t *io, int64_t now)
{
    const hs_config_t *cfg = &io->srv->cfg;
    for (hs_hub_t *h = hs_hub_io(io)->hubs, *next; h; h = next) {
        next = h->io_next;
        if (h->transport != HS_HUB_T_LP || h->ended || h->closing)
            continue;
        if (h->poll && now - h->poll->parked_ms >= cfg->hub_longpoll_ms) {
            hs_hubreq_t *r = h->poll;
            h->poll = NULL;
            h->poll_end_ms = now;
            reply(io, r, 200);
        } else if (!h->poll && now - h->poll_end_ms >= cfg->hub_disconnect_timeout_ms) {
            hs_hub_end(h); /* the client stopped polling */
        }
    }
}

static void tick(hs_io_t *io, int64_t now)
{
    tick_polls(io, now);
    hs_hub_tick(io, now);
    hs_hub_io_t *l = hs_hub_io(io);
    if (io->index == 0 && now - l->last_sweep_ms >= 1000) {
        l->last_sweep_ms = now;
        hs_hubreg_sweep(io->srv, now);
    }
}

static void prestop(hs_io_t *io)
{
    for (hs_hub_t *h = hs_hub_io(io)->hubs; h; h = h->io_next)
        if (!h->ended && h->dialect->prestop)
            h->dialect->prestop(h);
}

static int io_init(hs_io_t *io, void **state)
{
    (void)io;
    *state = calloc(1, sizeof(hs_hub_io_t));
    return *state ? 0 : -1;
}

static void io_end(hs_io_t *io)
{
    while (hs_hub_io(io)->hubs)
        hs_hub_end(hs_hub_io(io)->hubs);
}

static void io_fini(hs_io_t *io, void *state)
{
    (void)io;
    free(state);
}

static const hs_transport_t signalr_transport = {
    .id = HS_T_SIGNALR,
    .name = "signalr",
    .io_init = io_init,
    .io_fini = io_fini,
    .io_end = io_end,
    .prestop = prestop,
    .tick = tick,
    .on_message = on_message,
    .drop_message = drop_message,
    .on_sub_signal = hs_hub_on_signal,
    .http_writable = sse_writable,
    .http_closed = http_closed,
    .ws_established = ws_established,
    .ws_receive = ws_receive,
    .ws_writable = ws_writable,
    .ws_peer_close = ws_peer_close,
    .ws_closed = ws_closed,
};

void hs_signalr_register(hs_server_t *srv)
{
    hs_server_add_transport(srv, &signalr_transport);
    /* each dialect: its negotiate route, its HTTP transports' route and its WebSocket endpoint,
     * all served by this transport */
    static const char *const paths[][2] = {{"/hub", "/hub/negotiate"},
                                           {"/eventstreamhub", "/eventstreamhub/negotiate"}};
    for (size_t i = 0; i < sizeof dialects / sizeof dialects[0]; i++) {
        void *d = (void *)dialects[i];
        hs_server_add_route(srv, paths[i][0], route_hub, d);
        hs_server_add_route(srv, paths[i][1], negotiate_route, d);
        hs_server_add_ws(srv, paths[i][0], &signalr_transport, ws_confirm, d);
    }
    hs_server_add_cors_headers(srv, "x-requested-with, x-signalr-user-agent");
}
