/*
 * tapwrite: create a tap device and write zcnic test frames (docs/test-frame.md) into it,
 * the way seed 002's fast path wants its writer: IFF_TAP | IFF_NO_PI, a non-blocking file,
 * the default send buffer (tun_chr_open sets sk_sndbuf to INT_MAX), no zerocopy, frames well
 * under a page. tun_get_user() then takes tun_build_skb() (build_skb() around a page fragment)
 * and runs the tap's XDP program before any skb exists.
 *
 *   tapwrite -t TAP -n COUNT -s SIZE -f FLOW [--wait-file PATH]
 *
 * Creates TAP (not persistent: it goes away when tapwrite exits), prints
 * "tapwrite: ready tap=... ifindex=..." on stderr, waits for --wait-file (time for the caller
 * to bring the tap up and attach XDP or a bridge), writes COUNT frames, prints one JSON line
 * on stdout, then keeps the tap for --hold seconds (frames in flight drain; the caller reads
 * the tap's counters and detaches what it attached, then stops tapwrite):
 *   {"written":N,"bytes":N,"errors":N,"retries":N,"firstErrno":E,"seconds":S,"pps":P,
 *    "nonblocking":true,"sndbuf":N,"size":N,"flow":N,"ifindex":N}
 * --blocking opens the file without O_NONBLOCK (tun_build_skb() is then never used: the
 * suites' check that their fast path really was the fast path); --sndbuf N sets TUNSETSNDBUF
 * (anything but INT_MAX has the same effect).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testframe.h"

#define MAX_FRAME 9014
/* A write that keeps failing with EAGAIN/ENOBUFS this long is given up. */
#define STALL_S 5

struct opts {
	const char *tap;
	unsigned long long count;
	unsigned size;
	uint32_t flow;
	uint8_t dst_mac[6], src_mac[6];
	uint32_t src_ip, dst_ip;
	int blocking;
	long sndbuf; /* -1: leave the default */
	const char *wait_file;
	double hold_s;
	double pps; /* 0: as fast as possible */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: tapwrite [-t TAP] [-n COUNT] [-s SIZE] [-f FLOW] [--dst-mac MAC] [--src-mac MAC]\n"
		"                [--wait-file PATH] [--hold SECONDS] [--pps N] [--blocking] [--sndbuf N]\n"
		"\n"
		"  -t TAP           tap to create (default zctap0)\n"
		"  -n COUNT         frames to write (default 1000)\n"
		"  -s SIZE          frame length without FCS, 60..9014 (default 64)\n"
		"  -f FLOW          test-frame flow: UDP source port 10000+FLOW (default 0)\n"
		"  --dst-mac MAC    destination MAC (default ff:ff:ff:ff:ff:ff)\n"
		"  --src-mac MAC    source MAC (default 02:7a:63:00:00:02)\n"
		"  --wait-file PATH after creating the tap, wait until PATH exists before writing\n"
		"  --hold SECONDS   keep the tap this long after the summary (default 0.5)\n"
		"  --pps N          write at most N frames per second\n"
		"  --blocking       open /dev/net/tun without O_NONBLOCK (no build_skb path)\n"
		"  --sndbuf N       TUNSETSNDBUF N (default: leave it at INT_MAX)\n"
		"Prints one JSON line with the totals on stdout; everything else on stderr.\n");
}

