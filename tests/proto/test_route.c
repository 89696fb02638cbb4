/*
 * Request routing and argument values (proto/route.c): which route and stream a path names, the
 * integers of `from=` and Last-Event-ID, comma lists (`types=`), and the SignalR connection
 * token read from the first bytes of a request. Inputs are copied into allocations of exactly
 * their length, so that a read past the end shows under ASan.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/route.h"

static char *exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    memcpy(p, s, n);
    return p;
}

/* Routes path[0..n): kind, and the name as an offset into the path (-1: none). */
static hs_route_t route_n(const char *path, size_t n, long *name_off)
{
    char *p = exact(path, n);
    hs_route_t r;
    memset(&r, 0xA5, sizeof(r));
    hs_route_parse(p, n, &r);
    *name_off = r.name ? (long)(r.name - p) : -1;
    if (r.name)
        cr_assert(r.name >= p && r.name + r.name_len <= p + n, "the name lies outside the path");
    free(p);
    return r;
}

static hs_route_t route(const char *path, long *name_off)
{
    return route_n(path, strlen(path), name_off);
}

Test(route, fixed_routes)
{
    static const struct {
        const char *path;
        hs_route_kind_t kind;
    } cases[] = {
        {"/healthz", HS_ROUTE_HEALTHZ},
        {"/readyz", HS_ROUTE_READYZ},
        {"/hub", HS_ROUTE_HUB},
        {"/hub/negotiate", HS_ROUTE_NEGOTIATE},
        {"/api/streams", HS_ROUTE_STREAMS},
        {"/api/streams/", HS_ROUTE_STREAMS},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        long off;
        hs_route_t r = route(cases[i].path, &off);
        cr_assert_eq(r.kind, cases[i].kind, "%s: kind %d", cases[i].path, r.kind);
        cr_assert_eq(off, -1, "%s names a stream", cases[i].path);
        cr_assert_eq(r.name_len, 0);
    }
}

