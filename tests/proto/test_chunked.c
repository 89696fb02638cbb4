/*
 * The chunked request body decoder (proto/chunked.c): the body a publisher sent with
 * Transfer-Encoding: chunked, given back exactly however the bytes were split on the way, and
 * the malformed framings (request smuggling's tools) refused with a reason, at the byte that is
 * wrong. Each piece is handed over in an allocation of exactly its size: a read past its end
 * shows under ASan.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/chunked.h"

typedef struct result {
    int rc;           /* DONE, ERROR, or NEED when the input ran out */
    const char *why;  /* after ERROR */
    size_t off;       /* where the decoder stopped, as an offset into the whole input */
    char data[16384]; /* the decoded body */
    size_t n;
    int spans; /* DATA events */
} result_t;

static result_t res;

/* Feeds in[0..len) in the pieces that cuts[0..ncuts) (ascending offsets) make. */
static const result_t *feed(const char *in, size_t len, const size_t *cuts, size_t ncuts)
{
    result_t *o = &res;
    o->rc = HS_CHUNKED_NEED;
    o->why = NULL;
    o->n = 0;
    o->spans = 0;
    o->off = len;
    hs_chunked_t d;
    hs_chunked_init(&d);
    size_t start = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        cr_assert(end >= start && end <= len);
        size_t pl = end - start;
        uint8_t *piece = malloc(pl ? pl : 1);
        cr_assert_not_null(piece);
        memcpy(piece, in + start, pl);
        const uint8_t *p = piece, *e = piece + pl;
        for (;;) {
            const uint8_t *data = NULL;
            size_t dlen = 0;
            int rc = hs_chunked_next(&d, &p, e, &data, &dlen);
            cr_assert(p >= piece && p <= e, "the cursor left the input");
            if (rc == HS_CHUNKED_DATA) {
                cr_assert_gt(dlen, 0, "an empty data span");
                cr_assert(data >= piece && data + dlen <= e && data + dlen == p,
                          "a data span outside what was consumed");
                cr_assert_leq(o->n + dlen, sizeof(o->data));
                memcpy(o->data + o->n, data, dlen);
                o->n += dlen;
                o->spans++;
                continue;
            }
            if (rc == HS_CHUNKED_NEED) {
                cr_assert_eq(p, e, "NEED before the input was consumed");
                break;
            }
            cr_assert(rc == HS_CHUNKED_DONE || rc == HS_CHUNKED_ERROR, "rc %d", rc);
            o->rc = rc;
            o->why = d.why;
            o->off = start + (size_t)(p - piece);
            /* sticky: the same answer again, consuming nothing */
            const uint8_t *again = p;
            cr_assert_eq(hs_chunked_next(&d, &again, e, &data, &dlen), rc);
            cr_assert_eq(again, p);
            free(piece);
            return o;
        }
        free(piece);
        start = end;
    }
    return o;
}

static const result_t *whole(const char *in, size_t len)
{
    return feed(in, len, NULL, 0);
}

#define S(lit) lit, sizeof(lit) - 1

static void expect_body(const result_t *r, const char *body, size_t blen, size_t end)
{
    cr_assert_eq(r->rc, HS_CHUNKED_DONE, "rc %d (%s)", r->rc, r->why ? r->why : "");
    cr_assert_eq(r->n, blen, "decoded %zu bytes: '%.*s'", r->n, (int)r->n, r->data);
    cr_assert_eq(memcmp(r->data, body, blen), 0, "decoded '%.*s'", (int)r->n, r->data);
    cr_assert_eq(r->off, end, "stopped at %zu, the body ends at %zu", r->off, end);
}

static void expect_error(const result_t *r, const char *why, size_t at)
{
    cr_assert_eq(r->rc, HS_CHUNKED_ERROR, "rc %d", r->rc);
    cr_assert_not_null(r->why);
    cr_assert_str_eq(r->why, why);
    cr_assert_eq(r->off, at, "stopped at %zu, the bad byte is at %zu", r->off, at);
}

/* ---- well-formed bodies ---- */

Test(chunked, one_chunk)
{
    const char in[] = "5\r\nhello\r\n0\r\n\r\n";
    expect_body(whole(S(in)), S("hello"), sizeof(in) - 1);
}

