/* infer.h — using a trained model: `mpitrain eval` (loss and accuracy) and `mpitrain predict` (probabilities as
 * CSV), from a checkpoint, on any number of ranks. Each returns the process exit code. */
#ifndef MPITRAIN_INFER_H
#define MPITRAIN_INFER_H

#include "mpitrain/comm.h"

int eval_main(Comm *c, int argc, char **argv);
int predict_main(Comm *c, int argc, char **argv);

#endif
