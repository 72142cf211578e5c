/*
 * bug_classes_frames.h - the peer that test_bug_classes.c plays: a stack on
 * a callback link, a fake clock, a record of what the stack sends, and
 * builders for the frames (well formed or not) the peer sends it.
 *
 * Everything here is static: the header is included by one test program.
 * The peer is 198.18.0.1 (also the stack's gateway, so replies to any
 * off-link source go to one MAC and need one ARP entry); the stack is
 * 198.18.0.2/24 with a UDP socket on port 7 and a TCP listener on port 80.
 * Frames are handed in with usock_link_callback_input and processed at once
 * by usock_stack_poll at the harness's current time.
 */
#ifndef USOCK_TEST_BUG_CLASSES_FRAMES_H
#define USOCK_TEST_BUG_CLASSES_FRAMES_H

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "stack.h"
#include "usock.h"
#include "wire/arp.h"
#include "wire/bytes.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/icmp.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"
#include "wire/udp.h"

#define PEER_ADDRESS "198.18.0.1"
#define STACK_ADDRESS "198.18.0.2"
#define SEEN_MAX 4096
#define FRAME_MAX 1600
#define MS 1000000ULL
#define SECOND 1000000000ULL

static const uint8_t peer_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
static const uint8_t stack_mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};

static uint32_t ip_of(const char *text)
{
    struct in_addr address;
    CHECK(inet_pton(AF_INET, text, &address) == 1);
    return address.s_addr;
}

/* One TCP segment the stack sent. */
struct seen_segment {
    uint32_t destination;
    uint16_t source_port, destination_port;
    uint32_t sequence, acknowledgment;
    uint8_t flags;
    uint16_t window;
    uint32_t data_length;
    struct tcp_options options;
};

/* One IPv4 datagram the stack sent. */
struct seen_datagram {
    uint32_t destination;
    uint16_t identification;
    bool dont_fragment;
    uint8_t protocol;
};

/* The bytes the stack sent on one connection, placed by sequence number. */
struct stream_tracker {
    uint16_t port;         /* the peer's port of the connection; 0: none */
    uint32_t base;         /* sequence number of byte 0 */
    size_t capacity;
    uint8_t *data;
    uint8_t *have;
    size_t data_segments;
    size_t largest_segment;
    size_t highest;          /* one past the highest byte seen */
};

struct harness {
    struct usock_link *link;
    struct usock_stack *stack;
    uint64_t now;
    int udp_fd;            /* bound to port 7 */
    int listener;          /* listening on port 80 */
    size_t frames_out;
    size_t echo_replies;
    uint32_t echo_rest;    /* the echo reply counted */
    size_t udp_to_peer;
    size_t icmp_errors_out;
    size_t arp_replies;
    size_t arp_requests_answered;
    size_t segment_count;  /* total; the last SEEN_MAX are kept */
    struct seen_segment segments[SEEN_MAX];
    size_t datagram_count;
    struct seen_datagram datagrams[SEEN_MAX];
    struct stream_tracker track;
    uint16_t next_peer_port; /* for connections the checks open */
};

static uint64_t harness_clock(void *context)
{
    return ((struct harness *)context)->now;
}

static void harness_record(struct harness *h, const uint8_t *packet, size_t length)
{
    struct ipv4_header ip;
    if (ipv4_parse(packet, length, true, &ip) != IPV4_PARSE_OK)
        return;
    struct seen_datagram *datagram = &h->datagrams[h->datagram_count++ % SEEN_MAX];
    datagram->destination = ip.destination;
    datagram->identification = ip.identification;
    datagram->dont_fragment = ip.dont_fragment;
    datagram->protocol = ip.protocol;
    const uint8_t *payload = packet + ip.header_length;
    size_t payload_length = ip.total_length - ip.header_length;
    if (ip.protocol == IPPROTO_ICMP && !ipv4_is_fragment(&ip)) {
        struct icmp_header icmp;
        if (icmp_parse(payload, payload_length, true, &icmp) != ICMP_PARSE_OK)
            return;
        if (icmp.type == ICMP_TYPE_ECHO_REPLY && icmp.rest == h->echo_rest)
            h->echo_replies++;
        if (icmp_type_is_error(icmp.type))
            h->icmp_errors_out++;
    } else if (ip.protocol == IPPROTO_UDP) {
        h->udp_to_peer++;
    } else if (ip.protocol == IPPROTO_TCP && !ipv4_is_fragment(&ip)) {
        struct tcp_header tcp;
        /* The stack must never send a segment that does not parse. */
        CHECK_EQ(tcp_parse(payload, payload_length, ip.source, ip.destination, true, &tcp),
                 TCP_PARSE_OK);
        struct seen_segment *seen = &h->segments[h->segment_count++ % SEEN_MAX];
        seen->destination = ip.destination;
        seen->source_port = tcp.source_port;
        seen->destination_port = tcp.destination_port;
        seen->sequence = tcp.sequence;
        seen->acknowledgment = tcp.acknowledgment;
        seen->flags = tcp.flags;
        seen->window = tcp.window;
        seen->data_length = (uint32_t)(payload_length - tcp.header_length);
        seen->options = tcp.options;
        struct stream_tracker *track = &h->track;
        if (track->port && tcp.destination_port == track->port && seen->data_length > 0) {
            track->data_segments++;
            if (seen->data_length > track->largest_segment)
                track->largest_segment = seen->data_length;
            size_t offset = (uint32_t)(tcp.sequence - track->base);
            if (offset < track->capacity && offset + seen->data_length > track->highest)
                track->highest = offset + seen->data_length;
            if (offset < track->capacity && seen->data_length <= track->capacity - offset) {
                memcpy(track->data + offset, payload + tcp.header_length, seen->data_length);
                memset(track->have + offset, 1, seen->data_length);
            }
        }
    }
}