Test(chunked, empty_body)
{
    expect_body(whole(S("0\r\n\r\n")), "", 0, 5);
    expect_body(whole(S("000\r\n\r\n")), "", 0, 7);
}

Test(chunked, sizes_in_either_case_with_leading_zeros)
{
    const char in[] = "3\r\nabc\r\n"
                      "a\r\n0123456789\r\n"
                      "F\r\nABCDEFGHIJKLMNO\r\n"
                      "0001\r\nz\r\n"
                      "1f\r\n0123456789012345678901234567890\r\n"
                      "0\r\n\r\n";
    const char body[] = "abc0123456789ABCDEFGHIJKLMNOz0123456789012345678901234567890";
    const result_t *r = whole(S(in));
    expect_body(r, S(body), sizeof(in) - 1);
    cr_assert_eq(r->spans, 5, "one span per chunk when it arrives whole");
    /* 15 digits is the most a size may have, leading zeros included */
    expect_body(whole(S("000000000000005\r\nhello\r\n0\r\n\r\n")), S("hello"), 29);
}

Test(chunked, what_follows_the_body_is_left_alone)
{
    const char in[] = "5\r\nhello\r\n0\r\n\r\nPOST /next HTTP/1.1\r\n";
    expect_body(whole(S(in)), S("hello"), 15);
}

Test(chunked, data_bytes_are_data_whatever_they_are)
{
    const char in[] = "7\r\n0\r\n\r\n\0\xff\r\n0\r\n\r\n";
    expect_body(whole(S(in)), "0\r\n\r\n\0\xff", 7, sizeof(in) - 1);
}

Test(chunked, extensions_are_skipped)
{
    const char in[] = "5;name=value\r\nhello\r\n"
                      "6 ;a\r\n world\r\n"
                      "1\t;b=\"x;y\\\"z\"\r\n!\r\n"
                      "0;last\r\n\r\n";
    expect_body(whole(S(in)), S("hello world!"), sizeof(in) - 1);
    /* tabs and high bytes are allowed in an extension; 1024 bytes of it, ';' included */
    char buf[1200];
    size_t o = 0;
    buf[o++] = '1';
    buf[o++] = ';';
    for (int i = 0; i < HS_CHUNKED_EXT_MAX - 1; i++)
        buf[o++] = (char)(i % 3 == 0 ? '\t' : i % 3 == 1 ? 'x' : '\xe9');
    memcpy(buf + o, "\r\nA\r\n0\r\n\r\n", 10);
    expect_body(whole(buf, o + 10), "A", 1, o + 10);
}

Test(chunked, extensions_are_bounded_and_plain)
{
    char buf[1200];
    size_t o = 0;
    buf[o++] = '1';
    buf[o++] = ';';
    for (int i = 0; i < HS_CHUNKED_EXT_MAX; i++)
        buf[o++] = 'x';
    memcpy(buf + o, "\r\nA\r\n0\r\n\r\n", 10);
    expect_error(whole(buf, o + 10), "chunk extensions too long", 1 + HS_CHUNKED_EXT_MAX);
    expect_error(whole(S("5;a\nhello")), "control character in a chunk extension", 3);
    expect_error(whole(S("5;a\x01\r\n")), "control character in a chunk extension", 3);
    expect_error(whole(S("5;a\x7f\r\n")), "control character in a chunk extension", 3);
    expect_error(whole(S("5;a\0\r\n")), "control character in a chunk extension", 3);
}

Test(chunked, trailer_fields_are_skipped)
{
    const char in[] = "5\r\nhello\r\n0\r\nExpires: never\r\nX-Sum: 5\r\n\r\nNEXT";
    expect_body(whole(S(in)), S("hello"), sizeof(in) - 1 - 4);
}

