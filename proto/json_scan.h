/*
 * The strict JSON scanner's steps (RFC 8259; see json.h), shared by json.c, which validates
 * and hands out spans, and json_mp.c, which converts to MessagePack in the same single pass.
 * Each step starts at c->i, advances past what it accepted, and on a refusal sets c->err and
 * returns -1. Internal to proto/.
 */
#ifndef HS_PROTO_JSON_SCAN_H
#define HS_PROTO_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/utf8.h"

typedef struct hs_jscan {
    const char *s;
    size_t n, i;
    const char *err;
} hs_jscan_t;

static inline void hs_jscan_ws(hs_jscan_t *c)
{
    while (c->i < c->n) {
        char ch = c->s[c->i];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
            break;
        c->i++;
    }
}

static inline int hs_jscan_hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Whether the 8 bytes at p are all plain string text: printable ASCII other than '"' and
 * '\\' (a word at a time: a zero byte of w ^ k means a byte equal to k; w - 0x20.. borrows in a
 * byte under 0x20; a high bit is a byte past ASCII). A false "no" only costs the byte loop. */
static inline bool hs_jscan_plain8(const char *p)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    uint64_t t = ((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w) | w;
    return (t & high) == 0;
}

/* A string, c->i at its opening quote. *escaped (may be NULL) tells whether it holds an
 * escape, i.e. whether the text between the quotes is not the string itself. */
static inline int hs_jscan_string(hs_jscan_t *c, bool *escaped)
{
    bool esc = false;
    c->i++; /* opening quote */
    while (c->i < c->n) {
        while (c->n - c->i >= 8 && hs_jscan_plain8(c->s + c->i))
            c->i += 8;
        if (c->i >= c->n)
            break;
        unsigned char ch = (unsigned char)c->s[c->i];
        if (ch >= 0x20 && ch < 0x80 && ch != '"' && ch != '\\') {
            c->i++; /* plain ASCII, most of any string: no call per character */
            continue;
        }
        if (ch == '"') {
            c->i++;
            if (escaped)
                *escaped = esc;
            return 0;
        }
        if (ch < 0x20) {
            c->err = "control character in string";
            return -1;
        }
        if (ch == '\\') {
            esc = true;
            if (c->i + 1 >= c->n)
                break;
            char e = c->s[c->i + 1];
            if (e == 'u') {
                if (c->i + 6 > c->n)
                    break;
                for (int k = 2; k < 6; k++)
                    if (hs_jscan_hexval(c->s[c->i + k]) < 0) {
                        c->err = "bad \\u escape";
                        return -1;
                    }
                c->i += 6;
            } else if (e && strchr("\"\\/bfnrt", e)) {
                c->i += 2;
            } else {
                c->err = "bad escape";
                return -1;
            }
            continue;
        }
        size_t l = hs_utf8_char((const unsigned char *)c->s + c->i, c->n - c->i, NULL);
        if (!l) {
            c->err = "invalid UTF-8";
            return -1;
        }
        c->i += l;
    }
    c->err = "unterminated string";
    return -1;
}

static inline int hs_jscan_digits(hs_jscan_t *c)
{
    size_t start = c->i;
    while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9')
        c->i++;
    return c->i > start ? 0 : -1;
}

/* A number, c->i at its first character ('-' or a digit). *integral (may be NULL) tells
 * whether it has neither a fraction nor an exponent. */
static inline int hs_jscan_number(hs_jscan_t *c, bool *integral)
{
    bool whole = true;
    if (c->s[c->i] == '-')
        c->i++;
    if (c->i < c->n && c->s[c->i] == '0')
        c->i++;
    else if (hs_jscan_digits(c))
        goto bad;
    if (c->i < c->n && c->s[c->i] == '.') {
        whole = false;
        c->i++;
        if (hs_jscan_digits(c))
            goto bad;
    }
    if (c->i < c->n && (c->s[c->i] == 'e' || c->s[c->i] == 'E')) {
        whole = false;
        c->i++;
        if (c->i < c->n && (c->s[c->i] == '+' || c->s[c->i] == '-'))
            c->i++;
        if (hs_jscan_digits(c))
            goto bad;
    }
    if (integral)
        *integral = whole;
    return 0;
bad:
    c->err = "bad number";
    return -1;
}

static inline int hs_jscan_literal(hs_jscan_t *c, const char *lit, size_t l)
{
    if (c->n - c->i < l || memcmp(c->s + c->i, lit, l) != 0) {
        c->err = "unexpected token";
        return -1;
    }
    c->i += l;
    return 0;
}

#endif
