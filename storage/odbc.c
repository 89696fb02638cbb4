/*
 * The ODBC layer under the store: handles, diagnostics, the fault switch, and the helpers that
 * prepare, bind, execute and fetch (see odbc.h).
 *
 * What it is: the part of talking to a database over ODBC that does not depend on what is said.
 * Every ODBC call that can fail at run time (connect, prepare, execute, fetch, get data, row
 * count, commit) is made here, through ODBC(), so that the test-only fault switch sees them
 * all; diagnostics are read from the driver here and written into the connection's buffer.
 *
 * What it is not: no SQL text, no dialect, no schema. Streams, events, positions, the
 * statements about them, their caching and the transaction rules of the store are store.c's.
 */
#include "storage/odbc.h"

#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hubstream/hubstream.h>

/* First SQLGetData size of a text buffer: sqliteodbc strncpy()s into the whole buffer it is
 * given (zero-filling it), so asking for a 1 MiB buffer for a 100-byte value costs a 1 MiB
 * memset. Each column asks for the next power of two above its previous value instead. */
#define HINT_MIN 256

/* ---- test-only fault injection (the switch behind hs_store_fault, store.h) ---- */

static atomic_bool fault_armed;
static atomic_long fault_calls, fault_at;
static atomic_int fault_flags;
/* Set on the thread whose call was failed on purpose, so that hs_odbc_vdbfail() says so instead of
 * reading a stale diagnostic from the handle; and whether that call should still run. */
static _Thread_local bool fault_now;
static _Thread_local bool fault_run;
static _Thread_local bool fault_exempt;

void hs_odbc_fault_exempt(void)
{
    fault_exempt = true;
}

void hs_odbc_fault(long nth, int flags)
{
    atomic_store(&fault_armed, false);
    atomic_store(&fault_calls, 0);
    atomic_store(&fault_at, nth);
    atomic_store(&fault_flags, flags);
    atomic_store(&fault_armed, nth > 0 || (flags & HS_ODBC_FAULT_COUNT));
}

long hs_odbc_fault_calls(void)
{
    return atomic_load(&fault_calls);
}

/* Counts one fallible ODBC call and says whether to fail it. */
static bool fault(void)
{
    if (!atomic_load_explicit(&fault_armed, memory_order_relaxed) || fault_exempt)
        return false;
    long n = atomic_fetch_add(&fault_calls, 1) + 1;
    long at = atomic_load(&fault_at);
    int flags = atomic_load(&fault_flags);
    if (at <= 0 || n < at || (n > at && !(flags & HS_ODBC_FAULT_STICKY))) {
        fault_now = false;
        return false;
    }
    fault_now = true;
    fault_run = n == at && (flags & HS_ODBC_FAULT_AFTER);
    return true;
}

/* Every ODBC call that can fail at run time goes through this: `call` is evaluated once,
 * unless the fault skips it. */
#define ODBC(call)                                                                                 \
    (!fault() ? (call) : fault_run ? ((void)(call), (SQLRETURN)SQL_ERROR) : (SQLRETURN)SQL_ERROR)

/* ---- diagnostics ---- */

int hs_odbc_vfail(hs_odbc_t *c, int code, const char *fmt, va_list ap)
{
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    return code;
}

int hs_odbc_fail(hs_odbc_t *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hs_odbc_vfail(c, code, fmt, ap);
    va_end(ap);
    return code;
}

