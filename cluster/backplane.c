/*
 * Backplanes (backplane.h): choosing one, its settings, the listener thread's life and the
 * retry rules both listeners follow.
 */
#define _GNU_SOURCE /* pipe2 */
#include "cluster/backplane_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "hubstream/hubstream.h"

int64_t hs_bp_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool is_pg_uri(const char *s)
{
    return !strncmp(s, "postgres://", 11) || !strncmp(s, "postgresql://", 13);
}

int hs_backplane_kind(const char *spec, hs_bp_kind_t *kind, char *err, size_t errlen)
{
    if (!spec || !*spec)
        *kind = HS_BP_AUTO;
    else if (!strcmp(spec, "none"))
        *kind = HS_BP_NONE;
    else if (!strcmp(spec, "poll"))
        *kind = HS_BP_POLL;
    else if (!strcmp(spec, "postgres") || !strcmp(spec, "postgresql") || is_pg_uri(spec))
        *kind = HS_BP_POSTGRES;
    else if (!strncmp(spec, "redis://", 8))
        *kind = HS_BP_REDIS;
    else {
        snprintf(err, errlen,
                 "--backplane '%.64s': expected none, poll, postgres, a postgres:// URI or "
                 "redis://HOST[:PORT][/CHANNEL]",
                 spec);
        return HS_EINVAL;
    }
    return 0;
}

/* redis://HOST[:PORT][/CHANNEL] (HOST may be [IPv6]) */
static int parse_redis(hs_backplane_t *b, const char *spec, char *err, size_t errlen)
{
    const char *p = spec + 8, *end;
    size_t hl;
    if (*p == '[') {
        end = strchr(p, ']');
        if (!end)
            goto bad;
        hl = (size_t)(end - p - 1);
        p++;
        end++;
    } else {
        end = p + strcspn(p, ":/");
        hl = (size_t)(end - p);
    }
    if (!hl || hl >= sizeof b->host)
        goto bad;
    memcpy(b->host, p, hl);
    b->host[hl] = '\0';
    b->port = 6379;
    if (*end == ':') {
        char *e;
        long port = strtol(end + 1, &e, 10);
        if (e == end + 1 || port < 1 || port > 65535 || (*e && *e != '/'))
            goto bad;
        b->port = (int)port;
        end = e;
    }
    snprintf(b->channel, sizeof b->channel, "hubstream");
    if (*end == '/' && end[1]) {
        size_t cl = strlen(end + 1);
        if (cl >= sizeof b->channel ||
            strspn(end + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:") !=
                cl)
            goto bad;
        memcpy(b->channel, end + 1, cl + 1);
    } else if (*end && strcmp(end, "/")) {
        goto bad;
    }
    return 0;
bad:
    snprintf(err, errlen,
             "--backplane '%.64s': expected redis://HOST[:PORT][/CHANNEL] (a channel of letters, "
             "digits and -_.: up to %zu bytes)",
             spec, sizeof b->channel - 1);
    return HS_EINVAL;
}

hs_backplane_t *hs_backplane_create(const char *spec, const char *db, const hs_logger_t *log,
                                    char *err, size_t errlen)
{
    hs_bp_kind_t kind;
    if (err && errlen)
        err[0] = '\0';
    if (hs_backplane_kind(spec, &kind, err, errlen))
        return NULL;
    if (kind != HS_BP_POSTGRES && kind != HS_BP_REDIS)
        return NULL;
    hs_backplane_t *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->kind = kind;
    b->log = log;
    b->wake[0] = b->wake[1] = -1;
    if (kind == HS_BP_REDIS) {
        if (parse_redis(b, spec, err, errlen))
            goto fail;
    } else if (is_pg_uri(spec)) {
        if (strlen(spec) >= sizeof b->conninfo - 200) {
            snprintf(err, errlen, "--backplane: the PostgreSQL URI is too long");
            goto fail;
        }
        snprintf(b->conninfo, sizeof b->conninfo, "%s", spec);
    } else if (hs_pg_conninfo(db, b->conninfo, sizeof b->conninfo, err, errlen)) {
        goto fail;
    }
    if (pipe2(b->wake, O_CLOEXEC | O_NONBLOCK)) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    return b;
fail:
    hs_backplane_destroy(b);
    return NULL;
}

static void poke(hs_backplane_t *b)
{
    char c = 1;
    ssize_t n = write(b->wake[1], &c, 1);
    (void)n; /* a full pipe already holds a wake-up */
}

void hs_backplane_announce(void *ctx, int64_t position, int64_t seq)
{
    hs_backplane_t *b = ctx;
    atomic_store(&b->ann_pos, position);
    atomic_store(&b->ann_seq, seq);
    if (!atomic_exchange(&b->ann_due, 1))
        poke(b);
}

int hs_backplane_start(hs_backplane_t *b, hs_writer_t *w)
{
    if (!b)
        return 0;
    b->w = w;
    void *(*run)(void *) = b->kind == HS_BP_POSTGRES ? hs_bp_pg_run : hs_bp_redis_run;
    if (pthread_create(&b->thread, NULL, run, b))
        return HS_ESYS;
    b->started = true;
    return 0;
}

void hs_backplane_stop(hs_backplane_t *b)
{
    if (!b || !b->started)
        return;
    atomic_store(&b->stopping, 1);
    poke(b);
    pthread_join(b->thread, NULL);
    b->started = false;
}

void hs_backplane_destroy(hs_backplane_t *b)
{
    if (!b)
        return;
    hs_backplane_stop(b);
    if (b->wake[0] >= 0) {
        close(b->wake[0]);
        close(b->wake[1]);
    }
    free(b);
}

int hs_backplane_connected(const hs_backplane_t *b)
{
    return b ? atomic_load(&b->connected) : 0;
}

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
    int64_t now = hs_bp_now_us();
    if (b->failures == 1 || now - b->last_warn_us >= BP_WARN_EVERY_US) {
        b->last_warn_us = now;
        char n[16];
        snprintf(n, sizeof n, "%u", b->failures);
        hs_log(b->log, HS_LOG_WARN,
               "backplane unavailable: other nodes' events reach this node by polling once a "
               "second until it is back",
               "backplane", what, "error", why, "attempts", n, NULL);
    }
    b->backoff_ms = b->backoff_ms ? b->backoff_ms * 2 : BP_RETRY_FIRST_MS;
    if (b->backoff_ms > BP_RETRY_MAX_MS)
        b->backoff_ms = BP_RETRY_MAX_MS;
    int64_t until = now + (int64_t)b->backoff_ms * 1000;
    while (!atomic_load(&b->stopping)) {
        int64_t left = (until - hs_bp_now_us()) / 1000;
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
