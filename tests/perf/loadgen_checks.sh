#!/usr/bin/env bash
# loadgen's checks can fail: against a real hubstream with a stored 100-event stream, a replay
# that expects fewer events must fail on the unexpected ones, one that expects more must fail on
# the missing ones, and the exact count must pass. (perf_compare_quick shows that every scenario
# passes; this shows that passing means something.)
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
exit $fail
