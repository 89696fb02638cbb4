/*
 * Cross-origin requests (CORS): which browser origins may read the answers, and the headers
 * that say so on every answer (and on preflights, conn.c). The policy, from --cors-origins:
 *   a list of origins ("https://app.example.com,http://localhost:3000"): exactly those, each
 *     echoed with credentials allowed (the SignalR clients send cookies and tokens with
 *     credentials: include);
 *   "*" in the list: any origin, answered "*" without credentials (browsers then refuse
 *     credentialed requests, which is the point of listing origins);
 *   nothing configured: loopback origins (localhost, 127.0.0.0/8, [::1], any port) while no
 *     auth is on, none once it is.
 * An origin no rule allows gets no CORS header: the browser keeps the answer from the page. Not
 * an access control for other clients (they send what Origin they like): auth is.
 *
 * What a page may make the server do is checked too (hs_cors_may_act): a browser sends some
 * requests cross-origin without asking first (a POST whose body is text/plain, a WebSocket
 * upgrade), and without this check any page a user opens could publish to, close or subscribe
 * through a server that trusts its network or a cookie (auth off on loopback; an embedder's
 * cookie hook). Such requests from an origin the policy does not allow, and that is not the
 * server's own, are refused before anything happens.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/net/net.h"

static bool loopback_origin(const char *o)
{
    const char *h;
    if (!strncasecmp(o, "http://", 7))
        h = o + 7;
    else if (!strncasecmp(o, "https://", 8))
        h = o + 8;
    else
        return false;
    size_t hl;
    if (*h == '[') {
        const char *e = strchr(h, ']');
        if (!e)
            return false;
        hl = (size_t)(e - h) + 1;
        if (hl != 5 || strncmp(h, "[::1]", 5))
            return false;
    } else {
        hl = strcspn(h, ":/");
        if (!(hl == 9 && !strncasecmp(h, "localhost", 9))) {
            /* 127.a.b.c, each part one or more digits */
            if (hl < 9 || strncmp(h, "127.", 4))
                return false;
            int dots = 0;
            for (size_t i = 0; i < hl; i++) {
                if (h[i] == '.') {
                    if (h[i - 1] == '.' || i + 1 == hl) /* i > 0: h starts with "127." */
                        return false;
                    dots++;
                } else if (!isdigit((unsigned char)h[i])) {
                    return false;
                }
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
    return *r == '\0' || (r[0] == '/' && r[1] == '\0');
}

/* Whether the policy gives `origin` CORS headers: *echo for its own (with credentials); a "*"
 * policy allows any origin without echoing it. */
static bool policy_allows(const hs_server_t *srv, const char *origin, bool *echo)
{
    *echo = false;
    if (srv->cors_listed) {
        for (int i = 0; i < srv->ncors && !*echo; i++)
            *echo = !strcasecmp(srv->cors[i], origin);
    } else {
        *echo = srv->cors_loopback && loopback_origin(origin);
    }
    return *echo || srv->cors_any;
}

/* The authority of "scheme://authority" without the scheme's default port (*dflt: ":443" for
 * https, else ":80"); NULL when the origin has no such form ("null", say). *len is its length. */
static const char *origin_authority(const char *o, size_t *len, const char **dflt)
{
    const char *a = strstr(o, "://");
    if (!a || a == o || !a[3])
        return NULL;
    bool tls = (size_t)(a - o) == 5 && !strncasecmp(o, "https", 5);
    a += 3;
    size_t n = strlen(a);
    *dflt = tls ? ":443" : ":80";
    size_t dl = strlen(*dflt);
    if (n > dl && !strcmp(a + n - dl, *dflt))
        n -= dl;
    *len = n;
    return a;
}

/* Whether a Host-like header value (the first of a list, blanks trimmed) names `authority`,
 * the scheme's default port `dflt` written or not. */
static bool host_is(const char *v, const char *authority, size_t alen, const char *dflt)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strcspn(v, ", \t"), dl = strlen(dflt);
    if (n == alen + dl && !strncmp(v + alen, dflt, dl))
        n = alen;
    return n == alen && !strncasecmp(v, authority, alen);
}

