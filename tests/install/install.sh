#!/usr/bin/env bash
# The installed library is usable and exports only its API (CMakeLists.txt, "Installation";
# README.md, "Embedding"). Installs the build tree with `cmake --install` into a temporary prefix,
# then checks:
#   1. the files: libhubstream.so with its soname links, libhubstream.a, the header (whose
#      HS_VERSION_STRING must be the project's version), hubstream.pc, the CMake package
#      (hubstreamConfig.cmake, its version file, the exported targets);
#   2. the dynamic symbol table of the installed libhubstream.so (nm -D --defined-only): every
#      function declared HS_API in the installed hubstream.h, as a function, and nothing else (no
#      internal hs_io_/hs_store_/hs_hub_..., no ck_/lws_ or other dependency symbols);
#   3. examples/embed.c compiled against the installed copy with pkg-config, and again by a tiny
#      CMake project using find_package(hubstream) and hubstream::hubstream; each binary must load
#      the installed libhubstream.so and pass `--self-check` (a server on a free port and a SQLite
#      file in the temporary directory: a committed publish, a rejection by the event hook, GET
#      /healthz answering 200, then a clean stop). Also linked with the installed libhubstream.a
#      (README.md's command) and run the same way.
# Fails naming the first step that failed; the temporary directory is removed either way.
#
# Usage: install.sh BUILD_DIR SOURCE_DIR VERSION
# Environment: CC (the compiler of the build), HS_CONSUMER_FLAGS (compile and link flags of the
# two consumer programs: a sanitizer build's -fsanitize=..., whose runtime must come first).
set -euo pipefail
build=$1 src=$2 version=$3
cc=${CC:-cc}
flags=${HS_CONSUMER_FLAGS:-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hs-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
step() { echo "--- $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "cmake --install"; }

# 1. the files. The library directory is whatever GNUInstallDirs chose (lib, lib64, lib/<triplet>)
so=$(find "$prefix" -name libhubstream.so -print -quit)
[[ -n $so ]] || fail "no libhubstream.so under $prefix"
libdir=$(dirname "$so")
for f in "$prefix/bin/hubstream" "$libdir/libhubstream.a" "$prefix/include/hubstream/hubstream.h" \
         "$libdir/pkgconfig/hubstream.pc" "$libdir/cmake/hubstream/hubstreamConfig.cmake" \
         "$libdir/cmake/hubstream/hubstreamConfigVersion.cmake" \
         "$libdir/cmake/hubstream/hubstreamTargets.cmake"; do
  [[ -f $f ]] || fail "not installed: ${f#"$prefix"/}"
done
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ -n $soname ]] || fail "libhubstream.so has no SONAME"
[[ -L $so && -e $libdir/$soname ]] || fail "libhubstream.so is not a link to the soname $soname"
real=$(readlink -f "$so")
[[ $(basename "$real") == "libhubstream.so.$version" && ! -L $real ]] ||
  fail "libhubstream.so resolves to $(basename "$real"), not libhubstream.so.$version"
hv=$(sed -n 's/^#define HS_VERSION_STRING "\(.*\)"$/\1/p' "$prefix/include/hubstream/hubstream.h")
[[ $hv == "$version" ]] || fail "hubstream.h says HS_VERSION_STRING \"$hv\", the project is $version"
echo "ok: files; $(basename "$so") -> $soname -> $(basename "$real")"

# 2. the exported symbols: exactly the HS_API functions of the installed header
header=$prefix/include/hubstream/hubstream.h
sed -n 's/^HS_API [^(]*[ *]\([A-Za-z_][A-Za-z0-9_]*\)(.*/\1/p' "$header" | sort -u >"$tmp/api.txt"
# a declaration that lost its HS_API would be neither expected nor exported: none may lack it
unmarked=$(grep -E '^[A-Za-z_][^(]*[ *]hs_[A-Za-z0-9_]*\(' "$header" | grep -Ev '^(HS_API|typedef) ' || true)
[[ -z $unmarked ]] || fail "functions of hubstream.h without HS_API: $unmarked"
[[ $(wc -l <"$tmp/api.txt") -ge 10 ]] || fail "found only $(wc -l <"$tmp/api.txt") HS_API functions in hubstream.h"
nm -D --defined-only --format=posix "$real" | awk '{print $1, $2}' | sort >"$tmp/exported.txt"
awk '{print $1}' "$tmp/exported.txt" | sort -u >"$tmp/exported_names.txt"
missing=$(comm -23 "$tmp/api.txt" "$tmp/exported_names.txt")
extra=$(comm -13 "$tmp/api.txt" "$tmp/exported_names.txt")
[[ -z $missing ]] || fail "hubstream.h functions not exported by libhubstream.so: ${missing//$'\n'/ }"
[[ -z $extra ]] || fail "libhubstream.so exports symbols that are not its API: $(tr '\n' ' ' <<<"$extra" | head -c 2000)"
notfunc=$(awk '$2 != "T" {print $1}' "$tmp/exported.txt")
[[ -z $notfunc ]] || fail "exported but not as functions (nm type T): ${notfunc//$'\n'/ }"
echo "ok: libhubstream.so exports exactly the $(wc -l <"$tmp/api.txt") functions of hubstream.h"

