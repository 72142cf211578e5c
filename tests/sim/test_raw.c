/*
 * test_raw.c - raw IP sockets, on two stacks joined by the in-memory wire in
 * event mode with a simulated clock: ICMP echo built by hand and its reply
 * read with the IP header, ICMP_FILTER, copies of UDP datagrams for raw
 * sockets of protocol 17 (filtered by bind and connect), IP_HDRINCL (implied
 * by IPPROTO_RAW, or set) with the stack filling in the header, a raw socket
 * silencing protocol unreachable, the errors Linux gives, ICMP errors on
 * the IP_RECVERR error queue and multicast source filters.  Every test
 * frees both stacks (LeakSanitizer checks under the sanitizer build).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <time.h> /* before linux/errqueue.h, which uses struct timespec */
#include <linux/errqueue.h>
#include <linux/icmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "usock.h"

#ifndef SOL_RAW
#define SOL_RAW 255
#endif

#define ECHO_ID 0x4242
#define PROTOCOL_EXPERIMENT 253

struct world {
    uint64_t now;
    struct usock_stack *a, *b;
};

static uint64_t world_clock(void *context)
{
    return ((struct world *)context)->now;
}

static struct usock_stack *make_stack(struct world *world, struct usock_link *link,
                                      const char *address, unsigned seed)
{
    struct usock_stack_config config;
    usock_stack_config_init(&config);
    config.link = link;
    inet_pton(AF_INET, address, &config.address);
    config.prefix_length = 24;
    config.clock = world_clock;
    config.clock_context = world;
    config.seed = seed;
    struct usock_stack *stack = usock_stack_new(&config);
    CHECK(stack != NULL);
    return stack;
}

static void world_init(struct world *world)
{
    memset(world, 0, sizeof(*world));
    world->now = 1000000000ULL;
    struct usock_link *a, *b;
    CHECK_EQ(usock_link_mem_pair(&a, &b), 0);
    world->a = make_stack(world, a, "198.18.0.1", 1);
    world->b = make_stack(world, b, "198.18.0.2", 2);
}

/* Polls both stacks, advancing simulated time 1 ms each round. */
static void world_run(struct world *world, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        usock_stack_poll(world->a, world->now);
        usock_stack_poll(world->b, world->now);
        world->now += 1000000;
    }
}

static void world_free(struct world *world)
{
    usock_stack_free(world->a);
    usock_stack_free(world->b);
}

static struct sockaddr_in address_of(const char *text, uint16_t port)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, text, &address.sin_addr);
    return address;
}

static uint32_t ip_of(const char *text)
{
    return address_of(text, 0).sin_addr.s_addr;
}

static void store16(uint8_t *at, uint16_t value)
{
    at[0] = (uint8_t)(value >> 8);
    at[1] = (uint8_t)value;
}

static uint16_t load16(const uint8_t *at)
{
    return (uint16_t)(at[0] << 8 | at[1]);
}

