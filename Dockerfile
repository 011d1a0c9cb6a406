# sevsup in a container: QEMU, OVMF and sevsup. No image registry is reachable from the machines
# this is built on, so the base image is made locally (see scripts/docker-base.sh):
#   debootstrap --variant=minbase trixie DIR && tar -C DIR -c . | docker import - sevsup-base:trixie
# Debian trixie brings Node.js 20 and QEMU 10. Build with `docker build --network host -t sevsup .`
# Run on an SEV host:
#   docker run --device /dev/kvm --device /dev/sev -v /etc/sevsup:/etc/sevsup:ro \
#     -v /var/lib/sevsup:/var/lib/sevsup -v /run/sevsup:/run/sevsup sevsup daemon
ARG BASE=sevsup-base:trixie
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nodejs npm qemu-system-x86 qemu-utils ovmf ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sevsup
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY bin ./bin
RUN npm ci --no-audit --no-fund --loglevel=error && npm prune --omit=dev
COPY examples ./examples
ENV PATH=/opt/sevsup/bin:$PATH
ENTRYPOINT ["sevsup"]
CMD ["--help"]
