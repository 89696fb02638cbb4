/* Structured logging and its rate limiter (see log.h). One write(2) per record keeps lines whole
 * across threads. */
#include "util/time.h"
#include "util/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "proto/codec.h"
#include "proto/json.h"

static const char *names[] = {"debug", "info", "warn", "error"};

static size_t append_quoted(char *buf, size_t o, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n > 1024)
        n = 1024;
    if (o + hs_json_quoted_len(s, n) >= cap)
        return o;
    return o + hs_json_quote(s, n, buf + o);
}

static size_t append(char *buf, size_t o, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (o + n >= cap)
        return o;
    memcpy(buf + o, s, n);
    return o + n;
}

/* A text value: as it is when it holds nothing but printable ASCII other than space, '"', '\\'
 * and '=' (and, for a message, spaces are fine too), else quoted with '"', '\\' and control
 * characters escaped; at most 1 KiB of it. */
static size_t append_text_value(char *buf, size_t o, size_t cap, const char *s, bool field)
{
    size_t n = strlen(s);
    if (n > 1024)
        n = 1024;
    bool plain = n > 0 || !field;
    for (size_t i = 0; i < n && plain; i++) {
        unsigned char c = (unsigned char)s[i];
        plain = c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=';
        if (!field && c == ' ')
            plain = true;
    }
    if (plain) {
        if (o + n >= cap)
            return o;
        memcpy(buf + o, s, n);
        return o + n;
    }
    if (o + 4 * n + 2 >= cap)
        return o;
    buf[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    return o;
}

/* " key=value" of the text format. */
static size_t append_text_field(char *buf, size_t o, size_t cap, const char *k, const char *v)
{
    size_t before = o;
    o = append(buf, o, cap, " ");
    o = append_text_value(buf, o, cap, k, true);
    o = append(buf, o, cap, "=");
    size_t at = o;
    o = append_text_value(buf, o, cap, v, true);
    return o == at && v[0] ? before : o; /* a value that did not fit: the field goes */
}

/* The record of hs_log(): the caller's key/value pairs from ap, then xkey/xval when xkey is set
 * (the limiter's "suppressed"). */
static void log_va(const hs_logger_t *lg, hs_log_level_t level, const char *msg, const char *xkey,
                   const char *xval, va_list ap)
{
    char fields[4096], text[4096];
    size_t o = 0, cap = sizeof(fields), t = 0;
    o = append(fields, o, cap, "{");
    bool first = true, va_done = false;
    for (;;) {
        const char *k = NULL, *v = NULL;
        if (!va_done) {
            k = va_arg(ap, const char *);
            if (k)
                v = va_arg(ap, const char *);
            else
                va_done = true; /* never read past the NULL */
        }
        if (!k) {
            if (!xkey)
                break;
            k = xkey;
            v = xval;
            xkey = NULL;
        }
        if (!first)
            o = append(fields, o, cap, ",");
        first = false;
        o = append_quoted(fields, o, cap, k);
        o = append(fields, o, cap, ":");
        o = append_quoted(fields, o, cap, v ? v : "");
        if (lg->text && !lg->fn)
            t = append_text_field(text, t, sizeof text, k, v ? v : "");
    }
    o = append(fields, o, cap, "}");
    fields[o] = '\0';
    if (lg->fn) {
        lg->fn(lg->ctx, level, msg, fields);
        return;
    }
    char line[8192];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char tbuf[32];
    hs_format_time((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, tbuf);
    size_t l = 0, lc = sizeof(line) - 2;
    if (lg->text) {
        static const char *const upper[] = {"DEBUG", "INFO", "WARN", "ERROR"};
        l = append(line, l, lc, tbuf);
        l = append(line, l, lc, " ");
        l = append(line, l, lc, upper[level]);
        l = append(line, l, lc, " ");
        l = append_text_value(line, l, lc, msg, false);
        if (t + l < lc) {
            memcpy(line + l, text, t);
            l += t;
        }
        line[l++] = '\n';
        ssize_t wr = write(STDERR_FILENO, line, l);
        (void)wr;
        return;
    }
    l = append(line, l, lc, "{\"time\":\"");
    l = append(line, l, lc, tbuf);
    l = append(line, l, lc, "\",\"level\":\"");
    l = append(line, l, lc, names[level]);
    l = append(line, l, lc, "\",\"msg\":");
    l = append_quoted(line, l, lc, msg);
    if (o > 2) {
        l = append(line, l, lc, ",");
        /* splice the fields object's members into the record */
        fields[o - 1] = '\0';
        l = append(line, l, lc, fields + 1);
    }
    line[l++] = '}';
    line[l++] = '\n';
    ssize_t wr = write(STDERR_FILENO, line, l);
    (void)wr;
}

void hs_log(const hs_logger_t *lg, hs_log_level_t level, const char *msg, ...)
{
    if (level < lg->level)
        return;
    va_list ap;
    va_start(ap, msg);
    log_va(lg, level, msg, NULL, NULL, ap);
    va_end(ap);
}

/* log_va() with "suppressed": "<n>" last when n > 0 */
static void log_suppressed_va(const hs_logger_t *lg, hs_log_level_t level, const char *msg,
                              uint64_t n, va_list ap)
{
    char num[24];
    snprintf(num, sizeof num, "%" PRIu64, n);
    log_va(lg, level, msg, n ? "suppressed" : NULL, num, ap);
}

void hs_log_suppressed(const hs_logger_t *lg, uint64_t suppressed, hs_log_level_t level,
                       const char *msg, ...)
{
    if (level < lg->level)
        return;
    va_list ap;
    va_start(ap, msg);
    log_suppressed_va(lg, level, msg, suppressed, ap);
    va_end(ap);
}

bool hs_log_limit_pass(hs_log_limit_t *lim, int64_t now_us, int64_t every_us, uint64_t *suppressed)
{
    if (lim->seen && every_us > 0 && now_us - lim->last_us < every_us) {
        lim->suppressed++;
        return false;
    }
    *suppressed = lim->suppressed;
    lim->suppressed = 0;
    lim->last_us = now_us;
    lim->seen = true;
    return true;
}

void hs_log_limit_reset(hs_log_limit_t *lim)
{
    lim->seen = false;
}

bool hs_log_limited(const hs_logger_t *lg, hs_log_limit_t *lim, int64_t every_us,
                    hs_log_level_t level, const char *msg, ...)
{
    uint64_t dropped;
    if (level < lg->level || !hs_log_limit_pass(lim, hs_mono_us(), every_us, &dropped))
        return false;
    va_list ap;
    va_start(ap, msg);
    log_suppressed_va(lg, level, msg, dropped, ap);
    va_end(ap);
    return true;
}

/* The connection string with the values of Pwd= and Password= replaced by "***" (logs must not
 * carry database passwords). ODBC keys are case-insensitive; values may be {braced}. */
void hs_redact_conn(const char *cs, char *out, size_t cap)
{
    size_t o = 0;
    const char *p = cs;
    while (*p && o + 1 < cap) {
        const char *key = p;
        const char *eq = strchr(p, '=');
        const char *semi = strchr(p, ';');
        if (!eq || (semi && semi < eq)) { /* no key=value here: copy through the next ';' */
            size_t n = semi ? (size_t)(semi - p) + 1 : strlen(p);
            n = n < cap - 1 - o ? n : cap - 1 - o;
            memcpy(out + o, p, n);
            o += n;
            p += n;
            continue;
        }
        size_t klen = (size_t)(eq - key);
        const char *v = eq + 1, *vend;
        if (*v == '{') {
            vend = strchr(v, '}');
            vend = vend ? vend + 1 : v + strlen(v);
        } else {
            vend = strchr(v, ';');
            vend = vend ? vend : v + strlen(v);
        }
        bool secret = (klen == 3 && !strncasecmp(key, "pwd", 3)) ||
                      (klen == 8 && !strncasecmp(key, "password", 8));
        size_t n = (size_t)(v - key);
        const char *val = secret && vend > v ? "***" : v;
        size_t vl = secret && vend > v ? 3 : (size_t)(vend - v);
        if (o + n + vl + 1 >= cap)
            break;
        memcpy(out + o, key, n);
        o += n;
        memcpy(out + o, val, vl);
        o += vl;
        p = vend;
        if (*p == ';')
            out[o++] = *p++;
    }
    out[o] = '\0';
}
