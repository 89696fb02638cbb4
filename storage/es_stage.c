/*
 * /eventstreamhub's work on the writer thread (writer.h: hs_es_op_t): finding a stream by its
 * name ignoring ASCII case, and the drop-in's persistent subscribers. It runs inside the
 * writer's batch transaction like an append, so a subscriber's starting point is exactly the
 * stream's head at that moment of the log: the events after it are the ones it gets, with no
 * gap and none twice.
 *
 * Stream association (below): the copies an appended entry owes the streams linked to its
 * stream join the batch as entries of their own, so that they commit with their originals.
 *
 * Name rule: an /eventstreamhub name means the stream of exactly that name when there is one,
 * else the oldest stream whose name equals it ignoring ASCII case, else a new stream spelt as
 * given. Names differing only in case therefore reach one stream through /eventstreamhub, while
 * /hub and the HTTP API keep comparing names byte for byte.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/json.h"
#include "storage/writer_impl.h"
#include "util/buf.h"
#include "util/time.h"
#include "util/utf8.h"
#include "util/uuid.h"

int hs_wr_es_fold(hs_writer_t *w, hs_ingest_t *e)
{
    head_t *h;
    int rc = hs_wr_head(w, e->stream, e->stream_len, &h);
    if (rc || h)
        return rc;
    char fold[HS_STORE_NAME_MAX], name[HS_STORE_NAME_MAX];
    if (e->stream_len > sizeof fold)
        return 0;
    hs_ascii_fold(e->stream, e->stream_len, fold);
    hs_stream_head_t sh;
    rc = hs_store_stream_by_fold(w->st, fold, e->stream_len, &sh, name);
    if (rc == HS_ENOENT)
        return 0;
    if (rc)
        return rc;
    /* the same length: ASCII folding keeps every byte's place; the entry owns its arena */
    memcpy((char *)e->stream, name, e->stream_len);
    return 0;
}

/* Recount after this many rows added: another node's rows count only from then on. */
#define ES_RECOUNT_ADDED 1000
/* At the limit, a refusal counts again at most this often (a count reads the whole table). */
#define ES_RECOUNT_FULL_US 1000000

/* Whether one more subscriber row fits under cfg.es_max_subscribers (*room), counting the
 * table when the figure kept is unknown, old by ES_RECOUNT_ADDED rows, or says it is full. */
static int es_room(hs_writer_t *w, bool *room)
{
    int64_t max = w->cfg.es_max_subscribers;
    *room = true;
    if (max <= 0)
        return 0;
    int64_t now = hs_mono_us();
    bool full = w->es_rows >= max;
    if (w->es_rows < 0 || w->es_added >= ES_RECOUNT_ADDED ||
        (full && now - w->es_count_us >= ES_RECOUNT_FULL_US)) {
        int rc = hs_store_es_sub_count(w->st, &w->es_rows);
        if (rc) {
            w->es_rows = -1;
            return rc;
        }
        w->es_added = 0;
        w->es_count_us = now;
    }
    *room = w->es_rows < max;
    return 0;
}

