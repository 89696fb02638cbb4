/* Listen addresses (see addr.h). */
#include "util/addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "hubstream/hubstream.h"

static bool host_chars_ok(const char *h, size_t len, bool ipv6)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)h[i];
        if (isalnum(c) || c == '.' || c == '-' || c == '_')
            continue;
        if (ipv6 && (c == ':' || c == '%'))
            continue;
        return false;
    }
    return true;
}

int hs_listen_parse(const char *listen, char *host, size_t hostlen, int *port)
{
    const char *h, *colon, *p;
    size_t hlen;
    uint64_t n;

    if (!listen || !host || !port)
        return HS_EINVAL;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':')
            return HS_EINVAL;
        h = listen + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
        if (hlen == 0 || !memchr(h, ':', hlen) || !host_chars_ok(h, hlen, true))
            return HS_EINVAL; /* brackets are for IPv6 addresses only */
    } else {
        colon = strrchr(listen, ':');
        if (!colon)
            return HS_EINVAL;
        h = listen;
        hlen = (size_t)(colon - listen);
        if (!host_chars_ok(h, hlen, false))
            return HS_EINVAL; /* includes a bare IPv6 address, which needs brackets */
        if (hlen == 0) {
            h = "0.0.0.0";
            hlen = strlen(h);
        }
    }

    p = colon + 1;
    n = 0;
    if (!*p || strlen(p) > 5)
        return HS_EINVAL;
    for (const char *d = p; *d; d++) {
        if (*d < '0' || *d > '9')
            return HS_EINVAL;
        n = n * 10 + (uint64_t)(*d - '0');
    }
    if (n > 65535)
        return HS_EINVAL;
    if (hlen + 1 > hostlen)
        return HS_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)n;
    return 0;
}

bool hs_listen_is_loopback(const char *host)
{
    char buf[INET6_ADDRSTRLEN + 32];
    struct in_addr a4;
    struct in6_addr a6;
    size_t len;

    if (!host)
        return false;
    len = strlen(host);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        if (len - 2 >= sizeof buf)
            return false;
        memcpy(buf, host + 1, len - 2);
        buf[len - 2] = '\0';
        host = buf;
    }
    if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return false;
}
