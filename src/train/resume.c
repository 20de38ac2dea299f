/* resume.c — starting from earlier work: --resume (checkpoint, early stopping's best model) and --init-from. */
#include "trainer_impl.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpitrain/checkpoint.h"
#include "mpitrain/fileid.h"
#include "mpitrain/opts.h"
#include "mpitrain/replicate.h"
#include "mpitrain/torchfile.h"

/* The options stored in a checkpoint (its config attribute, INI text) against this run's: "--name old → new" for
 * every option with `flag` (opts.h) whose values differ, joined by ", " into out [n] ("" if none). Values are
 * compared as formatted, so a default and the same value given explicitly are equal. -1 (err set) if the stored
 * text cannot be read back: then nothing is compared. */
static int options_changed(const Config *cfg, const char *stored, int flag, char *out, size_t n, MtError *err) {
  out[0] = '\0';
  Config *old = malloc(sizeof *old);
  if (old == NULL) return mt_fail(err, "out of memory");
  mt_opts_defaults(mt_config_train_options, old);
  if (mt_opts_parse_ini_string(mt_config_train_options, old, stored ? stored : "", stored ? strlen(stored) : 0,
                            "its config", err) != 0) {
    free(old);
    return -1;
  }
  size_t used = 0;
  for (const OptionSpec *o = mt_config_train_options; o->name != NULL && used < n; o++) {
    if (!(o->flags & flag)) continue;
    /* --epochs is the length of the cosine schedule; under the other schedules it only says when to stop. */
    if (o->offset == offsetof(Config, epochs) && old->lr_schedule != LR_COSINE && cfg->lr_schedule != LR_COSINE)
      continue;
    char a[256], b[256];
    mt_opts_format_value(o, old, a, sizeof a);
    mt_opts_format_value(o, cfg, b, sizeof b);
    if (strcmp(a, b) != 0)
      used += (size_t)snprintf(out + used, n - used, "%s--%s %s → %s", used ? ", " : "", o->name, a, b);
  }
  free(old);
  return 0;
}

/* Rank 0 only: the checkpoint to resume from, loaded into t's model and optimiser. Returns 1 if one was loaded,
 * 0 if --resume auto found none, -1 on an error (which stops the run: an incompatible checkpoint, a damaged file
 * named explicitly, every checkpoint in the directory damaged). */
static int resume_pick(Trainer *t, Optimizer *opt, CheckpointMeta *meta, char *used, size_t used_n, MtError *err) {
  const Config *c = &t->cfg;
  int autodir = strcmp(c->resume, "auto") == 0;
  char (*paths)[1024] = malloc(sizeof(*paths) * (autodir ? CHECKPOINT_MAX : 1));
  if (paths == NULL) return mt_fail(err, "out of memory listing checkpoints");
  int n = 1;
  if (autodir)
    n = mt_checkpoint_list(c->checkpoint_dir, paths, CHECKPOINT_MAX, err);
  else
    snprintf(paths[0], sizeof paths[0], "%s", c->resume);
  int rc = n < 0 ? -1 : 0, skipped = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    MtError e = {0};
    if (mt_checkpoint_read_meta(paths[i], meta, &e) == 0) {
      /* Incompatible is final (every checkpoint of this directory is the same run); damage skips to an older one. */
      if (mt_checkpoint_check_fits(paths[i], meta, &t->model, opt, &e) != 0) {
        /* Name the options that made the difference, when the checkpoint's own options say. */
        char diff[300];
        MtError ignore = {0};
        if (options_changed(c, meta->config, OPT_MODEL, diff, sizeof diff, &ignore) == 0 && diff[0] != '\0')
          rc = mt_fail(err, "%s: %s", diff, e.msg);
        else
          rc = mt_fail(err, "%s", e.msg);
        mt_checkpoint_meta_free(meta);
        break;
      }
      if (mt_checkpoint_read_state(paths[i], meta, &t->model, opt, &e) == 0) {
        snprintf(used, used_n, "%s", paths[i]);
        char diff[600];
        MtError why = {0};
        if (options_changed(c, meta->config, OPT_TRAJECTORY, diff, sizeof diff, &why) != 0)
          mt_log_info(t->log, "note: cannot compare this run's options with those of %s (%s)", paths[i], why.msg);
        else if (diff[0] != '\0')
          mt_log_info(t->log, "warning: %s was written with other training options: %s; the run goes on with the new "
                           "ones", paths[i], diff);
        rc = 1;
        break;
      }
      mt_checkpoint_meta_free(meta);
    }
    if (!autodir) {
      rc = mt_fail(err, "--resume %s: %s", paths[i], e.msg);
      break;
    }
    fprintf(stderr, "mpitrain: warning: skipping %s: %s\n", paths[i], e.msg);
    skipped++;
  }
  if (rc == 0 && skipped > 0)
    rc = mt_fail(err, "--resume auto: all %d checkpoints in %s are damaged; remove them to start afresh", skipped,
                 c->checkpoint_dir);
  free(paths);
  return rc;
}

