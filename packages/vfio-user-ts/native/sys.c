/*
 * zcnic_sys: the few Linux system calls that Node.js does not expose
 * (SCM_RIGHTS fd passing, mmap, memfd, eventfd, polling an arbitrary fd, taps,
 * socket pairs), and a copy between byte arrays that allocates nothing.
 * Each function does one call and reports errors; every decision about
 * protocols or buffering is made in TypeScript (src/sys.ts documents the API).
 *
 * The addon is context-aware (NAPI_MODULE_INIT), so every worker thread can
 * load it for itself. The only state shared between threads is the SIGBUS
 * guard's table of guest-memory mappings (lock-free, see "the SIGBUS guard").
 */
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

/* recvMsg accepts up to this many fds per call; more means MSG_CTRUNC. */
#define RECV_MAX_FDS 32
/* The kernel's per-message limit (SCM_MAX_FD, include/net/scm.h, not in uapi). */
#define SEND_MAX_FDS 253
/* Integers handed to JS as numbers must stay exact. */
#define MAX_SAFE_INT 9007199254740991LL

/* ---- errors -------------------------------------------------------------- */

static napi_value make_error(napi_env env, const char *code, const char *msg,
                             const char *syscall) {
  napi_value code_v, msg_v, err, syscall_v;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v);
  napi_create_error(env, code_v, msg_v, &err);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_v);
  napi_set_named_property(env, err, "syscall", syscall_v);
  return err;
}

/* Throws Error("<syscall>: ENAME (description)") with .code, .errno, .syscall
 * like Node's own system errors, except that .errno is positive. Returns NULL
 * so that callbacks can `return throw_errno(...)`. */
static napi_value throw_errno(napi_env env, const char *syscall, int err) {
  /* strerrorname_np/strerrordesc_np are thread-safe, unlike strerror. */
  const char *name = strerrorname_np(err);
  const char *desc = strerrordesc_np(err);
  char msg[256];
  napi_value error, errno_v;
  if (name == NULL) name = "EUNKNOWN";
  snprintf(msg, sizeof msg, "%s: %s (%s)", syscall, name,
           desc != NULL ? desc : "unknown error");
  error = make_error(env, name, msg, syscall);
  napi_create_int32(env, err, &errno_v);
  napi_set_named_property(env, error, "errno", errno_v);
  napi_throw(env, error);
  return NULL;
}

/* Makes sure a failed Node-API call leaves an exception for JS to see. */
static napi_value fail(napi_env env, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, NULL, what);
  return NULL;
}

/* ---- arguments ----------------------------------------------------------- */

static bool get_args(napi_env env, napi_callback_info info, const char *fn,
                     size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    fail(env, "napi_get_cb_info failed");
    return false;
  }
  if (argc < want) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s: expected %zu arguments, got %zu", fn, want, argc);
    napi_throw_type_error(env, "ERR_MISSING_ARGS", msg);
    return false;
  }
  return true;
}

/* An integral JS number in [min, max]: TypeError or RangeError otherwise. */
static bool get_int(napi_env env, napi_value v, const char *fn, const char *name,
                    int64_t min, int64_t max, int64_t *out) {
  double d;
  char msg[160];
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    snprintf(msg, sizeof msg, "%s: %s must be a number", fn, name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  if (!(d >= (double)min && d <= (double)max) || d != (double)(int64_t)d) {
    snprintf(msg, sizeof msg, "%s: %s must be an integer in [%lld, %lld], got %g",
             fn, name, (long long)min, (long long)max, d);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

static bool get_fd(napi_env env, napi_value v, const char *fn, int *fd) {
  int64_t x;
  if (!get_int(env, v, fn, "fd", 0, INT32_MAX, &x)) return false;
  *fd = (int)x;
  return true;
}

/* A string that fits in buf including its terminating NUL and has no NUL
 * inside (C would silently cut it there). */
static bool get_string(napi_env env, napi_value v, const char *fn, const char *name,
                       char *buf, size_t size) {
  size_t len;
  char msg[160];
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    snprintf(msg, sizeof msg, "%s: %s must be a string", fn, name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  if (len >= size) {
    snprintf(msg, sizeof msg, "%s: %s is longer than %zu bytes", fn, name, size - 1);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return false;
  }
  napi_get_value_string_utf8(env, v, buf, size, &len);
  if (strlen(buf) != len) {
    snprintf(msg, sizeof msg, "%s: %s contains a NUL character", fn, name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg);
    return false;
  }
  return true;
}

/* The byte range [offset, offset+length) of a Uint8Array (Buffer included). */
/* A Uint8Array's bytes: where they start and how many. */
static bool get_uint8_array(napi_env env, napi_value v, const char *fn, const char *name,
                            uint8_t **data, size_t *len) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *start;
  napi_is_typedarray(env, v, &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, v, &type, len, &start, NULL, NULL) != napi_ok ||
      type != napi_uint8_array) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s: %s must be a Uint8Array", fn, name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  *data = start;
  return true;
}

static bool get_bytes(napi_env env, napi_value *argv, const char *fn,
                      uint8_t **ptr, size_t *n) {
  uint8_t *data;
  size_t len;
  int64_t off, cnt;
  if (!get_uint8_array(env, argv[0], fn, "buffer", &data, &len) ||
      !get_int(env, argv[1], fn, "offset", 0, (int64_t)len, &off) ||
      !get_int(env, argv[2], fn, "length", 0, (int64_t)len - off, &cnt))
    return false;
  *ptr = data + off;
  *n = (size_t)cnt;
  return true;
}

static bool is_array(napi_env env, napi_value v, const char *fn, const char *name) {
  bool ok = false;
  napi_is_array(env, v, &ok);
  if (!ok) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s: %s must be an array", fn, name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  }
  return ok;
}

static napi_value num(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

static napi_value undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

/* ---- unix sockets -------------------------------------------------------- */

static bool get_sockaddr(napi_env env, napi_value v, const char *fn,
                         struct sockaddr_un *addr) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  return get_string(env, v, fn, "path", addr->sun_path, sizeof addr->sun_path);
}

/* unixListen(path, backlog): listening socket fd (non-blocking, close-on-exec). */
static napi_value unix_listen(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct sockaddr_un addr;
  struct stat st;
  int64_t backlog;
  int fd, err;
  const char *call;
  if (!get_args(env, info, "unixListen", 2, argv) ||
      !get_sockaddr(env, argv[0], "unixListen", &addr) ||
      !get_int(env, argv[1], "unixListen", "backlog", 0, INT32_MAX, &backlog))
    return NULL;
  /* A socket file left by a previous run would make bind fail with
   * EADDRINUSE; anything that is not a socket is not ours to remove. */
  if (lstat(addr.sun_path, &st) == 0 && S_ISSOCK(st.st_mode) && unlink(addr.sun_path) != 0)
    return throw_errno(env, "unlink", errno);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    err = errno;
    close(fd);
    return throw_errno(env, "bind", err);
  }
  /* Nobody can connect before listen(), so restricting the mode here
   * leaves no window in which another user could get in. */
  if (chmod(addr.sun_path, 0600) != 0) {
    call = "chmod";
  } else if (listen(fd, (int)backlog) != 0) {
    call = "listen";
  } else {
    return num(env, fd);
  }
  err = errno;
  close(fd);
  unlink(addr.sun_path);
  return throw_errno(env, call, err);
}

/* unixConnect(path): connected socket fd (non-blocking, close-on-exec). */
static napi_value unix_connect(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct sockaddr_un addr;
  int fd, flags, err;
  const char *call;
  if (!get_args(env, info, "unixConnect", 1, argv) ||
      !get_sockaddr(env, argv[0], "unixConnect", &addr))
    return NULL;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  /* A blocking connect only waits while the listener's backlog is full;
   * a non-blocking one would report EAGAIN and need a retry protocol. */
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    call = "connect";
  } else if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    call = "fcntl";
  } else {
    return num(env, fd);
  }
  err = errno;
  close(fd);
  return throw_errno(env, call, err);
}

