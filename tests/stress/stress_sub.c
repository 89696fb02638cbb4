/*
 * Stress: a subscription's outbox and signals (ringbuf/sub.c) between the two threads that share
 * it in the server: a fan-out worker producing and an IO thread consuming.
 *
 * Why: the outbox is a chunked SPSC queue of block references with a byte bound, chunk
 * recycling through `spare`, and two signal paths (DATA to the IO thread's inbox, SPACE back to
 * the worker's queue, each holding a reference on the subscription while queued). Its only other
 * threaded test is a Criterion test that TSan cannot run.
 *
 * The producer plays the worker: it allocates refcounted blocks with hs_block_alloc(), writes a
 * payload into them, pushes them in bursts with hs_sub_push_spsc() against the byte bound (every
 * 53rd one with force, as end markers and catch-up pages are), then raises DATA with
 * hs_sub_signal_io() and wakes the consumer when that returns true. When a push fails it sets
 * want_space, re-checks the free space as fanout.c does, and otherwise sleeps until SPACE comes.
 * The consumer plays the IO thread: it takes its inbox, hs_sub_take_io_flags(), pops a random
 * number of blocks (so the outbox fills up), verifies and unrefs them, and sends SPACE with
 * hs_sub_signal_worker() once want_space is set and the outbox drained below half, as sse.c
 * does. Each round ends with blocks still queued, and the two threads drop their references to
 * the subscription in a set order (producer last, consumer last) or racing.
 *
 * Checks: every block arrives once, in order, with its payload; a non-forced push never fails
 * while there was room and never leaves more than the bound queued; the queued bytes never
 * exceed the bound by more than one forced block; no DATA or SPACE signal is lost (a 2 s sleep
 * without progress fails); every block is freed exactly when its last reference goes (counted
 * here, checked by ASan), including those still queued when the subscription's last reference
 * is dropped, by whichever thread drops it.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringbuf/block.h"
#include "ringbuf/mpsc.h"
#include "ringbuf/sub.h"
#include "ringbuf/waiter.h"
#include "stress.h"

#define ROUNDS      12              /* at most */
#define MIN_ROUNDS  3               /* each way of dropping the last reference once */
#define BUDGET_US   (4LL * 1000000) /* no new round after this, on a slow or busy machine */
#define ITEMS       20000           /* blocks per round */
#define LEFTOVER    45  /* blocks still queued when the subscription goes: more than a chunk */
#define MAX_EXTRA   300 /* payload bytes per block */
#define FORCE_EVERY 53
#define SLEEP_MS    2000
#define OVERHEAD    24 /* accounted per block on top of its payload, like hs_fanout_block_size */

enum { LAST_PRODUCER = 0, LAST_CONSUMER = 1, LAST_RACE = 2 };

typedef struct round {
    int index;
    hs_sub_t *s;
    int last;
    uint64_t seed;
    hs_mpsc_t io_inbox; /* worker → IO: DATA */
    hs_waiter_t io_waiter;
    hs_mpsc_t w_queue; /* IO → worker: SPACE */
    hs_waiter_t w_waiter;
    atomic_int pushed_all;    /* the producer pushed and signalled every item */
    atomic_int consumer_done; /* the consumer popped every item and sends no more signals */
    atomic_int unref_done[2]; /* 0 producer, 1 consumer */
    hs_block_t *leftover[LEFTOVER];
    size_t leftover_bytes;
    /* stats */
    uint64_t push_fails, space_waits, forced, data_wakes, space_wakes, consumer_sleeps;
} round_t;

static atomic_ullong blocks_alloc, blocks_freed;

/* Drops one reference and counts the block as freed when it was the last: the block's own
 * refcount reaching zero is what frees it, so the count is exact. */
static void blk_unref(hs_block_t *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
        atomic_fetch_add(&blocks_freed, 1);
        atomic_store_explicit(&b->refs, 1, memory_order_relaxed); /* ours alone: free it */
        hs_block_unref(b);
    }
}

