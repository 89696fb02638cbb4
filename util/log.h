/*
 * Logging: structured records to the embedder's hook or, by default, JSON lines on stderr.
 *
 * Nothing on a per-message path logs: counters in metrics say what happens per message; logs say
 * what happened to the server (start, stop, a failed batch, a refused connection).
 */
#ifndef HS_LOG_H
#define HS_LOG_H

#include <stdbool.h>

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

/* Copies an ODBC connection string to out (cap bytes, NUL-terminated) with the values of Pwd=
 * and Password= (any case, braced or not) replaced by "***": for logs. */
void hs_redact_conn(const char *cs, char *out, size_t cap);

#endif
