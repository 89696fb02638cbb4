/*
 * The store: hubstream's one way into a database, over ODBC.
 *
 * A hs_store_t is one ODBC connection plus its prepared statements and the SQL dialect the driver
 * turned out to speak (SQLGetInfo SQL_DBMS_NAME picks it; see dialect.h). It is not thread-safe:
 * the writer thread owns one, each reader thread owns another. It knows nothing of batching,
 * expected versions or fan-out: that is writer.c's job. It is not a cache either: every call goes
 * to the database.
 *
 * Schema (created and versioned by hs_store_migrate()):
 *   hs_meta(key, value)                             schema_version
 *   hs_streams(id, name UNIQUE, version, position, closed, created_us, updated_us)
 *   hs_events(position PK, stream_id, version, event_id, type, time_us, data, metadata)
 *     UNIQUE(stream_id, version), UNIQUE(stream_id, event_id)
 * `data` and `metadata` are compact JSON text; metadata is NULL when absent.
 */
#ifndef HS_STORE_H
#define HS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hs_store hs_store_t;

/* A stream's row. */
typedef struct hs_stream_head {
    int64_t id;       /* internal row id */
    int64_t version;  /* last version, 0 for a stream with no event left */
    int64_t position; /* position of its last event */
    bool closed;
    int64_t created_us, updated_us; /* UTC microseconds since the epoch */
} hs_stream_head_t;

/* One event row to insert. Strings are borrowed; metadata may be NULL (SQL NULL). */
typedef struct hs_row {
    int64_t stream_id, version, position, time_us;
    const char *event_id;
    size_t event_id_len;
    const char *type;
    size_t type_len;
    const char *data;
    size_t data_len;
    const char *metadata;
    size_t metadata_len;
} hs_row_t;

/* One event as read back. Strings are valid only during the callback; they are not
 * NUL-terminated (use the lengths). metadata is NULL when absent. */
typedef struct hs_record {
    const char *stream;
    size_t stream_len;
    int64_t version, position, time_us;
    const char *event_id;
    size_t event_id_len;
    const char *type;
    size_t type_len;
    const char *data;
    size_t data_len;
    const char *metadata;
    size_t metadata_len;
} hs_record_t;

/* Record callback of the read functions: return 0 to go on, non-zero to stop early (that value
 * is then returned by the read function). */
typedef int (*hs_record_cb)(void *ctx, const hs_record_t *rec);

/* Stream callback of hs_store_list_streams(); same convention. */
typedef int (*hs_stream_cb)(void *ctx, const char *name, size_t name_len,
                            const hs_stream_head_t *head);

/*
 * Opens a connection. `conn` is an ODBC connection string ("Driver=SQLite3;Database=x.db",
 * "DSN=name") or a bare file path (no '='), which means SQLite3 with that file. Applies the
 * dialect's session settings (SQLite: WAL, synchronous=NORMAL, busy timeout). On failure returns
 * NULL and writes the driver's diagnostic into err.
 */
hs_store_t *hs_store_open(const char *conn, char *err, size_t errlen);
void hs_store_close(hs_store_t *st);

/* The dialect's name ("sqlite", ...). */
const char *hs_store_dialect(const hs_store_t *st);

/* Whether other processes may write to the same database between two of this connection's
 * transactions (the dialect serialises writers with a lock in hs_store_begin()): a writer must
 * then re-read what it caches (positions, stream heads) inside each transaction. */
bool hs_store_shared(const hs_store_t *st);

/* The last diagnostic of this connection ("" if none); valid until the next call. */
const char *hs_store_error(const hs_store_t *st);

/* Creates the schema if missing and migrates older versions. Idempotent; safe to call from
 * several connections one after another. */
int hs_store_migrate(hs_store_t *st);

/* Transactions (the connection is in manual-commit mode). */
int hs_store_begin(hs_store_t *st);
int hs_store_commit(hs_store_t *st);
int hs_store_rollback(hs_store_t *st);

