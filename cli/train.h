/* train.h — `mpitrain train`: the options (config_parse), --help, then trainer_create and trainer_fit. */
#ifndef MPITRAIN_CLI_TRAIN_H
#define MPITRAIN_CLI_TRAIN_H

#include "mpitrain/comm.h"

int train_main(Comm *c, int argc, char **argv);

#endif
