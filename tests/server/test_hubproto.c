/* SignalR hub protocol codec (server/hubproto.c): the bytes the official clients send and
 * expect, in JSON and MessagePack. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "server/hubproto.h"

static hs_hubbuf_t scratch;

static int parse(hs_hubfmt_t fmt, const void *rec, size_t len, hs_hubmsg_t *m)
{
    char why[200];
    return hs_hubproto_parse(fmt, rec, len, m, &scratch, why, sizeof(why));
}

static int pj(const char *json, hs_hubmsg_t *m)
{
    return parse(HS_HUB_JSON, json, strlen(json), m);
}

/* Parses one whole MessagePack record (prefix included). */
static int pm(const uint8_t *rec, size_t len, hs_hubmsg_t *m)
{
    const uint8_t *body;
    size_t bl, used;
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, rec, len, 1 << 20, &body, &bl, &used), 1);
    cr_assert_eq(used, len);
    return parse(HS_HUB_MSGPACK, body, bl, m);
}

static void expect_bytes(const hs_hubbuf_t *b, const void *want, size_t n)
{
    cr_assert_eq(b->len, n, "length %zu, want %zu", b->len, n);
    cr_assert(memcmp(b->p, want, n) == 0, "bytes differ");
}

#define EXPECT(b, lit) expect_bytes((b), (lit), sizeof(lit) - 1)

Test(hubproto, json_invocation_any_member_order_with_headers_and_unknowns)
{
    hs_hubmsg_t m;
    cr_assert_eq(pj("{\"target\":\"Echo\",\"arguments\":[1,{\"a\":\"b\"}],\"invocationId\":\"0\","
                    "\"headers\":{\"k\":\"v\"},\"extra\":[1],\"type\":1}",
                    &m),
                 0);
    cr_assert_eq(m.type, 1);
    cr_assert(m.has_id);
    cr_assert_str_eq(m.id, "0");
    cr_assert_str_eq(m.target, "Echo");
    cr_assert_eq(m.args_len, strlen("[1,{\"a\":\"b\"}]"));
    cr_assert(memcmp(m.args, "[1,{\"a\":\"b\"}]", m.args_len) == 0);
    cr_assert_eq(pj("{\"type\":1,\"target\":\"Send\",\"arguments\":[]}", &m), 0);
    cr_assert_not(m.has_id, "no invocationId: non-blocking");
    cr_assert_eq(pj("{\"type\":4,\"invocationId\":\"7\",\"target\":\"S\",\"arguments\":[\"x\"],"
                    "\"streamIds\":[\"3\"]}",
                    &m),
                 0);
    cr_assert_eq(m.nstream_ids, 1);
    cr_assert_str_eq(m.stream_ids[0], "3");
}

Test(hubproto, json_other_types)
{
    hs_hubmsg_t m;
    cr_assert_eq(pj("{\"type\":6}", &m), 0);
    cr_assert_eq(m.type, 6);
    cr_assert_eq(pj("{\"type\":7,\"error\":\"bye \\\"now\\\"\",\"allowReconnect\":true}", &m), 0);
    cr_assert_str_eq(m.error, "bye \"now\"");
    cr_assert(m.allow_reconnect);
    cr_assert_eq(pj("{\"type\":8,\"sequenceId\":12}", &m), 0);
    cr_assert_eq(m.sequence_id, 12);
    cr_assert_eq(pj("{\"sequenceId\":1,\"type\":9}", &m), 0);
    cr_assert_eq(m.type, 9);
    cr_assert_eq(pj("{\"type\":5,\"invocationId\":\"4\"}", &m), 0);
    cr_assert_str_eq(m.id, "4");
    cr_assert_eq(pj("{\"type\":2,\"invocationId\":\"4\",\"item\":null}", &m), 0);
    cr_assert_eq(m.item_len, 4);
    cr_assert_eq(pj("{\"type\":42,\"whatever\":1}", &m), 0, "unknown types are skipped, not fatal");
    cr_assert_eq(m.type, 42);
}

