/*
 * hubstream: public C API.
 *
 * The daemon `hubstream` is a thin main() over this library; an application embeds the same
 * server, configures it through hs_config_t and adds its own rules through hooks. Everything a
 * program needs is declared here; the other headers of the source tree are private.
 *
 * Conventions: functions return 0 or a negative HS_E* code (hs_strerror() gives its text);
 * pointer arguments are borrowed unless the comment says the callee takes them.
 */
#ifndef HUBSTREAM_H
#define HUBSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HS_VERSION_STRING "0.1.0"

/*
 * HS_API marks the functions libhubstream.so exports. The shared library is compiled with
 * -fvisibility=hidden and HUBSTREAM_BUILDING_SHARED defined, so only the declarations of this
 * header carrying HS_API are in its dynamic symbol table; for programs using the library (and for
 * the static libhubstream.a) it expands to nothing.
 */
#if defined(HUBSTREAM_BUILDING_SHARED) && (defined(__GNUC__) || defined(__clang__))
#define HS_API __attribute__((visibility("default")))
#else
#define HS_API
#endif

/* Error codes: always negative. */
enum {
    HS_OK = 0,
    HS_EINVAL = -1,         /* bad argument or malformed input */
    HS_ENOMEM = -2,         /* allocation failed */
    HS_ENOENT = -3,         /* no such stream or event */
    HS_ECONFLICT = -4,      /* expectedVersion did not match */
    HS_ECLOSED = -5,        /* the stream is closed */
    HS_EDB = -6,            /* the database failed or is unreachable */
    HS_EUNAVAIL = -7,       /* the server is stopping or not started */
    HS_ETOOLARGE = -8,      /* a size limit was exceeded */
    HS_EBUSY = -9,          /* a queue is full; try again later */
    HS_ESYS = -10,          /* a system call failed (errno is logged) */
    HS_EREJECTED = -11,     /* a hook refused the operation */
    HS_ERESERVED = -12,     /* the stream name is reserved ($...) */
    HS_EUNKNOWN = -13,      /* the database connection broke during the commit and did not come
                               back in time: the events may or may not be appended; retry with
                               the same event ids */
    HS_EUNAUTHORIZED = -14, /* no credentials, or bad ones (HTTP 401) */
    HS_EFORBIDDEN = -15,    /* the credentials do not permit it (HTTP 403) */
};

/* Text of an error code; never NULL. */
HS_API const char *hs_strerror(int err);

/* Log levels, in increasing severity. */
typedef enum hs_log_level {
    HS_LOG_DEBUG = 0,
    HS_LOG_INFO = 1,
    HS_LOG_WARN = 2,
    HS_LOG_ERROR = 3,
} hs_log_level_t;

/*
 * Server configuration. hs_config_init() fills the defaults; every field mirrors a command-line
 * flag of the daemon (`--listen` is `listen`, and so on). Strings are borrowed: they must stay
 * valid until hs_server_create() returns (the server copies them).
 */
