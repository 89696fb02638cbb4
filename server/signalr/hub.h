/*
 * The SignalR hub `/hub`: connections, their transports and the hub methods of API.md.
 *
 * A hub connection is created by negotiate (or by a WebSocket that skips it) and lives in the
 * registry under its connection token until a transport claims it. The IO thread that receives
 * the transport's first request (the WebSocket upgrade, the SSE GET, the first long poll)
 * becomes its home: from then on only that thread touches the connection. Requests for it that
 * reach another IO thread (the POSTs of SSE and long polling, later polls, DELETE) travel to the
 * home thread as messages on its inbox and their answers travel back the same way.
 *
 * The files, each calling only those before it (what a lower file needs from a higher one it
 * gets through a table of functions that the higher one hands down: hs_hub_tops_t, the
 * dialect's hooks):
 *   registry.c    connections' lifetime (references) and the registry of negotiated tokens
 *   hub.c         the connection itself: handshake, records in, dispatch to the dialect,
 *                 records out, keep-alive, stateful reconnect, the subscription list
 *   subs.c        subscribing, fan-out signals, packing the outboxes into records
 *   methods.c     the hub methods of /hub (a dialect)
 *   relay.c       a connection's WebSocket on another IO thread than its home (a resume the
 *                 acceptor could not route), and the replacement of a resumed socket
 *   transports.c  the transports' HTTP / WebSocket glue with libwebsockets, negotiate, the
 *                 HS_T_SIGNALR transport and the registration of each dialect's endpoints
 * Private to the server.
 */
#ifndef HS_HUB_H
#define HS_HUB_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/hubproto.h"
#include "proto/json.h"
#include "server/net/net.h"

typedef struct hs_hub hs_hub_t;
typedef struct hs_hubsub hs_hubsub_t;
typedef struct hs_hubsub_es hs_hubsub_es_t;
typedef struct hs_hubreq hs_hubreq_t;
typedef struct hs_relay hs_relay_t;

/*
 * A hub dialect: the methods a hub's clients may invoke, matched by name case-insensitively
 * (as ASP.NET does). The connection checks the argument count (a wrong one is a bind error)
 * and calls the method with the arguments as JSON spans; the method checks their types and
 * answers (or starts what answers) with a Completion when the invocation has an id. /hub's
 * dialect is methods.c's; another hub over the same transports is another dialect.
 */
#define HS_HUB_ARGS_MAX   4
#define HS_HUB_BIND_ERROR "Failed to invoke '%s' due to an error on the server."

typedef struct hs_hub_method {
    const char *name;
    int min_args, max_args;
    bool streaming; /* may be called by a StreamInvocation */
    void (*fn)(hs_hub_t *h, const hs_hubmsg_t *m, const hs_json_span_t *args, int nargs,
               bool streaming);
} hs_hub_method_t;

typedef struct hs_hub_dialect {
    const char *name;
    const hs_hub_method_t *methods;
    size_t nmethods;
    /* A message of the dialect's own kinds on an IO thread's inbox (an append or a read its
     * methods started): handles it and returns true, or false when it is not one of its own.
     * A dialect takes node kinds of its own from HS_T_SIGNALR's range (below). */
    bool (*on_message)(hs_io_t *io, hs_mpsc_node_t *n);
    /* The same at shutdown: frees it without answering. */
    bool (*discard)(hs_mpsc_node_t *n);
    /* Optional: each of the dialect's connections once a tick (250 ms), and a subscription of
     * one about to be freed (while it can still be read). */
    void (*tick)(hs_hub_t *h, int64_t now);
    void (*sub_freed)(hs_hub_t *h, hs_hubsub_t *hs);
    /* Optional: a clean stop is coming (hs_transport_t.prestop), for each of its connections;
     * and a connection ended (its subscriptions are freed already). */
    void (*prestop)(hs_hub_t *h);
    void (*ended)(hs_hub_t *h);
} hs_hub_dialect_t;

