/*
 * The chunked transfer coding of HTTP/1.1 request bodies (RFC 9112 section 7.1), decoded
 * incrementally as the bytes arrive.
 *
 * libwebsockets 4.1 does not decode request bodies sent with `Transfer-Encoding: chunked`: it
 * hands the raw bytes, framing included, to the body callback. This decoder takes them in pieces
 * of any size and gives back the data spans, pointing into the caller's input (no copy, no
 * allocation). It is strict where leniency has been used for request smuggling: sizes are hex
 * digits only, every line ends in CRLF, chunk extensions and trailer fields are skipped but
 * bounded in length. It never reads past the end it is given. Any thread; one decoder per body.
 */
#ifndef HS_PROTO_CHUNKED_H
#define HS_PROTO_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

/* Most bytes of chunk extensions on one size line, and of the whole trailer section. */
#define HS_CHUNKED_EXT_MAX     1024
#define HS_CHUNKED_TRAILER_MAX 8192

typedef struct hs_chunked {
    int state;
    uint64_t remain; /* data bytes left in the current chunk */
    size_t count;    /* digits of the size, or bytes of the extension / trailer seen so far */
    const char *why; /* the reason, once HS_CHUNKED_ERROR was returned */
} hs_chunked_t;

enum {
    HS_CHUNKED_NEED = 0,  /* everything given was consumed; more input is needed */
    HS_CHUNKED_DATA = 1,  /* *data, *dlen: a span of body data inside the input */
    HS_CHUNKED_DONE = 2,  /* the last chunk and the trailer section are complete */
    HS_CHUNKED_ERROR = -1 /* malformed; d->why says how */
};

void hs_chunked_init(hs_chunked_t *d);

/*
 * Consumes input from *p (up to end) and returns at the first event: DATA with the span in
 * *data / *dlen (*p moved past it), NEED when *p reached end, DONE with *p at the first byte after
 * the body (whatever follows belongs to the connection, not the body), or ERROR. After DONE or
 * ERROR it keeps returning the same. The data spans of one body add up to exactly its decoded
 * bytes.
 */
int hs_chunked_next(hs_chunked_t *d, const uint8_t **p, const uint8_t *end, const uint8_t **data,
                    size_t *dlen);

#endif
