/*
 * The ODBC layer under the store: one connection's handles, its last diagnostic, and the
 * helpers that prepare, bind, execute and fetch over them.
 *
 * What it is: generic ODBC plumbing. Environment and connection handles and the one-off
 * statement handle; diagnostics (SQLGetDiagRec records formatted into the connection's error
 * buffer); the test-only fault-injection switch that every ODBC call that can fail at run time
 * goes through (so those calls live here and nowhere else); statements prepared with their
 * leading integer result columns bound once; parameters bound one by one or as column-wise
 * arrays (batch inserts); text columns read with SQLGetData into buffers that only grow.
 *
 * What it is not: it knows no SQL text, no dialect and no schema (streams, events, positions
 * and the statements about them are store.c's), and it caches nothing: the caller owns its
 * statement handles and frees them before hs_odbc_close(), and keeps the record of what a
 * statement's parameters are bound to when it wants binding skipped (hs_odbc_run_bound,
 * hs_odbc_bind_array). Not thread-safe: one hs_odbc_t per thread, like the store that embeds
 * it.
 */
#ifndef HS_ODBC_H
#define HS_ODBC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sql.h>
#include <sqlext.h>

#define HS_ODBC_ERR_MAX 1024
/* Text parameters longer than this are bound as SQL_LONGVARCHAR: SQL Server refuses VARCHAR
 * column sizes above 8000 bytes, and the type makes no difference to SQLite or PostgreSQL. */
#define HS_ODBC_LONG_TEXT 4000
/* One text value; SQLite's driver keeps lengths in an int. */
#define HS_ODBC_TEXT_MAX ((size_t)INT32_MAX - 1)

/* One connection. Zero-initialised until hs_odbc_connect(); err is the last diagnostic. */
typedef struct hs_odbc {
    SQLHENV env;
    SQLHDBC dbc;
    bool connected;
    SQLHSTMT scratch; /* one-off statements (hs_odbc_direct) */
    char err[HS_ODBC_ERR_MAX];
} hs_odbc_t;

/* ---- test-only fault injection (the switch behind hs_store_fault, store.h) ---- */

enum { HS_ODBC_FAULT_STICKY = 1, HS_ODBC_FAULT_AFTER = 2, HS_ODBC_FAULT_COUNT = 4 };
void hs_odbc_fault(long nth, int flags);
/* The calling thread's ODBC calls are neither counted nor failed by hs_odbc_fault() from now on:
 * for a background thread (the WAL checkpointer) whose calls would make a test's sweep over
 * the nth call depend on timing. */
void hs_odbc_fault_exempt(void);
long hs_odbc_fault_calls(void);

/* ---- diagnostics: each writes c->err and returns the error code ---- */

/* printf-style message, returns code. */
int hs_odbc_fail(hs_odbc_t *c, int code, const char *fmt, ...);
int hs_odbc_vfail(hs_odbc_t *c, int code, const char *fmt, va_list ap);
/* Writes "<context>: [SQLSTATE] message" (up to three diagnostic records of handle h, of
 * SQL_HANDLE_<type>) and returns HS_EDB. */
int hs_odbc_dbfail(hs_odbc_t *c, SQLSMALLINT type, SQLHANDLE h, const char *fmt, ...);
int hs_odbc_vdbfail(hs_odbc_t *c, SQLSMALLINT type, SQLHANDLE h, const char *fmt, va_list ap);
/* "out of memory", HS_ENOMEM. */
int hs_odbc_nomem(hs_odbc_t *c);

/* ---- buffers ---- */

/* Returns p resized to hold at least `need` elements of `size` bytes, updating *cap (it never
 * shrinks), or NULL when memory runs out (p is then left as it was). */
void *hs_odbc_grow(void *p, size_t *cap, size_t need, size_t size);

/* A growing text buffer for SQLGetData. */
typedef struct hs_odbc_text {
    char *p;
    size_t cap;
    size_t hint; /* how much to ask for first */
} hs_odbc_text_t;

/* Gives t its first, small capacity: 0 or HS_ENOMEM. */
int hs_odbc_text_init(hs_odbc_text_t *t);
/* Makes t hold at least `need` bytes: 0 or HS_ENOMEM. */
int hs_odbc_text_reserve(hs_odbc_text_t *t, size_t need);
void hs_odbc_text_free(hs_odbc_text_t *t);
/* The least power of two above n, and at least the first SQLGetData size of a text buffer. */
size_t hs_odbc_pow2_above(size_t n);

/* ---- connection ---- */

/*
 * Allocates the handles and connects with connection string cs (ODBC 3, no prompt). `file`,
 * when not NULL, is the bare database path cs was made from, which the diagnostic may repeat.
 */
int hs_odbc_connect(hs_odbc_t *c, const char *cs, const char *file);
/* The driver's SQLGetInfo(SQL_DBMS_NAME) into out. */
int hs_odbc_dbms_name(hs_odbc_t *c, char *out, size_t outlen);
/* Leaves autocommit mode: from now on the caller ends every transaction. */
int hs_odbc_manual_commit(hs_odbc_t *c);
/* Back to autocommit (each statement its own transaction), e.g. for a statement that cannot run
 * inside one; hs_odbc_manual_commit() undoes it. */
int hs_odbc_auto_commit(hs_odbc_t *c);
/* Rolls back what was not committed, disconnects and frees the handles (not the caller's
 * statements: free those first). */
void hs_odbc_close(hs_odbc_t *c);

/* Commits; when that fails, writes "commit failed" and rolls back, so that there is no
 * transaction afterwards either way. */
