# iperf3: guest TCP throughput to the netns peer (198.18.0.1), iperf3 from the host's root on
# both ends: the host kernel's stack and iperf3's server in the peer's namespace (harness/
# iperf3-server.ts). On zcnic the NIC's device joins the guest to that namespace through its tap
# port (IFF_VNET_HDR: GSO frames go whole with --tso while verification is off); on the reference
# (zcnic.nic=qemu, bench/tap-throughput.ts) QEMU's own virtio-net does, on -netdev tap. The
# same guest, program and peer on both: what differs is the NIC's host side.
#
#   tcp-tx   guest -> peer for ZCNIC_IPERF_SECONDS (zcnic.iperf_seconds, default 10)
#   tcp-rx   peer -> guest (iperf3 -R): the peer's stack hands its tap GSO frames, which reach
#            the guest whole where the NIC offers GUEST_TSO (zcnic --guest-tso; QEMU's tap NIC
#            always does)
#
# Each test fails unless iperf3 ran to its end and the receiver got bytes; on zcnic, the device
# must also have carried at least those bytes (its transmitq or receiveq counters). Metrics:
# gbitPerSecond (the receiver's), bytes, retransmits, guestCpuPercent and peerCpuPercent
# (iperf3's own CPU accounting at each end), driverTxKicks and driverRxKicks (virtio_net's
# notifications to the NIC's host side), nicInterrupts (the host side's to the guest), and on zcnic the GSO frames the device saw.
# zcnic.iperf_verify=off turns the device's verification off for the run (by default each test
# starts with it on, as every zcnic test does): the device then hands GSO frames to the tap whole
# instead of segmenting them for the verifier.
ZCNIC_TESTS="tcp-tx tcp-rx"

IPERF_PEER=${ZCNIC_PEER_IP:-198.18.0.1}
IPERF_SECONDS=${ZCNIC_IPERF_SECONDS:-10}
IPERF_PORT=$ZCNIC_IPERF_PORT

iperf_on_zcnic() {
	[ "${ZCNIC_NIC:-zcnic}" != qemu ]
}

# iperf_setup: the device onto its tap (zcnic), and a peer that answers.
iperf_setup() {
	need_iface
	[ -n "$IPERF_PORT" ] || fail "no zcnic.iperf_port on the kernel command line (the harness starts the server)"
	if iperf_on_zcnic; then
		zcnic_ctl port tap >/dev/null || fail "the device cannot switch to port tap"
		if [ "${ZCNIC_IPERF_VERIFY:-on}" = off ]; then
			zcnic_ctl verify off >/dev/null || fail "the device cannot turn verification off"
		fi
	fi
	i=0
	until ping -c 1 -W 1 "$IPERF_PEER" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 10 ] || fail "the peer $IPERF_PEER does not answer ping"
	done
	offloads=$(host_run ethtool -k "$ZCNIC_IFACE" 2>/dev/null | awk -F': ' '/^(tcp-segmentation-offload|generic-receive-offload|rx-gro-hw|tx-checksumming):/ { printf "%s%s=%s", sep, $1, $2; sep = " " }')
	diag "guest offloads: ${offloads:-unknown (no ethtool)}"
}

# iperf_kicks: the driver's kicks so far, "TX RX" (virtio_net's ethtool -S tx0_kicks and rx0_kicks):
# how often the guest had to notify the NIC's host side, which suppresses them while it works.
iperf_kicks() {
	host_run ethtool -S "$ZCNIC_IFACE" 2>/dev/null | awk '$1 ~ /^tx(_queue_)?0_kicks:$/ { tx = $2 } $1 ~ /^rx(_queue_)?0_kicks:$/ { rx = $2 } END { print (tx + 0), (rx + 0) }'
}

# iperf_interrupts: the interrupts the NIC's host side raised so far (its used-buffer
# notifications), over all of the NIC's vectors in /proc/interrupts.
iperf_interrupts() {
	dev=$(readlink "/sys/class/net/$ZCNIC_IFACE/device")
	awk -v dev="${dev##*/}" 'index($0, dev) { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i } END { print n + 0 }' /proc/interrupts
}