/* Writes "<context>: [SQLSTATE] message" (up to three diagnostic records) and returns HS_EDB. */
int hs_odbc_vdbfail(hs_odbc_t *c, SQLSMALLINT type, SQLHANDLE h, const char *fmt, va_list ap)
{
    int n = vsnprintf(c->err, sizeof c->err, fmt, ap);
    size_t at = n < 0 ? 0 : (size_t)n < sizeof c->err ? (size_t)n : sizeof c->err - 1;
    int found = 0;

    if (fault_now) {
        fault_now = false;
        snprintf(c->err + at, sizeof c->err - at, ": [HY000] injected fault (hs_store_fault)");
        return HS_EDB;
    }

    for (SQLSMALLINT i = 1; i <= 3 && h != SQL_NULL_HANDLE; i++) {
        SQLCHAR state[6] = "", msg[SQL_MAX_MESSAGE_LENGTH];
        SQLINTEGER native = 0;
        SQLSMALLINT mlen = 0;
        SQLRETURN r = SQLGetDiagRec(type, h, i, state, &native, msg, sizeof msg, &mlen);
        if (!SQL_SUCCEEDED(r))
            break;
        n = snprintf(c->err + at, sizeof c->err - at, "%s [%s] %s", found ? ";" : ":",
                     (char *)state, (char *)msg);
        found++;
        if (n < 0 || (size_t)n >= sizeof c->err - at)
            break;
        at += (size_t)n;
    }
    if (!found && at < sizeof c->err)
        snprintf(c->err + at, sizeof c->err - at, ": (no diagnostic from the driver)");
    return HS_EDB;
}

int hs_odbc_dbfail(hs_odbc_t *c, SQLSMALLINT type, SQLHANDLE h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = hs_odbc_vdbfail(c, type, h, fmt, ap);
    va_end(ap);
    return rc;
}

int hs_odbc_nomem(hs_odbc_t *c)
{
    return hs_odbc_fail(c, HS_ENOMEM, "out of memory");
}

/* ---- buffers ---- */

void *hs_odbc_grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (*cap >= need)
        return p;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    if (n > SIZE_MAX / size)
        return NULL;
    void *q = realloc(p, n * size);
    if (q)
        *cap = n;
    return q;
}

/* The same for a text buffer. */
int hs_odbc_text_reserve(hs_odbc_text_t *t, size_t need)
{
    char *p = hs_odbc_grow(t->p, &t->cap, need, 1);
    if (!p)
        return HS_ENOMEM;
    t->p = p;
    return 0;
}

int hs_odbc_text_init(hs_odbc_text_t *t)
{
    if (hs_odbc_text_reserve(t, HINT_MIN))
        return HS_ENOMEM;
    t->hint = HINT_MIN;
    return 0;
}

void hs_odbc_text_free(hs_odbc_text_t *t)
{
    free(t->p);
}

size_t hs_odbc_pow2_above(size_t n)
{
    size_t h = HINT_MIN;
    while (h <= n && h <= SIZE_MAX / 2)
        h *= 2;
    return h;
}

/* ---- connection ---- */

int hs_odbc_connect(hs_odbc_t *c, const char *cs, const char *file)
{
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &c->env))) {
        c->env = SQL_NULL_HENV;
        return hs_odbc_fail(c, HS_EDB,
                            "cannot allocate an ODBC environment (is unixODBC installed?)");
    }
    SQLSetEnvAttr(c->env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER)SQL_OV_ODBC3, 0);
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_DBC, c->env, &c->dbc))) {
        c->dbc = SQL_NULL_HDBC;
        return hs_odbc_dbfail(c, SQL_HANDLE_ENV, c->env, "cannot allocate an ODBC connection");
    }
    SQLRETURN r = ODBC(
        SQLDriverConnect(c->dbc, NULL, (SQLCHAR *)cs, SQL_NTS, NULL, 0, NULL, SQL_DRIVER_NOPROMPT));
    if (!SQL_SUCCEEDED(r)) {
        /* A connection string may carry a password: only a bare path is repeated. */
        if (file)
            return hs_odbc_dbfail(c, SQL_HANDLE_DBC, c->dbc, "cannot open database file '%s'",
                                  file);
        return hs_odbc_dbfail(c, SQL_HANDLE_DBC, c->dbc, "cannot connect to the database");
    }
    c->connected = true;
    return 0;
}

