#!/usr/bin/env bash
# perf/compare.sh: hubstream against nchan, the same scenarios, one table.
#
# For each scenario (SCENARIOS) and each target (TARGETS), a fresh server is started on a random
# high port on 127.0.0.1 (hubstream: build/perf/hubstream on a new SQLite file; nchan: nginx
# with perf/peers/nchan.conf.in, one worker process), build/perf/bench/loadgen runs the scenario
# against it with --pid (the server's CPU and RSS from /proc: nginx's master and its worker),
# and the server is stopped by its pid. Every loadgen result is appended, with the run id, the
# commit and the machine, to perf/results/compare.jsonl; the end prints one table with the ratio
# hubstream / nchan per figure, writes it to perf/results/compare-latest.md and plots PNGs
# (perf/results/compare-*.png); a run of some scenarios or one target writes those two to its
# /tmp/hubstream-compare-partial instead, so the committed ones always come from a whole run.
#
# Scenarios (perf/loadgen.c describes what each measures):
#   fanout    1,000 and 10,000 subscribers, 128-byte events, published as fast as delivered;
#             WebSocket (nchan raw frames, hubstream SignalR MessagePack), hubstream also
#             SignalR JSON, and SSE at 1,000 subscribers
#   latency   1,000 WebSocket subscribers at half of nchan's 1,000-subscriber fan-out publish
#             rate of this run (LAT_RATE overrides it; without a fanout step it must be given)
#   idle      19,000 idle subscribers (SSE, and WebSocket), two client processes on two source
#             addresses: RSS per connection and connections per second
#   ingest    200,000 events over 8 connections, one per request (hubstream also in requests
#             of 100 events)
#   catchup   one subscriber replays a stream from its start (SSE and WebSocket). hubstream:
#             1,000,000 events and, for the ratio, as many as nchan; nchan: NCHAN_CATCHUP_EVENTS
#             (default 20,000), filled at 25,000 messages/s (see perf/README.md for both limits)
#   reconnect 10,000 SSE subscribers (hubstream also WebSocket) drop, miss 100 events, resume
#   moderate  fixed rates, where CPU per delivery and latency at low load count: 150 events/s to
#             1,000 WebSocket subscribers (deliveries per server CPU-second), 50 events/s to
#             1,000 (latency), 100 events/s to one subscriber (latency), each for MOD_DURATION_S,
#             MOD_REPEAT times (default 3, the targets taking turns; the table shows medians)
#   hotstream one stream, 10,000 WebSocket subscribers (HOT_SUBS), HOT_EVENTS events: hubstream
#             with --fanout-workers 1 and with 2 (its subscribers spread over the workers by
#             IO thread), nchan beside each as the reference
#   laggers   1,000 WebSocket subscribers (LAG_SUBS) all replaying a stored stream from its start
#             ("laggers"), against the same subscribers getting NCHAN_CATCHUP_EVENTS events live
#             ("live"), for the server's largest RSS (server_rss_max_kb). Laggers: both targets
#             at NCHAN_CATCHUP_EVENTS; hubstream also at LAG_EVENTS (100,000)
#
# Environment: SCENARIOS, TARGETS (default "hubstream nchan"), QUICK=1 (every size / 10 or
# so: a check that everything runs, not a measurement), SERVER_ARGS (extra hubstream flags),
# STEP_TIMEOUT_S (per loadgen run, default 300), NO_BUILD=1 (use the existing build/perf),
# the sizes below, RESULTS_DIR (default perf/results; with QUICK=1 a temp directory),
# HUBSTREAM_BIN and LOADGEN_BIN (other builds, e.g. the test suite's).
# Needs nginx with nchan, jq and gnuplot: scripts/deps.sh --perf.
# Exit status: non-zero if a build, a server or any step failed (the other steps still run).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/perf"
hubstream_bin=${HUBSTREAM_BIN:-$build/hubstream}
loadgen=${LOADGEN_BIN:-$build/bench/loadgen}
step_timeout=${STEP_TIMEOUT_S:-300}

