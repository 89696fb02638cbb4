/*
 * The hub methods of /eventstreamhub, the drop-in for AspNetCore.SignalR.EventStream (README,
 * "/eventstreamhub"): Publish(streamName, EventModel[]), Subscribe({StreamName, SubscriberId,
 * SubscriberKey, From?}) and Unsubscribe(streamName, subscriberId, subscriberKey), as a dialect
 * over the same transports, writer and fan-out as /hub.
 *
 * A publish is an ordinary append (proto/escodec.c gives the seed's events their stored form);
 * subscribing and unsubscribing are writer operations (storage/es_stage.c), so a subscriber's row,
 * its key and its starting point are settled in the log's order. A subscription is a push
 * subscription of the connection whose events subs.c packs the seed's way. Its cursor (the
 * last event packed) is stored through the writer once a second and when it ends: a
 * subscriber that comes back with its id and key goes on after it, and one that gives
 * `From` (or `LastEventId`), a global event Id, goes on after that. Home thread.
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/codec.h"
#include "proto/escodec.h"
#include "proto/json.h"
#include "server/auth.h"
#include "server/signalr/es.h"
#include "server/signalr/hub.h"
#include "util/time.h"
#include "util/uuid.h"

enum { M_PUBLISH, M_SUBSCRIBE, M_UNSUBSCRIBE };

/* How often a connection's moved cursors go to the writer. */
#define CURSOR_SAVE_MS 1000

/* An invocation waiting for the writer. Holds a hub reference. */
typedef struct es_call {
    hs_hub_t *hub;
    int method;
    bool has_id;
    char id[HS_HUB_ID_MAX + 1];
    hs_es_op_t op; /* SUBSCRIBE / UNSUBSCRIBE */
} es_call_t;

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

/* A stream name as the seed takes it: a string, trimmed of white space. Its length in buf, -1
 * after a bind error, -2 after InvalidStreamName. */
static long name_arg(hs_hub_t *h, const hs_hubmsg_t *m, const hs_json_span_t *v, char *buf)
{
    char raw[HS_NAME_MAX * 2 + 2];
    if (v->type != HS_JSON_STRING) {
        fail(h, m, HS_HUB_BIND_ERROR, m->target);
        return -1;
    }
    long n = hs_json_unescape(v, raw, sizeof raw);
    size_t a = 0, b = n < 0 ? 0 : (size_t)n;
    while (a < b && isspace((unsigned char)raw[a]))
        a++;
    while (b > a && isspace((unsigned char)raw[b - 1]))
        b--;
    if (n < 0 || b - a > HS_NAME_MAX || hs_stream_name_check_publish(raw + a, b - a)) {
        fail(h, m, "InvalidStreamName");
        return -2;
    }
    memcpy(buf, raw + a, b - a);
    buf[b - a] = '\0';
    return (long)(b - a);
}

/* A GUID argument (a string in one of .NET's forms) in its lower-case "D" form. */
static bool guid_arg(const hs_json_span_t *v, char out[37])
{
    char raw[48];
    long n = v->type == HS_JSON_STRING ? hs_json_unescape(v, raw, sizeof raw - 1) : -1;
    return n >= 0 && hs_uuid_parse(raw, (size_t)n, out);
}

static es_call_t *new_call(hs_hub_t *h, const hs_hubmsg_t *m, int method)
{
    es_call_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->hub = hs_hub_ref(h);
    c->method = method;
    c->has_id = m->has_id;
    memcpy(c->id, m->id, sizeof(c->id));
    return c;
}

static void submit(hs_hub_t *h, const hs_hubmsg_t *m, es_call_t *c, hs_ingest_t *e)
{
    e->node.kind = HS_NODE_ES_INGEST;
    e->conn = c;
    if (e->kind != HS_INGEST_APPEND)
        e->es = &c->op;
    if (!hs_io_submit_entry(h->io, e)) {
        hs_hub_unref(c->hub);
        free(c);
        hs_ingest_free(e);
        fail(h, m, "TooManyRequests: the writer is behind; retry later");
        return;
    }
    h->pending++;
}

