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

#define CONN_MAX 1024

/* An array insert binds fixed-width columns, so a batch costs (widest value x rows) per text
 * column: executions are cut so that the four text columns stay within this budget. */
#define INS_BUDGET   ((size_t)4 << 20)
#define INS_MAX_ROWS 1024
/* Rows per multi-row INSERT (dialects with insert_values_sql): 800 parameters. */
#define VALUES_ROWS 100

/* Read pages, in rows: the first is modest, later ones grow (x4) up to PAGE_MAX, and shrink so
 * that a page of the biggest rows seen so far stays under PAGE_BYTES. Above ~1000 rows a page
 * is no faster (measured with SQLite: the per-query cost is ~0.1 ms). */
#define PAGE_FIRST 128
#define PAGE_MAX   1024
#define PAGE_MIN   4
#define PAGE_BYTES ((size_t)32 << 20)
#define LIST_PAGE  1024

/* Statements, in the order of the dialect's fields. */
enum {
    Q_BATCH_LOCK,
    Q_MIGRATE_LOCK,
    Q_SCHEMA_VERSION,
    Q_GET_STREAM,
    Q_CREATE_STREAM,
    Q_UPDATE_STREAM,
    Q_KEEP_POSITION,
    Q_DELETE_EVENTS,
    Q_DELETE_STREAM,
    Q_MAX_POSITION,
    Q_FIND_EVENT,
    Q_INSERT_EVENT,
    Q_INSERT_VALUES, /* insert_values_sql + VALUES_ROWS tuples, text built at first use */
    Q_READ_STREAM_FWD,
    Q_READ_STREAM_BWD,
    Q_READ_ALL_FWD,
    Q_READ_ALL_BWD,
    Q_LIST,
    Q_LIST_OPEN,
    Q_OLDEST_EVENT,
    Q_TRIM,
    /* the forward reads again, on handles of their own fetched in blocks (read_block) */
    Q_READ_STREAM_BLOCK,
    Q_READ_ALL_BLOCK,
    Q_COUNT
};

static const struct {
    size_t off;   /* of the SQL text in hs_dialect_t */
    int int_cols; /* leading integer result columns, bound once at prepare */
    const char *what;
} qinfo[Q_COUNT] = {
    [Q_BATCH_LOCK] = {offsetof(hs_dialect_t, batch_lock_sql), 0, "batch lock"},
    [Q_MIGRATE_LOCK] = {offsetof(hs_dialect_t, migrate_lock_sql), 0, "migration lock"},
    [Q_SCHEMA_VERSION] = {offsetof(hs_dialect_t, schema_version_sql), 0, "schema version"},
    [Q_GET_STREAM] = {offsetof(hs_dialect_t, get_stream_sql), 6, "get stream"},
    [Q_CREATE_STREAM] = {offsetof(hs_dialect_t, create_stream_sql), 0, "create stream"},
    [Q_UPDATE_STREAM] = {offsetof(hs_dialect_t, update_stream_sql), 0, "update stream"},
    [Q_KEEP_POSITION] = {offsetof(hs_dialect_t, keep_position_sql), 0, "keep position"},
    [Q_DELETE_EVENTS] = {offsetof(hs_dialect_t, delete_events_sql), 0, "delete events"},
    [Q_DELETE_STREAM] = {offsetof(hs_dialect_t, delete_stream_sql), 0, "delete stream"},
    [Q_MAX_POSITION] = {offsetof(hs_dialect_t, max_position_sql), 1, "max position"},
    [Q_FIND_EVENT] = {offsetof(hs_dialect_t, find_event_sql), 2, "find event"},
    [Q_INSERT_EVENT] = {offsetof(hs_dialect_t, insert_event_sql), 0, "insert events"},
    [Q_INSERT_VALUES] = {offsetof(hs_dialect_t, insert_values_sql), 0, "insert events"},
    [Q_READ_STREAM_FWD] = {offsetof(hs_dialect_t, read_stream_fwd_sql), 3, "read stream"},
    [Q_READ_STREAM_BWD] = {offsetof(hs_dialect_t, read_stream_bwd_sql), 3, "read stream"},
    [Q_READ_ALL_FWD] = {offsetof(hs_dialect_t, read_all_fwd_sql), 3, "read all"},
    [Q_READ_ALL_BWD] = {offsetof(hs_dialect_t, read_all_bwd_sql), 3, "read all"},
    [Q_LIST] = {offsetof(hs_dialect_t, list_streams_sql), 6, "list streams"},
    [Q_LIST_OPEN] = {offsetof(hs_dialect_t, list_streams_open_sql), 6, "list streams"},
    [Q_OLDEST_EVENT] = {offsetof(hs_dialect_t, oldest_event_sql), 2, "oldest event"},
    [Q_TRIM] = {offsetof(hs_dialect_t, trim_sql), 0, "trim stream"},
    [Q_READ_STREAM_BLOCK] = {offsetof(hs_dialect_t, read_stream_fwd_sql), 0, "read stream"},
    [Q_READ_ALL_BLOCK] = {offsetof(hs_dialect_t, read_all_fwd_sql), 0, "read all"},
};

#define INT_COLS 6

/* Read buffers: the record's strings must all be valid at once, so one per column. */
enum { T_STREAM, T_EVENT_ID, T_TYPE, T_DATA, T_META, T_KEY, T_HI, T_COUNT };

/* Column-wise insert parameter arrays, reused across calls. */
enum { N_POSITION, N_STREAM_ID, N_VERSION, N_TIME, N_COUNT };
enum { S_EVENT_ID, S_TYPE, S_DATA, S_META, S_COUNT };