/* The stream row by name: 0, or HS_ENOENT when there is no such stream. */
int hs_store_get_stream(hs_store_t *st, const char *name, size_t len, hs_stream_head_t *out);

/* Inserts a stream row with version 0 and sets *id. */
int hs_store_create_stream(hs_store_t *st, const char *name, size_t len, int64_t now_us,
                           int64_t *id);

/* Writes a stream row's version, position, closed flag and updated time. */
int hs_store_update_stream(hs_store_t *st, const hs_stream_head_t *head);

/* Deletes a stream row and all its events. */
int hs_store_delete_stream(hs_store_t *st, int64_t stream_id);

/* Highest position in hs_events and in hs_streams.position (0 when empty): the next position the
 * writer assigns is that plus one. */
int hs_store_max_position(hs_store_t *st, int64_t *pos);

/* Looks up an event by client id within a stream: 0 with its version and position, or
 * HS_ENOENT. */
int hs_store_find_event(hs_store_t *st, int64_t stream_id, const char *event_id, size_t len,
                        int64_t *version, int64_t *position);

/* Retention: the version and commit time of a stream's oldest event, or HS_ENOENT when it has
 * none left. */
int hs_store_oldest_event(hs_store_t *st, int64_t stream_id, int64_t *version, int64_t *time_us);

/* Retention: deletes the stream's events with version <= upto_version and time_us < before_us
 * (INT64_MAX: any age); *deleted (may be NULL) receives how many. */
int hs_store_trim(hs_store_t *st, int64_t stream_id, int64_t upto_version, int64_t before_us,
                  int64_t *deleted);

/* Inserts n rows with array-bound parameters (SQL_ATTR_PARAMSET_SIZE), in as few executions as
 * the rows' sizes allow. Inside the caller's transaction. */
int hs_store_insert_events(hs_store_t *st, const hs_row_t *rows, size_t n);

/*
 * Reads a stream's events. Forward: version > after, ascending. Backward: version < after
 * (after <= 0 means from the newest), descending. At most `limit` records. Returns the
 * callback's non-zero value if it stopped, else 0 (HS_ENOENT is never returned: an unknown
 * stream simply has no record).
 */
int hs_store_read_stream(hs_store_t *st, const char *name, size_t len, int64_t after, bool backward,
                         size_t limit, hs_record_cb cb, void *ctx);

/* The same over every stream by position ($all). */
int hs_store_read_all(hs_store_t *st, int64_t after, bool backward, size_t limit, hs_record_cb cb,
                      void *ctx);

/* Streams whose name starts with prefix (may be empty) and sorts after `after` (may be empty),
 * ascending by name, at most limit. */
int hs_store_list_streams(hs_store_t *st, const char *prefix, size_t prefix_len, const char *after,
                          size_t after_len, size_t limit, hs_stream_cb cb, void *ctx);

/* ---- several nodes on one database (dialect.h: heads_sql) ---- */

/* A close or delete as logged for the other nodes. name is valid during the callback only. */
typedef struct hs_stream_op {
    int64_t seq, position, version, time_us;
    int kind; /* HS_OP_CLOSE or HS_OP_DELETE */
    const char *name;
    size_t name_len;
} hs_stream_op_t;
enum { HS_OP_CLOSE = 1, HS_OP_DELETE = 2 };
typedef int (*hs_op_cb)(void *ctx, const hs_stream_op_t *op);

/* The highest position (as hs_store_max_position) and the highest operation seq (0: none). */
int hs_store_heads(hs_store_t *st, int64_t *pos, int64_t *seq);
/* Logs an operation; inside the writer's transaction. */
int hs_store_log_op(hs_store_t *st, const hs_stream_op_t *op);
/* Operations with after < seq <= upto, ascending; the callback convention of the reads. */
int hs_store_read_ops(hs_store_t *st, int64_t after, int64_t upto, hs_op_cb cb, void *ctx);
/* Forgets operations logged before before_us. */
int hs_store_prune_ops(hs_store_t *st, int64_t before_us);
/* Whether this connection leads the retention sweeps: 1 yes, 0 another connection does, <0 an
 * error. Always 1 on a database with one writer. */
