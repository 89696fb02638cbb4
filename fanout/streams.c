/*
 * Fan-out workers: a worker's streams and the bookkeeping of their subscriptions (see
 * worker.h): the stream table and each stream's block cache, the stalled, starved and touched
 * lists, waking IO threads, ending a subscription. Worker thread. Called by fanout.c (the
 * worker's loop and live delivery) and catchup.c (catch-up); calls neither.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fanout/fanout.h"
#include "fanout/worker.h"
#include "hubstream/hubstream.h"
#include "ringbuf/budget.h"

int64_t hs_fw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t hs_fanout_block_size(const hs_sub_t *s, const hs_block_t *b)
{
    /* what the subscriber's front end writes for it: the SSE block and its id line, or a
     * SignalR record (EventRecord plus framing; MessagePack is about as long as JSON) */
    return s->fmt == HS_SUB_FMT_RECORD ? b->json_len + 96 : b->sse_len + 24;
}

wstream_t *hs_fw_st_find(worker_t *w, const char *name, size_t len, uint32_t hash)
{
    for (wstream_t *s = w->buckets[hash % NBUCKETS]; s; s = s->next)
        if (s->hash == hash && s->len == len && memcmp(s->name, name, len) == 0)
            return s;
    return NULL;
}

wstream_t *hs_fw_st_get(worker_t *w, const char *name, size_t len, uint32_t hash)
{
    wstream_t *s = hs_fw_st_find(w, name, len, hash);
    if (s)
        return s;
    s = calloc(1, sizeof(*s) + len + 1);
    if (!s)
        return NULL;
    memcpy(s->name, name, len);
    s->len = (uint32_t)len;
    s->hash = hash;
    pthread_mutex_lock(&w->mu);
    s->next = w->buckets[hash % NBUCKETS];
    w->buckets[hash % NBUCKETS] = s;
    pthread_mutex_unlock(&w->mu);
    return s;
}

void hs_fw_cache_reset(worker_t *w, wstream_t *st)
{
    if (!st->cache || !st->cache_lo)
        return;
    for (int64_t q = st->cache_lo; q <= st->head; q++) {
        hs_block_t **slot = &st->cache[q & (st->cache_cap - 1)];
        hs_block_unref(*slot);
        *slot = NULL;
    }
    w->cache_bytes -= st->cache_bytes;
    st->cache_bytes = 0;
    st->cache_lo = 0;
}

static size_t cache_size(const hs_block_t *b)
{
    return b->size;
}

/* Records block b with sequence seq; st->head is still the previous sequence. */
void hs_fw_cache_add(worker_t *w, wstream_t *st, hs_block_t *b, int64_t seq)
{
    if (st->cache_lo && seq != st->head + 1)
        hs_fw_cache_reset(w, st); /* not contiguous (a new incarnation of the stream) */
    if (!st->cache) {
        if (!(st->cache = calloc(CACHE_SLOTS_MIN, sizeof(hs_block_t *))))
            return;
        st->cache_cap = CACHE_SLOTS_MIN;
    }
    if (st->cache_lo && seq - st->cache_lo + 1 > st->cache_cap && st->cache_cap < CACHE_SLOTS_MAX) {
        /* grow: a stream with subscribers that lag keeps more of its recent past */
        uint32_t nc = st->cache_cap * 2;
        hs_block_t **n = calloc(nc, sizeof(hs_block_t *));
        if (n) {
            for (int64_t q = st->cache_lo; q <= st->head; q++)
                n[q & (nc - 1)] = st->cache[q & (st->cache_cap - 1)];
            free(st->cache);
            st->cache = n;
            st->cache_cap = nc;
        }
    }
    size_t sz = cache_size(b);
    if (w->cache_bytes + sz > CACHE_WORKER_BYTES) {
        hs_fw_cache_reset(w, st); /* over the worker's budget: this stream goes uncached for now */
        return;
    }
    if (!st->cache_lo)
        st->cache_lo = seq;
    /* evict the oldest while the new one would not fit (slot or bytes); seq itself stays */
    while (st->cache_lo < seq &&
           (seq - st->cache_lo + 1 > st->cache_cap || st->cache_bytes + sz > CACHE_STREAM_BYTES)) {
        hs_block_t **slot = &st->cache[st->cache_lo & (st->cache_cap - 1)];
        size_t osz = cache_size(*slot);
        st->cache_bytes -= osz;
        w->cache_bytes -= osz;
        hs_block_unref(*slot);
        *slot = NULL;
        st->cache_lo++;
    }
    st->cache[seq & (st->cache_cap - 1)] = hs_block_ref(b);
    st->cache_bytes += sz;
    w->cache_bytes += sz;
}

