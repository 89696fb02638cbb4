/*
 * Stress: the fan-out workers (fanout/fanout.c) end to end, with everything around them real
 * except the sockets: publisher threads append through the writer (storage/writer.c) to a SQLite
 * file, the writer hands each committed batch to hs_fanout_sink(), two workers deliver to the
 * subscribers' outboxes, catch-up reads run on the reader threads (storage/reader.c), and two
 * fake IO threads, each owning an hs_mpsc_t inbox woken by the wake_io callback, take the
 * signalled subscriptions and pop their outboxes the way sse.c does.
 *
 * Why: the workers are where live delivery, the block cache, shared catch-up pages (joined while
 * read, kept, read ahead, waiting for a small read budget), outbox overflow, SPACE, stalls, close
 * markers and unsubscribes meet, across five kinds of threads. The unit tests cannot run any of it
 * under ThreadSanitizer, and the integration tests cannot check every subscriber's sequence.
 *
 * Subscribers (per stream, and three on $all) subscribe at different points of the publishing:
 * live only (no `from`) and from 0 or a later version (catch-up, then live); fast readers, slow
 * ones whose small outbox overflows so that they go back to catch-up and SPACE, stuck ones that
 * never read and must be ended as stalled; and ones that unsubscribe after a few events or at
 * once, i.e. while their catch-up read is in flight (pass --skip-unsub-catchup to leave those
 * out). When the publishers are done every stream is closed, so the subscribers that stay get
 * the close marker and the END signal; some subscribe just before that, so that the close finds
 * them catching up.
 *
 * Checks: each subscriber sees versions (positions on $all) strictly consecutive, with no gap and
 * no duplicate, from its start point: from + 1, or for a live-only subscriber the first event
 * committed after it subscribed (by the writer's last position at that time); one that stays to
 * the end gets every event up to the last, then the close marker carrying the last version; the
 * positions in its blocks are those the writer acknowledged; stuck subscribers are ended as
 * stalled and nobody else is; nothing stays registered; ASan checks that nothing leaks.
 *
 * --subscribe-after-close adds, per stream, subscribers that come once every stream is closed,
 * while a stuck subscriber still holds the worker's entry for the stream and its block cache.
 * They must get every event and then the close marker. When this was written they did not: the
 * close went through the worker before they registered, and serve_cache() in fanout/fanout.c
 * turned them live at the end of the cache without knowing the stream is closed, so they waited
 * forever. The worker's stream entry now remembers the close; ctest runs this mode as
 * stress_fanout_late_close.
 *
 * Usage: stress_fanout [--skip-unsub-catchup] [--subscribe-after-close] [--seed N]
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hubstream/hubstream.h"
#include "ringbuf/block.h"
#include "ringbuf/budget.h"
#include "ringbuf/mpsc.h"
#include "ringbuf/sub.h"
#include "ringbuf/waiter.h"
#include "proto/codec.h"
#include "fanout/fanout.h"
#include "fanout/worker.h" /* the report of an unfinished run looks at the kept pages */
#include "storage/reader.h"
#include "storage/writer.h"
#include "stress.h"

#define NIO              2
#define NWORKERS         2
#define NREADERS         2
#define NPUB             3
#define PUB_EVENTS       1000 /* per publisher */
#define TOTAL_EVENTS     (NPUB * PUB_EVENTS)
#define PUB_INFLIGHT     4
#define NSTREAMS         6
#define MAX_VERSION      (TOTAL_EVENTS + 1)
#define CATCHUP_EVENTS   40 /* small pages: many reads, reads ahead */
#define READ_BUDGET      (256 * 1024)
#define STALL_MS         1500
#define FAST_OUTBOX      (64 * 1024)
#define SLOW_OUTBOX      3000 /* a dozen events: slow readers overflow it all the time */
#define STUCK_OUTBOX     2048
#define DONE_DEADLINE_US (30LL * 1000000)
#define AFTER_CLOSE      (-1) /* threshold: subscribe once every stream is closed */

/* ---- the run's shared state ---- */

typedef struct stream_info {
    char name[32];
    uint32_t len;
    int64_t pos[MAX_VERSION + 1]; /* version -> position, from the writer's acks */
    _Atomic int64_t final_version;
} stream_info_t;

static stream_info_t streams[NSTREAMS];
static hs_writer_t *writer;
static hs_reader_t *reader;
static hs_fanout_t *fanout;
static atomic_int published;      /* events acknowledged so far */
static _Atomic int64_t final_all; /* last position, set once every stream is closed; 0 before */
static atomic_int finished;
static atomic_int ready;  /* subscribers known to be registered by their worker */
static atomic_int closed; /* every stream is closed */
static int nbefore;       /* subscribers that subscribe before the close */
static bool skip_unsub_catchup, after_close;

/* ---- subscribers ---- */

enum { SPEED_FAST, SPEED_SLOW, SPEED_STUCK };
enum { ST_PENDING, ST_ACTIVE, ST_DONE };

