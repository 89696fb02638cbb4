/*
 * The error codes of include/hubstream/hubstream.h as text (hs_strerror). Knows nothing else.
 */
#include "hubstream/hubstream.h"

const char *hs_strerror(int err)
{
    switch (err) {
    case HS_OK:
        return "ok";
    case HS_EINVAL:
        return "invalid argument";
    case HS_ENOMEM:
        return "out of memory";
    case HS_ENOENT:
        return "no such stream";
    case HS_ECONFLICT:
        return "wrong expected version";
    case HS_ECLOSED:
        return "stream closed";
    case HS_EDB:
        return "database error";
    case HS_EUNAVAIL:
        return "server unavailable";
    case HS_ETOOLARGE:
        return "too large";
    case HS_EBUSY:
        return "busy";
    case HS_ESYS:
        return "system error";
    case HS_EREJECTED:
        return "rejected";
    case HS_ERESERVED:
        return "reserved stream name";
    case HS_EUNKNOWN:
        return "outcome unknown: the database connection broke during the commit";
    case HS_EUNAUTHORIZED:
        return "unauthorized";
    case HS_EFORBIDDEN:
        return "forbidden";
    default:
        return "unknown error";
    }
}
