/* /metrics (see metrics.h). */
#include "server/metrics.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "fanout/fanout.h"
#include "server/auth.h"
#include "server/net/net.h"
#include "server/signalr/hub.h"
#include "storage/writer.h"

typedef struct out {
    hs_buf_t *b;
    int rc;
} out_t;

__attribute__((format(printf, 2, 3))) static void put(out_t *o, const char *fmt, ...)
{
    if (o->rc)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line || hs_buf_put(o->b, line, (size_t)n))
        o->rc = HS_ENOMEM;
}

static void head(out_t *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(out_t *o, const char *name, const char *type, const char *help, double v)
{
    head(o, name, type, help);
    put(o, "%s %.17g\n", name, v);
}

static void hist(out_t *o, const char *name, const char *help, const hs_hist_t *h,
                 const hs_hist_spec_t *spec)
{
    head(o, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < spec->n; i++) {
        cum += hs_ctr_get(&h->bucket[i]);
        put(o, "%s_bucket{le=\"%.6g\"} %llu\n", name, (double)spec->bounds[i] * spec->unit,
            (unsigned long long)cum);
    }
    /* the count is read after the buckets: a scrape racing the writer never shows a +Inf bucket
     * below the finite ones */
    cum += hs_ctr_get(&h->bucket[spec->n]);
    uint64_t count = hs_ctr_get(&h->count);
    if (count < cum)
        count = cum;
    put(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)count);
    put(o, "%s_sum %.17g\n", name, (double)hs_ctr_get(&h->sum) * spec->unit);
    put(o, "%s_count %llu\n", name, (unsigned long long)count);
}

/* The IO threads' counters, summed. */
static void io_metrics(out_t *o, hs_server_t *srv)
{
    static const char *const kinds[HS_MC_N][2] = {
        {"sse", ""},
        {"websockets", "signalr"},
        {"serversentevents", "signalr"},
        {"longpolling", "signalr"},
    };
    static const char *const protos[HS_MP_N] = {"none", "json", "messagepack"};
    int64_t conns[HS_MC_N][HS_MP_N] = {{0}};
    uint64_t delivered[HS_MD_N] = {0}, bytes = 0, pubs[2][HS_MPUB_N] = {{0}};
    for (int i = 0; i < srv->nio; i++) {
        hs_io_metrics_t *m = &srv->io[i]->m;
        for (int k = 0; k < HS_MC_N; k++)
            for (int p = 0; p < HS_MP_N; p++)
                conns[k][p] += hs_gauge_get(&m->conns[k][p]);
        for (int d = 0; d < HS_MD_N; d++)
            delivered[d] += hs_ctr_get(&m->delivered[d]);
        bytes += hs_ctr_get(&m->bytes_out);
        for (int a = 0; a < 2; a++)
            for (int s = 0; s < HS_MPUB_N; s++)
                pubs[a][s] += hs_ctr_get(&m->publishes[a][s]);
    }
    head(o, "hubstream_connections", "gauge",
         "Open subscriber connections: SSE subscriptions, and SignalR connections by transport "
         "and hub protocol.");
    for (int k = 0; k < HS_MC_N; k++)
        for (int p = 0; p < HS_MP_N; p++) {
            if ((k == HS_MC_SSE) != (p == HS_MP_NONE) || (k == HS_MC_HUB_SSE && p == HS_MP_MSGPACK))
                continue;
            put(o, "hubstream_connections{api=\"%s\",transport=\"%s\",protocol=\"%s\"} %lld\n",
                k == HS_MC_SSE ? "sse" : kinds[k][1], kinds[k][0], protos[p],
                (long long)(conns[k][p] > 0 ? conns[k][p] : 0));
        }
    one(o, "hubstream_tcp_connections", "gauge",
        "Open TCP connections of every kind (HTTP requests included).",
        (double)atomic_load(&srv->live_conns));
    head(o, "hubstream_events_delivered_total", "counter",
         "Events written to subscribers, by front end.");
    put(o, "hubstream_events_delivered_total{api=\"sse\"} %llu\n",
        (unsigned long long)delivered[HS_MD_SSE]);
    put(o, "hubstream_events_delivered_total{api=\"signalr\"} %llu\n",
        (unsigned long long)delivered[HS_MD_SIGNALR]);
    one(o, "hubstream_bytes_out_total", "counter",
        "Bytes written to clients' sockets (HTTP answers, SSE, SignalR).", (double)bytes);
    static const char *const codes[HS_MPUB_N] = {"201", "400", "401", "403", "404", "408",
                                                 "409", "410", "413", "429", "503", "other"};
    head(o, "hubstream_publishes_total", "counter",
         "Publishes by outcome: the HTTP API's by its answer's status; SignalR's (those that "
         "reached the writer) by the status their outcome stands for.");
    for (int a = 0; a < 2; a++)
        for (int s = 0; s < HS_MPUB_N; s++)
            if (pubs[a][s] || s == HS_MPUB_201)
                put(o, "hubstream_publishes_total{api=\"%s\",status=\"%s\"} %llu\n",
                    a ? "signalr" : "http", codes[s], (unsigned long long)pubs[a][s]);
}

