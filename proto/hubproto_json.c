/* The SignalR hub protocol's JSON side (see hubproto.h): parsing a JSON record into an
 * hs_hubmsg_t through proto/json.c's scanner. No I/O. */
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
#include "util/utf8.h"

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

int hs_hp_parse_json(const uint8_t *rec, size_t len, hs_hubmsg_t *m, hs_buf_t *scratch, char *why,
                     size_t whylen)
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
            if (hs_hp_set_id(m, id, (size_t)n, why, whylen))
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
    const hs_json_span_t *val = m->type == HS_HUBMSG_STREAM_ITEM  ? &item
                                : m->type == HS_HUBMSG_COMPLETION ? &result
                                                                  : NULL;
    bool has_item = val && val->p; /* "result":null is a null result, not a void one */
    if (has_item) {
        m->item = val->p;
        m->item_len = val->n;
    }
    if (has_err) {
        if (hs_buf_reserve(scratch, err.n + 1))
            return HS_ENOMEM;
        long n = hs_json_unescape(&err, (char *)scratch->p, err.n + 1);
        if (n < 0)
            return HS_EINVAL;
        scratch->p[n] = '\0';
        scratch->len = (size_t)n + 1;
        m->error = (const char *)scratch->p;
    }
    return hs_hp_check(m, has_target, has_args, has_item, has_seq, why, whylen);
}
