/*
 * The SignalR connection registry and negotiate (see hub.h). The registry is a hash table of
 * negotiated connections by token, under one mutex, touched once per negotiate and once per
 * HTTP request of a connection (never per record): a connection's token picks nothing else,
 * the transport's first request decides the home IO thread. Unclaimed tokens are bounded
 * (--hub-max-unclaimed) and expire. Not here: the transports (transports.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "proto/codec.h"
#include "proto/json.h"
#include "proto/route.h"
#include "ringbuf/budget.h"
#include "server/signalr/hub.h"
#include "util/base64.h"
#include "util/time.h"
#include "util/uuid.h"

#define REG_BUCKETS 16384

struct hs_hubreg {
    pthread_mutex_t mu;
    hs_hub_t *bucket[REG_BUCKETS];
    hs_hub_t *un_head, *un_tail; /* unclaimed, oldest first */
    size_t count;
    size_t nunclaimed;         /* on the unclaimed list: bounded by cfg.hub_max_unclaimed */
    uint64_t resumes, relayed; /* stateful WebSocket resumes claimed; those relayed (/metrics) */
};

/* ---- lifetime ---- */

hs_hub_t *hs_hub_create(hs_server_t *srv, const hs_hub_dialect_t *dialect,
                        const hs_hub_tops_t *tops)
{
    hs_hub_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    atomic_init(&h->refs, 1);
    h->srv = srv;
    h->dialect = dialect;
    h->tops = tops;
    h->budget = hs_budget_create(srv->cfg.connection_read_budget, srv->read_budget);
    if (!h->budget) {
        free(h);
        return NULL;
    }
    h->home = -1;
    h->created_ms = h->start_ms = hs_now_ms();
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
    hs_buf_free(&h->in);
    hs_buf_free(&h->held);
    hs_buf_free(&h->ctl);
    hs_buf_free(&h->scratch);
    hs_buf_free(&h->out);
    if (h->st) {
        hs_buf_free(&h->st->replay);
        free(h->st->replay_len);
        free(h->st);
    }
    hs_budget_give(h->budget, h->ctl_charge + h->out_charge);
    hs_budget_unref(h->budget);
    hs_principal_free(h->who);
    free(h);
}

/* ---- registry ---- */

int hs_hubreg_create(hs_server_t *srv)
{
    srv->hubreg = calloc(1, sizeof(*srv->hubreg));
    if (!srv->hubreg)
        return HS_ENOMEM;
    pthread_mutex_init(&srv->hubreg->mu, NULL);
    return 0;
}

static uint32_t token_hash(const char *t)
{
    return hs_stream_hash(t, strlen(t)) % REG_BUCKETS;
}

static void un_remove(struct hs_hubreg *reg, hs_hub_t *h)
{
    if (!h->unclaimed)
        return;
    if (h->un_prev)
        h->un_prev->un_next = h->un_next;
    else
        reg->un_head = h->un_next;
    if (h->un_next)
        h->un_next->un_prev = h->un_prev;
    else
        reg->un_tail = h->un_prev;
    h->un_prev = h->un_next = NULL;
    h->unclaimed = false;
    reg->nunclaimed--;
}

/* Appends h to the expiry list, newest last (mutex held). */
static void un_append(struct hs_hubreg *reg, hs_hub_t *h)
{
    h->unclaimed = true;
    reg->nunclaimed++;
    h->un_next = NULL;
    h->un_prev = reg->un_tail;
    if (reg->un_tail)
        reg->un_tail->un_next = h;
    else
        reg->un_head = h;
    reg->un_tail = h;
}

/* Unlinks h (mutex held); returns whether it was registered (the registry's reference). */
static bool reg_unlink(struct hs_hubreg *reg, hs_hub_t *h)
{
    if (!h->registered)
        return false;
    hs_hub_t **pp = &reg->bucket[token_hash(h->token)];
    while (*pp && *pp != h)
        pp = &(*pp)->reg_next;
    if (*pp)
        *pp = h->reg_next;
    h->reg_next = NULL;
    un_remove(reg, h);
    h->registered = false;
    reg->count--;
    return true;
}

