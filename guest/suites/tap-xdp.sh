# tap-xdp: seed 002, tun/tap build_skb() for small frames and XDP on a tap before an skb
# exists, out through the zcnic device, every frame counted and verified on the device side.
#
#   xdp-redirect          tapwrite (guest/tools/tapwrite.c) writes COUNT test frames into a tap
#                         the way the seed's fast path wants its writer (IFF_TAP | IFF_NO_PI, a
#                         non-blocking file, the default send buffer INT_MAX, no zerocopy, small
#                         frames); `xdp-bench redirect` attaches a native XDP program to the tap
#                         that redirects every frame out of eth0. tun_get_user() takes
#                         tun_build_skb(): the frame is copied into a page fragment and the
#                         program runs on that xdp_buff before any skb exists; XDP_REDIRECT
#                         hands it to virtio_net's ndo_xdp_xmit as an xdp_frame. Every frame is
#                         accounted for: all COUNT reach virtio_net's XDP transmit (its xdp_tx
#                         counter), and each is either verified by the device or dropped there
#                         because the ring was full (xdp_tx_drops: the writer outruns the device
#                         and XDP transmit has no queue to wait in).
#   xdp-redirect-paced    the same at TAP_PACED_PPS frames a second: (almost) every frame arrives.
#   xdp-generic-blocking  the same program with a blocking writer: tun_can_build_skb() says no,
#                         tun_alloc_skb() makes an skb and copies the frame into it, and only
#                         then the tap's program runs on the skb, as generic XDP (tun_get_user()
#                         starts with skb_xdp = 1, which only tun_build_skb() clears, and then
#                         calls do_xdp_generic()). Its XDP_REDIRECT hands the skb to eth0's
#                         start_xmit (generic_xdp_tx(), no qdisc; a stopped queue means the
#                         skb is freed and counted in eth0's tx_dropped): virtio_net's XDP
#                         transmit sees none of them.
#                         This is the check that xdp-redirect measured the build_skb path.
#   xdp-generic-sndbuf    likewise with TUNSETSNDBUF (sk_sndbuf != INT_MAX).
#   bridge                no XDP at all: the tap and eth0 in a bridge; the frames (build_skb()
#                         skbs, the writer is xdp-redirect's) are forwarded through the stack and
#                         eth0's qdisc; every one must arrive verified.
#
# Metrics: framesVerified, drops, pps (frames per second the writer got into the kernel: with
# native XDP that includes the redirect and virtio_net's XDP transmit; on the skb paths the
# generic XDP program and start_xmit, or the bridge and the qdisc enqueue), deliveredPps
# (frames the device verified over the writer's time), chainShapes. For the bridge eth0's qdisc
# is made long enough for the whole burst, so nothing may be lost there.
#
# virtio_net accepts redirected frames (ndo_xdp_xmit) only while an XDP program is attached to
# it ("Only allow ndo_xdp_xmit if XDP is loaded on dev"): a second xdp-bench runs `pass` on
# eth0. xdp-bench allows one instance per /run (its lock file /run/xdp-bench.lck), so that one
# runs in its own mount namespace with a private /run.
#
# Frame layout on the device: virtio_net transmits an xdp_frame with the virtio-net header
# written into the frame's headroom, one buffer; the skbs of the other paths are linear with
# room for the header in front: every chain is one direct descriptor.
ZCNIC_TESTS="xdp-redirect xdp-redirect-paced xdp-generic-blocking xdp-generic-sndbuf bridge"
ZCNIC_MODULES="tun bridge"

. "$ZCNIC_SUITES_DIR/lib/seeds.sh"

TAP=zctap0
BRIDGE=zcbr0
TAP_COUNT=50000
# The bridge's burst must fit eth0's qdisc (tx_queue_len COUNT + 1000; 6.12 refuses 51000
# with ERANGE, 31000 is fine).
BRIDGE_COUNT=30000
TAP_SIZE=64
TAP_FLOW=2
# xdp-redirect-paced: a rate the device normally takes without virtio_net's 256-entry ring
# ever filling up (it would have to fall 25 ms behind), for a second. Under TCG the device can
# still be descheduled that long now and then: up to TAP_PACED_MAX_DROPS may be lost (and must
# be accounted for like any other).
TAP_PACED_PPS=10000
TAP_PACED_COUNT=10000
TAP_PACED_MAX_DROPS=100
# The frames' destination: a unicast MAC nobody has (the bridge floods it to eth0 only).
TAP_DST_MAC=02:7a:63:00:00:01

