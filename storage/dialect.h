/*
 * SQL dialects: everything store.c says to a database that differs from one DBMS to another.
 *
 * A dialect is a constant table of SQL text plus a few hooks. store.c picks one by the driver's
 * SQLGetInfo(SQL_DBMS_NAME) and never branches on the database itself, so adding PostgreSQL or
 * SQL Server means writing a dialect_<dbms>.c with its table and listing it in
 * hs_dialect_find(); store.c does not change. This is not a query builder and not an ORM: the
 * statements are fixed, prepared once per connection, and their parameters and result columns
 * come in the order documented below (store.c binds by position).
 *
 * Rules every dialect must keep, because store.c relies on them:
 *   - Stream names compare byte-wise (binary collation): `=`, `<`, `>` and ORDER BY name sort
 *     as memcmp() would. list_streams depends on it for prefix matching.
 *   - A "limit" parameter is always the last parameter (LIMIT ?, FETCH NEXT ? ROWS ONLY).
 *   - Integer columns come first in every SELECT, text columns after them in the documented
 *     order: store.c binds the integers (SQLBindCol) and reads the text with SQLGetData in
 *     ascending column order, which every driver allows.
 *   - Parameters are bound as SQL_C_SBIGINT (integers) or SQL_C_CHAR (UTF-8 text, with an
 *     explicit length; SQL_VARCHAR, or SQL_LONGVARCHAR above 4000 bytes).
 */
#ifndef HS_DIALECT_H
#define HS_DIALECT_H

#include <stddef.h>