/* Submits the subscriber operation of c on `stream` (c is taken: freed on failure). */
static void submit_op(hs_hub_t *h, const hs_hubmsg_t *m, es_call_t *c, int kind, const char *stream,
                      size_t len)
{
    char *arena;
    hs_ingest_t *e = hs_ingest_alloc(0, len + 1, &arena);
    if (!e) {
        fail(h, m, "Unavailable: out of memory");
        hs_hub_unref(c->hub);
        free(c);
        return;
    }
    memcpy(arena, stream, len);
    arena[len] = '\0';
    e->stream = arena;
    e->stream_len = (uint32_t)len;
    e->kind = kind;
    submit(h, m, c, e);
}

/* ---- the methods ---- */

/* Publish(streamName, EventModel[]) */
static void m_publish(hs_hub_t *h, const hs_hubmsg_t *m, const hs_json_span_t *a, int na,
                      bool streaming)
{
    (void)na;
    (void)streaming;
    hs_server_t *srv = h->srv;
    char stream[HS_NAME_MAX + 1];
    long sl = name_arg(h, m, &a[0], stream);
    if (sl < 0)
        return;
    if (a[1].type != HS_JSON_ARRAY && a[1].type != HS_JSON_OBJECT) {
        fail(h, m, HS_HUB_BIND_ERROR, m->target);
        return;
    }
    if (!hs_auth_allows(srv, h->who, HS_ACTION_PUBLISH, stream, (size_t)sl)) {
        fail(h, m, "Unauthorized");
        return;
    }
    if (!hs_rate_take(&h->publishes, srv->cfg.max_publishes_per_s, hs_now_ms())) {
        fail(h, m, "TooManyRequests: more than %d publishes per second on this connection",
             srv->cfg.max_publishes_per_s);
        return;
    }
    hs_ingest_t *e;
    char why[256];
    int rc =
        hs_es_parse_events(&a[1], stream, (size_t)sl, srv->cfg.max_event, &e, why, sizeof(why));
    if (rc == HS_ENOMEM) {
        fail(h, m, "Unavailable: out of memory");
        return;
    }
    if (rc) {
        fail(h, m, "InvalidEvent: %s", why);
        return;
    }
    if (hs_server_events_hook(srv, e, why, sizeof(why))) {
        hs_ingest_free(e);
        fail(h, m, "InvalidEvent: %s", why);
        return;
    }
    es_call_t *c = new_call(h, m, M_PUBLISH);
    if (!c) {
        hs_ingest_free(e);
        fail(h, m, "Unavailable: out of memory");
        return;
    }
    submit(h, m, c, e);
}

/* Subscribe({StreamName, SubscriberId, SubscriberKey, From?}) */
static void m_subscribe(hs_hub_t *h, const hs_hubmsg_t *m, const hs_json_span_t *a, int na,
                        bool streaming)
{
    (void)na;
    (void)streaming;
    hs_json_span_t name, sid, key, from;
    if (a[0].type != HS_JSON_OBJECT || !hs_json_object_get(&a[0], "StreamName", true, &name)) {
        fail(h, m, HS_HUB_BIND_ERROR, m->target);
        return;
    }
    char stream[HS_NAME_MAX + 1];
    long sl = name_arg(h, m, &name, stream);
    if (sl < 0)
        return;
    es_call_t *c = new_call(h, m, M_SUBSCRIBE);
    if (!c) {
        fail(h, m, "Unavailable: out of memory");
        return;
    }
    hs_es_op_t *op = &c->op;
    if (!hs_json_object_get(&a[0], "SubscriberId", true, &sid) || !guid_arg(&sid, op->sub_id) ||
        !hs_json_object_get(&a[0], "SubscriberKey", true, &key) || !guid_arg(&key, op->sub_key)) {
        fail(h, m, "InvalidSubscriber: SubscriberId and SubscriberKey must be GUIDs");
        goto drop;
    }
    if ((hs_json_object_get(&a[0], "From", true, &from) ||
         hs_json_object_get(&a[0], "LastEventId", true, &from)) &&
        from.type != HS_JSON_NULL) {
        if (from.type != HS_JSON_NUMBER || !hs_json_int64(&from, &op->from_position) ||
            op->from_position < 0) {
            fail(h, m, "InvalidSubscriber: From must be an event Id (a non-negative integer)");
            goto drop;
        }
        op->has_from = true;
    }
    if (!hs_auth_allows(h->srv, h->who, HS_ACTION_SUBSCRIBE, stream, (size_t)sl)) {
        fail(h, m, "Unauthorized");
        goto drop;
    }
    snprintf(op->conn, sizeof op->conn, "%s", h->conn_id);
    submit_op(h, m, c, HS_INGEST_ES_SUBSCRIBE, stream, (size_t)sl);
    return;
drop:
    hs_hub_unref(c->hub);
    free(c);
}

