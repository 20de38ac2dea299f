/* bench.h — `mpitrain bench`: sgemm on the model's own GEMM shapes (the roofline), then training steps on
 * in-memory synthetic data; reports samples/s and achieved GFLOP/s as a fraction of that roofline. */
#ifndef MPITRAIN_BENCH_H
#define MPITRAIN_BENCH_H

#include "mpitrain/comm.h"

int bench_main(Comm *c, int argc, char **argv);

#endif
