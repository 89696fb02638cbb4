/*
 * Counters for /metrics that cost no lock and no atomic read-modify-write on the hot path: each
 * counter has one writer (the thread that owns what it counts), which adds with a relaxed load
 * and store (a plain add on x86); the scrape reads them with relaxed loads from any thread and
 * sums over the owners. A gauge is a counter that also goes down (signed). A histogram counts
 * into fixed buckets (not cumulative here; the exposition makes them so) with a count and a sum
 * in integer units. Any thread may read; only the owner writes.
 */
#ifndef HS_UTIL_METRICS_H
#define HS_UTIL_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef _Atomic uint64_t hs_ctr_t;
typedef _Atomic int64_t hs_gauge_t;

static inline void hs_ctr_add(hs_ctr_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t hs_ctr_get(const hs_ctr_t *c)
{
    return atomic_load_explicit((hs_ctr_t *)c, memory_order_relaxed);
}

static inline void hs_gauge_add(hs_gauge_t *g, int64_t n)
{
    atomic_store_explicit(g, atomic_load_explicit(g, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline int64_t hs_gauge_get(const hs_gauge_t *g)
{
    return atomic_load_explicit((hs_gauge_t *)g, memory_order_relaxed);
}

#define HS_HIST_MAX 16

/* Bucket upper bounds in the histogram's integer unit, ascending; values above the last fall
 * into +Inf. */
typedef struct hs_hist_spec {
    const uint64_t *bounds;
    int n;
    double unit; /* what one integer unit is in the exposed unit (1e-6: microseconds, seconds) */
} hs_hist_spec_t;

typedef struct hs_hist {
    hs_ctr_t bucket[HS_HIST_MAX + 1]; /* the last: above every bound */
    hs_ctr_t count, sum;
} hs_hist_t;

static inline void hs_hist_observe(hs_hist_t *h, const hs_hist_spec_t *spec, uint64_t v)
{
    int i = 0;
    while (i < spec->n && v > spec->bounds[i])
        i++;
    hs_ctr_add(&h->bucket[i], 1);
    hs_ctr_add(&h->count, 1);
    hs_ctr_add(&h->sum, v);
}

#endif
