/* atomicfile.c — write-then-rename replacement of files (atomicfile.h). */
#define _GNU_SOURCE /* O_DIRECTORY */
#include "mpitrain/atomicfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void mt_atomic_host_name(char *out, size_t n) {
  if (gethostname(out, n) != 0) snprintf(out, n, "unknown-host");
  out[n - 1] = '\0';
  for (char *p = out; *p; p++)
    if (*p == '/' || *p == '\n') *p = '_';
}

int mt_atomic_temp_name(const char *path, char *out, size_t n) {
  const char *slash = strrchr(path, '/');
  int dir_len = slash ? (int)(slash - path) + 1 : 0;
  char host[256];
  mt_atomic_host_name(host, sizeof host);
  int len = snprintf(out, n, "%.*s.%s.tmp.%s.%ld", dir_len, path, slash ? slash + 1 : path, host, (long)getpid());
  return len < 0 || (size_t)len >= n ? -1 : 0;
}

/* fsync a file or directory by name. */
static int fsync_path(const char *path, int is_dir) {
  int fd = open(path, O_RDONLY | (is_dir ? O_DIRECTORY : 0));
  if (fd < 0) return -1;
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

int mt_atomic_commit(const char *tmp, const char *path) {
  if (fsync_path(tmp, 0) != 0 || rename(tmp, path) != 0) return -1;
  /* The rename itself is durable only once the directory is synced. */
  char dir[4096];
  const char *slash = strrchr(path, '/');
  snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
  fsync_path(dir, 1);
  return 0;
}
