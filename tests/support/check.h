/*
 * check.h - the small assertion kit every usock test program uses.
 *
 * A test program is a list of test functions run by check_run(); each test
 * runs in a forked child with an alarm, so a crash or a hang is reported as
 * a named failure and the rest still run.  CHECK* macros print the failing
 * expression with file and line and end the test with status 1.
 */
#ifndef USOCK_TEST_CHECK_H
#define USOCK_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(condition)                                                               \
    do {                                                                               \
        if (!(condition)) {                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

#define CHECK_EQ(actual, expected)                                                     \
    do {                                                                               \
        long long check_a_ = (long long)(actual), check_e_ = (long long)(expected);    \
        if (check_a_ != check_e_) {                                                    \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %lld, expected %s == %lld\n", \
                    __FILE__, __LINE__, #actual, check_a_, #expected, check_e_);       \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* A call that must fail with -1 and the given errno. */
#define CHECK_ERRNO(call, expected_errno)                                              \
    do {                                                                               \
        errno = 0;                                                                     \
        long long check_r_ = (long long)(call);                                        \
        int check_err_ = errno;                                                        \
        if (check_r_ != -1 || check_err_ != (expected_errno)) {                        \
            fprintf(stderr, "%s:%d: %s returned %lld errno %d (%s), expected -1 errno %s\n", \
                    __FILE__, __LINE__, #call, check_r_, check_err_, strerror(check_err_), \
                    #expected_errno);                                                  \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

struct check_test {
    const char *name;
    void (*function)(void);
};

#define CHECK_TEST(function) { #function, function }

/* Runs each test in its own process with timeout_seconds; prints one line per
 * test and returns the process exit status (0 when all passed).  With
 * argv[1], runs only the test of that name. */
int check_run(const struct check_test *tests, size_t count, unsigned timeout_seconds,
              int argc, char **argv);

#define CHECK_MAIN(tests)                                                              \
    int main(int argc, char **argv)                                                    \
    {                                                                                  \
        return check_run(tests, sizeof(tests) / sizeof(tests[0]), 60, argc, argv);     \
    }

#endif
