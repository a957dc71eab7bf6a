/*
 * zcnic xdpsock: AF_XDP benchmark and verifier on libxdp's xsk API, modelled
 * on the options of the classic kernel-samples xdpsock. Modes: txonly (sends
 * zcnic test frames, docs/test-frame.md), rxdrop (receives and verifies every
 * frame), l2fwd (receives, verifies, swaps MACs and sends back).
 *
 * Built as a static binary by build.sh:
 *   gcc -static -O2 -Wall -Wextra -o xdpsock xdpsock.c frame.c -lxdp -lbpf -lelf -lz
 * (libxdp.a embeds its default XSK program and dispatcher, so the binary needs
 * no BPF object files at run time.)
 *
 * Output: "pps rx=N tx=N" on stderr once per second, "xdpsock: ready ..." on
 * stderr once the socket is bound, and one line of JSON on stdout at the end.
 * Exit status: 0 ok, 1 setup/runtime error, 2 usage error, 3 the run did not
 * reach its goal (-w COUNT not reached, or TX completions missing).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <linux/magic.h>
#include <linux/if_xdp.h>

#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#include "frame.h"

#ifndef SOL_XDP
#define SOL_XDP 283
#endif

#define EXIT_SETUP 1
#define EXIT_USAGE 2
#define EXIT_GOAL 3

#define DRAIN_TIMEOUT_NS (5ull * 1000000000ull)
#define BUSY_RETRY_NS (3ull * 1000000000ull)
#define MAX_CORRUPT_DUMPS 3

enum mode { MODE_RXDROP, MODE_TXONLY, MODE_L2FWD };

static const char *const mode_names[] = { "rxdrop", "txonly", "l2fwd" };

struct options {
	const char *ifname;
	unsigned int ifindex;
	uint32_t queue;
	enum mode mode;
	uint32_t xdp_flags;   /* XDP_FLAGS_SKB_MODE / XDP_FLAGS_DRV_MODE / 0 */
	uint16_t bind_flags;  /* XDP_COPY / XDP_ZEROCOPY / 0 */
	uint32_t tx_size;     /* -s: bytes on the wire */
	uint32_t frame_size;  /* -f: umem chunk size */
	bool unaligned;
	uint32_t batch;
	double duration;      /* seconds, 0 = unlimited */
	uint64_t count;       /* 0 = unlimited */
	bool wait;
	bool poll;
	bool need_wakeup;
	bool verify;
	bool verbose;
	bool tx_rx;           /* txonly --rx: also receive and verify */
	uint64_t rate;        /* txonly --rate: frames per second, 0 = unlimited */
	uint32_t frames;      /* umem chunks */
	uint32_t ring;        /* rx/tx ring size; fill/completion rings get twice as many */
	uint8_t dst_mac[6];
	uint8_t src_mac[6];
	bool src_mac_set;
	const char *umem_map;
	const char *wait_file; /* --wait-file: start sending/receiving once it exists */
};

static struct options opt = {
	.queue = 0,
	.mode = MODE_RXDROP,
	.tx_size = 64,
	.frame_size = XSK_UMEM__DEFAULT_FRAME_SIZE,
	.batch = 64,
	.need_wakeup = true,
	.verify = true,
	.frames = 4096,
	.ring = XSK_RING_CONS__DEFAULT_NUM_DESCS,
	.dst_mac = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
};

struct counters {
	uint64_t tx_frames, tx_bytes, tx_completed;
	uint64_t rx_frames, rx_bytes, rx_verified, rx_corrupt, rx_foreign;
	uint64_t tx_kicks, tx_kick_errors; /* sendto() calls; EBUSY/ENOBUFS/ENETDOWN */
	uint64_t t_first_tx, t_last_tx; /* first submit, last completion (or submit) */
	uint64_t t_first_rx, t_last_rx;
};

struct addr_stack {
	uint64_t *a;
	uint32_t n;
};

struct addr_fifo {
	uint64_t *a;
	uint64_t head, tail; /* pop at head, push at tail; index modulo cap */
	uint32_t cap;
};

static inline uint32_t fifo_len(const struct addr_fifo *f)
{
	return (uint32_t)(f->tail - f->head);
}

static inline void fifo_push(struct addr_fifo *f, uint64_t addr)
{
	f->a[f->tail++ % f->cap] = addr;
}

static inline uint64_t fifo_pop(struct addr_fifo *f)
{
	return f->a[f->head++ % f->cap];
}

struct xsk_state {
	void *buf;
	size_t buf_len;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fq;
	struct xsk_ring_cons cq;
	struct xsk_ring_cons rx;
	struct xsk_ring_prod tx;
	int fd;
	bool zerocopy;
	/* Free chunk base addresses. rx_free (a stack) feeds the fill ring; l2fwd
	 * recycles its completions into it. tx_free (a FIFO) feeds txonly, which
	 * recycles its completions into it: in FIFO order chunk k carries seqs
	 * k, k + n, k + 2n, ... so with n a multiple of 256 its pattern never
	 * changes. tx_phase[chunk] is the seq & 0xff whose pattern the chunk
	 * holds (0xffff: none), so the pattern is rewritten only when needed. */
	struct addr_stack rx_free;
	struct addr_fifo tx_free;
	uint16_t *tx_phase;
	uint32_t outstanding_tx;
};

static struct counters cnt;
static struct xsk_state xs;
static volatile sig_atomic_t stop_requested;
static uint64_t next_seq;
static struct frame_template tmpl;
static unsigned int corrupt_dumps;
static uint64_t t_start; /* when the datapath loop started */

/* ---------------------------------------------------------------- utils */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *errname(int err)
{
	const char *n = strerrorname_np(err);

	return n ? n : "?";
}

/* Close the socket and the umem: with libxdp's default program this also
 * detaches the XDP program from the interface if we were its last user. */
