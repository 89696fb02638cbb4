#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, on loopback.
#   pg.sh start DIR PORT   initdb in DIR (trust auth, UTF8; fsync off, see PG_FSYNC), start it
#                          on 127.0.0.1:PORT, and write DIR/odbc/odbcinst.ini: the psqlODBC
#                          driver with CommLog=0 (Debian's default CommLog=1 writes a log
#                          file per connection into /tmp)
#   pg.sh halt DIR [MODE]  stop the server (pg_ctl -m MODE, default fast), keep DIR: an outage
#   pg.sh resume DIR PORT  start a halted cluster again
#   pg.sh stop DIR         stop it (immediate) by the pid in its postmaster.pid, remove DIR
# Runs as root (initdb refuses root: runuser postgres) or as any other user.
# PG_FSYNC=on (start, resume) runs the server with fsync on, as a real deployment would (the
# benchmarks in perf/ use it); the default, off, is for the tests: faster, and nothing in a
# throwaway cluster needs to survive a power loss.
set -euo pipefail
cmd=$1 dir=$2
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
fsync=${PG_FSYNC:-off}
case "$fsync" in on | off) ;; *) echo "pg.sh: PG_FSYNC is on or off, not '$fsync'" >&2; exit 2 ;; esac
as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# starts the server of the cluster in $dir on 127.0.0.1:$1
serve() {
    as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 30 \
        -o "-k $dir -p $1 -c listen_addresses=127.0.0.1 -c fsync=$fsync -c max_connections=300" \
        start >/dev/null || {
        # pg_ctl only says "Examine the log output": show it, so a failed run explains itself
        echo "pg.sh: PostgreSQL did not start on 127.0.0.1:$1; the end of $dir/log:" >&2
        tail -n 15 "$dir/log" >&2 || true
        return 1
    }
}
case "$cmd" in
start)
    port=$3
    "$0" stop "$dir" # what a killed earlier run left behind
    mkdir -p "$dir"
    [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$dir"
    as_pg "$pgbin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync -N >/dev/null
    serve "$port"
    mkdir -p "$dir/odbc"
    drv=$(ls /usr/lib/x86_64-linux-gnu/odbc/psqlodbcw.so 2>/dev/null || find /usr/lib -name psqlodbcw.so | head -1)
    printf '[PostgreSQL Unicode]\nDriver=%s\nCommLog=0\nDebug=0\n' "$drv" >"$dir/odbc/odbcinst.ini"
    : >"$dir/odbc/odbc.ini"
    ;;
halt)
    # stop the server but keep its data: MODE fast (sessions are ended) or immediate (a crash)
    as_pg "$pgbin/pg_ctl" -D "$dir/data" -m "${3:-fast}" -w -t 30 stop >/dev/null
    ;;
resume)
    # start a halted cluster again on the same port
    serve "$3"
    ;;
stop)
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        as_pg "$pgbin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || \
            kill -9 "$(head -1 "$dir/data/postmaster.pid")" 2>/dev/null || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: pg.sh start DIR PORT | halt DIR [fast|immediate] | resume DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