int hs_odbc_dbms_name(hs_odbc_t *c, char *out, size_t outlen)
{
    SQLSMALLINT dlen = 0;
    if (outlen)
        out[0] = '\0';
    SQLSMALLINT len = outlen > SHRT_MAX ? SHRT_MAX : (SQLSMALLINT)outlen;
    SQLRETURN r = SQLGetInfo(c->dbc, SQL_DBMS_NAME, out, len, &dlen);
    if (!SQL_SUCCEEDED(r))
        return hs_odbc_dbfail(c, SQL_HANDLE_DBC, c->dbc, "cannot ask the driver for its DBMS name");
    return 0;
}

int hs_odbc_manual_commit(hs_odbc_t *c)
{
    SQLRETURN r = SQLSetConnectAttr(c->dbc, SQL_ATTR_AUTOCOMMIT, (SQLPOINTER)SQL_AUTOCOMMIT_OFF, 0);
    if (!SQL_SUCCEEDED(r))
        return hs_odbc_dbfail(c, SQL_HANDLE_DBC, c->dbc, "cannot switch to manual commit");
    return 0;
}

int hs_odbc_auto_commit(hs_odbc_t *c)
{
    SQLRETURN r =
        ODBC(SQLSetConnectAttr(c->dbc, SQL_ATTR_AUTOCOMMIT, (SQLPOINTER)SQL_AUTOCOMMIT_ON, 0));
    if (!SQL_SUCCEEDED(r))
        return hs_odbc_dbfail(c, SQL_HANDLE_DBC, c->dbc, "cannot switch to autocommit");
    return 0;
}

void hs_odbc_close(hs_odbc_t *c)
{
    if (c->scratch)
        SQLFreeHandle(SQL_HANDLE_STMT, c->scratch);
    if (c->connected) {
        /* Whatever was not committed is abandoned, as if the process had stopped. */
        SQLEndTran(SQL_HANDLE_DBC, c->dbc, SQL_ROLLBACK);
        SQLDisconnect(c->dbc);
    }
    if (c->dbc)
        SQLFreeHandle(SQL_HANDLE_DBC, c->dbc);
    if (c->env)
        SQLFreeHandle(SQL_HANDLE_ENV, c->env);
    c->scratch = SQL_NULL_HSTMT;
    c->connected = false;
    c->dbc = SQL_NULL_HDBC;
    c->env = SQL_NULL_HENV;
}

int hs_odbc_commit(hs_odbc_t *c)
{
    if (!SQL_SUCCEEDED(ODBC(SQLEndTran(SQL_HANDLE_DBC, c->dbc, SQL_COMMIT)))) {
        /* A failed COMMIT may leave the transaction open (SQLite on SQLITE_BUSY): end it, so
         * that after this call there is no transaction either way. */
        int rc = hs_odbc_dbfail(c, SQL_HANDLE_DBC, c->dbc, "commit failed");
        SQLEndTran(SQL_HANDLE_DBC, c->dbc, SQL_ROLLBACK);
        return rc;
    }
    return 0;
}

int hs_odbc_rollback(hs_odbc_t *c)
{
    if (!SQL_SUCCEEDED(ODBC(SQLEndTran(SQL_HANDLE_DBC, c->dbc, SQL_ROLLBACK))))
        return HS_EDB;
    return 0;
}

/* ---- statements ---- */

int hs_odbc_prepare(hs_odbc_t *c, const char *sql, const char *what, SQLBIGINT *cols, SQLLEN *ind,
                    int ncols, SQLHSTMT *out)
{
    SQLHSTMT h = SQL_NULL_HSTMT;
    if (!SQL_SUCCEEDED(ODBC(SQLAllocHandle(SQL_HANDLE_STMT, c->dbc, &h))))
        return hs_odbc_dbfail(c, SQL_HANDLE_DBC, c->dbc, "cannot allocate a statement");
    if (!SQL_SUCCEEDED(ODBC(SQLPrepare(h, (SQLCHAR *)sql, SQL_NTS)))) {
        int rc = hs_odbc_dbfail(c, SQL_HANDLE_STMT, h, "cannot prepare '%s'", what);
        SQLFreeHandle(SQL_HANDLE_STMT, h);
        return rc;
    }
    for (int i = 0; i < ncols; i++) {
        SQLRETURN r = SQLBindCol(h, (SQLUSMALLINT)(i + 1), SQL_C_SBIGINT, &cols[i], 0, &ind[i]);
        if (!SQL_SUCCEEDED(r)) {
            int rc = hs_odbc_dbfail(c, SQL_HANDLE_STMT, h, "cannot bind '%s'", what);
            SQLFreeHandle(SQL_HANDLE_STMT, h);
            return rc;
        }
    }
    *out = h;
    return 0;
}

