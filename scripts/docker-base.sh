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

# The mirror apt already uses (deb822 "URIs:" or one-line "deb" entries), so debootstrap reaches
# the same place apt does; the security suite is not a debootstrap mirror.
mirror() {
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | sed -nE 's/^(URIs:|deb( \[[^]]*\])?)[[:space:]]+(https?:\/\/[^[:space:]]+\/debian)\/?([[:space:]].*)?$/\3/p' \
    | grep -v -- '-security' | head -n1 || true)
  echo "${SEVSUP_DEBIAN_MIRROR:-${m:-http://deb.debian.org/debian}}"
}

# --- 1. the engine ---------------------------------------------------------------------------
timeout 10 docker info >/dev/null 2>&1 \
  || unavailable "no Docker engine answers (docker info failed); start one with: bash scripts/docker-engine.sh start"
log "engine: $(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}' 2>/dev/null)"

# --- 2. the base image -------------------------------------------------------------------------
# The recipe: a minbase root filesystem of $1 (suite) from $2 (mirror) in $3. Its text is part of
# the cache key below, so any change to it makes the image again.
make_rootfs() {
  local suite=$1 m=$2 dir=$3
  debootstrap --variant=minbase "$suite" "$dir" "$m" >"$dir.log" 2>&1 \
    || { tail -n 20 "$dir.log" >&2; rm -f "$dir.log"; log "debootstrap failed"; return 1; }
  rm -f "$dir.log"
  # Nothing an image needs: package lists and .debs (any build that installs more fetches them
  # again: docker build --network host reaches the same mirror), documentation, manuals and
  # translations (a third of minbase). The dpkg filter keeps the latter out of every package
  # installed later on top of this base; copyright files stay.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin \
    "$dir"/usr/share/locale/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/var/log/*.log
  find "$dir/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
  cat > "$dir/etc/dpkg/dpkg.cfg.d/01-sevsup-slim" <<'SLIM'
# sevsup-base: no documentation, manuals or translations in images (scripts/docker-base.sh)
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
SLIM
  # No fsync per file while unpacking: an image layer is written once, and a build that dies
  # midway is thrown away whole (as Debian's official images do).
  echo force-unsafe-io > "$dir/etc/dpkg/dpkg.cfg.d/02-sevsup-unsafe-io"
  echo "deb $m $suite main" > "$dir/etc/apt/sources.list"
}

m=$(mirror)
# The cache key: the recipe's own text (as bash prints it: comments and layout do not count)
# and its inputs. The same key means the same image; nothing else is checked.
RECIPE=$(printf '%s\n' "$(declare -f make_rootfs)" "$SUITE" "$m" | sha256sum | cut -c1-16)
have=$(docker image inspect --format '{{index .Config.Labels "org.sevsup.base-recipe"}}' "$BASE_IMAGE" 2>/dev/null || true)
if [[ $have == "$RECIPE" ]]; then
  log "$BASE_IMAGE is up to date (recipe $RECIPE)"
else
  [[ -z $have ]] || log "$BASE_IMAGE was made by recipe '$have', not $RECIPE: making it again"
  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
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