static void teardown(void)
{
	if (xs.xsk)
		xsk_socket__delete(xs.xsk);
	xs.xsk = NULL;
	if (xs.umem)
		xsk_umem__delete(xs.umem);
	xs.umem = NULL;
}

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("xdpsock: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	teardown();
	exit(EXIT_SETUP);
}

static void usage_error(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("xdpsock: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'xdpsock -h' for help.\n", stderr);
	exit(EXIT_USAGE);
}

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int print_libxdp(enum libxdp_print_level level, const char *fmt, va_list ap)
{
	if (!opt.verbose) {
		/* Without a bpffs (e.g. under 'ip netns exec', which remounts /sys)
		 * libxdp warns and attaches its program without the multi-program
		 * dispatcher: harmless for us, so only shown with -v. */
		if (level != LIBXDP_WARN || strstr(fmt, "bpffs"))
			return 0;
	}
	return vfprintf(stderr, fmt, ap); /* libxdp prefixes its own messages */
}

static int print_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level != LIBBPF_WARN && !opt.verbose)
		return 0;
	return vfprintf(stderr, fmt, ap); /* libbpf prefixes its own messages */
}

/* --------------------------------------------------------------- options */

static void usage(FILE *f)
{
	fprintf(f,
"Usage: xdpsock -i IFACE [-r|-t|-l] [options]\n"
"AF_XDP benchmark and zcnic test-frame verifier (libxdp xsk API).\n"
"\n"
"Modes:\n"
"  -r, --rxdrop           receive, verify every frame, drop (default)\n"
"  -t, --txonly           send test frames (flow = queue id)\n"
"  -l, --l2fwd            receive, verify, swap MACs, send back\n"
"Options:\n"
"  -i, --interface IFACE  network interface (required)\n"
"  -q, --queue N          queue id (default 0)\n"
"  -S, --xdp-skb          generic XDP (XDP_FLAGS_SKB_MODE)\n"
"  -N, --xdp-native       native XDP (XDP_FLAGS_DRV_MODE)\n"
"  -c, --copy             bind with XDP_COPY\n"
"  -z, --zero-copy        bind with XDP_ZEROCOPY\n"
"  -s, --tx-pkt-size N    txonly frame size, bytes on the wire (default 64, min 60)\n"
"  -f, --frame-size N     umem chunk size (default 4096)\n"
"  -u, --unaligned        unaligned umem chunks (XDP_UMEM_UNALIGNED_CHUNK_FLAG)\n"
"  -b, --batch-size N     frames per batch (default 64)\n"
"  -d, --duration SECS    stop after SECS seconds (fractions allowed)\n"
"  -C, --count N          txonly: send exactly N frames, then wait for all completions;\n"
"                         rxdrop/l2fwd: stop after N frames received\n"
"  -w, --wait             COUNT is required: with -d as timeout, exit 3 if not reached\n"
"  -p, --poll             use poll() before each batch\n"
"  -m, --no-need-wakeup   do not use XDP_USE_NEED_WAKEUP\n"
"      --dst-mac MAC      txonly destination MAC (default ff:ff:ff:ff:ff:ff)\n"
"      --src-mac MAC      txonly source MAC (default: the interface's MAC)\n"
"      --umem-map FILE    write '<umem_offset_hex> <phys_addr_hex>' for every umem page\n"
"      --wait-file PATH   after the ready line, wait until PATH exists before the run\n"
"                         starts (e.g. until the umem map has been handed over)\n"
"      --frames N         umem chunks (default 4096)\n"
"      --ring N           rx/tx ring size (default 2048; fill/completion get 2*N)\n"
"      --no-verify        rxdrop/l2fwd: do not verify frames\n"
"      --rx               txonly: also receive and verify (e.g. frames reflected by\n"
"                         l2fwd); -C then also waits for COUNT received frames\n"
"      --rate PPS         txonly: send at most PPS frames per second\n"
"  -v, --verbose          libxdp/libbpf debug output\n"
"  -h, --help             this help\n"
"\n"
"stderr: 'xdpsock: ready ...' once bound, then 'pps rx=N tx=N' every second.\n"
"stdout: one JSON line with the totals and the kernel's XDP_STATISTICS.\n");
}

static uint64_t parse_u64(const char *s, const char *what, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		usage_error("invalid %s '%s' (expected %" PRIu64 "..%" PRIu64 ")", what, s,
			    min, max);
	return v;
}

static void parse_mac(const char *s, uint8_t mac[6], const char *what)
{
	unsigned int b[6];
	char tail;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &tail) != 6)
		usage_error("invalid %s '%s' (expected aa:bb:cc:dd:ee:ff)", what, s);
	for (int i = 0; i < 6; i++) {
		if (b[i] > 0xff)
			usage_error("invalid %s '%s'", what, s);
		mac[i] = (uint8_t)b[i];
	}
}

enum {
	OPT_DST_MAC = 256,
	OPT_SRC_MAC,
	OPT_UMEM_MAP,
	OPT_WAIT_FILE,
	OPT_FRAMES,
	OPT_RING,
	OPT_NO_VERIFY,
	OPT_RX,
	OPT_RATE,
};

