/*
 * Tests of the store (storage/store.c) against a real SQLite file through the real SQLite3 ODBC
 * driver: what the writer and the readers rely on — schema, stream rows, array inserts read
 * back byte for byte, ordering, constraint failures and rollback, listing, and what a second
 * connection sees while the first one writes.
 *
 * Not tested here: other databases (their dialects do not exist yet) and speed (perf/).
 * Each test gets a fresh temporary directory, removed afterwards.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sql.h>
#include <sqlext.h>

#include <hubstream/hubstream.h>

#include "storage/store.h"
#include "util/uuid.h"

static char dir[64];
static char dbpath[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/hs_store_test_XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp");
    snprintf(dbpath, sizeof dbpath, "%s/store.db", dir);
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

TestSuite(store, .init = setup, .fini = teardown);

/* ---- helpers ---- */

static hs_store_t *open_store(void)
{
    char err[512];
    hs_store_t *st = hs_store_open(dbpath, err, sizeof err);
    cr_assert_not_null(st, "open %s: %s", dbpath, err);
    cr_assert_eq(hs_store_migrate(st), 0, "migrate: %s", hs_store_error(st));
    return st;
}

/* First column of the first row of `sql`, run on its own ODBC connection (autocommit):
 * what another program looking at the file would see. Returns 0, 1 for no row, -1 on error. */
static int raw_sql(const char *sql, char *out, size_t outlen)
{
    SQLHENV env;
    SQLHDBC dbc;
    SQLHSTMT h;
    char conn[256];
    int rc = -1;

    snprintf(conn, sizeof conn, "Driver=SQLite3;Database=%s;Timeout=5000", dbpath);
    SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &env);
    SQLSetEnvAttr(env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER)SQL_OV_ODBC3, 0);
    SQLAllocHandle(SQL_HANDLE_DBC, env, &dbc);
    if (SQL_SUCCEEDED(SQLDriverConnect(dbc, NULL, (SQLCHAR *)conn, SQL_NTS, NULL, 0, NULL,
                                       SQL_DRIVER_NOPROMPT))) {
        SQLAllocHandle(SQL_HANDLE_STMT, dbc, &h);
        SQLRETURN r = SQLExecDirect(h, (SQLCHAR *)sql, SQL_NTS);
        if (SQL_SUCCEEDED(r) || r == SQL_NO_DATA) {
            rc = 1;
            if (out && SQL_SUCCEEDED(SQLFetch(h))) {
                SQLLEN ind = 0;
                out[0] = '\0';
                SQLGetData(h, 1, SQL_C_CHAR, out, (SQLLEN)outlen, &ind);
                rc = 0;
            } else if (!out) {
                rc = 0;
            }
        }
        SQLFreeHandle(SQL_HANDLE_STMT, h);
        SQLDisconnect(dbc);
    }
    SQLFreeHandle(SQL_HANDLE_DBC, dbc);
    SQLFreeHandle(SQL_HANDLE_ENV, env);
    return rc;
}

static hs_row_t row(int64_t sid, int64_t ver, int64_t pos, const char *eid, const char *type,
                    const char *data, const char *meta)
{
    return (hs_row_t){
        .stream_id = sid,
        .version = ver,
        .position = pos,
        .time_us = 1700000000000000 + pos,
        .event_id = eid,
        .event_id_len = strlen(eid),
        .type = type,
        .type_len = strlen(type),
        .data = data,
        .data_len = strlen(data),
        .metadata = meta,
        .metadata_len = meta ? strlen(meta) : 0,
    };
}

/* Copies of what a read callback saw. */
typedef struct rec {
    char *stream, *event_id, *type, *data, *meta; /* meta NULL when SQL NULL */
    size_t stream_len, event_id_len, type_len, data_len, meta_len;
    int64_t version, position, time_us;
} rec_t;

typedef struct recs {
    rec_t *v;
    size_t n, cap;
    size_t stop_after; /* return 42 after this many records (0: never) */
} recs_t;

static char *copy(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    cr_assert_not_null(p);
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static int collect(void *ctx, const hs_record_t *r)
{
    recs_t *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->v = realloc(c->v, c->cap * sizeof *c->v);
        cr_assert_not_null(c->v);
    }
    rec_t *x = &c->v[c->n++];
    x->stream = copy(r->stream, r->stream_len);
    x->stream_len = r->stream_len;
    x->event_id = copy(r->event_id, r->event_id_len);
    x->event_id_len = r->event_id_len;
    x->type = copy(r->type, r->type_len);
    x->type_len = r->type_len;
    x->data = copy(r->data, r->data_len);
    x->data_len = r->data_len;
    x->meta = r->metadata ? copy(r->metadata, r->metadata_len) : NULL;
    x->meta_len = r->metadata_len;
    x->version = r->version;
    x->position = r->position;
    x->time_us = r->time_us;
    return c->stop_after && c->n == c->stop_after ? 42 : 0;
}

static void recs_free(recs_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].stream);
        free(c->v[i].event_id);
        free(c->v[i].type);
        free(c->v[i].data);
        free(c->v[i].meta);
    }
    free(c->v);
    memset(c, 0, sizeof *c);
}

static void read_stream(hs_store_t *st, const char *name, int64_t after, bool backward,
                        size_t limit, recs_t *out)
{
    recs_free(out);
    int rc = hs_store_read_stream(st, name, strlen(name), after, backward, limit, collect, out);
    cr_assert_eq(rc, 0, "read_stream %s: %d %s", name, rc, hs_store_error(st));
}

static void read_all(hs_store_t *st, int64_t after, bool backward, size_t limit, recs_t *out)
{
    recs_free(out);
    int rc = hs_store_read_all(st, after, backward, limit, collect, out);
    cr_assert_eq(rc, 0, "read_all: %d %s", rc, hs_store_error(st));
}

/* The record matches the row that was inserted, byte for byte. */
static void assert_same(const rec_t *r, const hs_row_t *w, const char *stream)
{
    cr_assert_eq(r->version, w->version);
    cr_assert_eq(r->position, w->position);
    cr_assert_eq(r->time_us, w->time_us);
    cr_assert_eq(r->stream_len, strlen(stream));
    cr_assert_eq(memcmp(r->stream, stream, r->stream_len), 0, "stream %s != %s", r->stream, stream);
    cr_assert_eq(r->event_id_len, w->event_id_len);
    cr_assert_eq(memcmp(r->event_id, w->event_id, w->event_id_len), 0);
    cr_assert_eq(r->type_len, w->type_len);
    cr_assert_eq(memcmp(r->type, w->type, w->type_len), 0);
    cr_assert_eq(r->data_len, w->data_len, "position %lld: data %zu bytes, wrote %zu",
                 (long long)w->position, r->data_len, w->data_len);
    cr_assert_eq(memcmp(r->data, w->data, w->data_len), 0, "position %lld: data differs",
                 (long long)w->position);
    if (!w->metadata) {
        cr_assert_null(r->meta, "position %lld: metadata should be NULL", (long long)w->position);
    } else {
        cr_assert_not_null(r->meta, "position %lld: metadata lost", (long long)w->position);
        cr_assert_eq(r->meta_len, w->metadata_len);
        cr_assert_eq(memcmp(r->meta, w->metadata, w->metadata_len), 0);
    }
}

