/*
 * The writer thread (see writer.h): group commit of ingest entries through one store connection.
 *
 * Heads cache: the writer is the only appender of its database, so it keeps each touched stream's
 * head (id, version, position, closed) in memory and reads the database only for streams it has
 * not seen. A failed transaction clears the cache, so nothing it staged survives a rollback.
 * The cache is bounded: past HEADS_MAX entries it is cleared and refilled on demand.
 *
 * Faults. When a batch fails, the writer rolls back and pings the connection. If the ping
 * works, the batch failed on its own (every entry gets HS_EDB) and the next one goes ahead. If
 * not, the connection is lost: the writer closes it, fails whatever is queued at once (HS_EDB,
 * nothing appended) and reconnects with exponential backoff (RETRY_FIRST_MS doubling up to
 * RETRY_MAX_MS), re-reading positions and heads when it is back. While idle it pings every
 * HEALTH_MS, so that /readyz notices an outage before the next publish does.
 *
 * A COMMIT that fails on a lost connection is in doubt: the database may have committed it
 * before the link broke. Its entries are neither acknowledged nor failed until the writer is
 * connected again and looks for the batch's last row (stream, event id, position): found, the
 * batch is acknowledged and fanned out as if the commit had answered; absent, it failed. If the
 * database stays away for DOUBT_MAX_MS, the entries complete with HS_EUNKNOWN (retry with the
 * same event ids: the idempotency check makes that safe).
 */
#include "storage/writer.h"
#include "storage/writer_impl.h"

#include "ringbuf/ring.h"
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringbuf/waiter.h"
#include "storage/checkpoint.h"
#include "util/time.h"
#include "util/thread.h"

__attribute__((format(printf, 4, 0))) static void
wlogv(hs_writer_t *w, uint64_t suppressed, hs_log_level_t lvl, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    w->cfg.log(w->cfg.log_ctx, lvl, buf, suppressed);
}

__attribute__((format(printf, 3, 4))) static void wlog(hs_writer_t *w, hs_log_level_t lvl,
                                                       const char *fmt, ...)
{
    if (!w->cfg.log)
        return;
    va_list ap;
    va_start(ap, fmt);
    wlogv(w, 0, lvl, fmt, ap);
    va_end(ap);
}

/* wlog() at most once per every_us through lim (util/log.h; the writer thread's limiters). */
__attribute__((format(printf, 5, 6))) static void wlog_limited(hs_writer_t *w, hs_log_limit_t *lim,
                                                               int64_t every_us, hs_log_level_t lvl,
                                                               const char *fmt, ...)
{
    uint64_t suppressed;
    if (!w->cfg.log || !hs_log_limit_pass(lim, hs_mono_us(), every_us, &suppressed))
        return;
    va_list ap;
    va_start(ap, fmt);
    wlogv(w, suppressed, lvl, fmt, ap);
    va_end(ap);
}

static void set_reason(hs_writer_t *w, const char *detail)
{
    pthread_mutex_lock(&w->reason_mu);
    snprintf(w->reason, sizeof w->reason, "database unavailable: %.*s",
             (int)(sizeof w->reason - 32), detail);
    pthread_mutex_unlock(&w->reason_mu);
}

static void fail_all(hs_writer_t *w, size_t n, int status)
{
    for (size_t i = 0; i < n; i++)
        w->batch[i]->status = status;
    atomic_fetch_add(&w->n_failed, 1);
    hs_wr_finish(w, n);
}

/* The connection is gone: close it and schedule the first reconnect at once. */
static void connection_lost(hs_writer_t *w, const char *why)
{
    wlog(w, HS_LOG_ERROR, "database connection lost (%s); reconnecting", why);
    set_reason(w, why);
    atomic_store(&w->db_ok, 0);
    hs_store_close(w->st);
    w->st = NULL;
    hs_wr_heads_clear(w);
    /* a session lock goes with its connection */
    w->leader = !w->shared;
    atomic_store(&w->is_leader, w->leader);
    int64_t now = hs_mono_us();
    w->down_since_us = now;
    hs_log_limit_reset(&w->warn_down); /* this outage's first failed attempt is logged */
    w->retry_at_us = now;
    w->backoff_ms = 0;
    w->attempts = 0;
}

