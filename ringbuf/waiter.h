/*
 * A sleeping consumer thread and the producers that wake it.
 *
 * The writer, the fan-out workers and the reader threads poll their queues and, when all are
 * empty, sleep here. A producer calls hs_waiter_wake() after publishing work; it costs one atomic
 * load unless the consumer is actually asleep. Not for IO threads: those sleep in libwebsockets
 * and are woken with lws_cancel_service().
 */
#ifndef HS_WAITER_H
#define HS_WAITER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

typedef struct hs_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int sleeping;
    atomic_int kicked;
} hs_waiter_t;

int hs_waiter_init(hs_waiter_t *w);
void hs_waiter_dispose(hs_waiter_t *w);

/* Any thread, after it made work visible. */
void hs_waiter_wake(hs_waiter_t *w);

/*
 * Consumer thread. Sleeps at most timeout_ms unless has_work(ctx), evaluated after the consumer
 * declared itself asleep, finds work (so a wake-up between the check and the sleep is not lost).
 */
void hs_waiter_sleep(hs_waiter_t *w, int timeout_ms, bool (*has_work)(void *), void *ctx);

#endif