/* Collective: early stopping's best model so far, from DIR/best.h5 (written when it was reached). */
static int load_best(Trainer *t, MtError *err) {
  MtError local = {0};
  char path[1100];
  snprintf(path, sizeof path, "%s/best.h5", t->cfg.checkpoint_dir);
  if (t->comm->rank == 0) {
    CheckpointMeta meta;
    Model tmp;
    if (mt_checkpoint_read_meta(path, &meta, &local) == 0) {
      if (mt_model_create(&tmp, &t->model.spec, 1, &local) == 0) {
        if (mt_checkpoint_read_state(path, &meta, &tmp, NULL, &local) == 0) {
          memcpy(t->best_params, tmp.params, sizeof(float) * tmp.n_params);
          if (tmp.n_state) memcpy(t->best_state, tmp.state, sizeof(float) * tmp.n_state);
        }
        mt_model_free(&tmp);
      }
      mt_checkpoint_meta_free(&meta);
    }
    if (local.failed) {
      char why[MT_ERROR_MSG];
      snprintf(why, sizeof why, "%s", local.msg);
      mt_error_clear(&local);
      mt_fail(&local, "early stopping's best model so far (%.300s) cannot be read back; remove the checkpoints to "
                      "start afresh",
              why);
    }
  }
  if (mt_comm_agree(t->comm, &local) != 0) {
    *err = local;
    return -1;
  }
  /* The best model is kept as copies of params and state in the model's own layout: replicate it as a model. */
  Model best = t->model;
  best.params = t->best_params;
  best.state = t->best_state;
  best.gemm = NULL; /* the model's GEMM copy of the weights is not the best model's: fit_finish refreshes it */
  mt_model_replicate(t->comm, &best, 0);
  return 0;
}

/* The checkpoint's seed wins over --seed: it fixes the data order (and the validation rows). */
static void resume_seed(Trainer *t, int64_t seed) {
  mt_log_info(t->log, "note: continuing with the checkpoint's seed %lld (not --seed %lld): it fixes the data order",
           (long long)seed, (long long)t->cfg.seed);
  t->cfg.seed = seed;
  if (t->n_val > 0) { /* the validation rows derive from the seed too */
    mt_free(t->val_rows);
    mt_free(t->train_index);
    t->val_rows = NULL;
    t->train_index = NULL;
    t->n_train = t->info->n[SPLIT_TRAIN];
    MtError e = {0};
    mt_trainer_split_validation(t, &e); /* cannot fail where it succeeded before with the same sizes */
    t->perm_epoch = -1;
  }
}

