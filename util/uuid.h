/*
 * UUIDs: random ones (v4) for connection ids, time-ordered ones (v7) for the events a publisher
 * sent without an id. A thread-local xorshift128+ seeded from getrandom(): fast, unique, not a
 * secret (connection tokens come from getrandom() directly). Any thread.
 */
#ifndef HS_UTIL_UUID_H
#define HS_UTIL_UUID_H

#include <stdbool.h>
#include <stddef.h>

/* Writes a random (v4) UUID, 36 chars + NUL. */
void hs_uuid4(char out[37]);

/* Writes a time-ordered (v7, RFC 9562) UUID: the ids hubstream generates for events without a
 * client id. Their order keeps the (stream, event id) index append-mostly, which is most of the
 * insert cost with random ids. Increasing within a thread. */
void hs_uuid7(char out[37]);

/* The UUID of a stream name (version 8, RFC 9562: a 128-bit hash of the bytes): the `StreamId`
 * GUID of /eventstreamhub, the same for a name on every node and across restarts. */
void hs_uuid_of_name(const char *name, size_t len, char out[37]);

/* A GUID in any of the forms .NET's Guid.Parse takes ("D" with dashes, "N" without, "B" in
 * braces, "P" in parentheses; any case) into its lower-case "D" form. False for anything else. */
bool hs_uuid_parse(const char *s, size_t n, char out[37]);

#endif
