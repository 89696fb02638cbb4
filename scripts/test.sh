#!/usr/bin/env bash
# Quick start, command 2: install what the tests need, check the formatting (.clang-format), and
# run the whole suite three times: a normal build with warnings as errors, the same suite under AddressSanitizer and
# UndefinedBehaviorSanitizer, and under ThreadSanitizer; then a smoke run of every fuzz target
# (tests/fuzz/run.sh). Exits non-zero if anything fails; ctest prints each summary.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/deps.sh" --test
( cd tests/integration && npm ci --no-audit --no-fund --loglevel=error )
# the SignalR conformance suite: the official client packages and playwright-core (Debian's
# chromium comes from deps.sh)
( cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error )
# the hostile-input suite: raw WebSocket clients (ws)
( cd tests/hostile && npm ci --no-audit --no-fund --loglevel=error )
export HUBSTREAM_REQUIRE_BROWSER=1
# /metrics is checked by promtool too (deps.sh --test installs it)
export HUBSTREAM_REQUIRE_PROMTOOL=1

jobs=$(nproc)
run_suite() { # name, ctest args, cmake args...
  local name=$1 ctest_args=$2; shift 2
  echo "=== $name build ==="
  cmake -S . -B "build/$name" -DHS_WERROR=ON -DHS_REQUIRE_INTEGRATION=ON -DHS_BUILD_PERF=ON "$@" >/dev/null
  cmake --build "build/$name" -j"$jobs" >"build/$name.log" 2>&1 || { cat "build/$name.log"; return 1; }
  echo "=== $name tests ==="
  # two tests at a time: most wait on their servers and clients more than they compute; the
  # ones that measure memory, load or a deadline are RUN_SERIAL (tests/CMakeLists.txt)
  (cd "build/$name" && ctest -j2 --output-on-failure --timeout 900 $ctest_args)
}

status=0
echo "=== format ==="
"$root/scripts/format-check.sh" || status=1
run_suite normal "" -DCMAKE_BUILD_TYPE=RelWithDebInfo || status=1
# AddressSanitizer and UBSan: everything but three repeats of what the normal suite covered,
# which the 20-minute budget cannot afford at sanitizer speed: the nchan comparison (a load run;
# it checks the harness), the second, auth-on runs of the conformance files (the auth code
# itself runs here: conformance_auth, _tls, _limits), and the PostgreSQL re-runs of the API, SSE, durability, retention and hub files (the
# same server code over another driver; what only PostgreSQL reaches, several writers, the feed,
# the backplanes and an outage, runs here: pg_integration_cluster, cluster, pg_outage).
sanitizer_skip="perf_compare|conformance_(hub|transport|reconnect|patterns|eventstream|eventstream-admin|metrics|openapi|dashboard)_auth"
# the browser patterns test drives the examples' JavaScript; the server code under it is what
# the other conformance files run, so the sanitizer builds leave it to the normal suite
sanitizer_skip+="|conformance_patterns"
# the package (cpack, dpkg) and the man page check the files shipped, not the server's code
sanitizer_skip+="|install_deb|packaging_docs"
sanitizer_skip+="|pg_integration_(api|sse|durability|retention)|pg_conformance_"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite asan "-E $sanitizer_skip" \
  -DCMAKE_BUILD_TYPE=Debug -DHS_SANITIZE=address,undefined || status=1
# ThreadSanitizer: the server under the integration suite, which drives every thread. Not the
# 100,000-event slow-subscriber load (most of the time budget at TSan's speed; it runs in the two
# suites above), and not the Criterion binaries: Criterion's process arena cannot be mapped
# under TSan ("Could not initialize inheritable arena"), and not the repeats skipped above.
# Nor the dashboard's browser test: the page's server side (dashboard.c) holds no thread of its own.
run_suite tsan "-E integration_slow|^test_|conformance_dashboard|$sanitizer_skip" \
  -DCMAKE_BUILD_TYPE=Debug -DHS_SANITIZE=thread || status=1
# every libFuzzer target for a bounded time, after its committed regression inputs and seeds
echo "=== fuzz smoke ==="
"$root/tests/fuzz/run.sh" smoke 10 || status=1
if ((status)); then echo "FAILED"; else echo "all suites passed"; fi
exit $status