static int es_subscribe(hs_writer_t *w, hs_ingest_t *e, int64_t ts, size_t *nrows)
{
    hs_es_op_t *op = e->es;
    head_t *h;
    int rc = hs_wr_es_fold(w, e);
    if (rc == 0)
        rc = hs_wr_head(w, e->stream, e->stream_len, &h);
    if (rc == 0 && !h)
        rc = hs_wr_head_create(w, e->stream, e->stream_len, ts, &h);
    if (rc)
        return rc;
    if (op->has_from) {
        /* the resume point is read from the table: this batch's rows must be in it */
        if ((rc = hs_wr_flush_rows(w, nrows)))
            return rc;
        *nrows = 0;
    }
    hs_es_sub_t row;
    rc = hs_store_es_sub_get(w->st, op->sub_id, &row);
    if (rc && rc != HS_ENOENT)
        return rc;
    if (rc == 0) {
        if (strcmp(row.key, op->sub_key) != 0) {
            e->status = HS_EFORBIDDEN;
            return 0;
        }
        if (row.stream_id != h->h.id) {
            e->status = HS_ECONFLICT;
            return 0;
        }
        op->resumed = true;
        op->from_version = row.cur_version;
        if ((rc = hs_store_es_sub_attach(w->st, op->sub_id, op->conn)))
            return rc;
    } else {
        bool room;
        if ((rc = es_room(w, &room)))
            return rc;
        if (!room) {
            e->status = HS_ETOOLARGE;
            return 0;
        }
        hs_es_sub_t sub = {
            .stream_id = h->h.id,
            .cur_position = h->h.position,
            .cur_version = h->h.version,
            .created_us = ts,
        };
        memcpy(sub.id, op->sub_id, sizeof sub.id);
        memcpy(sub.key, op->sub_key, sizeof sub.key);
        memcpy(sub.conn, op->conn, sizeof sub.conn);
        if ((rc = hs_store_es_sub_insert(w->st, &sub)))
            return rc;
        if (w->es_rows >= 0) {
            w->es_rows++;
            w->es_added++;
        }
        op->resumed = false;
        op->from_version = h->h.version;
    }
    if (op->has_from) {
        rc = hs_store_es_resume(w->st, h->h.id, op->from_position, h->h.version, &op->from_version);
        if (rc)
            return rc;
    }
    e->result.last_version = h->h.version;
    e->result.last_position = h->h.position;
    return 0;
}

static int es_unsubscribe(hs_writer_t *w, hs_ingest_t *e)
{
    hs_es_op_t *op = e->es;
    head_t *h;
    int rc = hs_wr_es_fold(w, e);
    if (rc == 0)
        rc = hs_wr_head(w, e->stream, e->stream_len, &h);
    if (rc)
        return rc;
    hs_es_sub_t row;
    rc = hs_store_es_sub_get(w->st, op->sub_id, &row);
    if (rc == HS_ENOENT) {
        e->status = HS_ENOENT;
        return 0;
    }
    if (rc)
        return rc;
    if (strcmp(row.key, op->sub_key) != 0) {
        e->status = HS_EFORBIDDEN;
        return 0;
    }
    if (!h || row.stream_id != h->h.id) {
        e->status = HS_ENOENT;
        return 0;
    }
    rc = hs_store_es_sub_delete(w->st, op->sub_id);
    if (rc == 0 && w->es_rows > 0)
        w->es_rows--;
    return rc == HS_ENOENT ? 0 : rc;
}

/* ---- stream associations ---- */

struct es_link {
    int64_t source, target;
    uint32_t len;
    char *name; /* the target's */
};

void hs_wr_es_free(hs_writer_t *w)
{
    for (size_t i = 0; i < w->nlinks; i++)
        free(w->links[i].name);
    free(w->links);
    w->links = NULL;
    w->nlinks = w->links_cap = 0;
    w->links_loaded = false;
}

static int link_push(hs_writer_t *w, int64_t source, int64_t target, const char *name, size_t len)
{
    if (hs_wr_grow((void **)&w->links, &w->links_cap, w->nlinks + 1, sizeof(struct es_link)))
        return HS_ENOMEM;
    char *copy = malloc(len + 1);
    if (!copy)
        return HS_ENOMEM;
    memcpy(copy, name, len);
    copy[len] = '\0';
    w->links[w->nlinks++] = (struct es_link){source, target, (uint32_t)len, copy};
    return 0;
}

static int on_link(void *ctx, int64_t source, int64_t target, const char *name, size_t len)
{
    return link_push(ctx, source, target, name, len);
}

static int load_links(hs_writer_t *w)
{
    if (w->links_loaded)
        return 0;
    hs_wr_es_free(w);
    int rc = hs_store_es_links(w->st, on_link, w);
    if (rc == 0)
        w->links_loaded = true;
    return rc;
}

int hs_wr_es_batch_start(hs_writer_t *w)
{
    int64_t gen = 0;
    int rc = hs_store_es_links_gen(w->st, &gen);
    if (rc == 0 && gen != w->links_gen) {
        w->links_gen = gen;
        w->links_loaded = false;
    }
    return rc;
}

