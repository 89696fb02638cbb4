/*
 * The WAL checkpointer (see checkpoint.h), and the store's two statements for it (store.h).
 */
#include "storage/checkpoint.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "ringbuf/waiter.h"
#include "storage/odbc.h"
#include "storage/store.h"
#include "storage/store_impl.h"
#include "util/time.h"
#include "util/thread.h"

/* ---- the store's statements (store.h) ---- */

bool hs_store_can_checkpoint(const hs_store_t *st)
{
    return st->d->checkpoint_sql && st->d->no_autocheckpoint_sql;
}

/* A statement that cannot run inside a transaction (a checkpoint), in autocommit mode. */
static int outside_txn(hs_store_t *st, const char *sql, const char *what, int64_t *out, int n)
{
    if (st->in_txn)
        return hs_st_fail(st, HS_EINVAL, "%s inside a transaction", what);
    if (!hs_store_can_checkpoint(st))
        return hs_st_fail(st, HS_EINVAL, "the %s dialect has no WAL checkpoints", st->d->name);
    int rc = hs_odbc_auto_commit(&st->db);
    if (!rc)
        rc = n ? hs_odbc_direct_ints(&st->db, sql, what, out, n)
               : hs_odbc_direct(&st->db, sql, what);
    int back = hs_odbc_manual_commit(&st->db);
    return rc ? rc : back;
}

int hs_store_defer_checkpoints(hs_store_t *st)
{
    return outside_txn(st, st->d->no_autocheckpoint_sql, "turning off automatic checkpoints", NULL,
                       0);
}

int hs_store_checkpoint(hs_store_t *st, int64_t *log_frames, int64_t *copied_frames)
{
    int64_t r[3] = {0, 0, 0}; /* busy, frames in the log, frames copied */
    int rc = outside_txn(st, st->d->checkpoint_sql, "WAL checkpoint", r, 3);
    *log_frames = r[1];
    *copied_frames = r[2];
    return rc ? rc : r[0] ? HS_EBUSY : 0;
}

/* ---- the thread ---- */

struct hs_ckpt {
    char *db;
    hs_store_t *st; /* the thread's; NULL after a failure, until the next attempt */
    hs_ckpt_log_fn log;
    void *log_ctx;
    pthread_t thread;
    hs_waiter_t waiter;
    atomic_bool stopping;
    atomic_bool behind;
    atomic_bool held;             /* tests */
    atomic_uint_fast64_t commits; /* the writer's, so far */
    atomic_uint_fast64_t seen;    /* commits covered by the last checkpoint begun */
    atomic_uint_fast64_t done;
    hs_log_limit_t warn;
};

__attribute__((format(printf, 3, 4))) static void ckpt_warn(hs_ckpt_t *c, hs_log_level_t lvl,
                                                            const char *fmt, ...)
{
    uint64_t suppressed = 0;
    if (!c->log || (lvl >= HS_LOG_WARN &&
                    !hs_log_limit_pass(&c->warn, hs_mono_us(), 10 * 1000000LL, &suppressed)))
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    c->log(c->log_ctx, lvl, buf, suppressed);
}

static bool has_work(void *ctx)
{
    hs_ckpt_t *c = ctx;
    return atomic_load(&c->stopping) ||
           atomic_load(&c->commits) - atomic_load(&c->seen) >= HS_CKPT_EVERY;
}

static void checkpoint(hs_ckpt_t *c, uint64_t upto)
{
    char err[256] = "";
    if (!c->st && !(c->st = hs_store_open(c->db, err, sizeof err))) {
        atomic_store(&c->behind, true);
        ckpt_warn(c, HS_LOG_WARN, "WAL checkpointer: cannot connect (the writer checkpoints): %s",
                  err);
        return;
    }
    atomic_store(&c->seen, upto);
    int64_t log = 0, copied = 0;
    int rc = hs_store_checkpoint(c->st, &log, &copied);
    if (rc == HS_EBUSY)
        return; /* the writer's own was running: nothing learnt */
    if (rc) {
        atomic_store(&c->behind, true);
        ckpt_warn(c, HS_LOG_WARN, "WAL checkpoint failed (the writer checkpoints): %s",
                  hs_store_error(c->st));
        hs_store_close(c->st);
        c->st = NULL;
        return;
    }
    atomic_fetch_add(&c->done, 1);
    /* the log starts over only at a commit that finds all of it copied: a long log is one
     * that commits kept from starting over, however much of it this checkpoint copied */
    atomic_store(&c->behind, log > HS_CKPT_BEHIND_FRAMES);
}

static void *run(void *arg)
{
    hs_ckpt_t *c = arg;
    hs_odbc_fault_exempt(); /* a test's fault sweep counts the writer's calls, not these */
    for (;;) {
        hs_waiter_sleep(&c->waiter, HS_CKPT_IDLE_MS, has_work, c);
        bool stopping = atomic_load(&c->stopping);
        /* also when the writer counted no commit: its connection writes outside the batches
         * too (retention sweeps, the cluster's log, /eventstreamhub's subscribers). With
         * nothing new in the log a checkpoint copies and syncs nothing. */
        if (!atomic_load(&c->held))
            checkpoint(c, atomic_load(&c->commits));
        if (stopping)
            break;
    }
    return NULL;
}

hs_ckpt_t *hs_ckpt_start(const char *db, hs_ckpt_log_fn log, void *log_ctx, char *err,
                         size_t errlen)
{
    err[0] = '\0';
    hs_ckpt_t *c = calloc(1, sizeof(*c));
    if (!c || !(c->db = strdup(db)) || hs_waiter_init(&c->waiter)) {
        snprintf(err, errlen, "out of memory");
        if (c)
            free(c->db);
        free(c);
        return NULL;
    }
    c->log = log;
    c->log_ctx = log_ctx;
    if (pthread_create(&c->thread, NULL, run, c)) {
        snprintf(err, errlen, "cannot start a thread");
        hs_waiter_dispose(&c->waiter);
        free(c->db);
        free(c);
        return NULL;
    }
    hs_thread_name(c->thread, "hs-checkpoint", -1);
    return c;
}

void hs_ckpt_committed(hs_ckpt_t *c)
{
    uint64_t n = atomic_fetch_add(&c->commits, 1) + 1;
    if (n - atomic_load(&c->seen) >= HS_CKPT_EVERY)
        hs_waiter_wake(&c->waiter);
}

bool hs_ckpt_behind(hs_ckpt_t *c)
{
    /* or the thread has not begun a pass for three of its intervals (starved of CPU, or stuck
     * in one): the log is then not starting over either */
    return atomic_load(&c->behind) ||
           atomic_load(&c->commits) - atomic_load(&c->seen) >= 3 * HS_CKPT_EVERY;
}

void hs_ckpt_writer_did(hs_ckpt_t *c, int64_t log_frames, int64_t copied_frames)
{
    if (log_frames >= 0 && copied_frames >= log_frames)
        atomic_store(&c->behind, false);
}

void hs_ckpt_hold(hs_ckpt_t *c, bool hold)
{
    atomic_store(&c->held, hold);
}

uint64_t hs_ckpt_count(hs_ckpt_t *c)
{
    return atomic_load(&c->done);
}

void hs_ckpt_stop(hs_ckpt_t *c)
{
    if (!c)
        return;
    atomic_store(&c->stopping, true);
    hs_waiter_wake(&c->waiter);
    pthread_join(c->thread, NULL);
    hs_store_close(c->st);
    hs_waiter_dispose(&c->waiter);
    free(c->db);
    free(c);
}
