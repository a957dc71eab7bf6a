/*
 * zcrx-recv: receives one TCP stream with io_uring zcrx in device-less copy mode
 * (ZCRX_REG_NODEV) and verifies every byte against the stream pattern the netns peer sends
 * (harness/peer.ts, streamPattern).
 *
 *   zcrx-recv -p PORT -b BYTES [-s SEED] [--expect-seed SEED] [-t SECONDS]
 *             [--area-pages N] [--rq-entries N]
 *
 * What Linux 7.3 does (io_uring/zcrx.c, io_uring/net.c, include/uapi/linux/io_uring/zcrx.h of
 * Debian's linux-source-7.3):
 *
 * - Registration. IORING_REGISTER_ZCRX_IFQ (32) takes struct io_uring_zcrx_ifq_reg; its
 *   `flags` field may carry ZCRX_REG_NODEV = 2 (enum zcrx_reg_flags, next to ZCRX_REG_IMPORT
 *   = 1; the kernel accepts ZCRX_SUPPORTED_REG_FLAGS = IMPORT | NODEV and refuses any other
 *   bit with EINVAL, which is also what a kernel without NODEV answers). The ring must have
 *   been set up with DEFER_TASKRUN and CQE32 (or CQE_MIXED), the caller needs CAP_NET_ADMIN.
 *   With NODEV, if_idx and if_rxq must both be 0 (else EINVAL): no net device, no receive
 *   queue, no page pool and no memory provider is bound. io_register_zcrx() allocates the
 *   refill ring in the given region and creates the area from the user memory
 *   (io_zcrx_create_area) instead of calling zcrx_register_netdev(); nothing ties the ifq to
 *   any NIC, so any TCP socket's data can be received into it, whichever device brought it.
 *   The kernel writes back zcrx_id, rx_buf_len (1 << niov_shift: a page by default), the
 *   refill ring's offsets and the area's rq_area_token.
 * - Receive. IORING_OP_RECV_ZC (58) on a TCP socket, sqe->zcrx_ifq_idx = zcrx_id,
 *   IORING_RECV_MULTISHOT in sqe->ioprio (mandatory), addr/addr2/addr3/msg_flags zero, len 0
 *   for "until EOF". io_zcrx_recv() runs tcp_read_sock(); since no frag is a net_iov of this
 *   ifq's page pool, every byte takes the copy path (io_zcrx_copy_chunk): for each piece, at
 *   most one buffer long, a free buffer of the area is taken (io_alloc_fallback_niov; none
 *   left: -ENOMEM), the bytes are copied to its start, and a 32-byte CQE is posted:
 *   res = length, flags IORING_CQE_F_MORE, and in the second half struct io_uring_zcrx_cqe
 *   with off = area token (area id << IORING_ZCRX_AREA_SHIFT) + buffer index << niov_shift.
 *   Each CQE holds one user reference on its buffer. EOF ends the request with res 0 and no
 *   F_MORE; an error (-ENOMEM, -ENOSPC when the CQ is full) ends it with res < 0: what was
 *   copied before stays delivered, the rest stays in the socket, so the request is re-armed.
 * - Refill. The user returns a buffer with an io_uring_zcrx_rqe {off = the CQE's off,
 *   len = res} in the refill ring and a release store of the tail. With a net device the page
 *   pool consumes the ring when it allocates; with NODEV there is no page pool, so the ring is
 *   only consumed by IORING_REGISTER_ZCRX_CTRL (36) with op ZCRX_CTRL_FLUSH_RQ (the uapi's
 *   comment: "The refill queue entries might not be automatically consumed and need to be
 *   flushed"), which drops each entry's user reference and puts the buffer back on the free
 *   list (at most rq_entries per call).
 * Older kernels: 6.12 has no zcrx at all (register opcode 32 unknown: EINVAL; RECV_ZC not in
 * the probe); 6.15 to 7.0 have zcrx but no NODEV bit (EINVAL for flags 2).
 *
 * Steps: set the ring up, probe RECV_ZC, register a NODEV ifq (on failure: print the answer
 * and exit 0, the suite judges), listen on PORT (any address), print `zcrx-recv: ready` on
 * stderr, accept one connection, receive with RECV_ZC until EOF, return every buffer through
 * the refill ring (flushed after each batch of completions), and compare each byte at stream
 * offset S with the pattern of SEED (--expect-seed: a different seed to check against, the
 * negative control). Prints one JSON line on stdout; exit 0 when it ran to EOF or had its
 * answer from the kernel, 1 on any other failure, 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* The CQE of the RECV_ZC request (user_data). */
