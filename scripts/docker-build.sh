#!/usr/bin/env bash
# Builds the sevsup image (default tag sevsup:dev) from this checkout's Dockerfile, after
# scripts/docker-base.sh has made the base image ready (it is run first; it only checks when the
# base's recipe is unchanged). Needs a Docker engine that answers (scripts/docker-engine.sh start
# makes one); never starts one itself. Warm, a source change rebuilds only the Dockerfile's last
# layers (its comments say the order). Must not push, nor remove any image but its own superseded
# ones (untagged, with the Dockerfile's label org.sevsup.image).
#   usage: docker-build.sh [TAG]   (default sevsup:dev; the build stage is kept as TAG-build)
#   env: SEVSUP_DOCKER_BUILD_ARGS="--no-cache …" (extra docker build flags)
# --network host: the build's apt-get and npm reach Debian's mirror and the npm registry the way
# the host does (no bridge exists: dockerd runs with --bridge=none). --force-rm: a failed step
# leaves no stopped container behind. Exit codes are docker-base.sh's (3: no engine answers,
# or it cannot work here) or docker build's.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-sevsup:dev}

bash scripts/docker-base.sh

# The legacy builder: BuildKit needs the buildx plugin with newer clients, which Debian's
# docker.io does not bring; the legacy builder works with every client and caches layers too.
export DOCKER_BUILDKIT=0
# Site CAs this host trusts (Debian's place for them): npm inside the build must reach the
# registry through the same TLS-inspecting proxy, if there is one, as the host's npm does.
ca_args=()
shopt -s nullglob
ca_files=(/usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt)
shopt -u nullglob
if ((${#ca_files[@]})); then
  ca_args=(--build-arg "HOST_CA_CERTS=$(cat "${ca_files[@]}")")
fi
start=$SECONDS
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# shellcheck disable=SC2086 # extra flags are meant to split
docker build --network host --force-rm --tag "$TAG" "${ca_args[@]}" ${SEVSUP_DOCKER_BUILD_ARGS:-} . 2>&1 \
  | tee "$out" >&2
echo "docker-build: $TAG built in $((SECONDS - start)) s, $(docker image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1 / 1e6}')" >&2

# Name the build stage (the image just before the last FROM in the legacy builder's output): it
# is the next build's layer cache. Once it is named, every untagged image left with the
# Dockerfile's label is a superseded one (an earlier sevsup image or build stage), which would
# otherwise pile up with each rebuild.
build_stage=$(awk '/^Step [0-9]+\/[0-9]+ : FROM /{prev = last} /^ ---> [0-9a-f]+$/{last = $2} END{print prev}' "$out")
if [[ -n $build_stage ]] && docker tag "$build_stage" "$TAG-build" 2>/dev/null; then
  docker image prune --force --filter dangling=true --filter label=org.sevsup.image=1 >/dev/null
else
  echo "docker-build: could not find the build stage's image; superseded images are kept" >&2
fi