static void parse_args(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "interface", required_argument, NULL, 'i' },
		{ "queue", required_argument, NULL, 'q' },
		{ "rxdrop", no_argument, NULL, 'r' },
		{ "txonly", no_argument, NULL, 't' },
		{ "l2fwd", no_argument, NULL, 'l' },
		{ "xdp-skb", no_argument, NULL, 'S' },
		{ "xdp-native", no_argument, NULL, 'N' },
		{ "copy", no_argument, NULL, 'c' },
		{ "zero-copy", no_argument, NULL, 'z' },
		{ "tx-pkt-size", required_argument, NULL, 's' },
		{ "frame-size", required_argument, NULL, 'f' },
		{ "unaligned", no_argument, NULL, 'u' },
		{ "batch-size", required_argument, NULL, 'b' },
		{ "duration", required_argument, NULL, 'd' },
		{ "count", required_argument, NULL, 'C' },
		{ "wait", no_argument, NULL, 'w' },
		{ "poll", no_argument, NULL, 'p' },
		{ "no-need-wakeup", no_argument, NULL, 'm' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "dst-mac", required_argument, NULL, OPT_DST_MAC },
		{ "src-mac", required_argument, NULL, OPT_SRC_MAC },
		{ "umem-map", required_argument, NULL, OPT_UMEM_MAP },
		{ "wait-file", required_argument, NULL, OPT_WAIT_FILE },
		{ "frames", required_argument, NULL, OPT_FRAMES },
		{ "ring", required_argument, NULL, OPT_RING },
		{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },
		{ "rx", no_argument, NULL, OPT_RX },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ NULL, 0, NULL, 0 },
	};
	int modes = 0, c;
	char *end;

	while ((c = getopt_long(argc, argv, "i:q:rtlSNczs:f:ub:d:C:wpmvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'i':
			opt.ifname = optarg;
			break;
		case 'q':
			opt.queue = (uint32_t)parse_u64(optarg, "queue", 0, UINT32_MAX);
			break;
		case 'r':
			opt.mode = MODE_RXDROP;
			modes++;
			break;
		case 't':
			opt.mode = MODE_TXONLY;
			modes++;
			break;
		case 'l':
			opt.mode = MODE_L2FWD;
			modes++;
			break;
		case 'S':
			if (opt.xdp_flags & XDP_FLAGS_DRV_MODE)
				usage_error("-S and -N are mutually exclusive");
			opt.xdp_flags |= XDP_FLAGS_SKB_MODE;
			break;
		case 'N':
			if (opt.xdp_flags & XDP_FLAGS_SKB_MODE)
				usage_error("-S and -N are mutually exclusive");
			opt.xdp_flags |= XDP_FLAGS_DRV_MODE;
			break;
		case 'c':
			if (opt.bind_flags & XDP_ZEROCOPY)
				usage_error("-c and -z are mutually exclusive");
			opt.bind_flags |= XDP_COPY;
			break;
		case 'z':
			if (opt.bind_flags & XDP_COPY)
				usage_error("-c and -z are mutually exclusive");
			opt.bind_flags |= XDP_ZEROCOPY;
			break;
		case 's':
			opt.tx_size = (uint32_t)parse_u64(optarg, "tx frame size", FRAME_MIN_LEN,
							  FRAME_MAX_LEN);
			break;
		case 'f':
			opt.frame_size = (uint32_t)parse_u64(optarg, "frame size", 2048, 65536);
			break;
		case 'u':
			opt.unaligned = true;
			break;
		case 'b':
			opt.batch = (uint32_t)parse_u64(optarg, "batch size", 1, 65536);
			break;
		case 'd':
			errno = 0;
			opt.duration = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(opt.duration > 0) ||
			    opt.duration > 1e7)
				usage_error("invalid duration '%s'", optarg);
			break;
		case 'C':
			opt.count = parse_u64(optarg, "count", 1, UINT64_MAX / 2);
			break;
		case 'w':
			opt.wait = true;
			break;
		case 'p':
			opt.poll = true;
			break;
		case 'm':
			opt.need_wakeup = false;
			break;
		case 'v':
			opt.verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_DST_MAC:
			parse_mac(optarg, opt.dst_mac, "--dst-mac");
			break;
		case OPT_SRC_MAC:
			parse_mac(optarg, opt.src_mac, "--src-mac");
			opt.src_mac_set = true;
			break;
		case OPT_UMEM_MAP:
			opt.umem_map = optarg;
			break;
		case OPT_WAIT_FILE:
			opt.wait_file = optarg;
			break;
		case OPT_FRAMES:
			opt.frames = (uint32_t)parse_u64(optarg, "umem frame count", 1, 1u << 22);
			break;
		case OPT_RING:
			opt.ring = (uint32_t)parse_u64(optarg, "ring size", 1, 1u << 20);
			break;
		case OPT_NO_VERIFY:
			opt.verify = false;
			break;
		case OPT_RX:
			opt.tx_rx = true;
			break;
		case OPT_RATE:
			opt.rate = parse_u64(optarg, "rate", 1, 1000000000ull);
			break;
		default:
			usage_error("unknown option");
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!opt.ifname)
		usage_error("-i IFACE is required");
	if (modes > 1)
		usage_error("-r, -t and -l are mutually exclusive");
	if (opt.ring & (opt.ring - 1))
		usage_error("--ring must be a power of two");
	if (opt.batch > opt.ring)
		usage_error("batch size %u is larger than the ring size %u", opt.batch, opt.ring);
	if (!opt.unaligned && (opt.frame_size & (opt.frame_size - 1)))
		usage_error("frame size %u must be a power of two unless -u is given",
			    opt.frame_size);
	if (opt.mode == MODE_TXONLY && opt.tx_size > opt.frame_size)
		usage_error("tx frame size %u does not fit in a %u-byte umem frame", opt.tx_size,
			    opt.frame_size);
	if (opt.wait && !opt.count)
		usage_error("-w needs -C COUNT");
	if ((opt.tx_rx || opt.rate) && opt.mode != MODE_TXONLY)
		usage_error("--rx and --rate need -t");
	if (opt.tx_rx && opt.frames < 2)
		usage_error("--rx needs at least 2 umem frames");
	if ((uint64_t)opt.frames * opt.frame_size > (1ull << 34))
		usage_error("umem too large");
}

/* -------------------------------------------------------------- setup */

/* txonly: the interface's MAC (unless --src-mac), and a warning when the
 * frames are longer than the MTU allows (the driver would drop them). */
