# xsk-zc: seed 000, XSK generic zerocopy xmit ("xsk: build skb by page"), checked from the
# device side: where the frame bytes are, how the descriptor chain is laid out, what a NIC that
# needs a linear header does with it, and how fast it goes next to the copy path.
#
#   zc-proof-xsk        xdpsock txonly (SKB mode) with --umem-map: the device is given the
#                       guest-physical pages of the umem before the first frame, and finds
#                       every transmitted frame at the start of a umem chunk: the skb's frag
#                       is the user's page itself. Metric zeroCopyProven = proven / checked,
#                       must be 1.000.
#   zc-proof-af-packet  the same payloads through a packet socket (frames), with the map of
#                       frames' own user send buffer: the socket copies every frame into a
#                       kernel skb, so the device finds none of them there: 0.000. This is the
#                       check that the proof can fail.
#   shape-xsk-SIZE      64/512/1024/1500 bytes: the chain layout of generic zerocopy xmit, for
#                       every frame (metric chainShapes), every frame verified, and the rate
#   shape-af-packet-SIZE  the same sizes through the packet socket: the copy path's layout
#                       and rate (the rate.* metrics make the seed's "copy vs page" table)
#   strict-xsk          the device emulates a NIC that needs the Ethernet header in the first
#                       buffer with the virtio-net header (seed 000's ConnectX-4 Lx error CQE):
#                       every XSK frame violates it and none is delivered
#   strict-af-packet    the packet socket's linear skbs pass the same device untouched
#
# What 6.12 does on the XSK path (net/xdp/xsk.c, drivers/net/virtio_net.c): virtio_net sets
# IFF_TX_SKB_NO_LINEAR, so xsk_build_skb() takes xsk_build_skb_zerocopy(): an skb with only
# headroom (max(NET_SKB_PAD, LL_RESERVED_SPACE)) and no linear data, and the umem page holding
# the descriptor's bytes attached as frag 0 (skb_headlen == 0: even the Ethernet header is in
# the frag; a chunk that does not cross a page is exactly one frag). xmit_skb() in virtio_net
# can push its 12-byte virtio-net header into that headroom (VERSION_1 means any header
# layout, skb->data is aligned, the head is not cloned): the linear part is then the header
# alone. skb_to_sgvec() gives two entries, [header][frame in the umem page], and
# virtqueue_add_outbuf() puts more than one entry into an indirect table (INDIRECT_DESC is
# negotiated). So per frame the device sees one indirect chain of 2 descriptors, the first
# holding the virtio-net header and nothing else, the whole frame at the start of the second.
# On the copy path (a packet socket: packet_snd() allocates a linear skb for anything under a
# page and copies the user's bytes into it) the same push leaves header and frame side by side
# in the skb head: one direct descriptor.
ZCNIC_TESTS="zc-proof-xsk zc-proof-af-packet shape-xsk-64 shape-xsk-512 shape-xsk-1024 shape-xsk-1500 shape-af-packet-64 shape-af-packet-512 shape-af-packet-1024 shape-af-packet-1500 strict-xsk strict-af-packet"

. "$ZCNIC_SUITES_DIR/lib/seeds.sh"

# The user buffers of the proof: 4096 chunks of 4096 bytes (16 MiB, 4096 pages in the map).
ZC_FRAMES=4096
ZC_CHUNK=4096
ZC_SIZE=1024
ZC_COUNT=20000
# Frames per shape/rate test: a second or two under TCG on either path.
SHAPE_COUNT_XSK=100000
SHAPE_COUNT_AF_PACKET=50000
STRICT_COUNT=10000

