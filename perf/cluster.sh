#!/usr/bin/env bash
# perf/cluster.sh: two hubstream nodes on one PostgreSQL against one node, for each backplane.
#
# Starts a throwaway PostgreSQL (tests/pg/pg.sh, fsync on as in a deployment) and a redis-server
# on loopback, then for each step starts fresh hubstream nodes (build/perf, Release) on a new
# database and runs build/perf/bench/loadgen against them; every node and service is stopped by
# its pid at the end. Steps:
#   fanout-1node   SUBS WebSocket (SignalR MessagePack) subscribers on one node, EVENTS events
#                  published on it as fast as delivered: deliveries per server CPU-second
#   fanout-2nodes  the same subscribers split over two nodes (--url2), publishing on both; the
#                  server CPU is both nodes': the figure to hold against one node's (>= 80 %)
#   latency        LAT_SUBS subscribers split over two nodes, RATE events/s for DURATION_S
#                  published on node 1 only: publish-to-receive p50/p99 for node 1's subscribers
#                  (local) and node 2's (crossed the backplane)
# each fanout-2nodes and latency step once per backplane (BACKPLANES, default "postgres redis
# poll"). Results: one JSON line per step appended to perf/results/cluster.jsonl (RESULTS_DIR to
# change; QUICK=1 sizes everything down and keeps nothing: a check that it runs), and a table.
#
# Environment: SUBS (1000), EVENTS (5000), LAT_SUBS (200), RATE (200), DURATION_S (10),
# BACKPLANES, QUICK=1, NO_BUILD=1, STEP_TIMEOUT_S (300), PG_PORT (15436).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/perf"
hubstream_bin=${HUBSTREAM_BIN:-$build/hubstream}
loadgen=${LOADGEN_BIN:-$build/bench/loadgen}
quick=${QUICK:-0}
q() { if [[ "$quick" == 1 ]]; then echo $(( ($1 + $2 - 1) / $2 )); else echo "$1"; fi; }
SUBS=${SUBS:-$(q 1000 10)}
EVENTS=${EVENTS:-$(q 5000 10)}
LAT_SUBS=${LAT_SUBS:-$(q 200 10)}
RATE=${RATE:-200}
DURATION_S=${DURATION_S:-$(q 10 5)}
BACKPLANES=${BACKPLANES:-"postgres redis poll"}
STEP_TIMEOUT_S=${STEP_TIMEOUT_S:-300}
PG_PORT=${PG_PORT:-15436}

tmp=$(mktemp -d /tmp/hubstream-cluster.XXXXXX)
chmod 755 "$tmp" # PostgreSQL runs as its own user under it
results=${RESULTS_DIR:-$([[ "$quick" == 1 ]] && echo "$tmp/results" || echo "$root/perf/results")}
mkdir -p "$results"
out="$results/cluster.jsonl"
pids=()
redis_pid=""

stop_nodes() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
}

# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    stop_nodes
    [[ -n "$redis_pid" ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    "$root/tests/pg/pg.sh" stop "$tmp/pg" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in jq redis-server psql; do
    command -v "$tool" >/dev/null 2>&1 || { echo "cluster.sh: $tool is missing: run scripts/deps.sh --test" >&2; exit 1; }
done
if [[ "${NO_BUILD:-0}" != 1 ]]; then
    echo "== build (Release) in $build"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DHS_BUILD_TESTS=OFF -DHS_BUILD_PERF=ON \
        -DHS_WERROR=OFF >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; exit 1; }
    cmake --build "$build" -j"$(nproc)" --target hubstream loadgen >"$tmp/build.log" 2>&1 ||
        { tail -50 "$tmp/build.log"; exit 1; }
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 12000)) # below the ephemeral range the clients' ports come from
        if port_free "$p"; then echo "$p"; return 0; fi
    done
    return 1
}

echo "== PostgreSQL on 127.0.0.1:$PG_PORT (fsync on), Redis"
PG_FSYNC=on "$root/tests/pg/pg.sh" start "$tmp/pg" "$PG_PORT"
export ODBCSYSINI="$tmp/pg/odbc"
redis_port=$(pick_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$tmp/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 50); do port_free "$redis_port" || break; sleep 0.1; done

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]] && commit="$commit+dirty"
machine="$(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
run_id=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ndb=0
status=0

