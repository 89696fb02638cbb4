/* Outbox (ringbuf/sub.c), MPSC queue (ringbuf/mpsc.c) and the consumers' sleep/wake
 * (ringbuf/waiter.c): order, bounds, refcounts, threads, timeouts. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ringbuf/mpsc.h"
#include "ringbuf/sub.h"
#include "ringbuf/waiter.h"

static hs_block_t *mk(int64_t v)
{
    hs_block_t *b = hs_block_alloc(0);
    b->version = v;
    b->sse_len = 10;
    return b;
}

static size_t size10(const hs_sub_t *s, const hs_block_t *b)
{
    return 10;
}

Test(sub, fifo_across_chunks_and_bytes_bound)
{
    hs_sub_t *s = hs_sub_create("orders", 6, NULL, 0, 10 * 1000);
    cr_assert_not_null(s);
    cr_assert(hs_sub_empty(s));
    for (int i = 1; i <= 1000; i++) {
        hs_block_t *b = mk(i);
        cr_assert(hs_sub_push_spsc(s, b, 10, false), "push %d", i);
        hs_block_unref(b);
    }
    /* the bound is reached: a further push fails unless forced */
    hs_block_t *x = mk(1001);
    cr_assert_not(hs_sub_push_spsc(s, x, 10, false));
    cr_assert(hs_sub_push_spsc(s, x, 10, true));
    hs_block_unref(x);
    cr_assert_eq(hs_sub_free_bytes(s), 0);
    for (int i = 1; i <= 1001; i++) {
        hs_block_t *b = hs_sub_pop_spsc(s, size10);
        cr_assert_not_null(b);
        cr_assert_eq(b->version, i);
        hs_block_unref(b);
    }
    cr_assert_null(hs_sub_pop_spsc(s, size10));
    cr_assert_eq(hs_sub_free_bytes(s), 10 * 1000);
    hs_sub_unref(s);
}

Test(sub, unref_releases_queued_blocks)
{
    hs_sub_t *s = hs_sub_create("a", 1, NULL, 0, 1 << 20);
    hs_block_t *b = mk(1);
    for (int i = 0; i < 200; i++)
        hs_sub_push_spsc(s, b, 10, false);
    cr_assert_eq(atomic_load(&b->refs), 201);
    hs_sub_unref(s);
    cr_assert_eq(atomic_load(&b->refs), 1);
    hs_block_unref(b);
}

Test(sub, type_filter_and_all)
{
    const char *types[] = {"a.x", "b"};
    hs_sub_t *s = hs_sub_create("$all", 4, types, 2, 100);
    cr_assert(s->all);
    cr_assert(hs_sub_wants_type(s, "b", 1));
    cr_assert(hs_sub_wants_type(s, "a.x", 3));
    cr_assert_not(hs_sub_wants_type(s, "a", 1));
    cr_assert_not(hs_sub_wants_type(s, "bb", 2));
    hs_sub_unref(s);
    s = hs_sub_create("$allx", 5, NULL, 0, 100);
    cr_assert_not(s->all);
    cr_assert(hs_sub_wants_type(s, "anything", 8));
    hs_sub_unref(s);
}

Test(sub, signals_schedule_once)
{
    hs_mpsc_t q;
    hs_mpsc_init(&q);
    hs_sub_t *s = hs_sub_create("a", 1, NULL, 0, 100);
    cr_assert(hs_sub_signal_io(s, HS_SUB_IO_DATA, &q), "first signal wakes");
    cr_assert_not(hs_sub_signal_io(s, HS_SUB_IO_END, &q), "already queued");
    hs_mpsc_node_t *n = hs_mpsc_take_all(&q);
    cr_assert_eq(n, &s->io_node);
    cr_assert_null(n->next);
    cr_assert_eq(hs_sub_take_io_flags(s), HS_SUB_IO_DATA | HS_SUB_IO_END);
    hs_sub_unref(s); /* the queue's reference */
    cr_assert(hs_sub_signal_io(s, HS_SUB_IO_DATA, &q), "re-queued after take");
    hs_mpsc_take_all(&q);
    hs_sub_take_io_flags(s);
    hs_sub_unref(s);
    hs_sub_unref(s);
}

/* One producer thread, one consumer thread: every block arrives once, in order. */
#define N 200000
static void *producer(void *arg)
{
    hs_sub_t *s = arg;
    for (int i = 1; i <= N;) {
        hs_block_t *b = mk(i);
        if (hs_sub_push_spsc(s, b, 10, false))
            i++;
        hs_block_unref(b);
    }
    return NULL;
}

