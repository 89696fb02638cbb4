/*
 * Stream permissions (proto/perms.c): what a token holder would notice is a stream they were
 * given refused, or one they were not given allowed: through a `*` in the middle of a pattern,
 * through a subject that holds `*` or `{sub}`, through `$all` reached by a prefix, or through
 * a claim of the wrong shape read as something else instead of refused.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "proto/perms.h"

/* Parses json from an allocation of exactly its length (ASan sees a read past it). */
static int parse(const char *json, hs_perms_t *p, char *why, size_t whylen)
{
    size_t n = strlen(json);
    char *copy = malloc(n ? n : 1);
    cr_assert_not_null(copy);
    memcpy(copy, json, n);
    int rc = hs_perms_parse(copy, n, p, why, whylen);
    free(copy);
    return rc;
}

static void parse_ok(const char *json, hs_perms_t *p)
{
    char why[128] = "";
    cr_assert_eq(parse(json, p, why, sizeof why), 0, "refused %s: %s", json, why);
}

static bool sub_ok(const hs_perms_t *p, const char *sub, const char *stream)
{
    return hs_perms_allows(p, HS_PERM_SUBSCRIBE, sub, stream, strlen(stream));
}

static bool pub_ok(const hs_perms_t *p, const char *sub, const char *stream)
{
    return hs_perms_allows(p, HS_PERM_PUBLISH, sub, stream, strlen(stream));
}

Test(perms, empty_object_gives_nothing)
{
    hs_perms_t p;
    parse_ok("{}", &p);
    cr_assert_eq(p.n[0] + p.n[1], 0);
    cr_assert_not(p.admin);
    cr_assert_not(sub_ok(&p, "alice", "orders"));
    cr_assert_not(pub_ok(&p, "alice", "orders"));
    cr_assert_not(sub_ok(&p, "alice", "$all"));
    hs_perms_free(&p);
}

Test(perms, exact_names_match_only_themselves_and_only_for_their_kind)
{
    hs_perms_t p;
    parse_ok("{\"subscribe\":[\"orders\",\"caf\\u00e9\"],\"publish\":[\"audit\"]}", &p);
    cr_assert_eq(p.n[HS_PERM_SUBSCRIBE], 2);
    cr_assert_str_eq(p.list[HS_PERM_SUBSCRIBE][1], "caf\xc3\xa9");
    cr_assert(sub_ok(&p, "alice", "orders"));
    cr_assert(sub_ok(&p, "alice", "caf\xc3\xa9"));
    cr_assert_not(sub_ok(&p, "alice", "orders2"));
    cr_assert_not(sub_ok(&p, "alice", "order"));
    cr_assert_not(sub_ok(&p, "alice", "Orders"));
    cr_assert_not(sub_ok(&p, "alice", ""));
    cr_assert_not(pub_ok(&p, "alice", "orders"), "subscribe does not give publish");
    cr_assert(pub_ok(&p, "alice", "audit"));
    cr_assert_not(sub_ok(&p, "alice", "audit"));
    /* the stream is a length-delimited name: a NUL inside it is part of it */
    cr_assert_not(hs_perms_allows(&p, HS_PERM_SUBSCRIBE, "alice", "orders\0x", 8));
    hs_perms_free(&p);
}

Test(perms, a_last_star_is_a_prefix)
{
    hs_perms_t p;
    parse_ok("{\"subscribe\":[\"orders-*\"]}", &p);
    cr_assert(sub_ok(&p, "", "orders-1"));
    cr_assert(sub_ok(&p, "", "orders-"));
    cr_assert(sub_ok(&p, "", "orders-eu-7"));
    cr_assert_not(sub_ok(&p, "", "orders"));
    cr_assert_not(sub_ok(&p, "", "xorders-1"));
    cr_assert_not(sub_ok(&p, "", "$all"));
    hs_perms_free(&p);
}

Test(perms, a_star_elsewhere_is_a_literal_character)
{
    hs_perms_t p;
    parse_ok("{\"subscribe\":[\"a*b\",\"*x\",\"c**\"]}", &p);
    cr_assert(sub_ok(&p, "", "a*b"));
    cr_assert_not(sub_ok(&p, "", "ab"));
    cr_assert_not(sub_ok(&p, "", "axb"));
    cr_assert_not(sub_ok(&p, "", "a*bc"));
    cr_assert(sub_ok(&p, "", "*x"));
    cr_assert_not(sub_ok(&p, "", "yx"));
    /* "c**": a literal '*' then the wildcard */
    cr_assert(sub_ok(&p, "", "c*"));
    cr_assert(sub_ok(&p, "", "c*zz"));
    cr_assert_not(sub_ok(&p, "", "czz"));
    hs_perms_free(&p);
}

