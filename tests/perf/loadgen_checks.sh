#!/usr/bin/env bash
# loadgen's checks can fail: against a real hubstream with a stored 100-event stream, a replay
# that expects fewer events must fail on the unexpected ones, one that expects more must fail on
# the missing ones, and the exact count must pass; the same replay with --check-versions passes
# too. Against a fake SSE server (python3; skipped without it) whose versions skip one, repeat
# one, or whose response ends early, --check-versions must fail on the gap and the duplicate
# and any replay on the early end. /eventstreamhub (--hub eventstreamhub): a fan-out through it
# passes on the real server in both protocols; against a fake one (python3) whose delivery
# repeats an event, lowers or skips an Id, holds another stream's event or an empty array,
# loadgen must fail. (perf_compare_quick shows that every scenario passes; this shows that
# passing means something.)
# Environment: HUBSTREAM_BIN, LOADGEN_BIN (the suite's builds).
set -euo pipefail
: "${HUBSTREAM_BIN:?}" "${LOADGEN_BIN:?}"
tmp=$(mktemp -d /tmp/hubstream-loadgen-checks.XXXXXX)
pid=""
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    if [[ -n "$pid" ]]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

"$HUBSTREAM_BIN" --listen 127.0.0.1:0 --db "$tmp/x.db" --log-level info >"$tmp/server.log" 2>&1 &
pid=$!
port=""
for _ in $(seq 1 100); do
    port=$(grep -o '127\.0\.0\.1:[0-9]*' "$tmp/server.log" | head -1 | cut -d: -f2 || true)
    [[ -n "$port" ]] && break
    sleep 0.1
done
[[ -n "$port" ]] || { echo "the server did not say its port:"; cat "$tmp/server.log"; exit 1; }
url="http://127.0.0.1:$port"

fail=0
run() { # expected exit status, text the result must hold, loadgen args...
    local want=$1 text=$2 rc=0 out
    shift 2
    out=$("$LOADGEN_BIN" --target hubstream --url "$url" --pid "$pid" "$@" 2>/dev/null) || rc=$?
    if [[ "$rc" != "$want" || "$out" != *"$text"* ]]; then
        echo "FAIL: loadgen $* exited $rc (want $want), output: $out"
        fail=1
    else
        echo "ok: loadgen $* -> $rc ($text)"
    fi
}
run 0 '"ok":true' --scenario ingest --stream catchup-neg --events 100 --post-batch 10
run 0 '"deliveries":100,' --scenario catchup --stream catchup-neg --events 100 --transport sse
run 1 'out of range' --scenario catchup --stream catchup-neg --events 50 --transport sse
run 1 'out of range' --scenario catchup --stream catchup-neg --events 50 --transport ws
run 1 'timeout' --scenario catchup --stream catchup-neg --events 150 --transport signalr-json \
    --timeout-s 3
for t in sse signalr-json signalr-messagepack; do
    run 0 '"deliveries":100,' --scenario catchup --stream catchup-neg --events 100 --transport "$t" \
        --check-versions
done
run 0 '"ok":true' --scenario fanout --live --check-versions --transport sse --subs 3 --events 250 \
    --post-batch 100 --window 0 --settle-ms 100
for t in ws signalr-json; do
    run 0 '"hub":"eventstreamhub","events":250,"ok":true' --scenario fanout --hub eventstreamhub \
        --transport "$t" --check-versions --subs 3 --events 250 --post-batch 100 --settle-ms 100
done
run 2 '' --scenario catchup --hub eventstreamhub --stream catchup-neg --events 100
run 2 '' --scenario fanout --hub eventstreamhub --transport sse

