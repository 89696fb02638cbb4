/*
 * UTF-8 (util/utf8.c): the one validator of every name, type, id and JSON text that reaches a
 * client. What a user would notice: a stream name with an overlong '/' or a surrogate accepted,
 * an emoji rejected, a message cut in the middle of a character.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "util/utf8.h"

#define U(s) ((const unsigned char *)(s))

typedef struct seq {
    const char *bytes;
    size_t len;
    uint32_t cp;
} seq_t;

/* Every length's smallest and largest character, and the edges around the surrogates. */
static const seq_t good[] = {
    {"\x00", 1, 0x0},
    {"A", 1, 0x41},
    {"\x7f", 1, 0x7F},
    {"\xc2\x80", 2, 0x80},
    {"\xc3\xa9", 2, 0xE9},
    {"\xdf\xbf", 2, 0x7FF},
    {"\xe0\xa0\x80", 3, 0x800},
    {"\xe2\x82\xac", 3, 0x20AC},
    {"\xed\x9f\xbf", 3, 0xD7FF},
    {"\xee\x80\x80", 3, 0xE000},
    {"\xef\xbf\xbd", 3, 0xFFFD},
    {"\xef\xbf\xbf", 3, 0xFFFF},
    {"\xf0\x90\x80\x80", 4, 0x10000},
    {"\xf0\x9f\x98\x80", 4, 0x1F600},
    {"\xf3\xbf\xbf\xbf", 4, 0xFFFFF},
    {"\xf4\x80\x80\x80", 4, 0x100000},
    {"\xf4\x8f\xbf\xbf", 4, 0x10FFFF},
};

Test(utf8, decodes_each_length_at_its_edges)
{
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        uint32_t cp = 0xDEADBEEF;
        /* followed by more bytes: only the first character is measured */
        unsigned char buf[8];
        memcpy(buf, good[i].bytes, good[i].len);
        memcpy(buf + good[i].len, "zz", 2);
        cr_assert_eq(hs_utf8_char(buf, good[i].len + 2, &cp), good[i].len, "case %zu", i);
        cr_assert_eq(cp, good[i].cp, "case %zu: U+%04X, expected U+%04X", i, cp, good[i].cp);
        cr_assert_eq(hs_utf8_char(U(good[i].bytes), good[i].len, NULL), good[i].len);
        cr_assert(hs_utf8_valid(good[i].bytes, good[i].len), "case %zu", i);
    }
    cr_assert_eq(hs_utf8_char(U("A"), 0, NULL), 0, "nothing to read");
}

static void assert_rejected(const char *bytes, size_t len, const char *what)
{
    uint32_t cp = 0x12345;
    cr_assert_eq(hs_utf8_char(U(bytes), len, &cp), 0, "%s accepted", what);
    cr_assert_eq(cp, 0x12345, "%s: code point written on failure", what);
    cr_assert_not(hs_utf8_valid(bytes, len), "%s valid", what);
    /* embedded in ASCII text, the whole text is invalid */
    char text[16];
    memcpy(text, "ab", 2);
    memcpy(text + 2, bytes, len);
    memcpy(text + 2 + len, "cd", 2);
    cr_assert_not(hs_utf8_valid(text, len + 4), "%s valid inside text", what);
}

Test(utf8, rejects_overlong_forms)
{
    assert_rejected("\xc0\x80", 2, "overlong NUL (C0 80)");
    assert_rejected("\xc0\xaf", 2, "overlong '/' (C0 AF)");
    assert_rejected("\xc1\xbf", 2, "overlong U+7F (C1 BF)");
    assert_rejected("\xe0\x80\x80", 3, "3-byte overlong NUL");
    assert_rejected("\xe0\x80\xaf", 3, "3-byte overlong '/'");
    assert_rejected("\xe0\x9f\xbf", 3, "3-byte overlong U+7FF");
    assert_rejected("\xf0\x80\x80\x80", 4, "4-byte overlong NUL");
    assert_rejected("\xf0\x80\x80\xaf", 4, "4-byte overlong '/'");
    assert_rejected("\xf0\x8f\xbf\xbf", 4, "4-byte overlong U+FFFF");
}

Test(utf8, rejects_surrogates)
{
    assert_rejected("\xed\xa0\x80", 3, "U+D800");
    assert_rejected("\xed\xad\xbf", 3, "U+DB7F");
    assert_rejected("\xed\xb0\x80", 3, "U+DC00");
    assert_rejected("\xed\xbf\xbf", 3, "U+DFFF");
    /* CESU-8: a surrogate pair encoded as two 3-byte sequences */
    assert_rejected("\xed\xa0\xbd\xed\xb8\x80", 6, "CESU-8 pair");
}

Test(utf8, rejects_above_u10ffff_and_impossible_bytes)
{
    assert_rejected("\xf4\x90\x80\x80", 4, "U+110000");
    assert_rejected("\xf4\xbf\xbf\xbf", 4, "U+13FFFF");
    assert_rejected("\xf5\x80\x80\x80", 4, "F5 lead");
    assert_rejected("\xf7\xbf\xbf\xbf", 4, "F7 lead (U+1FFFFF)");
    assert_rejected("\xf8\x88\x80\x80\x80", 5, "5-byte form");
    assert_rejected("\xfc\x84\x80\x80\x80\x80", 6, "6-byte form");
    assert_rejected("\xfe", 1, "FE");
    assert_rejected("\xff", 1, "FF");
}

