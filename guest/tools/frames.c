/*
 * frames: send or receive zcnic test frames (docs/test-frame.md) on an interface
 * through an AF_PACKET raw socket.
 *
 *   frames -i IFACE -n COUNT -s SIZE -f FLOW [--dst-mac MAC]       send
 *   frames -r -i IFACE -n COUNT -w SECONDS                          receive and verify
 *
 * The sender builds frame seq in chunk (seq % --buf-frames) of a page-aligned send buffer
 * (chunks of 4096 bytes), so that --buf-map can tell a device where that user memory lies:
 * the counterpart of xdpsock --umem-map for the copy path (a packet socket copies each frame
 * into a kernel skb, so the device should never find a frame in these pages).
 *
 * Ends with one JSON line on stdout:
 *   {"sent":N,"seconds":S,"pps":P}
 *   {"received":N,"verified":N,"corrupt":N,"duplicates":N,"gaps":N,"out_of_order":N}
 * Everything else goes to stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testframe.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

#define ETH_HLEN_ 14
#define MAX_FLOWS 256
/* Sending gives up when the TX queue has not moved for this long. */
#define STALL_S 5

struct opts {
	const char *iface;
	unsigned long long count;
	unsigned size;
	uint32_t flow;
	uint8_t dst_mac[6];
	uint32_t src_ip, dst_ip; /* network order */
	int receive;
	double wait_s;
	int verbose;
	unsigned buf_frames;   /* chunks in the send buffer */
	const char *buf_map;   /* write the send buffer's guest-physical pages here */
	const char *wait_file; /* send once this file exists */
	long long corrupt_seq; /* flip the last byte of this frame after building it (-1: none) */
	unsigned long long first_seq; /* sequence number of the first frame sent */
};

/* One chunk of the send buffer per frame: a page, or more for jumbo sizes. */
#define BUF_CHUNK 4096u

static void usage(FILE *f)
{
	fprintf(f,
		"usage: frames [-i IFACE] [-n COUNT] [-s SIZE] [-f FLOW] [--dst-mac MAC]\n"
		"              [--src-ip A.B.C.D] [--dst-ip A.B.C.D]          send COUNT test frames\n"
		"       frames -r [-i IFACE] [-n COUNT] [-w SECONDS]          receive and verify\n"
		"\n"
		"  -i IFACE        interface (default eth0)\n"
		"  -n COUNT        frames to send, or to wait for (default 1000)\n"
		"  -s SIZE         frame length in bytes without FCS, 60..MTU+14 (default 128)\n"
		"  -f FLOW         flow id: UDP source port 10000+FLOW, flow field (default 0)\n"
		"  --dst-mac MAC   destination MAC (default ff:ff:ff:ff:ff:ff)\n"
		"  --src-ip/--dst-ip  IPv4 addresses (default 198.18.0.2 -> 198.18.0.1, the guest's side)\n"
		"  --buf-frames N  send buffer of N chunks of 4096 bytes; frame seq is built in chunk\n"
		"                  seq %% N (default 1)\n"
		"  --buf-map FILE  write '<buffer_offset_hex> <phys_addr_hex>' for every page of the\n"
		"                  send buffer (from /proc/self/pagemap; the buffer is locked)\n"
		"  --wait-file PATH  print 'frames: ready' on stderr, then wait until PATH exists\n"
		"                  before sending (time to hand the map to the device)\n"
		"  --first-seq N   number the frames from N (default 0): a trailer after a stream\n"
		"  --corrupt-seq N  flip the last byte of frame N after building it: a negative control\n"
		"                  that the receiver's verification must catch\n"
		"  -r              receive mode: count and verify frames of the test format\n"
		"  -w SECONDS      receive mode: give up after this long (default 10)\n"
		"  -v              more chatter on stderr\n"
		"  -h              this help\n"
		"Frame layout: docs/test-frame.md. Prints one JSON line with the totals.\n");
}

static int open_socket(const char *iface, int proto, int *ifindex, uint8_t mac[6], unsigned *mtu)
{
	int fd = socket(AF_PACKET, SOCK_RAW, htons((uint16_t)proto));
	if (fd < 0) {
		perror("frames: socket(AF_PACKET)");
		return -1;
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", iface);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
		fprintf(stderr, "frames: no interface %s: %s\n", iface, strerror(errno));
		close(fd);
		return -1;
	}
	*ifindex = ifr.ifr_ifindex;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) == 0)
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	if (ioctl(fd, SIOCGIFMTU, &ifr) == 0)
		*mtu = (unsigned)ifr.ifr_mtu;
	struct sockaddr_ll sll;
	memset(&sll, 0, sizeof sll);
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons((uint16_t)proto);
	sll.sll_ifindex = *ifindex;
	if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
		perror("frames: bind");
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The guest-physical address of every page of the send buffer, as xdpsock --umem-map writes
 * them for its umem: '<offset_hex> <phys_hex>' per page. The pages are locked first so that
 * the addresses stay valid while the device looks for them.
 */
