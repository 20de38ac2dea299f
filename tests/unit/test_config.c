/* test_config.c — the train options: documented defaults, representative errors with their messages, the words
 * (full, auto), cross-option checks, and that --help documents what it should. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mpitrain/comm.h"
#include "mpitrain/config.h"
#include "mpitrain/init.h"
#include "mpitrain/model.h"
#include "mpitrain/optim.h"

static int parse(Config *c, MtError *err, ...) {
  char *argv[64];
  int argc = 0;
  argv[argc++] = (char *)"train";
  va_list ap;
  va_start(ap, err);
  for (const char *a; (a = va_arg(ap, const char *)) != NULL && argc < 63;) argv[argc++] = (char *)a;
  va_end(ap);
  argv[argc] = NULL;
  memset(c, 0, sizeof *c);
  mt_error_clear(err);
  return mt_config_parse(c, argc, argv, 1, err);
}

static void assert_fails_with(int rc, const MtError *err, const char *expected) {
  assert_int_equal(rc, -1);
  assert_string_equal(err->msg, expected);
}

static void assert_fails_containing(int rc, const MtError *err, const char *part) {
  assert_int_equal(rc, -1);
  if (strstr(err->msg, part) == NULL) fail_msg("message '%s' lacks '%s'", err->msg, part);
}

static void test_defaults(void **state) {
  (void)state;
  Config c;
  MtError err = {0};
  assert_int_equal(parse(&c, &err, NULL), 0);
  assert_string_equal(c.data, "datasets/fashion-mnist.h5");
  assert_int_equal(c.in_memory, MEMORY_AUTO);
  assert_true(c.memory_limit_mb == 2048);
  assert_int_equal(c.hidden.n, 2);
  assert_int_equal(c.hidden.v[0], 512);
  assert_int_equal(c.hidden.v[1], 256);
  assert_int_equal(c.activation, ACT_RELU);
  assert_true(c.leaky_slope == 0.01f);
  assert_int_equal(c.init, INIT_AUTO);
  assert_int_equal(c.optimizer, OPT_ADAM);
  assert_true(c.lr == 5e-4f);
  assert_true(c.beta1 == 0.9f);
  assert_true(c.beta2 == -1.0f);
  assert_true(c.eps == 1e-8f);
  assert_true(c.batch == 256);
  assert_int_equal(c.micro_batch, 0);
  assert_int_equal(c.epochs, 20);
  assert_true(c.max_steps == 0);
  assert_true(c.seed == 42);
  assert_int_equal(c.threads, 0);
  assert_int_equal(c.check_replicas, 0);
  assert_string_equal(c.log, "");
  assert_int_equal(c.log_format, LOGFMT_AUTO);
  assert_int_equal(c.log_every, 0);
  assert_int_equal(c.progress, PROGRESS_AUTO);
  assert_int_equal(c.eval, 1);
  assert_true(mt_config_beta2(&c) == 0.999f);
  assert_string_equal(c.checkpoint_dir, "");
  assert_true(c.checkpoint_every == 0);
  assert_int_equal(c.checkpoint_epochs, 1);
  assert_int_equal(c.keep, 3);
  assert_string_equal(c.resume, "");
  assert_string_equal(c.init_from, "");
  assert_int_equal(c.batchnorm, 0);
  assert_true(c.bn_momentum == 0.1f && c.bn_eps == 1e-5f && c.dropout == 0);
  assert_true(c.l2 == 0 && c.weight_decay == 0 && c.clip_norm == 0);
  assert_int_equal(c.lr_schedule, 0);
  assert_true(c.lr_gamma == -1 && c.lr_step == 10 && c.lr_decay_rate == 1 && c.lr_min == 0);
  assert_true(c.warmup_steps == 0 && c.lr_ref_batch == 0);
  assert_true(c.val_fraction == 0 && c.patience == 0 && c.log_norms == 0);
  assert_true(c.bucket_mb == -1 && c.shard_optimizer == 0);
  assert_int_equal(c.grad_comm, GRAD_COMM_FP32);
  assert_int_equal(c.allreduce, ALLREDUCE_AUTO);
  assert_true(c.deterministic == 0 && c.det_group == 64);
  assert_int_equal(c.on_nonfinite, NONFINITE_STOP);
  assert_true(c.stall_timeout == 600);
  assert_int_equal(c.precision, PRECISION_AUTO); /* bf16 where AMX is: its accuracy matched fp32 (README) */
}

