/*
 * Tests of the backplane's parsers (cluster/backplane.c, cluster/pg.c, util/connstr.c): which
 * --backplane values are taken and what they mean, the notification payload, the libpq
 * connection string made from an ODBC one, and what is refused with a reason. The listeners
 * themselves run against a real PostgreSQL and Redis in tests/conformance/cluster.test.mjs.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "cluster/backplane.h"
#include "hubstream/hubstream.h"
#include "util/connstr.h"

static const hs_logger_t quiet = {.level = HS_LOG_ERROR};

Test(backplane, kinds)
{
    char err[256];
    static const struct {
        const char *spec;
        hs_bp_kind_t kind;
    } ok[] = {
        {NULL, HS_BP_AUTO},
        {"", HS_BP_AUTO},
        {"none", HS_BP_NONE},
        {"poll", HS_BP_POLL},
        {"postgres", HS_BP_POSTGRES},
        {"postgresql", HS_BP_POSTGRES},
        {"postgres://u@h:5432/db", HS_BP_POSTGRES},
        {"postgresql://h/db", HS_BP_POSTGRES},
        {"redis://127.0.0.1:6379", HS_BP_REDIS},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        hs_bp_kind_t k = (hs_bp_kind_t)-1;
        cr_assert_eq(hs_backplane_kind(ok[i].spec, &k, err, sizeof err), 0, "%s", ok[i].spec);
        cr_assert_eq(k, ok[i].kind, "%s", ok[i].spec);
    }
    static const char *const bad[] = {"Postgres", "redis", "kafka://x", "pol", " none"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hs_bp_kind_t k;
        err[0] = '\0';
        cr_assert_eq(hs_backplane_kind(bad[i], &k, err, sizeof err), HS_EINVAL, "%s", bad[i]);
        cr_assert_not_null(strstr(err, "expected none, poll, postgres"), "%s: %s", bad[i], err);
    }
}

Test(backplane, payload)
{
    int64_t p = -1, s = -1;
    cr_assert_eq(hs_backplane_payload("120 7", 5, &p, &s), 0);
    cr_assert_eq(p, 120);
    cr_assert_eq(s, 7);
    cr_assert_eq(hs_backplane_payload("0 0", 3, &p, &s), 0);
    cr_assert_eq(p, 0);
    cr_assert_eq(hs_backplane_payload("9223372036854775807 1", 21, &p, &s), 0);
    cr_assert_eq(p, INT64_MAX);
    cr_assert_eq(hs_backplane_payload("9223372036854775808 1", 21, &p, &s), -1, "overflow");
    static const char *const bad[] = {"",     "12",   "12 ", " 1 2",  "1  2",
                                      "1 2 ", "-1 2", "1 x", "1 2 3", "99999999999999999999 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(hs_backplane_payload(bad[i], strlen(bad[i]), &p, &s), -1, "'%s'", bad[i]);
    /* the length bounds the parse: no terminator needed, and what follows it is not read */
    cr_assert_eq(hs_backplane_payload("5 6junk", 3, &p, &s), 0);
    cr_assert_eq(s, 6);
}

Test(backplane, conn_value)
{
    char v[64];
    const char *cs = "Driver={PostgreSQL Unicode};server = db1 ;PORT=5433;Pwd={a;b=c};Uid=hs";
    cr_assert_eq(hs_conn_value(cs, "Driver", v, sizeof v), 18);
    cr_assert_str_eq(v, "PostgreSQL Unicode");
    cr_assert_eq(hs_conn_value(cs, "Server", v, sizeof v), 5);
    cr_assert_str_eq(v, " db1 ");
    cr_assert_eq(hs_conn_value(cs, "port", v, sizeof v), 4);
    cr_assert_str_eq(v, "5433");
    cr_assert_eq(hs_conn_value(cs, "PWD", v, sizeof v), 5);
    cr_assert_str_eq(v, "a;b=c");
    cr_assert_eq(hs_conn_value(cs, "Uid", v, sizeof v), 2);
    cr_assert_eq(hs_conn_value(cs, "Database", v, sizeof v), -1);
    cr_assert_eq(hs_conn_value("Pwd={open", "Pwd", v, sizeof v), -1, "an unclosed brace");
    cr_assert_eq(hs_conn_value("Uid=averyveryverylongname", "Uid", v, 8), -1, "too long");
    cr_assert_eq(hs_conn_value("", "Uid", v, sizeof v), -1);
}

Test(backplane, pg_conninfo_from_odbc)
{
    char out[512], err[256];
    cr_assert_eq(hs_pg_conninfo("Driver=PostgreSQL Unicode;Server=10.0.0.5;Port=5433;"
                                "Database=events;Uid=hub;Pwd={it's\\secret;x}",
                                out, sizeof out, err, sizeof err),
                 0, "%s", err);
    cr_assert_str_eq(out, "host='10.0.0.5' port='5433' dbname='events' user='hub' "
                          "password='it\\'s\\\\secret;x'");
    /* no Server: nothing to connect to */
    cr_assert_eq(hs_pg_conninfo("DSN=events", out, sizeof out, err, sizeof err), -1);
    cr_assert_not_null(strstr(err, "names no Server"), "%s", err);
    /* a file path is SQLite */
    cr_assert_eq(hs_pg_conninfo("/var/lib/x.db", out, sizeof out, err, sizeof err), -1);
    cr_assert_not_null(strstr(err, "PostgreSQL connection string"), "%s", err);
}

Test(backplane, create_checks_its_settings)
{
    char err[256];
    /* kinds without a thread of their own: nothing to create, no error */
    for (const char *k = "none"; k; k = strcmp(k, "none") ? NULL : "poll") {
        err[0] = 'x';
        cr_assert_null(hs_backplane_create(k, "x.db", &quiet, err, sizeof err));
        cr_assert_str_eq(err, "");
    }
    hs_backplane_t *b =
        hs_backplane_create("redis://[::1]:7000/events-a", "x.db", &quiet, err, sizeof err);
    cr_assert_not_null(b, "%s", err);
    cr_assert_eq(hs_backplane_connected(b), 0);
    hs_backplane_destroy(b);
    b = hs_backplane_create("redis://cache", "x.db", &quiet, err, sizeof err);
    cr_assert_not_null(b, "%s", err);
    hs_backplane_destroy(b);
    static const char *const bad[] = {"redis://",         "redis://h:0",  "redis://h:70000",
                                      "redis://h:12x",    "redis://[::1", "redis://h/a b",
                                      "redis://h:6379/x/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        cr_assert_null(hs_backplane_create(bad[i], "x.db", &quiet, err, sizeof err), "%s", bad[i]);
        cr_assert_not_null(strstr(err, "redis://HOST[:PORT][/CHANNEL]"), "%s: %s", bad[i], err);
    }
    /* postgres from a SQLite path: refused with the reason */
    cr_assert_null(hs_backplane_create("postgres", "x.db", &quiet, err, sizeof err));
    cr_assert_not_null(strstr(err, "PostgreSQL connection string"), "%s", err);
    b = hs_backplane_create("postgres://hub@db:5432/events", "x.db", &quiet, err, sizeof err);
    cr_assert_not_null(b, "%s", err);
    hs_backplane_destroy(b);
}
