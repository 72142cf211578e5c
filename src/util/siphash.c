/*
 * siphash.c - SipHash (Aumasson and Bernstein): four 64-bit lanes mixed by
 * add-rotate-xor rounds, c rounds per 8-byte block and d to finish:
 * SipHash-2-4 for what must stay unguessable (sequence numbers, cookies,
 * IP IDs, port choice), SipHash-1-3 for hash-table buckets, where it only
 * has to keep a remote host from aiming entries into one bucket (the
 * variant Rust's and Python's hash tables use).  Reads the message with
 * memcpy so any alignment is safe.
 */
#include "util/siphash.h"

#include <string.h>

static inline uint64_t rotate_left(uint64_t value, unsigned bits)
{
    return (value << bits) | (value >> (64 - bits));
}

static inline uint64_t load_le64(const uint8_t *bytes)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t value;
    memcpy(&value, bytes, sizeof(value));
    return value;
#else
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--)
        value = (value << 8) | bytes[i];
    return value;
#endif
}

#define SIP_ROUND(v0, v1, v2, v3)                                                \
    do {                                                                         \
        v0 += v1; v1 = rotate_left(v1, 13); v1 ^= v0; v0 = rotate_left(v0, 32);  \
        v2 += v3; v3 = rotate_left(v3, 16); v3 ^= v2;                            \
        v0 += v3; v3 = rotate_left(v3, 21); v3 ^= v0;                            \
        v2 += v1; v1 = rotate_left(v1, 17); v1 ^= v2; v2 = rotate_left(v2, 32);  \
    } while (0)

static inline uint64_t siphash(const uint8_t key[16], const void *data, size_t length,
                               int block_rounds, int final_rounds)
{
    const uint8_t *input = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    uint64_t v3 = 0x7465646279746573ULL ^ k1;
    size_t whole = length - (length % 8);
    for (size_t offset = 0; offset < whole; offset += 8) {
        uint64_t block = load_le64(input + offset);
        v3 ^= block;
        for (int i = 0; i < block_rounds; i++)
            SIP_ROUND(v0, v1, v2, v3);
        v0 ^= block;
    }
    uint8_t tail[8] = {0};
    memcpy(tail, input + whole, length - whole);
    uint64_t last = load_le64(tail) | ((uint64_t)(length & 0xff) << 56);
    v3 ^= last;
    for (int i = 0; i < block_rounds; i++)
        SIP_ROUND(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    for (int i = 0; i < final_rounds; i++)
        SIP_ROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t siphash24(const uint8_t key[16], const void *data, size_t length)
{
    return siphash(key, data, length, 2, 4);
}

uint64_t siphash13(const uint8_t key[16], const void *data, size_t length)
{
    return siphash(key, data, length, 1, 3);
}
