/*
 * Staging one batch on the writer thread (see writer.h): the cache of stream heads (versions,
 * positions, closed flags, loaded from the database on first use and bounded), idempotent
 * retries (an event id already appended returns its first result), the rows of the appends,
 * closes and deletes in order (each also logged for the other nodes on a shared database), and
 * the committed batch encoded once for the fan-out.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/writer_impl.h"

/* ---- ingest entries ---- */

hs_ingest_t *hs_ingest_alloc(uint32_t nevents, size_t arena, char **arena_out)
{
    size_t sz = sizeof(hs_ingest_t) + (size_t)nevents * sizeof(hs_ingest_event_t) + arena;
    hs_ingest_t *e = calloc(1, sz);
    if (!e)
        return NULL;
    e->events = (hs_ingest_event_t *)(e + 1);
    e->nevents = nevents;
    e->expected_version = HS_ANY_VERSION;
    if (arena_out)
        *arena_out = (char *)(e->events + nevents);
    return e;
}

void hs_ingest_free(hs_ingest_t *e)
{
    free(e);
}

/* ---- heads cache ---- */

static uint32_t name_hash(const char *s, size_t n)
{
    return hs_stream_hash(s, n);
}

void hs_wr_heads_clear(hs_writer_t *w)
{
    for (uint32_t i = 0; i < w->nbuckets; i++) {
        head_t *h = w->heads[i];
        while (h) {
            head_t *next = h->next;
            free(h);
            h = next;
        }
        w->heads[i] = NULL;
    }
    w->nheads = 0;
    w->dirty = NULL;
}

static head_t *heads_find(hs_writer_t *w, const char *name, size_t len, uint32_t hash)
{
    for (head_t *h = w->heads[hash & (w->nbuckets - 1)]; h; h = h->next)
        if (h->hash == hash && h->len == len && memcmp(h->name, name, len) == 0)
            return h;
    return NULL;
}

static head_t *heads_add(hs_writer_t *w, const char *name, size_t len, uint32_t hash,
                         const hs_stream_head_t *sh)
{
    head_t *h = calloc(1, sizeof(*h) + len + 1);
    if (!h)
        return NULL;
    memcpy(h->name, name, len);
    h->len = (uint32_t)len;
    h->hash = hash;
    h->h = *sh;
    h->next = w->heads[hash & (w->nbuckets - 1)];
    w->heads[hash & (w->nbuckets - 1)] = h;
    w->nheads++;
    return h;
}

static void heads_remove(hs_writer_t *w, head_t *dead)
{
    head_t **pp = &w->heads[dead->hash & (w->nbuckets - 1)];
    while (*pp && *pp != dead)
        pp = &(*pp)->next;
    if (*pp)
        *pp = dead->next;
    for (head_t **d = &w->dirty; *d; d = &(*d)->dirty_next)
        if (*d == dead) {
            *d = dead->dirty_next;
            break;
        }
    w->nheads--;
    free(dead);
}

/* The cached head of a stream, loading it from the database; *h = NULL when the stream does not
 * exist. Returns 0 or HS_EDB / HS_ENOMEM. */
int hs_wr_head(hs_writer_t *w, const char *name, size_t len, head_t **out)
{
    uint32_t hash = name_hash(name, len);
    head_t *h = heads_find(w, name, len, hash);
    if (h) {
        *out = h;
        return 0;
    }
    hs_stream_head_t sh;
    int rc = hs_store_get_stream(w->st, name, len, &sh);
    if (rc == HS_ENOENT) {
        *out = NULL;
        return 0;
    }
    if (rc)
        return rc;
    *out = heads_add(w, name, len, hash, &sh);
    return *out ? 0 : HS_ENOMEM;
}

int hs_wr_head_create(hs_writer_t *w, const char *name, size_t len, int64_t ts, head_t **out)
{
    int64_t id;
    int rc = hs_store_create_stream(w->st, name, len, ts, &id);
    if (rc)
        return rc;
    hs_stream_head_t sh = {.id = id, .created_us = ts, .updated_us = ts};
    head_t *h = heads_add(w, name, len, name_hash(name, len), &sh);
    if (!h)
        return HS_ENOMEM;
    h->is_new = true;
    *out = h;
    return 0;
}

static void mark_dirty(hs_writer_t *w, head_t *h)
{
    if (!h->dirty) {
        h->dirty = true;
        h->dirty_next = w->dirty;
        w->dirty = h;
    }
}

/* ---- batch processing ---- */

int hs_wr_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need)
        nc *= 2;
    void *p = realloc(*arr, nc * elem);
    if (!p)
        return HS_ENOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

