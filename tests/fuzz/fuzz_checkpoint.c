/* fuzz_checkpoint.c — libFuzzer target: the checkpoint reader (mt_checkpoint_read_meta, mt_checkpoint_read_state,
 * mt_checkpoint_describe).
 *
 * Structure-aware, like fuzz_data: the input describes a model (architecture, optimiser, every parameter and
 * moment, the progress counters), which mt_checkpoint_write writes; then up to a few damages the input picks are done
 * to the file with the HDF5 API — an attribute deleted or replaced by one of another type, shape or value, the
 * hidden list or dropout rewritten, a string attribute changed, a numeric attribute set to an edge value of its
 * type (0, -1, 2^31-1, NaN, ...), an array deleted, reshaped, retyped, replaced by a group, or one of its values
 * changed (with the CRC left alone, or recomputed so only a check of the values can tell) — and the file is read
 * back as `train --resume`, `eval` and `info` do. The model itself holds, now and then, a NaN or Inf weight, a
 * negative second moment or running variance, or a counter or hyperparameter out of range.
 *
 * Invariants, beyond "no sanitizer report":
 *  - a checkpoint holding an invalid value (meta_invalid, state_invalid: the ranges restated here, independently
 *    of checkpoint.c) is refused with a one-line message, never loaded: whatever the reader returns is valid;
 *  - an undamaged valid checkpoint reads back exactly: every attribute as written, every parameter, moment,
 *    running statistic and preprocessing value bit for bit, the class names, the CRC matching; `info` accepts it, and refuses an undamaged invalid one;
 *  - a damaged one is read or refused with a one-line message; when the state is read, the CRC matched.
 *
 * MT_FUZZ_CORRUPT=1 also overwrites raw bytes of the file (HDF5's parser then sees damage; its crashes are HDF5's).
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "fuzz.h"
#include "fuzz_h5.h"
#include "mpitrain/checkpoint.h"

#define MAX_TENSORS (4 * MODEL_MAX_HIDDEN + 2)

static const char *const attr_names[] = {
    "format", "format_version", "mpitrain_version", "created", "world_size", "step", "epoch", "epoch_pos", "seed",
    "n_inputs", "n_classes", "hidden", "activation", "leaky_slope", "batchnorm", "bn_momentum", "bn_eps", "dropout",
    "best_val_loss", "best_epoch", "since_best", "optimizer", "optimizer_step", "beta1", "beta2", "eps",
    "epoch_loss_sum", "epoch_correct", "epoch_samples", "n_train", "data", "config", "crc32", "class_names"};
enum { N_ATTRS = sizeof attr_names / sizeof attr_names[0] };

static float value(FuzzIn *f) {
  return fz_chance(f, 240) ? (float)((int)fz_u8(f) - 128) / 64.0f : fz_f32_raw(f);
}

/* A value in (0, 1), as the options allow for slopes and decays. */
static float unit(FuzzIn *f) { return (float)(1 + fz_u8(f)) / 257.0f; }

/* A progress counter as a run writes it: 0 .. 2^63-1. */
static int64_t counter(FuzzIn *f) { return fz_chance(f, 220) ? fz_u16(f) : (int64_t)(fz_u64(f) >> 1); }

/* ---- The oracle: which values a run can write (README "Checkpoint files", the options' ranges in config.c) ---- */

static int unit_open(double v) { return v > 0 && v < 1; }
static int unit_half_open(double v) { return v >= 0 && v < 1; } /* [0, 1) */
static int positive(double v) { return v > 0 && isfinite(v); }
static int nonneg(double v) { return v >= 0 && isfinite(v); }

