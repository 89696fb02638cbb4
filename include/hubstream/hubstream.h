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
    HS_EINVAL = -1,     /* bad argument or malformed input */
    HS_ENOMEM = -2,     /* allocation failed */
    HS_ENOENT = -3,     /* no such stream or event */
    HS_ECONFLICT = -4,  /* expectedVersion did not match */
    HS_ECLOSED = -5,    /* the stream is closed */
    HS_EDB = -6,        /* the database failed or is unreachable */
    HS_EUNAVAIL = -7,   /* the server is stopping or not started */
    HS_ETOOLARGE = -8,  /* a size limit was exceeded */
    HS_EBUSY = -9,      /* a queue is full; try again later */
    HS_ESYS = -10,      /* a system call failed (errno is logged) */
    HS_EREJECTED = -11, /* a hook refused the operation */
    HS_ERESERVED = -12, /* the stream name is reserved ($...) */
    HS_EUNKNOWN = -13,  /* the database connection broke during the commit and did not come
                           back in time: the events may or may not be appended; retry with
                           the same event ids */
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
    int fanout_workers;            /* 0 = one per two cores, at least 1 */
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
 * Call once.
 */
HS_API int hs_server_start(hs_server_t *srv);

/*
 * Stops accepting, lets the writer commit what it has already taken, closes every connection
 * and joins the threads. Safe to call from any thread and more than once; the first call from a
 * signal handler only raises a flag (async-signal-safe) and hs_server_wait() does the work.
 */
HS_API void hs_server_stop(hs_server_t *srv);

/* Blocks until hs_server_stop() was called, then finishes the stop. */
HS_API void hs_server_wait(hs_server_t *srv);

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

#ifdef __cplusplus
}
#endif
#endif
