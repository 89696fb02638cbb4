/*
 * A SignalR hub connection on its home IO thread (see hub.h): the handshake, records in,
 * invocations dispatched to its dialect's methods (methods.c), records out, keep-alive and
 * stateful reconnect. Transport glue lives in transports.c; this file never touches a socket
 * except through hs_hub_want_write().
 *
 * Output order: whole records queued for the connection (handshake reply, Completions, Pings,
 * Close) go out before subscription data, so a push Subscribe's Completion precedes its
 * events. Subscription data is read straight from the subscriptions' outboxes at write time
 * (subs.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/time.h"
#include "ringbuf/budget.h"
#include "proto/codec.h"
#include "server/auth.h"
#include "server/signalr/hub.h"
#include "proto/json.h"
#include "util/utf8.h"

static int64_t now_ms(void)
{
    return hs_now_ms();
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

/* ---- subscriptions (added by subs.c) ---- */

void hs_hub_sub_free(hs_hub_t *h, hs_hubsub_t *hs)
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
    if (h->dialect->sub_freed)
        h->dialect->sub_freed(h, hs);
    hs->sub->io_ctx = NULL;
    hs_fanout_unsubscribe(h->srv->fanout, hs->sub);
    hs_sub_unref(hs->sub);
    free(hs);
}

hs_hubsub_t *hs_hub_find_push(hs_hub_t *h, const char *stream, size_t len)
{
    for (hs_hubsub_t *s = h->subs; s; s = s->next)
        if (s->push && !s->done && s->sub->stream_len == len &&
            memcmp(s->sub->stream, stream, len) == 0)
            return s;
    return NULL;
}

hs_hubsub_t *hs_hub_find_stream(hs_hub_t *h, const char *id)
{
    for (hs_hubsub_t *s = h->subs; s; s = s->next)
        if (!s->push && strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

/* ---- stateful reconnect: numbering and the replay buffer ---- */

/* Records a trackable record just queued or packed: numbers it and keeps a copy until acked. */
int hs_hub_track(hs_hub_t *h, const uint8_t *p, size_t n)
{
    if (!h->stateful)
        return 0;
    if (h->st->replay_head + h->st->nreplay == h->st->replay_cap) {
        if (h->st->replay_head) {
            memmove(h->st->replay_len, h->st->replay_len + h->st->replay_head,
                    h->st->nreplay * sizeof(*h->st->replay_len));
            h->st->replay_head = 0;
        } else {
            size_t nc = h->st->replay_cap ? h->st->replay_cap * 2 : 64;
            uint32_t *nl = realloc(h->st->replay_len, nc * sizeof(*nl));
            if (!nl)
                return HS_ENOMEM;
            h->st->replay_len = nl;
            h->st->replay_cap = nc;
        }
    }
    if (hs_buf_put(&h->st->replay, p, n))
        return HS_ENOMEM;
    h->st->out_seq++;
    if (!h->st->nreplay)
        h->st->replay_first = h->st->out_seq;
    h->st->replay_len[h->st->replay_head + h->st->nreplay++] = (uint32_t)n;
    return 0;
}

static void on_ack(hs_hub_t *h, int64_t seq)
{
    h->st->replay_full_ms = 0;
    size_t drop = 0;
    while (h->st->nreplay && h->st->replay_first <= seq) {
        drop += h->st->replay_len[h->st->replay_head++];
        h->st->nreplay--;
        h->st->replay_first++;
    }
    if (!h->st->nreplay)
        h->st->replay_head = 0;
    if (drop) {
        memmove(h->st->replay.p, h->st->replay.p + drop, h->st->replay.len - drop);
        h->st->replay.len -= drop;
    }
}

/* ---- queuing records ---- */

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
        hs_hub_fail_oom(h);
        return;
    }
    if (trackable && hs_hub_track(h, h->ctl.p + before, h->ctl.len - before)) {
        hs_hub_fail_oom(h);
        return;
    }
    hs_hub_want_write(h);
}

