/*
 * Fan-out workers: catch-up (see fanout.h and the cursor rule at the top of fanout.c). A
 * subscription behind the worker's head replays first from the stream's block cache (recent
 * live blocks, no database), else from shared pages: one database read on a reader thread
 * serves every subscription of the worker whose cursor falls inside what it returned, so a
 * thousand subscribers replaying the same history cost one read and one encoding per page, not
 * a thousand. A subscription that needs a page joins the read already out for it, takes a page
 * the worker kept, or issues the read; a page in use asks for the one after it ahead of time
 * (on the other reader thread), which keeps one subscriber's replay from waiting on each read
 * in turn. Pages are charged to the server's read budget (a spent budget waits and reads again)
 * and kept within PAGES_WORKER_BYTES and PAGE_IDLE_MS. A live-only subscription's first read
 * (it starts at the head, which only the database knows) is its own. Worker thread, except
 * run_read and run_page (a reader thread), which only fill their request.
 */
#include <stdlib.h>
#include <string.h>

#include "fanout/worker.h"
#include "hubstream/hubstream.h"
#include "ringbuf/budget.h"

static void end_closed(worker_t *w, hs_sub_t *s)
{
    hs_block_t *m = w->f->cfg.encode_marker(HS_BLOCK_CLOSED, s->stream, s->stream_len, s->cursor);
    hs_fw_end_sub(w, s, HS_SUB_END_CLOSED, m);
    hs_block_unref(m);
}

/* A catch-up step queued nothing more and the subscription stands at its cursor: once nothing
 * is left that the worker has delivered live, it is live again (or ends at the stream's close).
 * Returns false when it must read on. */
static bool settle(worker_t *w, hs_sub_t *s, bool closed_at_end)
{
    wstream_t *st = s->w_stream;
    if (closed_at_end || ((s->end_pending || st->closed) && s->cursor >= st->head)) {
        end_closed(w, s);
        return true;
    }
    if (s->cursor >= st->head) {
        s->mode = HS_SUB_LIVE;
        hs_ctr_add(&w->m_caught_up, 1);
        return true;
    }
    return false;
}

/* How much of its outbox a catching-up subscription keeps queued: enough to keep its socket
 * busy between two turns, far less than the bound, so that many subscribers replaying at once
 * hold little beside the shared pages (their outboxes hold references, by the slot). */
static size_t catchup_fill(const hs_sub_t *s)
{
    return s->max_bytes < CATCHUP_FILL ? s->max_bytes : CATCHUP_FILL;
}

/* Catch-up queued what it may: wait for the SPACE signal at half of it (stalled meanwhile, so
 * a client that reads nothing is timed out), unless the IO thread drained it already. */
static void wait_for_space(worker_t *w, hs_sub_t *s)
{
    hs_sub_want_space(s, catchup_fill(s) / 2);
    hs_fw_stalled_add(w, s);
    if (hs_sub_space_due(s)) {
        /* the IO thread drained it meanwhile: go on at the next SPACE or batch */
        hs_fw_stalled_remove(w, s);
        hs_sub_signal_worker(s, HS_SUB_W_SPACE, &w->q);
    }
}

/* Whether catch-up may queue a block of `bytes` more to s now. */
static bool fill_room(hs_sub_t *s, size_t bytes)
{
    return hs_sub_queued_bytes(s) + bytes <= catchup_fill(s);
}

/* ---- a subscription's own read: the head of a live-only subscription ---- */

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

/* Reads at most limit events after `after` of a stream or of $all into cb; 0 or an error (a
 * callback that stopped the read early is not one). */
static int read_after(hs_store_t *st, bool all, const char *name, size_t len, int64_t after,
                      size_t limit, hs_record_cb cb, void *ctx)
{
    int rc = all ? hs_store_read_all(st, after, false, limit, cb, ctx)
                 : hs_store_read_stream(st, name, len, after, false, limit, cb, ctx);
    return rc == 1 ? 0 : rc;
}

/* A read came back (reader thread): onto its worker's queue as a node of `kind`. */
static void hand_back(worker_t *w, hs_read_req_t *base, int kind)
{
    base->node.kind = kind; /* once pushed, the worker may free base: w was read before */
    if (hs_mpsc_push(&w->q, &base->node))
        hs_fw_wake(w);
}

