#!/usr/bin/env bash
# Auth on against auth off, in one run: what the JWT check and the permission checks cost.
#
#   perf/auth.sh            ROUNDS (3) rounds of: off, on (alternating, so drift hits both)
#
# Each round starts a fresh hubstream (Release, build/perf, SQLite in a temp dir) without and
# then with --jwt-secret, and runs against it with perf/loadgen:
#   fanout  FANOUT_SUBS (1000) SignalR WebSocket subscribers, FANOUT_EVENTS (5000) events:
#           deliveries per server CPU-second (the token is checked once per connection, at its
#           upgrade; permissions once per Subscribe; nothing per event)
#   ingest  INGEST_EVENTS (50000) events, one per POST over 4 connections: events/s acknowledged
#           (every POST is authenticated and authorized: the per-request cost)
# With auth on every request carries `Authorization: Bearer <HS256 token>` (subscribe and
# publish "*"). Appends every loadgen result, with "auth":"off"|"on" and the run id, to
# perf/results/auth.jsonl and prints the medians and on/off ratios. Loopback only; each server is
# stopped by its pid; the temp dir goes at exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/perf"
hubstream_bin=${HUBSTREAM_BIN:-$build/hubstream}
loadgen=${LOADGEN_BIN:-$build/bench/loadgen}
ROUNDS=${ROUNDS:-3}
FANOUT_SUBS=${FANOUT_SUBS:-1000}
FANOUT_EVENTS=${FANOUT_EVENTS:-5000}
INGEST_EVENTS=${INGEST_EVENTS:-50000}
results=${RESULTS_DIR:-$root/perf/results}
exec </dev/null

tmp=$(mktemp -d /tmp/hubstream-auth.XXXXXX)
server_pid=""
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
command -v jq >/dev/null && command -v openssl >/dev/null ||
    { echo "auth.sh: needs jq and openssl (scripts/deps.sh --perf)" >&2; exit 1; }

if [[ "${NO_BUILD:-0}" != 1 ]]; then
    echo "== build (Release) in $build"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DHS_BUILD_TESTS=OFF -DHS_BUILD_PERF=ON \
        -DHS_WERROR=OFF >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; exit 1; }
    cmake --build "$build" -j"$(nproc)" --target hubstream loadgen >"$tmp/build.log" 2>&1 ||
        { tail -50 "$tmp/build.log"; exit 1; }
fi

# an HS256 token that may do everything, valid for a day
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
secret=$(openssl rand -hex 32)
now=$(date +%s)
head=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
body=$(printf '{"sub":"bench","exp":%d,"hubstream":{"publish":["*"],"subscribe":["*"]}}' \
    $((now + 86400)) | b64url)
sig=$(printf '%s.%s' "$head" "$body" | openssl dgst -sha256 -mac HMAC -macopt "key:$secret" -binary | b64url)
token="$head.$body.$sig"

run_id=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]] || commit="$commit+dirty"
mkdir -p "$results"
echo "== run $run_id at $commit: $ROUNDS rounds, fanout $FANOUT_SUBS x $FANOUT_EVENTS, ingest $INGEST_EVENTS"

start_server() { # auth: off | on
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 12000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || break
    done
    rm -f "$tmp"/hs.db*
    local extra=()
    [[ $1 == on ]] && extra=(--jwt-secret "$secret")
    "$hubstream_bin" --listen "127.0.0.1:$p" --db "$tmp/hs.db" --log-level warn "${extra[@]}" \
        >"$tmp/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && { server_port=$p; return 0; }
        sleep 0.05
    done
    cat "$tmp/server.log" >&2
    return 1
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

status=0
run() { # auth scenario args...
    local auth=$1 scenario=$2 out rc=0
    shift 2
    local tok=()
    [[ $auth == on ]] && tok=(--token "$token")
    out=$(timeout 600 "$loadgen" --target hubstream --url "http://127.0.0.1:$server_port" \
        --pid "$server_pid" --scenario "$scenario" --label "auth-$auth" "${tok[@]}" "$@" 2>"$tmp/lg.err") || rc=$?
    [[ -n $out ]] || out=$(jq -nc --arg e "loadgen exited with $rc: $(head -c 300 "$tmp/lg.err")" '{ok:false,error:$e}')
    jq -c --arg run "$run_id" --arg commit "$commit" --arg auth "$auth" --arg s "$scenario" \
        '. + {run:$run, commit:$commit, auth:$auth, step:$s}' <<<"$out" | tee -a "$results/auth.jsonl" >"$tmp/last.json"
    [[ $(jq -r '.ok' "$tmp/last.json") == true ]] || { echo "   $auth $scenario failed: $(jq -r '.error' "$tmp/last.json")" >&2; status=1; }
}

for round in $(seq 1 "$ROUNDS"); do
    for auth in off on; do
        echo "== round $round, auth $auth"
        start_server "$auth"
        run "$auth" fanout --transport ws --subs "$FANOUT_SUBS" --events "$FANOUT_EVENTS"
        run "$auth" ingest --events "$INGEST_EVENTS" --publishers 4 --post-batch 1
        stop_server
    done
done

# medians of this run, and on / off
jq -rs --arg run "$run_id" '
  [.[] | select(.run == $run and .ok == true)] as $r
  | def med: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
    def fig(s; a; k): [$r[] | select(.step == s and .auth == a) | .[k]] | med;
  ["fanout", "deliveries_per_cpu_s"], ["fanout", "deliveries_per_s"], ["fanout", "lat_p50_us"],
  ["ingest", "events_per_s"], ["ingest", "server_cpu_s"]
  | . as [$s, $k] | fig($s; "off"; $k) as $off | fig($s; "on"; $k) as $on
  | "\($s) \($k): off \($off) | on \($on) | on/off \(if $off and $on then ($on / $off * 1000 | round / 1000) else "?" end)"
' "$results/auth.jsonl"
exit $status
