/*
 * tcp_sequence.h - wrap-safe sequence number comparisons (RFC 9293 3.4,
 * 4.4BSD tcp_seq.h).  Sequence numbers are compared only through these.
 */
#ifndef USOCK_TCP_SEQUENCE_H
#define USOCK_TCP_SEQUENCE_H

#include <stdbool.h>
#include <stdint.h>

static inline bool seq_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static inline bool seq_leq(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }
static inline bool seq_gt(uint32_t a, uint32_t b) { return (int32_t)(a - b) > 0; }
static inline bool seq_geq(uint32_t a, uint32_t b) { return (int32_t)(a - b) >= 0; }
/* low <= value < high, in sequence space. */
static inline bool seq_in_window(uint32_t value, uint32_t low, uint32_t high)
{
    return seq_leq(low, value) && seq_lt(value, high);
}
static inline uint32_t seq_max(uint32_t a, uint32_t b) { return seq_gt(a, b) ? a : b; }
static inline uint32_t seq_min(uint32_t a, uint32_t b) { return seq_lt(a, b) ? a : b; }

#endif
