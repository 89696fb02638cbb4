/*
 * A subscription and its outbox: the one object shared by a connection's IO thread and the
 * fan-out worker that owns the subscription's stream.
 *
 * The outbox is a single-producer (the worker, or the worker on behalf of a catch-up read),
 * single-consumer (the IO thread) queue of block references, made of small chunks so that an idle
 * subscription costs a few hundred bytes, and bounded in bytes: a push that would exceed the
 * bound fails, and the worker then switches the subscription to catch-up reads (see fanout.c).
 *
 * Cross-thread signals use flags plus an intrusive node per direction, so a subscription sits in
 * each queue at most once however many signals are raised:
 *   worker → IO thread:  io_flags (DATA, END, KILL), scheduled on the IO thread's inbox
 *   IO thread → worker:  w_flags (REGISTER, UNREGISTER, SPACE), scheduled on the worker's queue
 * A reference is held for every queue the subscription is in.
 *
 * Fields marked "worker" are touched only by the owning fan-out worker; "io" only by the IO
 * thread; "const" are set before registration and never change.
 */
#ifndef HS_SUB_H
#define HS_SUB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ringbuf/block.h"
#include "ringbuf/mpsc.h"

/* 30 slots: a chunk is 248 bytes, 256 with malloc's header (allocated at the first push: a
 * subscription that never received anything holds none) */
#define HS_SUB_CHUNK_SLOTS 30

enum { HS_SUB_IO_DATA = 1u, HS_SUB_IO_END = 2u, HS_SUB_IO_KILL = 4u };
enum { HS_SUB_W_REGISTER = 1u, HS_SUB_W_UNREGISTER = 2u, HS_SUB_W_SPACE = 4u };

/* How a subscription ended (io side reads it after HS_SUB_IO_END / KILL). */
enum {
    HS_SUB_END_NONE = 0,
    HS_SUB_END_CLOSED,
    HS_SUB_END_DELETED,
    HS_SUB_END_STALLED,
    HS_SUB_END_ERROR
};

/* What a queued block becomes on the wire, for the outbox's byte accounting (const): an SSE
 * block with its id line, or an EventRecord inside a SignalR record. */
enum { HS_SUB_FMT_SSE = 0, HS_SUB_FMT_RECORD = 1 };

/* Worker-side delivery mode. */
enum { HS_SUB_CATCHUP = 0, HS_SUB_LIVE = 1 };

typedef struct hs_sub_chunk {
    struct hs_sub_chunk *next;
    hs_block_t *slot[HS_SUB_CHUNK_SLOTS];
} hs_sub_chunk_t;

typedef struct hs_sub hs_sub_t;

struct hs_sub {
    atomic_uint refs;
    uint32_t tail_idx; /* outbox, producer side (here, beside refs, to leave no padding) */

    /* outbox: producer side (worker) */
    hs_sub_chunk_t *tail;
    /* outbox: consumer side (io) */
    hs_sub_chunk_t *head;
    uint32_t head_idx;
    atomic_int end_reason; /* HS_SUB_END_*, written before HS_SUB_IO_END / KILL (here, beside
                              head_idx, to leave no padding) */
    /* free-running counts; pushed is written by the producer, popped by the consumer */
    _Atomic uint64_t pushed;
    _Atomic uint64_t popped;
    _Atomic size_t bytes;            /* queued bytes: producer adds, consumer subtracts */
    _Atomic(hs_sub_chunk_t *) spare; /* one recycled chunk, consumer → producer */
    size_t max_bytes;                /* const */

    /* signals */
    atomic_uint io_flags;
    atomic_int io_scheduled;
    hs_mpsc_node_t io_node;
    atomic_uint w_flags;
    atomic_int w_scheduled;
    hs_mpsc_node_t w_node;
    /* worker: a push failed or catch-up filled what it may; io: send SPACE once the outbox
     * holds at most this many bytes (0: not wanted). hs_sub_want_space / hs_sub_space_due. */
    _Atomic size_t want_space;

    /* what it subscribes to (const; the name is at the end of the struct) */
    uint32_t stream_len;
    uint32_t hash;
    bool all;           /* $all: ids and cursor are positions */
    bool has_from;      /* false: live only, events committed after the subscribe */
    uint8_t fmt;        /* HS_SUB_FMT_*: what its blocks become on the wire */
    uint8_t transport;  /* which transport of the IO thread consumes it (server/net/net.h) */
    int worker_index;   /* the fan-out worker that serves it (by its IO thread) */
    int64_t live_after; /* live only: the last committed position when the client subscribed */
    int64_t from;       /* replay events after this version / position */
    char **types;       /* NULL = every type */
    uint32_t ntypes;
    int io_index;             /* which IO thread owns the connection */
    void *io_ctx;             /* io: the connection (IO thread only) */
    struct hs_budget *budget; /* catch-up pages are charged here (a reference; NULL: none) */