static void writer_metrics(out_t *o, hs_server_t *srv)
{
    hs_writer_stats_t ws;
    hs_writer_metrics_t wm;
    hs_writer_stats(srv->writer, &ws);
    hs_writer_metrics(srv->writer, &wm);
    one(o, "hubstream_events_appended_total", "counter", "Events committed by this node's writer.",
        (double)ws.events);
    one(o, "hubstream_writer_batches_total", "counter", "Transactions committed by the writer.",
        (double)ws.batches);
    one(o, "hubstream_database_errors_total", "counter",
        "Writer transactions that failed (nothing of them was appended).",
        (double)ws.failed_batches);
    one(o, "hubstream_database_reconnects_total", "counter",
        "Times the writer connected to the database again after losing it.", (double)wm.reconnects);
    one(o, "hubstream_database_up", "gauge", "1 while the writer is connected to the database.",
        ws.db_ok ? 1 : 0);
    one(o, "hubstream_retention_trimmed_events_total", "counter", "Events dropped by retention.",
        (double)ws.trimmed);
    one(o, "hubstream_wal_checkpoints_total", "counter",
        "SQLite: passes of the WAL checkpointer thread (every second and every 256 commits).",
        (double)ws.checkpoints);
    one(o, "hubstream_wal_writer_checkpoints_total", "counter",
        "SQLite: checkpoints the writer ran itself, between batches, because the checkpointer "
        "thread fell behind (each delays the next batch).",
        (double)ws.own_checkpoints);
    one(o, "hubstream_remote_events_total", "counter",
        "Other nodes' events read and fanned out (several nodes on one database).",
        (double)ws.remote_events);
    hist(o, "hubstream_writer_batch_events", "Events per committed transaction.", wm.batch_events,
         &hs_writer_batch_spec);
    hist(o, "hubstream_writer_commit_seconds", "Time from a transaction's start to its commit.",
         wm.commit_us, &hs_writer_commit_spec);
    one(o, "hubstream_ingest_ring_entries", "gauge",
        "Publishes, closes and deletes waiting for the writer in its rings.", (double)wm.ring_used);
    one(o, "hubstream_ingest_ring_capacity", "gauge", "Room of the writer's rings.",
        (double)wm.ring_cap);
}

static void fanout_metrics(out_t *o, hs_server_t *srv)
{
    hs_fanout_metrics_t f;
    hs_fanout_metrics(srv->fanout, &f);
    one(o, "hubstream_subscriptions", "gauge",
        "Subscriptions registered with the fan-out workers (SSE and SignalR).",
        (double)(f.subscriptions > 0 ? f.subscriptions : 0));
    one(o, "hubstream_fanout_queued_batches", "gauge",
        "Committed batches handed to the fan-out workers and not yet delivered into outboxes.",
        (double)f.queued_batches);
    one(o, "hubstream_subscribers_demoted_total", "counter",
        "Live subscriptions sent back to catch-up (their outbox was full).", (double)f.demoted);
    one(o, "hubstream_subscribers_caught_up_total", "counter",
        "Subscriptions that reached live delivery (after their start or a catch-up).",
        (double)f.caught_up);
    one(o, "hubstream_subscribers_stalled_total", "counter",
        "Subscriptions closed because their client read nothing for --stall-timeout-ms.",
        (double)f.stalled);
    one(o, "hubstream_catchup_reads_total", "counter", "Catch-up reads of the database.",
        (double)f.catchup_reads);
    one(o, "hubstream_catchup_events_total", "counter", "Events read back by catch-up reads.",
        (double)f.catchup_rows);
    one(o, "hubstream_catchup_shared_total", "counter",
        "Catch-up steps served by a page another subscription's read brought in (no read of "
        "their own).",
        (double)f.catchup_shared);
}

