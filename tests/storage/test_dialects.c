/*
 * Tests of the SQL dialects (storage/dialect_*.c): for every dialect hs_dialects() lists, the
 * structural rules store.c relies on — every statement it runs is there, with as many '?'
 * placeholders as it binds, a row limit as the last one, the documented result columns in the
 * documented order, migrations that end by recording their version — and how a dialect is picked
 * by the driver's DBMS name. Then the FreeTDS ODBC driver (Debian tdsodbc) against a port
 * nobody listens on: the driver loads and hs_store_open() fails cleanly with its diagnostic.
 *
 * Not tested here: running any statement. SQLite and PostgreSQL run them in the store, writer
 * and integration suites; no SQL Server runs on the build machine, so the sqlserver dialect is
 * checked only as far as this file goes. That schema_version equals the number of migrations
 * cannot be seen from outside (the array has no terminator): each dialect derives it with
 * sizeof.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <glob.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "storage/dialect.h"
#include "storage/store.h"

/* Every statement store.c prepares, with what it binds (store.c: run() calls and
 * insert_some()) and what it reads back. `cols`: the result columns by name, in order ("-" for
 * an expression); NULL for a statement without a result set. */
static const struct {
    size_t off;
    const char *what;
    bool optional; /* may be NULL (dialect.h says so) */
    int params;
    bool limit; /* the last parameter is a row limit */
    const char *cols;
} stmts[] = {
    {offsetof(hs_dialect_t, batch_lock_sql), "batch_lock", true, 0, false, NULL},
    {offsetof(hs_dialect_t, migrate_lock_sql), "migrate_lock", true, 0, false, NULL},
    {offsetof(hs_dialect_t, meta_create_sql), "meta_create", false, 0, false, NULL},
    {offsetof(hs_dialect_t, schema_version_sql), "schema_version", false, 0, false, "value"},
    {offsetof(hs_dialect_t, get_stream_sql), "get_stream", false, 1, false,
     "id version position closed created_us updated_us"},
    {offsetof(hs_dialect_t, create_stream_sql), "create_stream", false, 5, false, NULL},
    {offsetof(hs_dialect_t, update_stream_sql), "update_stream", false, 5, false, NULL},
    /* a scalar without FROM (no columns to read) */
    {offsetof(hs_dialect_t, update_stream_count_sql), "update_stream_count", true, 0, false, NULL},
    {offsetof(hs_dialect_t, keep_position_sql), "keep_position", false, 2, false, NULL},
    {offsetof(hs_dialect_t, delete_events_sql), "delete_events", false, 1, false, NULL},
    {offsetof(hs_dialect_t, delete_stream_sql), "delete_stream", false, 1, false, NULL},
    {offsetof(hs_dialect_t, max_position_sql), "max_position", false, 0, false, "-"},
    {offsetof(hs_dialect_t, find_event_sql), "find_event", false, 2, false, "version position"},
    {offsetof(hs_dialect_t, insert_event_sql), "insert_event", false, 8, false, NULL},
    /* the head only: store.c appends the tuples */
    {offsetof(hs_dialect_t, insert_values_sql), "insert_values", true, 0, false, NULL},
    {offsetof(hs_dialect_t, read_stream_fwd_sql), "read_stream_fwd", false, 3, true,
     "version position time_us event_id type data metadata"},
    {offsetof(hs_dialect_t, read_stream_bwd_sql), "read_stream_bwd", false, 3, true,
     "version position time_us event_id type data metadata"},
    {offsetof(hs_dialect_t, read_all_fwd_sql), "read_all_fwd", false, 2, true,
     "version position time_us name event_id type data metadata"},
    {offsetof(hs_dialect_t, read_all_bwd_sql), "read_all_bwd", false, 2, true,
     "version position time_us name event_id type data metadata"},
    {offsetof(hs_dialect_t, list_streams_sql), "list_streams", false, 5, true,
     "id version position closed created_us updated_us name"},
    {offsetof(hs_dialect_t, list_streams_open_sql), "list_streams_open", false, 4, true,
     "id version position closed created_us updated_us name"},
    {offsetof(hs_dialect_t, oldest_event_sql), "oldest_event", false, 1, false, "version time_us"},
    {offsetof(hs_dialect_t, trim_sql), "trim", false, 3, false, NULL},
    /* several nodes: heads is two scalar subqueries (no FROM of its own to read columns from) */
    {offsetof(hs_dialect_t, heads_sql), "heads", false, 0, false, NULL},
    {offsetof(hs_dialect_t, op_insert_sql), "op_insert", false, 6, false, NULL},
    {offsetof(hs_dialect_t, op_read_sql), "op_read", false, 2, false,
     "seq position kind version time_us name"},
    {offsetof(hs_dialect_t, op_prune_sql), "op_prune", false, 1, false, NULL},
    {offsetof(hs_dialect_t, leader_sql), "leader", true, 0, false, NULL},
    {offsetof(hs_dialect_t, notify_sql), "notify", true, 1, false, NULL},
    /* /eventstreamhub */
    {offsetof(hs_dialect_t, stream_by_fold_sql), "stream_by_fold", false, 1, false,
     "id version position closed created_us updated_us name"},
    {offsetof(hs_dialect_t, fold_missing_sql), "fold_missing", false, 0, false, "id name"},
    {offsetof(hs_dialect_t, fold_set_sql), "fold_set", false, 3, false, NULL},
    {offsetof(hs_dialect_t, es_sub_get_sql), "es_sub_get", false, 1, false,
     "stream_id cur_position cur_version from_position to_position created_us subscriber_key "
     "connection_id"},
    {offsetof(hs_dialect_t, es_sub_insert_sql), "es_sub_insert", false, 7, false, NULL},
    {offsetof(hs_dialect_t, es_sub_attach_sql), "es_sub_attach", false, 2, false, NULL},
    {offsetof(hs_dialect_t, es_sub_cursor_sql), "es_sub_cursor", false, 4, false, NULL},
    {offsetof(hs_dialect_t, es_sub_delete_sql), "es_sub_delete", false, 1, false, NULL},
    {offsetof(hs_dialect_t, es_sub_range_sql), "es_sub_range", false, 3, false, NULL},
    {offsetof(hs_dialect_t, es_sub_delete_stream_sql), "es_sub_delete_stream", false, 1, false,
     NULL},
    {offsetof(hs_dialect_t, es_links_delete_stream_sql), "es_links_delete_stream", false, 2, false,
     NULL},
    {offsetof(hs_dialect_t, es_links_all_sql), "es_links_all", false, 0, false,
     "source_id target_id name"},
    {offsetof(hs_dialect_t, es_link_insert_sql), "es_link_insert", false, 3, false, NULL},
    {offsetof(hs_dialect_t, es_links_gen_sql), "es_links_gen", false, 0, false, "-"},
    {offsetof(hs_dialect_t, es_links_bump_sql), "es_links_bump", false, 0, false, NULL},
    {offsetof(hs_dialect_t, es_resume_sql), "es_resume", false, 2, false, "-"},
    {offsetof(hs_dialect_t, es_stream_by_guid_sql), "es_stream_by_guid", false, 1, false,
     "id version position closed created_us updated_us name"},
    {offsetof(hs_dialect_t, es_stream_by_id_sql), "es_stream_by_id", false, 1, false,
     "id version position closed created_us updated_us name"},
    {offsetof(hs_dialect_t, es_search_streams_sql), "es_search_streams", false, 7, true,
     "id version position closed created_us updated_us name"},
    {offsetof(hs_dialect_t, es_event_get_sql), "es_event_get", false, 2, false,
     "version position time_us name event_id type data metadata"},
    {offsetof(hs_dialect_t, es_search_events_sql), "es_search_events", false, 6, true,
     "version position time_us name event_id type data metadata"},
    {offsetof(hs_dialect_t, es_sub_show_sql), "es_sub_show", false, 1, false,
     "id stream_id cur_position from_position to_position created_us created_us connection_id "
     "name"},
};

