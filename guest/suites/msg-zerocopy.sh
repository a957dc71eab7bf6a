# msg-zerocopy: seed 001, MSG_ZEROCOPY sends (TCP and UDP) to a real peer. The harness joins the
# device to a host tap in a network namespace (harness/peer-netns.ts: 198.18.0.1, the host
# kernel's TCP/UDP stack, harness/peer.ts hashing every stream); each test switches the device
# to `port tap` and runs guest/tools/zerocopy.c.
#
#   tcp-zc-SIZE     TCP, SO_ZEROCOPY + MSG_ZEROCOPY, sends of 1/4/16/64 KiB: every send id
#                   completes exactly once (no gaps, no duplicates, no ids never sent), the peer's
#                   SHA-256 of the stream equals ours (metric bytesVerified), completions flagged
#                   SO_EE_CODE_ZEROCOPY_COPIED are counted (metric completionsCopied) and must be
#                   0, and the device finds the payload of at least 0.99 of the flow's payload
#                   frames read from the sender's buffer at the very address the sender used for
#                   those bytes (metric zeroCopyPayloadProven = payloadProven / checked: checked
#                   counts the flow's frames carrying payload, not SYN/FIN/pure ACKs; proven,
#                   those whose every payload byte at TCP sequence ISN+1+S, or UDP stream offset
#                   S, is read from the buffer's offset S mod 1 MiB, zerocopy.c's ring walk), and
#                   it checked at least as many frames as the stream needs at the MTU.
#   udp-zc-SIZE     the same for UDP; above 1400 bytes a send is cut into 1400-byte datagrams by
#                   UDP_SEGMENT (software GSO: the device offers no UDP segmentation; HOST_USO is
#                   bit 56, beyond the feature words it can hold)
#   tcp-copy-proof  the same TCP flow without MSG_ZEROCOPY: the kernel copies into its own pages,
#                   so the device must find no payload in the user buffer (the proof can fail)
#   tcp-zc-shifted-map  a MSG_ZEROCOPY flow whose map is rotated by one page (each offset names
#                   the next page's address): the right buffer, the wrong offsets; the proof must
#                   find nothing (the proof is tied to the stream, not to the buffer's pages)
#   cpu-per-gib     the seed's table: CPU time (getrusage, user + system) of the sending loop per
#                   GiB and the throughput, 64 KiB TCP sends with and without MSG_ZEROCOPY, with
#                   the NIC's TSO on (when it offers TSO) and off, in one boot
#                   (metrics cpuSecondsPerGiB.tsoOn|tsoOff.*, gbitPerSecond.*, cpuRatio.*)
#   af-packet       SO_ZEROCOPY on an AF_PACKET socket (the seed's RFC, never merged in that form):
#                   the kernel refuses it (EOPNOTSUPP: sock_setsockopt accepts SO_ZEROCOPY only for
#                   TCP and UDP sockets, and RDS), a MSG_ZEROCOPY send is a plain copying send, and
#                   no completion is ever queued
#
# Why no copy is expected (6.12): virtio_net sets NETIF_F_SG with VIRTIO_NET_F_CSUM, which the
# device offers, so tcp_sendmsg_locked() and __ip_append_data() link the user pages as frags
# (without SG they copy, and the completion says ZEROCOPY_COPIED). Without TSO the stack
# segments in software (skb_segment shares the frags, it does not copy them), virtio_net's
# xmit_skb() gives one descriptor per frag, and nothing on the way needs a private copy
# (skb_copy_ubufs: only for a tap/loopback receive or a device without SG).
ZCNIC_TESTS="tcp-zc-1024 tcp-zc-4096 tcp-zc-16384 tcp-zc-65536 udp-zc-1024 udp-zc-4096 udp-zc-16384 udp-zc-64512 tcp-copy-proof tcp-zc-shifted-map cpu-per-gib af-packet"

. "$ZCNIC_SUITES_DIR/lib/seeds.sh"

MZ_PEER=$SEEDS_PEER
MZ_TCP_BYTES=$((8 << 20))
MZ_UDP_BYTES=$((2 << 20))
MZ_CPU_BYTES=$((32 << 20))

