/*
 * Rate-limited warnings (util/log.h): what a log reader sees through the log hook when one
 * warning repeats. The first record passes, repeats within the interval are dropped, and the
 * next one after it passes with "suppressed" counting the dropped ones.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

/* The records the hook received. */
typedef struct record {
    hs_log_level_t level;
    char msg[128];
    char fields[256];
} record_t;

static record_t recs[16];
static int nrecs;

static void hook(void *ctx, hs_log_level_t level, const char *message, const char *fields)
{
    (void)ctx;
    if (nrecs >= 16)
        return;
    recs[nrecs].level = level;
    snprintf(recs[nrecs].msg, sizeof recs[nrecs].msg, "%s", message);
    snprintf(recs[nrecs].fields, sizeof recs[nrecs].fields, "%s", fields);
    nrecs++;
}

static void setup(void)
{
    nrecs = 0;
}

TestSuite(log, .init = setup);

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void warn(const hs_logger_t *lg, hs_log_limit_t *lim, int64_t every_us, int n)
{
    char v[16];
    snprintf(v, sizeof v, "%d", n);
    hs_log_limited(lg, lim, every_us, HS_LOG_WARN, "disk unavailable", "try", v, NULL);
}

Test(log, first_passes_repeats_dropped_then_one_with_the_count)
{
    hs_logger_t lg = {.level = HS_LOG_INFO, .fn = hook};
    hs_log_limit_t lim = {0};
    const int64_t every = 100 * 1000; /* 100 ms */

    warn(&lg, &lim, every, 1);
    cr_assert_eq(nrecs, 1, "the first record passes");
    cr_assert_eq(recs[0].level, HS_LOG_WARN);
    cr_assert_str_eq(recs[0].msg, "disk unavailable");
    cr_assert_str_eq(recs[0].fields, "{\"try\":\"1\"}", "no suppressed field: nothing dropped");

    for (int i = 2; i <= 5; i++)
        warn(&lg, &lim, every, i);
    cr_assert_eq(nrecs, 1, "repeats within the interval are dropped");

    sleep_ms(130);
    warn(&lg, &lim, every, 6);
    cr_assert_eq(nrecs, 2, "the first repeat after the interval passes");
    cr_assert_str_eq(recs[1].msg, "disk unavailable");
    cr_assert_str_eq(recs[1].fields, "{\"try\":\"6\",\"suppressed\":\"4\"}");

    warn(&lg, &lim, every, 7);
    cr_assert_eq(nrecs, 2, "and the interval starts again from it");
}

Test(log, a_record_without_fields_gets_only_suppressed)
{
    hs_logger_t lg = {.level = HS_LOG_INFO, .fn = hook};
    hs_log_limit_t lim = {0};
    cr_assert(hs_log_limited(&lg, &lim, 50 * 1000, HS_LOG_ERROR, "sweep failed", NULL));
    cr_assert_not(hs_log_limited(&lg, &lim, 50 * 1000, HS_LOG_ERROR, "sweep failed", NULL));
    sleep_ms(70);
    cr_assert(hs_log_limited(&lg, &lim, 50 * 1000, HS_LOG_ERROR, "sweep failed", NULL));
    cr_assert_eq(nrecs, 2);
    cr_assert_str_eq(recs[0].fields, "{}");
    cr_assert_str_eq(recs[1].fields, "{\"suppressed\":\"1\"}");
    cr_assert_eq(recs[1].level, HS_LOG_ERROR);
}

Test(log, records_below_the_level_are_neither_logged_nor_counted)
{
    hs_logger_t lg = {.level = HS_LOG_ERROR, .fn = hook};
    hs_log_limit_t lim = {0};
    for (int i = 0; i < 3; i++)
        warn(&lg, &lim, 1000 * 1000, i);
    cr_assert_eq(nrecs, 0);
    lg.level = HS_LOG_INFO;
    warn(&lg, &lim, 1000 * 1000, 9);
    cr_assert_eq(nrecs, 1);
    cr_assert_str_eq(recs[0].fields, "{\"try\":\"9\"}", "the filtered ones were not counted");
}

