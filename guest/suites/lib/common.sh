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
#   strict on [stall|complete-empty] | strict off
#                               emulate a NIC that needs headers linear with the virtio-net
#                               header: refuse such a chain and stop the queue (stall, default)
#                               or complete it empty (README: what each emulates)
#   zc-map FRAME HEADROOM OFF:GPA...   the user buffer of the zero-copy proof (hex pairs, as
#                               xdpsock --umem-map writes them); zc-map off clears it
#   zc-map stream tcp|udp OFF:GPA...   a MSG_ZEROCOPY sender's ring buffer (zerocopy
#                               --buf-map): stream byte S must be read from offset S mod size
#   stats KEY...                prints KEY=value per key, dots as underscores
#                               (device_stats below sets them as shell variables)
#   wait KEY MIN SECONDS        waits until stats KEY >= MIN, then prints KEY=value; fails
#                               when it is still below MIN after SECONDS
#   peer stats KEY...           the netns peer's totals (tcp.bytes, udp.datagrams, last.sha256...)
#   peer send ADDRESS PORT BYTES SEED   the peer connects to ADDRESS:PORT (a guest listener),
#                               sends BYTES of the stream pattern of SEED (harness/peer.ts) and
#                               answers sent=N ms=N once the guest closed the connection
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

# device_stats KEY...: sets a shell variable per device stats key (dots become underscores:
# chainShapes.descriptorsPerChain.2 -> $chainShapes_descriptorsPerChain_2) and prints them
# as one diagnostic line.
device_stats() {
	zcnic_stats_reply=$(zcnic_ctl stats "$@") || fail "cannot read the device's counters"
	zcnic_assign "$zcnic_stats_reply"
}

# device_wait KEY MIN SECONDS: waits until the device's counter KEY reaches MIN and sets its
# variable as device_stats does; when it is still short after SECONDS, the test fails with the
# counter's value.
device_wait() {
	zcnic_wait_reply=$(zcnic_ctl wait "$1" "$2" "$3" 2>&1) || fail "waiting for the device: ${zcnic_wait_reply:-no answer}"
	zcnic_assign "$zcnic_wait_reply"
}

# zcnic_assign "KEY=VALUE ...": the harness's answer as shell variables (only plain words get
# evaluated), and one diagnostic line.
zcnic_assign() {
	case "$1" in
	*[!A-Za-z0-9_=.\ -]*) fail "unexpected answer from the harness: $1" ;;
	esac
	eval "$1"
	diag "device: $1"
	[ "${ZCNIC_FAULT:-}" = count-off-by-one ] && zcnic_off_by_one "$1"
	return 0
}

# zcnic_off_by_one "KEY=VALUE ...": the negative control of every reconciliation (zcnic run
# --negative-control count-off-by-one): each number the device answered becomes one larger,
# and every test that reconciles a device count must then fail.
zcnic_off_by_one() {
	for zcnic_pair in $1; do
		case "${zcnic_pair#*=}" in
		'' | *[!0-9]*) ;;
		*) eval "${zcnic_pair%%=*}=$((${zcnic_pair#*=} + 1))" ;;
		esac
	done
	diag "negative control: each device count above is one larger for this test"
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

# kernel_version_ge MAJOR MINOR: whether `uname -r` is at least MAJOR.MINOR.
kernel_version_ge() {
	rel=$(uname -r)
	maj=${rel%%.*}
	rest=${rel#*.}
	min=${rest%%[!0-9]*}
	[ "$maj" -gt "$1" ] || { [ "$maj" -eq "$1" ] && [ "$min" -ge "$2" ]; }
}

# host_run [VAR=VALUE...] CMD ARGS...: runs CMD in the host's root file system (zcnic.rootfs=host,
# mounted by /init), with a clean environment plus the VAR=VALUE words given. Fails the test when
# that root is not mounted: a test that needs host programs has no other way to run.
host_run() {
	[ -n "$ZCNIC_HOSTROOT" ] || fail "the host's root file system is not mounted (zcnic.rootfs=host; the console says why)"
	# zcnic.tools_path: host folders of newer programs than the host's own, first (zcnic selftests).
	chroot "$ZCNIC_HOSTROOT" /usr/bin/env -i PATH="${ZCNIC_TOOLS_PATH:+$ZCNIC_TOOLS_PATH:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" HOME=/root TERM=dumb "$@"
}

# iface_by_mac MAC: the interface with that MAC address.
iface_by_mac() {
	for dev in /sys/class/net/*; do
		[ "$(cat "$dev/address" 2>/dev/null)" = "$1" ] && { echo "${dev##*/}"; return 0; }
	done
	return 1
}

# kernel_complaints LINES: the first oops, BUG and warning lines the kernel logged after its
# first LINES lines (`dmesg | wc -l` before the test); nothing when there are none.
kernel_complaints() {
	dmesg | tail -n +$(($1 + 1)) | grep -E 'WARNING:|BUG:|Oops|Call Trace|general protection fault|kernel BUG' | head -n 5
}
