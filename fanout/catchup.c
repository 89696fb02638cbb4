/*
 * Fan-out workers: catch-up (see fanout.h and the cursor rule at the top of fanout.c). A
 * subscription behind the worker's head replays first from the stream's block cache (shared
 * blocks, no database), else through reads on reader threads: two in flight (one read ahead),
 * applied in issue order, each page charged to the read budget (a spent budget waits and reads
 * again). Worker thread, except run_read (a reader thread), which only fills the request.
 */
#include <stdlib.h>
#include <string.h>

#include "fanout/worker.h"
#include "hubstream/hubstream.h"
#include "ringbuf/budget.h"

/* ---- catch-up reads ---- */

static int on_record(void *ctx, const hs_record_t *rec)
{
    creq_t *r = ctx;
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 64;
        hs_block_t **p = realloc(r->blocks, nc * sizeof(*p));
        if (!p)
            return HS_ENOMEM;
        r->blocks = p;
        r->cap = nc;
    }
    hs_block_t *b = r->encode(rec);
    if (!b)
        return HS_ENOMEM;
    if (r->sub->budget && !hs_block_charge(b, r->sub->budget)) {
        /* the connection's or the server's read budget is spent: stop here, go on later */
        hs_block_unref(b);
        r->more = true;
        r->starved = true;
        return 1;
    }
    r->blocks[r->n++] = b;
    r->bytes += hs_fanout_block_size(r->sub, b);
    if (r->bytes >= r->max_bytes) {
        r->more = true;
        return 1; /* enough for the outbox's free space */
    }
    return 0;
}

/* Backward scan for a live-only start: the version before the oldest event committed after
 * the subscribe (position > live_after). */
typedef struct live_scan {
    int64_t live_after, version;
    bool older_seen;
} live_scan_t;

static int on_live_scan(void *ctx, const hs_record_t *rec)
{
    live_scan_t *ls = ctx;
    if (rec->position <= ls->live_after) {
        ls->older_seen = true;
        return 1;
    }
    ls->version = rec->version - 1;
    return 0;
}

static int run_read(hs_store_t *st, hs_read_req_t *base)
{
    creq_t *r = (creq_t *)base;
    hs_sub_t *s = r->sub;
    int rc;
    if (s->all) {
        if (r->from_head)
            r->after = s->live_after; /* positions: known without the database */
    } else {
        rc = hs_store_get_stream(st, s->stream, s->stream_len, &r->head);
        if (rc && rc != HS_ENOENT)
            return rc;
        r->found = rc == 0;
        if (r->from_head) {
            /* live only means events committed after the subscribe, whose position is above
             * s->live_after; some may already be in the database by now */
            r->after = r->found ? r->head.version : 0;
            if (r->found && r->head.position > s->live_after) {
                live_scan_t ls = {s->live_after, r->head.version, false};
                int64_t from = r->head.version + 1;
                while (!ls.older_seen && ls.version > 0) {
                    from = ls.version + 1;
                    rc = hs_store_read_stream(st, s->stream, s->stream_len, from, true, 1000,
                                              on_live_scan, &ls);
                    if (rc < 0)
                        return rc;
                    if (ls.version + 1 == from)
                        break; /* nothing older was returned */
                }
                r->after = ls.version;
            }
        }
    }
    /* live only: replay just what was committed after the subscribe and is already stored
     * (the worker may have passed those events before it registered the subscription) */
    if (r->from_head && !s->all && (!r->found || r->after >= r->head.version))
        return 0;
    rc = s->all ? hs_store_read_all(st, r->after, false, r->limit, on_record, r)
                : hs_store_read_stream(st, s->stream, s->stream_len, r->after, false, r->limit,
                                       on_record, r);
    if (rc == 1)
        rc = 0;
    if (r->n >= r->limit)
        r->more = true;
    return rc;
}

static void read_done(hs_read_req_t *base)
{
    creq_t *r = (creq_t *)base;
    worker_t *w = r->w; /* once pushed, the worker may free r */
    r->base.node.kind = HS_NODE_FANOUT_READ;
    if (hs_mpsc_push(&w->q, &r->base.node))
        hs_fw_wake(w);
}