static void check_tx_interface(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket: %s", strerror(errno));
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", opt.ifname);
	if (!opt.src_mac_set) {
		if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
			die("SIOCGIFHWADDR %s: %s (%s)", opt.ifname, strerror(errno),
			    errname(errno));
		memcpy(opt.src_mac, ifr.ifr_hwaddr.sa_data, 6);
	}
	if (ioctl(fd, SIOCGIFMTU, &ifr) == 0 && opt.tx_size > (uint32_t)ifr.ifr_mtu + 14)
		fprintf(stderr,
			"xdpsock: warning: %u-byte frames exceed the MTU of %s (%d + 14); "
			"expect them to be dropped\n",
			opt.tx_size, opt.ifname, ifr.ifr_mtu);
	close(fd);
}

static const char *create_hint(int err)
{
	static char hint[256];
	bool zc = opt.bind_flags & XDP_ZEROCOPY;
	bool drv = opt.xdp_flags & XDP_FLAGS_DRV_MODE;

	switch (err) {
	case EOPNOTSUPP:
		if (zc && drv)
			snprintf(hint, sizeof(hint), "zero-copy or native XDP not supported by %s",
				 opt.ifname);
		else if (zc)
			snprintf(hint, sizeof(hint), "zero-copy not supported by %s", opt.ifname);
		else if (drv)
			snprintf(hint, sizeof(hint), "native XDP not supported by %s", opt.ifname);
		else
			snprintf(hint, sizeof(hint), "AF_XDP not supported on %s", opt.ifname);
		break;
	case EINVAL:
		snprintf(hint, sizeof(hint),
			 "%s rejected the socket (queue %u out of range? zero-copy with generic XDP? "
			 "ring or frame size?)",
			 opt.ifname, opt.queue);
		break;
	case EEXIST:
		snprintf(hint, sizeof(hint),
			 "another XDP program is attached to %s in a different mode (-S/-N)",
			 opt.ifname);
		break;
	case EBUSY:
		snprintf(hint, sizeof(hint),
			 "queue %u of %s is busy (another AF_XDP socket, or an XDP program "
			 "attached in another mode)",
			 opt.queue, opt.ifname);
		break;
	case EPERM:
	case EACCES:
		snprintf(hint, sizeof(hint), "needs root (CAP_NET_ADMIN, CAP_BPF, CAP_IPC_LOCK)");
		break;
	case ENOMEM:
	case ENOBUFS:
		snprintf(hint, sizeof(hint), "out of (locked) memory");
		break;
	case ENXIO:
	case ENODEV:
		snprintf(hint, sizeof(hint), "%s went away or is down", opt.ifname);
		break;
	default:
		snprintf(hint, sizeof(hint), "interface %s queue %u", opt.ifname, opt.queue);
	}
	return hint;
}

static void write_umem_map(const char *path)
{
	long page = sysconf(_SC_PAGESIZE);
	int fd;
	FILE *f;

	if (mlock(xs.buf, xs.buf_len) < 0)
		die("--umem-map: mlock: %s (%s)", strerror(errno), errname(errno));
	/* touch every page so each one is backed before we ask for its frame */
	for (size_t off = 0; off < xs.buf_len; off += (size_t)page)
		((volatile uint8_t *)xs.buf)[off] = ((volatile uint8_t *)xs.buf)[off];

	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("--umem-map: /proc/self/pagemap: %s (%s)", strerror(errno), errname(errno));
	f = fopen(path, "w");
	if (!f)
		die("--umem-map: %s: %s (%s)", path, strerror(errno), errname(errno));
	for (size_t off = 0; off < xs.buf_len; off += (size_t)page) {
		uint64_t vpn = ((uintptr_t)xs.buf + off) / (uint64_t)page, ent, pfn;

		if (pread(fd, &ent, sizeof(ent), (off_t)(vpn * sizeof(ent))) != sizeof(ent))
			die("--umem-map: reading /proc/self/pagemap: %s", strerror(errno));
		if (!(ent >> 63 & 1))
			die("--umem-map: umem page at offset 0x%zx is not present", off);
		pfn = ent & ((1ull << 55) - 1);
		if (!pfn)
			die("--umem-map: /proc/self/pagemap hides frame numbers (needs CAP_SYS_ADMIN)");
		fprintf(f, "%zx %" PRIx64 "\n", off, pfn * (uint64_t)page);
	}
	if (fclose(f) != 0)
		die("--umem-map: writing %s: %s", path, strerror(errno));
	close(fd);
}

static const char *query_xdp_mode(void)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	if (opt.xdp_flags & XDP_FLAGS_SKB_MODE)
		return "skb";
	if (opt.xdp_flags & XDP_FLAGS_DRV_MODE)
		return "native";
	if (bpf_xdp_query((int)opt.ifindex, 0, &q) == 0) {
		if (q.attach_mode == XDP_ATTACHED_DRV)
			return "native";
		if (q.attach_mode == XDP_ATTACHED_SKB)
			return "skb";
		if (q.attach_mode == XDP_ATTACHED_HW)
			return "hw";
		if (q.attach_mode == XDP_ATTACHED_MULTI)
			return q.drv_prog_id ? "native" : "skb";
	}
	return "unknown";
}

/* Id of the XDP program attached to the interface in our mode (0: none). */
static uint32_t attached_prog_id(void)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	if (bpf_xdp_query((int)opt.ifindex, 0, &q) != 0)
		return 0;
	if (opt.xdp_flags & XDP_FLAGS_SKB_MODE)
		return q.skb_prog_id;
	if (opt.xdp_flags & XDP_FLAGS_DRV_MODE)
		return q.drv_prog_id;
	return q.prog_id ? q.prog_id : q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id;
}

/*
 * libxdp serialises its program reference counting with a lock directory: in
 * the bpffs at /sys/fs/bpf when there is one, else /run/xdp. Without either
 * (no bpffs under 'ip netns exec' or in a minimal guest, and no writable
 * /run) it cannot drop its reference when the socket closes, leaves its
 * program attached and the next run fails. Make sure /run/xdp exists, or
 * stop here with a clear message before anything is attached.
 */
