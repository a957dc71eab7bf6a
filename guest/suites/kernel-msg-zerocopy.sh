# kernel-msg-zerocopy: the kernel's own MSG_ZEROCOPY test program, msg_zerocopy
# (tools/testing/selftests/net, built on the host from Debian's linux-source for the guest
# kernel, images/msg-zerocopy.ts), run from the host's root file system between the guest's two
# zcnic NICs joined by the wire port (lib/nic-pair.sh): the receiver, `msg_zerocopy -r`, in
# ns-remote, the sender here with -z (SO_ZEROCOPY, MSG_ZEROCOPY) and -Z 1, with which
# msg_zerocopy checks every completion it reads and exits 1 after "serr: ee_code: 0 != expected
# 1" when one says SO_EE_CODE_ZEROCOPY_COPIED: the kernel copied the user's pages after all.
# (Without -Z it passes whatever the completions say: the kernel's msg_zerocopy.sh expects
# copies only on its local tx-rx path.) The device side must show that the frames crossed the
# wire: NIC 1's transmitq and NIC 2's receiveq counted them (the second NIC's counters under
# remoteNic, harness/guest-nics.ts).
#   tcp-ipv4, tcp-ipv6, udp-ipv4, udp-ipv6
#            -z -Z 1 over each; zero-copy is expected: the device offers VIRTIO_NET_F_CSUM, so
#            virtio_net has NETIF_F_SG and the stack links the user pages as frags
#   sg-off-copies-tcp, sg-off-copies-udp
#            the negative control: with scatter-gather off on NETIF (ethtool -K NETIF sg off,
#            restored afterwards) the kernel must copy, so -Z 1 must fail with the COPIED
#            completion; -Z 0 must pass over UDP. Over TCP it fails on 7.3.4, and only says so:
#            a TCP socket keeps NETIF_F_SG whatever the device has (sk_setup_caps adds it for
#            software GSO), so the user pages are linked all the same and copied later, on the
#            way to the device: an skb of one segment by linearizing, which flags its completion
#            COPIED (__pskb_pull_tail), one of several by skb_segment's linear copies, which do
#            not. Every frame reaches the device linear, and some completions say zero-copy.
# A kernel whose msg_zerocopy has no -Z (6.12's has none, 7.3's has it) SKIPs them all, saying so.
#
# Kernel command line (set by zcnic run --suite kernel-msg-zerocopy):
#   zcnic.msg_zerocopy_dir=PATH   the installed folder (a host path: msg_zerocopy)
ZCNIC_TESTS="tcp-ipv4 tcp-ipv6 udp-ipv4 udp-ipv6 sg-off-copies-tcp sg-off-copies-udp"

. "$ZCNIC_SUITES_DIR/lib/nic-pair.sh"

MZC_BIN=$ZCNIC_MSG_ZEROCOPY_DIR/msg_zerocopy
# msg_zerocopy's default port.
MZC_PORT=8000
# The sender's -t: 1.2 s of sends, then up to 0.5 s for the last completions.
MZC_SENDER_SECONDS=1
# The receiver's: its clock starts at bind (UDP) or accept (TCP), before the sender's.
MZC_RECEIVER_SECONDS=4
# One UDP datagram per frame: msg_zerocopy's default payload (64 KiB) would be fragmented at the
# NICs' MTU 1500, and the kernel copies what it fragments (__ip_append_data sends user pages
# only with CHECKSUM_PARTIAL, which needs the datagram to fit the MTU); the kernel's
# msg_zerocopy.sh runs on a veth of MTU 65535 instead.
MZC_UDP_PAYLOAD=1400
MZC_TX_OUT=/tmp/msg_zerocopy-tx.out
MZC_RX_OUT=/tmp/msg_zerocopy-rx.out
# What -Z 1 prints when a completion says the kernel copied.
MZC_COPIED_LINE='ee_code: 0 != expected 1'

test_tcp_ipv4() { mzc_zero_copy 4 tcp; }
test_tcp_ipv6() { mzc_zero_copy 6 tcp; }
test_udp_ipv4() { mzc_zero_copy 4 udp; }
test_udp_ipv6() { mzc_zero_copy 6 udp; }
test_sg_off_copies_tcp() { mzc_sg_off_copies tcp; }
test_sg_off_copies_udp() { mzc_sg_off_copies udp; }