void hs_hub_want_write(hs_hub_t *h)
{
    h->tops->want_write(h);
}

void hs_hub_complete(hs_hub_t *h, const char *id, const char *error, const char *json, size_t len)
{
    if (h->ended || h->closing)
        return;
    /* in order: the input waits while an invocation runs (hs_hub_input) */
    size_t before = h->ctl.len;
    int rc = hs_hubproto_completion(&h->ctl, h->fmt, id, error, json, len);
    queued(h, rc, before, true);
}

void hs_hub_send(hs_hub_t *h, const char *target, const uint8_t *const *args, const size_t *lens,
                 size_t nargs)
{
    if (h->ended || h->closing)
        return;
    size_t before = h->ctl.len;
    int rc = hs_hubproto_invocation_raw(&h->ctl, h->fmt, target, args, lens, nargs);
    queued(h, rc, before, true);
}

void hs_hub_complete_err(hs_hub_t *h, const char *id, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    msg[hs_utf8_boundary(msg, strlen(msg))] = '\0'; /* a cut must not split a character */
    hs_hub_complete(h, id, msg, NULL, 0);
}

void hs_hub_fail_oom(hs_hub_t *h)
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
        hs_log(&h->srv->log, HS_LOG_DEBUG, "hub connection closing", "connectionId", h->conn_id,
               "reason", error, NULL);
    if (!hs_hub_attached(h) && !h->poll && h->transport != HS_HUB_T_LP) {
        hs_hub_end(h); /* nothing to write it to */
        return;
    }
    hs_hub_want_write(h);
}

/* ---- ending ---- */

void hs_hub_end(hs_hub_t *h)
{
    if (h->ended)
        return;
    h->ended = true;
    if (h->m_counted) {
        h->m_counted = false;
        hs_gauge_add(&h->io->m.conns[h->m_kind][h->m_proto], -1);
    }
    while (h->subs)
        hs_hub_sub_free(h, h->subs);
    if (h->dialect->ended)
        h->dialect->ended(h);
    h->tops->ended(h); /* what waits is answered, a socket is closed on its next turn */
    hs_log(&h->srv->log, HS_LOG_DEBUG, "hub connection ended", "connectionId", h->conn_id, NULL);
    /* long polling keeps its registry entry until it expires, so that the next poll gets 204
     * (a clean end) rather than 404 */
    if (h->transport != HS_HUB_T_LP)
        hs_hubreg_remove(h);
    else
        hs_hubreg_linger(h);
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
    if (!hs_hubreg_set_attached(h, false, true)) {
        hs_hub_end(h); /* no token (skipNegotiation): nothing can resume it */
        return;
    }
    hs_log(&h->srv->log, HS_LOG_DEBUG, "hub connection dropped, waiting for a resume",
           "connectionId", h->conn_id, NULL);
}

static void update_rx(hs_hub_t *h);

void hs_hub_resume(hs_hub_t *h)
{
    h->dropped_ms = 0;
    ctl_clear(h);
    size_t before = h->ctl.len;
    int rc = hs_hubproto_sequence(&h->ctl, h->fmt,
                                  h->st->nreplay ? h->st->replay_first : h->st->out_seq + 1);
    if (!rc)
        rc = hs_buf_put(&h->ctl, h->st->replay.p, h->st->replay.len);
    if (rc) {
        h->ctl.len = before;
        hs_hub_fail_oom(h);
        return;
    }
    h->awaiting_sequence = true;
    h->last_recv_ms = h->last_send_ms = now_ms();
    hs_log(&h->srv->log, HS_LOG_DEBUG, "hub connection resumed", "connectionId", h->conn_id, NULL);
    /* the new socket reads until told otherwise (the one it replaced may have been paused) */
    h->rx_paused = false;
    update_rx(h);
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
    /* /metrics: open connections by transport and protocol, on the home thread's counters */
    h->m_kind = h->transport == HS_HUB_T_WS    ? HS_MC_HUB_WS
                : h->transport == HS_HUB_T_SSE ? HS_MC_HUB_SSE
                                               : HS_MC_HUB_LP;
    h->m_proto = fmt == HS_HUB_MSGPACK ? HS_MP_MSGPACK : HS_MP_JSON;
    h->m_counted = true;
    hs_gauge_add(&h->io->m.conns[h->m_kind][h->m_proto], 1);
    h->stateful = h->stateful_ok && version >= 2 && h->transport == HS_HUB_T_WS;
    if (h->stateful && !h->st && !(h->st = calloc(1, sizeof(*h->st)))) {
        h->stateful = false;
        hs_hub_fail_oom(h);
        return;
    }
    if (h->stateful)
        hs_hubreg_set_resumable(h);
    size_t before = h->ctl.len;
    queued(h, hs_hubproto_handshake_reply(&h->ctl, NULL), before, false);
}