/* The Internet checksum (RFC 1071) of data, ready to store big-endian. */
static uint16_t internet_checksum(const uint8_t *data, size_t length)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < length; i += 2)
        sum += load16(data + i);
    if (length & 1)
        sum += (uint32_t)data[length - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Builds an ICMP echo request (id, seq, payload "usock raw N...") with its
 * checksum into out; returns its length. */
static size_t build_echo(uint8_t *out, uint16_t id, uint16_t seq, size_t payload_length)
{
    out[0] = 8; /* echo request */
    out[1] = 0;
    store16(out + 2, 0);
    store16(out + 4, id);
    store16(out + 6, seq);
    for (size_t i = 0; i < payload_length; i++)
        out[8 + i] = (uint8_t)('a' + (i + seq) % 26);
    store16(out + 2, internet_checksum(out, 8 + payload_length));
    return 8 + payload_length;
}

/* Writes a 20-byte IPv4 header with total length, identification, checksum
 * and source left zero, for the stack to fill in. */
static void build_ip_header_blank(uint8_t *out, uint8_t protocol, const char *destination)
{
    memset(out, 0, 20);
    out[0] = 0x45;
    out[8] = 64;
    out[9] = protocol;
    uint32_t address = ip_of(destination);
    memcpy(out + 16, &address, 4);
}

static int raw_socket(struct usock_stack *stack, int protocol)
{
    int fd = usock_socket(stack, AF_INET, SOCK_RAW, protocol);
    CHECK(fd >= 0);
    return fd;
}

static int udp_socket_bound(struct usock_stack *stack, uint16_t port)
{
    int fd = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in local = address_of("0.0.0.0", port);
    CHECK_EQ(usock_bind(stack, fd, (struct sockaddr *)&local, sizeof(local)), 0);
    return fd;
}

static void send_udp(struct world *world, uint16_t port, const char *text)
{
    int client = udp_socket_bound(world->a, 0);
    struct sockaddr_in to = address_of("198.18.0.2", port);
    CHECK_EQ(usock_sendto(world->a, client, text, strlen(text), 0, (struct sockaddr *)&to,
                          sizeof(to)),
             (ssize_t)strlen(text));
    CHECK_EQ(usock_close(world->a, client), 0);
    world_run(world, 4);
}

/* Checks that packet (length bytes, as a raw socket read it) is an IPv4
 * header of protocol from source whose checksum and total length are right;
 * returns the header's length. */
static size_t check_ip_header(const uint8_t *packet, size_t length, uint8_t protocol,
                              const char *source)
{
    CHECK(length >= 20);
    CHECK_EQ(packet[0] >> 4, 4);
    size_t header_length = (size_t)(packet[0] & 0x0f) * 4;
    CHECK_EQ(header_length, 20);
    CHECK_EQ(packet[9], protocol);
    CHECK_EQ(load16(packet + 2), length);
    CHECK_EQ(internet_checksum(packet, header_length), 0);
    uint32_t from;
    memcpy(&from, packet + 12, 4);
    CHECK_EQ(from, ip_of(source));
    return header_length;
}

/* Checks that packet is B's echo reply to (id, seq) with the payload
 * build_echo put in a request of payload_length. */
static void check_echo_reply(const uint8_t *packet, size_t length, uint16_t id, uint16_t seq,
                             size_t payload_length)
{
    size_t header_length = check_ip_header(packet, length, IPPROTO_ICMP, "198.18.0.2");
    const uint8_t *icmp = packet + header_length;
    CHECK_EQ(length - header_length, 8 + payload_length);
    CHECK_EQ(icmp[0], 0); /* echo reply */
    CHECK_EQ(icmp[1], 0);
    CHECK_EQ(internet_checksum(icmp, 8 + payload_length), 0);
    CHECK_EQ(load16(icmp + 4), id);
    CHECK_EQ(load16(icmp + 6), seq);
    uint8_t expected[8 + 256];
    build_echo(expected, id, seq, payload_length);
    CHECK(memcmp(icmp + 8, expected + 8, payload_length) == 0);
}

static void send_echo(struct world *world, int fd, uint16_t seq, size_t payload_length)
{
    uint8_t request[8 + 256];
    size_t length = build_echo(request, ECHO_ID, seq, payload_length);
    struct sockaddr_in to = address_of("198.18.0.2", 0);
    CHECK_EQ(usock_sendto(world->a, fd, request, length, 0, (struct sockaddr *)&to, sizeof(to)),
             (ssize_t)length);
}

static void test_icmp_raw_socket_sends_echo_and_reads_reply_with_ip_header(void)
{
    struct world world;
    world_init(&world);
    int fd = raw_socket(world.a, IPPROTO_ICMP);
    send_echo(&world, fd, 1, 56);
    world_run(&world, 4);
    uint8_t packet[2048];
    struct sockaddr_in from;
    memset(&from, 0xff, sizeof(from));
    socklen_t from_length = sizeof(from);
    ssize_t got = usock_recvfrom(world.a, fd, packet, sizeof(packet), 0, (struct sockaddr *)&from,
                                 &from_length);
    CHECK_EQ(got, 20 + 8 + 56);
    check_echo_reply(packet, (size_t)got, ECHO_ID, 1, 56);
    CHECK_EQ(from_length, sizeof(from));
    CHECK_EQ(from.sin_family, AF_INET);
    CHECK_EQ(from.sin_addr.s_addr, ip_of("198.18.0.2"));
    CHECK_ERRNO(usock_recv(world.a, fd, packet, sizeof(packet), 0), EAGAIN);
    CHECK_EQ(usock_stack_counter(world.b, "IcmpInEchos"), 1);
    CHECK_EQ(usock_stack_counter(world.b, "IcmpOutEchoReps"), 1);
    world_free(&world);
}

static void test_icmp_filter_bit_zero_drops_echo_replies(void)
{
    struct world world;
    world_init(&world);
    int filtered = raw_socket(world.a, IPPROTO_ICMP);
    int open = raw_socket(world.a, IPPROTO_ICMP);
    struct icmp_filter filter = {.data = 1u << ICMP_ECHOREPLY};
    CHECK_EQ(usock_setsockopt(world.a, filtered, SOL_RAW, ICMP_FILTER, &filter, sizeof(filter)),
             0);
    struct icmp_filter read_back = {0};
    socklen_t length = sizeof(read_back);
    CHECK_EQ(usock_getsockopt(world.a, filtered, SOL_RAW, ICMP_FILTER, &read_back, &length), 0);
    CHECK_EQ(read_back.data, 1u << ICMP_ECHOREPLY);
    send_echo(&world, filtered, 7, 16);
    world_run(&world, 4);
    uint8_t packet[2048];
    ssize_t got = usock_recv(world.a, open, packet, sizeof(packet), 0);
    CHECK_EQ(got, 20 + 8 + 16);
    check_echo_reply(packet, (size_t)got, ECHO_ID, 7, 16);
    CHECK_ERRNO(usock_recv(world.a, filtered, packet, sizeof(packet), 0), EAGAIN);
    /* ICMP_FILTER belongs to ICMP raw sockets only. */
    int udp_raw = raw_socket(world.a, IPPROTO_UDP);
    CHECK_ERRNO(usock_setsockopt(world.a, udp_raw, SOL_RAW, ICMP_FILTER, &filter, sizeof(filter)),
                EOPNOTSUPP);
    world_free(&world);
}

static void test_raw_udp_socket_sees_copy_of_datagram_udp_socket_also_gets(void)
{
    struct world world;
    world_init(&world);
    int server = udp_socket_bound(world.b, 7000);
    int raw_any = raw_socket(world.b, IPPROTO_UDP);
    int raw_bound_here = raw_socket(world.b, IPPROTO_UDP);
    int raw_bound_elsewhere = raw_socket(world.b, IPPROTO_UDP);
    struct sockaddr_in here = address_of("198.18.0.2", 0);
    struct sockaddr_in loopback = address_of("127.0.0.1", 0);
    CHECK_EQ(usock_bind(world.b, raw_bound_here, (struct sockaddr *)&here, sizeof(here)), 0);
    CHECK_EQ(usock_bind(world.b, raw_bound_elsewhere, (struct sockaddr *)&loopback,
                        sizeof(loopback)),
             0);
    send_udp(&world, 7000, "copy me");

    char text[64];
    CHECK_EQ(usock_recv(world.b, server, text, sizeof(text), 0), 7);
    CHECK(memcmp(text, "copy me", 7) == 0);
    uint8_t packet[2048];
    for (int i = 0; i < 2; i++) {
        int fd = i == 0 ? raw_any : raw_bound_here;
        ssize_t got = usock_recv(world.b, fd, packet, sizeof(packet), 0);
        CHECK_EQ(got, 20 + 8 + 7);
        check_ip_header(packet, (size_t)got, IPPROTO_UDP, "198.18.0.1");
        CHECK_EQ(load16(packet + 22), 7000);   /* destination port */
        CHECK_EQ(load16(packet + 24), 8 + 7);  /* UDP length */
        CHECK(memcmp(packet + 28, "copy me", 7) == 0);
    }
    CHECK_ERRNO(usock_recv(world.b, raw_bound_elsewhere, packet, sizeof(packet), 0), EAGAIN);
    CHECK_EQ(usock_stack_counter(world.b, "UdpInDatagrams"), 1);
    world_free(&world);
}

static void test_connect_filters_raw_socket_by_source(void)
{
    struct world world;
    world_init(&world);
    int sender = raw_socket(world.a, IPPROTO_ICMP);
    int from_b = raw_socket(world.a, IPPROTO_ICMP);
    int from_other = raw_socket(world.a, IPPROTO_ICMP);
    struct sockaddr_in b = address_of("198.18.0.2", 0);
    struct sockaddr_in other = address_of("198.18.0.3", 0);
    CHECK_EQ(usock_connect(world.a, from_b, (struct sockaddr *)&b, sizeof(b)), 0);
    CHECK_EQ(usock_connect(world.a, from_other, (struct sockaddr *)&other, sizeof(other)), 0);
    struct sockaddr_in peer;
    socklen_t peer_length = sizeof(peer);
    CHECK_EQ(usock_getpeername(world.a, from_b, (struct sockaddr *)&peer, &peer_length), 0);
    CHECK_EQ(peer.sin_addr.s_addr, b.sin_addr.s_addr);
    send_echo(&world, sender, 3, 8);
    world_run(&world, 4);
    uint8_t packet[2048];
    CHECK_EQ(usock_recv(world.a, sender, packet, sizeof(packet), 0), 20 + 8 + 8);
    ssize_t got = usock_recv(world.a, from_b, packet, sizeof(packet), 0);
    CHECK_EQ(got, 20 + 8 + 8);
    check_echo_reply(packet, (size_t)got, ECHO_ID, 3, 8);
    CHECK_ERRNO(usock_recv(world.a, from_other, packet, sizeof(packet), 0), EAGAIN);
    /* A connected raw socket sends to its peer with send(). */
    uint8_t request[16];
    size_t length = build_echo(request, ECHO_ID, 4, 8);
    CHECK_EQ(usock_send(world.a, from_b, request, length, 0), (ssize_t)length);
    world_run(&world, 4);
    got = usock_recv(world.a, from_b, packet, sizeof(packet), 0);
    CHECK_EQ(got, 20 + 8 + 8);
    check_echo_reply(packet, (size_t)got, ECHO_ID, 4, 8);
    world_free(&world);
}

static void test_ipproto_raw_sends_hand_built_udp_and_stack_fills_header(void)
{
    struct world world;
    world_init(&world);
    int server = udp_socket_bound(world.b, 9000);
    int capture = raw_socket(world.b, IPPROTO_UDP);
    int fd = raw_socket(world.a, IPPROTO_RAW);
    int on = -1;
    socklen_t length = sizeof(on);
    CHECK_EQ(usock_getsockopt(world.a, fd, IPPROTO_IP, IP_HDRINCL, &on, &length), 0);
    CHECK_EQ(length, sizeof(int));
    CHECK_EQ(on, 1);

    uint8_t packet[20 + 8 + 5];
    build_ip_header_blank(packet, IPPROTO_UDP, "198.18.0.2");
    store16(packet + 20, 4321);       /* source port */
    store16(packet + 22, 9000);       /* destination port */
    store16(packet + 24, 8 + 5);      /* UDP length */
    store16(packet + 26, 0);          /* no UDP checksum */
    memcpy(packet + 28, "hello", 5);
    struct sockaddr_in to = address_of("198.18.0.2", 0);
    CHECK_EQ(usock_sendto(world.a, fd, packet, sizeof(packet), 0, (struct sockaddr *)&to,
                          sizeof(to)),
             (ssize_t)sizeof(packet));
    world_run(&world, 4);

    char text[16];
    struct sockaddr_in from;
    socklen_t from_length = sizeof(from);
    CHECK_EQ(usock_recvfrom(world.b, server, text, sizeof(text), 0, (struct sockaddr *)&from,
                            &from_length),
             5);
    CHECK(memcmp(text, "hello", 5) == 0);
    CHECK_EQ(from.sin_addr.s_addr, ip_of("198.18.0.1"));
    CHECK_EQ(ntohs(from.sin_port), 4321);

    uint8_t seen[2048];
    ssize_t got = usock_recv(world.b, capture, seen, sizeof(seen), 0);
    CHECK_EQ(got, (ssize_t)sizeof(packet));
    check_ip_header(seen, (size_t)got, IPPROTO_UDP, "198.18.0.1"); /* length, checksum, source */
    CHECK(load16(seen + 4) != 0); /* an identification was chosen */
    CHECK_EQ(seen[8], 64);        /* the caller's TTL stands */
    CHECK(memcmp(seen + 20, packet + 20, 8 + 5) == 0);
    world_free(&world);
}

static void test_ip_hdrincl_on_icmp_socket_sends_whole_packet(void)
{
    struct world world;
    world_init(&world);
    int fd = raw_socket(world.a, IPPROTO_ICMP);
    int on = 1;
    CHECK_EQ(usock_setsockopt(world.a, fd, IPPROTO_IP, IP_HDRINCL, &on, sizeof(on)), 0);
    int value = 0;
    socklen_t length = sizeof(value);
    CHECK_EQ(usock_getsockopt(world.a, fd, IPPROTO_IP, IP_HDRINCL, &value, &length), 0);
    CHECK_EQ(value, 1);

    uint8_t packet[20 + 8 + 32];
    build_ip_header_blank(packet, IPPROTO_ICMP, "198.18.0.2");
    build_echo(packet + 20, ECHO_ID, 9, 32);
    struct sockaddr_in to = address_of("198.18.0.2", 0);
    CHECK_EQ(usock_sendto(world.a, fd, packet, sizeof(packet), 0, (struct sockaddr *)&to,
                          sizeof(to)),
             (ssize_t)sizeof(packet));
    world_run(&world, 4);
    uint8_t reply[2048];
    ssize_t got = usock_recv(world.a, fd, reply, sizeof(reply), 0);
    CHECK_EQ(got, (ssize_t)sizeof(packet));
    check_echo_reply(reply, (size_t)got, ECHO_ID, 9, 32);
    CHECK_EQ(usock_stack_counter(world.b, "IcmpInEchos"), 1);
    CHECK_EQ(usock_stack_counter(world.b, "IpInHdrErrors"), 0);
    world_free(&world);
}

static void send_protocol_253(struct world *world)
{
    int fd = raw_socket(world->a, PROTOCOL_EXPERIMENT);
    struct sockaddr_in to = address_of("198.18.0.2", 0);
    CHECK_EQ(usock_sendto(world->a, fd, "experiment", 10, 0, (struct sockaddr *)&to, sizeof(to)),
             10);
    CHECK_EQ(usock_close(world->a, fd), 0);
    world_run(world, 4);
}

static void test_raw_socket_of_unknown_protocol_takes_it_without_unreachable(void)
{
    struct world world;
    world_init(&world);
    int listener = raw_socket(world.b, PROTOCOL_EXPERIMENT);
    send_protocol_253(&world);
    uint8_t packet[2048];
    struct sockaddr_in from;
    socklen_t from_length = sizeof(from);
    ssize_t got = usock_recvfrom(world.b, listener, packet, sizeof(packet), 0,
                                 (struct sockaddr *)&from, &from_length);
    CHECK_EQ(got, 20 + 10);
    check_ip_header(packet, (size_t)got, PROTOCOL_EXPERIMENT, "198.18.0.1");
    CHECK(memcmp(packet + 20, "experiment", 10) == 0);
    CHECK_EQ(from.sin_addr.s_addr, ip_of("198.18.0.1"));
    CHECK_EQ(usock_stack_counter(world.b, "IcmpOutDestUnreachs"), 0);
    CHECK_EQ(usock_stack_counter(world.b, "IpInUnknownProtos"), 0);

    /* Without the raw socket, the same packet draws protocol unreachable. */
    CHECK_EQ(usock_close(world.b, listener), 0);
    send_protocol_253(&world);
    CHECK_EQ(usock_stack_counter(world.b, "IpInUnknownProtos"), 1);
    CHECK_EQ(usock_stack_counter(world.b, "IcmpOutDestUnreachs"), 1);
    CHECK_EQ(usock_stack_counter(world.a, "IcmpInDestUnreachs"), 1);
    world_free(&world);
}

static void test_raw_socket_errors_match_linux(void)
{
    struct world world;
    world_init(&world);
    CHECK_ERRNO(usock_socket(world.a, AF_INET, SOCK_RAW, 0), EPROTONOSUPPORT);

    int fd = raw_socket(world.a, IPPROTO_ICMP);
    struct sockaddr_in name;
    memset(&name, 0, sizeof(name));
    socklen_t name_length = sizeof(name);
    CHECK_EQ(usock_getsockname(world.a, fd, (struct sockaddr *)&name, &name_length), 0);
    CHECK_EQ(name.sin_family, AF_INET);
    CHECK_EQ(ntohs(name.sin_port), IPPROTO_ICMP);
    CHECK_EQ(name.sin_addr.s_addr, htonl(INADDR_ANY));

    CHECK_ERRNO(usock_listen(world.a, fd, 1), EOPNOTSUPP);

    uint8_t request[16];
    size_t length = build_echo(request, ECHO_ID, 1, 8);
    struct sockaddr_in broadcast = address_of("198.18.0.255", 0);
    CHECK_ERRNO(usock_sendto(world.a, fd, request, length, 0, (struct sockaddr *)&broadcast,
                             sizeof(broadcast)),
                EACCES);
    int on = 1;
    CHECK_EQ(usock_setsockopt(world.a, fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof(on)), 0);
    CHECK_EQ(usock_sendto(world.a, fd, request, length, 0, (struct sockaddr *)&broadcast,
                          sizeof(broadcast)),
             (ssize_t)length);

    CHECK_EQ(usock_setsockopt(world.a, fd, IPPROTO_IP, IP_HDRINCL, &on, sizeof(on)), 0);
    static uint8_t big[2000];
    build_ip_header_blank(big, IPPROTO_ICMP, "198.18.0.2");
    build_echo(big + 20, ECHO_ID, 2, 200);
    struct sockaddr_in to = address_of("198.18.0.2", 0);
    CHECK_ERRNO(usock_sendto(world.a, fd, big, sizeof(big), 0, (struct sockaddr *)&to, sizeof(to)),
                EMSGSIZE);
    /* Without IP_HDRINCL the same size is fragmented and answered. */
    int off = 0;
    CHECK_EQ(usock_setsockopt(world.a, fd, IPPROTO_IP, IP_HDRINCL, &off, sizeof(off)), 0);
    static uint8_t echo[8 + 1972];
    echo[0] = 8;
    store16(echo + 4, ECHO_ID);
    store16(echo + 6, 5);
    store16(echo + 2, internet_checksum(echo, sizeof(echo)));
    CHECK_EQ(usock_sendto(world.a, fd, echo, sizeof(echo), 0, (struct sockaddr *)&to, sizeof(to)),
             (ssize_t)sizeof(echo));
    world_run(&world, 6);
    static uint8_t reply[4096];
    ssize_t got;
    do {
        got = usock_recv(world.a, fd, reply, sizeof(reply), 0);
        CHECK(got > 0);
    } while (reply[9] != IPPROTO_ICMP || reply[20] != 0 || load16(reply + 26) != 5);
    CHECK_EQ(got, 20 + (ssize_t)sizeof(echo));
    CHECK_EQ(usock_stack_counter(world.b, "IpReasmOKs"), 1);
    CHECK_EQ(usock_stack_counter(world.a, "IpReasmOKs"), 1);
    world_free(&world);
}


/* Datagram ICMP ("ping") sockets: the stack sets the identifier and the
 * checksum; replies come back as ICMP messages without the IP header. */
static void test_ping_socket_sends_echo_and_gets_its_reply(void)
{
    struct world world;
    world_init(&world);
    int fd = usock_socket(world.a, AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    CHECK(fd >= 0);
    int type = 0;
    socklen_t type_length = sizeof(type);
    CHECK_EQ(usock_getsockopt(world.a, fd, SOL_SOCKET, SO_PROTOCOL, &type, &type_length), 0);
    CHECK_EQ(type, IPPROTO_ICMP);
    uint8_t request[8 + 16] = {8, 0, 0, 0, 0x12, 0x34, 0, 7};
    for (int i = 0; i < 16; i++)
        request[8 + i] = (uint8_t)i;
    struct sockaddr_in to = address_of("198.18.0.2", 0);
    CHECK_EQ(usock_sendto(world.a, fd, request, sizeof(request), 0, (struct sockaddr *)&to,
                          sizeof(to)), (ssize_t)sizeof(request));
    struct sockaddr_in name;
    socklen_t name_length = sizeof(name);
    CHECK_EQ(usock_getsockname(world.a, fd, (struct sockaddr *)&name, &name_length), 0);
    uint16_t identifier = ntohs(name.sin_port);
    CHECK(identifier != 0);
    world_run(&world, 4);
    uint8_t reply[64];
    struct sockaddr_in from;
    socklen_t from_length = sizeof(from);
    CHECK_EQ(usock_recvfrom(world.a, fd, reply, sizeof(reply), 0, (struct sockaddr *)&from,
                            &from_length), (ssize_t)sizeof(request));
    CHECK_EQ(reply[0], 0); /* echo reply, no IP header */
    CHECK_EQ(reply[4] << 8 | reply[5], identifier);
    CHECK_EQ(reply[7], 7);
    CHECK(memcmp(reply + 8, request + 8, 16) == 0);
    CHECK_EQ(from.sin_addr.s_addr, ip_of("198.18.0.2"));
    /* Only echo requests may be sent. */
    uint8_t bogus[8] = {13, 0, 0, 0, 0, 0, 0, 0};
    CHECK_ERRNO(usock_sendto(world.a, fd, bogus, sizeof(bogus), 0, (struct sockaddr *)&to,
                             sizeof(to)), EINVAL);
    CHECK_ERRNO(usock_sendto(world.a, fd, bogus, 4, 0, (struct sockaddr *)&to, sizeof(to)),
                EINVAL);
    world_free(&world);
}

/* A raw UDP socket on A with IP_RECVERR: B's port unreachable lands on its
 * error queue with B as the offender and the quote from the UDP header. */
static void test_raw_socket_error_queue_gets_remote_port_unreachable(void)
{
    struct world world;
    world_init(&world);
    int fd = raw_socket(world.a, IPPROTO_UDP);
    int on = 1;
    CHECK_EQ(usock_setsockopt(world.a, fd, IPPROTO_IP, IP_RECVERR, &on, sizeof(on)), 0);
    uint8_t datagram[8 + 4] = {0x11, 0x5c, 0x13, 0x89, 0, 12, 0, 0, 'p', 'i', 'n', 'g'};
    struct sockaddr_in to = address_of("198.18.0.2", 0);
    CHECK_EQ(usock_sendto(world.a, fd, datagram, sizeof(datagram), 0, (struct sockaddr *)&to,
                          sizeof(to)), (ssize_t)sizeof(datagram));
    world_run(&world, 5);
    uint8_t data[64];
    struct iovec vector = {.iov_base = data, .iov_len = sizeof(data)};
    union {
        struct cmsghdr align;
        uint8_t bytes[256];
    } control;
    struct sockaddr_in name;
    struct msghdr message = {.msg_name = &name, .msg_namelen = sizeof(name), .msg_iov = &vector,
                             .msg_iovlen = 1, .msg_control = control.bytes,
                             .msg_controllen = sizeof(control.bytes)};
    CHECK_EQ(usock_recvmsg(world.a, fd, &message, MSG_ERRQUEUE), (ssize_t)sizeof(datagram));
    CHECK(memcmp(data, datagram, sizeof(datagram)) == 0);
    CHECK_EQ(name.sin_addr.s_addr, ip_of("198.18.0.2"));
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    CHECK(header != NULL);
    CHECK_EQ(header->cmsg_level, IPPROTO_IP);
    CHECK_EQ(header->cmsg_type, IP_RECVERR);
    struct sock_extended_err error;
    memcpy(&error, CMSG_DATA(header), sizeof(error));
    CHECK_EQ(error.ee_errno, ECONNREFUSED);
    CHECK_EQ(error.ee_origin, SO_EE_ORIGIN_ICMP);
    CHECK_EQ(error.ee_type, 3);
    CHECK_EQ(error.ee_code, 3);
    struct sockaddr_in offender;
    memcpy(&offender, SO_EE_OFFENDER((struct sock_extended_err *)CMSG_DATA(header)),
           sizeof(offender));
    CHECK_EQ(offender.sin_addr.s_addr, ip_of("198.18.0.2"));
    /* The pending error went with the report. */
    int pending = -1;
    socklen_t length = sizeof(pending);
    CHECK_EQ(usock_getsockopt(world.a, fd, SOL_SOCKET, SO_ERROR, &pending, &length), 0);
    CHECK_EQ(pending, 0);
    world_free(&world);
}

/* A raw UDP socket's multicast membership filters by source like a UDP
 * socket's: INCLUDE of another source keeps A's datagram away. */
static void test_raw_socket_multicast_source_filter(void)
{
    struct world world;
    world_init(&world);
    int fd = raw_socket(world.b, IPPROTO_UDP);
    struct ip_mreq_source request;
    memset(&request, 0, sizeof(request));
    request.imr_multiaddr.s_addr = ip_of("232.4.4.4");
    request.imr_sourceaddr.s_addr = ip_of("198.18.0.1");
    CHECK_EQ(usock_setsockopt(world.b, fd, IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, &request,
                              sizeof(request)), 0);
    /* A second raw socket only blocks A: the interface takes A (the first
     * socket wants it), this one must not see it. */
    int blocking = raw_socket(world.b, IPPROTO_UDP);
    struct ip_mreq any = {.imr_multiaddr.s_addr = ip_of("232.4.4.4")};
    CHECK_EQ(usock_setsockopt(world.b, blocking, IPPROTO_IP, IP_ADD_MEMBERSHIP, &any,
                              sizeof(any)), 0);
    CHECK_EQ(usock_setsockopt(world.b, blocking, IPPROTO_IP, IP_BLOCK_SOURCE, &request,
                              sizeof(request)), 0);
    int sender = udp_socket_bound(world.a, 0);
    struct sockaddr_in group = address_of("232.4.4.4", 7000);
    CHECK_EQ(usock_sendto(world.a, sender, "mc", 2, 0, (struct sockaddr *)&group,
                          sizeof(group)), 2);
    world_run(&world, 4);
    uint8_t packet[128];
    CHECK_EQ(usock_recv(world.b, fd, packet, sizeof(packet), MSG_DONTWAIT), 20 + 8 + 2);
    CHECK_ERRNO(usock_recv(world.b, blocking, packet, sizeof(packet), MSG_DONTWAIT), EAGAIN);
    world_free(&world);
}

static const struct check_test tests[] = {
    CHECK_TEST(test_icmp_raw_socket_sends_echo_and_reads_reply_with_ip_header),
    CHECK_TEST(test_icmp_filter_bit_zero_drops_echo_replies),
    CHECK_TEST(test_raw_udp_socket_sees_copy_of_datagram_udp_socket_also_gets),
    CHECK_TEST(test_connect_filters_raw_socket_by_source),
    CHECK_TEST(test_ipproto_raw_sends_hand_built_udp_and_stack_fills_header),
    CHECK_TEST(test_ip_hdrincl_on_icmp_socket_sends_whole_packet),
    CHECK_TEST(test_raw_socket_of_unknown_protocol_takes_it_without_unreachable),
    CHECK_TEST(test_raw_socket_errors_match_linux),
    CHECK_TEST(test_ping_socket_sends_echo_and_gets_its_reply),
    CHECK_TEST(test_raw_socket_error_queue_gets_remote_port_unreachable),
    CHECK_TEST(test_raw_socket_multicast_source_filter),
};

CHECK_MAIN(tests)