# iperf_run NAME [IPERF3 ARGS...]: iperf3's client for IPERF_SECONDS; its figures as shell
# variables (iperf_ok, iperf_error, iperf_bytes, iperf_gbps, iperf_retransmits, iperf_guest_cpu,
# iperf_peer_cpu) and as metrics.
iperf_run() {
	json=/tmp/iperf3-$1.json
	shift
	kicks_before=$(iperf_kicks)
	interrupts_before=$(iperf_interrupts)
	host_run iperf3 --client "$IPERF_PEER" --port "$IPERF_PORT" --time "$IPERF_SECONDS" --json "$@" >"$json" 2>/tmp/iperf3.err
	iperf_status=$?
	# The receiver's view is the throughput (the sender's counts bytes still in flight).
	figures=$(host_run python3 -c '
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    print("iperf_ok=0 iperf_error=unreadable_json"); sys.exit()
end = r.get("end", {})
rx = end.get("sum_received", {}); tx = end.get("sum_sent", {}); cpu = end.get("cpu_utilization_percent", {})
err = r.get("error", "")
print("iperf_ok=%d iperf_error=%s iperf_bytes=%d iperf_gbps=%.3f iperf_retransmits=%d iperf_guest_cpu=%.1f iperf_peer_cpu=%.1f" % (
    0 if err or not rx else 1, "_".join(err.split()) or "none", rx.get("bytes", 0), rx.get("bits_per_second", 0) / 1e9,
    tx.get("retransmits", 0), cpu.get("host_total", 0), cpu.get("remote_total", 0)))
' "$json")
	eval "$figures"
	diag "iperf3 ${*:-(guest sends)}: status $iperf_status, $figures"
	[ "$iperf_status" = 0 ] && [ "$iperf_ok" = 1 ] || fail "iperf3 did not finish: status $iperf_status, ${iperf_error:-?} $(tail -n 2 /tmp/iperf3.err 2>/dev/null)"
	[ "${iperf_bytes:-0}" -gt 0 ] || fail "the receiver got no bytes"
	metric gbitPerSecond "$iperf_gbps"
	metric bytes "$iperf_bytes"
	metric retransmits "$iperf_retransmits"
	metric guestCpuPercent "$iperf_guest_cpu"
	metric peerCpuPercent "$iperf_peer_cpu"
	kicks_after=$(iperf_kicks)
	metric nicInterrupts $(($(iperf_interrupts) - interrupts_before))
	metric driverTxKicks $((${kicks_after% *} - ${kicks_before% *}))
	metric driverRxKicks $((${kicks_after#* } - ${kicks_before#* }))
}

# iperf_device_carried QUEUE: on zcnic, the device's QUEUE carried at least the bytes the
# receiver got (frames with their headers: never fewer), and its GSO frames as metrics.
iperf_device_carried() {
	iperf_on_zcnic || return 0
	device_stats "$1.frames" "$1.bytes" gso.frames.tcp4 gso.segments gso.largestFrame rxGso.frames.tcp4 rxGso.largestFrame portTxDropped
	eval "carried=\${${1}_bytes:-0}"
	metric gsoFrames "${gso_frames_tcp4:-0}"
	metric gso.segments "${gso_segments:-0}"
	metric gso.largestFrame "${gso_largestFrame:-0}"
	metric rxGsoFrames "${rxGso_frames_tcp4:-0}"
	metric rxGso.largestFrame "${rxGso_largestFrame:-0}"
	metric portTxDropped "${portTxDropped:-0}"
	[ "$carried" -ge "$iperf_bytes" ] || fail "the device's $1 carried $carried bytes, fewer than the $iperf_bytes the receiver got"
}

test_tcp_tx() {
	iperf_setup
	iperf_run tx
	iperf_device_carried transmitq
}

test_tcp_rx() {
	iperf_setup
	iperf_run rx --reverse
	iperf_device_carried receiveq
}