/* Reads back what a new connection needs: the schema (migrated if it has to be) and the next
 * position. */
static int load_state(hs_writer_t *w, hs_store_t *st, char *err, size_t errlen)
{
    if (hs_store_migrate(st)) {
        snprintf(err, errlen, "schema migration failed: %s", hs_store_error(st));
        return HS_EDB;
    }
    if (hs_store_fill_folds(st)) {
        snprintf(err, errlen, "schema migration (stream folds) failed: %s", hs_store_error(st));
        return HS_EDB;
    }
    int64_t pos = 0, seq = 0;
    if (hs_store_heads(st, &pos, &seq)) {
        snprintf(err, errlen, "reading the last position failed: %s", hs_store_error(st));
        return HS_EDB;
    }
    w->next_position = pos + 1;
    w->next_seq = seq + 1;
    atomic_store(&w->last_position, pos);
    return 0;
}

/* The checkpointer is behind (checkpoint.h): a checkpoint here, between two batches, at once
 * and then every HS_CKPT_OWN_EVERY batches until one has copied the whole log (after the next
 * batch again when the thread's own checkpoint was running). */
static void own_checkpoint(hs_writer_t *w)
{
    if (!w->ckpt || !w->st || !hs_ckpt_behind(w->ckpt)) {
        w->ckpt_batches = 0;
        return;
    }
    if (w->ckpt_batches && ++w->ckpt_batches < HS_CKPT_OWN_EVERY)
        return;
    int64_t log = 0, copied = 0;
    int rc = hs_store_checkpoint(w->st, &log, &copied);
    w->ckpt_batches = rc == HS_EBUSY ? 0 : 1;
    if (rc == 0) {
        hs_ckpt_writer_did(w->ckpt, log, copied);
        atomic_fetch_add(&w->own_ckpts, 1);
    } else if (rc != HS_EBUSY)
        /* the connection may be left in autocommit: a batch on it would not be atomic */
        connection_lost(w, hs_store_error(w->st));
}

/* One reconnect attempt when it is due; true when connected. */
static bool reconnect(hs_writer_t *w)
{
    int64_t now = hs_mono_us();
    if (now < w->retry_at_us)
        return false;
    char err[512];
    w->attempts++;
    hs_store_t *st = hs_store_open(w->cfg.db, err, sizeof err);
    /* with a checkpointer, a new connection leaves checkpoints to it (checkpoint.h) */
    if (st && w->ckpt && hs_store_defer_checkpoints(st)) {
        snprintf(err, sizeof err, "turning off automatic checkpoints failed: %s",
                 hs_store_error(st));
        hs_store_close(st);
        st = NULL;
    }
    if (st && load_state(w, st, err, sizeof err) == 0) {
        w->st = st;
        w->last_ok_us = now;
        hs_wr_heads_clear(w);
        w->es_rows = -1;
        atomic_store(&w->db_ok, 1);
        hs_ctr_add(&w->m_reconnects, 1);
        wlog(w, HS_LOG_INFO, "database connection restored after %lld ms (%u attempts)",
             (long long)((now - w->down_since_us) / 1000), w->attempts);
        return true;
    }
    hs_store_close(st);
    set_reason(w, err);
    w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : RETRY_FIRST_MS;
    if (w->backoff_ms > RETRY_MAX_MS)
        w->backoff_ms = RETRY_MAX_MS;
    w->retry_at_us = now + (int64_t)w->backoff_ms * 1000;
    /* the first failure and then one line every 10 s, not one per attempt */
    wlog_limited(w, &w->warn_down, 10 * 1000000LL, HS_LOG_WARN,
                 "database still unavailable after %u attempts: %s", w->attempts, err);
    return false;
}

/* After a commit: hand the batch to fan-out (after what other nodes committed before it,
 * feed.c), then acknowledge it. Fan-out first: the IO threads that deliver it are woken before
 * the publishers' ones, which on a small machine would otherwise preempt the writer to send
 * the acknowledgements (measured: the one subscriber's delivery came up to 0.2 ms later). */
