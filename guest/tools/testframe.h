/*
 * The zcnic test frame (docs/test-frame.md) and the small helpers every guest tool needs, in
 * one place. Header-only (static inline): the image builder compiles each tool's .c file on
 * its own, and a tool that does not use a helper gets no warning for it.
 */
#ifndef ZCNIC_TESTFRAME_H
#define ZCNIC_TESTFRAME_H

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OFF_IP 14
#define OFF_UDP 34
#define OFF_MAGIC 42
#define OFF_FLOW 46
#define OFF_SEQ 50
#define OFF_PATTERN 58
#define MIN_FRAME 60
#define UDP_DPORT 9000
#define UDP_SPORT_BASE 10000
#define TEST_FRAME_MAGIC "ZCNC"
/* Sequence numbers a receiver remembers per flow (a bitmap that grows to 8 MiB at most). */
#define MAX_TRACKED_SEQ (64ULL * 1024 * 1024)

static inline void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline uint16_t get16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline void put32le(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline uint32_t get32le(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static inline void put64le(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline uint64_t get64le(const uint8_t *p) { return (uint64_t)get32le(p) | (uint64_t)get32le(p + 4) << 32; }

/* One's-complement sum over the 20-byte IPv4 header; 0 means "checksum valid" when verifying. */
static inline uint16_t ip_checksum(const uint8_t *h)
{
	uint32_t sum = 0;
	for (int i = 0; i < 20; i += 2)
		sum += get16(h + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static inline int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;
	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6)
		return -1;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 0xff)
			return -1;
		mac[i] = (uint8_t)v[i];
	}
	return 0;
}

static inline int parse_ull(const char *s, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

static inline double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}

/* Everything of a frame that does not depend on seq (addresses in network order); build_frame() patches the rest. */
static inline void frame_template(uint8_t *f, unsigned size, const uint8_t dst_mac[6], const uint8_t src_mac[6], uint32_t src_ip, uint32_t dst_ip,
				  uint32_t flow)
{
	memset(f, 0, size);
	memcpy(f, dst_mac, 6);
	memcpy(f + 6, src_mac, 6);
	put16(f + 12, 0x0800);
	uint8_t *ip = f + OFF_IP;
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(size - OFF_IP));
	put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = IPPROTO_UDP;
	memcpy(ip + 12, &src_ip, 4);
	memcpy(ip + 16, &dst_ip, 4);
	put16(f + OFF_UDP, (uint16_t)(UDP_SPORT_BASE + flow));
	put16(f + OFF_UDP + 2, UDP_DPORT);
	put16(f + OFF_UDP + 4, (uint16_t)(size - OFF_UDP));
	memcpy(f + OFF_MAGIC, TEST_FRAME_MAGIC, 4);
	put32le(f + OFF_FLOW, flow);
}

/* The fields that depend on seq: IPv4 identification and checksum, seq, the byte pattern. */
static inline void build_frame(uint8_t *f, unsigned size, uint64_t seq)
{
	uint8_t *ip = f + OFF_IP;
	put16(ip + 4, (uint16_t)(seq & 0xffff));
	put16(ip + 10, 0);
	put16(ip + 10, ip_checksum(ip));
	put64le(f + OFF_SEQ, seq);
	for (unsigned i = OFF_PATTERN; i < size; i++)
		f[i] = (uint8_t)((seq + i) & 0xff);
}

/* What a receiver remembers of one flow: which sequence numbers it has seen. */
struct flow_state {
	int used;
	uint32_t id;
	uint8_t *seen; /* bitmap of sequence numbers */
	uint64_t cap;  /* bits allocated */
	uint64_t highest;
	int any;
};

/* The state of flow `id` in `table` (of `n` entries), claimed on first use; NULL when full. */
static inline struct flow_state *flow_get(struct flow_state *table, int n, uint32_t id)
{
	for (int i = 0; i < n; i++) {
		if (table[i].used && table[i].id == id)
			return &table[i];
		if (!table[i].used) {
			table[i].used = 1;
			table[i].id = id;
			return &table[i];
		}
	}
	return NULL;
}

/* Returns 1 when seq was already seen, 0 when new, -1 when it cannot be tracked. */
static inline int flow_mark(struct flow_state *fs, uint64_t seq)
{
	if (seq >= MAX_TRACKED_SEQ)
		return -1;
	if (seq >= fs->cap) {
		uint64_t cap = fs->cap ? fs->cap : 65536;
		while (cap <= seq)
			cap *= 2;
		uint8_t *p = realloc(fs->seen, cap / 8);
		if (!p)
			return -1;
		memset(p + fs->cap / 8, 0, (cap - fs->cap) / 8);
		fs->seen = p;
		fs->cap = cap;
	}
	uint8_t bit = (uint8_t)(1u << (seq & 7));
	if (fs->seen[seq / 8] & bit)
		return 1;
	fs->seen[seq / 8] |= bit;
	return 0;
}

#endif
