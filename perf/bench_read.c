/*
 * bench_read: what reading a stored stream back costs in the SQLite3 ODBC driver alone, with no
 * server: the floor under a catch-up's reader threads.
 *
 *   bench_read --db FILE --stream NAME [--packed]
 *
 * Reads every event of NAME from the SQLite file FILE (a server's database, e.g. the one
 * `bench_ingest --prefill` or a catch-up run filled) with the server's own connection string and
 * forward-read statement (storage/dialect_sqlite.c), in pages of 1,024 rows fetched through a
 * block cursor of 256 rows into bound columns, as storage/store_read.c does, and does nothing
 * with the rows but check that the versions run 1, 2, 3, ... with no gap. Prints one JSON line:
 * rows, this process's CPU seconds, and microseconds per row.
 *
 * --packed asks SQLite for each row as one text column (printf of the numbers, the two text
 * lengths and the texts; metadata apart) instead of seven: an experiment that fewer columns make
 * the driver cheaper per row (it did not: perf/README.md, issue 17's targets).
 */
#include <sql.h>
#include <sqlext.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/dialect.h"

#define PAGE  1024
#define BLOCK 256
#define WIDTH 4096 /* per text column and row: the benchmark's events are far smaller */

static const char packed_sql[] =
    "SELECT printf('%d %d %d %d %d %s%s%s', e.version, e.position, e.time_us,"
    " length(CAST(e.event_id AS BLOB)), length(CAST(e.type AS BLOB)), e.event_id, e.type, e.data),"
    " e.metadata FROM hs_streams s CROSS JOIN hs_events e ON e.stream_id = s.id"
    " WHERE s.name = ? AND e.version > ? ORDER BY e.version LIMIT ?";

static SQLBIGINT num[3][BLOCK];
static SQLLEN num_ind[3][BLOCK], ind[5][BLOCK];
static char text[5][BLOCK * WIDTH];

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(SQLSMALLINT type, SQLHANDLE h, const char *what)
{
    SQLCHAR state[6] = "", msg[512] = "";
    SQLINTEGER native = 0;
    SQLSMALLINT len = 0;
    if (h)
        SQLGetDiagRec(type, h, 1, state, &native, msg, sizeof msg, &len);
    fprintf(stderr, "bench_read: %s: %s %s\n", what, state, msg);
    exit(1);
}

int main(int argc, char **argv)
{
    const char *db = NULL, *stream = NULL;
    int packed = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc)
            db = argv[++i];
        else if (!strcmp(argv[i], "--stream") && i + 1 < argc)
            stream = argv[++i];
        else if (!strcmp(argv[i], "--packed"))
            packed = 1;
        else
            db = NULL, i = argc;
    }
    if (!db || !stream) {
        fprintf(stderr, "usage: bench_read --db FILE --stream NAME [--packed]\n");
        return 2;
    }
    const hs_dialect_t *dl = &hs_dialect_sqlite;
    char conn[1024];
    const char *why = NULL;
    if (dl->conn_from_path(db, conn, sizeof conn, &why)) {
        fprintf(stderr, "bench_read: %s\n", why);
        return 2;
    }
    if (dl->process_init)
        dl->process_init(); /* what the server does before its first connection */

    SQLHENV env;
    SQLHDBC dbc;
    SQLHSTMT h;
    SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &env);
    SQLSetEnvAttr(env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER)SQL_OV_ODBC3, 0);
    SQLAllocHandle(SQL_HANDLE_DBC, env, &dbc);
    if (!SQL_SUCCEEDED(SQLDriverConnect(dbc, NULL, (SQLCHAR *)conn, SQL_NTS, NULL, 0, NULL,
                                        SQL_DRIVER_NOPROMPT)))
        die(SQL_HANDLE_DBC, dbc, "connect");
    SQLAllocHandle(SQL_HANDLE_STMT, dbc, &h);
    if (!SQL_SUCCEEDED(
            SQLPrepare(h, (SQLCHAR *)(packed ? packed_sql : dl->read_stream_fwd_sql), SQL_NTS)))
        die(SQL_HANDLE_STMT, h, "prepare");

    SQLULEN fetched = 0;
    SQLUSMALLINT status[BLOCK];
    SQLSetStmtAttr(h, SQL_ATTR_ROW_BIND_TYPE, (SQLPOINTER)SQL_BIND_BY_COLUMN, 0);
    SQLSetStmtAttr(h, SQL_ATTR_ROW_ARRAY_SIZE, (SQLPOINTER)(uintptr_t)BLOCK, 0);
    SQLSetStmtAttr(h, SQL_ATTR_ROWS_FETCHED_PTR, &fetched, 0);
    SQLSetStmtAttr(h, SQL_ATTR_ROW_STATUS_PTR, status, 0);
    int ntext = packed ? 2 : 4, col = 1;
    for (int i = 0; !packed && i < 3; i++)
        SQLBindCol(h, (SQLUSMALLINT)col++, SQL_C_SBIGINT, num[i], 0, num_ind[i]);
    for (int c = 0; c < ntext; c++)
        SQLBindCol(h, (SQLUSMALLINT)col++, SQL_C_CHAR, text[c], WIDTH, ind[c]);
    SQLBIGINT after = 0, limit = PAGE;
    SQLLEN name_len = (SQLLEN)strlen(stream), after_len = 0, limit_len = 0;
    SQLBindParameter(h, 1, SQL_PARAM_INPUT, SQL_C_CHAR, SQL_VARCHAR, (SQLULEN)name_len, 0,
                     (SQLPOINTER)stream, name_len, &name_len);
    SQLBindParameter(h, 2, SQL_PARAM_INPUT, SQL_C_SBIGINT, SQL_BIGINT, 0, 0, &after, 0, &after_len);
    SQLBindParameter(h, 3, SQL_PARAM_INPUT, SQL_C_SBIGINT, SQL_BIGINT, 0, 0, &limit, 0, &limit_len);

    double t0 = cpu_s();
    long long rows = 0;
    for (;;) {
        if (!SQL_SUCCEEDED(SQLExecute(h)))
            die(SQL_HANDLE_STMT, h, "execute");
        long long got = 0;
        SQLRETURN r;
        while (SQL_SUCCEEDED(r = SQLFetch(h))) {
            for (SQLULEN i = 0; i < fetched; i++) {
                long long v =
                    packed ? strtoll(text[0] + i * WIDTH, NULL, 10) : (long long)num[0][i];
                if (v != after + 1) {
                    fprintf(stderr, "bench_read: version %lld after %lld\n", v, (long long)after);
                    return 1;
                }
                after = v;
            }
            got += (long long)fetched;
        }
        if (r != SQL_NO_DATA)
            die(SQL_HANDLE_STMT, h, "fetch");
        SQLFreeStmt(h, SQL_CLOSE);
        rows += got;
        if (got < PAGE)
            break;
    }
    double cpu = cpu_s() - t0;
    printf("{\"bench\":\"read%s\",\"stream\":\"%s\",\"rows\":%lld,\"cpu_s\":%.3f,"
           "\"us_per_row\":%.3f}\n",
           packed ? "-packed" : "", stream, rows, cpu, rows ? cpu * 1e6 / (double)rows : 0.0);
    SQLFreeHandle(SQL_HANDLE_STMT, h);
    SQLDisconnect(dbc);
    SQLFreeHandle(SQL_HANDLE_DBC, dbc);
    SQLFreeHandle(SQL_HANDLE_ENV, env);
    return rows ? 0 : 1;
}
