/*
 * Configuration: defaults, config file, HUBSTREAM_* environment variables and flags.
 *
 * One table (`opts`) describes every setting: its flag name, where it lives in hs_config_t, its
 * kind and accepted range, and its --help line. The three sources are read through that table
 * and every value goes through apply(), so a setting is checked the same way wherever it comes
 * from, and an error names the flag, variable or file line it came from.
 *
 * This module does not open sockets or the database and does not enforce cross-field policy
 * (a non-loopback listen address without --allow-anonymous is the server's call). It keeps no
 * global mutable state: everything it allocates hangs off the caller's hs_cli_t.
 */
#include "daemon/config.h"

#include "storage/retention.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

#define USAGE_WIDTH 100
#define ENV_PREFIX  "HUBSTREAM_"

/* How a setting's value is read. */
enum kind {
    K_STR,       /* any non-empty string */
    K_LISTEN,    /* a string that hs_listen_parse() accepts */
    K_BOOL,      /* 1/0, true/false, yes/no, on/off */
    K_INT,       /* a decimal int within [min, max] */
    K_SIZE,      /* a byte count with an optional k/m/g suffix, within [min, max] */
    K_LEVEL,     /* debug|info|warn|error */
    K_RETENTION, /* rules that hs_retention_parse() accepts */
    K_CONFIG,    /* --config: flag only */
    K_HELP,      /* --help, -h: flag only, no value */
    K_VERSION,   /* --version: flag only, no value */
};

/* Slots of hs_cli_t.owned. */
enum {
    OWN_LISTEN,
    OWN_DB,
    OWN_CONFIG,
    OWN_RETENTION,
    OWN_JWT_SECRET,
    OWN_JWT_KEYS,
    OWN_JWT_AUD,
    OWN_JWT_ISS,
    OWN_CORS,
    OWN_TLS_CERT,
    OWN_TLS_KEY,
    OWN_BACKPLANE,
    OWN_LOG_FORMAT
};

struct opt {
    const char *name; /* the flag without its dashes; also the config file key */
    enum kind kind;
    size_t off; /* the field in hs_config_t (value kinds only) */
    int own;    /* K_STR, K_LISTEN: the hs_cli_t.owned slot */
    uint64_t min, max;
    const char *meta; /* the value's placeholder in --help */
    const char *help;
};

#define CFG(field) offsetof(hs_config_t, field)