/* 0 if every attribute of w is one a run can write; else how many are not, the last one's name in *name. */
static int meta_invalid(const CheckpointMeta *w, const char **name) {
  int bad = 0;
#define RULE(ok, attr)   \
  if (!(ok)) {           \
    bad++;               \
    *name = attr;        \
  }
  RULE(w->world_size >= 1, "world_size");
  RULE(w->step >= 0, "step");
  RULE(w->epoch >= 0 && w->epoch < INT_MAX, "epoch"); /* the trainer counts epochs in int */
  RULE(w->n_train >= 1, "n_train");
  RULE(w->epoch_pos >= 0 && w->epoch_pos <= w->n_train, "epoch_pos");
  RULE(w->seed >= 0, "seed");
  RULE(w->spec.n_inputs >= 1 && w->spec.n_inputs <= 1 << 24, "n_inputs");
  RULE(w->spec.n_classes >= 2 && w->spec.n_classes <= 1 << 24, "n_classes");
  for (int k = 0; k < w->spec.n_hidden; k++) {
    RULE(w->spec.hidden[k] >= 1 && w->spec.hidden[k] <= 1 << 24, "hidden");
    RULE(unit_half_open(w->spec.dropout[k]), "dropout");
  }
  RULE(unit_open(w->spec.leaky_slope), "leaky_slope");
  RULE(w->spec.bn_momentum > 0 && w->spec.bn_momentum <= 1, "bn_momentum");
  RULE(positive(w->spec.bn_eps), "bn_eps");
  RULE(isfinite(w->best_val_loss), "best_val_loss");
  RULE(w->best_epoch >= 0 && w->best_epoch < INT_MAX, "best_epoch");
  RULE(w->since_best >= 0 && w->since_best < INT_MAX, "since_best");
  RULE(w->opt_step >= 0, "optimizer_step");
  RULE(unit_half_open(w->opt.beta1), "beta1");
  RULE(unit_half_open(w->opt.beta2), "beta2");
  RULE(positive(w->opt.eps), "eps");
  RULE(nonneg(w->epoch_loss_sum), "epoch_loss_sum");
  RULE(nonneg(w->epoch_correct), "epoch_correct");
  RULE(w->epoch_samples >= 0, "epoch_samples");
  for (int k = 0; k < w->det_n; k++) RULE(nonneg(w->det_max[k]), "det_max");
#undef RULE
  return bad;
}

static int all_finite(const float *v, size_t n, int need_nonneg) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(v[i]) || (need_nonneg && v[i] < 0)) return 0;
  return 1;
}

/* 1 if m's parameters or running statistics, or the moments given, hold a value no run can write: parameters,
 * first moments and running means finite; second moments and running variances finite and >= 0. */
static int state_invalid(const Model *m, const float *mom1, const float *mom2) {
  ModelTensor ss[MAX_TENSORS];
  int ns = mt_model_state_tensors(m, ss, MAX_TENSORS);
  int bad = !all_finite(m->params, m->n_params, 0) || (mom1 && !all_finite(mom1, m->n_params, 0)) ||
            (mom2 && !all_finite(mom2, m->n_params, 1));
  for (int i = 0; i < ns; i++)
    bad |= !all_finite(m->state + ss[i].offset, ss[i].count, strstr(ss[i].name, "running_var") != NULL);
  return bad;
}

static void spec_read(FuzzIn *f, ModelSpec *s, OptConfig *oc) {
  memset(s, 0, sizeof *s);
  s->n_inputs = 1 + fz_pick(f, 6);
  s->n_classes = 2 + fz_pick(f, 4);
  s->n_hidden = fz_chance(f, 250) ? fz_pick(f, 4) : MODEL_MAX_HIDDEN;
  for (int k = 0; k < s->n_hidden; k++) {
    s->hidden[k] = 1 + fz_pick(f, 6);
    s->dropout[k] = fz_chance(f, 200) ? 0.0f : (float)fz_pick(f, 100) / 100.0f;
  }
  /* hyperparameters within the ranges `train` accepts (config.c) */
  s->act = (ActKind)fz_pick(f, ACT_COUNT);
  s->leaky_slope = unit(f);
  s->bn = (BnPlace)fz_pick(f, BN_COUNT);
  s->bn_momentum = unit(f);
  s->bn_eps = unit(f) * 1e-3f;
  oc->kind = (OptKind)fz_pick(f, OPT_COUNT);
  oc->beta1 = unit(f);
  oc->beta2 = unit(f);
  oc->eps = unit(f) * 1e-6f;
}