static int run_read(hs_store_t *st, hs_read_req_t *base)
{
    creq_t *r = (creq_t *)base;
    hs_sub_t *s = r->sub;
    int rc;
    if (s->all) {
        r->after = s->live_after; /* positions: known without the database */
    } else {
        rc = hs_store_get_stream(st, s->stream, s->stream_len, &r->head);
        if (rc && rc != HS_ENOENT)
            return rc;
        r->found = rc == 0;
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
    /* replay just what was committed after the subscribe and is already stored (the worker may
     * have passed those events before it registered the subscription) */
    if (!s->all && (!r->found || r->after >= r->head.version))
        return 0;
    rc = read_after(st, s->all, s->stream, s->stream_len, r->after, r->limit, on_record, r);
    if (r->n >= r->limit)
        r->more = true;
    return rc;
}

static void read_done(hs_read_req_t *base)
{
    hand_back(((creq_t *)base)->w, base, HS_NODE_FANOUT_READ);
}

void hs_fw_free_req(creq_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        hs_block_unref(r->blocks[i]);
    free(r->blocks);
    hs_sub_unref(r->sub);
    free(r);
}

/* Reads where a live-only subscription starts, and what was committed after its subscribe
 * that is already stored. */
static void submit_head_read(worker_t *w, hs_sub_t *s)
{
    creq_t *r = calloc(1, sizeof(*r));
    if (!r) {
        hs_fw_end_sub(w, s, HS_SUB_END_ERROR, NULL);
        return;
    }
    r->base.run = run_read;
    r->base.done = read_done;
    r->w = w;
    r->sub = hs_sub_ref(s);
    r->encode = w->f->cfg.encode;
    r->from_head = true;
    r->after = -1;
    r->limit = (size_t)w->f->cfg.catchup_events;
    r->max_bytes = catchup_fill(s);
    r->base.owner = (uint64_t)(uintptr_t)w; /* the worker's catch-up reads take one turn */
    if (!hs_reader_submit(w->f->cfg.reader, &r->base)) {
        hs_fw_free_req(r);
        hs_fw_end_sub(w, s, HS_SUB_END_ERROR, NULL);
        return;
    }
    hs_ctr_add(&w->m_reads, 1);
    s->reading = true;
}

void hs_fw_on_read(worker_t *w, creq_t *r)
{
    hs_sub_t *s = r->sub;
    s->reading = false;
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
    s->cursor = r->after;
    if (r->starved && !r->n) {
        hs_fw_free_req(r); /* nothing could be charged: wait for budget (read from the cursor) */
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
            hs_sub_push_spsc(s, b, hs_fanout_block_size(s, b), true); /* sized to the room */
            pushed = true;
        }
        s->cursor = seq;
    }
    if (pushed)
        hs_fw_mark_touched(w, s);
    bool more = r->more, starved = r->starved;
    bool closed_at_end = !s->all && r->found && r->head.closed && s->cursor >= r->head.version;
    hs_fw_free_req(r);
    if (more && starved)
        hs_fw_starved_add(w, s);
    else if (more || !settle(w, s, closed_at_end))
        hs_fw_request_read(w, s);
}

/* ---- shared pages ---- */

static int on_page_record(void *ctx, const hs_record_t *rec)
{
    cpage_t *p = ctx;
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 128;
        hs_block_t **a = realloc(p->blocks, nc * sizeof(*a));
        if (!a)
            return HS_ENOMEM;
        p->blocks = a;
        p->cap = nc;
    }
    hs_block_t *b = p->encode(rec);
    if (!b)
        return HS_ENOMEM;
    if (p->prepare_mp)
        p->prepare_mp(b); /* before the charge, which covers it too */
    if (p->budget && !hs_block_charge(b, p->budget)) {
        /* the server's read budget is spent: stop here, go on later */
        hs_block_unref(b);
        p->more = true;
        p->starved = true;
        return 1;
    }
    p->blocks[p->n++] = b;
    p->last = p->all ? b->position : b->version;
    p->bytes += b->size;
    if (p->bytes >= p->max_bytes) {
        p->more = true;
        return 1;
    }
    return 0;
}

static int run_page(hs_store_t *store, hs_read_req_t *base)
{
    cpage_t *p = (cpage_t *)base;
    int rc;
    if (!p->all) {
        /* the head first: what the read does not return up to it was dropped by retention */
        rc = hs_store_get_stream(store, p->name, p->name_len, &p->head);
        if (rc == HS_ENOENT)
            return 0;
        if (rc)
            return rc;
        p->found = true;
    }
    rc = read_after(store, p->all, p->name, p->name_len, p->after, p->limit, on_page_record, p);
    if (p->n >= p->limit)
        p->more = true;
    return rc;
}

static void page_done(hs_read_req_t *base)
{
    hand_back(((cpage_t *)base)->w, base, HS_NODE_FANOUT_PAGE);
}

