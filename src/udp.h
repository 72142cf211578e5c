/*
 * udp.h - UDP datagram sockets (RFC 768, RFC 1122 4.1).
 */
#ifndef USOCK_UDP_H
#define USOCK_UDP_H

#include <stdint.h>

#include "net/ipv4.h"

struct usock_stack;

/* Largest payload: 65535 - 20 (IPv4) - 8 (UDP). */
#define UDP_PAYLOAD_MAX 65507

/* Delivers a received datagram to the socket(s) it is for. */
void udp_input(struct usock_stack *stack, const struct ipv4_packet *packet, uint64_t now);
/* Reports an ICMP error about a datagram we sent. */
void udp_error(struct usock_stack *stack, const struct ipv4_error *error, uint64_t now);

#endif
