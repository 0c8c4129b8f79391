// OpenBLAS CBLAS API. Debian installs the OpenMP build's header here
// (libopenblas-openmp-dev), which also declares openblas_set_num_threads.
#include <cblas.h>
