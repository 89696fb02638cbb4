/*
 * JSON -> MessagePack in one pass (hs_hubproto_json_to_msgpack, hubproto.h): what every event a
 * MessagePack subscriber receives is made from, once per event. The scanner's steps
 * (json_scan.h) validate as they go and each value is written as soon as it is read; before,
 * the text was validated whole and then walked by spans, which scanned a value nested k deep
 * k + 2 times.
 *
 * An object's or array's count is known only at its end: one byte is kept for it (the fix
 * header of up to 15 entries) and a larger count moves what follows by 2 or 4 bytes. The output
 * is byte for byte what msgpack-c's packer makes of the same value: the smallest encoding of
 * each integer and length, a number with a fraction or an exponent as a float 64, an integer
 * past int64 as uint64 if it fits and as a float 64 if not.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "proto/hubproto.h"
#include "proto/json.h"
#include "proto/json_scan.h"

typedef struct conv {
    hs_jscan_t c;
    hs_buf_t *out;
    int rc; /* 0, or HS_EINVAL / HS_ENOMEM once failed */
} conv_t;

/* Room for n more bytes at out->p + out->len (valid until the next call). */
static uint8_t *room(conv_t *v, size_t n)
{
    hs_buf_t *o = v->out;
    if (o->cap - o->len < n && hs_buf_reserve(o, n)) {
        v->rc = HS_ENOMEM;
        return NULL;
    }
    return o->p + o->len;
}

static void refuse(conv_t *v)
{
    v->rc = HS_EINVAL;
}

static void be16(uint8_t *p, uint64_t x)
{
    p[0] = (uint8_t)(x >> 8);
    p[1] = (uint8_t)x;
}

static void be32(uint8_t *p, uint64_t x)
{
    be16(p, x >> 16);
    be16(p + 2, x);
}

static void be64(uint8_t *p, uint64_t x)
{
    be32(p, x >> 32);
    be32(p + 4, x);
}

static size_t enc_uint(uint8_t *p, uint64_t u)
{
    if (u < 1u << 7) {
        p[0] = (uint8_t)u;
        return 1;
    }
    if (u < 1u << 8) {
        p[0] = 0xcc;
        p[1] = (uint8_t)u;
        return 2;
    }
    if (u < 1u << 16) {
        p[0] = 0xcd;
        be16(p + 1, u);
        return 3;
    }
    if (u < 1ull << 32) {
        p[0] = 0xce;
        be32(p + 1, u);
        return 5;
    }
    p[0] = 0xcf;
    be64(p + 1, u);
    return 9;
}

static size_t enc_int(uint8_t *p, int64_t d)
{
    if (d >= 1 << 7)
        return enc_uint(p, (uint64_t)d);
    if (d >= -(1 << 5)) { /* a fixint, positive or negative */
        p[0] = (uint8_t)d;
        return 1;
    }
    if (d >= -(1 << 7)) {
        p[0] = 0xd0;
        p[1] = (uint8_t)d;
        return 2;
    }
    if (d >= -(1 << 15)) {
        p[0] = 0xd1;
        be16(p + 1, (uint64_t)d);
        return 3;
    }
    if (d >= -(1ll << 31)) {
        p[0] = 0xd2;
        be32(p + 1, (uint64_t)d);
        return 5;
    }
    p[0] = 0xd3;
    be64(p + 1, (uint64_t)d);
    return 9;
}

/* hubproto.h; also the /eventstreamhub MessagePack arrays' strings (server/signalr/subs.c) */
size_t hs_msgpack_str_header(uint8_t *p, size_t n)
{
    if (n < 32) {
        p[0] = (uint8_t)(0xa0 | n);
        return 1;
    }
    if (n < 256) {
        p[0] = 0xd9;
        p[1] = (uint8_t)n;
        return 2;
    }
    if (n < 65536) {
        p[0] = 0xda;
        be16(p + 1, n);
        return 3;
    }
    p[0] = 0xdb;
    be32(p + 1, n);
    return 5;
}

static void string_value(conv_t *v)
{
    hs_jscan_t *c = &v->c;
    size_t start = c->i;
    bool esc;
    if (hs_jscan_string(c, &esc)) {
        refuse(v);
        return;
    }
    size_t raw = c->i - start - 2;
    if (raw > UINT32_MAX) {
        refuse(v);
        return;
    }
    uint8_t *p = room(v, 5 + raw);
    if (!p)
        return;
    if (!esc) { /* the text between the quotes is the string */
        size_t hl = hs_msgpack_str_header(p, raw);
        memcpy(p + hl, c->s + start + 1, raw);
        v->out->len += hl + raw;
        return;
    }
    /* unescaped after the header for raw bytes (an unescaped string is never longer), then
     * moved up to the header its own length takes */
    uint8_t tmp[5];
    size_t hmax = hs_msgpack_str_header(tmp, raw);
    const hs_json_span_t span = {c->s + start, c->i - start, HS_JSON_STRING};
    long n = hs_json_unescape(&span, (char *)p + hmax, raw);
    if (n < 0) {
        refuse(v);
        return;
    }
    size_t hl = hs_msgpack_str_header(p, (size_t)n);
    if (hl < hmax)
        memmove(p + hl, p + hmax, (size_t)n);
    v->out->len += hl + (size_t)n;
}

