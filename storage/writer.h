/*
 * The writer thread: the one place where events are appended.
 *
 * IO threads (and hs_server_publish) hand it ingest entries; it takes everything waiting, up to
 * a batch limit, and commits it in one transaction (group commit): stream heads are checked and
 * advanced (expectedVersion, closed streams, idempotent client ids), versions and positions are
 * assigned gaplessly, rows are inserted with array binding. Only after the commit does it
 * complete each entry (the publisher's ack) and hand the encoded batch to the fan-out sink. A
 * batch that fails to commit fails every entry in it (HS_EDB) and appends nothing. When the
 * database goes away the writer fails what is queued (HS_EDB) and reconnects with backoff; a
 * batch whose COMMIT got no answer is settled once it is back (writer.c).
 *
 * Not here: parsing and validation of events (the IO threads do that), delivery (fan-out).
 */
#ifndef HS_WRITER_H
#define HS_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hubstream/hubstream.h"
#include "ringbuf/block.h"
#include "ringbuf/mpsc.h"
#include "storage/retention.h"
#include "storage/store.h"
#include "util/metrics.h"

typedef enum hs_ingest_kind {
    HS_INGEST_APPEND = 0,
    HS_INGEST_CLOSE = 1,
    HS_INGEST_DELETE = 2,
    /* /eventstreamhub's subscribers (storage/es_stage.c): e->es holds the operation */
    HS_INGEST_ES_SUBSCRIBE = 3,
    HS_INGEST_ES_UNSUBSCRIBE = 4,
    HS_INGEST_ES_CURSOR = 5,
    HS_INGEST_ES_ASSOCIATE = 6,
} hs_ingest_kind_t;

/* A stream an association names: by name (len > 0, looked up as /eventstreamhub looks names
 * up) or by its GUID. */
#define HS_ES_REF_NAME_MAX 800
#define HS_ES_REFS_MAX     65 /* the target and up to 64 sources */
typedef struct hs_es_ref {
    char guid[37];
    uint32_t len;
    char name[HS_ES_REF_NAME_MAX + 1];
} hs_es_ref_t;

/* What one stream may copy from others at once when linked with backfill. */
#define HS_ES_BACKFILL_EVENTS 100000
#define HS_ES_BACKFILL_BYTES  ((size_t)64 << 20)
/* The most links a database holds. */
#define HS_ES_LINKS_MAX 10000

/* A subscriber's cursor: the last event it was sent. */
typedef struct hs_es_cursor {
    char id[37];
    int64_t position, version;
} hs_es_cursor_t;

/*
 * An /eventstreamhub operation on its subscribers, run by the writer inside its transaction.
 * SUBSCRIBE: the stream (e->stream, looked up ignoring ASCII case and rewritten to the stored
 * spelling) is created when missing; a new subscriber row starts at the stream's head; a known
 * one must show its key (HS_EFORBIDDEN), name the same stream (HS_ECONFLICT) and goes on after
 * its cursor, or after global position from_position when has_from. UNSUBSCRIBE: the key must
 * match (HS_EFORBIDDEN), the row must belong to the stream (HS_ENOENT); the row goes. CURSOR:
 * moves n cursors forward.
 */
typedef struct hs_es_op {
    char sub_id[37], sub_key[37], conn[64];
    bool has_from;
    int64_t from_position;
    /* SUBSCRIBE's outcome */
    int64_t from_version; /* deliver the events after this version */
    bool resumed;         /* the subscriber was known */
    /* ASSOCIATE: refs[0] is the target (created when missing unless `existing`), the others
     * its sources; each later event of a source is copied into the target in the same
     * transaction (with metadata "$originalEventId"), and with `backfill` the sources' events
     * so far are copied now, in order. Outcome: HS_ENOENT (refs[failed] is missing),
     * HS_ECONFLICT (refs[failed] would make a cycle), HS_ETOOLARGE (its backfill is over the
     * bounds above, or the links would be), and the target's name in refs[0] and its GUID. */
    bool existing, backfill;
    size_t nrefs;
    hs_es_ref_t *refs;
    int failed;
    char target_guid[37];
    int64_t linked, copied; /* links added, events backfilled */
    /* CURSOR */
    size_t ncursors;
    hs_es_cursor_t *cursors;
} hs_es_op_t;

