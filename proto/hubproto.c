/* The SignalR hub protocol codec (see hubproto.h): JSON through proto/json.c, MessagePack
 * through msgpack-c. */
#include "proto/hubproto.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "proto/json.h"
#include "util/utf8.h"

#define MAX_DEPTH 64
/* msgpack-c's C unpacker has a fixed stack of 32 containers (MSGPACK_EMBED_STACK_SIZE) and
 * reports a deeper one as out of memory; the pre-scan refuses those as malformed instead. */
#define MP_MAX_NEST 32

/* ---- buffers ---- */

void hs_hubbuf_init(hs_hubbuf_t *b)
{
    b->p = NULL;
    b->len = b->cap = 0;
}

void hs_hubbuf_free(hs_hubbuf_t *b)
{
    free(b->p);
    hs_hubbuf_init(b);
}

int hs_hubbuf_reserve(hs_hubbuf_t *b, size_t more)
{
    if (more <= b->cap - b->len)
        return 0;
    if (b->len > SIZE_MAX / 4 || more > SIZE_MAX / 4 - b->len)
        return HS_ENOMEM;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->len + more)
        nc *= 2;
    uint8_t *p = realloc(b->p, nc);
    if (!p)
        return HS_ENOMEM;
    b->p = p;
    b->cap = nc;
    return 0;
}