static void harness_send(void *context, const uint8_t *frame, size_t length)
{
    struct harness *h = context;
    h->frames_out++;
    CHECK(length <= 1514);
    struct ethernet_header ethernet;
    if (ethernet_parse(frame, length, &ethernet) != 0)
        return;
    if (ethernet.ethertype == ETHERTYPE_ARP) {
        struct arp_packet arp;
        if (arp_parse(frame + 14, length - 14, &arp) != ARP_PARSE_OK)
            return;
        if (arp.operation == ARP_OPERATION_REPLY)
            h->arp_replies++;
        if (arp.operation == ARP_OPERATION_REQUEST &&
            arp.target_address == ip_of(PEER_ADDRESS)) {
            /* The peer answers for itself (it is the gateway too); the
             * stack reads the reply on its next look at the link. */
            uint8_t reply[14 + ARP_PACKET_LENGTH];
            struct ethernet_header header = {.ethertype = ETHERTYPE_ARP};
            memcpy(header.destination, stack_mac, 6);
            memcpy(header.source, peer_mac, 6);
            ethernet_emit(&header, reply);
            struct arp_packet answer = {.operation = ARP_OPERATION_REPLY,
                                        .sender_address = ip_of(PEER_ADDRESS),
                                        .target_address = arp.sender_address};
            memcpy(answer.sender_mac, peer_mac, 6);
            memcpy(answer.target_mac, arp.sender_mac, 6);
            arp_emit(&answer, reply + 14);
            h->arp_requests_answered++;
            CHECK_EQ(usock_link_callback_input(h->link, reply, sizeof(reply)), 0);
        }
        return;
    }
    if (ethernet.ethertype == ETHERTYPE_IPV4)
        harness_record(h, frame + 14, length - 14);
}

/* Hands one frame to the stack and lets it process it now. */
static void inject(struct harness *h, const uint8_t *frame, size_t length)
{
    CHECK_EQ(usock_link_callback_input(h->link, frame, length), 0);
    usock_stack_poll(h->stack, h->now);
    /* An ARP reply the peer queued meanwhile is read now. */
    usock_stack_poll(h->stack, h->now);
}

static void advance(struct harness *h, uint64_t nanoseconds)
{
    h->now += nanoseconds;
    usock_stack_poll(h->stack, h->now);
}

static uint64_t counter(struct harness *h, const char *name)
{
    return usock_stack_counter(h->stack, name);
}

static size_t put_ethernet(uint8_t *frame, uint16_t ethertype)
{
    struct ethernet_header ethernet = {.ethertype = ethertype};
    memcpy(ethernet.destination, stack_mac, 6);
    memcpy(ethernet.source, peer_mac, 6);
    ethernet_emit(&ethernet, frame);
    return ETHERNET_HEADER_LENGTH;
}

static size_t build_arp_request(uint8_t *frame)
{
    put_ethernet(frame, ETHERTYPE_ARP);
    memset(frame, 0xff, 6);
    struct arp_packet arp = {.operation = ARP_OPERATION_REQUEST,
                             .sender_address = ip_of(PEER_ADDRESS),
                             .target_address = ip_of(STACK_ADDRESS)};
    memcpy(arp.sender_mac, peer_mac, 6);
    arp_emit(&arp, frame + 14);
    return 14 + ARP_PACKET_LENGTH;
}

