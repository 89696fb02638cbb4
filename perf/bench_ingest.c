/*
 * bench_ingest: how many events per second hubstream commits, against the rate the same
 * database takes rows with no server in front.
 *
 * Two databases: a SQLite file (the default, described first) or, with --db CONN, the database
 * of an ODBC connection string (PostgreSQL through psqlODBC; described after the SQLite runs).
 *
 * Measures, in one run, each on a fresh SQLite file in --dir:
 *   raw        N rows into an hs_events table identical to the server's (WAL,
 *              synchronous=NORMAL, same connection string options), through the SQLite3 ODBC
 *              driver with column-wise array binding, SQL_ATTR_PARAMSET_SIZE = 1000 and one
 *              transaction per 1000 rows. Two statement texts: the plain INSERT, and the
 *              server's "WITH ... INSERT" form that sqliteodbc compiles once instead of per row.
 *              The faster of the two is the baseline.
 *   one-stream N events through hs_server_publish() from K threads, batches of B, all to one
 *              stream with HS_ANY_VERSION (in-process server, listening on 127.0.0.1:0).
 *   per-stream the same, each thread on its own stream, passing the stream's current version
 *              as expected_version on every call (optimistic concurrency on every publish).
 * Every run is checked afterwards by reading the file back: exactly N rows, versions 1..n per
 * stream, positions 1..N. A run that loses or duplicates a row fails the benchmark (exit 1).
 *
 * --db CONN: the same runs against the database CONN names (its dialect chosen as the server
 * chooses it, by SQLGetInfo(SQL_DBMS_NAME)); every run starts by dropping the hs_* tables, so
 * each starts from an empty schema. raw uses that dialect's hs_events DDL, session settings and
 * insert statement (for PostgreSQL the plain INSERT is the dialect's own text, so there is one
 * raw run), 1000-row parameter arrays, one transaction per array. The server runs connect with
 * CONN as it is: driver options in CONN (UseServerSidePrepare=1, ...) apply to both. Also
 * reported with --db: the database's CPU seconds (--db-pid, the postmaster: its own time, its
 * living backends' and its reaped backends'), the WAL bytes each run generated (PostgreSQL,
 * pg_current_wal_lsn) instead of this process's write volume, and the settings that decide
 * durability (fsync, synchronous_commit).
 *
 * Does not measure: HTTP parsing or the network (loadgen does, over loopback), fan-out to
 * subscribers (none are connected), client-supplied event ids (the idempotency lookups; only
 * with --client-ids), durability beyond synchronous=NORMAL for SQLite (with --db, whatever the
 * database is set to), nor the network between a server and a remote database (--db is meant
 * for loopback).
 * Event ids: the raw run binds 36-character time-ordered uuids (v7 layout) it makes, as the
 * server generates them; --raw-random-ids binds random v4 uuids instead, which land on random
 * pages of the UNIQUE (stream_id, event_id) index and cost ~10x the WAL bytes (an experiment,
 * not a fair baseline any more). --client-ids gives the server random v4 client ids.
 * Event data: 128-byte JSON objects; type "bench.ingest"; metadata NULL.
 *
 * Output: a table on stdout and one JSON line appended to perf/results/ingest.jsonl.
 *
 * --prefill (was bench_prefill): measures nothing that is recorded. Writes --events N events
 * (default 1,000,000) onto the stream --stream (default "catchup") of --db, a new SQLite file
 * (it must not exist: the server creates it) or a connection string whose database does not
 * hold the stream yet, for the catch-up benchmark: perf/run.sh then starts build/perf/hubstream
 * on that database and replays the stream with `loadgen --scenario catchup`. Through the
 * library's own write path: an in-process server (127.0.0.1:0, no client connects) and
 * hs_server_publish() from --threads K (default 2) in batches of --batch B (default 1000) with
 * HS_ANY_VERSION, so the rows, the stream row and the positions are what a running server
 * stores. Every publish must get B consecutive versions and the last version must be N, else
 * exit 1. Event data: loadgen's 128 bytes, {"m":"~S<seq>~T<0...>","pad":"x..."} with seq = the
 * event's number from 1 (what loadgen's checks read), type "bench.catchup", no metadata,
 * server-generated ids. Prints its rate as a sanity check only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sql.h>
#include <sqlext.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/clock.h"
#include "hubstream/hubstream.h"
#include "storage/dialect.h"

#ifndef HS_PERF_RESULTS_DIR
#define HS_PERF_RESULTS_DIR "perf/results"
#endif

#define DATA_BYTES 128
#define UUID_LEN   36
#define RAW_CHUNK  1000
#define EVENT_TYPE "bench.ingest"

/* The dialect of the runs: SQLite, or what --db's driver reports. */
static const hs_dialect_t *dl = &hs_dialect_sqlite;

static const char *const insert_plain =
    "INSERT INTO hs_events (position, stream_id, version, time_us, event_id, type, data, metadata)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
/* The server's own statements (storage/dialect_sqlite.c), so that the raw baseline can never
 * drift from what the writer does: its session settings, its hs_events DDL, its insert. */
static const char *events_ddl(void)
{
    for (const char *const *q = dl->migrations[0]; *q; q++)
        if (strncmp(*q, "CREATE TABLE hs_events", 22) == 0)
            return *q;
    return NULL;
}

typedef struct opts {
    const char *db; /* --db: an ODBC connection string instead of SQLite files in dir */
    long db_pid;    /* --db-pid: the database server's main process, for its CPU time */
    long events;
    int threads;
    int batch;
    const char *dir;
    const char *results;
    bool client_ids;
    bool keep;
    bool skip_raw;
    bool random_ids; /* raw runs: random version-4 uuids instead of time-ordered v7 ones */
    long cache_kb;   /* raw runs: PRAGMA cache_size in KiB, 0 = SQLite's default */
    int repeat;      /* rounds of the four runs; medians are reported */
} opts_t;

static opts_t op;

/* ---- small utilities ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A random version-4 uuid in canonical form, 36 characters, not terminated. */
static void make_uuid(uint64_t *s, char *out)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = rng_next(s), b = rng_next(s);
    unsigned char v[16];
    memcpy(v, &a, 8);
    memcpy(v + 8, &b, 8);
    v[6] = (unsigned char)((v[6] & 0x0f) | 0x40);
    v[8] = (unsigned char)((v[8] & 0x3f) | 0x80);
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[v[i] >> 4];
        out[o++] = hex[v[i] & 15];
    }
}

/*
 * A time-ordered uuid (version 7 layout: 48-bit Unix milliseconds, a 12-bit counter that keeps
 * ids increasing within a millisecond, random bits), like the ids the server generates since
 * eb64909. 36 characters, not terminated.
 */
static void make_uuid7(uint64_t *s, char *out)
{
    static uint64_t last_ms;
    static uint32_t seq;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (ms <= last_ms) {
        ms = last_ms;
        if (++seq > 0xfff) {
            ms = ++last_ms;
            seq = 0;
        }
    } else {
        last_ms = ms;
        seq = 0;
    }
    make_uuid(s, out); /* random bits and the variant, then the time and counter on top */
    char head[16];
    snprintf(head, sizeof(head), "%012llx", (unsigned long long)ms);
    memcpy(out, head, 8);
    memcpy(out + 9, head + 8, 4);
    snprintf(head, sizeof(head), "7%03x", (unsigned)seq);
    memcpy(out + 14, head, 4);
}

