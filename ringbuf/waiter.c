/*
 * Sleep/wake for consumer threads (see waiter.h).
 *
 * The protocol: the consumer sets `sleeping` and then re-checks its queues; a producer publishes
 * work and then reads `sleeping`. Both sides use sequentially consistent operations, so at least
 * one of them sees the other: either the consumer finds the work or the producer wakes it.
 *
 * The sleep itself is a futex on `kicked` (Linux), not a mutex and a condition variable. With
 * those, the producer signalled while holding the mutex, the woken consumer blocked on that mutex
 * at once and was woken a second time when the producer let go: two futex wakes and two context
 * switches per wake-up (seen in strace on the writer at one publish per commit). Signalling after
 * the unlock would avoid it but is unsafe when the waiter may be disposed as soon as the consumer
 * returns (as stress_fanout's publishers do with theirs). A futex wake touches no memory of the
 * waiter: if the waiter is gone, it wakes nobody, or, should its address be reused, another
 * futex's sleeper early, which every futex sleeper re-checks for.
 */
#include "ringbuf/waiter.h"

#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int hs_waiter_init(hs_waiter_t *w)
{
    atomic_init(&w->sleeping, 0);
    atomic_init(&w->kicked, 0);
    return 0;
}

void hs_waiter_dispose(hs_waiter_t *w)
{
    (void)w;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void hs_waiter_wake(hs_waiter_t *w)
{
    /* seq_cst: pairs with the seq_cst store of `sleeping` in hs_waiter_sleep */
    if (!atomic_load(&w->sleeping))
        return;
    /* one wake per sleep: when `kicked` was already set, the producer that set it wakes */
    if (atomic_exchange(&w->kicked, 1) == 0)
        syscall(SYS_futex, &w->kicked, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void hs_waiter_sleep(hs_waiter_t *w, int timeout_ms, bool (*has_work)(void *), void *ctx)
{
    atomic_store(&w->sleeping, 1); /* seq_cst: pairs with the load in hs_waiter_wake */
    if (!has_work || !has_work(ctx)) {
        int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
        /* FUTEX_WAIT returns at once when `kicked` is no longer 0, on a wake, a signal or the
         * timeout, and (rarely) for no reason: the loop looks again each time */
        while (atomic_load(&w->kicked) == 0) {
            int64_t left = deadline - now_ns();
            if (left <= 0)
                break;
            struct timespec rel = {.tv_sec = (time_t)(left / 1000000000),
                                   .tv_nsec = (long)(left % 1000000000)};
            syscall(SYS_futex, &w->kicked, FUTEX_WAIT_PRIVATE, 0, &rel, NULL, 0);
        }
    }
    atomic_store(&w->kicked, 0);
    atomic_store(&w->sleeping, 0);
}