/* Every default must pass its own option's checks (mt_opts_defaults does not report a bad one). */
static void test_table_defaults_valid(void **state) {
  (void)state;
  Config c;
  MtError err = {0};
  int count = 0;
  for (const OptionSpec *o = mt_config_train_options; o->name != NULL; o++, count++) {
    mt_error_clear(&err);
    if (mt_opts_set(mt_config_train_options, &c, o->name, o->def ? o->def : "", NULL, &err) != 0)
      fail_msg("default of --%s is rejected: %s", o->name, err.msg);
    assert_non_null(o->help);
  }
  assert_int_equal(count, 56); /* a new option: add its default to test_defaults too */
}

static void test_choices_follow_enums(void **state) {
  (void)state;
  Config c;
  MtError err = {0};
  assert_int_equal(parse(&c, &err, "--activation", "sigmoid", "--init", "zero", "--optimizer", "rmsprop",
                         "--in-memory", "no", "--log-format", "jsonl", "--progress", "off", NULL),
                   0);
  assert_int_equal(c.activation, ACT_SIGMOID);
  assert_int_equal(c.init, INIT_ZERO);
  assert_int_equal(c.optimizer, OPT_RMSPROP);
  assert_int_equal(c.in_memory, MEMORY_NO);
  assert_int_equal(c.log_format, LOGFMT_JSONL);
  assert_int_equal(c.progress, PROGRESS_OFF);
  assert_int_equal(parse(&c, &err, "--precision", "bf16", NULL), 0);
  assert_int_equal(c.precision, PRECISION_BF16);
  assert_int_equal(parse(&c, &err, "--precision", "auto", NULL), 0);
  assert_int_equal(c.precision, PRECISION_AUTO);
  assert_int_equal(parse(&c, &err, "--grad-comm", "bf16", NULL), 0);
  assert_int_equal(c.grad_comm, GRAD_COMM_BF16);
  assert_int_equal(parse(&c, &err, "--activation", "leaky_relu", "--init", "he", "--optimizer", "momentum", NULL),
                   0);
  assert_int_equal(c.activation, ACT_LEAKY_RELU);
  assert_int_equal(c.init, INIT_HE);
  assert_int_equal(c.optimizer, OPT_MOMENTUM);
}

static void test_words(void **state) {
  (void)state;
  Config c;
  MtError err = {0};
  assert_int_equal(parse(&c, &err, "--batch", "full", "--micro-batch", "64", "--threads", "4", "--hidden", "none",
                         "--log-every", "5", NULL),
                   0);
  assert_true(c.batch == 0);
  assert_int_equal(c.micro_batch, 64);
  assert_int_equal(c.threads, 4);
  assert_int_equal(c.hidden.n, 0);
  assert_int_equal(c.log_every, 5);
  assert_int_equal(parse(&c, &err, "--batch", "1", "--hidden", "", "--check-replicas", "100", NULL), 0);
  assert_true(c.batch == 1);
  assert_int_equal(c.hidden.n, 0);
  assert_int_equal(c.check_replicas, 100);
  assert_int_equal(parse(&c, &err, "--threads", "auto", "--micro-batch", "auto", "--log-every", "auto",
                         "--check-replicas", "off", "--batch", "1e6", NULL),
                   0);
  assert_int_equal(c.threads, 0);
  assert_int_equal(c.micro_batch, 0);
  assert_int_equal(c.log_every, 0);
  assert_int_equal(c.check_replicas, 0);
  assert_true(c.batch == 1000000);
  assert_fails_with(parse(&c, &err, "--micro-batch", "0", NULL), &err,
                    "--micro-batch: expected a whole number >= 1 or 'auto', got '0'");
}

