/* fit.c — the run: the banner, the metrics file, epochs with evaluation, early stopping, checkpoints and
 * signals (mt_trainer_fit). */
#include "trainer_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpitrain/checkpoint.h"
#include "mpitrain/fileid.h"
#include "mpitrain/init.h"
#include "mpitrain/optim.h"

static void print_banner(Trainer *t) {
  const Config *c = &t->cfg;
  const Model *m = &t->model;
  char arch[300], extra[400] = "", lr[200];
  mt_checkpoint_arch_string(&m->spec, arch, sizeof arch);
  size_t e = 0;
  if (c->dropout > 0) e += (size_t)snprintf(extra + e, sizeof extra - e, ", dropout %g", (double)c->dropout);
  if (c->l2 > 0 && e < sizeof extra) e += (size_t)snprintf(extra + e, sizeof extra - e, ", L2 %g", (double)c->l2);
  if (c->weight_decay > 0 && e < sizeof extra)
    e += (size_t)snprintf(extra + e, sizeof extra - e, ", weight decay %g", (double)c->weight_decay);
  if (c->clip_norm > 0 && e < sizeof extra)
    snprintf(extra + e, sizeof extra - e, ", clip norm %g", (double)c->clip_norm);
  int n = snprintf(lr, sizeof lr, "lr %g", t->sched.lr);
  if (c->lr_ref_batch > 0)
    n += snprintf(lr + n, sizeof lr - (size_t)n, " (%g x %lld/%lld, linear scaling)", (double)c->lr,
                  (long long)t->batch, (long long)c->lr_ref_batch);
  if (c->lr_schedule != LR_CONSTANT) n += snprintf(lr + n, sizeof lr - (size_t)n, ", %s schedule", mt_lr_schedule_name((LrScheduleKind)c->lr_schedule));
  if (c->warmup_steps > 0)
    snprintf(lr + n, sizeof lr - (size_t)n, ", %lld warm-up steps", (long long)c->warmup_steps);
  char where[96];
  if (!t->info->in_memory[SPLIT_TRAIN])
    snprintf(where, sizeof where, "read per batch");
  else if (t->shared[SPLIT_TRAIN].base)
    snprintf(where, sizeof where, "in memory, one copy per node shared by its %d ranks, %d node%s", t->comm->node_size,
             t->comm->n_nodes, t->comm->n_nodes == 1 ? "" : "s");
  else
    snprintf(where, sizeof where, "in memory");
  mt_log_info(t->log, "mpitrain: %d rank%s x %d BLAS thread%s (%s); data %s (%lld train%s / %lld test rows, %s)",
           t->comm->size, t->comm->size == 1 ? "" : "s", t->threads.n, t->threads.n == 1 ? "" : "s",
           t->threads.source, c->data,
           (long long)t->n_train, t->n_val ? " + validation" : "", (long long)t->info->n[SPLIT_TEST], where);
  if (t->n_val) mt_log_info(t->log, "validation: %lld rows held out of the training split", (long long)t->n_val);
  if (t->det) {
    const int64_t G = c->det_group, groups = (t->batch + G - 1) / G;
    mt_log_info(t->log, "deterministic: groups of %lld rows, %lld per batch, summed as int%d; the same bits on any "
                     "number of ranks with --det-group %lld and one BLAS thread",
             (long long)G, (long long)groups, groups > FIXED_NARROW_GROUPS ? 64 : 32, (long long)G);
    if (groups < t->comm->size)
      mt_log_info(t->log, "warning: %lld groups per batch for %d ranks: ranks %lld..%d have no rows and wait; use "
                       "--det-group %lld or a larger --batch", (long long)groups, t->comm->size, (long long)groups,
               t->comm->size - 1, (long long)(t->batch / t->comm->size > 0 ? t->batch / t->comm->size : 1));
  }
  if (t->comm->size > 1) {
    const char *how = t->det ? "one integer allreduce after backward (deterministic)"
                      : t->gs.n_buckets == 1 ? "one fused bucket, reduced after backward"
                                             : "";
    mt_log_info(t->log, "gradients: %s%s%s%s%s", how,
             t->gs.bf16 || t->gs.hier ? (how[0] ? "; " : "") : "",
             t->gs.bf16 ? "sent as bf16, summed in fp32, with error feedback (--grad-comm bf16)" : "",
             t->gs.hier ? "hierarchical: reduce-scatter within each node, allreduce across nodes, all-gather "
                          "within (--allreduce hier)"
                        : "",
             t->gs.shard ? "; sharded optimiser (ZeRO-1): each rank updates and keeps state for 1/N of the "
                           "parameters"
                         : "");
  }
  if (t->comm->size > 1 && t->gs.n_buckets > 1 && !t->det) {
    char blocks[96] = "";
    if (t->dw_blocks > 0)
      snprintf(blocks, sizeof blocks, "; weight gradients in %d row blocks, each handed over when computed",
               t->dw_blocks);
    mt_log_info(t->log, "           %d buckets, each reduced while backward goes on%s", t->gs.n_buckets, blocks);
  }
  if (t->comm->size > 1 && !t->det && t->cfg.allreduce == ALLREDUCE_AUTO) {
    char each[48] = "different numbers of ranks";
    if (t->comm->nodes_uniform) snprintf(each, sizeof each, "%d rank%s each", t->comm->node_size,
                                         t->comm->node_size == 1 ? "" : "s");
    mt_log_info(t->log, "           --allreduce auto: %s (%d node%s, %s)", mt_allreduce_names[t->allreduce],
                t->comm->n_nodes, t->comm->n_nodes == 1 ? "" : "s", each);
  }
  if (t->comm->size > 1 && !t->det && t->cfg.bucket_mb < 0)
    mt_log_info(t->log, "           --bucket-mb auto: %g (ranks on %d node%s)", t->bucket_mb, t->comm->n_nodes,
                t->comm->n_nodes == 1 ? "" : "s");
  mt_log_info(t->log, "model %s, %zu parameters, init %s%s; %s %s; batch %lld (%lld steps/epoch), %d epoch%s", arch,
           m->n_params, mt_init_name(mt_init_resolve((InitKind)c->init, (ActKind)c->activation)), extra,
           mt_optim_name((OptKind)c->optimizer), lr, (long long)t->batch, (long long)t->steps_per_epoch, c->epochs,
           c->epochs == 1 ? "" : "s");
  const MtPrecision prec = mt_gemm_precision(m->gemm);
  const char *env = c->precision == PRECISION_AUTO ? mt_precision_auto_override() : NULL;
  mt_log_info(t->log, "precision %s%s (--precision %s%s%s); GEMMs: %s%s%s", mt_precision_name(prec),
              prec == PRECISION_BF16 ? " mixed: bf16 GEMM inputs, fp32 accumulation, master weights and optimiser" : "",
              mt_precision_name((MtPrecision)c->precision), env ? ", " MT_AUTO_PRECISION_ENV "=" : "", env ? env : "",
              mt_gemm_kernel(m->gemm),
              prec == PRECISION_BF16 ? " on " : "", prec == PRECISION_BF16 ? mt_gemm_isa_name() : "");
  char buf[512];
  const char *hint = mt_blas_weak_core_hint(buf, sizeof buf);
  if (hint) mt_log_info(t->log, "warning: %s", hint);
}

