/* Request routing and argument values (see route.h). */
#include "proto/route.h"

#include <string.h>

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