static void number_value(conv_t *v)
{
    hs_jscan_t *c = &v->c;
    size_t start = c->i;
    bool whole;
    if (hs_jscan_number(c, &whole)) {
        refuse(v);
        return;
    }
    const hs_json_span_t num = {c->s + start, c->i - start, HS_JSON_NUMBER};
    int64_t i;
    if (whole && hs_json_int64(&num, &i)) {
        uint8_t *p = room(v, 9);
        if (p)
            v->out->len += enc_int(p, i);
        return;
    }
    /* the span is not NUL-terminated (it may end the caller's buffer): copied for strto* */
    char small[64];
    char *tmp = num.n < sizeof(small) ? small : malloc(num.n + 1);
    if (!tmp) {
        v->rc = HS_ENOMEM;
        return;
    }
    memcpy(tmp, num.p, num.n);
    tmp[num.n] = '\0';
    uint8_t *p = room(v, 9);
    if (p) {
        char *end = tmp;
        errno = 0;
        unsigned long long u = whole && tmp[0] != '-' ? strtoull(tmp, &end, 10) : 0;
        if (u && !*end && !errno) { /* between INT64_MAX and UINT64_MAX */
            v->out->len += enc_uint(p, u);
        } else {
            double d = strtod(tmp, NULL);
            uint64_t bits;
            memcpy(&bits, &d, sizeof(bits));
            p[0] = 0xcb;
            be64(p + 1, bits);
            v->out->len += 9;
        }
    }
    if (tmp != small)
        free(tmp);
}

static void value(conv_t *v, int depth);

/* An object (map) or an array, c->i at its opening bracket. */
static void container(conv_t *v, int depth, bool map)
{
    hs_jscan_t *c = &v->c;
    char close = map ? '}' : ']';
    if (depth >= HS_JSON_MAX_DEPTH || !room(v, 1)) {
        if (!v->rc)
            refuse(v);
        return;
    }
    size_t at = v->out->len++; /* the header's first byte */
    uint64_t count = 0;
    c->i++;
    hs_jscan_ws(c);
    if (c->i < c->n && c->s[c->i] == close) {
        c->i++;
    } else {
        for (;;) {
            if (map) {
                hs_jscan_ws(c);
                if (c->i >= c->n || c->s[c->i] != '"')
                    goto bad;
                string_value(v);
                if (v->rc)
                    return;
                hs_jscan_ws(c);
                if (c->i >= c->n || c->s[c->i] != ':')
                    goto bad;
                c->i++;
            }
            value(v, depth + 1);
            if (v->rc)
                return;
            count++;
            hs_jscan_ws(c);
            if (c->i < c->n && c->s[c->i] == ',') {
                c->i++;
                continue;
            }
            if (c->i < c->n && c->s[c->i] == close) {
                c->i++;
                break;
            }
            goto bad;
        }
    }
    uint8_t head[5];
    size_t hl;
    if (count < 16) {
        head[0] = (uint8_t)((map ? 0x80 : 0x90) | count);
        hl = 1;
    } else if (count < 65536) {
        head[0] = map ? 0xde : 0xdc;
        be16(head + 1, count);
        hl = 3;
    } else if (count <= UINT32_MAX) {
        head[0] = map ? 0xdf : 0xdd;
        be32(head + 1, count);
        hl = 5;
    } else {
        goto bad;
    }
    if (hl > 1) { /* what follows the kept byte moves up to make room */
        if (!room(v, hl - 1))
            return;
        hs_buf_t *o = v->out;
        memmove(o->p + at + hl, o->p + at + 1, o->len - at - 1);
        o->len += hl - 1;
    }
    memcpy(v->out->p + at, head, hl);
    return;
bad:
    refuse(v);
}

static void literal(conv_t *v, const char *lit, size_t l, uint8_t code)
{
    uint8_t *p;
    if (hs_jscan_literal(&v->c, lit, l))
        refuse(v);
    else if ((p = room(v, 1)) != NULL) {
        p[0] = code;
        v->out->len++;
    }
}

static void value(conv_t *v, int depth)
{
    hs_jscan_t *c = &v->c;
    hs_jscan_ws(c);
    if (c->i >= c->n) {
        refuse(v);
        return;
    }
    char ch = c->s[c->i];
    switch (ch) {
    case '{':
    case '[':
        container(v, depth, ch == '{');
        return;
    case '"':
        string_value(v);
        return;
    case 't':
        literal(v, "true", 4, 0xc3);
        return;
    case 'f':
        literal(v, "false", 5, 0xc2);
        return;
    case 'n':
        literal(v, "null", 4, 0xc0);
        return;
    default:
        if (ch == '-' || (ch >= '0' && ch <= '9'))
            number_value(v);
        else
            refuse(v);
        return;
    }
}

int hs_hubproto_json_to_msgpack(const char *json, size_t len, hs_buf_t *out)
{
    conv_t v = {{json, len, 0, NULL}, out, 0};
    size_t before = out->len;
    value(&v, 0);
    if (!v.rc) {
        hs_jscan_ws(&v.c);
        if (v.c.i != v.c.n)
            refuse(&v); /* trailing characters */
    }
    if (v.rc)
        out->len = before;
    return v.rc;
}