/* Unsubscribe(streamName, subscriberId, subscriberKey) */
static void m_unsubscribe(hs_hub_t *h, const hs_hubmsg_t *m, const hs_json_span_t *a, int na,
                          bool streaming)
{
    (void)na;
    (void)streaming;
    char stream[HS_NAME_MAX + 1];
    long sl = name_arg(h, m, &a[0], stream);
    if (sl < 0)
        return;
    es_call_t *c = new_call(h, m, M_UNSUBSCRIBE);
    if (!c) {
        fail(h, m, "Unavailable: out of memory");
        return;
    }
    if (!guid_arg(&a[1], c->op.sub_id) || !guid_arg(&a[2], c->op.sub_key)) {
        fail(h, m, "InvalidSubscriber: subscriberId and subscriberKey must be GUIDs");
        goto drop;
    }
    submit_op(h, m, c, HS_INGEST_ES_UNSUBSCRIBE, stream, (size_t)sl);
    return;
drop:
    hs_hub_unref(c->hub);
    free(c);
}

static const hs_hub_method_t es_methods[] = {
    {"Publish", 2, 2, false, m_publish},
    {"Subscribe", 1, 1, false, m_subscribe},
    {"Unsubscribe", 3, 3, false, m_unsubscribe},
};

/* ---- subscriptions and their cursors ---- */

static hs_hubsub_t *find_es(hs_hub_t *h, const char *sub_id)
{
    for (hs_hubsub_t *s = h->subs; s; s = s->next)
        if (s->es && !s->done && strcmp(s->es->id, sub_id) == 0)
            return s;
    return NULL;
}

/* Sends the cursors of a connection's subscriptions that moved (all, or just `only`) to the
 * writer. Nothing waits for the answer: a cursor that could not be stored is stored with the
 * next move, or the subscriber gets those events again when it comes back. */
static void save_cursors(hs_hub_t *h, hs_hubsub_t *only)
{
    size_t n = 0;
    if (only) /* already unlinked from the list */
        n = only->es && only->es->pos > only->es->saved;
    else
        for (hs_hubsub_t *s = h->subs; s; s = s->next)
            n += s->es && s->es->pos > s->es->saved;
    if (!n)
        return;
    char *arena;
    size_t sz = sizeof(hs_es_op_t) + n * sizeof(hs_es_cursor_t);
    hs_ingest_t *e = hs_ingest_alloc(0, sz + 8, &arena);
    if (!e)
        return;
    hs_es_op_t *op = (hs_es_op_t *)(((uintptr_t)arena + 7) & ~(uintptr_t)7);
    memset(op, 0, sz);
    op->cursors = (hs_es_cursor_t *)(op + 1);
    hs_hubsub_t *s = only ? only : h->subs;
    for (; s && op->ncursors < n; s = only ? NULL : s->next) {
        if (!s->es || s->es->pos <= s->es->saved)
            continue;
        hs_es_cursor_t *cur = &op->cursors[op->ncursors++];
        memcpy(cur->id, s->es->id, sizeof cur->id);
        cur->position = s->es->pos;
        cur->version = s->es->ver;
        s->es->saved = s->es->pos;
    }
    e->kind = HS_INGEST_ES_CURSOR;
    e->stream = "";
    e->es = op;
    e->node.kind = HS_NODE_ES_CURSOR;
    if (!hs_io_submit_entry(h->io, e))
        hs_ingest_free(e);
}

static void es_tick(hs_hub_t *h, int64_t now)
{
    if (now - h->dialect_ms < CURSOR_SAVE_MS)
        return;
    h->dialect_ms = now;
    save_cursors(h, NULL);
}

/* A clean stop: the cursors as they are go to the writer, and nothing more is packed, so that
 * a subscriber that comes back after the restart goes on exactly after what it was sent. */
static void es_prestop(hs_hub_t *h)
{
    for (hs_hubsub_t *s = h->subs; s; s = s->next)
        if (s->es)
            s->es->frozen = true;
    save_cursors(h, NULL);
}

