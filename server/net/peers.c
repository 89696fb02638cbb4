/*
 * Per source address: how many connections it holds (--max-connections-per-ip) and how often it
 * negotiates SignalR connections (--max-negotiates-per-ip-s). One table under one mutex, touched
 * once per accepted connection, once per close and once per negotiate, and not at all while
 * both limits are off. An entry lives while its address holds a connection, and a second after
 * its last negotiate (so that reconnecting does not reset the count): the last close of an
 * address frees its entry unless it negotiated within the second, and such entries go when their
 * bucket is next walked. Bounded by the connections the server holds plus the addresses
 * seen in the last second.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server/net/net.h"
#include "util/time.h"

#define PEER_BUCKETS 4096

typedef struct pent {
    hs_peer_key_t k;
    int conns;
    int64_t window_ms; /* the second the negotiate count is for */
    int negotiates;
    struct pent *next;
} pent_t;

struct hs_peers {
    pthread_mutex_t mu;
    pent_t *b[PEER_BUCKETS];
};

void hs_peer_key_of(int fd, hs_peer_key_t *k)
{
    memset(k, 0, sizeof(*k));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl))
        return;
    if (ss.ss_family == AF_INET) {
        k->family = AF_INET;
        memcpy(k->a, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        k->family = AF_INET6;
        memcpy(k->a, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
    }
}

/* FNV-1a over the whole key (17 bytes, no padding): the table's buckets, and the reader's turns
 * (hs_read_owner). */
static uint64_t key_fnv(const hs_peer_key_t *k)
{
    const uint8_t *p = (const uint8_t *)k;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < sizeof(*k); i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static uint32_t key_hash(const hs_peer_key_t *k)
{
    return (uint32_t)(key_fnv(k) % PEER_BUCKETS);
}

static bool on(const hs_server_t *srv)
{
    return srv->peers &&
           (srv->cfg.max_connections_per_ip > 0 || srv->cfg.max_negotiates_per_ip_s > 0);
}

int hs_peers_create(hs_server_t *srv)
{
    if (srv->cfg.max_connections_per_ip <= 0 && srv->cfg.max_negotiates_per_ip_s <= 0)
        return 0;
    srv->peers = calloc(1, sizeof(*srv->peers));
    if (!srv->peers)
        return HS_ENOMEM;
    pthread_mutex_init(&srv->peers->mu, NULL);
    return 0;
}

void hs_peers_destroy(hs_server_t *srv)
{
    struct hs_peers *t = srv->peers;
    if (!t)
        return;
    for (size_t i = 0; i < PEER_BUCKETS; i++)
        for (pent_t *e = t->b[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    pthread_mutex_destroy(&t->mu);
    free(t);
    srv->peers = NULL;
}

/* The entry of k (mutex held), created when `create`; frees stale entries on the way (k's own
 * too when `drop`: a close that left it with nothing to count). */
static pent_t *find(struct hs_peers *t, const hs_peer_key_t *k, int64_t now, bool create, bool drop)
{
    pent_t **pp = &t->b[key_hash(k)], *hit = NULL;
    while (*pp) {
        pent_t *e = *pp;
        bool mine = !memcmp(&e->k, k, sizeof(*k));
        if (mine && !drop) {
            hit = e;
        } else if (!e->conns && now - e->window_ms >= 1000) {
            *pp = e->next;
            free(e);
            continue;
        }
        pp = &e->next;
    }
    if (!hit && create && (hit = calloc(1, sizeof(*hit)))) {
        hit->k = *k;
        hit->next = t->b[key_hash(k)];
        t->b[key_hash(k)] = hit;
    }
    return hit;
}

bool hs_peers_open(hs_server_t *srv, const hs_peer_key_t *k)
{
    if (!on(srv))
        return true;
    struct hs_peers *t = srv->peers;
    int max = srv->cfg.max_connections_per_ip;
    pthread_mutex_lock(&t->mu);
    pent_t *e = find(t, k, hs_now_ms(), true, false);
    bool ok = e && (max <= 0 || e->conns < max);
    if (ok)
        e->conns++;
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void hs_peers_close(hs_server_t *srv, const hs_peer_key_t *k)
{
    if (!on(srv))
        return;
    struct hs_peers *t = srv->peers;
    int64_t now = hs_now_ms();
    pthread_mutex_lock(&t->mu);
    pent_t *e = find(t, k, now, false, false);
    if (e && e->conns > 0 && --e->conns == 0 && now - e->window_ms >= 1000)
        find(t, k, now, false, true); /* nothing left to count: the entry goes now */
    pthread_mutex_unlock(&t->mu);
}

bool hs_peers_negotiate(hs_server_t *srv, const hs_peer_key_t *k)
{
    int max = srv->cfg.max_negotiates_per_ip_s;
    if (!on(srv) || max <= 0)
        return true;
    struct hs_peers *t = srv->peers;
    int64_t now = hs_now_ms();
    pthread_mutex_lock(&t->mu);
    pent_t *e = find(t, k, now, true, false);
    bool ok = false;
    if (e) {
        if (now - e->window_ms >= 1000) {
            e->window_ms = now;
            e->negotiates = 0;
        }
        ok = e->negotiates < max;
        if (ok)
            e->negotiates++;
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

uint64_t hs_read_owner(struct lws *wsi, const void *fallback)
{
    const hs_wsi_data_t *wd = wsi ? lws_get_opaque_user_data(wsi) : NULL;
    if (!wd || !wd->peer.family)
        return (uint64_t)(uintptr_t)fallback;
    return key_fnv(&wd->peer);
}
