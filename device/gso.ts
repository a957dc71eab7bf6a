/**
 * Transmit GSO (HOST_TSO4, HOST_TSO6, HOST_ECN, HOST_USO): the checks a
 * GSO frame's virtio-net header must pass against the frame it describes (virtio 1.2 5.1.6.2),
 * and the segmenter that cuts an accepted frame into the wire frames a NIC would send.
 *
 * A header that does not fit its frame is refused, as Linux's tun refuses it
 * (virtio_net_hdr_to_skb): the frame is dropped and counted under its own kind, and the queue
 * goes on. What the checks leave standing is what the segmenter relies on: the transport header
 * at csum_start, wholly inside the frame, and segments no longer than MAX_FRAME_LENGTH.
 *
 * Nothing here allocates per frame: one GsoCheck and one GsoSegmenter per queue, each with its
 * scratch, reused.
 */
import { byteSpace, FeatureBit, hasFeature, type ByteSpace, type FeatureWord } from 'vfio-user-ts';
import { copyBytes } from './copy-bytes.js';
import { Counter } from './counters.js';
import { ETHERNET_HEADER_LENGTH, ETHERTYPE_IPV4, ETHERTYPE_OFFSET } from './ethernet.js';
import {
  ETHERTYPE_IPV6,
  IP_PROTOCOL_TCP,
  IP_PROTOCOL_UDP,
  Ipv4,
  IPV4_FRAGMENT_MASK,
  IPV4_MAX_HEADER_LENGTH,
  IPV4_MIN_HEADER_LENGTH,
  Ipv6,
  IPV6_HEADER_LENGTH,
  Tcp,
  TCP_MAX_HEADER_LENGTH,
  TCP_MIN_HEADER_LENGTH,
  TcpFlag,
  Udp,
  UDP_HEADER_LENGTH,
} from './ip.js';
import { completeChecksum, foldChecksum, GSO_ECN, GsoType, NetHeaderFlags, onesComplementSum } from './net-header.js';
import { QueueError, type QueueErrorKind } from './queue-errors.js';
import { MAX_FRAME_LENGTH, type TxFrame, type WireFrame } from './tx-frame.js';

/** The GSO features a queue's driver negotiated. */
export interface GsoOffloads {
  readonly tcp4: boolean;
  readonly tcp6: boolean;
  readonly ecn: boolean;
  readonly udpL4: boolean;
}

export const NO_GSO_OFFLOADS: GsoOffloads = { tcp4: false, tcp6: false, ecn: false, udpL4: false };

export function gsoOffloads(features: FeatureWord): GsoOffloads {
  return {
    tcp4: hasFeature(features, FeatureBit.netHostTso4),
    tcp6: hasFeature(features, FeatureBit.netHostTso6),
    ecn: hasFeature(features, FeatureBit.netHostEcn),
    udpL4: hasFeature(features, FeatureBit.netHostUso),
  };
}

/**
 * The GSO types a driver takes on its receiveq (virtio 1.2 5.1.6.4): GUEST_TSO4/TSO6 (ECN on top
 * with GUEST_ECN), GUEST_USO4/USO6 (UDP_L4 over IPv4/IPv6). All need GUEST_CSUM (a GSO frame's
 * checksum is partial): without it, none.
 */
export interface ReceiveGsoOffloads {
  readonly tcp4: boolean;
  readonly tcp6: boolean;
  readonly ecn: boolean;
  readonly udp4: boolean;
  readonly udp6: boolean;
}

export const NO_RECEIVE_GSO: ReceiveGsoOffloads = { tcp4: false, tcp6: false, ecn: false, udp4: false, udp6: false };

export function receiveGsoOffloads(features: FeatureWord): ReceiveGsoOffloads {
  if (!hasFeature(features, FeatureBit.netGuestCsum)) return NO_RECEIVE_GSO;
  return {
    tcp4: hasFeature(features, FeatureBit.netGuestTso4),
    tcp6: hasFeature(features, FeatureBit.netGuestTso6),
    ecn: hasFeature(features, FeatureBit.netGuestEcn),
    udp4: hasFeature(features, FeatureBit.netGuestUso4),
    udp6: hasFeature(features, FeatureBit.netGuestUso6),
  };
}

/** Whether any receive GSO type is on. */
export function anyReceiveGso(offloads: ReceiveGsoOffloads): boolean {
  return offloads.tcp4 || offloads.tcp6 || offloads.udp4 || offloads.udp6;
}

/**
 * Whether a driver with `offloads` takes a GSO frame of `gsoType` (not GSO_NONE), whose bytes are
 * `length` at `offset` of `frame` (UDP_L4 is allowed by IP version: its EtherType decides).
 */