quick=${QUICK:-0}
tmp=$(mktemp -d /tmp/hubstream-compare.XXXXXX)
# a quick run checks that everything runs; its figures are not kept unless RESULTS_DIR says where
results=${RESULTS_DIR:-$([[ "$quick" == 1 ]] && echo "$tmp/results" || echo "$root/perf/results")}
q() { if [[ "$quick" == 1 ]]; then echo $(( ($1 + $2 - 1) / $2 )); else echo "$1"; fi; }
FANOUT_EVENTS_1K=${FANOUT_EVENTS_1K:-$(q 5000 25)}
FANOUT_SUBS_10K=${FANOUT_SUBS_10K:-$(q 10000 10)}
FANOUT_EVENTS_10K=${FANOUT_EVENTS_10K:-$(q 300 3)}
LAT_SUBS=${LAT_SUBS:-$(q 1000 10)}
LAT_DURATION_S=${LAT_DURATION_S:-$(q 20 5)}
IDLE_SUBS=${IDLE_SUBS:-$(q 19000 10)}
IDLE_HOLD_S=${IDLE_HOLD_S:-$(q 10 5)}
INGEST_EVENTS=${INGEST_EVENTS:-$(q 200000 20)}
CATCHUP_EVENTS=${CATCHUP_EVENTS:-$(q 1000000 100)}
NCHAN_CATCHUP_EVENTS=${NCHAN_CATCHUP_EVENTS:-$(q 20000 10)}
RECONNECT_SUBS=${RECONNECT_SUBS:-$(q 10000 10)}
MOD_DURATION_S=${MOD_DURATION_S:-$(q 20 20)}
# each moderate step runs this many times, the targets taking turns, and the table shows each
# figure's median: on a shared VM one run's latency moves by more than the gaps it measures
MOD_REPEAT=${MOD_REPEAT:-$([[ "$quick" == 1 ]] && echo 1 || echo 3)}
HOT_SUBS=${HOT_SUBS:-$(q 10000 10)}
HOT_EVENTS=${HOT_EVENTS:-$(q 1000 50)}
LAG_SUBS=${LAG_SUBS:-$(q 1000 10)}
# a quick run replays one size only (nchan's)
LAG_EVENTS=${LAG_EVENTS:-$([[ "$quick" == 1 ]] && echo "$NCHAN_CATCHUP_EVENTS" || echo 100000)}
MISSED=${MISSED:-100}
all_scenarios="fanout latency idle ingest catchup reconnect moderate hotstream laggers"
SCENARIOS=${SCENARIOS:-$all_scenarios}
TARGETS=${TARGETS:-"hubstream nchan"}
# results/compare-latest.md and the plots stand for a whole run: a partial one (some scenarios or
# one target) writes them to /tmp/hubstream-compare-partial instead (its lines still go to
# compare.jsonl)
latest=$results
if [[ "$SCENARIOS" != "$all_scenarios" || "$TARGETS" != "hubstream nchan" ]]; then
    latest=/tmp/hubstream-compare-partial
    mkdir -p "$latest"
fi

server_pid=""
server_port=""
server_target=""
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    stop_server || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in jq gnuplot nginx; do
    command -v "$tool" >/dev/null 2>&1 || { echo "compare.sh: $tool is missing:" \
        "run scripts/deps.sh --perf" >&2; exit 1; }
done
[[ -f /usr/lib/nginx/modules/ngx_nchan_module.so ]] || { echo "compare.sh: nchan is missing:" \
    "run scripts/deps.sh --perf" >&2; exit 1; }

if [[ "${NO_BUILD:-0}" != 1 ]]; then
    echo "== build (Release) in $build"
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DHS_BUILD_TESTS=OFF -DHS_BUILD_PERF=ON \
        -DHS_WERROR=OFF >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; exit 1; }
    cmake --build "$build" -j"$(nproc)" --target hubstream loadgen >"$tmp/build.log" 2>&1 ||
        { tail -50 "$tmp/build.log"; exit 1; }
fi

