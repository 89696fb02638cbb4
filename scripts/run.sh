#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build, and run the server on the embedded
# default (SQLite file ./hubstream.db, http://127.0.0.1:5000). Extra arguments go to hubstream
# (try --help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/deps.sh"
cmake -S "$root" -B "$root/build/release" -DCMAKE_BUILD_TYPE=Release -DHS_BUILD_TESTS=OFF >/dev/null
cmake --build "$root/build/release" -j"$(nproc)" >/dev/null
exec "$root/build/release/hubstream" "$@"
