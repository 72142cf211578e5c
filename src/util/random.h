/*
 * random.h - a small, fast, seedable generator (xoshiro256**) for the stack's
 * own choices: ephemeral ports, jitter in timers.  Each stack owns one, so a
 * fixed seed makes a whole run reproducible.  Not for secrets: keys for
 * siphash come from getrandom() unless a test fixes the seed.
 */
#ifndef USOCK_RANDOM_H
#define USOCK_RANDOM_H

#include <stdint.h>

struct random_state {
    uint64_t s[4];
};

/* Seeds state from seed (expanded with splitmix64). */
void random_seed(struct random_state *state, uint64_t seed);
uint64_t random_next(struct random_state *state);
/* A uniform value in [0, bound); bound must be nonzero. */
uint64_t random_below(struct random_state *state, uint64_t bound);
/* 8 bytes from getrandom(), or from the clock if that fails. */
uint64_t random_from_system(void);

#endif
