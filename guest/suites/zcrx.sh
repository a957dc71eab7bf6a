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
ZCNIC_TESTS="probe"

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