#define NSTMTS (sizeof stmts / sizeof stmts[0])

static const char *stmt_sql(const hs_dialect_t *d, size_t i)
{
    return *(const char *const *)((const char *)d + stmts[i].off);
}

/* ---- a small SQL scanner: enough to tell placeholders and keywords from quoted text ---- */

/* If s starts a quoted literal or identifier ('...' with '' inside, "...", [...]) or a comment,
 * returns the first character after it (setting *open when it never ends), else s. */
static const char *skip_quoted(const char *s, bool *open)
{
    char close = 0;
    if (*s == '\'' || *s == '"')
        close = *s;
    else if (*s == '[')
        close = ']';
    if (close) {
        for (s++; *s; s++) {
            if (*s != close)
                continue;
            if (close != ']' && s[1] == close) { /* a doubled quote: still inside */
                s++;
                continue;
            }
            return s + 1;
        }
        *open = true;
        return s;
    }
    if (s[0] == '-' && s[1] == '-')
        return s + strcspn(s, "\n");
    if (s[0] == '/' && s[1] == '*') {
        const char *e = strstr(s + 2, "*/");
        if (e)
            return e + 2;
        *open = true;
        return s + strlen(s);
    }
    return s;
}

/* The number of '?' placeholders outside quoted text; *last receives the last one (or NULL).
 * -1 when a quote or comment is left open (a typo the count would hide). */
