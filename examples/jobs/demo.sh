#!/bin/sh
# The job-stream pattern end to end on a throwaway server: hubstream with a retention rule for
# job-* streams, a watcher that is there from the start, a worker, a watcher that comes after the
# job ended (and still gets everything, then the close marker), and the same stream once
# retention has dropped its events (the close marker at once, publishing refused with 410).
#
#   examples/jobs/demo.sh            (HUBSTREAM_BIN: the server binary, default build/normal/hubstream)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${HUBSTREAM_BIN:-$HERE/../../build/normal/hubstream}
[ -x "$BIN" ] || BIN=$(command -v hubstream) || { echo "no hubstream binary: set HUBSTREAM_BIN" >&2; exit 1; }
AGE=3
DIR=$(mktemp -d)
SERVER_PID=
WATCH_PID=
cleanup() {
  [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null || true
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

"$BIN" --listen 127.0.0.1:0 --db "$DIR/demo.db" --retention "job-*:max-age=${AGE}s" 2>"$DIR/server.log" &
SERVER_PID=$!
i=0
until grep -q '"msg":"listening"' "$DIR/server.log" 2>/dev/null; do
  i=$((i + 1)); [ $i -lt 100 ] || { echo "the server did not start:" >&2; cat "$DIR/server.log" >&2; exit 1; }
  sleep 0.1
done
PORT=$(sed -n 's/.*"msg":"listening".*"addr":"[^"]*:\([0-9]*\)".*/\1/p' "$DIR/server.log" | head -n 1)
export HUBSTREAM_URL="http://127.0.0.1:$PORT"
JOB=demo-$$
echo "== hubstream on $HUBSTREAM_URL, --retention 'job-*:max-age=${AGE}s'; job stream job-$JOB"

echo "== a watcher, there before the job starts"
node "$HERE/jobs.mjs" watch "$JOB" | sed 's/^/   [early watcher] /' &
WATCH_PID=$!
sleep 0.3

echo "== the worker"
node "$HERE/jobs.mjs" worker "$JOB" --steps 4 --interval-ms 200 | sed 's/^/   [worker] /'
wait "$WATCH_PID"; WATCH_PID=

echo "== a watcher that comes after the job ended"
node "$HERE/jobs.mjs" watch "$JOB" | sed 's/^/   [late watcher] /'

echo "== after ${AGE}s (and the next retention sweep) the events are gone, the closed stream is not"
sleep $((AGE + 2))
echo "   read:    $(curl -s "$HUBSTREAM_URL/api/streams/job-$JOB/events")"
echo "   info:    $(curl -s "$HUBSTREAM_URL/api/streams/job-$JOB")"
echo "   publish: $(curl -s -o /dev/null -w '%{http_code}' -X POST "$HUBSTREAM_URL/api/streams/job-$JOB/events" -d '{"type":"x","data":1}')"
node "$HERE/jobs.mjs" watch "$JOB" | sed 's/^/   [watcher] /'
echo "   and the same with curl: print until the close marker"
curl -sN -H 'Accept: text/event-stream' "$HUBSTREAM_URL/api/streams/job-$JOB/events?from=0" | sed -n '/^event: close/{p;n;p;q;}; p' | sed 's/^/   [curl] /'
