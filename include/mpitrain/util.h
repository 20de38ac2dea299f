/* util.h — small things every part uses, written once. */
#ifndef MPITRAIN_UTIL_H
#define MPITRAIN_UTIL_H

#include <stdint.h>

/* Part k of n items cut into `parts` consecutive parts as even as possible, the first n % parts taking one more:
 * [*lo, *hi). The one split of rows over ranks (a batch, an evaluation, deterministic groups) and of rows over
 * shards, so every rank and every file agrees on who holds what. */
void mt_even_split(int64_t n, int k, int parts, int64_t *lo, int64_t *hi);

/* Seconds on a monotonic clock (wall time that never jumps back). The trainer times its steps with comm_wtime
 * instead, which SimGrid's simulated clock replaces. */
double mt_now(void);

/* s ends with suffix (ignore_case: ASCII letters compared without case). */
int mt_has_suffix(const char *s, const char *suffix, int ignore_case);

/* An enum's names: each module keeps one array, in enum order and NULL-terminated (option tables use the same
 * array as their choices). mt_enum_name: names[k], or "?" when k is not in [0, count). mt_enum_from_name: the index
 * of s in names, or -1. */
const char *mt_enum_name(const char *const *names, int count, int k);
int mt_enum_from_name(const char *const *names, const char *s);

#endif
