/*
 * Retention: per-stream limits on how many events, and how old, a stream keeps. Meant for
 * short-lived job streams ("job-*: keep an hour") and bounded logs ("metrics-*: the last 10000").
 *
 * Rules come from one text, e.g. --retention "job-*:max-age=1h;audit:max-count=100000", each
 * `PATTERN:LIMIT[,LIMIT]`: PATTERN is a stream name, or a prefix ending in `*` (`*` alone is every
 * stream); LIMIT is max-count=N (keep the newest N events) or max-age=DURATION (drop events
 * committed longer ago than that; a number of seconds, or with a suffix s, m, h or d). A stream
 * follows the first rule that matches it.
 *
 * What is dropped: event rows only. The stream keeps its row, its version (the next event still
 * gets version + 1), its position and its closed flag, so versions and positions are never
 * reused; reading from 0 starts at the oldest event kept; a client id whose event was dropped can
 * be appended again.
 *
 * The writer thread applies the rules between its batches (hs_retention_step): a sweep walks the
 * matching streams in small steps, each a few short transactions outside the batch lock, so an
 * append waits for at most one step. A sweep starts at most once per SWEEP_INTERVAL_MS.
 */
#ifndef HS_RETENTION_H
#define HS_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"

typedef struct hs_retention_rule {
    char *pattern; /* the name, or the prefix without its '*' */
    size_t len;
    bool prefix;
    int64_t max_count;  /* 0: no count limit */
    int64_t max_age_us; /* 0: no age limit */
} hs_retention_rule_t;

typedef struct hs_retention hs_retention_t;

/*
 * Parses the rules. An empty or NULL text gives *out = NULL (no retention). Returns 0, or
 * HS_EINVAL with the reason in err, or HS_ENOMEM.
 */
int hs_retention_parse(const char *text, hs_retention_t **out, char *err, size_t errlen);
void hs_retention_free(hs_retention_t *r);

/* The first rule matching a stream name, or NULL. */
const hs_retention_rule_t *hs_retention_match(const hs_retention_t *r, const char *name,
                                              size_t len);

/*
 * One bounded step of the sweep through st (the writer's connection, outside any transaction).
 * now_us is the wall clock (UTC microseconds), mono_us a monotonic one. Returns 1 when more work
 * is due at once, 0 when nothing is due before the next sweep, or a store error (the sweep then
 * starts over at the next interval). *deleted is increased by the rows dropped.
 */
int hs_retention_step(hs_retention_t *r, hs_store_t *st, int64_t now_us, int64_t mono_us,
                      uint64_t *deleted);

#endif