# mz_send NAME PROTO ARGS...: runs zerocopy with its buffer map handed to the device first, as
# the map of a PROTO stream (`zc-map stream PROTO ...`: the device checks the flow's payload
# bytes against zerocopy's ring walk); its JSON in $MZ_JSON. With MZ_MAP_ROTATE=1 the map is
# deliberately wrong: every offset names the next page's address.
mz_send() {
	name=$1
	shift
	seeds_bg "$name" zerocopy "$@" -a "$MZ_PEER" --buf-map "$XSK_DIR/$name.map" --wait-file "$XSK_DIR/$name.go"
	pid=$SEEDS_LAST_PID
	seeds_wait_line "$name" '^zerocopy: ready' 20
	if [ "${MZ_MAP_ROTATE:-0}" = 1 ]; then
		# n starts at 0: an unset n would index the first offset as "" and its address as 0.
		awk 'BEGIN { n = 0 } NF == 2 { off[n] = $1; gpa[n++] = $2 } END { for (i = 0; i < n; i++) print off[i], gpa[(i + 1) % n] }' \
			"$XSK_DIR/$name.map" >"$XSK_DIR/$name.rotated" && mv "$XSK_DIR/$name.rotated" "$XSK_DIR/$name.map"
	fi
	zc_map_from_file "$XSK_DIR/$name.map" stream "$1"
	: >"$XSK_DIR/$name.go"
	seeds_wait_exit "$pid" 120
	MZ_JSON=$(cat "$XSK_DIR/$name.out")
	diag "zerocopy $* -> status $SEEDS_RC"
	diag "zerocopy: ${MZ_JSON:-no summary}"
	[ -s "$XSK_DIR/$name.err" ] && diag "zerocopy stderr: $(tail -n 5 "$XSK_DIR/$name.err")"
	[ "$SEEDS_RC" = 0 ] && [ -n "$MZ_JSON" ] || fail "zerocopy failed: $(tail -n 1 "$XSK_DIR/$name.err")"
}

# mz_check_completions: every send id completed exactly once, none copied, peer digest equal.
mz_check() {
	zc_sends=$(json_num "$MZ_JSON" zcSends)
	copied=$(json_num "$MZ_JSON" copied)
	metric completionsCopied "$copied"
	metric completions "$(json_num "$MZ_JSON" completed)"
	metric notifications "$(json_num "$MZ_JSON" notifications)"
	match=$(json_num "$MZ_JSON" match)
	if [ "$match" = 1 ]; then
		metric bytesVerified "$(json_num "$MZ_JSON" peerBytes)"
	else
		metric bytesVerified 0
	fi
	check_eq "sends with MSG_ZEROCOPY" "$((zc_sends > 0))" 1
	check_eq "completed send ids" "$(json_num "$MZ_JSON" completed)" "$zc_sends"
	check_eq "send ids never completed (gaps; first $(json_num "$MZ_JSON" firstMissing))" "$(json_num "$MZ_JSON" missing)" 0
	check_eq "send ids completed twice" "$(json_num "$MZ_JSON" duplicates)" 0
	check_eq "completions for ids never sent" "$(json_num "$MZ_JSON" unknownIds)" 0
	check_eq "completions flagged SO_EE_CODE_ZEROCOPY_COPIED (the kernel copied after all)" "$copied" 0
	check_eq "peer bytes" "$(json_num "$MZ_JSON" peerBytes)" "$(json_num "$MZ_JSON" bytes)"
	check_eq "peer SHA-256 equals ours" "$match" 1
}

# The share of the flow's payload frames that must be proven: a few may legitimately not be
# (UDP: the end marker datagram is sent from the stack, not the buffer).
MZ_PROVEN_MIN_PERCENT=99

