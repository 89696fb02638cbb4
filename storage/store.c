/*
 * The store: one ODBC connection, its prepared statements and the SQL dialect it speaks.
 *
 * What it does: connects (a bare file path means SQLite), applies the dialect's session
 * settings, creates and migrates the schema, and runs hubstream's fixed set of statements —
 * stream rows, array-bound event inserts, paged event reads — with their diagnostics kept for
 * hs_store_error(). All SQL text comes from the dialect table (dialect.h); nothing here knows
 * which database it talks to.
 *
 * What it is not: not thread-safe (one connection per thread), not a cache, and it knows
 * nothing of batching rules, expected versions or subscribers (writer.c and reader.c). Nor is it
 * the ODBC plumbing: handles, diagnostics, the fault switch, binding, executing and fetching are
 * odbc.c's, and every ODBC call that can fail at run time is made there.
 *
 * Transactions. The connection runs in ODBC manual-commit mode. Between hs_store_begin() and
 * hs_store_commit()/hs_store_rollback() every call works inside the caller's transaction and a
 * failed call leaves it to the caller to roll back. Any call made outside such a transaction
 * is a transaction of its own: committed when it succeeds, rolled back when it fails. That
 * matters for readers too: in manual-commit mode a SELECT opens a transaction, and one left
 * open would pin a SQLite WAL snapshot (the WAL could never be checkpointed) or leave a
 * PostgreSQL session "idle in transaction".
 *
 * Memory. Statements are prepared on first use and kept. Insert parameter arrays and read
 * buffers belong to the connection and only grow, so steady-state inserts and reads do not
 * allocate. Reads are paged: drivers such as sqliteodbc (and psqlodbc by default) materialise a
 * whole result set at SQLExecute, so one query for a large `limit` over 1 MiB events could hold
 * gigabytes; each page is sized from the rows the previous page returned.
 */
#include "storage/store.h"
#include "storage/store_impl.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hubstream/hubstream.h>

#include "storage/dialect.h"
#include "storage/odbc.h"
#include "util/utf8.h"
#include "util/uuid.h"

/* ---- test-only fault injection ---- */

/* The switch is the ODBC layer's (odbc.c), through which every fallible call goes. */
_Static_assert((int)HS_FAULT_STICKY == (int)HS_ODBC_FAULT_STICKY &&
                   (int)HS_FAULT_AFTER == (int)HS_ODBC_FAULT_AFTER &&
                   (int)HS_FAULT_COUNT == (int)HS_ODBC_FAULT_COUNT,
               "store.h and odbc.h fault flags differ");

void hs_store_fault(long nth, int flags)
{
    hs_odbc_fault(nth, flags);
}

long hs_store_fault_calls(void)
{
    return hs_odbc_fault_calls();
}

/* ---- diagnostics, into the connection's buffer (odbc.h) ---- */

int hs_st_fail(hs_store_t *st, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hs_odbc_vfail(&st->db, code, fmt, ap);
    va_end(ap);
    return code;
}

/* Writes "<context>: [SQLSTATE] message" (up to three diagnostic records) and returns HS_EDB. */
int hs_st_dbfail(hs_store_t *st, SQLSMALLINT type, SQLHANDLE h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = hs_odbc_vdbfail(&st->db, type, h, fmt, ap);
    va_end(ap);
    return rc;
}

int hs_st_nomem(hs_store_t *st)
{
    return hs_odbc_nomem(&st->db);
}

/* ---- statements ---- */

int hs_st_prep(hs_store_t *st, int q, SQLHSTMT *out)
{
    if (st->q[q]) {
        *out = st->q[q];
        return 0;
    }
    const char *sql = *(const char *const *)((const char *)st->d + qinfo[q].off);
    if (!sql)
        return hs_st_fail(st, HS_EINVAL, "the %s dialect has no '%s' statement", st->d->name,
                          qinfo[q].what);
    char *multi = NULL;
    if (q == Q_INSERT_VALUES) {
        static const char tuple[] = "(?, ?, ?, ?, ?, ?, ?, ?)";
        size_t head = strlen(sql), at = head;
        if (!(multi = malloc(head + VALUES_ROWS * (sizeof tuple + 1) + 1)))
            return hs_st_nomem(st);
        memcpy(multi, sql, head);
        for (int k = 0; k < VALUES_ROWS; k++) {
            if (k)
                multi[at++] = ',';
            memcpy(multi + at, tuple, sizeof tuple - 1);
            at += sizeof tuple - 1;
        }
        multi[at] = '\0';
        sql = multi;
    }
    SQLHSTMT h = SQL_NULL_HSTMT;
    int rc =
        hs_odbc_prepare(&st->db, sql, qinfo[q].what, st->col, st->col_ind, qinfo[q].int_cols, &h);
    free(multi);
    if (rc)
        return rc;
    st->q[q] = h;
    *out = h;
    return 0;
}

