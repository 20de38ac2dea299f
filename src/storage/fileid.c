/* fileid.c — files compared by what they are (device, inode), not by how they are named, and inputs refused when
 * they are not regular files, by stat before any open (see fileid.h). */
#include "mpitrain/fileid.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define FILEID_PATH_MAX 4096

static const char *kind_name(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "a special file";
}

static int given(const char *path) { return path != NULL && path[0] != '\0'; }

int mt_fileid_same(const char *a, const char *b) {
  struct stat sa, sb;
  if (!given(a) || !given(b) || stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int mt_fileid_regular(const char *path, const char *role, MtError *err) {
  struct stat st;
  if (!given(path) || stat(path, &st) != 0 || S_ISREG(st.st_mode)) return 0;
  if (role != NULL && role[0] != '\0')
    return mt_fail(err, "%s %s: is %s, not a regular file", role, path, kind_name(st.st_mode));
  return mt_fail(err, "%s: is %s, not a regular file", path, kind_name(st.st_mode));
}

/* The directory that holds path's last component ("." when there is no slash). */
static void dir_of(const char *path, char *out, size_t n) {
  const char *slash = strrchr(path, '/');
  snprintf(out, n, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
}

/* How two names of one file differ, for the message: the user sees why two different strings are one file. */
static const char *how_same(const char *a, const char *b) {
  if (strcmp(a, b) == 0) return "";
  struct stat la, lb;
  if ((lstat(a, &la) == 0 && S_ISLNK(la.st_mode)) || (lstat(b, &lb) == 0 && S_ISLNK(lb.st_mode)))
    return " (through a link)";
  /* Neither is a symbolic link: one directory entry reached by two paths, or two entries of one inode. */
  const char *na = strrchr(a, '/'), *nb = strrchr(b, '/');
  char da[FILEID_PATH_MAX], db[FILEID_PATH_MAX];
  dir_of(a, da, sizeof da);
  dir_of(b, db, sizeof db);
  if (strcmp(na ? na + 1 : a, nb ? nb + 1 : b) != 0 || !mt_fileid_same(da, db)) return " (through a hard link)";
  return " (by another path)";
}

int mt_fileid_check(const FileRole *inputs, int n_inputs, const FileRole *outputs, int n_outputs, MtError *err) {
  for (int o = 0; o < n_outputs; o++) {
    const FileRole *out = &outputs[o];
    struct stat so;
    if (!given(out->path) || stat(out->path, &so) != 0) continue; /* not there yet: it cannot be an input */
    if (S_ISDIR(so.st_mode))
      return mt_fail(err, "%s %s: is a directory; expected a file name", out->role, out->path);
    if (out->replaced && !S_ISREG(so.st_mode))
      return mt_fail(err, "%s %s: is %s; expected a file name (it is written elsewhere and renamed into place)",
                     out->role, out->path, kind_name(so.st_mode));
    for (int i = 0; i < n_inputs; i++) {
      const FileRole *in = &inputs[i];
      if (mt_fileid_same(out->path, in->path))
        return mt_fail(err, "%s %s is the same file as %s %s%s; an output must not overwrite an input", out->role,
                       out->path, in->role, in->path, how_same(out->path, in->path));
    }
  }
  return 0;
}
