/* SignalR hub protocol codec (proto/hubproto.c): the bytes the official clients send and
 * expect, in JSON and MessagePack. MessagePack records are written out by hand as bytes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "proto/hubproto.h"
#include "proto/json.h"
#include "tests/proto/json_mp_ref.h"

static hs_buf_t scratch;
static char why[200];

static void fini(void)
{
    hs_buf_free(&scratch);
}

TestSuite(hubproto, .fini = fini);

static int parse(hs_hubfmt_t fmt, const void *rec, size_t len, hs_hubmsg_t *m)
{
    why[0] = '\0';
    int rc = hs_hubproto_parse(fmt, rec, len, m, &scratch, why, sizeof(why));
    if (rc == HS_EINVAL)
        cr_assert(why[0], "HS_EINVAL without a reason");
    return rc;
}

static int pj(const char *json, hs_hubmsg_t *m)
{
    return parse(HS_HUB_JSON, json, strlen(json), m);
}

/* Parses one whole MessagePack record (length prefix included). */
static int pm_(const uint8_t *rec, size_t len, hs_hubmsg_t *m)
{
    const uint8_t *body;
    size_t bl, used;
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, rec, len, 1 << 20, &body, &bl, &used), 1);
    cr_assert_eq(used, len, "the prefix must announce exactly the test bytes");
    return parse(HS_HUB_MSGPACK, body, bl, m);
}

#define PM(arr, m) pm_((arr), sizeof(arr), (m))

static bool span_is(const char *p, size_t n, const char *want)
{
    return p && n == strlen(want) && memcmp(p, want, n) == 0;
}

static void expect_bytes(const hs_buf_t *b, const void *want, size_t n)
{
    cr_assert_eq(b->len, n, "length %zu, want %zu", b->len, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(b->p[i], ((const uint8_t *)want)[i], "byte %zu: %02x, want %02x", i, b->p[i],
                     ((const uint8_t *)want)[i]);
}

#define EXPECT(b, lit)     expect_bytes((b), (lit), sizeof(lit) - 1)
#define EXPECT_ARR(b, arr) expect_bytes((b), (arr), sizeof(arr))

/* ---- varints ---- */

Test(hubproto, varint)
{
    uint8_t v[5];
    cr_assert_eq(hs_hubproto_varint(v, 0), 1);
    cr_assert_eq(v[0], 0);
    cr_assert_eq(hs_hubproto_varint(v, 53), 1);
    cr_assert_eq(v[0], 0x35);
    cr_assert_eq(hs_hubproto_varint(v, 127), 1);
    cr_assert_eq(hs_hubproto_varint(v, 128), 2);
    cr_assert(v[0] == 0x80 && v[1] == 0x01);
    cr_assert_eq(hs_hubproto_varint(v, 5248), 2);
    cr_assert(v[0] == 0x80 && v[1] == 0x29);
    cr_assert_eq(hs_hubproto_varint(v, 0x7fffffff), 5);
    cr_assert(v[0] == 0xff && v[1] == 0xff && v[2] == 0xff && v[3] == 0xff && v[4] == 0x07);
}

/* ---- cutting records ---- */

Test(hubproto, json_records_split_at_every_byte)
{
    const char two[] = "{\"type\":6}\x1e{\"type\":7,\"error\":\"x\"}\x1e";
    size_t total = sizeof(two) - 1;
    for (size_t cut = 0; cut <= total; cut++) {
        const uint8_t *rec;
        size_t rl, used;
        const uint8_t *buf = (const uint8_t *)two;
        int rc = hs_hubproto_next(HS_HUB_JSON, buf, cut, 1000, &rec, &rl, &used);
        cr_assert_eq(rc, cut >= 11 ? 1 : 0, "cut %zu", cut);
        if (rc != 1)
            continue;
        cr_assert(rec == buf && rl == 10 && used == 11);
        rc = hs_hubproto_next(HS_HUB_JSON, buf + used, cut - used, 1000, &rec, &rl, &used);
        cr_assert_eq(rc, cut == total ? 1 : 0, "cut %zu, second record", cut);
        if (rc == 1)
            cr_assert(rec == buf + 11 && rl == total - 12 && used == total - 11);
    }
}

Test(hubproto, msgpack_records_split_at_every_byte)
{
    /* the JS client's Echo invocation, then its Close */
    static const uint8_t two[] = {0x0f, 0x95, 0x01, 0x80, 0xa1, 0x30, 0xa4, 0x45, 0x63, 0x68,
                                  0x6f, 0x91, 0x81, 0xa1, 0x61, 0x01, 0x03, 0x92, 0x07, 0xc0};
    for (size_t cut = 0; cut <= sizeof(two); cut++) {
        const uint8_t *rec;
        size_t rl, used;
        int rc = hs_hubproto_next(HS_HUB_MSGPACK, two, cut, 1000, &rec, &rl, &used);
        cr_assert_eq(rc, cut >= 16 ? 1 : 0, "cut %zu", cut);
        if (rc != 1)
            continue;
        cr_assert(rec == two + 1 && rl == 15 && used == 16);
        rc = hs_hubproto_next(HS_HUB_MSGPACK, two + 16, cut - 16, 1000, &rec, &rl, &used);
        cr_assert_eq(rc, cut == sizeof(two) ? 1 : 0, "cut %zu, second record", cut);
        if (rc == 1)
            cr_assert(rec == two + 17 && rl == 3 && used == 4);
    }
    /* a two-byte prefix split in the middle */
    uint8_t big[2 + 5248] = {0x80, 0x29};
    const uint8_t *rec;
    size_t rl, used;
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, big, 1, 10000, &rec, &rl, &used), 0);
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, big, 2, 10000, &rec, &rl, &used), 0);
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, big, sizeof(big) - 1, 10000, &rec, &rl, &used),
                 0);
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, big, sizeof(big), 10000, &rec, &rl, &used), 1);
    cr_assert(rec == big + 2 && rl == 5248 && used == sizeof(big));
}

Test(hubproto, too_large_and_malformed_prefixes)
{
    const uint8_t *rec;
    size_t rl, used;
    char big[101];
    memset(big, 'x', sizeof(big));
    const uint8_t *b = (const uint8_t *)big;
    /* JSON: a body of exactly max bytes is fine; no separator within max + 1 is too large */
    big[50] = HS_HUB_RS;
    cr_assert_eq(hs_hubproto_next(HS_HUB_JSON, b, 101, 50, &rec, &rl, &used), 1);
    cr_assert(rl == 50 && used == 51);
    big[50] = 'x';
    cr_assert_eq(hs_hubproto_next(HS_HUB_JSON, b, 50, 50, &rec, &rl, &used), 0);
    cr_assert_eq(hs_hubproto_next(HS_HUB_JSON, b, 51, 50, &rec, &rl, &used), HS_ETOOLARGE);
    cr_assert_eq(hs_hubproto_next(HS_HUB_JSON, b, 101, 50, &rec, &rl, &used), HS_ETOOLARGE);
    cr_assert_eq(hs_hubproto_next(HS_HUB_JSON, b, 0, 50, &rec, &rl, &used), 0);
    cr_assert_eq(hs_hubproto_next(HS_HUB_JSON, b, 101, SIZE_MAX, &rec, &rl, &used), 0);
    /* MessagePack: refused as soon as the prefix announces more than max */
    static const uint8_t pre[] = {0x80, 0x29}; /* 5248 */
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, pre, 2, 5247, &rec, &rl, &used), HS_ETOOLARGE);
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, pre, 2, 5248, &rec, &rl, &used), 0);
    static const uint8_t max31[] = {0xff, 0xff, 0xff, 0xff, 0x07};
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, max31, 5, SIZE_MAX, &rec, &rl, &used), 0);
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, max31, 5, 1000, &rec, &rl, &used), HS_ETOOLARGE);
    static const uint8_t over31[] = {0x80, 0x80, 0x80, 0x80, 0x08}; /* 2^31 */
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, over31, 5, SIZE_MAX, &rec, &rl, &used),
                 HS_EINVAL);
    static const uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, six, 6, SIZE_MAX, &rec, &rl, &used), HS_EINVAL);
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, six, 5, SIZE_MAX, &rec, &rl, &used), HS_EINVAL,
                 "five bytes that all continue are already wrong");
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, six, 4, SIZE_MAX, &rec, &rl, &used), 0);
    static const uint8_t empty[] = {0x00};
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, empty, 1, 10, &rec, &rl, &used), 1);
    cr_assert(rl == 0 && used == 1);
}

/* ---- handshake ---- */

Test(hubproto, handshake)
{
    char proto[32];
    int ver = -1;
    const char *h = "{\"protocol\":\"messagepack\",\"version\":1,\"x\":[2]}";
    cr_assert_eq(
        hs_hubproto_parse_handshake((const uint8_t *)h, strlen(h), proto, sizeof(proto), &ver), 0);
    cr_assert_str_eq(proto, "messagepack");
    cr_assert_eq(ver, 1);
    h = "{ \"version\" : 2 , \"protocol\" : \"j\\u0073on\" }";
    cr_assert_eq(
        hs_hubproto_parse_handshake((const uint8_t *)h, strlen(h), proto, sizeof(proto), &ver), 0);
    cr_assert_str_eq(proto, "json");
    cr_assert_eq(ver, 2);
    cr_assert_eq(hs_hubproto_parse_handshake((const uint8_t *)h, strlen(h), proto, 3, &ver), 0);
    cr_assert_str_eq(proto, "js", "truncated to cap - 1");
    const char *bad[] = {
        "", "[]", "\"json\"", "{}", "{\"protocol\":1,\"version\":1}", "{\"protocol\":\"json\"}",
        "{\"version\":1}", "{\"protocol\":\"json\",\"version\":\"1\"}",
        "{\"protocol\":\"json\",\"version\":1.5}",
        "{\"protocol\":\"json\",\"version\":99999999999}", "{\"protocol\":\"json\",\"version\":1",
        "{\"protocol\":\"json\",\"version\":1}\x1e",
        /* a NUL inside the name must not cut it down to "json" */
        "{\"protocol\":\"json\\u0000x\",\"version\":1}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        cr_assert_eq(hs_hubproto_parse_handshake((const uint8_t *)bad[i], strlen(bad[i]), proto,
                                                 sizeof(proto), &ver),
                     HS_EINVAL, "should refuse %s", bad[i]);
}