Test(hubproto, json_malformed_is_refused)
{
    const char *bad[] = {"[]", "{}", "{\"type\":\"1\"}", "{\"type\":1,\"arguments\":[]}",
                         "{\"type\":1,\"target\":\"\",\"arguments\":[]}",
                         "{\"type\":1,\"target\":\"x\"}",
                         "{\"type\":1,\"target\":\"x\",\"arguments\":[],\"invocationId\":5}",
                         "{\"type\":2,\"invocationId\":\"1\"}", "{\"type\":8}",
                         "{\"type\":3,\"invocationId\":\"1\",\"result\":1,\"error\":\"e\"}",
                         "{\"type\":1,", "not json"};
    hs_hubmsg_t m;
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        cr_assert_eq(pj(bad[i], &m), HS_EINVAL, "should refuse %s", bad[i]);
    char longid[200] = "{\"type\":5,\"invocationId\":\"";
    memset(longid + strlen(longid), 'x', 100);
    strcat(longid, "\"}");
    cr_assert_eq(pj(longid, &m), HS_EINVAL);
}

Test(hubproto, msgpack_what_the_js_client_sends)
{
    hs_hubmsg_t m;
    /* Invocation id "0" Echo({a:1}) — observed bytes of the JS client */
    static const uint8_t echo[] = {0x0f, 0x95, 0x01, 0x80, 0xa1, 0x30, 0xa4, 0x45,
                                   0x63, 0x68, 0x6f, 0x91, 0x81, 0xa1, 0x61, 0x01};
    cr_assert_eq(pm(echo, sizeof(echo), &m), 0);
    cr_assert_eq(m.type, 1);
    cr_assert_str_eq(m.id, "0");
    cr_assert_str_eq(m.target, "Echo");
    cr_assert_eq(m.args_len, strlen("[{\"a\":1}]"));
    cr_assert(memcmp(m.args, "[{\"a\":1}]", m.args_len) == 0);
    /* non-blocking: nil id; 6 elements (.NET) with stream ids */
    static const uint8_t send6[] = {0x0d, 0x96, 0x01, 0x80, 0xc0, 0xa1, 0x53, 0x91,
                                    0xcd, 0x01, 0x00, 0x91, 0xa1, 0x39};
    cr_assert_eq(pm(send6, sizeof(send6), &m), 0);
    cr_assert_not(m.has_id);
    cr_assert(memcmp(m.args, "[256]", m.args_len) == 0);
    cr_assert_eq(m.nstream_ids, 1);
    cr_assert_str_eq(m.stream_ids[0], "9");
    static const uint8_t ping[] = {0x02, 0x91, 0x06};
    cr_assert_eq(pm(ping, sizeof(ping), &m), 0);
    cr_assert_eq(m.type, 6);
    static const uint8_t close2[] = {0x03, 0x92, 0x07, 0xc0};
    cr_assert_eq(pm(close2, sizeof(close2), &m), 0);
    cr_assert_eq(m.type, 7);
    cr_assert_null(m.error);
    static const uint8_t close3[] = {0x06, 0x93, 0x07, 0xa2, 0x6e, 0x6f, 0xc3};
    cr_assert_eq(pm(close3, sizeof(close3), &m), 0);
    cr_assert_str_eq(m.error, "no");
    cr_assert(m.allow_reconnect);
    /* Ack with a uint16 and a uint64-width sequence id; a type given as uint8 */
    static const uint8_t ack[] = {0x06, 0x92, 0xcc, 0x08, 0xcd, 0x01, 0x2c};
    cr_assert_eq(pm(ack, sizeof(ack), &m), 0);
    cr_assert_eq(m.type, 8);
    cr_assert_eq(m.sequence_id, 300);
    static const uint8_t seq[] = {0x0b, 0x92, 0x09, 0xcf, 0, 0, 0, 0, 0, 0, 0, 0x07};
    cr_assert_eq(pm(seq, sizeof(seq), &m), 0);
    cr_assert_eq(m.sequence_id, 7);
    /* StreamItem and Completion with a value, an error, void */
    static const uint8_t item[] = {0x08, 0x94, 0x02, 0x80, 0xa1, 0x31, 0x92, 0xc3, 0xc0};
    cr_assert_eq(pm(item, sizeof(item), &m), 0);
    cr_assert(memcmp(m.item, "[true,null]", m.item_len) == 0);
    static const uint8_t cerr[] = {0x08, 0x95, 0x03, 0x80, 0xa1, 0x31, 0x01, 0xa1, 0x65};
    cr_assert_eq(pm(cerr, sizeof(cerr), &m), 0);
    cr_assert_str_eq(m.error, "e");
    static const uint8_t cvoid[] = {0x06, 0x94, 0x03, 0x80, 0xa1, 0x31, 0x02};
    cr_assert_eq(pm(cvoid, sizeof(cvoid), &m), 0);
    cr_assert_null(m.item);
    cr_assert_null(m.error);
}