static void es_sub_freed(hs_hub_t *h, hs_hubsub_t *hs)
{
    if (hs->es && h->io)
        save_cursors(h, hs);
    if (hs->es && hs->es->carry) {
        hs_block_unref(hs->es->carry);
        hs->es->carry = NULL;
    }
}

/* ---- pausing (POST subscriptionprocessor) ---- */

/* A subscription held while delivery is paused: where it goes on. */
typedef struct held {
    struct held *next;
    char id[37];
    int64_t pos, ver;
    size_t len;
    char stream[];
} held_t;

static held_t **held_of(hs_hub_t *h)
{
    return (held_t **)&h->dialect_state;
}

static bool hold(hs_hub_t *h, const char *id, const char *stream, size_t len, int64_t pos,
                 int64_t ver)
{
    held_t *x = malloc(sizeof(*x) + len + 1);
    if (!x)
        return false;
    memcpy(x->id, id, sizeof x->id);
    memcpy(x->stream, stream, len);
    x->stream[len] = '\0';
    x->len = len;
    x->pos = pos;
    x->ver = ver;
    x->next = *held_of(h);
    *held_of(h) = x;
    return true;
}

static void drop_held(hs_hub_t *h, const char *id)
{
    for (held_t **pp = held_of(h); *pp;) {
        held_t *x = *pp;
        if (!id || strcmp(x->id, id) == 0) {
            *pp = x->next;
            free(x);
        } else {
            pp = &x->next;
        }
    }
}

/* Adds a live /eventstreamhub subscription going on after version ver: 0, HS_EBUSY, HS_ENOMEM. */
static int add_es(hs_hub_t *h, const char *id, const char *stream, size_t len, int64_t pos,
                  int64_t ver)
{
    int rc = hs_hub_add_sub(h, stream, len, true, NULL, true, ver, true);
    if (rc)
        return rc;
    hs_hubsub_t *hs = h->subs; /* hs_hub_add_sub puts it first */
    memcpy(hs->es->id, id, sizeof hs->es->id);
    hs->es->pos = hs->es->saved = pos;
    hs->es->ver = ver;
    return 0;
}

/* Pauses: each subscription leaves the fan-out (its cursor stored) and is held; resumes: each
 * held one subscribes again from its cursor, catching up on what it missed. */
static void pause_hub(hs_hub_t *h, bool paused)
{
    if (paused) {
        for (hs_hubsub_t *s = h->subs, *next; s; s = next) {
            next = s->next;
            if (!s->es || s->done)
                continue;
            if (!hold(h, s->es->id, s->sub->stream, s->sub->stream_len, s->es->pos, s->es->ver)) {
                hs_hub_fail_oom(h);
                return;
            }
            hs_hub_sub_free(h, s);
        }
        return;
    }
    held_t *x = *held_of(h);
    *held_of(h) = NULL;
    while (x) {
        held_t *next = x->next;
        if (!h->ended && add_es(h, x->id, x->stream, x->len, x->pos, x->ver) == HS_ENOMEM)
            hs_hub_fail_oom(h);
        free(x);
        x = next;
    }
}

static void es_ended(hs_hub_t *h)
{
    drop_held(h, NULL);
}

/* What travels to every IO thread: one node each, the replay's array shared. */
enum { CTL_PAUSE, CTL_RESUME, CTL_REPLAY };

typedef struct replay {
    atomic_uint refs;
    char sub_id[37];
    size_t stream_len, len;
    char *stream, *array; /* in mem */
    char mem[];
} replay_t;

typedef struct ctl {
    hs_mpsc_node_t node;
    int op;
    replay_t *replay;
} ctl_t;

static void replay_unref(replay_t *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1)
        free(r);
}

/* A replay's array to one connection, framed as a live one (subs.c's pack_es). */
static void send_replay(hs_hub_t *h, const replay_t *r)
{
    hs_buf_t a0 = {0};
    int rc;
    if (h->fmt == HS_HUB_JSON) {
        rc = hs_buf_reserve(&a0, hs_json_quoted_len(r->array, r->len));
        if (!rc)
            a0.len = hs_json_quote(r->array, r->len, (char *)a0.p);
    } else {
        uint8_t hd[5] = {0xdb, (uint8_t)(r->len >> 24), (uint8_t)(r->len >> 16),
                         (uint8_t)(r->len >> 8), (uint8_t)r->len};
        rc = hs_buf_put(&a0, hd, 5);
        if (!rc)
            rc = hs_buf_put(&a0, r->array, r->len);
    }
    if (rc) {
        hs_buf_free(&a0);
        hs_hub_fail_oom(h);
        return;
    }
    bool json = h->fmt == HS_HUB_JSON;
    const uint8_t *av[2] = {a0.p, (const uint8_t *)(json ? "{}" : "\x80")};
    size_t al[2] = {a0.len, json ? 2 : 1};
    hs_hub_send(h, r->stream, av, al, 2);
    hs_buf_free(&a0);
}

