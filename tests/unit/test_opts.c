/* test_opts.c — the option table parser: every type, ranges, words, lists, the command-line forms, INI files
 * (with FILE:LINE messages), --help, and the INI dump reading back to the same struct. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mpitrain/opts.h"

typedef struct T {
  int n;          /* >= 1 or "full" = 0 */
  int64_t big;    /* >= 0 */
  float lr;       /* > 0 */
  float beta;     /* [0, 1) */
  float b2;       /* "auto" = -1, else [0, 1) */
  int small;      /* [1, 10] */
  int any;        /* unranged */
  char name[8];
  int act;
  int flag;
  IntList hidden; /* each [1, 1000], "none" = empty */
} T;

static const char *const acts[] = {"relu", "leaky_relu", "tanh", "sigmoid", NULL};
#define NOBOUND 1e308

static const OptionSpec table[] = {
    {.name = "n", .type = OT_INT, .offset = offsetof(T, n), .def = "128", .metavar = "N", .help = "batch",
     .min = 1, .max = NOBOUND, .flags = OPT_RANGED, .word = "full", .word_value = 0, .section = "first"},
    {.name = "big", .type = OT_INT64, .offset = offsetof(T, big), .def = "0", .help = "a big one", .min = 0,
     .max = NOBOUND, .flags = OPT_RANGED},
    {.name = "lr", .type = OT_FLOAT, .offset = offsetof(T, lr), .def = "1e-3", .help = "learning rate", .min = 0,
     .max = NOBOUND, .flags = OPT_RANGED | OPT_MIN_EXCLUSIVE},
    {.name = "beta", .type = OT_FLOAT, .offset = offsetof(T, beta), .def = "0.9", .help = "decay", .min = 0,
     .max = 1, .flags = OPT_RANGED | OPT_MAX_EXCLUSIVE},
    {.name = "beta-two", .type = OT_FLOAT, .offset = offsetof(T, b2), .def = "auto", .help = "second decay",
     .min = 0, .max = 1, .flags = OPT_RANGED | OPT_MAX_EXCLUSIVE, .word = "auto", .word_value = -1},
    {.name = "small", .type = OT_INT, .offset = offsetof(T, small), .def = "5", .help = "small", .min = 1,
     .max = 10, .flags = OPT_RANGED, .section = "second"},
    {.name = "any", .type = OT_INT, .offset = offsetof(T, any), .help = "anything"},
    {.name = "name", .type = OT_STRING, .offset = offsetof(T, name), .size = 8, .def = "", .metavar = "TEXT",
     .help = "a short name"},
    {.name = "activation", .type = OT_ENUM, .offset = offsetof(T, act), .def = "relu", .help = "nonlinearity",
     .choices = acts},
    {.name = "flag", .type = OT_BOOL, .offset = offsetof(T, flag), .def = "true", .help = "a switch"},
    {.name = "hidden", .type = OT_INT_LIST, .offset = offsetof(T, hidden), .def = "512,256", .metavar = "LIST",
     .help = "widths", .min = 1, .max = 1000, .flags = OPT_RANGED, .word = "none"},
    {.name = NULL},
};

/* parse(&t, &err, "--lr", "0.1", NULL): argv[0] is a dummy command name, as in the real subcommands. */
static int parse_v(T *t, MtError *err, OptsResult *res, int allow_config, va_list ap) {
  char *argv[64];
  int argc = 0;
  argv[argc++] = (char *)"cmd";
  for (const char *a; (a = va_arg(ap, const char *)) != NULL && argc < 63;) argv[argc++] = (char *)a;
  argv[argc] = NULL;
  memset(t, 0, sizeof *t);
  mt_error_clear(err);
  return mt_opts_parse(table, t, argc, argv, 1, allow_config, res, err);
}

static int parse(T *t, MtError *err, ...) {
  va_list ap;
  va_start(ap, err);
  OptsResult res;
  int rc = parse_v(t, err, &res, 1, ap);
  va_end(ap);
  return rc;
}

static int parse_res(T *t, MtError *err, OptsResult *res, ...) {
  va_list ap;
  va_start(ap, res);
  int rc = parse_v(t, err, res, 1, ap);
  va_end(ap);
  return rc;
}

static int set(T *t, MtError *err, const char *name, const char *value) {
  mt_error_clear(err);
  return mt_opts_set(table, t, name, value, NULL, err);
}

static void assert_fails_with(int rc, const MtError *err, const char *expected) {
  assert_int_equal(rc, -1);
  assert_true(err->failed);
  assert_string_equal(err->msg, expected);
}

static void assert_fails_containing(int rc, const MtError *err, const char *part) {
  assert_int_equal(rc, -1);
  if (strstr(err->msg, part) == NULL) fail_msg("message '%s' lacks '%s'", err->msg, part);
}

