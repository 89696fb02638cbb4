/*
 * The writer's feed for several nodes on one database (writer.h: `feed`).
 *
 * The database is the log. Every node's fan-out must see every committed event in position
 * order, its own and the other nodes', each once: positions are assigned under the batch lock
 * and commit in order, so "everything up to position P" is a well-defined, complete prefix once
 * P is committed. The writer keeps fed_pos / fed_seq, how far it has handed events and stream
 * operations (closes, deletes: hs_stream_ops) to the fan-out, and only ever moves them forward:
 *   - Before a batch of its own (positions from first_pos), it reads and hands over the hole
 *     (fed_pos, first_pos - 1]: what other nodes committed since. It learnt first_pos under the
 *     batch lock, so every position below it is committed and readable.
 *   - Between batches, it reads up to what other nodes announced (hs_writer_remote: a
 *     backplane's notification) or what its own reading of the heads finds (polling, and a
 *     safety read every HEALTH_MS behind a push backplane, since notifications are lossy).
 * Reads are by position range, a block at a time (hs_store_read_all), encoded once by the same
 * codec as local events, and handed over in batches of FEED_BATCH blocks, so remote events
 * reach subscribers exactly as local ones do.
 *
 * An operation logged after event P is handed over right after P. A hole bigger than HOLE_MAX
 * is not read (it would hold this node's own batch back for long): fed_pos jumps over it, and the
 * fan-out's subscribers see the gap and catch up from the database on their own, which is the
 * same path that serves a slow subscriber. A read that fails does the same.
 *
 * Also here: the retention leader (one node at a time sweeps, under a database lock held by its
 * writer connection) and pruning of the operations log.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/writer_impl.h"
#include "util/time.h"

/* Each warning here can repeat as long as its fault lasts: at most one per 10 s through its
 * limiter (util/log.h; the writer thread's). lim NULL: no limit (a one-off record). */
#define FEED_WARN_EVERY_US (10 * 1000000LL)

