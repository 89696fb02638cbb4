#!/usr/bin/env bash
# End-to-end test of docker/compose.yml with podman: builds the base image if it is missing and
# the four images (cached layers make a rebuild quick), starts PostgreSQL and Redis, waits for
# their health, starts the two nodes and haproxy, waits for theirs (HEALTHCHECKs, /readyz, the
# backplane connected, haproxy's /healthz and both nodes UP in its stats), then checks:
#   - replay across nodes: published on node1, read back from node2 (one shared database);
#   - no psqlODBC log files in node1's /tmp (the image's odbcinst.ini says CommLog=0);
#   - live delivery across nodes: an SSE subscription open on node2, a publish on node1, the
#     event must reach node2's subscriber within 5 s (the backplane's job);
#   - the same through haproxy, the subscriber pinned to node2 and the publisher to node1 by
#     the HSNODE cookie;
#   - both live checks once per backplane in BACKPLANES (default "postgres redis://redis:6379";
#     the nodes are recreated for the second);
#   - SignalR long polling through haproxy: without the cookie a request of the connection
#     reaches the other node (404: the control); with it, negotiate and 10 requests succeed;
#   - a WebSocket upgrade without negotiate (skipNegotiation) passes haproxy: 101.
# Then it removes everything it started (containers, their volumes, the network), also on
# failure or interruption; the images stay (the next build's cache). Exit status 0 only if
# every check passed; the last line is a one-line summary. Reads no stdin; every wait has a
# timeout, and the whole run is bounded by TEST_TIMEOUT seconds (default 2400; a first build,
# base image included, took 400 s here).
#
# Environment: SKIP_BUILD=1 uses the images as they are; KEEP=1 leaves the containers running
# (for a look; then `podman-compose -f docker/compose.yml -p hubstream-test down -v` and
# `podman network rm hubstream-test_default`); PROJECT (hubstream-test) and the host ports
# HS_NODE1_PORT, HS_NODE2_PORT, HS_HAPROXY_PORT, HS_STATS_PORT (15001, 15002, 18080, 18404)
# keep it apart from a compose started by hand.
set -euo pipefail
exec </dev/null
# The script's own stdout and stderr, for the exit trap: a signal that arrives while a command
# runs with its output sent to /dev/null (wait_for's probes) runs the trap with those
# redirections still in place, and the summary would be lost.
exec 8>&1 9>&2

here=$(cd "$(dirname "$0")" && pwd)
if [[ -z ${HS_TEST_INNER:-} ]]; then
  # The whole run under one deadline; SIGTERM from timeout still runs the cleanup below,
  # which has 180 s before timeout sends SIGKILL.
  export HS_TEST_INNER=1
  exec timeout -k 180 "${TEST_TIMEOUT:-2400}" "$0" "$@"
fi

export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
project=${PROJECT:-hubstream-test}
export HS_NODE1_PORT=${HS_NODE1_PORT:-15001} HS_NODE2_PORT=${HS_NODE2_PORT:-15002}
export HS_HAPROXY_PORT=${HS_HAPROXY_PORT:-18080} HS_STATS_PORT=${HS_STATS_PORT:-18404}
node1=http://127.0.0.1:$HS_NODE1_PORT
node2=http://127.0.0.1:$HS_NODE2_PORT
proxy=http://127.0.0.1:$HS_HAPROXY_PORT
work=$(mktemp -d /tmp/hubstream-docker-test.XXXXXX)
start=$SECONDS
passed=0 failed=0 failures=()

log() { echo "test.sh [$((SECONDS - start))s] $*"; }
pass() { passed=$((passed + 1)); log "PASS $1"; }
fail() { failed=$((failed + 1)); failures+=("$1"); log "FAIL $1${2:+: $2}"; }
compose() { timeout 300 podman-compose -f "$here/compose.yml" -p "$project" "$@"; }
project_containers() {
  timeout 30 podman ps -a --filter "label=io.podman.compose.project=$project" --format '{{.Names}}'
}

