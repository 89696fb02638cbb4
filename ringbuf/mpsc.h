/*
 * Intrusive multi-producer, single-consumer queue.
 *
 * Producers on any thread push nodes embedded in their own objects (no allocation); the one
 * consumer takes everything at once and gets it back in push order. It is how other threads talk
 * to a thread that owns data: the IO threads' inboxes, the fan-out workers' command queues, the
 * reader threads' request queues. It is not bounded by itself: each user bounds what it pushes
 * (an object is in at most one queue at a time).
 *
 * Lock-free: push is a CAS loop on the head, take is one atomic exchange, so there is no ABA
 * hazard (nodes never leave the queue one at a time).
 */
#ifndef HS_MPSC_H
#define HS_MPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * Every kind of node that travels on an MPSC queue, in one place: the consumer dispatches on it.
 * Transports (server/net/net.h) number their own messages from HS_NODE_TRANSPORT up.
 */
enum hs_node_kind {
    HS_NODE_SUB_IO = 1,      /* a subscription's signals to the IO thread that owns it */
    HS_NODE_SUB_WORKER = 2,  /* a subscription's commands to its fan-out worker */
    HS_NODE_FANOUT_READ = 3, /* a catch-up read, back to its fan-out worker */
    HS_NODE_FD = 4,          /* an accepted socket, handed to an IO thread */
    HS_NODE_TLS_RELOAD = 5,  /* an IO thread is to load the TLS certificate again */
    HS_NODE_IO_PRESTOP = 6,  /* an IO thread is to settle what it owes before the writer stops */
    HS_NODE_FANOUT_PAGE = 7, /* a shared catch-up page's read, back to its fan-out worker */
    HS_NODE_TRANSPORT = 64,  /* and up: HS_NODE_T(transport id, message) */
};

typedef struct hs_mpsc_node {
    struct hs_mpsc_node *next;
    int kind; /* what object embeds this node; the consumer dispatches on it */
} hs_mpsc_node_t;

typedef struct hs_mpsc {
    _Atomic(hs_mpsc_node_t *) head;
} hs_mpsc_t;

static inline void hs_mpsc_init(hs_mpsc_t *q)
{
    atomic_init(&q->head, NULL);
}

/* Any thread. Returns true when the queue was empty, i.e. when the consumer may be asleep and
 * the caller should wake it (one wake-up per burst, not per node). */
bool hs_mpsc_push(hs_mpsc_t *q, hs_mpsc_node_t *node);

/* Consumer thread only. Takes every queued node and returns them as a NULL-terminated list in
 * push order (NULL when empty). */
hs_mpsc_node_t *hs_mpsc_take_all(hs_mpsc_t *q);

static inline bool hs_mpsc_empty(hs_mpsc_t *q)
{
    return atomic_load_explicit(&q->head, memory_order_acquire) == NULL;
}

#define hs_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