int hs_odbc_commit(hs_odbc_t *c);
/* Rolls back: 0, or HS_EDB without writing c->err (the caller may have an error of its own to
 * keep, or asks hs_odbc_dbfail() for the connection's diagnostic). */
int hs_odbc_rollback(hs_odbc_t *c);

/* ---- statements ---- */

/* One statement parameter: an integer or a text with its length. */
typedef struct hs_par {
    bool text;
    SQLBIGINT i;
    const char *s;
    SQLLEN len;
} hs_par_t;

#define HS_PINT(v)    ((hs_par_t){.text = false, .i = (SQLBIGINT)(v)})
#define HS_PTXT(p, n) ((hs_par_t){.text = true, .s = (p) ? (p) : "", .len = (SQLLEN)(n)})

/*
 * Allocates and prepares a statement for sql and binds its first ncols result columns as
 * SQL_C_SBIGINT to cols[i] / ind[i]. `what` names the statement in diagnostics.
 */
int hs_odbc_prepare(hs_odbc_t *c, const char *sql, const char *what, SQLBIGINT *cols, SQLLEN *ind,
                    int ncols, SQLHSTMT *out);
/* Binds the n parameters p (which must stay in place until the statement has run). */
int hs_odbc_bind(hs_odbc_t *c, SQLHSTMT h, hs_par_t *p, int n, const char *what);
/*
 * Binds p and executes prepared statement h, whose cursor the caller closes when this returns
 * 0; *changed, if not NULL, receives the number of rows an INSERT/UPDATE/DELETE touched.
 */
int hs_odbc_run(hs_odbc_t *c, SQLHSTMT h, hs_par_t *p, int n, const char *what, SQLLEN *changed);
/*
 * The same, binding p only when *bound is false (and setting it once that succeeded): for a
 * statement run again and again whose parameters stay where they are (integers, or texts
 * whose pointers do not move), only their values change. A bind through the driver manager is
 * a handful of calls per parameter, which a short statement's own execution hardly outweighs.
 */
int hs_odbc_run_bound(hs_odbc_t *c, SQLHSTMT h, hs_par_t *p, int n, bool *bound, const char *what,
                      SQLLEN *changed);
/* Executes h with what the caller bound itself; the driver's answer, for callers that word
 * their own diagnostic (hs_odbc_dbfail). */
SQLRETURN hs_odbc_execute(SQLHSTMT h);
/* Runs a one-off statement (session settings, DDL) and discards any result. */
int hs_odbc_direct(hs_odbc_t *c, const char *sql, const char *what);
/* The same for a statement that answers a row of integers: the first n columns of its first row
 * into out (0 for a NULL). Returns 0, or the failure; no row is HS_EDB. */
int hs_odbc_direct_ints(hs_odbc_t *c, const char *sql, const char *what, int64_t *out, int n);
/* 1: a row (or a block of rows, with a row array bound), 0: no more rows, <0: error. */
int hs_odbc_fetch(hs_odbc_t *c, SQLHSTMT h, const char *what);
/*
 * Reads text column `col` of the current row into t (grown as needed): *s is NULL for SQL
 * NULL. A value is read in one call when it fits the column's hint, else in two (or, for a
 * driver that cannot tell the total length, in doubling chunks).
 */
int hs_odbc_text_col(hs_odbc_t *c, SQLHSTMT h, SQLUSMALLINT col, hs_odbc_text_t *t, const char **s,
                     size_t *len);

/* ---- parameter arrays ---- */

/*
 * A column-wise parameter array of `rows` parameter sets (SQL_ATTR_PARAMSET_SIZE): nint
 * integer columns, ints[c][row], then ntext text columns of fixed width, text[c] + row *
 * width[c] with len[c][row] bytes (or SQL_NULL_DATA). status and processed receive the
 * driver's account of the rows.
 */
typedef struct hs_odbc_array {
    size_t rows;
    int nint, ntext;
    SQLBIGINT *const *ints;
    char *const *text;
    const size_t *width;
    SQLLEN *const *len;
    SQLUSMALLINT *status; /* rows entries */
    SQLULEN *processed;
} hs_odbc_array_t;

/* What hs_odbc_bind_array() last bound on one statement: every buffer address, width and the
 * row count. Zero-initialised: nothing bound yet. */
#define HS_ODBC_ARRAY_COLS 8
typedef struct hs_odbc_bound {
    size_t rows;
    const void *at[3 * HS_ODBC_ARRAY_COLS + 2];
    size_t width[HS_ODBC_ARRAY_COLS];
} hs_odbc_bound_t;

/* Binds a's columns as the parameters of h, in that order (at most HS_ODBC_ARRAY_COLS of each
 * kind). With `last` (h's own record, or NULL), nothing is bound again while a binds the same
 * buffers with the same widths and rows as last time: the driver reads the values at
 * SQLExecute, from wherever they were bound. */
int hs_odbc_bind_array(hs_odbc_t *c, SQLHSTMT h, const hs_odbc_array_t *a, hs_odbc_bound_t *last,
                       const char *what);
/*
 * Executes h over the array bound with hs_odbc_bind_array(). Returns the driver's answer and
 * sets *bad to the index of the row that failed, or to a->rows when no row is known to have
 * failed (the statement as a whole may still have). The rows went in when the answer succeeded,
 * *bad is a->rows and *a->processed is a->rows.
 */
SQLRETURN hs_odbc_execute_array(SQLHSTMT h, const hs_odbc_array_t *a, size_t *bad);

#endif
