/*
 * The fan-out workers' private state. Three files, each calling only those before it:
 * streams.c (the stream table, block caches, subscription lists, wake-ups, ending a
 * subscription), catchup.c (catch-up reads and the block cache's replay), fanout.c (commands,
 * live delivery, the worker thread, the interface of fanout.h). Not an interface: fanout.h is.
 */
#ifndef HS_FANOUT_WORKER_H
#define HS_FANOUT_WORKER_H

#include <pthread.h>
#include <stdatomic.h>

#include "fanout/fanout.h"
#include "ringbuf/ring.h"
#include "ringbuf/waiter.h"
#include "util/metrics.h"

#define BATCH_RING 1024
/* What a worker without subscriptions may have queued before the writer wakes it anyway
 * (hs_fanout_sink): it is not woken for each batch, and what the batches hold is bounded. */
#define HS_FW_IDLE_BATCHES 16
#define HS_FW_IDLE_BYTES   (256 * 1024)
#define NBUCKETS           4096
#define CACHE_SLOTS_MIN    256 /* per stream, grown by doubling; powers of two */
#define CACHE_SLOTS_MAX    65536
#define CACHE_STREAM_BYTES (64u << 20)  /* per stream */
#define CACHE_WORKER_BYTES (512u << 20) /* per worker, over all its streams */
/* Shared catch-up pages (catchup.c): one page is one database read of at most catchup_events
 * events and PAGE_BYTES bytes of blocks after a cursor, shared by every subscription of the
 * worker whose cursor falls inside it. */
#define PAGE_BYTES         (1u << 20)
#define PAGES_WORKER_BYTES (32u << 20)  /* complete pages a worker keeps, over all its streams */
#define PAGE_IDLE_MS       2000         /* a kept page nobody has used for this long is dropped */
#define PAGE_BUSY_MS       10           /* ... or for this long, when the read budget is spent */
#define PAGES_INFLIGHT_MAX 4            /* per stream: page reads out at once */
#define PAGES_AHEAD        2            /* pages read ahead of the one being served */
#define CATCHUP_FILL       (256u << 10) /* bytes a catching-up subscription keeps queued */

typedef struct cpage cpage_t;

typedef struct wstream {
    struct wstream *next;
    uint32_t hash, len;
    int64_t head; /* last version (position for $all) this worker delivered live */
    bool closed;  /* a close marker passed (after version `head`): nothing follows but a delete;
                     a subscription that catches up to it later ends there */
    /* recent blocks, seq cache_lo..head at slot seq % cache_cap: a subscriber that fell
     * behind catches up from here, sharing the blocks, before it falls back to the database */
    hs_block_t **cache;
    uint32_t cache_cap; /* slots */
    int64_t cache_lo;   /* 0: empty */
    size_t cache_bytes;
    hs_sub_t *subs;
    size_t nsubs;
    cpage_t *pages; /* shared catch-up pages: being read, and kept */
    uint32_t pages_inflight;
    char name[];
} wstream_t;

typedef struct worker worker_t;

/* A subscription's own catch-up read: the first one of a live-only subscription (it starts at
 * the head, which only the database knows). */
typedef struct creq {
    hs_read_req_t base;
    worker_t *w;
    hs_sub_t *sub;
    hs_encode_fn encode;
    int64_t after;
    size_t limit, max_bytes;
    bool all, from_head;
    /* results */
    hs_block_t **blocks;
    size_t n, cap, bytes;
    bool more, found;
    bool starved; /* the read budget could not take the next page: wait and read again */
    hs_stream_head_t head;
} creq_t;

/*
 * A shared catch-up page: what the database held after `after` (a version, or a position for
 * $all) when it was read, at most `limit` events and about max_bytes of blocks, charged to the
 * server's read budget. While the read is out, subscriptions whose cursor it will cover wait on
 * it; once back, the worker keeps it (on its LRU list, bounded in bytes and idle time) for the
 * subscriptions that reach it later. Every field is the worker's, except that the reader thread
 * fills the results while the read is out.
 */
struct cpage {
    hs_read_req_t base;
    worker_t *w;
    wstream_t *st; /* NULL once the stream left the worker's table while the read was out */
    cpage_t *next; /* the stream's pages */
    cpage_t *lru_prev, *lru_next; /* kept pages, most recently used first */
    hs_encode_fn encode;
    void (*prepare_mp)(hs_block_t *b); /* set: build each block's MessagePack form too */
    struct hs_budget *budget;
    int64_t after;
    size_t limit, max_bytes;
    bool all, inflight, ahead; /* ahead: the page after it was asked for */
    hs_sub_t *waiters;         /* while inflight; through pg_next, each holding a reference */
    int64_t used_ms;
    /* results */
    hs_block_t **blocks;
    size_t n, cap, bytes;
    int64_t last; /* sequence of the last block; `after` when none */
    bool more, found, starved;
    hs_stream_head_t head;
    uint32_t name_len;
    char name[]; /* the stream (a copy: the read may outlive the table entry) */
};

