/*
 * The SQL Server dialect, through Microsoft's "ODBC Driver 17/18 for SQL Server" (msodbcsql) or
 * FreeTDS (Debian tdsodbc). Chosen when SQLGetInfo(SQL_DBMS_NAME) says "Microsoft SQL Server";
 * there is no file form.
 *
 * Requires SQL Server 2019 or later (or Azure SQL): text is stored in VARCHAR columns with the
 * UTF-8 binary collation Latin1_General_100_BIN2_UTF8, which earlier versions do not have. The
 * database's own default collation must be a UTF-8 one too (session_sql refuses to go on
 * otherwise): the drivers convert a SQL_VARCHAR parameter to the database's default code page
 * (Microsoft documents it for msodbcsql), so under a Latin-1 default every character outside it
 * would silently arrive as '?'. FreeTDS also needs ClientCharset=UTF-8 in the connection string.
 *
 * Nothing here has been run against a live SQL Server; tests/storage/test_dialects.c checks the
 * table's structure (placeholders, limits, result columns, migrations).
 *
 * Choices:
 *   - Text is stored byte for byte: UTF-8 in VARCHAR, whose sizes count bytes. data, metadata
 *     and type are VARCHAR(MAX), like TEXT elsewhere.
 *   - Byte-wise comparison. SQL Server's `=` ignores trailing spaces, in every collation ('a' =
 *     'a '), and stream names and event ids may end in a space. So names and event ids are
 *     compared, ordered and kept unique through a computed VARBINARY copy (name_key,
 *     event_id_key), and parameters are cast to VARBINARY the same way. VARBINARY compares
 *     byte by byte and pads the shorter value with 0x00, which gives memcmp() order for text
 *     without NUL bytes (the server's name and id checks refuse control characters).
 *   - Key sizes. The API caps stream names at 200 bytes and event ids at 100 (proto/codec.h);
 *     the columns take 800 and 400, room to raise those caps without a migration while every
 *     index key stays under SQL Server's limits (900 bytes clustered, 1700 nonclustered):
 *     UNIQUE(name_key) is 800 bytes, UNIQUE(stream_id, event_id_key) 408. Parameters are cast
 *     one byte wider than the column, so that a longer argument, cut short by CAST, still
 *     compares unequal to (and in the same order as) every stored key.
 *   - Times are BIGINT microseconds UTC, like every other dialect; stream ids BIGINT IDENTITY.
 *   - session_sql sets the options that indexes on computed columns require, for every
 *     statement that writes to those tables, whatever a driver's defaults are; ANSI_PADDING
 *     also keeps trailing spaces in VARCHAR, and ANSI_WARNINGS makes a value too long for its
 *     column an error instead of a silent cut.
 *   - Writers in several processes take a transaction-owned application lock first
 *     (sp_getapplock), so batches commit one at a time across the cluster and positions commit
 *     in order; migrations take another one. See APPLOCK for why it is more than one EXEC.
 */
#include "storage/dialect.h"

#include <stddef.h>

#define UTF8_BIN "COLLATE Latin1_General_100_BIN2_UTF8"
/* A text parameter as a byte key, one byte wider than the column it is compared with. */
#define NAME_ARG "CAST(? AS VARBINARY(801))"
#define ID_ARG   "CAST(? AS VARBINARY(401))"

/*
 * A transaction-owned application lock, waited for without a time limit (as
 * pg_advisory_xact_lock waits). Three things make it longer than the EXEC:
 *   - In manual-commit mode msodbcsql runs the session with IMPLICIT_TRANSACTIONS ON, and EXEC
 *     does not open a transaction; sp_getapplock outside one only prints an informational
 *     message and returns -999, and the lock would silently not be taken. A SELECT from a
 *     table opens the transaction first. (FreeTDS opens its transactions explicitly.)
 *   - sp_getapplock reports failure (-1 timeout, -2 cancelled, -3 deadlock victim, -999) by
 *     its return code, not as an error: RAISERROR turns it into one.
 *   - NOCOUNT keeps the SELECT's row count from reaching the driver as a first result, behind
 *     which the error would wait unread; it is switched back off because store.c reads the
 *     row counts of its UPDATEs and DELETEs.
 */
#define APPLOCK(resource)                                                                          \
    "SET NOCOUNT ON;"                                                                              \
    " DECLARE @r INT;"                                                                             \
    " SELECT @r = COUNT(*) FROM hs_meta WHERE [key] = 'schema_version';"                           \
    " EXEC @r = sp_getapplock @Resource = N'" resource "', @LockMode = N'Exclusive',"              \
    " @LockOwner = N'Transaction', @LockTimeout = -1;"                                             \
    " SET NOCOUNT OFF;"                                                                            \
    " IF @r < 0 RAISERROR(N'sp_getapplock(" resource ") returned %d', 16, 1, @r)"

