/*
 * siphash.h - SipHash-2-4 and -1-3, the keyed hashes behind every table the network can
 * fill (so a remote host cannot aim entries into one bucket), behind initial
 * sequence numbers and IP IDs.
 */
#ifndef USOCK_SIPHASH_H
#define USOCK_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* Hashes length bytes of data under the 16-byte key. */
uint64_t siphash24(const uint8_t key[16], const void *data, size_t length);
/* SipHash-1-3: cheaper, for hash-table buckets only. */
uint64_t siphash13(const uint8_t key[16], const void *data, size_t length);

#endif
