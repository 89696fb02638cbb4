/*
 * A SignalR hub connection on its home IO thread (see hub.h): the handshake, records in, the
 * hub methods of API.md, records out, keep-alive and stateful reconnect. Transport glue lives
 * in hubhttp.c; this file never touches a socket except through hs_hub_want_write().
 *
 * Output order: whole records queued for the connection (handshake reply, Completions, Pings,
 * Close) go out before subscription data, so a push Subscribe's Completion precedes its
 * events. Subscription data is read straight from the subscriptions' outboxes at write time:
 * a committed event is encoded once per wire format (the block's EventRecord JSON, its lazily
 * built MessagePack map) and only framed here, per record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/time.h"
#include "ringbuf/budget.h"
#include "proto/codec.h"
#include "server/signalr/hub.h"
#include "proto/json.h"
#include "util/utf8.h"

enum { M_PUBLISH, M_SUBSCRIBE, M_UNSUBSCRIBE, M_READ, M_GETSTREAM, M_CLOSESTREAM, M_UNKNOWN };
static const char *const method_names[] = {"publish",   "subscribe", "unsubscribe",
                                           "read",      "getstream", "closestream"};

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
    hs_hubbuf_t out; /* JSON; its capacity is charged to the connection's read budget */
    size_t n;
    bool oom;
    bool spent; /* the budget could not take the answer's next growth */
} hub_read_t;

/* The end of a Read whose page is full (not an error). */
#define PAGE_FULL 1

static int64_t now_ms(void)
{
    return hs_now_ms();
}

static void resume_input(hs_hub_t *h);

/* ---- lifetime ---- */

hs_hub_t *hs_hub_create(hs_server_t *srv)
{
    hs_hub_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    atomic_init(&h->refs, 1);
    h->srv = srv;
    h->budget = hs_budget_create(srv->cfg.connection_read_budget, srv->read_budget);
    if (!h->budget) {
        free(h);
        return NULL;
    }
    h->home = -1;
    h->created_ms = h->start_ms = now_ms();
    return h;
}

hs_hub_t *hs_hub_ref(hs_hub_t *h)
{
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
    return h;
}

void hs_hub_unref(hs_hub_t *h)
{
    if (!h || atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) != 1)
        return;
    hs_hubbuf_free(&h->in);
    hs_hubbuf_free(&h->held);
    hs_hubbuf_free(&h->ctl);
    hs_hubbuf_free(&h->scratch);
    hs_hubbuf_free(&h->replay);
    hs_hubbuf_free(&h->out);
    free(h->replay_len);
    hs_budget_give(h->budget, h->ctl_charge + h->out_charge);
    hs_budget_unref(h->budget);
    free(h);
}

void hs_hub_start(hs_hub_t *h, hs_io_t *io)
{
    h->io = io;
    h->io_prev = NULL;
    hs_hub_io_t *l = hs_hub_io(io);
    h->io_next = l->hubs;
    if (l->hubs)
        l->hubs->io_prev = h;
    l->hubs = h;
    l->nhubs++;
    hs_hub_ref(h); /* the home thread's list */
    h->start_ms = h->last_recv_ms = h->last_send_ms = now_ms();
    hs_log(&h->srv->log, HS_LOG_DEBUG, "hub connection started", "connectionId", h->conn_id, NULL);
}

static void unlink_io(hs_hub_t *h)
{
    hs_hub_io_t *l = hs_hub_io(h->io);
    if (h->io_prev)
        h->io_prev->io_next = h->io_next;
    else if (l->hubs == h)
        l->hubs = h->io_next;
    if (h->io_next)
        h->io_next->io_prev = h->io_prev;
    h->io_prev = h->io_next = NULL;
    l->nhubs--;
}

/* ---- stateful reconnect: numbering and the replay buffer ---- */

/* Records a trackable record just queued or packed: numbers it and keeps a copy until acked. */
static int track(hs_hub_t *h, const uint8_t *p, size_t n)
{
    if (!h->stateful)
        return 0;
    if (h->replay_head + h->nreplay == h->replay_cap) {
        if (h->replay_head) {
            memmove(h->replay_len, h->replay_len + h->replay_head,
                    h->nreplay * sizeof(*h->replay_len));
            h->replay_head = 0;
        } else {
            size_t nc = h->replay_cap ? h->replay_cap * 2 : 64;
            uint32_t *nl = realloc(h->replay_len, nc * sizeof(*nl));
            if (!nl)
                return HS_ENOMEM;
            h->replay_len = nl;
            h->replay_cap = nc;
        }
    }
    if (hs_hubbuf_put(&h->replay, p, n))
        return HS_ENOMEM;
    h->out_seq++;
    if (!h->nreplay)
        h->replay_first = h->out_seq;
    h->replay_len[h->replay_head + h->nreplay++] = (uint32_t)n;
    return 0;
}

static void on_ack(hs_hub_t *h, int64_t seq)
{
    h->replay_full_ms = 0;
    size_t drop = 0;
    while (h->nreplay && h->replay_first <= seq) {
        drop += h->replay_len[h->replay_head++];
        h->nreplay--;
        h->replay_first++;
    }
    if (!h->nreplay)
        h->replay_head = 0;
    if (drop) {
        memmove(h->replay.p, h->replay.p + drop, h->replay.len - drop);
        h->replay.len -= drop;
    }
}

/* ---- queuing records ---- */

static void fail_oom(hs_hub_t *h);

/* Drops what ctl holds, and the read budget its answers were charged. */
static void ctl_clear(hs_hub_t *h)
{
    h->ctl.len = 0;
    hs_budget_give(h->budget, h->ctl_charge);
    h->ctl_charge = 0;
}

/* After an encoder appended one record to ctl at `before`: number it if trackable. */
static void queued(hs_hub_t *h, int rc, size_t before, bool trackable)
{
    if (rc) {
        h->ctl.len = before;
        fail_oom(h);
        return;
    }
    if (trackable && track(h, h->ctl.p + before, h->ctl.len - before)) {
        fail_oom(h);
        return;
    }
    hs_hub_want_write(h);
}

