/*
 * zcrx-probe: does this kernel and this NIC do io_uring zero-copy receive (seed 003)?
 *
 *   zcrx-probe [-i IFACE] [-q RXQ]
 *
 * Asks the kernel rather than guessing from the version: sets up an io_uring the way zcrx
 * needs it (IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN | CQE32), probes its opcodes
 * (IORING_REGISTER_PROBE: is IORING_OP_RECV_ZC known?), then tries to register a zero-copy
 * interface queue on IFACE's receive queue RXQ (IORING_REGISTER_ZCRX_IFQ, opcode 32, Linux
 * 6.15+) with a small user-memory area and refill ring. Prints one JSON line on stdout:
 *   {"kernel":"...","ioUringDisabled":N,"setupFlags":"...","setupErrno":N,"lastOp":N,
 *    "recvZcOp":58,"recvZcKnown":bool,"registerOpcode":32,"registerErrno":N,
 *    "registerError":"EINVAL","iface":"eth0","ifindex":N,"rxq":N,"registered":bool}
 * and the kernel's answer in words on stderr. Exit status 0 when the probe ran (whatever the
 * answer), 1 when it could not ask (no io_uring at all), 2 usage.
 *
 * The structures below follow the 6.15 UAPI (include/uapi/linux/io_uring.h); Debian 12's
 * headers predate zcrx, so they are spelt out here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#define SETUP_CQE32 (1u << 11)
#define SETUP_SINGLE_ISSUER (1u << 12)
#define SETUP_DEFER_TASKRUN (1u << 13)
#define REGISTER_PROBE 8
#define REGISTER_ZCRX_IFQ 32
#define OP_RECV_ZC 58
#define PROBE_OP_SUPPORTED (1u << 0)
#define MEM_REGION_TYPE_USER 1

struct sq_ring_offsets {
	uint32_t head, tail, ring_mask, ring_entries, flags, dropped, array, resv1;
	uint64_t user_addr;
};
struct cq_ring_offsets {
	uint32_t head, tail, ring_mask, ring_entries, overflow, cqes, flags, resv1;
	uint64_t user_addr;
};
struct uring_params {
	uint32_t sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features, wq_fd, resv[3];
	struct sq_ring_offsets sq_off;
	struct cq_ring_offsets cq_off;
};
struct probe_op {
	uint8_t op, resv;
	uint16_t flags;
	uint32_t resv2;
};
struct uring_probe {
	uint8_t last_op, ops_len;
	uint16_t resv;
	uint32_t resv2[3];
	struct probe_op ops[256];
};
struct region_desc {
	uint64_t user_addr, size;
	uint32_t flags, id;
	uint64_t mmap_offset;
	uint64_t resv[4];
};
struct zcrx_area_reg {
	uint64_t addr, len, rq_area_token;
	uint32_t flags, dmabuf_fd;
	uint64_t resv2[2];
};
struct zcrx_offsets {
	uint32_t head, tail, rqes, resv2;
	uint64_t resv[2];
};
struct zcrx_ifq_reg {
	uint32_t if_idx, if_rxq, rq_entries, flags;
	uint64_t area_ptr, region_ptr;
	struct zcrx_offsets offsets;
	uint32_t zcrx_id, resv2;
	uint64_t resv[3];
};

/* The errno's name (EINVAL, ...), "OK" for 0: the JSON carries names, not numbers alone. */
static const char *errname(int e)
{
	const char *name = e == 0 ? "OK" : strerrorname_np(e);

	return name ? name : "other";
}

static int read_int_file(const char *path, int dflt)
{
	FILE *f = fopen(path, "r");
	int v = dflt;
	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = dflt;
		fclose(f);
	}
	return v;
}

