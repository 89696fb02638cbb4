/*
 * Tests of daemon/config.c: defaults, the three sources and their precedence, value syntax, every
 * error path and its message, listen address parsing and loopback detection, --help layout.
 *
 * Each test starts with no HUBSTREAM_* variable set (the fixture saves and restores the caller's)
 * and removes the temporary config files it wrote.
 */
#define _GNU_SOURCE /* asprintf, open_memstream */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/addr.h"
#include "daemon/config.h"
#include "util/log.h"

extern char **environ;

#define MAX_SAVED 64
#define MAX_TMP   32

static char *saved_env[MAX_SAVED]; /* "NAME=VALUE" of the caller's HUBSTREAM_* variables */
static int nsaved;
static char tmp_paths[MAX_TMP][64];
static int ntmp;

/* Names of the HUBSTREAM_* variables now set, strdup'ed into names[]. */
static int hubstream_vars(char **names, int max)
{
    int n = 0;
    for (char **e = environ; *e && n < max; e++) {
        if (strncmp(*e, "HUBSTREAM_", 10) == 0)
            names[n++] = strndup(*e, strcspn(*e, "="));
    }
    return n;
}

static void clear_hubstream_vars(void)
{
    char *names[MAX_SAVED];
    int n = hubstream_vars(names, MAX_SAVED);
    for (int i = 0; i < n; i++) {
        unsetenv(names[i]);
        free(names[i]);
    }
}

static void setup(void)
{
    nsaved = 0;
    ntmp = 0;
    for (char **e = environ; *e && nsaved < MAX_SAVED; e++) {
        if (strncmp(*e, "HUBSTREAM_", 10) == 0)
            saved_env[nsaved++] = strdup(*e);
    }
    clear_hubstream_vars();
}

static void teardown(void)
{
    clear_hubstream_vars();
    for (int i = 0; i < nsaved; i++) {
        char *eq = strchr(saved_env[i], '=');
        *eq = '\0';
        setenv(saved_env[i], eq + 1, 1);
        free(saved_env[i]);
    }
    nsaved = 0;
    for (int i = 0; i < ntmp; i++)
        unlink(tmp_paths[i]);
    ntmp = 0;
}

TestSuite(config, .init = setup, .fini = teardown);