/* One event of an append. Strings point into the entry's arena. */
typedef struct hs_ingest_event {
    const char *type;
    const char *data;
    const char *metadata; /* NULL when absent */
    const char *id;       /* always set: the client's id or a generated UUID */
    uint32_t type_len, data_len, metadata_len, id_len;
    bool client_id; /* the publisher chose the id: check idempotency */
} hs_ingest_event_t;

typedef struct hs_ingest hs_ingest_t;

/* Called on the writer thread once the entry's outcome is known (after commit). */
typedef void (*hs_ingest_done_fn)(hs_ingest_t *e);

struct hs_ingest {
    hs_mpsc_node_t node; /* free for the completion path (e.g. an IO thread's inbox) */
    hs_ingest_kind_t kind;
    const char *stream;
    uint32_t stream_len;
    uint32_t nevents;
    int64_t expected_version; /* HS_ANY_VERSION or >= 0 */
    /* APPEND from /eventstreamhub: the stream is the oldest one whose name equals this one
     * ignoring ASCII case, when there is no exact match (the name is rewritten in place) */
    bool fold;
    hs_es_op_t *es; /* HS_INGEST_ES_*: the operation (owned by whoever made the entry) */
    hs_ingest_event_t *events;
    /* outcome, written by the writer before done() */
    int status; /* 0 or HS_E* */
    hs_publish_result_t result;
    bool appended;   /* rows were appended (false for a retry of a committed publish) */
    int64_t time_us; /* commit time */
    /* completion */
    hs_ingest_done_fn done;
    void *origin; /* owner-defined: which thread or waiter to complete */
    void *conn;   /* owner-defined */
    int io_index;
};

/*
 * Allocates an entry with room for nevents events and `arena` bytes of strings in one block.
 * *arena_out receives the string space. Free with hs_ingest_free().
 */
hs_ingest_t *hs_ingest_alloc(uint32_t nevents, size_t arena, char **arena_out);
void hs_ingest_free(hs_ingest_t *e);

/* Encodes a committed record into a block (the codec supplies it). */
typedef hs_block_t *(*hs_encode_fn)(const hs_record_t *rec);
/* Encodes a stream marker (closed / deleted). */
typedef hs_block_t *(*hs_encode_marker_fn)(hs_block_kind_t kind, const char *stream, size_t len,
                                           int64_t version);
/* Receives each committed batch (the callee takes the reference). Called on the writer thread. */
typedef void (*hs_batch_sink_fn)(void *ctx, hs_batch_t *batch);
/* Logging from the writer thread. suppressed: how many records like this one the writer's rate
 * limits dropped before it (util/log.h); 0 for most. */
typedef void (*hs_writer_log_fn)(void *ctx, hs_log_level_t level, const char *msg,
                                 uint64_t suppressed);

typedef struct hs_writer_config {
    const char *db;
    int nrings;    /* one SPSC ring per IO thread */
    int ring_size; /* power of two */
    int batch_max; /* most events per transaction */
    hs_encode_fn encode;
    hs_encode_marker_fn encode_marker;
    hs_batch_sink_fn sink;
    void *sink_ctx;
    hs_writer_log_fn log;
    void *log_ctx;
    hs_retention_t *retention; /* NULL: keep everything; borrowed, used by the writer thread */
    /*
     * Several nodes on one database (feed.c). With `feed` set and a database that other
     * processes write to (hs_store_shared), the writer hands the fan-out every committed event
     * in position order, its own and the other nodes': before a batch of its own it reads what
     * the others committed since (the hole), and when told of other nodes' commits
     * (hs_writer_remote, or its own polling) it reads them by position range. Closes and
     * deletes travel through the hs_stream_ops log. poll_min_ms / poll_max_ms: how often the
     * writer reads the database's heads itself (from min after a change, doubling to max when
     * nothing changes); 0 for both: only every HEALTH_MS, as a safety net behind a push
     * backplane. notify: send the heads with each commit through the database
     * (hs_store_notify: PostgreSQL NOTIFY). announce: called on the writer thread after each
     * commit with the new heads (Redis PUBLISH); may be NULL.
     */
    bool feed;
    int poll_min_ms, poll_max_ms;
    bool notify;
    void (*announce)(void *ctx, int64_t position, int64_t seq);
    void *announce_ctx;
    /* /eventstreamhub: the most subscriber rows the database may hold (0: no limit). A Subscribe
     * that would add one more fails with HS_ETOOLARGE. Counted per node (es_stage.c), so with
     * several nodes the table may pass it by what the others add between two counts. */
    int64_t es_max_subscribers;
} hs_writer_config_t;

