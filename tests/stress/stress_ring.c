/*
 * Stress: the ck_ring wrappers of ringbuf/ring.h (hs_ring_*_spsc, hs_ring_*_mpsc) between real
 * threads.
 *
 * Why: the writer's ingest rings and the fan-out workers' batch rings pass pointers to objects
 * that one thread filled and another reads. ck_ring orders this with fences that
 * ThreadSanitizer cannot see, and ring.h adds annotations so that it can. This program passes
 * payload objects whose contents the producer writes and the consumer verifies word by word,
 * and hands every object back to its producer through a second ring to be rewritten, so the
 * hand-off is checked in both directions: a missing or misplaced annotation (or a real
 * ordering bug) is a TSan report, a torn or stale payload is a failed check in any build.
 *
 * Checks: a ring of size n holds n - 1 entries; every item arrives exactly once, in order per
 * producer, with the contents its producer wrote; every object comes back to its pool.
 *
 * Each phase stops producing after 3 s even if it has not sent its full count: ck's multi-
 * producer enqueue spins (without yielding) until every earlier ticket is committed, so with
 * more runnable threads than cores a phase can crawl; the checks hold for whatever was sent.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringbuf/ring.h"
#include "stress.h"

#define WORDS 16
#define POOL                                                                                       \
    128                    /* objects per producer: more than the data rings hold, so they fill;   \
                            * the return rings (2 * POOL) never do */
#define SPSC_RING      64  /* small rings: producers and consumers meet full and empty often */
#define MPSC_RING      256 /* holds fewer than the producers' pools together */
#define MPSC_PRODUCERS 3
#define SPSC_ITEMS     1000000
#define MPSC_ITEMS     300000          /* per producer */
#define BUDGET_US      (3LL * 1000000) /* per phase: producers stop early on a slow machine */
#define DEADLINE_US    (60LL * 1000000)

typedef struct item {
    uint32_t producer;
    uint32_t len; /* words used, 1..WORDS */
    uint64_t seq;
    uint64_t words[WORDS];
    uint64_t sum;
} item_t;

typedef struct ring {
    ck_ring_t r;
    ck_ring_buffer_t *buf;
} ring_t;

static int64_t start_us;
static atomic_int stop; /* the phase's time budget is spent: producers send no more */
static bool budget_hit;
static uint64_t spsc_full, spsc_empty, mpsc_full, mpsc_empty; /* waits, for the summary */

static void ring_init(ring_t *r, unsigned size)
{
    r->buf = calloc(size, sizeof(ck_ring_buffer_t));
    CHECK(r->buf != NULL, "out of memory");
    ck_ring_init(&r->r, size);
}

static uint64_t word(uint32_t producer, uint64_t seq, uint32_t i)
{
    uint64_t x = (seq + 1) * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)producer << 56) ^ i;
    return x ^ (x >> 29);
}

static void fill(item_t *it, uint32_t producer, uint64_t seq)
{
    it->producer = producer;
    it->seq = seq;
    it->len = 1 + (uint32_t)(seq % WORDS);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < it->len; i++) {
        it->words[i] = word(producer, seq, i);
        sum += it->words[i];
    }
    it->sum = sum;
}

/* Consumer side: the item is the next one of its producer and holds what was written. Then
 * scribbles over it, so that the producer's next fill races with these writes unless the ring
 * orders them. */
static void verify_and_scribble(item_t *it, uint32_t nproducers, uint64_t *next_seq)
{
    CHECK(it->producer < nproducers, "item from unknown producer %u", it->producer);
    uint32_t p = it->producer;
    CHECK(it->seq == next_seq[p],
          "producer %u: got seq %llu, expected %llu (lost, duplicated "
          "or reordered item)",
          p, (unsigned long long)it->seq, (unsigned long long)next_seq[p]);
    CHECK(it->len == 1 + (uint32_t)(it->seq % WORDS), "producer %u seq %llu: len %u", p,
          (unsigned long long)it->seq, it->len);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < it->len; i++) {
        CHECK(it->words[i] == word(p, it->seq, i), "producer %u seq %llu: word %u torn", p,
              (unsigned long long)it->seq, i);
        sum += it->words[i];
    }
    CHECK(sum == it->sum, "producer %u seq %llu: checksum", p, (unsigned long long)it->seq);
    next_seq[p]++;
    memset(it->words, 0xA5, sizeof(it->words));
    it->seq = UINT64_MAX;
}

static void deadline(const char *what)
{
    if (stress_now_us() - start_us > DEADLINE_US)
        FAILF("%s: no completion within %lld s (stalled)", what, DEADLINE_US / 1000000);
}

/* ---- capacity ---- */

