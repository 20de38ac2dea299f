/* error.c — first-message-wins error records and checked allocation. */
#ifndef _DEFAULT_SOURCE /* madvise (SimGrid's smpicc defines it already) */
#define _DEFAULT_SOURCE
#endif
#include <sys/mman.h>
#include "mpitrain/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mt_fail(MtError *err, const char *fmt, ...) {
  if (err == NULL || err->failed) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  /* Messages are one line by contract; a stray newline from an external string would break log parsing. */
  for (char *p = err->msg; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  err->failed = 1;
  return -1;
}

void mt_error_clear(MtError *err) {
  err->failed = 0;
  err->msg[0] = '\0';
}

void *mt_alloc(size_t bytes, const char *what, MtError *err) {
  /* 64-byte alignment: whole cache lines for the flat buffers, and what AVX-512 loads like. */
  size_t rounded = (bytes + 63) & ~(size_t)63;
  if (rounded < bytes) {
    mt_fail(err, "cannot allocate %s: %zu bytes is too large", what, bytes);
    return NULL;
  }
  /* Large buffers (an in-memory dataset above all: a batch's rows are scattered over it) on 2 MiB pages where the
   * kernel gives them on request (transparent huge pages in "madvise" mode, Debian's default): one TLB entry per
   * 2 MiB instead of per 4 KiB took a quarter off the time to gather a batch (README, Performance). Only from
   * 8 MiB up, so that rounding to whole huge pages wastes at most a fifth. Advice: a kernel without it ignores it. */
  const size_t huge = (size_t)2 << 20;
  const int big = rounded >= 4 * huge && rounded + huge > rounded;
  if (big) rounded = (rounded + huge - 1) & ~(huge - 1);
  void *p = aligned_alloc(big ? huge : 64, rounded ? rounded : 64);
  if (p != NULL && big) (void)madvise(p, rounded, MADV_HUGEPAGE);
  if (p == NULL) {
    mt_fail(err, "out of memory allocating %s (%.1f MiB)", what, bytes / 1048576.0);
    return NULL;
  }
  memset(p, 0, rounded ? rounded : 64);
  return p;
}

void mt_free(void *p) { free(p); }