/*
 * Prepares (once), binds and executes statement q. *h receives the statement, whose cursor the
 * caller closes; *changed, if not NULL, the number of rows an INSERT/UPDATE/DELETE touched.
 */
int hs_st_run(hs_store_t *st, int q, hs_par_t *p, int n, SQLHSTMT *hp, SQLLEN *changed)
{
    SQLHSTMT h = SQL_NULL_HSTMT;
    int rc = hs_st_prep(st, q, &h);
    if (rc)
        return rc;
    rc = hs_odbc_run(&st->db, h, p, n, qinfo[q].what, changed);
    if (rc)
        return rc;
    if (hp)
        *hp = h;
    else
        SQLFreeStmt(h, SQL_CLOSE);
    return 0;
}

/* 1: a row, 0: no more rows, <0: error. */
int hs_st_fetch(hs_store_t *st, SQLHSTMT h, int q)
{
    return hs_odbc_fetch(&st->db, h, qinfo[q].what);
}

/* Text column `col` of the current row into t; *s is NULL for SQL NULL (hs_odbc_text_col). */
int hs_st_text_col(hs_store_t *st, SQLHSTMT h, SQLUSMALLINT col, hs_odbc_text_t *t, const char **s,
                   size_t *len)
{
    return hs_odbc_text_col(&st->db, h, col, t, s, len);
}

/* Integer result column i (0-based) of the current row; SQL NULL reads as 0. */
int64_t hs_st_ival(const hs_store_t *st, int i)
{
    return st->col_ind[i] == SQL_NULL_DATA ? 0 : (int64_t)st->col[i];
}

void hs_st_head_from_cols(const hs_store_t *st, hs_stream_head_t *out)
{
    out->id = hs_st_ival(st, 0);
    out->version = hs_st_ival(st, 1);
    out->position = hs_st_ival(st, 2);
    out->closed = hs_st_ival(st, 3) != 0;
    out->created_us = hs_st_ival(st, 4);
    out->updated_us = hs_st_ival(st, 5);
}

/* Ends the implicit transaction of a call made outside hs_store_begin(): commit on success,
 * roll back on failure (or when a read callback stopped early: nothing was written). */
int hs_st_finish(hs_store_t *st, int rc)
{
    if (st->in_txn)
        return rc;
    if (rc == 0)
        return hs_odbc_commit(&st->db);
    hs_odbc_rollback(&st->db);
    return rc;
}

bool hs_st_bad_text(const char *s, size_t len)
{
    return (!s && len > 0) || len > HS_ODBC_TEXT_MAX;
}

/* ---- connection ---- */

/* Every dialect's process-wide set-up (dialect.h: before the first connection, whose dialect
 * is not known yet). */
static void dialects_init(void)
{
    for (const hs_dialect_t *const *d = hs_dialects(); *d; d++) {
        if ((*d)->process_init)
            (*d)->process_init();
    }
}