# A fake server: one SSE response per connection, the events' (version, seq) pairs as given.
if command -v python3 >/dev/null; then
    fake() { # the pairs "v:s ..."; "end" as the last word ends the response there
        python3 - "$@" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(4)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
c.recv(4096)
out = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nretry: 1000\n\n"
words = sys.argv[1:]
for w in words:
    if w == "end":
        break
    v, q = w.split(":")
    out += "id: %s\ndata: {\"m\":\"~S%010d~T%019d\"}\n\n" % (v, int(q), 0)
c.sendall(out.encode())
if words[-1] == "end":
    c.close()
else:
    c.recv(4096)  # until the client goes
PY
    }
    fake_run() { # expected exit status, text, pairs...
        local want=$1 text=$2 fpid fport rc=0 out
        shift 2
        exec 3< <(fake "$@")
        fpid=$!
        read -r fport <&3
        out=$("$LOADGEN_BIN" --target hubstream --url "http://127.0.0.1:$fport" --scenario catchup \
            --stream fake --events 3 --transport sse --check-versions --timeout-s 5 2>/dev/null) || rc=$?
        kill "$fpid" 2>/dev/null || true
        exec 3<&-
        if [[ "$rc" != "$want" || "$out" != *"$text"* ]]; then
            echo "FAIL: fake server $*: loadgen exited $rc (want $want), output: $out"
            fail=1
        else
            echo "ok: fake server $* -> $rc ($text)"
        fi
    }
    fake_run 0 '"ok":true' 1:1 2:2 3:3
    fake_run 1 '1 gaps and 0 duplicates' 1:1 2:2 4:3
    fake_run 1 '0 gaps and 1 duplicates' 1:1 2:2 2:3
    fake_run 1 'not at the first published version' 2:1 3:2 4:3
    fake_run 1 'the server ended the response' 1:1 2:2 end

    # A fake /eventstreamhub (JSON protocol): it answers the handshake and Subscribe, acknowledges
    # the one POST, then sends one Invocation per argument, its events "Id:seq,..." ("other="
    # before a pair: of another stream; "empty": no event).
    es_fake() {
        python3 - "$@" <<'PY'
import json, socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(8)
print(s.getsockname()[1], flush=True)
published = threading.Event()
class Reader:
    def __init__(self, c, b): self.c, self.b = c, b
    def take(self, n):
        while len(self.b) < n:
            d = self.c.recv(65536)
            if not d: raise EOFError
            self.b += d
        out, self.b = self.b[:n], self.b[n:]
        return out
def frame(p):
    n = len(p)
    return bytes([0x81, n]) + p if n < 126 else bytes([0x81, 126]) + n.to_bytes(2, "big") + p
def delivery(word, stream):
    evs = []
    for pair in ([] if word == "empty" else word.split(",")):
        name = stream
        if pair.startswith("other="):
            name, pair = "other", pair[6:]
        i, q = (int(x) for x in pair.split(":"))
        evs.append({"Id": i, "EventId": "01a24272-4fdd-72d3-a954-e486e55b0d5d",
                    "OriginalEventId": None, "CreatedAt": "2026-01-01T00:00:00.0000000+00:00",
                    "Description": None, "Type": "bench", "Data": None, "Base64StringData": None,
                    "JsonData": json.dumps({"m": "~S%010d~T%019d" % (q, 0)}, separators=(",", ":")),
                    "MetaData": None, "Base64StringMetaData": None, "IsJson": True,
                    "IsBase64String": False, "StreamId": "9ad021a3-3c4c-8825-bf85-cc55addbc003",
                    "StreamName": name})
    text = json.dumps(evs, separators=(",", ":"))
    rec = {"type": 1, "target": stream, "arguments": [text, {}]}
    return frame((json.dumps(rec, separators=(",", ":")) + "\x1e").encode())
def serve(c):
    try:
        b = b""
        while b"\r\n\r\n" not in b:
            d = c.recv(65536)
            if not d: return
            b += d
        head, rest = b.split(b"\r\n\r\n", 1)
        if head.startswith(b"POST"):
            n = int(next(l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")).split(b":")[1])
            Reader(c, rest).take(n)
            body = b'{"firstPosition":1}'
            c.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            published.set()
            while c.recv(65536): pass
            return
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        r, text = Reader(c, rest), b""
        while text.count(b"\x1e") < 2:  # the handshake and Subscribe
            h = r.take(2)
            n = h[1] & 0x7f
            if n == 126: n = int.from_bytes(r.take(2), "big")
            mask = r.take(4)
            text += bytes(x ^ mask[i % 4] for i, x in enumerate(r.take(n)))
        stream = json.loads(text.split(b"\x1e")[1])["arguments"][0]["StreamName"]
        c.sendall(frame(b"{}\x1e") + frame(b'{"type":3,"invocationId":"0"}\x1e'))
        published.wait(10)
        c.sendall(b"".join(delivery(w, stream) for w in sys.argv[1:]))
        while c.recv(65536): pass
    except (EOFError, OSError):
        pass
while True:
    conn, _ = s.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
PY
    }
    es_fake_run() { # expected exit status, text, loadgen flags (one word), deliveries...
        local want=$1 text=$2 flags=$3 fpid fport rc=0 out
        shift 3
        exec 3< <(es_fake "$@")
        fpid=$!
        read -r fport <&3
        # shellcheck disable=SC2086  # flags: none or one
        out=$("$LOADGEN_BIN" --target hubstream --url "http://127.0.0.1:$fport" --scenario fanout \
            --hub eventstreamhub --transport signalr-json --subs 1 --events 3 --post-batch 3 \
            --publishers 1 --settle-ms 0 --timeout-s 5 $flags 2>/dev/null) || rc=$?
        kill "$fpid" 2>/dev/null || true
        exec 3<&-
        if [[ "$rc" != "$want" || "$out" != *"$text"* ]]; then
            echo "FAIL: fake /eventstreamhub $flags $*: loadgen exited $rc (want $want), output: $out"
            fail=1
        else
            echo "ok: fake /eventstreamhub $flags $* -> $rc ($text)"
        fi
    }
    es_fake_run 0 '"ok":true' --check-versions 1:1,2:2,3:3
    es_fake_run 0 '"ok":true' --check-versions 1:1 2:2,3:3
    es_fake_run 1 '0 gaps and 1 duplicates' '' 1:1,2:1 3:2,4:3
    es_fake_run 1 'event Id 1 after 2' '' 2:1,1:2,3:3
    es_fake_run 1 '1 gaps and 0 duplicates' --check-versions 1:1,2:2 4:3
    es_fake_run 1 "does not end with the stream's StreamName" '' 1:1,other=2:2,3:3
    es_fake_run 1 'not a non-empty array of events' '' 1:1 empty 2:2,3:3
else
    echo "skipped: the fake-server checks (no python3)"
fi
exit $fail
