/*
 * Concurrency Kit rings of pointers, with the hand-off made visible to ThreadSanitizer.
 *
 * ck_ring orders a slot's contents with ck_pr fences written in inline assembly, which TSan
 * cannot see; without help it reports every object passed through a ring as a data race. Each
 * wrapper pairs a release annotation on the object before the enqueue with an acquire
 * annotation after the dequeue, which is exactly the ordering ck_ring provides. Outside TSan
 * builds the wrappers are the ck calls. The ring size must be a power of two; a ring of size n
 * holds n - 1 entries.
 */
#ifndef HS_RING_H
#define HS_RING_H

#include <ck_ring.h>
#include <stdbool.h>

#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define HS_TSAN_RELEASE(p) __tsan_release(p)
#define HS_TSAN_ACQUIRE(p) __tsan_acquire(p)
#else
#define HS_TSAN_RELEASE(p) ((void)(p))
#define HS_TSAN_ACQUIRE(p) ((void)(p))
#endif

/* One producer thread, one consumer thread. */
static inline bool hs_ring_enqueue_spsc(ck_ring_t *r, ck_ring_buffer_t *b, void *p)
{
    HS_TSAN_RELEASE(p); /* pairs with HS_TSAN_ACQUIRE in hs_ring_dequeue_spsc */
    return ck_ring_enqueue_spsc(r, b, p);
}

static inline bool hs_ring_dequeue_spsc(ck_ring_t *r, ck_ring_buffer_t *b, void **p)
{
    if (!ck_ring_dequeue_spsc(r, b, p))
        return false;
    HS_TSAN_ACQUIRE(*p);
    return true;
}

/* Many producer threads, one consumer thread. */
static inline bool hs_ring_enqueue_mpsc(ck_ring_t *r, ck_ring_buffer_t *b, void *p)
{
    HS_TSAN_RELEASE(p); /* pairs with HS_TSAN_ACQUIRE in hs_ring_dequeue_mpsc */
    return ck_ring_enqueue_mpsc(r, b, p);
}

static inline bool hs_ring_dequeue_mpsc(ck_ring_t *r, ck_ring_buffer_t *b, void **p)
{
    if (!ck_ring_dequeue_mpsc(r, b, p))
        return false;
    HS_TSAN_ACQUIRE(*p);
    return true;
}

#endif
