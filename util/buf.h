/*
 * A growable byte buffer: what every codec appends to and every connection keeps its input and
 * output in. Zero-initialise, or hs_buf_init(); free with hs_buf_free(). No I/O, no locks.
 */
#ifndef HS_UTIL_BUF_H
#define HS_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct hs_buf {
    uint8_t *p;
    size_t len, cap;
} hs_buf_t;

void hs_buf_init(hs_buf_t *b);
void hs_buf_free(hs_buf_t *b);
/* Ensures room for `more` bytes after len. 0 or HS_ENOMEM. */
int hs_buf_reserve(hs_buf_t *b, size_t more);
/* Appends bytes. 0 or HS_ENOMEM. */
int hs_buf_put(hs_buf_t *b, const void *p, size_t n);

#endif
