/*
 * Fan-out workers (see fanout.h).
 *
 * Cursor rule, the whole of "no gap, no duplicate": a subscription's cursor is the last version
 * (position for $all) it has queued or skipped. Live delivery queues an event only if it is
 * exactly cursor + 1; anything else sends the subscription to catch-up. A catch-up read returns
 * what the database holds after the cursor; it turns the subscription live only when the cursor
 * has reached the worker's head for the stream, i.e. every event this worker has already
 * delivered live. Events committed after the read started reach the worker later in batches,
 * where the cursor rule skips what the read already queued.
 */
#include "fanout/fanout.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static worker_t *owner(hs_fanout_t *f, const hs_sub_t *s)
{
    return &f->w[s->all ? 0 : s->hash % (uint32_t)f->cfg.nworkers];
}

/* ---- stream table ---- */

static wstream_t *st_find(worker_t *w, const char *name, size_t len, uint32_t hash)
{
    for (wstream_t *s = w->buckets[hash % NBUCKETS]; s; s = s->next)
        if (s->hash == hash && s->len == len && memcmp(s->name, name, len) == 0)
            return s;
    return NULL;
}

static wstream_t *st_get(worker_t *w, const char *name, size_t len, uint32_t hash)
{
    wstream_t *s = st_find(w, name, len, hash);
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

static void cache_reset(worker_t *w, wstream_t *st)
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
    return sizeof(hs_block_t) + b->json_len + b->sse_len + b->type_len + b->stream_len;
}

/* Records block b with sequence seq; st->head is still the previous sequence. */
static void cache_add(worker_t *w, wstream_t *st, hs_block_t *b, int64_t seq)
{
    if (st->cache_lo && seq != st->head + 1)
        cache_reset(w, st); /* not contiguous (a new incarnation of the stream) */
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
        cache_reset(w, st); /* over the worker's budget: this stream goes uncached for now */
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

static void st_drop_if_empty(worker_t *w, wstream_t *s)
{
    if (s->nsubs)
        return;
    cache_reset(w, s);
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
 * nothing). Retried every STARVED_RETRY_MS. */
#define STARVED_RETRY_MS 10

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

static void touch(worker_t *w, hs_sub_t *s, unsigned flags)
{
    hs_fanout_t *f = w->f;
    if (hs_sub_signal_io(s, flags, f->cfg.io_inboxes[s->io_index]))
        w->wake[s->io_index] = true;
}

static void flush_wakes(worker_t *w)
{
    hs_fanout_t *f = w->f;
    for (size_t i = 0; i < w->ntouched; i++) {
        hs_sub_t *s = w->touched[i];
        s->io_pending_data = false;
        touch(w, s, HS_SUB_IO_DATA);
    }
    w->ntouched = 0;
    for (int i = 0; i < f->nio; i++)
        if (w->wake[i]) {
            w->wake[i] = false;
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
            touch(w, s, HS_SUB_IO_DATA); /* signal now rather than lose it */
            return;
        }
        w->touched = p;
        w->touched_cap = nc;
    }
    s->io_pending_data = true;
    w->touched[w->ntouched++] = s;
}

/* Removes a subscription from the worker and drops the worker's reference. */
static void detach(worker_t *w, hs_sub_t *s)
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
    s->w_stream = NULL;
    hs_fw_stalled_remove(w, s);
    starved_remove(w, s);
    /* a pending DATA signal holds no reference; flush_wakes must not see a freed sub */
    for (size_t i = 0; i < w->ntouched; i++)
        if (w->touched[i] == s) {
            w->touched[i] = w->touched[--w->ntouched];
            touch(w, s, HS_SUB_IO_DATA);
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
    touch(w, s,
          reason == HS_SUB_END_STALLED || reason == HS_SUB_END_ERROR ? HS_SUB_IO_KILL
                                                                     : HS_SUB_IO_END);
    detach(w, s);
}

