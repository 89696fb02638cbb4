/*
 * Reading ODBC connection strings ("Driver=...;Server=...;Pwd={a;b}"): keys are matched in any
 * case, values may be braced (braces removed, ';' allowed inside).
 */
#ifndef HS_CONNSTR_H
#define HS_CONNSTR_H

#include <stddef.h>

/* The value of `key` in cs into out (NUL-terminated): its length, or -1 when the key is absent,
 * the string is malformed or the value does not fit in cap bytes. */
int hs_conn_value(const char *cs, const char *key, char *out, size_t cap);

#endif