static void process_metrics(out_t *o, hs_server_t *srv)
{
    hs_hubreg_counts_t hc;
    hs_hubreg_counts(srv, &hc);
    one(o, "hubstream_negotiated_tokens", "gauge",
        "SignalR connection tokens negotiated and not yet claimed by a transport.",
        (double)hc.unclaimed);
    one(o, "hubstream_signalr_registered_connections", "gauge",
        "SignalR connections known by their token (negotiated ones).", (double)hc.registered);
    one(o, "hubstream_signalr_resumes_total", "counter",
        "Stateful reconnects: WebSockets that took over a connection after its socket dropped.",
        (double)hc.resumes);
    one(o, "hubstream_signalr_relayed_resumes_total", "counter",
        "Of those, the ones that reached another IO thread than their connection's (TLS, a "
        "request line that came late) and are relayed to it.",
        (double)hc.relayed);
    long page = sysconf(_SC_PAGESIZE), tick = sysconf(_SC_CLK_TCK);
    unsigned long long size = 0, rss = 0, ut = 0, st = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    f = fopen("/proc/self/stat", "r");
    if (f) {
        /* after the command's closing parenthesis: state is field 3, utime 14, stime 15 */
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        if (!p ||
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
            ut = st = 0;
        fclose(f);
    }
    long fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (struct dirent *e; (e = readdir(d));)
            fds += e->d_name[0] != '.';
        closedir(d);
        fds--; /* the directory's own descriptor */
    }
    struct rlimit rl;
    one(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
        (double)rss * (double)page);
    one(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
        (double)size * (double)page);
    one(o, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.",
        tick > 0 ? (double)(ut + st) / (double)tick : 0);
    one(o, "process_open_fds", "gauge", "Number of open file descriptors.", (double)fds);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        one(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
            (double)rl.rlim_cur);
    one(o, "process_start_time_seconds", "gauge",
        "Start time of the process since the epoch in seconds.",
        (double)srv->started_wall_us / 1e6);
}

int hs_metrics_render(hs_server_t *srv, hs_buf_t *b)
{
    out_t o = {b, 0};
    io_metrics(&o, srv);
    writer_metrics(&o, srv);
    fanout_metrics(&o, srv);
    process_metrics(&o, srv);
    return o.rc;
}

static void route(hs_conn_t *c, const char *path, void *arg)
{
    (void)arg;
    if (c->method != WSI_TOKEN_GET_URI) {
        hs_conn_not_allowed(c, "GET");
        return;
    }
    char why[256];
    int rc = hs_auth_identify(c->io->srv, c->wsi, path, &c->who, why, sizeof why);
    if (rc) {
        if (rc == HS_EFORBIDDEN)
            hs_conn_error(c, 403, "Forbidden", "%s", why);
        else if (rc == HS_ENOMEM)
            hs_conn_error(c, 503, "Unavailable", "out of memory");
        else
            hs_conn_error(c, 401, "Unauthorized", "%s", why);
        return;
    }
    if (!hs_auth_allows(c->io->srv, c->who, HS_ACTION_ADMIN, NULL, 0)) {
        hs_conn_error(c, 403, "Forbidden", "/metrics needs admin permission");
        return;
    }
    hs_buf_t b = {0};
    if (hs_metrics_render(c->io->srv, &b))
        hs_conn_error(c, 503, "Unavailable", "out of memory");
    else
        hs_conn_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", (const char *)b.p,
                        b.len, NULL, NULL);
    hs_buf_free(&b);
}

void hs_metrics_register(hs_server_t *srv)
{
    hs_server_add_route(srv, "/metrics", route, NULL);
}