static void committed(hs_writer_t *w, size_t n, int64_t first_pos, int64_t next_pos,
                      int64_t first_seq, int64_t next_seq)
{
    hs_batch_t *b = hs_wr_encode_batch(w, n, (size_t)(next_pos - first_pos));
    if (w->ckpt)
        hs_ckpt_committed(w->ckpt);
    atomic_fetch_add(&w->n_batches, 1);
    atomic_fetch_add(&w->n_events, (uint64_t)(next_pos - first_pos));
    if (next_pos - 1 > atomic_load(&w->last_position))
        atomic_store(&w->last_position, next_pos - 1);
    hs_wr_feed_hole(w, first_pos, first_seq);
    if (b && b->n)
        w->cfg.sink(w->cfg.sink_ctx, b);
    else
        hs_batch_unref(b);
    hs_wr_finish(w, n);
    if (next_pos - 1 > w->fed_pos)
        w->fed_pos = next_pos - 1;
    if (next_seq - 1 > w->fed_seq)
        w->fed_seq = next_seq - 1;
    if (w->cfg.announce && (next_pos > first_pos || next_seq > first_seq))
        w->cfg.announce(w->cfg.announce_ctx, next_pos - 1, next_seq - 1);
}

/* Connected again with a batch in doubt: did its COMMIT take effect? */
static void resolve_doubt(hs_writer_t *w)
{
    const hs_row_t *r = &w->doubt_row;
    int64_t v = 0, p = 0;
    int rc = hs_store_find_event(w->st, r->stream_id, r->event_id, r->event_id_len, &v, &p);
    if (rc != 0 && rc != HS_ENOENT) {
        connection_lost(w, hs_store_error(w->st));
        return;
    }
    w->doubt = false;
    if (rc == 0 && v == r->version && p == r->position) {
        wlog(w, HS_LOG_WARN, "a commit in doubt took effect: %zu entries acknowledged", w->doubt_n);
        committed(w, w->doubt_n, w->doubt_first_pos, w->doubt_next_pos, w->doubt_first_seq,
                  w->doubt_next_seq);
    } else {
        wlog(w, HS_LOG_WARN, "a commit in doubt did not take effect: %zu entries failed",
             w->doubt_n);
        fail_all(w, w->doubt_n, HS_EDB);
    }
}

static void give_up_doubt(hs_writer_t *w)
{
    wlog(w, HS_LOG_ERROR,
         "a commit in doubt could not be checked (the database is still unavailable):"
         " %zu entries have an unknown outcome",
         w->doubt_n);
    w->doubt = false;
    fail_all(w, w->doubt_n, HS_EUNKNOWN);
}

/* While the database is unreachable: everything queued fails at once, nothing is appended. */
static void reject_waiting(hs_writer_t *w)
{
    void *p;
    for (int r = 0; r <= w->nrings; r++) {
        while (r < w->nrings ? hs_ring_dequeue_spsc(&w->rings[r].r, w->rings[r].buf, &p)
                             : hs_ring_dequeue_mpsc(&w->rings[r].r, w->rings[r].buf, &p)) {
            hs_ingest_t *e = p;
            e->status = HS_EDB;
            e->appended = false;
            e->done(e);
        }
    }
}

static const uint64_t batch_bounds[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000};
const hs_hist_spec_t hs_writer_batch_spec = {batch_bounds, 12, 1.0};
static const uint64_t commit_bounds[] = {100,   250,   500,   1000,   2500,   5000,
                                         10000, 25000, 50000, 100000, 250000, 1000000};
const hs_hist_spec_t hs_writer_commit_spec = {commit_bounds, 12, 1e-6};