/* Rank 0: what the resumed run differs in from the one that wrote the checkpoint, and where it resumes. */
static void resume_report(Trainer *t, const CheckpointMeta *meta, const char *used) {
  if (meta->n_train != t->n_train)
    mt_log_info(t->log, "warning: %s was trained on %lld rows (%s); this dataset has %lld: the data order differs",
             used, (long long)meta->n_train, meta->data, (long long)t->n_train);
  const int pre = meta->has_preprocess ? mt_data_preprocess_differs(t->ds, meta->scale, meta->mean, meta->std) : 0;
  if (pre)
    mt_log_info(t->log, "warning: %s was trained on data %s; the run goes on with %s's own, so the model sees its "
             "features differently from here on", used,
             pre == DATA_PRE_SCALE ? "of another scale" : pre == DATA_PRE_NORM ? "normalised otherwise"
                                                                              : "of another scale and normalisation",
             t->cfg.data);
  if (t->epoch_pos > t->n_train) t->epoch_pos = t->n_train;
  mt_log_info(t->log, "resumed from %s: step %lld, epoch %d (%lld of %lld rows done), written at %d rank%s", used,
           (long long)t->step, t->epoch + 1, (long long)t->epoch_pos, (long long)t->n_train, meta->world_size,
           meta->world_size == 1 ? "" : "s");
  if (meta->gc_ranks > 0 && t->gs.ef == NULL)
    mt_log_info(t->log, "note: %s holds --grad-comm bf16's rounding residuals; this run rounds nothing (fp32, or one "
                     "rank) and drops them", used);
  else if (meta->gc_ranks > 0 && meta->gc_ranks != t->comm->size)
    mt_log_info(t->log, "note: the bf16 rounding residuals of %d ranks go to rank 0 as their sum", meta->gc_ranks);
  if (meta->elapsed_s < 0 && t->cfg.log[0] != '\0')
    mt_log_info(t->log, "note: %s does not record the training time so far (an older mpitrain): elapsed_s in %s "
                     "counts from 0 again", used, t->cfg.log);
}

/* Collective. Rank 0 reads the checkpoint and broadcasts the state: one reader, however many ranks (a parallel
 * file system does not enjoy 512 ranks opening the same file at once). */
int mt_trainer_resume(Trainer *t, MtError *err) {
  CheckpointMeta meta;
  memset(&meta, 0, sizeof meta);
  char used[1024] = "";
  MtError local = {0};
  int found = 0, have_full = 0;
  Optimizer full;
  memset(&full, 0, sizeof full);
  if (t->comm->rank == 0) {
    /* Whole moments come off the file; a sharded optimiser then receives its parts. */
    if (t->gs.shard) {
      OptConfig oc = t->opt.cfg;
      if (mt_optim_create(&full, &oc, t->model.n_params, &local) == 0) have_full = 1;
    }
    if (!local.failed) found = resume_pick(t, have_full ? &full : &t->opt, &meta, used, sizeof used, &local);
    if (found < 0) found = 0;
  }
  if (mt_comm_agree(t->comm, &local) != 0) {
    if (have_full) mt_optim_free(&full);
    *err = local;
    return -1;
  }
  /* Every rank gets the whole checkpoint's metadata (rank 0's, however resume_pick left it when nothing was found). */
  if (mt_checkpoint_meta_broadcast(t->comm, &meta, 0, err) != 0) {
    if (have_full) mt_optim_free(&full);
    return -1;
  }
  mt_comm_bcast(t->comm, &found, sizeof found, 0);
  if (!found) {
    mt_checkpoint_meta_free(&meta);
    if (have_full) mt_optim_free(&full);
    mt_log_info(t->log, "--resume auto: no checkpoint in %s yet: starting fresh", t->cfg.checkpoint_dir);
    return 0;
  }
  mt_model_replicate(t->comm, &t->model, 0);
  if (t->gs.shard) {
    if (t->opt.m) mt_gradsync_scatter(&t->gs, have_full ? full.m : NULL, t->opt.m, 0);
    if (t->opt.v) mt_gradsync_scatter(&t->gs, have_full ? full.v : NULL, t->opt.v, 0);
  } else {
    if (t->opt.m) mt_comm_bcast(t->comm, t->opt.m, sizeof(float) * t->opt.n, 0);
    if (t->opt.v) mt_comm_bcast(t->comm, t->opt.v, sizeof(float) * t->opt.n, 0);
  }
  if (have_full) mt_optim_free(&full);
  /* Rank 0 read them with the metadata; at the same rank count every rank gets its own back (a bit-exact resume). */
  mt_gradsync_residuals_scatter(&t->gs, meta.gc_worker, meta.gc_ranks, meta.gc_server, 0);
  t->step = t->saved_step = meta.step;
  t->epoch = (int)meta.epoch;
  t->epoch_pos = meta.epoch_pos;
  t->opt.t = meta.opt_step;
  t->epoch_samples = meta.epoch_samples;
  t->epoch_loss = meta.epoch_loss_sum;
  t->epoch_correct = meta.epoch_correct;
  t->best_val = meta.best_val_loss;
  t->elapsed_base = meta.elapsed_s >= 0 ? meta.elapsed_s : 0;
  t->best_epoch = (int)meta.best_epoch;
  t->since_best = (int)meta.since_best;
  if (t->cfg.seed != meta.seed) resume_seed(t, meta.seed);
  if (t->det) {
    /* The next step's fixed-point scales: with them the resumed run has the same bits as one never stopped. */
    t->dt.known = meta.det_n == t->n_tensors;
    for (int i = 0; t->dt.known && i < t->n_tensors; i++) memcpy(&t->dt.prev[i], &meta.det_max[i], sizeof(float));
    if (!t->dt.known)
      mt_log_info(t->log, "note: %s was not written by a --deterministic run: from here on every rank count gives "
                       "the same bits, but not the same as a run that was never stopped", used);
  }
  if (t->best_params && t->best_val >= 0 && t->cfg.checkpoint_dir[0] == '\0') t->best_val = -1;
  if (t->best_params && t->best_val >= 0 && load_best(t, err) != 0) {
    mt_checkpoint_meta_free(&meta);
    return -1;
  }
  if (t->comm->rank == 0) resume_report(t, &meta, used);
  if (t->epoch_pos > t->n_train) t->epoch_pos = t->n_train;
  mt_checkpoint_meta_free(&meta);
  if (mt_comm_agree(t->comm, &local) != 0) {
    *err = local;
    return -1;
  }
  return 0;
}

