#!/usr/bin/env bash
# Makes a Docker engine and sevsup's base image available on this machine (run as root):
#  1. installs docker.io and debootstrap from Debian if missing;
#  2. starts dockerd if no engine answers, and waits for it. It is started without a bridge,
#     iptables or IP forwarding (the machines this is built on have no image registry and no
#     use for container networking: builds use --network host, containers --network none).
#     dockerd is left running on purpose (log: /var/log/sevsup-dockerd.log); stop it with
#     `kill "$(cat /var/run/docker.pid)"`;
#  3. builds the base image sevsup-base:trixie with debootstrap and `docker import`, if absent
#     (no registry is reachable, so `FROM debian:trixie` cannot be pulled).
# Idempotent: a second run only checks. Must not build sevsup's own image (docker-build.sh does).
#
# Exit codes: 0 ready; 3 the Docker engine cannot work on this machine at all (dockerd does not
# start, or cannot run a container: missing kernel features); the last stderr line says why and
# starts with "docker-base: unavailable:". Anything else is a plain failure (apt, debootstrap…).
set -euo pipefail

BASE_IMAGE=${SEVSUP_BASE_IMAGE:-sevsup-base:trixie}
# Bump when the recipe below changes: an image made by an older recipe is then made again.
RECIPE=3
SUITE=${SEVSUP_BASE_SUITE:-trixie}
DOCKERD_LOG=/var/log/sevsup-dockerd.log
log() { echo "docker-base: $*" >&2; }
unavailable() { log "unavailable: $*"; exit 3; }

[[ $EUID -eq 0 ]] || { log "must run as root (installs packages, starts dockerd)"; exit 1; }

# The mirror apt already uses (deb822 "URIs:" or one-line "deb" entries), so debootstrap reaches
# the same place apt does; the security suite is not a debootstrap mirror.
mirror() {
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | sed -nE 's/^(URIs:|deb( \[[^]]*\])?)[[:space:]]+(https?:\/\/[^[:space:]]+\/debian)\/?([[:space:]].*)?$/\3/p' \
    | grep -v -- '-security' | head -n1 || true)
  echo "${SEVSUP_DEBIAN_MIRROR:-${m:-http://deb.debian.org/debian}}"
}

# --- 1. packages -------------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  # docker.io's postinst would start the SysV service (with its default bridge and iptables rules)
  # where no policy forbids it; we start dockerd ourselves below, with our flags.
  created_policy=
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [[ -z $created_policy ]] || rm -f /usr/sbin/policy-rc.d
fi

# --- 2. the engine -----------------------------------------------------------------------------
engine_up() { timeout 10 docker info >/dev/null 2>&1; }
if ! engine_up; then
  pid=$(cat /var/run/docker.pid 2>/dev/null || true)
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && grep -q dockerd "/proc/$pid/comm" 2>/dev/null; then
    log "dockerd (pid $pid) is starting; waiting"
  else
    log "starting dockerd (log: $DOCKERD_LOG)"
    # setsid + all three streams redirected: dockerd outlives this script and holds no pipe of
    # its caller open (a test runner waiting for this script's output would hang otherwise).
    setsid dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
      >>"$DOCKERD_LOG" 2>&1 </dev/null &
    pid=$!
  fi
  # Alive: our child, or (had setsid to fork) whatever dockerd wrote its pid file for.
  alive() { kill -0 "$pid" 2>/dev/null || kill -0 "$(cat /var/run/docker.pid 2>/dev/null || echo none)" 2>/dev/null; }
  for ((i = 0; i < 120; i++)); do
    engine_up && break
    if ! alive; then
      tail -n 15 "$DOCKERD_LOG" >&2 || true
      unavailable "dockerd exited while starting: $(grep -E 'level=(fatal|error)' "$DOCKERD_LOG" | tail -n1 || true)"
    fi
    sleep 0.5
  done
  engine_up || { tail -n 15 "$DOCKERD_LOG" >&2 || true; unavailable "dockerd did not answer within 60 s"; }
fi
log "engine ready: $(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}' 2>/dev/null)"

# --- 3. the base image -------------------------------------------------------------------------
have=$(docker image inspect --format '{{index .Config.Labels "org.sevsup.base-recipe"}}' "$BASE_IMAGE" 2>/dev/null || true)
if [[ $have != "$RECIPE" ]]; then
  [[ -z $have ]] || log "$BASE_IMAGE was made by recipe '$have', not $RECIPE: making it again"
  m=$(mirror)
  dir=$(mktemp -d /var/tmp/sevsup-base.XXXXXX)
  trap 'rm -rf "$dir"' EXIT
  log "debootstrap --variant=minbase $SUITE from $m"
  debootstrap --variant=minbase "$SUITE" "$dir" "$m" >"$dir.log" 2>&1 \
    || { tail -n 20 "$dir.log" >&2; rm -f "$dir.log"; log "debootstrap failed"; exit 1; }
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
  echo "deb $m $SUITE main" > "$dir/etc/apt/sources.list"
  old=$(docker image inspect --format '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || true)
  tar -C "$dir" -c . | docker import \
    --change 'CMD ["/bin/bash"]' --change "LABEL org.sevsup.base-recipe=$RECIPE" \
    --message "debootstrap --variant=minbase $SUITE $m" - "$BASE_IMAGE" >/dev/null
  rm -rf "$dir"
  trap - EXIT
  # The replaced image, now untagged; still in use by other images' layers, it stays.
  [[ -z $old ]] || docker rmi "$old" >/dev/null 2>&1 || true
  log "imported $BASE_IMAGE"
fi

# A container must actually run here (namespaces, cgroups, overlay): the engine answering is not
# enough on a kernel without those features.
if ! out=$(docker run --rm --network none "$BASE_IMAGE" true 2>&1); then
  unavailable "cannot run a container: ${out//$'\n'/ }"
fi
log "ready: $BASE_IMAGE"
