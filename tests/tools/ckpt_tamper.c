/* ckpt_tamper.c — damages a checkpoint in one controlled way, for the tests that check it is refused or skipped.
 *   ckpt_tamper FILE flip                  change one parameter value without updating the CRC (silent corruption)
 *   ckpt_tamper FILE version N             set format_version to N (a checkpoint from a newer mpitrain)
 *   ckpt_tamper FILE mean                  change /preprocess/mean[0] without updating the CRC
 *   ckpt_tamper FILE old                   remove /preprocess and class_names: a checkpoint as mpitrain wrote them
 *                                          before it stored the preprocessing (its CRC still matches only if there
 *                                          was no mean/std)
 *   ckpt_tamper FILE lzf                   rewrite /model/dense0/W, values unchanged (the CRC matches), compressed
 *                                          with a filter mpitrain's HDF5 lacks (fake_filter.h)
 *   ckpt_tamper FILE attr NAME VALUE       set every element of numeric attribute NAME to VALUE (an integer or a
 *                                          number: "nan", "inf", "-1", "2147483647"); attributes are outside the CRC
 *   ckpt_tamper FILE set DATASET I VALUE   set element I (flat, row-major) of DATASET to VALUE, then recompute the
 *                                          CRC: only a check of the values themselves can tell
 *   ckpt_tamper FILE unstore DATASET       replace DATASET by one of the same shape and type whose data was never
 *                                          written (the file stores nothing for it; reads give the fill value 0),
 *                                          then recompute the CRC over what a read returns
 *
 * The CRC is recomputed here from the layout README "Checkpoint files" documents (zlib CRC-32 of the parameters,
 * then the first moments, then the second moments, then the batch-norm running statistics, each in buffer order,
 * then /preprocess/mean and /preprocess/std, as little-endian float32), not by checkpoint.c: the file is rewritten the way a foreign
 * tool would. The library is used only to list the arrays in buffer order, from the undamaged file. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "mpitrain/checkpoint.h"

#define MAX_TENSORS (4 * MODEL_MAX_HIDDEN + 2)

static int usage(void) {
  fprintf(stderr, "usage: ckpt_tamper FILE flip | mean | old | lzf | version N | attr NAME VALUE | set DATASET I VALUE "
                  "| unstore DATASET\n");
  return 2;
}

/* The arrays of the checkpoint at path, in CRC order, into names [max][96]. Returns how many, or -1. */
static int crc_order(const char *path, char (*names)[96], int max) {
  CheckpointMeta meta;
  MtError err = {0};
  Model m;
  if (mt_checkpoint_read_meta(path, &meta, &err) != 0 || mt_model_create(&m, &meta.spec, 1, &err) != 0) {
    fprintf(stderr, "ckpt_tamper: %s\n", err.msg);
    return -1;
  }
  int has_m = meta.opt.kind == OPT_MOMENTUM || meta.opt.kind == OPT_ADAM;
  int has_v = meta.opt.kind == OPT_RMSPROP || meta.opt.kind == OPT_ADAM;
  ModelTensor ts[MAX_TENSORS], ss[MAX_TENSORS];
  int nt = mt_model_tensors(&m, ts, MAX_TENSORS), ns = mt_model_state_tensors(&m, ss, MAX_TENSORS), n = 0;
  const char *groups[3] = {"/model", "/optimizer/m", "/optimizer/v"};
  int present[3] = {1, has_m, has_v};
  for (int g = 0; g < 3; g++)
    for (int i = 0; present[g] && i < nt && n < max; i++) snprintf(names[n++], 96, "%s/%.40s", groups[g], ts[i].name);
  for (int i = 0; i < ns && n < max; i++) snprintf(names[n++], 96, "/model/%.40s", ss[i].name);
  if (meta.mean != NULL && n + 2 <= max) {
    snprintf(names[n++], 96, "/preprocess/mean");
    snprintf(names[n++], 96, "/preprocess/std");
  }
  mt_model_free(&m);
  mt_checkpoint_meta_free(&meta);
  return n;
}

