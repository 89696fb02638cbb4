/* Stream permissions (see perms.h). */
#include "proto/perms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "proto/json.h"
#include "util/utf8.h"

#define SUB_TOKEN     "{sub}"
#define SUB_TOKEN_LEN 5

static int fail(char *why, size_t whylen, const char *msg)
{
    if (why && whylen)
        snprintf(why, whylen, "%s", msg);
    return HS_EINVAL;
}

/* A pattern a list may hold: 1..HS_PERMS_MAX_PATTERN bytes of UTF-8 (no NUL: a C string). */
static bool pattern_ok(const char *s, size_t n)
{
    return n >= 1 && n <= HS_PERMS_MAX_PATTERN && hs_utf8_valid(s, n) && !memchr(s, '\0', n);
}

static int push(hs_perms_t *p, hs_perm_t kind, const char *s, size_t n)
{
    if (p->n[kind] >= HS_PERMS_MAX_PATTERNS)
        return HS_EINVAL;
    if (p->n[kind] % 8 == 0) {
        char **l = realloc(p->list[kind], (p->n[kind] + 8) * sizeof *l);
        if (!l)
            return HS_ENOMEM;
        p->list[kind] = l;
    }
    char *c = malloc(n + 1);
    if (!c)
        return HS_ENOMEM;
    memcpy(c, s, n);
    c[n] = '\0';
    p->list[kind][p->n[kind]++] = c;
    return 0;
}

int hs_perms_add(hs_perms_t *p, hs_perm_t kind, const char *pattern)
{
    if (!p || (kind != HS_PERM_PUBLISH && kind != HS_PERM_SUBSCRIBE) || !pattern)
        return HS_EINVAL;
    size_t n = strnlen(pattern, HS_PERMS_MAX_PATTERN + 1);
    if (!pattern_ok(pattern, n))
        return HS_EINVAL;
    return push(p, kind, pattern, n);
}

void hs_perms_free(hs_perms_t *p)
{
    if (!p)
        return;
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < p->n[k]; i++)
            free(p->list[k][i]);
        free(p->list[k]);
    }
    memset(p, 0, sizeof *p);
}

static int parse_list(const hs_json_span_t *arr, hs_perms_t *p, hs_perm_t kind, char *why,
                      size_t whylen)
{
    static const char *const bad_type[2] = {"publish must be an array of strings",
                                            "subscribe must be an array of strings"};
    if (arr->type != HS_JSON_ARRAY)
        return fail(why, whylen, bad_type[kind]);
    if (hs_json_array_len(arr) > HS_PERMS_MAX_PATTERNS)
        return fail(why, whylen, "too many patterns");
    size_t pos = 0;
    hs_json_span_t item;
    char buf[HS_PERMS_MAX_PATTERN + 1];
    while (hs_json_array_next(arr, &pos, &item)) {
        if (item.type != HS_JSON_STRING)
            return fail(why, whylen, bad_type[kind]);
        long l = hs_json_unescape(&item, buf, sizeof buf);
        if (l < 0 || l > HS_PERMS_MAX_PATTERN)
            return fail(why, whylen, "pattern too long");
        if (l == 0)
            return fail(why, whylen, "empty pattern");
        if (!pattern_ok(buf, (size_t)l))
            return fail(why, whylen, "bad pattern");
        int rc = push(p, kind, buf, (size_t)l);
        if (rc == HS_ENOMEM)
            return rc;
        if (rc)
            return fail(why, whylen, "too many patterns");
    }
    return 0;
}

static int parse(const char *json, size_t len, hs_perms_t *out, char *why, size_t whylen)
{
    hs_json_span_t root;
    if (!json || hs_json_parse(json, len, &root, NULL, 0) != 0)
        return fail(why, whylen, "permissions are not valid json");
    if (root.type != HS_JSON_OBJECT)
        return fail(why, whylen, "permissions must be a json object");
    bool seen[3] = {false, false, false};
    size_t pos = 0;
    hs_json_span_t key, val;
    while (hs_json_object_next(&root, &pos, &key, &val)) {
        int which = hs_json_string_eq(&key, "publish", false)     ? 0
                    : hs_json_string_eq(&key, "subscribe", false) ? 1
                    : hs_json_string_eq(&key, "admin", false)     ? 2
                                                                  : -1;
        if (which < 0)
            continue; /* unknown members are ignored */
        if (seen[which])
            return fail(why, whylen, "duplicate member in permissions");
        seen[which] = true;
        if (which == 2) {
            if (val.type != HS_JSON_TRUE && val.type != HS_JSON_FALSE)
                return fail(why, whylen, "admin must be a boolean");
            out->admin = val.type == HS_JSON_TRUE;
            continue;
        }
        int rc =
            parse_list(&val, out, which == 0 ? HS_PERM_PUBLISH : HS_PERM_SUBSCRIBE, why, whylen);
        if (rc)
            return rc;
    }
    return 0;
}

int hs_perms_parse(const char *json, size_t len, hs_perms_t *out, char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = '\0';
    memset(out, 0, sizeof *out);
    int rc = parse(json, len, out, why, whylen);
    if (rc) {
        hs_perms_free(out);
        if (rc == HS_ENOMEM)
            fail(why, whylen, "out of memory");
    }
    return rc;
}

/*
 * Whether stream[0..len) matches pattern pat for subject sub[0..sl). The pattern is walked as
 * a template: `{sub}` compares the subject's bytes literally, a `*` that is the pattern's last
 * byte matches any rest, any other byte (a `*` elsewhere included) compares literally.
 */
static bool match(const char *pat, const char *sub, size_t sl, const char *stream, size_t len)
{
    size_t pl = strlen(pat);
    bool prefix = pl > 0 && pat[pl - 1] == '*';
    if (prefix)
        pl--;
    size_t i = 0, s = 0;
    while (i < pl) {
        if (pl - i >= SUB_TOKEN_LEN && memcmp(pat + i, SUB_TOKEN, SUB_TOKEN_LEN) == 0) {
            if (sl == 0)
                return false; /* {sub} matches nothing without a subject */
            if (len - s < sl || memcmp(stream + s, sub, sl) != 0)
                return false;
            s += sl;
            i += SUB_TOKEN_LEN;
            continue;
        }
        if (s == len || stream[s] != pat[i])
            return false;
        s++;
        i++;
    }
    return prefix || s == len;
}

bool hs_perms_allows(const hs_perms_t *p, hs_perm_t kind, const char *sub, const char *stream,
                     size_t len)
{
    if (!p || (kind != HS_PERM_PUBLISH && kind != HS_PERM_SUBSCRIBE) || (!stream && len))
        return false;
    size_t sl = sub ? strlen(sub) : 0;
    bool all = len == 4 && memcmp(stream, "$all", 4) == 0;
    for (size_t i = 0; i < p->n[kind]; i++) {
        const char *pat = p->list[kind][i];
        if (pat[0] == '*' && pat[1] == '\0')
            return true;
        if (!all && match(pat, sub ? sub : "", sl, stream, len))
            return true;
    }
    return false;
}