static void on_ctl(hs_io_t *io, ctl_t *c)
{
    for (hs_hub_t *h = hs_hub_io(io)->hubs; h; h = h->io_next) {
        if (h->ended || h->dialect != &hs_es_dialect)
            continue;
        if (c->op != CTL_REPLAY) {
            pause_hub(h, c->op == CTL_PAUSE);
            continue;
        }
        bool here = false;
        for (hs_hubsub_t *s = h->subs; s && !here; s = s->next)
            here = s->es && !s->done && strcmp(s->es->id, c->replay->sub_id) == 0;
        for (held_t *x = *held_of(h); x && !here; x = x->next)
            here = strcmp(x->id, c->replay->sub_id) == 0;
        if (here)
            send_replay(h, c->replay);
    }
    replay_unref(c->replay);
    free(c);
}

/* Posts one ctl node to every IO thread; false when memory ran out (some may have gone). */
static bool broadcast(hs_server_t *srv, int op, replay_t *r)
{
    bool ok = true;
    for (int i = 0; i < srv->nio; i++) {
        ctl_t *c = calloc(1, sizeof(*c));
        if (!c) {
            ok = false;
            continue;
        }
        c->node.kind = HS_NODE_ES_CTL;
        c->op = op;
        if (r) {
            atomic_fetch_add(&r->refs, 1);
            c->replay = r;
        }
        hs_io_post(srv->io[i], &c->node);
    }
    return ok;
}

void hs_es_set_paused(hs_server_t *srv, bool paused)
{
    if (atomic_exchange(&srv->es_paused, paused) == (int)paused)
        return;
    broadcast(srv, paused ? CTL_PAUSE : CTL_RESUME, NULL);
}

int hs_es_replay_post(hs_server_t *srv, const char *sub_id, const char *stream, size_t stream_len,
                      const char *array, size_t len)
{
    replay_t *r = malloc(sizeof(*r) + stream_len + 1 + len);
    if (!r)
        return HS_ENOMEM;
    atomic_init(&r->refs, 1);
    snprintf(r->sub_id, sizeof r->sub_id, "%s", sub_id);
    r->stream = r->mem;
    memcpy(r->stream, stream, stream_len);
    r->stream[stream_len] = '\0';
    r->stream_len = stream_len;
    r->array = r->mem + stream_len + 1;
    memcpy(r->array, array, len);
    r->len = len;
    bool ok = broadcast(srv, CTL_REPLAY, r);
    replay_unref(r);
    return ok ? 0 : HS_ENOMEM;
}

/* ---- answers from the writer ---- */

static void subscribed(hs_hub_t *h, es_call_t *c, hs_ingest_t *e)
{
    hs_hubsub_t *old = find_es(h, c->op.sub_id);
    if (old)
        hs_hub_sub_free(h, old);
    drop_held(h, c->op.sub_id);
    if (atomic_load(&h->srv->es_paused)) {
        if (!hold(h, c->op.sub_id, e->stream, e->stream_len, 0, c->op.from_version)) {
            if (c->has_id)
                hs_hub_complete_err(h, c->id, "Unavailable: out of memory");
            return;
        }
        if (c->has_id)
            hs_hub_complete(h, c->id, NULL, NULL, 0);
        return;
    }
    int rc = add_es(h, c->op.sub_id, e->stream, e->stream_len, 0, c->op.from_version);
    if (rc == HS_EBUSY) {
        if (c->has_id)
            hs_hub_complete_err(h, c->id, "TooManySubscriptions: at most %d per connection",
                                h->srv->cfg.max_subscriptions);
        return;
    }
    if (rc) {
        if (c->has_id)
            hs_hub_complete_err(h, c->id, "Unavailable: out of memory");
        return;
    }
    if (c->has_id)
        hs_hub_complete(h, c->id, NULL, NULL, 0);
}

