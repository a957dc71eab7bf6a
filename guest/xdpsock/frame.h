/*
 * The zcnic test frame (docs/test-frame.md): IPv4/UDP, magic "ZCNC", u32 flow,
 * u64 seq, then a pattern where the byte at frame offset i is (seq + i) & 0xff.
 *
 * Building: frame_template_init() once per frame length, then frame_write()
 * per frame (copies the template) or frame_update() when the template is
 * already in place (rewrites only IPv4 id + checksum, seq and pattern).
 * Receiving: frame_verify() and a per-flow sequence tracker.
 */
#ifndef ZCNIC_FRAME_H
#define ZCNIC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_MIN_LEN 60u
#define FRAME_HDR_LEN 58u /* Ethernet + IPv4 + UDP + magic + flow + seq */
#define FRAME_OFF_IP 14u
#define FRAME_OFF_UDP 34u
#define FRAME_OFF_MAGIC 42u
#define FRAME_OFF_FLOW 46u
#define FRAME_OFF_SEQ 50u
#define FRAME_UDP_DPORT 9000u
#define FRAME_UDP_SPORT_BASE 10000u

/* 198.18.0.2 (guest) and 198.18.0.1 (device), host byte order */
#define FRAME_IP_GUEST 0xc6120002u
#define FRAME_IP_DEVICE 0xc6120001u

struct frame_template {
	uint8_t hdr[FRAME_HDR_LEN]; /* id, checksum and seq are filled per frame */
	uint32_t len;
	uint32_t csum_base; /* one's-complement sum of the IPv4 header without id and checksum */
};

/* Longest frame this module builds or verifies. */
#define FRAME_MAX_LEN (65536u + FRAME_HDR_LEN)

/* Fill the byte ramp (ramp[k] == k & 0xff) that pattern bytes are copied
 * from and compared with: a frame's pattern is ramp[(seq + 58) & 0xff ...]. */
void frame_ramp_init(void);

void frame_template_init(struct frame_template *t, uint32_t len,
			 const uint8_t dst_mac[6], const uint8_t src_mac[6],
			 uint32_t src_ip, uint32_t dst_ip, uint32_t flow);

/* Write the whole frame (template header, then the per-seq fields). */
void frame_write(const struct frame_template *t, uint8_t *buf, uint64_t seq);

/* Only the per-seq fields: IPv4 id, IPv4 checksum, seq, pattern. The rest of
 * the header must already hold the template. */
void frame_update(const struct frame_template *t, uint8_t *buf, uint64_t seq);

/* The two halves of frame_update(): the header fields that depend on seq, and
 * the pattern, which depends on seq & 0xff only (so a buffer that last carried
 * a seq with the same low byte already holds the right pattern). */
void frame_set_seq(const struct frame_template *t, uint8_t *buf, uint64_t seq);
void frame_set_pattern(const struct frame_template *t, uint8_t *buf, uint64_t seq);

enum frame_result {
	FRAME_VERIFIED = 0,
	FRAME_FOREIGN,  /* < 60 bytes, not IPv4 or no magic (e.g. IPv6 noise): not ours */
	FRAME_CORRUPT,
};

/* Verify one received frame. On FRAME_VERIFIED, *flow and *seq are set. */
enum frame_result frame_verify(const uint8_t *buf, uint32_t len, uint32_t *flow,
			       uint64_t *seq);

/* Per-flow sequence tracking: duplicates, out-of-order and gaps. Flows with
 * id >= FRAME_MAX_TRACKED_FLOWS are verified but not sequence-tracked. */
#define FRAME_MAX_TRACKED_FLOWS 256u
#define FRAME_SEQ_WINDOW (1u << 16) /* duplicates are detected within this window */

struct frame_seq_stats {
	uint64_t duplicates;
	uint64_t out_of_order;
	uint64_t gaps;  /* sequence numbers in [0, highest] never seen */
	uint32_t flows; /* flows that delivered at least one verified frame */
};

/* Returns false if memory could not be allocated. */
bool frame_seq_init(void);
void frame_seq_record(uint32_t flow, uint64_t seq);
void frame_seq_stats(struct frame_seq_stats *st);
void frame_seq_free(void);

#endif
