/*
 * libFuzzer target: /eventstreamhub's event forms (proto/escodec.h).
 *
 * The input is JSON text: Publish's events argument (an array of the seed's EventModel objects
 * or one of them). When it parses:
 *  - hs_es_parse_events(arg, "s", 1 MiB): on success an append entry with e->fold set, 1 or
 *    more events, types 1..HS_TYPE_MAX bytes without control characters (a null or empty Type
 *    stored as HS_ES_NULL_TYPE), data a compact JSON object holding only the seed's members,
 *    metadata exactly {"$format":"eventstream"}, sizes within the limit;
 *  - each event, as the EventRecord JSON the fan-out would encode (hs_record_json), renders
 *    with hs_es_render into a JSON object with the seed's 15 members in their order, whose
 *    payload members and Type equal the input's (compacted; null when absent or null).
 * hs_es_render is also run on the raw input: HS_EINVAL or a JSON object.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "proto/codec.h"
#include "proto/escodec.h"
#include "proto/json.h"
#include "tests/fuzz/fuzz_common.h"

static const char *const order[] = {
    "Id",
    "EventId",
    "OriginalEventId",
    "CreatedAt",
    "Description",
    "Type",
    "Data",
    "Base64StringData",
    "JsonData",
    "MetaData",
    "Base64StringMetaData",
    "IsJson",
    "IsBase64String",
    "StreamId",
    "StreamName",
};

static void check_rendered(const hs_buf_t *out, bool camel)
{
    hs_json_span_t v, k, val;
    CHECK(hs_json_parse((const char *)out->p, out->len, &v, NULL, 0) == 0);
    CHECK(v.type == HS_JSON_OBJECT);
    size_t pos = 0, i = 0;
    while (hs_json_object_next(&v, &pos, &k, &val)) {
        CHECK(i < sizeof order / sizeof order[0]);
        char want[32];
        snprintf(want, sizeof want, "%s", order[i]);
        if (camel)
            want[0] = (char)(want[0] + 32);
        CHECK(hs_json_string_eq(&k, want, false));
        i++;
    }
    CHECK(i == sizeof order / sizeof order[0]);
}

/* The input event's member `name` (ignoring case; the last one when it repeats, as .NET's
 * binders take it) compacted, or "null". */
static void member_text(const hs_json_span_t *obj, const char *name, hs_buf_t *out)
{
    hs_json_span_t v = {0}, k, x;
    out->len = 0;
    size_t pos = 0;
    while (obj->type == HS_JSON_OBJECT && hs_json_object_next(obj, &pos, &k, &x))
        if (hs_json_string_eq(&k, name, true))
            v = x;
    if (v.type == HS_JSON_INVALID || v.type == HS_JSON_NULL) {
        CHECK(hs_buf_put(out, "null", 4) == 0);
        return;
    }
    CHECK(hs_buf_reserve(out, v.n) == 0);
    out->len = hs_json_compact(&v, (char *)out->p);
}

static void check_event(const hs_ingest_event_t *ev, const hs_json_span_t *in)
{
    static const char meta[] = "{\"$format\":\"eventstream\"}";
    CHECK(ev->type_len >= 1 && ev->type_len <= HS_TYPE_MAX && ev->type[ev->type_len] == '\0');
    for (uint32_t i = 0; i < ev->type_len; i++)
        CHECK((unsigned char)ev->type[i] >= 0x20 && ev->type[i] != 0x7f);
    CHECK(ev->metadata_len == sizeof meta - 1 && !memcmp(ev->metadata, meta, sizeof meta - 1));
    CHECK(ev->id_len == 36);
    hs_json_span_t d;
    CHECK(hs_json_parse(ev->data, ev->data_len, &d, NULL, 0) == 0 && d.type == HS_JSON_OBJECT);
    CHECK(d.p == ev->data && d.n == ev->data_len);

    /* as the fan-out would see it */
    hs_record_t rec = {.stream = "s",
                       .stream_len = 1,
                       .version = 1,
                       .position = 42,
                       .time_us = 1764000000123456,
                       .event_id = ev->id,
                       .event_id_len = ev->id_len,
                       .type = ev->type,
                       .type_len = ev->type_len,
                       .data = ev->data,
                       .data_len = ev->data_len,
                       .metadata = ev->metadata,
                       .metadata_len = ev->metadata_len};
    char *json = fz_alloc(hs_record_json_len(&rec));
    size_t jl = hs_record_json(&rec, json);
    hs_buf_t out = {0}, want = {0};
    CHECK(hs_es_render(json, jl, false, &out) == 0);
    check_rendered(&out, false);
    hs_json_span_t r, got;
    CHECK(hs_json_parse((const char *)out.p, out.len, &r, NULL, 0) == 0);
    static const char *const payload[] = {"Description", "Data",     "Base64StringData",
                                          "JsonData",    "MetaData", "Base64StringMetaData"};
    for (size_t i = 0; i < sizeof payload / sizeof payload[0]; i++) {
        member_text(in, payload[i], &want);
        CHECK(hs_json_object_get(&r, payload[i], false, &got));
        CHECK(got.n == want.len && !memcmp(got.p, want.p, want.len));
    }
    /* Type as sent: null when absent or null, else the same string (its escapes may differ:
     * the type is stored unescaped) */
    member_text(in, "Type", &want);
    CHECK(hs_json_object_get(&r, "Type", false, &got));
    if (want.len == 4 && !memcmp(want.p, "null", 4)) {
        CHECK(got.type == HS_JSON_NULL);
    } else {
        hs_json_span_t w;
        CHECK(hs_json_parse((const char *)want.p, want.len, &w, NULL, 0) == 0);
        char *a = fz_alloc(w.n), *b = fz_alloc(got.n);
        long al = hs_json_unescape(&w, a, w.n), bl = hs_json_unescape(&got, b, got.n);
        CHECK(al >= 0 && al == bl && !memcmp(a, b, (size_t)al));
        free(a);
        free(b);
    }
    free(json);
    hs_buf_free(&out);
    hs_buf_free(&want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hs_json_span_t arg;
    if (hs_json_parse((const char *)data, size, &arg, NULL, 0) == 0) {
        hs_ingest_t *e = NULL;
        char why[256];
        int rc = hs_es_parse_events(&arg, "s", 1, 1u << 20, &e, why, sizeof why);
        if (rc == 0) {
            CHECK(e && e->fold && e->kind == HS_INGEST_APPEND && e->nevents >= 1);
            CHECK(e->stream_len == 1 && !memcmp(e->stream, "s", 2));
            size_t pos = 0;
            for (uint32_t i = 0; i < e->nevents; i++) {
                hs_json_span_t in = arg;
                if (arg.type == HS_JSON_ARRAY)
                    CHECK(hs_json_array_next(&arg, &pos, &in));
                check_event(&e->events[i], &in);
            }
            hs_ingest_free(e);
        } else {
            CHECK(rc == HS_EINVAL || rc == HS_ETOOLARGE);
            CHECK(!e && why[0]);
        }
    }
    hs_buf_t out = {0};
    int rc = hs_es_render((const char *)data, size, size % 2, &out);
    CHECK(rc == 0 || rc == HS_EINVAL);
    if (rc == 0)
        check_rendered(&out, size % 2);
    hs_buf_free(&out);
    return 0;
}