/*
 * What a connection asks of its transport; transports.c hands its table to hs_hub_create.
 * Home thread.
 */
typedef struct hs_hub_tops {
    /* Records wait: write them when the socket can (WebSocket, SSE), or answer a parked poll. */
    void (*want_write)(hs_hub_t *h);
    /* The connection took every byte the client sent: answer the POSTs that carried them. */
    void (*input_taken)(hs_hub_t *h);
    /* The connection ended: answer what is parked (404 / 204) and close the socket. */
    void (*ended)(hs_hub_t *h);
    /* Stop (true) or resume reading the client's input (a WebSocket's receive flow). */
    void (*pause_input)(hs_hub_t *h, bool stop);
    /* The client does not read its Close: drop the socket now. */
    void (*cut_off)(hs_hub_t *h);
} hs_hub_tops_t;

/* methods.c: the methods of /hub */
extern const hs_hub_dialect_t hs_hub_dialect;
/* es.c: the methods of /eventstreamhub */
extern const hs_hub_dialect_t hs_es_dialect;

#define HS_HUB_CLOSE_WAIT_MS 5000

enum { HS_HUB_T_NONE = 0, HS_HUB_T_WS, HS_HUB_T_SSE, HS_HUB_T_LP };

/* The SignalR transport's messages on an IO thread's inbox. */
enum {
    HS_NODE_HUB_INGEST = HS_NODE_T(HS_T_SIGNALR, 0), /* /hub: an invocation's publish / close,
                                                        acked */
    HS_NODE_HUB_READ = HS_NODE_T(HS_T_SIGNALR, 1),   /* /hub: an invocation's read, done */
    HS_NODE_HUB_REQ = HS_NODE_T(HS_T_SIGNALR, 2),    /* an SSE / long-polling request for a
                                                        connection homed here */
    HS_NODE_HUB_REP = HS_NODE_T(HS_T_SIGNALR, 3),    /* its answer, back to the origin thread */
    HS_NODE_ES_INGEST = HS_NODE_T(HS_T_SIGNALR, 4),  /* /eventstreamhub: a publish or a
                                                        subscriber operation, done */
    HS_NODE_ES_CURSOR = HS_NODE_T(HS_T_SIGNALR, 5),  /* /eventstreamhub: cursors stored */
    HS_NODE_ES_CTL = HS_NODE_T(HS_T_SIGNALR, 6),     /* /eventstreamhub: pause, resume or a
                                                        replay, to every IO thread */
    HS_NODE_RELAY_OPEN = HS_NODE_T(HS_T_SIGNALR, 7), /* relay.c: a WebSocket on another thread */
    HS_NODE_RELAY_GONE = HS_NODE_T(HS_T_SIGNALR, 8),
    HS_NODE_RELAY_CTL = HS_NODE_T(HS_T_SIGNALR, 9),
    HS_NODE_RELAY_DATA = HS_NODE_T(HS_T_SIGNALR, 10),
};

/* The hub connections homed on one IO thread (the transport's state there). */
typedef struct hs_hub_io {
    hs_hub_t *hubs;
    size_t nhubs;
    int64_t last_sweep_ms; /* IO thread 0 expires unclaimed tokens once a second */
} hs_hub_io_t;

static inline hs_hub_io_t *hs_hub_io(hs_io_t *io)
{
    return hs_io_tstate(io, HS_T_SIGNALR);
}

/* A request of an SSE or long-polling connection handed to its home thread. */
enum { HS_HUBREQ_POST = 1, HS_HUBREQ_POLL, HS_HUBREQ_DELETE };

