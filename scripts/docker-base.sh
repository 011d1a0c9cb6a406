#!/usr/bin/env bash
# Makes sevsup's base image available to the Docker engine that answers here (run as root):
# sevsup-base:trixie, made with debootstrap and `docker import` (no registry is reachable, so
# `FROM debian:trixie` cannot be pulled), unless an image made by the same recipe is there.
# Cached by its inputs: the image carries a hash of the recipe below (the make_rootfs function's
# text, the suite and the mirror) and is made again only when that hash changes.
# Never installs Docker or starts an engine (scripts/docker-engine.sh does, for CI); installs
# debootstrap if it must make the base and it is missing. Must not build sevsup's own image
# (docker-build.sh does).
#
# Exit codes: 0 ready; 3 no Docker engine can be used here (none answers, or it cannot run a
# container: missing kernel features); the last stderr line says why and starts with
# "docker-base: unavailable:". Anything else is a plain failure (apt, debootstrap…).
set -euo pipefail

BASE_IMAGE=${SEVSUP_BASE_IMAGE:-sevsup-base:trixie}
SUITE=${SEVSUP_BASE_SUITE:-trixie}
log() { echo "docker-base: $*" >&2; }
unavailable() { log "unavailable: $*"; exit 3; }

[[ $EUID -eq 0 ]] || { log "must run as root (docker, debootstrap)"; exit 1; }

# mirror, make_rootfs, ensure_debootstrap: shared with setup-qemu10-root.sh.
# shellcheck source=lib/debian-root.sh
source "$(dirname "$0")/lib/debian-root.sh"

# --- 1. the engine ---------------------------------------------------------------------------
timeout 10 docker info >/dev/null 2>&1 \
  || unavailable "no Docker engine answers (docker info failed); start one with: bash scripts/docker-engine.sh start"
log "engine: $(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}' 2>/dev/null)"

# --- 2. the base image -------------------------------------------------------------------------
m=$(mirror)
# The cache key: the recipe's own text (as bash prints it: comments and layout do not count)
# and its inputs. The same key means the same image; nothing else is checked.
RECIPE=$(printf '%s\n' "$(declare -f make_rootfs)" "$SUITE" "$m" | sha256sum | cut -c1-16)
have=$(docker image inspect --format '{{index .Config.Labels "org.sevsup.base-recipe"}}' "$BASE_IMAGE" 2>/dev/null || true)
if [[ $have == "$RECIPE" ]]; then
  log "$BASE_IMAGE is up to date (recipe $RECIPE)"
else
  [[ -z $have ]] || log "$BASE_IMAGE was made by recipe '$have', not $RECIPE: making it again"
  ensure_debootstrap
  dir=$(mktemp -d /var/tmp/sevsup-base.XXXXXX)
  trap 'rm -rf "$dir"' EXIT
  log "debootstrap --variant=minbase $SUITE from $m"
  make_rootfs "$SUITE" "$m" "$dir"
  old=$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || true)
  tar -C "$dir" -c . | docker import \
    --change 'CMD ["/bin/bash"]' --change "LABEL org.sevsup.base-recipe=$RECIPE" \
    --message "debootstrap --variant=minbase $SUITE $m (recipe $RECIPE)" - "$BASE_IMAGE" >/dev/null
  rm -rf "$dir"
  trap - EXIT
  # The replaced image, now untagged; still in use by other images' layers, it stays.
  [[ -z $old ]] || docker rmi "$old" >/dev/null 2>&1 || true
  log "imported $BASE_IMAGE (recipe $RECIPE)"
fi

# A container must actually run here (namespaces, cgroups, overlay): the engine answering is not
# enough on a kernel without those features.
if ! out=$(docker run --rm --network none "$BASE_IMAGE" true 2>&1); then
  unavailable "cannot run a container: ${out//$'\n'/ }"
fi
log "ready: $BASE_IMAGE"