/* ---- dispatch ---- */

/* An Invocation or StreamInvocation: the method of the connection's dialect it names, called
 * with its arguments once their count is right (the method checks their types). */
static void invoke(hs_hub_t *h, const hs_hubmsg_t *m, bool streaming)
{
    const char *id = m->has_id ? m->id : NULL;
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        if (id)                                                                                    \
            hs_hub_complete_err(h, id, __VA_ARGS__);                                               \
        return;                                                                                    \
    } while (0)
    const hs_hub_method_t *meth = NULL;
    for (size_t i = 0; i < h->dialect->nmethods && !meth; i++)
        if (!strcasecmp(m->target, h->dialect->methods[i].name))
            meth = &h->dialect->methods[i];
    if (!meth)
        FAIL("Unknown hub method '%s'", m->target);
    if (m->nstream_ids)
        FAIL("Client sent %u stream(s), Hub method expects 0.", m->nstream_ids);
    if (streaming && !meth->streaming)
        FAIL("The client attempted to invoke the non-streaming '%s' method with a streaming "
             "invocation.",
             m->target);
    if (streaming && hs_hub_find_stream(h, m->id))
        FAIL("Invocation ID '%s' is already in use.", m->id);
    hs_json_span_t arr, a[HS_HUB_ARGS_MAX], extra;
    size_t pos = 0;
    int na = 0;
    if (hs_json_parse(m->args, m->args_len, &arr, NULL, 0) || arr.type != HS_JSON_ARRAY)
        FAIL(HS_HUB_BIND_ERROR, m->target);
    while (na < HS_HUB_ARGS_MAX && hs_json_array_next(&arr, &pos, &a[na]))
        na++;
    if ((na == HS_HUB_ARGS_MAX && hs_json_array_next(&arr, &pos, &extra)) || na < meth->min_args ||
        na > meth->max_args)
        FAIL(HS_HUB_BIND_ERROR, m->target);
#undef FAIL
    meth->fn(h, m, a, na, streaming);
}