static int placeholders(const char *sql, const char **last)
{
    int n = 0;
    bool open = false;
    *last = NULL;
    for (const char *s = sql; *s;) {
        const char *t = skip_quoted(s, &open);
        if (t != s) {
            s = t;
            continue;
        }
        if (*s == '?') {
            n++;
            *last = s;
        }
        s++;
    }
    return open ? -1 : n;
}

static bool word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* Whether `word` (case-insensitive, whole words separated by single spaces) ends just before
 * `end`, ignoring white space in between. */
static bool ends_with_words(const char *start, const char *end, const char *word)
{
    while (end > start && isspace((unsigned char)end[-1]))
        end--;
    size_t n = strlen(word);
    if ((size_t)(end - start) < n || strncasecmp(end - n, word, n) != 0)
        return false;
    return end - n == start || !word_char(end[-(ptrdiff_t)n - 1]);
}

/* The position of the first `kw` (a keyword, case-insensitive) outside quotes and parentheses,
 * or NULL. */
static const char *find_top(const char *sql, const char *kw)
{
    size_t n = strlen(kw);
    int depth = 0;
    for (const char *s = sql; *s;) {
        bool open = false;
        const char *t = skip_quoted(s, &open);
        if (t != s) {
            s = t;
            continue;
        }
        if (*s == '(')
            depth++;
        if (*s == ')')
            depth--;
        if (depth == 0 && strncasecmp(s, kw, n) == 0 && (s == sql || !word_char(s[-1])) &&
            !word_char(s[n]))
            return s;
        s++;
    }
    return NULL;
}

/*
 * The result columns of a SELECT as space-separated names: each select-list item is named by
 * the identifier it ends with (e.version -> version, x AS y -> y), "-" when it ends with ')'.
 */
static void select_columns(const char *sql, char *out, size_t outlen)
{
    out[0] = '\0';
    if (strncasecmp(sql, "SELECT ", 7) != 0)
        return;
    const char *list = sql + 7, *from = find_top(sql, "FROM");
    if (!from)
        return;
    size_t at = 0;
    int depth = 0;
    const char *item = list;
    for (const char *s = list; s <= from; s++) {
        if (s < from && *s == '(')
            depth++;
        if (s < from && *s == ')')
            depth--;
        if (s < from && (*s != ',' || depth > 0))
            continue;
        const char *end = s;
        while (end > item && isspace((unsigned char)end[-1]))
            end--;
        const char *b = end;
        while (b > item && word_char(b[-1]))
            b--;
        bool expr = end > item && end[-1] == ')';
        int n = snprintf(out + at, outlen - at, "%s%.*s", at ? " " : "", expr ? 1 : (int)(end - b),
                         expr ? "-" : b);
        if (n < 0 || (size_t)n >= outlen - at)
            return;
        at += (size_t)n;
        item = s + 1;
    }
}

/* ---- the dialect list ---- */

