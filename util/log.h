/*
 * Logging: structured records to the embedder's hook or, by default, JSON lines on stderr.
 *
 * Nothing on a per-message path logs: counters in metrics say what happens per message; logs say
 * what happened to the server (start, stop, a failed batch, a refused connection).
 */
#ifndef HS_LOG_H
#define HS_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "hubstream/hubstream.h"

typedef struct hs_logger {
    hs_log_level_t level;
    bool text;    /* the default writer: `TIME LEVEL message key=value ...` instead of JSON */
    hs_log_fn fn; /* NULL: JSON lines on stderr */
    void *ctx;
} hs_logger_t;

/*
 * Logs `msg` with structured fields given as key/value string pairs terminated by NULL, e.g.
 * hs_log(lg, HS_LOG_INFO, "listening", "addr", "127.0.0.1:5000", NULL). Thread-safe.
 */
void hs_log(const hs_logger_t *lg, hs_log_level_t level, const char *msg, ...)
    __attribute__((sentinel));

/*
 * Rate limits for warnings that a persistent fault repeats (a database that stays away, accept()
 * at the file limit, a sweep failing every second): the first record passes, then at most one
 * per interval, and the one that passes after n were dropped carries the field
 * "suppressed": "<n>". Zero-initialise a limiter (static, calloc or = {0}); no setup, no teardown.
 *
 * A limiter is owned by one thread (the writer's, a listener's, the acceptor's): it has no lock
 * and no atomics, so two threads must not share one. Give each thread that logs the record its
 * own limiter instead.
 */
typedef struct hs_log_limit {
    int64_t last_us;     /* when the last record passed (valid once `seen`) */
    uint64_t suppressed; /* records dropped since then */
    bool seen;           /* false: the next record passes */
} hs_log_limit_t;

/* The decision alone, at now_us (any clock, the same for every call; hs_mono_us() in the
 * server): true when the record passes, with *suppressed set to how many were dropped before it
 * (and the count starts again); false when it is dropped (and counted). every_us <= 0: every
 * record passes. */
bool hs_log_limit_pass(hs_log_limit_t *lim, int64_t now_us, int64_t every_us, uint64_t *suppressed);

/* A new episode (the fault went away and came back): the next record passes whenever it comes.
 * What was dropped is still counted on it. */
void hs_log_limit_reset(hs_log_limit_t *lim);

/* hs_log() through a limiter, on the monotonic clock: logs when hs_log_limit_pass() lets the
 * record through, adding "suppressed" when records were dropped. Records below the logger's
 * level are neither logged nor counted. True when it logged. */
bool hs_log_limited(const hs_logger_t *lg, hs_log_limit_t *lim, int64_t every_us,
                    hs_log_level_t level, const char *msg, ...) __attribute__((sentinel));

/* hs_log() with a last field "suppressed": "<suppressed>" when suppressed > 0: for a caller
 * that decided with hs_log_limit_pass() itself. */
void hs_log_suppressed(const hs_logger_t *lg, uint64_t suppressed, hs_log_level_t level,
                       const char *msg, ...) __attribute__((sentinel));

/* Copies an ODBC connection string to out (cap bytes, NUL-terminated) with the values of Pwd=
 * and Password= (any case, braced or not) replaced by "***": for logs. */
void hs_redact_conn(const char *cs, char *out, size_t cap);

#endif
