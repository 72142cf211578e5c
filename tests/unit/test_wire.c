/*
 * test_wire.c - unit tests for the wire-format views in src/wire: the
 * Internet checksum, big-endian loads and stores, Ethernet, ARP, IPv4, ICMP
 * and UDP.
 *
 * The good packets are real: they were captured with tcpdump on a veth pair
 * between two Linux network namespaces (10.0.0.1 at 02:00:00:00:00:01 and
 * 10.0.0.2 at 02:00:00:00:00:02) while running `ping -c 1 10.0.0.2` and
 * sending two UDP datagrams from port 40000.  Checksums are checked against
 * reference_checksum() below, a byte-at-a-time implementation written
 * independently of src/wire/checksum.c.
 *
 * Every parse of a hostile or truncated buffer is done on a malloc'd copy of
 * exactly that many bytes, so AddressSanitizer reports any read past it.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "wire/arp.h"
#include "wire/bytes.h"
#include "util/packet_buffer.h"
#include "util/ring.h"
#include "util/siphash.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/icmp.h"
#include "wire/ipv4.h"
#include "wire/udp.h"

/* ------------------------------------------------------------------------ */
/* Captured frames                                                           */
/* ------------------------------------------------------------------------ */

/* ARP request: who-has 10.0.0.2 tell 10.0.0.1 (42 bytes, as captured). */
static const uint8_t arp_request_frame[] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06,
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x02,
};

/* ARP reply: 10.0.0.2 is-at 02:00:00:00:00:02. */
static const uint8_t arp_reply_frame[] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x06,
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
    0x0a, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x01,
};

/* ICMP echo request 10.0.0.1 -> 10.0.0.2, id 0x136e, seq 1, 56 data bytes
 * (Linux ping: 8-byte timestamp then 0x10..0x37).  IPv4 id 0x3d07, DF, TTL
 * 64, header checksum 0xe99f; ICMP checksum 0xa1e9. */
static const uint8_t echo_request_frame[] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
    0x45, 0x00, 0x00, 0x54, 0x3d, 0x07, 0x40, 0x00, 0x40, 0x01, 0xe9, 0x9f,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
    0x08, 0x00, 0xa1, 0xe9, 0x13, 0x6e, 0x00, 0x01,
    0x5f, 0x59, 0x02, 0x6b, 0x00, 0x00, 0x00, 0x00, 0x1e, 0x10, 0x04, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
    0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
    0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
};

/* The echo reply to it: IPv4 id 0x4194, no flags, header checksum 0x2513;
 * ICMP type 0, checksum 0xa9e9, same id, sequence and data. */
static const uint8_t echo_reply_frame[] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00,
    0x45, 0x00, 0x00, 0x54, 0x41, 0x94, 0x00, 0x00, 0x40, 0x01, 0x25, 0x13,
    0x0a, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x01,
    0x00, 0x00, 0xa9, 0xe9, 0x13, 0x6e, 0x00, 0x01,
    0x5f, 0x59, 0x02, 0x6b, 0x00, 0x00, 0x00, 0x00, 0x1e, 0x10, 0x04, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
    0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
    0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
};

/* UDP 10.0.0.1:40000 -> 10.0.0.2:7, payload "hello, usock\n" (UDP length
 * 21).  The sender's veth had checksum offload on, so the wire carries the
 * partial pseudo-header sum 0x1429; tcpdump -vv reports the correct checksum
 * as 0x0a2c (and so does reference_checksum, and Python).  Tests that want a
 * good datagram patch in UDP_HELLO_CHECKSUM. */
static const uint8_t udp_hello_frame[] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
    0x45, 0x00, 0x00, 0x29, 0x5e, 0x91, 0x40, 0x00, 0x40, 0x11, 0xc8, 0x30,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
    0x9c, 0x40, 0x00, 0x07, 0x00, 0x15, 0x14, 0x29,
    'h', 'e', 'l', 'l', 'o', ',', ' ', 'u', 's', 'o', 'c', 'k', '\n',
};
#define UDP_HELLO_CHECKSUM 0x0a2c
#define UDP_HELLO_PARTIAL_CHECKSUM 0x1429

/* UDP 10.0.0.1:40000 -> 10.0.0.2:9, payload "odd" (an odd UDP length, 11);
 * correct checksum 0x7c27, partial 0x141f on the wire. */
static const uint8_t udp_odd_frame[] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
    0x45, 0x00, 0x00, 0x1f, 0x5e, 0x92, 0x40, 0x00, 0x40, 0x11, 0xc8, 0x39,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
    0x9c, 0x40, 0x00, 0x09, 0x00, 0x0b, 0x14, 0x1f, 'o', 'd', 'd',
};
#define UDP_ODD_CHECKSUM 0x7c27

/* ICMP port unreachable from 10.0.0.2 for the hello datagram: TOS 0xc0,
 * header checksum 0x245c, ICMP checksum 0x0729, quoting the whole datagram. */
static const uint8_t port_unreachable_frame[] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00,
    0x45, 0xc0, 0x00, 0x45, 0x41, 0x9a, 0x00, 0x00, 0x40, 0x01, 0x24, 0x5c,
    0x0a, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x01,
    0x03, 0x03, 0x07, 0x29, 0x00, 0x00, 0x00, 0x00,
    0x45, 0x00, 0x00, 0x29, 0x5e, 0x91, 0x40, 0x00, 0x40, 0x11, 0xc8, 0x30,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
    0x9c, 0x40, 0x00, 0x07, 0x00, 0x15, 0x14, 0x29,
    'h', 'e', 'l', 'l', 'o', ',', ' ', 'u', 's', 'o', 'c', 'k', '\n',
};

