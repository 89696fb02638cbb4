/*
 * The writer thread (see writer.h): group commit of ingest entries through one store connection.
 *
 * Heads cache: the writer is the only appender of its database, so it keeps each touched stream's
 * head (id, version, position, closed) in memory and reads the database only for streams it has
 * not seen. A failed transaction clears the cache, so nothing it staged survives a rollback.
 * The cache is bounded: past HEADS_MAX entries it is cleared and refilled on demand.
 *
 * Faults. When a batch fails, the writer rolls back and pings the connection. If the ping
 * works, the batch failed on its own (every entry gets HS_EDB) and the next one goes ahead. If
 * not, the connection is lost: the writer closes it, fails whatever is queued at once (HS_EDB,
 * nothing appended) and reconnects with exponential backoff (RETRY_FIRST_MS doubling up to
 * RETRY_MAX_MS), re-reading positions and heads when it is back. While idle it pings every
 * HEALTH_MS, so that /readyz notices an outage before the next publish does.
 *
 * A COMMIT that fails on a lost connection is in doubt: the database may have committed it
 * before the link broke. Its entries are neither acknowledged nor failed until the writer is
 * connected again and looks for the batch's last row (stream, event id, position): found, the
 * batch is acknowledged and fanned out as if the commit had answered; absent, it failed. If the
 * database stays away for DOUBT_MAX_MS, the entries complete with HS_EUNKNOWN (retry with the
 * same event ids: the idempotency check makes that safe).
 */
#include "storage/writer.h"

#include "ringbuf/ring.h"
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringbuf/waiter.h"

#define HEADS_MAX 65536
#define MPMC_RING 4096

#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS   5000
#define HEALTH_MS      1000
#define DOUBT_MAX_MS   30000
#define REASON_MAX     256

typedef struct head {
    struct head *next;
    hs_stream_head_t h;
    bool dirty;     /* changed in the current batch */
    bool is_new;    /* created in the current batch */
    uint32_t hash;
    uint32_t len;
    struct head *dirty_next;
    char name[];
} head_t;

/* A client id seen in the current batch (idempotency across entries of one batch). */
typedef struct seen_id {
    struct seen_id *next;
    int64_t stream_id, version, position;
    const char *id;
    uint32_t len;
} seen_id_t;

typedef struct ring {
    ck_ring_t r;
    ck_ring_buffer_t *buf;
} ring_t;

struct hs_writer {
    hs_writer_config_t cfg;
    hs_store_t *st;
    pthread_t thread;
    bool started;
    atomic_int stopping;
    hs_waiter_t waiter;
    ring_t *rings; /* cfg.nrings SPSC rings, then one MPMC ring */
    int nrings;

    /* writer-thread state */
    head_t **heads;
    uint32_t nbuckets, nheads;
    int64_t next_position;
    hs_ingest_t **batch;
    size_t batch_cap;
    hs_row_t *rows;
    size_t rows_cap;
    seen_id_t *seen;
    size_t seen_cap, nseen;
    head_t *dirty;

    /* connection state (writer thread): st is NULL while the database is unreachable */
    int64_t retry_at_us, down_since_us, last_ok_us, last_warn_us;
    int backoff_ms;
    unsigned attempts;
    /* a batch whose COMMIT is in doubt (see the top of the file) */
    bool doubt;
    size_t doubt_n;
    int64_t doubt_first_pos, doubt_next_pos, doubt_until_us;
    hs_row_t doubt_row;

