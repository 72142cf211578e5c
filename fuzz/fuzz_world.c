/*
 * fuzz_world.c - the shared parts of the fuzz targets (see fuzz_world.h),
 * and the world of fuzz_frames.
 *
 * fuzz_frames' world is built fresh for every input, deterministically (a
 * fixed seed, a simulated clock), so an input replays exactly.  Setup runs
 * the stack under test (the target, FUZZ_TARGET_ADDRESS) against a peer
 * stack on two callback links joined by this file: while it relays, each
 * poll's frames are handed across; while it holds, frames are kept instead
 * (some then handed to the target alone), and whatever the target never
 * saw, or the peer never saw, ends as the world's templates: real frames of
 * real connections, with the sequence numbers the target expects, which
 * the input can replay and alter.  The peer is freed before the input runs,
 * so from then on only the fuzzer speaks to the target, and every frame
 * the target sends is checked to be well formed.
 */
#include "fuzz_world.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/icmp.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "stack.h"
#include "wire/arp.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/icmp.h"
#include "wire/igmp.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"
#include "wire/udp.h"

const uint8_t fuzz_peer_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
const uint8_t fuzz_target_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};

/* A poll that keeps finding work due "now" this many times is a bug. */
#define POLL_ROUNDS_MAX 10000
/* Frames of one setup exchange before it is taken to have settled. */
#define EXCHANGE_ROUNDS_MAX 256
/* How far the clock moves at most in one jump to a deadline. */
#define DEADLINE_JUMP_MAX (600 * FUZZ_NS_PER_SECOND)
#define FINISH_TIMER_STEPS 24

static uint32_t address_of(const char *text)
{
    struct in_addr address;
    if (inet_pton(AF_INET, text, &address) != 1)
        abort();
    return address.s_addr;
}

static struct sockaddr_in endpoint_of(const char *text, uint16_t port)
{
    struct sockaddr_in endpoint = {.sin_family = AF_INET, .sin_port = htons(port)};
    endpoint.sin_addr.s_addr = address_of(text);
    return endpoint;
}

uint64_t fuzz_clock_read(void *context)
{
    return ((struct fuzz_clock *)context)->now;
}

void frame_list_push(struct frame_list *list, const uint8_t *frame, size_t length)
{
    if (list->count == FRAME_LIST_MAX || length == 0) {
        list->dropped++;
        return;
    }
    uint8_t *copy = malloc(length);
    if (!copy)
        abort();
    memcpy(copy, frame, length);
    list->frames[list->count] = copy;
    list->lengths[list->count++] = length;
}

void frame_list_clear(struct frame_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->frames[i]);
    list->count = 0;
    list->dropped = 0;
}

static void fuzz_fail(const char *what, const uint8_t *frame, size_t length)
{
    fprintf(stderr, "fuzz: the stack sent a bad frame (%s), %zu bytes:", what, length);
    for (size_t i = 0; i < length && i < 128; i++)
        fprintf(stderr, "%s%02x", i % 16 ? " " : "\n  ", frame[i]);
    fprintf(stderr, "\n");
    abort();
}

/* The transport checksum of an unfragmented datagram must hold. */
static void check_sent_transport(const struct ipv4_header *ip, const uint8_t *payload,
                                 size_t payload_length, const uint8_t *frame, size_t length)
{
    switch (ip->protocol) {
    case IPPROTO_TCP: {
        struct tcp_header tcp;
        if (tcp_parse(payload, payload_length, ip->source, ip->destination, true, &tcp) !=
            TCP_PARSE_OK)
            fuzz_fail("TCP segment does not parse", frame, length);
        break;
    }
    case IPPROTO_UDP: {
        struct udp_header udp;
        if (udp_parse(payload, payload_length, ip->source, ip->destination, true, &udp) !=
            UDP_PARSE_OK)
            fuzz_fail("UDP datagram does not parse", frame, length);
        break;
    }
    case IPPROTO_ICMP: {
        struct icmp_header icmp;
        if (icmp_parse(payload, payload_length, true, &icmp) != ICMP_PARSE_OK)
            fuzz_fail("ICMP message does not parse", frame, length);
        break;
    }
    case IPPROTO_IGMP: {
        struct igmp_message igmp;
        if (igmp_parse(payload, payload_length, true, &igmp) != IGMP_PARSE_OK)
            fuzz_fail("IGMP message does not parse", frame, length);
        break;
    }
    default:
        break; /* raw sockets send what the program gives them */
    }
}

void fuzz_check_sent_frame(const uint8_t *frame, size_t length)
{
    struct ethernet_header ethernet;
    if (length > ETHERNET_HEADER_LENGTH + 1500 || ethernet_parse(frame, length, &ethernet) != 0)
        fuzz_fail("length", frame, length);
    const uint8_t *packet = frame + ETHERNET_HEADER_LENGTH;
    size_t packet_length = length - ETHERNET_HEADER_LENGTH;
    if (ethernet.ethertype == ETHERTYPE_ARP) {
        struct arp_packet arp;
        if (arp_parse(packet, packet_length, &arp) != ARP_PARSE_OK)
            fuzz_fail("ARP does not parse", frame, length);
        return;
    }
    if (ethernet.ethertype != ETHERTYPE_IPV4)
        fuzz_fail("ethertype", frame, length);
    struct ipv4_header ip;
    if (ipv4_parse(packet, packet_length, true, &ip) != IPV4_PARSE_OK)
        fuzz_fail("IPv4 header does not parse", frame, length);
    if (ip.total_length != packet_length)
        fuzz_fail("IPv4 total length is not the frame's", frame, length);
    if (!ipv4_is_fragment(&ip))
        check_sent_transport(&ip, packet + ip.header_length, packet_length - ip.header_length,
                             frame, length);
}

