/*
 * The body of the two SignalR hub protocol targets (fuzz_hubproto_json.c and
 * fuzz_hubproto_msgpack.c), which differ only in the record format.
 *
 * The input is what a client sends on one connection: the handshake (always JSON, ending in
 * 0x1E, as server/signalr/hub.c cuts it) and then records in the target's format, cut with
 * hs_hubproto_next (max 1 MiB). An input without a 0x1E in the MessagePack target has no
 * handshake: all of it is MessagePack records (the fuzzer need not find the separator first).
 * The handshake goes through hs_hubproto_parse_handshake, every other record through
 * hs_hubproto_parse with one reused scratch buffer. Checked (abort on failure):
 *  - hs_hubproto_next: the record lies inside the input, consumed covers it plus its
 *    separator / prefix, and is never 0;
 *  - the handshake's protocol name is NUL-terminated within the buffer;
 *  - a parsed message honours hubproto.h: ids and targets NUL-terminated, valid UTF-8, without
 *    NUL, within their limits; invocations have a non-empty target and a JSON array of
 *    arguments; items / results are one valid JSON value; stream item and cancel have an id;
 *  - a refused record comes with a reason.
 * And the transcoders (round_trip_* below), on each record's JSON (JSON target) or on the
 * whole input and each record (MessagePack target).
 */
#ifndef HS_FUZZ_HUBPROTO_H
#define HS_FUZZ_HUBPROTO_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "proto/hubproto.h"
#include "proto/json.h"
#include "tests/fuzz/fuzz_common.h"

#define FZ_HUB_MAX ((size_t)1 << 20)

/* A C string held in a fixed array: NUL within it, valid UTF-8 */
static void check_cstr(const char *s, size_t cap)
{
    const char *nul = memchr(s, '\0', cap);
    CHECK(nul != NULL);
    CHECK(fz_utf8_valid((const uint8_t *)s, (size_t)(nul - s)));
}

/* One valid JSON value of exactly n bytes (white space around it allowed). */
static void check_json_value(const char *p, size_t n, hs_json_type_t want)
{
    hs_json_span_t v;
    CHECK(p != NULL);
    CHECK(hs_json_parse(p, n, &v, NULL, 0) == 0);
    if (want != HS_JSON_INVALID)
        CHECK(v.type == want);
}

static void check_msg(const hs_hubmsg_t *m)
{
    check_cstr(m->id, sizeof m->id);
    check_cstr(m->target, sizeof m->target);
    CHECK(m->nstream_ids <= HS_HUB_STREAMIDS_MAX);
    for (uint32_t i = 0; i < m->nstream_ids; i++)
        check_cstr(m->stream_ids[i], sizeof m->stream_ids[i]);
    if (m->args)
        check_json_value(m->args, m->args_len, HS_JSON_ARRAY);
    if (m->item)
        check_json_value(m->item, m->item_len, HS_JSON_INVALID);
    if (m->error) {
        /* NUL-terminated in scratch; a MessagePack error text may hold NULs, so only the part
         * up to the first one is a C string, and that part is valid UTF-8 */
        CHECK(fz_utf8_valid((const uint8_t *)m->error, strlen(m->error)));
    }
    switch (m->type) {
    case HS_HUBMSG_INVOCATION:
    case HS_HUBMSG_STREAM_INVOCATION:
        CHECK(m->target[0] != '\0' && m->args != NULL);
        if (m->type == HS_HUBMSG_STREAM_INVOCATION)
            CHECK(m->has_id);
        break;
    case HS_HUBMSG_STREAM_ITEM:
        CHECK(m->has_id && m->item != NULL);
        break;
    case HS_HUBMSG_COMPLETION:
        CHECK(m->has_id && !(m->item && m->error));
        break;
    case HS_HUBMSG_CANCEL_INVOCATION:
        CHECK(m->has_id);
        break;
    default:
        break;
    }
    if (!m->has_id)
        CHECK(m->id[0] == '\0');
}