/* A JSON object of about n bytes whose string mixes ASCII with 2-, 3- and 4-byte UTF-8, in a
 * pseudo-random order so that a misplaced chunk cannot go unnoticed. */
static char *blob(size_t n, unsigned seed)
{
    static const char *const bits[] = {"a", "b", "c", "xyz", " ", "0", "é", "→", "✓", "😀"};
    char *p = malloc(n + 16);
    cr_assert_not_null(p);
    size_t at = 0;
    at += (size_t)sprintf(p, "{\"b\":\"");
    while (at < n) {
        seed = seed * 1103515245u + 12345u;
        const char *b = bits[(seed >> 16) % 10];
        size_t l = strlen(b);
        memcpy(p + at, b, l);
        at += l;
    }
    strcpy(p + at, "\"}");
    return p;
}

static int64_t make_stream(hs_store_t *st, const char *name)
{
    int64_t id = 0;
    int rc = hs_store_create_stream(st, name, strlen(name), 1000, &id);
    cr_assert_eq(rc, 0, "create %s: %s", name, hs_store_error(st));
    cr_assert_gt(id, 0);
    return id;
}

static void insert(hs_store_t *st, const hs_row_t *rows, size_t n)
{
    cr_assert_eq(hs_store_begin(st), 0, "%s", hs_store_error(st));
    int rc = hs_store_insert_events(st, rows, n);
    cr_assert_eq(rc, 0, "insert: %d %s", rc, hs_store_error(st));
    cr_assert_eq(hs_store_commit(st), 0, "commit: %s", hs_store_error(st));
}

static int64_t max_pos(hs_store_t *st)
{
    int64_t p = -1;
    cr_assert_eq(hs_store_max_position(st, &p), 0, "%s", hs_store_error(st));
    return p;
}

/* ---- schema ---- */

Test(store, migrate_is_idempotent_and_records_the_version)
{
    hs_store_t *st = open_store();
    cr_assert_str_eq(hs_store_dialect(st), "sqlite");
    int64_t id = make_stream(st, "kept");

    cr_assert_eq(hs_store_migrate(st), 0, "%s", hs_store_error(st));
    hs_store_t *other = open_store(); /* a second connection migrates the same file */
    cr_assert_eq(hs_store_migrate(other), 0, "%s", hs_store_error(other));

    char v[32] = "";
    cr_assert_eq(raw_sql("SELECT value FROM hs_meta WHERE key = 'schema_version'", v, sizeof v), 0);
    cr_assert_str_eq(v, "3");
    char n[32] = "";
    cr_assert_eq(raw_sql("SELECT COUNT(*) FROM hs_meta WHERE key = 'schema_version'", n, sizeof n),
                 0);
    cr_assert_str_eq(n, "1");

    /* Migrating again kept the data. */
    hs_stream_head_t h;
    cr_assert_eq(hs_store_get_stream(other, "kept", 4, &h), 0);
    cr_assert_eq(h.id, id);
    hs_store_close(other);
    hs_store_close(st);
}

/* A database written by a build of schema version 1 (no operations log) is migrated on open,
 * and keeps its streams and events. */
/* Takes a database of the current schema back to version 2 (before /eventstreamhub). */
static void back_to_version_2(void)
{
    static const char *const undo[] = {
        "DROP INDEX hs_streams_fold",
        "DROP INDEX hs_streams_guid",
        "ALTER TABLE hs_streams DROP COLUMN fold",
        "ALTER TABLE hs_streams DROP COLUMN guid",
        "DROP TABLE hs_es_subscribers",
        "DROP TABLE hs_es_links",
        "DELETE FROM hs_meta WHERE key = 'links_gen'",
        "UPDATE hs_meta SET value = '2' WHERE key = 'schema_version'",
    };
    for (size_t i = 0; i < sizeof undo / sizeof undo[0]; i++)
        cr_assert_eq(raw_sql(undo[i], NULL, 0), 0, "%s", undo[i]);
}

Test(store, version_1_database_is_migrated_to_3)
{
    hs_store_t *st = open_store();
    int64_t id = make_stream(st, "old");
    hs_store_close(st);
    back_to_version_2();
    cr_assert_eq(raw_sql("DROP TABLE hs_stream_ops", NULL, 0), 0);
    cr_assert_eq(raw_sql("UPDATE hs_meta SET value = '1' WHERE key = 'schema_version'", NULL, 0),
                 0);
    st = open_store();
    cr_assert_eq(hs_store_migrate(st), 0, "%s", hs_store_error(st));
    char v[32] = "";
    cr_assert_eq(raw_sql("SELECT value FROM hs_meta WHERE key = 'schema_version'", v, sizeof v), 0);
    cr_assert_str_eq(v, "3");
    hs_stream_head_t h;
    cr_assert_eq(hs_store_get_stream(st, "old", 3, &h), 0);
    cr_assert_eq(h.id, id);
    int64_t pos = -1, seq = -1;
    cr_assert_eq(hs_store_heads(st, &pos, &seq), 0, "%s", hs_store_error(st));
    cr_assert_eq(seq, 0, "an empty operations log reads as 0");
    hs_store_close(st);
}

typedef struct {
    int n;
    int64_t seq[8], pos[8], version[8];
    int kind[8];
    char name[8][16];
} ops_seen_t;

static int collect_op(void *ctx, const hs_stream_op_t *op)
{
    ops_seen_t *o = ctx;
    cr_assert_lt(o->n, 8);
    o->seq[o->n] = op->seq;
    o->pos[o->n] = op->position;
    o->version[o->n] = op->version;
    o->kind[o->n] = op->kind;
    snprintf(o->name[o->n], sizeof o->name[0], "%.*s", (int)op->name_len, op->name);
    o->n++;
    return 0;
}

/* The operations log: written in a transaction, read back by seq range in order, counted by
 * the heads, pruned by time. */
