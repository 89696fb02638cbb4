/*
 * The SQLite dialect: hubstream's default database, through the SQLite3 ODBC driver
 * (libsqlite3odbc.so, Debian package libsqliteodbc; its odbcinst.ini name is "SQLite3" — the
 * "SQLite" entry is the SQLite 2 driver and does not work).
 *
 * Only SQL text and the hooks (bare paths, process-wide tuning) live here; how statements are run
 * is store.c's business.
 *
 * Facts about the driver that shaped this table (sqliteodbc 0.9998):
 *   - The connection string is split at ';' and has no quoting, and the Database value is
 *     copied into a 512-byte buffer (silently cut): conn_from_path refuses what it cannot say.
 *   - Timeout= is the busy timeout in milliseconds (default 100 s). The driver installs its own
 *     busy handler and retries SQLITE_BUSY itself up to that time, so PRAGMA busy_timeout
 *     would not shorten it: it has to come through the connection string.
 *   - In manual-commit mode the driver issues BEGIN (deferred) before the first statement of a
 *     transaction, so PRAGMA journal_mode, which cannot run inside a transaction, is part of
 *     session_sql (run in autocommit mode) as well as of the connection string.
 */
#include "storage/dialect.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* The driver copies Database= into char[SQL_MAX_MESSAGE_LENGTH] (512). */
#define DB_PATH_MAX 511

static int conn_from_path(const char *path, char *out, size_t outlen, const char **why)
{
    size_t len = strlen(path);

    if (len == 0) {
        *why = "empty database path";
        return -1;
    }
    if (len > DB_PATH_MAX) {
        *why = "database path longer than the SQLite3 ODBC driver accepts (511 bytes)";
        return -1;
    }
    /* ';' ends a connection-string value and the driver has no quoting; a leading '{' would be
     * taken for ODBC brace quoting by the driver manager. */
    if (strchr(path, ';') || path[0] == '{') {
        *why = "database path contains ';' or starts with '{', which an ODBC connection "
               "string cannot carry";
        return -1;
    }
    /* SyncPragma/JournalMode repeat session_sql, so that the very first statement the driver
     * runs on a new file already uses WAL; Timeout is the busy timeout (see above). */
    int n =
        snprintf(out, outlen,
                 "Driver=SQLite3;Database=%s;Timeout=5000;SyncPragma=NORMAL;JournalMode=WAL", path);
    if (n < 0 || (size_t)n >= outlen) {
        *why = "database path too long";
        return -1;
    }
    return 0;
}

/*
 * SQLite keeps memory statistics by default, under one process-wide mutex taken on every
 * allocation: two reader threads replaying from SQLite then serialise on it (measured: a
 * catch-up read ahead on a second reader got slower, not faster). hubstream has no use for the
 * statistics, so before the first connection it turns them off in the libsqlite3 that the
 * SQLite ODBC driver will load (the same library by soname). Process-wide: an embedding
 * program's own SQLite then reports no memory statistics (sqlite3_memory_used() and the soft
 * heap limit). Nothing happens if libsqlite3 is absent or already initialised.
 */
static void process_init(void)
{
    void *lib = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return;
    int (*config)(int, ...) = (int (*)(int, ...))dlsym(lib, "sqlite3_config");
    if (config)
        config(9 /* SQLITE_CONFIG_MEMSTATUS */, 0);
    /* the library stays loaded: the setting lives in it */
}

/*
 * WAL lets readers go on while the writer holds its transaction, and readers never block the
 * writer. synchronous=NORMAL in WAL mode syncs at checkpoints, not at every commit: a committed
 * batch survives a crash of the process (it is in the WAL file, in the OS's hands), and the
 * database is never corrupted, but a power loss or OS crash may lose the last commits. That is
 * the durability hubstream promises; FULL would cost an fsync per batch.
 *
 * The log file keeps the largest size it ever reached (SQLite writes over it from the start once
 * a checkpoint copied it all): after a burst (a reader holding an old snapshot, a checkpoint
 * that could not keep up) that would be disk space held for good. journal_size_limit has the
 * connection that starts the log over cut the file back to 64 MiB.
 */
#define HS_SQLITE_WAL_LIMIT "67108864"
static const char *const session_sql[] = {
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA journal_size_limit=" HS_SQLITE_WAL_LIMIT,
    NULL,
};

