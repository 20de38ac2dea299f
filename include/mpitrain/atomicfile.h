/* atomicfile.h — replacing a file so that a crash leaves either the old one or the whole new one, never a part.
 *
 * The new contents are written under a temporary name in the same directory (same file system, so rename(2) is
 * atomic), then mt_atomic_commit makes them durable and gives them the final name. Checkpoints, dataset files,
 * predictions and a resumed run's metrics log are all written this way. */
#ifndef MPITRAIN_ATOMICFILE_H
#define MPITRAIN_ATOMICFILE_H

#include <stddef.h>

/* ".NAME.tmp.<host>.<pid>" in the directory of path, into out [n]. 0, or -1 if it does not fit. The writer's host
 * and pid in the name let a leftover be traced to its writer (and a checkpoint directory's cleaner tell whether
 * that writer still lives: mt_checkpoint_clean_temporaries). */
int mt_atomic_temp_name(const char *path, char *out, size_t n);
/* This host's name, usable in a file name ('/' and newlines replaced). */
void mt_atomic_host_name(char *out, size_t n);

/* tmp (complete and closed, or at least flushed) becomes path: fsync'ed, renamed over path, and the directory
 * fsync'ed so the rename survives a power cut (best effort: some file systems refuse fsync on directories).
 * 0, or -1 with errno set; tmp is then left for the caller to remove. */
int mt_atomic_commit(const char *tmp, const char *path);

#endif
