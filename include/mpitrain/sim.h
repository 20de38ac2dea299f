/* sim.h — running under SimGrid SMPI (the MPITRAIN_SMPI build): how a training step's compute reaches the
 * simulated clock.
 *
 * Under smpirun every simulated rank lives in one process, so 1024 ranks cannot each run real GEMMs. The
 * environment variable MPITRAIN_SIM (read once per rank) chooses:
 *   real    (default) forward and backward run; SMPI measures their CPU time and charges it (scaled by
 *           smpi/host-speed). For validation at a few ranks.
 *   model   forward and backward do not run: each step charges the GEMM flops of the rank's rows (mt_model_gemm_flops,
 *           per micro-batch chunk) to the simulated host, which computes at the platform's `speed` (calibrated from
 *           a real run, launch/scaling.sh). The gradient buffer is zeroed (its values mean nothing), the loss is 0,
 *           and the gradient allreduce and everything after it run for real, with the real buffer sizes. With
 *           --cfg=smpi/simulate-computation:no the simulated times are repeatable bit for bit.
 *   sample  forward and backward run for real in a rank's first MPITRAIN_SIM_SAMPLES steps (default 3), then that
 *           mean simulated time is charged instead of running them.
 * Batch normalisation's statistics reductions happen inside forward/backward, so model and sample skip them too.
 *
 * In the normal (Open MPI) build every function here is a no-op that returns 0, so the hooks cost nothing. */
#ifndef MPITRAIN_SIM_H
#define MPITRAIN_SIM_H

#include <mpi.h>

#include "mpitrain/model.h"

typedef enum SimMode { SIM_REAL = 0, SIM_MODEL, SIM_SAMPLE } SimMode;

/* The mode of this rank (always SIM_REAL outside the SMPI build). An unknown MPITRAIN_SIM value stops the run. */
SimMode mt_sim_mode(void);

/* Hook at the start of a step's forward/backward over `rows` rows in chunks of `micro`. Returns 1 when the
 * simulator has accounted for that compute (charged to the clock, gradients zeroed): the caller skips it. Returns
 * 0 when the caller must run it, and then calls mt_sim_step_end(0) right after. */
int mt_sim_step_begin(Model *m, int rows, int micro);
void mt_sim_step_end(int skipped);

/* Hook for the benchmark's sgemm roofline: the simulated seconds of the GEMMs of one forward+backward over `rows`
 * rows in model mode (flops / host speed), 0 otherwise (then time them for real). */
double mt_sim_gemm_seconds(const Model *m, int rows);

/* MPI_Iallreduce for the SMPI build. SimGrid 3.32's non-blocking collectives ignore the collective algorithm
 * settings and send the whole buffer from every rank to every other (n-1 full copies per rank, n-1 temporary
 * buffers): at 256 ranks and 4 MB that is 1 GB per rank, and nothing like the ring or Rabenseifner algorithm Open
 * MPI runs. Under SMPI this runs the blocking MPI_Allreduce (the configured algorithm) at once and returns
 * MPI_REQUEST_NULL: each bucket's time is right, but the simulation shows no overlap (an upper bound on the step
 * time). In the Open MPI build it is MPI_Iallreduce. To use it: #define MPI_Iallreduce mt_sim_iallreduce in comm.c
 * under #ifdef MPITRAIN_SMPI. */
int mt_sim_iallreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                   MPI_Request *req);

#endif