static const struct opt opts[] = {
    {"listen", K_LISTEN, CFG(listen), OWN_LISTEN, 0, 0, "HOST:PORT",
     "Address to listen on: HOST:PORT, [IPV6]:PORT, or :PORT for every interface; port 0 picks "
     "a free port. A non-loopback address also needs --allow-anonymous."},
    {"db", K_STR, CFG(db), OWN_DB, 0, 0, "DB",
     "Database: an ODBC connection string, DSN=name, or a SQLite file path (opened in WAL "
     "mode)."},
    {"allow-anonymous", K_BOOL, CFG(allow_anonymous), 0, 0, 0, "[=BOOL]",
     "Allow a non-loopback listen address without authentication. Alone it means true; "
     "--allow-anonymous=false turns it off."},
    {"io-threads", K_INT, CFG(io_threads), 0, 0, 1024, "N",
     "Network I/O threads; 0 = one per core."},
    {"fanout-workers", K_INT, CFG(fanout_workers), 0, 0, 1024, "N",
     "Threads delivering new events to subscribers, each serving the subscribers of some IO "
     "threads (at most --io-threads); 0 = none: each IO thread delivers to its own."},
    {"reader-threads", K_INT, CFG(reader_threads), 0, 1, 1024, "N",
     "Threads serving catch-up reads and HTTP read requests."},
    {"max-connections", K_INT, CFG(max_connections), 0, 1, 10000000, "N",
     "Most client connections open at once."},
    {"max-body", K_SIZE, CFG(max_body), 0, 1, GIB, "SIZE", "Largest HTTP request body."},
    {"request-timeout-ms", K_INT, CFG(request_timeout_ms), 0, 1, 86400000, "MS",
     "A request body must have arrived whole within this many milliseconds of its headers "
     "(a deadline for the whole body, not for each byte); 408 and a closed connection after."},
    {"max-event", K_SIZE, CFG(max_event), 0, 1, GIB, "SIZE", "Largest single event, encoded."},
    {"max-message", K_SIZE, CFG(max_message), 0, 1, GIB, "SIZE",
     "Largest inbound SignalR message."},
    {"max-subscriptions", K_INT, CFG(max_subscriptions), 0, 1, 1000000, "N",
     "Most subscriptions on one connection."},
    {"outbox-bytes", K_SIZE, CFG(outbox_bytes), 0, 1, GIB, "SIZE",
     "Most bytes queued for one subscription (its outbox bound)."},
    {"read-budget", K_SIZE, CFG(read_budget), 0, 64 * KIB, 1024 * GIB, "SIZE",
     "Most bytes that catch-up pages and read answers hold at once, over all connections; when "
     "it is spent, catch-up waits and reads answer 503."},
    {"connection-read-budget", K_SIZE, CFG(connection_read_budget), 0, 64 * KIB, 1024 * GIB, "SIZE",
     "The same for one SignalR connection: its Read answers and the first read of its "
     "live-only subscriptions (catch-up pages are shared, within --read-budget)."},
    {"max-page-bytes", K_SIZE, CFG(max_page_bytes), 0, 1 * KIB, GIB, "SIZE",
     "Most bytes of events in one read answer (GET .../events, the hub's Read); a page that "
     "reaches it ends early and `next` continues it."},
    {"sse-ping-ms", K_INT, CFG(sse_ping_ms), 0, 1, 86400000, "MS",
     "Send an SSE comment ping after this many milliseconds of silence."},
    {"sse-retry-ms", K_INT, CFG(sse_retry_ms), 0, 1, 86400000, "MS",
     "The `retry:` reconnect delay advertised to SSE clients, in milliseconds."},
    {"stall-timeout-ms", K_INT, CFG(stall_timeout_ms), 0, 1, 86400000, "MS",
     "Close a subscriber that has read nothing for this many milliseconds."},
    {"writer-batch", K_INT, CFG(writer_batch), 0, 1, 1000000, "N",
     "Most events committed in one database transaction."},
    {"retention", K_RETENTION, CFG(retention), OWN_RETENTION, 0, 0, "RULES",
     "Drop old events of matching streams: PATTERN:max-count=N,max-age=DURATION, rules "
     "separated by ';'. PATTERN is a stream name or a prefix ending in '*'; DURATION is seconds "
     "or a number with s, m, h or d. The first matching rule applies. Example: "
     "'job-*:max-age=1h;log-*:max-count=10000'."},
    {"hub-keepalive-ms", K_INT, CFG(hub_keepalive_ms), 0, 1, 86400000, "MS",
     "SignalR: send a Ping to a client after this many milliseconds of silence."},
    {"hub-client-timeout-ms", K_INT, CFG(hub_client_timeout_ms), 0, 1, 86400000, "MS",
     "SignalR: close a client that has sent nothing for this long (armed by its first Ping)."},
    {"hub-handshake-timeout-ms", K_INT, CFG(hub_handshake_timeout_ms), 0, 1, 86400000, "MS",
     "SignalR: close a connection whose handshake has not arrived within this time."},
    {"hub-disconnect-timeout-ms", K_INT, CFG(hub_disconnect_timeout_ms), 0, 1, 86400000, "MS",
     "SignalR: forget a negotiated connection unused for this long, a long-polling client "
     "that stopped polling, or a dropped stateful connection not resumed in time."},
    {"hub-longpoll-ms", K_INT, CFG(hub_longpoll_ms), 0, 1, 86400000, "MS",
     "SignalR: answer a long poll that has nothing to send after this long."},
    {"hub-max-unclaimed", K_INT, CFG(hub_max_unclaimed), 0, 1, 10000000, "N",
     "SignalR: most negotiated connections waiting for their transport; negotiate answers 429 "
     "beyond it."},
    {"hub-stateful-reconnect", K_BOOL, CFG(hub_stateful_reconnect), 0, 0, 0, "[=BOOL]",
     "SignalR: grant stateful reconnect to clients that ask for it (default true)."},
    {"hub-stateful-buffer", K_SIZE, CFG(hub_stateful_buffer), 0, 1, GIB, "SIZE",
     "SignalR: most unacknowledged bytes kept per connection for a stateful resume."},
    {"jwt-secret", K_STR, CFG(jwt_secret), OWN_JWT_SECRET, 0, 0, "SECRET",
     "Auth: accept HS256 tokens signed with SECRET (at least 32 bytes). A flag shows in ps: "
     "prefer the variable or the config file."},
    {"jwt-public-key", K_STR, CFG(jwt_public_keys), OWN_JWT_KEYS, 0, 0, "FILES",
     "Auth: accept RS256 / ES256 tokens signed for these PEM public keys: FILE or KID=FILE (the "
     "kid a token names), comma-separated for several (key rotation)."},
    {"jwt-audience", K_STR, CFG(jwt_audience), OWN_JWT_AUD, 0, 0, "AUD",
     "Auth: a token's aud must hold AUD."},
    {"jwt-issuer", K_STR, CFG(jwt_issuer), OWN_JWT_ISS, 0, 0, "ISS",
     "Auth: a token's iss must be ISS."},
    {"tls-cert", K_STR, CFG(tls_cert), OWN_TLS_CERT, 0, 0, "FILE",
     "TLS: serve HTTPS and WSS with this PEM certificate (the leaf, then its chain). SIGHUP "
     "loads it again (open connections keep theirs)."},
    {"tls-key", K_STR, CFG(tls_key), OWN_TLS_KEY, 0, 0, "FILE",
     "TLS: the certificate's PEM private key."},
    {"allow-plaintext", K_BOOL, CFG(allow_plaintext), 0, 0, 0, "[=BOOL]",
     "No warning for a non-loopback address without TLS (TLS ends in a proxy in front)."},
    {"max-connections-per-ip", K_INT, CFG(max_connections_per_ip), 0, 0, 10000000, "N",
     "Connections one source address may hold; beyond it a new one gets 429 and is closed. 0: no "
     "limit."},
    {"max-publishes-per-s", K_INT, CFG(max_publishes_per_s), 0, 0, 10000000, "N",
     "Publishes per connection per second (bursts of N); beyond it 429 / a hub error. 0: no "
     "limit."},
    {"max-negotiates-per-ip-s", K_INT, CFG(max_negotiates_per_ip_s), 0, 0, 10000000, "N",
     "SignalR negotiates per source address per second; beyond it 429. 0: no limit."},
    {"db-wait-s", K_INT, CFG(db_wait_s), 0, 0, 86400, "S",
     "At start, wait up to S seconds for the database to be reachable (a try a second) instead "
     "of exiting at once. 0: no wait."},
    {"es-max-subscribers", K_INT, CFG(es_max_subscribers), 0, 0, 1000000000, "N",
     "/eventstreamhub: the most persistent subscribers the database keeps; a Subscribe with a "
     "new SubscriberId beyond it fails (TooManySubscribers). 0: no limit."},
    {"backplane", K_STR, CFG(backplane), OWN_BACKPLANE, 0, 0, "KIND",
     "Several nodes on one PostgreSQL or SQL Server database: how each hears of the others' "
     "events. postgres (LISTEN/NOTIFY, connecting with --db's Server, Port, Database, Uid, Pwd), "
     "a postgres:// URI, redis://HOST[:PORT][/CHANNEL], poll, or none. Default: poll on a "
     "shared database; SQLite serves one node."},
    {"cors-origins", K_STR, CFG(cors_origins), OWN_CORS, 0, 0, "ORIGINS",
     "Browser origins that may read answers (scheme://host[:port], comma-separated; * for any, "
     "without credentials). Pages of other origins but the server's own may not publish, close, "
     "delete or open WebSockets. Default: loopback origins while no auth is configured, else "
     "none."},
    {"jwt-leeway-s", K_INT, CFG(jwt_leeway_s), 0, 0, 3600, "S",
     "Auth: clock skew allowed when checking a token's exp and nbf."},
    {"log-level", K_LEVEL, CFG(log_level), 0, 0, 0, "LEVEL",
     "Least severe log record written: debug, info, warn or error."},
    {"log-format", K_STR, CFG(log_format), OWN_LOG_FORMAT, 0, 0, "FORMAT",
     "Log records as json (JSON lines) or text (TIME LEVEL message key=value ...)."},
    {"access-log", K_BOOL, CFG(access_log), 0, 0, 0, "[=BOOL]",
     "Log one record per HTTP request answered (method, path, status, bytes, ms, peer, user, "
     "request id)."},
    {"config", K_CONFIG, 0, OWN_CONFIG, 0, 0, "FILE",
     "Read settings from FILE first (format below); flags and variables override it."},
    {"help", K_HELP, 0, 0, 0, 0, NULL, "Print this help and exit. Also -h."},
    {"version", K_VERSION, 0, 0, 0, 0, NULL,
     "Print the version and the commit it was built from, and exit."},
};

