/*
 * The server's side of several nodes on one database: which backplane (cluster/backplane.h),
 * the writer's feed settings for it, the checks that refuse a configuration that cannot work,
 * and the claim that keeps a second process off a SQLite file.
 *
 * Refused at creation, with the reason:
 *   - a SQLite file another process (or another server of this one) already serves: SQLite has
 *     one writer, and a second node on it would never see the first one's events;
 *   - --backplane postgres on a database that is not PostgreSQL;
 *   - a backplane (other than none) on SQLite, which serves one node.
 * Said at start (warning): a shared database without a push backplane polls, or (none) does not
 * deliver other nodes' events live.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cluster/backplane.h"
#include "server/server.h"
#include "util/connstr.h"

int hs_cluster_configure(hs_server_t *srv, hs_writer_config_t *wc, char *err, size_t errlen)
{
    hs_bp_kind_t kind;
    if (hs_backplane_kind(srv->cfg.backplane, &kind, err, errlen))
        return HS_EINVAL;
    srv->bp_kind = (int)kind;
    srv->backplane = hs_backplane_create(srv->cfg.backplane, srv->db_str, &srv->log, err, errlen);
    if (!srv->backplane && err[0])
        return HS_EINVAL;
    wc->feed = kind != HS_BP_NONE;
    if (kind == HS_BP_AUTO || kind == HS_BP_POLL) {
        wc->poll_min_ms = HS_BP_POLL_MIN_MS;
        wc->poll_max_ms = HS_BP_POLL_MAX_MS;
    }
    wc->notify = kind == HS_BP_POSTGRES;
    if (kind == HS_BP_REDIS) {
        wc->announce = hs_backplane_announce;
        wc->announce_ctx = srv->backplane;
    }
    return 0;
}

/* The file a SQLite connection string names, or "" (in memory, or not found). */
static void sqlite_path(const char *db, char *out, size_t cap)
{
    out[0] = '\0';
    if (!strchr(db, '='))
        snprintf(out, cap, "%s", db);
    else if (hs_conn_value(db, "Database", out, cap) < 0)
        out[0] = '\0';
    if (!strcmp(out, ":memory:") || !strncmp(out, "file:", 5))
        out[0] = '\0';
}

int hs_cluster_check(hs_server_t *srv, char *err, size_t errlen)
{
    const char *dialect = hs_writer_dialect(srv->writer);
    bool shared = hs_writer_shared(srv->writer);
    hs_bp_kind_t kind = (hs_bp_kind_t)srv->bp_kind;
    if (kind == HS_BP_POSTGRES && strcmp(dialect, "postgresql")) {
        snprintf(err, errlen,
                 "--backplane postgres needs a PostgreSQL database, and --db is %s: use "
                 "redis://HOST:PORT or poll",
                 dialect);
        return HS_EINVAL;
    }
    if (!shared && kind != HS_BP_AUTO && kind != HS_BP_NONE) {
        snprintf(err, errlen,
                 "--backplane %s: the database is %s, which serves one node; several nodes share a "
                 "PostgreSQL or SQL Server database",
                 srv->cfg.backplane, dialect);
        return HS_EINVAL;
    }
    srv->cfg.backplane = NULL; /* the caller's string; the kind and the backplane are kept */
    if (strcmp(dialect, "sqlite"))
        return 0;
    char path[1024];
    sqlite_path(srv->db_str, path, sizeof path);
    if (!path[0])
        return 0;
    /* flock, not fcntl: SQLite's own locks are fcntl ones, and the two do not interact. The lock
     * belongs to this open file description, so a second server in this process is refused too. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "opening %s to claim it: %s", path, strerror(errno));
        return HS_ESYS;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) {
            snprintf(err, errlen,
                     "the SQLite database %s is in use by another hubstream server: SQLite serves "
                     "one node (run several nodes on PostgreSQL or SQL Server, with a backplane)",
                     path);
            return HS_EBUSY;
        }
        snprintf(err, errlen, "locking %s: %s", path, strerror(e));
        return HS_ESYS;
    }
    srv->db_claim = fd;
    return 0;
}

int hs_cluster_start(hs_server_t *srv)
{
    hs_bp_kind_t kind = (hs_bp_kind_t)srv->bp_kind;
    if (hs_writer_shared(srv->writer)) {
        if (kind == HS_BP_AUTO)
            hs_log(&srv->log, HS_LOG_WARN,
                   "no --backplane configured for a shared database: this node polls it for other "
                   "nodes' events (every 2 ms while they flow, backing off to 100 ms when idle), "
                   "so they may reach its subscribers up to 100 ms late; --backplane postgres or "
                   "redis://HOST:PORT delivers them at once",
                   NULL);
        else if (kind == HS_BP_NONE)
            hs_log(&srv->log, HS_LOG_WARN,
                   "--backplane none on a shared database: events other nodes commit reach this "
                   "node's subscribers only when they next catch up (after an event of this node "
                   "on the same stream, or a reconnect), not live",
                   NULL);
    }
    return hs_backplane_start(srv->backplane, srv->writer);
}

void hs_cluster_stop(hs_server_t *srv)
{
    hs_backplane_stop(srv->backplane);
}

void hs_cluster_free(hs_server_t *srv)
{
    hs_backplane_destroy(srv->backplane);
    srv->backplane = NULL;
    if (srv->db_claim >= 0) {
        close(srv->db_claim);
        srv->db_claim = -1;
    }
}
