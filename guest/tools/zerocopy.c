/*
 * zerocopy: MSG_ZEROCOPY senders (TCP and UDP) against the zcnic netns peer (harness/peer.ts),
 * and the AF_PACKET question of seed 001.
 *
 *   zerocopy tcp|udp [-a ADDR] [-p PORT] [-s SIZE] [-b BYTES] [-z] [-g GSO]
 *                    [--buf-map PATH] [--wait-file PATH]
 *   zerocopy packet -i IFACE
 *
 * tcp/udp: sends BYTES (default 8 MiB) in sends of SIZE bytes (1024..65536; UDP at most 65000,
 * in datagrams of GSO bytes through UDP_SEGMENT when SIZE is larger than GSO, default 1400)
 * from a locked, page-aligned 1 MiB user buffer filled with a pseudo-random pattern, walked as
 * a ring: the stream's byte S (TCP: sequence number ISN + 1 + S; UDP: the payload bytes of the
 * datagrams before it) is always sent from buffer offset S mod 1 MiB, which is what the device's
 * zero-copy proof checks every payload byte against (a send that would cross the end of the
 * buffer stops there, and a partial send resumes where it stopped). With -z the socket has SO_ZEROCOPY and every send has MSG_ZEROCOPY; completions
 * are read from MSG_ERRQUEUE (SO_EE_ORIGIN_ZEROCOPY, ids ee_info..ee_data) and every send id
 * must complete exactly once, with no gaps: duplicates and ids never sent are counted and the
 * missing ones reported. Completions flagged SO_EE_CODE_ZEROCOPY_COPIED (the kernel copied after
 * all) are counted per send. A SHA-256 of every byte sent is compared with the peer's, which the
 * peer answers in band (TCP: a line after our shutdown; UDP: the answer to an end marker).
 * CPU time (getrusage: user + system) of the sending loop is reported per GiB.
 *
 * --buf-map PATH writes "<offset_hex> <phys_hex>" per page of the user buffer (from
 * /proc/self/pagemap) for the device's zero-copy proof (`zcnic_ctl zc-map stream tcp|udp`); --wait-file PATH then waits until PATH
 * exists before sending (time to hand the map to the device).
 *
 * packet: opens an AF_PACKET socket on IFACE, asks for SO_ZEROCOPY (the seed's RFC, never merged
 * in that form) and sends one frame with MSG_ZEROCOPY; reports what the kernel answered.
 *
 * Ends with one JSON line on stdout; everything else goes to stderr. Exit status 0 when the run
 * itself worked (the verdict is the caller's), 1 on an error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/errqueue.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_ZEROCOPY
#define SO_ZEROCOPY 60
#endif
#ifndef MSG_ZEROCOPY
#define MSG_ZEROCOPY 0x4000000
#endif
#ifndef SO_EE_ORIGIN_ZEROCOPY
#define SO_EE_ORIGIN_ZEROCOPY 5
#endif
#ifndef SO_EE_CODE_ZEROCOPY_COPIED
#define SO_EE_CODE_ZEROCOPY_COPIED 1
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define BUF_SIZE (1u << 20)
#define MAX_SENDS (1u << 22)
#define END_MARKER "zcnic-peer-end"

/* ---- SHA-256 (FIPS 180-4) ---------------------------------------------------------------- */

struct sha256 {
	uint32_t h[8];
	uint64_t length;
	uint8_t block[64];
	size_t used;
};

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_init(struct sha256 *s)
{
	static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
				       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	memcpy(s->h, h0, sizeof h0);
	s->length = 0;
	s->used = 0;
}

static void sha256_block(struct sha256 *s, const uint8_t *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, h;
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
	e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
		uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
	}
	s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
	s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha256_update(struct sha256 *s, const uint8_t *p, size_t n)
{
	s->length += n;
	if (s->used) {
		size_t take = 64 - s->used < n ? 64 - s->used : n;
		memcpy(s->block + s->used, p, take);
		s->used += take, p += take, n -= take;
		if (s->used < 64)
			return;
		sha256_block(s, s->block);
		s->used = 0;
	}
	for (; n >= 64; p += 64, n -= 64)
		sha256_block(s, p);
	memcpy(s->block, p, n);
	s->used = n;
}