# 3. examples/embed.c against the installed copy; a copy of the source, so that nothing of the
# source tree is on the include path
mkdir "$tmp/pc" "$tmp/cm"
cp "$src/examples/embed.c" "$tmp/embed.c"
cp "$src/examples/apikey.c" "$tmp/apikey.c"
run_embed() { # name binary
  local name=$1 bin=$2 resolved
  resolved=$(LD_LIBRARY_PATH=$libdir ldd "$bin" | awk '/libhubstream/ {print $3}')
  [[ $(readlink -f "$resolved") == "$real" ]] ||
    fail "$name: the binary loads '${resolved:-no libhubstream}', not the installed $real"
  LD_LIBRARY_PATH=$libdir timeout 120 "$bin" --self-check 127.0.0.1:0 "$tmp/$name.db" \
    >"$tmp/$name.log" 2>&1 || { cat "$tmp/$name.log"; fail "$name: embed --self-check failed"; }
  grep -q '^self-check: ok$' "$tmp/$name.log" || { cat "$tmp/$name.log"; fail "$name: no 'self-check: ok'"; }
  echo "ok: $name: embed --self-check against the installed library"
}

step "pkg-config: $cc embed.c \$(pkg-config --cflags --libs hubstream)"
export PKG_CONFIG_PATH=$libdir/pkgconfig
v=$(pkg-config --modversion hubstream) || fail "pkg-config does not find hubstream"
[[ $v == "$version" ]] || fail "pkg-config says version $v, not $version"
pcflags=$(pkg-config --cflags --libs hubstream)
# hubstream.pc finds its prefix from its own place (${pcfiledir}/../..): the paths must resolve
# to the prefix's directories
incdir=$(pkg-config --variable=includedir hubstream) pclibdir=$(pkg-config --variable=libdir hubstream)
[[ $(readlink -f "$incdir") == "$(readlink -f "$prefix/include")" ]] ||
  fail "hubstream.pc's includedir $incdir is not $prefix/include"
[[ $(readlink -f "$pclibdir") == "$(readlink -f "$libdir")" ]] || fail "hubstream.pc's libdir $pclibdir is not $libdir"
# shellcheck disable=SC2086 # word splitting of the flags is meant
"$cc" $flags -Wall -Werror -o "$tmp/pc/embed" "$tmp/embed.c" $pcflags || fail "pkg-config build"
run_embed pkgconfig "$tmp/pc/embed"
# the auth hooks' example (API keys, an authorize rule) the same way
# shellcheck disable=SC2086
"$cc" $flags -Wall -Werror -o "$tmp/pc/apikey" "$tmp/apikey.c" $pcflags || fail "pkg-config build of apikey.c"
run_embed apikey "$tmp/pc/apikey"

# the static library, linked as README.md says: the archive, then its dependencies (shared)
step "static: $cc embed.c libhubstream.a \$(pkg-config --libs <its dependencies>)"
# shellcheck disable=SC2046,SC2086
"$cc" $flags -Wall -Werror -o "$tmp/pc/embed_static" "$tmp/embed.c" $(pkg-config --cflags hubstream) \
  "$libdir/libhubstream.a" $(pkg-config --libs libwebsockets libevent libevent_pthreads odbc ck msgpack libssl libcrypto libpq hiredis) \
  -lpthread -lm || fail "static build"
if ldd "$tmp/pc/embed_static" | grep -q libhubstream; then fail "the static build loads libhubstream.so"; fi
LD_LIBRARY_PATH='' timeout 120 "$tmp/pc/embed_static" --self-check 127.0.0.1:0 "$tmp/static.db" \
  >"$tmp/static.log" 2>&1 || { cat "$tmp/static.log"; fail "static: embed --self-check failed"; }
echo "ok: static: embed --self-check linked with libhubstream.a"

step "CMake: find_package(hubstream) + hubstream::hubstream"
cat >"$tmp/cm/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.18)
project(hubstream_consumer LANGUAGES C)
find_package(hubstream $version REQUIRED)
if(NOT hubstream_DIR MATCHES "^$prefix/")
  message(FATAL_ERROR "found hubstream in \${hubstream_DIR}, not under $prefix")
endif()
add_executable(embed ../embed.c)
target_compile_options(embed PRIVATE -Wall -Werror)
target_link_libraries(embed PRIVATE hubstream::hubstream)
EOF
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >"$tmp/cm.log" 2>&1 ||
  { cat "$tmp/cm.log"; fail "CMake consumer: configure"; }
cmake --build "$tmp/cm/build" >>"$tmp/cm.log" 2>&1 || { cat "$tmp/cm.log"; fail "CMake consumer: build"; }
run_embed cmake "$tmp/cm/build/embed"

echo "all install checks passed"