/* Collective, once the data and the checkpoint are open and agreed good: rank 0 creates the metrics file. Not before:
 * a run refused for a bad input leaves an existing file of that name as it was. And never over an input of this
 * run, by whatever name: a file of the dataset, the checkpoint resumed from, any checkpoint of --checkpoint-dir
 * (--config is checked by mt_config_parse, before the log exists either). */
int mt_trainer_metrics_open(Trainer *t, MtError *err) {
  MtError local = {0};
  const Config *c = &t->cfg;
  if (t->comm->rank == 0 && c->log[0] != '\0') {
    const int n_shards = t->info->n_shards;
    int n_ckpt = 0;
    char(*ckpts)[1024] = NULL;
    char best[1100];
    if (c->checkpoint_dir[0] != '\0') {
      ckpts = malloc(sizeof(*ckpts) * CHECKPOINT_MAX);
      if (ckpts == NULL) mt_fail(&local, "out of memory listing %s", c->checkpoint_dir);
      n_ckpt = ckpts ? mt_checkpoint_list(c->checkpoint_dir, ckpts, CHECKPOINT_MAX, &local) : 0;
      snprintf(best, sizeof best, "%s/best.h5", c->checkpoint_dir);
    }
    FileRole *in = local.failed ? NULL : mt_alloc(sizeof *in * (size_t)(n_shards + n_ckpt + 3), "the inputs", &local);
    if (in != NULL) {
      int n = 0;
      for (int k = 0; k < n_shards; k++) in[n++] = (FileRole){.role = "--data", .path = mt_data_shard_path(t->ds, k)};
      if (strcmp(c->resume, "auto") != 0) in[n++] = (FileRole){.role = "--resume", .path = c->resume};
      if (c->init_from[0] != '\0') in[n++] = (FileRole){.role = "--init-from", .path = c->init_from};
      for (int i = 0; i < n_ckpt; i++) in[n++] = (FileRole){.role = "checkpoint", .path = ckpts[i]};
      if (c->checkpoint_dir[0] != '\0') in[n++] = (FileRole){.role = "checkpoint", .path = best};
      FileRole out = {.role = "--log", .path = c->log};
      if (mt_fileid_check(in, n, &out, 1, &local) == 0) {
        /* A resumed run continues the file of the run it resumes; a fresh one starts it anew. */
        mt_log_open_file(t->log, t->saved_step >= 0 ? t->step : -1, &local);
      }
      mt_free(in);
    }
    free(ckpts);
  }
  if (mt_comm_agree(t->comm, &local) != 0) {
    *err = local;
    return -1;
  }
  return 0;
}