static void sha256_hex(struct sha256 *s, char out[65])
{
	uint64_t bits = s->length * 8;
	uint8_t pad[72] = {0x80};
	size_t padlen = (s->used < 56 ? 56 : 120) - s->used;
	for (int i = 0; i < 8; i++)
		pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
	sha256_update(s, pad, padlen + 8);
	for (int i = 0; i < 8; i++)
		sprintf(out + 8 * i, "%08x", s->h[i]);
}

/* ---- options ---------------------------------------------------------------------------- */

static const char *mode;
static const char *addr = "198.18.0.1";
static int port = 5201;
static size_t size = 65536;
static unsigned long long total = 8ull << 20;
static int zerocopy;
static int gso = 1400;
static const char *buf_map;
static const char *wait_file;
static const char *iface;

static void usage(void)
{
	fprintf(stderr,
		"usage: zerocopy tcp|udp [-a ADDR] [-p PORT] [-s SIZE] [-b BYTES] [-z] [-g GSO]\n"
		"                        [--buf-map PATH] [--wait-file PATH]\n"
		"       zerocopy packet -i IFACE\n");
	exit(1);
}

static unsigned long long number(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-')
		usage();
	return v;
}

/* ---- the user buffer -------------------------------------------------------------------- */

static uint8_t *buf;

static int write_buf_map(const char *path)
{
	long page = sysconf(_SC_PAGESIZE);
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	FILE *f = fopen(path, "w");
	int rc = 0;
	if (fd < 0 || !f) {
		fprintf(stderr, "zerocopy: --buf-map: %s\n", strerror(errno));
		return -1;
	}
	for (size_t off = 0; off < BUF_SIZE; off += (size_t)page) {
		uint64_t vpn = ((uintptr_t)buf + off) / (uint64_t)page, ent;
		if (pread(fd, &ent, sizeof ent, (off_t)(vpn * sizeof ent)) != (ssize_t)sizeof ent ||
		    !(ent >> 63) || (ent & ((1ULL << 55) - 1)) == 0) {
			fprintf(stderr, "zerocopy: --buf-map: no frame number for offset 0x%zx\n", off);
			rc = -1;
			break;
		}
		fprintf(f, "%zx %" PRIx64 "\n", off, (uint64_t)((ent & ((1ULL << 55) - 1)) * (uint64_t)page));
	}
	close(fd);
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

static void wait_for_file(const char *path)
{
	struct stat st;
	fprintf(stderr, "zerocopy: ready\n");
	for (int i = 0; i < 600 && stat(path, &st) != 0; i++)
		usleep(100000);
}

/* ---- completions ------------------------------------------------------------------------ */

static uint8_t *done;      /* per send id: completions seen */
static uint8_t *copied_id; /* per send id: flagged ZEROCOPY_COPIED */
static uint32_t sent_ids;  /* ids handed out (sends that took bytes with MSG_ZEROCOPY) */
static unsigned long long notifications, completed, copied, duplicates, unknown_ids;

/* Reads every completion waiting on the error queue; returns how many ids they covered. */
static unsigned read_completions(int fd)
{
	unsigned n = 0;
	for (;;) {
		char control[128];
		struct msghdr msg = {.msg_control = control, .msg_controllen = sizeof control};
		if (recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fprintf(stderr, "zerocopy: recvmsg(MSG_ERRQUEUE): %s\n", strerror(errno));
			return n;
		}
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			if (!((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
			      (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR)))
				continue;
			struct sock_extended_err *e = (struct sock_extended_err *)CMSG_DATA(c);
			if (e->ee_origin != SO_EE_ORIGIN_ZEROCOPY || e->ee_errno != 0) {
				fprintf(stderr, "zerocopy: unexpected error queue entry origin %u errno %u\n", e->ee_origin, e->ee_errno);
				continue;
			}
			notifications++;
			for (uint32_t id = e->ee_info;; id++) {
				if (id >= sent_ids || id >= MAX_SENDS) {
					unknown_ids++;
				} else {
					if (done[id]++)
						duplicates++;
					else
						completed++, n++;
					if (e->ee_code & SO_EE_CODE_ZEROCOPY_COPIED) {
						if (!copied_id[id]++)
							copied++;
					}
				}
				if (id == e->ee_data)
					break;
			}
		}
	}
}

/* Waits up to ms for the error queue to become readable, then reads it. */
static void wait_completions(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = 0};
	if (poll(&p, 1, ms) > 0)
		read_completions(fd);
}

/* ---- tcp and udp ------------------------------------------------------------------------ */