hs_store_t *hs_store_open(const char *conn, char *err, size_t errlen)
{
    hs_store_t *st = calloc(1, sizeof *st);
    char connbuf[CONN_MAX];
    const char *cs = conn;
    bool bare = conn && !strchr(conn, '=');

    static pthread_once_t inited = PTHREAD_ONCE_INIT;
    pthread_once(&inited, dialects_init);
    if (err && errlen)
        err[0] = '\0';
    if (!st) {
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!conn || !*conn) {
        hs_st_fail(st, HS_EINVAL, "no database given");
        goto out;
    }
    if (bare) {
        const hs_dialect_t *pd = hs_dialect_for_path();
        const char *why = "no dialect takes a file path";
        if (!pd || !pd->conn_from_path ||
            pd->conn_from_path(conn, connbuf, sizeof connbuf, &why) != 0) {
            hs_st_fail(st, HS_EINVAL, "cannot use '%s' as a database file: %s", conn, why);
            goto out;
        }
        cs = connbuf;
    }
    for (int i = 0; i < T_COUNT; i++) {
        if (hs_odbc_text_init(&st->t[i])) {
            hs_st_nomem(st);
            goto out;
        }
    }

    if (hs_odbc_connect(&st->db, cs, bare ? conn : NULL))
        goto out;
    char dbms[128];
    if (hs_odbc_dbms_name(&st->db, dbms, sizeof dbms))
        goto out;
    st->d = hs_dialect_find(dbms);
    if (!st->d) {
        hs_st_fail(st, HS_EINVAL, "unsupported database '%s' (no SQL dialect for it)", dbms);
        goto out;
    }
    /* Session settings run in autocommit mode: some (SQLite's journal_mode) cannot run inside
     * a transaction, and in manual-commit mode every statement opens one. */
    for (const char *const *s = st->d->session_sql; s && *s; s++) {
        if (hs_odbc_direct(&st->db, *s, "session setting"))
            goto out;
    }
    if (hs_odbc_manual_commit(&st->db))
        goto out;
    return st;

out:
    if (err && errlen)
        snprintf(err, errlen, "%s", st->db.err);
    hs_store_close(st);
    return NULL;
}

void hs_store_close(hs_store_t *st)
{
    if (!st)
        return;
    for (int i = 0; i < Q_COUNT; i++) {
        if (st->q[i])
            SQLFreeHandle(SQL_HANDLE_STMT, st->q[i]);
    }
    hs_odbc_close(&st->db);
    for (int i = 0; i < T_COUNT; i++)
        hs_odbc_text_free(&st->t[i]);
    for (int i = 0; i < N_COUNT; i++)
        free(st->b.num[i]);
    for (int i = 0; i < S_COUNT; i++) {
        free(st->b.len[i]);
        free(st->b.text[i]);
    }
    free(st->b.status);
    for (int i = 0; i < 3; i++) {
        free(st->rb.num[i]);
        free(st->rb.num_ind[i]);
    }
    for (int i = 0; i < B_COUNT; i++) {
        free(st->rb.ind[i]);
        free(st->rb.text[i]);
    }
    free(st->rb.status);
    free(st);
}

const char *hs_store_dialect(const hs_store_t *st)
{
    return st->d->name;
}

bool hs_store_shared(const hs_store_t *st)
{
    return st->d->batch_lock_sql != NULL;
}

const char *hs_store_error(const hs_store_t *st)
{
    return st->db.err;
}

/* ---- schema ---- */

