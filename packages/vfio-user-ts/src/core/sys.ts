/**
 * Typed access to the zcnic_sys addon: the Linux system calls that Node.js
 * lacks (fd passing over unix sockets, mmap of shared memory, memfd, eventfd, taps, socket pairs),
 * a way to be called back when an arbitrary fd becomes readable, and a copy between byte arrays
 * that allocates nothing.
 *
 * Every fd these functions create is close-on-exec. A failing system call
 * throws a {@link SysError}; bad arguments throw a TypeError or RangeError.
 * The addon loads in every worker thread that imports this module.
 */
import { constants as bufferConstants } from 'node:buffer';
import { createRequire } from 'node:module';

/** The error a failing system call throws, e.g. `mmap: ENOMEM (Cannot allocate memory)`. */
export interface SysError extends Error {
  /** The errno name, e.g. `'EBADF'`; `'ECTRUNC'` for a truncated fd list from recvMsg. */
  code: string;
  /** The positive errno value; absent for `'ECTRUNC'`, which is no errno. */
  errno?: number;
  /** The call that failed, e.g. `'recvmsg'`. */
  syscall: string;
}

/** Whether `err` is a {@link SysError}, optionally with the given code. */
export function isSysError(err: unknown, code?: string): err is SysError {
  return (
    err instanceof Error &&
    typeof (err as Partial<SysError>).syscall === 'string' &&
    typeof (err as Partial<SysError>).code === 'string' &&
    (code === undefined || (err as SysError).code === code)
  );
}

/** A running watch on an fd; see {@link watchReadable}. */
export interface FdWatcher {
  /** Stops the watch; calling it again does nothing. */
  stop(): void;
}

/** The functions of the addon, exactly as it exports them. */
export interface SysBinding {
  unixListen(path: string, backlog: number): number;
  unixConnect(path: string): number;
  accept(listenFd: number): number;
  recvMsg(fd: number, target: Uint8Array, offset: number, length: number, fdsOut: number[]): number;
  sendMsg(fd: number, bytes: Uint8Array, offset: number, length: number, fds: readonly number[]): number;
  close(fd: number): void;
  memfdCreate(name: string, size: number): number;
  mapShared(fd: number, offset: number, length: number): ArrayBuffer;
  unmap(buffer: ArrayBuffer): void;
  mapGuest(fd: number, offset: number, length: number): ArrayBuffer;
  mappingGuard(buffer: ArrayBuffer): number;
  guestFaultWords(): ArrayBuffer;
  eventfdCreate(initial: number, nonblocking: boolean): number;
  eventfdRead(fd: number): number;
  eventfdWrite(fd: number, value: number): void;
  watchReadable(fd: number, onReadable: () => void): FdWatcher;
  watcherCount(): number;
  fileSize(fd: number): number;
  tunOpen(name: string, vnetHeader: boolean): number;
  tunSetVnetHeaderSize(fd: number, size: number): void;
  tunSetOffload(fd: number, flags: number): void;
  readFd(fd: number, target: Uint8Array, offset: number, length: number): number;
  writeFd(fd: number, bytes: Uint8Array, offset: number, length: number): number;
  writevFd(fd: number, buffers: readonly Uint8Array[], offsets: Float64Array, lengths: Float64Array, count: number): number;
  socketPair(): [number, number];
  socketType(fd: number): number;
  setSendBuffer(fd: number, bytes: number): number;
  copyBytes(dst: Uint8Array, dstOffset: number, src: Uint8Array, srcOffset: number, length: number): void;
}

/** The most pieces one {@link writevFd} takes (Linux's UIO_MAXIOV). */
export const MAX_WRITEV_PIECES = 1024;

const binding = createRequire(import.meta.url)('../../build/Release/zcnic_sys.node') as SysBinding;

/**
 * Creates a listening unix stream socket at `path` (non-blocking). A socket
 * file already at `path` is removed first; any other file makes it fail with
 * EADDRINUSE. The socket file gets mode 0600 before anyone can connect.
 */
export function unixListen(path: string, backlog: number): number {
  return binding.unixListen(path, backlog);
}

/** Connects to the unix stream socket at `path`; the fd returned is non-blocking. */
export function unixConnect(path: string): number {
  return binding.unixConnect(path);
}

