/*
 * Listen addresses: "host:port", "[ipv6]:port" or ":port", checked without resolving names, and
 * whether a host is a loopback address (the server refuses any other without auth). Pure.
 */
#ifndef HS_UTIL_ADDR_H
#define HS_UTIL_ADDR_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Splits a listen address: "host:port", "[ipv6]:port" (host written without the brackets) or
 * ":port" (host "0.0.0.0"). The port is decimal, 0..65535. The host is not resolved, only
 * checked for plausible characters. Returns 0, or HS_EINVAL for a malformed address or a host
 * that does not fit hostlen bytes with its NUL; on failure host and *port are left untouched.
 */
int hs_listen_parse(const char *listen, char *host, size_t hostlen, int *port);

/*
 * True if host (as hs_listen_parse() gives it; brackets are tolerated) is a loopback address:
 * 127.0.0.0/8, ::1, ::ffff:127.x.y.z or "localhost" (any case). Names are not resolved.
 */
bool hs_listen_is_loopback(const char *host);

#endif
