/*
 * Strict JSON scanner (see json.h). Recursive descent over the original bytes with an explicit
 * depth bound; no allocation, no copies except where the caller asks for one.
 */
#include "proto/json.h"

#include "proto/json_scan.h"

#include "util/utf8.h"

#include <stdio.h>
#include <string.h>

#include "hubstream/hubstream.h"

typedef hs_jscan_t scan_t;

static int value(scan_t *c, int depth, hs_json_type_t *type)
{
    hs_jscan_ws(c);
    if (c->i >= c->n) {
        c->err = "unexpected end";
        return -1;
    }
    char ch = c->s[c->i];
    hs_json_type_t t;
    switch (ch) {
    case '{':
    case '[': {
        char close = ch == '{' ? '}' : ']';
        t = ch == '{' ? HS_JSON_OBJECT : HS_JSON_ARRAY;
        if (depth >= HS_JSON_MAX_DEPTH) {
            c->err = "nesting too deep";
            return -1;
        }
        c->i++;
        hs_jscan_ws(c);
        if (c->i < c->n && c->s[c->i] == close) {
            c->i++;
            break;
        }
        for (;;) {
            hs_json_type_t sub;
            if (t == HS_JSON_OBJECT) {
                hs_jscan_ws(c);
                if (c->i >= c->n || c->s[c->i] != '"') {
                    c->err = "expected a member name";
                    return -1;
                }
                if (hs_jscan_string(c, NULL))
                    return -1;
                hs_jscan_ws(c);
                if (c->i >= c->n || c->s[c->i] != ':') {
                    c->err = "expected ':'";
                    return -1;
                }
                c->i++;
            }
            if (value(c, depth + 1, &sub))
                return -1;
            hs_jscan_ws(c);
            if (c->i < c->n && c->s[c->i] == ',') {
                c->i++;
                continue;
            }
            if (c->i < c->n && c->s[c->i] == close) {
                c->i++;
                break;
            }
            c->err = t == HS_JSON_OBJECT ? "expected ',' or '}'" : "expected ',' or ']'";
            return -1;
        }
        break;
    }
    case '"':
        t = HS_JSON_STRING;
        if (hs_jscan_string(c, NULL))
            return -1;
        break;
    case 't':
        t = HS_JSON_TRUE;
        if (hs_jscan_literal(c, "true", 4))
            return -1;
        break;
    case 'f':
        t = HS_JSON_FALSE;
        if (hs_jscan_literal(c, "false", 5))
            return -1;
        break;
    case 'n':
        t = HS_JSON_NULL;
        if (hs_jscan_literal(c, "null", 4))
            return -1;
        break;
    default:
        if (ch == '-' || (ch >= '0' && ch <= '9')) {
            t = HS_JSON_NUMBER;
            if (hs_jscan_number(c, NULL))
                return -1;
            break;
        }
        c->err = "unexpected character";
        return -1;
    }
    *type = t;
    return 0;
}

int hs_json_parse(const char *s, size_t n, hs_json_span_t *out, char *why, size_t whylen)
{
    scan_t c = {s, n, 0, NULL};
    hs_jscan_ws(&c);
    size_t start = c.i;
    hs_json_type_t t;
    if (value(&c, 0, &t) == 0) {
        size_t end = c.i;
        hs_jscan_ws(&c);
        if (c.i == c.n) {
            out->p = s + start;
            out->n = end - start;
            out->type = t;
            return 0;
        }
        c.err = "trailing characters";
    }
    if (why && whylen)
        snprintf(why, whylen, "%s at byte %zu", c.err ? c.err : "invalid JSON", c.i);
    return HS_EINVAL;
}

/* Skips one valid value starting at c->i (after white space). */
static void skip_value(scan_t *c)
{
    hs_json_type_t t;
    (void)value(c, 0, &t);
}

static hs_json_type_t type_at(char ch)
{
    switch (ch) {
    case '{':
        return HS_JSON_OBJECT;
    case '[':
        return HS_JSON_ARRAY;
    case '"':
        return HS_JSON_STRING;
    case 't':
        return HS_JSON_TRUE;
    case 'f':
        return HS_JSON_FALSE;
    case 'n':
        return HS_JSON_NULL;
    default:
        return HS_JSON_NUMBER;
    }
}

static bool next_item(const hs_json_span_t *v, size_t *pos, hs_json_span_t *key,
                      hs_json_span_t *val)
{
    scan_t c = {v->p, v->n, *pos ? *pos : 1, NULL};
    hs_jscan_ws(&c);
    if (c.i >= c.n || c.s[c.i] == '}' || c.s[c.i] == ']')
        return false;
    if (c.s[c.i] == ',') {
        c.i++;
        hs_jscan_ws(&c);
    }
    if (key) {
        size_t ks = c.i;
        (void)hs_jscan_string(&c, NULL);
        key->p = c.s + ks;
        key->n = c.i - ks;
        key->type = HS_JSON_STRING;
        hs_jscan_ws(&c);
        c.i++; /* ':' */
        hs_jscan_ws(&c);
    }
    size_t vs = c.i;
    skip_value(&c);
    val->p = c.s + vs;
    val->n = c.i - vs;
    val->type = type_at(c.s[vs]);
    *pos = c.i;
    return true;
}

bool hs_json_object_next(const hs_json_span_t *obj, size_t *pos, hs_json_span_t *key,
                         hs_json_span_t *val)
{
    return obj->type == HS_JSON_OBJECT && next_item(obj, pos, key, val);
}

bool hs_json_array_next(const hs_json_span_t *arr, size_t *pos, hs_json_span_t *item)
{
    return arr->type == HS_JSON_ARRAY && next_item(arr, pos, NULL, item);
}

