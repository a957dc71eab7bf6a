# zcrx: seed 003, io_uring zero-copy receive (Linux 6.15+): a page pool whose memory provider
# hands the NIC's receive queue the user's pages, hardware header/data split so that only
# payloads land there, and a refill queue for returning buffers.
#
#   probe   zcrx-probe (guest/tools/zcrx-probe.c) asks the kernel rather than trusting the
#           version string: it sets up an io_uring the way zcrx needs (SINGLE_ISSUER |
#           DEFER_TASKRUN | CQE32), probes its opcodes (is IORING_OP_RECV_ZC known?) and tries
#           IORING_REGISTER_ZCRX_IFQ on eth0's receive queue 0.
#
# Verdicts:
#   - the kernel has no zcrx (6.12: register opcode 32 is unknown -> EINVAL, RECV_ZC unknown):
#     SKIP, naming the kernel and its answer;
#   - the kernel has zcrx but eth0 cannot (EOPNOTSUPP: virtio_net has no queue management ops
#     and no header split): SKIP, naming the NIC as the missing piece;
#   - registration succeeds: there is no receive test yet to run on it, so SKIP saying so
#     rather than pass;
#   - any other answer (the probe's request is malformed for this kernel, io_uring is off, a
#     6.15+ kernel that does not know RECV_ZC, ...): not ok, with the answer.
#
#   nodev-recv  zcrx without a NIC's help: the device-less copy mode (ZCRX_REG_NODEV, Linux 7.1+;
#           guest/zcrx-recv/zcrx-recv.c says what the kernel does). The run's netns peer
#           (harness/peer.ts `send`) connects to zcrx-recv in the guest through the device
#           (port tap) and sends ZR_BYTES of its stream pattern; zcrx-recv receives them with
#           multishot IORING_OP_RECV_ZC into its registered area, returns every buffer through
#           the refill ring (ZCRX_CTRL_FLUSH_RQ) and checks each byte at its stream offset.
#           Passes when every byte arrived, verified, the stream ended with EOF, every
#           completion's buffer was returned and consumed, and the device's receive counters
#           account for the stream (receiveq.bytes >= payload bytes, and at least as many
#           frames as the payload needs at the MTU).
#           Kernels without NODEV: SKIP naming what is missing (6.12: no zcrx at all, register
#           opcode 32 and RECV_ZC unknown; 6.15..7.0: zcrx without the NODEV flag, EINVAL);
#           a 7.1+ kernel that refuses, or any other error: not ok.
#   nodev-wrong-seed  the negative control of the verification: the same flow, checked against
#           another seed's pattern; zcrx-recv must find mismatches from the stream's first word
#           and verify almost nothing (a byte matches by chance 1 in 256).
ZCNIC_TESTS="probe nodev-recv nodev-wrong-seed"

. "$ZCNIC_SUITES_DIR/lib/seeds.sh"