static void test_beta2(void **state) {
  (void)state;
  Config c;
  MtError err = {0};
  assert_int_equal(parse(&c, &err, "--beta2", "auto", "--optimizer", "adam", NULL), 0);
  assert_true(mt_config_beta2(&c) == 0.999f);
  assert_int_equal(parse(&c, &err, "--optimizer", "rmsprop", NULL), 0);
  assert_true(mt_config_beta2(&c) == 0.9f);
  assert_int_equal(parse(&c, &err, "--optimizer", "rmsprop", "--beta2", "0.99", NULL), 0);
  assert_true(mt_config_beta2(&c) == 0.99f);
  assert_int_equal(parse(&c, &err, "--optimizer", "adam", "--beta2", "0", NULL), 0);
  assert_true(mt_config_beta2(&c) == 0.0f);
  assert_fails_with(parse(&c, &err, "--beta2", "1", NULL), &err,
                    "--beta2: expected a number in [0, 1) or 'auto', got '1'");
}

static void test_errors(void **state) {
  (void)state;
  Config c;
  MtError err = {0};
  assert_fails_with(parse(&c, &err, "--lr", "-1", NULL), &err, "--lr: expected a number > 0, got '-1'");
  assert_fails_with(parse(&c, &err, "--activation", "relux", NULL), &err,
                    "--activation: unknown value 'relux'; expected one of relu, leaky_relu, tanh, sigmoid");
  assert_fails_with(parse(&c, &err, "--batch", "12x", NULL), &err,
                    "--batch: expected a whole number >= 1 or 'full', got '12x'");
  assert_fails_with(parse(&c, &err, "--batch", "0", NULL), &err,
                    "--batch: expected a whole number >= 1 or 'full', got '0'");
  assert_fails_with(parse(&c, &err, "--leaky-slope", "1", NULL), &err,
                    "--leaky-slope: expected a number in (0, 1), got '1'");
  assert_fails_containing(parse(&c, &err, "--leaky-slope", "0", NULL), &err, "in (0, 1)");
  assert_fails_with(parse(&c, &err, "--beta1", "1", NULL), &err, "--beta1: expected a number in [0, 1), got '1'");
  assert_fails_with(parse(&c, &err, "--threads", "2000", NULL), &err,
                    "--threads: expected a whole number in [1, 1024] or 'auto', got '2000'");
  assert_fails_with(parse(&c, &err, "--hidden", "512,0", NULL), &err,
                    "--hidden: expected a comma-separated list of whole numbers in [1, 1048576] or 'none', got '0' "
                    "in '512,0'");
  assert_fails_containing(parse(&c, &err, "--epochs", "0", NULL), &err, "--epochs: expected a whole number >= 1");
  assert_fails_containing(parse(&c, &err, "--memory-limit-mb", "0", NULL), &err, ">= 1");
  assert_fails_containing(parse(&c, &err, "--max-steps", "-1", NULL), &err, ">= 0");
  assert_fails_containing(parse(&c, &err, "--eps", "0", NULL), &err, "--eps: expected a number > 0");
  assert_fails_with(parse(&c, &err, "--optimiser", "sgd", NULL), &err,
                    "unknown option --optimiser; did you mean --optimizer?");
  assert_fails_with(parse(&c, &err, "--epoch", "3", NULL), &err, "unknown option --epoch; did you mean --epochs?");
  assert_fails_with(parse(&c, &err, "--eval", "false", NULL), &err,
                    "--eval takes no value; write --eval=false (or --eval / --no-eval)");
  assert_int_equal(parse(&c, &err, "--no-eval", NULL), 0);
  assert_int_equal(c.eval, 0);
  assert_fails_with(parse(&c, &err, "--checkpoint-every", "100", NULL), &err,
                    "--checkpoint-every 100: checkpoints need a directory; add --checkpoint-dir DIR");
  assert_fails_with(parse(&c, &err, "--resume", "auto", NULL), &err,
                    "--resume auto: looks for checkpoints in --checkpoint-dir, which is not set");
  assert_fails_containing(parse(&c, &err, "--keep", "0", NULL), &err, "--keep: expected a whole number >= 1");
  assert_int_equal(parse(&c, &err, "--checkpoint-dir", "ck", "--resume", "auto", "--checkpoint-every", "off", NULL), 0);
  assert_fails_with(parse(&c, &err, "--patience", "3", NULL), &err,
                    "--patience 3: early stopping watches the validation loss; add --val-fraction (e.g. 0.1)");
  assert_fails_with(parse(&c, &err, "--log-norms", NULL), &err,
                    "--log-norms: the norms go to the metrics log; add --log FILE.csv");
  assert_fails_containing(parse(&c, &err, "--dropout", "1", NULL), &err, "--dropout: expected a number in [0, 1)");
  assert_fails_containing(parse(&c, &err, "--val-fraction", "0.9", NULL), &err, "--val-fraction: expected");
  assert_fails_containing(parse(&c, &err, "--batchnorm", "middle", NULL), &err, "none, before, after");
  assert_fails_containing(parse(&c, &err, "--lr-schedule", "linear", NULL), &err, "constant, step, exp, inv, cosine");
}

