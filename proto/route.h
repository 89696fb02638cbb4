/*
 * Request routing and argument values: the parts of an HTTP request hubstream interprets
 * itself, as pure functions (no lws, no I/O), so that they can be fuzzed on their own.
 *
 * libwebsockets parses the request line and headers and percent-decodes the path and each query
 * argument; what it hands over is hostile text all the same, and this module decides what it
 * names: the route and stream of a path, the non-negative integers and comma lists of query
 * arguments and headers, and the SignalR connection token in the first bytes of a request
 * (read by the acceptor before lws sees them, to pick the connection's home IO thread).
 */
#ifndef HS_PROTO_ROUTE_H
#define HS_PROTO_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum hs_route_kind {
    HS_ROUTE_NONE = 0,  /* no such route (404) */
    HS_ROUTE_HEALTHZ,   /* /healthz */
    HS_ROUTE_READYZ,    /* /readyz */
    HS_ROUTE_STREAMS,   /* /api/streams, /api/streams/ */
    HS_ROUTE_STREAM,    /* /api/streams/{name} */
    HS_ROUTE_EVENTS,    /* /api/streams/{name}/events */
    HS_ROUTE_CLOSE,     /* /api/streams/{name}/close */
    HS_ROUTE_HUB,       /* /hub */
    HS_ROUTE_NEGOTIATE, /* /hub/negotiate */
} hs_route_kind_t;

typedef struct hs_route {
    hs_route_kind_t kind;
    const char *name; /* the stream name inside the path (not NUL-terminated); may be empty */
    size_t name_len;
} hs_route_t;

/* Routes a decoded path (path[0..len), no query). The name, if any, lies inside path and holds
 * no '/'; its validity as a stream name is the caller's check. */
void hs_route_parse(const char *path, size_t len, hs_route_t *r);

/*
 * The admin routes of /eventstreamhub: a path under /api/EventStream/ (its segments matched
 * ignoring ASCII case, as ASP.NET routes; one trailing '/' allowed). The arguments a and b are
 * the path's variable segments (inside path, not checked: GUIDs, ids and names are the
 * handler's to check).
 */
typedef enum hs_esroute_kind {
    HS_ESR_NONE = 0,        /* not one of them (404) */
    HS_ESR_STREAM,          /* streams/{a}: a stream by GUID (GET) or by id (DELETE) */
    HS_ESR_STREAMS_BY_NAME, /* streams/stream/{a}: streams whose name contains a */
    HS_ESR_STREAMS_SEARCH,  /* streams/search */
    HS_ESR_ASSOCIATE,       /* streams/associate */
    HS_ESR_EVENT,           /* events/{a}/{b}: event b of the stream with id a */
    HS_ESR_EVENTS_SEARCH,   /* events/search */
    HS_ESR_SUBSCRIBER,      /* subscribers/{a} */
    HS_ESR_PROCESSOR,       /* subscriptionprocessor */
} hs_esroute_kind_t;

#define HS_ESROUTE_PREFIX "/api/EventStream/"

typedef struct hs_esroute {
    hs_esroute_kind_t kind;
    const char *a, *b;
    size_t alen, blen;
} hs_esroute_t;

/* Whether path[0..len) lies under HS_ESROUTE_PREFIX (ASCII case ignored). */
bool hs_esroute_match(const char *path, size_t len);
void hs_esroute_parse(const char *path, size_t len, hs_esroute_t *r);

/* A non-negative decimal integer that fits int64: digits only (no sign, no blank), 1..19 of
 * them. False for anything else. */
bool hs_route_uint(const char *s, size_t n, int64_t *out);

/*
 * Splits s (NUL-terminated, modified in place) at commas into at most max non-empty items.
 * Returns the count; *more is set when items were left over.
 */
uint32_t hs_route_list(char *s, const char **items, uint32_t max, bool *more);

/*
 * The connection token a request names, from its first bytes as received (not decoded): a
 * request line "<METHOD> /hub?...&id=<token>&... HTTP/..." gives the value of its id argument.
 * Copies it, NUL-terminated, to token (cap bytes) and returns its length; -1 when the bytes are
 * not such a request line (yet), have no id, or the id does not fit or holds a byte that no
 * token has (tokens are base64url).
 */
int hs_route_hub_token(const char *req, size_t n, char *token, size_t cap);

#endif
