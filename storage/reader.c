/*
 * Reader threads (see reader.h).
 *
 * Faults: a request that fails with HS_EDB makes its thread ping the connection; when the ping
 * fails too, the connection is closed and the next request reconnects first. While reconnecting
 * fails, requests fail at once with HS_EDB, and attempts are spaced out with exponential backoff
 * (RETRY_FIRST_MS doubling up to RETRY_MAX_MS), so an outage costs no more than one connect per
 * interval per thread. A connection left idle for IDLE_CHECK_MS is pinged before its next
 * request, so that the first read after an outage the thread slept through does not fail on
 * a connection that died meanwhile.
 *
 * Turns (reader.h: fairness): a thread moves what was submitted to it into one queue per owner
 * and keeps the owners with requests waiting in a list, the turn. It serves the first owner's
 * oldest request and, if that owner has more, puts it at the end of the turn. Newly submitted
 * requests join before each request is served. An owner's queue exists only while it holds
 * requests (found through a small hash table); when none can be allocated, the request is
 * served at once, in arrival order, as all were before turns.
 */
#include "storage/reader.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hubstream/hubstream.h"
#include "ringbuf/waiter.h"
#include "util/thread.h"

#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS   5000
#define IDLE_CHECK_MS  1000
#define OWNER_BUCKETS  64 /* a power of 2 */

/* One owner's requests waiting on a thread, oldest first, and its place in the turn. */
typedef struct owner_q {
    uint64_t owner;
    hs_read_req_t *head, *tail; /* linked by fair_next */
    struct owner_q *hnext;      /* its hash bucket */
    struct owner_q *next;       /* the turn */
} owner_q_t;

typedef struct rthread {
    hs_reader_t *r;
    hs_store_t *st; /* NULL after a lost connection, until a reconnect works */
    int64_t retry_at_us, used_us;
    int backoff_ms;
    hs_mpsc_t q;
    owner_q_t *bucket[OWNER_BUCKETS];
    owner_q_t *turn_head, *turn_tail; /* owners with requests waiting, next to serve first */
    hs_waiter_t waiter;
    pthread_t thread;
    bool started;
} rthread_t;

struct hs_reader {
    char *db;
    int n;
    rthread_t *t;
    atomic_uint next;
    atomic_int stopping;
};

