// A vhost-user frontend for tests and the fuzzer (the driver's side of the protocol). No device
// code imports it: it is its own subpath of the package, 'vfio-user-ts/vhost-user-frontend'.
export * from './vhost-user-client.js';
export * from './frontend-session.js';
