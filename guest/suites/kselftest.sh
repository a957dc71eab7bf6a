# kselftest: the kernel's own network selftests (zcnic selftests), on two NICs back to back, the
# way netdev's CI (NIPA) runs them on virtio: the first NIC stays here as NETIF, the second moves
# into netns ns-remote (REMOTE_TYPE=netns), and each test runs through the kselftest runner of a
# tree built on the host from Debian's linux-source (images/selftests.ts), from the host's root
# file system (zcnic.rootfs=host). The runner's KTAP goes to the harness line by line as
# diagnostics ("# " + line), where the nested results become results of their own; this test's
# verdict is the runner's, and a kernel oops or warning during the test fails it.
#
# Kernel command line (set by zcnic selftests):
#   zcnic.kselftest_dir=PATH            the installed tree (a host path: run_kselftest.sh,
#                                       kselftest-list.txt)
#   zcnic.kselftest_targets=T[,T...]    the collections to run (drivers/net,drivers/net/hw)
#   zcnic.local_mac, zcnic.remote_mac   which NIC is which (lib/nic-pair.sh)
#   zcnic.machine_slow=auto|yes|no      KSFT_MACHINE_SLOW for the tests (auto: yes under TCG)
#   zcnic.accel=tcg|kvm                 set by the harness for every boot
# A test's name is the runner's COLLECTION:TEST (drivers/net:ping.py).

. "$ZCNIC_SUITES_DIR/lib/nic-pair.sh"

# The environment of every test (NetDrvEpEnv's variables), written once per boot.
KSELFTEST_ENV=/tmp/kselftest.env

# The tests of the chosen collections, in the runner's order.
kselftest_list() {
	list=$ZCNIC_HOSTROOT$ZCNIC_KSELFTEST_DIR/kselftest-list.txt
	[ -r "$list" ] || return 0
	for target in $(echo "$ZCNIC_KSELFTEST_TARGETS" | tr ',' ' '); do
		grep "^$target:" "$list"
	done
}
ZCNIC_TESTS=$(kselftest_list)
ZCNIC_RUN_TEST=run_kselftest

# The two NICs (lib/nic-pair.sh) as NetDrvEpEnv's variables name them.
kselftest_setup() {
	[ -r "$KSELFTEST_ENV" ] && return 0
	nic_pair_setup
	slow=$(kselftest_machine_slow)
	echo "NETIF=$NIC_PAIR_LOCAL_IF LOCAL_V4=$NIC_PAIR_LOCAL_V4 REMOTE_V4=$NIC_PAIR_REMOTE_V4 LOCAL_V6=$NIC_PAIR_LOCAL_V6 REMOTE_V6=$NIC_PAIR_REMOTE_V6 REMOTE_TYPE=netns REMOTE_ARGS=$NIC_PAIR_NETNS${slow:+ KSFT_MACHINE_SLOW=$slow}" >"$KSELFTEST_ENV"
	diag "KSFT_MACHINE_SLOW=${slow:-unset}"
}

# KSFT_MACHINE_SLOW, the selftests' own allowance for a slow machine (netdev's CI sets it for
# its debug kernels): the tests that time delivery then do not fail on the time alone
# (so_txtime.py starts 2 s ahead instead of 0.2 s and does not judge the delays it sees,
# gro.py's large_* cases, lib.sh's xfail_on_slow). A guest under TCG is one: the python test's
# start time had passed before so_txtime even ran ("start time already passed", on both
# devices, 7.3.4). Prints yes, or nothing for unset.
kselftest_machine_slow() {
	case "${ZCNIC_MACHINE_SLOW:-auto}" in
	yes) echo yes ;;
	no) ;;
	auto) [ "$ZCNIC_ACCEL" = tcg ] && echo yes ;;
	*) fail "zcnic.machine_slow must be auto, yes or no, not $ZCNIC_MACHINE_SLOW" ;;
	esac
	return 0
}

# run_kselftest COLLECTION:TEST
run_kselftest() {
	kselftest_setup
	out=/tmp/kselftest.out
	dmesg_lines=$(dmesg | wc -l)
	# The runner's lines reach the harness as they come, so it can place the device's counters
	# at each nested result; the status is the runner's own line for this test.
	# shellcheck disable=SC2046 # the env file is KEY=VALUE words
	host_run $(cat "$KSELFTEST_ENV") /bin/sh -c 'cd "$1" && ./run_kselftest.sh -t "$2"' kselftest "$ZCNIC_KSELFTEST_DIR" "$1" 2>&1 |
		while IFS= read -r line; do
			echo "# $line" >&3
			echo "$line"
		done >"$out"
	complaints=$(kernel_complaints "$dmesg_lines")
	[ -z "$complaints" ] || fail "the kernel complained during the test: $complaints"
	coll=${1%%:*}
	name=${1#*:}
	verdict=$(grep -E "^(not )?ok [0-9]+ selftests: $coll: $name( |\$)" "$out" | tail -n 1)
	case "$verdict" in
	'') fail "the runner printed no result for $1" ;;
	'not ok'*) fail "${verdict#*"$name"}" ;;
	*'# SKIP'*) skip "$(kselftest_skip_reason "$out")" ;;
	esac
	return 0
}

# The kernel's reason for a skipped test: the first SKIP directive of its nested results, or its
# last diagnostic line.
kselftest_skip_reason() {
	reason=$(sed -n 's/^# \(not \)\{0,1\}ok [0-9]* .* # SKIP *//p' "$1" | head -n 1)
	[ -n "$reason" ] || reason=$(grep -v -E '^# (# )?(Totals|TAP version|1\.\.|selftests:|timeout set)' "$1" | grep '^# ' | tail -n 1 | sed 's/^# //')
	echo "${reason:-the runner gave no reason}"
}