/*
 * "-0" (a negative zero double, printed by hs_hubproto_msgpack_to_json) reads back as the
 * integer 0 (hs_hubproto_json_to_msgpack: "integers that fit int64 -> int"): the one value the
 * round trip changes. Returns a heap copy of JSON text j with every "-0" number token turned
 * into "0" (strings untouched; an exponent's "e-05" is not a token).
 */
static char *normalize_neg_zero(const char *j, size_t n, size_t *out_n)
{
    char *o = fz_alloc(n);
    size_t k = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = j[i];
        if (in_str) {
            o[k++] = c;
            if (c == '\\' && i + 1 < n)
                o[k++] = j[++i];
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"')
            in_str = true;
        if (c == '-' && i + 1 < n && j[i + 1] == '0' &&
            (i == 0 || (j[i - 1] != 'e' && j[i - 1] != 'E'))) {
            char next = i + 2 < n ? j[i + 2] : '\0';
            if (!(next >= '0' && next <= '9') && next != '.' && next != 'e' && next != 'E')
                continue; /* drop the sign */
        }
        o[k++] = c;
    }
    *out_n = k;
    return o;
}

/*
 * JSON -> MessagePack -> JSON, starting from JSON text that hs_hubproto_msgpack_to_json
 * wrote (so canonical: integers as integers, doubles printed to round trip, strings quoted by
 * hs_json_quote). Each step must succeed, the JSON must come back equal up to "-0" -> "0",
 * and the MessagePack of the second JSON must equal the first's.
 */
static void round_trip_canonical(const char *j1, size_t n1)
{
    hs_buf_t m2 = {0}, j2 = {0}, m3 = {0};
    check_json_value(j1, n1, HS_JSON_INVALID);
    CHECK(hs_hubproto_json_to_msgpack(j1, n1, &m2) == 0);
    CHECK(hs_hubproto_msgpack_to_json(m2.p, m2.len, &j2) == 0);
    size_t nn;
    char *norm = normalize_neg_zero(j1, n1, &nn);
    if (!(j2.len == nn && memcmp(j2.p, norm, nn) == 0)) {
        fprintf(stderr, "round trip changed the JSON:\n  %.*s\n  %.*s\n", (int)n1, j1, (int)j2.len,
                (const char *)j2.p);
        CHECK(!"json -> msgpack -> json gives the same JSON");
    }
    free(norm);
    CHECK(hs_hubproto_json_to_msgpack((const char *)j2.p, j2.len, &m3) == 0);
    CHECK(m3.len == m2.len && memcmp(m3.p, m2.p, m2.len) == 0);
    hs_buf_free(&m2);
    hs_buf_free(&j2);
    hs_buf_free(&m3);
}

/*
 * MessagePack value -> JSON, then the canonical round trip. Nothing is asserted about input
 * that is not one whole value (HS_EINVAL, out left as it was).
 */
static void round_trip_from_msgpack(const uint8_t *mp, size_t n)
{
    hs_buf_t j1 = {0};
    /* a non-empty buffer first: a failure must leave what was there */
    CHECK(hs_buf_put(&j1, "x", 1) == 0);
    int rc = hs_hubproto_msgpack_to_json(mp, n, &j1);
    CHECK(rc == 0 || rc == HS_EINVAL);
    if (rc == 0) {
        CHECK(j1.len > 1);
        round_trip_canonical((const char *)j1.p + 1, j1.len - 1);
    } else {
        CHECK(j1.len == 1 && j1.p[0] == 'x');
    }
    hs_buf_free(&j1);
}

/*
 * JSON text (any) -> MessagePack, then as above. A valid JSON value must encode (its
 * MessagePack may still fail to come back: a number beyond double range becomes infinity, and
 * nesting deeper than 32 is refused by the MessagePack side).
 */