typedef struct tsub {
    int id;
    int io;
    int stream; /* index into streams, or -1 for $all */
    bool has_from;
    int64_t from;
    int speed;
    int unsub_after; /* unsubscribe after this many events; -1: stay to the end */
    int threshold;   /* subscribe once this many events are acknowledged, or AFTER_CLOSE */
    /* IO thread state */
    int state;
    hs_sub_t *s;
    int64_t live_after;
    bool want_write, got_end, got_kill, ready;
    int end_reason;
    int64_t first, last; /* sequence numbers received; 0 = none yet */
    int64_t marker_version;
    bool marker;
    uint64_t received, turns;
    int64_t next_pop_us; /* slow readers: not before then */
    int64_t *seen_pos;   /* stream: version -> position received; $all: position -> version */
} tsub_t;

static tsub_t *subs;
static int nsubs;

typedef struct io {
    int index;
    hs_mpsc_t inbox;
    hs_waiter_t waiter;
    pthread_t th;
    atomic_int stop;
    uint64_t signals, empty_signals, space_sent;
} io_t;

static io_t ios[NIO];

static const char *speed_name(int s)
{
    return s == SPEED_FAST ? "fast" : s == SPEED_SLOW ? "slow" : "stuck";
}

static void describe(const tsub_t *t, char *out, size_t len)
{
    char start[40];
    if (t->has_from)
        snprintf(start, sizeof(start), "from %lld", (long long)t->from);
    else
        snprintf(start, sizeof(start), "live after position %lld", (long long)t->live_after);
    char leave[40];
    if (t->unsub_after < 0)
        snprintf(leave, sizeof(leave), "stays");
    else
        snprintf(leave, sizeof(leave), "leaves after %d events", t->unsub_after);
    snprintf(out, len, "subscriber %d (%s, %s reader, %s, %s, %s, IO thread %d)", t->id,
             t->stream < 0 ? "$all" : streams[t->stream].name, speed_name(t->speed), start, leave,
             t->threshold == AFTER_CLOSE ? "after the close" : "before the close", t->io);
}

static void wake_io(void *ctx, int index)
{
    hs_waiter_wake(&ios[index].waiter);
}

static bool io_has_work(void *ctx)
{
    io_t *io = ctx;
    return !hs_mpsc_empty(&io->inbox) || atomic_load(&io->stop);
}

/* The worker has registered it (it queued something, ended it, or it is gone): the streams
 * may be closed without racing its registration. */
static void mark_ready(tsub_t *t)
{
    if (t->ready)
        return;
    t->ready = true;
    if (t->threshold != AFTER_CLOSE)
        atomic_fetch_add(&ready, 1);
}

/* The connection goes away: what hs_sse_closed() does. */
static void drop(tsub_t *t)
{
    hs_sub_t *s = t->s;
    s->io_ctx = NULL;
    hs_fanout_unsubscribe(fanout, s);
    hs_sub_unref(s);
    t->s = NULL;
    t->state = ST_DONE;
    mark_ready(t);
    atomic_fetch_add(&finished, 1);
}

static void start(io_t *io, tsub_t *t)
{
    const char *name = t->stream < 0 ? "$all" : streams[t->stream].name;
    size_t len = t->stream < 0 ? 4 : streams[t->stream].len;
    size_t bound = t->speed == SPEED_FAST   ? FAST_OUTBOX
                   : t->speed == SPEED_SLOW ? SLOW_OUTBOX
                                            : STUCK_OUTBOX;
    hs_sub_t *s = hs_sub_create(name, len, NULL, 0, bound);
    CHECK(s != NULL, "hs_sub_create");
    hs_writer_stats_t ws;
    hs_writer_stats(writer, &ws);
    s->has_from = t->has_from;
    s->from = t->from;
    s->live_after = ws.last_position;
    s->io_index = io->index;
    s->io_ctx = t;
    t->live_after = ws.last_position;
    t->s = s;
    t->state = ST_ACTIVE;
    hs_fanout_subscribe(fanout, s);
    if (t->unsub_after == 0)
        drop(t); /* gone before the worker even registered it, or while its first read runs */
}

/* One block popped by subscriber t: the whole of "no gap, no duplicate". */
static void on_block(tsub_t *t, hs_block_t *b)
{
    char who[256];
    if (b->kind != HS_BLOCK_EVENT) {
        describe(t, who, sizeof(who));
        CHECK(b->kind == HS_BLOCK_CLOSED && t->stream >= 0, "%s: a marker of kind %d", who,
              b->kind);
        CHECK(!t->marker, "%s: a second close marker", who);
        t->marker = true;
        t->marker_version = b->version;
        return;
    }
    if (t->marker) {
        describe(t, who, sizeof(who));
        FAILF("%s: event %lld after the close marker", who, (long long)b->version);
    }
    int64_t seq = t->stream < 0 ? b->position : b->version;
    if (t->stream >= 0) {
        const stream_info_t *si = &streams[t->stream];
        if (b->stream_len != si->len || memcmp(b->stream, si->name, si->len) != 0) {
            describe(t, who, sizeof(who));
            FAILF("%s: a block of stream %.*s", who, (int)b->stream_len, b->stream);
        }
    }
    if (!t->first) {
        t->first = seq;
        if (t->has_from && seq != t->from + 1) {
            describe(t, who, sizeof(who));
            FAILF("%s: first event %lld, expected %lld", who, (long long)seq,
                  (long long)t->from + 1);
        }
        if (!t->has_from && t->stream < 0 && seq != t->live_after + 1) {
            describe(t, who, sizeof(who));
            FAILF("%s: first position %lld, expected %lld (live after %lld)", who, (long long)seq,
                  (long long)t->live_after + 1, (long long)t->live_after);
        }
    } else if (seq != t->last + 1) {
        describe(t, who, sizeof(who));
        FAILF("%s: got %lld after %lld (%s)", who, (long long)seq, (long long)t->last,
              seq <= t->last ? "duplicate" : "gap");
    }
    CHECK(seq >= 1 && seq <= MAX_VERSION, "sequence %lld out of range", (long long)seq);
    t->last = seq;
    t->received++;
    t->seen_pos[seq] = t->stream < 0 ? b->version : b->position;
}

