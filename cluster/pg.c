/*
 * The PostgreSQL backplane's listener (backplane.h): a libpq connection of its own (psqlODBC runs
 * LISTEN but never delivers a notification), LISTEN hubstream, and every notification's heads
 * handed to the writer. The NOTIFY side is the writer's (storage/dialect_postgres.c: pg_notify
 * inside each batch's transaction, so a notification exists exactly for what committed).
 *
 * The connection is made without blocking (PQconnectStart), so that a stop is never held up by
 * an unreachable server, and with TCP keepalives, so that a server that vanished without a word
 * is noticed. Its application_name is hubstream-listen (what an operator, and the fault tests,
 * see in pg_stat_activity).
 */
#include "cluster/backplane_impl.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "hubstream/hubstream.h"
#include "util/time.h"
#include "util/connstr.h"

#define CONNECT_TIMEOUT_MS 5000

/* ---- the connection string ---- */

/* Appends " key='value'" with libpq's quoting (\\ and \'). */
static int add_kv(char *out, size_t cap, size_t *len, const char *key, const char *val)
{
    int n = snprintf(out + *len, cap - *len, "%s%s='", *len ? " " : "", key);
    if (n < 0 || (size_t)n >= cap - *len)
        return -1;
    *len += (size_t)n;
    for (const char *v = val; *v; v++) {
        if (*len + 3 >= cap)
            return -1;
        if (*v == '\\' || *v == '\'')
            out[(*len)++] = '\\';
        out[(*len)++] = *v;
    }
    if (*len + 2 >= cap)
        return -1;
    out[(*len)++] = '\'';
    out[*len] = '\0';
    return 0;
}

int hs_pg_conninfo(const char *odbc, char *out, size_t cap, char *err, size_t errlen)
{
    static const struct {
        const char *libpq;
        const char *odbc[3];
    } map[] = {
        {"host", {"Server", "Servername", "Host"}}, {"port", {"Port", NULL, NULL}},
        {"dbname", {"Database", NULL, NULL}},       {"user", {"Uid", "UserName", "User"}},
        {"password", {"Pwd", "Password", NULL}},
    };
    size_t len = 0;
    out[0] = '\0';
    if (!odbc || !strchr(odbc, '=')) {
        snprintf(err, errlen,
                 "--backplane postgres needs --db to be a PostgreSQL connection string "
                 "(Driver=PostgreSQL Unicode;Server=...;Port=...;Database=...;Uid=...;Pwd=...), "
                 "or a postgres:// URI as the backplane");
        return -1;
    }
    char val[512];
    bool host = false;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        for (int k = 0; k < 3 && map[i].odbc[k]; k++) {
            if (hs_conn_value(odbc, map[i].odbc[k], val, sizeof val) > 0) {
                if (add_kv(out, cap, &len, map[i].libpq, val)) {
                    snprintf(err, errlen,
                             "--backplane postgres: the connection string is too long");
                    return -1;
                }
                host |= i == 0;
                break;
            }
        }
    }
    if (!host) {
        snprintf(err, errlen,
                 "--backplane postgres: --db names no Server: give a postgres:// URI as the "
                 "backplane instead");
        return -1;
    }
    return 0;
}

/* ---- the listener ---- */

/* Waits for the socket as PQconnectPoll asked; -1 on stop. */
static int wait_sock(hs_backplane_t *b, int fd, bool write, int ms)
{
    struct pollfd p[2] = {{b->wake[0], POLLIN, 0}, {fd, write ? POLLOUT : POLLIN, 0}};
    int n = poll(p, 2, ms);
    if (atomic_load(&b->stopping))
        return -1;
    if (n > 0 && (p[0].revents & POLLIN)) {
        char buf[64];
        while (read(b->wake[0], buf, sizeof buf) > 0)
            ;
    }
    return n > 0 && p[1].revents ? 1 : 0;
}

/* A connection that LISTENs, or NULL (why in *why, a static or the connection's message). */
static PGconn *connect_listen(hs_backplane_t *b, char *why, size_t cap)
{
    char ci[sizeof b->conninfo + 160];
    /* a URI takes no key=value suffix: those go in as its query string */
    bool uri = !strncmp(b->conninfo, "postgres", 8) && strstr(b->conninfo, "://");
    if (uri)
        snprintf(ci, sizeof ci,
                 "%s%sapplication_name=hubstream-listen&keepalives=1&keepalives_idle=10&"
                 "keepalives_interval=5&keepalives_count=3",
                 b->conninfo, strchr(b->conninfo, '?') ? "&" : "?");
    else
        snprintf(ci, sizeof ci,
                 "%s application_name=hubstream-listen keepalives=1 keepalives_idle=10 "
                 "keepalives_interval=5 keepalives_count=3",
                 b->conninfo);
    PGconn *c = PQconnectStart(ci);
    if (!c) {
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    int64_t deadline = hs_mono_us() + (int64_t)CONNECT_TIMEOUT_MS * 1000;
    while (PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        int left = (int)((deadline - hs_mono_us()) / 1000);
        if (left <= 0) {
            snprintf(why, cap, "connecting timed out after %d ms", CONNECT_TIMEOUT_MS);
            PQfinish(c);
            return NULL;
        }
        int r = wait_sock(b, PQsocket(c), st == PGRES_POLLING_WRITING, left);
        if (r < 0) {
            snprintf(why, cap, "stopping");
            PQfinish(c);
            return NULL;
        }
        if (r > 0)
            st = PQconnectPoll(c);
    }
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(why, cap, "%s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    /* LISTEN is one short round trip on a fresh connection: run it blocking */
    PGresult *r = PQexec(c, "LISTEN hubstream");
    bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(why, cap, "LISTEN: %s", PQerrorMessage(c));
    PQclear(r);
    if (!ok || PQsetnonblocking(c, 1) != 0) {
        if (ok)
            snprintf(why, cap, "PQsetnonblocking failed");
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Strips the trailing newline libpq ends its messages with. */
static const char *trim(char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

void *hs_bp_pg_run(void *arg)
{
    hs_backplane_t *b = arg;
    char why[512];
    while (!atomic_load(&b->stopping)) {
        PGconn *c = connect_listen(b, why, sizeof why);
        if (!c) {
            if (atomic_load(&b->stopping) || !hs_bp_retry(b, "postgres", trim(why)))
                break;
            continue;
        }
        hs_bp_up(b, "postgres");
        for (;;) {
            int r = hs_bp_wait(b, PQsocket(c), 1000);
            if (r < 0)
                break;
            if (r == 0)
                continue;
            if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK) {
                snprintf(why, sizeof why, "%s", PQerrorMessage(c));
                break;
            }
            PGnotify *n;
            while ((n = PQnotifies(c))) {
                int64_t pos, seq;
                if (n->extra && hs_backplane_payload(n->extra, strlen(n->extra), &pos, &seq) == 0)
                    hs_writer_remote(b->w, pos, seq);
                else
                    hs_writer_recheck(b->w); /* not ours to parse: read the heads */
                PQfreemem(n);
            }
        }
        PQfinish(c);
        if (atomic_load(&b->stopping) || !hs_bp_retry(b, "postgres", trim(why)))
            break;
    }
    atomic_store(&b->connected, 0);
    return NULL;
}
