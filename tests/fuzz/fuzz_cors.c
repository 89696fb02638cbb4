/*
 * libFuzzer target: what decides whether a browser's request may make the server act
 * (server/net/cors.c, hs_cors_origin_may_act), from the three header values a client chooses:
 * Origin, Host and X-Forwarded-Host.
 *
 * Input: a policy byte (bit 0: origins are listed, bit 1: "*" among them, bit 2: the loopback
 * default), then up to four fields separated by '\n': Origin, Host, X-Forwarded-Host, the one
 * listed origin. A field that is missing is an absent header; an empty Origin field is absent.
 *
 * Checked:
 * - no Origin, or a "*" policy: allowed;
 * - a listed origin that equals the Origin (ASCII case ignored): allowed;
 * - allowed otherwise only when the policy is the loopback default and the Origin is an
 *   http(s)://localhost, 127.x.y.z or [::1] origin with nothing after its port, or when the
 *   Origin is scheme://authority and Host or X-Forwarded-Host (its first item, blanks trimmed)
 *   is that authority, with or without the scheme's default port;
 * - the answer is the same when asked twice, and with the fields in fresh allocations of their
 *   exact size (ASan sees a read past any of them).
 */
#include "fuzz_common.h"

#include <ctype.h>
#include <strings.h>

#include "server/net/net.h"

/* The reference: the Origin's authority without the scheme's default port names the host. */
static bool same_origin(const char *origin, const char *host)
{
    const char *a = strstr(origin, "://");
    if (!host || !a || a == origin || !a[3])
        return false;
    bool tls = (size_t)(a - origin) == 5 && !strncasecmp(origin, "https", 5);
    const char *dflt = tls ? ":443" : ":80";
    a += 3;
    size_t alen = strlen(a), dl = strlen(dflt);
    if (alen > dl && !strcmp(a + alen - dl, dflt))
        alen -= dl;
    while (*host == ' ' || *host == '\t')
        host++;
    size_t hl = strcspn(host, ", \t");
    if (hl == alen + dl && !strncmp(host + alen, dflt, dl))
        hl = alen;
    return alen && hl == alen && !strncasecmp(host, a, alen);
}

/* The reference loopback rule. */
static bool loopback(const char *o)
{
    const char *h = !strncasecmp(o, "http://", 7)    ? o + 7
                    : !strncasecmp(o, "https://", 8) ? o + 8
                                                     : NULL;
    if (!h)
        return false;
    size_t hl;
    if (!strncmp(h, "[::1]", 5)) {
        hl = 5;
    } else {
        hl = strcspn(h, ":/");
        bool local = hl == 9 && !strncasecmp(h, "localhost", 9);
        if (!local) {
            int dots = 0;
            if (hl < 9 || strncmp(h, "127.", 4))
                return false;
            for (size_t i = 0; i < hl; i++) {
                if (h[i] == '.')
                    dots++;
                else if (!isdigit((unsigned char)h[i]))
                    return false;
            }
            if (dots != 3)
                return false;
        }
    }
    const char *r = h + hl;
    if (*r == ':') {
        r++;
        if (!isdigit((unsigned char)*r))
            return false;
        while (isdigit((unsigned char)*r))
            r++;
    }
    return !*r || (r[0] == '/' && !r[1]);
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
