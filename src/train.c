/* train.c — placeholder while the trainer is written (replaced in the next commit). */
#include <stdio.h>
#include "mpitrain/train.h"
int train_main(Comm *c, int argc, char **argv) { (void)c; (void)argc; (void)argv; fprintf(stderr, "train: not built yet\n"); return 1; }