int hs_odbc_bind(hs_odbc_t *c, SQLHSTMT h, hs_par_t *p, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        SQLRETURN r;
        if (p[i].text) {
            SQLSMALLINT type = p[i].len > HS_ODBC_LONG_TEXT ? SQL_LONGVARCHAR : SQL_VARCHAR;
            SQLULEN size = p[i].len > 0 ? (SQLULEN)p[i].len : 1;
            r = SQLBindParameter(h, (SQLUSMALLINT)(i + 1), SQL_PARAM_INPUT, SQL_C_CHAR, type, size,
                                 0, (SQLPOINTER)p[i].s, p[i].len, &p[i].len);
        } else {
            r = SQLBindParameter(h, (SQLUSMALLINT)(i + 1), SQL_PARAM_INPUT, SQL_C_SBIGINT,
                                 SQL_BIGINT, 0, 0, &p[i].i, 0, NULL);
        }
        if (!SQL_SUCCEEDED(r))
            return hs_odbc_dbfail(c, SQL_HANDLE_STMT, h, "cannot bind parameter %d of '%s'", i + 1,
                                  what);
    }
    return 0;
}

int hs_odbc_run(hs_odbc_t *c, SQLHSTMT h, hs_par_t *p, int n, const char *what, SQLLEN *changed)
{
    bool bound = false;
    return hs_odbc_run_bound(c, h, p, n, &bound, what, changed);
}

int hs_odbc_run_bound(hs_odbc_t *c, SQLHSTMT h, hs_par_t *p, int n, bool *bound, const char *what,
                      SQLLEN *changed)
{
    int rc = 0;
    if (!*bound) {
        if ((rc = hs_odbc_bind(c, h, p, n, what)))
            return rc;
        *bound = true;
    }
    SQLRETURN r = ODBC(SQLExecute(h));
    /* SQL_NO_DATA: an UPDATE or DELETE that matched no row (ODBC 3). */
    if (r != SQL_NO_DATA && !SQL_SUCCEEDED(r)) {
        rc = hs_odbc_dbfail(c, SQL_HANDLE_STMT, h, "%s failed", what);
        SQLFreeStmt(h, SQL_CLOSE);
        return rc;
    }
    if (changed) {
        *changed = 0;
        if (r != SQL_NO_DATA && !SQL_SUCCEEDED(ODBC(SQLRowCount(h, changed)))) {
            rc = hs_odbc_dbfail(c, SQL_HANDLE_STMT, h, "%s: no row count", what);
            SQLFreeStmt(h, SQL_CLOSE);
            return rc;
        }
    }
    return 0;
}

SQLRETURN hs_odbc_execute(SQLHSTMT h)
{
    return ODBC(SQLExecute(h));
}

/* The one-off statement handle (hs_odbc_direct*), allocated at first use. */
static int scratch(hs_odbc_t *c)
{
    if (c->scratch)
        return 0;
    if (SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, c->dbc, &c->scratch)))
        return 0;
    c->scratch = SQL_NULL_HSTMT;
    return hs_odbc_dbfail(c, SQL_HANDLE_DBC, c->dbc, "cannot allocate a statement");
}

int hs_odbc_direct(hs_odbc_t *c, const char *sql, const char *what)
{
    int rc = scratch(c);
    if (rc)
        return rc;
    SQLRETURN r = ODBC(SQLExecDirect(c->scratch, (SQLCHAR *)sql, SQL_NTS));
    if (r != SQL_NO_DATA && !SQL_SUCCEEDED(r))
        rc = hs_odbc_dbfail(c, SQL_HANDLE_STMT, c->scratch, "%s failed (%.80s)", what, sql);
    SQLFreeStmt(c->scratch, SQL_CLOSE);
    return rc;
}

