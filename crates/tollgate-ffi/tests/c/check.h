/* Tiny test helpers shared by the C tests: CHECK fails the program with the line,
 * the expression and the library's last error message. */
#ifndef TOLLGATE_TEST_CHECK_H
#define TOLLGATE_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tollgate.h"

static int checks_run = 0;

static inline const char *last_error(void) {
    static char msg[1024];
    size_t n = 0;
    if (tollgate_last_error(msg, sizeof msg, &n) != TOLLGATE_RESULT_OK) {
        return "(tollgate_last_error failed)";
    }
    return msg;
}

#define CHECK(cond)                                                                     \
    do {                                                                                \
        __atomic_fetch_add(&checks_run, 1, __ATOMIC_RELAXED);                          \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: check failed: %s\n  last error: %s\n", __FILE__,    \
                    __LINE__, #cond, last_error());                                     \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)

/* A call that must return `expected`. */
#define CHECK_RC(call, expected)                                                        \
    do {                                                                                \
        tollgate_result rc_ = (call);                                                   \
        __atomic_fetch_add(&checks_run, 1, __ATOMIC_RELAXED);                          \
        if (rc_ != (expected)) {                                                        \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s\n  last error: %s\n",   \
                    __FILE__, __LINE__, #call, tollgate_result_name(rc_),               \
                    tollgate_result_name(expected), last_error());                      \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)

#define CHECK_OK(call) CHECK_RC(call, TOLLGATE_RESULT_OK)

/* An attribute from two NUL-terminated strings. */
static inline tollgate_attr attr(const char *name, const char *value) {
    tollgate_attr a;
    a.name = name;
    a.name_len = strlen(name);
    a.value = value;
    a.value_len = value ? strlen(value) : 0;
    return a;
}

#endif
