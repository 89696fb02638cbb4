/*
 * Backplanes: how the nodes that share one database hear of each other's commits.
 *
 * The database is the log (storage/feed.c); a backplane only carries "positions up to P and
 * stream operations up to S are committed", and the writer reads the rows itself. Nothing
 * depends on one notification arriving: the writer also reads the heads every second behind a
 * push backplane, and a listener that reconnects asks it to read them at once.
 *
 *   none      no cross-node delivery: other nodes' events reach this node's subscribers only
 *             when a gap sends them to catch up (a local event after them, or a reconnect)
 *   poll      the writer reads the heads itself, every 2 ms after a change, backing off to
 *             every 100 ms while nothing changes; any database
 *   postgres  PostgreSQL LISTEN/NOTIFY: each commit carries a NOTIFY (sent by PostgreSQL only
 *             if the transaction commits); a thread LISTENs on a libpq connection of its own,
 *             made from --db's Server, Port, Database, Uid and Pwd, or given as a libpq URI
 *             (postgres://... or postgresql://...)
 *   redis://HOST[:PORT][/CHANNEL]
 *             Redis pub/sub: after each commit the writer leaves the heads for this module's
 *             thread, which PUBLISHes them on one connection and SUBSCRIBEs on another
 *             (the writer never waits for Redis); channel "hubstream" by default (letters,
 *             digits and -_.: only)
 *
 * Not set (NULL): poll on a database that other processes write to (PostgreSQL, SQL Server),
 * nothing on SQLite (one node by construction).
 */
#ifndef HS_BACKPLANE_H
#define HS_BACKPLANE_H

#include <stddef.h>
#include <stdint.h>

#include "storage/writer.h"
#include "util/log.h"

typedef enum hs_bp_kind {
    HS_BP_AUTO = 0, /* not configured */
    HS_BP_NONE,
    HS_BP_POLL,
    HS_BP_POSTGRES,
    HS_BP_REDIS,
} hs_bp_kind_t;

/* The writer's polling for a kind: 2 / 100 ms for auto and poll, 0 / 0 for the others. */
#define HS_BP_POLL_MIN_MS 2
#define HS_BP_POLL_MAX_MS 100

typedef struct hs_backplane hs_backplane_t;

/* The kind a --backplane value names: 0, or HS_EINVAL with the reason in err. */
int hs_backplane_kind(const char *spec, hs_bp_kind_t *kind, char *err, size_t errlen);

/*
 * For postgres and redis: the backplane's settings, checked (a URI, the libpq connection made
 * from db, a Redis address); no connection yet. NULL for the other kinds (*err empty), or on a
 * bad setting (reason in err). The logger is borrowed.
 */
hs_backplane_t *hs_backplane_create(const char *spec, const char *db, const hs_logger_t *log,
                                    char *err, size_t errlen);
/* The writer's hook for redis (hs_writer_config_t.announce, ctx the backplane). */
void hs_backplane_announce(void *ctx, int64_t position, int64_t seq);
/* Starts the thread; notifications go to w. 0 or HS_ESYS. */
int hs_backplane_start(hs_backplane_t *b, hs_writer_t *w);
/* Stops and joins the thread (idempotent); destroy frees. NULL is fine for both. */
void hs_backplane_stop(hs_backplane_t *b);
void hs_backplane_destroy(hs_backplane_t *b);

/* Whether the listener is connected now (for /readyz and tests). */
int hs_backplane_connected(const hs_backplane_t *b);

/* Parses a notification payload "POSITION SEQ" (two decimal integers >= 0): 0, or -1. */
int hs_backplane_payload(const char *s, size_t n, int64_t *position, int64_t *seq);

/* pg.c: the libpq connection string for an ODBC one (Server, Port, Database, Uid, Pwd, any
 * case, braced values allowed), plus the listener's own settings. 0, or -1 with err. */
int hs_pg_conninfo(const char *odbc, char *out, size_t cap, char *err, size_t errlen);

#endif