void hs_fw_free_req(creq_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        hs_block_unref(r->blocks[i]);
    free(r->blocks);
    hs_sub_unref(r->sub);
    free(r);
}

static void end_closed(worker_t *w, hs_sub_t *s)
{
    hs_block_t *m = w->f->cfg.encode_marker(HS_BLOCK_CLOSED, s->stream, s->stream_len, s->cursor);
    hs_fw_end_sub(w, s, HS_SUB_END_CLOSED, m);
    hs_block_unref(m);
}

/*
 * Catch-up from the stream's block cache. Returns false when the cache does not hold the next
 * block the subscription needs (the database must), true when it handled the subscription:
 * live again, waiting for outbox space, or ended.
 */
static bool serve_cache(worker_t *w, hs_sub_t *s)
{
    wstream_t *st = s->w_stream;
    if (!st || !st->cache_lo || s->cursor < 0 || s->cursor + 1 < st->cache_lo ||
        s->cursor > st->head)
        return false;
    bool pushed = false;
    while (s->cursor < st->head) {
        int64_t seq = s->cursor + 1;
        hs_block_t *b = st->cache[seq & (st->cache_cap - 1)];
        if (hs_sub_wants_type(s, b->type, b->type_len)) {
            if (!hs_sub_push_spsc(s, b, hs_fanout_block_size(s, b), false)) {
                if (pushed)
                    hs_fw_mark_touched(w, s);
                atomic_store(&s->want_space, 1);
                hs_fw_stalled_add(w, s);
                if (hs_sub_free_bytes(s) >= s->max_bytes / 2) {
                    /* the IO thread drained it meanwhile: go on at the next SPACE or batch */
                    atomic_store(&s->want_space, 0);
                    hs_fw_stalled_remove(w, s);
                    hs_sub_signal_worker(s, HS_SUB_W_SPACE, &w->q);
                }
                return true;
            }
            pushed = true;
        }
        s->cursor = seq;
    }
    if (pushed)
        hs_fw_mark_touched(w, s);
    if (s->end_pending || st->closed) {
        end_closed(w, s);
    } else {
        s->mode = HS_SUB_LIVE;
        hs_ctr_add(&w->m_caught_up, 1);
    }
    return true;
}

/* Issues one catch-up read of the events after `after`, with a budget of max_bytes. */
static bool submit_read(worker_t *w, hs_sub_t *s, int64_t after, size_t max_bytes)
{
    creq_t *r = calloc(1, sizeof(*r));
    if (!r) {
        hs_fw_end_sub(w, s, HS_SUB_END_ERROR, NULL);
        return false;
    }
    r->base.run = run_read;
    r->base.done = read_done;
    r->w = w;
    r->sub = hs_sub_ref(s);
    r->encode = w->f->cfg.encode;
    r->from_head = after < 0;
    r->after = after;
    r->limit = (size_t)w->f->cfg.catchup_events;
    r->max_bytes = max_bytes;
    r->seq = s->read_seq;
    if (!hs_reader_submit(w->f->cfg.reader, &r->base)) {
        hs_fw_free_req(r);
        return false;
    }
    hs_ctr_add(&w->m_reads, 1);
    s->read_seq++;
    s->reads++;
    s->read_next = after + (int64_t)r->limit;
    return true;
}

/*
 * Starts reading from the database where the subscription stands. A stream subscription deep in
 * catch-up (its last read came back full) keeps a second read in flight, for the page after the
 * one being read, on another reader thread: one subscriber's replay is then no longer bounded by
 * one reader at a time. Pages are applied in issue order, and a prefetched page is used only if
 * the page before it ended exactly where it starts (versions are dense, so it normally does);
 * otherwise it is dropped and read again from the cursor.
 */
void hs_fw_request_read(worker_t *w, hs_sub_t *s)
{
    if (s->ended || s->reads >= 2)
        return;
    if (s->reads == 0 && serve_cache(w, s))
        return;
    size_t room = hs_sub_free_bytes(s);
    if (s->reads == 0) {
        if (room < s->max_bytes / 4) {
            hs_fw_to_catchup(w, s, true);
            return;
        }
        if (!submit_read(w, s, s->cursor, s->all ? room : room / 2))
            return;
    }
    if (!s->all && s->cursor >= 0 && s->prefetch && room >= s->max_bytes / 2)
        submit_read(w, s, s->read_next, room / 2);
}