/* The decision alone on a fake clock: no sleeping. */
Test(log, pass_on_a_fake_clock)
{
    hs_log_limit_t lim = {0};
    const int64_t every = 10 * 1000000LL;
    uint64_t sup = 99;
    cr_assert(hs_log_limit_pass(&lim, 0, every, &sup), "the first passes, even at time 0");
    cr_assert_eq(sup, 0);
    for (int64_t t = 1; t < every; t += every / 8)
        cr_assert_not(hs_log_limit_pass(&lim, t, every, &sup));
    cr_assert(hs_log_limit_pass(&lim, every, every, &sup), "exactly one interval later passes");
    cr_assert_eq(sup, 8);
    cr_assert_not(hs_log_limit_pass(&lim, every + 1, every, &sup));

    /* a new episode (the fault came back): the next one passes at once, still counting */
    hs_log_limit_reset(&lim);
    cr_assert(hs_log_limit_pass(&lim, every + 2, every, &sup));
    cr_assert_eq(sup, 1);
    cr_assert_not(hs_log_limit_pass(&lim, every + 3, every, &sup));

    /* no interval: everything passes */
    hs_log_limit_t all = {0};
    for (int i = 0; i < 3; i++) {
        cr_assert(hs_log_limit_pass(&all, 5, 0, &sup));
        cr_assert_eq(sup, 0);
    }
}

Test(log, suppressed_goes_last_and_only_when_something_was_dropped)
{
    hs_logger_t lg = {.level = HS_LOG_INFO, .fn = hook};
    hs_log_suppressed(&lg, 0, HS_LOG_WARN, "m", "a", "1", "b", "2", NULL);
    hs_log_suppressed(&lg, 12345678901ULL, HS_LOG_WARN, "m", "a", "1", "b", "2", NULL);
    hs_log_suppressed(&lg, 3, HS_LOG_DEBUG, "below the level", NULL);
    cr_assert_eq(nrecs, 2);
    cr_assert_str_eq(recs[0].fields, "{\"a\":\"1\",\"b\":\"2\"}");
    cr_assert_str_eq(recs[1].fields, "{\"a\":\"1\",\"b\":\"2\",\"suppressed\":\"12345678901\"}");
}

/* The default writers (no hook): the lines on stderr, JSON and text. */
static void stderr_lines(bool text, char *out, size_t cap)
{
    char path[] = "/tmp/hs-test-log-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    hs_logger_t lg = {.level = HS_LOG_INFO, .text = text};
    hs_log_limit_t lim = {0};
    for (int i = 1; i <= 3; i++)
        warn(&lg, &lim, 50 * 1000, i);
    sleep_ms(70);
    warn(&lg, &lim, 50 * 1000, 4);
    dup2(saved, STDERR_FILENO);
    close(saved);
    ssize_t n = pread(fd, out, cap - 1, 0);
    close(fd);
    unlink(path);
    cr_assert_gt(n, 0);
    out[n] = '\0';
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(log, json_and_text_lines_carry_suppressed)
{
    char out[2048];
    stderr_lines(false, out, sizeof out);
    cr_assert_eq(count_lines(out), 2, "%s", out);
    char *second = strchr(out, '\n') + 1;
    cr_assert(strstr(out, "\"level\":\"warn\",\"msg\":\"disk unavailable\",\"try\":\"1\"}\n"), "%s",
              out);
    cr_assert(strstr(second, "\"try\":\"4\",\"suppressed\":\"2\"}\n"), "%s", out);

    stderr_lines(true, out, sizeof out);
    cr_assert_eq(count_lines(out), 2, "%s", out);
    cr_assert(strstr(out, " WARN disk unavailable try=1\n"), "%s", out);
    cr_assert(strstr(out, " WARN disk unavailable try=4 suppressed=2\n"), "%s", out);
}