run_id=$(date -u +%Y-%m-%dT%H:%M:%SZ)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    commit="$commit+dirty"
fi
machine="$(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'),"
machine+=" $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), $(uname -r)"
nchan_version=$(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo unknown)
echo "== run $run_id at $commit on $machine; nchan $nchan_version"
mkdir -p "$results"
status=0

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
    local p
    for _ in $(seq 1 50); do
        # below the ephemeral range (32768-60999), where the clients' own ports come from
        p=$((20000 + RANDOM % 12000))
        if port_free "$p"; then echo "$p"; return 0; fi
    done
    return 1
}

# Starts a fresh server of target $1: sets server_pid, server_port, server_target.
start_server() {
    local target=$1 p
    p=$(pick_port) || { echo "compare.sh: no free port" >&2; return 1; }
    if [[ "$target" == hubstream ]]; then
        rm -f "$tmp"/hs.db*
        # shellcheck disable=SC2086
        "$hubstream_bin" --listen "127.0.0.1:$p" --db "$tmp/hs.db" --log-level warn \
            ${SERVER_ARGS:-} >"$tmp/server.log" 2>&1 &
        server_pid=$!
    else
        rm -rf "$tmp/nginx"
        mkdir -p "$tmp/nginx/tmp"
        sed -e "s|@RUN@|$tmp/nginx|g" -e "s|@PORT@|$p|g" "$root/perf/peers/nchan.conf.in" \
            >"$tmp/nginx/nginx.conf"
        nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" \
            >"$tmp/server.log" 2>&1 &
        server_pid=$!
    fi
    server_port=$p
    server_target=$target
    local probe=(-m 1 "http://127.0.0.1:$p/readyz")
    [[ "$target" == nchan ]] && probe=(-m 1 -X POST -d probe "http://127.0.0.1:$p/pub?id=probe")
    for _ in $(seq 1 100); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "compare.sh: $target did not start:" >&2
            cat "$tmp/server.log" >&2
            server_pid=""
            return 1
        fi
        local code
        code=$(curl -s -o /dev/null -w '%{http_code}' "${probe[@]}" || true)
        if [[ "$code" == 20[012] ]]; then return 0; fi
        sleep 0.1
    done
    echo "compare.sh: $target is not answering on port $p" >&2
    stop_server
    return 1
}

