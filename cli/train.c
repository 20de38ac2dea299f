/* train.c — `mpitrain train`: the options, --help, then the run. */
#include <stdio.h>

#include "mpitrain/train.h"
#include "train.h"

int train_main(Comm *c, int argc, char **argv) {
  Config cfg;
  MtError err = {0};
  int rc = config_parse(&cfg, argc, argv, 1, &err);
  if (comm_agree(c, &err) != 0) {
    comm_report(c, &err);
    if (c->rank == 0) fprintf(stderr, "(see `mpitrain train --help`)\n");
    return 2;
  }
  if (rc == 1) {
    if (c->rank == 0) config_print_help("train");
    return 0;
  }
  comm_warn_oversubscribed(c);
  comm_watchdog_timeout(c, cfg.stall_timeout);
  Trainer *t = NULL;
  if (trainer_create(&t, &cfg, c, NULL, &err) != 0) {
    comm_report(c, &err);
    return 1;
  }
  int ok = trainer_fit(t, &err);
  /* Errors inside fit are already the same on every rank (agreed, or derived from reduced values). */
  trainer_free(t);
  if (ok != 0) {
    comm_report(c, &err);
    return 1;
  }
  return 0;
}
