/*
 * udpcount: receive zcnic test frames (docs/test-frame.md) on a UDP socket, verify every
 * payload and count what arrived, what the socket dropped, and on which CPU the kernel
 * delivered them.
 *
 *   udpcount [-b ADDR] [-p PORT] [-n COUNT] [-w SECONDS] [--idle SECONDS] [--cpu N]
 *            [--connect ADDR:PORT]
 *
 * Binds ADDR:PORT (default 198.18.0.2:9000), prints "udpcount: ready ..." on stderr, and
 * receives until COUNT test datagrams arrived, or nothing arrived for --idle seconds after the
 * first one, or -w SECONDS passed. The UDP payload of a test frame is the frame from offset 42:
 * magic "ZCNC", flow (u32 LE), seq (u64 LE), then byte (seq + 42 + j) & 0xff at payload
 * offset j >= 16. Ends with one JSON line on stdout:
 *   {"received":N,"verified":N,"corrupt":N,"foreign":N,"duplicates":N,"outOfOrder":N,"gaps":N,
 *    "highestSeq":N,"socketDrops":N,"incomingCpu":N,"seconds":S,"pps":P,"bytes":N,"rcvbuf":N}
 * socketDrops: the socket's drop counter (sk_drops: the "drops" column of /proc/net/udp, read
 * at the end, and the last SO_RXQ_OVFL value), i.e. datagrams the kernel delivered to this
 * socket but had no room for.
 * incomingCpu: SO_INCOMING_CPU, the CPU that ran the receive path for the last datagram; the
 * kernel records it for connected UDP sockets only (__udp_queue_rcv_skb()), hence --connect
 * (the sender's address: the socket then takes datagrams from it alone); -1 otherwise.
 * seconds/pps: first to last datagram.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testframe.h"

#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif
#ifndef SO_INCOMING_CPU
#define SO_INCOMING_CPU 49
#endif

#define FRAME_PAYLOAD_OFFSET 42 /* where the UDP payload sits in the frame */
#define PAYLOAD_MIN 18          /* frame minimum 60 - 42 */
#define BATCH 64
#define MAX_FLOWS 16

static struct flow_state flows[MAX_FLOWS];

static int verify_payload(const uint8_t *p, size_t len)
{
	if (len < PAYLOAD_MIN || memcmp(p, "ZCNC", 4) != 0)
		return 0;
	uint64_t seq = get64le(p + 8);
	for (size_t j = 16; j < len; j++)
		if (p[j] != (uint8_t)((seq + FRAME_PAYLOAD_OFFSET + j) & 0xff))
			return 0;
	return 1;
}

/* The "drops" column of our socket's line in /proc/net/udp (found by inode), or -1. */
static long long proc_udp_drops(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	FILE *f = fopen("/proc/net/udp", "r");
	if (!f)
		return -1;
	char line[512];
	long long drops = -1;
	while (fgets(line, sizeof line, f)) {
		unsigned long long inode, d;
		/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops */
		if (sscanf(line, " %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %*s %*s %llu", &inode, &d) == 2 && inode == (unsigned long long)st.st_ino) {
			drops = (long long)d;
			break;
		}
	}
	fclose(f);
	return drops;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: udpcount [-b ADDR] [-p PORT] [-n COUNT] [-w SECONDS] [--idle SECONDS] [--cpu N] [--rcvbuf BYTES]\n"
		   "  -b ADDR          local address (default 198.18.0.2)\n"
		   "  -p PORT          local UDP port (default 9000)\n"
		   "  -n COUNT         stop after COUNT test datagrams (default: no limit)\n"
		   "  -w SECONDS       give up after this long (default 30)\n"
		   "  --idle SECONDS   stop when nothing arrived for this long after the first (default 2)\n"
		   "  --cpu N          pin this process to CPU N\n"
		   "  --rcvbuf BYTES   SO_RCVBUFFORCE (default 16 MiB)\n"
		   "  --connect A:P    connect to the sender A:P (needed for incomingCpu)\n"
		   "Prints one JSON line with the totals.\n");
}

