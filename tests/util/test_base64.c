/*
 * Base64 (util/base64.c): what a client would notice is a token part that decodes although a
 * strict JWT library refuses it (padding, white space, '+' or '/', stray trailing bits: two
 * texts for one token), or a correct one refused; what a JSON reader of MessagePack bin values
 * would notice is standard base64 that is not RFC 4648's.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/base64.h"

/* Decodes a C string from an allocation of exactly its length (ASan sees a read past it). */
static long dec(const char *s, uint8_t *out, size_t cap)
{
    size_t n = strlen(s);
    char *copy = malloc(n ? n : 1);
    cr_assert_not_null(copy);
    memcpy(copy, s, n);
    long r = hs_base64url_decode(copy, n, out, cap);
    free(copy);
    return r;
}

/* RFC 4648 section 10, in both alphabets (the vectors use no '+' or '/'). */
static const struct {
    const char *raw, *std, *url;
} rfc[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

Test(base64, rfc4648_vectors_encode_in_both_alphabets)
{
    for (size_t i = 0; i < sizeof rfc / sizeof *rfc; i++) {
        size_t n = strlen(rfc[i].raw);
        char out[32];
        memset(out, 'x', sizeof out);
        cr_assert_eq(hs_base64_encode(rfc[i].raw, n, out), strlen(rfc[i].std));
        cr_assert_str_eq(out, rfc[i].std);
        cr_assert_eq(strlen(out), HS_BASE64_LEN(n));
        memset(out, 'x', sizeof out);
        cr_assert_eq(hs_base64url_encode(rfc[i].raw, n, out), strlen(rfc[i].url));
        cr_assert_str_eq(out, rfc[i].url);
        cr_assert_eq(strlen(out), HS_BASE64URL_LEN(n));
    }
}

Test(base64, rfc4648_vectors_decode_unpadded)
{
    for (size_t i = 0; i < sizeof rfc / sizeof *rfc; i++) {
        uint8_t out[16];
        long r = dec(rfc[i].url, out, sizeof out);
        cr_assert_eq(r, (long)strlen(rfc[i].raw), "%s: %ld", rfc[i].url, r);
        cr_assert_eq(memcmp(out, rfc[i].raw, (size_t)r), 0);
        cr_assert_eq(HS_BASE64URL_DECODED_LEN(strlen(rfc[i].url)), (size_t)r);
    }
}

Test(base64, the_two_alphabets_differ_in_62_and_63)
{
    const uint8_t b[] = {0xfb, 0xff, 0xbf};
    char out[8];
    hs_base64_encode(b, 3, out);
    cr_assert_str_eq(out, "+/+/");
    hs_base64url_encode(b, 3, out);
    cr_assert_str_eq(out, "-_-_");
    uint8_t back[3];
    cr_assert_eq(dec("-_-_", back, sizeof back), 3);
    cr_assert_eq(memcmp(back, b, 3), 0);
    cr_assert_eq(dec("+/+/", back, sizeof back), -1, "the standard alphabet is not base64url");
}

Test(base64, refuses_padding_white_space_and_foreign_characters)
{
    static const char *bad[] = {
        "Zg==",  "Zm8=", "Zg=",  "Zm9v====", "=",    "Zm9v Yg", "Zm9v\nYg",
        " Zm9v", "Zm.9", "Zm9+", "Zm9/",     "Zm9*", "Zm\x80v", "Zm9vYg\t",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint8_t out[16];
        cr_assert_eq(dec(bad[i], out, sizeof out), -1, "accepted '%s'", bad[i]);
    }
    /* a NUL inside the given length is a character like any other */
    uint8_t out[4];
    cr_assert_eq(hs_base64url_decode("Zm\0v", 4, out, sizeof out), -1);
}

Test(base64, refuses_a_length_of_one_more_than_a_multiple_of_four)
{
    uint8_t out[16];
    cr_assert_eq(dec("Z", out, sizeof out), -1);
    cr_assert_eq(dec("Zm9vY", out, sizeof out), -1);
    cr_assert_eq(dec("Zm9vYmFyZ", out, sizeof out), -1);
}

Test(base64, refuses_non_canonical_trailing_bits)
{
    uint8_t out[16];
    /* "f" is Zg; Zh..Zv carry bits past the byte: other texts for the same byte */
    cr_assert_eq(dec("Zg", out, sizeof out), 1);
    cr_assert_eq(dec("Zh", out, sizeof out), -1);
    cr_assert_eq(dec("Zv", out, sizeof out), -1);
    cr_assert_eq(dec("Z_", out, sizeof out), -1);
    /* "fo" is Zm8; Zm9..Zm_ set the two bits past the second byte */
    cr_assert_eq(dec("Zm8", out, sizeof out), 2);
    cr_assert_eq(dec("Zm9", out, sizeof out), -1);
    cr_assert_eq(dec("Zm-", out, sizeof out), -1);
    cr_assert_eq(dec("Zm9vZm9", out, sizeof out), -1);
}

Test(base64, says_when_valid_text_does_not_fit)
{
    uint8_t out[6];
    memset(out, 0xee, sizeof out);
    cr_assert_eq(dec("Zm9vYmFy", out, 5), -2);
    cr_assert_eq(dec("Zm9vYmFy", out, 6), 6);
    cr_assert_eq(memcmp(out, "foobar", 6), 0);
    cr_assert_eq(dec("Zm9vYg", out, 3), -2);
    cr_assert_eq(dec("Zm9vYg", out, 4), 4);
    /* invalid text is invalid whatever the room */
    cr_assert_eq(dec("Zm9vY=", out, 0), -1);
    cr_assert_eq(hs_base64url_decode("", 0, NULL, 0), 0);
}

Test(base64, every_byte_and_every_length_round_trips)
{
    uint8_t raw[300];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t)(i * 7 + (i >> 8));
    for (size_t n = 0; n <= sizeof raw; n++) {
        char text[HS_BASE64_LEN(sizeof raw) + 1];
        size_t l = hs_base64url_encode(raw, n, text);
        cr_assert_eq(l, HS_BASE64URL_LEN(n));
        cr_assert_eq(text[l], '\0');
        cr_assert_null(strpbrk(text, "+/="), "n=%zu: %s", n, text);
        uint8_t back[sizeof raw];
        cr_assert_eq(dec(text, back, n), (long)n, "n=%zu", n);
        cr_assert_eq(memcmp(back, raw, n), 0, "n=%zu", n);
        if (n)
            cr_assert_eq(dec(text, back, n - 1), -2);
        size_t s = hs_base64_encode(raw, n, text);
        cr_assert_eq(s, HS_BASE64_LEN(n));
        cr_assert_eq(text[s], '\0');
        cr_assert_eq(s % 4, 0);
    }
}