#define RECV_TAG 1
#define PAGE 4096u

/* The errno's name (EINVAL, ...), "OK" for 0: the JSON carries names, not numbers alone. */
static const char *errname(int e)
{
	const char *name = e == 0 ? "OK" : strerrorname_np(e);

	return name ? name : "other";
}

/*
 * The stream pattern: the 4-byte word at stream offset 4w is fmix32(w ^ seed) (MurmurHash3's
 * finaliser, a bijection), little-endian. Every byte depends on its position, so a lost,
 * repeated or reordered piece is found, and another seed disagrees almost everywhere.
 */
static uint32_t pattern_word(uint32_t seed, uint64_t word)
{
	uint32_t h = (uint32_t)word ^ seed;
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: zcrx-recv -p PORT -b BYTES [-s SEED] [--expect-seed SEED] [-t SECONDS] [--area-pages N] [--rq-entries N]\n");
	exit(2);
}

/* What the run found; printed as the JSON line. */
static struct {
	unsigned long long expected, bytes, verified, mismatches, completions, refills, flushes, rearms, outside;
	long long first_mismatch;
	int recv_errno, eof;
} r = {.first_mismatch = -1};

/* Compares n bytes received at stream offset `at` with the pattern of `seed`. */
static void verify(const uint8_t *p, size_t n, uint64_t at, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t s = at + i;
		uint8_t want = (uint8_t)(pattern_word(seed, s >> 2) >> (8 * (s & 3)));
		if (p[i] == want && s < r.expected) {
			r.verified++;
		} else {
			r.mismatches++;
			if (r.first_mismatch < 0)
				r.first_mismatch = (long long)s;
		}
	}
}

/*
 * Publishes the refill ring's new tail and asks the kernel to take the returned buffers: with
 * no page pool (NODEV) nothing reads the refill ring on its own (ZCRX_CTRL_FLUSH_RQ).
 */
static int flush_refills(struct io_uring *ring, struct io_uring_zcrx_rq *rq, uint32_t zcrx_id)
{
	io_uring_smp_store_release(rq->ktail, rq->rq_tail);
	struct zcrx_ctrl ctrl = {.zcrx_id = zcrx_id, .op = ZCRX_CTRL_FLUSH_RQ};
	int rc = io_uring_register_zcrx_ctrl(ring, &ctrl);
	if (rc < 0)
		fprintf(stderr, "zcrx-recv: ZCRX_CTRL_FLUSH_RQ: %s\n", strerror(-rc));
	return rc;
}

