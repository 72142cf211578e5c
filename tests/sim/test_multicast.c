/*
 * test_multicast.c - multicast between two stacks on the in-memory wire:
 * joining sends IGMP reports, the receive filter passes only joined groups,
 * every socket on the port with SO_REUSEADDR gets its own copy, the sender
 * hears itself when it is a member (IP_MULTICAST_LOOP), queries draw
 * reports, leaving sends a leave, and the option errors are Linux's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "usock.h"
#include "wire/igmp.h"
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

static void world_run(struct world *world, int rounds, uint64_t step_ns)
{
    for (int i = 0; i < rounds; i++) {
        usock_stack_poll(world->a, world->now);
        usock_stack_poll(world->b, world->now);
        world->now += step_ns;
    }
}

static struct sockaddr_in address_of(const char *text, uint16_t port)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, text, &address.sin_addr);
    return address;
}

static int bound_socket(struct usock_stack *stack, uint16_t port, bool reuse)
{
    int fd = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    int on = 1;
    if (reuse)
        CHECK_EQ(usock_setsockopt(stack, fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)), 0);
    struct sockaddr_in local = address_of("0.0.0.0", port);
    CHECK_EQ(usock_bind(stack, fd, (struct sockaddr *)&local, sizeof(local)), 0);
    return fd;
}

static int join(struct usock_stack *stack, int fd, const char *group)
{
    struct ip_mreq request;
    memset(&request, 0, sizeof(request));
    inet_pton(AF_INET, group, &request.imr_multiaddr);
    return usock_setsockopt(stack, fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &request, sizeof(request));
}

static void test_joined_group_receives_and_unjoined_is_filtered(void)
{
    struct world world;
    world_init(&world);
    int first = bound_socket(world.b, 5000, true);
    int second = bound_socket(world.b, 5000, true);
    CHECK_EQ(join(world.b, first, "239.1.2.3"), 0);
    CHECK_EQ(usock_stack_counter(world.b, "IgmpOutReports"), 1);
    int sender = usock_socket(world.a, AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in group = address_of("239.1.2.3", 5000);
    CHECK_EQ(usock_sendto(world.a, sender, "mc", 2, 0, (struct sockaddr *)&group, sizeof(group)), 2);
    struct sockaddr_in other = address_of("239.9.9.9", 5000);
    CHECK_EQ(usock_sendto(world.a, sender, "no", 2, 0, (struct sockaddr *)&other, sizeof(other)), 2);
    world_run(&world, 3, 1000000);
    char buffer[8];
    /* Both sockets on the port get a copy (the host joined the group). */
    CHECK_EQ(usock_recv(world.b, first, buffer, sizeof(buffer), MSG_DONTWAIT), 2);
    CHECK(memcmp(buffer, "mc", 2) == 0);
    CHECK_EQ(usock_recv(world.b, second, buffer, sizeof(buffer), MSG_DONTWAIT), 2);
    CHECK_ERRNO(usock_recv(world.b, first, buffer, sizeof(buffer), MSG_DONTWAIT), EAGAIN);
    CHECK(usock_stack_counter(world.b, "IpInMulticastFiltered") >= 1);
    /* The unsolicited report is sent again a second later. */
    world_run(&world, 15, 100000000);
    CHECK_EQ(usock_stack_counter(world.b, "IgmpOutReports"), 2);
    usock_stack_free(world.a);
    usock_stack_free(world.b);
}

static void test_sender_member_hears_itself_unless_loop_is_off(void)
{
    struct world world;
    world_init(&world);
    int fd = bound_socket(world.a, 6000, false);
    CHECK_EQ(join(world.a, fd, "239.1.1.1"), 0);
    struct sockaddr_in group = address_of("239.1.1.1", 6000);
    CHECK_EQ(usock_sendto(world.a, fd, "me", 2, 0, (struct sockaddr *)&group, sizeof(group)), 2);
    char buffer[8];
    CHECK_EQ(usock_recv(world.a, fd, buffer, sizeof(buffer), MSG_DONTWAIT), 2);
    int off = 0;
    CHECK_EQ(usock_setsockopt(world.a, fd, IPPROTO_IP, IP_MULTICAST_LOOP, &off, sizeof(off)), 0);
    CHECK_EQ(usock_sendto(world.a, fd, "me", 2, 0, (struct sockaddr *)&group, sizeof(group)), 2);
    CHECK_ERRNO(usock_recv(world.a, fd, buffer, sizeof(buffer), MSG_DONTWAIT), EAGAIN);
    int ttl = 0;
    socklen_t length = sizeof(ttl);
    CHECK_EQ(usock_getsockopt(world.a, fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, &length), 0);
    CHECK_EQ(ttl, 1);
    usock_stack_free(world.a);
    usock_stack_free(world.b);
}