/* A writable turn of subscriber t: pops as its speed allows, then asks for space like sse.c. */
static void turn(io_t *io, tsub_t *t)
{
    hs_sub_t *s = t->s;
    t->turns++;
    if (t->speed != SPEED_STUCK || t->got_kill || t->got_end) {
        /* slow: 4 blocks a millisecond at most, however often signals come; stuck ones read
         * only once they are ended */
        int budget = 1 << 30;
        if (t->speed == SPEED_SLOW && !t->got_end && !t->got_kill) {
            int64_t now = stress_now_us();
            budget = now >= t->next_pop_us ? 4 : 0;
            if (budget)
                t->next_pop_us = now + 1000;
        }
        hs_block_t *b;
        while (budget-- > 0 && (b = hs_sub_pop_spsc(s, hs_fanout_block_size))) {
            on_block(t, b);
            hs_block_unref(b);
            if (t->unsub_after > 0 && t->received >= (uint64_t)t->unsub_after) {
                drop(t);
                return;
            }
        }
        if (hs_sub_space_due(s)) {
            hs_fanout_space(fanout, s);
            io->space_sent++;
        }
        if (hs_sub_empty(s))
            t->want_write = false;
    }
    char who[256];
    if (t->got_kill) {
        describe(t, who, sizeof(who));
        CHECK(t->end_reason == HS_SUB_END_STALLED, "%s: killed with reason %d", who, t->end_reason);
        CHECK(t->speed == SPEED_STUCK,
              "%s: ended as stalled, but it reads (a turn at least "
              "every few ms, stall timeout %d ms)",
              who, STALL_MS);
        drop(t);
        return;
    }
    if (t->got_end && hs_sub_empty(s)) {
        describe(t, who, sizeof(who));
        CHECK(t->end_reason == HS_SUB_END_CLOSED, "%s: ended with reason %d", who, t->end_reason);
        CHECK(t->marker, "%s: END without the close marker", who);
        drop(t);
        return;
    }
    int64_t fa = atomic_load(&final_all);
    if (t->stream < 0 && fa && t->last == fa && hs_sub_empty(s))
        drop(t); /* $all has no close marker: it has everything */
}

static void *io_thread(void *arg)
{
    io_t *io = arg;
    for (;;) {
        for (hs_mpsc_node_t *n = hs_mpsc_take_all(&io->inbox), *nx; n; n = nx) {
            nx = n->next;
            CHECK(n->kind == HS_NODE_SUB_IO, "inbox node kind %d", n->kind);
            hs_sub_t *s = hs_container_of(n, hs_sub_t, io_node);
            unsigned fl = hs_sub_take_io_flags(s);
            io->signals++;
            if (!fl)
                io->empty_signals++;
            tsub_t *t = s->io_ctx;
            if (t) {
                CHECK(t->s == s && t->io == io->index, "signal for a subscription of another "
                                                       "IO thread");
                if (fl & (HS_SUB_IO_DATA | HS_SUB_IO_END | HS_SUB_IO_KILL))
                    t->want_write = true;
                if (fl & (HS_SUB_IO_END | HS_SUB_IO_KILL))
                    t->end_reason = atomic_load(&s->end_reason);
                t->got_end |= (fl & HS_SUB_IO_END) != 0;
                t->got_kill |= (fl & HS_SUB_IO_KILL) != 0;
            }
            hs_sub_unref(s); /* the inbox's reference */
        }
        if (atomic_load(&io->stop) == 2)
            return NULL; /* frozen for the diagnostic of a failed run */
        if (atomic_load(&io->stop))
            break;
        int pub = atomic_load(&published);
        bool pending = false;
        for (int i = io->index; i < nsubs; i += NIO) {
            tsub_t *t = &subs[i];
            if (t->state == ST_PENDING &&
                (t->threshold == AFTER_CLOSE ? atomic_load(&closed) != 0 : pub >= t->threshold))
                start(io, t);
            if (t->state != ST_ACTIVE)
                continue;
            /* $all ends on a count, not on a signal */
            if (t->want_write || t->got_end || t->got_kill ||
                (t->stream < 0 && atomic_load(&final_all)))
                turn(io, t);
            if (t->state == ST_ACTIVE && (t->received || !hs_sub_empty(t->s)))
                mark_ready(t);
            if (t->state == ST_ACTIVE && t->want_write && t->speed == SPEED_SLOW)
                pending = true;
            if (t->state == ST_ACTIVE && t->stream < 0 && atomic_load(&final_all))
                pending = true;
        }
        bool waiting = false;
        for (int i = io->index; i < nsubs && !waiting; i += NIO)
            waiting = subs[i].state == ST_PENDING;
        hs_waiter_sleep(&io->waiter, pending ? 1 : waiting ? 5 : 50, io_has_work, io);
    }
    /* the server closes its connections before it stops: so do we */
    for (int i = io->index; i < nsubs; i += NIO)
        if (subs[i].state == ST_ACTIVE)
            drop(&subs[i]);
    return NULL;
}