/* accept(listenFd): connection fd, or -1 when none is pending. */
static napi_value accept_conn(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int lfd, fd;
  if (!get_args(env, info, "accept", 1, argv) || !get_fd(env, argv[0], "accept", &lfd))
    return NULL;
  do fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd >= 0) return num(env, fd);
  if (errno == EAGAIN || errno == EWOULDBLOCK) return num(env, -1);
  return throw_errno(env, "accept4", errno);
}

static void close_all(const int *fds, size_t n) {
  for (size_t i = 0; i < n; i++) close(fds[i]);
}

/* recvMsg(fd, target, offset, length, fdsOut): bytes read (> 0), 0 at end of
 * stream (ECONNRESET included: the peer is gone either way), -1 if nothing is
 * available. Received fds are close-on-exec and pushed onto fdsOut. */
static napi_value recv_msg(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int fd;
  uint8_t *ptr;
  size_t len, nfds = 0;
  ssize_t n;
  int fds[RECV_MAX_FDS];
  union { /* aligned as cmsg headers require */
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof fds)];
  } control;
  struct iovec iov;
  struct msghdr msg;
  if (!get_args(env, info, "recvMsg", 5, argv) || !get_fd(env, argv[0], "recvMsg", &fd) ||
      !get_bytes(env, argv + 1, "recvMsg", &ptr, &len) ||
      !is_array(env, argv[4], "recvMsg", "fdsOut"))
    return NULL;
  if (len == 0) {
    /* 0 bytes read is how end of stream is reported. */
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "recvMsg: length must be at least 1");
    return NULL;
  }
  iov.iov_base = ptr;
  iov.iov_len = len;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  do n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return num(env, -1);
    if (errno == ECONNRESET) return num(env, 0);
    return throw_errno(env, "recvmsg", errno);
  }
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    /* The size of control bounds the total, so fds cannot overflow. */
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    memcpy(fds + nfds, CMSG_DATA(c), count * sizeof(int));
    nfds += count;
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    /* The kernel closed the fds that did not fit; the bytes of this read are
     * consumed too, so the stream cannot be trusted any more. */
    close_all(fds, nfds);
    napi_throw(env, make_error(env, "ECTRUNC", "recvmsg: too many file descriptors", "recvmsg"));
    return NULL;
  }
  uint32_t base;
  napi_get_array_length(env, argv[4], &base);
  for (size_t i = 0; i < nfds; i++) {
    if (napi_set_element(env, argv[4], base + (uint32_t)i, num(env, fds[i])) != napi_ok) {
      close_all(fds + i, nfds - i);
      return fail(env, "recvMsg: cannot store into fdsOut");
    }
  }
  return num(env, (double)n);
}

/* sendMsg(fd, bytes, offset, length, fds): bytes sent, or -1 if the socket
 * buffer is full. The fds travel with the first byte sent. */
