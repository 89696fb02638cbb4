/*
 * Stress: the intrusive MPSC queue (ringbuf/mpsc.c) with the sleep/wake protocol of
 * ringbuf/waiter.c, used the way the fan-out workers and reader threads use them.
 *
 * Why: every command between hubstream's threads goes through hs_mpsc_push(), and the consumer
 * sleeps in hs_waiter_sleep() until a producer whose push found the queue empty calls
 * hs_waiter_wake(). A lost wake-up does not corrupt anything; it stalls a subscriber or a
 * publish until the consumer's timeout. Here several producers push intrusive nodes, waking the
 * consumer only on the "was empty" return, and the consumer sleeps with a 2 s timeout whenever
 * take_all comes back empty. Producers often wait for the consumer to drain all their nodes
 * before they push again, so the consumer really goes to sleep thousands of times.
 *
 * Checks: every node arrives once, in push order per producer, with the payload its producer
 * wrote (the consumer then scribbles over it before handing it back for reuse, so TSan checks
 * both directions); the number of pushes that returned "was empty" equals the number of
 * take_all calls that returned nodes; no consumer sleep lasts its full 2 s timeout while
 * producers are running (a lost wake-up), and no producer waits more than 2 s for progress.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringbuf/mpsc.h"
#include "ringbuf/waiter.h"
#include "stress.h"

#define PRODUCERS 3
#define POOL      64              /* nodes per producer, reused in a ring */
#define NODES     150000          /* per producer, at most */
#define BUDGET_US (3LL * 1000000) /* producers stop early on a slow or busy machine */
#define SLEEP_MS  2000 /* the consumer's sleep timeout: reaching it means a wake-up was lost */
#define STALL_US  (2000LL * 1000)
#define PAYLOAD   6
#define NODE_KIND 7

typedef struct node {
    hs_mpsc_node_t n;
    uint32_t producer;
    uint64_t seq;
    uint64_t payload[PAYLOAD];
} node_t;

typedef struct producer {
    uint32_t index;
    node_t pool[POOL];
    _Atomic uint64_t consumed; /* consumer → producer: nodes seq < consumed may be reused */
    uint64_t wake_calls;       /* pushes that returned "was empty" */
    uint64_t pingpongs;        /* times it waited for the consumer to drain it */
    _Atomic uint64_t sent;     /* nodes pushed, written once it stops */
    pthread_t th;
} producer_t;

static hs_mpsc_t q;
static hs_waiter_t waiter;
static producer_t prods[PRODUCERS];
static atomic_int producers_done;
static atomic_int stop; /* the time budget is spent */

static uint64_t payload(uint32_t p, uint64_t seq, int i)
{
    return (seq << 8 | p) * 0x9E3779B97F4A7C15ULL + (uint64_t)i;
}

/* Waits until the consumer has taken every node below `upto` (acquire: its scribbles over them
 * happen before our next writes). */
static void wait_consumed(producer_t *pr, uint64_t upto)
{
    int64_t since = stress_now_us();
    unsigned spins = 0;
    while (atomic_load_explicit(&pr->consumed, memory_order_acquire) < upto) {
        if (stress_now_us() - since > STALL_US)
            FAILF("producer %u: no progress for 2 s (consumed %llu, waiting for %llu): the "
                  "consumer missed a wake-up or stalled",
                  pr->index, (unsigned long long)atomic_load(&pr->consumed),
                  (unsigned long long)upto);
        stress_backoff(&spins);
    }
}

static void *producer(void *arg)
{
    producer_t *pr = arg;
    uint64_t rng = 0x1234567ULL * (pr->index + 1);
    uint64_t seq = 0;
    while (seq < NODES && !atomic_load_explicit(&stop, memory_order_relaxed)) {
        /* a burst of 1..POOL nodes, as far as the pool allows */
        uint32_t burst = 1 + stress_below(&rng, stress_below(&rng, 4) ? 8 : POOL);
        for (uint32_t k = 0; k < burst && seq < NODES; k++, seq++) {
            if (seq >= POOL)
                wait_consumed(pr, seq - POOL + 1); /* the node's previous use is taken */
            node_t *nd = &pr->pool[seq % POOL];
            nd->n.kind = NODE_KIND;
            nd->producer = pr->index;
            nd->seq = seq;
            for (int i = 0; i < PAYLOAD; i++)
                nd->payload[i] = payload(pr->index, seq, i);
            if (hs_mpsc_push(&q, &nd->n)) {
                pr->wake_calls++;
                hs_waiter_wake(&waiter);
            }
        }
        switch (stress_below(&rng, 4)) {
        case 0: /* ping-pong: the consumer drains everything and goes back to sleep */
            wait_consumed(pr, seq);
            pr->pingpongs++;
            break;
        case 1:
            stress_sleep_us(stress_below(&rng, 50));
            break;
        case 2:
            sched_yield();
            break;
        default:
            break;
        }
    }
    atomic_store(&pr->sent, seq);
    atomic_fetch_add(&producers_done, 1);
    hs_waiter_wake(&waiter); /* the consumer may be asleep waiting for more */
    return NULL;
}