/* Issues the read of a page of st after `after`. NULL when it cannot (memory, reader stopped,
 * too many of the stream's page reads already out). */
static cpage_t *submit_page(worker_t *w, wstream_t *st, int64_t after, bool mp)
{
    if (st->pages_inflight >= PAGES_INFLIGHT_MAX)
        return NULL;
    cpage_t *p = calloc(1, sizeof(*p) + st->len + 1);
    if (!p)
        return NULL;
    hs_fanout_t *f = w->f;
    p->base.run = run_page;
    p->base.done = page_done;
    p->w = w;
    p->st = st;
    p->encode = f->cfg.encode;
    p->prepare_mp = mp ? f->cfg.prepare_mp : NULL;
    p->budget = f->cfg.read_budget ? hs_budget_ref(f->cfg.read_budget) : NULL;
    p->after = p->last = after;
    p->limit = (size_t)f->cfg.catchup_events;
    p->max_bytes = PAGE_BYTES;
    p->all = st->len == 4 && memcmp(st->name, "$all", 4) == 0;
    p->inflight = true;
    p->name_len = st->len;
    memcpy(p->name, st->name, st->len);
    p->base.owner = (uint64_t)(uintptr_t)w;
    if (!hs_reader_submit(f->cfg.reader, &p->base)) {
        hs_fw_page_free(p);
        return NULL;
    }
    p->next = st->pages;
    st->pages = p;
    st->pages_inflight++;
    hs_ctr_add(&w->m_reads, 1);
    return p;
}

/* The page that holds the block after `cursor`: a kept one that goes furthest, else one being
 * read from at most `cursor` that may reach it. NULL when none. */
static cpage_t *find_page(wstream_t *st, int64_t cursor)
{
    cpage_t *kept = NULL, *out = NULL;
    for (cpage_t *p = st->pages; p; p = p->next) {
        if (p->after > cursor)
            continue;
        if (!p->inflight && cursor < p->last && (!kept || p->last > kept->last))
            kept = p;
        else if (p->inflight && cursor < p->after + (int64_t)p->limit &&
                 (!out || p->after > out->after))
            out = p;
    }
    return kept ? kept : out;
}

/* A kept page in use: in front of the LRU list, used now. */
static void lru_touch(worker_t *w, cpage_t *p)
{
    hs_fw_lru_unlink(w, p);
    hs_fw_lru_push(w, p);
}