static void test_positional_refused(void **state) {
  (void)state;
  Config c;
  MtError err = {0};
  assert_fails_with(parse(&c, &err, "data.h5", NULL), &err,
                    "unexpected argument 'data.h5': the dataset is given with --data data.h5");
  assert_fails_with(parse(&c, &err, "--lr", "0.1", "extra", NULL), &err,
                    "unexpected argument 'extra': this command takes only --options (see --help)");
}

static void test_validate(void **state) {
  (void)state;
  Config c;
  MtError err = {0};
  assert_int_equal(parse(&c, &err, "--log", "m.csv", NULL), 0);
  assert_int_equal(parse(&c, &err, "--log", "m.JSONL", NULL), 0);
  assert_int_equal(parse(&c, &err, "--log", "m.json", NULL), 0);
  assert_int_equal(parse(&c, &err, "--log", "metrics.txt", "--log-format", "csv", NULL), 0);
  assert_fails_with(parse(&c, &err, "--log", "metrics.txt", NULL), &err,
                    "--log metrics.txt: cannot tell the format from the file name; add --log-format csv or "
                    "--log-format jsonl (or name it .csv or .jsonl)");
  assert_fails_containing(parse(&c, &err, "--data", "x.h5", "--log", "x.h5", "--log-format", "csv", NULL), &err,
                          "that is the dataset");
  assert_fails_with(parse(&c, &err, "--data", "", NULL), &err, "--data: expected a dataset file name, got ''");
  assert_fails_containing(parse(&c, &err, "--grad-comm", "bf16", "--deterministic", NULL), &err,
                          "--grad-comm bf16 with --deterministic: ");
  assert_int_equal(parse(&c, &err, "--grad-comm", "bf16", "--shard-optimizer", "--bucket-mb", "1", NULL), 0);
  /* mt_config_validate alone, on a struct filled by other means */
  assert_int_equal(parse(&c, &err, NULL), 0);
  snprintf(c.log, sizeof c.log, "%s", "noext");
  mt_error_clear(&err);
  assert_int_equal(mt_config_validate(&c, &err), -1);
  c.log_format = LOGFMT_JSONL;
  mt_error_clear(&err);
  assert_int_equal(mt_config_validate(&c, &err), 0);
}

static void test_config_file(void **state) {
  (void)state;
  char path[64];
  snprintf(path, sizeof path, "/tmp/test_config_%d.ini", (int)getpid());
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("[model]\nhidden = 64\nactivation = tanh\n[optimisation]\nlearning_rate = 1\n", f);
  assert_int_equal(fclose(f), 0);
  Config c;
  MtError err = {0};
  char expected[160];
  snprintf(expected, sizeof expected, "%s:5: unknown option 'learning_rate'; mpitrain calls it 'lr'", path);
  assert_fails_with(parse(&c, &err, "--config", path, NULL), &err, expected);

  /* the dump of a configuration reads back to the same configuration */
  assert_int_equal(parse(&c, &err, "--hidden", "64,32,16", "--batch", "full", "--lr", "0.1", "--optimizer",
                         "momentum", "--no-eval", "--log", "m.jsonl", "--seed", "7", NULL),
                   0);
  f = fopen(path, "w");
  assert_non_null(f);
  mt_opts_write_ini(f, mt_config_train_options, &c);
  assert_int_equal(fclose(f), 0);
  Config d;
  assert_int_equal(parse(&d, &err, "--config", path, NULL), 0);
  assert_memory_equal(&c, &d, sizeof c);
  remove(path);
}