/* Writes text to a fresh temporary file and returns its path (static storage, one at a time per slot). */
static const char *write_temp(int slot, const char *text) {
  static char paths[4][64];
  snprintf(paths[slot], sizeof paths[slot], "/tmp/test_opts_%d_%d.ini", (int)getpid(), slot);
  FILE *f = fopen(paths[slot], "w");
  assert_non_null(f);
  assert_true(fputs(text, f) >= 0);
  assert_int_equal(fclose(f), 0);
  return paths[slot];
}

/* ==== Types ==== */

static void test_defaults(void **state) {
  (void)state;
  T t;
  memset(&t, 0x5a, sizeof t);
  mt_opts_defaults(table, &t);
  assert_int_equal(t.n, 128);
  assert_int_equal(t.big, 0);
  assert_true(t.lr == 1e-3f);
  assert_true(t.beta == 0.9f);
  assert_true(t.b2 == -1.0f);
  assert_int_equal(t.small, 5);
  assert_int_equal(t.any, 0);
  assert_string_equal(t.name, "");
  assert_int_equal(t.act, 0);
  assert_int_equal(t.flag, 1);
  assert_int_equal(t.hidden.n, 2);
  assert_int_equal(t.hidden.v[0], 512);
  assert_int_equal(t.hidden.v[1], 256);
}

static void test_int(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  mt_opts_defaults(table, &t);
  assert_int_equal(set(&t, &err, "n", "12"), 0);
  assert_int_equal(t.n, 12);
  assert_int_equal(set(&t, &err, "n", " 7 "), 0);
  assert_int_equal(t.n, 7);
  assert_int_equal(set(&t, &err, "n", "1e3"), 0); /* exactly a whole number */
  assert_int_equal(t.n, 1000);
  assert_fails_with(set(&t, &err, "n", "12x"), &err, "--n: expected a whole number >= 1 or 'full', got '12x'");
  assert_fails_with(set(&t, &err, "n", ""), &err, "--n: expected a whole number >= 1 or 'full', got ''");
  assert_fails_containing(set(&t, &err, "n", "1.5"), &err, "got '1.5'");
  assert_fails_containing(set(&t, &err, "n", "0x10"), &err, "got '0x10'");
  assert_fails_containing(set(&t, &err, "n", "0"), &err, ">= 1");
  assert_fails_containing(set(&t, &err, "n", "3000000000"), &err, "got '3000000000'"); /* int overflow */
  assert_fails_containing(set(&t, &err, "n", "1e300"), &err, "got '1e300'");
  assert_fails_containing(set(&t, &err, "any", "inf"), &err, "expected a whole number, got 'inf'");
  assert_int_equal(t.n, 1000); /* failures leave the field alone */
  assert_int_equal(set(&t, &err, "n", "FULL"), 0);
  assert_int_equal(t.n, 0);
  assert_int_equal(set(&t, &err, "any", "-5"), 0);
  assert_int_equal(t.any, -5);
}

static void test_int64(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  mt_opts_defaults(table, &t);
  assert_int_equal(set(&t, &err, "big", "9223372036854775807"), 0);
  assert_true(t.big == INT64_MAX);
  assert_fails_containing(set(&t, &err, "big", "9223372036854775808"), &err, "expected a whole number >= 0");
  assert_fails_containing(set(&t, &err, "big", "-1"), &err, "got '-1'");
  assert_int_equal(set(&t, &err, "big", "5000000000"), 0);
  assert_true(t.big == 5000000000LL);
}

static void test_float(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  mt_opts_defaults(table, &t);
  assert_int_equal(set(&t, &err, "lr", "1e-3"), 0);
  assert_true(t.lr == 1e-3f);
  assert_int_equal(set(&t, &err, "lr", "0.5"), 0);
  assert_true(t.lr == 0.5f);
  assert_fails_with(set(&t, &err, "lr", "-1"), &err, "--lr: expected a number > 0, got '-1'");
  assert_fails_with(set(&t, &err, "lr", "0"), &err, "--lr: expected a number > 0, got '0'");
  assert_fails_containing(set(&t, &err, "lr", "nan"), &err, "got 'nan'");
  assert_fails_containing(set(&t, &err, "lr", "inf"), &err, "got 'inf'");
  assert_fails_containing(set(&t, &err, "lr", "1e39"), &err, "got '1e39'"); /* float overflow */
  assert_fails_containing(set(&t, &err, "lr", "0.1.2"), &err, "got '0.1.2'");
  assert_true(t.lr == 0.5f);
}