/* A JSON object of exactly DATA_BYTES bytes that carries seq; out has DATA_BYTES + 1 bytes. */
static void make_data(char *out, long seq)
{
    int n = snprintf(out, DATA_BYTES + 1, "{\"seq\":%ld,\"pad\":\"", seq);
    memset(out + n, 'x', (size_t)(DATA_BYTES - 2 - n));
    out[DATA_BYTES - 2] = '"';
    out[DATA_BYTES - 1] = '}';
    out[DATA_BYTES] = '\0';
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void remove_db(const char *path)
{
    char p[4096];
    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-journal", path);
    unlink(p);
}

/* ---- ODBC ---- */

typedef struct odbc {
    SQLHENV env;
    SQLHDBC dbc;
    bool connected;
} odbc_t;

static void odbc_diag(SQLSMALLINT type, SQLHANDLE h, const char *what)
{
    SQLCHAR state[6], msg[512];
    SQLINTEGER native;
    SQLSMALLINT len;
    fprintf(stderr, "bench_ingest: %s failed", what);
    for (SQLSMALLINT i = 1;
         SQLGetDiagRec(type, h, i, state, &native, msg, sizeof(msg), &len) == SQL_SUCCESS; i++)
        fprintf(stderr, "%s[%s] %s", i == 1 ? ": " : "; ", state, msg);
    fputc('\n', stderr);
}

static void odbc_close(odbc_t *o)
{
    if (o->connected)
        SQLDisconnect(o->dbc);
    if (o->dbc)
        SQLFreeHandle(SQL_HANDLE_DBC, o->dbc);
    if (o->env)
        SQLFreeHandle(SQL_HANDLE_ENV, o->env);
    memset(o, 0, sizeof(*o));
}

/* Connects to --db, or to the SQLite file with the options the server uses
 * (storage/dialect_sqlite.c). */
static int odbc_open(odbc_t *o, const char *path)
{
    memset(o, 0, sizeof(*o));
    char conn[4200];
    if (op.db)
        snprintf(conn, sizeof(conn), "%s", op.db);
    else
        snprintf(conn, sizeof(conn),
                 "Driver=SQLite3;Database=%s;Timeout=5000;SyncPragma=NORMAL;JournalMode=WAL", path);
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &o->env)) ||
        !SQL_SUCCEEDED(SQLSetEnvAttr(o->env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER)SQL_OV_ODBC3, 0)) ||
        !SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_DBC, o->env, &o->dbc))) {
        fprintf(stderr, "bench_ingest: cannot allocate ODBC handles\n");
        odbc_close(o);
        return -1;
    }
    SQLRETURN r = SQLDriverConnect(o->dbc, NULL, (SQLCHAR *)conn, SQL_NTS, NULL, 0, NULL,
                                   SQL_DRIVER_NOPROMPT);
    if (!SQL_SUCCEEDED(r)) {
        odbc_diag(SQL_HANDLE_DBC, o->dbc, "SQLDriverConnect");
        odbc_close(o);
        return -1;
    }
    o->connected = true;
    return 0;
}

static int odbc_exec(odbc_t *o, const char *sql)
{
    SQLHSTMT h;
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, o->dbc, &h)))
        return -1;
    SQLRETURN r = SQLExecDirect(h, (SQLCHAR *)sql, SQL_NTS);
    int rc = 0;
    if (!SQL_SUCCEEDED(r) && r != SQL_NO_DATA) {
        odbc_diag(SQL_HANDLE_STMT, h, sql);
        rc = -1;
    }
    SQLFreeHandle(SQL_HANDLE_STMT, h);
    return rc;
}

/* Runs a query and reads up to ncols integer columns of every row through cb. */
typedef void (*row_fn)(void *ctx, const int64_t *cols, int ncols);

static int odbc_query(odbc_t *o, const char *sql, int ncols, row_fn cb, void *ctx)
{
    SQLHSTMT h;
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, o->dbc, &h)))
        return -1;
    int rc = 0;
    if (!SQL_SUCCEEDED(SQLExecDirect(h, (SQLCHAR *)sql, SQL_NTS))) {
        odbc_diag(SQL_HANDLE_STMT, h, sql);
        SQLFreeHandle(SQL_HANDLE_STMT, h);
        return -1;
    }
    for (;;) {
        SQLRETURN r = SQLFetch(h);
        if (r == SQL_NO_DATA)
            break;
        if (!SQL_SUCCEEDED(r)) {
            odbc_diag(SQL_HANDLE_STMT, h, "SQLFetch");
            rc = -1;
            break;
        }
        int64_t cols[8] = {0};
        for (int c = 0; c < ncols && c < 8; c++) {
            SQLBIGINT v = 0;
            SQLLEN ind = 0;
            if (!SQL_SUCCEEDED(SQLGetData(h, (SQLUSMALLINT)(c + 1), SQL_C_SBIGINT, &v, 0, &ind)))
                ind = SQL_NULL_DATA;
            cols[c] = ind == SQL_NULL_DATA ? -1 : (int64_t)v;
        }
        cb(ctx, cols, ncols);
    }
    SQLFreeHandle(SQL_HANDLE_STMT, h);
    return rc;
}

/* Runs a query and copies the first row's first column, as text, into out; 0 or -1. */
static int odbc_text(odbc_t *o, const char *sql, char *out, size_t outlen)
{
    SQLHSTMT h;
    out[0] = '\0';
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, o->dbc, &h)))
        return -1;
    int rc = -1;
    SQLLEN ind = 0;
    if (!SQL_SUCCEEDED(SQLExecDirect(h, (SQLCHAR *)sql, SQL_NTS)))
        odbc_diag(SQL_HANDLE_STMT, h, sql);
    else if (SQL_SUCCEEDED(SQLFetch(h)) &&
             SQL_SUCCEEDED(SQLGetData(h, 1, SQL_C_CHAR, out, (SQLLEN)outlen, &ind)) &&
             ind != SQL_NULL_DATA)
        rc = 0;
    else
        out[0] = '\0';
    SQLFreeHandle(SQL_HANDLE_STMT, h);
    return rc;
}

/* ---- the database behind --db ---- */

typedef struct db_info {
    char dbms[64], dbms_ver[64], driver[64], driver_ver[64];
    char fsync[16], sync_commit[16]; /* PostgreSQL settings, "" elsewhere */
    char conn[1024];                 /* --db with password values replaced by "***" */
} db_info_t;

static db_info_t dbi;

static bool is_pg(void)
{
    return dl == &hs_dialect_postgres;
}

/* conn with the values of PWD= and PASSWORD= replaced by "***" (keys case-insensitive; braced
 * values {...} as one value). */
static void redact_conn(const char *conn, char *out, size_t outlen)
{
    size_t o = 0;
    const char *p = conn;
    while (*p && o + 1 < outlen) {
        const char *eq = strchr(p, '=');
        const char *semi = strchr(p, ';');
        if (!eq || (semi && semi < eq)) { /* no key=value here: copy up to the next ';' */
            const char *end = semi ? semi + 1 : p + strlen(p);
            while (p < end && o + 1 < outlen)
                out[o++] = *p++;
            continue;
        }
        size_t klen = (size_t)(eq - p);
        while (klen && p[0] == ' ')
            p++, klen--;
        bool secret = (klen == 3 && strncasecmp(p, "pwd", 3) == 0) ||
                      (klen == 8 && strncasecmp(p, "password", 8) == 0);
        const char *v = eq + 1, *vend;
        if (*v == '{') {
            vend = strchr(v, '}');
            vend = vend ? vend + 1 : v + strlen(v);
        } else {
            vend = strchr(v, ';');
            if (!vend)
                vend = v + strlen(v);
        }
        while (p < v && o + 1 < outlen)
            out[o++] = *p++;
        if (secret && vend > v) {
            for (const char *m = "***"; *m && o + 1 < outlen; m++)
                out[o++] = *m;
            p = vend;
        } else {
            while (p < vend && o + 1 < outlen)
                out[o++] = *p++;
        }
        if (*p == ';' && o + 1 < outlen)
            out[o++] = *p++;
    }
    out[o] = '\0';
}

/* Connects once to --db: the DBMS and driver, the dialect the server would pick, and for
 * PostgreSQL the durability settings. 0 or -1. */
