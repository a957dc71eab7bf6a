# xskxceiver: AF_XDP's own selftest (tools/testing/selftests/bpf: test_xsk.sh and xskxceiver,
# built on the host from Debian's linux-source for the guest kernel, images/xskxceiver.ts), run
# from the host's root file system (zcnic.rootfs=host) in test_xsk.sh's physical-NIC mode,
# `test_xsk.sh -i IFACE -m MODE`: both of xskxceiver's sockets sit on queue 0 of the one NIC and
# share a umem, and every frame it sends must come back to it, which the device's reflect port
# does (what transmitq k sends arrives on receiveq k). One test per XDP mode:
#   skb-mode   XDP_SKB: generic XDP, the socket bound in copy mode
#   drv-mode   XDP_DRV: virtio_net's native XDP, copy mode
#   zc-mode    XDP_DRV with XDP_ZEROCOPY: virtio_net binds zero-copy sockets from 6.11 (receive;
#              transmit from 6.13) on a NIC with VIRTIO_F_ACCESS_PLATFORM and VIRTIO_F_RING_RESET
#              (zcnic run --xsk-zero-copy); without them xskxceiver finds zero-copy unsupported
#              and the test SKIPs with its words and what the NIC lacks. Every xskxceiver test
#              transmits, so it also SKIPs where the kernel's zero-copy transmit posts a wrong
#              header address (a modular virtio_net's xsk_hdr, lib/xsk-zero-copy.sh): on Debian's
#              7.3.4 the device refuses the first frame (bufferOutsideMemory) and every test fails
# test_xsk.sh runs xskxceiver twice per mode, softirq then busy polling; each of xskxceiver's
# results becomes a result of its own (drv-mode/busy-poll/SEND_RECEIVE), with the device's
# counters for its time (harness/nested-results.ts). The test fails when one of them failed or
# test_xsk.sh did, and when the kernel oopsed or warned during it.
#
# Kernel command line (set by zcnic run --suite xskxceiver):
#   zcnic.xskxceiver_dir=PATH   the installed folder (a host path: test_xsk.sh, xskxceiver)
ZCNIC_TESTS="skb-mode drv-mode zc-mode"
# 2 MiB huge pages for the run (64 MiB): xskxceiver maps the umem of its unaligned-mode tests
# with MAP_HUGETLB and SKIPs them where it cannot ("No huge pages present").
XSKXCEIVER_HUGEPAGES=32

. "$ZCNIC_SUITES_DIR/lib/xsk-zero-copy.sh"

test_skb_mode() { xskxceiver_run skb; }
test_drv_mode() { xskxceiver_run drv; }
test_zc_mode() {
	# A NIC without the features gets xskxceiver's own verdict (xskxceiver_zc_unsupported).
	lacks=$(xsk_zc_nic_lacks) || fail "cannot read the NIC's negotiated features"
	[ -n "$lacks" ] || native_tx_header_check "xskxceiver's zero-copy frames would go out with a header the driver never wrote, or not at all"
	xskxceiver_run zc
}

# xskxceiver_run MODE: test_xsk.sh -i IFACE -m MODE on the reflect port. Its lines reach the
# harness as they come (xskxceiver_nest), so the device's counters are read at each result.
xskxceiver_run() {
	[ -n "$ZCNIC_XSKXCEIVER_DIR" ] || fail "no xskxceiver build (zcnic.xskxceiver_dir; zcnic run --suite xskxceiver builds one)"
	need_iface
	zcnic_ctl port reflect >/dev/null || fail "cannot switch the device to port reflect"
	out=${TMPDIR:-/tmp}/xskxceiver-$1.out
	nested=${TMPDIR:-/tmp}/xskxceiver-$1.ktap
	hugepages=$(set_hugepages "$XSKXCEIVER_HUGEPAGES") || diag "cannot reserve $XSKXCEIVER_HUGEPAGES huge pages: the unaligned-mode tests will SKIP"
	dmesg_lines=$(dmesg | wc -l)
	# stdbuf: xskxceiver's stdout is a pipe, which it would write in blocks, so every result
	# would reach the harness at the end, and the device's counters with it.
	host_run /bin/sh -c 'cd "$1" && stdbuf -oL ./test_xsk.sh -i "$2" -m "$3"; echo "test_xsk.sh: exit status $?"' xskxceiver \
		"$ZCNIC_XSKXCEIVER_DIR" "$ZCNIC_IFACE" "$1" 2>&1 | tee "$out" | xskxceiver_nest | tee "$nested" >&3
	set_hugepages "$hugepages" >/dev/null
	status=$(sed -n 's/^test_xsk.sh: exit status //p' "$out")
	# Not the exit status alone: xskxceiver exits 0 after tests that failed by their return value
	# (it counts only those that set test->fail).
	failed=$(sed -n 's/^# # not ok [0-9]* //p' "$nested" | tr '\n' ' ')
	complaints=$(kernel_complaints "$dmesg_lines")
	xskxceiver_kernel_log "$nested" "$complaints"
	[ -z "$complaints" ] || fail "the kernel complained during the test: $complaints${failed:+; failed: $failed}"
	[ "$status" = 0 ] && [ -z "$failed" ] && return 0
	[ "$1" = zc ] && grep -q 'zero-copy mode not supported' "$out" && xskxceiver_zc_unsupported
	fail "test_xsk.sh -m $1: exit status ${status:-unknown}${failed:+; failed: $failed}"
}