# Stops the server by its pid (nginx: QUIT to the master, which stops its worker).
stop_server() {
    [[ -n "$server_pid" ]] || return 0
    local sig=TERM
    [[ "$server_target" == nchan ]] && sig=QUIT
    kill -"$sig" "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
        echo "compare.sh: $server_target (pid $server_pid) did not stop; killing it" >&2
        pkill -KILL -P "$server_pid" 2>/dev/null || true
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# The CPU seconds each thread of process $1 used since it started, by thread name (hubstream names
# its threads hs-io-N, hs-fanout-N, hs-writer, ...): {"hs-fanout-0": [1.23], ...}; {} if unreadable.
threads_cpu() {
    local pid=$1 hz t stat comm rest
    hz=$(getconf CLK_TCK)
    for t in /proc/"$pid"/task/*; do
        stat=$(cat "$t/stat" 2>/dev/null) || continue
        comm=${stat#*(}
        comm=${comm%)*}
        rest=${stat##*) }
        # shellcheck disable=SC2206  # the fields after the name: state is the first; utime and
        local f=($rest)            # stime are fields 14 and 15 of the whole line
        echo "${comm// /_} $(( f[11] + f[12] ))"
    done | jq -Rn --argjson hz "$hz" '[inputs | split(" ") | {n: .[0], s: ((.[1] | tonumber) / $hz)}]
        | group_by(.n) | map({key: .[0].n, value: map(.s * 100 | round / 100)}) | from_entries' \
        2>/dev/null || echo '{}'
}

# Runs loadgen against the running server; appends its result. Extra arguments go to loadgen.
# Prints the result line on stdout; returns 1 if the step failed.
step() {
    local target=$1 name=$2
    shift 2
    echo "-- $target: $name" >&2
    local out rc=0
    out=$(timeout $((step_timeout + 60)) "$loadgen" --target "$target" \
        --url "http://127.0.0.1:$server_port" --pid "$server_pid" --timeout-s "$step_timeout" \
        --label "$name" "$@" 2>"$tmp/loadgen.err") || rc=$?
    if [[ -s "$tmp/loadgen.err" ]]; then sed 's/^/   /' "$tmp/loadgen.err" | head -5 >&2; fi
    if [[ -z "$out" ]]; then
        out=$(jq -nc --arg t "$target" --arg l "$name" --arg e "loadgen exited with $rc" \
            '{target: $t, label: $l, ok: false, error: $e}')
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        out=$(jq -c '.ok = false | .error = "the server died during the run"' <<<"$out")
        rc=1
    elif [[ "$target" == hubstream ]]; then
        # which threads did the work (since the server started: setup included)
        out=$(jq -c --argjson t "$(threads_cpu "$server_pid")" '. + {server_threads_cpu_s: $t}' \
            <<<"$out")
    fi
    local line
    line=$(jq -c --arg r "$run_id" --arg c "$commit" --arg m "$machine" --arg n "$nchan_version" \
        '. + {run_id: $r, commit: $c, machine: $m, nchan: $n}' <<<"$out")
    echo "$line" >>"$results/compare.jsonl"
    echo "$line" >>"$tmp/run.jsonl"
    echo "$out"
    if [[ "$(jq -r .ok <<<"$out")" != true ]]; then
        echo "   FAILED: $(jq -r '.error // "?"' <<<"$out")" >&2
        status=1
        return 1
    fi
    jq -r '[to_entries[] | select(.key | test("per_s|per_cpu|lat_p|rss_per|recover|elapsed"))
            | "\(.key)=\(.value)"] | "   " + join(" ")' <<<"$out" >&2
    jq -r '.server_threads_cpu_s // {} | to_entries | map(select(.key | test("^hs-(io|fanout|writer)")))
           | select(length > 0) | map("\(.key)=\(.value | map(tostring) | join("+"))")
           | "   thread CPU-s: " + join(" ")' <<<"$out" >&2
}

# One step on a fresh server of each target; $1 = targets, $2 = step name, rest = loadgen args.
fresh_step() {
    local targets=$1 name=$2 t
    shift 2
    for t in $targets; do
        [[ " $TARGETS " == *" $t "* ]] || continue
        if start_server "$t"; then
            step "$t" "$name" "$@" >/dev/null || true # recorded; the other steps still run
        else
            status=1
        fi
        stop_server
    done
}

# Fills stream $3 of the running $1 with $2 events for a replay, through the server's own publish
# path; nchan at a paced 25,000 messages/s (faster fills broke its replay: perf/README.md). Its
# stream name must start with "catchup" (loadgen then uses nchan's 1,000,000-message channel).
fill_step() {
    local fill=(--post-batch 100)
    [[ "$1" == nchan ]] && fill=(--rate 25000)
    step "$1" "catchup fill $2" --scenario ingest --stream "$3" --events "$2" --publishers 8 \
        "${fill[@]}" >/dev/null
}

nchan_pub_rate=""
for scenario in $SCENARIOS; do
    echo
    echo "== $scenario"
    case $scenario in
    fanout)
        fresh_step "hubstream nchan" "fanout ws 1k" --scenario fanout --transport ws \
            --subs 1000 --events "$FANOUT_EVENTS_1K"
        fresh_step "hubstream nchan" "fanout ws 10k" --scenario fanout --transport ws \
            --subs "$FANOUT_SUBS_10K" --events "$FANOUT_EVENTS_10K" --procs 2 --src-addrs 2
        fresh_step "hubstream" "fanout signalr-json 1k" --scenario fanout \
            --transport signalr-json --subs 1000 --events "$FANOUT_EVENTS_1K"
        fresh_step "hubstream" "fanout signalr-json 10k" --scenario fanout \
            --transport signalr-json --subs "$FANOUT_SUBS_10K" --events "$FANOUT_EVENTS_10K" \
            --procs 2 --src-addrs 2
        fresh_step "hubstream nchan" "fanout sse 1k" --scenario fanout --transport sse \
            --subs 1000 --events "$FANOUT_EVENTS_1K"
        nchan_pub_rate=$(jq -rs 'map(select(.target == "nchan" and .label == "fanout ws 1k"
                                  and .ok)) | last | .publish_per_s // empty' "$tmp/run.jsonl")
        ;;
    latency)
        rate=${LAT_RATE:-}
        if [[ -z "$rate" && -n "$nchan_pub_rate" ]]; then rate=$(( ${nchan_pub_rate%.*} / 2 )); fi
        if [[ -z "$rate" || "$rate" -lt 1 ]]; then
            echo "compare.sh: latency needs nchan's fan-out rate of this run (SCENARIOS with" \
                 "fanout first) or LAT_RATE" >&2
            status=1
            continue
        fi
        echo "   rate $rate events/s (half of nchan's ${nchan_pub_rate:-?} in this run's fanout ws 1k)"
        fresh_step "hubstream nchan" "latency ws" --scenario latency --transport ws \
            --subs "$LAT_SUBS" --rate "$rate" --duration-s "$LAT_DURATION_S"
        ;;
    idle)
        fresh_step "hubstream nchan" "idle sse" --scenario idle --transport sse \
            --subs "$IDLE_SUBS" --duration-s "$IDLE_HOLD_S" --procs 2 --src-addrs 2
        fresh_step "hubstream nchan" "idle ws" --scenario idle --transport ws \
            --subs "$IDLE_SUBS" --duration-s "$IDLE_HOLD_S" --procs 2 --src-addrs 2
        ;;
    ingest)
        fresh_step "hubstream nchan" "ingest 1/request" --scenario ingest \
            --events "$INGEST_EVENTS" --publishers 8
        fresh_step "hubstream" "ingest 100/request" --scenario ingest \
            --events "$INGEST_EVENTS" --publishers 8 --post-batch 100
        ;;
    catchup)
        for t in $TARGETS; do
            sizes="$NCHAN_CATCHUP_EVENTS"
            [[ "$t" == hubstream && "$CATCHUP_EVENTS" != "$NCHAN_CATCHUP_EVENTS" ]] &&
                sizes="$NCHAN_CATCHUP_EVENTS $CATCHUP_EVENTS"
            for n in $sizes; do
                start_server "$t" || { status=1; continue; }
                if fill_step "$t" "$n" "catchup$n"; then
                    for x in sse ws; do
                        step "$t" "catchup $x $n" --scenario catchup --transport "$x" \
                            --stream "catchup$n" --events "$n" >/dev/null || true
                    done
                fi
                stop_server
            done
        done
        ;;
    reconnect)
        fresh_step "hubstream nchan" "reconnect sse" --scenario reconnect --transport sse \
            --subs "$RECONNECT_SUBS" --missed "$MISSED" --procs 2 --src-addrs 2
        fresh_step "hubstream" "reconnect ws" --scenario reconnect --transport ws \
            --subs "$RECONNECT_SUBS" --missed "$MISSED" --procs 2 --src-addrs 2
        ;;
    moderate)
        for _ in $(seq 1 "$MOD_REPEAT"); do
            fresh_step "hubstream nchan" "rate 150/s ws 1k" --scenario latency --transport ws \
                --subs "$LAT_SUBS" --rate 150 --duration-s "$MOD_DURATION_S"
            fresh_step "hubstream nchan" "rate 50/s ws 1k" --scenario latency --transport ws \
                --subs "$LAT_SUBS" --rate 50 --duration-s "$MOD_DURATION_S"
            fresh_step "hubstream nchan" "rate 100/s ws 1 sub" --scenario latency --transport ws \
                --subs 1 --rate 100 --duration-s "$MOD_DURATION_S"
        done
        ;;
    hotstream)
        for n in 1 2; do
            SERVER_ARGS="--fanout-workers $n --io-threads 2 ${SERVER_ARGS:-}" \
                fresh_step "hubstream nchan" "hot stream ws 10k, $n worker$([[ $n == 1 ]] || echo s)" \
                --scenario fanout --transport ws --subs "$HOT_SUBS" --events "$HOT_EVENTS" \
                --procs 2 --src-addrs 2
        done
        ;;
    laggers)
        for t in $TARGETS; do
            sizes="$NCHAN_CATCHUP_EVENTS"
            [[ "$t" == hubstream && "$LAG_EVENTS" != "$NCHAN_CATCHUP_EVENTS" ]] &&
                sizes="$NCHAN_CATCHUP_EVENTS $LAG_EVENTS"
            # live: the subscribers first, then the events, at the pace they are delivered
            # (flow-controlled, so its memory does not grow with the number of events: one size)
            if start_server "$t"; then
                step "$t" "live ws $LAG_SUBS x $NCHAN_CATCHUP_EVENTS" --scenario fanout \
                    --transport ws --subs "$LAG_SUBS" --events "$NCHAN_CATCHUP_EVENTS" \
                    --procs 2 >/dev/null || true
            else
                status=1
            fi
            stop_server
            for n in $sizes; do
                # laggers: the events first, then every subscriber replays them from the start
                start_server "$t" || { status=1; continue; }
                if fill_step "$t" "$n" "catchup-lag$n"; then
                    step "$t" "laggers ws $LAG_SUBS x $n" --scenario catchup --transport ws \
                        --stream "catchup-lag$n" --events "$n" --subs "$LAG_SUBS" --procs 2 \
                        >/dev/null || true
                fi
                stop_server
            done
        done
        ;;
    *)
        echo "compare.sh: unknown scenario $scenario" >&2
        status=1
        ;;
    esac
done

# ---- the table: one row per (step, figure), hubstream | nchan | ratio ----
[[ -s "$tmp/run.jsonl" ]] || { echo "compare.sh: nothing ran" >&2; exit 1; }
# figure, label in the table, which way is better
figures='[
  ["deliveries_per_cpu_s", "deliveries / server CPU-s", "higher"],
  ["deliveries_per_s", "deliveries / s", "higher"],
  ["lat_p50_us", "p50 latency, us", "lower"],
  ["lat_p99_us", "p99 latency, us", "lower"],
  ["lat_p999_us", "p99.9 latency, us", "lower"],
  ["rss_per_conn_bytes", "server RSS / connection, bytes", "lower"],
  ["conns_per_s", "connections / s", "higher"],
  ["events_per_s", "events / s", "higher"],
  ["recover_s", "all caught up after, s", "lower"],
  ["server_rss_max_kb", "server RSS (largest), KiB", "lower"]]'
# a step run several times (MOD_REPEAT) shows each figure's median (the lower middle one); a
# step that failed once shows as failed
jq -rs --argjson f "$figures" '
  def fmt: if . == null then "-" elif . >= 100 then (. | round | tostring)
           else (. * 100 | round / 100 | tostring) end;
  def agg($keys): if length == 0 then null
    elif (map(.ok) | all | not) then (map(select(.ok | not)) | last)
    else . as $rs | reduce $keys[] as $k ($rs | last;
      ($rs | map(.[$k]) | map(select(. != null)) | sort) as $v
      | if ($v | length) == 0 then . else .[$k] = $v[(($v | length) - 1) / 2 | floor] end)
    end;
  ($f | map(.[0])) as $keys
  | . as $all
  | [ $all[] | select(.label != null and (.label | startswith("catchup fill") | not)) | .label ]
  | reduce .[] as $l ([]; if index([$l]) then . else . + [$l] end)
  | .[] as $lab
  | ($all | map(select(.label == $lab))) as $rows
  | ($rows | map(select(.target == "hubstream")) | agg($keys)) as $h
  | ($rows | map(select(.target == "nchan")) | agg($keys)) as $n
  | (if (($h != null and ($h.ok | not)) or ($n != null and ($n.ok | not)))
     then [ $lab, "the step failed (error in compare.jsonl)",
            (if $h == null then "-" elif $h.ok then "ok" else "failed" end),
            (if $n == null then "-" elif $n.ok then "ok" else "failed" end), "-" ]
     else empty end),
    ($f[] as [$key, $name, $better]
  | select(($h[$key] // $n[$key]) != null)
  | select($key != "deliveries_per_s" or ($lab | startswith("fanout")))
  | select(($key | startswith("lat_") | not) or ($lab | test("^(fanout|latency|rate)")))
  | select($key != "conns_per_s" or ($lab | startswith("idle")))
  | select($key != "server_rss_max_kb" or ($lab | test("^(live|laggers) ")))
  | [ $lab, $name,
      (if $h == null then "-" elif $h.ok then ($h[$key] | fmt) else "failed" end),
      (if $n == null then "-" elif $n.ok then ($n[$key] | fmt) else "failed" end),
      (if ($h.ok and $n.ok and $h[$key] != null and $n[$key] != null and $n[$key] > 0)
       then ($h[$key] / $n[$key] * 100 | round / 100 | tostring) + " (" + $better + " is better)"
       else "-" end) ])
  | @tsv' "$tmp/run.jsonl" >"$tmp/table.tsv"

{
    echo "# hubstream vs nchan: latest run"
    echo
    echo "Run $run_id, commit $commit, $machine, nchan $nchan_version (one nginx worker)."
    echo "Command: \`SCENARIOS=\"$SCENARIOS\" TARGETS=\"$TARGETS\" QUICK=$quick ./perf/compare.sh\`" \
         "(sizes and other settings: the JSON lines of run $run_id in compare.jsonl)."
    if [[ " $SCENARIOS " == *" moderate "* && "$MOD_REPEAT" -gt 1 ]]; then
        echo "The moderate steps (rate ...) ran $MOD_REPEAT times each, the targets taking turns:" \
             "each of their figures is the median."
    fi
    echo
    echo "| step | figure | hubstream | nchan | hubstream / nchan |"
    echo "| --- | --- | ---: | ---: | --- |"
    awk -F'\t' '{printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5}' "$tmp/table.tsv"
} >"$latest/compare-latest.md"
echo
echo "== hubstream / nchan ($run_id, $commit)"
column -t -s $'\t' -N step,figure,hubstream,nchan,ratio "$tmp/table.tsv" 2>/dev/null ||
    cat "$tmp/table.tsv"

# ---- plots: one grouped bar chart per figure, hubstream and nchan side by side ----
plot() { # $1 = figure key, $2 = title, $3 = file stem
    local data="$tmp/plot-$3.dat"
    jq -rs --arg k "$1" '
      map(select(.ok and .[$k] != null and (.label | startswith("catchup fill") | not)))
      | . as $rows
      | reduce (.[] | .label) as $l ([]; if index([$l]) then . else . + [$l] end)
      | .[] as $l
      | ($rows | map(select(.label == $l))) as $g
      | [ $l,
          (($g | map(select(.target == "hubstream") | .[$k]) | sort
               | .[((length - 1) / 2 | floor)]) // "NaN"),
          (($g | map(select(.target == "nchan") | .[$k]) | sort
               | .[((length - 1) / 2 | floor)]) // "NaN") ] | @tsv' \
        "$tmp/run.jsonl" >"$data"
    [[ -s "$data" ]] || return 0
    gnuplot <<EOF || { echo "compare.sh: gnuplot failed for $3" >&2; status=1; }
set terminal pngcairo size 900,480 font "sans,10"
set output "$latest/compare-$3.png"
set title "$2 ($run_id, $commit)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set yrange [0:*]
set key outside top center horizontal
set xtics rotate by -25 scale 0
set bmargin 6
set datafile separator "\t"
set datafile missing "NaN"
plot "$data" using 2:xtic(1) title "hubstream" lc rgb "#2a6fbb", \
     "" using 3 title "nchan" lc rgb "#c0504d"
EOF
}
plot deliveries_per_cpu_s "fan-out: deliveries per server CPU-second" fanout
plot lat_p99_us "latency p99, microseconds (lower is better)" latency
plot rss_per_conn_bytes "idle: server RSS per connection, bytes (lower is better)" idle
plot events_per_s "ingest and catch-up: events per second" events
plot recover_s "reconnect storm: seconds until every subscriber caught up" reconnect
echo
echo "results: $results/compare.jsonl; $latest/compare-latest.md, compare-*.png"
exit "$status"