/** Accepts one pending connection (non-blocking fd), or returns -1 if none is pending. */
export function accept(listenFd: number): number {
  return binding.accept(listenFd);
}

/**
 * Reads up to `length` (at least 1) bytes into `target[offset...]` and pushes
 * any fds that came with them onto `fdsOut`. Returns the number of bytes read,
 * 0 at end of stream (also when the peer reset the connection: the peer is gone
 * either way), or -1 if nothing is available now.
 *
 * On a stream socket, fds arrive with the read that returns the first byte of
 * the sendMsg that carried them. Such a read may begin with bytes of earlier
 * sends, and it ends at the end of that sendMsg (or earlier, if `length` is
 * short): one read never returns the fds of two sendMsg calls. More than 32 fds at once throws a SysError with code 'ECTRUNC'; those fds are
 * closed and the bytes of that read are lost, so the connection is unusable.
 */
export function recvMsg(fd: number, target: Uint8Array, offset: number, length: number, fdsOut: number[]): number {
  return binding.recvMsg(fd, target, offset, length, fdsOut);
}

/**
 * Sends `bytes[offset...offset+length]` with `fds` (at most 253) attached to
 * the first byte; sending fds needs at least 1 byte. Returns the number of
 * bytes sent, which can be fewer than `length` (the fds went with them), or -1
 * if the socket buffer is full and nothing was sent. A closed peer throws EPIPE
 * (no SIGPIPE).
 */
export function sendMsg(fd: number, bytes: Uint8Array, offset: number, length: number, fds: readonly number[]): number {
  return binding.sendMsg(fd, bytes, offset, length, fds);
}

/**
 * Closes an fd. A watcher of this thread on it is stopped first: a watch of a closed fd would
 * never fire and never end, keeping the thread's event loop (the process, or the worker) alive.
 * A watcher another thread has on it is that thread's to stop, before the fd is closed.
 */
export function close(fd: number): void {
  binding.close(fd);
}

/**
 * The size in bytes of the file `fd` refers to (fstat's st_size): how much of it can be mapped
 * and touched. 0 for what has no size (eventfds, sockets, pipes, character devices).
 */
export function fileSize(fd: number): number {
  return binding.fileSize(fd);
}

/** Creates a memfd of `size` bytes (sparse: pages are allocated when touched). */
export function memfdCreate(name: string, size: number): number {
  return binding.memfdCreate(name, size);
}

/**
 * Maps `length` bytes of `fd` from `offset` (a multiple of the page size)
 * read-write and shared. The mapping lasts until {@link unmap} or until the
 * ArrayBuffer is garbage collected. Node 20 limits one ArrayBuffer to
 * `buffer.constants.MAX_LENGTH` (4 GiB): map larger regions in pieces.
 */
export function mapShared(fd: number, offset: number, length: number): ArrayBuffer {
  if (length > bufferConstants.MAX_LENGTH) {
    throw new RangeError(`mapShared: length ${length} is above buffer.constants.MAX_LENGTH (${bufferConstants.MAX_LENGTH})`);
  }
  return binding.mapShared(fd, offset, length);
}

/**
 * {@link mapShared} for a file someone else controls and may shrink under us (a frontend's guest
 * RAM): an access beyond the file's new end does not kill the process with SIGBUS. A
 * process-wide SIGBUS handler maps private zero pages over the mapping from the faulting page to
 * its end, so the access completes (reads see zeros, writes are lost), and counts the fault in
 * {@link guestFaults} under the mapping's {@link mappingGuard} slot. A SIGBUS anywhere else
 * still kills the process. At most 1024 such mappings exist at once (ENOSPC beyond).
 */
export function mapGuest(fd: number, offset: number, length: number): ArrayBuffer {
  if (length > bufferConstants.MAX_LENGTH) {
    throw new RangeError(`mapGuest: length ${length} is above buffer.constants.MAX_LENGTH (${bufferConstants.MAX_LENGTH})`);
  }
  return binding.mapGuest(fd, offset, length);
}

/** The SIGBUS guard's slot of a buffer from {@link mapGuest} (-1 for one from {@link mapShared}). */
export function mappingGuard(buffer: ArrayBuffer): number {
  return binding.mappingGuard(buffer);
}