static void test_ranges(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  mt_opts_defaults(table, &t);
  /* [0, 1): 0 in, 1 out */
  assert_int_equal(set(&t, &err, "beta", "0"), 0);
  assert_int_equal(set(&t, &err, "beta", "0.999"), 0);
  assert_fails_with(set(&t, &err, "beta", "1"), &err, "--beta: expected a number in [0, 1), got '1'");
  assert_fails_containing(set(&t, &err, "beta", "-0.1"), &err, "in [0, 1)");
  /* a value that only rounds to 1 as a float is 1 */
  assert_fails_containing(set(&t, &err, "beta", "0.99999999999"), &err, "in [0, 1)");
  /* [1, 10]: both ends in */
  assert_int_equal(set(&t, &err, "small", "1"), 0);
  assert_int_equal(set(&t, &err, "small", "10"), 0);
  assert_int_equal(t.small, 10);
  assert_fails_with(set(&t, &err, "small", "11"), &err, "--small: expected a whole number in [1, 10], got '11'");
  assert_fails_containing(set(&t, &err, "small", "0"), &err, "[1, 10]");
  /* a word is exempt from the range */
  assert_int_equal(set(&t, &err, "beta-two", "auto"), 0);
  assert_true(t.b2 == -1.0f);
  assert_int_equal(set(&t, &err, "beta-two", "0.95"), 0);
  assert_true(t.b2 == 0.95f);
  assert_fails_with(set(&t, &err, "beta-two", "-1"), &err,
                    "--beta-two: expected a number in [0, 1) or 'auto', got '-1'");
}

static void test_string(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  mt_opts_defaults(table, &t);
  assert_int_equal(set(&t, &err, "name", "1234567"), 0);
  assert_string_equal(t.name, "1234567");
  assert_fails_with(set(&t, &err, "name", "12345678"), &err, "--name: value is too long (8 characters; at most 7)");
  assert_string_equal(t.name, "1234567");
  assert_int_equal(set(&t, &err, "name", ""), 0);
  assert_string_equal(t.name, "");
  /* What an INI file cannot hold is refused (fuzz_opts found a line break injecting options into the INI dump). */
  assert_fails_with(set(&t, &err, "name", "a\nlr=1"), &err,
                    "--name: the value has a line break, which a configuration file cannot hold");
  assert_fails_with(set(&t, &err, "name", " a"), &err,
                    "--name: the value has white space at its start or end, which a configuration file cannot hold");
  assert_fails_with(set(&t, &err, "name", "a\t"), &err,
                    "--name: the value has white space at its start or end, which a configuration file cannot hold");
  assert_fails_with(set(&t, &err, "name", "a ;b"), &err,
                    "--name: the value has a ';' at its start or after a space, which a configuration file cannot hold");
  assert_fails_with(set(&t, &err, "name", ";b"), &err,
                    "--name: the value has a ';' at its start or after a space, which a configuration file cannot hold");
  assert_string_equal(t.name, "");
  assert_int_equal(set(&t, &err, "name", "a;b c"), 0); /* inside a word, ';' and spaces are kept */
  assert_string_equal(t.name, "a;b c");
}

static void test_enum(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  mt_opts_defaults(table, &t);
  assert_int_equal(set(&t, &err, "activation", "tanh"), 0);
  assert_int_equal(t.act, 2);
  assert_int_equal(set(&t, &err, "activation", "Leaky-ReLU"), 0); /* case and -/_ forgiven */
  assert_int_equal(t.act, 1);
  assert_fails_with(set(&t, &err, "activation", "relux"), &err,
                    "--activation: unknown value 'relux'; expected one of relu, leaky_relu, tanh, sigmoid");
  assert_int_equal(t.act, 1);
}

static void test_bool(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  static const char *const on[] = {"true", "1", "yes", "on", "TRUE", "Yes"};
  static const char *const off[] = {"false", "0", "no", "off", "False", "OFF"};
  for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
    t.flag = 0;
    assert_int_equal(set(&t, &err, "flag", on[i]), 0);
    assert_int_equal(t.flag, 1);
    assert_int_equal(set(&t, &err, "flag", off[i]), 0);
    assert_int_equal(t.flag, 0);
  }
  assert_fails_with(set(&t, &err, "flag", "maybe"), &err,
                    "--flag: expected true or false (or yes/no, on/off, 1/0), got 'maybe'");
  /* the command-line forms */
  assert_int_equal(parse(&t, &err, "--no-flag", NULL), 0);
  assert_int_equal(t.flag, 0);
  assert_int_equal(parse(&t, &err, "--no-flag", "--flag", NULL), 0);
  assert_int_equal(t.flag, 1);
  assert_int_equal(parse(&t, &err, "--flag=off", NULL), 0);
  assert_int_equal(t.flag, 0);
  assert_int_equal(parse(&t, &err, "--flag", "positional", NULL), 0); /* a bare bool takes no value */
  assert_int_equal(t.flag, 1);
  assert_fails_containing(parse(&t, &err, "--no-flag=1", NULL), &err, "--no-flag takes no value");
  assert_fails_with(parse(&t, &err, "--flag", "false", NULL), &err,
                    "--flag takes no value; write --flag=false (or --flag / --no-flag)");
}