void fuzz_stack_config(struct usock_stack_config *config, struct usock_link *link,
                       const char *address, const uint8_t mac[6], uint64_t seed,
                       struct fuzz_clock *clock)
{
    usock_stack_config_init(config);
    config->link = link;
    config->address.s_addr = address_of(address);
    config->prefix_length = 24;
    if (mac)
        memcpy(config->mac, mac, 6);
    config->clock = fuzz_clock_read;
    config->clock_context = clock;
    config->seed = seed;
    config->tcp_time_wait_ns = 2 * FUZZ_NS_PER_SECOND;
    config->tcp_memory_limit = 64u << 20;
    config->socket_limit = 256;
}

void fuzz_stack_skip_checksums(struct usock_stack *stack)
{
    /* Not in the public configuration on purpose: a stack that believes
     * every checksum is for fuzzing only. */
    stack->verify_checksums = false;
}

/* Polls until nothing more is due at now.  A stack that keeps finding
 * work due is a bug: the counters that move meanwhile say which work. */
static void poll_settled(struct usock_stack *stack, uint64_t now)
{
    for (int round = 0; round < POLL_ROUNDS_MAX; round++)
        if (usock_stack_poll(stack, now) > now)
            return;
    size_t count = usock_stack_counter_count();
    uint64_t *before = calloc(count, sizeof(*before));
    for (size_t i = 0; before && i < count; i++)
        before[i] = usock_stack_counter_value(stack, i);
    uint64_t deadline = usock_stack_poll(stack, now);
    fprintf(stderr, "fuzz: usock_stack_poll never settled (now %llu, deadline %llu); one more "
                    "poll moved:\n",
            (unsigned long long)now, (unsigned long long)deadline);
    for (size_t i = 0; before && i < count; i++)
        if (usock_stack_counter_value(stack, i) != before[i])
            fprintf(stderr, "  %s +%llu\n", usock_stack_counter_name(i),
                    (unsigned long long)(usock_stack_counter_value(stack, i) - before[i]));
    abort();
}

/* ---- setup: the target and a peer ------------------------------------ */

enum relay_mode {
    RELAY_BOTH_WAYS, /* frames cross at once */
    RELAY_HOLD,      /* frames are kept (to become templates) */
};

struct setup {
    struct frames_world *world;
    struct usock_stack *peer;
    struct usock_link *peer_link;
    struct frame_list to_target; /* frames the peer sent, not yet handed across */
    struct frame_list to_peer;   /* frames the target sent, not yet handed across */
    enum relay_mode mode;
    int peer_sockets[8];
    int peer_socket_count;
};

static void target_link_send(void *context, const uint8_t *frame, size_t length)
{
    struct frames_world *world = context;
    if (world->capture) {
        frame_list_push(world->capture, frame, length);
        return;
    }
    world->frames_sent++;
    fuzz_check_sent_frame(frame, length);
}

static void peer_link_send(void *context, const uint8_t *frame, size_t length)
{
    frame_list_push(context, frame, length);
}

static void hand_over(struct frame_list *list, struct usock_link *link)
{
    for (size_t i = 0; i < list->count; i++)
        usock_link_callback_input(link, list->frames[i], list->lengths[i]);
    frame_list_clear(list);
}

/* Polls both stacks and, while relaying, carries frames across until
 * neither has anything more to say now. */
static void setup_exchange(struct setup *setup)
{
    struct frames_world *world = setup->world;
    for (int round = 0; round < EXCHANGE_ROUNDS_MAX; round++) {
        poll_settled(world->stack, world->clock.now);
        poll_settled(setup->peer, world->clock.now);
        if (setup->mode == RELAY_HOLD)
            return;
        if (setup->to_target.count == 0 && setup->to_peer.count == 0)
            return;
        hand_over(&setup->to_target, world->link);
        hand_over(&setup->to_peer, setup->peer_link);
    }
}

static void setup_advance(struct setup *setup, uint64_t ns)
{
    setup->world->clock.now += ns;
    setup_exchange(setup);
}

/* Hands the held frames of the peer at positions where keep(i) is true to
 * the target; all of them stay templates. */
static void setup_deliver_held(struct setup *setup, bool (*keep)(size_t index))
{
    struct frames_world *world = setup->world;
    struct frame_list *held = &setup->to_target;
    for (size_t i = 0; i < held->count; i++) {
        frame_list_push(&world->templates, held->frames[i], held->lengths[i]);
        if (keep(i))
            usock_link_callback_input(world->link, held->frames[i], held->lengths[i]);
    }
    frame_list_clear(held);
    poll_settled(world->stack, world->clock.now);
}

static bool even_position(size_t index)
{
    return index % 2 == 0;
}

static bool odd_position(size_t index)
{
    return index % 2 == 1;
}

static int world_add_socket(struct frames_world *world, int fd)
{
    if (fd < 0 || world->socket_count == FRAMES_SOCKETS_MAX)
        return -1;
    world->sockets[world->socket_count++] = fd;
    return fd;
}

static int peer_add_socket(struct setup *setup, int fd)
{
    if (fd < 0 || setup->peer_socket_count == (int)(sizeof(setup->peer_sockets) / sizeof(int)))
        return -1;
    setup->peer_sockets[setup->peer_socket_count++] = fd;
    return fd;
}

