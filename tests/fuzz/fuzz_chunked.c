/*
 * libFuzzer target: the chunked request-body decoder (proto/chunked.h), fed the input in pieces
 * whose sizes come from the input's first byte (1 to 256 bytes), as a socket would deliver it.
 * Checks: data spans lie inside the piece given, add up to no more than the input, DONE and
 * ERROR are final and repeatable, DONE leaves the position inside the input, and the same input
 * given whole decodes to the same bytes and the same outcome.
 */
#include "fuzz_common.h"

#include "proto/chunked.h"

/* Decodes in pieces of `step` bytes; the decoded body goes to out (cap n). Returns the outcome
 * (DONE, ERROR, or NEED when the input ran out) and the body length in *len. */
static int decode(const uint8_t *in, size_t n, size_t step, uint8_t *out, size_t *len)
{
    hs_chunked_t d;
    hs_chunked_init(&d);
    size_t o = 0;
    int last = HS_CHUNKED_NEED;
    for (size_t off = 0; off < n && last == HS_CHUNKED_NEED;) {
        size_t k = n - off < step ? n - off : step;
        const uint8_t *p = in + off, *end = p + k;
        for (;;) {
            const uint8_t *data;
            size_t dl;
            int rc = hs_chunked_next(&d, &p, end, &data, &dl);
            CHECK(p >= in + off && p <= end);
            if (rc == HS_CHUNKED_DATA) {
                CHECK(dl > 0 && data >= in + off && data + dl <= end);
                CHECK(o + dl <= n);
                memcpy(out + o, data, dl);
                o += dl;
                continue;
            }
            if (rc == HS_CHUNKED_NEED) {
                CHECK(p == end);
                break;
            }
            CHECK(rc == HS_CHUNKED_DONE || rc == HS_CHUNKED_ERROR);
            if (rc == HS_CHUNKED_ERROR)
                CHECK(d.why != NULL);
            /* final: asking again gives the same, and consumes nothing */
            const uint8_t *q = p;
            CHECK(hs_chunked_next(&d, &q, end, &data, &dl) == rc && q == p);
            last = rc;
            break;
        }
        off += k;
    }
    *len = o;
    return last;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (!n)
        return 0;
    size_t step = (size_t)data[0] + 1;
    uint8_t *a = fz_alloc(n), *b = fz_alloc(n);
    size_t la, lb;
    int ra = decode(data + 1, n - 1, step, a, &la);
    int rb = decode(data + 1, n - 1, n, b, &lb);
    CHECK(ra == rb);
    CHECK(la == lb && (!la || !memcmp(a, b, la)));
    free(a);
    free(b);
    return 0;
}