Test(dialects, list_holds_every_dialect_once)
{
    const hs_dialect_t *const *all = hs_dialects();
    cr_assert_not_null(all);
    size_t n = 0;
    while (all[n])
        n++;
    cr_assert_eq(n, 3, "sqlite, postgresql and sqlserver");
    const hs_dialect_t *want[] = {&hs_dialect_sqlite, &hs_dialect_postgres, &hs_dialect_mssql};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        size_t seen = 0;
        for (size_t i = 0; all[i]; i++)
            seen += all[i] == want[w];
        cr_assert_eq(seen, 1, "%s listed %zu times", want[w]->name, seen);
    }
    for (size_t i = 0; all[i]; i++) {
        cr_assert(all[i]->name && *all[i]->name, "dialect %zu has no name", i);
        cr_assert(all[i]->dbms_prefix && *all[i]->dbms_prefix, "%s: no dbms_prefix", all[i]->name);
        for (size_t j = 0; all[j]; j++) {
            if (i == j)
                continue;
            cr_assert_str_neq(all[i]->name, all[j]->name);
            /* one prefix starting another would make hs_dialect_find() depend on list order */
            const char *a = all[i]->dbms_prefix, *b = all[j]->dbms_prefix;
            cr_assert_neq(strncmp(a, b, strlen(b)), 0, "'%s' starts with '%s'", a, b);
        }
    }
    cr_assert_str_eq(hs_dialect_mssql.name, "sqlserver");
    cr_assert_str_eq(hs_dialect_mssql.dbms_prefix, "Microsoft SQL Server");
}

Test(dialects, picked_by_dbms_name)
{
    /* what the drivers return for SQLGetInfo(SQL_DBMS_NAME) */
    cr_assert_eq(hs_dialect_find("Microsoft SQL Server"), &hs_dialect_mssql);
    cr_assert_eq(hs_dialect_find("PostgreSQL"), &hs_dialect_postgres);
    cr_assert_eq(hs_dialect_find("SQLite"), &hs_dialect_sqlite);
    cr_assert_null(hs_dialect_find("Oracle"));
    cr_assert_null(hs_dialect_find("SQL Server")); /* a prefix match, not a substring search */
    cr_assert_null(hs_dialect_find("Microsoft"));
    cr_assert_null(hs_dialect_find(""));
    cr_assert_null(hs_dialect_find(NULL));
    /* a bare file path means SQLite, the only dialect with a file form */
    cr_assert_eq(hs_dialect_for_path(), &hs_dialect_sqlite);
    cr_assert_not_null(hs_dialect_sqlite.conn_from_path);
    cr_assert_null(hs_dialect_postgres.conn_from_path);
    cr_assert_null(hs_dialect_mssql.conn_from_path);
}

/* ---- statements ---- */

/* The statements are the fields from get_stream_sql on, all `const char *`: a new one added to
 * dialect.h must be added to stmts[] too, with what store.c binds. */
Test(dialects, table_covers_every_statement)
{
    size_t first = offsetof(hs_dialect_t, get_stream_sql), step = sizeof(const char *);
    cr_assert_eq((sizeof(hs_dialect_t) - first) % step, 0);
    for (size_t off = first; off < sizeof(hs_dialect_t); off += step) {
        bool known = false;
        for (size_t i = 0; i < NSTMTS; i++)
            known |= stmts[i].off == off;
        cr_assert(known, "the statement at offset %zu of hs_dialect_t is not in stmts[]", off);
    }
}

Test(dialects, every_statement_binds_what_store_binds)
{
    for (const hs_dialect_t *const *d = hs_dialects(); *d; d++) {
        for (size_t i = 0; i < NSTMTS; i++) {
            const char *sql = stmt_sql(*d, i);
            if (!sql) {
                cr_assert(stmts[i].optional, "%s: %s is missing", (*d)->name, stmts[i].what);
                continue;
            }
            const char *last;
            int n = placeholders(sql, &last);
            cr_assert_eq(n, stmts[i].params,
                         "%s: %s has %d placeholders (-1: a quote left open), store.c binds %d",
                         (*d)->name, stmts[i].what, n, stmts[i].params);
        }
    }
}

Test(dialects, limit_is_the_last_parameter)
{
    for (const hs_dialect_t *const *d = hs_dialects(); *d; d++) {
        for (size_t i = 0; i < NSTMTS; i++) {
            if (!stmts[i].limit)
                continue;
            const char *sql = stmt_sql(*d, i), *last;
            placeholders(sql, &last);
            cr_assert_not_null(last);
            /* LIMIT ? at the very end, or FETCH NEXT ? ROWS ONLY */
            const char *after = last + 1;
            while (isspace((unsigned char)*after))
                after++;
            bool limit = ends_with_words(sql, last, "LIMIT") && !*after;
            bool fetch = ends_with_words(sql, last, "FETCH NEXT") &&
                         strncasecmp(after, "ROWS ONLY", 9) == 0 && !after[9];
            cr_assert(limit || fetch, "%s: %s does not end with its limit: ...%s", (*d)->name,
                      stmts[i].what, last > sql + 40 ? last - 40 : sql);
            /* paging continues after the last key seen: rows must come in key order */
            cr_assert_not_null(find_top(sql, "ORDER"), "%s: %s has no ORDER BY", (*d)->name,
                               stmts[i].what);
        }
    }
}

