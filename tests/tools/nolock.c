/* nolock.c — LD_PRELOAD stand-in for a file system without locks (NFS mounted without a lock manager, Lustre
 * without -o flock): every fcntl lock request on a file named .mpitrain.lock fails with ENOLCK, as it does there.
 * Every other fcntl call goes to the C library. Used by tests/cli/lock.sh nolock. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int is_lock_file(int fd) {
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return 0;
  path[n] = '\0';
  const char *base = strrchr(path, '/');
  return base && strcmp(base + 1, ".mpitrain.lock") == 0;
}

static int is_lock_cmd(int cmd) {
  return cmd == F_SETLK || cmd == F_SETLKW || cmd == F_GETLK
#ifdef F_OFD_SETLK
         || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW || cmd == F_OFD_GETLK
#endif
      ;
}

typedef int (*fcntl_fn)(int, int, ...);

static int forward(const char *name, int fd, int cmd, void *arg) {
  if (is_lock_cmd(cmd) && is_lock_file(fd)) {
    errno = ENOLCK;
    return -1;
  }
  fcntl_fn real = (fcntl_fn)dlsym(RTLD_NEXT, name);
  if (real == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return real(fd, cmd, arg);
}

/* Every fcntl argument is an int or a pointer, passed in a register: reading it as a pointer is what the C library
 * does too. */
int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  return forward("fcntl", fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  return forward("fcntl64", fd, cmd, arg);
}