static bool has_work(void *ctx)
{
    rthread_t *t = ctx;
    return !hs_mpsc_empty(&t->q) || atomic_load(&t->r->stopping);
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* A connection for the next request: the current one, or a new one when it is due. */
static hs_store_t *connection(rthread_t *t)
{
    int64_t now = mono_us();
    if (t->st && now - t->used_us >= (int64_t)IDLE_CHECK_MS * 1000 && hs_store_ping(t->st) != 0) {
        hs_store_close(t->st);
        t->st = NULL;
        t->retry_at_us = 0;
    }
    t->used_us = now;
    if (t->st)
        return t->st;
    if (now < t->retry_at_us)
        return NULL;
    char err[256];
    t->st = hs_store_open(t->r->db, err, sizeof err);
    if (t->st) {
        t->backoff_ms = 0;
        return t->st;
    }
    t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 : RETRY_FIRST_MS;
    if (t->backoff_ms > RETRY_MAX_MS)
        t->backoff_ms = RETRY_MAX_MS;
    t->retry_at_us = now + (int64_t)t->backoff_ms * 1000;
    return NULL;
}

static void serve(rthread_t *t, hs_read_req_t *req)
{
    hs_store_t *st = connection(t);
    if (!st) {
        req->status = HS_EDB;
        return;
    }
    req->status = req->run(st, req);
    if (req->status == HS_EDB && hs_store_ping(st) != 0) {
        hs_store_close(st);
        t->st = NULL;
        t->retry_at_us = 0; /* the next request tries at once */
    }
}

static owner_q_t **bucket_of(rthread_t *t, uint64_t owner)
{
    return &t->bucket[(owner * 0x9E3779B97F4A7C15ull) >> 58 & (OWNER_BUCKETS - 1)];
}

static void turn_append(rthread_t *t, owner_q_t *q)
{
    q->next = NULL;
    if (t->turn_tail)
        t->turn_tail->next = q;
    else
        t->turn_head = q;
    t->turn_tail = q;
}

/* Queues req behind its owner's other requests; false when no queue could be allocated. */
static bool turn_add(rthread_t *t, hs_read_req_t *req)
{
    owner_q_t **b = bucket_of(t, req->owner), *q = *b;
    while (q && q->owner != req->owner)
        q = q->hnext;
    if (!q) {
        if (!(q = malloc(sizeof *q)))
            return false;
        q->owner = req->owner;
        q->head = q->tail = NULL;
        q->hnext = *b;
        *b = q;
        turn_append(t, q);
    }
    req->fair_next = NULL;
    if (q->tail)
        q->tail->fair_next = req;
    else
        q->head = req;
    q->tail = req;
    return true;
}

/* The next request to serve: the oldest of the owner whose turn it is (NULL: none waits). */
static hs_read_req_t *turn_take(rthread_t *t)
{
    owner_q_t *q = t->turn_head;
    if (!q)
        return NULL;
    t->turn_head = q->next;
    if (!t->turn_head)
        t->turn_tail = NULL;
    hs_read_req_t *req = q->head;
    q->head = req->fair_next;
    if (q->head) {
        turn_append(t, q);
        return req;
    }
    owner_q_t **b = bucket_of(t, q->owner);
    while (*b != q)
        b = &(*b)->hnext;
    *b = q->hnext;
    free(q);
    return req;
}

static void *run(void *arg)
{
    rthread_t *t = arg;
    for (;;) {
        for (hs_mpsc_node_t *n = hs_mpsc_take_all(&t->q), *next; n; n = next) {
            next = n->next;
            hs_read_req_t *req = hs_container_of(n, hs_read_req_t, node);
            if (!turn_add(t, req)) {
                serve(t, req); /* no memory for a queue: its turn is now */
                req->done(req);
            }
        }
        hs_read_req_t *req = turn_take(t);
        if (!req) {
            if (atomic_load(&t->r->stopping))
                break;
            hs_waiter_sleep(&t->waiter, 500, has_work, t);
            continue;
        }
        serve(t, req);
        req->done(req);
    }
    return NULL;
}

hs_reader_t *hs_reader_create(const char *db, int n, char *err, size_t errlen)
{
    hs_reader_t *r = calloc(1, sizeof(*r));
    if (!r || n <= 0 || !(r->t = calloc((size_t)n, sizeof(rthread_t)))) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->n = n;
    if (!(r->db = strdup(db))) {
        free(r->t);
        free(r);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        rthread_t *t = &r->t[i];
        t->r = r;
        hs_mpsc_init(&t->q);
        hs_waiter_init(&t->waiter);
        if (!(t->st = hs_store_open(db, err, errlen))) {
            hs_reader_destroy(r);
            return NULL;
        }
    }
    return r;
}

int hs_reader_start(hs_reader_t *r)
{
    for (int i = 0; i < r->n; i++) {
        if (pthread_create(&r->t[i].thread, NULL, run, &r->t[i]))
            return HS_ESYS;
        hs_thread_name(r->t[i].thread, "hs-reader-", i);
        r->t[i].started = true;
    }
    return 0;
}

void hs_reader_stop(hs_reader_t *r)
{
    atomic_store(&r->stopping, 1);
    for (int i = 0; i < r->n; i++) {
        if (!r->t[i].started)
            continue;
        hs_waiter_wake(&r->t[i].waiter);
        pthread_join(r->t[i].thread, NULL);
        r->t[i].started = false;
    }
}

void hs_reader_destroy(hs_reader_t *r)
{
    if (!r)
        return;
    hs_reader_stop(r);
    for (int i = 0; i < r->n; i++) {
        if (r->t[i].st)
            hs_store_close(r->t[i].st);
        hs_waiter_dispose(&r->t[i].waiter);
    }
    free(r->t);
    free(r->db);
    free(r);
}

bool hs_reader_submit(hs_reader_t *r, hs_read_req_t *req)
{
    if (atomic_load(&r->stopping))
        return false;
    rthread_t *t = &r->t[atomic_fetch_add(&r->next, 1) % (unsigned)r->n];
    hs_mpsc_push(&t->q, &req->node);
    hs_waiter_wake(&t->waiter);
    return true;
}
