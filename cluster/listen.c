/*
 * What the two listeners (pg.c, redis.c) share: the clock, waiting on a socket or the wake pipe,
 * the retry and reconnect rules, and the notification payload. Below backplane.c, which starts
 * them; above nothing of the cluster.
 */
#include "cluster/backplane_impl.h"

#include <poll.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "hubstream/hubstream.h"
#include "util/time.h"

int hs_backplane_payload(const char *s, size_t n, int64_t *position, int64_t *seq)
{
    int64_t v[2] = {0, 0};
    size_t i = 0;
    for (int k = 0; k < 2; k++) {
        if (k) {
            if (i >= n || s[i] != ' ')
                return -1;
            i++;
        }
        size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            int d = s[i++] - '0';
            if (v[k] > (INT64_MAX - d) / 10)
                return -1;
            v[k] = v[k] * 10 + d;
        }
        if (i == start)
            return -1;
    }
    if (i != n)
        return -1;
    *position = v[0];
    *seq = v[1];
    return 0;
}

int hs_bp_wait(hs_backplane_t *b, int fd, int ms)
{
    struct pollfd p[2] = {{b->wake[0], POLLIN, 0}, {fd, POLLIN, 0}};
    int n = poll(p, fd >= 0 ? 2 : 1, ms);
    if (n > 0 && (p[0].revents & POLLIN)) {
        char buf[64];
        while (read(b->wake[0], buf, sizeof buf) > 0)
            ;
    }
    if (atomic_load(&b->stopping))
        return -1;
    return n > 0 && fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) ? 1 : 0;
}

bool hs_bp_retry(hs_backplane_t *b, const char *what, const char *why)
{
    atomic_store(&b->connected, 0);
    b->failures++;
    int64_t now = hs_mono_us();
    if (b->failures == 1)
        hs_log_limit_reset(&b->warn); /* an outage's first failure is always logged */
    char n[16];
    snprintf(n, sizeof n, "%u", b->failures);
    hs_log_limited(b->log, &b->warn, BP_WARN_EVERY_US, HS_LOG_WARN,
                   "backplane unavailable: other nodes' events reach this node by polling once a "
                   "second until it is back",
                   "backplane", what, "error", why, "attempts", n, NULL);
    b->backoff_ms = b->backoff_ms ? b->backoff_ms * 2 : BP_RETRY_FIRST_MS;
    if (b->backoff_ms > BP_RETRY_MAX_MS)
        b->backoff_ms = BP_RETRY_MAX_MS;
    int64_t until = now + (int64_t)b->backoff_ms * 1000;
    while (!atomic_load(&b->stopping)) {
        int64_t left = (until - hs_mono_us()) / 1000;
        if (left <= 0)
            return true;
        if (hs_bp_wait(b, -1, (int)left) < 0)
            return false;
    }
    return false;
}

void hs_bp_up(hs_backplane_t *b, const char *what)
{
    if (b->failures)
        hs_log(b->log, HS_LOG_INFO, "backplane connected again", "backplane", what, NULL);
    else
        hs_log(b->log, HS_LOG_INFO, "backplane connected", "backplane", what, NULL);
    b->failures = 0;
    b->backoff_ms = 0;
    atomic_store(&b->connected, 1);
    hs_writer_recheck(b->w);
}