int main(int argc, char **argv)
{
	const char *addr = "198.18.0.2";
	unsigned long port = 9000, count = 0;
	double wait_s = 30, idle_s = 2;
	int cpu = -1, rcvbuf = 16 << 20;
	const char *peer = NULL;
	enum { OPT_IDLE = 256, OPT_CPU, OPT_RCVBUF, OPT_CONNECT };
	static const struct option longopts[] = {
		{"bind", required_argument, 0, 'b'}, {"port", required_argument, 0, 'p'},
		{"count", required_argument, 0, 'n'}, {"wait", required_argument, 0, 'w'},
		{"idle", required_argument, 0, OPT_IDLE}, {"cpu", required_argument, 0, OPT_CPU},
		{"rcvbuf", required_argument, 0, OPT_RCVBUF}, {"help", no_argument, 0, 'h'},
		{"connect", required_argument, 0, OPT_CONNECT},
		{0, 0, 0, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "b:p:n:w:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			addr = optarg;
			break;
		case 'p':
			port = strtoul(optarg, NULL, 0);
			break;
		case 'n':
			count = strtoul(optarg, NULL, 0);
			break;
		case 'w':
			wait_s = strtod(optarg, NULL);
			break;
		case OPT_IDLE:
			idle_s = strtod(optarg, NULL);
			break;
		case OPT_CPU:
			cpu = atoi(optarg);
			break;
		case OPT_RCVBUF:
			rcvbuf = atoi(optarg);
			break;
		case OPT_CONNECT:
			peer = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || port == 0 || port > 65535 || wait_s <= 0 || idle_s <= 0) {
		usage(stderr);
		return 2;
	}
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof set, &set) < 0)
			fprintf(stderr, "udpcount: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
	}

	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("udpcount: socket");
		return 1;
	}
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	if (setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one) < 0)
		perror("udpcount: SO_RXQ_OVFL");
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		fprintf(stderr, "udpcount: bad address %s\n", addr);
		return 2;
	}
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
		fprintf(stderr, "udpcount: bind %s:%lu: %s\n", addr, port, strerror(errno));
		return 1;
	}
	if (peer) {
		char host[64];
		const char *colon = strrchr(peer, ':');
		struct sockaddr_in to = {.sin_family = AF_INET};
		if (!colon || (size_t)(colon - peer) >= sizeof host) {
			fprintf(stderr, "udpcount: --connect wants ADDR:PORT\n");
			return 2;
		}
		memcpy(host, peer, (size_t)(colon - peer));
		host[colon - peer] = 0;
		to.sin_port = htons((uint16_t)strtoul(colon + 1, NULL, 10));
		if (inet_pton(AF_INET, host, &to.sin_addr) != 1 || connect(fd, (struct sockaddr *)&to, sizeof to) < 0) {
			fprintf(stderr, "udpcount: connect %s: %s\n", peer, strerror(errno));
			return 1;
		}
	}
	int got_rcvbuf = 0;
	socklen_t sl = sizeof got_rcvbuf;
	getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got_rcvbuf, &sl);
	fprintf(stderr, "udpcount: ready %s:%lu cpu=%d rcvbuf=%d peer=%s\n", addr, port, cpu, got_rcvbuf, peer ? peer : "any");

	static uint8_t bufs[BATCH][2048];
	static char ctrl[BATCH][CMSG_SPACE(sizeof(uint32_t))];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	unsigned long long received = 0, verified = 0, corrupt = 0, foreign = 0, dups = 0, ooo = 0, bytes = 0;
	uint32_t drops = 0;
	double start = now_s(), first = 0, last = 0;
	for (;;) {
		double t = now_s();
		if (count && received >= count)
			break;
		if (t - start >= wait_s)
			break;
		if (first > 0 && t - last >= idle_s)
			break;
		double left = first > 0 ? idle_s - (t - last) : wait_s - (t - start);
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int pr = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (pr <= 0)
			continue;
		for (int i = 0; i < BATCH; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = sizeof bufs[i];
			memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			msgs[i].msg_hdr.msg_control = ctrl[i];
			msgs[i].msg_hdr.msg_controllen = sizeof ctrl[i];
		}
		int n = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			continue;
		last = now_s();
		if (first == 0)
			first = last;
		for (int i = 0; i < n; i++) {
			for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msgs[i].msg_hdr); cm; cm = CMSG_NXTHDR(&msgs[i].msg_hdr, cm))
				if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL)
					memcpy(&drops, CMSG_DATA(cm), sizeof drops);
			const uint8_t *p = bufs[i];
			size_t len = msgs[i].msg_len;
			if (len < 4 || memcmp(p, "ZCNC", 4) != 0) {
				foreign++;
				continue;
			}
			received++;
			bytes += len;
			if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || !verify_payload(p, len)) {
				corrupt++;
				continue;
			}
			verified++;
			struct flow_state *f = flow_get(flows, MAX_FLOWS, get32le(p + 4));
			uint64_t seq = get64le(p + 8);
			int m = f ? flow_mark(f, seq) : -1;
			if (m < 0)
				continue;
			if (m == 1) {
				dups++;
				continue;
			}
			if (f->any && seq < f->highest)
				ooo++;
			if (!f->any || seq > f->highest)
				f->highest = seq;
			f->any = 1;
		}
	}
	/* The drop counter as of now, even when the last datagram came before the last drop. */
	long long proc_drops = proc_udp_drops(fd);
	if (proc_drops > (long long)drops)
		drops = (uint32_t)proc_drops;
	int cpu_in = -1;
	sl = sizeof cpu_in;
	getsockopt(fd, SOL_SOCKET, SO_INCOMING_CPU, &cpu_in, &sl);
	unsigned long long gaps = 0, highest = 0;
	for (int i = 0; i < MAX_FLOWS && flows[i].used; i++) {
		if (!flows[i].any)
			continue;
		if (flows[i].highest > highest)
			highest = flows[i].highest;
		for (uint64_t s = 0; s <= flows[i].highest; s++)
			if (!(flows[i].seen[s / 8] & (1u << (s & 7))))
				gaps++;
		free(flows[i].seen);
	}
	double span = last - first;
	printf("{\"received\":%llu,\"verified\":%llu,\"corrupt\":%llu,\"foreign\":%llu,\"duplicates\":%llu,\"outOfOrder\":%llu,"
	       "\"gaps\":%llu,\"highestSeq\":%llu,\"socketDrops\":%u,\"incomingCpu\":%d,\"seconds\":%.6f,\"pps\":%.0f,\"bytes\":%llu,"
	       "\"rcvbuf\":%d}\n",
	       received, verified, corrupt, foreign, dups, ooo, gaps, highest, drops, cpu_in, span,
	       span > 0 ? (double)received / span : 0.0, bytes, got_rcvbuf);
	fflush(stdout);
	close(fd);
	return (count == 0 || received >= count) && corrupt == 0 ? 0 : 1;
}