Test(perms, sub_stands_for_the_subject)
{
    hs_perms_t p;
    parse_ok("{\"subscribe\":[\"user-{sub}-*\",\"inbox.{sub}\",\"{sub}/{sub}\"]}", &p);
    cr_assert(sub_ok(&p, "alice", "user-alice-orders"));
    cr_assert(sub_ok(&p, "alice", "user-alice-"));
    cr_assert_not(sub_ok(&p, "alice", "user-bob-orders"));
    cr_assert_not(sub_ok(&p, "alice", "user-alic-orders"));
    cr_assert_not(sub_ok(&p, "alice", "user-{sub}-orders"), "{sub} is not a literal");
    cr_assert(sub_ok(&p, "alice", "inbox.alice"));
    cr_assert_not(sub_ok(&p, "alice", "inbox.alice2"));
    cr_assert_not(sub_ok(&p, "bob", "inbox.alice"));
    cr_assert(sub_ok(&p, "bob", "bob/bob"));
    cr_assert_not(sub_ok(&p, "bob", "bob/alice"));
    hs_perms_free(&p);
}

Test(perms, a_subject_holding_star_or_sub_widens_nothing)
{
    hs_perms_t p;
    parse_ok("{\"subscribe\":[\"user-{sub}\",\"team-{sub}-*\"]}", &p);
    /* subject "*": only the stream literally named user-* */
    cr_assert(sub_ok(&p, "*", "user-*"));
    cr_assert_not(sub_ok(&p, "*", "user-alice"));
    cr_assert_not(sub_ok(&p, "*", "user-"));
    cr_assert_not(sub_ok(&p, "a*", "user-ab"));
    cr_assert(sub_ok(&p, "*", "team-*-x"));
    cr_assert_not(sub_ok(&p, "*", "team-a-x"));
    /* subject "{sub}" is not expanded again */
    cr_assert(sub_ok(&p, "{sub}", "user-{sub}"));
    cr_assert_not(sub_ok(&p, "{sub}", "user-alice"));
    /* a subject ending in '*' does not make the pattern a prefix */
    cr_assert_not(sub_ok(&p, "al*", "user-alice"));
    hs_perms_free(&p);
}

Test(perms, an_empty_subject_makes_sub_patterns_match_nothing)
{
    hs_perms_t p;
    parse_ok("{\"subscribe\":[\"user-{sub}\",\"user-{sub}*\",\"public\"]}", &p);
    cr_assert_not(sub_ok(&p, "", "user-"));
    cr_assert_not(sub_ok(&p, "", "user-x"));
    cr_assert_not(sub_ok(&p, NULL, "user-"));
    cr_assert_not(sub_ok(&p, NULL, "user-x"));
    cr_assert(sub_ok(&p, "", "public"), "other patterns still apply");
    cr_assert(sub_ok(&p, NULL, "public"));
    hs_perms_free(&p);
}

Test(perms, all_only_by_the_lone_star)
{
    hs_perms_t p;
    parse_ok("{\"subscribe\":[\"$*\",\"$all\",\"$a*\",\"{sub}\"],\"publish\":[\"*\"]}", &p);
    cr_assert_not(sub_ok(&p, "$all", "$all"), "not by $*, $all, $a* or {sub} = $all");
    cr_assert(sub_ok(&p, "", "$other"), "$* is an ordinary prefix for other names");
    cr_assert(pub_ok(&p, "", "$all"));
    cr_assert(pub_ok(&p, "", "anything"));
    cr_assert(pub_ok(&p, "", "$allx"));
    hs_perms_free(&p);
}

Test(perms, admin_true_false_absent)
{
    hs_perms_t p;
    parse_ok("{\"admin\":true}", &p);
    cr_assert(p.admin);
    hs_perms_free(&p);
    cr_assert_not(p.admin, "freed back to empty");
    parse_ok("{\"admin\":false,\"subscribe\":[]}", &p);
    cr_assert_not(p.admin);
    hs_perms_free(&p);
    parse_ok("{\"subscribe\":[\"x\"],\"other\":{\"admin\":true},\"x-admin\":1}", &p);
    cr_assert_not(p.admin, "unknown members are ignored, nested ones are not read");
    cr_assert_eq(p.n[HS_PERM_SUBSCRIBE], 1);
    hs_perms_free(&p);
}

Test(perms, members_of_the_wrong_type_are_errors)
{
    static const char *bad[] = {
        "{\"admin\":1}",
        "{\"admin\":\"true\"}",
        "{\"admin\":null}",
        "{\"subscribe\":\"orders\"}",
        "{\"subscribe\":null}",
        "{\"subscribe\":{}}",
        "{\"publish\":[1]}",
        "{\"publish\":[\"a\",null]}",
        "{\"publish\":[[\"a\"]]}",
        "{\"publish\":[\"\"]}",
        "{\"publish\":[\"a\\u0000b\"]}",
        "{\"publish\":[\"a\"],\"publish\":[\"b\"]}",
        "[]",
        "\"x\"",
        "null",
        "",
        "{",
        "{\"subscribe\":[\"a\"]} x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        hs_perms_t p;
        char why[128] = "";
        cr_assert_eq(parse(bad[i], &p, why, sizeof why), HS_EINVAL, "accepted %s", bad[i]);
        cr_assert_neq(why[0], '\0', "%s: no reason", bad[i]);
        cr_assert_eq(p.n[0] + p.n[1], 0, "%s: left patterns", bad[i]);
        cr_assert_null(p.list[0]);
        cr_assert_null(p.list[1]);
        cr_assert_not(p.admin);
    }
}

