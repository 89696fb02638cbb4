#!/usr/bin/env bash
# perf/eventstream.sh: live fan-out through /eventstreamhub against /hub, in one run.
#
#   perf/eventstream.sh     for each POST_BATCHES size: /hub MessagePack, /eventstreamhub
#                           MessagePack, /hub JSON, /eventstreamhub JSON
#
# Each case starts a fresh hubstream (Release, build/perf, SQLite in a temp dir, --listen
# 127.0.0.1:0 and the port read from its log) and runs perf/loadgen against it: SUBS (1000)
# SignalR WebSocket subscribers subscribed live (/hub: Subscribe(stream); /eventstreamhub:
# Subscribe({StreamName, SubscriberId, SubscriberKey}), ready at its Completion), then EVENTS
# (20000) events of 128 bytes published in POSTs of the batch size over 4 connections, at most
# 500 events ahead of the slowest subscriber. Every event is checked at every subscriber (once,
# its marker, --check-versions: /hub's versions and /eventstreamhub's Ids consecutive from the
# first published). /hub sends one StreamItem per event; /eventstreamhub one Invocation per
# POST, its argument the batch's events as a JSON array of PascalCase objects (encoded once per
# batch and shared by the subscribers). A delivery is one event at one subscriber on both.
# Figures per case: deliveries/s (first publish to last delivery) and deliveries per server
# CPU-second; the table gives eventstreamhub / hub per protocol and batch size. Every loadgen
# result, with the run id, commit, case and batch size, is appended to
# perf/results/eventstream.jsonl (RESULTS_DIR to change). Loopback only; each server is stopped
# by its pid; the temp dir goes at exit.
#
# Environment: SUBS (1000), EVENTS (20000), POST_BATCHES ("1 100"), PROCS (1: subscriber
# processes of loadgen), STEP_TIMEOUT_S (300), NO_BUILD=1, RESULTS_DIR.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/perf"
hubstream_bin=${HUBSTREAM_BIN:-$build/hubstream}
loadgen=${LOADGEN_BIN:-$build/bench/loadgen}
SUBS=${SUBS:-1000}
EVENTS=${EVENTS:-20000}
POST_BATCHES=${POST_BATCHES:-"1 100"}
PROCS=${PROCS:-1}
STEP_TIMEOUT_S=${STEP_TIMEOUT_S:-300}
results=${RESULTS_DIR:-$root/perf/results}
exec </dev/null

tmp=$(mktemp -d /tmp/hubstream-eventstream.XXXXXX)
server_pid=""
# Stops the server by its pid: SIGTERM, 10 s to go, then SIGKILL.
stop_server() {
    [[ -n "$server_pid" ]] || return 0
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    stop_server
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
command -v jq >/dev/null || { echo "eventstream.sh: needs jq (scripts/deps.sh --perf)" >&2; exit 1; }

if [[ "${NO_BUILD:-0}" != 1 ]]; then
    echo "== build (Release) in $build"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DHS_BUILD_TESTS=OFF -DHS_BUILD_PERF=ON \
        -DHS_WERROR=OFF >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; exit 1; }
    cmake --build "$build" -j"$(nproc)" --target hubstream loadgen >"$tmp/build.log" 2>&1 ||
        { tail -50 "$tmp/build.log"; exit 1; }
fi

run_id=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]] || commit="$commit+dirty"
machine="$(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
mkdir -p "$results"
out="$results/eventstream.jsonl"
echo "== run $run_id at $commit: $SUBS subscribers x $EVENTS events, POSTs of $POST_BATCHES," \
    "load $(cut -d' ' -f1-3 /proc/loadavg)"

# A fresh server on a new database, on a port the kernel picks: sets server_pid, server_port.
start_server() {
    rm -f "$tmp"/hs.db*
    "$hubstream_bin" --listen 127.0.0.1:0 --db "$tmp/hs.db" --log-level info >"$tmp/server.log" 2>&1 &
    server_pid=$!
    server_port=""
    for _ in $(seq 1 100); do
        server_port=$(grep -o '"listening","addr":"127\.0\.0\.1:[0-9]*' "$tmp/server.log" |
            head -1 | cut -d: -f3 || true)
        [[ -n "$server_port" ]] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$tmp/server.log" >&2
    return 1
}

status=0
# run_case HUB TRANSPORT BATCH: one case on a fresh server
run_case() {
    local hub=$1 transport=$2 batch=$3 res rc=0 name=$1-json
    [[ $transport == ws ]] && name=$hub-messagepack
    echo "== $name, POSTs of $batch"
    if ! start_server; then
        echo "   the server did not start" >&2
        status=1
        return
    fi
    res=$(timeout $((STEP_TIMEOUT_S + 60)) "$loadgen" --target hubstream \
        --url "http://127.0.0.1:$server_port" --pid "$server_pid" --scenario fanout \
        --transport "$transport" --hub "$hub" --live --check-versions --subs "$SUBS" \
        --events "$EVENTS" --post-batch "$batch" --publishers 4 --procs "$PROCS" --settle-ms 200 \
        --timeout-s "$STEP_TIMEOUT_S" --label "$name" 2>"$tmp/loadgen.err") || rc=$?
    [[ -s "$tmp/loadgen.err" ]] && sed 's/^/   /' "$tmp/loadgen.err" | head -5 >&2
    if [[ $rc != 0 || -z "$res" ]]; then
        echo "   failed (loadgen exit $rc)" >&2
        status=1
        [[ -n "$res" ]] || res=$(jq -nc --arg e "loadgen exited with $rc" '{ok:false,error:$e}')
    fi
    jq -c --arg run "$run_id" --arg c "$commit" --arg m "$machine" --arg case "$name" \
        --argjson b "$batch" '{run:$run,commit:$c,machine:$m,case:$case,post_batch:$b} + .' \
        <<<"$res" | tee -a "$out" |
        jq -c '{case,post_batch,ok,deliveries_per_s,deliveries_per_cpu_s,server_cpu_s,client_cpu_interval_s,lat_p50_us}'
    stop_server
}

for batch in $POST_BATCHES; do
    for transport in ws signalr-json; do
        run_case hub "$transport" "$batch"
        run_case eventstreamhub "$transport" "$batch"
    done
done

echo "== $out ($run_id)"
jq -rs --arg run "$run_id" '
  [.[] | select(.run == $run and .ok == true)] as $r
  | def fig(c; b; k): [$r[] | select(.case == c and .post_batch == b) | .[k]] | first;
    def ratio(a; b): if a and b then (a / b * 1000 | round / 1000) else "-" end;
  [$r[] | .post_batch] | unique[] as $b
  | ("messagepack", "json") as $p
  | fig("hub-" + $p; $b; "deliveries_per_s") as $hs | fig("eventstreamhub-" + $p; $b; "deliveries_per_s") as $es
  | fig("hub-" + $p; $b; "deliveries_per_cpu_s") as $hc | fig("eventstreamhub-" + $p; $b; "deliveries_per_cpu_s") as $ec
  | [$p, $b, ($hs // "-"), ($es // "-"), ratio($es; $hs), ($hc // "-"), ($ec // "-"), ratio($ec; $hc)] | @tsv
' "$out" | column -t -s $'\t' -N "protocol,batch,hub deliv/s,es deliv/s,es/hub,hub deliv/cpu-s,es deliv/cpu-s,es/hub"
exit $status