static napi_value send_msg(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int fd;
  uint8_t *ptr;
  size_t len;
  uint32_t nfds;
  ssize_t n;
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(SEND_MAX_FDS * sizeof(int))];
  } control;
  struct iovec iov;
  struct msghdr msg;
  if (!get_args(env, info, "sendMsg", 5, argv) || !get_fd(env, argv[0], "sendMsg", &fd) ||
      !is_array(env, argv[4], "sendMsg", "fds"))
    return NULL;
  napi_get_array_length(env, argv[4], &nfds);
  if (nfds > SEND_MAX_FDS) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "sendMsg: more than 253 fds");
    return NULL;
  }
  memset(&msg, 0, sizeof msg);
  /* The fds are read first: reading array elements can run JS (getters)
   * that could detach the buffer whose address get_bytes returns. */
  if (nfds > 0) {
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    for (uint32_t i = 0; i < nfds; i++) {
      napi_value v;
      int one;
      if (napi_get_element(env, argv[4], i, &v) != napi_ok) return fail(env, "sendMsg: fds");
      if (!get_fd(env, v, "sendMsg", &one)) return NULL;
      memcpy(CMSG_DATA(c) + i * sizeof(int), &one, sizeof one);
    }
  }
  if (!get_bytes(env, argv + 1, "sendMsg", &ptr, &len)) return NULL;
  if (nfds > 0 && len == 0) {
    /* A stream socket carries fds only along with data. */
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "sendMsg: fds need at least 1 byte");
    return NULL;
  }
  iov.iov_base = ptr;
  iov.iov_len = len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  do n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n >= 0) return num(env, (double)n);
  if (errno == EAGAIN || errno == EWOULDBLOCK) return num(env, -1);
  return throw_errno(env, "sendmsg", errno);
}

static void stop_watcher_of_fd(int fd);

/* close(fd): stops this thread's watcher of the fd, if any, then closes it. */
static napi_value close_fd(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, "close", 1, argv) || !get_fd(env, argv[0], "close", &fd))
    return NULL;
  /* A watch of a closed fd never fires again and never ends: it would keep
   * the loop alive for good (the process or worker would not exit), and a
   * new fd with the same number could not be watched (EEXIST). */
  stop_watcher_of_fd(fd);
  /* On Linux the fd is released even when close reports EINTR, so a retry
   * could close an fd that another thread has just opened. */
  if (close(fd) != 0 && errno != EINTR) return throw_errno(env, "close", errno);
  return undefined(env);
}

/* ---- shared memory ------------------------------------------------------- */

/* memfdCreate(name, size): close-on-exec memfd of the given size. */
static napi_value memfd_create_sized(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char name[250]; /* the kernel's limit is 249 bytes plus NUL */
  int64_t size;
  int fd, err;
  if (!get_args(env, info, "memfdCreate", 2, argv) ||
      !get_string(env, argv[0], "memfdCreate", "name", name, sizeof name) ||
      !get_int(env, argv[1], "memfdCreate", "size", 0, MAX_SAFE_INT, &size))
    return NULL;
  fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return throw_errno(env, "memfd_create", errno);
  if (ftruncate(fd, (off_t)size) != 0) {
    err = errno;
    close(fd);
    return throw_errno(env, "ftruncate", err);
  }
  return num(env, fd);
}

/* fileSize(fd): st_size of the file fd refers to (0 for eventfds, sockets,
 * pipes), so that a mapping can be kept inside the file: touching a mapped
 * page beyond the end of a file is a SIGBUS. */
static napi_value file_size(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  struct stat st;
  if (!get_args(env, info, "fileSize", 1, argv) || !get_fd(env, argv[0], "fileSize", &fd)) return NULL;
  if (fstat(fd, &st) != 0) return throw_errno(env, "fstat", errno);
  return num(env, (double)st.st_size);
}

/* One mmap'ed range. It is referenced by the ArrayBuffer's backing-store
 * finalizer and by the wrap on the ArrayBuffer object that unmap() uses to
 * find it; these two go away in either order, hence the count. Both run on
 * the JS thread of the env that created the mapping. */
typedef struct {
  void *addr; /* NULL once unmapped */
  size_t length;
  int refs;
  int guard; /* its slot in the SIGBUS guard (mapGuest), or -1 */
} mapping;

static void guard_retire(int slot);
static void guard_release(int slot);

/* munmap, with the guard slot (if any) retired around it: no handler may
 * remap a range that is being unmapped and possibly reused. */
static int mapping_unmap(mapping *m) {
  int rc;
  if (m->guard >= 0) guard_retire(m->guard);
  rc = munmap(m->addr, m->length);
  if (m->guard >= 0) guard_release(m->guard);
  m->guard = -1;
  return rc;
}

static void mapping_release(mapping *m) {
  if (--m->refs > 0) return;
  if (m->addr != NULL) mapping_unmap(m);
  free(m);
}

static void on_mapping_gone(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  mapping_release(hint);
}

static void on_wrap_gone(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  mapping_release(data);
}

static int guard_claim(void);
static void guard_activate(int slot, void *addr, size_t length);
static bool guard_install(void);

/* The mapping behind mapShared and mapGuest: ArrayBuffer over a MAP_SHARED
 * read-write mapping, unmapped when the buffer is collected or by unmap().
 * `guarded`: registered with the SIGBUS guard (see below). */
static napi_value map_file(napi_env env, napi_callback_info info, const char *fn, bool guarded) {
  napi_value argv[3], ab;
  int fd, slot = -1;
  int64_t offset, length;
  mapping *m;
  void *addr;
  if (!get_args(env, info, fn, 3, argv) || !get_fd(env, argv[0], fn, &fd) ||
      !get_int(env, argv[1], fn, "offset", 0, MAX_SAFE_INT, &offset) ||
      !get_int(env, argv[2], fn, "length", 1, MAX_SAFE_INT, &length))
    return NULL;
  if (guarded) {
    if (!guard_install()) return throw_errno(env, "sigaction", errno);
    slot = guard_claim();
    if (slot < 0) return throw_errno(env, "mapGuest", ENOSPC);
  }
  m = malloc(sizeof *m);
  if (m == NULL) {
    if (slot >= 0) guard_release(slot);
    return throw_errno(env, "malloc", ENOMEM);
  }
  addr = mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
  if (addr == MAP_FAILED) {
    int err = errno;
    free(m);
    if (slot >= 0) guard_release(slot);
    return throw_errno(env, "mmap", err);
  }
  if (slot >= 0) guard_activate(slot, addr, (size_t)length);
  m->guard = slot;
  m->addr = addr;
  m->length = (size_t)length;
  m->refs = 2; /* the ArrayBuffer's, and the one that becomes the wrap's */
  if (napi_create_external_arraybuffer(env, addr, m->length, on_mapping_gone, m, &ab) != napi_ok) {
    /* Node 20 runs the finalizer when it rejects a buffer (e.g. larger than
     * buffer.constants.MAX_LENGTH, which sys.ts checks first); the Node-API
     * contract says it does not. Either way only this release is left. */
    m->refs = 1;
    mapping_release(m);
    return fail(env, "mapShared: cannot create the ArrayBuffer");
  }
  if (napi_wrap(env, ab, m, on_wrap_gone, NULL, NULL) != napi_ok) {
    mapping_release(m);
    return fail(env, "mapShared: cannot tag the ArrayBuffer");
  }
  return ab;
}