test_zc_proof_xsk() {
	seeds_setup
	count=$ZC_COUNT
	xsk_start -i "$ZCNIC_IFACE" -t -S -C "$count" -s "$ZC_SIZE" -f "$ZC_CHUNK" --frames "$ZC_FRAMES" \
		--umem-map "$XSK_DIR/umem.map" --wait-file "$XSK_DIR/go"
	zc_map_from_file "$XSK_DIR/umem.map" "$ZC_CHUNK" 0
	: >"$XSK_DIR/go"
	xsk_wait 30 || XSK_FAILED=$((XSK_FAILED + 1))
	diag "$(zcnic_ctl wait transmitq.frames "$count" 30)"
	device_stats transmitq.frames transmitq.bytes zeroCopy.checked zeroCopy.proven $SEEDS_VERIFY_KEYS $SEEDS_SHAPE_KEYS
	metric zeroCopyProven "$(ratio "$zeroCopy_proven" "$zeroCopy_checked")"
	metric zeroCopy.checked "$zeroCopy_checked"
	metric zeroCopy.proven "$zeroCopy_proven"
	check_eq "xdpsock txFrames" "$(json_num "$XSK_JSON" txFrames)" "$count"
	check_eq "xdpsock txCompleted" "$(json_num "$XSK_JSON" txCompleted)" "$count"
	check_eq "xdpsock xdpMode" "$(json_word "$XSK_JSON" xdpMode)" skb
	check_verified "$count" "$ZC_SIZE"
	check_eq "device zeroCopy.checked" "$zeroCopy_checked" "$count"
	check_eq "device zeroCopy.proven (frames found at the start of a umem chunk)" "$zeroCopy_proven" "$count"
	checks_done "zero-copy proof, XSK"
}

test_zc_proof_af_packet() {
	seeds_setup
	count=$ZC_COUNT
	seeds_bg frames frames -i "$ZCNIC_IFACE" -n "$count" -s "$ZC_SIZE" --buf-frames "$ZC_FRAMES" \
		--buf-map "$XSK_DIR/buf.map" --wait-file "$XSK_DIR/go"
	pid=$SEEDS_LAST_PID
	seeds_wait_line frames '^frames: ready' 20
	zc_map_from_file "$XSK_DIR/buf.map" "$ZC_CHUNK" 0
	: >"$XSK_DIR/go"
	seeds_wait_exit "$pid" 40
	json=$(cat "$XSK_DIR/frames.out")
	diag "frames -> status $SEEDS_RC: ${json:-no summary}"
	diag "$(zcnic_ctl wait transmitq.frames "$count" 30)"
	device_stats transmitq.frames transmitq.bytes zeroCopy.checked zeroCopy.proven $SEEDS_VERIFY_KEYS $SEEDS_SHAPE_KEYS
	metric zeroCopyProven "$(ratio "$zeroCopy_proven" "$zeroCopy_checked")"
	metric zeroCopy.checked "$zeroCopy_checked"
	metric zeroCopy.proven "$zeroCopy_proven"
	check_eq "frames status" "$SEEDS_RC" 0
	check_eq "frames sent" "$(json_num "$json" sent)" "$count"
	check_verified "$count" "$ZC_SIZE"
	check_eq "device zeroCopy.checked" "$zeroCopy_checked" "$count"
	check_eq "device zeroCopy.proven (copies are never in the user's pages)" "$zeroCopy_proven" 0
	checks_done "zero-copy proof, AF_PACKET (must fail)"
}

# The chain layout of XSK generic zerocopy xmit for every one of COUNT frames (see the top).
check_xsk_shape() { # COUNT
	check_eq "chains of 2 descriptors" "$chainShapes_descriptorsPerChain_2" "$1"
	check_eq "chains of 1 descriptor" "$chainShapes_descriptorsPerChain_1" 0
	check_eq "indirect chains" "$chainShapes_indirect" "$1"
	check_eq "virtio-net header alone in its buffer" "$chainShapes_vnetHeaderAlone" "$1"
	check_eq "Ethernet header not with the virtio-net header" "$chainShapes_ethernetHeaderNotWithVnetHeader" "$1"
	check_eq "frame split across buffers" "$chainShapes_frameSplitAcrossBuffers" 0
}

# The copy path's layout: one direct descriptor, virtio-net header and frame together.
check_linear_shape() { # COUNT
	check_eq "chains of 1 descriptor" "$chainShapes_descriptorsPerChain_1" "$1"
	check_eq "chains of 2 descriptors" "$chainShapes_descriptorsPerChain_2" 0
	check_eq "indirect chains" "$chainShapes_indirect" 0
	check_eq "virtio-net header alone in its buffer" "$chainShapes_vnetHeaderAlone" 0
	check_eq "Ethernet header not with the virtio-net header" "$chainShapes_ethernetHeaderNotWithVnetHeader" 0
	check_eq "frame split across buffers" "$chainShapes_frameSplitAcrossBuffers" 0
}