/* ---- publishers ---- */

typedef struct pub {
    int index;
    hs_mpsc_t done_q;
    hs_waiter_t waiter;
    pthread_t th;
    uint64_t seed;
    int inflight;
    uint64_t appends;
} pub_t;

static pub_t pubs[NPUB];

static void pub_done(hs_ingest_t *e)
{
    pub_t *p = e->origin;
    if (hs_mpsc_push(&p->done_q, &e->node))
        hs_waiter_wake(&p->waiter);
}

static bool pub_has_work(void *ctx)
{
    return !hs_mpsc_empty(&((pub_t *)ctx)->done_q);
}

static int stream_of(const hs_ingest_t *e)
{
    for (int i = 0; i < NSTREAMS; i++)
        if (e->stream_len == streams[i].len &&
            memcmp(e->stream, streams[i].name, e->stream_len) == 0)
            return i;
    FAILF("an ack for unknown stream %.*s", (int)e->stream_len, e->stream);
}

/* Takes acknowledged entries; records where each event went. */
static void reap(pub_t *p)
{
    for (hs_mpsc_node_t *n = hs_mpsc_take_all(&p->done_q), *nx; n; n = nx) {
        nx = n->next;
        hs_ingest_t *e = hs_container_of(n, hs_ingest_t, node);
        CHECK(e->status == 0, "publisher %d: append to %.*s failed: %s", p->index,
              (int)e->stream_len, e->stream, hs_strerror(e->status));
        const hs_publish_result_t *r = &e->result;
        CHECK(r->last_version - r->first_version == (int64_t)e->nevents - 1 &&
                  r->last_position - r->first_position == (int64_t)e->nevents - 1,
              "publisher %d: result %lld..%lld at %lld..%lld for %u events", p->index,
              (long long)r->first_version, (long long)r->last_version, (long long)r->first_position,
              (long long)r->last_position, e->nevents);
        stream_info_t *si = &streams[stream_of(e)];
        CHECK(r->last_version <= MAX_VERSION, "version %lld", (long long)r->last_version);
        for (int64_t v = r->first_version; v <= r->last_version; v++)
            si->pos[v] = r->first_position + (v - r->first_version);
        atomic_fetch_add(&published, (int)e->nevents);
        p->inflight--;
        hs_ingest_free(e);
    }
}

static void *publisher(void *arg)
{
    pub_t *p = arg;
    uint64_t rng = p->seed;
    int sent = 0, seq = 0;
    char pad[256];
    memset(pad, 'x', sizeof(pad));
    for (;;) {
        reap(p);
        if (sent == PUB_EVENTS && !p->inflight)
            break;
        if (sent < PUB_EVENTS && p->inflight < PUB_INFLIGHT) {
            int si = (int)stress_below(&rng, NSTREAMS);
            int n = 1 + (int)stress_below(&rng, 4);
            if (n > PUB_EVENTS - sent)
                n = PUB_EVENTS - sent;
            hs_event_t ev[4];
            char data[4][320];
            for (int k = 0; k < n; k++) {
                snprintf(data[k], sizeof(data[k]), "{\"p\":%d,\"n\":%d,\"pad\":\"%.*s\"}", p->index,
                         seq++, (int)stress_below(&rng, 200), pad);
                ev[k] = (hs_event_t){.type = k % 2 ? "odd" : "even", .data = data[k]};
            }
            hs_ingest_t *e;
            char why[128];
            int rc = hs_codec_build_publish(streams[si].name, ev, (size_t)n, 1 << 20, &e, why,
                                            sizeof(why));
            CHECK(rc == 0, "hs_codec_build_publish: %s", why);
            e->expected_version = HS_ANY_VERSION;
            e->done = pub_done;
            e->origin = p;
            /* publishers 0 and 1 own an SPSC ring each, as IO threads do; 2 uses the shared
             * MPMC ring, as hs_server_publish() does */
            while (!(p->index < 2 ? hs_writer_submit_spsc(writer, p->index, e)
                                  : hs_writer_submit_mpsc(writer, e)))
                stress_sleep_us(100);
            p->inflight++;
            p->appends++;
            sent += n;
            if (!stress_below(&rng, 4))
                stress_sleep_us(stress_below(&rng, 300)); /* spread over time */
            continue;
        }
        hs_waiter_sleep(&p->waiter, 1000, pub_has_work, p);
    }
    return NULL;
}