void hs_hubreg_remove(hs_hub_t *h)
{
    struct hs_hubreg *reg = h->srv->hubreg;
    pthread_mutex_lock(&reg->mu);
    bool was = reg_unlink(reg, h);
    pthread_mutex_unlock(&reg->mu);
    if (was)
        hs_hub_unref(h);
}

void hs_hubreg_linger(hs_hub_t *h)
{
    struct hs_hubreg *reg = h->srv->hubreg;
    pthread_mutex_lock(&reg->mu);
    if (h->registered && !h->unclaimed) {
        /* back on the expiry list (kept in creation-time order by appending with `now`) */
        h->created_ms = hs_now_ms();
        un_append(reg, h);
    }
    pthread_mutex_unlock(&reg->mu);
}

void hs_hubreg_set_resumable(hs_hub_t *h)
{
    struct hs_hubreg *reg = h->srv->hubreg;
    pthread_mutex_lock(&reg->mu);
    h->resume_ok = h->registered;
    pthread_mutex_unlock(&reg->mu);
}

bool hs_hubreg_set_attached(hs_hub_t *h, bool attached, bool resumable)
{
    struct hs_hubreg *reg = h->srv->hubreg;
    pthread_mutex_lock(&reg->mu);
    h->attached = attached;
    bool ok = resumable && h->registered;
    h->resumable = ok;
    pthread_mutex_unlock(&reg->mu);
    return ok || !resumable;
}

void hs_hubreg_destroy(hs_server_t *srv)
{
    struct hs_hubreg *reg = srv->hubreg;
    if (!reg)
        return;
    for (size_t i = 0; i < REG_BUCKETS; i++) {
        while (reg->bucket[i]) {
            hs_hub_t *h = reg->bucket[i];
            reg_unlink(reg, h);
            hs_hub_unref(h);
        }
    }
    pthread_mutex_destroy(&reg->mu);
    free(reg);
    srv->hubreg = NULL;
}

void hs_hubreg_sweep(hs_server_t *srv, int64_t now)
{
    struct hs_hubreg *reg = srv->hubreg;
    int ttl = srv->cfg.hub_disconnect_timeout_ms;
    /* every expired entry goes, in batches of 64 (the mutex is held for one batch at a time,
     * and the references are dropped outside it) */
    for (;;) {
        hs_hub_t *expired[64];
        size_t n = 0;
        pthread_mutex_lock(&reg->mu);
        while (reg->un_head && now - reg->un_head->created_ms >= ttl && n < 64) {
            hs_hub_t *h = reg->un_head;
            reg_unlink(reg, h);
            expired[n++] = h;
        }
        pthread_mutex_unlock(&reg->mu);
        for (size_t i = 0; i < n; i++)
            hs_hub_unref(expired[i]);
        if (n < 64)
            break;
    }
}

static hs_hub_t *reg_find(struct hs_hubreg *reg, const char *token)
{
    for (hs_hub_t *h = reg->bucket[token_hash(token)]; h; h = h->reg_next)
        if (!strcmp(h->token, token))
            return h;
    return NULL;
}

int hs_hubreg_route(hs_server_t *srv, const char *req, size_t n)
{
    char token[24];
    if (hs_route_hub_token(req, n, token, sizeof(token)) < 0)
        return -1;
    int home = -1;
    struct hs_hubreg *reg = srv->hubreg;
    pthread_mutex_lock(&reg->mu);
    hs_hub_t *h = reg_find(reg, token);
    if (h)
        home = h->home;
    pthread_mutex_unlock(&reg->mu);
    return home;
}

/*
 * Looks up a token for a request on IO thread `io` and applies the transport rules. Returns a
 * CLAIM_* with *out referenced, or an HTTP status (404, 405, 409, 400) with *msg.
 */