int hs_hubbuf_put(hs_hubbuf_t *b, const void *p, size_t n)
{
    if (!n)
        return 0;
    if (hs_hubbuf_reserve(b, n))
        return HS_ENOMEM;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static int put_str(hs_hubbuf_t *b, const char *s)
{
    return hs_hubbuf_put(b, s, strlen(s));
}

/* Appends s as a JSON string literal. */
static int put_quoted(hs_hubbuf_t *b, const char *s, size_t n)
{
    if (!n) /* s may be NULL (msgpack-c's empty string) */
        return hs_hubbuf_put(b, "\"\"", 2);
    if (hs_hubbuf_reserve(b, hs_json_quoted_len(s, n)))
        return HS_ENOMEM;
    b->len += hs_json_quote(s, n, (char *)b->p + b->len);
    return 0;
}

size_t hs_hubproto_varint(uint8_t out[5], size_t n)
{
    size_t k = 0;
    do {
        uint8_t byte = n & 0x7f;
        n >>= 7;
        out[k++] = n ? (uint8_t)(byte | 0x80) : byte;
    } while (n && k < 5);
    return k;
}

/* ---- cutting records ---- */

int hs_hubproto_next(hs_hubfmt_t fmt, const uint8_t *buf, size_t len, size_t max,
                     const uint8_t **rec, size_t *rec_len, size_t *consumed)
{
    if (fmt == HS_HUB_JSON) {
        size_t scan = max < SIZE_MAX && len > max + 1 ? max + 1 : len;
        const uint8_t *rs = memchr(buf, HS_HUB_RS, scan);
        if (!rs)
            return len > max ? HS_ETOOLARGE : 0;
        *rec = buf;
        *rec_len = (size_t)(rs - buf);
        *consumed = *rec_len + 1;
        return 1;
    }
    uint64_t n = 0;
    size_t i = 0;
    for (;; i++) {
        if (i == 5)
            return HS_EINVAL; /* a fifth byte with the continuation bit */
        if (i == len)
            return 0;
        n |= (uint64_t)(buf[i] & 0x7f) << (7 * i);
        if (!(buf[i] & 0x80))
            break;
    }
    i++;
    if (n > 0x7fffffffu)
        return HS_EINVAL;
    if (n > max)
        return HS_ETOOLARGE;
    if (len - i < n)
        return 0;
    *rec = buf + i;
    *rec_len = (size_t)n;
    *consumed = i + (size_t)n;
    return 1;
}

/* ---- handshake ---- */

int hs_hubproto_parse_handshake(const uint8_t *rec, size_t len, char *protocol, size_t cap,
                                int *version)
{
    hs_json_span_t obj, p, v;
    int64_t ver;
    if (hs_json_parse((const char *)rec, len, &obj, NULL, 0) || obj.type != HS_JSON_OBJECT ||
        !hs_json_object_get(&obj, "protocol", false, &p) || p.type != HS_JSON_STRING ||
        !hs_json_object_get(&obj, "version", false, &v) || v.type != HS_JSON_NUMBER ||
        !hs_json_int64(&v, &ver) || ver < INT_MIN || ver > INT_MAX || !cap)
        return HS_EINVAL;
    /* No protocol name is anywhere near this long; refusing one keeps this allocation-free
     * (hs_json_unescape will not truncate). */
    char tmp[256];
    long n = hs_json_unescape(&p, tmp, sizeof(tmp));
    /* a NUL (\u0000) would cut the name short: "json\u0000x" is not "json" */
    if (n < 0 || memchr(tmp, '\0', (size_t)n))
        return HS_EINVAL;
    size_t k = (size_t)n < cap - 1 ? (size_t)n : cap - 1;
    memcpy(protocol, tmp, k);
    protocol[k] = '\0';
    *version = (int)ver;
    return 0;
}

/* ---- UTF-8 and base64 ---- */

static int put_base64(hs_hubbuf_t *b, const uint8_t *s, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (hs_hubbuf_reserve(b, (n + 2) / 3 * 4 + 2))
        return HS_ENOMEM;
    char *o = (char *)b->p + b->len;
    *o++ = '"';
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = tbl[v >> 18 & 63];
        *o++ = tbl[v >> 12 & 63];
        *o++ = tbl[v >> 6 & 63];
        *o++ = tbl[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        *o++ = tbl[v >> 18 & 63];
        *o++ = tbl[v >> 12 & 63];
        *o++ = i + 1 < n ? tbl[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o++ = '"';
    b->len = (size_t)((uint8_t *)o - b->p);
    return 0;
}

/* ---- MessagePack → JSON ---- */

/*
 * msgpack-c allocates an array's or map's element storage from the declared count before it
 * has seen the elements, so a 6-byte record claiming 2^32 elements would ask for ~100 GiB. This
 * pre-scan walks the encoding and refuses counts that the remaining bytes cannot hold (each
 * element takes at least one byte) and more than MP_MAX_NEST nested arrays / maps.
 * Returns the length of the one value at p, or 0 if malformed / truncated / too deep.
 */
static size_t scan_value(const uint8_t *p, size_t n, int depth)
{
    if (!n)
        return 0;
    uint8_t c = p[0];
    size_t hdr = 1, body = 0, count = 0; /* count: elements (maps: 2 per entry) */
    bool box = (c & 0xe0) == 0x80 || (c >= 0xdc && c <= 0xdf); /* array or map */
    if (box && depth >= MP_MAX_NEST)
        return 0;
#define NEED(k)                                                                                \
    do {                                                                                       \
        if (n < (k))                                                                           \
            return 0;                                                                          \
    } while (0)
#define BE16(q) ((size_t)(q)[0] << 8 | (q)[1])
#define BE32(q) ((size_t)(q)[0] << 24 | (size_t)(q)[1] << 16 | (size_t)(q)[2] << 8 | (q)[3])
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
        return 1;
    } else if ((c & 0xf0) == 0x80) {
        count = (size_t)(c & 0x0f) * 2;
    } else if ((c & 0xf0) == 0x90) {
        count = c & 0x0f;
    } else if ((c & 0xe0) == 0xa0) {
        body = c & 0x1f;
    } else {
        switch (c) {
        case 0xc4: case 0xd9: NEED(2); hdr = 2; body = p[1]; break;
        case 0xc5: case 0xda: NEED(3); hdr = 3; body = BE16(p + 1); break;
        case 0xc6: case 0xdb: NEED(5); hdr = 5; body = BE32(p + 1); break;
        case 0xc7: NEED(3); hdr = 3; body = (size_t)p[1] + 0; break; /* ext8: type byte in hdr */
        case 0xc8: NEED(4); hdr = 4; body = BE16(p + 1); break;
        case 0xc9: NEED(6); hdr = 6; body = BE32(p + 1); break;
        case 0xca: case 0xce: case 0xd2: body = 4; break;
        case 0xcb: case 0xcf: case 0xd3: body = 8; break;
        case 0xcc: case 0xd0: body = 1; break;
        case 0xcd: case 0xd1: body = 2; break;
        case 0xd4: body = 2; break;
        case 0xd5: body = 3; break;
        case 0xd6: body = 5; break;
        case 0xd7: body = 9; break;
        case 0xd8: body = 17; break;
        case 0xdc: NEED(3); hdr = 3; count = BE16(p + 1); break;
        case 0xdd: NEED(5); hdr = 5; count = BE32(p + 1); break;
        case 0xde: NEED(3); hdr = 3; count = BE16(p + 1) * 2; break;
        case 0xdf: NEED(5); hdr = 5; count = BE32(p + 1) * 2; break;
        default: return 0; /* 0xc1: never used */
        }
    }
    NEED(hdr);
    if (body)
        return n - hdr >= body ? hdr + body : 0;
    if (count > n - hdr)
        return 0;
    size_t off = hdr;
    for (size_t i = 0; i < count; i++) {
        size_t k = scan_value(p + off, n - off, depth + 1);
        if (!k)
            return 0;
        off += k;
    }
    return off;
#undef NEED
#undef BE16
#undef BE32
}

static int obj_to_json(const msgpack_object *o, hs_hubbuf_t *out, int depth)
{
    char num[40];
    int rc;
    if (depth > MAX_DEPTH)
        return HS_EINVAL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return put_str(out, "null");
    case MSGPACK_OBJECT_BOOLEAN:
        return put_str(out, o->via.boolean ? "true" : "false");
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(num, sizeof(num), "%llu", (unsigned long long)o->via.u64);
        return put_str(out, num);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(num, sizeof(num), "%lld", (long long)o->via.i64);
        return put_str(out, num);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        double d = o->via.f64;
        if (!isfinite(d))
            return HS_EINVAL;
        /* %g drops trailing zeros, so 15 digits are the shortest form of any double that has
         * one that short; only subnormals (fewer significant digits) need the search from 1 */
        for (int prec = fpclassify(d) == FP_SUBNORMAL ? 1 : 15; prec <= 17; prec++) {
            snprintf(num, sizeof(num), "%.*g", prec, d);
            if (strtod(num, NULL) == d)
                break;
        }
        /* "1e+300" and "-0" are JSON numbers; keep a float-looking "2" as "2" */
        return put_str(out, num);
    }
    case MSGPACK_OBJECT_STR:
        if (!hs_utf8_valid(o->via.str.ptr, o->via.str.size))
            return HS_EINVAL;
        return put_quoted(out, o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return put_base64(out, (const uint8_t *)o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY:
        if ((rc = put_str(out, "[")))
            return rc;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if ((i && (rc = put_str(out, ","))) ||
                (rc = obj_to_json(&o->via.array.ptr[i], out, depth + 1)))
                return rc;
        }
        return put_str(out, "]");
    case MSGPACK_OBJECT_MAP:
        if ((rc = put_str(out, "{")))
            return rc;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR)
                return HS_EINVAL;
            if ((i && (rc = put_str(out, ","))) || (rc = obj_to_json(&kv->key, out, depth + 1)) ||
                (rc = put_str(out, ":")) || (rc = obj_to_json(&kv->val, out, depth + 1)))
                return rc;
        }
        return put_str(out, "}");
    default:
        return HS_EINVAL; /* ext */
    }
}

