/*
 * UTF-8, the one validator and encoder of the project.
 *
 * Every byte string that reaches a client as text (stream names, event types, ids, error
 * messages, JSON output, MessagePack str values) is either checked here or produced here. The
 * rules are RFC 3629's: no overlong forms, no UTF-16 surrogates (U+D800..U+DFFF), nothing above
 * U+10FFFF. Pure functions: no allocation, no state, any thread.
 */
#ifndef HS_UTIL_UTF8_H
#define HS_UTIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The length (1..4) of the well-formed character at s[0..n), with its code point in *cp (may be
 * NULL); 0 when s does not start with one (n == 0, a stray or truncated sequence). */
size_t hs_utf8_char(const unsigned char *s, size_t n, uint32_t *cp);

/* Whether s[0..n) is entirely well-formed UTF-8 (NUL bytes allowed: they are characters). */
bool hs_utf8_valid(const char *s, size_t n);

/* Writes code point cp (at most U+10FFFF, not a surrogate) to out; returns 1..4. */
size_t hs_utf8_put(uint32_t cp, char *out);

/* The length of the longest prefix of s[0..n) that ends on a character boundary, for cutting
 * well-formed text short without splitting a character (trailing bytes of a character that n
 * cuts are dropped; other bytes are counted as they are). */
size_t hs_utf8_boundary(const char *s, size_t n);

/* Copies s[0..n) to out with ASCII letters lowered and every other byte unchanged (the same
 * length): how /eventstreamhub compares stream names "ignoring case", the same in C and in
 * every database. */
void hs_ascii_fold(const char *s, size_t n, char *out);

#endif
