/*
 * version.c -- what the library says about its version, and how it reads
 * the public structs that may grow from one version to the next.
 *
 * Growing structs.  struct evexec_pool_config and struct evexec_run_opts
 * start with a `size` field: the size of the struct the caller was
 * compiled with (EVEXEC_POOL_CONFIG_INIT and EVEXEC_RUN_OPTS_INIT set it).
 * The library copies what the caller has into its own zeroed copy, so a
 * field added later reads as zero for older callers.  size 0 stands for
 * the 1.0 layout, so zero-filled structs keep working.  A caller built
 * against a newer header (size larger than ours) is accepted only if the
 * bytes we do not know are zero: a request we cannot honour is EINVAL,
 * never silently ignored.
 *
 * Threads: any; nothing here has state.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <string.h>

#include "evexec-internal.h"

EVEXEC_API const char *evexec_version(void)
{
    return EVEXEC_VERSION_STRING;
}

EVEXEC_API unsigned long evexec_version_number(void)
{
    return EVEXEC_VERSION_NUMBER;
}

int evexec__read_struct(void *out, size_t ours, const void *in, size_t first_size)
{
    memset(out, 0, ours);
    if (!in)
        return 0;
    size_t theirs;
    memcpy(&theirs, in, sizeof theirs);     /* `size` comes first */
    if (theirs == 0)
        theirs = first_size;
    if (theirs < sizeof(size_t))
        return EINVAL;
    if (theirs > ours) {
        const unsigned char *extra = (const unsigned char *)in + ours;
        for (size_t i = 0; i < theirs - ours; i++)
            if (extra[i] != 0)
                return EINVAL;
        theirs = ours;
    }
    memcpy(out, in, theirs);
    return 0;
}
