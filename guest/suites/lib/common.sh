# Helpers for zcnic guest tests, sourced into every test's shell by /init.
#
# fd 3 is the KTAP stream: only these helpers write to it, so a test's own output
# (stdout, stderr) can never break the KTAP framing; it goes to the console.
# Environment from /init: ZCNIC_IFACE, ZCNIC_GUEST_IP, ZCNIC_PEER_IP, ZCNIC_TIMEOUT,
# ZCNIC_SKIP_FILE, and ZCNIC_<KEY> for every zcnic.<key>=value on the kernel command line.

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
