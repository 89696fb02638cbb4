#!/usr/bin/env bash
# The Debian package (CMakeLists.txt, "Debian package"; README.md, "Deployment"). Builds it with
# `cpack -G DEB` from the build directory into a scratch directory, then checks:
#   1. its files (dpkg-deb -c): the daemon, libhubstream.so with its soname links and
#      libhubstream.a, the header, hubstream.pc, the CMake package, the systemd unit,
#      /etc/hubstream.conf, the gzipped man page and the copyright file, and nothing outside
#      /usr, /etc/hubstream.conf and /lib/systemd/system;
#   2. its control data (dpkg-deb -f / -e): name, version, architecture, section, a Depends
#      holding what dpkg-shlibdeps found (libc6) and the run-time pieces named by hand
#      (libsqliteodbc, adduser), /etc/hubstream.conf as a conffile, the ldconfig trigger and a
#      shlibs entry, executable maintainer scripts that sh can parse, postinst creating the
#      hubstream user and postrm removing it;
#   3. the unpacked files (dpkg-deb -x into the scratch directory): the man page and copyright
#      are packaging/hubstream.1 and LICENSE; the unit passes `systemd-analyze verify` with no
#      message (when systemd-analyze is installed); `hubstream --version` names the version and
#      the commit of the source tree; the daemon started with the packaged /etc/hubstream.conf
#      (the database and the address overridden: a scratch SQLite file, 127.0.0.1:0) answers
#      GET /healthz with 200 and stops cleanly on SIGTERM; examples/embed.c built with the
#      package's pkg-config file against its libhubstream.so passes --self-check.
# Exits 77 (a skip for ctest) when dpkg-deb or dpkg-shlibdeps is missing, unless
# HS_REQUIRE_INTEGRATION is on. The scratch directory is removed, and the daemon stopped, either
# way.
#
# Usage: deb.sh BUILD_DIR SOURCE_DIR VERSION
# Environment: CPACK (the cpack of the build's CMake), HS_REQUIRE_INTEGRATION, HS_COMMIT (the
# configured -DHS_COMMIT, if any), CC and HS_CONSUMER_FLAGS (as in install.sh).
set -euo pipefail
build=$1 src=$2 version=$3
cpack=${CPACK:-cpack}
cc=${CC:-cc}
flags=${HS_CONSUMER_FLAGS:-}

