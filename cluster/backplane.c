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
#include "util/thread.h"

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
    hs_thread_name(b->thread, "hs-backplane", -1);
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
