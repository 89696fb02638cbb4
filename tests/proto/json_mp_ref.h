/*
 * The reference for hs_hubproto_json_to_msgpack (proto/json_mp.c): the conversion it replaced,
 * kept for the tests that compare the two byte for byte (tests/proto/test_hubproto.c, and
 * tests/fuzz/fuzz_json.c on every document the fuzzer finds). It validates the text whole
 * with hs_json_parse, then walks it by spans into msgpack-c's own packer, which picks each
 * integer's and length's encoding.
 */
#ifndef HS_TESTS_JSON_MP_REF_H
#define HS_TESTS_JSON_MP_REF_H

#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "proto/hubproto_impl.h"
#include "proto/json.h"

static int ref_pack_str(msgpack_packer *pk, const hs_json_span_t *s)
{
    char *tmp = malloc(s->n + 1);
    if (!tmp)
        return HS_ENOMEM;
    long n = hs_json_unescape(s, tmp, s->n + 1);
    int rc = n < 0 ? HS_EINVAL
             : (msgpack_pack_str(pk, (size_t)n) || msgpack_pack_str_body(pk, tmp, (size_t)n))
                 ? HS_ENOMEM
                 : 0;
    free(tmp);
    return rc;
}

static int ref_span_to_mp(const hs_json_span_t *v, msgpack_packer *pk)
{
    size_t pos = 0, n = 0;
    hs_json_span_t k, x;
    switch (v->type) {
    case HS_JSON_OBJECT:
        while (hs_json_object_next(v, &pos, &k, &x))
            n++;
        if (msgpack_pack_map(pk, n))
            return HS_ENOMEM;
        pos = 0;
        while (hs_json_object_next(v, &pos, &k, &x)) {
            int rc = ref_pack_str(pk, &k);
            if (rc || (rc = ref_span_to_mp(&x, pk)))
                return rc;
        }
        return 0;
    case HS_JSON_ARRAY:
        if (msgpack_pack_array(pk, hs_json_array_len(v)))
            return HS_ENOMEM;
        while (hs_json_array_next(v, &pos, &x)) {
            int rc = ref_span_to_mp(&x, pk);
            if (rc)
                return rc;
        }
        return 0;
    case HS_JSON_STRING:
        return ref_pack_str(pk, v);
    case HS_JSON_NUMBER: {
        int64_t i;
        if (hs_json_int64(v, &i))
            return msgpack_pack_int64(pk, i) ? HS_ENOMEM : 0;
        char *tmp = malloc(v->n + 1);
        if (!tmp)
            return HS_ENOMEM;
        memcpy(tmp, v->p, v->n);
        tmp[v->n] = '\0';
        char *end = tmp;
        errno = 0;
        unsigned long long u = strpbrk(tmp, ".eE-") ? 0 : strtoull(tmp, &end, 10);
        int rc = u && !*end && !errno ? msgpack_pack_uint64(pk, (uint64_t)u)
                                      : msgpack_pack_double(pk, strtod(tmp, NULL));
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

/* What hs_hubproto_json_to_msgpack must produce: 0 and the bytes appended to out, or
 * HS_EINVAL (out unchanged) for text that is not exactly one JSON value. */
static int ref_json_to_msgpack(const char *json, size_t len, hs_buf_t *out)
{
    hs_json_span_t v;
    if (hs_json_parse(json, len, &v, NULL, 0))
        return HS_EINVAL;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, hs_hp_pk_write);
    size_t before = out->len;
    int rc = ref_span_to_mp(&v, &pk);
    if (rc)
        out->len = before;
    return rc;
}

#endif