static int set_integer_option(struct usock_stack *stack, int fd, int level, int name, int value)
{
    return usock_setsockopt(stack, fd, level, name, &value, sizeof(value));
}

static int bind_to(struct usock_stack *stack, int fd, const char *address, uint16_t port)
{
    struct sockaddr_in endpoint = endpoint_of(address, port);
    return usock_bind(stack, fd, (struct sockaddr *)&endpoint, sizeof(endpoint));
}

static int connect_to(struct usock_stack *stack, int fd, const char *address, uint16_t port)
{
    struct sockaddr_in endpoint = endpoint_of(address, port);
    return usock_connect(stack, fd, (struct sockaddr *)&endpoint, sizeof(endpoint));
}

static ssize_t send_to(struct usock_stack *stack, int fd, const void *data, size_t length,
                       const char *address, uint16_t port)
{
    struct sockaddr_in endpoint = endpoint_of(address, port);
    return usock_sendto(stack, fd, data, length, 0, (struct sockaddr *)&endpoint,
                        sizeof(endpoint));
}

/* Sends length bytes of a counting pattern, as much as the socket takes. */
static void send_pattern(struct usock_stack *stack, int fd, size_t length, int flags)
{
    uint8_t data[1024];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 1);
    while (length > 0) {
        size_t piece = length < sizeof(data) ? length : sizeof(data);
        ssize_t sent = usock_send(stack, fd, data, piece, flags | MSG_DONTWAIT);
        if (sent <= 0)
            return;
        length -= (size_t)sent;
    }
}

static void drain_socket(struct usock_stack *stack, int fd)
{
    uint8_t buffer[4096];
    while (usock_recv(stack, fd, buffer, sizeof(buffer), MSG_DONTWAIT) > 0)
        ;
}

static int tcp_listener(struct usock_stack *stack, const char *address, uint16_t port,
                        int backlog)
{
    int fd = usock_socket(stack, AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind_to(stack, fd, address, port) != 0 || usock_listen(stack, fd, backlog) != 0)
        return -1;
    return fd;
}

static int tcp_connected_pair(struct setup *setup, int *target_fd, int *peer_fd,
                              uint8_t variants)
{
    struct frames_world *world = setup->world;
    struct usock_stack *stack = world->stack;
    int client_fd;
    if (variants & VARIANT_TARGET_CONNECTS) {
        int peer_listener =
            peer_add_socket(setup, tcp_listener(setup->peer, FUZZ_PEER_ADDRESS, 8080, 8));
        client_fd = world_add_socket(world, usock_socket(stack, AF_INET, SOCK_STREAM, 0));
        if (peer_listener < 0 || client_fd < 0)
            return -1;
        if (variants & VARIANT_RENO)
            usock_setsockopt(stack, client_fd, IPPROTO_TCP, TCP_CONGESTION, "reno", 4);
        if (variants & VARIANT_SMALL_RECEIVE_BUFFER)
            set_integer_option(stack, client_fd, SOL_SOCKET, SO_RCVBUF, 4096);
        if (connect_to(stack, client_fd, FUZZ_PEER_ADDRESS, 8080) != -1 || errno != EINPROGRESS)
            return -1;
        setup_advance(setup, FUZZ_NS_PER_MS);
        *target_fd = client_fd;
        *peer_fd = peer_add_socket(setup, usock_accept(setup->peer, peer_listener, NULL, NULL));
    } else {
        if (variants & VARIANT_RENO)
            usock_setsockopt(stack, world->listener, IPPROTO_TCP, TCP_CONGESTION, "reno", 4);
        if (variants & VARIANT_SMALL_RECEIVE_BUFFER)
            set_integer_option(stack, world->listener, SOL_SOCKET, SO_RCVBUF, 4096);
        client_fd = peer_add_socket(setup, usock_socket(setup->peer, AF_INET, SOCK_STREAM, 0));
        if (client_fd < 0)
            return -1;
        if (connect_to(setup->peer, client_fd, FUZZ_TARGET_ADDRESS, FUZZ_TCP_PORT) != -1 ||
            errno != EINPROGRESS)
            return -1;
        setup_advance(setup, FUZZ_NS_PER_MS);
        *peer_fd = client_fd;
        *target_fd = world_add_socket(world, usock_accept(stack, world->listener, NULL, NULL));
    }
    return *target_fd >= 0 && *peer_fd >= 0 ? 0 : -1;
}

/* A listener with one accepted child, one connection waiting in the accept
 * queue and one half-open (its SYN-ACK never reached the peer); the SYN of
 * a fourth connection and data for the child are templates. */
static int setup_listener(struct setup *setup, uint8_t variants)
{
    int child, peer_child;
    if (tcp_connected_pair(setup, &child, &peer_child, variants & ~VARIANT_TARGET_CONNECTS) != 0)
        return -1;
    int queued = peer_add_socket(setup, usock_socket(setup->peer, AF_INET, SOCK_STREAM, 0));
    connect_to(setup->peer, queued, FUZZ_TARGET_ADDRESS, FUZZ_TCP_PORT);
    setup_advance(setup, FUZZ_NS_PER_MS);

    setup->mode = RELAY_HOLD;
    int half_open = peer_add_socket(setup, usock_socket(setup->peer, AF_INET, SOCK_STREAM, 0));
    connect_to(setup->peer, half_open, FUZZ_TARGET_ADDRESS, FUZZ_TCP_PORT);
    setup_exchange(setup);
    setup_deliver_held(setup, even_position);
    int unseen = peer_add_socket(setup, usock_socket(setup->peer, AF_INET, SOCK_STREAM, 0));
    connect_to(setup->peer, unseen, FUZZ_TARGET_ADDRESS, FUZZ_TCP_PORT);
    send_pattern(setup->peer, peer_child, 300, 0);
    setup_exchange(setup);
    return 0;
}