static void process(hs_writer_t *w, size_t n)
{
    int64_t ts = hs_wall_us(), started_us = hs_mono_us();
    size_t nrows = 0;
    bool have_row = false;
    hs_row_t last_row = {0};
    int rc = hs_store_begin(w->st);
    bool at_commit = false;
    w->nseen = 0;
    w->dirty = NULL;
    if (rc == 0 && w->shared) {
        /* other servers may have appended since our last batch: under the batch lock, start
         * from the database's heads, not from the cache */
        int64_t pos = 0, seq = 0;
        hs_wr_heads_clear(w);
        rc = hs_store_heads(w->st, &pos, &seq);
        if (rc == 0) {
            w->next_position = pos + 1;
            w->next_seq = seq + 1;
        }
    }
    if (rc == 0 && w->shared)
        rc = hs_wr_es_batch_start(w);
    int64_t first_pos = w->next_position, first_seq = w->next_seq;

    /* the copies owed to linked streams join the batch as entries of their own */
    w->nbatch = n;
    for (size_t i = 0; i < w->nbatch && rc == 0; i++) {
        hs_ingest_t *e = w->batch[i];
        e->status = 0;
        e->appended = false;
        e->time_us = ts;
        if (e->kind == HS_INGEST_APPEND) {
            int64_t pos_before = w->next_position;
            rc = e->fold ? hs_wr_es_fold(w, e) : 0;
            if (rc == 0)
                rc = hs_wr_stage_append(w, e, ts, &nrows);
            e->appended = rc == 0 && e->status == 0 && w->next_position > pos_before;
            if (e->appended)
                rc = hs_wr_es_copies(w, e);
        } else if (e->kind >= HS_INGEST_ES_SUBSCRIBE) {
            rc = hs_wr_stage_es(w, e, ts, &nrows);
        } else {
            rc = hs_wr_stage_close_delete(w, e, ts, &nrows);
            /* a delete may remove the row that would prove the commit */
            if (e->kind == HS_INGEST_DELETE)
                have_row = false;
        }
        if (rc == 0 && nrows > 0) {
            last_row = w->rows[nrows - 1];
            have_row = true;
        }
        if (rc == 0 && nrows >= 4096) {
            rc = hs_wr_flush_rows(w, &nrows);
            nrows = 0;
        }
    }
    n = w->nbatch;
    if (rc == 0)
        rc = hs_wr_flush_rows(w, &nrows);
    for (head_t *h = w->dirty; h && rc == 0; h = h->dirty_next)
        rc = hs_store_update_stream(w->st, &h->h);
    if (rc == 0 && w->cfg.notify && w->shared &&
        (w->next_position > first_pos || w->next_seq > first_seq)) {
        /* the other nodes hear of it when, and only if, this commits */
        char heads[48];
        int len = snprintf(heads, sizeof heads, "%lld %lld", (long long)(w->next_position - 1),
                           (long long)(w->next_seq - 1));
        rc = hs_store_notify(w->st, heads, (size_t)len);
    }
    if (rc == 0) {
        at_commit = true;
        rc = hs_store_commit(w->st);
    }

    if (rc) {
        char why[REASON_MAX];
        snprintf(why, sizeof why, "%s", hs_store_error(w->st));
        /* a fault that fails every batch (the connection still answering) logs once per 10 s */
        wlog_limited(w, &w->warn_batch, 10 * 1000000LL, HS_LOG_ERROR,
                     "batch of %zu entries failed: %s", n, why);
        hs_store_rollback(w->st);
        int64_t next_pos = w->next_position;
        hs_wr_heads_clear(w);
        w->links_loaded = false; /* links added in the batch are gone */
        w->es_rows = -1;         /* and its subscriber rows: count again */
        if (hs_store_ping(w->st) == 0) {
            /* the connection works: this batch failed on its own */
            int64_t pos = 0;
            if (hs_store_max_position(w->st, &pos) == 0)
                w->next_position = pos + 1;
            w->last_ok_us = hs_mono_us();
            fail_all(w, n, HS_EDB);
            return;
        }
        connection_lost(w, why);
        if (at_commit && have_row) {
            /* entries stay pending until the writer can look */
            w->doubt = true;
            w->doubt_n = n;
            w->doubt_row = last_row;
            w->doubt_first_pos = first_pos;
            w->doubt_next_pos = next_pos;
            w->doubt_first_seq = first_seq;
            w->doubt_next_seq = w->next_seq;
            w->doubt_until_us = hs_mono_us() + (int64_t)DOUBT_MAX_MS * 1000;
            return;
        }
        fail_all(w, n, at_commit ? HS_EUNKNOWN : HS_EDB);
        return;
    }
    w->last_ok_us = hs_mono_us();
    hs_hist_observe(&w->m_batch, &hs_writer_batch_spec, (uint64_t)(w->next_position - first_pos));
    hs_hist_observe(&w->m_commit, &hs_writer_commit_spec, (uint64_t)(w->last_ok_us - started_us));
    for (head_t *h = w->dirty; h; h = h->dirty_next) {
        h->dirty = false;
        h->is_new = false;
    }
    w->dirty = NULL;
    committed(w, n, first_pos, w->next_position, first_seq, w->next_seq);
    if (w->nheads > HEADS_MAX)
        hs_wr_heads_clear(w);
}