static const char *const session_sql[] = {
    "SET ANSI_NULLS, ANSI_PADDING, ANSI_WARNINGS, ARITHABORT, CONCAT_NULL_YIELDS_NULL,"
    " QUOTED_IDENTIFIER ON",
    "SET NUMERIC_ROUNDABORT OFF",
    "IF CAST(DATABASEPROPERTYEX(DB_NAME(), 'Collation') AS NVARCHAR(128)) NOT LIKE N'%[_]UTF8'"
    " RAISERROR(N'hubstream needs a database whose default collation is a UTF-8 one"
    " (SQL Server 2019+, e.g. CREATE DATABASE ... COLLATE Latin1_General_100_BIN2_UTF8):"
    " text parameters are converted to it', 16, 1)",
    NULL,
};

static const char *const schema_v1[] = {
    "CREATE TABLE hs_streams ("
    " id BIGINT IDENTITY(1, 1) NOT NULL PRIMARY KEY,"
    " name VARCHAR(800) " UTF8_BIN " NOT NULL,"
    " name_key AS CAST(name AS VARBINARY(800)),"
    " version BIGINT NOT NULL,"
    " position BIGINT NOT NULL,"
    " closed INT NOT NULL DEFAULT 0,"
    " created_us BIGINT NOT NULL,"
    " updated_us BIGINT NOT NULL,"
    " UNIQUE (name_key))",
    /* position is assigned by the writer under the batch lock, never by IDENTITY */
    "CREATE TABLE hs_events ("
    " position BIGINT NOT NULL PRIMARY KEY,"
    " stream_id BIGINT NOT NULL,"
    " version BIGINT NOT NULL,"
    " event_id VARCHAR(400) " UTF8_BIN " NOT NULL,"
    " event_id_key AS CAST(event_id AS VARBINARY(400)),"
    " type VARCHAR(MAX) " UTF8_BIN " NOT NULL,"
    " time_us BIGINT NOT NULL,"
    " data VARCHAR(MAX) " UTF8_BIN " NOT NULL,"
    " metadata VARCHAR(MAX) " UTF8_BIN " NULL,"
    " UNIQUE (stream_id, version),"
    " UNIQUE (stream_id, event_id_key))",
    "INSERT INTO hs_meta ([key], value) VALUES ('position_floor', '0')",
    "INSERT INTO hs_meta ([key], value) VALUES ('schema_version', '1')",
    NULL,
};

/* Version 2: the operations log of a cluster (dialect.h: heads_sql). */
static const char *const schema_v2[] = {
    "CREATE TABLE hs_stream_ops ("
    " seq BIGINT NOT NULL PRIMARY KEY,"
    " position BIGINT NOT NULL,"
    " kind INT NOT NULL,"
    " version BIGINT NOT NULL,"
    " time_us BIGINT NOT NULL,"
    " name VARCHAR(800) " UTF8_BIN " NOT NULL)",
    "UPDATE hs_meta SET value = '2' WHERE [key] = 'schema_version'",
    NULL,
};

/* Version 3: /eventstreamhub (dialect.h: stream_by_fold_sql). fold and guid of older rows are
 * filled in by store.c; fold is compared through a byte key like name. */
static const char *const schema_v3[] = {
    "ALTER TABLE hs_streams ADD fold VARCHAR(800) " UTF8_BIN " NULL,"
    " guid VARCHAR(36) " UTF8_BIN " NULL",
    "ALTER TABLE hs_streams ADD fold_key AS CAST(fold AS VARBINARY(800))",
    "CREATE INDEX hs_streams_fold ON hs_streams (fold_key, id)",
    "CREATE INDEX hs_streams_guid ON hs_streams (guid)",
    "CREATE TABLE hs_es_subscribers ("
    " id BIGINT IDENTITY(1, 1) NOT NULL PRIMARY KEY,"
    " subscriber_id VARCHAR(36) " UTF8_BIN " NOT NULL UNIQUE,"
    " subscriber_key VARCHAR(36) " UTF8_BIN " NOT NULL,"
    " stream_id BIGINT NOT NULL,"
    " connection_id VARCHAR(64) " UTF8_BIN " NULL,"
    " cur_position BIGINT NOT NULL,"
    " cur_version BIGINT NOT NULL,"
    " from_position BIGINT NOT NULL DEFAULT 0,"
    " to_position BIGINT NOT NULL DEFAULT 0,"
    " created_us BIGINT NOT NULL)",
    "CREATE INDEX hs_es_subscribers_stream ON hs_es_subscribers (stream_id)",
    "CREATE TABLE hs_es_links ("
    " target_id BIGINT NOT NULL,"
    " source_id BIGINT NOT NULL,"
    " created_us BIGINT NOT NULL,"
    " PRIMARY KEY (target_id, source_id))",
    "CREATE INDEX hs_es_links_source ON hs_es_links (source_id)",
    "INSERT INTO hs_meta ([key], value) VALUES ('links_gen', '0')",
    "UPDATE hs_meta SET value = '3' WHERE [key] = 'schema_version'",
    NULL,
};

