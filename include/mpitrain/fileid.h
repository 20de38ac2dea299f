/* fileid.h — which file a path names, by device and inode (stat), whatever the spelling: so that no output of a run
 * can overwrite one of its inputs through a symbolic or hard link, `dir/..` or `./`, and so that an input that is
 * not a regular file (a FIFO, whose open(2) for reading blocks until a writer comes, a device, a directory) is
 * refused before anything opens it. Not collective: callers agree on the outcome. */
#ifndef MPITRAIN_FILEID_H
#define MPITRAIN_FILEID_H

#include "mpitrain/error.h"

/* One file a run reads or writes, as the user named it. */
typedef struct FileRole {
  const char *role;  /* how the user gave it: "--data", "--log", "checkpoint" */
  const char *path;  /* NULL or "" = not given (skipped) */
  int replaced;      /* outputs: written under a temporary name and renamed over path, so an existing path must be a
                      * regular file (a rename would put a file in the place of a device, a FIFO or a link) */
} FileRole;

/* 1 if a and b name the same existing file (links followed), else 0 (also when either does not exist). */
int mt_fileid_same(const char *a, const char *b);

/* 0 when path is a regular file (links followed), or cannot be stat'ed at all: the caller's own open then says why
 * in its words ("No such file or directory"). -1 with "ROLE PATH: is a FIFO, not a regular file" (or a directory,
 * a character device, ...) when it exists and is something else; role may be NULL (then "PATH: is ..."). */
int mt_fileid_regular(const char *path, const char *role, MtError *err);

/* Every output against every input: -1 with "--log m.csv is the same file as --data d.h5 (through a link); an
 * output must not overwrite an input" when one is the other, and when an existing output is a directory (or, if
 * replaced, not a regular file). An output that does not exist yet is no input. Inputs are not checked for being
 * regular files here (mt_fileid_regular does that where they are opened). */
int mt_fileid_check(const FileRole *inputs, int n_inputs, const FileRole *outputs, int n_outputs, MtError *err);

#endif
