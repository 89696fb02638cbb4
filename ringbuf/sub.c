/*
 * Subscriptions and their chunked SPSC outboxes (see sub.h).
 *
 * The queue: the producer writes a slot, then publishes it by bumping `pushed` (release); the
 * consumer reads up to `pushed` (acquire), then bumps `popped`. A chunk is linked before the
 * `pushed` increment that makes its first slot visible, so the consumer never follows a NULL
 * next. Fully consumed chunks go back to the producer through `spare` (or are freed). A new
 * subscription has no chunk: the first push allocates it and sets `head` (the only time the
 * producer writes it; the consumer reads it only once it sees that push).
 */
#include "ringbuf/sub.h"

#include "ringbuf/budget.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

hs_sub_t *hs_sub_create(const char *stream, size_t stream_len, const char *const *types,
                        uint32_t ntypes, size_t max_bytes)
{
    /* the stream name lives at the struct's end: one allocation, not two */
    hs_sub_t *s = calloc(1, offsetof(hs_sub_t, stream) + stream_len + 1);
    if (!s)
        return NULL;
    atomic_init(&s->refs, 1); /* first: the failure path frees through hs_sub_unref */
    /* no chunk until the first push (an idle subscription holds none): the producer finds
     * its tail chunk full and links the first one as head */
    s->tail_idx = HS_SUB_CHUNK_SLOTS;
    memcpy(s->stream, stream, stream_len);
    s->stream[stream_len] = '\0';
    s->stream_len = (uint32_t)stream_len;
    s->hash = hs_stream_hash(stream, stream_len);
    s->all = stream_len == 4 && memcmp(stream, "$all", 4) == 0;
    if (ntypes) {
        s->types = calloc(ntypes, sizeof(char *));
        if (!s->types)
            goto fail;
        for (uint32_t i = 0; i < ntypes; i++) {
            if (!(s->types[i] = strdup(types[i])))
                goto fail;
            s->ntypes = i + 1;
        }
    }
    s->max_bytes = max_bytes;
    s->io_node.kind = HS_NODE_SUB_IO;
    s->w_node.kind = HS_NODE_SUB_WORKER;
    return s;
fail:
    hs_sub_unref(s);
    return NULL;
}

static size_t no_size(const hs_sub_t *s, const hs_block_t *b)
{
    return 0;
}

void hs_sub_unref(hs_sub_t *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* last reference: no other thread can touch the queue any more */
    if (s->head) {
        hs_block_t *b;
        while ((b = hs_sub_pop_spsc(s, no_size)))
            hs_block_unref(b);
        free(s->head);
    }
    free(atomic_load(&s->spare));
    hs_budget_unref(s->budget);
    for (uint32_t i = 0; i < s->ntypes; i++)
        free(s->types[i]);
    free(s->types);
    free(s);
}

bool hs_sub_wants_type(const hs_sub_t *s, const char *type, size_t len)
{
    if (!s->ntypes)
        return true;
    for (uint32_t i = 0; i < s->ntypes; i++)
        if (strlen(s->types[i]) == len && memcmp(s->types[i], type, len) == 0)
            return true;
    return false;
}

bool hs_sub_push_spsc(hs_sub_t *s, hs_block_t *b, size_t bytes, bool force)
{
    size_t used = atomic_load_explicit(&s->bytes, memory_order_relaxed);
    if (!force && used + bytes > s->max_bytes)
        return false;
    if (s->tail_idx == HS_SUB_CHUNK_SLOTS) {
        hs_sub_chunk_t *c = atomic_exchange_explicit(&s->spare, NULL, memory_order_acquire);
        if (!c && !(c = malloc(sizeof(*c))))
            return false;
        c->next = NULL;
        /* published by the release increment of `pushed` below; the first chunk becomes the
         * consumer's head, which the consumer reads only after that increment */
        if (s->tail)
            s->tail->next = c;
        else
            s->head = c;
        s->tail = c;
        s->tail_idx = 0;
    }
    s->tail->slot[s->tail_idx++] = hs_block_ref(b);
    atomic_fetch_add_explicit(&s->bytes, bytes, memory_order_relaxed);
    /* release: pairs with the acquire load of `pushed` in hs_sub_pop_spsc */
    atomic_fetch_add_explicit(&s->pushed, 1, memory_order_release);
    return true;
}

hs_block_t *hs_sub_pop_spsc(hs_sub_t *s, size_t (*size_of)(const hs_sub_t *, const hs_block_t *))
{
    uint64_t popped = atomic_load_explicit(&s->popped, memory_order_relaxed);
    if (popped == atomic_load_explicit(&s->pushed, memory_order_acquire))
        return NULL;
    if (s->head_idx == HS_SUB_CHUNK_SLOTS) {
        hs_sub_chunk_t *done = s->head;
        s->head = done->next;
        s->head_idx = 0;
        hs_sub_chunk_t *expect = NULL;
        /* release: pairs with the acquire exchange of `spare` in hs_sub_push_spsc */
        if (!atomic_compare_exchange_strong_explicit(&s->spare, &expect, done, memory_order_release,
                                                     memory_order_relaxed))
            free(done);
    }
    hs_block_t *b = s->head->slot[s->head_idx++];
    atomic_fetch_sub_explicit(&s->bytes, size_of(s, b), memory_order_relaxed);
    atomic_store_explicit(&s->popped, popped + 1, memory_order_relaxed);
    return b;
}

bool hs_sub_signal_io(hs_sub_t *s, unsigned flags, hs_mpsc_t *inbox)
{
    atomic_fetch_or(&s->io_flags, flags);
    int expect = 0;
    if (!atomic_compare_exchange_strong(&s->io_scheduled, &expect, 1))
        return false;
    hs_sub_ref(s); /* held by the inbox; the IO thread drops it */
    return hs_mpsc_push(inbox, &s->io_node);
}

bool hs_sub_signal_worker(hs_sub_t *s, unsigned flags, hs_mpsc_t *queue)
{
    atomic_fetch_or(&s->w_flags, flags);
    int expect = 0;
    if (!atomic_compare_exchange_strong(&s->w_scheduled, &expect, 1))
        return false;
    hs_sub_ref(s); /* held by the queue; the worker drops it */
    return hs_mpsc_push(queue, &s->w_node);
}

unsigned hs_sub_take_io_flags(hs_sub_t *s)
{
    atomic_store(&s->io_scheduled, 0);
    return atomic_exchange(&s->io_flags, 0);
}

unsigned hs_sub_take_worker_flags(hs_sub_t *s)
{
    atomic_store(&s->w_scheduled, 0);
    return atomic_exchange(&s->w_flags, 0);
}