static void check_capacity(void)
{
    ring_t r;
    ring_init(&r, 16);
    item_t it;
    unsigned n = 0;
    while (hs_ring_enqueue_spsc(&r.r, r.buf, &it))
        n++;
    CHECK(n == 15, "a ring of 16 held %u entries, expected 15", n);
    CHECK(ck_ring_size(&r.r) == 15, "ck_ring_size %u", ck_ring_size(&r.r));
    void *p;
    while (hs_ring_dequeue_spsc(&r.r, r.buf, &p))
        n--;
    CHECK(n == 0, "%u entries did not come back", n);
    ck_ring_init(&r.r, 16); /* the MP side keeps its own head: a ring is either SP or MP */
    n = 0;
    while (hs_ring_enqueue_mpsc(&r.r, r.buf, &it))
        n++;
    CHECK(n == 15, "mpsc: a ring of 16 held %u entries, expected 15", n);
    while (hs_ring_dequeue_mpsc(&r.r, r.buf, &p))
        n--;
    CHECK(n == 0, "mpsc: %u entries did not come back", n);
    free(r.buf);
}

/* ---- SPSC: one producer, one consumer, objects recycled through a return ring ---- */

typedef struct spsc {
    ring_t data, back;
    item_t *pool;
    _Atomic uint64_t sent; /* written once the producer stops */
    atomic_int finished;
    uint64_t full; /* producer: times it found the data ring full */
} spsc_t;

static void *spsc_producer(void *arg)
{
    spsc_t *t = arg;
    uint32_t fresh = 0;
    uint64_t seq;
    for (seq = 0; seq < SPSC_ITEMS && !atomic_load_explicit(&stop, memory_order_relaxed); seq++) {
        item_t *it;
        void *p;
        if (fresh < POOL) {
            it = &t->pool[fresh++];
        } else {
            unsigned spins = 0;
            while (!hs_ring_dequeue_spsc(&t->back.r, t->back.buf, &p)) {
                deadline("spsc producer waiting for a returned object");
                stress_backoff(&spins);
            }
            it = p;
            CHECK(it->seq == UINT64_MAX, "returned object not scribbled by the consumer");
        }
        fill(it, 0, seq);
        unsigned spins = 0;
        while (!hs_ring_enqueue_spsc(&t->data.r, t->data.buf, it)) {
            deadline("spsc producer waiting for room");
            t->full += !spins;
            stress_backoff(&spins);
        }
    }
    atomic_store(&t->sent, seq);
    atomic_store_explicit(&t->finished, 1, memory_order_release);
    return NULL;
}

static unsigned long long run_spsc(void)
{
    spsc_t t;
    int64_t phase = stress_now_us();
    atomic_store(&stop, 0);
    atomic_init(&t.sent, 0);
    atomic_init(&t.finished, 0);
    t.full = 0;
    uint64_t empty = 0;
    ring_init(&t.data, SPSC_RING);
    ring_init(&t.back, 2 * POOL); /* the return ring never fills */
    t.pool = calloc(POOL, sizeof(item_t));
    CHECK(t.pool != NULL, "out of memory");
    pthread_t th;
    CHECK(pthread_create(&th, NULL, spsc_producer, &t) == 0, "pthread_create");
    uint64_t next = 0;
    unsigned spins = 0;
    while (!atomic_load_explicit(&t.finished, memory_order_acquire) ||
           next < atomic_load(&t.sent)) {
        void *p;
        if (!atomic_load(&stop) && stress_now_us() - phase > BUDGET_US) {
            atomic_store(&stop, 1);
            budget_hit = true;
        }
        if (!hs_ring_dequeue_spsc(&t.data.r, t.data.buf, &p)) {
            deadline("spsc consumer");
            empty += !spins;
            stress_backoff(&spins);
            continue;
        }
        spins = 0;
        verify_and_scribble(p, 1, &next);
        CHECK(hs_ring_enqueue_spsc(&t.back.r, t.back.buf, p), "return ring full");
    }
    pthread_join(th, NULL);
    void *p;
    CHECK(!hs_ring_dequeue_spsc(&t.data.r, t.data.buf, &p), "an item beyond the last one");
    /* the producer takes an object back only to send it again: all of them are home now */
    unsigned back = ck_ring_size(&t.back.r);
    uint64_t used = next < POOL ? next : POOL;
    CHECK(back == used, "%u objects returned, the producer used %llu", back,
          (unsigned long long)used);
    spsc_full = t.full;
    spsc_empty = empty;
    free(t.pool);
    free(t.data.buf);
    free(t.back.buf);
    return next;
}

/* ---- MPSC: several producers, one consumer, per-producer return rings ---- */

typedef struct mpsc_producer {
    struct mpsc *m;
    uint32_t index;
    ring_t back; /* consumer → this producer */
    item_t *pool;
    pthread_t th;
    _Atomic uint64_t sent; /* written once the producer stops */
    atomic_int finished;
    uint64_t full; /* times it found the data ring full */
} mpsc_producer_t;

typedef struct mpsc {
    ring_t data;
    mpsc_producer_t p[MPSC_PRODUCERS];
} mpsc_t;

