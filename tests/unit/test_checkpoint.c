/* test_checkpoint.c — the checkpoint module alone: round trip, CRC, listing, pruning, temporaries, refusals, the
 * directory lock. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <hdf5.h>

#include "mpitrain/checkpoint.h"
#include "mpitrain/init.h"

static char dir[512];

static void make_model(Model *m, Optimizer *o, int hidden, OptKind kind) {
  /* the hyperparameters a run writes whatever its activation and batch norm (the options' defaults) */
  ModelSpec spec = {.n_inputs = 6, .n_classes = 3, .n_hidden = 1, .hidden = {hidden}, .act = ACT_TANH,
                    .leaky_slope = 0.01f, .bn_momentum = 0.1f, .bn_eps = 1e-5f};
  OptConfig oc = {.kind = kind, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
  MtError err = {0};
  assert_int_equal(mt_model_create(m, &spec, 4, &err), 0);
  assert_int_equal(mt_optim_create(o, &oc, m->n_params, &err), 0);
  mt_init_params(m, INIT_XAVIER, 3);
  for (size_t i = 0; o->m && i < m->n_params; i++) o->m[i] = 0.001f * (float)i;
  for (size_t i = 0; o->v && i < m->n_params; i++) o->v[i] = 0.002f * (float)i;
  o->t = 17;
}

static void meta_for(const Model *m, const Optimizer *o, int64_t step, CheckpointMeta *meta) {
  memset(meta, 0, sizeof *meta);
  meta->spec = m->spec;
  meta->opt = o->cfg;
  meta->opt_step = o->t;
  meta->step = step;
  meta->epoch = 2;
  meta->epoch_pos = 40;
  meta->seed = 99;
  meta->world_size = 4;
  meta->n_train = 1000;
  snprintf(meta->data, sizeof meta->data, "d.h5");
  meta->config = strdup("lr = 0.1\n");
}

