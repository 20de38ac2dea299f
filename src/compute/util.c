/* util.c — see util.h. */
#include "mpitrain/util.h"

#include <ctype.h>
#include <string.h>
#include <time.h>

void mt_even_split(int64_t n, int k, int parts, int64_t *lo, int64_t *hi) {
  int64_t q = n / parts, r = n % parts;
  *lo = k * q + (k < r ? k : r);
  *hi = *lo + q + (k < r ? 1 : 0);
}

double mt_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int mt_has_suffix(const char *s, const char *suffix, int ignore_case) {
  size_t n = strlen(s), m = strlen(suffix);
  if (n < m) return 0;
  for (size_t i = 0; i < m; i++) {
    unsigned char a = (unsigned char)s[n - m + i], b = (unsigned char)suffix[i];
    if (ignore_case ? tolower(a) != tolower(b) : a != b) return 0;
  }
  return 1;
}

const char *mt_enum_name(const char *const *names, int count, int k) { return k >= 0 && k < count ? names[k] : "?"; }

int mt_enum_from_name(const char *const *names, const char *s) {
  for (int i = 0; names[i] != NULL; i++)
    if (strcmp(s, names[i]) == 0) return i;
  return -1;
}