step() { echo "--- $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

missing=()
for t in dpkg-deb dpkg-shlibdeps "$cpack"; do
  command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if ((${#missing[@]})); then
  case ${HS_REQUIRE_INTEGRATION:-OFF} in
    1 | ON | On | on | TRUE | True | true | YES | Yes | yes)
      fail "missing ${missing[*]} (scripts/deps.sh --test installs dpkg-dev)" ;;
  esac
  echo "SKIP: missing ${missing[*]} (apt-get install dpkg-dev): the .deb is not checked"
  exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hs-deb.XXXXXX")
pid=""
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

step "cpack -G DEB (build directory $build)"
timeout 300 "$cpack" --config "$build/CPackConfig.cmake" -G DEB -B "$tmp/out" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log"; fail "cpack -G DEB"; }
shopt -s nullglob
debs=("$tmp/out"/*.deb)
shopt -u nullglob
((${#debs[@]} == 1)) || { cat "$tmp/cpack.log"; fail "expected one .deb in $tmp/out, found ${#debs[@]}"; }
deb=${debs[0]}
arch=$(dpkg --print-architecture)
[[ $(basename "$deb") == "hubstream_${version}-1_${arch}.deb" ]] ||
  fail "package file $(basename "$deb"), expected hubstream_${version}-1_${arch}.deb"
echo "ok: $(basename "$deb") ($(stat -c %s "$deb") bytes)"

# 1. the files
dpkg-deb -c "$deb" >"$tmp/contents.txt" || fail "dpkg-deb -c"
# "./usr/bin/hubstream" and "./usr/lib/libhubstream.so -> libhubstream.so.0.1", one per line
awk '{ p = $6; for (i = 7; i <= NF; i++) p = p " " $i; print substr($1, 1, 1), p }' \
  "$tmp/contents.txt" >"$tmp/entries.txt"
has() { # type (- file, l link, d directory) path
  grep -qxF -e "$1 $2" "$tmp/entries.txt" || grep -qF -e "$1 $2 -> " "$tmp/entries.txt"
}
libdir=$(awk '$1 == "-" && $2 ~ /\/libhubstream\.so\.[0-9.]+$/ {print $2}' "$tmp/entries.txt" |
  sed 's|/libhubstream\.so\.[0-9.]*$||')
[[ -n $libdir && $libdir == ./usr/lib* ]] || fail "no libhubstream.so.* under ./usr/lib in the package"
soversion=$(cut -d. -f1-2 <<<"$version")
[[ ${version%%.*} == 0 ]] || soversion=${version%%.*}
for f in "- ./usr/bin/hubstream" "- $libdir/libhubstream.so.$version" \
         "l $libdir/libhubstream.so.$soversion" "l $libdir/libhubstream.so" "- $libdir/libhubstream.a" \
         "- ./usr/include/hubstream/hubstream.h" "- $libdir/pkgconfig/hubstream.pc" \
         "- $libdir/cmake/hubstream/hubstreamConfig.cmake" \
         "- $libdir/cmake/hubstream/hubstreamConfigVersion.cmake" \
         "- $libdir/cmake/hubstream/hubstreamTargets.cmake" \
         "- ./lib/systemd/system/hubstream.service" "- ./etc/hubstream.conf" \
         "- ./usr/share/man/man1/hubstream.1.gz" "- ./usr/share/doc/hubstream/copyright"; do
  has "${f%% *}" "${f#* }" || { cat "$tmp/contents.txt"; fail "not in the package: ${f#* }"; }
done
stray=$(awk '$1 != "d" {print $2}' "$tmp/entries.txt" |
  grep -Ev '^\./(usr/|etc/hubstream\.conf$|lib/systemd/system/hubstream\.service$)' || true)
[[ -z $stray ]] || fail "files outside /usr, /etc/hubstream.conf and the unit: ${stray//$'\n'/ }"
if grep -q '^. \./usr/local/' "$tmp/entries.txt"; then fail "files under /usr/local"; fi
mode=$(awk '$6 == "./usr/bin/hubstream" {print $1}' "$tmp/contents.txt")
[[ $mode == -rwxr-xr-x ]] || fail "/usr/bin/hubstream has mode $mode"
echo "ok: files ($(grep -c '^[-l]' "$tmp/entries.txt") files and links, library in ${libdir#.})"

# 2. the control data
field() { dpkg-deb -f "$deb" "$1"; }
[[ $(field Package) == hubstream ]] || fail "Package: $(field Package)"
[[ $(field Version) == "$version-1" ]] || fail "Version: $(field Version), expected $version-1"
[[ $(field Architecture) == "$arch" ]] || fail "Architecture: $(field Architecture)"
[[ $(field Section) == net ]] || fail "Section: $(field Section)"
[[ -n $(field Maintainer) ]] || fail "no Maintainer"
depends=$(field Depends)
[[ -n $depends ]] || fail "empty Depends"
for d in libc6 libsqliteodbc adduser libwebsockets; do
  grep -q "\b$d" <<<"$depends" || fail "Depends lacks $d: $depends"
done
dpkg-deb -e "$deb" "$tmp/control" || fail "dpkg-deb -e"
[[ -f $tmp/control/conffiles ]] || fail "no conffiles"
grep -qxF /etc/hubstream.conf "$tmp/control/conffiles" ||
  fail "conffiles does not list /etc/hubstream.conf: $(cat "$tmp/control/conffiles")"
for s in postinst prerm postrm; do
  [[ -x $tmp/control/$s ]] || fail "maintainer script $s missing or not executable"
  sh -n "$tmp/control/$s" || fail "maintainer script $s: sh cannot parse it"
done
grep -qx 'activate-noawait ldconfig' "$tmp/control/triggers" 2>/dev/null ||
  fail "no ldconfig trigger (the package ships libhubstream.so)"
grep -q '^libhubstream ' "$tmp/control/shlibs" 2>/dev/null || fail "no shlibs entry for libhubstream"
grep -Eq '^[^#]*(adduser|useradd) .*hubstream' "$tmp/control/postinst" ||
  fail "postinst creates no hubstream user"
grep -Eq '^[^#]*(deluser|userdel) .*hubstream' "$tmp/control/postrm" ||
  fail "postrm removes no hubstream user"
echo "ok: control: $(field Package) $(field Version) $(field Architecture); Depends: $depends"

# 3. the unpacked files
root=$tmp/root
dpkg-deb -x "$deb" "$root" || fail "dpkg-deb -x"
gzip -dc "$root/usr/share/man/man1/hubstream.1.gz" | cmp -s - "$src/packaging/hubstream.1" ||
  fail "the packaged man page is not packaging/hubstream.1"
cmp -s "$root/usr/share/doc/hubstream/copyright" "$src/LICENSE" ||
  fail "the packaged copyright file is not LICENSE"
cmp -s "$root/etc/hubstream.conf" "$src/packaging/hubstream.conf" ||
  fail "the packaged /etc/hubstream.conf is not packaging/hubstream.conf"
echo "ok: man page, copyright and config are the source's"

if command -v systemd-analyze >/dev/null 2>&1; then
  # the unit as packaged, its ExecStart pointed at the unpacked daemon (verify checks that the
  # programs it names exist); verify exits 0 on unknown keys and bad values, so any message fails
  sed "s|/usr/bin/hubstream|$root/usr/bin/hubstream|" "$root/lib/systemd/system/hubstream.service" \
    >"$tmp/hubstream.service"
  out=$(systemd-analyze verify --man=no "$tmp/hubstream.service" 2>&1) ||
    fail "systemd-analyze verify: $out"
  [[ -z $out ]] || fail "systemd-analyze verify complains: $out"
  echo "ok: systemd-analyze verify hubstream.service"
else
  echo "note: systemd-analyze not installed; the unit was not verified"
fi

bin=$root/usr/bin/hubstream
export LD_LIBRARY_PATH=$root${libdir#.}
step "$bin --version"
got=$(timeout 10 "$bin" --version) || fail "--version failed"
if [[ -n ${HS_COMMIT:-} ]]; then
  want_commit=$HS_COMMIT
elif command -v git >/dev/null 2>&1 && head=$(git -C "$src" rev-parse HEAD 2>/dev/null); then
  # the abbreviated hash of HEAD, "-dirty" when the tree had changes at build time
  c=$(sed -n 's/^hubstream [^ ]* (commit \([0-9a-f]*\)\(-dirty\)\{0,1\})$/\1/p' <<<"$got")
  [[ ${#c} -ge 7 && $head == "$c"* ]] ||
    fail "--version says '$got'; expected 'hubstream $version (commit <a prefix of HEAD $head>[-dirty])'"
  want_commit=${got#*(commit }
  want_commit=${want_commit%)}
else
  want_commit=unknown
fi
[[ $got == "hubstream $version (commit $want_commit)" ]] ||
  fail "--version says '$got', expected 'hubstream $version (commit $want_commit)'"
echo "ok: $got"

step "the packaged daemon with the packaged /etc/hubstream.conf, on 127.0.0.1:0"
"$bin" --config "$root/etc/hubstream.conf" --db "$tmp/events.db" --listen 127.0.0.1:0 \
  >"$tmp/server.log" 2>&1 &
pid=$!
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*"msg":"listening","addr":"127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$tmp/server.log" | head -1)
  [[ -n $port ]] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $port ]]; then
  cat "$tmp/server.log"
  kill -0 "$pid" 2>/dev/null || { rc=0; wait "$pid" || rc=$?; pid=""; fail "the daemon exited with status $rc before listening"; }
  fail "the daemon did not start listening within 10 s"
fi
[[ -f $tmp/events.db ]] || fail "the database $tmp/events.db was not created"
status=$(
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
  timeout 10 head -n1 <&3 | tr -d '\r'
) || true
[[ $status == "HTTP/1.1 200"* ]] || { cat "$tmp/server.log"; fail "GET /healthz: '$status'"; }
echo "ok: GET /healthz on port $port: $status"
kill -TERM "$pid"
rc=0
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && { cat "$tmp/server.log"; fail "the daemon did not stop within 10 s of SIGTERM"; }
wait "$pid" || rc=$?
pid=""
((rc == 0)) || { cat "$tmp/server.log"; fail "the daemon exited with status $rc after SIGTERM"; }
echo "ok: stopped by SIGTERM, exit status 0"

step "examples/embed.c against the package's libhubstream.so (its pkg-config file)"
cp "$src/examples/embed.c" "$tmp/embed.c"
export PKG_CONFIG_PATH=$root${libdir#.}/pkgconfig
[[ $(pkg-config --modversion hubstream) == "$version" ]] || fail "pkg-config does not find hubstream $version"
# shellcheck disable=SC2046,SC2086 # word splitting of the flags is meant
"$cc" $flags -Wall -Werror -o "$tmp/embed" "$tmp/embed.c" $(pkg-config --cflags --libs hubstream) ||
  fail "building embed.c with the package's hubstream.pc"
resolved=$(ldd "$tmp/embed" | awk '/libhubstream/ {print $3}')
[[ $(readlink -f "$resolved") == "$(readlink -f "$root${libdir#.}/libhubstream.so.$version")" ]] ||
  fail "embed loads '${resolved:-no libhubstream}', not the package's"
timeout 120 "$tmp/embed" --self-check 127.0.0.1:0 "$tmp/embed.db" >"$tmp/embed.log" 2>&1 ||
  { cat "$tmp/embed.log"; fail "embed --self-check failed"; }
grep -q '^self-check: ok$' "$tmp/embed.log" || { cat "$tmp/embed.log"; fail "no 'self-check: ok'"; }
echo "ok: embed --self-check with the package's library"

echo "all .deb checks passed"
