/*
 * A hub connection's subscriptions (see hub.h): adding and ending them, their fan-out signals,
 * and packing their outboxes into records of the connection's protocol at write time. A
 * committed event is encoded once per wire format (the block's EventRecord JSON, its lazily
 * built MessagePack map, shared by every connection) and only framed here, per record, after
 * whatever whole records the connection queued (hub.c). Home thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/codec.h"
#include "proto/escodec.h"
#include "proto/json.h"
#include "ringbuf/budget.h"
#include "server/signalr/hub.h"
#include "util/time.h"

/* ---- subscriptions ---- */

int hs_hub_add_sub(hs_hub_t *h, const char *stream, size_t len, bool push, const char *id,
                   bool has_from, int64_t from, bool es)
{
    hs_server_t *srv = h->srv;
    if (h->nsubs >= srv->cfg.max_subscriptions)
        return HS_EBUSY;
    /* one allocation: the invocation id sized to it, then (/eventstreamhub) its own state */
    size_t idl = id ? strnlen(id, HS_HUB_ID_MAX) : 0;
    size_t base = offsetof(hs_hubsub_t, id) + idl + 1;
    size_t es_at = (base + _Alignof(hs_hubsub_es_t) - 1) & ~(_Alignof(hs_hubsub_es_t) - 1);
    hs_hubsub_t *hs = calloc(1, es ? es_at + sizeof(hs_hubsub_es_t) : base);
    hs_sub_t *s = hs ? hs_sub_create(stream, len, NULL, 0, srv->cfg.outbox_bytes) : NULL;
    if (!s) {
        free(hs);
        return HS_ENOMEM;
    }
    s->fmt = HS_SUB_FMT_RECORD;
    s->mp = h->fmt == HS_HUB_MSGPACK && !es; /* /eventstreamhub sends its own form */
    s->transport = HS_T_SIGNALR;
    s->has_from = has_from;
    s->from = from;
    if (!has_from) {
        hs_writer_stats_t ws;
        hs_writer_stats(srv->writer, &ws);
        s->live_after = ws.last_position;
    }
    s->io_index = h->io->index;
    s->io_ctx = hs;
    s->budget = hs_budget_ref(h->budget);
    hs->sub = s;
    hs->hub = h;
    hs->push = push;
    if (es)
        hs->es = (hs_hubsub_es_t *)((char *)hs + es_at);
    memcpy(hs->id, id ? id : "", idl);
    hs->id[idl] = '\0';
    hs->next = h->subs;
    if (h->subs)
        h->subs->prev = hs;
    h->subs = hs;
    h->nsubs++;
    hs_fanout_subscribe(srv->fanout, s);
    return 0;
}

void hs_hub_on_signal(hs_io_t *io, hs_sub_t *s)
{
    unsigned fl = hs_sub_take_io_flags(s);
    hs_hubsub_t *hs = s->io_ctx;
    if (hs && !hs->hub->ended) {
        hs_hub_t *h = hs->hub;
        if (fl & HS_SUB_IO_KILL) {
            /* stalled past the timeout, or its catch-up read failed: the client reconnects
             * and resumes with `from` */
            hs_hub_close(h,
                         atomic_load(&s->end_reason) == HS_SUB_END_STALLED
                             ? "Connection closed with an error. The client did not read "
                               "its events in time."
                             : "Connection closed with an error. Reading the stream failed.",
                         true);
        } else {
            hs_hub_want_write(h);
        }
    }
    hs_sub_unref(s); /* the inbox's reference */
}

