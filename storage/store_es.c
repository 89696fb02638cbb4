/*
 * The store's statements for /eventstreamhub (store.h, "/eventstreamhub"): streams looked up
 * by their ASCII fold, the drop-in's persistent subscribers and their cursors, where a resuming
 * subscriber goes on. The writer runs them inside its transactions (storage/es_stage.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "storage/store_impl.h"
#include "util/utf8.h"
#include "util/uuid.h"

/* Rows filled per round of hs_store_fill_folds (ids are read first, then updated). */
#define FILL_ROUND 256

typedef struct fill_row {
    int64_t id;
    size_t len;
    char name[HS_STORE_NAME_MAX];
} fill_row_t;

static int fill_folds(hs_store_t *st, fill_row_t *rows, size_t *done)
{
    SQLHSTMT h;
    int rc = hs_st_run(st, Q_FOLD_MISSING, NULL, 0, &h, NULL);
    if (rc)
        return rc;
    size_t n = 0;
    while (n < FILL_ROUND && (rc = hs_st_fetch(st, h, Q_FOLD_MISSING)) == 1) {
        const char *name;
        size_t len;
        rows[n].id = hs_st_ival(st, 0);
        if ((rc = hs_st_text_col(st, h, 2, &st->t[T_STREAM], &name, &len)))
            break;
        if (!name || len > HS_STORE_NAME_MAX)
            continue; /* cannot be a stream name this server wrote */
        memcpy(rows[n].name, name, len);
        rows[n].len = len;
        n++;
    }
    SQLFreeStmt(h, SQL_CLOSE);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        char fold[HS_STORE_NAME_MAX], guid[37];
        hs_ascii_fold(rows[i].name, rows[i].len, fold);
        hs_uuid_of_name(rows[i].name, rows[i].len, guid);
        const char *f = fold, *g = guid; /* pointers: HS_PTXT tests its argument */
        hs_par_t p[] = {HS_PTXT(f, rows[i].len), HS_PTXT(g, 36), HS_PINT(rows[i].id)};
        if ((rc = hs_st_run(st, Q_FOLD_SET, p, 3, NULL, NULL)))
            return rc;
    }
    *done = n;
    return 0;
}

int hs_store_fill_folds(hs_store_t *st)
{
    if (st->in_txn)
        return hs_st_fail(st, HS_EINVAL, "hs_store_fill_folds() inside a transaction");
    fill_row_t *rows = malloc(FILL_ROUND * sizeof(*rows));
    if (!rows)
        return hs_st_nomem(st);
    int rc;
    for (;;) {
        size_t n = 0;
        rc = hs_st_finish(st, fill_folds(st, rows, &n));
        if (rc || n < FILL_ROUND)
            break;
    }
    free(rows);
    return rc;
}

static int by_fold(hs_store_t *st, const char *fold, size_t len, hs_stream_head_t *head, char *name)
{
    hs_par_t p[] = {HS_PTXT(fold, len)};
    SQLHSTMT h;
    int rc = hs_st_run(st, Q_STREAM_BY_FOLD, p, 1, &h, NULL);
    if (rc)
        return rc;
    rc = hs_st_fetch(st, h, Q_STREAM_BY_FOLD);
    if (rc == 1) {
        const char *s;
        size_t n;
        hs_st_head_from_cols(st, head);
        rc = hs_st_text_col(st, h, 7, &st->t[T_STREAM], &s, &n);
        if (rc == 0 && (!s || n != len))
            rc = hs_st_fail(st, HS_EDB, "stream by fold: a name of another length");
        if (rc == 0)
            memcpy(name, s, len);
    } else if (rc == 0) {
        rc = HS_ENOENT;
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return rc;
}

int hs_store_stream_by_fold(hs_store_t *st, const char *fold, size_t len, hs_stream_head_t *head,
                            char *name)
{
    if (hs_st_bad_text(fold, len) || !head || !name)
        return hs_st_fail(st, HS_EINVAL, "stream by fold: bad argument");
    return hs_st_finish(st, by_fold(st, fold, len, head, name));
}

/* Copies a text column into a fixed field ("" for NULL). */
static int text_into(hs_store_t *st, SQLHSTMT h, SQLUSMALLINT col, char *out, size_t cap)
{
    const char *s;
    size_t n;
    int rc = hs_st_text_col(st, h, col, &st->t[T_KEY], &s, &n);
    if (rc)
        return rc;
    if (!s)
        n = 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s ? s : "", n);
    out[n] = '\0';
    return 0;
}