struct worker {
    hs_fanout_t *f;
    int index;
    pthread_t thread;
    bool started;
    ck_ring_t ring;
    ck_ring_buffer_t *ring_buf;
    hs_mpsc_t q;
    hs_waiter_t waiter;
    pthread_mutex_t mu; /* guards the stream table for hs_fanout_count */
    /* /metrics: written by this worker only (util/metrics.h), but m_batches_in by the writer
     * thread (the sink) */
    hs_ctr_t m_demoted, m_caught_up, m_stalled, m_reads, m_rows, m_batches_out, m_batches_in;
    hs_ctr_t m_page_hits; /* catch-up served from a shared page without a read of its own */
    hs_gauge_t m_subs;
    size_t idle_bytes; /* the sink's (writer thread): block bytes queued since it last woke this
                          worker without subscriptions */
    wstream_t **buckets;
    hs_sub_t *stalled;
    hs_sub_t *starved; /* waiting for read budget (linked through st_prev/st_next too) */
    hs_sub_t **touched;
    size_t ntouched, touched_cap;
    bool *wake; /* per IO thread */
    size_t cache_bytes;
    cpage_t *lru_head, *lru_tail; /* kept pages */
    size_t page_bytes;
    int64_t last_stall_check;
    int64_t last_starved_retry;
};

struct hs_fanout {
    hs_fanout_config_t cfg;
    int nio;
    worker_t *w;
    atomic_int stopping;
};

/* How often subscriptions that wait for read budget try again. */
#define HS_FW_STARVED_RETRY_MS 10

/* ---- streams.c: the worker's streams and its subscriptions' bookkeeping (fanout.c and
 * catchup.c call it; it calls neither) ---- */

/* The monotonic clock in ms. */
int64_t hs_fw_now_ms(void);
/* A stream of the worker's table, or NULL / created (NULL on ENOMEM). */
wstream_t *hs_fw_st_find(worker_t *w, const char *name, size_t len, uint32_t hash);
wstream_t *hs_fw_st_get(worker_t *w, const char *name, size_t len, uint32_t hash);
/* A stream's block cache: drops every block / records block b with sequence seq. */
void hs_fw_cache_reset(worker_t *w, wstream_t *st);
void hs_fw_cache_add(worker_t *w, wstream_t *st, hs_block_t *b, int64_t seq);
void hs_fw_stalled_remove(worker_t *w, hs_sub_t *s);
void hs_fw_stalled_add(worker_t *w, hs_sub_t *s);
void hs_fw_starved_add(worker_t *w, hs_sub_t *s);
/* Signals s's IO thread now (HS_SUB_IO_* flags); the thread is woken by hs_fw_flush_wakes. */
void hs_fw_touch(worker_t *w, hs_sub_t *s, unsigned flags);
/* Marks s as having new work for its IO thread (signalled once per batch or turn). */
void hs_fw_mark_touched(worker_t *w, hs_sub_t *s);
/* Wakes the worker: its thread, or (on_io) its IO thread. Any thread. */
void hs_fw_wake(worker_t *w);
/* Signals every marked subscription and wakes the IO threads that have news. */
void hs_fw_flush_wakes(worker_t *w);
/* Removes a subscription from the worker and drops the worker's reference. */
void hs_fw_detach(worker_t *w, hs_sub_t *s);
/* Ends s (HS_SUB_END_*), queuing marker (taken) when there is one. */
void hs_fw_end_sub(worker_t *w, hs_sub_t *s, int reason, hs_block_t *marker);
/* Shared pages: frees a page that is in no list and has no waiters; drops a kept page; drops
 * every page of a stream (one whose read is out is left to free itself when it comes back);
 * drops kept pages over the worker's bytes or idle for PAGE_IDLE_MS. */
void hs_fw_page_free(cpage_t *p);
/* Takes p off its stream's list of pages (if it is there). */
void hs_fw_page_unlink(wstream_t *st, cpage_t *p);
/* The worker's LRU list of kept pages: take p off it / put it in front, used now. */
void hs_fw_lru_unlink(worker_t *w, cpage_t *p);
void hs_fw_lru_push(worker_t *w, cpage_t *p);
void hs_fw_page_evict(worker_t *w, cpage_t *p);
void hs_fw_pages_drop(worker_t *w, wstream_t *st);
void hs_fw_pages_trim(worker_t *w, int64_t now_ms);
/* A page read found the read budget spent: drops every kept page but `keep` that nobody used in
 * the last PAGE_BUSY_MS, so that the budget goes to what subscribers need now rather than to
 * the cache (a page still queued in an outbox is given back once sent). */
void hs_fw_pages_yield(worker_t *w, int64_t now_ms, const cpage_t *keep);

/* ---- catchup.c, for fanout.c ---- */

/* Sends a live subscription back to catch-up (full: its outbox overflowed). */
void hs_fw_to_catchup(worker_t *w, hs_sub_t *s, bool full);
/* Starts or continues s's catch-up: from the stream's block cache, else a database read. */
void hs_fw_request_read(worker_t *w, hs_sub_t *s);
/* A catch-up read that came back (worker queue) / dropping one at shutdown. */
void hs_fw_on_read(worker_t *w, creq_t *r);
void hs_fw_free_req(creq_t *r);
/* A shared page's read that came back (worker queue) / dropping one at shutdown. */
void hs_fw_on_page(worker_t *w, cpage_t *p);
void hs_fw_drop_page_read(cpage_t *p);

#endif
