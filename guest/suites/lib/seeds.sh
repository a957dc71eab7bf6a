# Helpers for the seed suites (xsk-zc, tap-xdp, cpumap, zcrx): one scenario per seed post in
# the project's seeds folder, each checked from both sides (the guest's tools and the device's
# counters). Sourced by a suite after lib/common.sh; it sources lib/xsk.sh for xdpsock, the
# device_stats/check_eq/checks_done helpers and the scratch folder.
#
# A test calls seeds_setup first: a scratch folder in $XSK_DIR, and on any exit every
# background process started with seeds_bg is stopped, every command registered with
# seeds_on_exit is run (in reverse order), xdpsock is stopped and the folder removed.

. "$ZCNIC_SUITES_DIR/lib/xsk.sh"

SEEDS_PIDS=
SEEDS_UNDO=

seeds_cleanup() {
	for pid in $SEEDS_PIDS; do
		kill -s TERM "$pid" 2>/dev/null
	done
	for pid in $SEEDS_PIDS; do
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 30 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -s KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	SEEDS_PIDS=
	# Undo in reverse order of registration (one command per line).
	if [ -n "$SEEDS_UNDO" ]; then
		printf '%s\n' "$SEEDS_UNDO" | sed -n '1!G;h;$p' | while IFS= read -r cmd; do
			[ -n "$cmd" ] && eval "$cmd" >/dev/null 2>&1
		done
	fi
	SEEDS_UNDO=
	xsk_cleanup
}

seeds_setup() {
	xsk_setup
	trap 'seeds_cleanup' EXIT
}

# The netns peer's address (harness/peer-netns.ts).
SEEDS_PEER=${ZCNIC_PEER_IP:-198.18.0.1}

# peer_setup: seeds_setup, then the device's port switched to the host tap of the run's netns
# peer (msg-zerocopy, zcrx), which must answer ping. The harness sets the peer up (root: a tap
# and a network namespace); a peer that could not be set up is a broken setup, so the test
# fails with the harness's reason, never skips.
peer_setup() {
	seeds_setup
	peer_answer=$(zcnic_ctl peer stats tcp.streams 2>&1) || fail "no netns peer: ${peer_answer:-no answer from the harness}"
	zcnic_ctl port tap >/dev/null || fail "the device cannot switch to port tap"
	# The peer's address must answer before the flow starts (ARP through the device).
	command -v ping >/dev/null || return 0
	i=0
	until ping -c 1 -W 1 "$SEEDS_PEER" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 10 ] || fail "the peer $SEEDS_PEER does not answer ping through port tap"
	done
}

# seeds_on_exit COMMAND: run COMMAND (a shell string) when the test ends, however it ends.
seeds_on_exit() {
	SEEDS_UNDO="$SEEDS_UNDO
$1"
}

# seeds_bg NAME COMMAND...: start COMMAND in the background, stdout in $XSK_DIR/NAME.out and
# stderr in $XSK_DIR/NAME.err; its pid in $SEEDS_LAST_PID. Stopped at the end of the test.
seeds_bg() {
	name=$1
	shift
	"$@" >"$XSK_DIR/$name.out" 2>"$XSK_DIR/$name.err" 3>&- </dev/null &
	SEEDS_LAST_PID=$!
	SEEDS_PIDS="$SEEDS_PIDS $SEEDS_LAST_PID"
}

# seeds_wait_line NAME PATTERN SECONDS: wait until $XSK_DIR/NAME.err has a line matching
# PATTERN (grep regex), failing the test if the process ($SEEDS_LAST_PID) exits first.
seeds_wait_line() {
	i=0
	while ! grep -q "$2" "$XSK_DIR/$1.err" 2>/dev/null; do
		if ! kill -0 "$SEEDS_LAST_PID" 2>/dev/null; then
			diag "$1 exited before printing '$2':"
			diag "$(tail -n 8 "$XSK_DIR/$1.err" 2>/dev/null)"
			fail "$1 could not start: $(tail -n 1 "$XSK_DIR/$1.err" 2>/dev/null)"
		fi
		[ $i -lt $(($3 * 10)) ] || fail "$1 printed no '$2' line within $3 s"
		sleep 0.1
		i=$((i + 1))
	done
}

# seeds_wait_exit PID SECONDS: wait for a background process to end by itself (stopped with
# TERM after SECONDS); its exit status in $SEEDS_RC.
seeds_wait_exit() {
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt $(($2 * 10)) ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$1" 2>/dev/null; then
		diag "process $1 still running after $2 s: stopping it"
		kill -s TERM "$1"
	fi
	wait "$1"
	SEEDS_RC=$?
	# No longer ours to stop.
	SEEDS_PIDS=$(echo "$SEEDS_PIDS" | tr ' ' '\n' | grep -v "^$1\$" | tr '\n' ' ')
}