# The containers of this project (by its label; the names are PROJECT_SERVICE_1), their
# volumes and its network. podman-compose 1.0.3's `down -v` leaves the network, so this does
# it by hand: haproxy and the nodes first (SIGTERM, 10 s), then PostgreSQL and Redis.
remove_project() {
  local names
  names=$(project_containers | grep -v -e '_postgres_1$' -e '_redis_1$' || true)
  [[ -z $names ]] || timeout 60 podman rm -f -v -t 10 $names >/dev/null 2>&1 || true
  names=$(project_containers || true)
  [[ -z $names ]] || timeout 60 podman rm -f -v -t 10 $names >/dev/null 2>&1 || true
  for v in pgdata node1-data node2-data; do
    timeout 30 podman volume rm -f "${project}_$v" >/dev/null 2>&1 || true
  done
  timeout 30 podman network rm -f "${project}_default" >/dev/null 2>&1 || true
}
cleanup() {
  # background subscribers of this script (timeout + curl), by their process ids
  for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
  if [[ -n ${KEEP:-} ]]; then
    log "KEEP=1: containers left running: $(project_containers | tr '\n' ' ')"
  else
    log "cleanup: removing the containers, volumes and network of project $project"
    remove_project
  fi
  rm -rf "$work"
}
# On any exit (the end, a fatal step, Ctrl-C, the overall timeout): clean up, then one line.
on_exit() {
  local rc=$? result=PASS
  trap - EXIT INT TERM
  exec 1>&8 2>&9
  ((rc == 0 && failed == 0)) || result=FAIL
  cleanup
  local line="docker/test.sh: $result, $passed passed, $failed failed in $((SECONDS - start)) s"
  ((failed == 0)) || line+=" (failed: $(IFS=';'; echo "${failures[*]}"))"
  ((rc == 0 || failed > 0)) || line+=" (stopped early, status $rc)"
  echo "$line"
  ((rc != 0)) || ((failed == 0)) || rc=1
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 143' INT TERM

# wait_for SECONDS DESCRIPTION COMMAND...: runs COMMAND every half second until it succeeds.
wait_for() {
  local limit=$1 what=$2 t0=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS - t0 >= limit)); then
      log "timed out after ${limit}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
  log "$what after $((SECONDS - t0))s"
}
healthy() { timeout 10 podman healthcheck run "$1"; }
http_ok() { curl -fsS -m 3 -o /dev/null "$1"; }
both_up() {
  local csv
  csv=$(curl -fsS -m 3 "http://127.0.0.1:$HS_STATS_PORT/stats;csv") || return 1
  grep -q '^hubstream,node1,.*,UP,' <<<"$csv" && grep -q '^hubstream,node2,.*,UP,' <<<"$csv"
}