test_probe() {
	need_iface
	command -v zcrx-probe >/dev/null || fail "no zcrx-probe in the guest image"
	json=$(zcrx-probe -i "$ZCNIC_IFACE" -q 0 2>/tmp/zcnic-zcrx.err)
	rc=$?
	words=$(cat /tmp/zcnic-zcrx.err)
	rm -f /tmp/zcnic-zcrx.err
	diag "zcrx-probe -> status $rc: ${json:-no summary}"
	diag "$words"
	[ $rc -eq 0 ] && [ -n "$json" ] || fail "zcrx-probe could not ask the kernel: ${words:-no output}"
	kernel=$(json_word "$json" kernel)
	err=$(json_word "$json" registerError)
	errno=$(json_num "$json" registerErrno)
	last_op=$(json_num "$json" lastOp)
	recv_zc=$(json_word "$json" recvZcKnown)
	registered=$(json_word "$json" registered)
	metric zcrx.registerErrno "$errno"
	metric zcrx.lastOp "$last_op"
	metric zcrx.recvZcKnown "$recv_zc"
	rel=${kernel%%-*}
	if kernel_version_ge 6 15; then
		if [ "$registered" = true ]; then
			skip "kernel $rel registered a zcrx queue on $ZCNIC_IFACE, but this suite has no zero-copy receive test yet"
		fi
		[ "$recv_zc" = true ] || fail "kernel $rel >= 6.15 but io_uring does not know IORING_OP_RECV_ZC (opcodes 0..$last_op): CONFIG_IO_URING_ZCRX off?"
		[ "$err" = EOPNOTSUPP ] || fail "kernel $rel: IORING_REGISTER_ZCRX_IFQ on $ZCNIC_IFACE -> $err ($errno), expected success or EOPNOTSUPP; the probe's request may not match this kernel"
		skip "kernel $rel has io_uring zcrx, but $ZCNIC_IFACE ($(basename "$(readlink "/sys/class/net/$ZCNIC_IFACE/device/driver")")) cannot: IORING_REGISTER_ZCRX_IFQ -> EOPNOTSUPP (no queue management ops / header split)"
	fi
	# Before 6.15: the kernel must not know the register opcode nor the receive opcode.
	[ "$err" = EINVAL ] || fail "kernel $rel < 6.15: IORING_REGISTER_ZCRX_IFQ -> $err ($errno), expected EINVAL (unknown opcode)"
	[ "$recv_zc" = false ] || fail "kernel $rel < 6.15 but io_uring claims IORING_OP_RECV_ZC"
	skip "kernel $rel < 6.15: io_uring has no zcrx (register opcode $(json_num "$json" registerOpcode) -> EINVAL; opcodes 0..$last_op, IORING_OP_RECV_ZC $(json_num "$json" recvZcOp) unknown); also needs a NIC with header split and queue management (virtio_net has neither)"
}

ZR_PORT=5301
ZR_BYTES=$((16 << 20))
ZR_CONTROL_BYTES=$((1 << 20))
# "ZCRX" and "zcrx" in ASCII: the sent pattern's seed and the negative control's other seed.
ZR_SEED=1515475544
ZR_OTHER_SEED=2053337720

# zr_run NAME BYTES EXPECT_SEED: the peer sends BYTES of ZR_SEED's pattern to zcrx-recv, which
# checks them against EXPECT_SEED's; its JSON in $ZR_JSON, the peer's answer in $ZR_SENT. Skips
# when the kernel cannot register a NODEV zcrx queue, saying what it lacks.
zr_run() {
	peer_setup
	command -v zcrx-recv >/dev/null || fail "no zcrx-recv in the guest image"
	[ -n "$ZCNIC_GUEST_IP" ] || fail "the guest has no address for the peer to connect to (ZCNIC_GUEST_IP)"
	seeds_bg "$1" zcrx-recv -p "$ZR_PORT" -b "$2" -s "$ZR_SEED" --expect-seed "$3" -t 100
	pid=$SEEDS_LAST_PID
	# Ready (registered and listening), or gone with the kernel's answer.
	i=0
	while ! grep -q '^zcrx-recv: ready' "$XSK_DIR/$1.err" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do
		[ $i -lt 200 ] || fail "zcrx-recv printed no ready line within 20 s"
		sleep 0.1
		i=$((i + 1))
	done
	if ! grep -q '^zcrx-recv: ready' "$XSK_DIR/$1.err"; then
		seeds_wait_exit "$pid" 5
		ZR_JSON=$(cat "$XSK_DIR/$1.out")
		diag "zcrx-recv -> status $SEEDS_RC: ${ZR_JSON:-no summary}"
		diag "$(cat "$XSK_DIR/$1.err")"
		[ "$SEEDS_RC" = 0 ] && [ "$(json_word "$ZR_JSON" registered)" = false ] || fail "zcrx-recv could not ask the kernel: $(tail -n 1 "$XSK_DIR/$1.err")"
		zr_no_nodev
	fi
	diag "$(cat "$XSK_DIR/$1.err")"
	# The device's counters from here on are the flow's (and whatever else the peer's stack sends).
	zcnic_ctl reset >/dev/null || fail "cannot reset the device's counters"
	ZR_SENT=$(zcnic_ctl peer send "$ZCNIC_GUEST_IP" "$ZR_PORT" "$2" "$ZR_SEED" 2>&1) || {
		seeds_wait_exit "$pid" 5
		diag "zcrx-recv -> status $SEEDS_RC: $(cat "$XSK_DIR/$1.out")"
		diag "$(tail -n 3 "$XSK_DIR/$1.err")"
		fail "the peer could not send: $ZR_SENT"
	}
	diag "peer: $ZR_SENT"
	seeds_wait_exit "$pid" 30
	ZR_JSON=$(cat "$XSK_DIR/$1.out")
	diag "zcrx-recv -> status $SEEDS_RC: ${ZR_JSON:-no summary}"
	zr_err=$(grep -v '^zcrx-recv: ready' "$XSK_DIR/$1.err" | tail -n 3)
	[ -n "$zr_err" ] && diag "zcrx-recv stderr: $zr_err"
	[ -n "$ZR_JSON" ] || fail "zcrx-recv printed no summary: $(tail -n 1 "$XSK_DIR/$1.err")"
}

