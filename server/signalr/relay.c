/*
 * A connection's WebSocket on another IO thread than the connection's home: the relay.
 *
 * A stateful connection's resume is a new TCP connection, and the acceptor sends it to the
 * connection's home thread when it can read the token in the request line. It cannot when the
 * connection is TLS (the bytes are encrypted), when the request came on a reused keep-alive
 * connection (a proxy's), or when the request line was not in yet. The resume then lands on
 * another IO thread, the near one, and the connection cannot move: its subscriptions, its
 * invocations in flight and its timers are the home thread's. So the socket stays on the near
 * thread, the connection on its home, and the two exchange messages on their inboxes:
 *
 *   near -> home   OPEN    the WebSocket is up: the connection resumes through it
 *                  IN      bytes the client sent (a frame or part of one); back as TAKEN
 *                  GONE    the socket closed (and whether the client closed it)
 *   home -> near   OUT     a packed batch of records, one at a time; back as SENT once written
 *                  CTL     state the home thread set on the relay: stop or resume reading,
 *                          close once what is queued is written, or drop the socket at once
 *
 * Bounds: one OUT is in flight (the next is packed when SENT comes back, so the near thread
 * holds one batch: about HS_WRITE_BUDGET, or a single larger record such as a Read answer, which
 * stays charged to the read budget until written); input the home thread has not taken yet is
 * at most RELAY_IN_MAX bytes and one read (then the near thread stops reading until TAKEN
 * comes back), and
 * the home thread's own input flow (hs_hub_tops_t.pause_input) travels as CTL. OPEN, GONE and
 * CTL are nodes of the relay itself: they need no allocation, and CTL is posted again only
 * after the near thread took the last one. Every message holds a reference to the relay; the
 * relay holds one to the connection, and the connection one to its current relay (h->relay),
 * which it lets go when the socket is gone or replaced, or the connection ends.
 *
 * The same file replaces a connection's socket (hs_relay_drop_socket) for a resume that lands
 * on the home thread itself: the old socket, direct or relayed, is dropped without ending the
 * connection.
 */
#include <stdlib.h>
#include <string.h>

#include "ringbuf/budget.h"
#include "server/signalr/hub.h"
#include "util/time.h"

/* input sent home and not yet taken, beyond which the near thread stops reading */
#define RELAY_IN_MAX (256 * 1024)

enum { OP_IN = 1, OP_TAKEN, OP_OUT, OP_SENT };

/* CTL state bits (home thread sets, near thread reads) */
enum { CTL_PAUSE = 1, CTL_CLOSE = 2, CTL_KILL = 4 };

/* An IN / TAKEN or OUT / SENT message. */
typedef struct relay_msg {
    hs_mpsc_node_t node; /* HS_NODE_RELAY_DATA */
    hs_relay_t *r;       /* a reference */
    int op;
    enum lws_write_protocol wp; /* OUT: text or binary */
    size_t charge;              /* OUT: read budget its Read answers were charged */
    size_t off;                 /* OUT: bytes written so far (after LWS_PRE) */
    hs_buf_t buf;               /* IN: the bytes; OUT: LWS_PRE headroom, then the batch */
} relay_msg_t;

struct hs_relay {
    atomic_uint refs;
    hs_hub_t *hub; /* a reference; its fields are the home thread's */
    hs_io_t *near, *home;
    hs_mpsc_node_t open, gone, ctl; /* HS_NODE_RELAY_OPEN / _GONE / _CTL */
    atomic_int ctl_state;           /* CTL_* */
    atomic_bool ctl_queued;         /* the ctl node is on the near thread's inbox */
    bool peer_closed;               /* GONE: the client sent a Close (set before it is posted) */
    /* near thread */
    struct lws *wsi;  /* NULL once closed */
    relay_msg_t *out; /* the OUT being written */
    size_t in_unacked;
    bool rx_stopped, open_sent;
    /* home thread */
    bool out_busy; /* an OUT is with the near thread */
};