#define NOPTS (sizeof opts / sizeof opts[0])

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* ---- errors ---------------------------------------------------------------------------- */

/* Writes a message into err (if any) and returns code. */
__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int code,
                                                      const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- option lookup --------------------------------------------------------------------- */

/* Flag names compare case-insensitively, with `_` standing for `-`. */
static int norm(char c)
{
    return c == '_' ? '-' : tolower((unsigned char)c);
}

static bool name_is(const char *s, size_t len, const char *name)
{
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '\0' || norm(s[i]) != name[i])
            return false;
    }
    return name[len] == '\0';
}

static const struct opt *lookup(const char *s, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++) {
        if (name_is(s, len, opts[i].name))
            return &opts[i];
    }
    return NULL;
}

/* Levenshtein distance between s[0..len) and name, or SIZE_MAX for long strings. */
static size_t distance(const char *s, size_t len, const char *name)
{
    size_t nlen = strlen(name), row[33];

    if (len > 32 || nlen > 32)
        return SIZE_MAX;
    for (size_t j = 0; j <= nlen; j++)
        row[j] = j;
    for (size_t i = 1; i <= len; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nlen; j++) {
            size_t up = row[j];
            size_t best = diag + (norm(s[i - 1]) == name[j - 1] ? 0 : 1);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nlen];
}

