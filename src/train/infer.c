/* infer.c — a checkpoint's model on a dataset, on any number of ranks (infer.h): `mpitrain eval` reduces the loss
 * and per-class counts over the ranks' slices, `mpitrain predict` streams every rank's probabilities to rank 0. */
#include "mpitrain/infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpitrain/blas.h"
#include "mpitrain/fileid.h"
#include "mpitrain/replicate.h"
#include "mpitrain/util.h"

/* Collective: the checkpoint's model on every rank, with room for max_batch rows, and its metadata in meta (every
 * rank, all of it: spec, preprocessing, class names). */
static int load_model(Comm *c, const char *path, Model *m, CheckpointMeta *meta, int max_batch, MtError *err) {
  memset(meta, 0, sizeof *meta);
  MtError local = {0};
  if (c->rank == 0) mt_checkpoint_read_meta(path, meta, &local);
  /* The preprocessing goes along, checked by the CRC on rank 0 just below (a mismatch fails every rank). */
  if (mt_comm_agree(c, &local) != 0 || mt_checkpoint_meta_broadcast(c, meta, 0, &local) != 0) goto fail;
  mt_model_create(m, &meta->spec, max_batch, &local);
  if (mt_comm_agree(c, &local) != 0) goto fail;
  if (c->rank == 0) mt_checkpoint_read_state(path, meta, m, NULL, &local);
  if (mt_comm_agree(c, &local) != 0) {
    mt_model_free(m);
    goto fail;
  }
  mt_model_replicate(c, m, 0);
  return 0;
fail:
  mt_checkpoint_meta_free(meta);
  *err = local;
  return -1;
}

void mt_infer_free(Infer *in) {
  mt_free(in->y);
  mt_free(in->x);
  if (in->ds) mt_data_close(in->ds);
  mt_model_free(&in->model);
  mt_checkpoint_meta_free(&in->meta);
}

/* The checkpoint's preprocessing on the data's stored features, with one line (rank 0) for each way the data file's
 * own differs: the stored x is what both have in common. Same verdict on every rank. */
static int preprocess_apply(Comm *c, const InferOptions *o, Infer *in, MtError *err) {
  const CheckpointMeta *meta = &in->meta;
  const DataInfo *info = mt_data_info(in->ds);
  const int C = meta->spec.n_classes, say = c->rank == 0;
  if (!meta->has_preprocess) {
    if (say)
      fprintf(stderr, "mpitrain: note: %s stores no preprocessing (an older checkpoint): using %s's own scaling\n",
              o->checkpoint, o->data);
    return 0;
  }
  const int differs = mt_data_preprocess_differs(in->ds, meta->scale, meta->mean, meta->std);
  if (say && (differs & DATA_PRE_SCALE))
    fprintf(stderr, "mpitrain: warning: %s has scale %g but the checkpoint was trained with %g: using the "
            "checkpoint's on the stored features\n", o->data, (double)info->scale, (double)meta->scale);
  if (say && (differs & DATA_PRE_NORM))
    fprintf(stderr, "mpitrain: warning: %s is %s but the checkpoint's training data was %s: using the "
            "checkpoint's\n", o->data,
            info->has_norm ? (meta->mean ? "normalised with another mean/std" : "normalised") : "not normalised",
            meta->mean ? "normalised (its mean/std are in the checkpoint)" : "not normalised");
  int names = 0;
  for (int k = 0; say && meta->class_names && k < C; k++)
    names |= mt_data_class_name(in->ds, k) && strcmp(mt_data_class_name(in->ds, k), meta->class_names[k]) != 0;
  if (names)
    fprintf(stderr, "mpitrain: warning: %s names its classes differently from the checkpoint: showing the "
            "checkpoint's\n", o->data);
  return mt_data_set_preprocess(in->ds, meta->scale, meta->mean, meta->std, err);
}

int mt_infer_open(Comm *c, const InferOptions *o, int need_labels, Infer *in, MtError *err) {
  memset(in, 0, sizeof *in);
  in->micro = o->micro_batch;
  in->split = o->split;
  MtError local = {0};
  /* By stat, before anything opens them: opening a FIFO to read blocks until a writer comes. */
  if (mt_fileid_regular(o->checkpoint, "--checkpoint", &local) == 0) mt_fileid_regular(o->data, "--data", &local);
  if (mt_comm_agree(c, &local) != 0) {
    *err = local;
    return -1;
  }
  if (load_model(c, o->checkpoint, &in->model, &in->meta, in->micro, err) != 0) return -1;
  DataOptions dopt = {.memory = o->in_memory, .memory_limit = o->memory_limit_mb * 1024 * 1024, .max_rows = in->micro,
                      .allow_unlabeled = 1};
  if (mt_data_open(&in->ds, o->data, &dopt, &local) == 0) {
    const DataInfo *info = mt_data_info(in->ds);
    const ModelSpec *sp = &in->model.spec;
    if (info->d != sp->n_inputs)
      mt_fail(&local, "%s has %d features; the checkpoint %s was trained on %d", o->data, info->d, o->checkpoint,
              sp->n_inputs);
    else if (info->n_classes > 0 && info->n_classes != sp->n_classes)
      mt_fail(&local, "%s has %d classes; the checkpoint %s predicts %d", o->data, info->n_classes, o->checkpoint,
              sp->n_classes);
    else if (info->n[o->split] == 0)
      mt_fail(&local, "%s has no %s split", o->data, mt_data_split_names[o->split]);
    else if (need_labels && !info->labeled[o->split])
      mt_fail(&local, "%s: the %s split has no labels (no /%s/y): eval needs labels; use predict", o->data,
              mt_data_split_names[o->split], mt_data_split_names[o->split]);
    else
      preprocess_apply(c, o, in, &local);
    if (!local.failed) {
      in->x = mt_alloc(sizeof(float) * (size_t)in->micro * (size_t)info->d, "the input batch", &local);
      in->y = mt_alloc(sizeof(int32_t) * (size_t)in->micro, "the label batch", &local);
      mt_even_split(info->n[o->split], c->rank, c->size, &in->lo, &in->hi);
    }
  }
  BlasThreads bt;
  if (mt_blas_threads_choose(o->threads, 0, c->node_cores, c->node_cpus, c->node_size, &bt, &local) == 0)
    mt_blas_set_threads(bt.n);
  /* The GEMMs' precision, after the threads (oneDNN plans a primitive for the threads it has): chunks of micro
   * rows and this rank's last one. */
  MtPrecision prec;
  const int rows[1] = {(int)((in->hi - in->lo) % in->micro)};
  if (!local.failed && mt_precision_resolve((MtPrecision)o->precision, &prec, &local) == 0)
    mt_model_set_precision(&in->model, prec, rows, 1, &local);
  if (mt_comm_agree(c, &local) != 0) {
    mt_infer_free(in);
    *err = local;
    return -1;
  }
  return 0;
}

const float *mt_infer_chunk(Infer *in, int64_t r, int *cn, MtError *err) {
  *cn = (int)(in->hi - r < in->micro ? in->hi - r : in->micro);
  if (mt_data_read_range(in->ds, (Split)in->split, r, *cn, in->x, in->y, err) != 0) return NULL;
  return mt_model_forward(&in->model, in->x, *cn);
}
