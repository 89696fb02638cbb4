/*
 * Database faults, on a real SQLite file, through the store's test-only switch that makes the
 * nth ODBC call fail (hs_store_fault).
 *
 * The sweeps run a fixed workload once to count its ODBC calls, then once more per call with
 * that call failing, and check what a user would: every publish completes; what the database
 * holds is exactly what was acknowledged (no half-written batch, no lost ack); fan-out saw
 * exactly the acknowledged events; the writer and readers serve again afterwards without a
 * restart. The outage tests make every call fail for a while (the database is gone), including
 * a COMMIT whose answer is lost after it took effect (in doubt).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/codec.h"
#include "storage/reader.h"
#include "storage/writer.h"

static char dir[64], db[160];
static sem_t done_sem;

/* What the fan-out sink received: positions, in order. */
static pthread_mutex_t sink_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t sunk[4096];
static int nsunk;

/* The writer's "still unavailable" warnings (rate limited: util/log.h) and its last "restored"
 * record, as a log reader sees them. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char msg[256];
    uint64_t suppressed;
} unavail[16];
static int nunavail;
static char restored[256];

static void on_done(hs_ingest_t *e)
{
    (void)e;
    sem_post(&done_sem);
}

static void sink(void *ctx, hs_batch_t *b)
{
    (void)ctx;
    pthread_mutex_lock(&sink_mu);
    for (uint32_t i = 0; i < b->n; i++)
        if (b->blocks[i]->kind == HS_BLOCK_EVENT && nsunk < 4096)
            sunk[nsunk++] = b->blocks[i]->position;
    pthread_mutex_unlock(&sink_mu);
    hs_batch_unref(b);
}

static void setup(void)
{
    strcpy(dir, "/tmp/hs-faults-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/f.db", dir);
    sem_init(&done_sem, 0, 0);
    nsunk = 0;
    nunavail = 0;
    restored[0] = '\0';
}

static void teardown(void)
{
    hs_store_fault(0, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    sem_destroy(&done_sem);
}

TestSuite(faults, .init = setup, .fini = teardown, .timeout = 240);

static void fresh_db(int i)
{
    snprintf(db, sizeof db, "%s/f%d.db", dir, i);
    pthread_mutex_lock(&sink_mu);
    nsunk = 0;
    pthread_mutex_unlock(&sink_mu);
}

static void wlog(void *ctx, hs_log_level_t level, const char *msg, uint64_t suppressed)
{
    (void)ctx;
    if (getenv("HS_TEST_VERBOSE"))
        fprintf(stderr, "writer [%d]: %s (suppressed %llu)\n", (int)level, msg,
                (unsigned long long)suppressed);
    pthread_mutex_lock(&log_mu);
    if (strstr(msg, "database still unavailable") && nunavail < 16) {
        snprintf(unavail[nunavail].msg, sizeof unavail[nunavail].msg, "%s", msg);
        unavail[nunavail++].suppressed = suppressed;
    } else if (strstr(msg, "database connection restored")) {
        snprintf(restored, sizeof restored, "%s", msg);
    }
    pthread_mutex_unlock(&log_mu);
}

static int unavail_count(void)
{
    pthread_mutex_lock(&log_mu);
    int n = nunavail;
    pthread_mutex_unlock(&log_mu);
    return n;
}

static hs_writer_t *mk_writer(void)
{
    char err[256];
    hs_writer_config_t cfg = {.db = db,
                              .log = wlog,
                              .nrings = 1,
                              .batch_max = 4096,
                              .encode = hs_codec_encode,
                              .encode_marker = hs_codec_encode_marker,
                              .sink = sink};
    hs_writer_t *w = hs_writer_create(&cfg, err, sizeof err);
    cr_assert_not_null(w, "%s", err);
    cr_assert_eq(hs_writer_start(w), 0);
    return w;
}

/* One publish of n events; ids "<prefix>-<k>" when prefix is set (client ids). */
static hs_ingest_t *append(const char *stream, int n, const char *prefix, int64_t expected)
{
    hs_event_t ev[4];
    char ids[4][32];
    for (int k = 0; k < n; k++) {
        if (prefix)
            snprintf(ids[k], sizeof ids[k], "%s-%d", prefix, k);
        ev[k] = (hs_event_t){.type = "t", .data = "{\"k\":1}", .id = prefix ? ids[k] : NULL};
    }
    hs_ingest_t *e;
    char why[128];
    cr_assert_eq(hs_codec_build_publish(stream, ev, (size_t)n, 1 << 20, &e, why, sizeof why), 0);
    e->expected_version = expected;
    e->done = on_done;
    return e;
}

