/*
 * perf/lib/client.h: the client side of the benchmarks' connections (loadgen): non-blocking
 * connect and send, WebSocket framing (RFC 6455) and SignalR hub records, JSON and MessagePack
 * (the handshake and Subscribe request, splitting records, the version of a StreamItem; for
 * /eventstreamhub its Subscribe, its Completion and the events of its deliveries).
 *
 * Everything parses in place and calls back per frame piece or record: no allocation. The
 * caller owns the socket and its buffers; a callback returns false when it has given up on the
 * connection, and parsing stops there. Not a general client: no extensions, no client-side
 * fragmentation, frames up to 64 KiB - 1 out, no TLS, no HTTP beyond what the caller writes.
 */
#ifndef HS_PERF_LIB_CLIENT_H
#define HS_PERF_LIB_CLIENT_H

#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A non-blocking TCP socket (TCP_NODELAY) connecting to a, from the address src unless it is
 * NULL (its port chosen at connect time, so one source address serves many destinations).
 * Returns the socket, in progress (wait for EPOLLOUT, then bench_connected), or -1 and errno. */
int bench_connect(const struct addrinfo *a, const struct sockaddr_in *src);

/* After EPOLLOUT on a connecting socket: 0 when connected, else -1 with errno the reason. */
int bench_connected(int fd);

/* Writes what is left of p[*off..n): 1 when all is written, 0 when the socket is full, -1 on
 * an error (errno). */
int bench_send_rest(int fd, const char *p, size_t n, size_t *off);

/* Appends one masked client frame (opcode, FIN set) holding p[0..n), n < 65536, to o, which
 * must have room for n + 8 bytes; returns the frame's length. */
size_t bench_ws_frame(uint8_t *o, int opcode, const uint8_t *p, size_t n);

/* The frame being read from a server connection. Zero it for a new connection. */
typedef struct bench_ws {
    uint8_t hdr[14];
    size_t hdr_len;
    uint64_t left; /* payload bytes of the current frame still to come */
    int op;        /* its opcode */
    bool fin;      /* its FIN bit */
    uint8_t ctl[125];
    size_t ctl_len;
} bench_ws_t;

/* Payload bytes of data frames (text, binary, continuation), in order; frame_end: the last
 * bytes of a frame (then fin says whether it ended a message). */
typedef bool (*bench_ws_data_fn)(void *ctx, const uint8_t *p, size_t n, bool frame_end, bool fin);
/* One whole control frame: opcode 8 (close), 9 (ping) or 10 (pong) and its payload. */
typedef bool (*bench_ws_ctl_fn)(void *ctx, int op, const uint8_t *p, size_t n);

/* Feeds bytes from the server. Returns NULL when all were taken (or a callback gave up), else
 * what is wrong with the stream (a masked frame, RSV bits, a reserved opcode, a long or
 * fragmented control frame): the caller fails the connection with that text. */
const char *bench_ws_feed(bench_ws_t *w, const uint8_t *p, size_t n, bench_ws_data_fn data,
                          bench_ws_ctl_fn ctl, void *ctx);

/* The hub handshake request and a StreamInvocation of Subscribe(stream[, from]) (invocation id
 * "0"; from < 0 leaves the argument out: live only), as masked frames in out, which must hold
 * 512 bytes plus twice the stream name (at most 200 bytes). Returns their length. */
size_t bench_sr_hello(uint8_t *out, bool msgpack, const char *stream, long from);

/* One hub record without its framing; handshake: it is the reply to the handshake request. */
typedef bool (*bench_sr_rec_fn)(void *ctx, const uint8_t *r, size_t n, bool handshake);

/* Splits whole hub records out of [p, p + n) and calls rec for each: first the handshake reply
 * (JSON text up to 0x1e, whatever the protocol; *handshaken becomes true after it), then JSON
 * records up to 0x1e or MessagePack records behind their varint length. Returns the bytes
 * consumed: the rest is an unfinished record. Stops early if rec returns false. */
size_t bench_sr_split(const uint8_t *p, size_t n, bool msgpack, bool *handshaken,
                      bench_sr_rec_fn rec, void *ctx);

/* Record bytes in order (data-frame payloads of a hub connection): whole records are parsed
 * in place, an unfinished one is kept in carry (cap bytes, *carry_len used). Returns NULL, or
 * an error when a record does not fit in carry. */
const char *bench_sr_feed(uint8_t *carry, size_t *carry_len, size_t cap, const uint8_t *p, size_t n,
                          bool msgpack, bool *handshaken, bench_sr_rec_fn rec, void *ctx);

/* The hub message type of a record (1 Invocation, 2 StreamItem, 3 Completion, 6 Ping, 7 Close,
 * ...), or -1 when it is not one. */
int bench_sr_type(const uint8_t *r, size_t n, bool msgpack);

/* The "version" member of a StreamItem record's item (a hubstream EventRecord): JSON found by
 * its key, MessagePack by walking the record ([2, headers, invocation id, {..., "version":
 * v, ...}]). Returns 0 and *version, or -1 when the record has none. */
int bench_sr_version(const uint8_t *r, size_t n, bool msgpack, int64_t *version);

/* The result kind of a Completion record (1 an error, 2 none, 3 a result), or -1 when the record
 * is not a Completion. */
int bench_sr_completion(const uint8_t *r, size_t n, bool msgpack);

/* /eventstreamhub, the drop-in for AspNetCore.SignalR.EventStream: the hub handshake request and
 * an Invocation of Subscribe({"StreamName": stream, "SubscriberId": id, "SubscriberKey": key})
 * (invocation id "0", no From: live only) as masked frames in out, which must hold 512 bytes
 * plus the stream name (at most 200 bytes); id and key are GUID texts. Returns their length. */
size_t bench_es_hello(uint8_t *out, bool msgpack, const char *stream, const char *id,
                      const char *key);

/* One event of an /eventstreamhub delivery: its Id (the global position) and its JsonData value
 * as the record holds it (escaped once or twice: the marker needs no escaping). Returns false
 * when the caller has given up on the connection. */
typedef bool (*bench_es_event_fn)(void *ctx, int64_t id, const uint8_t *json_data, size_t n);

/* Splits an /eventstreamhub delivery, an Invocation without invocation id of target `stream`
 * with the arguments [a string holding a JSON array of the seed's PascalCase events, {}], into
 * its events and calls ev for each, in order. The events are found by their members as the
 * server writes them (System.Text.Json's order, every member a scalar or a string, so the text
 * `},{"Id":` between two events cannot occur inside one): each must begin with `{"Id":<digits>,`,
 * hold JsonData and then MetaData, and end with `"StreamName":"<stream>"`. Returns NULL, or
 * what is wrong with the record (not such an Invocation, an empty array, an event not so made). */
const char *bench_es_events(const uint8_t *r, size_t n, bool msgpack, const char *stream,
                            bench_es_event_fn ev, void *ctx);

#endif