    /* stats */
    _Atomic uint64_t n_batches, n_events, n_failed, n_trimmed;
    int64_t last_trim_warn_us;
    _Atomic int64_t last_position;
    atomic_int db_ok;
    pthread_mutex_t reason_mu;
    char reason[REASON_MAX]; /* why db_ok is 0 */
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* For timers: not moved by clock changes. */
static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

__attribute__((format(printf, 3, 4))) static void wlog(hs_writer_t *w, hs_log_level_t lvl, const char *fmt, ...)
{
    if (!w->cfg.log)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    w->cfg.log(w->cfg.log_ctx, lvl, buf);
}

hs_ingest_t *hs_ingest_alloc(uint32_t nevents, size_t arena, char **arena_out)
{
    size_t sz = sizeof(hs_ingest_t) + (size_t)nevents * sizeof(hs_ingest_event_t) + arena;
    hs_ingest_t *e = calloc(1, sz);
    if (!e)
        return NULL;
    e->events = (hs_ingest_event_t *)(e + 1);
    e->nevents = nevents;
    e->expected_version = HS_ANY_VERSION;
    if (arena_out)
        *arena_out = (char *)(e->events + nevents);
    return e;
}

void hs_ingest_free(hs_ingest_t *e)
{
    free(e);
}

/* ---- heads cache ---- */

static uint32_t name_hash(const char *s, size_t n)
{
    return hs_stream_hash(s, n);
}

static void heads_clear(hs_writer_t *w)
{
    for (uint32_t i = 0; i < w->nbuckets; i++) {
        head_t *h = w->heads[i];
        while (h) {
            head_t *next = h->next;
            free(h);
            h = next;
        }
        w->heads[i] = NULL;
    }
    w->nheads = 0;
    w->dirty = NULL;
}

static head_t *heads_find(hs_writer_t *w, const char *name, size_t len, uint32_t hash)
{
    for (head_t *h = w->heads[hash & (w->nbuckets - 1)]; h; h = h->next)
        if (h->hash == hash && h->len == len && memcmp(h->name, name, len) == 0)
            return h;
    return NULL;
}

static head_t *heads_add(hs_writer_t *w, const char *name, size_t len, uint32_t hash,
                         const hs_stream_head_t *sh)
{
    head_t *h = calloc(1, sizeof(*h) + len + 1);
    if (!h)
        return NULL;
    memcpy(h->name, name, len);
    h->len = (uint32_t)len;
    h->hash = hash;
    h->h = *sh;
    h->next = w->heads[hash & (w->nbuckets - 1)];
    w->heads[hash & (w->nbuckets - 1)] = h;
    w->nheads++;
    return h;
}

static void heads_remove(hs_writer_t *w, head_t *dead)
{
    head_t **pp = &w->heads[dead->hash & (w->nbuckets - 1)];
    while (*pp && *pp != dead)
        pp = &(*pp)->next;
    if (*pp)
        *pp = dead->next;
    for (head_t **d = &w->dirty; *d; d = &(*d)->dirty_next)
        if (*d == dead) {
            *d = dead->dirty_next;
            break;
        }
    w->nheads--;
    free(dead);
}

/* The cached head of a stream, loading it from the database; *h = NULL when the stream does not
 * exist. Returns 0 or HS_EDB / HS_ENOMEM. */
static int head_get(hs_writer_t *w, const char *name, size_t len, head_t **out)
{
    uint32_t hash = name_hash(name, len);
    head_t *h = heads_find(w, name, len, hash);
    if (h) {
        *out = h;
        return 0;
    }
    hs_stream_head_t sh;
    int rc = hs_store_get_stream(w->st, name, len, &sh);
    if (rc == HS_ENOENT) {
        *out = NULL;
        return 0;
    }
    if (rc)
        return rc;
    *out = heads_add(w, name, len, hash, &sh);
    return *out ? 0 : HS_ENOMEM;
}

static void mark_dirty(hs_writer_t *w, head_t *h)
{
    if (!h->dirty) {
        h->dirty = true;
        h->dirty_next = w->dirty;
        w->dirty = h;
    }
}

/* ---- batch processing ---- */

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need)
        nc *= 2;
    void *p = realloc(*arr, nc * elem);
    if (!p)
        return HS_ENOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

static seen_id_t *seen_find(hs_writer_t *w, int64_t stream_id, const char *id, size_t len)
{
    for (size_t i = 0; i < w->nseen; i++) {
        seen_id_t *s = &w->seen[i];
        if (s->stream_id == stream_id && s->len == len && memcmp(s->id, id, len) == 0)
            return s;
    }
    return NULL;
}

/*
 * Idempotency: if every event of the entry carries a client id already appended to the stream,
 * the entry is a retry and gets the original result. Returns 1 when it is a retry (result set),
 * 0 when none of its ids exist, HS_EINVAL when some exist and some do not, or a store error.
 */