int main(int argc, char **argv)
{
	struct opts o = {.tap = "zctap0", .count = 1000, .size = 64, .sndbuf = -1, .hold_s = 0.5};
	memset(o.dst_mac, 0xff, 6);
	parse_mac("02:7a:63:00:00:02", o.src_mac);
	inet_pton(AF_INET, "198.18.0.2", &o.src_ip);
	inet_pton(AF_INET, "198.18.0.1", &o.dst_ip);
	enum { OPT_DST_MAC = 256, OPT_SRC_MAC, OPT_WAIT_FILE, OPT_HOLD, OPT_PPS, OPT_BLOCKING, OPT_SNDBUF };
	static const struct option longopts[] = {
		{"tap", required_argument, 0, 't'},
		{"count", required_argument, 0, 'n'},
		{"size", required_argument, 0, 's'},
		{"flow", required_argument, 0, 'f'},
		{"dst-mac", required_argument, 0, OPT_DST_MAC},
		{"src-mac", required_argument, 0, OPT_SRC_MAC},
		{"wait-file", required_argument, 0, OPT_WAIT_FILE},
		{"hold", required_argument, 0, OPT_HOLD},
		{"pps", required_argument, 0, OPT_PPS},
		{"blocking", no_argument, 0, OPT_BLOCKING},
		{"sndbuf", required_argument, 0, OPT_SNDBUF},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	int c;
	unsigned long long v;
	while ((c = getopt_long(argc, argv, "t:n:s:f:h", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (strlen(optarg) >= IFNAMSIZ)
				goto bad;
			o.tap = optarg;
			break;
		case 'n':
			if (parse_ull(optarg, &o.count) < 0)
				goto bad;
			break;
		case 's':
			if (parse_ull(optarg, &v) < 0 || v < MIN_FRAME || v > MAX_FRAME)
				goto bad;
			o.size = (unsigned)v;
			break;
		case 'f':
			if (parse_ull(optarg, &v) < 0 || v > 0xffff - 10000)
				goto bad;
			o.flow = (uint32_t)v;
			break;
		case OPT_DST_MAC:
			if (parse_mac(optarg, o.dst_mac) < 0)
				goto bad;
			break;
		case OPT_SRC_MAC:
			if (parse_mac(optarg, o.src_mac) < 0)
				goto bad;
			break;
		case OPT_WAIT_FILE:
			o.wait_file = optarg;
			break;
		case OPT_HOLD:
			o.hold_s = strtod(optarg, NULL);
			if (o.hold_s < 0)
				goto bad;
			break;
		case OPT_PPS:
			o.pps = strtod(optarg, NULL);
			if (o.pps < 0)
				goto bad;
			break;
		case OPT_BLOCKING:
			o.blocking = 1;
			break;
		case OPT_SNDBUF:
			if (parse_ull(optarg, &v) < 0 || v > INT_MAX)
				goto bad;
			o.sndbuf = (long)v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		continue;
	bad:
		fprintf(stderr, "tapwrite: bad value for option: %s\n", optarg);
		usage(stderr);
		return 2;
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | (o.blocking ? 0 : O_NONBLOCK));
	if (fd < 0) {
		fprintf(stderr, "tapwrite: /dev/net/tun: %s (is the tun module loaded?)\n", strerror(errno));
		return 1;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", o.tap);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		fprintf(stderr, "tapwrite: TUNSETIFF %s: %s\n", o.tap, strerror(errno));
		return 1;
	}
	if (o.sndbuf >= 0) {
		int sb = (int)o.sndbuf;
		if (ioctl(fd, TUNSETSNDBUF, &sb) < 0) {
			fprintf(stderr, "tapwrite: TUNSETSNDBUF: %s\n", strerror(errno));
			return 1;
		}
	}
	int sndbuf = -1;
	if (ioctl(fd, TUNGETSNDBUF, &sndbuf) < 0)
		sndbuf = -1;
	int ifindex = 0;
	int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sk >= 0) {
		struct ifreq q;
		memset(&q, 0, sizeof q);
		snprintf(q.ifr_name, sizeof q.ifr_name, "%s", ifr.ifr_name);
		if (ioctl(sk, SIOCGIFINDEX, &q) == 0)
			ifindex = q.ifr_ifindex;
		close(sk);
	}
	fprintf(stderr, "tapwrite: ready tap=%s ifindex=%d nonblocking=%s sndbuf=%d size=%u count=%llu\n", ifr.ifr_name, ifindex,
		o.blocking ? "no" : "yes", sndbuf, o.size, o.count);
	if (o.wait_file)
		while (access(o.wait_file, F_OK) != 0)
			sleep_s(0.005);

	uint8_t *f = malloc(o.size);
	if (!f)
		return 1;
	frame_template(f, o.size, o.dst_mac, o.src_mac, o.src_ip, o.dst_ip, o.flow);
	unsigned long long written = 0, bytes = 0, errors = 0, retries = 0;
	int first_errno = 0;
	double t0 = now_s(), last_progress = t0;
	for (uint64_t seq = 0; seq < o.count;) {
		if (o.pps > 0) {
			double due = t0 + (double)seq / o.pps;
			double now = now_s();
			if (due > now)
				sleep_s(due - now);
		}
		build_frame(f, o.size, seq);
		ssize_t n = write(fd, f, o.size);
		if (n == (ssize_t)o.size) {
			written++;
			bytes += (unsigned long long)n;
			seq++;
			last_progress = now_s();
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) && now_s() - last_progress < STALL_S) {
			retries++;
			sleep_s(50e-6);
			continue;
		}
		/* Any other answer: counted, and the frame is not written again. */
		errors++;
		if (!first_errno)
			first_errno = n < 0 ? errno : EIO;
		if (errors <= 3)
			fprintf(stderr, "tapwrite: write seq %llu: %s\n", (unsigned long long)seq, n < 0 ? strerror(errno) : "short write");
		seq++;
	}
	double dt = now_s() - t0;
	printf("{\"written\":%llu,\"bytes\":%llu,\"errors\":%llu,\"retries\":%llu,\"firstErrno\":%d,\"seconds\":%.6f,\"pps\":%.0f,"
	       "\"nonblocking\":%s,\"sndbuf\":%d,\"size\":%u,\"flow\":%u,\"ifindex\":%d}\n",
	       written, bytes, errors, retries, first_errno, dt, dt > 0 ? (double)written / dt : 0.0, o.blocking ? "false" : "true", sndbuf,
	       o.size, o.flow, ifindex);
	fflush(stdout);
	/* The tap lives as long as this file is open: frames in flight drain, and the caller can
	 * read the tap's counters and detach XDP before it goes away. */
	sleep_s(o.hold_s);
	free(f);
	close(fd);
	return written == o.count ? 0 : 1;
}