/* The option whose name is within two edits of s, for a "did you mean" hint; or NULL. */
static const struct opt *nearest(const char *s, size_t len, bool settings_only)
{
    const struct opt *best = NULL;
    size_t best_d = 3;

    for (size_t i = 0; i < NOPTS; i++) {
        if (settings_only && opts[i].kind >= K_CONFIG)
            continue;
        size_t d = distance(s, len, opts[i].name);
        if (d < best_d && d < len) {
            best = &opts[i];
            best_d = d;
        }
    }
    return best;
}

/* "HUBSTREAM_MAX_BODY" for max-body. */
static void env_name(const struct opt *o, char *buf, size_t len)
{
    size_t n = strlen(ENV_PREFIX);

    snprintf(buf, len, "%s", ENV_PREFIX);
    for (const char *p = o->name; *p && n + 1 < len; p++)
        buf[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    buf[n < len ? n : len - 1] = '\0';
}

/* ---- value parsing --------------------------------------------------------------------- */

/*
 * Reads the decimal digits at *s into *out and advances *s past them. Returns 0, -1 if there is
 * no digit, or 1 if the number does not fit 64 bits (the digits are still consumed).
 */
static int parse_digits(const char **s, uint64_t *out)
{
    const char *p = *s;
    uint64_t n = 0;
    bool over = false;

    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - d) / 10)
            over = true;
        else
            n = n * 10 + d;
    }
    *s = p;
    *out = n;
    return over ? 1 : 0;
}

/* A whole decimal number. Returns 0, -1 (malformed) or 1 (too large for 64 bits). */
static int parse_uint(const char *s, uint64_t *out)
{
    int rc = parse_digits(&s, out);
    if (rc < 0 || *s != '\0')
        return -1;
    return rc;
}

/* Bytes: digits, optional blanks, optional suffix b, k/kb/kib, m/mb/mib, g/gb/gib (any case,
 * all binary). Returns 0, -1 (malformed) or 1 (too large for 64 bits). */
static int parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {
        {"", 1},     {"b", 1},     {"k", KIB}, {"kb", KIB}, {"kib", KIB}, {"m", MIB},
        {"mb", MIB}, {"mib", MIB}, {"g", GIB}, {"gb", GIB}, {"gib", GIB},
    };
    uint64_t n;
    int rc = parse_digits(&s, &n);

    if (rc < 0)
        return -1;
    while (*s == ' ' || *s == '\t')
        s++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(s, units[i].suffix) != 0)
            continue;
        if (rc > 0 || n > UINT64_MAX / units[i].mult)
            return 1;
        *out = n * units[i].mult;
        return 0;
    }
    return -1;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};

    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static int parse_level(const char *s, hs_log_level_t *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (hs_log_level_t)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = HS_LOG_WARN;
        return 0;
    }
    return -1;
}

