/*
 * test_error.c -- evexec_strerror() and evexec_version().
 *
 * evexec_strerror() must name every code the library returns, errno values
 * and getaddrinfo's EAI_* codes alike, and give "unknown error" for
 * anything else.  Where EAI codes are negative (glibc, musl) every code has
 * its own text; where they are positive (BSDs, macOS) a code that is also
 * an errno value is named as the errno value (include/evexec.h).
 * tests/check-portable-error.sh builds lib/error.c with macOS's values.
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
#include <stdio.h>
#include <string.h>

#include "evexec.h"

/* Every errno value the public header documents as a return or errno. */
static const int errno_codes[] = {
    EINVAL, ENOMEM, EAGAIN, ESHUTDOWN, ECANCELED, EALREADY, EDEADLK,
    EINPROGRESS, ETIMEDOUT, EIO, EMFILE, ENFILE,
    /* and the usual ones a job or file call returns */
    ENOENT, EACCES, EEXIST, EPERM, EBADF, ENOSPC, EINTR, ENOTDIR, EISDIR,
};

/* Every EAI_* code this system defines: evexec_getaddrinfo() and
 * evexec_getnameinfo() hand back whatever the C library returns (the
 * caller's hints may ask for AI_IDN and get EAI_IDN_ENCODE), but for
 * EAI_SYSTEM, which becomes its errno; that one is named anyway in case a
 * caller passes it. */
static const int eai_codes[] = {
    EAI_AGAIN, EAI_BADFLAGS, EAI_FAIL, EAI_FAMILY, EAI_MEMORY, EAI_NONAME,
    EAI_SERVICE, EAI_SOCKTYPE, EAI_SYSTEM, EAI_OVERFLOW,
#ifdef EAI_NODATA
    EAI_NODATA,
#endif
#ifdef EAI_ADDRFAMILY
    EAI_ADDRFAMILY,
#endif
#ifdef EAI_BADHINTS
    EAI_BADHINTS,
#endif
#ifdef EAI_PROTOCOL
    EAI_PROTOCOL,
#endif
#ifdef EAI_IDN_ENCODE
    EAI_IDN_ENCODE,
#endif
#ifdef EAI_INPROGRESS
    EAI_INPROGRESS,
#endif
#ifdef EAI_CANCELED
    EAI_CANCELED,
#endif
#ifdef EAI_NOTCANCELED
    EAI_NOTCANCELED,
#endif
#ifdef EAI_ALLDONE
    EAI_ALLDONE,
#endif
#ifdef EAI_INTR
    EAI_INTR,
#endif
};

/* Where EAI codes are negative, no EAI code is an errno value. */
#define EAI_NEGATIVE (EAI_AGAIN < 0)

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

/* The POSIX EAI codes have names, all negative or all positive. */
static void test_strerror_eai(void **state)
{
    (void)state;
    for (size_t i = 0; i < 10; i++) {
        assert_true(EAI_NEGATIVE ? eai_codes[i] < 0 : eai_codes[i] > 0);
        assert_named(eai_codes[i]);
    }
}

/* Every EAI code evexec can return on this system has a name. */
static void test_strerror_eai_all(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(eai_codes); i++)
        assert_named(eai_codes[i]);
}

/* Where an EAI code is also an errno value, the errno name is given. */
static void test_strerror_eai_collision(void **state)
{
    (void)state;
    size_t collisions = 0;
    for (size_t i = 0; i < NELEM(eai_codes); i++)
        for (size_t j = 0; j < NELEM(errno_codes); j++)
            if (eai_codes[i] == errno_codes[j]) {
                collisions++;
                assert_string_equal(evexec_strerror(eai_codes[i]),
                                    evexec_strerror(errno_codes[j]));
            }
    if (EAI_NEGATIVE)
        assert_int_equal(collisions, 0);
}

/* Two different codes must not share a text, or the name tells nothing.
 * EAI codes take part where they cannot be errno values. */
static void test_strerror_distinct(void **state)
{
    (void)state;
    int all[NELEM(errno_codes) + NELEM(eai_codes)];
    size_t n = 0;
    for (size_t i = 0; i < NELEM(errno_codes); i++)
        all[n++] = errno_codes[i];
    for (size_t i = 0; EAI_NEGATIVE && i < NELEM(eai_codes); i++)
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
    assert_int_equal(evexec_version_number(), EVEXEC_VERSION_NUMBER);
    char s[32];
    snprintf(s, sizeof s, "%lu.%lu.%lu", (EVEXEC_VERSION_NUMBER >> 24) & 0xff,
             (EVEXEC_VERSION_NUMBER >> 16) & 0xff, (EVEXEC_VERSION_NUMBER >> 8) & 0xff);
    assert_string_equal(s, EVEXEC_VERSION_STRING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_errno),
        cmocka_unit_test(test_strerror_eai),
        cmocka_unit_test(test_strerror_eai_all),
        cmocka_unit_test(test_strerror_eai_collision),
        cmocka_unit_test(test_strerror_distinct),
        cmocka_unit_test(test_strerror_unknown),
        cmocka_unit_test(test_strerror_static),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
