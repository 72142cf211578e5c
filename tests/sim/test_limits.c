/*
 * test_limits.c - each configurable limit holds when reached: the caller
 * gets the errno a Linux program would (EMFILE for descriptors, ENOBUFS
 * for a neighbour table that is full), or a frame from the wire is dropped
 * and counted (datagram memory across sockets, reassembly memory, the
 * neighbour table), and the stack serves again once the pressure goes.
 *
 * One stack on a callback link: the test builds every frame the peer
 * (198.18.0.1) sends, so it can leave fragments incomplete on purpose.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "check.h"
#include "usock.h"
#include "wire/arp.h"
#include "wire/ethernet.h"
#include "wire/ipv4.h"
#include "wire/udp.h"

static const uint8_t peer_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
static const uint8_t stack_mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};

struct sink {
    size_t frames;
    size_t arp_requests;
};

static void sink_frame(void *context, const uint8_t *frame, size_t length)
{
    struct sink *sink = context;
    sink->frames++;
    struct ethernet_header ethernet;
    if (ethernet_parse(frame, length, &ethernet) == 0 && ethernet.ethertype == ETHERTYPE_ARP)
        sink->arp_requests++;
}

static uint32_t ip_of(const char *text)
{
    struct in_addr address;
    CHECK_EQ(inet_pton(AF_INET, text, &address), 1);
    return address.s_addr;
}

/* The stack's clock: API calls read it, and the test moves it. */
static uint64_t fake_now = 1;

static uint64_t fake_clock(void *context)
{
    (void)context;
    return fake_now;
}

static struct usock_stack *stack_with(struct usock_stack_config *config, struct sink *sink,
                                      struct usock_link **link)
{
    CHECK_EQ(usock_link_callback_new(sink_frame, sink, 0, link), 0);
    config->link = *link;
    config->address.s_addr = ip_of("198.18.0.2");
    config->prefix_length = 24;
    config->seed = 11;
    config->clock = fake_clock;
    memcpy(config->mac, stack_mac, 6);
    struct usock_stack *stack = usock_stack_new(config);
    CHECK(stack != NULL);
    return stack;
}

/* An IPv4 packet from the peer to the stack with the given fragment
 * fields, carrying payload; returns the frame's length. */
static size_t build_ip_frame(uint8_t *frame, uint16_t identification, uint16_t fragment_offset,
                             bool more_fragments, uint8_t protocol, const uint8_t *payload,
                             size_t payload_length)
{
    struct ethernet_header ethernet = {.ethertype = ETHERTYPE_IPV4};
    memcpy(ethernet.destination, stack_mac, 6);
    memcpy(ethernet.source, peer_mac, 6);
    ethernet_emit(&ethernet, frame);
    struct ipv4_header ip = {
        .total_length = (uint16_t)(20 + payload_length),
        .identification = identification,
        .more_fragments = more_fragments,
        .fragment_offset = fragment_offset,
        .time_to_live = 64,
        .protocol = protocol,
        .source = ip_of("198.18.0.1"),
        .destination = ip_of("198.18.0.2"),
    };
    memcpy(frame + 34, payload, payload_length);
    ipv4_emit(&ip, frame + 14);
    return 34 + payload_length;
}

static size_t build_udp_frame(uint8_t *frame, uint16_t port, size_t payload_length)
{
    static uint8_t datagram[8 + 1400];
    CHECK(payload_length <= 1400);
    memset(datagram + 8, 'd', payload_length);
    struct udp_header header = {.source_port = 4000,
                                .destination_port = port,
                                .length = (uint16_t)(8 + payload_length)};
    udp_emit(&header, ip_of("198.18.0.1"), ip_of("198.18.0.2"), datagram);
    return build_ip_frame(frame, 1, 0, false, IPPROTO_UDP, datagram, 8 + payload_length);
}

static void test_socket_limit_gives_emfile_for_every_kind(void)
{
    struct usock_stack_config config;
    usock_stack_config_init(&config);
    config.socket_limit = 3;
    struct sink sink = {0};
    struct usock_link *link;
    struct usock_stack *stack = stack_with(&config, &sink, &link);
    int first = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    CHECK(first >= 0);
    CHECK(usock_socket(stack, AF_INET, SOCK_STREAM, 0) >= 0);
    CHECK(usock_socket(stack, AF_INET, SOCK_DGRAM, IPPROTO_ICMP) >= 0);
    CHECK_ERRNO(usock_socket(stack, AF_INET, SOCK_DGRAM, 0), EMFILE);
    CHECK_ERRNO(usock_socket(stack, AF_INET, SOCK_STREAM, 0), EMFILE);
    CHECK_ERRNO(usock_socket(stack, AF_INET, SOCK_RAW, IPPROTO_UDP), EMFILE);
    CHECK_EQ(usock_close(stack, first), 0);
    CHECK(usock_socket(stack, AF_INET, SOCK_RAW, IPPROTO_UDP) >= 0);
    usock_stack_free(stack);
}