/* ---- setup ---- */

/* The streams' names. Which worker serves a subscriber follows its IO thread (ios[], round
 * robin), so every stream's subscribers are spread over both workers, each with its own copy of
 * the stream's state and block cache. */
static void pick_streams(void)
{
    for (int n = 0; n < NSTREAMS; n++) {
        int len = snprintf(streams[n].name, sizeof(streams[n].name), "stress-%d", n);
        streams[n].len = (uint32_t)len;
    }
}

static void add_sub(int stream, bool has_from, int64_t from, int speed, int unsub_after,
                    int threshold)
{
    if (skip_unsub_catchup && has_from && from == 0 && unsub_after >= 0)
        return; /* the ones that leave while catching up */
    tsub_t *t = &subs[nsubs];
    t->id = nsubs;
    t->io = nsubs % NIO;
    t->stream = stream;
    t->has_from = has_from;
    t->from = from;
    t->speed = speed;
    t->unsub_after = unsub_after;
    t->threshold = threshold;
    if (threshold != AFTER_CLOSE)
        nbefore++;
    t->seen_pos = calloc(MAX_VERSION + 1, sizeof(int64_t));
    CHECK(t->seen_pos != NULL, "out of memory");
    nsubs++;
}

static void plan(uint64_t seed)
{
    uint64_t rng = seed;
    subs = calloc(NSTREAMS * 16 + 4, sizeof(tsub_t));
    CHECK(subs != NULL, "out of memory");
    /* Subscribers come after a quarter of the events: the workers keep a stream's block cache
     * only while it has subscribers, so the cache misses the first events and from-0
     * subscribers catch up from the database, page by page. One stream in two also has a
     * subscriber from the start, whose cache then serves the others' catch-up. */
    int lo = TOTAL_EVENTS / 4, span = TOTAL_EVENTS * 4 / 5 - lo;
#define WHEN() (lo + (int)stress_below(&rng, (uint32_t)span))
    for (int s = 0; s < NSTREAMS; s++) {
        if (s % 2)
            add_sub(s, false, 0, SPEED_FAST, -1, 0);
        add_sub(s, false, 0, SPEED_FAST, -1, WHEN());
        add_sub(s, true, 0, SPEED_FAST, -1, WHEN());
        add_sub(s, true, 0, SPEED_SLOW, -1, WHEN());
        add_sub(s, false, 0, SPEED_SLOW, -1, WHEN());
        add_sub(s, true, 1 + stress_below(&rng, 60), SPEED_FAST, -1, WHEN());
        /* leave while a catch-up read is in flight: at once, or after a page or two */
        add_sub(s, true, 0, SPEED_FAST, 0, WHEN());
        add_sub(s, true, 0, SPEED_SLOW, 1 + (int)stress_below(&rng, CATCHUP_EVENTS), WHEN());
        add_sub(s, true, 0, SPEED_FAST, 1 + (int)stress_below(&rng, 2 * CATCHUP_EVENTS), WHEN());
        /* leaves mid-stream, live */
        add_sub(s, false, 0, SPEED_FAST, 1 + (int)stress_below(&rng, 100), WHEN());
        /* never reads: ended as stalled (subscribes early, so its outbox surely fills) */
        add_sub(s, true, 0, SPEED_STUCK, -1, lo + (int)stress_below(&rng, (uint32_t)span / 4));
        /* subscribe once everything is published: still catching up when the close comes */
        add_sub(s, true, 0, SPEED_SLOW, -1, TOTAL_EVENTS);
        add_sub(s, true, 0, SPEED_FAST, -1, TOTAL_EVENTS);
    }
    add_sub(-1, false, 0, SPEED_FAST, -1, WHEN());
    add_sub(-1, true, 0, SPEED_SLOW, -1, WHEN());
    add_sub(-1, true, 0, SPEED_FAST, 0, WHEN());
    if (after_close) {
        /* Subscribing to a stream that is already closed, while another subscriber (here a stuck
         * one that came just before the close) keeps the worker's entry for it, and with it the
         * block cache: they must still get the close marker after the last event. */
        for (int s = 0; s < NSTREAMS; s++) {
            add_sub(s, true, 0, SPEED_STUCK, -1, TOTAL_EVENTS);
            add_sub(s, true, 0, SPEED_FAST, -1, AFTER_CLOSE);
            add_sub(s, true, 0, SPEED_SLOW, -1, AFTER_CLOSE);
        }
    }
#undef WHEN
}

static char dir[64], db[128];

static void remove_db(void)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(suffix) / sizeof(*suffix); i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s%s", db, suffix[i]);
        unlink(p);
    }
    rmdir(dir);
}

static hs_mpsc_t main_q;
static hs_waiter_t main_waiter;

static void main_done(hs_ingest_t *e)
{
    if (hs_mpsc_push(&main_q, &e->node))
        hs_waiter_wake(&main_waiter);
}