/* mapShared(fd, offset, length): a mapping of a file of our own. */
static napi_value map_shared(napi_env env, napi_callback_info info) {
  return map_file(env, info, "mapShared", false);
}

/* mapGuest(fd, offset, length): a mapping of a file someone else controls (guest memory):
 * if the file shrinks under it, an access beyond the new end is absorbed by the SIGBUS
 * guard instead of killing the process. */
static napi_value map_guest(napi_env env, napi_callback_info info) {
  return map_file(env, info, "mapGuest", true);
}

/* unmap(buffer): detach a buffer from mapShared and munmap it right away. */
static napi_value unmap(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  bool is_ab = false;
  mapping *m = NULL;
  if (!get_args(env, info, "unmap", 1, argv)) return NULL;
  napi_is_arraybuffer(env, argv[0], &is_ab);
  if (!is_ab) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "unmap: buffer must be an ArrayBuffer");
    return NULL;
  }
  if (napi_unwrap(env, argv[0], (void **)&m) != napi_ok || m == NULL) {
    napi_throw_error(env, "ERR_INVALID_ARG_VALUE",
                     "unmap: the ArrayBuffer was not returned by mapShared");
    return NULL;
  }
  if (m->addr == NULL) {
    napi_throw_error(env, "ERR_INVALID_STATE", "unmap: the ArrayBuffer is already unmapped");
    return NULL;
  }
  /* Detach first: once unmapped, any access through it would fault. */
  if (napi_detach_arraybuffer(env, argv[0]) != napi_ok)
    return fail(env, "unmap: cannot detach the ArrayBuffer");
  if (mapping_unmap(m) != 0) return throw_errno(env, "munmap", errno);
  m->addr = NULL;
  return undefined(env);
}

/* mappingGuard(buffer): the guard slot of a buffer from mapGuest, -1 for one from mapShared. */
static napi_value mapping_guard(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  mapping *m = NULL;
  if (!get_args(env, info, "mappingGuard", 1, argv)) return NULL;
  if (napi_unwrap(env, argv[0], (void **)&m) != napi_ok || m == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE",
                          "mappingGuard: the buffer was not returned by mapShared or mapGuest");
    return NULL;
  }
  return num(env, m->guard);
}

/* ---- the SIGBUS guard ------------------------------------------------------
 *
 * A vhost-user frontend shares guest RAM as a file (a memfd) that it can
 * still truncate after SET_MEM_TABLE; QEMU and DPDK do not seal it. Touching a
 * page of a MAP_SHARED mapping beyond the file's end raises SIGBUS, which
 * would kill the whole device. The guard is a process-wide SIGBUS handler and
 * a fixed table of the mappings made by mapGuest: a fault inside one of them
 * gets private zero pages mapped (MAP_FIXED) from the faulting page to the
 * end of that mapping (every later file offset is beyond the end too), so the
 * access completes, and the fault is counted in fault_words for JS to see
 * (one plain read of word 0 per burst). A later fault lower in the same
 * mapping zeroes what lies above it again: what was written there went to
 * private pages, lost to the frontend either way. Any other SIGBUS is not
 * ours: it goes to the handler there was before, or with none the default
 * disposition is restored and the process dies of it as it would have.
 *
 * The handler is async-signal-safe: no allocation, no locks, no JS; only
 * atomics on static memory and the mmap, sigaction and raise system calls
 * (mmap is not on POSIX's list, but on Linux glibc's wrapper is the bare
 * system call, as signal-driven garbage collectors rely on). A slot is
 * claimed (FREE -> CLAIMED), filled and published (ACTIVE), and on unmap set
 * RETIRING, after which the unmapping thread waits until no handler is inside
 * it (`handlers`) before munmap and FREE: a handler that saw ACTIVE after
 * entering never remaps a range that is being unmapped or reused.
 */
#define GUARD_SLOTS 1024
enum { SLOT_FREE, SLOT_CLAIMED, SLOT_ACTIVE, SLOT_RETIRING };

typedef struct {
  _Atomic int state;
  _Atomic int handlers;
  /* Written while CLAIMED, read by handlers only after they see ACTIVE. */
  uintptr_t start;
  size_t length;
} guard_slot;

static guard_slot guard_slots[GUARD_SLOTS];
/* Word 0: faults absorbed in all. Slot k: word 1 + 2k, faults absorbed in it
 * since it was claimed; word 2 + 2k, 1 + the page (from the mapping's start)
 * of its first fault, 0 if none. Read from JS through guestFaultWords(). */
static _Atomic int32_t fault_words[1 + 2 * GUARD_SLOTS];
static struct sigaction previous_sigbus;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static int guard_install_error;
static uintptr_t page_size;

