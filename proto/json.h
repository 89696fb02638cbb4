/*
 * A small strict JSON scanner: validates JSON text and hands out spans of the original bytes.
 *
 * hubstream stores an event's `data` and `metadata` exactly as the publisher wrote them (minus
 * insignificant white space), so numbers keep their digits and strings their escapes: a tree
 * parser that re-prints values would change them. This scanner validates RFC 8259 (UTF-8 checked,
 * depth bounded), walks objects and arrays, unescapes strings and compacts values. It never
 * allocates. It is not a general JSON library: there is no tree and no number conversion beyond
 * integers.
 */
#ifndef HS_JSON_H
#define HS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HS_JSON_MAX_DEPTH 64

typedef enum hs_json_type {
    HS_JSON_INVALID = 0,
    HS_JSON_OBJECT,
    HS_JSON_ARRAY,
    HS_JSON_STRING,
    HS_JSON_NUMBER,
    HS_JSON_TRUE,
    HS_JSON_FALSE,
    HS_JSON_NULL,
} hs_json_type_t;

/* A value inside some JSON text: p points at its first byte, n covers it exactly. */
typedef struct hs_json_span {
    const char *p;
    size_t n;
    hs_json_type_t type;
} hs_json_span_t;

/*
 * Validates that s[0..n) holds exactly one JSON value (surrounding white space allowed) and
 * returns its span in *out. Returns 0, or HS_EINVAL with a reason in why (may be NULL).
 */
int hs_json_parse(const char *s, size_t n, hs_json_span_t *out, char *why, size_t whylen);

/*
 * Iterates an object span. Start with *pos = 0; each call yields the next member's key (a string
 * span, still escaped) and value, and returns true; false at the end. The span must come from
 * hs_json_parse (already valid).
 */
bool hs_json_object_next(const hs_json_span_t *obj, size_t *pos, hs_json_span_t *key,
                         hs_json_span_t *val);

/* Iterates an array span the same way. */
bool hs_json_array_next(const hs_json_span_t *arr, size_t *pos, hs_json_span_t *item);

/* Number of items of an array span. */
size_t hs_json_array_len(const hs_json_span_t *arr);

/*
 * Unescapes a string span into out (cap bytes, not NUL-terminated unless room remains, which it
 * writes). Returns the unescaped length, or -1 if it does not fit.
 */
long hs_json_unescape(const hs_json_span_t *str, char *out, size_t cap);

/* Whether a string span, unescaped, equals lit (ASCII-case-insensitive if nocase). */
bool hs_json_string_eq(const hs_json_span_t *str, const char *lit, bool nocase);

/* Finds a member by key (exact, or ASCII-case-insensitive); true if found. */
bool hs_json_object_get(const hs_json_span_t *obj, const char *key, bool nocase,
                        hs_json_span_t *val);

/* Parses an integer number span (no fraction or exponent, fits int64). */
bool hs_json_int64(const hs_json_span_t *num, int64_t *out);

/* Copies a valid span without insignificant white space into out (at least span->n bytes);
 * returns the compact length. */
size_t hs_json_compact(const hs_json_span_t *v, char *out);

/*
 * Appends s[0..n) as a JSON string literal, with quotes, to out (which must have room for
 * 6 * n + 2 bytes, or exactly hs_json_quoted_len(s, n)). Returns bytes written. The output is
 * always valid JSON text in UTF-8: a byte that does not belong to a well-formed UTF-8 character
 * (client text that was never validated, a message cut short) becomes \ufffd.
 */
size_t hs_json_quote(const char *s, size_t n, char *out);

/* The bytes hs_json_quote would write. */
size_t hs_json_quoted_len(const char *s, size_t n);

#endif