/* Fields of an IPv4 datagram the peer sends. */
struct datagram_spec {
    uint32_t source;          /* 0: the peer */
    uint8_t protocol;
    uint16_t identification;
    bool more_fragments;
    uint16_t fragment_offset; /* bytes */
    const uint8_t *options;   /* IP options, a multiple of 4 bytes */
    size_t options_length;
};

/* Ethernet + IPv4 header (+ options) + payload; returns the frame length. */
static size_t build_datagram(uint8_t *frame, const struct datagram_spec *spec,
                             const uint8_t *payload, size_t payload_length)
{
    size_t offset = put_ethernet(frame, ETHERTYPE_IPV4);
    size_t header_length = IPV4_HEADER_LENGTH + spec->options_length;
    struct ipv4_header ip = {
        .total_length = (uint16_t)(header_length + payload_length),
        .identification = spec->identification,
        .more_fragments = spec->more_fragments,
        .fragment_offset = spec->fragment_offset,
        .time_to_live = 64,
        .protocol = spec->protocol,
        .source = spec->source ? spec->source : ip_of(PEER_ADDRESS),
        .destination = ip_of(STACK_ADDRESS),
    };
    if (spec->options_length)
        ipv4_emit_with_options(&ip, spec->options, spec->options_length, frame + offset);
    else
        ipv4_emit(&ip, frame + offset);
    memmove(frame + offset + header_length, payload, payload_length);
    return offset + header_length + payload_length;
}

/* Recomputes the IPv4 header checksum after a test bent a field. */
static void ipv4_fix_checksum(uint8_t *ip, size_t header_length)
{
    store_be16(ip + 10, 0);
    store_be16(ip + 10, checksum_finish(checksum_add(0, ip, header_length)));
}

/* A UDP datagram (header + payload) from source_port to port, for the
 * addresses given; returns its length. */
static size_t build_udp_payload(uint8_t *out, uint32_t source, uint16_t source_port,
                                uint16_t port, const void *data, size_t length)
{
    memcpy(out + 8, data, length);
    struct udp_header header = {.source_port = source_port,
                                .destination_port = port,
                                .length = (uint16_t)(8 + length)};
    udp_emit(&header, source, ip_of(STACK_ADDRESS), out);
    return 8 + length;
}

/* Fields of a TCP segment the peer sends. */
struct segment_spec {
    uint32_t source;          /* 0: the peer */
    uint16_t source_port;
    uint16_t destination_port; /* 0: 80 */
    uint32_t sequence, acknowledgment;
    uint8_t flags;
    uint16_t window;          /* as on the wire */
    uint16_t urgent;
    const uint8_t *options;   /* raw option bytes */
    size_t options_length;
    bool raw_data_offset;     /* write data_offset_words as it is */
    int data_offset_words;
    const uint8_t *data;
    size_t data_length;
};

/* The TCP segment (header + raw options + data) at out; returns its length.
 * The checksum is right whatever the data offset says. */
static size_t build_segment_bytes(uint8_t *out, const struct segment_spec *spec)
{
    uint32_t source = spec->source ? spec->source : ip_of(PEER_ADDRESS);
    size_t header_length = 20 + spec->options_length;
    size_t length = header_length + spec->data_length;
    store_be16(out, spec->source_port);
    store_be16(out + 2, spec->destination_port ? spec->destination_port : 80);
    store_be32(out + 4, spec->sequence);
    store_be32(out + 8, spec->acknowledgment);
    int words = spec->raw_data_offset ? spec->data_offset_words : (int)(header_length / 4);
    out[12] = (uint8_t)(words << 4);
    out[13] = spec->flags;
    store_be16(out + 14, spec->window);
    store_be16(out + 16, 0);
    store_be16(out + 18, spec->urgent);
    if (spec->options_length)
        memcpy(out + 20, spec->options, spec->options_length);
    if (spec->data_length)
        memcpy(out + header_length, spec->data, spec->data_length);
    uint32_t sum = checksum_pseudo_header(source, ip_of(STACK_ADDRESS), IPPROTO_TCP,
                                          (uint16_t)length);
    store_be16(out + 16, checksum_finish(checksum_add(sum, out, length)));
    return length;
}

static size_t build_segment(uint8_t *frame, const struct segment_spec *spec)
{
    uint8_t segment[FRAME_MAX];
    size_t length = build_segment_bytes(segment, spec);
    struct datagram_spec ip = {.source = spec->source, .protocol = IPPROTO_TCP,
                               .identification = 1};
    return build_datagram(frame, &ip, segment, length);
}

