#!/usr/bin/env bash
# perf/run.sh: build Release and run every benchmark once, on loopback, bounded in time.
#
#   1. cmake Release build in build/perf (tests off, warnings not fatal)
#   2. bench_ingest (raw SQLite via ODBC vs hs_server_publish) in a temp dir
#   3. bench_ingest --db on PostgreSQL: a throwaway cluster (tests/pg/pg.sh, fsync on by
#      default here) on a random high port, started for this step and stopped after it
#   4. for each fan-out protocol (FANOUT_PROTOCOLS, default "sse signalr-json
#      signalr-messagepack"): build/perf/hubstream on a random high port with a fresh temp
#      database, `loadgen --scenario fanout` against it (--pid for the server's CPU): FANOUT_SUBS
#      subscribers, FANOUT_EVENTS events in POSTs of 100 over 4 connections as fast as
#      acknowledged, every subscriber checked (versions in order, each once, from the first);
#      then SIGTERM to that pid
#   5. catch-up: `bench_ingest --prefill` writes CATCHUP_EVENTS events onto one stream of a new
#      SQLite file; then CATCHUP_REPEAT times per protocol of CATCHUP_PROTOCOLS a fresh hubstream
#      on that file and `loadgen --scenario catchup`: one subscriber replaying it from version 0
# Results are appended to RESULTS_DIR (default perf/results): ingest.jsonl (both databases: "db"
# says which), sse.jsonl, signalr.jsonl and catchup.jsonl (loadgen --results writes the keys
# bench_fanout wrote before, so the history stays comparable).
#
# Environment (all optional): RESULTS_DIR (e.g. a temp directory for a smoke run that must not
# touch the history), INGEST_ARGS (default "--repeat 3": medians of three interleaved rounds),
# FANOUT_SUBS (default 1000), FANOUT_EVENTS (default 100000), SSE_ARGS (extra loadgen flags for
# each fan-out run, after run.sh's own, so they win: "--subs 100 --events 20000" as before;
# bench_fanout's --post-conns and --protocol are accepted, --no-record appends nothing),
# SERVER_ARGS (extra flags for hubstream), SKIP_INGEST=1, SKIP_SSE=1, SSE_TIMEOUT_S (default 120).
# PostgreSQL ingest: SKIP_PG=1, PG_ARGS (bench_ingest flags, default "--repeat 3"), PG_CONN_OPTS
# (psqlODBC options appended to the connection string, e.g. "BatchSize=1000;", default none),
# PG_FSYNC (on or off, default on: the cluster runs with fsync on; synchronous_commit stays at
# its default, on).
# Catch-up: SKIP_CATCHUP=1, CATCHUP_EVENTS (default 1000000), CATCHUP_PROTOCOLS (default "sse
# signalr-json"; signalr-messagepack too), CATCHUP_REPEAT (runs per protocol, default 3),
# CATCHUP_ARGS (extra loadgen flags, e.g. "--subs 4"), CATCHUP_TIMEOUT_S (default 120 per run).
# Exit status: non-zero if a build, a benchmark or the server failed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/perf"
bin="$build/bench"
sse_timeout=${SSE_TIMEOUT_S:-120}
results=${RESULTS_DIR:-$root/perf/results}
mkdir -p "$results"

tmp=$(mktemp -d /tmp/hubstream-perf.XXXXXX)
server_pid=""
pgdir=""
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
    if [[ -n "$pgdir" ]]; then
        "$root/tests/pg/pg.sh" stop "$pgdir" || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== build (Release) in $build"
# HS_WERROR=OFF: a new compiler warning must not stop a measurement (the dev builds gate on them)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DHS_BUILD_TESTS=OFF -DHS_BUILD_PERF=ON -DHS_WERROR=OFF \
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
    timeout 900 "$bin/bench_ingest" --dir "$tmp/ingest" --results "$results/ingest.jsonl" \
        ${INGEST_ARGS---repeat 3} || status=1
fi

if [[ "${SKIP_PG:-0}" != 1 ]]; then
    echo
    echo "== bench_ingest on PostgreSQL (fsync ${PG_FSYNC:-on})"
    pgdir=$(mktemp -d /tmp/hubstream-perf-pg.XXXXXX)
    pgport=""
    for _ in 1 2 3 4 5; do
        p=$((20000 + RANDOM % 40000))
        if PG_FSYNC=${PG_FSYNC:-on} "$root/tests/pg/pg.sh" start "$pgdir" "$p" \
            >"$tmp/pg.out" 2>&1; then
            pgport=$p
            break
        fi
    done
    if [[ -z "$pgport" ]]; then
        echo "run.sh: PostgreSQL did not start:" >&2
        cat "$tmp/pg.out" "$pgdir/log" >&2 2>/dev/null || true
        status=1
    else
        pgpid=$(head -1 "$pgdir/data/postmaster.pid")
        echo "PostgreSQL $(psql "host=127.0.0.1 port=$pgport user=postgres dbname=postgres" \
            -Atc 'SHOW server_version' 2>/dev/null) pid $pgpid on 127.0.0.1:$pgport, $pgdir"
        conn="Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=$pgport;Database=postgres;"
        conn+="Uid=postgres;Pwd=;${PG_CONN_OPTS:-}"
        # shellcheck disable=SC2086
        ODBCSYSINI="$pgdir/odbc" timeout 1800 "$bin/bench_ingest" --db "$conn" \
            --db-pid "$pgpid" --results "$results/ingest.jsonl" ${PG_ARGS---repeat 3} || status=1
        "$root/tests/pg/pg.sh" stop "$pgdir" || status=1
    fi
    pgdir=""