int hs_hubreg_claim(hs_server_t *srv, const hs_hub_dialect_t *dialect, const char *token, int op,
                    int transport, int io, hs_hub_t **out, const char **msg)
{
    struct hs_hubreg *reg = srv->hubreg;
    int rc;
    pthread_mutex_lock(&reg->mu);
    hs_hub_t *h = reg_find(reg, token);
    *msg = "No Connection with that ID";
    if (!h || h->dialect != dialect) { /* a token is good only at the hub that negotiated it */
        rc = 404;
        goto out;
    }
    if (op == HS_HUBREQ_POST || op == HS_HUBREQ_DELETE) {
        if (h->transport == HS_HUB_T_WS) {
            rc = op == HS_HUBREQ_POST ? 405 : 400;
            *msg = op == HS_HUBREQ_POST ? "POST requests are not allowed for WebSocket connections."
                                        : "Cannot terminate this connection using the DELETE "
                                          "endpoint.";
        } else if (h->transport == HS_HUB_T_NONE) {
            rc = 400;
            *msg = "No transport has been started for this connection.";
        } else if (op == HS_HUBREQ_DELETE && h->transport != HS_HUB_T_LP) {
            rc = 400;
            *msg = "Cannot terminate this connection using the DELETE endpoint.";
        } else {
            rc = CLAIM_FORWARD;
        }
        goto out;
    }
    if (h->transport == HS_HUB_T_NONE) {
        h->transport = transport;
        h->home = io;
        h->attached = transport != HS_HUB_T_LP;
        un_remove(reg, h);
        rc = CLAIM_NEW;
        goto out;
    }
    if (h->transport != transport) {
        rc = 400;
        *msg = "Cannot change transports mid-connection";
        goto out;
    }
    if (transport == HS_HUB_T_LP) {
        rc = CLAIM_FORWARD;
        goto out;
    }
    /* a stateful connection's WebSocket may be replaced: by a resume after a drop, or by a
     * client that saw its socket die before the server did (the old one is then dropped) */
    if (transport == HS_HUB_T_WS && h->resume_ok && (h->resumable || h->attached)) {
        h->attached = true;
        h->resumable = false;
        /* the connection cannot move: a resume elsewhere is relayed to its home (relay.c) */
        rc = h->home == io ? CLAIM_RESUME : CLAIM_RELAY;
        reg->resumes++;
        reg->relayed += rc == CLAIM_RELAY;
        goto out;
    }
    rc = 409;
    *msg = "Another active request is already using this connection";
out:
    if (rc < 100)
        *out = hs_hub_ref(h);
    pthread_mutex_unlock(&reg->mu);
    return rc;
}

int hs_hubreg_add(hs_hub_t *h)
{
    struct hs_hubreg *reg = h->srv->hubreg;
    pthread_mutex_lock(&reg->mu);
    if (reg->nunclaimed >= (size_t)h->srv->cfg.hub_max_unclaimed) {
        /* negotiated and never used: each holds a connection object until it expires */
        pthread_mutex_unlock(&reg->mu);
        return HS_EBUSY;
    }
    h->registered = true;
    uint32_t b = token_hash(h->token);
    h->reg_next = reg->bucket[b];
    reg->bucket[b] = h;
    un_append(reg, h);
    reg->count++;
    pthread_mutex_unlock(&reg->mu);
    return 0;
}

void hs_hubreg_new_id(char out[23])
{
    uint8_t r[16];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        /* getrandom on Linux does not fail for 16 bytes once the pool is initialised; fall
         * back to the codec's generator rather than hand out a predictable id */
        char u[37];
        hs_uuid4(u);
        for (int i = 0; i < 16; i++)
            r[i] = (uint8_t)(u[i * 2] * 31 + u[i * 2 + 1]);
    }
    _Static_assert(HS_BASE64URL_LEN(16) == 22, "an id is 22 characters");
    hs_base64url_encode(r, sizeof(r), out);
}

void hs_hubreg_counts(hs_server_t *srv, hs_hubreg_counts_t *out)
{
    struct hs_hubreg *reg = srv->hubreg;
    memset(out, 0, sizeof(*out));
    if (!reg)
        return;
    pthread_mutex_lock(&reg->mu);
    out->registered = reg->count;
    out->unclaimed = reg->nunclaimed;
    out->resumes = reg->resumes;
    out->relayed = reg->relayed;
    pthread_mutex_unlock(&reg->mu);
}