static void copy_done(hs_ingest_t *e)
{
    hs_ingest_free(e);
}

/* The metadata of a copy: the source's with "$originalEventId" first, the first original's id
 * kept through copies of copies. Written to out; returns its length. */
static size_t copy_metadata(const hs_ingest_event_t *ev, char *out)
{
    hs_json_span_t m, orig;
    if (ev->metadata && hs_json_parse(ev->metadata, ev->metadata_len, &m, NULL, 0) == 0 &&
        m.type == HS_JSON_OBJECT && hs_json_object_get(&m, "$originalEventId", false, &orig)) {
        memcpy(out, ev->metadata, ev->metadata_len);
        return ev->metadata_len;
    }
    size_t o = (size_t)sprintf(out, "{\"$originalEventId\":");
    o += hs_json_quote(ev->id, ev->id_len, out + o);
    if (!ev->metadata || ev->metadata_len <= 2) { /* none, or {} */
        out[o++] = '}';
        return o;
    }
    out[o++] = ',';
    memcpy(out + o, ev->metadata + 1, ev->metadata_len - 1); /* after its '{' */
    return o + ev->metadata_len - 1;
}

/* What a copy's metadata may take: the source's, the member and a quoted id. */
static size_t copy_metadata_room(const hs_ingest_event_t *ev)
{
    return ev->metadata_len + 24 + 6 * ev->id_len + 2;
}

/* A new append entry of n events for `target`, each a copy of src[i] (type and data borrowed
 * when `borrow`, else copied into the entry), appended to the batch. */
static int add_copies(hs_writer_t *w, const char *target, size_t tlen, const hs_ingest_event_t *src,
                      uint32_t n, bool borrow)
{
    size_t arena = tlen + 1;
    for (uint32_t i = 0; i < n; i++)
        arena += 37 + copy_metadata_room(&src[i]) +
                 (borrow ? 0 : (size_t)src[i].type_len + 1 + src[i].data_len);
    char *a;
    hs_ingest_t *e = hs_ingest_alloc(n, arena, &a);
    if (!e)
        return HS_ENOMEM;
    if (hs_wr_grow((void **)&w->batch, &w->batch_cap, w->nbatch + 1, sizeof(hs_ingest_t *))) {
        hs_ingest_free(e);
        return HS_ENOMEM;
    }
    memcpy(a, target, tlen);
    a[tlen] = '\0';
    e->stream = a;
    e->stream_len = (uint32_t)tlen;
    a += tlen + 1;
    e->kind = HS_INGEST_APPEND;
    e->expected_version = HS_ANY_VERSION;
    e->done = copy_done;
    for (uint32_t i = 0; i < n; i++) {
        const hs_ingest_event_t *s = &src[i];
        hs_ingest_event_t *c = &e->events[i];
        if (borrow) {
            c->type = s->type;
            c->data = s->data;
        } else {
            memcpy(a, s->type, s->type_len);
            a[s->type_len] = '\0';
            c->type = a;
            a += s->type_len + 1;
            memcpy(a, s->data, s->data_len);
            c->data = a;
            a += s->data_len;
        }
        c->type_len = s->type_len;
        c->data_len = s->data_len;
        c->metadata = a;
        c->metadata_len = (uint32_t)copy_metadata(s, a);
        a += c->metadata_len;
        hs_uuid7(a);
        c->id = a;
        c->id_len = 36;
        a += 37;
    }
    e->nevents = n;
    w->batch[w->nbatch++] = e;
    return 0;
}

int hs_wr_es_copies(hs_writer_t *w, hs_ingest_t *e)
{
    int rc = load_links(w);
    if (rc || !w->nlinks)
        return rc;
    head_t *h;
    if ((rc = hs_wr_head(w, e->stream, e->stream_len, &h)) || !h)
        return rc;
    for (size_t i = 0; i < w->nlinks && rc == 0; i++)
        if (w->links[i].source == h->h.id)
            rc = add_copies(w, w->links[i].name, w->links[i].len, e->events, e->nevents, true);
    return rc;
}