static size_t size_of(const hs_sub_t *s, const hs_block_t *b)
{
    return b->sse_len + OVERHEAD;
}

static uint8_t pattern(int64_t v, uint32_t i)
{
    return (uint8_t)(v * 31 + i * 7 + (v >> 8));
}

static hs_block_t *make_block(int64_t v, uint32_t extra, bool forced)
{
    hs_block_t *b = hs_block_alloc(extra);
    CHECK(b != NULL, "out of memory");
    atomic_fetch_add(&blocks_alloc, 1);
    b->kind = HS_BLOCK_EVENT;
    b->version = v;
    b->position = v * 3;
    b->stream_hash = forced;
    for (uint32_t i = 0; i < extra; i++)
        b->mem[i] = (char)pattern(v, i);
    b->sse = b->mem;
    b->sse_len = extra;
    return b;
}

static uint32_t extra_of(round_t *r, int64_t v)
{
    return (uint32_t)((uint64_t)(v * 2654435761u + r->seed) % (MAX_EXTRA + 1));
}

static bool inbox_has_work(void *ctx)
{
    return !hs_mpsc_empty(ctx);
}

/* ---- producer: the fan-out worker ---- */

static void signal_data(round_t *r)
{
    if (hs_sub_signal_io(r->s, HS_SUB_IO_DATA, &r->io_inbox)) {
        r->data_wakes++;
        hs_waiter_wake(&r->io_waiter);
    }
}

/* Takes the worker queue; true when SPACE was among the flags. Drops the queue's references. */
static bool take_space(round_t *r)
{
    bool space = false;
    for (hs_mpsc_node_t *n = hs_mpsc_take_all(&r->w_queue), *nx; n; n = nx) {
        nx = n->next;
        CHECK(n->kind == HS_NODE_SUB_WORKER, "worker queue node kind %d", n->kind);
        hs_sub_t *s = hs_container_of(n, hs_sub_t, w_node);
        CHECK(s == r->s, "a foreign subscription on the worker queue");
        unsigned fl = hs_sub_take_worker_flags(s);
        CHECK((fl & ~(unsigned)HS_SUB_W_SPACE) == 0, "unexpected worker flags %#x", fl);
        space |= (fl & HS_SUB_W_SPACE) != 0;
        hs_sub_unref(s); /* the queue's reference */
    }
    return space;
}

static void drop_in_order(round_t *r, int me)
{
    int other = 1 - me;
    bool last = r->last == (me == 0 ? LAST_PRODUCER : LAST_CONSUMER);
    if (last) {
        int64_t since = stress_now_us();
        unsigned spins = 0;
        while (!atomic_load_explicit(&r->unref_done[other], memory_order_acquire)) {
            if (stress_now_us() - since > SLEEP_MS * 1000LL)
                FAILF("round %d: the other thread never dropped its reference", r->index);
            stress_backoff(&spins);
        }
        /* the subscription is alive (ours) and holds one reference on each queued block */
        for (int i = 0; i < LEFTOVER; i++)
            CHECK(atomic_load(&r->leftover[i]->refs) == 2,
                  "round %d: leftover %d has %u refs "
                  "before the last unref, expected 2",
                  r->index, i, atomic_load(&r->leftover[i]->refs));
    }
    hs_sub_unref(r->s);
    atomic_store_explicit(&r->unref_done[me], 1, memory_order_release);
    if (last) {
        /* that was the last reference: the subscription released every queued block */
        for (int i = 0; i < LEFTOVER; i++)
            CHECK(atomic_load(&r->leftover[i]->refs) == 1,
                  "round %d: leftover %d has %u refs "
                  "after the last unref, expected 1",
                  r->index, i, atomic_load(&r->leftover[i]->refs));
    }
}

