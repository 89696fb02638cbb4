/* Chunked request bodies (see chunked.h). */
#include "proto/chunked.h"

enum {
    S_SIZE,    /* hex digits of a chunk size */
    S_EXT,     /* after the size: `;` extensions (skipped) up to CR */
    S_SIZE_LF, /* the LF after the size line's CR */
    S_DATA,    /* chunk data */
    S_DATA_CR, /* the CRLF after chunk data */
    S_DATA_LF,
    S_TRAILER,    /* at the start of a trailer line, or of the final CRLF */
    S_TRAILER_IN, /* inside a trailer field line, up to CR */
    S_TRAILER_LF, /* the LF ending a trailer field line */
    S_END_LF,     /* the LF of the final CRLF */
    S_DONE,
    S_ERROR,
};

void hs_chunked_init(hs_chunked_t *d)
{
    d->state = S_SIZE;
    d->remain = 0;
    d->count = 0;
    d->why = NULL;
}

static int fail(hs_chunked_t *d, const char *why)
{
    d->state = S_ERROR;
    d->why = why;
    return HS_CHUNKED_ERROR;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hs_chunked_next(hs_chunked_t *d, const uint8_t **p, const uint8_t *end, const uint8_t **data,
                    size_t *dlen)
{
    const uint8_t *q = *p;
    int rc = HS_CHUNKED_NEED;
    while (q < end || d->state == S_DONE || d->state == S_ERROR) {
        if (d->state == S_DONE) {
            rc = HS_CHUNKED_DONE;
            break;
        }
        if (d->state == S_ERROR) {
            rc = HS_CHUNKED_ERROR;
            break;
        }
        uint8_t c = *q;
        switch (d->state) {
        case S_SIZE: {
            int v = hexval(c);
            if (v >= 0) {
                /* 15 hex digits cannot overflow; no body the server takes comes near */
                if (++d->count > 15) {
                    *p = q;
                    return fail(d, "chunk size too long");
                }
                d->remain = d->remain << 4 | (uint64_t)v;
                q++;
                break;
            }
            if (!d->count) {
                *p = q;
                return fail(d, "chunk size is not hexadecimal");
            }
            d->count = 0;
            if (c == '\r') {
                d->state = S_SIZE_LF;
                q++;
            } else if (c == ';' || c == ' ' || c == '\t') {
                d->state = S_EXT; /* extensions: nobody here understands any, so skip them */
            } else {
                *p = q;
                return fail(d, "bad character after a chunk size");
            }
            break;
        }
        case S_EXT:
            if (c == '\r') {
                d->state = S_SIZE_LF;
            } else if (c == '\n' || (c < 0x20 && c != '\t') || c == 0x7f) {
                *p = q;
                return fail(d, "control character in a chunk extension");
            } else if (++d->count > HS_CHUNKED_EXT_MAX) {
                *p = q;
                return fail(d, "chunk extensions too long");
            }
            q++;
            break;
        case S_SIZE_LF:
            if (c != '\n') {
                *p = q;
                return fail(d, "chunk size line does not end in CRLF");
            }
            q++;
            d->count = 0;
            if (d->remain == 0) {
                d->state = S_TRAILER;
            } else {
                d->state = S_DATA;
            }
            break;
        case S_DATA: {
            size_t avail = (size_t)(end - q);
            size_t n = d->remain < avail ? (size_t)d->remain : avail;
            *data = q;
            *dlen = n;
            d->remain -= n;
            q += n;
            if (!d->remain)
                d->state = S_DATA_CR;
            *p = q;
            return HS_CHUNKED_DATA;
        }
        case S_DATA_CR:
            if (c != '\r') {
                *p = q;
                return fail(d, "chunk data longer than its size");
            }
            d->state = S_DATA_LF;
            q++;
            break;
        case S_DATA_LF:
            if (c != '\n') {
                *p = q;
                return fail(d, "chunk data does not end in CRLF");
            }
            d->state = S_SIZE;
            d->remain = 0;
            d->count = 0;
            q++;
            break;
        case S_TRAILER:
            if (c == '\r') {
                d->state = S_END_LF;
                q++;
                break;
            }
            d->state = S_TRAILER_IN;
            break;
        case S_TRAILER_IN:
            if (++d->count > HS_CHUNKED_TRAILER_MAX) {
                *p = q;
                return fail(d, "trailer section too long");
            }
            if (c == '\r') {
                d->state = S_TRAILER_LF;
            } else if (c == '\n' || c == 0) {
                *p = q;
                return fail(d, "bad character in a trailer field");
            }
            q++;
            break;
        case S_TRAILER_LF:
            if (c != '\n') {
                *p = q;
                return fail(d, "trailer field does not end in CRLF");
            }
            d->state = S_TRAILER;
            q++;
            break;
        case S_END_LF:
            if (c != '\n') {
                *p = q;
                return fail(d, "chunked body does not end in CRLF");
            }
            d->state = S_DONE;
            q++;
            break;
        }
    }
    *p = q;
    return rc;
}
