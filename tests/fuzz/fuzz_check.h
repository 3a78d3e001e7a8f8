/* Invariant checks for the fuzz targets: a broken one prints what and where,
 * then aborts, which libFuzzer and the replay program both report as a
 * failure with the input that caused it. */
#ifndef GPT2C_FUZZ_CHECK_H
#define GPT2C_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond, ...)                                                                  \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

#endif
