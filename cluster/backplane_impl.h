/*
 * The backplane's private state, shared by backplane.c (settings, thread, wake-ups) and the
 * two listeners, pg.c and redis.c. Not an interface: backplane.h is.
 */
#ifndef HS_BACKPLANE_IMPL_H
#define HS_BACKPLANE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "cluster/backplane.h"

#define BP_RETRY_FIRST_MS 100
#define BP_RETRY_MAX_MS   5000
#define BP_WARN_EVERY_US  (10 * 1000000LL)

struct hs_backplane {
    hs_bp_kind_t kind;
    const hs_logger_t *log;
    hs_writer_t *w;
    pthread_t thread;
    bool started;
    atomic_int stopping;
    atomic_int connected;
    int wake[2]; /* a byte: stop, or heads to announce */
    /* postgres */
    char conninfo[1200];
    /* redis */
    char host[256];
    int port;
    char channel[128];
    _Atomic int64_t ann_pos, ann_seq; /* the newest heads to PUBLISH */
    atomic_int ann_due;
    /* the listener's retry state */
    int backoff_ms;
    hs_log_limit_t warn; /* "backplane unavailable" (util/log.h): the listener thread's */
    unsigned failures;
};

/* backplane.c, for the listeners */
/* Waits up to ms for the wake pipe or fd (-1: none) to become readable: 1 fd readable, 0 not,
 * -1 stop asked. Drains the pipe. */
int hs_bp_wait(hs_backplane_t *b, int fd, int ms);
/* After a failed connection attempt or a lost connection: logs (the first failure of an outage,
 * then at most once per BP_WARN_EVERY_US, with the count of those dropped as "suppressed") and
 * waits the growing backoff; false when a stop was asked meanwhile. */
bool hs_bp_retry(hs_backplane_t *b, const char *what, const char *why);
/* Connected (again): resets the backoff, logs a restore, and asks the writer to read the heads
 * (notifications may have been missed while down). */
void hs_bp_up(hs_backplane_t *b, const char *what);

void *hs_bp_pg_run(void *arg);
void *hs_bp_redis_run(void *arg);

#endif