static int write_buf_map(const char *path, uint8_t *buf, size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	if (mlock(buf, len) < 0) {
		perror("frames: --buf-map: mlock");
		return -1;
	}
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		perror("frames: --buf-map: /proc/self/pagemap");
		return -1;
	}
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "frames: --buf-map: %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	int rc = 0;
	for (size_t off = 0; off < len; off += (size_t)page) {
		uint64_t vpn = ((uintptr_t)buf + off) / (uint64_t)page, ent;
		if (pread(fd, &ent, sizeof ent, (off_t)(vpn * sizeof ent)) != (ssize_t)sizeof ent) {
			fprintf(stderr, "frames: --buf-map: reading /proc/self/pagemap: %s\n", strerror(errno));
			rc = -1;
			break;
		}
		uint64_t pfn = ent & ((1ULL << 55) - 1);
		if (!(ent >> 63) || pfn == 0) {
			fprintf(stderr, "frames: --buf-map: page at offset 0x%zx: %s\n", off,
				!(ent >> 63) ? "not present" : "frame number hidden (needs CAP_SYS_ADMIN)");
			rc = -1;
			break;
		}
		fprintf(f, "%zx %" PRIx64 "\n", off, pfn * (uint64_t)page);
	}
	if (fclose(f) != 0 && rc == 0) {
		fprintf(stderr, "frames: --buf-map: writing %s: %s\n", path, strerror(errno));
		rc = -1;
	}
	close(fd);
	return rc;
}

