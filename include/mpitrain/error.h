/* error.h — how every module reports a failure a user can act on.
 *
 * Functions that can fail return 0 on success and -1 on failure, after writing one line into an MtError:
 * what failed, naming the file / option / rank, and what was expected. Only the first message is kept, so the
 * root cause survives cleanup paths. Nothing here prints or exits: the caller (usually mt_comm_agree) decides. */
#ifndef MPITRAIN_ERROR_H
#define MPITRAIN_ERROR_H

#include <stddef.h>

#define MT_ERROR_MSG 512

typedef struct MtError {
  int failed;               /* 0 until the first mt_fail */
  char msg[MT_ERROR_MSG];   /* one line, no trailing newline */
} MtError;

#if defined(__GNUC__)
#define MT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MT_PRINTF(a, b)
#endif

/* Records the message (unless one is already recorded) and returns -1, so `return mt_fail(err, ...)` reads well. */
int mt_fail(MtError *err, const char *fmt, ...) MT_PRINTF(2, 3);
void mt_error_clear(MtError *err);

/* Allocation that reports what it was for. 64-byte aligned, zero-filled. Free with mt_free. */
void *mt_alloc(size_t bytes, const char *what, MtError *err);
void mt_free(void *p);

#endif