/*
 * Block cursor for forward reads (catch-up): every column bound to an array, SQLFetch returns
 * up to `rows` rows at once (SQL_ATTR_ROW_ARRAY_SIZE), which saves the per-row SQLFetch and
 * SQLGetData calls (each of which takes unixODBC's handle mutex). Text columns have a fixed width
 * per query; a value that does not fit ends the block there, the column is widened and the read
 * goes on from the last row delivered.
 */
#define BLOCK_ROWS  256
#define BLOCK_BYTES ((size_t)8 << 20)
enum { B_STREAM, B_EVENT_ID, B_TYPE, B_DATA, B_META, B_COUNT };

typedef struct rblock {
    size_t cap; /* rows the per-row arrays hold */
    SQLBIGINT *num[3];
    SQLLEN *num_ind[3];
    SQLLEN *ind[B_COUNT];
    char *text[B_COUNT];
    size_t text_cap[B_COUNT];
    size_t width[B_COUNT]; /* bytes per value, NUL included */
    SQLUSMALLINT *status;
    SQLULEN fetched;
} rblock_t;

typedef struct batch {
    size_t rows; /* capacity of the per-row arrays */
    SQLBIGINT *num[N_COUNT];
    SQLLEN *len[S_COUNT];
    SQLUSMALLINT *status;
    char *text[S_COUNT];
    size_t text_cap[S_COUNT];
    SQLULEN processed;
} batch_t;

struct hs_store {
    hs_odbc_t db; /* handles, the one-off statement (session settings, migrations), last error */
    bool in_txn;  /* between hs_store_begin() and commit/rollback */
    const hs_dialect_t *d;
    SQLHSTMT q[Q_COUNT];
    SQLBIGINT col[INT_COLS];
    SQLLEN col_ind[INT_COLS];
    hs_odbc_text_t t[T_COUNT];
    batch_t b;
    rblock_t rb;
};

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

static int fail(hs_store_t *st, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hs_odbc_vfail(&st->db, code, fmt, ap);
    va_end(ap);
    return code;
}

/* Writes "<context>: [SQLSTATE] message" (up to three diagnostic records) and returns HS_EDB. */
static int dbfail(hs_store_t *st, SQLSMALLINT type, SQLHANDLE h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = hs_odbc_vdbfail(&st->db, type, h, fmt, ap);
    va_end(ap);
    return rc;
}

static int nomem(hs_store_t *st)
{
    return hs_odbc_nomem(&st->db);
}

/* ---- statements ---- */