/* "4MiB" for 4194304, plain bytes when no binary unit divides it. */
static void fmt_size(uint64_t n, char *buf, size_t len)
{
    if (n != 0 && n % GIB == 0)
        snprintf(buf, len, "%lluGiB", (unsigned long long)(n / GIB));
    else if (n != 0 && n % MIB == 0)
        snprintf(buf, len, "%lluMiB", (unsigned long long)(n / MIB));
    else if (n != 0 && n % KIB == 0)
        snprintf(buf, len, "%lluKiB", (unsigned long long)(n / KIB));
    else
        snprintf(buf, len, "%llu", (unsigned long long)n);
}

/* ---- applying a value ------------------------------------------------------------------ */

/* Replaces owned slot `slot` with a copy of value and points *field at it. */
static int set_str(hs_cli_t *cli, int slot, const char **field, const char *value, char *err,
                   size_t errlen)
{
    char *copy = strdup(value);

    if (!copy)
        return fail(err, errlen, HS_ENOMEM, "out of memory");
    free(cli->owned[slot]);
    cli->owned[slot] = copy;
    *field = copy;
    return 0;
}

/*
 * Checks value for option o and stores it in cli->cfg. `where` names the source for messages
 * ("--max-body", "environment variable HUBSTREAM_MAX_BODY", "config file f line 3: max-body").
 */
static int apply(hs_cli_t *cli, const struct opt *o, const char *value, const char *where,
                 char *err, size_t errlen)
{
    void *field = (char *)&cli->cfg + o->off;
    char lo[32], hi[32];
    uint64_t n = 0;
    int rc;

    if (*value == '\0')
        return fail(err, errlen, HS_EINVAL, "%s: empty value", where);

    switch (o->kind) {
    case K_LISTEN: {
        char host[256];
        int port;
        if (hs_listen_parse(value, host, sizeof host, &port) != 0)
            return fail(err, errlen, HS_EINVAL,
                        "%s: bad address '%.100s' (expected HOST:PORT, [IPV6]:PORT or :PORT, "
                        "port 0..65535)",
                        where, value);
        return set_str(cli, o->own, (const char **)field, value, err, errlen);
    }
    case K_STR:
        return set_str(cli, o->own, (const char **)field, value, err, errlen);
    case K_RETENTION: {
        hs_retention_t *r = NULL;
        char why[300];
        rc = hs_retention_parse(value, &r, why, sizeof why);
        hs_retention_free(r);
        if (rc == HS_ENOMEM)
            return fail(err, errlen, HS_ENOMEM, "out of memory");
        if (rc)
            return fail(err, errlen, HS_EINVAL, "%s: %s", where, why);
        return set_str(cli, o->own, (const char **)field, value, err, errlen);
    }
    case K_BOOL:
        if (parse_bool(value, (bool *)field) != 0)
            return fail(err, errlen, HS_EINVAL,
                        "%s: bad boolean '%.100s' (expected true/false, 1/0, yes/no, on/off)",
                        where, value);
        return 0;
    case K_INT:
        rc = parse_uint(value, &n);
        if (rc < 0)
            return fail(err, errlen, HS_EINVAL,
                        "%s: bad number '%.100s' (expected a whole number %llu..%llu)", where,
                        value, (unsigned long long)o->min, (unsigned long long)o->max);
        if (rc > 0 || n < o->min || n > o->max)
            return fail(err, errlen, HS_EINVAL, "%s: %.100s is out of range %llu..%llu", where,
                        value, (unsigned long long)o->min, (unsigned long long)o->max);
        *(int *)field = (int)n;
        return 0;
    case K_SIZE:
        rc = parse_size(value, &n);
        fmt_size(o->min, lo, sizeof lo);
        fmt_size(o->max, hi, sizeof hi);
        if (rc < 0)
            return fail(err, errlen, HS_EINVAL,
                        "%s: bad size '%.100s' (expected bytes with an optional k, m or g "
                        "suffix, e.g. 65536, 512k, 4MiB)",
                        where, value);
        if (rc > 0 || n < o->min || n > o->max)
            return fail(err, errlen, HS_EINVAL, "%s: %.100s is out of range %s..%s", where, value,
                        lo, hi);
        *(size_t *)field = (size_t)n;
        return 0;
    case K_LEVEL:
        if (parse_level(value, (hs_log_level_t *)field) != 0)
            return fail(err, errlen, HS_EINVAL,
                        "%s: bad log level '%.100s' (expected debug, info, warn or error)", where,
                        value);
        return 0;
    default:
        return fail(err, errlen, HS_EINVAL, "%s: cannot be set here", where);
    }
}