/* The recorded schema version, 0 when there is none. */
static int schema_version(hs_store_t *st, int64_t *v)
{
    SQLHSTMT h;
    int rc = hs_st_run(st, Q_SCHEMA_VERSION, NULL, 0, &h, NULL);
    if (rc)
        return rc;
    *v = 0;
    rc = hs_st_fetch(st, h, Q_SCHEMA_VERSION);
    if (rc == 1) {
        const char *s;
        size_t len;
        rc = hs_st_text_col(st, h, 1, &st->t[T_KEY], &s, &len);
        if (rc == 0) {
            char *end = NULL;
            long long n = s && len ? strtoll(s, &end, 10) : -1;
            if (n < 0 || !end || *end != '\0')
                rc = hs_st_fail(st, HS_EDB, "hs_meta holds a malformed schema_version '%.*s'",
                                (int)(len > 40 ? 40 : len), s ? s : "");
            else
                *v = n;
        }
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return rc < 0 ? rc : 0;
}

static int migrate(hs_store_t *st)
{
    const hs_dialect_t *d = st->d;
    int64_t v = 0;
    int rc = hs_odbc_direct(&st->db, d->meta_create_sql, "creating hs_meta");
    if (rc)
        return rc;
    if (d->migrate_lock_sql && (rc = hs_st_run(st, Q_MIGRATE_LOCK, NULL, 0, NULL, NULL)))
        return rc;
    if ((rc = schema_version(st, &v)))
        return rc;
    if (v > d->schema_version)
        return hs_st_fail(
            st, HS_EDB,
            "the database schema is version %lld, newer than this hubstream knows (%d):"
            " upgrade hubstream",
            (long long)v, d->schema_version);
    while (v < d->schema_version) {
        char what[64];
        snprintf(what, sizeof what, "migration to schema version %lld", (long long)v + 1);
        for (const char *const *s = d->migrations[v]; *s; s++) {
            if ((rc = hs_odbc_direct(&st->db, *s, what)))
                return rc;
        }
        int64_t now = 0;
        if ((rc = schema_version(st, &now)))
            return rc;
        if (now != v + 1)
            return hs_st_fail(st, HS_EDB, "%s left schema_version at %lld", what, (long long)now);
        v = now;
    }
    return 0;
}

int hs_store_migrate(hs_store_t *st)
{
    if (st->in_txn)
        return hs_st_fail(st, HS_EINVAL, "hs_store_migrate() inside a transaction");
    return hs_st_finish(st, migrate(st));
}

int hs_store_ping(hs_store_t *st)
{
    if (st->in_txn)
        return hs_st_fail(st, HS_EINVAL, "hs_store_ping() inside a transaction");
    int64_t v = 0;
    return hs_st_finish(st, schema_version(st, &v));
}

/* ---- transactions ---- */

int hs_store_begin(hs_store_t *st)
{
    if (st->in_txn)
        return hs_st_fail(st, HS_EINVAL, "a transaction is already open");
    /* Manual-commit mode: the driver opens the transaction with the first statement. */
    st->in_txn = true;
    if (st->d->batch_lock_sql) {
        int rc = hs_st_run(st, Q_BATCH_LOCK, NULL, 0, NULL, NULL);
        if (rc) {
            hs_store_rollback(st);
            return rc;
        }
    }
    return 0;
}

int hs_store_commit(hs_store_t *st)
{
    if (!st->in_txn)
        return hs_st_fail(st, HS_EINVAL, "commit without a transaction");
    st->in_txn = false;
    return hs_odbc_commit(&st->db);
}

int hs_store_rollback(hs_store_t *st)
{
    st->in_txn = false;
    if (hs_odbc_rollback(&st->db))
        return hs_st_dbfail(st, SQL_HANDLE_DBC, st->db.dbc, "rollback failed");
    return 0;
}

/* ---- streams ---- */

static int get_stream(hs_store_t *st, const char *name, size_t len, hs_stream_head_t *out)
{
    hs_par_t p[] = {HS_PTXT(name, len)};
    SQLHSTMT h;
    int rc = hs_st_run(st, Q_GET_STREAM, p, 1, &h, NULL);
    if (rc)
        return rc;
    rc = hs_st_fetch(st, h, Q_GET_STREAM);
    if (rc == 1) {
        hs_st_head_from_cols(st, out);
        rc = 0;
    } else if (rc == 0) {
        rc = HS_ENOENT;
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return rc;
}

int hs_store_get_stream(hs_store_t *st, const char *name, size_t len, hs_stream_head_t *out)
{
    if (hs_st_bad_text(name, len) || !out)
        return hs_st_fail(st, HS_EINVAL, "get stream: bad argument");
    return hs_st_finish(st, get_stream(st, name, len, out));
}

static int create_stream(hs_store_t *st, const char *name, size_t len, int64_t now_us, int64_t *id)
{
    char fold[HS_STORE_NAME_MAX], guid[37];
    if (len > sizeof fold)
        return hs_st_fail(st, HS_EINVAL, "create stream: name longer than %d bytes",
                          HS_STORE_NAME_MAX);
    hs_ascii_fold(name, len, fold);
    hs_uuid_of_name(name, len, guid);
    const char *f = fold, *g = guid; /* pointers: HS_PTXT tests its argument */
    hs_par_t p[] = {HS_PTXT(name, len), HS_PINT(now_us), HS_PINT(now_us), HS_PTXT(f, len),
                    HS_PTXT(g, 36)};
    int rc = hs_st_run(st, Q_CREATE_STREAM, p, 5, NULL, NULL);
    if (rc)
        return rc;
    /* Read the id back by name: the same statement for every dialect, where "the last id"
     * would need one per database. */
    hs_stream_head_t head;
    rc = get_stream(st, name, len, &head);
    if (rc == HS_ENOENT)
        return hs_st_fail(st, HS_EDB, "create stream: the new row cannot be read back");
    if (rc == 0)
        *id = head.id;
    return rc;
}

int hs_store_create_stream(hs_store_t *st, const char *name, size_t len, int64_t now_us,
                           int64_t *id)
{
    if (hs_st_bad_text(name, len) || !id)
        return hs_st_fail(st, HS_EINVAL, "create stream: bad argument");
    return hs_st_finish(st, create_stream(st, name, len, now_us, id));
}

static int update_stream(hs_store_t *st, const hs_stream_head_t *head)
{
    /* run once per batch and stream: the parameters stay where they were bound, only their
     * values change */
    hs_par_t *p = st->upd;
    int64_t v[] = {head->version, head->position, head->closed ? 1 : 0, head->updated_us, head->id};
    for (int i = 0; i < 5; i++)
        p[i] = HS_PINT(v[i]);
    SQLLEN n = 0;
    bool ask = st->d->update_stream_count_sql != NULL;
    SQLHSTMT h;
    int rc = hs_st_prep(st, Q_UPDATE_STREAM, &h);
    if (rc == 0 && (rc = hs_odbc_run_bound(&st->db, h, p, 5, &st->upd_bound,
                                           qinfo[Q_UPDATE_STREAM].what, ask ? NULL : &n)) == 0)
        SQLFreeStmt(h, SQL_CLOSE);
    if (rc == 0 && ask) {
        /* the driver counts no rows for this statement: the database says it */
        if ((rc = hs_st_run(st, Q_UPDATE_STREAM_COUNT, NULL, 0, &h, NULL)))
            return rc;
        rc = hs_st_fetch(st, h, Q_UPDATE_STREAM_COUNT);
        SQLFreeStmt(h, SQL_CLOSE);
        if (rc < 0)
            return rc;
        n = rc == 1 ? (SQLLEN)hs_st_ival(st, 0) : 0;
        rc = 0;
    }
    if (rc == 0 && n == 0)
        rc = HS_ENOENT;
    return rc;
}

int hs_store_update_stream(hs_store_t *st, const hs_stream_head_t *head)
{
    if (!head)
        return hs_st_fail(st, HS_EINVAL, "update stream: no stream");
    return hs_st_finish(st, update_stream(st, head));
}

static int delete_stream(hs_store_t *st, int64_t id)
{
    hs_par_t keep[] = {HS_PINT(id), HS_PINT(id)};
    hs_par_t one[] = {HS_PINT(id)};
    SQLLEN n = 0;
    int rc = hs_st_run(st, Q_KEEP_POSITION, keep, 2, NULL, NULL);
    if (rc == 0)
        rc = hs_st_run(st, Q_DELETE_EVENTS, one, 1, NULL, NULL);
    if (rc == 0)
        rc = hs_st_run(st, Q_ES_SUB_DELETE_STREAM, one, 1, NULL, NULL);
    if (rc == 0)
        rc = hs_st_run(st, Q_ES_LINKS_DELETE_STREAM, keep, 2, NULL, NULL);
    if (rc == 0)
        rc = hs_st_run(st, Q_ES_LINKS_BUMP, NULL, 0, NULL, NULL);
    if (rc == 0)
        rc = hs_st_run(st, Q_DELETE_STREAM, one, 1, NULL, &n);
    if (rc == 0 && n == 0)
        rc = HS_ENOENT;
    return rc;
}

int hs_store_delete_stream(hs_store_t *st, int64_t stream_id)
{
    return hs_st_finish(st, delete_stream(st, stream_id));
}

static int max_position(hs_store_t *st, int64_t *pos)
{
    SQLHSTMT h;
    int rc = hs_st_run(st, Q_MAX_POSITION, NULL, 0, &h, NULL);
    if (rc)
        return rc;
    *pos = 0;
    rc = hs_st_fetch(st, h, Q_MAX_POSITION);
    if (rc == 1)
        *pos = hs_st_ival(st, 0);
    SQLFreeStmt(h, SQL_CLOSE);
    return rc < 0 ? rc : 0;
}

int hs_store_max_position(hs_store_t *st, int64_t *pos)
{
    if (!pos)
        return hs_st_fail(st, HS_EINVAL, "max position: bad argument");
    return hs_st_finish(st, max_position(st, pos));
}

static int find_event(hs_store_t *st, int64_t stream_id, const char *event_id, size_t len,
                      int64_t *version, int64_t *position)
{
    hs_par_t p[] = {HS_PINT(stream_id), HS_PTXT(event_id, len)};
    SQLHSTMT h;
    int rc = hs_st_run(st, Q_FIND_EVENT, p, 2, &h, NULL);
    if (rc)
        return rc;
    rc = hs_st_fetch(st, h, Q_FIND_EVENT);
    if (rc == 1) {
        if (version)
            *version = hs_st_ival(st, 0);
        if (position)
            *position = hs_st_ival(st, 1);
        rc = 0;
    } else if (rc == 0) {
        rc = HS_ENOENT;
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return rc;
}

int hs_store_find_event(hs_store_t *st, int64_t stream_id, const char *event_id, size_t len,
                        int64_t *version, int64_t *position)
{
    if (hs_st_bad_text(event_id, len))
        return hs_st_fail(st, HS_EINVAL, "find event: bad argument");
    return hs_st_finish(st, find_event(st, stream_id, event_id, len, version, position));
}

static int oldest_event(hs_store_t *st, int64_t stream_id, int64_t *version, int64_t *time_us)
{
    hs_par_t p[] = {HS_PINT(stream_id)};
    SQLHSTMT h;
    int rc = hs_st_run(st, Q_OLDEST_EVENT, p, 1, &h, NULL);
    if (rc)
        return rc;
    rc = hs_st_fetch(st, h, Q_OLDEST_EVENT);
    if (rc == 1) {
        *version = hs_st_ival(st, 0);
        *time_us = hs_st_ival(st, 1);
        rc = 0;
    } else if (rc == 0) {
        rc = HS_ENOENT;
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return rc;
}

int hs_store_oldest_event(hs_store_t *st, int64_t stream_id, int64_t *version, int64_t *time_us)
{
    if (!version || !time_us)
        return hs_st_fail(st, HS_EINVAL, "oldest event: bad argument");
    return hs_st_finish(st, oldest_event(st, stream_id, version, time_us));
}

int hs_store_trim(hs_store_t *st, int64_t stream_id, int64_t upto_version, int64_t before_us,
                  int64_t *deleted)
{
    hs_par_t p[] = {HS_PINT(stream_id), HS_PINT(upto_version), HS_PINT(before_us)};
    SQLLEN n = 0;
    int rc = hs_st_run(st, Q_TRIM, p, 3, NULL, &n);
    if (rc == 0 && deleted)
        *deleted = n > 0 ? (int64_t)n : 0;
    return hs_st_finish(st, rc);
}

/* ---- inserts ---- */

static size_t row_len(const hs_row_t *r, int c)
{
    switch (c) {
    case S_EVENT_ID:
        return r->event_id_len;
    case S_TYPE:
        return r->type_len;
    case S_DATA:
        return r->data_len;
    default:
        return r->metadata ? r->metadata_len : 0;
    }
}

static const char *row_text(const hs_row_t *r, int c)
{
    switch (c) {
    case S_EVENT_ID:
        return r->event_id;
    case S_TYPE:
        return r->type;
    case S_DATA:
        return r->data;
    default:
        return r->metadata;
    }
}

/* Makes the per-row insert arrays hold at least m rows. They share one capacity; after a partial
 * failure b->rows is unchanged and the next call resizes them all again. */
static int batch_reserve(hs_store_t *st, size_t m)
{
    batch_t *b = &st->b;
    if (m <= b->rows)
        return 0;
    size_t cap = b->rows ? b->rows : 64;
    while (cap < m)
        cap *= 2;
    for (int c = 0; c < N_COUNT; c++) {
        size_t have = b->rows;
        SQLBIGINT *x = hs_odbc_grow(b->num[c], &have, cap, sizeof *x);
        if (!x)
            return hs_st_nomem(st);
        b->num[c] = x;
    }
    for (int c = 0; c < S_COUNT; c++) {
        size_t have = b->rows;
        SQLLEN *x = hs_odbc_grow(b->len[c], &have, cap, sizeof *x);
        if (!x)
            return hs_st_nomem(st);
        b->len[c] = x;
    }
    size_t have = b->rows;
    SQLUSMALLINT *x = hs_odbc_grow(b->status, &have, cap, sizeof *x);
    if (!x)
        return hs_st_nomem(st);
    b->status = x;
    b->rows = cap;
    return 0;
}

/* Executes one array of m rows whose text columns are w[] bytes wide; `first` is the index of
 * rows[0] in the caller's array, for messages. */
static int insert_some(hs_store_t *st, const hs_row_t *rows, size_t m, const size_t *w,
                       size_t first, size_t total)
{
    batch_t *b = &st->b;
    SQLHSTMT h;
    int rc = hs_st_prep(st, Q_INSERT_EVENT, &h);
    if (rc)
        return rc;

    if ((rc = batch_reserve(st, m)))
        return rc;
    for (int c = 0; c < S_COUNT; c++) {
        char *x = hs_odbc_grow(b->text[c], &b->text_cap[c], w[c] * m, 1);
        if (!x)
            return hs_st_nomem(st);
        b->text[c] = x;
    }

    for (size_t k = 0; k < m; k++) {
        const hs_row_t *r = &rows[k];
        b->num[N_POSITION][k] = r->position;
        b->num[N_STREAM_ID][k] = r->stream_id;
        b->num[N_VERSION][k] = r->version;
        b->num[N_TIME][k] = r->time_us;
        for (int c = 0; c < S_COUNT; c++) {
            const char *s = row_text(r, c);
            size_t len = row_len(r, c);
            if (!s) { /* only metadata may be NULL (checked by the caller) */
                b->len[c][k] = SQL_NULL_DATA;
                continue;
            }
            if (len)
                memcpy(b->text[c] + k * w[c], s, len);
            b->len[c][k] = (SQLLEN)len;
        }
    }

    hs_odbc_array_t a = {.rows = m,
                         .nint = N_COUNT,
                         .ntext = S_COUNT,
                         .ints = b->num,
                         .text = b->text,
                         .width = w,
                         .len = b->len,
                         .status = b->status,
                         .processed = &b->processed};
    if ((rc = hs_odbc_bind_array(&st->db, h, &a, &b->bound, "insert events")))
        return rc;
    size_t bad = m;
    SQLRETURN r = hs_odbc_execute_array(h, &a, &bad);
    if (SQL_SUCCEEDED(r) && bad == m && b->processed == m) {
        SQLFreeStmt(h, SQL_CLOSE);
        return 0;
    }
    if (bad < m) {
        const hs_row_t *x = &rows[bad];
        rc =
            hs_st_dbfail(st, SQL_HANDLE_STMT, h,
                         "inserting event %zu of %zu (stream_id %lld, version %lld, position %lld)",
                         first + bad + 1, total, (long long)x->stream_id, (long long)x->version,
                         (long long)x->position);
    } else if (!SQL_SUCCEEDED(r)) {
        rc = hs_st_dbfail(st, SQL_HANDLE_STMT, h, "inserting events %zu..%zu of %zu", first + 1,
                          first + m, total);
    } else {
        rc = hs_st_fail(st, HS_EDB,
                        "inserting events %zu..%zu of %zu: the driver processed %lu rows",
                        first + 1, first + m, total, (unsigned long)b->processed);
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return rc;
}

/*
 * VALUES_ROWS rows in one multi-row INSERT. The parameters point at the rows' own strings (no
 * copy); the integers and lengths go into the array-insert buffers.
 */
static int insert_values(hs_store_t *st, const hs_row_t *rows, size_t first, size_t total)
{
    batch_t *b = &st->b;
    SQLHSTMT h;
    int rc = hs_st_prep(st, Q_INSERT_VALUES, &h);
    if (rc)
        return rc;
    if ((rc = batch_reserve(st, VALUES_ROWS)))
        return rc;
    SQLRETURN r = SQL_SUCCESS;
    SQLUSMALLINT par = 1;
    for (size_t k = 0; k < VALUES_ROWS && SQL_SUCCEEDED(r); k++) {
        const hs_row_t *row = &rows[k];
        b->num[N_POSITION][k] = row->position;
        b->num[N_STREAM_ID][k] = row->stream_id;
        b->num[N_VERSION][k] = row->version;
        b->num[N_TIME][k] = row->time_us;
        for (int c = 0; c < N_COUNT && SQL_SUCCEEDED(r); c++)
            r = SQLBindParameter(h, par++, SQL_PARAM_INPUT, SQL_C_SBIGINT, SQL_BIGINT, 0, 0,
                                 &b->num[c][k], 0, NULL);
        for (int c = 0; c < S_COUNT && SQL_SUCCEEDED(r); c++) {
            const char *s = row_text(row, c);
            size_t len = row_len(row, c);
            b->len[c][k] = s ? (SQLLEN)len : SQL_NULL_DATA;
            r = SQLBindParameter(h, par++, SQL_PARAM_INPUT, SQL_C_CHAR,
                                 len > HS_ODBC_LONG_TEXT ? SQL_LONGVARCHAR : SQL_VARCHAR,
                                 len ? len : 1, 0, (SQLPOINTER)(s ? s : ""), (SQLLEN)len,
                                 &b->len[c][k]);
        }
    }
    if (SQL_SUCCEEDED(r))
        r = SQLSetStmtAttr(h, SQL_ATTR_PARAMSET_SIZE, (SQLPOINTER)(uintptr_t)1, 0);
    if (!SQL_SUCCEEDED(r))
        return hs_st_dbfail(st, SQL_HANDLE_STMT, h,
                            "insert events: cannot bind a multi-row insert");
    r = hs_odbc_execute(h);
    if (!SQL_SUCCEEDED(r)) {
        rc = hs_st_dbfail(st, SQL_HANDLE_STMT, h, "inserting events %zu..%zu of %zu", first + 1,
                          first + VALUES_ROWS, total);
        SQLFreeStmt(h, SQL_CLOSE);
        return rc;
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return 0;
}

static int insert_events(hs_store_t *st, const hs_row_t *rows, size_t n)
{
    size_t i = 0;
    /* whole multi-row statements first, where the dialect has them; the rest as an array */
    if (st->d->insert_values_sql) {
        for (; n - i >= VALUES_ROWS; i += VALUES_ROWS) {
            int rc = insert_values(st, rows + i, i, n);
            if (rc)
                return rc;
        }
    }
    while (i < n) {
        /* Widen the columns row by row while the array stays within the budget; a single row
         * always goes, however wide. */
        size_t w[S_COUNT] = {1, 1, 1, 1};
        size_t j = i;
        while (j < n && j - i < INS_MAX_ROWS) {
            size_t nw[S_COUNT], sum = 0;
            for (int c = 0; c < S_COUNT; c++) {
                size_t len = row_len(&rows[j], c);
                nw[c] = len > w[c] ? len : w[c];
                sum += nw[c];
            }
            if (j > i && sum * (j - i + 1) > INS_BUDGET)
                break;
            memcpy(w, nw, sizeof w);
            j++;
        }
        /* one row: short columns rounded up to a power of two, as VARCHAR still, so that the
         * next one-row insert usually finds its parameters bound as they are */
        for (int c = 0; j - i == 1 && c < S_COUNT; c++) {
            size_t r = w[c] <= HS_ODBC_LONG_TEXT ? hs_odbc_pow2_above(w[c] - 1) : w[c];
            w[c] = r > HS_ODBC_LONG_TEXT && w[c] <= HS_ODBC_LONG_TEXT ? HS_ODBC_LONG_TEXT : r;
        }
        int rc = insert_some(st, rows + i, j - i, w, i, n);
        if (rc)
            return rc;
        i = j;
    }
    return 0;
}

int hs_store_insert_events(hs_store_t *st, const hs_row_t *rows, size_t n)
{
    if (n == 0)
        return 0;
    if (!rows)
        return hs_st_fail(st, HS_EINVAL, "insert events: no rows");
    for (size_t i = 0; i < n; i++) {
        const hs_row_t *r = &rows[i];
        if (!r->event_id || !r->type || !r->data || r->event_id_len > HS_ODBC_TEXT_MAX ||
            r->type_len > HS_ODBC_TEXT_MAX || r->data_len > HS_ODBC_TEXT_MAX ||
            (r->metadata && r->metadata_len > HS_ODBC_TEXT_MAX))
            return hs_st_fail(st, HS_EINVAL,
                              "insert events: row %zu lacks event_id, type or data, or"
                              " a value is too long",
                              i + 1);
    }
    return hs_st_finish(st, insert_events(st, rows, n));
}
