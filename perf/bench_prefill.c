/*
 * bench_prefill: writes N events onto one stream of a new database, for the catch-up benchmark
 * (perf/run.sh runs it, then starts build/perf/hubstream on that database and replays the
 * stream with `bench_fanout --catchup`). Measures nothing that is reported as a result; it
 * prints its own rate only as a sanity check.
 *
 * The events go through the library's own write path: an in-process server
 * (hs_server_create/hs_server_start on 127.0.0.1:0, no client connects) and
 * hs_server_publish() from K threads in batches of B events with HS_ANY_VERSION, so the rows,
 * the stream row and the positions are exactly what a running server would have stored. Every
 * publish must be acknowledged with B consecutive versions, and the stream's last version must
 * be N: anything else exits 1. Event data: 128-byte JSON objects {"seq":n,"pad":"xx..."}, type
 * "bench.catchup", no metadata, server-generated ids.
 *
 * --db is a SQLite file path that must not exist yet (the server creates it), or an ODBC
 * connection string whose database must not hold the stream yet.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/clock.h"
#include "hubstream/hubstream.h"

#define DATA_BYTES 128
#define EVENT_TYPE "bench.catchup"

static struct {
    const char *db;
    const char *stream;
    long events;
    int threads;
    int batch;
} op = {NULL, "catchup", 1000000, 2, 1000};

static atomic_long next_seq; /* events handed out to the threads so far */
static atomic_long acked;    /* events acknowledged */
static atomic_llong max_version;
static atomic_int failed;

static hs_server_t *srv;

/* A JSON object of exactly DATA_BYTES bytes that carries seq; out has DATA_BYTES + 1 bytes. */
static void make_data(char *out, long seq)
{
    int n = snprintf(out, DATA_BYTES + 1, "{\"seq\":%ld,\"pad\":\"", seq);
    memset(out + n, 'x', (size_t)(DATA_BYTES - 2 - n));
    out[DATA_BYTES - 2] = '"';
    out[DATA_BYTES - 1] = '}';
    out[DATA_BYTES] = '\0';
}

static void *publisher(void *arg)
{
    (void)arg;
    hs_event_t *ev = calloc((size_t)op.batch, sizeof(*ev));
    char *data = malloc((size_t)op.batch * (DATA_BYTES + 1));
    if (!ev || !data) {
        atomic_store(&failed, 1);
        goto out;
    }
    while (!atomic_load(&failed)) {
        long first = atomic_fetch_add(&next_seq, op.batch);
        if (first >= op.events)
            break;
        long m = op.events - first < op.batch ? op.events - first : op.batch;
        for (long i = 0; i < m; i++) {
            char *d = data + i * (DATA_BYTES + 1);
            make_data(d, first + i + 1);
            ev[i] = (hs_event_t){.type = EVENT_TYPE, .data = d};
        }
        hs_publish_result_t res;
        int rc = hs_server_publish(srv, op.stream, ev, (size_t)m, HS_ANY_VERSION, &res);
        if (rc) {
            fprintf(stderr, "bench_prefill: publish failed: %s\n", hs_strerror(rc));
            atomic_store(&failed, 1);
            break;
        }
        if (res.last_version - res.first_version + 1 != m) {
            fprintf(stderr, "bench_prefill: a publish of %ld events got versions %lld..%lld\n", m,
                    (long long)res.first_version, (long long)res.last_version);
            atomic_store(&failed, 1);
            break;
        }
        atomic_fetch_add(&acked, m);
        long long v = atomic_load(&max_version);
        while (res.last_version > v &&
               !atomic_compare_exchange_weak(&max_version, &v, (long long)res.last_version))
            ;
    }
out:
    free(ev);
    free(data);
    return NULL;
}

static void log_quiet(void *ctx, hs_log_level_t level, const char *message, const char *fields)
{
    (void)ctx;
    if (level >= HS_LOG_WARN)
        fprintf(stderr, "hubstream: %s %s\n", message, fields);
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: bench_prefill --db PATH|CONN [--events N] [--stream NAME] [--threads K]"
               " [--batch B]\n"
               "  --db PATH|CONN  a new SQLite file (must not exist), or a connection string\n"
               "  --events N      events to write, default 1000000\n"
               "  --stream NAME   the stream, default \"catchup\"\n"
               "  --threads K     publishing threads, default 2\n"
               "  --batch B       events per hs_server_publish call, default 1000\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"db", required_argument, NULL, 'd'},
        {"events", required_argument, NULL, 'n'},
        {"stream", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, 'k'},
        {"batch", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            op.db = optarg;
            break;
        case 'n':
            op.events = bench_parse_long(optarg, "--events", 1);
            break;
        case 's':
            op.stream = optarg;
            break;
        case 'k':
            op.threads = (int)bench_parse_long(optarg, "--threads", 1);
            if (op.threads > 64) {
                fprintf(stderr, "bench_prefill: --threads is at most 64\n");
                return 2;
            }
            break;
        case 'b':
            op.batch = (int)bench_parse_long(optarg, "--batch", 1);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || !op.db) {
        usage(stderr);
        return 2;
    }
    struct stat st;
    if (!strchr(op.db, '=') && stat(op.db, &st) == 0) {
        fprintf(stderr, "bench_prefill: %s exists; give a new file\n", op.db);
        return 2;
    }

    hs_config_t cfg;
    hs_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.db = op.db;
    cfg.log_level = HS_LOG_WARN;
    char err[512];
    srv = hs_server_create(&cfg, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "bench_prefill: hs_server_create: %s\n", err);
        return 1;
    }
    hs_server_set_log_hook(srv, log_quiet, NULL);
    int rc = hs_server_start(srv);
    if (rc) {
        fprintf(stderr, "bench_prefill: hs_server_start: %s\n", hs_strerror(rc));
        hs_server_destroy(srv);
        return 1;
    }

    pthread_t th[64];
    int started = 0;
    double t0 = bench_now();
    for (int i = 0; i < op.threads; i++) {
        if (pthread_create(&th[i], NULL, publisher, NULL)) {
            fprintf(stderr, "bench_prefill: pthread_create failed\n");
            atomic_store(&failed, 1);
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    double secs = bench_now() - t0;
    hs_server_stop(srv);
    hs_server_destroy(srv);

    long n = atomic_load(&acked);
    long long last = atomic_load(&max_version);
    if (atomic_load(&failed) || n != op.events || last != op.events) {
        fprintf(stderr,
                "bench_prefill: FAILED: %ld of %ld events acknowledged, last version %lld\n", n,
                op.events, last);
        return 1;
    }
    printf("bench_prefill: %ld events on stream %s (versions 1..%lld) in %.2f s (%.0f events/s),"
           " %d threads, batches of %d\n",
           n, op.stream, last, secs, (double)n / secs, op.threads, op.batch);
    return 0;
}
