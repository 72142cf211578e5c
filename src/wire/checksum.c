/*
 * checksum.c - Internet checksum; see checksum.h.
 *
 * The ones'-complement sum does not depend on byte order (RFC 1071 section
 * 2(B)): summing the buffer as native-order words and swapping the folded
 * result gives the same sum as summing big-endian 16-bit words.  So the
 * loop loads 32-bit native words (memcpy, so any alignment is fine) into
 * 64-bit accumulators, 32 bytes an iteration over four independent sums,
 * where no carry can be lost before 2^32 words; the tail is taken in
 * 16-bit words and an odd last byte as the high byte of a padded word.
 */
#include <string.h>

#include "wire/checksum.h"

static inline uint32_t load_word(const uint8_t *bytes)
{
    uint32_t word;
    memcpy(&word, bytes, sizeof(word));
    return word;
}

/* Folds a 64-bit sum of native-order words to 16 bits, in big-endian order. */
static uint32_t fold_native_to_big_endian(uint64_t accumulator)
{
    accumulator = (accumulator & 0xffffffffu) + (accumulator >> 32);
    accumulator = (accumulator & 0xffffffffu) + (accumulator >> 32);
    uint32_t sum = (uint32_t)accumulator;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    sum = (uint32_t)(((sum & 0xff) << 8) | (sum >> 8));
#endif
    return sum;
}

uint32_t checksum_add(uint32_t sum, const void *data, size_t length)
{
    const uint8_t *bytes = data;
    uint64_t sums[4] = { 0, 0, 0, 0 };
    while (length >= 32) {
        sums[0] += (uint64_t)load_word(bytes) + load_word(bytes + 16);
        sums[1] += (uint64_t)load_word(bytes + 4) + load_word(bytes + 20);
        sums[2] += (uint64_t)load_word(bytes + 8) + load_word(bytes + 24);
        sums[3] += (uint64_t)load_word(bytes + 12) + load_word(bytes + 28);
        bytes += 32;
        length -= 32;
    }
    while (length >= 4) {
        sums[0] += load_word(bytes);
        bytes += 4;
        length -= 4;
    }
    if (length >= 2) {
        uint16_t half;
        memcpy(&half, bytes, sizeof(half));
        sums[1] += half;
        bytes += 2;
        length -= 2;
    }
    uint32_t big_endian = 0;
    if (length == 1)
        big_endian = (uint32_t)bytes[0] << 8;
    /* Each sum grows by under 2^33 an iteration, so none can wrap on a
     * buffer under 64 GiB; the eight halves add to under 2^35. */
    uint64_t total = (sums[0] & 0xffffffffu) + (sums[0] >> 32) + (sums[1] & 0xffffffffu) +
                     (sums[1] >> 32) + (sums[2] & 0xffffffffu) + (sums[2] >> 32) +
                     (sums[3] & 0xffffffffu) + (sums[3] >> 32);
    big_endian += fold_native_to_big_endian(total);
    uint64_t result = (uint64_t)sum + big_endian;
    result = (result & 0xffffffffu) + (result >> 32);
    return (uint32_t)result;
}

uint16_t checksum_finish(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

uint32_t checksum_pseudo_header(uint32_t source, uint32_t destination, uint8_t protocol,
                                uint16_t length)
{
    /* The 16-bit big-endian words of source, destination, zero and
     * protocol, and length, added as numbers (no buffer to walk). */
    const uint8_t *s = (const uint8_t *)&source, *d = (const uint8_t *)&destination;
    return (uint32_t)(s[0] << 8 | s[1]) + (uint32_t)(s[2] << 8 | s[3]) +
           (uint32_t)(d[0] << 8 | d[1]) + (uint32_t)(d[2] << 8 | d[3]) + protocol + length;
}
