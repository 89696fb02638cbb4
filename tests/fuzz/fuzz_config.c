/*
 * libFuzzer target: configuration (daemon/config.h).
 *
 * config.c reads a config file only through fopen(path), so the input is written once per run
 * of this function to a private file (a memfd reached as /proc/self/fd/N, or a file in a
 * private mkdtemp directory where that is missing), and then:
 *  1. the input split on NUL bytes is the command line (argv[0] = "hubstream", at most 64
 *     arguments); the value of any --config flag in it is replaced by the private file's path,
 *     so hs_cli_parse reads the input as the config file whenever the input asks for one;
 *  2. `hubstream --config <file>`: the input is the config file;
 *  3. the input up to its first NUL is a listen address for hs_listen_parse and a host for
 *     hs_listen_is_loopback, and an ODBC connection string for hs_redact_conn.
 * HUBSTREAM_* environment variables are removed once at start (LLVMFuzzerInitialize), and fopen
 * is wrapped (-Wl,--wrap=fopen): while hs_cli_parse runs, reading anything but the private file
 * fails and then aborts, so no input can make the harness read the machine's files.
 *
 * Checked (abort on failure): hs_cli_parse returns 0, HS_EINVAL or HS_ENOMEM; on failure it
 * wrote a message; on success every value is within its documented range, the listen address
 * parses, the retention rules parse, and the config file read (if any) is the private one;
 * hs_cli_dispose is idempotent and gives the defaults back. hs_listen_parse leaves host and
 * port untouched on failure, NUL-terminates host within hostlen and agrees between a large
 * and a small host buffer; hs_redact_conn NUL-terminates within cap.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/addr.h"
#include "hubstream/hubstream.h"
#include "daemon/config.h"
#include "util/log.h"
#include "storage/retention.h"
#include "tests/fuzz/fuzz_common.h"

#define MAX_ARGS 64

extern char **environ;

static int cfg_fd = -1;
static char cfg_path[4096];
static char cfg_dir[4096]; /* the mkdtemp fallback's directory, removed at exit */
static bool in_parse;      /* hs_cli_parse is running: reading is restricted to cfg_path */
static bool foreign_open;  /* it tried to read another file */

/* ---- fopen guard ---- */

FILE *__real_fopen(const char *path, const char *mode);

/* While hs_cli_parse runs, opening any other file for reading fails (EACCES) and is recorded;
 * parse() then aborts. Writing is left alone: that is libFuzzer saving a crashing input from
 * its crash handler, which may run inside hs_cli_parse. */
FILE *__wrap_fopen(const char *path, const char *mode)
{
    if (in_parse && mode[0] == 'r' && strcmp(path, cfg_path) != 0) {
        fprintf(stderr,
                "fuzz_config: hs_cli_parse tried to open '%s', not the private config "
                "file (a harness bug: the --config rewrite missed a spelling)\n",
                path);
        foreign_open = true;
        errno = EACCES;
        return NULL;
    }
    return __real_fopen(path, mode);
}

/* ---- setup ---- */