/**
 * The SIGBUS guard's counts, shared by every thread and written by the signal handler (read them
 * with plain loads; they only grow while a slot is in use):
 * - `total`: faults absorbed in the whole process (word 0): one read per burst tells whether
 *   anything happened;
 * - {@link GuestFaults.inSlot}: faults absorbed in one mapping since it was made;
 * - {@link GuestFaults.firstPage}: the page (from the mapping's start) of its first fault, or -1.
 */
export class GuestFaults {
  private readonly words = new Int32Array(binding.guestFaultWords());

  get total(): number {
    return this.words[0]!;
  }

  inSlot(slot: number): number {
    return this.words[1 + 2 * slot]!;
  }

  firstPage(slot: number): number {
    return this.words[2 + 2 * slot]! - 1;
  }
}

/** This thread's view of the SIGBUS guard's counts. */
export const guestFaults = new GuestFaults();

/**
 * Detaches a buffer from {@link mapShared} or {@link mapGuest} (its byteLength becomes 0 and every
 * view on it becomes empty) and unmaps the memory now. Throws for any other
 * ArrayBuffer and for one already unmapped.
 */
export function unmap(buffer: ArrayBuffer): void {
  binding.unmap(buffer);
}

/** Creates an eventfd (a 64-bit counter) with the given initial value. */
export function eventfdCreate(initial: number, nonblocking: boolean): number {
  return binding.eventfdCreate(initial, nonblocking);
}

/**
 * Reads and resets the counter: returns its value, or 0 if it was 0 (a
 * blocking eventfd waits instead). Note that {@link watchReadable} makes the
 * fd non-blocking.
 */
export function eventfdRead(fd: number): number {
  return binding.eventfdRead(fd);
}

/** Adds `value` to the counter (a full counter already signals, so that is not an error). */
export function eventfdWrite(fd: number, value: number): void {
  binding.eventfdWrite(fd, value);
}

/**
 * Calls `onReadable` on this thread's event loop whenever `fd` is readable
 * or its peer hung up (level-triggered: again and again until it is drained
 * or the watch is stopped). The callback runs in the async context that was
 * current when the watch started (AsyncLocalStorage sees its store); promise
 * jobs and nextTick callbacks it queues run right after it; what it throws is
 * an uncaught exception. The watch keeps the event loop alive until stopped, or until the fd
 * is closed with {@link close} on this thread, and ends by itself when the thread's environment
 * is torn down (e.g. a worker exits). An fd can have one watcher per thread; the fd is put into
 * non-blocking mode.
 */
export function watchReadable(fd: number, onReadable: () => void): FdWatcher {
  return binding.watchReadable(fd, onReadable);
}

/**
 * How many watches of this thread are running (started by {@link watchReadable}, neither stopped
 * nor ended by {@link close}): each keeps the thread's event loop alive. A test that closed
 * everything it opened expects 0.
 */
export function watcherCount(): number {
  return binding.watcherCount();
}

/**
 * Opens `/dev/net/tun` (non-blocking, close-on-exec) and attaches it to the tap interface
 * `name` (IFF_TAP | IFF_NO_PI: every read and write is one whole Ethernet frame; with
 * `vnetHeader`, IFF_VNET_HDR: prefixed by a virtio-net header, 10 bytes until
 * {@link tunSetVnetHeaderSize}), creating the interface if it does not exist; it disappears when
 * the last fd closes unless it was made persistent. Needs CAP_NET_ADMIN. Returns the fd.
 */
export function tunOpen(name: string, vnetHeader: boolean): number {
  return binding.tunOpen(name, vnetHeader);
}

/**
 * Sets the length of the virtio-net header in front of every frame read from and written to an
 * IFF_VNET_HDR tap (TUNSETVNETHDRSZ): 12 to match a VERSION_1 or MRG_RXBUF driver's header. The
 * kernel refuses less than 10 (EINVAL).
 */
export function tunSetVnetHeaderSize(fd: number, size: number): void {
  binding.tunSetVnetHeaderSize(fd, size);
}

/** TUN_F_CSUM (linux/if_tun.h), for {@link tunSetOffload}: the host may leave checksums partial. */
export const TUN_F_CSUM = 1;