struct hs_hubreq {
    hs_mpsc_node_t node; /* HS_NODE_HUB_REQ to the home thread, HS_NODE_HUB_REP back */
    int op;
    hs_hub_t *hub;   /* a reference */
    hs_io_t *origin; /* the IO thread that holds the HTTP request */
    hs_conn_t *conn; /* origin thread only; NULL once the request's connection closed */
    uint8_t *body;   /* POST: the records (taken) */
    size_t len;
    /* the answer, filled on the home thread */
    int status;
    const char *ctype;
    hs_buf_t resp;
    int64_t parked_ms;           /* POLL: when it started waiting */
    size_t charge;               /* read budget the answer's Read results were charged (r->hub's) */
    struct hs_hubreq *post_next; /* POST: the next parked one (see hs_hub_release_posts) */
};

/* A subscription of a hub connection: streaming (StreamInvocation, items for `id`) or push
 * (target `event`, one per stream). Home thread only. */
struct hs_hubsub {
    hs_sub_t *sub;
    hs_hub_t *hub;
    hs_hubsub_t *prev, *next;
    /* /eventstreamhub: events go out as one Invocation per publish, target the stream name,
     * arguments [a string holding a JSON array of PascalCase events, {}]; the subscriber's
     * cursor is the last event packed, stored by the writer from time to time (es.c). Only such
     * a subscription has this state (in the same allocation); NULL for /hub's. */
    hs_hubsub_es_t *es;
    bool push;
    bool done; /* ended: its end record is queued */
    char id[]; /* streaming: its invocation id (at most HS_HUB_ID_MAX bytes); push: "" */
};

struct hs_hubsub_es {
    char id[37];       /* the subscriber id */
    bool frozen;       /* the server is stopping: nothing more is packed */
    int64_t pos, ver;  /* the last event packed */
    int64_t saved;     /* the position last sent to be stored */
    hs_block_t *carry; /* popped, but the first of the next array (es_group) */
};

/* A connection's stateful reconnect (home thread): 112 bytes that most connections never use,
 * so they are not part of hs_hub_t. */
typedef struct hs_hub_stateful {
    int64_t out_seq;      /* trackable records sent (numbered 1, 2, ...) */
    hs_buf_t replay;      /* unacknowledged trackable records, oldest first */
    uint32_t *replay_len; /* their lengths; the first has number replay_first */
    size_t nreplay, replay_cap, replay_head;
    int64_t replay_first;
    int64_t in_count, in_handled; /* trackable records received / handled */
    int64_t acked;                /* the last Ack sent */
    int64_t replay_full_ms;       /* since when the replay buffer is full with no Ack (0: not) */
    int64_t ack_ms;
} hs_hub_stateful_t;

struct hs_hub {
    atomic_uint refs;
    hs_server_t *srv;
    const hs_hub_dialect_t *dialect;
    const hs_hub_tops_t *tops;
    hs_principal_t *who; /* who connected (fixed at negotiate / connect); NULL: auth off */
    hs_rate_t publishes; /* --max-publishes-per-s (home thread) */

    /* guarded by the registry mutex */
    char token[24], conn_id[24];
    hs_hub_t *reg_next;          /* hash chain */
    hs_hub_t *un_prev, *un_next; /* unclaimed list, oldest first */
    int64_t created_ms;
    int home;        /* IO thread index, -1 until claimed */
    int transport;   /* HS_HUB_T_* */
    bool registered; /* in the registry (negotiated connections only) */
    bool unclaimed;
    bool attached;    /* a WebSocket / SSE response is attached */
    bool resumable;   /* stateful, its socket dropped: the same token may reconnect */
    bool stateful_ok; /* negotiate granted stateful reconnect */
    bool resume_ok;   /* ... and the handshake turned it on: a WebSocket may take over */