export function receiveGsoAllowed(offloads: ReceiveGsoOffloads, gsoType: number, frame: ByteSpace, offset: number, length: number): boolean {
  const type = gsoType & ~GSO_ECN;
  if ((gsoType & GSO_ECN) !== 0 && (!offloads.ecn || type === GsoType.udpL4)) return false;
  if (type === GsoType.tcpV4) return offloads.tcp4;
  if (type === GsoType.tcpV6) return offloads.tcp6;
  if (type !== GsoType.udpL4 || length < ETHERNET_HEADER_LENGTH) return false;
  const etherType = frame.view.getUint16(offset + ETHERTYPE_OFFSET, false);
  return etherType === ETHERTYPE_IPV4 ? offloads.udp4 : etherType === ETHERTYPE_IPV6 ? offloads.udp6 : false;
}

/**
 * Whether the negotiated features allow `gsoType` (not GSO_NONE): legacy UFO never (the device
 * does not offer it), the ECN bit only on TCP and with HOST_ECN (5.1.6.2).
 */
export function gsoTypeAllowed(offloads: GsoOffloads, gsoType: number): boolean {
  const type = gsoType & ~GSO_ECN;
  if ((gsoType & GSO_ECN) !== 0 && (!offloads.ecn || type === GsoType.udpL4)) return false;
  if (type === GsoType.tcpV4) return offloads.tcp4;
  if (type === GsoType.tcpV6) return offloads.tcp6;
  if (type === GsoType.udpL4) return offloads.udpL4;
  return false;
}

/**
 * The most datagrams one UDP GSO frame may carry: Linux's UDP_MAX_SEGMENTS (64, raised to 128 in
 * later kernels; the larger, so that no Linux sender is refused), beyond which its tun refuses the
 * header (virtio_net_hdr_to_skb) and udp_send_skb the send.
 */
export const UDP_GSO_MAX_SEGMENTS = 128;

/** The longest headers the device parses: Ethernet, IPv4 with options (IPv6's 40 bytes are fewer), TCP with options. */
const MAX_HEADERS_LENGTH = ETHERNET_HEADER_LENGTH + IPV4_MAX_HEADER_LENGTH + TCP_MAX_HEADER_LENGTH;
/** GsoCheck.check's answer for a header that fits its frame. */
export const GSO_HEADER_VALID = 0;
/** Where the IP header starts (no VLAN tag: a tagged GSO frame is refused as txGsoWrongNetworkProtocol). */
const IP_OFFSET = ETHERNET_HEADER_LENGTH;

/**
 * Checks a GSO frame's header (gso_type already allowed, the frame within MAX_GSO_FRAME_LENGTH)
 * against the frame's own Ethernet, IP and transport headers. One per queue.
 */
export class GsoCheck {
  /** A refusal's context for its report (describeQueueError's a, b, c). */
  a = 0;
  b = 0;
  c = 0;
  /** The frame's first bytes, where its headers are read. */
  private readonly headers: ByteSpace = byteSpace(new ArrayBuffer(MAX_HEADERS_LENGTH));

  /** GSO_HEADER_VALID, or the kind of the first mismatch (in the order QueueError lists them). */
  check(frame: TxFrame): typeof GSO_HEADER_VALID | QueueErrorKind {
    const type = frame.gsoType & ~GSO_ECN;
    this.a = frame.gsoType;
    this.b = frame.length;
    this.c = 0;
    if ((frame.flags & NetHeaderFlags.needsCsum) === 0) return QueueError.txGsoWithoutChecksum;
    const available = frame.length < MAX_HEADERS_LENGTH ? frame.length : MAX_HEADERS_LENGTH;
    frame.copyTo(this.headers, 0, available);
    const v = this.headers.view;
    if (available <= IP_OFFSET) return QueueError.txGsoMalformedHeaders;
    const etherType = v.getUint16(ETHERTYPE_OFFSET, false);
    const version = v.getUint8(IP_OFFSET) >> 4;
    const ipv4 = etherType === ETHERTYPE_IPV4 && version === 4;
    const ipv6 = etherType === ETHERTYPE_IPV6 && version === 6;
    if (!(ipv4 && type !== GsoType.tcpV6) && !(ipv6 && type !== GsoType.tcpV4)) {
      this.b = etherType;
      this.c = version;
      return QueueError.txGsoWrongNetworkProtocol;
    }
    const l4 = ipv4 ? IP_OFFSET + (v.getUint8(IP_OFFSET + Ipv4.versionIhl) & 0x0f) * 4 : IP_OFFSET + IPV6_HEADER_LENGTH;
    if (ipv4 && (l4 - IP_OFFSET < IPV4_MIN_HEADER_LENGTH || l4 > available || (v.getUint16(IP_OFFSET + Ipv4.flagsFragment, false) & IPV4_FRAGMENT_MASK) !== 0)) {
      return QueueError.txGsoMalformedHeaders;
    }
    if (ipv6 && l4 > available) return QueueError.txGsoMalformedHeaders;
    const tcp = type !== GsoType.udpL4;
    const protocol = v.getUint8(ipv4 ? IP_OFFSET + Ipv4.protocol : IP_OFFSET + Ipv6.nextHeader);
    if (protocol !== (tcp ? IP_PROTOCOL_TCP : IP_PROTOCOL_UDP)) {
      this.b = protocol;
      return QueueError.txGsoWrongTransport;
    }
    const headersLength = transportHeadersEnd(v, l4, tcp, available);
    if (headersLength < 0) return QueueError.txGsoMalformedHeaders;
    return this.checkFields(frame, l4, tcp, headersLength);
  }

