/*
 * check.h: the unit tests' one assertion helper.  CHECK(name, cond) prints
 * "ok - name" or "not ok - name (file:line)" and counts; check_done(suite)
 * prints the tally line and returns main's exit status.
 */
#ifndef CHECK_H
#define CHECK_H

#include <stdio.h>

static int check_failures, check_passes;

#define CHECK(name, cond)                                                  \
    do {                                                                   \
        if (cond) {                                                        \
            check_passes++;                                                \
            printf("ok - %s\n", name);                                     \
        } else {                                                           \
            check_failures++;                                              \
            printf("not ok - %s (%s:%d)\n", name, __FILE__, __LINE__);     \
        }                                                                  \
    } while (0)

static inline int check_done(const char *suite)
{
    printf("# %s: %d passed, %d failed\n", suite, check_passes, check_failures);
    return check_failures ? 1 : 0;
}

#endif /* CHECK_H */
