# sevsup in a container: QEMU 10, OVMF, Node.js 20 and sevsup bundled from this checkout, plus
# the demo's kernel, test firmware and initrd. Owns the image only; it must not need a registry:
# the base is made locally (scripts/docker-base.sh: debootstrap trixie + docker import) because
# none is reachable here, and `docker build --network host` (scripts/docker-build.sh) lets apt
# and npm inside the build reach Debian's mirror and the npm registry as the host does.
# Runs as root by default: QEMU needs /dev/kvm and /dev/sev. How to run it: docs/docker.md.
ARG BASE=sevsup-base:trixie

# ---- runtime packages: shared by the build stage and the final image --------------------------
FROM ${BASE} AS runtime
# On every image this file makes (both stages inherit it): lets docker-build.sh remove its own
# superseded images, and nothing else.
LABEL org.sevsup.image=1
# qemu-utils: for qemu-img, to make guest disks. libvirt-clients-qemu and its Python modules:
# virt-qemu-sev-validate, which `sevsup demo` uses to verify off-host style. openssl: the demo owner's
# CA and server certificate for `sevsup owner serve`. No recommends: no
# GUI, no audio. Left out by
# dpkg (so never in any layer): QEMU's i386 and microvm emulators, its firmware for other
# architectures, and the NBD/storage-daemon/io tools; sevsup runs qemu-system-x86_64 only.
# The package lists go away in the same layer, so they never reach the image.
RUN printf '%s\n' '# sevsup image: what sevsup never runs (see the Dockerfile)' \
      'path-exclude /usr/bin/qemu-system-i386' 'path-exclude /usr/bin/qemu-system-x86_64-microvm' \
      'path-exclude /usr/bin/qemu-io' 'path-exclude /usr/bin/qemu-nbd' 'path-exclude /usr/bin/qemu-storage-daemon' \
      'path-exclude /usr/share/qemu/openbios-*' 'path-exclude /usr/share/qemu/skiboot.lid' \
      'path-exclude /usr/share/qemu/slof.bin' 'path-exclude /usr/share/qemu/u-boot*' \
      'path-exclude /usr/share/qemu/hppa-firmware*' 'path-exclude /usr/share/qemu/s390-ccw.img' \
      'path-exclude /usr/share/qemu/palcode-clipper' 'path-exclude /usr/share/qemu/npcm*' \
      > /etc/dpkg/dpkg.cfg.d/02-sevsup-qemu-x86-only \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      nodejs qemu-system-x86 qemu-utils ovmf openssl \
      libvirt-clients-qemu python3-lxml python3-libvirt python3-cryptography >/dev/null \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log

# ---- build: compile and bundle, make the demo/test assets, production dependencies ----------
# Layers from the least to the most often changed, so a source change rebuilds only the last
# ones: packages, npm, dependencies (the lock file), the kernel and initrd (their recipes), and
# only then the sources, the build and the firmware (whose patcher needs the build).
FROM runtime AS build
# npm, the TypeScript build and the asset recipe's tools live only in this stage. The package
# lists stay here: setup-test-assets.sh needs them for `apt-get download` of the kernel.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates busybox-static cpio >/dev/null
# npm itself comes from the npm registry through corepack, which trixie's nodejs depends on:
# Debian's npm package pulls in ~380 packages and took 97 s of a 164 s cold build. Pinned; the
# first call (in `npm ci` below, where the host's CAs are trusted) downloads it.
ARG NPM_VERSION=10.9.2
ENV COREPACK_ENABLE_DOWNLOAD_PROMPT=0 COREPACK_ENABLE_STRICT=0 NPM_CONFIG_UPDATE_NOTIFIER=false
RUN printf '#!/bin/sh\nexec corepack npm@%s "$@"\n' "$NPM_VERSION" > /usr/local/bin/npm \
 && chmod 0755 /usr/local/bin/npm
WORKDIR /opt/sevsup
# Dependencies first, in their own layer: it stays cached until the lock file changes. All of
# them here for the build; the production ones alone in /opt/prod for the image (--omit=dev, so
# no pruning after the build is needed). --ignore-scripts: `prepare` would build before the
# sources are copied; we build below.
COPY package.json package-lock.json ./
# The building host's own CAs (docker-build.sh passes /usr/local/share/ca-certificates/*.crt):
# where the npm registry is reached through a TLS-inspecting proxy, npm must trust what the
# host's npm trusts. Public certificates, used by this step only, written and removed within
# it, and absent from the final image.
ARG HOST_CA_CERTS=
RUN set -e; \
    if [ -n "$HOST_CA_CERTS" ]; then \
      printf '%s\n' "$HOST_CA_CERTS" > /tmp/host-ca.pem; export NODE_EXTRA_CA_CERTS=/tmp/host-ca.pem; \
    fi; \
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; \
    mkdir -p /opt/prod; cp package.json package-lock.json /opt/prod/; \
    (cd /opt/prod && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error); \
    find /opt/prod/node_modules -mindepth 1 -type d -empty -delete; \
    rm -rf /tmp/host-ca.pem /root/.npm
# The assets that need no build, from their recipes alone (the same as on a developer's machine,
# on this image's own Debian): trixie's cloud kernel and the busybox demo initrd.
COPY scripts/setup-test-assets.sh scripts/make-demo-initrd.sh ./scripts/
RUN bash scripts/setup-test-assets.sh vmlinuz demo-initrd.img \
 && test -s .cache/test-assets/vmlinuz -a -s .cache/test-assets/demo-initrd.img
# The sources: everything from here on is redone when they change.
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/bundle.mjs scripts/make-test-firmware.mjs ./scripts/
COPY src ./src
COPY bin ./bin
# The build (dist/ and its bundle), then the test firmware patched from this image's
# /usr/share/ovmf/OVMF.fd by the built patcher (the same bytes each time: its layer below stays cached),
# and the simulated SNP platform's SIMULATED chain the demo's SNP guest signs its report with (made by
# the built simulator, as setup does in a checkout; a simulator's keys, never a real platform's).
RUN npm run --silent build \
 && bash scripts/setup-test-assets.sh ovmf-sev-test.fd ovmf-snp-test.fd sim-state \
 && test -s .cache/test-assets/ovmf-sev-test.fd -a -s .cache/test-assets/ovmf-snp-test.fd && test -d .cache/test-assets/sim-state

# ---- the image --------------------------------------------------------------------------------
# What changes least first: dependencies and assets are the same layers from build to build
# (COPY is cached by content); only the bundle and the small checkout files follow a change.
FROM runtime
WORKDIR /opt/sevsup
COPY --from=build /opt/prod/node_modules ./node_modules
# Same place as in a checkout, so code that finds the assets relative to dist/ finds them here.
COPY --from=build /opt/sevsup/.cache/test-assets ./.cache/test-assets
# The directories docs/docker.md mounts volumes on; they exist (empty) without volumes too.
RUN mkdir -p /etc/sevsup/vms /var/lib/sevsup /run/sevsup /var/cache/sevsup
ENV PATH=/opt/sevsup/bin:$PATH NODE_ENV=production
COPY package.json ./
COPY examples ./examples
COPY bin ./bin
# Only the bundle: bin/ runs nothing else from dist/.
COPY --from=build /opt/sevsup/dist/bundle ./dist/bundle
ENTRYPOINT ["sevsup"]
CMD ["--help"]