static int db_probe(void)
{
    odbc_t o;
    if (odbc_open(&o, NULL))
        return -1;
    SQLSMALLINT len;
    SQLGetInfo(o.dbc, SQL_DBMS_NAME, dbi.dbms, sizeof(dbi.dbms), &len);
    SQLGetInfo(o.dbc, SQL_DBMS_VER, dbi.dbms_ver, sizeof(dbi.dbms_ver), &len);
    SQLGetInfo(o.dbc, SQL_DRIVER_NAME, dbi.driver, sizeof(dbi.driver), &len);
    SQLGetInfo(o.dbc, SQL_DRIVER_VER, dbi.driver_ver, sizeof(dbi.driver_ver), &len);
    dl = hs_dialect_find(dbi.dbms);
    int rc = 0;
    if (!dl) {
        fprintf(stderr, "bench_ingest: no hubstream dialect for '%s'\n", dbi.dbms);
        rc = -1;
    } else if (is_pg()) {
        if (odbc_text(&o, "SELECT current_setting('fsync')", dbi.fsync, sizeof(dbi.fsync)) ||
            odbc_text(&o, "SELECT current_setting('synchronous_commit')", dbi.sync_commit,
                      sizeof(dbi.sync_commit)))
            rc = -1;
    }
    odbc_close(&o);
    redact_conn(op.db, dbi.conn, sizeof(dbi.conn));
    return rc;
}

/* Collects table names that start with "hs_" from SQLTables. */
typedef struct tables {
    char name[32][128];
    int n;
} tables_t;

/* Drops every hs_* table of --db, so that a run starts from an empty schema. 0 or -1. */
static int db_reset(void)
{
    odbc_t o;
    if (odbc_open(&o, NULL))
        return -1;
    tables_t t;
    t.n = 0;
    SQLHSTMT h;
    int rc = -1;
    if (SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, o.dbc, &h))) {
        if (SQL_SUCCEEDED(SQLTables(h, NULL, 0, NULL, 0, (SQLCHAR *)"hs%", SQL_NTS,
                                    (SQLCHAR *)"TABLE", SQL_NTS))) {
            rc = 0;
            char name[128];
            SQLLEN ind;
            while (SQL_SUCCEEDED(SQLFetch(h)) && t.n < 32)
                if (SQL_SUCCEEDED(SQLGetData(h, 3, SQL_C_CHAR, name, sizeof(name), &ind)) &&
                    ind != SQL_NULL_DATA && strncmp(name, "hs_", 3) == 0)
                    snprintf(t.name[t.n++], sizeof(t.name[0]), "%s", name);
        } else {
            odbc_diag(SQL_HANDLE_STMT, h, "SQLTables");
        }
        SQLFreeHandle(SQL_HANDLE_STMT, h);
    }
    for (int i = 0; i < t.n && rc == 0; i++) {
        char sql[200];
        snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", t.name[i]);
        rc = odbc_exec(&o, sql); /* autocommit: each drop commits */
    }
    odbc_close(&o);
    return rc;
}

static void on_one(void *ctx, const int64_t *c, int n)
{
    *(int64_t *)ctx = c[0];
}

/* WAL bytes PostgreSQL has generated so far (any session), or -1 (not PostgreSQL, or failed). */
static int64_t db_wal_bytes(odbc_t *o)
{
    if (!is_pg())
        return -1;
    int64_t v = -1;
    if (odbc_query(o, "SELECT CAST(pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') AS BIGINT)", 1,
                   on_one, &v))
        return -1;
    return v;
}

/* CPU seconds the database server (--db-pid and its children) has used, or -1. */
static double db_cpu(void)
{
    return op.db_pid > 0 ? bench_tree_cpu(op.db_pid) : -1;
}

/* ---- verification ---- */

typedef struct check {
    int64_t count, min_pos, max_pos, commits;
    int64_t nstreams, bad_streams;
    int64_t expect_per_stream[256];
    int nexpect;
} check_t;

static void on_totals(void *ctx, const int64_t *c, int n)
{
    check_t *k = ctx;
    k->count = c[0];
    k->min_pos = c[1];
    k->max_pos = c[2];
    k->commits = c[3];
}

/* Per stream: rows, min version, max version; the stream ids are 1..K in creation order but
 * the threads race to create them, so only the multiset of row counts is known. */
static void on_stream(void *ctx, const int64_t *c, int n)
{
    check_t *k = ctx;
    k->nstreams++;
    int64_t rows = c[1], vmin = c[2], vmax = c[3];
    if (vmin != 1 || vmax != rows) {
        k->bad_streams++;
        return;
    }
    for (int i = 0; i < k->nexpect; i++)
        if (k->expect_per_stream[i] == rows) {
            k->expect_per_stream[i] = -1; /* matched */
            return;
        }
    k->bad_streams++;
}

/*
 * Reads the file back: exactly `n` rows, positions 1..n, and per stream versions 1..rows with
 * the expected row counts (per[] of nper streams). *commits gets the number of distinct commit
 * timestamps (the writer stamps every event of a transaction with one time). Returns 0 when
 * everything matches.
 */
static int verify(const char *path, long n, const long *per, int nper, int64_t *commits)
{
    odbc_t o;
    if (odbc_open(&o, path))
        return -1;
    check_t k;
    memset(&k, 0, sizeof(k));
    k.nexpect = nper;
    for (int i = 0; i < nper; i++)
        k.expect_per_stream[i] = per[i];
    int rc = odbc_query(&o,
                        "SELECT COUNT(*), MIN(position), MAX(position),"
                        " COUNT(DISTINCT time_us) FROM hs_events",
                        4, on_totals, &k);
    if (rc == 0)
        rc = odbc_query(&o,
                        "SELECT stream_id, COUNT(*), MIN(version), MAX(version)"
                        " FROM hs_events GROUP BY stream_id",
                        4, on_stream, &k);
    odbc_close(&o);
    if (rc)
        return -1;
    if (commits)
        *commits = k.commits;
    bool ok = k.count == n && k.min_pos == 1 && k.max_pos == n && k.nstreams == nper &&
              k.bad_streams == 0;
    if (!ok)
        fprintf(stderr,
                "bench_ingest: VERIFY FAILED for %s: %lld rows (want %ld), positions %lld..%lld,"
                " %lld streams (want %d), %lld streams with wrong versions or counts\n",
                path, (long long)k.count, n, (long long)k.min_pos, (long long)k.max_pos,
                (long long)k.nstreams, nper, (long long)k.bad_streams);
    return ok ? 0 : -1;
}

/* ---- raw: the driver alone ---- */

typedef struct raw_result {
    double secs, cpu, rows_s;
    double write_mb;  /* bytes written during the run, MiB: this process's (wchar), or with a
                         PostgreSQL --db the WAL the database generated */
    double other_cpu; /* CPU seconds other processes took meanwhile */
    double db_cpu;    /* --db-pid: CPU seconds of the database server, else -1 */
    bool ok;
} raw_result_t;

/* Starts a run: a fresh SQLite file, or an empty schema in --db. 0 or -1. */
static int fresh(const char *path)
{
    if (op.db)
        return db_reset();
    remove_db(path);
    return 0;
}

