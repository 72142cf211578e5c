/*
 * raw.h - raw IP sockets: socket(AF_INET, SOCK_RAW, protocol).
 */
#ifndef USOCK_RAW_H
#define USOCK_RAW_H

#include <stdbool.h>
#include <stdint.h>

struct usock_stack;
struct ipv4_packet;
struct ipv4_error;
struct raw_socket;

struct raw_layer {
    struct raw_socket *by_protocol[256];  /* sockets of each protocol */
};

/* Gives every matching raw socket a copy of a received datagram (header
 * included, as Linux does).  Returns true when at least one took it. */
bool raw_deliver(struct usock_stack *stack, const struct ipv4_packet *packet);

/* Reports an ICMP error to every raw socket of the quoted packet's protocol
 * whose bound address is its source and whose peer (when connected) its
 * destination, as Linux's raw_icmp_error/raw_err: with IP_RECVERR queued
 * with the quote from the transport header (the IP header under
 * IP_HDRINCL).  Returns true when some socket matched. */
bool raw_error(struct usock_stack *stack, const struct ipv4_error *error);

#endif