int hs_odbc_direct_ints(hs_odbc_t *c, const char *sql, const char *what, int64_t *out, int n)
{
    int rc = scratch(c);
    if (rc)
        return rc;
    SQLRETURN r = ODBC(SQLExecDirect(c->scratch, (SQLCHAR *)sql, SQL_NTS));
    if (!SQL_SUCCEEDED(r)) {
        rc = hs_odbc_dbfail(c, SQL_HANDLE_STMT, c->scratch, "%s failed (%.80s)", what, sql);
    } else if ((rc = hs_odbc_fetch(c, c->scratch, what)) == 0) {
        rc = hs_odbc_fail(c, HS_EDB, "%s: no row", what);
    } else if (rc == 1) {
        rc = 0;
        for (int i = 0; i < n && !rc; i++) {
            SQLBIGINT v = 0;
            SQLLEN ind = 0;
            r = ODBC(SQLGetData(c->scratch, (SQLUSMALLINT)(i + 1), SQL_C_SBIGINT, &v, 0, &ind));
            if (!SQL_SUCCEEDED(r))
                rc = hs_odbc_dbfail(c, SQL_HANDLE_STMT, c->scratch, "%s: cannot read column %d",
                                    what, i + 1);
            out[i] = ind == SQL_NULL_DATA ? 0 : (int64_t)v;
        }
    }
    SQLFreeStmt(c->scratch, SQL_CLOSE);
    return rc;
}

int hs_odbc_fetch(hs_odbc_t *c, SQLHSTMT h, const char *what)
{
    SQLRETURN r = ODBC(SQLFetch(h));
    if (r == SQL_NO_DATA)
        return 0;
    if (SQL_SUCCEEDED(r))
        return 1;
    return hs_odbc_dbfail(c, SQL_HANDLE_STMT, h, "%s: fetch failed", what);
}

int hs_odbc_text_col(hs_odbc_t *c, SQLHSTMT h, SQLUSMALLINT col, hs_odbc_text_t *t, const char **s,
                     size_t *len)
{
    size_t have = 0;
    size_t ask = t->hint < t->cap ? t->hint : t->cap;

    for (;;) {
        SQLLEN ind = 0;
        SQLRETURN r = ODBC(SQLGetData(h, col, SQL_C_CHAR, t->p + have, (SQLLEN)ask, &ind));
        if (r == SQL_NO_DATA) /* the previous call returned the rest */
            break;
        if (!SQL_SUCCEEDED(r))
            return hs_odbc_dbfail(c, SQL_HANDLE_STMT, h, "cannot read column %u", (unsigned)col);
        if (ind == SQL_NULL_DATA) {
            *s = NULL;
            *len = 0;
            return 0;
        }
        if (ind != SQL_NO_TOTAL && ind < 0)
            return hs_odbc_fail(c, HS_EDB, "column %u: driver returned length %ld", (unsigned)col,
                                (long)ind);
        if (ind != SQL_NO_TOTAL && (size_t)ind < ask) {
            have += (size_t)ind;
            break;
        }
        /* Truncated: ask - 1 bytes plus a NUL were written; ind was what remained before. */
        have += ask - 1;
        size_t need = ind == SQL_NO_TOTAL ? t->cap * 2 : have + ((size_t)ind - (ask - 1)) + 1;
        if (hs_odbc_text_reserve(t, need))
            return hs_odbc_nomem(c);
        ask = t->cap - have;
    }
    t->hint = hs_odbc_pow2_above(have);
    *s = t->p;
    *len = have;
    return 0;
}

/* ---- parameter arrays ---- */