Test(store, operations_log_round_trip)
{
    hs_store_t *st = open_store();
    cr_assert_eq(hs_store_begin(st), 0);
    hs_stream_op_t a = {.seq = 1,
                        .position = 10,
                        .version = 4,
                        .time_us = 1000,
                        .kind = HS_OP_CLOSE,
                        .name = "orders",
                        .name_len = 6};
    hs_stream_op_t b = {.seq = 2,
                        .position = 12,
                        .version = 9,
                        .time_us = 5000,
                        .kind = HS_OP_DELETE,
                        .name = "job-7",
                        .name_len = 5};
    cr_assert_eq(hs_store_log_op(st, &a), 0, "%s", hs_store_error(st));
    cr_assert_eq(hs_store_log_op(st, &b), 0, "%s", hs_store_error(st));
    cr_assert_eq(hs_store_commit(st), 0);

    int64_t pos = -1, seq = -1;
    cr_assert_eq(hs_store_heads(st, &pos, &seq), 0, "%s", hs_store_error(st));
    cr_assert_eq(seq, 2);
    ops_seen_t o = {0};
    cr_assert_eq(hs_store_read_ops(st, 0, 2, collect_op, &o), 0, "%s", hs_store_error(st));
    cr_assert_eq(o.n, 2);
    cr_assert_eq(o.seq[0], 1);
    cr_assert_eq(o.pos[0], 10);
    cr_assert_eq(o.kind[0], HS_OP_CLOSE);
    cr_assert_eq(o.version[0], 4);
    cr_assert_str_eq(o.name[0], "orders");
    cr_assert_eq(o.kind[1], HS_OP_DELETE);
    cr_assert_str_eq(o.name[1], "job-7");
    o.n = 0;
    cr_assert_eq(hs_store_read_ops(st, 1, 1, collect_op, &o), 0);
    cr_assert_eq(o.n, 0, "(1, 1] is empty");

    cr_assert_eq(hs_store_prune_ops(st, 2000), 0, "%s", hs_store_error(st));
    o.n = 0;
    cr_assert_eq(hs_store_read_ops(st, 0, 10, collect_op, &o), 0);
    cr_assert_eq(o.n, 1, "the entry older than 2000 us is gone");
    cr_assert_eq(o.seq[0], 2);
    /* SQLite has one writer: its writer always leads, and it has no notifications */
    cr_assert_eq(hs_store_lead(st), 1);
    cr_assert(!hs_store_can_notify(st));
    hs_store_close(st);
}

