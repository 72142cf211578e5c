/*
 * checksum.h - the Internet checksum (RFC 1071): a ones'-complement sum of
 * 16-bit big-endian words, accumulated in 32 bits and folded at the end.
 */
#ifndef USOCK_WIRE_CHECKSUM_H
#define USOCK_WIRE_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* Adds length bytes of data to a running sum (an odd last byte is padded
 * with zero).  Start with sum 0. */
uint32_t checksum_add(uint32_t sum, const void *data, size_t length);
/* Folds a running sum and returns its complement, ready to store
 * big-endian.  A buffer that holds a correct checksum folds to 0. */
uint16_t checksum_finish(uint32_t sum);
/* The running sum of the IPv4 pseudo-header (addresses in network order). */
uint32_t checksum_pseudo_header(uint32_t source, uint32_t destination, uint8_t protocol,
                                uint16_t length);

#endif
