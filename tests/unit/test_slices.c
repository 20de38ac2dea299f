/* test_slices.c — mt_even_split: how a global batch (an evaluation, deterministic groups, shards) is split over ranks: contiguous, complete, balanced, first ranks larger. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mpitrain/util.h"

static void test_slices_cover_batch(void **s) {
  (void)s;
  for (int64_t B = 1; B <= 70; B++) {
    for (int N = 1; N <= 9; N++) {
      int64_t next = 0, lo, hi, first_size = -1;
      for (int r = 0; r < N; r++) {
        mt_even_split(B, r, N, &lo, &hi);
        assert_int_equal(lo, next); /* contiguous, in rank order: nothing dropped or duplicated */
        assert_true(hi >= lo);
        int64_t size = hi - lo;
        if (first_size < 0) first_size = size;
        assert_true(first_size - size == 0 || first_size - size == 1); /* balanced, remainder on the first ranks */
        assert_true(size == B / N || size == B / N + 1);
        next = hi;
      }
      assert_int_equal(next, B);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_slices_cover_batch)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