Test(utf8, rejects_stray_and_bad_continuations)
{
    assert_rejected("\x80", 1, "lone continuation 80");
    assert_rejected("\xbf", 1, "lone continuation BF");
    assert_rejected("\x80\x80\x80", 3, "continuation run");
    assert_rejected("\xc3\x28", 2, "2-byte with ASCII second byte");
    assert_rejected("\xc3\xc3\xa9", 3, "lead followed by a lead");
    assert_rejected("\xe2\x28\xa1", 3, "3-byte, bad second byte");
    assert_rejected("\xe2\x82\x28", 3, "3-byte, bad third byte");
    assert_rejected("\xf0\x28\x8c\xbc", 4, "4-byte, bad second byte");
    assert_rejected("\xf0\x90\x28\xbc", 4, "4-byte, bad third byte");
    assert_rejected("\xf0\x9f\x98\x28", 4, "4-byte, bad fourth byte");
}

Test(utf8, rejects_every_truncation_of_a_multibyte_character)
{
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        for (size_t cut = 1; cut < good[i].len; cut++) {
            cr_assert_eq(hs_utf8_char(U(good[i].bytes), cut, NULL), 0, "U+%04X cut at %zu",
                         good[i].cp, cut);
            cr_assert_not(hs_utf8_valid(good[i].bytes, cut), "U+%04X cut at %zu valid", good[i].cp,
                          cut);
            /* at the end of otherwise valid text */
            char text[8] = "ok";
            memcpy(text + 2, good[i].bytes, cut);
            cr_assert_not(hs_utf8_valid(text, 2 + cut));
        }
    }
}

Test(utf8, valid_text_and_nul_bytes)
{
    const char s[] = "caf\xc3\xa9 \xe2\x82\xac\x00 \xf0\x9f\x98\x80!";
    cr_assert(hs_utf8_valid(s, sizeof(s) - 1), "NUL is a character");
    cr_assert(hs_utf8_valid("", 0));
    cr_assert(hs_utf8_valid(NULL, 0));
    /* the first bad byte anywhere makes the whole invalid, however far in */
    char big[1000];
    memset(big, 'a', sizeof(big));
    cr_assert(hs_utf8_valid(big, sizeof(big)));
    big[997] = (char)0xc3;
    cr_assert_not(hs_utf8_valid(big, sizeof(big)));
    cr_assert_not(hs_utf8_valid(big, 998), "truncated at the very end");
    big[998] = (char)0xa9;
    cr_assert(hs_utf8_valid(big, sizeof(big)));
}

Test(utf8, put_round_trips_every_code_point)
{
    char out[4];
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        size_t want = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        size_t l = hs_utf8_put(cp, out);
        if (l != want)
            cr_assert_fail("U+%04X written in %zu bytes, expected %zu", cp, l, want);
        uint32_t back = 0;
        if (hs_utf8_char(U(out), l, &back) != l || back != cp)
            cr_assert_fail("U+%04X does not decode back (got U+%04X)", cp, back);
    }
}

Test(utf8, boundary_cuts_only_whole_characters)
{
    /* a, é (2), € (3), 😀 (4), b */
    const char s[] = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                     "b";
    /* n -> the expected boundary */
    const size_t expect[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 11};
    for (size_t n = 0; n < sizeof(expect) / sizeof(*expect); n++) {
        size_t b = hs_utf8_boundary(s, n);
        cr_assert_eq(b, expect[n], "cut at %zu: boundary %zu, expected %zu", n, b, expect[n]);
        cr_assert(hs_utf8_valid(s, b), "cut at %zu leaves invalid text", n);
    }
}

Test(utf8, boundary_on_text_of_many_characters)
{
    /* every cut of valid text keeps a valid prefix, drops fewer than 4 bytes, and keeps all of
     * it when the cut already falls between characters */
    char text[400];
    size_t n = 0;
    bool between[401] = {false};
    between[0] = true;
    for (int i = 0; n + 4 < sizeof(text); i++) {
        n += hs_utf8_put((uint32_t)(i % 4 == 0   ? 'x'
                                    : i % 4 == 1 ? 0x3B1
                                    : i % 4 == 2 ? 0x4E2D
                                                 : 0x1F680),
                         text + n);
        between[n] = true;
    }
    for (size_t k = 0; k <= n; k++) {
        size_t b = hs_utf8_boundary(text, k);
        cr_assert(b <= k && k - b < 4, "cut at %zu: boundary %zu", k, b);
        cr_assert(hs_utf8_valid(text, b), "cut at %zu: %zu bytes are not valid", k, b);
        cr_assert(between[b], "cut at %zu: %zu is inside a character", k, b);
        if (between[k])
            cr_assert_eq(b, k, "cut at %zu already between characters, got %zu", k, b);
    }
}

Test(utf8, boundary_counts_other_bytes_as_they_are)
{
    cr_assert_eq(hs_utf8_boundary("abc", 3), 3);
    cr_assert_eq(hs_utf8_boundary("a\xc3", 2), 1, "a lone lead byte at the end is dropped");
    cr_assert_eq(hs_utf8_boundary("a\xf0\x9f", 3), 1);
    /* nothing to cut at: bytes that are not a character's start are left alone */
    cr_assert_eq(hs_utf8_boundary("\x80\x80", 2), 2);
    cr_assert_eq(hs_utf8_boundary("a\x80", 2), 2);
}
