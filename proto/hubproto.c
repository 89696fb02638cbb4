/* The SignalR hub protocol codec (see hubproto.h): cutting records out of a byte stream, the
 * handshake, dispatching a record to its format's parser, and the encoders of both formats.
 * Parsing is per format: hubproto_json.c (through proto/json.c) and hubproto_msgpack.c
 * (msgpack-c behind a pre-scan); what they share is hubproto_common.c. */
#include "proto/hubproto.h"
#include "proto/hubproto_impl.h"

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

/* ---- parsing records ---- */

int hs_hubproto_parse(hs_hubfmt_t fmt, const uint8_t *rec, size_t len, hs_hubmsg_t *msg,
                      hs_buf_t *scratch, char *why, size_t whylen)
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
    return fmt == HS_HUB_JSON ? hs_hp_parse_json(rec, len, msg, scratch, why, whylen)
                              : hs_hp_parse_mp(rec, len, msg, scratch, why, whylen);
}

/* ---- encoders ---- */

/* MessagePack records: the body is packed 5 bytes after `start`, then moved down behind its
 * actual length prefix. */
static int mp_begin(hs_buf_t *out, msgpack_packer *pk, size_t *start)
{
    if (hs_buf_reserve(out, 64))
        return HS_ENOMEM;
    *start = out->len;
    out->len += 5;
    msgpack_packer_init(pk, out, hs_hp_pk_write);
    return 0;
}

static int mp_end(hs_buf_t *out, size_t start, int rc)
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
    return hs_hp_pk_write(pk->data, (const char *)p, n);
}

static int json_end(hs_buf_t *out, size_t start, int rc)
{
    if (!rc)
        rc = hs_buf_put(out, "}\x1e", 2);
    if (rc)
        out->len = start;
    return rc ? HS_ENOMEM : 0;
}

int hs_hubproto_handshake_reply(hs_buf_t *out, const char *error)
{
    size_t start = out->len;
    if (!error)
        return hs_buf_put(out, "{}\x1e", 3);
    int rc = hs_hp_put_str(out, "{\"error\":");
    if (!rc)
        rc = hs_hp_put_quoted(out, error, strlen(error));
    return json_end(out, start, rc);
}

int hs_hubproto_completion(hs_buf_t *out, hs_hubfmt_t fmt, const char *id, const char *error,
                           const char *result_json, size_t result_len)
{
    size_t start = out->len;
    if (fmt == HS_HUB_JSON) {
        if (result_json) {
            hs_json_span_t v;
            if (hs_json_parse(result_json, result_len, &v, NULL, 0))
                return HS_EINVAL;
        }
        int rc = hs_hp_put_str(out, "{\"type\":3,\"invocationId\":");
        if (!rc)
            rc = hs_hp_put_quoted(out, id, strlen(id));
        if (!rc && error) {
            rc = hs_hp_put_str(out, ",\"error\":");
            if (!rc)
                rc = hs_hp_put_quoted(out, error, strlen(error));
        } else if (!rc && result_json) {
            rc = hs_hp_put_str(out, ",\"result\":");
            if (!rc)
                rc = hs_buf_put(out, result_json, result_len);
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

int hs_hubproto_stream_item_raw(hs_buf_t *out, hs_hubfmt_t fmt, const char *id, const uint8_t *item,
                                size_t item_len)
{
    size_t start = out->len;
    if (fmt == HS_HUB_JSON) {
        size_t idl = strlen(id);
        if (hs_buf_reserve(out, 40 + hs_json_quoted_len(id, idl) + item_len))
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

int hs_hubproto_invocation_raw(hs_buf_t *out, hs_hubfmt_t fmt, const char *target,
                               const uint8_t *const *args, const size_t *arg_lens, size_t nargs)
{
    size_t start = out->len;
    if (fmt == HS_HUB_JSON) {
        int rc = hs_hp_put_str(out, "{\"type\":1,\"target\":");
        if (!rc)
            rc = hs_hp_put_quoted(out, target, strlen(target));
        if (!rc)
            rc = hs_hp_put_str(out, ",\"arguments\":[");
        for (size_t i = 0; !rc && i < nargs; i++) {
            if (i)
                rc = hs_hp_put_str(out, ",");
            if (!rc)
                rc = hs_buf_put(out, args[i], arg_lens[i]);
        }
        if (!rc)
            rc = hs_hp_put_str(out, "]");
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

int hs_hubproto_ping(hs_buf_t *out, hs_hubfmt_t fmt)
{
    if (fmt == HS_HUB_JSON)
        return hs_buf_put(out, "{\"type\":6}\x1e", 11);
    return hs_buf_put(out, "\x02\x91\x06", 3);
}

int hs_hubproto_close(hs_buf_t *out, hs_hubfmt_t fmt, const char *error, bool allow_reconnect)
{
    size_t start = out->len;
    if (fmt == HS_HUB_JSON) {
        int rc = hs_hp_put_str(out, "{\"type\":7");
        if (!rc && error) {
            rc = hs_hp_put_str(out, ",\"error\":");
            if (!rc)
                rc = hs_hp_put_quoted(out, error, strlen(error));
        }
        if (!rc && allow_reconnect)
            rc = hs_hp_put_str(out, ",\"allowReconnect\":true");
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

static int seq_msg(hs_buf_t *out, hs_hubfmt_t fmt, int type, int64_t seq)
{
    size_t start = out->len;
    if (fmt == HS_HUB_JSON) {
        char tmp[64];
        int n = snprintf(tmp, sizeof(tmp), "{\"type\":%d,\"sequenceId\":%lld}\x1e", type,
                         (long long)seq);
        return hs_buf_put(out, tmp, (size_t)n);
    }
    msgpack_packer pk;
    if (mp_begin(out, &pk, &start))
        return HS_ENOMEM;
    int rc =
        msgpack_pack_array(&pk, 2) || msgpack_pack_int(&pk, type) || msgpack_pack_int64(&pk, seq);
    return mp_end(out, start, rc);
}

int hs_hubproto_ack(hs_buf_t *out, hs_hubfmt_t fmt, int64_t seq)
{
    return seq_msg(out, fmt, HS_HUBMSG_ACK, seq);
}

int hs_hubproto_sequence(hs_buf_t *out, hs_hubfmt_t fmt, int64_t seq)
{
    return seq_msg(out, fmt, HS_HUBMSG_SEQUENCE, seq);
}