Test(perms, at_most_64_patterns_per_list)
{
    char json[4096];
    size_t o = (size_t)snprintf(json, sizeof json, "{\"publish\":[");
    for (int i = 0; i < HS_PERMS_MAX_PATTERNS; i++)
        o += (size_t)snprintf(json + o, sizeof json - o, "%s\"s%d\"", i ? "," : "", i);
    snprintf(json + o, sizeof json - o, "],\"subscribe\":[\"x\"]}");
    hs_perms_t p;
    parse_ok(json, &p);
    cr_assert_eq(p.n[HS_PERM_PUBLISH], HS_PERMS_MAX_PATTERNS);
    cr_assert(pub_ok(&p, "", "s63"));
    cr_assert_eq(hs_perms_add(&p, HS_PERM_PUBLISH, "more"), HS_EINVAL);
    cr_assert_eq(hs_perms_add(&p, HS_PERM_SUBSCRIBE, "more"), 0, "the other list has room");
    hs_perms_free(&p);

    snprintf(json + o, sizeof json - o, ",\"s64\"]}");
    char why[128] = "";
    cr_assert_eq(parse(json, &p, why, sizeof why), HS_EINVAL);
    cr_assert_str_eq(why, "too many patterns");
}

Test(perms, patterns_of_at_most_512_bytes)
{
    char pat[HS_PERMS_MAX_PATTERN + 2];
    memset(pat, 'a', sizeof pat);
    pat[HS_PERMS_MAX_PATTERN] = '\0';
    char json[HS_PERMS_MAX_PATTERN + 64];
    snprintf(json, sizeof json, "{\"subscribe\":[\"%s\"]}", pat);
    hs_perms_t p;
    parse_ok(json, &p);
    cr_assert(sub_ok(&p, "", pat));
    hs_perms_free(&p);

    pat[HS_PERMS_MAX_PATTERN] = 'a';
    pat[HS_PERMS_MAX_PATTERN + 1] = '\0';
    snprintf(json, sizeof json, "{\"subscribe\":[\"%s\"]}", pat);
    char why[128] = "";
    cr_assert_eq(parse(json, &p, why, sizeof why), HS_EINVAL);
    cr_assert_str_eq(why, "pattern too long");
    cr_assert_eq(hs_perms_add(&p, HS_PERM_SUBSCRIBE, pat), HS_EINVAL);
    /* escapes count as what they unescape to: 257 \u00e9 are 514 bytes of UTF-8 */
    char big[6 * 300 + 64];
    size_t o = (size_t)snprintf(big, sizeof big, "{\"subscribe\":[\"");
    for (int i = 0; i < 257; i++)
        o += (size_t)snprintf(big + o, sizeof big - o, "\\u00e9");
    snprintf(big + o, sizeof big - o, "\"]}");
    cr_assert_eq(parse(big, &p, why, sizeof why), HS_EINVAL, "514 bytes unescaped");
}

Test(perms, add_builds_permissions_by_hand)
{
    hs_perms_t p;
    memset(&p, 0, sizeof p);
    cr_assert_eq(hs_perms_add(&p, HS_PERM_SUBSCRIBE, "user-{sub}-*"), 0);
    cr_assert_eq(hs_perms_add(&p, HS_PERM_PUBLISH, "audit"), 0);
    cr_assert_eq(hs_perms_add(&p, HS_PERM_PUBLISH, ""), HS_EINVAL);
    cr_assert_eq(hs_perms_add(&p, HS_PERM_PUBLISH, NULL), HS_EINVAL);
    cr_assert_eq(hs_perms_add(&p, (hs_perm_t)2, "x"), HS_EINVAL);
    cr_assert_eq(hs_perms_add(&p, HS_PERM_PUBLISH, "bad\xff"), HS_EINVAL);
    cr_assert_eq(p.n[HS_PERM_PUBLISH], 1);
    cr_assert(sub_ok(&p, "bob", "user-bob-1"));
    cr_assert_not(sub_ok(&p, "bob", "audit"));
    cr_assert(pub_ok(&p, "bob", "audit"));
    cr_assert_not(hs_perms_allows(&p, (hs_perm_t)7, "bob", "audit", 5));
    /* many additions grow the list */
    for (int i = 0; i < 40; i++) {
        char s[16];
        snprintf(s, sizeof s, "s%d", i);
        cr_assert_eq(hs_perms_add(&p, HS_PERM_PUBLISH, s), 0);
    }
    cr_assert(pub_ok(&p, "", "s39"));
    cr_assert(pub_ok(&p, "", "audit"));
    hs_perms_free(&p);
    cr_assert_eq(p.n[HS_PERM_PUBLISH], 0);
    hs_perms_free(&p); /* twice is harmless */
}
