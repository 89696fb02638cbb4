#!/usr/bin/env bash
# Builds the libFuzzer targets (build/fuzz, Clang, -DHS_FUZZ=ON) and runs every one of them:
#
#   tests/fuzz/run.sh smoke [SECONDS]   each target for SECONDS (default 10): what CI runs
#   tests/fuzz/run.sh long [RUNS]       each target for RUNS executions (default 10000000)
#
# For each target: first every input of regress/<target>/ and corpus/<target>/ once (a crash
# there fails the target without fuzzing it), then fuzzing from a copy of corpus/<target>/ (the
# committed corpus never grows) plus regress/<target>/, with <target>.dict when there is one.
# Prints one summary line per target (executions and exec/s from libFuzzer's final stats) and
# exits non-zero if any target crashed, leaked, ran out of memory or timed out; the input that
# did it is kept under build/fuzz/artifacts/<target>/ and its path printed. Logs:
# build/fuzz/logs/<target>.{seeds,fuzz}.log. Installs nothing but through scripts/deps.sh
# --fuzz (Clang and its runtimes, the library's -dev packages), which does nothing when they
# are there. Reads no stdin; works from any directory.
#
# Environment: FUZZ_TARGETS="json codec" runs only those; FUZZ_JOBS sets the build's -j;
# FUZZ_ARGS adds libFuzzer flags to the fuzzing runs (e.g. FUZZ_ARGS=-use_value_profile=1).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build/fuzz
all_targets=(json codec escodec hubproto_json hubproto_msgpack config route chunked hub jwt cors)

usage() {
  echo "usage: $0 smoke [SECONDS] | long [RUNS]" >&2
  exit 2
}

mode=${1:-}
case "$mode" in
  smoke) limit=${2:-10} ;;
  long) limit=${2:-10000000} ;;
  *) usage ;;
esac
[[ $limit =~ ^[1-9][0-9]*$ ]] || usage
read -r -a targets <<<"${FUZZ_TARGETS:-${all_targets[*]}}"
exec </dev/null

# ---- build ----
"$root/scripts/deps.sh" --fuzz
mkdir -p "$build"
if [[ -f $build/CMakeCache.txt ]] && ! grep -q '^CMAKE_C_COMPILER:.*clang' "$build/CMakeCache.txt"; then
  echo "run.sh: $build was configured with another compiler; remove it" >&2
  exit 1
fi
echo "=== building $build"
if ! { CC=clang cmake -S "$root" -B "$build" -DHS_FUZZ=ON -DHS_BUILD_TESTS=OFF \
         -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
       cmake --build "$build" --target fuzz -j"${FUZZ_JOBS:-$(nproc)}"; } >"$build/build.log" 2>&1; then
  cat "$build/build.log"
  echo "run.sh: build failed" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hubstream-fuzz.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$build/logs"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# libFuzzer's final stat of a log, or "?"
stat() { # log name
  local v
  v=$(sed -n "s/^stat::$2: *\([0-9]*\).*/\1/p" "$1" | tail -n 1)
  echo "${v:-?}"
}

# what went wrong, from a log: a failed check of the target, else the sanitizer's summary
what() { # log
  local w
  w=$(grep -m1 -oE 'check failed: .*' "$1" || true)
  [[ $w ]] || w=$(grep -m1 -E '^SUMMARY: ' "$1" | sed "s|^SUMMARY: ||; s|$root/||g" || true)
  [[ $w ]] || w=$(grep -m1 -oE 'ERROR: [A-Za-z]+: .*' "$1" || true)
  echo "${w:-see the log}"
}

failed=0
summary=()
for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/fuzz_$t
  [[ -x $bin ]] || { echo "run.sh: no target fuzz_$t" >&2; exit 2; }
  corpus=$here/corpus/$t
  regress=$here/regress/$t
  art=$build/artifacts/$t
  mkdir -p "$art"
  seeds_log=$build/logs/$t.seeds.log
  fuzz_log=$build/logs/$t.fuzz.log
  rm -f "$seeds_log" "$fuzz_log"

  # 1. every committed input once
  inputs=()
  while IFS= read -r -d '' f; do inputs+=("$f"); done < <(
    find "$regress" "$corpus" -type f ! -name .gitkeep -print0 2>/dev/null | sort -z)
  echo "=== fuzz_$t: ${#inputs[@]} regression and seed inputs"
  if ((${#inputs[@]})) &&
    ! (cd "$art" && timeout -k 10 600 "$bin" -timeout=25 -rss_limit_mb=2048 \
         -artifact_prefix="$art/" "${inputs[@]}") >"$seeds_log" 2>&1; then
    tail -n 40 "$seeds_log"
    line=$(printf '%-24s FAILED on a committed input: %s (%s; log %s)' "fuzz_$t" \
      "$(grep 'Running: ' "$seeds_log" | tail -n 1 | sed 's/^Running: //')" "$(what "$seeds_log")" "$seeds_log")
    summary+=("$line")
    failed=1
    continue
  fi

  # 2. fuzz from a copy of the seeds
  work=$tmp/$t
  mkdir -p "$work"
  cp -R "$corpus/." "$work/"
  args=(-print_final_stats=1 -timeout=25 -rss_limit_mb=2048 -artifact_prefix="$art/")
  [[ -f $here/$t.dict ]] && args+=(-dict="$here/$t.dict")
  # <target>.flags: libFuzzer flags of that target (one line)
  if [[ -f $here/$t.flags ]]; then
    read -r -a tflags <"$here/$t.flags"
    args+=("${tflags[@]}")
  fi
  if [[ $mode == smoke ]]; then
    args+=(-max_total_time="$limit")
    guard=$((limit + 300))
  else
    args+=(-runs="$limit")
    guard=$((7 * 24 * 3600))
  fi
  read -r -a extra <<<"${FUZZ_ARGS:-}"
  echo "=== fuzz_$t: fuzzing ($mode $limit)"
  rc=0
  (cd "$art" && timeout -k 10 "$guard" "$bin" "${args[@]}" "${extra[@]}" "$work" "$regress") \
    >"$fuzz_log" 2>&1 || rc=$?
  execs=$(stat "$fuzz_log" number_of_executed_units)
  rate=$(stat "$fuzz_log" average_exec_per_sec)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$fuzz_log" | tail -n 1 || true)
  if ((rc == 0)); then
    line=$(printf '%-24s ok      %12s executions  %8s exec/s  %s' "fuzz_$t" "$execs" "$rate" "$cov")
  else
    tail -n 60 "$fuzz_log"
    crash=$(grep -oE 'Test unit written to .*' "$fuzz_log" | tail -n 1 | sed 's/^Test unit written to //' || true)
    [[ $rc == 124 || $rc == 137 ]] && crash="(killed by the run's $guard-second guard)"
    line=$(printf '%-24s FAILED  %12s executions  %8s exec/s  exit %s: %s; input: %s; log: %s' \
      "fuzz_$t" "$execs" "$rate" "$rc" "$(what "$fuzz_log")" "${crash:-none written}" "$fuzz_log")
    failed=1
  fi
  summary+=("$line")
done

echo
echo "=== summary ($mode $limit)"
printf '%s\n' "${summary[@]}"
if ((failed)); then
  echo "FAILED (reproduce: <binary> <input>; see tests/fuzz/README.md)"
  exit 1
fi
echo "all targets passed"