static void cleanup(void)
{
    if (cfg_dir[0]) {
        unlink(cfg_path);
        rmdir(cfg_dir);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* drop HUBSTREAM_*: unsetenv changes environ, so restart the scan after each removal */
    for (bool again = true; again;) {
        again = false;
        for (char **e = environ; e && *e; e++) {
            if (strncmp(*e, "HUBSTREAM_", 10) != 0)
                continue;
            const char *eq = strchr(*e, '=');
            size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
            char name[256];
            CHECK(n < sizeof name);
            memcpy(name, *e, n);
            name[n] = '\0';
            CHECK(unsetenv(name) == 0);
            again = true;
            break;
        }
    }
    cfg_fd = memfd_create("hubstream-fuzz-config", MFD_CLOEXEC);
    if (cfg_fd >= 0) {
        snprintf(cfg_path, sizeof cfg_path, "/proc/self/fd/%d", cfg_fd);
        FILE *f = __real_fopen(cfg_path, "r");
        if (f) {
            fclose(f);
            return 0;
        }
        close(cfg_fd);
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(cfg_dir, sizeof cfg_dir, "%s/hubstream-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(cfg_dir) != NULL);
    snprintf(cfg_path, sizeof cfg_path, "%s/config", cfg_dir);
    cfg_fd = open(cfg_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(cfg_fd >= 0);
    atexit(cleanup);
    return 0;
}

static void write_config(const uint8_t *data, size_t size)
{
    CHECK(ftruncate(cfg_fd, 0) == 0);
    size_t off = 0;
    while (off < size) {
        ssize_t w = pwrite(cfg_fd, data + off, size - off, (off_t)off);
        CHECK(w > 0);
        off += (size_t)w;
    }
}

/* ---- hs_cli_parse ---- */

/* Whether arg is a `--config` flag as config.c spells flags: case-insensitive, `_` for `-`
 * (no `-` in "config"), optionally followed by `=value`. */
static bool is_config_flag(const char *arg)
{
    if (strncmp(arg, "--", 2) != 0)
        return false;
    const char *name = arg + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    if (len != 6)
        return false;
    for (size_t i = 0; i < 6; i++)
        if (tolower((unsigned char)name[i]) != "config"[i])
            return false;
    return true;
}

static void check_parsed(const hs_cli_t *cli)
{
    const hs_config_t *c = &cli->cfg;
    if (cli->help || cli->version)
        CHECK(cli->config_file == NULL);
    CHECK(cli->config_file == NULL || strcmp(cli->config_file, cfg_path) == 0);
    char host[256];
    int port = -1;
    CHECK(c->listen && hs_listen_parse(c->listen, host, sizeof host, &port) == 0);
    CHECK(port >= 0 && port <= 65535);
    CHECK(c->db && c->db[0] != '\0');
    CHECK(c->io_threads >= 0 && c->io_threads <= 1024);
    CHECK(c->fanout_workers >= 0 && c->fanout_workers <= 1024);
    CHECK(c->reader_threads >= 1 && c->reader_threads <= 1024);
    CHECK(c->max_connections >= 1 && c->max_connections <= 10000000);
    const size_t gib = (size_t)1 << 30;
    CHECK(c->max_body >= 1 && c->max_body <= gib);
    CHECK(c->max_event >= 1 && c->max_event <= gib);
    CHECK(c->max_message >= 1 && c->max_message <= gib);
    CHECK(c->outbox_bytes >= 1 && c->outbox_bytes <= gib);
    CHECK(c->hub_stateful_buffer >= 1 && c->hub_stateful_buffer <= gib);
    CHECK(c->max_subscriptions >= 1 && c->max_subscriptions <= 1000000);
    CHECK(c->writer_batch >= 1 && c->writer_batch <= 1000000);
    const int ms[] = {c->sse_ping_ms,
                      c->sse_retry_ms,
                      c->stall_timeout_ms,
                      c->hub_keepalive_ms,
                      c->hub_client_timeout_ms,
                      c->hub_handshake_timeout_ms,
                      c->hub_disconnect_timeout_ms,
                      c->hub_longpoll_ms};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        CHECK(ms[i] >= 1 && ms[i] <= 86400000);
    CHECK(c->log_level >= HS_LOG_DEBUG && c->log_level <= HS_LOG_ERROR);
    if (c->retention) {
        hs_retention_t *r = NULL;
        char why[300];
        CHECK(hs_retention_parse(c->retention, &r, why, sizeof why) == 0);
        hs_retention_free(r);
    }
}

static void check_defaults(const hs_cli_t *cli)
{
    hs_config_t d;
    hs_config_init(&d);
    const hs_config_t *c = &cli->cfg;
    CHECK(cli->config_file == NULL);
    for (int i = 0; i < HS_CLI_NOWNED; i++)
        CHECK(cli->owned[i] == NULL);
    CHECK(strcmp(c->listen, d.listen) == 0 && strcmp(c->db, d.db) == 0);
    CHECK(c->retention == NULL && d.retention == NULL);
    CHECK(c->max_body == d.max_body && c->io_threads == d.io_threads &&
          c->log_level == d.log_level && c->allow_anonymous == d.allow_anonymous);
}

static void parse(int argc, char **argv)
{
    hs_cli_t cli;
    char *err = fz_alloc(256);
    memset(err, 'x', 256);
    in_parse = true;
    int rc = hs_cli_parse(&cli, argc, argv, err, 256);
    in_parse = false;
    CHECK(!foreign_open);
    CHECK(rc == 0 || rc == HS_EINVAL || rc == HS_ENOMEM);
    CHECK(memchr(err, '\0', 256) != NULL);
    if (rc == 0)
        check_parsed(&cli);
    else
        CHECK(err[0] != '\0');
    hs_cli_dispose(&cli);
    check_defaults(&cli);
    hs_cli_dispose(&cli); /* idempotent */
    check_defaults(&cli);
    free(err);
}

static void parse_argv(const uint8_t *data, size_t size)
{
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    argv[argc++] = strdup("hubstream");
    /* each argument in a heap block of its own size, so ASan sees a read past its NUL */
    size_t start = 0;
    for (size_t i = 0; size && i <= size && argc < MAX_ARGS; i++) {
        if (i == size || data[i] == '\0') {
            argv[argc++] = fz_strndup(data + start, i - start);
            start = i + 1;
        }
    }
    argv[argc] = NULL;
    /* a --config value names the private file */
    for (int i = 1; i < argc; i++) {
        if (!is_config_flag(argv[i]))
            continue;
        char *eq = strchr(argv[i], '=');
        if (eq && eq[1]) {
            char *a = fz_alloc(strlen("--config=") + strlen(cfg_path) + 1);
            sprintf(a, "--config=%s", cfg_path);
            free(argv[i]);
            argv[i] = a;
        } else if (!eq && i + 1 < argc && argv[i + 1][0] && strncmp(argv[i + 1], "--", 2)) {
            free(argv[i + 1]);
            argv[i + 1] = strdup(cfg_path);
            i++;
        }
    }
    parse(argc, argv);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
}

/* ---- listen addresses and connection strings ---- */

static void listen_and_redact(const uint8_t *data, size_t size)
{
    char *s = fz_strndup(data, size); /* up to the first NUL */
    size_t len = strlen(s);

    char *big = fz_alloc(256), *small = fz_alloc(8);
    memset(big, 'q', 256);
    memset(small, 'q', 8);
    int pb = -7, ps = -7;
    int rb = hs_listen_parse(s, big, 256, &pb);
    int rs = hs_listen_parse(s, small, 8, &ps);
    CHECK(rb == 0 || rb == HS_EINVAL);
    CHECK(rs == 0 || rs == HS_EINVAL);
    if (rb == 0) {
        CHECK(memchr(big, '\0', 256) != NULL && pb >= 0 && pb <= 65535);
        (void)hs_listen_is_loopback(big);
    } else {
        CHECK(pb == -7 && big[0] == 'q' && big[255] == 'q');
    }
    if (rs == 0) {
        CHECK(rb == 0 && memchr(small, '\0', 8) != NULL && ps == pb && !strcmp(small, big));
    } else {
        CHECK(ps == -7 && small[0] == 'q' && small[7] == 'q');
    }
    free(big);
    free(small);
    (void)hs_listen_is_loopback(s);

    size_t caps[] = {1, 8, len + 1, 2 * len + 16};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        char *out = fz_alloc(caps[i]);
        hs_redact_conn(s, out, caps[i]);
        CHECK(memchr(out, '\0', caps[i]) != NULL);
        free(out);
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    write_config(data, size);
    parse_argv(data, size);
    char *argv[] = {"hubstream", "--config", cfg_path, NULL};
    parse(3, argv);
    listen_and_redact(data, size);
    return 0;
}