# zc_map_from_file FILE FRAME_SIZE HEADROOM: hands the device the guest-physical pages of a
# user buffer, from a map file of "<offset_hex> <phys_hex>" lines (xdpsock --umem-map,
# frames --buf-map), as `zcnic_ctl zc-map FRAME_SIZE HEADROOM OFF:GPA...`.
zc_map_from_file() {
	[ -s "$1" ] || fail "no buffer map in $1"
	pages=$(awk 'NF == 2 { printf "%s%s:%s", (n++ ? " " : ""), $1, $2 } END { if (!n) exit 1 }' "$1") || fail "empty buffer map $1"
	# shellcheck disable=SC2086 # one word per page
	answer=$(zcnic_ctl zc-map "$2" "$3" $pages) || fail "the device refused the buffer map"
	diag "zc-map $2 $3 ($(wc -l <"$1") pages from $1): $answer"
}

# ratio NUM DEN: NUM/DEN with three decimals (0.000 when DEN is 0).
ratio() {
	awk -v n="${1:-0}" -v d="${2:-0}" 'BEGIN { if (d > 0) printf "%.3f", n / d; else printf "0.000" }'
}

SEEDS_SHAPE_KEYS="chainShapes.descriptorsPerChain.1 chainShapes.descriptorsPerChain.2 chainShapes.descriptorsPerChain.3 chainShapes.descriptorsPerChain.4 chainShapes.indirect chainShapes.vnetHeaderAlone chainShapes.ethernetHeaderNotWithVnetHeader chainShapes.frameSplitAcrossBuffers chainShapes.linearHeaderViolations"
SEEDS_VERIFY_KEYS="verification.verified verification.corrupt verification.duplicates verification.outOfOrder verification.gaps verification.otherFrames"

# shape_metrics: the chain-shape counters (read by device_stats $SEEDS_SHAPE_KEYS) as metrics,
# plus one word naming the layout every chain had, or "mixed":
#   indirect2-vnetHeaderAlone   an indirect table of 2: [virtio-net header][frame]
#   direct1-linear              one descriptor: header and frame together
shape_metrics() { # COUNT
	d1=${chainShapes_descriptorsPerChain_1:-0}
	d2=${chainShapes_descriptorsPerChain_2:-0}
	ind=${chainShapes_indirect:-0}
	alone=${chainShapes_vnetHeaderAlone:-0}
	if [ "$d2" = "$1" ] && [ "$ind" = "$1" ] && [ "$alone" = "$1" ]; then
		label="indirect2-vnetHeaderAlone:$1"
	elif [ "$d1" = "$1" ] && [ "$ind" = 0 ] && [ "$alone" = 0 ]; then
		label="direct1-linear:$1"
	else
		label="mixed:d1=$d1,d2=$d2,d3=${chainShapes_descriptorsPerChain_3:-0},indirect=$ind,vnetHeaderAlone=$alone"
	fi
	metric chainShapes "$label"
	metric chainShapes.descriptors1 "$d1"
	metric chainShapes.descriptors2 "$d2"
	metric chainShapes.indirect "$ind"
	metric chainShapes.vnetHeaderAlone "$alone"
	metric chainShapes.ethernetHeaderNotWithVnetHeader "${chainShapes_ethernetHeaderNotWithVnetHeader:-0}"
	metric chainShapes.frameSplitAcrossBuffers "${chainShapes_frameSplitAcrossBuffers:-0}"
}

# check_verified COUNT SIZE: the device received COUNT test frames of SIZE bytes on its
# transmitq and every one verified (no loss, duplicate, reordering or corruption).
check_verified() {
	check_eq "device transmitq.frames" "$transmitq_frames" "$1"
	check_eq "device transmitq.bytes" "$transmitq_bytes" "$(($1 * $2))"
	check_eq "device verification.verified" "$verification_verified" "$1"
	check_eq "device verification.corrupt" "$verification_corrupt" 0
	check_eq "device verification.duplicates" "$verification_duplicates" 0
	check_eq "device verification.outOfOrder" "$verification_outOfOrder" 0
	check_eq "device verification.gaps" "$verification_gaps" 0
}

# frames_send NAME ARGS...: runs frames (AF_PACKET sender) in the foreground; its JSON in
# $FRAMES_JSON, its status in $FRAMES_RC.
frames_send() {
	name=$1
	shift
	FRAMES_JSON=$(frames "$@" 2>"$XSK_DIR/$name.err" 3>&-)
	FRAMES_RC=$?
	diag "frames $* -> status $FRAMES_RC: ${FRAMES_JSON:-no summary}"
	[ $FRAMES_RC -eq 0 ] || diag "frames stderr: $(tail -n 3 "$XSK_DIR/$name.err")"
}

# now_cs: centiseconds since boot.
now_cs() {
	read -r up _ </proc/uptime
	cs=${up%.*}${up#*.}
	cs=${cs#"${cs%%[!0]*}"}
	echo "${cs:-0}"
}