/* The first block of p after cursor (p->n when none): blocks are in sequence order. */
static size_t page_index(const cpage_t *p, int64_t cursor)
{
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const hs_block_t *b = p->blocks[mid];
        if ((p->all ? b->position : b->version) <= cursor)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Queues to s what page p holds after its cursor, as far as its outbox takes, then goes on:
 * waits for space, reads on, or settles (live, or the close). */
static void serve_page(worker_t *w, hs_sub_t *s, cpage_t *p)
{
    wstream_t *st = s->w_stream;
    if (p->more && !p->starved && !p->ahead && p->st) {
        /* read the pages after it ahead, while this one is being queued and sent: the next one,
         * and when this one was full by count, the one after that where versions (positions)
         * being dense puts it (should it not, it is still a true page of what follows its
         * start, merely one nobody reaches) */
        p->ahead = true;
        int64_t at = p->last;
        for (int k = 0; k < PAGES_AHEAD && (k == 0 || p->n == p->limit); k++) {
            if (!find_page(st, at) && !submit_page(w, st, at, p->prepare_mp != NULL))
                break;
            at += (int64_t)p->limit;
        }
    }
    bool pushed = false;
    for (size_t i = page_index(p, s->cursor); i < p->n; i++) {
        hs_block_t *b = p->blocks[i];
        int64_t seq = p->all ? b->position : b->version;
        if (hs_sub_wants_type(s, b->type, b->type_len)) {
            size_t sz = hs_fanout_block_size(s, b);
            if ((pushed && !fill_room(s, sz)) || !hs_sub_push_spsc(s, b, sz, false)) {
                if (pushed)
                    hs_fw_mark_touched(w, s);
                wait_for_space(w, s);
                return;
            }
            pushed = true;
        }
        s->cursor = seq;
    }
    if (pushed)
        hs_fw_mark_touched(w, s);
    if (p->more) {
        if (p->starved)
            hs_fw_starved_add(w, s); /* the retry reads on from the cursor */
        else
            hs_fw_request_read(w, s);
        return;
    }
    /* the page held everything stored after p->after when it was read: versions up to the head
     * read before it that did not come back were dropped by retention */
    if (!s->all && p->found && s->cursor < p->head.version)
        s->cursor = p->head.version;
    bool closed_at_end = !s->all && p->found && p->head.closed && s->cursor >= p->head.version;
    if (!settle(w, s, closed_at_end))
        hs_fw_request_read(w, s); /* the stream has grown since the page was read */
}

void hs_fw_on_page(worker_t *w, cpage_t *p)
{
    p->inflight = false;
    hs_ctr_add(&w->m_rows, p->n);
    wstream_t *st = p->st;
    if (st)
        st->pages_inflight--;
    bool keep = st && !p->base.status && p->n;
    if (keep) {
        hs_fw_lru_push(w, p);
        w->page_bytes += p->bytes;
    } else if (st) {
        hs_fw_page_unlink(st, p);
        p->st = NULL;
    }
    bool p_starved = p->starved; /* p may be gone by the end (freed, or dropped with st) */
    hs_sub_t *list = p->waiters;
    p->waiters = NULL;
    for (hs_sub_t *s = list, *next; s; s = next) {
        next = s->pg_next;
        s->pg_next = NULL;
        s->reading = false;
        if (s->ended || !s->w_stream) {
            /* it left while the read was out */
        } else if (p->base.status) {
            hs_fw_end_sub(w, s, HS_SUB_END_ERROR, NULL);
        } else if (p->starved && !p->n) {
            hs_fw_starved_add(w, s); /* nothing could be charged: wait for budget */
        } else {
            serve_page(w, s, p);
        }
        hs_sub_unref(s); /* the page's */
    }
    if (!keep)
        hs_fw_page_free(p);
    int64_t now = hs_fw_now_ms();
    if (p_starved)
        hs_fw_pages_yield(w, now, NULL);
    hs_fw_pages_trim(w, now);
}

void hs_fw_drop_page_read(cpage_t *p)
{
    if (p->st) {
        hs_fw_page_unlink(p->st, p);
        p->st->pages_inflight--;
        p->st = NULL;
    }
    for (hs_sub_t *s = p->waiters, *next; s; s = next) {
        next = s->pg_next;
        s->pg_next = NULL;
        hs_sub_unref(s);
    }
    p->waiters = NULL;
    hs_fw_page_free(p);
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
            size_t sz = hs_fanout_block_size(s, b);
            if ((pushed && !fill_room(s, sz)) || !hs_sub_push_spsc(s, b, sz, false)) {
                if (pushed)
                    hs_fw_mark_touched(w, s);
                wait_for_space(w, s);
                return true;
            }
            pushed = true;
        }
        s->cursor = seq;
    }
    if (pushed)
        hs_fw_mark_touched(w, s);
    settle(w, s, false);
    return true;
}

/*
 * Goes on with s's catch-up from its cursor: the block cache, else a kept page, else the page
 * being read (it waits for it), else a new page read.
 */
void hs_fw_request_read(worker_t *w, hs_sub_t *s)
{
    if (s->ended || s->reading)
        return;
    if (serve_cache(w, s))
        return;
    if (s->cursor < 0) {
        submit_head_read(w, s);
        return;
    }
    if (!fill_room(s, catchup_fill(s) / 2)) {
        wait_for_space(w, s); /* it holds enough to send for now */
        return;
    }
    wstream_t *st = s->w_stream;
    cpage_t *p = find_page(st, s->cursor);
    if (p && !p->inflight) {
        hs_ctr_add(&w->m_page_hits, 1);
        lru_touch(w, p);
        serve_page(w, s, p);
        return;
    }
    if (p)
        hs_ctr_add(&w->m_page_hits, 1);
    else if (!(p = submit_page(w, st, s->cursor, s->mp))) {
        if (st->pages_inflight)
            hs_fw_starved_add(w, s); /* reads of other pages are out: try again shortly */
        else
            hs_fw_end_sub(w, s, HS_SUB_END_ERROR, NULL);
        return;
    }
    s->reading = true;
    s->pg_next = p->waiters;
    p->waiters = hs_sub_ref(s);
}

/* ---- entering catch-up ---- */

void hs_fw_to_catchup(worker_t *w, hs_sub_t *s, bool full)
{
    s->mode = HS_SUB_CATCHUP;
    hs_ctr_add(&w->m_demoted, 1);
    if (full) {
        hs_sub_want_space(s, s->max_bytes / 2);
        hs_fw_stalled_add(w, s);
        /* the IO thread may have drained everything before it could see the want */
        if (hs_sub_space_due(s)) {
            hs_fw_stalled_remove(w, s);
            hs_fw_request_read(w, s);
        }
        return;
    }
    hs_fw_request_read(w, s);
}