/* The HDF5 paths of every array the checkpoint of m (and o) holds. */
static int array_paths(const Model *m, const Optimizer *o, const CheckpointMeta *w, char (*out)[96], int max) {
  ModelTensor ts[MAX_TENSORS], ss[MAX_TENSORS];
  int nt = mt_model_tensors(m, ts, MAX_TENSORS), ns = mt_model_state_tensors(m, ss, MAX_TENSORS), n = 0;
  for (int i = 0; i < nt && n < max; i++) {
    snprintf(out[n++], 96, "/model/%.40s", ts[i].name);
    if (o->m && n < max) snprintf(out[n++], 96, "/optimizer/m/%.40s", ts[i].name);
    if (o->v && n < max) snprintf(out[n++], 96, "/optimizer/v/%.40s", ts[i].name);
  }
  for (int i = 0; i < ns && n < max; i++) snprintf(out[n++], 96, "/model/%.40s", ss[i].name);
  if (w->has_preprocess && n + 1 < max) snprintf(out[n++], 96, "/preprocess");
  if (w->mean && n + 2 < max) {
    snprintf(out[n++], 96, "/preprocess/mean");
    snprintf(out[n++], 96, "/preprocess/std");
  }
  return n;
}

/* Rewrites attribute crc32 to match the arrays as they now are (CRC order: README "Checkpoint files"), as a
 * tamperer would; does nothing if an earlier damage left an array unreadable. */
static void crc_rewrite(hid_t file, const Model *m, const Optimizer *o) {
  ModelTensor ts[MAX_TENSORS], ss[MAX_TENSORS];
  int nt = mt_model_tensors(m, ts, MAX_TENSORS), ns = mt_model_state_tensors(m, ss, MAX_TENSORS);
  const char *groups[3] = {"/model", "/optimizer/m", "/optimizer/v"};
  int present[4] = {1, o->m != NULL, o->v != NULL, 1};
  uLong crc = crc32_z(0L, Z_NULL, 0);
  float *buf = malloc(sizeof(float) * (m->n_params + m->n_state + (size_t)m->spec.n_inputs + 1));
  FZ_CHECK(buf != NULL, "out of memory");
  for (int g = 0; g < 4; g++)
    for (int i = 0; present[g] && i < (g < 3 ? nt : ns); i++) {
      const ModelTensor *t = g < 3 ? &ts[i] : &ss[i];
      char path[96];
      snprintf(path, sizeof path, "%s/%.40s", g < 3 ? groups[g] : "/model", t->name);
      hid_t ds = H5Lexists(file, path, H5P_DEFAULT) > 0 ? H5Oopen(file, path, H5P_DEFAULT) : -1;
      int ok = ds >= 0 && H5Iget_type(ds) == H5I_DATASET;
      if (ok) {
        hid_t sp = H5Dget_space(ds);
        FH5_OK(sp);
        ok = H5Sget_simple_extent_npoints(sp) == (hssize_t)t->count &&
             H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0;
        FH5_OK(H5Sclose(sp));
      }
      if (ds >= 0) FH5_OK(H5Oclose(ds));
      if (!ok) {
        free(buf);
        return;
      }
      crc = crc32_z(crc, (const Bytef *)buf, sizeof(float) * t->count);
    }
  /* then the preprocessing's mean and std, when the file holds them (n_inputs floats each, at most n_params) */
  for (int k = 0; k < 2 && H5Lexists(file, "/preprocess", H5P_DEFAULT) > 0; k++) {
    const char *name = k == 0 ? "/preprocess/mean" : "/preprocess/std";
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0) break;
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT), sp = ds < 0 ? -1 : H5Dget_space(ds);
    hssize_t n = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    int ok = n == m->spec.n_inputs && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0;
    if (sp >= 0) FH5_OK(H5Sclose(sp));
    if (ds >= 0) FH5_OK(H5Dclose(ds));
    if (!ok) {
      free(buf);
      return;
    }
    crc = crc32_z(crc, (const Bytef *)buf, sizeof(float) * (size_t)n);
  }
  free(buf);
  if (H5Aexists(file, "crc32") > 0) FH5_OK(H5Adelete(file, "crc32"));
  unsigned int c = (unsigned int)crc;
  fh5_attr_numbers(file, "crc32", H5T_STD_U32LE, H5T_NATIVE_UINT, &c, 1, 1);
}

