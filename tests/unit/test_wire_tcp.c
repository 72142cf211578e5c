/*
 * test_wire_tcp.c - unit tests for the TCP header and options view in
 * src/wire/tcp.c: parse (validate, then read), tcp_options_length and
 * tcp_emit.
 *
 * The good segments are real: they were captured with tcpdump -xx on a veth
 * pair between two Linux 6.18 network namespaces, 198.18.0.1 (client) and
 * 198.18.0.2 (server), with transmit checksum offload turned off so the
 * wire carries full checksums (tcpdump -vv said "correct" for each).  A
 * Python client connected to port 7 and sent "hello, usock\n"; for the SACK
 * segment the server's nftables dropped every seventh large segment of a
 * 200000-byte transfer.  Only the TCP segment (the IP payload) is kept.
 * Checksums are checked against reference_tcp_checksum() below, written
 * independently of src/wire/checksum.c.
 *
 * Every parse of a hostile or truncated buffer is done on a malloc'd copy of
 * exactly that many bytes, so AddressSanitizer reports any read past it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "wire/tcp.h"

/* ------------------------------------------------------------------------ */
/* Captured segments                                                         */
/* ------------------------------------------------------------------------ */

/* SYN 198.18.0.1:46622 -> 198.18.0.2:7, seq 4192382896, win 64240,
 * checksum 0x7f1b, options [mss 1460,sackOK,TS val 3173917921 ecr 0,nop,
 * wscale 10]. */
static const uint8_t syn_segment[] = {
    0xb6, 0x1e, 0x00, 0x07, 0xf9, 0xe2, 0xaf, 0xb0, 0x00, 0x00, 0x00, 0x00,
    0xa0, 0x02, 0xfa, 0xf0, 0x7f, 0x1b, 0x00, 0x00,
    0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0xbd, 0x2e, 0x24, 0xe1,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
};

/* SYN-ACK 198.18.0.2:7 -> 198.18.0.1:46622, seq 1477368387, ack
 * 4192382897, win 65160, checksum 0x9557, options [mss 1460,sackOK,TS val
 * 1108373944 ecr 3173917921,nop,wscale 10]. */
static const uint8_t syn_ack_segment[] = {
    0x00, 0x07, 0xb6, 0x1e, 0x58, 0x0e, 0xda, 0x43, 0xf9, 0xe2, 0xaf, 0xb1,
    0xa0, 0x12, 0xfe, 0x88, 0x95, 0x57, 0x00, 0x00,
    0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x42, 0x10, 0x71, 0xb8,
    0xbd, 0x2e, 0x24, 0xe1, 0x01, 0x03, 0x03, 0x0a,
};

/* PSH+ACK 198.18.0.1:46622 -> 198.18.0.2:7, seq 4192382897, ack
 * 1477368388, win 63, checksum 0x7d0d, options [nop,nop,TS val 3173917921
 * ecr 1108373944], 13 bytes of data (an odd segment length, 45). */
static const uint8_t data_segment[] = {
    0xb6, 0x1e, 0x00, 0x07, 0xf9, 0xe2, 0xaf, 0xb1, 0x58, 0x0e, 0xda, 0x44,
    0x80, 0x18, 0x00, 0x3f, 0x7d, 0x0d, 0x00, 0x00,
    0x01, 0x01, 0x08, 0x0a, 0xbd, 0x2e, 0x24, 0xe1, 0x42, 0x10, 0x71, 0xb8,
    'h', 'e', 'l', 'l', 'o', ',', ' ', 'u', 's', 'o', 'c', 'k', '\n',
};
#define DATA_HEADER_LENGTH 32

/* ACK 198.18.0.2:7 -> 198.18.0.1:43240 with a full 60-byte header: seq
 * 0x4654a6ca, ack 0x051475da, win 69, checksum 0xcfe5, options [nop,nop,
 * TS val 1426953986 ecr 1467622916,nop,nop,sack 3 {...}]. */
static const uint8_t sack_segment[] = {
    0x00, 0x07, 0xa8, 0xe8, 0x46, 0x54, 0xa6, 0xca, 0x05, 0x14, 0x75, 0xda,
    0xf0, 0x10, 0x00, 0x45, 0xcf, 0xe5, 0x00, 0x00,
    0x01, 0x01, 0x08, 0x0a, 0x55, 0x0d, 0x97, 0x02, 0x57, 0x7a, 0x26, 0x04,
    0x01, 0x01, 0x05, 0x1a, 0x05, 0x14, 0xc5, 0x0a, 0x05, 0x14, 0xca, 0xb2,
    0x05, 0x14, 0xa3, 0x1a, 0x05, 0x14, 0xbf, 0x62, 0x05, 0x14, 0x7b, 0x82,
    0x05, 0x14, 0x9d, 0x72,
};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* An IPv4 address in network order, like in_addr_t. */
static uint32_t address(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    const uint8_t bytes[4] = {a, b, c, d};
    uint32_t result;
    memcpy(&result, bytes, 4);
    return result;
}

#define CLIENT address(198, 18, 0, 1)
#define SERVER address(198, 18, 0, 2)

/* A heap copy of exactly length bytes, so ASan sees any read past the end. */
static uint8_t *exact_copy(const uint8_t *source, size_t length)
{
    uint8_t *copy = malloc(length > 0 ? length : 1);
    CHECK(copy != NULL);
    if (length > 0)
        memcpy(copy, source, length);
    return copy;
}

/* The Internet checksum computed one byte at a time with the end-around
 * carry folded at every step: deliberately unlike checksum.c. */
