#!/usr/bin/env bash
# The writer thread's cost of a one-event commit (issue 17), three ways:
#
#   perf/commit_cost.sh instr [BENCH]        user-space instructions of the writer's process() per
#                                            one-event commit: callgrind over bench_ingest
#                                            --threads 1 --batch 1 (2 x EVENTS commits, default
#                                            2,000); deterministic, so before/after compare on a
#                                            busy machine; kernel time (WAL writes, locks,
#                                            wake-ups) is not in it
#   perf/commit_cost.sh cpu [BENCH]          the hs-writer thread's on-CPU time per commit, back
#                                            to back: bench_ingest --threads 1 --batch 1 --events
#                                            EVENTS (default 10,000), RUNS times (default 3); its
#                                            two runs (any version, expected version) are printed
#                                            apart, with bench_ingest's events/s
#   perf/commit_cost.sh rate [HUBSTREAM]     the same at RATE events/s (default 100) with one
#                                            WebSocket subscriber for DURATION_S (default 20):
#                                            compare.sh's "rate 100/s ws 1 sub" by hand, on a fresh
#                                            server and SQLite file, with loadgen's p50 and p99
#
# BENCH and HUBSTREAM default to build/normal's; pass another build's binaries for a before/after
# (run them alternately: the machine's load moves the CPU figures by +-20%). On-CPU time comes
# from /proc/<pid>/task/<tid>/schedstat (nanoseconds), sampled every 20 ms for the cpu mode and
# read before and after loadgen for the rate mode. The profile behind perf/README.md's table was
# `perf record --call-graph dwarf,16384 -F 4999 -t <tid of hs-writer>` during a rate run.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-}
events=${EVENTS:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The on-CPU nanoseconds of every hs-writer thread of process $1, one "tid ns" line each.
writer_ns() {
    local t s
    for t in /proc/"$1"/task/*; do
        [[ "$(cat "$t/comm" 2>/dev/null)" == hs-writer ]] || continue
        s=$(cat "$t/schedstat" 2>/dev/null) || continue
        echo "${t##*/} ${s%% *}"
    done
}

case $mode in
instr)
    bench=${2:-$root/build/normal/bench/bench_ingest}
    events=${events:-2000}
    valgrind --tool=callgrind --toggle-collect=process --separate-threads=yes \
        --callgrind-out-file="$tmp/cg.out" "$bench" --events "$events" --threads 1 --batch 1 \
        --skip-raw --no-record >"$tmp/out.txt" 2>"$tmp/vg.txt"
    total=0
    for f in "$tmp"/cg.out*; do
        t=$(awk '/^totals:/ {print $2}' "$f")
        total=$((total + ${t:-0}))
    done
    echo "instructions per one-event commit (writer's process(), user space): $((total / (2 * events)))"
    ;;
cpu)
    bench=${2:-$root/build/normal/bench/bench_ingest}
    events=${events:-10000}
    for i in $(seq "${RUNS:-3}"); do
        "$bench" --events "$events" --threads 1 --batch 1 --skip-raw --no-record >"$tmp/out.txt" 2>&1 &
        pid=$!
        declare -A last=()
        while kill -0 "$pid" 2>/dev/null; do
            while read -r tid ns; do last[$tid]=$ns; done < <(writer_ns "$pid")
            sleep 0.02
        done
        wait "$pid"
        per=$(for tid in $(printf '%s\n' "${!last[@]}" | sort -n); do
            awk -v ns="${last[$tid]}" -v n="$events" 'BEGIN {printf "%.1f ", ns / 1000 / n}'
        done)
        rates=$(awk '/^server/ {printf "%s ", $(NF - 9)}' "$tmp/out.txt")
        unset last
        echo "run $i: writer us per commit (any version, expected version): $per events/s: $rates load $(cut -d' ' -f1 /proc/loadavg)"
    done
    ;;
rate)
    bin=${2:-$root/build/normal/hubstream}
    loadgen=${LOADGEN:-$root/build/normal/bench/loadgen}
    port=$((20000 + RANDOM % 10000))
    "$bin" --listen "127.0.0.1:$port" --db "$tmp/x.db" >"$tmp/server.log" 2>&1 &
    spid=$!
    sleep 1.5
    before=$(writer_ns "$spid" | awk '{print $2}')
    "$loadgen" --target hubstream --url "http://127.0.0.1:$port" --pid "$spid" --scenario latency \
        --transport ws --subs 1 --rate "${RATE:-100}" --duration-s "${DURATION_S:-20}" \
        >"$tmp/lg.json" 2>"$tmp/lg.err" || true
    after=$(writer_ns "$spid" | awk '{print $2}')
    kill "$spid"
    wait "$spid" || true
    n=$(jq -r '.events // 0' "$tmp/lg.json")
    ((n > 0)) || { echo "commit_cost: loadgen failed: $(head -3 "$tmp/lg.err")" >&2; exit 1; }
    echo "writer us per commit: $(((after - before) / 1000 / n)) (events $n)" \
        "p50 $(jq .lat_p50_us "$tmp/lg.json") us p99 $(jq .lat_p99_us "$tmp/lg.json") us" \
        "load $(cut -d' ' -f1 /proc/loadavg)"
    ;;
*)
    sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
    ;;
esac