Test(store, newer_schema_is_refused)
{
    hs_store_t *st = open_store();
    hs_store_close(st);
    cr_assert_eq(raw_sql("UPDATE hs_meta SET value = '99' WHERE key = 'schema_version'", NULL, 0),
                 0);

    char err[512];
    st = hs_store_open(dbpath, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    cr_assert_eq(hs_store_migrate(st), HS_EDB);
    cr_assert_not_null(strstr(hs_store_error(st), "99"), "message: %s", hs_store_error(st));
    hs_store_close(st);
}

/* ---- connections ---- */

Test(store, bare_path_opens_sqlite_in_wal_mode)
{
    hs_store_t *st = open_store();
    make_stream(st, "s");
    struct stat sb;
    cr_assert_eq(stat(dbpath, &sb), 0, "the database file was not created");
    char mode[16] = "";
    cr_assert_eq(raw_sql("PRAGMA journal_mode", mode, sizeof mode), 0);
    cr_assert_str_eq(mode, "wal");

    /* The same file through a full connection string. */
    char conn[256], err[512];
    snprintf(conn, sizeof conn, "Driver=SQLite3;Database=%s", dbpath);
    hs_store_t *other = hs_store_open(conn, err, sizeof err);
    cr_assert_not_null(other, "%s", err);
    cr_assert_eq(hs_store_migrate(other), 0, "%s", hs_store_error(other));
    hs_stream_head_t h;
    cr_assert_eq(hs_store_get_stream(other, "s", 1, &h), 0);
    hs_store_close(other);
    hs_store_close(st);
}

Test(store, open_fails_with_a_message)
{
    char file[256], bad[300], err[512];

    /* A path below a regular file cannot be created, even by root. */
    snprintf(file, sizeof file, "%s/plain-file", dir);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fclose(f);
    snprintf(bad, sizeof bad, "%s/sub.db", file);
    err[0] = '\0';
    cr_assert_null(hs_store_open(bad, err, sizeof err));
    cr_assert_neq(err[0], '\0');
    cr_assert_not_null(strstr(err, bad), "the message names the file: %s", err);

    err[0] = '\0';
    cr_assert_null(hs_store_open("Driver=NoSuchDriver;Database=x.db", err, sizeof err));
    cr_assert_neq(err[0], '\0');

    /* ';' would end the Database= value of the connection string. */
    snprintf(bad, sizeof bad, "%s/a;b.db", dir);
    err[0] = '\0';
    cr_assert_null(hs_store_open(bad, err, sizeof err));
    cr_assert_not_null(strstr(err, ";"), "%s", err);
    struct stat sb;
    cr_assert_neq(stat(bad, &sb), 0, "no file was created");
}

/* ---- streams ---- */

Test(store, create_get_update_stream)
{
    hs_store_t *st = open_store();
    hs_stream_head_t h;
    cr_assert_eq(hs_store_get_stream(st, "orders-1", 8, &h), HS_ENOENT);

    int64_t id = 0;
    cr_assert_eq(hs_store_create_stream(st, "orders-1", 8, 5000, &id), 0, "%s", hs_store_error(st));
    cr_assert_eq(hs_store_get_stream(st, "orders-1", 8, &h), 0);
    cr_assert_eq(h.id, id);
    cr_assert_eq(h.version, 0);
    cr_assert_eq(h.position, 0);
    cr_assert(!h.closed);
    cr_assert_eq(h.created_us, 5000);
    cr_assert_eq(h.updated_us, 5000);

    /* Names are exact bytes: case matters, and the length given is what counts. */
    int64_t id2 = 0;
    cr_assert_eq(hs_store_create_stream(st, "Orders-1", 8, 5000, &id2), 0);
    cr_assert_neq(id2, id);
    cr_assert_eq(hs_store_get_stream(st, "orders-1-and-more", 8, &h), 0);
    cr_assert_eq(h.id, id);

    h = (hs_stream_head_t){.id = id,
                           .version = 3,
                           .position = 17,
                           .closed = true,
                           .created_us = 1,
                           .updated_us = 9000};
    cr_assert_eq(hs_store_update_stream(st, &h), 0, "%s", hs_store_error(st));
    memset(&h, 0, sizeof h);
    cr_assert_eq(hs_store_get_stream(st, "orders-1", 8, &h), 0);
    cr_assert_eq(h.version, 3);
    cr_assert_eq(h.position, 17);
    cr_assert(h.closed);
    cr_assert_eq(h.created_us, 5000, "update must not touch created_us");
    cr_assert_eq(h.updated_us, 9000);

    /* A second stream of the same name is refused and the first one is intact. */
    int64_t id3 = 0;
    cr_assert_eq(hs_store_create_stream(st, "orders-1", 8, 7000, &id3), HS_EDB);
    cr_assert_neq(hs_store_error(st)[0], '\0');
    cr_assert_eq(hs_store_get_stream(st, "orders-1", 8, &h), 0);
    cr_assert_eq(h.id, id);
    cr_assert_eq(h.version, 3);

    hs_stream_head_t ghost = {.id = id + 1000, .version = 1};
    cr_assert_eq(hs_store_update_stream(st, &ghost), HS_ENOENT);
    hs_store_close(st);
}

/* ---- inserts and reads ---- */

Test(store, insert_and_read_back_byte_exact)
{
    hs_store_t *st = open_store();
    int64_t s = make_stream(st, "cart-✓");
    char *big = blob(600 * 1024, 7);
    const char *uni = "{\"name\":\"Zoë 注文 😀\",\"n\":1}";
    hs_row_t rows[] = {
        row(s, 1, 1, "id-1", "ItemAdded", "{\"sku\":1}", "{\"by\":\"a\"}"),
        row(s, 2, 2, "id-2", "ItemAdded", "{\"sku\":2}", NULL),
        row(s, 3, 3, "id-3", "BigThing", big, "{\"size\":\"big\"}"),
        row(s, 4, 4, "événement-✓", "Überprüft", uni, ""),
        row(s, 5, 5, "id-5", "ItemRemoved", "[1,2,3]", NULL),
        row(s, 6, 6, "id-6", "CartClosed", "null", "{\"z\":\"😀\"}"),
    };
    insert(st, rows, 6);

    recs_t r = {0};
    read_stream(st, "cart-✓", 0, false, 100, &r);
    cr_assert_eq(r.n, 6);
    for (size_t i = 0; i < 6; i++)
        assert_same(&r.v[i], &rows[i], "cart-✓");
    cr_assert_not_null(r.v[3].meta, "empty metadata is not NULL");
    cr_assert_eq(r.v[3].meta_len, 0);

    read_stream(st, "cart-✓", 2, false, 2, &r); /* after version 2, two of them */
    cr_assert_eq(r.n, 2);
    assert_same(&r.v[0], &rows[2], "cart-✓");
    assert_same(&r.v[1], &rows[3], "cart-✓");

    read_stream(st, "cart-✓", 0, true, 2, &r); /* newest first */
    cr_assert_eq(r.n, 2);
    assert_same(&r.v[0], &rows[5], "cart-✓");
    assert_same(&r.v[1], &rows[4], "cart-✓");

    read_stream(st, "cart-✓", 4, true, 100, &r); /* before version 4 */
    cr_assert_eq(r.n, 3);
    assert_same(&r.v[0], &rows[2], "cart-✓");
    assert_same(&r.v[1], &rows[1], "cart-✓");
    assert_same(&r.v[2], &rows[0], "cart-✓");

    read_stream(st, "cart-✓", 6, false, 100, &r);
    cr_assert_eq(r.n, 0);
    read_stream(st, "no-such-stream", 0, false, 100, &r);
    cr_assert_eq(r.n, 0);

    recs_free(&r);
    free(big);
    hs_store_close(st);
}

/* Enough rows, and rows wide enough, that the insert is cut into several array executions and
 * the reads into several pages; every row must still come back once, in order, intact. */
Test(store, many_rows_of_mixed_sizes)
{
    hs_store_t *st = open_store();
    int64_t s = make_stream(st, "bulk");
    enum { N = 3000 };
    hs_row_t *rows = calloc(N, sizeof *rows);
    char **ids = calloc(N, sizeof *ids), **data = calloc(N, sizeof *data);
    cr_assert(rows && ids && data);
    for (int i = 0; i < N; i++) {
        ids[i] = malloc(32);
        snprintf(ids[i], 32, "e-%d", i);
        size_t size = i % 500 == 250 ? 300 * 1024 : (size_t)(20 + (i * 37) % 2000);
        data[i] = blob(size, (unsigned)i);
        rows[i] = row(s, i + 1, i + 1, ids[i], i % 3 ? "Small" : "Tick", data[i],
                      i % 2 ? NULL : "{\"m\":true}");
    }
    insert(st, rows, N);

    recs_t r = {0};
    read_stream(st, "bulk", 0, false, N + 10, &r);
    cr_assert_eq(r.n, N);
    for (int i = 0; i < N; i++)
        assert_same(&r.v[i], &rows[i], "bulk");

    read_stream(st, "bulk", 0, true, 2500, &r);
    cr_assert_eq(r.n, 2500);
    for (int i = 0; i < 2500; i++)
        assert_same(&r.v[i], &rows[N - 1 - i], "bulk");

    read_all(st, 1234, false, 1500, &r);
    cr_assert_eq(r.n, 1500);
    for (int i = 0; i < 1500; i++)
        assert_same(&r.v[i], &rows[1234 + i], "bulk");
    cr_assert_eq(max_pos(st), N);

    recs_free(&r);
    for (int i = 0; i < N; i++) {
        free(ids[i]);
        free(data[i]);
    }
    free(ids);
    free(data);
    free(rows);
    hs_store_close(st);
}

/* One row per insert, as one-event commits make them, with sizes that move up and down across
 * the rounded column widths (and HS_ODBC_LONG_TEXT) and metadata that comes and goes: the
 * insert's parameters stay bound while nothing moved, and every row must still come back
 * intact. */
Test(store, one_row_inserts_of_changing_sizes)
{
    hs_store_t *st = open_store();
    int64_t s = make_stream(st, "singles");
    static const size_t sizes[] = {5, 300, 256, 257, 5000, 3, 4000, 4001, 200 * 1024, 10, 128};
    enum { N = sizeof sizes / sizeof sizes[0] };
    static const char *const meta[] = {NULL, "", "{\"m\":1}", NULL, "{\"m\":\"long\"}"};
    static const char *const types[] = {"T", "ItemAdded", "AVeryLongTypeNameIndeed"};
    hs_row_t rows[N];
    char *data[N], ids[N][40];
    for (int i = 0; i < N; i++) {
        data[i] = blob(sizes[i], (unsigned)i + 11);
        snprintf(ids[i], sizeof ids[i], "%.*s-%d", 1 + i * 3, "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
                 i);
        rows[i] = row(s, i + 1, i + 1, ids[i], types[i % 3], data[i], meta[i % 5]);
        insert(st, &rows[i], 1);
        hs_stream_head_t h = {.id = s, .version = i + 1, .position = i + 1, .updated_us = i};
        cr_assert_eq(hs_store_update_stream(st, &h), 0, "%s", hs_store_error(st));
    }
    recs_t r = {0};
    read_stream(st, "singles", 0, false, 100, &r);
    cr_assert_eq(r.n, N);
    for (int i = 0; i < N; i++)
        assert_same(&r.v[i], &rows[i], "singles");
    hs_stream_head_t ghost = {.id = s + 1000, .version = 1};
    cr_assert_eq(hs_store_update_stream(st, &ghost), HS_ENOENT);
    recs_free(&r);
    for (int i = 0; i < N; i++)
        free(data[i]);
    hs_store_close(st);
}

Test(store, read_all_orders_by_position_across_streams)
{
    hs_store_t *st = open_store();
    const char *names[] = {"alpha", "beta", "gamma"};
    int64_t ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = make_stream(st, names[i]);
    /* Positions 1..9 go round-robin over the streams, inserted out of position order. */
    hs_row_t rows[9];
    char eid[9][16];
    for (int p = 1; p <= 9; p++) {
        int k = (p - 1) % 3;
        snprintf(eid[p - 1], sizeof eid[0], "x%d", p);
        rows[p - 1] = row(ids[k], (p - 1) / 3 + 1, p, eid[p - 1], "T", "{}", NULL);
    }
    hs_row_t shuffled[9] = {rows[8], rows[2], rows[5], rows[0], rows[7],
                            rows[3], rows[1], rows[6], rows[4]};
    insert(st, shuffled, 9);

    recs_t r = {0};
    read_all(st, 0, false, 100, &r);
    cr_assert_eq(r.n, 9);
    for (int p = 1; p <= 9; p++)
        assert_same(&r.v[p - 1], &rows[p - 1], names[(p - 1) % 3]);

    read_all(st, 0, true, 4, &r);
    cr_assert_eq(r.n, 4);
    for (int i = 0; i < 4; i++)
        assert_same(&r.v[i], &rows[8 - i], names[(8 - i) % 3]);

    read_all(st, 3, false, 3, &r);
    cr_assert_eq(r.n, 3);
    for (int i = 0; i < 3; i++)
        assert_same(&r.v[i], &rows[3 + i], names[(3 + i) % 3]);

    read_all(st, 3, true, 100, &r);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.v[0].position, 2);
    cr_assert_eq(r.v[1].position, 1);

    /* A callback that says stop stops the read, and its value comes back. */
    recs_free(&r);
    r.stop_after = 2;
    cr_assert_eq(hs_store_read_all(st, 0, false, 100, collect, &r), 42);
    cr_assert_eq(r.n, 2);
    recs_free(&r);
    r.stop_after = 1;
    cr_assert_eq(hs_store_read_stream(st, "beta", 4, 0, false, 100, collect, &r), 42);
    cr_assert_eq(r.n, 1);

    recs_free(&r);
    hs_store_close(st);
}

