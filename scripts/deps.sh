#!/usr/bin/env bash
# Installs the Debian packages hubstream needs. `deps.sh` alone: build and run;
# `deps.sh --perf`: also what perf/compare.sh needs (nginx with nchan, the peer it measures
# against; jq; gnuplot for the plots); `deps.sh --test`: what the test suite needs (Node.js for
# the integration tests, PostgreSQL, dpkg-dev for the .deb, and the --perf packages: the suite
# runs compare.sh cut short).
# `deps.sh --fuzz`: also Clang and its libFuzzer / sanitizer runtimes (tests/fuzz/run.sh).
# Idempotent: packages already installed are skipped, and apt is not touched at all when
# nothing is missing.
set -euo pipefail

pkgs=(build-essential cmake pkg-config libwebsockets-dev libevent-dev unixodbc-dev odbcinst
      unixodbc libsqliteodbc libck-dev libmsgpack-dev libssl-dev sqlite3 libpq-dev libhiredis-dev)
perf_pkgs=(nginx-light libnginx-mod-nchan jq gnuplot-nox curl procps)
case "${1:-}" in
  --test)
    # prometheus: its promtool checks /metrics' exposition (the test never runs the service)
    pkgs+=(libcriterion-dev clang-format chromium postgresql odbc-postgresql tdsodbc openssl redis-server
           prometheus "${perf_pkgs[@]}")
    command -v node >/dev/null 2>&1 || pkgs+=(nodejs npm)
    # the .deb and man page checks (install_deb, packaging_docs)
    pkgs+=(dpkg-dev groff-base)
    ;;
  --perf) pkgs+=("${perf_pkgs[@]}") ;;
  --fuzz) pkgs+=(clang libclang-rt-14-dev) ;;
  "") ;;
  *) echo "usage: deps.sh [--test | --perf | --fuzz]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  # a machine with systemd starts the Prometheus server the package brings; nothing needs it
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1 &&
    systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi
