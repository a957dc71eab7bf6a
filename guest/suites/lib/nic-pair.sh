# The guest's two zcnic NICs joined by the wire port (harness/guest-nics.ts, network zcnic-pair),
# addressed the way netdev's CI (NIPA) addresses its virtio pair: the first NIC stays here, the
# second moves into netns ns-remote. Used by kselftest.sh and kernel-msg-zerocopy.sh; needs the
# host's root (host_run) and, for IPv6, zcnic.ipv6=1.
#
# Kernel command line (set by the harness for two NICs):
#   zcnic.local_mac, zcnic.remote_mac   which NIC is which

NIC_PAIR_LOCAL_V4=192.0.3.1
NIC_PAIR_REMOTE_V4=192.0.3.2
NIC_PAIR_LOCAL_V6=2001:db8:1::1
NIC_PAIR_REMOTE_V6=2001:db8:1::2
NIC_PAIR_NETNS=ns-remote
# The interfaces' names once set up, for the boot's later tests (each test is a shell of its own).
NIC_PAIR_STATE=/tmp/nic-pair.state

# nic_pair_setup: sets up both NICs once per boot and sets NIC_PAIR_LOCAL_IF (here) and
# NIC_PAIR_REMOTE_IF (in ns-remote); fails the test when it cannot.
nic_pair_setup() {
	if [ -r "$NIC_PAIR_STATE" ]; then
		. "$NIC_PAIR_STATE"
		return 0
	fi
	local_if=$(iface_by_mac "$ZCNIC_LOCAL_MAC") || fail "no interface with the local NIC's MAC $ZCNIC_LOCAL_MAC"
	remote_if=$(iface_by_mac "$ZCNIC_REMOTE_MAC") || fail "no interface with the remote NIC's MAC $ZCNIC_REMOTE_MAC"
	# Only init's IPv4 address goes: flushing all would take the link-local IPv6 address too,
	# which comes back only with the link, and the IPv6 variants of xdp.py then lost every
	# exchange (seen on both devices: the remote's neighbour entry for NETIF stayed FAILED).
	# IPv6 addresses go when a link goes down (stats.py takes NETIF down and up) unless the
	# interface keeps them: without it every IPv6 case after stats.py failed, on both devices.
	host_run sysctl -q -w "net.ipv6.conf.$local_if.keep_addr_on_down=1" &&
		host_run ip -4 addr flush dev "$local_if" &&
		host_run ip netns add "$NIC_PAIR_NETNS" &&
		host_run ip link set "$remote_if" netns "$NIC_PAIR_NETNS" &&
		host_run ip addr add "$NIC_PAIR_LOCAL_V4/24" dev "$local_if" &&
		host_run ip -6 addr add "$NIC_PAIR_LOCAL_V6/64" dev "$local_if" nodad &&
		host_run ip link set "$local_if" up &&
		host_run ip netns exec "$NIC_PAIR_NETNS" sysctl -q -w "net.ipv6.conf.$remote_if.keep_addr_on_down=1" &&
		host_run ip -n "$NIC_PAIR_NETNS" link set lo up &&
		host_run ip -n "$NIC_PAIR_NETNS" addr add "$NIC_PAIR_REMOTE_V4/24" dev "$remote_if" &&
		host_run ip -n "$NIC_PAIR_NETNS" -6 addr add "$NIC_PAIR_REMOTE_V6/64" dev "$remote_if" nodad &&
		host_run ip -n "$NIC_PAIR_NETNS" link set "$remote_if" up ||
		fail "cannot set up the two NICs ($local_if here, $remote_if in $NIC_PAIR_NETNS)"
	# The remote's link comes up through linkwatch; a first test should not race it.
	host_run ip netns exec "$NIC_PAIR_NETNS" ping -c 1 -W 5 "$NIC_PAIR_LOCAL_V4" >/dev/null ||
		diag "the remote NIC does not answer yet (ping $NIC_PAIR_LOCAL_V4 from $NIC_PAIR_NETNS)"
	NIC_PAIR_LOCAL_IF=$local_if
	NIC_PAIR_REMOTE_IF=$remote_if
	echo "NIC_PAIR_LOCAL_IF=$local_if NIC_PAIR_REMOTE_IF=$remote_if" >"$NIC_PAIR_STATE"
	diag "NICs: $local_if here, $remote_if in $NIC_PAIR_NETNS"
}