need_xdp_bench() {
	command -v xdp-bench >/dev/null || fail "no xdp-bench in the guest image (the image builder builds it from Debian's xdp-tools source, images/xdp-tools.ts: see its warning)"
}

# tap_start ARGS...: tapwrite creates the tap and waits for $XSK_DIR/go; the tap lives until
# the test stops it (--hold).
tap_start() {
	seeds_bg tapwrite tapwrite -t "$TAP" -n "$TAP_COUNT" -s "$TAP_SIZE" -f "$TAP_FLOW" --dst-mac "$TAP_DST_MAC" \
		--wait-file "$XSK_DIR/go" --hold 120 "$@"
	TAP_PID=$SEEDS_LAST_PID
	seeds_wait_line tapwrite '^tapwrite: ready' 10
	diag "$(grep '^tapwrite: ready' "$XSK_DIR/tapwrite.err")"
	ip link set "$TAP" up || fail "cannot bring $TAP up"
}

# tap_go: lets tapwrite write, and waits for its summary in $TAP_JSON.
tap_go() {
	: >"$XSK_DIR/go"
	i=0
	while [ ! -s "$XSK_DIR/tapwrite.out" ]; do
		kill -0 "$TAP_PID" 2>/dev/null || break
		[ $i -lt 600 ] || fail "tapwrite did not finish within 60 s"
		sleep 0.1
		i=$((i + 1))
	done
	TAP_JSON=$(cat "$XSK_DIR/tapwrite.out")
	diag "tapwrite: ${TAP_JSON:-no summary} $(grep -v '^tapwrite: ready' "$XSK_DIR/tapwrite.err" | head -n 3)"
	[ -n "$TAP_JSON" ] || fail "tapwrite printed no summary"
}

# The tap's own counters, as tap_rx_packets, tap_rx_dropped.
tap_counters() {
	tap_rx_packets=$(cat "/sys/class/net/$TAP/statistics/rx_packets")
	tap_rx_dropped=$(cat "/sys/class/net/$TAP/statistics/rx_dropped")
	diag "$TAP: rx_packets=$tap_rx_packets rx_dropped=$tap_rx_dropped"
}

# nic_counters PREFIX: virtio_net's XDP transmit counters (nicstats), as PREFIX_tx_xdp_tx and
# PREFIX_tx_xdp_tx_drops, and the interface's tx_dropped (where generic XDP's transmit
# counts the skbs it frees), as PREFIX_tx_dropped.
nic_counters() {
	out=$(nicstats "$ZCNIC_IFACE" tx_xdp_tx tx_xdp_tx_drops) || fail "cannot read $ZCNIC_IFACE's driver statistics"
	eval "$(echo "$out" | sed "s/^/$1_/")"
	eval "$1_tx_dropped=$(cat "/sys/class/net/$ZCNIC_IFACE/statistics/tx_dropped")"
}

# xdp_start: XDP_PASS on eth0 (own mount namespace, see the top) and the redirect on the tap.
xdp_start() {
	# xdp-bench detaches what it attached when it is stopped; should it be killed instead, the
	# programs must not outlive the test (the tap goes away by itself, eth0 does not).
	seeds_on_exit "xdp-loader unload -a $ZCNIC_IFACE"
	seeds_bg xdppass unshare -m sh -c 'mount -t tmpfs tmpfs /run && exec xdp-bench pass -m native "$1"' xdppass "$ZCNIC_IFACE"
	i=0
	while ! grep -q 'ifindex' "$XSK_DIR/xdppass.out" "$XSK_DIR/xdppass.err"; do
		kill -0 "$SEEDS_LAST_PID" 2>/dev/null || fail "xdp-bench pass on $ZCNIC_IFACE exited: $(tail -n 3 "$XSK_DIR/xdppass.out" "$XSK_DIR/xdppass.err")"
		[ $i -lt 150 ] || fail "xdp-bench pass on $ZCNIC_IFACE did not start within 15 s: $(tail -n 3 "$XSK_DIR/xdppass.out" "$XSK_DIR/xdppass.err"; xdp-loader status 2>&1 | grep -e '=>' -e "$ZCNIC_IFACE")"
		sleep 0.1
		i=$((i + 1))
	done
	XDP_PASS_PID=$SEEDS_LAST_PID
	seeds_bg xdpredir xdp-bench redirect -m native -s -i 1 "$TAP" "$ZCNIC_IFACE"
	XDP_REDIR_PID=$SEEDS_LAST_PID
	i=0
	while ! grep -q 'Redirecting from' "$XSK_DIR/xdpredir.out" "$XSK_DIR/xdpredir.err"; do
		kill -0 "$XDP_REDIR_PID" 2>/dev/null || fail "xdp-bench redirect exited: $(tail -n 3 "$XSK_DIR/xdpredir.out" "$XSK_DIR/xdpredir.err")"
		[ $i -lt 150 ] || fail "xdp-bench redirect did not start within 15 s"
		sleep 0.1
		i=$((i + 1))
	done
	diag "$(grep -h -e 'packets on' -e 'Redirecting from' "$XSK_DIR/xdppass.out" "$XSK_DIR/xdppass.err" "$XSK_DIR/xdpredir.out" "$XSK_DIR/xdpredir.err")"
	diag "$(xdp-loader status 2>&1 | grep -e "$TAP" -e "$ZCNIC_IFACE" -e '=>' | tr -s ' ')"
}