Test(chunked, trailer_section_is_bounded)
{
    /* the section counts each field line's bytes and its CR */
    static char buf[2 * HS_CHUNKED_TRAILER_MAX];
    for (int over = 0; over < 2; over++) {
        size_t o = 0;
        memcpy(buf, "0\r\n", 3);
        o = 3;
        size_t line = HS_CHUNKED_TRAILER_MAX - 1 + (size_t)over;
        buf[o++] = 'X';
        buf[o++] = ':';
        for (size_t i = 2; i < line; i++)
            buf[o++] = 'v';
        memcpy(buf + o, "\r\n\r\n", 4);
        const result_t *r = whole(buf, o + 4);
        if (!over)
            expect_body(r, "", 0, o + 4);
        else
            expect_error(r, "trailer section too long", 3 + HS_CHUNKED_TRAILER_MAX);
    }
    /* over several lines too */
    size_t o = 0;
    memcpy(buf, "0\r\n", 3);
    o = 3;
    for (int k = 0; k < 3; k++) {
        memset(buf + o, 'a', 3000);
        o += 3000;
        memcpy(buf + o, "\r\n", 2);
        o += 2;
    }
    memcpy(buf + o, "\r\n", 2);
    cr_assert_eq(whole(buf, o + 2)->rc, HS_CHUNKED_ERROR);
    cr_assert_str_eq(res.why, "trailer section too long");
}

/* ---- malformed framing ---- */

Test(chunked, bad_sizes)
{
    static const struct {
        const char *in, *why;
        size_t at;
    } cases[] = {
        {"g\r\n", "chunk size is not hexadecimal", 0},
        {"\r\n", "chunk size is not hexadecimal", 0},
        {";a\r\n", "chunk size is not hexadecimal", 0},
        {"-5\r\n", "chunk size is not hexadecimal", 0},
        {"+5\r\n", "chunk size is not hexadecimal", 0},
        {" 5\r\n", "chunk size is not hexadecimal", 0},
        {"\xef\xbc\x95\r\n", "chunk size is not hexadecimal", 0},
        {"0x5\r\n", "bad character after a chunk size", 1},
        {"5g\r\n", "bad character after a chunk size", 1},
        {"5,\r\n", "bad character after a chunk size", 1},
        {"5\n", "bad character after a chunk size", 1},
        {"5\r\r\n", "chunk size line does not end in CRLF", 2},
        {"5\rhello", "chunk size line does not end in CRLF", 2},
        {"5;x\r\r\n", "chunk size line does not end in CRLF", 4},
        /* sizes that would not fit: refused at the 16th digit, leading zeros or not */
        {"1234567890abcdef\r\n", "chunk size too long", 15},
        {"0000000000000001\r\n", "chunk size too long", 15},
        {"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF\r\n", "chunk size too long", 15},
        /* the next size line after a chunk */
        {"1\r\na\r\nZ\r\n", "chunk size is not hexadecimal", 6},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        const result_t *r = whole(cases[i].in, strlen(cases[i].in));
        cr_assert_eq(r->rc, HS_CHUNKED_ERROR, "accepted '%s'", cases[i].in);
        cr_assert_str_eq(r->why, cases[i].why, "'%s'", cases[i].in);
        cr_assert_eq(r->off, cases[i].at, "'%s': stopped at %zu", cases[i].in, r->off);
    }
}

Test(chunked, bad_chunk_ends)
{
    expect_error(whole(S("5\r\nhelloX\r\n0\r\n\r\n")), "chunk data longer than its size", 8);
    expect_error(whole(S("5\r\nhello\n0\r\n\r\n")), "chunk data longer than its size", 8);
    expect_error(whole(S("5\r\nhello\rX")), "chunk data does not end in CRLF", 9);
    expect_error(whole(S("5\r\nhello\r\r\n")), "chunk data does not end in CRLF", 9);
    expect_error(whole(S("0\r\nX: 1\n\r\n")), "bad character in a trailer field", 7);
    expect_error(whole(S("0\r\nX: \0\r\n\r\n")), "bad character in a trailer field", 6);
    expect_error(whole(S("0\r\nX: 1\rZ\r\n")), "trailer field does not end in CRLF", 8);
    expect_error(whole(S("0\r\n\rX")), "chunked body does not end in CRLF", 4);
    expect_error(whole(S("0\r\n\r\r\n")), "chunked body does not end in CRLF", 4);
}

Test(chunked, incomplete_bodies_need_more)
{
    static const char *const partial[] = {
        "",
        "5",
        "5\r",
        "5\r\n",
        "5\r\nhel",
        "5\r\nhello",
        "5\r\nhello\r",
        "5\r\nhello\r\n",
        "5\r\nhello\r\n0",
        "5\r\nhello\r\n0\r\n",
        "5\r\nhello\r\n0\r\nX: 1",
        "5\r\nhello\r\n0\r\n\r",
        "5;ext",
        "FFFFFFFFFFFFFFF\r\n",
    };
    for (size_t i = 0; i < sizeof(partial) / sizeof(*partial); i++) {
        const result_t *r = whole(partial[i], strlen(partial[i]));
        cr_assert_eq(r->rc, HS_CHUNKED_NEED, "'%s': rc %d (%s)", partial[i], r->rc,
                     r->why ? r->why : "");
    }
}