# mz_proof WANT: the device's zero-copy proof for the flow's payload frames (after mz_send);
# WANT is "all" (at least MZ_PROVEN_MIN_PERCENT of them) or "none" (not one).
mz_proof() {
	device_stats transmitq.frames transmitq.bytes zeroCopy.checked zeroCopy.proven zeroCopy.payloadProven portTxDropped chainShapes.indirect chainShapes.frameSplitAcrossBuffers \
		gso.frames.tcp4 gso.frames.udpL4 gso.segments gso.largestFrame
	mz_proven=$(ratio "$zeroCopy_payloadProven" "$zeroCopy_checked")
	metric zeroCopyPayloadProven "$mz_proven"
	metric zeroCopy.checked "$zeroCopy_checked"
	metric zeroCopy.payloadProven "$zeroCopy_payloadProven"
	# With the device's --tso the guest sends TCP as GSO frames of up to 64 KiB (a 64 KiB
	# MSG_ZEROCOPY send is one chain whose frags are the user pages), checked whole by the proof
	# and cut into MTU-sized wire frames by the device: gsoFrames and the largest seen say so.
	mz_gso=$((${gso_frames_tcp4:-0} + ${gso_frames_udpL4:-0}))
	metric gsoFrames "$mz_gso"
	metric gso.segments "${gso_segments:-0}"
	metric gso.largestFrame "${gso_largestFrame:-0}"
	# A wire frame carries at most MTU - 28 payload bytes (IPv4 + UDP; TCP carries less): the
	# stream needs at least this many payload frames on the wire, so the device cannot have
	# missed most of them. The wire frames of the checked ones: each GSO frame counts as the
	# segments it was cut into (every GSO frame of the test is the flow's: it is the only one).
	mz_mtu=$(cat "/sys/class/net/$ZCNIC_IFACE/mtu")
	mz_bytes=$(json_num "$MZ_JSON" bytes)
	mz_frames_min=$(((mz_bytes + mz_mtu - 29) / (mz_mtu - 28)))
	mz_wire=$((zeroCopy_checked - mz_gso + ${gso_segments:-0}))
	check_eq "payload frames on the wire, checked (at least $mz_frames_min for $mz_bytes bytes at MTU $mz_mtu; $zeroCopy_checked checked, $mz_gso of them GSO frames cut into ${gso_segments:-0})" "$((mz_wire >= mz_frames_min))" 1
	if [ "$1" = all ]; then
		check_eq "payload frames read from the sender's buffer at the sender's offset: $zeroCopy_payloadProven of $zeroCopy_checked (at least $MZ_PROVEN_MIN_PERCENT %)" \
			"$((zeroCopy_payloadProven * 100 >= zeroCopy_checked * MZ_PROVEN_MIN_PERCENT))" 1
	else
		check_eq "payload frames proven" "$zeroCopy_payloadProven" 0
	fi
}

mz_zc_test() { # PROTO SIZE BYTES
	peer_setup
	mz_send "$1" "$1" -z -s "$2" -b "$3"
	mz_check
	mz_proof all
	checks_done "MSG_ZEROCOPY $1 $2"
}

test_tcp_zc_1024() { mz_zc_test tcp 1024 "$MZ_TCP_BYTES"; }
test_tcp_zc_4096() { mz_zc_test tcp 4096 "$MZ_TCP_BYTES"; }
test_tcp_zc_16384() { mz_zc_test tcp 16384 "$MZ_TCP_BYTES"; }
test_tcp_zc_65536() { mz_zc_test tcp 65536 "$MZ_TCP_BYTES"; }
test_udp_zc_1024() { mz_zc_test udp 1024 "$MZ_UDP_BYTES"; }
test_udp_zc_4096() { mz_zc_test udp 4096 "$MZ_UDP_BYTES"; }
test_udp_zc_16384() { mz_zc_test udp 16384 "$MZ_UDP_BYTES"; }
test_udp_zc_64512() { mz_zc_test udp 64512 "$MZ_UDP_BYTES"; }

test_tcp_copy_proof() {
	peer_setup
	mz_send tcp tcp -s 65536 -b "$MZ_TCP_BYTES"
	check_eq "peer SHA-256 equals ours" "$(json_num "$MZ_JSON" match)" 1
	metric bytesVerified "$(json_num "$MZ_JSON" peerBytes)"
	mz_proof none
	checks_done "copy path, TCP"
}

# The negative control of the stream proof: the same zero-copy flow as tcp-zc-65536, with a map
# whose pages are all the sender's own but each one page off. Everything else still holds.
test_tcp_zc_shifted_map() {
	peer_setup
	MZ_MAP_ROTATE=1
	mz_send tcp tcp -z -s 65536 -b "$MZ_TCP_BYTES"
	MZ_MAP_ROTATE=0
	mz_check
	mz_proof none
	checks_done "MSG_ZEROCOPY TCP with a shifted map (must prove nothing)"
}

