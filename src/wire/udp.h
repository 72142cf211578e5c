/*
 * udp.h - UDP header view (RFC 768).  The length field must be at least 8
 * and within the IP payload (bytes past it are ignored); a zero checksum
 * means the sender did not compute one; a computed checksum of zero is sent
 * as 0xffff.
 */
#ifndef USOCK_WIRE_UDP_H
#define USOCK_WIRE_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UDP_HEADER_LENGTH 8

struct udp_header {
    uint16_t source_port;
    uint16_t destination_port;
    uint16_t length; /* header plus payload */
    uint16_t checksum;
};

enum udp_parse_result {
    UDP_PARSE_OK = 0,
    UDP_PARSE_TRUNCATED,
    UDP_PARSE_BAD_LENGTH,
    UDP_PARSE_BAD_CHECKSUM,
};

/* Parses the datagram (the IP payload, length bytes) sent from source to
 * destination (network order, for the pseudo-header). */
enum udp_parse_result udp_parse(const uint8_t *datagram, size_t length, uint32_t source,
                                uint32_t destination, bool verify_checksum,
                                struct udp_header *out);
/* Writes the header; the payload (header->length - 8 bytes) must already
 * follow at out + 8, so the checksum can cover it.  Returns 8. */
size_t udp_emit(const struct udp_header *header, uint32_t source, uint32_t destination,
                uint8_t *out);

#endif
