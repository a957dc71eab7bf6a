#!/bin/sh
# Build zcnic's xdpsock as a static binary.
# Usage: guest/xdpsock/build.sh OUTPUT
# Needs (Debian 12): gcc libxdp-dev libbpf-dev libelf-dev zlib1g-dev
# Static link line (libxdp.a embeds its default XSK program and dispatcher; this
# libelf.a needs only zlib, no zstd):
#   gcc -static -O2 -Wall -Wextra -o OUTPUT guest/xdpsock/*.c -lxdp -lbpf -lelf -lz
set -eu
if [ $# -ne 1 ]; then
	echo "usage: $0 OUTPUT" >&2
	exit 2
fi
src=$(cd "$(dirname "$0")" && pwd)
out=$1
${CC:-gcc} -static -O2 -Wall -Wextra ${CFLAGS:-} -o "$out" "$src"/*.c -lxdp -lbpf -lelf -lz