static int check_retry(hs_writer_t *w, hs_ingest_t *e, head_t *h)
{
    if (!h || !e->nevents || !e->events[0].client_id)
        return 0;
    size_t found = 0;
    int64_t fv = 0, lv = 0, fp = 0, lp = 0;
    for (uint32_t i = 0; i < e->nevents; i++) {
        hs_ingest_event_t *ev = &e->events[i];
        if (!ev->client_id)
            continue;
        int64_t v, p;
        seen_id_t *s = seen_find(w, h->h.id, ev->id, ev->id_len);
        int rc;
        if (s) {
            v = s->version;
            p = s->position;
            rc = 0;
        } else if (h->is_new) {
            rc = HS_ENOENT;
        } else {
            rc = hs_store_find_event(w->st, h->h.id, ev->id, ev->id_len, &v, &p);
        }
        if (rc == HS_ENOENT)
            continue;
        if (rc)
            return rc;
        if (!found || v < fv) {
            fv = v;
            fp = p;
        }
        if (!found || v > lv) {
            lv = v;
            lp = p;
        }
        found++;
    }
    if (!found)
        return 0;
    if (found != e->nevents)
        return HS_EINVAL;
    e->result.first_version = fv;
    e->result.last_version = lv;
    e->result.first_position = fp;
    e->result.last_position = lp;
    return 1;
}

static int flush_rows(hs_writer_t *w, size_t *nrows)
{
    if (!*nrows)
        return 0;
    int rc = hs_store_insert_events(w->st, w->rows, *nrows);
    return rc;
}

/* Stages one append entry. Logical failures go into e->status; returns only store errors. */
static int stage_append(hs_writer_t *w, hs_ingest_t *e, int64_t ts, size_t *nrows)
{
    head_t *h;
    int rc = head_get(w, e->stream, e->stream_len, &h);
    if (rc)
        return rc;
    rc = check_retry(w, e, h);
    if (rc == 1)
        return 0; /* result already set: a retry of a committed publish */
    if (rc == HS_EINVAL) {
        e->status = HS_EINVAL;
        return 0;
    }
    if (rc)
        return rc;
    int64_t cur = h ? h->h.version : 0;
    if (h && h->h.closed) {
        e->status = HS_ECLOSED;
        return 0;
    }
    if (e->expected_version != HS_ANY_VERSION && e->expected_version != cur) {
        e->status = HS_ECONFLICT;
        e->result.actual_version = cur;
        return 0;
    }
    /* duplicate client ids inside one publish are a client error */
    for (uint32_t i = 0; i < e->nevents; i++) {
        if (!e->events[i].client_id)
            continue;
        for (uint32_t j = 0; j < i; j++)
            if (e->events[j].client_id && e->events[j].id_len == e->events[i].id_len &&
                memcmp(e->events[j].id, e->events[i].id, e->events[i].id_len) == 0) {
                e->status = HS_EINVAL;
                return 0;
            }
    }
    if (!h) {
        int64_t id;
        if ((rc = hs_store_create_stream(w->st, e->stream, e->stream_len, ts, &id)))
            return rc;
        hs_stream_head_t sh = {.id = id, .created_us = ts, .updated_us = ts};
        h = heads_add(w, e->stream, e->stream_len, name_hash(e->stream, e->stream_len), &sh);
        if (!h)
            return HS_ENOMEM;
        h->is_new = true;
    }
    if ((rc = grow((void **)&w->rows, &w->rows_cap, *nrows + e->nevents, sizeof(hs_row_t))))
        return rc;
    if ((rc = grow((void **)&w->seen, &w->seen_cap, w->nseen + e->nevents, sizeof(seen_id_t))))
        return rc;
    e->result.first_version = h->h.version + 1;
    e->result.first_position = w->next_position;
    for (uint32_t i = 0; i < e->nevents; i++) {
        hs_ingest_event_t *ev = &e->events[i];
        hs_row_t *r = &w->rows[(*nrows)++];
        r->stream_id = h->h.id;
        r->version = ++h->h.version;
        r->position = w->next_position++;
        r->time_us = ts;
        r->event_id = ev->id;
        r->event_id_len = ev->id_len;
        r->type = ev->type;
        r->type_len = ev->type_len;
        r->data = ev->data;
        r->data_len = ev->data_len;
        r->metadata = ev->metadata;
        r->metadata_len = ev->metadata_len;
        if (ev->client_id)
            w->seen[w->nseen++] = (seen_id_t){NULL, h->h.id, r->version, r->position, ev->id,
                                              ev->id_len};
    }
    h->h.position = w->next_position - 1;
    h->h.updated_us = ts;
    mark_dirty(w, h);
    e->result.last_version = h->h.version;
    e->result.last_position = h->h.position;
    return 0;
}

