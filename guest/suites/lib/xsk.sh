# Helpers for AF_XDP tests with our xdpsock (guest/xdpsock/README.md). Sourced by a suite,
# after lib/common.sh.
#
# A test calls xsk_setup first: it makes a scratch folder and arranges that, whatever way the
# test ends, a background xdpsock is stopped and the folder removed.
#
# A test of the copy path binds with -c (XDP_COPY): without a flag the kernel binds zero-copy
# wherever the NIC can (virtio_net 6.13+ on `zcnic run --xsk-zero-copy`), whatever the XDP
# program's mode, and the test would measure another path.
#
# Checks do not end the test at the first mismatch: `check_eq` records every mismatch as a
# diagnostic and `checks_done` fails the test if there was any, so one failure shows all of
# what did not add up.

XSK_DIR=
XSK_PID=
XSK_FAILED=0

xsk_cleanup() {
	if [ -n "$XSK_PID" ]; then
		kill -s TERM "$XSK_PID" 2>/dev/null
		# xdpsock detaches its XDP program on SIGTERM, after waiting up to 5 s for outstanding
		# transmit completions (DRAIN_TIMEOUT_NS): give it that and more before forcing, or the
		# program stays on the interface and the next test's attach finds it.
		i=0
		while kill -0 "$XSK_PID" 2>/dev/null && [ $i -lt 80 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -s KILL "$XSK_PID" 2>/dev/null
		wait "$XSK_PID" 2>/dev/null
		XSK_PID=
	fi
	[ -n "$XSK_DIR" ] && rm -rf "$XSK_DIR"
	XSK_DIR=
}

xsk_setup() {
	need_iface
	command -v xdpsock >/dev/null || fail "no xdpsock in the guest image"
	XSK_DIR=$(mktemp -d /tmp/zcnic-xsk.XXXXXX) || fail "cannot make a scratch folder"
	trap 'xsk_cleanup' EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
}

# json_word JSON KEY: the value under KEY in a flat one-line JSON object, without quotes
# (for strings and booleans; json_num in common.sh reads whole numbers).
json_word() {
	echo "$1" | sed -n "s/.*\"$2\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}

# xsk_run ARGS...: runs xdpsock in the foreground; its JSON summary in $XSK_JSON, its exit
# status in $XSK_RC, and its stderr (minus the per-second rate lines) on the console.
xsk_run() {
	XSK_JSON=$(xdpsock "$@" 2>"$XSK_DIR/err" 3>&-)
	XSK_RC=$?
	grep -v '^pps ' "$XSK_DIR/err" >&2
	diag "xdpsock $* -> status $XSK_RC"
	diag "xdpsock: ${XSK_JSON:-no summary}"
	[ $XSK_RC -eq 0 ] && [ -n "$XSK_JSON" ] && return 0
	diag "xdpsock stderr: $(grep -v '^pps ' "$XSK_DIR/err" | tail -n 5)"
	return 1
}

# xsk_start ARGS...: starts xdpsock in the background and waits (up to 20 s) for its
# "xdpsock: ready" line, after which senders may start. Fails the test with xdpsock's own
# error when it exits first (e.g. the kernel refusing to attach the XDP program).
xsk_start() {
	: >"$XSK_DIR/err"
	xdpsock "$@" >"$XSK_DIR/out" 2>"$XSK_DIR/err" 3>&- </dev/null &
	XSK_PID=$!
	XSK_ARGS="$*"
	i=0
	while ! grep -q '^xdpsock: ready' "$XSK_DIR/err"; do
		if ! kill -0 "$XSK_PID" 2>/dev/null; then
			wait "$XSK_PID"
			rc=$?
			XSK_PID=
			diag "xdpsock $* exited with status $rc before it was ready:"
			diag "$(grep -v '^pps ' "$XSK_DIR/err" | tail -n 8)"
			dmesg | tail -n 5 | sed 's/^/dmesg: /' >&2
			fail "xdpsock could not start: $(grep -v '^pps ' "$XSK_DIR/err" | tail -n 1)"
		fi
		[ $i -lt 200 ] || fail "xdpsock printed no ready line within 20 s"
		sleep 0.1
		i=$((i + 1))
	done
	diag "$(grep '^xdpsock: ready' "$XSK_DIR/err")"
}

# xsk_wait SECONDS: waits for the background xdpsock to end by itself (stops it after
# SECONDS); its summary in $XSK_JSON and status in $XSK_RC, as xsk_run.
xsk_wait() {
	i=0
	while kill -0 "$XSK_PID" 2>/dev/null && [ $i -lt $(($1 * 10)) ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$XSK_PID" 2>/dev/null; then
		diag "xdpsock still running after $1 s: stopping it"
		kill -s TERM "$XSK_PID"
	fi
	wait "$XSK_PID"
	XSK_RC=$?
	XSK_PID=
	XSK_JSON=$(cat "$XSK_DIR/out")
	grep -v '^pps ' "$XSK_DIR/err" >&2
	diag "xdpsock $XSK_ARGS -> status $XSK_RC"
	diag "xdpsock: ${XSK_JSON:-no summary}"
	[ $XSK_RC -eq 0 ] && [ -n "$XSK_JSON" ] && return 0
	diag "xdpsock stderr: $(grep -v '^pps ' "$XSK_DIR/err" | tail -n 5)"
	return 1
}

# check_eq WHAT GOT WANT: records a mismatch (as a diagnostic) when GOT != WANT.
check_eq() {
	if [ "$2" = "$3" ]; then
		return 0
	fi
	diag "MISMATCH $1: got ${2:-nothing}, expected $3"
	XSK_FAILED=$((XSK_FAILED + 1))
	return 1
}

# checks_done WHAT: fails the test if any check_eq did not hold.
checks_done() {
	[ $XSK_FAILED -eq 0 ] || fail "$1: $XSK_FAILED check(s) failed (see MISMATCH lines)"
}
