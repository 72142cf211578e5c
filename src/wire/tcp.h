/*
 * tcp.h - TCP header and options view (RFC 9293 3.1, RFC 7323, RFC 2018).
 *
 * tcp_parse validates before it reads: the segment holds at least 20
 * bytes, the data offset is at least 5 words and within the segment, the
 * checksum (over the IPv4 pseudo-header) holds, and each option is well
 * formed: kinds 0 (end) and 1 (no-op) are single bytes; every other option
 * has a length byte of at least 2 that stays inside the header.  Known
 * options with the wrong length (MSS not 4, window scale not 3, SACK-
 * permitted not 2, timestamps not 10, SACK not 2 + 8n) are ignored, not
 * fatal, as Linux does; a malformed option list (length 0 or 1, or
 * overrunning the header) rejects the segment.
 */
#ifndef USOCK_WIRE_TCP_H
#define USOCK_WIRE_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TCP_HEADER_LENGTH 20
#define TCP_HEADER_MAX 60
#define TCP_SACK_BLOCKS_MAX 4

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_ACK 0x10
#define TCP_FLAG_URG 0x20
#define TCP_FLAG_ECE 0x40
#define TCP_FLAG_CWR 0x80

#define TCP_OPTION_END 0
#define TCP_OPTION_NOP 1
#define TCP_OPTION_MSS 2
#define TCP_OPTION_WINDOW_SCALE 3
#define TCP_OPTION_SACK_PERMITTED 4
#define TCP_OPTION_SACK 5
#define TCP_OPTION_TIMESTAMPS 8

struct tcp_sack_block {
    uint32_t left;  /* first sequence number of the block */
    uint32_t right; /* one past the last */
};

struct tcp_options {
    bool has_mss;
    uint16_t mss;
    bool has_window_scale;
    uint8_t window_scale;     /* as sent; the receiver clamps to 14 */
    bool sack_permitted;
    bool has_timestamps;
    uint32_t timestamp_value;
    uint32_t timestamp_echo;
    uint8_t sack_block_count; /* 0..TCP_SACK_BLOCKS_MAX */
    struct tcp_sack_block sack_blocks[TCP_SACK_BLOCKS_MAX];
};

struct tcp_header {
    uint16_t source_port;
    uint16_t destination_port;
    uint32_t sequence;
    uint32_t acknowledgment;
    uint8_t header_length;    /* bytes, 20..60 */
    uint8_t flags;            /* TCP_FLAG_* */
    uint16_t window;          /* unscaled, as on the wire */
    uint16_t checksum;
    uint16_t urgent_pointer;
    struct tcp_options options;
};

enum tcp_parse_result {
    TCP_PARSE_OK = 0,
    TCP_PARSE_TRUNCATED,         /* fewer than 20 bytes */
    TCP_PARSE_BAD_HEADER_LENGTH, /* data offset < 5 or beyond the segment */
    TCP_PARSE_BAD_CHECKSUM,
    TCP_PARSE_BAD_OPTIONS,
};

/* Parses and validates the segment (the IP payload, length bytes) sent from
 * source to destination (network order, for the pseudo-header). */
enum tcp_parse_result tcp_parse(const uint8_t *segment, size_t length, uint32_t source,
                                uint32_t destination, bool verify_checksum,
                                struct tcp_header *out);

/* Bytes the options in header->options take when emitted (a multiple of 4,
 * at most 40), in the order tcp_emit writes them. */
size_t tcp_options_length(const struct tcp_options *options);

/* Writes the header with its options to out and computes the checksum over
 * header, options and the payload_length bytes that must already follow
 * the header at out + 20 + tcp_options_length().  header->header_length is
 * ignored (computed).  Returns the header length written. */
size_t tcp_emit(const struct tcp_header *header, uint32_t source, uint32_t destination,
                uint8_t *out, size_t payload_length);

/* The same, but leaves the checksum for a link that offloads it: the
 * field holds the pseudo-header sum only (not complemented), which the
 * finisher adds the header and payload to (a NIC's, or the kernel's,
 * CHECKSUM_PARTIAL).  The checksum field is at offset 16. */
size_t tcp_emit_checksum_partial(const struct tcp_header *header, uint32_t source,
                                 uint32_t destination, uint8_t *out, size_t payload_length);

#endif