static int prep(hs_store_t *st, int q, SQLHSTMT *out)
{
    if (st->q[q]) {
        *out = st->q[q];
        return 0;
    }
    const char *sql = *(const char *const *)((const char *)st->d + qinfo[q].off);
    if (!sql)
        return fail(st, HS_EINVAL, "the %s dialect has no '%s' statement", st->d->name,
                    qinfo[q].what);
    char *multi = NULL;
    if (q == Q_INSERT_VALUES) {
        static const char tuple[] = "(?, ?, ?, ?, ?, ?, ?, ?)";
        size_t head = strlen(sql), at = head;
        if (!(multi = malloc(head + VALUES_ROWS * (sizeof tuple + 1) + 1))) return nomem(st);
        memcpy(multi, sql, head);
        for (int k = 0; k < VALUES_ROWS; k++) {
            if (k) multi[at++] = ',';
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
    if (rc) return rc;
    st->q[q] = h;
    *out = h;
    return 0;
}

/*
 * Prepares (once), binds and executes statement q. *h receives the statement, whose cursor the
 * caller closes; *changed, if not NULL, the number of rows an INSERT/UPDATE/DELETE touched.
 */
static int run(hs_store_t *st, int q, hs_par_t *p, int n, SQLHSTMT *hp, SQLLEN *changed)
{
    SQLHSTMT h = SQL_NULL_HSTMT;
    int rc = prep(st, q, &h);
    if (rc) return rc;
    rc = hs_odbc_run(&st->db, h, p, n, qinfo[q].what, changed);
    if (rc) return rc;
    if (hp)
        *hp = h;
    else
        SQLFreeStmt(h, SQL_CLOSE);
    return 0;
}

/* 1: a row, 0: no more rows, <0: error. */
static int fetch(hs_store_t *st, SQLHSTMT h, int q)
{
    return hs_odbc_fetch(&st->db, h, qinfo[q].what);
}

/* Text column `col` of the current row into t; *s is NULL for SQL NULL (hs_odbc_text_col). */
static int text_col(hs_store_t *st, SQLHSTMT h, SQLUSMALLINT col, hs_odbc_text_t *t, const char **s,
                    size_t *len)
{
    return hs_odbc_text_col(&st->db, h, col, t, s, len);
}

/* Integer result column i (0-based) of the current row; SQL NULL reads as 0. */
static int64_t ival(const hs_store_t *st, int i)
{
    return st->col_ind[i] == SQL_NULL_DATA ? 0 : (int64_t)st->col[i];
}

static void head_from_cols(const hs_store_t *st, hs_stream_head_t *out)
{
    out->id = ival(st, 0);
    out->version = ival(st, 1);
    out->position = ival(st, 2);
    out->closed = ival(st, 3) != 0;
    out->created_us = ival(st, 4);
    out->updated_us = ival(st, 5);
}

/* Ends the implicit transaction of a call made outside hs_store_begin(): commit on success,
 * roll back on failure (or when a read callback stopped early: nothing was written). */
static int finish(hs_store_t *st, int rc)
{
    if (st->in_txn) return rc;
    if (rc == 0) return hs_odbc_commit(&st->db);
    hs_odbc_rollback(&st->db);
    return rc;
}

static bool bad_text(const char *s, size_t len)
{
    return (!s && len > 0) || len > HS_ODBC_TEXT_MAX;
}

/* ---- connection ---- */

/* Every dialect's process-wide set-up (dialect.h: before the first connection, whose dialect
 * is not known yet). */
static void dialects_init(void)
{
    for (const hs_dialect_t *const *d = hs_dialects(); *d; d++) {
        if ((*d)->process_init) (*d)->process_init();
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
    if (err && errlen) err[0] = '\0';
    if (!st) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!conn || !*conn) {
        fail(st, HS_EINVAL, "no database given");
        goto out;
    }
    if (bare) {
        const hs_dialect_t *pd = hs_dialect_for_path();
        const char *why = "no dialect takes a file path";
        if (!pd || !pd->conn_from_path ||
            pd->conn_from_path(conn, connbuf, sizeof connbuf, &why) != 0) {
            fail(st, HS_EINVAL, "cannot use '%s' as a database file: %s", conn, why);
            goto out;
        }
        cs = connbuf;
    }
    for (int i = 0; i < T_COUNT; i++) {
        if (hs_odbc_text_init(&st->t[i])) {
            nomem(st);
            goto out;
        }
    }

    if (hs_odbc_connect(&st->db, cs, bare ? conn : NULL)) goto out;
    char dbms[128];
    if (hs_odbc_dbms_name(&st->db, dbms, sizeof dbms)) goto out;
    st->d = hs_dialect_find(dbms);
    if (!st->d) {
        fail(st, HS_EINVAL, "unsupported database '%s' (no SQL dialect for it)", dbms);
        goto out;
    }
    /* Session settings run in autocommit mode: some (SQLite's journal_mode) cannot run inside
     * a transaction, and in manual-commit mode every statement opens one. */
    for (const char *const *s = st->d->session_sql; s && *s; s++) {
        if (hs_odbc_direct(&st->db, *s, "session setting")) goto out;
    }
    if (hs_odbc_manual_commit(&st->db)) goto out;
    return st;

out:
    if (err && errlen) snprintf(err, errlen, "%s", st->db.err);
    hs_store_close(st);
    return NULL;
}

void hs_store_close(hs_store_t *st)
{
    if (!st) return;
    for (int i = 0; i < Q_COUNT; i++) {
        if (st->q[i]) SQLFreeHandle(SQL_HANDLE_STMT, st->q[i]);
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
    int rc = run(st, Q_SCHEMA_VERSION, NULL, 0, &h, NULL);
    if (rc) return rc;
    *v = 0;
    rc = fetch(st, h, Q_SCHEMA_VERSION);
    if (rc == 1) {
        const char *s;
        size_t len;
        rc = text_col(st, h, 1, &st->t[T_KEY], &s, &len);
        if (rc == 0) {
            char *end = NULL;
            long long n = s && len ? strtoll(s, &end, 10) : -1;
            if (n < 0 || !end || *end != '\0')
                rc = fail(st, HS_EDB, "hs_meta holds a malformed schema_version '%.*s'",
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
    if (rc) return rc;
    if (d->migrate_lock_sql && (rc = run(st, Q_MIGRATE_LOCK, NULL, 0, NULL, NULL))) return rc;
    if ((rc = schema_version(st, &v))) return rc;
    if (v > d->schema_version)
        return fail(st, HS_EDB,
                    "the database schema is version %lld, newer than this hubstream knows (%d):"
                    " upgrade hubstream",
                    (long long)v, d->schema_version);
    while (v < d->schema_version) {
        char what[64];
        snprintf(what, sizeof what, "migration to schema version %lld", (long long)v + 1);
        for (const char *const *s = d->migrations[v]; *s; s++) {
            if ((rc = hs_odbc_direct(&st->db, *s, what))) return rc;
        }
        int64_t now = 0;
        if ((rc = schema_version(st, &now))) return rc;
        if (now != v + 1)
            return fail(st, HS_EDB, "%s left schema_version at %lld", what, (long long)now);
        v = now;
    }
    return 0;
}

int hs_store_migrate(hs_store_t *st)
{
    if (st->in_txn) return fail(st, HS_EINVAL, "hs_store_migrate() inside a transaction");
    return finish(st, migrate(st));
}

int hs_store_ping(hs_store_t *st)
{
    if (st->in_txn) return fail(st, HS_EINVAL, "hs_store_ping() inside a transaction");
    int64_t v = 0;
    return finish(st, schema_version(st, &v));
}

/* ---- transactions ---- */

int hs_store_begin(hs_store_t *st)
{
    if (st->in_txn) return fail(st, HS_EINVAL, "a transaction is already open");
    /* Manual-commit mode: the driver opens the transaction with the first statement. */
    st->in_txn = true;
    if (st->d->batch_lock_sql) {
        int rc = run(st, Q_BATCH_LOCK, NULL, 0, NULL, NULL);
        if (rc) {
            hs_store_rollback(st);
            return rc;
        }
    }
    return 0;
}

int hs_store_commit(hs_store_t *st)
{
    if (!st->in_txn) return fail(st, HS_EINVAL, "commit without a transaction");
    st->in_txn = false;
    return hs_odbc_commit(&st->db);
}

int hs_store_rollback(hs_store_t *st)
{
    st->in_txn = false;
    if (hs_odbc_rollback(&st->db)) return dbfail(st, SQL_HANDLE_DBC, st->db.dbc, "rollback failed");
    return 0;
}

/* ---- streams ---- */

static int get_stream(hs_store_t *st, const char *name, size_t len, hs_stream_head_t *out)
{
    hs_par_t p[] = {HS_PTXT(name, len)};
    SQLHSTMT h;
    int rc = run(st, Q_GET_STREAM, p, 1, &h, NULL);
    if (rc) return rc;
    rc = fetch(st, h, Q_GET_STREAM);
    if (rc == 1) {
        head_from_cols(st, out);
        rc = 0;
    } else if (rc == 0) {
        rc = HS_ENOENT;
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return rc;
}

int hs_store_get_stream(hs_store_t *st, const char *name, size_t len, hs_stream_head_t *out)
{
    if (bad_text(name, len) || !out) return fail(st, HS_EINVAL, "get stream: bad argument");
    return finish(st, get_stream(st, name, len, out));
}

static int create_stream(hs_store_t *st, const char *name, size_t len, int64_t now_us, int64_t *id)
{
    hs_par_t p[] = {HS_PTXT(name, len), HS_PINT(now_us), HS_PINT(now_us)};
    int rc = run(st, Q_CREATE_STREAM, p, 3, NULL, NULL);
    if (rc) return rc;
    /* Read the id back by name: the same statement for every dialect, where "the last id"
     * would need one per database. */
    hs_stream_head_t head;
    rc = get_stream(st, name, len, &head);
    if (rc == HS_ENOENT) return fail(st, HS_EDB, "create stream: the new row cannot be read back");
    if (rc == 0) *id = head.id;
    return rc;
}

int hs_store_create_stream(hs_store_t *st, const char *name, size_t len, int64_t now_us,
                           int64_t *id)
{
    if (bad_text(name, len) || !id) return fail(st, HS_EINVAL, "create stream: bad argument");
    return finish(st, create_stream(st, name, len, now_us, id));
}

static int update_stream(hs_store_t *st, const hs_stream_head_t *head)
{
    hs_par_t p[] = {HS_PINT(head->version), HS_PINT(head->position), HS_PINT(head->closed ? 1 : 0),
                    HS_PINT(head->updated_us), HS_PINT(head->id)};
    SQLLEN n = 0;
    int rc = run(st, Q_UPDATE_STREAM, p, 5, NULL, &n);
    if (rc == 0 && n == 0) rc = HS_ENOENT;
    return rc;
}

int hs_store_update_stream(hs_store_t *st, const hs_stream_head_t *head)
{
    if (!head) return fail(st, HS_EINVAL, "update stream: no stream");
    return finish(st, update_stream(st, head));
}

static int delete_stream(hs_store_t *st, int64_t id)
{
    hs_par_t keep[] = {HS_PINT(id), HS_PINT(id)};
    hs_par_t one[] = {HS_PINT(id)};
    SQLLEN n = 0;
    int rc = run(st, Q_KEEP_POSITION, keep, 2, NULL, NULL);
    if (rc == 0) rc = run(st, Q_DELETE_EVENTS, one, 1, NULL, NULL);
    if (rc == 0) rc = run(st, Q_DELETE_STREAM, one, 1, NULL, &n);
    if (rc == 0 && n == 0) rc = HS_ENOENT;
    return rc;
}

int hs_store_delete_stream(hs_store_t *st, int64_t stream_id)
{
    return finish(st, delete_stream(st, stream_id));
}

static int max_position(hs_store_t *st, int64_t *pos)
{
    SQLHSTMT h;
    int rc = run(st, Q_MAX_POSITION, NULL, 0, &h, NULL);
    if (rc) return rc;
    *pos = 0;
    rc = fetch(st, h, Q_MAX_POSITION);
    if (rc == 1) *pos = ival(st, 0);
    SQLFreeStmt(h, SQL_CLOSE);
    return rc < 0 ? rc : 0;
}

int hs_store_max_position(hs_store_t *st, int64_t *pos)
{
    if (!pos) return fail(st, HS_EINVAL, "max position: bad argument");
    return finish(st, max_position(st, pos));
}

static int find_event(hs_store_t *st, int64_t stream_id, const char *event_id, size_t len,
                      int64_t *version, int64_t *position)
{
    hs_par_t p[] = {HS_PINT(stream_id), HS_PTXT(event_id, len)};
    SQLHSTMT h;
    int rc = run(st, Q_FIND_EVENT, p, 2, &h, NULL);
    if (rc) return rc;
    rc = fetch(st, h, Q_FIND_EVENT);
    if (rc == 1) {
        if (version) *version = ival(st, 0);
        if (position) *position = ival(st, 1);
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
    if (bad_text(event_id, len)) return fail(st, HS_EINVAL, "find event: bad argument");
    return finish(st, find_event(st, stream_id, event_id, len, version, position));
}

static int oldest_event(hs_store_t *st, int64_t stream_id, int64_t *version, int64_t *time_us)
{
    hs_par_t p[] = {HS_PINT(stream_id)};
    SQLHSTMT h;
    int rc = run(st, Q_OLDEST_EVENT, p, 1, &h, NULL);
    if (rc) return rc;
    rc = fetch(st, h, Q_OLDEST_EVENT);
    if (rc == 1) {
        *version = ival(st, 0);
        *time_us = ival(st, 1);
        rc = 0;
    } else if (rc == 0) {
        rc = HS_ENOENT;
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return rc;
}

int hs_store_oldest_event(hs_store_t *st, int64_t stream_id, int64_t *version, int64_t *time_us)
{
    if (!version || !time_us) return fail(st, HS_EINVAL, "oldest event: bad argument");
    return finish(st, oldest_event(st, stream_id, version, time_us));
}

int hs_store_trim(hs_store_t *st, int64_t stream_id, int64_t upto_version, int64_t before_us,
                  int64_t *deleted)
{
    hs_par_t p[] = {HS_PINT(stream_id), HS_PINT(upto_version), HS_PINT(before_us)};
    SQLLEN n = 0;
    int rc = run(st, Q_TRIM, p, 3, NULL, &n);
    if (rc == 0 && deleted) *deleted = n > 0 ? (int64_t)n : 0;
    return finish(st, rc);
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
    if (m <= b->rows) return 0;
    size_t cap = b->rows ? b->rows : 64;
    while (cap < m)
        cap *= 2;
    for (int c = 0; c < N_COUNT; c++) {
        size_t have = b->rows;
        SQLBIGINT *x = hs_odbc_grow(b->num[c], &have, cap, sizeof *x);
        if (!x) return nomem(st);
        b->num[c] = x;
    }
    for (int c = 0; c < S_COUNT; c++) {
        size_t have = b->rows;
        SQLLEN *x = hs_odbc_grow(b->len[c], &have, cap, sizeof *x);
        if (!x) return nomem(st);
        b->len[c] = x;
    }
    size_t have = b->rows;
    SQLUSMALLINT *x = hs_odbc_grow(b->status, &have, cap, sizeof *x);
    if (!x) return nomem(st);
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
    int rc = prep(st, Q_INSERT_EVENT, &h);
    if (rc) return rc;

    if ((rc = batch_reserve(st, m))) return rc;
    for (int c = 0; c < S_COUNT; c++) {
        char *x = hs_odbc_grow(b->text[c], &b->text_cap[c], w[c] * m, 1);
        if (!x) return nomem(st);
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
            if (len) memcpy(b->text[c] + k * w[c], s, len);
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
    if ((rc = hs_odbc_bind_array(&st->db, h, &a, "insert events"))) return rc;
    size_t bad = m;
    SQLRETURN r = hs_odbc_execute_array(h, &a, &bad);
    if (SQL_SUCCEEDED(r) && bad == m && b->processed == m) {
        SQLFreeStmt(h, SQL_CLOSE);
        return 0;
    }
    if (bad < m) {
        const hs_row_t *x = &rows[bad];
        rc = dbfail(st, SQL_HANDLE_STMT, h,
                    "inserting event %zu of %zu (stream_id %lld, version %lld, position %lld)",
                    first + bad + 1, total, (long long)x->stream_id, (long long)x->version,
                    (long long)x->position);
    } else if (!SQL_SUCCEEDED(r)) {
        rc = dbfail(st, SQL_HANDLE_STMT, h, "inserting events %zu..%zu of %zu", first + 1,
                    first + m, total);
    } else {
        rc = fail(st, HS_EDB, "inserting events %zu..%zu of %zu: the driver processed %lu rows",
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
    int rc = prep(st, Q_INSERT_VALUES, &h);
    if (rc) return rc;
    if ((rc = batch_reserve(st, VALUES_ROWS))) return rc;
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
        return dbfail(st, SQL_HANDLE_STMT, h, "insert events: cannot bind a multi-row insert");
    r = hs_odbc_execute(h);
    if (!SQL_SUCCEEDED(r)) {
        rc = dbfail(st, SQL_HANDLE_STMT, h, "inserting events %zu..%zu of %zu", first + 1,
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
            if (rc) return rc;
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
            if (j > i && sum * (j - i + 1) > INS_BUDGET) break;
            memcpy(w, nw, sizeof w);
            j++;
        }
        int rc = insert_some(st, rows + i, j - i, w, i, n);
        if (rc) return rc;
        i = j;
    }
    return 0;
}

int hs_store_insert_events(hs_store_t *st, const hs_row_t *rows, size_t n)
{
    if (n == 0) return 0;
    if (!rows) return fail(st, HS_EINVAL, "insert events: no rows");
    for (size_t i = 0; i < n; i++) {
        const hs_row_t *r = &rows[i];
        if (!r->event_id || !r->type || !r->data || r->event_id_len > HS_ODBC_TEXT_MAX ||
            r->type_len > HS_ODBC_TEXT_MAX || r->data_len > HS_ODBC_TEXT_MAX ||
            (r->metadata && r->metadata_len > HS_ODBC_TEXT_MAX))
            return fail(st, HS_EINVAL,
                        "insert events: row %zu lacks event_id, type or data, or"
                        " a value is too long",
                        i + 1);
    }
    return finish(st, insert_events(st, rows, n));
}

/* ---- reads ---- */

static size_t next_page(size_t page, size_t biggest)
{
    size_t n = page * 4 < PAGE_MAX ? page * 4 : PAGE_MAX;
    if (biggest > 0 && n > PAGE_BYTES / biggest) n = PAGE_BYTES / biggest;
    return n < PAGE_MIN ? PAGE_MIN : n;
}

/*
 * The paged read behind hs_store_read_stream() and hs_store_read_all(). With a name it reads
 * that stream (key: version), else every stream (key: position, and the stream name is the
 * 4th column). Each page continues after the last key seen.
 */
static int read_events(hs_store_t *st, int q, const char *name, size_t name_len, int64_t after,
                       size_t limit, hs_record_cb cb, void *ctx)
{
    bool all = name == NULL;
    size_t left = limit, page = PAGE_FIRST;

    while (left > 0) {
        size_t want = left < page ? left : page;
        hs_par_t p[3];
        int np = 0;
        if (!all) p[np++] = HS_PTXT(name, name_len);
        p[np++] = HS_PINT(after);
        p[np++] = HS_PINT(want);
        SQLHSTMT h;
        int rc = run(st, q, p, np, &h, NULL);
        if (rc) return rc;

        size_t got = 0, biggest = 0;
        while ((rc = fetch(st, h, q)) == 1) {
            hs_record_t rec;
            SQLUSMALLINT col = 4;
            rc = 0;
            rec.version = ival(st, 0);
            rec.position = ival(st, 1);
            rec.time_us = ival(st, 2);
            if (all) {
                rc = text_col(st, h, col++, &st->t[T_STREAM], &rec.stream, &rec.stream_len);
            } else {
                rec.stream = name;
                rec.stream_len = name_len;
            }
            if (rc == 0)
                rc = text_col(st, h, col++, &st->t[T_EVENT_ID], &rec.event_id, &rec.event_id_len);
            if (rc == 0) rc = text_col(st, h, col++, &st->t[T_TYPE], &rec.type, &rec.type_len);
            if (rc == 0) rc = text_col(st, h, col++, &st->t[T_DATA], &rec.data, &rec.data_len);
            if (rc == 0)
                rc = text_col(st, h, col++, &st->t[T_META], &rec.metadata, &rec.metadata_len);
            if (rc == 0 && (!rec.event_id || !rec.type || !rec.data || !rec.stream))
                rc = fail(st, HS_EDB, "%s: NULL in a NOT NULL column at position %lld",
                          qinfo[q].what, (long long)rec.position);
            if (rc) break;
            size_t size =
                rec.stream_len + rec.event_id_len + rec.type_len + rec.data_len + rec.metadata_len;
            if (size > biggest) biggest = size;
            got++;
            left--;
            after = all ? rec.position : rec.version;
            rc = cb(ctx, &rec);
            if (rc) break;
        }
        SQLFreeStmt(h, SQL_CLOSE);
        if (rc) return rc;
        if (got < want) break;
        page = next_page(page, biggest);
    }
    return 0;
}

/* Sizes the block for `want` rows at the current widths; returns the rows it holds (>= 1). */
static size_t block_reserve(hs_store_t *st, size_t want)
{
    rblock_t *b = &st->rb;
    size_t per_row = 0;
    for (int c = 0; c < B_COUNT; c++)
        per_row += b->width[c];
    size_t rows = want < BLOCK_ROWS ? want : BLOCK_ROWS;
    if (rows > BLOCK_BYTES / per_row) rows = BLOCK_BYTES / per_row;
    if (rows < 1) rows = 1;
    if (rows > b->cap) {
        size_t have;
        for (int i = 0; i < 3; i++) {
            have = b->cap;
            SQLBIGINT *x = hs_odbc_grow(b->num[i], &have, rows, sizeof *x);
            if (!x) return 0;
            b->num[i] = x;
            have = b->cap;
            SQLLEN *y = hs_odbc_grow(b->num_ind[i], &have, rows, sizeof *y);
            if (!y) return 0;
            b->num_ind[i] = y;
        }
        for (int c = 0; c < B_COUNT; c++) {
            have = b->cap;
            SQLLEN *y = hs_odbc_grow(b->ind[c], &have, rows, sizeof *y);
            if (!y) return 0;
            b->ind[c] = y;
        }
        have = b->cap;
        SQLUSMALLINT *z = hs_odbc_grow(b->status, &have, rows, sizeof *z);
        if (!z) return 0;
        b->status = z;
        b->cap = rows;
    }
    for (int c = 0; c < B_COUNT; c++) {
        char *x = hs_odbc_grow(b->text[c], &b->text_cap[c], rows * b->width[c], 1);
        if (!x) return 0;
        b->text[c] = x;
    }
    return rows;
}

/* Binds the block's arrays to statement h (a forward read; `all`: with the stream column). */
static int block_bind(hs_store_t *st, SQLHSTMT h, bool all, size_t rows)
{
    rblock_t *b = &st->rb;
    SQLRETURN r = SQLSetStmtAttr(h, SQL_ATTR_ROW_BIND_TYPE, (SQLPOINTER)SQL_BIND_BY_COLUMN, 0);
    if (SQL_SUCCEEDED(r))
        r = SQLSetStmtAttr(h, SQL_ATTR_ROW_ARRAY_SIZE, (SQLPOINTER)(uintptr_t)rows, 0);
    if (SQL_SUCCEEDED(r)) r = SQLSetStmtAttr(h, SQL_ATTR_ROWS_FETCHED_PTR, &b->fetched, 0);
    if (SQL_SUCCEEDED(r)) r = SQLSetStmtAttr(h, SQL_ATTR_ROW_STATUS_PTR, b->status, 0);
    SQLUSMALLINT col = 1;
    for (int i = 0; i < 3 && SQL_SUCCEEDED(r); i++)
        r = SQLBindCol(h, col++, SQL_C_SBIGINT, b->num[i], 0, b->num_ind[i]);
    for (int c = all ? B_STREAM : B_EVENT_ID; c < B_COUNT && SQL_SUCCEEDED(r); c++)
        r = SQLBindCol(h, col++, SQL_C_CHAR, b->text[c], (SQLLEN)b->width[c], b->ind[c]);
    if (!SQL_SUCCEEDED(r)) return dbfail(st, SQL_HANDLE_STMT, h, "cannot bind a read block");
    return 0;
}

/*
 * The forward read of read_events() through a block cursor. Same contract; each query continues
 * after the last key delivered.
 */
static int read_block(hs_store_t *st, int q, const char *name, size_t name_len, int64_t after,
                      size_t limit, hs_record_cb cb, void *ctx)
{
    rblock_t *b = &st->rb;
    bool all = name == NULL;
    size_t left = limit, page = PAGE_FIRST;
    static const size_t first_width[B_COUNT] = {256, 128, 128, 512, 256};
    if (!b->width[0]) memcpy(b->width, first_width, sizeof first_width);

    while (left > 0) {
        size_t want = left < page ? left : page;
        size_t rows = block_reserve(st, want);
        if (!rows) return nomem(st);
        SQLHSTMT h;
        int rc = prep(st, q, &h);
        if (rc) return rc;
        if ((rc = block_bind(st, h, all, rows))) return rc;
        hs_par_t p[3];
        int np = 0;
        if (!all) p[np++] = HS_PTXT(name, name_len);
        p[np++] = HS_PINT(after);
        p[np++] = HS_PINT(want);
        if ((rc = run(st, q, p, np, &h, NULL))) return rc;

        size_t got = 0, biggest = 0, longest[B_COUNT] = {0};
        bool widened = false, end = false;
        while (rc == 0 && !widened && !end) {
            b->fetched = 0;
            int fr = fetch(st, h, q); /* a block of rows */
            if (fr == 0) break;
            if (fr < 0) {
                rc = fr;
                break;
            }
            if (b->fetched < rows) end = true; /* the last block of this query */
            for (size_t i = 0; i < b->fetched && rc == 0; i++) {
                if (b->status[i] != SQL_ROW_SUCCESS && b->status[i] != SQL_ROW_SUCCESS_WITH_INFO) {
                    rc = fail(st, HS_EDB, "%s: row %zu of a block failed", qinfo[q].what, i + 1);
                    break;
                }
                /* a value that did not fit: widen its column, read again from here */
                for (int c = all ? B_STREAM : B_EVENT_ID; c < B_COUNT; c++) {
                    SQLLEN ind = b->ind[c][i];
                    if (ind == SQL_NO_TOTAL || (ind >= 0 && (size_t)ind >= b->width[c])) {
                        size_t need = ind == SQL_NO_TOTAL ? b->width[c] * 4 : (size_t)ind + 1;
                        if (need > HS_ODBC_TEXT_MAX) need = HS_ODBC_TEXT_MAX;
                        b->width[c] = hs_odbc_pow2_above(need - 1);
                        widened = true;
                    }
                }
                if (widened) break;
                hs_record_t rec;
                const char *txt[B_COUNT];
                size_t len[B_COUNT];
                for (int c = 0; c < B_COUNT; c++) {
                    SQLLEN ind = b->ind[c][i];
                    bool null = (c == B_STREAM && !all) || ind == SQL_NULL_DATA;
                    txt[c] = null ? NULL : b->text[c] + i * b->width[c];
                    len[c] = null ? 0 : (size_t)ind;
                    if (len[c] > longest[c]) longest[c] = len[c];
                }
                rec.version = b->num_ind[0][i] == SQL_NULL_DATA ? 0 : (int64_t)b->num[0][i];
                rec.position = b->num_ind[1][i] == SQL_NULL_DATA ? 0 : (int64_t)b->num[1][i];
                rec.time_us = b->num_ind[2][i] == SQL_NULL_DATA ? 0 : (int64_t)b->num[2][i];
                rec.stream = all ? txt[B_STREAM] : name;
                rec.stream_len = all ? len[B_STREAM] : name_len;
                rec.event_id = txt[B_EVENT_ID];
                rec.event_id_len = len[B_EVENT_ID];
                rec.type = txt[B_TYPE];
                rec.type_len = len[B_TYPE];
                rec.data = txt[B_DATA];
                rec.data_len = len[B_DATA];
                rec.metadata = txt[B_META];
                rec.metadata_len = len[B_META];
                if (!rec.event_id || !rec.type || !rec.data || !rec.stream) {
                    rc = fail(st, HS_EDB, "%s: NULL in a NOT NULL column at position %lld",
                              qinfo[q].what, (long long)rec.position);
                    break;
                }
                size_t size =
                    rec.stream_len + rec.event_id_len + rec.type_len + rec.data_len + rec.metadata_len;
                if (size > biggest) biggest = size;
                got++;
                left--;
                after = all ? rec.position : rec.version;
                rc = cb(ctx, &rec);
            }
        }
        SQLFreeStmt(h, SQL_CLOSE);
        if (rc) return rc;
        if (widened) continue; /* the same page again, from the row that did not fit */
        /* one big event must not leave a column wide (and blocks short) for good */
        for (int c = 0; c < B_COUNT && got > 0; c++) {
            size_t fit = hs_odbc_pow2_above(longest[c]) * 2;
            if (fit < first_width[c]) fit = first_width[c];
            if (fit * 4 <= b->width[c]) b->width[c] = fit;
        }
        if (got < want) break;
        page = next_page(page, biggest);
    }
    return 0;
}

int hs_store_read_stream(hs_store_t *st, const char *name, size_t len, int64_t after, bool backward,
                         size_t limit, hs_record_cb cb, void *ctx)
{
    if (bad_text(name, len) || !cb) return fail(st, HS_EINVAL, "read stream: bad argument");
    if (backward && after <= 0) after = INT64_MAX;
    if (!backward)
        return finish(st, read_block(st, Q_READ_STREAM_BLOCK, name ? name : "", len, after, limit,
                                     cb, ctx));
    return finish(st, read_events(st, Q_READ_STREAM_BWD, name ? name : "", len, after, limit, cb,
                                  ctx));
}

int hs_store_read_all(hs_store_t *st, int64_t after, bool backward, size_t limit, hs_record_cb cb,
                      void *ctx)
{
    if (!cb) return fail(st, HS_EINVAL, "read all: no callback");
    if (backward && after <= 0) after = INT64_MAX;
    if (!backward) return finish(st, read_block(st, Q_READ_ALL_BLOCK, NULL, 0, after, limit, cb, ctx));
    return finish(st, read_events(st, Q_READ_ALL_BWD, NULL, 0, after, limit, cb, ctx));
}

/* memcmp order over byte strings of different lengths. */
static int bytecmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

static int set_text(hs_odbc_text_t *t, const char *s, size_t len)
{
    if (hs_odbc_text_reserve(t, len + 1)) return HS_ENOMEM;
    if (len) memcpy(t->p, s, len);
    t->p[len] = '\0';
    return 0;
}

/*
 * The least string above every string that starts with prefix, written into hi (which holds
 * plen + 1 bytes): the prefix with its last character raised. Returns its length, 0 when there
 * is none (an empty prefix, or one of only the highest characters: every string >= it starts
 * with it). For UTF-8 the character is a code point, so the bound is valid UTF-8 too (PostgreSQL
 * and SQL Server refuse or mangle anything else); UTF-8 byte order is code point order, so the
 * range is the same. A prefix that is not UTF-8 gets its last byte raised instead.
 */
static size_t prefix_bound(const char *prefix, size_t plen, char *hi)
{
    const unsigned char *p = (const unsigned char *)prefix;
    size_t at = 0;
    uint32_t c;
    while (at < plen) {
        size_t len = hs_utf8_char(p + at, plen - at, &c);
        if (!len) break;
        at += len;
    }
    memcpy(hi, prefix, plen);
    if (at == plen) {
        /* valid UTF-8: from the end, the first character that can be raised */
        size_t end = plen;
        while (end > 0) {
            size_t i = end - 1;
            while (i > 0 && (p[i] & 0xC0) == 0x80)
                i--;
            hs_utf8_char(p + i, end - i, &c);
            if (c != 0x10FFFF) {
                c = c + 1 == 0xD800 ? 0xE000 : c + 1;
                return i + hs_utf8_put(c, hi + i);
            }
            end = i;
        }
        return 0;
    }
    size_t n = plen;
    while (n > 0 && p[n - 1] == 0xFF)
        n--;
    if (n > 0) hi[n - 1] = (char)(p[n - 1] + 1);
    return n;
}

/*
 * Prefix matching without LIKE (case folding, wildcards): names sort byte-wise, so the names
 * starting with `prefix` are those >= prefix and < prefix_bound(prefix).
 */
static int list_streams(hs_store_t *st, const char *prefix, size_t plen, const char *after,
                        size_t alen, size_t limit, hs_stream_cb cb, void *ctx)
{
    hs_odbc_text_t *key = &st->t[T_KEY], *hi = &st->t[T_HI];
    size_t keylen, hilen = plen;
    int incl = 1;

    if (alen > 0 && bytecmp(after, alen, prefix, plen) >= 0) {
        if (set_text(key, after, alen)) return nomem(st);
        keylen = alen;
        incl = 0;
    } else {
        if (set_text(key, prefix, plen)) return nomem(st);
        keylen = plen;
    }
    /* a raised character may take one more byte (U+007F -> U+0080) */
    if (hs_odbc_text_reserve(hi, plen + 2)) return nomem(st);
    hilen = prefix_bound(prefix, plen, hi->p);
    int q = hilen > 0 ? Q_LIST : Q_LIST_OPEN;

    size_t left = limit;
    while (left > 0) {
        size_t want = left < LIST_PAGE ? left : LIST_PAGE;
        hs_par_t p[5];
        int np = 0;
        p[np++] = HS_PTXT(key->p, keylen);
        p[np++] = HS_PTXT(key->p, keylen);
        p[np++] = HS_PINT(incl);
        if (hilen > 0) p[np++] = HS_PTXT(hi->p, hilen);
        p[np++] = HS_PINT(want);
        SQLHSTMT h;
        int rc = run(st, q, p, np, &h, NULL);
        if (rc) return rc;

        size_t got = 0;
        const char *name = NULL;
        size_t nlen = 0;
        while ((rc = fetch(st, h, q)) == 1) {
            hs_stream_head_t head;
            head_from_cols(st, &head);
            rc = text_col(st, h, INT_COLS + 1, &st->t[T_STREAM], &name, &nlen);
            if (rc == 0 && !name) rc = fail(st, HS_EDB, "list streams: a stream without a name");
            if (rc) break;
            got++;
            left--;
            rc = cb(ctx, name, nlen, &head);
            if (rc) break;
        }
        SQLFreeStmt(h, SQL_CLOSE);
        if (rc) return rc;
        if (got < want) break;
        /* The next page starts after the last name: copy it, the buffer is reused. */
        if (set_text(key, name, nlen)) return nomem(st);
        keylen = nlen;
        incl = 0;
    }
    return 0;
}

int hs_store_list_streams(hs_store_t *st, const char *prefix, size_t prefix_len, const char *after,
                          size_t after_len, size_t limit, hs_stream_cb cb, void *ctx)
{
    if (bad_text(prefix, prefix_len) || bad_text(after, after_len) || !cb)
        return fail(st, HS_EINVAL, "list streams: bad argument");
    return finish(st, list_streams(st, prefix ? prefix : "", prefix_len, after ? after : "",
                                   after_len, limit, cb, ctx));
}
