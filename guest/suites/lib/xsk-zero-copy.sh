# virtio_net's AF_XDP zero-copy, for the suites that bind zero-copy sockets (xsk-zc, xskxceiver):
# what the NIC must have negotiated, and the kernel bug that spoils zero-copy transmit.

# xsk_zc_nic_lacks: what virtio_net's AF_XDP zero-copy needs and the NIC did not negotiate, each
# with why the driver needs it; nothing when it has both. Status 1 when the NIC's features
# cannot be read.
xsk_zc_nic_lacks() {
	features=$(cat "/sys/class/net/$ZCNIC_IFACE/device/features") || return 1
	lacks=
	# One character per feature bit, bit 0 first: ACCESS_PLATFORM is bit 33, RING_RESET bit 40.
	[ "$(echo "$features" | cut -c34)" = 1 ] || lacks="VIRTIO_F_ACCESS_PLATFORM (iommu_platform=on): virtio_net has no DMA device for an AF_XDP pool without it"
	[ "$(echo "$features" | cut -c41)" = 1 ] || lacks="${lacks:+$lacks; nor }VIRTIO_F_RING_RESET: virtio_net resets the queue pair to bind an AF_XDP pool"
	echo "$lacks"
}

# native_tx_header_check CONSEQUENCE: SKIPs where virtio_net is a module holding its zero-copy
# transmit header as a static (xsk_hdr in /proc/kallsyms, tagged [virtio_net]): it DMA-maps
# module memory, which is not in the linear map, so the address it posts for every frame's
# header is wrong. Where that address falls outside guest memory the device refuses the chain
# (xsk-zc's native_tx_wait shows it); where it falls inside, the device reads 12 bytes of
# unrelated guest RAM as the header (seen once on 7.3.4 with 512 MiB). CONSEQUENCE says what
# that means for the test.
native_tx_header_check() {
	line=$(grep -w xsk_hdr /proc/kallsyms | head -n 1)
	case "$line" in
	*'[virtio_net]'*)
		metric kernelBug.xskHeaderInModule 1
		rel=$(uname -r)
		skip "kernel ${rel%%-*}: virtio_net is a module and its AF_XDP zero-copy transmit DMA-maps the module's static xsk_hdr ($(echo "$line" | tr -s ' \t' ' ')), memory outside the linear map: the header address it posts is wrong (outside guest memory, where the device refuses it, or unrelated guest RAM), so $1"
		;;
	esac
}