/* ==== The loop ==== */

/* Early stopping's bookkeeping after an epoch's validation loss: a better one is remembered (and, with a
 * checkpoint directory, written as best.h5). Collective. */
static int track_best(Trainer *t, double val_loss, MtError *err) {
  if (t->best_val >= 0 && !(val_loss < t->best_val)) {
    t->since_best++;
    return 0;
  }
  t->best_val = val_loss;
  t->best_epoch = t->epoch + 1;
  t->since_best = 0;
  memcpy(t->best_params, t->model.params, sizeof(float) * t->model.n_params);
  if (t->model.n_state) memcpy(t->best_state, t->model.state, sizeof(float) * t->model.n_state);
  return t->cfg.checkpoint_dir[0] != '\0' ? mt_trainer_save_as(t, "best.h5", err) : 0;
}

int mt_trainer_stopped(const Trainer *t) { return t->stop_requested; }

/* The steps of the current epoch until it ends, a signal stops the run or --max-steps is reached (*stop; *max_stop:
 * by --max-steps, whose end still gets an evaluation), with the checkpoints every N steps. Collective. */
static int fit_epoch_steps(Trainer *t, int64_t first_step, int *stop, int *max_stop, MtError *err) {
  const Config *c = &t->cfg;
  const int ckpt = c->checkpoint_dir[0] != '\0';
  const int64_t total_steps = (int64_t)c->epochs * t->steps_per_epoch;
  while (t->epoch_pos < t->n_train) {
    StepStats st;
    if (mt_trainer_step(t, &st, err) != 0) return -1;
    int64_t end = c->max_steps > 0 && c->max_steps < total_steps ? c->max_steps : total_steps;
    st.eta_s = ((st.elapsed_s - t->elapsed_base) / (double)(t->step - first_step)) * (double)(end - t->step);
    mt_log_step(t->log, &st);
    if (t->stop_requested || (c->max_steps > 0 && t->step >= c->max_steps)) {
      *stop = 1;
      *max_stop = !t->stop_requested;
      return 0;
    }
    /* Every N steps — unless this step ended the epoch and the epoch's checkpoint follows anyway. */
    int epoch_end = t->epoch_pos >= t->n_train && c->checkpoint_epochs;
    if (ckpt && c->checkpoint_every > 0 && t->step % c->checkpoint_every == 0 && !epoch_end &&
        mt_trainer_save(t, err) != 0)
      return -1;
  }
  return 0;
}

/* After a whole epoch, or where --max-steps ends the run mid-epoch (whole = 0): evaluate and report; after a whole
 * one also early stopping's bookkeeping (*early: stop now), the move to the next epoch and its checkpoint. A partial
 * epoch goes on when the run is resumed. Collective. */
static int fit_epoch_end(Trainer *t, int whole, double *test_loss, double *test_acc, int *early, MtError *err) {
  const Config *c = &t->cfg;
  if (mt_trainer_check_finite(t, err) != 0) return -1;
  EpochStats es = {.epoch = t->epoch, .epochs = c->epochs, .step = t->step, .test_loss = -1, .test_acc = -1,
                   .val_loss = -1, .val_acc = -1, .partial = !whole};
  es.epoch_s = now() - t->t_epoch;
  es.train_loss = t->epoch_samples ? t->epoch_loss / (double)t->epoch_samples : 0;
  es.train_acc = t->epoch_samples ? t->epoch_correct / (double)t->epoch_samples : 0;
  es.samples_per_s = es.epoch_s > 0 ? t->session_samples / es.epoch_s : 0;
  if (c->eval && t->info->n[SPLIT_TEST] > 0) {
    if (mt_trainer_evaluate(t, SPLIT_TEST, test_loss, test_acc, err) != 0) return -1;
    es.test_loss = *test_loss;
    es.test_acc = *test_acc;
  }
  if (t->n_val > 0 && mt_trainer_evaluate_validation(t, &es.val_loss, &es.val_acc, err) != 0) return -1;
  mt_log_epoch(t->log, &es);
  if (!whole) return 0; /* early stopping counts whole epochs only */
  if (c->patience > 0 && track_best(t, es.val_loss, err) != 0) return -1;
  if (c->patience > 0 && t->since_best >= c->patience) {
    mt_log_info(t->log, "early stopping: the validation loss has not improved for %d epoch%s (best %.4f after "
                     "epoch %d)",
             c->patience, c->patience == 1 ? "" : "s", t->best_val, t->best_epoch);
    *early = 1;
  }
  mt_trainer_advance_epoch(t);
  if (c->checkpoint_dir[0] != '\0' && c->checkpoint_epochs && !t->stop_requested && mt_trainer_save(t, err) != 0)
    return -1;
  return 0;
}

