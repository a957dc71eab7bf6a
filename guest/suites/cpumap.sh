# cpumap: seed 004, XDP cpumap: the skb is built on another CPU, from the xdp_frame kept in the
# packet's own headroom (cpu_map_kthread_run() -> __xdp_build_skb_from_frame()).
#
#   redirect-cpu      the device's gen port sends COUNT UDP test frames at GEN_PPS into eth0's
#                     receive queue; `xdp-bench redirect-cpu -c 1` (native XDP on virtio_net)
#                     redirects every one into a cpumap entry for CPU 1, whose kthread builds
#                     the skbs and runs them through the stack to a UDP socket (udpcount, bound
#                     to 198.18.0.2:9000, pinned to CPU 0), which verifies every payload.
#                     eth0's interrupt is pinned to CPU 0, so the driver's NAPI and the XDP
#                     program run there and only the cpumap moves the work to CPU 1: the stack
#                     must have processed the frames on CPU 1 (/proc/net/softnet_stat) and the
#                     socket seen them arrive there (SO_INCOMING_CPU).
#   no-xdp            the same frames without XDP: virtio_net builds the skbs in NAPI on CPU 0
#                     and the stack runs there: the check that the CPU checks can fail.
#   redirect-cpu-max  redirect-cpu with the device sending as fast as the guest posts buffers:
#   no-xdp-max        the rate each path sustains; drops are allowed, if a counter explains each
#
# Accounting, every test: the device sent COUNT (receiveq.frames; the gen port waits for
# buffers instead of dropping). With XDP, virtio_net's program saw them all (rx_xdp_packets)
# and redirected them all (rx_xdp_redirects; no rx_xdp_drops, which virtio_net also counts in
# rx_drops); the cpumap queued them or
# dropped them when its queue was full, and its kthread built skbs from them or dropped them:
# both counted exactly with histogram triggers on the xdp:xdp_cpumap_enqueue and
# xdp:xdp_cpumap_kthread tracepoints (the same tracepoints xdp-bench's statistics read, which
# are in the diagnostics too). The socket received the rest or counted what it had no room for
# (sk_drops: SO_RXQ_OVFL and /proc/net/udp), and /proc/net/snmp agrees (Udp InDatagrams,
# RcvbufErrors). So: sent = delivered + cpumap enqueue drops + kthread drops + socket drops.
#
# Metrics: pps (frames per second the guest took from the device: COUNT over the time from the
# generator's start to the last frame in the receive queue), socketPps (datagrams per second
# the socket received, first to last), delivered, drops,
# incomingCpu, softnet.cpu0/cpu1 (frames the stack processed per CPU), genPps (the device's
# rate, 0: as fast as buffers come), cpumap.enqueueDrops/kthreadDrops, socketDrops.
ZCNIC_TESTS="redirect-cpu no-xdp redirect-cpu-max no-xdp-max"

. "$ZCNIC_SUITES_DIR/lib/seeds.sh"

CPUMAP_COUNT=40000
# The device's fixed rate: what the 2-vCPU guest takes under TCG with room to spare.
GEN_PPS=20000
GEN_SIZE=64
# The gen port's source (docs/test-frame.md: 198.18.0.1, port 10000 + flow 0).
GEN_PEER=198.18.0.1:10000

need_two_cpus() {
	n=$(nproc)
	[ "$n" -ge 2 ] || skip "the guest has $n vCPU; cpumap needs 2 (zcnic run --smp 2)"
}

# pin_nic_irq CPU: the virtio-pci interrupts (one legacy INTx line, or MSI-X vectors) on CPU,
# so that NAPI runs there.
pin_nic_irq() {
	mask=$(printf '%x' $((1 << $1)))
	irqs=$(awk '/virtio/ { sub(":", "", $1); print $1 }' /proc/interrupts)
	[ -n "$irqs" ] || fail "no virtio interrupt in /proc/interrupts"
	for irq in $irqs; do
		old=$(cat "/proc/irq/$irq/smp_affinity")
		echo "$mask" >"/proc/irq/$irq/smp_affinity" 2>/dev/null || continue
		seeds_on_exit "echo $old >/proc/irq/$irq/smp_affinity"
	done
	diag "virtio interrupts $(echo $irqs) pinned to CPU $1"
}