/* Applies one completed read, in issue order. */
static void apply_read(worker_t *w, creq_t *r)
{
    hs_sub_t *s = r->sub;
    hs_ctr_add(&w->m_rows, r->n);
    if (s->ended || !s->w_stream) {
        hs_fw_free_req(r);
        return;
    }
    if (r->base.status) {
        hs_fw_end_sub(w, s, HS_SUB_END_ERROR, NULL);
        hs_fw_free_req(r);
        return;
    }
    if (!r->from_head && r->after != s->cursor) {
        /* a prefetched page that does not continue the previous one */
        s->prefetch = false;
        hs_fw_free_req(r);
        hs_fw_request_read(w, s);
        return;
    }
    if (r->from_head)
        s->cursor = r->after;
    if (r->starved && !r->n) {
        /* nothing could be charged: wait for budget (a later read starts from the cursor) */
        hs_fw_free_req(r);
        if (!s->reads)
            hs_fw_starved_add(w, s);
        return;
    }
    bool pushed = false;
    for (size_t i = 0; i < r->n; i++) {
        hs_block_t *b = r->blocks[i];
        int64_t seq = s->all ? b->position : b->version;
        if (seq <= s->cursor)
            continue;
        if (hs_sub_wants_type(s, b->type, b->type_len)) {
            hs_sub_push_spsc(s, b, hs_fanout_block_size(s, b), true);
            pushed = true;
        }
        s->cursor = seq;
    }
    /* The read returned everything after the cursor and the head was read before it: versions
     * up to the head that did not come back were dropped by retention. */
    if (!s->all && r->found && !r->more && s->cursor < r->head.version)
        s->cursor = r->head.version;
    if (pushed)
        hs_fw_mark_touched(w, s);
    wstream_t *st = s->w_stream;
    bool more = r->more;
    /* a full page of exactly `limit` versions: the next one is worth reading ahead */
    s->prefetch = more && r->n == r->limit && s->cursor == r->after + (int64_t)r->limit;
    bool closed_at_end = !s->all && r->found && r->head.closed && s->cursor >= r->head.version;
    bool starved = r->starved;
    hs_fw_free_req(r);
    if (more) {
        if (starved) {
            if (!s->reads)
                hs_fw_starved_add(w, s);
            return;
        }
        hs_fw_request_read(w, s);
        return;
    }
    if (s->reads)
        return; /* a read ahead is still out: it decides */
    if (closed_at_end || ((s->end_pending || st->closed) && s->cursor >= st->head)) {
        end_closed(w, s);
        return;
    }
    if (s->cursor >= st->head) {
        s->mode = HS_SUB_LIVE;
        hs_ctr_add(&w->m_caught_up, 1);
        return;
    }
    hs_fw_request_read(w, s);
}

void hs_fw_on_read(worker_t *w, creq_t *r)
{
    hs_sub_t *s = r->sub;
    if (r->seq != s->read_turn) {
        s->read_stash = r; /* the read issued before it is still out */
        return;
    }
    /* apply_read() frees r, and with it r's reference to s, which may be the last one (the
     * client went away while the read was out): hold s until the stash has been looked at */
    hs_sub_ref(s);
    for (;;) {
        s->reads--;
        s->read_turn++;
        apply_read(w, r);
        r = s->read_stash;
        if (!r || r->seq != s->read_turn)
            break;
        s->read_stash = NULL;
    }
    hs_sub_unref(s);
}

/* ---- entering catch-up ---- */

void hs_fw_to_catchup(worker_t *w, hs_sub_t *s, bool full)
{
    s->mode = HS_SUB_CATCHUP;
    hs_ctr_add(&w->m_demoted, 1);
    if (full) {
        atomic_store(&s->want_space, 1);
        hs_fw_stalled_add(w, s);
        /* the IO thread may have drained everything before it could see want_space */
        if (hs_sub_free_bytes(s) >= s->max_bytes / 2) {
            atomic_store(&s->want_space, 0);
            hs_fw_stalled_remove(w, s);
            hs_fw_request_read(w, s);
        }
        return;
    }
    hs_fw_request_read(w, s);
}
