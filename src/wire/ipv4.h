/*
 * ipv4.h - IPv4 header view (RFC 791).
 *
 * ipv4_parse validates everything a receiver must before trusting a field:
 * version 4, header length of at least 20 bytes and within the packet, total
 * length within the bytes received and at least the header length, the
 * header checksum, and that options are well formed (each option's length
 * byte at least 2 and inside the header).  Bytes past the total length (link
 * padding) are the caller's to trim using total_length.
 */
#ifndef USOCK_WIRE_IPV4_H
#define USOCK_WIRE_IPV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IPV4_HEADER_LENGTH 20
#define IPV4_HEADER_MAX 60
#define IPV4_PACKET_MAX 65535

struct ipv4_header {
    uint8_t header_length;   /* bytes, 20..60 */
    uint8_t type_of_service;
    uint16_t total_length;
    uint16_t identification;
    bool dont_fragment;
    bool more_fragments;
    uint16_t fragment_offset; /* bytes */
    uint8_t time_to_live;
    uint8_t protocol;
    uint16_t checksum;
    uint32_t source;          /* network order */
    uint32_t destination;     /* network order */
};

enum ipv4_parse_result {
    IPV4_PARSE_OK = 0,
    IPV4_PARSE_TRUNCATED,          /* fewer than 20 bytes */
    IPV4_PARSE_BAD_VERSION,
    IPV4_PARSE_BAD_HEADER_LENGTH,  /* IHL < 5, or beyond the packet */
    IPV4_PARSE_BAD_TOTAL_LENGTH,   /* beyond the bytes received, or below IHL */
    IPV4_PARSE_BAD_CHECKSUM,
    IPV4_PARSE_BAD_OPTIONS,
};

/* Parses and validates the header of packet (length bytes received).
 * Checksum verification can be skipped (fuzzing, offloaded links). */
enum ipv4_parse_result ipv4_parse(const uint8_t *packet, size_t length, bool verify_checksum,
                                  struct ipv4_header *out);
/* Writes the header followed by options_length bytes of options (a
 * multiple of 4, at most 40), with IHL and checksum computed.  Returns the
 * header length. */
size_t ipv4_emit_with_options(const struct ipv4_header *header, const uint8_t *options,
                              size_t options_length, uint8_t *out);
/* Writes a 20-byte header (no options) with its checksum computed; ignores
 * header_length and checksum in header.  Returns 20. */
size_t ipv4_emit(const struct ipv4_header *header, uint8_t *out);

static inline bool ipv4_is_fragment(const struct ipv4_header *header)
{
    return header->more_fragments || header->fragment_offset != 0;
}

#endif