static hs_ingest_t *admin(hs_ingest_kind_t kind, const char *stream)
{
    hs_ingest_t *e = hs_codec_build_admin(kind, stream, strlen(stream));
    e->done = on_done;
    return e;
}

/* Waits for n completions; fails the test after 20 s (a publish that never completes). */
static void wait_done(int n)
{
    for (int i = 0; i < n; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 20;
        cr_assert_eq(sem_timedwait(&done_sem, &ts), 0, "a publish did not complete");
    }
}

/* The writer acknowledges before it hands the batch to fan-out: wait for the sink too. */
static bool wait_sunk(int n)
{
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&sink_mu);
        int have = nsunk;
        pthread_mutex_unlock(&sink_mu);
        if (have >= n)
            return have == n;
        usleep(10000);
    }
    return false;
}

static bool wait_ready(hs_writer_t *w, int ms)
{
    char why[256];
    for (int i = 0; i < ms / 10; i++) {
        if (hs_writer_ready(w, why, sizeof why))
            return true;
        usleep(10000);
    }
    return false;
}

/* ---- the workload: three rounds that cover stream creation, expected versions, client ids,
 * a close, a delete, an append to a closed stream ---- */

#define NW 9

static void workload(hs_writer_t *w, hs_ingest_t **e)
{
    e[0] = append("a", 2, "a1", HS_ANY_VERSION);
    e[1] = append("b", 1, NULL, 0);
    e[2] = append("a", 1, NULL, 2);
    for (int i = 0; i < 3; i++)
        cr_assert(hs_writer_submit_mpsc(w, e[i]));
    wait_done(3);
    e[3] = append("c", 3, "c1", HS_ANY_VERSION);
    e[4] = admin(HS_INGEST_CLOSE, "b");
    e[5] = append("a", 1, "a2", HS_ANY_VERSION);
    for (int i = 3; i < 6; i++)
        cr_assert(hs_writer_submit_mpsc(w, e[i]));
    wait_done(3);
    e[6] = append("b", 1, NULL, HS_ANY_VERSION);
    e[7] = admin(HS_INGEST_DELETE, "c");
    e[8] = append("d", 2, NULL, HS_ANY_VERSION);
    for (int i = 6; i < 9; i++)
        cr_assert(hs_writer_submit_mpsc(w, e[i]));
    wait_done(3);
}

typedef struct rows {
    int n;
    int64_t pos[64], ver[64];
    char stream[64][4];
} rows_t;

