/*
 * A token bucket: at most `per_s` takes per second on average, bursts of up to `per_s`. Not
 * thread-safe: one owner (a connection's IO thread). No I/O.
 */
#ifndef HS_UTIL_RATE_H
#define HS_UTIL_RATE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct hs_rate {
    double tokens;
    int64_t last_ms; /* 0: never taken (a full bucket) */
} hs_rate_t;

/* Takes one token at now_ms (a monotonic clock): false when the bucket is empty. per_s <= 0:
 * no limit. */
static inline bool hs_rate_take(hs_rate_t *r, int per_s, int64_t now_ms)
{
    if (per_s <= 0)
        return true;
    if (!r->last_ms) {
        r->tokens = per_s;
    } else if (now_ms > r->last_ms) {
        r->tokens += (double)(now_ms - r->last_ms) * per_s / 1000.0;
        if (r->tokens > per_s)
            r->tokens = per_s;
    }
    r->last_ms = now_ms;
    if (r->tokens < 1.0)
        return false;
    r->tokens -= 1.0;
    return true;
}

#endif
