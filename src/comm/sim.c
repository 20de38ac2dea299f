/* sim.c — compute under SimGrid SMPI: real, modelled from the flop count, or sampled (see sim.h).
 *
 * The state below is per simulated rank: smpirun privatises a program's globals per rank by default (dlopen
 * privatisation), so each rank counts its own samples. Do not run with -no-privatize. */
#include "mpitrain/sim.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MPITRAIN_SMPI
#include <simgrid/host.h>

static int mode = -1;          /* SimMode, -1 until MPITRAIN_SIM was read */
static int samples_wanted = 3; /* sample mode: real steps whose mean is replayed ... */
static int samples_seen;       /* ... after one more real step (the first, cold, is not counted) */
static double sample_sum;      /* simulated seconds of the counted real steps */
static double t_begin;         /* simulated clock at mt_sim_step_begin of a real step */

SimMode mt_sim_mode(void) {
  if (mode >= 0) return (SimMode)mode;
  const char *s = getenv("MPITRAIN_SIM");
  if (s == NULL || *s == '\0' || strcmp(s, "real") == 0)
    mode = SIM_REAL;
  else if (strcmp(s, "model") == 0)
    mode = SIM_MODEL;
  else if (strcmp(s, "sample") == 0)
    mode = SIM_SAMPLE;
  else {
    fprintf(stderr, "mpitrain: error: MPITRAIN_SIM=%s: expected real, model or sample\n", s);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const char *k = getenv("MPITRAIN_SIM_SAMPLES");
  if (k != NULL && atoi(k) > 0) samples_wanted = atoi(k);
  return (SimMode)mode;
}

/* GEMM flops of forward + backward over rows in chunks of micro, as the trainer runs them. */
static double step_flops(const Model *m, int rows, int micro) {
  double f = 0;
  for (int c0 = 0; c0 < rows; c0 += micro) f += mt_model_gemm_flops(m, rows - c0 < micro ? rows - c0 : micro);
  return f;
}

int mt_sim_step_begin(Model *m, int rows, int micro) {
  SimMode md = mt_sim_mode();
  if (md == SIM_REAL) return 0;
  if (md == SIM_SAMPLE && samples_seen <= samples_wanted) {
    t_begin = MPI_Wtime(); /* MPI_Wtime also makes SMPI charge the CPU time used so far */
    return 0;
  }
  if (md == SIM_MODEL)
    smpi_execute_flops_benched(step_flops(m, rows, micro));
  else
    smpi_execute_benched(sample_sum / samples_wanted);
  memset(m->grads, 0, sizeof(float) * m->n_params);
  return 1;
}

void mt_sim_step_end(int skipped) {
  if (skipped || mode != SIM_SAMPLE) return;
  double dt = MPI_Wtime() - t_begin;
  if (samples_seen++ > 0) sample_sum += dt;
}

double mt_sim_gemm_seconds(const Model *m, int rows) {
  if (mt_sim_mode() != SIM_MODEL) return 0;
  return mt_model_gemm_flops(m, rows) / sg_host_get_speed(sg_host_self());
}

int mt_sim_iallreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                   MPI_Request *req) {
  *req = MPI_REQUEST_NULL;
  return MPI_Allreduce(sendbuf, recvbuf, count, type, op, comm);
}

#else /* the Open MPI build: real compute, always */

int mt_sim_iallreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                   MPI_Request *req) {
  return MPI_Iallreduce(sendbuf, recvbuf, count, type, op, comm, req);
}

SimMode mt_sim_mode(void) { return SIM_REAL; }
int mt_sim_step_begin(Model *m, int rows, int micro) {
  (void)m;
  (void)rows;
  (void)micro;
  return 0;
}
void mt_sim_step_end(int skipped) { (void)skipped; }
double mt_sim_gemm_seconds(const Model *m, int rows) {
  (void)m;
  (void)rows;
  return 0;
}

#endif