static void test_list(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  mt_opts_defaults(table, &t);
  assert_int_equal(set(&t, &err, "hidden", " 3 , 4 "), 0);
  assert_int_equal(t.hidden.n, 2);
  assert_int_equal(t.hidden.v[0], 3);
  assert_int_equal(t.hidden.v[1], 4);
  assert_int_equal(set(&t, &err, "hidden", ""), 0);
  assert_int_equal(t.hidden.n, 0);
  assert_int_equal(set(&t, &err, "hidden", "7"), 0);
  assert_int_equal(t.hidden.n, 1);
  assert_int_equal(set(&t, &err, "hidden", "none"), 0);
  assert_int_equal(t.hidden.n, 0);
  assert_int_equal(set(&t, &err, "hidden", "1000,1"), 0);
  assert_fails_with(set(&t, &err, "hidden", "512,0"), &err,
                    "--hidden: expected a comma-separated list of whole numbers in [1, 1000] or 'none', got '0' in "
                    "'512,0'");
  assert_fails_containing(set(&t, &err, "hidden", "1001"), &err, "got '1001'");
  assert_fails_containing(set(&t, &err, "hidden", "1,,2"), &err, "empty element in '1,,2'");
  assert_fails_containing(set(&t, &err, "hidden", "1,2,"), &err, "empty element");
  assert_fails_containing(set(&t, &err, "hidden", "1,x"), &err, "got 'x' in '1,x'");
  assert_int_equal(set(&t, &err, "hidden", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16"), 0);
  assert_int_equal(t.hidden.n, 16);
  assert_int_equal(t.hidden.v[15], 16);
  assert_fails_with(set(&t, &err, "hidden", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17"), &err,
                    "--hidden: at most 16 values allowed, got 17");
  assert_int_equal(t.hidden.n, 16); /* unchanged by the failure */
}

/* ==== The command line ==== */

static void test_forms(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  assert_int_equal(parse(&t, &err, "--lr", "0.25", "--n=64", "--activation=sigmoid", "--hidden", "10,20", NULL), 0);
  assert_true(t.lr == 0.25f);
  assert_int_equal(t.n, 64);
  assert_int_equal(t.act, 3);
  assert_int_equal(t.hidden.n, 2);
  assert_int_equal(parse(&t, &err, "--beta_two", "0.5", NULL), 0); /* '_' for '-' */
  assert_true(t.b2 == 0.5f);
  assert_int_equal(parse(&t, &err, "--lr", "0.1", "--lr", "0.2", NULL), 0); /* the last one wins */
  assert_true(t.lr == 0.2f);
  assert_int_equal(parse(&t, &err, "--name=", NULL), 0);
  assert_string_equal(t.name, "");
  assert_int_equal(parse(&t, &err, "--any", "-3", NULL), 0); /* a negative number is a value, not an option */
  assert_int_equal(t.any, -3);
}

static void test_missing_value(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  assert_fails_with(parse(&t, &err, "--lr", NULL), &err, "--lr: missing value (expected a number > 0)");
  assert_fails_with(parse(&t, &err, "--n", "--lr", "1", NULL), &err,
                    "--n: missing value (expected a whole number >= 1 or 'full')");
  assert_fails_containing(parse(&t, &err, "--activation", NULL), &err,
                          "--activation: missing value (expected one of relu, leaky_relu");
  assert_fails_containing(parse(&t, &err, "--config", NULL), &err, "--config: missing value");
}

static void test_unknown(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  assert_fails_with(parse(&t, &err, "--lrr", "1", NULL), &err, "unknown option --lrr; did you mean --lr?");
  assert_fails_with(parse(&t, &err, "--activaton", "relu", NULL), &err,
                    "unknown option --activaton; did you mean --activation?");
  assert_fails_with(parse(&t, &err, "--hid", "1", NULL), &err, "unknown option --hid; did you mean --hidden?");
  assert_fails_with(parse(&t, &err, "--no-flg", NULL), &err, "unknown option --no-flg; did you mean --no-flag?");
  assert_fails_with(parse(&t, &err, "--zzzzzzzz", NULL), &err, "unknown option --zzzzzzzz");
  assert_fails_with(parse(&t, &err, "--no-lr", NULL), &err, "unknown option --no-lr");
  /* names brought from PyTorch scripts get mpitrain's name, when this table has it */
  assert_fails_with(parse(&t, &err, "--learning-rate", "1", NULL), &err,
                    "unknown option --learning-rate; mpitrain calls it --lr");
  assert_fails_with(parse(&t, &err, "--learning_rate=1", NULL), &err,
                    "unknown option --learning_rate; mpitrain calls it --lr");
  assert_fails_containing(parse(&t, &err, "-learning-rate", "1", NULL), &err, "mpitrain calls it --lr");
  assert_fails_with(parse(&t, &err, "--batch-size", "1", NULL), &err, "unknown option --batch-size"); /* no --batch */
  assert_fails_containing(parse(&t, &err, "-lr", "1", NULL), &err, "unknown option -lr");
  assert_fails_containing(parse(&t, &err, "-lr", "1", NULL), &err, "did you mean --lr?");
  /* --config is only an option where the caller allows it */
  OptsResult res;
  char *argv[] = {(char *)"cmd", (char *)"--config", (char *)"x.ini", NULL};
  mt_error_clear(&err);
  assert_int_equal(mt_opts_parse(table, &t, 3, argv, 1, 0, &res, &err), -1);
  assert_string_equal(err.msg, "unknown option --config");
}

static void test_positional_and_help(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  OptsResult res;
  assert_int_equal(parse_res(&t, &err, &res, "a.h5", "--lr", "0.5", "b.h5", "-", "--", "--lr", "-x", NULL), 0);
  assert_int_equal(res.help, 0);
  assert_int_equal(res.n_positional, 5);
  assert_string_equal(res.positional[0], "a.h5");
  assert_string_equal(res.positional[1], "b.h5");
  assert_string_equal(res.positional[2], "-");
  assert_string_equal(res.positional[3], "--lr");
  assert_string_equal(res.positional[4], "-x");
  assert_true(t.lr == 0.5f);
  assert_string_equal(res.config_path, "");

  /* --help wins over anything wrong on the same line, and leaves the defaults in place */
  assert_int_equal(parse_res(&t, &err, &res, "--lr", "-1", "--bogus", "-h", NULL), 0);
  assert_int_equal(res.help, 1);
  assert_false(err.failed);
  assert_true(t.lr == 1e-3f);
  assert_int_equal(parse_res(&t, &err, &res, "--help", NULL), 0);
  assert_int_equal(res.help, 1);
  /* ... but not when it is an option's value or after "--" */
  assert_int_equal(parse_res(&t, &err, &res, "--", "--help", NULL), 0);
  assert_int_equal(res.help, 0);
  assert_int_equal(res.n_positional, 1);
}

/* ==== INI files ==== */

static void test_ini_good(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  OptsResult res;
  const char *path = write_temp(0,
                                "; a comment\n"
                                "# another\n"
                                "n = 32\n"
                                "[model]\n"
                                "  hidden = 100, 50   ; indented, with an inline comment\n"
                                "activation: tanh\n"
                                "beta_two = 0.99\n"
                                "Flag = no\n"
                                "\n"
                                "[anything]\n"
                                "name = abc\n"
                                "lr = 0.5\n");
  assert_int_equal(parse_res(&t, &err, &res, "--config", path, NULL), 0);
  assert_string_equal(res.config_path, path);
  assert_int_equal(t.n, 32);
  assert_int_equal(t.hidden.n, 2);
  assert_int_equal(t.hidden.v[0], 100);
  assert_int_equal(t.hidden.v[1], 50);
  assert_int_equal(t.act, 2);
  assert_true(t.b2 == 0.99f);
  assert_int_equal(t.flag, 0);
  assert_string_equal(t.name, "abc");
  assert_true(t.lr == 0.5f);
  assert_int_equal(t.small, 5); /* untouched: default */

  /* the command line wins, wherever --config is on it */
  assert_int_equal(parse(&t, &err, "--lr", "0.125", "--config", path, "--flag", NULL), 0);
  assert_true(t.lr == 0.125f);
  assert_int_equal(t.flag, 1);
  assert_int_equal(t.n, 32);
  char arg[128];
  snprintf(arg, sizeof arg, "--config=%s", path);
  assert_int_equal(parse(&t, &err, arg, "--n", "full", NULL), 0);
  assert_int_equal(t.n, 0);
  assert_true(t.lr == 0.5f);
  remove(path);
}

static void test_ini_errors(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  char expected[256];
  const char *path = write_temp(1, "n = 4\n[s]\nlrr = 0.1\n");
  snprintf(expected, sizeof expected, "%s:3: unknown option 'lrr'; did you mean 'lr'?", path);
  assert_fails_with(parse(&t, &err, "--config", path, NULL), &err, expected);
  path = write_temp(1, "[optim]\nlearning_rate = 0.1\n");
  snprintf(expected, sizeof expected, "%s:2: unknown option 'learning_rate'; mpitrain calls it 'lr'", path);
  assert_fails_with(parse(&t, &err, "--config", path, NULL), &err, expected);

  path = write_temp(1, "n = 4\nlr = -1\nbogus = 1\n");
  snprintf(expected, sizeof expected, "%s:2: lr: expected a number > 0, got '-1'", path);
  assert_fails_with(parse(&t, &err, "--config", path, NULL), &err, expected);

  path = write_temp(1, "n = 4\njust some words\nlr = -1\n");
  snprintf(expected, sizeof expected, "%s:2: expected 'key = value', a '[section]' header or a comment", path);
  assert_fails_with(parse(&t, &err, "--config", path, NULL), &err, expected);

  path = write_temp(1, "[unclosed\nn = 4\n");
  snprintf(expected, sizeof expected, "%s:1:", path);
  assert_fails_containing(parse(&t, &err, "--config", path, NULL), &err, expected);

  char big[400];
  memset(big, 'x', sizeof big);
  memcpy(big, "name = ", 7);
  big[sizeof big - 2] = '\n';
  big[sizeof big - 1] = '\0';
  path = write_temp(1, big);
  snprintf(expected, sizeof expected, "%s:1: line is too long", path);
  assert_fails_containing(parse(&t, &err, "--config", path, NULL), &err, expected);
  remove(path);

  assert_fails_with(parse(&t, &err, "--config", "/nonexistent/dir/x.ini", NULL), &err,
                    "cannot open config file '/nonexistent/dir/x.ini': No such file or directory");
  /* not regular files: refused by stat, before an open that could block (a FIFO) or never end (a device) */
  assert_fails_with(parse(&t, &err, "--config", "/tmp", NULL), &err, "--config /tmp: is a directory, not a regular file");
  assert_fails_with(parse(&t, &err, "--config", "/dev/zero", NULL), &err,
                    "--config /dev/zero: is a character device, not a regular file");
  /* not text: refused at once with bounded memory (getline grew its buffer through all of a binary file) */
  path = write_temp(1, "");
  FILE *bin = fopen(path, "wb");
  assert_non_null(bin);
  assert_int_equal(fwrite("n = 4\n\0\0\0\n", 1, 10, bin), 10);
  assert_int_equal(fclose(bin), 0);
  snprintf(expected, sizeof expected, "%s:2: the line holds a NUL byte; expected a text file", path);
  assert_fails_with(parse(&t, &err, "--config", path, NULL), &err, expected);
  remove(path);
  /* a bad config is reported before (not instead of) the command line being parsed */
  path = write_temp(1, "lr = 0.1\n");
  assert_fails_containing(parse(&t, &err, "--config", path, "--lr", "x", NULL), &err, "--lr: expected");
  remove(path);
}

/* INI text from memory takes the file's path: same keys, same FILE:LINE messages (here NAME:LINE). */
static void test_ini_string(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  mt_opts_defaults(table, &t);
  static const char text[] = "n = 32\n[model]\n  hidden = 7,6\nflag = off"; /* no final newline */
  assert_int_equal(mt_opts_parse_ini_string(table, &t, text, strlen(text), "mem.ini", &err), 0);
  assert_int_equal(t.n, 32);
  assert_int_equal(t.hidden.n, 2);
  assert_int_equal(t.hidden.v[1], 6);
  assert_int_equal(t.flag, 0);
  assert_true(t.lr == 1e-3f); /* untouched */
  /* only len bytes count: the rest of the buffer is not read */
  assert_int_equal(mt_opts_parse_ini_string(table, &t, "small = 3\nsmall = 99\n", 10, "mem.ini", &err), 0);
  assert_int_equal(t.small, 3);
  assert_int_equal(mt_opts_parse_ini_string(table, &t, "", 0, "mem.ini", &err), 0);
  static const char bad[] = "n = 4\nlr = -1\n";
  assert_fails_with(mt_opts_parse_ini_string(table, &t, bad, strlen(bad), "mem.ini", &err), &err,
                    "mem.ini:2: lr: expected a number > 0, got '-1'");
}

/* A key given twice (sections do not make keys distinct): the later value wins, with a warning naming both lines,
 * written to the stream mt_opts_set_warnings names (mpitrain: rank 0's stderr; NULL: nowhere). */
static void test_ini_twice(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  char *buf = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&buf, &len);
  assert_non_null(mem);
  mt_opts_set_warnings(mem);
  mt_opts_defaults(table, &t);
  static const char text[] = "n = 32\n[a]\nlr = 0.1\nsmall = 2\n\n[b]\nlr = 0.01\nbeta_two = 0.5\nbeta-two = 0.25\n"
                             "LR = 0.02\n";
  assert_int_equal(mt_opts_parse_ini_string(table, &t, text, strlen(text), "x.ini", &err), 0);
  assert_true(t.lr == 0.02f);
  assert_true(t.b2 == 0.25f);
  assert_int_equal(fflush(mem), 0);
  assert_string_equal(buf, "mpitrain: warning: x.ini:7: 'lr' set again (first at line 3); using the later value 0.01\n"
                           "mpitrain: warning: x.ini:9: 'beta-two' set again (first at line 8); using the later value "
                           "0.25\n"
                           "mpitrain: warning: x.ini:10: 'LR' set again (first at line 3); using the later value "
                           "0.02\n");
  /* a file read once more starts afresh; the command line overriding the file is no repetition */
  rewind(mem);
  len = 0;
  mt_opts_defaults(table, &t);
  static const char once[] = "lr = 0.1\nn = 4\n";
  assert_int_equal(mt_opts_parse_ini_string(table, &t, once, strlen(once), "x.ini", &err), 0);
  assert_int_equal(mt_opts_parse_ini_string(table, &t, once, strlen(once), "x.ini", &err), 0);
  assert_int_equal(fflush(mem), 0);
  assert_int_equal(len, 0);
  /* NULL: no warnings at all (every rank but 0) */
  mt_opts_set_warnings(NULL);
  static const char twice[] = "lr = 0.1\nlr = 0.2\n";
  assert_int_equal(mt_opts_parse_ini_string(table, &t, twice, strlen(twice), "x.ini", &err), 0);
  assert_true(t.lr == 0.2f);
  assert_int_equal(fflush(mem), 0);
  assert_int_equal(len, 0);
  mt_opts_set_warnings(stderr);
  assert_int_equal(fclose(mem), 0);
  free(buf);
}

/* ==== Output ==== */

static char *read_all(FILE *f) {
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  long n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  char *s = malloc((size_t)n + 1);
  assert_non_null(s);
  assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
  s[n] = '\0';
  return s;
}

static void test_format_value(void **state) {
  (void)state;
  T t;
  MtError err = {0};
  char buf[64];
  mt_opts_defaults(table, &t);
  mt_opts_format_value(&table[2], &t, buf, sizeof buf);
  assert_string_equal(buf, "0.001");
  assert_int_equal(set(&t, &err, "lr", "1e-8"), 0);
  mt_opts_format_value(&table[2], &t, buf, sizeof buf);
  assert_string_equal(buf, "1e-8");
  mt_opts_format_value(&table[4], &t, buf, sizeof buf);
  assert_string_equal(buf, "auto");
  mt_opts_format_value(&table[0], &t, buf, sizeof buf);
  assert_string_equal(buf, "128");
  t.n = 0;
  mt_opts_format_value(&table[0], &t, buf, sizeof buf);
  assert_string_equal(buf, "full");
  mt_opts_format_value(&table[10], &t, buf, sizeof buf);
  assert_string_equal(buf, "512,256");
  t.hidden.n = 0;
  mt_opts_format_value(&table[10], &t, buf, sizeof buf);
  assert_string_equal(buf, "none");
  mt_opts_format_value(&table[8], &t, buf, sizeof buf);
  assert_string_equal(buf, "relu");
  mt_opts_format_value(&table[9], &t, buf, sizeof buf);
  assert_string_equal(buf, "true");
}

/* Floats print in the shortest form that reads back to the same float, the way people write them: 10, not 1e1
 * or 10.000000 (a checkpoint's stored configuration is read by people too). */
static void test_format_float(void **state) {
  (void)state;
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"10", "10"},          {"600", "600"},   {"0.1", "0.1"},     {"5e-4", "0.0005"}, {"1e-8", "1e-8"},
      {"3.3333333", "3.3333333"}, {"1e-5", "1e-5"}, {"2.5", "2.5"}, {"100000", "100000"}, {"1e6", "1e6"},
      {"2.5e7", "2.5e7"},    {"0.999", "0.999"}, {"0.0001", "0.0001"}, {"123456.7", "123456.7"},
      {"0.333333343", "0.33333334"}, {"16777216", "16777216"}, {"1e30", "1e30"}, {"0", "0"},
  };
  T t;
  char buf[64];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mt_opts_defaults(table, &t);
    float v = strtof(cases[i].in, NULL);
    t.lr = v;
    mt_opts_format_value(&table[2], &t, buf, sizeof buf);
    if (strcmp(buf, cases[i].out) != 0) fail_msg("%s printed as '%s', expected '%s'", cases[i].in, buf, cases[i].out);
    assert_true(strtof(buf, NULL) == v);
  }
  /* every float of a sweep of magnitudes reads back bit-identically */
  for (int e = -40; e <= 38; e++)
    for (int m = 1; m < 100; m += 7) {
      float v = (float)(m * pow(10.0, e));
      if (!isfinite(v)) continue;
      t.lr = v;
      mt_opts_format_value(&table[2], &t, buf, sizeof buf);
      if (strtof(buf, NULL) != v) fail_msg("%.9g printed as '%s', which reads back as %.9g", v, buf, strtof(buf, NULL));
    }
}