/* Every element of dataset name as float32, malloc'd, count in *n. */
static float *read_all(hid_t f, const char *name, hssize_t *n) {
  hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), sp = ds < 0 ? -1 : H5Dget_space(ds);
  *n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
  float *v = *n < 0 ? NULL : malloc(sizeof(float) * (size_t)(*n + 1));
  if (v && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
    free(v);
    v = NULL;
  }
  if (sp >= 0) H5Sclose(sp);
  if (ds >= 0) H5Dclose(ds);
  return v;
}

/* Rewrites attribute crc32 from the arrays as stored (names: CRC order). */
static int recompute_crc(hid_t f, char (*names)[96], int n) {
  uLong crc = crc32_z(0L, Z_NULL, 0);
  for (int i = 0; i < n; i++) {
    hssize_t count;
    float *v = read_all(f, names[i], &count);
    if (v == NULL) {
      fprintf(stderr, "ckpt_tamper: cannot read %s\n", names[i]);
      return -1;
    }
    crc = crc32_z(crc, (const Bytef *)v, sizeof(float) * (size_t)count); /* little-endian hosts only */
    free(v);
  }
  unsigned int c = (unsigned int)crc;
  hid_t a = H5Aopen(f, "crc32", H5P_DEFAULT);
  int rc = a < 0 || H5Awrite(a, H5T_NATIVE_UINT, &c) < 0 ? -1 : 0;
  if (a >= 0) H5Aclose(a);
  return rc;
}

static int set_attr(hid_t f, const char *name, const char *text) {
  hid_t a = H5Aopen(f, name, H5P_DEFAULT), t = a < 0 ? -1 : H5Aget_type(a), sp = a < 0 ? -1 : H5Aget_space(a);
  hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
  int rc = -1;
  if (n >= 1) {
    char *end;
    if (H5Tget_class(t) == H5T_INTEGER) {
      long long *v = malloc(sizeof *v * (size_t)n);
      long long x = strtoll(text, &end, 10);
      for (hssize_t i = 0; v && i < n; i++) v[i] = x;
      rc = v && *end == '\0' && H5Awrite(a, H5T_NATIVE_LLONG, v) >= 0 ? 0 : -1;
      free(v);
    } else {
      double *v = malloc(sizeof *v * (size_t)n);
      double x = strtod(text, &end);
      for (hssize_t i = 0; v && i < n; i++) v[i] = x;
      rc = v && *end == '\0' && H5Awrite(a, H5T_NATIVE_DOUBLE, v) >= 0 ? 0 : -1;
      free(v);
    }
  }
  if (sp >= 0) H5Sclose(sp);
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
  if (rc != 0) fprintf(stderr, "ckpt_tamper: cannot set attribute %s to %s\n", name, text);
  return rc;
}

static int set_element(hid_t f, const char *name, long long index, const char *text) {
  hssize_t n;
  float *v = read_all(f, name, &n);
  char *end;
  double x = strtod(text, &end);
  int rc = -1;
  if (v && index >= 0 && index < n && *end == '\0') {
    v[index] = (float)x;
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    rc = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0 ? 0 : -1;
    if (ds >= 0) H5Dclose(ds);
  }
  free(v);
  if (rc != 0) fprintf(stderr, "ckpt_tamper: cannot set %s[%lld] to %s\n", name, index, text);
  return rc;
}

/* The dataset deleted and created again, same shape and type, contiguous, never written: no storage. */
static int unstore(hid_t f, const char *name) {
  hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), sp = ds < 0 ? -1 : H5Dget_space(ds), t = ds < 0 ? -1 : H5Dget_type(ds);
  int rc = sp >= 0 && t >= 0 ? 0 : -1;
  if (ds >= 0) H5Dclose(ds);
  if (rc == 0 && H5Ldelete(f, name, H5P_DEFAULT) < 0) rc = -1;
  hid_t nd = rc == 0 ? H5Dcreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
  if (nd < 0 || H5Dclose(nd) < 0) rc = -1;
  if (t >= 0) H5Tclose(t);
  if (sp >= 0) H5Sclose(sp);
  if (rc != 0) fprintf(stderr, "ckpt_tamper: cannot unstore %s\n", name);
  return rc;
}