static void test_membership_option_errors_are_linux(void)
{
    struct world world;
    world_init(&world);
    int fd = bound_socket(world.a, 7000, false);
    CHECK_ERRNO(join(world.a, fd, "198.18.0.7"), EINVAL);
    CHECK_EQ(join(world.a, fd, "239.2.2.2"), 0);
    CHECK_ERRNO(join(world.a, fd, "239.2.2.2"), EADDRINUSE);
    struct ip_mreq request;
    memset(&request, 0, sizeof(request));
    inet_pton(AF_INET, "239.3.3.3", &request.imr_multiaddr);
    CHECK_ERRNO(usock_setsockopt(world.a, fd, IPPROTO_IP, IP_DROP_MEMBERSHIP, &request,
                                 sizeof(request)), EADDRNOTAVAIL);
    inet_pton(AF_INET, "239.2.2.2", &request.imr_multiaddr);
    CHECK_EQ(usock_setsockopt(world.a, fd, IPPROTO_IP, IP_DROP_MEMBERSHIP, &request,
                              sizeof(request)), 0);
    CHECK_EQ(usock_stack_counter(world.a, "IgmpOutLeaves"), 1);
    int tcp = usock_socket(world.a, AF_INET, SOCK_STREAM, 0);
    CHECK_ERRNO(join(world.a, tcp, "239.2.2.2"), EPROTO);
    /* Closing a socket leaves its groups. */
    CHECK_EQ(join(world.a, fd, "239.4.4.4"), 0);
    CHECK_EQ(usock_close(world.a, fd), 0);
    CHECK_EQ(usock_stack_counter(world.a, "IgmpOutLeaves"), 2);
    usock_stack_free(world.a);
    usock_stack_free(world.b);
}

static void test_general_query_draws_a_report(void)
{
    struct world world;
    world_init(&world);
    int fd = bound_socket(world.b, 7000, false);
    CHECK_EQ(join(world.b, fd, "239.5.5.5"), 0);
    world_run(&world, 30, 100000000); /* past the unsolicited reports */
    uint64_t before = usock_stack_counter(world.b, "IgmpOutReports");
    /* Stack A plays the querier with a raw IGMP socket: a v3 general query. */
    int raw = usock_socket(world.a, AF_INET, SOCK_RAW, IPPROTO_IGMP);
    CHECK(raw >= 0);
    uint8_t query[12] = {IGMP_TYPE_QUERY, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    uint32_t sum = 0;
    for (int i = 0; i < 12; i += 2)
        sum += (uint32_t)(query[i] << 8 | query[i + 1]);
    sum = (sum & 0xffff) + (sum >> 16);
    query[2] = (uint8_t)(~sum >> 8);
    query[3] = (uint8_t)~sum;
    struct sockaddr_in all_hosts = address_of("224.0.0.1", 0);
    CHECK_EQ(usock_sendto(world.a, raw, query, sizeof(query), 0, (struct sockaddr *)&all_hosts,
                          sizeof(all_hosts)), 12);
    world_run(&world, 20, 100000000); /* max response 1 s */
    CHECK_EQ(usock_stack_counter(world.b, "IgmpInQueries"), 1);
    CHECK_EQ(usock_stack_counter(world.b, "IgmpOutReports"), before + 1);
    usock_stack_free(world.a);
    usock_stack_free(world.b);
}

static const struct check_test tests[] = {
    CHECK_TEST(test_joined_group_receives_and_unjoined_is_filtered),
    CHECK_TEST(test_sender_member_hears_itself_unless_loop_is_off),
    CHECK_TEST(test_membership_option_errors_are_linux),
    CHECK_TEST(test_general_query_draws_a_report),
};

CHECK_MAIN(tests)