# set_hugepages N: the kernel keeps N huge pages; prints how many it kept before.
set_hugepages() {
	cat /proc/sys/vm/nr_hugepages && echo "$1" >/proc/sys/vm/nr_hugepages
}

# xskxceiver_nest: test_xsk.sh's output in, the nested KTAP the harness reads out: "# # " lines,
# as the kselftest runner nests a test's own (harness/nested-results.ts). xskxceiver's result
# lines are not KTAP names ("ok 3 PASS: SKB BUSY-POLL POLL_TX", "ok 4 # SKIP SKIP: SKB
# UNALIGNED_MODE", and "not ok 5 [file:function:line]: ERROR: 22/..." when it gives up), and
# each of its two runs numbers from 1: here they are numbered on, named RUN/TEST (softirq, or
# busy-poll from the second plan line on), and a skip carries the line xskxceiver printed
# before it (its reason, e.g. "Multi buffer not supported."). Everything else is a diagnostic.
xskxceiver_nest() {
	awk '
	function emit(line) { print "# # " line; fflush() }
	/^1\.\.[0-9]+$/ {
		run = run == "" ? "softirq" : "busy-poll"
		emit("# " run ": xskxceiver plans " substr($0, 4) " tests")
		next
	}
	/^(not )?ok [0-9]+ / {
		ok = $1 == "ok"
		text = $0
		sub(/^(not )?ok [0-9]+ /, "", text)
		skipped = sub(/^# SKIP /, "", text)
		extra = ""
		if (match(text, / -- /)) {
			extra = substr(text, RSTART + 4)
			text = substr(text, 1, RSTART - 1)
		}
		if (sub(/^(PASS|FAIL|SKIP): [A-Z]+ /, "", text)) {
			sub(/^BUSY-POLL /, "", text)
			name = text
		} else {
			name = "ERROR"
			extra = text
		}
		if (extra != "") emit("# " extra)
		n++
		reason = last != "" ? last : "xskxceiver gave no reason"
		emit((ok ? "ok " : "not ok ") n " " (run == "" ? "softirq" : run) "/" name (skipped ? " # SKIP " reason : ""))
		last = ""
		next
	}
	{
		line = $0
		sub(/^# /, "", line)
		if (line == "") next
		emit("# " line)
		last = line
	}
	'
}

# xskxceiver_kernel_log NESTED COMPLAINTS: one more nested result, kernel-log, after xskxceiver's
# (numbered on from those in the file NESTED): not ok with the kernel's oops, BUG and warning
# lines of the test's time, ok without. The harness keeps a failed test's own record only where
# none of its nested results failed, so a kernel complaint would otherwise not be seen where
# xskxceiver also failed a test.
xskxceiver_kernel_log() {
	results=$(grep -c '^# # \(not \)\{0,1\}ok ' "$1")
	[ -z "$2" ] || printf '%s\n' "$2" | while IFS= read -r line; do echo "# # # $line"; done >&3
	echo "# # ${2:+not }ok $((results + 1)) kernel-log" >&3
}

# xskxceiver_zc_unsupported: xskxceiver could not bind a zero-copy socket. SKIPs with what the
# NIC or the kernel lacks; a NIC with both features under a kernel that binds them fails.
xskxceiver_zc_unsupported() {
	said="xskxceiver: zero-copy mode not supported"
	lacks=$(xsk_zc_nic_lacks) || fail "$said, and the NIC's negotiated features cannot be read"
	[ -z "$lacks" ] || skip "$said: the NIC did not negotiate $lacks (zcnic run --xsk-zero-copy)"
	rel=$(uname -r)
	kernel_version_ge 6 11 || skip "$said: kernel ${rel%%-*}: virtio_net binds no AF_XDP socket in zero-copy mode before 6.11"
	fail "$said, on kernel ${rel%%-*} with a NIC that negotiated VIRTIO_F_ACCESS_PLATFORM and VIRTIO_F_RING_RESET"
}
