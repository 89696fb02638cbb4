/* Request routing and argument values (see route.h). */
#include "proto/route.h"

#include <string.h>
#include <strings.h>

static bool is(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n == l && memcmp(p, lit, l) == 0;
}

void hs_route_parse(const char *path, size_t len, hs_route_t *r)
{
    static const char pre[] = "/api/streams/";
    const size_t pl = sizeof(pre) - 1;
    r->kind = HS_ROUTE_NONE;
    r->name = NULL;
    r->name_len = 0;
    if (is(path, len, "/healthz")) {
        r->kind = HS_ROUTE_HEALTHZ;
    } else if (is(path, len, "/readyz")) {
        r->kind = HS_ROUTE_READYZ;
    } else if (is(path, len, "/hub")) {
        r->kind = HS_ROUTE_HUB;
    } else if (is(path, len, "/hub/negotiate")) {
        r->kind = HS_ROUTE_NEGOTIATE;
    } else if (is(path, len, "/api/streams") || is(path, len, pre)) {
        r->kind = HS_ROUTE_STREAMS;
    } else if (len > pl && memcmp(path, pre, pl) == 0) {
        const char *name = path + pl, *end = path + len;
        const char *slash = memchr(name, '/', (size_t)(end - name));
        const char *rest = slash ? slash : end;
        size_t rl = (size_t)(end - rest);
        r->name = name;
        r->name_len = (size_t)(rest - name);
        if (!rl)
            r->kind = HS_ROUTE_STREAM;
        else if (is(rest, rl, "/events"))
            r->kind = HS_ROUTE_EVENTS;
        else if (is(rest, rl, "/close"))
            r->kind = HS_ROUTE_CLOSE;
        if (r->kind == HS_ROUTE_NONE) {
            r->name = NULL;
            r->name_len = 0;
        }
    }
}

bool hs_route_uint(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0'); /* 19 digits fit in uint64 */
    }
    if (v > (uint64_t)INT64_MAX)
        return false;
    *out = (int64_t)v;
    return true;
}

uint32_t hs_route_list(char *s, const char **items, uint32_t max, bool *more)
{
    uint32_t k = 0;
    *more = false;
    for (char *p = s; p;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (*p) {
            if (k == max) {
                *more = true;
                break;
            }
            items[k++] = p;
        }
        p = comma ? comma + 1 : NULL;
    }
    return k;
}

int hs_route_hub_token(const char *req, size_t n, char *token, size_t cap)
{
    /* "<METHOD> /hub?....id=<token>[&...] HTTP/1.1": a method is at most 7 letters */
    const char *sp = n ? memchr(req, ' ', n < 8 ? n : 8) : NULL;
    if (!sp || !cap)
        return -1;
    const char *path = sp + 1, *end = req + n;
    if ((size_t)(end - path) < 5 || memcmp(path, "/hub?", 5))
        return -1;
    const char *line_end = memchr(path, ' ', (size_t)(end - path));
    if (!line_end)
        return -1;
    for (const char *q = path + 5; q < line_end;) {
        const char *amp = memchr(q, '&', (size_t)(line_end - q));
        const char *arg_end = amp ? amp : line_end;
        if (arg_end - q > 3 && !memcmp(q, "id=", 3)) {
            size_t tl = (size_t)(arg_end - q - 3);
            if (tl >= cap)
                return -1;
            /* tokens are base64url (hubhttp.c random_id): anything else names none */
            for (size_t i = 0; i < tl; i++) {
                char ch = q[3 + i];
                if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
                    return -1;
            }
            memcpy(token, q + 3, tl);
            token[tl] = '\0';
            return (int)tl;
        }
        q = arg_end + 1;
    }
    return -1;
}

/* ---- /api/EventStream/ ---- */

static bool is_nocase(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n == l && strncasecmp(s, lit, l) == 0;
}

bool hs_esroute_match(const char *path, size_t len)
{
    size_t pl = sizeof(HS_ESROUTE_PREFIX) - 1;
    return len >= pl && strncasecmp(path, HS_ESROUTE_PREFIX, pl) == 0;
}

void hs_esroute_parse(const char *path, size_t len, hs_esroute_t *r)
{
    memset(r, 0, sizeof(*r));
    if (!hs_esroute_match(path, len))
        return;
    size_t pl = sizeof(HS_ESROUTE_PREFIX) - 1;
    const char *p = path + pl;
    size_t n = len - pl;
    if (n && p[n - 1] == '/')
        n--;
    /* up to four segments; an empty one (a doubled '/') matches nothing */
    const char *seg[4];
    size_t sl[4];
    int ns = 0;
    size_t at = 0;
    while (at <= n && n) {
        const char *slash = memchr(p + at, '/', n - at);
        size_t e = slash ? (size_t)(slash - p) : n;
        if (ns == 4 || e == at)
            return;
        seg[ns] = p + at;
        sl[ns++] = e - at;
        at = e + 1;
        if (!slash)
            break;
    }
    if (ns == 0)
        return;
    if (is_nocase(seg[0], sl[0], "streams")) {
        if (ns == 2 && is_nocase(seg[1], sl[1], "search"))
            r->kind = HS_ESR_STREAMS_SEARCH;
        else if (ns == 2 && is_nocase(seg[1], sl[1], "associate"))
            r->kind = HS_ESR_ASSOCIATE;
        else if (ns == 2)
            r->kind = HS_ESR_STREAM;
        else if (ns == 3 && is_nocase(seg[1], sl[1], "stream"))
            r->kind = HS_ESR_STREAMS_BY_NAME;
        if (r->kind == HS_ESR_STREAM) {
            r->a = seg[1];
            r->alen = sl[1];
        } else if (r->kind == HS_ESR_STREAMS_BY_NAME) {
            r->a = seg[2];
            r->alen = sl[2];
        }
    } else if (is_nocase(seg[0], sl[0], "events")) {
        if (ns == 2 && is_nocase(seg[1], sl[1], "search")) {
            r->kind = HS_ESR_EVENTS_SEARCH;
        } else if (ns == 3) {
            r->kind = HS_ESR_EVENT;
            r->a = seg[1];
            r->alen = sl[1];
            r->b = seg[2];
            r->blen = sl[2];
        }
    } else if (is_nocase(seg[0], sl[0], "subscribers") && ns == 2) {
        r->kind = HS_ESR_SUBSCRIBER;
        r->a = seg[1];
        r->alen = sl[1];
    } else if (is_nocase(seg[0], sl[0], "subscriptionprocessor") && ns == 1) {
        r->kind = HS_ESR_PROCESSOR;
    }
}
