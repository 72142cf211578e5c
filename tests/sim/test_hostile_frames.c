/*
 * test_hostile_frames.c - a stack fed hundreds of thousands of malformed
 * and mutated frames keeps serving: nothing is read or written out of
 * bounds (the sanitizer build checks), nothing leaks, every drop is counted,
 * and afterwards it still answers a ping and a UDP datagram.
 *
 * Frames come in through a callback link (the program-supplied link) so the
 * test sees exactly what the stack sends back.
 */
#include <arpa/inet.h>
#include <string.h>

#include "check.h"
#include "usock.h"
#include "util/random.h"
#include "wire/arp.h"
#include "wire/ethernet.h"
#include "wire/icmp.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"
#include "wire/udp.h"

struct sink {
    size_t frames;
    size_t echo_replies;
    size_t udp_to_client;
    uint8_t stack_mac[6];
};

static void sink_frame(void *context, const uint8_t *frame, size_t length)
{
    struct sink *sink = context;
    sink->frames++;
    struct ethernet_header ethernet;
    CHECK(length <= 1514);
    if (ethernet_parse(frame, length, &ethernet) != 0 || ethernet.ethertype != ETHERTYPE_IPV4)
        return;
    struct ipv4_header ip;
    if (ipv4_parse(frame + 14, length - 14, true, &ip) != IPV4_PARSE_OK)
        return;
    if (ip.protocol == IPPROTO_ICMP) {
        struct icmp_header icmp;
        if (icmp_parse(frame + 14 + ip.header_length, ip.total_length - ip.header_length, true,
                       &icmp) == ICMP_PARSE_OK &&
            icmp.type == ICMP_TYPE_ECHO_REPLY && icmp.rest == 0xbeef0001)
            sink->echo_replies++;
    }
    if (ip.protocol == IPPROTO_UDP)
        sink->udp_to_client++;
}

static const uint8_t peer_mac[6] = {0x02, 0, 0, 0, 0, 0x01};

static uint32_t ip_of(const char *text)
{
    struct in_addr address;
    inet_pton(AF_INET, text, &address);
    return address.s_addr;
}

/* Builds Ethernet + IPv4 + payload addressed to the stack; returns length. */
static size_t build_frame(uint8_t *frame, const uint8_t stack_mac[6], uint8_t protocol,
                          const uint8_t *payload, size_t payload_length)
{
    struct ethernet_header ethernet = {.ethertype = ETHERTYPE_IPV4};
    memcpy(ethernet.destination, stack_mac, 6);
    memcpy(ethernet.source, peer_mac, 6);
    ethernet_emit(&ethernet, frame);
    struct ipv4_header ip = {
        .total_length = (uint16_t)(20 + payload_length),
        .identification = 7,
        .time_to_live = 64,
        .protocol = protocol,
        .source = ip_of("198.18.0.1"),
        .destination = ip_of("198.18.0.2"),
    };
    memcpy(frame + 34, payload, payload_length);
    ipv4_emit(&ip, frame + 14);
    return 34 + payload_length;
}

static size_t build_echo(uint8_t *frame, const uint8_t stack_mac[6], uint32_t rest)
{
    uint8_t icmp[8 + 56];
    memset(icmp, 0xab, sizeof(icmp));
    struct icmp_header request = {.type = ICMP_TYPE_ECHO_REQUEST, .rest = rest};
    icmp_emit(&request, icmp, sizeof(icmp) - 8);
    return build_frame(frame, stack_mac, IPPROTO_ICMP, icmp, sizeof(icmp));
}

static size_t build_udp(uint8_t *frame, const uint8_t stack_mac[6], uint16_t port)
{
    uint8_t udp[8 + 5];
    memcpy(udp + 8, "hello", 5);
    struct udp_header header = {.source_port = 4000, .destination_port = port, .length = 13};
    udp_emit(&header, ip_of("198.18.0.1"), ip_of("198.18.0.2"), udp);
    return build_frame(frame, stack_mac, IPPROTO_UDP, udp, sizeof(udp));
}

/* A TCP segment to port 80 (a listener) with options and payload. */
static size_t build_tcp(uint8_t *frame, const uint8_t stack_mac[6], uint8_t flags,
                        size_t payload_length)
{
    uint8_t segment[60 + 64];
    struct tcp_header header = {
        .source_port = 4000,
        .destination_port = 80,
        .sequence = 1000,
        .acknowledgment = 1,
        .flags = flags,
        .window = 65535,
    };
    header.options.has_mss = true;
    header.options.mss = 1460;
    header.options.has_window_scale = true;
    header.options.window_scale = 7;
    header.options.sack_permitted = true;
    header.options.has_timestamps = true;
    size_t options_length = tcp_options_length(&header.options);
    memset(segment + 20 + options_length, 'z', payload_length);
    size_t header_length = tcp_emit(&header, ip_of("198.18.0.1"), ip_of("198.18.0.2"), segment,
                                    payload_length);
    return build_frame(frame, stack_mac, IPPROTO_TCP, segment, header_length + payload_length);
}