static bool main_has_work(void *ctx)
{
    return !hs_mpsc_empty(&main_q);
}

/* Closes every stream and waits for the acks. */
static void close_all(void)
{
    for (int i = 0; i < NSTREAMS; i++) {
        hs_ingest_t *e = hs_codec_build_admin(HS_INGEST_CLOSE, streams[i].name, streams[i].len);
        CHECK(e != NULL, "out of memory");
        e->done = main_done;
        while (!hs_writer_submit_mpsc(writer, e))
            stress_sleep_us(100);
    }
    int acked = 0;
    int64_t since = stress_now_us();
    while (acked < NSTREAMS) {
        for (hs_mpsc_node_t *n = hs_mpsc_take_all(&main_q), *nx; n; n = nx) {
            nx = n->next;
            hs_ingest_t *e = hs_container_of(n, hs_ingest_t, node);
            CHECK(e->status == 0, "close %.*s: %s", (int)e->stream_len, e->stream,
                  hs_strerror(e->status));
            hs_ingest_free(e);
            acked++;
        }
        if (acked < NSTREAMS)
            hs_waiter_sleep(&main_waiter, 100, main_has_work, NULL);
        CHECK(stress_now_us() - since < 10 * 1000000LL, "closes not acknowledged in 10 s");
    }
}

static void report_unfinished(void)
{
    for (int i = 0; i < nsubs; i++) {
        tsub_t *t = &subs[i];
        if (t->state == ST_DONE)
            continue;
        char who[256];
        describe(t, who, sizeof(who));
        /* the IO threads are stopped: their state can be read */
        int64_t final = t->stream < 0 ? atomic_load(&final_all)
                                      : atomic_load(&streams[t->stream].final_version);
        fprintf(stderr,
                "  unfinished: %s: state %d, received %llu, last %lld, end %d kill %d "
                "marker %d, final %lld%s\n",
                who, t->state, (unsigned long long)t->received, (long long)t->last, t->got_end,
                t->got_kill, t->marker, (long long) final,
                t->stream >= 0 && t->last == final && !t->marker && !t->got_end
                    ? ": every event, but neither the close marker nor END"
                    : "");
    }
}

