# Helpers for zcnic guest tests, sourced into every test's shell by /init.
#
# fd 3 is the KTAP stream: only these helpers write to it, so a test's own output
# (stdout, stderr) can never break the KTAP framing; it goes to the console.
# Environment from /init: ZCNIC_IFACE, ZCNIC_GUEST_IP, ZCNIC_PEER_IP, ZCNIC_TIMEOUT,
# ZCNIC_SKIP_FILE, and ZCNIC_<KEY> for every zcnic.<key>=value on the kernel command line.

# zcnic_ctl REQUEST...: asks the device, through the harness on the other end of the KTAP port,
# and prints its one-line answer. Requests (harness/guest-requests.ts):
#   begin SUITE TEST            counters, port (sink) and verification start afresh
#   reset                       counters start from zero
#   port sink|reflect           where transmitted frames go
#   port tap [NAME]             to and from the host tap (the run's netns peer, 198.18.0.1)
#   port gen size=N count=N pps=N   inject test frames into the receive queue
#   verify on|off               check every transmitted test frame
#   strict on|off               emulate a NIC that needs headers linear with the virtio-net header
#   zc-map FRAME HEADROOM OFF:GPA...   the user buffer of the zero-copy proof (hex pairs, as
#                               xdpsock --umem-map writes them); zc-map off clears it
#   stats KEY...                prints KEY=value per key, dots as underscores, e.g.
#                               `eval "$(zcnic_ctl stats transmitq.frames)"` sets $transmitq_frames
#   wait KEY MIN SECONDS        waits until stats KEY >= MIN, then prints KEY=value
#   peer stats KEY...           the netns peer's totals (tcp.bytes, udp.datagrams, last.sha256...)
# Fails (status 1, reason on stderr) without a harness or when the answer is "error ...".
zcnic_ctl() {
	[ "${ZCNIC_CTL:-0}" = 1 ] || {
		echo "zcnic_ctl: no harness on the KTAP port" >&2
		return 1
	}
	echo "#zcnic-ctl $*" >&3
	IFS= read -r -t 120 zcnic_reply <&3 || {
		echo "zcnic_ctl: no answer from the harness to: $*" >&2
		return 1
	}
	case "$zcnic_reply" in
	error*)
		echo "zcnic_ctl $*: $zcnic_reply" >&2
		return 1
		;;
	esac
	echo "$zcnic_reply"
}

# diag LINE...: KTAP diagnostic lines ("# LINE"): one per argument and per embedded newline.
diag() {
	printf '%s\n' "$@" | while IFS= read -r line; do
		echo "# $line" >&3
	done
}

# metric NAME VALUE: a "# zcnic-metric NAME=VALUE" line the harness collects.
metric() {
	echo "# zcnic-metric $1=$2" >&3
}

# fail REASON: end the test as "not ok", with the reason as a diagnostic.
fail() {
	diag "$*"
	exit 1
}

# skip REASON: end the test as "ok ... # SKIP REASON".
skip() {
	echo "$*" >"$ZCNIC_SKIP_FILE"
	exit 4
}

# json_num JSON KEY: the number stored under KEY in a flat one-line JSON object.
json_num() {
	echo "$1" | sed -n "s/.*\"$2\":\([0-9][0-9]*\).*/\1/p"
}

# need_iface: fail unless the NIC under test exists.
need_iface() {
	[ -n "$ZCNIC_IFACE" ] && [ -d "/sys/class/net/$ZCNIC_IFACE" ] || fail "no virtio-net interface in the guest"
}

# iface_stat NAME: a counter from /sys/class/net/$ZCNIC_IFACE/statistics.
iface_stat() {
	cat "/sys/class/net/$ZCNIC_IFACE/statistics/$1"
}
