/*
 * Shared between the SignalR hub protocol's files (hubproto.c, hubproto_json.c,
 * hubproto_msgpack.c); not part of hubproto.h's interface.
 */
#ifndef HS_PROTO_HUBPROTO_IMPL_H
#define HS_PROTO_HUBPROTO_IMPL_H

#include <msgpack.h>

#include "proto/hubproto.h"

/* Appends a C string / a JSON-quoted string. 0 or HS_ENOMEM. */
int hs_hp_put_str(hs_buf_t *b, const char *s);
int hs_hp_put_quoted(hs_buf_t *b, const char *s, size_t n);
/* msgpack-c's write callback into an hs_buf_t (data). */
int hs_hp_pk_write(void *data, const char *buf, size_t len);
/* Sets a record's invocation id (at most HS_HUB_ID_MAX bytes). 0 or HS_EINVAL with why. */
int hs_hp_set_id(hs_hubmsg_t *m, const char *s, size_t n, char *why, size_t whylen);
/* The fields a record of its type must have. 0 or HS_EINVAL with why. */
int hs_hp_check(hs_hubmsg_t *m, bool has_target, bool has_args, bool has_item, bool has_seq,
                char *why, size_t whylen);
/* One record of each format into m (see hs_hubproto_parse). */
int hs_hp_parse_json(const uint8_t *rec, size_t len, hs_hubmsg_t *m, hs_buf_t *scratch, char *why,
                     size_t whylen);
int hs_hp_parse_mp(const uint8_t *rec, size_t len, hs_hubmsg_t *m, hs_buf_t *scratch, char *why,
                   size_t whylen);

#endif
