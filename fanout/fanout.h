/*
 * Fan-out workers: committed batches in, subscriber outboxes out.
 *
 * Each worker serves the subscriptions of some IO threads (IO thread i's go to worker
 * i % nworkers), whatever stream they read, so the subscribers of one hot stream are spread over
 * every worker. The writer hands every committed batch to every worker; a worker walks its
 * blocks, looks each block's stream up in its own table (the streams its subscribers read),
 * queues a reference to the shared, once-encoded block to each of its subscribers' outboxes,
 * then wakes each IO thread it gave work to, once per batch. More workers than IO threads
 * leaves the extra ones idle.
 *
 * Catch-up: a subscription starts in catch-up mode and reads from the database (on a reader
 * thread) from its resume point; it turns live when its cursor has reached what the worker
 * has already delivered for the stream. A live subscription whose outbox is full, or that sees a
 * gap, falls back to catch-up: nobody else waits for it and its memory stays bounded. One whose
 * outbox stays full past the stall timeout is closed.
 *
 * Not here: sockets (IO threads write), encoding (the codec made the blocks).
 */
#ifndef HS_FANOUT_H
#define HS_FANOUT_H

#include <stddef.h>
#include <stdint.h>

#include "ringbuf/block.h"
#include "ringbuf/mpsc.h"
#include "ringbuf/sub.h"
#include "storage/reader.h"
#include "storage/writer.h"

typedef struct hs_fanout_config {
    int nworkers;
    hs_reader_t *reader;
    hs_encode_fn encode;
    hs_encode_marker_fn encode_marker;
    hs_mpsc_t **io_inboxes;                   /* one per IO thread */
    void (*wake_io)(void *ctx, int io_index); /* any thread */
    void *wake_ctx;
    int stall_timeout_ms;
    int catchup_events; /* most events per catch-up read */
    /* Shared catch-up pages are charged here (NULL: not charged): the server's read budget. */
    struct hs_budget *read_budget;
    /* Builds a block's MessagePack form (block.h), on the reader thread of a page that a
     * MessagePack subscriber waits for (NULL: the IO thread builds it when it sends). */
    void (*prepare_mp)(hs_block_t *b);
    /* No threads of its own: worker i runs on IO thread i (nworkers becomes the number of IO
     * threads), which calls hs_fanout_io_step() when woken (wake_io) and when the time it asked
     * for has passed. One thread hand-off fewer between a commit and the socket. */
    bool on_io;
} hs_fanout_config_t;

typedef struct hs_fanout hs_fanout_t;

hs_fanout_t *hs_fanout_create(const hs_fanout_config_t *cfg);
int hs_fanout_start(hs_fanout_t *f);
void hs_fanout_stop(hs_fanout_t *f);
void hs_fanout_destroy(hs_fanout_t *f);

/* on_io: IO thread `index` runs its worker's turn: the batches, commands and catch-up reads that
 * came in, the stall and read-budget checks, then the subscribers' signals (the other IO
 * threads are woken; its own inbox is left for the caller to drain right after). Returns the
 * milliseconds after which it wants another turn even if nothing wakes it, 0 for at once, -1 for
 * never. */
int hs_fanout_io_step(hs_fanout_t *f, int index);

/* The writer's batch sink (writer thread only); takes the batch reference. */
void hs_fanout_sink(void *f, hs_batch_t *batch);

/* IO thread: registers a subscription (the worker takes its own reference). s->io_index must be
 * set. The subscription replays from s->from when s->has_from, else starts at the head. */
void hs_fanout_subscribe(hs_fanout_t *f, hs_sub_t *s);
/* IO thread: the connection is gone; the worker drops the subscription. */
void hs_fanout_unsubscribe(hs_fanout_t *f, hs_sub_t *s);
/* IO thread: the outbox drained below half after a failed push (s->want_space was set). */
void hs_fanout_space(hs_fanout_t *f, hs_sub_t *s);

/* Subscriptions currently registered to a stream (any thread; takes a lock). */
size_t hs_fanout_count(hs_fanout_t *f, const char *stream, size_t len);

/* For /metrics, summed over the workers (any thread): subscriptions registered; sent back to
 * catch-up (their outbox overflowed or they fell behind); reaching live delivery (after their
 * start or a catch-up); closed for not reading; catch-up reads of the database and the events
 * they read; committed batches waiting for the workers. */
typedef struct hs_fanout_metrics {
    int64_t subscriptions;
    uint64_t demoted, caught_up, stalled, catchup_reads, catchup_rows, catchup_shared,
        queued_batches;
} hs_fanout_metrics_t;
void hs_fanout_metrics(hs_fanout_t *f, hs_fanout_metrics_t *out);

/* The byte size an outbox accounts for a block queued to s (any thread). */
size_t hs_fanout_block_size(const hs_sub_t *s, const hs_block_t *b);

#endif