# snmp_udp: "InDatagrams=N RcvbufErrors=N" from /proc/net/snmp.
snmp_udp() {
	awk '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) k[i] = $i; h = 1 } else { for (i = 2; i <= NF; i++) if (k[i] == "InDatagrams" || k[i] == "RcvbufErrors") printf "%s=%s ", k[i], $i } }' /proc/net/snmp
}

# softnet: "cpu0=N cpu1=N": frames the stack processed per CPU (/proc/net/softnet_stat's first
# column, hex, one line per online CPU, counted in __netif_receive_skb_core()).
softnet() {
	i=0
	while read -r processed _; do
		printf 'cpu%d=%d ' "$i" "0x$processed"
		i=$((i + 1))
	done </proc/net/softnet_stat
}

rx_counters() { # PREFIX
	out=$(nicstats "$ZCNIC_IFACE" rx_xdp_packets rx_xdp_redirects rx_xdp_drops rx_drops) || fail "cannot read $ZCNIC_IFACE's driver statistics"
	eval "$(echo "$out" | sed "s/^/$1_/")"
	eval "$(snmp_udp | sed "s/\([A-Za-z]*\)=/$1_\1=/g")"
	eval "$(softnet | sed "s/cpu/$1_cpu/g")"
}

# Histogram triggers on the cpumap tracepoints: exact totals of what the cpumap queued,
# dropped, and built.
TRACEFS=
trace_start() {
	for d in /sys/kernel/tracing /sys/kernel/debug/tracing; do
		[ -d "$d/events/xdp" ] && TRACEFS=$d && break
	done
	if [ -z "$TRACEFS" ]; then
		mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null && TRACEFS=/sys/kernel/tracing
	fi
	[ -n "$TRACEFS" ] && [ -d "$TRACEFS/events/xdp/xdp_cpumap_enqueue" ] || fail "no tracefs with the xdp:xdp_cpumap_* events"
	echo 'hist:keys=to_cpu:vals=processed,drops' >"$TRACEFS/events/xdp/xdp_cpumap_enqueue/trigger" || fail "cannot set a histogram trigger (CONFIG_HIST_TRIGGERS?)"
	seeds_on_exit "echo '!hist:keys=to_cpu:vals=processed,drops' >$TRACEFS/events/xdp/xdp_cpumap_enqueue/trigger"
	echo 'hist:keys=cpu:vals=processed,drops' >"$TRACEFS/events/xdp/xdp_cpumap_kthread/trigger" || fail "cannot set a histogram trigger"
	seeds_on_exit "echo '!hist:keys=cpu:vals=processed,drops' >$TRACEFS/events/xdp/xdp_cpumap_kthread/trigger"
}

# trace_sum EVENT FIELD: the total of FIELD over the event's histogram.
trace_sum() {
	awk -v f="$2:" '{ for (i = 1; i < NF; i++) if ($i == f) s += $(i + 1) } END { print s + 0 }' "$TRACEFS/events/xdp/$1/hist"
}