typedef struct hs_config {
    const char *listen;            /* "host:port"; default "127.0.0.1:5000"; port 0 picks one */
    const char *db;                /* ODBC connection string, "DSN=name", or a SQLite file path;
                                      default "hubstream.db" (SQLite, WAL) */
    bool allow_anonymous;          /* allow a non-loopback listen address without auth */
    int io_threads;                /* 0 = one per core */
    int fanout_workers;            /* 0 = on the IO threads; N = N threads, at most io_threads */
    int reader_threads;            /* catch-up and HTTP read connections; default 2 */
    int max_connections;           /* default 100000 */
    size_t max_body;               /* HTTP request body bytes; default 1 MiB */
    int request_timeout_ms;        /* a request body must have arrived whole this long after
                                      its headers; default 30000 */
    size_t max_event;              /* one event's encoded size; default 1 MiB */
    size_t max_message;            /* inbound SignalR message; default 1 MiB */
    int max_subscriptions;         /* per connection; default 1000 */
    size_t outbox_bytes;           /* per-subscription outbox bound; default 4 MiB */
    size_t read_budget;            /* bytes that catch-up pages and read answers may hold at once,
                                      over all connections; default 256 MiB */
    size_t connection_read_budget; /* the same for one SignalR connection (its subscriptions'
                                      catch-up and its Read answers); default 16 MiB */
    size_t max_page_bytes;         /* most bytes of events in one read answer (HTTP and Read):
                                      a page ends early past it; default 4 MiB */
    int sse_ping_ms;               /* SSE comment ping after this much silence; default 15000 */
    int sse_retry_ms;              /* the `retry:` advertised to SSE clients; default 3000 */
    int stall_timeout_ms;          /* a subscriber that reads nothing this long is closed;
                                      default 30000 */
    int writer_batch;              /* most events in one commit; default 4096 */
    const char *retention;         /* retention rules, "PATTERN:max-count=N,max-age=DUR;...";
                                      NULL (the default) keeps every event */
    /* SignalR (/hub) */
    int hub_keepalive_ms;          /* Ping after this much silence towards a client; 15000 */
    int hub_client_timeout_ms;     /* close a client silent this long (armed by its first
                                      Ping); 30000 */
    int hub_handshake_timeout_ms;  /* the handshake must arrive within; 15000 */
    int hub_disconnect_timeout_ms; /* an unused negotiated id, an absent long-polling client,
                                      a dropped stateful connection expire after; 15000 */
    int hub_longpoll_ms;           /* a long poll with nothing to send is answered after; 90000 */
    int hub_max_unclaimed;         /* negotiated connections not yet used by a transport (and
                                      ended long-polling ones not yet expired); beyond it
                                      negotiate answers 429; 10000 */
    bool hub_stateful_reconnect;   /* grant stateful reconnect to clients that ask; true */
    size_t hub_stateful_buffer;    /* unacknowledged bytes kept for a stateful resume; 100000 */
    hs_log_level_t log_level;      /* default HS_LOG_INFO */
    /* Auth (on when a JWT key is configured or an auth hook is set; then a non-loopback
       listen address needs no allow_anonymous) */
    const char *jwt_secret;      /* HS256 shared secret; NULL: none */
    const char *jwt_public_keys; /* RS256 / ES256 public keys: PEM files, comma-separated, each
                                    "FILE" or "KID=FILE" (the id a token's kid names); NULL */
    const char *jwt_audience;    /* when set, a token's aud must hold it */
    const char *jwt_issuer;      /* when set, a token's iss must be it */
    int jwt_leeway_s;            /* clock skew allowed on exp and nbf; default 30 */
    const char *cors_origins;    /* browser origins that may read answers, comma-separated
                                    ("https://app.example.com"), "*" for any (without
                                    credentials); NULL: loopback origins while auth is off.
                                    Pages of other origins than these and the server's own may
                                    not publish, close, delete or open WebSockets (403) */
    const char *tls_cert;        /* PEM certificate (the leaf, then its chain) to serve HTTPS and
                                    WSS with; NULL: plain HTTP */
    const char *tls_key;         /* its PEM private key */
    bool allow_plaintext;        /* no warning for a non-loopback address without TLS */
    /* per-client limits (0: none, the default) */
    int max_connections_per_ip;  /* connections from one source address (429 and close) */
    int max_publishes_per_s;     /* publishes per connection per second (429 / hub error) */
    int max_negotiates_per_ip_s; /* SignalR negotiates per source address per second (429) */
    /* Several nodes on one database (PostgreSQL, SQL Server): how each hears of the others'
       commits, so that every subscriber sees every event live. "none", "poll", "postgres"
       (LISTEN/NOTIFY over a libpq connection made from db), a postgres:// URI, or
       "redis://HOST[:PORT][/CHANNEL]". NULL: poll when the database is shared, nothing on
       SQLite. */
    const char *backplane;
    /* The default log writer's format (no log hook): "json" (JSON lines, the default) or "text"
       (`TIME LEVEL message key=value ...`). */
    const char *log_format;
    /* One record per HTTP request answered ("request": method, path, status, bytes, ms, peer,
       user, request id), at info. Default false. */
    bool access_log;
    /* /eventstreamhub: the most persistent subscribers (rows) the database keeps; a Subscribe
       with a new SubscriberId beyond it fails ("TooManySubscribers"). Default 100,000; 0: no
       limit. Counted per node: several nodes may pass it by what they add between counts. */
    int es_max_subscribers;
    /* At start, how long to wait for the database to be reachable, trying once a second
       (a container started beside it), before hs_server_create fails. Default 0: fail at
       once. */
    int db_wait_s;
} hs_config_t;

/* Fills *cfg with the defaults. */
HS_API void hs_config_init(hs_config_t *cfg);

typedef struct hs_server hs_server_t;

/*
 * Creates a server from *cfg (copied): opens the database and migrates its schema, but starts no
 * thread and binds no socket. On failure returns NULL and, if err is not NULL, writes a message
 * of at most errlen bytes into it.
 */