Test(hubproto, handshake_reply)
{
    hs_buf_t b = {0};
    cr_assert_eq(hs_hubproto_handshake_reply(&b, NULL), 0);
    EXPECT(&b, "{}\x1e");
    b.len = 0;
    cr_assert_eq(hs_hubproto_handshake_reply(&b, "The protocol 'foo' is not supported."), 0);
    EXPECT(&b, "{\"error\":\"The protocol 'foo' is not supported.\"}\x1e");
    b.len = 0;
    cr_assert_eq(hs_hubproto_handshake_reply(&b, "a\"b\\c\n"), 0);
    EXPECT(&b, "{\"error\":\"a\\\"b\\\\c\\n\"}\x1e");
    hs_buf_free(&b);
}

/* ---- JSON messages ---- */

Test(hubproto, json_invocation_as_the_js_client_writes_it)
{
    hs_hubmsg_t m;
    const char *rec = "{\"target\":\"Echo\",\"arguments\":[1],\"invocationId\":\"0\",\"type\":1}";
    cr_assert_eq(pj(rec, &m), 0);
    cr_assert_eq(m.type, HS_HUBMSG_INVOCATION);
    cr_assert(m.has_id);
    cr_assert_str_eq(m.id, "0");
    cr_assert_str_eq(m.target, "Echo");
    cr_assert(span_is(m.args, m.args_len, "[1]"));
    cr_assert_eq(m.nstream_ids, 0);
    cr_assert_null(m.item);
    cr_assert_null(m.error);
}

Test(hubproto, json_members_in_any_order_with_headers_and_unknowns)
{
    hs_hubmsg_t m;
    const char *rec = "{ \"headers\" : {\"k\":\"v\",\"x\":\"y\"},"
                      " \"arguments\" : [1, {\"a\" : \"b\"}],"
                      "\"aVeryLongUnknownMemberNameThatIsIgnored\":[true],\"extra\":{\"type\":2},"
                      "\"target\":\"Ec\\u0068o\",\"type\":1,\"invocationId\":\"1\\u00e9\"}";
    cr_assert_eq(pj(rec, &m), 0, "%s", why);
    cr_assert_eq(m.type, 1);
    cr_assert_str_eq(m.id, "1\xc3\xa9");
    cr_assert_str_eq(m.target, "Echo");
    cr_assert(span_is(m.args, m.args_len, "[1, {\"a\" : \"b\"}]"), "args point into the record");
    cr_assert(m.args > rec && m.args < rec + strlen(rec));
}

Test(hubproto, json_every_message_type)
{
    hs_hubmsg_t m;
    /* non-blocking invocation: no id, or a null one */
    cr_assert_eq(pj("{\"type\":1,\"target\":\"Send\",\"arguments\":[]}", &m), 0);
    cr_assert_not(m.has_id);
    cr_assert_eq(pj("{\"type\":1,\"invocationId\":null,\"target\":\"Send\",\"arguments\":[]}", &m),
                 0);
    cr_assert_not(m.has_id);
    cr_assert_eq(m.id[0], '\0');
    /* invocation with upload streams */
    cr_assert_eq(
        pj("{\"type\":1,\"target\":\"Up\",\"arguments\":[],\"streamIds\":[\"1\",\"2\"]}", &m), 0);
    cr_assert_eq(m.nstream_ids, 2);
    cr_assert_str_eq(m.stream_ids[1], "2");
    /* StreamItem */
    cr_assert_eq(pj("{\"invocationId\":\"3\",\"item\":{\"a\":[1,2]},\"type\":2}", &m), 0);
    cr_assert_eq(m.type, 2);
    cr_assert_str_eq(m.id, "3");
    cr_assert(span_is(m.item, m.item_len, "{\"a\":[1,2]}"));
    cr_assert_eq(pj("{\"type\":2,\"invocationId\":\"4\",\"item\":null}", &m), 0);
    cr_assert(span_is(m.item, m.item_len, "null"));
    /* Completion: result, null result, error, void */
    cr_assert_eq(pj("{\"type\":3,\"invocationId\":\"0\",\"result\":{\"a\":1}}", &m), 0);
    cr_assert(span_is(m.item, m.item_len, "{\"a\":1}"));
    cr_assert_null(m.error);
    cr_assert_eq(pj("{\"type\":3,\"invocationId\":\"0\",\"result\":null}", &m), 0);
    cr_assert(span_is(m.item, m.item_len, "null"));
    cr_assert_eq(pj("{\"type\":3,\"invocationId\":\"0\",\"error\":\"Unknown hub method 'x'\"}", &m),
                 0);
    cr_assert_null(m.item);
    cr_assert_str_eq(m.error, "Unknown hub method 'x'");
    cr_assert_eq(pj("{\"type\":3,\"invocationId\":\"0\"}", &m), 0);
    cr_assert_null(m.item);
    cr_assert_null(m.error);
    cr_assert_eq(pj("{\"type\":3,\"invocationId\":\"0\",\"item\":1}", &m), 0);
    cr_assert_null(m.item, "a completion's value is `result`, not `item`");
    /* StreamInvocation */
    cr_assert_eq(pj("{\"type\":4,\"invocationId\":\"7\",\"target\":\"S\",\"arguments\":[\"x\"],"
                    "\"streamIds\":[\"3\"]}",
                    &m),
                 0);
    cr_assert_eq(m.type, 4);
    cr_assert_str_eq(m.target, "S");
    cr_assert(span_is(m.args, m.args_len, "[\"x\"]"));
    cr_assert_eq(m.nstream_ids, 1);
    cr_assert_str_eq(m.stream_ids[0], "3");
    /* CancelInvocation, Ping */
    cr_assert_eq(pj("{\"type\":5,\"invocationId\":\"4\"}", &m), 0);
    cr_assert_eq(m.type, 5);
    cr_assert_str_eq(m.id, "4");
    cr_assert_eq(pj("{\"type\":6}", &m), 0);
    cr_assert_eq(m.type, 6);
    /* Close: plain, with an escaped error, with a null error */
    cr_assert_eq(pj("{\"type\":7}", &m), 0);
    cr_assert_null(m.error);
    cr_assert_not(m.allow_reconnect);
    cr_assert_eq(
        pj("{\"allowReconnect\":true,\"error\":\"bye \\\"now\\\" \\u00e9\",\"type\":7}", &m), 0);
    cr_assert_str_eq(m.error, "bye \"now\" \xc3\xa9");
    cr_assert(m.allow_reconnect);
    cr_assert(m.error >= (const char *)scratch.p && m.error < (const char *)scratch.p + scratch.len,
              "the unescaped error lives in scratch");
    cr_assert_eq(pj("{\"type\":7,\"error\":null,\"allowReconnect\":false}", &m), 0);
    cr_assert_null(m.error);
    cr_assert_not(m.allow_reconnect);
    /* Ack, Sequence */
    cr_assert_eq(pj("{\"type\":8,\"sequenceId\":12}", &m), 0);
    cr_assert_eq(m.type, 8);
    cr_assert_eq(m.sequence_id, 12);
    cr_assert_eq(pj("{\"sequenceId\":9007199254740993,\"type\":9}", &m), 0);
    cr_assert_eq(m.type, 9);
    cr_assert_eq(m.sequence_id, 9007199254740993LL);
    /* unknown types are returned for the caller to skip */
    cr_assert_eq(pj("{\"type\":42,\"whatever\":1}", &m), 0);
    cr_assert_eq(m.type, 42);
    cr_assert_eq(pj("{\"type\":0}", &m), 0);
    cr_assert_eq(m.type, 0);
}

Test(hubproto, json_malformed_is_refused)
{
    const char *bad[] = {
        "",
        "not json",
        "[]",
        "\"x\"",
        "1",
        "{}",
        "{\"type\":\"1\"}",
        "{\"type\":1.5}",
        "{\"type\":null}",
        "{\"type\":1,",
        "{\"type\":6} {}",
        "{\"type\":6}\x1e",
        "{\"type\":99999999999}",
        /* invocations */
        "{\"type\":1,\"arguments\":[]}",                  /* no target */
        "{\"type\":1,\"target\":\"\",\"arguments\":[]}",  /* empty target */
        "{\"type\":1,\"target\":5,\"arguments\":[]}",     /* non-string target */
        "{\"type\":1,\"target\":\"x\"}",                  /* no arguments */
        "{\"type\":1,\"target\":\"x\",\"arguments\":{}}", /* arguments not an array */
        "{\"type\":1,\"target\":\"x\",\"arguments\":[],\"invocationId\":5}",
        "{\"type\":1,\"target\":\"x\",\"arguments\":[],\"invocationId\":[\"5\"]}",
        "{\"type\":1,\"target\":\"x\",\"arguments\":[],\"streamIds\":[1]}",
        "{\"type\":1,\"target\":\"x\",\"arguments\":[],\"streamIds\":\"1\"}",
        "{\"type\":1,\"target\":\"a\\u0000b\",\"arguments\":[]}", /* NUL in a C string */
        "{\"type\":4,\"target\":\"x\",\"arguments\":[]}",         /* stream needs an id */
        /* others */
        "{\"type\":2,\"invocationId\":\"1\"}",              /* no item */
        "{\"type\":2,\"invocationId\":\"1\",\"result\":1}", /* result is not item */
        "{\"type\":2,\"item\":1}",                          /* no id */
        "{\"type\":3,\"result\":1}",
        "{\"type\":3,\"invocationId\":\"1\",\"result\":1,\"error\":\"e\"}",
        "{\"type\":3,\"invocationId\":\"1\",\"error\":5}",
        "{\"type\":5}",
        "{\"type\":5,\"invocationId\":\"a\\u0000\"}",
        "{\"type\":8}",
        "{\"type\":8,\"sequenceId\":\"1\"}",
        "{\"type\":9,\"sequenceId\":1.0}",
        "{\"type\":9,\"sequenceId\":99999999999999999999}",
    };
    hs_hubmsg_t m;
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        cr_assert_eq(pj(bad[i], &m), HS_EINVAL, "should refuse %s", bad[i]);
}

