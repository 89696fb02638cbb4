/* The SignalR hub protocol's MessagePack side (see hubproto.h): a pre-scan that refuses what
 * msgpack-c would mishandle (nesting deeper than its fixed stack, lengths past the record),
 * MessagePack <-> JSON conversion of arguments and results, and parsing a MessagePack record
 * into an hs_hubmsg_t. No I/O. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "proto/hubproto.h"
#include "proto/hubproto_impl.h"
#include "proto/json.h"
#include "util/base64.h"
#include "util/utf8.h"

#define MAX_DEPTH 64
/* msgpack-c's C unpacker has a fixed stack of 32 containers (MSGPACK_EMBED_STACK_SIZE) and
 * reports a deeper one as out of memory; the pre-scan refuses those as malformed instead. */
#define MP_MAX_NEST 32

/* ---- UTF-8 and base64 ---- */

/* A MessagePack bin value as JSON: a string of its standard, padded base64 (util/base64.c). */
static int put_base64(hs_buf_t *b, const uint8_t *s, size_t n)
{
    if (n > SIZE_MAX / 2 || hs_buf_reserve(b, HS_BASE64_LEN(n) + 3))
        return HS_ENOMEM;
    char *o = (char *)b->p + b->len;
    *o++ = '"';
    o += hs_base64_encode(s, n, o);
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
#define NEED(k)                                                                                    \
    do {                                                                                           \
        if (n < (k))                                                                               \
            return 0;                                                                              \
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
        case 0xc4:
        case 0xd9:
            NEED(2);
            hdr = 2;
            body = p[1];
            break;
        case 0xc5:
        case 0xda:
            NEED(3);
            hdr = 3;
            body = BE16(p + 1);
            break;
        case 0xc6:
        case 0xdb:
            NEED(5);
            hdr = 5;
            body = BE32(p + 1);
            break;
        case 0xc7:
            NEED(3);
            hdr = 3;
            body = (size_t)p[1] + 0;
            break; /* ext8: type byte in hdr */
        case 0xc8:
            NEED(4);
            hdr = 4;
            body = BE16(p + 1);
            break;
        case 0xc9:
            NEED(6);
            hdr = 6;
            body = BE32(p + 1);
            break;
        case 0xca:
        case 0xce:
        case 0xd2:
            body = 4;
            break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
            body = 8;
            break;
        case 0xcc:
        case 0xd0:
            body = 1;
            break;
        case 0xcd:
        case 0xd1:
            body = 2;
            break;
        case 0xd4:
            body = 2;
            break;
        case 0xd5:
            body = 3;
            break;
        case 0xd6:
            body = 5;
            break;
        case 0xd7:
            body = 9;
            break;
        case 0xd8:
            body = 17;
            break;
        case 0xdc:
            NEED(3);
            hdr = 3;
            count = BE16(p + 1);
            break;
        case 0xdd:
            NEED(5);
            hdr = 5;
            count = BE32(p + 1);
            break;
        case 0xde:
            NEED(3);
            hdr = 3;
            count = BE16(p + 1) * 2;
            break;
        case 0xdf:
            NEED(5);
            hdr = 5;
            count = BE32(p + 1) * 2;
            break;
        default:
            return 0; /* 0xc1: never used */
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

static int obj_to_json(const msgpack_object *o, hs_buf_t *out, int depth)
{
    char num[40];
    int rc;
    if (depth > MAX_DEPTH)
        return HS_EINVAL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return hs_hp_put_str(out, "null");
    case MSGPACK_OBJECT_BOOLEAN:
        return hs_hp_put_str(out, o->via.boolean ? "true" : "false");
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(num, sizeof(num), "%llu", (unsigned long long)o->via.u64);
        return hs_hp_put_str(out, num);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(num, sizeof(num), "%lld", (long long)o->via.i64);
        return hs_hp_put_str(out, num);
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
        return hs_hp_put_str(out, num);
    }
    case MSGPACK_OBJECT_STR:
        if (!hs_utf8_valid(o->via.str.ptr, o->via.str.size))
            return HS_EINVAL;
        return hs_hp_put_quoted(out, o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return put_base64(out, (const uint8_t *)o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY:
        if ((rc = hs_hp_put_str(out, "[")))
            return rc;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if ((i && (rc = hs_hp_put_str(out, ","))) ||
                (rc = obj_to_json(&o->via.array.ptr[i], out, depth + 1)))
                return rc;
        }
        return hs_hp_put_str(out, "]");
    case MSGPACK_OBJECT_MAP:
        if ((rc = hs_hp_put_str(out, "{")))
            return rc;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR)
                return HS_EINVAL;
            if ((i && (rc = hs_hp_put_str(out, ","))) ||
                (rc = obj_to_json(&kv->key, out, depth + 1)) || (rc = hs_hp_put_str(out, ":")) ||
                (rc = obj_to_json(&kv->val, out, depth + 1)))
                return rc;
        }
        return hs_hp_put_str(out, "}");
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

int hs_hubproto_msgpack_to_json(const uint8_t *mp, size_t len, hs_buf_t *out)
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
    return o->type == MSGPACK_OBJECT_STR && hs_utf8_valid(o->via.str.ptr, o->via.str.size) &&
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
    return hs_hp_set_id(m, o->via.str.ptr, o->via.str.size, why, whylen);
}

/* Appends a str checked by mp_text to scratch, NUL-terminated. */
static int mp_put_text(hs_buf_t *scratch, const msgpack_object *o)
{
    if (hs_buf_put(scratch, o->via.str.ptr, o->via.str.size) || hs_buf_put(scratch, "", 1))
        return HS_ENOMEM;
    return 0;
}

int hs_hp_parse_mp(const uint8_t *rec, size_t len, hs_hubmsg_t *m, hs_buf_t *scratch, char *why,
                   size_t whylen)
{
    msgpack_zone z;
    if (!msgpack_zone_init(&z, 2048))
        return HS_ENOMEM;
    msgpack_object o;
    int rc = unpack_one(rec, len, &z, &o);
    if (rc) {
        if (rc == HS_EINVAL)
            snprintf(why, whylen, "malformed MessagePack (or nested deeper than %d)", MP_MAX_NEST);
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
#define WANT(cond)                                                                                 \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(why, whylen, "malformed message of type %d", m->type);                        \
            goto out;                                                                              \
        }                                                                                          \
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
            WANT(a[5].type == MSGPACK_OBJECT_ARRAY && a[5].via.array.size <= HS_HUB_STREAMIDS_MAX);
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
    rc = hs_hp_check(m, has_target, has_args, has_item, has_seq, why, whylen);
out:
    if (rc == HS_EINVAL && why && whylen && !why[0])
        snprintf(why, whylen, "a value of message type %d cannot be represented as JSON", m->type);
    msgpack_zone_destroy(&z);
    return rc;
}