static void on_sigbus(int sig, siginfo_t *info, void *context) {
  int saved_errno = errno;
  uintptr_t addr = (uintptr_t)info->si_addr;
  /* si_code > 0: raised by the kernel for an access, not sent by kill(). */
  if (info->si_code > 0) {
    for (int k = 0; k < GUARD_SLOTS; k++) {
      guard_slot *s = &guard_slots[k];
      if (atomic_load(&s->state) != SLOT_ACTIVE) continue;
      atomic_fetch_add(&s->handlers, 1);
      if (atomic_load(&s->state) == SLOT_ACTIVE && addr - s->start < s->length) {
        uintptr_t page = addr & ~(page_size - 1);
        void *done = mmap((void *)page, s->start + s->length - page, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        atomic_fetch_sub(&s->handlers, 1);
        if (done == MAP_FAILED) break;
        int32_t first = (int32_t)((page - s->start) / page_size + 1);
        int32_t none = 0;
        atomic_compare_exchange_strong(&fault_words[2 + 2 * k], &none, first);
        atomic_fetch_add(&fault_words[1 + 2 * k], 1);
        atomic_fetch_add(&fault_words[0], 1);
        errno = saved_errno;
        return; /* the access is retried and now finds zero pages */
      }
      atomic_fetch_sub(&s->handlers, 1);
    }
  }
  /* Not ours: hand it to whoever had SIGBUS before us. */
  if (previous_sigbus.sa_flags & SA_SIGINFO) {
    previous_sigbus.sa_sigaction(sig, info, context);
  } else if (previous_sigbus.sa_handler != SIG_DFL && previous_sigbus.sa_handler != SIG_IGN) {
    previous_sigbus.sa_handler(sig);
  } else {
    /* The default action: a faulting access runs again on return and dies of
     * it; a SIGBUS sent by kill() is raised again (blocked until we return). */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGBUS, &dfl, NULL);
    if (info->si_code <= 0) raise(SIGBUS);
  }
  errno = saved_errno;
}

static void guard_install_once(void) {
  struct sigaction sa;
  page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  /* SA_ONSTACK: a thread that set up an alternate stack (overflow) keeps using it. */
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, &previous_sigbus) != 0) guard_install_error = errno;
}

/* Installs the handler, once per process (every worker thread shares it). */
static bool guard_install(void) {
  pthread_once(&guard_once, guard_install_once);
  errno = guard_install_error;
  return guard_install_error == 0;
}

static int guard_claim(void) {
  for (int k = 0; k < GUARD_SLOTS; k++) {
    int expected = SLOT_FREE;
    if (atomic_compare_exchange_strong(&guard_slots[k].state, &expected, SLOT_CLAIMED)) return k;
  }
  return -1;
}

static void guard_activate(int slot, void *addr, size_t length) {
  guard_slot *s = &guard_slots[slot];
  s->start = (uintptr_t)addr;
  s->length = length;
  atomic_store(&fault_words[2 + 2 * slot], 0);
  atomic_store(&fault_words[1 + 2 * slot], 0);
  atomic_store(&s->state, SLOT_ACTIVE);
}

/* Before munmap: no handler enters the slot any more, and none is inside it. */
static void guard_retire(int slot) {
  guard_slot *s = &guard_slots[slot];
  atomic_store(&s->state, SLOT_RETIRING);
  while (atomic_load(&s->handlers) != 0) sched_yield();
}

static void guard_release(int slot) {
  atomic_store(&guard_slots[slot].state, SLOT_FREE);
}

static void no_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  (void)hint;
}

/* guestFaultWords(): an ArrayBuffer over fault_words (static, never freed). */
static napi_value guest_fault_words(napi_env env, napi_callback_info info) {
  napi_value ab;
  (void)info;
  if (napi_create_external_arraybuffer(env, (void *)fault_words, sizeof fault_words, no_finalize,
                                       NULL, &ab) != napi_ok)
    return fail(env, "guestFaultWords: cannot create the ArrayBuffer");
  return ab;
}

/* ---- eventfd ------------------------------------------------------------- */

/* eventfdCreate(initial, nonblocking) */
static napi_value eventfd_create(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t initial;
  bool nonblocking;
  int fd;
  if (!get_args(env, info, "eventfdCreate", 2, argv) ||
      !get_int(env, argv[0], "eventfdCreate", "initial", 0, UINT32_MAX, &initial))
    return NULL;
  if (napi_get_value_bool(env, argv[1], &nonblocking) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                          "eventfdCreate: nonblocking must be a boolean");
    return NULL;
  }
  fd = eventfd((unsigned int)initial, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0));
  if (fd < 0) return throw_errno(env, "eventfd", errno);
  return num(env, fd);
}

/* eventfdRead(fd): the counter (reset to 0 by the read), 0 if it was 0 on a
 * non-blocking fd. Counters above 2^53 lose precision as JS numbers. */
static napi_value eventfd_read_counter(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  uint64_t value;
  ssize_t n;
  if (!get_args(env, info, "eventfdRead", 1, argv) || !get_fd(env, argv[0], "eventfdRead", &fd))
    return NULL;
  do n = read(fd, &value, sizeof value);
  while (n < 0 && errno == EINTR);
  if (n == sizeof value) return num(env, (double)value);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return num(env, 0);
  return throw_errno(env, "read", n < 0 ? errno : EIO);
}

/* eventfdWrite(fd, value): add value to the counter. */
static napi_value eventfd_write_counter(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  int64_t value;
  uint64_t v;
  ssize_t n;
  if (!get_args(env, info, "eventfdWrite", 2, argv) || !get_fd(env, argv[0], "eventfdWrite", &fd) ||
      !get_int(env, argv[1], "eventfdWrite", "value", 0, MAX_SAFE_INT, &value))
    return NULL;
  v = (uint64_t)value;
  do n = write(fd, &v, sizeof v);
  while (n < 0 && errno == EINTR);
  if (n == sizeof v) return undefined(env);
  /* EAGAIN: the counter would overflow, so the fd is readable already and
   * the reader will see the signal anyway. */
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return undefined(env);
  return throw_errno(env, "write", n < 0 ? errno : EIO);
}

/* ---- fd watchers --------------------------------------------------------- */

/* One uv_poll_t on the loop of the env that created it. The memory is shared
 * by the open uv handle and by the JS stop() function, which can go away in
 * either order; both run on the env's own thread. */
