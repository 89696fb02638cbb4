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

#include <stdatomic.h>
#include <stdio.h>

#include "proto/codec.h"
#include "proto/route.h"
#include "ringbuf/budget.h"
#include "server/auth.h"
#include "server/http/http.h"
#include "util/time.h"

/* An SSE response's state (the connection's transport data). */
typedef struct sse_conn {
    hs_sub_t *sub;
    bool ending, killed, closing, ping_due;
    int64_t last_write_ms;
    int64_t stuck_since_ms; /* data has waited since, with no writable callback */
    hs_conn_t *prev, *next; /* the IO thread's SSE responses, for pings and stalls */
    hs_block_t *big;        /* a block written over several turns, after its id line (put_id) */
    size_t big_off;         /* bytes of the id line and the block written */
} sse_conn_t;

_Static_assert(sizeof(sse_conn_t) <= HS_CONN_TDATA, "sse_conn_t must fit hs_conn_t.tdata");
_Static_assert(_Alignof(sse_conn_t) <= 8, "sse_conn_t must fit hs_conn_t.tdata's alignment");

/* The SSE responses of one IO thread. */
typedef struct sse_io {
    hs_conn_t *head;
    size_t n;
} sse_io_t;

static const hs_transport_t sse_transport;

static sse_conn_t *sc(hs_conn_t *c)
{
    return hs_conn_tdata(c, sse_conn_t);
}

static void list_add(hs_io_t *io, hs_conn_t *c)
{
    sse_io_t *l = hs_io_tstate(io, HS_T_SSE);
    sc(c)->prev = NULL;
    sc(c)->next = l->head;
    if (l->head)
        sc(l->head)->prev = c;
    l->head = c;
    l->n++;
}

