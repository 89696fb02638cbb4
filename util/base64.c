/* Base64 and base64url (see base64.h). */
#include "util/base64.h"

#include <stdbool.h>

static const char url_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char std_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of a base64url character, or -1. */
static int url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long hs_base64url_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    if (n % 4 == 1)
        return -1; /* 6 bits cannot make a byte */
    size_t want = HS_BASE64URL_DECODED_LEN(n);
    /* validate every character first, so that "not base64url" wins over "does not fit" */
    for (size_t i = 0; i < n; i++)
        if (url_value((unsigned char)in[i]) < 0)
            return -1;
    if (n % 4 == 2 && (url_value((unsigned char)in[n - 1]) & 0x0f))
        return -1; /* 2 characters, 12 bits, 1 byte: the last 4 bits must be zero */
    if (n % 4 == 3 && (url_value((unsigned char)in[n - 1]) & 0x03))
        return -1; /* 3 characters, 18 bits, 2 bytes: the last 2 bits must be zero */
    if (want > cap)
        return -2;
    size_t o = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t v = (uint32_t)url_value((unsigned char)in[i]) << 18 |
                     (uint32_t)url_value((unsigned char)in[i + 1]) << 12 |
                     (uint32_t)url_value((unsigned char)in[i + 2]) << 6 |
                     (uint32_t)url_value((unsigned char)in[i + 3]);
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    if (n - i >= 2) {
        uint32_t v = (uint32_t)url_value((unsigned char)in[i]) << 18 |
                     (uint32_t)url_value((unsigned char)in[i + 1]) << 12;
        if (n - i == 3)
            v |= (uint32_t)url_value((unsigned char)in[i + 2]) << 6;
        out[o++] = (uint8_t)(v >> 16);
        if (n - i == 3)
            out[o++] = (uint8_t)(v >> 8);
    }
    return (long)o;
}

static size_t encode(const char *alphabet, bool pad, const void *in, size_t n, char *out)
{
    const uint8_t *s = in;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (n - i == 2)
            v |= (uint32_t)s[i + 1] << 8;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        if (n - i == 2)
            out[o++] = alphabet[(v >> 6) & 63];
        else if (pad)
            out[o++] = '=';
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

size_t hs_base64url_encode(const void *in, size_t n, char *out)
{
    return encode(url_alphabet, false, in, n, out);
}

size_t hs_base64_encode(const void *in, size_t n, char *out)
{
    return encode(std_alphabet, true, in, n, out);
}