typedef struct watcher {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  napi_async_cleanup_hook_handle cleanup;
  int fd;
  bool closing;
  int refs;
  /* This thread's running watchers (not closing), for close() and watcherCount(). */
  struct watcher *prev, *next;
} watcher;

/* Each env (main thread or worker) runs on its own thread. */
static _Thread_local watcher *running_watchers;
static _Thread_local int running_watcher_count;

static void watcher_release(watcher *w) {
  if (--w->refs == 0) free(w);
}

static void on_poll_closed(uv_handle_t *handle) {
  watcher *w = handle->data;
  /* Deleted only now, not in stop(): stop() may run inside the callback. */
  if (w->callback != NULL) napi_delete_reference(w->env, w->callback);
  if (w->async != NULL) napi_async_destroy(w->env, w->async);
  /* Last: during teardown this lets the env go. */
  if (w->cleanup != NULL) napi_remove_async_cleanup_hook(w->cleanup);
  watcher_release(w);
}

static void watcher_close(watcher *w) {
  if (w->closing) return;
  w->closing = true;
  if (w->prev != NULL) w->prev->next = w->next;
  else running_watchers = w->next;
  if (w->next != NULL) w->next->prev = w->prev;
  running_watcher_count--;
  uv_close((uv_handle_t *)&w->poll, on_poll_closed);
}

static void stop_watcher_of_fd(int fd) {
  /* One watcher per fd and loop at most (uv_poll_init refuses a second). */
  for (watcher *w = running_watchers; w != NULL; w = w->next) {
    if (w->fd == fd) {
      watcher_close(w);
      return;
    }
  }
}

/* The env (e.g. a worker) is being torn down: the handle must be closed
 * before its loop is, which is why the hook is asynchronous. */
static void on_env_teardown(napi_async_cleanup_hook_handle handle, void *arg) {
  (void)handle;
  watcher_close(arg);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  watcher *w = handle->data;
  napi_env env = w->env;
  napi_handle_scope scope;
  napi_value fn, global;
  bool pending = false;
  /* Errors (status < 0) are passed on as readability too: the read that
   * follows reports them. */
  (void)status;
  (void)events;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_get_reference_value(env, w->callback, &fn);
  napi_get_global(env, &global);
  /* napi_make_callback, not napi_call_function: it runs the callback in the
   * async context of watchReadable's caller (AsyncLocalStorage) and in a
   * callback scope that runs queued nextTick and promise jobs after it. */
  if (napi_make_callback(env, w->async, global, fn, 0, NULL, NULL) != napi_ok &&
      napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);
  }
  napi_close_handle_scope(env, scope);
}

static napi_value stop_watcher(napi_env env, napi_callback_info info) {
  watcher *w;
  napi_get_cb_info(env, info, NULL, NULL, NULL, (void **)&w);
  watcher_close(w);
  return undefined(env);
}

static void on_stop_gone(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  watcher_release(data);
}

/* watchReadable(fd, onReadable): { stop() }. */
static napi_value watch_readable(napi_env env, napi_callback_info info) {
  napi_value argv[2], name, stop, result;
  napi_valuetype type;
  uv_loop_t *loop;
  watcher *w;
  int fd, rc;
  if (!get_args(env, info, "watchReadable", 2, argv) || !get_fd(env, argv[0], "watchReadable", &fd))
    return NULL;
  if (napi_typeof(env, argv[1], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                          "watchReadable: onReadable must be a function");
    return NULL;
  }
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return fail(env, "watchReadable: no loop");
  w = calloc(1, sizeof *w);
  if (w == NULL) return throw_errno(env, "calloc", ENOMEM);
  /* Note: uv_poll_init also puts the fd into O_NONBLOCK mode. */
  rc = uv_poll_init(loop, &w->poll, fd);
  if (rc < 0) {
    free(w);
    return throw_errno(env, "uv_poll_init", -rc);
  }
  w->poll.data = w;
  w->env = env;
  w->fd = fd;
  w->refs = 1; /* the handle's, dropped in on_poll_closed */
  w->next = running_watchers;
  if (running_watchers != NULL) running_watchers->prev = w;
  running_watchers = w;
  running_watcher_count++;
  if (napi_create_reference(env, argv[1], 1, &w->callback) != napi_ok ||
      napi_create_string_utf8(env, "zcnic.FdWatcher", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &w->async) != napi_ok ||
      napi_add_async_cleanup_hook(env, on_env_teardown, w, &w->cleanup) != napi_ok ||
      napi_create_function(env, "stop", NAPI_AUTO_LENGTH, stop_watcher, w, &stop) != napi_ok ||
      napi_add_finalizer(env, stop, w, on_stop_gone, NULL, NULL) != napi_ok)
    goto failed;
  w->refs++; /* stop()'s, dropped when it is collected */
  if (napi_create_object(env, &result) != napi_ok ||
      napi_set_named_property(env, result, "stop", stop) != napi_ok)
    goto failed;
  rc = uv_poll_start(&w->poll, UV_READABLE | UV_DISCONNECT, on_poll);
  if (rc < 0) {
    watcher_close(w);
    return throw_errno(env, "uv_poll_start", -rc);
  }
  return result;
failed:
  watcher_close(w);
  return fail(env, "watchReadable: Node-API call failed");
}

/* watcherCount(): the watchers of this thread that are running (not stopped). */
static napi_value watcher_count(napi_env env, napi_callback_info info) {
  (void)info;
  return num(env, running_watcher_count);
}

/* ---- module -------------------------------------------------------------- */

/* ---- tap devices and plain fd I/O ----------------------------------------- */

/* tunOpen(name, vnetHeader): opens /dev/net/tun (O_RDWR|O_NONBLOCK|O_CLOEXEC)
 * and attaches it to tap interface `name` (IFF_TAP|IFF_NO_PI, and IFF_VNET_HDR
 * when vnetHeader is true; created if missing). */
