/*
 * test_error.c -- evexec_strerror() and evexec_version().
 *
 * evexec_strerror() must name every code the library returns, errno values
 * and getaddrinfo's EAI_* codes alike, each with its own text, and give
 * "unknown error" for anything else.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <netdb.h>
#include <string.h>

#include "evexec.h"

/* Every errno value the public header documents as a return or errno. */
static const int errno_codes[] = {
    EINVAL, ENOMEM, EAGAIN, ESHUTDOWN, ECANCELED, EALREADY, EDEADLK,
    EINPROGRESS, ETIMEDOUT, EIO, EMFILE, ENFILE,
    /* and the usual ones a job or file call returns */
    ENOENT, EACCES, EEXIST, EPERM, EBADF, ENOSPC, EINTR, ENOTDIR, EISDIR,
};

/* getaddrinfo's codes (EAI_SYSTEM is turned into its errno, but is still
 * named in case a caller passes it). */
static const int eai_codes[] = {
    EAI_AGAIN, EAI_BADFLAGS, EAI_FAIL, EAI_FAMILY, EAI_MEMORY, EAI_NONAME,
    EAI_SERVICE, EAI_SOCKTYPE, EAI_SYSTEM, EAI_OVERFLOW,
#ifdef EAI_NODATA
    EAI_NODATA,
#endif
#ifdef EAI_ADDRFAMILY
    EAI_ADDRFAMILY,
#endif
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void assert_named(int code)
{
    const char *s = evexec_strerror(code);
    assert_non_null(s);
    assert_true(s[0] != '\0');
    if (strcmp(s, "unknown error") == 0)
        fail_msg("code %d has no name", code);
}

static void test_strerror_errno(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(errno_codes); i++)
        assert_named(errno_codes[i]);
}

static void test_strerror_eai(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(eai_codes); i++) {
        /* glibc's EAI_* are negative, so they never collide with errno. */
        assert_true(eai_codes[i] < 0);
        assert_named(eai_codes[i]);
    }
}

/* Two different codes must not share a text, or the name tells nothing. */
static void test_strerror_distinct(void **state)
{
    (void)state;
    int all[NELEM(errno_codes) + NELEM(eai_codes)];
    size_t n = 0;
    for (size_t i = 0; i < NELEM(errno_codes); i++)
        all[n++] = errno_codes[i];
    for (size_t i = 0; i < NELEM(eai_codes); i++)
        all[n++] = eai_codes[i];
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(evexec_strerror(all[i]), evexec_strerror(all[j])) == 0)
                fail_msg("codes %d and %d share the name \"%s\"", all[i], all[j],
                         evexec_strerror(all[i]));
}

static void test_strerror_unknown(void **state)
{
    (void)state;
    static const int unknown[] = { 123456, -123456, 99999, -999, INT32_MAX, INT32_MIN };
    for (size_t i = 0; i < NELEM(unknown); i++) {
        const char *s = evexec_strerror(unknown[i]);
        assert_non_null(s);
        assert_string_equal(s, "unknown error");
    }
    /* 0 is success, not an unknown code; whatever its text, never NULL. */
    assert_non_null(evexec_strerror(0));
}

/* The same code gives the same static string every time. */
static void test_strerror_static(void **state)
{
    (void)state;
    assert_ptr_equal(evexec_strerror(ECANCELED), evexec_strerror(ECANCELED));
    assert_ptr_equal(evexec_strerror(EAI_NONAME), evexec_strerror(EAI_NONAME));
}

static void test_version(void **state)
{
    (void)state;
    assert_non_null(evexec_version());
    assert_string_equal(evexec_version(), EVEXEC_VERSION_STRING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_errno),
        cmocka_unit_test(test_strerror_eai),
        cmocka_unit_test(test_strerror_distinct),
        cmocka_unit_test(test_strerror_unknown),
        cmocka_unit_test(test_strerror_static),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