static hs_relay_t *relay_ref(hs_relay_t *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

static void relay_unref(hs_relay_t *r)
{
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    hs_hub_unref(r->hub);
    free(r);
}

hs_relay_t *hs_relay_create(hs_hub_t *h, hs_io_t *near, hs_io_t *home)
{
    hs_relay_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    atomic_init(&r->refs, 1); /* the socket's */
    r->hub = h;
    r->near = near;
    r->home = home;
    r->open.kind = HS_NODE_RELAY_OPEN;
    r->gone.kind = HS_NODE_RELAY_GONE;
    r->ctl.kind = HS_NODE_RELAY_CTL;
    return r;
}

static void post(hs_io_t *to, hs_relay_t *r, hs_mpsc_node_t *n)
{
    relay_ref(r);
    hs_io_post(to, n);
}

static relay_msg_t *msg_of(hs_mpsc_node_t *n)
{
    return hs_container_of(n, relay_msg_t, node);
}

static void msg_free(relay_msg_t *m)
{
    if (m->op == OP_OUT || m->op == OP_SENT)
        hs_budget_give(m->r->hub->budget, m->charge);
    hs_buf_free(&m->buf);
    relay_unref(m->r);
    free(m);
}

/* Sends a message back where it came from as its answer (the reference travels with it). */
static void answer(relay_msg_t *m, int op, hs_io_t *to)
{
    m->op = op;
    hs_buf_free(&m->buf);
    hs_io_post(to, &m->node);
}

/* ---- the near thread: the socket ---- */

/* Reads when the home thread wants input and has taken all but RELAY_IN_MAX of it. */
static void apply_rx(hs_relay_t *r)
{
    bool stop = (atomic_load(&r->ctl_state) & CTL_PAUSE) || r->in_unacked > RELAY_IN_MAX;
    if (!r->wsi || stop == r->rx_stopped)
        return;
    r->rx_stopped = stop;
    lws_rx_flow_control(r->wsi, stop ? 0 : 1);
}

void hs_relay_established(struct lws *wsi, hs_relay_t *r)
{
    r->wsi = wsi;
    r->open_sent = true;
    post(r->home, r, &r->open);
}

int hs_relay_receive(struct lws *wsi, hs_relay_t *r, const void *in, size_t len)
{
    int st = atomic_load(&r->ctl_state);
    if (st & CTL_KILL)
        return -1;
    if (!len || (st & CTL_CLOSE))
        return 0; /* closing: the Close record goes out first, what the client sends is moot */
    relay_msg_t *m = calloc(1, sizeof(*m));
    if (!m || hs_buf_put(&m->buf, in, len)) {
        free(m);
        return -1; /* out of memory: the socket closes and the client resumes again */
    }
    m->node.kind = HS_NODE_RELAY_DATA;
    m->op = OP_IN;
    m->r = r;
    r->in_unacked += len;
    post(r->home, r, &m->node);
    apply_rx(r);
    return 0;
}

int hs_relay_writable(struct lws *wsi, hs_relay_t *r)
{
    if (atomic_load(&r->ctl_state) & CTL_KILL)
        return -1;
    relay_msg_t *m = r->out;
    if (m) {
        /* one WebSocket message in fragments of HS_WRITE_BUDGET (see transports.c) */
        size_t len = m->buf.len - LWS_PRE, left = len - m->off;
        size_t k = left > HS_WRITE_BUDGET ? HS_WRITE_BUDGET : left;
        int wp = m->off ? LWS_WRITE_CONTINUATION : (int)m->wp;
        if (k < left)
            wp |= LWS_WRITE_NO_FIN;
        if (hs_io_write(r->near, wsi, m->buf.p + LWS_PRE + m->off, k, (enum lws_write_protocol)wp) <
            (int)k)
            return -1;
        m->off += k;
        if (m->off < len) {
            lws_callback_on_writable(wsi);
            return 0;
        }
        r->out = NULL;
        answer(m, OP_SENT, r->home);
        if (atomic_load(&r->ctl_state) & CTL_CLOSE)
            lws_callback_on_writable(wsi); /* let lws flush it, then close */
        return 0;
    }
    if (atomic_load(&r->ctl_state) & CTL_CLOSE) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    return 0;
}

void hs_relay_peer_close(hs_relay_t *r)
{
    r->peer_closed = true;
}

void hs_relay_closed(struct lws *wsi, hs_relay_t *r)
{
    (void)wsi;
    r->wsi = NULL;
    if (r->out) {
        relay_msg_t *m = r->out;
        r->out = NULL;
        answer(m, OP_SENT, r->home); /* gives its charge back there */
    }
    if (r->open_sent)
        post(r->home, r, &r->gone);
    relay_unref(r); /* the socket's */
}

static void near_ctl(hs_relay_t *r)
{
    /* cleared first: a state set after this is posted again */
    atomic_store(&r->ctl_queued, false);
    int st = atomic_load(&r->ctl_state);
    if (!r->wsi)
        return;
    if (st & CTL_KILL)
        lws_set_timeout(r->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    else if (st & CTL_CLOSE)
        lws_callback_on_writable(r->wsi);
    else
        apply_rx(r);
}

static void near_data(relay_msg_t *m)
{
    hs_relay_t *r = m->r;
    if (m->op == OP_TAKEN) {
        r->in_unacked -= m->off;
        apply_rx(r);
        msg_free(m);
        return;
    }
    /* OP_OUT */
    if (!r->wsi) {
        answer(m, OP_SENT, r->home);
        return;
    }
    r->out = m;
    lws_callback_on_writable(r->wsi);
}

/* ---- the home thread: the connection ---- */

static void set_ctl(hs_relay_t *r, int bits, bool on)
{
    if (on)
        atomic_fetch_or(&r->ctl_state, bits);
    else
        atomic_fetch_and(&r->ctl_state, ~bits);
    if (!atomic_exchange(&r->ctl_queued, true))
        post(r->near, r, &r->ctl);
}

void hs_relay_release(hs_hub_t *h, bool kill)
{
    hs_relay_t *r = h->relay;
    if (!r)
        return;
    h->relay = NULL;
    set_ctl(r, kill ? CTL_KILL : CTL_CLOSE, true);
    relay_unref(r); /* the connection's */
}

void hs_relay_drop_socket(hs_hub_t *h, struct lws *keep)
{
    hs_relay_release(h, true);
    if (h->wsi && h->wsi != keep) {
        /* the client replaced a socket the server still thought alive: drop the old one
         * without ending the connection */
        hs_wsi_data_t *old = lws_get_opaque_user_data(h->wsi);
        if (old && old->ws_ctx == h) {
            old->ws_ctx = NULL;
            hs_hub_unref(h);
        }
        lws_set_timeout(h->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        h->wsi = NULL;
    }
}

void hs_relay_pause(hs_hub_t *h, bool stop)
{
    if (h->relay)
        set_ctl(h->relay, CTL_PAUSE, stop);
}

void hs_relay_want_write(hs_hub_t *h)
{
    hs_relay_t *r = h->relay;
    if (!r || r->out_busy)
        return;
    if (!hs_hub_has_output(h)) {
        if (h->closing)
            set_ctl(r, CTL_CLOSE, true); /* the Close record is out: close after it */
        return;
    }
    relay_msg_t *m = calloc(1, sizeof(*m));
    if (!m || hs_buf_reserve(&m->buf, LWS_PRE + 256)) {
        free(m);
        /* out of memory: the socket is dropped, and its GONE detaches the connection as any
         * dropped socket does (the client resumes, or the connection expires); nothing of the
         * connection changes under the caller here */
        set_ctl(r, CTL_KILL, true);
        return;
    }
    m->buf.len = LWS_PRE;
    m->node.kind = HS_NODE_RELAY_DATA;
    m->op = OP_OUT;
    m->r = relay_ref(r);
    if (!hs_hub_pack(h, &m->buf, HS_WRITE_BUDGET)) {
        msg_free(m); /* what waits could not be packed yet (a full replay buffer) */
        return;
    }
    m->charge = h->out_charge; /* the message carries it until written */
    h->out_charge = 0;
    m->wp = h->fmt == HS_HUB_MSGPACK ? LWS_WRITE_BINARY : LWS_WRITE_TEXT;
    r->out_busy = true;
    hs_io_post(r->near, &m->node); /* with the reference taken above */
}

static void home_open(hs_relay_t *r)
{
    hs_hub_t *h = r->hub;
    if (h->ended) {
        set_ctl(r, CTL_CLOSE, true);
        return;
    }
    hs_relay_drop_socket(h, NULL);
    h->relay = relay_ref(r);
    h->peer_closed = false;
    hs_log(&h->srv->log, HS_LOG_DEBUG, "hub connection relayed from another IO thread",
           "connectionId", h->conn_id, NULL);
    hs_hub_resume(h);
}

static void home_gone(hs_relay_t *r)
{
    hs_hub_t *h = r->hub;
    if (h->relay != r)
        return; /* replaced or ended meanwhile */
    h->relay = NULL;
    relay_unref(r);
    if (h->ended)
        return;
    h->peer_closed = r->peer_closed;
    if (h->stateful && !h->peer_closed && !h->closing && atomic_load(&h->srv->state) == 1)
        hs_hub_detach(h);
    else
        hs_hub_end(h);
}

static void home_data(relay_msg_t *m)
{
    hs_relay_t *r = m->r;
    hs_hub_t *h = r->hub;
    if (m->op == OP_IN) {
        if (h->relay == r && !h->ended)
            hs_hub_input(h, m->buf.p, m->buf.len);
        m->off = m->buf.len;
        answer(m, OP_TAKEN, r->near);
        return;
    }
    /* OP_SENT: the connection holds the relay while it is current (the message's reference
     * may be the last one otherwise, so it goes last) */
    if (h->relay == r && !h->ended) {
        r->out_busy = false;
        hs_budget_give(h->budget, m->charge);
        m->charge = 0;
        h->last_send_ms = hs_now_ms();
        hs_hub_output_drained(h);
        if (h->relay == r && (hs_hub_has_output(h) || h->closing))
            hs_relay_want_write(h);
    }
    msg_free(m); /* gives back what it still carries */
}

bool hs_relay_on_message(hs_io_t *io, hs_mpsc_node_t *n)
{
    (void)io;
    hs_relay_t *r;
    switch (n->kind) {
    case HS_NODE_RELAY_OPEN:
        r = hs_container_of(n, hs_relay_t, open);
        home_open(r);
        break;
    case HS_NODE_RELAY_GONE:
        r = hs_container_of(n, hs_relay_t, gone);
        home_gone(r);
        break;
    case HS_NODE_RELAY_CTL:
        r = hs_container_of(n, hs_relay_t, ctl);
        near_ctl(r);
        break;
    case HS_NODE_RELAY_DATA: {
        relay_msg_t *m = msg_of(n);
        if (m->op == OP_IN || m->op == OP_SENT)
            home_data(m);
        else
            near_data(m);
        return true; /* the message keeps or dropped its reference itself */
    }
    default:
        return false;
    }
    relay_unref(r); /* the post's */
    return true;
}

bool hs_relay_discard(hs_mpsc_node_t *n)
{
    switch (n->kind) {
    case HS_NODE_RELAY_OPEN:
        relay_unref(hs_container_of(n, hs_relay_t, open));
        return true;
    case HS_NODE_RELAY_GONE:
        relay_unref(hs_container_of(n, hs_relay_t, gone));
        return true;
    case HS_NODE_RELAY_CTL:
        relay_unref(hs_container_of(n, hs_relay_t, ctl));
        return true;
    case HS_NODE_RELAY_DATA:
        msg_free(msg_of(n));
        return true;
    }
    return false;
}