# xdp_stop: ends both xdp-bench runs (they detach their programs) and shows the redirect's
# summary.
xdp_stop() {
	kill -s TERM "$XDP_REDIR_PID" "$XDP_PASS_PID" 2>/dev/null
	seeds_wait_exit "$XDP_REDIR_PID" 10
	seeds_wait_exit "$XDP_PASS_PID" 10
	diag "xdp-bench redirect: $(grep -v '^$' "$XSK_DIR/xdpredir.out" | tail -n 6 | tr -s ' ')"
	[ -s "$XSK_DIR/xdpredir.err" ] && diag "xdp-bench redirect stderr: $(tail -n 3 "$XSK_DIR/xdpredir.err")"
	return 0
}

tap_checks_common() {
	check_eq "tapwrite written" "$(json_num "$TAP_JSON" written)" "$count"
	check_eq "tapwrite errors" "$(json_num "$TAP_JSON" errors)" 0
}

xdp_redirect_test() { # full|paced
	seeds_setup
	need_iface
	need_xdp_bench
	count=$TAP_COUNT
	if [ "$1" = paced ]; then
		count=$TAP_PACED_COUNT
		tap_start --pps "$TAP_PACED_PPS" -n "$count"
	else
		tap_start
	fi
	[ "$1" = paced ] && metric mode xdp-redirect-paced || metric mode xdp-redirect
	xdp_start
	nic_counters before
	tap_go
	# virtio_net's XDP transmit is synchronous with the writes: its counters are final now;
	# wait (30 s at most) until the device has every frame virtio_net did not drop.
	nic_counters after
	sent=$((after_tx_xdp_tx - before_tx_xdp_tx))
	dropped=$((after_tx_xdp_tx_drops - before_tx_xdp_tx_drops))
	device_wait transmitq.frames $((sent - dropped)) 30
	tap_counters
	xdp_stop
	device_stats transmitq.frames transmitq.bytes $SEEDS_VERIFY_KEYS $SEEDS_SHAPE_KEYS
	written=$(json_num "$TAP_JSON" written)
	seconds=$(json_word "$TAP_JSON" seconds)
	diag "reconcile: tapwrite written=$written; virtio_net XDP transmit: xdp_tx=$sent xdp_tx_drops=$dropped; tap rx_dropped=$tap_rx_dropped; device verified=$verification_verified gaps=$verification_gaps"
	metric framesVerified "$verification_verified"
	metric drops "$dropped"
	metric pps "$(json_num "$TAP_JSON" pps)"
	metric deliveredPps "$(awk -v n="$verification_verified" -v s="$seconds" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')"
	shape_metrics "$transmitq_frames"
	tap_checks_common
	# Paced below what the device takes, (almost) nothing may be lost.
	if [ "$1" = paced ] && [ "$dropped" -gt "$TAP_PACED_MAX_DROPS" ]; then
		check_eq "virtio_net xdp_tx_drops (paced at $TAP_PACED_PPS/s)" "$dropped" "<= $TAP_PACED_MAX_DROPS"
	fi
	check_eq "tapwrite non-blocking" "$(json_word "$TAP_JSON" nonblocking)" true
	check_eq "tapwrite sndbuf (INT_MAX: build_skb allowed)" "$(json_num "$TAP_JSON" sndbuf)" 2147483647
	# Every frame went through XDP into virtio_net's XDP transmit, none elsewhere.
	check_eq "virtio_net xdp_tx (frames redirected into eth0)" "$sent" "$count"
	check_eq "tap rx_dropped" "$tap_rx_dropped" 0
	check_eq "tap rx_packets (tun_build_skb() counts what its XDP redirected)" "$tap_rx_packets" "$count"
	check_eq "$ZCNIC_IFACE tx_dropped (no skb transmit was involved)" $((after_tx_dropped - before_tx_dropped)) 0
	check_eq "device verified + virtio_net xdp_tx_drops" $((verification_verified + dropped)) "$count"
	check_eq "device transmitq.frames" "$transmitq_frames" "$verification_verified"
	check_eq "device verification.corrupt" "$verification_corrupt" 0
	check_eq "device verification.duplicates" "$verification_duplicates" 0
	check_eq "device verification.outOfOrder" "$verification_outOfOrder" 0
	# Gaps are the dropped frames below the highest sequence number that arrived.
	[ "${verification_gaps:-0}" -le "$dropped" ] || check_eq "device verification.gaps (at most the frames virtio_net dropped)" "$verification_gaps" "<= $dropped"
	check_eq "device verification.otherFrames" "$verification_otherFrames" 0
	[ "${verification_verified:-0}" -gt 0 ] || check_eq "device verified anything" 0 "more than 0"
	check_eq "chains of 1 direct descriptor" "$chainShapes_descriptorsPerChain_1" "$transmitq_frames"
	checks_done "XDP redirect from a tap ($1)"
}

