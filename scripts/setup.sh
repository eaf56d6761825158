#!/usr/bin/env bash
# Install what cnikit's tests and demo need on a fresh Debian machine, when it is missing:
# npm packages (Bun comes from the npm package `bun`) and Debian packages.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/bun ] || [ ! -x node_modules/.bin/tsc ]; then
  echo "setup: installing npm packages" >&2
  npm install --no-audit --no-fund >&2
fi

# command -> Debian package that provides it
declare -A NEED=(
  [ip]=iproute2
  [tc]=iproute2
  [bridge]=iproute2
  [sysctl]=procps
  [nsenter]=util-linux
  [nft]=nftables
  [ping]=iputils-ping
  [unshare]=util-linux
  [iptables]=iptables
  [podman]=podman
  [runc]=runc
  [etcd]=etcd-server
  [openssl]=openssl
  [iperf3]=iperf3
  # bench/ebpf.bench.ts: request/response latency (ping-pong) across nodes
  [sockperf]=sockperf
  [go]=golang-go
  [gcc]=gcc
  # the bgp backend runs BIRD 2 (bird, birdc)
  [bird]=bird2
  [birdc]=bird2
  # cnikit graph renders with graphviz; promtool checks /metrics; chromium loads the status page
  [dot]=graphviz
  [promtool]=prometheus
  [chromium]=chromium
  # test/integration/k8s: the simulated kubelet's probes (curl), its containers' roots (chroot),
  # the image test's library list (ldd)
  [curl]=curl
  [chroot]=coreutils
  [ldd]=libc-bin
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
# The reference Go plugins, driven by the interoperability tests and compared in bench/.
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
# The podman interoperability test builds its container rootfs from a statically linked busybox
# (the dynamic `busybox` package also installs /bin/busybox, which would not run there).
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || missing+=(busybox-static)

# containerd's CNI library (and libcni, its dependency), built in GOPATH mode by the go-cni
# interoperability test (test/interop/gocni)
[ -d /usr/share/gocode/src/github.com/containerd/go-cni ] || missing+=(golang-github-containerd-go-cni-dev)

# cnikit-shim is linked statically (gcc -static): it needs libc's static archive
dpkg-query -W -f='${Status}' libc6-dev 2>/dev/null | grep -q 'ok installed' || missing+=(libc6-dev)

# one package may provide several commands
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
