/*
 * Refcounted event blocks and committed batches.
 *
 * A block is one committed event (or one stream-level marker: closed, deleted) encoded once for
 * every wire format that needs it, in a single allocation. Subscribers' outboxes hold references,
 * never copies. A batch is what the writer hands to the fan-out workers after a commit: the
 * blocks of one transaction in position order.
 *
 * Blocks are built by the codec (proto/codec.c); this module only owns their memory rules.
 * Any thread may ref and unref.
 */
#ifndef HS_BLOCK_H
#define HS_BLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum hs_block_kind {
    HS_BLOCK_EVENT = 0,
    HS_BLOCK_CLOSED = 1,  /* the stream was closed after `version` */
    HS_BLOCK_DELETED = 2, /* the stream was deleted */
} hs_block_kind_t;

/* A block's EventRecord as one MessagePack map (see hs_block_t.mp). */
typedef struct hs_block_mp {
    uint32_t len;
    uint8_t bytes[];
} hs_block_mp_t;

/* A block's event as /eventstreamhub's PascalCase object (proto/escodec.h): bytes[0..raw_len)
 * is the JSON object, then esc_len bytes of it escaped as the inside of a JSON string. */
typedef struct hs_block_es {
    uint32_t raw_len, esc_len;
    char bytes[];
} hs_block_es_t;

typedef struct hs_block {
    atomic_uint refs;
    uint8_t kind;
    uint32_t stream_hash;
    int64_t version;  /* stream version (for markers: the last version) */
    int64_t position; /* global position (0 for markers) */
    int64_t time_us;  /* commit time (0 for markers): the events of one commit share it */
    const char *stream;
    const char *type; /* event type (NUL-terminated) */
    /* EventRecord JSON (markers: {"stream":..,"reason":..}): the data line inside sse, so
     * not NUL-terminated */
    const char *json;
    const char *sse; /* SSE block without its id line: "event: ...\ndata: ...\n\n" */
    uint32_t stream_len, type_len, json_len, sse_len;
    /* The EventRecord as MessagePack, for SignalR MessagePack subscribers: encoded by the
     * first IO thread that needs it and installed with a compare-and-swap, so a server without
     * MessagePack subscribers never pays for it and every MessagePack subscriber shares one
     * encoding. Freed with the block. */
    _Atomic(hs_block_mp_t *) mp;
    /* The same for /eventstreamhub's subscribers (built, installed and freed the same way). */
    _Atomic(hs_block_es_t *) es;
    /* HS_BLOCK_F_*; set by the writer before the block is shared */
    uint8_t flags;
    /* A block read back for one subscriber's catch-up is a copy of its own: it is charged to a
     * budget (budget.h) until freed. Live blocks, shared by everyone, are not. */
    struct hs_budget *budget;
    uint32_t size; /* bytes of the allocation */
    char mem[];    /* the strings above */
} hs_block_t;

/* The last event of its publish: /eventstreamhub delivers one publish as one array. */
#define HS_BLOCK_F_LAST 1

/* Allocates a block with `extra` bytes of string space in mem[]; refs = 1. NULL on ENOMEM. */
hs_block_t *hs_block_alloc(size_t extra);

/* Charges the block's size, and the forms built for it so far (mp, es), to budget (taking a
 * reference to it) until the block is freed. False when the budget cannot take it (nothing is
 * charged). Call before sharing the block. */
bool hs_block_charge(hs_block_t *b, struct hs_budget *budget);
/* A form of the block (mp or es) was installed: a charged block charges its n bytes too, past
 * the budget's cap if need be (the block is admitted already; later takes wait instead). Call
 * while holding a reference, after winning the install. */
void hs_block_charge_form(hs_block_t *b, size_t n);
/* The bytes a form's allocation holds. */
static inline size_t hs_block_mp_bytes(const hs_block_mp_t *mp)
{
    return sizeof(*mp) + mp->len;
}
static inline size_t hs_block_es_bytes(const hs_block_es_t *es)
{
    return sizeof(*es) + es->raw_len + es->esc_len;
}

static inline hs_block_t *hs_block_ref(hs_block_t *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

/* Drops a reference; frees the block on the last one. */
void hs_block_unref(hs_block_t *b);

/* A committed batch. `n` blocks in position order; the batch holds one reference on each. */
typedef struct hs_batch {
    atomic_uint refs;
    uint32_t n;
    hs_block_t *blocks[];
} hs_batch_t;

hs_batch_t *hs_batch_alloc(uint32_t cap);
static inline hs_batch_t *hs_batch_ref(hs_batch_t *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}
void hs_batch_unref(hs_batch_t *b);

/* FNV-1a of a stream name: picks the fan-out worker that owns the stream. */
static inline uint32_t hs_stream_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

#endif
