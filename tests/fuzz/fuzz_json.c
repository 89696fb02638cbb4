/*
 * libFuzzer target: the JSON scanner (proto/json.h).
 *
 * The input is JSON text (or not). When hs_json_parse accepts it, every object and array is
 * walked with hs_json_object_next / hs_json_array_next, every string (keys included) is
 * unescaped into an exact-size buffer, every number goes through hs_json_int64, and the whole
 * value is compacted, re-parsed and compacted again, and converted to MessagePack
 * (hs_hubproto_json_to_msgpack: what a MessagePack subscriber's events are made from, which must
 * take every valid document). Whatever the input, it is also quoted with
 * hs_json_quote. Checked (abort on failure):
 *  - every member / item span lies inside its parent and parses on its own to the same type and
 *    length; hs_json_array_len agrees with the walk;
 *  - hs_json_unescape fits a buffer of the span's size + 1, returns the same length into a
 *    buffer of exactly that length and -1 into one byte less;
 *  - hs_json_int64 agrees with strtoll on integer-looking numbers;
 *  - the compact form is valid JSON of the same type, has no insignificant white space, and
 *    compacting it again gives the same bytes;
 *  - hs_json_quote writes hs_json_quoted_len bytes (at most 6n + 2); the result always parses
 *    (bytes that are not UTF-8 become U+FFFD), and unescapes back to the input iff the input is
 *    valid UTF-8;
 *  - the MessagePack conversion (one pass, proto/json_mp.c) gives exactly the bytes of the
 *    reference walk into msgpack-c's packer (tests/proto/json_mp_ref.h) for every valid
 *    document, and refuses every invalid one without touching its output.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/hubproto.h"
#include "proto/json.h"
#include "tests/fuzz/fuzz_common.h"
#include "tests/proto/json_mp_ref.h"

static void check_string(const hs_json_span_t *s)
{
    CHECK(s->type == HS_JSON_STRING && s->n >= 2 && s->p[0] == '"' && s->p[s->n - 1] == '"');
    char *buf = fz_alloc(s->n + 1);
    long l = hs_json_unescape(s, buf, s->n + 1);
    CHECK(l >= 0 && (size_t)l <= s->n - 2);
    CHECK(buf[l] == '\0');
    /* exactly l bytes fit (no NUL written); l - 1 do not */
    char *exact = fz_alloc((size_t)l);
    CHECK(hs_json_unescape(s, exact, (size_t)l) == l);
    CHECK(memcmp(exact, buf, (size_t)l) == 0);
    if (l > 0)
        CHECK(hs_json_unescape(s, exact, (size_t)l - 1) == -1);
    free(exact);
    /* hs_json_string_eq against its own unescaped form (it only handles up to 255 bytes, and
     * a C string cannot hold a NUL) */
    if (l < 256 && !memchr(buf, '\0', (size_t)l)) {
        CHECK(hs_json_string_eq(s, buf, false));
        CHECK(hs_json_string_eq(s, buf, true));
    }
    free(buf);
}

static void check_number(const hs_json_span_t *v)
{
    int64_t i;
    bool ok = hs_json_int64(v, &i);
    char *tmp = fz_strndup((const uint8_t *)v->p, v->n);
    bool integer = !strpbrk(tmp, ".eE");
    if (integer) {
        errno = 0;
        char *end;
        long long ll = strtoll(tmp, &end, 10);
        CHECK(*end == '\0');
        if (ok)
            CHECK(errno == 0 && ll == i);
        else
            CHECK(errno == ERANGE);
    } else {
        CHECK(!ok);
    }
    free(tmp);
}

/* A child span must lie inside its parent and be one valid value of the type it claims. */
static void check_child(const hs_json_span_t *parent, const hs_json_span_t *c)
{
    CHECK(c->p >= parent->p && c->n >= 1 && c->p + c->n <= parent->p + parent->n);
    hs_json_span_t again;
    CHECK(hs_json_parse(c->p, c->n, &again, NULL, 0) == 0);
    CHECK(again.p == c->p && again.n == c->n && again.type == c->type);
}