static void send_segment(struct harness *h, const struct segment_spec *spec)
{
    uint8_t frame[FRAME_MAX];
    inject(h, frame, build_segment(frame, spec));
}

/* Option writers: each returns the bytes written (a multiple of 4). */
static size_t option_mss(uint8_t *out, uint16_t mss)
{
    out[0] = TCP_OPTION_MSS;
    out[1] = 4;
    store_be16(out + 2, mss);
    return 4;
}

static size_t option_window_scale(uint8_t *out, uint8_t shift)
{
    out[0] = TCP_OPTION_NOP;
    out[1] = TCP_OPTION_WINDOW_SCALE;
    out[2] = 3;
    out[3] = shift;
    return 4;
}

static size_t option_sack_permitted(uint8_t *out)
{
    out[0] = TCP_OPTION_NOP;
    out[1] = TCP_OPTION_NOP;
    out[2] = TCP_OPTION_SACK_PERMITTED;
    out[3] = 2;
    return 4;
}

static size_t option_sack_blocks(uint8_t *out, const struct tcp_sack_block *blocks, size_t count)
{
    out[0] = TCP_OPTION_NOP;
    out[1] = TCP_OPTION_NOP;
    out[2] = TCP_OPTION_SACK;
    out[3] = (uint8_t)(2 + 8 * count);
    for (size_t i = 0; i < count; i++) {
        store_be32(out + 4 + 8 * i, blocks[i].left);
        store_be32(out + 8 + 8 * i, blocks[i].right);
    }
    return 4 + 8 * count;
}

/* The newest segment the stack sent to the peer's port with all of flags;
 * NULL when none among the last since_count. */
static const struct seen_segment *last_segment_to(const struct harness *h, uint16_t port,
                                                  uint8_t flags, size_t since_count)
{
    for (size_t i = h->segment_count; i > since_count && h->segment_count - i < SEEN_MAX; i--) {
        const struct seen_segment *seen = &h->segments[(i - 1) % SEEN_MAX];
        if (seen->destination_port == port && (seen->flags & flags) == flags)
            return seen;
    }
    return NULL;
}

static struct harness *harness_new(uint64_t seed)
{
    struct harness *h = calloc(1, sizeof(*h));
    CHECK(h != NULL);
    h->now = 1000 * SECOND;
    h->next_peer_port = 20000;
    CHECK_EQ(usock_link_callback_new(harness_send, h, 0, &h->link), 0);
    struct usock_stack_config config;
    usock_stack_config_init(&config);
    config.link = h->link;
    config.address.s_addr = ip_of(STACK_ADDRESS);
    config.prefix_length = 24;
    config.gateway.s_addr = ip_of(PEER_ADDRESS);
    config.seed = seed;
    config.clock = harness_clock;
    config.clock_context = h;
    memcpy(config.mac, stack_mac, 6);
    h->stack = usock_stack_new(&config);
    CHECK(h->stack != NULL);
    uint8_t frame[FRAME_MAX];
    inject(h, frame, build_arp_request(frame));
    CHECK_EQ(h->arp_replies, 1);

    h->udp_fd = usock_socket(h->stack, AF_INET, SOCK_DGRAM, 0);
    CHECK(h->udp_fd >= 0);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(7)};
    CHECK_EQ(usock_bind(h->stack, h->udp_fd, (struct sockaddr *)&local, sizeof(local)), 0);
    h->listener = usock_socket(h->stack, AF_INET, SOCK_STREAM, 0);
    CHECK(h->listener >= 0);
    struct sockaddr_in web = {.sin_family = AF_INET, .sin_port = htons(80)};
    CHECK_EQ(usock_bind(h->stack, h->listener, (struct sockaddr *)&web, sizeof(web)), 0);
    CHECK_EQ(usock_listen(h->stack, h->listener, 64), 0);
    return h;
}

static void tracker_start(struct harness *h, uint16_t port, uint32_t base, size_t capacity)
{
    struct stream_tracker *track = &h->track;
    free(track->data);
    free(track->have);
    memset(track, 0, sizeof(*track));
    track->port = port;
    track->base = base;
    track->capacity = capacity;
    track->data = calloc(1, capacity);
    track->have = calloc(1, capacity);
    CHECK(track->data && track->have);
}

static size_t tracker_prefix(const struct harness *h)
{
    size_t prefix = 0;
    while (prefix < h->track.capacity && h->track.have[prefix])
        prefix++;
    return prefix;
}

static void harness_free(struct harness *h)
{
    usock_stack_free(h->stack);
    free(h->track.data);
    free(h->track.have);
    free(h);
}

#endif
