/*
 * The hubstream daemon: parse the configuration, run a server until SIGINT/SIGTERM.
 * Uses only the public API (hubstream.h) plus the flag parser.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "hubstream/hubstream.h"
#include "daemon/config.h"
#include "hs_commit.h" /* HS_BUILD_COMMIT, generated at build time (cmake/hs_commit.cmake) */

static hs_server_t *g_srv;

static void on_hup(int sig)
{
    (void)sig;
    if (g_srv)
        hs_server_request_reload(g_srv);
}

static void on_signal(int sig)
{
    (void)sig;
    if (g_srv)
        hs_server_stop(g_srv); /* async-signal-safe */
}

int main(int argc, char **argv)
{
    hs_cli_t cli;
    char err[512];
    if (hs_cli_parse(&cli, argc, argv, err, sizeof(err))) {
        fprintf(stderr, "hubstream: %s\nTry 'hubstream --help'.\n", err);
        hs_cli_dispose(&cli);
        return 2;
    }
    if (cli.help) {
        hs_cli_usage(stdout);
        hs_cli_dispose(&cli);
        return 0;
    }
    if (cli.version) {
        printf("hubstream %s (commit %s)\n", HS_VERSION_STRING, HS_BUILD_COMMIT);
        hs_cli_dispose(&cli);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    /* every client connection is a descriptor: take what the hard limit allows (the server
     * lowers --max-connections to fit what it gets, and says so) */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    hs_server_t *srv = hs_server_create(&cli.cfg, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "hubstream: %s\n", err);
        hs_cli_dispose(&cli);
        return 1;
    }
    g_srv = srv;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* SIGHUP: load the TLS certificate again (a renewal), without dropping connections */
    struct sigaction hup;
    memset(&hup, 0, sizeof(hup));
    hup.sa_handler = on_hup;
    hup.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &hup, NULL);
    int rc = hs_server_start(srv);
    if (rc) {
        fprintf(stderr, "hubstream: start failed: %s\n", hs_strerror(rc));
        hs_server_destroy(srv);
        hs_cli_dispose(&cli);
        return 1;
    }
    hs_server_wait(srv);
    g_srv = NULL;
    hs_server_destroy(srv);
    hs_cli_dispose(&cli);
    return 0;
}