int main(int argc, char **argv)
{
	const char *iface = "eth0";
	unsigned rxq = 0;
	int c;
	while ((c = getopt(argc, argv, "i:q:h")) != -1) {
		switch (c) {
		case 'i':
			iface = optarg;
			break;
		case 'q':
			rxq = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'h':
			printf("usage: zcrx-probe [-i IFACE] [-q RXQ]\n");
			return 0;
		default:
			fprintf(stderr, "usage: zcrx-probe [-i IFACE] [-q RXQ]\n");
			return 2;
		}
	}
	struct utsname u;
	uname(&u);
	int disabled = read_int_file("/proc/sys/kernel/io_uring_disabled", -1);
	unsigned ifindex = if_nametoindex(iface);

	/* zcrx wants a ring with deferred task running and 32-byte CQEs; kernels that cannot
	 * do those get a plain ring, so that the register answer is still the kernel's. */
	const char *setup_desc = "SINGLE_ISSUER|DEFER_TASKRUN|CQE32";
	struct uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = SETUP_SINGLE_ISSUER | SETUP_DEFER_TASKRUN | SETUP_CQE32;
	int fd = (int)syscall(SYS_io_uring_setup, 8, &p);
	int setup_errno = fd < 0 ? errno : 0;
	if (fd < 0 && setup_errno == EINVAL) {
		memset(&p, 0, sizeof p);
		setup_desc = "plain";
		fd = (int)syscall(SYS_io_uring_setup, 8, &p);
		setup_errno = fd < 0 ? errno : 0;
	}
	if (fd < 0) {
		printf("{\"kernel\":\"%s\",\"ioUringDisabled\":%d,\"setupFlags\":\"%s\",\"setupErrno\":%d,\"setupError\":\"%s\",\"iface\":\"%s\","
		       "\"ifindex\":%u,\"registered\":false}\n",
		       u.release, disabled, setup_desc, setup_errno, errname(setup_errno), iface, ifindex);
		fprintf(stderr, "zcrx-probe: io_uring_setup: %s (%s)\n", strerror(setup_errno), errname(setup_errno));
		return 1;
	}

	static struct uring_probe probe;
	int last_op = -1, recv_zc_known = 0;
	if (syscall(SYS_io_uring_register, fd, REGISTER_PROBE, &probe, 256) == 0) {
		last_op = probe.last_op;
		if (OP_RECV_ZC <= probe.last_op && OP_RECV_ZC < probe.ops_len)
			recv_zc_known = (probe.ops[OP_RECV_ZC].flags & PROBE_OP_SUPPORTED) != 0;
	}

	/* A 64-page area and a one-page user region for the refill ring (64 entries of 16 bytes
	 * behind the ring header fit). */
	size_t area_len = 64 * 4096, region_len = 2 * 4096;
	void *area = mmap(NULL, area_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *ring = mmap(NULL, region_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED || ring == MAP_FAILED) {
		perror("zcrx-probe: mmap");
		return 1;
	}
	struct zcrx_area_reg areg;
	memset(&areg, 0, sizeof areg);
	areg.addr = (uint64_t)(uintptr_t)area;
	areg.len = area_len;
	struct region_desc rd;
	memset(&rd, 0, sizeof rd);
	rd.user_addr = (uint64_t)(uintptr_t)ring;
	rd.size = region_len;
	rd.flags = MEM_REGION_TYPE_USER;
	struct zcrx_ifq_reg reg;
	memset(&reg, 0, sizeof reg);
	reg.if_idx = ifindex;
	reg.if_rxq = rxq;
	reg.rq_entries = 64;
	reg.area_ptr = (uint64_t)(uintptr_t)&areg;
	reg.region_ptr = (uint64_t)(uintptr_t)&rd;
	int rc = (int)syscall(SYS_io_uring_register, fd, REGISTER_ZCRX_IFQ, &reg, 1);
	int reg_errno = rc < 0 ? errno : 0;

	printf("{\"kernel\":\"%s\",\"ioUringDisabled\":%d,\"setupFlags\":\"%s\",\"setupErrno\":0,\"lastOp\":%d,\"recvZcOp\":%d,"
	       "\"recvZcKnown\":%s,\"registerOpcode\":%d,\"registerErrno\":%d,\"registerError\":\"%s\",\"iface\":\"%s\",\"ifindex\":%u,"
	       "\"rxq\":%u,\"registered\":%s}\n",
	       u.release, disabled, setup_desc, last_op, OP_RECV_ZC, recv_zc_known ? "true" : "false", REGISTER_ZCRX_IFQ, reg_errno,
	       errname(reg_errno), iface, ifindex, rxq, rc == 0 ? "true" : "false");
	fprintf(stderr, "zcrx-probe: kernel %s: io_uring ring (%s) ok, opcodes 0..%d, IORING_OP_RECV_ZC (%d) %s; "
			"IORING_REGISTER_ZCRX_IFQ (%d) on %s (ifindex %u) queue %u -> %s%s%s\n",
		u.release, setup_desc, last_op, OP_RECV_ZC, recv_zc_known ? "known" : "unknown", REGISTER_ZCRX_IFQ, iface, ifindex, rxq,
		rc == 0 ? "registered" : errname(reg_errno), rc == 0 ? "" : ": ", rc == 0 ? "" : strerror(reg_errno));
	close(fd);
	munmap(area, area_len);
	munmap(ring, region_len);
	return 0;
}