/* Unpacks exactly one value spanning the whole input into *o (zone-allocated). */
static int unpack_one(const uint8_t *mp, size_t len, msgpack_zone *z, msgpack_object *o)
{
    if (!len || scan_value(mp, len, 0) != len)
        return HS_EINVAL;
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack((const char *)mp, len, &off, z, o);
    if (r == MSGPACK_UNPACK_NOMEM_ERROR)
        return HS_ENOMEM;
    if (r != MSGPACK_UNPACK_SUCCESS || off != len)
        return HS_EINVAL;
    return 0;
}

int hs_hubproto_msgpack_to_json(const uint8_t *mp, size_t len, hs_hubbuf_t *out)
{
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 2048))
        return HS_ENOMEM;
    msgpack_object o;
    size_t before = out->len;
    int rc = unpack_one(mp, len, &z, &o);
    if (!rc)
        rc = obj_to_json(&o, out, 0);
    if (rc)
        out->len = before;
    msgpack_zone_destroy(&z);
    return rc;
}

/* ---- JSON → MessagePack ---- */

static int pk_write(void *data, const char *buf, size_t len)
{
    return hs_hubbuf_put(data, buf, len) ? -1 : 0;
}

static int pack_str_span(msgpack_packer *pk, const hs_json_span_t *s)
{
    char small[256];
    char *tmp = small;
    size_t cap = s->n; /* the unescaped form is never longer than the escaped one */
    if (cap > sizeof(small) && !(tmp = malloc(cap)))
        return HS_ENOMEM;
    long n = hs_json_unescape(s, tmp, cap < sizeof(small) ? sizeof(small) : cap);
    int rc = n < 0 ? HS_EINVAL
                   : (msgpack_pack_str(pk, (size_t)n) ||
                      msgpack_pack_str_body(pk, tmp, (size_t)n))
                         ? HS_ENOMEM
                         : 0;
    if (tmp != small)
        free(tmp);
    return rc;
}

static int span_to_mp(const hs_json_span_t *v, msgpack_packer *pk)
{
    size_t pos = 0;
    hs_json_span_t k, x;
    switch (v->type) {
    case HS_JSON_OBJECT: {
        size_t n = 0;
        while (hs_json_object_next(v, &pos, &k, &x))
            n++;
        if (msgpack_pack_map(pk, n))
            return HS_ENOMEM;
        pos = 0;
        while (hs_json_object_next(v, &pos, &k, &x)) {
            int rc = pack_str_span(pk, &k);
            if (rc || (rc = span_to_mp(&x, pk)))
                return rc;
        }
        return 0;
    }
    case HS_JSON_ARRAY: {
        if (msgpack_pack_array(pk, hs_json_array_len(v)))
            return HS_ENOMEM;
        while (hs_json_array_next(v, &pos, &x)) {
            int rc = span_to_mp(&x, pk);
            if (rc)
                return rc;
        }
        return 0;
    }
    case HS_JSON_STRING:
        return pack_str_span(pk, v);
    case HS_JSON_NUMBER: {
        int64_t i;
        if (hs_json_int64(v, &i))
            return msgpack_pack_int64(pk, i) ? HS_ENOMEM : 0;
        /* the span is not NUL-terminated (it may end the caller's buffer): copy it */
        char small[64];
        char *tmp = v->n < sizeof(small) ? small : malloc(v->n + 1);
        if (!tmp)
            return HS_ENOMEM;
        memcpy(tmp, v->p, v->n);
        tmp[v->n] = '\0';
        int rc;
        char *end = tmp;
        errno = 0;
        unsigned long long u = strpbrk(tmp, ".eE-") ? 0 : strtoull(tmp, &end, 10);
        if (u && !*end && !errno) /* between INT64_MAX and UINT64_MAX */
            rc = msgpack_pack_uint64(pk, (uint64_t)u);
        else
            rc = msgpack_pack_double(pk, strtod(tmp, NULL));
        if (tmp != small)
            free(tmp);
        return rc ? HS_ENOMEM : 0;
    }
    case HS_JSON_TRUE:
        return msgpack_pack_true(pk) ? HS_ENOMEM : 0;
    case HS_JSON_FALSE:
        return msgpack_pack_false(pk) ? HS_ENOMEM : 0;
    case HS_JSON_NULL:
        return msgpack_pack_nil(pk) ? HS_ENOMEM : 0;
    default:
        return HS_EINVAL;
    }
}

