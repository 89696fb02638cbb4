/*
 * The JSON scanner (proto/json.c): what a publisher sees when a body is accepted or refused
 * (and why), what is stored (compacted spans, not re-printed values), and what clients receive
 * through hs_json_quote (always valid JSON, whatever the bytes).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "proto/json.h"
#include "util/utf8.h"

/* Parses s (of length n) from an allocation of exactly n bytes, so that a read past the end is
 * caught by ASan. */
static int parse_n(const char *s, size_t n, hs_json_span_t *sp, char *why, size_t whylen)
{
    char *copy = malloc(n ? n : 1);
    cr_assert_not_null(copy);
    memcpy(copy, s, n);
    int rc = hs_json_parse(copy, n, sp, why, whylen);
    /* the span points into the input: re-base it onto s for the caller */
    if (rc == 0)
        sp->p = s + (sp->p - copy);
    free(copy);
    return rc;
}

static int parse(const char *s, hs_json_span_t *sp)
{
    return parse_n(s, strlen(s), sp, NULL, 0);
}

static bool span_is(const hs_json_span_t *sp, const char *text)
{
    return sp->n == strlen(text) && memcmp(sp->p, text, sp->n) == 0;
}

/* ---- validation ---- */

Test(json, each_kind_of_value_with_its_exact_span)
{
    static const struct {
        const char *in, *span;
        hs_json_type_t type;
    } cases[] = {
        {"0", "0", HS_JSON_NUMBER},
        {"-0", "-0", HS_JSON_NUMBER},
        {" 42 ", "42", HS_JSON_NUMBER},
        {"\t\r\n-12.5e+3\n", "-12.5e+3", HS_JSON_NUMBER},
        {"1E-7", "1E-7", HS_JSON_NUMBER},
        {"0.0", "0.0", HS_JSON_NUMBER},
        {"123456789012345678901234567890", "123456789012345678901234567890", HS_JSON_NUMBER},
        {"true", "true", HS_JSON_TRUE},
        {"false", "false", HS_JSON_FALSE},
        {" null", "null", HS_JSON_NULL},
        {"\"\"", "\"\"", HS_JSON_STRING},
        {"\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00E9\"", "\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00E9\"",
         HS_JSON_STRING},
        {"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f\"",
         "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f\"", HS_JSON_STRING},
        {"[]", "[]", HS_JSON_ARRAY},
        {" [ 1 , [ ] , { } , \"]\" ] ", "[ 1 , [ ] , { } , \"]\" ]", HS_JSON_ARRAY},
        {"{}", "{}", HS_JSON_OBJECT},
        {"{\"a\":{\"b\":[null,true,false]},\"\":0}", "{\"a\":{\"b\":[null,true,false]},\"\":0}",
         HS_JSON_OBJECT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        hs_json_span_t sp;
        char why[128] = "";
        cr_assert_eq(parse_n(cases[i].in, strlen(cases[i].in), &sp, why, sizeof(why)), 0,
                     "refused %s: %s", cases[i].in, why);
        cr_assert_eq(sp.type, cases[i].type, "%s: type %d", cases[i].in, sp.type);
        cr_assert(span_is(&sp, cases[i].span), "%s: span '%.*s'", cases[i].in, (int)sp.n, sp.p);
    }
}

Test(json, refuses_invalid_documents_saying_where)
{
    static const struct {
        const char *in, *why;
    } cases[] = {
        {"", "unexpected end at byte 0"},
        {"   ", "unexpected end at byte 3"},
        {"01", "trailing characters at byte 1"},
        {"-", "bad number at byte 1"},
        {"+1", "unexpected character at byte 0"},
        {".5", "unexpected character at byte 0"},
        {"1.", "bad number at byte 2"},
        {"1.e3", "bad number at byte 2"},
        {"1e", "bad number at byte 2"},
        {"1e+", "bad number at byte 3"},
        {"--1", "bad number at byte 1"},
        {"0x10", "trailing characters at byte 1"},
        {"NaN", "unexpected character at byte 0"},
        {"Infinity", "unexpected character at byte 0"},
        {"tru", "unexpected token at byte 0"},
        {"True", "unexpected character at byte 0"},
        {"nulll", "trailing characters at byte 4"},
        {"[1,]", "unexpected character at byte 3"},
        {"[,1]", "unexpected character at byte 1"},
        {"[1 2]", "expected ',' or ']' at byte 3"},
        {"[1", "expected ',' or ']' at byte 2"},
        {"[", "unexpected end at byte 1"},
        {"]", "unexpected character at byte 0"},
        {"{", "expected a member name at byte 1"},
        {"{\"a\":1,}", "expected a member name at byte 7"},
        {"{,}", "expected a member name at byte 1"},
        {"{\"a\" 1}", "expected ':' at byte 5"},
        {"{\"a\"}", "expected ':' at byte 4"},
        {"{1:2}", "expected a member name at byte 1"},
        {"{'a':1}", "expected a member name at byte 1"},
        {"{\"a\":1 \"b\":2}", "expected ',' or '}' at byte 7"},
        {"\"abc", "unterminated string at byte 4"},
        {"\"abc\\", "unterminated string at byte 4"},
        {"\"\\u12\"", "unterminated string at byte 1"},
        {"\"\\u12G4\"", "bad \\u escape at byte 1"},
        {"\"\\a\"", "bad escape at byte 1"},
        {"\"\\x41\"", "bad escape at byte 1"},
        {"\"\\U00e9\"", "bad escape at byte 1"},
        {"\"tab\there\"", "control character in string at byte 4"},
        {"\"\x01\"", "control character in string at byte 1"},
        {"\"\xff\"", "invalid UTF-8 at byte 1"},
        {"\"\xc0\xaf\"", "invalid UTF-8 at byte 1"},
        {"\"\xed\xa0\x80\"", "invalid UTF-8 at byte 1"},
        {"\"\xe2\x82\"", "invalid UTF-8 at byte 1"},
        {"\xc3\xa9", "unexpected character at byte 0"},
        {"[1] 2", "trailing characters at byte 4"},
        {"{} {}", "trailing characters at byte 3"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        hs_json_span_t sp;
        char why[128] = "";
        cr_assert_eq(parse_n(cases[i].in, strlen(cases[i].in), &sp, why, sizeof(why)), HS_EINVAL,
                     "accepted %s", cases[i].in);
        cr_assert_str_eq(why, cases[i].why, "%s", cases[i].in);
    }
    /* bytes after a NUL count: the length is the document, not the C string */
    hs_json_span_t sp;
    cr_assert_eq(parse_n("1\0", 2, &sp, NULL, 0), HS_EINVAL);
    cr_assert_eq(parse_n("\"a\0b\"", 5, &sp, NULL, 0), HS_EINVAL, "a raw NUL inside a string");
    cr_assert_eq(parse_n("\"a\\u0000b\"", 10, &sp, NULL, 0), 0, "an escaped NUL is fine");
    /* a reason buffer too small still gets a terminated prefix */
    char small[8];
    cr_assert_eq(hs_json_parse("[1,]", 4, &sp, small, sizeof(small)), HS_EINVAL);
    cr_assert_str_eq(small, "unexpec");
}

static void nest(char *buf, int depth, bool objects)
{
    size_t o = 0;
    for (int i = 0; i < depth; i++) {
        if (objects) {
            memcpy(buf + o, "{\"k\":", 5);
            o += 5;
        } else {
            buf[o++] = '[';
        }
    }
    buf[o++] = '1';
    for (int i = 0; i < depth; i++)
        buf[o++] = objects ? '}' : ']';
    buf[o] = '\0';
}

Test(json, nesting_is_bounded_at_the_documented_depth)
{
    char buf[HS_JSON_MAX_DEPTH * 8 + 16];
    hs_json_span_t sp;
    char why[128];
    for (int objects = 0; objects < 2; objects++) {
        nest(buf, HS_JSON_MAX_DEPTH, objects);
        cr_assert_eq(parse_n(buf, strlen(buf), &sp, why, sizeof(why)), 0,
                     "%d levels of %s refused: %s", HS_JSON_MAX_DEPTH,
                     objects ? "objects" : "arrays", why);
        nest(buf, HS_JSON_MAX_DEPTH + 1, objects);
        cr_assert_eq(parse_n(buf, strlen(buf), &sp, why, sizeof(why)), HS_EINVAL,
                     "%d levels of %s accepted", HS_JSON_MAX_DEPTH + 1,
                     objects ? "objects" : "arrays");
        cr_assert(strstr(why, "nesting too deep"), "%s", why);
    }
    /* mixed, and deep but unbalanced: refused either way, never a crash */
    char deep[100000];
    memset(deep, '[', sizeof(deep));
    cr_assert_eq(parse_n(deep, sizeof(deep), &sp, why, sizeof(why)), HS_EINVAL);
    cr_assert(strstr(why, "nesting too deep"), "%s", why);
}

/* The string scan reads 8 bytes at a time while they are plain text: every byte value at
 * every offset of a word (and in the tail after the last whole word) must be judged as the
 * byte loop judges it. Plain printable ASCII other than '"' and '\\' is taken; a control
 * character, a lone byte past ASCII, a '\\' before 'a' (a bad escape) and a '"' (which ends
 * the string early, leaving text after it) are refused. */
Test(json, every_byte_at_every_offset_of_the_word_scan)
{
    hs_json_span_t sp;
    char why[128];
    for (size_t len = 1; len <= 19; len++)
        for (size_t at = 0; at < len; at++)
            for (int v = 1; v < 256; v++) {
                char s[32];
                s[0] = '"';
                memset(s + 1, 'a', len);
                s[1 + at] = (char)v;
                s[1 + len] = '"';
                bool plain = v >= 0x20 && v < 0x80 && v != '"' && v != '\\';
                int rc = parse_n(s, len + 2, &sp, why, sizeof(why));
                cr_assert_eq(rc, plain ? 0 : HS_EINVAL, "byte 0x%02x at %zu of %zu: %s", v, at, len,
                             rc ? why : "taken");
                if (plain)
                    cr_assert_eq(sp.n, len + 2);
            }
    /* and the end of the input inside a string, at every offset: unterminated */
    char open[40];
    open[0] = '"';
    memset(open + 1, 'a', sizeof(open) - 1);
    for (size_t n = 1; n <= sizeof(open); n++) {
        cr_assert_eq(parse_n(open, n, &sp, why, sizeof(why)), HS_EINVAL, "%zu", n);
        cr_assert(strstr(why, "unterminated string"), "%zu: %s", n, why);
    }
}

/* ---- walking ---- */

Test(json, object_members_in_order_with_exact_spans)
{
    hs_json_span_t obj, k, v;
    const char *doc =
        "{ \"a\" : 1 , \"b\\\"\":[1,{\"x\":\"}\"}] ,\"c\":\"s,]}\", \"d\" :{},\"e\":null}";
    cr_assert_eq(parse(doc, &obj), 0);
    static const struct {
        const char *key, *val;
        hs_json_type_t type;
    } want[] = {
        {"\"a\"", "1", HS_JSON_NUMBER},        {"\"b\\\"\"", "[1,{\"x\":\"}\"}]", HS_JSON_ARRAY},
        {"\"c\"", "\"s,]}\"", HS_JSON_STRING}, {"\"d\"", "{}", HS_JSON_OBJECT},
        {"\"e\"", "null", HS_JSON_NULL},
    };
    size_t pos = 0, i = 0;
    while (hs_json_object_next(&obj, &pos, &k, &v)) {
        cr_assert_lt(i, 5, "more than 5 members");
        cr_assert(span_is(&k, want[i].key), "key %zu: '%.*s'", i, (int)k.n, k.p);
        cr_assert_eq(k.type, HS_JSON_STRING);
        cr_assert(span_is(&v, want[i].val), "value %zu: '%.*s'", i, (int)v.n, v.p);
        cr_assert_eq(v.type, want[i].type, "value %zu", i);
        i++;
    }
    cr_assert_eq(i, 5);
    /* not an object: no members */
    hs_json_span_t arr;
    cr_assert_eq(parse("[1,2]", &arr), 0);
    pos = 0;
    cr_assert_not(hs_json_object_next(&arr, &pos, &k, &v));
    cr_assert_eq(parse("{}", &obj), 0);
    pos = 0;
    cr_assert_not(hs_json_object_next(&obj, &pos, &k, &v));
}

Test(json, array_items_and_length)
{
    hs_json_span_t arr, it;
    cr_assert_eq(parse(" [ \"a,b\" , [1,[2,3]] , -1.5e3 , {\"]\":\"[\"} , false ] ", &arr), 0);
    cr_assert_eq(hs_json_array_len(&arr), 5);
    const char *want[] = {"\"a,b\"", "[1,[2,3]]", "-1.5e3", "{\"]\":\"[\"}", "false"};
    hs_json_type_t types[] = {HS_JSON_STRING, HS_JSON_ARRAY, HS_JSON_NUMBER, HS_JSON_OBJECT,
                              HS_JSON_FALSE};
    size_t pos = 0;
    for (int i = 0; i < 5; i++) {
        cr_assert(hs_json_array_next(&arr, &pos, &it), "item %d missing", i);
        cr_assert(span_is(&it, want[i]), "item %d: '%.*s'", i, (int)it.n, it.p);
        cr_assert_eq(it.type, types[i]);
    }
    cr_assert_not(hs_json_array_next(&arr, &pos, &it));
    cr_assert_eq(parse("[]", &arr), 0);
    cr_assert_eq(hs_json_array_len(&arr), 0);
    cr_assert_eq(parse("[ ]", &arr), 0);
    cr_assert_eq(hs_json_array_len(&arr), 0);
    cr_assert_eq(parse("{\"a\":1}", &arr), 0);
    cr_assert_eq(hs_json_array_len(&arr), 0, "an object has no items");
}

Test(json, object_get_exact_and_case_insensitive)
{
    hs_json_span_t obj, v;
    cr_assert_eq(parse("{\"Type\":1,\"\\u0064ata\":2,\"type\":3,\"x\":{\"type\":4}}", &obj), 0);
    cr_assert(hs_json_object_get(&obj, "Type", false, &v));
    cr_assert(span_is(&v, "1"));
    cr_assert(hs_json_object_get(&obj, "type", false, &v));
    cr_assert(span_is(&v, "3"), "the exact match, not the first case-insensitive one");
    cr_assert(hs_json_object_get(&obj, "TYPE", true, &v));
    cr_assert(span_is(&v, "1"), "the first case-insensitive match");
    cr_assert(hs_json_object_get(&obj, "data", false, &v), "keys are compared unescaped");
    cr_assert(span_is(&v, "2"));
    cr_assert_not(hs_json_object_get(&obj, "TYPE", false, &v));
    cr_assert_not(hs_json_object_get(&obj, "typ", true, &v));
    cr_assert_not(hs_json_object_get(&obj, "", true, &v));
    hs_json_span_t num;
    cr_assert_eq(parse("5", &num), 0);
    cr_assert_not(hs_json_object_get(&num, "a", true, &v));
}

/* ---- strings ---- */

static long unescape(const char *lit, char *out, size_t cap)
{
    hs_json_span_t sp;
    cr_assert_eq(parse(lit, &sp), 0, "%s", lit);
    cr_assert_eq(sp.type, HS_JSON_STRING);
    return hs_json_unescape(&sp, out, cap);
}

Test(json, unescape_every_escape)
{
    char out[64];
    long n = unescape("\"a\\\"\\\\\\/\\b\\f\\n\\r\\tz\"", out, sizeof(out));
    cr_assert_eq(n, 10);
    cr_assert_eq(memcmp(out, "a\"\\/\b\f\n\r\tz", 10), 0);
    cr_assert_eq(out[10], '\0', "terminated when there is room");
    n = unescape("\"\\u0041\\u00e9\\u00E9\\u20ac\\uFFFF\"", out, sizeof(out));
    cr_assert_eq(n, 1 + 2 + 2 + 3 + 3);
    cr_assert_eq(memcmp(out, "A\xc3\xa9\xc3\xa9\xe2\x82\xac\xef\xbf\xbf", 11), 0);
    /* raw UTF-8 passes through */
    n = unescape("\"\xf0\x9f\x98\x80\"", out, sizeof(out));
    cr_assert_eq(n, 4);
    cr_assert_eq(memcmp(out, "\xf0\x9f\x98\x80", 4), 0);
}

Test(json, unescape_u0000_is_a_nul_byte_that_counts)
{
    char out[16];
    memset(out, 'x', sizeof(out));
    long n = unescape("\"a\\u0000b\"", out, sizeof(out));
    cr_assert_eq(n, 3);
    cr_assert_eq(memcmp(out, "a\0b", 3), 0);
    n = unescape("\"\\u0000\"", out, sizeof(out));
    cr_assert_eq(n, 1);
    cr_assert_eq(out[0], '\0');
}

Test(json, unescape_surrogate_pairs_and_lone_surrogates)
{
    char out[32];
    /* U+1F600 and U+10FFFF as pairs, lower and upper case */
    long n = unescape("\"\\ud83d\\ude00\\uDBFF\\uDFFF\"", out, sizeof(out));
    cr_assert_eq(n, 8);
    cr_assert_eq(memcmp(out, "\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf", 8), 0);
    /* U+10000, the first pair */
    n = unescape("\"\\ud800\\udc00\"", out, sizeof(out));
    cr_assert_eq(n, 4);
    cr_assert_eq(memcmp(out, "\xf0\x90\x80\x80", 4), 0);
    /* lone ones become U+FFFD: the output is always UTF-8 */
    static const struct {
        const char *in, *out;
    } lone[] = {
        {"\"\\ud800\"", "\xef\xbf\xbd"},
        {"\"\\udc00\"", "\xef\xbf\xbd"},
        {"\"\\udfff x\"", "\xef\xbf\xbd x"},
        {"\"\\ud83dx\"", "\xef\xbf\xbdx"},
        {"\"\\ud83d\\u0041\"", "\xef\xbf\xbd"
                               "A"},
        {"\"\\ud83d\\ud83d\\ude00\"", "\xef\xbf\xbd\xf0\x9f\x98\x80"},
        {"\"\\ude00\\ud83d\"", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\"\\ud83d\\n\"", "\xef\xbf\xbd\n"},
    };
    for (size_t i = 0; i < sizeof(lone) / sizeof(*lone); i++) {
        n = unescape(lone[i].in, out, sizeof(out));
        cr_assert_eq(n, (long)strlen(lone[i].out), "%s: %ld bytes", lone[i].in, n);
        cr_assert_eq(memcmp(out, lone[i].out, (size_t)n), 0, "%s", lone[i].in);
        cr_assert(hs_utf8_valid(out, (size_t)n), "%s", lone[i].in);
    }
}

Test(json, unescape_respects_the_capacity)
{
    char out[8];
    memset(out, 'x', sizeof(out));
    cr_assert_eq(unescape("\"abc\"", out, 3), 3, "exactly fitting");
    cr_assert_eq(out[3], 'x', "no terminator written without room");
    cr_assert_eq(unescape("\"abcd\"", out, 3), -1);
    cr_assert_eq(unescape("\"ab\\u20ac\"", out, 4), -1, "a character does not fit whole");
    cr_assert_eq(unescape("\"ab\\u20ac\"", out, 5), 5);
    cr_assert_eq(unescape("\"\"", out, 0), 0);
}

Test(json, string_eq)
{
    hs_json_span_t sp;
    cr_assert_eq(parse("\"Hello\\u0021\"", &sp), 0);
    cr_assert(hs_json_string_eq(&sp, "Hello!", false));
    cr_assert_not(hs_json_string_eq(&sp, "hello!", false));
    cr_assert(hs_json_string_eq(&sp, "hELLO!", true));
    cr_assert_not(hs_json_string_eq(&sp, "Hello", true));
    cr_assert_not(hs_json_string_eq(&sp, "Hello!!", true));
    cr_assert_eq(parse("1", &sp), 0);
    cr_assert_not(hs_json_string_eq(&sp, "1", false), "a number is not a string");
}

/* ---- numbers ---- */

Test(json, int64_edges)
{
    static const struct {
        const char *in;
        bool ok;
        int64_t v;
    } cases[] = {
        {"0", true, 0},
        {"-0", true, 0},
        {"7", true, 7},
        {"-42", true, -42},
        {"9223372036854775807", true, INT64_MAX},
        {"-9223372036854775808", true, INT64_MIN},
        {"9223372036854775808", false, 0},
        {"-9223372036854775809", false, 0},
        {"18446744073709551615", false, 0},
        {"18446744073709551616", false, 0},
        {"123456789012345678901234567890", false, 0},
        {"1.0", false, 0},
        {"1e3", false, 0},
        {"-1E0", false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        hs_json_span_t sp;
        cr_assert_eq(parse(cases[i].in, &sp), 0, "%s", cases[i].in);
        int64_t v = 12345;
        cr_assert_eq(hs_json_int64(&sp, &v), cases[i].ok, "%s", cases[i].in);
        cr_assert_eq(v, cases[i].ok ? cases[i].v : 12345, "%s: %lld", cases[i].in, (long long)v);
    }
    hs_json_span_t sp;
    int64_t v;
    cr_assert_eq(parse("\"1\"", &sp), 0);
    cr_assert_not(hs_json_int64(&sp, &v), "a string is not a number");
}

/* ---- compacting ---- */

Test(json, compact_drops_only_insignificant_white_space)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {" { \"a b\" :\t[ 1 ,\r\n2 ] } ", "{\"a b\":[1,2]}"},
        {"[ \"x\\\\\" , \"y\" ]", "[\"x\\\\\",\"y\"]"},
        {"[ \"q\\\" \" , 1 ]", "[\"q\\\" \",1]"},
        {"[\"\\\\\\\"  \"]", "[\"\\\\\\\"  \"]"},
        {"{ \"k\" : \" \\u0020 \" }", "{\"k\":\" \\u0020 \"}"},
        {" 1.50e+10 ", "1.50e+10"},
        {"\"  \"", "\"  \""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        hs_json_span_t sp;
        cr_assert_eq(parse(cases[i].in, &sp), 0, "%s", cases[i].in);
        char out[128];
        size_t n = hs_json_compact(&sp, out);
        out[n] = '\0';
        cr_assert_str_eq(out, cases[i].out);
        /* and what it wrote is still the same JSON */
        hs_json_span_t again;
        cr_assert_eq(parse(out, &again), 0, "%s", out);
    }
}

/* ---- quoting ---- */

static size_t quote(const char *s, size_t n, char *out)
{
    size_t l = hs_json_quote(s, n, out);
    cr_assert_eq(l, hs_json_quoted_len(s, n), "hs_json_quoted_len disagrees for %zu bytes", n);
    cr_assert_leq(l, 6 * n + 2);
    return l;
}

Test(json, quote_escapes_what_json_requires)
{
    char out[256];
    const char in[] = "a\"b\\c/\n\r\t\b\f\x01\x1f\x7f\x00z";
    size_t l = quote(in, sizeof(in) - 1, out);
    const char want[] = "\"a\\\"b\\\\c/\\n\\r\\t\\u0008\\u000c\\u0001\\u001f\x7f\\u0000z\"";
    cr_assert_eq(l, sizeof(want) - 1, "'%.*s'", (int)l, out);
    cr_assert_eq(memcmp(out, want, l), 0, "'%.*s'", (int)l, out);
    l = quote("", 0, out);
    cr_assert_eq(l, 2);
    cr_assert_eq(memcmp(out, "\"\"", 2), 0);
    /* valid UTF-8 is kept as it is */
    const char u[] = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf";
    l = quote(u, sizeof(u) - 1, out);
    cr_assert_eq(l, sizeof(u) + 1);
    cr_assert_eq(memcmp(out + 1, u, sizeof(u) - 1), 0);
}

Test(json, quote_replaces_each_byte_that_is_not_utf8)
{
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } cases[] = {
        {"\xff", 1, "\"\\ufffd\""},
        {"a\x80z", 3, "\"a\\ufffdz\""},
        {"\xe2\x82", 2, "\"\\ufffd\\ufffd\""}, /* cut short */
        {"\xe2\x82"
         "a",
         3, "\"\\ufffd\\ufffda\""},
        {"\xc0\xaf", 2, "\"\\ufffd\\ufffd\""},                       /* overlong */
        {"\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""},            /* surrogate */
        {"\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* > U+10FFFF */
        {"\xc3\xc3\xa9", 3, "\"\\ufffd\xc3\xa9\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char out[64];
        size_t l = quote(cases[i].in, cases[i].n, out);
        cr_assert_eq(l, strlen(cases[i].out), "case %zu: '%.*s'", i, (int)l, out);
        cr_assert_eq(memcmp(out, cases[i].out, l), 0, "case %zu: '%.*s'", i, (int)l, out);
    }
}

static uint64_t rnd(uint64_t *st)
{
    uint64_t x = *st;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *st = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Whatever the bytes, the output parses as one JSON string, and reads back as the input when
 * the input was UTF-8 (as valid UTF-8 in any case). */
Test(json, quote_always_produces_valid_json)
{
    uint64_t st = 0x9E3779B97F4A7C15ULL;
    static const char pieces[][5] = {"a",
                                     "\"",
                                     "\\",
                                     "\n",
                                     "\x01",
                                     "\x7f",
                                     "\xc3\xa9",
                                     "\xe2\x82\xac",
                                     "\xf0\x9f\x98\x80",
                                     "\x80",
                                     "\xff",
                                     "\xe2\x82",
                                     "\xed\xa0\x80",
                                     "/",
                                     "\x00"};
    for (int round = 0; round < 5000; round++) {
        char in[64];
        size_t n = 0;
        while (n < 48 && rnd(&st) % 16) {
            size_t k = rnd(&st) % (sizeof(pieces) / sizeof(*pieces));
            size_t pl = k == sizeof(pieces) / sizeof(*pieces) - 1 ? 1 : strlen(pieces[k]);
            memcpy(in + n, pieces[k], pl);
            n += pl;
        }
        if (round % 7 == 0) /* plain random bytes too */
            for (size_t i = 0; i < n; i++)
                in[i] = (char)(rnd(&st) & 0xff);
        char out[6 * 64 + 2];
        size_t l = quote(in, n, out);
        hs_json_span_t sp;
        char why[128] = "";
        cr_assert_eq(parse_n(out, l, &sp, why, sizeof(why)), 0, "round %d: %s: '%.*s'", round, why,
                     (int)l, out);
        cr_assert_eq(sp.type, HS_JSON_STRING);
        cr_assert_eq(sp.n, l);
        cr_assert(hs_utf8_valid(out, l));
        char back[6 * 64 + 2];
        long bl = hs_json_unescape(&sp, back, sizeof(back));
        cr_assert_geq(bl, 0);
        cr_assert(hs_utf8_valid(back, (size_t)bl));
        if (hs_utf8_valid(in, n)) {
            cr_assert_eq((size_t)bl, n, "round %d", round);
            cr_assert_eq(memcmp(back, in, n), 0, "round %d", round);
        }
    }
}