Test(hubproto, msgpack_malformed_is_refused_without_huge_allocations)
{
    static const uint8_t cases[][12] = {
        {0x04, 0x94, 0x01, 0x80, 0xc0},                         /* 4-element invocation */
        {0x06, 0x95, 0x01, 0x80, 0xc0, 0xa0, 0x90},             /* empty target */
        {0x06, 0x95, 0x01, 0x80, 0x01, 0xa1, 0x53},             /* int id, truncated */
        {0x0a, 0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5},    /* array32 of 4 billion */
        {0x0a, 0xdf, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5},    /* map32 of 4 billion */
        {0x03, 0x91, 0x06, 0x06},                               /* trailing byte */
        {0x02, 0xa1, 0x41},                                     /* not an array */
        {0x05, 0x95, 0x03, 0x80, 0xa1, 0x31},                   /* truncated completion */
        {0x08, 0x95, 0x03, 0x80, 0xa1, 0x31, 0x01, 0x05},       /* error kind, int error */
        {0x07, 0x95, 0x01, 0x80, 0xc0, 0xa1, 0x53, 0x91},       /* args truncated */
    };
    hs_hubmsg_t m;
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        const uint8_t *body;
        size_t bl, used;
        size_t len = (size_t)cases[i][0] + 1;
        if (hs_hubproto_next(HS_HUB_MSGPACK, cases[i], len, 1 << 20, &body, &bl, &used) != 1)
            continue;
        cr_assert_eq(parse(HS_HUB_MSGPACK, body, bl, &m), HS_EINVAL, "case %zu", i);
    }
    /* a map with an integer key inside the arguments cannot become JSON */
    static const uint8_t intkey[] = {0x0a, 0x95, 0x01, 0x80, 0xc0, 0xa1, 0x53, 0x91, 0x81, 0x01, 0x02};
    cr_assert_eq(pm(intkey, sizeof(intkey), &m), HS_EINVAL);
    /* invalid UTF-8 in a string */
    static const uint8_t badutf[] = {0x0a, 0x95, 0x01, 0x80, 0xc0, 0xa1, 0x53, 0x91, 0xa2, 0xc3, 0x28};
    cr_assert_eq(pm(badutf, sizeof(badutf), &m), HS_EINVAL);
    /* 100 nested arrays */
    uint8_t deep[120] = {0};
    deep[0] = 107;
    memcpy(deep + 1, "\x95\x01\x80\xc0\xa1\x53", 6);
    memset(deep + 7, 0x91, 100);
    deep[107] = 0x01;
    cr_assert_eq(pm(deep, 108, &m), HS_EINVAL);
}

