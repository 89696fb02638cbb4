#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

The seeds are committed; this script is how they were made, to be re-run after editing it:
    tests/fuzz/make_corpus.py          # rewrites tests/fuzz/corpus/*/seed-* (other files kept)
Each seed is named seed-<nn>-<what>; every one is under 4 KB. Python 3 standard library only
(the MessagePack encoder below covers what the seeds need).
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RS = b"\x1e"


# ---- a minimal MessagePack encoder (smallest encodings, as msgpack-c packs) ----

class F32(float):
    """A float to encode as float32."""


class Bin(bytes):
    """Bytes to encode as bin (plain bytes are str)."""


def mp(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v <= 0x7F:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if v >= 0:
            for code, fmt, hi in ((0xCC, ">B", 0xFF), (0xCD, ">H", 0xFFFF),
                                  (0xCE, ">I", 0xFFFFFFFF), (0xCF, ">Q", 2**64 - 1)):
                if v <= hi:
                    return bytes([code]) + struct.pack(fmt, v)
        for code, fmt, lo in ((0xD0, ">b", -128), (0xD1, ">h", -32768),
                              (0xD2, ">i", -2**31), (0xD3, ">q", -2**63)):
            if v >= lo:
                return bytes([code]) + struct.pack(fmt, v)
        raise ValueError(v)
    if isinstance(v, F32):
        return b"\xca" + struct.pack(">f", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, Bin):
        n = len(v)
        if n < 256:
            return b"\xc4" + bytes([n]) + v
        return b"\xc5" + struct.pack(">H", n) + v
    if isinstance(v, (str, bytes)):
        b = v.encode() if isinstance(v, str) else v
        n = len(b)
        if n < 32:
            return bytes([0xA0 | n]) + b
        if n < 256:
            return b"\xd9" + bytes([n]) + b
        return b"\xda" + struct.pack(">H", n) + b
    if isinstance(v, (list, tuple)):
        n = len(v)
        head = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
        return head + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        n = len(v)
        head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
        return head + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(type(v))


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def rec(v):
    """One length-prefixed MessagePack record."""
    b = v if isinstance(v, bytes) and not isinstance(v, Bin) else mp(v)
    return varint(len(b)) + b


# ---- seeds ----

def json_seeds():
    s = {}
    s["empty-object"] = b"{}"
    s["empty-array"] = b"[]"
    s["scalars"] = b'[true,false,null,0,-0,1,-1,0.5,-1.25e-3,1E+2,"",""]'
    s["int64-edges"] = (b"[9223372036854775807,-9223372036854775808,9223372036854775808,"
                        b"-9223372036854775809,18446744073709551616,1e400,-0.0]")
    s["string-escapes"] = b'"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0000\\u001f\\u00e9\\u20AC"'
    s["surrogates"] = b'["\\ud834\\udd1e","\\ud800","\\udc00x","\\ud800\\u0041","\\uDBFF\\uDFFF"]'
    s["utf8"] = '["é€𝄞","\u00ff\u07ff\u0800\uffff","\U00010000\U0010ffff"]'.encode()
    s["whitespace"] = b' \t\r\n{ "a" :\n[ 1 ,\t2 ] , "b" : { } }\r\n '
    s["event"] = (b'{"type":"order.created","id":"o-1","data":{"id":1,"items":[{"sku":"a",'
                  b'"qty":2}],"total":12.5,"note":null},"metadata":{"trace":"abc"}}')
    s["dup-keys"] = b'{"a":1,"A":2,"a":3,"\\u0061":4}'
    s["nested-64"] = b"[" * 64 + b"]" * 64
    s["nested-65"] = b"[" * 65 + b"]" * 65
    s["nested-objects"] = b'{"a":' * 20 + b"{}" + b"}" * 20
    s["long-string"] = b'"' + b"x" * 300 + b'"'
    s["bad-trailing-comma"] = b"[1,2,]"
    s["bad-control"] = b'"a\x01b"'
    s["bad-escape"] = b'"\\x"'
    s["bad-unicode-escape"] = b'"\\u12g4"'
    s["bad-utf8"] = b'"\xc0\x80 \xed\xa0\x80 \xf4\x90\x80\x80 \xff"'
    s["bad-number"] = b"[01,-,1.,1e,.5,+1]"
    s["bad-trailing"] = b"{} {}"
    s["bad-unterminated"] = b'{"a":"b'
    s["bad-literal"] = b"[tru,nul,fals]"
    s["empty"] = b""
    s["only-space"] = b"   "
    s["raw-binary"] = bytes(range(256))
    return s


def codec_seeds():
    s = {}
    s["one-event"] = b'{"type":"created","data":{"id":1}}'
    s["array"] = (b'[{"type":"a","data":1},{"type":"b","data":"x","id":"e-2"},'
                  b'{"type":"c","metadata":{"m":true}}]')
    s["all-fields"] = (b'{"id":"7f0c","type":"order.shipped","data":{"n":[1,2,3]},'
                       b'"metadata":{"user":"u1","trace":"t"}}')
    s["nulls"] = b'{"type":"t","data":null,"metadata":null,"id":null}'
    s["case-keys"] = b'{"TYPE":"t","Data":[1, 2],"MetaData":{},"ID":"x"}'
    s["escaped-type"] = b'{"type":"a\\u00e9\\"b\\\\","data":" spaced  out "}'
    s["whitespace"] = b'\n[ { "type" : "t" , "data" : { "a" : [ 1 , 2 ] } } ]\n'
    s["type-200"] = b'{"type":"' + b"t" * 200 + b'"}'
    s["type-201"] = b'{"type":"' + b"t" * 201 + b'"}'
    s["id-100"] = b'{"type":"t","id":"' + b"i" * 100 + b'"}'
    s["id-101"] = b'{"type":"t","id":"' + b"i" * 101 + b'"}'
    s["bad-empty-type"] = b'{"type":""}'
    s["bad-control-type"] = b'{"type":"a\\u0001"}'
    s["bad-type-number"] = b'{"type":1}'
    s["bad-no-type"] = b'{"data":1}'
    s["bad-metadata"] = b'{"type":"t","metadata":[1]}'
    s["bad-id-number"] = b'{"type":"t","id":5}'
    s["bad-empty-array"] = b"[]"
    s["bad-scalar"] = b'"event"'
    s["bad-array-item"] = b'[{"type":"t"},3]'
    s["bad-json"] = b'{"type":"t",}'
    s["name-plain"] = b"orders-2024"
    s["name-all"] = b"$all"
    s["name-slash"] = b"a/b"
    s["name-quote"] = b'a"b\\c'
    s["name-utf8"] = "flux-é€𝄞".encode()
    s["name-bad-utf8"] = b"ab\xff"
    s["name-200"] = b"n" * 200
    s["name-201"] = b"n" * 201
    return s


HS_JSON = b'{"protocol":"json","version":1}' + RS


def hub_json_seeds():
    s = {}
    j = lambda *msgs: HS_JSON + b"".join(m + RS for m in msgs)
    s["handshake"] = HS_JSON
    s["handshake-v2-extra"] = b'{"version":2,"protocol":"json","x":[1]}' + RS
    s["handshake-messagepack"] = b'{"protocol":"messagepack","version":1}' + RS
    s["handshake-bad"] = b'{"protocol":1,"version":"1"}' + RS + b'{"type":6}' + RS
    s["handshake-partial"] = b'{"protocol":"json","vers'
    s["invocation"] = j(b'{"type":1,"invocationId":"0","target":"Publish","arguments":'
                        b'["orders",{"type":"created","data":{"id":1}}]}')
    s["invocation-nonblocking"] = j(b'{"type":1,"target":"Send","arguments":[1,"a",null]}')
    s["invocation-streamids"] = j(b'{"type":1,"invocationId":"2","target":"Upload",'
                                  b'"arguments":[],"streamIds":["s1","s2"]}',
                                  b'{"type":2,"invocationId":"s1","item":{"v":1}}',
                                  b'{"type":3,"invocationId":"s1"}')
    s["stream-invocation"] = j(b'{"type":4,"invocationId":"1","target":"Subscribe",'
                               b'"arguments":["orders",0],"streamIds":null}')
    s["cancel"] = j(b'{"type":4,"invocationId":"1","target":"Subscribe","arguments":["s"]}',
                    b'{"type":5,"invocationId":"1"}')
    s["ping"] = j(b'{"type":6}', b'{"type":6}')
    s["close"] = j(b'{"type":7,"error":"bye \\"now\\" \\u00e9","allowReconnect":true}')
    s["close-plain"] = j(b'{"type":7}')
    s["ack-sequence"] = j(b'{"type":8,"sequenceId":5}', b'{"type":9,"sequenceId":1}',
                          b'{"type":8,"sequenceId":-9223372036854775808}')
    s["completion"] = j(b'{"type":3,"invocationId":"9","result":{"a":[1,2]}}',
                        b'{"type":3,"invocationId":"9","result":null}',
                        b'{"type":3,"invocationId":"9","error":"failed"}')
    s["headers-unknown"] = j(b'{"headers":{"k":"v"},"type":1,"target":"T","arguments":[],'
                             b'"extra":[{"deep":true}],"invocationId":null}')
    s["whitespace"] = j(b' { "type" : 1 , "target" : "T" , "arguments" : [ 1 , 2 ] } ')
    s["id-64"] = j(b'{"type":5,"invocationId":"' + b"i" * 64 + b'"}')
    s["id-65"] = j(b'{"type":5,"invocationId":"' + b"i" * 65 + b'"}')
    s["target-escaped"] = j(b'{"type":1,"target":"a\\u00e9\\n","arguments":[]}')
    s["bad-type"] = j(b'{"type":"1"}', b'{"type":1.5}', b'{"type":6}')
    s["bad-no-args"] = j(b'{"type":1,"target":"T"}')
    s["bad-stream-noid"] = j(b'{"type":4,"target":"T","arguments":[]}')
    s["bad-nul-id"] = j(b'{"type":5,"invocationId":"a\\u0000b"}')
    s["bad-json"] = j(b'{"type":6,}', b"[6]")
    s["unknown-type"] = j(b'{"type":42,"x":1}', b'{"type":-1}')
    s["numbers"] = j(b'{"type":1,"target":"N","arguments":[1e400,-0,0.1,18446744073709551615,'
                     b'-9223372036854775809,1.5e-320]}')
    return s


HS_MP = b'{"protocol":"messagepack","version":1}' + RS


def hub_mp_seeds():
    s = {}
    m = lambda *msgs: HS_MP + b"".join(rec(x) for x in msgs)
    s["handshake"] = HS_MP
    s["invocation"] = m([1, {}, "0", "Publish", ["orders", {"type": "created", "data": {"id": 1}}]])
    s["invocation-6"] = m([1, {}, None, "Send", [1, "a", None, True], []])
    s["invocation-streamids"] = m([1, {}, "2", "Upload", [], ["s1", "s2"]],
                                  [2, {}, "s1", {"v": 1}], [3, {}, "s1", 2])
    s["stream-invocation"] = m([4, {}, "1", "Subscribe", ["orders", 0]])
    s["cancel"] = m([4, {}, "1", "Subscribe", ["s"], None], [5, {}, "1"])
    s["ping"] = m([6], [6])
    s["close"] = m([7, "bye", True], [7, None], [7, None, False])
    s["ack-sequence"] = m([8, 5], [9, 1], [8, -2**63], [9, 2**64 - 1])
    s["completion"] = m([3, {}, "9", 3, {"a": [1, 2]}], [3, {}, "9", 2],
                        [3, {}, "9", 1, "failed"], [3, {}, "9", 3, None])
    s["headers"] = m([1, {"k": "v", "t": "x"}, "3", "T", [{}]], [5, {"a": "b"}, "3"])
    s["int-widths"] = m([1, {}, "4", "N", [0, 127, 128, 255, 256, 65535, 65536, 2**32, 2**63,
                                           2**64 - 1, -1, -32, -33, -128, -129, -2**15 - 1,
                                           -2**31 - 1, -2**63]])
    s["wide-type"] = m(b"\x91\xcd\x00\x06", b"\x91\xd3\x00\x00\x00\x00\x00\x00\x00\x06",
                       b"\x92\xce\x00\x00\x00\x08\xd0\x05")
    s["floats"] = m([1, {}, "5", "F", [0.5, -0.0, 1e300, 5e-324, F32(0.1), F32(-1.5), 2.0,
                                       123456789012345.0, 1e17, 1.0e-5]])
    s["bin-str"] = m([1, {}, "6", "B", [Bin(b""), Bin(b"a"), Bin(b"ab"), Bin(b"abc"),
                                        Bin(bytes(range(256))), "é€𝄞", "\x00\x1f\"\\", "x" * 40,
                                        "y" * 300]])
    s["nested"] = m([1, {}, "7", "D", [[[[{"a": {"b": [None]}}]]]]])
    s["nested-32"] = HS_MP + rec(b"\x95\x01\x80\xc0\xa1\x53" + b"\x91" * 31 + b"\xc0")
    s["nested-33"] = HS_MP + rec(b"\x95\x01\x80\xc0\xa1\x53" + b"\x91" * 32 + b"\xc0")
    s["long-prefix"] = HS_MP + b"\x83\x80\x80\x00" + b"\x00" * 16
    s["bad-prefix"] = HS_MP + b"\xff\xff\xff\xff\x0f"
    s["bad-huge-array"] = HS_MP + rec(b"\x95\x01\x80\xc0\xa1\x53\xdd\xff\xff\xff\xff")
    s["bad-ext"] = HS_MP + rec(b"\x95\x01\x80\xa1\x38\xa1\x45\x91\xd4\x01\x02")
    s["bad-map-key"] = m(b"\x95\x01\x80\xc0\xa1\x54\x91\x81\x01\x02")
    s["bad-utf8"] = m(b"\x93\x05\x80\xa2\xc3\x28")
    s["bad-nul-target"] = m([1, {}, "9", "a\x00b", []])
    s["bad-shapes"] = m([], ["x"], [1], [1, []], [2, {}, "i"], [3, {}, "i", 4], [8], [7, 1])
    s["unknown-type"] = m([42, "x"], [-5])
    s["value-only"] = mp({"a": [1, 2.5, None, True, "s", Bin(b"\x00\xff")], "b": {"c": -0.0}})
    s["value-float32"] = mp([F32(3.25), F32(1e-40), 0.1, -1e-300])
    s["value-nan"] = b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00"
    s["value-fixext"] = b"\xd6\x01\x00\x00\x00\x00"
    s["no-handshake"] = rec([6]) + rec([8, 1]) + rec([1, {}, "0", "X", [1]])
    return s


def config_seeds():
    a = lambda *args: b"\x00".join(x.encode() if isinstance(x, str) else x for x in args)
    s = {}
    s["argv-listen-db"] = a("--listen", "127.0.0.1:5000", "--db", "events.db")
    s["argv-eq"] = a("--listen=[::1]:8080", "--max-body=4MiB", "--max-event=256k",
                     "--log-level=warning", "--io_threads=4", "--Reader-Threads=3")
    s["argv-bools"] = a("--allow-anonymous", "--hub-stateful-reconnect=off",
                        "--allow-anonymous=yes")
    s["argv-bool-word"] = a("--allow-anonymous", "false")
    s["argv-all-ints"] = a("--fanout-workers", "0", "--max-connections", "10000000",
                           "--max-subscriptions=1", "--sse-ping-ms=86400000", "--sse-retry-ms=1",
                           "--stall-timeout-ms=5", "--writer-batch=1000000",
                           "--hub-keepalive-ms=1", "--hub-client-timeout-ms=2",
                           "--hub-handshake-timeout-ms=3", "--hub-disconnect-timeout-ms=4",
                           "--hub-longpoll-ms=5", "--hub-stateful-buffer=1g",
                           "--outbox-bytes=16 MiB", "--max-message=1gib")
    s["argv-retention"] = a("--retention", "job-*:max-age=1h;log-*:max-count=10000;*:max-age=7d")
    s["argv-help"] = a("--help", "--bogus=1")
    s["argv-h"] = a("-h")
    s["argv-version"] = a("--version", "--listen", "x")
    s["argv-config"] = (a("--config", "ignored", "--listen", ":0") +
                        b"\nlisten = 127.0.0.1:1\n")
    s["argv-config-eq"] = a("--CONFIG=x") + b"\ndb = x\n"
    s["argv-bad-flag"] = a("--lisen", "1:1")
    s["argv-bad-values"] = a("--max-body=0", "--io-threads=-1", "--log-level=loud")
    s["argv-bad-range"] = a("--max-body=99999999999999999999999k")
    s["argv-missing"] = a("--db")
    s["argv-stray"] = a("stray", "-x", "--")
    s["argv-empty-args"] = a("", "", "--db=")
    s["file-basic"] = (b"# hubstream.conf\nlisten = 127.0.0.1:5000\n"
                       b"db = \"/var/lib/hubstream/events.db\"\nmax-event = 256k\n\n"
                       b"allow_anonymous = true   # trailing comment\n")
    s["file-bom-crlf"] = b"\xef\xbb\xbflog-level = debug\r\nmax_body='1 MiB'\r\n"
    s["file-quotes"] = (b"db = 'DSN=pg;Pwd={a#b}' # c\nretention = \"a:max-count=1\"  \n"
                        b"listen=:9 #x\n")
    s["file-bad-quote"] = b"db = \"unterminated\n"
    s["file-bad-after-quote"] = b"db = \"x\" y\n"
    s["file-bad-key"] = b"max-bdy = 1\n"
    s["file-config-key"] = b"config = /etc/passwd\n"
    s["file-no-eq"] = b"listen\n"
    s["file-no-key"] = b" = 1\n"
    s["file-nul"] = b"listen = 1:1\x00\n"
    s["file-empty-value"] = b"db =\n"
    s["listen-v6"] = b"[::ffff:127.0.0.1]:65535"
    s["listen-any"] = b":8080"
    s["listen-localhost"] = b"LocalHost.:0"
    s["listen-bad"] = b"[127.0.0.1]:1"
    s["listen-port"] = b"host_name-1.example:123456"
    s["conn-redact"] = b"Driver={PostgreSQL};Server=db;Uid=u;PWD={se;cr}et};password=p;x"
    return s


def route_seeds():
    s = {}
    for path in ["/healthz", "/readyz", "/hub", "/hub/negotiate", "/api/streams", "/api/streams/",
                 "/api/streams/orders", "/api/streams/orders/events", "/api/streams/o/close",
                 "/api/streams/$all/events", "/api/streams//events", "/api/streams/a/b/c",
                 "/api/streams/\u00e9t\u00e9/events"]:
        s["path" + path.replace("/", "_")] = path.encode()
    s["uint"] = b"9223372036854775807"
    s["uint-over"] = b"9223372036854775808"
    s["uint-20"] = b"00000000000000000001"
    s["list"] = b"a,b,,c,"
    s["list-9"] = b"1,2,3,4,5,6,7,8,9"
    s["hub-token"] = b"GET /hub?id=AbC-_123&x=1 HTTP/1.1\r\nHost: x\r\n"
    s["hub-token-last"] = b"POST /hub?negotiateVersion=1&id=tok HTTP/1.1\r\n"
    s["hub-token-long"] = b"GET /hub?id=" + b"t" * 40 + b" HTTP/1.1\r\n"
    s["hub-token-cut"] = b"GET /hub?id=abc"
    s["utf8"] = "a\u00e9\u20ac\U0001d11e".encode()
    s["utf8-bad"] = b"\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82"
    return s


def cors_seeds():
    # policy byte (1 listed, 2 "*", 4 the loopback default), then Origin, Host,
    # X-Forwarded-Host, the listed origin, separated by newlines
    s = {}
    s["none"] = b"\x04"
    s["evil-loopback-policy"] = b"\x04" + b"http://evil.example\n127.0.0.1:5000"
    s["loopback-port"] = b"\x04" + b"http://127.0.0.1:3000\n127.0.0.1:5000"
    s["ipv6-loopback"] = b"\x04" + b"http://[::1]:8080/\n[::1]:5000"
    s["localhost"] = b"\x04" + b"https://LocalHost\nlocalhost"
    s["same-origin"] = b"\x00" + b"http://127.0.0.1:5000\n127.0.0.1:5000"
    s["same-origin-default-port"] = b"\x00" + b"https://events.example\nevents.example:443"
    s["forwarded"] = b"\x01" + b"https://events.example\n10.0.0.2:5000\n events.example, p\nhttp://a"
    s["listed"] = b"\x01" + b"http://App.example:8080\nx\n\nhttp://app.example:8080"
    s["any"] = b"\x03" + b"null\nx"
    s["null"] = b"\x04" + b"null\nnull"
    s["no-scheme"] = b"\x04" + b"://\n"
    return s


def chunked_seeds():
    s = {}
    s["one"] = b"\x07" + b"5\r\nhello\r\n0\r\n\r\n"
    s["pieces"] = b"\x00" + b"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\n"
    s["upper-hex"] = b"\x10" + b"A\r\n0123456789\r\n0\r\n\r\n"
    s["trailing"] = b"\xff" + b"1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n"
    s["bad-lf"] = b"\x03" + b"5\nhello\r\n0\r\n\r\n"
    s["bad-long-data"] = b"\x01" + b"2\r\nhello\r\n"
    s["bad-size"] = b"\x02" + b"fffffffffffffffff\r\n"
    s["ext-long"] = b"\x40" + b"1;" + b"e" * 1100 + b"\r\nx\r\n0\r\n\r\n"
    return s


def hub_seeds():
    """fuzz_hub scripts: a mode byte, then commands (see fuzz_hub.c)."""
    def feed(b):
        out = b""
        while b:
            k = min(len(b), 0xa0)
            out += bytes([k - 1]) + b[:k]
            b = b[k:]
        return out
    settle, read, tick, drop, resume = b"\xa0", b"\xc0", b"\xd3", b"\xd8", b"\xd9"
    j = lambda *msgs: b"".join(m + RS for m in msgs)
    s = {}
    s["publish-read"] = (b"\x00" + feed(HS_JSON) + read +
                         feed(j(b'{"type":1,"invocationId":"1","target":"Publish","arguments":'
                                b'["s",[{"type":"a","data":1},{"type":"b"}]]}')) + settle + read +
                         feed(j(b'{"type":1,"invocationId":"2","target":"Read","arguments":["s",0,5]}',
                                b'{"type":1,"invocationId":"3","target":"GetStream","arguments":["s"]}'))
                         + settle + read)
    s["subscribe"] = (b"\x00" + feed(HS_JSON) +
                      feed(j(b'{"type":4,"invocationId":"1","target":"Subscribe","arguments":["s",0]}',
                             b'{"type":1,"invocationId":"2","target":"Subscribe","arguments":["t"]}',
                             b'{"type":1,"invocationId":"3","target":"Publish","arguments":["t",{"type":"x"}]}'))
                      + settle + read + settle + read +
                      feed(j(b'{"type":5,"invocationId":"1"}',
                             b'{"type":1,"invocationId":"4","target":"Unsubscribe","arguments":["t"]}',
                             b'{"type":1,"invocationId":"5","target":"CloseStream","arguments":["t"]}'))
                      + settle + read)
    s["stateful"] = (b"\x03" + feed(b'{"protocol":"json","version":2}' + RS) + read +
                     feed(j(b'{"type":1,"invocationId":"1","target":"Publish","arguments":["st",{"type":"a"}]}'))
                     + settle + drop + resume +
                     feed(j(b'{"type":9,"sequenceId":1}', b'{"type":8,"sequenceId":1}',
                            b'{"type":6}')) + read + tick)
    s["messagepack"] = (b"\x01" + feed(HS_MP + rec([1, {}, "1", "Publish", ["m", {"type": "a", "data": [1]}]]) +
                                       rec([4, {}, "2", "Subscribe", ["m", 0]]) + rec([6]))
                        + settle + read + settle + read)
    s["longpoll-timers"] = b"\x00" + feed(HS_JSON) + read + b"\xd7" + feed(j(b'{"type":6}')) + tick
    s["garbage"] = b"\x00" + feed(HS_JSON) + feed(b'{"type":1,"target":' + RS) + read
    return s


def jwt_seeds():
    """fuzz_jwt: a mode byte, then a raw token (even modes) or header JSON, NUL, payload JSON
    (odd modes: the target signs them). The RS256 / ES256 tokens were signed once with the
    private halves of the target's fixed keys, which were not kept."""
    import base64
    import hashlib
    import hmac

    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=")

    def hs(header, payload, secret=b"hubstream fuzz secret"):
        si = b64(header) + b"." + b64(payload)
        return si + b"." + b64(hmac.new(secret, si, hashlib.sha256).digest())

    perms = b'"hubstream":{"subscribe":["user-{sub}-*","a*b","$all"],"publish":["*"],"admin":false}'
    s = {}
    s["raw-hs256"] = b"\x00" + hs(b'{"alg":"HS256","typ":"JWT"}',
                                  b'{"sub":"alice","exp":1800000000,' + perms + b"}")
    s["raw-rs256-kid"] = b"\x00" + b"eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS0xIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6MTgwMDAwMDAwMCwiaHVic3RyZWFtIjp7InN1YnNjcmliZSI6WyJ1c2VyLXtzdWJ9LSoiXSwicHVibGlzaCI6WyJhdWRpdCJdfX0.BHyOc2ga9hjn5r2Bc7drNdpOejDr8dnoRIBamp2dj75zM_HtdW74pHAWYyGdVhur4-G7Td0bbOheYlG5RwdWrf-q0QlewkcoLXnVcz-6bJd1ITpfQrRHtc_ceXx6M2lDq6dYTc2zic8UHLWOpmZWEYjVGsrwK-TSZst_mGysRqihNO9CDoXouvdfsLTBj-WSAqFtnXebqSRWy7D9fH0NJBSzJPhqcaBS5zj1JIr0l0VyHkyZwnHTHk6q4KM3ihw0WQi3bRpUKs2wxKW06doviadOH5y7Hn4AhnQLOV0wDalzke9_wKSa1RmQ8yHtHa-Ab-UAhacj2c9_bahVkicRxA"
    s["raw-es256-aud-iss"] = b"\x06" + b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJib2IiLCJhdWQiOlsiaHViIl0sImlzcyI6ImZ6IiwibmJmIjoxNjAwMDAwMDAwLCJodWJzdHJlYW0iOnsic3Vic2NyaWJlIjpbIioiXSwiYWRtaW4iOnRydWV9fQ.7u5PRRUh0COhRjshDApQjefFHokxQkV0nuNiKNGlIJ08BU1LW6NazP-I1jzRsNgN-EIf1NlLPVqWQY9Y2oFBHA"
    s["raw-rs256-no-kid"] = b"\x00" + b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYXJvbCJ9.JpB9hJlsyzStz6aYgs9Ep6NMFieWrur1Pr2VYz5UEkOaytseLARYz8VidZT-pv1C1C6lwQyrX4BtCchHodqxTGbc79paIvY5u2th3ep8lQl108F8wFWubknkV_uoppTMZ_3Xhnef9QsNZFu3dAdIqtQqnC9u4dbmOJzqxlkOjESOm1jCsU5Z3cOKZiuIScaev7zRW5GZ7b1gNixh6tPvqkYWtYEdIjz_CbgYwJuxz9iBuwUXqBLqxnSO5xZVgrx5J-93BeJ5mdSVSw2RosbAhukuWZBhLCi7J5R2L23ZaYjnyVhIoOugiSZAzdmzkLqnsOyv5v0e2Y6sbnM3_PSW9g"
    s["raw-none"] = b"\x00" + b64(b'{"alg":"none"}') + b"." + b64(b'{"sub":"x"}') + b"."
    s["raw-wrong-secret"] = b"\x00" + hs(b'{"alg":"HS256"}', b"{}", b"guess")
    s["raw-garbage"] = b"\x00" + b"a.b.c.d"
    s["signed-claims"] = (b"\x1b" + b'{"alg":"HS256","kid":"k"}\x00' +
                          b'{"sub":"bob","exp":1.8e9,"nbf":1600000000.5,"aud":["x","hub"],'
                          b'"iss":"fz",' + perms + b"}")
    s["signed-perms"] = (b"\x01" + b'{"alg":"HS256"}\x00' +
                         b'{"sub":"*","hubstream":{"subscribe":["{sub}","team-{sub}-*","*x"]}}')
    s["signed-bad-claims"] = (b"\x01" + b'{"alg":"HS256","crit":["b64"]}\x00' +
                              b'{"exp":-1,"sub":"a\\u0000","hubstream":[1]}')
    s["signed-payload-only"] = b"\x01" + b'{"sub":"carol","hubstream":{"publish":["c-*"]}}'
    return s


def main():
    targets = {
        "json": json_seeds(),
        "codec": codec_seeds(),
        "hubproto_json": hub_json_seeds(),
        "hubproto_msgpack": hub_mp_seeds(),
        "config": config_seeds(),
        "route": route_seeds(),
        "cors": cors_seeds(),
        "chunked": chunked_seeds(),
        "hub": hub_seeds(),
        "jwt": jwt_seeds(),
    }
    for t, seeds in targets.items():
        d = os.path.join(HERE, "corpus", t)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.startswith("seed-"):
                os.unlink(os.path.join(d, f))
        for i, (name, data) in enumerate(seeds.items()):
            assert len(data) < 4096, (t, name, len(data))
            with open(os.path.join(d, "seed-%02d-%s" % (i, name)), "wb") as f:
                f.write(data)
        print("%s: %d seeds" % (t, len(seeds)), file=sys.stderr)


if __name__ == "__main__":
    main()
