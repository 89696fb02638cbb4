/*
 * The fan-out workers' cursor rules (fanout/fanout.h), each pinned by what a subscriber
 * receives: the exact sequence of versions (positions on `$all`) and the marker blocks.
 *
 * Everything is real but the sockets: a writer on a temporary SQLite file, reader threads for
 * the catch-up reads, one or two fan-out workers. The test thread itself is the one IO thread:
 * it owns the inbox the workers signal (woken through wake_io), and it only pops a
 * subscription's outbox after a signal said so, the way server/http/sse.c does (pop, then
 * hs_fanout_space once the outbox drained below half while want_space is set). Every wait is
 * bounded (DEADLINE_MS), so a rule that does not hold fails instead of hanging.
 *
 * The same scenarios run under ThreadSanitizer-free concurrency with many more subscribers in
 * tests/stress/stress_fanout.c; here each one is small enough to say exactly what must arrive.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define HS_LEAK_CHECK 1
#endif

#include "fanout/fanout.h"
#include "fanout/worker.h" /* a_hot_stream_over_two_workers looks at each worker's share */
#include "hubstream/hubstream.h"
#include "proto/codec.h"
#include "ringbuf/budget.h"
#include "ringbuf/waiter.h"
#include "storage/reader.h"
#include "storage/writer.h"

#define DEADLINE_MS 5000
#define QUIET_MS    150        /* how long "nothing more arrives" is watched for */
#define BIG_OUTBOX  (1u << 20) /* never overflows in these tests */
#define MAXREC      1024       /* blocks recorded per subscriber */
#define MAXSUBS     64
#define MAXSTREAMS  4
#define MAXPOS      2048
#define NO_STALL    600000 /* stall timeout of the tests that do not test it */
#define EVENT_BYTES 250    /* about what an outbox counts for one event of these tests */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- what the writer acknowledged ---- */

typedef struct known {
    char name[32];
    uint32_t len;
    int64_t last;        /* last acknowledged version */
    int64_t pos[MAXPOS]; /* version -> position */
} known_t;

static known_t known[MAXSTREAMS];
static int nknown;
static int all_stream[MAXPOS];      /* position -> stream index */
static int64_t all_version[MAXPOS]; /* position -> version */
static int64_t last_pos;

static int known_index(const char *name, size_t len)
{
    for (int i = 0; i < nknown; i++)
        if (known[i].len == len && memcmp(known[i].name, name, len) == 0)
            return i;
    return -1;
}

/* A stream name `prefix-N` whose hash puts it on fan-out worker `worker` of `nworkers`. */
static int add_stream(const char *prefix, int worker, int nworkers)
{
    cr_assert_lt(nknown, MAXSTREAMS);
    known_t *k = &known[nknown];
    for (int i = 0;; i++) {
        int l = snprintf(k->name, sizeof(k->name), "%s-%d", prefix, i);
        if (hs_stream_hash(k->name, (size_t)l) % (uint32_t)nworkers == (uint32_t)worker) {
            k->len = (uint32_t)l;
            break;
        }
    }
    return nknown++;
}

/* ---- the environment: writer, reader, workers, the IO inbox ---- */

static char dir[64], db[128];
static hs_writer_t *writer;
static hs_reader_t *reader;
static hs_fanout_t *fanout;
static hs_budget_t *budget;     /* the read budget: shared catch-up pages and every subscription's
                                   own reads are charged here */
static hs_mpsc_t inbox, inbox1; /* IO threads 0 and 1 (both drained by the test thread) */
static hs_mpsc_t *inboxes[3];
static bool spread;                       /* subscribers alternate between IO threads 0 and 1 */
static void (*prepare_mp)(hs_block_t *b); /* the fan-out's prepare_mp for the next start() */
static bool sub_mp;                       /* the next subscriptions want MessagePack */
static hs_waiter_t io_waiter;
static bool io_waiter_ok;
static sem_t acks;
static bool acks_ok;
static atomic_int wakes;

static void wake_io(void *ctx, int index)
{
    (void)ctx;
    if (index != 0 && !(spread && index == 1))
        abort(); /* a worker thread: no Criterion assertion here */
    atomic_fetch_add(&wakes, 1);
    hs_waiter_wake(&io_waiter);
}

static void on_ack(hs_ingest_t *e)
{
    (void)e;
    sem_post(&acks);
}