static void test_help(void **state) {
  (void)state;
  Config c;
  MtError err = {0};
  assert_int_equal(parse(&c, &err, "--lr", "bad", "--help", NULL), 1);

  char path[64];
  snprintf(path, sizeof path, "/tmp/test_config_help_%d.txt", (int)getpid());
  fflush(stdout);
  int saved = dup(STDOUT_FILENO);
  assert_true(saved >= 0);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_true(dup2(fd, STDOUT_FILENO) >= 0);
  close(fd);
  mt_opts_print_help_ex(stdout, "mpitrain train [--config FILE] [options]", "Trains.", mt_config_train_options, 1);
  fflush(stdout);
  assert_true(dup2(saved, STDOUT_FILENO) >= 0);
  close(saved);

  FILE *f = fopen(path, "r");
  assert_non_null(f);
  static char text[32768];
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = '\0';
  fclose(f);
  remove(path);
  static const char *const expected[] = {
      "usage: mpitrain train",
      "--config FILE",
      "\ndata:\n",
      "\nmodel:\n",
      "\noptimisation:\n",
      "\nsystem:\n",
      "\noutput:\n",
      "--batch N",
      "1 = stochastic GD, full = full-batch GD",
      "(default: 256)",
      "--activation relu|leaky_relu|tanh|sigmoid",
      "--optimizer sgd|momentum|rmsprop|adam",
      "v = beta1*v + (1-beta1)*g",
      "auto = 0.999 for adam, 0.9 for rmsprop",
      "(default: datasets/fashion-mnist.h5)",
      "--[no-]eval",
  };
  /* Phrases may be wrapped across lines: compare with runs of white space folded to one space. */
  static char flat[32768];
  size_t m = 0;
  for (size_t i = 0; text[i] != '\0'; i++) {
    int space = text[i] == ' ' || text[i] == '\n';
    if (space && m > 0 && flat[m - 1] == ' ') continue;
    flat[m++] = space ? ' ' : text[i];
  }
  flat[m] = '\0';
  for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
    const char *where = expected[i][0] == '\n' ? text : flat;
    if (strstr(where, expected[i]) == NULL) fail_msg("help lacks '%s':\n%s", expected[i], text);
  }
  /* every option of the table is documented */
  for (const OptionSpec *o = mt_config_train_options; o->name != NULL; o++) {
    char key[80];
    snprintf(key, sizeof key, "%s%s", o->type == OT_BOOL ? "--[no-]" : "--", o->name);
    if (strstr(text, key) == NULL) fail_msg("help lacks %s", key);
  }
}

/* What a resume with a changed value means is a flag on the option's entry: a few by name, and never both. */
static int flags_of(const char *name) {
  for (const OptionSpec *o = mt_config_train_options; o->name; o++)
    if (strcmp(o->name, name) == 0) return o->flags;
  fail_msg("no option %s", name);
  return 0;
}

static void test_resume_classes(void **state) {
  (void)state;
  const char *model[] = {"hidden", "activation", "batchnorm", "optimizer"};
  const char *trajectory[] = {"lr", "batch", "beta1", "l2", "weight-decay", "dropout", "clip-norm", "lr-schedule",
                              "warmup-steps", "epochs"};
  const char *neither[] = {"log", "progress", "checkpoint-dir", "threads", "resume", "stall-timeout", "in-memory",
                           "max-steps", "seed", "data"};
  for (size_t i = 0; i < sizeof model / sizeof *model; i++) assert_true(flags_of(model[i]) & OPT_MODEL);
  for (size_t i = 0; i < sizeof trajectory / sizeof *trajectory; i++)
    assert_true(flags_of(trajectory[i]) & OPT_TRAJECTORY);
  for (size_t i = 0; i < sizeof neither / sizeof *neither; i++)
    assert_int_equal(flags_of(neither[i]) & (OPT_MODEL | OPT_TRAJECTORY), 0);
  for (const OptionSpec *o = mt_config_train_options; o->name; o++)
    assert_false((o->flags & OPT_MODEL) && (o->flags & OPT_TRAJECTORY));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),       cmocka_unit_test(test_table_defaults_valid),
      cmocka_unit_test(test_choices_follow_enums), cmocka_unit_test(test_words),
      cmocka_unit_test(test_beta2),          cmocka_unit_test(test_errors),
      cmocka_unit_test(test_positional_refused), cmocka_unit_test(test_validate),
      cmocka_unit_test(test_config_file),    cmocka_unit_test(test_help),
      cmocka_unit_test(test_resume_classes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
