/* fuzz.h — what the fuzz targets share: reading structured choices from the fuzz input, a private scratch
 * directory, and a check that stops the fuzzer (a crash is what it reports) when one of our invariants breaks.
 *
 * The input is consumed front to back; once it runs out every read returns 0, so any input, even an empty one,
 * describes a complete case and small mutations of the input change one choice at a time. */
#ifndef MPITRAIN_FUZZ_H
#define MPITRAIN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct FuzzIn {
  const uint8_t *p;
  size_t n, i;
} FuzzIn;

static inline uint8_t fz_u8(FuzzIn *f) { return f->i < f->n ? f->p[f->i++] : 0; }
static inline uint16_t fz_u16(FuzzIn *f) { return (uint16_t)(fz_u8(f) | (uint16_t)fz_u8(f) << 8); }
static inline uint32_t fz_u32(FuzzIn *f) { return fz_u16(f) | (uint32_t)fz_u16(f) << 16; }
static inline uint64_t fz_u64(FuzzIn *f) { return fz_u32(f) | (uint64_t)fz_u32(f) << 32; }
/* 0 .. n-1 */
static inline int fz_pick(FuzzIn *f, int n) { return n <= 1 ? 0 : fz_u8(f) % n; }
/* 1 with probability about k/256: rare variations stay rare, so most inputs build well-formed files. */
static inline int fz_chance(FuzzIn *f, int k) { return fz_u8(f) < k; }
static inline float fz_f32_raw(FuzzIn *f) {
  uint32_t u = fz_u32(f);
  float v;
  memcpy(&v, &u, sizeof v);
  return v;
}
static inline double fz_f64_raw(FuzzIn *f) {
  uint64_t u = fz_u64(f);
  double v;
  memcpy(&v, &u, sizeof v);
  return v;
}
/* A string of up to max-1 bytes from the input (NUL-terminated; stops at a NUL in the input). */
static inline void fz_string(FuzzIn *f, char *out, size_t max) {
  size_t len = (size_t)fz_u8(f) % max, k = 0;
  while (k < len && f->i < f->n && f->p[f->i] != 0) out[k++] = (char)f->p[f->i++];
  if (f->i < f->n && f->p[f->i] == 0) f->i++;
  out[k] = '\0';
}

/* An invariant of ours broke: say which and abort, which the fuzzer records as a crash with this input. */
#define FZ_CHECK(cond, ...)                                                       \
  do {                                                                            \
    if (!(cond)) {                                                                \
      fprintf(stderr, "fuzz invariant failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                               \
      fputc('\n', stderr);                                                        \
      abort();                                                                    \
    }                                                                             \
  } while (0)

/* A directory of this process's own under $TMPDIR (or /tmp), created once, e.g. "/tmp/mpitrain-fuzz-1234". */
const char *fz_scratch_dir(void);

#endif
