/* The zcnic test frame: building, verifying and sequence tracking. See frame.h. */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

/* Longest pattern we ever build or check, plus 256 so that any start phase fits. */
#define FRAME_MAX_PATTERN (FRAME_MAX_LEN - FRAME_HDR_LEN)
#define FRAME_RAMP_LEN (FRAME_MAX_PATTERN + 256u)

static uint8_t ramp[FRAME_RAMP_LEN];
static bool ramp_ready;

void frame_ramp_init(void)
{
	if (ramp_ready)
		return;
	for (size_t k = 0; k < FRAME_RAMP_LEN; k++)
		ramp[k] = (uint8_t)k;
	ramp_ready = true;
}

static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16));
	put_be16(p + 2, (uint16_t)v);
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)get_be16(p) << 16) | get_be16(p + 2);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* One's-complement sum of the 10 big-endian words of an IPv4 header. */
static uint32_t ip_sum(const uint8_t *ip)
{
	uint32_t sum = 0;

	for (int i = 0; i < 20; i += 2)
		sum += get_be16(ip + i);
	return sum;
}

void frame_template_init(struct frame_template *t, uint32_t len,
			 const uint8_t dst_mac[6], const uint8_t src_mac[6],
			 uint32_t src_ip, uint32_t dst_ip, uint32_t flow)
{
	uint8_t *h = t->hdr;
	uint8_t *ip = h + FRAME_OFF_IP;
	uint8_t *udp = h + FRAME_OFF_UDP;

	memset(t, 0, sizeof(*t));
	t->len = len;
	memcpy(h, dst_mac, 6);
	memcpy(h + 6, src_mac, 6);
	put_be16(h + 12, 0x0800);

	ip[0] = 0x45;                      /* version 4, IHL 5 */
	ip[1] = 0;                         /* TOS */
	put_be16(ip + 2, (uint16_t)(len - 14));
	put_be16(ip + 4, 0);               /* identification: seq & 0xffff, per frame */
	put_be16(ip + 6, 0x4000);          /* DF */
	ip[8] = 64;                        /* TTL */
	ip[9] = 17;                        /* UDP */
	put_be16(ip + 10, 0);              /* checksum: per frame */
	put_be32(ip + 12, src_ip);
	put_be32(ip + 16, dst_ip);
	t->csum_base = ip_sum(ip);         /* id and checksum are zero here */

	put_be16(udp, (uint16_t)(FRAME_UDP_SPORT_BASE + flow));
	put_be16(udp + 2, FRAME_UDP_DPORT);
	put_be16(udp + 4, (uint16_t)(len - 34));
	put_be16(udp + 6, 0);

	memcpy(h + FRAME_OFF_MAGIC, "ZCNC", 4);
	put_le32(h + FRAME_OFF_FLOW, flow);
}

void frame_set_seq(const struct frame_template *t, uint8_t *buf, uint64_t seq)
{
	uint16_t id = (uint16_t)seq;

	put_be16(buf + FRAME_OFF_IP + 4, id);
	put_be16(buf + FRAME_OFF_IP + 10, (uint16_t)~csum_fold(t->csum_base + id));
	put_le64(buf + FRAME_OFF_SEQ, seq);
}

void frame_set_pattern(const struct frame_template *t, uint8_t *buf, uint64_t seq)
{
	memcpy(buf + FRAME_HDR_LEN, ramp + ((seq + FRAME_HDR_LEN) & 0xff),
	       t->len - FRAME_HDR_LEN);
}

void frame_update(const struct frame_template *t, uint8_t *buf, uint64_t seq)
{
	frame_set_seq(t, buf, seq);
	frame_set_pattern(t, buf, seq);
}

void frame_write(const struct frame_template *t, uint8_t *buf, uint64_t seq)
{
	memcpy(buf, t->hdr, FRAME_HDR_LEN);
	frame_update(t, buf, seq);
}

static bool is_test_ip(uint32_t a)
{
	return a == FRAME_IP_GUEST || a == FRAME_IP_DEVICE;
}