static void complete(hs_hub_t *h, const char *id, const char *error, const char *json,
                     size_t len)
{
    if (h->ended || h->closing)
        return;
    /* in order: the input waits while an invocation runs (hs_hub_input) */
    size_t before = h->ctl.len;
    int rc = hs_hubproto_completion(&h->ctl, h->fmt, id, error, json, len);
    queued(h, rc, before, true);
}

__attribute__((format(printf, 3, 4))) static void complete_err(hs_hub_t *h, const char *id,
                                                              const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    msg[hs_utf8_boundary(msg, strlen(msg))] = '\0'; /* a cut must not split a character */
    complete(h, id, msg, NULL, 0);
}

static void fail_oom(hs_hub_t *h)
{
    /* a connection that cannot get memory is closed; others go on */
    ctl_clear(h);
    hs_hub_close(h, "Connection closed with an error. Out of memory.", true);
}

void hs_hub_close(hs_hub_t *h, const char *error, bool allow_reconnect)
{
    if (h->ended || h->closing)
        return;
    if (h->handshaken) {
        size_t before = h->ctl.len;
        if (hs_hubproto_close(&h->ctl, h->fmt, error, allow_reconnect))
            h->ctl.len = before;
    }
    h->closing = true;
    h->closing_ms = now_ms();
    if (error)
        hs_log(&h->srv->log, HS_LOG_DEBUG, "hub connection closing",
               "connectionId", h->conn_id, "reason", error, NULL);
    if (!h->wsi && !h->poll && h->transport != HS_HUB_T_LP) {
        hs_hub_end(h); /* nothing to write it to */
        return;
    }
    hs_hub_want_write(h);
}

/* ---- subscriptions ---- */

static void sub_free(hs_hub_t *h, hs_hubsub_t *hs)
{
    if (hs->prev)
        hs->prev->next = hs->next;
    else
        h->subs = hs->next;
    if (hs->next)
        hs->next->prev = hs->prev;
    if (h->rr == hs)
        h->rr = hs->next;
    h->nsubs--;
    hs->sub->io_ctx = NULL;
    hs_fanout_unsubscribe(h->srv->fanout, hs->sub);
    hs_sub_unref(hs->sub);
    free(hs);
}

static hs_hubsub_t *find_push(hs_hub_t *h, const char *stream, size_t len)
{
    for (hs_hubsub_t *s = h->subs; s; s = s->next)
        if (s->push && !s->done && s->sub->stream_len == len &&
            memcmp(s->sub->stream, stream, len) == 0)
            return s;
    return NULL;
}