  /** The header's own fields against the headers found: checksum offsets, hdr_len, gso_size. */
  private checkFields(frame: TxFrame, l4: number, tcp: boolean, headersLength: number): typeof GSO_HEADER_VALID | QueueErrorKind {
    if (frame.csumStart !== l4 || frame.csumOffset !== (tcp ? Tcp.checksum : Udp.checksum)) {
      this.a = frame.csumStart;
      this.b = frame.csumOffset;
      this.c = l4;
      return QueueError.txGsoBadChecksumOffsets;
    }
    // hdr_len is the driver's hint of the header bytes (Linux: skb_headlen, which holds them all).
    if (frame.hdrLen < headersLength || frame.hdrLen > frame.length) {
      this.a = frame.hdrLen;
      this.b = headersLength;
      this.c = frame.length;
      return QueueError.txGsoBadHeaderLength;
    }
    // The device does not know the guest's MTU (QEMU keeps it); a segment must at least be a
    // frame the device would take without GSO.
    if (frame.gsoSize === 0 || headersLength + frame.gsoSize > MAX_FRAME_LENGTH) {
      this.a = frame.gsoSize;
      this.b = headersLength;
      this.c = MAX_FRAME_LENGTH;
      return QueueError.txGsoBadSegmentSize;
    }
    // USO only: a datagram count that Linux neither sends nor takes from a tap.
    const payload = frame.length - headersLength;
    if (!tcp && payload > frame.gsoSize * UDP_GSO_MAX_SEGMENTS) {
      this.a = frame.gsoSize;
      this.b = payload;
      this.c = UDP_GSO_MAX_SEGMENTS;
      return QueueError.txGsoTooManySegments;
    }
    return GSO_HEADER_VALID;
  }
}

/**
 * Where the transport header starting at `l4` ends (the length of all the frame's headers), or
 * -1 when it does not fit the `available` bytes or a TCP data offset is below 5 words.
 */
function transportHeadersEnd(v: DataView, l4: number, tcp: boolean, available: number): number {
  if (!tcp) return l4 + UDP_HEADER_LENGTH <= available ? l4 + UDP_HEADER_LENGTH : -1;
  if (l4 + TCP_MIN_HEADER_LENGTH > available) return -1;
  const length = (v.getUint8(l4 + Tcp.dataOffset) >> 4) * 4;
  return length >= TCP_MIN_HEADER_LENGTH && l4 + length <= available ? l4 + length : -1;
}

/** Takes the wire frames a GSO frame is cut into; `frame` is only valid during the call. */
export interface WireFrameSink {
  sendWire(frame: WireFrame): void;
}

/** One wire frame cut from a GSO frame: linear from the start. */
class Segment implements WireFrame {
  length = 0;
  readonly linear = new Uint8Array(MAX_FRAME_LENGTH);
  readonly linearSpace: ByteSpace = byteSpace(this.linear.buffer);
  linearize(): boolean {
    return true;
  }
}

/**
 * Cuts a checked GSO frame into wire frames as a NIC's TSO/USO engine does (Linux's
 * tcp_gso_segment, __udp_gso_segment): every segment carries the frame's headers and up to
 * gso_size payload bytes, with its own IP lengths, IPv4 identification (+1 per segment), TCP
 * sequence number, and the transport checksum the driver left partial completed over the segment.
 * TCP's FIN and PSH stay on the last segment only, CWR on the first only. One per queue.
 */
export class GsoSegmenter {
  private readonly segment = new Segment();

  constructor(private readonly counters: Float64Array) {}