int hs_hubproto_json_to_msgpack(const char *json, size_t len, hs_hubbuf_t *out)
{
    hs_json_span_t v;
    if (hs_json_parse(json, len, &v, NULL, 0))
        return HS_EINVAL;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, pk_write);
    size_t before = out->len;
    int rc = span_to_mp(&v, &pk);
    if (rc)
        out->len = before;
    return rc;
}

/* ---- parsing records ---- */

static int set_id(hs_hubmsg_t *m, const char *s, size_t n, char *why, size_t whylen)
{
    if (n > HS_HUB_ID_MAX) {
        snprintf(why, whylen, "invocation id longer than %d bytes", HS_HUB_ID_MAX);
        return HS_EINVAL;
    }
    if (n) /* msgpack-c gives an empty string a NULL pointer */
        memcpy(m->id, s, n);
    m->id[n] = '\0';
    m->has_id = true;
    return 0;
}

static int json_str(const hs_json_span_t *v, char *out, size_t cap)
{
    if (v->type != HS_JSON_STRING)
        return -1;
    long n = hs_json_unescape(v, out, cap);
    if (n < 0 || (size_t)n >= cap || memchr(out, '\0', (size_t)n)) /* "\u0000" */
        return -1;
    out[n] = '\0';
    return (int)n;
}

static int check(hs_hubmsg_t *m, bool has_target, bool has_args, bool has_item, bool has_seq,
                 char *why, size_t whylen)
{
    switch (m->type) {
    case HS_HUBMSG_INVOCATION:
    case HS_HUBMSG_STREAM_INVOCATION:
        if (!has_target || !m->target[0]) {
            snprintf(why, whylen, "an invocation needs a non-empty target");
            return HS_EINVAL;
        }
        if (!has_args) {
            snprintf(why, whylen, "an invocation needs an arguments array");
            return HS_EINVAL;
        }
        if (m->type == HS_HUBMSG_STREAM_INVOCATION && !m->has_id) {
            snprintf(why, whylen, "a stream invocation needs an invocationId");
            return HS_EINVAL;
        }
        return 0;
    case HS_HUBMSG_STREAM_ITEM:
        if (!m->has_id || !has_item) {
            snprintf(why, whylen, "a stream item needs an invocationId and an item");
            return HS_EINVAL;
        }
        return 0;
    case HS_HUBMSG_COMPLETION:
    case HS_HUBMSG_CANCEL_INVOCATION:
        if (!m->has_id) {
            snprintf(why, whylen, "message type %d needs an invocationId", m->type);
            return HS_EINVAL;
        }
        if (m->type == HS_HUBMSG_COMPLETION && m->item && m->error) {
            snprintf(why, whylen, "a completion has both a result and an error");
            return HS_EINVAL;
        }
        return 0;
    case HS_HUBMSG_ACK:
    case HS_HUBMSG_SEQUENCE:
        if (!has_seq) {
            snprintf(why, whylen, "message type %d needs an integer sequenceId", m->type);
            return HS_EINVAL;
        }
        return 0;
    }
    return 0;
}

