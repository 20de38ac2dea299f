/* cli.h — the `mpitrain` executable: its subcommands (one file each; each returns the process exit code and has
 * --help; argv[0] is the command's name) and what they share: option parsing with the usage line, agreeing on an
 * outcome and reporting it once, and the checks of the files a command writes. */
#ifndef MPITRAIN_CLI_H
#define MPITRAIN_CLI_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "mpitrain/comm.h"
#include "mpitrain/dataformat.h"
#include "mpitrain/error.h"
#include "mpitrain/fileid.h"
#include "mpitrain/infer.h"
#include "mpitrain/opts.h"

int train_main(Comm *c, int argc, char **argv);
int convert_main(Comm *c, int argc, char **argv);
int synth_main(Comm *c, int argc, char **argv);
int info_main(Comm *c, int argc, char **argv);
int eval_main(Comm *c, int argc, char **argv);
int predict_main(Comm *c, int argc, char **argv);
int bench_main(Comm *c, int argc, char **argv);

#define EXIT_USAGE 2
#define NOMAX HUGE_VAL              /* an option's range without an upper end */
#define CLI_PATH 1024               /* bytes of a file name option */

/* ---- Options and outcomes ---- */

/* What a command's --help says besides its option table. */
typedef struct CliUsage {
  const char *usage;   /* the line after "usage: " */
  const char *summary; /* what the command does */
  const char *example; /* lines of examples, or NULL */
} CliUsage;

/* --help on stdout: usage, summary, the options by section with defaults, the example. */
void cli_print_usage(const CliUsage *u, const OptionSpec *table);
/* Parses options (argv[1..], --config allowed); returns 0 to go on (a usage error is in err: agree on it), or -1
 * after --help was printed on rank 0. */
int cli_parse(Comm *c, const OptionSpec *table, const CliUsage *u, void *dst, int argc, char **argv, OptsResult *res,
              MtError *err);
/* Agrees on err; after a failure rank 0 reports it and -1 is returned, else 0. */
int cli_agree_and_report(Comm *c, MtError *err);
/* Agrees on err: 0, or after a failure (rank 0 says it) the exit code (128 + the signal when interrupted, else 1). */
int cli_fail_exit(Comm *c, MtError *err);
/* Ranks with nothing to do wait here for the busy ones without spinning a core each (mt_comm_agree's allreduce would
 * busy-poll while rank 0 works), watched by the stall inspector. */
void cli_wait_for_all(Comm *c);

/* ---- The dataset a command writes (convert, synth) ---- */

/* --out names a dataset: required, ending in .h5. */
int cli_check_out(const char *out, MtError *err);
/* Before anything is read or written: the inputs that exist are regular files (a FIFO would block its reader), and
 * no file of the set to write (out, or each of its shards) is one of them. */
int cli_check_files(const FileRole *inputs, int n_inputs, const char *out, int shards, MtError *err);
/* Rank 0's report of a set written: "CMD: wrote OUT: N train + M test rows x D features (TYPE), TAIL", then for
 * shards the number of files and the first one's name. */
void cli_report_set(const char *cmd, const char *out, int shards, const int64_t n[2], int d, int uint8,
                    const char *tail);

/* ---- eval and predict ---- */


typedef struct InferArgs {
  InferOptions in;   /* first member: what the library needs */
  char out[1024];    /* predict's --out */
  char config[1024]; /* --config FILE, if any (set by cli_infer_start: not in the option tables) */
  float stall_timeout;
} InferArgs;

#define INFER_FIELD(f) offsetof(InferArgs, in.f), .size = sizeof(((InferArgs *)0)->in.f)
/* The options eval and predict share (an option table's first entries). */
#define INFER_COMMON_OPTIONS                                                                                       \
  {.name = "checkpoint", .type = OT_STRING, .offset = INFER_FIELD(checkpoint), .def = "", .metavar = "FILE",     \
   .help = "checkpoint to load (required): a ckpt-*.h5 written by mpitrain train"},                                \
      {.name = "data", .type = OT_STRING, .offset = INFER_FIELD(data), .def = "datasets/fashion-mnist.h5",        \
       .metavar = "FILE", .help = "dataset (one file, a shard, or a set's base name)"},                            \
      {.name = "split", .type = OT_ENUM, .offset = offsetof(InferArgs, in.split), .def = "test",                  \
       .choices = mt_data_split_names, .help = "which split of the dataset"},                                        \
      {.name = "micro-batch", .type = OT_INT, .offset = offsetof(InferArgs, in.micro_batch), .def = "1024",       \
       .metavar = "N", .min = 1, .max = 1 << 24, .flags = OPT_RANGED, .help = "rows per forward pass on a rank"},  \
      {.name = "threads", .type = OT_INT, .offset = offsetof(InferArgs, in.threads), .def = "auto",              \
       .metavar = "N", .min = 1, .max = 1024, .flags = OPT_RANGED, .word = "auto", .word_value = 0,               \
       .help = "OpenBLAS threads per rank; auto = OPENBLAS_NUM_THREADS if set, else OMP_NUM_THREADS, else the "  \
               "node's cores shared among its ranks"},                                                          \
      {.name = "precision", .type = OT_ENUM, .offset = offsetof(InferArgs, in.precision), .def = "auto",         \
       .choices = mt_precision_names,                                                                            \
       .help = "GEMM precision: fp32; bf16 (bf16 inputs, fp32 accumulation; needs a CPU with bf16); auto = bf16 " \
               "where oneDNN finds AMX, else fp32 (or as MPITRAIN_AUTO_PRECISION says)"},                      \
      {.name = "in-memory", .type = OT_ENUM, .offset = offsetof(InferArgs, in.in_memory), .def = "auto",         \
       .choices = mt_memory_names, .help = "hold the split in memory (yes) or read rows per chunk (no)"},       \
      {.name = "memory-limit-mb", .type = OT_INT64, .offset = offsetof(InferArgs, in.memory_limit_mb),            \
       .def = "2048", .metavar = "MB", .min = 1, .max = 1e12, .flags = OPT_RANGED,                                \
       .help = "largest split --in-memory auto loads"},                                                       \
      COMM_STALL_OPTION(InferArgs, stall_timeout)

/* Options (predict: --out is required), checkpoint, dataset (eval: the split must have labels): returns -1 when the
 * command is over (*rc holds its exit code), 0 to go on with in open. */
int cli_infer_start(Comm *c, const OptionSpec *table, const CliUsage *u, int predict, InferArgs *o, int argc,
                    char **argv, Infer *in, int *rc);

#endif
