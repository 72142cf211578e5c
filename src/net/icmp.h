/*
 * icmp.h - ICMPv4: echo replies, errors sent about packets we cannot
 * deliver, and errors received from the network handed to the transport
 * whose packet they quote.
 *
 * Generated errors are rate limited as Linux does (net.ipv4.icmp_ratelimit
 * and icmp_msgs_per_sec): a global token bucket of 1000 messages per second
 * with a burst of 50, and per destination one message per second with a
 * burst of 6.  Echo replies are not limited.  Errors to our own addresses
 * (loopback) are not limited either, as on Linux.
 */
#ifndef USOCK_NET_ICMP_H
#define USOCK_NET_ICMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/ipv4.h"

struct usock_stack;

#define ICMP_RATE_HOSTS 64

struct icmp_rate_limit {
    uint64_t global_credit_ns; /* tokens, as time: one message costs 1 ms */
    uint64_t global_updated;
    struct {
        uint32_t address;
        uint64_t credit_ns;    /* one message costs 1 s, capped at 6 s */
        uint64_t updated;
    } hosts[ICMP_RATE_HOSTS];
};

void icmp_rate_limit_init(struct icmp_rate_limit *limit);

/* Handles an ICMP message addressed to us (payload borrowed). */
struct ipv4_packet;
void icmp_input(struct usock_stack *stack, const struct ipv4_packet *packet, uint64_t now);

/* Sends an ICMP error of type/code about the packet starting at
 * original (its IP header, original_length bytes actually received;
 * borrowed), unless RFC 1122 3.2.2 forbids it or the rate limit says no. */
void icmp_send_error(struct usock_stack *stack, const uint8_t *original, size_t original_length,
                     uint8_t type, uint8_t code, uint32_t info, uint64_t now);

/* Reports an error about a packet of ours that the stack itself could not
 * deliver (ARP failed: host unreachable), as if an ICMP message had come
 * back; packet starts at its IP header (borrowed). */
void icmp_report_local_error(struct usock_stack *stack, const uint8_t *packet, size_t length,
                             uint8_t type, uint8_t code, uint64_t now);

/* The errno Linux's transports report for an ICMP error of type/code
 * (icmp_err_convert for destination unreachable; EHOSTUNREACH for time
 * exceeded; EPROTO for parameter problem), and in *hard whether it is a
 * hard error (RFC 1122 4.1.3.3: reported to a connected socket even
 * without IP_RECVERR).  "Fragmentation needed" is EMSGSIZE and soft here:
 * each transport decides by its IP_MTU_DISCOVER.  Returns 0 for messages
 * that are no error to report (source quench, redirect). */
int icmp_error_errno(uint8_t type, uint8_t code, bool *hard);

#endif