static void ensure_libxdp_lock_dir(void)
{
	struct statfs sfs;

	if (getenv("LIBXDP_BPFFS"))
		return;
	if (statfs("/sys/fs/bpf", &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC)
		return;
	if (mkdir("/run", 0755) < 0 && errno != EEXIST)
		goto fail;
	if (mkdir("/run/xdp", 0700) < 0 && errno != EEXIST)
		goto fail;
	return;
fail:
	die("libxdp needs /run/xdp or a bpffs at /sys/fs/bpf for its lock: %s (%s); "
	    "mount one with 'mount -t bpf bpf /sys/fs/bpf' or make /run writable",
	    strerror(errno), errname(errno));
}

static void setup(void)
{
	struct xsk_umem_config ucfg = {
		.fill_size = opt.ring * 2,
		.comp_size = opt.ring * 2,
		.frame_size = opt.frame_size,
		.frame_headroom = XSK_UMEM__DEFAULT_FRAME_HEADROOM,
		.flags = opt.unaligned ? XDP_UMEM_UNALIGNED_CHUNK_FLAG : 0,
	};
	struct xsk_socket_config scfg = {
		.rx_size = opt.mode == MODE_TXONLY && !opt.tx_rx ? 0 : opt.ring,
		.tx_size = opt.mode == MODE_RXDROP ? 0 : opt.ring,
		.libxdp_flags = 0,
		.xdp_flags = opt.xdp_flags,
		.bind_flags = (uint16_t)(opt.bind_flags |
					 (opt.need_wakeup ? XDP_USE_NEED_WAKEUP : 0)),
	};
	struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
	struct xdp_options xo;
	socklen_t optlen = sizeof(xo);
	long page = sysconf(_SC_PAGESIZE);
	size_t len = (size_t)opt.frames * opt.frame_size;
	uint32_t tx_frames, busy_retries = 0;
	int err;

	opt.ifindex = if_nametoindex(opt.ifname);
	if (!opt.ifindex)
		die("interface %s: %s (%s)", opt.ifname, strerror(errno), errname(errno));
	ensure_libxdp_lock_dir();
	if (opt.mode == MODE_TXONLY)
		check_tx_interface();

	if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0 && opt.verbose)
		fprintf(stderr, "xdpsock: setrlimit(RLIMIT_MEMLOCK): %s\n", strerror(errno));

	xs.buf_len = (len + (size_t)page - 1) / (size_t)page * (size_t)page;
	xs.buf = mmap(NULL, xs.buf_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (xs.buf == MAP_FAILED)
		die("mmap umem (%zu bytes): %s (%s)", xs.buf_len, strerror(errno), errname(errno));

	/* A socket closed just before (e.g. the previous test run on this queue)
	 * keeps the queue busy until the kernel's deferred pool cleanup has run,
	 * so EBUSY is retried for a while, with a fresh umem each time. */
	for (uint64_t give_up = now_ns() + BUSY_RETRY_NS;;) {
		err = xsk_umem__create(&xs.umem, xs.buf, len, &xs.fq, &xs.cq, &ucfg);
		if (err)
			die("xsk_umem__create: %s (%s): %u frames of %u bytes%s", strerror(-err),
			    errname(-err), opt.frames, opt.frame_size,
			    opt.unaligned ? ", unaligned" : "");
		err = xsk_socket__create(&xs.xsk, opt.ifname, opt.queue, xs.umem,
					 opt.mode == MODE_TXONLY && !opt.tx_rx ? NULL : &xs.rx,
					 opt.mode == MODE_RXDROP ? NULL : &xs.tx, &scfg);
		if (err != -EBUSY || now_ns() >= give_up || stop_requested)
			break;
		if (!busy_retries++)
			fprintf(stderr, "xdpsock: queue %u of %s busy, retrying for up to %llu s\n",
				opt.queue, opt.ifname, BUSY_RETRY_NS / 1000000000ull);
		xsk_umem__delete(xs.umem);
		xs.umem = NULL;
		usleep(20000);
	}
	if (err)
		die("xsk_socket__create: %s (%s): %s", strerror(-err), errname(-err),
		    create_hint(-err));

	/* The umem pages are pinned by the kernel now, so their addresses are final. */
	if (opt.umem_map)
		write_umem_map(opt.umem_map);

	xs.fd = xsk_socket__fd(xs.xsk);

	memset(&xo, 0, sizeof(xo));
	if (getsockopt(xs.fd, SOL_XDP, XDP_OPTIONS, &xo, &optlen) == 0)
		xs.zerocopy = xo.flags & XDP_OPTIONS_ZEROCOPY;

	/* txonly --rx: the first half of the umem for TX, the second for RX */
	tx_frames = opt.mode != MODE_TXONLY ? 0 : opt.tx_rx ? opt.frames / 2 : opt.frames;
	xs.tx_free.cap = opt.frames;
	xs.tx_free.a = malloc(sizeof(uint64_t) * opt.frames);
	xs.rx_free.a = malloc(sizeof(uint64_t) * opt.frames);
	xs.tx_phase = malloc(sizeof(uint16_t) * opt.frames);
	if (!xs.tx_free.a || !xs.rx_free.a || !xs.tx_phase)
		die("out of memory");
	for (uint32_t i = 0; i < opt.frames; i++) {
		xs.tx_phase[i] = 0xffff;
		if (i < tx_frames)
			fifo_push(&xs.tx_free, (uint64_t)i * opt.frame_size);
	}
	for (uint32_t i = opt.frames; i-- > tx_frames;)
		xs.rx_free.a[xs.rx_free.n++] = (uint64_t)i * opt.frame_size;
}

/* --------------------------------------------------------------- datapath */

static inline uint64_t chunk_base(uint64_t addr)
{
	return xsk_umem__add_offset_to_addr(addr) / opt.frame_size * opt.frame_size;
}

static inline uint8_t *umem_data(uint64_t addr)
{
	return xsk_umem__get_data(xs.buf, xsk_umem__add_offset_to_addr(addr));
}

static void kick_tx(void)
{
	if (xs.zerocopy && opt.need_wakeup && !xsk_ring_prod__needs_wakeup(&xs.tx))
		return;
	cnt.tx_kicks++;
	if (sendto(xs.fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
		return;
	switch (errno) {
	case EAGAIN: /* copy mode: more descriptors than one call's budget */
	case EINTR:
		return;
	case EBUSY:
	case ENOBUFS:
	case ENETDOWN:
		cnt.tx_kick_errors++;
		return;
	default:
		die("sendto (TX kick): %s (%s)", strerror(errno), errname(errno));
	}
}

static void wakeup_rx(void)
{
	if (opt.need_wakeup && !xsk_ring_prod__needs_wakeup(&xs.fq))
		return;
	if (recvfrom(xs.fd, NULL, 0, MSG_DONTWAIT, NULL, NULL) < 0 && errno != EAGAIN &&
	    errno != EBUSY && errno != ENOBUFS && errno != ENETDOWN && errno != EINTR)
		die("recvfrom (RX wakeup): %s (%s)", strerror(errno), errname(errno));
}

static void wait_poll(short events)
{
	struct pollfd p = { .fd = xs.fd, .events = events };

	if (poll(&p, 1, 100) < 0 && errno != EINTR)
		die("poll: %s", strerror(errno));
}

static uint32_t reap_completions(void)
{
	uint32_t idx, n;

	if (!xs.outstanding_tx)
		return 0;
	n = xsk_ring_cons__peek(&xs.cq, opt.ring * 2, &idx);
	if (!n)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t base = chunk_base(*xsk_ring_cons__comp_addr(&xs.cq, idx + i));

		if (opt.mode == MODE_L2FWD)
			xs.rx_free.a[xs.rx_free.n++] = base;
		else
			fifo_push(&xs.tx_free, base);
	}
	xsk_ring_cons__release(&xs.cq, n);
	xs.outstanding_tx -= n;
	cnt.tx_completed += n;
	cnt.t_last_tx = now_ns();
	return n;
}

static void refill_fill_ring(void)
{
	uint32_t idx, n;

	if (!xs.rx_free.n)
		return;
	n = xsk_prod_nb_free(&xs.fq, xs.rx_free.n);
	if (n > xs.rx_free.n)
		n = xs.rx_free.n;
	if (!n || xsk_ring_prod__reserve(&xs.fq, n, &idx) != n)
		return;
	for (uint32_t i = 0; i < n; i++)
		*xsk_ring_prod__fill_addr(&xs.fq, idx + i) = xs.rx_free.a[--xs.rx_free.n];
	xsk_ring_prod__submit(&xs.fq, n);
}

static void dump_corrupt(const uint8_t *d, uint32_t len, uint64_t addr)
{
	fprintf(stderr, "xdpsock: corrupt frame #%" PRIu64 " (addr 0x%" PRIx64 ", len %u):",
		cnt.rx_frames, addr, len);
	for (uint32_t i = 0; i < len && i < 96; i++)
		fprintf(stderr, "%s%02x", i % 32 ? " " : "\n  ", d[i]);
	fputc('\n', stderr);
}

/* Account for and verify one received frame. */
static inline void rx_account(uint64_t addr, uint32_t len)
{
	const uint8_t *d = umem_data(addr);
	uint32_t flow;
	uint64_t seq;

	cnt.rx_frames++;
	cnt.rx_bytes += len;
	if (opt.verify) {
		switch (frame_verify(d, len, &flow, &seq)) {
		case FRAME_VERIFIED:
			cnt.rx_verified++;
			frame_seq_record(flow, seq);
			break;
		case FRAME_FOREIGN:
			cnt.rx_foreign++;
			break;
		case FRAME_CORRUPT:
			cnt.rx_corrupt++;
			if (corrupt_dumps < MAX_CORRUPT_DUMPS) {
				corrupt_dumps++;
				dump_corrupt(d, len, addr);
			}
			break;
		}
	}
}

/* Received frames that count towards -C: all but foreign ones (IPv6 noise...). */
static inline uint64_t rx_counted(void)
{
	return cnt.rx_frames - cnt.rx_foreign;
}

static uint32_t rx_budget(void)
{
	uint64_t left;

	if (!opt.count)
		return opt.batch;
	left = opt.count - rx_counted();
	return left < opt.batch ? (uint32_t)left : opt.batch;
}

static void rx_drop_batch(void)
{
	uint32_t idx, n;

	refill_fill_ring();
	n = xsk_ring_cons__peek(&xs.rx, rx_budget(), &idx);
	if (!n) {
		wakeup_rx();
		return;
	}
	if (!cnt.t_first_rx)
		cnt.t_first_rx = now_ns();
	for (uint32_t i = 0; i < n; i++) {
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&xs.rx, idx + i);

		rx_account(d->addr, d->len);
		xs.rx_free.a[xs.rx_free.n++] = chunk_base(d->addr);
	}
	xsk_ring_cons__release(&xs.rx, n);
	cnt.t_last_rx = now_ns();
	refill_fill_ring();
}

static void swap_macs(uint8_t *d)
{
	uint8_t tmp[6];

	memcpy(tmp, d, 6);
	memcpy(d, d + 6, 6);
	memcpy(d + 6, tmp, 6);
}

static void l2fwd_batch(void)
{
	uint32_t idx_rx, idx_tx, n;

	reap_completions();
	refill_fill_ring();
	n = xsk_ring_cons__peek(&xs.rx, rx_budget(), &idx_rx);
	if (!n) {
		wakeup_rx();
		if (xs.outstanding_tx && !opt.poll)
			kick_tx();
		return;
	}
	if (!cnt.t_first_rx)
		cnt.t_first_rx = now_ns();
	while (xsk_ring_prod__reserve(&xs.tx, n, &idx_tx) != n) {
		/* TX ring full: let the kernel make room */
		kick_tx();
		reap_completions();
		refill_fill_ring();
		if (stop_requested) {
			xsk_ring_cons__cancel(&xs.rx, n);
			return;
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct xdp_desc *rd = xsk_ring_cons__rx_desc(&xs.rx, idx_rx + i);
		struct xdp_desc *td = xsk_ring_prod__tx_desc(&xs.tx, idx_tx + i);

		rx_account(rd->addr, rd->len);
		swap_macs(umem_data(rd->addr));
		td->addr = xsk_umem__add_offset_to_addr(rd->addr);
		td->len = rd->len;
		td->options = 0;
		cnt.tx_bytes += rd->len;
	}
	xsk_ring_prod__submit(&xs.tx, n);
	xsk_ring_cons__release(&xs.rx, n);
	cnt.t_last_rx = now_ns();
	if (!cnt.t_first_tx)
		cnt.t_first_tx = cnt.t_last_rx;
	cnt.tx_frames += n;
	xs.outstanding_tx += n;
	if (!opt.poll)
		kick_tx();
}

static void tx_batch(void)
{
	uint32_t idx, n = opt.batch;

	reap_completions();
	if (opt.count && opt.count - cnt.tx_frames < n)
		n = (uint32_t)(opt.count - cnt.tx_frames);
	if (opt.rate) {
		double allowed = (double)(now_ns() - t_start) * (double)opt.rate / 1e9 + 1;

		if (allowed < (double)cnt.tx_frames + n)
			n = allowed > (double)cnt.tx_frames ? (uint32_t)(allowed - (double)cnt.tx_frames) : 0;
	}
	if (n > fifo_len(&xs.tx_free))
		n = fifo_len(&xs.tx_free);
	if (n) {
		uint32_t room = xsk_prod_nb_free(&xs.tx, n);

		/* reserve() is all or nothing: ask for what fits */
		n = xsk_ring_prod__reserve(&xs.tx, room < n ? room : n, &idx);
		for (uint32_t i = 0; i < n; i++) {
			struct xdp_desc *td = xsk_ring_prod__tx_desc(&xs.tx, idx + i);
			uint64_t addr = fifo_pop(&xs.tx_free), seq = next_seq++;
			uint8_t *buf = umem_data(addr);
			uint16_t *phase = &xs.tx_phase[addr / opt.frame_size];

			frame_set_seq(&tmpl, buf, seq);
			if (*phase != (seq & 0xff)) {
				frame_set_pattern(&tmpl, buf, seq);
				*phase = seq & 0xff;
			}
			td->addr = addr;
			td->len = opt.tx_size;
			td->options = 0;
		}
		if (n) {
			xsk_ring_prod__submit(&xs.tx, n);
			if (!cnt.t_first_tx)
				cnt.t_first_tx = now_ns();
			cnt.tx_frames += n;
			cnt.tx_bytes += (uint64_t)n * opt.tx_size;
			xs.outstanding_tx += n;
		}
	}
	if (xs.outstanding_tx && !opt.poll)
		kick_tx();
}

/* ------------------------------------------------------------------ main */

static bool goal_reached(void)
{
	if (!opt.count)
		return false;
	if (opt.mode == MODE_TXONLY && cnt.tx_frames < opt.count)
		return false;
	if (opt.mode == MODE_TXONLY && !opt.tx_rx)
		return true;
	return rx_counted() >= opt.count;
}

static void drain_tx(void)
{
	uint64_t deadline = now_ns() + DRAIN_TIMEOUT_NS;

	while (xs.outstanding_tx && now_ns() < deadline) {
		if (opt.poll)
			wait_poll(POLLOUT);
		else
			kick_tx();
		if (!reap_completions())
			usleep(50);
	}
}

static void print_json(double seconds, const struct xdp_statistics *st, bool have_st)
{
	struct frame_seq_stats ss;
	double tx_s = 0, rx_s = 0;
	const char *bind = opt.bind_flags & XDP_ZEROCOPY ? "zerocopy" :
			   opt.bind_flags & XDP_COPY	 ? "copy" :
							   "default";
	struct xdp_statistics zero = { 0 };

	if (!have_st)
		st = &zero;
	frame_seq_stats(&ss);
	if (cnt.t_first_tx && cnt.t_last_tx > cnt.t_first_tx)
		tx_s = (double)(cnt.t_last_tx - cnt.t_first_tx) / 1e9;
	if (cnt.t_first_rx && cnt.t_last_rx > cnt.t_first_rx)
		rx_s = (double)(cnt.t_last_rx - cnt.t_first_rx) / 1e9;

	printf("{\"mode\":\"%s\",\"xdpMode\":\"%s\",\"bind\":\"%s\",\"queue\":%u,\"frameSize\":%u,"
	       "\"txFrames\":%" PRIu64 ",\"txBytes\":%" PRIu64 ",\"txCompleted\":%" PRIu64
	       ",\"rxFrames\":%" PRIu64 ",\"rxBytes\":%" PRIu64 ",\"rxVerified\":%" PRIu64
	       ",\"rxCorrupt\":%" PRIu64 ",\"rxDropped\":%llu,\"rxInvalid\":%llu,\"txInvalid\":%llu"
	       ",\"rxRingFull\":%llu,\"fillRingEmpty\":%llu,\"txRingEmpty\":%llu"
	       ",\"seconds\":%.3f,\"txPps\":%.0f,\"rxPps\":%.0f"
	       ",\"zerocopy\":%s,\"needWakeup\":%s,\"txSize\":%u,\"batch\":%u,\"umemFrames\":%u"
	       ",\"rxForeign\":%" PRIu64 ",\"rxDuplicate\":%" PRIu64 ",\"rxOutOfOrder\":%" PRIu64
	       ",\"rxGaps\":%" PRIu64 ",\"rxFlows\":%u,\"txKicks\":%" PRIu64 ",\"txKickErrors\":%" PRIu64
	       ",\"txSeconds\":%.3f,\"rxSeconds\":%.3f,\"statsValid\":%s}\n",
	       mode_names[opt.mode], query_xdp_mode(), bind, opt.queue, opt.frame_size,
	       cnt.tx_frames, cnt.tx_bytes, cnt.tx_completed, cnt.rx_frames, cnt.rx_bytes,
	       cnt.rx_verified, cnt.rx_corrupt, (unsigned long long)st->rx_dropped,
	       (unsigned long long)st->rx_invalid_descs, (unsigned long long)st->tx_invalid_descs,
	       (unsigned long long)st->rx_ring_full,
	       (unsigned long long)st->rx_fill_ring_empty_descs,
	       (unsigned long long)st->tx_ring_empty_descs, seconds,
	       tx_s > 0 ? (double)cnt.tx_frames / tx_s : 0.0,
	       rx_s > 0 ? (double)cnt.rx_frames / rx_s : 0.0, xs.zerocopy ? "true" : "false",
	       opt.need_wakeup ? "true" : "false", opt.mode == MODE_TXONLY ? opt.tx_size : 0,
	       opt.batch, opt.frames, cnt.rx_foreign, ss.duplicates, ss.out_of_order, ss.gaps,
	       ss.flows, cnt.tx_kicks, cnt.tx_kick_errors, tx_s, rx_s, have_st ? "true" : "false");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct xdp_statistics st;
	socklen_t optlen = sizeof(st);
	uint64_t t_end, deadline = 0, t_report, last_rx = 0, last_tx = 0;
	bool have_st, failed = false;

	parse_args(argc, argv);
	libxdp_set_print(print_libxdp);
	libbpf_set_print(print_libbpf);
	setvbuf(stderr, NULL, _IOLBF, 0);

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	frame_ramp_init();
	if (!frame_seq_init())
		die("out of memory");
	setup();

	if (opt.mode == MODE_TXONLY) {
		if (opt.tx_rx)
			refill_fill_ring();
		frame_template_init(&tmpl, opt.tx_size, opt.dst_mac, opt.src_mac, FRAME_IP_GUEST,
				    FRAME_IP_DEVICE, opt.queue);
		/* pre-fill every chunk with the header; the hot path writes only the
		 * IPv4 id and checksum, the seq and the pattern */
		for (uint32_t i = 0; i < fifo_len(&xs.tx_free); i++) {
			uint64_t addr = xs.tx_free.a[(xs.tx_free.head + i) % xs.tx_free.cap];

			frame_write(&tmpl, umem_data(addr), i);
			xs.tx_phase[addr / opt.frame_size] = i & 0xff;
		}
	} else {
		refill_fill_ring();
	}

	fprintf(stderr,
		"xdpsock: ready mode=%s iface=%s ifindex=%u queue=%u xdp=%s prog=%u bind=%s "
		"zerocopy=%s\n",
		mode_names[opt.mode], opt.ifname, opt.ifindex, opt.queue, query_xdp_mode(),
		attached_prog_id(),
		opt.bind_flags & XDP_ZEROCOPY ? "zerocopy" :
		opt.bind_flags & XDP_COPY     ? "copy" :
						"default",
		xs.zerocopy ? "yes" : "no");

	if (opt.wait_file) {
		/* -d counts from here: the wait is not part of the run */
		while (!stop_requested && access(opt.wait_file, F_OK) != 0)
			usleep(5000);
	}

	t_start = now_ns();
	t_report = t_start + 1000000000ull;
	if (opt.duration > 0)
		deadline = t_start + (uint64_t)(opt.duration * 1e9);

	while (!stop_requested && !goal_reached()) {
		uint64_t t = now_ns();

		if (deadline && t >= deadline)
			break;
		if (t >= t_report) {
			double dt = (double)(t - t_report + 1000000000ull) / 1e9;

			fprintf(stderr, "pps rx=%.0f tx=%.0f\n",
				(double)(cnt.rx_frames - last_rx) / dt,
				(double)(cnt.tx_frames - last_tx) / dt);
			last_rx = cnt.rx_frames;
			last_tx = cnt.tx_frames;
			t_report = t + 1000000000ull;
		}
		switch (opt.mode) {
		case MODE_RXDROP:
			if (opt.poll)
				wait_poll(POLLIN);
			rx_drop_batch();
			break;
		case MODE_L2FWD:
			if (opt.poll)
				wait_poll(POLLIN);
			l2fwd_batch();
			break;
		case MODE_TXONLY:
			if (opt.poll)
				wait_poll(opt.tx_rx ? POLLIN | POLLOUT : POLLOUT);
			tx_batch();
			if (opt.tx_rx)
				rx_drop_batch();
			break;
		}
	}
	if (opt.mode != MODE_RXDROP)
		drain_tx();
	if (!cnt.t_last_tx || cnt.t_last_tx < cnt.t_first_tx)
		cnt.t_last_tx = now_ns();
	t_end = now_ns();

	memset(&st, 0, sizeof(st));
	have_st = getsockopt(xs.fd, SOL_XDP, XDP_STATISTICS, &st, &optlen) == 0;
	if (!have_st)
		fprintf(stderr, "xdpsock: getsockopt(XDP_STATISTICS): %s\n", strerror(errno));

	print_json((double)(t_end - t_start) / 1e9, &st, have_st);

	if (xs.outstanding_tx) {
		fprintf(stderr, "xdpsock: %u of %" PRIu64 " TX frames never completed\n",
			xs.outstanding_tx, cnt.tx_frames);
		failed = true;
	}
	if (opt.wait && !goal_reached()) {
		fprintf(stderr,
			"xdpsock: timeout: sent %" PRIu64 ", received %" PRIu64 " of %" PRIu64
			" frames\n",
			cnt.tx_frames, rx_counted(), opt.count);
		failed = true;
	}

	teardown();
	munmap(xs.buf, xs.buf_len);
	free(xs.tx_free.a);
	free(xs.tx_phase);
	free(xs.rx_free.a);
	frame_seq_free();
	return failed ? EXIT_GOAL : 0;
}