#define ETH ETHERNET_HEADER_LENGTH
#define IP IPV4_HEADER_LENGTH

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* A heap copy of exactly length bytes, so ASan sees any read past the end. */
static uint8_t *exact_copy(const uint8_t *source, size_t length)
{
    uint8_t *copy = malloc(length);
    CHECK(copy != NULL || length == 0);
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

/* The reference UDP checksum: pseudo-header and datagram laid out
 * contiguously and summed with reference_checksum(). */
static uint16_t reference_udp_checksum(const uint8_t *datagram, size_t length,
                                       const uint8_t source[4], const uint8_t destination[4])
{
    uint8_t *all = malloc(12 + length);
    CHECK(all != NULL);
    memcpy(all, source, 4);
    memcpy(all + 4, destination, 4);
    all[8] = 0;
    all[9] = 17;
    all[10] = (uint8_t)(length >> 8);
    all[11] = (uint8_t)length;
    if (length > 0)
        memcpy(all + 12, datagram, length);
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

/* An IPv4 address in network order, like in_addr_t. */
static uint32_t address(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    const uint8_t bytes[4] = {a, b, c, d};
    uint32_t result;
    memcpy(&result, bytes, 4);
    return result;
}

static const uint8_t host1[4] = {10, 0, 0, 1};
static const uint8_t host2[4] = {10, 0, 0, 2};

/* Stores a correct header checksum over the first header_length bytes. */
static void ipv4_fix_checksum(uint8_t *packet, size_t header_length)
{
    packet[10] = 0;
    packet[11] = 0;
    put16(packet + 10, reference_checksum(packet, header_length));
}

/* Writes a plausible header (UDP, 10.0.0.1 -> 10.0.0.2, TTL 64) of
 * header_length bytes with the given options (the rest zero), the given
 * total length, and a correct checksum over header_length bytes. */
static void ipv4_build(uint8_t *packet, size_t header_length, const uint8_t *options,
                       size_t options_length, uint16_t total_length)
{
    memset(packet, 0, header_length);
    packet[0] = (uint8_t)(0x40 | (header_length / 4));
    put16(packet + 2, total_length);
    put16(packet + 4, 0x1234);
    packet[8] = 64;
    packet[9] = 17;
    memcpy(packet + 12, host1, 4);
    memcpy(packet + 16, host2, 4);
    if (options_length > 0)
        memcpy(packet + IP, options, options_length);
    ipv4_fix_checksum(packet, header_length);
}

/* Parses a packet whose header carries options_length bytes of options
 * (a multiple of 4) followed by payload_length bytes of payload; the checksum
 * is correct, so the options decide.  Checks that skipping checksum
 * verification gives the same answer, and returns it. */
static enum ipv4_parse_result parse_with_options(const uint8_t *options, size_t options_length,
                                                 const uint8_t *payload, size_t payload_length)
{
    CHECK(options_length % 4 == 0 && options_length <= 40);
    uint8_t built[IPV4_HEADER_MAX + 64];
    size_t header_length = IP + options_length;
    size_t length = header_length + payload_length;
    CHECK(length <= sizeof(built));
    ipv4_build(built, header_length, options, options_length, (uint16_t)length);
    if (payload_length > 0)
        memcpy(built + header_length, payload, payload_length);
    uint8_t *packet = exact_copy(built, length);
    struct ipv4_header header;
    enum ipv4_parse_result verified = ipv4_parse(packet, length, true, &header);
    enum ipv4_parse_result unverified = ipv4_parse(packet, length, false, &header);
    CHECK_EQ(unverified, verified);
    if (verified == IPV4_PARSE_OK)
        CHECK_EQ(header.header_length, header_length);
    free(packet);
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

static void check_ipv4_headers_equal(const struct ipv4_header *a, const struct ipv4_header *b)
{
    CHECK_EQ(a->header_length, b->header_length);
    CHECK_EQ(a->type_of_service, b->type_of_service);
    CHECK_EQ(a->total_length, b->total_length);
    CHECK_EQ(a->identification, b->identification);
    CHECK_EQ(a->dont_fragment, b->dont_fragment);
    CHECK_EQ(a->more_fragments, b->more_fragments);
    CHECK_EQ(a->fragment_offset, b->fragment_offset);
    CHECK_EQ(a->time_to_live, b->time_to_live);
    CHECK_EQ(a->protocol, b->protocol);
    CHECK_EQ(a->checksum, b->checksum);
    CHECK_EQ(a->source, b->source);
    CHECK_EQ(a->destination, b->destination);
}

static void check_arp_packets_equal(const struct arp_packet *a, const struct arp_packet *b)
{
    CHECK_EQ(a->operation, b->operation);
    CHECK(memcmp(a->sender_mac, b->sender_mac, 6) == 0);
    CHECK_EQ(a->sender_address, b->sender_address);
    CHECK(memcmp(a->target_mac, b->target_mac, 6) == 0);
    CHECK_EQ(a->target_address, b->target_address);
}

/* ------------------------------------------------------------------------ */
/* Checksum                                                                  */
/* ------------------------------------------------------------------------ */

/* RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to 2ddf0, folds to ddf2,
 * and the checksum is its complement 220d. */
static void test_checksum_rfc1071_example_folds_to_ddf2_and_complements_to_220d(void)
{
    static const uint8_t data[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    uint32_t sum = checksum_add(0, data, sizeof(data));
    CHECK_EQ((uint16_t)~checksum_finish(sum), 0xddf2);
    CHECK_EQ(checksum_finish(sum), 0x220d);
    CHECK_EQ(reference_checksum(data, sizeof(data)), 0x220d);
}

/* RFC 1071: the sum is independent of byte order in the sense that
 * swapping every pair of bytes swaps the folded sum's bytes. */
static void test_checksum_rfc1071_byte_swapped_input_gives_byte_swapped_sum(void)
{
    static const uint8_t data[] = {0x01, 0x00, 0x03, 0xf2, 0xf5, 0xf4, 0xf7, 0xf6};
    CHECK_EQ(checksum_finish(checksum_add(0, data, sizeof(data))), 0x0d22);
}

static void test_checksum_of_nothing_is_ffff(void)
{
    CHECK_EQ(checksum_finish(checksum_add(0, "", 0)), 0xffff);
    CHECK_EQ(checksum_finish(0), 0xffff);
}

static void test_checksum_of_zero_bytes_is_ffff(void)
{
    static const uint8_t zeros[64];
    for (size_t length = 0; length <= sizeof(zeros); length++)
        CHECK_EQ(checksum_finish(checksum_add(0, zeros, length)), 0xffff);
}

static void test_checksum_add_of_zero_length_keeps_running_sum(void)
{
    static const uint8_t data[] = {0xde, 0xad};
    CHECK_EQ(checksum_add(0x12345, data, 0), 0x12345);
}

static void test_checksum_odd_length_pads_last_byte_with_zero(void)
{
    static const uint8_t one[] = {0x01};
    CHECK_EQ(checksum_finish(checksum_add(0, one, 1)), 0xfeff);
    static const uint8_t odd[] = {0x12, 0x34, 0x56};
    static const uint8_t padded[] = {0x12, 0x34, 0x56, 0x00};
    CHECK_EQ(checksum_finish(checksum_add(0, odd, 3)), checksum_finish(checksum_add(0, padded, 4)));
    CHECK_EQ(checksum_finish(checksum_add(0, odd, 3)), (uint16_t)~(0x1234 + 0x5600));
}

/* The last byte is padded, not read: the byte after an odd-length buffer
 * must not change the sum. */
static void test_checksum_odd_length_does_not_read_past_the_end(void)
{
    uint8_t *data = exact_copy((const uint8_t *)"\xab\xcd\xef", 3);
    CHECK_EQ(checksum_finish(checksum_add(0, data, 3)), (uint16_t)~(0xabcd + 0xef00 - 0xffff));
    free(data);
}

static void test_checksum_matches_reference_for_every_length_up_to_1500(void)
{
    uint8_t data[1500];
    random_fill(data, sizeof(data));
    for (size_t length = 0; length <= sizeof(data); length++) {
        uint8_t *copy = exact_copy(data, length);
        CHECK_EQ(checksum_finish(checksum_add(0, copy, length)), reference_checksum(data, length));
        free(copy);
    }
}

static void test_checksum_matches_reference_on_all_ones_and_near_carries(void)
{
    uint8_t data[256];
    for (int pattern = 0; pattern < 4; pattern++) {
        static const uint8_t fills[] = {0xff, 0xfe, 0x80, 0x7f};
        memset(data, fills[pattern], sizeof(data));
        for (size_t length = 0; length <= sizeof(data); length++)
            CHECK_EQ(checksum_finish(checksum_add(0, data, length)),
                     reference_checksum(data, length));
    }
}

/* Long buffers (a 64 KiB super-segment) at every alignment, all ones and
 * random, and a running sum already near 2^32: the word-at-a-time loop
 * must lose no carry. */
static void test_checksum_matches_reference_on_long_unaligned_buffers(void)
{
    static uint8_t data[65536 + 8];
    for (int pattern = 0; pattern < 2; pattern++) {
        if (pattern == 0)
            memset(data, 0xff, sizeof(data));
        else
            random_fill(data, sizeof(data));
        for (size_t offset = 0; offset < 8; offset++) {
            size_t length = 65536 - offset;
            CHECK_EQ(checksum_finish(checksum_add(0, data + offset, length)),
                     reference_checksum(data + offset, length));
            uint32_t near_wrap = 0xfffffff0u;
            uint32_t folded_start = (near_wrap & 0xffff) + (near_wrap >> 16);
            folded_start = (folded_start & 0xffff) + (folded_start >> 16);
            uint32_t reference_sum = (uint16_t)~reference_checksum(data + offset, length);
            CHECK_EQ(checksum_finish(checksum_add(near_wrap, data + offset, length)),
                     checksum_finish(folded_start + reference_sum));
        }
    }
}

/* SipHash-2-4 against the reference vectors of the SipHash paper (key
 * 00..0f, message 00..0e truncated to 0, 8 and 15 bytes); SipHash-1-3 is
 * the same code with fewer rounds, so it must differ and be deterministic. */
static void test_siphash_matches_reference_vectors(void)
{
    uint8_t key[16], message[15];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        message[i] = (uint8_t)i;
    CHECK(siphash24(key, message, 0) == 0x726fdb47dd0e0e31ULL);
    CHECK(siphash24(key, message, 8) == 0x93f5f5799a932462ULL);
    CHECK(siphash24(key, message, 15) == 0xa129ca6149be45e5ULL);
    CHECK(siphash13(key, message, 15) != siphash24(key, message, 15));
    CHECK(siphash13(key, message, 15) == siphash13(key, message, 15));
}

/* A packet buffer whose payload is still in a ring (a TCP segment left for
 * the link to gather) gets the payload copied in when it must wait: in
 * place when the tailroom holds it, else moved to a larger buffer with its
 * headers and offload marks, the transport header pointer following. */
static void test_packet_buffer_linearize_copies_the_ring_payload_in(void)
{
    struct ring ring;
    ring_init(&ring, 8192);
    uint8_t bytes[5000];
    random_fill(bytes, sizeof(bytes));
    CHECK_EQ(ring_write(&ring, bytes, 3000), 3000);
    CHECK_EQ(ring_discard(&ring, 2500), 2500); /* the head moves on ... */
    CHECK_EQ(ring_write(&ring, bytes + 3000, 2000), 2000); /* ... and may wrap */
    for (int tailroom = 0; tailroom < 2; tailroom++) {
        struct packet_buffer *buffer = packet_buffer_new(64, tailroom ? 1500 : 0);
        CHECK(buffer != NULL);
        uint8_t *header = packet_buffer_push(buffer, 20);
        memset(header, 0x5a, 20);
        buffer->checksum_partial = true;
        buffer->checksum_offset = 16;
        buffer->segment_size = 1000;
        buffer->transport_header = header;
        buffer->payload_ring = &ring;
        buffer->payload_offset = 100;
        buffer->payload_length = 1500;
        buffer = packet_buffer_linearize(buffer);
        CHECK(buffer != NULL);
        CHECK_EQ(buffer->length, 1520);
        CHECK(buffer->payload_ring == NULL);
        CHECK_EQ(buffer->payload_length, 0);
        CHECK(buffer->transport_header == buffer->data);
        CHECK(buffer->checksum_partial);
        CHECK_EQ(buffer->segment_size, 1000);
        CHECK_EQ(buffer->data[0], 0x5a);
        CHECK(memcmp(buffer->data + 20, bytes + 2500 + 100, 1500) == 0);
        CHECK(packet_buffer_linearize(buffer) == buffer); /* nothing left to do */
        packet_buffer_free(buffer);
    }
    ring_destroy(&ring);
}

/* A buffer with its own checksum stored in it (at an even offset) sums to
 * zero, for even and odd lengths. */
static void test_checksum_buffer_with_its_checksum_inserted_sums_to_zero(void)
{
    for (int round = 0; round < 2000; round++) {
        size_t length = 2 + random_below(300);
        uint8_t *data = malloc(length);
        CHECK(data != NULL);
        random_fill(data, length);
        size_t offset = 2 * random_below((uint32_t)(length / 2));
        data[offset] = 0;
        data[offset + 1] = 0;
        put16(data + offset, checksum_finish(checksum_add(0, data, length)));
        CHECK_EQ(checksum_finish(checksum_add(0, data, length)), 0);
        CHECK_EQ(reference_checksum(data, length), 0);
        free(data);
    }
}

/* Sums of pieces that split at even offsets add up to the sum of the whole
 * (the way headers, pseudo-headers and payloads are combined). */
static void test_checksum_running_sum_over_even_pieces_equals_whole(void)
{
    uint8_t data[600];
    for (int round = 0; round < 1000; round++) {
        size_t length = random_below(sizeof(data) + 1);
        random_fill(data, length);
        uint32_t sum = 0;
        size_t offset = 0;
        while (offset < length) {
            size_t piece = 2 * random_below(40);
            if (piece > length - offset)
                piece = length - offset;
            sum = checksum_add(sum, data + offset, piece);
            offset += piece;
        }
        CHECK_EQ(checksum_finish(sum), checksum_finish(checksum_add(0, data, length)));
    }
}

/* 256 KiB of 0xff is 131072 words of ffff: the raw sum overflows 32 bits,
 * and a lost carry would show. The ones'-complement sum is ffff (checksum 0). */
static void test_checksum_keeps_carries_on_long_buffers(void)
{
    size_t length = 256 * 1024;
    uint8_t *data = malloc(length);
    CHECK(data != NULL);
    memset(data, 0xff, length);
    CHECK_EQ(checksum_finish(checksum_add(0, data, length)), 0);
    CHECK_EQ(checksum_finish(checksum_add(0xffffffffu, data, length)), 0);
    memset(data, 0x80, length);
    CHECK_EQ(checksum_finish(checksum_add(0, data, length)), reference_checksum(data, length));
    data[length - 1] = 0x01;
    CHECK_EQ(checksum_finish(checksum_add(0, data, length)), reference_checksum(data, length));
    free(data);
}

static void test_checksum_finish_folds_carries_more_than_once(void)
{
    CHECK_EQ(checksum_finish(0x0001ffffu), 0xfffe);     /* ffff + 1 = 1_0000 -> 0001 */
    CHECK_EQ(checksum_finish(0xffffffffu), 0x0000);     /* ffff + ffff -> 1_fffe -> ffff */
    CHECK_EQ(checksum_finish(0xffff0000u), 0x0000);
    CHECK_EQ(checksum_finish(0x00010000u), 0xfffe);
    CHECK_EQ(checksum_finish(0x0000ffffu), 0x0000);
}

static void test_checksum_add_accepts_a_large_starting_sum(void)
{
    static const uint8_t data[] = {0xff, 0xff, 0xff, 0xff};
    uint32_t sum = checksum_add(0xfffffff0u, data, sizeof(data));
    /* ones'-complement: fffffff0 ~ fff0 + ffff = 1_ffef ~ fff0; + ffff + ffff ~ fff0 */
    CHECK_EQ(checksum_finish(sum), (uint16_t)~0xfff0);
}

static void test_checksum_pseudo_header_matches_reference(void)
{
    /* 10.0.0.1 -> 10.0.0.2, UDP, length 21: 0a00+0001+0a00+0002+0011+0015 */
    uint32_t sum = checksum_pseudo_header(address(10, 0, 0, 1), address(10, 0, 0, 2), 17, 21);
    CHECK_EQ(checksum_finish(sum), 0xebd6);
    static const uint8_t pseudo[] = {10, 0, 0, 1, 10, 0, 0, 2, 0, 17, 0, 21};
    CHECK_EQ(checksum_finish(sum), reference_checksum(pseudo, sizeof(pseudo)));
    uint32_t big = checksum_pseudo_header(address(255, 255, 255, 255), address(255, 255, 255, 254),
                                          255, 0xffff);
    static const uint8_t big_pseudo[] = {255, 255, 255, 255, 255, 255, 255, 254,
                                         0, 255, 0xff, 0xff};
    CHECK_EQ(checksum_finish(big), reference_checksum(big_pseudo, sizeof(big_pseudo)));
}

static void test_checksum_verifies_captured_headers_and_messages(void)
{
    CHECK_EQ(checksum_finish(checksum_add(0, echo_request_frame + ETH, IP)), 0);
    CHECK_EQ(checksum_finish(checksum_add(0, echo_reply_frame + ETH, IP)), 0);
    CHECK_EQ(checksum_finish(checksum_add(0, echo_request_frame + ETH + IP, 64)), 0);
    CHECK_EQ(checksum_finish(checksum_add(0, echo_reply_frame + ETH + IP, 64)), 0);
    CHECK_EQ(checksum_finish(checksum_add(0, port_unreachable_frame + ETH + IP, 49)), 0);
}

/* ------------------------------------------------------------------------ */
/* bytes.h                                                                   */
/* ------------------------------------------------------------------------ */

static void test_bytes_load_and_store_are_big_endian(void)
{
    static const uint8_t data[] = {0x12, 0x34, 0x56, 0x78};
    CHECK_EQ(load_be16(data), 0x1234);
    CHECK_EQ(load_be32(data), 0x12345678);
    static const uint8_t high[] = {0xff, 0xfe, 0x80, 0x01};
    CHECK_EQ(load_be16(high), 0xfffe);
    CHECK_EQ(load_be32(high), 0xfffe8001u);
    uint8_t out[4] = {0};
    store_be16(out, 0xabcd);
    CHECK(out[0] == 0xab && out[1] == 0xcd);
    store_be32(out, 0x89abcdefu);
    CHECK(out[0] == 0x89 && out[1] == 0xab && out[2] == 0xcd && out[3] == 0xef);
}

static void test_bytes_addresses_stay_in_network_order(void)
{
    static const uint8_t wire[] = {192, 168, 1, 200};
    uint32_t value = load_address(wire);
    CHECK_EQ(value, address(192, 168, 1, 200));
    uint8_t out[4];
    store_address(out, value);
    CHECK(memcmp(out, wire, 4) == 0);
}

/* ------------------------------------------------------------------------ */
/* Ethernet                                                                  */
/* ------------------------------------------------------------------------ */

static void test_ethernet_parses_captured_broadcast_arp_frame(void)
{
    struct ethernet_header header;
    CHECK_EQ(ethernet_parse(arp_request_frame, sizeof(arp_request_frame), &header), 0);
    static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t sender[6] = {0x02, 0, 0, 0, 0, 0x01};
    CHECK(memcmp(header.destination, broadcast, 6) == 0);
    CHECK(memcmp(header.source, sender, 6) == 0);
    CHECK_EQ(header.ethertype, ETHERTYPE_ARP);
    CHECK(ethernet_is_broadcast(header.destination));
    CHECK(ethernet_is_multicast(header.destination));
    CHECK(!ethernet_is_broadcast(header.source));
}

static void test_ethernet_parses_captured_ipv4_frame(void)
{
    struct ethernet_header header;
    CHECK_EQ(ethernet_parse(echo_request_frame, sizeof(echo_request_frame), &header), 0);
    CHECK(memcmp(header.destination, echo_request_frame, 6) == 0);
    CHECK(memcmp(header.source, echo_request_frame + 6, 6) == 0);
    CHECK_EQ(header.ethertype, ETHERTYPE_IPV4);
}

static void test_ethernet_rejects_runt_frames_of_every_length_below_14(void)
{
    for (size_t length = 0; length < ETH; length++) {
        uint8_t *frame = exact_copy(echo_request_frame, length);
        struct ethernet_header header;
        CHECK_EQ(ethernet_parse(frame, length, &header), -EINVAL);
        free(frame);
    }
}

static void test_ethernet_accepts_a_header_only_frame(void)
{
    uint8_t *frame = exact_copy(echo_request_frame, ETH);
    struct ethernet_header header;
    CHECK_EQ(ethernet_parse(frame, ETH, &header), 0);
    CHECK_EQ(header.ethertype, ETHERTYPE_IPV4);
    free(frame);
}

static void test_ethernet_reports_vlan_ethertype_without_interpreting_it(void)
{
    uint8_t built[18];
    memcpy(built, echo_request_frame, 12);
    put16(built + 12, ETHERTYPE_VLAN);
    put16(built + 14, 0x0064); /* VLAN 100 */
    put16(built + 16, ETHERTYPE_IPV4);
    uint8_t *frame = exact_copy(built, sizeof(built));
    struct ethernet_header header;
    CHECK_EQ(ethernet_parse(frame, sizeof(built), &header), 0);
    CHECK_EQ(header.ethertype, ETHERTYPE_VLAN);
    free(frame);
}

static void test_ethernet_round_trip(void)
{
    for (int round = 0; round < 1000; round++) {
        struct ethernet_header in, out;
        random_fill(in.destination, 6);
        random_fill(in.source, 6);
        in.ethertype = (uint16_t)random_next();
        uint8_t *frame = malloc(ETH);
        CHECK(frame != NULL);
        ethernet_emit(&in, frame);
        CHECK_EQ(ethernet_parse(frame, ETH, &out), 0);
        CHECK(memcmp(in.destination, out.destination, 6) == 0);
        CHECK(memcmp(in.source, out.source, 6) == 0);
        CHECK_EQ(in.ethertype, out.ethertype);
        free(frame);
    }
}

static void test_ethernet_emit_reproduces_captured_header(void)
{
    struct ethernet_header header;
    CHECK_EQ(ethernet_parse(arp_reply_frame, sizeof(arp_reply_frame), &header), 0);
    uint8_t out[ETH];
    ethernet_emit(&header, out);
    CHECK(memcmp(out, arp_reply_frame, ETH) == 0);
}

static void test_ethernet_classifies_broadcast_and_multicast_addresses(void)
{
    static const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t almost[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
    static const uint8_t ipv4_multicast[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x16};
    static const uint8_t unicast[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
    static const uint8_t zero[6] = {0};
    CHECK(ethernet_is_broadcast(broadcast));
    CHECK(!ethernet_is_broadcast(almost));
    CHECK(!ethernet_is_broadcast(ipv4_multicast));
    CHECK(!ethernet_is_broadcast(zero));
    CHECK(ethernet_is_multicast(broadcast));
    CHECK(ethernet_is_multicast(almost));
    CHECK(ethernet_is_multicast(ipv4_multicast));
    CHECK(!ethernet_is_multicast(unicast));
    CHECK(!ethernet_is_multicast(zero));
}

/* ------------------------------------------------------------------------ */
/* ARP                                                                       */
/* ------------------------------------------------------------------------ */

static void test_arp_parses_captured_request(void)
{
    struct arp_packet packet;
    uint8_t *copy = exact_copy(arp_request_frame + ETH, ARP_PACKET_LENGTH);
    CHECK_EQ(arp_parse(copy, ARP_PACKET_LENGTH, &packet), ARP_PARSE_OK);
    static const uint8_t sender[6] = {0x02, 0, 0, 0, 0, 0x01};
    static const uint8_t unknown[6] = {0};
    CHECK_EQ(packet.operation, ARP_OPERATION_REQUEST);
    CHECK(memcmp(packet.sender_mac, sender, 6) == 0);
    CHECK_EQ(packet.sender_address, address(10, 0, 0, 1));
    CHECK(memcmp(packet.target_mac, unknown, 6) == 0);
    CHECK_EQ(packet.target_address, address(10, 0, 0, 2));
    free(copy);
}

static void test_arp_parses_captured_reply(void)
{
    struct arp_packet packet;
    uint8_t *copy = exact_copy(arp_reply_frame + ETH, ARP_PACKET_LENGTH);
    CHECK_EQ(arp_parse(copy, ARP_PACKET_LENGTH, &packet), ARP_PARSE_OK);
    static const uint8_t sender[6] = {0x02, 0, 0, 0, 0, 0x02};
    static const uint8_t target[6] = {0x02, 0, 0, 0, 0, 0x01};
    CHECK_EQ(packet.operation, ARP_OPERATION_REPLY);
    CHECK(memcmp(packet.sender_mac, sender, 6) == 0);
    CHECK_EQ(packet.sender_address, address(10, 0, 0, 2));
    CHECK(memcmp(packet.target_mac, target, 6) == 0);
    CHECK_EQ(packet.target_address, address(10, 0, 0, 1));
    free(copy);
}

/* A 60-byte minimum Ethernet frame carries 18 bytes of padding after ARP. */
static void test_arp_ignores_ethernet_padding_after_28_bytes(void)
{
    uint8_t built[46];
    memcpy(built, arp_request_frame + ETH, ARP_PACKET_LENGTH);
    memset(built + ARP_PACKET_LENGTH, 0xa5, sizeof(built) - ARP_PACKET_LENGTH);
    uint8_t *copy = exact_copy(built, sizeof(built));
    struct arp_packet packet;
    CHECK_EQ(arp_parse(copy, sizeof(built), &packet), ARP_PARSE_OK);
    CHECK_EQ(packet.target_address, address(10, 0, 0, 2));
    free(copy);
}

static void test_arp_rejects_every_truncation_of_captured_request(void)
{
    for (size_t length = 0; length < ARP_PACKET_LENGTH; length++) {
        uint8_t *copy = exact_copy(arp_request_frame + ETH, length);
        struct arp_packet packet;
        CHECK_EQ(arp_parse(copy, length, &packet), ARP_PARSE_TRUNCATED);
        free(copy);
    }
}

/* Changes the byte at offset of the captured request and expects
 * ARP_PARSE_UNSUPPORTED. */
static void check_arp_unsupported_with_byte(size_t offset, uint8_t value)
{
    uint8_t built[ARP_PACKET_LENGTH];
    memcpy(built, arp_request_frame + ETH, sizeof(built));
    built[offset] = value;
    uint8_t *copy = exact_copy(built, sizeof(built));
    struct arp_packet packet;
    CHECK_EQ(arp_parse(copy, sizeof(built), &packet), ARP_PARSE_UNSUPPORTED);
    free(copy);
}

static void test_arp_rejects_non_ethernet_hardware_type(void)
{
    check_arp_unsupported_with_byte(1, 6);    /* IEEE 802 */
    check_arp_unsupported_with_byte(1, 0);
    check_arp_unsupported_with_byte(0, 0x01); /* 0x0101 */
    check_arp_unsupported_with_byte(0, 0xff);
}

static void test_arp_rejects_non_ipv4_protocol_type(void)
{
    check_arp_unsupported_with_byte(2, 0x86); /* 0x8600 */
    check_arp_unsupported_with_byte(3, 0x06); /* 0x0806 */
    check_arp_unsupported_with_byte(2, 0x00); /* 0x0000 */
}

static void test_arp_rejects_wrong_hardware_address_length(void)
{
    for (int value = 0; value < 256; value++)
        if (value != 6)
            check_arp_unsupported_with_byte(4, (uint8_t)value);
}

static void test_arp_rejects_wrong_protocol_address_length(void)
{
    for (int value = 0; value < 256; value++)
        if (value != 4)
            check_arp_unsupported_with_byte(5, (uint8_t)value);
}

static void test_arp_rejects_unknown_operations(void)
{
    static const uint16_t operations[] = {0, 3, 4, 8, 9, 0x0101, 0x0201, 0xffff};
    for (size_t i = 0; i < sizeof(operations) / sizeof(operations[0]); i++) {
        uint8_t built[ARP_PACKET_LENGTH];
        memcpy(built, arp_request_frame + ETH, sizeof(built));
        put16(built + 6, operations[i]);
        uint8_t *copy = exact_copy(built, sizeof(built));
        struct arp_packet packet;
        CHECK_EQ(arp_parse(copy, sizeof(built), &packet), ARP_PARSE_UNSUPPORTED);
        free(copy);
    }
}

static void test_arp_emit_reproduces_captured_request_and_reply(void)
{
    const uint8_t *frames[] = {arp_request_frame, arp_reply_frame};
    for (int i = 0; i < 2; i++) {
        struct arp_packet packet;
        CHECK_EQ(arp_parse(frames[i] + ETH, ARP_PACKET_LENGTH, &packet), ARP_PARSE_OK);
        uint8_t *out = malloc(ARP_PACKET_LENGTH);
        CHECK(out != NULL);
        arp_emit(&packet, out);
        CHECK(memcmp(out, frames[i] + ETH, ARP_PACKET_LENGTH) == 0);
        free(out);
    }
}

static void test_arp_round_trip(void)
{
    for (int round = 0; round < 1000; round++) {
        struct arp_packet in, out;
        in.operation = (round % 2) ? ARP_OPERATION_REPLY : ARP_OPERATION_REQUEST;
        random_fill(in.sender_mac, 6);
        random_fill(in.target_mac, 6);
        in.sender_address = random_next();
        in.target_address = random_next();
        uint8_t *wire = malloc(ARP_PACKET_LENGTH);
        CHECK(wire != NULL);
        arp_emit(&in, wire);
        CHECK_EQ(arp_parse(wire, ARP_PACKET_LENGTH, &out), ARP_PARSE_OK);
        check_arp_packets_equal(&in, &out);
        free(wire);
    }
}

/* ------------------------------------------------------------------------ */
/* IPv4                                                                      */
/* ------------------------------------------------------------------------ */

static void test_ipv4_parses_captured_echo_request_header(void)
{
    size_t length = sizeof(echo_request_frame) - ETH;
    uint8_t *packet = exact_copy(echo_request_frame + ETH, length);
    struct ipv4_header header;
    CHECK_EQ(ipv4_parse(packet, length, true, &header), IPV4_PARSE_OK);
    CHECK_EQ(header.header_length, 20);
    CHECK_EQ(header.type_of_service, 0);
    CHECK_EQ(header.total_length, 84);
    CHECK_EQ(header.identification, 0x3d07);
    CHECK(header.dont_fragment);
    CHECK(!header.more_fragments);
    CHECK_EQ(header.fragment_offset, 0);
    CHECK(!ipv4_is_fragment(&header));
    CHECK_EQ(header.time_to_live, 64);
    CHECK_EQ(header.protocol, 1);
    CHECK_EQ(header.checksum, 0xe99f);
    CHECK_EQ(header.source, address(10, 0, 0, 1));
    CHECK_EQ(header.destination, address(10, 0, 0, 2));
    free(packet);
}

static void test_ipv4_parses_captured_icmp_error_header_with_tos(void)
{
    size_t length = sizeof(port_unreachable_frame) - ETH;
    uint8_t *packet = exact_copy(port_unreachable_frame + ETH, length);
    struct ipv4_header header;
    CHECK_EQ(ipv4_parse(packet, length, true, &header), IPV4_PARSE_OK);
    CHECK_EQ(header.type_of_service, 0xc0);
    CHECK_EQ(header.total_length, 69);
    CHECK(!header.dont_fragment);
    CHECK_EQ(header.source, address(10, 0, 0, 2));
    /* The quoted datagram inside the ICMP error is itself a whole packet. */
    struct ipv4_header quoted;
    CHECK_EQ(ipv4_parse(packet + IP + ICMP_HEADER_LENGTH, length - IP - ICMP_HEADER_LENGTH, true,
                        &quoted),
             IPV4_PARSE_OK);
    CHECK_EQ(quoted.protocol, 17);
    CHECK_EQ(quoted.identification, 0x5e91);
    free(packet);
}

/* Below 20 bytes: truncated; from 20 up to the total length: the total
 * length claims bytes that did not arrive. */
static void test_ipv4_rejects_every_truncation_of_captured_packet(void)
{
    size_t full = sizeof(echo_request_frame) - ETH;
    for (size_t length = 0; length < full; length++) {
        uint8_t *packet = exact_copy(echo_request_frame + ETH, length);
        struct ipv4_header header;
        enum ipv4_parse_result expected =
            length < IP ? IPV4_PARSE_TRUNCATED : IPV4_PARSE_BAD_TOTAL_LENGTH;
        CHECK_EQ(ipv4_parse(packet, length, true, &header), expected);
        CHECK_EQ(ipv4_parse(packet, length, false, &header), expected);
        free(packet);
    }
}

static void test_ipv4_rejects_every_truncation_of_header_with_options(void)
{
    static const uint8_t router_alert[] = {0x94, 0x04, 0x00, 0x00};
    uint8_t built[28];
    ipv4_build(built, 24, router_alert, 4, sizeof(built));
    for (size_t length = 0; length < sizeof(built); length++) {
        uint8_t *packet = exact_copy(built, length);
        struct ipv4_header header;
        enum ipv4_parse_result expected = length < IP   ? IPV4_PARSE_TRUNCATED
                                          : length < 24 ? IPV4_PARSE_BAD_HEADER_LENGTH
                                                        : IPV4_PARSE_BAD_TOTAL_LENGTH;
        CHECK_EQ(ipv4_parse(packet, length, true, &header), expected);
        free(packet);
    }
}

/* Ethernet pads short packets to 46 bytes; total_length says where the
 * packet ends and the caller trims. */
static void test_ipv4_accepts_link_padding_past_total_length(void)
{
    uint8_t built[46];
    memset(built, 0, sizeof(built));
    memcpy(built, udp_odd_frame + ETH, sizeof(udp_odd_frame) - ETH);
    uint8_t *packet = exact_copy(built, sizeof(built));
    struct ipv4_header header;
    CHECK_EQ(ipv4_parse(packet, sizeof(built), true, &header), IPV4_PARSE_OK);
    CHECK_EQ(header.total_length, 31);
    free(packet);
}

static void test_ipv4_accepts_total_length_equal_to_header_length(void)
{
    uint8_t built[IP];
    ipv4_build(built, IP, NULL, 0, IP);
    uint8_t *packet = exact_copy(built, IP);
    struct ipv4_header header;
    CHECK_EQ(ipv4_parse(packet, IP, true, &header), IPV4_PARSE_OK);
    CHECK_EQ(header.total_length, IP);
    free(packet);
}

static void test_ipv4_rejects_versions_other_than_four(void)
{
    for (int version = 0; version < 16; version++) {
        if (version == 4)
            continue;
        uint8_t built[IP];
        ipv4_build(built, IP, NULL, 0, IP);
        built[0] = (uint8_t)(version << 4 | 5);
        ipv4_fix_checksum(built, IP);
        uint8_t *packet = exact_copy(built, IP);
        struct ipv4_header header;
        CHECK_EQ(ipv4_parse(packet, IP, true, &header), IPV4_PARSE_BAD_VERSION);
        CHECK_EQ(ipv4_parse(packet, IP, false, &header), IPV4_PARSE_BAD_VERSION);
        free(packet);
    }
}

/* An IPv6 packet handed to the IPv4 parser is a version error. */
static void test_ipv4_rejects_an_ipv6_header(void)
{
    static const uint8_t ipv6[40] = {0x60, 0x00, 0x00, 0x00, 0x00, 0x08, 0x11, 0x40};
    uint8_t *packet = exact_copy(ipv6, sizeof(ipv6));
    struct ipv4_header header;
    CHECK_EQ(ipv4_parse(packet, sizeof(ipv6), false, &header), IPV4_PARSE_BAD_VERSION);
    free(packet);
}

static void test_ipv4_rejects_header_length_below_five(void)
{
    for (int ihl = 0; ihl < 5; ihl++) {
        uint8_t built[40];
        ipv4_build(built, IP, NULL, 0, sizeof(built));
        memset(built + IP, 0, sizeof(built) - IP);
        built[0] = (uint8_t)(0x40 | ihl);
        ipv4_fix_checksum(built, IP);
        uint8_t *packet = exact_copy(built, sizeof(built));
        struct ipv4_header header;
        CHECK_EQ(ipv4_parse(packet, sizeof(built), true, &header), IPV4_PARSE_BAD_HEADER_LENGTH);
        CHECK_EQ(ipv4_parse(packet, sizeof(built), false, &header), IPV4_PARSE_BAD_HEADER_LENGTH);
        free(packet);
    }
}

/* IHL 6..15 on a 20-byte packet, and IHL 15 (60 bytes) on a 40-byte one:
 * the header would run past what arrived. */
static void test_ipv4_rejects_header_length_beyond_the_packet(void)
{
    for (int ihl = 6; ihl < 16; ihl++) {
        uint8_t built[IP];
        ipv4_build(built, IP, NULL, 0, IP);
        built[0] = (uint8_t)(0x40 | ihl);
        uint8_t *packet = exact_copy(built, IP);
        struct ipv4_header header;
        CHECK_EQ(ipv4_parse(packet, IP, true, &header), IPV4_PARSE_BAD_HEADER_LENGTH);
        CHECK_EQ(ipv4_parse(packet, IP, false, &header), IPV4_PARSE_BAD_HEADER_LENGTH);
        free(packet);
    }
    uint8_t built[40];
    memset(built, 1, sizeof(built)); /* NOPs, were they options */
    ipv4_build(built, IP, NULL, 0, sizeof(built));
    built[0] = 0x4f;
    uint8_t *packet = exact_copy(built, sizeof(built));
    struct ipv4_header header;
    CHECK_EQ(ipv4_parse(packet, sizeof(built), false, &header), IPV4_PARSE_BAD_HEADER_LENGTH);
    free(packet);
}

static void test_ipv4_rejects_total_length_beyond_the_frame(void)
{
    static const uint16_t totals[] = {41, 42, 100, 1500, 65535};
    for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++) {
        uint8_t built[40];
        memset(built, 0, sizeof(built));
        ipv4_build(built, IP, NULL, 0, totals[i]);
        uint8_t *packet = exact_copy(built, sizeof(built));
        struct ipv4_header header;
        CHECK_EQ(ipv4_parse(packet, sizeof(built), true, &header), IPV4_PARSE_BAD_TOTAL_LENGTH);
        CHECK_EQ(ipv4_parse(packet, sizeof(built), false, &header), IPV4_PARSE_BAD_TOTAL_LENGTH);
        free(packet);
    }
}

static void test_ipv4_rejects_total_length_below_header_length(void)
{
    for (uint16_t total = 0; total < IP; total++) {
        uint8_t built[40];
        memset(built, 0, sizeof(built));
        ipv4_build(built, IP, NULL, 0, total);
        uint8_t *packet = exact_copy(built, sizeof(built));
        struct ipv4_header header;
        CHECK_EQ(ipv4_parse(packet, sizeof(built), true, &header), IPV4_PARSE_BAD_TOTAL_LENGTH);
        free(packet);
    }
    /* With 8 bytes of options the header is 28: totals 20..27 are inside
     * the packet but cut the header. */
    static const uint8_t nops[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    for (uint16_t total = IP; total < 28; total++) {
        uint8_t built[40];
        memset(built, 0, sizeof(built));
        ipv4_build(built, 28, nops, sizeof(nops), total);
        uint8_t *packet = exact_copy(built, sizeof(built));
        struct ipv4_header header;
        CHECK_EQ(ipv4_parse(packet, sizeof(built), true, &header), IPV4_PARSE_BAD_TOTAL_LENGTH);
        free(packet);
    }
}

/* Any single flipped bit in a field the checksum alone protects is caught. */
static void test_ipv4_rejects_bad_checksum_for_every_single_bit_error(void)
{
    size_t length = sizeof(echo_request_frame) - ETH;
    for (size_t byte = 1; byte < IP; byte++) {
        if (byte == 2 || byte == 3)
            continue; /* total length: its own check may fire first */
        for (int bit = 0; bit < 8; bit++) {
            uint8_t *packet = exact_copy(echo_request_frame + ETH, length);
            packet[byte] ^= (uint8_t)(1 << bit);
            struct ipv4_header header;
            CHECK_EQ(ipv4_parse(packet, length, true, &header), IPV4_PARSE_BAD_CHECKSUM);
            CHECK_EQ(ipv4_parse(packet, length, false, &header), IPV4_PARSE_OK);
            free(packet);
        }
    }
}

static void test_ipv4_rejects_zeroed_checksum(void)
{
    size_t length = sizeof(echo_request_frame) - ETH;
    uint8_t *packet = exact_copy(echo_request_frame + ETH, length);
    packet[10] = 0;
    packet[11] = 0;
    struct ipv4_header header;
    CHECK_EQ(ipv4_parse(packet, length, true, &header), IPV4_PARSE_BAD_CHECKSUM);
    free(packet);
}

static void test_ipv4_skips_checksum_verification_when_asked(void)
{
    size_t length = sizeof(echo_request_frame) - ETH;
    uint8_t *packet = exact_copy(echo_request_frame + ETH, length);
    packet[10] ^= 0xff;
    struct ipv4_header header;
    CHECK_EQ(ipv4_parse(packet, length, false, &header), IPV4_PARSE_OK);
    CHECK_EQ(header.checksum, 0xe99f ^ 0xff00);
    CHECK_EQ(header.identification, 0x3d07);
    free(packet);
}

/* The payload is not covered by the header checksum. */
static void test_ipv4_checksum_does_not_cover_payload(void)
{
    size_t length = sizeof(echo_request_frame) - ETH;
    uint8_t *packet = exact_copy(echo_request_frame + ETH, length);
    packet[IP + 20] ^= 0xff;
    struct ipv4_header header;
    CHECK_EQ(ipv4_parse(packet, length, true, &header), IPV4_PARSE_OK);
    free(packet);
}

static void test_ipv4_checksum_covers_options(void)
{
    static const uint8_t router_alert[] = {0x94, 0x04, 0x00, 0x00};
    uint8_t built[24];
    ipv4_build(built, 24, router_alert, 4, 24);
    built[22] = 0x01; /* router alert value 1: still well formed */
    uint8_t *packet = exact_copy(built, sizeof(built));
    struct ipv4_header header;
    CHECK_EQ(ipv4_parse(packet, sizeof(built), true, &header), IPV4_PARSE_BAD_CHECKSUM);
    CHECK_EQ(ipv4_parse(packet, sizeof(built), false, &header), IPV4_PARSE_OK);
    free(packet);
}

/* A first fragment of a 3000-byte datagram over a 1500 MTU: MF set,
 * offset 0; the second: offset 185 units = 1480 bytes. */
static void test_ipv4_reads_fragment_flags_and_offset_in_bytes(void)
{
    static const struct {
        uint16_t field;
        bool dont_fragment, more_fragments;
        uint16_t offset;
    } cases[] = {
        {0x2000, false, true, 0},      {0x00b9, false, false, 1480},
        {0x20b9, false, true, 1480},   {0x4000, true, false, 0},
        {0x1fff, false, false, 65528}, {0x7fff, true, true, 65528},
        {0x8000, false, false, 0}, /* the reserved bit is not a flag */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t built[IP];
        ipv4_build(built, IP, NULL, 0, IP);
        put16(built + 6, cases[i].field);
        ipv4_fix_checksum(built, IP);
        uint8_t *packet = exact_copy(built, IP);
        struct ipv4_header header;
        CHECK_EQ(ipv4_parse(packet, IP, true, &header), IPV4_PARSE_OK);
        CHECK_EQ(header.dont_fragment, cases[i].dont_fragment);
        CHECK_EQ(header.more_fragments, cases[i].more_fragments);
        CHECK_EQ(header.fragment_offset, cases[i].offset);
        CHECK_EQ(ipv4_is_fragment(&header), cases[i].more_fragments || cases[i].offset != 0);
        free(packet);
    }
}

/* IGMPv3 reports carry Router Alert (RFC 2113): type 0x94, length 4. */
static void test_ipv4_accepts_router_alert_option(void)
{
    static const uint8_t options[] = {0x94, 0x04, 0x00, 0x00};
    CHECK_EQ(parse_with_options(options, sizeof(options), NULL, 0), IPV4_PARSE_OK);
}

static void test_ipv4_accepts_options_of_only_nops(void)
{
    uint8_t options[40];
    memset(options, 1, sizeof(options));
    for (size_t length = 4; length <= 40; length += 4)
        CHECK_EQ(parse_with_options(options, length, NULL, 0), IPV4_PARSE_OK);
}

static void test_ipv4_accepts_options_of_only_end_of_list(void)
{
    static const uint8_t options[8] = {0};
    CHECK_EQ(parse_with_options(options, sizeof(options), NULL, 0), IPV4_PARSE_OK);
}

/* After End of List the rest of the header is padding, whatever it holds. */
static void test_ipv4_ignores_bytes_after_end_of_list(void)
{
    static const uint8_t options[] = {0x00, 0x07, 0x00, 0xff};
    CHECK_EQ(parse_with_options(options, sizeof(options), NULL, 0), IPV4_PARSE_OK);
    static const uint8_t after_nops[] = {0x01, 0x01, 0x00, 0x44, 0xff, 0x00, 0x00, 0x00};
    CHECK_EQ(parse_with_options(after_nops, sizeof(after_nops), NULL, 0), IPV4_PARSE_OK);
    static const uint8_t after_option[] = {0x94, 0x04, 0x00, 0x00, 0x00, 0x07, 0x01, 0x00};
    CHECK_EQ(parse_with_options(after_option, sizeof(after_option), NULL, 0), IPV4_PARSE_OK);
}

static void test_ipv4_accepts_nops_between_options(void)
{
    static const uint8_t options[] = {0x01, 0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x00};
    CHECK_EQ(parse_with_options(options, sizeof(options), NULL, 0), IPV4_PARSE_OK);
}

static void test_ipv4_accepts_option_of_length_two(void)
{
    static const uint8_t options[] = {0x07, 0x02, 0x01, 0x01};
    CHECK_EQ(parse_with_options(options, sizeof(options), NULL, 0), IPV4_PARSE_OK);
}

/* Record Route (type 7) with room for 9 addresses: length 39, then EOL,
 * filling all 40 option bytes. */
static void test_ipv4_accepts_option_filling_the_largest_header(void)
{
    uint8_t options[40];
    memset(options, 0, sizeof(options));
    options[0] = 0x07;
    options[1] = 39;
    options[2] = 4;
    CHECK_EQ(parse_with_options(options, sizeof(options), NULL, 0), IPV4_PARSE_OK);
    options[1] = 40; /* now exactly to the end, no EOL */
    CHECK_EQ(parse_with_options(options, sizeof(options), NULL, 0), IPV4_PARSE_OK);
}

static void test_ipv4_accepts_option_ending_exactly_at_header_end(void)
{
    static const uint8_t options[] = {0x01, 0x01, 0x01, 0x01, 0x44, 0x04, 0x05, 0x00};
    CHECK_EQ(parse_with_options(options, sizeof(options), NULL, 0), IPV4_PARSE_OK);
}

static void test_ipv4_rejects_option_length_zero(void)
{
    static const uint8_t options[] = {0x07, 0x00, 0x00, 0x00};
    CHECK_EQ(parse_with_options(options, sizeof(options), NULL, 0), IPV4_PARSE_BAD_OPTIONS);
    static const uint8_t after_nop[] = {0x01, 0x44, 0x00, 0x00};
    CHECK_EQ(parse_with_options(after_nop, sizeof(after_nop), NULL, 0), IPV4_PARSE_BAD_OPTIONS);
}

static void test_ipv4_rejects_option_length_one(void)
{
    static const uint8_t options[] = {0x07, 0x01, 0x01, 0x01};
    CHECK_EQ(parse_with_options(options, sizeof(options), NULL, 0), IPV4_PARSE_BAD_OPTIONS);
    static const uint8_t later[] = {0x94, 0x04, 0x00, 0x00, 0x83, 0x01, 0x00, 0x00};
    CHECK_EQ(parse_with_options(later, sizeof(later), NULL, 0), IPV4_PARSE_BAD_OPTIONS);
}

static void test_ipv4_rejects_option_length_overrunning_header(void)
{
    static const uint8_t by_one[] = {0x94, 0x05, 0x00, 0x00};
    CHECK_EQ(parse_with_options(by_one, sizeof(by_one), NULL, 0), IPV4_PARSE_BAD_OPTIONS);
    static const uint8_t by_a_lot[] = {0x44, 0xff, 0x00, 0x00};
    CHECK_EQ(parse_with_options(by_a_lot, sizeof(by_a_lot), NULL, 0), IPV4_PARSE_BAD_OPTIONS);
    static const uint8_t second[] = {0x07, 0x03, 0x04, 0x07, 0x06, 0x00, 0x00, 0x00};
    CHECK_EQ(parse_with_options(second, sizeof(second), NULL, 0), IPV4_PARSE_BAD_OPTIONS);
    uint8_t largest[40];
    memset(largest, 0, sizeof(largest));
    largest[0] = 0x07;
    largest[1] = 41;
    CHECK_EQ(parse_with_options(largest, sizeof(largest), NULL, 0), IPV4_PARSE_BAD_OPTIONS);
}

/* The option overruns the header but not the packet: the payload must not
 * be taken as option bytes. */
static void test_ipv4_rejects_option_overrunning_into_payload(void)
{
    static const uint8_t options[] = {0x01, 0x01, 0x94, 0x04};
    static const uint8_t payload[] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    CHECK_EQ(parse_with_options(options, sizeof(options), payload, sizeof(payload)),
             IPV4_PARSE_BAD_OPTIONS);
}

static void test_ipv4_rejects_option_type_at_last_byte_with_no_length(void)
{
    static const uint8_t options[] = {0x01, 0x01, 0x01, 0x07};
    CHECK_EQ(parse_with_options(options, sizeof(options), NULL, 0), IPV4_PARSE_BAD_OPTIONS);
    static const uint8_t after_option[] = {0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x83};
    CHECK_EQ(parse_with_options(after_option, sizeof(after_option), NULL, 0),
             IPV4_PARSE_BAD_OPTIONS);
}

/* The length byte of an option at the last header byte would be the first
 * payload byte; a parser that read it would accept this packet. */
static void test_ipv4_does_not_read_option_length_from_payload(void)
{
    static const uint8_t options[] = {0x01, 0x01, 0x01, 0x07};
    static const uint8_t payload[] = {0x02, 0x00, 0x00, 0x00};
    CHECK_EQ(parse_with_options(options, sizeof(options), payload, sizeof(payload)),
             IPV4_PARSE_BAD_OPTIONS);
}

static void test_ipv4_rejects_bad_option_after_good_ones(void)
{
    static const uint8_t options[] = {0x01, 0x94, 0x04, 0x00, 0x00, 0x01, 0x07, 0x00};
    CHECK_EQ(parse_with_options(options, sizeof(options), NULL, 0), IPV4_PARSE_BAD_OPTIONS);
}

/* Every 4-byte option field, exhaustively over a small alphabet, against a
 * reading of RFC 791. */
static void test_ipv4_options_agree_with_rfc791_on_every_small_combination(void)
{
    static const uint8_t alphabet[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07, 0x94, 0xff};
    size_t n = sizeof(alphabet);
    for (size_t a = 0; a < n; a++)
        for (size_t b = 0; b < n; b++)
            for (size_t c = 0; c < n; c++)
                for (size_t d = 0; d < n; d++) {
                    const uint8_t options[4] = {alphabet[a], alphabet[b], alphabet[c],
                                                alphabet[d]};
                    bool good = true;
                    size_t i = 0;
                    while (i < 4) {
                        if (options[i] == 0)
                            break;
                        if (options[i] == 1) {
                            i++;
                            continue;
                        }
                        if (i == 3 || options[i + 1] < 2 || i + options[i + 1] > 4) {
                            good = false;
                            break;
                        }
                        i += options[i + 1];
                    }
                    CHECK_EQ(parse_with_options(options, 4, NULL, 0),
                             good ? IPV4_PARSE_OK : IPV4_PARSE_BAD_OPTIONS);
                }
}

static void test_ipv4_emit_reproduces_captured_header(void)
{
    const uint8_t *frames[] = {echo_request_frame, echo_reply_frame, udp_hello_frame,
                               port_unreachable_frame};
    for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++) {
        struct ipv4_header header;
        size_t length = get16(frames[i] + ETH + 2);
        CHECK_EQ(ipv4_parse(frames[i] + ETH, length, true, &header), IPV4_PARSE_OK);
        uint8_t *out = malloc(IP);
        CHECK(out != NULL);
        CHECK_EQ(ipv4_emit(&header, out), IP);
        CHECK(memcmp(out, frames[i] + ETH, IP) == 0);
        free(out);
    }
}

static void test_ipv4_emit_ignores_header_length_and_checksum_fields(void)
{
    struct ipv4_header header;
    memset(&header, 0, sizeof(header));
    header.header_length = 60;
    header.checksum = 0xdead;
    header.total_length = IP;
    header.time_to_live = 1;
    header.protocol = 6;
    header.source = address(192, 168, 0, 1);
    header.destination = address(192, 168, 0, 2);
    uint8_t out[IP];
    ipv4_emit(&header, out);
    CHECK_EQ(out[0], 0x45);
    CHECK_EQ(reference_checksum(out, IP), 0);
    CHECK(get16(out + 10) != 0xdead);
}

static void test_ipv4_round_trip(void)
{
    for (int round = 0; round < 5000; round++) {
        struct ipv4_header in, out;
        memset(&in, 0, sizeof(in));
        in.type_of_service = (uint8_t)random_next();
        in.total_length = (uint16_t)(IP + random_below(100));
        in.identification = (uint16_t)random_next();
        in.dont_fragment = random_below(2);
        in.more_fragments = random_below(2);
        in.fragment_offset = (uint16_t)(8 * random_below(0x2000));
        in.time_to_live = (uint8_t)random_next();
        in.protocol = (uint8_t)random_next();
        in.source = random_next();
        in.destination = random_next();
        uint8_t *packet = malloc(in.total_length);
        CHECK(packet != NULL);
        memset(packet, 0xee, in.total_length);
        CHECK_EQ(ipv4_emit(&in, packet), IP);
        CHECK_EQ(ipv4_parse(packet, in.total_length, true, &out), IPV4_PARSE_OK);
        in.header_length = IP;
        in.checksum = get16(packet + 10);
        check_ipv4_headers_equal(&in, &out);
        CHECK_EQ(reference_checksum(packet, IP), 0);
        free(packet);
    }
}

/* ------------------------------------------------------------------------ */
/* ICMP                                                                      */
/* ------------------------------------------------------------------------ */

static void test_icmp_parses_captured_echo_request(void)
{
    size_t length = sizeof(echo_request_frame) - ETH - IP;
    uint8_t *message = exact_copy(echo_request_frame + ETH + IP, length);
    struct icmp_header header;
    CHECK_EQ(icmp_parse(message, length, true, &header), ICMP_PARSE_OK);
    CHECK_EQ(header.type, ICMP_TYPE_ECHO_REQUEST);
    CHECK_EQ(header.code, 0);
    CHECK_EQ(header.checksum, 0xa1e9);
    CHECK_EQ(header.rest, 0x136e0001u); /* identifier 0x136e, sequence 1 */
    CHECK(!icmp_type_is_error(header.type));
    free(message);
}

static void test_icmp_parses_captured_echo_reply(void)
{
    size_t length = sizeof(echo_reply_frame) - ETH - IP;
    uint8_t *message = exact_copy(echo_reply_frame + ETH + IP, length);
    struct icmp_header header;
    CHECK_EQ(icmp_parse(message, length, true, &header), ICMP_PARSE_OK);
    CHECK_EQ(header.type, ICMP_TYPE_ECHO_REPLY);
    CHECK_EQ(header.checksum, 0xa9e9);
    CHECK_EQ(header.rest, 0x136e0001u);
    free(message);
}

static void test_icmp_parses_captured_port_unreachable(void)
{
    size_t length = sizeof(port_unreachable_frame) - ETH - IP;
    uint8_t *message = exact_copy(port_unreachable_frame + ETH + IP, length);
    struct icmp_header header;
    CHECK_EQ(icmp_parse(message, length, true, &header), ICMP_PARSE_OK);
    CHECK_EQ(header.type, ICMP_TYPE_DESTINATION_UNREACHABLE);
    CHECK_EQ(header.code, ICMP_CODE_PORT_UNREACHABLE);
    CHECK_EQ(header.rest, 0);
    CHECK(icmp_type_is_error(header.type));
    free(message);
}

static void test_icmp_rejects_every_truncation_below_header_length(void)
{
    for (size_t length = 0; length < ICMP_HEADER_LENGTH; length++) {
        uint8_t *message = exact_copy(echo_request_frame + ETH + IP, length);
        struct icmp_header header;
        CHECK_EQ(icmp_parse(message, length, true, &header), ICMP_PARSE_TRUNCATED);
        CHECK_EQ(icmp_parse(message, length, false, &header), ICMP_PARSE_TRUNCATED);
        free(message);
    }
}

/* From 8 bytes up, a cut-short echo is checked over what arrived: it fails
 * unless the missing bytes happened to sum to zero. */
static void test_icmp_checks_every_truncated_echo_over_the_bytes_present(void)
{
    size_t full = sizeof(echo_request_frame) - ETH - IP;
    int failures = 0;
    for (size_t length = ICMP_HEADER_LENGTH; length <= full; length++) {
        uint8_t *message = exact_copy(echo_request_frame + ETH + IP, length);
        struct icmp_header header;
        enum icmp_parse_result expected =
            reference_checksum(message, length) == 0 ? ICMP_PARSE_OK : ICMP_PARSE_BAD_CHECKSUM;
        CHECK_EQ(icmp_parse(message, length, true, &header), expected);
        CHECK_EQ(icmp_parse(message, length, false, &header), ICMP_PARSE_OK);
        failures += expected == ICMP_PARSE_BAD_CHECKSUM;
        free(message);
    }
    CHECK(failures >= (int)(full - ICMP_HEADER_LENGTH) - 2);
}

static void test_icmp_rejects_bad_checksum_for_every_single_bit_error(void)
{
    size_t length = sizeof(echo_request_frame) - ETH - IP;
    for (size_t byte = 0; byte < length; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t *message = exact_copy(echo_request_frame + ETH + IP, length);
            message[byte] ^= (uint8_t)(1 << bit);
            struct icmp_header header;
            CHECK_EQ(icmp_parse(message, length, true, &header), ICMP_PARSE_BAD_CHECKSUM);
            free(message);
        }
    }
}

static void test_icmp_skips_checksum_verification_when_asked(void)
{
    size_t length = sizeof(echo_request_frame) - ETH - IP;
    uint8_t *message = exact_copy(echo_request_frame + ETH + IP, length);
    message[2] = 0;
    message[3] = 0;
    struct icmp_header header;
    CHECK_EQ(icmp_parse(message, length, true, &header), ICMP_PARSE_BAD_CHECKSUM);
    CHECK_EQ(icmp_parse(message, length, false, &header), ICMP_PARSE_OK);
    CHECK_EQ(header.type, ICMP_TYPE_ECHO_REQUEST);
    CHECK_EQ(header.checksum, 0);
    free(message);
}

static void test_icmp_accepts_header_only_message(void)
{
    uint8_t built[ICMP_HEADER_LENGTH] = {ICMP_TYPE_ECHO_REQUEST, 0, 0, 0, 0xbe, 0xef, 0x00, 0x07};
    put16(built + 2, reference_checksum(built, sizeof(built)));
    uint8_t *message = exact_copy(built, sizeof(built));
    struct icmp_header header;
    CHECK_EQ(icmp_parse(message, sizeof(built), true, &header), ICMP_PARSE_OK);
    CHECK_EQ(header.rest, 0xbeef0007u);
    free(message);
}

static void test_icmp_emit_reproduces_captured_echo_reply(void)
{
    size_t length = sizeof(echo_reply_frame) - ETH - IP;
    uint8_t *out = malloc(length);
    CHECK(out != NULL);
    memcpy(out + ICMP_HEADER_LENGTH, echo_reply_frame + ETH + IP + ICMP_HEADER_LENGTH,
           length - ICMP_HEADER_LENGTH);
    struct icmp_header header = {.type = ICMP_TYPE_ECHO_REPLY, .code = 0, .checksum = 0x5555,
                                 .rest = 0x136e0001u};
    CHECK_EQ(icmp_emit(&header, out, length - ICMP_HEADER_LENGTH), ICMP_HEADER_LENGTH);
    CHECK(memcmp(out, echo_reply_frame + ETH + IP, length) == 0);
    free(out);
}

static void test_icmp_round_trip_with_even_and_odd_bodies(void)
{
    for (size_t body = 0; body <= 64; body++) {
        struct icmp_header in = {.type = (uint8_t)random_next(), .code = (uint8_t)random_next(),
                                 .checksum = 0, .rest = random_next()};
        struct icmp_header out;
        uint8_t *message = malloc(ICMP_HEADER_LENGTH + body);
        CHECK(message != NULL);
        random_fill(message + ICMP_HEADER_LENGTH, body);
        CHECK_EQ(icmp_emit(&in, message, body), ICMP_HEADER_LENGTH);
        CHECK_EQ(reference_checksum(message, ICMP_HEADER_LENGTH + body), 0);
        CHECK_EQ(icmp_parse(message, ICMP_HEADER_LENGTH + body, true, &out), ICMP_PARSE_OK);
        CHECK_EQ(out.type, in.type);
        CHECK_EQ(out.code, in.code);
        CHECK_EQ(out.rest, in.rest);
        CHECK_EQ(out.checksum, get16(message + 2));
        free(message);
    }
}

/* Fragmentation needed (RFC 1191) puts the next-hop MTU in the low half of
 * the rest field. */
static void test_icmp_fragmentation_needed_carries_mtu_in_rest(void)
{
    uint8_t built[ICMP_HEADER_LENGTH + 28];
    memset(built, 0, sizeof(built));
    memcpy(built + ICMP_HEADER_LENGTH, udp_hello_frame + ETH, 28);
    struct icmp_header in = {.type = ICMP_TYPE_DESTINATION_UNREACHABLE,
                             .code = ICMP_CODE_FRAGMENTATION_NEEDED, .rest = 1400};
    icmp_emit(&in, built, 28);
    CHECK_EQ(built[6], 0x05);
    CHECK_EQ(built[7], 0x78);
    struct icmp_header out;
    CHECK_EQ(icmp_parse(built, sizeof(built), true, &out), ICMP_PARSE_OK);
    CHECK_EQ(out.rest & 0xffff, 1400);
}

static void test_icmp_type_is_error_classifies_types(void)
{
    for (int type = 0; type < 256; type++) {
        bool error = type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
        CHECK_EQ(icmp_type_is_error((uint8_t)type), error);
    }
}

/* ------------------------------------------------------------------------ */
/* UDP                                                                       */
/* ------------------------------------------------------------------------ */

/* The hello datagram with its checksum corrected (see udp_hello_frame). */
static uint8_t *udp_hello_datagram(size_t *length)
{
    *length = sizeof(udp_hello_frame) - ETH - IP;
    uint8_t *datagram = exact_copy(udp_hello_frame + ETH + IP, *length);
    put16(datagram + 6, UDP_HELLO_CHECKSUM);
    return datagram;
}

static void test_udp_checksum_of_captured_datagram_matches_tcpdump(void)
{
    size_t length;
    uint8_t *datagram = udp_hello_datagram(&length);
    put16(datagram + 6, 0);
    CHECK_EQ(reference_udp_checksum(datagram, length, host1, host2), UDP_HELLO_CHECKSUM);
    free(datagram);
    uint8_t odd[11];
    memcpy(odd, udp_odd_frame + ETH + IP, sizeof(odd));
    put16(odd + 6, 0);
    CHECK_EQ(reference_udp_checksum(odd, sizeof(odd), host1, host2), UDP_ODD_CHECKSUM);
}

static void test_udp_parses_captured_datagram_with_verified_checksum(void)
{
    size_t length;
    uint8_t *datagram = udp_hello_datagram(&length);
    struct udp_header header;
    CHECK_EQ(udp_parse(datagram, length, address(10, 0, 0, 1), address(10, 0, 0, 2), true,
                       &header),
             UDP_PARSE_OK);
    CHECK_EQ(header.source_port, 40000);
    CHECK_EQ(header.destination_port, 7);
    CHECK_EQ(header.length, 21);
    CHECK_EQ(header.checksum, UDP_HELLO_CHECKSUM);
    free(datagram);
}

static void test_udp_parses_odd_length_datagram(void)
{
    size_t length = sizeof(udp_odd_frame) - ETH - IP;
    uint8_t *datagram = exact_copy(udp_odd_frame + ETH + IP, length);
    put16(datagram + 6, UDP_ODD_CHECKSUM);
    struct udp_header header;
    CHECK_EQ(udp_parse(datagram, length, address(10, 0, 0, 1), address(10, 0, 0, 2), true,
                       &header),
             UDP_PARSE_OK);
    CHECK_EQ(header.destination_port, 9);
    CHECK_EQ(header.length, 11);
    free(datagram);
}

/* As captured on the sender's side of an offloading link, the checksum
 * field holds only the pseudo-header sum. */
static void test_udp_rejects_checksum_left_partial_by_offload(void)
{
    size_t length = sizeof(udp_hello_frame) - ETH - IP;
    uint8_t *datagram = exact_copy(udp_hello_frame + ETH + IP, length);
    CHECK_EQ(get16(datagram + 6), UDP_HELLO_PARTIAL_CHECKSUM);
    struct udp_header header;
    CHECK_EQ(udp_parse(datagram, length, address(10, 0, 0, 1), address(10, 0, 0, 2), true,
                       &header),
             UDP_PARSE_BAD_CHECKSUM);
    CHECK_EQ(udp_parse(datagram, length, address(10, 0, 0, 1), address(10, 0, 0, 2), false,
                       &header),
             UDP_PARSE_OK);
    free(datagram);
}

static void test_udp_rejects_every_truncation_of_captured_datagram(void)
{
    size_t full;
    uint8_t *good = udp_hello_datagram(&full);
    for (size_t length = 0; length < full; length++) {
        uint8_t *datagram = exact_copy(good, length);
        struct udp_header header;
        enum udp_parse_result expected =
            length < UDP_HEADER_LENGTH ? UDP_PARSE_TRUNCATED : UDP_PARSE_BAD_LENGTH;
        CHECK_EQ(udp_parse(datagram, length, address(10, 0, 0, 1), address(10, 0, 0, 2), true,
                           &header),
                 expected);
        CHECK_EQ(udp_parse(datagram, length, address(10, 0, 0, 1), address(10, 0, 0, 2), false,
                           &header),
                 expected);
        free(datagram);
    }
    free(good);
}

static void test_udp_rejects_length_field_below_eight(void)
{
    for (uint16_t field = 0; field < UDP_HEADER_LENGTH; field++) {
        size_t length;
        uint8_t *datagram = udp_hello_datagram(&length);
        put16(datagram + 4, field);
        struct udp_header header;
        CHECK_EQ(udp_parse(datagram, length, address(10, 0, 0, 1), address(10, 0, 0, 2), false,
                           &header),
                 UDP_PARSE_BAD_LENGTH);
        put16(datagram + 6, 0);
        CHECK_EQ(udp_parse(datagram, length, address(10, 0, 0, 1), address(10, 0, 0, 2), true,
                           &header),
                 UDP_PARSE_BAD_LENGTH);
        free(datagram);
    }
}

static void test_udp_rejects_length_field_beyond_payload(void)
{
    static const uint16_t fields[] = {22, 23, 100, 0xffff};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        size_t length;
        uint8_t *datagram = udp_hello_datagram(&length);
        put16(datagram + 4, fields[i]);
        struct udp_header header;
        CHECK_EQ(udp_parse(datagram, length, address(10, 0, 0, 1), address(10, 0, 0, 2), true,
                           &header),
                 UDP_PARSE_BAD_LENGTH);
        CHECK_EQ(udp_parse(datagram, length, address(10, 0, 0, 1), address(10, 0, 0, 2), false,
                           &header),
                 UDP_PARSE_BAD_LENGTH);
        free(datagram);
    }
}

/* Bytes past the UDP length are not part of the datagram, nor of its
 * checksum. */
static void test_udp_ignores_bytes_past_length_field(void)
{
    size_t length;
    uint8_t *good = udp_hello_datagram(&length);
    uint8_t built[64];
    memcpy(built, good, length);
    memset(built + length, 0x5a, sizeof(built) - length);
    uint8_t *datagram = exact_copy(built, sizeof(built));
    struct udp_header header;
    CHECK_EQ(udp_parse(datagram, sizeof(built), address(10, 0, 0, 1), address(10, 0, 0, 2), true,
                       &header),
             UDP_PARSE_OK);
    CHECK_EQ(header.length, 21);
    free(datagram);
    free(good);
}

static void test_udp_zero_checksum_means_none(void)
{
    size_t length;
    uint8_t *datagram = udp_hello_datagram(&length);
    put16(datagram + 6, 0);
    datagram[10] ^= 0xff; /* payload damage goes unnoticed without a checksum */
    struct udp_header header;
    CHECK_EQ(udp_parse(datagram, length, address(1, 2, 3, 4), address(5, 6, 7, 8), true,
                       &header),
             UDP_PARSE_OK);
    CHECK_EQ(header.checksum, 0);
    free(datagram);
}

static void test_udp_rejects_bad_checksum_for_every_single_bit_error(void)
{
    size_t length;
    uint8_t *good = udp_hello_datagram(&length);
    for (size_t byte = 0; byte < length; byte++) {
        if (byte == 4 || byte == 5)
            continue; /* the length field has its own check */
        for (int bit = 0; bit < 8; bit++) {
            uint8_t *datagram = exact_copy(good, length);
            datagram[byte] ^= (uint8_t)(1 << bit);
            struct udp_header header;
            enum udp_parse_result result = udp_parse(
                datagram, length, address(10, 0, 0, 1), address(10, 0, 0, 2), true, &header);
            if (get16(datagram + 6) == 0)
                CHECK_EQ(result, UDP_PARSE_OK); /* flipped into "no checksum" */
            else
                CHECK_EQ(result, UDP_PARSE_BAD_CHECKSUM);
            free(datagram);
        }
    }
    free(good);
}

/* The checksum covers the pseudo-header: the same datagram between other
 * addresses is damaged. */
static void test_udp_checksum_covers_pseudo_header(void)
{
    size_t length;
    uint8_t *datagram = udp_hello_datagram(&length);
    struct udp_header header;
    CHECK_EQ(udp_parse(datagram, length, address(10, 0, 0, 1), address(10, 0, 0, 3), true,
                       &header),
             UDP_PARSE_BAD_CHECKSUM);
    CHECK_EQ(udp_parse(datagram, length, address(10, 0, 0, 2), address(10, 0, 0, 1), true,
                       &header),
             UDP_PARSE_OK); /* swapping addresses does not change a ones'-complement sum */
    CHECK_EQ(udp_parse(datagram, length, address(11, 0, 0, 1), address(10, 0, 0, 2), true,
                       &header),
             UDP_PARSE_BAD_CHECKSUM);
    free(datagram);
}

static void test_udp_skips_checksum_verification_when_asked(void)
{
    size_t length;
    uint8_t *datagram = udp_hello_datagram(&length);
    put16(datagram + 6, 0x1234);
    struct udp_header header;
    CHECK_EQ(udp_parse(datagram, length, address(10, 0, 0, 1), address(10, 0, 0, 2), false,
                       &header),
             UDP_PARSE_OK);
    CHECK_EQ(header.checksum, 0x1234);
    free(datagram);
}

static void test_udp_emit_reproduces_captured_checksum(void)
{
    size_t length;
    uint8_t *expected = udp_hello_datagram(&length);
    uint8_t *out = malloc(length);
    CHECK(out != NULL);
    memcpy(out + UDP_HEADER_LENGTH, expected + UDP_HEADER_LENGTH, length - UDP_HEADER_LENGTH);
    struct udp_header header = {.source_port = 40000, .destination_port = 7, .length = 21,
                                .checksum = 0x9999};
    CHECK_EQ(udp_emit(&header, address(10, 0, 0, 1), address(10, 0, 0, 2), out),
             UDP_HEADER_LENGTH);
    CHECK(memcmp(out, expected, length) == 0);
    free(out);
    free(expected);
}

/* Chooses two payload bytes so the computed checksum is 0: it must go on
 * the wire as ffff (0 would mean "none"), and still verify. */
static void test_udp_emit_sends_a_computed_zero_checksum_as_ffff(void)
{
    uint8_t datagram[UDP_HEADER_LENGTH + 2];
    put16(datagram, 1234);
    put16(datagram + 2, 5678);
    put16(datagram + 4, sizeof(datagram));
    put16(datagram + 6, 0);
    put16(datagram + 8, 0);
    uint16_t without = reference_udp_checksum(datagram, sizeof(datagram), host1, host2);
    /* folded sum s = ~without; adding w = ffff - s makes the sum ffff. */
    uint16_t sum = (uint16_t)~without;
    put16(datagram + 8, (uint16_t)(0xffff - sum));
    CHECK_EQ(reference_udp_checksum(datagram, sizeof(datagram), host1, host2), 0);

    struct udp_header header = {.source_port = 1234, .destination_port = 5678,
                                .length = sizeof(datagram)};
    uint8_t *out = malloc(sizeof(datagram));
    CHECK(out != NULL);
    memcpy(out + UDP_HEADER_LENGTH, datagram + UDP_HEADER_LENGTH, 2);
    udp_emit(&header, address(10, 0, 0, 1), address(10, 0, 0, 2), out);
    CHECK_EQ(get16(out + 6), 0xffff);
    struct udp_header parsed;
    CHECK_EQ(udp_parse(out, sizeof(datagram), address(10, 0, 0, 1), address(10, 0, 0, 2), true,
                       &parsed),
             UDP_PARSE_OK);
    CHECK_EQ(parsed.checksum, 0xffff);
    free(out);
}

static void test_udp_round_trip(void)
{
    for (int round = 0; round < 2000; round++) {
        size_t payload = random_below(80);
        struct udp_header in = {.source_port = (uint16_t)random_next(),
                                .destination_port = (uint16_t)random_next(),
                                .length = (uint16_t)(UDP_HEADER_LENGTH + payload)};
        uint32_t source = random_next(), destination = random_next();
        uint8_t *datagram = malloc(in.length);
        CHECK(datagram != NULL);
        random_fill(datagram + UDP_HEADER_LENGTH, payload);
        CHECK_EQ(udp_emit(&in, source, destination, datagram), UDP_HEADER_LENGTH);
        struct udp_header out;
        CHECK_EQ(udp_parse(datagram, in.length, source, destination, true, &out), UDP_PARSE_OK);
        CHECK_EQ(out.source_port, in.source_port);
        CHECK_EQ(out.destination_port, in.destination_port);
        CHECK_EQ(out.length, in.length);
        CHECK(out.checksum != 0);
        CHECK_EQ(out.checksum, get16(datagram + 6));
        uint8_t s[4], d[4];
        memcpy(s, &source, 4);
        memcpy(d, &destination, 4);
        CHECK_EQ(reference_udp_checksum(datagram, in.length, s, d), 0);
        free(datagram);
    }
}

static void test_udp_round_trip_header_only(void)
{
    struct udp_header in = {.source_port = 53, .destination_port = 53, .length = 8};
    uint8_t *datagram = malloc(UDP_HEADER_LENGTH);
    CHECK(datagram != NULL);
    udp_emit(&in, address(10, 0, 0, 1), address(10, 0, 0, 2), datagram);
    struct udp_header out;
    CHECK_EQ(udp_parse(datagram, UDP_HEADER_LENGTH, address(10, 0, 0, 1), address(10, 0, 0, 2),
                       true, &out),
             UDP_PARSE_OK);
    CHECK_EQ(out.length, 8);
    free(datagram);
}

/* ------------------------------------------------------------------------ */
/* Random buffers: nothing crashes or reads out of bounds, results are in   */
/* their enums, and each verdict agrees with a direct reading of the RFCs.  */
/* ------------------------------------------------------------------------ */

#define RANDOM_ROUNDS 100000

/* Random bytes of a random length 0..100 in a malloc of exactly that size. */
static uint8_t *random_buffer(size_t *length)
{
    *length = random_below(101);
    uint8_t *data = malloc(*length);
    CHECK(data != NULL || *length == 0);
    random_fill(data, *length);
    return data;
}

static void test_random_buffers_through_ethernet_parse(void)
{
    for (int round = 0; round < RANDOM_ROUNDS; round++) {
        size_t length;
        uint8_t *frame = random_buffer(&length);
        struct ethernet_header header;
        int result = ethernet_parse(frame, length, &header);
        CHECK(result == 0 || result == -EINVAL);
        CHECK_EQ(result == 0, length >= ETH);
        if (result == 0)
            CHECK_EQ(header.ethertype, get16(frame + 12));
        free(frame);
    }
}

static void test_random_buffers_through_arp_parse(void)
{
    for (int round = 0; round < RANDOM_ROUNDS; round++) {
        size_t length;
        uint8_t *packet = random_buffer(&length);
        if (length >= 8 && random_below(2)) { /* often well-formed up to the operation */
            memcpy(packet, "\x00\x01\x08\x00\x06\x04", 6);
            put16(packet + 6, (uint16_t)random_below(4));
        }
        struct arp_packet arp;
        enum arp_parse_result result = arp_parse(packet, length, &arp);
        CHECK(result == ARP_PARSE_OK || result == ARP_PARSE_TRUNCATED ||
              result == ARP_PARSE_UNSUPPORTED);
        enum arp_parse_result expected;
        if (length < ARP_PACKET_LENGTH)
            expected = ARP_PARSE_TRUNCATED;
        else if (get16(packet) != 1 || get16(packet + 2) != 0x0800 || packet[4] != 6 ||
                 packet[5] != 4 || get16(packet + 6) < 1 || get16(packet + 6) > 2)
            expected = ARP_PARSE_UNSUPPORTED;
        else
            expected = ARP_PARSE_OK;
        CHECK_EQ(result, expected);
        free(packet);
    }
}

/* The set of reasons (as 1 << result) for which RFC 791 says to drop the
 * packet; 0 means it must be accepted. */
static unsigned ipv4_reasons_to_drop(const uint8_t *packet, size_t length, bool verify)
{
    if (length < IP)
        return 1u << IPV4_PARSE_TRUNCATED;
    unsigned reasons = 0;
    if (packet[0] >> 4 != 4)
        reasons |= 1u << IPV4_PARSE_BAD_VERSION;
    size_t header_length = (size_t)(packet[0] & 15) * 4;
    size_t total_length = get16(packet + 2);
    if (header_length < IP || header_length > length) {
        reasons |= 1u << IPV4_PARSE_BAD_HEADER_LENGTH;
        if (total_length > length)
            reasons |= 1u << IPV4_PARSE_BAD_TOTAL_LENGTH;
        return reasons;
    }
    if (total_length > length || total_length < header_length)
        reasons |= 1u << IPV4_PARSE_BAD_TOTAL_LENGTH;
    if (verify && reference_checksum(packet, header_length) != 0)
        reasons |= 1u << IPV4_PARSE_BAD_CHECKSUM;
    for (size_t i = IP; i < header_length;) {
        if (packet[i] == 0)
            break;
        if (packet[i] == 1) {
            i++;
            continue;
        }
        if (i + 1 == header_length || packet[i + 1] < 2 || i + packet[i + 1] > header_length) {
            reasons |= 1u << IPV4_PARSE_BAD_OPTIONS;
            break;
        }
        i += packet[i + 1];
    }
    return reasons;
}

static void test_random_buffers_through_ipv4_parse(void)
{
    static const uint8_t option_bytes[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x07,
                                           0x44, 0x94, 0x28, 0xff};
    for (int round = 0; round < RANDOM_ROUNDS; round++) {
        size_t length;
        uint8_t *packet = random_buffer(&length);
        /* Shape most buffers so the parser gets past its early checks. */
        if (length >= IP && random_below(4) != 0) {
            size_t header_length = 4 * (5 + random_below(11));
            packet[0] = (uint8_t)(0x40 | header_length / 4);
            if (random_below(8) == 0)
                packet[0] = (uint8_t)random_next();
            uint32_t total = random_below(4) == 0 ? random_below(0x10000)
                                                  : header_length + random_below(40);
            put16(packet + 2, (uint16_t)total);
            for (size_t i = IP; i < header_length && i < length; i++)
                packet[i] = random_below(2) ? option_bytes[random_below(sizeof(option_bytes))]
                                            : (uint8_t)random_below(12);
            if (header_length <= length && random_below(4) != 0)
                ipv4_fix_checksum(packet, header_length);
        }
        for (int verify = 0; verify < 2; verify++) {
            struct ipv4_header header;
            enum ipv4_parse_result result = ipv4_parse(packet, length, verify, &header);
            CHECK(result >= IPV4_PARSE_OK && result <= IPV4_PARSE_BAD_OPTIONS);
            unsigned reasons = ipv4_reasons_to_drop(packet, length, verify);
            if (reasons == 0) {
                CHECK_EQ(result, IPV4_PARSE_OK);
                CHECK(header.header_length >= IP && header.header_length <= IPV4_HEADER_MAX);
                CHECK(header.header_length <= header.total_length);
                CHECK(header.total_length <= length);
                CHECK_EQ(header.protocol, packet[9]);
            } else {
                CHECK(result != IPV4_PARSE_OK);
                CHECK(reasons & (1u << result));
            }
        }
        free(packet);
    }
}

static void test_random_buffers_through_icmp_parse(void)
{
    for (int round = 0; round < RANDOM_ROUNDS; round++) {
        size_t length;
        uint8_t *message = random_buffer(&length);
        if (length >= ICMP_HEADER_LENGTH && random_below(2)) {
            message[2] = 0;
            message[3] = 0;
            put16(message + 2, reference_checksum(message, length));
        }
        for (int verify = 0; verify < 2; verify++) {
            struct icmp_header header;
            enum icmp_parse_result result = icmp_parse(message, length, verify, &header);
            CHECK(result == ICMP_PARSE_OK || result == ICMP_PARSE_TRUNCATED ||
                  result == ICMP_PARSE_BAD_CHECKSUM);
            enum icmp_parse_result expected =
                length < ICMP_HEADER_LENGTH                           ? ICMP_PARSE_TRUNCATED
                : verify && reference_checksum(message, length) != 0 ? ICMP_PARSE_BAD_CHECKSUM
                                                                      : ICMP_PARSE_OK;
            CHECK_EQ(result, expected);
            if (result == ICMP_PARSE_OK)
                CHECK_EQ(header.type, message[0]);
        }
        free(message);
    }
}

static void test_random_buffers_through_udp_parse(void)
{
    for (int round = 0; round < RANDOM_ROUNDS; round++) {
        size_t length;
        uint8_t *datagram = random_buffer(&length);
        uint32_t source = random_next(), destination = random_next();
        uint8_t s[4], d[4];
        memcpy(s, &source, 4);
        memcpy(d, &destination, 4);
        if (length >= UDP_HEADER_LENGTH && random_below(4) != 0) {
            uint16_t udp_length = (uint16_t)(random_below(4) == 0 ? random_below(0x10000)
                                                                  : random_below(110));
            put16(datagram + 4, udp_length);
            switch (random_below(3)) {
            case 0:
                put16(datagram + 6, 0);
                break;
            case 1:
                if (udp_length >= UDP_HEADER_LENGTH && udp_length <= length) {
                    put16(datagram + 6, 0);
                    uint16_t checksum = reference_udp_checksum(datagram, udp_length, s, d);
                    put16(datagram + 6, checksum ? checksum : 0xffff);
                }
                break;
            default:
                break;
            }
        }
        for (int verify = 0; verify < 2; verify++) {
            struct udp_header header;
            enum udp_parse_result result =
                udp_parse(datagram, length, source, destination, verify, &header);
            CHECK(result == UDP_PARSE_OK || result == UDP_PARSE_TRUNCATED ||
                  result == UDP_PARSE_BAD_LENGTH || result == UDP_PARSE_BAD_CHECKSUM);
            enum udp_parse_result expected;
            if (length < UDP_HEADER_LENGTH)
                expected = UDP_PARSE_TRUNCATED;
            else if (get16(datagram + 4) < UDP_HEADER_LENGTH || get16(datagram + 4) > length)
                expected = UDP_PARSE_BAD_LENGTH;
            else if (verify && get16(datagram + 6) != 0 &&
                     reference_udp_checksum(datagram, get16(datagram + 4), s, d) != 0)
                expected = UDP_PARSE_BAD_CHECKSUM;
            else
                expected = UDP_PARSE_OK;
            CHECK_EQ(result, expected);
            if (result == UDP_PARSE_OK)
                CHECK(header.length >= UDP_HEADER_LENGTH && header.length <= length);
        }
        free(datagram);
    }
}

/* Emit into buffers of exactly the size emit is documented to write or
 * cover, for every body length: ASan catches any write or read beyond. */
static void test_emitters_stay_within_their_documented_bytes(void)
{
    for (size_t body = 0; body <= 100; body++) {
        uint8_t *message = malloc(ICMP_HEADER_LENGTH + body);
        CHECK(message != NULL);
        random_fill(message + ICMP_HEADER_LENGTH, body);
        struct icmp_header icmp = {.type = 8, .rest = 1};
        icmp_emit(&icmp, message, body);
        free(message);

        uint8_t *datagram = malloc(UDP_HEADER_LENGTH + body);
        CHECK(datagram != NULL);
        random_fill(datagram + UDP_HEADER_LENGTH, body);
        struct udp_header udp = {.source_port = 1, .destination_port = 2,
                                 .length = (uint16_t)(UDP_HEADER_LENGTH + body)};
        udp_emit(&udp, 1, 2, datagram);
        free(datagram);
    }
    struct ipv4_header ip = {.total_length = IP};
    uint8_t *header = malloc(IP);
    CHECK(header != NULL);
    ipv4_emit(&ip, header);
    free(header);
    struct arp_packet arp = {.operation = 1};
    uint8_t *packet = malloc(ARP_PACKET_LENGTH);
    CHECK(packet != NULL);
    arp_emit(&arp, packet);
    free(packet);
    struct ethernet_header ethernet = {.ethertype = ETHERTYPE_ARP};
    uint8_t *frame = malloc(ETH);
    CHECK(frame != NULL);
    ethernet_emit(&ethernet, frame);
    free(frame);
}

static const struct check_test tests[] = {
    CHECK_TEST(test_checksum_rfc1071_example_folds_to_ddf2_and_complements_to_220d),
    CHECK_TEST(test_checksum_rfc1071_byte_swapped_input_gives_byte_swapped_sum),
    CHECK_TEST(test_checksum_of_nothing_is_ffff),
    CHECK_TEST(test_checksum_of_zero_bytes_is_ffff),
    CHECK_TEST(test_checksum_add_of_zero_length_keeps_running_sum),
    CHECK_TEST(test_checksum_odd_length_pads_last_byte_with_zero),
    CHECK_TEST(test_checksum_odd_length_does_not_read_past_the_end),
    CHECK_TEST(test_checksum_matches_reference_for_every_length_up_to_1500),
    CHECK_TEST(test_checksum_matches_reference_on_all_ones_and_near_carries),
    CHECK_TEST(test_checksum_matches_reference_on_long_unaligned_buffers),
    CHECK_TEST(test_siphash_matches_reference_vectors),
    CHECK_TEST(test_packet_buffer_linearize_copies_the_ring_payload_in),
    CHECK_TEST(test_checksum_buffer_with_its_checksum_inserted_sums_to_zero),
    CHECK_TEST(test_checksum_running_sum_over_even_pieces_equals_whole),
    CHECK_TEST(test_checksum_keeps_carries_on_long_buffers),
    CHECK_TEST(test_checksum_finish_folds_carries_more_than_once),
    CHECK_TEST(test_checksum_add_accepts_a_large_starting_sum),
    CHECK_TEST(test_checksum_pseudo_header_matches_reference),
    CHECK_TEST(test_checksum_verifies_captured_headers_and_messages),

    CHECK_TEST(test_bytes_load_and_store_are_big_endian),
    CHECK_TEST(test_bytes_addresses_stay_in_network_order),

    CHECK_TEST(test_ethernet_parses_captured_broadcast_arp_frame),
    CHECK_TEST(test_ethernet_parses_captured_ipv4_frame),
    CHECK_TEST(test_ethernet_rejects_runt_frames_of_every_length_below_14),
    CHECK_TEST(test_ethernet_accepts_a_header_only_frame),
    CHECK_TEST(test_ethernet_reports_vlan_ethertype_without_interpreting_it),
    CHECK_TEST(test_ethernet_round_trip),
    CHECK_TEST(test_ethernet_emit_reproduces_captured_header),
    CHECK_TEST(test_ethernet_classifies_broadcast_and_multicast_addresses),

    CHECK_TEST(test_arp_parses_captured_request),
    CHECK_TEST(test_arp_parses_captured_reply),
    CHECK_TEST(test_arp_ignores_ethernet_padding_after_28_bytes),
    CHECK_TEST(test_arp_rejects_every_truncation_of_captured_request),
    CHECK_TEST(test_arp_rejects_non_ethernet_hardware_type),
    CHECK_TEST(test_arp_rejects_non_ipv4_protocol_type),
    CHECK_TEST(test_arp_rejects_wrong_hardware_address_length),
    CHECK_TEST(test_arp_rejects_wrong_protocol_address_length),
    CHECK_TEST(test_arp_rejects_unknown_operations),
    CHECK_TEST(test_arp_emit_reproduces_captured_request_and_reply),
    CHECK_TEST(test_arp_round_trip),

    CHECK_TEST(test_ipv4_parses_captured_echo_request_header),
    CHECK_TEST(test_ipv4_parses_captured_icmp_error_header_with_tos),
    CHECK_TEST(test_ipv4_rejects_every_truncation_of_captured_packet),
    CHECK_TEST(test_ipv4_rejects_every_truncation_of_header_with_options),
    CHECK_TEST(test_ipv4_accepts_link_padding_past_total_length),
    CHECK_TEST(test_ipv4_accepts_total_length_equal_to_header_length),
    CHECK_TEST(test_ipv4_rejects_versions_other_than_four),
    CHECK_TEST(test_ipv4_rejects_an_ipv6_header),
    CHECK_TEST(test_ipv4_rejects_header_length_below_five),
    CHECK_TEST(test_ipv4_rejects_header_length_beyond_the_packet),
    CHECK_TEST(test_ipv4_rejects_total_length_beyond_the_frame),
    CHECK_TEST(test_ipv4_rejects_total_length_below_header_length),
    CHECK_TEST(test_ipv4_rejects_bad_checksum_for_every_single_bit_error),
    CHECK_TEST(test_ipv4_rejects_zeroed_checksum),
    CHECK_TEST(test_ipv4_skips_checksum_verification_when_asked),
    CHECK_TEST(test_ipv4_checksum_does_not_cover_payload),
    CHECK_TEST(test_ipv4_checksum_covers_options),
    CHECK_TEST(test_ipv4_reads_fragment_flags_and_offset_in_bytes),
    CHECK_TEST(test_ipv4_accepts_router_alert_option),
    CHECK_TEST(test_ipv4_accepts_options_of_only_nops),
    CHECK_TEST(test_ipv4_accepts_options_of_only_end_of_list),
    CHECK_TEST(test_ipv4_ignores_bytes_after_end_of_list),
    CHECK_TEST(test_ipv4_accepts_nops_between_options),
    CHECK_TEST(test_ipv4_accepts_option_of_length_two),
    CHECK_TEST(test_ipv4_accepts_option_filling_the_largest_header),
    CHECK_TEST(test_ipv4_accepts_option_ending_exactly_at_header_end),
    CHECK_TEST(test_ipv4_rejects_option_length_zero),
    CHECK_TEST(test_ipv4_rejects_option_length_one),
    CHECK_TEST(test_ipv4_rejects_option_length_overrunning_header),
    CHECK_TEST(test_ipv4_rejects_option_overrunning_into_payload),
    CHECK_TEST(test_ipv4_rejects_option_type_at_last_byte_with_no_length),
    CHECK_TEST(test_ipv4_does_not_read_option_length_from_payload),
    CHECK_TEST(test_ipv4_rejects_bad_option_after_good_ones),
    CHECK_TEST(test_ipv4_options_agree_with_rfc791_on_every_small_combination),
    CHECK_TEST(test_ipv4_emit_reproduces_captured_header),
    CHECK_TEST(test_ipv4_emit_ignores_header_length_and_checksum_fields),
    CHECK_TEST(test_ipv4_round_trip),

    CHECK_TEST(test_icmp_parses_captured_echo_request),
    CHECK_TEST(test_icmp_parses_captured_echo_reply),
    CHECK_TEST(test_icmp_parses_captured_port_unreachable),
    CHECK_TEST(test_icmp_rejects_every_truncation_below_header_length),
    CHECK_TEST(test_icmp_checks_every_truncated_echo_over_the_bytes_present),
    CHECK_TEST(test_icmp_rejects_bad_checksum_for_every_single_bit_error),
    CHECK_TEST(test_icmp_skips_checksum_verification_when_asked),
    CHECK_TEST(test_icmp_accepts_header_only_message),
    CHECK_TEST(test_icmp_emit_reproduces_captured_echo_reply),
    CHECK_TEST(test_icmp_round_trip_with_even_and_odd_bodies),
    CHECK_TEST(test_icmp_fragmentation_needed_carries_mtu_in_rest),
    CHECK_TEST(test_icmp_type_is_error_classifies_types),

    CHECK_TEST(test_udp_checksum_of_captured_datagram_matches_tcpdump),
    CHECK_TEST(test_udp_parses_captured_datagram_with_verified_checksum),
    CHECK_TEST(test_udp_parses_odd_length_datagram),
    CHECK_TEST(test_udp_rejects_checksum_left_partial_by_offload),
    CHECK_TEST(test_udp_rejects_every_truncation_of_captured_datagram),
    CHECK_TEST(test_udp_rejects_length_field_below_eight),
    CHECK_TEST(test_udp_rejects_length_field_beyond_payload),
    CHECK_TEST(test_udp_ignores_bytes_past_length_field),
    CHECK_TEST(test_udp_zero_checksum_means_none),
    CHECK_TEST(test_udp_rejects_bad_checksum_for_every_single_bit_error),
    CHECK_TEST(test_udp_checksum_covers_pseudo_header),
    CHECK_TEST(test_udp_skips_checksum_verification_when_asked),
    CHECK_TEST(test_udp_emit_reproduces_captured_checksum),
    CHECK_TEST(test_udp_emit_sends_a_computed_zero_checksum_as_ffff),
    CHECK_TEST(test_udp_round_trip),
    CHECK_TEST(test_udp_round_trip_header_only),

    CHECK_TEST(test_random_buffers_through_ethernet_parse),
    CHECK_TEST(test_random_buffers_through_arp_parse),
    CHECK_TEST(test_random_buffers_through_ipv4_parse),
    CHECK_TEST(test_random_buffers_through_icmp_parse),
    CHECK_TEST(test_random_buffers_through_udp_parse),
    CHECK_TEST(test_emitters_stay_within_their_documented_bytes),
};

CHECK_MAIN(tests)
