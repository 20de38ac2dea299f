/* train.c — `mpitrain train`: the options, --help, then the run. */
#include <stdio.h>

#include "cli.h"
#include "mpitrain/train.h"

static const CliUsage train_usage = {
    .usage = "mpitrain train [--config FILE] [options]     (under mpirun -np N for N ranks)",
    .summary = "Trains an MLP classifier (softmax + cross-entropy) on an HDF5 dataset, data-parallel: every rank\n"
               "holds the whole model and computes the gradient of its slice of each global batch; the gradients\n"
               "are summed over all ranks, and every rank applies the same update.",
    .example = "  mpirun -np 4 mpitrain train --hidden 512,256 --optimizer adam --lr 1e-3 --batch 256 --epochs 10 "
               "--log metrics.csv\n",
};

int train_main(Comm *c, int argc, char **argv) {
  Config cfg;
  MtError err = {0};
  int rc = mt_config_parse(&cfg, argc, argv, 1, &err);
  if (mt_comm_agree(c, &err) != 0) {
    mt_comm_report(c, &err);
    if (c->rank == 0) fprintf(stderr, "(see `mpitrain train --help`)\n");
    return 2;
  }
  if (rc == 1) {
    if (c->rank == 0) cli_print_usage(&train_usage, mt_config_train_options);
    return 0;
  }
  mt_comm_warn_oversubscribed(c);
  mt_comm_watchdog_timeout(c, cfg.stall_timeout);
  Trainer *t = NULL;
  if (mt_trainer_create(&t, &cfg, c, NULL, &err) != 0) {
    mt_comm_report(c, &err);
    return 1;
  }
  int ok = mt_trainer_fit(t, &err);
  /* Errors inside fit are already the same on every rank (agreed, or derived from reduced values). */
  mt_trainer_free(t);
  if (ok != 0) {
    mt_comm_report(c, &err);
    return 1;
  }
  return 0;
}