/* The end of a run that did not fail: the last checkpoint, early stopping's best model restored (and measured), the
 * final replica check and the closing line. Collective. */
static int fit_finish(Trainer *t, double test_loss, double test_acc, MtError *err) {
  const Config *c = &t->cfg;
  const int ckpt = c->checkpoint_dir[0] != '\0';
  int rc = 0;
  if (ckpt && t->saved_step != t->step) rc = mt_trainer_save(t, err);
  if (rc == 0 && !t->stop_requested && t->best_params && t->best_val >= 0 && t->best_epoch != t->epoch) {
    /* Early stopping ends with the best model, not the last: restore it and measure it. */
    memcpy(t->model.params, t->best_params, sizeof(float) * t->model.n_params);
    if (t->model.n_state) memcpy(t->model.state, t->best_state, sizeof(float) * t->model.n_state);
    mt_gemm_stage_weights(t->model.gemm, t->model.params);
    mt_log_info(t->log, "restored the model of epoch %d (validation loss %.4f)%s", t->best_epoch, t->best_val,
             ckpt ? "; it is also in best.h5" : "");
    if (c->eval && t->info->n[SPLIT_TEST] > 0) rc = mt_trainer_evaluate(t, SPLIT_TEST, &test_loss, &test_acc, err);
  }
  if (rc == 0 && c->check_replicas > 0 &&
      !mt_comm_replicas_identical(t->comm, t->model.params, sizeof(float) * t->model.n_params))
    rc = mt_fail(err, "replica check failed at the end of training: the parameters differ between ranks");
  if (rc != 0) return -1;
  double total = now() - t->t_start;
  if (t->stop_requested)
    mt_log_info(t->log, "stopped by a signal after step %lld%s; resume with --resume auto", (long long)t->step,
             ckpt ? ", checkpoint written" : " (no --checkpoint-dir: nothing saved)");
  else if (test_acc >= 0)
    mt_log_info(t->log, "final test accuracy: %.2f%% (test loss %.4f) after %lld steps in %.1f s", 100 * test_acc,
             test_loss, (long long)t->step, total);
  else
    mt_log_info(t->log, "done: %lld steps in %.1f s", (long long)t->step, total);
  return 0;
}

int mt_trainer_fit(Trainer *t, MtError *err) {
  const Config *c = &t->cfg;
  print_banner(t);
  /* SIGTERM / SIGUSR1 / SIGINT (what Slurm, a scheduler or a user sends to stop a job) only set a flag (comm.h); the
   * ranks agree on it in the next step's gradient allreduce, so all of them stop after the same step. */
  mt_comm_stop_catch();
  int rc = 0;
  t->t_start = t->t_epoch = now();
  double test_loss = -1, test_acc = -1;
  const int64_t first_step = t->step;
  int early = 0;
  while (t->epoch < c->epochs && rc == 0) {
    int stop = 0, max_stop = 0; /* max_stop: --max-steps ended the run (a signal's stop has no evaluation) */
    rc = fit_epoch_steps(t, first_step, &stop, &max_stop, err);
    /* A whole epoch: evaluate, report, move on. --max-steps mid-epoch: evaluate and report the same way, so the
     * run ends with the final model's test accuracy, but the epoch goes on (a resume continues it). */
    const int whole = t->epoch_pos >= t->n_train;
    if (rc == 0 && (whole || max_stop)) rc = fit_epoch_end(t, whole, &test_loss, &test_acc, &early, err);
    if (stop || early) break;
  }
  if (rc == 0) rc = fit_finish(t, test_loss, test_acc, err);
  mt_comm_stop_release();
  /* Only rank 0 writes the log, so only it can see a write error (disk full): agree on it. */
  MtError lerr = {0};
  mt_log_close(t->log, &lerr);
  t->log = NULL;
  if (rc != 0) return -1;
  if (mt_comm_agree(t->comm, &lerr) != 0) {
    *err = lerr;
    return -1;
  }
  return 0;
}