int main(int argc, char **argv)
{
	unsigned port = 0, area_pages = 2048, rq_entries = 2048, timeout = 60;
	uint32_t seed = 1, expect_seed = 0;
	int have_expect = 0;
	static const struct option longopts[] = {
		{"expect-seed", required_argument, NULL, 'e'},
		{"area-pages", required_argument, NULL, 'a'},
		{"rq-entries", required_argument, NULL, 'r'},
		{NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "p:b:s:t:", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': port = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'b': r.expected = strtoull(optarg, NULL, 0); break;
		case 's': seed = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'e': expect_seed = (uint32_t)strtoul(optarg, NULL, 0), have_expect = 1; break;
		case 't': timeout = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'a': area_pages = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'r': rq_entries = (unsigned)strtoul(optarg, NULL, 0); break;
		default: usage();
		}
	}
	if (port == 0 || port > 65535 || r.expected == 0 || area_pages == 0 || rq_entries == 0 || optind != argc)
		usage();
	if (!have_expect)
		expect_seed = seed;
	struct utsname u;
	uname(&u);

	/* zcrx needs deferred task running and 32-byte CQEs; a large CQ so that a burst of
	 * copies does not end the request with -ENOSPC. */
	struct io_uring ring;
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQE32 | IORING_SETUP_CQSIZE;
	p.cq_entries = 4096;
	int rc = io_uring_queue_init_params(64, &ring, &p);
	if (rc < 0) {
		printf("{\"kernel\":\"%s\",\"setupErrno\":%d,\"setupError\":\"%s\",\"registered\":false}\n", u.release, -rc, errname(-rc));
		fprintf(stderr, "zcrx-recv: io_uring_queue_init (SINGLE_ISSUER|DEFER_TASKRUN|CQE32): %s\n", strerror(-rc));
		return 1;
	}
	struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
	int recv_zc_known = probe && io_uring_opcode_supported(probe, IORING_OP_RECV_ZC);
	int last_op = probe ? probe->last_op : -1;
	if (probe)
		io_uring_free_probe(probe);

	size_t area_len = (size_t)area_pages * PAGE;
	size_t rq_len = (PAGE + (size_t)rq_entries * sizeof(struct io_uring_zcrx_rqe) + PAGE - 1) & ~(size_t)(PAGE - 1);
	uint8_t *area = mmap(NULL, area_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	uint8_t *rq_mem = mmap(NULL, rq_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (area == MAP_FAILED || rq_mem == MAP_FAILED) {
		perror("zcrx-recv: mmap");
		return 1;
	}
	struct io_uring_zcrx_area_reg area_reg = {.addr = (uint64_t)(uintptr_t)area, .len = area_len};
	struct io_uring_region_desc region = {.user_addr = (uint64_t)(uintptr_t)rq_mem, .size = rq_len, .flags = IORING_MEM_REGION_TYPE_USER};
	/* NODEV: if_idx and if_rxq stay 0, as the kernel demands. */
	struct io_uring_zcrx_ifq_reg reg = {
		.flags = ZCRX_REG_NODEV,
		.rq_entries = rq_entries,
		.area_ptr = (uint64_t)(uintptr_t)&area_reg,
		.region_ptr = (uint64_t)(uintptr_t)&region,
	};
	rc = io_uring_register_ifq(&ring, &reg);
	if (rc < 0) {
		printf("{\"kernel\":\"%s\",\"lastOp\":%d,\"recvZcOp\":%d,\"recvZcKnown\":%s,\"registerOpcode\":%d,\"registerFlags\":%d,"
		       "\"registered\":false,\"registerErrno\":%d,\"registerError\":\"%s\"}\n",
		       u.release, last_op, IORING_OP_RECV_ZC, recv_zc_known ? "true" : "false", IORING_REGISTER_ZCRX_IFQ, ZCRX_REG_NODEV, -rc,
		       errname(-rc));
		fprintf(stderr, "zcrx-recv: kernel %s: IORING_REGISTER_ZCRX_IFQ with ZCRX_REG_NODEV -> %s (%s); IORING_OP_RECV_ZC %s\n", u.release,
			errname(-rc), strerror(-rc), recv_zc_known ? "known" : "unknown");
		return 0;
	}
	struct io_uring_zcrx_rq rq = {
		.khead = (uint32_t *)(rq_mem + reg.offsets.head),
		.ktail = (uint32_t *)(rq_mem + reg.offsets.tail),
		.rqes = (struct io_uring_zcrx_rqe *)(rq_mem + reg.offsets.rqes),
		.ring_entries = reg.rq_entries,
	};
	/* The area's buffers are rx_buf_len apart; a CQE's offset past the area is the kernel's
	 * bug or ours, counted rather than read. */
	uint64_t buf_len = reg.rx_buf_len ? reg.rx_buf_len : PAGE;

	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_ANY)};
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    listen(lfd, 1) != 0) {
		fprintf(stderr, "zcrx-recv: listen on port %u: %s\n", port, strerror(errno));
		return 1;
	}
	fprintf(stderr, "zcrx-recv: ready: zcrx id %u (NODEV), area %zu bytes in %llu-byte buffers, refill ring %u entries, port %u\n",
		reg.zcrx_id, area_len, (unsigned long long)buf_len, reg.rq_entries, port);
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};
	if (poll(&pfd, 1, (int)timeout * 1000) != 1) {
		fprintf(stderr, "zcrx-recv: no connection within %u s\n", timeout);
		return 1;
	}
	int fd = accept(lfd, NULL, NULL);
	if (fd < 0) {
		perror("zcrx-recv: accept");
		return 1;
	}

	double t0 = now(), deadline = t0 + timeout;
	int armed = 0;
	while (!r.eof) {
		if (!armed) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			io_uring_prep_rw(IORING_OP_RECV_ZC, sqe, fd, NULL, 0, 0);
			sqe->ioprio |= IORING_RECV_MULTISHOT;
			sqe->zcrx_ifq_idx = reg.zcrx_id;
			sqe->user_data = RECV_TAG;
			armed = 1;
		}
		struct __kernel_timespec ts = {.tv_sec = 1};
		struct io_uring_cqe *first;
		rc = io_uring_submit_and_wait_timeout(&ring, &first, 1, &ts, NULL);
		if (rc < 0 && rc != -ETIME && rc != -EINTR) {
			fprintf(stderr, "zcrx-recv: io_uring_submit_and_wait: %s\n", strerror(-rc));
			return 1;
		}
		if (now() > deadline) {
			fprintf(stderr, "zcrx-recv: no EOF within %u s (%llu of %llu bytes)\n", timeout, r.bytes, r.expected);
			break;
		}
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0, queued = 0;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			seen++;
			if (cqe->user_data != RECV_TAG)
				continue;
			if (cqe->res > 0) {
				const struct io_uring_zcrx_cqe *zcqe = (const struct io_uring_zcrx_cqe *)(cqe + 1);
				uint64_t off = zcqe->off & ~IORING_ZCRX_AREA_MASK;
				r.completions++;
				if (off + (uint64_t)cqe->res > area_len || (uint64_t)cqe->res > buf_len) {
					r.outside++;
				} else {
					verify(area + off, (size_t)cqe->res, r.bytes, expect_seed);
				}
				r.bytes += (unsigned long long)cqe->res;
				/* Room in the refill ring: the kernel consumes it only when flushed. */
				if (rq.rq_tail - io_uring_smp_load_acquire(rq.khead) == rq.ring_entries) {
					if (flush_refills(&ring, &rq, reg.zcrx_id) < 0)
						return 1;
					r.flushes++;
				}
				struct io_uring_zcrx_rqe *rqe = &rq.rqes[rq.rq_tail & (rq.ring_entries - 1)];
				rqe->off = zcqe->off;
				rqe->len = (uint32_t)cqe->res;
				rq.rq_tail++;
				r.refills++;
				queued++;
			}
			if (!(cqe->flags & IORING_CQE_F_MORE)) {
				armed = 0;
				if (cqe->res == 0) {
					r.eof = 1;
				} else if (cqe->res == -ENOMEM || cqe->res == -ENOSPC) {
					/* Out of buffers or CQ space: the data not copied is still in the
					 * socket; return the buffers and ask again. */
					r.rearms++;
				} else if (cqe->res < 0) {
					r.recv_errno = -cqe->res;
					fprintf(stderr, "zcrx-recv: RECV_ZC ended: %s (%s)\n", strerror(-cqe->res), errname(-cqe->res));
					r.eof = 1;
				}
			}
		}
		io_uring_cq_advance(&ring, seen);
		if (queued) {
			if (flush_refills(&ring, &rq, reg.zcrx_id) < 0)
				return 1;
			r.flushes++;
		}
	}
	double secs = now() - t0;
	unsigned consumed = io_uring_smp_load_acquire(rq.khead);
	printf("{\"kernel\":\"%s\",\"lastOp\":%d,\"recvZcKnown\":%s,\"registered\":true,\"registerErrno\":0,\"registerError\":\"OK\",\"zcrxId\":%u,"
	       "\"rxBufLen\":%llu,\"areaBytes\":%zu,\"rqEntries\":%u,\"seed\":%u,\"expectSeed\":%u,\"expected\":%llu,\"bytes\":%llu,"
	       "\"bytesVerified\":%llu,\"mismatches\":%llu,\"firstMismatch\":%lld,\"outsideArea\":%llu,\"completions\":%llu,\"refills\":%llu,"
	       "\"refillsConsumed\":%u,\"flushes\":%llu,\"rearms\":%llu,\"recvErrno\":%d,\"eof\":%s,\"seconds\":%.3f,\"mibPerSecond\":%.1f}\n",
	       u.release, last_op, recv_zc_known ? "true" : "false", reg.zcrx_id, (unsigned long long)buf_len, area_len, reg.rq_entries, seed,
	       expect_seed, r.expected, r.bytes, r.verified, r.mismatches, r.first_mismatch, r.outside, r.completions, r.refills, consumed,
	       r.flushes, r.rearms, r.recv_errno, r.eof ? "true" : "false", secs, secs > 0 ? (double)r.bytes / 1048576.0 / secs : 0.0);
	close(fd);
	close(lfd);
	io_uring_queue_exit(&ring);
	return r.eof && r.recv_errno == 0 ? 0 : 1;
}
