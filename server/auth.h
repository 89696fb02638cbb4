/*
 * Auth as the front ends use it (server/auth.c): who is asking (once per HTTP request, once per
 * SignalR connection) and whether a principal may do an action on a stream. Private to the
 * server; the public side is include/hubstream/hubstream.h's "Auth".
 */
#ifndef HS_SERVER_AUTH_H
#define HS_SERVER_AUTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto/jwt.h"
#include "proto/perms.h"
#include "server/server.h"

struct hs_principal {
    atomic_uint refs; /* hs_principal_free drops one */
    char user[HS_JWT_SUB_MAX + 1];
    hs_perms_t perms;
    int64_t exp_s; /* 0: never */
};

hs_principal_t *hs_principal_ref(hs_principal_t *p); /* NULL-safe */

/* Builds the JWT key set from the configuration (server creation): 0, or an error with err. */
int hs_auth_create(hs_server_t *srv, char *err, size_t errlen);
void hs_auth_destroy(hs_server_t *srv);
/* Whether auth is on (a JWT key or an auth hook). */
bool hs_auth_on(const hs_server_t *srv);
/*
 * Who is asking, for the request of wsi (IO thread, during its callbacks). 0 with *out (NULL
 * when auth is off; else a principal the caller owns), or HS_EUNAUTHORIZED / HS_EFORBIDDEN /
 * HS_ENOMEM with a reason for the client in why.
 */
int hs_auth_identify(hs_server_t *srv, struct lws *wsi, const char *path, hs_principal_t **out,
                     char *why, size_t whylen);
/* Whether p may do action on stream[0..len) (stream NULL for HS_ACTION_ADMIN): always when auth
 * is off and no authorize hook is set. Any thread. */
bool hs_auth_allows(hs_server_t *srv, const hs_principal_t *p, hs_action_t action,
                    const char *stream, size_t len);
/* Whether p's credentials have expired (the wall clock). */
bool hs_auth_expired(const hs_principal_t *p);

#endif
