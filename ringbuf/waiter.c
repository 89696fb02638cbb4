/*
 * Sleep/wake for consumer threads (see waiter.h).
 *
 * The protocol: the consumer sets `sleeping` and then re-checks its queues; a producer publishes
 * work and then reads `sleeping`. Both sides use sequentially consistent operations, so at least
 * one of them sees the other: either the consumer finds the work or the producer signals.
 */
#include "ringbuf/waiter.h"

#include <errno.h>
#include <time.h>

int hs_waiter_init(hs_waiter_t *w)
{
    pthread_condattr_t ca;
    if (pthread_mutex_init(&w->mu, NULL))
        return -1;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_cond_init(&w->cv, &ca)) {
        pthread_condattr_destroy(&ca);
        pthread_mutex_destroy(&w->mu);
        return -1;
    }
    pthread_condattr_destroy(&ca);
    atomic_init(&w->sleeping, 0);
    atomic_init(&w->kicked, 0);
    return 0;
}

void hs_waiter_dispose(hs_waiter_t *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

void hs_waiter_wake(hs_waiter_t *w)
{
    /* seq_cst: pairs with the seq_cst store of `sleeping` in hs_waiter_sleep */
    if (!atomic_load(&w->sleeping))
        return;
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->kicked, 1);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void hs_waiter_sleep(hs_waiter_t *w, int timeout_ms, bool (*has_work)(void *), void *ctx)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->sleeping, 1); /* seq_cst: pairs with the load in hs_waiter_wake */
    if (!has_work || !has_work(ctx)) {
        while (!atomic_load(&w->kicked)) {
            if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
                break;
        }
    }
    atomic_store(&w->kicked, 0);
    atomic_store(&w->sleeping, 0);
    pthread_mutex_unlock(&w->mu);
}
