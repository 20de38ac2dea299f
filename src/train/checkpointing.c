/* checkpointing.c — writing checkpoints (ckpt-<step>.h5, best.h5) and readying --checkpoint-dir. */
#include "trainer_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mpitrain/checkpoint.h"
#include "mpitrain/opts.h"

/* ==== Checkpoints ==== */

/* The run's options as INI text, stored in every checkpoint so `mpitrain info` shows how it was made. */
static char *config_text(const Config *c) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (f == NULL) return NULL;
  mt_opts_write_ini(f, mt_config_train_options, c);
  fclose(f);
  return buf;
}

/* 0, or -1 when out of memory (what was filled is freed by mt_checkpoint_meta_free). */
static int fill_meta(const Trainer *t, CheckpointMeta *meta) {
  memset(meta, 0, sizeof *meta);
  meta->format_version = CHECKPOINT_VERSION;
  meta->spec = t->model.spec;
  meta->opt = t->opt.cfg;
  meta->opt_step = t->opt.t;
  meta->step = t->step;
  meta->epoch = t->epoch;
  meta->epoch_pos = t->epoch_pos;
  meta->seed = t->cfg.seed;
  meta->world_size = t->comm->size;
  meta->epoch_loss_sum = t->epoch_loss;
  meta->epoch_correct = t->epoch_correct;
  meta->epoch_samples = t->epoch_samples;
  meta->best_val_loss = t->best_val;
  meta->best_epoch = t->best_epoch;
  if (t->det && t->dt.known) {
    meta->det_n = t->n_tensors;
    for (int i = 0; i < t->n_tensors; i++) memcpy(&meta->det_max[i], &t->dt.prev[i], sizeof(float));
  }
  meta->since_best = t->since_best;
  meta->elapsed_s = t->elapsed_base + now() - t->t_start; /* checkpoints are written in mt_trainer_fit only */
  meta->n_train = t->info->n[SPLIT_TRAIN];
  snprintf(meta->data, sizeof meta->data, "%s", t->cfg.data);
  snprintf(meta->version, sizeof meta->version, "%s", MPITRAIN_VERSION);
  time_t now_t = time(NULL);
  struct tm tmv;
  gmtime_r(&now_t, &tmv);
  strftime(meta->created, sizeof meta->created, "%Y-%m-%dT%H:%M:%SZ", &tmv);
  meta->config = config_text(&t->cfg);
  /* The preprocessing belongs to the model: eval and predict apply it to whatever data they are given. */
  const int D = t->info->d, C = t->model.spec.n_classes;
  meta->has_preprocess = 1;
  meta->scale = t->info->scale;
  if (t->info->has_norm) {
    meta->mean = malloc(sizeof(float) * (size_t)D);
    meta->std = malloc(sizeof(float) * (size_t)D);
    if (meta->mean == NULL || meta->std == NULL) return -1;
    memcpy(meta->mean, mt_data_mean(t->ds), sizeof(float) * (size_t)D);
    memcpy(meta->std, mt_data_std(t->ds), sizeof(float) * (size_t)D);
  }
  if (mt_data_class_name(t->ds, 0)) {
    meta->class_names = calloc((size_t)C, sizeof *meta->class_names);
    for (int k = 0; meta->class_names && k < C; k++)
      if ((meta->class_names[k] = strdup(mt_data_class_name(t->ds, k) ? mt_data_class_name(t->ds, k) : "")) == NULL)
        return -1;
    if (meta->class_names == NULL) return -1;
  }
  return meta->config ? 0 : -1;
}

/* The parameters are the same on every rank, so is this verdict. */
int mt_trainer_check_finite(const Trainer *t, MtError *err) {
  for (size_t i = 0; i < t->model.n_params; i++)
    if (!isfinite(t->model.params[i]))
      return mt_fail(err, "the parameters are not finite after step %lld (parameter %zu): the run diverged; the last "
                          "checkpoint (if any) is intact. Try a smaller --lr%s",
                     (long long)t->step, i, t->cfg.clip_norm > 0 ? "" : " or --clip-norm");
  return 0;
}

/* Collective: rank 0's copies of --grad-comm bf16's residuals for a checkpoint (gathered: every rank's, and the
 * owners' of the sums), or NULL when this run rounds nothing. -1 (agreed) when rank 0 cannot hold them. */
static int residuals_gather(Trainer *t, float **worker, float **server, MtError *err) {
  *worker = *server = NULL;
  if (t->gs.ef == NULL) return 0;
  MtError local = {0};
  const size_t n = t->model.n_params;
  if (t->comm->rank == 0) {
    *worker = mt_alloc(sizeof(float) * n * (size_t)t->comm->size, "the gathered bf16 residuals", &local);
    if (*worker && t->gs.ef_own) *server = mt_alloc(sizeof(float) * n, "the gathered bf16 residuals", &local);
  }
  if (mt_comm_agree(t->comm, &local) != 0) {
    mt_free(*worker);
    mt_free(*server);
    *worker = *server = NULL;
    *err = local;
    return -1;
  }
  mt_gradsync_residuals_gather(&t->gs, *worker, *server, 0);
  return 0;
}

/* Collective. Rank 0 writes (every rank holds the same state), then all agree on the outcome: a checkpoint that
 * could not be written (disk full, directory gone) stops the run on every rank, the previous one intact. name NULL:
 * ckpt-<step>.h5, kept K at a time; else that file (best.h5). */
