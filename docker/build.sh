#!/usr/bin/env bash
# Builds the images of docker/compose.yml with podman: the base image first if it is missing
# (docker/base.sh), then hubstream, PostgreSQL, Redis and haproxy.
#
#   docker/build.sh                  all four
#   docker/build.sh hubstream        only those named (hubstream postgres redis haproxy)
#
# BASE picks another base image (BASE=debian:bookworm where a registry is reachable). Builds
# run under `nice` (the machine is shared) with docker/containers.conf (runc, ulimits), in
# the docker image format, which keeps the HEALTHCHECKs that the OCI format would drop.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
base=${BASE:-localhost/debian:bookworm}
tag=${TAG:-latest}
limit=${BUILD_TIMEOUT:-1800} # seconds for each image

if [[ $base == localhost/debian:bookworm ]] && ! podman image exists "$base"; then
  "$here/base.sh"
fi

build() { # NAME CONTEXT CONTAINERFILE [extra podman build args]
  local name=$1 context=$2 file=$3 start=$SECONDS
  shift 3
  echo "build.sh: localhost/$name:$tag"
  nice -n 15 timeout "$limit" podman build --format docker --build-arg BASE="$base" \
    -t "localhost/$name:$tag" -f "$file" "$@" "$context"
  echo "build.sh: localhost/$name:$tag built ($((SECONDS - start)) s)"
}

targets=("$@")
((${#targets[@]})) || targets=(hubstream postgres redis haproxy)
for t in "${targets[@]}"; do
  case $t in
    # podman 4.3 reads no Dockerfile.dockerignore by itself: without it the whole repository,
    # build directories and node_modules included, would be sent as the context.
    hubstream) build hubstream "$root" "$here/Dockerfile" --ignorefile "$here/Dockerfile.dockerignore" ;;
    postgres) build hubstream-postgres "$here/postgres" "$here/postgres/Dockerfile" ;;
    redis) build hubstream-redis "$here/redis" "$here/redis/Dockerfile" ;;
    haproxy) build hubstream-haproxy "$here" "$here/haproxy/Dockerfile" ;;
    *) echo "build.sh: unknown image '$t' (hubstream postgres redis haproxy)" >&2; exit 2 ;;
  esac
done