Test(hubproto, json_id_and_target_limits)
{
    hs_hubmsg_t m;
    char rec[600];
    char id[HS_HUB_ID_MAX + 2];
    memset(id, 'i', sizeof(id));
    id[HS_HUB_ID_MAX] = '\0';
    snprintf(rec, sizeof(rec), "{\"type\":5,\"invocationId\":\"%s\"}", id);
    cr_assert_eq(pj(rec, &m), 0);
    cr_assert_eq(strlen(m.id), HS_HUB_ID_MAX);
    id[HS_HUB_ID_MAX] = 'i';
    id[HS_HUB_ID_MAX + 1] = '\0';
    snprintf(rec, sizeof(rec), "{\"type\":5,\"invocationId\":\"%s\"}", id);
    cr_assert_eq(pj(rec, &m), HS_EINVAL);
    snprintf(rec, sizeof(rec),
             "{\"type\":1,\"target\":\"S\",\"arguments\":[],\"streamIds\":[\"%s\"]}", id);
    cr_assert_eq(pj(rec, &m), HS_EINVAL);
    char target[HS_HUB_TARGET_MAX + 2];
    memset(target, 't', sizeof(target));
    target[HS_HUB_TARGET_MAX] = '\0';
    snprintf(rec, sizeof(rec), "{\"type\":1,\"target\":\"%s\",\"arguments\":[]}", target);
    cr_assert_eq(pj(rec, &m), 0);
    cr_assert_eq(strlen(m.target), HS_HUB_TARGET_MAX);
    target[HS_HUB_TARGET_MAX] = 't';
    target[HS_HUB_TARGET_MAX + 1] = '\0';
    snprintf(rec, sizeof(rec), "{\"type\":1,\"target\":\"%s\",\"arguments\":[]}", target);
    cr_assert_eq(pj(rec, &m), HS_EINVAL);
    /* HS_HUB_STREAMIDS_MAX stream ids, and one more */
    char *p = rec + sprintf(rec, "{\"type\":1,\"target\":\"S\",\"arguments\":[],\"streamIds\":[");
    for (int i = 0; i < HS_HUB_STREAMIDS_MAX; i++)
        p += sprintf(p, "%s\"%d\"", i ? "," : "", i);
    strcpy(p, "]}");
    cr_assert_eq(pj(rec, &m), 0);
    cr_assert_eq(m.nstream_ids, HS_HUB_STREAMIDS_MAX);
    cr_assert_str_eq(m.stream_ids[HS_HUB_STREAMIDS_MAX - 1], "15");
    strcpy(p, ",\"x\"]}");
    cr_assert_eq(pj(rec, &m), HS_EINVAL);
}

/* ---- MessagePack messages ---- */

Test(hubproto, msgpack_what_the_js_client_sends)
{
    hs_hubmsg_t m;
    /* Invocation id "0" Echo({a:1}), 5 elements */
    static const uint8_t echo[] = {0x0f, 0x95, 0x01, 0x80, 0xa1, 0x30, 0xa4, 0x45,
                                   0x63, 0x68, 0x6f, 0x91, 0x81, 0xa1, 0x61, 0x01};
    cr_assert_eq(PM(echo, &m), 0, "%s", why);
    cr_assert_eq(m.type, 1);
    cr_assert(m.has_id);
    cr_assert_str_eq(m.id, "0");
    cr_assert_str_eq(m.target, "Echo");
    cr_assert(span_is(m.args, m.args_len, "[{\"a\":1}]"));
    cr_assert_eq(m.nstream_ids, 0);
    /* the same, non-blocking: nil id */
    static const uint8_t send[] = {0x0e, 0x95, 0x01, 0x80, 0xc0, 0xa4, 0x53, 0x65,
                                   0x6e, 0x64, 0x93, 0xa1, 0x73, 0xc2, 0x90};
    cr_assert_eq(PM(send, &m), 0, "%s", why);
    cr_assert_not(m.has_id);
    cr_assert_str_eq(m.target, "Send");
    cr_assert(span_is(m.args, m.args_len, "[\"s\",false,[]]"));
    /* Ping, Close with nil error (2 elements) */
    static const uint8_t ping[] = {0x02, 0x91, 0x06};
    cr_assert_eq(PM(ping, &m), 0);
    cr_assert_eq(m.type, 6);
    static const uint8_t close2[] = {0x03, 0x92, 0x07, 0xc0};
    cr_assert_eq(PM(close2, &m), 0);
    cr_assert_eq(m.type, 7);
    cr_assert_null(m.error);
    cr_assert_not(m.allow_reconnect);
}

Test(hubproto, msgpack_invocations_of_5_and_6_elements)
{
    hs_hubmsg_t m;
    /* .NET: 6 elements, nil id, a uint16 argument, one stream id */
    static const uint8_t inv6[] = {0x0d, 0x96, 0x01, 0x80, 0xc0, 0xa1, 0x53,
                                   0x91, 0xcd, 0x01, 0x00, 0x91, 0xa1, 0x39};
    cr_assert_eq(PM(inv6, &m), 0, "%s", why);
    cr_assert_not(m.has_id);
    cr_assert(span_is(m.args, m.args_len, "[256]"));
    cr_assert_eq(m.nstream_ids, 1);
    cr_assert_str_eq(m.stream_ids[0], "9");
    /* 6 elements with an empty stream id array, and with nil; headers with an entry */
    static const uint8_t inv6e[] = {0x0c, 0x96, 0x01, 0x81, 0xa1, 0x6b, 0xa1,
                                    0x76, 0xa0, 0xa1, 0x53, 0x90, 0x90};
    cr_assert_eq(PM(inv6e, &m), 0, "%s", why);
    cr_assert(m.has_id, "an empty string id is an id");
    cr_assert_str_eq(m.id, "");
    cr_assert(span_is(m.args, m.args_len, "[]"));
    cr_assert_eq(m.nstream_ids, 0);
    static const uint8_t inv6n[] = {0x08, 0x96, 0x01, 0x80, 0xc0, 0xa1, 0x53, 0x90, 0xc0};
    cr_assert_eq(PM(inv6n, &m), 0, "%s", why);
    cr_assert_eq(m.nstream_ids, 0);
    /* StreamInvocation, 5 and 6 elements */
    static const uint8_t sinv5[] = {0x09, 0x95, 0x04, 0x80, 0xa1, 0x32, 0xa1, 0x53, 0x91, 0x05};
    cr_assert_eq(PM(sinv5, &m), 0, "%s", why);
    cr_assert_eq(m.type, 4);
    cr_assert_str_eq(m.id, "2");
    cr_assert(span_is(m.args, m.args_len, "[5]"));
    static const uint8_t sinv6[] = {0x0e, 0x96, 0x04, 0x80, 0xa1, 0x32, 0xa1, 0x53,
                                    0x91, 0x05, 0x92, 0xa1, 0x61, 0xa1, 0x62};
    cr_assert_eq(PM(sinv6, &m), 0, "%s", why);
    cr_assert_eq(m.nstream_ids, 2);
    cr_assert_str_eq(m.stream_ids[0], "a");
    cr_assert_str_eq(m.stream_ids[1], "b");
}

Test(hubproto, msgpack_other_types)
{
    hs_hubmsg_t m;
    /* StreamItem */
    static const uint8_t item[] = {0x08, 0x94, 0x02, 0x80, 0xa1, 0x31, 0x92, 0xc3, 0xc0};
    cr_assert_eq(PM(item, &m), 0);
    cr_assert_eq(m.type, 2);
    cr_assert_str_eq(m.id, "1");
    cr_assert(span_is(m.item, m.item_len, "[true,null]"));
    /* Completion: error, void, value */
    static const uint8_t cerr[] = {0x08, 0x95, 0x03, 0x80, 0xa1, 0x31, 0x01, 0xa1, 0x65};
    cr_assert_eq(PM(cerr, &m), 0);
    cr_assert_eq(m.type, 3);
    cr_assert_str_eq(m.error, "e");
    cr_assert_null(m.item);
    static const uint8_t cvoid[] = {0x06, 0x94, 0x03, 0x80, 0xa1, 0x31, 0x02};
    cr_assert_eq(PM(cvoid, &m), 0);
    cr_assert_null(m.item);
    cr_assert_null(m.error);
    static const uint8_t cval[] = {0x0a, 0x95, 0x03, 0x80, 0xa1, 0x31,
                                   0x03, 0x81, 0xa1, 0x61, 0xff};
    cr_assert_eq(PM(cval, &m), 0);
    cr_assert(span_is(m.item, m.item_len, "{\"a\":-1}"));
    cr_assert_null(m.error);
    static const uint8_t cnil[] = {0x07, 0x95, 0x03, 0x80, 0xa1, 0x31, 0x03, 0xc0};
    cr_assert_eq(PM(cnil, &m), 0);
    cr_assert(span_is(m.item, m.item_len, "null"));
    /* CancelInvocation */
    static const uint8_t cancel[] = {0x05, 0x93, 0x05, 0x80, 0xa1, 0x34};
    cr_assert_eq(PM(cancel, &m), 0);
    cr_assert_eq(m.type, 5);
    cr_assert_str_eq(m.id, "4");
    /* Close of 3 elements */
    static const uint8_t close3[] = {0x06, 0x93, 0x07, 0xa2, 0x6e, 0x6f, 0xc3};
    cr_assert_eq(PM(close3, &m), 0);
    cr_assert_str_eq(m.error, "no");
    cr_assert(m.allow_reconnect);
    static const uint8_t close3f[] = {0x04, 0x93, 0x07, 0xc0, 0xc2};
    cr_assert_eq(PM(close3f, &m), 0);
    cr_assert_null(m.error);
    cr_assert_not(m.allow_reconnect);
    /* Ack, Sequence */
    static const uint8_t ack[] = {0x03, 0x92, 0x08, 0x05};
    cr_assert_eq(PM(ack, &m), 0);
    cr_assert_eq(m.type, 8);
    cr_assert_eq(m.sequence_id, 5);
    static const uint8_t seq[] = {0x03, 0x92, 0x09, 0x01};
    cr_assert_eq(PM(seq, &m), 0);
    cr_assert_eq(m.type, 9);
    cr_assert_eq(m.sequence_id, 1);
    /* unknown types are returned for the caller to skip, whatever follows */
    static const uint8_t unk[] = {0x04, 0x93, 0x2a, 0xa0, 0x80};
    cr_assert_eq(PM(unk, &m), 0);
    cr_assert_eq(m.type, 42);
    static const uint8_t unk16[] = {0x04, 0x91, 0xcd, 0x03, 0xe8};
    cr_assert_eq(PM(unk16, &m), 0);
    cr_assert_eq(m.type, 1000);
}