/* Writes text to a new temporary file, removed by teardown(); returns its path. */
static const char *write_conf(const char *text)
{
    cr_assert_lt(ntmp, MAX_TMP);
    char *path = tmp_paths[ntmp];
    snprintf(path, sizeof tmp_paths[0], "/tmp/hs_test_config_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    ntmp++;
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static int argv_len(char **argv)
{
    int n = 0;
    while (argv[n])
        n++;
    return n;
}

/* PARSE(cli, err, "--flag", "value", ...): hs_cli_parse() over {"hubstream", ..., NULL}. */
#define PARSE(cli, err, ...)                                                                       \
    hs_cli_parse((cli), argv_len((char *[]){"hubstream", __VA_ARGS__, NULL}),                      \
                 (char *[]){"hubstream", __VA_ARGS__, NULL}, (err), sizeof(err))

/* Parses the arguments, expects HS_EINVAL and an error containing every given substring. */
static void expect_fail(char **argv, const char *const *needles)
{
    hs_cli_t cli;
    char err[512];
    int rc = hs_cli_parse(&cli, argv_len(argv), argv, err, sizeof err);
    cr_expect_eq(rc, HS_EINVAL, "%s %s: rc %d", argv[1], argv[2] ? argv[2] : "", rc);
    cr_expect_neq(err[0], '\0', "no message for %s", argv[1]);
    for (const char *const *n = needles; *n; n++)
        cr_expect(strstr(err, *n) != NULL, "message '%s' lacks '%s'", err, *n);
    hs_cli_dispose(&cli);
}

#define ARGS(...)    ((char *[]){"hubstream", __VA_ARGS__, NULL})
#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect_defaults(const hs_config_t *c)
{
    cr_expect_str_eq(c->listen, "127.0.0.1:5000");
    cr_expect_str_eq(c->db, "hubstream.db");
    cr_expect_eq(c->allow_anonymous, false);
    cr_expect_eq(c->io_threads, 0);
    cr_expect_eq(c->fanout_workers, 0);
    cr_expect_eq(c->reader_threads, 2);
    cr_expect_eq(c->max_connections, 100000);
    cr_expect_eq(c->max_body, 1048576);
    cr_expect_eq(c->max_event, 1048576);
    cr_expect_eq(c->max_message, 1048576);
    cr_expect_eq(c->max_subscriptions, 1000);
    cr_expect_eq(c->outbox_bytes, 4194304);
    cr_expect_eq(c->sse_ping_ms, 15000);
    cr_expect_eq(c->sse_retry_ms, 3000);
    cr_expect_eq(c->stall_timeout_ms, 30000);
    cr_expect_eq(c->writer_batch, 4096);
    cr_expect_eq(c->log_level, HS_LOG_INFO);
}

/* ---- defaults -------------------------------------------------------------------------- */

Test(config, init_defaults)
{
    hs_config_t c;
    memset(&c, 0xab, sizeof c);
    hs_config_init(&c);
    expect_defaults(&c);
}

Test(config, no_arguments_give_defaults)
{
    hs_cli_t cli;
    char err[256];
    char *argv[] = {"hubstream", NULL};
    cr_assert_eq(hs_cli_parse(&cli, 1, argv, err, sizeof err), 0, "%s", err);
    expect_defaults(&cli.cfg);
    cr_expect_not(cli.help);
    cr_expect_not(cli.version);
    cr_expect_null(cli.config_file);
    cr_expect_str_eq(err, "");
    hs_cli_dispose(&cli);
}

Test(config, argc_zero)
{
    hs_cli_t cli;
    char err[64];
    char *argv[] = {NULL};
    cr_assert_eq(hs_cli_parse(&cli, 0, argv, err, sizeof err), 0);
    expect_defaults(&cli.cfg);
    hs_cli_dispose(&cli);
}

/* ---- flags ----------------------------------------------------------------------------- */

static void expect_all_set(const hs_config_t *c)
{
    cr_expect_str_eq(c->listen, "0.0.0.0:6000");
    cr_expect_str_eq(c->db, "DSN=events");
    cr_expect_eq(c->allow_anonymous, true);
    cr_expect_eq(c->io_threads, 3);
    cr_expect_eq(c->fanout_workers, 5);
    cr_expect_eq(c->reader_threads, 7);
    cr_expect_eq(c->max_connections, 500);
    cr_expect_eq(c->max_body, 2 * 1048576);
    cr_expect_eq(c->max_event, 512 * 1024);
    cr_expect_eq(c->max_message, 1000);
    cr_expect_eq(c->max_subscriptions, 10);
    cr_expect_eq(c->outbox_bytes, 8 * 1048576);
    cr_expect_eq(c->sse_ping_ms, 100);
    cr_expect_eq(c->sse_retry_ms, 200);
    cr_expect_eq(c->stall_timeout_ms, 300);
    cr_expect_eq(c->writer_batch, 64);
    cr_expect_eq(c->log_level, HS_LOG_DEBUG);
}

Test(config, flags_with_separate_values)
{
    hs_cli_t cli;
    char err[256];
    int rc = PARSE(&cli, err, "--listen", "0.0.0.0:6000", "--db", "DSN=events", "--allow-anonymous",
                   "--io-threads", "3", "--fanout-workers", "5", "--reader-threads", "7",
                   "--max-connections", "500", "--max-body", "2MiB", "--max-event", "512k",
                   "--max-message", "1000", "--max-subscriptions", "10", "--outbox-bytes", "8m",
                   "--sse-ping-ms", "100", "--sse-retry-ms", "200", "--stall-timeout-ms", "300",
                   "--writer-batch", "64", "--log-level", "debug");
    cr_assert_eq(rc, 0, "%s", err);
    expect_all_set(&cli.cfg);
    hs_cli_dispose(&cli);
}

Test(config, flags_with_equals)
{
    hs_cli_t cli;
    char err[256];
    int rc =
        PARSE(&cli, err, "--listen=0.0.0.0:6000", "--db=DSN=events", "--allow-anonymous=true",
              "--io-threads=3", "--fanout-workers=5", "--reader-threads=7", "--max-connections=500",
              "--max-body=2MiB", "--max-event=512k", "--max-message=1000", "--max-subscriptions=10",
              "--outbox-bytes=8m", "--sse-ping-ms=100", "--sse-retry-ms=200",
              "--stall-timeout-ms=300", "--writer-batch=64", "--log-level=debug");
    cr_assert_eq(rc, 0, "%s", err);
    expect_all_set(&cli.cfg);
    hs_cli_dispose(&cli);
}

Test(config, last_flag_wins)
{
    hs_cli_t cli;
    char err[256];
    int rc = PARSE(&cli, err, "--listen", ":1", "--listen=:2", "--db", "a", "--db", "b",
                   "--allow-anonymous", "--allow-anonymous=false");
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_str_eq(cli.cfg.listen, ":2");
    cr_expect_str_eq(cli.cfg.db, "b");
    cr_expect_eq(cli.cfg.allow_anonymous, false);
    hs_cli_dispose(&cli);
}

Test(config, booleans)
{
    static const struct {
        const char *arg;
        bool want;
    } cases[] = {
        {"--allow-anonymous", true},      {"--allow-anonymous=true", true},
        {"--allow-anonymous=1", true},    {"--allow-anonymous=YES", true},
        {"--allow-anonymous=on", true},   {"--allow-anonymous=false", false},
        {"--allow-anonymous=0", false},   {"--allow-anonymous=no", false},
        {"--allow-anonymous=Off", false}, {"--allow_anonymous", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hs_cli_t cli;
        char err[256];
        char *argv[] = {"hubstream", (char *)cases[i].arg, NULL};
        cr_expect_eq(hs_cli_parse(&cli, 2, argv, err, sizeof err), 0, "%s: %s", cases[i].arg, err);
        cr_expect_eq(cli.cfg.allow_anonymous, cases[i].want, "%s", cases[i].arg);
        hs_cli_dispose(&cli);
    }
}

Test(config, log_levels)
{
    static const struct {
        const char *name;
        hs_log_level_t want;
    } cases[] = {{"debug", HS_LOG_DEBUG},  {"info", HS_LOG_INFO},   {"warn", HS_LOG_WARN},
                 {"warning", HS_LOG_WARN}, {"error", HS_LOG_ERROR}, {"ERROR", HS_LOG_ERROR}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hs_cli_t cli;
        char err[256];
        char *argv[] = {"hubstream", "--log-level", (char *)cases[i].name, NULL};
        cr_expect_eq(hs_cli_parse(&cli, 3, argv, err, sizeof err), 0, "%s", err);
        cr_expect_eq(cli.cfg.log_level, cases[i].want, "%s", cases[i].name);
        hs_cli_dispose(&cli);
    }
}

Test(config, size_suffixes)
{
    static const struct {
        const char *text;
        size_t want;
    } cases[] = {
        {"1", 1},
        {"65536", 65536},
        {"512k", 512 * 1024},
        {"512K", 512 * 1024},
        {"512KiB", 512 * 1024},
        {"512kb", 512 * 1024},
        {"4MiB", 4 * 1048576},
        {"4m", 4 * 1048576},
        {"4M", 4 * 1048576},
        {"4MB", 4 * 1048576},
        {"4 MiB", 4 * 1048576},
        {"100b", 100},
        {"1g", 1073741824},
        {"1GiB", 1073741824},
        {"1024MiB", 1073741824},
        {"007k", 7 * 1024},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hs_cli_t cli;
        char err[256];
        char *argv[] = {"hubstream", "--max-body", (char *)cases[i].text, NULL};
        cr_expect_eq(hs_cli_parse(&cli, 3, argv, err, sizeof err), 0, "%s: %s", cases[i].text, err);
        cr_expect_eq(cli.cfg.max_body, cases[i].want, "%s -> %zu", cases[i].text, cli.cfg.max_body);
        hs_cli_dispose(&cli);
    }
}

Test(config, thread_counts_accept_zero)
{
    hs_cli_t cli;
    char err[256];
    int rc = PARSE(&cli, err, "--io-threads", "0", "--fanout-workers", "0", "--io-threads", "1024");
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_eq(cli.cfg.io_threads, 1024);
    cr_expect_eq(cli.cfg.fanout_workers, 0);
    hs_cli_dispose(&cli);
}

Test(config, strings_are_copies)
{
    hs_cli_t cli;
    char err[256];
    char listen[] = "--listen=10.0.0.1:7000";
    char db[] = "file.db";
    char *argv[] = {"hubstream", listen, "--db", db, NULL};
    cr_assert_eq(hs_cli_parse(&cli, 4, argv, err, sizeof err), 0, "%s", err);
    memset(listen, 'x', sizeof listen - 1);
    memset(db, 'x', sizeof db - 1);
    cr_expect_str_eq(cli.cfg.listen, "10.0.0.1:7000");
    cr_expect_str_eq(cli.cfg.db, "file.db");
    hs_cli_dispose(&cli);
    expect_defaults(&cli.cfg);
    hs_cli_dispose(&cli); /* idempotent */
}

/* ---- help and version ------------------------------------------------------------------ */

Test(config, help_and_version)
{
    hs_cli_t cli;
    char err[256];

    cr_assert_eq(PARSE(&cli, err, "--help"), 0, "%s", err);
    cr_expect(cli.help);
    cr_expect_not(cli.version);
    hs_cli_dispose(&cli);

    cr_assert_eq(PARSE(&cli, err, "-h"), 0, "%s", err);
    cr_expect(cli.help);
    hs_cli_dispose(&cli);

    cr_assert_eq(PARSE(&cli, err, "--version"), 0, "%s", err);
    cr_expect(cli.version);
    cr_expect_not(cli.help);
    hs_cli_dispose(&cli);
}

Test(config, help_skips_values_file_and_environment)
{
    hs_cli_t cli;
    char err[256];
    setenv("HUBSTREAM_MAX_BODY", "garbage", 1);
    int rc =
        PARSE(&cli, err, "--max-body", "nonsense", "--config", "/nonexistent/hs.conf", "--help");
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect(cli.help);
    expect_defaults(&cli.cfg);
    hs_cli_dispose(&cli);
}

/* ---- flag errors ----------------------------------------------------------------------- */

Test(config, unknown_flag)
{
    expect_fail(ARGS("--lisen", "x:1"), NEEDLES("unknown flag '--lisen'", "did you mean --listen"));
    expect_fail(ARGS("--frobnicate"), NEEDLES("unknown flag '--frobnicate'", "--help"));
    expect_fail(ARGS("--frobnicate=3"), NEEDLES("unknown flag '--frobnicate'"));
    expect_fail(ARGS("-x"), NEEDLES("unknown flag '-x'"));
    expect_fail(ARGS("-listen"), NEEDLES("unknown flag '-listen'"));
    expect_fail(ARGS("--"), NEEDLES("'--'"));
}

Test(config, unexpected_argument)
{
    expect_fail(ARGS("serve"), NEEDLES("unexpected argument 'serve'"));
    expect_fail(ARGS("-"), NEEDLES("unexpected argument '-'"));
    expect_fail(ARGS("--allow-anonymous", "false"),
                NEEDLES("unexpected argument 'false'", "--allow-anonymous=false"));
}

Test(config, missing_values)
{
    expect_fail(ARGS("--listen"), NEEDLES("missing value for --listen"));
    expect_fail(ARGS("--listen", "--db", "x"), NEEDLES("missing value for --listen"));
    expect_fail(ARGS("--listen="), NEEDLES("missing value for --listen"));
    expect_fail(ARGS("--max-body"), NEEDLES("missing value for --max-body"));
    expect_fail(ARGS("--config"), NEEDLES("missing value for --config"));
    expect_fail(ARGS("--config="), NEEDLES("missing value for --config"));
    expect_fail(ARGS("--allow-anonymous="), NEEDLES("missing value for --allow-anonymous"));
    expect_fail(ARGS("--help=yes"), NEEDLES("--help takes no value"));
    expect_fail(ARGS("--version=1"), NEEDLES("--version takes no value"));
}

Test(config, bad_numbers)
{
    expect_fail(ARGS("--io-threads", "abc"), NEEDLES("--io-threads", "bad number 'abc'"));
    expect_fail(ARGS("--io-threads", "-1"), NEEDLES("--io-threads", "'-1'"));
    expect_fail(ARGS("--io-threads", "4x"), NEEDLES("--io-threads", "'4x'"));
    expect_fail(ARGS("--io-threads", " 4"), NEEDLES("--io-threads", "' 4'"));
    expect_fail(ARGS("--io-threads", "1.5"), NEEDLES("--io-threads", "'1.5'"));
    expect_fail(ARGS("--io-threads", "4k"), NEEDLES("--io-threads", "'4k'"));
    expect_fail(ARGS("--io-threads", "1025"),
                NEEDLES("--io-threads", "1025", "out of range 0..1024"));
    expect_fail(ARGS("--reader-threads=0"), NEEDLES("--reader-threads", "out of range 1..1024"));
    expect_fail(ARGS("--max-connections=0"), NEEDLES("--max-connections", "out of range"));
    expect_fail(ARGS("--writer-batch=99999999999999999999999"),
                NEEDLES("--writer-batch", "out of range"));
    expect_fail(ARGS("--sse-ping-ms=2147483648"), NEEDLES("--sse-ping-ms", "out of range"));
    expect_fail(ARGS("--stall-timeout-ms=0"), NEEDLES("--stall-timeout-ms", "out of range"));
    expect_fail(ARGS("--max-subscriptions", "+5"), NEEDLES("--max-subscriptions", "'+5'"));
}

Test(config, bad_sizes)
{
    expect_fail(ARGS("--max-body", "abc"), NEEDLES("--max-body", "bad size 'abc'"));
    expect_fail(ARGS("--max-body", "1.5MiB"), NEEDLES("--max-body", "bad size '1.5MiB'"));
    expect_fail(ARGS("--max-body", "4TiB"), NEEDLES("--max-body", "bad size '4TiB'"));
    expect_fail(ARGS("--max-body", "MiB"), NEEDLES("--max-body", "bad size 'MiB'"));
    expect_fail(ARGS("--max-body", "4MiBs"), NEEDLES("--max-body", "bad size"));
    expect_fail(ARGS("--max-body", "-1"), NEEDLES("--max-body", "bad size '-1'"));
    expect_fail(ARGS("--max-event=0"), NEEDLES("--max-event", "out of range 1..1GiB"));
    expect_fail(ARGS("--max-message=2GiB"), NEEDLES("--max-message", "out of range"));
    expect_fail(ARGS("--outbox-bytes=1073741825"), NEEDLES("--outbox-bytes", "out of range"));
    /* overflow in the digits and in the multiplication */
    expect_fail(ARGS("--max-body=99999999999999999999999"), NEEDLES("--max-body", "out of range"));
    expect_fail(ARGS("--max-body=18446744073709551615k"), NEEDLES("--max-body", "out of range"));
}

Test(config, bad_other_values)
{
    expect_fail(ARGS("--allow-anonymous=maybe"),
                NEEDLES("--allow-anonymous", "bad boolean 'maybe'"));
    expect_fail(ARGS("--log-level", "verbose"), NEEDLES("--log-level", "bad log level 'verbose'"));
    expect_fail(ARGS("--listen", "localhost"), NEEDLES("--listen", "bad address 'localhost'"));
    expect_fail(ARGS("--listen", "1.2.3.4:70000"), NEEDLES("--listen", "'1.2.3.4:70000'"));
    expect_fail(ARGS("--listen", "::1:5000"), NEEDLES("--listen", "'::1:5000'"));
}

Test(config, error_buffer_edge_cases)
{
    hs_cli_t cli;
    char small[8];
    char *argv[] = {"hubstream", "--no-such-flag", NULL};

    cr_expect_eq(hs_cli_parse(&cli, 2, argv, NULL, 0), HS_EINVAL);
    hs_cli_dispose(&cli);
    cr_expect_eq(hs_cli_parse(&cli, 2, argv, small, sizeof small), HS_EINVAL);
    cr_expect_eq(strlen(small), sizeof small - 1);
    hs_cli_dispose(&cli);
}

/* ---- environment ----------------------------------------------------------------------- */

Test(config, environment_sets_values)
{
    hs_cli_t cli;
    char err[256];
    setenv("HUBSTREAM_LISTEN", "[::1]:7000", 1);
    setenv("HUBSTREAM_DB", "DSN=env", 1);
    setenv("HUBSTREAM_ALLOW_ANONYMOUS", "1", 1);
    setenv("HUBSTREAM_MAX_BODY", "2MiB", 1);
    setenv("HUBSTREAM_IO_THREADS", "4", 1);
    setenv("HUBSTREAM_STALL_TIMEOUT_MS", "1234", 1);
    setenv("HUBSTREAM_LOG_LEVEL", "warn", 1);
    cr_assert_eq(PARSE(&cli, err, "--db", "flag.db"), 0, "%s", err);
    cr_expect_str_eq(cli.cfg.listen, "[::1]:7000");
    cr_expect_str_eq(cli.cfg.db, "flag.db");
    cr_expect_eq(cli.cfg.allow_anonymous, true);
    cr_expect_eq(cli.cfg.max_body, 2 * 1048576);
    cr_expect_eq(cli.cfg.io_threads, 4);
    cr_expect_eq(cli.cfg.stall_timeout_ms, 1234);
    cr_expect_eq(cli.cfg.log_level, HS_LOG_WARN);
    hs_cli_dispose(&cli);
}

Test(config, empty_environment_variable_is_unset)
{
    hs_cli_t cli;
    char err[256];
    setenv("HUBSTREAM_LISTEN", "", 1);
    setenv("HUBSTREAM_MAX_BODY", "", 1);
    setenv("HUBSTREAM_CONFIG", "", 1);
    char *argv[] = {"hubstream", NULL};
    cr_assert_eq(hs_cli_parse(&cli, 1, argv, err, sizeof err), 0, "%s", err);
    expect_defaults(&cli.cfg);
    cr_expect_null(cli.config_file);
    hs_cli_dispose(&cli);
}

Test(config, environment_errors_name_the_variable)
{
    setenv("HUBSTREAM_MAX_BODY", "lots", 1);
    expect_fail(ARGS("--listen", ":1"),
                NEEDLES("environment variable HUBSTREAM_MAX_BODY", "bad size 'lots'"));
    unsetenv("HUBSTREAM_MAX_BODY");

    setenv("HUBSTREAM_ALLOW_ANONYMOUS", "sure", 1);
    expect_fail(ARGS("--listen", ":1"), NEEDLES("HUBSTREAM_ALLOW_ANONYMOUS", "bad boolean 'sure'"));
    unsetenv("HUBSTREAM_ALLOW_ANONYMOUS");

    setenv("HUBSTREAM_WRITER_BATCH", "0", 1);
    expect_fail(ARGS("--listen", ":1"), NEEDLES("HUBSTREAM_WRITER_BATCH", "out of range"));
}

/* ---- config file ----------------------------------------------------------------------- */

Test(config, file_sets_every_key)
{
    hs_cli_t cli;
    char err[512];
    const char *path = write_conf("# full config\n"
                                  "listen = 0.0.0.0:6000\n"
                                  "db = \"DSN=events\"\n"
                                  "allow-anonymous = true\n"
                                  "io-threads = 3\n"
                                  "fanout_workers = 5\n"
                                  "reader-threads=7\n"
                                  "  max-connections   =   500  \n"
                                  "max_body = 2MiB\n"
                                  "max-event = '512k'\n"
                                  "max-message = 1000   # bytes\n"
                                  "\n"
                                  "max-subscriptions = 10\n"
                                  "outbox-bytes = 8m\n"
                                  "sse-ping-ms = 100\n"
                                  "sse-retry-ms = 200\n"
                                  "stall-timeout-ms = 300\n"
                                  "writer-batch = 64\n"
                                  "log-level = debug"); /* no final newline */
    cr_assert_eq(PARSE(&cli, err, "--config", (char *)path), 0, "%s", err);
    expect_all_set(&cli.cfg);
    cr_expect_str_eq(cli.config_file, path);
    hs_cli_dispose(&cli);
}

Test(config, file_syntax_details)
{
    hs_cli_t cli;
    char err[512];
    const char *path = write_conf("\xEF\xBB\xBF# BOM, CRLF, tabs and quoting\r\n"
                                  "\t# indented comment\r\n"
                                  "   \r\n"
                                  "db = \"a # not a comment\" # a comment\r\n"
                                  "listen=\t:5001\t\r\n"
                                  "LOG_LEVEL = Error\r\n"
                                  "max-body = 4 MiB\r\n");
    char arg[128];
    snprintf(arg, sizeof arg, "--config=%s", path);
    cr_assert_eq(PARSE(&cli, err, arg), 0, "%s", err);
    cr_expect_str_eq(cli.cfg.db, "a # not a comment");
    cr_expect_str_eq(cli.cfg.listen, ":5001");
    cr_expect_eq(cli.cfg.log_level, HS_LOG_ERROR);
    cr_expect_eq(cli.cfg.max_body, 4 * 1048576);
    cr_expect_str_eq(cli.config_file, path);
    hs_cli_dispose(&cli);
}

Test(config, file_value_with_hash_and_equals)
{
    hs_cli_t cli;
    char err[512];
    const char *path = write_conf("db = Driver=x;Pwd=a#b\n"
                                  "listen = '[::1]:5000'\n");
    cr_assert_eq(PARSE(&cli, err, "--config", (char *)path), 0, "%s", err);
    cr_expect_str_eq(cli.cfg.db, "Driver=x;Pwd=a#b");
    cr_expect_str_eq(cli.cfg.listen, "[::1]:5000");
    hs_cli_dispose(&cli);
}

Test(config, file_from_environment)
{
    hs_cli_t cli;
    char err[512];
    const char *path = write_conf("max-body = 3MiB\n");
    setenv("HUBSTREAM_CONFIG", path, 1);
    char *argv[] = {"hubstream", NULL};
    cr_assert_eq(hs_cli_parse(&cli, 1, argv, err, sizeof err), 0, "%s", err);
    cr_expect_eq(cli.cfg.max_body, 3 * 1048576);
    cr_expect_str_eq(cli.config_file, path);
    hs_cli_dispose(&cli);
}

Test(config, config_flag_overrides_config_variable)
{
    hs_cli_t cli;
    char err[512];
    const char *bad = write_conf("this is not a config file\n");
    const char *good = write_conf("max-event = 2k\n");
    setenv("HUBSTREAM_CONFIG", bad, 1);
    cr_assert_eq(PARSE(&cli, err, "--config", (char *)good), 0, "%s", err);
    cr_expect_eq(cli.cfg.max_event, 2048);
    cr_expect_str_eq(cli.config_file, good);
    hs_cli_dispose(&cli);
}

Test(config, last_config_flag_wins)
{
    hs_cli_t cli;
    char err[512];
    const char *first = write_conf("max-event = 1k\n");
    const char *second = write_conf("max-event = 2k\n");
    cr_assert_eq(PARSE(&cli, err, "--config", (char *)first, "--config", (char *)second), 0, "%s",
                 err);
    cr_expect_eq(cli.cfg.max_event, 2048);
    hs_cli_dispose(&cli);
}

static void expect_file_fail(const char *text, const char *const *needles)
{
    const char *path = write_conf(text);
    char *argv[] = {"hubstream", "--config", (char *)path, NULL};
    char *prefix;
    cr_assert_gt(asprintf(&prefix, "config file %s", path), 0);
    const char *all[8] = {prefix};
    size_t n = 1;
    for (; needles[n - 1] && n < 7; n++)
        all[n] = needles[n - 1];
    all[n] = NULL;
    expect_fail(argv, all);
    free(prefix);
}

Test(config, file_errors_name_file_line_and_key)
{
    expect_file_fail("listen = :5000\n\nlisen = :6000\n",
                     NEEDLES("line 3: unknown key 'lisen'", "did you mean 'listen'"));
    expect_file_fail("colour = blue\n", NEEDLES("line 1: unknown key 'colour'"));
    expect_file_fail("--listen = :1\n", NEEDLES("line 1: unknown key '--listen'"));
    expect_file_fail("help = 1\n", NEEDLES("line 1: unknown key 'help'"));
    expect_file_fail("config = other.conf\n", NEEDLES("line 1: key 'config' is not allowed"));
    expect_file_fail("# ok\nlisten :5000\n", NEEDLES("line 2: expected 'key = value'"));
    expect_file_fail("= 5\n", NEEDLES("line 1: missing key"));
    expect_file_fail("db = \"open\n", NEEDLES("line 1: db: unterminated quote"));
    expect_file_fail("db = \"a\" b\n", NEEDLES("line 1: db: unexpected text after the closing"));
    expect_file_fail("db =\n", NEEDLES("line 1: db: empty value"));
    expect_file_fail("db = \"\"\n", NEEDLES("line 1: db: empty value"));
    expect_file_fail("max-body = 1.5m\n", NEEDLES("line 1: max-body: bad size '1.5m'"));
    expect_file_fail("\n\n\n\nio_threads = 2000\n", NEEDLES("line 5: io-threads", "out of range"));
    expect_file_fail("log-level = loud\n", NEEDLES("line 1: log-level: bad log level 'loud'"));
    expect_file_fail("allow-anonymous = perhaps\n", NEEDLES("line 1: allow-anonymous"));
    expect_file_fail("listen = nowhere\n", NEEDLES("line 1: listen: bad address 'nowhere'"));
}

Test(config, file_with_nul_byte)
{
    const char *path = write_conf("listen = :1\n");
    FILE *f = fopen(path, "a");
    cr_assert_not_null(f);
    fwrite("db = a\0b\n", 1, 9, f);
    fclose(f);
    expect_fail(ARGS("--config", (char *)path), NEEDLES("line 2: contains a NUL byte"));
}

Test(config, unreadable_config_file)
{
    expect_fail(ARGS("--config", "/nonexistent/hs.conf"),
                NEEDLES("config file /nonexistent/hs.conf", "cannot open"));
    expect_fail(ARGS("--config", "/tmp"), NEEDLES("config file /tmp", "read error"));

    setenv("HUBSTREAM_CONFIG", "/nonexistent/env.conf", 1);
    expect_fail(ARGS("--db", "x"),
                NEEDLES("config file /nonexistent/env.conf", "HUBSTREAM_CONFIG", "cannot open"));
}

/* ---- precedence ------------------------------------------------------------------------ */

Test(config, precedence_file_env_flag)
{
    hs_cli_t cli;
    char err[512];
    const char *path = write_conf("listen = :1001\n"
                                  "max-body = 1k\n"
                                  "max-event = 1k\n"
                                  "writer-batch = 11\n");
    char *argv[] = {"hubstream", "--config", (char *)path, NULL};

    /* file over defaults */
    cr_assert_eq(hs_cli_parse(&cli, 3, argv, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(cli.cfg.listen, ":1001");
    cr_expect_eq(cli.cfg.max_body, 1024);
    cr_expect_eq(cli.cfg.writer_batch, 11);
    cr_expect_eq(cli.cfg.reader_threads, 2);
    hs_cli_dispose(&cli);

    /* environment over file */
    setenv("HUBSTREAM_LISTEN", ":2002", 1);
    setenv("HUBSTREAM_MAX_BODY", "2k", 1);
    cr_assert_eq(hs_cli_parse(&cli, 3, argv, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(cli.cfg.listen, ":2002");
    cr_expect_eq(cli.cfg.max_body, 2048);
    cr_expect_eq(cli.cfg.max_event, 1024);
    hs_cli_dispose(&cli);

    /* flag over environment and file, wherever --config stands */
    cr_assert_eq(PARSE(&cli, err, "--listen=:3003", "--max-event", "3k", "--config", (char *)path),
                 0, "%s", err);
    cr_expect_str_eq(cli.cfg.listen, ":3003");
    cr_expect_eq(cli.cfg.max_body, 2048);
    cr_expect_eq(cli.cfg.max_event, 3072);
    cr_expect_eq(cli.cfg.writer_batch, 11);
    hs_cli_dispose(&cli);
}

/* ---- listen addresses ------------------------------------------------------------------ */

Test(config, listen_parse_valid)
{
    static const struct {
        const char *in, *host;
        int port;
    } cases[] = {
        {"127.0.0.1:5000", "127.0.0.1", 5000},
        {"0.0.0.0:65535", "0.0.0.0", 65535},
        {"localhost:0", "localhost", 0},
        {"example.com:80", "example.com", 80},
        {":5000", "0.0.0.0", 5000},
        {"[::1]:8080", "::1", 8080},
        {"[::]:1", "::", 1},
        {"[fe80::1%eth0]:443", "fe80::1%eth0", 443},
        {"[::ffff:10.0.0.1]:9", "::ffff:10.0.0.1", 9},
        {"host:00080", "host", 80},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char host[64] = "";
        int port = -1;
        cr_expect_eq(hs_listen_parse(cases[i].in, host, sizeof host, &port), 0, "%s", cases[i].in);
        cr_expect_str_eq(host, cases[i].host, "%s", cases[i].in);
        cr_expect_eq(port, cases[i].port, "%s", cases[i].in);
    }
}

Test(config, listen_parse_invalid)
{
    static const char *const bad[] = {
        "",
        "5000",
        "host",
        "host:",
        ":",
        "host:65536",
        "host:-1",
        "host:12a",
        "host: 80",
        "host:000080",
        "::1:5000",
        "::1",
        "[::1]",
        "[::1]5000",
        "[::1]:",
        "[]:5000",
        "[::1:5000",
        "[127.0.0.1]:5",
        "a b:1",
        "h/ost:1",
        "[::1]:99999",
        "host:99999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char host[64] = "unchanged";
        int port = 42;
        cr_expect_eq(hs_listen_parse(bad[i], host, sizeof host, &port), HS_EINVAL, "'%s'", bad[i]);
        cr_expect_str_eq(host, "unchanged", "'%s'", bad[i]);
        cr_expect_eq(port, 42, "'%s'", bad[i]);
    }
    char host[64];
    int port;
    cr_expect_eq(hs_listen_parse(NULL, host, sizeof host, &port), HS_EINVAL);
}

Test(config, listen_parse_host_buffer)
{
    char host[10];
    int port;
    cr_expect_eq(hs_listen_parse("127.0.0.1:1", host, sizeof host, &port), 0); /* 9 + NUL */
    cr_expect_str_eq(host, "127.0.0.1");
    cr_expect_eq(hs_listen_parse("127.0.0.10:1", host, sizeof host, &port), HS_EINVAL);
    cr_expect_eq(hs_listen_parse(":1", host, 7, &port), HS_EINVAL); /* "0.0.0.0" needs 8 */
    cr_expect_eq(hs_listen_parse(":1", host, 8, &port), 0);
}

Test(config, loopback_detection)
{
    static const char *const yes[] = {
        "127.0.0.1", "127.1.2.3",  "127.255.255.255",  "127.0.0.0",
        "::1",       "[::1]",      "0:0:0:0:0:0:0:1",  "localhost",
        "LocalHost", "localhost.", "::ffff:127.0.0.1",
    };
    static const char *const no[] = {
        "10.0.0.1", "0.0.0.0",         "128.0.0.1",   "126.255.255.255",       "::",    "::2",
        "[::]",     "::ffff:10.0.0.1", "example.com", "localhost.example.com", "127.1", "",
        "[",
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        cr_expect(hs_listen_is_loopback(yes[i]), "%s should be loopback", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        cr_expect_not(hs_listen_is_loopback(no[i]), "%s should not be loopback", no[i]);
    cr_expect_not(hs_listen_is_loopback(NULL));
}

Test(config, loopback_of_parsed_default)
{
    hs_config_t c;
    char host[64];
    int port;
    hs_config_init(&c);
    cr_assert_eq(hs_listen_parse(c.listen, host, sizeof host, &port), 0);
    cr_expect(hs_listen_is_loopback(host));
    cr_expect_eq(port, 5000);
}

/* ---- --help ---------------------------------------------------------------------------- */

Test(config, usage_lists_every_flag_within_100_columns)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    hs_cli_usage(f);
    fclose(f);

    static const char *const flags[] = {
        "listen",
        "db",
        "allow-anonymous",
        "io-threads",
        "fanout-workers",
        "reader-threads",
        "max-connections",
        "max-body",
        "max-event",
        "max-message",
        "max-subscriptions",
        "outbox-bytes",
        "sse-ping-ms",
        "sse-retry-ms",
        "stall-timeout-ms",
        "writer-batch",
        "log-level",
        "config",
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        char flag[64], env[64];
        snprintf(flag, sizeof flag, "--%s", flags[i]);
        snprintf(env, sizeof env, "HUBSTREAM_");
        for (const char *p = flags[i]; *p; p++) {
            char c = *p == '-' ? '_' : (char)(*p - 'a' + 'A');
            strncat(env, &c, 1);
        }
        cr_expect(strstr(text, flag) != NULL, "usage lacks %s", flag);
        cr_expect(strstr(text, env) != NULL, "usage lacks %s", env);
    }
    cr_expect(strstr(text, "--help") != NULL);
    cr_expect(strstr(text, "--version") != NULL);
    cr_expect(strstr(text, "127.0.0.1:5000") != NULL, "usage lacks the listen default");
    cr_expect(strstr(text, "4MiB") != NULL, "usage lacks the outbox default");
    cr_expect(strstr(text, "Example") != NULL);

    int line = 1;
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        cr_expect_leq(n, 100, "usage line %d is %zu columns", line, n);
        p += n;
        if (*p)
            p++;
        line++;
    }
    free(text);
}

Test(config, redacts_database_passwords_for_logs)
{
    char out[256];
    hs_redact_conn("Driver=PostgreSQL Unicode;Server=h;Uid=u;PWD={se;cret};Password=abc;x=1", out,
                   sizeof(out));
    cr_assert_str_eq(out, "Driver=PostgreSQL Unicode;Server=h;Uid=u;PWD=***;Password=***;x=1");
    hs_redact_conn("Driver=X;Pwd=;Database=d", out, sizeof(out));
    cr_assert_str_eq(out, "Driver=X;Pwd=;Database=d", "an empty password stays empty");
    hs_redact_conn("/var/lib/hubstream/events.db", out, sizeof(out));
    cr_assert_str_eq(out, "/var/lib/hubstream/events.db");
}
