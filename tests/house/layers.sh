#!/usr/bin/env bash
# The house rules that a reader of the tree relies on, checked on the built library:
#   1. no call circle between source files: file A calling a function of file B while B (or a
#      file B reaches) calls back into A. Lower layers get what they need from higher ones
#      through tables of functions handed down (docs/architecture.md), not by calling up;
#   2. no product source file over 900 lines.
# Usage: layers.sh LIBHUBSTREAM_A SOURCE_DIR. Reads the archive's symbol tables (nm): an edge
# A -> B is an undefined symbol of A's object that B's object defines. Prints the files of every
# circle with the symbols on each edge, or the files too long, and exits 1; else one line.
set -euo pipefail
lib=$1
src=$2
exec </dev/null

status=0
nm -A "$lib" 2>/dev/null | awk '
    # lines: ARCHIVE:MEMBER.o:ADDR TYPE NAME   or   ARCHIVE:MEMBER.o:  U NAME
    {
        split($1, p, ":"); m = p[2]
        if (m == "") next
        if ($2 == "U") { use[m, $3] = 1; uses[m] = uses[m] " " $3; members[m] = 1 }
        else if (NF >= 3 && $2 ~ /^[TDBR]$/) {
            if (($3 in def) && def[$3] != m) dup[$3] = 1
            def[$3] = m; members[m] = 1
        }
    }
    END {
        for (m in members) {
            n = split(uses[m], us, " ")
            for (i = 1; i <= n; i++) {
                s = us[i]
                if ((s in def) && def[s] != m) {
                    e = m SUBSEP def[s]
                    if (!(e in edge)) { edge[e] = s; out[m]++ } else if (length(edge[e]) < 120) edge[e] = edge[e] ", " s
                }
            }
        }
        # peel files that call nothing left (a topological sort); what stays is on a circle
        do {
            changed = 0
            for (m in members) if (!(m in gone) && out[m] + 0 == 0) {
                gone[m] = 1; changed = 1
                for (e in edge) { split(e, ab, SUBSEP); if (ab[2] == m && !(ab[1] in gone)) out[ab[1]]-- }
            }
        } while (changed)
        # of what stays, an edge A -> B is on a circle when B reaches A (Floyd-Warshall)
        nr = 0
        for (m in members) if (!(m in gone)) r[++nr] = m
        for (e in edge) { split(e, ab, SUBSEP); if (!(ab[1] in gone) && !(ab[2] in gone)) reach[ab[1], ab[2]] = 1 }
        for (k = 1; k <= nr; k++) for (i = 1; i <= nr; i++) if ((r[i], r[k]) in reach)
            for (j = 1; j <= nr; j++) if ((r[k], r[j]) in reach) reach[r[i], r[j]] = 1
        bad = 0
        for (e in edge) {
            split(e, ab, SUBSEP)
            if ((ab[1], ab[2]) in reach && (ab[2], ab[1]) in reach) {
                print "layers: call circle: " ab[1] " -> " ab[2] " (" edge[e] ")"; bad = 1
            }
        }
        for (s in dup) { print "layers: " s " defined in two objects"; bad = 1 }
        exit bad
    }' || status=1

cd "$src"
long=$(git ls-files 2>/dev/null -- 'util/*.[ch]' 'proto/*.[ch]' 'ringbuf/*.[ch]' 'storage/*.[ch]' \
    'fanout/*.[ch]' 'server/*.[ch]' 'daemon/*.[ch]' 'include/*.h' || true)
[[ $long ]] || long=$(find util proto ringbuf storage fanout server daemon include -name '*.[ch]')
while read -r f; do
    n=$(wc -l <"$f")
    if ((n > 900)); then
        echo "layers: $f has $n lines (at most 900: split it by concern)"
        status=1
    fi
done <<<"$long"

if ((status == 0)); then
    echo "layers: no call circle between the library's $(nm -A "$lib" 2>/dev/null | cut -d: -f2 | sort -u | grep -c .) objects; no source file over 900 lines"
fi
exit $status
