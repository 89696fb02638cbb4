/*
 * What /eventstreamhub relies on from util/: GUIDs as .NET writes them (hs_uuid_parse), the
 * stream GUID of a name (hs_uuid_of_name), ASCII folding of names (hs_ascii_fold), and times as
 * a DateTimeOffset travels (hs_parse_iso_time, hs_format_offset_time).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "util/time.h"
#include "util/utf8.h"
#include "util/uuid.h"

#define G "0b8e1c7a-12ab-4cde-8f00-00000000abcd"

Test(ids, parses_every_dotnet_guid_form_into_lower_case_d)
{
    const char *forms[] = {
        G,
        "0B8E1C7A-12AB-4CDE-8F00-00000000ABCD",
        "0b8e1c7a12ab4cde8f0000000000abcd",
        "{0b8e1c7a-12ab-4cde-8f00-00000000abcd}",
        "(0B8E1C7A-12ab-4cde-8f00-00000000abcd)",
        "{0b8e1c7a12ab4cde8f0000000000abcd}",
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char out[37] = "";
        cr_assert(hs_uuid_parse(forms[i], strlen(forms[i]), out), "%s", forms[i]);
        cr_assert_str_eq(out, G, "%s", forms[i]);
    }
}

Test(ids, refuses_what_is_not_a_guid)
{
    const char *bad[] = {
        "",
        "0b8e1c7a-12ab-4cde-8f00-00000000abc",    /* one short */
        "0b8e1c7a-12ab-4cde-8f00-00000000abcde",  /* one long */
        "0b8e1c7a-12ab-4cde-8f00-00000000abcg",   /* not hex */
        "0b8e1c7a_12ab-4cde-8f00-00000000abcd",   /* dash misplaced */
        "0b8e1c7a-12ab-4cde-8f0000-000000abcd",   /* dashes in the wrong places */
        "{0b8e1c7a-12ab-4cde-8f00-00000000abcd",  /* unbalanced */
        "[0b8e1c7a-12ab-4cde-8f00-00000000abcd]", /* not a .NET form */
        "0b8e1c7a12ab4cde8f0000000000abc-",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[37] = "unchanged";
        cr_assert(!hs_uuid_parse(bad[i], strlen(bad[i]), out), "%s", bad[i]);
    }
}

Test(ids, the_guid_of_a_name_is_stable_distinct_and_version_8)
{
    char a[37], b[37], c[37], d[37];
    hs_uuid_of_name("orders", 6, a);
    hs_uuid_of_name("orders", 6, b);
    hs_uuid_of_name("Orders", 6, c);
    hs_uuid_of_name("orders\0", 7, d);
    cr_assert_str_eq(a, b);
    cr_assert_str_neq(a, c, "names differ in case: their GUIDs too");
    cr_assert_str_neq(a, d, "the length counts");
    char back[37];
    cr_assert(hs_uuid_parse(a, 36, back));
    cr_assert_str_eq(back, a);
    cr_assert_eq(a[14], '8', "version 8: %s", a);
    cr_assert(strchr("89ab", a[19]), "RFC 9562 variant: %s", a);
    /* pinned: a stream's StreamId must not change from one release to the next */
    cr_assert_str_eq(a, "c156d118-d8b9-80eb-bd40-05d9d698e278", "%s", a);
}

Test(ids, ascii_fold_lowers_letters_only)
{
    const char in[] = "AbZ-09_Ä\xc3\x84@[`{";
    char out[sizeof in];
    hs_ascii_fold(in, sizeof in - 1, out);
    out[sizeof in - 1] = '\0';
    cr_assert_str_eq(out, "abz-09_Ä\xc3\x84@[`{");
}

Test(ids, iso_times_with_and_without_offsets)
{
    struct {
        const char *s;
        int64_t us;
    } ok[] = {
        {"2026-12-04", 1796342400000000},
        {"2026-12-04T18:30", 1796409000000000},
        {"2026-12-04T18:30:05Z", 1796409005000000},
        {"2026-12-04T18:30:05.5Z", 1796409005500000},
        {"2026-12-04T18:30:05.1234567+00:00", 1796409005123456},
        {"2026-12-04T20:30:05+02:00", 1796409005000000},
        {"2026-12-04T16:00:05-02:30", 1796409005000000},
        {"2026-12-04 18:30:05", 1796409005000000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t us = 0;
        cr_assert(hs_parse_iso_time(ok[i].s, strlen(ok[i].s), &us), "%s", ok[i].s);
        cr_assert_eq(us, ok[i].us, "%s: %lld", ok[i].s, (long long)us);
    }
    const char *bad[] = {"",
                         "yesterday",
                         "2026-13-01",
                         "2026-12-04T25:00",
                         "2026-12-04T18:30:05.",
                         "2026-12-04T18:30:05+2",
                         "2026-12-04T18:30:05Zjunk",
                         "26-12-04"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t us = 0;
        cr_assert(!hs_parse_iso_time(bad[i], strlen(bad[i]), &us), "%s", bad[i]);
    }
}

Test(ids, offset_times_round_trip)
{
    char out[40];
    hs_format_offset_time(1796409005123456, out);
    cr_assert_str_eq(out, "2026-12-04T18:30:05.1234560+00:00");
    int64_t us = 0;
    cr_assert(hs_parse_iso_time(out, strlen(out), &us));
    cr_assert_eq(us, 1796409005123456);
}
