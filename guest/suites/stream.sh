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
	# A trailer, numbered after the stream, once the link is up: the device then knows the
	# stream's end, so every frame it never saw (dropped while the link was down, also at the
	# end) is a gap. Whether the stream ends before or after the last restart depends on speed.
	i=0
	while [ "$(cat "/sys/class/net/$ZCNIC_IFACE/carrier" 2>/dev/null)" != 1 ] && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	trailer=$(frames -i "$ZCNIC_IFACE" -n 1 -s "$size" -f 0 --first-seq "$count" ${ZCNIC_PEER_MAC:+--dst-mac "$ZCNIC_PEER_MAC"})
	diag "trailer: $trailer"
	metric trailer_sent "$(json_num "$trailer" sent)"
	sleep 1
	metric tx_packets_delta $(($(iface_stat tx_packets) - before))
	metric tx_dropped_delta $(($(iface_stat tx_dropped) - dropped_before))
	diag "carrier=$(cat /sys/class/net/$ZCNIC_IFACE/carrier 2>/dev/null) operstate=$(cat /sys/class/net/$ZCNIC_IFACE/operstate)"
}
