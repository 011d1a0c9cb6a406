# Shared by the scripts that make Debian root filesystems with debootstrap (docker-base.sh for
# the Docker base image, setup-qemu10-root.sh for the QEMU 10 test root): the mirror to use, the
# minbase recipe, and installing debootstrap when it is missing. Sourced, never run; the sourcing
# script defines log().
# Must not: decide where a root goes or how it is cached (each caller keys its own cache on
# `declare -f` of the functions it runs, so a change here makes those artefacts again).

# The mirror apt already uses (deb822 "URIs:" or one-line "deb" entries), so debootstrap reaches
# the same place apt does; the security suite is not a debootstrap mirror.
mirror() {
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | sed -nE 's/^(URIs:|deb( \[[^]]*\])?)[[:space:]]+(https?:\/\/[^[:space:]]+\/debian)\/?([[:space:]].*)?$/\3/p' \
    | grep -v -- '-security' | head -n1 || true)
  echo "${SEVSUP_DEBIAN_MIRROR:-${m:-http://deb.debian.org/debian}}"
}

ensure_debootstrap() {
  command -v debootstrap >/dev/null && return 0
  log "installing debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}

# The recipe: a minbase root filesystem of $1 (suite) from $2 (mirror) in $3. Its text is part of
# the callers' cache keys, so any change to it makes their roots and images again.
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
