/* torchfile.h — PyTorch state dicts saved by torch.save (zip format, PyTorch >= 1.6): a strict, bounded reader, and
 * the mapping of their tensors onto mpitrain's model (`train --init-from FILE.pth`, README "PyTorch interop").
 *
 * A .pth file is untrusted input. Its pickle is never executed: a small interpreter knows exactly what a state dict
 * of tensors needs (OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter, the persistent ids of
 * storages, tuples, ints, strings, bools, None, dicts) and refuses every other global and opcode with a message.
 * Every length, count, offset, memo index and nesting depth is bounded and checked, and every zip entry's CRC-32. */
#ifndef MPITRAIN_TORCHFILE_H
#define MPITRAIN_TORCHFILE_H

#include <stddef.h>
#include <stdint.h>

#include "mpitrain/error.h"
#include "mpitrain/model.h"

#define TORCHFILE_MAX_RANK 8
#define TORCHFILE_MAX_TENSORS 4096
#define TORCHFILE_MAX_KEY 128
#define TORCHFILE_MAX_BYTES ((int64_t)1 << 34) /* 16 GiB: the whole file is read into memory */

typedef enum TorchDtype {
  TORCH_FLOAT32 = 0, TORCH_FLOAT64, TORCH_FLOAT16, TORCH_BFLOAT16, TORCH_INT64, TORCH_INT32, TORCH_INT16,
  TORCH_INT8, TORCH_UINT8, TORCH_BOOL, TORCH_DTYPE_COUNT
} TorchDtype;

typedef struct TorchTensor {
  char key[TORCHFILE_MAX_KEY]; /* "dense0.weight", "0.bias", "1.running_mean", ... */
  TorchDtype dtype;
  int rank;
  int64_t dims[TORCHFILE_MAX_RANK];
  int64_t count;      /* elements */
  int contiguous;     /* row-major (C order) in its storage */
  float *data;        /* [count], copied out of the file; float32 contiguous tensors only (else NULL) */
} TorchTensor;

typedef struct TorchStateDict {
  int n;
  TorchTensor *t;     /* [n], in the state dict's order */
} TorchStateDict;

/* 1 if path starts like a torch.save file (a zip archive, or the legacy pickle format, which mt_torchfile_read refuses
 * with a hint), 0 if not (or unreadable). */
int mt_torchfile_sniff(const char *path);

/* Reads a state dict (a dict or OrderedDict from string keys to tensors). Messages start with the path. */
int mt_torchfile_read(const char *path, TorchStateDict *sd, MtError *err);
void mt_torchfile_free(TorchStateDict *sd);
const char *mt_torchfile_dtype_name(TorchDtype d); /* "float32", ... */

/* Reads path and copies its tensors into m's parameters and batch-norm running statistics (README "PyTorch
 * interop"): by name when every module is dense<k> or bn<k> (launch/export.py's names), else in layer order (an
 * nn.Sequential of Linear [+ BatchNorm1d] layers: the modules in the order of their keys). num_batches_tracked is
 * ignored; a Linear's missing bias is zero; a Linear's bias directly before batch normalisation (where mpitrain's
 * dense layer has none) is folded into the running mean, which it only shifts. Every tensor must be float32,
 * contiguous, finite and of the model's shape; a mismatch names the key. Writes "keys by name" or "keys in layer
 * order" into how [n]. m's contents are unspecified after a failure. export.py's preprocessing buffers pre.scale,
 * pre.mean, pre.std are ignored: mpitrain preprocesses with the dataset's own values. */
int mt_torchfile_load_model(const char *path, Model *m, char *how, size_t n, MtError *err);

#endif