static const char *const *const migrations[] = {schema_v1, schema_v2, schema_v3};

/* The retention leader's lock: session-owned (released when the connection closes), not
 * waited for (@LockTimeout = 0). A session that already holds it is granted it again (1):
 * the writer asks only until it has it. NOCOUNT as in APPLOCK, so the one row is the first
 * result the driver sees. */
#define LEADER_LOCK                                                                                \
    "SET NOCOUNT ON;"                                                                              \
    " DECLARE @r INT;"                                                                             \
    " EXEC @r = sp_getapplock @Resource = N'hubstream-retention', @LockMode = N'Exclusive',"       \
    " @LockOwner = N'Session', @LockTimeout = 0;"                                                  \
    " SET NOCOUNT OFF;"                                                                            \
    " SELECT CASE WHEN @r >= 0 THEN 1 ELSE 0 END"

/* KEY is a reserved word in T-SQL: hs_meta's column is always written [key]. */
const hs_dialect_t hs_dialect_mssql = {
    .name = "sqlserver",
    .dbms_prefix = "Microsoft SQL Server",
    .conn_from_path = NULL,
    .process_init = NULL,
    .session_sql = session_sql,
    .batch_lock_sql = APPLOCK("hubstream-batch"),
    .migrate_lock_sql = APPLOCK("hubstream-migrate"),

    .meta_create_sql = "IF OBJECT_ID(N'hs_meta', N'U') IS NULL CREATE TABLE hs_meta ("
                       " [key] VARCHAR(100) " UTF8_BIN " NOT NULL PRIMARY KEY,"
                       " value VARCHAR(MAX) " UTF8_BIN " NOT NULL)",
    .schema_version_sql = "SELECT value FROM hs_meta WHERE [key] = 'schema_version'",
    .migrations = migrations,
    .schema_version = (int)(sizeof migrations / sizeof migrations[0]),

    .get_stream_sql = "SELECT id, version, position, closed, created_us, updated_us"
                      " FROM hs_streams WHERE name_key = " NAME_ARG,
    .create_stream_sql = "INSERT INTO hs_streams"
                         " (name, version, position, closed, created_us, updated_us, fold, guid)"
                         " VALUES (?, 0, 0, 0, ?, ?, ?, ?)",
    .update_stream_sql = "UPDATE hs_streams SET version = ?, position = ?, closed = ?,"
                         " updated_us = ? WHERE id = ?",
    .keep_position_sql =
        "UPDATE hs_meta"
        " SET value = CAST((SELECT position FROM hs_streams WHERE id = ?) AS VARCHAR(20))"
        " WHERE [key] = 'position_floor' AND CAST(value AS BIGINT) <"
        " (SELECT position FROM hs_streams WHERE id = ?)",
    .delete_events_sql = "DELETE FROM hs_events WHERE stream_id = ?",
    .delete_stream_sql = "DELETE FROM hs_streams WHERE id = ?",
    .max_position_sql = "SELECT MAX(p) FROM ("
                        "SELECT MAX(position) AS p FROM hs_events"
                        " UNION ALL SELECT MAX(position) FROM hs_streams"
                        " UNION ALL SELECT CAST(value AS BIGINT) FROM hs_meta"
                        " WHERE [key] = 'position_floor') AS heads",
    .find_event_sql = "SELECT version, position FROM hs_events"
                      " WHERE stream_id = ? AND event_id_key = " ID_ARG,
    .insert_event_sql = "INSERT INTO hs_events"
                        " (position, stream_id, version, time_us, event_id, type, data, metadata)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    .read_stream_fwd_sql = "SELECT e.version, e.position, e.time_us,"
                           " e.event_id, e.type, e.data, e.metadata"
                           " FROM hs_streams s JOIN hs_events e ON e.stream_id = s.id"
                           " WHERE s.name_key = " NAME_ARG " AND e.version > ?"
                           " ORDER BY e.version OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY",
    .read_stream_bwd_sql = "SELECT e.version, e.position, e.time_us,"
                           " e.event_id, e.type, e.data, e.metadata"
                           " FROM hs_streams s JOIN hs_events e ON e.stream_id = s.id"
                           " WHERE s.name_key = " NAME_ARG " AND e.version < ?"
                           " ORDER BY e.version DESC OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY",
    .read_all_fwd_sql = "SELECT e.version, e.position, e.time_us,"
                        " s.name, e.event_id, e.type, e.data, e.metadata"
                        " FROM hs_events e JOIN hs_streams s ON s.id = e.stream_id"
                        " WHERE e.position > ?"
                        " ORDER BY e.position OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY",
    .read_all_bwd_sql = "SELECT e.version, e.position, e.time_us,"
                        " s.name, e.event_id, e.type, e.data, e.metadata"
                        " FROM hs_events e JOIN hs_streams s ON s.id = e.stream_id"
                        " WHERE e.position < ?"
                        " ORDER BY e.position DESC OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY",
    .list_streams_sql = "SELECT id, version, position, closed, created_us, updated_us, name"
                        " FROM hs_streams WHERE name_key >= " NAME_ARG " AND (name_key > " NAME_ARG
                        " OR ? = 1) AND name_key < " NAME_ARG
                        " ORDER BY name_key OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY",
    .list_streams_open_sql =
        "SELECT id, version, position, closed, created_us, updated_us, name"
        " FROM hs_streams WHERE name_key >= " NAME_ARG " AND (name_key > " NAME_ARG " OR ? = 1)"
        " ORDER BY name_key OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY",
    .oldest_event_sql = "SELECT version, time_us FROM hs_events WHERE stream_id = ?"
                        " ORDER BY version OFFSET 0 ROWS FETCH NEXT 1 ROWS ONLY",
    .trim_sql = "DELETE FROM hs_events WHERE stream_id = ? AND version <= ? AND time_us < ?",
    .heads_sql = "SELECT (SELECT MAX(p) FROM ("
                 "SELECT MAX(position) AS p FROM hs_events"
                 " UNION ALL SELECT MAX(position) FROM hs_streams"
                 " UNION ALL SELECT CAST(value AS BIGINT) FROM hs_meta"
                 " WHERE [key] = 'position_floor') AS heads),"
                 " (SELECT MAX(seq) FROM hs_stream_ops)",
    .op_insert_sql = "INSERT INTO hs_stream_ops (seq, position, kind, version, time_us, name)"
                     " VALUES (?, ?, ?, ?, ?, ?)",
    .op_read_sql = "SELECT seq, position, kind, version, time_us, name FROM hs_stream_ops"
                   " WHERE seq > ? AND seq <= ? ORDER BY seq",
    .op_prune_sql = "DELETE FROM hs_stream_ops WHERE time_us < ?",
    .leader_sql = LEADER_LOCK,
    .notify_sql = NULL, /* SQL Server has no LISTEN/NOTIFY: poll or Redis */
    .stream_by_fold_sql = "SELECT id, version, position, closed, created_us, updated_us, name"
                          " FROM hs_streams WHERE fold_key = " NAME_ARG
                          " ORDER BY id OFFSET 0 ROWS FETCH NEXT 1 ROWS ONLY",
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
    .es_links_gen_sql = "SELECT CAST(value AS BIGINT) FROM hs_meta WHERE [key] = 'links_gen'",
    .es_links_bump_sql = "UPDATE hs_meta SET value = CAST(CAST(value AS BIGINT) + 1 AS VARCHAR(20))"
                         " WHERE [key] = 'links_gen'",
    .es_resume_sql = "SELECT MIN(version) FROM hs_events WHERE stream_id = ? AND position > ?",
    .es_stream_by_guid_sql = "SELECT id, version, position, closed, created_us, updated_us, name "
                             "FROM hs_streams WHERE guid = ?",
    .es_stream_by_id_sql = "SELECT id, version, position, closed, created_us, updated_us, name "
                           "FROM hs_streams WHERE id = ?",
    .es_search_streams_sql =
        "SELECT id, version, position, closed, created_us, updated_us, name FROM hs_streams"
        " WHERE (? = '' OR guid = ?) AND fold LIKE ? ESCAPE '!'"
        " AND created_us >= ? AND created_us <= ? AND id > ?"
        " ORDER BY id OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY",
    .es_event_get_sql =
        "SELECT e.version, e.position, e.time_us, s.name, e.event_id, e.type, e.data, e.metadata"
        " FROM hs_events e JOIN hs_streams s ON s.id = e.stream_id"
        " WHERE e.stream_id = ? AND e.event_id_key = " ID_ARG "",
    .es_search_events_sql =
        "SELECT e.version, e.position, e.time_us, s.name, e.event_id, e.type, e.data, e.metadata"
        " FROM hs_events e JOIN hs_streams s ON s.id = e.stream_id"
        " WHERE e.stream_id = ? AND LOWER(e.type) LIKE ? ESCAPE '!'"
        " AND e.time_us >= ? AND e.time_us <= ? AND e.position > ?"
        " ORDER BY e.position OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY",
    .es_sub_show_sql = "SELECT b.id, b.stream_id, b.cur_position, b.from_position, b.to_position,"
                       " b.created_us, s.created_us, b.connection_id, s.name"
                       " FROM hs_es_subscribers b JOIN hs_streams s ON s.id = b.stream_id"
                       " WHERE b.subscriber_id = ?",
};