/* ---- the three sources ----------------------------------------------------------------- */

/* Removes leading and trailing blanks (and the line end) in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* One config file line (modified in place). */
static int file_line(hs_cli_t *cli, const char *path, int lineno, char *line, size_t len, char *err,
                     size_t errlen)
{
    char where[512];
    char *s = line, *eq, *key, *value;
    const struct opt *o;

    if (strlen(line) != len)
        return fail(err, errlen, HS_EINVAL, "config file %s line %d: contains a NUL byte", path,
                    lineno);
    if (lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3; /* UTF-8 byte order mark */
    s = trim(s);
    if (*s == '\0' || *s == '#')
        return 0;

    eq = strchr(s, '=');
    if (!eq)
        return fail(err, errlen, HS_EINVAL,
                    "config file %s line %d: expected 'key = value', got '%.60s'", path, lineno, s);
    *eq = '\0';
    key = trim(s);
    value = trim(eq + 1);
    if (*key == '\0')
        return fail(err, errlen, HS_EINVAL, "config file %s line %d: missing key before '='", path,
                    lineno);

    o = lookup(key, strlen(key));
    if (o && o->kind == K_CONFIG)
        return fail(err, errlen, HS_EINVAL,
                    "config file %s line %d: key 'config' is not allowed in a config file", path,
                    lineno);
    if (!o || o->kind > K_CONFIG) {
        const struct opt *near = nearest(key, strlen(key), true);
        return fail(err, errlen, HS_EINVAL, "config file %s line %d: unknown key '%.60s'%s%s%s",
                    path, lineno, key, near ? " (did you mean '" : "", near ? near->name : "",
                    near ? "'?)" : "");
    }

    if (*value == '"' || *value == '\'') {
        char *end = strchr(value + 1, *value), *rest;
        if (!end)
            return fail(err, errlen, HS_EINVAL, "config file %s line %d: %s: unterminated quote",
                        path, lineno, o->name);
        *end = '\0';
        rest = trim(end + 1);
        if (*rest != '\0' && *rest != '#')
            return fail(err, errlen, HS_EINVAL,
                        "config file %s line %d: %s: unexpected text after the closing quote", path,
                        lineno, o->name);
        value++;
    } else {
        /* An unquoted value ends at a `#` that follows a blank. (An empty value has nothing
         * to scan: value + 1 would be past its NUL.) */
        for (char *p = *value ? value + 1 : value; *p; p++) {
            if (*p == '#' && (p[-1] == ' ' || p[-1] == '\t')) {
                *p = '\0';
                value = trim(value);
                break;
            }
        }
    }

    snprintf(where, sizeof where, "config file %s line %d: %s", path, lineno, o->name);
    return apply(cli, o, value, where, err, errlen);
}

static int load_file(hs_cli_t *cli, const char *path, bool from_env, char *err, size_t errlen)
{
    const char *via = from_env ? " (from HUBSTREAM_CONFIG)" : "";
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, rc = 0, saved = 0;
    FILE *f = fopen(path, "r");

    if (!f)
        return fail(err, errlen, HS_EINVAL, "config file %s%s: cannot open: %s", path, via,
                    strerror(errno));
    for (;;) {
        errno = 0;
        n = getline(&line, &cap, f);
        if (n < 0) {
            saved = errno;
            break;
        }
        rc = file_line(cli, path, ++lineno, line, (size_t)n, err, errlen);
        if (rc != 0)
            break;
    }
    if (rc == 0 && (ferror(f) || !feof(f))) {
        if (saved == ENOMEM)
            rc = fail(err, errlen, HS_ENOMEM, "config file %s: out of memory", path);
        else
            rc = fail(err, errlen, HS_EINVAL, "config file %s%s: read error: %s", path, via,
                      strerror(saved ? saved : EIO));
    }
    free(line);
    fclose(f);
    return rc;
}

static int load_env(hs_cli_t *cli, char *err, size_t errlen)
{
    char name[64], where[96];

    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        if (o->kind >= K_CONFIG)
            continue;
        env_name(o, name, sizeof name);
        const char *value = getenv(name);
        if (!value || *value == '\0')
            continue;
        snprintf(where, sizeof where, "environment variable %s", name);
        int rc = apply(cli, o, value, where, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/*
 * Reads the flag at argv[*i] into *o and *value (NULL for --help/--version), consuming the next
 * argument too for `--flag value`. `prev` is the previous flag if it was a bare boolean, for a
 * hint when its value was written as a separate word.
 */
static int next_flag(int argc, char **argv, int *i, const struct opt *prev, const struct opt **o,
                     const char **value, char *err, size_t errlen)
{
    const char *arg = argv[*i], *name, *eq;
    size_t len;

    *value = NULL;
    if (strcmp(arg, "-h") == 0) {
        *o = lookup("help", 4);
        return 0;
    }
    if (arg[0] != '-' || arg[1] == '\0') {
        if (prev)
            return fail(err, errlen, HS_EINVAL,
                        "unexpected argument '%.60s' (a value for --%s is written "
                        "--%s=%.60s)",
                        arg, prev->name, prev->name, arg);
        return fail(err, errlen, HS_EINVAL, "unexpected argument '%.60s' (see --help)", arg);
    }
    if (arg[1] != '-' || arg[2] == '\0')
        return fail(err, errlen, HS_EINVAL, "unknown flag '%.60s' (see --help)", arg);

    name = arg + 2;
    eq = strchr(name, '=');
    len = eq ? (size_t)(eq - name) : strlen(name);
    *o = lookup(name, len);
    if (!*o) {
        const struct opt *near = nearest(name, len, false);
        return fail(err, errlen, HS_EINVAL, "unknown flag '--%.*s'%s%s%s",
                    (int)(len > 60 ? 60 : len), name, near ? " (did you mean --" : " (see --help)",
                    near ? near->name : "", near ? "?)" : "");
    }

    switch ((*o)->kind) {
    case K_HELP:
    case K_VERSION:
        if (eq)
            return fail(err, errlen, HS_EINVAL, "--%s takes no value", (*o)->name);
        return 0;
    case K_BOOL:
        *value = eq ? eq + 1 : "true";
        break;
    default:
        if (eq)
            *value = eq + 1;
        else if (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0)
            *value = argv[++*i];
        else
            return fail(err, errlen, HS_EINVAL, "missing value for --%s", (*o)->name);
        break;
    }
    if (**value == '\0')
        return fail(err, errlen, HS_EINVAL, "missing value for --%s", (*o)->name);
    return 0;
}

/* ---- public ---------------------------------------------------------------------------- */

int hs_cli_parse(hs_cli_t *cli, int argc, char **argv, char *err, size_t errlen)
{
    const struct opt *o, *prev = NULL;
    const char *value, *config = NULL;
    bool from_env = false;
    char where[80];
    int rc;

    memset(cli, 0, sizeof *cli);
    hs_config_init(&cli->cfg);
    if (err && errlen > 0)
        err[0] = '\0';

    /* Pass 1: syntax, and the flags that decide what else to read. */
    for (int i = 1; i < argc; i++) {
        bool bare = strchr(argv[i], '=') == NULL;
        rc = next_flag(argc, argv, &i, prev, &o, &value, err, errlen);
        if (rc != 0)
            return rc;
        if (o->kind == K_HELP)
            cli->help = true;
        else if (o->kind == K_VERSION)
            cli->version = true;
        else if (o->kind == K_CONFIG)
            config = value;
        prev = o->kind == K_BOOL && bare ? o : NULL;
    }
    if (cli->help || cli->version)
        return 0;

    if (!config) {
        config = getenv("HUBSTREAM_CONFIG");
        from_env = config && *config;
        if (!from_env)
            config = NULL;
    }
    if (config) {
        rc = set_str(cli, OWN_CONFIG, &cli->config_file, config, err, errlen);
        if (rc == 0)
            rc = load_file(cli, cli->config_file, from_env, err, errlen);
        if (rc != 0)
            return rc;
    }

    rc = load_env(cli, err, errlen);
    if (rc != 0)
        return rc;

    /* Pass 2: flag values, last one wins. */
    for (int i = 1; i < argc; i++) {
        rc = next_flag(argc, argv, &i, NULL, &o, &value, err, errlen);
        if (rc != 0)
            return rc;
        if (o->kind >= K_CONFIG)
            continue;
        snprintf(where, sizeof where, "--%s", o->name);
        rc = apply(cli, o, value, where, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void hs_cli_dispose(hs_cli_t *cli)
{
    for (int i = 0; i < HS_CLI_NOWNED; i++) {
        free(cli->owned[i]);
        cli->owned[i] = NULL;
    }
    cli->config_file = NULL;
    hs_config_init(&cli->cfg);
}

/* ---- --help ---------------------------------------------------------------------------- */

/* Writes text word-wrapped to USAGE_WIDTH columns, every line indented by `indent`. */
static void wrap(FILE *out, const char *text, int indent)
{
    int col = 0;

    while (*text) {
        while (*text == ' ')
            text++;
        if (!*text)
            break;
        int w = (int)strcspn(text, " ");
        if (col > 0 && col + 1 + w > USAGE_WIDTH) {
            fputc('\n', out);
            col = 0;
        }
        if (col == 0)
            col = fprintf(out, "%*s%.*s", indent, "", w, text);
        else
            col += fprintf(out, " %.*s", w, text);
        text += w;
    }
    fputc('\n', out);
}

/* The default of option o, as --help shows it. */
static void fmt_default(const struct opt *o, const hs_config_t *def, char *buf, size_t len)
{
    const void *field = (const char *)def + o->off;

    switch (o->kind) {
    case K_STR:
    case K_LISTEN: {
        const char *v = *(const char *const *)field;
        snprintf(buf, len, "%s", v ? v : "none");
        break;
    }
    case K_BOOL:
        snprintf(buf, len, "%s", *(const bool *)field ? "true" : "false");
        break;
    case K_INT:
        snprintf(buf, len, "%d", *(const int *)field);
        break;
    case K_SIZE:
        fmt_size(*(const size_t *)field, buf, len);
        break;
    case K_LEVEL:
        snprintf(buf, len, "%s", level_names[*(const hs_log_level_t *)field]);
        break;
    case K_CONFIG:
        snprintf(buf, len, "none");
        break;
    default:
        buf[0] = '\0';
        break;
    }
}

void hs_cli_usage(FILE *out)
{
    hs_config_t def;
    char flag[48], env[64], dflt[64];

    hs_config_init(&def);
    fputs("Usage: hubstream [--config FILE] [--FLAG VALUE | --FLAG=VALUE]...\n\n", out);
    wrap(out,
         "hubstream is an event-stream server: it appends events to named streams in a database "
         "and serves them over HTTP, Server-Sent Events and SignalR.",
         0);
    fputc('\n', out);
    wrap(out,
         "Each setting comes from, in increasing precedence: its default, the config file, its "
         "environment variable, its flag.",
         0);
    fprintf(out, "\n  %-34s%-38s%s\n", "Flag", "Environment variable", "Default");
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        const char *sep = o->meta && o->meta[0] != '[' ? " " : "";

        snprintf(flag, sizeof flag, "--%s%s%s", o->name, sep, o->meta ? o->meta : "");
        if (o->kind < K_CONFIG)
            env_name(o, env, sizeof env);
        else
            snprintf(env, sizeof env, "%s", o->kind == K_CONFIG ? "HUBSTREAM_CONFIG" : "");
        fmt_default(o, &def, dflt, sizeof dflt);
        if (dflt[0])
            fprintf(out, "  %-34s%-38s%s\n", flag, env, dflt);
        else if (env[0])
            fprintf(out, "  %-34s%s\n", flag, env);
        else
            fprintf(out, "  %s\n", flag);
        wrap(out, o->help, 6);
    }
    fputc('\n', out);
    wrap(out,
         "Values: SIZE is a byte count with an optional binary suffix (k, KiB, m, MiB, g, GiB; "
         "any case), e.g. 512k or 4MiB. N and MS are whole numbers. BOOL is true/false, 1/0, "
         "yes/no or on/off. An empty environment variable counts as unset.",
         0);
    fputc('\n', out);
    wrap(out,
         "Config file: one 'key = value' per line; a key is a flag name without the dashes "
         "(max-body or max_body); a value may be quoted; '#' at the start of a line or after a "
         "blank starts a comment.",
         0);
    fputs("\nExample:\n"
          "  hubstream --listen 0.0.0.0:5000 --allow-anonymous --max-body=4MiB\n"
          "  HUBSTREAM_LOG_LEVEL=debug hubstream --config /etc/hubstream.conf\n"
          "\n"
          "  # /etc/hubstream.conf\n"
          "  listen = 127.0.0.1:5000\n"
          "  db = \"/var/lib/hubstream/events.db\"\n"
          "  max-event = 256k\n",
          out);
}