static void *producer(void *arg)
{
    round_t *r = arg;
    hs_sub_t *s = r->s;
    uint64_t rng = r->seed ^ 0xABCDEF;
    int64_t v = 1;
    while (v <= ITEMS) {
        uint32_t burst = 1 + stress_below(&rng, 32);
        for (uint32_t k = 0; k < burst && v <= ITEMS;) {
            bool force = v % FORCE_EVERY == 0;
            uint32_t extra = extra_of(r, v);
            hs_block_t *b = make_block(v, extra, force);
            size_t bytes = extra + OVERHEAD;
            size_t before = atomic_load(&s->bytes);
            if (hs_sub_push_spsc(s, b, bytes, force)) {
                blk_unref(b); /* the outbox holds its own reference */
                size_t now = atomic_load(&s->bytes);
                if (!force)
                    CHECK(now <= s->max_bytes,
                          "round %d: %zu bytes queued after a push, bound "
                          "%zu",
                          r->index, now, s->max_bytes);
                r->forced += force;
                v++;
                k++;
                continue;
            }
            blk_unref(b); /* made again on the retry: the count must still match */
            CHECK(!force, "round %d: a forced push failed", r->index);
            CHECK(before + bytes > s->max_bytes,
                  "round %d: push of %zu bytes failed with %zu "
                  "of %zu queued",
                  r->index, bytes, before, s->max_bytes);
            r->push_fails++;
            /* the fan-out worker's to_catchup(): ask for space, then look again, since the
             * IO thread may have drained everything before it could see want_space */
            hs_sub_want_space(s, s->max_bytes / 2);
            if (hs_sub_space_due(s))
                continue;
            signal_data(r); /* what is queued must go out for space to come */
            r->space_waits++;
            int64_t since = stress_now_us();
            while (!take_space(r)) {
                hs_waiter_sleep(&r->w_waiter, SLEEP_MS, inbox_has_work, &r->w_queue);
                if (stress_now_us() - since >= (SLEEP_MS - 100) * 1000LL)
                    FAILF("round %d: no SPACE signal for %d ms with %zu of %zu bytes queued "
                          "(want_space %zu): lost signal",
                          r->index, SLEEP_MS, (size_t)atomic_load(&s->bytes), s->max_bytes,
                          (size_t)atomic_load(&s->want_space));
            }
        }
        signal_data(r);
        if (!stress_below(&rng, 8))
            sched_yield();
    }
    atomic_store(&r->pushed_all, 1);
    /* the consumer sends no SPACE after consumer_done: drain what it sent */
    unsigned spins = 0;
    while (!atomic_load(&r->consumer_done))
        stress_backoff(&spins);
    take_space(r);
    /* blocks queued that nobody will pop: the last unref of the subscription releases them */
    for (int i = 0; i < LEFTOVER; i++) {
        hs_block_t *b = make_block(ITEMS + 1 + i, extra_of(r, ITEMS + 1 + i), true);
        CHECK(hs_sub_push_spsc(s, b, b->sse_len + OVERHEAD, true), "leftover push");
        r->leftover[i] = b; /* we keep the allocation's reference until the end */
        r->leftover_bytes += b->sse_len + OVERHEAD;
    }
    CHECK(atomic_load(&s->pushed) == ITEMS + LEFTOVER, "pushed %llu",
          (unsigned long long)atomic_load(&s->pushed));
    CHECK(atomic_load(&s->bytes) == r->leftover_bytes,
          "round %d: %zu bytes queued, the "
          "leftovers are %zu",
          r->index, (size_t)atomic_load(&s->bytes), r->leftover_bytes);
    drop_in_order(r, 0);
    return NULL;
}

/* ---- consumer: the IO thread ---- */