Test(hubproto, cutting_records_across_reads)
{
    const char two[] = "{\"type\":6}\x1e{\"type\":7}\x1e";
    for (size_t cut = 0; cut < sizeof(two) - 1; cut++) {
        const uint8_t *rec;
        size_t rl, used;
        int rc = hs_hubproto_next(HS_HUB_JSON, (const uint8_t *)two, cut, 1000, &rec, &rl, &used);
        cr_assert_eq(rc, cut >= 11 ? 1 : 0, "cut %zu", cut);
        if (rc == 1)
            cr_assert(rl == 10 && used == 11);
    }
    static const uint8_t mp[] = {0x02, 0x91, 0x06, 0x03, 0x92, 0x07, 0xc0};
    for (size_t cut = 0; cut <= sizeof(mp); cut++) {
        const uint8_t *rec;
        size_t rl, used;
        int rc = hs_hubproto_next(HS_HUB_MSGPACK, mp, cut, 1000, &rec, &rl, &used);
        cr_assert_eq(rc, cut >= 3 ? 1 : 0, "cut %zu", cut);
    }
    const uint8_t *rec;
    size_t rl, used;
    /* too large: no separator within max + 1 bytes; a prefix announcing more than max */
    char big[100];
    memset(big, 'x', sizeof(big));
    cr_assert_eq(hs_hubproto_next(HS_HUB_JSON, (uint8_t *)big, 100, 50, &rec, &rl, &used), HS_ETOOLARGE);
    static const uint8_t pre[] = {0x80, 0x29}; /* 5248 */
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, pre, 2, 5247, &rec, &rl, &used), HS_ETOOLARGE);
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, pre, 2, 5248, &rec, &rl, &used), 0);
    static const uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    cr_assert_eq(hs_hubproto_next(HS_HUB_MSGPACK, six, 6, 1u << 31, &rec, &rl, &used), HS_EINVAL);
    uint8_t v[5];
    cr_assert_eq(hs_hubproto_varint(v, 53), 1);
    cr_assert_eq(v[0], 0x35);
    cr_assert_eq(hs_hubproto_varint(v, 5248), 2);
    cr_assert(v[0] == 0x80 && v[1] == 0x29);
}

Test(hubproto, handshake)
{
    char proto[32];
    int ver;
    const char *h = "{\"protocol\":\"messagepack\",\"version\":1,\"x\":2}";
    cr_assert_eq(hs_hubproto_parse_handshake((const uint8_t *)h, strlen(h), proto, sizeof(proto), &ver), 0);
    cr_assert_str_eq(proto, "messagepack");
    cr_assert_eq(ver, 1);
    const char *bad = "{\"protocol\":1,\"version\":1}";
    cr_assert_eq(hs_hubproto_parse_handshake((const uint8_t *)bad, strlen(bad), proto, sizeof(proto), &ver), HS_EINVAL);
    hs_hubbuf_t b = {0};
    hs_hubproto_handshake_reply(&b, NULL);
    EXPECT(&b, "{}\x1e");
    b.len = 0;
    hs_hubproto_handshake_reply(&b, "The protocol 'foo' is not supported.");
    EXPECT(&b, "{\"error\":\"The protocol 'foo' is not supported.\"}\x1e");
    hs_hubbuf_free(&b);
}

