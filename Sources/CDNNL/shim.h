// oneDNN C API (Debian libdnnl-dev ships no pkg-config file; link dnnl directly).
#include <oneapi/dnnl/dnnl.h>