int hs_store_lead(hs_store_t *st);
/* Whether the database carries notifications (hs_store_notify). */
bool hs_store_can_notify(const hs_store_t *st);
/* Queues a notification to the listening nodes, sent when the current transaction commits. */
int hs_store_notify(hs_store_t *st, const char *payload, size_t len);

/* ---- /eventstreamhub (store_es.c) ---- */

/* The longest stream name a column holds (the API allows 200 bytes). */
#define HS_STORE_NAME_MAX 800

/* Gives streams created before schema version 3 their fold and guid (idempotent; the writer
 * runs it after hs_store_migrate). */
int hs_store_fill_folds(hs_store_t *st);

/* The oldest stream whose name equals fold ignoring ASCII case (fold: hs_ascii_fold of it): 0
 * with its head and its name copied into name (len bytes: the same as fold's), or HS_ENOENT. */
int hs_store_stream_by_fold(hs_store_t *st, const char *fold, size_t len, hs_stream_head_t *head,
                            char *name);

/* A subscriber of /eventstreamhub: ids and key are lower-case GUIDs; cur_* is the last event
 * it was sent (its cursor); from/to the range an admin replay asked for. */
typedef struct hs_es_sub {
    char id[37], key[37], conn[64];
    int64_t stream_id, cur_position, cur_version, from_position, to_position, created_us;
} hs_es_sub_t;

/* 0 with the row, or HS_ENOENT. */
int hs_store_es_sub_get(hs_store_t *st, const char *id, hs_es_sub_t *out);
int hs_store_es_sub_insert(hs_store_t *st, const hs_es_sub_t *sub);
/* Records the connection a subscriber is served on now ("" when none). */
int hs_store_es_sub_attach(hs_store_t *st, const char *id, const char *conn);
/* Moves a subscriber's cursor forward (never back). */
int hs_store_es_sub_cursor(hs_store_t *st, const char *id, int64_t position, int64_t version);
/* 0, or HS_ENOENT when there was no such row. */
int hs_store_es_sub_delete(hs_store_t *st, const char *id);
/* How many subscriber rows there are (every dialect: one COUNT). */
int hs_store_es_sub_count(hs_store_t *st, int64_t *n);
/* The version a subscriber of a stream resuming after global position `after` goes on after:
 * the version before the stream's first event past that position, or the stream's `head`
 * version when it has none. */
int hs_store_es_resume(hs_store_t *st, int64_t stream_id, int64_t after, int64_t head,
                       int64_t *version);

/* The admin routes' reads (store_es.c). A stream by its GUID or its id: 0 with its head and
 * name (NUL-terminated, name_cap >= HS_STORE_NAME_MAX + 1), or HS_ENOENT. */
int hs_store_es_stream_by_guid(hs_store_t *st, const char *guid, hs_stream_head_t *head, char *name,
                               size_t name_cap);
int hs_store_es_stream_by_id(hs_store_t *st, int64_t id, hs_stream_head_t *head, char *name,
                             size_t name_cap);
/* Streams by id after after_id: guid "" for any, name_part (may be empty) contained in the name
 * ignoring ASCII case, created within [from_us, to_us]; at most limit (<= 1000). */
int hs_store_es_search_streams(hs_store_t *st, const char *guid, const char *name_part,
                               size_t part_len, int64_t from_us, int64_t to_us, int64_t after_id,
                               size_t limit, hs_stream_cb cb, void *ctx);
/* One event of a stream (by the stream's id) by its event id: the callback's value, 0 when it
 * ran, or HS_ENOENT. */
