/*
 * /eventstreamhub's work on the writer thread (writer.h: hs_es_op_t): finding a stream by its
 * name ignoring ASCII case, and the drop-in's persistent subscribers. It runs inside the
 * writer's batch transaction like an append, so a subscriber's starting point is exactly the
 * stream's head at that moment of the log: the events after it are the ones it gets, with no
 * gap and none twice.
 *
 * Name rule: an /eventstreamhub name means the stream of exactly that name when there is one,
 * else the oldest stream whose name equals it ignoring ASCII case, else a new stream spelt as
 * given. Names differing only in case therefore reach one stream through /eventstreamhub, while
 * /hub and the HTTP API keep comparing names byte for byte.
 */
#include <string.h>

#include "storage/writer_impl.h"
#include "util/utf8.h"

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
    return rc == HS_ENOENT ? 0 : rc;
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