void hs_fw_to_catchup(worker_t *w, hs_sub_t *s, bool full)
{
    s->mode = HS_SUB_CATCHUP;
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

/* Live delivery of one block with sequence number seq (version, or position for $all). */
static void deliver(worker_t *w, hs_sub_t *s, hs_block_t *b, int64_t seq)
{
    if (s->mode != HS_SUB_LIVE || seq <= s->cursor)
        return;
    if (seq != s->cursor + 1) {
        hs_fw_to_catchup(w, s, false);
        return;
    }
    if (!hs_sub_wants_type(s, b->type, b->type_len)) {
        s->cursor = seq;
        return;
    }
    if (!hs_sub_push_spsc(s, b, hs_fanout_block_size(s, b), false)) {
        hs_fw_to_catchup(w, s, true);
        return;
    }
    s->cursor = seq;
    hs_fw_mark_touched(w, s);
}

/* ---- commands from IO threads ---- */

static void on_register(worker_t *w, hs_sub_t *s)
{
    wstream_t *st =
        s->all ? st_get(w, "$all", 4, s->hash) : st_get(w, s->stream, s->stream_len, s->hash);
    if (!st) {
        atomic_store(&s->end_reason, HS_SUB_END_ERROR);
        touch(w, s, HS_SUB_IO_KILL);
        hs_sub_unref(s);
        return;
    }
    s->w_stream = st;
    s->w_prev = NULL;
    s->w_next = st->subs;
    if (st->subs)
        st->subs->w_prev = s;
    st->subs = s;
    pthread_mutex_lock(&w->mu);
    st->nsubs++;
    pthread_mutex_unlock(&w->mu);
    s->mode = HS_SUB_CATCHUP;
    s->cursor = s->has_from ? s->from : -1; /* -1: read the head first */
    hs_fw_request_read(w, s);
}

static void on_sub(worker_t *w, hs_sub_t *s)
{
    unsigned fl = hs_sub_take_worker_flags(s);
    if (fl & HS_SUB_W_REGISTER)
        on_register(w, s); /* adopts the reference hs_fanout_subscribe took */
    if ((fl & HS_SUB_W_UNREGISTER) && s->w_stream) {
        s->ended = true;
        detach(w, s);
    }
    if ((fl & HS_SUB_W_SPACE) && s->w_stream && !s->ended) {
        hs_fw_stalled_remove(w, s);
        if (s->mode == HS_SUB_CATCHUP)
            hs_fw_request_read(w, s);
    }
    hs_sub_unref(s); /* the queue's reference */
}

/* ---- batches from the writer ---- */

static void on_batch(worker_t *w, hs_batch_t *b)
{
    hs_fanout_t *f = w->f;
    wstream_t *all = w->index == 0 ? st_find(w, "$all", 4, hs_stream_hash("$all", 4)) : NULL;
    for (uint32_t i = 0; i < b->n; i++) {
        hs_block_t *blk = b->blocks[i];
        if (blk->stream_hash % (uint32_t)f->cfg.nworkers == (uint32_t)w->index) {
            wstream_t *st = st_find(w, blk->stream, blk->stream_len, blk->stream_hash);
            if (st) {
                if (blk->kind == HS_BLOCK_EVENT) {
                    cache_add(w, st, blk, blk->version);
                    st->head = blk->version;
                    for (hs_sub_t *s = st->subs, *next; s; s = next) {
                        next = s->w_next;
                        deliver(w, s, blk, blk->version);
                    }
                } else {
                    int reason =
                        blk->kind == HS_BLOCK_DELETED ? HS_SUB_END_DELETED : HS_SUB_END_CLOSED;
                    st->closed = reason == HS_SUB_END_CLOSED;
                    for (hs_sub_t *s = st->subs, *next; s; s = next) {
                        next = s->w_next;
                        if (reason == HS_SUB_END_DELETED ||
                            (s->mode == HS_SUB_LIVE && s->cursor >= blk->version))
                            hs_fw_end_sub(w, s, reason, blk);
                        else
                            s->end_pending = true; /* after catch-up reaches the end */
                    }
                    if (reason == HS_SUB_END_DELETED &&
                        (st = st_find(w, blk->stream, blk->stream_len, blk->stream_hash))) {
                        cache_reset(w, st);
                        st->head = 0; /* a new incarnation starts at version 1 */
                    }
                }
            }
        }
        if (all && blk->kind == HS_BLOCK_EVENT) {
            cache_add(w, all, blk, blk->position);
            all->head = blk->position;
            for (hs_sub_t *s = all->subs, *next; s; s = next) {
                next = s->w_next;
                deliver(w, s, blk, blk->position);
            }
            /* the last subscriber may have left with the table entry */
            all = st_find(w, "$all", 4, hs_stream_hash("$all", 4));
        }
    }
}

static void retry_starved(worker_t *w)
{
    int64_t now = hs_fw_now_ms();
    if (!w->starved || now - w->last_starved_retry < STARVED_RETRY_MS)
        return;
    w->last_starved_retry = now;
    hs_sub_t *list = w->starved;
    w->starved = NULL;
    for (hs_sub_t *s = list, *next; s; s = next) {
        next = s->st_next;
        s->st_prev = s->st_next = NULL;
        s->starved = false;
        if (!s->ended && s->w_stream && s->mode == HS_SUB_CATCHUP)
            hs_fw_request_read(w, s);
    }
}

static void check_stalls(worker_t *w)
{
    int64_t now = hs_fw_now_ms();
    if (now - w->last_stall_check < 100)
        return;
    w->last_stall_check = now;
    for (hs_sub_t *s = w->stalled, *next; s; s = next) {
        next = s->st_next;
        if (now - s->stalled_since_ms >= w->f->cfg.stall_timeout_ms)
            hs_fw_end_sub(w, s, HS_SUB_END_STALLED, NULL);
    }
}

static bool has_work(void *ctx)
{
    worker_t *w = ctx;
    return ck_ring_size(&w->ring) || !hs_mpsc_empty(&w->q) || atomic_load(&w->f->stopping);
}

static void *run(void *arg)
{
    worker_t *w = arg;
    for (;;) {
        bool busy = false;
        void *p;
        while (hs_ring_dequeue_spsc(&w->ring, w->ring_buf, &p)) {
            on_batch(w, p);
            hs_batch_unref(p);
            busy = true;
        }
        for (hs_mpsc_node_t *n = hs_mpsc_take_all(&w->q), *next; n; n = next) {
            next = n->next;
            busy = true;
            if (n->kind == HS_NODE_FANOUT_READ)
                hs_fw_on_read(w, hs_container_of(n, creq_t, base.node));
            else
                on_sub(w, hs_container_of(n, hs_sub_t, w_node));
        }
        check_stalls(w);
        retry_starved(w);
        flush_wakes(w);
        if (busy)
            continue;
        if (atomic_load(&w->f->stopping))
            break;
        hs_waiter_sleep(&w->waiter,
                        w->starved   ? STARVED_RETRY_MS
                        : w->stalled ? 100
                                     : 1000,
                        has_work, w);
    }
    return NULL;
}

/* ---- public ---- */

hs_fanout_t *hs_fanout_create(const hs_fanout_config_t *cfg)
{
    hs_fanout_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->cfg = *cfg;
    if (f->cfg.nworkers <= 0)
        f->cfg.nworkers = 1;
    if (f->cfg.catchup_events <= 0)
        f->cfg.catchup_events = 1000;
    for (f->nio = 0; cfg->io_inboxes[f->nio]; f->nio++)
        ;
    f->w = calloc((size_t)f->cfg.nworkers, sizeof(worker_t));
    if (!f->w)
        goto fail;
    for (int i = 0; i < f->cfg.nworkers; i++) {
        worker_t *w = &f->w[i];
        w->f = f;
        w->index = i;
        w->ring_buf = calloc(BATCH_RING, sizeof(ck_ring_buffer_t));
        w->buckets = calloc(NBUCKETS, sizeof(wstream_t *));
        w->wake = calloc((size_t)f->nio + 1, sizeof(bool));
        if (!w->ring_buf || !w->buckets || !w->wake)
            goto fail;
        ck_ring_init(&w->ring, BATCH_RING);
        hs_mpsc_init(&w->q);
        hs_waiter_init(&w->waiter);
        pthread_mutex_init(&w->mu, NULL);
    }
    return f;
fail:
    hs_fanout_destroy(f);
    return NULL;
}

int hs_fanout_start(hs_fanout_t *f)
{
    for (int i = 0; i < f->cfg.nworkers; i++) {
        if (pthread_create(&f->w[i].thread, NULL, run, &f->w[i]))
            return HS_ESYS;
        f->w[i].started = true;
    }
    return 0;
}

void hs_fanout_stop(hs_fanout_t *f)
{
    atomic_store(&f->stopping, 1);
    for (int i = 0; i < f->cfg.nworkers; i++) {
        worker_t *w = &f->w[i];
        if (!w->started)
            continue;
        hs_waiter_wake(&w->waiter);
        pthread_join(w->thread, NULL);
        w->started = false;
    }
}

void hs_fanout_destroy(hs_fanout_t *f)
{
    if (!f)
        return;
    hs_fanout_stop(f);
    for (int i = 0; f->w && i < f->cfg.nworkers; i++) {
        worker_t *w = &f->w[i];
        void *p;
        if (w->ring_buf) {
            while (hs_ring_dequeue_spsc(&w->ring, w->ring_buf, &p))
                hs_batch_unref(p);
        }
        for (hs_mpsc_node_t *n = hs_mpsc_take_all(&w->q), *next; n; n = next) {
            next = n->next;
            if (n->kind == HS_NODE_FANOUT_READ) {
                /* a read ahead that completed first waits on its subscription, holding it */
                creq_t *r = hs_container_of(n, creq_t, base.node), *ahead = r->sub->read_stash;
                r->sub->read_stash = NULL;
                hs_fw_free_req(r);
                if (ahead)
                    hs_fw_free_req(ahead);
            } else {
                hs_sub_t *s = hs_container_of(n, hs_sub_t, w_node);
                unsigned fl = hs_sub_take_worker_flags(s);
                if ((fl & HS_SUB_W_REGISTER))
                    hs_sub_unref(s); /* the worker reference it never adopted */
                hs_sub_unref(s);
            }
        }
        for (int b = 0; w->buckets && b < NBUCKETS; b++) {
            for (wstream_t *st = w->buckets[b], *nx; st; st = nx) {
                nx = st->next;
                for (hs_sub_t *s = st->subs, *sn; s; s = sn) {
                    sn = s->w_next;
                    hs_sub_unref(s);
                }
                cache_reset(w, st);
                free(st->cache);
                free(st);
            }
        }
        free(w->buckets);
        free(w->ring_buf);
        free(w->wake);
        free(w->touched);
        if (w->ring_buf || w->buckets) {
            hs_waiter_dispose(&w->waiter);
            pthread_mutex_destroy(&w->mu);
        }
    }
    free(f->w);
    free(f);
}

void hs_fanout_sink(void *ctx, hs_batch_t *batch)
{
    hs_fanout_t *f = ctx;
    for (int i = 0; i < f->cfg.nworkers; i++) {
        worker_t *w = &f->w[i];
        hs_batch_ref(batch);
        /* backpressure: a worker that is BATCH_RING batches behind holds the writer back */
        while (!hs_ring_enqueue_spsc(&w->ring, w->ring_buf, batch)) {
            hs_waiter_wake(&w->waiter);
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
        hs_waiter_wake(&w->waiter);
    }
    hs_batch_unref(batch);
}

void hs_fanout_subscribe(hs_fanout_t *f, hs_sub_t *s)
{
    worker_t *w = owner(f, s);
    s->worker_index = w->index;
    hs_sub_ref(s); /* the worker's */
    if (hs_sub_signal_worker(s, HS_SUB_W_REGISTER, &w->q))
        hs_waiter_wake(&w->waiter);
}

void hs_fanout_unsubscribe(hs_fanout_t *f, hs_sub_t *s)
{
    worker_t *w = &f->w[s->worker_index];
    if (hs_sub_signal_worker(s, HS_SUB_W_UNREGISTER, &w->q))
        hs_waiter_wake(&w->waiter);
}

void hs_fanout_space(hs_fanout_t *f, hs_sub_t *s)
{
    worker_t *w = &f->w[s->worker_index];
    if (hs_sub_signal_worker(s, HS_SUB_W_SPACE, &w->q))
        hs_waiter_wake(&w->waiter);
}

size_t hs_fanout_count(hs_fanout_t *f, const char *stream, size_t len)
{
    uint32_t hash = hs_stream_hash(stream, len);
    bool all = len == 4 && memcmp(stream, "$all", 4) == 0;
    worker_t *w = &f->w[all ? 0 : hash % (uint32_t)f->cfg.nworkers];
    size_t n = 0;
    pthread_mutex_lock(&w->mu);
    wstream_t *st = st_find(w, stream, len, hash);
    if (st)
        n = st->nsubs;
    pthread_mutex_unlock(&w->mu);
    return n;
}
