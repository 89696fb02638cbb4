#!/usr/bin/env bash
# The daemon is built hardened (CMakeLists.txt, HS_HARDEN): a position-independent executable,
# full RELRO (relocations read-only, bound at load), a non-executable stack, stack canaries,
# and, in optimised builds without sanitizers, fortified libc calls. Fails naming what is
# missing. Usage: hardening.sh BINARY [--fortified]
set -euo pipefail
bin=$1
fortified=${2:-}
fail=0
check() { # what, command...
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then echo "ok: $what"; else echo "MISSING: $what"; fail=1; fi
}
check "position-independent executable" sh -c "readelf -h '$bin' | grep -q 'Type:.*DYN'"
check "RELRO segment" sh -c "readelf -l '$bin' | grep -q GNU_RELRO"
check "bind now (full RELRO)" sh -c "readelf -d '$bin' | grep -Eq 'BIND_NOW|FLAGS.*NOW'"
check "non-executable stack" sh -c "readelf -l '$bin' | grep -A1 GNU_STACK | grep -q 'RW '"
check "stack protector" sh -c "nm -D '$bin' | grep -q __stack_chk_fail"
if [[ $fortified == --fortified ]]; then
  check "fortified libc calls" sh -c "nm -D '$bin' | grep -q '_chk@'"
fi
exit $fail