static int raw_run(const char *path, long n, const char *sql, raw_result_t *res)
{
    memset(res, 0, sizeof(*res));
    if (fresh(path))
        return -1;
    odbc_t o;
    if (odbc_open(&o, path))
        return -1;
    int rc = -1;
    SQLHSTMT h = SQL_NULL_HSTMT;
    /* the same session setup as the server: pragmas in autocommit mode, then manual commit */
    for (const char *const *q = dl->session_sql; q && *q; q++)
        if (odbc_exec(&o, *q))
            goto out;
    const char *ddl = events_ddl();
    if (!ddl || odbc_exec(&o, ddl))
        goto out;
    if (op.cache_kb) {
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA cache_size=-%ld", op.cache_kb);
        if (odbc_exec(&o, pragma))
            goto out;
    }
    int64_t wal0 = db_wal_bytes(&o); /* in autocommit mode: no transaction left open */
    if (!SQL_SUCCEEDED(
            SQLSetConnectAttr(o.dbc, SQL_ATTR_AUTOCOMMIT, (SQLPOINTER)SQL_AUTOCOMMIT_OFF, 0))) {
        odbc_diag(SQL_HANDLE_DBC, o.dbc, "autocommit off");
        goto out;
    }

    /* column-wise parameter arrays, allocated once */
    static SQLBIGINT pos[RAW_CHUNK], sid[RAW_CHUNK], ver[RAW_CHUNK], tus[RAW_CHUNK];
    static char eid[RAW_CHUNK][UUID_LEN], typ[RAW_CHUNK][sizeof(EVENT_TYPE) - 1];
    static char dat[RAW_CHUNK][DATA_BYTES + 1], met[RAW_CHUNK][1];
    static SQLLEN eid_len[RAW_CHUNK], typ_len[RAW_CHUNK], dat_len[RAW_CHUNK], met_len[RAW_CHUNK];
    static SQLUSMALLINT status[RAW_CHUNK];
    SQLULEN processed = 0;
    for (int i = 0; i < RAW_CHUNK; i++) {
        sid[i] = 1;
        memcpy(typ[i], EVENT_TYPE, sizeof(EVENT_TYPE) - 1);
        typ_len[i] = sizeof(EVENT_TYPE) - 1;
        eid_len[i] = UUID_LEN;
        dat_len[i] = DATA_BYTES;
        met_len[i] = SQL_NULL_DATA; /* the server stores NULL when no metadata is given */
    }

    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, o.dbc, &h)) ||
        !SQL_SUCCEEDED(SQLPrepare(h, (SQLCHAR *)sql, SQL_NTS))) {
        odbc_diag(SQL_HANDLE_STMT, h, "SQLPrepare");
        goto out;
    }
    SQLRETURN r = SQL_SUCCESS;
    SQLBIGINT *nums[4] = {pos, sid, ver, tus};
    for (int c = 0; c < 4 && SQL_SUCCEEDED(r); c++)
        r = SQLBindParameter(h, (SQLUSMALLINT)(c + 1), SQL_PARAM_INPUT, SQL_C_SBIGINT, SQL_BIGINT,
                             0, 0, nums[c], 0, NULL);
    if (SQL_SUCCEEDED(r))
        r = SQLBindParameter(h, 5, SQL_PARAM_INPUT, SQL_C_CHAR, SQL_VARCHAR, UUID_LEN, 0, eid,
                             UUID_LEN, eid_len);
    if (SQL_SUCCEEDED(r))
        r = SQLBindParameter(h, 6, SQL_PARAM_INPUT, SQL_C_CHAR, SQL_VARCHAR, sizeof(EVENT_TYPE) - 1,
                             0, typ, sizeof(EVENT_TYPE) - 1, typ_len);
    if (SQL_SUCCEEDED(r))
        r = SQLBindParameter(h, 7, SQL_PARAM_INPUT, SQL_C_CHAR, SQL_VARCHAR, DATA_BYTES, 0, dat,
                             DATA_BYTES + 1, dat_len);
    if (SQL_SUCCEEDED(r))
        r = SQLBindParameter(h, 8, SQL_PARAM_INPUT, SQL_C_CHAR, SQL_VARCHAR, 1, 0, met, 1, met_len);
    if (SQL_SUCCEEDED(r))
        r = SQLSetStmtAttr(h, SQL_ATTR_PARAM_BIND_TYPE, (SQLPOINTER)SQL_PARAM_BIND_BY_COLUMN, 0);
    if (SQL_SUCCEEDED(r))
        r = SQLSetStmtAttr(h, SQL_ATTR_PARAM_STATUS_PTR, status, 0);
    if (SQL_SUCCEEDED(r))
        r = SQLSetStmtAttr(h, SQL_ATTR_PARAMS_PROCESSED_PTR, &processed, 0);
    if (!SQL_SUCCEEDED(r)) {
        odbc_diag(SQL_HANDLE_STMT, h, "binding the parameter arrays");
        goto out;
    }

    uint64_t seed = rng_state;
    unsigned long long w0 = bench_self_wchar();
    double b0 = bench_sys_busy(), d0 = db_cpu();
    double t0 = bench_now(), c0 = bench_self_cpu();
    for (long done = 0; done < n;) {
        long m = n - done < RAW_CHUNK ? n - done : RAW_CHUNK;
        int64_t ts = wall_us();
        for (long i = 0; i < m; i++) {
            long seq = done + i + 1;
            pos[i] = seq;
            ver[i] = seq;
            tus[i] = ts;
            if (op.random_ids)
                make_uuid(&seed, eid[i]);
            else
                make_uuid7(&seed, eid[i]);
            make_data(dat[i], seq);
        }
        r = SQLSetStmtAttr(h, SQL_ATTR_PARAMSET_SIZE, (SQLPOINTER)(uintptr_t)m, 0);
        processed = 0;
        if (SQL_SUCCEEDED(r))
            r = SQLExecute(h);
        if (!SQL_SUCCEEDED(r) || processed != (SQLULEN)m) {
            odbc_diag(SQL_HANDLE_STMT, h, "SQLExecute (array insert)");
            fprintf(stderr, "bench_ingest: %lu of %ld rows processed\n", (unsigned long)processed,
                    m);
            SQLEndTran(SQL_HANDLE_DBC, o.dbc, SQL_ROLLBACK);
            goto out;
        }
        SQLFreeStmt(h, SQL_CLOSE);
        if (!SQL_SUCCEEDED(SQLEndTran(SQL_HANDLE_DBC, o.dbc, SQL_COMMIT))) {
            odbc_diag(SQL_HANDLE_DBC, o.dbc, "commit");
            goto out;
        }
        done += m;
    }
    res->secs = bench_now() - t0;
    res->cpu = bench_self_cpu() - c0;
    double d1 = db_cpu();
    res->db_cpu = d0 >= 0 && d1 >= 0 ? d1 - d0 : -1;
    res->write_mb = (double)(bench_self_wchar() - w0) / (1024.0 * 1024.0);
    res->other_cpu = bench_sys_busy() - b0 - res->cpu - (res->db_cpu > 0 ? res->db_cpu : 0);
    if (res->other_cpu < 0)
        res->other_cpu = 0; /* clock tick granularity */
    res->rows_s = (double)n / res->secs;
    if (wal0 >= 0) {
        int64_t wal1 = db_wal_bytes(&o);
        res->write_mb = wal1 >= wal0 ? (double)(wal1 - wal0) / (1024.0 * 1024.0) : -1;
    }
    rc = 0;
out:
    if (h != SQL_NULL_HSTMT)
        SQLFreeHandle(SQL_HANDLE_STMT, h);
    odbc_close(&o);
    if (rc == 0) {
        long per[1] = {n};
        res->ok = verify(path, n, per, 1, NULL) == 0;
        if (!res->ok)
            rc = -1;
    }
    return rc;
}

/* ---- server: hs_server_publish from K threads ---- */

typedef struct pub_thread {
    pthread_t tid;
    hs_server_t *srv;
    pthread_barrier_t *start;
    int index;
    long count; /* events this thread publishes */
    int batch;
    bool own_stream; /* per-thread stream with expected-version checks */
    bool client_ids;
    char stream[64];
    /* results */
    int rc;
    long published;
    double *lat; /* seconds per publish call */
    long nlat;
} pub_thread_t;