static napi_value tun_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct ifreq ifr;
  bool vnet_header;
  int fd, err;
  memset(&ifr, 0, sizeof ifr);
  if (!get_args(env, info, "tunOpen", 2, argv) ||
      !get_string(env, argv[0], "tunOpen", "name", ifr.ifr_name, IFNAMSIZ))
    return NULL;
  if (napi_get_value_bool(env, argv[1], &vnet_header) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "tunOpen: vnetHeader must be a boolean");
    return NULL;
  }
  fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open", errno);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet_header ? IFF_VNET_HDR : 0);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    err = errno;
    close(fd);
    return throw_errno(env, "ioctl", err);
  }
  return num(env, fd);
}

/* tunSetVnetHeaderSize(fd, size): TUNSETVNETHDRSZ (the prefix of every read
 * and write of an IFF_VNET_HDR tap; the kernel takes 10 or more). */
static napi_value tun_set_vnet_header_size(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd, size;
  int64_t x;
  if (!get_args(env, info, "tunSetVnetHeaderSize", 2, argv) ||
      !get_fd(env, argv[0], "tunSetVnetHeaderSize", &fd) ||
      !get_int(env, argv[1], "tunSetVnetHeaderSize", "size", 0, INT32_MAX, &x))
    return NULL;
  size = (int)x;
  if (ioctl(fd, TUNSETVNETHDRSZ, &size) < 0) return throw_errno(env, "ioctl", errno);
  return undefined(env);
}

/* tunSetOffload(fd, flags): TUNSETOFFLOAD (TUN_F_* bits: which partial
 * checksums and GSO frames the host may hand us). */
static napi_value tun_set_offload(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  int64_t flags;
  if (!get_args(env, info, "tunSetOffload", 2, argv) || !get_fd(env, argv[0], "tunSetOffload", &fd) ||
      !get_int(env, argv[1], "tunSetOffload", "flags", 0, UINT32_MAX, &flags))
    return NULL;
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0) return throw_errno(env, "ioctl", errno);
  return undefined(env);
}

/* readFd(fd, buffer, offset, length): bytes read, 0 at end, -1 if EAGAIN. */
static napi_value read_fd(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  uint8_t *ptr;
  size_t len;
  ssize_t n;
  if (!get_args(env, info, "readFd", 4, argv) || !get_fd(env, argv[0], "readFd", &fd) ||
      !get_bytes(env, argv + 1, "readFd", &ptr, &len))
    return NULL;
  do n = read(fd, ptr, len);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return num(env, -1);
    return throw_errno(env, "read", errno);
  }
  return num(env, (double)n);
}

/* writeFd(fd, buffer, offset, length): bytes written, -1 if EAGAIN. */
static napi_value write_fd(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int fd;
  uint8_t *ptr;
  size_t len;
  ssize_t n;
  if (!get_args(env, info, "writeFd", 4, argv) || !get_fd(env, argv[0], "writeFd", &fd) ||
      !get_bytes(env, argv + 1, "writeFd", &ptr, &len))
    return NULL;
  do n = write(fd, ptr, len);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return num(env, -1);
    return throw_errno(env, "write", errno);
  }
  return num(env, (double)n);
}

/* A Float64Array of at least `count` elements. */
static bool get_float64s(napi_env env, napi_value v, const char *fn, const char *name,
                         size_t count, const double **out) {
  bool is_typed = false;
  napi_typedarray_type type;
  size_t len;
  void *data;
  char msg[128];
  napi_is_typedarray(env, v, &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, v, &type, &len, &data, NULL, NULL) != napi_ok ||
      type != napi_float64_array) {
    snprintf(msg, sizeof msg, "%s: %s must be a Float64Array", fn, name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  if (len < count) {
    snprintf(msg, sizeof msg, "%s: %s has fewer than %zu elements", fn, name, count);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return false;
  }
  *out = data;
  return true;
}

/* writevFd(fd, buffers, offsets, lengths, count): one writev(2) of
 * buffers[i][offsets[i]...offsets[i]+lengths[i]] for i < count (at most
 * UIO_MAXIOV); bytes written, -1 if EAGAIN. The caller keeps the arrays, so a
 * write allocates nothing. */
static napi_value writev_fd(napi_env env, napi_callback_info info) {
  napi_value argv[5], element;
  struct iovec iov[UIO_MAXIOV];
  const double *offsets, *lengths;
  napi_typedarray_type type;
  size_t len;
  void *data;
  bool is_typed;
  int fd;
  int64_t count;
  ssize_t n;
  if (!get_args(env, info, "writevFd", 5, argv) || !get_fd(env, argv[0], "writevFd", &fd) ||
      !is_array(env, argv[1], "writevFd", "buffers") ||
      !get_int(env, argv[4], "writevFd", "count", 1, UIO_MAXIOV, &count) ||
      !get_float64s(env, argv[2], "writevFd", "offsets", (size_t)count, &offsets) ||
      !get_float64s(env, argv[3], "writevFd", "lengths", (size_t)count, &lengths))
    return NULL;
  for (int64_t i = 0; i < count; i++) {
    is_typed = false;
    if (napi_get_element(env, argv[1], (uint32_t)i, &element) != napi_ok) return fail(env, "writevFd: napi_get_element failed");
    napi_is_typedarray(env, element, &is_typed);
    if (!is_typed || napi_get_typedarray_info(env, element, &type, &len, &data, NULL, NULL) != napi_ok ||
        type != napi_uint8_array) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "writevFd: every buffer must be a Uint8Array");
      return NULL;
    }
    /* Integral and inside the buffer (also rejects NaN). */
    if (!(offsets[i] >= 0 && lengths[i] >= 0 && offsets[i] + lengths[i] <= (double)len) ||
        offsets[i] != (double)(size_t)offsets[i] || lengths[i] != (double)(size_t)lengths[i]) {
      napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "writevFd: a range lies outside its buffer");
      return NULL;
    }
    iov[i].iov_base = (uint8_t *)data + (size_t)offsets[i];
    iov[i].iov_len = (size_t)lengths[i];
  }
  do n = writev(fd, iov, (int)count);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return num(env, -1);
    return throw_errno(env, "writev", errno);
  }
  return num(env, (double)n);
}

