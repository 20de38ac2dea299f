/* tools.h — the dataset subcommands: convert, synth, info. Each returns the process exit code and has --help. */
#ifndef MPITRAIN_TOOLS_H
#define MPITRAIN_TOOLS_H

#include "mpitrain/comm.h"

int tool_convert(Comm *c, int argc, char **argv);  /* argv[0] = "convert" */
int tool_synth(Comm *c, int argc, char **argv);
int tool_info(Comm *c, int argc, char **argv);

#endif