# Starts $1 nodes with --backplane $2 on a new database: sets node_pids, node_ports.
start_nodes() {
    local n=$1 bp=$2 i p
    ndb=$((ndb + 1))
    local db="hs_bench_$ndb"
    psql "host=127.0.0.1 port=$PG_PORT user=postgres" -qc "CREATE DATABASE $db" >/dev/null
    local dsn="Driver=PostgreSQL Unicode;Server=127.0.0.1;Port=$PG_PORT;Database=$db;Uid=postgres;Pwd=;"
    [[ "$bp" == redis ]] && bp="redis://127.0.0.1:$redis_port"
    node_pids=()
    node_ports=()
    for ((i = 0; i < n; i++)); do
        p=$(pick_port)
        "$hubstream_bin" --listen "127.0.0.1:$p" --db "$dsn" --backplane "$bp" --log-level warn \
            >"$tmp/node$i.log" 2>&1 &
        node_pids+=($!)
        pids+=($!)
        node_ports+=("$p")
        local ok=0
        for _ in $(seq 1 100); do
            if [[ $(curl -s -o /dev/null -w '%{http_code}' -m 1 "http://127.0.0.1:$p/readyz" || true) == 200 ]]; then
                ok=1
                break
            fi
            sleep 0.1
        done
        if [[ $ok != 1 ]]; then
            echo "cluster.sh: node $i did not start:" >&2
            cat "$tmp/node$i.log" >&2
            return 1
        fi
    done
}

# step NAME BACKPLANE NODES loadgen-args...
step() {
    local name=$1 bp=$2 n=$3
    shift 3
    echo "== $name ($bp, $n node(s))"
    if ! start_nodes "$n" "$bp"; then status=1; stop_nodes; return; fi
    local args=(--target hubstream --url "http://127.0.0.1:${node_ports[0]}" --pid "${node_pids[0]}")
    if ((n == 2)); then
        args+=(--url2 "http://127.0.0.1:${node_ports[1]}" --pid2 "${node_pids[1]}")
    fi
    local res rc=0
    res=$(timeout $((STEP_TIMEOUT_S + 60)) "$loadgen" "${args[@]}" --timeout-s "$STEP_TIMEOUT_S" \
        --label "$name" "$@" 2>"$tmp/loadgen.err") || rc=$?
    [[ -s "$tmp/loadgen.err" ]] && sed 's/^/   /' "$tmp/loadgen.err" | head -5 >&2
    if [[ $rc != 0 || -z "$res" ]]; then
        echo "   failed (loadgen exit $rc)" >&2
        status=1
        res=$(jq -nc --arg e "loadgen exited with $rc" '{ok:false,error:$e}')
    fi
    jq -c --arg run "$run_id" --arg c "$commit" --arg m "$machine" --arg s "$name" --arg b "$bp" \
        --argjson n "$n" '{run:$run,commit:$c,machine:$m,step:$s,backplane:$b,nodes:$n} + .' \
        <<<"$res" | tee -a "$out" | jq -c '{step,backplane,ok,deliveries_per_s,deliveries_per_cpu_s,lat1_p50_us,lat1_p99_us,lat2_p50_us,lat2_p99_us}'
    stop_nodes
}

fan=(--scenario fanout --transport ws --subs "$SUBS" --events "$EVENTS" --publishers 4 --procs 2)
step fanout-1node postgres 1 "${fan[@]}"
for bp in $BACKPLANES; do
    step fanout-2nodes "$bp" 2 "${fan[@]}"
    step latency "$bp" 2 --scenario latency --transport ws --subs "$LAT_SUBS" --rate "$RATE" \
        --duration-s "$DURATION_S" --publishers 4 --pub-nodes 1 --live
done

echo "== $out"
jq -r --arg run "$run_id" 'select(.run == $run) | [.step, .backplane,
    (.deliveries_per_cpu_s // "-"), (.lat1_p50_us // "-"), (.lat1_p99_us // "-"),
    (.lat2_p50_us // "-"), (.lat2_p99_us // "-")] | @tsv' "$out" |
    column -t -N "step,backplane,deliv/cpu-s,local p50 us,local p99 us,remote p50 us,remote p99 us"
exit $status