static void *mpsc_producer(void *arg)
{
    mpsc_producer_t *pr = arg;
    uint32_t fresh = 0;
    uint64_t seq;
    for (seq = 0; seq < MPSC_ITEMS && !atomic_load_explicit(&stop, memory_order_relaxed); seq++) {
        item_t *it;
        void *p;
        if (fresh < POOL) {
            it = &pr->pool[fresh++];
        } else {
            unsigned spins = 0;
            while (!hs_ring_dequeue_spsc(&pr->back.r, pr->back.buf, &p)) {
                deadline("mpsc producer waiting for a returned object");
                stress_backoff(&spins);
            }
            it = p;
            CHECK(it->seq == UINT64_MAX, "returned object not scribbled by the consumer");
        }
        fill(it, pr->index, seq);
        unsigned spins = 0;
        while (!hs_ring_enqueue_mpsc(&pr->m->data.r, pr->m->data.buf, it)) {
            deadline("mpsc producer waiting for room");
            pr->full += !spins;
            stress_backoff(&spins);
        }
    }
    atomic_store(&pr->sent, seq);
    atomic_store_explicit(&pr->finished, 1, memory_order_release);
    return NULL;
}

static unsigned long long run_mpsc(void)
{
    mpsc_t m;
    int64_t phase = stress_now_us();
    atomic_store(&stop, 0);
    ring_init(&m.data, MPSC_RING);
    for (uint32_t i = 0; i < MPSC_PRODUCERS; i++) {
        atomic_init(&m.p[i].sent, 0);
        atomic_init(&m.p[i].finished, 0);
        m.p[i].full = 0;
        m.p[i].m = &m;
        m.p[i].index = i;
        ring_init(&m.p[i].back, 2 * POOL);
        m.p[i].pool = calloc(POOL, sizeof(item_t));
        CHECK(m.p[i].pool != NULL, "out of memory");
    }
    for (uint32_t i = 0; i < MPSC_PRODUCERS; i++)
        CHECK(pthread_create(&m.p[i].th, NULL, mpsc_producer, &m.p[i]) == 0, "pthread_create");
    uint64_t next[MPSC_PRODUCERS] = {0};
    uint64_t total = 0, empty = 0;
    unsigned spins = 0;
    for (;;) {
        bool all = true;
        for (uint32_t i = 0; i < MPSC_PRODUCERS && all; i++)
            all = atomic_load_explicit(&m.p[i].finished, memory_order_acquire) &&
                  next[i] == atomic_load(&m.p[i].sent);
        if (all)
            break;
        if (!atomic_load(&stop) && stress_now_us() - phase > BUDGET_US) {
            atomic_store(&stop, 1);
            budget_hit = true;
        }
        void *p;
        if (!hs_ring_dequeue_mpsc(&m.data.r, m.data.buf, &p)) {
            deadline("mpsc consumer");
            empty += !spins;
            stress_backoff(&spins);
            continue;
        }
        spins = 0;
        item_t *it = p;
        uint32_t owner = it->producer;
        verify_and_scribble(it, MPSC_PRODUCERS, next);
        CHECK(hs_ring_enqueue_spsc(&m.p[owner].back.r, m.p[owner].back.buf, it),
              "return ring full");
        total++;
    }
    for (uint32_t i = 0; i < MPSC_PRODUCERS; i++)
        pthread_join(m.p[i].th, NULL);
    void *p;
    CHECK(!hs_ring_dequeue_mpsc(&m.data.r, m.data.buf, &p), "an item beyond the last one");
    for (uint32_t i = 0; i < MPSC_PRODUCERS; i++) {
        unsigned back = ck_ring_size(&m.p[i].back.r);
        uint64_t used = next[i] < POOL ? next[i] : POOL;
        CHECK(back == used, "producer %u: %u objects returned, it used %llu", i, back,
              (unsigned long long)used);
        mpsc_full += m.p[i].full;
        free(m.p[i].pool);
        free(m.p[i].back.buf);
    }
    mpsc_empty = empty;
    free(m.data.buf);
    return total;
}

int main(void)
{
    start_us = stress_now_us();
    check_capacity();
    unsigned long long spsc = run_spsc();
    unsigned long long mpsc = run_mpsc();
    char detail[320];
    snprintf(detail, sizeof(detail),
             "spsc %llu items (ring full %llu times, empty %llu), mpsc %llu items from %d "
             "producers (full %llu, empty %llu)%s",
             spsc, (unsigned long long)spsc_full, (unsigned long long)spsc_empty, mpsc,
             MPSC_PRODUCERS, (unsigned long long)mpsc_full, (unsigned long long)mpsc_empty,
             budget_hit ? "; cut short by the time budget (a slow or busy machine)" : "");
    stress_summary("stress_ring", spsc + mpsc, start_us, detail);
    return 0;
}