static int stage_close_delete(hs_writer_t *w, hs_ingest_t *e, int64_t ts, size_t *nrows)
{
    head_t *h;
    int rc = head_get(w, e->stream, e->stream_len, &h);
    if (rc)
        return rc;
    if (!h) {
        e->status = HS_ENOENT;
        return 0;
    }
    e->result.last_version = h->h.version;
    e->result.last_position = h->h.position;
    if (e->kind == HS_INGEST_CLOSE) {
        if (!h->h.closed) {
            h->h.closed = true;
            h->h.updated_us = ts;
            mark_dirty(w, h);
        }
        return 0;
    }
    /* delete: rows staged for this stream must reach the table before the rows are deleted */
    if ((rc = flush_rows(w, nrows)))
        return rc;
    *nrows = 0;
    if ((rc = hs_store_delete_stream(w->st, h->h.id)))
        return rc;
    /* its ids may be reused by a new incarnation of the name */
    for (size_t i = 0; i < w->nseen; i++)
        if (w->seen[i].stream_id == h->h.id)
            w->seen[i].stream_id = -1;
    heads_remove(w, h);
    return 0;
}

static void finish(hs_writer_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        hs_ingest_t *e = w->batch[i];
        e->done(e);
    }
}

/* Builds the fan-out batch: one block per appended event and per close/delete marker, in
 * commit order. Entries that failed or were retries contribute nothing. */
static hs_batch_t *encode_batch(hs_writer_t *w, size_t n, size_t nrows)
{
    hs_batch_t *b = hs_batch_alloc((uint32_t)(nrows + n));
    if (!b)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        hs_ingest_t *e = w->batch[i];
        if (e->status)
            continue;
        if (e->kind != HS_INGEST_APPEND) {
            hs_block_t *m = w->cfg.encode_marker(
                e->kind == HS_INGEST_CLOSE ? HS_BLOCK_CLOSED : HS_BLOCK_DELETED, e->stream,
                e->stream_len, e->result.last_version);
            if (m)
                b->blocks[b->n++] = m;
            continue;
        }
        if (!e->appended)
            continue; /* a retry's result points at rows committed earlier */
        for (uint32_t k = 0; k < e->nevents; k++) {
            hs_ingest_event_t *ev = &e->events[k];
            hs_record_t rec = {
                .stream = e->stream,
                .stream_len = e->stream_len,
                .version = e->result.first_version + k,
                .position = e->result.first_position + k,
                .time_us = e->time_us,
                .event_id = ev->id,
                .event_id_len = ev->id_len,
                .type = ev->type,
                .type_len = ev->type_len,
                .data = ev->data,
                .data_len = ev->data_len,
                .metadata = ev->metadata,
                .metadata_len = ev->metadata_len,
            };
            hs_block_t *blk = w->cfg.encode(&rec);
            if (blk)
                b->blocks[b->n++] = blk;
        }
    }
    return b;
}

/* Why /readyz says no: "database unavailable: " and the driver's message, cut to fit. */
static void set_reason(hs_writer_t *w, const char *detail)
{
    pthread_mutex_lock(&w->reason_mu);
    snprintf(w->reason, sizeof w->reason, "database unavailable: %.*s",
             (int)(sizeof w->reason - 32), detail);
    pthread_mutex_unlock(&w->reason_mu);
}

static void fail_all(hs_writer_t *w, size_t n, int status)
{
    for (size_t i = 0; i < n; i++)
        w->batch[i]->status = status;
    atomic_fetch_add(&w->n_failed, 1);
    finish(w, n);
}

/* The connection is gone: close it and schedule the first reconnect at once. */
static void connection_lost(hs_writer_t *w, const char *why)
{
    wlog(w, HS_LOG_ERROR, "database connection lost (%s); reconnecting", why);
    set_reason(w, why);
    atomic_store(&w->db_ok, 0);
    hs_store_close(w->st);
    w->st = NULL;
    heads_clear(w);
    int64_t now = mono_us();
    w->down_since_us = now;
    w->last_warn_us = now;
    w->retry_at_us = now;
    w->backoff_ms = 0;
    w->attempts = 0;
}

