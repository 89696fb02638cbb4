#!/usr/bin/env bash
# Makes the base image localhost/debian:bookworm without a container registry: debootstrap a
# minimal Debian 12 (--variant=minbase: dpkg, apt and the essential packages, ~100 MB) from the
# Debian mirror this host's apt already uses, then `podman import` the tree as an image.
# The Dockerfiles build FROM it (ARG BASE); where a registry is reachable, BASE=debian:bookworm
# does the same job and this script is not needed.
#
#   docker/base.sh            build it unless podman already has it
#   docker/base.sh --force    build it again
# Needs root (debootstrap makes device nodes and chowns) and the Debian packages debootstrap
# and podman. Takes about 2-4 minutes, mostly downloads.
set -euo pipefail

image=${BASE_IMAGE:-localhost/debian:bookworm}
suite=bookworm

if [[ ${1:-} != --force ]] && podman image exists "$image"; then
  echo "base.sh: $image is already there (--force to rebuild)"
  exit 0
fi

# The mirror: the first Debian (not -security) URI in this host's apt sources, in either the
# deb822 (.sources) or the one-line format; deb.debian.org when none is found.
mirror=$(
  {
    grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
      awk '{print $2}'
    grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}'
  } | grep -E '/debian/?$' | head -n1 || true)
mirror=${MIRROR:-${mirror:-http://deb.debian.org/debian}}
mirror=${mirror%/}
security=${mirror%/debian}/debian-security

rootfs=$(mktemp -d /var/tmp/hubstream-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

echo "base.sh: debootstrap $suite from $mirror into $rootfs"
start=$SECONDS
nice -n 15 timeout 1200 debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" \
  > "$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"

# Updates and security updates as well as the release, as the official image has them.
cat > "$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
EOF
# Images stay small: no recommends, no apt caches and no documentation left behind.
cat > "$rootfs/etc/apt/apt.conf.d/90container" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
EOF
cat > "$rootfs/etc/dpkg/dpkg.cfg.d/90container" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
: > "$rootfs/etc/hostname"
: > "$rootfs/etc/resolv.conf"

tar --numeric-owner -C "$rootfs" -c . |
  podman import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$image" >/dev/null
echo "base.sh: $image imported ($((SECONDS - start)) s)"
