/* test_fileid.c — files compared by device and inode (a symbolic link, a hard link, `dir/..` and `./` all name the
 * same file; a missing one names none), the kinds of file an input must not be, and mt_fileid_check's messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "mpitrain/fileid.h"

static char dir[64], file[96], other[96], sym[96], hard[96], dotdot[128], fifo[96], sub[96];

static void touch(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_true(fputs(text, f) >= 0);
  assert_int_equal(fclose(f), 0);
}

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/test_fileid_%d", (int)getpid());
  snprintf(file, sizeof file, "%s/a.h5", dir);
  snprintf(other, sizeof other, "%s/b.h5", dir);
  snprintf(sym, sizeof sym, "%s/sym.csv", dir);
  snprintf(hard, sizeof hard, "%s/hard.csv", dir);
  snprintf(sub, sizeof sub, "%s/sub", dir);
  snprintf(dotdot, sizeof dotdot, "%s/sub/../a.h5", dir);
  snprintf(fifo, sizeof fifo, "%s/fifo", dir);
  if (mkdir(dir, 0700) != 0 || mkdir(sub, 0700) != 0) return -1;
  touch(file, "a");
  touch(other, "a"); /* the same bytes, another file */
  if (symlink("a.h5", sym) != 0 || link(file, hard) != 0 || mkfifo(fifo, 0600) != 0) return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  const char *files[] = {file, other, sym, hard, fifo};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(files[i]);
  rmdir(sub);
  rmdir(dir);
  return 0;
}

static void test_same(void **state) {
  (void)state;
  assert_true(mt_fileid_same(file, file));
  assert_true(mt_fileid_same(file, sym));
  assert_true(mt_fileid_same(sym, file));
  assert_true(mt_fileid_same(file, hard));
  assert_true(mt_fileid_same(file, dotdot));
  assert_false(mt_fileid_same(file, other));
  char missing[128];
  snprintf(missing, sizeof missing, "%s/missing.h5", dir);
  assert_false(mt_fileid_same(missing, missing)); /* a file that does not exist is none of the inputs */
  assert_false(mt_fileid_same(file, ""));
  assert_false(mt_fileid_same(NULL, file));
}

static void test_regular(void **state) {
  (void)state;
  MtError err = {0};
  assert_int_equal(mt_fileid_regular(file, "--data", &err), 0);
  assert_int_equal(mt_fileid_regular(sym, "--data", &err), 0); /* the link is followed */
  assert_int_equal(mt_fileid_regular("/nonexistent/x.h5", "--data", &err), 0); /* the caller's open says why */
  assert_int_equal(mt_fileid_regular("", "--data", &err), 0);
  assert_false(err.failed);
  char want[256];
  snprintf(want, sizeof want, "--data %s: is a FIFO, not a regular file", fifo);
  assert_int_equal(mt_fileid_regular(fifo, "--data", &err), -1);
  assert_string_equal(err.msg, want);
  mt_error_clear(&err);
  snprintf(want, sizeof want, "%s: is a directory, not a regular file", dir);
  assert_int_equal(mt_fileid_regular(dir, NULL, &err), -1);
  assert_string_equal(err.msg, want);
  mt_error_clear(&err);
  assert_int_equal(mt_fileid_regular("/dev/null", "--config", &err), -1);
  assert_string_equal(err.msg, "--config /dev/null: is a character device, not a regular file");
}

static void test_check(void **state) {
  (void)state;
  MtError err = {0};
  FileRole in[] = {{.role = "--config", .path = ""}, {.role = "--data", .path = file}};
  char want[512];
  struct {
    const char *out, *how;
  } cases[] = {{file, ""}, {sym, " (through a link)"}, {hard, " (through a hard link)"}, {dotdot, " (by another path)"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    FileRole out = {.role = "--log", .path = cases[i].out};
    mt_error_clear(&err);
    assert_int_equal(mt_fileid_check(in, 2, &out, 1, &err), -1);
    snprintf(want, sizeof want, "--log %s is the same file as --data %s%s; an output must not overwrite an input",
             cases[i].out, file, cases[i].how);
    assert_string_equal(err.msg, want);
  }
  /* another file, one that does not exist yet, none at all: fine */
  char fresh[128];
  snprintf(fresh, sizeof fresh, "%s/new.csv", dir);
  FileRole ok[] = {{.role = "--log", .path = other}, {.role = "--out", .path = fresh, .replaced = 1},
                   {.role = "--log", .path = NULL}};
  mt_error_clear(&err);
  assert_int_equal(mt_fileid_check(in, 2, ok, 3, &err), 0);
  /* a directory is never an output; a device may be written in place, not replaced by a rename */
  FileRole d = {.role = "--log", .path = dir};
  assert_int_equal(mt_fileid_check(in, 2, &d, 1, &err), -1);
  snprintf(want, sizeof want, "--log %s: is a directory; expected a file name", dir);
  assert_string_equal(err.msg, want);
  FileRole dev = {.role = "--log", .path = "/dev/null"};
  mt_error_clear(&err);
  assert_int_equal(mt_fileid_check(in, 2, &dev, 1, &err), 0);
  dev.role = "--out";
  dev.replaced = 1;
  assert_int_equal(mt_fileid_check(in, 2, &dev, 1, &err), -1);
  assert_string_equal(err.msg, "--out /dev/null: is a character device; expected a file name (it is written "
                               "elsewhere and renamed into place)");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same),
      cmocka_unit_test(test_regular),
      cmocka_unit_test(test_check),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