static void *pub_main(void *arg)
{
    pub_thread_t *t = arg;
    hs_event_t *ev = calloc((size_t)t->batch, sizeof(*ev));
    char *data = malloc((size_t)t->batch * (DATA_BYTES + 1));
    char *ids = malloc((size_t)t->batch * (UUID_LEN + 1));
    t->lat = malloc(sizeof(double) * (size_t)(t->count / t->batch + 2));
    if (!ev || !data || !ids || !t->lat) {
        t->rc = HS_ENOMEM;
        pthread_barrier_wait(t->start);
        goto out;
    }
    uint64_t seed = rng_state + (uint64_t)t->index * 7919;
    int64_t version = 0;
    pthread_barrier_wait(t->start);
    for (long done = 0; done < t->count;) {
        long m = t->count - done < t->batch ? t->count - done : t->batch;
        for (long i = 0; i < m; i++) {
            char *d = data + i * (DATA_BYTES + 1);
            make_data(d, done + i + 1);
            ev[i].type = EVENT_TYPE;
            ev[i].data = d;
            ev[i].metadata = NULL;
            ev[i].id = NULL;
            if (t->client_ids) {
                char *id = ids + i * (UUID_LEN + 1);
                make_uuid(&seed, id);
                id[UUID_LEN] = '\0';
                ev[i].id = id;
            }
        }
        hs_publish_result_t res;
        int64_t expect = t->own_stream ? version : HS_ANY_VERSION;
        double t0 = bench_now();
        int rc = hs_server_publish(t->srv, t->stream, ev, (size_t)m, expect, &res);
        t->lat[t->nlat++] = bench_now() - t0;
        if (rc) {
            fprintf(stderr, "bench_ingest: thread %d: publish to %s failed: %s (actual %lld)\n",
                    t->index, t->stream, hs_strerror(rc), (long long)res.actual_version);
            t->rc = rc;
            break;
        }
        if (res.last_version - res.first_version + 1 != m ||
            (t->own_stream && res.first_version != version + 1)) {
            fprintf(stderr,
                    "bench_ingest: thread %d: publish of %ld got versions %lld..%lld"
                    " (stream was at %lld)\n",
                    t->index, m, (long long)res.first_version, (long long)res.last_version,
                    (long long)version);
            t->rc = HS_EINVAL;
            break;
        }
        version = res.last_version;
        done += m;
        t->published = done;
    }
out:
    free(ev);
    free(data);
    free(ids);
    return NULL;
}

/* ---- --prefill ---- */

static struct {
    const char *stream;
    atomic_long next;  /* events handed out to the threads so far */
    atomic_long acked; /* events acknowledged */
    atomic_llong max_version;
    atomic_int failed;
    hs_server_t *srv;
} pf = {.stream = "catchup"};

/* loadgen's event data for event seq: exactly DATA_BYTES bytes, out has DATA_BYTES + 1. */
static void prefill_data(char *out, long seq)
{
    int n = snprintf(out, DATA_BYTES + 1, "{\"m\":\"~S%010ld~T%019d\",\"pad\":\"", seq, 0);
    memset(out + n, 'x', (size_t)(DATA_BYTES - 2 - n));
    out[DATA_BYTES - 2] = '"';
    out[DATA_BYTES - 1] = '}';
    out[DATA_BYTES] = '\0';
}

static void *prefill_thread(void *arg)
{
    (void)arg;
    hs_event_t *ev = calloc((size_t)op.batch, sizeof(*ev));
    char *data = malloc((size_t)op.batch * (DATA_BYTES + 1));
    if (!ev || !data) {
        atomic_store(&pf.failed, 1);
        goto out;
    }
    while (!atomic_load(&pf.failed)) {
        long first = atomic_fetch_add(&pf.next, op.batch);
        if (first >= op.events)
            break;
        long m = op.events - first < op.batch ? op.events - first : op.batch;
        for (long i = 0; i < m; i++) {
            char *d = data + i * (DATA_BYTES + 1);
            prefill_data(d, first + i + 1);
            ev[i] = (hs_event_t){.type = "bench.catchup", .data = d};
        }
        hs_publish_result_t res;
        int rc = hs_server_publish(pf.srv, pf.stream, ev, (size_t)m, HS_ANY_VERSION, &res);
        if (rc) {
            fprintf(stderr, "bench_ingest: publish failed: %s\n", hs_strerror(rc));
            atomic_store(&pf.failed, 1);
            break;
        }
        if (res.last_version - res.first_version + 1 != m) {
            fprintf(stderr, "bench_ingest: a publish of %ld events got versions %lld..%lld\n", m,
                    (long long)res.first_version, (long long)res.last_version);
            atomic_store(&pf.failed, 1);
            break;
        }
        atomic_fetch_add(&pf.acked, m);
        long long v = atomic_load(&pf.max_version);
        while (res.last_version > v &&
               !atomic_compare_exchange_weak(&pf.max_version, &v, (long long)res.last_version))
            ;
    }
out:
    free(ev);
    free(data);
    return NULL;
}

static void log_quiet(void *ctx, hs_log_level_t level, const char *message, const char *fields);