/* Reads back what a new connection needs: the schema (migrated if it has to be) and the next
 * position. */
static int load_state(hs_writer_t *w, hs_store_t *st, char *err, size_t errlen)
{
    if (hs_store_migrate(st)) {
        snprintf(err, errlen, "schema migration failed: %s", hs_store_error(st));
        return HS_EDB;
    }
    int64_t pos = 0;
    if (hs_store_max_position(st, &pos)) {
        snprintf(err, errlen, "reading the last position failed: %s", hs_store_error(st));
        return HS_EDB;
    }
    w->next_position = pos + 1;
    atomic_store(&w->last_position, pos);
    return 0;
}

/* One reconnect attempt when it is due; true when connected. */
static bool reconnect(hs_writer_t *w)
{
    int64_t now = mono_us();
    if (now < w->retry_at_us)
        return false;
    char err[512];
    w->attempts++;
    hs_store_t *st = hs_store_open(w->cfg.db, err, sizeof err);
    if (st && load_state(w, st, err, sizeof err) == 0) {
        w->st = st;
        w->last_ok_us = now;
        heads_clear(w);
        atomic_store(&w->db_ok, 1);
        wlog(w, HS_LOG_INFO, "database connection restored after %lld ms (%u attempts)",
             (long long)((now - w->down_since_us) / 1000), w->attempts);
        return true;
    }
    hs_store_close(st);
    set_reason(w, err);
    w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : RETRY_FIRST_MS;
    if (w->backoff_ms > RETRY_MAX_MS)
        w->backoff_ms = RETRY_MAX_MS;
    w->retry_at_us = now + (int64_t)w->backoff_ms * 1000;
    /* the first failure and then one line every 10 s, not one per attempt */
    if (w->attempts == 1 || now - w->last_warn_us >= 10 * 1000000) {
        w->last_warn_us = now;
        wlog(w, HS_LOG_WARN, "database still unavailable after %u attempts: %s", w->attempts,
             err);
    }
    return false;
}

/* After a commit: acknowledge the batch and hand it to fan-out. */
static void committed(hs_writer_t *w, size_t n, int64_t first_pos, int64_t next_pos)
{
    hs_batch_t *b = encode_batch(w, n, (size_t)(next_pos - first_pos));
    atomic_fetch_add(&w->n_batches, 1);
    atomic_fetch_add(&w->n_events, (uint64_t)(next_pos - first_pos));
    if (next_pos - 1 > atomic_load(&w->last_position))
        atomic_store(&w->last_position, next_pos - 1);
    finish(w, n);
    if (b && b->n)
        w->cfg.sink(w->cfg.sink_ctx, b);
    else
        hs_batch_unref(b);
}

/* Connected again with a batch in doubt: did its COMMIT take effect? */
static void resolve_doubt(hs_writer_t *w)
{
    const hs_row_t *r = &w->doubt_row;
    int64_t v = 0, p = 0;
    int rc = hs_store_find_event(w->st, r->stream_id, r->event_id, r->event_id_len, &v, &p);
    if (rc != 0 && rc != HS_ENOENT) {
        connection_lost(w, hs_store_error(w->st));
        return;
    }
    w->doubt = false;
    if (rc == 0 && v == r->version && p == r->position) {
        wlog(w, HS_LOG_WARN, "a commit in doubt took effect: %zu entries acknowledged",
             w->doubt_n);
        committed(w, w->doubt_n, w->doubt_first_pos, w->doubt_next_pos);
    } else {
        wlog(w, HS_LOG_WARN, "a commit in doubt did not take effect: %zu entries failed",
             w->doubt_n);
        fail_all(w, w->doubt_n, HS_EDB);
    }
}

static void give_up_doubt(hs_writer_t *w)
{
    wlog(w, HS_LOG_ERROR,
         "a commit in doubt could not be checked (the database is still unavailable):"
         " %zu entries have an unknown outcome",
         w->doubt_n);
    w->doubt = false;
    fail_all(w, w->doubt_n, HS_EUNKNOWN);
}

