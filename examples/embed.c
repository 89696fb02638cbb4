/*
 * Embedding hubstream: a server with an event-validation hook and a log hook, and a publish from
 * inside the process. Run it, then: curl -N -H 'Accept: text/event-stream'
 *   'http://127.0.0.1:5055/api/streams/ticks/events?from=0'
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
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

int main(int argc, char **argv)
{
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
    if (hs_server_start(srv))
        return 1;
    hs_event_t ev = {.type = "tick.started", .data = "{\"pid\":1}"};
    hs_publish_result_t res;
    int rc = hs_server_publish(srv, "ticks", &ev, 1, HS_ANY_VERSION, &res);
    printf("published: %s, version %lld, position %lld\n", hs_strerror(rc),
           (long long)res.last_version, (long long)res.last_position);
    fflush(stdout);
    hs_server_wait(srv);
    hs_server_destroy(srv);
    return 0;
}