static void start(int nworkers, int catchup_events, int stall_ms)
{
    strcpy(dir, "/tmp/hs-fanout-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db, sizeof(db), "%s/f.db", dir);
    cr_assert_eq(sem_init(&acks, 0, 0), 0);
    acks_ok = true;
    char err[256];
    hs_writer_config_t wc = {.db = db,
                             .nrings = 1,
                             .ring_size = 64,
                             .batch_max = 256,
                             .encode = hs_codec_encode,
                             .encode_marker = hs_codec_encode_marker,
                             .sink = hs_fanout_sink};
    writer = hs_writer_create(&wc, err, sizeof(err));
    cr_assert_not_null(writer, "hs_writer_create: %s", err);
    reader = hs_reader_create(db, 2, err, sizeof(err));
    cr_assert_not_null(reader, "hs_reader_create: %s", err);
    hs_mpsc_init(&inbox);
    hs_mpsc_init(&inbox1);
    inboxes[0] = &inbox;
    inboxes[1] = spread ? &inbox1 : NULL;
    inboxes[2] = NULL;
    cr_assert_eq(hs_waiter_init(&io_waiter), 0);
    io_waiter_ok = true;
    budget = hs_budget_create(64u << 20, NULL);
    cr_assert_not_null(budget);
    hs_fanout_config_t fc = {.nworkers = nworkers,
                             .reader = reader,
                             .encode = hs_codec_encode,
                             .encode_marker = hs_codec_encode_marker,
                             .io_inboxes = inboxes,
                             .wake_io = wake_io,
                             .stall_timeout_ms = stall_ms,
                             .catchup_events = catchup_events,
                             .read_budget = budget,
                             .prepare_mp = prepare_mp};
    fanout = hs_fanout_create(&fc);
    cr_assert_not_null(fanout);
    hs_writer_set_sink_ctx(writer, fanout);
    cr_assert_eq(hs_reader_start(reader), 0);
    cr_assert_eq(hs_fanout_start(fanout), 0);
    cr_assert_eq(hs_writer_start(writer), 0);
}

/* ---- publishing (the test thread waits for the writer's acks) ---- */

static void wait_acks(int n)
{
    for (int i = 0; i < n; i++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += DEADLINE_MS / 1000;
        int rc;
        while ((rc = sem_timedwait(&acks, &ts)) != 0 && errno == EINTR)
            ;
        cr_assert_eq(rc, 0, "the writer did not acknowledge within %d ms", DEADLINE_MS);
    }
}

static void submit(hs_ingest_t *e)
{
    e->done = on_ack;
    for (int i = 0; !hs_writer_submit_mpsc(writer, e); i++) {
        cr_assert_lt(i, DEADLINE_MS, "the writer's ring stays full");
        usleep(1000);
    }
}

static void record_ack(const hs_ingest_t *e)
{
    cr_assert_eq(e->status, 0, "append to %.*s failed: %s", (int)e->stream_len, e->stream,
                 hs_strerror(e->status));
    int si = known_index(e->stream, e->stream_len);
    cr_assert_geq(si, 0);
    const hs_publish_result_t *r = &e->result;
    cr_assert_eq(r->last_version - r->first_version, (int64_t)e->nevents - 1);
    for (int64_t v = r->first_version; v <= r->last_version; v++) {
        int64_t p = r->first_position + (v - r->first_version);
        cr_assert(v < MAXPOS && p < MAXPOS);
        known[si].pos[v] = p;
        all_stream[p] = si;
        all_version[p] = v;
        if (p > last_pos)
            last_pos = p;
    }
    known[si].last = r->last_version;
}

static hs_ingest_t *build(int si, int count, const char *type)
{
    hs_event_t ev[64];
    char data[64][32];
    cr_assert_leq(count, 64);
    for (int k = 0; k < count; k++) {
        snprintf(data[k], sizeof(data[k]), "{\"n\":%d}", k);
        ev[k] = (hs_event_t){.type = type, .data = data[k]};
    }
    hs_ingest_t *e;
    char why[128];
    int rc =
        hs_codec_build_publish(known[si].name, ev, (size_t)count, 1 << 20, &e, why, sizeof(why));
    cr_assert_eq(rc, 0, "hs_codec_build_publish: %s", why);
    e->expected_version = HS_ANY_VERSION;
    return e;
}

/* Appends `count` events to stream si, `per_entry` per publish, all submitted before the first
 * ack is awaited (so several may share a transaction), and waits for every ack. */
static void publish(int si, int count, int per_entry)
{
    hs_ingest_t *e[256];
    int n = 0;
    for (int k = 0; k < count; k += per_entry) {
        int m = count - k < per_entry ? count - k : per_entry;
        cr_assert_lt(n, 256);
        e[n] = build(si, m, "t");
        submit(e[n]);
        n++;
    }
    wait_acks(n);
    for (int i = 0; i < n; i++) {
        record_ack(e[i]);
        hs_ingest_free(e[i]);
    }
}

/* Publishes to two streams in turns, one event per publish, submitted together. */
static void publish_interleaved(int sa, int sb, int count)
{
    hs_ingest_t *e[256];
    cr_assert_leq(count, 256);
    for (int k = 0; k < count; k++) {
        e[k] = build(k % 2 ? sb : sa, 1, "t");
        submit(e[k]);
    }
    wait_acks(count);
    for (int k = 0; k < count; k++) {
        record_ack(e[k]);
        hs_ingest_free(e[k]);
    }
}

static void admin(hs_ingest_kind_t kind, int si)
{
    hs_ingest_t *e = hs_codec_build_admin(kind, known[si].name, known[si].len);
    cr_assert_not_null(e);
    submit(e);
    wait_acks(1);
    cr_assert_eq(e->status, 0, "close/delete %s: %s", known[si].name, hs_strerror(e->status));
    hs_ingest_free(e);
}

static void close_stream(int si)
{
    admin(HS_INGEST_CLOSE, si);
}

/* ---- the fake IO thread: subscribers and what they receive ---- */

typedef struct rec {
    int64_t seq;   /* version, or position on $all */
    int64_t other; /* position, or version on $all */
    int stream;    /* known index of the block's stream */
    size_t bytes;  /* what the outbox counted for it */
} rec_t;

typedef struct tsub {
    const char *label;
    hs_sub_t *s; /* NULL once the "connection" is gone */
    int stream;  /* known index, -1 for $all */
    bool all;
    rec_t got[MAXREC];
    int n;
    int markers, marker_kind, marker_after, events_after_marker;
    int64_t marker_version;
    bool want_write, got_end, got_kill;
    int end_reason;
    bool paused; /* its socket does not drain: nothing is popped */
    int gap_ms;  /* pops at most every gap_ms */
    int64_t next_pop_ms, subscribed_ms, killed_ms;
    int space_sent, signals;
    int64_t live_after;
} tsub_t;

static tsub_t subs[MAXSUBS];
static int nsubs;

static tsub_t *subscribe_types(const char *label, int si, bool has_from, int64_t from,
                               size_t max_bytes, const char *const *types, uint32_t ntypes)
{
    cr_assert_lt(nsubs, MAXSUBS);
    tsub_t *t = &subs[nsubs++];
    memset(t, 0, sizeof(*t));
    t->label = label;
    t->stream = si;
    const char *name = si < 0 ? "$all" : known[si].name;
    size_t len = si < 0 ? 4 : known[si].len;
    hs_sub_t *s = hs_sub_create(name, len, types, ntypes, max_bytes);
    cr_assert_not_null(s);
    hs_writer_stats_t ws;
    hs_writer_stats(writer, &ws);
    s->has_from = has_from;
    s->from = from;
    s->live_after = ws.last_position; /* what sse.c does */
    s->io_index = spread ? (nsubs - 1) % 2 : 0;
    s->io_ctx = t;
    s->fmt = HS_SUB_FMT_SSE;
    s->mp = sub_mp;
    s->budget = hs_budget_ref(budget);
    t->s = s;
    t->all = s->all;
    t->live_after = ws.last_position;
    t->subscribed_ms = now_ms();
    hs_fanout_subscribe(fanout, s);
    return t;
}

static tsub_t *subscribe(const char *label, int si, bool has_from, int64_t from, size_t max_bytes)
{
    return subscribe_types(label, si, has_from, from, max_bytes, NULL, 0);
}

/* The connection goes away: what hs_sse_closed() does. */
static void drop(tsub_t *t)
{
    if (!t->s)
        return;
    hs_sub_t *s = t->s;
    s->io_ctx = NULL;
    hs_fanout_unsubscribe(fanout, s);
    hs_sub_unref(s);
    t->s = NULL;
}

static void record(tsub_t *t, const hs_block_t *b)
{
    if (b->kind != HS_BLOCK_EVENT) {
        t->markers++;
        t->marker_kind = b->kind;
        t->marker_version = b->version;
        t->marker_after = t->n;
        return;
    }
    if (t->markers)
        t->events_after_marker++;
    if (t->n < MAXREC) {
        rec_t *r = &t->got[t->n];
        r->seq = t->all ? b->position : b->version;
        r->other = t->all ? b->version : b->position;
        r->stream = known_index(b->stream, b->stream_len);
        r->bytes = hs_fanout_block_size(t->s, b);
    }
    t->n++;
}

static bool inbox_has_work(void *ctx)
{
    (void)ctx;
    return !hs_mpsc_empty(&inbox) || !hs_mpsc_empty(&inbox1);
}

static void take_signals(void)
{
    hs_mpsc_node_t *first = hs_mpsc_take_all(&inbox), *last = first;
    while (last && last->next)
        last = last->next;
    if (last)
        last->next = hs_mpsc_take_all(&inbox1);
    else
        first = hs_mpsc_take_all(&inbox1);
    for (hs_mpsc_node_t *n = first, *nx; n; n = nx) {
        nx = n->next;
        cr_assert_eq(n->kind, HS_NODE_SUB_IO, "inbox node of kind %d", n->kind);
        hs_sub_t *s = hs_container_of(n, hs_sub_t, io_node);
        unsigned fl = hs_sub_take_io_flags(s);
        tsub_t *t = s->io_ctx;
        if (t) {
            t->signals++;
            if (fl & (HS_SUB_IO_DATA | HS_SUB_IO_END | HS_SUB_IO_KILL))
                t->want_write = true;
            if (fl & (HS_SUB_IO_END | HS_SUB_IO_KILL))
                t->end_reason = atomic_load(&s->end_reason);
            if ((fl & HS_SUB_IO_KILL) && !t->got_kill)
                t->killed_ms = now_ms();
            t->got_end |= (fl & HS_SUB_IO_END) != 0;
            t->got_kill |= (fl & HS_SUB_IO_KILL) != 0;
        }
        hs_sub_unref(s); /* the inbox's reference */
    }
}

/* A writable turn: everything queued, then SPACE as sse_writable() sends it. */
static void turn(tsub_t *t)
{
    hs_sub_t *s = t->s;
    hs_block_t *b;
    while ((b = hs_sub_pop_spsc(s, hs_fanout_block_size))) {
        record(t, b);
        hs_block_unref(b);
    }
    if (hs_sub_space_due(s)) {
        hs_fanout_space(fanout, s);
        t->space_sent++;
    }
    t->want_write = false;
}

/* One round of the IO thread: waits up to ms for a signal, takes the signals, then gives each
 * signalled subscriber whose socket drains its writable turn. */
static void pump(int ms)
{
    if (ms > 0 && !inbox_has_work(NULL))
        hs_waiter_sleep(&io_waiter, ms, inbox_has_work, NULL);
    take_signals();
    int64_t now = now_ms();
    for (int i = 0; i < nsubs; i++) {
        tsub_t *t = &subs[i];
        if (!t->s || !t->want_write || t->paused)
            continue;
        if (t->gap_ms) {
            if (now < t->next_pop_ms)
                continue;
            t->next_pop_ms = now + t->gap_ms;
        }
        turn(t);
    }
}

/* Its socket drains again: lws calls the writable callback that was asked for. */
static void unpause(tsub_t *t)
{
    t->paused = false;
    t->want_write = true;
}

/* Pumps until cond holds; false when DEADLINE_MS passed first. */
#define WAIT_FOR(cond)                                                                             \
    ({                                                                                             \
        int64_t deadline_ = now_ms() + DEADLINE_MS;                                                \
        bool ok_;                                                                                  \
        while (!(ok_ = (cond)) && now_ms() < deadline_)                                            \
            pump(10);                                                                              \
        ok_;                                                                                       \
    })

static void quiet(int ms)
{
    int64_t until = now_ms() + ms;
    while (now_ms() < until)
        pump(10);
}

/* What a subscriber received, as runs: "21..50, 50..60 [closed@60]". */
static const char *describe(const tsub_t *t)
{
    static char buf[4][600];
    static int which;
    char *out = buf[which++ & 3];
    size_t o = 0;
    out[0] = '\0';
    int n = t->n < MAXREC ? t->n : MAXREC;
    for (int i = 0; i < n && o < 500;) {
        int j = i;
        while (j + 1 < n && t->got[j + 1].seq == t->got[j].seq + 1)
            j++;
        if (j > i)
            o += (size_t)snprintf(out + o, 600 - o, "%s%lld..%lld", i ? ", " : "",
                                  (long long)t->got[i].seq, (long long)t->got[j].seq);
        else
            o += (size_t)snprintf(out + o, 600 - o, "%s%lld", i ? ", " : "",
                                  (long long)t->got[i].seq);
        i = j + 1;
    }
    if (!n)
        o += (size_t)snprintf(out + o, 600 - o, "nothing");
    if (t->markers && o < 560)
        snprintf(out + o, 600 - o, " [%d marker(s), kind %d at version %lld after %d events]",
                 t->markers, t->marker_kind, (long long)t->marker_version, t->marker_after);
    return out;
}

/* Exactly the versions (positions) lo..hi, in order, each with the position (version) and
 * stream the writer acknowledged for it. */
static void expect_range(const tsub_t *t, int64_t lo, int64_t hi)
{
    int64_t want = hi >= lo ? hi - lo + 1 : 0;
    cr_assert_eq(t->n, want, "%s: received %s; expected %lld..%lld", t->label, describe(t),
                 (long long)lo, (long long)hi);
    for (int i = 0; i < t->n; i++) {
        const rec_t *r = &t->got[i];
        cr_assert_eq(r->seq, lo + i, "%s: received %s; expected %lld..%lld", t->label, describe(t),
                     (long long)lo, (long long)hi);
        if (t->all) {
            cr_assert_eq(r->stream, all_stream[r->seq],
                         "%s: position %lld from stream %d, the "
                         "writer put stream %d there",
                         t->label, (long long)r->seq, r->stream, all_stream[r->seq]);
            cr_assert_eq(r->other, all_version[r->seq],
                         "%s: position %lld with version %lld, "
                         "acknowledged as %lld",
                         t->label, (long long)r->seq, (long long)r->other,
                         (long long)all_version[r->seq]);
        } else {
            cr_assert_eq(r->stream, t->stream, "%s: a block of another stream", t->label);
            cr_assert_eq(r->other, known[t->stream].pos[r->seq],
                         "%s: version %lld at position "
                         "%lld, acknowledged at %lld",
                         t->label, (long long)r->seq, (long long)r->other,
                         (long long)known[t->stream].pos[r->seq]);
        }
    }
}

static void expect_open(const tsub_t *t)
{
    cr_assert_eq(t->markers, 0, "%s: received %s", t->label, describe(t));
    cr_assert_not(t->got_end, "%s: ended (reason %d)", t->label, t->end_reason);
    cr_assert_not(t->got_kill, "%s: killed (reason %d)", t->label, t->end_reason);
}

/* The close marker right after the last event, carrying the last version, then END. */
static void expect_closed(tsub_t *t, int64_t last_version)
{
    cr_assert(WAIT_FOR(t->got_end || t->got_kill), "%s: no END within %d ms; received %s", t->label,
              DEADLINE_MS, describe(t));
    cr_assert(WAIT_FOR(hs_sub_empty(t->s) && !t->want_write));
    cr_assert_not(t->got_kill, "%s: killed (reason %d) instead of ended", t->label, t->end_reason);
    cr_assert_eq(t->end_reason, HS_SUB_END_CLOSED, "%s: ended with reason %d", t->label,
                 t->end_reason);
    cr_assert_eq(t->markers, 1, "%s: received %s", t->label, describe(t));
    cr_assert_eq(t->marker_kind, HS_BLOCK_CLOSED);
    cr_assert_eq(t->marker_version, last_version, "%s: received %s; the last version is %lld",
                 t->label, describe(t), (long long)last_version);
    cr_assert_eq(t->marker_after, t->n, "%s: events after the close marker: %s", t->label,
                 describe(t));
}

static size_t registered(void)
{
    size_t n = hs_fanout_count(fanout, "$all", 4);
    for (int i = 0; i < nknown; i++)
        n += hs_fanout_count(fanout, known[i].name, known[i].len);
    return n;
}

/* Stops and frees everything, whatever state a failed test left it in. */
static void shutdown_env(void)
{
    for (int i = 0; i < nsubs; i++)
        if (subs[i].s && fanout)
            drop(&subs[i]);
    if (writer)
        hs_writer_stop(writer);
    if (fanout)
        hs_fanout_stop(fanout);
    if (reader)
        hs_reader_stop(reader);
    take_signals();
    hs_fanout_destroy(fanout);
    fanout = NULL;
    hs_reader_destroy(reader);
    reader = NULL;
    hs_writer_destroy(writer);
    writer = NULL;
    if (io_waiter_ok)
        hs_waiter_dispose(&io_waiter);
    io_waiter_ok = false;
    hs_budget_unref(budget);
    budget = NULL;
    spread = false;
    prepare_mp = NULL;
    sub_mp = false;
}

/* The end of every test: each subscriber leaves, the workers drop every subscription, and every
 * catch-up page is given back (no block and no subscription outlives its use). */
static void finish(void)
{
    for (int i = 0; i < nsubs; i++)
        drop(&subs[i]);
    cr_assert(WAIT_FOR(registered() == 0),
              "%zu subscriptions still registered %d ms after "
              "every subscriber left",
              registered(), DEADLINE_MS);
    cr_assert(WAIT_FOR(hs_budget_used(budget) == 0),
              "%zu bytes of catch-up pages still held "
              "%d ms after every subscriber left",
              hs_budget_used(budget), DEADLINE_MS);
    shutdown_env();
#ifdef HS_LEAK_CHECK
    /* Criterion ignores what LeakSanitizer finds at the test process's exit: ask it here, with
     * everything stopped and freed */
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks (above)");
#endif
}

static void teardown(void)
{
    shutdown_env();
    if (dir[0]) {
        static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
        for (size_t i = 0; i < sizeof(suffix) / sizeof(*suffix); i++) {
            char p[160];
            snprintf(p, sizeof(p), "%s%s", db, suffix[i]);
            unlink(p);
        }
        rmdir(dir);
    }
    if (acks_ok)
        sem_destroy(&acks);
    acks_ok = false;
}

TestSuite(fanout, .fini = teardown, .timeout = 60);

/* ---- catch-up, then live ---- */

static void catchup_then_live(int nworkers, int catchup_events)
{
    start(nworkers, catchup_events, NO_STALL);
    int a = add_stream("s", nworkers - 1, nworkers);
    publish(a, 50, 10);
    tsub_t *t = subscribe("from 20", a, true, 20, BIG_OUTBOX);
    cr_assert(WAIT_FOR(t->n >= 30), "catch-up: received %s, expected 21..50", describe(t));
    quiet(QUIET_MS);
    expect_range(t, 21, 50);
    /* live: one publish per event, each its own batch */
    for (int i = 0; i < 10; i++)
        publish(a, 1, 1);
    cr_assert(WAIT_FOR(t->n >= 40), "live: received %s, expected 21..60", describe(t));
    quiet(QUIET_MS);
    expect_range(t, 21, 60);
    expect_open(t);
    finish();
}

Test(fanout, catchup_then_live_without_gap_or_duplicate)
{
    catchup_then_live(1, 1000);
}

Test(fanout, catchup_in_pages_of_7_then_live)
{
    catchup_then_live(2, 7);
}

/* Forty subscribers replaying the same history from the same version share the database
 * reads: each page of 100 events is read once for all of them, not forty times. Each still gets
 * every version once and in order, then live events. */
Test(fanout, subscribers_at_one_cursor_share_each_catchup_read)
{
    start(1, 100, NO_STALL);
    int a = add_stream("shared", 0, 1);
    publish(a, 1000, 50);
    enum { N = 40 };
    tsub_t *t[N];
    for (int i = 0; i < N; i++)
        t[i] = subscribe("from 0", a, true, 0, BIG_OUTBOX);
    for (int i = 0; i < N; i++)
        cr_assert(WAIT_FOR(t[i]->n >= 1000), "%s", describe(t[i]));
    publish(a, 5, 1);
    for (int i = 0; i < N; i++)
        cr_assert(WAIT_FOR(t[i]->n >= 1005), "%s", describe(t[i]));
    quiet(QUIET_MS);
    for (int i = 0; i < N; i++)
        expect_range(t[i], 1, 1005);
    hs_fanout_metrics_t m;
    hs_fanout_metrics(fanout, &m);
    /* each stored event read back once, twice at worst (a page dropped and read again), not
     * once per subscriber (40,000); the reads: 10 full pages, the ones read ahead past the end,
     * and the empty page after the last event, which is not kept (so up to one per subscriber
     * that reaches the end after it came back) */
    cr_assert_leq(m.catchup_rows, 2000, "%llu events read back for 1,000 stored",
                  (unsigned long long)m.catchup_rows);
    cr_assert_leq(m.catchup_reads, 10 + 2 + N, "%llu reads for %d subscribers of 10 pages",
                  (unsigned long long)m.catchup_reads, N);
    cr_assert_geq(m.catchup_shared, (uint64_t)(N - 1) * 5,
                  "%llu catch-up steps served by another's read",
                  (unsigned long long)m.catchup_shared);
    finish();
}

/* What the hub's hs_hub_prepare_mp does, with the JSON's bytes standing in for MessagePack. */
static void fake_prepare_mp(hs_block_t *b)
{
    if (b->kind != HS_BLOCK_EVENT)
        return;
    hs_block_mp_t *mp = malloc(sizeof(*mp) + b->json_len);
    if (!mp)
        return;
    mp->len = b->json_len;
    memcpy(mp->bytes, b->json, b->json_len);
    hs_block_mp_t *expected = NULL;
    if (!atomic_compare_exchange_strong(&b->mp, &expected, mp)) {
        free(mp);
        return;
    }
    hs_block_charge_form(b, hs_block_mp_bytes(mp));
}

/* A MessagePack subscriber's catch-up pages are built with each block's MessagePack form, and
 * the read budget bears those bytes too: the same events held for a JSON subscriber and for a
 * MessagePack one charge the second more by about their JSON's size, and every byte comes back
 * once both have read everything (finish). */
Test(fanout, messagepack_forms_of_catchup_pages_are_charged_to_the_read_budget)
{
    prepare_mp = fake_prepare_mp;
    start(1, 100, NO_STALL);
    int a = add_stream("json", 0, 1), b = add_stream("mpak", 0, 1);
    publish(a, 300, 50);
    publish(b, 300, 50);
    tsub_t *tj = subscribe("JSON, not reading", a, true, 0, BIG_OUTBOX);
    tj->paused = true;
    cr_assert(WAIT_FOR(tj->want_write));
    quiet(QUIET_MS);
    size_t json_only = hs_budget_used(budget);
    cr_assert_gt(json_only, 0);
    sub_mp = true;
    tsub_t *tm = subscribe("MessagePack, not reading", b, true, 0, BIG_OUTBOX);
    tm->paused = true;
    cr_assert(WAIT_FOR(tm->want_write));
    quiet(QUIET_MS);
    size_t with_mp = hs_budget_used(budget) - json_only;
    /* a block holds its JSON, its SSE text and the strings; its MessagePack form adds about
     * the JSON again */
    cr_assert_gt(with_mp, json_only + json_only / 4,
                 "%zu bytes charged for the MessagePack subscriber's pages, %zu for the JSON one's",
                 with_mp, json_only);
    unpause(tj);
    unpause(tm);
    cr_assert(WAIT_FOR(tj->n >= 300 && tm->n >= 300), "%s / %s", describe(tj), describe(tm));
    expect_range(tj, 1, 300);
    expect_range(tm, 1, 300);
    finish();
}

/* One stream's subscribers on two IO threads, served by two workers (each the subscribers of its
 * IO thread): each worker holds its IO thread's subscriptions, every subscriber gets every event
 * once and in order, whichever worker serves it; the count sums both; a close ends them all
 * after the last event. (How often each IO thread is woken is no sign: signals to a subscriber
 * whose last one is still queued are merged.) */
Test(fanout, a_hot_stream_over_two_workers)
{
    spread = true;
    start(2, 16, NO_STALL);
    int a = add_stream("hot", 0, 1);
    publish(a, 40, 4);
    tsub_t *t[8];
    for (int i = 0; i < 6; i++)
        t[i] = subscribe(i % 2 ? "stream, IO 1" : "stream, IO 0", a, true, 0, BIG_OUTBOX);
    t[6] = subscribe("$all, IO 0", -1, true, 0, BIG_OUTBOX);
    t[7] = subscribe("$all, IO 1", -1, true, 0, BIG_OUTBOX);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(t[i]->s->io_index, i % 2);
    /* each worker takes its subscriptions in on its own thread: wait for all eight */
    cr_assert(
        WAIT_FOR(hs_fanout_count(fanout, known[a].name, known[a].len) == 6 &&
                 hs_fanout_count(fanout, "$all", 4) == 2 &&
                 hs_gauge_get(&fanout->w[0].m_subs) + hs_gauge_get(&fanout->w[1].m_subs) == 8),
        "%zu subscriptions to the stream and %zu to $all counted, 6 and 2 made",
        hs_fanout_count(fanout, known[a].name, known[a].len), hs_fanout_count(fanout, "$all", 4));
    /* the partition itself: each worker holds the four subscriptions of its IO thread */
    for (int w = 0; w < 2; w++)
        cr_assert_eq(hs_gauge_get(&fanout->w[w].m_subs), 4, "worker %d holds %lld subscriptions", w,
                     (long long)hs_gauge_get(&fanout->w[w].m_subs));
    for (int i = 0; i < 20; i++)
        publish(a, 10, 2);
    for (int i = 0; i < 8; i++)
        cr_assert(WAIT_FOR(t[i]->n >= 240), "%s: received %s, expected 1..240", t[i]->label,
                  describe(t[i]));
    quiet(QUIET_MS);
    for (int i = 0; i < 8; i++) {
        expect_range(t[i], 1, 240);
        expect_open(t[i]);
    }
    close_stream(a);
    for (int i = 0; i < 6; i++)
        expect_closed(t[i], 240);
    finish();
}

/* Batches a worker has queued and not yet taken (the sink's count against the worker's). */
static uint64_t held(int w)
{
    return hs_ctr_get(&fanout->w[w].m_batches_in) - hs_ctr_get(&fanout->w[w].m_batches_out);
}

/* A worker without subscriptions is not woken for each committed batch (on the IO threads, an
 * IO thread without subscribers would wake for nothing): its batches wait, at most
 * HS_FW_IDLE_BATCHES of them, and it takes them before its first subscription, which then
 * misses nothing. Fails when the sink wakes every worker for every batch (nothing is held). */
Test(fanout, a_worker_without_subscriptions_is_not_woken_for_each_batch)
{
    spread = true;
    start(2, 16, NO_STALL);
    int a = add_stream("quiet", 0, 1);
    tsub_t *t0 = subscribe("IO 0, from the start", a, true, 0, BIG_OUTBOX);
    cr_assert_eq(t0->s->io_index, 0);
    cr_assert(WAIT_FOR(hs_gauge_get(&fanout->w[0].m_subs) == 1));
    for (int i = 0; i < 5; i++)
        publish(a, 1, 1); /* one commit each: each waits for its ack */
    cr_assert(WAIT_FOR(t0->n >= 5), "IO 0 received %s", describe(t0));
    quiet(QUIET_MS);
    cr_assert_eq(held(0), 0, "worker 0 (a subscription) holds %llu batches",
                 (unsigned long long)held(0));
    cr_assert_eq(held(1), 5, "worker 1 (no subscription) holds %llu batches, 5 committed",
                 (unsigned long long)held(1));
    /* bounded: past HS_FW_IDLE_BATCHES queued, the sink wakes it anyway */
    for (int i = 0; i < HS_FW_IDLE_BATCHES + 5; i++)
        publish(a, 1, 1);
    quiet(QUIET_MS);
    cr_assert_lt(held(1), HS_FW_IDLE_BATCHES, "worker 1 holds %llu batches",
                 (unsigned long long)held(1));
    int64_t head = 5 + HS_FW_IDLE_BATCHES + 5;
    /* its first subscriptions, with commits racing them: every event once, in order */
    tsub_t *t1 = subscribe("IO 1, from the start", a, true, 0, BIG_OUTBOX);
    cr_assert_eq(t1->s->io_index, 1);
    tsub_t *l0 = subscribe("IO 0, live only", a, false, 0, BIG_OUTBOX);
    tsub_t *l1 = subscribe("IO 1, live only", a, false, 0, BIG_OUTBOX);
    cr_assert_eq(l1->s->io_index, 1);
    for (int i = 0; i < 10; i++)
        publish(a, 1, 1);
    head += 10;
    cr_assert(WAIT_FOR(t0->n >= head && t1->n >= head), "IO 0 received %s, IO 1 %s", describe(t0),
              describe(t1));
    quiet(QUIET_MS);
    expect_range(t0, 1, head);
    expect_range(t1, 1, head);
    cr_assert_eq(held(1), 0, "worker 1 (subscriptions now) holds %llu batches",
                 (unsigned long long)held(1));
    /* live only: from the first event committed after the subscribe, on either worker */
    cr_assert_gt(l0->n, 0);
    cr_assert_gt(l1->n, 0);
    expect_range(l0, head - l0->n + 1, head);
    expect_range(l1, head - l1->n + 1, head);
    finish();
}

/* The hand-over raced: events keep coming while the catch-up pages are read. */
Test(fanout, catchup_racing_live_publishes)
{
    start(2, 7, NO_STALL);
    int a = add_stream("s", 0, 2);
    int other = add_stream("o", 1, 2);
    publish(a, 50, 5);
    tsub_t *t = subscribe("from 20, publishing meanwhile", a, true, 20, BIG_OUTBOX);
    tsub_t *z = subscribe("from 0, publishing meanwhile", a, true, 0, BIG_OUTBOX);
    for (int i = 0; i < 50; i++) {
        publish(i % 3 ? a : other, 1, 1);
        pump(0);
    }
    int64_t last = known[a].last;
    cr_assert(WAIT_FOR(t->n >= last - 20 && z->n >= last),
              "received %s / %s, expected "
              "21..%lld and 1..%lld",
              describe(t), describe(z), (long long)last, (long long)last);
    quiet(QUIET_MS);
    expect_range(t, 21, last);
    expect_range(z, 1, last);
    finish();
}

/* ---- live only ---- */

Test(fanout, live_only_starts_with_the_first_event_after_subscribing)
{
    start(1, 1000, NO_STALL);
    int a = add_stream("s", 0, 1);
    int other = add_stream("o", 0, 1);
    publish(a, 10, 3);
    publish(other, 5, 5);
    tsub_t *t = subscribe("live only", a, false, 0, BIG_OUTBOX);
    cr_assert_eq(t->live_after, last_pos);
    quiet(3 * QUIET_MS);
    cr_assert_eq(t->n, 0, "before any new event: received %s", describe(t));
    publish(other, 2, 1);
    publish(a, 5, 1);
    cr_assert(WAIT_FOR(t->n >= 5), "received %s, expected 11..15", describe(t));
    quiet(QUIET_MS);
    expect_range(t, 11, 15);
    cr_assert_gt(t->got[0].other, t->live_after);
    expect_open(t);
    finish();
}

/* Events committed between the subscribe and the worker's registration of it (the writer acks
 * before the workers see the batch) are the live-only subscriber's too. */
Test(fanout, live_only_counts_events_committed_before_its_registration)
{
    start(2, 1000, NO_STALL);
    int a = add_stream("s", 1, 2);
    int other = add_stream("o", 0, 2);
    publish(a, 10, 2);
    publish(other, 3, 1);
    tsub_t *t = subscribe("live only, then at once 20 events", a, false, 0, BIG_OUTBOX);
    tsub_t *all = subscribe("$all live only", -1, false, 0, BIG_OUTBOX);
    int64_t after = t->live_after;
    publish_interleaved(a, other, 40); /* a: 11..30 */
    cr_assert(WAIT_FOR(t->n >= 20 && all->n >= 40), "received %s / %s", describe(t), describe(all));
    quiet(QUIET_MS);
    expect_range(t, 11, 30);
    expect_range(all, after + 1, after + 40);
    finish();
}

Test(fanout, live_only_on_a_stream_that_does_not_exist_yet)
{
    start(1, 1000, NO_STALL);
    int a = add_stream("new", 0, 1);
    int other = add_stream("o", 0, 1);
    publish(other, 4, 4);
    tsub_t *t = subscribe("live only, no stream yet", a, false, 0, BIG_OUTBOX);
    quiet(QUIET_MS);
    publish(a, 3, 1);
    cr_assert(WAIT_FOR(t->n >= 3), "received %s", describe(t));
    quiet(QUIET_MS);
    expect_range(t, 1, 3);
    finish();
}

/* ---- from the head, from beyond it ---- */

Test(fanout, from_the_head_receives_only_what_follows)
{
    start(1, 1000, NO_STALL);
    int a = add_stream("s", 0, 1);
    publish(a, 50, 25);
    tsub_t *t = subscribe("from 50 = head", a, true, 50, BIG_OUTBOX);
    quiet(3 * QUIET_MS);
    cr_assert_eq(t->n, 0, "nothing to catch up, yet received %s", describe(t));
    publish(a, 5, 1);
    cr_assert(WAIT_FOR(t->n >= 5), "received %s, expected 51..55", describe(t));
    quiet(QUIET_MS);
    expect_range(t, 51, 55);
    expect_open(t);
    finish();
}

/* A resume point beyond the head: replay "events after this version" holds literally, the
 * versions up to it are skipped when they come. */
Test(fanout, from_beyond_the_head_skips_up_to_it)
{
    start(1, 1000, NO_STALL);
    int a = add_stream("s", 0, 1);
    int b = add_stream("nostream", 0, 1);
    publish(a, 50, 25);
    tsub_t *t = subscribe("from 55, head 50", a, true, 55, BIG_OUTBOX);
    tsub_t *u = subscribe("from 3, stream absent", b, true, 3, BIG_OUTBOX);
    tsub_t *z = subscribe("from 0, stream absent", b, true, 0, BIG_OUTBOX);
    quiet(3 * QUIET_MS);
    cr_assert_eq(t->n, 0, "received %s", describe(t));
    cr_assert_eq(u->n + z->n, 0, "received %s / %s", describe(u), describe(z));
    for (int i = 0; i < 10; i++)
        publish(a, 1, 1);
    publish(b, 5, 1);
    cr_assert(WAIT_FOR(t->n >= 5 && u->n >= 2 && z->n >= 5), "received %s / %s / %s", describe(t),
              describe(u), describe(z));
    quiet(QUIET_MS);
    expect_range(t, 56, 60);
    expect_range(u, 4, 5);
    expect_range(z, 1, 5);
    finish();
}

/* ---- a type filter: skipped events move the cursor too ---- */

Test(fanout, type_filter_skips_without_falling_behind)
{
    start(1, 7, NO_STALL);
    int a = add_stream("s", 0, 1);
    for (int i = 0; i < 20; i++) {
        hs_ingest_t *e = build(a, 1, i % 2 ? "even" : "odd"); /* version i + 1 */
        submit(e);
        wait_acks(1);
        record_ack(e);
        hs_ingest_free(e);
    }
    const char *types[] = {"even"};
    tsub_t *t = subscribe_types("types=even from 0", a, true, 0, BIG_OUTBOX, types, 1);
    cr_assert(WAIT_FOR(t->n >= 10), "received %s", describe(t));
    for (int i = 20; i < 30; i++) {
        hs_ingest_t *e = build(a, 1, i % 2 ? "even" : "odd");
        submit(e);
        wait_acks(1);
        record_ack(e);
        hs_ingest_free(e);
    }
    cr_assert(WAIT_FOR(t->n >= 15), "received %s", describe(t));
    quiet(QUIET_MS);
    cr_assert_eq(t->n, 15, "received %s, expected the 15 even versions 2..30", describe(t));
    for (int i = 0; i < 15; i++)
        cr_assert_eq(t->got[i].seq, 2 * (i + 1), "received %s", describe(t));
    finish();
}

/* ---- outbox overflow: back to catch-up, and back to live ---- */

/* An outbox of about three events (what hs_fanout_block_size() counts for one of them). */
static size_t tiny_outbox(void)
{
    return 3 * EVENT_BYTES;
}

static void overflow(int before, bool co_reader)
{
    start(2, 1000, NO_STALL);
    int a = add_stream("s", 1, 2);
    if (before)
        publish(a, before, 10); /* not cached: the workers have no entry for the stream yet */
    tsub_t *t = subscribe("tiny outbox, not reading", a, true, 0, tiny_outbox());
    tsub_t *r = co_reader ? subscribe("a reader alongside", a, true, 0, BIG_OUTBOX) : NULL;
    t->paused = true;
    for (int i = 0; i < 100; i++) {
        publish(a, 1, 1);
        pump(0);
    }
    for (int i = 0; i < 10; i++) {
        publish(a, 10, 10);
        pump(0);
    }
    int64_t last = known[a].last;
    cr_assert_eq(last, before + 200);
    quiet(QUIET_MS);
    cr_assert_lt(t->n, 10, "the paused subscriber received %d events", t->n);
    /* waited for, not read once: on a loaded machine the worker may still be on its way to
     * the full outbox after the quiet period */
    cr_assert(WAIT_FOR(atomic_load(&t->s->want_space)), "a full outbox asks for SPACE");
    unpause(t);
    cr_assert(WAIT_FOR(t->n >= last), "after draining: received %s, expected 1..%lld", describe(t),
              (long long)last);
    quiet(QUIET_MS);
    expect_range(t, 1, last);
    cr_assert_gt(t->space_sent, 0, "the outbox never asked for space: no overflow tested");
    expect_open(t);
    if (r) {
        cr_assert(WAIT_FOR(r->n >= last));
        expect_range(r, 1, last);
    }
    /* and live again */
    publish(a, 3, 1);
    cr_assert(WAIT_FOR(t->n >= last + 3), "received %s", describe(t));
    quiet(QUIET_MS);
    expect_range(t, 1, last + 3);
    finish();
}

/* The tiny outboxes below hold about three events: check what one event counts. */
Test(fanout, events_are_the_size_the_tiny_outboxes_assume)
{
    start(1, 1000, NO_STALL);
    int a = add_stream("s", 0, 1);
    publish(a, 12, 1);
    tsub_t *t = subscribe("from 0", a, true, 0, BIG_OUTBOX);
    cr_assert(WAIT_FOR(t->n >= 12));
    for (int i = 0; i < t->n; i++)
        cr_assert(t->got[i].bytes > EVENT_BYTES * 4 / 5 && t->got[i].bytes <= EVENT_BYTES,
                  "an event counts %zu bytes, EVENT_BYTES is %d", t->got[i].bytes, EVENT_BYTES);
    finish();
}

Test(fanout, outbox_overflow_falls_back_to_catchup_and_returns)
{
    overflow(0, false);
}

Test(fanout, outbox_overflow_with_a_reader_alongside)
{
    overflow(0, true);
}

Test(fanout, outbox_overflow_during_catchup_from_the_database)
{
    overflow(100, false);
}

/* ---- a closed stream ---- */

Test(fanout, close_marker_after_the_last_event_then_end)
{
    start(1, 1000, NO_STALL);
    int a = add_stream("s", 0, 1);
    publish(a, 5, 5);
    tsub_t *t = subscribe("from 0", a, true, 0, BIG_OUTBOX);
    tsub_t *l = subscribe("live only", a, false, 0, BIG_OUTBOX);
    cr_assert(WAIT_FOR(t->n >= 5));
    publish(a, 2, 1);
    cr_assert(WAIT_FOR(t->n >= 7 && l->n >= 2));
    close_stream(a);
    expect_closed(t, 7);
    expect_closed(l, 7);
    expect_range(t, 1, 7);
    expect_range(l, 6, 7);
    cr_assert(WAIT_FOR(hs_fanout_count(fanout, known[a].name, known[a].len) == 0),
              "ended subscriptions stay registered");
    finish();
}

Test(fanout, close_while_catching_up)
{
    start(2, 7, NO_STALL);
    int a = add_stream("s", 0, 2);
    publish(a, 30, 10);
    tsub_t *t = subscribe("from 0, close comes during catch-up", a, true, 0, BIG_OUTBOX);
    tsub_t *u = subscribe("from 12, close comes during catch-up", a, true, 12, BIG_OUTBOX);
    close_stream(a);
    expect_closed(t, 30);
    expect_closed(u, 30);
    expect_range(t, 1, 30);
    expect_range(u, 13, 30);
    finish();
}

/* Nobody subscribed when the close went by: the catch-up reads find the close in the database. */
Test(fanout, subscribing_after_the_close)
{
    start(1, 7, NO_STALL);
    int a = add_stream("s", 0, 1);
    publish(a, 20, 4);
    close_stream(a);
    tsub_t *t = subscribe("from 0 after the close", a, true, 0, BIG_OUTBOX);
    tsub_t *m = subscribe("from 9 after the close", a, true, 9, BIG_OUTBOX);
    tsub_t *h = subscribe("from the last version after the close", a, true, 20, BIG_OUTBOX);
    tsub_t *l = subscribe("live only after the close", a, false, 0, BIG_OUTBOX);
    expect_closed(t, 20);
    expect_range(t, 1, 20);
    expect_closed(m, 20);
    expect_range(m, 10, 20);
    expect_closed(h, 20);
    expect_range(h, 1, 0);
    expect_closed(l, 20);
    expect_range(l, 1, 0);
    finish();
}

/* A subscriber that is behind (its outbox full) when the close goes by keeps the worker's entry
 * for the stream, and the block cache, alive: later subscribers catch up from that cache and
 * must still learn that the stream is closed (stress_fanout --subscribe-after-close). */
Test(fanout, subscribing_after_the_close_while_another_holds_the_cache)
{
    start(1, 7, NO_STALL);
    int a = add_stream("s", 0, 1);
    tsub_t *stuck = subscribe("behind, before the close", a, true, 0, tiny_outbox());
    stuck->paused = true;
    for (int i = 0; i < 20; i++)
        publish(a, 1, 1);
    quiet(QUIET_MS);
    close_stream(a);
    quiet(QUIET_MS);
    cr_assert_eq(hs_fanout_count(fanout, known[a].name, known[a].len), 1);
    tsub_t *t = subscribe("from 0 after the close", a, true, 0, BIG_OUTBOX);
    tsub_t *m = subscribe("from 9 after the close", a, true, 9, BIG_OUTBOX);
    tsub_t *h = subscribe("from the last version after the close", a, true, 20, BIG_OUTBOX);
    tsub_t *l = subscribe("live only after the close", a, false, 0, BIG_OUTBOX);
    expect_closed(t, 20);
    expect_range(t, 1, 20);
    expect_closed(m, 20);
    expect_range(m, 10, 20);
    expect_closed(h, 20);
    expect_range(h, 1, 0);
    expect_closed(l, 20);
    expect_range(l, 1, 0);
    unpause(stuck);
    expect_closed(stuck, 20);
    expect_range(stuck, 1, 20);
    finish();
}

/* A deleted stream ends its subscribers with the deleted marker, after the last event they got. */
Test(fanout, delete_ends_subscribers_with_the_deleted_marker)
{
    start(1, 1000, NO_STALL);
    int a = add_stream("s", 0, 1);
    publish(a, 6, 3);
    tsub_t *t = subscribe("from 0", a, true, 0, BIG_OUTBOX);
    tsub_t *l = subscribe("live only", a, false, 0, BIG_OUTBOX);
    tsub_t *all = subscribe("$all", -1, true, 0, BIG_OUTBOX);
    cr_assert(WAIT_FOR(t->n >= 6 && all->n >= 6));
    admin(HS_INGEST_DELETE, a);
    cr_assert(WAIT_FOR(t->got_end && l->got_end && hs_sub_empty(t->s) && hs_sub_empty(l->s) &&
                       !t->want_write && !l->want_write),
              "no END after the delete: %s / %s", describe(t), describe(l));
    for (int i = 0; i < 2; i++) {
        tsub_t *u = i ? l : t;
        cr_assert_eq(u->end_reason, HS_SUB_END_DELETED, "%s: reason %d", u->label, u->end_reason);
        cr_assert_eq(u->markers, 1, "%s: received %s", u->label, describe(u));
        cr_assert_eq(u->marker_kind, HS_BLOCK_DELETED, "%s: received %s", u->label, describe(u));
        cr_assert_eq(u->marker_after, u->n, "%s: received %s", u->label, describe(u));
    }
    expect_range(t, 1, 6);
    expect_range(l, 1, 0);
    /* $all goes on */
    int b = add_stream("b", 0, 1);
    publish(b, 2, 1);
    cr_assert(WAIT_FOR(all->n >= 8));
    quiet(QUIET_MS);
    expect_range(all, 1, 8);
    expect_open(all);
    finish();
}

/* ---- $all ---- */

Test(fanout, all_positions_are_consecutive_across_two_streams)
{
    start(2, 1000, NO_STALL);
    int a = add_stream("a", 0, 2);
    int b = add_stream("b", 1, 2); /* the other worker: $all lives on worker 0 */
    publish_interleaved(a, b, 20);
    tsub_t *t = subscribe("$all from 5", -1, true, 5, BIG_OUTBOX);
    tsub_t *l = subscribe("$all live only", -1, false, 0, BIG_OUTBOX);
    tsub_t *s7 = subscribe("$all from 0", -1, true, 0, BIG_OUTBOX);
    cr_assert(WAIT_FOR(t->n >= 15 && s7->n >= 20), "received %s / %s", describe(t), describe(s7));
    publish_interleaved(a, b, 20);
    publish(a, 4, 2);
    publish(b, 3, 3);
    cr_assert_eq(last_pos, 47);
    cr_assert(WAIT_FOR(t->n >= 42 && l->n >= 27 && s7->n >= 47), "received %s / %s / %s",
              describe(t), describe(l), describe(s7));
    /* a stream's close is not the end of $all */
    close_stream(a);
    publish(b, 2, 1);
    cr_assert(WAIT_FOR(t->n >= 44 && l->n >= 29 && s7->n >= 49));
    quiet(QUIET_MS);
    expect_range(t, 6, 49);
    expect_range(l, 21, 49);
    expect_range(s7, 1, 49);
    expect_open(t);
    expect_open(l);
    finish();
}

Test(fanout, all_catchup_in_small_pages)
{
    start(2, 7, NO_STALL);
    int a = add_stream("a", 0, 2);
    int b = add_stream("b", 1, 2);
    publish_interleaved(a, b, 40);
    tsub_t *t = subscribe("$all from 3", -1, true, 3, BIG_OUTBOX);
    for (int i = 0; i < 10; i++) {
        publish(i % 2 ? a : b, 2, 2);
        pump(0);
    }
    cr_assert(WAIT_FOR(t->n >= 57), "received %s", describe(t));
    quiet(QUIET_MS);
    expect_range(t, 4, 60);
    finish();
}

Test(fanout, all_outbox_overflow_falls_back_and_returns)
{
    start(2, 1000, NO_STALL);
    int a = add_stream("a", 0, 2);
    int b = add_stream("b", 1, 2);
    publish_interleaved(a, b, 30); /* before anyone subscribed: only in the database */
    tsub_t *t = subscribe("$all from 0, tiny outbox, not reading", -1, true, 0, tiny_outbox());
    t->paused = true;
    for (int i = 0; i < 5; i++) {
        publish_interleaved(a, b, 30);
        pump(0);
    }
    quiet(QUIET_MS);
    cr_assert_eq(last_pos, 180);
    unpause(t);
    cr_assert(WAIT_FOR(t->n >= 180), "received %s, expected 1..180", describe(t));
    publish_interleaved(b, a, 4);
    cr_assert(WAIT_FOR(t->n >= 184), "received %s, expected 1..184", describe(t));
    quiet(QUIET_MS);
    expect_range(t, 1, 184);
    cr_assert_gt(t->space_sent, 0);
    finish();
}

/* ---- unsubscribing while a catch-up read is out ---- */

/* The subscription's references once the worker and the reads let go: only the observer's. */
static unsigned refs(const hs_sub_t *s)
{
    return atomic_load(&((hs_sub_t *)s)->refs);
}

Test(fanout, unsubscribe_while_a_catchup_read_is_in_flight)
{
    start(2, 50, NO_STALL);
    int a = add_stream("s", 1, 2);
    publish(a, 300, 50);
    for (int round = 0; round < 24; round++) {
        tsub_t *t = subscribe("leaves during catch-up", a, true, 0, BIG_OUTBOX);
        /* an observer's reference: the subscription must come back to it alone */
        hs_sub_t *s = hs_sub_ref(t->s);
        switch (round % 4) {
        case 0:
            break; /* before the worker even registered it */
        case 1:
            sched_yield();
            break;
        case 2:
            usleep(500);
            break; /* its first read out, or just back */
        case 3:
            cr_assert(WAIT_FOR(t->n > 0));
            break; /* the read ahead out */
        }
        drop(t);
        cr_assert(WAIT_FOR(refs(s) == 1), "round %d: %u references left after unsubscribe", round,
                  refs(s));
        hs_sub_unref(s);
    }
    /* the same without an observer: the read's reference may be the last one (ASan watches) */
    for (int round = 0; round < 24; round++) {
        tsub_t *t = subscribe("leaves during catch-up, no observer", a, true, (round * 37) % 300,
                              BIG_OUTBOX);
        if (round % 3 == 1)
            usleep(300);
        else if (round % 3 == 2)
            (void)WAIT_FOR(t->n > 0);
        drop(t);
    }
    cr_assert(WAIT_FOR(registered() == 0), "%zu still registered", registered());
    cr_assert(WAIT_FOR(hs_budget_used(budget) == 0),
              "%zu bytes of catch-up pages never "
              "freed",
              hs_budget_used(budget));
    /* the worker is intact: a new subscriber gets its events */
    tsub_t *t = subscribe("after all that", a, true, 290, BIG_OUTBOX);
    publish(a, 2, 1);
    cr_assert(WAIT_FOR(t->n >= 12), "received %s", describe(t));
    quiet(QUIET_MS);
    expect_range(t, 291, 302);
    finish();
}

/* ---- stalls ---- */

Test(fanout, a_subscriber_that_never_reads_is_ended_as_stalled_and_only_it)
{
    const int stall_ms = 300;
    start(2, 1000, stall_ms);
    int a = add_stream("s", 0, 2);
    int idle_stream = add_stream("idle", 1, 2);
    tsub_t *stuck = subscribe("never reads", a, true, 0, tiny_outbox());
    stuck->paused = true;
    tsub_t *fast = subscribe("reads everything", a, true, 0, BIG_OUTBOX);
    tsub_t *slow = subscribe("reads every 40 ms, small outbox", a, true, 0, 4096);
    slow->gap_ms = 40;
    tsub_t *idle = subscribe("nothing to read", idle_stream, false, 0, tiny_outbox());
    tsub_t *all = subscribe("$all, reads", -1, true, 0, BIG_OUTBOX);
    for (int i = 0; i < 20; i++) {
        publish(a, 1, 1);
        pump(5);
    }
    cr_assert(WAIT_FOR(stuck->got_kill),
              "the stuck subscriber was not ended within %d ms "
              "(stall timeout %d ms)",
              DEADLINE_MS, stall_ms);
    cr_assert_eq(stuck->end_reason, HS_SUB_END_STALLED);
    cr_assert_geq(stuck->killed_ms - stuck->subscribed_ms, stall_ms,
                  "ended %lld ms after it subscribed, before the stall timeout",
                  (long long)(stuck->killed_ms - stuck->subscribed_ms));
    cr_assert(WAIT_FOR(hs_fanout_count(fanout, known[a].name, known[a].len) == 2),
              "the stalled subscription is still registered");
    drop(stuck);
    /* the others keep going for several stall timeouts */
    int64_t until = now_ms() + 4 * stall_ms;
    while (now_ms() < until) {
        publish(a, 1, 1);
        quiet(20);
    }
    int64_t last = known[a].last;
    cr_assert(WAIT_FOR(fast->n >= last && slow->n >= last && all->n >= last),
              "received %s / %s / %s", describe(fast), describe(slow), describe(all));
    quiet(QUIET_MS);
    expect_range(fast, 1, last);
    expect_range(slow, 1, last);
    expect_range(all, 1, last);
    expect_open(fast);
    expect_open(slow);
    expect_open(all);
    expect_open(idle);
    cr_assert_eq(idle->n, 0);
    finish();
}