static void flog(hs_writer_t *w, hs_log_limit_t *lim, hs_log_level_t lvl, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void flog(hs_writer_t *w, hs_log_limit_t *lim, hs_log_level_t lvl, const char *fmt, ...)
{
    uint64_t suppressed = 0;
    if (!w->cfg.log ||
        (lim && !hs_log_limit_pass(lim, hs_mono_us(), FEED_WARN_EVERY_US, &suppressed)))
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    w->cfg.log(w->cfg.log_ctx, lvl, buf, suppressed);
}

/* ---- reading a range ---- */

typedef struct op_copy {
    int64_t seq, position, version;
    int kind;
    uint32_t len;
    char name[];
} op_copy_t;

typedef struct feed {
    hs_writer_t *w;
    int64_t upto_pos;
    op_copy_t **ops;
    size_t nops, cap, next_op;
    hs_batch_t *b;
    uint64_t events;
    int64_t last_pos; /* the last event position handed over */
    bool oom;
} feed_t;

static int keep_op(void *ctx, const hs_stream_op_t *op)
{
    feed_t *f = ctx;
    if (hs_wr_grow((void **)&f->ops, &f->cap, f->nops + 1, sizeof(op_copy_t *)))
        return HS_ENOMEM;
    op_copy_t *c = malloc(sizeof(*c) + op->name_len + 1);
    if (!c)
        return HS_ENOMEM;
    c->seq = op->seq;
    c->position = op->position;
    c->version = op->version;
    c->kind = op->kind;
    c->len = (uint32_t)op->name_len;
    memcpy(c->name, op->name, op->name_len);
    c->name[op->name_len] = '\0';
    f->ops[f->nops++] = c;
    return f->nops == FEED_OPS_MAX; /* the rest next time */
}

static void hand_over(feed_t *f)
{
    if (f->b && f->b->n)
        f->w->cfg.sink(f->w->cfg.sink_ctx, f->b);
    else
        hs_batch_unref(f->b);
    f->b = NULL;
}

/* Adds a block to the batch being built, handing it over when full. Owns blk. */
static void add_block(feed_t *f, hs_block_t *blk)
{
    if (!blk) {
        f->oom = true; /* the subscribers will see a gap and read it themselves */
        return;
    }
    if (!f->b && !(f->b = hs_batch_alloc(FEED_BATCH))) {
        hs_block_unref(blk);
        f->oom = true;
        return;
    }
    f->b->blocks[f->b->n++] = blk;
    if (f->b->n == FEED_BATCH)
        hand_over(f);
}

/* Hands over the operations logged at positions below `before`. */
static void ops_before(feed_t *f, int64_t before)
{
    while (f->next_op < f->nops && f->ops[f->next_op]->position < before) {
        op_copy_t *op = f->ops[f->next_op++];
        hs_block_kind_t kind = op->kind == HS_OP_DELETE ? HS_BLOCK_DELETED : HS_BLOCK_CLOSED;
        add_block(f, f->w->cfg.encode_marker(kind, op->name, op->len, op->version));
    }
}

static int on_event(void *ctx, const hs_record_t *rec)
{
    feed_t *f = ctx;
    if (rec->position > f->upto_pos)
        return 1; /* committed after the heads this read was asked for: next time */
    ops_before(f, rec->position);
    add_block(f, f->w->cfg.encode(rec));
    f->last_pos = rec->position;
    f->events++;
    return 0;
}

/*
 * Hands the fan-out the events in (fed_pos, upto_pos] (unless !events: then fed_pos just jumps)
 * and the operations in (fed_seq, upto_seq], in commit order. Returns 0, or a store error (what
 * was read by then has been handed over; fed_* moved past it).
 */
static int feed(hs_writer_t *w, int64_t upto_pos, int64_t upto_seq, bool events)
{
    feed_t f = {.w = w, .upto_pos = upto_pos, .last_pos = w->fed_pos};
    int rc = 0;
    if (upto_seq > w->fed_seq) {
        rc = hs_store_read_ops(w->st, w->fed_seq, upto_seq, keep_op, &f);
        if (rc == 1) {
            /* FEED_OPS_MAX of them: the rest next time, and the events only as far as these */
            rc = 0;
            if (f.ops[f.nops - 1]->position < upto_pos)
                f.upto_pos = upto_pos = f.ops[f.nops - 1]->position;
        }
    }
    if (rc == 0 && events && upto_pos > w->fed_pos) {
        rc = hs_store_read_all(w->st, w->fed_pos, false, (size_t)(upto_pos - w->fed_pos), on_event,
                               &f);
        if (rc == 1)
            rc = 0;
    }
    if (rc == 0) {
        /* the rest of the range: rows deleted since, or not read (!events). Not an operation
         * logged after upto_pos: the two heads may come from different notifications, and one
         * after events this node has not read yet waits for them. */
        ops_before(&f, upto_pos + 1);
        if (upto_pos > w->fed_pos)
            w->fed_pos = upto_pos;
    } else if (f.last_pos > w->fed_pos) {
        w->fed_pos = f.last_pos;
    }
    hand_over(&f);
    if (f.next_op)
        w->fed_seq = f.ops[f.next_op - 1]->seq;
    for (size_t i = 0; i < f.nops; i++)
        free(f.ops[i]);
    free(f.ops);
    if (f.events)
        atomic_fetch_add(&w->n_remote, f.events);
    if (f.oom)
        flog(w, &w->warn_feed_oom, HS_LOG_WARN,
             "out of memory encoding other nodes' events: subscribers read them back");
    return rc;
}

static void skipped(hs_writer_t *w, int64_t from, int64_t to, const char *why)
{
    atomic_fetch_add(&w->n_skipped, 1);
    flog(w, &w->warn_skip, HS_LOG_WARN,
         "other nodes' events %" PRId64 "..%" PRId64 " not read (%s): subscribers see the gap"
         " and catch up from the database",
         from, to, why);
}

void hs_wr_feed_hole(hs_writer_t *w, int64_t first_pos, int64_t first_seq)
{
    if (!w->cfg.feed || !w->shared)
        return;
    int64_t upto = first_pos - 1;
    if (upto <= w->fed_pos && first_seq - 1 <= w->fed_seq)
        return;
    bool events = upto - w->fed_pos <= HOLE_MAX;
    if (!events)
        skipped(w, w->fed_pos + 1, upto, "too many to read before this node's own batch");
    int rc = feed(w, upto, first_seq - 1, events);
    if (rc) {
        skipped(w, w->fed_pos + 1, upto, hs_store_error(w->st));
        w->fed_pos = upto > w->fed_pos ? upto : w->fed_pos;
        w->fed_seq = first_seq - 1 > w->fed_seq ? first_seq - 1 : w->fed_seq;
    }
}

/* ---- between batches ---- */

bool hs_wr_cluster_pending(hs_writer_t *w)
{
    if (!w->cfg.feed || !w->shared)
        return false;
    return atomic_load(&w->remote_pos) > w->fed_pos || atomic_load(&w->remote_seq) > w->fed_seq ||
           atomic_load(&w->recheck);
}

static void raise_to(_Atomic int64_t *a, int64_t v)
{
    int64_t cur = atomic_load(a);
    while (v > cur && !atomic_compare_exchange_weak(a, &cur, v))
        ;
}

/* A store call failed between batches: a failed statement (logged; the writer goes on), or a
 * lost connection: -1 with the reason in w->lost_why, for the writer's loop to close it and
 * reconnect. */
static int failed(hs_writer_t *w, const char *what)
{
    snprintf(w->lost_why, sizeof w->lost_why, "%s", hs_store_error(w->st));
    if (hs_store_ping(w->st) != 0)
        return -1;
    flog(w, &w->warn_step, HS_LOG_WARN, "%s failed: %s", what, w->lost_why);
    return 0;
}

int hs_wr_cluster_step(hs_writer_t *w, int *wait_ms)
{
    int64_t now = hs_mono_us();
    *wait_ms = 1000;
    if (!w->shared)
        return 0;
    /* one node at a time sweeps retention and prunes the operations log */
    if (!w->leader && now >= w->leader_at_us) {
        w->leader_at_us = now + (int64_t)LEADER_TRY_MS * 1000;
        int rc = hs_store_lead(w->st);
        if (rc < 0)
            return failed(w, "taking the retention lock");
        if (rc == 1) {
            w->leader = true;
            atomic_store(&w->is_leader, 1);
            flog(w, NULL, HS_LOG_INFO, "this node now runs the retention sweeps for the cluster");
        }
    }
    if (w->leader && now >= w->prune_at_us) {
        w->prune_at_us = now + (int64_t)OPS_PRUNE_MS * 1000;
        if (hs_store_prune_ops(w->st, hs_wall_us() - (int64_t)OPS_KEEP_S * 1000000))
            return failed(w, "pruning the operations log");
    }
    if (!w->cfg.feed)
        return 0;

    bool polling = w->cfg.poll_max_ms > 0;
    if (atomic_exchange(&w->recheck, 0) || now >= w->poll_at_us) {
        int64_t pos = 0, seq = 0;
        if (hs_store_heads(w->st, &pos, &seq)) {
            w->poll_at_us = now + (int64_t)HEALTH_MS * 1000;
            return failed(w, "reading the database's heads");
        }
        w->last_ok_us = now;
        bool news = pos > w->fed_pos || seq > w->fed_seq;
        raise_to(&w->remote_pos, pos);
        raise_to(&w->remote_seq, seq);
        if (polling) {
            w->poll_ms = news ? w->cfg.poll_min_ms : w->poll_ms * 2;
            if (w->poll_ms < w->cfg.poll_min_ms)
                w->poll_ms = w->cfg.poll_min_ms;
            if (w->poll_ms > w->cfg.poll_max_ms)
                w->poll_ms = w->cfg.poll_max_ms;
            w->poll_at_us = now + (int64_t)w->poll_ms * 1000;
        } else {
            w->poll_at_us = now + (int64_t)HEALTH_MS * 1000;
        }
    }
    int64_t pos = atomic_load(&w->remote_pos), seq = atomic_load(&w->remote_seq);
    bool more = false;
    if (pos > w->fed_pos || seq > w->fed_seq) {
        /* in steps, so that this node's own batches interleave with a long read */
        int64_t upto = pos - w->fed_pos > HOLE_MAX ? w->fed_pos + HOLE_MAX : pos;
        if (feed(w, upto, seq, true))
            return failed(w, "reading other nodes' events");
        w->last_ok_us = hs_mono_us();
        more = upto < pos;
        if (polling)
            w->poll_ms = w->cfg.poll_min_ms;
    }
    int64_t due = (w->poll_at_us - hs_mono_us()) / 1000;
    *wait_ms = due < 1 ? 1 : due > 1000 ? 1000 : (int)due;
    return more ? 1 : 0;
}

void hs_writer_remote(hs_writer_t *w, int64_t position, int64_t seq)
{
    raise_to(&w->remote_pos, position);
    raise_to(&w->remote_seq, seq);
    hs_waiter_wake(&w->waiter);
}

void hs_writer_recheck(hs_writer_t *w)
{
    atomic_store(&w->recheck, 1);
    hs_waiter_wake(&w->waiter);
}