/* ---- shared catch-up pages (catchup.c reads and serves them) ---- */

void hs_fw_page_free(cpage_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        hs_block_unref(p->blocks[i]);
    free(p->blocks);
    if (p->budget)
        hs_budget_unref(p->budget);
    free(p);
}

void hs_fw_page_unlink(wstream_t *st, cpage_t *p)
{
    cpage_t **pp = &st->pages;
    while (*pp && *pp != p)
        pp = &(*pp)->next;
    if (*pp)
        *pp = p->next;
    p->next = NULL;
}

void hs_fw_lru_unlink(worker_t *w, cpage_t *p)
{
    if (p->lru_prev)
        p->lru_prev->lru_next = p->lru_next;
    else
        w->lru_head = p->lru_next;
    if (p->lru_next)
        p->lru_next->lru_prev = p->lru_prev;
    else
        w->lru_tail = p->lru_prev;
    p->lru_prev = p->lru_next = NULL;
}

void hs_fw_lru_push(worker_t *w, cpage_t *p)
{
    p->used_ms = hs_fw_now_ms();
    p->lru_prev = NULL;
    p->lru_next = w->lru_head;
    if (w->lru_head)
        w->lru_head->lru_prev = p;
    else
        w->lru_tail = p;
    w->lru_head = p;
}

void hs_fw_page_evict(worker_t *w, cpage_t *p)
{
    if (p->st)
        hs_fw_page_unlink(p->st, p);
    hs_fw_lru_unlink(w, p);
    w->page_bytes -= p->bytes;
    hs_fw_page_free(p);
}

void hs_fw_pages_drop(worker_t *w, wstream_t *st)
{
    while (st->pages) {
        cpage_t *p = st->pages;
        if (p->inflight) {
            st->pages = p->next; /* it frees itself when its read comes back */
            p->next = NULL;
            p->st = NULL;
            st->pages_inflight--;
        } else {
            hs_fw_page_evict(w, p);
        }
    }
}

void hs_fw_pages_yield(worker_t *w, int64_t now_ms, const cpage_t *keep)
{
    for (cpage_t *p = w->lru_tail, *prev; p; p = prev) {
        prev = p->lru_prev;
        if (p != keep && now_ms - p->used_ms > PAGE_BUSY_MS)
            hs_fw_page_evict(w, p);
    }
}

void hs_fw_pages_trim(worker_t *w, int64_t now_ms)
{
    while (w->lru_tail &&
           (w->page_bytes > PAGES_WORKER_BYTES || now_ms - w->lru_tail->used_ms >= PAGE_IDLE_MS))
        hs_fw_page_evict(w, w->lru_tail);
}

static void st_drop_if_empty(worker_t *w, wstream_t *s)
{
    if (s->nsubs)
        return;
    hs_fw_pages_drop(w, s);
    hs_fw_cache_reset(w, s);
    free(s->cache);
    pthread_mutex_lock(&w->mu);
    wstream_t **pp = &w->buckets[s->hash % NBUCKETS];
    while (*pp != s)
        pp = &(*pp)->next;
    *pp = s->next;
    pthread_mutex_unlock(&w->mu);
    free(s);
}

/* ---- subscription bookkeeping (worker thread) ---- */

void hs_fw_stalled_remove(worker_t *w, hs_sub_t *s)
{
    if (!s->stalled_since_ms)
        return;
    if (s->st_prev)
        s->st_prev->st_next = s->st_next;
    else
        w->stalled = s->st_next;
    if (s->st_next)
        s->st_next->st_prev = s->st_prev;
    s->st_prev = s->st_next = NULL;
    s->stalled_since_ms = 0;
}

static void starved_remove(worker_t *w, hs_sub_t *s);

void hs_fw_stalled_add(worker_t *w, hs_sub_t *s)
{
    if (s->stalled_since_ms)
        return;
    starved_remove(w, s);
    s->stalled_since_ms = hs_fw_now_ms();
    s->st_prev = NULL;
    s->st_next = w->stalled;
    if (w->stalled)
        w->stalled->st_prev = s;
    w->stalled = s;
}

/* Subscriptions whose catch-up waits for read budget: a separate list from the stalled one
 * (a subscription is on at most one of them: stalled means its outbox is full, so it reads
 * nothing). Retried every HS_FW_STARVED_RETRY_MS (fanout.c). */

