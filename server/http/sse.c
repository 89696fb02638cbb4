/*
 * Server-Sent Events subscriptions (GET /api/streams/{s}/events, Accept: text/event-stream).
 *
 * The connection owns one subscription. The fan-out worker fills its outbox and signals; on a
 * writable callback this file copies as many queued blocks as fit in one write budget, each
 * behind its `id:` line, into the IO thread's write buffer and writes them at once. Resume
 * point: Last-Event-ID, else ?from=, else live. A ": ping" comment goes out after
 * sse_ping_ms of silence. The stream's end (closed, deleted) arrives as an `event: close` block
 * queued by the worker; the response then ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/time.h"
#include "ringbuf/budget.h"
#include "proto/route.h"
#include "proto/codec.h"
#include "server/signalr/hub.h"
#include "proto/json.h"
#include "server/server.h"

static void list_add(hs_io_t *io, hs_conn_t *c)
{
    c->sse_prev = NULL;
    c->sse_next = io->sse_head;
    if (io->sse_head)
        io->sse_head->sse_prev = c;
    io->sse_head = c;
    io->nsse++;
}

static void list_remove(hs_io_t *io, hs_conn_t *c)
{
    if (c->sse_prev)
        c->sse_prev->sse_next = c->sse_next;
    else if (io->sse_head == c)
        io->sse_head = c->sse_next;
    if (c->sse_next)
        c->sse_next->sse_prev = c->sse_prev;
    c->sse_prev = c->sse_next = NULL;
    io->nsse--;
}

int hs_sse_head(struct lws *wsi, unsigned char **p, unsigned char *end)
{
    return lws_add_http_common_headers(wsi, 200, "text/event-stream",
                                       LWS_ILLEGAL_HTTP_CONTENT_LEN, p, end) ||
                   lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                               (const unsigned char *)"no-cache", 8, p, end) ||
                   lws_add_http_header_by_name(wsi, (const unsigned char *)"x-accel-buffering:",
                                               (const unsigned char *)"no", 2, p, end) ||
                   hs_cors_headers(wsi, p, end) || lws_finalize_http_header(wsi, p, end)
               ? -1
               : 0;
}

#define HS_SSE_TYPES_MAX 64

void hs_sse_start(hs_conn_t *c, const char *stream, size_t len)
{
    hs_server_t *srv = c->io->srv;
    int64_t from = 0;
    bool has_from = false;
    char buf[256];
    int l = lws_hdr_custom_length(c->wsi, "last-event-id:", 14);
    if (l > 0) {
        if (l >= (int)sizeof(buf) ||
            lws_hdr_custom_copy(c->wsi, buf, sizeof(buf), "last-event-id:", 14) < 0 ||
            !hs_route_uint(buf, strlen(buf), &from)) {
            hs_conn_error(c, 400, "BadRequest", "Last-Event-ID must be a version (an integer)");
            return;
        }
        has_from = true;
    } else {
        const char *v;
        int rc = hs_conn_arg(c, "from=", buf, sizeof(buf), &v);
        if (rc < 0 || (rc > 0 && !hs_route_uint(v, strlen(v), &from))) {
            hs_conn_error(c, 400, "BadRequest", "from must be an integer >= 0");
            return;
        }
        has_from = rc > 0;
    }
    /* ?types=a,b */
    char tbuf[4096];
    const char *types[HS_SSE_TYPES_MAX];
    uint32_t ntypes = 0;
    const char *tv;
    int rc = hs_conn_arg(c, "types=", tbuf, sizeof(tbuf), &tv);
    if (rc < 0) {
        hs_conn_error(c, 400, "BadRequest", "the types argument is longer than %zu bytes",
                      sizeof(tbuf) - 7);
        return;
    }
    if (rc > 0) {
        bool more;
        ntypes = hs_route_list((char *)tv, types, HS_SSE_TYPES_MAX, &more);
        if (more) {
            hs_conn_error(c, 400, "BadRequest", "at most %d event types", HS_SSE_TYPES_MAX);
            return;
        }
    }
    hs_sub_t *s = hs_sub_create(stream, len, types, ntypes, srv->cfg.outbox_bytes);
    if (!s) {
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    s->has_from = has_from;
    hs_writer_stats_t ws;
    hs_writer_stats(srv->writer, &ws);
    s->live_after = ws.last_position;
    s->from = from;
    s->io_index = c->io->index;
    s->io_ctx = c;
    s->budget = hs_budget_ref(srv->read_budget);

    /* headers and the retry advice go out first, on the next writable callback */
    size_t cap = LWS_PRE + 1024;
    unsigned char *rb = malloc(cap);
    if (!rb) {
        hs_sub_unref(s);
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    unsigned char *start = rb + LWS_PRE, *p = start, *end = rb + cap - 64;
    if (hs_sse_head(c->wsi, &p, end)) {
        free(rb);
        hs_sub_unref(s);
        return;
    }
    p += snprintf((char *)p, (size_t)(end - p) + 64, "retry: %d\n\n", srv->cfg.sse_retry_ms);
    c->resp = rb;
    c->resp_len = (size_t)(p - start);
    c->resp_final = false;
    c->sse = true;
    c->sub = s;
    c->last_write_ms = hs_now_ms();
    list_add(c->io, c);
    lws_http_mark_sse(c->wsi);
    lws_callback_on_writable(c->wsi);
    hs_fanout_subscribe(srv->fanout, s);
}

static size_t put_id(char *o, int64_t id)
{
    char tmp[24];
    int k = 0;
    do {
        tmp[k++] = (char)('0' + id % 10);
        id /= 10;
    } while (id);
    size_t n = 0;
    memcpy(o, "id: ", 4);
    n = 4;
    while (k)
        o[n++] = tmp[--k];
    o[n++] = '\n';
    return n;
}

/* Writes the next piece of a block larger than a turn's budget (c->big): at most
 * HS_WRITE_BUDGET bytes per writable callback, straight from the block, so that neither a copy
 * of it nor lws's buffer of what the socket did not take grows with the event's size. -1 on a
 * failed write. */
static int write_big(hs_conn_t *c)
{
    hs_block_t *b = c->big;
    size_t total = c->big_idlen + b->sse_len, off = c->big_off;
    size_t n = total - off > HS_WRITE_BUDGET ? HS_WRITE_BUDGET : total - off;
    unsigned char *out = c->io->wbuf + LWS_PRE;
    size_t o = 0;
    if (off < c->big_idlen) {
        size_t k = c->big_idlen - off < n ? c->big_idlen - off : n;
        memcpy(out, c->big_id + off, k);
        o = k;
    }
    if (o < n)
        memcpy(out + o, b->sse + (off + o - c->big_idlen), n - o);
    if (lws_write(c->wsi, out, n, LWS_WRITE_HTTP) < (int)n)
        return -1;
    c->big_off += n;
    if (c->big_off == total) {
        hs_block_unref(b);
        c->big = NULL;
        c->last_write_ms = hs_now_ms();
    }
    return 0;
}

int hs_sse_writable(hs_conn_t *c)
{
    hs_io_t *io = c->io;
    hs_sub_t *s = c->sub;
    if (c->sse_killed || c->sse_closing || !s)
        return -1;
    c->stuck_since_ms = 0; /* lws only calls back once what it held went to the kernel */
    if (c->big) {
        if (write_big(c))
            return -1;
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    char *out = (char *)io->wbuf + LWS_PRE;
    size_t o = 0;
    bool ended = false;
    hs_block_t *b;
    while (o < HS_WRITE_BUDGET) {
        if (!(b = hs_sub_pop_spsc(s, hs_fanout_block_size)))
            break;
        if (b->kind != HS_BLOCK_EVENT) {
            ended = true;
        }
        size_t need = b->sse_len + 32;
        if (o + need > HS_WRITE_BUDGET + 4096 - 64) {
            /* a block larger than what is left of the budget: what is gathered goes now, the
             * block over the next turns, piece by piece from its own memory */
            if (o && lws_write(c->wsi, (unsigned char *)out, o, LWS_WRITE_HTTP) < (int)o) {
                hs_block_unref(b);
                return -1;
            }
            c->big = b;
            c->big_off = 0;
            c->big_idlen = b->kind == HS_BLOCK_EVENT
                               ? put_id(c->big_id, s->all ? b->position : b->version)
                               : 0;
            if (o)
                c->last_write_ms = hs_now_ms();
            lws_callback_on_writable(c->wsi);
            return 0;
        }
        if (b->kind == HS_BLOCK_EVENT)
            o += put_id(out + o, s->all ? b->position : b->version);
        memcpy(out + o, b->sse, b->sse_len);
        o += b->sse_len;
        hs_block_unref(b);
        if (ended)
            break;
    }
    if (!o && c->ping_due && !ended) {
        memcpy(out, ": ping\n\n", 8);
        o = 8;
    }
    c->ping_due = false;
    if (o) {
        if (lws_write(c->wsi, (unsigned char *)out, o, LWS_WRITE_HTTP) < (int)o)
            return -1;
        c->last_write_ms = hs_now_ms();
    }
    if (atomic_load(&s->want_space) && hs_sub_free_bytes(s) >= s->max_bytes / 2) {
        atomic_store(&s->want_space, 0);
        hs_fanout_space(io->srv->fanout, s);
    }
    if (ended || (c->sse_ending && hs_sub_empty(s))) {
        /* the close block is written; end the response once lws has flushed it */
        c->sse_closing = true;
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (!hs_sub_empty(s))
        lws_callback_on_writable(c->wsi);
    return 0;
}

void hs_sse_on_signal(hs_io_t *io, hs_sub_t *s)
{
    unsigned fl = hs_sub_take_io_flags(s);
    hs_conn_t *c = s->io_ctx;
    if (c) {
        if ((fl & HS_SUB_IO_KILL) && !c->sse_killed) {
            /* stalled: the socket will not become writable, so do not wait for it */
            c->sse_killed = true;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        }
        if (fl & HS_SUB_IO_END)
            c->sse_ending = true;
        lws_callback_on_writable(c->wsi);
    }
    hs_sub_unref(s); /* the inbox's reference */
}

void hs_sse_tick(hs_io_t *io, int64_t now)
{
    int ping = io->srv->cfg.sse_ping_ms, stall = io->srv->cfg.stall_timeout_ms;
    for (hs_conn_t *c = io->sse_head; c; c = c->sse_next) {
        /* a client that reads nothing while data waits for it is closed after the stall
         * timeout, whether or not more events come (the worker also ends a subscription whose
         * outbox stays full) */
        bool waiting =
            (c->sub && !hs_sub_empty(c->sub)) || c->big || lws_send_pipe_choked(c->wsi);
        if (!waiting) {
            c->stuck_since_ms = 0;
        } else if (!c->stuck_since_ms) {
            c->stuck_since_ms = now;
        } else if (now - c->stuck_since_ms >= stall && !c->sse_killed) {
            c->sse_killed = true;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            continue;
        }
        if (now - c->last_write_ms >= ping && !c->ping_due) {
            c->ping_due = true;
            lws_callback_on_writable(c->wsi);
        }
    }
}

void hs_sse_closed(hs_conn_t *c)
{
    hs_sub_t *s = c->sub;
    hs_block_unref(c->big);
    c->big = NULL;
    list_remove(c->io, c);
    c->sse = false;
    if (!s)
        return;
    c->sub = NULL;
    s->io_ctx = NULL;
    hs_fanout_unsubscribe(c->io->srv->fanout, s);
    hs_sub_unref(s);
}
