/* The dialects this build knows, and how one is picked (see dialect.h). */
#include "storage/dialect.h"

#include <string.h>

static const hs_dialect_t *const dialects[] = {&hs_dialect_sqlite, &hs_dialect_postgres};

const hs_dialect_t *hs_dialect_find(const char *dbms_name)
{
    if (!dbms_name)
        return NULL;
    for (size_t i = 0; i < sizeof dialects / sizeof dialects[0]; i++) {
        const char *p = dialects[i]->dbms_prefix;
        if (strncmp(dbms_name, p, strlen(p)) == 0)
            return dialects[i];
    }
    return NULL;
}

const hs_dialect_t *hs_dialect_for_path(void)
{
    return &hs_dialect_sqlite;
}
