#!/usr/bin/env bash
# loadgen's checks can fail: against a real hubstream with a stored 100-event stream, a replay
# that expects fewer events must fail on the unexpected ones, one that expects more must fail on
# the missing ones, and the exact count must pass; the same replay with --check-versions passes
# too. Against a fake SSE server (python3; skipped without it) whose versions skip one, repeat
# one, or whose response ends early, --check-versions must fail on the gap and the duplicate
# and any replay on the early end. (perf_compare_quick shows that every scenario passes; this
# shows that passing means something.)
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
else
    echo "skipped: the fake-server checks (no python3)"
fi
exit $fail