static double cpu_seconds(void)
{
	struct rusage r;
	getrusage(RUSAGE_SELF, &r);
	return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) + (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int run_stream(int tcp)
{
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, addr, &peer.sin_addr) != 1)
		usage();
	int fd = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&peer, sizeof peer) != 0) {
		fprintf(stderr, "zerocopy: connect %s:%d: %s\n", addr, port, strerror(errno));
		return 1;
	}
	int one = 1;
	if (zerocopy && setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) != 0) {
		fprintf(stderr, "zerocopy: SO_ZEROCOPY: %s\n", strerror(errno));
		return 1;
	}
	if (!tcp && size > (size_t)gso) {
		int g = gso;
		if (setsockopt(fd, SOL_UDP, UDP_SEGMENT, &g, sizeof g) != 0) {
			fprintf(stderr, "zerocopy: UDP_SEGMENT %d: %s\n", gso, strerror(errno));
			return 1;
		}
	}
	struct sha256 sha;
	sha256_init(&sha);
	unsigned long long bytes = 0, sends = 0, enobufs = 0;
	double cpu0 = cpu_seconds(), t0 = now();
	while (bytes < total) {
		size_t off = (size_t)(bytes % BUF_SIZE), n = size;
		if (total - bytes < n)
			n = (size_t)(total - bytes);
		if (n > BUF_SIZE - off)
			n = BUF_SIZE - off;
		ssize_t r = send(fd, buf + off, n, zerocopy ? MSG_ZEROCOPY : 0);
		if (r < 0) {
			if (errno == ENOBUFS || errno == EAGAIN) {
				/* Too many notifications outstanding (optmem) or buffers full: let some complete. */
				enobufs++;
				if (zerocopy)
					wait_completions(fd, 100);
				else
					usleep(1000);
				continue;
			}
			if (errno == ECONNREFUSED && !tcp) {
				/* An ICMP from an earlier datagram; the peer went away? Say so and stop. */
				fprintf(stderr, "zerocopy: send: %s\n", strerror(errno));
				return 1;
			}
			fprintf(stderr, "zerocopy: send: %s\n", strerror(errno));
			return 1;
		}
		if (zerocopy && r > 0) {
			if (sent_ids >= MAX_SENDS) {
				fprintf(stderr, "zerocopy: too many sends\n");
				return 1;
			}
			sent_ids++;
		}
		sha256_update(&sha, buf + off, (size_t)r);
		bytes += (unsigned long long)r;
		sends++;
		if (zerocopy)
			read_completions(fd);
	}
	double cpu = cpu_seconds() - cpu0, seconds = now() - t0;
	/* Every send must complete: wait for the rest (TCP frees its skbs when the data is acked). */
	if (tcp)
		shutdown(fd, SHUT_WR);
	for (int i = 0; zerocopy && completed + duplicates < sent_ids && i < 100; i++)
		wait_completions(fd, 100);
	char digest[65], peer_answer[200] = "";
	sha256_hex(&sha, digest);
	unsigned long long peer_bytes = 0, peer_datagrams = 0;
	char peer_sha[80] = "";
	if (tcp) {
		size_t got = 0;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		while (got < sizeof peer_answer - 1 && poll(&p, 1, 10000) > 0) {
			ssize_t r = recv(fd, peer_answer + got, sizeof peer_answer - 1 - got, 0);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		peer_answer[got] = 0;
		if (sscanf(peer_answer, "%llu %70s", &peer_bytes, peer_sha) != 2)
			fprintf(stderr, "zerocopy: no answer from the peer (%s)\n", peer_answer);
	} else {
		for (int attempt = 0; attempt < 10; attempt++) {
			send(fd, END_MARKER, strlen(END_MARKER), 0);
			struct pollfd p = {.fd = fd, .events = POLLIN};
			if (poll(&p, 1, 1000) <= 0)
				continue;
			ssize_t r = recv(fd, peer_answer, sizeof peer_answer - 1, 0);
			if (r <= 0)
				continue;
			peer_answer[r] = 0;
			if (sscanf(peer_answer, "%llu %llu %70s", &peer_datagrams, &peer_bytes, peer_sha) == 3)
				break;
		}
		if (!peer_sha[0])
			fprintf(stderr, "zerocopy: no answer from the peer\n");
	}
	for (int i = 0; zerocopy && i < 20 && completed < sent_ids; i++)
		wait_completions(fd, 100);
	/* Ids never completed. */
	unsigned long long missing = 0;
	long first_missing = -1;
	for (uint32_t id = 0; id < sent_ids; id++)
		if (!done[id] && missing++ == 0)
			first_missing = (long)id;
	close(fd);
	double gib = (double)bytes / (double)(1u << 30);
	printf("{\"proto\":\"%s\",\"size\":%zu,\"zerocopy\":%d,\"sends\":%llu,\"bytes\":%llu,"
	       "\"zcSends\":%u,\"notifications\":%llu,\"completed\":%llu,\"copied\":%llu,\"duplicates\":%llu,"
	       "\"unknownIds\":%llu,\"missing\":%llu,\"firstMissing\":%ld,\"retries\":%llu,"
	       "\"sha256\":\"%s\",\"peerBytes\":%llu,\"peerDatagrams\":%llu,\"peerSha256\":\"%s\",\"match\":%d,"
	       "\"seconds\":%.3f,\"cpuSeconds\":%.3f,\"cpuSecondsPerGiB\":%.2f}\n",
	       tcp ? "tcp" : "udp", size, zerocopy, sends, bytes, sent_ids, notifications, completed, copied, duplicates,
	       unknown_ids, missing, first_missing, enobufs, digest, peer_bytes, peer_datagrams, peer_sha,
	       peer_bytes == bytes && strcmp(peer_sha, digest) == 0, seconds, cpu, gib > 0 ? cpu / gib : 0.0);
	return 0;
}

