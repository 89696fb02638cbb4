/* JSON scanner (proto/json.c) and codec (proto/codec.c): what publishers and readers see. */
#include <criterion/criterion.h>
#include <string.h>

#include "util/uuid.h"
#include "util/time.h"
#include "proto/codec.h"
#include "proto/json.h"

static int parse(const char *s, hs_json_span_t *sp)
{
    return hs_json_parse(s, strlen(s), sp, NULL, 0);
}

Test(json, accepts_valid_and_rejects_invalid)
{
    const char *ok[] = {"0",    "-1.5e+3",      "\"\\u00e9\\n\"",
                        "[]",   "{}",           " {\"a\":[1,{\"b\":null}]} ",
                        "true", "\"h\xc3\xa9\""};
    const char *bad[] = {"",         "01",       "1.",
                         "[1,]",     "{\"a\"}",  "{\"a\":1,}",
                         "\"\x01\"", "\"\xff\"", "\"\xed\xa0\x80\"",
                         "nul",      "[1] 2",    "\"abc",
                         "{'a':1}",  "\"\\x\""};
    hs_json_span_t sp;
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++)
        cr_assert_eq(parse(ok[i], &sp), 0, "should accept %s", ok[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        cr_assert_neq(parse(bad[i], &sp), 0, "should reject %s", bad[i]);
}

Test(json, depth_is_bounded)
{
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    hs_json_span_t sp;
    char why[64];
    cr_assert_neq(hs_json_parse(deep, 200, &sp, why, sizeof(why)), 0);
    cr_assert(strstr(why, "deep"));
}

Test(json, compact_keeps_strings_and_numbers)
{
    hs_json_span_t sp;
    const char *in = "{ \"a b\" : [ 1.0e2 , 12345678901234567890 ] ,\n \"s\":\" x \\\" y \" }";
    cr_assert_eq(parse(in, &sp), 0);
    char out[128];
    size_t n = hs_json_compact(&sp, out);
    out[n] = '\0';
    cr_assert_str_eq(out, "{\"a b\":[1.0e2,12345678901234567890],\"s\":\" x \\\" y \"}");
}

Test(json, object_walk_and_unescape)
{
    hs_json_span_t sp, v;
    cr_assert_eq(parse("{\"Type\":\"a\\u00e9\\ud83d\\ude00\",\"n\":-42,\"x\":{\"y\":1}}", &sp), 0);
    cr_assert(hs_json_object_get(&sp, "type", true, &v));
    cr_assert_not(hs_json_object_get(&sp, "type", false, &v));
    cr_assert(hs_json_object_get(&sp, "Type", false, &v));
    char buf[32];
    long l = hs_json_unescape(&v, buf, sizeof(buf));
    cr_assert_eq(l, 1 + 2 + 4);
    cr_assert_str_eq(buf, "a\xc3\xa9\xf0\x9f\x98\x80");
    int64_t n;
    cr_assert(hs_json_object_get(&sp, "n", false, &v));
    cr_assert(hs_json_int64(&v, &n));
    cr_assert_eq(n, -42);
    cr_assert(hs_json_object_get(&sp, "x", false, &v));
    cr_assert_eq(v.type, HS_JSON_OBJECT);
    cr_assert_eq(v.n, 7);
}

Test(json, quote_escapes_controls)
{
    char out[64];
    size_t n = hs_json_quote("a\"\\\n\x01", 5, out);
    out[n] = '\0';
    cr_assert_str_eq(out, "\"a\\\"\\\\\\n\\u0001\"");
    cr_assert_eq(hs_json_quoted_len("a\"\\\n\x01", 5), n);
}

Test(codec, parse_publish_single_and_array)
{
    hs_ingest_t *e;
    char why[256];
    const char *body = "[{\"type\":\"t1\",\"data\":{ \"k\" : 1 }},"
                       "{\"type\":\"t2\",\"metadata\":{\"m\":true},\"id\":\"abc\"}]";
    cr_assert_eq(hs_codec_parse_publish(body, strlen(body), "s", 1, 1 << 20, &e, why, 256), 0, "%s",
                 why);
    cr_assert_eq(e->nevents, 2);
    cr_assert_eq(e->events[0].data_len, 7);
    cr_assert(memcmp(e->events[0].data, "{\"k\":1}", 7) == 0);
    cr_assert_null(e->events[0].metadata);
    cr_assert_not(e->events[0].client_id);
    cr_assert_eq(e->events[0].id_len, 36);
    cr_assert(memcmp(e->events[1].data, "null", 4) == 0);
    cr_assert(e->events[1].client_id);
    cr_assert_str_eq(e->events[1].id, "abc");
    cr_assert(memcmp(e->events[1].metadata, "{\"m\":true}", 10) == 0);
    hs_ingest_free(e);
}

Test(codec, parse_publish_errors)
{
    hs_ingest_t *e;
    char why[256];
    struct {
        const char *body;
        int rc;
        const char *why;
    } cases[] = {
        {"{\"data\":1}", HS_EINVAL, "type"},
        {"{\"type\":\"\"}", HS_EINVAL, "type"},
        {"{\"type\":\"a\\nb\"}", HS_EINVAL, "control"},
        {"[]", HS_EINVAL, "no events"},
        {"[1]", HS_EINVAL, "not an object"},
        {"{\"type\":\"a\",\"metadata\":[1]}", HS_EINVAL, "metadata"},
        {"{\"type\":\"a\",\"id\":5}", HS_EINVAL, "id"},
        {"{\"type\":\"a\"", HS_EINVAL, "malformed"},
        {"\"x\"", HS_EINVAL, "array"},
        {"{\"type\":\"a\",\"data\":\"0123456789012345678901234567890123456789\"}", HS_ETOOLARGE,
         "limit"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        size_t max = cases[i].rc == HS_ETOOLARGE ? 60 : 1 << 20;
        int rc = hs_codec_parse_publish(cases[i].body, strlen(cases[i].body), "s", 1, max, &e, why,
                                        sizeof(why));
        cr_assert_eq(rc, cases[i].rc, "case %zu (%s): rc %d", i, cases[i].body, rc);
        cr_assert(strstr(why, cases[i].why), "case %zu: why '%s'", i, why);
    }
}

Test(codec, stream_names)
{
    cr_assert_eq(hs_stream_name_check("orders", 6), 0);
    cr_assert_eq(hs_stream_name_check("$all", 4), 0);
    cr_assert_eq(hs_stream_name_check_publish("$all", 4), HS_ERESERVED);
    cr_assert_eq(hs_stream_name_check("a/b", 3), HS_EINVAL);
    cr_assert_eq(hs_stream_name_check("a\nb", 3), HS_EINVAL);
    cr_assert_eq(hs_stream_name_check("", 0), HS_EINVAL);
    cr_assert_eq(hs_stream_name_check("\xff", 1), HS_EINVAL);
    char big[202];
    memset(big, 'x', sizeof(big));
    cr_assert_eq(hs_stream_name_check(big, 200), 0);
    cr_assert_eq(hs_stream_name_check(big, 201), HS_EINVAL);
}

Test(codec, encode_record_and_sse)
{
    hs_record_t rec = {.stream = "or\"ders",
                       .stream_len = 7,
                       .version = 3,
                       .position = 1042,
                       .time_us = 1795324200123456LL,
                       .event_id = "id-1",
                       .event_id_len = 4,
                       .type = "order.created",
                       .type_len = 13,
                       .data = "{\"a\":1}",
                       .data_len = 7};
    hs_block_t *b = hs_codec_encode(&rec);
    const char *want = "{\"stream\":\"or\\\"ders\",\"version\":3,\"position\":1042,"
                       "\"id\":\"id-1\",\"type\":\"order.created\","
                       "\"time\":\"2026-11-22T05:10:00.123456Z\",\"data\":{\"a\":1},"
                       "\"metadata\":{}}";
    cr_assert_eq(b->json_len, strlen(want));
    cr_assert(memcmp(b->json, want, b->json_len) == 0, "%.*s", (int)b->json_len, b->json);
    /* the SSE block is the event line and the JSON as its data line, which b->json points into */
    cr_assert_eq(b->sse_len, 28 - 1 + b->json_len + 2);
    cr_assert(strncmp(b->sse, "event: order.created\ndata: {", 28) == 0);
    cr_assert(b->json == b->sse + 27);
    cr_assert(b->sse_len > 2 && b->sse[b->sse_len - 1] == '\n' && b->sse[b->sse_len - 2] == '\n');
    cr_assert_eq(b->sse[b->sse_len], '\0');
    cr_assert_str_eq(b->type, "order.created");
    cr_assert_eq(b->version, 3);
    cr_assert_eq(b->position, 1042);
    hs_block_unref(b);
    hs_block_t *m = hs_codec_encode_marker(HS_BLOCK_DELETED, "s", 1, 9);
    cr_assert_str_eq(m->sse, "event: close\ndata: {\"stream\":\"s\",\"reason\":\"deleted\"}\n\n");
    cr_assert_eq(m->json_len, 33);
    cr_assert(memcmp(m->json, "{\"stream\":\"s\",\"reason\":\"deleted\"}", 33) == 0);
    hs_block_unref(m);
}

Test(codec, uuid_and_time)
{
    char a[37], b[37];
    hs_uuid4(a);
    hs_uuid4(b);
    cr_assert_eq(strlen(a), 36);
    cr_assert_str_neq(a, b);
    cr_assert_eq(a[14], '4');
    /* v7: version digit 7, and increasing within a thread */
    char prev[37], cur[37];
    hs_uuid7(prev);
    cr_assert_eq(prev[14], '7');
    cr_assert(prev[19] == '8' || prev[19] == '9' || prev[19] == 'a' || prev[19] == 'b');
    for (int i = 0; i < 10000; i++) {
        hs_uuid7(cur);
        cr_assert(strcmp(prev, cur) < 0, "%s !< %s", prev, cur);
        memcpy(prev, cur, 37);
    }
    char t[32];
    hs_format_time(0, t);
    cr_assert_str_eq(t, "1970-01-01T00:00:00.000000Z");
}
