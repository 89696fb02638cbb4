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
#include "util/thread.h"

/* The worker of a subscription: the one its IO thread's subscribers share, whatever their
 * stream, so that one hot stream's subscribers are served by every worker, each worker wakes
 * only its own IO threads, and a subscriber's outbox has one producer and one consumer pinned to
 * the same pair of threads. */
static worker_t *owner(hs_fanout_t *f, const hs_sub_t *s)
{
    return &f->w[(uint32_t)s->io_index % (uint32_t)f->cfg.nworkers];
}

/* ---- stream table ---- */

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
    wstream_t *st = s->all ? hs_fw_st_get(w, "$all", 4, s->hash)
                           : hs_fw_st_get(w, s->stream, s->stream_len, s->hash);
    if (!st) {
        atomic_store(&s->end_reason, HS_SUB_END_ERROR);
        hs_fw_touch(w, s, HS_SUB_IO_KILL);
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
    hs_gauge_add(&w->m_subs, 1);
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
        hs_fw_detach(w, s);
    }
    if ((fl & HS_SUB_W_SPACE) && s->w_stream && !s->ended) {
        hs_fw_stalled_remove(w, s);
        if (s->mode == HS_SUB_CATCHUP)
            hs_fw_request_read(w, s);
    }
    hs_sub_unref(s); /* the queue's reference */
}

/* ---- batches from the writer ---- */

/* An event block of stream st (its sequence seq: version, or position on $all): into the
 * stream's cache, then to each of its live subscriptions. */
static void deliver_all(worker_t *w, wstream_t *st, hs_block_t *blk, int64_t seq)
{
    hs_fw_cache_add(w, st, blk, seq);
    st->head = seq;
    for (hs_sub_t *s = st->subs, *next; s; s = next) {
        next = s->w_next;
        deliver(w, s, blk, seq);
    }
}

static void on_batch(worker_t *w, hs_batch_t *b)
{
    /* every worker sees every block: each serves its own subscribers of any stream (its table
     * holds the streams they read; a block of another stream is a failed lookup) */
    wstream_t *all = hs_fw_st_find(w, "$all", 4, hs_stream_hash("$all", 4));
    for (uint32_t i = 0; i < b->n; i++) {
        hs_block_t *blk = b->blocks[i];
        wstream_t *st = hs_fw_st_find(w, blk->stream, blk->stream_len, blk->stream_hash);
        if (st && blk->kind == HS_BLOCK_EVENT) {
            deliver_all(w, st, blk, blk->version);
        } else if (st) {
            int reason = blk->kind == HS_BLOCK_DELETED ? HS_SUB_END_DELETED : HS_SUB_END_CLOSED;
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
                (st = hs_fw_st_find(w, blk->stream, blk->stream_len, blk->stream_hash))) {
                hs_fw_cache_reset(w, st);
                hs_fw_pages_drop(w, st); /* the pages of the incarnation that ended */
                st->head = 0;            /* a new incarnation starts at version 1 */
            }
        }
        if (all && blk->kind == HS_BLOCK_EVENT) {
            deliver_all(w, all, blk, blk->position);
            /* the last subscriber may have left with the table entry */
            all = hs_fw_st_find(w, "$all", 4, hs_stream_hash("$all", 4));
        }
    }
}

static void retry_starved(worker_t *w)
{
    int64_t now = hs_fw_now_ms();
    if (!w->starved || now - w->last_starved_retry < HS_FW_STARVED_RETRY_MS)
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
    hs_fw_pages_trim(w, now);
    for (hs_sub_t *s = w->stalled, *next; s; s = next) {
        next = s->st_next;
        if (now - s->stalled_since_ms >= w->f->cfg.stall_timeout_ms) {
            hs_ctr_add(&w->m_stalled, 1);
            hs_fw_end_sub(w, s, HS_SUB_END_STALLED, NULL);
        }
    }
}

static bool has_work(void *ctx)
{
    worker_t *w = ctx;
    atomic_thread_fence(memory_order_seq_cst); /* see hs_fanout_sink */
    return ck_ring_size(&w->ring) || !hs_mpsc_empty(&w->q) || atomic_load(&w->f->stopping);
}