/* Whether events flow from `from` into `to` through the links (following source -> target). */
static bool flows(hs_writer_t *w, int64_t from, int64_t to, size_t depth)
{
    if (from == to)
        return true;
    if (depth > w->nlinks)
        return false; /* no cycle exists, so no path is longer than the links */
    for (size_t i = 0; i < w->nlinks; i++)
        if (w->links[i].source == from && flows(w, w->links[i].target, to, depth + 1))
            return true;
    return false;
}

/* A stream a reference names: its head (NULL when missing), its name in the ref. */
static int resolve_ref(hs_writer_t *w, hs_es_ref_t *r, head_t **out)
{
    *out = NULL;
    if (!r->len) {
        hs_stream_head_t sh;
        char name[HS_ES_REF_NAME_MAX + 1];
        int rc = hs_store_es_stream_by_guid(w->st, r->guid, &sh, name, sizeof name);
        if (rc == HS_ENOENT)
            return 0;
        if (rc)
            return rc;
        r->len = (uint32_t)strlen(name);
        memcpy(r->name, name, r->len + 1);
    } else if (r->len <= HS_ES_REF_NAME_MAX) {
        hs_ingest_t tmp = {.stream = r->name, .stream_len = r->len};
        int rc = hs_wr_es_fold(w, &tmp);
        if (rc)
            return rc;
    }
    return hs_wr_head(w, r->name, r->len, out);
}

typedef struct backfill {
    hs_ingest_event_t *ev;
    size_t n, cap, bytes;
    hs_buf_t text;
    bool over;
} backfill_t;

static int on_backfill(void *ctx, const hs_record_t *rec)
{
    backfill_t *b = ctx;
    b->bytes += rec->type_len + rec->data_len + rec->metadata_len + rec->event_id_len;
    if (b->n == HS_ES_BACKFILL_EVENTS || b->bytes > HS_ES_BACKFILL_BYTES) {
        b->over = true;
        return 1;
    }
    if (hs_wr_grow((void **)&b->ev, &b->cap, b->n + 1, sizeof(*b->ev)))
        return HS_ENOMEM;
    /* offsets for now: the text buffer moves as it grows */
    size_t at = b->text.len;
    if (hs_buf_put(&b->text, rec->type, rec->type_len) ||
        hs_buf_put(&b->text, rec->data, rec->data_len) ||
        hs_buf_put(&b->text, rec->metadata ? rec->metadata : "", rec->metadata_len) ||
        hs_buf_put(&b->text, rec->event_id, rec->event_id_len))
        return HS_ENOMEM;
    b->ev[b->n++] = (hs_ingest_event_t){
        .type = (const char *)(uintptr_t)at,
        .type_len = (uint32_t)rec->type_len,
        .data_len = (uint32_t)rec->data_len,
        .metadata = rec->metadata ? "" : NULL,
        .metadata_len = (uint32_t)rec->metadata_len,
        .id_len = (uint32_t)rec->event_id_len,
    };
    return 0;
}

/* Reads a source's events so far for a backfill: 0 (b->over when past the bounds) or a store
 * error. The events' strings point into b->text. */
static int read_backfill(hs_writer_t *w, const char *name, size_t len, backfill_t *b)
{
    int rc =
        hs_store_read_stream(w->st, name, len, 0, false, HS_ES_BACKFILL_EVENTS + 1, on_backfill, b);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < b->n; i++) {
        hs_ingest_event_t *ev = &b->ev[i];
        const char *p = (const char *)b->text.p + (uintptr_t)ev->type;
        ev->type = p;
        ev->data = p + ev->type_len;
        ev->metadata = ev->metadata ? p + ev->type_len + ev->data_len : NULL;
        ev->id = p + ev->type_len + ev->data_len + ev->metadata_len;
    }
    return 0;
}