int hs_store_es_event(hs_store_t *st, int64_t stream_id, const char *event_id, size_t len,
                      hs_record_cb cb, void *ctx);
/* Events of a stream after position after_pos whose type contains type_part ignoring ASCII case,
 * committed within [from_us, to_us], by position; at most limit (<= 1000). */
int hs_store_es_search_events(hs_store_t *st, int64_t stream_id, const char *type_part,
                              size_t part_len, int64_t from_us, int64_t to_us, int64_t after_pos,
                              size_t limit, hs_record_cb cb, void *ctx);
/* A subscriber as the admin route shows it. */
typedef struct hs_es_sub_info {
    int64_t id, stream_id, cur_position, from_position, to_position, created_us;
    int64_t stream_created_us;
    char conn[64];
    char stream[HS_STORE_NAME_MAX + 1];
    size_t stream_len;
} hs_es_sub_info_t;
int hs_store_es_sub_show(hs_store_t *st, const char *sub_id, hs_es_sub_info_t *out);
/* Stream associations: every link (source_id, target_id, the target's name, valid during the
 * callback), adding one, and the count of changes (deleting a stream counts as one). */
typedef int (*hs_link_cb)(void *ctx, int64_t source_id, int64_t target_id, const char *target,
                          size_t target_len);
int hs_store_es_links(hs_store_t *st, hs_link_cb cb, void *ctx);
int hs_store_es_link_add(hs_store_t *st, int64_t target_id, int64_t source_id, int64_t now_us);
int hs_store_es_links_gen(hs_store_t *st, int64_t *gen);

/* Records the range of an admin replay (LastAccessedFrom/ToEventId). */
int hs_store_es_sub_range(hs_store_t *st, const char *sub_id, int64_t from, int64_t to);

/* Runs a trivial query (the schema version) in its own transaction: 0 when the connection
 * still works. A writer or reader whose statement failed asks this to tell a lost connection
 * (reconnect) from a failed statement (keep the connection). */
int hs_store_ping(hs_store_t *st);

/* WAL checkpoints off the writer's thread (storage/checkpoint.c). Whether the dialect has them
 * (SQLite); hs_store_defer_checkpoints() stops this connection from checkpointing after its own
 * commits (someone else must then call hs_store_checkpoint()); hs_store_checkpoint() copies
 * what it can of the log into the database without waiting for the writer or readers, and says
 * how many frames the log holds and how many of them are now copied (HS_EBUSY when another
 * connection's checkpoint was running: nothing done). Both run outside a transaction (HS_EINVAL
 * inside one); HS_EINVAL for a dialect without them. */
bool hs_store_can_checkpoint(const hs_store_t *st);
int hs_store_defer_checkpoints(hs_store_t *st);
int hs_store_checkpoint(hs_store_t *st, int64_t *log_frames, int64_t *copied_frames);

/*
 * Test-only fault injection, process-wide (every store, every thread): from now on, count the
 * ODBC calls that can fail at run time (connect, prepare, execute, fetch, get data, row count,
 * commit) and make the nth one fail with SQLSTATE HY000 "injected fault". Flags:
 *   HS_FAULT_STICKY  every call after the nth fails too (the database is gone), until the next
 *                    hs_store_fault();
 *   HS_FAULT_AFTER   the nth call still runs, and only its answer is lost (a COMMIT that took
 *                    effect on a connection that then died);
 *   HS_FAULT_COUNT   count even when nth is 0, to learn how many calls a workload makes.
 * hs_store_fault(0, 0) turns it off. Costs one relaxed atomic load per call when off.
 */
enum { HS_FAULT_STICKY = 1, HS_FAULT_AFTER = 2, HS_FAULT_COUNT = 4 };
void hs_store_fault(long nth, int flags);
/* Calls counted since the last hs_store_fault(). */
long hs_store_fault_calls(void);

#endif
