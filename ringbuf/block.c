/* Refcounted event blocks and batches (see block.h). */
#include "ringbuf/block.h"

#include "ringbuf/budget.h"

#include <stdlib.h>
#include <string.h>

hs_block_t *hs_block_alloc(size_t extra)
{
    /* the strings are written whole by the caller: only the header is cleared */
    hs_block_t *b = malloc(sizeof(*b) + extra);
    if (b) {
        memset(b, 0, sizeof(*b));
        atomic_init(&b->refs, 1);
        b->size = (uint32_t)(sizeof(*b) + extra);
    }
    return b;
}

/* What a charged block has charged: its size and the forms installed. */
static size_t charged(const hs_block_t *b)
{
    const hs_block_mp_t *mp = atomic_load_explicit(&b->mp, memory_order_acquire);
    const hs_block_es_t *es = atomic_load_explicit(&b->es, memory_order_acquire);
    return b->size + (mp ? hs_block_mp_bytes(mp) : 0) + (es ? hs_block_es_bytes(es) : 0);
}

bool hs_block_charge(hs_block_t *b, hs_budget_t *budget)
{
    if (!hs_budget_take(budget, charged(b)))
        return false;
    b->budget = hs_budget_ref(budget);
    return true;
}

void hs_block_charge_form(hs_block_t *b, size_t n)
{
    if (b->budget)
        hs_budget_force(b->budget, n);
}

void hs_block_unref(hs_block_t *b)
{
    if (!b)
        return;
    /* acq_rel: the last owner must see every other owner's reads completed before it frees */
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
        if (b->budget) {
            hs_budget_give(b->budget, charged(b));
            hs_budget_unref(b->budget);
        }
        free(atomic_load_explicit(&b->mp, memory_order_relaxed));
        free(atomic_load_explicit(&b->es, memory_order_relaxed));
        free(b);
    }
}

hs_batch_t *hs_batch_alloc(uint32_t cap)
{
    hs_batch_t *b = malloc(sizeof(*b) + (size_t)cap * sizeof(hs_block_t *));
    if (b) {
        atomic_init(&b->refs, 1);
        b->n = 0;
    }
    return b;
}

void hs_batch_unref(hs_batch_t *b)
{
    if (!b)
        return;
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
        for (uint32_t i = 0; i < b->n; i++)
            hs_block_unref(b->blocks[i]);
        free(b);
    }
}