/* Rank 0 only: FILE's weights into the model — an mpitrain checkpoint (architecture checked as for a resume, CRC
 * verified; its optimiser state and progress are not used), else a PyTorch state dict (torchfile.h). */
static int init_read(Trainer *t, const char *path, char *how, size_t how_n, MtError *err) {
  if (mt_fileid_regular(path, NULL, err) != 0) return -1; /* before anything opens it: a FIFO would block */
  if (mt_torchfile_sniff(path)) {
    char keys[64] = "";
    if (mt_torchfile_load_model(path, &t->model, keys, sizeof keys, err) != 0) return -1;
    snprintf(how, how_n, "PyTorch state dict, %s", keys);
    return 0;
  }
  CheckpointMeta meta;
  MtError e = {0};
  if (mt_checkpoint_read_meta(path, &meta, &e) == 0) {
    mt_checkpoint_read_state(path, &meta, &t->model, NULL, &e);
    mt_checkpoint_meta_free(&meta);
  }
  if (e.failed) return mt_fail(err, "%s: %s", path, e.msg);
  snprintf(how, how_n, "mpitrain checkpoint");
  return 0;
}

/* Collective. --init-from FILE: the run starts from FILE's weights instead of --init's; everything else (step,
 * epoch, optimiser state, data order) is a fresh run's. A checkpoint resumed wins. */
int mt_trainer_init_from(Trainer *t, MtError *err) {
  const char *path = t->cfg.init_from;
  if (t->saved_step >= 0) {
    mt_log_info(t->log, "note: --init-from %s ignored: the run resumed a checkpoint (step %lld)", path,
             (long long)t->saved_step);
    return 0;
  }
  MtError local = {0};
  char how[96] = "";
  if (t->comm->rank == 0 && init_read(t, path, how, sizeof how, &local) != 0) {
    char why[MT_ERROR_MSG];
    snprintf(why, sizeof why, "%s", local.msg);
    mt_error_clear(&local);
    mt_fail(&local, "--init-from %s", why);
  }
  if (mt_comm_agree(t->comm, &local) != 0) {
    *err = local;
    return -1;
  }
  mt_model_replicate(t->comm, &t->model, 0);
  mt_log_info(t->log, "initialised from %s (%s)", path, how);
  return 0;
}
