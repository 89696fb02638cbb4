/*
 * The writer (storage/writer.c) on a real SQLite file: entries queued before the thread starts
 * are taken as one batch, so these tests pin what happens when publishes to the same stream meet
 * in one transaction: versions and positions, expected versions, idempotent retries, close and
 * delete in the middle of a batch, and what the fan-out sink receives.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/codec.h"
#include "storage/checkpoint.h"
#include "storage/odbc.h"
#include "storage/store.h"
#include "storage/writer.h"

static char dir[64], db[128];
static sem_t done_sem;
static hs_batch_t *batches[16];
static atomic_int nbatches;

static atomic_int dropped;
/* acknowledgements that came before the sink had any batch (the writer hands a batch to the
 * fan-out first, so that the subscribers' threads are woken before the publishers') */
static atomic_int early_acks;

static void on_done(hs_ingest_t *e)
{
    if (atomic_load(&nbatches) + atomic_load(&dropped) == 0)
        atomic_fetch_add(&early_acks, 1);
    sem_post(&done_sem);
}

static void sink(void *ctx, hs_batch_t *b)
{
    batches[atomic_load(&nbatches)] = b;
    atomic_fetch_add(&nbatches, 1);
}

/* Waits for the sink's n batches (the writer hands a batch over before it acknowledges it, so
 * after wait_n() they are there; this also checks the count). */
static void wait_batches(int n)
{
    for (int i = 0; i < 5000 && atomic_load(&nbatches) < n; i++)
        usleep(1000);
    cr_assert_eq(atomic_load(&nbatches), n);
}