/* The numeric attributes, and values at and beyond the edges of what they may hold. */
static const char *const number_attrs[] = {
    "world_size", "step", "epoch", "epoch_pos", "seed", "n_inputs", "n_classes", "hidden", "leaky_slope",
    "bn_momentum", "bn_eps", "dropout", "best_val_loss", "best_epoch", "since_best", "optimizer_step", "beta1",
    "beta2", "eps", "epoch_loss_sum", "epoch_correct", "epoch_samples", "n_train", "det_max"};
enum { N_NUMBER_ATTRS = sizeof number_attrs / sizeof number_attrs[0] };
static const long long edge_ints[] = {-1, 0, 1, 2, INT_MAX - 1, INT_MAX, (long long)INT_MAX + 1, 1 << 24,
                                      (1 << 24) + 1, LLONG_MAX, LLONG_MIN};
static const double edge_reals[] = {NAN, INFINITY, -INFINITY, -1, -0.0, 0, 1e-50, 0.5, 1, 2, 1e300};
static const float edge_floats[] = {NAN, INFINITY, -INFINITY, -1, -0.0f, 0, 1e-45f, 0.5f, 1, 2, FLT_MAX};

/* One element of a numeric attribute (keeping its type and shape) set to an edge value. */
static void attr_edge(hid_t file, FuzzIn *f) {
  const char *name = number_attrs[fz_pick(f, N_NUMBER_ATTRS)];
  if (H5Aexists(file, name) <= 0) return;
  hid_t a = H5Aopen(file, name, H5P_DEFAULT), t, sp;
  FH5_OK(a);
  FH5_OK(t = H5Aget_type(a));
  FH5_OK(sp = H5Aget_space(a));
  hssize_t n = H5Sget_simple_extent_npoints(sp);
  H5T_class_t cls = H5Tget_class(t);
  int k = fz_u8(f);
  if (n >= 1 && n <= 64 && (cls == H5T_INTEGER || cls == H5T_FLOAT)) {
    union {
      long long i[64];
      double d[64];
    } v;
    hid_t mt = cls == H5T_INTEGER ? H5T_NATIVE_LLONG : H5T_NATIVE_DOUBLE;
    FH5_OK(H5Aread(a, mt, &v));
    if (cls == H5T_INTEGER)
      v.i[k % n] = edge_ints[fz_pick(f, (int)(sizeof edge_ints / sizeof edge_ints[0]))];
    else
      v.d[k % n] = edge_reals[fz_pick(f, (int)(sizeof edge_reals / sizeof edge_reals[0]))];
    FH5_OK(H5Awrite(a, mt, &v));
  }
  FH5_OK(H5Sclose(sp));
  FH5_OK(H5Tclose(t));
  FH5_OK(H5Aclose(a));
}

