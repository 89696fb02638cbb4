/*
 * Base64 (RFC 4648): the URL-safe alphabet without padding (section 5), as JSON Web Tokens use
 * it, and the standard alphabet with padding (section 4), as MessagePack bin values become in
 * JSON. Pure functions: no allocation, no state, any thread.
 *
 * Decoding is strict, so that one byte string has exactly one text: only the characters
 * A-Z a-z 0-9 - _, no padding (a '=' is refused, not skipped), no white space, a length that is
 * not 1 more than a multiple of 4, and the unused low bits of the last character zero.
 */
#ifndef HS_UTIL_BASE64_H
#define HS_UTIL_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Characters of the base64url (unpadded) text of n bytes: ceil(4n / 3). */
#define HS_BASE64URL_LEN(n) ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
/* Characters of the standard (padded) text of n bytes: 4 * ceil(n / 3). */
#define HS_BASE64_LEN(n) (((n) + 2) / 3 * 4)
/* Bytes that n characters of valid base64url text decode to (n % 4 != 1). */
#define HS_BASE64URL_DECODED_LEN(n) ((n) / 4 * 3 + ((n) % 4 ? (n) % 4 - 1 : 0))

/*
 * Decodes the base64url text in[0..n) (unpadded, strict: see above) into out (cap bytes).
 * Returns the decoded length (HS_BASE64URL_DECODED_LEN(n)), -1 when the text is not valid
 * base64url, or -2 when it is but does not fit cap (nothing useful is left in out then).
 */
long hs_base64url_decode(const char *in, size_t n, uint8_t *out, size_t cap);

/* Writes the base64url text of in[0..n) without padding, and a NUL, to out (which must have
 * room for HS_BASE64URL_LEN(n) + 1 bytes). Returns the characters written, NUL excluded. */
size_t hs_base64url_encode(const void *in, size_t n, char *out);

/* Writes the standard base64 text of in[0..n) with '=' padding, and a NUL, to out (room for
 * HS_BASE64_LEN(n) + 1 bytes). Returns the characters written, NUL excluded. */
size_t hs_base64_encode(const void *in, size_t n, char *out);

#endif