static void *consumer(void *arg)
{
    round_t *r = arg;
    hs_sub_t *s = r->s;
    uint64_t rng = r->seed ^ 0x5EED;
    int64_t expect = 1;
    bool want_write = false;
    size_t max_allowed = s->max_bytes + MAX_EXTRA + OVERHEAD; /* one forced block over */
    while (expect <= ITEMS) {
        for (hs_mpsc_node_t *n = hs_mpsc_take_all(&r->io_inbox), *nx; n; n = nx) {
            nx = n->next;
            CHECK(n->kind == HS_NODE_SUB_IO, "inbox node kind %d", n->kind);
            hs_sub_t *ns = hs_container_of(n, hs_sub_t, io_node);
            CHECK(ns == s, "a foreign subscription in the inbox");
            /* 0 is possible: a flag raised between the clear of io_scheduled and the take of
             * the flags comes with this take and queues the subscription once more */
            unsigned fl = hs_sub_take_io_flags(ns);
            CHECK((fl & ~(unsigned)HS_SUB_IO_DATA) == 0, "unexpected io flags %#x", fl);
            want_write = true;
            hs_sub_unref(ns); /* the inbox's reference */
        }
        if (!want_write) {
            int64_t t0 = stress_now_us();
            hs_waiter_sleep(&r->io_waiter, SLEEP_MS, inbox_has_work, &r->io_inbox);
            r->consumer_sleeps++;
            if (stress_now_us() - t0 >= (SLEEP_MS - 100) * 1000LL && hs_mpsc_empty(&r->io_inbox))
                FAILF("round %d: no DATA signal for %d ms, waiting for block %lld with %llu "
                      "pushed, %llu popped: lost signal",
                      r->index, SLEEP_MS, (long long)expect,
                      (unsigned long long)atomic_load(&s->pushed),
                      (unsigned long long)atomic_load(&s->popped));
            continue;
        }
        /* a writable turn: a random budget, so that the outbox fills and drains */
        uint32_t budget = stress_below(&rng, 4) ? 1 + stress_below(&rng, 16) : 100000;
        hs_block_t *b;
        while (budget-- && (b = hs_sub_pop_spsc(s, size_of))) {
            CHECK(b->version == expect,
                  "round %d: got block %lld, expected %lld (lost, "
                  "duplicated or reordered)",
                  r->index, (long long)b->version, (long long)expect);
            CHECK(b->kind == HS_BLOCK_EVENT && b->position == expect * 3,
                  "round %d block %lld: header torn", r->index, (long long)expect);
            CHECK(b->stream_hash == (expect % FORCE_EVERY == 0),
                  "round %d block %lld: forced "
                  "flag",
                  r->index, (long long)expect);
            uint32_t extra = extra_of(r, expect);
            CHECK(b->sse_len == extra && b->sse == b->mem, "round %d block %lld: length", r->index,
                  (long long)expect);
            for (uint32_t i = 0; i < extra; i++)
                CHECK((uint8_t)b->sse[i] == pattern(expect, i),
                      "round %d block %lld: byte %u "
                      "torn",
                      r->index, (long long)expect, i);
            size_t used = atomic_load(&s->bytes);
            CHECK(used <= max_allowed,
                  "round %d: %zu bytes queued, bound %zu (+ one forced "
                  "block)",
                  r->index, used, s->max_bytes);
            blk_unref(b);
            expect++;
        }
        if (hs_sub_empty(s))
            want_write = false; /* until the next DATA */
        /* sse.c after a write: space for a worker that asked for it */
        if (hs_sub_space_due(s)) {
            if (hs_sub_signal_worker(s, HS_SUB_W_SPACE, &r->w_queue)) {
                r->space_wakes++;
                hs_waiter_wake(&r->w_waiter);
            }
        }
        if (!stress_below(&rng, 16))
            stress_sleep_us(stress_below(&rng, 100)); /* a slow socket */
    }
    CHECK(hs_sub_pop_spsc(s, size_of) == NULL, "round %d: a block beyond the last one", r->index);
    unsigned spins = 0;
    while (!atomic_load(&r->pushed_all))
        stress_backoff(&spins);
    /* the producer's last DATA signals: take them (and their references) */
    for (hs_mpsc_node_t *n = hs_mpsc_take_all(&r->io_inbox), *nx; n; n = nx) {
        nx = n->next;
        hs_sub_t *ns = hs_container_of(n, hs_sub_t, io_node);
        hs_sub_take_io_flags(ns);
        hs_sub_unref(ns);
    }
    CHECK(atomic_load(&s->popped) == ITEMS, "popped %llu",
          (unsigned long long)atomic_load(&s->popped));
    atomic_store(&r->consumer_done, 1);
    /* wait for the leftovers: this thread may be the one to release them */
    spins = 0;
    while (atomic_load(&s->pushed) < ITEMS + LEFTOVER)
        stress_backoff(&spins);
    drop_in_order(r, 1);
    return NULL;
}

