/* The dialects this build knows, and how one is picked (see dialect.h). */
#include "storage/dialect.h"

#include <string.h>

static const hs_dialect_t *const dialects[] = {&hs_dialect_sqlite, &hs_dialect_postgres,
                                               &hs_dialect_mssql, NULL};

const hs_dialect_t *const *hs_dialects(void)
{
    return dialects;
}

const hs_dialect_t *hs_dialect_find(const char *dbms_name)
{
    if (!dbms_name)
        return NULL;
    for (const hs_dialect_t *const *d = dialects; *d; d++) {
        const char *p = (*d)->dbms_prefix;
        if (strncmp(dbms_name, p, strlen(p)) == 0)
            return *d;
    }
    return NULL;
}

const hs_dialect_t *hs_dialect_for_path(void)
{
    return &hs_dialect_sqlite;
}