Test(hubproto, json_encoders)
{
    hs_hubbuf_t b = {0};
    hs_hubproto_completion(&b, HS_HUB_JSON, "1", NULL, "{\"a\": [1]}", 10);
    EXPECT(&b, "{\"type\":3,\"invocationId\":\"1\",\"result\":{\"a\": [1]}}\x1e");
    b.len = 0;
    hs_hubproto_completion(&b, HS_HUB_JSON, "1", "bad \"x\"", NULL, 0);
    EXPECT(&b, "{\"type\":3,\"invocationId\":\"1\",\"error\":\"bad \\\"x\\\"\"}\x1e");
    b.len = 0;
    hs_hubproto_completion(&b, HS_HUB_JSON, "1", NULL, NULL, 0);
    EXPECT(&b, "{\"type\":3,\"invocationId\":\"1\"}\x1e");
    b.len = 0;
    hs_hubproto_stream_item_raw(&b, HS_HUB_JSON, "2", (const uint8_t *)"{\"v\":1}", 7);
    EXPECT(&b, "{\"type\":2,\"invocationId\":\"2\",\"item\":{\"v\":1}}\x1e");
    b.len = 0;
    const uint8_t *args[2] = {(const uint8_t *)"\"s\"", (const uint8_t *)"\"closed\""};
    size_t lens[2] = {3, 8};
    hs_hubproto_invocation_raw(&b, HS_HUB_JSON, "closed", args, lens, 2);
    EXPECT(&b, "{\"type\":1,\"target\":\"closed\",\"arguments\":[\"s\",\"closed\"]}\x1e");
    b.len = 0;
    hs_hubproto_ping(&b, HS_HUB_JSON);
    hs_hubproto_close(&b, HS_HUB_JSON, NULL, false);
    hs_hubproto_close(&b, HS_HUB_JSON, "e", true);
    hs_hubproto_ack(&b, HS_HUB_JSON, 5);
    hs_hubproto_sequence(&b, HS_HUB_JSON, 1);
    EXPECT(&b, "{\"type\":6}\x1e{\"type\":7}\x1e{\"type\":7,\"error\":\"e\",\"allowReconnect\":true}\x1e"
               "{\"type\":8,\"sequenceId\":5}\x1e{\"type\":9,\"sequenceId\":1}\x1e");
    hs_hubbuf_free(&b);
}

Test(hubproto, msgpack_encoders)
{
    hs_hubbuf_t b = {0};
    hs_hubproto_completion(&b, HS_HUB_MSGPACK, "0", NULL, "[1]", 3);
    EXPECT(&b, "\x08\x95\x03\x80\xa1\x30\x03\x91\x01");
    b.len = 0;
    hs_hubproto_completion(&b, HS_HUB_MSGPACK, "0", "e", NULL, 0);
    EXPECT(&b, "\x08\x95\x03\x80\xa1\x30\x01\xa1\x65");
    b.len = 0;
    hs_hubproto_completion(&b, HS_HUB_MSGPACK, "0", NULL, NULL, 0);
    EXPECT(&b, "\x06\x94\x03\x80\xa1\x30\x02");
    b.len = 0;
    hs_hubproto_stream_item_raw(&b, HS_HUB_MSGPACK, "0", (const uint8_t *)"\xc3", 1);
    EXPECT(&b, "\x06\x94\x02\x80\xa1\x30\xc3");
    b.len = 0;
    const uint8_t *args[1] = {(const uint8_t *)"\x01"};
    size_t lens[1] = {1};
    hs_hubproto_invocation_raw(&b, HS_HUB_MSGPACK, "event", args, lens, 1);
    EXPECT(&b, "\x0d\x96\x01\x80\xc0\xa5" "event" "\x91\x01\x90");
    b.len = 0;
    hs_hubproto_ping(&b, HS_HUB_MSGPACK);
    hs_hubproto_close(&b, HS_HUB_MSGPACK, NULL, true);
    hs_hubproto_ack(&b, HS_HUB_MSGPACK, 300);
    hs_hubproto_sequence(&b, HS_HUB_MSGPACK, 1);
    EXPECT(&b, "\x02\x91\x06" "\x04\x93\x07\xc0\xc3" "\x05\x92\x08\xcd\x01\x2c" "\x03\x92\x09\x01");
    /* a record over 127 bytes gets a two-byte prefix */
    b.len = 0;
    uint8_t item[200];
    item[0] = 0xd9;
    item[1] = 198;
    memset(item + 2, 'a', 198);
    hs_hubproto_stream_item_raw(&b, HS_HUB_MSGPACK, "0", item, 200);
    cr_assert_eq(b.len, 2 + 5 + 200);
    cr_assert(b.p[0] == ((205 & 0x7f) | 0x80) && b.p[1] == 205 >> 7);
    hs_hubbuf_free(&b);
}

