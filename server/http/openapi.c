/*
 * GET /api/openapi.json: the OpenAPI document of the HTTP API (docs/openapi.json), compiled into
 * the library by cmake/embed_bytes.cmake, so that nothing is read at run time and the document
 * served is the one the binary was built with. Open without a token even when auth is on: it
 * describes the API and holds no data. IO thread.
 */
#include "server/http/http.h"

/* the generated source (build dir, generated/openapi_doc.c) */
extern const unsigned char hs_openapi_json[];
extern const size_t hs_openapi_json_len;

static void openapi_route(hs_conn_t *c, const char *path, void *arg)
{
    (void)path;
    (void)arg;
    if (c->method != WSI_TOKEN_GET_URI) {
        hs_conn_not_allowed(c, "GET");
        return;
    }
    /* no-cache: a cache may keep it but asks again, so a new build's document is seen */
    hs_conn_respond(c, 200, "application/json", (const char *)hs_openapi_json, hs_openapi_json_len,
                    "cache-control:", "no-cache");
}

void hs_openapi_register(hs_server_t *srv)
{
    hs_server_add_route(srv, "/api/openapi.json", openapi_route, NULL);
}
