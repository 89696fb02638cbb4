/*
 * libFuzzer target: the publish codec (proto/codec.h).
 *
 * The input is a publish body for stream "s" (max event 1 MiB), and also a stream name.
 * On success the ingest entry is checked and freed:
 *  - kind APPEND, stream "s", 1 or more events (at most the number of bytes / 2);
 *  - each type 1..HS_TYPE_MAX bytes without control characters, NUL-terminated;
 *  - each id 1..HS_ID_MAX bytes (a client's id, NUL-terminated) or a 36-char generated UUID;
 *  - data and metadata are valid compact JSON (metadata an object) inside the body's length;
 *  - the encoded size is within the limit.
 * Names: hs_stream_name_check / _publish agree with each other and with the documented rules
 * (1..HS_NAME_MAX bytes, no control character or '/', `$...` reserved for publishing).
 *
 * Not deterministic in one respect it cannot control: events without an id get a generated
 * UUID v7 (clock and random bits); the harness never branches on its value.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "proto/codec.h"
#include "proto/json.h"
#include "storage/writer.h"
#include "tests/fuzz/fuzz_common.h"

static bool has_ctl(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

static void check_json(const char *p, size_t n, hs_json_type_t want)
{
    hs_json_span_t v;
    CHECK(hs_json_parse(p, n, &v, NULL, 0) == 0);
    CHECK(v.p == p && v.n == n); /* compact: no white space around it */
    if (want != HS_JSON_INVALID)
        CHECK(v.type == want);
    char *c = fz_alloc(n);
    CHECK(hs_json_compact(&v, c) == n && memcmp(c, p, n) == 0); /* already compact */
    free(c);
}

static void check_entry(const hs_ingest_t *e, size_t size)
{
    CHECK(e->kind == HS_INGEST_APPEND);
    CHECK(e->stream_len == 1 && !memcmp(e->stream, "s", 2));
    CHECK(e->nevents >= 1 && e->nevents <= size / 2); /* "{}" is the shortest event */
    CHECK(e->events != NULL);
    for (uint32_t i = 0; i < e->nevents; i++) {
        const hs_ingest_event_t *ev = &e->events[i];
        CHECK(ev->type && ev->type_len >= 1 && ev->type_len <= HS_TYPE_MAX);
        CHECK(ev->type[ev->type_len] == '\0' && !has_ctl(ev->type, ev->type_len));
        CHECK(ev->id && ev->id_len >= 1);
        if (ev->client_id) {
            CHECK(ev->id_len <= HS_ID_MAX && ev->id[ev->id_len] == '\0');
            CHECK(!has_ctl(ev->id, ev->id_len));
        } else {
            CHECK(ev->id_len == 36 && ev->id[36] == '\0' && ev->id[14] == '7');
        }
        CHECK(ev->data && ev->data_len >= 1 && ev->data_len <= size);
        check_json(ev->data, ev->data_len, HS_JSON_INVALID);
        if (ev->metadata) {
            CHECK(ev->metadata_len >= 2 && ev->metadata_len <= size);
            check_json(ev->metadata, ev->metadata_len, HS_JSON_OBJECT);
        } else {
            CHECK(ev->metadata_len == 0);
        }
        CHECK((size_t)ev->type_len + ev->data_len + ev->metadata_len + ev->id_len <= 1u << 20);
    }
}

static void check_name(const uint8_t *data, size_t size)
{
    /* an exact-size copy: the checks take a length, not a C string */
    char *name = fz_alloc(size);
    if (size)
        memcpy(name, data, size);
    int rc = hs_stream_name_check(name, size);
    int rp = hs_stream_name_check_publish(name, size);
    CHECK(rc == 0 || rc == HS_EINVAL);
    if (rc) {
        CHECK(rp == rc);
    } else {
        CHECK(size >= 1 && size <= HS_NAME_MAX);
        CHECK(!has_ctl(name, size) && !memchr(name, '/', size));
        CHECK(rp == (name[0] == '$' ? HS_ERESERVED : 0));
    }
    if (size == 0 || size > HS_NAME_MAX || has_ctl(name, size) || memchr(name, '/', size))
        CHECK(rc == HS_EINVAL);
    free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = fz_alloc(size);
    if (size)
        memcpy(body, data, size);
    hs_ingest_t *e = NULL;
    char why[256];
    why[0] = '\0';
    int rc = hs_codec_parse_publish(body, size, "s", 1, 1u << 20, &e, why, sizeof why);
    if (rc == 0) {
        CHECK(e != NULL);
        check_entry(e, size);
        hs_ingest_free(e);
    } else {
        CHECK(e == NULL);
        CHECK(rc == HS_EINVAL || rc == HS_ETOOLARGE);
        CHECK(why[0] != '\0');
    }
    free(body);
    check_name(data, size);
    return 0;
}