static void test_ini_round_trip(void **state) {
  (void)state;
  T a, b;
  MtError err = {0};
  memset(&a, 0, sizeof a);
  mt_opts_defaults(table, &a);
  assert_int_equal(set(&a, &err, "n", "full"), 0);
  assert_int_equal(set(&a, &err, "big", "123456789012"), 0);
  assert_int_equal(set(&a, &err, "lr", "0.1"), 0); /* not exact in binary: must still come back bit-identical */
  assert_int_equal(set(&a, &err, "beta", "0.333333343"), 0);
  assert_int_equal(set(&a, &err, "beta-two", "0.95"), 0);
  assert_int_equal(set(&a, &err, "any", "-7"), 0);
  assert_int_equal(set(&a, &err, "name", "x y"), 0);
  assert_int_equal(set(&a, &err, "activation", "sigmoid"), 0);
  assert_int_equal(set(&a, &err, "flag", "false"), 0);
  assert_int_equal(set(&a, &err, "hidden", "9,8,7"), 0);

  char path[64];
  snprintf(path, sizeof path, "/tmp/test_opts_rt_%d.ini", (int)getpid());
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  mt_opts_write_ini(f, table, &a);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(parse(&b, &err, "--config", path, NULL), 0);
  assert_memory_equal(&a, &b, sizeof a);

  /* and the empty list / defaults round trip as well */
  memset(&a, 0, sizeof a);
  mt_opts_defaults(table, &a);
  memset(&a.hidden, 0, sizeof a.hidden); /* as the parser leaves an empty list: unused slots zero */
  f = fopen(path, "w");
  assert_non_null(f);
  mt_opts_write_ini(f, table, &a);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(parse(&b, &err, "--config", path, NULL), 0);
  assert_memory_equal(&a, &b, sizeof a);

  f = fopen(path, "r");
  assert_non_null(f);
  char *text = read_all(f);
  fclose(f);
  assert_non_null(strstr(text, "[first]\nn = 128\n"));
  assert_non_null(strstr(text, "\n[second]\nsmall = 5\n"));
  assert_non_null(strstr(text, "\nlr = 0.001\n"));
  assert_non_null(strstr(text, "\nhidden = none\n"));
  free(text);
  remove(path);
}