static void list_remove(hs_io_t *io, hs_conn_t *c)
{
    sse_io_t *l = hs_io_tstate(io, HS_T_SSE);
    sse_conn_t *t = sc(c);
    if (t->prev)
        sc(t->prev)->next = t->next;
    else if (l->head == c)
        l->head = t->next;
    if (t->next)
        sc(t->next)->prev = t->prev;
    t->prev = t->next = NULL;
    l->n--;
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

    s->fmt = HS_SUB_FMT_SSE;
    s->transport = HS_T_SSE;

    /* headers and the retry advice go out first, on the next writable callback */
    char retry[32];
    snprintf(retry, sizeof(retry), "retry: %d\n\n", srv->cfg.sse_retry_ms);
    if (hs_conn_stream_head(c, "text/event-stream", retry)) {
        hs_sub_unref(s);
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    sse_conn_t *t = sc(c);
    c->owner = &sse_transport;
    t->sub = s;
    t->last_write_ms = hs_now_ms();
    list_add(c->io, c);
    hs_gauge_add(&c->io->m.conns[HS_MC_SSE][HS_MP_NONE], 1);
    hs_fanout_subscribe(srv->fanout, s);
}

/* Writes a block's id line ("id: ", at most 19 digits for an int64_t >= 0, "\n": at most 24
 * bytes) at o: its length. */
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

/* Writes the next piece of a block larger than a turn's budget (t->big): at most
 * HS_WRITE_BUDGET bytes per writable callback, straight from the block, so that neither a copy
 * of it nor lws's buffer of what the socket did not take grows with the event's size. -1 on a
 * failed write. */
static int write_big(hs_conn_t *c, sse_conn_t *t)
{
    hs_block_t *b = t->big;
    /* the id line again (not kept: an idle subscription's state stays small) */
    char id[24];
    size_t idlen =
        b->kind == HS_BLOCK_EVENT ? put_id(id, t->sub->all ? b->position : b->version) : 0;
    size_t total = idlen + b->sse_len, off = t->big_off;
    size_t n = total - off > HS_WRITE_BUDGET ? HS_WRITE_BUDGET : total - off;
    unsigned char *out = c->io->wbuf + LWS_PRE;
    size_t o = 0;
    if (off < idlen) {
        size_t k = idlen - off < n ? idlen - off : n;
        memcpy(out, id + off, k);
        o = k;
    }
    if (o < n)
        memcpy(out + o, b->sse + (off + o - idlen), n - o);
    if (hs_io_write(c->io, c->wsi, out, n, LWS_WRITE_HTTP) < (int)n)
        return -1;
    t->big_off += n;
    if (t->big_off == total) {
        hs_block_unref(b);
        t->big = NULL;
        t->last_write_ms = hs_now_ms();
    }
    return 0;
}

static int sse_writable(hs_conn_t *c)
{
    hs_io_t *io = c->io;
    sse_conn_t *t = sc(c);
    hs_sub_t *s = t->sub;
    if (t->killed || t->closing || !s)
        return -1;
    t->stuck_since_ms = 0; /* lws only calls back once what it held went to the kernel */
    if (t->big) {
        if (write_big(c, t))
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
        if (b->kind != HS_BLOCK_EVENT)
            ended = true;
        else
            hs_ctr_add(&io->m.delivered[HS_MD_SSE], 1);
        size_t need = b->sse_len + 32;
        if (o + need > HS_WRITE_BUDGET + 4096 - 64) {
            /* a block larger than what is left of the budget: what is gathered goes now, the
             * block over the next turns, piece by piece from its own memory */
            if (o && hs_io_write(c->io, c->wsi, (unsigned char *)out, o, LWS_WRITE_HTTP) < (int)o) {
                hs_block_unref(b);
                return -1;
            }
            t->big = b;
            t->big_off = 0;
            if (o)
                t->last_write_ms = hs_now_ms();
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
    if (!o && t->ping_due && !ended) {
        memcpy(out, ": ping\n\n", 8);
        o = 8;
    }
    t->ping_due = false;
    if (o) {
        if (hs_io_write(c->io, c->wsi, (unsigned char *)out, o, LWS_WRITE_HTTP) < (int)o)
            return -1;
        t->last_write_ms = hs_now_ms();
    }
    if (hs_sub_space_due(s)) {
        hs_fanout_space(io->srv->fanout, s);
    }
    if (ended || (t->ending && hs_sub_empty(s))) {
        /* the close block is written; end the response once lws has flushed it */
        t->closing = true;
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (!hs_sub_empty(s))
        lws_callback_on_writable(c->wsi);
    return 0;
}

static void sse_on_signal(hs_io_t *io, hs_sub_t *s)
{
    (void)io;
    unsigned fl = hs_sub_take_io_flags(s);
    hs_conn_t *c = s->io_ctx;
    if (c) {
        sse_conn_t *t = sc(c);
        if ((fl & HS_SUB_IO_KILL) && !t->killed) {
            /* stalled: the socket will not become writable, so do not wait for it */
            t->killed = true;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        }
        if (fl & HS_SUB_IO_END)
            t->ending = true;
        lws_callback_on_writable(c->wsi);
    }
    hs_sub_unref(s); /* the inbox's reference */
}

static void sse_tick(hs_io_t *io, int64_t now)
{
    int ping = io->srv->cfg.sse_ping_ms, stall = io->srv->cfg.stall_timeout_ms;
    sse_io_t *l = hs_io_tstate(io, HS_T_SSE);
    for (hs_conn_t *c = l->head; c; c = sc(c)->next) {
        sse_conn_t *t = sc(c);
        /* a client that reads nothing while data waits for it is closed after the stall
         * timeout, whether or not more events come (the worker also ends a subscription whose
         * outbox stays full) */
        bool waiting = (t->sub && !hs_sub_empty(t->sub)) || t->big || lws_send_pipe_choked(c->wsi);
        if (!waiting) {
            t->stuck_since_ms = 0;
        } else if (!t->stuck_since_ms) {
            t->stuck_since_ms = now;
        } else if (now - t->stuck_since_ms >= stall && !t->killed) {
            t->killed = true;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            continue;
        }
        if (hs_auth_expired(c->who) && !t->closing && !t->killed) {
            /* the credentials expired: the response ends (never served past them); the client
             * reconnects with fresh ones and resumes with Last-Event-ID */
            t->closing = true;
            lws_callback_on_writable(c->wsi);
            continue;
        }
        if (now - t->last_write_ms >= ping && !t->ping_due) {
            t->ping_due = true;
            lws_callback_on_writable(c->wsi);
        }
    }
}

static void sse_closed(hs_conn_t *c)
{
    sse_conn_t *t = sc(c);
    hs_sub_t *s = t->sub;
    hs_block_unref(t->big);
    t->big = NULL;
    list_remove(c->io, c);
    hs_gauge_add(&c->io->m.conns[HS_MC_SSE][HS_MP_NONE], -1);
    if (!s)
        return;
    t->sub = NULL;
    s->io_ctx = NULL;
    hs_fanout_unsubscribe(c->io->srv->fanout, s);
    hs_sub_unref(s);
}

static int sse_io_init(hs_io_t *io, void **state)
{
    (void)io;
    *state = calloc(1, sizeof(sse_io_t));
    return *state ? 0 : -1;
}

static void sse_io_fini(hs_io_t *io, void *state)
{
    (void)io;
    free(state);
}

static const hs_transport_t sse_transport = {
    .id = HS_T_SSE,
    .name = "sse",
    .io_init = sse_io_init,
    .io_fini = sse_io_fini,
    .tick = sse_tick,
    .on_sub_signal = sse_on_signal,
    .http_writable = sse_writable,
    .http_closed = sse_closed,
};

const hs_transport_t *hs_sse_transport(void)
{
    return &sse_transport;
}