# subscribe NAME FILE URL [curl args]: an SSE subscriber in the background (at most 60 s),
# writing the stream to FILE; returns once the server answered (the "retry:" line came).
subscribe() {
  local name=$1 file=$2 url=$3
  shift 3
  : >"$file"
  timeout 60 curl -sS -N -H 'Accept: text/event-stream' "$@" "$url" >"$file" 2>"$file.err" &
  sub_pid=$!
  wait_for 10 "$name subscribed" grep -q '^retry:' "$file"
}
# publish URL MARKER [curl args]: one event whose data holds MARKER; fails unless 201.
publish() {
  local url=$1 marker=$2 code
  shift 2
  code=$(curl -sS -m 10 -o "$work/publish.out" -w '%{http_code}' -X POST "$@" "$url" \
    -H 'Content-Type: application/json' -d "{\"type\":\"docker.test\",\"data\":{\"marker\":\"$marker\"}}")
  [[ $code == 201 ]] || { log "publish to $url answered $code: $(cat "$work/publish.out")"; return 1; }
}
# live_check LABEL SUB_URL PUB_URL [SUB_CURL_ARGS -- PUB_CURL_ARGS]
live_check() {
  local label=$1 sub_url=$2 pub_url=$3 marker="m-$RANDOM-$$-$SECONDS" sub_args=() pub_args=()
  shift 3
  while (($#)) && [[ $1 != -- ]]; do sub_args+=("$1"); shift; done
  (($#)) && shift
  pub_args=("$@")
  local file="$work/sse-$RANDOM"
  if ! subscribe "$label: subscriber" "$file" "$sub_url" "${sub_args[@]}"; then
    fail "$label" "the subscription did not start ($(cat "$file.err" 2>/dev/null))"
    return
  fi
  if [[ -n ${after_subscribe:-} ]] && ! $after_subscribe; then
    fail "$label" "the subscription is not where it should be"
    kill "$sub_pid" 2>/dev/null || true
    return
  fi
  if ! publish "$pub_url" "$marker" "${pub_args[@]}"; then
    fail "$label" "the publish failed"
    kill "$sub_pid" 2>/dev/null || true
    return
  fi
  if wait_for 5 "$label: event delivered" grep -q "$marker" "$file"; then
    pass "$label"
  else
    fail "$label" "the event published at $pub_url did not reach the subscriber at $sub_url within 5 s"
  fi
  kill "$sub_pid" 2>/dev/null || true
}

log "project $project; ports node1 $HS_NODE1_PORT, node2 $HS_NODE2_PORT, haproxy $HS_HAPROXY_PORT"
# Leftovers of an earlier run of this script (same project), so that `up` starts afresh.
if [[ -n $(project_containers) ]]; then
  log "removing the containers of an earlier run of project $project"
  remove_project
fi

# 1. images
if [[ -z ${SKIP_BUILD:-} ]]; then
  log "building the images (docker/build.sh; log in $work/build.log while it runs)"
  if "$here/build.sh" >"$work/build.log" 2>&1; then
    pass "images built"
  else
    tail -n 40 "$work/build.log"
    fail "images built"
    exit 1
  fi
fi

# 2. PostgreSQL and Redis first: a node exits if the database cannot be opened at its start.
log "starting postgres and redis"
compose up -d postgres redis >"$work/up1.log" 2>&1 || { cat "$work/up1.log"; fail "compose up"; exit 1; }
if wait_for 90 "postgres healthy" healthy "${project}_postgres_1" &&
   wait_for 30 "redis healthy" healthy "${project}_redis_1"; then
  pass "postgres and redis healthy"
else
  timeout 10 podman logs --tail 30 "${project}_postgres_1" 2>&1 || true
  fail "postgres and redis healthy"
  exit 1
fi

# 3. the nodes and haproxy, the nodes with the first backplane of BACKPLANES
read -r -a backplanes <<<"${BACKPLANES:-postgres redis://redis:6379}"
export HS_BACKPLANE=${backplanes[0]}
# start_nodes: (re)creates the nodes with $HS_BACKPLANE (and haproxy the first time), waits for
# their health, the database, the backplane's connection and haproxy's view of them.
start_nodes() {
  local services=(node1 node2) ok=1 n
  if [[ -n $(project_containers | grep -e '_node1_1$' -e '_node2_1$') ]]; then
    # podman-compose 1.0.3 does not recreate a container whose settings changed: remove first
    timeout 60 podman rm -f -v -t 10 "${project}_node1_1" "${project}_node2_1" >/dev/null 2>&1 || true
  else
    services+=(haproxy)
  fi
  log "starting ${services[*]} (--backplane $HS_BACKPLANE)"
  compose up -d "${services[@]}" >"$work/up2.log" 2>&1 || { cat "$work/up2.log"; return 1; }
  for n in node1 node2; do
    wait_for 60 "$n healthy" healthy "${project}_${n}_1" || ok=
    wait_for 30 "$n: backplane connected" backplane_connected "${project}_${n}_1" || ok=
  done
  wait_for 30 "node1 ready (database connected)" http_ok "$node1/readyz" || ok=
  wait_for 30 "node2 ready (database connected)" http_ok "$node2/readyz" || ok=
  wait_for 30 "haproxy answers /healthz" http_ok "$proxy/healthz" || ok=
  # after a restart the nodes have new addresses: haproxy finds them through its resolvers
  wait_for 30 "haproxy sees both nodes UP" both_up || ok=
  if [[ -z $ok ]]; then
    for n in node1 node2 haproxy; do
      echo "--- $n"; timeout 10 podman logs --tail 20 "${project}_${n}_1" 2>&1 || true
    done
    return 1
  fi
}
# the node's log says which backplane it connected ("backplane connected", with its kind)
backplane_connected() {
  timeout 10 podman logs "$1" 2>&1 | grep '"backplane connected"' | grep -q "\"${HS_BACKPLANE%%:*}\""
}
if start_nodes; then
  pass "nodes and haproxy healthy (backplane $HS_BACKPLANE)"
else
  fail "nodes and haproxy healthy (backplane $HS_BACKPLANE)"
  exit 1
fi

# 4. one database behind both nodes: what node 1 commits, node 2 reads back
stream="docker-test-$$-$RANDOM"
marker="replay-$RANDOM"
if publish "$node1/api/streams/$stream/events" "$marker" &&
   curl -fsS -m 5 "$node2/api/streams/$stream/events?from=0" | grep -q "$marker"; then
  pass "replay across nodes (publish on node1, read on node2)"
else
  fail "replay across nodes (publish on node1, read on node2)"
fi

# psqlODBC writes a log file per connection into /tmp when odbcinst.ini says CommLog=1
# (Debian's default); the image sets CommLog=0, so the nodes' /tmp must stay empty.
tmp_files=$(timeout 10 podman exec "${project}_node1_1" ls -A /tmp 2>&1) || tmp_files="podman exec failed: $tmp_files"
if [[ -z $tmp_files ]]; then
  pass "no psqlODBC log files in node1's /tmp (CommLog=0)"
else
  fail "no psqlODBC log files in node1's /tmp (CommLog=0)" "$(head -c 200 <<<"$tmp_files")"
fi

subscribers() { # URL: the stream's "subscribers" count there
  curl -fsS -m 5 "$1" | sed -n 's/.*"subscribers":\([0-9]*\).*/\1/p'
}
on_node2_only() {
  local n1 n2
  # the subscriber of the direct check was stopped; its node may take a moment to count it out
  wait_for 5 "node2 counts one subscriber" test "$(subscribers "$node2/api/streams/$stream")" = 1 || return 1
  n1=$(subscribers "$node1/api/streams/$stream") n2=$(subscribers "$node2/api/streams/$stream")
  log "subscribers of $stream: node1 $n1, node2 $n2"
  [[ $n1 == 0 && $n2 == 1 ]]
}
# 5. live delivery across nodes, for each backplane: directly (subscribe on node2, publish on
# node1), then through haproxy with each side pinned to its node by the cookie (the
# subscription must be counted on node2 and not on node1: stream info counts a node's own).
for bp in "${backplanes[@]}"; do
  if [[ $bp != "$HS_BACKPLANE" ]]; then
    export HS_BACKPLANE=$bp
    if start_nodes; then
      pass "nodes restarted with backplane $bp"
    else
      fail "nodes restarted with backplane $bp"
      continue
    fi
  fi
  live_check "live across nodes, backplane $bp (subscribe on node2, publish on node1)" \
    "$node2/api/streams/$stream/events" "$node1/api/streams/$stream/events"
  after_subscribe=on_node2_only live_check \
    "live through haproxy, backplane $bp (subscribe pinned to node2, publish pinned to node1)" \
    "$proxy/api/streams/$stream/events" "$proxy/api/streams/$stream/events" \
    -b HSNODE=node2 -- -b HSNODE=node1
done

# 6. SignalR stickiness: everything after the negotiate carries its cookie and must reach the
# node that negotiated (any other node answers 404 for the unknown connection token).
signalr_sticky() {
  local jar="$work/cookies" rs=$'\x1e' body token code node
  rm -f "$jar"
  body=$(curl -fsS -m 5 -c "$jar" -X POST "$proxy/hub/negotiate?negotiateVersion=1") || return 1
  token=$(sed -n 's/.*"connectionToken":"\([^"]*\)".*/\1/p' <<<"$body")
  node=$(awk '$6 == "HSNODE" {print $7}' "$jar")
  [[ -n $token && -n $node ]] || { log "negotiate: no token or no HSNODE cookie"; return 1; }
  log "negotiated through haproxy on $node"
  local url="$proxy/hub?id=$token"
  # long polling starts with a poll that the server answers at once, empty
  code=$(curl -sS -m 5 -b "$jar" -o /dev/null -w '%{http_code}' "$url")
  [[ $code == 200 ]] || { log "first poll answered $code"; return 1; }
  code=$(curl -sS -m 5 -b "$jar" -o /dev/null -w '%{http_code}' -X POST "$url" \
    --data-binary "{\"protocol\":\"json\",\"version\":1}$rs")
  [[ $code == 200 ]] || { log "handshake POST answered $code"; return 1; }
  body=$(curl -sS -m 10 -b "$jar" "$url") || return 1
  [[ $body == "{}$rs"* ]] || { log "poll: no handshake answer: $body"; return 1; }
  for i in 1 2 3; do
    code=$(curl -sS -m 5 -b "$jar" -o /dev/null -w '%{http_code}' -X POST "$url" \
      --data-binary "{\"type\":1,\"invocationId\":\"$i\",\"target\":\"GetStream\",\"arguments\":[\"$stream\"]}$rs")
    [[ $code == 200 ]] || { log "invocation $i POST answered $code"; return 1; }
    body=$(curl -sS -m 10 -b "$jar" -w '\n%{http_code}' "$url") || return 1
    [[ ${body##*$'\n'} == 200 ]] || { log "poll $i answered ${body##*$'\n'}"; return 1; }
    grep -q "\"invocationId\":\"$i\"" <<<"$body" || { log "poll $i: no completion: $body"; return 1; }
  done
  code=$(curl -sS -m 5 -b "$jar" -o /dev/null -w '%{http_code}' -X DELETE "$url")
  [[ $code == 202 || $code == 200 || $code == 204 ]] || { log "DELETE answered $code"; return 1; }
}
# The control: without the cookie, round-robin sends the connection's next requests to the
# other node too, which does not know the token (404). Shows that the cookie is what works.
signalr_unsticky() {
  local body token code codes=""
  body=$(curl -fsS -m 5 -X POST "$proxy/hub/negotiate?negotiateVersion=1") || return 1
  token=$(sed -n 's/.*"connectionToken":"\([^"]*\)".*/\1/p' <<<"$body")
  for i in 1 2; do
    # a POST before the first poll: 400 on the node that has the connection, 404 elsewhere
    code=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' -X POST "$proxy/hub?id=$token" --data-binary x)
    codes+=" $code"
  done
  log "without the cookie the connection's requests got:$codes"
  [[ $codes == *404* ]]
}
if signalr_unsticky; then
  pass "control: SignalR without the cookie reaches the other node (404)"
else
  fail "control: SignalR without the cookie reaches the other node (404)"
fi
if signalr_sticky; then
  pass "SignalR long polling sticky through haproxy (negotiate + 10 requests, cookie)"
else
  fail "SignalR long polling sticky through haproxy (negotiate + 10 requests, cookie)"
fi

# 7. A WebSocket upgrade without negotiate (skipNegotiation) passes haproxy: 101 from a node.
# curl cannot speak WebSocket frames; the 101 and its headers are what haproxy has to pass on.
ws_code=$(timeout 10 curl -sS -m 3 -o /dev/null -w '%{http_code}' "$proxy/hub" \
  -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
  -H 'Sec-WebSocket-Key: aHVic3RyZWFtLWRvY2tlcg==' 2>/dev/null) || true
if [[ $ws_code == 101 ]]; then
  pass "WebSocket upgrade through haproxy (skipNegotiation): 101"
else
  fail "WebSocket upgrade through haproxy (skipNegotiation): 101" "got '$ws_code'"
fi

exit 0
