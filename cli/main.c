/* main.c — the `mpitrain` command: picks the subcommand (one file each, cli.h) and hands over to it; `version` and
 * the top-level usage are here. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "mpitrain/blas.h"
#include "mpitrain/comm.h"
#include "mpitrain/data.h"
#include "mpitrain/opts.h"
#include "mpitrain/train.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: mpitrain <command> [options]     (run under mpirun -np N for N ranks)\n"
          "\n"
          "commands:\n"
          "  train     train an MLP on a dataset (data-parallel over all ranks)\n"
          "  eval      loss and accuracy of a checkpoint on a dataset\n"
          "  predict   class probabilities of a checkpoint for every row of a dataset, as CSV\n"
          "  convert   turn IDX (e.g. Fashion-MNIST) or CSV files into an mpitrain dataset\n"
          "  synth     write a generated classification dataset of any size\n"
          "  info      describe a dataset or a checkpoint\n"
          "  bench     measure throughput against the sgemm roofline on the model's shapes\n"
          "  version   print versions and the BLAS kernels in use\n"
          "\n"
          "`mpitrain <command> --help` lists a command's options and their defaults.\n");
}

typedef int (*CommandFn)(Comm *c, int argc, char **argv);

static int version_main(Comm *c, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      if (c->rank == 0)
        printf("usage: mpitrain version\n\nPrints the versions of mpitrain and of the MPI library, and the OpenBLAS "
               "build, kernels and threads in use\n(with a hint when the kernels are weaker than this CPU "
               "supports).\n");
      return 0;
    }
    if (c->rank == 0) fprintf(stderr, "mpitrain: error: version takes no arguments, got '%s'\n", argv[i]);
    return 2;
  }
  if (c->rank != 0) return 0;
  char buf[512], lib[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(lib, &len);
  char *nl = strchr(lib, '\n');
  if (nl) *nl = '\0';
  printf("mpitrain %s\n", MPITRAIN_VERSION);
  printf("mpi: %s\n", lib);
  printf("blas: %s\n", mt_blas_describe(buf, sizeof buf));
  const char *hint = mt_blas_weak_core_hint(buf, sizeof buf);
  if (hint) printf("warning: %s\n", hint);
  return 0;
}

int main(int argc, char **argv) {
  /* Before MPI_Init and before any BLAS call: may re-execute this program with better OpenBLAS kernels. */
  mt_blas_fix_coretype(argv);
  mt_blas_flush_denormals();

  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  static const struct {
    const char *name;
    CommandFn fn;
  } commands[] = {
      {"train", train_main},     {"eval", eval_main},   {"predict", predict_main},
      {"convert", convert_main}, {"synth", synth_main}, {"info", info_main},
      {"bench", bench_main},     {"version", version_main}, {"--version", version_main},
  };
  CommandFn fn = NULL;
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0) fn = commands[i].fn;
  if (fn == NULL) {
    fprintf(stderr, "mpitrain: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
  }

  /* THREAD_MULTIPLE for the stall inspector's thread (comm.h); without it the inspector stays off. */
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  mt_data_library_init(); /* once, for every subcommand and every file */
  Comm comm;
  MtError err = {0};
  if (mt_comm_init(&comm, MPI_COMM_WORLD, &err) != 0) {
    fprintf(stderr, "mpitrain: error: %s\n", err.msg);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  mt_opts_set_warnings(comm.rank == 0 ? stderr : NULL); /* every rank parses the options: one of them speaks */
  /* The stall inspector watches every subcommand (each applies its own --stall-timeout once it has its options);
   * mt_comm_free stops it. */
  if (mt_comm_watchdog_start(&comm, COMM_STALL_TIMEOUT_DEFAULT, &err) != 0) {
    fprintf(stderr, "mpitrain: error: %s\n", err.msg);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  int rc = fn(&comm, argc - 1, argv + 1);
  mt_comm_free(&comm);
  MPI_Finalize();
  return rc;
}
