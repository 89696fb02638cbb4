/* Reading ODBC connection strings (connstr.h). */
#include "util/connstr.h"

#include <string.h>
#include <strings.h>

int hs_conn_value(const char *cs, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    const char *p = cs;
    while (p && *p) {
        while (*p == ';' || *p == ' ')
            p++;
        if (!*p)
            break;
        const char *eq = strchr(p, '=');
        if (!eq)
            return -1;
        const char *k_end = eq;
        while (k_end > p && k_end[-1] == ' ')
            k_end--;
        const char *v = eq + 1, *v_end;
        if (*v == '{') {
            v++;
            v_end = strchr(v, '}');
            if (!v_end)
                return -1;
        } else {
            v_end = v + strcspn(v, ";");
        }
        if ((size_t)(k_end - p) == klen && !strncasecmp(p, key, klen)) {
            size_t n = (size_t)(v_end - v);
            if (n >= cap)
                return -1;
            memcpy(out, v, n);
            out[n] = '\0';
            return (int)n;
        }
        p = *v_end == '}' ? v_end + 1 : v_end;
    }
    return -1;
}
