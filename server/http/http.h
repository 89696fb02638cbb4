/*
 * The HTTP API of hubstream (server/http/): the routes under /api/streams, /healthz and /readyz
 * (http.c: publishes acked by the writer, reads run on reader threads) and Server-Sent Events
 * subscriptions (sse.c), the API's OpenAPI document (openapi.c) and the dashboard (dashboard.c,
 * its page, script and style in dashboard/). Two transports of the
 * network layer: HS_T_HTTP owns a request while its commit or read is in flight, HS_T_SSE owns
 * an SSE response for its whole life.
 * Not here: the SignalR hub (server/signalr/), sockets and HTTP mechanics (server/net/).
 */
#ifndef HS_HTTP_H
#define HS_HTTP_H

#include "server/net/net.h"

/* Registers both transports and the API's routes (every path no other front end took). */
void hs_http_register(hs_server_t *srv);

/* openapi.c: registers GET /api/openapi.json, the OpenAPI document compiled into the library. */
void hs_openapi_register(hs_server_t *srv);

/* dashboard.c: registers GET / and GET /dashboard (the page), /dashboard/app.js, /dashboard/app.css
 * and /dashboard/session (who the page's token makes it). */
void hs_dashboard_register(hs_server_t *srv);

/* sse.c: starts an SSE subscription to stream (a checked name) as the answer to c. */
void hs_sse_start(hs_conn_t *c, const char *stream, size_t len);
const hs_transport_t *hs_sse_transport(void);

#endif
