#!/usr/bin/env bash
# Checks that every C source and header of the project is formatted as the committed
# .clang-format says (clang-format --dry-run -Werror). Prints the files that are not, with the
# first differences, and exits non-zero. `scripts/format-check.sh --fix` formats them in place.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fmt=${CLANG_FORMAT:-clang-format}
command -v "$fmt" >/dev/null || { echo "format-check: $fmt not found (scripts/deps.sh --test)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.c' '*.h' | grep -v '/node_modules/')
if [[ ${1:-} == --fix ]]; then
  "$fmt" -i "${files[@]}"
  exit 0
fi
bad=0
for f in "${files[@]}"; do
  if ! "$fmt" --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "format-check: $f is not formatted ($fmt -i $f, or $0 --fix):"
    "$fmt" "$f" | diff -u "$f" - | sed -n '3,12p' || true
    bad=1
  fi
done
if ((bad)); then exit 1; fi
echo "format-check: ${#files[@]} files formatted as .clang-format says"