static void write_at(const Model *m, const Optimizer *o, int64_t step) {
  CheckpointMeta meta;
  meta_for(m, o, step, &meta);
  MtError err = {0};
  char path[1100];
  if (mt_checkpoint_write(dir, NULL, &meta, m, o, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  mt_checkpoint_meta_free(&meta);
}

static void test_round_trip(void **s) {
  (void)s;
  Model a, b;
  Optimizer oa, ob;
  make_model(&a, &oa, 5, OPT_ADAM);
  make_model(&b, &ob, 5, OPT_ADAM);
  memset(b.params, 0, sizeof(float) * b.n_params);
  memset(ob.m, 0, sizeof(float) * b.n_params);
  write_at(&a, &oa, 7);
  char path[1100];
  snprintf(path, sizeof path, "%s/ckpt-000000000007.h5", dir);
  CheckpointMeta meta;
  MtError err = {0};
  assert_int_equal(mt_checkpoint_read_meta(path, &meta, &err), 0);
  assert_int_equal(meta.step, 7);
  assert_int_equal(meta.epoch_pos, 40);
  assert_int_equal(meta.world_size, 4);
  assert_string_equal(meta.config, "lr = 0.1\n");
  if (mt_checkpoint_read_state(path, &meta, &b, &ob, &err) != 0) fail_msg("%s", err.msg);
  assert_memory_equal(a.params, b.params, sizeof(float) * a.n_params);
  assert_memory_equal(oa.m, ob.m, sizeof(float) * a.n_params);
  assert_memory_equal(oa.v, ob.v, sizeof(float) * a.n_params);
  assert_int_equal(ob.t, 17);
  /* evaluation reads parameters only, still checking the CRC over the moments */
  memset(b.params, 0, sizeof(float) * b.n_params);
  assert_int_equal(mt_checkpoint_read_state(path, &meta, &b, NULL, &err), 0);
  assert_memory_equal(a.params, b.params, sizeof(float) * a.n_params);
  mt_checkpoint_meta_free(&meta);
  mt_optim_free(&ob);
  mt_optim_free(&oa);
  mt_model_free(&b);
  mt_model_free(&a);
}

/* --grad-comm bf16's residuals (/gradcomm): written from meta, read back with the metadata, inside the CRC; refused
 * when they are not finite (a CRC recomputed over the damage matches too, so the write path makes the bad file) or do
 * not fit the model. */
static void test_gradcomm(void **s) {
  (void)s;
  Model a;
  Optimizer oa;
  make_model(&a, &oa, 5, OPT_ADAM);
  const size_t n = a.n_params;
  CheckpointMeta meta;
  meta_for(&a, &oa, 9, &meta);
  meta.gc_ranks = 3;
  meta.gc_n = (int64_t)n;
  meta.gc_has_server = 1;
  meta.gc_worker = malloc(sizeof(float) * 3 * n);
  meta.gc_server = malloc(sizeof(float) * n);
  for (size_t i = 0; i < 3 * n; i++) meta.gc_worker[i] = 0x1p-12f * (float)((int)(i % 11) - 5);
  for (size_t i = 0; i < n; i++) meta.gc_server[i] = -0x1p-14f * (float)(i % 5);
  MtError err = {0};
  char path[1100];
  if (mt_checkpoint_write(dir, "gc.h5", &meta, &a, &oa, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  CheckpointMeta back;
  assert_int_equal(mt_checkpoint_read_meta(path, &back, &err), 0);
  assert_int_equal(back.gc_ranks, 3);
  assert_int_equal(back.gc_has_server, 1);
  assert_int_equal(back.gc_n, (int64_t)n);
  assert_memory_equal(back.gc_worker, meta.gc_worker, sizeof(float) * 3 * n);
  assert_memory_equal(back.gc_server, meta.gc_server, sizeof(float) * n);
  if (mt_checkpoint_read_state(path, &back, &a, &oa, &err) != 0) fail_msg("%s", err.msg);
  back.gc_worker[4] += 1.0f; /* the CRC covers them */
  assert_int_equal(mt_checkpoint_read_state(path, &back, &a, &oa, &err), -1);
  assert_non_null(strstr(err.msg, "CRC-32"));
  mt_error_clear(&err);
  back.gc_n = (int64_t)n - 1; /* another model's */
  assert_int_equal(mt_checkpoint_check_fits(path, &back, &a, &oa, &err), -1);
  assert_non_null(strstr(err.msg, "/gradcomm holds residuals"));
  mt_error_clear(&err);
  mt_checkpoint_meta_free(&back);
  meta.gc_server[n - 1] = NAN;
  if (mt_checkpoint_write(dir, "gc.h5", &meta, &a, &oa, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(mt_checkpoint_read_meta(path, &back, &err), 0);
  assert_int_equal(mt_checkpoint_read_state(path, &back, &a, &oa, &err), -1);
  assert_non_null(strstr(err.msg, "/gradcomm/server_residual"));
  assert_non_null(strstr(err.msg, "finite residuals"));
  mt_checkpoint_meta_free(&back);
  /* Without /gradcomm (fp32 communication, older files): no residuals. */
  free(meta.gc_worker);
  free(meta.gc_server);
  meta.gc_worker = meta.gc_server = NULL;
  meta.gc_ranks = meta.gc_has_server = 0;
  mt_error_clear(&err);
  if (mt_checkpoint_write(dir, "gc.h5", &meta, &a, &oa, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(mt_checkpoint_read_meta(path, &back, &err), 0);
  assert_int_equal(back.gc_ranks, 0);
  assert_null(back.gc_worker);
  assert_int_equal(mt_checkpoint_read_state(path, &back, &a, &oa, &err), 0);
  mt_checkpoint_meta_free(&back);
  mt_checkpoint_meta_free(&meta);
  mt_optim_free(&oa);
  mt_model_free(&a);
}

/* 64-bit attributes come back exactly (fuzz_checkpoint: they were read through double, so --seed
 * 9007199254740993 resumed as ...992 and shuffled differently from the run it continued). */
static void test_big_counters(void **s) {
  (void)s;
  Model a;
  Optimizer oa;
  make_model(&a, &oa, 3, OPT_SGD);
  CheckpointMeta meta, back;
  meta_for(&a, &oa, 12, &meta);
  meta.seed = INT64_C(9007199254740993); /* 2^53 + 1: no double holds it */
  meta.opt_step = INT64_MAX;
  meta.n_train = INT64_C(1) << 62 | 1;
  MtError err = {0};
  char path[1100];
  if (mt_checkpoint_write(dir, "big.h5", &meta, &a, &oa, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(mt_checkpoint_read_meta(path, &back, &err), 0);
  assert_true(back.seed == meta.seed);
  assert_true(back.opt_step == INT64_MAX);
  assert_true(back.n_train == meta.n_train);
  assert_true(back.step == 12);
  mt_checkpoint_meta_free(&back);
  /* counters no run reaches are damage (fuzz_checkpoint: `info` computed epoch + 1 of 2^63-1) */
  meta.epoch = INT64_MAX;
  if (mt_checkpoint_write(dir, "big.h5", &meta, &a, &oa, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(mt_checkpoint_read_meta(path, &back, &err), -1);
  assert_non_null(strstr(err.msg, "attribute epoch = 9223372036854775807 is out of range [0, 2147483646]"));
  mt_checkpoint_meta_free(&meta);
  mt_optim_free(&oa);
  mt_model_free(&a);
}

/* Deterministic mode's det_max: absent unless written, back exactly, and a negative or NaN maximum is damage. */
static void test_det_max(void **s) {
  (void)s;
  Model a;
  Optimizer oa;
  make_model(&a, &oa, 3, OPT_SGD);
  CheckpointMeta meta, back;
  meta_for(&a, &oa, 5, &meta);
  MtError err = {0};
  char path[1100];
  if (mt_checkpoint_write(dir, "det.h5", &meta, &a, &oa, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(mt_checkpoint_read_meta(path, &back, &err), 0);
  assert_int_equal(back.det_n, 0);
  mt_checkpoint_meta_free(&back);
  const float max[4] = {0.0f, 1e-30f, 3.5f, 1.4e-45f};
  meta.det_n = 4;
  memcpy(meta.det_max, max, sizeof max);
  if (mt_checkpoint_write(dir, "det.h5", &meta, &a, &oa, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(mt_checkpoint_read_meta(path, &back, &err), 0);
  assert_int_equal(back.det_n, 4);
  assert_memory_equal(back.det_max, max, sizeof max);
  mt_checkpoint_meta_free(&back);
  meta.det_max[2] = -1.0f;
  if (mt_checkpoint_write(dir, "det.h5", &meta, &a, &oa, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(mt_checkpoint_read_meta(path, &back, &err), -1);
  assert_non_null(strstr(err.msg, "attribute det_max[2] = -1 is out of range [0, inf)"));
  mt_checkpoint_meta_free(&meta);
  mt_optim_free(&oa);
  mt_model_free(&a);
}

/* elapsed_s: back exactly; not written when unknown (< 0), which is how an older checkpoint reads; NaN is damage. */
static void test_elapsed(void **s) {
  (void)s;
  Model a;
  Optimizer oa;
  make_model(&a, &oa, 3, OPT_SGD);
  CheckpointMeta meta, back;
  meta_for(&a, &oa, 5, &meta);
  MtError err = {0};
  char path[1100];
  meta.elapsed_s = 1234.5678901234;
  if (mt_checkpoint_write(dir, "el.h5", &meta, &a, &oa, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(mt_checkpoint_read_meta(path, &back, &err), 0);
  assert_true(back.elapsed_s == meta.elapsed_s);
  mt_checkpoint_meta_free(&back);
  meta.elapsed_s = -1;
  if (mt_checkpoint_write(dir, "el.h5", &meta, &a, &oa, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  assert_true(f >= 0);
  assert_int_equal(H5Aexists(f, "elapsed_s"), 0);
  H5Fclose(f);
  assert_int_equal(mt_checkpoint_read_meta(path, &back, &err), 0);
  assert_true(back.elapsed_s < 0);
  mt_checkpoint_meta_free(&back);
  meta.elapsed_s = NAN;
  if (mt_checkpoint_write(dir, "el.h5", &meta, &a, &oa, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(mt_checkpoint_read_meta(path, &back, &err), -1);
  assert_non_null(strstr(err.msg, "attribute elapsed_s = nan is out of range [0, inf)"));
  mt_checkpoint_meta_free(&meta);
  mt_optim_free(&oa);
  mt_model_free(&a);
}

/* The training data's preprocessing and class names: absent unless written (and then still loadable), back
 * exactly, in the layout README documents, mean/std under the CRC, and damaged values refused. */
static void test_preprocess(void **s) {
  (void)s;
  Model a;
  Optimizer oa;
  make_model(&a, &oa, 3, OPT_ADAM);
  CheckpointMeta meta, back;
  meta_for(&a, &oa, 5, &meta);
  MtError err = {0};
  char path[1100];
  /* none: as checkpoints written before mpitrain stored it */
  if (mt_checkpoint_write(dir, "pre.h5", &meta, &a, &oa, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(mt_checkpoint_read_meta(path, &back, &err), 0);
  assert_int_equal(back.has_preprocess, 0);
  assert_null(back.mean);
  assert_null(back.class_names);
  assert_int_equal(mt_checkpoint_read_state(path, &back, &a, &oa, &err), 0);
  const uint32_t crc_plain = back.crc32;
  mt_checkpoint_meta_free(&back);
  /* a scale and class names */
  meta.has_preprocess = 1;
  meta.scale = 1.0f / 255.0f;
  meta.class_names = calloc(3, sizeof *meta.class_names);
  assert_non_null(meta.class_names);
  meta.class_names[0] = strdup("cat");
  meta.class_names[1] = strdup("dog");
  meta.class_names[2] = strdup("emu");
  if (mt_checkpoint_write(dir, "pre.h5", &meta, &a, &oa, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(mt_checkpoint_read_meta(path, &back, &err), 0);
  assert_int_equal(back.has_preprocess, 1);
  assert_true(back.scale == 1.0f / 255.0f);
  assert_null(back.mean);
  assert_non_null(back.class_names);
  assert_string_equal(back.class_names[2], "emu");
  assert_int_equal(back.crc32, crc_plain); /* a scale alone changes no array */
  mt_checkpoint_meta_free(&back);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  assert_true(f >= 0);
  hid_t at = H5Aopen_by_name(f, "/preprocess", "scale", H5P_DEFAULT, H5P_DEFAULT), t = H5Aget_type(at);
  assert_true(H5Tequal(t, H5T_IEEE_F32LE) > 0);
  H5Tclose(t);
  H5Aclose(at);
  assert_int_equal(H5Lexists(f, "/preprocess/mean", H5P_DEFAULT), 0);
  H5Fclose(f);
  /* normalised: mean/std [n_inputs] back bit for bit, and inside the CRC */
  meta.mean = malloc(sizeof(float) * 6);
  meta.std = malloc(sizeof(float) * 6);
  assert_non_null(meta.mean);
  assert_non_null(meta.std);
  for (int j = 0; j < 6; j++) {
    meta.mean[j] = 0.1f * (float)j - 0.2f;
    meta.std[j] = 0.3f + (float)j;
  }
  if (mt_checkpoint_write(dir, "pre.h5", &meta, &a, &oa, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(mt_checkpoint_read_meta(path, &back, &err), 0);
  assert_non_null(back.mean);
  assert_memory_equal(back.mean, meta.mean, sizeof(float) * 6);
  assert_memory_equal(back.std, meta.std, sizeof(float) * 6);
  assert_int_not_equal(back.crc32, crc_plain);
  assert_int_equal(mt_checkpoint_read_state(path, &back, &a, &oa, &err), 0);
  mt_checkpoint_meta_free(&back);
  f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t ds = H5Dopen2(f, "/preprocess/std", H5P_DEFAULT);
  float changed[6];
  memcpy(changed, meta.std, sizeof changed);
  changed[4] += 1.0f;
  assert_true(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, changed) >= 0);
  H5Dclose(ds);
  H5Fclose(f);
  assert_int_equal(mt_checkpoint_read_meta(path, &back, &err), 0);
  assert_int_equal(mt_checkpoint_read_state(path, &back, &a, NULL, &err), -1);
  assert_non_null(strstr(err.msg, "fails its CRC-32 check"));
  mt_checkpoint_meta_free(&back);
  /* a std of 0 is damage, refused when read */
  meta.std[1] = 0.0f;
  mt_error_clear(&err);
  if (mt_checkpoint_write(dir, "pre.h5", &meta, &a, &oa, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(mt_checkpoint_read_meta(path, &back, &err), -1);
  assert_non_null(strstr(err.msg, "/preprocess: std of feature 1 = 0; expected a positive finite number"));
  mt_checkpoint_meta_free(&meta);
  mt_optim_free(&oa);
  mt_model_free(&a);
}

static void test_refusals(void **s) {
  (void)s;
  Model a, other;
  Optimizer oa, osgd;
  make_model(&a, &oa, 5, OPT_ADAM);
  write_at(&a, &oa, 8);
  char path[1100];
  snprintf(path, sizeof path, "%s/ckpt-000000000008.h5", dir);
  CheckpointMeta meta;
  MtError err = {0};
  assert_int_equal(mt_checkpoint_read_meta(path, &meta, &err), 0);
  make_model(&other, &osgd, 4, OPT_SGD);
  assert_int_equal(mt_checkpoint_read_state(path, &meta, &other, NULL, &err), -1);
  assert_non_null(strstr(err.msg, "holds a 6-5-3 tanh model; this run builds 6-4-3 tanh"));
  mt_model_free(&other);
  mt_optim_free(&osgd);
  make_model(&other, &osgd, 5, OPT_SGD);
  mt_error_clear(&err);
  assert_int_equal(mt_checkpoint_check_fits(path, &meta, &other, &osgd, &err), -1);
  assert_non_null(strstr(err.msg, "written with --optimizer adam; this run uses sgd"));
  mt_checkpoint_meta_free(&meta);
  /* one flipped bit inside the stored weights (found through HDF5, then changed behind its back): the CRC
   * must catch it */
  hid_t hf = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t hd = H5Dopen2(hf, "/model/dense0/W", H5P_DEFAULT);
  haddr_t off = H5Dget_offset(hd);
  H5Dclose(hd);
  H5Fclose(hf);
  assert_true(off != HADDR_UNDEF);
  FILE *f = fopen(path, "r+b");
  assert_non_null(f);
  fseek(f, (long)off + 5, SEEK_SET);
  int c = fgetc(f);
  fseek(f, (long)off + 5, SEEK_SET);
  fputc(c ^ 0x04, f);
  fclose(f);
  mt_error_clear(&err);
  assert_int_equal(mt_checkpoint_read_meta(path, &meta, &err), 0);
  assert_int_equal(mt_checkpoint_read_state(path, &meta, &a, &oa, &err), -1);
  assert_non_null(strstr(err.msg, "fails its CRC-32 check"));
  mt_checkpoint_meta_free(&meta);
  /* not a checkpoint at all */
  mt_error_clear(&err);
  char text[1100];
  snprintf(text, sizeof text, "%s/notes.txt", dir);
  f = fopen(text, "w");
  fputs("hello\n", f);
  fclose(f);
  assert_int_equal(mt_checkpoint_read_meta(text, &meta, &err), -1);
  assert_non_null(strstr(err.msg, "not an HDF5 file"));
  mt_optim_free(&osgd);
  mt_model_free(&other);
  mt_optim_free(&oa);
  mt_model_free(&a);
}

/* Attributes and objects the reader does not know (another version's, or another tool's) are not its business:
 * the checkpoint still loads. A value valid as a double but not as the float32 it is held in is refused. */
static void test_unknown_and_rounded(void **s) {
  (void)s;
  Model a, b;
  Optimizer oa, ob;
  make_model(&a, &oa, 5, OPT_ADAM);
  make_model(&b, &ob, 5, OPT_ADAM);
  CheckpointMeta meta;
  meta_for(&a, &oa, 3, &meta);
  MtError err = {0};
  char path[1100];
  if (mt_checkpoint_write(dir, "extra.h5", &meta, &a, &oa, path, sizeof path, &err) != 0) fail_msg("%s", err.msg);
  mt_checkpoint_meta_free(&meta);
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  assert_true(f >= 0);
  hid_t sp = H5Screate(H5S_SCALAR);
  double elapsed = 12.5, tiny = 1e-50;
  hid_t at = H5Acreate2(f, "a_future_attribute", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(at >= 0 && H5Awrite(at, H5T_NATIVE_DOUBLE, &elapsed) >= 0 && H5Aclose(at) >= 0);
  hid_t g = H5Gcreate2(f, "/a_future_group", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(g >= 0);
  at = H5Acreate2(g, "scale", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(at >= 0 && H5Awrite(at, H5T_NATIVE_DOUBLE, &elapsed) >= 0 && H5Aclose(at) >= 0);
  hsize_t d = 6;
  float mean[6] = {0, 1, 2, 3, 4, 5};
  hid_t dsp = H5Screate_simple(1, &d, NULL);
  hid_t ds = H5Dcreate2(g, "mean", H5T_IEEE_F32LE, dsp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, mean) >= 0);
  H5Dclose(ds);
  H5Sclose(dsp);
  H5Gclose(g);
  H5Sclose(sp);
  H5Fclose(f);
  assert_int_equal(mt_checkpoint_read_meta(path, &meta, &err), 0);
  if (mt_checkpoint_read_state(path, &meta, &b, &ob, &err) != 0) fail_msg("%s", err.msg);
  assert_memory_equal(a.params, b.params, sizeof(float) * a.n_params);
  mt_checkpoint_meta_free(&meta);
  /* eps = 1e-50 is > 0, but as float32 it is 0 (the optimiser would divide by sqrt(v) + 0) */
  f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  at = H5Aopen(f, "eps", H5P_DEFAULT);
  assert_true(at >= 0 && H5Awrite(at, H5T_NATIVE_DOUBLE, &tiny) >= 0 && H5Aclose(at) >= 0);
  H5Fclose(f);
  assert_int_equal(mt_checkpoint_read_meta(path, &meta, &err), -1);
  assert_non_null(strstr(err.msg, "attribute eps = 1e-50 (0 as float32) is out of range (0, inf)"));
  mt_optim_free(&ob);
  mt_optim_free(&oa);
  mt_model_free(&b);
  mt_model_free(&a);
}

static void test_list_prune_temporaries(void **s) {
  (void)s;
  Model a;
  Optimizer oa;
  make_model(&a, &oa, 5, OPT_MOMENTUM);
  char sub[256];
  snprintf(sub, sizeof sub, "%.200s/list", dir);
  mkdir(sub, 0777);
  char keep[512];
  snprintf(keep, sizeof keep, "%s", dir);
  snprintf(dir, sizeof dir, "%s", sub);
  for (int64_t step = 5; step <= 1000; step *= 10) write_at(&a, &oa, step); /* 5 50 500 */
  write_at(&a, &oa, 1000);
  char tmp[700];
  snprintf(tmp, sizeof tmp, "%s/.ckpt-000000000077.h5.tmp.123", dir);
  FILE *f = fopen(tmp, "w");
  fclose(f);
  char paths[8][1024];
  MtError err = {0};
  int n = mt_checkpoint_list(dir, paths, 8, &err);
  assert_int_equal(n, 4);
  assert_non_null(strstr(paths[0], "ckpt-000000001000.h5")); /* newest first, by step */
  assert_non_null(strstr(paths[3], "ckpt-000000000005.h5"));
  assert_int_equal(mt_checkpoint_prune(dir, 2, &err), 0);
  n = mt_checkpoint_list(dir, paths, 8, &err);
  assert_int_equal(n, 2);
  assert_non_null(strstr(paths[1], "ckpt-000000000500.h5"));
  assert_int_equal(mt_checkpoint_clean_temporaries(dir, 1), 1);
  assert_int_equal(access(tmp, F_OK), -1);
  snprintf(dir, sizeof dir, "%s", keep);
  mt_optim_free(&oa);
  mt_model_free(&a);
}

/* The directory lock: a second holder is refused naming the first (in the same process too), a release empties the
 * file, a holder that died leaves its line for the next one, and without the lock only dead writers' temporaries of
 * this host are removed. */
static void test_dir_lock(void **state) {
  (void)state;
  char sub[600], line[512], want[64];
  snprintf(sub, sizeof sub, "%s/lock", dir);
  mkdir(sub, 0777);
  MtError err = {0};
  int fd = -1, fd2 = -1;
  assert_int_equal(mt_checkpoint_dir_lock(sub, &fd, line, sizeof line, &err), 0);
  assert_true(fd >= 0);
  assert_string_equal(line, "");
  snprintf(want, sizeof want, "in use by another run (pid %ld on ", (long)getpid());
  assert_int_equal(mt_checkpoint_dir_lock(sub, &fd2, line, sizeof line, &err), -1);
  assert_int_equal(fd2, -1);
  assert_non_null(strstr(err.msg, want));
  assert_non_null(strstr(err.msg, "); wait for it to end or use another --checkpoint-dir"));
  mt_checkpoint_dir_unlock(fd);
  mt_error_clear(&err);
  assert_int_equal(mt_checkpoint_dir_lock(sub, &fd, line, sizeof line, &err), 0);
  assert_string_equal(line, ""); /* released on purpose: nothing to take over */
  mt_checkpoint_dir_unlock(fd);
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) { /* takes the lock and dies holding it */
    int cfd = -1;
    MtError cerr = {0};
    _exit(mt_checkpoint_dir_lock(sub, &cfd, NULL, 0, &cerr) == 0 ? 0 : 1);
  }
  int status = -1;
  assert_int_equal(waitpid(child, &status, 0), child);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_int_equal(mt_checkpoint_dir_lock(sub, &fd, line, sizeof line, &err), 0);
  snprintf(want, sizeof want, "pid %ld on ", (long)child);
  assert_int_equal(strncmp(line, want, strlen(want)), 0);
  mt_checkpoint_dir_unlock(fd);
  /* The child is gone: its temporary is a leftover; ours and another host's may be in flight. */
  char host[256], tmp[900];
  assert_int_equal(gethostname(host, sizeof host), 0);
  host[sizeof host - 1] = '\0';
  const long pids[3] = {(long)child, (long)getpid(), (long)child};
  for (int i = 0; i < 3; i++) {
    snprintf(tmp, sizeof tmp, "%s/.ckpt-00000000000%d.h5.tmp.%s.%ld", sub, i, i < 2 ? host : "another-host", pids[i]);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fclose(f);
  }
  assert_int_equal(mt_checkpoint_clean_temporaries(sub, 0), 1);
  assert_int_equal(mt_checkpoint_clean_temporaries(sub, 0), 0);
  assert_int_equal(mt_checkpoint_clean_temporaries(sub, 1), 2);
}

int main(void) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* as mpitrain's main does: the refusals tested print one line, not a stack */
  snprintf(dir, sizeof dir, "test_checkpoint.%ld", (long)getpid());
  mkdir(dir, 0777);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_gradcomm),
      cmocka_unit_test(test_big_counters),
      cmocka_unit_test(test_det_max),
      cmocka_unit_test(test_elapsed),
      cmocka_unit_test(test_preprocess),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_unknown_and_rounded),
      cmocka_unit_test(test_list_prune_temporaries),
      cmocka_unit_test(test_dir_lock),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) rc = 1;
  return rc;
}