size_t hs_json_array_len(const hs_json_span_t *arr)
{
    size_t pos = 0, k = 0;
    hs_json_span_t it;
    while (hs_json_array_next(arr, &pos, &it))
        k++;
    return k;
}

static uint32_t hex4(const char *p)
{
    return (uint32_t)(hs_jscan_hexval(p[0]) << 12 | hs_jscan_hexval(p[1]) << 8 |
                      hs_jscan_hexval(p[2]) << 4 | hs_jscan_hexval(p[3]));
}

long hs_json_unescape(const hs_json_span_t *str, char *out, size_t cap)
{
    const char *p = str->p + 1, *end = str->p + str->n - 1;
    size_t o = 0;
    char tmp[4];
    while (p < end) {
        size_t l;
        const char *src = p;
        if (*p != '\\') {
            /* a run up to the next escape, in one copy (most strings have none) */
            const char *bs = memchr(p, '\\', (size_t)(end - p));
            l = (size_t)((bs ? bs : end) - p);
            p += l;
        } else {
            char e = p[1];
            p += 2;
            src = tmp;
            switch (e) {
            case 'b':
                tmp[0] = '\b';
                l = 1;
                break;
            case 'f':
                tmp[0] = '\f';
                l = 1;
                break;
            case 'n':
                tmp[0] = '\n';
                l = 1;
                break;
            case 'r':
                tmp[0] = '\r';
                l = 1;
                break;
            case 't':
                tmp[0] = '\t';
                l = 1;
                break;
            case 'u': {
                uint32_t cp = hex4(p);
                p += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                    uint32_t lo = hex4(p + 2);
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        p += 6;
                    }
                }
                if (cp >= 0xD800 && cp <= 0xDFFF)
                    cp = 0xFFFD; /* lone surrogate */
                l = hs_utf8_put(cp, tmp);
                break;
            }
            default:
                tmp[0] = e;
                l = 1;
                break;
            }
        }
        if (o + l > cap)
            return -1;
        memcpy(out + o, src, l);
        o += l;
    }
    if (o < cap)
        out[o] = '\0';
    return (long)o;
}

bool hs_json_string_eq(const hs_json_span_t *str, const char *lit, bool nocase)
{
    char buf[256];
    if (str->type != HS_JSON_STRING)
        return false;
    long l = hs_json_unescape(str, buf, sizeof(buf));
    if (l < 0 || (size_t)l != strlen(lit))
        return false;
    if (!nocase)
        return memcmp(buf, lit, (size_t)l) == 0;
    for (long k = 0; k < l; k++) {
        char a = buf[k], b = lit[k];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z')
            b = (char)(b - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

bool hs_json_object_get(const hs_json_span_t *obj, const char *key, bool nocase,
                        hs_json_span_t *val)
{
    size_t pos = 0;
    hs_json_span_t k, v;
    while (hs_json_object_next(obj, &pos, &k, &v)) {
        if (hs_json_string_eq(&k, key, nocase)) {
            *val = v;
            return true;
        }
    }
    return false;
}

bool hs_json_int64(const hs_json_span_t *num, int64_t *out)
{
    if (num->type != HS_JSON_NUMBER)
        return false;
    const char *p = num->p, *end = num->p + num->n;
    bool neg = false;
    if (p < end && *p == '-') {
        neg = true;
        p++;
    }
    if (p == end)
        return false;
    uint64_t v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return false;
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
        return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

size_t hs_json_compact(const hs_json_span_t *v, char *out)
{
    size_t o = 0;
    bool in_str = false;
    for (size_t i = 0; i < v->n; i++) {
        char ch = v->p[i];
        if (in_str) {
            out[o++] = ch;
            if (ch == '\\') {
                out[o++] = v->p[++i];
            } else if (ch == '"') {
                in_str = false;
            }
            continue;
        }
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')
            continue;
        if (ch == '"')
            in_str = true;
        out[o++] = ch;
    }
    return o;
}

static const char hexd[] = "0123456789abcdef";

size_t hs_json_quote(const char *s, size_t n, char *out)
{
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            out[o++] = '\\';
            switch (ch) {
            case '\n':
                out[o++] = 'n';
                break;
            case '\r':
                out[o++] = 'r';
                break;
            case '\t':
                out[o++] = 't';
                break;
            default:
                out[o++] = 'u';
                out[o++] = '0';
                out[o++] = '0';
                out[o++] = hexd[ch >> 4];
                out[o++] = hexd[ch & 15];
            }
        } else if (ch < 0x80) {
            out[o++] = (char)ch;
        } else {
            size_t l = hs_utf8_char((const unsigned char *)s + i, n - i, NULL);
            if (!l) {
                /* not UTF-8: one replacement character per stray byte keeps the output JSON
                 * (and within 6 bytes per input byte) */
                memcpy(out + o, "\\ufffd", 6);
                o += 6;
                continue;
            }
            memcpy(out + o, s + i, l);
            o += l;
            i += l - 1;
        }
    }
    out[o++] = '"';
    return o;
}

size_t hs_json_quoted_len(const char *s, size_t n)
{
    size_t l = 2;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\' || ch == '\n' || ch == '\r' || ch == '\t') {
            l += 2;
        } else if (ch < 0x20) {
            l += 6;
        } else if (ch < 0x80) {
            l += 1;
        } else {
            size_t k = hs_utf8_char((const unsigned char *)s + i, n - i, NULL);
            if (!k) {
                l += 6;
            } else {
                l += k;
                i += k - 1;
            }
        }
    }
    return l;
}