/* ---- copies between byte arrays ------------------------------------------ */

/* copyBytes(dst, dstOffset, src, srcOffset, length): copies
 * src[srcOffset...srcOffset+length] to dst[dstOffset...] (memmove: the ranges
 * may overlap), both Uint8Arrays, both ranges inside their arrays. In JS a copy
 * between two ArrayBuffers needs a view of the source range
 * (TypedArray.prototype.set takes whole arrays, and Node 20's
 * Buffer.prototype.copy makes the view itself), one object per copy; this
 * makes none. Guest memory is as safe to read here as from JS: the SIGBUS
 * guard absorbs a fault at any instruction. */
static napi_value copy_bytes(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  uint8_t *dst, *src;
  size_t dst_len, src_len;
  int64_t dst_off, src_off, n;
  if (!get_args(env, info, "copyBytes", 5, argv) ||
      !get_uint8_array(env, argv[0], "copyBytes", "dst", &dst, &dst_len) ||
      !get_int(env, argv[1], "copyBytes", "dstOffset", 0, (int64_t)dst_len, &dst_off) ||
      !get_uint8_array(env, argv[2], "copyBytes", "src", &src, &src_len) ||
      !get_int(env, argv[3], "copyBytes", "srcOffset", 0, (int64_t)src_len, &src_off))
    return NULL;
  int64_t room = (int64_t)dst_len - dst_off;
  int64_t available = (int64_t)src_len - src_off;
  if (!get_int(env, argv[4], "copyBytes", "length", 0, room < available ? room : available, &n))
    return NULL;
  memmove(dst + dst_off, src + src_off, (size_t)n);
  return NULL;
}

/* ---- socket pairs (port wire) --------------------------------------------- */

/* socketPair(): [fd, fd], a connected pair of unix SOCK_SEQPACKET sockets
 * (non-blocking, close-on-exec): one message per write, read whole by one read. */
static napi_value socket_pair(napi_env env, napi_callback_info info) {
  napi_value result;
  int fds[2];
  (void)info;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
    return throw_errno(env, "socketpair", errno);
  if (napi_create_array_with_length(env, 2, &result) != napi_ok ||
      napi_set_element(env, result, 0, num(env, fds[0])) != napi_ok ||
      napi_set_element(env, result, 1, num(env, fds[1])) != napi_ok) {
    close_all(fds, 2);
    return fail(env, "socketPair: cannot make the result");
  }
  return result;
}

/* socketType(fd): SO_TYPE (SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5, ...),
 * -1 for an open fd that is not a socket; a closed fd throws EBADF. */
static napi_value socket_type(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd, type;
  socklen_t len = sizeof type;
  if (!get_args(env, info, "socketType", 1, argv) || !get_fd(env, argv[0], "socketType", &fd))
    return NULL;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0) return num(env, type);
  if (errno == ENOTSOCK) return num(env, -1);
  return throw_errno(env, "getsockopt", errno);
}

/* setSendBuffer(fd, bytes): SO_SNDBUFFORCE (CAP_NET_ADMIN), else SO_SNDBUF
 * (capped at net.core.wmem_max); returns SO_SNDBUF as the kernel then reports it
 * (twice what it granted, for its bookkeeping). */
static napi_value set_send_buffer(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd, size, granted;
  int64_t x;
  socklen_t len = sizeof granted;
  if (!get_args(env, info, "setSendBuffer", 2, argv) || !get_fd(env, argv[0], "setSendBuffer", &fd) ||
      !get_int(env, argv[1], "setSendBuffer", "bytes", 0, INT32_MAX / 2, &x))
    return NULL;
  size = (int)x;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0 &&
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) != 0)
    return throw_errno(env, "setsockopt", errno);
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &granted, &len) != 0) return throw_errno(env, "getsockopt", errno);
  return num(env, granted);
}

NAPI_MODULE_INIT() {
  static const napi_property_descriptor props[] = {
      {"unixListen", NULL, unix_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unixConnect", NULL, unix_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"accept", NULL, accept_conn, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recvMsg", NULL, recv_msg, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendMsg", NULL, send_msg, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"memfdCreate", NULL, memfd_create_sized, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mapShared", NULL, map_shared, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unmap", NULL, unmap, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mapGuest", NULL, map_guest, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mappingGuard", NULL, mapping_guard, NULL, NULL, NULL, napi_enumerable, NULL},
      {"guestFaultWords", NULL, guest_fault_words, NULL, NULL, NULL, napi_enumerable, NULL},
      {"eventfdCreate", NULL, eventfd_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"eventfdRead", NULL, eventfd_read_counter, NULL, NULL, NULL, napi_enumerable, NULL},
      {"eventfdWrite", NULL, eventfd_write_counter, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watchReadable", NULL, watch_readable, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watcherCount", NULL, watcher_count, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fileSize", NULL, file_size, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunOpen", NULL, tun_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunSetVnetHeaderSize", NULL, tun_set_vnet_header_size, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunSetOffload", NULL, tun_set_offload, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readFd", NULL, read_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writeFd", NULL, write_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writevFd", NULL, writev_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"socketPair", NULL, socket_pair, NULL, NULL, NULL, napi_enumerable, NULL},
      {"socketType", NULL, socket_type, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setSendBuffer", NULL, set_send_buffer, NULL, NULL, NULL, napi_enumerable, NULL},
      {"copyBytes", NULL, copy_bytes, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok)
    return fail(env, "zcnic_sys: cannot define exports");
  return exports;
}
