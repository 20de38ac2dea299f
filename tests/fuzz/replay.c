/* replay.c — main() for the fuzz targets when they are built without libFuzzer (gcc, the normal and sanitizer
 * builds): runs LLVMFuzzerTestOneInput once on every file named, and on every file in every directory named, in
 * name order. CTest uses it to replay tests/fuzz/corpus/<target>, which holds the seeds and every input that once
 * found a bug, so each fix stays tested in every build. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc(cap);
  for (size_t got; buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
    n += got;
    if (n == cap) {
      uint8_t *bigger = realloc(buf, cap *= 2);
      if (bigger == NULL) free(buf);
      buf = bigger;
    }
  }
  int bad = ferror(f);
  fclose(f);
  if (buf == NULL || bad) {
    fprintf(stderr, "replay: cannot read %s\n", path);
    free(buf);
    return -1;
  }
  LLVMFuzzerTestOneInput(buf, n);
  free(buf);
  return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  int files = 0, failed = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      failed |= run_file(argv[i]) != 0;
      files++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    if (d == NULL) {
      fprintf(stderr, "replay: cannot list %s: %s\n", argv[i], strerror(errno));
      return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
      if (e->d_name[0] == '.') continue;
      if (n == cap) {
        char **bigger = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names);
        if (bigger == NULL) abort();
        names = bigger;
      }
      size_t len = strlen(argv[i]) + strlen(e->d_name) + 2;
      if ((names[n] = malloc(len)) == NULL) abort();
      snprintf(names[n++], len, "%s/%s", argv[i], e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    for (size_t k = 0; k < n; k++) {
      failed |= run_file(names[k]) != 0;
      files++;
      free(names[k]);
    }
    free(names);
  }
  fprintf(stderr, "replay: %d input%s run\n", files, files == 1 ? "" : "s");
  return failed;
}