static int sub_get(hs_store_t *st, const char *id, hs_es_sub_t *out)
{
    hs_par_t p[] = {HS_PTXT(id, strlen(id))};
    SQLHSTMT h;
    int rc = hs_st_run(st, Q_ES_SUB_GET, p, 1, &h, NULL);
    if (rc)
        return rc;
    rc = hs_st_fetch(st, h, Q_ES_SUB_GET);
    if (rc == 1) {
        memset(out, 0, sizeof(*out));
        snprintf(out->id, sizeof out->id, "%s", id);
        out->stream_id = hs_st_ival(st, 0);
        out->cur_position = hs_st_ival(st, 1);
        out->cur_version = hs_st_ival(st, 2);
        out->from_position = hs_st_ival(st, 3);
        out->to_position = hs_st_ival(st, 4);
        out->created_us = hs_st_ival(st, 5);
        rc = text_into(st, h, 7, out->key, sizeof out->key);
        if (rc == 0)
            rc = text_into(st, h, 8, out->conn, sizeof out->conn);
    } else if (rc == 0) {
        rc = HS_ENOENT;
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return rc;
}

int hs_store_es_sub_get(hs_store_t *st, const char *id, hs_es_sub_t *out)
{
    if (!id || !out)
        return hs_st_fail(st, HS_EINVAL, "get subscriber: bad argument");
    return hs_st_finish(st, sub_get(st, id, out));
}

int hs_store_es_sub_insert(hs_store_t *st, const hs_es_sub_t *sub)
{
    hs_par_t p[] = {HS_PTXT(sub->id, strlen(sub->id)), HS_PTXT(sub->key, strlen(sub->key)),
                    HS_PINT(sub->stream_id),           HS_PTXT(sub->conn, strlen(sub->conn)),
                    HS_PINT(sub->cur_position),        HS_PINT(sub->cur_version),
                    HS_PINT(sub->created_us)};
    return hs_st_finish(st, hs_st_run(st, Q_ES_SUB_INSERT, p, 7, NULL, NULL));
}

int hs_store_es_sub_attach(hs_store_t *st, const char *id, const char *conn)
{
    hs_par_t p[] = {HS_PTXT(conn, strlen(conn)), HS_PTXT(id, strlen(id))};
    return hs_st_finish(st, hs_st_run(st, Q_ES_SUB_ATTACH, p, 2, NULL, NULL));
}

int hs_store_es_sub_cursor(hs_store_t *st, const char *id, int64_t position, int64_t version)
{
    hs_par_t p[] = {HS_PINT(position), HS_PINT(version), HS_PTXT(id, strlen(id)),
                    HS_PINT(position)};
    return hs_st_finish(st, hs_st_run(st, Q_ES_SUB_CURSOR, p, 4, NULL, NULL));
}

int hs_store_es_sub_count(hs_store_t *st, int64_t *n)
{
    *n = 0;
    return hs_st_finish(st, hs_odbc_direct_ints(&st->db, "SELECT COUNT(*) FROM hs_es_subscribers",
                                                "count subscribers", n, 1));
}

int hs_store_es_sub_delete(hs_store_t *st, const char *id)
{
    hs_par_t p[] = {HS_PTXT(id, strlen(id))};
    SQLLEN n = 0;
    int rc = hs_st_run(st, Q_ES_SUB_DELETE, p, 1, NULL, &n);
    if (rc == 0 && n == 0)
        rc = HS_ENOENT;
    return hs_st_finish(st, rc);
}

static int resume(hs_store_t *st, int64_t stream_id, int64_t after, int64_t head, int64_t *version)
{
    hs_par_t p[] = {HS_PINT(stream_id), HS_PINT(after)};
    SQLHSTMT h;
    int rc = hs_st_run(st, Q_ES_RESUME, p, 2, &h, NULL);
    if (rc)
        return rc;
    *version = head;
    rc = hs_st_fetch(st, h, Q_ES_RESUME);
    if (rc == 1 && hs_st_ival(st, 0) > 0)
        *version = hs_st_ival(st, 0) - 1;
    SQLFreeStmt(h, SQL_CLOSE);
    return rc < 0 ? rc : 0;
}

int hs_store_es_resume(hs_store_t *st, int64_t stream_id, int64_t after, int64_t head,
                       int64_t *version)
{
    if (!version)
        return hs_st_fail(st, HS_EINVAL, "resume point: bad argument");
    return hs_st_finish(st, resume(st, stream_id, after, head, version));
}

/* ---- the admin routes' reads ---- */

static int stream_row(hs_store_t *st, int q, hs_par_t *p, hs_stream_head_t *head, char *name,
                      size_t cap)
{
    SQLHSTMT h;
    int rc = hs_st_run(st, q, p, 1, &h, NULL);
    if (rc)
        return rc;
    rc = hs_st_fetch(st, h, q);
    if (rc == 1) {
        const char *s;
        size_t n;
        hs_st_head_from_cols(st, head);
        rc = hs_st_text_col(st, h, 7, &st->t[T_STREAM], &s, &n);
        if (rc == 0 && (!s || n >= cap))
            rc = hs_st_fail(st, HS_EDB, "%s: a name that does not fit", qinfo[q].what);
        if (rc == 0) {
            memcpy(name, s, n);
            name[n] = '\0';
        }
    } else if (rc == 0) {
        rc = HS_ENOENT;
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return rc;
}

int hs_store_es_stream_by_guid(hs_store_t *st, const char *guid, hs_stream_head_t *head, char *name,
                               size_t name_cap)
{
    hs_par_t p[] = {HS_PTXT(guid, strlen(guid))};
    return hs_st_finish(st, stream_row(st, Q_ES_STREAM_BY_GUID, p, head, name, name_cap));
}

int hs_store_es_stream_by_id(hs_store_t *st, int64_t id, hs_stream_head_t *head, char *name,
                             size_t name_cap)
{
    hs_par_t p[] = {HS_PINT(id)};
    return hs_st_finish(st, stream_row(st, Q_ES_STREAM_BY_ID, p, head, name, name_cap));
}

/* A LIKE pattern '%part%' with '!' escaping, part folded to lower case (ASCII). */
static int contains_pattern(hs_store_t *st, const char *part, size_t len)
{
    hs_odbc_text_t *t = &st->t[T_KEY];
    if (hs_odbc_text_reserve(t, 2 * len + 3))
        return hs_st_nomem(st);
    size_t o = 0;
    t->p[o++] = '%';
    for (size_t i = 0; i < len; i++) {
        char c = part[i];
        if (c == '!' || c == '%' || c == '_')
            t->p[o++] = '!';
        hs_ascii_fold(&c, 1, &t->p[o++]);
    }
    t->p[o++] = '%';
    t->p[o] = '\0';
    return (int)o;
}

static int search_streams(hs_store_t *st, const char *guid, const char *part, size_t len,
                          int64_t from_us, int64_t to_us, int64_t after_id, size_t limit,
                          hs_stream_cb cb, void *ctx)
{
    int pl = contains_pattern(st, part, len);
    if (pl < 0)
        return pl;
    size_t gl = strlen(guid);
    hs_par_t p[] = {HS_PTXT(guid, gl), HS_PTXT(guid, gl), HS_PTXT(st->t[T_KEY].p, pl),
                    HS_PINT(from_us),  HS_PINT(to_us),    HS_PINT(after_id),
                    HS_PINT(limit)};
    SQLHSTMT h;
    int rc = hs_st_run(st, Q_ES_SEARCH_STREAMS, p, 7, &h, NULL);
    if (rc)
        return rc;
    int stop = 0;
    while (!stop && (rc = hs_st_fetch(st, h, Q_ES_SEARCH_STREAMS)) == 1) {
        hs_stream_head_t head;
        const char *name;
        size_t n;
        hs_st_head_from_cols(st, &head);
        if ((rc = hs_st_text_col(st, h, 7, &st->t[T_STREAM], &name, &n)))
            break;
        stop = cb(ctx, name ? name : "", name ? n : 0, &head);
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return rc < 0 ? rc : stop;
}

int hs_store_es_search_streams(hs_store_t *st, const char *guid, const char *name_part,
                               size_t part_len, int64_t from_us, int64_t to_us, int64_t after_id,
                               size_t limit, hs_stream_cb cb, void *ctx)
{
    if (!guid || hs_st_bad_text(name_part, part_len) || !cb || limit > 1000)
        return hs_st_fail(st, HS_EINVAL, "search streams: bad argument");
    return hs_st_finish(st, search_streams(st, guid, name_part, part_len, from_us, to_us, after_id,
                                           limit, cb, ctx));
}

/* The record columns (version, position, time_us, name, event_id, type, data, metadata) of the
 * current row. */
static int record_cols(hs_store_t *st, SQLHSTMT h, hs_record_t *rec)
{
    rec->version = hs_st_ival(st, 0);
    rec->position = hs_st_ival(st, 1);
    rec->time_us = hs_st_ival(st, 2);
    int rc = hs_st_text_col(st, h, 4, &st->t[T_STREAM], &rec->stream, &rec->stream_len);
    if (rc == 0)
        rc = hs_st_text_col(st, h, 5, &st->t[T_EVENT_ID], &rec->event_id, &rec->event_id_len);
    if (rc == 0)
        rc = hs_st_text_col(st, h, 6, &st->t[T_TYPE], &rec->type, &rec->type_len);
    if (rc == 0)
        rc = hs_st_text_col(st, h, 7, &st->t[T_DATA], &rec->data, &rec->data_len);
    if (rc == 0)
        rc = hs_st_text_col(st, h, 8, &st->t[T_META], &rec->metadata, &rec->metadata_len);
    if (rc == 0 && (!rec->stream || !rec->event_id || !rec->type || !rec->data))
        rc = hs_st_fail(st, HS_EDB, "an event with NULL in a NOT NULL column");
    return rc;
}

static int records(hs_store_t *st, int q, hs_par_t *p, int np, hs_record_cb cb, void *ctx,
                   size_t *n)
{
    SQLHSTMT h;
    int rc = hs_st_run(st, q, p, np, &h, NULL);
    if (rc)
        return rc;
    int stop = 0;
    *n = 0;
    while (!stop && (rc = hs_st_fetch(st, h, q)) == 1) {
        hs_record_t rec;
        if ((rc = record_cols(st, h, &rec)))
            break;
        (*n)++;
        stop = cb(ctx, &rec);
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return rc < 0 ? rc : stop;
}

int hs_store_es_event(hs_store_t *st, int64_t stream_id, const char *event_id, size_t len,
                      hs_record_cb cb, void *ctx)
{
    if (hs_st_bad_text(event_id, len) || !cb)
        return hs_st_fail(st, HS_EINVAL, "get event: bad argument");
    hs_par_t p[] = {HS_PINT(stream_id), HS_PTXT(event_id, len)};
    size_t n = 0;
    int rc = records(st, Q_ES_EVENT_GET, p, 2, cb, ctx, &n);
    if (rc == 0 && n == 0)
        rc = HS_ENOENT;
    return hs_st_finish(st, rc);
}

int hs_store_es_search_events(hs_store_t *st, int64_t stream_id, const char *type_part,
                              size_t part_len, int64_t from_us, int64_t to_us, int64_t after_pos,
                              size_t limit, hs_record_cb cb, void *ctx)
{
    if (hs_st_bad_text(type_part, part_len) || !cb || limit > 1000)
        return hs_st_fail(st, HS_EINVAL, "search events: bad argument");
    int pl = contains_pattern(st, type_part, part_len);
    if (pl < 0)
        return hs_st_finish(st, pl);
    hs_par_t p[] = {HS_PINT(stream_id), HS_PTXT(st->t[T_KEY].p, pl), HS_PINT(from_us),
                    HS_PINT(to_us),     HS_PINT(after_pos),          HS_PINT(limit)};
    size_t n;
    return hs_st_finish(st, records(st, Q_ES_SEARCH_EVENTS, p, 6, cb, ctx, &n));
}

static int sub_show(hs_store_t *st, const char *sub_id, hs_es_sub_info_t *out)
{
    hs_par_t p[] = {HS_PTXT(sub_id, strlen(sub_id))};
    SQLHSTMT h;
    int rc = hs_st_run(st, Q_ES_SUB_SHOW, p, 1, &h, NULL);
    if (rc)
        return rc;
    rc = hs_st_fetch(st, h, Q_ES_SUB_SHOW);
    if (rc == 1) {
        memset(out, 0, sizeof(*out));
        out->id = hs_st_ival(st, 0);
        out->stream_id = hs_st_ival(st, 1);
        out->cur_position = hs_st_ival(st, 2);
        out->from_position = hs_st_ival(st, 3);
        out->to_position = hs_st_ival(st, 4);
        out->created_us = hs_st_ival(st, 5);
        out->stream_created_us = hs_st_ival(st, 6);
        rc = text_into(st, h, 8, out->conn, sizeof out->conn);
        const char *s;
        size_t n;
        if (rc == 0)
            rc = hs_st_text_col(st, h, 9, &st->t[T_STREAM], &s, &n);
        if (rc == 0 && (!s || n > HS_STORE_NAME_MAX))
            rc = hs_st_fail(st, HS_EDB, "show subscriber: a stream name that does not fit");
        if (rc == 0) {
            memcpy(out->stream, s, n);
            out->stream[n] = '\0';
            out->stream_len = n;
        }
    } else if (rc == 0) {
        rc = HS_ENOENT;
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return rc;
}

int hs_store_es_sub_show(hs_store_t *st, const char *sub_id, hs_es_sub_info_t *out)
{
    if (!sub_id || !out)
        return hs_st_fail(st, HS_EINVAL, "show subscriber: bad argument");
    return hs_st_finish(st, sub_show(st, sub_id, out));
}

int hs_store_es_sub_range(hs_store_t *st, const char *sub_id, int64_t from, int64_t to)
{
    hs_par_t p[] = {HS_PINT(from), HS_PINT(to), HS_PTXT(sub_id, strlen(sub_id))};
    return hs_st_finish(st, hs_st_run(st, Q_ES_SUB_RANGE, p, 3, NULL, NULL));
}

/* ---- stream associations ---- */

static int links(hs_store_t *st, hs_link_cb cb, void *ctx)
{
    SQLHSTMT h;
    int rc = hs_st_run(st, Q_ES_LINKS_ALL, NULL, 0, &h, NULL);
    if (rc)
        return rc;
    int stop = 0;
    while (!stop && (rc = hs_st_fetch(st, h, Q_ES_LINKS_ALL)) == 1) {
        const char *name;
        size_t n;
        if ((rc = hs_st_text_col(st, h, 3, &st->t[T_STREAM], &name, &n)))
            break;
        stop = cb(ctx, hs_st_ival(st, 0), hs_st_ival(st, 1), name ? name : "", name ? n : 0);
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return rc < 0 ? rc : stop;
}

int hs_store_es_links(hs_store_t *st, hs_link_cb cb, void *ctx)
{
    if (!cb)
        return hs_st_fail(st, HS_EINVAL, "read links: bad argument");
    return hs_st_finish(st, links(st, cb, ctx));
}

int hs_store_es_link_add(hs_store_t *st, int64_t target_id, int64_t source_id, int64_t now_us)
{
    hs_par_t p[] = {HS_PINT(target_id), HS_PINT(source_id), HS_PINT(now_us)};
    int rc = hs_st_run(st, Q_ES_LINK_INSERT, p, 3, NULL, NULL);
    if (rc == 0)
        rc = hs_st_run(st, Q_ES_LINKS_BUMP, NULL, 0, NULL, NULL);
    return hs_st_finish(st, rc);
}

static int links_gen(hs_store_t *st, int64_t *gen)
{
    SQLHSTMT h;
    int rc = hs_st_run(st, Q_ES_LINKS_GEN, NULL, 0, &h, NULL);
    if (rc)
        return rc;
    *gen = 0;
    rc = hs_st_fetch(st, h, Q_ES_LINKS_GEN);
    if (rc == 1)
        *gen = hs_st_ival(st, 0);
    SQLFreeStmt(h, SQL_CLOSE);
    return rc < 0 ? rc : 0;
}

int hs_store_es_links_gen(hs_store_t *st, int64_t *gen)
{
    return hs_st_finish(st, links_gen(st, gen));
}