/* Takes waiting entries from every ring, up to batch_max events. */
static size_t collect(hs_writer_t *w)
{
    size_t n = 0, events = 0;
    bool more = true;
    while (more && events < (size_t)w->cfg.batch_max) {
        more = false;
        for (int r = 0; r <= w->nrings && events < (size_t)w->cfg.batch_max; r++) {
            void *p;
            bool ok = r < w->nrings ? hs_ring_dequeue_spsc(&w->rings[r].r, w->rings[r].buf, &p)
                                    : hs_ring_dequeue_mpsc(&w->rings[r].r, w->rings[r].buf, &p);
            if (!ok)
                continue;
            more = true;
            if (hs_wr_grow((void **)&w->batch, &w->batch_cap, n + 1, sizeof(hs_ingest_t *))) {
                /* cannot even track it: fail it now rather than lose it */
                hs_ingest_t *e = p;
                e->status = HS_ENOMEM;
                e->done(e);
                continue;
            }
            hs_ingest_t *e = p;
            w->batch[n++] = e;
            events += e->nevents ? e->nevents : 1;
        }
    }
    return n;
}

static bool has_work(void *ctx)
{
    hs_writer_t *w = ctx;
    for (int r = 0; r <= w->nrings; r++)
        if (ck_ring_size(&w->rings[r].r))
            return true;
    return atomic_load(&w->stopping) != 0 || hs_wr_cluster_pending(w);
}

/* One step of the retention sweep; true when more is due at once. */
static bool retention_step(hs_writer_t *w)
{
    if (!w->cfg.retention || !w->st || !w->leader)
        return false;
    uint64_t deleted = 0;
    int rc = hs_retention_step(w->cfg.retention, w->st, hs_wall_us(), hs_mono_us(), &deleted);
    if (deleted)
        atomic_fetch_add(&w->n_trimmed, deleted);
    if (rc >= 0) {
        w->last_ok_us = hs_mono_us();
        return rc == 1;
    }
    char why[REASON_MAX];
    snprintf(why, sizeof why, "%s", hs_store_error(w->st));
    if (hs_store_ping(w->st) != 0) {
        connection_lost(w, why);
        return false;
    }
    wlog_limited(w, &w->warn_trim, 60 * 1000000LL, HS_LOG_WARN,
                 "retention sweep failed (retried in a second): %s", why);
    return false;
}

/* The loop while the database is unreachable: reject, retry, settle a batch in doubt. Returns
 * false when the thread should end. */
static bool run_down(hs_writer_t *w)
{
    bool stopping = atomic_load(&w->stopping) != 0;
    if (reconnect(w)) {
        if (w->doubt)
            resolve_doubt(w);
        return true;
    }
    if (w->doubt && (stopping || hs_mono_us() >= w->doubt_until_us))
        give_up_doubt(w);
    reject_waiting(w);
    if (stopping)
        return false;
    int64_t wait_ms = (w->retry_at_us - hs_mono_us()) / 1000;
    hs_waiter_sleep(&w->waiter, wait_ms < 1 ? 1 : wait_ms > 200 ? 200 : (int)wait_ms, has_work, w);
    return true;
}

static void *run(void *arg)
{
    hs_writer_t *w = arg;
    for (;;) {
        if (!w->st) {
            if (!run_down(w))
                break;
            continue;
        }
        size_t n = collect(w);
        if (n) {
            process(w, n);
            own_checkpoint(w);
            /* retention between batches: one bounded step each, so appends go first; and
             * what is due for the cluster (a node that is never idle must still read what
             * others announce after its last batch, and still stand for leader) */
            retention_step(w);
            int unused;
            if (w->st && hs_wr_cluster_step(w, &unused) < 0)
                connection_lost(w, w->lost_why);
            continue;
        }
        if (atomic_load(&w->stopping)) {
            /* stop only once nothing is left: entries submitted before stop are committed */
            if (!has_work(w) || (n = collect(w)) == 0)
                break;
            process(w, n);
            continue;
        }
        if (retention_step(w))
            continue;
        int wait_ms = 200, rc = hs_wr_cluster_step(w, &wait_ms);
        if (rc < 0)
            connection_lost(w, w->lost_why);
        if (rc)
            continue;
        if (hs_mono_us() - w->last_ok_us >= (int64_t)HEALTH_MS * 1000) {
            if (hs_store_ping(w->st) == 0)
                w->last_ok_us = hs_mono_us();
            else
                connection_lost(w, hs_store_error(w->st));
            continue;
        }
        hs_waiter_sleep(&w->waiter, wait_ms < 200 ? wait_ms : 200, has_work, w);
    }
    return NULL;
}