/* What a binds, as hs_odbc_bound_t records it. */
static void array_record(const hs_odbc_array_t *a, hs_odbc_bound_t *out)
{
    memset(out, 0, sizeof *out);
    out->rows = a->rows;
    for (int k = 0; k < a->nint; k++)
        out->at[k] = a->ints[k];
    for (int k = 0; k < a->ntext; k++) {
        out->at[HS_ODBC_ARRAY_COLS + k] = a->text[k];
        out->at[2 * HS_ODBC_ARRAY_COLS + k] = a->len[k];
        out->width[k] = a->width[k];
    }
    out->at[3 * HS_ODBC_ARRAY_COLS] = a->status;
    out->at[3 * HS_ODBC_ARRAY_COLS + 1] = a->processed;
}

int hs_odbc_bind_array(hs_odbc_t *c, SQLHSTMT h, const hs_odbc_array_t *a, hs_odbc_bound_t *last,
                       const char *what)
{
    if (a->nint > HS_ODBC_ARRAY_COLS || a->ntext > HS_ODBC_ARRAY_COLS)
        return hs_odbc_fail(c, HS_EINVAL, "%s: more than %d array columns of a kind", what,
                            HS_ODBC_ARRAY_COLS);
    hs_odbc_bound_t now;
    array_record(a, &now);
    if (last && memcmp(&now, last, sizeof now) == 0)
        return 0;
    if (last) /* bound again below: what was bound is not known until that succeeds */
        memset(last, 0, sizeof *last);
    SQLRETURN r = SQL_SUCCESS;
    for (int k = 0; k < a->nint && SQL_SUCCEEDED(r); k++)
        r = SQLBindParameter(h, (SQLUSMALLINT)(k + 1), SQL_PARAM_INPUT, SQL_C_SBIGINT, SQL_BIGINT,
                             0, 0, a->ints[k], 0, NULL);
    for (int k = 0; k < a->ntext && SQL_SUCCEEDED(r); k++)
        r = SQLBindParameter(h, (SQLUSMALLINT)(a->nint + k + 1), SQL_PARAM_INPUT, SQL_C_CHAR,
                             a->width[k] > HS_ODBC_LONG_TEXT ? SQL_LONGVARCHAR : SQL_VARCHAR,
                             a->width[k], 0, a->text[k], (SQLLEN)a->width[k], a->len[k]);
    if (SQL_SUCCEEDED(r))
        r = SQLSetStmtAttr(h, SQL_ATTR_PARAM_BIND_TYPE, (SQLPOINTER)SQL_PARAM_BIND_BY_COLUMN, 0);
    if (SQL_SUCCEEDED(r))
        r = SQLSetStmtAttr(h, SQL_ATTR_PARAMSET_SIZE, (SQLPOINTER)(uintptr_t)a->rows, 0);
    if (SQL_SUCCEEDED(r))
        r = SQLSetStmtAttr(h, SQL_ATTR_PARAM_STATUS_PTR, a->status, 0);
    if (SQL_SUCCEEDED(r))
        r = SQLSetStmtAttr(h, SQL_ATTR_PARAMS_PROCESSED_PTR, a->processed, 0);
    if (!SQL_SUCCEEDED(r))
        return hs_odbc_dbfail(c, SQL_HANDLE_STMT, h, "%s: cannot bind parameter arrays", what);
    if (last)
        *last = now;
    return 0;
}

SQLRETURN hs_odbc_execute_array(SQLHSTMT h, const hs_odbc_array_t *a, size_t *bad)
{
    size_t m = a->rows;
    for (size_t k = 0; k < m; k++)
        a->status[k] = SQL_PARAM_UNUSED;
    *a->processed = 0;
    SQLRETURN r = ODBC(SQLExecute(h));

    /* Which row failed: drivers that follow the spec mark it SQL_PARAM_ERROR (and may go on
     * with the next rows); sqliteodbc leaves the status array alone, stops at the failing row
     * and counts only the rows before it as processed. */
    *bad = m;
    for (size_t k = 0; k < m; k++) {
        if (a->status[k] == SQL_PARAM_ERROR) {
            *bad = k;
            break;
        }
    }
    if (*bad == m && *a->processed < m)
        *bad = *a->processed;
    return r;
}
