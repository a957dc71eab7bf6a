# command: one test that runs a host program in the guest (zcnic run --rootfs host -- CMD ARGS...),
# on the guest's kernel and zcnic NIC. Its verdict is the program's exit status; its output goes
# to the harness line by line as diagnostics, which zcnic run prints after the run.
#
# Kernel command line (set by zcnic run):
#   zcnic.command_file=PATH    a script the harness wrote (a host path, read through the host's
#                              root as the 9p mount shows it), which execs the command
ZCNIC_TESTS=command

test_command() {
	[ -n "$ZCNIC_HOSTROOT" ] || fail "the host's root file system is not mounted (the console says why)"
	script=/hostroot.lower$ZCNIC_COMMAND_FILE
	[ -r "$script" ] || fail "no command script at $ZCNIC_COMMAND_FILE"
	# The host's /tmp is the guest's own in the overlay: the script goes there.
	cp "$script" /tmp/zcnic-command.sh || fail "cannot copy the command script"
	host_run ZCNIC_IFACE="$ZCNIC_IFACE" ZCNIC_GUEST_IP="$ZCNIC_GUEST_IP" ZCNIC_PEER_IP="$ZCNIC_PEER_IP" /bin/sh /tmp/zcnic-command.sh 2>&1 |
		while IFS= read -r line; do
			echo "# $line" >&3
		done
	status=$(cat /tmp/zcnic-command.status 2>/dev/null)
	[ "$status" = 0 ] || fail "exit status ${status:-unknown}"
}