# cpu_row TSO: one row of the seed's table, the NIC's TSO switched to TSO (on|off) first: CPU per
# GiB and throughput of 64 KiB TCP sends with MSG_ZEROCOPY and without (metrics
# cpuSecondsPerGiB.tsoTSO.msgZerocopy|copy, gbitPerSecond.tsoTSO.*, cpuRatio.tsoTSO).
cpu_row() {
	# A NIC without TSO refuses to switch it at all, off included: switch only when it differs.
	[ "$(nictso "$ZCNIC_IFACE")" = "tso=$1" ] || nictso "$ZCNIC_IFACE" "$1" >/dev/null || fail "cannot switch the NIC's TSO $1 (nictso)"
	row=tso$(echo "$1" | sed 's/^o/O/')
	for mode in msgZerocopy copy; do
		mz_send "$mode-$row" tcp $([ "$mode" = msgZerocopy ] && echo -z) -s 65536 -b "$MZ_CPU_BYTES"
		check_eq "peer SHA-256 ($mode, TSO $1)" "$(json_num "$MZ_JSON" match)" 1
		if [ "$mode" = msgZerocopy ]; then
			check_eq "completions flagged ZEROCOPY_COPIED (TSO $1)" "$(json_num "$MZ_JSON" copied)" 0
		fi
		eval "cpu_$mode=$(json_word "$MZ_JSON" cpuSecondsPerGiB)"
		eval "gbps_$mode=$(awk -v b="$(json_num "$MZ_JSON" bytes)" -v s="$(json_word "$MZ_JSON" seconds)" 'BEGIN { if (s > 0) printf "%.3f", b * 8 / s / 1e9; else printf "0" }')"
	done
	metric "cpuSecondsPerGiB.$row.msgZerocopy" "$cpu_msgZerocopy"
	metric "cpuSecondsPerGiB.$row.copy" "$cpu_copy"
	metric "gbitPerSecond.$row.msgZerocopy" "$gbps_msgZerocopy"
	metric "gbitPerSecond.$row.copy" "$gbps_copy"
	metric "cpuRatio.$row" "$(awk -v a="$cpu_msgZerocopy" -v b="$cpu_copy" 'BEGIN { if (b > 0) printf "%.3f", a / b; else printf "0" }')"
	diag "TSO $1: MSG_ZEROCOPY $cpu_msgZerocopy s/GiB at $gbps_msgZerocopy Gbit/s, copy $cpu_copy s/GiB at $gbps_copy Gbit/s"
}

# The seed's table in one boot: the same sends with the NIC's TSO on and off. The with-TSO row
# needs a NIC that offers it (zcnic run --tso); without, it is said and left out.
test_cpu_per_gib() {
	peer_setup
	tso_was=$(nictso "$ZCNIC_IFACE") || fail "cannot read the NIC's TSO (nictso)"
	seeds_on_exit "[ \"\$(nictso $ZCNIC_IFACE)\" = $tso_was ] || nictso $ZCNIC_IFACE ${tso_was#tso=} >/dev/null"
	if nictso "$ZCNIC_IFACE" on >/dev/null 2>&1; then
		cpu_row on
	else
		diag "the NIC offers no TSO (zcnic run --tso offers HOST_TSO4/6): only the row without it"
	fi
	cpu_row off
	checks_done "CPU per GiB"
}

test_af_packet() {
	need_iface
	out=$(zerocopy packet -i "$ZCNIC_IFACE" 2>&1 3>&-) || fail "zerocopy packet: $out"
	diag "zerocopy packet: $out"
	so=$(json_word "$out" soZerocopy)
	send=$(json_word "$out" sendMsgZerocopy)
	metric afPacket.soZerocopy "$so"
	metric afPacket.sendMsgZerocopy "$send"
	# 6.12 sock_setsockopt(): SO_ZEROCOPY is for TCP, UDP (and RDS) sockets only.
	check_eq "SO_ZEROCOPY on AF_PACKET" "$so" EOPNOTSUPP
	# packet_snd() never looks at MSG_ZEROCOPY: the send copies and succeeds.
	check_eq "MSG_ZEROCOPY send on AF_PACKET" "$send" ok
	check_eq "zerocopy completions on AF_PACKET" "$(json_num "$out" completion)" 0
	checks_done "SO_ZEROCOPY on AF_PACKET"
}