static const char *const schema_v1[] = {
    /* name compares byte-wise (BINARY is SQLite's default; spelled out because list_streams
     * and every lookup by name depend on it). */
    "CREATE TABLE hs_streams ("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL COLLATE BINARY UNIQUE,"
    " version INTEGER NOT NULL,"
    " position INTEGER NOT NULL,"
    " closed INTEGER NOT NULL DEFAULT 0,"
    " created_us INTEGER NOT NULL,"
    " updated_us INTEGER NOT NULL)",
    /* position is the rowid, assigned by the writer (never AUTOINCREMENT). */
    "CREATE TABLE hs_events ("
    " position INTEGER PRIMARY KEY,"
    " stream_id INTEGER NOT NULL,"
    " version INTEGER NOT NULL,"
    " event_id TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " time_us INTEGER NOT NULL,"
    " data TEXT NOT NULL,"
    " metadata TEXT,"
    " UNIQUE (stream_id, version),"
    " UNIQUE (stream_id, event_id))",
    "INSERT INTO hs_meta (key, value) VALUES ('position_floor', '0')",
    "INSERT INTO hs_meta (key, value) VALUES ('schema_version', '1')",
    NULL,
};

/* Version 2: the operations log of a cluster (dialect.h: heads_sql). SQLite serves one node,
 * but every dialect keeps one schema. */
static const char *const schema_v2[] = {
    "CREATE TABLE hs_stream_ops ("
    " seq INTEGER PRIMARY KEY,"
    " position INTEGER NOT NULL,"
    " kind INTEGER NOT NULL,"
    " version INTEGER NOT NULL,"
    " time_us INTEGER NOT NULL,"
    " name TEXT NOT NULL)",
    "UPDATE hs_meta SET value = '2' WHERE key = 'schema_version'",
    NULL,
};

/* Version 3: /eventstreamhub (dialect.h: stream_by_fold_sql). fold and guid of older rows are
 * filled in by store.c. */
static const char *const schema_v3[] = {
    "ALTER TABLE hs_streams ADD COLUMN fold TEXT COLLATE BINARY",
    "ALTER TABLE hs_streams ADD COLUMN guid TEXT",
    "CREATE INDEX hs_streams_fold ON hs_streams (fold, id)",
    "CREATE INDEX hs_streams_guid ON hs_streams (guid)",
    "CREATE TABLE hs_es_subscribers ("
    " id INTEGER PRIMARY KEY,"
    " subscriber_id TEXT NOT NULL UNIQUE,"
    " subscriber_key TEXT NOT NULL,"
    " stream_id INTEGER NOT NULL,"
    " connection_id TEXT,"
    " cur_position INTEGER NOT NULL,"
    " cur_version INTEGER NOT NULL,"
    " from_position INTEGER NOT NULL DEFAULT 0,"
    " to_position INTEGER NOT NULL DEFAULT 0,"
    " created_us INTEGER NOT NULL)",
    "CREATE INDEX hs_es_subscribers_stream ON hs_es_subscribers (stream_id)",
    "CREATE TABLE hs_es_links ("
    " target_id INTEGER NOT NULL,"
    " source_id INTEGER NOT NULL,"
    " created_us INTEGER NOT NULL,"
    " PRIMARY KEY (target_id, source_id))",
    "CREATE INDEX hs_es_links_source ON hs_es_links (source_id)",
    "INSERT INTO hs_meta (key, value) VALUES ('links_gen', '0')",
    "UPDATE hs_meta SET value = '3' WHERE key = 'schema_version'",
    NULL,
};

static const char *const *const migrations[] = {schema_v1, schema_v2, schema_v3};

/* The joins name hs_streams by its unique name index (read_stream) or walk hs_events by
 * position and look each stream up by id (read_all); CROSS JOIN pins that loop order in
 * SQLite's planner, so a read never sorts. */
