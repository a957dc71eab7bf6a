#!/bin/sh
# Build zcrx-recv as a static binary against the liburing the image builds from Debian's
# source (images/liburing.ts: bookworm's liburing-dev 2.3 has no zcrx).
# Usage: guest/zcrx-recv/build.sh OUTPUT, with LIBURING_DIR set (include/ and lib/liburing.a).
set -eu
if [ $# -ne 1 ]; then
	echo "usage: $0 OUTPUT" >&2
	exit 2
fi
if [ -z "${LIBURING_DIR:-}" ] || [ ! -f "$LIBURING_DIR/lib/liburing.a" ]; then
	echo "$0: LIBURING_DIR must name a static liburing (images/liburing.ts builds it)" >&2
	exit 1
fi
src=$(cd "$(dirname "$0")" && pwd)
${CC:-gcc} -static -O2 -Wall -Wextra ${CFLAGS:-} -I"$LIBURING_DIR/include" -o "$1" "$src/zcrx-recv.c" "$LIBURING_DIR/lib/liburing.a"