static int parse_json(const uint8_t *rec, size_t len, hs_hubmsg_t *m, hs_hubbuf_t *scratch,
                      char *why, size_t whylen)
{
    hs_json_span_t obj, k, v;
    char reason[128];
    if (hs_json_parse((const char *)rec, len, &obj, reason, sizeof(reason))) {
        snprintf(why, whylen, "malformed JSON: %s", reason);
        return HS_EINVAL;
    }
    if (obj.type != HS_JSON_OBJECT) {
        snprintf(why, whylen, "a message must be a JSON object");
        return HS_EINVAL;
    }
    bool has_type = false, has_target = false, has_args = false, has_seq = false;
    hs_json_span_t err = {0}, item = {0}, result = {0}; /* which one counts depends on type */
    bool has_err = false;
    size_t pos = 0;
    while (hs_json_object_next(&obj, &pos, &k, &v)) {
        char key[32];
        if (json_str(&k, key, sizeof(key)) < 0)
            continue; /* a long unknown key */
        int64_t i;
        if (!strcmp(key, "type")) {
            if (v.type != HS_JSON_NUMBER || !hs_json_int64(&v, &i) || i < INT_MIN || i > INT_MAX)
                goto bad_type;
            m->type = (int)i;
            has_type = true;
        } else if (!strcmp(key, "invocationId")) {
            if (v.type == HS_JSON_NULL)
                continue;
            char id[HS_HUB_ID_MAX + 2];
            int n = json_str(&v, id, sizeof(id));
            if (n < 0) {
                snprintf(why, whylen, "invocationId must be a string of at most %d bytes",
                         HS_HUB_ID_MAX);
                return HS_EINVAL;
            }
            if (set_id(m, id, (size_t)n, why, whylen))
                return HS_EINVAL;
        } else if (!strcmp(key, "target")) {
            if (json_str(&v, m->target, sizeof(m->target)) < 0) {
                snprintf(why, whylen, "target must be a string of at most %d bytes",
                         HS_HUB_TARGET_MAX);
                return HS_EINVAL;
            }
            has_target = true;
        } else if (!strcmp(key, "arguments")) {
            if (v.type != HS_JSON_ARRAY) {
                snprintf(why, whylen, "arguments must be an array");
                return HS_EINVAL;
            }
            m->args = v.p;
            m->args_len = v.n;
            has_args = true;
        } else if (!strcmp(key, "streamIds")) {
            if (v.type == HS_JSON_NULL)
                continue;
            if (v.type != HS_JSON_ARRAY || hs_json_array_len(&v) > HS_HUB_STREAMIDS_MAX) {
                snprintf(why, whylen, "streamIds must be an array of at most %d strings",
                         HS_HUB_STREAMIDS_MAX);
                return HS_EINVAL;
            }
            size_t ap = 0;
            hs_json_span_t it;
            m->nstream_ids = 0;
            while (hs_json_array_next(&v, &ap, &it))
                if (json_str(&it, m->stream_ids[m->nstream_ids++], HS_HUB_ID_MAX + 1) < 0) {
                    snprintf(why, whylen, "streamIds must hold short strings");
                    return HS_EINVAL;
                }
        } else if (!strcmp(key, "item")) {
            item = v;
        } else if (!strcmp(key, "result")) {
            result = v;
        } else if (!strcmp(key, "error")) {
            if (v.type == HS_JSON_NULL)
                continue;
            if (v.type != HS_JSON_STRING) {
                snprintf(why, whylen, "error must be a string");
                return HS_EINVAL;
            }
            err = v;
            has_err = true;
        } else if (!strcmp(key, "allowReconnect")) {
            m->allow_reconnect = v.type == HS_JSON_TRUE;
        } else if (!strcmp(key, "sequenceId")) {
            if (v.type != HS_JSON_NUMBER || !hs_json_int64(&v, &m->sequence_id)) {
                snprintf(why, whylen, "sequenceId must be an integer");
                return HS_EINVAL;
            }
            has_seq = true;
        }
    }
    if (!has_type) {
    bad_type:
        snprintf(why, whylen, "a message needs a numeric type");
        return HS_EINVAL;
    }
    const hs_json_span_t *val = m->type == HS_HUBMSG_STREAM_ITEM ? &item
                                : m->type == HS_HUBMSG_COMPLETION ? &result
                                                                  : NULL;
    bool has_item = val && val->p; /* "result":null is a null result, not a void one */
    if (has_item) {
        m->item = val->p;
        m->item_len = val->n;
    }
    if (has_err) {
        if (hs_hubbuf_reserve(scratch, err.n + 1))
            return HS_ENOMEM;
        long n = hs_json_unescape(&err, (char *)scratch->p, err.n + 1);
        if (n < 0)
            return HS_EINVAL;
        scratch->p[n] = '\0';
        scratch->len = (size_t)n + 1;
        m->error = (const char *)scratch->p;
    }
    return check(m, has_target, has_args, has_item, has_seq, why, whylen);
}

static bool mp_int(const msgpack_object *o, int64_t *out)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)o->via.u64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return true;
    }
    return false;
}

/* A str that ids, targets and error texts can hold: valid UTF-8 (it may be echoed into JSON
 * or logs) and, unless nul_ok, without NUL (it becomes a C string). */
static bool mp_text(const msgpack_object *o, bool nul_ok)
{
    return o->type == MSGPACK_OBJECT_STR &&
           hs_utf8_valid(o->via.str.ptr, o->via.str.size) &&
           (nul_ok || !o->via.str.size || !memchr(o->via.str.ptr, '\0', o->via.str.size));
}

/* Copies a str checked by mp_text into out (cap > size), NUL-terminated. */
static void mp_copy(const msgpack_object *o, char *out)
{
    if (o->via.str.size) /* msgpack-c gives an empty string a NULL pointer */
        memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = '\0';
}

static int mp_id(const msgpack_object *o, hs_hubmsg_t *m, bool nil_ok, char *why, size_t whylen)
{
    if (o->type == MSGPACK_OBJECT_NIL && nil_ok)
        return 0;
    if (!mp_text(o, false)) {
        snprintf(why, whylen, "invocationId must be a string");
        return HS_EINVAL;
    }
    return set_id(m, o->via.str.ptr, o->via.str.size, why, whylen);
}

/* Appends a str checked by mp_text to scratch, NUL-terminated. */
static int mp_put_text(hs_hubbuf_t *scratch, const msgpack_object *o)
{
    if (hs_hubbuf_put(scratch, o->via.str.ptr, o->via.str.size) || hs_hubbuf_put(scratch, "", 1))
        return HS_ENOMEM;
    return 0;
}