enum frame_result frame_verify(const uint8_t *buf, uint32_t len, uint32_t *flow,
			       uint64_t *seq)
{
	const uint8_t *ip = buf + FRAME_OFF_IP;
	const uint8_t *udp = buf + FRAME_OFF_UDP;
	uint32_t src, dst, f;
	uint64_t s;

	/* Not a test frame at all (same rule as the device's verifier): too
	 * short, not IPv4, or no magic. */
	if (len < FRAME_MIN_LEN || get_be16(buf + 12) != 0x0800 ||
	    memcmp(buf + FRAME_OFF_MAGIC, "ZCNC", 4) != 0)
		return FRAME_FOREIGN;
	if (len - FRAME_HDR_LEN > FRAME_MAX_PATTERN)
		return FRAME_CORRUPT;

	/* IPv4 header */
	if (ip[0] != 0x45 || ip[1] != 0 || get_be16(ip + 2) != len - 14 ||
	    get_be16(ip + 6) != 0x4000 || ip[8] != 64 || ip[9] != 17 ||
	    csum_fold(ip_sum(ip)) != 0xffff)
		return FRAME_CORRUPT;
	src = get_be32(ip + 12);
	dst = get_be32(ip + 16);
	if (!is_test_ip(src) || !is_test_ip(dst) || src == dst)
		return FRAME_CORRUPT;

	/* flow, seq */
	f = get_le32(buf + FRAME_OFF_FLOW);
	s = get_le64(buf + FRAME_OFF_SEQ);
	if (get_be16(ip + 4) != (uint16_t)s)
		return FRAME_CORRUPT;

	/* UDP header */
	if (get_be16(udp) != (uint16_t)(FRAME_UDP_SPORT_BASE + f) ||
	    get_be16(udp + 2) != FRAME_UDP_DPORT || get_be16(udp + 4) != len - 34 ||
	    get_be16(udp + 6) != 0)
		return FRAME_CORRUPT;

	/* pattern */
	if (memcmp(buf + FRAME_HDR_LEN, ramp + ((s + FRAME_HDR_LEN) & 0xff),
		   len - FRAME_HDR_LEN) != 0)
		return FRAME_CORRUPT;

	*flow = f;
	*seq = s;
	return FRAME_VERIFIED;
}

/* ---- sequence tracking ---- */

struct flow_track {
	uint64_t *window; /* bit (seq % FRAME_SEQ_WINDOW) set when seq was seen */
	uint64_t highest;
	uint64_t unique;
	bool seen;
};

static struct flow_track *flows;
static uint64_t seq_duplicates, seq_out_of_order;

bool frame_seq_init(void)
{
	flows = calloc(FRAME_MAX_TRACKED_FLOWS, sizeof(*flows));
	return flows != NULL;
}

static inline bool win_test(const struct flow_track *ft, uint64_t seq)
{
	uint32_t b = (uint32_t)(seq % FRAME_SEQ_WINDOW);

	return (ft->window[b / 64] >> (b % 64)) & 1;
}

static inline void win_set(struct flow_track *ft, uint64_t seq)
{
	uint32_t b = (uint32_t)(seq % FRAME_SEQ_WINDOW);

	ft->window[b / 64] |= 1ull << (b % 64);
}

static inline void win_clear(struct flow_track *ft, uint64_t seq)
{
	uint32_t b = (uint32_t)(seq % FRAME_SEQ_WINDOW);

	ft->window[b / 64] &= ~(1ull << (b % 64));
}

void frame_seq_record(uint32_t flow, uint64_t seq)
{
	struct flow_track *ft;

	if (!flows || flow >= FRAME_MAX_TRACKED_FLOWS)
		return;
	ft = &flows[flow];
	if (!ft->window) {
		ft->window = calloc(FRAME_SEQ_WINDOW / 64, sizeof(uint64_t));
		if (!ft->window)
			return;
	}
	if (!ft->seen) {
		ft->seen = true;
		ft->highest = seq;
		ft->unique = 1;
		win_set(ft, seq);
		return;
	}
	if (seq > ft->highest) {
		uint64_t d = seq - ft->highest;

		if (d >= FRAME_SEQ_WINDOW)
			memset(ft->window, 0, FRAME_SEQ_WINDOW / 8);
		else
			for (uint64_t s = ft->highest + 1; s <= seq; s++)
				win_clear(ft, s);
		ft->highest = seq;
		ft->unique++;
		win_set(ft, seq);
		return;
	}
	if (ft->highest - seq < FRAME_SEQ_WINDOW) {
		if (win_test(ft, seq)) {
			seq_duplicates++;
			return;
		}
		win_set(ft, seq);
	}
	/* older than the window: cannot tell a duplicate, count it as new */
	seq_out_of_order++;
	ft->unique++;
}

void frame_seq_stats(struct frame_seq_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->duplicates = seq_duplicates;
	st->out_of_order = seq_out_of_order;
	if (!flows)
		return;
	for (uint32_t i = 0; i < FRAME_MAX_TRACKED_FLOWS; i++) {
		const struct flow_track *ft = &flows[i];

		if (!ft->seen)
			continue;
		st->flows++;
		if (ft->unique <= ft->highest + 1)
			st->gaps += ft->highest + 1 - ft->unique;
	}
}

void frame_seq_free(void)
{
	if (!flows)
		return;
	for (uint32_t i = 0; i < FRAME_MAX_TRACKED_FLOWS; i++)
		free(flows[i].window);
	free(flows);
	flows = NULL;
}