# mzc_zero_copy FAMILY PROTO: -z -Z 1 must pass, with completions, and the frames on the wire.
mzc_zero_copy() {
	mzc_setup
	mzc_send "$1" "$2" -Z 1
	[ "$mzc_status" = 0 ] || fail "msg_zerocopy -Z 1 exited $mzc_status$(mzc_copied_said)"
	! grep -q "$MZC_COPIED_LINE" "$MZC_TX_OUT" || fail "msg_zerocopy exited 0 but said a completion was copied ($MZC_COPIED_LINE)"
	[ "$mzc_zc" = y ] || fail "msg_zerocopy's summary says zc=${mzc_zc:-nothing}, not zc=y"
	mzc_crossed_wire
}

# mzc_sg_off_copies PROTO: over IPv4 with scatter-gather off on NETIF, -Z 1 must fail with the
# COPIED line, the check that the zero-copy tests can fail; -Z 0 must pass over UDP (TCP: above).
mzc_sg_off_copies() {
	mzc_setup
	trap mzc_sg_on EXIT
	host_run ethtool -K "$NIC_PAIR_LOCAL_IF" sg off || fail "cannot switch scatter-gather off on $NIC_PAIR_LOCAL_IF"
	mzc_send 4 "$1" -Z 1
	[ "$mzc_status" != 0 ] && grep -q "$MZC_COPIED_LINE" "$MZC_TX_OUT" ||
		fail "with scatter-gather off, msg_zerocopy -Z 1 exited $mzc_status without saying '$MZC_COPIED_LINE'"
	mzc_send 4 "$1" -Z 0
	if [ "$mzc_status" != 0 ] && [ "$1" = tcp ]; then
		diag "msg_zerocopy -Z 0 exited $mzc_status: some TCP completions say zero-copy, though without scatter-gather the kernel copied every frame (software GSO's copies are not flagged)"
	elif [ "$mzc_status" != 0 ]; then
		fail "with scatter-gather off, msg_zerocopy -Z 0 exited $mzc_status"
	fi
	mzc_crossed_wire
	trap - EXIT
	mzc_sg_on
}

# mzc_sg_on: scatter-gather back on NETIF, for the tests after this one.
mzc_sg_on() {
	host_run ethtool -K "$NIC_PAIR_LOCAL_IF" sg on &&
		host_run ethtool -k "$NIC_PAIR_LOCAL_IF" | grep -q '^scatter-gather: on' ||
		fail "cannot switch scatter-gather back on on $NIC_PAIR_LOCAL_IF"
}

# mzc_setup: the NICs, the program, its -Z, and room for MSG_ZEROCOPY's notifications.
mzc_setup() {
	[ -n "$ZCNIC_MSG_ZEROCOPY_DIR" ] || fail "no msg_zerocopy build (zcnic.msg_zerocopy_dir; zcnic run --suite kernel-msg-zerocopy builds one)"
	[ -x "$ZCNIC_HOSTROOT$MZC_BIN" ] || fail "no msg_zerocopy at $MZC_BIN in the host's root"
	nic_pair_setup
	mzc_expect_option
	# The sender's notifications are charged to its socket's option memory: msg_zerocopy.sh
	# raises the limit as here, and a send over it fails with ENOBUFS, which ends msg_zerocopy.
	host_run sysctl -q -w net.core.optmem_max=1000000 || fail "cannot raise net.core.optmem_max"
}

# mzc_expect_option: SKIPs when this kernel's msg_zerocopy has no -Z. getopt names an option it
# does not know; one it knows gets as far as the test name, here unknown.
mzc_expect_option() {
	said=$(host_run "$MZC_BIN" -4 -Z 1 no-such-test 2>&1)
	case "$said" in
	*"invalid option -- 'Z'"*) skip "msg_zerocopy of kernel $(uname -r) has no -Z: it cannot check that completions are zero-copy" ;;
	*"unknown cfg_test no-such-test"*) ;;
	*) fail "msg_zerocopy did not run: $said" ;;
	esac
}

