/*
 * Retention (storage/retention.c): the rule syntax, and the writer's sweep on a real SQLite
 * file: streams keep their newest N events or their recent ones, versions go on after a trim,
 * the first matching rule wins, unmatched streams keep everything.
 */
#include <criterion/criterion.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/codec.h"
#include "storage/retention.h"
#include "storage/writer.h"

/* ---- syntax ---- */

static hs_retention_t *parse_ok(const char *text)
{
    hs_retention_t *r = NULL;
    char err[300] = "";
    cr_assert_eq(hs_retention_parse(text, &r, err, sizeof err), 0, "'%s': %s", text, err);
    return r;
}

static void parse_bad(const char *text, const char *says)
{
    hs_retention_t *r = NULL;
    char err[300] = "";
    cr_assert_eq(hs_retention_parse(text, &r, err, sizeof err), HS_EINVAL, "'%s' was accepted",
                 text);
    cr_assert_null(r);
    cr_assert(strstr(err, says), "'%s': the error '%s' does not say '%s'", text, err, says);
}

Test(retention_syntax, rules_limits_and_first_match)
{
    hs_retention_t *r =
        parse_ok(" job-*:max-age=1h ; audit:max-count=100000,max-age=7d;*:max-age=90");
    const hs_retention_rule_t *m = hs_retention_match(r, "job-42", 6);
    cr_assert_not_null(m);
    cr_assert(m->prefix);
    cr_assert_eq(m->max_age_us, 3600LL * 1000000);
    cr_assert_eq(m->max_count, 0);
    m = hs_retention_match(r, "audit", 5);
    cr_assert_eq(m->max_count, 100000);
    cr_assert_eq(m->max_age_us, 7LL * 86400 * 1000000);
    /* "audit" is exact: "audit2" falls through to the catch-all */
    m = hs_retention_match(r, "audit2", 6);
    cr_assert_eq(m->max_age_us, 90LL * 1000000);
    cr_assert(m->prefix && m->len == 0);
    hs_retention_free(r);

    r = parse_ok("a:max-count=1");
    cr_assert_null(hs_retention_match(r, "b", 1));
    cr_assert_null(hs_retention_match(r, "ab", 2));
    hs_retention_free(r);

    /* names with ':' are fine: the limits follow the last one */
    r = parse_ok("tenant:1:*:max-age=30m");
    m = hs_retention_match(r, "tenant:1:x", 10);
    cr_assert_not_null(m);
    cr_assert_eq(m->max_age_us, 1800LL * 1000000);
    hs_retention_free(r);

    hs_retention_t *none = (hs_retention_t *)1;
    char err[64];
    cr_assert_eq(hs_retention_parse(" ; ", &none, err, sizeof err), 0);
    cr_assert_null(none);
    cr_assert_eq(hs_retention_parse(NULL, &none, err, sizeof err), 0);
    cr_assert_null(none);
}

Test(retention_syntax, bad_rules_say_what_is_wrong)
{
    parse_bad("job-*", "expected PATTERN:");
    parse_bad(":max-count=1", "no stream pattern");
    parse_bad("a*b:max-count=1", "'*' may only end");
    parse_bad("a:max-count=0", "at least 1");
    parse_bad("a:max-count=-3", "whole number");
    parse_bad("a:max-count=1,max-count=2", "once");
    parse_bad("a:max-age=1w", "s, m, h or d");
    parse_bad("a:max-age=", "max-age");
    parse_bad("a:max-age=0", "at least 1");
    parse_bad("a:keep=3", "unknown limit");
    parse_bad("a:max-count", "expected max-count=N");
    parse_bad("a:max-count=99999999999999999999999", "whole number");
    parse_bad("ok:max-count=1;bad", "'bad'");
}

/* ---- the sweep, through the writer ---- */

static char dir[64], db[128];
static sem_t done_sem;

static void on_done(hs_ingest_t *e)
{
    (void)e;
    sem_post(&done_sem);
}

static void sink(void *ctx, hs_batch_t *b)
{
    (void)ctx;
    hs_batch_unref(b);
}

static void setup(void)
{
    strcpy(dir, "/tmp/hs-retention-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/r.db", dir);
    sem_init(&done_sem, 0, 0);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    sem_destroy(&done_sem);
}

TestSuite(retention, .init = setup, .fini = teardown, .timeout = 120);

static hs_writer_t *mk(hs_retention_t *rules)
{
    char err[256];
    hs_writer_config_t cfg = {.db = db,
                              .nrings = 1,
                              .encode = hs_codec_encode,
                              .encode_marker = hs_codec_encode_marker,
                              .sink = sink,
                              .retention = rules};
    hs_writer_t *w = hs_writer_create(&cfg, err, sizeof err);
    cr_assert_not_null(w, "%s", err);
    cr_assert_eq(hs_writer_start(w), 0);
    return w;
}