# zr_no_nodev: the verdict on a kernel that refused the NODEV registration ($ZR_JSON).
zr_no_nodev() {
	rel=$(json_word "$ZR_JSON" kernel)
	rel=${rel%%-*}
	err=$(json_word "$ZR_JSON" registerError)
	metric zcrx.nodev.registerErrno "$(json_num "$ZR_JSON" registerErrno)"
	kernel_version_ge 7 1 && fail "kernel $rel >= 7.1 refused IORING_REGISTER_ZCRX_IFQ with ZCRX_REG_NODEV: $err ($(json_num "$ZR_JSON" registerErrno))"
	[ "$err" = EINVAL ] || fail "kernel $rel: IORING_REGISTER_ZCRX_IFQ with ZCRX_REG_NODEV -> $err, expected EINVAL (unknown opcode or flag)"
	if [ "$(json_word "$ZR_JSON" recvZcKnown)" = true ]; then
		skip "kernel $rel has io_uring zcrx but no device-less mode: IORING_REGISTER_ZCRX_IFQ with flags ZCRX_REG_NODEV (2) -> EINVAL (the flag came in 7.1)"
	fi
	skip "kernel $rel has no io_uring zcrx: IORING_REGISTER_ZCRX_IFQ (opcode 32) -> EINVAL, IORING_OP_RECV_ZC ($(json_num "$ZR_JSON" recvZcOp)) unknown (opcodes 0..$(json_num "$ZR_JSON" lastOp)); ZCRX_REG_NODEV needs 7.1"
}