/* While the database is unreachable: everything queued fails at once, nothing is appended. */
static void reject_waiting(hs_writer_t *w)
{
    void *p;
    for (int r = 0; r <= w->nrings; r++) {
        while (r < w->nrings ? hs_ring_dequeue_spsc(&w->rings[r].r, w->rings[r].buf, &p)
                             : hs_ring_dequeue_mpsc(&w->rings[r].r, w->rings[r].buf, &p)) {
            hs_ingest_t *e = p;
            e->status = HS_EDB;
            e->appended = false;
            e->done(e);
        }
    }
}

static void process(hs_writer_t *w, size_t n)
{
    int64_t ts = now_us();
    size_t nrows = 0;
    bool have_row = false;
    hs_row_t last_row = {0};
    int rc = hs_store_begin(w->st);
    bool at_commit = false;
    w->nseen = 0;
    w->dirty = NULL;
    if (rc == 0 && hs_store_shared(w->st)) {
        /* other servers may have appended since our last batch: under the batch lock, start
         * from the database's heads, not from the cache */
        int64_t pos = 0;
        heads_clear(w);
        rc = hs_store_max_position(w->st, &pos);
        if (rc == 0)
            w->next_position = pos + 1;
    }
    int64_t first_pos = w->next_position;

    for (size_t i = 0; i < n && rc == 0; i++) {
        hs_ingest_t *e = w->batch[i];
        e->status = 0;
        e->appended = false;
        e->time_us = ts;
        if (e->kind == HS_INGEST_APPEND) {
            int64_t pos_before = w->next_position;
            rc = stage_append(w, e, ts, &nrows);
            e->appended = rc == 0 && e->status == 0 && w->next_position > pos_before;
        } else {
            rc = stage_close_delete(w, e, ts, &nrows);
            /* a delete may remove the row that would prove the commit */
            if (e->kind == HS_INGEST_DELETE)
                have_row = false;
        }
        if (rc == 0 && nrows > 0) {
            last_row = w->rows[nrows - 1];
            have_row = true;
        }
        if (rc == 0 && nrows >= 4096) {
            rc = flush_rows(w, &nrows);
            nrows = 0;
        }
    }
    if (rc == 0)
        rc = flush_rows(w, &nrows);
    for (head_t *h = w->dirty; h && rc == 0; h = h->dirty_next)
        rc = hs_store_update_stream(w->st, &h->h);
    if (rc == 0) {
        at_commit = true;
        rc = hs_store_commit(w->st);
    }

    if (rc) {
        char why[REASON_MAX];
        snprintf(why, sizeof why, "%s", hs_store_error(w->st));
        wlog(w, HS_LOG_ERROR, "batch of %zu entries failed: %s", n, why);
        hs_store_rollback(w->st);
        int64_t next_pos = w->next_position;
        heads_clear(w);
        if (hs_store_ping(w->st) == 0) {
            /* the connection works: this batch failed on its own */
            int64_t pos = 0;
            if (hs_store_max_position(w->st, &pos) == 0)
                w->next_position = pos + 1;
            w->last_ok_us = mono_us();
            fail_all(w, n, HS_EDB);
            return;
        }
        connection_lost(w, why);
        if (at_commit && have_row) {
            /* entries stay pending until the writer can look */
            w->doubt = true;
            w->doubt_n = n;
            w->doubt_row = last_row;
            w->doubt_first_pos = first_pos;
            w->doubt_next_pos = next_pos;
            w->doubt_until_us = mono_us() + (int64_t)DOUBT_MAX_MS * 1000;
            return;
        }
        fail_all(w, n, at_commit ? HS_EUNKNOWN : HS_EDB);
        return;
    }
    w->last_ok_us = mono_us();
    for (head_t *h = w->dirty; h; h = h->dirty_next) {
        h->dirty = false;
        h->is_new = false;
    }
    w->dirty = NULL;
    committed(w, n, first_pos, w->next_position);
    if (w->nheads > HEADS_MAX)
        heads_clear(w);
}

/* Takes waiting entries from every ring, up to batch_max events. */
static size_t collect(hs_writer_t *w)
{
    size_t n = 0, events = 0;
    bool more = true;
    while (more && events < (size_t)w->cfg.batch_max) {
        more = false;
        for (int r = 0; r <= w->nrings && events < (size_t)w->cfg.batch_max; r++) {
            void *p;
            bool ok = r < w->nrings
                          ? hs_ring_dequeue_spsc(&w->rings[r].r, w->rings[r].buf, &p)
                          : hs_ring_dequeue_mpsc(&w->rings[r].r, w->rings[r].buf, &p);
            if (!ok)
                continue;
            more = true;
            if (grow((void **)&w->batch, &w->batch_cap, n + 1, sizeof(hs_ingest_t *))) {
                /* cannot even track it: fail it now rather than lose it */
                hs_ingest_t *e = p;
                e->status = HS_ENOMEM;
                e->done(e);
                continue;
            }
            hs_ingest_t *e = p;
            w->batch[n++] = e;
            events += e->nevents ? e->nevents : 1;
        }
    }
    return n;
}