/* ---- AF_PACKET -------------------------------------------------------------------------- */

static int run_packet(void)
{
	int fd = socket(AF_PACKET, SOCK_RAW, htons(0x88b5));
	if (fd < 0) {
		fprintf(stderr, "zerocopy: socket(AF_PACKET): %s\n", strerror(errno));
		return 1;
	}
	int one = 1, opt_errno = 0, send_errno = 0;
	if (setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) != 0)
		opt_errno = errno;
	struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_protocol = htons(0x88b5), .sll_ifindex = (int)if_nametoindex(iface)};
	if (ll.sll_ifindex == 0) {
		fprintf(stderr, "zerocopy: no interface %s\n", iface);
		return 1;
	}
	uint8_t frame[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5};
	ssize_t r = sendto(fd, frame, sizeof frame, MSG_ZEROCOPY, (struct sockaddr *)&ll, sizeof ll);
	if (r < 0)
		send_errno = errno;
	/* Whatever the send did, a packet socket never queues a zerocopy completion. */
	char control[128];
	struct msghdr msg = {.msg_control = control, .msg_controllen = sizeof control};
	usleep(200000);
	int completion = recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) >= 0;
	printf("{\"proto\":\"packet\",\"soZerocopy\":\"%s\",\"sendMsgZerocopy\":\"%s\",\"sent\":%zd,\"completion\":%d}\n",
	       opt_errno ? strerrorname_np(opt_errno) : "ok", send_errno ? strerrorname_np(send_errno) : "ok", r,
	       completion);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	mode = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-z")) {
			zerocopy = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "-a"))
			addr = v;
		else if (!strcmp(a, "-p"))
			port = (int)number(v);
		else if (!strcmp(a, "-s"))
			size = (size_t)number(v);
		else if (!strcmp(a, "-b"))
			total = number(v);
		else if (!strcmp(a, "-g"))
			gso = (int)number(v);
		else if (!strcmp(a, "-i"))
			iface = v;
		else if (!strcmp(a, "--buf-map"))
			buf_map = v;
		else if (!strcmp(a, "--wait-file"))
			wait_file = v;
		else
			usage();
	}
	if (!strcmp(mode, "packet")) {
		if (!iface)
			usage();
		return run_packet();
	}
	int tcp = !strcmp(mode, "tcp");
	if (!tcp && strcmp(mode, "udp"))
		usage();
	if (size < 1 || size > 65536 || (!tcp && size > 65000) || gso < 64 || gso > 1472)
		usage();
	buf = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	done = calloc(MAX_SENDS, 1);
	copied_id = calloc(MAX_SENDS, 1);
	if (buf == MAP_FAILED || !done || !copied_id) {
		fprintf(stderr, "zerocopy: out of memory\n");
		return 1;
	}
	if (mlock(buf, BUF_SIZE) != 0)
		fprintf(stderr, "zerocopy: mlock: %s (continuing)\n", strerror(errno));
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < BUF_SIZE; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
	if (buf_map && write_buf_map(buf_map) != 0)
		return 1;
	if (wait_file)
		wait_for_file(wait_file);
	return run_stream(tcp);
}