int mt_trainer_save_as(Trainer *t, const char *name, MtError *err) {
  mt_comm_phase(t->comm, "checkpoint", t->step);
  MtError local = {0};
  char path[1100] = "";
  double t0 = now();
  /* Never replace a good checkpoint with a diverged model (a gradient can overflow while the loss is still finite;
   * the next step's loss would tell, but a checkpoint may come first). */
  if (mt_trainer_check_finite(t, err) != 0) return -1;
  /* Checkpoints hold whole moments, whatever the rank count: a sharded optimiser gathers its parts on rank 0. */
  Optimizer full = t->opt, *o = &t->opt;
  if (t->gs.shard) {
    full.n = t->model.n_params;
    full.m = full.v = NULL;
    if (t->comm->rank == 0) {
      if (t->opt.m) full.m = mt_alloc(sizeof(float) * full.n, "the gathered optimiser moments", &local);
      if (t->opt.v) full.v = mt_alloc(sizeof(float) * full.n, "the gathered optimiser moments", &local);
    }
    if (mt_comm_agree(t->comm, &local) != 0) {
      mt_free(full.m);
      mt_free(full.v);
      *err = local;
      return -1;
    }
    if (t->opt.m) mt_gradsync_gather(&t->gs, t->opt.m, full.m, 0);
    if (t->opt.v) mt_gradsync_gather(&t->gs, t->opt.v, full.v, 0);
    o = &full;
  }
  float *worker = NULL, *server = NULL; /* rank 0's; the meta below owns them */
  if (residuals_gather(t, &worker, &server, &local) == 0 && t->comm->rank == 0) {
    CheckpointMeta meta;
    const int filled = fill_meta(t, &meta);
    meta.gc_ranks = worker ? t->comm->size : 0;
    meta.gc_has_server = server != NULL;
    meta.gc_n = (int64_t)t->model.n_params;
    meta.gc_worker = worker;
    meta.gc_server = server;
    if (filled != 0)
      mt_fail(&local, "out of memory describing the run for a checkpoint");
    else if (mt_checkpoint_write(t->cfg.checkpoint_dir, name, &meta, &t->model, o, path, sizeof path, &local) == 0 &&
             name == NULL)
      mt_checkpoint_prune(t->cfg.checkpoint_dir, t->cfg.keep, &local);
    mt_checkpoint_meta_free(&meta);
  }
  if (t->gs.shard) {
    mt_free(full.m);
    mt_free(full.v);
  }
  if (mt_comm_agree(t->comm, &local) != 0) {
    *err = local;
    return -1;
  }
  if (name == NULL) t->saved_step = t->step;
  mt_log_flush(t->log);
  if (t->comm->rank == 0) {
    struct stat st;
    double mb = stat(path, &st) == 0 ? st.st_size / 1048576.0 : 0;
    mt_log_info(t->log, "checkpoint %s (%.1f MB in %.0f ms)", path, mb, (now() - t0) * 1e3);
  }
  return 0;
}

int mt_trainer_save(Trainer *t, MtError *err) { return mt_trainer_save_as(t, NULL, err); }


/* Collective: rank 0 makes the directory, proves it can write there before any training time is spent, and takes
 * the directory's lock for the rest of the run (refused, on every rank, if another live run holds it). Only then
 * are temporaries removed: with the lock held no live run can be writing them. */
int mt_trainer_checkpoint_dir_ready(Trainer *t, MtError *err) {
  MtError local = {0};
  const char *dir = t->cfg.checkpoint_dir;
  if (t->comm->rank == 0) {
    char path[1100];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++) /* mkdir -p */
      if (*p == '/') {
        *p = '\0';
        mkdir(path, 0777);
        *p = '/';
      }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
      mt_fail(&local, "--checkpoint-dir %s: cannot create it: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s/.mpitrain-write-test.%ld", dir, (long)getpid());
    FILE *f = local.failed ? NULL : fopen(path, "w");
    if (!local.failed && (f == NULL || fclose(f) != 0))
      mt_fail(&local, "--checkpoint-dir %s: cannot write there: %s", dir, strerror(errno));
    unlink(path);
    char holder[512] = "";
    int locked = local.failed ? -1 : mt_checkpoint_dir_lock(dir, &t->dir_lock, holder, sizeof holder, &local);
    if (locked == 1) {
      fprintf(stderr, "mpitrain: warning: %s\n", local.msg);
      mt_error_clear(&local);
    }
    if (locked == 0 && holder[0] != '\0')
      fprintf(stderr, "mpitrain: taking over --checkpoint-dir %s from a run that ended without releasing it (%s)\n",
              dir, holder);
    int stale = locked < 0 ? 0 : mt_checkpoint_clean_temporaries(dir, locked == 0);
    if (stale > 0)
      fprintf(stderr, "mpitrain: removed %d unfinished checkpoint file%s left in %s by an interrupted run\n", stale,
              stale == 1 ? "" : "s", dir);
  }
  /* The directory's verdict is the job's, not rank 0's: every rank reports it (one line, no "rank 0:"). */
  mt_comm_bcast(t->comm, &local, sizeof local, 0);
  if (mt_comm_agree(t->comm, &local) != 0) {
    *err = local;
    return -1;
  }
  return 0;
}