Test(sub, spsc_threads_keep_order)
{
    hs_sub_t *s = hs_sub_create("a", 1, NULL, 0, 10 * 512);
    pthread_t t;
    pthread_create(&t, NULL, producer, s);
    int64_t expect = 1;
    while (expect <= N) {
        hs_block_t *b = hs_sub_pop_spsc(s, size10);
        if (!b)
            continue;
        cr_assert_eq(b->version, expect);
        expect++;
        hs_block_unref(b);
    }
    pthread_join(t, NULL);
    cr_assert(hs_sub_empty(s));
    hs_sub_unref(s);
}

typedef struct item {
    hs_mpsc_node_t node;
    int producer, seq;
} item_t;

static hs_mpsc_t gq;
static void *mp_producer(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < 50000; i++) {
        item_t *it = malloc(sizeof(*it));
        it->producer = id;
        it->seq = i;
        hs_mpsc_push(&gq, &it->node);
    }
    return NULL;
}

Test(mpsc, many_producers_each_in_order)
{
    hs_mpsc_init(&gq);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, mp_producer, (void *)(intptr_t)i);
    int next[4] = {0};
    int total = 0;
    while (total < 4 * 50000) {
        for (hs_mpsc_node_t *n = hs_mpsc_take_all(&gq), *nx; n; n = nx) {
            nx = n->next;
            item_t *it = (item_t *)n;
            cr_assert_eq(it->seq, next[it->producer], "producer %d out of order", it->producer);
            next[it->producer]++;
            total++;
            free(it);
        }
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    cr_assert(hs_mpsc_empty(&gq));
}

/* ---- the waiter: a sleep ends on a wake, on work found, or at its timeout, and only then ---- */

static bool yes(void *ctx)
{
    (void)ctx;
    return true;
}

/* How long one hs_waiter_sleep lasted, in ms. */
static int64_t slept(hs_waiter_t *w, int timeout_ms, bool (*has_work)(void *))
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    hs_waiter_sleep(w, timeout_ms, has_work, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (int64_t)(b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
}

typedef struct {
    hs_waiter_t *w;
    int delay_ms, wakes;
} waker_t;

static void *waker(void *arg)
{
    waker_t *k = arg;
    usleep((useconds_t)k->delay_ms * 1000);
    for (int i = 0; i < k->wakes; i++)
        hs_waiter_wake(k->w);
    return NULL;
}

Test(waiter, times_out_when_nobody_wakes)
{
    hs_waiter_t w;
    cr_assert_eq(hs_waiter_init(&w), 0);
    int64_t took = slept(&w, 80, NULL);
    cr_assert(took >= 75 && took < 2000, "slept %lld ms for a timeout of 80", (long long)took);
    hs_waiter_dispose(&w);
}

Test(waiter, a_wake_ends_the_sleep_and_is_spent_by_it)
{
    hs_waiter_t w;
    cr_assert_eq(hs_waiter_init(&w), 0);
    /* three producers' worth of wakes while it sleeps: one sleep ends, the next one is not
     * cut short by what is left of them */
    waker_t k = {.w = &w, .delay_ms = 30, .wakes = 3};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, waker, &k), 0);
    int64_t took = slept(&w, 10000, NULL);
    pthread_join(th, NULL);
    cr_assert(took < 5000, "a wake after 30 ms ended a 10 s sleep after %lld ms", (long long)took);
    took = slept(&w, 80, NULL);
    cr_assert(took >= 75, "the next sleep ended after %lld ms, before its timeout of 80",
              (long long)took);
    hs_waiter_dispose(&w);
}

Test(waiter, a_wake_while_awake_does_not_cut_the_next_sleep_short)
{
    hs_waiter_t w;
    cr_assert_eq(hs_waiter_init(&w), 0);
    hs_waiter_wake(&w); /* nobody asleep: nothing to do */
    int64_t took = slept(&w, 80, NULL);
    cr_assert(took >= 75, "slept %lld ms for a timeout of 80", (long long)took);
    hs_waiter_dispose(&w);
}

Test(waiter, work_found_after_declaring_sleep_skips_it)
{
    hs_waiter_t w;
    cr_assert_eq(hs_waiter_init(&w), 0);
    int64_t took = slept(&w, 10000, yes);
    cr_assert(took < 5000, "slept %lld ms with work waiting", (long long)took);
    hs_waiter_dispose(&w);
}