/* A connection that has carried data both ways; then the target sends
 * more that is never acknowledged, and of the peer's next segments only
 * every other one arrives (an out-of-order queue, SACK blocks). */
static int setup_established(struct setup *setup, uint8_t variants)
{
    struct frames_world *world = setup->world;
    int connection, peer_connection;
    if (tcp_connected_pair(setup, &connection, &peer_connection, variants) != 0)
        return -1;
    send_pattern(world->stack, connection, 2000, 0);
    send_pattern(setup->peer, peer_connection, 2000, 0);
    setup_advance(setup, FUZZ_NS_PER_MS);
    drain_socket(world->stack, connection);
    drain_socket(setup->peer, peer_connection);
    setup_advance(setup, 50 * FUZZ_NS_PER_MS);

    setup->mode = RELAY_HOLD;
    send_pattern(setup->peer, peer_connection, 6000, 0);
    send_pattern(setup->peer, peer_connection, 1, MSG_OOB);
    setup_exchange(setup);
    setup_deliver_held(setup, odd_position);
    send_pattern(world->stack, connection, 8000, 0);
    if (variants & VARIANT_HALF_CLOSED)
        usock_shutdown(world->stack, connection, SHUT_WR);
    setup_exchange(setup);
    return 0;
}

/* Datagrams cut into fragments by the peer (UDP to two sockets, a large
 * echo request), of which some fragments arrived: reassembly is pending
 * for each. */
static int setup_fragments(struct setup *setup, uint8_t variants)
{
    struct frames_world *world = setup->world;
    struct usock_stack *stack = world->stack;
    (void)variants;
    int bound = world_add_socket(world, usock_socket(stack, AF_INET, SOCK_DGRAM, 0));
    int wildcard = world_add_socket(world, usock_socket(stack, AF_INET, SOCK_DGRAM, 0));
    if (bound < 0 || wildcard < 0 || bind_to(stack, bound, FUZZ_TARGET_ADDRESS, FUZZ_UDP_PORT) ||
        bind_to(stack, wildcard, "0.0.0.0", FUZZ_UDP_WILDCARD_PORT))
        return -1;
    int sender = peer_add_socket(setup, usock_socket(setup->peer, AF_INET, SOCK_DGRAM, 0));
    int pinger = peer_add_socket(setup,
                                 usock_socket(setup->peer, AF_INET, SOCK_DGRAM, IPPROTO_ICMP));
    if (sender < 0 || pinger < 0)
        return -1;
    send_to(setup->peer, sender, "hello", 5, FUZZ_TARGET_ADDRESS, FUZZ_UDP_PORT);
    setup_advance(setup, FUZZ_NS_PER_MS);
    drain_socket(stack, bound);

    setup->mode = RELAY_HOLD;
    static uint8_t payload[4000];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 13);
    send_to(setup->peer, sender, payload, 3000, FUZZ_TARGET_ADDRESS, FUZZ_UDP_PORT);
    send_to(setup->peer, sender, payload, 2000, FUZZ_TARGET_ADDRESS, FUZZ_UDP_WILDCARD_PORT);
    uint8_t echo[2500];
    memcpy(echo + ICMP_HEADER_LENGTH, payload, sizeof(echo) - ICMP_HEADER_LENGTH);
    struct icmp_header request = {.type = ICMP_TYPE_ECHO_REQUEST, .rest = 0x12340001};
    icmp_emit(&request, echo, sizeof(echo) - ICMP_HEADER_LENGTH);
    send_to(setup->peer, pinger, echo, sizeof(echo), FUZZ_TARGET_ADDRESS, 0);
    setup_exchange(setup);
    setup_deliver_held(setup, even_position);
    return 0;
}

