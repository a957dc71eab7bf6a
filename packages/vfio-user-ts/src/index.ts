// The device-protocol layer. core/ is transport-neutral (guest memory, the memory table, unix
// sockets with fd passing, the native addon, virtio's numbers); vhost-user/ is the backend of one
// transport built on it. The test frontend is exported apart, as 'vfio-user-ts/vhost-user-frontend',
// so that nothing a device imports from here can reach it.
export * as sys from './core/sys.js';
export type { FdWatcher, SysError } from './core/sys.js';
export { isSysError } from './core/sys.js';
export * from './core/unix-socket.js';
export * from './core/memory-table.js';
export * from './core/guest-memory.js';
export * from './core/rate-limited-log.js';
export * from './core/virtio.js';
export * from './core/virtio-device.js';
export * from './vhost-user/protocol.js';
export * from './vhost-user/message-validator.js';
export * from './vhost-user/message-channel.js';
export * from './vhost-user/vhost-user-server.js';
export * from './vhost-user/connection-source.js';
