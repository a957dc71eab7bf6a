# stream: sends numbered test frames continuously (flow 0), for the device restart test: the
# backend is killed and started again while this runs; the link drops and comes back.
# zcnic.stream_frames=N (default 200000), zcnic.stream_size=N (default 128).
ZCNIC_TESTS="stream"

test_stream() {
	need_iface
	count=${ZCNIC_STREAM_FRAMES:-200000}
	size=${ZCNIC_STREAM_SIZE:-128}
	before=$(iface_stat tx_packets)
	dropped_before=$(iface_stat tx_dropped)
	out=$(frames -i "$ZCNIC_IFACE" -n "$count" -s "$size" -f 0 ${ZCNIC_PEER_MAC:+--dst-mac "$ZCNIC_PEER_MAC"})
	rc=$?
	diag "frames: $out"
	[ $rc -eq 0 ] || fail "frames exited with status $rc"
	sent=$(json_num "$out" sent)
	metric frames_sent "${sent:-0}"
	sleep 1
	metric tx_packets_delta $(($(iface_stat tx_packets) - before))
	metric tx_dropped_delta $(($(iface_stat tx_dropped) - dropped_before))
	diag "carrier=$(cat /sys/class/net/$ZCNIC_IFACE/carrier 2>/dev/null) operstate=$(cat /sys/class/net/$ZCNIC_IFACE/operstate)"
}
