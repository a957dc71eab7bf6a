#!/usr/bin/env bash
# Installs what zcnic needs and is missing, idempotently: Debian packages (apt-get, as root),
# npm packages (npm ci, which also builds the native addon of vfio-user-ts).
set -euo pipefail
cd "$(dirname "$0")/.."

# clang llvm bpftool m4 dpkg-dev pkg-config: the guest's xdp-tools and libbpf, built static from
# Debian's source packages (images/xdp-tools.ts).
# rsync python3-yaml python3-jsonschema: the kernel's network selftests (images/selftests.ts):
# their install rule copies with rsync, and the YNL code generator needs PyYAML and jsonschema.
packages=(qemu-system-x86 busybox-static cpio xz-utils zstd libxdp-dev libbpf-dev libelf-dev zlib1g-dev
  xdp-tools dpdk dpdk-dev librte-net-vhost23 librte-net-virtio23 tshark iproute2 gcc make python3
  clang llvm bpftool m4 dpkg-dev pkg-config rsync python3-jsonschema)
# The kernel's selftests run in a guest whose root file system is this host's (zcnic selftests,
# guest/init zcnic.rootfs=host): they call these, and kmod's modprobe/depmod load the guest's modules.
# bpftrace: netpoll_basic.py watches netpoll with it.
packages+=(python3-yaml ethtool socat iperf3 tcpdump kmod iputils-ping bpftrace)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "zcnic setup: these Debian packages are missing; install them as root:" >&2
    echo "  apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "zcnic setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; the default (no) is what we want.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm ci only when the installed tree is not the locked one (it takes a while and rebuilds the addon).
stamp=node_modules/.zcnic-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp" || [ ! -f packages/vfio-user-ts/build/Release/zcnic_sys.node ]; then
  echo "zcnic setup: npm ci"
  npm ci --no-audit --no-fund
  cp package-lock.json "$stamp"
fi

# The addon again when its source changed after it was built (a pull that touches native/):
# npm ci above runs only when the package tree changes, and an old addon lacks new functions.
addon=packages/vfio-user-ts/build/Release/zcnic_sys.node
if [ packages/vfio-user-ts/native/sys.c -nt "$addon" ] || [ packages/vfio-user-ts/binding.gyp -nt "$addon" ]; then
  echo "zcnic setup: rebuilding the native addon (its source changed)"
  npm rebuild vfio-user-ts
fi
