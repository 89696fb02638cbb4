#!/usr/bin/env bash
# The man page and the example config follow the daemon's flags (packaging/; README.md,
# "Deployment"). Checks, against the built daemon's `--help`:
#   1. packaging/hubstream.1: every flag --help lists has an entry, no entry names a flag --help
#      does not list, each entry of a flag with a default shows "Default: <what --help prints>",
#      its .TH line carries the project's version, and `groff -man -ww -z` formats it without a
#      single warning;
#   2. packaging/hubstream.conf: every setting --help lists appears as a key, set or commented
#      out; the daemon started with the file (the database and the address overridden: a scratch
#      SQLite file, 127.0.0.1:0) answers GET /healthz with 200 and stops on SIGTERM with status 0;
#      so does it with every commented-out default uncommented (the documented defaults are
#      values the parser takes).
# Exits 77 (a skip for ctest) when groff is missing, unless HS_REQUIRE_INTEGRATION is on.
#
# Usage: packaging.sh HUBSTREAM_BINARY SOURCE_DIR VERSION
set -euo pipefail
bin=$1 src=$2 version=$3
man=$src/packaging/hubstream.1
conf=$src/packaging/hubstream.conf

fail() { echo "FAIL: $*" >&2; exit 1; }

if ! command -v groff >/dev/null 2>&1; then
  case ${HS_REQUIRE_INTEGRATION:-OFF} in
    1 | ON | On | on | TRUE | True | true | YES | Yes | yes) fail "groff is missing (apt-get install groff-base)" ;;
  esac
  echo "SKIP: groff is missing (apt-get install groff-base): the man page is not checked"
  exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hs-packaging.XXXXXX")
pid=""
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# --help's flag lines: "  --name[META] [VARIABLE] [DEFAULT]"; the default is the third column
# when there is one, for a flag with a variable (not --help, --version)
"$bin" --help >"$tmp/help.txt" || fail "$bin --help failed"
awk '/^  --[a-z]/ {
       name = $1; sub(/^--/, "", name); sub(/\[=BOOL\]$/, "", name)
       dflt = ""
       for (i = 2; i <= NF; i++) if ($i ~ /^HUBSTREAM_/) { if (i < NF) dflt = $NF; break }
       print name, dflt
     }' "$tmp/help.txt" >"$tmp/flags.txt"
[[ $(wc -l <"$tmp/flags.txt") -ge 40 ]] || fail "found only $(wc -l <"$tmp/flags.txt") flags in --help"

# 1. the man page. Its option entries are the lines after .TP that start with a font macro;
# their first word, with roff's \- turned into -, is the flag.
sed 's/\\-/-/g' "$man" >"$tmp/man.txt"
awk 'prev == ".TP" && /^\.(B|BI|BR|IR|I) +--/ {
       flag = $2; sub(/^--/, "", flag); sub(/[^a-z0-9-].*$/, "", flag); print flag
     }
     { prev = $1 }' "$tmp/man.txt" | sort -u >"$tmp/man_flags.txt"
cut -d' ' -f1 "$tmp/flags.txt" | sort -u >"$tmp/help_flags.txt"
missing=$(comm -23 "$tmp/help_flags.txt" "$tmp/man_flags.txt")
[[ -z $missing ]] || fail "flags of --help without an entry in hubstream.1: ${missing//$'\n'/ }"
extra=$(comm -13 "$tmp/help_flags.txt" "$tmp/man_flags.txt")
[[ -z $extra ]] || fail "entries of hubstream.1 for flags --help does not list: ${extra//$'\n'/ }"
# each entry's text runs from its .TP to the next .TP, .SS or .SH
while read -r name dflt; do
  [[ -n $dflt ]] || continue
  entry=$(awk -v f="--$name" '
    /^\.(TP|SS|SH)/ { inentry = 0 }
    prev == ".TP" && /^\.(B|BI|BR|IR|I) +--/ { w = $2; sub(/[^a-z0-9-].*$/, "", w); inentry = (w == f) }
    inentry { print }
    { prev = $1 }' "$tmp/man.txt")
  grep -qF "Default: $dflt" <<<"$entry" ||
    fail "hubstream.1's entry for --$name does not say 'Default: $dflt' (what --help prints)"
done <"$tmp/flags.txt"
grep -q "^\.TH HUBSTREAM 1 .* \"hubstream $version\"" "$man" ||
  fail "hubstream.1's .TH line does not name hubstream $version: $(grep '^\.TH' "$man")"
warnings=$(groff -man -ww -z "$man" 2>&1) || fail "groff failed: $warnings"
[[ -z $warnings ]] || fail "groff warns about hubstream.1: $warnings"
echo "ok: hubstream.1: all $(wc -l <"$tmp/help_flags.txt") flags of --help with their defaults; groff -ww is silent"

# 2. the example config: every setting as a key, set or commented out
while read -r name _; do
  case $name in config | help | version) continue ;; esac
  grep -Eq "^(# )?$name =" "$conf" || fail "hubstream.conf has no '$name =' line (set or commented out)"
done <"$tmp/flags.txt"
echo "ok: hubstream.conf names every setting"

serve() { # label config-file (the label names the scratch files too: no blanks)
  local label=$1 file=$2 port="" status rc=0
  "$bin" --config "$file" --db "$tmp/$label.db" --listen 127.0.0.1:0 >"$tmp/$label.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    port=$(sed -n 's/.*"msg":"listening","addr":"127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$tmp/$label.log" | head -1)
    [[ -n $port ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z $port ]]; then
    cat "$tmp/$label.log"
    kill -0 "$pid" 2>/dev/null || { wait "$pid" || rc=$?; pid=""; fail "$label: the daemon exited with status $rc before listening"; }
    fail "$label: the daemon did not start listening within 10 s"
  fi
  status=$(
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
    timeout 10 head -n1 <&3 | tr -d '\r'
  ) || true
  [[ $status == "HTTP/1.1 200"* ]] || { cat "$tmp/$label.log"; fail "$label: GET /healthz: '$status'"; }
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { cat "$tmp/$label.log"; fail "$label: no stop within 10 s of SIGTERM"; }
  wait "$pid" || rc=$?
  pid=""
  ((rc == 0)) || { cat "$tmp/$label.log"; fail "$label: exit status $rc after SIGTERM"; }
  echo "ok: $label: served GET /healthz ($status) on port $port, stopped by SIGTERM"
}
serve hubstream.conf "$conf"
# the commented-out defaults, uncommented: "# key = value" lines whose value is not empty
sed -E 's/^# ([a-z-]+ = [^ (]+)( .*)?$/\1/' "$conf" >"$tmp/defaults.conf"
n=$(grep -Ec '^[a-z-]+ = ' "$tmp/defaults.conf")
[[ $n -ge 30 ]] || fail "only $n settings in hubstream.conf with the defaults uncommented"
echo "(hubstream.conf with its $n defaults uncommented)"
serve defaults.conf "$tmp/defaults.conf"
echo "all packaging checks passed"