static bool has_work(void *ctx)
{
    hs_writer_t *w = ctx;
    for (int r = 0; r <= w->nrings; r++)
        if (ck_ring_size(&w->rings[r].r))
            return true;
    return atomic_load(&w->stopping) != 0;
}

/* One step of the retention sweep; true when more is due at once. */
static bool retention_step(hs_writer_t *w)
{
    if (!w->cfg.retention || !w->st)
        return false;
    uint64_t deleted = 0;
    int rc = hs_retention_step(w->cfg.retention, w->st, now_us(), mono_us(), &deleted);
    if (deleted)
        atomic_fetch_add(&w->n_trimmed, deleted);
    if (rc >= 0) {
        w->last_ok_us = mono_us();
        return rc == 1;
    }
    char why[REASON_MAX];
    snprintf(why, sizeof why, "%s", hs_store_error(w->st));
    if (hs_store_ping(w->st) != 0) {
        connection_lost(w, why);
        return false;
    }
    int64_t now = mono_us();
    if (now - w->last_trim_warn_us >= 60 * 1000000LL) {
        w->last_trim_warn_us = now;
        wlog(w, HS_LOG_WARN, "retention sweep failed (retried in a second): %s", why);
    }
    return false;
}

/* The loop while the database is unreachable: reject, retry, settle a batch in doubt. Returns
 * false when the thread should end. */
static bool run_down(hs_writer_t *w)
{
    bool stopping = atomic_load(&w->stopping) != 0;
    if (reconnect(w)) {
        if (w->doubt)
            resolve_doubt(w);
        return true;
    }
    if (w->doubt && (stopping || mono_us() >= w->doubt_until_us))
        give_up_doubt(w);
    reject_waiting(w);
    if (stopping)
        return false;
    int64_t wait_ms = (w->retry_at_us - mono_us()) / 1000;
    hs_waiter_sleep(&w->waiter, wait_ms < 1 ? 1 : wait_ms > 200 ? 200 : (int)wait_ms, has_work,
                    w);
    return true;
}

static void *run(void *arg)
{
    hs_writer_t *w = arg;
    for (;;) {
        if (!w->st) {
            if (!run_down(w))
                break;
            continue;
        }
        size_t n = collect(w);
        if (n) {
            process(w, n);
            /* retention between batches: one bounded step each, so appends go first */
            retention_step(w);
            continue;
        }
        if (atomic_load(&w->stopping)) {
            /* stop only once nothing is left: entries submitted before stop are committed */
            if (!has_work(w) || (n = collect(w)) == 0)
                break;
            process(w, n);
            continue;
        }
        if (retention_step(w))
            continue;
        if (mono_us() - w->last_ok_us >= (int64_t)HEALTH_MS * 1000) {
            if (hs_store_ping(w->st) == 0)
                w->last_ok_us = mono_us();
            else
                connection_lost(w, hs_store_error(w->st));
            continue;
        }
        hs_waiter_sleep(&w->waiter, 200, has_work, w);
    }
    return NULL;
}