test_xdp_redirect() { xdp_redirect_test full; }
test_xdp_redirect_paced() { xdp_redirect_test paced; }

# A writer that does not meet tun_can_build_skb(): tun_get_user() allocates an skb
# (tun_alloc_skb()) and copies the frame into it; the tap's XDP program then runs on that skb
# as generic XDP (do_xdp_generic(): skb_xdp starts at 1 and only tun_build_skb() clears it).
# Its XDP_REDIRECT goes through xdp_do_generic_redirect() and generic_xdp_tx(), which calls
# virtio_net's start_xmit directly (no qdisc) and frees the skb, counting it in eth0's
# tx_dropped, when the queue is stopped: the frames reach the device as skbs, never through
# virtio_net's XDP transmit, and each is verified or counted in tx_dropped.
xdp_generic_test() { # mode tapwrite-options...
	mode=$1
	shift
	seeds_setup
	need_iface
	need_xdp_bench
	count=$TAP_COUNT
	tap_start "$@"
	metric mode "$mode"
	xdp_start
	nic_counters before
	tap_go
	nic_counters after
	sent=$((after_tx_xdp_tx - before_tx_xdp_tx))
	dropped=$((after_tx_dropped - before_tx_dropped))
	device_wait transmitq.frames $((count - dropped)) 10
	tap_counters
	xdp_stop
	device_stats transmitq.frames transmitq.bytes $SEEDS_VERIFY_KEYS $SEEDS_SHAPE_KEYS
	seconds=$(json_word "$TAP_JSON" seconds)
	diag "reconcile: tapwrite written=$(json_num "$TAP_JSON" written); virtio_net XDP transmit: xdp_tx=$sent; $ZCNIC_IFACE tx_dropped=$dropped; tap rx_packets=$tap_rx_packets rx_dropped=$tap_rx_dropped; device verified=$verification_verified gaps=$verification_gaps"
	metric framesVerified "$verification_verified"
	metric drops "$dropped"
	metric pps "$(json_num "$TAP_JSON" pps)"
	metric deliveredPps "$(awk -v n="$verification_verified" -v s="$seconds" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')"
	shape_metrics "$transmitq_frames"
	tap_checks_common
	check_eq "virtio_net xdp_tx (no frame took the XDP transmit: the native hook never ran)" "$sent" 0
	check_eq "tap rx_packets (tun counts only frames its native XDP handled)" "$tap_rx_packets" 0
	check_eq "tap rx_dropped" "$tap_rx_dropped" 0
	check_eq "device verified + $ZCNIC_IFACE tx_dropped" $((verification_verified + dropped)) "$count"
	check_eq "device transmitq.frames" "$transmitq_frames" "$verification_verified"
	check_eq "device verification.corrupt" "$verification_corrupt" 0
	check_eq "device verification.duplicates" "$verification_duplicates" 0
	check_eq "device verification.outOfOrder" "$verification_outOfOrder" 0
	[ "${verification_gaps:-0}" -le "$dropped" ] || check_eq "device verification.gaps (at most the frames dropped)" "$verification_gaps" "<= $dropped"
	[ "${verification_verified:-0}" -gt 0 ] || check_eq "device verified anything" 0 "more than 0"
	check_eq "chains of 1 direct descriptor" "$chainShapes_descriptorsPerChain_1" "$transmitq_frames"
	checks_done "generic XDP on the tap's skbs ($*)"
}

