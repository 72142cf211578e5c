/*
 * icmp.h - ICMPv4 message view (RFC 792).  The 8-byte header is type, code,
 * checksum and a 32-bit field whose meaning depends on the type (identifier
 * and sequence for echo, next-hop MTU for fragmentation needed).  The
 * checksum covers the whole message.
 */
#ifndef USOCK_WIRE_ICMP_H
#define USOCK_WIRE_ICMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ICMP_HEADER_LENGTH 8

#define ICMP_TYPE_ECHO_REPLY 0
#define ICMP_TYPE_DESTINATION_UNREACHABLE 3
#define ICMP_TYPE_SOURCE_QUENCH 4
#define ICMP_TYPE_REDIRECT 5
#define ICMP_TYPE_ECHO_REQUEST 8
#define ICMP_TYPE_TIME_EXCEEDED 11
#define ICMP_TYPE_PARAMETER_PROBLEM 12

#define ICMP_CODE_NET_UNREACHABLE 0
#define ICMP_CODE_HOST_UNREACHABLE 1
#define ICMP_CODE_PROTOCOL_UNREACHABLE 2
#define ICMP_CODE_PORT_UNREACHABLE 3
#define ICMP_CODE_FRAGMENTATION_NEEDED 4

struct icmp_header {
    uint8_t type;
    uint8_t code;
    uint16_t checksum;
    uint32_t rest; /* host order */
};

enum icmp_parse_result {
    ICMP_PARSE_OK = 0,
    ICMP_PARSE_TRUNCATED,
    ICMP_PARSE_BAD_CHECKSUM,
};

/* Parses the message of length bytes (the IP payload). */
enum icmp_parse_result icmp_parse(const uint8_t *message, size_t length, bool verify_checksum,
                                  struct icmp_header *out);
/* Writes header and computes the checksum over header plus the body_length
 * bytes that must already follow at out + 8.  Returns 8. */
size_t icmp_emit(const struct icmp_header *header, uint8_t *out, size_t body_length);

/* True for types that report errors (never answered with an error). */
static inline bool icmp_type_is_error(uint8_t type)
{
    return type == ICMP_TYPE_DESTINATION_UNREACHABLE || type == ICMP_TYPE_SOURCE_QUENCH ||
           type == ICMP_TYPE_REDIRECT || type == ICMP_TYPE_TIME_EXCEEDED ||
           type == ICMP_TYPE_PARAMETER_PROBLEM;
}

#endif