static int parse_mp(const uint8_t *rec, size_t len, hs_hubmsg_t *m, hs_hubbuf_t *scratch,
                    char *why, size_t whylen)
{
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 2048))
        return HS_ENOMEM;
    msgpack_object o;
    int rc = unpack_one(rec, len, &z, &o);
    if (rc) {
        if (rc == HS_EINVAL)
            snprintf(why, whylen, "malformed MessagePack (or nested deeper than %d)",
                     MP_MAX_NEST);
        goto out;
    }
    rc = HS_EINVAL;
    int64_t t;
    if (o.type != MSGPACK_OBJECT_ARRAY || !o.via.array.size || !mp_int(&o.via.array.ptr[0], &t)) {
        snprintf(why, whylen, "a message must be an array starting with its type");
        goto out;
    }
    const msgpack_object *a = o.via.array.ptr;
    uint32_t n = o.via.array.size;
    if (t < INT_MIN || t > INT_MAX) {
        snprintf(why, whylen, "message type out of range");
        goto out;
    }
    m->type = (int)t;
    /* the messages that carry headers: a map (usually empty), ignored */
    if (m->type >= HS_HUBMSG_INVOCATION && m->type <= HS_HUBMSG_CANCEL_INVOCATION &&
        (n < 2 || a[1].type != MSGPACK_OBJECT_MAP)) {
        snprintf(why, whylen, "message type %d needs a headers map", m->type);
        goto out;
    }
    /* offsets into scratch, turned into pointers at the end (scratch may move) */
    size_t args_off = 0, args_len = 0, item_off = 0, item_len = 0, err_off = 0;
    bool has_args = false, has_item = false, has_err = false, has_target = false, has_seq = false;
#define WANT(cond)                                                                             \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            snprintf(why, whylen, "malformed message of type %d", m->type);                    \
            goto out;                                                                          \
        }                                                                                      \
    } while (0)
    switch (m->type) {
    case HS_HUBMSG_INVOCATION:
    case HS_HUBMSG_STREAM_INVOCATION:
        WANT(n == 5 || n == 6);
        if ((rc = mp_id(&a[2], m, m->type == HS_HUBMSG_INVOCATION, why, whylen)))
            goto out;
        rc = HS_EINVAL;
        WANT(mp_text(&a[3], false) && a[3].via.str.size <= HS_HUB_TARGET_MAX);
        mp_copy(&a[3], m->target);
        has_target = true;
        WANT(a[4].type == MSGPACK_OBJECT_ARRAY);
        args_off = scratch->len;
        if ((rc = obj_to_json(&a[4], scratch, 0))) {
            if (rc == HS_EINVAL)
                snprintf(why, whylen, "arguments cannot be represented as JSON");
            goto out;
        }
        args_len = scratch->len - args_off;
        has_args = true;
        rc = HS_EINVAL;
        if (n == 6 && a[5].type != MSGPACK_OBJECT_NIL) {
            WANT(a[5].type == MSGPACK_OBJECT_ARRAY &&
                 a[5].via.array.size <= HS_HUB_STREAMIDS_MAX);
            for (uint32_t i = 0; i < a[5].via.array.size; i++) {
                const msgpack_object *s = &a[5].via.array.ptr[i];
                WANT(mp_text(s, false) && s->via.str.size <= HS_HUB_ID_MAX);
                mp_copy(s, m->stream_ids[i]);
            }
            m->nstream_ids = a[5].via.array.size;
        }
        break;
    case HS_HUBMSG_STREAM_ITEM:
        WANT(n == 4);
        if ((rc = mp_id(&a[2], m, false, why, whylen)))
            goto out;
        item_off = scratch->len;
        if ((rc = obj_to_json(&a[3], scratch, 0)))
            goto out;
        item_len = scratch->len - item_off;
        has_item = true;
        break;
    case HS_HUBMSG_COMPLETION: {
        WANT(n >= 4);
        if ((rc = mp_id(&a[2], m, false, why, whylen)))
            goto out;
        rc = HS_EINVAL;
        int64_t kind;
        WANT(mp_int(&a[3], &kind) && kind >= 1 && kind <= 3);
        WANT((kind == 2 && n == 4) || (kind != 2 && n == 5));
        if (kind == 1) {
            WANT(mp_text(&a[4], true));
            err_off = scratch->len;
            if ((rc = mp_put_text(scratch, &a[4])))
                goto out;
            has_err = true;
        } else if (kind == 3) {
            item_off = scratch->len;
            if ((rc = obj_to_json(&a[4], scratch, 0)))
                goto out;
            item_len = scratch->len - item_off;
            has_item = true;
        }
        break;
    }
    case HS_HUBMSG_CANCEL_INVOCATION:
        WANT(n == 3);
        if ((rc = mp_id(&a[2], m, false, why, whylen)))
            goto out;
        break;
    case HS_HUBMSG_PING:
        break;
    case HS_HUBMSG_CLOSE:
        WANT(n == 2 || n == 3);
        if (a[1].type == MSGPACK_OBJECT_STR) {
            WANT(mp_text(&a[1], true));
            err_off = scratch->len;
            if ((rc = mp_put_text(scratch, &a[1])))
                goto out;
            has_err = true;
        } else {
            WANT(a[1].type == MSGPACK_OBJECT_NIL);
        }
        if (n == 3)
            m->allow_reconnect = a[2].type == MSGPACK_OBJECT_BOOLEAN && a[2].via.boolean;
        break;
    case HS_HUBMSG_ACK:
    case HS_HUBMSG_SEQUENCE:
        WANT(n == 2 && mp_int(&a[1], &m->sequence_id));
        has_seq = true;
        break;
    default:
        break;
    }