static void roundtrip(const char *json, const char *want)
{
    hs_hubbuf_t mp = {0}, back = {0};
    cr_assert_eq(hs_hubproto_json_to_msgpack(json, strlen(json), &mp), 0, "%s", json);
    cr_assert_eq(hs_hubproto_msgpack_to_json(mp.p, mp.len, &back), 0, "%s", json);
    cr_assert(back.len == strlen(want) && memcmp(back.p, want, back.len) == 0, "%s -> %.*s, want %s",
              json, (int)back.len, (const char *)back.p, want);
    hs_hubbuf_free(&mp);
    hs_hubbuf_free(&back);
}

Test(hubproto, json_msgpack_round_trips)
{
    roundtrip("{\"a\":{\"b\":[1,-2,\"x\"]},\"e\":{},\"l\":[]}", "{\"a\":{\"b\":[1,-2,\"x\"]},\"e\":{},\"l\":[]}");
    roundtrip("\"\\u00e9\\ud834\\udd1e\"", "\"\xc3\xa9\xf0\x9d\x84\x9e\"");
    roundtrip("[9223372036854775807,-9223372036854775808,18446744073709551615]",
              "[9223372036854775807,-9223372036854775808,18446744073709551615]");
    roundtrip("[1.5,1e300,-0.25,true,false,null]", "[1.5,1e+300,-0.25,true,false,null]");
    roundtrip("\"tab\\tquote\\\"\"", "\"tab\\tquote\\\"\"");
    hs_hubbuf_t b = {0};
    cr_assert_eq(hs_hubproto_json_to_msgpack("[1,", 3, &b), HS_EINVAL);
    static const uint8_t bin[] = {0xc4, 0x03, 'a', 'b', 'c'};
    cr_assert_eq(hs_hubproto_msgpack_to_json(bin, sizeof(bin), &b), 0);
    EXPECT(&b, "\"YWJj\"");
    b.len = 0;
    static const uint8_t nan[] = {0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(hs_hubproto_msgpack_to_json(nan, sizeof(nan), &b), HS_EINVAL);
    static const uint8_t ext[] = {0xd4, 0x01, 0x00};
    cr_assert_eq(hs_hubproto_msgpack_to_json(ext, sizeof(ext), &b), HS_EINVAL);
    hs_hubbuf_free(&b);
}

Test(hubproto, random_mutations_never_crash)
{
    static const char *seeds[] = {
        "{\"type\":1,\"invocationId\":\"0\",\"target\":\"Publish\",\"arguments\":[\"s\",{\"type\":\"t\",\"data\":[1,2.5,\"x\",{\"k\":null}]}]}\x1e",
        "\x0f\x95\x01\x80\xa1\x30\xa4\x45\x63\x68\x6f\x91\x81\xa1\x61\x01",
        "\x0d\x96\x01\x80\xc0\xa1\x53\x91\xcd\x01\x00\x91\xa1\x39",
        "\x08\x95\x03\x80\xa1\x31\x01\xa1\x65",
    };
    static const size_t seed_len[] = {0, 16, 14, 9};
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    uint8_t buf[256];
    for (int iter = 0; iter < 100000; iter++) {
        size_t k = (size_t)iter % 4;
        size_t n = seed_len[k] ? seed_len[k] : strlen(seeds[k]);
        memcpy(buf, seeds[k], n);
        int flips = 1 + (int)(rng % 4);
        for (int f = 0; f < flips; f++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            size_t at = (size_t)(rng % n);
            switch ((rng >> 32) % 3) {
            case 0: buf[at] = (uint8_t)(rng >> 40); break;
            case 1: n = at ? at : 1; break;                      /* truncate */
            default: buf[at] ^= (uint8_t)(1u << ((rng >> 48) % 8)); break;
            }
        }
        hs_hubfmt_t fmt = k == 0 ? HS_HUB_JSON : HS_HUB_MSGPACK;
        size_t off = 0;
        while (off < n) {
            const uint8_t *rec;
            size_t rl, used;
            if (hs_hubproto_next(fmt, buf + off, n - off, 200, &rec, &rl, &used) != 1)
                break;
            hs_hubmsg_t m;
            parse(fmt, rec, rl, &m);
            off += used;
        }
    }
    hs_hubbuf_free(&scratch);
}
