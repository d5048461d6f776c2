/* evexec-io.h -- placeholder: offloaded name lookups and file I/O.
 * Included by evexec.h; do not include directly. */
#ifndef EVEXEC_IO_H
#define EVEXEC_IO_H
#endif
