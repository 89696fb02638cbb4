/*
 * perf/lib/client.c: non-blocking connect and send, WebSocket frames and SignalR hub records for
 * the benchmarks' client (client.h says what each function does and what this client is not).
 * No allocation, no global state: every function works on what the caller passes.
 */
#define _GNU_SOURCE
#include "client.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A non-blocking TCP socket (TCP_NODELAY) connecting to a, from the address src unless it is
 * NULL (its port chosen at connect time, so one source address serves many destinations).
 * Returns the socket, in progress (wait for EPOLLOUT, then bench_connected), or -1 and errno. */
int bench_connect(const struct addrinfo *a, const struct sockaddr_in *src)
{
    int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (src) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (const struct sockaddr *)src, sizeof(*src)))
            goto fail;
    }
    if (connect(fd, a->ai_addr, a->ai_addrlen) && errno != EINPROGRESS)
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

/* After EPOLLOUT on a connecting socket: 0 when connected, else -1 with errno the reason. */
int bench_connected(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    errno = err;
    return err ? -1 : 0;
}

/* Writes what is left of p[*off..n): 1 when all is written, 0 when the socket is full, -1 on
 * an error (errno). */
int bench_send_rest(int fd, const char *p, size_t n, size_t *off)
{
    while (*off < n) {
        ssize_t w = send(fd, p + *off, n - *off, MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        *off += (size_t)w;
    }
    return 1;
}

/* Appends one masked client frame (opcode, FIN set) holding p[0..n), n < 65536, to o, which
 * must have room for n + 8 bytes; returns the frame's length. */
size_t bench_ws_frame(uint8_t *o, int opcode, const uint8_t *p, size_t n)
{
    static const uint8_t key[4] = {0x3a, 0x91, 0x5c, 0x07};
    size_t h = 0;
    o[h++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        o[h++] = (uint8_t)(0x80 | n);
    } else {
        o[h++] = 0x80 | 126;
        o[h++] = (uint8_t)(n >> 8);
        o[h++] = (uint8_t)n;
    }
    memcpy(o + h, key, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        o[h + i] = p[i] ^ key[i & 3];
    return h + n;
}

/* Feeds bytes from the server. Returns NULL when all were taken (or a callback gave up), else
 * what is wrong with the stream: the caller fails the connection with that text. */
const char *bench_ws_feed(bench_ws_t *w, const uint8_t *p, size_t n, bench_ws_data_fn data,
                          bench_ws_ctl_fn ctl, void *ctx)
{
    while (n) {
        if (!w->left) {
            /* the header may come split over reads, also inside its extended length */
            size_t need = 2;
            for (;;) {
                if (w->hdr_len >= 2) {
                    int l7 = w->hdr[1] & 0x7f;
                    need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0);
                }
                if (!n || w->hdr_len >= need)
                    break;
                w->hdr[w->hdr_len++] = *p++;
                n--;
            }
            if (w->hdr_len < need)
                return NULL;
            if (w->hdr[1] & 0x80)
                return "the server sent a masked frame";
            if (w->hdr[0] & 0x70)
                return "the server sent a frame with RSV bits set (no extension agreed)";
            uint64_t len = w->hdr[1] & 0x7f;
            if (len == 126)
                len = (uint64_t)w->hdr[2] << 8 | w->hdr[3];
            else if (len == 127)
                for (int i = 0; i < 8; i++)
                    len = (i ? len << 8 : 0) | w->hdr[2 + i];
            w->op = w->hdr[0] & 0x0f;
            w->fin = w->hdr[0] & 0x80;
            w->hdr_len = 0;
            if (w->op >= 8) {
                if (len > 125 || !w->fin)
                    return "the server sent a control frame longer than 125 bytes or fragmented";
                if (w->op > 10)
                    return "the server sent a frame with a reserved opcode";
                w->ctl_len = 0;
            } else if (w->op > 2) {
                return "the server sent a frame with a reserved opcode";
            }
            w->left = len;
            if (!len) {
                if (!(w->op >= 8 ? ctl(ctx, w->op, w->ctl, 0) : data(ctx, p, 0, true, w->fin)))
                    return NULL;
                continue;
            }
        }
        size_t k = w->left < n ? (size_t)w->left : n;
        w->left -= k;
        if (w->op <= 2) {
            if (!data(ctx, p, k, !w->left, w->fin))
                return NULL;
        } else {
            memcpy(w->ctl + w->ctl_len, p, k);
            w->ctl_len += k;
            if (!w->left && !ctl(ctx, w->op, w->ctl, w->ctl_len))
                return NULL;
        }
        p += k;
        n -= k;
    }
    return NULL;
}

/* One MessagePack hub record, body[0..b) behind its varint length, as a binary frame in out;
 * b < 500. Returns the frame's length. */
static size_t mp_record_frame(uint8_t *out, const uint8_t *body, size_t b)
{
    uint8_t rec[512];
    size_t r = 0, len = b;
    do {
        rec[r] = (uint8_t)(len & 0x7f);
        len >>= 7;
        if (len)
            rec[r] |= 0x80;
        r++;
    } while (len);
    memcpy(rec + r, body, b);
    return bench_ws_frame(out, 2, rec, r + b);
}

/* The hub handshake request and a StreamInvocation of Subscribe(stream[, from]) (invocation id
 * "0"; from < 0 leaves the argument out: live only), as masked frames in out, which must hold
 * 512 bytes plus twice the stream name. Returns their length. */
size_t bench_sr_hello(uint8_t *out, bool msgpack, const char *stream, long from)
{
    uint8_t rec[512];
    size_t o = 0, sl = strlen(stream);
    int n = snprintf((char *)rec, sizeof(rec), "{\"protocol\":\"%s\",\"version\":1}\x1e",
                     msgpack ? "messagepack" : "json");
    o += bench_ws_frame(out + o, 1, rec, (size_t)n);
    if (!msgpack) {
        char fromarg[32] = "";
        if (from >= 0)
            snprintf(fromarg, sizeof(fromarg), ",%ld", from);
        n = snprintf((char *)rec, sizeof(rec),
                     "{\"type\":4,\"invocationId\":\"0\",\"target\":\"Subscribe\","
                     "\"arguments\":[\"%s\"%s]}\x1e",
                     stream, fromarg);
        return o + bench_ws_frame(out + o, 1, rec, (size_t)n);
    }
    /* [4, {}, "0", "Subscribe", [stream, from]] behind its varint length */
    uint8_t body[300];
    size_t b = 0;
    body[b++] = 0x95;
    body[b++] = 0x04;
    body[b++] = 0x80;
    body[b++] = 0xa1;
    body[b++] = '0';
    body[b++] = 0xa9;
    memcpy(body + b, "Subscribe", 9);
    b += 9;
    body[b++] = from >= 0 ? 0x92 : 0x91;
    body[b++] = 0xd9;
    body[b++] = (uint8_t)sl;
    memcpy(body + b, stream, sl);
    b += sl;
    if (from >= 0 && from <= 0x7f) {
        body[b++] = (uint8_t)from;
    } else if (from > 0x7f) {
        body[b++] = 0xd3; /* int 64 */
        for (int i = 7; i >= 0; i--)
            body[b++] = (uint8_t)((uint64_t)from >> (8 * i));
    }
    return o + mp_record_frame(out + o, body, b);
}

/* Splits whole hub records out of [p, p + n) and calls rec for each: first the handshake reply
 * (JSON text up to 0x1e, whatever the protocol; *handshaken becomes true after it), then JSON
 * records up to 0x1e or MessagePack records behind their varint length. Returns the bytes
 * consumed: the rest is an unfinished record. Stops early if rec returns false. */
size_t bench_sr_split(const uint8_t *p, size_t n, bool msgpack, bool *handshaken,
                      bench_sr_rec_fn rec, void *ctx)
{
    size_t off = 0;
    while (off < n) {
        if (!*handshaken || !msgpack) {
            const uint8_t *rs = memchr(p + off, 0x1e, n - off);
            if (!rs)
                break;
            size_t len = (size_t)(rs - (p + off));
            bool hs = !*handshaken;
            *handshaken = true;
            if (!rec(ctx, p + off, len, hs))
                return n;
            off += len + 1;
            continue;
        }
        uint64_t len = 0;
        size_t k = 0;
        bool whole = false;
        while (off + k < n && k < 5) {
            len |= (uint64_t)(p[off + k] & 0x7f) << (7 * k);
            if (!(p[off + k++] & 0x80)) {
                whole = true;
                break;
            }
        }
        if (!whole || n - off - k < len)
            break;
        if (!rec(ctx, p + off + k, (size_t)len, false))
            return n;
        off += k + (size_t)len;
    }
    return off;
}

/* Record bytes in order (data-frame payloads of a hub connection): whole records are parsed
 * in place, an unfinished one is kept in carry (cap bytes, *carry_len used). Returns NULL, or
 * an error when a record does not fit in carry. */
const char *bench_sr_feed(uint8_t *carry, size_t *carry_len, size_t cap, const uint8_t *p, size_t n,
                          bool msgpack, bool *handshaken, bench_sr_rec_fn rec, void *ctx)
{
    if (!*carry_len) {
        size_t used = bench_sr_split(p, n, msgpack, handshaken, rec, ctx);
        p += used;
        n -= used;
    }
    while (n) {
        size_t take = cap - *carry_len < n ? cap - *carry_len : n;
        memcpy(carry + *carry_len, p, take);
        *carry_len += take;
        p += take;
        n -= take;
        size_t used = bench_sr_split(carry, *carry_len, msgpack, handshaken, rec, ctx);
        if (!used && *carry_len == cap)
            return "a record larger than the client's buffer";
        memmove(carry, carry + used, *carry_len - used);
        *carry_len -= used;
    }
    return NULL;
}

int bench_sr_type(const uint8_t *r, size_t n, bool msgpack)
{
    if (!msgpack)
        return n >= 9 && memcmp(r, "{\"type\":", 8) == 0 && r[8] >= '0' && r[8] <= '9' ? r[8] - '0'
                                                                                       : -1;
    return n >= 2 && (r[0] & 0xf0) == 0x90 && r[1] <= 0x7f ? r[1] : -1;
}

/* A k-byte big-endian length at *pp, which it advances past. */
static size_t be_len(const uint8_t **pp, int k)
{
    size_t v = 0;
    for (int i = 0; i < k; i++)
        v = v << 8 | (*pp)[i];
    *pp += k;
    return v;
}

/* Skips one MessagePack value; NULL if it does not fit before end. */
static const uint8_t *mp_skip(const uint8_t *p, const uint8_t *end, int depth)
{
    if (p >= end || depth > 32)
        return NULL;
    uint8_t c = *p++;
    size_t len = 0, count = 0;
    size_t ext = 0; /* bytes of a length field before the value */
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
        return p;
    if ((c & 0xe0) == 0xa0) {
        len = c & 0x1f;
    } else if ((c & 0xf0) == 0x90) {
        count = c & 0x0f;
    } else if ((c & 0xf0) == 0x80) {
        count = (size_t)(c & 0x0f) * 2;
    } else {
        switch (c) {
        case 0xcc:
        case 0xd0:
            len = 1;
            break;
        case 0xcd:
        case 0xd1:
            len = 2;
            break;
        case 0xca:
        case 0xce:
        case 0xd2:
            len = 4;
            break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
            len = 8;
            break;
        case 0xd9:
        case 0xc4:
            ext = 1;
            break;
        case 0xda:
        case 0xc5:
        case 0xdc:
        case 0xde:
            ext = 2;
            break;
        case 0xdb:
        case 0xc6:
        case 0xdd:
        case 0xdf:
            ext = 4;
            break;
        default:
            return NULL; /* ext types: never sent here */
        }
        if (ext) {
            if ((size_t)(end - p) < ext)
                return NULL;
            size_t v = be_len(&p, (int)ext);
            if (c == 0xdc || c == 0xdd)
                count = v;
            else if (c == 0xde || c == 0xdf)
                count = v * 2;
            else
                len = v;
        }
    }
    if (count) {
        for (size_t i = 0; i < count && p; i++)
            p = mp_skip(p, end, depth + 1);
        return p;
    }
    if ((size_t)(end - p) < len)
        return NULL;
    return p + len;
}

/* A MessagePack integer at p (positive fixint, uint 8-64, int 8-64 when not negative). */
static int mp_int(const uint8_t *p, const uint8_t *end, int64_t *v)
{
    if (p >= end)
        return -1;
    if (*p <= 0x7f) {
        *v = *p;
        return 0;
    }
    int k;
    if (*p >= 0xcc && *p <= 0xcf)
        k = 1 << (*p - 0xcc);
    else if (*p >= 0xd0 && *p <= 0xd3)
        k = 1 << (*p - 0xd0);
    else
        return -1;
    if (end - p <= k)
        return -1;
    uint64_t u = 0;
    for (int j = 1; j <= k; j++)
        u = u << 8 | p[j];
    if (u > INT64_MAX)
        return -1;
    *v = (int64_t)u;
    return 0;
}

int bench_sr_version(const uint8_t *r, size_t n, bool msgpack, int64_t *version)
{
    if (!msgpack) {
        const uint8_t *v = memmem(r, n, "\"version\":", 10);
        if (!v || v + 10 >= r + n || v[10] < '0' || v[10] > '9')
            return -1;
        int64_t id = 0;
        for (v += 10; v < r + n && *v >= '0' && *v <= '9'; v++)
            id = id * 10 + (*v - '0');
        *version = id;
        return 0;
    }
    const uint8_t *p = r, *end = r + n;
    if (n < 2 || p[0] != 0x94 || p[1] != 0x02)
        return -1;
    p = mp_skip(p + 2, end, 0);        /* headers */
    p = p ? mp_skip(p, end, 0) : NULL; /* invocation id */
    size_t count = 0;
    if (p && p < end && (*p & 0xf0) == 0x80) {
        count = *p++ & 0x0f;
    } else if (p && end - p >= 3 && *p == 0xde) {
        count = (size_t)p[1] << 8 | p[2];
        p += 3;
    } else {
        return -1;
    }
    for (size_t i = 0; i < count && p; i++) {
        if (end - p >= 8 && p[0] == 0xa7 && memcmp(p + 1, "version", 7) == 0)
            return mp_int(p + 8, end, version);
        p = mp_skip(p, end, 0);
        p = p ? mp_skip(p, end, 0) : NULL;
    }
    return -1;
}

int bench_sr_completion(const uint8_t *r, size_t n, bool msgpack)
{
    if (bench_sr_type(r, n, msgpack) != 3)
        return -1;
    if (!msgpack) {
        /* the record's own members: inside a string a quote would be escaped */
        return memmem(r, n, "\"error\":", 8) ? 1 : memmem(r, n, "\"result\":", 9) ? 3 : 2;
    }
    /* [3, headers, invocation id, result kind, result?] */
    const uint8_t *p = mp_skip(r + 2, r + n, 0);
    p = p ? mp_skip(p, r + n, 0) : NULL;
    return p && p < r + n && *p >= 1 && *p <= 3 ? *p : -1;
}

/* Appends a MessagePack str holding s[0..n), n < 256, at body + *b. */
static void mp_put_str(uint8_t *body, size_t *b, const char *s, size_t n)
{
    if (n < 32) {
        body[(*b)++] = (uint8_t)(0xa0 | n);
    } else {
        body[(*b)++] = 0xd9;
        body[(*b)++] = (uint8_t)n;
    }
    memcpy(body + *b, s, n);
    *b += n;
}

size_t bench_es_hello(uint8_t *out, bool msgpack, const char *stream, const char *id,
                      const char *key)
{
    uint8_t rec[512];
    size_t o = 0;
    int n = snprintf((char *)rec, sizeof(rec), "{\"protocol\":\"%s\",\"version\":1}\x1e",
                     msgpack ? "messagepack" : "json");
    o += bench_ws_frame(out + o, 1, rec, (size_t)n);
    if (!msgpack) {
        n = snprintf((char *)rec, sizeof(rec),
                     "{\"type\":1,\"invocationId\":\"0\",\"target\":\"Subscribe\","
                     "\"arguments\":[{\"StreamName\":\"%s\",\"SubscriberId\":\"%s\","
                     "\"SubscriberKey\":\"%s\"}]}\x1e",
                     stream, id, key);
        return o + bench_ws_frame(out + o, 1, rec, (size_t)n);
    }
    /* [1, {}, "0", "Subscribe", [{StreamName, SubscriberId, SubscriberKey}]] */
    uint8_t body[500];
    size_t b = 0;
    body[b++] = 0x95;
    body[b++] = 0x01;
    body[b++] = 0x80;
    mp_put_str(body, &b, "0", 1);
    mp_put_str(body, &b, "Subscribe", 9);
    body[b++] = 0x91;
    body[b++] = 0x83;
    mp_put_str(body, &b, "StreamName", 10);
    mp_put_str(body, &b, stream, strlen(stream));
    mp_put_str(body, &b, "SubscriberId", 12);
    mp_put_str(body, &b, id, strlen(id));
    mp_put_str(body, &b, "SubscriberKey", 13);
    mp_put_str(body, &b, key, strlen(key));
    return o + mp_record_frame(out + o, body, b);
}

/* A MessagePack str at *p (fixstr, str 8, 16 or 32) that fits before end: its bytes and *len,
 * *p moved past it; NULL when there is none. */
static const uint8_t *mp_str(const uint8_t **p, const uint8_t *end, size_t *len)
{
    const uint8_t *q = *p;
    if (q >= end)
        return NULL;
    uint8_t c = *q++;
    int k = c == 0xd9 ? 1 : c == 0xda ? 2 : c == 0xdb ? 4 : 0;
    if ((c & 0xe0) == 0xa0)
        *len = c & 0x1f;
    else if (k && end - q >= k)
        *len = be_len(&q, k);
    else
        return NULL;
    if ((size_t)(end - q) < *len)
        return NULL;
    *p = q + *len;
    return q;
}

const char *bench_es_events(const uint8_t *r, size_t n, bool msgpack, const char *stream,
                            bench_es_event_fn ev, void *ctx)
{
    /* the array text: [t, te); in JSON te is found at its last event, not in a pass of its own */
    const uint8_t *end = r + n, *t, *te = NULL;
    size_t sl = strlen(stream), len;
    if (msgpack) {
        /* [1, headers, nil, target, [text, {}], []] */
        const uint8_t *p = r;
        if (n < 3 || p[0] != 0x96 || p[1] != 0x01)
            return "a delivery that is not an Invocation of six members";
        p = mp_skip(p + 2, end, 0);
        if (!p || p >= end || *p++ != 0xc0)
            return "a delivery with an invocation id";
        const uint8_t *tg = mp_str(&p, end, &len);
        if (!tg || len != sl || memcmp(tg, stream, sl) != 0)
            return "an Invocation of another target than the stream";
        if (p >= end || *p++ != 0x92 || !(t = mp_str(&p, end, &len)) || end - p != 2 ||
            p[0] != 0x80 || p[1] != 0x90)
            return "an Invocation whose arguments are not [text, {}] (and no stream ids)";
        te = t + len;
        if (len < 2 || te[-2] != '}' || te[-1] != ']')
            return "a delivery whose text is not an array of events";
    } else {
        /* {"type":1,"target":"<stream>","arguments":["<text>",{}]}: the record's own members
         * are found by their names, since inside the text every quote is escaped; so is the
         * text's end, `}]",{}]` */
        const uint8_t *p = memmem(r, n, "\"arguments\":[\"", 14);
        if (!p)
            return "an Invocation whose arguments are not [text, {}]";
        t = p + 14;
        p = memmem(r, (size_t)(t - r), "\"target\":\"", 10);
        if (!p || (size_t)(end - p) < 11 + sl || memcmp(p + 10, stream, sl) != 0 ||
            p[10 + sl] != '"')
            return "an Invocation of another target than the stream";
        if (memmem(r, (size_t)(t - r), "\"invocationId\":", 15))
            return "a delivery with an invocation id";
    }
    /* the members' quotes as the text shows them: raw in MessagePack, escaped in JSON */
    const char *open = msgpack ? "{\"Id\":" : "{\\\"Id\\\":";
    const char *sep = msgpack ? "},{\"Id\":" : "},{\\\"Id\\\":";
    const char *jd = msgpack ? "\"JsonData\":" : "\\\"JsonData\\\":";
    const char *md = msgpack ? ",\"MetaData\":" : ",\\\"MetaData\\\":";
    char tail[260];
    int tl = snprintf(tail, sizeof(tail),
                      msgpack ? "\"StreamName\":\"%s\"" : "\\\"StreamName\\\":\\\"%s\\\"", stream);
    size_t ol = strlen(open), sepl = strlen(sep), jdl = strlen(jd), mdl = strlen(md);
    if (tl < 0 || (size_t)tl >= sizeof(tail))
        return "a stream name too long for this client";
    if ((size_t)((te ? te : end) - t) < 2 || t[0] != '[' || t[1] == ']')
        return "a delivery whose text is not a non-empty array of events";
    const uint8_t *o = t + 1; /* an event's opening brace */
    while (o) {
        if ((size_t)(end - o) < ol || memcmp(o, open, ol) != 0)
            return "an event that does not begin with its Id";
        /* its closing brace: the next event's separator, else (the last) the text's end */
        const uint8_t *d = o + ol, *s = memmem(d, (size_t)((te ? te - 1 : end) - d), sep, sepl);
        if (!s && !te) {
            te = memmem(d, (size_t)(end - d), "}]\",{}]", 7);
            if (!te)
                return "an Invocation whose arguments are not [text, {}]";
            te += 2;
            if (memmem(te, (size_t)(end - te), "\"invocationId\":", 15))
                return "a delivery with an invocation id";
        }
        const uint8_t *close = s ? s : te - 2;
        int64_t id = 0;
        const uint8_t *dig = d;
        while (d < close && *d >= '0' && *d <= '9' && d - dig < 18)
            id = id * 10 + (*d++ - '0');
        if (d == dig || d >= close || *d != ',')
            return "an event whose Id is not a number";
        if ((size_t)(close - d) < (size_t)tl || memcmp(close - tl, tail, (size_t)tl) != 0)
            return "an event that does not end with the stream's StreamName";
        const uint8_t *j = memmem(d, (size_t)(close - d), jd, jdl);
        const uint8_t *m = j ? memmem(j + jdl, (size_t)(close - j) - jdl, md, mdl) : NULL;
        if (!m)
            return "an event without JsonData followed by MetaData";
        if (!ev(ctx, id, j + jdl, (size_t)(m - j) - jdl))
            return NULL;
        o = s ? s + sepl - ol : NULL;
    }
    return NULL;
}