static seen_id_t *seen_find(hs_writer_t *w, int64_t stream_id, const char *id, size_t len)
{
    for (size_t i = 0; i < w->nseen; i++) {
        seen_id_t *s = &w->seen[i];
        if (s->stream_id == stream_id && s->len == len && memcmp(s->id, id, len) == 0)
            return s;
    }
    return NULL;
}

/*
 * Idempotency: if every event of the entry carries a client id already appended to the stream,
 * the entry is a retry and gets the original result. Returns 1 when it is a retry (result set),
 * 0 when none of its ids exist, HS_EINVAL when some exist and some do not, or a store error.
 */
static int check_retry(hs_writer_t *w, hs_ingest_t *e, head_t *h)
{
    if (!h || !e->nevents || !e->events[0].client_id)
        return 0;
    size_t found = 0;
    int64_t fv = 0, lv = 0, fp = 0, lp = 0;
    for (uint32_t i = 0; i < e->nevents; i++) {
        hs_ingest_event_t *ev = &e->events[i];
        if (!ev->client_id)
            continue;
        int64_t v, p;
        seen_id_t *s = seen_find(w, h->h.id, ev->id, ev->id_len);
        int rc;
        if (s) {
            v = s->version;
            p = s->position;
            rc = 0;
        } else if (h->is_new) {
            rc = HS_ENOENT;
        } else {
            rc = hs_store_find_event(w->st, h->h.id, ev->id, ev->id_len, &v, &p);
        }
        if (rc == HS_ENOENT)
            continue;
        if (rc)
            return rc;
        if (!found || v < fv) {
            fv = v;
            fp = p;
        }
        if (!found || v > lv) {
            lv = v;
            lp = p;
        }
        found++;
    }
    if (!found)
        return 0;
    if (found != e->nevents)
        return HS_EINVAL;
    e->result.first_version = fv;
    e->result.last_version = lv;
    e->result.first_position = fp;
    e->result.last_position = lp;
    return 1;
}

int hs_wr_flush_rows(hs_writer_t *w, size_t *nrows)
{
    if (!*nrows)
        return 0;
    int rc = hs_store_insert_events(w->st, w->rows, *nrows);
    return rc;
}

/* Stages one append entry. Logical failures go into e->status; returns only store errors. */
int hs_wr_stage_append(hs_writer_t *w, hs_ingest_t *e, int64_t ts, size_t *nrows)
{
    head_t *h;
    int rc = hs_wr_head(w, e->stream, e->stream_len, &h);
    if (rc)
        return rc;
    rc = check_retry(w, e, h);
    if (rc == 1)
        return 0; /* result already set: a retry of a committed publish */
    if (rc == HS_EINVAL) {
        e->status = HS_EINVAL;
        return 0;
    }
    if (rc)
        return rc;
    int64_t cur = h ? h->h.version : 0;
    if (h && h->h.closed) {
        e->status = HS_ECLOSED;
        return 0;
    }
    if (e->expected_version != HS_ANY_VERSION && e->expected_version != cur) {
        e->status = HS_ECONFLICT;
        e->result.actual_version = cur;
        return 0;
    }
    /* duplicate client ids inside one publish are a client error */
    for (uint32_t i = 0; i < e->nevents; i++) {
        if (!e->events[i].client_id)
            continue;
        for (uint32_t j = 0; j < i; j++)
            if (e->events[j].client_id && e->events[j].id_len == e->events[i].id_len &&
                memcmp(e->events[j].id, e->events[i].id, e->events[i].id_len) == 0) {
                e->status = HS_EINVAL;
                return 0;
            }
    }
    if (!h && (rc = hs_wr_head_create(w, e->stream, e->stream_len, ts, &h)))
        return rc;
    if ((rc = hs_wr_grow((void **)&w->rows, &w->rows_cap, *nrows + e->nevents, sizeof(hs_row_t))))
        return rc;
    if ((rc =
             hs_wr_grow((void **)&w->seen, &w->seen_cap, w->nseen + e->nevents, sizeof(seen_id_t))))
        return rc;
    e->result.first_version = h->h.version + 1;
    e->result.first_position = w->next_position;
    for (uint32_t i = 0; i < e->nevents; i++) {
        hs_ingest_event_t *ev = &e->events[i];
        hs_row_t *r = &w->rows[(*nrows)++];
        r->stream_id = h->h.id;
        r->version = ++h->h.version;
        r->position = w->next_position++;
        r->time_us = ts;
        r->event_id = ev->id;
        r->event_id_len = ev->id_len;
        r->type = ev->type;
        r->type_len = ev->type_len;
        r->data = ev->data;
        r->data_len = ev->data_len;
        r->metadata = ev->metadata;
        r->metadata_len = ev->metadata_len;
        if (ev->client_id)
            w->seen[w->nseen++] =
                (seen_id_t){NULL, h->h.id, r->version, r->position, ev->id, ev->id_len};
    }
    h->h.position = w->next_position - 1;
    h->h.updated_us = ts;
    mark_dirty(w, h);
    e->result.last_version = h->h.version;
    e->result.last_position = h->h.position;
    return 0;
}

