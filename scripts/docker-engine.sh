#!/usr/bin/env bash
# Makes a Docker engine available for the image tests, and takes it away again (run as root).
# For CI (.ci/run) and developers who want integration/docker/ to run; the test command itself
# never calls this: its Docker tests run when an engine answers and say plainly when none does.
#   docker-engine.sh start   install docker.io and debootstrap if missing; start dockerd if no
#                            engine answers (without a bridge, iptables or IP forwarding: builds
#                            use --network host, containers --network none), wait until it answers
#   docker-engine.sh stop    stop the dockerd that `start` started, and only that one
# Exit codes: 0 ready/stopped; 3 the Docker engine cannot work on this machine (dockerd does not
# start); the last stderr line then starts with "docker-engine: unavailable:". Else a failure.
set -euo pipefail

STATE=/run/sevsup-dockerd.pid   # written only for a dockerd this script started
LOG=/var/log/sevsup-dockerd.log
log() { echo "docker-engine: $*" >&2; }
unavailable() { log "unavailable: $*"; exit 3; }
engine_up() { timeout 10 docker info >/dev/null 2>&1; }

[[ $EUID -eq 0 ]] || { log "must run as root (installs packages, starts dockerd)"; exit 1; }

start() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    # docker.io's postinst would start the SysV service (with its default bridge and iptables
    # rules) where no policy forbids it; dockerd is started below, with our flags.
    local created_policy=
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod 0755 /usr/sbin/policy-rc.d
      created_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [[ -z $created_policy ]] || rm -f /usr/sbin/policy-rc.d
  fi
  if engine_up; then
    log "an engine already answers; nothing started"
    return 0
  fi
  log "starting dockerd (log: $LOG)"
  # setsid + all three streams redirected: dockerd holds no pipe of its caller open.
  setsid dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false >>"$LOG" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" > "$STATE"
  for ((i = 0; i < 120; i++)); do
    engine_up && { log "engine ready (dockerd pid $pid)"; return 0; }
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$STATE"
      tail -n 15 "$LOG" >&2 || true
      unavailable "dockerd exited while starting: $(grep -E 'level=(fatal|error)' "$LOG" | tail -n1 || true)"
    fi
    sleep 0.5
  done
  stop
  unavailable "dockerd did not answer within 60 s"
}

stop() {
  [[ -f $STATE ]] || { log "no dockerd of ours to stop"; return 0; }
  local pid
  pid=$(cat "$STATE")
  if [[ $pid =~ ^[0-9]+$ ]] && grep -q '^dockerd$' "/proc/$pid/comm" 2>/dev/null; then
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "dockerd (pid $pid) did not stop within 30 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$STATE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) log "usage: docker-engine.sh start|stop"; exit 2 ;;
esac