/* Appends n events (in publishes of up to 100) and returns the last version. */
static int64_t publish(hs_writer_t *w, const char *stream, int n)
{
    int64_t last = 0;
    while (n > 0) {
        int k = n > 100 ? 100 : n;
        hs_event_t ev[100];
        for (int i = 0; i < k; i++)
            ev[i] = (hs_event_t){.type = "t", .data = "{}"};
        hs_ingest_t *e;
        char why[128];
        cr_assert_eq(hs_codec_build_publish(stream, ev, (size_t)k, 1 << 20, &e, why, sizeof why),
                     0);
        e->done = on_done;
        cr_assert(hs_writer_submit_mpsc(w, e));
        sem_wait(&done_sem);
        cr_assert_eq(e->status, 0);
        last = e->result.last_version;
        hs_ingest_free(e);
        n -= k;
    }
    return last;
}

typedef struct span {
    int64_t first, last, n;
} span_t;

static int span_cb(void *ctx, const hs_record_t *r)
{
    span_t *s = ctx;
    if (!s->n)
        s->first = r->version;
    cr_assert_eq(r->version, s->first + s->n, "versions kept are not contiguous");
    s->last = r->version;
    s->n++;
    return 0;
}

static span_t kept(const char *stream)
{
    char err[256];
    hs_store_t *st = hs_store_open(db, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    span_t s = {0};
    cr_assert_eq(hs_store_read_stream(st, stream, strlen(stream), 0, false, 100000, span_cb, &s),
                 0);
    hs_store_close(st);
    return s;
}

/* Waits until `stream` keeps exactly n events (the sweep runs in the background). */
static span_t wait_kept(const char *stream, int64_t n)
{
    span_t s = {0};
    for (int i = 0; i < 200; i++) {
        s = kept(stream);
        if (s.n == n)
            return s;
        usleep(50000);
    }
    cr_assert_fail("%s keeps %lld events, not %lld", stream, (long long)s.n, (long long)n);
    return s;
}

Test(retention, max_count_keeps_the_newest_and_versions_go_on)
{
    hs_retention_t *r = parse_ok("keep-*:max-count=1000000;cnt-*:max-count=10");
    hs_writer_t *w = mk(r);
    /* more than one trim chunk (1000 rows) and more than one step (4 chunks) */
    cr_assert_eq(publish(w, "cnt-a", 5500), 5500);
    publish(w, "cnt-b", 5);
    publish(w, "keep-x", 50);
    publish(w, "other", 30);
    span_t s = wait_kept("cnt-a", 10);
    cr_assert_eq(s.first, 5491);
    cr_assert_eq(s.last, 5500);
    /* below the limit, or matched first by a looser rule, or no rule: untouched */
    cr_assert_eq(kept("cnt-b").n, 5);
    cr_assert_eq(kept("keep-x").n, 50);
    cr_assert_eq(kept("other").n, 30);
    /* the stream's version goes on after the trim */
    cr_assert_eq(publish(w, "cnt-a", 3), 5503);
    s = wait_kept("cnt-a", 10);
    cr_assert_eq(s.first, 5494);
    hs_writer_stats_t st;
    hs_writer_stats(w, &st);
    cr_assert_eq(st.trimmed, 5493);
    hs_writer_destroy(w);
    hs_retention_free(r);
}

Test(retention, max_age_drops_events_older_than_the_limit)
{
    hs_retention_t *r = parse_ok("job-1:max-age=1");
    hs_writer_t *w = mk(r);
    publish(w, "job-1", 20);
    publish(w, "job-2", 20);
    usleep(1300000);
    publish(w, "job-1", 2); /* new ones stay */
    span_t s = wait_kept("job-1", 2);
    cr_assert_eq(s.first, 21);
    cr_assert_eq(kept("job-2").n, 20, "an exact-name rule touched another stream");
    /* later the two go as well, and the stream stays with its version */
    wait_kept("job-1", 0);
    cr_assert_eq(publish(w, "job-1", 1), 23);
    hs_writer_destroy(w);
    hs_retention_free(r);
}

Test(retention, appends_go_on_while_a_large_trim_runs)
{
    /* 20,000 events over the limit: the trim takes many steps, and every publish meanwhile
     * completes with the next version */
    hs_retention_t *none = NULL;
    hs_writer_t *w = mk(none);
    publish(w, "big", 20000);
    hs_writer_destroy(w);
    hs_retention_t *r = parse_ok("big:max-count=100");
    w = mk(r);
    int64_t v = 20000;
    for (int i = 0; i < 50; i++)
        cr_assert_eq(publish(w, "big", 1), ++v);
    span_t s = wait_kept("big", 100);
    cr_assert_eq(s.last, v);
    hs_writer_destroy(w);
    hs_retention_free(r);
}
