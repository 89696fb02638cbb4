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

#define BATCH_RING         1024
#define NBUCKETS           4096
#define CACHE_SLOTS_MIN    256 /* per stream, grown by doubling; powers of two */
#define CACHE_SLOTS_MAX    65536
#define CACHE_STREAM_BYTES (64u << 20)  /* per stream */
#define CACHE_WORKER_BYTES (512u << 20) /* per worker, over all its streams */

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
    char name[];
} wstream_t;

typedef struct worker worker_t;

typedef struct creq {
    hs_read_req_t base;
    worker_t *w;
    hs_sub_t *sub;
    hs_encode_fn encode;
    int64_t after;
    size_t limit, max_bytes;
    bool all, from_head;
    uint32_t seq; /* issue order within the subscription */
    /* results */
    hs_block_t **blocks;
    size_t n, cap, bytes;
    bool more, found;
    bool starved; /* the read budget could not take the next page: wait and read again */
    hs_stream_head_t head;
} creq_t;

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
    hs_gauge_t m_subs;
    wstream_t **buckets;
    hs_sub_t *stalled;
    hs_sub_t *starved; /* waiting for read budget (linked through st_prev/st_next too) */
    hs_sub_t **touched;
    size_t ntouched, touched_cap;
    bool *wake; /* per IO thread */
    size_t cache_bytes;
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

/* ---- catchup.c, for fanout.c ---- */

/* Sends a live subscription back to catch-up (full: its outbox overflowed). */
void hs_fw_to_catchup(worker_t *w, hs_sub_t *s, bool full);
/* Starts or continues s's catch-up: from the stream's block cache, else a database read. */
void hs_fw_request_read(worker_t *w, hs_sub_t *s);
/* A catch-up read that came back (worker queue) / dropping one at shutdown. */
void hs_fw_on_read(worker_t *w, creq_t *r);
void hs_fw_free_req(creq_t *r);

#endif