static int collect_row(void *ctx, const hs_record_t *r)
{
    rows_t *rs = ctx;
    cr_assert_lt(rs->n, 64);
    rs->pos[rs->n] = r->position;
    rs->ver[rs->n] = r->version;
    snprintf(rs->stream[rs->n], 4, "%.*s", (int)r->stream_len, r->stream);
    rs->n++;
    return 0;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * The database holds exactly the acknowledged appends (minus the deleted stream's), each
 * stream's versions run 1..n without a gap, and the sink saw exactly the acknowledged events.
 */
static void check_outcome(hs_ingest_t **e, int nth)
{
    int64_t acked[64], seen_sink[4096];
    int nacked = 0;
    bool deleted_c = e[7]->status == 0;
    for (int i = 0; i < NW; i++) {
        int st = e[i]->status;
        cr_assert(st == 0 || st == HS_EDB || st == HS_ECLOSED || st == HS_ECONFLICT ||
                      st == HS_ENOENT,
                  "fault %d: entry %d ended with %d", nth, i, st);
        if (st || e[i]->kind != HS_INGEST_APPEND || !e[i]->appended)
            continue;
        for (int64_t p = e[i]->result.first_position; p <= e[i]->result.last_position; p++)
            acked[nacked++] = p;
    }
    /* fan-out: every acknowledged event once, nothing else (the deleted stream included) */
    cr_assert(wait_sunk(nacked), "fault %d: the sink did not see the %d acknowledged events", nth,
              nacked);
    pthread_mutex_lock(&sink_mu);
    int ns = nsunk;
    memcpy(seen_sink, sunk, sizeof(int64_t) * (size_t)ns);
    pthread_mutex_unlock(&sink_mu);
    qsort(acked, (size_t)nacked, sizeof acked[0], cmp64);
    qsort(seen_sink, (size_t)ns, sizeof seen_sink[0], cmp64);
    cr_assert_eq(ns, nacked, "fault %d: the sink saw %d events, %d were acknowledged", nth, ns,
                 nacked);
    for (int i = 0; i < ns; i++)
        cr_assert_eq(seen_sink[i], acked[i], "fault %d: sink/ack mismatch", nth);

    /* the database: the acknowledged positions, except stream c's when it was deleted */
    char err[256];
    hs_store_t *st = hs_store_open(db, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    rows_t rs = {0};
    cr_assert_eq(hs_store_read_all(st, 0, false, 1000, collect_row, &rs), 0);
    int64_t expect[64];
    int nexp = 0;
    for (int i = 0; i < NW; i++) {
        if (e[i]->status || e[i]->kind != HS_INGEST_APPEND || !e[i]->appended)
            continue;
        if (deleted_c && e[i]->stream_len == 1 && e[i]->stream[0] == 'c')
            continue;
        for (int64_t p = e[i]->result.first_position; p <= e[i]->result.last_position; p++)
            expect[nexp++] = p;
    }
    qsort(expect, (size_t)nexp, sizeof expect[0], cmp64);
    cr_assert_eq(rs.n, nexp, "fault %d: the database holds %d events, %d were acknowledged", nth,
                 rs.n, nexp);
    for (int i = 0; i < rs.n; i++)
        cr_assert_eq(rs.pos[i], expect[i], "fault %d: position %lld unexpected", nth,
                     (long long)rs.pos[i]);
    /* versions gapless per stream, starting at 1 */
    const char *names[] = {"a", "b", "c", "d"};
    for (int s = 0; s < 4; s++) {
        int64_t v = 0;
        for (int i = 0; i < rs.n; i++)
            if (!strcmp(rs.stream[i], names[s]))
                cr_assert_eq(rs.ver[i], ++v, "fault %d: stream %s skips a version", nth, names[s]);
    }
    hs_store_close(st);
}

Test(faults, every_odbc_call_of_the_writer_fails_once)
{
    hs_ingest_t *e[NW];

    /* count the calls of the workload */
    fresh_db(0);
    hs_writer_t *w = mk_writer();
    hs_store_fault(0, HS_FAULT_COUNT);
    workload(w, e);
    long calls = hs_store_fault_calls();
    hs_store_fault(0, 0);
    check_outcome(e, 0);
    for (int i = 0; i < NW; i++) {
        cr_assert_eq(e[i]->status, i == 6 ? HS_ECLOSED : 0, "entry %d: %d", i, e[i]->status);
        hs_ingest_free(e[i]);
    }
    hs_writer_destroy(w);
    cr_assert_gt(calls, 20, "the workload made only %ld ODBC calls", calls);

    int failed_some = 0;
    for (long nth = 1; nth <= calls; nth++) {
        fresh_db((int)nth);
        w = mk_writer();
        hs_store_fault(nth, 0);
        workload(w, e);
        hs_store_fault(0, 0);
        check_outcome(e, (int)nth);
        for (int i = 0; i < NW; i++)
            failed_some += e[i]->status == HS_EDB;
        /* the writer goes on by itself: a publish after the fault is appended */
        hs_ingest_t *after = append("a", 1, NULL, HS_ANY_VERSION);
        cr_assert(hs_writer_submit_mpsc(w, after));
        wait_done(1);
        cr_assert_eq(after->status, 0, "fault %ld: the writer did not recover: %d", nth,
                     after->status);
        cr_assert(wait_ready(w, 5000), "fault %ld: not ready again", nth);
        hs_ingest_free(after);
        for (int i = 0; i < NW; i++)
            hs_ingest_free(e[i]);
        hs_writer_destroy(w);
    }
    /* the faults landed inside batches, not only between them */
    cr_assert_gt(failed_some, calls / 2);
}

Test(faults, writer_creation_fails_cleanly_at_every_call)
{
    fresh_db(0);
    hs_store_fault(0, HS_FAULT_COUNT);
    hs_writer_t *w = mk_writer();
    long calls = hs_store_fault_calls();
    hs_store_fault(0, 0);
    hs_writer_destroy(w);
    cr_assert_gt(calls, 3);
    for (long nth = 1; nth <= calls; nth++) {
        fresh_db((int)nth);
        hs_store_fault(nth, 0);
        char err[256] = "";
        hs_writer_config_t cfg = {.db = db,
                                  .nrings = 1,
                                  .encode = hs_codec_encode,
                                  .encode_marker = hs_codec_encode_marker,
                                  .sink = sink};
        w = hs_writer_create(&cfg, err, sizeof err);
        hs_store_fault(0, 0);
        cr_assert_null(w, "fault %ld: creation succeeded", nth);
        cr_assert(strstr(err, "injected fault"), "fault %ld: %s", nth, err);
    }
}

/* The database goes away (every call fails) and comes back. */
Test(faults, outage_fails_publishes_fast_then_recovers_without_restart)
{
    fresh_db(0);
    hs_writer_t *w = mk_writer();
    hs_ingest_t *e = append("s", 1, NULL, HS_ANY_VERSION);
    cr_assert(hs_writer_submit_mpsc(w, e));
    wait_done(1);
    cr_assert_eq(e->status, 0);
    hs_ingest_free(e);

    hs_store_fault(1, HS_FAULT_STICKY);
    for (int i = 0; i < 20; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        e = append("s", 1, "x", HS_ANY_VERSION);
        cr_assert(hs_writer_submit_mpsc(w, e));
        wait_done(1);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        cr_assert_eq(e->status, HS_EDB, "publish %d during the outage: %d", i, e->status);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        cr_assert_lt(ms, 1000.0, "a publish during the outage took %.0f ms", ms);
        hs_ingest_free(e);
        usleep(20000);
    }
    char why[256];
    cr_assert_not(hs_writer_ready(w, why, sizeof why));
    cr_assert(strstr(why, "database unavailable") && strstr(why, "injected fault"), "%s", why);

    hs_store_fault(0, 0); /* the database is back */
    cr_assert(wait_ready(w, 8000), "the writer did not reconnect");
    e = append("s", 1, "x", 1);
    cr_assert(hs_writer_submit_mpsc(w, e));
    wait_done(1);
    cr_assert_eq(e->status, 0, "%d", e->status);
    cr_assert_eq(e->result.first_version, 2);
    cr_assert_eq(e->result.first_position, 2);
    hs_ingest_free(e);

    /* the log: one warning for the outage (its first failed attempt; the others, less than 10 s
     * later, dropped and counted) */
    cr_assert_eq(unavail_count(), 1, "\"still unavailable\" records: %d", unavail_count());
    cr_assert(strstr(unavail[0].msg, "database still unavailable after 1 attempts: "), "%s",
              unavail[0].msg);
    cr_assert_eq(unavail[0].suppressed, 0);
    unsigned attempts = 0;
    pthread_mutex_lock(&log_mu);
    const char *at = strstr(restored, "ms (");
    cr_assert(at && sscanf(at, "ms (%u attempts)", &attempts) == 1, "%s", restored);
    pthread_mutex_unlock(&log_mu);
    cr_assert_geq(attempts, 2, "%s", restored);

    /* a second outage: its first failed attempt is logged at once, with the count of those the
     * first outage dropped (all of its failed attempts but the first) */
    hs_store_fault(1, HS_FAULT_STICKY);
    e = append("s", 1, "y", HS_ANY_VERSION);
    cr_assert(hs_writer_submit_mpsc(w, e));
    wait_done(1);
    cr_assert_eq(e->status, HS_EDB, "%d", e->status);
    hs_ingest_free(e);
    for (int i = 0; i < 300 && unavail_count() < 2; i++)
        usleep(10000);
    cr_assert_eq(unavail_count(), 2, "the second outage was not logged");
    cr_assert(strstr(unavail[1].msg, "database still unavailable after 1 attempts: "), "%s",
              unavail[1].msg);
    cr_assert_eq(unavail[1].suppressed, (uint64_t)(attempts - 2), "%u attempts", attempts);
    hs_store_fault(0, 0);
    cr_assert(wait_ready(w, 8000), "the writer did not reconnect the second time");
    hs_writer_destroy(w);
}

/* The idle health check notices an outage with no publish going on. */
Test(faults, idle_writer_notices_the_outage)
{
    fresh_db(0);
    hs_writer_t *w = mk_writer();
    char why[256];
    cr_assert(hs_writer_ready(w, why, sizeof why));
    hs_store_fault(1, HS_FAULT_STICKY);
    bool down = false;
    for (int i = 0; i < 300 && !down; i++) {
        down = !hs_writer_ready(w, why, sizeof why);
        usleep(10000);
    }
    cr_assert(down, "no publish, and the writer still says ready after 3 s");
    hs_store_fault(0, 0);
    cr_assert(wait_ready(w, 8000));
    hs_writer_destroy(w);
}

/*
 * A COMMIT in doubt: it took effect (or not), and its answer was lost with the connection. The
 * publisher hears nothing until the writer is back and has looked.
 */
static void in_doubt(bool took_effect)
{
    fresh_db(0);
    hs_writer_t *w = mk_writer();
    /* warm up: statements are prepared on first use, which costs calls once (the id lookups
     * run only once the stream exists) */
    hs_ingest_t *e;
    for (int i = 0; i < 2; i++) {
        e = append("s", 2, i ? "warm1" : "warm0", HS_ANY_VERSION);
        cr_assert(hs_writer_submit_mpsc(w, e));
        wait_done(1);
        hs_ingest_free(e);
    }
    /* the calls of one more append of the same shape to a known stream; its last one is the
     * COMMIT */
    hs_store_fault(0, HS_FAULT_COUNT);
    e = append("s", 2, "counted", HS_ANY_VERSION);
    cr_assert(hs_writer_submit_mpsc(w, e));
    wait_done(1);
    long calls = hs_store_fault_calls();
    hs_ingest_free(e);

    hs_store_fault(calls, HS_FAULT_STICKY | (took_effect ? HS_FAULT_AFTER : 0));
    e = append("s", 2, "doubt", HS_ANY_VERSION);
    cr_assert(hs_writer_submit_mpsc(w, e));
    usleep(300000);
    cr_assert_eq(sem_trywait(&done_sem), -1, "the publish in doubt completed while down: %d",
                 e->status);
    char why[256];
    cr_assert_not(hs_writer_ready(w, why, sizeof why));
    /* others fail at once meanwhile */
    hs_ingest_t *other = append("t", 1, NULL, HS_ANY_VERSION);
    cr_assert(hs_writer_submit_mpsc(w, other));
    wait_done(1);
    cr_assert_eq(other->status, HS_EDB);

    hs_store_fault(0, 0);
    wait_done(1);
    if (took_effect) {
        cr_assert_eq(e->status, 0, "%d", e->status);
        cr_assert_eq(e->result.first_version, 7);
        cr_assert_eq(e->result.last_position, 8);
        cr_assert(wait_sunk(8), "fan-out missed the batch in doubt");
        pthread_mutex_lock(&sink_mu);
        cr_assert_eq(sunk[7], 8);
        pthread_mutex_unlock(&sink_mu);
    } else {
        cr_assert_eq(e->status, HS_EDB, "%d", e->status);
    }
    /* the next publish follows what the database really holds */
    hs_ingest_t *next = append("s", 1, NULL, HS_ANY_VERSION);
    cr_assert(hs_writer_submit_mpsc(w, next));
    wait_done(1);
    cr_assert_eq(next->status, 0);
    cr_assert_eq(next->result.first_version, took_effect ? 9 : 7);
    hs_ingest_free(next);
    hs_ingest_free(other);
    hs_ingest_free(e);
    hs_writer_destroy(w);
}

Test(faults, commit_in_doubt_that_took_effect_is_acknowledged)
{
    in_doubt(true);
}

Test(faults, commit_in_doubt_that_did_not_is_failed)
{
    in_doubt(false);
}

Test(faults, commit_in_doubt_at_shutdown_is_reported_unknown)
{
    fresh_db(0);
    hs_writer_t *w = mk_writer();
    hs_ingest_t *e = append("s", 1, NULL, HS_ANY_VERSION);
    cr_assert(hs_writer_submit_mpsc(w, e));
    wait_done(1);
    hs_ingest_free(e);
    hs_store_fault(0, HS_FAULT_COUNT);
    e = append("s", 1, NULL, HS_ANY_VERSION);
    cr_assert(hs_writer_submit_mpsc(w, e));
    wait_done(1);
    long calls = hs_store_fault_calls();
    hs_ingest_free(e);
    hs_store_fault(calls, HS_FAULT_STICKY | HS_FAULT_AFTER);
    e = append("s", 1, NULL, HS_ANY_VERSION);
    cr_assert(hs_writer_submit_mpsc(w, e));
    usleep(200000);
    hs_writer_stop(w);
    wait_done(1);
    cr_assert_eq(e->status, HS_EUNKNOWN, "%d", e->status);
    hs_store_fault(0, 0);
    hs_ingest_free(e);
    hs_writer_destroy(w);
}

/* ---- readers ---- */

typedef struct rreq {
    hs_read_req_t base;
    int what; /* 0: read stream "a", 1: read all, 2: list streams */
    int rows;
    sem_t done;
} rreq_t;

static int count_row(void *ctx, const hs_record_t *r)
{
    (void)r;
    ((rreq_t *)ctx)->rows++;
    return 0;
}

static int count_stream(void *ctx, const char *name, size_t len, const hs_stream_head_t *h)
{
    (void)name, (void)len, (void)h;
    ((rreq_t *)ctx)->rows++;
    return 0;
}

static int run_req(hs_store_t *st, hs_read_req_t *base)
{
    rreq_t *r = (rreq_t *)base;
    r->rows = 0;
    switch (r->what) {
    case 0:
        return hs_store_read_stream(st, "a", 1, 0, false, 1000, count_row, r);
    case 1:
        return hs_store_read_all(st, 0, false, 1000, count_row, r);
    default:
        return hs_store_list_streams(st, "", 0, "", 0, 100, count_stream, r);
    }
}

static void req_done(hs_read_req_t *base)
{
    sem_post(&((rreq_t *)base)->done);
}

/* Runs one request; returns its status and sets *rows. */
static int read_one(hs_reader_t *rd, int what, int *rows)
{
    rreq_t r = {.base = {.run = run_req, .done = req_done}, .what = what};
    sem_init(&r.done, 0, 0);
    cr_assert(hs_reader_submit(rd, &r.base));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    cr_assert_eq(sem_timedwait(&r.done, &ts), 0, "a read did not complete");
    sem_destroy(&r.done);
    *rows = r.rows;
    return r.base.status;
}

/* 132 events on "a" (two read pages: the first page is 128 rows), 8 on "b". */
static void fill(void)
{
    hs_writer_t *w = mk_writer();
    for (int i = 0; i < 140; i += 4) {
        hs_ingest_t *e = append(i < 132 ? "a" : "b", 4, NULL, HS_ANY_VERSION);
        cr_assert(hs_writer_submit_mpsc(w, e));
        wait_done(1);
        cr_assert_eq(e->status, 0);
        hs_ingest_free(e);
    }
    hs_writer_destroy(w);
}

/* A started reader of `threads` threads over a fresh database filled by fill(). */
static hs_reader_t *filled_reader(int threads)
{
    fresh_db(0);
    fill();
    char err[256];
    hs_reader_t *rd = hs_reader_create(db, threads, err, sizeof err);
    cr_assert_not_null(rd, "%s", err);
    cr_assert_eq(hs_reader_start(rd), 0);
    return rd;
}

Test(faults, every_odbc_call_of_a_reader_fails_once)
{
    static const int want[3] = {132, 140, 2};
    hs_reader_t *rd = filled_reader(1);
    int rows;
    /* warm up: statements are prepared on first use, and a connection idle for a second is
     * pinged before its next request; neither happens again in the sweep */
    for (int q = 0; q < 3; q++)
        cr_assert_eq(read_one(rd, q, &rows), 0);
    hs_store_fault(0, HS_FAULT_COUNT);
    for (int q = 0; q < 3; q++) {
        cr_assert_eq(read_one(rd, q, &rows), 0);
        cr_assert_eq(rows, want[q]);
    }
    long calls = hs_store_fault_calls();
    cr_assert_gt(calls, 10);
    int failed = 0, tried = 0;
    /* Every call of the first 150 (the forward reads fetch blocks of rows, so that is all of
     * them; list_streams reads row by row with SQLGetData), then every 7th. */
    for (long nth = 1; nth <= calls; nth += nth < 150 ? 1 : 7) {
        tried++;
        hs_store_fault(nth, 0);
        for (int q = 0; q < 3; q++) {
            int rc = read_one(rd, q, &rows);
            cr_assert(rc == 0 || rc == HS_EDB, "fault %ld: read %d gave %d", nth, q, rc);
            if (rc == 0)
                cr_assert_eq(rows, want[q], "fault %ld: read %d succeeded with %d rows", nth, q,
                             rows);
            failed += rc != 0;
        }
        hs_store_fault(0, 0);
        for (int q = 0; q < 3; q++) {
            cr_assert_eq(read_one(rd, q, &rows), 0, "fault %ld: the reader did not recover", nth);
            cr_assert_eq(rows, want[q]);
        }
    }
    /* every fault lands in one of the reads and fails it */
    cr_assert_eq(failed, tried, "%d of %d faults failed a read", failed, tried);
    hs_reader_destroy(rd);
}

/* ---- turns: one owner's waiting reads do not hold up another owner's ---- */

typedef struct treq {
    hs_read_req_t base;
    int id;
} treq_t;

static sem_t turn_started, turn_gate, turn_done_sem;
static int turn_order[8], turn_n; /* written on the reader thread, read after turn_done_sem */

static int run_turn(hs_store_t *st, hs_read_req_t *base)
{
    (void)st;
    treq_t *r = (treq_t *)base;
    if (r->id == 0) { /* holds the thread until everything else is queued */
        sem_post(&turn_started);
        sem_wait(&turn_gate);
    }
    turn_order[turn_n++] = r->id;
    return 0;
}

static void turn_done(hs_read_req_t *base)
{
    (void)base;
    sem_post(&turn_done_sem);
}

Test(faults, a_reader_serves_waiting_owners_in_turn)
{
    hs_reader_t *rd = filled_reader(1);
    sem_init(&turn_started, 0, 0);
    sem_init(&turn_gate, 0, 0);
    sem_init(&turn_done_sem, 0, 0);
    turn_n = 0;
    /* 0-5 are owner A's (0 is being served when the others arrive), 6 is B's, 7 is C's */
    treq_t r[8];
    for (int i = 0; i < 8; i++)
        r[i] = (treq_t){
            .base = {.run = run_turn, .done = turn_done, .owner = i < 6 ? 11 : (uint64_t)i},
            .id = i};
    cr_assert(hs_reader_submit(rd, &r[0].base));
    cr_assert_eq(sem_wait(&turn_started), 0);
    for (int i = 1; i < 8; i++)
        cr_assert(hs_reader_submit(rd, &r[i].base));
    sem_post(&turn_gate);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    for (int i = 0; i < 8; i++)
        cr_assert_eq(sem_timedwait(&turn_done_sem, &ts), 0, "%d of 8 reads done", i);
    /* A's next read, then B's and C's, then the rest of A's in their order; one queue in
     * arrival order would have served B and C after all of A's five */
    static const int want[8] = {0, 1, 6, 7, 2, 3, 4, 5};
    for (int i = 0; i < 8; i++)
        cr_assert_eq(turn_order[i], want[i],
                     "read %d served as number %d (order %d %d %d %d %d %d %d %d)", turn_order[i],
                     i, turn_order[0], turn_order[1], turn_order[2], turn_order[3], turn_order[4],
                     turn_order[5], turn_order[6], turn_order[7]);
    hs_reader_destroy(rd);
    sem_destroy(&turn_started);
    sem_destroy(&turn_gate);
    sem_destroy(&turn_done_sem);
}

Test(faults, reader_outage_fails_reads_then_reconnects)
{
    hs_reader_t *rd = filled_reader(2);
    int rows;
    hs_store_fault(1, HS_FAULT_STICKY);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(read_one(rd, i % 3, &rows), HS_EDB);
    hs_store_fault(0, 0);
    /* each thread reconnects on its next request or within its backoff */
    int ok = 0;
    for (int i = 0; i < 100 && ok < 4; i++) {
        if (read_one(rd, 1, &rows) == 0) {
            cr_assert_eq(rows, 140);
            ok++;
        } else {
            usleep(50000);
        }
    }
    cr_assert_eq(ok, 4, "the readers did not reconnect");
    hs_reader_destroy(rd);
}