/* The lazily encoded MessagePack form of a block (see block.h). */
static const hs_block_mp_t *block_mp(hs_block_t *b)
{
    hs_block_mp_t *mp = atomic_load_explicit(&b->mp, memory_order_acquire);
    if (mp)
        return mp;
    /* built in place after its header (about as long as the JSON: one allocation, shrunk to
     * fit after) */
    hs_buf_t buf = {0};
    if (hs_buf_reserve(&buf, sizeof(*mp) + b->json_len + 64)) {
        hs_buf_free(&buf);
        return NULL;
    }
    buf.len = sizeof(*mp);
    if (hs_hubproto_json_to_msgpack(b->json, b->json_len, &buf) ||
        buf.len - sizeof(*mp) > UINT32_MAX) {
        hs_buf_free(&buf);
        return NULL;
    }
    mp = (hs_block_mp_t *)buf.p;
    mp->len = (uint32_t)(buf.len - sizeof(*mp));
    if (buf.cap > buf.len) {
        hs_block_mp_t *fit = realloc(mp, buf.len);
        if (fit)
            mp = fit;
    }
    hs_block_mp_t *expected = NULL;
    /* release pairs with the acquire load above in the threads that lose or come later */
    if (!atomic_compare_exchange_strong_explicit(&b->mp, &expected, mp, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        free(mp);
        return expected;
    }
    hs_block_charge_form(b, hs_block_mp_bytes(mp)); /* a catch-up copy: its budget bears it */
    return mp;
}

void hs_hub_prepare_mp(hs_block_t *b)
{
    if (b->kind == HS_BLOCK_EVENT)
        (void)block_mp(b); /* on failure the IO thread tries again when it sends */
}

/* Appends the record a block becomes for this subscription. */
static int encode_block(hs_hub_t *h, hs_hubsub_t *hs, hs_block_t *b, hs_buf_t *out)
{
    if (b->kind == HS_BLOCK_EVENT) {
        const uint8_t *v;
        size_t vl;
        if (h->fmt == HS_HUB_JSON) {
            v = (const uint8_t *)b->json;
            vl = b->json_len;
        } else {
            const hs_block_mp_t *mp = block_mp(b);
            if (!mp)
                return HS_ENOMEM;
            v = mp->bytes;
            vl = mp->len;
        }
        if (hs->push)
            return hs_hubproto_invocation_raw(out, h->fmt, "event", &v, &vl, 1);
        return hs_hubproto_stream_item_raw(out, h->fmt, hs->id, v, vl);
    }
    hs->done = true;
    if (!hs->push)
        return hs_hubproto_completion(out, h->fmt, hs->id, NULL, NULL, 0);
    /* target `closed`, arguments [stream, "closed" | "deleted"] */
    const char *reason = b->kind == HS_BLOCK_DELETED ? "deleted" : "closed";
    hs_buf_t args = {0};
    int rc = hs_buf_reserve(&args, hs_json_quoted_len(b->stream, b->stream_len) + 32);
    if (rc)
        return rc;
    size_t n1 = hs_json_quote(b->stream, b->stream_len, (char *)args.p);
    size_t n2 = hs_json_quote(reason, strlen(reason), (char *)args.p + n1);
    args.len = n1 + n2;
    if (h->fmt == HS_HUB_MSGPACK) {
        hs_buf_t mp = {0};
        rc = hs_hubproto_json_to_msgpack((const char *)args.p, n1, &mp);
        size_t m1 = mp.len;
        if (!rc)
            rc = hs_hubproto_json_to_msgpack((const char *)args.p + n1, n2, &mp);
        if (!rc) {
            const uint8_t *av[2] = {mp.p, mp.p + m1};
            size_t al[2] = {m1, mp.len - m1};
            rc = hs_hubproto_invocation_raw(out, h->fmt, "closed", av, al, 2);
        }
        hs_buf_free(&mp);
    } else {
        const uint8_t *av[2] = {args.p, args.p + n1};
        size_t al[2] = {n1, n2};
        rc = hs_hubproto_invocation_raw(out, h->fmt, "closed", av, al, 2);
    }
    hs_buf_free(&args);
    return rc;
}

/* ---- /eventstreamhub ---- */

/* The lazily built PascalCase form of a block (escodec.h), shared like its MessagePack. */
static const hs_block_es_t *block_es(hs_block_t *b)
{
    hs_block_es_t *es = atomic_load_explicit(&b->es, memory_order_acquire);
    if (es)
        return es;
    hs_buf_t raw = {0};
    if (hs_es_render(b->json, b->json_len, false, &raw)) {
        hs_buf_free(&raw);
        return NULL;
    }
    size_t esc = hs_json_quoted_len((const char *)raw.p, raw.len) - 2;
    es = malloc(sizeof(*es) + raw.len + esc + 2);
    if (!es) {
        hs_buf_free(&raw);
        return NULL;
    }
    es->raw_len = (uint32_t)raw.len;
    memcpy(es->bytes, raw.p, raw.len);
    /* quoted, then the quotes dropped: the text inside a JSON string */
    size_t q = hs_json_quote((const char *)raw.p, raw.len, es->bytes + raw.len);
    memmove(es->bytes + raw.len, es->bytes + raw.len + 1, q - 2);
    es->esc_len = (uint32_t)(q - 2);
    hs_buf_free(&raw);
    hs_block_es_t *expected = NULL;
    if (!atomic_compare_exchange_strong_explicit(&b->es, &expected, es, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        free(es);
        return expected;
    }
    hs_block_charge_form(b, hs_block_es_bytes(es));
    return es;
}

/* One array holds the events of one publish (the writer marks its last one); events read
 * back for a catch-up, or from another node, are grouped up to these bounds. */
#define ES_GROUP_EVENTS 1000
#define ES_GROUP_BYTES  ((size_t)256 << 10)

/* Takes the next group of events off an /eventstreamhub subscription into arr (the array's
 * text, escaped for JSON or raw for MessagePack, after `room` bytes left for a prefix):
 * the number of events, or -1 without memory. A group is one publish (the writer marks its
 * last event) or, for events read back (catch-up, other nodes), one commit: a block of another
 * commit time is carried over to start the next group. A stream's end ends the subscription
 * (the seed had no such message: nothing is sent). */
static long es_group(hs_hub_t *h, hs_hubsub_t *hs, hs_buf_t *arr, size_t room)
{
    long n = 0;
    int64_t time_us = 0;
    arr->len = 0;
    if (hs_buf_reserve(arr, room + 1))
        return -1;
    arr->len = room;
    for (;;) {
        hs_block_t *b = hs->es->carry;
        hs->es->carry = NULL;
        if (!b)
            b = hs_sub_pop_spsc(hs->sub, hs_fanout_block_size);
        if (!b)
            break;
        if (n && b->kind == HS_BLOCK_EVENT && b->time_us != time_us) {
            hs->es->carry = b;
            break;
        }
        time_us = b->time_us;
        if (b->kind != HS_BLOCK_EVENT) {
            hs->done = true;
            hs_block_unref(b);
            break;
        }
        const hs_block_es_t *es = block_es(b);
        bool json = h->fmt == HS_HUB_JSON;
        if (!es || hs_buf_put(arr, n ? "," : "[", 1) ||
            hs_buf_put(arr, es->bytes + (json ? es->raw_len : 0),
                       json ? es->esc_len : es->raw_len)) {
            hs_block_unref(b);
            return -1;
        }
        hs->es->pos = b->position;
        hs->es->ver = b->version;
        hs_ctr_add(&h->io->m.delivered[HS_MD_SIGNALR], 1);
        bool last = b->flags & HS_BLOCK_F_LAST;
        hs_block_unref(b);
        if (++n >= ES_GROUP_EVENTS || last || arr->len >= ES_GROUP_BYTES)
            break;
    }
    if (n && hs_buf_put(arr, "]", 1))
        return -1;
    return n;
}

/* Packs an /eventstreamhub subscription: an Invocation of target <stream> per group. */
static bool pack_es(hs_hub_t *h, hs_hubsub_t *hs, hs_buf_t *out, size_t start, size_t budget)
{
    hs_buf_t arr = {0};
    bool full = false;
    while (!hs->done && !hs->es->frozen) {
        if (out->len - start >= budget ||
            (h->stateful && h->st->replay.len >= h->srv->cfg.hub_stateful_buffer)) {
            full = true;
            break;
        }
        /* room for the argument's prefix: a quote, or a str header */
        long n = es_group(h, hs, &arr, 5);
        if (n < 0) {
            hs_buf_free(&arr);
            hs_hub_fail_oom(h);
            return true;
        }
        if (n == 0)
            break;
        const uint8_t *av[2];
        size_t al[2];
        size_t text = arr.len - 5;
        if (h->fmt == HS_HUB_JSON) {
            if (hs_buf_put(&arr, "\"", 1)) {
                hs_buf_free(&arr);
                hs_hub_fail_oom(h);
                return true;
            }
            arr.p[4] = '"';
            av[0] = arr.p + 4;
            al[0] = text + 2;
            av[1] = (const uint8_t *)"{}";
            al[1] = 2;
        } else {
            uint8_t hd[5];
            size_t hl = hs_msgpack_str_header(hd, text);
            memcpy(arr.p + 5 - hl, hd, hl);
            av[0] = arr.p + 5 - hl;
            al[0] = text + hl;
            av[1] = (const uint8_t *)"\x80"; /* an empty map */
            al[1] = 1;
        }
        size_t before = out->len;
        int rc = hs_hubproto_invocation_raw(out, h->fmt, hs->sub->stream, av, al, 2);
        if (rc || hs_hub_track(h, out->p + before, out->len - before)) {
            out->len = before;
            hs_buf_free(&arr);
            hs_hub_fail_oom(h);
            return true;
        }
    }
    hs_buf_free(&arr);
    return full;
}

/* Packs one subscription's queued blocks; true when the budget is used up. */
static bool pack_sub(hs_hub_t *h, hs_hubsub_t *hs, hs_buf_t *out, size_t start, size_t budget)
{
    hs_sub_t *s = hs->sub;
    bool full = false;
    if (hs->es) {
        full = pack_es(h, hs, out, start, budget);
        if (hs_sub_space_due(s)) {
            hs_fanout_space(h->srv->fanout, s);
        }
        return full;
    }
    while (!hs->done) {
        if (out->len - start >= budget ||
            (h->stateful && h->st->replay.len >= h->srv->cfg.hub_stateful_buffer)) {
            full = true;
            break;
        }
        hs_block_t *b = hs_sub_pop_spsc(s, hs_fanout_block_size);
        if (!b)
            break;
        if (b->kind == HS_BLOCK_EVENT)
            hs_ctr_add(&h->io->m.delivered[HS_MD_SIGNALR], 1);
        size_t before = out->len;
        int rc = encode_block(h, hs, b, out);
        hs_block_unref(b);
        if (rc || hs_hub_track(h, out->p + before, out->len - before)) {
            out->len = before;
            hs_hub_fail_oom(h);
            return true;
        }
    }
    if (hs_sub_space_due(s)) {
        hs_fanout_space(h->srv->fanout, s);
    }
    return full;
}

size_t hs_hub_pack(hs_hub_t *h, hs_buf_t *out, size_t budget)
{
    size_t start = out->len;
    if (h->ctl.len) {
        if (hs_buf_put(out, h->ctl.p, h->ctl.len)) {
            hs_hub_fail_oom(h);
            return 0;
        }
        h->ctl.len = 0;
        h->out_charge += h->ctl_charge; /* the transport gives it back once this is written */
        h->ctl_charge = 0;
    }
    if (h->closing || h->ended || !h->handshaken || !h->subs)
        return out->len - start;
    /* round robin over the subscriptions, starting where the last pack stopped */
    hs_hubsub_t *first = h->rr ? h->rr : h->subs, *cur = first;
    bool any_done = false;
    do {
        hs_hubsub_t *next = cur->next ? cur->next : h->subs;
        bool full = pack_sub(h, cur, out, start, budget);
        any_done |= cur->done;
        if (full) {
            h->rr = cur; /* its rest goes first next time */
            break;
        }
        cur = next;
    } while (cur != first && !h->closing);
    if (any_done) {
        for (hs_hubsub_t *s = h->subs, *n; s; s = n) {
            n = s->next;
            if (s->done)
                hs_hub_sub_free(h, s);
        }
    }
    if (h->rr && h->rr->done)
        h->rr = NULL;
    return out->len - start;
}

bool hs_hub_has_output(hs_hub_t *h)
{
    if (h->ctl.len)
        return true;
    if (h->closing || h->ended || !h->handshaken)
        return false;
    if (h->stateful && h->st->replay.len >= h->srv->cfg.hub_stateful_buffer)
        return false;
    for (hs_hubsub_t *s = h->subs; s; s = s->next)
        if (!hs_sub_empty(s->sub) || (s->es && s->es->carry))
            return true;
    return false;
}