Test(store, find_event_by_client_id)
{
    hs_store_t *st = open_store();
    int64_t a = make_stream(st, "a"), b = make_stream(st, "b");
    hs_row_t rows[] = {
        row(a, 1, 10, "client-1", "T", "{}", NULL),
        row(a, 2, 11, "client-2", "T", "{}", NULL),
        row(b, 1, 12, "client-3", "T", "{}", NULL),
    };
    insert(st, rows, 3);

    int64_t v = 0, p = 0;
    cr_assert_eq(hs_store_find_event(st, a, "client-2", 8, &v, &p), 0, "%s", hs_store_error(st));
    cr_assert_eq(v, 2);
    cr_assert_eq(p, 11);
    cr_assert_eq(hs_store_find_event(st, b, "client-3", 8, &v, &p), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(p, 12);
    cr_assert_eq(hs_store_find_event(st, b, "client-1", 8, &v, &p), HS_ENOENT,
                 "an id is looked up within its stream");
    cr_assert_eq(hs_store_find_event(st, a, "client-9", 8, &v, &p), HS_ENOENT);
    hs_store_close(st);
}

/* ---- failures and rollback ---- */

Test(store, duplicate_version_fails_and_rolls_back_cleanly)
{
    hs_store_t *st = open_store();
    int64_t s = make_stream(st, "s");
    hs_row_t first[] = {row(s, 1, 1, "a", "T", "{}", NULL), row(s, 2, 2, "b", "T", "{}", NULL)};
    insert(st, first, 2);

    hs_row_t dup[] = {row(s, 3, 3, "c", "T", "{}", NULL), row(s, 4, 4, "d", "T", "{}", NULL),
                      row(s, 2, 5, "e", "T", "{}", NULL)};
    cr_assert_eq(hs_store_begin(st), 0);
    cr_assert_eq(hs_store_insert_events(st, dup, 3), HS_EDB);
    const char *e = hs_store_error(st);
    cr_assert_not_null(strstr(e, "UNIQUE"), "message: %s", e);
    cr_assert_not_null(strstr(e, "event 3 of 3"), "the message names the row: %s", e);
    cr_assert_eq(hs_store_rollback(st), 0, "%s", hs_store_error(st));

    recs_t r = {0};
    read_stream(st, "s", 0, false, 100, &r);
    cr_assert_eq(r.n, 2, "the rows before the failing one are gone too");
    cr_assert_eq(max_pos(st), 2);

    /* The connection goes on working. */
    hs_row_t next[] = {row(s, 3, 3, "c", "T", "{}", NULL)};
    insert(st, next, 1);
    read_stream(st, "s", 0, false, 100, &r);
    cr_assert_eq(r.n, 3);
    recs_free(&r);
    hs_store_close(st);
}

Test(store, duplicate_event_id_fails_and_rolls_back_cleanly)
{
    hs_store_t *st = open_store();
    int64_t s = make_stream(st, "s");
    hs_row_t first[] = {row(s, 1, 1, "same", "T", "{}", NULL)};
    insert(st, first, 1);

    /* Against a committed row. */
    hs_row_t again[] = {row(s, 2, 2, "same", "T", "{}", NULL)};
    cr_assert_eq(hs_store_begin(st), 0);
    cr_assert_eq(hs_store_insert_events(st, again, 1), HS_EDB);
    cr_assert_not_null(strstr(hs_store_error(st), "UNIQUE"), "%s", hs_store_error(st));
    cr_assert_eq(hs_store_rollback(st), 0);

    /* Within one big call, far into it (past the first array execution). */
    enum { N = 1500 };
    hs_row_t *rows = calloc(N, sizeof *rows);
    char(*ids)[16] = calloc(N, sizeof *ids);
    cr_assert(rows && ids);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "k%d", i == 1299 ? 5 : i);
        rows[i] = row(s, i + 2, i + 2, ids[i], "T", "{}", NULL);
    }
    cr_assert_eq(hs_store_begin(st), 0);
    cr_assert_eq(hs_store_insert_events(st, rows, N), HS_EDB);
    cr_assert_not_null(strstr(hs_store_error(st), "event 1300 of 1500"), "%s", hs_store_error(st));
    cr_assert_eq(hs_store_rollback(st), 0);

    /* Outside a transaction the failed call is rolled back by itself. */
    cr_assert_eq(hs_store_insert_events(st, rows, N), HS_EDB);

    recs_t r = {0};
    read_all(st, 0, false, 10000, &r);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(max_pos(st), 1);
    recs_free(&r);
    free(rows);
    free(ids);
    hs_store_close(st);
}