fi

# Starts build/perf/hubstream on the database $1 on a random high port: sets server_pid and
# port. $2 = 1 removes the database files when a try fails (a fresh database per try).
start_server() {
    local db=$1 fresh=$2
    # a random high port; if it turns out to be taken the server exits and we try another
    port=""
    for _ in 1 2 3 4 5; do
        p=$((20000 + RANDOM % 40000))
        # shellcheck disable=SC2086
        "$build/hubstream" --listen "127.0.0.1:$p" --db "$db" ${SERVER_ARGS:-} \
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
        [[ $fresh == 1 ]] && rm -f "$db"*
    done
    if [[ -z "$port" ]]; then
        echo "run.sh: the server did not start:" >&2
        cat "$tmp/server.err" >&2
        exit 1
    fi
    echo "server pid $server_pid on 127.0.0.1:$port, db $db"
}

# Stops the server of start_server (SIGTERM, 10 s at most), reports if it died or failed.
stop_server() {
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

# One fan-out run: a fresh server and database per protocol. bench_fanout's load and checks:
# --window 0 publishes as fast as acknowledged, one POST of 100 in flight per connection;
# --procs 0 keeps subscribers and publishers in one loop (a publisher answered while the
# subscribers are being read, as in bench_fanout's one thread: publishing from a process of its
# own ran ~1.5x faster and changed what the server does per delivery); SSE subscribes live (no
# ?from=) and SignalR with Subscribe(stream, 0), as bench_fanout did.
run_fanout() {
    local proto=$1 file=signalr.jsonl live=""
    [[ $proto == sse ]] && file=sse.jsonl live=--live
    echo
    echo "== loadgen --scenario fanout --transport $proto"
    start_server "$tmp/$proto.db" 1
    # shellcheck disable=SC2086
    timeout $((sse_timeout + 60)) "$bin/loadgen" --target hubstream --url "http://127.0.0.1:$port" \
        --pid "$server_pid" --scenario fanout --transport "$proto" $live --check-versions \
        --subs "${FANOUT_SUBS:-1000}" --events "${FANOUT_EVENTS:-100000}" --post-batch 100 \
        --publishers 4 --window 0 --procs 0 --settle-ms 200 --timeout-s "$sse_timeout" \
        --progress-s 5 \
        --results "$results/$file" ${SSE_ARGS:-} || status=1
    stop_server
}

# One catch-up run: a fresh server process on the prefilled database, one subscriber from 0.
run_catchup() {
    local proto=$1 round=$2
    echo
    echo "== loadgen --scenario catchup --transport $proto (run $round of $catchup_repeat)"
    start_server "$tmp/catchup.db" 0
    # shellcheck disable=SC2086
    timeout $((catchup_timeout + 60)) "$bin/loadgen" --target hubstream \
        --url "http://127.0.0.1:$port" --pid "$server_pid" --scenario catchup --transport "$proto" \
        --stream catchup --events "$catchup_events" --check-versions --procs 0 \
        --timeout-s "$catchup_timeout" --results "$results/catchup.jsonl" ${CATCHUP_ARGS:-} ||
        status=1
    stop_server
}

if [[ "${SKIP_SSE:-0}" != 1 ]]; then
    for proto in ${FANOUT_PROTOCOLS:-sse signalr-json signalr-messagepack}; do
        run_fanout "$proto"
    done
fi

catchup_events=${CATCHUP_EVENTS:-1000000}
catchup_repeat=${CATCHUP_REPEAT:-3}
catchup_timeout=${CATCHUP_TIMEOUT_S:-120}
if [[ "${SKIP_CATCHUP:-0}" != 1 ]]; then
    echo
    echo "== bench_ingest --prefill: $catchup_events events onto stream catchup of $tmp/catchup.db"
    if timeout 900 "$bin/bench_ingest" --prefill --db "$tmp/catchup.db" \
        --events "$catchup_events" --stream catchup; then
        for round in $(seq 1 "$catchup_repeat"); do
            for proto in ${CATCHUP_PROTOCOLS:-sse signalr-json}; do
                run_catchup "$proto" "$round"
            done
        done
    else
        status=1
    fi
    rm -f "$tmp/catchup.db"*
fi

echo
echo "== last recorded results"
n_ingest=0
[[ "${SKIP_INGEST:-0}" != 1 ]] && n_ingest=$((n_ingest + 1))
[[ "${SKIP_PG:-0}" != 1 ]] && n_ingest=$((n_ingest + 1))
[[ $n_ingest -gt 0 ]] && tail -n "$n_ingest" "$results/ingest.jsonl" 2>/dev/null
[[ "${SKIP_SSE:-0}" != 1 ]] && tail -n 1 "$results/sse.jsonl" 2>/dev/null
[[ "${SKIP_SSE:-0}" != 1 ]] && tail -n 2 "$results/signalr.jsonl" 2>/dev/null
[[ "${SKIP_CATCHUP:-0}" != 1 ]] && tail -n 2 "$results/catchup.jsonl" 2>/dev/null
exit $status
