/*
 * Embedding hubstream: a server with an event-validation hook and a log hook, and a publish from
 * inside the process. Run it, then: curl -N -H 'Accept: text/event-stream'
 *   'http://127.0.0.1:5055/api/streams/ticks/events?from=0'
 *
 * Usage: hubstream_embed_example [--self-check] [LISTEN [DB]]
 *   LISTEN  host:port to serve on (default 127.0.0.1:5055; port 0 picks a free one)
 *   DB      SQLite file or ODBC connection string (default embed.db)
 * Without --self-check it serves until SIGINT or SIGTERM. With --self-check it checks the
 * library end to end instead and exits by itself: the publish is committed, the event hook
 * rejects a badly named event (HS_EREJECTED), GET /healthz on the bound port answers 200; then it
 * stops the server and exits 0, or 1 naming the first check that failed (tests/install runs it
 * against the installed library).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "hubstream/hubstream.h"

static hs_server_t *srv;

static void on_signal(int sig)
{
    (void)sig;
    hs_server_stop(srv);
}

/* Refuse events whose type does not look like "noun.verb". */
static int validate(void *ctx, const char *stream, const hs_event_t *ev, char *reason, size_t n)
{
    if (!strchr(ev->type, '.')) {
        snprintf(reason, n, "type '%s' must look like noun.verb", ev->type);
        return 1;
    }
    return 0;
}

static void log_line(void *ctx, hs_log_level_t level, const char *msg, const char *fields)
{
    fprintf(stderr, "[embed] %s %s\n", msg, fields);
}

/* --self-check: GET /healthz from 127.0.0.1:port; true if the answer's status is 200 */
static int healthz_ok(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    char resp[256] = "";
    size_t got = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1)) {
        ssize_t r;
        while (got < sizeof(resp) - 1 && (r = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
            got += (size_t)r;
    }
    close(fd);
    return strncmp(resp, "HTTP/1.1 200", 12) == 0;
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "self-check failed: " __VA_ARGS__);                                    \
            fputc('\n', stderr);                                                                   \
            failed = 1;                                                                            \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    int self_check = 0;
    if (argc > 1 && strcmp(argv[1], "--self-check") == 0) {
        self_check = 1;
        argv++;
        argc--;
    }
    hs_config_t cfg;
    hs_config_init(&cfg);
    cfg.listen = argc > 1 ? argv[1] : "127.0.0.1:5055";
    cfg.db = argc > 2 ? argv[2] : "embed.db";
    char err[256];
    srv = hs_server_create(&cfg, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    hs_server_set_event_hook(srv, validate, NULL);
    hs_server_set_log_hook(srv, log_line, NULL);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (hs_server_start(srv)) {
        hs_server_destroy(srv);
        return 1;
    }
    hs_event_t ev = {.type = "tick.started", .data = "{\"pid\":1}"};
    hs_publish_result_t res = {0};
    int rc = hs_server_publish(srv, "ticks", &ev, 1, HS_ANY_VERSION, &res);
    printf("published: %s, version %lld, position %lld\n", hs_strerror(rc),
           (long long)res.last_version, (long long)res.last_position);
    fflush(stdout);
    if (self_check) {
        int failed = 0;
        CHECK(rc == HS_OK && res.last_version >= 1 && res.last_position >= 1,
              "publish: %s, version %lld", hs_strerror(rc), (long long)res.last_version);
        hs_event_t bad = {.type = "tick", .data = "{}"};
        rc = hs_server_publish(srv, "ticks", &bad, 1, HS_ANY_VERSION, NULL);
        CHECK(rc == HS_EREJECTED, "the event hook let a bad type through: %s", hs_strerror(rc));
        int port = hs_server_port(srv);
        CHECK(port > 0, "hs_server_port: %d", port);
        CHECK(port > 0 && healthz_ok(port), "GET /healthz on port %d did not answer 200", port);
        hs_server_stop(srv);
        hs_server_wait(srv);
        hs_server_destroy(srv);
        printf("self-check: %s\n", failed ? "FAILED" : "ok");
        return failed;
    }
    hs_server_wait(srv);
    hs_server_destroy(srv);
    return 0;
}