static void on_ingest_done(hs_ingest_t *e)
{
    es_call_t *c = e->conn;
    hs_hub_t *h = c->hub;
    h->pending--;
    if (c->method == M_PUBLISH)
        hs_metrics_hub_publish(h->io, e->status);
    if (h->ended || h->closing)
        goto out;
    const char *id = c->has_id ? c->id : NULL;
    switch (e->status) {
    case 0:
        if (c->method == M_SUBSCRIBE) {
            subscribed(h, c, e);
            break;
        }
        if (c->method == M_UNSUBSCRIBE) {
            drop_held(h, c->op.sub_id);
            hs_hubsub_t *s = find_es(h, c->op.sub_id);
            if (s) {
                s->es->saved = s->es->pos; /* its row is gone */
                hs_hub_sub_free(h, s);
            }
        }
        if (id)
            hs_hub_complete(h, id, NULL, NULL, 0);
        break;
    case HS_EFORBIDDEN:
        if (id)
            hs_hub_complete_err(h, id,
                                "Forbidden: the SubscriberKey of subscriber %s does not match",
                                c->op.sub_id);
        break;
    case HS_ECONFLICT:
        if (id)
            hs_hub_complete_err(h, id,
                                "Conflict: subscriber %s is subscribed to another stream;"
                                " unsubscribe it there first, or use another SubscriberId",
                                c->op.sub_id);
        break;
    case HS_ENOENT:
        if (id)
            hs_hub_complete_err(h, id,
                                "NotFound: Subscriber not found. Please subscribe first, to then"
                                " unsubscribe.");
        break;
    case HS_ECLOSED:
        if (id)
            hs_hub_complete_err(h, id, "StreamClosed: %.*s", (int)e->stream_len, e->stream);
        break;
    case HS_ETOOLARGE: /* a Subscribe past --es-max-subscribers (es_stage.c) */
        if (id)
            hs_hub_complete_err(h, id,
                                "TooManySubscribers: the server keeps at most %d subscribers"
                                " (--es-max-subscribers); unsubscribe those no longer used",
                                h->srv->cfg.es_max_subscribers);
        break;
    case HS_EUNKNOWN:
        if (id)
            hs_hub_complete_err(h, id, "Unavailable: %s; the events may have been appended",
                                hs_strerror(e->status));
        break;
    default:
        if (id)
            hs_hub_complete_err(h, id, "Unavailable: nothing was done: %s", hs_strerror(e->status));
        break;
    }
out:
    free(c);
    hs_ingest_free(e);
    hs_hub_resume_input(h);
    hs_hub_unref(h);
}

static bool on_message(hs_io_t *io, hs_mpsc_node_t *n)
{
    switch (n->kind) {
    case HS_NODE_ES_INGEST:
        on_ingest_done(hs_container_of(n, hs_ingest_t, node));
        return true;
    case HS_NODE_ES_CURSOR:
        hs_ingest_free(hs_container_of(n, hs_ingest_t, node));
        return true;
    case HS_NODE_ES_CTL:
        on_ctl(io, (ctl_t *)n);
        return true;
    }
    return false;
}

static bool discard(hs_mpsc_node_t *n)
{
    switch (n->kind) {
    case HS_NODE_ES_INGEST: {
        hs_ingest_t *e = hs_container_of(n, hs_ingest_t, node);
        es_call_t *c = e->conn;
        hs_hub_unref(c->hub);
        free(c);
        hs_ingest_free(e);
        return true;
    }
    case HS_NODE_ES_CURSOR:
        hs_ingest_free(hs_container_of(n, hs_ingest_t, node));
        return true;
    case HS_NODE_ES_CTL: {
        ctl_t *c = (ctl_t *)n;
        replay_unref(c->replay);
        free(c);
        return true;
    }
    }
    return false;
}

const hs_hub_dialect_t hs_es_dialect = {
    .name = "eventstreamhub",
    .methods = es_methods,
    .nmethods = sizeof(es_methods) / sizeof(es_methods[0]),
    .on_message = on_message,
    .discard = discard,
    .tick = es_tick,
    .sub_freed = es_sub_freed,
    .prestop = es_prestop,
    .ended = es_ended,
};
