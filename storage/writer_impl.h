/*
 * The writer's private state, shared by writer.c (the thread: collecting, committing, failures,
 * doubt, retention steps) and stage.c (staging one batch: the stream heads cache, idempotent
 * retries, rows, the encoded batch for the fan-out). Not an interface: writer.h is.
 */
#ifndef HS_WRITER_IMPL_H
#define HS_WRITER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "ringbuf/ring.h"
#include "ringbuf/waiter.h"
#include "util/log.h"
#include "util/metrics.h"
#include "storage/writer.h"

#define HEADS_MAX 65536
#define MPSC_RING 4096

#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS   5000
#define HEALTH_MS      1000
#define DOUBT_MAX_MS   30000
#define REASON_MAX     256

/* feed.c: blocks per batch handed to the fan-out when reading other nodes' events; a hole
 * before a batch of this node's own bigger than HOLE_MAX events is not read (the fan-out's
 * subscribers see the gap and catch up from the database themselves); operations read per
 * call; how often a node that does not lead asks for the retention lock; how long the
 * operations log keeps an entry, and how often the leader prunes it. */
#define FEED_BATCH    1024
#define HOLE_MAX      65536
#define FEED_OPS_MAX  4096
#define LEADER_TRY_MS 5000
#define OPS_KEEP_S    3600
#define OPS_PRUNE_MS  60000

typedef struct head {
    struct head *next;
    hs_stream_head_t h;
    bool dirty;  /* changed in the current batch */
    bool is_new; /* created in the current batch */
    uint32_t hash;
    uint32_t len;
    struct head *dirty_next;
    char name[];
} head_t;

/* A client id seen in the current batch (idempotency across entries of one batch). */
typedef struct seen_id {
    struct seen_id *next;
    int64_t stream_id, version, position;
    const char *id;
    uint32_t len;
} seen_id_t;

typedef struct ring {
    ck_ring_t r;
    ck_ring_buffer_t *buf;
} ring_t;

struct hs_writer {
    hs_writer_config_t cfg;
    hs_store_t *st;
    struct hs_ckpt *ckpt;  /* the WAL checkpointer (SQLite), or NULL: the connection does it */
    unsigned ckpt_batches; /* batches since the writer's own last checkpoint, while it is behind */
    atomic_uint_fast64_t own_ckpts; /* checkpoints the writer ran itself (stats, any thread) */
    /* es_stage.c: subscriber rows as last counted plus those added since (-1: not counted) */
    int64_t es_rows;
    unsigned es_added;   /* rows added since the last count */
    int64_t es_count_us; /* when it was counted (monotonic) */
    pthread_t thread;
    bool started;
    atomic_int stopping;
    hs_waiter_t waiter;
    ring_t *rings; /* cfg.nrings SPSC rings, then one MPSC ring (in-process publishes from any
                      thread) */
    int nrings;

    /* writer-thread state */
    head_t **heads;
    uint32_t nbuckets, nheads;
    int64_t next_position;
    hs_ingest_t **batch;
    size_t batch_cap;
    hs_row_t *rows;
    size_t rows_cap;
    seen_id_t *seen;
    size_t seen_cap, nseen;
    head_t *dirty;
    int64_t next_seq; /* the next hs_stream_ops seq (shared databases) */
    int64_t batch_first_seq;

    /* /eventstreamhub's stream associations (es_stage.c): every link, loaded when first
     * needed and again after a change (links_gen on a shared database) */
    struct es_link *links;
    size_t nlinks, links_cap;
    bool links_loaded;
    int64_t links_gen;
    size_t nbatch; /* entries in the batch being staged: collected ones, then copies */

    /* several nodes (feed.c), writer thread */
    bool shared; /* other processes write to the database */
    const char *dialect;
    bool leader;              /* holds the retention lock (always, when not shared) */
    int64_t fed_pos, fed_seq; /* handed to the fan-out so far */
    int64_t poll_at_us, leader_at_us, prune_at_us;
    /* warnings a persistent fault repeats (util/log.h): events not read, out of memory encoding
     * them, a failed statement between batches */
    hs_log_limit_t warn_skip, warn_feed_oom, warn_step;
    int poll_ms;
    /* any thread */
    _Atomic int64_t remote_pos, remote_seq;
    atomic_int recheck;
    _Atomic uint64_t n_remote, n_skipped;
    atomic_int is_leader;
    char lost_why[REASON_MAX]; /* feed.c: why the connection was found lost */