static void cancel(hs_hub_t *h, const hs_hubmsg_t *m)
{
    if (!m->has_id)
        return;
    hs_hubsub_t *s = hs_hub_find_stream(h, m->id);
    if (!s || s->done)
        return; /* unknown or finished: ignored */
    char id[HS_HUB_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s", s->id);
    hs_hub_sub_free(h, s);
    hs_hub_complete(h, id, NULL, NULL, 0);
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
    return h->stateful && h->st->replay.len >= h->srv->cfg.hub_stateful_buffer;
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
        if (++h->st->in_count <= h->st->in_handled)
            return; /* replayed after a resume, already handled */
        h->st->in_handled = h->st->in_count;
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
        if (m->sequence_id > h->st->in_handled + 1 || m->sequence_id < 1) {
            hs_hub_close(h,
                         "Connection closed with an error. Sequence ID greater than amount of "
                         "messages we've received.",
                         false);
            break;
        }
        h->st->in_count = m->sequence_id - 1;
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
        hs_hub_fail_oom(h);
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
    if (hs_buf_put(&h->held, &l, sizeof(l)) || hs_buf_put(&h->held, rec, len))
        hs_hub_fail_oom(h);
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
    if (h->transport != HS_HUB_T_WS || !hs_hub_attached(h) || stop == h->rx_paused)
        return;
    h->rx_paused = stop;
    h->tops->pause_input(h, stop);
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
        if (n && hs_buf_put(&h->in, p, n)) {
            hs_hub_fail_oom(h);
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
        if (hs_buf_put(&h->in, buf + off, len - off))
            hs_hub_fail_oom(h);
    }
    if (h->ended || h->closing) {
        h->in.len = 0;
        return;
    }
    /* what is left unparsed: a partial record, or records behind a stop; a WebSocket's is at
     * most what lws had read when it was paused, a POST's its body (bounded by --max-body) */
    if (h->in.len > HELD_MAX + max) {
        hs_hub_close(h,
                     "Connection closed with an error. Too much input while its answers "
                     "wait.",
                     false);
        return;
    }
    update_rx(h);
}

/* Something that held the input back went away (an invocation finished, an Ack arrived, the
 * client read its answers): run what waited and read on. */
void hs_hub_resume_input(hs_hub_t *h)
{
    if (h->ended)
        return;
    run_held(h);
    hs_hub_input(h, NULL, 0);
    update_rx(h);
    h->tops->input_taken(h);
}

void hs_hub_output_drained(hs_hub_t *h)
{
    if (h->ended || h->closing)
        return;
    if (held_len(h) || h->in.len || h->rx_paused || h->posts)
        hs_hub_resume_input(h);
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
            hs_buf_free(&h->in);
        if (!held_len(h))
            hs_buf_free(&h->held);
        if (!h->ctl.len)
            hs_buf_free(&h->ctl);
        hs_buf_free(&h->scratch);
        if (h->closing) {
            if (now - h->closing_ms >= HS_HUB_CLOSE_WAIT_MS) {
                /* the client does not read (a stalled subscriber): cut it off */
                h->tops->cut_off(h);
                hs_hub_end(h);
            }
            continue;
        }
        if (h->dialect->tick)
            h->dialect->tick(h, now);
        if (hs_auth_expired(h->who)) {
            /* never served past its credentials; the client's reconnect asks its
             * accessTokenFactory for a fresh token */
            hs_hub_close(h, "Unauthorized: the access token expired; reconnect with a new one",
                         true);
            continue;
        }
        if (!h->handshaken && !h->closing && now - h->start_ms >= cfg->hub_handshake_timeout_ms) {
            refuse_handshake(h, "Handshake was canceled.");
            continue;
        }
        /* long polling: polls and their timeouts are the transport's (transports.c) */
        if (h->transport != HS_HUB_T_LP && !hs_hub_attached(h)) {
            if (h->dropped_ms && now - h->dropped_ms >= cfg->hub_disconnect_timeout_ms)
                hs_hub_end(h); /* not resumed in time */
            continue;
        }
        if (!h->handshaken || h->closing)
            continue;
        if (replay_full(h)) {
            /* answers wait for the client's Acks; one that sends none is gone or hostile */
            if (!h->st->replay_full_ms) {
                h->st->replay_full_ms = now;
            } else if (now - h->st->replay_full_ms >= cfg->hub_client_timeout_ms) {
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
        if (h->stateful && h->st->in_handled > h->st->acked && now - h->st->ack_ms >= 1000) {
            size_t before = h->ctl.len;
            queued(h, hs_hubproto_ack(&h->ctl, h->fmt, h->st->in_handled), before, false);
            h->st->acked = h->st->in_handled;
            h->st->ack_ms = now;
        }
        if (h->transport != HS_HUB_T_LP && now - h->last_send_ms >= cfg->hub_keepalive_ms &&
            !h->ctl.len) {
            size_t before = h->ctl.len;
            queued(h, hs_hubproto_ping(&h->ctl, h->fmt), before, false);
            h->last_send_ms = now; /* once per interval even if the socket is choked */
        }
    }
}