static void round_trip_from_json(const char *j, size_t n)
{
    hs_json_span_t v;
    bool valid = hs_json_parse(j, n, &v, NULL, 0) == 0;
    hs_buf_t m = {0};
    int rc = hs_hubproto_json_to_msgpack(j, n, &m);
    CHECK(valid ? rc == 0 : rc == HS_EINVAL);
    if (rc == 0) {
        CHECK(m.len > 0);
        round_trip_from_msgpack(m.p, m.len);
    } else {
        CHECK(m.len == 0);
    }
    hs_buf_free(&m);
}

static void handshake(const uint8_t *rec, size_t len)
{
    char *proto = fz_alloc(64);
    int version = 0;
    int rc = hs_hubproto_parse_handshake(rec, len, proto, 64, &version);
    CHECK(rc == 0 || rc == HS_EINVAL);
    if (rc == 0) {
        CHECK(memchr(proto, '\0', 64) != NULL);
        /* a one-byte buffer gets the empty string */
        char one[1] = {'x'};
        int v2;
        CHECK(hs_hubproto_parse_handshake(rec, len, one, 1, &v2) == 0 && one[0] == '\0' &&
              v2 == version);
    }
    free(proto);
}

static void record(hs_hubfmt_t fmt, const uint8_t *rec, size_t len, hs_buf_t *scratch)
{
    /* an exact-size copy, so ASan sees a read past the record (hs_hubproto_next hands out
     * records inside the input, with more input after them) */
    uint8_t *r = fz_alloc(len);
    if (len)
        memcpy(r, rec, len);
    hs_hubmsg_t m;
    char why[256];
    memset(why, 'x', sizeof why);
    int rc = hs_hubproto_parse(fmt, r, len, &m, scratch, why, sizeof why);
    CHECK(rc == 0 || rc == HS_EINVAL);
    if (rc == 0)
        check_msg(&m);
    else
        CHECK(why[0] != '\0' && memchr(why, '\0', sizeof why) != NULL);
    if (fmt == HS_HUB_JSON)
        round_trip_from_json((const char *)r, len);
    else
        round_trip_from_msgpack(r, len);
    free(r);
}

static void fz_hubproto(hs_hubfmt_t fmt, const uint8_t *data, size_t size)
{
    hs_buf_t scratch;
    hs_buf_init(&scratch);
    size_t off = 0;
    bool handshaken = false;
    if (fmt == HS_HUB_MSGPACK) {
        round_trip_from_msgpack(data, size);
        if (!memchr(data, HS_HUB_RS, size))
            handshaken = true; /* no handshake: all records */
    }
    while (off < size) {
        const uint8_t *rec = NULL;
        size_t rl = 0, used = 0;
        hs_hubfmt_t f = handshaken ? fmt : HS_HUB_JSON;
        int rc = hs_hubproto_next(f, data + off, size - off, FZ_HUB_MAX, &rec, &rl, &used);
        CHECK(rc == 1 || rc == 0 || rc == HS_ETOOLARGE || rc == HS_EINVAL);
        if (rc != 1) {
            CHECK(!(f == HS_HUB_JSON && rc == HS_EINVAL));
            break;
        }
        CHECK(used >= 1 && used <= size - off && rl < used && rl <= FZ_HUB_MAX);
        CHECK(rec >= data + off && rec + rl <= data + off + used);
        if (f == HS_HUB_JSON)
            CHECK(rec == data + off && used == rl + 1 && rec[rl] == HS_HUB_RS &&
                  !memchr(rec, HS_HUB_RS, rl));
        else
            CHECK(rec + rl == data + off + used && used - rl <= 5);
        off += used;
        if (!handshaken) {
            handshake(rec, rl);
            handshaken = true;
        } else {
            record(fmt, rec, rl, &scratch);
        }
    }
    hs_buf_free(&scratch);
    CHECK(scratch.p == NULL && scratch.len == 0 && scratch.cap == 0);
}

#endif