/* An IGMP query from the peer, as a template (usock sends none itself). */
static void push_igmp_query(struct frames_world *world, uint32_t group, bool version_3)
{
    uint8_t frame[ETHERNET_HEADER_LENGTH + IPV4_HEADER_LENGTH + 4 + 16];
    struct ethernet_header ethernet = {.ethertype = ETHERTYPE_IPV4};
    static const uint8_t all_hosts_mac[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
    memcpy(ethernet.destination, all_hosts_mac, 6);
    memcpy(ethernet.source, fuzz_peer_mac, 6);
    ethernet_emit(&ethernet, frame);
    uint8_t *igmp = frame + ETHERNET_HEADER_LENGTH + IPV4_HEADER_LENGTH + 4;
    size_t igmp_length = version_3 ? 16 : IGMP_V2_LENGTH;
    memset(igmp, 0, 16);
    igmp[0] = IGMP_TYPE_QUERY;
    igmp[1] = 100;
    memcpy(igmp + 4, &group, 4);
    if (version_3) {
        igmp[8] = 2; /* QRV */
        igmp[9] = 125;
        igmp[11] = 1; /* one source */
        uint32_t source = address_of(FUZZ_PEER_ADDRESS);
        memcpy(igmp + 12, &source, 4);
    }
    uint16_t sum = checksum_finish(checksum_add(0, igmp, igmp_length));
    igmp[2] = (uint8_t)(sum >> 8);
    igmp[3] = (uint8_t)sum;
    struct ipv4_header ip = {
        .total_length = (uint16_t)(IPV4_HEADER_LENGTH + 4 + igmp_length),
        .identification = 1,
        .time_to_live = 1,
        .protocol = IPPROTO_IGMP,
        .source = address_of(FUZZ_PEER_ADDRESS),
        .destination = address_of("224.0.0.1"),
    };
    static const uint8_t router_alert[4] = {0x94, 0x04, 0x00, 0x00};
    ipv4_emit_with_options(&ip, router_alert, sizeof(router_alert),
                           frame + ETHERNET_HEADER_LENGTH);
    frame_list_push(&world->templates, frame, ETHERNET_HEADER_LENGTH + ip.total_length);
}

static int join_group(struct usock_stack *stack, int fd, int name, const char *group,
                      const char *source)
{
    if (name == IP_ADD_MEMBERSHIP || name == IP_DROP_MEMBERSHIP || !source) {
        struct ip_mreqn request = {.imr_multiaddr.s_addr = address_of(group)};
        return usock_setsockopt(stack, fd, IPPROTO_IP, name, &request, sizeof(request));
    }
    struct ip_mreq_source request = {.imr_multiaddr.s_addr = address_of(group),
                                     .imr_sourceaddr.s_addr = address_of(source)};
    return usock_setsockopt(stack, fd, IPPROTO_IP, name, &request, sizeof(request));
}

/* UDP sockets (bound to the address, to the wildcard with broadcast,
 * connected, in multicast groups), raw sockets (ICMP with a filter, UDP,
 * an unassigned protocol with IP_HDRINCL) and a ping socket with a request
 * out; the peer's datagrams to each, its echo reply, an ICMP error and
 * IGMP queries are templates. */
static int setup_datagrams(struct setup *setup, uint8_t variants)
{
    struct frames_world *world = setup->world;
    struct usock_stack *stack = world->stack;
    (void)variants;
    int bound = world_add_socket(world, usock_socket(stack, AF_INET, SOCK_DGRAM, 0));
    int wildcard = world_add_socket(world, usock_socket(stack, AF_INET, SOCK_DGRAM, 0));
    int connected = world_add_socket(world, usock_socket(stack, AF_INET, SOCK_DGRAM, 0));
    int multicast = world_add_socket(world, usock_socket(stack, AF_INET, SOCK_DGRAM, 0));
    int raw_icmp = world_add_socket(world, usock_socket(stack, AF_INET, SOCK_RAW, IPPROTO_ICMP));
    int raw_udp = world_add_socket(world, usock_socket(stack, AF_INET, SOCK_RAW, IPPROTO_UDP));
    int raw_other =
        world_add_socket(world, usock_socket(stack, AF_INET, SOCK_RAW, FUZZ_RAW_PROTOCOL));
    int ping = world_add_socket(world, usock_socket(stack, AF_INET, SOCK_DGRAM, IPPROTO_ICMP));
    if (bound < 0 || wildcard < 0 || connected < 0 || multicast < 0 || raw_icmp < 0 ||
        raw_udp < 0 || raw_other < 0 || ping < 0)
        return -1;
    set_integer_option(stack, bound, IPPROTO_IP, IP_PKTINFO, 1);
    set_integer_option(stack, bound, IPPROTO_IP, IP_RECVERR, 1);
    set_integer_option(stack, bound, IPPROTO_IP, IP_RECVTTL, 1);
    set_integer_option(stack, bound, IPPROTO_IP, IP_RECVTOS, 1);
    set_integer_option(stack, connected, IPPROTO_IP, IP_RECVERR, 1);
    set_integer_option(stack, raw_icmp, IPPROTO_IP, IP_RECVERR, 1);
    set_integer_option(stack, ping, IPPROTO_IP, IP_RECVERR, 1);
    set_integer_option(stack, wildcard, SOL_SOCKET, SO_BROADCAST, 1);
    set_integer_option(stack, raw_other, IPPROTO_IP, IP_HDRINCL, 1);
    uint32_t filter = 1u << ICMP_TYPE_TIME_EXCEEDED;
    usock_setsockopt(stack, raw_icmp, SOL_RAW, ICMP_FILTER, &filter, sizeof(filter));
    if (bind_to(stack, bound, FUZZ_TARGET_ADDRESS, FUZZ_UDP_PORT) ||
        bind_to(stack, wildcard, "0.0.0.0", FUZZ_UDP_WILDCARD_PORT) ||
        bind_to(stack, connected, "0.0.0.0", FUZZ_UDP_CONNECTED_PORT) ||
        connect_to(stack, connected, FUZZ_PEER_ADDRESS, FUZZ_PEER_UDP_PORT) ||
        bind_to(stack, multicast, "0.0.0.0", FUZZ_UDP_MULTICAST_PORT))
        return -1;
    join_group(stack, multicast, IP_ADD_MEMBERSHIP, FUZZ_GROUP_ANY_SOURCE, NULL);
    join_group(stack, multicast, IP_ADD_SOURCE_MEMBERSHIP, FUZZ_GROUP_ONE_SOURCE,
               FUZZ_PEER_ADDRESS);
    join_group(stack, multicast, IP_ADD_MEMBERSHIP, FUZZ_GROUP_BLOCKED_SOURCE, NULL);
    join_group(stack, multicast, IP_BLOCK_SOURCE, FUZZ_GROUP_BLOCKED_SOURCE, FUZZ_PEER_ADDRESS);

    int sender = peer_add_socket(setup, usock_socket(setup->peer, AF_INET, SOCK_DGRAM, 0));
    int peer_raw =
        peer_add_socket(setup, usock_socket(setup->peer, AF_INET, SOCK_RAW, FUZZ_RAW_PROTOCOL));
    if (sender < 0 || peer_raw < 0 ||
        bind_to(setup->peer, sender, "0.0.0.0", FUZZ_PEER_UDP_PORT))
        return -1;
    set_integer_option(setup->peer, sender, SOL_SOCKET, SO_BROADCAST, 1);
    send_to(setup->peer, sender, "hello", 5, FUZZ_TARGET_ADDRESS, FUZZ_UDP_PORT);
    setup_advance(setup, FUZZ_NS_PER_MS);
    drain_socket(stack, bound);
    setup_advance(setup, 2 * FUZZ_NS_PER_SECOND); /* the IGMP reports' repeats */

    setup->mode = RELAY_HOLD;
    /* The target's echo request is answered by the peer; its datagram to a
     * closed port draws port unreachable. */
    uint8_t echo[ICMP_HEADER_LENGTH + 32] = {0};
    struct icmp_header request = {.type = ICMP_TYPE_ECHO_REQUEST, .rest = 0x00000001};
    icmp_emit(&request, echo, sizeof(echo) - ICMP_HEADER_LENGTH);
    send_to(stack, ping, echo, sizeof(echo), FUZZ_PEER_ADDRESS, 0);
    send_to(stack, bound, "closed", 6, FUZZ_PEER_ADDRESS, 9);
    usock_send(stack, connected, "closed", 6, 0);
    setup_exchange(setup);
    hand_over(&setup->to_peer, setup->peer_link);
    setup_exchange(setup);

    send_to(setup->peer, sender, "to bound", 8, FUZZ_TARGET_ADDRESS, FUZZ_UDP_PORT);
    send_to(setup->peer, sender, "to wildcard", 11, FUZZ_BROADCAST_ADDRESS, FUZZ_UDP_WILDCARD_PORT);
    send_to(setup->peer, sender, "to connected", 12, FUZZ_TARGET_ADDRESS,
            FUZZ_UDP_CONNECTED_PORT);
    send_to(setup->peer, sender, "to group", 8, FUZZ_GROUP_ANY_SOURCE, FUZZ_UDP_MULTICAST_PORT);
    send_to(setup->peer, sender, "to source group", 15, FUZZ_GROUP_ONE_SOURCE,
            FUZZ_UDP_MULTICAST_PORT);
    send_to(setup->peer, peer_raw, "raw", 3, FUZZ_TARGET_ADDRESS, 0);
    setup_exchange(setup);
    push_igmp_query(world, 0, true);
    push_igmp_query(world, address_of(FUZZ_GROUP_ONE_SOURCE), true);
    push_igmp_query(world, 0, false);
    return 0;
}

static int (*const scenario_setups[])(struct setup *setup, uint8_t variants) = {
    [SCENARIO_LISTENER] = setup_listener,
    [SCENARIO_ESTABLISHED] = setup_established,
    [SCENARIO_FRAGMENTS] = setup_fragments,
    [SCENARIO_DATAGRAMS] = setup_datagrams,
};
_Static_assert(sizeof(scenario_setups) / sizeof(scenario_setups[0]) == SCENARIO_COUNT,
               "a setup per scenario");

int frames_world_setup(struct frames_world *world, uint8_t scenario_byte)
{
    memset(world, 0, sizeof(*world));
    world->clock.now = 1000 * FUZZ_NS_PER_SECOND;
    world->listener = -1;
    struct setup setup = {.world = world, .mode = RELAY_BOTH_WAYS};
    world->capture = &setup.to_peer;

    struct usock_stack_config config;
    if (usock_link_callback_new(target_link_send, world, 0, &world->link) != 0)
        return -1;
    fuzz_stack_config(&config, world->link, FUZZ_TARGET_ADDRESS, fuzz_target_mac, 2,
                      &world->clock);
    world->stack = usock_stack_new(&config);
    if (usock_link_callback_new(peer_link_send, &setup.to_target, 0, &setup.peer_link) != 0)
        return -1;
    fuzz_stack_config(&config, setup.peer_link, FUZZ_PEER_ADDRESS, fuzz_peer_mac, 1,
                      &world->clock);
    setup.peer = usock_stack_new(&config);
    if (!world->stack || !setup.peer)
        return -1;
    fuzz_stack_skip_checksums(world->stack);
    world->listener =
        world_add_socket(world, tcp_listener(world->stack, FUZZ_TARGET_ADDRESS, FUZZ_TCP_PORT, 4));
    setup_exchange(&setup); /* gratuitous ARP */

    uint8_t variants = scenario_byte & ~3u;
    int result = scenario_setups[(scenario_byte & 3u) % SCENARIO_COUNT](&setup, variants);
    for (size_t i = 0; i < setup.to_target.count; i++)
        frame_list_push(&world->templates, setup.to_target.frames[i], setup.to_target.lengths[i]);
    for (size_t i = 0; i < setup.to_peer.count; i++)
        frame_list_push(&world->templates, setup.to_peer.frames[i], setup.to_peer.lengths[i]);
    frame_list_clear(&setup.to_target);
    frame_list_clear(&setup.to_peer);
    world->capture = NULL;
    usock_stack_free(setup.peer);
    return result;
}

/* ---- running the input ------------------------------------------------ */

static void world_input_frame(struct frames_world *world, const uint8_t *frame, size_t length)
{
    if (length == 0)
        return;
    usock_link_callback_input(world->link, frame, length);
    poll_settled(world->stack, world->clock.now);
}

/* Moves the clock to the stack's next deadline (at most DEADLINE_JUMP_MAX
 * ahead) and runs what is due.  Returns false when nothing is due. */
static bool world_next_timer(struct frames_world *world)
{
    uint64_t deadline = usock_stack_poll(world->stack, world->clock.now);
    if (deadline == USOCK_NEVER)
        return false;
    if (deadline > world->clock.now + DEADLINE_JUMP_MAX)
        deadline = world->clock.now + DEADLINE_JUMP_MAX;
    if (deadline > world->clock.now)
        world->clock.now = deadline;
    poll_settled(world->stack, world->clock.now);
    return true;
}

static void input_template(struct frames_world *world, struct fuzz_input *input)
{
    uint8_t index = fuzz_input_byte(input);
    uint8_t changes = fuzz_input_byte(input) % 8;
    uint8_t frame[2048];
    size_t length = 0;
    if (world->templates.count > 0) {
        size_t which = index % world->templates.count;
        length = world->templates.lengths[which];
        if (length > sizeof(frame))
            length = sizeof(frame);
        memcpy(frame, world->templates.frames[which], length);
    }
    for (uint8_t i = 0; i < changes; i++) {
        uint16_t offset = fuzz_input_u16(input);
        uint8_t flip = fuzz_input_byte(input);
        if (length > 0)
            frame[offset % length] ^= flip;
    }
    world_input_frame(world, frame, length);
}

static void input_flood(struct frames_world *world, struct fuzz_input *input)
{
    uint8_t index = fuzz_input_byte(input);
    uint8_t count = fuzz_input_byte(input);
    uint16_t offset = fuzz_input_u16(input);
    if (world->templates.count == 0)
        return;
    size_t which = index % world->templates.count;
    size_t length = world->templates.lengths[which];
    uint8_t *frame = malloc(length);
    if (!frame)
        abort();
    memcpy(frame, world->templates.frames[which], length);
    for (unsigned i = 0; i < count; i++) {
        frame[offset % length]++;
        usock_link_callback_input(world->link, frame, length);
        if (i % 64 == 63)
            poll_settled(world->stack, world->clock.now);
    }
    poll_settled(world->stack, world->clock.now);
    free(frame);
}

/* ---- the program's side: socket calls ----------------------------------- */

static int socket_type(struct usock_stack *stack, int fd)
{
    int type = -1;
    socklen_t length = sizeof(type);
    if (usock_getsockopt(stack, fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0)
        return -1;
    return type;
}

/* Reads everything waiting on every socket (and its error queue), accepts
 * waiting connections, and asks poll about all of them. */
static void application_drain(struct frames_world *world)
{
    struct usock_stack *stack = world->stack;
    struct pollfd polled[FRAMES_SOCKETS_MAX];
    nfds_t polled_count = 0;
    for (int i = 0; i < world->socket_count; i++) {
        int fd = world->sockets[i];
        if (fd < 0)
            continue;
        polled[polled_count++] = (struct pollfd){.fd = fd, .events = POLLIN | POLLOUT | POLLPRI};
        if (fd == world->listener) {
            int child;
            while ((child = usock_accept(stack, fd, NULL, NULL)) >= 0)
                if (world_add_socket(world, child) < 0)
                    usock_close(stack, child);
            continue;
        }
        for (int flags = MSG_DONTWAIT; ; flags = MSG_DONTWAIT | MSG_ERRQUEUE) {
            for (int reads = 0; reads < 64; reads++) {
                uint8_t data[2048];
                uint8_t control[512];
                struct sockaddr_in from;
                struct iovec vector = {.iov_base = data, .iov_len = sizeof(data)};
                struct msghdr message = {.msg_name = &from, .msg_namelen = sizeof(from),
                                         .msg_iov = &vector, .msg_iovlen = 1,
                                         .msg_control = control,
                                         .msg_controllen = sizeof(control)};
                if (usock_recvmsg(stack, fd, &message, flags) <= 0)
                    break;
            }
            if (flags & MSG_ERRQUEUE)
                break;
        }
        int pending_error;
        socklen_t length = sizeof(pending_error);
        usock_getsockopt(stack, fd, SOL_SOCKET, SO_ERROR, &pending_error, &length);
    }
    usock_poll(stack, polled, polled_count, 0);
}

static void application_send(struct frames_world *world, int fd, uint8_t argument)
{
    struct usock_stack *stack = world->stack;
    int type = socket_type(stack, fd);
    if (type == SOCK_STREAM) {
        send_pattern(stack, fd, (size_t)argument * 61 + 1, argument & 1 ? MSG_OOB : 0);
        return;
    }
    if (type != SOCK_DGRAM)
        return; /* raw sockets send what they are given, checksums included */
    static const char *const destinations[] = {FUZZ_PEER_ADDRESS, FUZZ_BROADCAST_ADDRESS,
                                               FUZZ_GROUP_ANY_SOURCE, "127.0.0.1",
                                               FUZZ_TARGET_ADDRESS};
    size_t length = (size_t)(argument >> 3) * 97; /* up to 3007: fragmented */
    uint8_t datagram[ICMP_HEADER_LENGTH + 31 * 97];
    memset(datagram, argument, sizeof(datagram));
    struct icmp_header request = {.type = ICMP_TYPE_ECHO_REQUEST, .rest = argument};
    icmp_emit(&request, datagram, length);
    send_to(stack, fd, datagram, length + ICMP_HEADER_LENGTH, destinations[argument % 5],
            FUZZ_PEER_UDP_PORT);
}

static void application_set_option(struct frames_world *world, int fd, uint8_t argument)
{
    struct usock_stack *stack = world->stack;
    switch (argument % 8) {
    case 0:
        set_integer_option(stack, fd, SOL_SOCKET, SO_RCVBUF, (argument >> 3) * 512);
        break;
    case 1:
        set_integer_option(stack, fd, IPPROTO_TCP, TCP_NODELAY, argument >> 3 & 1);
        break;
    case 2:
        set_integer_option(stack, fd, SOL_SOCKET, SO_KEEPALIVE, 1);
        set_integer_option(stack, fd, IPPROTO_TCP, TCP_KEEPIDLE, 1 + (argument >> 3));
        break;
    case 3:
        set_integer_option(stack, fd, IPPROTO_TCP, TCP_USER_TIMEOUT, (argument >> 3) * 1000);
        break;
    case 4:
        join_group(stack, fd, IP_DROP_MEMBERSHIP, FUZZ_GROUP_ANY_SOURCE, NULL);
        break;
    case 5:
        join_group(stack, fd, IP_UNBLOCK_SOURCE, FUZZ_GROUP_BLOCKED_SOURCE, FUZZ_PEER_ADDRESS);
        break;
    case 6:
        set_integer_option(stack, fd, SOL_SOCKET, SO_OOBINLINE, argument >> 3 & 1);
        break;
    default: {
        struct linger linger = {.l_onoff = 1, .l_linger = 0};
        usock_setsockopt(stack, fd, SOL_SOCKET, SO_LINGER, &linger, sizeof(linger));
        break;
    }
    }
}

static void application_inspect(struct frames_world *world, int fd)
{
    struct usock_stack *stack = world->stack;
    struct tcp_info info;
    socklen_t length = sizeof(info);
    usock_getsockopt(stack, fd, IPPROTO_TCP, TCP_INFO, &info, &length);
    struct usock_socket_info rows[FRAMES_SOCKETS_MAX];
    usock_stack_sockets(stack, rows, FRAMES_SOCKETS_MAX);
    int available;
    usock_ioctl(stack, fd, FIONREAD, &available);
}

/* One socket call of the program, chosen by action, on the socket argument
 * picks. */
static void input_application(struct frames_world *world, struct fuzz_input *input)
{
    uint8_t action = fuzz_input_byte(input);
    uint8_t argument = fuzz_input_byte(input);
    struct usock_stack *stack = world->stack;
    int index = world->socket_count ? argument % world->socket_count : 0;
    int fd = world->socket_count ? world->sockets[index] : -1;
    switch (action % 8) {
    case 0:
        application_drain(world);
        break;
    case 1:
        if (fd >= 0)
            application_send(world, fd, argument);
        break;
    case 2:
        if (fd >= 0)
            usock_shutdown(stack, fd, (argument >> 4) % 3);
        break;
    case 3:
        if (fd >= 0) {
            usock_close(stack, fd);
            world->sockets[index] = -1;
            if (fd == world->listener)
                world->listener = -1;
        }
        break;
    case 4:
        if (fd >= 0) {
            uint8_t byte[64];
            usock_recv(stack, fd, byte, argument % 64 + 1,
                       MSG_DONTWAIT | (argument & 0x40 ? MSG_OOB : MSG_PEEK));
        }
        break;
    case 5:
        if (fd >= 0)
            application_set_option(world, fd, argument);
        break;
    case 6: {
        /* An active open of the target's own: SYN_SENT for the input to answer. */
        int connection = world_add_socket(world, usock_socket(stack, AF_INET, SOCK_STREAM, 0));
        if (connection >= 0)
            connect_to(stack, connection, FUZZ_PEER_ADDRESS, 8080 + argument % 4);
        break;
    }
    default:
        if (fd >= 0)
            application_inspect(world, fd);
        break;
    }
    poll_settled(stack, world->clock.now);
}

void frames_world_run(struct frames_world *world, struct fuzz_input *input)
{
    while (!fuzz_input_empty(input)) {
        uint8_t opcode = fuzz_input_byte(input) % FRAMES_OPCODE_COUNT;
        switch (opcode) {
        case OPCODE_FRAME:
        case OPCODE_FRAME_AGAIN: {
            const uint8_t *frame;
            size_t length = fuzz_input_take(input, fuzz_input_u16(input), &frame);
            world_input_frame(world, frame, length);
            break;
        }
        case OPCODE_TEMPLATE:
            input_template(world, input);
            break;
        case OPCODE_ADVANCE:
            world->clock.now += fuzz_input_u16(input) * FUZZ_NS_PER_MS;
            poll_settled(world->stack, world->clock.now);
            break;
        case OPCODE_APPLICATION:
            input_application(world, input);
            break;
        case OPCODE_NEXT_TIMER:
            world_next_timer(world);
            break;
        default:
            input_flood(world, input);
            break;
        }
    }
}

void frames_world_finish(struct frames_world *world)
{
    if (world->stack) {
        application_drain(world);
        for (int step = 0; step < FINISH_TIMER_STEPS; step++)
            if (!world_next_timer(world))
                break;
        for (int i = 0; i < world->socket_count; i++)
            if (world->sockets[i] >= 0)
                usock_close(world->stack, world->sockets[i]);
        for (int step = 0; step < FINISH_TIMER_STEPS; step++)
            if (!world_next_timer(world))
                break;
        usock_stack_free(world->stack);
    } else if (world->link) {
        usock_link_close(world->link);
    }
    frame_list_clear(&world->templates);
    world->stack = NULL;
}