HS_API hs_server_t *hs_server_create(const hs_config_t *cfg, char *err, size_t errlen);

/*
 * Binds the listen address and starts every thread; returns 0 once connections are accepted.
 * Call once. HS_EFORBIDDEN (and an error log record) for a non-loopback listen address while
 * no auth is configured (no JWT key, no auth hook) and allow_anonymous is off.
 */
HS_API int hs_server_start(hs_server_t *srv);

/*
 * Stops accepting, lets the writer commit what it has already taken, closes every connection
 * and joins the threads. Safe to call from any thread and more than once; the first call from a
 * signal handler only raises a flag (async-signal-safe) and hs_server_wait() does the work.
 */
HS_API void hs_server_stop(hs_server_t *srv);

/* Blocks until hs_server_stop() was called, then finishes the stop. Also runs the reloads asked
 * for with hs_server_request_reload(). */
HS_API void hs_server_wait(hs_server_t *srv);

/*
 * Loads the TLS certificate and key files again (after a renewal): checked first (a bad pair is
 * refused, logged, and the old certificate stays), then used for every new handshake; open
 * connections keep theirs. 0, or HS_EINVAL (no TLS configured, or the files are bad). Any
 * thread, not from a signal handler: there, hs_server_request_reload().
 */
HS_API int hs_server_reload_tls(hs_server_t *srv);
/* Async-signal-safe: asks hs_server_wait() to run hs_server_reload_tls() (the daemon's SIGHUP). */
HS_API void hs_server_request_reload(hs_server_t *srv);

/* Frees a stopped (or never started) server. */
HS_API void hs_server_destroy(hs_server_t *srv);

/* The bound TCP port (useful with a listen port of 0), or -1 before hs_server_start(). */
HS_API int hs_server_port(const hs_server_t *srv);

/* An event to publish from inside the process. Strings are borrowed for the call. */
typedef struct hs_event {
    const char *type;     /* required, 1..200 bytes */
    const char *data;     /* JSON text; NULL means null */
    const char *metadata; /* JSON object text or NULL */
    const char *id;       /* client event id for idempotency, or NULL for a generated one */
} hs_event_t;

/* What a publish appended (or, for a repeated client id, what it appended the first time). */
typedef struct hs_publish_result {
    int64_t first_version, last_version;
    int64_t first_position, last_position;
    int64_t actual_version; /* on HS_ECONFLICT: the stream's version */
} hs_publish_result_t;

#define HS_ANY_VERSION (-1)

/*
 * Appends n events to `stream`, through the same writer as network clients. Thread-safe; blocks
 * until the batch holding the events committed (or failed). expected_version is HS_ANY_VERSION,
 * or the version the stream must have (0: must not exist). Returns 0, HS_ECONFLICT (with
 * result->actual_version), HS_ECLOSED, HS_EINVAL, HS_EDB (nothing appended), HS_EUNKNOWN,
 * HS_EREJECTED or HS_EUNAVAIL.
 */
HS_API int hs_server_publish(hs_server_t *srv, const char *stream, const hs_event_t *events,
                             size_t n, int64_t expected_version, hs_publish_result_t *result);

/*
 * Log hook: receives every log record instead of the default JSON-lines writer on stderr.
 * `fields` is a JSON object text with the record's structured fields ("{}" when none). May be
 * called from any server thread, concurrently; must not block for long.
 */
typedef void (*hs_log_fn)(void *ctx, hs_log_level_t level, const char *message, const char *fields);
HS_API void hs_server_set_log_hook(hs_server_t *srv, hs_log_fn fn, void *ctx);

/*
 * Event hook: sees each event before it is appended (on the thread that parsed it, never the
 * writer). Return 0 to accept, or non-zero to reject the whole publish: then write a reason of
 * at most reason_len bytes into `reason`, which the publisher receives as
 * `InvalidEvent: <reason>` (HTTP 400). Set hooks before hs_server_start().
 */
typedef int (*hs_event_fn)(void *ctx, const char *stream, const hs_event_t *event, char *reason,
                           size_t reason_len);
HS_API void hs_server_set_event_hook(hs_server_t *srv, hs_event_fn fn, void *ctx);

/*
 * ---- Auth ----
 *
 * Who is asking is decided once per HTTP request and once per SignalR connection (at its
 * negotiate, or at its WebSocket upgrade when it skipped negotiation): the auth hook, else the
 * built-in JWT check when a key is configured, gives a principal. What it may do is decided per
 * action on a stream: the principal's permissions, then the authorize hook when one is set.
 * With neither a key nor an auth hook, everyone may do everything (and the server listens on
 * loopback only, unless allow_anonymous). /healthz and /readyz are always open.
 */

