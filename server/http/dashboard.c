/*
 * The dashboard: GET / and GET /dashboard serve one page (server/http/dashboard/), its script and
 * its style sheet, compiled into the library like the OpenAPI document, so nothing is read at run
 * time and no other host is asked for anything. The page holds no data: it reads what it shows
 * from the server's own routes (/metrics, /readyz, /api/streams, the streams' SSE), with the token
 * the operator typed in when auth is on. So the three files are served to anyone, and
 * GET /dashboard/session tells the page, always with a 200, who its token makes it: whether auth
 * is on, whether the token (if any) has the admin permission the data routes want, and why not.
 * IO thread.
 */
#include <string.h>

#include "proto/json.h"
#include "server/auth.h"
#include "server/http/http.h"

/* the generated sources (build dir, generated/dashboard_*.c) */
extern const unsigned char hs_dashboard_html[], hs_dashboard_js[], hs_dashboard_css[];
extern const size_t hs_dashboard_html_len, hs_dashboard_js_len, hs_dashboard_css_len;

/* The page may run its own script and style sheet and talk to this origin, nothing more: no
 * inline script (so text from a stream can never run), no frames of it elsewhere. */
#define CSP                                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static void asset(hs_conn_t *c, const char *ctype, const unsigned char *body, size_t len)
{
    /* no-cache: a browser may keep the files but asks again, so a new build's page is seen */
    static const char *const hdrs[] = {"cache-control:",
                                       "no-cache",
                                       "content-security-policy:",
                                       CSP,
                                       "x-content-type-options:",
                                       "nosniff",
                                       "referrer-policy:",
                                       "no-referrer",
                                       NULL};
    hs_conn_respond_hdrs(c, 200, ctype, (const char *)body, len, hdrs);
}

static void session(hs_conn_t *c, const char *path)
{
    hs_server_t *srv = c->io->srv;
    char why[256] = "";
    int rc = hs_auth_identify(srv, c->wsi, path, &c->who, why, sizeof why);
    if (rc == HS_ENOMEM) {
        hs_conn_error(c, 503, "Unavailable", "out of memory");
        return;
    }
    bool admin = !rc && hs_auth_allows(srv, c->who, HS_ACTION_ADMIN, NULL, 0);
    if (!rc && !admin)
        snprintf(why, sizeof why, "this token does not carry the admin permission");
    const char *user = !rc && c->who ? hs_principal_user(c->who) : NULL;
    size_t ul = user ? strnlen(user, 256) : 0, wl = strlen(why);
    char body[160 + 6 * (256 + sizeof why)];
    int o = snprintf(body, sizeof body,
                     "{\"version\":\"%s\",\"auth\":%s,\"admin\":%s,\"user\":", HS_VERSION_STRING,
                     hs_auth_on(srv) ? "true" : "false", admin ? "true" : "false");
    size_t n = (size_t)o;
    if (user && ul)
        n += hs_json_quote(user, ul, body + n);
    else
        n += (size_t)snprintf(body + n, sizeof body - n, "null");
    n += (size_t)snprintf(body + n, sizeof body - n, ",\"reason\":");
    if (!admin && wl)
        n += hs_json_quote(why, wl, body + n);
    else
        n += (size_t)snprintf(body + n, sizeof body - n, "null");
    body[n++] = '}';
    hs_conn_respond(c, 200, "application/json", body, n, NULL, NULL);
}

static void route(hs_conn_t *c, const char *path, void *arg)
{
    (void)arg;
    /* the prefix route matches without regard to case (/DASHBOARDX too): the names are exact */
    const char *rest =
        strcmp(path, "/") ? (strncmp(path, "/dashboard", 10) ? NULL : path + 10) : "";
    bool known = rest && (!strcmp(rest, "") || !strcmp(rest, "/") || !strcmp(rest, "/app.js") ||
                          !strcmp(rest, "/app.css") || !strcmp(rest, "/session"));
    if (!known) {
        hs_conn_error(c, 404, "NotFound", "no route for %.300s", path);
        return;
    }
    if (c->method != WSI_TOKEN_GET_URI) {
        hs_conn_not_allowed(c, "GET");
        return;
    }
    if (!strcmp(rest, "/app.js"))
        asset(c, "text/javascript; charset=utf-8", hs_dashboard_js, hs_dashboard_js_len);
    else if (!strcmp(rest, "/app.css"))
        asset(c, "text/css; charset=utf-8", hs_dashboard_css, hs_dashboard_css_len);
    else if (!strcmp(rest, "/session"))
        session(c, path);
    else
        asset(c, "text/html; charset=utf-8", hs_dashboard_html, hs_dashboard_html_len);
}

void hs_dashboard_register(hs_server_t *srv)
{
    hs_server_add_route(srv, "/", route, NULL);
    hs_server_add_prefix_route(srv, "/dashboard", route, NULL);
}
