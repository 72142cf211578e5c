/*
 * random.c - xoshiro256** seeded through splitmix64; see random.h.
 */
#include "util/random.h"

#include <sys/random.h>
#include <time.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void random_seed(struct random_state *state, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        state->s[i] = splitmix64(&seed);
}

static inline uint64_t rotate_left(uint64_t value, unsigned bits)
{
    return (value << bits) | (value >> (64 - bits));
}

uint64_t random_next(struct random_state *state)
{
    uint64_t *s = state->s;
    uint64_t result = rotate_left(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotate_left(s[3], 45);
    return result;
}

uint64_t random_below(struct random_state *state, uint64_t bound)
{
    /* Rejection sampling keeps the result uniform. */
    uint64_t limit = UINT64_MAX - (UINT64_MAX % bound);
    uint64_t value;
    do
        value = random_next(state);
    while (value >= limit);
    return value % bound;
}

uint64_t random_from_system(void)
{
    uint64_t value = 0;
    if (getrandom(&value, sizeof(value), GRND_NONBLOCK) == (ssize_t)sizeof(value))
        return value;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (uint64_t)now.tv_sec * 1000000007ULL ^ (uint64_t)now.tv_nsec;
}