#undef WANT
    if (has_args)
        m->args = (const char *)scratch->p + args_off, m->args_len = args_len;
    if (has_item)
        m->item = (const char *)scratch->p + item_off, m->item_len = item_len;
    if (has_err)
        m->error = (const char *)scratch->p + err_off;
    rc = check(m, has_target, has_args, has_item, has_seq, why, whylen);
out:
    if (rc == HS_EINVAL && why && whylen && !why[0])
        snprintf(why, whylen, "a value of message type %d cannot be represented as JSON",
                 m->type);
    msgpack_zone_destroy(&z);
    return rc;
}

int hs_hubproto_parse(hs_hubfmt_t fmt, const uint8_t *rec, size_t len, hs_hubmsg_t *msg,
                      hs_hubbuf_t *scratch, char *why, size_t whylen)
{
    memset(msg, 0, offsetof(hs_hubmsg_t, stream_ids));
    msg->nstream_ids = 0;
    msg->item = NULL;
    msg->error = NULL;
    msg->allow_reconnect = false;
    msg->sequence_id = 0;
    scratch->len = 0;
    if (why && whylen)
        why[0] = '\0';
    return fmt == HS_HUB_JSON ? parse_json(rec, len, msg, scratch, why, whylen)
                              : parse_mp(rec, len, msg, scratch, why, whylen);
}

/* ---- encoders ---- */

/* MessagePack records: the body is packed 5 bytes after `start`, then moved down behind its
 * actual length prefix. */
static int mp_begin(hs_hubbuf_t *out, msgpack_packer *pk, size_t *start)
{
    if (hs_hubbuf_reserve(out, 64))
        return HS_ENOMEM;
    *start = out->len;
    out->len += 5;
    msgpack_packer_init(pk, out, pk_write);
    return 0;
}

static int mp_end(hs_hubbuf_t *out, size_t start, int rc)
{
    if (rc) {
        out->len = start;
        return HS_ENOMEM;
    }
    size_t body = out->len - start - 5;
    uint8_t pre[5];
    size_t k = hs_hubproto_varint(pre, body);
    memmove(out->p + start + k, out->p + start + 5, body);
    memcpy(out->p + start, pre, k);
    out->len = start + k + body;
    return 0;
}

static int pk_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int pk_raw(msgpack_packer *pk, const uint8_t *p, size_t n)
{
    return pk_write(pk->data, (const char *)p, n);
}

static int json_end(hs_hubbuf_t *out, size_t start, int rc)
{
    if (!rc)
        rc = hs_hubbuf_put(out, "}\x1e", 2);
    if (rc)
        out->len = start;
    return rc ? HS_ENOMEM : 0;
}

int hs_hubproto_handshake_reply(hs_hubbuf_t *out, const char *error)
{
    size_t start = out->len;
    if (!error)
        return hs_hubbuf_put(out, "{}\x1e", 3);
    int rc = put_str(out, "{\"error\":");
    if (!rc)
        rc = put_quoted(out, error, strlen(error));
    return json_end(out, start, rc);
}

int hs_hubproto_completion(hs_hubbuf_t *out, hs_hubfmt_t fmt, const char *id, const char *error,
                           const char *result_json, size_t result_len)
{
    size_t start = out->len;
    if (fmt == HS_HUB_JSON) {
        if (result_json) {
            hs_json_span_t v;
            if (hs_json_parse(result_json, result_len, &v, NULL, 0))
                return HS_EINVAL;
        }
        int rc = put_str(out, "{\"type\":3,\"invocationId\":");
        if (!rc)
            rc = put_quoted(out, id, strlen(id));
        if (!rc && error) {
            rc = put_str(out, ",\"error\":");
            if (!rc)
                rc = put_quoted(out, error, strlen(error));
        } else if (!rc && result_json) {
            rc = put_str(out, ",\"result\":");
            if (!rc)
                rc = hs_hubbuf_put(out, result_json, result_len);
        }
        return json_end(out, start, rc);
    }
    msgpack_packer pk;
    if (mp_begin(out, &pk, &start))
        return HS_ENOMEM;
    int kind = error ? 1 : result_json ? 3 : 2;
    int rc = msgpack_pack_array(&pk, kind == 2 ? 4 : 5) || msgpack_pack_int(&pk, 3) ||
             msgpack_pack_map(&pk, 0) || pk_cstr(&pk, id) || msgpack_pack_int(&pk, kind);
    if (!rc && kind == 1)
        rc = pk_cstr(&pk, error);
    if (!rc && kind == 3) {
        int jr = hs_hubproto_json_to_msgpack(result_json, result_len, out);
        if (jr) {
            out->len = start;
            return jr;
        }
    }
    return mp_end(out, start, rc);
}