test_xdp_generic_blocking() { xdp_generic_test xdp-generic-blocking --blocking; }
test_xdp_generic_sndbuf() { xdp_generic_test xdp-generic-sndbuf --sndbuf 1048576; }

# qdisc_hold_all COUNT: an eth0 qdisc that holds a whole burst of COUNT, so that the bridge
# path has no place to drop a frame (the stack stops and restarts eth0's queue when virtio_net's
# ring is full); restored when the test ends.
qdisc_hold_all() {
	qlen=$(cat "/sys/class/net/$ZCNIC_IFACE/tx_queue_len")
	echo $(($1 + 1000)) >"/sys/class/net/$ZCNIC_IFACE/tx_queue_len" || fail "cannot set $ZCNIC_IFACE tx_queue_len"
	seeds_on_exit "echo $qlen >/sys/class/net/$ZCNIC_IFACE/tx_queue_len"
}

# check_device_all COUNT: every one of COUNT frames arrived verified, nothing else, each in one
# direct descriptor.
check_device_all() {
	check_eq "device verification.verified" "$verification_verified" "$1"
	check_eq "device transmitq.frames" "$transmitq_frames" "$1"
	check_eq "device verification.corrupt" "$verification_corrupt" 0
	check_eq "device verification.duplicates" "$verification_duplicates" 0
	check_eq "device verification.outOfOrder" "$verification_outOfOrder" 0
	check_eq "device verification.gaps" "$verification_gaps" 0
	check_eq "chains of 1 direct descriptor" "$chainShapes_descriptorsPerChain_1" "$1"
}

test_bridge() {
	seeds_setup
	need_iface
	count=$BRIDGE_COUNT
	tap_start -n "$count"
	metric mode bridge
	qdisc_hold_all "$count"
	ip link add "$BRIDGE" type bridge || fail "cannot create a bridge (is the bridge module loaded?)"
	seeds_on_exit "ip link del $BRIDGE"
	brctl stp "$BRIDGE" off
	brctl setfd "$BRIDGE" 0
	brctl addif "$BRIDGE" "$ZCNIC_IFACE" || fail "cannot add $ZCNIC_IFACE to $BRIDGE"
	seeds_on_exit "brctl delif $BRIDGE $ZCNIC_IFACE"
	brctl addif "$BRIDGE" "$TAP" || fail "cannot add $TAP to $BRIDGE"
	# Without multicast snooping: with it, the bridge joins 224.0.0.106 (multicast router
	# discovery) when it comes up and sends two IGMPv3 reports for it out of eth0.
	echo 0 >"/sys/class/net/$BRIDGE/bridge/multicast_snooping"
	ip link set "$BRIDGE" up
	# Both ports forwarding (3) before the first frame.
	i=0
	while [ "$(cat "/sys/class/net/$BRIDGE/brif/$TAP/state" 2>/dev/null)" != 3 ] ||
		[ "$(cat "/sys/class/net/$BRIDGE/brif/$ZCNIC_IFACE/state" 2>/dev/null)" != 3 ]; do
		[ $i -lt 100 ] || fail "bridge ports not forwarding after 10 s"
		sleep 0.1
		i=$((i + 1))
	done
	tap_go
	device_wait verification.verified "$count" 30
	tap_counters
	device_stats transmitq.frames transmitq.bytes $SEEDS_VERIFY_KEYS $SEEDS_SHAPE_KEYS
	seconds=$(json_word "$TAP_JSON" seconds)
	metric framesVerified "$verification_verified"
	metric drops $((count - ${verification_verified:-0}))
	metric pps "$(json_num "$TAP_JSON" pps)"
	metric deliveredPps "$(awk -v n="$verification_verified" -v s="$seconds" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')"
	shape_metrics "$transmitq_frames"
	diag "reconcile: tapwrite written=$(json_num "$TAP_JSON" written); tap rx_packets=$tap_rx_packets rx_dropped=$tap_rx_dropped; device verified=$verification_verified otherFrames=$verification_otherFrames"
	tap_checks_common
	check_eq "tap rx_packets" "$tap_rx_packets" "$count"
	check_eq "tap rx_dropped" "$tap_rx_dropped" 0
	check_device_all "$count"
	checks_done "tap bridged to $ZCNIC_IFACE"
}