shape_xsk() { # SIZE
	size=$1
	count=$SHAPE_COUNT_XSK
	seeds_setup
	metric rate.mode xsk
	metric rate.size "$size"
	xsk_run -i "$ZCNIC_IFACE" -t -S -C "$count" -s "$size" || XSK_FAILED=$((XSK_FAILED + 1))
	metric rate.pps "$(json_num "$XSK_JSON" txPps)"
	diag "$(zcnic_ctl wait transmitq.frames "$count" 30)"
	device_stats transmitq.frames transmitq.bytes $SEEDS_VERIFY_KEYS $SEEDS_SHAPE_KEYS
	shape_metrics "$count"
	check_eq "xdpsock xdpMode" "$(json_word "$XSK_JSON" xdpMode)" skb
	check_eq "xdpsock txCompleted" "$(json_num "$XSK_JSON" txCompleted)" "$count"
	check_verified "$count" "$size"
	check_xsk_shape "$count"
	checks_done "XSK generic zerocopy xmit, $size B"
}

shape_af_packet() { # SIZE
	size=$1
	count=$SHAPE_COUNT_AF_PACKET
	seeds_setup
	metric rate.mode af_packet
	metric rate.size "$size"
	frames_send frames -i "$ZCNIC_IFACE" -n "$count" -s "$size"
	metric rate.pps "$(json_num "$FRAMES_JSON" pps)"
	diag "$(zcnic_ctl wait transmitq.frames "$count" 30)"
	device_stats transmitq.frames transmitq.bytes $SEEDS_VERIFY_KEYS $SEEDS_SHAPE_KEYS
	shape_metrics "$count"
	check_eq "frames sent" "$(json_num "$FRAMES_JSON" sent)" "$count"
	check_verified "$count" "$size"
	check_linear_shape "$count"
	checks_done "AF_PACKET copy path, $size B"
}

test_shape_xsk_64() { shape_xsk 64; }
test_shape_xsk_512() { shape_xsk 512; }
test_shape_xsk_1024() { shape_xsk 1024; }
test_shape_xsk_1500() { shape_xsk 1500; }
test_shape_af_packet_64() { shape_af_packet 64; }
test_shape_af_packet_512() { shape_af_packet 512; }
test_shape_af_packet_1024() { shape_af_packet 1024; }
test_shape_af_packet_1500() { shape_af_packet 1500; }

# A strict device completes each violating chain with length 0 and sends nothing (like the
# error CQE of seed 000): the XSK socket still gets its completions, the wire gets no frame.
test_strict_xsk() {
	count=$STRICT_COUNT
	seeds_setup
	zcnic_ctl strict on >/dev/null || fail "cannot switch the device to strict layout"
	xsk_run -i "$ZCNIC_IFACE" -t -S -C "$count" -s 64 || XSK_FAILED=$((XSK_FAILED + 1))
	diag "$(zcnic_ctl wait chainShapes.linearHeaderViolations "$count" 30)"
	device_stats transmitq.frames transmitq.bytes $SEEDS_VERIFY_KEYS $SEEDS_SHAPE_KEYS
	metric linearHeaderViolations "$chainShapes_linearHeaderViolations"
	metric delivered "$transmitq_frames"
	check_eq "xdpsock txCompleted (the device completes refused chains)" "$(json_num "$XSK_JSON" txCompleted)" "$count"
	check_eq "device linearHeaderViolations" "$chainShapes_linearHeaderViolations" "$count"
	check_eq "device transmitq.frames (delivered)" "$transmitq_frames" 0
	check_eq "device verification.verified" "$verification_verified" 0
	checks_done "strict device, XSK"
}

test_strict_af_packet() {
	count=$STRICT_COUNT
	seeds_setup
	zcnic_ctl strict on >/dev/null || fail "cannot switch the device to strict layout"
	frames_send frames -i "$ZCNIC_IFACE" -n "$count" -s 64
	diag "$(zcnic_ctl wait transmitq.frames "$count" 30)"
	device_stats transmitq.frames transmitq.bytes $SEEDS_VERIFY_KEYS $SEEDS_SHAPE_KEYS
	metric linearHeaderViolations "$chainShapes_linearHeaderViolations"
	metric delivered "$transmitq_frames"
	check_eq "frames sent" "$(json_num "$FRAMES_JSON" sent)" "$count"
	check_eq "device linearHeaderViolations" "$chainShapes_linearHeaderViolations" 0
	check_verified "$count" 64
	checks_done "strict device, AF_PACKET"
}