hs_writer_t *hs_writer_create(const hs_writer_config_t *cfg, char *err, size_t errlen)
{
    hs_writer_t *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->cfg = *cfg;
    if (w->cfg.batch_max <= 0)
        w->cfg.batch_max = 4096;
    if (w->cfg.ring_size <= 0)
        w->cfg.ring_size = 4096;
    w->nrings = cfg->nrings;
    w->nbuckets = 4096;
    pthread_mutex_init(&w->reason_mu, NULL);
    w->heads = calloc(w->nbuckets, sizeof(head_t *));
    w->rings = calloc((size_t)w->nrings + 1, sizeof(ring_t));
    if (!w->heads || !w->rings)
        goto nomem;
    for (int r = 0; r <= w->nrings; r++) {
        unsigned size = r < w->nrings ? (unsigned)w->cfg.ring_size : MPMC_RING;
        w->rings[r].buf = calloc(size, sizeof(ck_ring_buffer_t));
        if (!w->rings[r].buf)
            goto nomem;
        ck_ring_init(&w->rings[r].r, size);
    }
    if (hs_waiter_init(&w->waiter))
        goto nomem;
    w->st = hs_store_open(cfg->db, err, errlen);
    if (!w->st)
        goto fail;
    if (load_state(w, w->st, err, errlen))
        goto fail;
    w->last_ok_us = mono_us();
    atomic_store(&w->db_ok, 1);
    return w;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    hs_writer_destroy(w);
    return NULL;
}

void hs_writer_set_sink_ctx(hs_writer_t *w, void *ctx)
{
    w->cfg.sink_ctx = ctx;
}

int hs_writer_start(hs_writer_t *w)
{
    if (pthread_create(&w->thread, NULL, run, w))
        return HS_ESYS;
    w->started = true;
    return 0;
}

/* Completes entries still queued after the thread ended with HS_EUNAVAIL (complete = true), or
 * frees them when nobody is left to tell. */
static void drain_rings(hs_writer_t *w, bool complete)
{
    void *p;
    for (int r = 0; r <= w->nrings; r++) {
        while (r < w->nrings ? hs_ring_dequeue_spsc(&w->rings[r].r, w->rings[r].buf, &p)
                             : hs_ring_dequeue_mpsc(&w->rings[r].r, w->rings[r].buf, &p)) {
            hs_ingest_t *e = p;
            e->status = HS_EUNAVAIL;
            if (complete)
                e->done(e);
            else
                hs_ingest_free(e);
        }
    }
}

void hs_writer_stop(hs_writer_t *w)
{
    if (!w->started)
        return;
    atomic_store(&w->stopping, 1);
    hs_waiter_wake(&w->waiter);
    pthread_join(w->thread, NULL);
    w->started = false;
    drain_rings(w, true);
}

void hs_writer_destroy(hs_writer_t *w)
{
    if (!w)
        return;
    hs_writer_stop(w);
    if (w->rings && w->rings[w->nrings].buf)
        drain_rings(w, false);
    if (w->heads) {
        heads_clear(w);
        free(w->heads);
    }
    if (w->rings) {
        for (int r = 0; r <= w->nrings; r++)
            free(w->rings[r].buf);
        free(w->rings);
        hs_waiter_dispose(&w->waiter);
    }
    if (w->st)
        hs_store_close(w->st);
    free(w->batch);
    free(w->rows);
    free(w->seen);
    pthread_mutex_destroy(&w->reason_mu);
    free(w);
}

bool hs_writer_submit_spsc(hs_writer_t *w, int ring, hs_ingest_t *e)
{
    if (atomic_load_explicit(&w->stopping, memory_order_relaxed))
        return false;
    if (!hs_ring_enqueue_spsc(&w->rings[ring].r, w->rings[ring].buf, e))
        return false;
    hs_waiter_wake(&w->waiter);
    return true;
}

bool hs_writer_submit_mpmc(hs_writer_t *w, hs_ingest_t *e)
{
    if (atomic_load(&w->stopping))
        return false;
    ring_t *r = &w->rings[w->nrings];
    bool ok = hs_ring_enqueue_mpsc(&r->r, r->buf, e);
    if (ok)
        hs_waiter_wake(&w->waiter);
    return ok;
}

void hs_writer_stats(hs_writer_t *w, hs_writer_stats_t *out)
{
    out->batches = atomic_load(&w->n_batches);
    out->events = atomic_load(&w->n_events);
    out->failed_batches = atomic_load(&w->n_failed);
    out->trimmed = atomic_load(&w->n_trimmed);
    out->last_position = atomic_load(&w->last_position);
    out->db_ok = atomic_load(&w->db_ok) != 0;
}

bool hs_writer_ready(hs_writer_t *w, char *why, size_t len)
{
    if (atomic_load(&w->db_ok))
        return true;
    pthread_mutex_lock(&w->reason_mu);
    snprintf(why, len, "%s", w->reason[0] ? w->reason : "database unavailable");
    pthread_mutex_unlock(&w->reason_mu);
    return false;
}