bool hs_cors_origin_may_act(const hs_server_t *srv, const char *origin, const char *host,
                            const char *fwd_host)
{
    if (!origin)
        return true; /* not a browser's cross-origin request: other clients are auth's matter */
    bool echo;
    if (policy_allows(srv, origin, &echo))
        return true;
    /* the server's own pages (the dashboard, an application it serves): the origin names the
     * host the request was sent to, as Host says, or as a proxy in front says it was */
    size_t alen;
    const char *dflt;
    const char *auth = origin_authority(origin, &alen, &dflt);
    return auth && alen &&
           ((host && host_is(host, auth, alen, dflt)) ||
            (fwd_host && host_is(fwd_host, auth, alen, dflt)));
}

bool hs_cors_may_act(struct lws *wsi)
{
    int olen = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (olen <= 0)
        return true;
    char origin[512], host[512], fwd[512];
    if (olen >= (int)sizeof(origin) ||
        lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) != olen)
        return false; /* an Origin this long is no origin a policy lists */
    int hl = lws_hdr_total_length(wsi, WSI_TOKEN_HOST);
    bool has_host = hl > 0 && hl < (int)sizeof(host) &&
                    lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) == hl;
    bool has_fwd = hs_wsi_header(wsi, "x-forwarded-host", fwd, sizeof(fwd)) > 0;
    return hs_cors_origin_may_act(((hs_io_t *)lws_context_user(lws_get_context(wsi)))->srv, origin,
                                  has_host ? host : NULL, has_fwd ? fwd : NULL);
}

int hs_cors_configure(hs_server_t *srv, const char *list, char *err, size_t errlen)
{
    if (!list || !*list)
        return 0;
    char *copy = strdup(list), *save = NULL;
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return HS_ENOMEM;
    }
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        size_t n = strlen(t);
        while (n && t[n - 1] == ' ')
            t[--n] = '\0';
        if (!n)
            continue;
        if (!strcmp(t, "*")) {
            srv->cors_any = true;
            continue;
        }
        /* an origin is scheme://host[:port], nothing after it */
        const char *sep = strstr(t, "://");
        if (!sep || sep == t || !sep[3] || strchr(sep + 3, '/') || n > 255) {
            snprintf(err, errlen, "bad CORS origin '%.200s' (want scheme://host[:port], or *)", t);
            rc = HS_EINVAL;
            break;
        }
        if (srv->ncors == sizeof(srv->cors) / sizeof(srv->cors[0])) {
            snprintf(err, errlen, "at most %zu CORS origins",
                     sizeof(srv->cors) / sizeof(srv->cors[0]));
            rc = HS_EINVAL;
            break;
        }
        if (!(srv->cors[srv->ncors] = strdup(t))) {
            snprintf(err, errlen, "out of memory");
            rc = HS_ENOMEM;
            break;
        }
        srv->ncors++;
    }
    free(copy);
    srv->cors_listed = true;
    return rc;
}

void hs_cors_free(hs_server_t *srv)
{
    for (int i = 0; i < srv->ncors; i++)
        free(srv->cors[i]);
    srv->ncors = 0;
}

int hs_cors_headers(struct lws *wsi, unsigned char **p, unsigned char *end)
{
    char origin[512];
    int n = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);
    if (n <= 0)
        return 0;
    hs_server_t *srv = ((hs_io_t *)lws_context_user(lws_get_context(wsi)))->srv;
    bool echo;
    policy_allows(srv, origin, &echo);
    if (!echo && srv->cors_any)
        return lws_add_http_header_by_name(wsi,
                                           (const unsigned char *)"access-control-allow-origin:",
                                           (const unsigned char *)"*", 1, p, end)
                   ? -1
                   : 0;
    if (!echo)
        return 0;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-origin:",
                                    (const unsigned char *)origin, n, p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-credentials:",
                                    (const unsigned char *)"true", 4, p, end) ||
        lws_add_http_header_by_name(
            wsi, (const unsigned char *)"vary:", (const unsigned char *)"Origin", 6, p, end))
        return -1;
    return 0;
}
