/*
 * Intrusive MPSC queue (see mpsc.h). Producers CAS onto a LIFO head; the consumer exchanges the
 * head for NULL and reverses the chain it got, which restores push order.
 */
#include "ringbuf/mpsc.h"

bool hs_mpsc_push(hs_mpsc_t *q, hs_mpsc_node_t *node)
{
    hs_mpsc_node_t *old = atomic_load_explicit(&q->head, memory_order_relaxed);
    do {
        node->next = old;
        /* release: the node's contents are visible to the consumer's acquire exchange below */
    } while (!atomic_compare_exchange_weak_explicit(&q->head, &old, node, memory_order_release,
                                                    memory_order_relaxed));
    return old == NULL;
}

hs_mpsc_node_t *hs_mpsc_take_all(hs_mpsc_t *q)
{
    /* acquire: pairs with the release CAS of hs_mpsc_push */
    hs_mpsc_node_t *n = atomic_exchange_explicit(&q->head, NULL, memory_order_acquire);
    hs_mpsc_node_t *rev = NULL;
    while (n) {
        hs_mpsc_node_t *next = n->next;
        n->next = rev;
        rev = n;
        n = next;
    }
    return rev;
}