const hs_dialect_t hs_dialect_sqlite = {
    .name = "sqlite",
    .dbms_prefix = "SQLite",
    .conn_from_path = conn_from_path,
    .process_init = process_init,
    .session_sql = session_sql,
    .checkpoint_sql = "PRAGMA wal_checkpoint(PASSIVE)",
    .no_autocheckpoint_sql = "PRAGMA wal_autocheckpoint=0",
    .batch_lock_sql = NULL, /* SQLite has one writer at a time by construction */
    .migrate_lock_sql = NULL,

    .meta_create_sql = "CREATE TABLE IF NOT EXISTS hs_meta ("
                       " key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    .schema_version_sql = "SELECT value FROM hs_meta WHERE key = 'schema_version'",
    .migrations = migrations,
    .schema_version = (int)(sizeof migrations / sizeof migrations[0]),

    .get_stream_sql = "SELECT id, version, position, closed, created_us, updated_us"
                      " FROM hs_streams WHERE name = ?",
    .create_stream_sql = "INSERT INTO hs_streams"
                         " (name, version, position, closed, created_us, updated_us, fold, guid)"
                         " VALUES (?, 0, 0, 0, ?, ?, ?, ?)",
    /* Run once per batch for every stream it appended to. The WITH form is compiled once per
     * connection, like the insert below (the re-parse of the plain UPDATE was 12% of the
     * writer's CPU per one-event commit); it reports no row count, so the count is asked for
     * with changes(), a statement compiled once as well. (RETURNING id would say it in one
     * statement, but SQLite collects RETURNING rows in a temporary b-tree it opens and zeroes
     * on every execution, which costs about as much as the parse it saves.) */
    .update_stream_sql = "WITH hs_update AS (SELECT 1) UPDATE hs_streams SET version = ?,"
                         " position = ?, closed = ?, updated_us = ? WHERE id = ?",
    .update_stream_count_sql = "SELECT changes()",
    .keep_position_sql = "UPDATE hs_meta"
                         " SET value = CAST((SELECT position FROM hs_streams WHERE id = ?) AS TEXT)"
                         " WHERE key = 'position_floor' AND CAST(value AS INTEGER) <"
                         " (SELECT position FROM hs_streams WHERE id = ?)",
    .delete_events_sql = "DELETE FROM hs_events WHERE stream_id = ?",
    .delete_stream_sql = "DELETE FROM hs_streams WHERE id = ?",
    .max_position_sql = "SELECT MAX(p) FROM ("
                        "SELECT MAX(position) AS p FROM hs_events"
                        " UNION ALL SELECT MAX(position) FROM hs_streams"
                        " UNION ALL SELECT CAST(value AS INTEGER) FROM hs_meta"
                        " WHERE key = 'position_floor')",
    .find_event_sql = "SELECT version, position FROM hs_events"
                      " WHERE stream_id = ? AND event_id = ?",
    /* The unused CTE is deliberate: sqliteodbc keeps a compiled sqlite3_stmt only for
     * statements that start with SELECT, PRAGMA or WITH, and re-parses anything else for every
     * row of a parameter array. Written this way the insert is compiled once per connection,
     * which doubles array-insert throughput (measured: 65k -> 127k rows/s). Row counts are not
     * reported for such statements, which the insert does not need (update/delete do). */
    .insert_event_sql = "WITH hs_insert AS (SELECT 1) INSERT INTO hs_events"
                        " (position, stream_id, version, time_us, event_id, type, data, metadata)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    .read_stream_fwd_sql = "SELECT e.version, e.position, e.time_us,"
                           " e.event_id, e.type, e.data, e.metadata"
                           " FROM hs_streams s CROSS JOIN hs_events e ON e.stream_id = s.id"
                           " WHERE s.name = ? AND e.version > ? ORDER BY e.version LIMIT ?",
    .read_stream_bwd_sql = "SELECT e.version, e.position, e.time_us,"
                           " e.event_id, e.type, e.data, e.metadata"
                           " FROM hs_streams s CROSS JOIN hs_events e ON e.stream_id = s.id"
                           " WHERE s.name = ? AND e.version < ? ORDER BY e.version DESC LIMIT ?",
    .read_all_fwd_sql = "SELECT e.version, e.position, e.time_us,"
                        " s.name, e.event_id, e.type, e.data, e.metadata"
                        " FROM hs_events e CROSS JOIN hs_streams s ON s.id = e.stream_id"
                        " WHERE e.position > ? ORDER BY e.position LIMIT ?",
    .read_all_bwd_sql = "SELECT e.version, e.position, e.time_us,"
                        " s.name, e.event_id, e.type, e.data, e.metadata"
                        " FROM hs_events e CROSS JOIN hs_streams s ON s.id = e.stream_id"
                        " WHERE e.position < ? ORDER BY e.position DESC LIMIT ?",
    .list_streams_sql = "SELECT id, version, position, closed, created_us, updated_us, name"
                        " FROM hs_streams WHERE name >= ? AND (name > ? OR ? = 1) AND name < ?"
                        " ORDER BY name LIMIT ?",
    .list_streams_open_sql = "SELECT id, version, position, closed, created_us, updated_us, name"
                             " FROM hs_streams WHERE name >= ? AND (name > ? OR ? = 1)"
                             " ORDER BY name LIMIT ?",
    .oldest_event_sql = "SELECT version, time_us FROM hs_events WHERE stream_id = ?"
                        " ORDER BY version LIMIT 1",
    .trim_sql = "DELETE FROM hs_events WHERE stream_id = ? AND version <= ? AND time_us < ?",
    .heads_sql = "SELECT (SELECT MAX(p) FROM ("
                 "SELECT MAX(position) AS p FROM hs_events"
                 " UNION ALL SELECT MAX(position) FROM hs_streams"
                 " UNION ALL SELECT CAST(value AS INTEGER) FROM hs_meta"
                 " WHERE key = 'position_floor')), (SELECT MAX(seq) FROM hs_stream_ops)",
    .op_insert_sql = "INSERT INTO hs_stream_ops (seq, position, kind, version, time_us, name)"
                     " VALUES (?, ?, ?, ?, ?, ?)",
    .op_read_sql = "SELECT seq, position, kind, version, time_us, name FROM hs_stream_ops"
                   " WHERE seq > ? AND seq <= ? ORDER BY seq",
    .op_prune_sql = "DELETE FROM hs_stream_ops WHERE time_us < ?",
    .leader_sql = NULL,
    .notify_sql = NULL,
    .stream_by_fold_sql = "SELECT id, version, position, closed, created_us, updated_us, name"
                          " FROM hs_streams WHERE fold = ? ORDER BY id LIMIT 1",
    .fold_missing_sql = "SELECT id, name FROM hs_streams WHERE fold IS NULL",
    .fold_set_sql = "UPDATE hs_streams SET fold = ?, guid = ? WHERE id = ?",
    .es_sub_get_sql = "SELECT stream_id, cur_position, cur_version, from_position, to_position,"
                      " created_us, subscriber_key, connection_id FROM hs_es_subscribers"
                      " WHERE subscriber_id = ?",
    .es_sub_insert_sql = "INSERT INTO hs_es_subscribers (subscriber_id, subscriber_key, stream_id,"
                         " connection_id, cur_position, cur_version, created_us)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)",
    .es_sub_attach_sql = "UPDATE hs_es_subscribers SET connection_id = ? WHERE subscriber_id = ?",
    .es_sub_cursor_sql = "UPDATE hs_es_subscribers SET cur_position = ?, cur_version = ?"
                         " WHERE subscriber_id = ? AND cur_position < ?",
    .es_sub_delete_sql = "DELETE FROM hs_es_subscribers WHERE subscriber_id = ?",
    .es_sub_range_sql = "UPDATE hs_es_subscribers SET from_position = ?, to_position = ?"
                        " WHERE subscriber_id = ?",
    .es_sub_delete_stream_sql = "DELETE FROM hs_es_subscribers WHERE stream_id = ?",
    .es_links_delete_stream_sql = "DELETE FROM hs_es_links WHERE target_id = ? OR source_id = ?",
    .es_links_all_sql =
        "SELECT l.source_id, l.target_id, t.name FROM hs_es_links l"
        " JOIN hs_streams t ON t.id = l.target_id ORDER BY l.source_id, l.created_us",
    .es_link_insert_sql =
        "INSERT INTO hs_es_links (target_id, source_id, created_us) VALUES (?, ?, ?)",
    .es_links_gen_sql = "SELECT CAST(value AS INTEGER) FROM hs_meta WHERE key = 'links_gen'",
    .es_links_bump_sql = "UPDATE hs_meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
                         " WHERE key = 'links_gen'",
    .es_resume_sql = "SELECT MIN(version) FROM hs_events WHERE stream_id = ? AND position > ?",
    .es_stream_by_guid_sql = "SELECT id, version, position, closed, created_us, updated_us, name "
                             "FROM hs_streams WHERE guid = ?",
    .es_stream_by_id_sql = "SELECT id, version, position, closed, created_us, updated_us, name "
                           "FROM hs_streams WHERE id = ?",
    .es_search_streams_sql =
        "SELECT id, version, position, closed, created_us, updated_us, name FROM hs_streams"
        " WHERE (? = '' OR guid = ?) AND fold LIKE ? ESCAPE '!'"
        " AND created_us >= ? AND created_us <= ? AND id > ?"
        " ORDER BY id LIMIT ?",
    .es_event_get_sql =
        "SELECT e.version, e.position, e.time_us, s.name, e.event_id, e.type, e.data, e.metadata"
        " FROM hs_events e JOIN hs_streams s ON s.id = e.stream_id"
        " WHERE e.stream_id = ? AND e.event_id = ?",
    .es_search_events_sql =
        "SELECT e.version, e.position, e.time_us, s.name, e.event_id, e.type, e.data, e.metadata"
        " FROM hs_events e JOIN hs_streams s ON s.id = e.stream_id"
        " WHERE e.stream_id = ? AND e.type LIKE ? ESCAPE '!'"
        " AND e.time_us >= ? AND e.time_us <= ? AND e.position > ?"
        " ORDER BY e.position LIMIT ?",
    .es_sub_show_sql = "SELECT b.id, b.stream_id, b.cur_position, b.from_position, b.to_position,"
                       " b.created_us, s.created_us, b.connection_id, s.name"
                       " FROM hs_es_subscribers b JOIN hs_streams s ON s.id = b.stream_id"
                       " WHERE b.subscriber_id = ?",
};