Test(dialects, result_columns_as_documented)
{
    for (const hs_dialect_t *const *d = hs_dialects(); *d; d++) {
        for (size_t i = 0; i < NSTMTS; i++) {
            if (!stmts[i].cols)
                continue;
            char cols[256];
            select_columns(stmt_sql(*d, i), cols, sizeof cols);
            cr_assert_str_eq(cols, stmts[i].cols, "%s: %s returns (%s)", (*d)->name, stmts[i].what,
                             cols);
        }
    }
}

Test(dialects, session_and_meta)
{
    for (const hs_dialect_t *const *d = hs_dialects(); *d; d++) {
        const char *last;
        for (const char *const *s = (*d)->session_sql; s && *s; s++)
            cr_assert_eq(placeholders(*s, &last), 0,
                         "%s: session setting '%s' has parameters or an open quote", (*d)->name,
                         *s);
        cr_assert_not_null(strstr((*d)->meta_create_sql, "hs_meta"), "%s", (*d)->name);
        cr_assert_eq(placeholders((*d)->meta_create_sql, &last), 0, "%s", (*d)->name);
        cr_assert_not_null(strstr((*d)->schema_version_sql, "'schema_version'"), "%s", (*d)->name);
    }
}

/* ---- migrations ---- */

/* Statements in one migration, stopping at a sane bound if the NULL is missing. */
#define MIGRATION_MAX 64

Test(dialects, migrations_end_by_recording_their_version)
{
    for (const hs_dialect_t *const *d = hs_dialects(); *d; d++) {
        const char *name = (*d)->name;
        cr_assert_geq((*d)->schema_version, 1, "%s", name);
        cr_assert_not_null((*d)->migrations, "%s", name);
        for (int v = 0; v < (*d)->schema_version; v++) {
            const char *const *m = (*d)->migrations[v];
            cr_assert_not_null(m, "%s: migration %d missing", name, v);
            int n = 0;
            bool floor = false;
            while (n < MIGRATION_MAX && m[n]) {
                const char *last;
                cr_assert_eq(placeholders(m[n], &last), 0,
                             "%s: migration %d statement %d has parameters or an open quote"
                             " (migrations run without parameters)",
                             name, v, n);
                floor |= strstr(m[n], "'position_floor'") && strstr(m[n], "'0'");
                n++;
            }
            cr_assert_lt(n, MIGRATION_MAX, "%s: migration %d is not NULL-terminated", name, v);
            cr_assert_gt(n, 0, "%s: migration %d is empty", name, v);
            /* store.c checks after the migration that schema_version is v+1 */
            const char *rec = m[n - 1];
            char want[16];
            snprintf(want, sizeof want, "'%d'", v + 1);
            cr_assert(
                (strncasecmp(rec, "INSERT ", 7) == 0 || strncasecmp(rec, "UPDATE ", 7) == 0) &&
                    strstr(rec, "hs_meta") && strstr(rec, "'schema_version'") && strstr(rec, want),
                "%s: migration %d ends with '%s', not by writing schema_version %d", name, v, rec,
                v + 1);
            if (v == 0)
                cr_assert(floor, "%s: migration 0 does not insert position_floor = '0'", name);
        }
    }
}

/* ---- what only the SQL Server table says ---- */

/* Whether every VARCHAR column defined in `sql` carries the UTF-8 binary collation. */
static bool varchars_utf8_bin(const char *sql)
{
    static const char coll[] = " COLLATE Latin1_General_100_BIN2_UTF8 ";
    for (const char *p = strstr(sql, " VARCHAR("); p; p = strstr(p + 1, " VARCHAR(")) {
        const char *size_end = strchr(p, ')');
        if (!size_end || strncmp(size_end + 1, coll, sizeof coll - 1) != 0)
            return false;
    }
    return true;
}

