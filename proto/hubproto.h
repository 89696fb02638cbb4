/*
 * SignalR hub protocol codec: the JSON and MessagePack wire forms of hub messages.
 *
 * In: a transport delivers bytes; hs_hubproto_next() cuts them into whole records (JSON: text
 * ending in 0x1E; MessagePack: a varint length prefix and that many bytes), and
 * hs_hubproto_parse() turns one record into an hs_hubmsg_t. The parsed form is the same for both
 * protocols: every value the hub dispatcher looks at (arguments, stream items) is JSON text, so
 * MessagePack input is transcoded to JSON here and the dispatcher only knows JSON.
 *
 * Out: encoders append whole records (terminator or length prefix included) to an hs_buf_t.
 * Values handed to the encoders are JSON text; for MessagePack they are transcoded.
 * hs_hubproto_json_to_msgpack() is also how an EventRecord is encoded once into MessagePack for
 * every MessagePack subscriber.
 *
 * Not here: the handshake state machine, dispatch, transports (server/signalr/hub.c,
 * server/net/io.c). Pure functions; any thread; no I/O. MessagePack goes through msgpack-c.
 */
#ifndef HS_HUBPROTO_H
#define HS_HUBPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef enum hs_hubfmt {
    HS_HUB_JSON = 0,
    HS_HUB_MSGPACK = 1,
} hs_hubfmt_t;

/* Hub message types (the `type` field / first array element). */
enum {
    HS_HUBMSG_INVOCATION = 1,
    HS_HUBMSG_STREAM_ITEM = 2,
    HS_HUBMSG_COMPLETION = 3,
    HS_HUBMSG_STREAM_INVOCATION = 4,
    HS_HUBMSG_CANCEL_INVOCATION = 5,
    HS_HUBMSG_PING = 6,
    HS_HUBMSG_CLOSE = 7,
    HS_HUBMSG_ACK = 8,
    HS_HUBMSG_SEQUENCE = 9,
};

#define HS_HUB_RS            0x1e /* JSON record separator */
#define HS_HUB_ID_MAX        64   /* longest invocation / stream id accepted */
#define HS_HUB_TARGET_MAX    128  /* longest method name accepted */
#define HS_HUB_STREAMIDS_MAX 16   /* most upload stream ids on one invocation */

/*
 * Finds the next whole record at buf[0..len).
 * Returns 1 with *rec / *rec_len set to the record body (JSON: without the 0x1E; MessagePack:
 * without the length prefix) and *consumed to the bytes it took including separator/prefix;
 * 0 when buf holds only part of a record (call again with more bytes);
 * HS_ETOOLARGE when the record is (or is announced to be) longer than max bytes (for JSON: no
 * 0x1E within the first max + 1 bytes);
 * HS_EINVAL for a malformed MessagePack length prefix (more than 5 bytes, or above 2^31-1).
 */
int hs_hubproto_next(hs_hubfmt_t fmt, const uint8_t *buf, size_t len, size_t max,
                     const uint8_t **rec, size_t *rec_len, size_t *consumed);

/*
 * Parses the handshake request (always JSON, the record without its 0x1E):
 * {"protocol":"json"|"messagepack"|..., "version":N}. Unknown members are ignored.
 * Returns 0 with the protocol name (NUL-terminated, truncated to cap-1) and version, or HS_EINVAL
 * when the record is not an object with a string `protocol` and an integer `version`.
 */
int hs_hubproto_parse_handshake(const uint8_t *rec, size_t len, char *protocol, size_t cap,
                                int *version);

/*
 * One parsed hub message. Spans point into the record or into the scratch buffer given to
 * hs_hubproto_parse (valid until either changes). JSON spans are valid, compact-or-not JSON text.
 */
typedef struct hs_hubmsg {
    int type; /* HS_HUBMSG_*; an unknown type is returned as is (callers ignore it) */
    /* Invocation, StreamInvocation, StreamItem, Completion, CancelInvocation */
    bool has_id;                /* invocationId present (and not nil/null) */
    char id[HS_HUB_ID_MAX + 1]; /* NUL-terminated */
    /* Invocation, StreamInvocation */
    char target[HS_HUB_TARGET_MAX + 1]; /* NUL-terminated */
    const char *args;                   /* JSON array text of the arguments */
    size_t args_len;
    uint32_t nstream_ids;
    char stream_ids[HS_HUB_STREAMIDS_MAX][HS_HUB_ID_MAX + 1];
    /* StreamItem: item; Completion: result (JSON text, NULL when absent / void) */
    const char *item;
    size_t item_len;
    /* Completion and Close: error text (unescaped, NUL-terminated in scratch), NULL if none */
    const char *error;
    /* Close */
    bool allow_reconnect;
    /* Ack, Sequence */
    int64_t sequence_id;
} hs_hubmsg_t;