static void ckpt_log(void *ctx, hs_log_level_t level, const char *msg, uint64_t suppressed)
{
    hs_writer_t *w = ctx;
    if (w->cfg.log)
        w->cfg.log(w->cfg.log_ctx, level, msg, suppressed);
}

hs_writer_t *hs_writer_create(const hs_writer_config_t *cfg, char *err, size_t errlen)
{
    hs_writer_t *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->cfg = *cfg;
    w->es_rows = -1;
    if (w->cfg.batch_max <= 0)
        w->cfg.batch_max = 4096;
    if (w->cfg.ring_size <= 0)
        w->cfg.ring_size = 4096;
    w->nrings = cfg->nrings;
    w->nbuckets = 4096;
    pthread_mutex_init(&w->reason_mu, NULL);
    w->heads = calloc(w->nbuckets, sizeof(head_t *));
    w->rings = calloc((size_t)w->nrings + 1, sizeof(ring_t));
    if (!w->heads || !w->rings)
        goto nomem;
    for (int r = 0; r <= w->nrings; r++) {
        unsigned size = r < w->nrings ? (unsigned)w->cfg.ring_size : MPSC_RING;
        w->rings[r].buf = calloc(size, sizeof(ck_ring_buffer_t));
        if (!w->rings[r].buf)
            goto nomem;
        ck_ring_init(&w->rings[r].r, size);
    }
    if (hs_waiter_init(&w->waiter))
        goto nomem;
    w->st = hs_store_open(cfg->db, err, errlen);
    if (!w->st)
        goto fail;
    if (load_state(w, w->st, err, errlen))
        goto fail;
    w->shared = hs_store_shared(w->st);
    w->dialect = hs_store_dialect(w->st);
    w->leader = !w->shared;
    atomic_store(&w->is_leader, w->leader);
    /* the fan-out starts at the database's heads: subscribers read what is older */
    w->fed_pos = w->next_position - 1;
    w->fed_seq = w->next_seq - 1;
    w->poll_ms = w->cfg.poll_min_ms;
    w->last_ok_us = hs_mono_us();
    /* SQLite: checkpoints on a thread of their own (checkpoint.h) */
    if (hs_store_can_checkpoint(w->st)) {
        if (hs_store_defer_checkpoints(w->st)) {
            snprintf(err, errlen, "turning off automatic checkpoints failed: %s",
                     hs_store_error(w->st));
            goto fail;
        }
        if (!(w->ckpt = hs_ckpt_start(w->cfg.db, ckpt_log, w, err, errlen)))
            goto fail;
    }
    atomic_store(&w->db_ok, 1);
    return w;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    hs_writer_destroy(w);
    return NULL;
}

void hs_writer_set_sink_ctx(hs_writer_t *w, void *ctx)
{
    w->cfg.sink_ctx = ctx;
}

int hs_writer_start(hs_writer_t *w)
{
    if (pthread_create(&w->thread, NULL, run, w))
        return HS_ESYS;
    hs_thread_name(w->thread, "hs-writer", -1);
    w->started = true;
    return 0;
}

/* Completes entries still queued after the thread ended with HS_EUNAVAIL (complete = true), or
 * frees them when nobody is left to tell. */
static void drain_rings(hs_writer_t *w, bool complete)
{
    void *p;
    for (int r = 0; r <= w->nrings; r++) {
        while (r < w->nrings ? hs_ring_dequeue_spsc(&w->rings[r].r, w->rings[r].buf, &p)
                             : hs_ring_dequeue_mpsc(&w->rings[r].r, w->rings[r].buf, &p)) {
            hs_ingest_t *e = p;
            e->status = HS_EUNAVAIL;
            if (complete)
                e->done(e);
            else
                hs_ingest_free(e);
        }
    }
}