Test(dialects, sqlserver_specifics)
{
    const hs_dialect_t *d = &hs_dialect_mssql;
    cr_assert_not_null(strstr(d->migrations[0][0], "id BIGINT IDENTITY"), "stream ids: %s",
                       d->migrations[0][0]);
    cr_assert(varchars_utf8_bin(d->meta_create_sql), "%s", d->meta_create_sql);
    for (int i = 0; d->migrations[0][i]; i++)
        cr_assert(varchars_utf8_bin(d->migrations[0][i]), "%s", d->migrations[0][i]);
    cr_assert_not_null(strstr(d->meta_create_sql, "IF OBJECT_ID(N'hs_meta', N'U') IS NULL"));
    /* two different application locks, owned by the transaction (released by its end) */
    cr_assert_not_null(strstr(d->batch_lock_sql, "@Resource = N'hubstream-batch'"));
    cr_assert_not_null(strstr(d->migrate_lock_sql, "@Resource = N'hubstream-migrate'"));
    cr_assert_not_null(strstr(d->batch_lock_sql, "@LockOwner = N'Transaction'"));
    cr_assert_not_null(strstr(d->migrate_lock_sql, "@LockOwner = N'Transaction'"));
}

/* ---- the FreeTDS driver ---- */

static char odbcdir[64];

static void odbc_setup(void)
{
    snprintf(odbcdir, sizeof odbcdir, "/tmp/hs_dialect_test_XXXXXX");
    cr_assert_not_null(mkdtemp(odbcdir), "mkdtemp");
}

static void odbc_teardown(void)
{
    char p[128];
    snprintf(p, sizeof p, "%s/odbcinst.ini", odbcdir);
    unlink(p);
    snprintf(p, sizeof p, "%s/odbc.ini", odbcdir);
    unlink(p);
    rmdir(odbcdir);
}

static void write_file(const char *name, const char *text)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", odbcdir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "cannot write %s", p);
    fputs(text, f);
    fclose(f);
}

Test(freetds, connection_failure_is_reported, .init = odbc_setup, .fini = odbc_teardown)
{
    glob_t g;
    int found = glob("/usr/lib/*/odbc/libtdsodbc.so", 0, NULL, &g);
    if (found != 0) {
        globfree(&g);
        found = glob("/usr/lib/odbc/libtdsodbc.so", 0, NULL, &g);
    }
    cr_assert_eq(found, 0,
                 "the FreeTDS ODBC driver libtdsodbc.so is not installed (Debian package tdsodbc;"
                 " scripts/deps.sh --test installs it)");
    /* a private driver list, as tests/pg/pg.sh writes for psqlODBC */
    char ini[512];
    snprintf(ini, sizeof ini, "[FreeTDS]\nDriver=%s\n", g.gl_pathv[0]);
    globfree(&g);
    write_file("odbcinst.ini", ini);
    write_file("odbc.ini", "");
    cr_assert_eq(setenv("ODBCSYSINI", odbcdir, 1), 0);

    /* A port bound but never listened on: connections to it are refused, and nothing else can
     * take it while the test runs. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(s, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &alen), 0);

    const char *secret = "hs-not-a-password-7";
    char conn[512];
    snprintf(conn, sizeof conn,
             "Driver=FreeTDS;Server=127.0.0.1;Port=%d;Database=hubstream;UID=hubstream;PWD=%s;"
             "TDS_Version=7.4;ClientCharset=UTF-8",
             ntohs(a.sin_port), secret);
    /* more than once: a failed open must leave nothing behind that breaks the next one */
    for (int i = 0; i < 3; i++) {
        char err[1024];
        memset(err, 'x', sizeof err);
        hs_store_t *st = hs_store_open(conn, err, sizeof err);
        cr_assert_null(st, "connected to a port nobody listens on");
        cr_assert(memchr(err, '\0', sizeof err), "error not terminated");
        cr_assert_not_null(strstr(err, "cannot connect to the database"), "error: %s", err);
        /* the diagnostic comes from FreeTDS itself, so the driver was loaded, not just named */
        cr_assert_not_null(strstr(err, "[FreeTDS]"), "error: %s", err);
        cr_assert_null(strstr(err, secret), "the password leaked into the error: %s", err);
    }
    close(s);
}
