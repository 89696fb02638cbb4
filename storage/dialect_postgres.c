/*
 * The PostgreSQL dialect, through psqlODBC (Debian odbc-postgresql; odbcinst.ini names
 * "PostgreSQL Unicode" and "PostgreSQL ANSI"). Chosen when SQLGetInfo(SQL_DBMS_NAME) says
 * "PostgreSQL"; there is no file form.
 *
 * Choices:
 *   - Stream names are TEXT COLLATE "C": byte-wise comparison and order, which list_streams and
 *     every lookup by name rely on, whatever the database's default collation.
 *   - data and metadata are TEXT, not JSONB: JSONB re-prints values (key order, number
 *     spelling, white space) and hubstream returns events byte for byte as published.
 *   - Times are integer microseconds (BIGINT, UTC by definition), like every other dialect, so
 *     that no driver or session time zone is involved.
 *   - Writers in several processes take a transaction-scoped advisory lock first
 *     (pg_advisory_xact_lock), so batches commit one at a time across the cluster and positions
 *     commit in order; migrations take another one.
 */
#include "storage/dialect.h"

#include <stddef.h>

/* Advisory lock keys: arbitrary, fixed, 'hs' + a number. */
#define BATCH_LOCK   "SELECT pg_advisory_xact_lock(6873001)"
#define MIGRATE_LOCK "SELECT pg_advisory_xact_lock(6873002)"
/* Session-level: held by the retention leader's connection until it closes. Taking it again
 * while held would stack a second hold, so the writer asks only until it has it. */
#define LEADER_LOCK "SELECT CASE WHEN pg_try_advisory_lock(6873003) THEN 1 ELSE 0 END"

static const char *const session_sql[] = {
    "SET client_encoding TO 'UTF8'",
    NULL,
};

static const char *const schema_v1[] = {
    "CREATE TABLE hs_streams ("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " name TEXT COLLATE \"C\" NOT NULL UNIQUE,"
    " version BIGINT NOT NULL,"
    " position BIGINT NOT NULL,"
    " closed INTEGER NOT NULL DEFAULT 0,"
    " created_us BIGINT NOT NULL,"
    " updated_us BIGINT NOT NULL)",
    /* position is assigned by the writer under the batch lock, never by a sequence */
    "CREATE TABLE hs_events ("
    " position BIGINT PRIMARY KEY,"
    " stream_id BIGINT NOT NULL,"
    " version BIGINT NOT NULL,"
    " event_id TEXT COLLATE \"C\" NOT NULL,"
    " type TEXT NOT NULL,"
    " time_us BIGINT NOT NULL,"
    " data TEXT NOT NULL,"
    " metadata TEXT,"
    " UNIQUE (stream_id, version),"
    " UNIQUE (stream_id, event_id))",
    "INSERT INTO hs_meta (key, value) VALUES ('position_floor', '0')",
    "INSERT INTO hs_meta (key, value) VALUES ('schema_version', '1')",
    NULL,
};

/* Version 2: the operations log of a cluster (dialect.h: heads_sql). */
static const char *const schema_v2[] = {
    "CREATE TABLE hs_stream_ops ("
    " seq BIGINT PRIMARY KEY,"
    " position BIGINT NOT NULL,"
    " kind INTEGER NOT NULL,"
    " version BIGINT NOT NULL,"
    " time_us BIGINT NOT NULL,"
    " name TEXT COLLATE \"C\" NOT NULL)",
    "UPDATE hs_meta SET value = '2' WHERE key = 'schema_version'",
    NULL,
};

/* Version 3: /eventstreamhub (dialect.h: stream_by_fold_sql). fold and guid of older rows are
 * filled in by store.c. */
static const char *const schema_v3[] = {
    "ALTER TABLE hs_streams ADD COLUMN fold TEXT COLLATE \"C\"",
    "ALTER TABLE hs_streams ADD COLUMN guid TEXT COLLATE \"C\"",
    "CREATE INDEX hs_streams_fold ON hs_streams (fold, id)",
    "CREATE INDEX hs_streams_guid ON hs_streams (guid)",
    "CREATE TABLE hs_es_subscribers ("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " subscriber_id TEXT COLLATE \"C\" NOT NULL UNIQUE,"
    " subscriber_key TEXT COLLATE \"C\" NOT NULL,"
    " stream_id BIGINT NOT NULL,"
    " connection_id TEXT,"
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
    "INSERT INTO hs_meta (key, value) VALUES ('links_gen', '0')",
    "UPDATE hs_meta SET value = '3' WHERE key = 'schema_version'",
    NULL,
};

static const char *const *const migrations[] = {schema_v1, schema_v2, schema_v3};