static int es_associate(hs_writer_t *w, hs_ingest_t *e, int64_t ts, size_t *nrows)
{
    hs_es_op_t *op = e->es;
    op->failed = -1;
    if (!op->refs || op->nrefs < 1 || op->nrefs > HS_ES_REFS_MAX) {
        e->status = HS_EINVAL;
        return 0;
    }
    head_t *heads[HS_ES_REFS_MAX];
    int rc = load_links(w);
    for (size_t i = 0; i < op->nrefs && rc == 0; i++) {
        rc = resolve_ref(w, &op->refs[i], &heads[i]);
        if (rc == 0 && !heads[i] && i == 0 && !op->existing && op->refs[0].len)
            rc = hs_wr_head_create(w, op->refs[0].name, op->refs[0].len, ts, &heads[0]);
        if (rc == 0 && !heads[i]) {
            e->status = HS_ENOENT;
            op->failed = (int)i;
            return 0;
        }
    }
    if (rc)
        return rc;
    int64_t target = heads[0]->h.id;
    hs_uuid_of_name(op->refs[0].name, op->refs[0].len, op->target_guid);
    /* refuse what would make a cycle, or be too many links, before changing anything */
    size_t adding = 0;
    for (size_t i = 1; i < op->nrefs; i++) {
        int64_t source = heads[i]->h.id;
        bool known = false;
        for (size_t k = 0; k < w->nlinks && !known; k++)
            known = w->links[k].source == source && w->links[k].target == target;
        if (known)
            continue;
        if (flows(w, target, source, 0)) {
            e->status = HS_ECONFLICT;
            op->failed = (int)i;
            return 0;
        }
        adding++;
    }
    if (w->nlinks + adding > HS_ES_LINKS_MAX) {
        e->status = HS_ETOOLARGE;
        return 0;
    }
    /* the backfills are read first: one over its bounds fails the whole association */
    backfill_t *fills = calloc(op->nrefs, sizeof(*fills));
    if (!fills)
        return HS_ENOMEM;
    if (op->backfill && (rc = hs_wr_flush_rows(w, nrows)) == 0)
        *nrows = 0;
    for (size_t i = 1; i < op->nrefs && rc == 0 && op->backfill; i++) {
        rc = read_backfill(w, op->refs[i].name, op->refs[i].len, &fills[i]);
        if (rc == 0 && fills[i].over) {
            e->status = HS_ETOOLARGE;
            op->failed = (int)i;
            goto out;
        }
    }
    for (size_t i = 1; i < op->nrefs && rc == 0; i++) {
        int64_t source = heads[i]->h.id;
        bool known = false;
        for (size_t k = 0; k < w->nlinks && !known; k++)
            known = w->links[k].source == source && w->links[k].target == target;
        if (known)
            continue;
        rc = hs_store_es_link_add(w->st, target, source, ts);
        if (rc == 0)
            rc = link_push(w, source, target, op->refs[0].name, op->refs[0].len);
        if (rc == 0)
            op->linked++;
        if (rc == 0 && op->backfill && fills[i].n) {
            rc = add_copies(w, op->refs[0].name, op->refs[0].len, fills[i].ev, (uint32_t)fills[i].n,
                            false);
            op->copied += (int64_t)fills[i].n;
        }
    }
out:
    for (size_t i = 0; i < op->nrefs; i++) {
        free(fills[i].ev);
        hs_buf_free(&fills[i].text);
    }
    free(fills);
    return rc;
}

int hs_wr_stage_es(hs_writer_t *w, hs_ingest_t *e, int64_t ts, size_t *nrows)
{
    if (!e->es) {
        e->status = HS_EINVAL;
        return 0;
    }
    switch (e->kind) {
    case HS_INGEST_ES_SUBSCRIBE:
        return es_subscribe(w, e, ts, nrows);
    case HS_INGEST_ES_UNSUBSCRIBE:
        return es_unsubscribe(w, e);
    case HS_INGEST_ES_ASSOCIATE:
        return es_associate(w, e, ts, nrows);
    case HS_INGEST_ES_CURSOR:
        for (size_t i = 0; i < e->es->ncursors; i++) {
            const hs_es_cursor_t *c = &e->es->cursors[i];
            int rc = hs_store_es_sub_cursor(w->st, c->id, c->position, c->version);
            if (rc)
                return rc;
        }
        return 0;
    default:
        e->status = HS_EINVAL;
        return 0;
    }
}