    /* home thread */
    hs_io_t *io;
    hs_hub_t *io_prev, *io_next; /* the home thread's connections */
    struct lws *wsi;             /* the WebSocket or SSE request; NULL when none */
    hs_relay_t *relay;           /* or the WebSocket on another IO thread (relay.c) */
    hs_conn_t *sse_conn;
    hs_hubreq_t *poll;   /* parked long poll */
    int64_t poll_end_ms; /* long polling: when the last poll was answered */
    hs_hubfmt_t fmt;
    bool handshaken, ended, closing, close_sent, peer_closed;
    bool m_counted;           /* in the home thread's connection gauge [m_kind][m_proto] */
    int8_t m_kind, m_proto;   /* HS_MC_*, HS_MP_* */
    bool stateful;            /* granted and handshake version >= 2 */
    bool rx_paused;           /* WebSocket reads stopped (see "Input flow" in hub.c) */
    bool awaiting_sequence;   /* resumed: ignore records until the client's Sequence */
    bool client_pinged;       /* its first Ping arms the client timeout */
    hs_buf_t in;              /* input not yet cut into records */
    hs_buf_t held;            /* invocation records waiting their turn ([u32 len][record]) */
    size_t held_off;          /* where the oldest held record starts */
    hs_hubreq_t *posts;       /* SSE / long-polling POSTs answered once their input is taken */
    hs_buf_t ctl;             /* whole records queued to go out before subscription data */
    size_t ctl_charge;        /* read budget charged by Read answers in ctl */
    hs_buf_t out;             /* a packed batch being written (LWS_PRE headroom first) */
    size_t out_off;           /* how far it is written */
    size_t out_charge;        /* read budget charged by Read answers in out */
    struct hs_budget *budget; /* this connection's read budget (child of the server's) */
    hs_buf_t scratch;
    int64_t start_ms, last_send_ms, last_recv_ms, dropped_ms;
    int64_t closing_ms;     /* when closing started: a client that does not read its
                               Close within HS_HUB_CLOSE_WAIT_MS is cut off */
    hs_hubsub_t *subs, *rr; /* subscriptions; rr: where the next pack starts */
    int nsubs;
    int pending;           /* invocations in flight */
    int64_t dialect_ms;    /* the dialect's own timer (es.c: when cursors were last stored) */
    void *dialect_state;   /* the dialect's own (es.c: subscriptions held while paused) */
    hs_hub_stateful_t *st; /* stateful reconnect: allocated by the handshake that turns it on
                              (stateful), NULL until then */
};

/* ---- registry.c ---- */

/* Creates a connection with one reference (the caller's). Any thread. NULL on ENOMEM. */
hs_hub_t *hs_hub_create(hs_server_t *srv, const hs_hub_dialect_t *dialect,
                        const hs_hub_tops_t *tops);
hs_hub_t *hs_hub_ref(hs_hub_t *h);
void hs_hub_unref(hs_hub_t *h); /* any thread; the last one frees the connection */

int hs_hubreg_create(hs_server_t *srv);
void hs_hubreg_destroy(hs_server_t *srv);
/* Registers a negotiated connection (conn_id, token and stateful_ok set), taking the caller's
 * reference: 0, or HS_EBUSY when --hub-max-unclaimed tokens wait for their transport. */
int hs_hubreg_add(hs_hub_t *h);
/* What hs_hubreg_claim found (else an HTTP status). */
enum { CLAIM_NEW, CLAIM_RESUME, CLAIM_RELAY, CLAIM_FORWARD };
/* Looks up a token of `dialect` for a request on IO thread `io` and applies the transport rules
 * (op: HS_HUBREQ_*, transport: HS_HUB_T_*). Returns a CLAIM_* with *out referenced, or an HTTP
 * status (404, 405, 409, 400) with *msg. */
int hs_hubreg_claim(hs_server_t *srv, const hs_hub_dialect_t *dialect, const char *token, int op,
                    int transport, int io, hs_hub_t **out, const char **msg);