Test(route, stream_routes_and_their_names)
{
    static const struct {
        const char *path;
        size_t len; /* 0: strlen */
        hs_route_kind_t kind;
        const char *name;
        size_t name_len;
    } cases[] = {
        {"/api/streams/orders", 0, HS_ROUTE_STREAM, "orders", 6},
        {"/api/streams/orders/events", 0, HS_ROUTE_EVENTS, "orders", 6},
        {"/api/streams/orders/close", 0, HS_ROUTE_CLOSE, "orders", 6},
        {"/api/streams/$all", 0, HS_ROUTE_STREAM, "$all", 4},
        {"/api/streams/$all/events", 0, HS_ROUTE_EVENTS, "$all", 4},
        /* odd bytes: the path is already decoded, the name is whatever lies between slashes */
        {"/api/streams/a b", 0, HS_ROUTE_STREAM, "a b", 3},
        {"/api/streams/a%2Fb/events", 0, HS_ROUTE_EVENTS, "a%2Fb", 5},
        {"/api/streams/a?b", 0, HS_ROUTE_STREAM, "a?b", 3},
        {"/api/streams/..", 0, HS_ROUTE_STREAM, "..", 2},
        {"/api/streams/caf\xc3\xa9/close", 0, HS_ROUTE_CLOSE, "caf\xc3\xa9", 5},
        {"/api/streams/\xff\xfe", 0, HS_ROUTE_STREAM, "\xff\xfe", 2},
        {"/api/streams/a\0b/events", 23, HS_ROUTE_EVENTS, "a\0b", 3},
        {"/api/streams/events", 0, HS_ROUTE_STREAM, "events", 6},
        {"/api/streams/close/events", 0, HS_ROUTE_EVENTS, "close", 5},
        /* an empty name is routed; whether it is a valid stream name is the caller's check */
        {"/api/streams//events", 0, HS_ROUTE_EVENTS, "", 0},
        {"/api/streams//close", 0, HS_ROUTE_CLOSE, "", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        size_t n = cases[i].len ? cases[i].len : strlen(cases[i].path);
        long off;
        hs_route_t r = route_n(cases[i].path, n, &off);
        cr_assert_eq(r.kind, cases[i].kind, "case %zu (%s): kind %d", i, cases[i].path, r.kind);
        cr_assert_eq(off, 13, "case %zu: the name starts after /api/streams/", i);
        cr_assert_eq(r.name_len, cases[i].name_len, "case %zu: name length %zu", i, r.name_len);
        cr_assert_eq(memcmp(cases[i].path + off, cases[i].name, r.name_len), 0, "case %zu", i);
    }
}

Test(route, everything_else_is_no_route)
{
    static const char *const paths[] = {
        "",
        "/",
        "/healthz/",
        "/healthzz",
        "/HEALTHZ",
        "healthz",
        "//healthz",
        "/readyz/x",
        "/hub/",
        "/hub/negotiate/",
        "/hubs",
        "/hub/negotiat",
        "/api",
        "/api/",
        "/api/stream",
        "/api/streamsx",
        "/api/streams/x/",
        "/api/streams/x/events/",
        "/api/streams/x/Events",
        "/api/streams/x/close/extra",
        "/api/streams/x/y",
        "/api/streams/a/b/events",
        "/api/streams/x//events",
        "/API/streams/x",
        " /healthz",
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(*paths); i++) {
        long off;
        hs_route_t r = route(paths[i], &off);
        cr_assert_eq(r.kind, HS_ROUTE_NONE, "'%s' routed to %d", paths[i], r.kind);
        cr_assert_eq(off, -1, "'%s' names a stream", paths[i]);
        cr_assert_eq(r.name_len, 0);
    }
    /* the length is the path: bytes beyond it are not looked at */
    long off;
    cr_assert_eq(route_n("/healthzXYZ", 8, &off).kind, HS_ROUTE_HEALTHZ);
    cr_assert_eq(route_n("/hub/negotiate", 4, &off).kind, HS_ROUTE_HUB);
    hs_route_t r = route_n("/api/streams/abc/events", 16, &off);
    cr_assert_eq(r.kind, HS_ROUTE_STREAM);
    cr_assert_eq(r.name_len, 3);
    cr_assert_eq(route_n("/healthz\0", 9, &off).kind, HS_ROUTE_NONE, "a NUL is a byte too");
}

/* ---- integers ---- */

static bool uint_n(const char *s, size_t n, int64_t *out)
{
    char *p = exact(s, n);
    bool ok = hs_route_uint(p, n, out);
    free(p);
    return ok;
}

Test(route, uint_accepts_1_to_19_digits_within_int64)
{
    static const struct {
        const char *s;
        int64_t v;
    } ok[] = {
        {"0", 0},
        {"7", 7},
        {"007", 7},
        {"123456789", 123456789},
        {"0000000000000000001", 1},                   /* 19 digits */
        {"1000000000000000000", 1000000000000000000}, /* 19 digits */
        {"9223372036854775807", INT64_MAX},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
        int64_t v = -1;
        cr_assert(uint_n(ok[i].s, strlen(ok[i].s), &v), "refused %s", ok[i].s);
        cr_assert_eq(v, ok[i].v, "%s: %lld", ok[i].s, (long long)v);
    }
    int64_t v = -1;
    cr_assert(uint_n("12345", 2, &v), "the length given is the number");
    cr_assert_eq(v, 12);
}

Test(route, uint_refuses_overflow_signs_blanks_and_the_rest)
{
    static const char *const bad[] = {
        "",
        "9223372036854775808",  /* INT64_MAX + 1 */
        "9999999999999999999",  /* 19 digits, too large */
        "10000000000000000000", /* 20 digits */
        "00000000000000000001", /* 20 digits, small value: the length rule */
        "18446744073709551616",
        "-1",
        "-0",
        "+1",
        " 1",
        "1 ",
        "\t1",
        "1\n",
        "1a",
        "a1",
        "0x1",
        "1.0",
        "1e3",
        "1,000",
        "١",            /* an Arabic-Indic digit */
        "\xef\xbc\x91", /* a fullwidth 1 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        int64_t v = 4242;
        cr_assert_not(uint_n(bad[i], strlen(bad[i]), &v), "accepted '%s'", bad[i]);
        cr_assert_eq(v, 4242, "'%s': the output was written on failure", bad[i]);
    }
    int64_t v = 4242;
    cr_assert_not(uint_n("1\0", 2, &v), "a NUL after the digits");
    cr_assert_not(uint_n("\0"
                         "1",
                         2, &v));
}

/* ---- comma lists ---- */

Test(route, list_splits_at_commas_skipping_empty_items)
{
    const char *items[8];
    bool more = true;
    char s1[] = "created,updated,deleted";
    cr_assert_eq(hs_route_list(s1, items, 8, &more), 3);
    cr_assert_not(more);
    cr_assert_str_eq(items[0], "created");
    cr_assert_str_eq(items[1], "updated");
    cr_assert_str_eq(items[2], "deleted");
    cr_assert(items[0] == s1 && items[2] == s1 + 16, "items point into the string");

    char s2[] = ",a,,b,";
    cr_assert_eq(hs_route_list(s2, items, 8, &more), 2);
    cr_assert_not(more);
    cr_assert_str_eq(items[0], "a");
    cr_assert_str_eq(items[1], "b");

    char s3[] = "";
    cr_assert_eq(hs_route_list(s3, items, 8, &more), 0);
    cr_assert_not(more);
    char s4[] = ",,,";
    cr_assert_eq(hs_route_list(s4, items, 8, &more), 0);
    cr_assert_not(more);
    char s5[] = " a , b ";
    cr_assert_eq(hs_route_list(s5, items, 8, &more), 2);
    cr_assert_str_eq(items[0], " a ", "blanks are part of an item");
    cr_assert_str_eq(items[1], " b ");
}

Test(route, list_says_when_items_were_left_over)
{
    const char *items[2];
    bool more;
    char s1[] = "a,b";
    cr_assert_eq(hs_route_list(s1, items, 2, &more), 2);
    cr_assert_not(more, "exactly max items");
    char s2[] = "a,b,c";
    cr_assert_eq(hs_route_list(s2, items, 2, &more), 2);
    cr_assert(more);
    cr_assert_str_eq(items[0], "a");
    cr_assert_str_eq(items[1], "b");
    char s3[] = "a,,b,,,";
    cr_assert_eq(hs_route_list(s3, items, 2, &more), 2);
    cr_assert_not(more, "empty items are not left over");
    char s4[] = "a";
    cr_assert_eq(hs_route_list(s4, items, 0, &more), 0);
    cr_assert(more);
}

/* ---- the SignalR connection token ---- */

static int token_n(const char *req, size_t n, char *tok, size_t cap)
{
    char *p = exact(req, n);
    int l = hs_route_hub_token(p, n, tok, cap);
    free(p);
    return l;
}

static int token(const char *req, char *tok, size_t cap)
{
    return token_n(req, strlen(req), tok, cap);
}

Test(route, hub_token_from_the_request_line)
{
    static const struct {
        const char *req, *tok;
    } cases[] = {
        {"GET /hub?id=abc HTTP/1.1\r\n", "abc"},
        {"GET /hub?id=AZaz09-_ HTTP/1.1\r\nHost: x\r\n\r\n", "AZaz09-_"},
        {"POST /hub?id=tok HTTP/1.1\r\n", "tok"},
        {"OPTIONS /hub?id=t7 HTTP/1.1\r\n", "t7"},
        {"GET /hub?x=1&id=mid&y=2 HTTP/1.1\r\n", "mid"},
        {"GET /hub?x=1&id=last HTTP/1.1\r\n", "last"},
        {"GET /hub?id=first&id=second HTTP/1.1\r\n", "first"},
        {"GET /hub?xid=no&id=yes HTTP/1.1\r\n", "yes"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char tok[64];
        memset(tok, 'x', sizeof(tok));
        int l = token(cases[i].req, tok, sizeof(tok));
        cr_assert_eq(l, (int)strlen(cases[i].tok), "%s: %d", cases[i].req, l);
        cr_assert_str_eq(tok, cases[i].tok);
    }
}

Test(route, hub_token_absent_or_malformed)
{
    static const char *const bad[] = {
        "",
        "GET",
        "GET /hub HTTP/1.1\r\n",           /* no query */
        "GET /hub?x=1 HTTP/1.1\r\n",       /* no id */
        "GET /hub?xid=abc HTTP/1.1\r\n",   /* not the id argument */
        "GET /hub?id= HTTP/1.1\r\n",       /* empty */
        "GET /hub?id=ab%2Fc HTTP/1.1\r\n", /* not base64url */
        "GET /hub?id=a+b HTTP/1.1\r\n",
        "GET /hub?id=a.b HTTP/1.1\r\n",
        "GET /hub?id=a=b HTTP/1.1\r\n",
        "GET /hub?id=a#b HTTP/1.1\r\n",
        "GET /hub?id=\xc3\xa9 HTTP/1.1\r\n",
        "GET /hub/negotiate?id=abc HTTP/1.1\r\n", /* another path */
        "GET /hubx?id=abc HTTP/1.1\r\n",
        "GET hub?id=abc HTTP/1.1\r\n",
        "GET  /hub?id=abc HTTP/1.1\r\n",     /* two spaces */
        "PROPFIND /hub?id=abc HTTP/1.1\r\n", /* longer than any method the hub takes */
        "GET /hub?id=abc",                   /* the request line is not complete yet */
        "GET /hub?id=abc\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char tok[64] = "";
        cr_assert_eq(token(bad[i], tok, sizeof(tok)), -1, "'%s' gave '%s'", bad[i], tok);
    }
}

Test(route, hub_token_must_fit)
{
    char tok[8];
    cr_assert_eq(token("GET /hub?id=abcdefg HTTP/1.1\r\n", tok, 8), 7, "7 bytes and the NUL");
    cr_assert_str_eq(tok, "abcdefg");
    cr_assert_eq(token("GET /hub?id=abcdefgh HTTP/1.1\r\n", tok, 8), -1);
    cr_assert_eq(token("GET /hub?id=a HTTP/1.1\r\n", tok, 1), -1, "no room but the NUL");
    cr_assert_eq(token("GET /hub?id=a HTTP/1.1\r\n", tok, 0), -1);
}

/* Bytes arrive in pieces: every prefix that stops before the space ending the target names no
 * token, every longer one names the whole token. */
Test(route, hub_token_from_every_prefix)
{
    const char req[] = "GET /hub?negotiateVersion=1&id=Zk9vYmFy-_0 HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t sp = (size_t)(strstr(req, " HTTP") - req);
    for (size_t n = 0; n <= sizeof(req) - 1; n++) {
        char tok[64] = "";
        int l = token_n(req, n, tok, sizeof(tok));
        if (n <= sp) {
            cr_assert_eq(l, -1, "prefix of %zu bytes gave '%s'", n, tok);
        } else {
            cr_assert_eq(l, 11, "prefix of %zu bytes: %d", n, l);
            cr_assert_str_eq(tok, "Zk9vYmFy-_0");
        }
    }
}
