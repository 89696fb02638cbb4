#!/usr/bin/env bash
# Installs the Debian packages hubstream needs. `deps.sh` alone: build and run;
# `deps.sh --test`: also what the test suite needs (Node.js for the integration tests).
# Idempotent: packages already installed are skipped, and apt is not touched at all when
# nothing is missing.
set -euo pipefail

pkgs=(build-essential cmake pkg-config libwebsockets-dev libevent-dev unixodbc-dev odbcinst
      unixodbc libsqliteodbc libck-dev libjansson-dev libmsgpack-dev libssl-dev sqlite3)
if [[ "${1:-}" == "--test" ]]; then
  pkgs+=(libcriterion-dev curl procps chromium postgresql odbc-postgresql tdsodbc)
  command -v node >/dev/null 2>&1 || pkgs+=(nodejs npm)
fi

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
fi
