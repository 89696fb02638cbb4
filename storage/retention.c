/* Retention rules and the writer's sweep (see retention.h). */
#include "storage/retention.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"

#define SWEEP_INTERVAL_MS 1000
/* Streams looked at per step, and event rows dropped per statement. */
#define STEP_STREAMS 64
#define CHUNK        1000
/* A stream that still has more to drop after this many chunks in one step is revisited by the
 * next step, so that one huge stream does not hold appends up. */
#define STREAM_CHUNKS 4

typedef struct seen {
    int64_t id, version;
    char *name;
    size_t len;
} seen_t;

struct hs_retention {
    hs_retention_rule_t *rules;
    int n;
    /* sweep state */
    bool active;
    int64_t next_us; /* monotonic: when the next sweep may start */
    int rule;        /* the rule being swept */
    char *after;     /* its last stream done, by name */
    size_t after_len;
    seen_t page[STEP_STREAMS];
    int npage;
};

static int fail(char *err, size_t errlen, const char *fmt, const char *a, size_t alen)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, (int)alen, a);
    return HS_EINVAL;
}

/* "1h", "90", "30m": seconds in microseconds, or -1. */
static int64_t parse_duration(const char *s, size_t n)
{
    int64_t v = 0;
    size_t i = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > INT64_MAX / 10 / 86400 / 1000000)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (i == 0 || v == 0)
        return -1;
    int64_t unit = 1;
    if (i + 1 == n) {
        switch (s[i]) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            return -1;
        }
    } else if (i != n) {
        return -1;
    }
    return v * unit * 1000000;
}