/* A new random connection id or token (22 base64url characters and a NUL). */
void hs_hubreg_new_id(char out[23]);
/* Removes a connection from the registry, dropping its reference (any thread). */
void hs_hubreg_remove(hs_hub_t *h);
/* An ended long-polling connection stays known until it expires, answering polls with 204. */
void hs_hubreg_linger(hs_hub_t *h);
/* The handshake turned stateful reconnect on (home thread). */
void hs_hubreg_set_resumable(hs_hub_t *h);
/* Updates the registry flags of a connection (home thread). False when it asked to be
 * resumable and cannot be (no token: skipNegotiation). */
bool hs_hubreg_set_attached(hs_hub_t *h, bool attached, bool resumable);
/* The home IO thread of the connection a request names (`GET /hub?id=...` as its first
 * bytes), or -1. Acceptor thread. */
int hs_hubreg_route(hs_server_t *srv, const char *req, size_t n);
/* For /metrics: connection tokens known, those still waiting for their transport, stateful
 * WebSocket resumes claimed, and those relayed from another IO thread. */
typedef struct hs_hubreg_counts {
    size_t registered, unclaimed;
    uint64_t resumes, relayed;
} hs_hubreg_counts_t;
void hs_hubreg_counts(hs_server_t *srv, hs_hubreg_counts_t *out);
/* Expires unclaimed tokens (any one IO thread calls it from its tick). */
void hs_hubreg_sweep(hs_server_t *srv, int64_t now);

/* ---- hub.c (home thread unless said otherwise) ---- */

/* The connection starts on its home thread with its transport attached or (LP) ready. */
void hs_hub_start(hs_hub_t *h, hs_io_t *io);
/* Bytes from the client (a WebSocket frame, a POST body); cuts, parses and dispatches them. */
void hs_hub_input(hs_hub_t *h, const uint8_t *p, size_t n);
/* The transport handed what was packed to the kernel (or a poll answer): input held back while
 * answers waited goes on. */
void hs_hub_output_drained(hs_hub_t *h);
/* Whether every byte the client sent was taken (nothing unparsed, no invocation held). */
bool hs_hub_input_idle(const hs_hub_t *h);
/* Asks the transport for a chance to write (tops->want_write). */
void hs_hub_want_write(hs_hub_t *h);
/* Queues a Close record and ends the connection once it is out. */
void hs_hub_close(hs_hub_t *h, const char *error, bool allow_reconnect);
/* Ends the connection now: subscriptions dropped, registry entry removed, transport closed. */
void hs_hub_end(hs_hub_t *h);
/* A stateful connection's socket dropped without a close: keep it for a resume. */
void hs_hub_detach(hs_hub_t *h);
/* A WebSocket resumed a stateful connection: Sequence + replay go out first. */
void hs_hub_resume(hs_hub_t *h);
/* Timers of every connection of this IO thread (pings, timeouts, Acks, expiry); long polls'
 * are the transport's. */
void hs_hub_tick(hs_io_t *io, int64_t now);
/* For the methods: a Completion with a result (json) or an error; input held while an
 * invocation ran goes on. */
