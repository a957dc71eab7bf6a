# exploratory (temporary)
ZCNIC_TESTS="explore"
test_explore() {
	need_iface
	diag "features: $(cat /sys/class/net/$ZCNIC_IFACE/device/features)"
	out=$(xdpsock -i "$ZCNIC_IFACE" -t -S -C 2000 -s 64)
	diag "rc=$? $out"
	diag "$(zcnic_ctl wait transmitq.frames 2000 30)"
	diag "$(zcnic_ctl stats verification chainShapes transmitq errors)"
	out=$(xdpsock -i "$ZCNIC_IFACE" -t -N -C 100 -s 64 2>&1)
	diag "native rc=$? $out"
	dmesg | tail -5
}