static int64_t parse_count(const char *s, size_t n)
{
    int64_t v = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v > 0 ? v : -1;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* One rule, "PATTERN:LIMIT[,LIMIT]", blanks around it already removed. */
static int parse_rule(const char *s, size_t n, hs_retention_rule_t *r, char *err, size_t errlen)
{
    const char *colon = NULL;
    for (size_t i = n; i > 0; i--)
        if (s[i - 1] == ':') {
            colon = s + i - 1;
            break;
        }
    if (!colon)
        return fail(err, errlen,
                    "retention rule '%.*s': expected PATTERN:max-count=N or "
                    "PATTERN:max-age=DURATION",
                    s, n);
    size_t plen = (size_t)(colon - s);
    if (plen == 0)
        return fail(err, errlen, "retention rule '%.*s': no stream pattern", s, n);
    r->prefix = s[plen - 1] == '*';
    r->len = r->prefix ? plen - 1 : plen;
    if (memchr(s, '*', r->len))
        return fail(err, errlen, "retention rule '%.*s': '*' may only end the pattern", s, n);
    if (!(r->pattern = malloc(r->len + 1)))
        return HS_ENOMEM;
    memcpy(r->pattern, s, r->len);
    r->pattern[r->len] = '\0';

    const char *p = colon + 1, *end = s + n;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *q = comma ? comma : end;
        const char *eq = memchr(p, '=', (size_t)(q - p));
        if (!eq)
            return fail(err, errlen,
                        "retention rule '%.*s': expected max-count=N or "
                        "max-age=DURATION after the pattern",
                        s, n);
        size_t klen = (size_t)(eq - p), vlen = (size_t)(q - eq - 1);
        if (klen == 9 && !memcmp(p, "max-count", 9)) {
            if (r->max_count || (r->max_count = parse_count(eq + 1, vlen)) < 0)
                return fail(err, errlen,
                            "retention rule '%.*s': max-count must be given once,"
                            " as a whole number of at least 1",
                            s, n);
        } else if (klen == 7 && !memcmp(p, "max-age", 7)) {
            if (r->max_age_us || (r->max_age_us = parse_duration(eq + 1, vlen)) < 0)
                return fail(err, errlen,
                            "retention rule '%.*s': max-age must be given once, as "
                            "seconds of at least 1, optionally with s, m, h or d"
                            " (90, 30m, 1h, 7d)",
                            s, n);
        } else {
            return fail(err, errlen,
                        "retention rule '%.*s': unknown limit (expected max-count"
                        " or max-age)",
                        s, n);
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

int hs_retention_parse(const char *text, hs_retention_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!text)
        return 0;
    hs_retention_t *r = calloc(1, sizeof *r);
    if (!r)
        return HS_ENOMEM;
    int rc = 0;
    const char *p = text;
    for (;;) {
        const char *semi = strchr(p, ';');
        const char *q = semi ? semi : p + strlen(p);
        const char *a = p, *b = q;
        while (a < b && blank(*a))
            a++;
        while (b > a && blank(b[-1]))
            b--;
        if (a < b) {
            hs_retention_rule_t *grown = realloc(r->rules, (size_t)(r->n + 1) * sizeof *grown);
            if (!grown) {
                rc = HS_ENOMEM;
                break;
            }
            r->rules = grown;
            memset(&r->rules[r->n], 0, sizeof r->rules[0]);
            rc = parse_rule(a, (size_t)(b - a), &r->rules[r->n], err, errlen);
            r->n++;
            if (rc)
                break;
        }
        if (!semi)
            break;
        p = semi + 1;
    }
    if (rc || r->n == 0) {
        hs_retention_free(r);
        return rc;
    }
    r->next_us = INT64_MIN;
    *out = r;
    return 0;
}

static void clear_page(hs_retention_t *r)
{
    for (int i = 0; i < r->npage; i++)
        free(r->page[i].name);
    r->npage = 0;
}

void hs_retention_free(hs_retention_t *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        free(r->rules[i].pattern);
    free(r->rules);
    clear_page(r);
    free(r->after);
    free(r);
}

static bool matches(const hs_retention_rule_t *rule, const char *name, size_t len)
{
    if (rule->prefix)
        return len >= rule->len && memcmp(name, rule->pattern, rule->len) == 0;
    return len == rule->len && memcmp(name, rule->pattern, len) == 0;
}

const hs_retention_rule_t *hs_retention_match(const hs_retention_t *r, const char *name, size_t len)
{
    for (int i = 0; r && i < r->n; i++)
        if (matches(&r->rules[i], name, len))
            return &r->rules[i];
    return NULL;
}

/*
 * Drops what one stream is over its rule, at most STREAM_CHUNKS statements of CHUNK versions.
 * Returns 1 when the stream may have more to drop, 0 when it is within its limits, or an error.
 */
static int trim_stream(hs_store_t *st, const hs_retention_rule_t *rule, int64_t id, int64_t version,
                       int64_t now_us, uint64_t *deleted)
{
    for (int k = 0; k < STREAM_CHUNKS; k++) {
        int64_t oldest = 0, oldest_us = 0, n = 0;
        int rc = hs_store_oldest_event(st, id, &oldest, &oldest_us);
        if (rc == HS_ENOENT)
            return 0;
        if (rc)
            return rc;
        int64_t upto = 0, before = INT64_MAX;
        if (rule->max_count && version - rule->max_count >= oldest) {
            upto = version - rule->max_count;
        } else if (rule->max_age_us && oldest_us < now_us - rule->max_age_us) {
            upto = version;
            before = now_us - rule->max_age_us;
        } else {
            return 0;
        }
        if (upto > oldest + CHUNK - 1)
            upto = oldest + CHUNK - 1;
        if ((rc = hs_store_trim(st, id, upto, before, &n)))
            return rc;
        *deleted += (uint64_t)n;
        if (n == 0)
            return 0; /* an age limit met a newer event first */
    }
    return 1;
}

static int collect(void *ctx, const char *name, size_t len, const hs_stream_head_t *h)
{
    hs_retention_t *r = ctx;
    seen_t *s = &r->page[r->npage];
    if (!(s->name = malloc(len + 1)))
        return HS_ENOMEM;
    memcpy(s->name, name, len);
    s->name[len] = '\0';
    s->len = len;
    s->id = h->id;
    s->version = h->version;
    r->npage++;
    return 0;
}

static int set_after(hs_retention_t *r, const char *name, size_t len)
{
    char *p = realloc(r->after, len + 1);
    if (!p)
        return HS_ENOMEM;
    memcpy(p, name, len);
    p[len] = '\0';
    r->after = p;
    r->after_len = len;
    return 0;
}

static void next_rule(hs_retention_t *r)
{
    r->rule++;
    r->after_len = 0;
}

int hs_retention_step(hs_retention_t *r, hs_store_t *st, int64_t now_us, int64_t mono_us,
                      uint64_t *deleted)
{
    if (!r->active) {
        if (mono_us < r->next_us)
            return 0;
        r->active = true;
        r->rule = 0;
        r->after_len = 0;
    }
    int rc = 0;
    if (r->rule < r->n) {
        const hs_retention_rule_t *rule = &r->rules[r->rule];
        if (!rule->prefix) {
            hs_stream_head_t h;
            rc = hs_store_get_stream(st, rule->pattern, rule->len, &h);
            if (rc == HS_ENOENT ||
                (rc == 0 && hs_retention_match(r, rule->pattern, rule->len) != rule))
                rc = 0;
            else if (rc == 0)
                rc = trim_stream(st, rule, h.id, h.version, now_us, deleted);
            if (rc == 0)
                next_rule(r);
        } else {
            clear_page(r);
            rc = hs_store_list_streams(st, rule->pattern, rule->len, r->after ? r->after : "",
                                       r->after_len, STEP_STREAMS, collect, r);
            int i = 0;
            for (; rc == 0 && i < r->npage; i++) {
                seen_t *s = &r->page[i];
                /* an earlier rule that matches the stream is the one it follows */
                if (hs_retention_match(r, s->name, s->len) == rule)
                    rc = trim_stream(st, rule, s->id, s->version, now_us, deleted);
                if (rc == 1)
                    break; /* more to drop: this stream again next step */
                if (rc == 0)
                    rc = set_after(r, s->name, s->len);
            }
            if (rc == 1)
                rc = 0;
            else if (rc == 0 && r->npage < STEP_STREAMS)
                next_rule(r);
            clear_page(r);
        }
    }
    if (rc < 0 || r->rule >= r->n) {
        r->active = false;
        r->next_us = mono_us + (int64_t)SWEEP_INTERVAL_MS * 1000;
        return rc < 0 ? rc : 0;
    }
    return 1;
}