/**
 * Sets which offloads the tap's host side may use on frames it hands us (TUNSETOFFLOAD, TUN_F_*
 * bits of linux/if_tun.h: {@link TUN_F_CSUM}, TSO4 2, TSO6 4, TSO_ECN 8, UFO 16, USO4 32, USO6
 * 64; the GSO ones need TUN_F_CSUM). 0: the host completes every checksum and segments every GSO
 * packet before the tap gives it to us. Frames we write may use any offload whatever this says.
 */
export function tunSetOffload(fd: number, flags: number): void {
  binding.tunSetOffload(fd, flags);
}

/**
 * One read(2) of up to `length` bytes into `target[offset...]`: the number of bytes read,
 * 0 at end of file, or -1 if the (non-blocking) fd has nothing now. On a tap fd one read
 * returns one frame (cut to `length`).
 */
export function readFd(fd: number, target: Uint8Array, offset: number, length: number): number {
  return binding.readFd(fd, target, offset, length);
}

/**
 * One write(2) of `bytes[offset...offset+length]`: the number of bytes written, or -1 if
 * the (non-blocking) fd cannot take them now. On a tap fd one write is one frame.
 */
export function writeFd(fd: number, bytes: Uint8Array, offset: number, length: number): number {
  return binding.writeFd(fd, bytes, offset, length);
}

/**
 * One writev(2) of the pieces `buffers[i][offsets[i]...offsets[i]+lengths[i]]`, i < `count`
 * (1 to {@link MAX_WRITEV_PIECES}): the number of bytes written, or -1 if the (non-blocking) fd
 * cannot take them now. On a tap fd one writev is one frame, gathered without a copy. The
 * arrays may be longer than `count`: a caller keeps them and allocates nothing per write.
 */
export function writevFd(fd: number, buffers: readonly Uint8Array[], offsets: Float64Array, lengths: Float64Array, count: number): number {
  return binding.writevFd(fd, buffers, offsets, lengths, count);
}

/** SO_TYPE values of {@link socketType} (linux/net.h). */
export const SocketType = { stream: 1, datagram: 2, seqpacket: 5 } as const;

/**
 * A connected pair of unix SOCK_SEQPACKET sockets (non-blocking, close-on-exec): each write is
 * one message, which one read returns whole (cut to the read's length), and a peer that closes
 * its end is seen (a read returns 0, a write fails with EPIPE). Being connected to each other,
 * the ends are not held to net.unix.max_dgram_qlen: what a writer may have queued is bounded by
 * its send buffer only ({@link setSendBuffer}). Close-on-exec does not keep an end from a child
 * that gets it as one of its stdio fds (the spawn dup2()s it there, which clears the flag).
 */
export function socketPair(): [number, number] {
  return binding.socketPair();
}

/**
 * What kind of socket `fd` is (getsockopt SO_TYPE: a {@link SocketType} value), or -1 for an
 * open fd that is not a socket. A closed fd throws a SysError with code 'EBADF'.
 */
export function socketType(fd: number): number {
  return binding.socketType(fd);
}

/**
 * Asks for a send buffer of `bytes` on socket `fd`: SO_SNDBUFFORCE with CAP_NET_ADMIN, else
 * SO_SNDBUF (which the kernel caps at net.core.wmem_max). Returns SO_SNDBUF as the kernel then
 * reports it: twice what it granted (the other half is its bookkeeping). On a unix datagram or
 * seqpacket socket this bounds the bytes written and not yet read by the peer, each message
 * counted with its overhead (about 2.3 KiB for a 1514-byte frame).
 */
export function setSendBuffer(fd: number, bytes: number): number {
  return binding.setSendBuffer(fd, bytes);
}

/**
 * Copies `src[srcOffset...srcOffset+length]` to `dst[dstOffset...]` (as memmove: the ranges may
 * overlap) without making any object: JavaScript copies a range between two ArrayBuffers only
 * through a view of it (`dst.set(src.subarray(...))`; Node 20's Buffer.prototype.copy makes that
 * view too). Both ranges must lie inside their arrays, else it throws a RangeError and copies
 * nothing. The call costs more than a view (a native call), so a loop is faster for small copies.
 */
export function copyBytes(dst: Uint8Array, dstOffset: number, src: Uint8Array, srcOffset: number, length: number): void {
  binding.copyBytes(dst, dstOffset, src, srcOffset, length);
}
