/*
 * Embedding hubstream with your own auth: API keys in an `X-Api-Key` header instead of JWTs, and
 * an authorize hook that adds a rule of the application's on top of the keys' permissions.
 *
 *   reader-key  may read and subscribe to streams starting with "public-"
 *   writer-key  may also publish to them (except "public-frozen", refused by the authorize hook)
 *   a request with `Authorization: Bearer` goes to the built-in JWT check (which refuses every
 *   token here, as no JWT key is configured: a real server would set cfg.jwt_secret)
 *
 * Run it, then:
 *   curl -H 'X-Api-Key: writer-key' -d '{"type":"t","data":1}' \
 *        http://127.0.0.1:5056/api/streams/public-news/events
 *   curl -N -H 'X-Api-Key: reader-key' -H 'Accept: text/event-stream' \
 *        'http://127.0.0.1:5056/api/streams/public-news/events?from=0'
 *
 * Usage: hubstream_apikey_example [--self-check] [LISTEN [DB]] (default 127.0.0.1:5056,
 * apikey.db). With --self-check it makes the requests above (and the refusals) itself and exits
 * 0, or 1 naming the first check that failed (tests/install runs it against the installed
 * library). Keys in source code are for the example only: keep real ones out of it.
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

static const struct {
    const char *key, *user;
    bool publish;
} keys[] = {
    {"reader-key", "reader", false},
    {"writer-key", "writer", true},
};

/* Who is asking: the key's principal, a JWT's, or 401. Runs on the server's IO threads. */
static int auth(void *ctx, const hs_auth_request_t *req, hs_principal_t **out, char *reason,
                size_t len)
{
    (void)ctx;
    char key[128];
    if (hs_auth_request_header(req, "x-api-key", key, sizeof(key)) < 0) {
        if (hs_auth_request_token(req))
            return hs_server_auth_jwt(srv, req, out, reason, len);
        snprintf(reason, len, "send an X-Api-Key header");
        return HS_EUNAUTHORIZED;
    }
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strcmp(key, keys[i].key))
            continue;
        hs_principal_t *p = hs_principal_new(keys[i].user);
        if (!p || hs_principal_allow(p, HS_ACTION_SUBSCRIBE, "public-*") ||
            (keys[i].publish && hs_principal_allow(p, HS_ACTION_PUBLISH, "public-*"))) {
            hs_principal_free(p);
            return HS_ENOMEM;
        }
        *out = p;
        return 0;
    }
    snprintf(reason, len, "unknown API key");
    return HS_EUNAUTHORIZED;
}

/* The application's own rule: nobody publishes to public-frozen, whatever their key says. */
static bool authorize(void *ctx, const hs_principal_t *p, hs_action_t action, const char *stream,
                      bool allowed)
{
    (void)ctx;
    (void)p;
    if (action == HS_ACTION_PUBLISH && stream && !strcmp(stream, "public-frozen"))
        return false;
    return allowed;
}

/* --self-check: one HTTP request to 127.0.0.1:port; returns the status, or -1 */
static int http(int port, const char *method, const char *path, const char *key, const char *body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char req[1024], resp[512] = "";
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%s"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, key ? "X-Api-Key: " : "", key ? key : "", key ? "\r\n" : "",
                     body ? strlen(body) : 0, body ? body : "");
    size_t got = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && write(fd, req, (size_t)n) == n) {
        ssize_t r;
        while (got < sizeof(resp) - 1 && (r = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
            got += (size_t)r;
    }
    close(fd);
    int status = -1;
    if (sscanf(resp, "HTTP/1.1 %d", &status) != 1)
        return -1;
    return status;
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
    cfg.listen = argc > 1 ? argv[1] : "127.0.0.1:5056";
    cfg.db = argc > 2 ? argv[2] : "apikey.db";
    char err[256];
    srv = hs_server_create(&cfg, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    hs_server_set_auth_hook(srv, auth, NULL);
    hs_server_set_authorize_hook(srv, authorize, NULL);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (hs_server_start(srv)) {
        hs_server_destroy(srv);
        return 1;
    }
    if (self_check) {
        int failed = 0, port = hs_server_port(srv), s;
        const char *ev = "{\"type\":\"t\",\"data\":1}";
        const char *news = "/api/streams/public-news/events";
        s = http(port, "GET", "/healthz", NULL, NULL);
        CHECK(s == 200, "GET /healthz without a key: %d, not 200", s);
        s = http(port, "GET", "/api/streams", NULL, NULL);
        CHECK(s == 401, "GET /api/streams without a key: %d, not 401", s);
        s = http(port, "GET", "/api/streams", "stolen-key", NULL);
        CHECK(s == 401, "an unknown key: %d, not 401", s);
        s = http(port, "POST", news, "reader-key", ev);
        CHECK(s == 403, "a publish with the reader's key: %d, not 403", s);
        s = http(port, "POST", news, "writer-key", ev);
        CHECK(s == 201, "a publish with the writer's key: %d, not 201", s);
        s = http(port, "POST", "/api/streams/private-x/events", "writer-key", ev);
        CHECK(s == 403, "a publish outside public-*: %d, not 403", s);
        s = http(port, "POST", "/api/streams/public-frozen/events", "writer-key", ev);
        CHECK(s == 403, "a publish the authorize hook refuses: %d, not 403", s);
        s = http(port, "GET", news, "reader-key", NULL);
        CHECK(s == 200, "a read with the reader's key: %d, not 200", s);
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
