/* fuzz_torchfile.c — libFuzzer target: the PyTorch state-dict reader (mt_torchfile_read), `train --init-from X.pth`.
 *
 * Input: one mode byte, then the payload.
 *   mode even: the payload is the whole file, as is (the zip structure, truncations, damage);
 *   mode odd:  the payload is the pickle. The target wraps it in a well-formed archive — archive/data.pkl and
 *              storages archive/data/0 .. archive/data/3 of 0, 4, 64 and 256 bytes, right CRC-32s — so mutations
 *              reach the pickle interpreter instead of stopping at a CRC check.
 * Invariants, beyond "no sanitizer report": a failure comes with a one-line message, a success with none; a read
 * state dict has at most TORCHFILE_MAX_TENSORS tensors, each with a printable NUL-terminated key, a rank of at most
 * TORCHFILE_MAX_RANK, and data exactly when it is float32, contiguous and not empty. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz.h"
#include "mpitrain/torchfile.h"

static void put16(FILE *f, unsigned v) { fputc((int)(v & 255), f), fputc((int)(v >> 8 & 255), f); }
static void put32(FILE *f, uint32_t v) { put16(f, v & 0xFFFF), put16(f, v >> 16); }

/* A stored zip archive of the given entries (the layout torch.save writes, less its padding). */
static void write_zip(const char *path, const char *const *names, const uint8_t *const *data, const size_t *size,
                      int n) {
  FILE *f = fopen(path, "wb");
  FZ_CHECK(f != NULL, "cannot write %s", path);
  long offs[8];
  uint32_t crcs[8];
  for (int i = 0; i < n; i++) {
    offs[i] = ftell(f);
    crcs[i] = (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), data[i], size[i]);
    put32(f, 0x04034b50u), put16(f, 20), put16(f, 0), put16(f, 0), put16(f, 0), put16(f, 0);
    put32(f, crcs[i]), put32(f, (uint32_t)size[i]), put32(f, (uint32_t)size[i]);
    put16(f, (unsigned)strlen(names[i])), put16(f, 0);
    fwrite(names[i], 1, strlen(names[i]), f);
    if (size[i]) fwrite(data[i], 1, size[i], f);
  }
  long cd = ftell(f);
  for (int i = 0; i < n; i++) {
    put32(f, 0x02014b50u), put16(f, 20), put16(f, 20), put16(f, 0), put16(f, 0), put16(f, 0), put16(f, 0);
    put32(f, crcs[i]), put32(f, (uint32_t)size[i]), put32(f, (uint32_t)size[i]);
    put16(f, (unsigned)strlen(names[i])), put16(f, 0), put16(f, 0), put16(f, 0), put16(f, 0), put32(f, 0);
    put32(f, (uint32_t)offs[i]);
    fwrite(names[i], 1, strlen(names[i]), f);
  }
  long end = ftell(f);
  put32(f, 0x06054b50u), put16(f, 0), put16(f, 0), put16(f, (unsigned)n), put16(f, (unsigned)n);
  put32(f, (uint32_t)(end - cd)), put32(f, (uint32_t)cd), put16(f, 0);
  FZ_CHECK(fclose(f) == 0, "writing %s failed", path);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n) {
  if (n > ((size_t)1 << 20)) return 0;
  char path[600];
  snprintf(path, sizeof path, "%s/state.pth", fz_scratch_dir());
  const uint8_t *payload = n ? in + 1 : in;
  size_t len = n ? n - 1 : 0;
  if (n && (in[0] & 1)) {
    static uint8_t storage[256];
    for (int i = 0; i < 256; i++) storage[i] = (uint8_t)(i * 37 + 11);
    const char *names[6] = {"archive/data.pkl", "archive/data/0", "archive/data/1", "archive/data/2",
                            "archive/data/3",   "archive/version"};
    const uint8_t *data[6] = {payload, storage, storage, storage, storage, (const uint8_t *)"3\n"};
    size_t size[6] = {len, 0, 4, 64, 256, 2};
    write_zip(path, names, data, size, 6);
  } else {
    FILE *f = fopen(path, "wb");
    FZ_CHECK(f != NULL, "cannot write %s", path);
    if (len) fwrite(payload, 1, len, f);
    FZ_CHECK(fclose(f) == 0, "writing %s failed", path);
  }
  TorchStateDict sd;
  MtError err = {0};
  int rc = mt_torchfile_read(path, &sd, &err);
  FZ_CHECK(rc == 0 || rc == -1, "returned %d", rc);
  FZ_CHECK((rc == 0) == !err.failed, "rc %d but err.failed %d (%s)", rc, err.failed, err.msg);
  if (rc != 0) {
    FZ_CHECK(err.msg[0] != '\0', "a failure without a message");
    FZ_CHECK(strchr(err.msg, '\n') == NULL, "a message of more than one line: %s", err.msg);
    FZ_CHECK(sd.n == 0 && sd.t == NULL, "a failure left %d tensors", sd.n);
    return 0;
  }
  FZ_CHECK(sd.n >= 0 && sd.n <= TORCHFILE_MAX_TENSORS, "%d tensors", sd.n);
  for (int i = 0; i < sd.n; i++) {
    const TorchTensor *t = &sd.t[i];
    size_t k = strnlen(t->key, sizeof t->key);
    FZ_CHECK(k > 0 && k < sizeof t->key, "key %d is not terminated", i);
    for (size_t j = 0; j < k; j++) FZ_CHECK((unsigned char)t->key[j] >= 32, "key %d has a control byte", i);
    FZ_CHECK(t->rank >= 0 && t->rank <= TORCHFILE_MAX_RANK, "key %s: rank %d", t->key, t->rank);
    FZ_CHECK(t->dtype >= 0 && t->dtype < TORCH_DTYPE_COUNT, "key %s: dtype %d", t->key, (int)t->dtype);
    int64_t count = 1;
    for (int d = 0; d < t->rank; d++) count = t->dims[d] == 0 ? 0 : count;
    for (int d = 0; d < t->rank && count > 0; d++) count *= t->dims[d]; /* the reader bounds nonzero counts */
    FZ_CHECK(count == t->count, "key %s: count %lld for its dims", t->key, (long long)t->count);
    int want_data = t->dtype == TORCH_FLOAT32 && t->contiguous && t->count > 0;
    FZ_CHECK((t->data != NULL) == want_data, "key %s: data %p", t->key, (void *)t->data);
    volatile float sum = 0; /* every element readable (ASan checks the bounds) */
    for (int64_t j = 0; want_data && j < t->count; j++) sum += t->data[j];
    (void)sum;
  }
  mt_torchfile_free(&sd);
  return 0;
}