cpumap_test() { # redirect-cpu|no-xdp PPS
	mode=$1
	pps=$2
	count=$CPUMAP_COUNT
	seeds_setup
	need_iface
	need_two_cpus
	xdp=false
	case "$mode" in redirect-cpu*) xdp=true ;; esac
	if $xdp; then
		command -v xdp-bench >/dev/null || fail "no xdp-bench in the guest image (the image builder copies it from the host: apt-get install xdp-tools)"
		trace_start
	fi
	pin_nic_irq 0
	seeds_bg udpcount udpcount -n "$count" -w 60 --idle 3 --cpu 0 --connect "$GEN_PEER"
	UDP_PID=$SEEDS_LAST_PID
	seeds_wait_line udpcount '^udpcount: ready' 10
	diag "$(grep '^udpcount: ready' "$XSK_DIR/udpcount.err")"
	if $xdp; then
		# Should xdp-bench be killed rather than stopped, its program must not outlive the test.
		seeds_on_exit "xdp-loader unload -a $ZCNIC_IFACE"
		seeds_bg xdpbench xdp-bench redirect-cpu -c 1 -m native -s -i 1 "$ZCNIC_IFACE"
		BENCH_PID=$SEEDS_LAST_PID
		i=0
		while ! xdp-loader status "$ZCNIC_IFACE" 2>/dev/null | grep -q 'cpumap'; do
			kill -0 "$BENCH_PID" 2>/dev/null || fail "xdp-bench redirect-cpu exited: $(tail -n 3 "$XSK_DIR/xdpbench.out" "$XSK_DIR/xdpbench.err")"
			[ $i -lt 150 ] || fail "xdp-bench redirect-cpu attached nothing within 15 s"
			sleep 0.1
			i=$((i + 1))
		done
		# The program is attached; xdp-bench finishes its setup around that moment (frames that
		# came right after the attach were seen dropped by the program, 1273 of them at 20 kpps
		# once), and prints nothing it could be waited for before traffic flows: give it a second.
		sleep 1
		diag "$(xdp-loader status "$ZCNIC_IFACE" 2>&1 | grep -e "$ZCNIC_IFACE" -e '=>' | tr -s ' ')"
	fi
	metric mode "$mode"
	metric genPps "$pps"
	rx_counters before
	t0=$(now_cs)
	zcnic_ctl port gen size="$GEN_SIZE" count="$count" pps="$pps" >/dev/null || fail "cannot start the device's generator"
	device_wait receiveq.frames "$count" 40
	t1=$(now_cs)
	seeds_wait_exit "$UDP_PID" 30
	UDP_JSON=$(cat "$XSK_DIR/udpcount.out")
	diag "udpcount -> status $SEEDS_RC: ${UDP_JSON:-no summary}"
	rx_counters after
	enq_processed=0 enq_drops=0 kt_processed=0 kt_drops=0
	if $xdp; then
		kill -s TERM "$BENCH_PID"
		seeds_wait_exit "$BENCH_PID" 10
		diag "xdp-bench redirect-cpu: $(grep -v '^$' "$XSK_DIR/xdpbench.out" | tail -n 14 | tr -s ' ' | tr '\n' '|')"
		enq_processed=$(trace_sum xdp_cpumap_enqueue processed)
		enq_drops=$(trace_sum xdp_cpumap_enqueue drops)
		kt_processed=$(trace_sum xdp_cpumap_kthread processed)
		kt_drops=$(trace_sum xdp_cpumap_kthread drops)
	fi
	device_stats receiveq.frames receiveq.bytes receiveq.noBuffers transmitq.frames
	received=$(json_num "$UDP_JSON" received)
	verified=$(json_num "$UDP_JSON" verified)
	sockdrops=$(json_num "$UDP_JSON" socketDrops)
	incoming=$(echo "$UDP_JSON" | sed -n 's/.*"incomingCpu":\(-\{0,1\}[0-9]*\).*/\1/p')
	xdp_seen=$((after_rx_xdp_packets - before_rx_xdp_packets))
	xdp_redirected=$((after_rx_xdp_redirects - before_rx_xdp_redirects))
	xdp_dropped=$((after_rx_xdp_drops - before_rx_xdp_drops))
	rx_dropped=$((after_rx_drops - before_rx_drops))
	snmp_in=$((after_InDatagrams - before_InDatagrams))
	snmp_rcvbuf=$((after_RcvbufErrors - before_RcvbufErrors))
	cpu0=$((after_cpu0 - before_cpu0))
	cpu1=$((after_cpu1 - before_cpu1))
	# virtio_net counts a frame its XDP program dropped (or failed to redirect) in rx_drops too.
	drops=$((enq_drops + kt_drops + sockdrops + rx_dropped))
	diag "reconcile: device sent receiveq.frames=$receiveq_frames; virtio_net rx_xdp_packets=$xdp_seen rx_xdp_redirects=$xdp_redirected rx_xdp_drops=$xdp_dropped rx_drops=$rx_dropped; cpumap enqueue processed=$enq_processed drops=$enq_drops, kthread processed=$kt_processed drops=$kt_drops; stack processed cpu0=$cpu0 cpu1=$cpu1; udpcount received=$received verified=$verified socketDrops=$sockdrops incomingCpu=$incoming; snmp Udp InDatagrams=$snmp_in RcvbufErrors=$snmp_rcvbuf"
	# The rate the guest took the frames in (the gen port waits for receive buffers, so this
	# is what NAPI, and XDP or the stack on CPU 0, sustained), and the socket's own rate.
	metric pps "$(awk -v n="$receiveq_frames" -v cs=$((t1 - t0)) 'BEGIN { printf "%.0f", (cs > 0 ? n * 100 / cs : 0) }')"
	metric socketPps "$(json_num "$UDP_JSON" pps)"
	metric delivered "$received"
	metric drops "$drops"
	metric incomingCpu "$incoming"
	metric softnet.cpu0 "$cpu0"
	metric softnet.cpu1 "$cpu1"
	$xdp && metric cpumap.enqueueDrops "$enq_drops"
	$xdp && metric cpumap.kthreadDrops "$kt_drops"
	metric socketDrops "$sockdrops"
	check_eq "device receiveq.frames (sent into $ZCNIC_IFACE)" "$receiveq_frames" "$count"
	check_eq "device transmitq.frames (nothing comes back)" "$transmitq_frames" 0
	check_eq "udpcount verified" "$verified" "$received"
	check_eq "udpcount corrupt" "$(json_num "$UDP_JSON" corrupt)" 0
	check_eq "udpcount duplicates" "$(json_num "$UDP_JSON" duplicates)" 0
	check_eq "delivered + drops (cpumap enqueue, kthread, socket, driver incl. XDP)" $((received + drops)) "$count"
	check_eq "snmp Udp InDatagrams" "$snmp_in" "$received"
	check_eq "snmp Udp RcvbufErrors" "$snmp_rcvbuf" "$sockdrops"
	[ "${received:-0}" -gt 0 ] || check_eq "udpcount received anything" 0 "more than 0"
	if $xdp; then
		check_eq "virtio_net rx_xdp_packets (every frame met the XDP program)" "$xdp_seen" "$count"
		check_eq "virtio_net rx_xdp_redirects (every frame went into the cpumap)" "$xdp_redirected" "$count"
		check_eq "virtio_net rx_xdp_drops" "$xdp_dropped" 0
		check_eq "cpumap enqueue processed" "$enq_processed" "$count"
		check_eq "cpumap kthread processed (dequeued)" "$kt_processed" $((count - enq_drops))
		check_eq "socket's incoming CPU (the cpumap's)" "$incoming" 1
		# Every frame that made it through the cpumap went through the stack on CPU 1.
		[ "$cpu1" -ge $((count - enq_drops - kt_drops)) ] || check_eq "stack processed on CPU 1" "$cpu1" ">= $((count - enq_drops - kt_drops))"
	else
		check_eq "virtio_net rx_xdp_packets (no XDP)" "$xdp_seen" 0
		check_eq "socket's incoming CPU (NAPI's)" "$incoming" 0
		[ "$cpu0" -ge "$count" ] || check_eq "stack processed on CPU 0" "$cpu0" ">= $count"
	fi
	checks_done "$mode"
}

test_redirect_cpu() { cpumap_test redirect-cpu "$GEN_PPS"; }
test_no_xdp() { cpumap_test no-xdp "$GEN_PPS"; }
test_redirect_cpu_max() { cpumap_test redirect-cpu-max 0; }
test_no_xdp_max() { cpumap_test no-xdp-max 0; }