/* One damage to the file, picked by the input. */
static void damage(hid_t file, char (*arrays)[96], int n_arrays, const Model *m, const Optimizer *o, FuzzIn *f) {
  int op = fz_pick(f, 9);
  if (op == 8) {
    attr_edge(file, f);
  } else if (op == 0) {
    fh5_attr_wrong(file, attr_names[fz_pick(f, N_ATTRS)], f);
  } else if (op == 1 || op == 2) {
    /* hidden or dropout: a list of any length, integers or floats */
    const char *name = op == 1 ? "hidden" : "dropout";
    if (H5Aexists(file, name) > 0) FH5_OK(H5Adelete(file, name)); /* an earlier damage may have */
    int n = fz_pick(f, MODEL_MAX_HIDDEN + 4);
    if (fz_pick(f, 2)) {
      int v[MODEL_MAX_HIDDEN + 4];
      for (int i = 0; i < n; i++) v[i] = fz_chance(f, 200) ? 1 + fz_pick(f, 8) : (int)fz_u32(f);
      fh5_attr_numbers(file, name, H5T_STD_I32LE, H5T_NATIVE_INT, v, n, 0);
    } else {
      float v[MODEL_MAX_HIDDEN + 4];
      for (int i = 0; i < n; i++) v[i] = value(f);
      fh5_attr_numbers(file, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, v, n, 0);
    }
  } else if (op == 3) {
    static const char *const strs[] = {"activation", "batchnorm", "optimizer", "format", "config", "data"};
    const char *name = strs[fz_pick(f, 6)];
    char s[80];
    fz_string(f, s, sizeof s);
    if (H5Aexists(file, name) > 0) FH5_OK(H5Adelete(file, name)); /* an earlier damage may have */
    fh5_attr_string(file, name, s, fz_u8(f) & 1);
  } else if (n_arrays > 0) {
    const char *path = arrays[fz_pick(f, n_arrays)];
    if (H5Lexists(file, path, H5P_DEFAULT) <= 0) return;
    if (op == 6 || op == 7) {
      /* one value changed in place: only the CRC can tell; or (7) the CRC recomputed too: only the values */
      hid_t ds = H5Dopen2(file, path, H5P_DEFAULT), sp;
      if (ds < 0) return; /* an earlier damage made it a group */
      FH5_OK(sp = H5Dget_space(ds));
      hssize_t n = H5Sget_simple_extent_npoints(sp);
      float *v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
      FZ_CHECK(v != NULL, "out of memory");
      if (n > 0) {
        FH5_OK(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v));
        int at = fz_u16(f) % (int)n;
        v[at] = fz_chance(f, 128) ? value(f) : edge_floats[fz_pick(f, 6)]; /* NaN, +-Inf, -1, -0, 0 */
        FH5_OK(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v));
      }
      free(v);
      FH5_OK(H5Sclose(sp));
      FH5_OK(H5Dclose(ds));
      if (op == 7) crc_rewrite(file, m, o);
      return;
    }
    FH5_OK(H5Ldelete(file, path, H5P_DEFAULT));
    if (op == 4) {
      /* another shape and type */
      int rank = 1 + fz_pick(f, 3);
      hsize_t dims[3] = {(hsize_t)fz_pick(f, 8), (hsize_t)fz_pick(f, 8), (hsize_t)(1 + fz_pick(f, 2))};
      double buf[8 * 8 * 2] = {0};
      hid_t types[3] = {H5T_IEEE_F32LE, H5T_IEEE_F64LE, H5T_STD_I32LE};
      fh5_dataset(file, path, types[fz_pick(f, 3)], H5T_NATIVE_DOUBLE, rank, dims, buf, fz_pick(f, 2), 1);
    } else if (op == 5) {
      hid_t g = H5Gcreate2(file, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      FH5_OK(g);
      FH5_OK(H5Gclose(g));
    }
  }
}

static void check_message(const MtError *err) {
  FZ_CHECK(err->failed && err->msg[0] != '\0' && strchr(err->msg, '\n') == NULL, "bad message '%s'", err->msg);
}

