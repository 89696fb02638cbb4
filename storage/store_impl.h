/*
 * The store's private state and helpers, shared by store.c (connection, schema, transactions,
 * streams, inserts) and store_read.c (reads and listings). Not an interface: store.h is.
 */
#ifndef HS_STORE_IMPL_H
#define HS_STORE_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/dialect.h"
#include "storage/odbc.h"
#include "storage/store.h"

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
    Q_UPDATE_STREAM_COUNT,
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
    Q_HEADS,
    Q_OP_INSERT,
    Q_OP_READ,
    Q_OP_PRUNE,
    Q_LEADER,
    Q_NOTIFY,
    Q_STREAM_BY_FOLD,
    Q_FOLD_MISSING,
    Q_FOLD_SET,
    Q_ES_SUB_GET,
    Q_ES_SUB_INSERT,
    Q_ES_SUB_ATTACH,
    Q_ES_SUB_CURSOR,
    Q_ES_SUB_DELETE,
    Q_ES_SUB_RANGE,
    Q_ES_SUB_DELETE_STREAM,
    Q_ES_LINKS_DELETE_STREAM,
    Q_ES_LINKS_ALL,
    Q_ES_LINK_INSERT,
    Q_ES_LINKS_GEN,
    Q_ES_LINKS_BUMP,
    Q_ES_RESUME,
    Q_ES_STREAM_BY_GUID,
    Q_ES_STREAM_BY_ID,
    Q_ES_SEARCH_STREAMS,
    Q_ES_EVENT_GET,
    Q_ES_SEARCH_EVENTS,
    Q_ES_SUB_SHOW,
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
    [Q_UPDATE_STREAM_COUNT] = {offsetof(hs_dialect_t, update_stream_count_sql), 1,
                               "update stream (row count)"},
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
    [Q_HEADS] = {offsetof(hs_dialect_t, heads_sql), 2, "read heads"},
    [Q_OP_INSERT] = {offsetof(hs_dialect_t, op_insert_sql), 0, "log stream operation"},
    [Q_OP_READ] = {offsetof(hs_dialect_t, op_read_sql), 5, "read stream operations"},
    [Q_OP_PRUNE] = {offsetof(hs_dialect_t, op_prune_sql), 0, "prune stream operations"},
    [Q_LEADER] = {offsetof(hs_dialect_t, leader_sql), 1, "leader lock"},
    [Q_NOTIFY] = {offsetof(hs_dialect_t, notify_sql), 0, "notify"},
    [Q_STREAM_BY_FOLD] = {offsetof(hs_dialect_t, stream_by_fold_sql), 6, "stream by fold"},
    [Q_FOLD_MISSING] = {offsetof(hs_dialect_t, fold_missing_sql), 1, "streams without a fold"},
    [Q_FOLD_SET] = {offsetof(hs_dialect_t, fold_set_sql), 0, "set a stream's fold"},
    [Q_ES_SUB_GET] = {offsetof(hs_dialect_t, es_sub_get_sql), 6, "get subscriber"},
    [Q_ES_SUB_INSERT] = {offsetof(hs_dialect_t, es_sub_insert_sql), 0, "insert subscriber"},
    [Q_ES_SUB_ATTACH] = {offsetof(hs_dialect_t, es_sub_attach_sql), 0, "attach subscriber"},
    [Q_ES_SUB_CURSOR] = {offsetof(hs_dialect_t, es_sub_cursor_sql), 0, "move subscriber cursor"},
    [Q_ES_SUB_DELETE] = {offsetof(hs_dialect_t, es_sub_delete_sql), 0, "delete subscriber"},
    [Q_ES_SUB_RANGE] = {offsetof(hs_dialect_t, es_sub_range_sql), 0, "set a replay's range"},
    [Q_ES_SUB_DELETE_STREAM] = {offsetof(hs_dialect_t, es_sub_delete_stream_sql), 0,
                                "delete a stream's subscribers"},
    [Q_ES_LINKS_DELETE_STREAM] = {offsetof(hs_dialect_t, es_links_delete_stream_sql), 0,
                                  "delete a stream's links"},
    [Q_ES_LINKS_ALL] = {offsetof(hs_dialect_t, es_links_all_sql), 2, "read links"},
    [Q_ES_LINK_INSERT] = {offsetof(hs_dialect_t, es_link_insert_sql), 0, "add a link"},
    [Q_ES_LINKS_GEN] = {offsetof(hs_dialect_t, es_links_gen_sql), 1, "links generation"},
    [Q_ES_LINKS_BUMP] = {offsetof(hs_dialect_t, es_links_bump_sql), 0, "count a links change"},
    [Q_ES_RESUME] = {offsetof(hs_dialect_t, es_resume_sql), 1, "resume point"},
    [Q_ES_STREAM_BY_GUID] = {offsetof(hs_dialect_t, es_stream_by_guid_sql), 6, "stream by GUID"},
    [Q_ES_STREAM_BY_ID] = {offsetof(hs_dialect_t, es_stream_by_id_sql), 6, "stream by id"},
    [Q_ES_SEARCH_STREAMS] = {offsetof(hs_dialect_t, es_search_streams_sql), 6, "search streams"},
    [Q_ES_EVENT_GET] = {offsetof(hs_dialect_t, es_event_get_sql), 3, "get event"},
    [Q_ES_SEARCH_EVENTS] = {offsetof(hs_dialect_t, es_search_events_sql), 3, "search events"},
    [Q_ES_SUB_SHOW] = {offsetof(hs_dialect_t, es_sub_show_sql), 7, "show subscriber"},
    [Q_READ_STREAM_BLOCK] = {offsetof(hs_dialect_t, read_stream_fwd_sql), 0, "read stream"},
    [Q_READ_ALL_BLOCK] = {offsetof(hs_dialect_t, read_all_fwd_sql), 0, "read all"},
};

#define INT_COLS 8

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
    hs_odbc_bound_t bound; /* what the insert statement's parameters are bound to */
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
    hs_par_t upd[5]; /* update_stream's parameters, bound once (upd_bound) */
    bool upd_bound;
};

/* Records an error in the connection's buffer and returns code (HS_EDB for dbfail, with the
 * driver's diagnostics of h). */
int hs_st_fail(hs_store_t *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int hs_st_dbfail(hs_store_t *st, SQLSMALLINT type, SQLHANDLE h, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int hs_st_nomem(hs_store_t *st);
int hs_st_prep(hs_store_t *st, int q, SQLHSTMT *out);
int hs_st_run(hs_store_t *st, int q, hs_par_t *p, int n, SQLHSTMT *hp, SQLLEN *changed);
int hs_st_fetch(hs_store_t *st, SQLHSTMT h, int q);
int hs_st_text_col(hs_store_t *st, SQLHSTMT h, SQLUSMALLINT col, hs_odbc_text_t *t, const char **s,
                   size_t *len);
int64_t hs_st_ival(const hs_store_t *st, int i);
void hs_st_head_from_cols(const hs_store_t *st, hs_stream_head_t *out);
int hs_st_finish(hs_store_t *st, int rc);
bool hs_st_bad_text(const char *s, size_t len);

#endif
