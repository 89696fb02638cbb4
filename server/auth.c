/*
 * Auth (include/hubstream/hubstream.h, "Auth"): principals, the request an auth hook sees, the
 * built-in JWT check (proto/jwt.c) and the permission check every front end runs before an
 * action on a stream (proto/perms.c, then the authorize hook). Below every front end (http/,
 * signalr/), calling none of them; reads a request through server/net/wsi.c.
 *
 * Who is asking is decided once per HTTP request and once per SignalR connection; what a
 * principal may do is fixed with it (a connection keeps its principal, and is closed when the
 * principal expires). Nothing here runs per event.
 */
#include "server/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server/net/net.h"

/* ---- principals ---- */

hs_principal_t *hs_principal_new(const char *user)
{
    hs_principal_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    atomic_init(&p->refs, 1);
    snprintf(p->user, sizeof(p->user), "%s", user ? user : "");
    return p;
}

int hs_principal_allow(hs_principal_t *p, hs_action_t action, const char *pattern)
{
    if (!p || !pattern)
        return HS_EINVAL;
    if (action == HS_ACTION_PUBLISH)
        return hs_perms_add(&p->perms, HS_PERM_PUBLISH, pattern);
    if (action == HS_ACTION_SUBSCRIBE)
        return hs_perms_add(&p->perms, HS_PERM_SUBSCRIBE, pattern);
    return HS_EINVAL;
}

void hs_principal_set_admin(hs_principal_t *p, bool admin)
{
    if (p)
        p->perms.admin = admin;
}

void hs_principal_set_expiry(hs_principal_t *p, int64_t unix_s)
{
    if (p)
        p->exp_s = unix_s > 0 ? unix_s : 0;
}

const char *hs_principal_user(const hs_principal_t *p)
{
    return p ? p->user : "";
}

static bool perms_allow(const hs_principal_t *p, hs_action_t action, const char *stream, size_t len)
{
    switch (action) {
    case HS_ACTION_PUBLISH:
    case HS_ACTION_CLOSE:
        return stream && hs_perms_allows(&p->perms, HS_PERM_PUBLISH, p->user, stream, len);
    case HS_ACTION_READ:
    case HS_ACTION_SUBSCRIBE:
        return stream && hs_perms_allows(&p->perms, HS_PERM_SUBSCRIBE, p->user, stream, len);
    case HS_ACTION_DELETE:
    case HS_ACTION_ADMIN:
        return p->perms.admin;
    }
    return false;
}

bool hs_principal_allows(const hs_principal_t *p, hs_action_t action, const char *stream)
{
    return p && perms_allow(p, action, stream, stream ? strlen(stream) : 0);
}

hs_principal_t *hs_principal_ref(hs_principal_t *p)
{
    if (p)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void hs_principal_free(hs_principal_t *p)
{
    if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    hs_perms_free(&p->perms);
    free(p);
}

/* ---- the request an auth hook sees ---- */

struct hs_auth_request {
    struct lws *wsi;
    const char *method, *path;
    const char *token; /* into tok, or NULL */
    char peer[64];
    char tok[HS_JWT_MAX + 1];
};

const char *hs_auth_request_method(const hs_auth_request_t *r)
{
    return r->method;
}

const char *hs_auth_request_path(const hs_auth_request_t *r)
{
    return r->path;
}

const char *hs_auth_request_token(const hs_auth_request_t *r)
{
    return r->token;
}

const char *hs_auth_request_peer(const hs_auth_request_t *r)
{
    return r->peer;
}

int hs_auth_request_header(const hs_auth_request_t *r, const char *name, char *buf, size_t len)
{
    if (!r || !name || !buf)
        return -1;
    return hs_wsi_header(r->wsi, name, buf, len);
}

/* The bearer token: `Authorization: Bearer t`, else `?access_token=t`. A token longer than
 * HS_JWT_MAX counts as none: the check then answers 401 like for a bad one. */
static void find_token(hs_auth_request_t *r)
{
    r->token = NULL;
    int n = hs_wsi_header(r->wsi, "authorization", r->tok, sizeof(r->tok));
    if (n > 7 && !strncasecmp(r->tok, "Bearer ", 7)) {
        char *t = r->tok + 7;
        while (*t == ' ')
            t++;
        size_t l = strlen(t);
        while (l && t[l - 1] == ' ')
            t[--l] = '\0';
        if (l) {
            memmove(r->tok, t, l + 1);
            r->token = r->tok;
        }
        return;
    }
    const char *v;
    if (hs_wsi_arg(r->wsi, "access_token=", r->tok, sizeof(r->tok), &v) > 0 && *v)
        r->token = v;
}

/* ---- the built-in JWT check ---- */

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open JWT key file '%s': %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        if (cap >= (1u << 20)) { /* no PEM key file is a megabyte */
            free(b);
            b = NULL;
            snprintf(err, errlen, "JWT key file '%s' is too large", path);
            fclose(f);
            return NULL;
        }
        char *nb = realloc(b, cap * 2);
        if (!nb)
            free(b);
        b = nb;
        cap *= 2;
    }
    fclose(f);
    if (!b)
        snprintf(err, errlen, "out of memory");
    *len = n;
    return b;
}

