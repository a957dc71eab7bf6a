/** IPv4, IPv6, TCP and UDP header layouts, as the device reads and writes them (GSO, zero-copy proofs). */

export const ETHERTYPE_IPV6 = 0x86dd;
export const IP_PROTOCOL_TCP = 6;
export const IP_PROTOCOL_UDP = 17;

/** IPv4 (RFC 791): an IHL of 5 to 15 words; offsets of the fields the device reads or rewrites. */
export const IPV4_MIN_HEADER_LENGTH = 20;
export const IPV4_MAX_HEADER_LENGTH = 60;
export const Ipv4 = { versionIhl: 0, totalLength: 2, identification: 4, flagsFragment: 6, protocol: 9, checksum: 10, source: 12 } as const;
/** More Fragments and the fragment offset: a GSO frame is never a fragment. */
export const IPV4_FRAGMENT_MASK = 0x3fff;

/** IPv6 (RFC 8200): the fixed header; extension headers are not followed. */
export const IPV6_HEADER_LENGTH = 40;
export const Ipv6 = { payloadLength: 4, nextHeader: 6, source: 8 } as const;

/** TCP (RFC 9293): a data offset of 5 to 15 words. */
export const TCP_MIN_HEADER_LENGTH = 20;
export const TCP_MAX_HEADER_LENGTH = 60;
export const Tcp = { sequence: 4, dataOffset: 12, flags: 13, checksum: 16 } as const;
export const TcpFlag = { fin: 0x01, psh: 0x08, cwr: 0x80 } as const;

/** UDP (RFC 768). */
export const UDP_HEADER_LENGTH = 8;
export const Udp = { length: 4, checksum: 6 } as const;