static void test_help(void **state) {
  (void)state;
  FILE *f = tmpfile();
  assert_non_null(f);
  mt_opts_print_help(f, "cmd [options]", "Does things.", table);
  char *s = read_all(f);
  fclose(f);
  assert_true(strncmp(s, "usage: cmd [options]\n\nDoes things.\n", 35) == 0);
  assert_non_null(strstr(s, "\nfirst:\n  --n N "));
  assert_non_null(strstr(s, "\nsecond:\n"));
  assert_non_null(strstr(s, "batch (default: 128)\n"));
  assert_non_null(strstr(s, "learning rate (default: 1e-3)\n"));
  assert_non_null(strstr(s, "--activation relu|leaky_relu|tanh|sigmoid"));
  assert_non_null(strstr(s, "--[no-]flag"));
  assert_non_null(strstr(s, "a switch (default: on)"));
  assert_non_null(strstr(s, "-h, --help"));
  assert_null(strstr(s, "a short name (default")); /* an empty string has no default worth showing */
  /* help texts are aligned in one column */
  const char *l1 = strstr(s, "  --n N"), *h1 = strstr(l1, "batch");
  const char *l2 = strstr(s, "  --lr X"), *h2 = strstr(l2, "learning rate");
  assert_int_equal(h1 - l1, h2 - l2);
  assert_non_null(strstr(s, "\ngeneral:\n  -h, --help")); /* the table has sections: general options first */
  assert_null(strstr(s, "--config"));
  free(s);

  f = tmpfile();
  assert_non_null(f);
  mt_opts_print_help_ex(f, "cmd", NULL, table, 1);
  s = read_all(f);
  fclose(f);
  assert_non_null(strstr(s, "  --config FILE "));
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),      cmocka_unit_test(test_int),
      cmocka_unit_test(test_int64),         cmocka_unit_test(test_float),
      cmocka_unit_test(test_ranges),        cmocka_unit_test(test_string),
      cmocka_unit_test(test_enum),          cmocka_unit_test(test_bool),
      cmocka_unit_test(test_list),          cmocka_unit_test(test_forms),
      cmocka_unit_test(test_missing_value), cmocka_unit_test(test_unknown),
      cmocka_unit_test(test_positional_and_help), cmocka_unit_test(test_ini_good),
      cmocka_unit_test(test_ini_errors),    cmocka_unit_test(test_ini_string),
      cmocka_unit_test(test_ini_twice),
      cmocka_unit_test(test_format_value),  cmocka_unit_test(test_format_float),
      cmocka_unit_test(test_ini_round_trip), cmocka_unit_test(test_help),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
