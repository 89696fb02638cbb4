#!/usr/bin/env bash
# perf/run.sh: build Release and run every benchmark once, on loopback, bounded in time.
#
#   1. cmake Release build in build/perf (tests off)
#   2. bench_ingest (raw SQLite via ODBC vs hs_server_publish) in a temp dir
#   3. for each fan-out protocol (FANOUT_PROTOCOLS, default "sse signalr-json
#      signalr-messagepack"): build/perf/hubstream on a random high port with a fresh temp
#      database, bench_fanout against it (--pid for the server's CPU), then SIGTERM to that pid
# Results are appended to perf/results/ingest.jsonl, sse.jsonl and signalr.jsonl.
#
# Environment (all optional): INGEST_ARGS (default "--repeat 3": medians of three interleaved
# rounds), SSE_ARGS (extra flags for each bench_fanout run),
# SERVER_ARGS (extra flags for hubstream), SKIP_INGEST=1, SKIP_SSE=1, SSE_TIMEOUT_S (default 120).
# Exit status: non-zero if a build, a benchmark or the server failed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/perf"
bin="$build/bench"
sse_timeout=${SSE_TIMEOUT_S:-120}

tmp=$(mktemp -d /tmp/hubstream-perf.XXXXXX)
server_pid=""
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== build (Release) in $build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DHS_BUILD_TESTS=OFF \
    >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" >"$tmp/build.log" 2>&1 || { tail -50 "$tmp/build.log"; exit 1; }

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
echo "== machine: $(nproc) x $cpu," \
     "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), $(uname -r)," \
     "$(date -u +%Y-%m-%dT%H:%M:%SZ)"

status=0

if [[ "${SKIP_INGEST:-0}" != 1 ]]; then
    echo
    echo "== bench_ingest"
    mkdir -p "$tmp/ingest"
    # shellcheck disable=SC2086
    timeout 900 "$bin/bench_ingest" --dir "$tmp/ingest" ${INGEST_ARGS---repeat 3} || status=1
fi

# One fan-out run: a fresh server and database per protocol.
run_fanout() {
    local proto=$1
    echo
    echo "== bench_fanout --protocol $proto"
    # a random high port; if it turns out to be taken the server exits and we try another
    port=""
    for _ in 1 2 3 4 5; do
        p=$((20000 + RANDOM % 40000))
        # shellcheck disable=SC2086
        "$build/hubstream" --listen "127.0.0.1:$p" --db "$tmp/$proto.db" ${SERVER_ARGS:-} \
            >"$tmp/server.out" 2>"$tmp/server.err" &
        server_pid=$!
        for _ in $(seq 1 50); do
            if grep -q '"listening"' "$tmp/server.err" 2>/dev/null; then
                port=$p
                break
            fi
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        [[ -n "$port" ]] && break
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
        rm -f "$tmp/$proto.db"*
    done
    if [[ -z "$port" ]]; then
        echo "run.sh: the server did not start:" >&2
        cat "$tmp/server.err" >&2
        exit 1
    fi
    echo "server pid $server_pid on 127.0.0.1:$port, db $tmp/$proto.db"
    # shellcheck disable=SC2086
    timeout $((sse_timeout + 60)) "$bin/bench_fanout" --protocol "$proto" --url "127.0.0.1:$port" \
        --pid "$server_pid" --timeout-s "$sse_timeout" ${SSE_ARGS:-} || status=1

    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "run.sh: the server (pid $server_pid) died during the benchmark; its stderr:" >&2
        tail -20 "$tmp/server.err" >&2
        status=1
        wait "$server_pid" 2>/dev/null || true
    else
        kill -TERM "$server_pid"
        stopped=0
        for _ in $(seq 1 100); do
            if ! kill -0 "$server_pid" 2>/dev/null; then
                stopped=1
                break
            fi
            sleep 0.1
        done
        if [[ $stopped == 0 ]]; then
            echo "run.sh: the server did not stop within 10 s of SIGTERM" >&2
            status=1
        fi
        if ! wait "$server_pid" 2>/dev/null; then
            echo "run.sh: the server exited with a failure status" >&2
            status=1
        fi
    fi
    server_pid=""
    if grep -q '"level":"\(warn\|error\)"' "$tmp/server.err"; then
        echo "server warnings/errors:"
        grep '"level":"\(warn\|error\)"' "$tmp/server.err" | tail -10
    fi
}

if [[ "${SKIP_SSE:-0}" != 1 ]]; then
    for proto in ${FANOUT_PROTOCOLS:-sse signalr-json signalr-messagepack}; do
        run_fanout "$proto"
    done
fi

echo
echo "== last recorded results"
[[ "${SKIP_INGEST:-0}" != 1 ]] && tail -n 1 "$root/perf/results/ingest.jsonl" 2>/dev/null
[[ "${SKIP_SSE:-0}" != 1 ]] && tail -n 1 "$root/perf/results/sse.jsonl" 2>/dev/null
[[ "${SKIP_SSE:-0}" != 1 ]] && tail -n 2 "$root/perf/results/signalr.jsonl" 2>/dev/null
exit $status