static hs_hubsub_t *find_stream(hs_hub_t *h, const char *id)
{
    for (hs_hubsub_t *s = h->subs; s; s = s->next)
        if (!s->push && strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static int add_sub(hs_hub_t *h, const char *stream, size_t len, bool push, const char *id,
                   bool has_from, int64_t from)
{
    hs_server_t *srv = h->srv;
    if (h->nsubs >= srv->cfg.max_subscriptions)
        return HS_EBUSY;
    hs_hubsub_t *hs = calloc(1, sizeof(*hs));
    hs_sub_t *s = hs ? hs_sub_create(stream, len, NULL, 0, srv->cfg.outbox_bytes) : NULL;
    if (!s) {
        free(hs);
        return HS_ENOMEM;
    }
    s->fmt = HS_SUB_FMT_RECORD;
    s->transport = HS_T_SIGNALR;
    s->has_from = has_from;
    s->from = from;
    if (!has_from) {
        hs_writer_stats_t ws;
        hs_writer_stats(srv->writer, &ws);
        s->live_after = ws.last_position;
    }
    s->io_index = h->io->index;
    s->io_ctx = hs;
    s->budget = hs_budget_ref(h->budget);
    hs->sub = s;
    hs->hub = h;
    hs->push = push;
    if (id)
        snprintf(hs->id, sizeof(hs->id), "%s", id);
    hs->next = h->subs;
    if (h->subs)
        h->subs->prev = hs;
    h->subs = hs;
    h->nsubs++;
    hs_fanout_subscribe(srv->fanout, s);
    return 0;
}

void hs_hub_on_signal(hs_io_t *io, hs_sub_t *s)
{
    unsigned fl = hs_sub_take_io_flags(s);
    hs_hubsub_t *hs = s->io_ctx;
    if (hs && !hs->hub->ended) {
        hs_hub_t *h = hs->hub;
        if (fl & HS_SUB_IO_KILL) {
            /* stalled past the timeout, or its catch-up read failed: the client reconnects
             * and resumes with `from` */
            hs_hub_close(h, atomic_load(&s->end_reason) == HS_SUB_END_STALLED
                                ? "Connection closed with an error. The client did not read "
                                  "its events in time."
                                : "Connection closed with an error. Reading the stream failed.",
                         true);
        } else {
            hs_hub_want_write(h);
        }
    }
    hs_sub_unref(s); /* the inbox's reference */
}

/* The lazily encoded MessagePack form of a block (see block.h). */
static const hs_block_mp_t *block_mp(hs_block_t *b)
{
    hs_block_mp_t *mp = atomic_load_explicit(&b->mp, memory_order_acquire);
    if (mp)
        return mp;
    hs_hubbuf_t buf = {0};
    if (hs_hubproto_json_to_msgpack(b->json, b->json_len, &buf)) {
        hs_hubbuf_free(&buf);
        return NULL;
    }
    mp = malloc(sizeof(*mp) + buf.len);
    if (!mp) {
        hs_hubbuf_free(&buf);
        return NULL;
    }
    mp->len = (uint32_t)buf.len;
    memcpy(mp->bytes, buf.p, buf.len);
    hs_hubbuf_free(&buf);
    hs_block_mp_t *expected = NULL;
    /* release pairs with the acquire load above in the threads that lose or come later */
    if (!atomic_compare_exchange_strong_explicit(&b->mp, &expected, mp, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        free(mp);
        return expected;
    }
    return mp;
}

/* Appends the record a block becomes for this subscription. */
static int encode_block(hs_hub_t *h, hs_hubsub_t *hs, hs_block_t *b, hs_hubbuf_t *out)
{
    if (b->kind == HS_BLOCK_EVENT) {
        const uint8_t *v;
        size_t vl;
        if (h->fmt == HS_HUB_JSON) {
            v = (const uint8_t *)b->json;
            vl = b->json_len;
        } else {
            const hs_block_mp_t *mp = block_mp(b);
            if (!mp)
                return HS_ENOMEM;
            v = mp->bytes;
            vl = mp->len;
        }
        if (hs->push)
            return hs_hubproto_invocation_raw(out, h->fmt, "event", &v, &vl, 1);
        return hs_hubproto_stream_item_raw(out, h->fmt, hs->id, v, vl);
    }
    hs->done = true;
    if (!hs->push)
        return hs_hubproto_completion(out, h->fmt, hs->id, NULL, NULL, 0);
    /* target `closed`, arguments [stream, "closed" | "deleted"] */
    const char *reason = b->kind == HS_BLOCK_DELETED ? "deleted" : "closed";
    hs_hubbuf_t args = {0};
    int rc = hs_hubbuf_reserve(&args, hs_json_quoted_len(b->stream, b->stream_len) + 32);
    if (rc)
        return rc;
    size_t n1 = hs_json_quote(b->stream, b->stream_len, (char *)args.p);
    size_t n2 = hs_json_quote(reason, strlen(reason), (char *)args.p + n1);
    args.len = n1 + n2;
    if (h->fmt == HS_HUB_MSGPACK) {
        hs_hubbuf_t mp = {0};
        rc = hs_hubproto_json_to_msgpack((const char *)args.p, n1, &mp);
        size_t m1 = mp.len;
        if (!rc)
            rc = hs_hubproto_json_to_msgpack((const char *)args.p + n1, n2, &mp);
        if (!rc) {
            const uint8_t *av[2] = {mp.p, mp.p + m1};
            size_t al[2] = {m1, mp.len - m1};
            rc = hs_hubproto_invocation_raw(out, h->fmt, "closed", av, al, 2);
        }
        hs_hubbuf_free(&mp);
    } else {
        const uint8_t *av[2] = {args.p, args.p + n1};
        size_t al[2] = {n1, n2};
        rc = hs_hubproto_invocation_raw(out, h->fmt, "closed", av, al, 2);
    }
    hs_hubbuf_free(&args);
    return rc;
}

/* Packs one subscription's queued blocks; true when the budget is used up. */
static bool pack_sub(hs_hub_t *h, hs_hubsub_t *hs, hs_hubbuf_t *out, size_t start, size_t budget)
{
    hs_sub_t *s = hs->sub;
    bool full = false;
    while (!hs->done) {
        if (out->len - start >= budget ||
            (h->stateful && h->replay.len >= h->srv->cfg.hub_stateful_buffer)) {
            full = true;
            break;
        }
        hs_block_t *b = hs_sub_pop_spsc(s, hs_fanout_block_size);
        if (!b)
            break;
        size_t before = out->len;
        int rc = encode_block(h, hs, b, out);
        hs_block_unref(b);
        if (rc || track(h, out->p + before, out->len - before)) {
            out->len = before;
            fail_oom(h);
            return true;
        }
    }
    if (atomic_load(&s->want_space) && hs_sub_free_bytes(s) >= s->max_bytes / 2) {
        atomic_store(&s->want_space, 0);
        hs_fanout_space(h->srv->fanout, s);
    }
    return full;
}

size_t hs_hub_pack(hs_hub_t *h, hs_hubbuf_t *out, size_t budget)
{
    size_t start = out->len;
    if (h->ctl.len) {
        if (hs_hubbuf_put(out, h->ctl.p, h->ctl.len)) {
            fail_oom(h);
            return 0;
        }
        h->ctl.len = 0;
        h->out_charge += h->ctl_charge; /* the transport gives it back once this is written */
        h->ctl_charge = 0;
    }
    if (h->closing || h->ended || !h->handshaken || !h->subs)
        return out->len - start;
    /* round robin over the subscriptions, starting where the last pack stopped */
    hs_hubsub_t *first = h->rr ? h->rr : h->subs, *cur = first;
    bool any_done = false;
    do {
        hs_hubsub_t *next = cur->next ? cur->next : h->subs;
        bool full = pack_sub(h, cur, out, start, budget);
        any_done |= cur->done;
        if (full) {
            h->rr = cur; /* its rest goes first next time */
            break;
        }
        cur = next;
    } while (cur != first && !h->closing);
    if (any_done) {
        for (hs_hubsub_t *s = h->subs, *n; s; s = n) {
            n = s->next;
            if (s->done)
                sub_free(h, s);
        }
    }
    if (h->rr && h->rr->done)
        h->rr = NULL;
    return out->len - start;
}

bool hs_hub_has_output(hs_hub_t *h)
{
    if (h->ctl.len)
        return true;
    if (h->closing || h->ended || !h->handshaken)
        return false;
    if (h->stateful && h->replay.len >= h->srv->cfg.hub_stateful_buffer)
        return false;
    for (hs_hubsub_t *s = h->subs; s; s = s->next)
        if (!hs_sub_empty(s->sub))
            return true;
    return false;
}

/* ---- ending ---- */

void hs_hub_end(hs_hub_t *h)
{
    if (h->ended)
        return;
    h->ended = true;
    while (h->subs)
        sub_free(h, h->subs);
    if (h->poll) {
        hs_hubreq_t *r = h->poll;
        h->poll = NULL;
        hs_hub_reply(h->io, r, 204);
    }
    hs_hub_release_posts(h);
    hs_log(&h->srv->log, HS_LOG_DEBUG, "hub connection ended", "connectionId", h->conn_id, NULL);
    /* long polling keeps its registry entry until it expires, so that the next poll gets 204
     * (a clean end) rather than 404 */
    if (h->transport != HS_HUB_T_LP)
        hs_hubreg_remove(h);
    else
        hs_hubreg_linger(h);
    if (h->wsi)
        lws_callback_on_writable(h->wsi); /* the transport closes on its next turn */
    if (h->io && (h->io_prev || hs_hub_io(h->io)->hubs == h)) {
        unlink_io(h);
        hs_hub_unref(h); /* the home list's reference */
    }
}

void hs_hub_detach(hs_hub_t *h)
{
    h->wsi = NULL;
    h->dropped_ms = now_ms();
    ctl_clear(h); /* trackable records are in the replay buffer; the rest is moot */
    /* what the old socket delivered and was not handled is not acknowledged either: the client
     * sends it again after the resume (a partial record would corrupt the new stream) */
    h->in.len = 0;
    h->held.len = 0;
    h->held_off = 0;
    h->rx_paused = false;
    hs_hubreg_set_attached(h, false, true);
    hs_log(&h->srv->log, HS_LOG_DEBUG, "hub connection dropped, waiting for a resume",
           "connectionId", h->conn_id, NULL);
}

void hs_hub_resume(hs_hub_t *h)
{
    h->dropped_ms = 0;
    ctl_clear(h);
    size_t before = h->ctl.len;
    int rc = hs_hubproto_sequence(&h->ctl, h->fmt, h->nreplay ? h->replay_first : h->out_seq + 1);
    if (!rc)
        rc = hs_hubbuf_put(&h->ctl, h->replay.p, h->replay.len);
    if (rc) {
        h->ctl.len = before;
        fail_oom(h);
        return;
    }
    h->awaiting_sequence = true;
    h->last_recv_ms = h->last_send_ms = now_ms();
    hs_log(&h->srv->log, HS_LOG_DEBUG, "hub connection resumed", "connectionId", h->conn_id, NULL);
    hs_hub_want_write(h);
}

/* ---- input ---- */

/* Answers the handshake with an error and ends the connection once that is out (no Close
 * record: the client never finished its handshake). */
static void refuse_handshake(hs_hub_t *h, const char *error)
{
    size_t before = h->ctl.len;
    if (hs_hubproto_handshake_reply(&h->ctl, error))
        h->ctl.len = before;
    h->closing = true;
    h->closing_ms = now_ms();
    hs_log(&h->srv->log, HS_LOG_DEBUG, "hub handshake refused", "connectionId", h->conn_id,
           "reason", error, NULL);
    hs_hub_want_write(h);
}

static void handshake(hs_hub_t *h, const uint8_t *rec, size_t len)
{
    char proto[64], err[256];
    int version;
    err[0] = '\0';
    hs_hubfmt_t fmt = HS_HUB_JSON;
    if (hs_hubproto_parse_handshake(rec, len, proto, sizeof(proto), &version)) {
        snprintf(err, sizeof(err), "An unexpected error occurred during connection handshake.");
    } else if (!strcmp(proto, "json")) {
        fmt = HS_HUB_JSON;
    } else if (!strcmp(proto, "messagepack")) {
        fmt = HS_HUB_MSGPACK;
    } else {
        snprintf(err, sizeof(err), "The protocol '%s' is not supported.", proto);
    }
    if (!err[0] && (version < 1 || version > 2))
        snprintf(err, sizeof(err), "The server does not support version %d of the '%s' protocol.",
                 version, proto);
    if (!err[0] && fmt == HS_HUB_MSGPACK && h->transport == HS_HUB_T_SSE)
        snprintf(err, sizeof(err),
                 "Cannot use the '%s' protocol on the current transport. The transport does not "
                 "support 'Binary' transfer format.",
                 proto);
    if (err[0]) {
        refuse_handshake(h, err);
        return;
    }
    h->fmt = fmt;
    h->handshaken = true;
    h->stateful = h->stateful_ok && version >= 2 && h->transport == HS_HUB_T_WS;
    if (h->stateful)
        hs_hubreg_set_resumable(h);
    size_t before = h->ctl.len;
    queued(h, hs_hubproto_handshake_reply(&h->ctl, NULL), before, false);
}

static int method_of(const char *target)
{
    for (int i = 0; i < M_UNKNOWN; i++)
        if (!strcasecmp(target, method_names[i]))
            return i;
    return M_UNKNOWN;
}

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

static op_t *new_op(hs_hub_t *h, const hs_hubmsg_t *m, int method, const char *stream,
                    size_t len)
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
            complete_err(h, m->id, "Unavailable: out of memory");
        return;
    }
    e->node.kind = HS_NODE_HUB_INGEST;
    e->conn = op;
    if (!hs_io_submit_entry(h->io, e)) {
        hs_hub_unref(op->hub);
        free(op);
        hs_ingest_free(e);
        if (m->has_id)
            complete_err(h, m->id, "TooManyRequests: the writer is behind; retry later");
        return;
    }
    h->pending++;
}

/* ---- reads on reader threads ---- */

/* Grows a Read's answer, charging the growth to the connection's budget (and so to the
 * server's) first: false when the budget is spent (r->spent) or memory is (r->oom). */
static bool read_reserve(hub_read_t *r, size_t more)
{
    hs_hubbuf_t *b = &r->out;
    if (more <= b->cap - b->len)
        return true;
    size_t nc = b->cap ? b->cap : 256; /* hs_hubbuf_reserve's growth, to charge it exactly */
    while (nc < b->len + more)
        nc *= 2;
    hs_budget_t *budget = r->op.hub->budget;
    if (!hs_budget_take(budget, nc - b->cap)) {
        r->spent = true;
        return false;
    }
    size_t before = b->cap;
    if (hs_hubbuf_reserve(b, more)) { /* grows to nc: the same rule */
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
    hs_hubbuf_free(&r->out);
    free(r);
}

static void submit_read(hs_hub_t *h, const hs_hubmsg_t *m, int method, int kind,
                        const char *stream, size_t len, int64_t from, size_t count)
{
    hub_read_t *r = calloc(1, sizeof(*r));
    if (!r) {
        if (m->has_id)
            complete_err(h, m->id, "Unavailable: out of memory");
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
    if (!hs_reader_submit(h->srv->reader, &r->base)) {
        free_read(r);
        if (m->has_id)
            complete_err(h, m->id, "Unavailable: the server is stopping");
        return;
    }
    h->pending++;
}

static void push_subscribed(hs_hub_t *h, const op_t *op, int64_t from)
{
    hs_hubsub_t *old = find_push(h, op->stream, op->stream_len);
    if (old)
        sub_free(h, old);
    int rc = add_sub(h, op->stream, op->stream_len, true, NULL, true, from);
    if (rc == HS_EBUSY) {
        if (op->has_id)
            complete_err(h, op->id, "TooManySubscriptions: at most %d per connection",
                         h->srv->cfg.max_subscriptions);
        return;
    }
    if (rc) {
        if (op->has_id)
            complete_err(h, op->id, "Unavailable: out of memory");
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
    complete(h, op->id, NULL, body, o);
}

void hs_hub_on_read_done(hs_io_t *io, hs_mpsc_node_t *n)
{
    hub_read_t *r = hs_container_of(n, hub_read_t, base.node);
    hs_hub_t *h = r->op.hub;
    h->pending--;
    if (h->ended || h->closing)
        goto out;
    const char *id = r->op.has_id ? r->op.id : NULL;
    if (r->spent) {
        if (id)
            complete_err(h, id, "Unavailable: the read budget is spent (this connection's or "
                                "the server's); retry shortly");
        goto out;
    }
    if (r->base.status || r->oom) {
        if (id)
            complete_err(h, id, "Unavailable: the database read failed");
        goto out;
    }
    switch (r->kind) {
    case R_EVENTS:
        if (id) {
            size_t before = h->ctl.len;
            complete(h, id, NULL, (const char *)r->out.p, r->out.len);
            if (h->ctl.len > before) {
                /* the answer's charge follows its copy in ctl until it is written */
                h->ctl_charge += r->out.cap;
                r->out.cap = 0;
                hs_hubbuf_free(&r->out);
            }
        }
        break;
    case R_INFO: {
        if (!id)
            break;
        if (!r->found) {
            complete_err(h, id, "NotFound: %.*s", (int)r->op.stream_len, r->op.stream);
            break;
        }
        char created[32], updated[32], body[HS_NAME_MAX * 6 + 256];
        hs_format_time(r->head.created_us, created);
        hs_format_time(r->head.updated_us, updated);
        size_t o = 8;
        memcpy(body, "{\"name\":", 8);
        o += hs_json_quote(r->op.stream, r->op.stream_len, body + o);
        o += (size_t)snprintf(body + o, sizeof(body) - o,
                              ",\"version\":%lld,\"position\":%lld,\"closed\":%s,\"created\":\"%s\","
                              "\"updated\":\"%s\"}",
                              (long long)r->head.version, (long long)r->head.position,
                              r->head.closed ? "true" : "false", created, updated);
        complete(h, id, NULL, body, o);
        break;
    }
    case R_SUBHEAD:
        push_subscribed(h, &r->op, r->found ? r->head.version : 0);
        break;
    }
out:
    hs_hub_ref(h); /* free_read drops the read's reference */
    free_read(r);
    resume_input(h);
    hs_hub_unref(h);
}

void hs_hub_on_ingest_done(hs_io_t *io, hs_ingest_t *e)
{
    op_t *op = e->conn;
    hs_hub_t *h = op->hub;
    h->pending--;
    if (h->ended || h->closing || !op->has_id)
        goto out;
    char body[HS_PUBLISH_RESULT_MAX];
    size_t o;
    switch (e->status) {
    case 0:
        if (e->kind != HS_INGEST_APPEND) {
            complete(h, op->id, NULL, "true", 4);
            break;
        }
        o = hs_publish_result_json(e, body, sizeof(body));
        complete(h, op->id, NULL, body, o);
        break;
    case HS_ECONFLICT:
        complete_err(h, op->id, "WrongExpectedVersion: expected %lld, actual %lld",
                     (long long)e->expected_version, (long long)e->result.actual_version);
        break;
    case HS_ECLOSED:
        complete_err(h, op->id, "StreamClosed: %.*s", (int)e->stream_len, e->stream);
        break;
    case HS_ENOENT:
        complete_err(h, op->id, "NotFound: %.*s", (int)e->stream_len, e->stream);
        break;
    case HS_EINVAL:
        complete_err(h, op->id,
                     "InvalidEvent: event ids repeat within the publish, or only some of them "
                     "were already appended: retry with exactly the original events");
        break;
    case HS_EUNKNOWN:
        complete_err(h, op->id,
                     "Unavailable: %s; the events may have been appended: retry with the same "
                     "event ids",
                     hs_strerror(e->status));
        break;
    default:
        complete_err(h, op->id, "Unavailable: nothing was appended: %s", hs_strerror(e->status));
        break;
    }
out:
    free(op);
    hs_ingest_free(e);
    resume_input(h);
    hs_hub_unref(h);
}

/* ---- dispatch ---- */

#define BIND_ERROR "Failed to invoke '%s' due to an error on the server."

static void invoke(hs_hub_t *h, const hs_hubmsg_t *m, bool streaming)
{
    hs_server_t *srv = h->srv;
    const char *id = m->has_id ? m->id : NULL;
    int meth = method_of(m->target);
#define FAIL(...)                                                                              \
    do {                                                                                       \
        if (id)                                                                                \
            complete_err(h, id, __VA_ARGS__);                                                  \
        return;                                                                                \
    } while (0)
    if (meth == M_UNKNOWN)
        FAIL("Unknown hub method '%s'", m->target);
    if (m->nstream_ids)
        FAIL("Client sent %u stream(s), Hub method expects 0.", m->nstream_ids);
    if (streaming && meth != M_SUBSCRIBE)
        FAIL("The client attempted to invoke the non-streaming '%s' method with a streaming "
             "invocation.",
             m->target);
    if (streaming && find_stream(h, m->id))
        FAIL("Invocation ID '%s' is already in use.", m->id);
    hs_json_span_t arr, a[4];
    size_t na = 0, pos = 0;
    if (hs_json_parse(m->args, m->args_len, &arr, NULL, 0) || arr.type != HS_JSON_ARRAY)
        FAIL(BIND_ERROR, m->target);
    hs_json_span_t extra;
    while (na < 4 && hs_json_array_next(&arr, &pos, &a[na]))
        na++;
    if (na == 4 && hs_json_array_next(&arr, &pos, &extra))
        FAIL(BIND_ERROR, m->target);
    char stream[HS_NAME_MAX + 1];
    long sl = na ? stream_arg(&a[0], stream) : -1;
    if (sl == -1)
        FAIL(BIND_ERROR, m->target);
    if (sl == -2)
        FAIL("InvalidStreamName");
    size_t slen = (size_t)sl;
    bool all = slen == 4 && memcmp(stream, "$all", 4) == 0;
    int64_t n1 = 0, n2 = 0;
    bool has1 = false, has2 = false;

    switch (meth) {
    case M_PUBLISH: {
        if (na < 2 || na > 3 || (a[1].type != HS_JSON_OBJECT && a[1].type != HS_JSON_ARRAY))
            FAIL(BIND_ERROR, m->target);
        int64_t expected = HS_ANY_VERSION;
        if (na == 3 && a[2].type != HS_JSON_NULL &&
            (a[2].type != HS_JSON_NUMBER || !hs_json_int64(&a[2], &expected) || expected < 0))
            FAIL(BIND_ERROR, m->target);
        if (hs_stream_name_check_publish(stream, slen))
            FAIL("InvalidStreamName");
        hs_ingest_t *e;
        char why[256];
        int rc = hs_codec_parse_publish(a[1].p, a[1].n, stream, slen, srv->cfg.max_event, &e, why,
                                        sizeof(why));
        if (rc == HS_ENOMEM)
            FAIL("Unavailable: out of memory");
        if (rc)
            FAIL("InvalidEvent: %s", why);
        e->expected_version = expected;
        if (hs_server_events_hook(srv, e, why, sizeof(why))) {
            hs_ingest_free(e);
            FAIL("InvalidEvent: %s", why);
        }
        submit_ingest(h, m, M_PUBLISH, e);
        return;
    }
    case M_SUBSCRIBE:
    case M_READ:
        if (na >= 2 && a[1].type != HS_JSON_NULL) {
            if (a[1].type != HS_JSON_NUMBER || !hs_json_int64(&a[1], &n1) || n1 < 0)
                FAIL(BIND_ERROR, m->target);
            has1 = true;
        }
        if (na >= 3 && a[2].type != HS_JSON_NULL) {
            if (meth != M_READ || a[2].type != HS_JSON_NUMBER || !hs_json_int64(&a[2], &n2) ||
                n2 < 0)
                FAIL(BIND_ERROR, m->target);
            has2 = true;
        }
        if (na > 3 || (meth == M_SUBSCRIBE && na > 2))
            FAIL(BIND_ERROR, m->target);
        if (stream[0] == '$' && !all)
            FAIL("InvalidStreamName");
        if (meth == M_READ) {
            size_t count = has2 ? (n2 > 1000 ? 1000 : (size_t)n2) : 100;
            if (!count) {
                if (id)
                    complete(h, id, NULL, "[]", 2);
                return;
            }
            submit_read(h, m, M_READ, R_EVENTS, stream, slen, has1 ? n1 : 0, count);
            return;
        }
        if (streaming) {
            int rc = add_sub(h, stream, slen, false, m->id, has1, n1);
            if (rc == HS_EBUSY)
                FAIL("TooManySubscriptions: at most %d per connection",
                     srv->cfg.max_subscriptions);
            if (rc)
                FAIL("Unavailable: out of memory");
            return;
        }
        if (has1 || all) {
            op_t op = {h, M_SUBSCRIBE, m->has_id, {0}, {0}, slen};
            memcpy(op.id, m->id, sizeof(op.id));
            memcpy(op.stream, stream, slen);
            int64_t from = n1;
            if (!has1) {
                hs_writer_stats_t ws;
                hs_writer_stats(srv->writer, &ws);
                from = ws.last_position;
            }
            push_subscribed(h, &op, from);
            return;
        }
        /* live only: the version it continues after is the stream's current one */
        submit_read(h, m, M_SUBSCRIBE, R_SUBHEAD, stream, slen, 0, 0);
        return;
    case M_UNSUBSCRIBE: {
        if (na != 1)
            FAIL(BIND_ERROR, m->target);
        hs_hubsub_t *s = find_push(h, stream, slen);
        if (s)
            sub_free(h, s);
        if (id)
            complete(h, id, NULL, s ? "true" : "false", s ? 4 : 5);
        return;
    }
    case M_GETSTREAM:
        if (na != 1)
            FAIL(BIND_ERROR, m->target);
        submit_read(h, m, M_GETSTREAM, R_INFO, stream, slen, 0, 0);
        return;
    case M_CLOSESTREAM: {
        if (na != 1)
            FAIL(BIND_ERROR, m->target);
        if (hs_stream_name_check_publish(stream, slen))
            FAIL("InvalidStreamName");
        hs_ingest_t *e = hs_codec_build_admin(HS_INGEST_CLOSE, stream, slen);
        if (!e)
            FAIL("Unavailable: out of memory");
        submit_ingest(h, m, M_CLOSESTREAM, e);
        return;
    }
    }
#undef FAIL
}

static void cancel(hs_hub_t *h, const hs_hubmsg_t *m)
{
    if (!m->has_id)
        return;
    hs_hubsub_t *s = find_stream(h, m->id);
    if (!s || s->done)
        return; /* unknown or finished: ignored */
    char id[HS_HUB_ID_MAX + 1];
    memcpy(id, s->id, sizeof(id));
    sub_free(h, s);
    complete(h, id, NULL, NULL, 0);
}

/*
 * Input flow. A connection reads and handles the client's records in order, but an invocation
 * may not run at once:
 *  - another one is still running (they run one at a time, in arrival order, as ASP.NET does
 *    by default, so a GetStream after a Publish sees the publish);
 *  - its answers have nowhere to go: more than HUB_CTL_HIGH bytes of records wait for the
 *    transport (the client does not read), or, with stateful reconnect, the replay buffer holds
 *    --hub-stateful-buffer unacknowledged bytes (the client does not send Acks).
 * Such invocations (and the cancellations behind them) are held, in order, in h->held. While any
 * are held, or while the client does not read, the connection's input is not read: a WebSocket
 * stops receiving (the client's sends then block in TCP), and an SSE / long-polling POST is not
 * answered until its records were taken (the official clients send one at a time). Only a full
 * replay buffer keeps the input flowing, since the Acks that free it arrive there, up to
 * HELD_MAX bytes of held invocations. A connection whose replay buffer stays full for
 * --hub-client-timeout-ms without an Ack is closed with an error (hs_hub_tick).
 */
#define HUB_CTL_HIGH (64u << 10)
#define HELD_MAX     (1u << 20)

static bool replay_full(const hs_hub_t *h)
{
    return h->stateful && h->replay.len >= h->srv->cfg.hub_stateful_buffer;
}

static bool ctl_full(const hs_hub_t *h)
{
    return h->ctl.len >= HUB_CTL_HIGH;
}

static size_t held_len(const hs_hub_t *h)
{
    return h->held.len - h->held_off;
}

/* Whether an invocation may run now. */
static bool may_run(const hs_hub_t *h)
{
    return !h->pending && !replay_full(h) && !ctl_full(h);
}

/* Whether the connection's input is left unread for now. */
static bool input_stopped(const hs_hub_t *h)
{
    return ctl_full(h) || (held_len(h) && !replay_full(h)) || held_len(h) >= HELD_MAX;
}

/* The records a stateful connection numbers (ASP.NET's sequenced messages: Invocation,
 * StreamItem, Completion, StreamInvocation, CancelInvocation). They are also the ones held back
 * in order while an invocation may not run (StreamItem and Completion are then ignored, as
 * ever, but in their turn, so the numbering stays right). */
static bool trackable(int type)
{
    return type >= HS_HUBMSG_INVOCATION && type <= HS_HUBMSG_CANCEL_INVOCATION;
}

/* Handles one parsed record (invocations only when may_run). */
static void handle(hs_hub_t *h, const hs_hubmsg_t *m)
{
    if (h->stateful && trackable(m->type)) {
        if (++h->in_count <= h->in_handled)
            return; /* replayed after a resume, already handled */
        h->in_handled = h->in_count;
    }
    switch (m->type) {
    case HS_HUBMSG_INVOCATION:
        invoke(h, m, false);
        break;
    case HS_HUBMSG_STREAM_INVOCATION:
        invoke(h, m, true);
        break;
    case HS_HUBMSG_CANCEL_INVOCATION:
        cancel(h, m);
        break;
    case HS_HUBMSG_PING:
        h->client_pinged = true;
        break;
    case HS_HUBMSG_CLOSE:
        h->peer_closed = true;
        hs_hub_end(h);
        break;
    case HS_HUBMSG_ACK:
        if (h->stateful)
            on_ack(h, m->sequence_id);
        hs_hub_want_write(h); /* the replay buffer may have held data back */
        break;
    case HS_HUBMSG_SEQUENCE:
        if (!h->stateful)
            break;
        if (m->sequence_id > h->in_handled + 1 || m->sequence_id < 1) {
            hs_hub_close(h, "Connection closed with an error. Sequence ID greater than amount of "
                            "messages we've received.",
                         false);
            break;
        }
        h->in_count = m->sequence_id - 1;
        h->awaiting_sequence = false;
        break;
    default:
        break; /* StreamItem / Completion (no upload streams or client results here), unknown */
    }
}

/* Parses one record; false (the connection is closing) when it is malformed. */
static bool parse(hs_hub_t *h, const uint8_t *rec, size_t len, hs_hubmsg_t *m)
{
    char why[200];
    int rc = hs_hubproto_parse(h->fmt, rec, len, m, &h->scratch, why, sizeof(why));
    if (rc == HS_ENOMEM) {
        fail_oom(h);
        return false;
    }
    if (rc) {
        char msg[300];
        snprintf(msg, sizeof(msg), "Connection closed with an error. InvalidData: %s", why);
        hs_hub_close(h, msg, false);
        return false;
    }
    return true;
}

/* Keeps an invocation record for later: [u32 length][bytes]. */
static void hold(hs_hub_t *h, const uint8_t *rec, size_t len)
{
    /* bounded by input_stopped(): at most HELD_MAX plus what one read or POST delivered */
    uint32_t l = (uint32_t)len;
    if (hs_hubbuf_put(&h->held, &l, sizeof(l)) || hs_hubbuf_put(&h->held, rec, len))
        fail_oom(h);
}

/* Runs held invocations, oldest first, while they may run. */
static void run_held(hs_hub_t *h)
{
    while (held_len(h) && may_run(h) && !h->ended && !h->closing) {
        uint32_t l;
        memcpy(&l, h->held.p + h->held_off, sizeof(l));
        const uint8_t *rec = h->held.p + h->held_off + sizeof(l);
        h->held_off += sizeof(l) + l;
        hs_hubmsg_t m;
        /* handled before the buffer is touched again: nothing below appends to h->held */
        if (parse(h, rec, l, &m))
            handle(h, &m);
    }
    if (!held_len(h)) {
        h->held.len = 0;
        h->held_off = 0;
    }
}

static void on_record(hs_hub_t *h, const uint8_t *rec, size_t len)
{
    hs_hubmsg_t m;
    if (!parse(h, rec, len, &m))
        return;
    if (h->awaiting_sequence && m.type != HS_HUBMSG_SEQUENCE)
        return;
    if (trackable(m.type) && (held_len(h) || !may_run(h))) {
        hold(h, rec, len);
        return;
    }
    handle(h, &m);
    if (m.type == HS_HUBMSG_ACK)
        run_held(h); /* the Ack may have made room for what waited */
}

/* Sets the WebSocket's receive flow to match input_stopped(). */
static void update_rx(hs_hub_t *h)
{
    bool stop = input_stopped(h) && !h->ended && !h->closing;
    if (h->transport != HS_HUB_T_WS || !h->wsi || stop == h->rx_paused)
        return;
    h->rx_paused = stop;
    lws_rx_flow_control(h->wsi, stop ? 0 : 1);
}

void hs_hub_input(hs_hub_t *h, const uint8_t *p, size_t n)
{
    if (h->ended || h->closing || (!n && !h->in.len))
        return;
    if (n)
        h->last_recv_ms = now_ms();
    const uint8_t *buf = p;
    size_t len = n, off = 0;
    if (h->in.len) {
        if (n && hs_hubbuf_put(&h->in, p, n)) {
            fail_oom(h);
            return;
        }
        buf = h->in.p;
        len = h->in.len;
    }
    size_t max = h->srv->cfg.max_message;
    while (off < len && !h->ended && !h->closing && !input_stopped(h)) {
        const uint8_t *rec;
        size_t rl, used;
        int rc = hs_hubproto_next(h->handshaken ? h->fmt : HS_HUB_JSON, buf + off, len - off, max,
                                  &rec, &rl, &used);
        if (rc == 0)
            break;
        if (rc < 0) {
            char msg[200];
            if (!h->handshaken) {
                refuse_handshake(h, "Handshake was canceled.");
            } else {
                if (rc == HS_ETOOLARGE)
                    snprintf(msg, sizeof(msg),
                             "Connection closed with an error. MessageTooLarge: a message "
                             "exceeds the %zu-byte limit.",
                             max);
                else
                    snprintf(msg, sizeof(msg),
                             "Connection closed with an error. InvalidData: bad record length.");
                hs_hub_close(h, msg, false);
            }
            break;
        }
        off += used;
        if (!h->handshaken)
            handshake(h, rec, rl);
        else
            on_record(h, rec, rl);
    }
    if (buf == h->in.p) {
        if (off) {
            memmove(h->in.p, h->in.p + off, h->in.len - off);
            h->in.len -= off;
        }
    } else if (off < len && !h->ended && !h->closing) {
        if (hs_hubbuf_put(&h->in, buf + off, len - off))
            fail_oom(h);
    }
    if (h->ended || h->closing) {
        h->in.len = 0;
        return;
    }
    /* what is left unparsed: a partial record, or records behind a stop; a WebSocket's is at
     * most what lws had read when it was paused, a POST's its body (bounded by --max-body) */
    if (h->in.len > HELD_MAX + max) {
        hs_hub_close(h, "Connection closed with an error. Too much input while its answers "
                        "wait.",
                     false);
        return;
    }
    update_rx(h);
}

/* Something that held the input back went away (an invocation finished, an Ack arrived, the
 * client read its answers): run what waited and read on. */
static void resume_input(hs_hub_t *h)
{
    if (h->ended)
        return;
    run_held(h);
    hs_hub_input(h, NULL, 0);
    update_rx(h);
    hs_hub_release_posts(h);
}

void hs_hub_output_drained(hs_hub_t *h)
{
    if (h->ended || h->closing)
        return;
    if (held_len(h) || h->in.len || h->rx_paused || h->posts)
        resume_input(h);
}

bool hs_hub_input_idle(const hs_hub_t *h)
{
    return !h->in.len && !held_len(h);
}

/* ---- timers ---- */

void hs_hub_tick(hs_io_t *io, int64_t now)
{
    const hs_config_t *cfg = &io->srv->cfg;
    for (hs_hub_t *h = hs_hub_io(io)->hubs, *next; h; h = next) {
        next = h->io_next;
        if (h->ended)
            continue;
        /* Empty buffers go back here, at most once a tick, not after every message (an
         * allocation per message for a busy connection): an idle one keeps none. The scratch
         * holds nothing between records (what a pending invocation needs, it copied). */
        if (!h->in.len)
            hs_hubbuf_free(&h->in);
        if (!held_len(h))
            hs_hubbuf_free(&h->held);
        if (!h->ctl.len)
            hs_hubbuf_free(&h->ctl);
        hs_hubbuf_free(&h->scratch);
        if (h->closing) {
            if (now - h->closing_ms >= HS_HUB_CLOSE_WAIT_MS) {
                /* the client does not read (a stalled subscriber): cut it off */
                if (h->wsi)
                    lws_set_timeout(h->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
                hs_hub_end(h);
            }
            continue;
        }
        if (!h->handshaken && !h->closing &&
            now - h->start_ms >= cfg->hub_handshake_timeout_ms) {
            refuse_handshake(h, "Handshake was canceled.");
            continue;
        }
        if (h->transport == HS_HUB_T_LP) {
            if (h->poll && now - h->poll->parked_ms >= cfg->hub_longpoll_ms) {
                hs_hubreq_t *r = h->poll;
                h->poll = NULL;
                h->poll_end_ms = now;
                hs_hub_reply(io, r, 200);
            } else if (!h->poll && now - h->poll_end_ms >= cfg->hub_disconnect_timeout_ms) {
                hs_hub_end(h); /* the client stopped polling */
                continue;
            }
        } else if (!h->wsi) {
            if (h->dropped_ms && now - h->dropped_ms >= cfg->hub_disconnect_timeout_ms)
                hs_hub_end(h); /* not resumed in time */
            continue;
        }
        if (!h->handshaken || h->closing)
            continue;
        if (replay_full(h)) {
            /* answers wait for the client's Acks; one that sends none is gone or hostile */
            if (!h->replay_full_ms) {
                h->replay_full_ms = now;
            } else if (now - h->replay_full_ms >= cfg->hub_client_timeout_ms) {
                hs_hub_close(h,
                             "Connection closed with an error. The client did not acknowledge "
                             "the messages it received in time.",
                             true);
                continue;
            }
        }
        if (h->client_pinged && now - h->last_recv_ms >= cfg->hub_client_timeout_ms) {
            hs_hub_close(h,
                         "Connection closed with an error. Server timeout elapsed without "
                         "receiving a message from the client.",
                         true);
            continue;
        }
        if (h->stateful && h->in_handled > h->acked && now - h->ack_ms >= 1000) {
            size_t before = h->ctl.len;
            queued(h, hs_hubproto_ack(&h->ctl, h->fmt, h->in_handled), before, false);
            h->acked = h->in_handled;
            h->ack_ms = now;
        }
        if (h->transport != HS_HUB_T_LP && now - h->last_send_ms >= cfg->hub_keepalive_ms &&
            !h->ctl.len) {
            size_t before = h->ctl.len;
            queued(h, hs_hubproto_ping(&h->ctl, h->fmt), before, false);
            h->last_send_ms = now; /* once per interval even if the socket is choked */
        }
    }
}

/* ---- shutdown ---- */

void hs_hub_discard_node(hs_mpsc_node_t *n)
{
    switch (n->kind) {
    case HS_NODE_HUB_INGEST: {
        hs_ingest_t *e = hs_container_of(n, hs_ingest_t, node);
        op_t *op = e->conn;
        hs_hub_unref(op->hub);
        free(op);
        hs_ingest_free(e);
        break;
    }
    case HS_NODE_HUB_READ:
        free_read(hs_container_of(n, hub_read_t, base.node));
        break;
    case HS_NODE_HUB_REQ:
    case HS_NODE_HUB_REP: {
        hs_hubreq_t *r = (hs_hubreq_t *)n;
        hs_budget_give(r->hub->budget, r->charge);
        hs_hub_unref(r->hub);
        free(r->body);
        hs_hubbuf_free(&r->resp);
        free(r);
        break;
    }
    }
}