    /* connection state (writer thread): st is NULL while the database is unreachable */
    int64_t retry_at_us, down_since_us, last_ok_us;
    /* "still unavailable" (reset when the connection is lost), a failed batch, a failed
     * retention sweep: rate limited (util/log.h) */
    hs_log_limit_t warn_down, warn_batch, warn_trim;
    int backoff_ms;
    unsigned attempts;
    /* a batch whose COMMIT is in doubt (see the top of the file) */
    bool doubt;
    size_t doubt_n;
    int64_t doubt_first_pos, doubt_next_pos, doubt_until_us;
    int64_t doubt_first_seq, doubt_next_seq;
    hs_row_t doubt_row;

    /* stats */
    _Atomic uint64_t n_batches, n_events, n_failed, n_trimmed;
    /* /metrics (written by the writer thread only: util/metrics.h) */
    hs_hist_t m_batch, m_commit;
    hs_ctr_t m_reconnects;
    _Atomic int64_t last_position;
    atomic_int db_ok;
    pthread_mutex_t reason_mu;
    char reason[REASON_MAX]; /* why db_ok is 0 */
};

/* stage.c, for writer.c: the heads cache dropped (after a rollback); growing an array; staging
 * the rows of an append / a close or delete (flushing them to the store when the batch of rows
 * is full); completing n entries; the committed batch encoded for the fan-out. */
void hs_wr_heads_clear(hs_writer_t *w);
int hs_wr_grow(void **arr, size_t *cap, size_t need, size_t elem);
int hs_wr_flush_rows(hs_writer_t *w, size_t *nrows);
int hs_wr_stage_append(hs_writer_t *w, hs_ingest_t *e, int64_t ts, size_t *nrows);
int hs_wr_stage_close_delete(hs_writer_t *w, hs_ingest_t *e, int64_t ts, size_t *nrows);
void hs_wr_finish(hs_writer_t *w, size_t n);
hs_batch_t *hs_wr_encode_batch(hs_writer_t *w, size_t n, size_t nrows);

/* stage.c: the cached head of a stream, loaded from the database on first use (*out NULL when
 * the stream does not exist), and a new stream's row and head. */
int hs_wr_head(hs_writer_t *w, const char *name, size_t len, head_t **out);
int hs_wr_head_create(hs_writer_t *w, const char *name, size_t len, int64_t ts, head_t **out);

/* es_stage.c, for writer.c: /eventstreamhub's lookup ignoring case (an append's e->fold), and its
 * subscriber operations (HS_INGEST_ES_*). Logical failures go into e->status; they return
 * store errors only. */
int hs_wr_es_fold(hs_writer_t *w, hs_ingest_t *e);
int hs_wr_stage_es(hs_writer_t *w, hs_ingest_t *e, int64_t ts, size_t *nrows);
/* es_stage.c: the copies an appended entry owes the streams linked to its own, added to the
 * batch as entries of their own (w->nbatch grows); at a batch's start on a shared database,
 * whether the links changed; the links forgotten (writer destroyed). */
int hs_wr_es_copies(hs_writer_t *w, hs_ingest_t *e);
int hs_wr_es_batch_start(hs_writer_t *w);
void hs_wr_es_free(hs_writer_t *w);

/* feed.c, for writer.c: before a committed batch of this node's own that starts at first_pos
 * and first_seq, what other nodes committed before it; between batches, what they announced
 * or polling finds, the retention lock and pruning the operations log. hs_wr_cluster_step
 * returns 1 when more is due at once, 0 when not (*wait_ms: when it is next due), -1 when the
 * connection is lost (the reason in lost_why: the caller closes it). */
void hs_wr_feed_hole(hs_writer_t *w, int64_t first_pos, int64_t first_seq);
int hs_wr_cluster_step(hs_writer_t *w, int *wait_ms);
bool hs_wr_cluster_pending(hs_writer_t *w);
/* stage.c: logs a close or delete for the other nodes (shared databases), inside the batch. */
int hs_wr_log_op(hs_writer_t *w, int kind, const char *name, size_t len, int64_t version,
                 int64_t ts);

#endif
