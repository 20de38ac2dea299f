/* cli.c — what the subcommands share (cli.h): parsing the option table with its usage line, agreeing on an outcome
 * so every rank exits together with rank 0 speaking once, the checks of a dataset about to be written, and the
 * start of eval and predict. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "mpitrain/writeset.h"
#include "mpitrain/util.h"


void cli_print_usage(const CliUsage *u, const OptionSpec *table) {
  mt_opts_print_help_ex(stdout, u->usage, u->summary, table, 1);
  if (u->example) printf("\nexample:\n%s", u->example);
  fflush(stdout);
}

int cli_parse(Comm *c, const OptionSpec *table, const CliUsage *u, void *dst, int argc, char **argv, OptsResult *res,
              MtError *err) {
  int rc = mt_opts_parse(table, dst, argc, argv, 1, 1, res, err);
  if (rc == 0 && res->help) {
    if (c->rank == 0) cli_print_usage(u, table);
    return -1;
  }
  return 0;
}

int cli_agree_and_report(Comm *c, MtError *err) {
  if (mt_comm_agree(c, err) == 0) return 0;
  mt_comm_report(c, err);
  return -1;
}

int cli_fail_exit(Comm *c, MtError *err) { return mt_comm_agree(c, err) == 0 ? 0 : mt_comm_fail_exit(c, err); }

void cli_wait_for_all(Comm *c) { mt_comm_wait_all(c, "wait for the other ranks"); }

int cli_check_out(const char *out, MtError *err) {
  if (out[0] == '\0') return mt_fail(err, "--out FILE.h5 is required (where to write the dataset)");
  if (!mt_has_suffix(out, ".h5", 0) || strlen(out) == 3)
    return mt_fail(err, "--out %s: expected a file name ending in .h5 (shards are named NAME-00000-of-0000K.h5)",
                   out);
  return 0;
}

/* Renaming the new file into place would destroy an input it is (mt_fileid_check: by device and inode). */
int cli_check_files(const FileRole *inputs, int n_inputs, const char *out, int shards, MtError *err) {
  for (int i = 0; i < n_inputs; i++)
    if (mt_fileid_regular(inputs[i].path, inputs[i].role, err) != 0) return -1;
  for (int k = 0; k < shards; k++) {
    char path[WRITE_SET_PATH];
    mt_write_set_file_name(out, k, shards, path, sizeof path);
    FileRole o = {.role = "--out", .path = path, .replaced = 1};
    if (mt_fileid_check(inputs, n_inputs, &o, 1, err) != 0) return -1;
  }
  return 0;
}

void cli_report_set(const char *cmd, const char *out, int shards, const int64_t n[2], int d, int uint8,
                    const char *tail) {
  printf("%s: wrote %s%s: %lld train + %lld test rows x %d features (%s), %s\n", cmd, out,
         shards > 1 ? " as shards" : "", (long long)n[0], (long long)n[1], d, uint8 ? "uint8" : "float32", tail);
  if (shards > 1) {
    char first[WRITE_SET_PATH];
    mt_write_set_file_name(out, 0, shards, first, sizeof first);
    printf("%s: %d files, %s ...\n", cmd, shards, first);
  }
}

/* Parses and agrees; returns 1 when --help was shown, 0 to go on, -1 after an agreed error (reported). */
static int infer_parse(Comm *c, const OptionSpec *table, const CliUsage *u, int predict, InferArgs *o, int argc,
                       char **argv) {
  MtError err = {0};
  OptsResult res;
  if (cli_parse(c, table, u, o, argc, argv, &res, &err) != 0) return 1;
  if (!err.failed) {
    snprintf(o->config, sizeof o->config, "%s", res.config_path);
    if (res.n_positional > 0)
      mt_fail(&err, "unexpected argument '%s' (the checkpoint is given with --checkpoint)", res.positional[0]);
    else if (o->in.checkpoint[0] == '\0')
      mt_fail(&err, "--checkpoint: which checkpoint? (a ckpt-*.h5 file written by mpitrain train)");
    else if (predict && o->out[0] == '\0')
      mt_fail(&err, "--out: where should the predictions go? (a CSV file name)");
  }
  if (cli_agree_and_report(c, &err) != 0) return -1;
  mt_comm_watchdog_timeout(c, o->stall_timeout);
  return 0;
}

int cli_infer_start(Comm *c, const OptionSpec *table, const CliUsage *u, int predict, InferArgs *o, int argc,
                    char **argv, Infer *in, int *rc) {
  int p = infer_parse(c, table, u, predict, o, argc, argv);
  if (p != 0) {
    *rc = p > 0 ? 0 : EXIT_USAGE;
    return -1;
  }
  mt_comm_warn_oversubscribed(c);
  MtError err = {0};
  if (mt_infer_open(c, &o->in, !predict, in, &err) != 0) {
    mt_comm_report(c, &err);
    *rc = 1;
    return -1;
  }
  return 0;
}