# mzc_send FAMILY PROTO -Z N: the receiver in ns-remote, then the sender here with -z -Z N.
# Sets mzc_status (the sender's exit status), mzc_sent, mzc_completions and mzc_zc (its summary
# "tx=N (N MB) txc=N zc=y|n") and mzc_received_mb (the receiver's "rx=N (N MB)"); both
# programs' lines become diagnostics. -C 0: both on the first CPU, the one a single vCPU has.
mzc_send() {
	if [ "$1" = 4 ]; then dst=$NIC_PAIR_REMOTE_V4; else dst=$NIC_PAIR_REMOTE_V6; fi
	size=
	[ "$2" = udp ] && size="-s $MZC_UDP_PAYLOAD"
	# shellcheck disable=SC2086 # $size is an option and its value, or nothing
	host_run ip netns exec "$NIC_PAIR_NETNS" timeout 30 "$MZC_BIN" -"$1" -C 0 -t "$MZC_RECEIVER_SECONDS" -D "$dst" $size -r "$2" >"$MZC_RX_OUT" 2>&1 &
	rx_pid=$!
	mzc_wait_bound "$2" || {
		kill "$rx_pid" 2>/dev/null
		fail "the receiver never bound port $MZC_PORT in $NIC_PAIR_NETNS: $(cat "$MZC_RX_OUT")"
	}
	# shellcheck disable=SC2086
	host_run "$MZC_BIN" -"$1" -C 0 -t "$MZC_SENDER_SECONDS" -D "$dst" $size -z "$3" "$4" "$2" >"$MZC_TX_OUT" 2>&1
	mzc_status=$?
	wait "$rx_pid"
	rx_status=$?
	diag "sender: msg_zerocopy -$1 -z $3 $4 $2 (exit status $mzc_status)" "$(cat "$MZC_TX_OUT")" "receiver (exit status $rx_status):" "$(cat "$MZC_RX_OUT")"
	[ "$rx_status" = 0 ] || fail "the receiver exited $rx_status"
	set -- $(sed -n 's/^tx=\([0-9]*\) ([0-9]* MB) txc=\([0-9]*\) zc=\(.\)$/\1 \2 \3/p' "$MZC_TX_OUT")
	mzc_sent=${1:-0} mzc_completions=${2:-0} mzc_zc=${3:-}
	mzc_received_mb=$(sed -n 's/^rx=[0-9]* (\([0-9]*\) MB)$/\1/p' "$MZC_RX_OUT")
	metric sent "$mzc_sent"
	metric completions "$mzc_completions"
}

# mzc_wait_bound PROTO: waits up to about 5 s for the receiver's socket on its port.
mzc_wait_bound() {
	i=0
	while [ $i -lt 50 ]; do
		[ -n "$(host_run ip netns exec "$NIC_PAIR_NETNS" ss -Hln"${1%"${1#?}"}" "sport = :$MZC_PORT")" ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# mzc_copied_said: the sender's COPIED line, if it printed one, for a failure's reason.
mzc_copied_said() {
	grep -q "$MZC_COPIED_LINE" "$MZC_TX_OUT" && echo ": a completion said the kernel copied ($MZC_COPIED_LINE)"
}

# mzc_crossed_wire: the last run's completions were checked, and the device saw its frames leave
# NIC 1 and reach NIC 2, at least as many bytes as the receiver counted.
mzc_crossed_wire() {
	[ "$mzc_completions" -gt 0 ] || fail "msg_zerocopy read no completion (txc=0): nothing was checked"
	device_stats transmitq.frames remoteNic.receiveq.frames remoteNic.receiveq.bytes
	metric wireFrames "$transmitq_frames"
	[ "$transmitq_frames" -gt 0 ] || fail "NIC 1's transmitq counted no frame"
	[ "$remoteNic_receiveq_frames" -gt 0 ] || fail "NIC 2's receiveq counted no frame"
	[ "$remoteNic_receiveq_bytes" -ge $((${mzc_received_mb:-0} * 1048576)) ] ||
		fail "NIC 2's receiveq counted $remoteNic_receiveq_bytes bytes, fewer than the receiver's ${mzc_received_mb} MB"
}
