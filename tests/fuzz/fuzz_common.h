/*
 * Shared helpers of the libFuzzer targets in tests/fuzz (header-only, each target is one .c).
 * CHECK() aborts: an invariant the fuzzer broke is a crash libFuzzer records like any other.
 */
#ifndef HS_FUZZ_COMMON_H
#define HS_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* malloc that never returns NULL (a fuzz input is at most a few MB) and never 0 bytes, so an
 * exact-size buffer is still exact and ASan sees one byte past it. */
static inline void *fz_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    CHECK(p != NULL);
    return p;
}

/* A NUL-terminated heap copy of data[0..n). */
static inline char *fz_strndup(const uint8_t *data, size_t n)
{
    char *s = fz_alloc(n + 1);
    if (n)
        memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

/* Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF). */
static inline bool fz_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 1, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

#endif