Test(store, rollback_leaves_nothing)
{
    hs_store_t *st = open_store();
    cr_assert_eq(hs_store_begin(st), 0);
    int64_t id = 0;
    cr_assert_eq(hs_store_create_stream(st, "gone", 4, 1, &id), 0);
    hs_row_t rows[] = {row(id, 1, 1, "a", "T", "{}", NULL), row(id, 2, 2, "b", "T", "{}", "{}")};
    cr_assert_eq(hs_store_insert_events(st, rows, 2), 0);
    hs_stream_head_t h = {.id = id, .version = 2, .position = 2, .updated_us = 2};
    cr_assert_eq(hs_store_update_stream(st, &h), 0);
    /* Inside the transaction its own rows are visible. */
    cr_assert_eq(hs_store_get_stream(st, "gone", 4, &h), 0);
    cr_assert_eq(h.version, 2);
    cr_assert_eq(hs_store_rollback(st), 0);

    cr_assert_eq(hs_store_get_stream(st, "gone", 4, &h), HS_ENOENT);
    recs_t r = {0};
    read_all(st, 0, false, 100, &r);
    cr_assert_eq(r.n, 0);
    cr_assert_eq(max_pos(st), 0);
    char n[16] = "";
    cr_assert_eq(raw_sql("SELECT COUNT(*) FROM hs_events", n, sizeof n), 0);
    cr_assert_str_eq(n, "0");

    /* Misuse is refused rather than half-done. */
    cr_assert_eq(hs_store_commit(st), HS_EINVAL);
    cr_assert_eq(hs_store_begin(st), 0);
    cr_assert_eq(hs_store_begin(st), HS_EINVAL);
    cr_assert_eq(hs_store_rollback(st), 0);
    hs_store_close(st);
}

Test(store, delete_stream_removes_events_and_frees_the_name)
{
    hs_store_t *st = open_store();
    int64_t keep = make_stream(st, "keep"), gone = make_stream(st, "gone");
    hs_row_t rows[] = {
        row(keep, 1, 1, "k1", "T", "{}", NULL), row(gone, 1, 2, "g1", "T", "{}", NULL),
        row(gone, 2, 3, "g2", "T", "{}", NULL), row(keep, 2, 4, "k2", "T", "{}", NULL),
        row(gone, 3, 5, "g3", "T", "{}", NULL),
    };
    insert(st, rows, 5);
    hs_stream_head_t h = {.id = gone, .version = 3, .position = 5, .updated_us = 5};
    cr_assert_eq(hs_store_update_stream(st, &h), 0);

    cr_assert_eq(hs_store_begin(st), 0);
    cr_assert_eq(hs_store_delete_stream(st, gone), 0, "%s", hs_store_error(st));
    cr_assert_eq(hs_store_commit(st), 0);

    cr_assert_eq(hs_store_get_stream(st, "gone", 4, &h), HS_ENOENT);
    recs_t r = {0};
    read_stream(st, "gone", 0, false, 100, &r);
    cr_assert_eq(r.n, 0);
    read_all(st, 0, false, 100, &r);
    cr_assert_eq(r.n, 2);
    assert_same(&r.v[0], &rows[0], "keep");
    assert_same(&r.v[1], &rows[3], "keep");
    int64_t v, p;
    cr_assert_eq(hs_store_find_event(st, gone, "g1", 2, &v, &p), HS_ENOENT);
    /* Position 5 was handed out: it must not be handed out again. */
    cr_assert_eq(max_pos(st), 5);

    /* The name can be used again, from scratch, even with the old client ids. */
    int64_t again = make_stream(st, "gone");
    cr_assert_eq(hs_store_get_stream(st, "gone", 4, &h), 0);
    cr_assert_eq(h.version, 0);
    hs_row_t fresh[] = {row(again, 1, 6, "g1", "T", "{\"new\":1}", NULL)};
    insert(st, fresh, 1);
    read_stream(st, "gone", 0, false, 100, &r);
    cr_assert_eq(r.n, 1);
    assert_same(&r.v[0], &fresh[0], "gone");

    cr_assert_eq(hs_store_delete_stream(st, 999999), HS_ENOENT);
    recs_free(&r);
    hs_store_close(st);
}

Test(store, max_position)
{
    hs_store_t *st = open_store();
    cr_assert_eq(max_pos(st), 0);
    int64_t s = make_stream(st, "s");
    cr_assert_eq(max_pos(st), 0);
    hs_row_t rows[] = {row(s, 1, 3, "a", "T", "{}", NULL), row(s, 2, 7, "b", "T", "{}", NULL)};
    insert(st, rows, 2);
    cr_assert_eq(max_pos(st), 7);
    /* A stream row may remember a later position than any event left. */
    hs_stream_head_t h = {.id = s, .version = 2, .position = 12, .updated_us = 1};
    cr_assert_eq(hs_store_update_stream(st, &h), 0);
    cr_assert_eq(max_pos(st), 12);
    hs_store_close(st);
}

/* ---- listing ---- */

typedef struct names {
    char v[64][32];
    hs_stream_head_t head[64];
    int n;
    int stop_after;
} names_t;

static int collect_name(void *ctx, const char *name, size_t len, const hs_stream_head_t *head)
{
    names_t *c = ctx;
    cr_assert_lt(c->n, 64);
    cr_assert_lt(len, 32);
    memcpy(c->v[c->n], name, len);
    c->v[c->n][len] = '\0';
    c->head[c->n] = *head;
    c->n++;
    return c->stop_after && c->n == c->stop_after ? 7 : 0;
}