    /* worker state */
    int64_t cursor;   /* last version (position for $all) queued or skipped */
    uint8_t mode;     /* HS_SUB_CATCHUP / HS_SUB_LIVE */
    bool reading;     /* a catch-up read it waits for is out (its own or a page) */
    bool end_pending; /* closed: end once caught up */
    bool ended;
    bool io_pending_data; /* worker: a DATA signal is collected for the end of the batch */
    bool starved;         /* worker: waiting for read budget (fanout.c) */
    bool mp; /* const: its records go out as MessagePack (catch-up pages it waits for build that
                form on the reader thread); here, in the padding */
    int64_t stalled_since_ms;
    hs_sub_t *w_prev, *w_next;   /* worker: the stream's subscriber list */
    hs_sub_t *st_prev, *st_next; /* worker: the stalled list */
    hs_sub_t *pg_next;           /* worker: the waiters of the shared page being read */
    void *w_stream;              /* worker: its stream entry */
    char stream[];               /* the stream's name, NUL-terminated (const) */
};

/*
 * Creates a subscription with one reference (the caller's). `stream` is copied; `types` is an
 * array of ntypes NUL-terminated strings, copied (ntypes 0 = every type). NULL on ENOMEM.
 */
hs_sub_t *hs_sub_create(const char *stream, size_t stream_len, const char *const *types,
                        uint32_t ntypes, size_t max_bytes);

static inline hs_sub_t *hs_sub_ref(hs_sub_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

/* Drops a reference; on the last one releases every queued block and frees the subscription. */
void hs_sub_unref(hs_sub_t *s);

/* Whether the type passes the subscription's filter. */
bool hs_sub_wants_type(const hs_sub_t *s, const char *type, size_t len);

/*
 * Producer (worker) only. Queues a reference to `b` accounting `bytes` against the bound.
 * Returns false, queuing nothing, when the bound would be exceeded (unless force) or on ENOMEM.
 */
bool hs_sub_push_spsc(hs_sub_t *s, hs_block_t *b, size_t bytes, bool force);

/* Consumer (io) only. Takes the oldest queued block (the caller owns the reference) and
 * subtracts `bytes`(b) as computed by size_of(b). NULL when empty. */
hs_block_t *hs_sub_pop_spsc(hs_sub_t *s, size_t (*size_of)(const hs_sub_t *, const hs_block_t *));

static inline bool hs_sub_empty(hs_sub_t *s)
{
    return atomic_load_explicit(&s->popped, memory_order_relaxed) ==
           atomic_load_explicit(&s->pushed, memory_order_acquire);
}

static inline size_t hs_sub_free_bytes(hs_sub_t *s)
{
    size_t used = atomic_load_explicit(&s->bytes, memory_order_relaxed);
    return used >= s->max_bytes ? 0 : s->max_bytes - used;
}

/* Worker: asks for a SPACE signal once the outbox holds at most `level` bytes (live delivery
 * waits for half of max_bytes; catch-up for less: it keeps only a part of the bound queued). */
static inline void hs_sub_want_space(hs_sub_t *s, size_t level)
{
    atomic_store(&s->want_space, level ? level : 1);
}

/* Whether a wanted SPACE signal is due now (the outbox drained to its level); clears the want.
 * The IO thread asks after it took blocks; the worker right after hs_sub_want_space, in case the
 * IO thread drained everything before it could see the want. */
static inline bool hs_sub_space_due(hs_sub_t *s)
{
    size_t level = atomic_load(&s->want_space);
    if (!level || atomic_load_explicit(&s->bytes, memory_order_relaxed) > level)
        return false;
    atomic_store(&s->want_space, 0);
    return true;
}

/* Bytes queued (a snapshot). */
static inline size_t hs_sub_queued_bytes(hs_sub_t *s)
{
    return atomic_load_explicit(&s->bytes, memory_order_relaxed);
}

/*
 * Raises io flags and schedules the subscription on an IO inbox if it is not already there.
 * Returns true when the inbox was empty (the caller must wake that IO thread).
 */
bool hs_sub_signal_io(hs_sub_t *s, unsigned flags, hs_mpsc_t *inbox);

/* Raises worker flags and schedules it on a worker queue; true when the queue was empty. */
bool hs_sub_signal_worker(hs_sub_t *s, unsigned flags, hs_mpsc_t *queue);

/* Consumer side of the signals: clear the scheduled mark first, then take the flags, so a flag
 * raised concurrently re-schedules the subscription instead of being lost. */
unsigned hs_sub_take_io_flags(hs_sub_t *s);
unsigned hs_sub_take_worker_flags(hs_sub_t *s);

#endif