int hs_wr_stage_close_delete(hs_writer_t *w, hs_ingest_t *e, int64_t ts, size_t *nrows)
{
    head_t *h;
    int rc = hs_wr_head(w, e->stream, e->stream_len, &h);
    if (rc)
        return rc;
    if (!h) {
        e->status = HS_ENOENT;
        return 0;
    }
    e->result.last_version = h->h.version;
    e->result.last_position = h->h.position;
    if (e->kind == HS_INGEST_CLOSE) {
        if (!h->h.closed) {
            h->h.closed = true;
            h->h.updated_us = ts;
            mark_dirty(w, h);
        }
        return hs_wr_log_op(w, HS_OP_CLOSE, e->stream, e->stream_len, h->h.version, ts);
    }
    /* delete: rows staged for this stream must reach the table before the rows are deleted */
    if ((rc = hs_wr_flush_rows(w, nrows)))
        return rc;
    *nrows = 0;
    if ((rc = hs_store_delete_stream(w->st, h->h.id)))
        return rc;
    if ((rc = hs_wr_log_op(w, HS_OP_DELETE, e->stream, e->stream_len, h->h.version, ts)))
        return rc;
    /* its ids may be reused by a new incarnation of the name */
    for (size_t i = 0; i < w->nseen; i++)
        if (w->seen[i].stream_id == h->h.id)
            w->seen[i].stream_id = -1;
    heads_remove(w, h);
    w->links_loaded = false; /* its links went with it */
    return 0;
}

/* A close or delete, logged for the other nodes (feed.c replays it on each) */
int hs_wr_log_op(hs_writer_t *w, int kind, const char *name, size_t len, int64_t version,
                 int64_t ts)
{
    if (!w->shared)
        return 0;
    hs_stream_op_t op = {
        .seq = w->next_seq,
        .position = w->next_position - 1,
        .version = version,
        .time_us = ts,
        .kind = kind,
        .name = name,
        .name_len = len,
    };
    int rc = hs_store_log_op(w->st, &op);
    if (rc == 0)
        w->next_seq++;
    return rc;
}

void hs_wr_finish(hs_writer_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        hs_ingest_t *e = w->batch[i];
        e->done(e);
    }
}

/* Builds the fan-out batch: one block per appended event and per close/delete marker, in
 * commit order. Entries that failed or were retries contribute nothing. */
hs_batch_t *hs_wr_encode_batch(hs_writer_t *w, size_t n, size_t nrows)
{
    hs_batch_t *b = hs_batch_alloc((uint32_t)(nrows + n));
    if (!b)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        hs_ingest_t *e = w->batch[i];
        if (e->status)
            continue;
        if (e->kind == HS_INGEST_CLOSE || e->kind == HS_INGEST_DELETE) {
            hs_block_t *m = w->cfg.encode_marker(e->kind == HS_INGEST_CLOSE ? HS_BLOCK_CLOSED
                                                                            : HS_BLOCK_DELETED,
                                                 e->stream, e->stream_len, e->result.last_version);
            if (m)
                b->blocks[b->n++] = m;
            continue;
        }
        if (e->kind != HS_INGEST_APPEND || !e->appended)
            continue; /* a retry's result points at rows committed earlier */
        for (uint32_t k = 0; k < e->nevents; k++) {
            hs_ingest_event_t *ev = &e->events[k];
            hs_record_t rec = {
                .stream = e->stream,
                .stream_len = e->stream_len,
                .version = e->result.first_version + k,
                .position = e->result.first_position + k,
                .time_us = e->time_us,
                .event_id = ev->id,
                .event_id_len = ev->id_len,
                .type = ev->type,
                .type_len = ev->type_len,
                .data = ev->data,
                .data_len = ev->data_len,
                .metadata = ev->metadata,
                .metadata_len = ev->metadata_len,
            };
            hs_block_t *blk = w->cfg.encode(&rec);
            if (blk) {
                if (k + 1 == e->nevents)
                    blk->flags |= HS_BLOCK_F_LAST;
                b->blocks[b->n++] = blk;
            }
        }
    }
    return b;
}

/* Why /readyz says no: "database unavailable: " and the driver's message, cut to fit. */