/* What a request asks to do. */
typedef enum hs_action {
    HS_ACTION_PUBLISH = 0,   /* append events: the publish permission */
    HS_ACTION_CLOSE = 1,     /* close a stream: the publish permission */
    HS_ACTION_READ = 2,      /* read events, a stream's state, the list of streams: subscribe */
    HS_ACTION_SUBSCRIBE = 3, /* SSE and hub subscriptions: subscribe */
    HS_ACTION_DELETE = 4,    /* delete a stream: admin */
    HS_ACTION_ADMIN = 5,     /* /metrics, the dashboard, the admin routes (no stream): admin */
} hs_action_t;

/*
 * A principal: a user id and permissions. Stream patterns are a name, or a prefix ending in
 * `*`; `{sub}` in a pattern stands for the user id (matched literally); `$all` is matched only
 * by `*`. The server takes ownership of a principal an auth hook returns.
 */
typedef struct hs_principal hs_principal_t;

/* A principal with no permission. NULL on ENOMEM. */
HS_API hs_principal_t *hs_principal_new(const char *user);
/* Permits a stream pattern for HS_ACTION_PUBLISH or HS_ACTION_SUBSCRIBE (the other actions
 * follow from these two and admin). 0, HS_EINVAL or HS_ENOMEM. */
HS_API int hs_principal_allow(hs_principal_t *p, hs_action_t action, const char *pattern);
HS_API void hs_principal_set_admin(hs_principal_t *p, bool admin);
/* When the credentials expire (Unix seconds; 0: never): a connection is closed then. */
HS_API void hs_principal_set_expiry(hs_principal_t *p, int64_t unix_s);
HS_API const char *hs_principal_user(const hs_principal_t *p);
/* Whether the principal's permissions allow action on stream (NULL for HS_ACTION_ADMIN). */
HS_API bool hs_principal_allows(const hs_principal_t *p, hs_action_t action, const char *stream);
HS_API void hs_principal_free(hs_principal_t *p);

/* The request an auth hook looks at; valid during the hook's call only. */
typedef struct hs_auth_request hs_auth_request_t;
HS_API const char *hs_auth_request_method(const hs_auth_request_t *r); /* "GET", "POST", ... */
HS_API const char *hs_auth_request_path(const hs_auth_request_t *r);   /* without the query */
/* The bearer token: `Authorization: Bearer ...`, else the `access_token` query argument;
 * NULL when there is none. */
HS_API const char *hs_auth_request_token(const hs_auth_request_t *r);
/* The client's address (numeric). */
HS_API const char *hs_auth_request_peer(const hs_auth_request_t *r);
/* Copies the value of request header `name` (case-insensitive, e.g. "x-api-key") into buf:
 * its length, or -1 when absent or longer than len - 1. */
HS_API int hs_auth_request_header(const hs_auth_request_t *r, const char *name, char *buf,
                                  size_t len);

/*
 * Auth hook: who is asking. Runs on an IO thread, concurrently with other calls; must not block
 * for long. Return 0 with *principal set, or HS_EUNAUTHORIZED (answered 401 with
 * WWW-Authenticate: Bearer) or HS_EFORBIDDEN (403), with a reason of at most reason_len bytes
 * that the client receives.
 */
typedef int (*hs_auth_fn)(void *ctx, const hs_auth_request_t *req, hs_principal_t **principal,
                          char *reason, size_t reason_len);
HS_API void hs_server_set_auth_hook(hs_server_t *srv, hs_auth_fn fn, void *ctx);
/* The built-in JWT check (the default auth hook), for a hook that extends it: the same
 * contract. HS_EUNAUTHORIZED when no JWT key is configured. */
HS_API int hs_server_auth_jwt(hs_server_t *srv, const hs_auth_request_t *req,
                              hs_principal_t **principal, char *reason, size_t reason_len);

/*
 * Authorize hook: may `principal` (NULL when auth is off) do `action` on `stream` (NULL for
 * HS_ACTION_ADMIN)? `allowed` is what the principal's permissions say. Return true to allow.
 * Runs on server threads (IO threads; reader threads when filtering the stream list),
 * concurrently, for every request, invocation and subscription (not per event).
 */
typedef bool (*hs_authorize_fn)(void *ctx, const hs_principal_t *principal, hs_action_t action,
                                const char *stream, bool allowed);
HS_API void hs_server_set_authorize_hook(hs_server_t *srv, hs_authorize_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