static void setup(void)
{
    strcpy(dir, "/tmp/hs-writer-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db, sizeof(db), "%s/w.db", dir);
    sem_init(&done_sem, 0, 0);
    nbatches = 0;
    atomic_store(&dropped, 0);
    atomic_store(&early_acks, 0);
}

static void teardown(void)
{
    for (int i = 0; i < nbatches; i++)
        hs_batch_unref(batches[i]);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    sem_destroy(&done_sem);
}

static hs_writer_t *mk_with(hs_batch_sink_fn to)
{
    char err[256];
    hs_writer_config_t cfg = {.db = db,
                              .nrings = 1,
                              .batch_max = 4096,
                              .encode = hs_codec_encode,
                              .encode_marker = hs_codec_encode_marker,
                              .sink = to};
    hs_writer_t *w = hs_writer_create(&cfg, err, sizeof(err));
    cr_assert_not_null(w, "%s", err);
    return w;
}

static hs_writer_t *mk(void)
{
    return mk_with(sink);
}

static hs_ingest_t *append(const char *stream, const char *id, int64_t expected)
{
    hs_event_t ev = {.type = "t", .data = "{\"k\":1}", .id = id};
    hs_ingest_t *e;
    char why[128];
    cr_assert_eq(hs_codec_build_publish(stream, &ev, 1, 1 << 20, &e, why, sizeof(why)), 0);
    e->expected_version = expected;
    e->done = on_done;
    return e;
}

static void submit(hs_writer_t *w, hs_ingest_t *e)
{
    cr_assert(hs_writer_submit_mpsc(w, e));
}

static void wait_n(int n)
{
    for (int i = 0; i < n; i++)
        sem_wait(&done_sem);
}

TestSuite(writer, .init = setup, .fini = teardown, .timeout = 60);

Test(writer, one_batch_assigns_gapless_versions_and_checks_each_publish)
{
    hs_writer_t *w = mk();
    hs_ingest_t *e[6] = {
        append("a", NULL, HS_ANY_VERSION), /* a:1 pos 1 */
        append("b", NULL, 0),              /* b:1 pos 2 (must not exist: ok) */
        append("a", NULL, 1),              /* a:2 pos 3 (expects the version staged above) */
        append("a", NULL, 1),              /* conflict: a is at 2 now */
        append("b", NULL, 0),              /* conflict: b exists within this batch */
        append("a", NULL, HS_ANY_VERSION), /* a:3 pos 4 */
    };
    for (int i = 0; i < 6; i++)
        submit(w, e[i]);
    cr_assert_eq(hs_writer_start(w), 0);
    wait_n(6);
    cr_assert_eq(e[0]->status, 0);
    cr_assert_eq(e[0]->result.first_version, 1);
    cr_assert_eq(e[0]->result.first_position, 1);
    cr_assert_eq(e[1]->result.first_version, 1);
    cr_assert_eq(e[1]->result.first_position, 2);
    cr_assert_eq(e[2]->status, 0);
    cr_assert_eq(e[2]->result.first_version, 2);
    cr_assert_eq(e[3]->status, HS_ECONFLICT);
    cr_assert_eq(e[3]->result.actual_version, 2);
    cr_assert_eq(e[4]->status, HS_ECONFLICT);
    cr_assert_eq(e[4]->result.actual_version, 1);
    cr_assert_eq(e[5]->result.first_version, 3);
    cr_assert_eq(e[5]->result.first_position, 4);
    /* the sink got the four appended events, in position order, after the commit and before
     * any of the six acknowledgements */
    wait_batches(1);
    cr_assert_eq(atomic_load(&early_acks), 0, "%d acknowledgements before the sink's batch",
                 atomic_load(&early_acks));
    cr_assert_eq(batches[0]->n, 4);
    for (uint32_t i = 0; i < 4; i++)
        cr_assert_eq(batches[0]->blocks[i]->position, i + 1);
    for (int i = 0; i < 6; i++)
        hs_ingest_free(e[i]);
    hs_writer_destroy(w);

    /* a new writer on the same file continues after what was committed */
    w = mk();
    hs_ingest_t *n = append("a", NULL, 3);
    submit(w, n);
    hs_writer_start(w);
    wait_n(1);
    cr_assert_eq(n->status, 0);
    cr_assert_eq(n->result.first_version, 4);
    cr_assert_eq(n->result.first_position, 5);
    hs_ingest_free(n);
    hs_writer_destroy(w);
}

Test(writer, idempotent_ids_within_and_across_batches)
{
    hs_writer_t *w = mk();
    hs_ingest_t *a = append("s", "id-1", HS_ANY_VERSION);
    hs_ingest_t *retry = append("s", "id-1", HS_ANY_VERSION); /* same batch */
    submit(w, a);
    submit(w, retry);
    hs_writer_start(w);
    wait_n(2);
    cr_assert_eq(a->status, 0);
    cr_assert_eq(retry->status, 0);
    cr_assert_eq(retry->result.first_version, a->result.first_version);
    cr_assert_eq(retry->result.first_position, a->result.first_position);
    wait_batches(1);
    cr_assert_eq(batches[0]->n, 1, "the retry appended nothing");
    /* a later batch, with an expected version that no longer holds: still the original result */
    hs_ingest_t *late = append("s", "id-1", 0);
    submit(w, late);
    wait_n(1);
    cr_assert_eq(late->status, 0);
    cr_assert_eq(late->result.first_version, 1);
    hs_ingest_free(a);
    hs_ingest_free(retry);
    hs_ingest_free(late);
    hs_writer_destroy(w);
}

Test(writer, close_and_delete_inside_a_batch)
{
    hs_writer_t *w = mk();
    hs_ingest_t *e[5] = {
        append("c", NULL, HS_ANY_VERSION),
        hs_codec_build_admin(HS_INGEST_CLOSE, "c", 1),
        append("c", NULL, HS_ANY_VERSION), /* closed */
        hs_codec_build_admin(HS_INGEST_DELETE, "c", 1),
        append("c", NULL, HS_ANY_VERSION), /* a new incarnation: version 1 again */
    };
    e[1]->done = e[3]->done = on_done;
    for (int i = 0; i < 5; i++)
        submit(w, e[i]);
    hs_writer_start(w);
    wait_n(5);
    cr_assert_eq(e[0]->status, 0);
    cr_assert_eq(e[1]->status, 0);
    cr_assert_eq(e[2]->status, HS_ECLOSED);
    cr_assert_eq(e[3]->status, 0);
    cr_assert_eq(e[4]->status, 0);
    cr_assert_eq(e[4]->result.first_version, 1);
    cr_assert_eq(e[4]->result.first_position, 2, "positions are never reused");
    /* event, closed marker, deleted marker, event */
    wait_batches(1);
    cr_assert_eq(batches[0]->n, 4);
    cr_assert_eq(batches[0]->blocks[1]->kind, HS_BLOCK_CLOSED);
    cr_assert_eq(batches[0]->blocks[2]->kind, HS_BLOCK_DELETED);
    for (int i = 0; i < 5; i++)
        hs_ingest_free(e[i]);
    hs_writer_destroy(w);
}

Test(writer, unknown_stream_close_is_not_found)
{
    hs_writer_t *w = mk();
    hs_ingest_t *c = hs_codec_build_admin(HS_INGEST_CLOSE, "nope", 4);
    c->done = on_done;
    submit(w, c);
    hs_writer_start(w);
    wait_n(1);
    cr_assert_eq(c->status, HS_ENOENT);
    hs_ingest_free(c);
    hs_writer_destroy(w);
}

static void sink_drop(void *ctx, hs_batch_t *b)
{
    atomic_fetch_add(&dropped, 1);
    hs_batch_unref(b);
}

static long long wal_bytes(void)
{
    char p[160];
    snprintf(p, sizeof(p), "%s-wal", db);
    struct stat sb;
    return stat(p, &sb) ? -1 : (long long)sb.st_size;
}

/* n one-event transactions back to back; the log's largest size in bytes on the way. */
static long long commit_burst(hs_writer_t *w, int n)
{
    long long most = 0;
    for (int i = 0; i < n; i++) {
        hs_ingest_t *e = append("ckpt", NULL, HS_ANY_VERSION);
        submit(w, e);
        wait_n(1);
        cr_assert_eq(e->status, 0);
        hs_ingest_free(e);
        long long b = wal_bytes();
        most = b > most ? b : most;
    }
    return most;
}

static hs_writer_t *mk_dropping(void)
{
    hs_writer_t *w = mk_with(sink_drop);
    cr_assert_eq(hs_writer_start(w), 0);
    return w;
}

/* Waits for two passes of the checkpointer thread that begin after this call. */
static void two_passes(hs_writer_t *w)
{
    hs_writer_stats_t ws;
    hs_writer_stats(w, &ws);
    uint64_t first = ws.checkpoints;
    for (int i = 0; i < 100 && ws.checkpoints < first + 2; i++) {
        usleep(100 * 1000);
        hs_writer_stats(w, &ws);
    }
    cr_assert_geq(ws.checkpoints, first + 2, "the thread made %llu passes in 10 s",
                  (unsigned long long)(ws.checkpoints - first));
}

/* SQLite's checkpoints run on a thread of their own (storage/checkpoint.h), not inside the
 * writer's commits. After a burst of one-event commits (~4.4 pages each to the log), the
 * thread's passes must have copied the log, so that the next commit starts it over: a
 * checkpoint then finds only that commit's few frames in it. Without any checkpoint the log
 * would hold all 3,000 commits (~13,000 frames). */
Test(writer, a_checkpointer_thread_copies_the_log_so_that_it_starts_over)
{
    hs_writer_t *w = mk_dropping();
    enum { N = 3000 };
    commit_burst(w, N);
    two_passes(w); /* that began after the last commit (one a second at the latest) */
    commit_burst(w, 1);
    char err[256];
    hs_store_t *st = hs_store_open(db, err, sizeof(err));
    cr_assert_not_null(st, "%s", err);
    int64_t log = -1, copied = -1;
    int rc = HS_EBUSY;
    for (int i = 0; i < 200 && rc == HS_EBUSY; i++) { /* busy: the thread's pass is running */
        rc = hs_store_checkpoint(st, &log, &copied);
        if (rc == HS_EBUSY)
            usleep(10 * 1000);
    }
    cr_assert_eq(rc, 0, "%d: %s", rc, hs_store_error(st));
    cr_assert_lt(log, 64, "%lld frames in the log after the commit that followed the passes",
                 (long long)log);
    hs_store_close(st);
    hs_writer_stats_t ws;
    hs_writer_stats(w, &ws);
    cr_assert_eq(ws.events, N + 1);
    hs_writer_destroy(w);
    cr_assert_eq(atomic_load(&dropped), N + 1);
}

/* The log file gives back what a burst made it grow past 64 MiB (journal_size_limit,
 * dialect_sqlite.c): a reader that keeps an old snapshot keeps the log from starting over
 * while ~80 MiB of events go in; once it lets go, the thread copies the log, and the next
 * commit starts it over and cuts the file back. Without the limit the file keeps its 80 MiB. */
Test(writer, a_log_file_grown_past_64_mib_is_cut_back_when_it_starts_over)
{
    hs_writer_t *w = mk_dropping();
    hs_odbc_t r = {0};
    char cs[256];
    snprintf(cs, sizeof(cs), "Driver=SQLite3;Database=%s;Timeout=5000", db);
    cr_assert_eq(hs_odbc_connect(&r, cs, db), 0, "%s", r.err);
    cr_assert_eq(hs_odbc_manual_commit(&r), 0, "%s", r.err);
    int64_t n = -1; /* the read's transaction stays open: its snapshot pins the log */
    cr_assert_eq(hs_odbc_direct_ints(&r, "SELECT COUNT(*) FROM hs_events", "pin", &n, 1), 0, "%s",
                 r.err);
    enum { EVENTS = 16, COMMITS = 80, BIG = 64 * 1024 };
    char *data = malloc(BIG + 16);
    cr_assert_not_null(data);
    int o = snprintf(data, 16, "{\"p\":\"");
    memset(data + o, 'x', BIG - o - 2);
    memcpy(data + BIG - 2, "\"}", 3);
    hs_event_t ev[EVENTS];
    for (int i = 0; i < EVENTS; i++)
        ev[i] = (hs_event_t){.type = "big", .data = data};
    for (int c = 0; c < COMMITS; c++) {
        hs_ingest_t *e;
        char why[128];
        cr_assert_eq(hs_codec_build_publish("big", ev, EVENTS, 1 << 20, &e, why, sizeof(why)), 0,
                     "%s", why);
        e->expected_version = HS_ANY_VERSION;
        e->done = on_done;
        submit(w, e);
        wait_n(1);
        cr_assert_eq(e->status, 0);
        hs_ingest_free(e);
    }
    free(data);
    long long grown = wal_bytes();
    cr_assert_gt(grown, 72LL << 20, "the pinned log grew to %lld bytes only", grown);
    cr_assert_eq(hs_odbc_rollback(&r), 0);
    hs_odbc_close(&r);
    two_passes(w);
    commit_burst(w, 2);
    long long now = wal_bytes();
    cr_assert_leq(now, 64LL << 20, "the log file is %lld bytes (%lld before it started over)", now,
                  grown);
    hs_writer_destroy(w);
}

/* The fallback (checkpoint.h): a checkpointer thread that makes no pass (held here, as if
 * starved of CPU) leaves the log to grow; the writer must see it behind after three of its
 * intervals and checkpoint on its own connection, so that the log starts over every few
 * hundred commits. Without that, 3,000 back-to-back commits leave a 51 MiB log (measured); with
 * it the log stays near 3 x HS_CKPT_EVERY + HS_CKPT_OWN_EVERY commits' worth (~14 MiB). */
Test(writer, a_starved_checkpointer_leaves_the_checkpoints_to_the_writer)
{
    hs_writer_t *w = mk_dropping();
    hs_writer_hold_checkpointer(w, true);
    long long most = commit_burst(w, 3000);
    cr_assert_lt(most, 20LL << 20, "the log grew to %lld bytes", most);
    hs_writer_stats_t ws;
    hs_writer_stats(w, &ws);
    cr_assert_gt(ws.own_checkpoints, 0, "the writer's own checkpoints are counted (/metrics)");
    hs_writer_hold_checkpointer(w, false);
    hs_writer_destroy(w);
    cr_assert_eq(atomic_load(&dropped), 3000);
}
