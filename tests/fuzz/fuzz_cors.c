/*
 * libFuzzer target: what decides whether a browser's request may make the server act
 * (server/net/cors.c, hs_cors_origin_may_act), from the three header values a client chooses:
 * Origin, Host and X-Forwarded-Host.
 *
 * Input: a policy byte (bit 0: origins are listed, bit 1: "*" among them, bit 2: the loopback
 * default), then up to four fields separated by '\n': Origin, Host, X-Forwarded-Host, the one
 * listed origin. A field that is missing is an absent header; an empty Origin field is absent.
 *
 * Checked against a reference built another way than cors.c's scanning (so that a mistake the
 * two shared would not pass unseen): the loopback rule as a POSIX regular expression, and the
 * same-origin rule as a comparison with the strings a host header may hold for that origin.
 * - no Origin, a "*" policy, or a listed origin equal to the Origin (ASCII case ignored):
 *   allowed;
 * - otherwise allowed exactly when the policy is the loopback default and the Origin matches
 *   http(s)://(localhost|127.d+.d+.d+|[::1])(:d+)?/? (case ignored), or when the first item of
 *   Host or X-Forwarded-Host (blanks trimmed) is the Origin's authority, with or without its
 *   scheme's default port (:80, :443 for https) on either side;
 * - the answer is the same when asked twice, with every field in an allocation of its exact
 *   size (ASan sees a read past one).
 */
#include "fuzz_common.h"

#include <regex.h>
#include <strings.h>

#include "server/net/net.h"

static bool loopback(const char *origin)
{
    static regex_t re;
    static bool compiled;
    if (!compiled) {
        CHECK(regcomp(&re,
                      "^https?://(localhost|127\\.[0-9]+\\.[0-9]+\\.[0-9]+|\\[::1\\])(:[0-9]+)?/?$",
                      REG_EXTENDED | REG_ICASE | REG_NOSUB) == 0);
        compiled = true;
    }
    return regexec(&re, origin, 0, NULL, 0) == 0;
}

/* Whether the header value's first item names the origin's host: the origin's authority
 * ("scheme://" cut off) brought to one canonical form, without its scheme's default port, then
 * the host item compared with that form and with that form plus the default port. */
static bool same_origin(const char *origin, const char *header)
{
    const char *sep = strstr(origin, "://");
    if (!header || !sep || sep == origin)
        return false;
    const char *dflt = sep - origin == 5 && !strncasecmp(origin, "https", 5) ? ":443" : ":80";
    size_t cl = strlen(sep + 3), dl = strlen(dflt);
    char *canon = fz_alloc(cl + dl + 1), *with_port = fz_alloc(cl + dl + 1);
    memcpy(canon, sep + 3, cl + 1);
    if (cl > dl && !strcmp(canon + cl - dl, dflt))
        canon[cl -= dl] = '\0';
    snprintf(with_port, cl + dl + 1, "%s%s", canon, dflt);
    const char *item = header + strspn(header, " \t"); /* the first item, blanks skipped */
    size_t il = strcspn(item, ", \t");
    bool same = cl > 0 && ((il == cl && !strncasecmp(item, canon, il)) ||
                           (il == cl + dl && !strncasecmp(item, with_port, il)));
    free(canon);
    free(with_port);
    return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (n < 1)
        return 0;
    uint8_t policy = data[0];
    data++;
    n--;
    char *f[4] = {NULL, NULL, NULL, NULL};
    size_t at = 0;
    for (int i = 0; i < 4 && at <= n; i++) {
        const uint8_t *nl = memchr(data + at, '\n', n - at);
        size_t len = nl ? (size_t)(nl - (data + at)) : n - at;
        f[i] = fz_strndup(data + at, len);
        at += len + 1;
        if (!nl)
            break;
    }
    if (f[0] && !f[0][0]) {
        free(f[0]);
        f[0] = NULL;
    }
    static hs_server_t srv; /* only the CORS fields are read */
    srv.cors_listed = policy & 1;
    srv.cors_any = policy & 2;
    srv.cors_loopback = !srv.cors_listed && (policy & 4);
    srv.ncors = srv.cors_listed && f[3] ? 1 : 0;
    srv.cors[0] = srv.ncors ? f[3] : NULL;

    bool r = hs_cors_origin_may_act(&srv, f[0], f[1], f[2]);
    CHECK(r == hs_cors_origin_may_act(&srv, f[0], f[1], f[2]));
    bool listed = f[0] && srv.ncors && !strcasecmp(f[3], f[0]);
    /* a NUL inside a field ends it for both sides alike (C strings) */
    if (!f[0] || srv.cors_any || listed)
        CHECK(r);
    else
        CHECK(r == ((srv.cors_loopback && loopback(f[0])) || same_origin(f[0], f[1]) ||
                    same_origin(f[0], f[2])));
    for (int i = 0; i < 4; i++)
        free(f[i]);
    srv.cors[0] = NULL;
    return 0;
}