/* Parameters a model of spec would have (in double: a damaged spec can describe an absurd model). */
static double params_of(const ModelSpec *s) {
  double n = 0, in = s->n_inputs;
  for (int k = 0; k <= s->n_hidden && k <= MODEL_MAX_HIDDEN; k++) {
    double out = k < s->n_hidden ? s->hidden[k] : s->n_classes;
    n += in * out + 3 * out;
    in = out;
  }
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int corrupt_files = -1;
  if (corrupt_files < 0) {
    const char *e = getenv("MT_FUZZ_CORRUPT");
    corrupt_files = e != NULL && strcmp(e, "1") == 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* mt_checkpoint_describe prints what `mpitrain info` shows: not needed here */
    if (freopen("/dev/null", "w", stdout) == NULL) abort();
  }
  FuzzIn in = {data, size, 0}, *f = &in;
  const char *dir = fz_scratch_dir();
  char path[700];
  snprintf(path, sizeof path, "%s/c.h5", dir);

  /* The model and optimiser as a run would hold them. */
  ModelSpec spec;
  OptConfig oc;
  spec_read(f, &spec, &oc);
  Model m;
  Optimizer o;
  MtError err = {0};
  FZ_CHECK(mt_model_create(&m, &spec, 1, &err) == 0, "%s", err.msg);
  FZ_CHECK(mt_optim_create(&o, &oc, m.n_params, &err) == 0, "%s", err.msg);
  /* Mostly what training holds; value()'s raw bit patterns are now and then NaN or Inf, and a second moment or a
   * running variance is now and then negative: such a checkpoint must be refused. */
  for (size_t i = 0; i < m.n_params; i++) m.params[i] = value(f);
  for (size_t i = 0; o.m && i < m.n_params; i++) o.m[i] = value(f);
  for (size_t i = 0; o.v && i < m.n_params; i++) o.v[i] = fz_chance(f, 252) ? fabsf(value(f)) : value(f);
  ModelTensor st[MAX_TENSORS];
  for (int k = 0, ns = mt_model_state_tensors(&m, st, MAX_TENSORS); k < ns; k++)
    for (size_t i = 0; i < st[k].count; i++)
      m.state[st[k].offset + i] =
          strstr(st[k].name, "running_var") && fz_chance(f, 252) ? fabsf(value(f)) : value(f);
  o.t = counter(f);

  CheckpointMeta w;
  memset(&w, 0, sizeof w);
  w.format_version = CHECKPOINT_VERSION;
  w.spec = spec;
  w.opt = oc;
  w.opt_step = o.t;
  w.step = counter(f);
  w.epoch = counter(f) % INT32_MAX; /* the trainer counts epochs in int */
  w.n_train = 1 + (counter(f) & ((INT64_C(1) << 62) - 1));
  w.epoch_pos = counter(f) % (w.n_train + 1);
  w.seed = (int64_t)(fz_chance(f, 128) ? fz_u16(f) : fz_u64(f) >> 1); /* --seed takes 0 .. 2^63-1 */
  w.world_size = 1 + fz_pick(f, 64);
  w.epoch_loss_sum = fabsf(value(f));
  w.epoch_correct = fabsf(value(f));
  w.epoch_samples = counter(f);
  w.best_val_loss = value(f);
  w.best_epoch = counter(f) % INT32_MAX;
  w.since_best = counter(f) % INT32_MAX;
  fz_string(f, w.data, sizeof w.data);
  snprintf(w.created, sizeof w.created, "2024-01-01T00:00:00Z");
  char config[200];
  fz_string(f, config, sizeof config);
  w.config = config;
  /* The preprocessing: none (a checkpoint from before it), a scale, or a scale and mean/std; class names or not. */
  float mean[8], std[8];
  char name_buf[8][8], *names[8];
  int pre = fz_pick(f, 3);
  w.has_preprocess = pre > 0;
  w.scale = (float)(1 + fz_u8(f)) / 64.0f;
  for (int j = 0; pre == 2 && j < spec.n_inputs; j++) {
    mean[j] = (float)((int)fz_u8(f) - 128) / 64.0f;
    std[j] = unit(f);
  }
  if (pre == 2) {
    w.mean = mean;
    w.std = std;
  }
  if (fz_pick(f, 2)) {
    for (int k = 0; k < spec.n_classes; k++) {
      snprintf(name_buf[k], sizeof name_buf[k], "c%u", (unsigned)fz_u8(f));
      names[k] = name_buf[k];
    }
    w.class_names = names;
  }
  if (fz_chance(f, 32)) { /* a deterministic run's per-tensor gradient maxima */
    ModelTensor ts[MAX_TENSORS];
    w.det_n = 1 + fz_pick(f, mt_model_tensors(&m, ts, MAX_TENSORS));
    for (int k = 0; k < w.det_n; k++) w.det_max[k] = fz_chance(f, 250) ? fabsf(value(f)) : value(f);
  }
  /* Now and then one value out of range (at its edge, mostly), as the attributes of a tampered file hold. */
  if (fz_chance(f, 24)) {
    int64_t e = edge_ints[fz_pick(f, (int)(sizeof edge_ints / sizeof edge_ints[0]))];
    float x = edge_floats[fz_pick(f, (int)(sizeof edge_floats / sizeof edge_floats[0]))];
    switch (fz_pick(f, 16)) {
      case 0: w.epoch = e; break;
      case 1: w.step = e; break;
      case 2: w.epoch_pos = fz_chance(f, 128) ? w.n_train + 1 : e; break;
      case 3: w.world_size = (int)(e > INT_MAX || e < INT_MIN ? 0 : e); break;
      case 4: w.opt_step = e; break;
      case 5: w.seed = e; break;
      case 6: w.opt.beta1 = x; break;
      case 7: w.opt.beta2 = x; break;
      case 8: w.opt.eps = x; break;
      case 9: w.spec.bn_eps = x; break;
      case 10: w.spec.bn_momentum = x; break;
      case 11: w.spec.leaky_slope = x; break;
      case 12: if (w.spec.n_hidden > 0) w.spec.dropout[fz_pick(f, w.spec.n_hidden)] = x; break;
      case 13: w.best_val_loss = x; break;
      case 14: w.epoch_loss_sum = x; break;
      default: w.since_best = e; break;
    }
  }
  const char *bad_name = NULL;
  int bad_meta = meta_invalid(&w, &bad_name);
  int bad_state = state_invalid(&m, o.m, o.v);
  char written[1100];
  int wrc = mt_checkpoint_write(dir, "c.h5", &w, &m, &o, written, sizeof written, &err);
  FZ_CHECK(wrc == 0, "mt_checkpoint_write: %s", err.msg);

  /* Damage. */
  int damages = fz_chance(f, 64) ? 0 : 1 + fz_pick(f, 3);
  if (damages > 0) {
    char arrays[3 * MAX_TENSORS + 2 * MODEL_MAX_HIDDEN + 3][96];
    int n_arrays = array_paths(&m, &o, &w, arrays, 3 * MAX_TENSORS + 2 * MODEL_MAX_HIDDEN + 3);
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    FH5_OK(file);
    for (int i = 0; i < damages; i++) damage(file, arrays, n_arrays, &m, &o, f);
    FH5_OK(H5Fclose(file));
  }
  if (corrupt_files) {
    fh5_corrupt(path, f);
    damages++;
  }

  /* Read back, as resume / eval / info do. */
  CheckpointMeta r;
  mt_error_clear(&err);
  int rc = mt_checkpoint_read_meta(path, &r, &err);
  const char *loaded_bad = NULL;
  FZ_CHECK(rc != 0 || meta_invalid(&r, &loaded_bad) == 0, "attribute %s was loaded though no run can write it",
           loaded_bad);
  if (damages == 0 && bad_meta) {
    FZ_CHECK(rc != 0, "attribute %s is out of range but the checkpoint was loaded", bad_name);
    FZ_CHECK(bad_meta > 1 || strstr(err.msg, bad_name) != NULL, "refused for '%s', expected attribute %s", err.msg,
             bad_name);
  } else if (damages == 0) {
    FZ_CHECK(rc == 0, "an undamaged checkpoint was refused: %s", err.msg);
    FZ_CHECK(r.spec.n_inputs == spec.n_inputs && r.spec.n_classes == spec.n_classes &&
                 r.spec.n_hidden == spec.n_hidden && r.spec.act == spec.act && r.spec.bn == spec.bn,
             "the architecture changed");
    for (int k = 0; k < spec.n_hidden; k++)
      FZ_CHECK(r.spec.hidden[k] == spec.hidden[k] && r.spec.dropout[k] == w.spec.dropout[k], "hidden layer %d", k);
    FZ_CHECK(r.spec.leaky_slope == w.spec.leaky_slope && r.spec.bn_momentum == w.spec.bn_momentum &&
                 r.spec.bn_eps == w.spec.bn_eps && r.opt.beta1 == w.opt.beta1 && r.opt.beta2 == w.opt.beta2 &&
                 r.opt.eps == w.opt.eps && r.best_val_loss == w.best_val_loss &&
                 r.epoch_loss_sum == w.epoch_loss_sum && r.epoch_correct == w.epoch_correct,
             "a hyperparameter or sum changed");
    FZ_CHECK(r.opt.kind == oc.kind && r.opt_step == w.opt_step, "optimizer %d/%d, t %lld/%lld", r.opt.kind, oc.kind,
             (long long)r.opt_step, (long long)w.opt_step);
    FZ_CHECK(r.step == w.step && r.epoch == w.epoch && r.epoch_pos == w.epoch_pos && r.seed == w.seed &&
                 r.epoch_samples == w.epoch_samples && r.n_train == w.n_train && r.best_epoch == w.best_epoch &&
                 r.since_best == w.since_best && r.world_size == w.world_size,
             "a counter changed: step %lld/%lld epoch %lld/%lld pos %lld/%lld seed %lld/%lld", (long long)r.step,
             (long long)w.step, (long long)r.epoch, (long long)w.epoch, (long long)r.epoch_pos,
             (long long)w.epoch_pos, (long long)r.seed, (long long)w.seed);
    FZ_CHECK(strcmp(r.data, w.data) == 0 && strcmp(r.config, w.config) == 0, "a string changed");
    FZ_CHECK(r.has_preprocess == w.has_preprocess && (!w.has_preprocess || r.scale == w.scale) &&
                 (r.mean != NULL) == (w.mean != NULL) &&
                 (!w.mean || (memcmp(r.mean, w.mean, sizeof(float) * (size_t)spec.n_inputs) == 0 &&
                              memcmp(r.std, w.std, sizeof(float) * (size_t)spec.n_inputs) == 0)),
             "the preprocessing changed");
    FZ_CHECK((r.class_names != NULL) == (w.class_names != NULL), "class names lost or found");
    for (int k = 0; w.class_names && k < spec.n_classes; k++)
      FZ_CHECK(strcmp(r.class_names[k], w.class_names[k]) == 0, "class name %d changed", k);
    FZ_CHECK(r.det_n == w.det_n && memcmp(r.det_max, w.det_max, sizeof(float) * (size_t)w.det_n) == 0,
             "det_max changed");
  }
  int undamaged_valid = damages == 0 && !bad_meta && !bad_state;
  if (rc != 0) {
    check_message(&err);
  } else if (params_of(&r.spec) < 1e6) {
    /* the model the reader would build from the checkpoint's own description (eval, info) */
    Model rm;
    Optimizer ro;
    int kind = damages == 0 ? (int)r.opt.kind : fz_pick(f, OPT_COUNT + 1); /* OPT_COUNT: no optimiser (eval) */
    MtError e2 = {0};
    if (mt_model_create(&rm, &r.spec, 1, &e2) == 0) {
      OptConfig roc = r.opt;
      roc.kind = kind < OPT_COUNT ? (OptKind)kind : OPT_SGD;
      FZ_CHECK(mt_optim_create(&ro, &roc, rm.n_params, &e2) == 0, "%s", e2.msg);
      int src = mt_checkpoint_read_state(path, &r, &rm, kind < OPT_COUNT ? &ro : NULL, &e2);
      FZ_CHECK(src != 0 || !state_invalid(&rm, kind < OPT_COUNT ? ro.m : NULL, kind < OPT_COUNT ? ro.v : NULL),
               "an array holding a value no run can write was loaded");
      if (damages == 0 && bad_state) {
        FZ_CHECK(src != 0 && strstr(e2.msg, " holds ") != NULL, "invalid arrays: read %d, '%s'", src, e2.msg);
      } else if (damages == 0) {
        FZ_CHECK(src == 0, "the state of an undamaged checkpoint was refused: %s", e2.msg);
        FZ_CHECK(memcmp(rm.params, m.params, sizeof(float) * m.n_params) == 0, "parameters differ");
        FZ_CHECK(!o.m || memcmp(ro.m, o.m, sizeof(float) * m.n_params) == 0, "first moments differ");
        FZ_CHECK(!o.v || memcmp(ro.v, o.v, sizeof(float) * m.n_params) == 0, "second moments differ");
        FZ_CHECK(m.n_state == 0 || memcmp(rm.state, m.state, sizeof(float) * m.n_state) == 0, "statistics differ");
        FZ_CHECK(ro.t == w.opt_step, "optimiser step %lld, wrote %lld", (long long)ro.t, (long long)w.opt_step);
      } else if (src != 0) {
        check_message(&e2);
      }
      mt_optim_free(&ro);
      mt_model_free(&rm);
    } else {
      FZ_CHECK(damages > 0, "an undamaged checkpoint describes a model that cannot be built: %s", e2.msg);
      check_message(&e2);
    }
    MtError e3 = {0};
    int drc = mt_checkpoint_describe(path, &e3);
    if (drc != 0) check_message(&e3);
    if (damages == 0)
      FZ_CHECK((drc == 0) == undamaged_valid, "info returned %d for an undamaged checkpoint, valid = %d", drc,
               undamaged_valid);
  }
  if (rc == 0) mt_checkpoint_meta_free(&r);
  mt_optim_free(&o);
  mt_model_free(&m);
  unlink(path);
  return 0;
}
