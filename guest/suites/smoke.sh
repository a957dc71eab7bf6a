# smoke: the NIC comes up and carries frames from the guest to the device.
ZCNIC_TESTS="link-up send-frames"

SMOKE_FRAMES=1000
SMOKE_SIZE=128

test_link_up() {
	need_iface
	dir=/sys/class/net/$ZCNIC_IFACE
	# operstate lags carrier by up to a second (linkwatch): wait a little before judging.
	i=0
	while [ "$(cat "$dir/operstate")" = down ] && [ $i -lt 30 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	flags=$(cat "$dir/flags")
	oper=$(cat "$dir/operstate")
	carrier=$(cat "$dir/carrier" 2>/dev/null || echo "?")
	diag "$ZCNIC_IFACE mac=$(cat "$dir/address") mtu=$(cat "$dir/mtu") flags=$flags operstate=$oper carrier=$carrier"
	[ $((flags & 1)) -eq 1 ] || fail "$ZCNIC_IFACE is not administratively up (flags $flags)"
	# "unknown" is what a device without VIRTIO_NET_F_STATUS reports: the link is assumed up.
	case "$oper" in
	up | unknown) ;;
	*) fail "$ZCNIC_IFACE operstate is $oper" ;;
	esac
}

test_send_frames() {
	need_iface
	before=$(iface_stat tx_packets)
	# Negative control (zcnic run --negative-control corrupt-byte): one frame leaves with its last
	# byte flipped, and the device's verification must make this test fail.
	corrupt=
	[ "${ZCNIC_FAULT:-}" = corrupt-byte ] && corrupt="--corrupt-seq $((SMOKE_FRAMES / 2))" && diag "negative control: frame $((SMOKE_FRAMES / 2)) corrupted"
	out=$(frames -i "$ZCNIC_IFACE" -n $SMOKE_FRAMES -s $SMOKE_SIZE -f 0 ${ZCNIC_PEER_MAC:+--dst-mac "$ZCNIC_PEER_MAC"} $corrupt)
	rc=$?
	diag "frames: $out"
	[ $rc -eq 0 ] || fail "frames exited with status $rc"
	sent=$(json_num "$out" sent)
	metric frames_sent "${sent:-0}"
	[ "$sent" = $SMOKE_FRAMES ] || fail "sent ${sent:-nothing} of $SMOKE_FRAMES frames"
	# virtio_net counts a frame when the device hands its buffer back: allow it a moment.
	i=0
	while [ $(($(iface_stat tx_packets) - before)) -lt $SMOKE_FRAMES ] && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	delta=$(($(iface_stat tx_packets) - before))
	metric tx_packets_delta $delta
	[ $delta -ge $SMOKE_FRAMES ] || fail "tx_packets grew by $delta, expected >= $SMOKE_FRAMES"
	# The device's side: every frame arrived, byte for byte, in order, once.
	# Without the harness the device's side cannot be checked: that is a broken setup, not a pass.
	[ "${ZCNIC_CTL:-0}" = 1 ] || fail "no harness on the KTAP port: the device's verification cannot be read"
	device_wait transmitq.frames $SMOKE_FRAMES 10
	device_stats verification.verified verification.corrupt verification.duplicates verification.gaps
	metric device_verified "$verification_verified"
	[ "$verification_verified" = $SMOKE_FRAMES ] || fail "the device verified $verification_verified of $SMOKE_FRAMES frames (corrupt $verification_corrupt, duplicates $verification_duplicates, gaps $verification_gaps)"
	[ "$verification_corrupt$verification_duplicates$verification_gaps" = 000 ] || fail "the device saw corrupt ($verification_corrupt), duplicate ($verification_duplicates) or missing ($verification_gaps) frames"
}