static size_t build_arp(uint8_t *frame, uint16_t operation)
{
    struct ethernet_header ethernet = {.ethertype = ETHERTYPE_ARP};
    memset(ethernet.destination, 0xff, 6);
    memcpy(ethernet.source, peer_mac, 6);
    ethernet_emit(&ethernet, frame);
    struct arp_packet arp = {.operation = operation,
                             .sender_address = ip_of("198.18.0.1"),
                             .target_address = ip_of("198.18.0.2")};
    memcpy(arp.sender_mac, peer_mac, 6);
    arp_emit(&arp, frame + 14);
    return 14 + ARP_PACKET_LENGTH;
}

static void test_mutated_frames_are_survived_and_counted(void)
{
    struct sink sink = {0};
    struct usock_link *link;
    CHECK_EQ(usock_link_callback_new(sink_frame, &sink, 0, &link), 0);
    struct usock_stack_config config;
    usock_stack_config_init(&config);
    config.link = link;
    config.address.s_addr = ip_of("198.18.0.2");
    config.prefix_length = 24;
    config.seed = 42;
    static const uint8_t mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
    memcpy(config.mac, mac, 6);
    struct usock_stack *stack = usock_stack_new(&config);
    CHECK(stack != NULL);
    int fd = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(7)};
    CHECK_EQ(usock_bind(stack, fd, (struct sockaddr *)&local, sizeof(local)), 0);

    int listener = usock_socket(stack, AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in web = {.sin_family = AF_INET, .sin_port = htons(80)};
    CHECK_EQ(usock_bind(stack, listener, (struct sockaddr *)&web, sizeof(web)), 0);
    CHECK_EQ(usock_listen(stack, listener, 64), 0);
    uint8_t templates[7][1600];
    size_t template_lengths[7] = {
        build_echo(templates[0], mac, 1),
        build_udp(templates[1], mac, 7),
        build_arp(templates[2], ARP_OPERATION_REQUEST),
        build_udp(templates[3], mac, 9),
        build_tcp(templates[4], mac, TCP_FLAG_SYN, 0),
        build_tcp(templates[5], mac, TCP_FLAG_ACK | TCP_FLAG_PSH, 40),
        build_tcp(templates[6], mac, TCP_FLAG_FIN | TCP_FLAG_ACK | TCP_FLAG_URG, 8),
    };
    struct random_state random;
    random_seed(&random, 7);
    uint64_t now = 1;
    char drain[2048];
    for (int round = 0; round < 200000; round++) {
        uint8_t frame[1600];
        int which = (int)random_below(&random, 7);
        size_t length = template_lengths[which];
        memcpy(frame, templates[which], length);
        int mutations = 1 + (int)random_below(&random, 4);
        for (int m = 0; m < mutations; m++) {
            switch (random_below(&random, 4)) {
            case 0: /* flip a byte, biased to the headers */
                if (length == 0)
                    break;
                frame[random_below(&random, length < 64 ? length : 64)] ^=
                    (uint8_t)(1 + random_below(&random, 255));
                break;
            case 1: /* truncate */
                length = (size_t)random_below(&random, length + 1);
                break;
            case 2: /* pad with garbage */
                if (length < 1500) {
                    size_t extra = (size_t)random_below(&random, 1500 - length);
                    for (size_t i = 0; i < extra; i++)
                        frame[length + i] = (uint8_t)random_next(&random);
                    length += extra;
                }
                break;
            default: /* random byte anywhere */
                if (length)
                    frame[random_below(&random, length)] = (uint8_t)random_next(&random);
                break;
            }
        }
        if (length == 0)
            length = 1;
        usock_link_callback_input(link, frame, length);
        if (round % 64 == 0) {
            usock_stack_poll(stack, now);
            while (usock_recv(stack, fd, drain, sizeof(drain), MSG_DONTWAIT) >= 0)
                ;
            int child;
            while ((child = usock_accept(stack, listener, NULL, NULL)) >= 0)
                usock_close(stack, child);
            now += 10000000; /* 10 ms */
        }
    }
    usock_stack_poll(stack, now);
    CHECK(usock_stack_counter(stack, "IpInHdrErrors") > 0);
    CHECK(usock_stack_counter(stack, "EthInNotForUs") > 0);
    CHECK(usock_stack_counter(stack, "TcpInSegs") > 0);
    CHECK(usock_stack_counter(stack, "TcpInErrs") > 0);
    CHECK(usock_stack_counter(stack, "TcpPassiveOpens") > 0);
    CHECK(usock_stack_counter(stack, "ArpInUnsupported") + usock_stack_counter(stack, "ArpInTruncated") > 0);

    /* It still serves: a ping is answered and a datagram delivered. */
    now += 10ULL * 1000000000;
    sink.echo_replies = 0;
    uint8_t frame[1600];
    size_t length = build_arp(frame, ARP_OPERATION_REQUEST);
    CHECK_EQ(usock_link_callback_input(link, frame, length), 0);
    length = build_echo(frame, mac, 0xbeef0001);
    CHECK_EQ(usock_link_callback_input(link, frame, length), 0);
    length = build_udp(frame, mac, 7);
    CHECK_EQ(usock_link_callback_input(link, frame, length), 0);
    usock_stack_poll(stack, now);
    CHECK_EQ(sink.echo_replies, 1);
    CHECK_EQ(usock_recv(stack, fd, drain, sizeof(drain), 0), 5);
    CHECK(memcmp(drain, "hello", 5) == 0);
    usock_stack_free(stack);
}

static const struct check_test tests[] = {
    CHECK_TEST(test_mutated_frames_are_survived_and_counted),
};

CHECK_MAIN(tests)