static void walk(const hs_json_span_t *v, int depth)
{
    CHECK(depth <= HS_JSON_MAX_DEPTH);
    size_t pos = 0, k = 0;
    hs_json_span_t key, val;
    switch (v->type) {
    case HS_JSON_OBJECT:
        while (hs_json_object_next(v, &pos, &key, &val)) {
            check_child(v, &key);
            check_child(v, &val);
            CHECK(key.p + key.n <= val.p);
            check_string(&key);
            walk(&val, depth + 1);
            k++;
        }
        CHECK(!hs_json_array_next(v, &pos, &val)); /* an object is not an array */
        if (k) {
            /* the first member can be found by its key (ASCII-case-insensitively too), unless
             * the key does not fit hs_json_string_eq's buffer or holds a NUL */
            pos = 0;
            CHECK(hs_json_object_next(v, &pos, &key, &val));
            char kb[256];
            long l = hs_json_unescape(&key, kb, sizeof kb);
            if (l >= 0 && (size_t)l < sizeof kb && !memchr(kb, '\0', (size_t)l)) {
                hs_json_span_t got;
                CHECK(hs_json_object_get(v, kb, false, &got));
                CHECK(got.p == val.p && got.n == val.n);
                CHECK(hs_json_object_get(v, kb, true, &got));
            }
        }
        break;
    case HS_JSON_ARRAY:
        while (hs_json_array_next(v, &pos, &val)) {
            check_child(v, &val);
            walk(&val, depth + 1);
            k++;
        }
        CHECK(hs_json_array_len(v) == k);
        pos = 0;
        CHECK(!hs_json_object_next(v, &pos, &key, &val)); /* an array is not an object */
        break;
    case HS_JSON_STRING:
        check_string(v);
        break;
    case HS_JSON_NUMBER:
        check_number(v);
        break;
    case HS_JSON_TRUE:
        CHECK(v->n == 4 && !memcmp(v->p, "true", 4));
        break;
    case HS_JSON_FALSE:
        CHECK(v->n == 5 && !memcmp(v->p, "false", 5));
        break;
    case HS_JSON_NULL:
        CHECK(v->n == 4 && !memcmp(v->p, "null", 4));
        break;
    default:
        CHECK(!"a parsed value has an invalid type");
    }
    if (v->type != HS_JSON_NUMBER) {
        int64_t i;
        CHECK(!hs_json_int64(v, &i));
    }
}

static void check_compact(const hs_json_span_t *root)
{
    char *c1 = fz_alloc(root->n);
    size_t n1 = hs_json_compact(root, c1);
    CHECK(n1 >= 1 && n1 <= root->n);
    hs_json_span_t v1;
    char why[128];
    if (hs_json_parse(c1, n1, &v1, why, sizeof why) != 0) {
        fprintf(stderr, "compact output does not parse: %s\n", why);
        CHECK(!"compact output is valid JSON");
    }
    CHECK(v1.type == root->type && v1.p == c1 && v1.n == n1); /* nothing to trim */
    char *c2 = fz_alloc(n1);
    size_t n2 = hs_json_compact(&v1, c2);
    CHECK(n2 == n1 && memcmp(c1, c2, n1) == 0);
    free(c2);
    free(c1);
}

static void check_quote(const uint8_t *data, size_t size)
{
    char *q = fz_alloc(6 * size + 2);
    size_t w = hs_json_quote((const char *)data, size, q);
    CHECK(w >= size + 2 && w <= 6 * size + 2);
    CHECK(w == hs_json_quoted_len((const char *)data, size));
    hs_json_span_t s;
    CHECK(hs_json_parse(q, w, &s, NULL, 0) == 0);
    CHECK(s.type == HS_JSON_STRING && s.p == q && s.n == w);
    /* each stray byte became U+FFFD (3 bytes): room for 3 per input byte */
    char *u = fz_alloc(3 * size + 1);
    long l = hs_json_unescape(&s, u, 3 * size + 1);
    CHECK(l >= 0);
    bool same = (size_t)l == size && (size == 0 || memcmp(u, data, size) == 0);
    CHECK(same == fz_utf8_valid(data, size));
    CHECK(fz_utf8_valid((const uint8_t *)u, (size_t)l));
    free(u);
    free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* hs_json_parse takes the length; a heap copy of exactly size bytes lets ASan catch a read
     * one past the end (libFuzzer's own buffer is exact too, but this keeps it explicit) */
    char *s = fz_alloc(size);
    if (size)
        memcpy(s, data, size);
    hs_json_span_t root;
    char why[128];
    if (hs_json_parse(s, size, &root, why, sizeof why) == 0) {
        CHECK(root.p >= s && root.n >= 1 && root.p + root.n <= s + size);
        walk(&root, 0);
        check_compact(&root);
        /* what MessagePack subscribers get of an event: the conversion takes every valid
         * document (ASan watches its reads and writes) */
        hs_buf_t mp = {0}, ref = {0};
        CHECK(hs_hubproto_json_to_msgpack(s, size, &mp) == 0 && mp.len > 0);
        /* the one-pass conversion makes exactly what the span walk into msgpack-c's packer
         * makes (tests/proto/json_mp_ref.h) */
        CHECK(ref_json_to_msgpack(s, size, &ref) == 0);
        CHECK(mp.len == ref.len && memcmp(mp.p, ref.p, mp.len) == 0);
        hs_buf_free(&ref);
        hs_buf_free(&mp);
    } else {
        CHECK(why[0] != '\0');
        /* and it refuses what the validator refuses, leaving what it was given untouched */
        hs_buf_t mp = {0};
        CHECK(hs_buf_put(&mp, "x", 1) == 0);
        CHECK(hs_hubproto_json_to_msgpack(s, size, &mp) == HS_EINVAL && mp.len == 1);
        hs_buf_free(&mp);
    }
    check_quote(data, size);
    free(s);
    return 0;
}
