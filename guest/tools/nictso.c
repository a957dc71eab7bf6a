/*
 * nictso: a NIC's TCP segmentation offload, read or switched (what `ethtool -k IFACE` shows as
 * tcp-segmentation-offload and `ethtool -K IFACE tso on|off` sets), for guest suites that compare
 * the same flows with and without TSO in one boot; the initramfs has no ethtool.
 *
 *   nictso IFACE            prints tso=on or tso=off
 *   nictso IFACE on|off     switches it, then prints what the driver reports afterwards
 *
 * Uses the SIOCETHTOOL ioctl (ETHTOOL_GTSO, ETHTOOL_STSO), which the kernel maps onto the
 * netdev's TSO features. Exit status 1 when the driver refuses, or when after a switch it does
 * not report what was asked (a NIC whose host side offers no TSO cannot turn it on).
 */
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int ethtool_value(int fd, const char *iface, unsigned int cmd, unsigned int *value)
{
	struct ethtool_value ev = {.cmd = cmd, .data = *value};
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", iface);
	ifr.ifr_data = (void *)&ev;
	if (ioctl(fd, SIOCETHTOOL, &ifr) < 0)
		return -1;
	*value = ev.data;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "on") != 0 && strcmp(argv[2], "off") != 0)) {
		fprintf(stderr, "usage: nictso IFACE [on|off]\n");
		return 2;
	}
	const char *iface = argv[1];
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("nictso: socket");
		return 1;
	}
	unsigned int value = 0;
	if (argc == 3) {
		value = strcmp(argv[2], "on") == 0;
		if (ethtool_value(fd, iface, ETHTOOL_STSO, &value) < 0) {
			fprintf(stderr, "nictso: %s: ETHTOOL_STSO %s: %s\n", iface, argv[2], strerror(errno));
			close(fd);
			return 1;
		}
	}
	unsigned int now = 0;
	if (ethtool_value(fd, iface, ETHTOOL_GTSO, &now) < 0) {
		fprintf(stderr, "nictso: %s: ETHTOOL_GTSO: %s\n", iface, strerror(errno));
		close(fd);
		return 1;
	}
	close(fd);
	printf("tso=%s\n", now ? "on" : "off");
	if (argc == 3 && (now != 0) != (strcmp(argv[2], "on") == 0)) {
		fprintf(stderr, "nictso: %s: asked for tso %s, the driver reports %s\n", iface, argv[2], now ? "on" : "off");
		return 1;
	}
	return 0;
}