static void starved_remove(worker_t *w, hs_sub_t *s)
{
    if (!s->starved)
        return;
    if (s->st_prev)
        s->st_prev->st_next = s->st_next;
    else
        w->starved = s->st_next;
    if (s->st_next)
        s->st_next->st_prev = s->st_prev;
    s->st_prev = s->st_next = NULL;
    s->starved = false;
}

void hs_fw_starved_add(worker_t *w, hs_sub_t *s)
{
    if (s->starved || s->stalled_since_ms || s->ended)
        return;
    s->starved = true;
    s->st_prev = NULL;
    s->st_next = w->starved;
    if (w->starved)
        w->starved->st_prev = s;
    w->starved = s;
}

void hs_fw_touch(worker_t *w, hs_sub_t *s, unsigned flags)
{
    hs_fanout_t *f = w->f;
    if (hs_sub_signal_io(s, flags, f->cfg.io_inboxes[s->io_index]))
        w->wake[s->io_index] = true;
}

void hs_fw_wake(worker_t *w)
{
    hs_fanout_t *f = w->f;
    if (!f->cfg.on_io)
        hs_waiter_wake(&w->waiter);
    else if (!atomic_load(&f->stopping))
        /* once stopped, the IO threads are gone (and closing their connections at their
         * destruction unsubscribes: nobody needs waking) */
        f->cfg.wake_io(f->cfg.wake_ctx, w->index);
}

void hs_fw_flush_wakes(worker_t *w)
{
    hs_fanout_t *f = w->f;
    for (size_t i = 0; i < w->ntouched; i++) {
        hs_sub_t *s = w->touched[i];
        s->io_pending_data = false;
        hs_fw_touch(w, s, HS_SUB_IO_DATA);
    }
    w->ntouched = 0;
    for (int i = 0; i < f->nio; i++)
        if (w->wake[i]) {
            w->wake[i] = false;
            /* on_io: this is IO thread i's turn, which drains its inbox next */
            if (!(f->cfg.on_io && i == w->index))
                f->cfg.wake_io(f->cfg.wake_ctx, i);
        }
}

void hs_fw_mark_touched(worker_t *w, hs_sub_t *s)
{
    if (s->io_pending_data)
        return;
    if (w->ntouched == w->touched_cap) {
        size_t nc = w->touched_cap ? w->touched_cap * 2 : 256;
        hs_sub_t **p = realloc(w->touched, nc * sizeof(*p));
        if (!p) {
            hs_fw_touch(w, s, HS_SUB_IO_DATA); /* signal now rather than lose it */
            return;
        }
        w->touched = p;
        w->touched_cap = nc;
    }
    s->io_pending_data = true;
    w->touched[w->ntouched++] = s;
}

/* Removes a subscription from the worker and drops the worker's reference. */
void hs_fw_detach(worker_t *w, hs_sub_t *s)
{
    if (!s->w_stream)
        return;
    wstream_t *st = s->w_stream;
    if (s->w_prev)
        s->w_prev->w_next = s->w_next;
    else
        st->subs = s->w_next;
    if (s->w_next)
        s->w_next->w_prev = s->w_prev;
    pthread_mutex_lock(&w->mu);
    st->nsubs--;
    pthread_mutex_unlock(&w->mu);
    hs_gauge_add(&w->m_subs, -1);
    s->w_stream = NULL;
    hs_fw_stalled_remove(w, s);
    starved_remove(w, s);
    /* a pending DATA signal holds no reference; flush_wakes must not see a freed sub */
    for (size_t i = 0; i < w->ntouched; i++)
        if (w->touched[i] == s) {
            w->touched[i] = w->touched[--w->ntouched];
            hs_fw_touch(w, s, HS_SUB_IO_DATA);
            break;
        }
    s->io_pending_data = false;
    st_drop_if_empty(w, st);
    hs_sub_unref(s);
}

/* Ends a subscription: queues the end marker (if any), tells the IO thread, detaches. */
void hs_fw_end_sub(worker_t *w, hs_sub_t *s, int reason, hs_block_t *marker)
{
    if (s->ended)
        return;
    s->ended = true;
    if (marker)
        hs_sub_push_spsc(s, marker, hs_fanout_block_size(s, marker), true);
    atomic_store(&s->end_reason, reason);
    /* stalled, or it failed (a read, memory): the front end drops the connection and the client
     * resumes from what it got; closed or deleted: the marker ends it cleanly */
    hs_fw_touch(w, s,
                reason == HS_SUB_END_STALLED || reason == HS_SUB_END_ERROR ? HS_SUB_IO_KILL
                                                                           : HS_SUB_IO_END);
    hs_fw_detach(w, s);
}
