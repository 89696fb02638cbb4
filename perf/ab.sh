#!/usr/bin/env bash
# One loadgen step against several hubstream binaries, alternating, so that drift on a shared
# machine hits them all: the before/after check of a change that must not cost throughput.
#
#   perf/ab.sh NAME=BINARY NAME=BINARY ... [-- LOADGEN ARGS]
#   e.g. perf/ab.sh old=/tmp/old/build/perf/hubstream new=build/perf/hubstream
#
# Default step: --scenario fanout --transport sse --subs 1000 --events 5000 (compare.sh's
# "fanout sse 1k"). ROUNDS (3) rounds; each run on a fresh server and SQLite file in a temp dir,
# stopped by its pid. Prints one line per run (round, name, deliveries per server CPU-second,
# deliveries/s) and the median per name; appends every loadgen result with "ab_name" and the
# run id to perf/results/ab.jsonl. Loadgen: LOADGEN_BIN, else build/perf/bench/loadgen.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
loadgen=${LOADGEN_BIN:-$root/build/perf/bench/loadgen}
results=${RESULTS_DIR:-$root/perf/results}
exec </dev/null
names=() bins=()
while (($#)) && [[ $1 != -- ]]; do
    names+=("${1%%=*}")
    bins+=("${1#*=}")
    shift
done
[[ ${1:-} == -- ]] && shift
step=("$@")
((${#step[@]})) || step=(--scenario fanout --transport sse --subs 1000 --events 5000)
((${#names[@]})) || { echo "usage: $0 NAME=BINARY ... [-- LOADGEN ARGS]" >&2; exit 2; }
run_id=$(date -u +%Y-%m-%dT%H:%M:%SZ)
tmp=$(mktemp -d /tmp/hubstream-ab.XXXXXX)
pid=""
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$results"
for round in $(seq 1 "${ROUNDS:-3}"); do
    for i in "${!names[@]}"; do
        rm -f "$tmp"/x.db*
        port=$((20000 + RANDOM % 12000))
        "${bins[$i]}" --listen "127.0.0.1:$port" --db "$tmp/x.db" --log-level warn >"$tmp/server.log" 2>&1 &
        pid=$!
        for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
        out=$("$loadgen" --target hubstream --url "http://127.0.0.1:$port" --pid "$pid" "${step[@]}" 2>/dev/null) ||
            out=${out:-'{"ok":false}'}
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=""
        jq -c --arg n "${names[$i]}" --arg run "$run_id" '. + {ab_name:$n, run:$run}' <<<"$out" |
            tee -a "$results/ab.jsonl" | jq -r --arg r "$round" '"\($r) \(.ab_name) \(.deliveries_per_cpu_s) \(.deliveries_per_s)"'
    done
done
jq -rs --arg run "$run_id" '[.[] | select(.run == $run and .ok)] | group_by(.ab_name)[]
  | "median \(.[0].ab_name): \(map(.deliveries_per_cpu_s) | sort | .[(length - 1) / 2 | floor]) deliveries per server CPU-s"' \
  "$results/ab.jsonl"
