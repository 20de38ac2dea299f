/* probe.c — compiled by tests/layout/layout.cmake as if it were a source of one part (src/<part>/), with exactly the
 * include paths and definitions that part's sources get. PROBE_HEADER is the header it tries to include; the
 * layout test expects the compile to fail where the part may not use it (mpi.h, hdf5.h in compute; hdf5.h in comm)
 * and to succeed where it may (so a failure means the layout, not a broken probe). */
#include PROBE_HEADER

int layout_probe(void);
int layout_probe(void) { return 0; }