/* --prefill: 0, 1 on a failure. */
static int prefill(const char *db)
{
    struct stat st;
    if (!strchr(db, '=') && stat(db, &st) == 0) {
        fprintf(stderr, "bench_ingest: --prefill: %s exists; give a new file\n", db);
        return 2;
    }
    hs_config_t cfg;
    hs_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.db = db;
    cfg.log_level = HS_LOG_WARN;
    char err[512];
    pf.srv = hs_server_create(&cfg, err, sizeof(err));
    if (!pf.srv) {
        fprintf(stderr, "bench_ingest: hs_server_create: %s\n", err);
        return 1;
    }
    hs_server_set_log_hook(pf.srv, log_quiet, NULL);
    int rc = hs_server_start(pf.srv);
    if (rc) {
        fprintf(stderr, "bench_ingest: hs_server_start: %s\n", hs_strerror(rc));
        hs_server_destroy(pf.srv);
        return 1;
    }
    pthread_t th[256];
    int started = 0;
    double t0 = bench_now();
    for (int i = 0; i < op.threads; i++) {
        if (pthread_create(&th[i], NULL, prefill_thread, NULL)) {
            fprintf(stderr, "bench_ingest: pthread_create failed\n");
            atomic_store(&pf.failed, 1);
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double secs = bench_now() - t0;
    hs_server_stop(pf.srv);
    hs_server_destroy(pf.srv);
    long n = atomic_load(&pf.acked);
    long long last = atomic_load(&pf.max_version);
    if (atomic_load(&pf.failed) || n != op.events || last != op.events) {
        fprintf(stderr,
                "bench_ingest: --prefill FAILED: %ld of %ld events acknowledged, last version "
                "%lld\n",
                n, op.events, last);
        return 1;
    }
    printf("bench_ingest --prefill: %ld events on stream %s (versions 1..%lld) in %.2f s (%.0f "
           "events/s), %d threads, batches of %d\n",
           n, pf.stream, last, secs, (double)n / secs, op.threads, op.batch);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct srv_result {
    double secs, cpu, events_s;
    double write_mb, other_cpu, db_cpu; /* as in raw_result_t */
    double lat_p50, lat_p99, lat_max;   /* milliseconds per hs_server_publish call */
    int64_t commits;
    bool ok;
} srv_result_t;

static void log_quiet(void *ctx, hs_log_level_t level, const char *message, const char *fields)
{
    if (level >= HS_LOG_WARN)
        fprintf(stderr, "hubstream: %s %s\n", message, fields);
}

static int server_run(const char *path, bool per_thread, srv_result_t *res)
{
    memset(res, 0, sizeof(*res));
    if (fresh(path))
        return -1;
    hs_config_t cfg;
    hs_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.db = op.db ? op.db : path;
    cfg.log_level = HS_LOG_WARN;
    char err[512];
    hs_server_t *srv = hs_server_create(&cfg, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "bench_ingest: hs_server_create: %s\n", err);
        return -1;
    }
    hs_server_set_log_hook(srv, log_quiet, NULL);
    int rc = hs_server_start(srv);
    if (rc) {
        fprintf(stderr, "bench_ingest: hs_server_start: %s\n", hs_strerror(rc));
        hs_server_destroy(srv);
        return -1;
    }

    int k = op.threads;
    pub_thread_t *th = calloc((size_t)k, sizeof(*th));
    long *per = calloc((size_t)k, sizeof(*per));
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)k + 1);
    int started = 0;
    for (int i = 0; i < k; i++) {
        pub_thread_t *t = &th[i];
        t->srv = srv;
        t->start = &start;
        t->index = i;
        t->count = op.events / k + (i < op.events % k ? 1 : 0);
        t->batch = op.batch;
        t->own_stream = per_thread;
        t->client_ids = op.client_ids;
        if (per_thread)
            snprintf(t->stream, sizeof(t->stream), "bench-ingest-%d", i);
        else
            snprintf(t->stream, sizeof(t->stream), "bench-ingest");
        per[i] = t->count;
        if (pthread_create(&t->tid, NULL, pub_main, t)) {
            fprintf(stderr, "bench_ingest: pthread_create failed\n");
            break;
        }
        started++;
    }
    if (started < k) {
        /* the started threads wait on a barrier that will never fill: give up */
        fprintf(stderr, "bench_ingest: only %d of %d threads started\n", started, k);
        exit(1);
    }
    /* PostgreSQL: WAL position before and after, read on a connection of our own */
    odbc_t wo;
    bool wal = is_pg() && odbc_open(&wo, NULL) == 0;
    int64_t wal0 = wal ? db_wal_bytes(&wo) : -1;
    pthread_barrier_wait(&start);
    unsigned long long w0 = bench_self_wchar();
    double b0 = bench_sys_busy(), d0 = db_cpu();
    double t0 = bench_now(), c0 = bench_self_cpu();
    for (int i = 0; i < k; i++)
        pthread_join(th[i].tid, NULL);
    res->secs = bench_now() - t0;
    res->cpu = bench_self_cpu() - c0;
    double d1 = db_cpu();
    res->db_cpu = d0 >= 0 && d1 >= 0 ? d1 - d0 : -1;
    res->write_mb = (double)(bench_self_wchar() - w0) / (1024.0 * 1024.0);
    res->other_cpu = bench_sys_busy() - b0 - res->cpu - (res->db_cpu > 0 ? res->db_cpu : 0);
    if (res->other_cpu < 0)
        res->other_cpu = 0; /* clock tick granularity */
    if (wal) {
        int64_t wal1 = wal0 >= 0 ? db_wal_bytes(&wo) : -1;
        res->write_mb = wal1 >= wal0 && wal0 >= 0 ? (double)(wal1 - wal0) / (1024.0 * 1024.0) : -1;
        odbc_close(&wo);
    }
    pthread_barrier_destroy(&start);

    long published = 0, nlat = 0;
    int failed = 0;
    for (int i = 0; i < k; i++) {
        published += th[i].published;
        nlat += th[i].nlat;
        if (th[i].rc)
            failed++;
    }
    double *lat = malloc(sizeof(double) * (size_t)(nlat ? nlat : 1));
    long o = 0;
    for (int i = 0; i < k; i++) {
        if (lat)
            memcpy(lat + o, th[i].lat, sizeof(double) * (size_t)th[i].nlat);
        o += th[i].nlat;
        free(th[i].lat);
    }
    if (lat && nlat) {
        qsort(lat, (size_t)nlat, sizeof(double), cmp_double);
        res->lat_p50 = lat[nlat / 2] * 1e3;
        res->lat_p99 = lat[(nlat * 99) / 100] * 1e3;
        res->lat_max = lat[nlat - 1] * 1e3;
    }
    free(lat);
    res->events_s = (double)published / res->secs;

    hs_server_stop(srv);
    hs_server_destroy(srv);
    free(th);

    if (failed || published != op.events) {
        fprintf(stderr, "bench_ingest: %d threads failed; %ld of %ld events acknowledged\n", failed,
                published, op.events);
        free(per);
        return -1;
    }
    if (per_thread) {
        res->ok = verify(path, op.events, per, k, &res->commits) == 0;
    } else {
        long one[1] = {op.events};
        res->ok = verify(path, op.events, one, 1, &res->commits) == 0;
    }
    free(per);
    return res->ok ? 0 : -1;
}

/* ---- main ---- */

#define REPEAT_MAX 15