/* One pass of the worker's loop: the committed batches, then the commands and catch-up reads,
 * the stall and read-budget checks, the wake-ups. True when it found batches or commands. */
static bool step(worker_t *w)
{
    bool busy = false;
    void *p;
    while (hs_ring_dequeue_spsc(&w->ring, w->ring_buf, &p)) {
        on_batch(w, p);
        hs_batch_unref(p);
        hs_ctr_add(&w->m_batches_out, 1);
        busy = true;
    }
    for (hs_mpsc_node_t *n = hs_mpsc_take_all(&w->q), *next; n; n = next) {
        next = n->next;
        busy = true;
        if (n->kind == HS_NODE_FANOUT_READ)
            hs_fw_on_read(w, hs_container_of(n, creq_t, base.node));
        else if (n->kind == HS_NODE_FANOUT_PAGE)
            hs_fw_on_page(w, hs_container_of(n, cpage_t, base.node));
        else
            on_sub(w, hs_container_of(n, hs_sub_t, w_node));
    }
    check_stalls(w);
    retry_starved(w);
    hs_fw_flush_wakes(w);
    return busy;
}

/* When the loop must look again with nothing new: subscriptions waiting for read budget, or
 * stalled ones whose timeout may run out. */
static int idle_ms(const worker_t *w)
{
    return w->starved ? HS_FW_STARVED_RETRY_MS : w->stalled || w->lru_head ? 100 : -1;
}

static void *run(void *arg)
{
    worker_t *w = arg;
    for (;;) {
        if (step(w))
            continue;
        if (atomic_load(&w->f->stopping))
            break;
        int ms = idle_ms(w);
        hs_waiter_sleep(&w->waiter, ms < 0 ? 1000 : ms, has_work, w);
    }
    return NULL;
}

int hs_fanout_io_step(hs_fanout_t *f, int index)
{
    /* stopped: the server is taking its IO contexts down (lws may still call in) */
    if (!f->cfg.on_io || index < 0 || index >= f->cfg.nworkers || atomic_load(&f->stopping))
        return -1;
    worker_t *w = &f->w[index];
    /* a bounded turn, so that the IO thread's sockets are served in between */
    for (int i = 0; i < 16 && step(w); i++)
        ;
    atomic_thread_fence(memory_order_seq_cst); /* see hs_fanout_sink */
    if (ck_ring_size(&w->ring) || !hs_mpsc_empty(&w->q))
        return 0;
    return idle_ms(w);
}

/* ---- public ---- */

