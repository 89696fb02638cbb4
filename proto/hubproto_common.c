/*
 * What the SignalR hub protocol's files share (hubproto_impl.h): appending strings, msgpack-c's
 * write callback, and the checks every parsed record passes whatever its format. Calls no other
 * file of the protocol: hubproto.c (framing, handshake, encoders), hubproto_json.c and
 * hubproto_msgpack.c (parsing) all stand on it.
 */
#include <stdio.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "proto/hubproto_impl.h"
#include "proto/json.h"

int hs_hp_put_str(hs_buf_t *b, const char *s)
{
    return hs_buf_put(b, s, strlen(s));
}

/* Appends s as a JSON string literal. */
int hs_hp_put_quoted(hs_buf_t *b, const char *s, size_t n)
{
    if (!n) /* s may be NULL (msgpack-c's empty string) */
        return hs_buf_put(b, "\"\"", 2);
    if (hs_buf_reserve(b, hs_json_quoted_len(s, n)))
        return HS_ENOMEM;
    b->len += hs_json_quote(s, n, (char *)b->p + b->len);
    return 0;
}

int hs_hp_pk_write(void *data, const char *buf, size_t len)
{
    return hs_buf_put(data, buf, len) ? -1 : 0;
}

int hs_hp_set_id(hs_hubmsg_t *m, const char *s, size_t n, char *why, size_t whylen)
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

int hs_hp_check(hs_hubmsg_t *m, bool has_target, bool has_args, bool has_item, bool has_seq,
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