test_nodev_recv() {
	zr_run nodev-recv "$ZR_BYTES" "$ZR_SEED"
	bytes=$(json_num "$ZR_JSON" bytes)
	completions=$(json_num "$ZR_JSON" completions)
	refills=$(json_num "$ZR_JSON" refills)
	buf=$(json_num "$ZR_JSON" rxBufLen)
	metric zcrx.nodev.bytes "$bytes"
	metric bytesVerified "$(json_num "$ZR_JSON" bytesVerified)"
	metric zcrx.nodev.completions "$completions"
	metric zcrx.nodev.refills "$refills"
	metric zcrx.nodev.flushes "$(json_num "$ZR_JSON" flushes)"
	metric zcrx.nodev.rearms "$(json_num "$ZR_JSON" rearms)"
	metric zcrx.nodev.seconds "$(json_word "$ZR_JSON" seconds)"
	metric zcrx.nodev.mibPerSecond "$(json_word "$ZR_JSON" mibPerSecond)"
	check_eq "zcrx-recv exit status" "$SEEDS_RC" 0
	check_eq "bytes the peer sent" "$(echo "$ZR_SENT" | sed -n 's/.*sent=\([0-9]*\).*/\1/p')" "$ZR_BYTES"
	check_eq "bytes received through RECV_ZC" "$bytes" "$ZR_BYTES"
	check_eq "bytes verified against the pattern" "$(json_num "$ZR_JSON" bytesVerified)" "$ZR_BYTES"
	check_eq "bytes not matching the pattern (first at $(json_word "$ZR_JSON" firstMismatch))" "$(json_num "$ZR_JSON" mismatches)" 0
	check_eq "completions naming buffers outside the area" "$(json_num "$ZR_JSON" outsideArea)" 0
	check_eq "RECV_ZC ended with EOF" "$(json_word "$ZR_JSON" eof)" true
	check_eq "RECV_ZC error" "$(json_num "$ZR_JSON" recvErrno)" 0
	# A completion is one buffer at most: the stream needs at least bytes / buffer of them.
	check_eq "completions ($completions) at least bytes / $buf-byte buffers" "$((completions * buf >= bytes && completions > 0))" 1
	check_eq "buffers returned through the refill ring" "$refills" "$completions"
	check_eq "refill entries the kernel consumed (ZCRX_CTRL_FLUSH_RQ)" "$(json_num "$ZR_JSON" refillsConsumed)" "$refills"
	# The device's side: every byte came through its receiveq, in frames of at most the MTU.
	device_stats receiveq.frames receiveq.bytes receiveq.noBuffers
	mtu=$(cat "/sys/class/net/$ZCNIC_IFACE/mtu")
	frames_min=$(((ZR_BYTES + mtu - 41) / (mtu - 40)))
	metric receiveq.frames "$receiveq_frames"
	metric receiveq.bytes "$receiveq_bytes"
	metric receiveq.overhead "$(ratio "$((receiveq_bytes - ZR_BYTES))" "$ZR_BYTES")"
	check_eq "device receiveq.bytes ($receiveq_bytes) >= payload bytes ($ZR_BYTES)" "$((receiveq_bytes >= ZR_BYTES))" 1
	check_eq "device receiveq.frames ($receiveq_frames) >= frames the payload needs at MTU $mtu ($frames_min)" "$((receiveq_frames >= frames_min))" 1
	checks_done "io_uring zcrx NODEV receive: $bytes bytes in $completions completions, $(json_word "$ZR_JSON" seconds) s"
}

test_nodev_wrong_seed() {
	zr_run nodev-wrong-seed "$ZR_CONTROL_BYTES" "$ZR_OTHER_SEED"
	bytes=$(json_num "$ZR_JSON" bytes)
	verified=$(json_num "$ZR_JSON" bytesVerified)
	mismatches=$(json_num "$ZR_JSON" mismatches)
	metric zcrx.nodev.control.mismatches "$mismatches"
	metric zcrx.nodev.control.bytesVerified "$verified"
	# The flow itself is the same as nodev-recv's: only the check differs.
	check_eq "bytes received through RECV_ZC" "$bytes" "$ZR_CONTROL_BYTES"
	check_eq "RECV_ZC ended with EOF" "$(json_word "$ZR_JSON" eof)" true
	check_eq "zcrx-recv found mismatches" "$((mismatches > 0))" 1
	check_eq "first mismatch within the stream's first word (at $(json_word "$ZR_JSON" firstMismatch))" "$(($(json_word "$ZR_JSON" firstMismatch) >= 0 && $(json_word "$ZR_JSON" firstMismatch) < 4))" 1
	# By chance a byte matches 1 in 256: a few per mille, never most.
	check_eq "bytes verified against the wrong pattern ($verified of $bytes): under 1 %" "$((verified * 100 < bytes))" 1
	checks_done "negative control: the wrong seed's pattern is detected"
}