void hs_writer_stop(hs_writer_t *w)
{
    if (!w->started)
        return;
    atomic_store(&w->stopping, 1);
    hs_waiter_wake(&w->waiter);
    pthread_join(w->thread, NULL);
    w->started = false;
    drain_rings(w, true);
    /* the checkpointer stays until hs_writer_destroy(): /metrics (hs_writer_stats) may still
     * read it from an IO thread while the server stops */
}

void hs_writer_destroy(hs_writer_t *w)
{
    if (!w)
        return;
    hs_writer_stop(w);
    hs_ckpt_stop(w->ckpt); /* a last pass, then its connection closes */
    w->ckpt = NULL;
    if (w->rings && w->rings[w->nrings].buf)
        drain_rings(w, false);
    if (w->heads) {
        hs_wr_heads_clear(w);
        free(w->heads);
    }
    hs_wr_es_free(w);
    if (w->rings) {
        for (int r = 0; r <= w->nrings; r++)
            free(w->rings[r].buf);
        free(w->rings);
        hs_waiter_dispose(&w->waiter);
    }
    if (w->st)
        hs_store_close(w->st);
    free(w->batch);
    free(w->rows);
    free(w->seen);
    pthread_mutex_destroy(&w->reason_mu);
    free(w);
}

bool hs_writer_submit_spsc(hs_writer_t *w, int ring, hs_ingest_t *e)
{
    if (atomic_load_explicit(&w->stopping, memory_order_relaxed))
        return false;
    if (!hs_ring_enqueue_spsc(&w->rings[ring].r, w->rings[ring].buf, e))
        return false;
    hs_waiter_wake(&w->waiter);
    return true;
}

bool hs_writer_submit_mpsc(hs_writer_t *w, hs_ingest_t *e)
{
    if (atomic_load(&w->stopping))
        return false;
    ring_t *r = &w->rings[w->nrings];
    bool ok = hs_ring_enqueue_mpsc(&r->r, r->buf, e);
    if (ok)
        hs_waiter_wake(&w->waiter);
    return ok;
}

void hs_writer_stats(hs_writer_t *w, hs_writer_stats_t *out)
{
    out->batches = atomic_load(&w->n_batches);
    out->events = atomic_load(&w->n_events);
    out->failed_batches = atomic_load(&w->n_failed);
    out->trimmed = atomic_load(&w->n_trimmed);
    out->last_position = atomic_load(&w->last_position);
    out->db_ok = atomic_load(&w->db_ok) != 0;
    out->remote_events = atomic_load(&w->n_remote);
    out->holes_skipped = atomic_load(&w->n_skipped);
    out->leader = atomic_load(&w->is_leader) != 0;
    out->checkpoints = w->ckpt ? hs_ckpt_count(w->ckpt) : 0;
    out->own_checkpoints = atomic_load(&w->own_ckpts);
}

void hs_writer_hold_checkpointer(hs_writer_t *w, bool hold)
{
    if (w->ckpt)
        hs_ckpt_hold(w->ckpt, hold);
}

bool hs_writer_shared(const hs_writer_t *w)
{
    return w->shared;
}

const char *hs_writer_dialect(const hs_writer_t *w)
{
    return w->dialect;
}

void hs_writer_metrics(hs_writer_t *w, hs_writer_metrics_t *out)
{
    out->batch_events = &w->m_batch;
    out->commit_us = &w->m_commit;
    out->reconnects = hs_ctr_get(&w->m_reconnects);
    out->ring_used = out->ring_cap = 0;
    for (int r = 0; r <= w->nrings; r++) {
        out->ring_used += ck_ring_size(&w->rings[r].r);
        out->ring_cap += ck_ring_capacity(&w->rings[r].r);
    }
}

bool hs_writer_ready(hs_writer_t *w, char *why, size_t len)
{
    if (atomic_load(&w->db_ok))
        return true;
    pthread_mutex_lock(&w->reason_mu);
    snprintf(why, len, "%s", w->reason[0] ? w->reason : "database unavailable");
    pthread_mutex_unlock(&w->reason_mu);
    return false;
}