/*
 * Parses one record (as cut by hs_hubproto_next) into *msg. `scratch` is reset (len = 0) and then
 * holds transcoded JSON and unescaped strings; it may grow.
 * Accepts what the official clients send: JSON members in any order with unknown members and
 * `headers` ignored; MessagePack Invocation / StreamInvocation of 5 or 6 elements, Close of 2 or
 * 3, every integer width, headers maps. A JSON invocationId must be a string; a MessagePack one
 * a string or nil (= absent). Type-specific checks: Invocation / StreamInvocation need a
 * non-empty target (at most HS_HUB_TARGET_MAX bytes) and an arguments array; StreamItem needs an
 * id and an item; Ack / Sequence need an integer sequenceId; ids longer than HS_HUB_ID_MAX are
 * refused.
 * Returns 0, HS_EINVAL with a reason in why (the connection is then closed with an error), or
 * HS_ENOMEM.
 */
int hs_hubproto_parse(hs_hubfmt_t fmt, const uint8_t *rec, size_t len, hs_hubmsg_t *msg,
                      hs_buf_t *scratch, char *why, size_t whylen);

/* ---- encoders: each appends one whole record to out; 0 or HS_ENOMEM (HS_EINVAL for a value
 * that is not valid JSON) ---- */

/* Handshake reply, always JSON: `{}` + 0x1E, or {"error":"<text>"} + 0x1E when error != NULL. */
int hs_hubproto_handshake_reply(hs_buf_t *out, const char *error);

/*
 * Completion for invocation `id`. Exactly one of: error != NULL (an error Completion),
 * result_json != NULL (a value: JSON text of result_len bytes), both NULL (void: no result).
 * JSON: {"type":3,"invocationId":"<id>","result":<v>} / ..."error":"<text>"} / no third member.
 * MessagePack: [3, {}, id, 1, "err"] / [3, {}, id, 3, value] / [3, {}, id, 2].
 */
int hs_hubproto_completion(hs_buf_t *out, hs_hubfmt_t fmt, const char *id, const char *error,
                           const char *result_json, size_t result_len);

/*
 * StreamItem for invocation `id` whose item is already encoded in the target format (JSON text
 * for JSON, a MessagePack value for MessagePack): the hot path for subscriptions, no
 * transcoding. JSON: {"type":2,"invocationId":"<id>","item":<item>}; MessagePack:
 * [2, {}, id, item].
 */
int hs_hubproto_stream_item_raw(hs_buf_t *out, hs_hubfmt_t fmt, const char *id, const uint8_t *item,
                                size_t item_len);

/*
 * Invocation without an invocationId (fire-and-forget, what `connection.on(target)` receives)
 * whose arguments are `nargs` values already encoded in the target format.
 * JSON: {"type":1,"target":"<t>","arguments":[a,b]}; MessagePack: [1, {}, nil, t, [a, b], []].
 */
int hs_hubproto_invocation_raw(hs_buf_t *out, hs_hubfmt_t fmt, const char *target,
                               const uint8_t *const *args, const size_t *arg_lens, size_t nargs);

/* Ping: {"type":6} / [6]. */
int hs_hubproto_ping(hs_buf_t *out, hs_hubfmt_t fmt);

/* Close: {"type":7} plus "error" when error != NULL and "allowReconnect":true when asked;
 * MessagePack always 3 elements: [7, error|nil, allowReconnect]. */
int hs_hubproto_close(hs_buf_t *out, hs_hubfmt_t fmt, const char *error, bool allow_reconnect);

/* Ack {"type":8,"sequenceId":n} / [8, n]; Sequence {"type":9,"sequenceId":n} / [9, n]. */
int hs_hubproto_ack(hs_buf_t *out, hs_hubfmt_t fmt, int64_t seq);
int hs_hubproto_sequence(hs_buf_t *out, hs_hubfmt_t fmt, int64_t seq);

/*
 * Encodes one JSON value (validated) as one MessagePack value, appended to out: objects → maps
 * (member order kept), arrays → arrays, strings → str (unescaped), integers that fit int64 →
 * the smallest int / uint encoding, larger ones that fit uint64 → uint64, other numbers →
 * float64, true / false / null → bool / nil. One pass that validates as it writes
 * (proto/json_mp.c). Returns 0, HS_EINVAL (not valid JSON; out as it was), HS_ENOMEM.
 */
int hs_hubproto_json_to_msgpack(const char *json, size_t len, hs_buf_t *out);

/* The MessagePack str header for n bytes (at most UINT32_MAX) into p, which has room for 5:
 * its length (the smallest of fixstr, str8, str16, str32, as msgpack-c picks). */
size_t hs_msgpack_str_header(uint8_t *p, size_t n);

/*
 * Encodes one MessagePack value as JSON text appended to out: maps need string keys (others:
 * HS_EINVAL), bin → base64 string, ext → HS_EINVAL, floats printed with enough digits to round
 * trip, NaN / infinity → HS_EINVAL. Nesting deeper than 64 → HS_EINVAL. Returns 0, HS_EINVAL,
 * HS_ENOMEM.
 */
int hs_hubproto_msgpack_to_json(const uint8_t *mp, size_t len, hs_buf_t *out);

/* The varint length prefix of a MessagePack record: writes 1-5 bytes to out, returns the count. */
size_t hs_hubproto_varint(uint8_t out[5], size_t n);

#endif
