/* Byte budgets (see budget.h). */
#include "ringbuf/budget.h"

#include <stdlib.h>

struct hs_budget {
    _Atomic size_t used;
    size_t cap;
    hs_budget_t *parent;
    atomic_uint refs;
};

hs_budget_t *hs_budget_create(size_t cap, hs_budget_t *parent)
{
    hs_budget_t *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->cap = cap;
    b->parent = parent ? hs_budget_ref(parent) : NULL;
    atomic_init(&b->refs, 1);
    atomic_init(&b->used, 0);
    return b;
}

hs_budget_t *hs_budget_ref(hs_budget_t *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void hs_budget_unref(hs_budget_t *b)
{
    /* acq_rel: the last owner sees every other owner's use done before it frees */
    if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    hs_budget_unref(b->parent);
    free(b);
}

/* Charges one level: a compare-and-swap loop, so concurrent takers never overshoot the cap. */
static bool take_one(hs_budget_t *b, size_t n)
{
    size_t cur = atomic_load_explicit(&b->used, memory_order_relaxed);
    do {
        if (n > b->cap || cur > b->cap - n)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&b->used, &cur, cur + n, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

bool hs_budget_take(hs_budget_t *b, size_t n)
{
    for (hs_budget_t *p = b; p; p = p->parent) {
        if (!take_one(p, n)) {
            for (hs_budget_t *q = b; q != p; q = q->parent)
                atomic_fetch_sub_explicit(&q->used, n, memory_order_relaxed);
            return false;
        }
    }
    return true;
}

void hs_budget_force(hs_budget_t *b, size_t n)
{
    for (hs_budget_t *p = b; p; p = p->parent)
        atomic_fetch_add_explicit(&p->used, n, memory_order_relaxed);
}

void hs_budget_give(hs_budget_t *b, size_t n)
{
    for (hs_budget_t *p = b; p; p = p->parent)
        atomic_fetch_sub_explicit(&p->used, n, memory_order_relaxed);
}

size_t hs_budget_used(const hs_budget_t *b)
{
    return atomic_load_explicit(&b->used, memory_order_relaxed);
}

size_t hs_budget_cap(const hs_budget_t *b)
{
    return b->cap;
}
