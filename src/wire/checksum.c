/*
 * checksum.c - Internet checksum; see checksum.h.  Sums 16-bit words into a
 * 64-bit accumulator so no carry is lost on long buffers.
 */
#include "wire/checksum.h"

uint32_t checksum_add(uint32_t sum, const void *data, size_t length)
{
    const uint8_t *bytes = data;
    uint64_t accumulator = sum;
    size_t i = 0;
    for (; i + 1 < length; i += 2)
        accumulator += (uint32_t)(bytes[i] << 8 | bytes[i + 1]);
    if (i < length)
        accumulator += (uint32_t)bytes[i] << 8;
    while (accumulator >> 32)
        accumulator = (accumulator & 0xffffffff) + (accumulator >> 32);
    return (uint32_t)accumulator;
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
    uint8_t pseudo[12];
    const uint8_t *s = (const uint8_t *)&source, *d = (const uint8_t *)&destination;
    for (int i = 0; i < 4; i++) {
        pseudo[i] = s[i];
        pseudo[4 + i] = d[i];
    }
    pseudo[8] = 0;
    pseudo[9] = protocol;
    pseudo[10] = (uint8_t)(length >> 8);
    pseudo[11] = (uint8_t)length;
    return checksum_add(0, pseudo, sizeof(pseudo));
}