Test(hubproto, msgpack_every_integer_width)
{
    hs_hubmsg_t m;
    /* the type as uint8 .. uint64 and int8 .. int64, each with its sequenceId in the same width */
    static const uint8_t recs[][20] = {
        {0x05, 0x92, 0xcc, 0x08, 0xcc, 0xc8},                            /* 200 */
        {0x07, 0x92, 0xcd, 0x00, 0x08, 0xcd, 0x01, 0x2c},                /* 300 */
        {0x0b, 0x92, 0xce, 0, 0, 0, 0x08, 0xce, 0x00, 0x01, 0x00, 0x00}, /* 65536 */
        {0x13, 0x92, 0xcf, 0, 0, 0, 0, 0, 0, 0, 0x08, 0xcf, 0, 0, 0, 0x01, 0, 0, 0, 0},
        {0x05, 0x92, 0xd0, 0x08, 0xd0, 0x9c},                            /* -100 */
        {0x07, 0x92, 0xd1, 0x00, 0x08, 0xd1, 0xfe, 0xd4},                /* -300 */
        {0x0b, 0x92, 0xd2, 0, 0, 0, 0x08, 0xd2, 0xff, 0xfe, 0xff, 0xff}, /* -65537 */
        {0x13, 0x92, 0xd3, 0, 0, 0, 0, 0, 0, 0, 0x08, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0},
        {0x03, 0x92, 0x08, 0xff}, /* -1 */
    };
    static const int64_t want[] = {200, 300, 65536, 1LL << 32, -100, -300, -65537, INT64_MIN, -1};
    for (size_t i = 0; i < sizeof(recs) / sizeof(*recs); i++) {
        cr_assert_eq(pm_(recs[i], (size_t)recs[i][0] + 1, &m), 0, "record %zu: %s", i, why);
        cr_assert_eq(m.type, HS_HUBMSG_ACK, "record %zu", i);
        cr_assert_eq(m.sequence_id, want[i], "record %zu", i);
    }
    /* the ResultKind as uint16 and int64 */
    static const uint8_t kind16[] = {0x08, 0x94, 0x03, 0x80, 0xa1, 0x31, 0xcd, 0x00, 0x02};
    cr_assert_eq(PM(kind16, &m), 0);
    cr_assert_null(m.item);
    static const uint8_t kind64[] = {0x0f, 0x95, 0x03, 0x80, 0xa1, 0x31, 0xd3, 0,
                                     0,    0,    0,    0,    0,    0,    0x03, 0x07};
    cr_assert_eq(PM(kind64, &m), 0);
    cr_assert(span_is(m.item, m.item_len, "7"));
    /* a sequenceId above INT64_MAX does not fit */
    static const uint8_t huge[] = {0x0b, 0x92, 0x08, 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(PM(huge, &m), HS_EINVAL);
}

Test(hubproto, msgpack_values_become_json)
{
    hs_hubmsg_t m;
    /* StreamItem with a map of every scalar kind */
    static const uint8_t rec[] = {
        0x39, 0x94, 0x02, 0x80, 0xa1, 0x31, 0x88, 0xa1, 0x61, 0xcb, 0x3f,
        0xf8, 0,    0,    0,    0,    0,    0,                            /* a: 1.5 */
        0xa1, 0x62, 0xca, 0x3e, 0x80, 0,    0,                            /* b: 0.25f */
        0xa1, 0x63, 0xc4, 0x02, 0x00, 0xff,                               /* c: bin */
        0xa1, 0x64, 0xa2, 0xc3, 0xa9,                                     /* d: "é" */
        0xa1, 0x65, 0xa2, 0x22, 0x0a,                                     /* e: "\"\n" */
        0xa1, 0x66, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* f: UINT64_MAX */
        0xa1, 0x67, 0xc0,                                                 /* g: nil */
        0xa1, 0x68, 0xc2,                                                 /* h: false */
    };
    cr_assert_eq(PM(rec, &m), 0, "%s", why);
    cr_assert(span_is(m.item, m.item_len,
                      "{\"a\":1.5,\"b\":0.25,\"c\":\"AP8=\",\"d\":\"\xc3\xa9\",\"e\":\"\\\"\\n\","
                      "\"f\":18446744073709551615,\"g\":null,\"h\":false}"),
              "%.*s", (int)m.item_len, m.item);
    /* arguments long enough to make scratch grow still come back whole */
    uint8_t big[2 + 10 + 1000];
    size_t n = 0;
    big[n++] = 0x80 | ((10 + 1000) & 0x7f);
    big[n++] = (10 + 1000) >> 7;
    memcpy(big + n, "\x95\x01\x80\xc0\xa1\x53\x91\xda\x03\xe8", 10);
    n += 10;
    memset(big + n, 'z', 1000);
    n += 1000;
    hs_buf_free(&scratch);
    cr_assert_eq(pm_(big, n, &m), 0, "%s", why);
    cr_assert_eq(m.args_len, 1004);
    cr_assert(m.args[0] == '[' && m.args[1] == '"' && m.args[2] == 'z' && m.args[1003] == ']');
}

Test(hubproto, msgpack_malformed_is_refused)
{
    static const uint8_t cases[][16] = {
        {0x04, 0x94, 0x01, 0x80, 0xc0},                               /* 4-element invocation */
        {0x06, 0x95, 0x01, 0x80, 0xc0, 0xa0, 0x90},                   /* empty target */
        {0x06, 0x95, 0x01, 0x80, 0xc0, 0x01, 0x90},                   /* int target */
        {0x07, 0x95, 0x01, 0x80, 0x01, 0xa1, 0x53, 0x90},             /* int id */
        {0x07, 0x95, 0x01, 0xc0, 0xc0, 0xa1, 0x53, 0x90},             /* nil headers */
        {0x07, 0x95, 0x01, 0x80, 0xc0, 0xa1, 0x53, 0x80},             /* args not an array */
        {0x09, 0x96, 0x01, 0x80, 0xc0, 0xa1, 0x53, 0x90, 0x91, 0x01}, /* int stream id */
        {0x08, 0x95, 0x01, 0x80, 0xc0, 0xa2, 0x53, 0x00, 0x90},       /* NUL in target */
        {0x07, 0x95, 0x04, 0x80, 0xc0, 0xa1, 0x53, 0x90},             /* stream without id */
        {0x05, 0x93, 0x02, 0x80, 0xa1, 0x31},                         /* stream item, no item */
        {0x05, 0x94, 0x02, 0x80, 0xc0, 0x01},                         /* stream item, nil id */
        {0x05, 0x94, 0x03, 0x80, 0xa1, 0x31},                         /* truncated completion */
        {0x06, 0x94, 0x03, 0x80, 0xa1, 0x31, 0x01},                   /* kind 1, no error */
        {0x07, 0x95, 0x03, 0x80, 0xa1, 0x31, 0x01, 0x05},             /* kind 1, int error */
        {0x07, 0x95, 0x03, 0x80, 0xa1, 0x31, 0x01, 0xc0},             /* kind 1, nil error */
        {0x06, 0x94, 0x03, 0x80, 0xa1, 0x31, 0x03},                   /* kind 3, no value */
        {0x07, 0x95, 0x03, 0x80, 0xa1, 0x31, 0x02, 0x01},             /* kind 2 with a value */
        {0x07, 0x95, 0x03, 0x80, 0xa1, 0x31, 0x04, 0x01},             /* kind 4 */
        {0x05, 0x93, 0x03, 0x80, 0xa1, 0x31},                         /* no kind */
        {0x03, 0x92, 0x05, 0x80},                                     /* cancel without id */
        {0x03, 0x92, 0x07, 0x01},                                     /* close, int error */
        {0x02, 0x91, 0x07},                                           /* close of 1 */
        {0x02, 0x91, 0x08},                                           /* ack without id */
        {0x03, 0x92, 0x08, 0xc0},                                     /* ack, nil id */
        {0x03, 0x92, 0x09, 0xa1},                                     /* truncated str */
        {0x0b, 0x92, 0x08, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0},       /* float sequence id */
        {0x03, 0x91, 0x06, 0x06},                                     /* trailing byte */
        {0x04, 0x91, 0x06, 0x91, 0x06},                               /* two values */
        {0x02, 0xa1, 0x41},                                           /* not an array */
        {0x01, 0x90},                                                 /* empty array */
        {0x02, 0x91, 0xa0},                                           /* str type */
        {0x02, 0x91, 0xc1},                                           /* never-used byte */
        {0x00},                                                       /* empty record */
        {0x0a, 0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5},          /* array32 of 4 billion */
        {0x0a, 0xdf, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5},          /* map32 of 4 billion */
        {0x0a, 0x92, 0x06, 0xdb, 0xff, 0xff, 0xff, 0xff, 1, 2, 3},    /* str32 of 4 GiB */
        {0x0a, 0x92, 0x06, 0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3},    /* bin32 of 4 GiB */
        {0x0b, 0x95, 0x01, 0x80, 0xc0, 0xa1, 0x53, 0xdd, 0x7f, 0xff, 0xff, 0xff}, /* 2^31 args */
    };
    hs_hubmsg_t m;
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
        cr_assert_eq(pm_(cases[i], (size_t)cases[i][0] + 1, &m), HS_EINVAL, "case %zu", i);
}

Test(hubproto, msgpack_values_json_cannot_hold_are_refused)
{
    hs_hubmsg_t m;
    /* a map with an integer key inside the arguments */
    static const uint8_t intkey[] = {0x0a, 0x95, 0x01, 0x80, 0xc0, 0xa1,
                                     0x53, 0x91, 0x81, 0x01, 0x02};
    cr_assert_eq(PM(intkey, &m), HS_EINVAL);
    /* invalid UTF-8 in an argument, an id, an error */
    static const uint8_t badutf[] = {0x0a, 0x95, 0x01, 0x80, 0xc0, 0xa1,
                                     0x53, 0x91, 0xa2, 0xc3, 0x28};
    cr_assert_eq(PM(badutf, &m), HS_EINVAL);
    static const uint8_t badid[] = {0x05, 0x93, 0x05, 0x80, 0xa1, 0xff};
    cr_assert_eq(PM(badid, &m), HS_EINVAL);
    static const uint8_t baderr[] = {0x04, 0x92, 0x07, 0xa1, 0x80};
    cr_assert_eq(PM(baderr, &m), HS_EINVAL);
    /* ext, NaN and infinity in a stream item */
    static const uint8_t ext[] = {0x08, 0x94, 0x02, 0x80, 0xa1, 0x31, 0xd4, 0x01, 0x00};
    cr_assert_eq(PM(ext, &m), HS_EINVAL);
    static const uint8_t nan[] = {0x0e, 0x94, 0x02, 0x80, 0xa1, 0x31, 0xcb, 0x7f,
                                  0xf8, 0,    0,    0,    0,    0,    0};
    cr_assert_eq(PM(nan, &m), HS_EINVAL);
    static const uint8_t inf[] = {0x0a, 0x94, 0x02, 0x80, 0xa1, 0x31, 0xca, 0x7f, 0x80, 0, 0};
    cr_assert_eq(PM(inf, &m), HS_EINVAL);
    /* an id longer than HS_HUB_ID_MAX */
    uint8_t longid[4 + 2 + HS_HUB_ID_MAX + 1] = {0, 0x93, 0x05, 0x80, 0xd9, HS_HUB_ID_MAX + 1};
    longid[0] = sizeof(longid) - 1;
    memset(longid + 6, 'x', HS_HUB_ID_MAX + 1);
    cr_assert_eq(PM(longid, &m), HS_EINVAL);
    longid[0]--;
    longid[5]--;
    cr_assert_eq(pm_(longid, sizeof(longid) - 1, &m), 0);
    cr_assert_eq(strlen(m.id), HS_HUB_ID_MAX);
}

/* An Invocation whose single argument is `depth` nested arrays around 1. */
static int nested_invocation(int depth, hs_hubmsg_t *m)
{
    uint8_t rec[200];
    size_t n = 0;
    rec[n++] = (uint8_t)(7 + depth + 1);
    memcpy(rec + n, "\x95\x01\x80\xc0\xa1\x53\x91", 7);
    n += 7;
    memset(rec + n, 0x91, (size_t)depth);
    n += (size_t)depth;
    rec[n++] = 0x01;
    return pm_(rec, n, m);
}

Test(hubproto, msgpack_nesting_is_bounded)
{
    hs_hubmsg_t m;
    /* record array + arguments array + 30 = the 32 containers msgpack-c can unpack */
    cr_assert_eq(nested_invocation(30, &m), 0, "%s", why);
    cr_assert_eq(m.args_len, 2 + 60 + 1);
    cr_assert_eq(nested_invocation(31, &m), HS_EINVAL, "deeper is malformed, not out of memory");
    cr_assert_eq(nested_invocation(100, &m), HS_EINVAL);
    /* 150 nested maps {"": {"": ... nil}} */
    uint8_t deep[2 + 7 + 300 + 1];
    size_t n = 0;
    deep[n++] = 0x80 | ((7 + 300 + 1) & 0x7f);
    deep[n++] = (7 + 300 + 1) >> 7;
    memcpy(deep + n, "\x95\x01\x80\xc0\xa1\x53\x91", 7);
    n += 7;
    for (int i = 0; i < 150; i++) {
        deep[n++] = 0x81;
        deep[n++] = 0xa0;
    }
    deep[n++] = 0xc0;
    cr_assert_eq(pm_(deep, n, &m), HS_EINVAL);
}

Test(hubproto, every_truncation_of_valid_records_is_refused)
{
    static const uint8_t recs[][16] = {
        {0x0f, 0x95, 0x01, 0x80, 0xa1, 0x30, 0xa4, 0x45, 0x63, 0x68, 0x6f, 0x91, 0x81, 0xa1, 0x61,
         0x01},
        {0x0d, 0x96, 0x01, 0x80, 0xc0, 0xa1, 0x53, 0x91, 0xcd, 0x01, 0x00, 0x91, 0xa1, 0x39},
        {0x08, 0x95, 0x03, 0x80, 0xa1, 0x31, 0x01, 0xa1, 0x65},
        {0x0b, 0x92, 0x09, 0xcf, 0, 0, 0, 0, 0, 0, 0, 0x07},
        {0x06, 0x93, 0x07, 0xa2, 0x6e, 0x6f, 0xc3},
    };
    hs_hubmsg_t m;
    for (size_t i = 0; i < sizeof(recs) / sizeof(*recs); i++) {
        size_t len = recs[i][0];
        uint8_t body[16];
        for (size_t cut = 0; cut < len; cut++) {
            memcpy(body, recs[i] + 1, cut); /* exact-size copy: ASan sees any over-read */
            uint8_t *heap = malloc(cut ? cut : 1);
            memcpy(heap, body, cut);
            cr_assert_eq(parse(HS_HUB_MSGPACK, heap, cut, &m), HS_EINVAL, "record %zu cut %zu", i,
                         cut);
            free(heap);
        }
        cr_assert_eq(parse(HS_HUB_MSGPACK, recs[i] + 1, len, &m), 0, "record %zu whole", i);
    }
    const char *json = "{\"type\":1,\"invocationId\":\"0\",\"target\":\"T\",\"arguments\":[1]}";
    for (size_t cut = 0; cut < strlen(json); cut++) {
        char *heap = malloc(cut ? cut : 1);
        memcpy(heap, json, cut);
        cr_assert_eq(parse(HS_HUB_JSON, heap, cut, &m), HS_EINVAL, "cut %zu", cut);
        free(heap);
    }
}

/* ---- encoders ---- */

Test(hubproto, json_encoders)
{
    hs_buf_t b = {0};
    cr_assert_eq(hs_hubproto_completion(&b, HS_HUB_JSON, "0", NULL, "{\"a\":1}", 7), 0);
    EXPECT(&b, "{\"type\":3,\"invocationId\":\"0\",\"result\":{\"a\":1}}\x1e");
    b.len = 0;
    cr_assert_eq(hs_hubproto_completion(&b, HS_HUB_JSON, "0", "Unknown hub method 'x'", NULL, 0),
                 0);
    EXPECT(&b, "{\"type\":3,\"invocationId\":\"0\",\"error\":\"Unknown hub method 'x'\"}\x1e");
    b.len = 0;
    cr_assert_eq(hs_hubproto_completion(&b, HS_HUB_JSON, "0", NULL, NULL, 0), 0);
    EXPECT(&b, "{\"type\":3,\"invocationId\":\"0\"}\x1e");
    b.len = 0;
    cr_assert_eq(hs_hubproto_completion(&b, HS_HUB_JSON, "a\"b", "x\\y\x01", NULL, 0), 0);
    EXPECT(&b, "{\"type\":3,\"invocationId\":\"a\\\"b\",\"error\":\"x\\\\y\\u0001\"}\x1e");
    b.len = 0;
    cr_assert_eq(hs_hubproto_completion(&b, HS_HUB_JSON, "0", NULL, "null", 4), 0);
    EXPECT(&b, "{\"type\":3,\"invocationId\":\"0\",\"result\":null}\x1e");
    b.len = 0;
    cr_assert_eq(hs_hubproto_stream_item_raw(&b, HS_HUB_JSON, "3", (const uint8_t *)"{\"v\":1}", 7),
                 0);
    EXPECT(&b, "{\"type\":2,\"invocationId\":\"3\",\"item\":{\"v\":1}}\x1e");
    b.len = 0;
    const uint8_t *args[2] = {(const uint8_t *)"\"s\"", (const uint8_t *)"{\"n\":[]}"};
    size_t lens[2] = {3, 8};
    cr_assert_eq(hs_hubproto_invocation_raw(&b, HS_HUB_JSON, "event", args, lens, 2), 0);
    EXPECT(&b, "{\"type\":1,\"target\":\"event\",\"arguments\":[\"s\",{\"n\":[]}]}\x1e");
    b.len = 0;
    cr_assert_eq(hs_hubproto_invocation_raw(&b, HS_HUB_JSON, "none", NULL, NULL, 0), 0);
    EXPECT(&b, "{\"type\":1,\"target\":\"none\",\"arguments\":[]}\x1e");
    b.len = 0;
    /* appended one after the other */
    cr_assert_eq(hs_hubproto_ping(&b, HS_HUB_JSON), 0);
    cr_assert_eq(hs_hubproto_close(&b, HS_HUB_JSON, NULL, false), 0);
    cr_assert_eq(hs_hubproto_close(&b, HS_HUB_JSON, "x", true), 0);
    cr_assert_eq(hs_hubproto_close(&b, HS_HUB_JSON, "x", false), 0);
    cr_assert_eq(hs_hubproto_close(&b, HS_HUB_JSON, NULL, true), 0);
    cr_assert_eq(hs_hubproto_ack(&b, HS_HUB_JSON, 5), 0);
    cr_assert_eq(hs_hubproto_sequence(&b, HS_HUB_JSON, 1), 0);
    cr_assert_eq(hs_hubproto_ack(&b, HS_HUB_JSON, INT64_MIN), 0);
    EXPECT(&b, "{\"type\":6}\x1e"
               "{\"type\":7}\x1e"
               "{\"type\":7,\"error\":\"x\",\"allowReconnect\":true}\x1e"
               "{\"type\":7,\"error\":\"x\"}\x1e"
               "{\"type\":7,\"allowReconnect\":true}\x1e"
               "{\"type\":8,\"sequenceId\":5}\x1e"
               "{\"type\":9,\"sequenceId\":1}\x1e"
               "{\"type\":8,\"sequenceId\":-9223372036854775808}\x1e");
    /* a result that is not JSON is refused and nothing is appended */
    size_t before = b.len;
    cr_assert_eq(hs_hubproto_completion(&b, HS_HUB_JSON, "0", NULL, "{\"a\":", 5), HS_EINVAL);
    cr_assert_eq(b.len, before);
    hs_buf_free(&b);
}

Test(hubproto, msgpack_encoders)
{
    hs_buf_t b = {0};
    cr_assert_eq(hs_hubproto_completion(&b, HS_HUB_MSGPACK, "0", NULL, "{\"a\":1}", 7), 0);
    static const uint8_t cval[] = {0x0a, 0x95, 0x03, 0x80, 0xa1, 0x30,
                                   0x03, 0x81, 0xa1, 0x61, 0x01};
    EXPECT_ARR(&b, cval);
    b.len = 0;
    cr_assert_eq(hs_hubproto_completion(&b, HS_HUB_MSGPACK, "0", "Unknown hub method 'x'", NULL, 0),
                 0);
    EXPECT(&b, "\x1d\x95\x03\x80\xa1\x30\x01\xb6"
               "Unknown hub method 'x'");
    b.len = 0;
    cr_assert_eq(hs_hubproto_completion(&b, HS_HUB_MSGPACK, "0", NULL, NULL, 0), 0);
    static const uint8_t cvoid[] = {0x06, 0x94, 0x03, 0x80, 0xa1, 0x30, 0x02};
    EXPECT_ARR(&b, cvoid);
    b.len = 0;
    cr_assert_eq(hs_hubproto_stream_item_raw(&b, HS_HUB_MSGPACK, "3",
                                             (const uint8_t *)"\x81\xa1\x61\x01", 4),
                 0);
    static const uint8_t item[] = {0x09, 0x94, 0x02, 0x80, 0xa1, 0x33, 0x81, 0xa1, 0x61, 0x01};
    EXPECT_ARR(&b, item);
    b.len = 0;
    const uint8_t *args[2] = {(const uint8_t *)"\x01", (const uint8_t *)"\xa1x"};
    size_t lens[2] = {1, 2};
    cr_assert_eq(hs_hubproto_invocation_raw(&b, HS_HUB_MSGPACK, "event", args, lens, 2), 0);
    static const uint8_t inv[] = {0x0f, 0x96, 0x01, 0x80, 0xc0, 0xa5, 'e', 'v',
                                  'e',  'n',  't',  0x92, 0x01, 0xa1, 'x', 0x90};
    EXPECT_ARR(&b, inv);
    b.len = 0;
    cr_assert_eq(hs_hubproto_ping(&b, HS_HUB_MSGPACK), 0);
    cr_assert_eq(hs_hubproto_close(&b, HS_HUB_MSGPACK, NULL, false), 0);
    cr_assert_eq(hs_hubproto_close(&b, HS_HUB_MSGPACK, "x", true), 0);
    cr_assert_eq(hs_hubproto_ack(&b, HS_HUB_MSGPACK, 5), 0);
    cr_assert_eq(hs_hubproto_ack(&b, HS_HUB_MSGPACK, 300), 0);
    cr_assert_eq(hs_hubproto_sequence(&b, HS_HUB_MSGPACK, 1), 0);
    cr_assert_eq(hs_hubproto_sequence(&b, HS_HUB_MSGPACK, -1), 0);
    cr_assert_eq(hs_hubproto_ack(&b, HS_HUB_MSGPACK, 1LL << 40), 0);
    static const uint8_t seqs[] = {
        0x02, 0x91, 0x06,                   /* ping */
        0x04, 0x93, 0x07, 0xc0, 0xc2,       /* close */
        0x05, 0x93, 0x07, 0xa1, 0x78, 0xc3, /* close "x", allowReconnect */
        0x03, 0x92, 0x08, 0x05,             /* ack 5 */
        0x05, 0x92, 0x08, 0xcd, 0x01, 0x2c, /* ack 300 */
        0x03, 0x92, 0x09, 0x01,             /* sequence 1 */
        0x03, 0x92, 0x09, 0xff,             /* sequence -1 */
        0x0b, 0x92, 0x08, 0xcf, 0,    0,    0x01, 0, 0, 0, 0, 0,
    };
    EXPECT_ARR(&b, seqs);
    /* what we emit, we parse */
    hs_hubmsg_t m;
    size_t off = 0;
    int count = 0;
    while (off < b.len) {
        const uint8_t *rec;
        size_t rl, used;
        cr_assert_eq(
            hs_hubproto_next(HS_HUB_MSGPACK, b.p + off, b.len - off, 100, &rec, &rl, &used), 1);
        cr_assert_eq(parse(HS_HUB_MSGPACK, rec, rl, &m), 0, "record %d: %s", count, why);
        off += used;
        count++;
    }
    cr_assert_eq(count, 8);
    cr_assert_eq(m.sequence_id, 1LL << 40);
    /* a record over 127 bytes gets a two-byte prefix; an item of 200 bytes: 5 + 200 = 205 */
    b.len = 0;
    uint8_t big[200];
    big[0] = 0xd9;
    big[1] = 198;
    memset(big + 2, 'a', 198);
    cr_assert_eq(hs_hubproto_stream_item_raw(&b, HS_HUB_MSGPACK, "0", big, 200), 0);
    cr_assert_eq(b.len, 2 + 5 + 200);
    cr_assert(b.p[0] == 0xcd && b.p[1] == 0x01);
    cr_assert(memcmp(b.p + 2, "\x94\x02\x80\xa1\x30", 5) == 0 && memcmp(b.p + 7, big, 200) == 0);
    /* a long id is a str8, an error of 300 bytes a str16 */
    b.len = 0;
    char err[301];
    memset(err, 'e', 300);
    err[300] = '\0';
    cr_assert_eq(hs_hubproto_completion(&b, HS_HUB_MSGPACK, "0", err, NULL, 0), 0);
    cr_assert_eq(b.len, 2 + 6 + 3 + 300);
    cr_assert(b.p[8] == 0xda && b.p[9] == 0x01 && b.p[10] == 0x2c);
    /* a result that is not JSON is refused and nothing is appended */
    b.len = 0;
    cr_assert_eq(hs_hubproto_completion(&b, HS_HUB_MSGPACK, "0", NULL, "[1,", 3), HS_EINVAL);
    cr_assert_eq(b.len, 0);
    hs_buf_free(&b);
}

/* ---- transcoding ---- */

static void to_mp(const char *json, const void *want, size_t n)
{
    hs_buf_t b = {0};
    cr_assert_eq(hs_hubproto_json_to_msgpack(json, strlen(json), &b), 0, "%s", json);
    expect_bytes(&b, want, n);
    hs_buf_free(&b);
}

#define TO_MP(json, lit) to_mp((json), (lit), sizeof(lit) - 1)

Test(hubproto, json_to_msgpack_picks_the_smallest_encoding)
{
    TO_MP("0", "\x00");
    TO_MP("127", "\x7f");
    TO_MP("128", "\xcc\x80");
    TO_MP("256", "\xcd\x01\x00");
    TO_MP("65536", "\xce\x00\x01\x00\x00");
    TO_MP("4294967296", "\xcf\x00\x00\x00\x01\x00\x00\x00\x00");
    TO_MP("-1", "\xff");
    TO_MP("-32", "\xe0");
    TO_MP("-33", "\xd0\xdf");
    TO_MP("-129", "\xd1\xff\x7f");
    TO_MP("-9223372036854775808", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00");
    TO_MP("18446744073709551615", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff");
    TO_MP("18446744073709551616", "\xcb\x43\xf0\x00\x00\x00\x00\x00\x00"); /* 2^64 as a double */
    TO_MP("-9223372036854775809", "\xcb\xc3\xe0\x00\x00\x00\x00\x00\x00");
    TO_MP("1.5", "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00");
    TO_MP("2e0", "\xcb\x40\x00\x00\x00\x00\x00\x00\x00");
    TO_MP("true", "\xc3");
    TO_MP("false", "\xc2");
    TO_MP("null", "\xc0");
    TO_MP("\"\"", "\xa0");
    TO_MP("\"a\\nb\"", "\xa3\x61\x0a\x62");
    TO_MP("[]", "\x90");
    TO_MP("{}", "\x80");
    TO_MP(" { \"b\" : [1, {}] , \"a\" : null } ", "\x82\xa1\x62\x92\x01\x80\xa1\x61\xc0");
    TO_MP("\"0123456789012345678901234567890\"", "\xbf"
                                                 "0123456789012345678901234567890");
    TO_MP("\"01234567890123456789012345678901\"", "\xd9\x20"
                                                  "01234567890123456789012345678901");
    /* a 400-digit number ending the buffer (not NUL-terminated: ASan catches an over-read) */
    char *num = malloc(400);
    memset(num, '9', 400);
    hs_buf_t b = {0};
    cr_assert_eq(hs_hubproto_json_to_msgpack(num, 400, &b), 0);
    cr_assert_eq(b.len, 9);
    cr_assert_eq(b.p[0], 0xcb);
    free(num);
    /* invalid JSON leaves out as it was */
    b.len = 0;
    const char *bad[] = {"", "[1,", "{\"a\"}", "nul", "01", "[1] 2", "\"\xff\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        cr_assert_eq(hs_hubproto_json_to_msgpack(bad[i], strlen(bad[i]), &b), HS_EINVAL, "%s",
                     bad[i]);
    cr_assert_eq(b.len, 0);
    hs_buf_free(&b);
}

/* hs_hubproto_json_to_msgpack against the reference walk into msgpack-c's packer
 * (json_mp_ref.h): the same result code and the same bytes, appended after what was there. */
static void same_as_packer(const char *json, size_t n)
{
    hs_buf_t got = {0}, want = {0};
    cr_assert_eq(hs_buf_put(&got, "\x01\x02", 2), 0);
    cr_assert_eq(hs_buf_put(&want, "\x01\x02", 2), 0);
    int rc = hs_hubproto_json_to_msgpack(json, n, &got);
    cr_assert_eq(rc, ref_json_to_msgpack(json, n, &want), "%.60s (%zu bytes)", json, n);
    cr_assert_eq(got.len, want.len, "%.60s (%zu bytes)", json, n);
    cr_assert(memcmp(got.p, want.p, got.len) == 0, "%.60s (%zu bytes)", json, n);
    hs_buf_free(&got);
    hs_buf_free(&want);
}

/* "[x,x,...]" or "{"kN":x,...}" with k entries of `item`, at most one level deep */
static char *repeat_doc(size_t k, bool map, const char *item)
{
    size_t il = strlen(item), cap = k * (il + 16) + 3, o = 0;
    char *s = malloc(cap);
    cr_assert(s);
    s[o++] = map ? '{' : '[';
    for (size_t i = 0; i < k; i++) {
        if (i)
            s[o++] = ',';
        if (map)
            o += (size_t)snprintf(s + o, cap - o, "\"k%zu\":", i);
        memcpy(s + o, item, il);
        o += il;
    }
    s[o++] = map ? '}' : ']';
    s[o] = '\0';
    return s;
}

Test(hubproto, json_to_msgpack_matches_the_packer_at_every_header_boundary)
{
    /* counts where a map's or an array's header grows (1, 3, 5 bytes), nested in each other */
    const size_t counts[] = {0, 1, 15, 16, 17, 255, 256, 65535, 65536, 65537};
    for (size_t i = 0; i < sizeof(counts) / sizeof(*counts); i++)
        for (int map = 0; map < 2; map++) {
            char *d = repeat_doc(counts[i], map, "1");
            same_as_packer(d, strlen(d));
            char *outer = repeat_doc(20, !map, d); /* 20 of them: each moved again */
            same_as_packer(outer, strlen(outer));
            free(outer);
            free(d);
        }
    /* strings whose header class changes at 32, 256 and 65536 bytes, with and without escapes:
     * an escaped text longer than a boundary may unescape to below it */
    const size_t lens[] = {0,   1,   30,  31,    32,    33,    34,    254,  255,
                           256, 257, 258, 65534, 65535, 65536, 65537, 65538};
    const char *fills[] = {"a", "\\n", "\\u00e9", "\\ud83d\\ude00", "\\ud800"};
    for (size_t i = 0; i < sizeof(lens) / sizeof(*lens); i++)
        for (size_t f = 0; f < sizeof(fills) / sizeof(*fills); f++) {
            size_t fl = strlen(fills[f]), n = 0, cap = lens[i] + fl + 8;
            char *s = malloc(cap);
            s[n++] = '"';
            while (n - 1 + fl <= lens[i]) {
                memcpy(s + n, fills[f], fl);
                n += fl;
            }
            while (n - 1 < lens[i])
                s[n++] = 'z';
            s[n++] = '"';
            same_as_packer(s, n); /* not NUL-terminated: ASan watches the end */
            char *asmap = malloc(2 * n + 8);
            int m = snprintf(asmap, 2 * n + 8, "{%.*s:%.*s}", (int)n, s, (int)n, s);
            same_as_packer(asmap, (size_t)m);
            free(asmap);
            free(s);
        }
    /* numbers at every integer encoding's edge, and those that are not integers */
    const char *nums[] = {"0",
                          "-0",
                          "127",
                          "128",
                          "255",
                          "256",
                          "65535",
                          "65536",
                          "4294967295",
                          "4294967296",
                          "9223372036854775807",
                          "9223372036854775808",
                          "18446744073709551615",
                          "18446744073709551616",
                          "-31",
                          "-32",
                          "-33",
                          "-128",
                          "-129",
                          "-32768",
                          "-32769",
                          "-2147483648",
                          "-2147483649",
                          "-9223372036854775808",
                          "-9223372036854775809",
                          "1.0",
                          "1e2",
                          "-1E-2",
                          "0.1",
                          "123456789012345678901234567890123456789012345678901234567890123",
                          "1234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < sizeof(nums) / sizeof(*nums); i++) {
        same_as_packer(nums[i], strlen(nums[i]));
        char wrapped[160];
        int m = snprintf(wrapped, sizeof wrapped, " [ %s , {\"n\" : %s} ] ", nums[i], nums[i]);
        same_as_packer(wrapped, (size_t)m);
    }
    /* the depth bound: 64 nested containers are taken, 65 refused; and what is refused */
    char deep[200];
    for (int d = 63; d <= 65; d++) {
        memset(deep, '[', (size_t)d);
        memset(deep + d, ']', (size_t)d);
        same_as_packer(deep, 2 * (size_t)d);
    }
    const char *bad[] = {"",      " ",   "[1,",     "{\"a\"}",       "{\"a\":}",
                         "{1:2}", "nul", "01",      "[1] 2",         "\"\xff\"",
                         "[1,]",  "{,}", "\"\\x\"", "\"\\u12\"",     "-",
                         "1.",    "1e",  "tru",     "[\"a\" \"b\"]", "{\"a\":1,}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        same_as_packer(bad[i], strlen(bad[i]));
}

static void roundtrip(const char *json, const char *want)
{
    hs_buf_t mp = {0}, back = {0};
    cr_assert_eq(hs_hubproto_json_to_msgpack(json, strlen(json), &mp), 0, "%s", json);
    cr_assert_eq(hs_hubproto_msgpack_to_json(mp.p, mp.len, &back), 0, "%s", json);
    cr_assert(span_is((const char *)back.p, back.len, want), "%s -> %.*s, want %s", json,
              (int)back.len, (const char *)back.p, want);
    hs_buf_free(&mp);
    hs_buf_free(&back);
}

Test(hubproto, json_msgpack_round_trips)
{
    roundtrip("{\"a\":{\"b\":[1,-2,\"x\"]},\"e\":{},\"l\":[]}",
              "{\"a\":{\"b\":[1,-2,\"x\"]},\"e\":{},\"l\":[]}");
    roundtrip(" { \"a\" : { \"b\" : { \"c\" : [ [ ] , { } ] } } } ",
              "{\"a\":{\"b\":{\"c\":[[],{}]}}}");
    roundtrip("\"\\u00e9\"", "\"\xc3\xa9\"");
    roundtrip("\"\\ud834\\udd1e \\ud83d\\ude00\"", "\"\xf0\x9d\x84\x9e \xf0\x9f\x98\x80\"");
    roundtrip("\"\\u0000\\u001f\\/\"", "\"\\u0000\\u001f/\"");
    roundtrip("{\"\\u00e9\":1}", "{\"\xc3\xa9\":1}");
    roundtrip("\"\\ud800x\"", "\"\xef\xbf\xbdx\""); /* json.c: a lone surrogate is U+FFFD */
    roundtrip("[9223372036854775807,-9223372036854775808,18446744073709551615]",
              "[9223372036854775807,-9223372036854775808,18446744073709551615]");
    roundtrip("[0,-1,-32,-33,-128,-129,-32768,-32769,-2147483648,-2147483649]",
              "[0,-1,-32,-33,-128,-129,-32768,-32769,-2147483648,-2147483649]");
    roundtrip("[1.5,1e300,-0.25,0.1,1E-7,2.0,-0.0]", "[1.5,1e+300,-0.25,0.1,1e-07,2,-0]");
    roundtrip("[5e-324,1.7976931348623157e308,0.30000000000000004]",
              "[5e-324,1.7976931348623157e+308,0.30000000000000004]");
    roundtrip("[true,false,null]", "[true,false,null]");
    roundtrip("\"tab\\tquote\\\"back\\\\\"", "\"tab\\tquote\\\"back\\\\\"");
    roundtrip("[]", "[]");
    roundtrip("{}", "{}");
    roundtrip("\"\"", "\"\"");
    /* 63 nested arrays from JSON fit in MessagePack, but msgpack-c reads back only 32 */
    char deep[200];
    memset(deep, '[', 32);
    memset(deep + 32, ']', 32);
    deep[64] = '\0';
    roundtrip(deep, deep);
    memset(deep, '[', 33);
    memset(deep + 33, ']', 33);
    hs_buf_t mp = {0}, back = {0};
    cr_assert_eq(hs_hubproto_json_to_msgpack(deep, 66, &mp), 0);
    cr_assert_eq(hs_hubproto_msgpack_to_json(mp.p, mp.len, &back), HS_EINVAL);
    hs_buf_free(&mp);
    hs_buf_free(&back);
}

static void mp_json(const void *mp, size_t n, int want_rc, const char *want)
{
    hs_buf_t b = {0};
    hs_buf_put(&b, "pre", 3);
    cr_assert_eq(hs_hubproto_msgpack_to_json(mp, n, &b), want_rc);
    if (want_rc == 0)
        cr_assert(b.len == 3 + strlen(want) && memcmp(b.p + 3, want, b.len - 3) == 0,
                  "got %.*s, want %s", (int)b.len - 3, (const char *)b.p + 3, want);
    else
        cr_assert_eq(b.len, 3, "nothing appended on error");
    hs_buf_free(&b);
}

#define MP_JSON(lit, want) mp_json((lit), sizeof(lit) - 1, 0, (want))
#define MP_BAD(lit)        mp_json((lit), sizeof(lit) - 1, HS_EINVAL, NULL)

Test(hubproto, msgpack_to_json)
{
    MP_JSON("\xc4\x00", "\"\"");
    MP_JSON("\xc4\x01"
            "a",
            "\"YQ==\"");
    MP_JSON("\xc4\x02"
            "ab",
            "\"YWI=\"");
    MP_JSON("\xc4\x03"
            "abc",
            "\"YWJj\"");
    MP_JSON("\xc5\x00\x04"
            "\xfb\xff\xbf\x00",
            "\"+/+/AA==\"");
    MP_JSON("\xca\x3f\xc0\x00\x00", "1.5");
    MP_JSON("\xca\x3d\xcc\xcc\xcd", "0.10000000149011612"); /* float32 0.1, as a double */
    MP_JSON("\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a", "0.1");
    MP_JSON("\xcb\x00\x00\x00\x00\x00\x00\x00\x00", "0");
    MP_JSON("\xd0\x7f", "127"); /* a positive int8 */
    MP_JSON("\xd3\xff\xff\xff\xff\xff\xff\xff\xff", "-1");
    MP_JSON("\xce\xff\xff\xff\xff", "4294967295");
    MP_JSON("\xa0", "\"\"");
    MP_JSON("\xd9\x00", "\"\"");
    MP_JSON("\xda\x00\x02"
            "\x7f\x1b",
            "\"\x7f\\u001b\"");
    MP_JSON("\xdc\x00\x02\xc0\xc3", "[null,true]");
    MP_JSON("\xde\x00\x01\xa1k\x90", "{\"k\":[]}");
    MP_JSON("\x82\xa1"
            "a\x01\xa1"
            "a\x02",
            "{\"a\":1,\"a\":2}");
    MP_JSON("\xa4\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");
    MP_BAD("");
    MP_BAD("\xc1");
    MP_BAD("\x01\x02");                             /* trailing bytes */
    MP_BAD("\x92\x01");                             /* truncated */
    MP_BAD("\x81\x01\x02");                         /* int key */
    MP_BAD("\x81\xc0\x02");                         /* nil key */
    MP_BAD("\x81\x90\x02");                         /* array key */
    MP_BAD("\xd4\x01\x00");                         /* fixext1 */
    MP_BAD("\xc7\x00\x01");                         /* ext8 of 0 bytes */
    MP_BAD("\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00"); /* infinity */
    MP_BAD("\xcb\xff\xf8\x00\x00\x00\x00\x00\x00"); /* NaN */
    MP_BAD("\xa1\xff");                             /* invalid UTF-8 */
    MP_BAD("\xa2\xc0\x80");                         /* overlong */
    MP_BAD("\xa3\xed\xa0\x80");                     /* a surrogate */
    MP_BAD("\xa4\xf4\x90\x80\x80");                 /* above U+10FFFF */
    MP_BAD("\xa2\xe2\x82");                         /* truncated sequence */
    MP_BAD("\xdd\xff\xff\xff\xff\x01");             /* array32 of 4 billion */
    MP_BAD("\xdf\x7f\xff\xff\xff\xa0\x01");         /* map32 of 2 billion */
    MP_BAD("\xc6\xff\xff\xff\xff\x01");             /* bin32 of 4 GiB */
    /* 65 nested arrays */
    char deep[66];
    memset(deep, 0x91, 65);
    deep[65] = 0x01;
    mp_json(deep, 66, HS_EINVAL, NULL);
}

/* ---- fuzz ---- */

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* What parse returned as JSON text must be valid JSON. */
static void check_spans(const hs_hubmsg_t *m)
{
    hs_json_span_t sp;
    if (m->args)
        cr_assert_eq(hs_json_parse(m->args, m->args_len, &sp, NULL, 0), 0);
    if (m->item)
        cr_assert_eq(hs_json_parse(m->item, m->item_len, &sp, NULL, 0), 0);
    if (m->error)
        (void)strlen(m->error);
}

Test(hubproto, random_mutations_never_crash, .timeout = 120)
{
    static const struct {
        hs_hubfmt_t fmt;
        const char *p;
        size_t n;
    } seeds[] = {
#define S(fmt, lit) {fmt, lit, sizeof(lit) - 1}
        S(HS_HUB_JSON, "{\"type\":1,\"invocationId\":\"0\",\"target\":\"Publish\",\"arguments\":"
                       "[\"s\",{\"type\":\"t\",\"data\":[1,2.5,\"x\\u00e9\",{\"k\":null}]}]}\x1e"
                       "{\"type\":6}\x1e"),
        S(HS_HUB_JSON, "{\"type\":3,\"invocationId\":\"1\",\"error\":\"e\\n\"}\x1e{\"type\":7,"
                       "\"error\":\"x\",\"allowReconnect\":true}\x1e"
                       "{\"type\":8,\"sequenceId\":5}\x1e"),
        S(HS_HUB_JSON, "{\"type\":4,\"invocationId\":\"2\",\"target\":\"S\",\"arguments\":[],"
                       "\"streamIds\":[\"1\"],\"headers\":{\"a\":\"b\"}}\x1e{\"type\":2,"
                       "\"invocationId\":\"1\",\"item\":[true]}\x1e"),
        S(HS_HUB_MSGPACK, "\x0f\x95\x01\x80\xa1\x30\xa4\x45\x63\x68\x6f\x91\x81\xa1\x61\x01"
                          "\x03\x92\x07\xc0"),
        S(HS_HUB_MSGPACK, "\x0d\x96\x01\x80\xc0\xa1\x53\x91\xcd\x01\x00\x91\xa1\x39\x02\x91\x06"),
        S(HS_HUB_MSGPACK, "\x08\x95\x03\x80\xa1\x31\x01\xa1\x65\x06\x94\x03\x80\xa1\x31\x02"),
        S(HS_HUB_MSGPACK, "\x22\x94\x02\x80\xa1\x31\x85\xa1\x61\xcb\x3f\xf8\0\0\0\0\0\0\xa1\x62"
                          "\xc4\x01\x00\xa1\x63\x92\xc3\xc0\xa1\x64\xd0\x80\xa1\x65\x90"
                          "\x0b\x92\x09\xcf\0\0\0\0\0\0\0\x07"),
#undef S
    };
    const size_t nseeds = sizeof(seeds) / sizeof(*seeds);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    uint8_t buf[256];
    long parsed = 0;
    for (int iter = 0; iter < 200000; iter++) {
        size_t k = (size_t)iter % nseeds;
        size_t n = seeds[k].n;
        memcpy(buf, seeds[k].p, n);
        int edits = 1 + (int)(rnd(&rng) % 4);
        for (int e = 0; e < edits && n; e++) {
            uint64_t r = rnd(&rng);
            size_t at = (size_t)(r % n);
            switch ((r >> 32) % 6) {
            case 0: /* random byte */
                buf[at] = (uint8_t)(r >> 40);
                break;
            case 1: /* bit flip */
                buf[at] ^= (uint8_t)(1u << ((r >> 48) % 8));
                break;
            case 2: /* truncate */
                n = at;
                break;
            case 3: /* an interesting byte */
                buf[at] = (const uint8_t[]){
                    0x00, 0x1e, 0x7f, 0x80, 0xc0, 0xc1, 0xcf, 0xd3,
                    0xdc, 0xdd, 0xdf, 0xff, '"',  '\\', '{',  ']'}[(r >> 40) % 16];
                break;
            case 4: /* insert a byte */
                if (n < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = (uint8_t)(r >> 40);
                    n++;
                }
                break;
            default: /* delete a byte */
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
                break;
            }
        }
        /* an exact-size heap copy so ASan sees any read past the end */
        uint8_t *in = malloc(n ? n : 1);
        memcpy(in, buf, n);
        size_t off = 0;
        while (off < n) {
            const uint8_t *rec;
            size_t rl, used;
            int rc = hs_hubproto_next(seeds[k].fmt, in + off, n - off, 200, &rec, &rl, &used);
            if (rc != 1)
                break;
            cr_assert(used > 0 && used <= n - off && rl < used);
            hs_hubmsg_t m;
            char w[64];
            rc = hs_hubproto_parse(seeds[k].fmt, rec, rl, &m, &scratch, w, sizeof(w));
            cr_assert(rc == 0 || rc == HS_EINVAL);
            if (rc == 0) {
                check_spans(&m);
                parsed++;
            }
            /* the transcoders on the same bytes */
            hs_buf_t t = {0};
            if (seeds[k].fmt == HS_HUB_MSGPACK) {
                if (hs_hubproto_msgpack_to_json(rec, rl, &t) == 0) {
                    hs_json_span_t sp;
                    cr_assert_eq(hs_json_parse((const char *)t.p, t.len, &sp, NULL, 0), 0,
                                 "msgpack_to_json wrote invalid JSON: %.*s", (int)t.len, t.p);
                }
            } else if (hs_hubproto_json_to_msgpack((const char *)rec, rl, &t) == 0) {
                hs_buf_t j = {0};
                rc = hs_hubproto_msgpack_to_json(t.p, t.len, &j); /* 1e999 is infinity */
                cr_assert(rc == 0 || rc == HS_EINVAL);
                hs_buf_free(&j);
            }
            hs_buf_free(&t);
            off += used;
        }
        free(in);
    }
    cr_assert_gt(parsed, 1000, "the mutations should leave many records valid");
}