/* Four UDP sockets each allowed far more than the stack-wide limit: they
 * fill it together, every datagram past it is counted in UdpMemErrors,
 * and reading one socket's queue makes room for more. */
static void test_datagram_memory_is_bounded_across_sockets(void)
{
    const size_t limit = 64 * 1024;
    struct usock_stack_config config;
    usock_stack_config_init(&config);
    config.datagram_memory_limit = limit;
    struct sink sink = {0};
    struct usock_link *link;
    struct usock_stack *stack = stack_with(&config, &sink, &link);
    int sockets[4];
    for (int i = 0; i < 4; i++) {
        sockets[i] = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
        int size = 1 << 20;
        CHECK_EQ(usock_setsockopt(stack, sockets[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)),
                 0);
        struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(7000 + i))};
        CHECK_EQ(usock_bind(stack, sockets[i], (struct sockaddr *)&local, sizeof(local)), 0);
    }
    uint8_t frame[1600];
    uint64_t now = 1;
    for (int round = 0; round < 400; round++) {
        size_t length = build_udp_frame(frame, (uint16_t)(7000 + round % 4), 1000);
        CHECK_EQ(usock_link_callback_input(link, frame, length), 0);
        if (round % 16 == 0)
            usock_stack_poll(stack, now++);
    }
    usock_stack_poll(stack, now++);
    uint64_t delivered = usock_stack_counter(stack, "UdpInDatagrams");
    uint64_t refused = usock_stack_counter(stack, "UdpMemErrors");
    CHECK_EQ(delivered + refused, 400);
    CHECK(refused > 0);
    CHECK_EQ(usock_stack_counter(stack, "UdpRcvbufErrors"), 0);
    /* What is queued fits the limit (each datagram is charged its payload
     * and a fixed overhead, so fewer than limit / 1000 fit). */
    CHECK(delivered * 1000 <= limit);
    CHECK(delivered >= 4);
    /* Reading frees room: a new datagram is taken again. */
    char buffer[2048];
    size_t drained = 0;
    while (usock_recv(stack, sockets[0], buffer, sizeof(buffer), MSG_DONTWAIT) == 1000)
        drained++;
    CHECK(drained > 0);
    size_t length = build_udp_frame(frame, 7001, 1000);
    CHECK_EQ(usock_link_callback_input(link, frame, length), 0);
    usock_stack_poll(stack, now++);
    CHECK_EQ(usock_stack_counter(stack, "UdpInDatagrams"), delivered + 1);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(usock_close(stack, sockets[i]), 0);
    /* Closing gave everything back: one socket alone fills the same room. */
    int alone = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    int size = 1 << 20;
    CHECK_EQ(usock_setsockopt(stack, alone, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)), 0);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(7000)};
    CHECK_EQ(usock_bind(stack, alone, (struct sockaddr *)&local, sizeof(local)), 0);
    uint64_t before = usock_stack_counter(stack, "UdpInDatagrams");
    for (int round = 0; round < 400; round++) {
        length = build_udp_frame(frame, 7000, 1000);
        CHECK_EQ(usock_link_callback_input(link, frame, length), 0);
        if (round % 16 == 0)
            usock_stack_poll(stack, now++);
    }
    usock_stack_poll(stack, now++);
    CHECK_EQ(usock_stack_counter(stack, "UdpInDatagrams") - before, delivered);
    usock_stack_free(stack);
}

/* Thousands of datagrams whose last fragment never comes: reassembly
 * holds no more than its limit, refuses and counts the rest, and a whole
 * fragmented datagram still goes through once the old ones time out. */