static void list(hs_store_t *st, const char *prefix, const char *after, size_t limit,
                 const char *expect)
{
    names_t got = {0};
    int rc = hs_store_list_streams(st, prefix, strlen(prefix), after, strlen(after), limit,
                                   collect_name, &got);
    cr_assert_eq(rc, 0, "%s", hs_store_error(st));
    char joined[1024] = "";
    for (int i = 0; i < got.n; i++) {
        strcat(joined, got.v[i]);
        strcat(joined, "|");
    }
    cr_assert_str_eq(joined, expect, "prefix '%s' after '%s' limit %zu", prefix, after, limit);
}

Test(store, list_streams_matches_prefix_bytes_exactly)
{
    hs_store_t *st = open_store();
    const char *names[] = {"a",
                           "A",
                           "ab",
                           "abc",
                           "a%",
                           "a%b",
                           "a_",
                           "a_c",
                           "abd",
                           "b",
                           "é1",
                           "é2",
                           "éa",
                           "ê",
                           "x\xff\xff"
                           "1",
                           "x\xff\xff"
                           "2",
                           "y",
                           "z"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        make_stream(st, names[i]);

    list(st, "a", "", 100, "a|a%|a%b|a_|a_c|ab|abc|abd|");
    list(st, "a%", "", 100, "a%|a%b|"); /* '%' is no wildcard */
    list(st, "a_", "", 100, "a_|a_c|"); /* nor is '_' */
    list(st, "A", "", 100, "A|");       /* no case folding */
    list(st, "é", "", 100, "é1|é2|éa|");
    list(st, "x\xff\xff", "", 100,
         "x\xff\xff"
         "1|x\xff\xff"
         "2|");
    list(st, "\xff", "", 100, "");
    list(st, "a", "a_", 100, "a_c|ab|abc|abd|");
    list(st, "a", "0", 100, "a|a%|a%b|a_|a_c|ab|abc|abd|");
    list(st, "a", "b", 100, "");
    list(st, "a", "", 2, "a|a%|");
    list(st, "", "ab", 3, "abc|abd|b|");
    list(st, "", "y", 100, "z|é1|é2|éa|ê|"); /* byte order: 'z' < 0xC3 */
    list(st, "abc", "", 0, "");

    /* Heads come with the names. */
    hs_stream_head_t h;
    cr_assert_eq(hs_store_get_stream(st, "abc", 3, &h), 0);
    h.version = 4;
    h.position = 40;
    h.closed = true;
    cr_assert_eq(hs_store_update_stream(st, &h), 0);
    names_t got = {0};
    cr_assert_eq(hs_store_list_streams(st, "abc", 3, NULL, 0, 10, collect_name, &got), 0);
    cr_assert_eq(got.n, 1);
    cr_assert_eq(got.head[0].id, h.id);
    cr_assert_eq(got.head[0].version, 4);
    cr_assert_eq(got.head[0].position, 40);
    cr_assert(got.head[0].closed);

    memset(&got, 0, sizeof got);
    got.stop_after = 3;
    cr_assert_eq(hs_store_list_streams(st, "", 0, "", 0, 100, collect_name, &got), 7);
    cr_assert_eq(got.n, 3);
    hs_store_close(st);
}

typedef struct counter {
    int n;
    char last[32];
    bool ordered;
} counter_t;

static int count_name(void *ctx, const char *name, size_t len, const hs_stream_head_t *head)
{
    counter_t *c = ctx;
    char cur[32];
    snprintf(cur, sizeof cur, "%.*s", (int)len, name);
    if (c->n && strcmp(c->last, cur) >= 0)
        c->ordered = false;
    strcpy(c->last, cur);
    c->n++;
    return 0;
}

Test(store, list_streams_pages_through_many)
{
    hs_store_t *st = open_store();
    cr_assert_eq(hs_store_begin(st), 0);
    for (int i = 0; i < 2500; i++) {
        char name[32];
        int64_t id;
        snprintf(name, sizeof name, "p-%05d", i);
        cr_assert_eq(hs_store_create_stream(st, name, strlen(name), 1, &id), 0);
    }
    cr_assert_eq(hs_store_commit(st), 0);
    make_stream(st, "q-0");

    counter_t c = {.ordered = true};
    cr_assert_eq(hs_store_list_streams(st, "p-", 2, NULL, 0, 100000, count_name, &c), 0);
    cr_assert_eq(c.n, 2500);
    cr_assert(c.ordered);
    cr_assert_str_eq(c.last, "p-02499");

    c = (counter_t){.ordered = true};
    cr_assert_eq(hs_store_list_streams(st, "", 0, "p-01000", 7, 100000, count_name, &c), 0);
    cr_assert_eq(c.n, 1500, "1499 p- streams after p-01000, and q-0");
    cr_assert(c.ordered);
    cr_assert_str_eq(c.last, "q-0");
    hs_store_close(st);
}

/* ---- two connections ---- */

Test(store, reader_sees_only_committed_rows_while_writer_writes)
{
    hs_store_t *w = open_store();
    hs_store_t *r = open_store();
    int64_t s = make_stream(w, "s"); /* outside begin: committed by itself */
    hs_stream_head_t h;
    cr_assert_eq(hs_store_get_stream(r, "s", 1, &h), 0, "the reader sees a committed stream");

    hs_row_t first[] = {row(s, 1, 1, "a", "T", "{}", NULL), row(s, 2, 2, "b", "T", "{}", NULL)};
    insert(w, first, 2);

    cr_assert_eq(hs_store_begin(w), 0);
    hs_row_t more[] = {row(s, 3, 3, "c", "T", "{}", NULL), row(s, 4, 4, "d", "T", "{}", NULL)};
    cr_assert_eq(hs_store_insert_events(w, more, 2), 0);
    int64_t fresh = 0;
    cr_assert_eq(hs_store_create_stream(w, "fresh", 5, 1, &fresh), 0);
    h = (hs_stream_head_t){.id = s, .version = 4, .position = 4, .updated_us = 4};
    cr_assert_eq(hs_store_update_stream(w, &h), 0);

    /* The writer holds an open write transaction: reads succeed and see the old state. */
    recs_t got = {0};
    read_stream(r, "s", 0, false, 100, &got);
    cr_assert_eq(got.n, 2);
    read_all(r, 0, false, 100, &got);
    cr_assert_eq(got.n, 2);
    cr_assert_eq(hs_store_get_stream(r, "fresh", 5, &h), HS_ENOENT);
    cr_assert_eq(hs_store_get_stream(r, "s", 1, &h), 0);
    cr_assert_eq(h.version, 0);
    cr_assert_eq(max_pos(r), 2);

    /* The reader holds nothing open: the commit goes through and the next read sees it. */
    cr_assert_eq(hs_store_commit(w), 0, "%s", hs_store_error(w));
    read_stream(r, "s", 0, false, 100, &got);
    cr_assert_eq(got.n, 4);
    cr_assert_eq(hs_store_get_stream(r, "fresh", 5, &h), 0);
    cr_assert_eq(max_pos(r), 4);

    recs_free(&got);
    hs_store_close(r);
    hs_store_close(w);
}

/* Streams of a version 2 database get their fold and guid: /eventstreamhub finds them. */
Test(store, version_2_streams_get_their_folds)
{
    hs_store_t *st = open_store();
    int64_t id = make_stream(st, "Orders-EU");
    hs_store_close(st);
    back_to_version_2();
    st = open_store();
    cr_assert_eq(hs_store_migrate(st), 0, "%s", hs_store_error(st));
    hs_stream_head_t h;
    char name[16];
    cr_assert_eq(hs_store_stream_by_fold(st, "orders-eu", 9, &h, name), HS_ENOENT,
                 "no fold before the fill");
    cr_assert_eq(hs_store_fill_folds(st), 0, "%s", hs_store_error(st));
    cr_assert_eq(hs_store_stream_by_fold(st, "orders-eu", 9, &h, name), 0, "%s",
                 hs_store_error(st));
    cr_assert_eq(h.id, id);
    cr_assert_eq(memcmp(name, "Orders-EU", 9), 0);
    char guid[37], want[37];
    cr_assert_eq(raw_sql("SELECT guid FROM hs_streams", guid, sizeof guid), 0);
    hs_uuid_of_name("Orders-EU", 9, want);
    cr_assert_str_eq(guid, want);
    cr_assert_eq(hs_store_fill_folds(st), 0, "filling again finds nothing to do");
    hs_store_close(st);
}

/* The oldest of the streams whose names differ only in case is the one found. */
Test(store, stream_by_fold_finds_the_oldest)
{
    hs_store_t *st = open_store();
    int64_t a = make_stream(st, "jobs");
    make_stream(st, "JOBS");
    make_stream(st, "Jobs2");
    hs_stream_head_t h;
    char name[8];
    cr_assert_eq(hs_store_stream_by_fold(st, "jobs", 4, &h, name), 0, "%s", hs_store_error(st));
    cr_assert_eq(h.id, a);
    cr_assert_eq(memcmp(name, "jobs", 4), 0);
    cr_assert_eq(hs_store_stream_by_fold(st, "job", 3, &h, name), HS_ENOENT);
    hs_store_close(st);
}

/* Subscriber rows: insert, read back, the cursor only moves forward, delete; deleting the
 * stream takes its subscribers with it. */
Test(store, eventstream_subscribers_round_trip)
{
    hs_store_t *st = open_store();
    int64_t s = make_stream(st, "es");
    hs_es_sub_t in = {.stream_id = s, .cur_position = 5, .cur_version = 2, .created_us = 77};
    snprintf(in.id, sizeof in.id, "%s", "0b8e1c7a-0000-4000-8000-000000000001");
    snprintf(in.key, sizeof in.key, "%s", "0b8e1c7a-0000-4000-8000-0000000000ff");
    snprintf(in.conn, sizeof in.conn, "%s", "conn-1");
    cr_assert_eq(hs_store_es_sub_insert(st, &in), 0, "%s", hs_store_error(st));
    hs_es_sub_t out;
    cr_assert_eq(hs_store_es_sub_get(st, in.id, &out), 0, "%s", hs_store_error(st));
    cr_assert_str_eq(out.key, in.key);
    cr_assert_str_eq(out.conn, "conn-1");
    cr_assert_eq(out.stream_id, s);
    cr_assert_eq(out.cur_position, 5);
    cr_assert_eq(out.cur_version, 2);
    cr_assert_eq(out.created_us, 77);
    cr_assert_eq(hs_store_es_sub_cursor(st, in.id, 9, 4), 0);
    cr_assert_eq(hs_store_es_sub_cursor(st, in.id, 7, 3), 0, "an older cursor is no error");
    cr_assert_eq(hs_store_es_sub_attach(st, in.id, ""), 0);
    cr_assert_eq(hs_store_es_sub_get(st, in.id, &out), 0);
    cr_assert_eq(out.cur_position, 9, "the cursor never goes back");
    cr_assert_eq(out.cur_version, 4);
    cr_assert_str_eq(out.conn, "");
    cr_assert_eq(hs_store_es_sub_delete(st, in.id), 0);
    cr_assert_eq(hs_store_es_sub_get(st, in.id, &out), HS_ENOENT);
    cr_assert_eq(hs_store_es_sub_delete(st, in.id), HS_ENOENT);
    cr_assert_eq(hs_store_es_sub_insert(st, &in), 0);
    cr_assert_eq(hs_store_delete_stream(st, s), 0, "%s", hs_store_error(st));
    cr_assert_eq(hs_store_es_sub_get(st, in.id, &out), HS_ENOENT, "gone with its stream");
    hs_store_close(st);
}

/* Where a subscriber resuming after a global position goes on: before the stream's first
 * event past it, or at the head when there is none. */
Test(store, eventstream_resume_point)
{
    hs_store_t *st = open_store();
    int64_t a = make_stream(st, "a"), b = make_stream(st, "b");
    hs_row_t rows[4];
    int64_t sid[4] = {a, b, a, a};
    for (int i = 0; i < 4; i++) {
        static const int64_t ver[4] = {1, 1, 2, 3};
        char *id = malloc(37);
        hs_uuid4(id);
        rows[i] = (hs_row_t){.stream_id = sid[i],
                             .version = ver[i],
                             .position = i + 1,
                             .time_us = 1,
                             .event_id = id,
                             .event_id_len = 36,
                             .type = "t",
                             .type_len = 1,
                             .data = "1",
                             .data_len = 1};
    }
    cr_assert_eq(hs_store_insert_events(st, rows, 4), 0, "%s", hs_store_error(st));
    int64_t v = -1;
    struct {
        int64_t after, want;
    } cases[] = {{0, 0}, {1, 1}, {2, 1}, {3, 2}, {4, 3}, {99, 3}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(hs_store_es_resume(st, a, cases[i].after, 3, &v), 0);
        cr_assert_eq(v, cases[i].want, "after position %lld: version %lld, not %lld",
                     (long long)cases[i].after, (long long)v, (long long)cases[i].want);
    }
    for (int i = 0; i < 4; i++)
        free((char *)rows[i].event_id);
    hs_store_close(st);
}
