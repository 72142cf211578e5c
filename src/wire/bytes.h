/*
 * bytes.h - big-endian loads and stores used by the wire views.  Only files
 * in src/wire/ read or write header fields at byte offsets.
 */
#ifndef USOCK_WIRE_BYTES_H
#define USOCK_WIRE_BYTES_H

#include <stdint.h>
#include <string.h>

static inline uint16_t load_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void store_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* IPv4 addresses stay in network byte order as uint32_t (like in_addr_t). */
static inline uint32_t load_address(const uint8_t *p)
{
    uint32_t address;
    memcpy(&address, p, 4);
    return address;
}

static inline void store_address(uint8_t *p, uint32_t address)
{
    memcpy(p, &address, 4);
}

#endif
