/*
 * The store's statements for /eventstreamhub (store.h, "/eventstreamhub"): streams looked up
 * by their ASCII fold, the drop-in's persistent subscribers and their cursors, where a resuming
 * subscriber goes on. The writer runs them inside its transactions (storage/es.c).
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
