// libhdf5 (Debian libhdf5-dev, serial build). Its type and property-list constants are
// macros over globals that Swift cannot import; CHDF5Shim wraps the calls that need them.
#include <hdf5/serial/hdf5.h>
