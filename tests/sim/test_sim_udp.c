/*
 * test_sim_udp.c - two stacks on the in-memory wire, in event mode with a
 * simulated clock: ARP resolution and its timeout, UDP both ways, broadcast,
 * port unreachable reaching a connected socket, loopback inside one stack,
 * and that freeing the stacks releases everything (LeakSanitizer checks
 * under the sanitizer build).
 */
#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "usock.h"
#include "wire/icmp.h"
#include "wire/ipv4.h"

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
    /* A default route: Linux routes 255.255.255.255 only through one. */
    inet_pton(AF_INET, "198.18.0.254", &config.gateway);
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

/* Polls both stacks, advancing simulated time by step_ns each round. */
static void world_run(struct world *world, int rounds, uint64_t step_ns)
{
    for (int i = 0; i < rounds; i++) {
        usock_stack_poll(world->a, world->now);
        usock_stack_poll(world->b, world->now);
        world->now += step_ns;
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

static int udp_socket_bound(struct usock_stack *stack, const char *address, uint16_t port)
{
    int fd = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in local = address_of(address, port);
    CHECK_EQ(usock_bind(stack, fd, (struct sockaddr *)&local, sizeof(local)), 0);
    return fd;
}

static void test_udp_exchange_both_ways_after_arp(void)
{
    struct world world;
    world_init(&world);
    int server = udp_socket_bound(world.b, "0.0.0.0", 7);
    int client = udp_socket_bound(world.a, "0.0.0.0", 0);
    struct sockaddr_in to = address_of("198.18.0.2", 7);
    CHECK_EQ(usock_sendto(world.a, client, "ping", 4, 0, (struct sockaddr *)&to, sizeof(to)), 4);
    char buffer[64];
    /* The datagram waits for ARP; nothing has arrived yet. */
    CHECK_ERRNO(usock_recv(world.b, server, buffer, sizeof(buffer), 0), EAGAIN);
    world_run(&world, 4, 1000000);
    struct sockaddr_in from;
    socklen_t from_length = sizeof(from);
    CHECK_EQ(usock_recvfrom(world.b, server, buffer, sizeof(buffer), 0, (struct sockaddr *)&from,
                            &from_length),
             4);
    CHECK(memcmp(buffer, "ping", 4) == 0);
    CHECK_EQ(from.sin_addr.s_addr, address_of("198.18.0.1", 0).sin_addr.s_addr);
    CHECK_EQ(usock_sendto(world.b, server, "pong", 4, 0, (struct sockaddr *)&from, from_length), 4);
    world_run(&world, 2, 1000000);
    CHECK_EQ(usock_recv(world.a, client, buffer, sizeof(buffer), 0), 4);
    CHECK(memcmp(buffer, "pong", 4) == 0);
    CHECK(usock_stack_counter(world.a, "ArpOutRequests") >= 1);
    CHECK(usock_stack_counter(world.b, "ArpOutReplies") >= 1);
    CHECK_EQ(usock_stack_counter(world.b, "UdpInDatagrams"), 1);
    CHECK_EQ(usock_stack_counter(world.a, "UdpInDatagrams"), 1);
    world_free(&world);
}

static void test_arp_timeout_drops_queued_datagrams(void)
{
    struct world world;
    world_init(&world);
    int client = udp_socket_bound(world.a, "0.0.0.0", 0);
    struct sockaddr_in to = address_of("198.18.0.99", 9);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(usock_sendto(world.a, client, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)), 1);
    world_run(&world, 50, 100000000); /* 5 simulated seconds */
    CHECK_EQ(usock_stack_counter(world.a, "ArpOutRequests"), 3);
    CHECK_EQ(usock_stack_counter(world.a, "ArpResolveFailed"), 1);
    CHECK_EQ(usock_stack_counter(world.a, "IpOutDiscards"), 3);
    world_free(&world);
}

static void test_broadcast_reaches_wildcard_socket_and_needs_permission(void)
{
    struct world world;
    world_init(&world);
    int listener = udp_socket_bound(world.b, "0.0.0.0", 5000);
    int specific = udp_socket_bound(world.b, "198.18.0.2", 5000 + 1);
    (void)specific;
    int sender = udp_socket_bound(world.a, "0.0.0.0", 0);
    struct sockaddr_in to = address_of("198.18.0.255", 5000);
    CHECK_ERRNO(usock_sendto(world.a, sender, "b", 1, 0, (struct sockaddr *)&to, sizeof(to)),
                EACCES);
    int on = 1;
    CHECK_EQ(usock_setsockopt(world.a, sender, SOL_SOCKET, SO_BROADCAST, &on, sizeof(on)), 0);
    CHECK_EQ(usock_sendto(world.a, sender, "b", 1, 0, (struct sockaddr *)&to, sizeof(to)), 1);
    struct sockaddr_in limited = address_of("255.255.255.255", 5000);
    CHECK_EQ(usock_sendto(world.a, sender, "c", 1, 0, (struct sockaddr *)&limited,
                          sizeof(limited)), 1);
    world_run(&world, 2, 1000000);
    char buffer[8];
    CHECK_EQ(usock_recv(world.b, listener, buffer, sizeof(buffer), 0), 1);
    CHECK_EQ(buffer[0], 'b');
    CHECK_EQ(usock_recv(world.b, listener, buffer, sizeof(buffer), 0), 1);
    CHECK_EQ(buffer[0], 'c');
    /* No ARP was needed for a broadcast. */
    CHECK_EQ(usock_stack_counter(world.a, "ArpOutRequests"), 0);
    world_free(&world);
}

static void test_port_unreachable_refuses_connected_socket(void)
{
    struct world world;
    world_init(&world);
    int client = usock_socket(world.a, AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = address_of("198.18.0.2", 9999);
    CHECK_EQ(usock_connect(world.a, client, (struct sockaddr *)&to, sizeof(to)), 0);
    CHECK_EQ(usock_send(world.a, client, "x", 1, 0), 1);
    world_run(&world, 4, 1000000);
    CHECK_EQ(usock_stack_counter(world.b, "UdpNoPorts"), 1);
    CHECK_EQ(usock_stack_counter(world.b, "IcmpOutDestUnreachs"), 1);
    CHECK_EQ(usock_stack_counter(world.a, "IcmpInDestUnreachs"), 1);
    struct pollfd poll_entry = {.fd = client, .events = POLLIN};
    CHECK_EQ(usock_poll(world.a, &poll_entry, 1, 0), 1);
    CHECK(poll_entry.revents & POLLERR);
    char buffer[8];
    CHECK_ERRNO(usock_recv(world.a, client, buffer, sizeof(buffer), 0), ECONNREFUSED);
    CHECK_ERRNO(usock_recv(world.a, client, buffer, sizeof(buffer), 0), EAGAIN);
    world_free(&world);
}

static void test_loopback_between_two_sockets_of_one_stack(void)
{
    struct world world;
    world_init(&world);
    int server = udp_socket_bound(world.a, "127.0.0.1", 7);
    int client = usock_socket(world.a, AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = address_of("127.0.0.1", 7);
    CHECK_EQ(usock_sendto(world.a, client, "self", 4, 0, (struct sockaddr *)&to, sizeof(to)), 4);
    char buffer[8];
    struct sockaddr_in from;
    socklen_t length = sizeof(from);
    CHECK_EQ(usock_recvfrom(world.a, server, buffer, sizeof(buffer), 0, (struct sockaddr *)&from,
                            &length), 4);
    CHECK_EQ(from.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    /* The stack's own address is local too, and nothing goes on the wire. */
    int server2 = udp_socket_bound(world.a, "198.18.0.1", 8);
    struct sockaddr_in to2 = address_of("198.18.0.1", 8);
    CHECK_EQ(usock_sendto(world.a, client, "own", 3, 0, (struct sockaddr *)&to2, sizeof(to2)), 3);
    CHECK_EQ(usock_recv(world.a, server2, buffer, sizeof(buffer), 0), 3);
    CHECK_EQ(usock_stack_counter(world.a, "ArpOutRequests"), 0);
    world_free(&world);
}

struct captured {
    uint8_t frames[8][2048];
    size_t lengths[8];
    int count;
};

static void capture_frame(void *context, const uint8_t *frame, size_t length)
{
    struct captured *captured = context;
    if (captured->count < 8 && length <= 2048) {
        memcpy(captured->frames[captured->count], frame, length);
        captured->lengths[captured->count++] = length;
    }
}

/* Builds an IPv4 packet of protocol with payload into out; returns length. */
static size_t build_ip(uint8_t *out, const char *source, const char *destination, uint8_t protocol,
                       const uint8_t *payload, size_t payload_length)
{
    struct ipv4_header header = {
        .total_length = (uint16_t)(20 + payload_length),
        .identification = 1,
        .time_to_live = 64,
        .protocol = protocol,
        .source = address_of(source, 0).sin_addr.s_addr,
        .destination = address_of(destination, 0).sin_addr.s_addr,
    };
    memcpy(out + 20, payload, payload_length);
    ipv4_emit(&header, out);
    return 20 + payload_length;
}

static void test_icmp_echo_of_any_size_is_answered_on_an_ip_link(void)
{
    struct captured captured = {0};
    struct usock_link *link;
    CHECK_EQ(usock_link_callback_new(capture_frame, &captured, 1, &link), 0);
    struct world world;
    memset(&world, 0, sizeof(world));
    struct usock_stack *stack = make_stack(&world, link, "198.18.0.2", 3);
    uint8_t icmp[8 + 1400];
    for (size_t i = 0; i < sizeof(icmp); i++)
        icmp[i] = (uint8_t)i;
    struct icmp_header request = {.type = ICMP_TYPE_ECHO_REQUEST, .rest = 0x12340001};
    icmp_emit(&request, icmp, sizeof(icmp) - 8);
    uint8_t packet[1500];
    size_t length = build_ip(packet, "198.18.0.1", "198.18.0.2", 1, icmp, sizeof(icmp));
    CHECK_EQ(usock_link_callback_input(link, packet, length), 0);
    usock_stack_poll(stack, 1);
    CHECK_EQ(captured.count, 1);
    struct ipv4_header reply_ip;
    CHECK_EQ(ipv4_parse(captured.frames[0], captured.lengths[0], true, &reply_ip), IPV4_PARSE_OK);
    CHECK_EQ(reply_ip.destination, address_of("198.18.0.1", 0).sin_addr.s_addr);
    struct icmp_header reply;
    CHECK_EQ(icmp_parse(captured.frames[0] + 20, captured.lengths[0] - 20, true, &reply),
             ICMP_PARSE_OK);
    CHECK_EQ(reply.type, ICMP_TYPE_ECHO_REPLY);
    CHECK_EQ(reply.rest, 0x12340001);
    CHECK(memcmp(captured.frames[0] + 28, icmp + 8, sizeof(icmp) - 8) == 0);

    /* A UDP datagram to a closed port draws a port unreachable quoting it;
     * a bad checksum draws nothing and is counted. */
    uint8_t udp[8 + 4] = {0x30, 0x39, 0x00, 0x09, 0, 12, 0, 0, 'd', 'a', 't', 'a'};
    length = build_ip(packet, "198.18.0.1", "198.18.0.2", 17, udp, sizeof(udp));
    CHECK_EQ(usock_link_callback_input(link, packet, length), 0);
    usock_stack_poll(stack, 2);
    CHECK_EQ(captured.count, 2);
    CHECK_EQ(icmp_parse(captured.frames[1] + 20, captured.lengths[1] - 20, true, &reply),
             ICMP_PARSE_OK);
    CHECK_EQ(reply.type, ICMP_TYPE_DESTINATION_UNREACHABLE);
    CHECK_EQ(reply.code, ICMP_CODE_PORT_UNREACHABLE);
    CHECK_EQ(usock_stack_counter(stack, "UdpNoPorts"), 1);

    /* An unknown protocol draws protocol unreachable. */
    length = build_ip(packet, "198.18.0.1", "198.18.0.2", 253, udp, sizeof(udp));
    CHECK_EQ(usock_link_callback_input(link, packet, length), 0);
    usock_stack_poll(stack, 3);
    CHECK_EQ(captured.count, 3);
    CHECK_EQ(icmp_parse(captured.frames[2] + 20, captured.lengths[2] - 20, true, &reply),
             ICMP_PARSE_OK);
    CHECK_EQ(reply.code, ICMP_CODE_PROTOCOL_UNREACHABLE);
    CHECK_EQ(usock_stack_counter(stack, "IpInUnknownProtos"), 1);

    /* Hostile headers are dropped and counted, never answered. */
    length = build_ip(packet, "198.18.0.1", "198.18.0.2", 1, icmp, 64);
    packet[0] = 0x44; /* IHL 4 */
    CHECK_EQ(usock_link_callback_input(link, packet, length), 0);
    length = build_ip(packet, "198.18.0.1", "198.18.0.2", 1, icmp, 64);
    packet[2] = 0x10; /* total length 4096, beyond the frame */
    CHECK_EQ(usock_link_callback_input(link, packet, length), 0);
    length = build_ip(packet, "198.18.0.1", "198.18.0.2", 1, icmp, 64);
    packet[10] ^= 1; /* header checksum */
    CHECK_EQ(usock_link_callback_input(link, packet, length), 0);
    CHECK_EQ(usock_link_callback_input(link, packet, 7), 0); /* runt */
    usock_stack_poll(stack, 4);
    CHECK_EQ(captured.count, 3);
    CHECK_EQ(usock_stack_counter(stack, "IpInHdrErrors"), 4);
    CHECK_EQ(usock_stack_counter(stack, "IpInBadHeaderLength"), 1);
    CHECK_EQ(usock_stack_counter(stack, "IpInBadTotalLength"), 1);
    CHECK_EQ(usock_stack_counter(stack, "IpInCsumErrors"), 1);
    CHECK_EQ(usock_stack_counter(stack, "IpInTruncated"), 1);
    usock_stack_free(stack);
}


static void test_recvmsg_reports_pktinfo_ttl_and_tos_when_asked(void)
{
    struct world world;
    world_init(&world);
    int server = udp_socket_bound(world.b, "0.0.0.0", 7);
    int on = 1;
    CHECK_EQ(usock_setsockopt(world.b, server, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on)), 0);
    CHECK_EQ(usock_setsockopt(world.b, server, IPPROTO_IP, IP_RECVTTL, &on, sizeof(on)), 0);
    CHECK_EQ(usock_setsockopt(world.b, server, IPPROTO_IP, IP_RECVTOS, &on, sizeof(on)), 0);
    int client = udp_socket_bound(world.a, "0.0.0.0", 0);
    int ttl = 33, tos = 0x10;
    CHECK_EQ(usock_setsockopt(world.a, client, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)), 0);
    CHECK_EQ(usock_setsockopt(world.a, client, IPPROTO_IP, IP_TOS, &tos, sizeof(tos)), 0);
    struct sockaddr_in to = address_of("198.18.0.2", 7);
    CHECK_EQ(usock_sendto(world.a, client, "anc", 3, 0, (struct sockaddr *)&to, sizeof(to)), 3);
    world_run(&world, 4, 1000000);
    char data[16];
    union {
        char buffer[256];
        struct cmsghdr align;
    } control;
    struct iovec vector = {.iov_base = data, .iov_len = sizeof(data)};
    struct msghdr message = {.msg_iov = &vector, .msg_iovlen = 1,
                             .msg_control = control.buffer, .msg_controllen = sizeof(control.buffer)};
    CHECK_EQ(usock_recvmsg(world.b, server, &message, 0), 3);
    bool saw_info = false, saw_ttl = false, saw_tos = false;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header;
         header = CMSG_NXTHDR(&message, header)) {
        CHECK_EQ(header->cmsg_level, IPPROTO_IP);
        if (header->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo info;
            memcpy(&info, CMSG_DATA(header), sizeof(info));
            CHECK_EQ(info.ipi_addr.s_addr, to.sin_addr.s_addr);
            saw_info = true;
        } else if (header->cmsg_type == IP_TTL) {
            int value;
            memcpy(&value, CMSG_DATA(header), sizeof(value));
            CHECK_EQ(value, 33);
            saw_ttl = true;
        } else if (header->cmsg_type == IP_TOS) {
            CHECK_EQ(*(uint8_t *)CMSG_DATA(header), 0x10);
            saw_tos = true;
        }
    }
    CHECK(saw_info && saw_ttl && saw_tos);
    /* Too little room: MSG_CTRUNC. */
    CHECK_EQ(usock_sendto(world.a, client, "anc", 3, 0, (struct sockaddr *)&to, sizeof(to)), 3);
    world_run(&world, 2, 1000000);
    message.msg_controllen = CMSG_SPACE(sizeof(int));
    CHECK_EQ(usock_recvmsg(world.b, server, &message, 0), 3);
    CHECK(message.msg_flags & MSG_CTRUNC);
    world_free(&world);
}


static void test_ip_recverr_queues_icmp_errors_for_msg_errqueue(void)
{
    struct world world;
    world_init(&world);
    int client = udp_socket_bound(world.a, "0.0.0.0", 0);
    int on = 1;
    CHECK_EQ(usock_setsockopt(world.a, client, IPPROTO_IP, IP_RECVERR, &on, sizeof(on)), 0);
    struct sockaddr_in to = address_of("198.18.0.2", 9999);
    CHECK_EQ(usock_sendto(world.a, client, "lost", 4, 0, (struct sockaddr *)&to, sizeof(to)), 4);
    world_run(&world, 4, 1000000);
    /* Unconnected, yet with IP_RECVERR the error is reported. */
    struct pollfd entry = {.fd = client, .events = 0};
    CHECK_EQ(usock_poll(world.a, &entry, 1, 0), 1);
    CHECK(entry.revents & POLLERR);
    char data[16];
    union {
        char buffer[256];
        struct cmsghdr align;
    } control;
    struct sockaddr_in name;
    struct iovec vector = {.iov_base = data, .iov_len = sizeof(data)};
    struct msghdr message = {.msg_name = &name, .msg_namelen = sizeof(name), .msg_iov = &vector,
                             .msg_iovlen = 1, .msg_control = control.buffer,
                             .msg_controllen = sizeof(control.buffer)};
    CHECK_EQ(usock_recvmsg(world.a, client, &message, MSG_ERRQUEUE), 4);
    CHECK(memcmp(data, "lost", 4) == 0);
    CHECK(message.msg_flags & MSG_ERRQUEUE);
    CHECK_EQ(name.sin_addr.s_addr, to.sin_addr.s_addr);
    CHECK_EQ(ntohs(name.sin_port), 9999);
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    CHECK(header != NULL);
    CHECK_EQ(header->cmsg_level, IPPROTO_IP);
    CHECK_EQ(header->cmsg_type, IP_RECVERR);
    struct sock_extended_err report;
    memcpy(&report, CMSG_DATA(header), sizeof(report));
    CHECK_EQ(report.ee_errno, ECONNREFUSED);
    CHECK_EQ(report.ee_origin, SO_EE_ORIGIN_ICMP);
    CHECK_EQ(report.ee_type, 3);
    CHECK_EQ(report.ee_code, 3);
    struct sockaddr_in offender;
    memcpy(&offender, CMSG_DATA(header) + sizeof(report), sizeof(offender));
    CHECK_EQ(offender.sin_addr.s_addr, to.sin_addr.s_addr);
    /* Read, the report is gone and so is the pending error. */
    CHECK_ERRNO(usock_recvmsg(world.a, client, &message, MSG_ERRQUEUE), EAGAIN);
    int error = -1;
    socklen_t length = sizeof(error);
    CHECK_EQ(usock_getsockopt(world.a, client, SOL_SOCKET, SO_ERROR, &error, &length), 0);
    CHECK_EQ(error, 0);
    world_free(&world);
}

static const struct check_test tests[] = {
    CHECK_TEST(test_udp_exchange_both_ways_after_arp),
    CHECK_TEST(test_arp_timeout_drops_queued_datagrams),
    CHECK_TEST(test_broadcast_reaches_wildcard_socket_and_needs_permission),
    CHECK_TEST(test_port_unreachable_refuses_connected_socket),
    CHECK_TEST(test_loopback_between_two_sockets_of_one_stack),
    CHECK_TEST(test_recvmsg_reports_pktinfo_ttl_and_tos_when_asked),
    CHECK_TEST(test_ip_recverr_queues_icmp_errors_for_msg_errqueue),
    CHECK_TEST(test_icmp_echo_of_any_size_is_answered_on_an_ip_link),
};

CHECK_MAIN(tests)