typedef struct hs_dialect {
    const char *name;        /* "sqlite": what hs_store_dialect() reports */
    const char *dbms_prefix; /* matched against the start of SQLGetInfo(SQL_DBMS_NAME) */

    /*
     * Turns a bare file path into a connection string for this dialect's driver; NULL when the
     * dialect has no file form. Returns 0, or -1 when the path cannot be expressed (too long,
     * characters the connection-string syntax cannot carry), with a reason in `why`.
     */
    int (*conn_from_path)(const char *path, char *out, size_t outlen, const char **why);

    /*
     * Process-wide set-up for this dialect's driver, made before the driver's first connection
     * (SQLite: settings of libsqlite3 that only take before the library initialises); NULL when
     * the dialect needs none. store.c runs it once per process (pthread_once), before the
     * first connection it opens. Which dialect a connection speaks is only known once it is
     * connected (SQLGetInfo), and by then a library that initialises on connect can no longer
     * be configured: so the hook runs before every process's first connection, whatever
     * dialect that turns out to be, and must be harmless in a process that never uses it.
     */
    void (*process_init)(void);

    /* Run once right after connecting, in autocommit mode, results discarded; NULL-terminated
     * (may be NULL). */
    const char *const *session_sql;

    /* WAL checkpoints off the writer's thread (storage/checkpoint.c; NULL for a dialect whose
     * server does this itself). checkpoint_sql copies the log into the database without
     * blocking the writer and answers one row: busy, frames in the log, frames copied.
     * no_autocheckpoint_sql stops a connection from checkpointing after its own commits. */
    const char *checkpoint_sql;
    const char *no_autocheckpoint_sql;

    /* Run by hs_store_begin() as the first statement of each writer transaction, to serialise
     * writers across processes (PostgreSQL: pg_advisory_xact_lock). May be NULL. */
    const char *batch_lock_sql;
    /* The same for hs_store_migrate(), so that two servers migrating at once take turns. May be
     * NULL. */
    const char *migrate_lock_sql;

    /*
     * Schema. meta_create_sql creates hs_meta(key, value) if it is missing (it must be a no-op
     * otherwise). schema_version_sql: () -> value (text) of key 'schema_version', no row when
     * the schema is empty. migrations[v] (v = 0 .. schema_version-1) lists the statements,
     * NULL-terminated, that take the schema from version v to v+1; its last statement records
     * version v+1 in hs_meta (store.c checks that it did). Migration 0 also inserts the key
     * 'position_floor' = '0' (see delete_stream below).
     */
    const char *meta_create_sql;
    const char *schema_version_sql;
    const char *const *const *migrations;
    int schema_version; /* the version this build writes: the number of migrations */

    /* (name) -> id, version, position, closed, created_us, updated_us */
    const char *get_stream_sql;
    /* (name, created_us, updated_us, fold, guid): inserts version 0, position 0, not closed,
     * with the name's ASCII fold (hs_ascii_fold) and its UUID (hs_uuid_of_name), which
     * /eventstreamhub looks streams up by. The new id is read back with get_stream_sql. */
    const char *create_stream_sql;
    /* (version, position, closed, updated_us, id); a row count of 0 means the stream is gone */
    const char *update_stream_sql;
    /* Optional: () -> the number of rows the update_stream_sql just run changed, for a driver
     * that reports no row count for the form of update_stream_sql it runs fastest (sqliteodbc
     * keeps a statement compiled only when it starts with SELECT, PRAGMA or WITH, re-parses any
     * other on every execution, and counts no rows for the WITH form: dialect_sqlite.c). NULL:
     * the driver's row count of update_stream_sql is read. */
    const char *update_stream_count_sql;
    /*
     * Deleting a stream: (id, id) raises hs_meta 'position_floor' to the stream's position when
     * that is higher, so that max_position never goes back and the writer never hands out a
     * position again that a subscriber may already have seen; then (stream_id) deletes its
     * events; then (id) deletes its row.
     */
    const char *keep_position_sql;
    const char *delete_events_sql;
    const char *delete_stream_sql;
    /* () -> the highest of MAX(hs_events.position), MAX(hs_streams.position) and
     * 'position_floor' (NULL or no row when all are empty) */
    const char *max_position_sql;
    /* (stream_id, event_id) -> version, position */
    const char *find_event_sql;
    /* (position, stream_id, version, time_us, event_id, type, data, metadata), executed with
     * an array of parameter sets */
    const char *insert_event_sql;
    /* Optional: the head of a multi-row insert ("INSERT INTO hs_events (...) VALUES "), which
     * store.c completes with a fixed number of "(?, ?, ?, ?, ?, ?, ?, ?)" tuples, parameters as
     * insert_event_sql's row after row. For drivers that run a parameter array as one statement
     * per row (psqlODBC): one statement for many rows is parsed and planned once. NULL: arrays
     * only. */
    const char *insert_values_sql;
    /* (name, after, limit) -> version, position, time_us, event_id, type, data, metadata;
     * forward: version > after ascending; backward: version < after descending */
    const char *read_stream_fwd_sql;
    const char *read_stream_bwd_sql;
    /* (after, limit) -> version, position, time_us, stream name, event_id, type, data, metadata;
     * by position, forward (> after, ascending) or backward (< after, descending) */
    const char *read_all_fwd_sql;
    const char *read_all_bwd_sql;
    /*
     * Streams by name, ascending: (lo, lo, lo_inclusive, hi, limit) selects name >= lo, and
     * name > lo unless lo_inclusive is 1, and name < hi; list_streams_open_sql is the same
     * without hi: (lo, lo, lo_inclusive, limit). -> id, version, position, closed, created_us,
     * updated_us, name.
     */
    const char *list_streams_sql;
    const char *list_streams_open_sql;
    /* Retention (retention.h). (stream_id) -> version, time_us of the stream's oldest event (no
     * row when it has none). */
    const char *oldest_event_sql;
    /* (stream_id, upto_version, before_time_us): deletes the stream's events with version <=
     * upto and time_us < before; the row count is read. */
    const char *trim_sql;

    /*
     * Several nodes on one database (storage/feed.c, cluster/). Closes and deletes are logged in
     * hs_stream_ops(seq, position, kind, version, time_us, name): seq is assigned by the writer
     * under the batch lock like positions; position is the last event position committed
     * before the operation, so a node replays an operation right after that event.
     *
     * heads_sql: () -> the highest position (as max_position_sql) and MAX(hs_stream_ops.seq)
     * (NULL when there is none), in one row.
     */
    const char *heads_sql;
    /* (seq, position, kind, version, time_us, name) */
    const char *op_insert_sql;
    /* (after_seq, upto_seq) -> seq, position, kind, version, time_us, name; ascending seq */
    const char *op_read_sql;
    /* (before_time_us): deletes the operations logged before that time */
    const char *op_prune_sql;
    /* () -> 1 when this connection holds the retention leader's lock (taking it when it is
     * free, for as long as the connection lives), else 0. NULL: a database with one writer
     * (SQLite), whose writer always leads. */
    const char *leader_sql;
    /* (payload): a notification to every node listening, sent when the transaction commits
     * (PostgreSQL: pg_notify on channel "hubstream"); NULL when the database has none. */
    const char *notify_sql;

    /*
     * /eventstreamhub (store_es.c; schema version 3). hs_streams has `fold` (the name with ASCII
     * letters lowered) and `guid`; hs_es_subscribers(subscriber_id PK, subscriber_key,
     * stream_id, connection_id, cur_position, cur_version, from_position, to_position,
     * created_us) keeps the drop-in's subscribers and their cursors; hs_es_links(target_id,
     * source_id, created_us) the stream associations.
     *
     * stream_by_fold_sql: (fold) -> id, version, position, closed, created_us, updated_us,
     * name of the oldest stream (lowest id) with that fold, one row at most.
     */
    const char *stream_by_fold_sql;
    /* Schema 3 fills fold and guid of older rows in C: () -> id, name of rows without a fold;
     * (fold, guid, id) sets them. */
    const char *fold_missing_sql;
    const char *fold_set_sql;
    /* (subscriber_id) -> stream_id, cur_position, cur_version, from_position, to_position,
     * created_us, subscriber_key, connection_id */
    const char *es_sub_get_sql;
    /* (subscriber_id, subscriber_key, stream_id, connection_id, cur_position, cur_version,
     * created_us) */
    const char *es_sub_insert_sql;
    /* (connection_id, subscriber_id) */
    const char *es_sub_attach_sql;
    /* (cur_position, cur_version, subscriber_id, cur_position): moves a cursor forward only */
    const char *es_sub_cursor_sql;
    /* (subscriber_id) */
    const char *es_sub_delete_sql;
    /* (from_position, to_position, subscriber_id): the range an admin replay asked for */
    const char *es_sub_range_sql;
    /* (stream_id): a deleted stream's subscribers; (stream_id, stream_id): its links, as
     * target and as source */
    const char *es_sub_delete_stream_sql;
    const char *es_links_delete_stream_sql;
    /* Stream associations: () -> source_id, target_id, the target's name, every link; (target_id,
     * source_id, created_us) adds one. hs_meta 'links_gen' counts changes of the links (() -> it;
     * () adds one), so that a writer of a shared database knows when to read them again. */
    const char *es_links_all_sql;
    const char *es_link_insert_sql;
    const char *es_links_gen_sql;
    const char *es_links_bump_sql;
    /* (stream_id, position) -> MIN(version) of the stream's events after that position (NULL
     * when there is none): where a subscriber resuming after a global position goes on */
    const char *es_resume_sql;
    /*
     * The admin routes under /api/EventStream/. Streams: (guid) and (id) -> id, version,
     * position, closed, created_us, updated_us, name; search (guid, guid, fold_pattern,
     * created_from_us, created_to_us, after_id, limit), the same columns, by id: guid '' matches
     * every stream, fold_pattern is a LIKE pattern with '!' as its escape character.
     * Events: get (stream_id, event_id) and search (stream_id, type_pattern, from_us, to_us,
     * after_position, limit; the type compared ignoring ASCII case) -> version, position,
     * time_us, stream name, event_id, type, data, metadata. A subscriber: (subscriber_id) -> id,
     * stream_id, cur_position, from_position, to_position, created_us, the stream's
     * created_us, connection_id, the stream's name.
     */
    const char *es_stream_by_guid_sql;
    const char *es_stream_by_id_sql;
    const char *es_search_streams_sql;
    const char *es_event_get_sql;
    const char *es_search_events_sql;
    const char *es_sub_show_sql;
} hs_dialect_t;

extern const hs_dialect_t hs_dialect_sqlite;
extern const hs_dialect_t hs_dialect_postgres;
extern const hs_dialect_t hs_dialect_mssql;

/* Every dialect this build knows, NULL-terminated (for hs_dialect_find and the tests). */
const hs_dialect_t *const *hs_dialects(void);

/* The dialect whose dbms_prefix starts dbms_name (SQLGetInfo SQL_DBMS_NAME), or NULL. */
const hs_dialect_t *hs_dialect_find(const char *dbms_name);

/* The dialect a bare file path (a connection "string" without '=') stands for: SQLite. */
const hs_dialect_t *hs_dialect_for_path(void);

#endif
