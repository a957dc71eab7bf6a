/** Ethernet II framing, as the device reads frames (test frames, zero-copy proofs, layout checks). */
export const ETHERNET_HEADER_LENGTH = 14;
/** Where the EtherType sits in the Ethernet header (big-endian). */
export const ETHERTYPE_OFFSET = 12;
export const ETHERTYPE_IPV4 = 0x0800;
