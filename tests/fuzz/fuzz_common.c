/* fuzz_common.c — the scratch directory the file-building targets write into (fuzz.h). One per process, so
 * parallel fuzzing jobs (-jobs=N) never share files; removed at exit. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

static char scratch[512];

/* The targets write plain files straight into the directory: one level to remove. */
static void scratch_remove(void) {
  DIR *d = opendir(scratch);
  if (d == NULL) return;
  char path[1024];
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", scratch, e->d_name);
    if (unlink(path) != 0) fprintf(stderr, "fuzz: cannot remove %s: %s\n", path, strerror(errno));
  }
  closedir(d);
  if (rmdir(scratch) != 0) fprintf(stderr, "fuzz: cannot remove %s: %s\n", scratch, strerror(errno));
}

const char *fz_scratch_dir(void) {
  if (scratch[0] != '\0') return scratch;
  const char *tmp = getenv("TMPDIR");
  snprintf(scratch, sizeof scratch, "%s/mpitrain-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(scratch) == NULL) {
    fprintf(stderr, "fuzz: cannot create a scratch directory %s: %s\n", scratch, strerror(errno));
    abort();
  }
  if (atexit(scratch_remove) != 0) fprintf(stderr, "fuzz: %s will not be removed at exit\n", scratch);
  return scratch;
}