static void test_reassembly_memory_is_bounded(void)
{
    const size_t limit = 32 * 1024;
    struct usock_stack_config config;
    usock_stack_config_init(&config);
    config.reassembly_memory_limit = limit;
    struct sink sink = {0};
    struct usock_link *link;
    struct usock_stack *stack = stack_with(&config, &sink, &link);
    int fd = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(9)};
    CHECK_EQ(usock_bind(stack, fd, (struct sockaddr *)&local, sizeof(local)), 0);

    uint8_t piece[1000];
    memset(piece, 'f', sizeof(piece));
    uint8_t frame[1600];
    uint64_t now = 1;
    for (uint16_t id = 1; id <= 2000; id++) {
        size_t length = build_ip_frame(frame, id, 0, true, IPPROTO_UDP, piece, sizeof(piece));
        CHECK_EQ(usock_link_callback_input(link, frame, length), 0);
        if (id % 16 == 0)
            usock_stack_poll(stack, now++);
    }
    usock_stack_poll(stack, now++);
    uint64_t started = usock_stack_counter(stack, "IpReasmReqds");
    uint64_t refused = usock_stack_counter(stack, "IpReasmMemoryDrops");
    CHECK_EQ(started, 2000);
    /* At most limit / 1000 first pieces are held; the rest were refused. */
    CHECK(refused >= 2000 - limit / 1000);
    CHECK(refused < 2000);

    /* 30 s on (Linux's ipfrag_time) the held ones time out; then a whole
     * datagram in two fragments is put together and delivered. */
    now += 31ULL * 1000000000;
    usock_stack_poll(stack, now);
    CHECK(usock_stack_counter(stack, "IpReasmTimeout") > 0);
    uint8_t datagram[8 + 1600];
    memset(datagram + 8, 'w', 1600);
    struct udp_header header = {.source_port = 4000, .destination_port = 9, .length = 8 + 1600};
    udp_emit(&header, ip_of("198.18.0.1"), ip_of("198.18.0.2"), datagram);
    size_t length = build_ip_frame(frame, 60000, 0, true, IPPROTO_UDP, datagram, 1000);
    CHECK_EQ(usock_link_callback_input(link, frame, length), 0);
    length = build_ip_frame(frame, 60000, 1000, false, IPPROTO_UDP, datagram + 1000,
                            sizeof(datagram) - 1000);
    CHECK_EQ(usock_link_callback_input(link, frame, length), 0);
    usock_stack_poll(stack, now + 1);
    char received[2048];
    CHECK_EQ(usock_recv(stack, fd, received, sizeof(received), MSG_DONTWAIT), 1600);
    CHECK(received[0] == 'w' && received[1599] == 'w');
    usock_stack_free(stack);
}

/* With room for two neighbours, a datagram to a third address on the link
 * is dropped and counted (sendto succeeds: Linux too reports a drop below
 * the socket only through IP_RECVERR); once the unanswered entries give
 * up, the third address is asked for. */
static void test_neighbour_limit_drops_and_counts(void)
{
    struct usock_stack_config config;
    usock_stack_config_init(&config);
    config.neighbour_limit = 2;
    struct sink sink = {0};
    struct usock_link *link;
    struct usock_stack *stack = stack_with(&config, &sink, &link);
    int fd = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    const char *targets[] = {"198.18.0.10", "198.18.0.11", "198.18.0.12"};
    size_t requests_before = sink.arp_requests; /* the announcement at start */
    for (int i = 0; i < 3; i++) {
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
        to.sin_addr.s_addr = ip_of(targets[i]);
        CHECK_EQ(usock_sendto(stack, fd, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)), 1);
    }
    CHECK_EQ(usock_stack_counter(stack, "ArpCacheFull"), 1);
    CHECK_EQ(usock_stack_counter(stack, "IpOutDiscards"), 1);
    CHECK_EQ(sink.arp_requests, requests_before + 2);
    /* Unanswered entries give up after their retries; then there is room. */
    for (int i = 0; i < 20; i++) {
        fake_now += 1000000000ULL;
        usock_stack_poll(stack, fake_now);
    }
    CHECK(usock_stack_counter(stack, "ArpResolveFailed") >= 2);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
    to.sin_addr.s_addr = ip_of(targets[2]);
    CHECK_EQ(usock_sendto(stack, fd, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)), 1);
    CHECK_EQ(usock_stack_counter(stack, "ArpCacheFull"), 1);
    CHECK(sink.arp_requests > requests_before + 2);
    usock_stack_free(stack);
}

static const struct check_test tests[] = {
    CHECK_TEST(test_socket_limit_gives_emfile_for_every_kind),
    CHECK_TEST(test_datagram_memory_is_bounded_across_sockets),
    CHECK_TEST(test_reassembly_memory_is_bounded),
    CHECK_TEST(test_neighbour_limit_drops_and_counts),
};

CHECK_MAIN(tests)
