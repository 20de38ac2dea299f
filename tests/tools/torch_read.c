/* torch_read.c — mt_torchfile_read on each file named, for the interop tests' loops over damaged .pth files (one
 * process for thousands of files, where `mpitrain train --init-from` would start MPI for each):
 *   torch_read FILE...   prints "FILE: ok: N tensors: KEY DTYPE [DIMS], ..." or "FILE: error: MESSAGE" per file.
 * Exit status 0 when every file was either read or refused with a message: a crash is what the tests look for. */
#include <inttypes.h>
#include <stdio.h>

#include "mpitrain/torchfile.h"

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    TorchStateDict sd;
    MtError err = {0};
    if (mt_torchfile_read(argv[i], &sd, &err) != 0) {
      printf("%s: error: %s\n", argv[i], err.msg[0] ? err.msg : "(no message)");
      if (!err.failed || !err.msg[0]) return 1;
      continue;
    }
    printf("%s: ok: %d tensors:", argv[i], sd.n);
    for (int k = 0; k < sd.n; k++) {
      const TorchTensor *t = &sd.t[k];
      printf("%s %s %s [", k ? "," : "", t->key, mt_torchfile_dtype_name(t->dtype));
      for (int d = 0; d < t->rank; d++) printf("%s%" PRId64, d ? ", " : "", t->dims[d]);
      printf("]");
      if (t->data) { /* a checksum of the values, so two files' contents can be compared */
        double s = 0;
        for (int64_t j = 0; j < t->count; j++) s += (double)t->data[j] * (double)(j % 7 + 1);
        printf(" sum %.9g", s);
      }
    }
    printf("\n");
    mt_torchfile_free(&sd);
  }
  return 0;
}