int main(int argc, char **argv)
{
    int64_t t0 = stress_now_us();
    uint64_t seed = 0x5EEDF00DULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--skip-unsub-catchup") == 0)
            skip_unsub_catchup = true;
        else if (strcmp(argv[i], "--subscribe-after-close") == 0)
            after_close = true;
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 0);
        else
            FAILF("usage: %s [--skip-unsub-catchup] [--subscribe-after-close] [--seed N]", argv[0]);
    }
    pick_streams();
    plan(seed);

    strcpy(dir, "/tmp/hs-stress-fanout-XXXXXX");
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(db, sizeof(db), "%s/f.db", dir);
    stress_on_fail = remove_db;
    char err[256];
    hs_writer_config_t wc = {.db = db,
                             .nrings = 2,
                             .ring_size = 64,
                             .batch_max = 32, /* small batches: many hand-offs to the workers */
                             .encode = hs_codec_encode,
                             .encode_marker = hs_codec_encode_marker,
                             .sink = hs_fanout_sink};
    writer = hs_writer_create(&wc, err, sizeof(err));
    CHECK(writer != NULL, "hs_writer_create: %s", err);
    reader = hs_reader_create(db, NREADERS, err, sizeof(err));
    CHECK(reader != NULL, "hs_reader_create: %s", err);
    hs_mpsc_t *inboxes[NIO + 1] = {NULL};
    for (int i = 0; i < NIO; i++) {
        ios[i].index = i;
        hs_mpsc_init(&ios[i].inbox);
        CHECK(hs_waiter_init(&ios[i].waiter) == 0, "hs_waiter_init");
        inboxes[i] = &ios[i].inbox;
    }
    /* a small read budget: catch-up pages often wait for it (the starved path) */
    hs_budget_t *read_budget = hs_budget_create(READ_BUDGET, NULL);
    CHECK(read_budget != NULL, "hs_budget_create");
    hs_fanout_config_t fc = {.nworkers = NWORKERS,
                             .reader = reader,
                             .encode = hs_codec_encode,
                             .encode_marker = hs_codec_encode_marker,
                             .io_inboxes = inboxes,
                             .wake_io = wake_io,
                             .wake_ctx = NULL,
                             .stall_timeout_ms = STALL_MS,
                             .catchup_events = CATCHUP_EVENTS,
                             .read_budget = read_budget};
    fanout = hs_fanout_create(&fc);
    CHECK(fanout != NULL, "hs_fanout_create");
    hs_writer_set_sink_ctx(writer, fanout);
    hs_mpsc_init(&main_q);
    CHECK(hs_waiter_init(&main_waiter) == 0, "hs_waiter_init");

    CHECK(hs_reader_start(reader) == 0 && hs_fanout_start(fanout) == 0 &&
              hs_writer_start(writer) == 0,
          "start");
    for (int i = 0; i < NIO; i++)
        CHECK(pthread_create(&ios[i].th, NULL, io_thread, &ios[i]) == 0, "pthread_create");
    for (int i = 0; i < NPUB; i++) {
        pubs[i].index = i;
        pubs[i].seed = seed * 31 + (uint64_t)i + 1;
        hs_mpsc_init(&pubs[i].done_q);
        CHECK(hs_waiter_init(&pubs[i].waiter) == 0, "hs_waiter_init");
        CHECK(pthread_create(&pubs[i].th, NULL, publisher, &pubs[i]) == 0, "pthread_create");
    }
    uint64_t appends = 0;
    for (int i = 0; i < NPUB; i++) {
        pthread_join(pubs[i].th, NULL);
        appends += pubs[i].appends;
        hs_waiter_dispose(&pubs[i].waiter);
    }
    CHECK(atomic_load(&published) == TOTAL_EVENTS, "%d events acknowledged",
          atomic_load(&published));
    int64_t t_pub = stress_now_us();

    /* everyone subscribes, and is registered by its worker, before the streams close: a
     * subscription that registers after its stream's close went through the worker is the
     * --subscribe-after-close case */
    while (atomic_load(&ready) < nbefore) {
        CHECK(stress_now_us() - t0 < DONE_DEADLINE_US, "%d of %d subscribers registered",
              atomic_load(&ready), nbefore);
        stress_sleep_us(1000);
    }
    for (int i = 0; i < NSTREAMS; i++) {
        int64_t v = 0;
        while (v < MAX_VERSION && streams[i].pos[v + 1])
            v++;
        atomic_store(&streams[i].final_version, v);
    }
    close_all();
    hs_writer_stats_t ws;
    hs_writer_stats(writer, &ws);
    CHECK(ws.last_position == TOTAL_EVENTS, "last position %lld", (long long)ws.last_position);
    atomic_store(&final_all, ws.last_position);
    atomic_store(&closed, 1);
    for (int i = 0; i < NIO; i++)
        hs_waiter_wake(&ios[i].waiter);

    /* every subscriber ends: closed, stalled, or gone by itself */
    size_t peak_registered = 0;
    while (atomic_load(&finished) < nsubs) {
        size_t reg = 0;
        for (int i = 0; i < NSTREAMS; i++)
            reg += hs_fanout_count(fanout, streams[i].name, streams[i].len);
        reg += hs_fanout_count(fanout, "$all", 4);
        if (reg > peak_registered)
            peak_registered = reg;
        if (stress_now_us() - t0 > DONE_DEADLINE_US) {
            for (int i = 0; i < NIO; i++) {
                atomic_store(&ios[i].stop, 2);
                hs_waiter_wake(&ios[i].waiter);
                pthread_join(ios[i].th, NULL);
            }
            report_unfinished();
            /* where catch-up stood: the read budget, the pages each worker keeps */
            hs_fanout_metrics_t m;
            hs_fanout_metrics(fanout, &m);
            fprintf(stderr,
                    "  read budget: %zu of %d bytes used; %llu catch-up reads, %llu rows, "
                    "%llu shared\n",
                    hs_budget_used(read_budget), READ_BUDGET, (unsigned long long)m.catchup_reads,
                    (unsigned long long)m.catchup_rows, (unsigned long long)m.catchup_shared);
            for (int wi = 0; wi < NWORKERS; wi++) {
                const worker_t *w = &fanout->w[wi];
                int np = 0;
                for (const cpage_t *p = w->lru_head; p; p = p->lru_next)
                    np++;
                fprintf(stderr,
                        "  worker %d: %d kept pages of %zu bytes, the oldest used %lld ms ago; "
                        "subscriptions waiting for budget: %s\n",
                        wi, np, w->page_bytes,
                        w->lru_tail ? (long long)(hs_fw_now_ms() - w->lru_tail->used_ms) : -1LL,
                        w->starved ? "yes" : "no");
            }
            FAILF("%d of %d subscribers unfinished after %lld s", nsubs - atomic_load(&finished),
                  nsubs, DONE_DEADLINE_US / 1000000);
        }
        stress_sleep_us(2000);
    }
    int64_t t_done = stress_now_us();
    /* the workers drop every unsubscribed subscription */
    for (;;) {
        size_t reg = hs_fanout_count(fanout, "$all", 4);
        for (int i = 0; i < NSTREAMS; i++)
            reg += hs_fanout_count(fanout, streams[i].name, streams[i].len);
        if (!reg)
            break;
        CHECK(stress_now_us() - t_done < 10 * 1000000LL,
              "%zu subscriptions still registered "
              "10 s after every subscriber left",
              reg);
        stress_sleep_us(1000);
    }

    uint64_t signals = 0, empty_signals = 0, space = 0;
    for (int i = 0; i < NIO; i++) {
        atomic_store(&ios[i].stop, 1);
        hs_waiter_wake(&ios[i].waiter);
        pthread_join(ios[i].th, NULL);
        signals += ios[i].signals;
        empty_signals += ios[i].empty_signals;
        space += ios[i].space_sent;
    }
    /* hs_server_destroy()'s order */
    hs_writer_stop(writer);
    hs_fanout_stop(fanout);
    hs_reader_stop(reader);
    for (int i = 0; i < NIO; i++) {
        for (hs_mpsc_node_t *n = hs_mpsc_take_all(&ios[i].inbox), *nx; n; n = nx) {
            nx = n->next;
            hs_sub_t *s = hs_container_of(n, hs_sub_t, io_node);
            hs_sub_take_io_flags(s);
            hs_sub_unref(s);
        }
    }
    hs_fanout_destroy(fanout);
    hs_reader_destroy(reader);
    hs_writer_destroy(writer);
    /* every catch-up page was given back: nothing holds a block read for catch-up any more */
    CHECK(hs_budget_used(read_budget) == 0, "%zu bytes of catch-up pages never given back",
          hs_budget_used(read_budget));
    hs_budget_unref(read_budget);
    for (int i = 0; i < NIO; i++)
        hs_waiter_dispose(&ios[i].waiter);
    hs_waiter_dispose(&main_waiter);

    /* what each subscriber got, against what the writer acknowledged */
    int complete = 0, stalled = 0, left = 0;
    uint64_t delivered = 0;
    for (int i = 0; i < nsubs; i++) {
        tsub_t *t = &subs[i];
        char who[256];
        describe(t, who, sizeof(who));
        delivered += t->received;
        int64_t final = t->stream < 0 ? TOTAL_EVENTS : streams[t->stream].final_version;
        for (int64_t q = t->first; t->first && q <= t->last; q++) {
            if (t->stream >= 0) {
                CHECK(t->seen_pos[q] == streams[t->stream].pos[q],
                      "%s: version %lld came with "
                      "position %lld, the writer acknowledged %lld",
                      who, (long long)q, (long long)t->seen_pos[q],
                      (long long)streams[t->stream].pos[q]);
            } else {
                bool found = false;
                for (int s = 0; s < NSTREAMS && !found; s++)
                    found = t->seen_pos[q] >= 1 && t->seen_pos[q] <= MAX_VERSION &&
                            streams[s].pos[t->seen_pos[q]] == q;
                CHECK(found,
                      "%s: position %lld came with version %lld, which the writer did "
                      "not acknowledge there",
                      who, (long long)q, (long long)t->seen_pos[q]);
            }
        }
        /* a live-only subscriber starts at the first event committed after it subscribed */
        if (!t->has_from && t->stream >= 0 && t->first) {
            const int64_t *pos = streams[t->stream].pos;
            CHECK(pos[t->first] > t->live_after &&
                      (t->first == 1 || pos[t->first - 1] <= t->live_after),
                  "%s: first version %lld (position %lld), previous at %lld, but it subscribed "
                  "after position %lld",
                  who, (long long)t->first, (long long)pos[t->first],
                  t->first > 1 ? (long long)pos[t->first - 1] : 0LL, (long long)t->live_after);
        }
        if (t->got_kill) {
            stalled++;
            continue;
        }
        if (t->unsub_after == 0 ||
            (t->unsub_after > 0 && t->received >= (uint64_t)t->unsub_after)) {
            left++;
            continue;
        }
        /* stayed to the end: everything up to the last event */
        complete++;
        CHECK(t->last == final || (!t->first && (t->has_from ? t->from >= final : true)),
              "%s: ended at %lld of %lld", who, (long long)t->last, (long long) final);
        if (!t->first && !t->has_from && t->stream >= 0)
            CHECK(final == 0 || streams[t->stream].pos[final] <= t->live_after,
                  "%s: got nothing, yet the stream has events after position %lld", who,
                  (long long)t->live_after);
        if (t->stream >= 0)
            CHECK(t->marker && t->marker_version == final,
                  "%s: close marker %d at %lld, the "
                  "last version is %lld",
                  who, t->marker, (long long)t->marker_version, (long long) final);
    }
    for (int i = 0; i < nsubs; i++) {
        if (subs[i].speed == SPEED_STUCK && !subs[i].got_kill) {
            char who[256];
            describe(&subs[i], who, sizeof(who));
            /* it may legitimately have got everything within its outbox; say so if not */
            CHECK(subs[i].got_end, "%s: neither ended as stalled nor closed", who);
        }
        free(subs[i].seen_pos);
    }
    free(subs);
    remove_db();
    char detail[400];
    snprintf(detail, sizeof(detail),
             "%d events in %llu appends to %d streams (published in %.2f s), %d subscribers "
             "(%d complete, %d left early, %d ended as stalled; peak %zu registered), %llu "
             "events delivered, %llu IO signals (%llu empty), %llu SPACE sent%s",
             TOTAL_EVENTS, (unsigned long long)appends, NSTREAMS, (double)(t_pub - t0) / 1e6, nsubs,
             complete, left, stalled, peak_registered, (unsigned long long)delivered,
             (unsigned long long)signals, (unsigned long long)empty_signals,
             (unsigned long long)space,
             skip_unsub_catchup ? ", unsubscribes during catch-up "
                                  "skipped"
                                : "");
    stress_summary("stress_fanout", delivered + TOTAL_EVENTS, t0, detail);
    return 0;
}
