#!/usr/bin/env bash
# Quick start, command 2: install what the tests need and run the whole suite twice: a normal
# build with warnings as errors, then the same suite under AddressSanitizer and
# UndefinedBehaviorSanitizer. Exits non-zero if anything fails. ctest prints the summary.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/deps.sh" --test
( cd tests/integration && npm ci --no-audit --no-fund --loglevel=error )

jobs=$(nproc)
run_suite() { # name, cmake args...
  local name=$1; shift
  echo "=== $name build ==="
  cmake -S . -B "build/$name" -DHS_WERROR=ON -DHS_REQUIRE_INTEGRATION=ON "$@" >/dev/null
  cmake --build "build/$name" -j"$jobs" >"build/$name.log" 2>&1 || { cat "build/$name.log"; return 1; }
  echo "=== $name tests ==="
  (cd "build/$name" && ctest --output-on-failure --timeout 900)
}

status=0
run_suite normal -DCMAKE_BUILD_TYPE=RelWithDebInfo || status=1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite asan -DCMAKE_BUILD_TYPE=Debug -DHS_SANITIZE=address,undefined || status=1
if ((status)); then echo "FAILED"; else echo "all suites passed"; fi
exit $status