int hs_hubproto_stream_item_raw(hs_hubbuf_t *out, hs_hubfmt_t fmt, const char *id,
                                const uint8_t *item, size_t item_len)
{
    size_t start = out->len;
    if (fmt == HS_HUB_JSON) {
        size_t idl = strlen(id);
        if (hs_hubbuf_reserve(out, 40 + hs_json_quoted_len(id, idl) + item_len))
            return HS_ENOMEM;
        char *o = (char *)out->p + out->len;
        memcpy(o, "{\"type\":2,\"invocationId\":", 25);
        o += 25;
        o += hs_json_quote(id, idl, o);
        memcpy(o, ",\"item\":", 8);
        o += 8;
        memcpy(o, item, item_len);
        o += item_len;
        memcpy(o, "}\x1e", 2);
        o += 2;
        out->len = (size_t)((uint8_t *)o - out->p);
        return 0;
    }
    msgpack_packer pk;
    if (mp_begin(out, &pk, &start))
        return HS_ENOMEM;
    int rc = msgpack_pack_array(&pk, 4) || msgpack_pack_int(&pk, 2) || msgpack_pack_map(&pk, 0) ||
             pk_cstr(&pk, id) || pk_raw(&pk, item, item_len);
    return mp_end(out, start, rc);
}

int hs_hubproto_invocation_raw(hs_hubbuf_t *out, hs_hubfmt_t fmt, const char *target,
                               const uint8_t *const *args, const size_t *arg_lens, size_t nargs)
{
    size_t start = out->len;
    if (fmt == HS_HUB_JSON) {
        int rc = put_str(out, "{\"type\":1,\"target\":");
        if (!rc)
            rc = put_quoted(out, target, strlen(target));
        if (!rc)
            rc = put_str(out, ",\"arguments\":[");
        for (size_t i = 0; !rc && i < nargs; i++) {
            if (i)
                rc = put_str(out, ",");
            if (!rc)
                rc = hs_hubbuf_put(out, args[i], arg_lens[i]);
        }
        if (!rc)
            rc = put_str(out, "]");
        return json_end(out, start, rc);
    }
    msgpack_packer pk;
    if (mp_begin(out, &pk, &start))
        return HS_ENOMEM;
    int rc = msgpack_pack_array(&pk, 6) || msgpack_pack_int(&pk, 1) || msgpack_pack_map(&pk, 0) ||
             msgpack_pack_nil(&pk) || pk_cstr(&pk, target) || msgpack_pack_array(&pk, nargs);
    for (size_t i = 0; !rc && i < nargs; i++)
        rc = pk_raw(&pk, args[i], arg_lens[i]);
    if (!rc)
        rc = msgpack_pack_array(&pk, 0);
    return mp_end(out, start, rc);
}

int hs_hubproto_ping(hs_hubbuf_t *out, hs_hubfmt_t fmt)
{
    if (fmt == HS_HUB_JSON)
        return hs_hubbuf_put(out, "{\"type\":6}\x1e", 11);
    return hs_hubbuf_put(out, "\x02\x91\x06", 3);
}

int hs_hubproto_close(hs_hubbuf_t *out, hs_hubfmt_t fmt, const char *error, bool allow_reconnect)
{
    size_t start = out->len;
    if (fmt == HS_HUB_JSON) {
        int rc = put_str(out, "{\"type\":7");
        if (!rc && error) {
            rc = put_str(out, ",\"error\":");
            if (!rc)
                rc = put_quoted(out, error, strlen(error));
        }
        if (!rc && allow_reconnect)
            rc = put_str(out, ",\"allowReconnect\":true");
        return json_end(out, start, rc);
    }
    msgpack_packer pk;
    if (mp_begin(out, &pk, &start))
        return HS_ENOMEM;
    int rc = msgpack_pack_array(&pk, 3) || msgpack_pack_int(&pk, 7) ||
             (error ? pk_cstr(&pk, error) : msgpack_pack_nil(&pk)) ||
             (allow_reconnect ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
    return mp_end(out, start, rc);
}

static int seq_msg(hs_hubbuf_t *out, hs_hubfmt_t fmt, int type, int64_t seq)
{
    size_t start = out->len;
    if (fmt == HS_HUB_JSON) {
        char tmp[64];
        int n = snprintf(tmp, sizeof(tmp), "{\"type\":%d,\"sequenceId\":%lld}\x1e", type,
                         (long long)seq);
        return hs_hubbuf_put(out, tmp, (size_t)n);
    }
    msgpack_packer pk;
    if (mp_begin(out, &pk, &start))
        return HS_ENOMEM;
    int rc = msgpack_pack_array(&pk, 2) || msgpack_pack_int(&pk, type) ||
             msgpack_pack_int64(&pk, seq);
    return mp_end(out, start, rc);
}

int hs_hubproto_ack(hs_hubbuf_t *out, hs_hubfmt_t fmt, int64_t seq)
{
    return seq_msg(out, fmt, HS_HUBMSG_ACK, seq);
}

int hs_hubproto_sequence(hs_hubbuf_t *out, hs_hubfmt_t fmt, int64_t seq)
{
    return seq_msg(out, fmt, HS_HUBMSG_SEQUENCE, seq);
}