  /** Cuts `frame` (checked by GsoCheck, linearized) and hands each segment to `sink`. */
  cut(frame: TxFrame, sink: WireFrameSink): void {
    const src = frame.linearSpace;
    const out = this.segment.linearSpace;
    const l4 = frame.csumStart;
    const tcp = (frame.gsoType & ~GSO_ECN) !== GsoType.udpL4;
    const ipv6 = src.view.getUint16(ETHERTYPE_OFFSET, false) === ETHERTYPE_IPV6;
    const headersLength = tcp ? l4 + (src.bytes[l4 + Tcp.dataOffset]! >> 4) * 4 : l4 + UDP_HEADER_LENGTH;
    const payload = frame.length - headersLength;
    const mss = frame.gsoSize;
    const count = payload <= mss ? 1 : Math.ceil(payload / mss);
    // The rewritten fields are all set for every segment, so the headers are copied once.
    copyBytes(out, 0, src, 0, headersLength);
    // Source and destination addresses, adjacent in both headers: the pseudo-header's constant part.
    const addressSum = ipv6 ? onesComplementSum(src.view, IP_OFFSET + Ipv6.source, IP_OFFSET + IPV6_HEADER_LENGTH) : onesComplementSum(src.view, IP_OFFSET + Ipv4.source, IP_OFFSET + IPV4_MIN_HEADER_LENGTH);
    const firstId = ipv6 ? 0 : src.view.getUint16(IP_OFFSET + Ipv4.identification, false);
    const firstSequence = tcp ? src.view.getUint32(l4 + Tcp.sequence, false) : 0;
    const tcpFlags = tcp ? src.bytes[l4 + Tcp.flags]! : 0;
    for (let i = 0; i < count; i++) {
      const offset = i * mss;
      const take = payload - offset < mss ? payload - offset : mss;
      copyBytes(out, headersLength, src, headersLength + offset, take);
      const length = headersLength + take;
      if (ipv6) this.setIpv6Length(length);
      else this.setIpv4Fields(length, (firstId + i) & 0xffff, l4);
      if (tcp) this.setTcpFields(l4, (firstSequence + offset) % 0x100000000, segmentTcpFlags(tcpFlags, i, count));
      else out.view.setUint16(l4 + Udp.length, length - l4, false);
      this.completeTransportChecksum(length, l4, tcp, addressSum);
      this.segment.length = length;
      this.counters[Counter.gsoSegments]!++;
      sink.sendWire(this.segment);
    }
  }

  private setIpv6Length(length: number): void {
    this.segment.linearSpace.view.setUint16(IP_OFFSET + Ipv6.payloadLength, length - IP_OFFSET - IPV6_HEADER_LENGTH, false);
  }

  /** Total length, identification and the header checksum of the segment's IPv4 header (which ends at `l4`). */
  private setIpv4Fields(length: number, id: number, l4: number): void {
    const v = this.segment.linearSpace.view;
    v.setUint16(IP_OFFSET + Ipv4.totalLength, length - IP_OFFSET, false);
    v.setUint16(IP_OFFSET + Ipv4.identification, id, false);
    v.setUint16(IP_OFFSET + Ipv4.checksum, 0, false);
    v.setUint16(IP_OFFSET + Ipv4.checksum, ~foldChecksum(onesComplementSum(v, IP_OFFSET, l4)) & 0xffff, false);
  }

  private setTcpFields(l4: number, sequence: number, flags: number): void {
    const v = this.segment.linearSpace.view;
    v.setUint32(l4 + Tcp.sequence, sequence, false);
    v.setUint8(l4 + Tcp.flags, flags);
  }

  /**
   * The partial checksum as the driver leaves it (the pseudo-header sum: addresses, protocol,
   * transport length), for this segment's length, then completed as NEEDS_CSUM asks.
   */
  private completeTransportChecksum(length: number, l4: number, tcp: boolean, addressSum: number): void {
    const v = this.segment.linearSpace.view;
    const field = tcp ? Tcp.checksum : Udp.checksum;
    const pseudoHeader = addressSum + (tcp ? IP_PROTOCOL_TCP : IP_PROTOCOL_UDP) + (length - l4);
    v.setUint16(l4 + field, foldChecksum(pseudoHeader), false);
    completeChecksum(v, length, l4, field);
  }
}

/** TCP flags of segment `index` of `count`: FIN and PSH on the last only, CWR on the first only. */
function segmentTcpFlags(flags: number, index: number, count: number): number {
  let segmentFlags = flags;
  if (index !== count - 1) segmentFlags &= ~(TcpFlag.fin | TcpFlag.psh);
  if (index !== 0) segmentFlags &= ~TcpFlag.cwr;
  return segmentFlags;
}