/* Index of the median run by rate (the lower middle for an even count). */
static int median_index(const double *rate, int n)
{
    int idx[REPEAT_MAX];
    for (int i = 0; i < n; i++)
        idx[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort: n is tiny */
        for (int j = i; j > 0 && rate[idx[j - 1]] > rate[idx[j]]; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    return idx[(n - 1) / 2];
}

static int median_raw(const raw_result_t *r, int n)
{
    double rate[REPEAT_MAX];
    for (int i = 0; i < n; i++)
        rate[i] = r[i].rows_s;
    return median_index(rate, n);
}

static int median_srv(const srv_result_t *r, int n)
{
    double rate[REPEAT_MAX];
    for (int i = 0; i < n; i++)
        rate[i] = r[i].events_s;
    return median_index(rate, n);
}

static void print_row(const char *name, double rate, double secs, double cpu, double other,
                      double dbcpu, double p50, double p99, long long commits, double write_mb,
                      double raw_best, bool ok)
{
    char l50[16] = "-", l99[16] = "-", vs[16] = "-", db[16] = "-";
    if (raw_best > 0)
        snprintf(vs, sizeof(vs), "%.0f%%", 100 * rate / raw_best);
    if (p50 >= 0) {
        snprintf(l50, sizeof(l50), "%.2f", p50);
        snprintf(l99, sizeof(l99), "%.2f", p99);
    }
    if (dbcpu >= 0)
        snprintf(db, sizeof(db), "%.2f", dbcpu);
    printf("%-34s %9.0f %8.3f %7.2f %7s %7.2f %7s %7s %8lld %8.0f %7s%s\n", name, rate, secs, cpu,
           db, other, l50, l99, commits, write_mb, vs, ok ? "" : "  VERIFY FAILED");
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: bench_ingest [--events N] [--threads K] [--batch B] [--dir D]\n"
               "                    [--db CONN [--db-pid PID]]\n"
               "                    [--results FILE] [--no-record] [--client-ids] [--keep]"
               " [--skip-raw]\n"
               "                    [--repeat R] [--raw-random-ids] [--raw-cache-kb N]\n"
               "       bench_ingest --prefill --db PATH|CONN [--events N] [--stream NAME]\n"
               "                    [--threads K] [--batch B]\n"
               "  --events N     events (rows) per run, default 200000\n"
               "  --threads K    publishing threads, default 4\n"
               "  --batch B      events per hs_server_publish call, default 100\n"
               "  --repeat R     run everything R times, interleaved; report medians (default 1)\n"
               "  --dir D        where the SQLite files go, default a new temp directory\n"
               "  --db CONN      an ODBC connection string (PostgreSQL: \"Driver={PostgreSQL\n"
               "                 Unicode};Server=127.0.0.1;Port=P;Database=D;Uid=U;Pwd=;\")\n"
               "                 instead of SQLite files. EVERY hs_* TABLE OF THAT DATABASE IS\n"
               "                 DROPPED before each run: use a throwaway database\n"
               "  --db-pid PID   the database server's main process (the postmaster), whose CPU\n"
               "                 and its children's is reported\n"
               "  --results FILE JSON line destination, default perf/results/ingest.jsonl\n"
               "  --no-record    print only, append nothing\n"
               "  --client-ids   give every event a client id (adds the idempotency lookups)\n"
               "  --keep         keep the database files\n"
               "  --skip-raw     measure only the server (no ratio)\n"
               "  --raw-random-ids    experiment: raw runs bind random v4 uuids instead of v7\n"
               "  --raw-cache-kb N    experiment: raw runs set PRAGMA cache_size to N KiB\n"
               "                      (either makes the raw baseline differ from the server)\n"
               "  --prefill      write the stored stream loadgen's catch-up replays, measure\n"
               "                 nothing: --db a new SQLite file or a connection string,\n"
               "                 --stream (default catchup), --events (default 1000000),\n"
               "                 --threads (default 2), --batch (default 1000)\n");
}

/* One raw run's JSON object (the members after its key). */
static void raw_json(FILE *f, const raw_result_t *r)
{
    fprintf(f,
            "{\"rows_s\":%.0f,\"seconds\":%.3f,\"cpu_s\":%.2f,\"write_mb\":%.0f,"
            "\"other_cpu_s\":%.2f,",
            r->rows_s, r->secs, r->cpu, r->write_mb, r->other_cpu);
    if (r->db_cpu >= 0)
        fprintf(f, "\"db_cpu_s\":%.2f,", r->db_cpu);
    fprintf(f, "\"ok\":%s}", r->ok ? "true" : "false");
}

int main(int argc, char **argv)
{
    op = (opts_t){.events = 200000,
                  .threads = 4,
                  .batch = 100,
                  .repeat = 1,
                  .results = HS_PERF_RESULTS_DIR "/ingest.jsonl"};
    bool record = true;
    static const struct option longopts[] = {
        {"events", required_argument, NULL, 'n'},   {"threads", required_argument, NULL, 'k'},
        {"batch", required_argument, NULL, 'b'},    {"dir", required_argument, NULL, 'd'},
        {"results", required_argument, NULL, 'r'},  {"no-record", no_argument, NULL, 'N'},
        {"client-ids", no_argument, NULL, 'c'},     {"keep", no_argument, NULL, 'K'},
        {"skip-raw", no_argument, NULL, 'S'},       {"help", no_argument, NULL, 'h'},
        {"raw-random-ids", no_argument, NULL, 'O'}, {"raw-cache-kb", required_argument, NULL, 'C'},
        {"repeat", required_argument, NULL, 'R'},   {"db", required_argument, NULL, 'D'},
        {"db-pid", required_argument, NULL, 'P'},   {"prefill", no_argument, NULL, 'F'},
        {"stream", required_argument, NULL, 's'},   {NULL, 0, NULL, 0},
    };
    bool prefill_mode = false, events_set = false, threads_set = false, batch_set = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            op.events = bench_parse_long(optarg, "--events", 1);
            events_set = true;
            break;
        case 'F':
            prefill_mode = true;
            break;
        case 's':
            pf.stream = optarg;
            break;
        case 'k':
            op.threads = (int)bench_parse_long(optarg, "--threads", 1);
            threads_set = true;
            if (op.threads > 256) {
                fprintf(stderr, "bench_ingest: --threads is at most 256\n");
                return 2;
            }
            break;
        case 'b':
            op.batch = (int)bench_parse_long(optarg, "--batch", 1);
            batch_set = true;
            break;
        case 'd':
            op.dir = optarg;
            break;
        case 'D':
            op.db = optarg;
            break;
        case 'P':
            op.db_pid = bench_parse_long(optarg, "--db-pid", 1);
            break;
        case 'r':
            op.results = optarg;
            break;
        case 'N':
            record = false;
            break;
        case 'c':
            op.client_ids = true;
            break;
        case 'K':
            op.keep = true;
            break;
        case 'S':
            op.skip_raw = true;
            break;
        case 'O':
            op.random_ids = true;
            break;
        case 'C':
            op.cache_kb = bench_parse_long(optarg, "--raw-cache-kb", 0);
            break;
        case 'R':
            op.repeat = (int)bench_parse_long(optarg, "--repeat", 1);
            if (op.repeat > REPEAT_MAX) {
                fprintf(stderr, "bench_ingest: --repeat is at most %d\n", REPEAT_MAX);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (prefill_mode) {
        if (!op.db) {
            fprintf(stderr, "bench_ingest: --prefill needs --db (a new SQLite file or a "
                            "connection string)\n");
            return 2;
        }
        op.events = events_set ? op.events : 1000000;
        op.threads = threads_set ? op.threads : 2;
        op.batch = batch_set ? op.batch : 1000;
        return prefill(op.db);
    }
    if (op.db && !strchr(op.db, '=')) {
        fprintf(stderr, "bench_ingest: --db wants an ODBC connection string (KEY=value;...); for a"
                        " SQLite file use --dir\n");
        return 2;
    }
    if (op.events < op.threads) {
        fprintf(stderr, "bench_ingest: --events must be at least --threads\n");
        return 2;
    }
    if (op.db && (op.dir || op.cache_kb)) {
        fprintf(stderr, "bench_ingest: --dir and --raw-cache-kb are for SQLite files, not --db\n");
        return 2;
    }
    if (op.db_pid && !op.db) {
        fprintf(stderr, "bench_ingest: --db-pid goes with --db\n");
        return 2;
    }
    if (op.db_pid && bench_tree_cpu(op.db_pid) < 0) {
        fprintf(stderr, "bench_ingest: --db-pid %ld: no such process\n", op.db_pid);
        return 2;
    }
    if (op.db && db_probe())
        return 1;

    struct stat st;
    if (op.dir && (stat(op.dir, &st) || !S_ISDIR(st.st_mode))) {
        fprintf(stderr, "bench_ingest: --dir %s is not a directory\n", op.dir);
        return 2;
    }
    char tmpdir[] = "/tmp/bench_ingest.XXXXXX";
    bool own_dir = false;
    if (!op.dir && !op.db) {
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            return 1;
        }
        op.dir = tmpdir;
        own_dir = true;
    }
    char p_plain[4096], p_cte[4096], p_one[4096], p_per[4096];
    const char *dir = op.dir ? op.dir : "";
    snprintf(p_plain, sizeof(p_plain), "%s/raw-plain.db", dir);
    snprintf(p_cte, sizeof(p_cte), "%s/raw-cte.db", dir);
    snprintf(p_one, sizeof(p_one), "%s/server-one.db", dir);
    snprintf(p_per, sizeof(p_per), "%s/server-per.db", dir);
    /* the plain INSERT is a run of its own only where the dialect's statement differs */
    bool two_raw = strcmp(dl->insert_event_sql, insert_plain) != 0;

    bench_env_t env;
    bench_env_read(&env);
    printf("bench_ingest: %ld events, %d threads, batches of %d, %d-byte data, %s %s%s\n",
           op.events, op.threads, op.batch, DATA_BYTES, op.db ? "database" : "dir",
           op.db ? dbi.conn : op.dir, op.client_ids ? ", client ids" : "");
    if (op.db)
        printf("database: %s %s (dialect %s), driver %s %s%s%s%s%s\n", dbi.dbms, dbi.dbms_ver,
               dl->name, dbi.driver, dbi.driver_ver, is_pg() ? ", fsync " : "", dbi.fsync,
               is_pg() ? ", synchronous_commit " : "", dbi.sync_commit);
    printf("machine: %d x %s, %ld MiB, kernel %s; commit %s; %s; load %.2f\n", env.nproc, env.cpu,
           env.mem_mb, env.kernel, env.commit, env.date, env.load1);
    if (env.load1 > 0.5)
        printf("WARNING: the machine is busy (load %.2f): figures will be low and noisy\n",
               env.load1);
    fflush(stdout);

    /* --repeat R: the runs R times, interleaved so that a neighbour's burst hits every
     * configuration alike; each configuration reports its median run (by rate) */
    int fails = 0;
    raw_result_t rps[REPEAT_MAX], rcs[REPEAT_MAX];
    srv_result_t s1s[REPEAT_MAX], sks[REPEAT_MAX];
    memset(rps, 0, sizeof(rps));
    memset(rcs, 0, sizeof(rcs));
    memset(s1s, 0, sizeof(s1s));
    memset(sks, 0, sizeof(sks));
    for (int r = 0; r < op.repeat; r++) {
        if (op.repeat > 1)
            printf("round %d of %d\n", r + 1, op.repeat);
        fflush(stdout);
        if (!op.skip_raw) {
            if (two_raw && raw_run(p_plain, op.events, insert_plain, &rps[r]))
                fails++;
            if (raw_run(p_cte, op.events, dl->insert_event_sql, &rcs[r]))
                fails++;
        }
        if (server_run(p_one, false, &s1s[r]))
            fails++;
        if (server_run(p_per, true, &sks[r]))
            fails++;
    }
    raw_result_t rp = rps[median_raw(rps, op.repeat)], rc = rcs[median_raw(rcs, op.repeat)];
    srv_result_t s1 = s1s[median_srv(s1s, op.repeat)], sk = sks[median_srv(sks, op.repeat)];
    for (int r = 0; r < op.repeat; r++) {
        rp.ok = rp.ok && (op.skip_raw || !two_raw || rps[r].ok);
        rc.ok = rc.ok && (op.skip_raw || rcs[r].ok);
        s1.ok = s1.ok && s1s[r].ok;
        sk.ok = sk.ok && sks[r].ok;
    }

    double raw_best = rp.rows_s > rc.rows_s ? rp.rows_s : rc.rows_s;
    printf("\n%-34s %9s %8s %7s %7s %7s %7s %7s %8s %8s %7s\n", "run", "rows/s", "seconds", "cpu_s",
           "db_s", "other_s", "p50_ms", "p99_ms", "commits", "write_MB", "vs_raw");
    long raw_commits = (op.events + RAW_CHUNK - 1) / RAW_CHUNK;
    if (!op.skip_raw) {
        if (two_raw)
            print_row("raw ODBC, plain INSERT", rp.rows_s, rp.secs, rp.cpu, rp.other_cpu, rp.db_cpu,
                      -1, -1, raw_commits, rp.write_mb, raw_best, rp.ok);
        print_row(two_raw ? "raw ODBC, WITH..INSERT (server's)" : "raw ODBC, the dialect's INSERT",
                  rc.rows_s, rc.secs, rc.cpu, rc.other_cpu, rc.db_cpu, -1, -1, raw_commits,
                  rc.write_mb, raw_best, rc.ok);
    }
    print_row("server, 1 stream, any version", s1.events_s, s1.secs, s1.cpu, s1.other_cpu,
              s1.db_cpu, s1.lat_p50, s1.lat_p99, s1.commits, s1.write_mb, raw_best, s1.ok);
    char label[80];
    snprintf(label, sizeof(label), "server, %d streams, expected ver", op.threads);
    print_row(label, sk.events_s, sk.secs, sk.cpu, sk.other_cpu, sk.db_cpu, sk.lat_p50, sk.lat_p99,
              sk.commits, sk.write_mb, raw_best, sk.ok);
    if (op.repeat > 1)
        printf("(each row: the median of %d interleaved runs, by rate)\n", op.repeat);
    printf("cpu_s: this process, all threads. db_s: the database server (--db-pid). other_s: CPU\n"
           "other processes took meanwhile (a busy machine skews every figure). p50/p99: one\n"
           "hs_server_publish call. commits: transactions (distinct commit timestamps).\n"
           "write_MB: %s. vs_raw: against the faster raw run.\n",
           is_pg() ? "WAL the database generated" : "bytes written (wchar), WAL and checkpoints");

    if (record) {
        char *line = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&line, &len);
        fprintf(f, "{\"bench\":\"ingest\",");
        bench_env_json(f, &env);
        fprintf(f, ",\"db\":");
        bench_json_str(f, dl->name);
        if (op.db) {
            fprintf(f, ",\"db_info\":{\"dbms\":");
            bench_json_str(f, dbi.dbms);
            fprintf(f, ",\"dbms_ver\":");
            bench_json_str(f, dbi.dbms_ver);
            fprintf(f, ",\"driver\":");
            bench_json_str(f, dbi.driver);
            fprintf(f, ",\"driver_ver\":");
            bench_json_str(f, dbi.driver_ver);
            fprintf(f, ",\"conn\":");
            bench_json_str(f, dbi.conn);
            if (is_pg()) {
                fprintf(f, ",\"fsync\":");
                bench_json_str(f, dbi.fsync);
                fprintf(f, ",\"synchronous_commit\":");
                bench_json_str(f, dbi.sync_commit);
            }
            fprintf(f, "}");
        }
        fprintf(f,
                ",\"params\":{\"events\":%ld,\"threads\":%d,\"batch\":%d,\"data_bytes\":%d,"
                "\"raw_chunk\":%d,\"repeat\":%d,\"client_ids\":%s,\"raw_random_ids\":%s,"
                "\"raw_cache_kb\":%ld,\"dir\":",
                op.events, op.threads, op.batch, DATA_BYTES, RAW_CHUNK, op.repeat,
                op.client_ids ? "true" : "false", op.random_ids ? "true" : "false", op.cache_kb);
        if (op.dir)
            bench_json_str(f, op.dir);
        else
            fprintf(f, "null");
        fprintf(f, "}");
        if (!op.skip_raw && two_raw)
            fprintf(f,
                    ",\"raw\":{\"plain_rows_s\":%.0f,\"plain_s\":%.3f,\"cte_rows_s\":%.0f,"
                    "\"cte_s\":%.3f,\"best_rows_s\":%.0f,\"plain_write_mb\":%.0f,"
                    "\"cte_write_mb\":%.0f,\"plain_other_cpu_s\":%.2f,"
                    "\"cte_other_cpu_s\":%.2f,\"ok\":%s}",
                    rp.rows_s, rp.secs, rc.rows_s, rc.secs, raw_best, rp.write_mb, rc.write_mb,
                    rp.other_cpu, rc.other_cpu, rp.ok && rc.ok ? "true" : "false");
        else if (!op.skip_raw) {
            fprintf(f, ",\"raw\":");
            raw_json(f, &rc);
        }
        if (!op.skip_raw && op.repeat > 1) {
            /* every round's raw rate, in run order */
            fprintf(f, ",\"raw_rounds_rows_s\":[");
            for (int r = 0; r < op.repeat; r++) {
                double best = rps[r].rows_s > rcs[r].rows_s ? rps[r].rows_s : rcs[r].rows_s;
                fprintf(f, "%s%.0f", r ? "," : "", best);
            }
            fprintf(f, "]");
        }
        const srv_result_t *sr[2] = {&s1, &sk};
        const srv_result_t *rounds[2] = {s1s, sks};
        const char *names[2] = {"one_stream", "per_thread_streams"};
        for (int i = 0; i < 2; i++) {
            fprintf(f,
                    ",\"%s\":{\"events_s\":%.0f,\"seconds\":%.3f,\"cpu_s\":%.2f,"
                    "\"publish_ms_p50\":%.3f,\"publish_ms_p99\":%.3f,\"publish_ms_max\":%.3f,"
                    "\"commits\":%lld,\"write_mb\":%.0f,\"other_cpu_s\":%.2f,",
                    names[i], sr[i]->events_s, sr[i]->secs, sr[i]->cpu, sr[i]->lat_p50,
                    sr[i]->lat_p99, sr[i]->lat_max, (long long)sr[i]->commits, sr[i]->write_mb,
                    sr[i]->other_cpu);
            if (sr[i]->db_cpu >= 0)
                fprintf(f, "\"db_cpu_s\":%.2f,", sr[i]->db_cpu);
            if (op.repeat > 1) {
                fprintf(f, "\"rounds_events_s\":[");
                for (int r = 0; r < op.repeat; r++)
                    fprintf(f, "%s%.0f", r ? "," : "", rounds[i][r].events_s);
                fprintf(f, "],");
            }
            fprintf(f, "\"ratio_vs_raw\":%.3f,\"ok\":%s}",
                    raw_best ? sr[i]->events_s / raw_best : 0, sr[i]->ok ? "true" : "false");
        }
        fprintf(f, ",\"ok\":%s}", fails ? "false" : "true");
        fclose(f);
        if (bench_append_line(op.results, line) == 0)
            printf("appended to %s\n", op.results);
        else
            fails++;
        free(line);
    }

    if (!op.keep) {
        if (op.db) {
            if (db_reset())
                fails++;
        } else {
            remove_db(p_plain);
            remove_db(p_cte);
            remove_db(p_one);
            remove_db(p_per);
            if (own_dir)
                rmdir(tmpdir);
        }
    }
    if (fails)
        fprintf(stderr, "bench_ingest: %d failure(s)\n", fails);
    return fails ? 1 : 0;
}