static int do_send(const struct opts *o)
{
	int ifindex;
	uint8_t mac[6] = {0};
	unsigned mtu = 1500;
	/* Protocol 0: a send-only socket, so the kernel does not queue every frame back to us. */
	int fd = open_socket(o->iface, 0, &ifindex, mac, &mtu);
	if (fd < 0)
		return 1;
	if (o->size > mtu + ETH_HLEN_) {
		fprintf(stderr, "frames: size %u exceeds MTU %u + 14\n", o->size, mtu);
		return 1;
	}
	size_t chunk = (o->size + BUF_CHUNK - 1) / BUF_CHUNK * BUF_CHUNK;
	size_t buf_len = chunk * o->buf_frames;
	uint8_t *buf = mmap(NULL, buf_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (buf == MAP_FAILED) {
		perror("frames: mmap send buffer");
		return 1;
	}
	for (unsigned i = 0; i < o->buf_frames; i++)
		frame_template(buf + i * chunk, o->size, o->dst_mac, mac, o->src_ip, o->dst_ip, o->flow);
	if (o->buf_map && write_buf_map(o->buf_map, buf, buf_len) < 0)
		return 1;
	if (o->wait_file) {
		fprintf(stderr, "frames: ready iface=%s size=%u count=%llu buffer=%zu bytes\n", o->iface, o->size, o->count, buf_len);
		while (access(o->wait_file, F_OK) != 0) {
			struct timespec ts = {0, 5 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	unsigned long long sent = 0, retries = 0;
	double t0 = now_s(), last_progress = t0;
	for (uint64_t seq = o->first_seq; seq < o->first_seq + o->count;) {
		uint8_t *f = buf + (size_t)(seq % o->buf_frames) * chunk;
		build_frame(f, o->size, seq);
		if ((long long)seq == o->corrupt_seq)
			f[o->size - 1] ^= 0xff;
		ssize_t n = send(fd, f, o->size, 0);
		if (n == (ssize_t)o->size) {
			sent++;
			seq++;
			last_progress = now_s();
			continue;
		}
		if (n < 0 && (errno == ENOBUFS || errno == EAGAIN || errno == EINTR)) {
			/* Queue full (the qdisc dropped it): back off briefly and send the same seq again,
			 * unless the device has stopped taking frames altogether. */
			if (now_s() - last_progress > STALL_S) {
				fprintf(stderr, "frames: no progress for %d s at seq %llu: the device is not consuming TX\n", STALL_S,
					(unsigned long long)seq);
				break;
			}
			retries++;
			struct timespec ts = {0, 50 * 1000};
			nanosleep(&ts, NULL);
			continue;
		}
		fprintf(stderr, "frames: send seq %llu: %s\n", (unsigned long long)seq, n < 0 ? strerror(errno) : "short write");
		break;
	}
	double dt = now_s() - t0;
	if (o->verbose || retries)
		fprintf(stderr, "frames: sent %llu frames of %u bytes on %s in %.3f s (%llu retries)\n", sent, o->size, o->iface, dt, retries);
	printf("{\"sent\":%llu,\"seconds\":%.6f,\"pps\":%.0f}\n", sent, dt, dt > 0 ? (double)sent / dt : 0.0);
	fflush(stdout);
	munmap(buf, buf_len);
	close(fd);
	return sent == o->count ? 0 : 1;
}

static struct flow_state flows[MAX_FLOWS];

/* Is this one of ours at all? IPv4 + UDP to port 9000; verification decides the rest. */
static int is_test_frame(const uint8_t *f, size_t len)
{
	return len >= OFF_MAGIC && get16(f + 12) == ETHERTYPE_IP && (f[OFF_IP] >> 4) == 4 && f[OFF_IP + 9] == IPPROTO_UDP &&
	       get16(f + OFF_UDP + 2) == UDP_DPORT;
}

static int verify_frame(const uint8_t *f, size_t len)
{
	const uint8_t *ip = f + OFF_IP;
	if (len < MIN_FRAME || ip[0] != 0x45)
		return 0;
	if (get16(ip + 2) != len - ETH_HLEN_ || get16(f + OFF_UDP + 4) != len - OFF_UDP)
		return 0;
	if (ip_checksum(ip) != 0)
		return 0;
	if (memcmp(f + OFF_MAGIC, TEST_FRAME_MAGIC, 4) != 0)
		return 0;
	uint64_t seq = get64le(f + OFF_SEQ);
	if (get16(ip + 4) != (seq & 0xffff))
		return 0;
	for (size_t i = OFF_PATTERN; i < len; i++)
		if (f[i] != (uint8_t)((seq + i) & 0xff))
			return 0;
	return 1;
}

static int do_receive(const struct opts *o)
{
	int ifindex;
	uint8_t mac[6];
	unsigned mtu = 1500;
	int fd = open_socket(o->iface, ETH_P_ALL, &ifindex, mac, &mtu);
	if (fd < 0)
		return 1;
	int one = 1;
	/* Our own transmissions (another frames process on this interface) are not arrivals. */
	if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0 && o->verbose)
		perror("frames: PACKET_IGNORE_OUTGOING");
	int rcvbuf = 16 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);

	static uint8_t buf[65536];
	unsigned long long received = 0, verified = 0, corrupt = 0, dups = 0, ooo = 0, untracked = 0;
	double deadline = now_s() + o->wait_s;
	while (received < o->count) {
		double left = deadline - now_s();
		if (left <= 0)
			break;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int pr = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (pr < 0 && errno != EINTR) {
			perror("frames: poll");
			break;
		}
		if (pr <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof buf, MSG_TRUNC | MSG_DONTWAIT);
		if (n < 0)
			continue;
		size_t len = (size_t)n > sizeof buf ? sizeof buf : (size_t)n;
		if (!is_test_frame(buf, len))
			continue;
		received++;
		if ((size_t)n > sizeof buf || !verify_frame(buf, len)) {
			corrupt++;
			continue;
		}
		verified++;
		struct flow_state *fs = flow_get(flows, MAX_FLOWS, get32le(buf + OFF_FLOW));
		uint64_t seq = get64le(buf + OFF_SEQ);
		int m = fs ? flow_mark(fs, seq) : -1;
		if (m < 0) {
			untracked++;
			continue;
		}
		if (m == 1) {
			dups++;
			continue;
		}
		if (fs->any && seq < fs->highest)
			ooo++;
		if (!fs->any || seq > fs->highest)
			fs->highest = seq;
		fs->any = 1;
	}
	/* Gaps: per flow, sequence numbers from 0 to the highest seen that never arrived. */
	unsigned long long gaps = 0;
	for (int i = 0; i < MAX_FLOWS && flows[i].used; i++) {
		if (!flows[i].any)
			continue;
		for (uint64_t s = 0; s <= flows[i].highest; s++)
			if (!(flows[i].seen[s / 8] & (1u << (s & 7))))
				gaps++;
		free(flows[i].seen);
	}
	if (o->verbose || untracked)
		fprintf(stderr, "frames: %llu frames with untrackable flow/seq\n", untracked);
	printf("{\"received\":%llu,\"verified\":%llu,\"corrupt\":%llu,\"duplicates\":%llu,\"gaps\":%llu,\"out_of_order\":%llu}\n",
	       received, verified, corrupt, dups, gaps, ooo);
	fflush(stdout);
	close(fd);
	return received >= o->count && corrupt == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct opts o = {.iface = "eth0", .count = 1000, .size = 128, .flow = 0, .wait_s = 10, .buf_frames = 1, .corrupt_seq = -1};
	memset(o.dst_mac, 0xff, 6);
	inet_pton(AF_INET, "198.18.0.2", &o.src_ip);
	inet_pton(AF_INET, "198.18.0.1", &o.dst_ip);
	enum { OPT_DST_MAC = 256, OPT_SRC_IP, OPT_DST_IP, OPT_BUF_FRAMES, OPT_BUF_MAP, OPT_WAIT_FILE, OPT_CORRUPT_SEQ, OPT_FIRST_SEQ };
	static const struct option longopts[] = {
		{"iface", required_argument, 0, 'i'}, {"count", required_argument, 0, 'n'},
		{"size", required_argument, 0, 's'},  {"flow", required_argument, 0, 'f'},
		{"receive", no_argument, 0, 'r'},     {"wait", required_argument, 0, 'w'},
		{"dst-mac", required_argument, 0, OPT_DST_MAC}, {"src-ip", required_argument, 0, OPT_SRC_IP},
		{"dst-ip", required_argument, 0, OPT_DST_IP},   {"verbose", no_argument, 0, 'v'},
		{"buf-frames", required_argument, 0, OPT_BUF_FRAMES}, {"buf-map", required_argument, 0, OPT_BUF_MAP},
		{"wait-file", required_argument, 0, OPT_WAIT_FILE},
		{"corrupt-seq", required_argument, 0, OPT_CORRUPT_SEQ}, {"first-seq", required_argument, 0, OPT_FIRST_SEQ},
		{"help", no_argument, 0, 'h'},        {0, 0, 0, 0},
	};
	int c;
	unsigned long long v;
	while ((c = getopt_long(argc, argv, "i:n:s:f:rw:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			o.iface = optarg;
			break;
		case 'n':
			if (parse_ull(optarg, &o.count) < 0)
				goto bad;
			break;
		case 's':
			if (parse_ull(optarg, &v) < 0 || v < MIN_FRAME || v > 65535)
				goto bad;
			o.size = (unsigned)v;
			break;
		case 'f':
			if (parse_ull(optarg, &v) < 0 || v > 0xffffffffULL)
				goto bad;
			o.flow = (uint32_t)v;
			break;
		case 'r':
			o.receive = 1;
			break;
		case 'w':
			o.wait_s = strtod(optarg, NULL);
			if (o.wait_s <= 0)
				goto bad;
			break;
		case 'v':
			o.verbose = 1;
			break;
		case OPT_DST_MAC:
			if (parse_mac(optarg, o.dst_mac) < 0)
				goto bad;
			break;
		case OPT_SRC_IP:
			if (inet_pton(AF_INET, optarg, &o.src_ip) != 1)
				goto bad;
			break;
		case OPT_DST_IP:
			if (inet_pton(AF_INET, optarg, &o.dst_ip) != 1)
				goto bad;
			break;
		case OPT_BUF_FRAMES:
			if (parse_ull(optarg, &v) < 0 || v < 1 || v > 65536)
				goto bad;
			o.buf_frames = (unsigned)v;
			break;
		case OPT_BUF_MAP:
			o.buf_map = optarg;
			break;
		case OPT_WAIT_FILE:
			o.wait_file = optarg;
			break;
		case OPT_CORRUPT_SEQ:
			if (parse_ull(optarg, &v) < 0 || v > 0x7fffffffffffffffULL)
				goto bad;
			o.corrupt_seq = (long long)v;
			break;
		case OPT_FIRST_SEQ:
			if (parse_ull(optarg, &v) < 0 || v > 0x7fffffffffffffffULL)
				goto bad;
			o.first_seq = v;
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
		fprintf(stderr, "frames: bad value for -%c: %s\n", c < 256 ? c : '-', optarg);
		usage(stderr);
		return 2;
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (o.flow > 0xffff - UDP_SPORT_BASE && !o.receive)
		fprintf(stderr, "frames: flow %u does not fit the UDP source port; it wraps\n", o.flow);
	return o.receive ? do_receive(&o) : do_send(&o);
}