Test(chunked, the_largest_size_counts_down)
{
    hs_chunked_t d;
    hs_chunked_init(&d);
    const char in[] = "FFFFFFFFFFFFFFF\r\nabc";
    const uint8_t *p = (const uint8_t *)in, *end = p + sizeof(in) - 1, *data;
    size_t dlen;
    cr_assert_eq(hs_chunked_next(&d, &p, end, &data, &dlen), HS_CHUNKED_DATA);
    cr_assert_eq(dlen, 3);
    cr_assert_eq(memcmp(data, "abc", 3), 0);
    cr_assert_eq(d.remain, 0xFFFFFFFFFFFFFFFull - 3);
    cr_assert_eq(hs_chunked_next(&d, &p, end, &data, &dlen), HS_CHUNKED_NEED);
}

/* ---- however the bytes are split ---- */

Test(chunked, split_at_every_byte)
{
    const char in[] = "4;ext=1\r\nWiki\r\n"
                      "5\r\npedia\r\n"
                      "e\r\n in\r\n\r\nchunks.\r\n"
                      "0;end\r\n"
                      "X-A: 1\r\nX-B: 2\r\n"
                      "\r\n"
                      "NEXT";
    const char body[] = "Wikipedia in\r\n\r\nchunks.";
    size_t len = sizeof(in) - 1, end = len - 4;
    /* two pieces, cut at each offset */
    for (size_t k = 0; k <= len; k++) {
        const result_t *r = feed(in, len, &k, 1);
        cr_assert_eq(r->rc, HS_CHUNKED_DONE, "cut at %zu: rc %d (%s)", k, r->rc,
                     r->why ? r->why : "");
        cr_assert_eq(r->n, sizeof(body) - 1, "cut at %zu", k);
        cr_assert_eq(memcmp(r->data, body, r->n), 0, "cut at %zu: '%.*s'", k, (int)r->n, r->data);
        cr_assert_eq(r->off, end, "cut at %zu: stopped at %zu", k, r->off);
    }
    /* one byte at a time: each data byte is a span of its own */
    size_t cuts[256];
    for (size_t k = 0; k < len; k++)
        cuts[k] = k + 1;
    const result_t *r = feed(in, len, cuts, len - 1);
    expect_body(r, S(body), end);
    cr_assert_eq(r->spans, (int)sizeof(body) - 1);
    /* three pieces, at every pair of offsets */
    for (size_t a = 0; a <= len; a += 3)
        for (size_t b = a; b <= len; b++) {
            size_t c2[2] = {a, b};
            r = feed(in, len, c2, 2);
            cr_assert_eq(r->rc, HS_CHUNKED_DONE, "cuts %zu, %zu", a, b);
            cr_assert_eq(r->n, sizeof(body) - 1);
            cr_assert_eq(memcmp(r->data, body, r->n), 0);
            cr_assert_eq(r->off, end);
        }
}

Test(chunked, errors_do_not_depend_on_the_split)
{
    static const struct {
        const char *in, *why;
        size_t at;
    } cases[] = {
        {"4\r\nWiki\r\n12345678901234567\r\n", "chunk size too long", 24},
        {"4\r\nWikiX\r\n", "chunk data longer than its size", 7},
        {"4;a\x01\r\nWiki\r\n", "control character in a chunk extension", 3},
        {"4\r\nWiki\r\n0\r\nA: b\nc", "bad character in a trailer field", 16},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        size_t len = strlen(cases[i].in);
        for (size_t k = 0; k <= len; k++) {
            const result_t *r = feed(cases[i].in, len, &k, 1);
            cr_assert_eq(r->rc, HS_CHUNKED_ERROR, "case %zu cut at %zu: rc %d", i, k, r->rc);
            cr_assert_str_eq(r->why, cases[i].why, "case %zu cut at %zu", i, k);
            cr_assert_eq(r->off, cases[i].at, "case %zu cut at %zu: at %zu", i, k, r->off);
        }
    }
}