int main(void)
{
    int64_t start = stress_now_us();
    static const size_t bounds[] = {2048, 8192, 65536};
    uint64_t push_fails = 0, space_waits = 0, forced = 0, data_wakes = 0, space_wakes = 0;
    uint64_t sleeps = 0;
    int rounds = 0;
    for (int i = 0; i < ROUNDS; i++) {
        if (i >= MIN_ROUNDS && stress_now_us() - start > BUDGET_US)
            break;
        rounds++;
        round_t *r = calloc(1, sizeof(*r));
        CHECK(r != NULL, "out of memory");
        r->index = i;
        r->last = i % 3;
        r->seed = 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);
        size_t bound = bounds[i / 3 % 3];
        r->s = hs_sub_create("stress", 6, NULL, 0, bound);
        CHECK(r->s != NULL, "hs_sub_create");
        hs_sub_ref(r->s); /* one reference per thread; main keeps none */
        hs_mpsc_init(&r->io_inbox);
        hs_mpsc_init(&r->w_queue);
        CHECK(hs_waiter_init(&r->io_waiter) == 0 && hs_waiter_init(&r->w_waiter) == 0,
              "hs_waiter_init");
        pthread_t p, c;
        CHECK(pthread_create(&c, NULL, consumer, r) == 0, "pthread_create");
        CHECK(pthread_create(&p, NULL, producer, r) == 0, "pthread_create");
        pthread_join(p, NULL);
        pthread_join(c, NULL);
        CHECK(hs_mpsc_empty(&r->io_inbox) && hs_mpsc_empty(&r->w_queue),
              "round %d: a signal left queued", i);
        for (int k = 0; k < LEFTOVER; k++) {
            CHECK(atomic_load(&r->leftover[k]->refs) == 1,
                  "round %d: leftover %d has %u refs "
                  "after both threads dropped the subscription",
                  i, k, atomic_load(&r->leftover[k]->refs));
            blk_unref(r->leftover[k]);
        }
        CHECK(atomic_load(&blocks_freed) == atomic_load(&blocks_alloc),
              "round %d: %llu blocks allocated, %llu freed", i,
              (unsigned long long)atomic_load(&blocks_alloc),
              (unsigned long long)atomic_load(&blocks_freed));
        push_fails += r->push_fails;
        space_waits += r->space_waits;
        forced += r->forced;
        data_wakes += r->data_wakes;
        space_wakes += r->space_wakes;
        sleeps += r->consumer_sleeps;
        hs_waiter_dispose(&r->io_waiter);
        hs_waiter_dispose(&r->w_waiter);
        free(r);
    }
    char detail[320];
    snprintf(detail, sizeof(detail),
             "%d rounds, %llu blocks freed, %llu full pushes, %llu SPACE waits, %llu forced, "
             "%llu DATA wakes, %llu SPACE wakes, %llu consumer sleeps",
             rounds, (unsigned long long)atomic_load(&blocks_freed), (unsigned long long)push_fails,
             (unsigned long long)space_waits, (unsigned long long)forced,
             (unsigned long long)data_wakes, (unsigned long long)space_wakes,
             (unsigned long long)sleeps);
    stress_summary("stress_sub", (unsigned long long)rounds * ITEMS, start, detail);
    return 0;
}
