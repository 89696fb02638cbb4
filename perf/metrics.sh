#!/usr/bin/env bash
# perf/metrics.sh: live fan-out with /metrics scraped every second against no scraping, in one
# run (what a Prometheus server watching hubstream costs it).
#
#   perf/metrics.sh     REPEAT (2) rounds of: no scraping, then scraping every SCRAPE_S (1) s
#
# Each case starts a fresh hubstream (Release, build/perf, SQLite in a temp dir, --listen
# 127.0.0.1:0 and the port read from its log) and runs perf/loadgen's fan-out against it: SUBS
# (1000) SignalR MessagePack WebSocket subscribers, EVENTS (20000) events of 128 bytes in POSTs
# of POST_BATCH (100) over 4 connections, every event checked at every subscriber. In the
# scraped case a curl loop fetches /metrics every SCRAPE_S seconds while loadgen runs (each
# answer must be a 200 with hubstream_events_appended_total in it). Figures per case:
# deliveries/s and deliveries per server CPU-second (the scrapes' own cost included); the table
# gives scraped / none per round. Every loadgen result is appended to perf/results/metrics.jsonl
# (RESULTS_DIR to change). Loopback only; each server is stopped by its pid; the temp dir goes
# at exit.
#
# Environment: SUBS (1000), EVENTS (20000), POST_BATCH (100), REPEAT (2), SCRAPE_S (1),
# STEP_TIMEOUT_S (300), NO_BUILD=1, RESULTS_DIR.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/perf"
hubstream_bin=${HUBSTREAM_BIN:-$build/hubstream}
loadgen=${LOADGEN_BIN:-$build/bench/loadgen}
SUBS=${SUBS:-1000}
EVENTS=${EVENTS:-20000}
POST_BATCH=${POST_BATCH:-100}
REPEAT=${REPEAT:-2}
SCRAPE_S=${SCRAPE_S:-1}
STEP_TIMEOUT_S=${STEP_TIMEOUT_S:-300}
results=${RESULTS_DIR:-$root/perf/results}
exec </dev/null

tmp=$(mktemp -d /tmp/hubstream-metrics.XXXXXX)
server_pid=""
scraper_pid=""
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
stop_scraper() {
    [[ -n "$scraper_pid" ]] || return 0
    kill "$scraper_pid" 2>/dev/null || true
    wait "$scraper_pid" 2>/dev/null || true
    scraper_pid=""
}
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    stop_scraper
    stop_server
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
command -v jq >/dev/null || { echo "metrics.sh: needs jq (scripts/deps.sh --perf)" >&2; exit 1; }

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
out="$results/metrics.jsonl"
echo "== run $run_id at $commit: $SUBS subscribers x $EVENTS events, POSTs of $POST_BATCH," \
    "scrapes every ${SCRAPE_S}s, load $(cut -d' ' -f1-3 /proc/loadavg)"

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
# run_case NAME ROUND: one case on a fresh server; NAME scraped runs the scraper alongside
run_case() {
    local name=$1 round=$2 res rc=0
    echo "== $name, round $round"
    if ! start_server; then
        echo "   the server did not start" >&2
        status=1
        return
    fi
    : >"$tmp/scrapes"
    if [[ $name == scraped ]]; then
        (
            while :; do
                code=$(curl -s -o "$tmp/scrape.txt" -w '%{http_code}' \
                    "http://127.0.0.1:$server_port/metrics" || echo 000)
                if [[ $code == 200 ]] && grep -q '^hubstream_events_appended_total ' "$tmp/scrape.txt"; then
                    echo ok >>"$tmp/scrapes"
                else
                    echo "bad $code" >>"$tmp/scrapes"
                fi
                sleep "$SCRAPE_S"
            done
        ) &
        scraper_pid=$!
    fi
    res=$(timeout $((STEP_TIMEOUT_S + 60)) "$loadgen" --target hubstream \
        --url "http://127.0.0.1:$server_port" --pid "$server_pid" --scenario fanout \
        --transport ws --live --check-versions --subs "$SUBS" --events "$EVENTS" \
        --post-batch "$POST_BATCH" --publishers 4 --settle-ms 200 \
        --timeout-s "$STEP_TIMEOUT_S" --label "metrics-$name" 2>"$tmp/loadgen.err") || rc=$?
    stop_scraper
    local scrapes bad
    scrapes=$(grep -c . "$tmp/scrapes" || true)
    bad=$(grep -c '^bad' "$tmp/scrapes" || true)
    [[ -s "$tmp/loadgen.err" ]] && sed 's/^/   /' "$tmp/loadgen.err" | head -5 >&2
    if [[ $rc != 0 || -z "$res" || $bad != 0 ]]; then
        echo "   failed (loadgen exit $rc, $bad bad scrapes)" >&2
        status=1
        [[ -n "$res" ]] || res=$(jq -nc --arg e "loadgen exited with $rc" '{ok:false,error:$e}')
    fi
    jq -c --arg run "$run_id" --arg c "$commit" --arg m "$machine" --arg case "$name" \
        --argjson r "$round" --argjson s "$scrapes" --argjson b "$POST_BATCH" \
        '{run:$run,commit:$c,machine:$m,case:$case,round:$r,scrapes:$s,post_batch:$b} + .' \
        <<<"$res" | tee -a "$out" |
        jq -c '{case,round,scrapes,ok,deliveries_per_s,deliveries_per_cpu_s,server_cpu_s,lat_p50_us}'
    stop_server
}

for round in $(seq 1 "$REPEAT"); do
    run_case none "$round"
    run_case scraped "$round"
done

echo "== $out ($run_id)"
jq -rs --arg run "$run_id" '
  [.[] | select(.run == $run and .ok == true)] as $r
  | def fig(c; n; k): [$r[] | select(.case == c and .round == n) | .[k]] | first;
    def ratio(a; b): if a and b then (a / b * 1000 | round / 1000) else "-" end;
  [$r[] | .round] | unique[] as $n
  | fig("none"; $n; "deliveries_per_s") as $ns | fig("scraped"; $n; "deliveries_per_s") as $ss
  | fig("none"; $n; "deliveries_per_cpu_s") as $nc | fig("scraped"; $n; "deliveries_per_cpu_s") as $sc
  | [$n, ($ns // "-"), ($ss // "-"), ratio($ss; $ns), ($nc // "-"), ($sc // "-"), ratio($sc; $nc),
     (fig("scraped"; $n; "scrapes") // "-")] | @tsv
' "$out" | column -t -s $'\t' -N "round,none deliv/s,scraped deliv/s,ratio,none deliv/cpu-s,scraped deliv/cpu-s,ratio,scrapes"
exit $status