const hs_dialect_t hs_dialect_postgres = {
    .name = "postgresql",
    .dbms_prefix = "PostgreSQL",
    .conn_from_path = NULL,
    .process_init = NULL,
    .session_sql = session_sql,
    .batch_lock_sql = BATCH_LOCK,
    .migrate_lock_sql = MIGRATE_LOCK,

    .meta_create_sql = "CREATE TABLE IF NOT EXISTS hs_meta ("
                       " key TEXT COLLATE \"C\" PRIMARY KEY, value TEXT NOT NULL)",
    .schema_version_sql = "SELECT value FROM hs_meta WHERE key = 'schema_version'",
    .migrations = migrations,
    .schema_version = (int)(sizeof migrations / sizeof migrations[0]),

    .get_stream_sql = "SELECT id, version, position, closed, created_us, updated_us"
                      " FROM hs_streams WHERE name = ?",
    .create_stream_sql = "INSERT INTO hs_streams"
                         " (name, version, position, closed, created_us, updated_us, fold, guid)"
                         " VALUES (?, 0, 0, 0, ?, ?, ?, ?)",
    .update_stream_sql = "UPDATE hs_streams SET version = ?, position = ?, closed = ?,"
                         " updated_us = ? WHERE id = ?",
    .keep_position_sql = "UPDATE hs_meta"
                         " SET value = CAST((SELECT position FROM hs_streams WHERE id = ?) AS TEXT)"
                         " WHERE key = 'position_floor' AND CAST(value AS BIGINT) <"
                         " (SELECT position FROM hs_streams WHERE id = ?)",
    .delete_events_sql = "DELETE FROM hs_events WHERE stream_id = ?",
    .delete_stream_sql = "DELETE FROM hs_streams WHERE id = ?",
    .max_position_sql = "SELECT MAX(p) FROM ("
                        "SELECT MAX(position) AS p FROM hs_events"
                        " UNION ALL SELECT MAX(position) FROM hs_streams"
                        " UNION ALL SELECT CAST(value AS BIGINT) FROM hs_meta"
                        " WHERE key = 'position_floor') AS heads",
    .find_event_sql = "SELECT version, position FROM hs_events"
                      " WHERE stream_id = ? AND event_id = ?",
    .insert_event_sql = "INSERT INTO hs_events"
                        " (position, stream_id, version, time_us, event_id, type, data, metadata)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    /* psqlODBC sends a parameter array as one INSERT per row (13.02) */
    .insert_values_sql = "INSERT INTO hs_events"
                         " (position, stream_id, version, time_us, event_id, type, data, metadata)"
                         " VALUES ",
    .read_stream_fwd_sql = "SELECT e.version, e.position, e.time_us,"
                           " e.event_id, e.type, e.data, e.metadata"
                           " FROM hs_streams s JOIN hs_events e ON e.stream_id = s.id"
                           " WHERE s.name = ? AND e.version > ? ORDER BY e.version LIMIT ?",
    .read_stream_bwd_sql = "SELECT e.version, e.position, e.time_us,"
                           " e.event_id, e.type, e.data, e.metadata"
                           " FROM hs_streams s JOIN hs_events e ON e.stream_id = s.id"
                           " WHERE s.name = ? AND e.version < ? ORDER BY e.version DESC LIMIT ?",
    .read_all_fwd_sql = "SELECT e.version, e.position, e.time_us,"
                        " s.name, e.event_id, e.type, e.data, e.metadata"
                        " FROM hs_events e JOIN hs_streams s ON s.id = e.stream_id"
                        " WHERE e.position > ? ORDER BY e.position LIMIT ?",
    .read_all_bwd_sql = "SELECT e.version, e.position, e.time_us,"
                        " s.name, e.event_id, e.type, e.data, e.metadata"
                        " FROM hs_events e JOIN hs_streams s ON s.id = e.stream_id"
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
                 " UNION ALL SELECT CAST(value AS BIGINT) FROM hs_meta"
                 " WHERE key = 'position_floor') AS heads), (SELECT MAX(seq) FROM hs_stream_ops)",
    .op_insert_sql = "INSERT INTO hs_stream_ops (seq, position, kind, version, time_us, name)"
                     " VALUES (?, ?, ?, ?, ?, ?)",
    .op_read_sql = "SELECT seq, position, kind, version, time_us, name FROM hs_stream_ops"
                   " WHERE seq > ? AND seq <= ? ORDER BY seq",
    .op_prune_sql = "DELETE FROM hs_stream_ops WHERE time_us < ?",
    .leader_sql = LEADER_LOCK,
    /* delivered by PostgreSQL at COMMIT, and only if the transaction commits */
    .notify_sql = "SELECT pg_notify('hubstream', ?)",
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
    .es_links_gen_sql = "SELECT CAST(value AS BIGINT) FROM hs_meta WHERE key = 'links_gen'",
    .es_links_bump_sql = "UPDATE hs_meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT)"
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
        " WHERE e.stream_id = ? AND LOWER(e.type) LIKE ? ESCAPE '!'"
        " AND e.time_us >= ? AND e.time_us <= ? AND e.position > ?"
        " ORDER BY e.position LIMIT ?",
    .es_sub_show_sql = "SELECT b.id, b.stream_id, b.cur_position, b.from_position, b.to_position,"
                       " b.created_us, s.created_us, b.connection_id, s.name"
                       " FROM hs_es_subscribers b JOIN hs_streams s ON s.id = b.stream_id"
                       " WHERE b.subscriber_id = ?",
};
