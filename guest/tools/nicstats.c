/*
 * nicstats: a driver's own statistics (what `ethtool -S IFACE` prints), for guest suites that
 * must account for every frame: e.g. virtio_net's per-queue XDP counters (redirects, drops,
 * XDP transmit drops) that /sys/class/net/IFACE/statistics does not show.
 *
 *   nicstats IFACE [NAME...]
 *
 * Prints NAME=VALUE per line, every statistic or only the NAMEs given. Names are the driver's,
 * with characters other than [A-Za-z0-9_] turned into '_', so a shell can eval the output.
 * Reads them with the SIOCETHTOOL ioctl (ETHTOOL_GSSET_INFO, ETHTOOL_GSTRINGS, ETHTOOL_GSTATS).
 *
 * A NAME of the form DIR_STAT (rx_xdp_packets, tx_xdp_tx) that the driver does not have is the
 * sum of its per-queue DIR_queue_N_STAT: virtio_net's names up to 6.9 (6.1: tx_queue_0_xdp_tx),
 * where 6.10+ has device totals (tx_xdp_tx) beside tx0_xdp_tx. A NAME found in neither form is
 * an error (exit status 3), never a 0 that a check would take for a count.
 */
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* The driver's name of statistic i, with characters a shell cannot take turned into '_'. */
static void stat_name(const struct ethtool_gstrings *names, uint32_t i, char out[ETH_GSTRING_LEN + 1])
{
	memcpy(out, names->data + (size_t)i * ETH_GSTRING_LEN, ETH_GSTRING_LEN);
	out[ETH_GSTRING_LEN] = 0;
	for (char *p = out; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
			*p = '_';
}

/* Whether `name` is DIR_queue_N_STAT for the `want` DIR_STAT (e.g. tx_queue_0_xdp_tx for tx_xdp_tx). */
static int is_queue_form(const char *name, const char *want)
{
	const char *stat = strchr(want, '_');
	if (!stat)
		return 0;
	size_t dir = (size_t)(stat - want);
	if (strncmp(name, want, dir) != 0 || strncmp(name + dir, "_queue_", 7) != 0)
		return 0;
	const char *p = name + dir + 7;
	if (*p < '0' || *p > '9')
		return 0;
	while (*p >= '0' && *p <= '9')
		p++;
	return strcmp(p, stat) == 0;
}

static int ethtool(int fd, const char *iface, void *cmd)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", iface);
	ifr.ifr_data = cmd;
	return ioctl(fd, SIOCETHTOOL, &ifr);
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0) {
		fprintf(argc < 2 ? stderr : stdout, "usage: nicstats IFACE [NAME...]\n");
		return argc < 2 ? 2 : 0;
	}
	const char *iface = argv[1];
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("nicstats: socket");
		return 1;
	}
	struct {
		struct ethtool_sset_info hdr;
		uint32_t len;
	} sset = {.hdr = {.cmd = ETHTOOL_GSSET_INFO, .sset_mask = 1ULL << ETH_SS_STATS}};
	if (ethtool(fd, iface, &sset) < 0) {
		fprintf(stderr, "nicstats: %s: ETHTOOL_GSSET_INFO: %s\n", iface, strerror(errno));
		return 1;
	}
	uint32_t n = sset.hdr.sset_mask ? sset.len : 0;
	struct ethtool_gstrings *names = calloc(1, sizeof *names + (size_t)n * ETH_GSTRING_LEN);
	struct ethtool_stats *stats = calloc(1, sizeof *stats + (size_t)n * sizeof(uint64_t));
	if (!names || !stats)
		return 1;
	names->cmd = ETHTOOL_GSTRINGS;
	names->string_set = ETH_SS_STATS;
	names->len = n;
	stats->cmd = ETHTOOL_GSTATS;
	stats->n_stats = n;
	if (n && (ethtool(fd, iface, names) < 0 || ethtool(fd, iface, stats) < 0)) {
		fprintf(stderr, "nicstats: %s: reading statistics: %s\n", iface, strerror(errno));
		return 1;
	}
	char name[ETH_GSTRING_LEN + 1];
	int missing = 0;
	if (argc == 2) {
		for (uint32_t i = 0; i < n; i++) {
			stat_name(names, i, name);
			printf("%s=%llu\n", name, (unsigned long long)stats->data[i]);
		}
	} else {
		for (int a = 2; a < argc; a++) {
			unsigned long long exact = 0, per_queue = 0;
			int found_exact = 0, found_queues = 0;
			for (uint32_t i = 0; i < n; i++) {
				stat_name(names, i, name);
				if (strcmp(name, argv[a]) == 0) {
					exact = (unsigned long long)stats->data[i];
					found_exact = 1;
				} else if (is_queue_form(name, argv[a])) {
					per_queue += (unsigned long long)stats->data[i];
					found_queues++;
				}
			}
			if (!found_exact && !found_queues) {
				fprintf(stderr, "nicstats: %s has no statistic %s (nor per-queue forms of it)\n", iface, argv[a]);
				missing++;
				continue;
			}
			printf("%s=%llu\n", argv[a], found_exact ? exact : per_queue);
		}
	}
	close(fd);
	return missing ? 3 : 0;
}