static uint16_t reference_checksum(const uint8_t *data, size_t length)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < length; i++) {
        sum += (i % 2 == 0) ? (uint32_t)data[i] << 8 : data[i];
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

/* The reference TCP checksum: pseudo-header (protocol 6) and segment laid
 * out contiguously and summed with reference_checksum().  Over a segment
 * that holds a correct checksum it is 0. */
static uint16_t reference_tcp_checksum(const uint8_t *segment, size_t length, uint32_t source,
                                       uint32_t destination)
{
    uint8_t *all = malloc(12 + length);
    CHECK(all != NULL);
    memcpy(all, &source, 4);
    memcpy(all + 4, &destination, 4);
    all[8] = 0;
    all[9] = 6;
    all[10] = (uint8_t)(length >> 8);
    all[11] = (uint8_t)length;
    if (length > 0)
        memcpy(all + 12, segment, length);
    uint16_t checksum = reference_checksum(all, 12 + length);
    free(all);
    return checksum;
}

static void put16(uint8_t *p, uint16_t value)
{
    p[0] = (uint8_t)(value >> 8);
    p[1] = (uint8_t)value;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Stores a correct checksum (the reference one) in a segment. */
static void tcp_fix_checksum(uint8_t *segment, size_t length, uint32_t source,
                             uint32_t destination)
{
    put16(segment + 16, 0);
    put16(segment + 16, reference_tcp_checksum(segment, length, source, destination));
}

/* Writes a plausible ACK segment 198.18.0.1:40000 -> 198.18.0.2:80 with the
 * given options (a multiple of 4 bytes, at most 40) and payload_length
 * bytes of 'x', with a correct checksum.  Returns the segment length. */
static size_t tcp_build(uint8_t *segment, const uint8_t *options, size_t options_length,
                        size_t payload_length)
{
    CHECK(options_length % 4 == 0 && options_length <= 40);
    size_t header_length = TCP_HEADER_LENGTH + options_length;
    memset(segment, 0, TCP_HEADER_LENGTH);
    put16(segment, 40000);
    put16(segment + 2, 80);
    memcpy(segment + 4, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    segment[12] = (uint8_t)(header_length / 4 << 4);
    segment[13] = TCP_FLAG_ACK;
    put16(segment + 14, 1000);
    if (options_length > 0)
        memcpy(segment + TCP_HEADER_LENGTH, options, options_length);
    memset(segment + header_length, 'x', payload_length);
    tcp_fix_checksum(segment, header_length + payload_length, CLIENT, SERVER);
    return header_length + payload_length;
}

/* Builds a segment with these options (and payload_length bytes after
 * them), parses an exact copy with and without verification, checks both
 * agree, and returns the result. */
static enum tcp_parse_result parse_options(const uint8_t *options, size_t options_length,
                                           size_t payload_length, struct tcp_header *out)
{
    uint8_t built[TCP_HEADER_MAX + 64];
    CHECK(payload_length <= 64);
    size_t length = tcp_build(built, options, options_length, payload_length);
    uint8_t *segment = exact_copy(built, length);
    struct tcp_header unverified_header;
    enum tcp_parse_result verified = tcp_parse(segment, length, CLIENT, SERVER, true, out);
    enum tcp_parse_result unverified =
        tcp_parse(segment, length, CLIENT, SERVER, false, &unverified_header);
    CHECK_EQ(unverified, verified);
    if (verified == TCP_PARSE_OK)
        CHECK_EQ(out->header_length, TCP_HEADER_LENGTH + options_length);
    free(segment);
    return verified;
}

/* xorshift64*: a small deterministic generator so failures reproduce. */
static uint64_t random_state = 0x9e3779b97f4a7c15u;

static uint32_t random_next(void)
{
    random_state ^= random_state >> 12;
    random_state ^= random_state << 25;
    random_state ^= random_state >> 27;
    return (uint32_t)((random_state * 0x2545f4914f6cdd1du) >> 32);
}

static uint32_t random_below(uint32_t bound)
{
    return random_next() % bound;
}

static void random_fill(uint8_t *data, size_t length)
{
    for (size_t i = 0; i < length; i++)
        data[i] = (uint8_t)random_next();
}

static void check_options_equal(const struct tcp_options *a, const struct tcp_options *b)
{
    CHECK_EQ(a->has_mss, b->has_mss);
    CHECK_EQ(a->mss, b->mss);
    CHECK_EQ(a->has_window_scale, b->has_window_scale);
    CHECK_EQ(a->window_scale, b->window_scale);
    CHECK_EQ(a->sack_permitted, b->sack_permitted);
    CHECK_EQ(a->has_timestamps, b->has_timestamps);
    CHECK_EQ(a->timestamp_value, b->timestamp_value);
    CHECK_EQ(a->timestamp_echo, b->timestamp_echo);
    CHECK_EQ(a->sack_block_count, b->sack_block_count);
    for (size_t i = 0; i < a->sack_block_count && i < TCP_SACK_BLOCKS_MAX; i++) {
        CHECK_EQ(a->sack_blocks[i].left, b->sack_blocks[i].left);
        CHECK_EQ(a->sack_blocks[i].right, b->sack_blocks[i].right);
    }
}

/* No option at all: every field false or zero. */
static void check_no_options(const struct tcp_options *options)
{
    const struct tcp_options none = {0};
    check_options_equal(options, &none);
}

/* Everything but the checksum and header length, which an emit recomputes. */
static void check_headers_equal_but_checksum(const struct tcp_header *a,
                                             const struct tcp_header *b)
{
    CHECK_EQ(a->source_port, b->source_port);
    CHECK_EQ(a->destination_port, b->destination_port);
    CHECK_EQ(a->sequence, b->sequence);
    CHECK_EQ(a->acknowledgment, b->acknowledgment);
    CHECK_EQ(a->flags, b->flags);
    CHECK_EQ(a->window, b->window);
    CHECK_EQ(a->urgent_pointer, b->urgent_pointer);
    check_options_equal(&a->options, &b->options);
}

/* ------------------------------------------------------------------------ */
/* Captured segments                                                         */
/* ------------------------------------------------------------------------ */

static void test_tcp_checksum_of_captured_segments_matches_reference(void)
{
    CHECK_EQ(reference_tcp_checksum(syn_segment, sizeof(syn_segment), CLIENT, SERVER), 0);
    CHECK_EQ(reference_tcp_checksum(syn_ack_segment, sizeof(syn_ack_segment), SERVER, CLIENT),
             0);
    CHECK_EQ(reference_tcp_checksum(data_segment, sizeof(data_segment), CLIENT, SERVER), 0);
    CHECK_EQ(reference_tcp_checksum(sack_segment, sizeof(sack_segment), SERVER, CLIENT), 0);
    uint8_t zeroed[sizeof(data_segment)];
    memcpy(zeroed, data_segment, sizeof(zeroed));
    put16(zeroed + 16, 0);
    CHECK_EQ(reference_tcp_checksum(zeroed, sizeof(zeroed), CLIENT, SERVER), 0x7d0d);
}

static void test_tcp_parses_captured_syn_with_mss_sack_permitted_timestamps_and_window_scale(void)
{
    uint8_t *segment = exact_copy(syn_segment, sizeof(syn_segment));
    struct tcp_header header;
    CHECK_EQ(tcp_parse(segment, sizeof(syn_segment), CLIENT, SERVER, true, &header),
             TCP_PARSE_OK);
    CHECK_EQ(header.source_port, 46622);
    CHECK_EQ(header.destination_port, 7);
    CHECK_EQ(header.sequence, 4192382896u);
    CHECK_EQ(header.acknowledgment, 0);
    CHECK_EQ(header.header_length, 40);
    CHECK_EQ(header.flags, TCP_FLAG_SYN);
    CHECK_EQ(header.window, 64240);
    CHECK_EQ(header.checksum, 0x7f1b);
    CHECK_EQ(header.urgent_pointer, 0);
    const struct tcp_options expected = {
        .has_mss = true, .mss = 1460, .has_window_scale = true, .window_scale = 10,
        .sack_permitted = true, .has_timestamps = true, .timestamp_value = 3173917921u,
        .timestamp_echo = 0,
    };
    check_options_equal(&header.options, &expected);
    free(segment);
}

static void test_tcp_parses_captured_syn_ack(void)
{
    uint8_t *segment = exact_copy(syn_ack_segment, sizeof(syn_ack_segment));
    struct tcp_header header;
    CHECK_EQ(tcp_parse(segment, sizeof(syn_ack_segment), SERVER, CLIENT, true, &header),
             TCP_PARSE_OK);
    CHECK_EQ(header.source_port, 7);
    CHECK_EQ(header.destination_port, 46622);
    CHECK_EQ(header.sequence, 1477368387u);
    CHECK_EQ(header.acknowledgment, 4192382897u);
    CHECK_EQ(header.header_length, 40);
    CHECK_EQ(header.flags, TCP_FLAG_SYN | TCP_FLAG_ACK);
    CHECK_EQ(header.window, 65160);
    CHECK_EQ(header.checksum, 0x9557);
    const struct tcp_options expected = {
        .has_mss = true, .mss = 1460, .has_window_scale = true, .window_scale = 10,
        .sack_permitted = true, .has_timestamps = true, .timestamp_value = 1108373944u,
        .timestamp_echo = 3173917921u,
    };
    check_options_equal(&header.options, &expected);
    free(segment);
}

static void test_tcp_parses_captured_data_segment_with_verified_checksum(void)
{
    uint8_t *segment = exact_copy(data_segment, sizeof(data_segment));
    struct tcp_header header;
    CHECK_EQ(tcp_parse(segment, sizeof(data_segment), CLIENT, SERVER, true, &header),
             TCP_PARSE_OK);
    CHECK_EQ(header.source_port, 46622);
    CHECK_EQ(header.destination_port, 7);
    CHECK_EQ(header.sequence, 4192382897u);
    CHECK_EQ(header.acknowledgment, 1477368388u);
    CHECK_EQ(header.header_length, DATA_HEADER_LENGTH);
    CHECK_EQ(header.flags, TCP_FLAG_PSH | TCP_FLAG_ACK);
    CHECK_EQ(header.window, 63);
    CHECK_EQ(header.checksum, 0x7d0d);
    const struct tcp_options expected = {
        .has_timestamps = true, .timestamp_value = 3173917921u, .timestamp_echo = 1108373944u,
    };
    check_options_equal(&header.options, &expected);
    CHECK(memcmp(segment + header.header_length, "hello, usock\n", 13) == 0);
    free(segment);
}

static void test_tcp_parses_captured_ack_with_three_sack_blocks(void)
{
    uint8_t *segment = exact_copy(sack_segment, sizeof(sack_segment));
    struct tcp_header header;
    CHECK_EQ(tcp_parse(segment, sizeof(sack_segment), SERVER, CLIENT, true, &header),
             TCP_PARSE_OK);
    CHECK_EQ(header.source_port, 7);
    CHECK_EQ(header.destination_port, 43240);
    CHECK_EQ(header.sequence, 0x4654a6cau);
    CHECK_EQ(header.acknowledgment, 0x051475dau);
    CHECK_EQ(header.header_length, TCP_HEADER_MAX);
    CHECK_EQ(header.flags, TCP_FLAG_ACK);
    CHECK_EQ(header.window, 69);
    const struct tcp_options expected = {
        .has_timestamps = true, .timestamp_value = 1426953986u,
        .timestamp_echo = 1467622916u, .sack_block_count = 3,
        .sack_blocks = {{0x0514c50a, 0x0514cab2}, {0x0514a31a, 0x0514bf62},
                        {0x05147b82, 0x05149d72}},
    };
    check_options_equal(&header.options, &expected);
    free(segment);
}

/* usock's option layout is Linux's: parse a capture, emit it again, and the
 * bytes (checksum included) come out identical. */
/* The captured segments, with who sent each. */
static const struct {
    const uint8_t *bytes;
    size_t length;
    bool from_client;
} captures[] = {
    {syn_segment, sizeof(syn_segment), true},
    {syn_ack_segment, sizeof(syn_ack_segment), false},
    {data_segment, sizeof(data_segment), true},
    {sack_segment, sizeof(sack_segment), false},
};

static void test_tcp_emit_reproduces_captured_segments(void)
{
    for (size_t i = 0; i < sizeof(captures) / sizeof(captures[0]); i++) {
        uint32_t source = captures[i].from_client ? CLIENT : SERVER;
        uint32_t destination = captures[i].from_client ? SERVER : CLIENT;
        struct tcp_header header;
        CHECK_EQ(tcp_parse(captures[i].bytes, captures[i].length, source, destination, true,
                           &header),
                 TCP_PARSE_OK);
        size_t payload_length = captures[i].length - header.header_length;
        CHECK_EQ(TCP_HEADER_LENGTH + tcp_options_length(&header.options), header.header_length);
        uint8_t *out = malloc(captures[i].length);
        CHECK(out != NULL);
        memset(out, 0xa5, header.header_length);
        memcpy(out + header.header_length, captures[i].bytes + header.header_length,
               payload_length);
        header.checksum = 0;
        CHECK_EQ(tcp_emit(&header, source, destination, out, payload_length),
                 header.header_length);
        CHECK(memcmp(out, captures[i].bytes, captures[i].length) == 0);
        free(out);
    }
}

/* A partial checksum, finished as a NIC or the kernel finishes one (the
 * complement of the sum over the whole segment, the pseudo-header sum in
 * the checksum field included), gives the captured segments exactly. */
static void test_tcp_emit_checksum_partial_finishes_to_captured_segments(void)
{
    for (size_t i = 0; i < sizeof(captures) / sizeof(captures[0]); i++) {
        uint32_t source = captures[i].from_client ? CLIENT : SERVER;
        uint32_t destination = captures[i].from_client ? SERVER : CLIENT;
        struct tcp_header header;
        CHECK_EQ(tcp_parse(captures[i].bytes, captures[i].length, source, destination, true,
                           &header),
                 TCP_PARSE_OK);
        size_t payload_length = captures[i].length - header.header_length;
        uint8_t *out = malloc(captures[i].length);
        CHECK(out != NULL);
        memcpy(out + header.header_length, captures[i].bytes + header.header_length,
               payload_length);
        CHECK_EQ(tcp_emit_checksum_partial(&header, source, destination, out, payload_length),
                 header.header_length);
        CHECK(memcmp(out, captures[i].bytes, 16) == 0);
        CHECK(memcmp(out + 18, captures[i].bytes + 18, captures[i].length - 18) == 0);
        uint32_t sum = 0;
        for (size_t at = 0; at < captures[i].length; at += 2)
            sum += (uint32_t)(out[at] << 8) | (at + 1 < captures[i].length ? out[at + 1] : 0);
        while (sum >> 16)
            sum = (sum & 0xffff) + (sum >> 16);
        uint16_t finished = (uint16_t)~sum;
        CHECK_EQ(finished >> 8, captures[i].bytes[16]);
        CHECK_EQ(finished & 0xff, captures[i].bytes[17]);
        free(out);
    }
}

/* ------------------------------------------------------------------------ */
/* Lengths                                                                   */
/* ------------------------------------------------------------------------ */

/* Below 20 bytes: truncated; from 20 up to 39 the data offset (10 words)
 * runs past the segment. */
static void test_tcp_rejects_every_truncation_of_captured_syn(void)
{
    for (size_t length = 0; length < sizeof(syn_segment); length++) {
        uint8_t *segment = exact_copy(syn_segment, length);
        struct tcp_header header;
        enum tcp_parse_result expected =
            length < TCP_HEADER_LENGTH ? TCP_PARSE_TRUNCATED : TCP_PARSE_BAD_HEADER_LENGTH;
        CHECK_EQ(tcp_parse(segment, length, CLIENT, SERVER, true, &header), expected);
        CHECK_EQ(tcp_parse(segment, length, CLIENT, SERVER, false, &header), expected);
        free(segment);
    }
}

/* TCP has no length field: a segment cut inside its payload parses, and
 * only the checksum (which covers the length) notices. */
static void test_tcp_rejects_every_truncation_of_captured_data_segment(void)
{
    for (size_t length = 0; length < sizeof(data_segment); length++) {
        uint8_t *segment = exact_copy(data_segment, length);
        struct tcp_header header;
        if (length < TCP_HEADER_LENGTH) {
            CHECK_EQ(tcp_parse(segment, length, CLIENT, SERVER, true, &header),
                     TCP_PARSE_TRUNCATED);
            CHECK_EQ(tcp_parse(segment, length, CLIENT, SERVER, false, &header),
                     TCP_PARSE_TRUNCATED);
        } else if (length < DATA_HEADER_LENGTH) {
            CHECK_EQ(tcp_parse(segment, length, CLIENT, SERVER, true, &header),
                     TCP_PARSE_BAD_HEADER_LENGTH);
            CHECK_EQ(tcp_parse(segment, length, CLIENT, SERVER, false, &header),
                     TCP_PARSE_BAD_HEADER_LENGTH);
        } else {
            CHECK_EQ(tcp_parse(segment, length, CLIENT, SERVER, true, &header),
                     TCP_PARSE_BAD_CHECKSUM);
            CHECK_EQ(tcp_parse(segment, length, CLIENT, SERVER, false, &header), TCP_PARSE_OK);
            CHECK_EQ(header.header_length, DATA_HEADER_LENGTH);
            CHECK(header.options.has_timestamps);
        }
        free(segment);
    }
}

static void test_tcp_rejects_data_offset_below_five(void)
{
    for (int words = 0; words < 5; words++) {
        uint8_t built[40];
        size_t length = tcp_build(built, NULL, 0, 20);
        built[12] = (uint8_t)(words << 4);
        tcp_fix_checksum(built, length, CLIENT, SERVER);
        uint8_t *segment = exact_copy(built, length);
        struct tcp_header header;
        CHECK_EQ(tcp_parse(segment, length, CLIENT, SERVER, true, &header),
                 TCP_PARSE_BAD_HEADER_LENGTH);
        CHECK_EQ(tcp_parse(segment, length, CLIENT, SERVER, false, &header),
                 TCP_PARSE_BAD_HEADER_LENGTH);
        free(segment);
    }
}

/* Data offsets 6..15 on a 20-byte segment and 11..15 on a 40-byte one
 * (whose bytes past 20 would be NOPs, were they options). */
static void test_tcp_rejects_data_offset_beyond_the_segment(void)
{
    for (int words = 6; words < 16; words++) {
        uint8_t built[TCP_HEADER_LENGTH];
        tcp_build(built, NULL, 0, 0);
        built[12] = (uint8_t)(words << 4);
        tcp_fix_checksum(built, sizeof(built), CLIENT, SERVER);
        uint8_t *segment = exact_copy(built, sizeof(built));
        struct tcp_header header;
        CHECK_EQ(tcp_parse(segment, sizeof(built), CLIENT, SERVER, true, &header),
                 TCP_PARSE_BAD_HEADER_LENGTH);
        CHECK_EQ(tcp_parse(segment, sizeof(built), CLIENT, SERVER, false, &header),
                 TCP_PARSE_BAD_HEADER_LENGTH);
        free(segment);
    }
    for (int words = 11; words < 16; words++) {
        uint8_t built[40];
        memset(built, TCP_OPTION_NOP, sizeof(built));
        tcp_build(built, NULL, 0, 0);
        built[12] = (uint8_t)(words << 4);
        tcp_fix_checksum(built, sizeof(built), CLIENT, SERVER);
        uint8_t *segment = exact_copy(built, sizeof(built));
        struct tcp_header header;
        CHECK_EQ(tcp_parse(segment, sizeof(built), CLIENT, SERVER, true, &header),
                 TCP_PARSE_BAD_HEADER_LENGTH);
        free(segment);
    }
}

/* A header that fills the segment exactly is a segment without data. */
static void test_tcp_accepts_data_offset_equal_to_segment_length(void)
{
    uint8_t nops[40];
    memset(nops, TCP_OPTION_NOP, sizeof(nops));
    for (size_t options_length = 0; options_length <= 40; options_length += 4) {
        struct tcp_header header;
        CHECK_EQ(parse_options(nops, options_length, 0, &header), TCP_PARSE_OK);
        check_no_options(&header.options);
    }
}

/* The low nibble of byte 12 is reserved (AccECN's AE bit lives there): it
 * is not part of the data offset and the parser ignores it. */
static void test_tcp_ignores_reserved_bits_beside_the_data_offset(void)
{
    uint8_t built[TCP_HEADER_LENGTH + 4];
    size_t length = tcp_build(built, NULL, 0, 4);
    built[12] = 0x5f;
    tcp_fix_checksum(built, length, CLIENT, SERVER);
    uint8_t *segment = exact_copy(built, length);
    struct tcp_header header;
    CHECK_EQ(tcp_parse(segment, length, CLIENT, SERVER, true, &header), TCP_PARSE_OK);
    CHECK_EQ(header.header_length, TCP_HEADER_LENGTH);
    free(segment);
}

static void test_tcp_reads_all_eight_flag_bits_and_the_urgent_pointer(void)
{
    for (int flags = 0; flags < 256; flags++) {
        uint8_t built[TCP_HEADER_LENGTH];
        tcp_build(built, NULL, 0, 0);
        built[13] = (uint8_t)flags;
        put16(built + 18, 0xbeef);
        tcp_fix_checksum(built, sizeof(built), CLIENT, SERVER);
        uint8_t *segment = exact_copy(built, sizeof(built));
        struct tcp_header header;
        CHECK_EQ(tcp_parse(segment, sizeof(built), CLIENT, SERVER, true, &header),
                 TCP_PARSE_OK);
        CHECK_EQ(header.flags, flags);
        CHECK_EQ(header.urgent_pointer, 0xbeef);
        free(segment);
    }
}

/* ------------------------------------------------------------------------ */
/* Checksum                                                                  */
/* ------------------------------------------------------------------------ */

/* Any single flipped bit anywhere in the segment, header, options or data,
 * is caught; a flip in the data offset may be caught earlier as a bad
 * header length.  Without verification the same segments parse unless the
 * flip broke the header or its options. */
static void test_tcp_rejects_bad_checksum_for_every_single_bit_error(void)
{
    size_t length = sizeof(data_segment);
    for (size_t byte = 0; byte < length; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t *segment = exact_copy(data_segment, length);
            segment[byte] ^= (uint8_t)(1 << bit);
            size_t header_length = (size_t)(segment[12] >> 4) * 4;
            bool header_length_bad = header_length < TCP_HEADER_LENGTH || header_length > length;
            struct tcp_header header;
            CHECK_EQ(tcp_parse(segment, length, CLIENT, SERVER, true, &header),
                     header_length_bad ? TCP_PARSE_BAD_HEADER_LENGTH : TCP_PARSE_BAD_CHECKSUM);
            enum tcp_parse_result unverified =
                tcp_parse(segment, length, CLIENT, SERVER, false, &header);
            if (header_length_bad)
                CHECK_EQ(unverified, TCP_PARSE_BAD_HEADER_LENGTH);
            else if (byte != 12 && (byte < TCP_HEADER_LENGTH || byte >= DATA_HEADER_LENGTH))
                CHECK_EQ(unverified, TCP_PARSE_OK);
            else
                CHECK(unverified == TCP_PARSE_OK || unverified == TCP_PARSE_BAD_OPTIONS);
            free(segment);
        }
    }
}

/* The pseudo-header binds the segment to its addresses and its length. */
static void test_tcp_checksum_covers_pseudo_header(void)
{
    uint8_t *segment = exact_copy(data_segment, sizeof(data_segment));
    struct tcp_header header;
    for (int bit = 0; bit < 32; bit++) {
        uint32_t flipped_client = CLIENT ^ ((uint32_t)1 << bit);
        uint32_t flipped_server = SERVER ^ ((uint32_t)1 << bit);
        CHECK_EQ(tcp_parse(segment, sizeof(data_segment), flipped_client, SERVER, true, &header),
                 TCP_PARSE_BAD_CHECKSUM);
        CHECK_EQ(tcp_parse(segment, sizeof(data_segment), CLIENT, flipped_server, true, &header),
                 TCP_PARSE_BAD_CHECKSUM);
    }
    free(segment);
    /* A zero byte appended adds nothing to the sum but changes the
     * pseudo-header's length. */
    uint8_t *longer = malloc(sizeof(data_segment) + 1);
    CHECK(longer != NULL);
    memcpy(longer, data_segment, sizeof(data_segment));
    longer[sizeof(data_segment)] = 0;
    CHECK_EQ(tcp_parse(longer, sizeof(data_segment) + 1, CLIENT, SERVER, true, &header),
             TCP_PARSE_BAD_CHECKSUM);
    CHECK_EQ(tcp_parse(longer, sizeof(data_segment) + 1, CLIENT, SERVER, false, &header),
             TCP_PARSE_OK);
    free(longer);
}

/* Unlike UDP, a zero TCP checksum is not "none": it is checked like any. */
static void test_tcp_rejects_zeroed_checksum(void)
{
    uint8_t *segment = exact_copy(data_segment, sizeof(data_segment));
    put16(segment + 16, 0);
    struct tcp_header header;
    CHECK_EQ(tcp_parse(segment, sizeof(data_segment), CLIENT, SERVER, true, &header),
             TCP_PARSE_BAD_CHECKSUM);
    free(segment);
}

static void test_tcp_skips_checksum_verification_when_asked(void)
{
    uint8_t *segment = exact_copy(data_segment, sizeof(data_segment));
    segment[16] ^= 0xff;
    struct tcp_header header;
    CHECK_EQ(tcp_parse(segment, sizeof(data_segment), CLIENT, SERVER, false, &header),
             TCP_PARSE_OK);
    CHECK_EQ(header.checksum, 0x7d0d ^ 0xff00);
    CHECK_EQ(header.sequence, 4192382897u);
    free(segment);
}

/* The checksum is checked before the options are walked: a corrupt segment
 * is a checksum error even when the corruption made the options
 * malformed. */
static void test_tcp_checks_checksum_before_options(void)
{
    static const uint8_t bad_options[] = {TCP_OPTION_MSS, 0, 0, 0};
    uint8_t built[TCP_HEADER_LENGTH + sizeof(bad_options)];
    size_t length = tcp_build(built, bad_options, sizeof(bad_options), 0);
    built[16] ^= 0x01;
    uint8_t *segment = exact_copy(built, length);
    struct tcp_header header;
    CHECK_EQ(tcp_parse(segment, length, CLIENT, SERVER, true, &header), TCP_PARSE_BAD_CHECKSUM);
    CHECK_EQ(tcp_parse(segment, length, CLIENT, SERVER, false, &header),
             TCP_PARSE_BAD_OPTIONS);
    free(segment);
}

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

/* Whatever *out held before, a parse leaves absent options false and 0. */
static void test_tcp_zeroes_options_before_reading_them(void)
{
    static const uint8_t mss_only[] = {TCP_OPTION_MSS, 4, 0x05, 0xb4};
    struct tcp_header header;
    memset(&header, 0xa5, sizeof(header));
    CHECK_EQ(parse_options(NULL, 0, 0, &header), TCP_PARSE_OK);
    check_no_options(&header.options);
    memset(&header, 0xa5, sizeof(header));
    CHECK_EQ(parse_options(mss_only, sizeof(mss_only), 0, &header), TCP_PARSE_OK);
    const struct tcp_options expected = {.has_mss = true, .mss = 1460};
    check_options_equal(&header.options, &expected);
}

static void test_tcp_rejects_option_length_zero(void)
{
    static const uint8_t lists[][8] = {
        {TCP_OPTION_MSS, 0, 0x05, 0xb4, 1, 1, 1, 1},
        {30, 0, 1, 1, 1, 1, 1, 1}, /* an unknown kind too */
        {1, 1, 1, 1, TCP_OPTION_SACK, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        struct tcp_header header;
        CHECK_EQ(parse_options(lists[i], sizeof(lists[i]), 0, &header), TCP_PARSE_BAD_OPTIONS);
    }
}

static void test_tcp_rejects_option_length_one(void)
{
    static const uint8_t lists[][8] = {
        {TCP_OPTION_MSS, 1, 0x05, 0xb4, 1, 1, 1, 1},
        {TCP_OPTION_TIMESTAMPS, 1, 1, 1, 1, 1, 1, 1},
        {1, 1, 1, 1, 253, 1, 0, 0},
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        struct tcp_header header;
        CHECK_EQ(parse_options(lists[i], sizeof(lists[i]), 0, &header), TCP_PARSE_BAD_OPTIONS);
    }
}

/* An option may end exactly at the end of the header but not one byte
 * past it, even when payload bytes follow that a careless walk would read
 * as option. */
static void test_tcp_rejects_option_overrunning_the_header(void)
{
    static const uint8_t mss_five[] = {TCP_OPTION_MSS, 5, 0x05, 0xb4};
    static const uint8_t timestamps_fits[] = {1, 1, TCP_OPTION_TIMESTAMPS, 10, 1, 2, 3, 4,
                                              5, 6, 7, 8};
    static const uint8_t timestamps_over[] = {1, 1, TCP_OPTION_TIMESTAMPS, 11, 1, 2, 3, 4,
                                              5, 6, 7, 8};
    static const uint8_t unknown_255[] = {1, 1, 1, 1, 99, 255, 0, 0};
    struct tcp_header header;
    for (size_t payload = 0; payload <= 64; payload += 64) {
        CHECK_EQ(parse_options(mss_five, sizeof(mss_five), payload, &header),
                 TCP_PARSE_BAD_OPTIONS);
        CHECK_EQ(parse_options(timestamps_fits, sizeof(timestamps_fits), payload, &header),
                 TCP_PARSE_OK);
        CHECK(header.options.has_timestamps);
        CHECK_EQ(header.options.timestamp_value, 0x01020304);
        CHECK_EQ(header.options.timestamp_echo, 0x05060708);
        CHECK_EQ(parse_options(timestamps_over, sizeof(timestamps_over), payload, &header),
                 TCP_PARSE_BAD_OPTIONS);
        CHECK_EQ(parse_options(unknown_255, sizeof(unknown_255), payload, &header),
                 TCP_PARSE_BAD_OPTIONS);
    }
}

/* A kind other than 0 or 1 in the header's last byte has no room for its
 * length byte. */
static void test_tcp_rejects_kind_in_last_byte_without_length(void)
{
    for (int kind = 2; kind < 256; kind++) {
        const uint8_t options[] = {1, 1, 1, (uint8_t)kind};
        struct tcp_header header;
        CHECK_EQ(parse_options(options, sizeof(options), 4, &header), TCP_PARSE_BAD_OPTIONS);
    }
    for (int kind = 0; kind < 2; kind++) {
        const uint8_t options[] = {1, 1, 1, (uint8_t)kind};
        struct tcp_header header;
        CHECK_EQ(parse_options(options, sizeof(options), 4, &header), TCP_PARSE_OK);
    }
}

/* Known options of the wrong length are skipped by their length, as Linux
 * does, and the options after them are still read. */
static void test_tcp_ignores_mss_with_wrong_length(void)
{
    static const uint8_t lists[][12] = {
        {TCP_OPTION_MSS, 2, 1, 1, 1, 1, 1, 1, TCP_OPTION_WINDOW_SCALE, 3, 7, 1},
        {TCP_OPTION_MSS, 3, 0x05, 1, 1, 1, 1, 1, TCP_OPTION_WINDOW_SCALE, 3, 7, 1},
        {TCP_OPTION_MSS, 5, 0x05, 0xb4, 0, 1, 1, 1, TCP_OPTION_WINDOW_SCALE, 3, 7, 1},
        {TCP_OPTION_MSS, 6, 0x05, 0xb4, 0, 0, 1, 1, TCP_OPTION_WINDOW_SCALE, 3, 7, 1},
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        struct tcp_header header;
        CHECK_EQ(parse_options(lists[i], sizeof(lists[i]), 0, &header), TCP_PARSE_OK);
        const struct tcp_options expected = {.has_window_scale = true, .window_scale = 7};
        check_options_equal(&header.options, &expected);
    }
}

static void test_tcp_ignores_window_scale_with_wrong_length(void)
{
    static const uint8_t lists[][8] = {
        {TCP_OPTION_WINDOW_SCALE, 2, TCP_OPTION_MSS, 4, 0x05, 0xb4, 1, 1},
        {TCP_OPTION_WINDOW_SCALE, 4, 7, 0, TCP_OPTION_MSS, 4, 0x05, 0xb4},
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        struct tcp_header header;
        CHECK_EQ(parse_options(lists[i], sizeof(lists[i]), 0, &header), TCP_PARSE_OK);
        const struct tcp_options expected = {.has_mss = true, .mss = 1460};
        check_options_equal(&header.options, &expected);
    }
}

static void test_tcp_ignores_sack_permitted_and_timestamps_with_wrong_length(void)
{
    static const uint8_t lists[][12] = {
        {TCP_OPTION_SACK_PERMITTED, 3, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        {TCP_OPTION_SACK_PERMITTED, 4, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
        {TCP_OPTION_TIMESTAMPS, 9, 1, 2, 3, 4, 5, 6, 7, 1, 1, 1},
        {TCP_OPTION_TIMESTAMPS, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
        {TCP_OPTION_TIMESTAMPS, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        struct tcp_header header;
        CHECK_EQ(parse_options(lists[i], sizeof(lists[i]), 0, &header), TCP_PARSE_OK);
        check_no_options(&header.options);
    }
}

/* SACK is 2 + 8n bytes; any other length is ignored.  Length 2 is zero
 * blocks. */
static void test_tcp_ignores_sack_with_lengths_not_two_plus_eight_n(void)
{
    for (int sack_length = 2; sack_length <= 38; sack_length++) {
        uint8_t options[40];
        memset(options, 0, sizeof(options));
        options[0] = TCP_OPTION_NOP;
        options[1] = TCP_OPTION_NOP;
        options[2] = TCP_OPTION_SACK;
        options[3] = (uint8_t)sack_length;
        for (int i = 4; i < 2 + sack_length; i++)
            options[i] = (uint8_t)i;
        size_t options_length = (size_t)(2 + sack_length + 3) / 4 * 4;
        struct tcp_header header;
        CHECK_EQ(parse_options(options, options_length, 0, &header), TCP_PARSE_OK);
        if ((sack_length - 2) % 8 != 0) {
            check_no_options(&header.options);
            continue;
        }
        size_t blocks = (size_t)(sack_length - 2) / 8;
        CHECK_EQ(header.options.sack_block_count, blocks);
        for (size_t b = 0; b < blocks; b++) {
            uint32_t first = (uint32_t)(4 + 8 * b);
            CHECK_EQ(header.options.sack_blocks[b].left,
                     first << 24 | (first + 1) << 16 | (first + 2) << 8 | (first + 3));
            CHECK_EQ(header.options.sack_blocks[b].right, (first + 4) << 24 |
                                                              (first + 5) << 16 |
                                                              (first + 6) << 8 | (first + 7));
        }
    }
}

/* Four blocks (34 bytes) are the most 40 bytes of options can hold; an
 * option claiming five (42 bytes) overruns any header, so "more than four"
 * can only arrive as a malformed list. */
static void test_tcp_reads_four_sack_blocks_and_cannot_be_given_five(void)
{
    uint8_t options[40];
    memset(options, 0, sizeof(options));
    options[0] = TCP_OPTION_NOP;
    options[1] = TCP_OPTION_NOP;
    options[2] = TCP_OPTION_SACK;
    options[3] = 34;
    for (int i = 0; i < 8; i++)
        put16(options + 4 + 4 * i, (uint16_t)(0x1000 + i));
    struct tcp_header header;
    CHECK_EQ(parse_options(options, 36, 0, &header), TCP_PARSE_OK);
    CHECK_EQ(header.options.sack_block_count, 4);
    CHECK_EQ(header.options.sack_blocks[3].left, 0x1006u << 16);
    CHECK_EQ(header.options.sack_blocks[3].right, 0x1007u << 16);
    options[3] = 42;
    CHECK_EQ(parse_options(options, sizeof(options), 0, &header), TCP_PARSE_BAD_OPTIONS);
}

/* A later SACK option replaces an earlier one rather than overflowing it. */
static void test_tcp_second_sack_option_replaces_the_first(void)
{
    static const uint8_t options[] = {
        TCP_OPTION_SACK, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4,
        TCP_OPTION_SACK, 10, 0, 0, 0, 5, 0, 0, 0, 6, TCP_OPTION_NOP, TCP_OPTION_NOP,
        TCP_OPTION_END, TCP_OPTION_END,
    };
    struct tcp_header header;
    CHECK_EQ(parse_options(options, sizeof(options), 0, &header), TCP_PARSE_OK);
    CHECK_EQ(header.options.sack_block_count, 1);
    CHECK_EQ(header.options.sack_blocks[0].left, 5);
    CHECK_EQ(header.options.sack_blocks[0].right, 6);
}

/* RFC 9293 3.2: End of Option List ends the list; what follows is padding
 * and is not looked at, however malformed. */
static void test_tcp_stops_at_end_of_option_list_and_ignores_what_follows(void)
{
    static const uint8_t after_mss[] = {TCP_OPTION_MSS, 4, 0x05, 0xb4, TCP_OPTION_END,
                                        TCP_OPTION_TIMESTAMPS, 0, 0xff};
    static const uint8_t first[] = {TCP_OPTION_END, TCP_OPTION_MSS, 4, 0x05,
                                    0xb4, 1, 1, 7};
    struct tcp_header header;
    CHECK_EQ(parse_options(after_mss, sizeof(after_mss), 0, &header), TCP_PARSE_OK);
    const struct tcp_options mss = {.has_mss = true, .mss = 1460};
    check_options_equal(&header.options, &mss);
    CHECK_EQ(parse_options(first, sizeof(first), 0, &header), TCP_PARSE_OK);
    check_no_options(&header.options);
}

/* Unknown kinds (MPTCP 30, TCP-AO 29, Fast Open 34, experimental 254) are
 * skipped by their length. */
static void test_tcp_skips_unknown_options_by_length(void)
{
    static const uint8_t options[] = {
        30, 4, 0x00, 0x81, 29, 6, 1, 2, 3, 4, 34, 2, 254, 6, 0xf9, 0x89, 0, 0,
        TCP_OPTION_MSS, 4, 0x05, 0x78, TCP_OPTION_NOP, TCP_OPTION_WINDOW_SCALE, 3, 14,
        TCP_OPTION_END, TCP_OPTION_END,
    };
    struct tcp_header header;
    CHECK_EQ(parse_options(options, sizeof(options), 0, &header), TCP_PARSE_OK);
    const struct tcp_options expected = {
        .has_mss = true, .mss = 1400, .has_window_scale = true, .window_scale = 14,
    };
    check_options_equal(&header.options, &expected);
}

/* RFC 7323 2.3: a shift above 14 is clamped by the receiver; the view
 * reports what was sent. */
static void test_tcp_stores_window_scale_as_sent(void)
{
    static const uint8_t shifts[] = {0, 1, 14, 15, 200, 255};
    for (size_t i = 0; i < sizeof(shifts); i++) {
        const uint8_t options[] = {TCP_OPTION_NOP, TCP_OPTION_WINDOW_SCALE, 3, shifts[i]};
        struct tcp_header header;
        CHECK_EQ(parse_options(options, sizeof(options), 0, &header), TCP_PARSE_OK);
        CHECK(header.options.has_window_scale);
        CHECK_EQ(header.options.window_scale, shifts[i]);
    }
}

/* ------------------------------------------------------------------------ */
/* Emit                                                                      */
/* ------------------------------------------------------------------------ */

#define WITH_MSS 1
#define WITH_WINDOW_SCALE 2
#define WITH_SACK_PERMITTED 4
#define WITH_TIMESTAMPS 8

/* Options with the fields the mask asks for and blocks SACK blocks, all
 * with recognisable values. */
static struct tcp_options options_with(unsigned mask, size_t blocks)
{
    struct tcp_options options = {0};
    options.has_mss = (mask & WITH_MSS) != 0;
    options.mss = options.has_mss ? 1460 : 0;
    options.has_window_scale = (mask & WITH_WINDOW_SCALE) != 0;
    options.window_scale = options.has_window_scale ? 7 : 0;
    options.sack_permitted = (mask & WITH_SACK_PERMITTED) != 0;
    options.has_timestamps = (mask & WITH_TIMESTAMPS) != 0;
    options.timestamp_value = options.has_timestamps ? 0x11223344 : 0;
    options.timestamp_echo = options.has_timestamps ? 0x55667788 : 0;
    options.sack_block_count = (uint8_t)blocks;
    for (size_t i = 0; i < blocks; i++) {
        options.sack_blocks[i].left = 0x10000000u * (uint32_t)(i + 1);
        options.sack_blocks[i].right = 0x10000000u * (uint32_t)(i + 1) + 0x100;
    }
    return options;
}

/* The SACK blocks that fit beside the other options, worked out from the
 * layout rather than from tcp.c. */
static size_t sack_blocks_expected(unsigned mask, size_t blocks)
{
    size_t fixed = ((mask & WITH_MSS) ? 4 : 0) + ((mask & WITH_WINDOW_SCALE) ? 4 : 0) +
                   ((mask & WITH_TIMESTAMPS) ? 12 : (mask & WITH_SACK_PERMITTED) ? 4 : 0);
    size_t fitting = (40 - fixed - 4) / 8;
    return blocks < fitting ? blocks : fitting;
}

static void test_tcp_options_length_for_each_combination(void)
{
    static const struct {
        unsigned mask;
        size_t blocks;
        size_t length;
    } cases[] = {
        {0, 0, 0},
        {WITH_MSS, 0, 4},
        {WITH_WINDOW_SCALE, 0, 4},
        {WITH_SACK_PERMITTED, 0, 4},
        {WITH_TIMESTAMPS, 0, 12},
        {WITH_SACK_PERMITTED | WITH_TIMESTAMPS, 0, 12},
        {WITH_MSS | WITH_SACK_PERMITTED | WITH_WINDOW_SCALE, 0, 12},
        {WITH_MSS | WITH_SACK_PERMITTED | WITH_TIMESTAMPS | WITH_WINDOW_SCALE, 0, 20},
        {0, 1, 12},
        {0, 2, 20},
        {0, 3, 28},
        {0, 4, 36},
        {WITH_TIMESTAMPS, 1, 24},
        {WITH_TIMESTAMPS, 3, 40},
        {WITH_TIMESTAMPS, 4, 40},                     /* trimmed to 3 */
        {WITH_TIMESTAMPS | WITH_WINDOW_SCALE, 4, 36}, /* trimmed to 1 */
        {WITH_MSS | WITH_SACK_PERMITTED | WITH_TIMESTAMPS | WITH_WINDOW_SCALE, 4, 40}, /* 2 */
        {WITH_MSS | WITH_WINDOW_SCALE, 4, 36},        /* 3 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tcp_options options = options_with(cases[i].mask, cases[i].blocks);
        CHECK_EQ(tcp_options_length(&options), cases[i].length);
    }
    for (unsigned mask = 0; mask < 16; mask++) {
        for (size_t blocks = 0; blocks <= TCP_SACK_BLOCKS_MAX; blocks++) {
            struct tcp_options options = options_with(mask, blocks);
            size_t length = tcp_options_length(&options);
            CHECK(length % 4 == 0 && length <= 40);
        }
    }
}

/* Emits options alone (no payload) and compares the bytes after the fixed
 * header with expected. */
static void check_emitted_options(const struct tcp_options *options, const uint8_t *expected,
                                  size_t expected_length)
{
    struct tcp_header header = {.source_port = 1, .destination_port = 2,
                                .flags = TCP_FLAG_SYN, .options = *options};
    uint8_t *out = malloc(TCP_HEADER_LENGTH + expected_length);
    CHECK(out != NULL);
    CHECK_EQ(tcp_options_length(options), expected_length);
    CHECK_EQ(tcp_emit(&header, CLIENT, SERVER, out, 0), TCP_HEADER_LENGTH + expected_length);
    CHECK_EQ(out[12] >> 4, (TCP_HEADER_LENGTH + expected_length) / 4);
    if (expected_length > 0)
        CHECK(memcmp(out + TCP_HEADER_LENGTH, expected, expected_length) == 0);
    free(out);
}

/* The layouts Linux's tcp_options_write uses, byte for byte. */
static void test_tcp_emit_lays_out_options_like_linux(void)
{
    static const uint8_t syn_all[] = {
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x11, 0x22, 0x33, 0x44,
        0x55, 0x66, 0x77, 0x88, 0x01, 0x03, 0x03, 0x07,
    };
    struct tcp_options options = options_with(WITH_MSS | WITH_SACK_PERMITTED |
                                              WITH_TIMESTAMPS | WITH_WINDOW_SCALE, 0);
    check_emitted_options(&options, syn_all, sizeof(syn_all));

    /* net.ipv4.tcp_timestamps=0: "mss 1460,nop,nop,sackOK,nop,wscale 7" */
    static const uint8_t syn_no_timestamps[] = {
        0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x04, 0x02, 0x01, 0x03, 0x03, 0x07,
    };
    options = options_with(WITH_MSS | WITH_SACK_PERMITTED | WITH_WINDOW_SCALE, 0);
    check_emitted_options(&options, syn_no_timestamps, sizeof(syn_no_timestamps));

    /* net.ipv4.tcp_sack=0: "mss 1460,nop,nop,TS val ecr,nop,wscale 7" */
    static const uint8_t syn_no_sack[] = {
        0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x08, 0x0a, 0x11, 0x22, 0x33, 0x44,
        0x55, 0x66, 0x77, 0x88, 0x01, 0x03, 0x03, 0x07,
    };
    options = options_with(WITH_MSS | WITH_TIMESTAMPS | WITH_WINDOW_SCALE, 0);
    check_emitted_options(&options, syn_no_sack, sizeof(syn_no_sack));

    static const uint8_t sack_permitted_only[] = {0x01, 0x01, 0x04, 0x02};
    options = options_with(WITH_SACK_PERMITTED, 0);
    check_emitted_options(&options, sack_permitted_only, sizeof(sack_permitted_only));

    static const uint8_t window_scale_only[] = {0x01, 0x03, 0x03, 0x07};
    options = options_with(WITH_WINDOW_SCALE, 0);
    check_emitted_options(&options, window_scale_only, sizeof(window_scale_only));

    static const uint8_t mss_only[] = {0x02, 0x04, 0x05, 0xb4};
    options = options_with(WITH_MSS, 0);
    check_emitted_options(&options, mss_only, sizeof(mss_only));

    static const uint8_t ack_with_two_blocks[] = {
        0x01, 0x01, 0x08, 0x0a, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
        0x01, 0x01, 0x05, 0x12, 0x10, 0x00, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
        0x20, 0x00, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00,
    };
    options = options_with(WITH_TIMESTAMPS, 2);
    check_emitted_options(&options, ack_with_two_blocks, sizeof(ack_with_two_blocks));

    static const uint8_t one_block[] = {
        0x01, 0x01, 0x05, 0x0a, 0x10, 0x00, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
    };
    options = options_with(0, 1);
    check_emitted_options(&options, one_block, sizeof(one_block));

    static const uint8_t nothing[1] = {0};
    check_emitted_options(&(struct tcp_options){0}, nothing, 0);
}

/* Options that would pass 40 bytes lose SACK blocks from the end: the first
 * blocks (the most recent, RFC 2018 4) are kept. */
static void test_tcp_emit_trims_sack_blocks_to_forty_bytes(void)
{
    static const uint8_t expected[] = {
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x11, 0x22, 0x33, 0x44,
        0x55, 0x66, 0x77, 0x88, 0x01, 0x03, 0x03, 0x07,
        0x01, 0x01, 0x05, 0x12, 0x10, 0x00, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
        0x20, 0x00, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00,
    };
    struct tcp_options options = options_with(WITH_MSS | WITH_SACK_PERMITTED |
                                              WITH_TIMESTAMPS | WITH_WINDOW_SCALE, 4);
    check_emitted_options(&options, expected, sizeof(expected));

    options = options_with(WITH_TIMESTAMPS, 4);
    struct tcp_header header = {.flags = TCP_FLAG_ACK, .options = options};
    uint8_t out[TCP_HEADER_MAX];
    CHECK_EQ(tcp_emit(&header, CLIENT, SERVER, out, 0), TCP_HEADER_MAX);
    struct tcp_header parsed;
    CHECK_EQ(tcp_parse(out, sizeof(out), CLIENT, SERVER, true, &parsed), TCP_PARSE_OK);
    CHECK_EQ(parsed.options.sack_block_count, 3);
    for (size_t i = 0; i < 3; i++) {
        CHECK_EQ(parsed.options.sack_blocks[i].left, options.sack_blocks[i].left);
        CHECK_EQ(parsed.options.sack_blocks[i].right, options.sack_blocks[i].right);
    }
}

/* Every combination of the four fixed options with 0..4 SACK blocks, with
 * payloads even, odd and long: emit, parse with verification, compare. */
static void test_tcp_round_trip_every_option_combination(void)
{
    static const size_t payloads[] = {0, 1, 13, 1000};
    for (unsigned mask = 0; mask < 16; mask++) {
        for (size_t blocks = 0; blocks <= TCP_SACK_BLOCKS_MAX; blocks++) {
            for (size_t p = 0; p < sizeof(payloads) / sizeof(payloads[0]); p++) {
                struct tcp_header in = {0};
                in.source_port = (uint16_t)random_next();
                in.destination_port = (uint16_t)random_next();
                in.sequence = random_next();
                in.acknowledgment = random_next();
                in.flags = (uint8_t)random_next();
                in.window = (uint16_t)random_next();
                in.urgent_pointer = (uint16_t)random_next();
                in.options = options_with(mask, blocks);
                if (in.options.has_mss)
                    in.options.mss = (uint16_t)random_next();
                if (in.options.has_timestamps)
                    in.options.timestamp_value = random_next();
                for (size_t b = 0; b < blocks; b++)
                    in.options.sack_blocks[b].left = random_next();
                size_t options_length = tcp_options_length(&in.options);
                size_t length = TCP_HEADER_LENGTH + options_length + payloads[p];
                uint8_t *out = malloc(length);
                CHECK(out != NULL);
                random_fill(out + TCP_HEADER_LENGTH + options_length, payloads[p]);
                uint32_t source = random_next(), destination = random_next();
                CHECK_EQ(tcp_emit(&in, source, destination, out, payloads[p]),
                         TCP_HEADER_LENGTH + options_length);
                CHECK_EQ(reference_tcp_checksum(out, length, source, destination), 0);

                struct tcp_header parsed;
                CHECK_EQ(tcp_parse(out, length, source, destination, true, &parsed),
                         TCP_PARSE_OK);
                CHECK_EQ(parsed.header_length, TCP_HEADER_LENGTH + options_length);
                CHECK_EQ(parsed.checksum, get16(out + 16));
                struct tcp_header expected = in;
                expected.options.sack_block_count =
                    (uint8_t)sack_blocks_expected(mask, blocks);
                check_headers_equal_but_checksum(&parsed, &expected);
                free(out);
            }
        }
    }
}

/* header_length is computed, whatever the caller left in it, and the
 * reserved bits go out as zero. */
static void test_tcp_emit_ignores_header_length_field(void)
{
    struct tcp_header header = {.flags = TCP_FLAG_ACK, .header_length = 60,
                                .options = options_with(WITH_MSS, 0)};
    uint8_t out[TCP_HEADER_LENGTH + 4];
    memset(out, 0xff, sizeof(out));
    CHECK_EQ(tcp_emit(&header, CLIENT, SERVER, out, 0), 24);
    CHECK_EQ(out[12], 0x60);
}

/* The checksum covers the payload that follows the options, odd last byte
 * included. */
static void test_tcp_emit_checksum_covers_payload(void)
{
    struct tcp_header header = {.flags = TCP_FLAG_ACK | TCP_FLAG_PSH,
                                .options = options_with(WITH_TIMESTAMPS, 0)};
    uint8_t out[TCP_HEADER_LENGTH + 12 + 13];
    memcpy(out + TCP_HEADER_LENGTH + 12, "hello, usock\n", 13);
    tcp_emit(&header, CLIENT, SERVER, out, 13);
    uint16_t with_payload = get16(out + 16);
    CHECK_EQ(reference_tcp_checksum(out, sizeof(out), CLIENT, SERVER), 0);
    out[sizeof(out) - 1] = '!';
    struct tcp_header parsed;
    CHECK_EQ(tcp_parse(out, sizeof(out), CLIENT, SERVER, true, &parsed),
             TCP_PARSE_BAD_CHECKSUM);
    tcp_emit(&header, CLIENT, SERVER, out, 13);
    CHECK(get16(out + 16) != with_payload);
    CHECK_EQ(tcp_parse(out, sizeof(out), CLIENT, SERVER, true, &parsed), TCP_PARSE_OK);
}

/* Emit writes exactly header plus options and reads exactly the payload it
 * was told of: an exact-size heap buffer keeps ASan watching both ends,
 * and the payload is left as it was. */
static void test_tcp_emit_stays_within_header_and_payload(void)
{
    for (unsigned mask = 0; mask < 16; mask++) {
        for (size_t blocks = 0; blocks <= TCP_SACK_BLOCKS_MAX; blocks++) {
            struct tcp_header header = {.flags = TCP_FLAG_ACK,
                                        .options = options_with(mask, blocks)};
            size_t header_length = TCP_HEADER_LENGTH + tcp_options_length(&header.options);
            for (size_t payload = 0; payload <= 9; payload++) {
                uint8_t *out = malloc(header_length + payload);
                CHECK(out != NULL);
                uint8_t saved[9];
                random_fill(saved, payload);
                memcpy(out + header_length, saved, payload);
                CHECK_EQ(tcp_emit(&header, CLIENT, SERVER, out, payload), header_length);
                CHECK(memcmp(out + header_length, saved, payload) == 0);
                free(out);
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Robustness                                                                */
/* ------------------------------------------------------------------------ */

#define RANDOM_ROUNDS 100000

/* An option-list check written apart from tcp.c: true when well formed. */
static bool reference_options_well_formed(const uint8_t *options, size_t length)
{
    size_t i = 0;
    while (i < length && options[i] != 0) {
        if (options[i] == 1) {
            i += 1;
        } else if (length - i < 2 || options[i + 1] < 2 || options[i + 1] > length - i) {
            return false;
        } else {
            i += options[i + 1];
        }
    }
    return true;
}

/* A random buffer of 0..100 bytes, malloc'd to exactly its length; often
 * with a plausible data offset, options made of small kinds and lengths so
 * the walk gets deep, and a correct checksum. */
static uint8_t *random_segment(size_t *length_out, uint32_t source, uint32_t destination)
{
    size_t length = random_below(101);
    uint8_t *segment = malloc(length > 0 ? length : 1);
    CHECK(segment != NULL);
    random_fill(segment, length);
    if (length >= TCP_HEADER_LENGTH && random_below(4) != 0) {
        size_t max_words = length / 4 < 15 ? length / 4 : 15;
        size_t words = 5 + random_below((uint32_t)(max_words - 5 + 1));
        segment[12] = (uint8_t)(words << 4 | (segment[12] & 0x0f));
        if (random_below(2) == 0) {
            for (size_t i = TCP_HEADER_LENGTH; i < words * 4; i++)
                segment[i] = (uint8_t)(random_below(3) == 0 ? random_next() : random_below(12));
        }
        if (random_below(2) == 0)
            tcp_fix_checksum(segment, length, source, destination);
    }
    *length_out = length;
    return segment;
}

/* Random buffers never read out of bounds, give a result from the enum,
 * the result an independent model predicts, and when accepted a header
 * within the segment and the documented ranges. */
static void test_random_buffers_through_tcp_parse(void)
{
    size_t accepted = 0;
    for (int round = 0; round < RANDOM_ROUNDS; round++) {
        uint32_t source = random_next(), destination = random_next();
        size_t length;
        uint8_t *segment = random_segment(&length, source, destination);
        for (int verify = 0; verify < 2; verify++) {
            struct tcp_header header;
            enum tcp_parse_result result =
                tcp_parse(segment, length, source, destination, verify, &header);
            CHECK(result == TCP_PARSE_OK || result == TCP_PARSE_TRUNCATED ||
                  result == TCP_PARSE_BAD_HEADER_LENGTH || result == TCP_PARSE_BAD_CHECKSUM ||
                  result == TCP_PARSE_BAD_OPTIONS);
            enum tcp_parse_result expected;
            size_t header_length = length >= 13 ? (size_t)(segment[12] >> 4) * 4 : 0;
            if (length < TCP_HEADER_LENGTH)
                expected = TCP_PARSE_TRUNCATED;
            else if (header_length < TCP_HEADER_LENGTH || header_length > length)
                expected = TCP_PARSE_BAD_HEADER_LENGTH;
            else if (verify && reference_tcp_checksum(segment, length, source, destination) != 0)
                expected = TCP_PARSE_BAD_CHECKSUM;
            else if (!reference_options_well_formed(segment + TCP_HEADER_LENGTH,
                                                    header_length - TCP_HEADER_LENGTH))
                expected = TCP_PARSE_BAD_OPTIONS;
            else
                expected = TCP_PARSE_OK;
            CHECK_EQ(result, expected);
            if (result != TCP_PARSE_OK)
                continue;
            accepted++;
            CHECK_EQ(header.header_length, header_length);
            CHECK(header.header_length % 4 == 0 && header.header_length <= TCP_HEADER_MAX);
            CHECK(header.options.sack_block_count <= TCP_SACK_BLOCKS_MAX);
            CHECK_EQ(header.checksum, get16(segment + 16));
        }
        free(segment);
    }
    CHECK(accepted > RANDOM_ROUNDS / 10);
}

/* Whatever parses can be emitted again and parses back the same, but for
 * unknown options (dropped) and SACK blocks past 40 bytes (trimmed from
 * the end). */
static void test_random_segments_survive_parse_emit_parse(void)
{
    for (int round = 0; round < RANDOM_ROUNDS; round++) {
        uint32_t source = random_next(), destination = random_next();
        size_t length;
        uint8_t *segment = random_segment(&length, source, destination);
        struct tcp_header first;
        if (tcp_parse(segment, length, source, destination, false, &first) != TCP_PARSE_OK) {
            free(segment);
            continue;
        }
        size_t payload = length - first.header_length;
        size_t header_length = TCP_HEADER_LENGTH + tcp_options_length(&first.options);
        uint8_t *out = malloc(header_length + payload);
        CHECK(out != NULL);
        if (payload > 0)
            memcpy(out + header_length, segment + first.header_length, payload);
        CHECK_EQ(tcp_emit(&first, source, destination, out, payload), header_length);
        struct tcp_header second;
        CHECK_EQ(tcp_parse(out, header_length + payload, source, destination, true, &second),
                 TCP_PARSE_OK);
        unsigned mask = (first.options.has_mss ? WITH_MSS : 0) |
                        (first.options.has_window_scale ? WITH_WINDOW_SCALE : 0) |
                        (first.options.sack_permitted ? WITH_SACK_PERMITTED : 0) |
                        (first.options.has_timestamps ? WITH_TIMESTAMPS : 0);
        struct tcp_header expected = first;
        expected.options.sack_block_count =
            (uint8_t)sack_blocks_expected(mask, first.options.sack_block_count);
        check_headers_equal_but_checksum(&second, &expected);
        free(out);
        free(segment);
    }
}

static const struct check_test tests[] = {
    CHECK_TEST(test_tcp_checksum_of_captured_segments_matches_reference),
    CHECK_TEST(test_tcp_parses_captured_syn_with_mss_sack_permitted_timestamps_and_window_scale),
    CHECK_TEST(test_tcp_parses_captured_syn_ack),
    CHECK_TEST(test_tcp_parses_captured_data_segment_with_verified_checksum),
    CHECK_TEST(test_tcp_parses_captured_ack_with_three_sack_blocks),
    CHECK_TEST(test_tcp_emit_reproduces_captured_segments),
    CHECK_TEST(test_tcp_emit_checksum_partial_finishes_to_captured_segments),

    CHECK_TEST(test_tcp_rejects_every_truncation_of_captured_syn),
    CHECK_TEST(test_tcp_rejects_every_truncation_of_captured_data_segment),
    CHECK_TEST(test_tcp_rejects_data_offset_below_five),
    CHECK_TEST(test_tcp_rejects_data_offset_beyond_the_segment),
    CHECK_TEST(test_tcp_accepts_data_offset_equal_to_segment_length),
    CHECK_TEST(test_tcp_ignores_reserved_bits_beside_the_data_offset),
    CHECK_TEST(test_tcp_reads_all_eight_flag_bits_and_the_urgent_pointer),

    CHECK_TEST(test_tcp_rejects_bad_checksum_for_every_single_bit_error),
    CHECK_TEST(test_tcp_checksum_covers_pseudo_header),
    CHECK_TEST(test_tcp_rejects_zeroed_checksum),
    CHECK_TEST(test_tcp_skips_checksum_verification_when_asked),
    CHECK_TEST(test_tcp_checks_checksum_before_options),

    CHECK_TEST(test_tcp_zeroes_options_before_reading_them),
    CHECK_TEST(test_tcp_rejects_option_length_zero),
    CHECK_TEST(test_tcp_rejects_option_length_one),
    CHECK_TEST(test_tcp_rejects_option_overrunning_the_header),
    CHECK_TEST(test_tcp_rejects_kind_in_last_byte_without_length),
    CHECK_TEST(test_tcp_ignores_mss_with_wrong_length),
    CHECK_TEST(test_tcp_ignores_window_scale_with_wrong_length),
    CHECK_TEST(test_tcp_ignores_sack_permitted_and_timestamps_with_wrong_length),
    CHECK_TEST(test_tcp_ignores_sack_with_lengths_not_two_plus_eight_n),
    CHECK_TEST(test_tcp_reads_four_sack_blocks_and_cannot_be_given_five),
    CHECK_TEST(test_tcp_second_sack_option_replaces_the_first),
    CHECK_TEST(test_tcp_stops_at_end_of_option_list_and_ignores_what_follows),
    CHECK_TEST(test_tcp_skips_unknown_options_by_length),
    CHECK_TEST(test_tcp_stores_window_scale_as_sent),

    CHECK_TEST(test_tcp_options_length_for_each_combination),
    CHECK_TEST(test_tcp_emit_lays_out_options_like_linux),
    CHECK_TEST(test_tcp_emit_trims_sack_blocks_to_forty_bytes),
    CHECK_TEST(test_tcp_round_trip_every_option_combination),
    CHECK_TEST(test_tcp_emit_ignores_header_length_field),
    CHECK_TEST(test_tcp_emit_checksum_covers_payload),
    CHECK_TEST(test_tcp_emit_stays_within_header_and_payload),

    CHECK_TEST(test_random_buffers_through_tcp_parse),
    CHECK_TEST(test_random_segments_survive_parse_emit_parse),
};

CHECK_MAIN(tests)
