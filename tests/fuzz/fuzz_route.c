#define _GNU_SOURCE /* memmem */
/*
 * libFuzzer target: what the server reads out of a request line and its arguments itself
 * (proto/route.h) and the UTF-8 rules every name goes through (util/utf8.h).
 * - hs_route_parse on the input as a path: a stream name lies inside it, holds no '/', and only
 *   the stream routes have one;
 * - hs_esroute_parse on the input as a path: a route only under /api/EventStream/ (ASCII case
 *   ignored), its arguments inside the path, holding no '/', non-empty, present exactly for the
 *   routes that take them;
 * - hs_route_uint: true exactly for 1..19 decimal digits with a value <= INT64_MAX, and then the
 *   value is the digits';
 * - hs_route_list on the input (NUL-terminated): items are non-empty, comma-free, in order, and
 *   joined with commas they give the input without its empty items;
 * - hs_route_hub_token on the input as the first bytes of a request: a token is a piece of the
 *   request line's /hub? arguments, fits its buffer, and is base64url;
 * - hs_utf8_valid agrees with a walk of hs_utf8_char, hs_utf8_put writes back what was decoded,
 *   and hs_utf8_boundary never cuts inside a character of valid text.
 */
#include "fuzz_common.h"

#include <strings.h>

#include "proto/route.h"
#include "util/utf8.h"

static void route(const uint8_t *data, size_t n)
{
    hs_route_t r;
    hs_route_parse((const char *)data, n, &r);
    bool stream_route =
        r.kind == HS_ROUTE_STREAM || r.kind == HS_ROUTE_EVENTS || r.kind == HS_ROUTE_CLOSE;
    CHECK(stream_route == (r.name != NULL));
    if (r.name) {
        CHECK(r.name >= (const char *)data && r.name + r.name_len <= (const char *)data + n);
        CHECK(!memchr(r.name, '/', r.name_len));
        CHECK(n >= 13 && !memcmp(data, "/api/streams/", 13));
    }
}

static void esroute(const uint8_t *data, size_t n)
{
    hs_esroute_t r;
    const char *p = (const char *)data;
    hs_esroute_parse(p, n, &r);
    CHECK(hs_esroute_match(p, n) == (n >= 17 && !strncasecmp(p, "/api/eventstream/", 17)));
    if (r.kind == HS_ESR_NONE) {
        CHECK(!r.a && !r.b);
        return;
    }
    CHECK(hs_esroute_match(p, n));
    bool one = r.kind == HS_ESR_STREAM || r.kind == HS_ESR_STREAMS_BY_NAME ||
               r.kind == HS_ESR_EVENT || r.kind == HS_ESR_SUBSCRIBER;
    CHECK(one == (r.a != NULL));
    CHECK((r.kind == HS_ESR_EVENT) == (r.b != NULL));
    const char *args[2] = {r.a, r.b};
    size_t lens[2] = {r.alen, r.blen};
    for (int i = 0; i < 2; i++) {
        if (!args[i])
            continue;
        CHECK(lens[i] >= 1 && args[i] >= p + 17 && args[i] + lens[i] <= p + n);
        CHECK(!memchr(args[i], '/', lens[i]));
    }
}

static void uint_arg(const uint8_t *data, size_t n)
{
    int64_t v = -1;
    bool ok = hs_route_uint((const char *)data, n, &v);
    bool digits = n >= 1 && n <= 19;
    unsigned __int128 want = 0;
    for (size_t i = 0; i < n && digits; i++) {
        if (data[i] < '0' || data[i] > '9')
            digits = false;
        else
            want = want * 10 + (data[i] - '0');
    }
    bool expect = digits && want <= (unsigned __int128)INT64_MAX;
    CHECK(ok == expect);
    if (ok)
        CHECK(v >= 0 && (unsigned __int128)v == want);
}

static void list(const uint8_t *data, size_t n)
{
    char *s = fz_strndup(data, n);
    size_t sl = strlen(s); /* the list ends at the first NUL, as an argument value does */
    char *copy = fz_strndup((const uint8_t *)s, sl);
    const char *items[8];
    bool more;
    uint32_t k = hs_route_list(s, items, 8, &more);
    CHECK(k <= 8);
    /* the expected items: the non-empty pieces between commas */
    char *joined = fz_alloc(sl + 1), *expect = fz_alloc(sl + 1);
    size_t jl = 0, el = 0;
    uint32_t pieces = 0;
    for (char *p = copy, *c; p; p = c ? c + 1 : NULL) {
        c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (!l)
            continue;
        if (pieces < 8) {
            if (el)
                expect[el++] = ',';
            memcpy(expect + el, p, l);
            el += l;
        }
        pieces++;
    }
    CHECK(k == (pieces < 8 ? pieces : 8));
    CHECK(more == (pieces > 8));
    for (uint32_t i = 0; i < k; i++) {
        size_t l = strlen(items[i]);
        CHECK(l > 0 && !strchr(items[i], ','));
        CHECK(items[i] >= s && items[i] + l <= s + sl);
        if (i)
            CHECK(items[i] > items[i - 1]);
        if (jl)
            joined[jl++] = ',';
        memcpy(joined + jl, items[i], l);
        jl += l;
    }
    CHECK(jl == el && !memcmp(joined, expect, jl));
    free(joined);
    free(expect);
    free(copy);
    free(s);
}

static void hub_token(const uint8_t *data, size_t n)
{
    char token[24];
    int l = hs_route_hub_token((const char *)data, n, token, sizeof(token));
    if (l < 0)
        return;
    CHECK((size_t)l < sizeof(token) && token[l] == '\0' && strlen(token) == (size_t)l);
    for (int k = 0; k < l; k++)
        CHECK((token[k] >= 'A' && token[k] <= 'Z') || (token[k] >= 'a' && token[k] <= 'z') ||
              (token[k] >= '0' && token[k] <= '9') || token[k] == '-' || token[k] == '_');
    const char *q = memmem(data, n, "/hub?", 5);
    CHECK(q != NULL);
    CHECK(l == 0 || memmem(q, n - (size_t)(q - (const char *)data), token, (size_t)l));
}

static void utf8(const uint8_t *data, size_t n)
{
    bool walk = true;
    char out[4];
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = hs_utf8_char(data + i, n - i, &cp);
        if (!l) {
            walk = false;
            break;
        }
        CHECK(cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF));
        CHECK(hs_utf8_put(cp, out) == l && !memcmp(out, data + i, l));
        i += l;
    }
    CHECK(hs_utf8_valid((const char *)data, n) == walk);
    size_t b = hs_utf8_boundary((const char *)data, n);
    CHECK(b <= n);
    if (walk) {
        /* valid text is cut nowhere: its end is a boundary */
        CHECK(b == n);
        /* and a cut anywhere inside comes back to a boundary of the valid prefix */
        for (size_t cut = n > 8 ? n - 8 : 0; cut < n; cut++)
            CHECK(hs_utf8_valid((const char *)data, hs_utf8_boundary((const char *)data, cut)));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    route(data, n);
    esroute(data, n);
    uint_arg(data, n);
    list(data, n);
    hub_token(data, n);
    utf8(data, n);
    return 0;
}