static bool has_work(void *ctx)
{
    return !hs_mpsc_empty(ctx);
}

int main(void)
{
    int64_t start = stress_now_us();
    hs_mpsc_init(&q);
    CHECK(hs_waiter_init(&waiter) == 0, "hs_waiter_init");
    CHECK(hs_mpsc_take_all(&q) == NULL, "a new queue is empty");
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        prods[i].index = i;
        atomic_init(&prods[i].consumed, 0);
        atomic_init(&prods[i].sent, 0);
        CHECK(pthread_create(&prods[i].th, NULL, producer, &prods[i]) == 0, "pthread_create");
    }
    uint64_t next[PRODUCERS] = {0}, total = 0, batches = 0;
    uint64_t sleeps = 0, woke_with_work = 0, woke_empty = 0;
    int64_t longest_sleep_us = 0;
    bool budget_hit = false;
    for (;;) {
        if (!budget_hit && stress_now_us() - start > BUDGET_US) {
            atomic_store(&stop, 1);
            budget_hit = true;
        }
        bool all = atomic_load(&producers_done) == PRODUCERS;
        for (uint32_t i = 0; i < PRODUCERS && all; i++)
            all = next[i] == atomic_load(&prods[i].sent);
        if (all && hs_mpsc_empty(&q))
            break;
        hs_mpsc_node_t *n = hs_mpsc_take_all(&q);
        if (!n) {
            int64_t t0 = stress_now_us();
            hs_waiter_sleep(&waiter, SLEEP_MS, has_work, &q);
            int64_t slept = stress_now_us() - t0;
            sleeps++;
            if (slept > longest_sleep_us)
                longest_sleep_us = slept;
            bool work = !hs_mpsc_empty(&q);
            if (work)
                woke_with_work++;
            else
                woke_empty++;
            if (slept >= (SLEEP_MS - 100) * 1000LL && atomic_load(&producers_done) < PRODUCERS)
                FAILF("the consumer slept %lld ms (its full timeout) while producers were "
                      "running, queue %s: lost wake-up",
                      (long long)(slept / 1000), work ? "not empty" : "empty");
            continue;
        }
        batches++;
        uint64_t last_of[PRODUCERS] = {0};
        bool seen[PRODUCERS] = {false};
        for (hs_mpsc_node_t *nx; n; n = nx) {
            nx = n->next; /* read before the node is handed back */
            node_t *nd = hs_container_of(n, node_t, n);
            CHECK(n->kind == NODE_KIND, "node kind %d", n->kind);
            uint32_t p = nd->producer;
            CHECK(p < PRODUCERS, "node from unknown producer %u", p);
            CHECK(nd->seq == next[p],
                  "producer %u: got node %llu, expected %llu (lost, "
                  "duplicated or reordered)",
                  p, (unsigned long long)nd->seq, (unsigned long long)next[p]);
            for (int i = 0; i < PAYLOAD; i++)
                CHECK(nd->payload[i] == payload(p, nd->seq, i),
                      "producer %u node %llu: "
                      "payload word %d torn",
                      p, (unsigned long long)nd->seq, i);
            memset(nd->payload, 0x5A, sizeof(nd->payload));
            nd->seq = UINT64_MAX;
            last_of[p] = next[p]++;
            seen[p] = true;
            total++;
        }
        /* hand the nodes back only after the whole list is walked: a producer may rewrite a
         * node (and its next pointer) as soon as it counts as consumed */
        for (uint32_t p = 0; p < PRODUCERS; p++)
            if (seen[p])
                atomic_store_explicit(&prods[p].consumed, last_of[p] + 1, memory_order_release);
    }
    uint64_t wake_calls = 0, pingpongs = 0;
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        pthread_join(prods[i].th, NULL);
        wake_calls += prods[i].wake_calls;
        pingpongs += prods[i].pingpongs;
        CHECK(next[i] == atomic_load(&prods[i].sent), "producer %u: %llu of %llu nodes", i,
              (unsigned long long)next[i], (unsigned long long)atomic_load(&prods[i].sent));
    }
    CHECK(hs_mpsc_empty(&q) && hs_mpsc_take_all(&q) == NULL, "nodes beyond the last one");
    /* each empty → non-empty transition is one "was empty" push, each non-empty take_all one
     * non-empty → empty transition */
    CHECK(wake_calls == batches,
          "%llu pushes returned \"was empty\" but take_all returned "
          "nodes %llu times",
          (unsigned long long)wake_calls, (unsigned long long)batches);
    hs_waiter_dispose(&waiter);
    char detail[400];
    snprintf(detail, sizeof(detail),
             "%d producers, %llu batches taken, %llu sleeps (%llu woken with work, %llu "
             "returned empty, longest %.1f ms), %llu ping-pongs%s",
             PRODUCERS, (unsigned long long)batches, (unsigned long long)sleeps,
             (unsigned long long)woke_with_work, (unsigned long long)woke_empty,
             (double)longest_sleep_us / 1000.0, (unsigned long long)pingpongs,
             budget_hit ? " (cut short by the time budget: a slow or busy machine)" : "");
    stress_summary("stress_mpsc", total, start, detail);
    return 0;
}