/* Adds the keys of "FILE" or "KID=FILE". */
static int add_key_file(hs_jwt_keys_t *keys, const char *spec, char *err, size_t errlen)
{
    char kid[257] = "";
    const char *path = spec;
    const char *eq = strchr(spec, '=');
    if (eq) {
        size_t kl = (size_t)(eq - spec);
        if (!kl || kl >= sizeof(kid)) {
            snprintf(err, errlen, "bad JWT key '%s' (want FILE or KID=FILE)", spec);
            return HS_EINVAL;
        }
        memcpy(kid, spec, kl);
        kid[kl] = '\0';
        path = eq + 1;
    }
    size_t len;
    char *pem = read_file(path, &len, err, errlen);
    if (!pem)
        return HS_EINVAL;
    char why[200] = "";
    int rc = hs_jwt_keys_add_pem(keys, pem, len, kid[0] ? kid : NULL, why, sizeof(why));
    free(pem);
    if (rc < 0) {
        snprintf(err, errlen, "JWT key file '%s': %s", path, why[0] ? why : hs_strerror(rc));
        return rc;
    }
    return 0;
}

int hs_auth_create(hs_server_t *srv, char *err, size_t errlen)
{
    const hs_config_t *cfg = &srv->cfg;
    bool secret = cfg->jwt_secret && cfg->jwt_secret[0];
    bool keys = cfg->jwt_public_keys && cfg->jwt_public_keys[0];
    if (cfg->jwt_leeway_s < 0 || cfg->jwt_leeway_s > 3600) {
        snprintf(err, errlen, "jwt leeway must be 0..3600 seconds");
        return HS_EINVAL;
    }
    if (!secret && !keys)
        return 0;
    srv->jwt = hs_jwt_keys_new();
    srv->jwt_audience = cfg->jwt_audience ? strdup(cfg->jwt_audience) : NULL;
    srv->jwt_issuer = cfg->jwt_issuer ? strdup(cfg->jwt_issuer) : NULL;
    if (!srv->jwt || (cfg->jwt_audience && !srv->jwt_audience) ||
        (cfg->jwt_issuer && !srv->jwt_issuer)) {
        snprintf(err, errlen, "out of memory");
        return HS_ENOMEM;
    }
    if (secret) {
        size_t n = strlen(cfg->jwt_secret);
        if (n < 32) {
            /* HS256 with a short secret is guessable offline from one token */
            snprintf(err, errlen, "the JWT secret must be at least 32 bytes (it is %zu)", n);
            return HS_EINVAL;
        }
        int rc = hs_jwt_keys_add_secret(srv->jwt, cfg->jwt_secret, n);
        if (rc) {
            snprintf(err, errlen, "JWT secret: %s", hs_strerror(rc));
            return rc;
        }
    }
    if (keys) {
        char *list = strdup(cfg->jwt_public_keys), *save = NULL;
        if (!list) {
            snprintf(err, errlen, "out of memory");
            return HS_ENOMEM;
        }
        int rc = 0;
        for (char *t = strtok_r(list, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ')
                t++;
            if (*t)
                rc = add_key_file(srv->jwt, t, err, errlen);
        }
        free(list);
        if (rc)
            return rc;
    }
    /* no secret in memory beyond the key set's copy */
    srv->cfg.jwt_secret = NULL;
    srv->cfg.jwt_public_keys = NULL;
    srv->cfg.jwt_audience = srv->jwt_audience;
    srv->cfg.jwt_issuer = srv->jwt_issuer;
    return 0;
}

void hs_auth_destroy(hs_server_t *srv)
{
    hs_jwt_keys_free(srv->jwt);
    srv->jwt = NULL;
    free(srv->jwt_audience);
    free(srv->jwt_issuer);
    srv->jwt_audience = srv->jwt_issuer = NULL;
}

int hs_server_auth_jwt(hs_server_t *srv, const hs_auth_request_t *req, hs_principal_t **out,
                       char *reason, size_t reason_len)
{
    *out = NULL;
    if (!srv->jwt) {
        snprintf(reason, reason_len, "no JWT key is configured");
        return HS_EUNAUTHORIZED;
    }
    if (!req->token) {
        snprintf(reason, reason_len, "a bearer token is required");
        return HS_EUNAUTHORIZED;
    }
    hs_jwt_check_t chk = {
        .now_s = now_s(),
        .leeway_s = srv->cfg.jwt_leeway_s,
        .audience = srv->jwt_audience,
        .issuer = srv->jwt_issuer,
    };
    hs_jwt_claims_t cl;
    char why[160] = "";
    int rc = hs_jwt_verify(srv->jwt, req->token, strlen(req->token), &chk, &cl, why, sizeof(why));
    if (rc == HS_ENOMEM)
        return rc;
    if (rc) {
        snprintf(reason, reason_len, "%s", why[0] ? why : "invalid token");
        return HS_EUNAUTHORIZED;
    }
    hs_principal_t *p = hs_principal_new(cl.sub);
    if (!p) {
        hs_jwt_claims_free(&cl);
        return HS_ENOMEM;
    }
    p->exp_s = cl.exp;
    if (cl.hubstream) {
        rc = hs_perms_parse(cl.hubstream, cl.hubstream_len, &p->perms, why, sizeof(why));
        if (rc) {
            hs_principal_free(p);
            hs_jwt_claims_free(&cl);
            if (rc == HS_ENOMEM)
                return rc;
            snprintf(reason, reason_len, "bad hubstream claim: %s", why);
            return HS_EUNAUTHORIZED;
        }
    }
    hs_jwt_claims_free(&cl);
    *out = p;
    return 0;
}

/* ---- what the front ends call ---- */

bool hs_auth_on(const hs_server_t *srv)
{
    return srv->jwt || srv->auth_hook;
}

int hs_auth_identify(hs_server_t *srv, struct lws *wsi, const char *path, hs_principal_t **out,
                     char *why, size_t whylen)
{
    *out = NULL;
    if (!hs_auth_on(srv))
        return 0;
    hs_auth_request_t *r = malloc(sizeof(*r)); /* 8 KiB: not on an IO thread's stack */
    if (!r) {
        snprintf(why, whylen, "out of memory");
        return HS_ENOMEM;
    }
    r->wsi = wsi;
    r->method = hs_wsi_method_name(hs_wsi_method(wsi));
    r->path = path;
    if (lws_get_peer_simple(wsi, r->peer, sizeof(r->peer)) == NULL)
        r->peer[0] = '\0';
    find_token(r);
    why[0] = '\0';
    int rc = srv->auth_hook ? srv->auth_hook(srv->auth_ctx, r, out, why, whylen)
                            : hs_server_auth_jwt(srv, r, out, why, whylen);
    free(r);
    if (rc == 0 && !*out) {
        /* a hook that said yes without saying who: an anonymous principal, no permission */
        *out = hs_principal_new("");
        if (!*out)
            rc = HS_ENOMEM;
    }
    if (rc == 0 && (*out)->exp_s && (*out)->exp_s <= now_s()) {
        hs_principal_free(*out);
        *out = NULL;
        snprintf(why, whylen, "token expired");
        return HS_EUNAUTHORIZED;
    }
    if (rc) {
        hs_principal_free(*out);
        *out = NULL;
        if (rc != HS_EFORBIDDEN && rc != HS_ENOMEM)
            rc = HS_EUNAUTHORIZED;
        if (!why[0])
            snprintf(why, whylen, "%s", rc == HS_EFORBIDDEN ? "forbidden" : "unauthorized");
    }
    return rc;
}

bool hs_auth_allows(hs_server_t *srv, const hs_principal_t *p, hs_action_t action,
                    const char *stream, size_t len)
{
    bool allowed = !hs_auth_on(srv) || (p && perms_allow(p, action, stream, len));
    if (!srv->authorize_hook)
        return allowed;
    char name[1024];
    if (stream) {
        if (len >= sizeof(name))
            return false; /* longer than any name the routes accept */
        memcpy(name, stream, len);
        name[len] = '\0';
    }
    return srv->authorize_hook(srv->authorize_ctx, p, action, stream ? name : NULL, allowed);
}

bool hs_auth_expired(const hs_principal_t *p)
{
    return p && p->exp_s && now_s() >= p->exp_s;
}

/* ---- hooks ---- */

void hs_server_set_auth_hook(hs_server_t *srv, hs_auth_fn fn, void *ctx)
{
    srv->auth_hook = fn;
    srv->auth_ctx = ctx;
}

void hs_server_set_authorize_hook(hs_server_t *srv, hs_authorize_fn fn, void *ctx)
{
    srv->authorize_hook = fn;
    srv->authorize_ctx = ctx;
}