typedef struct hs_writer hs_writer_t;

/* Opens the writer's store connection and migrates the schema; no thread yet. */
hs_writer_t *hs_writer_create(const hs_writer_config_t *cfg, char *err, size_t errlen);
int hs_writer_start(hs_writer_t *w);
/* Sets the sink's context (before hs_writer_start). */
void hs_writer_set_sink_ctx(hs_writer_t *w, void *ctx);
/* Takes and commits everything already submitted, then stops the thread. */
void hs_writer_stop(hs_writer_t *w);
void hs_writer_destroy(hs_writer_t *w);

/* IO thread `ring` only (single producer per ring). False when the ring is full. */
bool hs_writer_submit_spsc(hs_writer_t *w, int ring, hs_ingest_t *e);

/* Any thread. False when the shared ring is full or the writer is stopped. */
bool hs_writer_submit_mpsc(hs_writer_t *w, hs_ingest_t *e);

/* Any thread (a backplane listener): another node committed up to `position` (events) and
 * `seq` (closes and deletes); the writer reads what it has not fed yet. */
void hs_writer_remote(hs_writer_t *w, int64_t position, int64_t seq);
/* Any thread: read the database's heads soon (a listener that reconnected may have missed
 * notifications). */
void hs_writer_recheck(hs_writer_t *w);

/* Whether other processes may write to the database (hs_store_shared), and its dialect's name
 * ("sqlite", "postgresql", "sqlserver"); any thread, fixed at creation. */
bool hs_writer_shared(const hs_writer_t *w);
const char *hs_writer_dialect(const hs_writer_t *w);

/* Counters for /readyz and metrics (any thread, approximate). */
typedef struct hs_writer_stats {
    uint64_t batches, events, failed_batches;
    uint64_t trimmed; /* events dropped by retention */
    int64_t last_position;
    bool db_ok;
    /* several nodes (feed.c) */
    uint64_t remote_events;   /* other nodes' events read and fanned out */
    uint64_t holes_skipped;   /* holes too big to read, left to the subscribers' catch-up */
    bool leader;              /* this node runs the retention sweeps */
    uint64_t checkpoints;     /* passes of the WAL checkpointer thread (storage/checkpoint.h) */
    uint64_t own_checkpoints; /* checkpoints the writer ran itself between batches because the
                                 thread fell behind (its fallback) */
} hs_writer_stats_t;
void hs_writer_stats(hs_writer_t *w, hs_writer_stats_t *out);
/* Tests: hold the WAL checkpointer thread (storage/checkpoint.h), so that the writer's own
 * checkpoints, its fallback, can be seen alone; a no-op without a checkpointer. */
void hs_writer_hold_checkpointer(hs_writer_t *w, bool hold);

/* For /metrics (any thread): events per committed batch and the time from a batch's start to
 * its commit (microseconds), with their bucket specs; reconnects after the database was lost;
 * entries waiting in the ingest rings and the rings' room. */
typedef struct hs_writer_metrics {
    const hs_hist_t *batch_events, *commit_us;
    uint64_t reconnects;
    size_t ring_used, ring_cap;
} hs_writer_metrics_t;
extern const hs_hist_spec_t hs_writer_batch_spec, hs_writer_commit_spec;
void hs_writer_metrics(hs_writer_t *w, hs_writer_metrics_t *out);

/* Whether the writer is connected to the database (any thread); when not, why (for /readyz). */
bool hs_writer_ready(hs_writer_t *w, char *why, size_t len);

#endif