#include "fake_filter.h"

int main(int argc, char **argv) {
  if (argc < 3) return usage();
  char names[4 * MAX_TENSORS + 2][96];
  int n_names = 0;
  int recrc = strcmp(argv[2], "set") == 0 || strcmp(argv[2], "unstore") == 0;
  if (recrc && (n_names = crc_order(argv[1], names, 4 * MAX_TENSORS + 2)) < 0) return 1; /* before any damage */
  hid_t f = H5Fopen(argv[1], H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) return 1;
  int rc = 1;
  if (strcmp(argv[2], "flip") == 0 || strcmp(argv[2], "mean") == 0) {
    int flip = strcmp(argv[2], "flip") == 0, rank = flip ? 2 : 1;
    hid_t ds = H5Dopen2(f, flip ? "/model/dense0/W" : "/preprocess/mean", H5P_DEFAULT);
    float v[1];
    hsize_t start[2] = {0, 0}, count[2] = {1, 1};
    hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(rank, count, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (H5Dread(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, v) >= 0) {
      v[0] += 0.125f;
      rc = H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, v) < 0;
    }
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(ds);
  } else if (strcmp(argv[2], "version") == 0 && argc > 3) {
    int v = atoi(argv[3]);
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    rc = H5Awrite(a, H5T_NATIVE_INT, &v) < 0;
    H5Aclose(a);
  } else if (strcmp(argv[2], "lzf") == 0) {
    const char *name = "/model/dense0/W";
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), sp = ds < 0 ? -1 : H5Dget_space(ds);
    hsize_t dims[2] = {0, 0};
    float *v = NULL;
    if (sp >= 0 && H5Sget_simple_extent_ndims(sp) == 2 && H5Sget_simple_extent_dims(sp, dims, NULL) == 2 &&
        (v = malloc(sizeof(float) * dims[0] * dims[1])) != NULL &&
        H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0 && H5Dclose(ds) >= 0 &&
        H5Ldelete(f, name, H5P_DEFAULT) >= 0 && fake_filter_register() == 0) {
      ds = -1;
      hid_t dcpl = fake_filter_dcpl(2, dims), nd = dcpl < 0 ? -1 : H5Dcreate2(f, name, H5T_IEEE_F32LE, sp,
                                                                              H5P_DEFAULT, dcpl, H5P_DEFAULT);
      rc = nd < 0 || H5Dwrite(nd, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0;
      if (nd >= 0) H5Dclose(nd);
      if (dcpl >= 0) H5Pclose(dcpl);
    }
    free(v);
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
  } else if (strcmp(argv[2], "old") == 0) {
    rc = H5Ldelete(f, "/preprocess", H5P_DEFAULT) < 0 ||
         (H5Aexists(f, "class_names") > 0 && H5Adelete(f, "class_names") < 0);
  } else if (strcmp(argv[2], "attr") == 0 && argc == 5) {
    rc = set_attr(f, argv[3], argv[4]) != 0;
  } else if (strcmp(argv[2], "set") == 0 && argc == 6) {
    rc = set_element(f, argv[3], strtoll(argv[4], NULL, 10), argv[5]) != 0 || recompute_crc(f, names, n_names) != 0;
  } else if (strcmp(argv[2], "unstore") == 0 && argc == 4) {
    rc = unstore(f, argv[3]) != 0 || recompute_crc(f, names, n_names) != 0;
  } else {
    rc = usage();
  }
  if (H5Fclose(f) < 0) rc = 1;
  return rc;
}