hs_fanout_t *hs_fanout_create(const hs_fanout_config_t *cfg)
{
    hs_fanout_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->cfg = *cfg;
    if (f->cfg.catchup_events <= 0)
        f->cfg.catchup_events = 1000;
    for (f->nio = 0; cfg->io_inboxes[f->nio]; f->nio++)
        ;
    if (f->cfg.on_io)
        f->cfg.nworkers = f->nio; /* worker i is IO thread i's */
    if (f->cfg.nworkers <= 0)
        f->cfg.nworkers = 1;
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
    if (f->cfg.on_io)
        return 0; /* the IO threads run the workers (hs_fanout_io_step) */
    for (int i = 0; i < f->cfg.nworkers; i++) {
        if (pthread_create(&f->w[i].thread, NULL, run, &f->w[i]))
            return HS_ESYS;
        hs_thread_name(f->w[i].thread, "hs-fanout-", i);
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
        hs_fw_wake(w);
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
                hs_fw_free_req(hs_container_of(n, creq_t, base.node));
            } else if (n->kind == HS_NODE_FANOUT_PAGE) {
                hs_fw_drop_page_read(hs_container_of(n, cpage_t, base.node));
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
                hs_fw_pages_drop(w, st);
                hs_fw_cache_reset(w, st);
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

/* Bytes of a batch's blocks. */
static size_t batch_bytes(const hs_batch_t *batch)
{
    size_t n = 0;
    for (uint32_t i = 0; i < batch->n; i++)
        n += batch->blocks[i]->size;
    return n;
}

void hs_fanout_sink(void *ctx, hs_batch_t *batch)
{
    hs_fanout_t *f = ctx;
    size_t bytes = SIZE_MAX; /* not counted yet */
    for (int i = 0; i < f->cfg.nworkers; i++) {
        worker_t *w = &f->w[i];
        hs_batch_ref(batch);
        /* backpressure: a worker that is BATCH_RING batches behind holds the writer back */
        while (!hs_ring_enqueue_spsc(&w->ring, w->ring_buf, batch)) {
            hs_fw_wake(w);
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
        hs_ctr_add(&w->m_batches_in, 1);
        /* A worker without subscriptions is not woken for each batch: on the IO threads, a
         * thread with no subscriber would wake for nothing at every commit. It takes the
         * batches at its next wake-up, before any command (step), or once HS_FW_IDLE_BATCHES
         * or HS_FW_IDLE_BYTES are queued. Its first subscription cannot miss one: the worker
         * counts it (m_subs, on_register) before it looks at the ring for the last time in a
         * turn (has_work, hs_fanout_io_step), and the sink enqueues before it reads the count,
         * each with a seq_cst fence between; so either the sink sees the subscription and
         * wakes the worker, or the worker sees the batch and takes another turn. */
        atomic_thread_fence(memory_order_seq_cst);
        bool wake = hs_gauge_get(&w->m_subs) > 0 || ck_ring_size(&w->ring) >= HS_FW_IDLE_BATCHES;
        if (!wake) {
            if (bytes == SIZE_MAX)
                bytes = batch_bytes(batch);
            w->idle_bytes += bytes;
            wake = w->idle_bytes > HS_FW_IDLE_BYTES;
        }
        if (wake) {
            w->idle_bytes = 0;
            hs_fw_wake(w);
        }
    }
    hs_batch_unref(batch);
}

void hs_fanout_metrics(hs_fanout_t *f, hs_fanout_metrics_t *out)
{
    *out = (hs_fanout_metrics_t){0};
    for (int i = 0; i < f->cfg.nworkers; i++) {
        worker_t *w = &f->w[i];
        out->subscriptions += hs_gauge_get(&w->m_subs);
        out->demoted += hs_ctr_get(&w->m_demoted);
        out->caught_up += hs_ctr_get(&w->m_caught_up);
        out->stalled += hs_ctr_get(&w->m_stalled);
        out->catchup_reads += hs_ctr_get(&w->m_reads);
        out->catchup_rows += hs_ctr_get(&w->m_rows);
        out->catchup_shared += hs_ctr_get(&w->m_page_hits);
        uint64_t in = hs_ctr_get(&w->m_batches_in), done = hs_ctr_get(&w->m_batches_out);
        out->queued_batches += in > done ? in - done : 0;
    }
}

void hs_fanout_subscribe(hs_fanout_t *f, hs_sub_t *s)
{
    worker_t *w = owner(f, s);
    s->worker_index = w->index;
    hs_sub_ref(s); /* the worker's */
    if (hs_sub_signal_worker(s, HS_SUB_W_REGISTER, &w->q))
        hs_fw_wake(w);
}

void hs_fanout_unsubscribe(hs_fanout_t *f, hs_sub_t *s)
{
    worker_t *w = &f->w[s->worker_index];
    if (hs_sub_signal_worker(s, HS_SUB_W_UNREGISTER, &w->q))
        hs_fw_wake(w);
}

void hs_fanout_space(hs_fanout_t *f, hs_sub_t *s)
{
    worker_t *w = &f->w[s->worker_index];
    if (hs_sub_signal_worker(s, HS_SUB_W_SPACE, &w->q))
        hs_fw_wake(w);
}

size_t hs_fanout_count(hs_fanout_t *f, const char *stream, size_t len)
{
    uint32_t hash = hs_stream_hash(stream, len);
    size_t n = 0;
    for (int i = 0; i < f->cfg.nworkers; i++) {
        worker_t *w = &f->w[i];
        pthread_mutex_lock(&w->mu);
        wstream_t *st = hs_fw_st_find(w, stream, len, hash);
        if (st)
            n += st->nsubs;
        pthread_mutex_unlock(&w->mu);
    }
    return n;
}
