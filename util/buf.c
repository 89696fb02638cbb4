/* A growable byte buffer (see buf.h). */
#include "util/buf.h"

#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"

void hs_buf_init(hs_buf_t *b)
{
    b->p = NULL;
    b->len = b->cap = 0;
}

void hs_buf_free(hs_buf_t *b)
{
    free(b->p);
    hs_buf_init(b);
}

int hs_buf_reserve(hs_buf_t *b, size_t more)
{
    if (more <= b->cap - b->len)
        return 0;
    if (b->len > SIZE_MAX / 4 || more > SIZE_MAX / 4 - b->len)
        return HS_ENOMEM;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->len + more)
        nc *= 2;
    uint8_t *p = realloc(b->p, nc);
    if (!p)
        return HS_ENOMEM;
    b->p = p;
    b->cap = nc;
    return 0;
}

int hs_buf_put(hs_buf_t *b, const void *p, size_t n)
{
    if (!n)
        return 0;
    if (hs_buf_reserve(b, n))
        return HS_ENOMEM;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}