void hs_hub_complete(hs_hub_t *h, const char *id, const char *error, const char *json, size_t len);
void hs_hub_complete_err(hs_hub_t *h, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A server push: an Invocation without an id, arguments already in the connection's format,
 * queued among the whole records. */
void hs_hub_send(hs_hub_t *h, const char *target, const uint8_t *const *args, const size_t *lens,
                 size_t nargs);
void hs_hub_resume_input(hs_hub_t *h);
/* The connection's subscriptions: a push one by stream, a streaming one by invocation id. */
hs_hubsub_t *hs_hub_find_push(hs_hub_t *h, const char *stream, size_t len);
hs_hubsub_t *hs_hub_find_stream(hs_hub_t *h, const char *id);
void hs_hub_sub_free(hs_hub_t *h, hs_hubsub_t *hs);
/* For subs.c: numbers a trackable record just packed and keeps a copy until acked (stateful
 * reconnect; 0 or HS_ENOMEM), and closes a connection that could not get memory. */
int hs_hub_track(hs_hub_t *h, const uint8_t *p, size_t n);
void hs_hub_fail_oom(hs_hub_t *h);

/* ---- subs.c (home thread) ---- */

/* Builds a block's MessagePack EventRecord ahead of sending (fan-out's prepare_mp: a reader
 * thread, for catch-up pages that MessagePack subscribers wait for). Any thread. */
void hs_hub_prepare_mp(hs_block_t *b);
/* Adds a subscription (push, or streaming under id; es: an /eventstreamhub one, its es_* fields
 * zeroed, the caller sets them): 0, HS_EBUSY (too many), HS_ENOMEM. */
int hs_hub_add_sub(hs_hub_t *h, const char *stream, size_t len, bool push, const char *id,
                   bool has_from, int64_t from, bool es);
/* A subscription's fan-out signal (the transport's on_sub_signal). */
void hs_hub_on_signal(hs_io_t *io, hs_sub_t *s);
/* Packs whole records for the transport into out (appended), up to about budget bytes.
 * Returns the bytes added. */
size_t hs_hub_pack(hs_hub_t *h, hs_buf_t *out, size_t budget);
/* Whether anything waits to be packed. */
bool hs_hub_has_output(hs_hub_t *h);

/* Whether a socket is attached: a WebSocket or SSE response here, or a relayed WebSocket. */
static inline bool hs_hub_attached(const hs_hub_t *h)
{
    return h->wsi || h->relay;
}

/* ---- relay.c: a connection's WebSocket on another IO thread (see there) ---- */

/* A WebSocket's context (hs_wsi_data_t.ws_ctx) is a connection, or a relay tagged in its low
 * bit. */
static inline void *hs_relay_ctx(hs_relay_t *r)
{
    return (void *)((uintptr_t)r | 1u);
}
static inline hs_relay_t *hs_relay_of(void *ctx)
{
    return ((uintptr_t)ctx & 1u) ? (hs_relay_t *)((uintptr_t)ctx & ~(uintptr_t)1u) : NULL;
}
/* A relay for a resume of h (its reference taken) that reached IO thread `near` instead of
 * `home`. One reference: the socket's. NULL on ENOMEM. */
hs_relay_t *hs_relay_create(hs_hub_t *h, hs_io_t *near, hs_io_t *home);
/* The socket's side (near thread): the WebSocket callbacks of a relayed connection. */
void hs_relay_established(struct lws *wsi, hs_relay_t *r);
int hs_relay_receive(struct lws *wsi, hs_relay_t *r, const void *in, size_t len);
int hs_relay_writable(struct lws *wsi, hs_relay_t *r);
void hs_relay_peer_close(hs_relay_t *r);
void hs_relay_closed(struct lws *wsi, hs_relay_t *r);
/* The connection's side (home thread): records wait; stop or resume reading; let go of the
 * relay (its socket closes after what it holds, or at once with kill). */
void hs_relay_want_write(hs_hub_t *h);
void hs_relay_pause(hs_hub_t *h, bool stop);
void hs_relay_release(hs_hub_t *h, bool kill);
/* A resume took over: drops the connection's socket (a relay, or h->wsi unless it is keep)
 * without ending the connection. */
void hs_relay_drop_socket(hs_hub_t *h, struct lws *keep);
/* The relay's messages on an IO thread's inbox (either side), and at shutdown. */
bool hs_relay_on_message(hs_io_t *io, hs_mpsc_node_t *n);
bool hs_relay_discard(hs_mpsc_node_t *n);

/* ---- transports.c ---- */

/* Registers the SignalR transport and, for each dialect, its routes ({hub}, {hub}/negotiate)
 * and its WebSocket endpoint. */
void hs_signalr_register(hs_server_t *srv);
/* The transport's table (for the fuzz target, which drives a connection without a socket). */
extern const hs_hub_tops_t hs_hub_transport_ops;

#endif
