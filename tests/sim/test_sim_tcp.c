/*
 * test_sim_tcp.c - TCP between two stacks on the in-memory wire, in event
 * mode with a simulated clock: handshake, data both ways, orderly close
 * through TIME_WAIT, refused and timed-out connects, reset on close with
 * unread data, a zero window held open by persist probes, and bulk
 * transfers over a lossy, reordering, duplicating path that must arrive
 * intact.  Every test frees both stacks (LeakSanitizer checks the rest).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "usock.h"

struct world {
    uint64_t now;
    struct usock_stack *a, *b;
};

static uint64_t world_clock(void *context)
{
    return ((struct world *)context)->now;
}

/* The configuration of a world's stack on link at address (a /24). */
static void world_stack_config(struct world *world, struct usock_link *link,
                               const char *address, unsigned seed,
                               struct usock_stack_config *config)
{
    usock_stack_config_init(config);
    config->link = link;
    inet_pton(AF_INET, address, &config->address);
    config->prefix_length = 24;
    config->clock = world_clock;
    config->clock_context = world;
    config->seed = seed;
    config->tcp_time_wait_ns = 2000000000ULL;
}

static struct usock_stack *make_stack(struct world *world, struct usock_link *link,
                                      const char *address, unsigned seed)
{
    struct usock_stack_config config;
    world_stack_config(world, link, address, seed, &config);
    struct usock_stack *stack = usock_stack_new(&config);
    CHECK(stack != NULL);
    return stack;
}

/* A world whose stack b is made with the configuration change of adjust. */
static void world_init_adjusted(struct world *world,
                                void (*adjust)(struct usock_stack_config *config))
{
    memset(world, 0, sizeof(*world));
    world->now = 1000000000ULL;
    struct usock_link *a, *b;
    CHECK_EQ(usock_link_mem_pair(&a, &b), 0);
    world->a = make_stack(world, a, "198.18.0.1", 1);
    struct usock_stack_config config;
    world_stack_config(world, b, "198.18.0.2", 2, &config);
    adjust(&config);
    world->b = usock_stack_new(&config);
    CHECK(world->b != NULL);
}

static void refuse_offloads(struct usock_stack_config *config)
{
    config->no_offloads = 1;
}

static void two_sockets_at_most(struct usock_stack_config *config)
{
    config->socket_limit = 2;
}

static void world_init_impaired(struct world *world, const char *impairment)
{
    memset(world, 0, sizeof(*world));
    world->now = 1000000000ULL;
    struct usock_link *a, *b;
    CHECK_EQ(usock_link_mem_pair(&a, &b), 0);
    if (impairment) {
        struct usock_impairment spec;
        CHECK_EQ(usock_impairment_parse(impairment, &spec, NULL, 0), 0);
        CHECK_EQ(usock_link_impair(a, &spec, &a), 0);
    }
    world->a = make_stack(world, a, "198.18.0.1", 1);
    world->b = make_stack(world, b, "198.18.0.2", 2);
}

static void world_init(struct world *world)
{
    world_init_impaired(world, NULL);
}

static void world_step(struct world *world, uint64_t step_ns)
{
    usock_stack_poll(world->a, world->now);
    usock_stack_poll(world->b, world->now);
    usock_stack_poll(world->a, world->now);
    world->now += step_ns;
}

static void world_run(struct world *world, int rounds, uint64_t step_ns)
{
    for (int i = 0; i < rounds; i++)
        world_step(world, step_ns);
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

/* True when the stack's only socket is in state (as ss names it). */
static bool socket_state(struct usock_stack *stack, const char *state)
{
    struct usock_socket_info rows[4];
    size_t count = usock_stack_sockets(stack, rows, 4);
    return count == 1 && strcmp(rows[0].state, state) == 0;
}

static int listener_on(struct usock_stack *stack, uint16_t port)
{
    int fd = usock_socket(stack, AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in local = address_of("0.0.0.0", port);
    CHECK_EQ(usock_bind(stack, fd, (struct sockaddr *)&local, sizeof(local)), 0);
    CHECK_EQ(usock_listen(stack, fd, 16), 0);
    return fd;
}

/* Connects a client on world->a to port on world->b; returns both ends. */
static void connect_pair(struct world *world, uint16_t port, int *client, int *server)
{
    int listener = listener_on(world->b, port);
    *client = usock_socket(world->a, AF_INET, SOCK_STREAM, 0);
    CHECK(*client >= 0);
    struct sockaddr_in to = address_of("198.18.0.2", port);
    CHECK_ERRNO(usock_connect(world->a, *client, (struct sockaddr *)&to, sizeof(to)), EINPROGRESS);
    *server = -1;
    for (int i = 0; i < 20000 && *server < 0; i++) {
        world_step(world, 1000000);
        *server = usock_accept(world->b, listener, NULL, NULL);
    }
    CHECK(*server >= 0);
    world_run(world, 3, 1000000);
    int error = -1;
    socklen_t length = sizeof(error);
    CHECK_EQ(usock_getsockopt(world->a, *client, SOL_SOCKET, SO_ERROR, &error, &length), 0);
    CHECK_EQ(error, 0);
    /* As Linux: the first connect() after completion succeeds, then EISCONN. */
    CHECK_EQ(usock_connect(world->a, *client, (struct sockaddr *)&to, sizeof(to)), 0);
    CHECK_ERRNO(usock_connect(world->a, *client, (struct sockaddr *)&to, sizeof(to)), EISCONN);
    CHECK_EQ(usock_close(world->b, listener), 0);
}

static void test_handshake_data_both_ways_and_orderly_close(void)
{
    struct world world;
    world_init(&world);
    int client, server;
    connect_pair(&world, 80, &client, &server);
    CHECK_EQ(usock_send(world.a, client, "hello", 5, 0), 5);
    world_run(&world, 3, 1000000);
    char buffer[64];
    CHECK_EQ(usock_recv(world.b, server, buffer, sizeof(buffer), 0), 5);
    CHECK(memcmp(buffer, "hello", 5) == 0);
    CHECK_EQ(usock_send(world.b, server, "world!", 6, 0), 6);
    world_run(&world, 3, 1000000);
    struct sockaddr_in peer;
    socklen_t peer_length = sizeof(peer);
    CHECK_EQ(usock_getpeername(world.a, client, (struct sockaddr *)&peer, &peer_length), 0);
    CHECK_EQ(ntohs(peer.sin_port), 80);
    CHECK_EQ(usock_recv(world.a, client, buffer, sizeof(buffer), 0), 6);
    /* Client closes first: FIN_WAIT -> TIME_WAIT; server sees EOF. */
    CHECK_EQ(usock_close(world.a, client), 0);
    world_run(&world, 50, 1000000); /* the FIN's ACK is delayed (40 ms), as Linux's */
    CHECK_EQ(usock_recv(world.b, server, buffer, sizeof(buffer), 0), 0);
    CHECK(socket_state(world.a, "FIN-WAIT-2"));
    CHECK(socket_state(world.b, "CLOSE-WAIT"));
    CHECK_EQ(usock_close(world.b, server), 0);
    world_run(&world, 3, 1000000);
    CHECK(socket_state(world.a, "TIME-WAIT"));
    CHECK_EQ(usock_stack_sockets(world.b, NULL, 0), 0);
    world_run(&world, 30, 100000000); /* 3 s: past the 2 s TIME_WAIT */
    CHECK_EQ(usock_stack_sockets(world.a, NULL, 0), 0);
    CHECK_EQ(usock_stack_counter(world.a, "TcpActiveOpens"), 1);
    CHECK_EQ(usock_stack_counter(world.b, "TcpPassiveOpens"), 1);
    CHECK_EQ(usock_stack_counter(world.a, "TcpRetransSegs"), 0);
    world_free(&world);
}


static void test_connect_to_closed_port_is_refused(void)
{
    struct world world;
    world_init(&world);
    int client = usock_socket(world.a, AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = address_of("198.18.0.2", 81);
    CHECK_ERRNO(usock_connect(world.a, client, (struct sockaddr *)&to, sizeof(to)), EINPROGRESS);
    world_run(&world, 5, 1000000);
    struct pollfd entry = {.fd = client, .events = POLLOUT};
    CHECK_EQ(usock_poll(world.a, &entry, 1, 0), 1);
    CHECK(entry.revents & POLLERR);
    CHECK(entry.revents & POLLHUP);
    int error = 0;
    socklen_t length = sizeof(error);
    CHECK_EQ(usock_getsockopt(world.a, client, SOL_SOCKET, SO_ERROR, &error, &length), 0);
    CHECK_EQ(error, ECONNREFUSED);
    CHECK_EQ(usock_stack_counter(world.b, "TcpInNoSocket"), 1);
    CHECK_EQ(usock_stack_counter(world.b, "TcpOutRsts"), 1);
    CHECK_EQ(usock_stack_counter(world.a, "TcpAttemptFails"), 1);
    world_free(&world);
}

static void test_connect_to_host_that_never_answers_arp_is_unreachable(void)
{
    struct world world;
    world_init_impaired(&world, "loss=100%");
    int client = usock_socket(world.a, AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = address_of("198.18.0.2", 80);
    CHECK_ERRNO(usock_connect(world.a, client, (struct sockaddr *)&to, sizeof(to)), EINPROGRESS);
    /* ARP gives up after three requests a second apart, and the SYN
     * waiting for it fails with EHOSTUNREACH, as on Linux. */
    world_run(&world, 50, 100000000ULL);
    int error = 0;
    socklen_t length = sizeof(error);
    CHECK_EQ(usock_getsockopt(world.a, client, SOL_SOCKET, SO_ERROR, &error, &length), 0);
    CHECK_EQ(error, EHOSTUNREACH);
    world_free(&world);
}

static void test_connect_to_full_listener_times_out_after_syn_retries(void)
{
    struct world world;
    world_init(&world);
    /* Backlog 0 holds one connection; further SYNs are dropped, as Linux
     * drops them when the accept queue is full, so the client retries. */
    int listener = usock_socket(world.b, AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in local = address_of("0.0.0.0", 80);
    CHECK_EQ(usock_bind(world.b, listener, (struct sockaddr *)&local, sizeof(local)), 0);
    CHECK_EQ(usock_listen(world.b, listener, 0), 0);
    struct sockaddr_in to = address_of("198.18.0.2", 80);
    int first = usock_socket(world.a, AF_INET, SOCK_STREAM, 0);
    CHECK_ERRNO(usock_connect(world.a, first, (struct sockaddr *)&to, sizeof(to)), EINPROGRESS);
    world_run(&world, 5, 1000000);
    int second = usock_socket(world.a, AF_INET, SOCK_STREAM, 0);
    CHECK_ERRNO(usock_connect(world.a, second, (struct sockaddr *)&to, sizeof(to)), EINPROGRESS);
    world_run(&world, 400, 1000000000ULL);
    int error = 0;
    socklen_t length = sizeof(error);
    CHECK_EQ(usock_getsockopt(world.a, second, SOL_SOCKET, SO_ERROR, &error, &length), 0);
    CHECK_EQ(error, ETIMEDOUT);
    CHECK_EQ(usock_stack_counter(world.a, "TcpSynRetrans"), 6);
    CHECK(usock_stack_counter(world.b, "TcpListenOverflows") >= 7);
    world_free(&world);
}

static void test_close_with_unread_data_resets_the_peer(void)
{
    struct world world;
    world_init(&world);
    int client, server;
    connect_pair(&world, 80, &client, &server);
    CHECK_EQ(usock_send(world.a, client, "unread", 6, 0), 6);
    world_run(&world, 3, 1000000);
    CHECK_EQ(usock_close(world.b, server), 0);
    world_run(&world, 3, 1000000);
    char buffer[8];
    CHECK_ERRNO(usock_recv(world.a, client, buffer, sizeof(buffer), 0), ECONNRESET);
    CHECK_EQ(usock_recv(world.a, client, buffer, sizeof(buffer), 0), 0);
    CHECK_ERRNO(usock_send(world.a, client, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_EQ(usock_stack_counter(world.b, "TcpAbortOnClose"), 1);
    CHECK_EQ(usock_stack_counter(world.a, "TcpEstabResets"), 1);
    world_free(&world);
}

static void test_half_close_lets_the_other_side_keep_sending(void)
{
    struct world world;
    world_init(&world);
    int client, server;
    connect_pair(&world, 80, &client, &server);
    CHECK_EQ(usock_shutdown(world.a, client, SHUT_WR), 0);
    CHECK_ERRNO(usock_send(world.a, client, "x", 1, MSG_NOSIGNAL), EPIPE);
    world_run(&world, 3, 1000000);
    char buffer[16];
    CHECK_EQ(usock_recv(world.b, server, buffer, sizeof(buffer), 0), 0);
    CHECK_EQ(usock_send(world.b, server, "still here", 10, 0), 10);
    world_run(&world, 3, 1000000);
    CHECK_EQ(usock_recv(world.a, client, buffer, sizeof(buffer), 0), 10);
    CHECK_EQ(usock_close(world.b, server), 0);
    world_run(&world, 3, 1000000);
    CHECK_EQ(usock_recv(world.a, client, buffer, sizeof(buffer), 0), 0);
    CHECK_EQ(usock_close(world.a, client), 0);
    world_run(&world, 40, 100000000);
    CHECK_EQ(usock_stack_sockets(world.a, NULL, 0), 0);
    CHECK_EQ(usock_stack_sockets(world.b, NULL, 0), 0);
    world_free(&world);
}

/* Moves total bytes from a to b with pattern data, reading as it goes
 * (or only after the sender stalls, when read_late), and checks them. */
static void transfer_and_check(struct world *world, int client, int server, size_t total,
                               bool read_late)
{
    static uint8_t chunk[65536], received[65536];
    size_t sent = 0, got = 0;
    int rounds = 0;
    while (got < total) {
        CHECK(rounds++ < 2000000);
        while (sent < total) {
            size_t want = total - sent < sizeof(chunk) ? total - sent : sizeof(chunk);
            for (size_t i = 0; i < want; i++)
                chunk[i] = (uint8_t)((sent + i) * 7 + ((sent + i) >> 9));
            ssize_t n = usock_send(world->a, client, chunk, want, MSG_DONTWAIT);
            if (n < 0) {
                CHECK_EQ(errno, EAGAIN);
                break;
            }
            sent += (size_t)n;
        }
        world_step(world, 500000);
        if (read_late && rounds < 3000)
            continue;
        for (;;) {
            ssize_t n = usock_recv(world->b, server, received, sizeof(received), MSG_DONTWAIT);
            if (n < 0) {
                CHECK_EQ(errno, EAGAIN);
                break;
            }
            CHECK(n > 0);
            for (ssize_t i = 0; i < n; i++)
                CHECK_EQ(received[i], (uint8_t)((got + (size_t)i) * 7 + ((got + (size_t)i) >> 9)));
            got += (size_t)n;
        }
    }
    CHECK_EQ(got, total);
}

static void test_bulk_transfer_arrives_intact(void)
{
    struct world world;
    world_init(&world);
    int client, server;
    connect_pair(&world, 80, &client, &server);
    transfer_and_check(&world, client, server, 4 << 20, false);
    CHECK_EQ(usock_stack_counter(world.a, "TcpRetransSegs"), 0);
    /* On a clean wire nearly every segment takes the predicted path: the
     * receiver's data segments and the sender's pure ACKs. */
    uint64_t data_segments = usock_stack_counter(world.b, "TcpInSegs");
    uint64_t ack_segments = usock_stack_counter(world.a, "TcpInSegs");
    CHECK(usock_stack_counter(world.b, "TcpHeaderPredictedData") * 10 > data_segments * 8);
    CHECK(usock_stack_counter(world.a, "TcpHeaderPredictedAcks") * 10 > ack_segments * 8);
    world_free(&world);
}

/* Two stacks on a plain in-memory wire both ask for offloads, so bulk data
 * crosses as TCP super-segments with unfinished checksums (counted on both
 * sides) and arrives intact; with offloads turned off on one stack, or an
 * impairment wrapped around one end, only plain frames cross. */
static void test_bulk_transfer_uses_segmentation_offload_only_when_both_ends_can(void)
{
    for (int variant = 0; variant < 3; variant++) {
        struct world world;
        if (variant == 0)
            world_init(&world);
        else if (variant == 1)
            world_init_adjusted(&world, refuse_offloads); /* a asks alone */
        else
            world_init_impaired(&world, "delay=1ms,seed=4");
        int client, server;
        connect_pair(&world, 80, &client, &server);
        transfer_and_check(&world, client, server, 2 << 20, false);
        uint64_t out_super = usock_stack_counter(world.a, "LinkOutSuperSegments");
        uint64_t in_super = usock_stack_counter(world.b, "LinkInSuperSegments");
        uint64_t in_offloaded = usock_stack_counter(world.b, "LinkInChecksumOffloaded");
        if (variant == 0) {
            CHECK(out_super > 0);
            CHECK_EQ(in_super, out_super);
            CHECK(in_offloaded >= in_super);
            /* Far fewer frames than 1448-byte segments would need. */
            CHECK(usock_stack_counter(world.a, "LinkOutFrames") < (2u << 20) / 1448 / 4);
        } else {
            CHECK_EQ(out_super, 0);
            CHECK_EQ(in_super, 0);
            CHECK_EQ(in_offloaded, 0);
        }
        CHECK_EQ(usock_stack_counter(world.b, "TcpInCsumErrors"), 0);
        world_free(&world);
    }
}

/* config.socket_limit bounds the descriptors a stack hands out: socket()
 * and accept() past it fail with EMFILE (the listener's queue keeps the
 * connection), and a close makes room again. */
static void test_socket_limit_gives_emfile_and_room_after_close(void)
{
    struct world world;
    world_init_adjusted(&world, two_sockets_at_most);
    int listener = listener_on(world.b, 80);
    int spare = usock_socket(world.b, AF_INET, SOCK_STREAM, 0);
    CHECK(spare >= 0);
    CHECK_ERRNO(usock_socket(world.b, AF_INET, SOCK_DGRAM, 0), EMFILE);
    int client = usock_socket(world.a, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in to = address_of("198.18.0.2", 80);
    CHECK_ERRNO(usock_connect(world.a, client, (struct sockaddr *)&to, sizeof(to)), EINPROGRESS);
    world_run(&world, 20, 1000000);
    CHECK_ERRNO(usock_accept(world.b, listener, NULL, NULL), EMFILE);
    CHECK_EQ(usock_close(world.b, spare), 0);
    int server = usock_accept(world.b, listener, NULL, NULL);
    CHECK(server >= 0);
    CHECK_EQ(usock_send(world.a, client, "x", 1, 0), 1);
    world_run(&world, 20, 1000000);
    char byte = 0;
    CHECK_EQ(usock_recv(world.b, server, &byte, 1, MSG_DONTWAIT), 1);
    CHECK_EQ(byte, 'x');
    world_free(&world);
}

/* connect() shares ephemeral ports between destinations as Linux does:
 * with every port of the range taken by connections to one port, a
 * connection elsewhere still gets one (a 4-tuple of its own), and one more
 * to the first port has none left.  (The SYNs are lost on the way, so every
 * connection stays in SYN-SENT holding its port.) */
static void test_connect_shares_ephemeral_ports_between_destinations(void)
{
    struct world world;
    world_init_impaired(&world, "loss=100%");
    const unsigned range = 60999 - 32768 + 1;
    struct sockaddr_in first = address_of("198.18.0.2", 80);
    struct sockaddr_in second = address_of("198.18.0.2", 81);
    uint8_t *used = calloc(65536, 1);
    CHECK(used != NULL);
    for (unsigned i = 0; i < range; i++) {
        int fd = usock_socket(world.a, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        CHECK(fd >= 0);
        CHECK_ERRNO(usock_connect(world.a, fd, (struct sockaddr *)&first, sizeof(first)),
                    EINPROGRESS);
        struct sockaddr_in local;
        socklen_t length = sizeof(local);
        CHECK_EQ(usock_getsockname(world.a, fd, (struct sockaddr *)&local, &length), 0);
        CHECK(!used[ntohs(local.sin_port)]);
        used[ntohs(local.sin_port)] = 1;
    }
    int extra = usock_socket(world.a, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK_ERRNO(usock_connect(world.a, extra, (struct sockaddr *)&first, sizeof(first)),
                EADDRNOTAVAIL);
    int elsewhere = usock_socket(world.a, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK_ERRNO(usock_connect(world.a, elsewhere, (struct sockaddr *)&second, sizeof(second)),
                EINPROGRESS);
    struct sockaddr_in local;
    socklen_t length = sizeof(local);
    CHECK_EQ(usock_getsockname(world.a, elsewhere, (struct sockaddr *)&local, &length), 0);
    CHECK(used[ntohs(local.sin_port)]); /* shared with a connection to port 80 */
    /* A port connect() shares is not free for bind(). */
    int bound = usock_socket(world.a, AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in same = address_of("0.0.0.0", ntohs(local.sin_port));
    CHECK_ERRNO(usock_bind(world.a, bound, (struct sockaddr *)&same, sizeof(same)), EADDRINUSE);
    free(used);
    world_free(&world);
}

static void test_bulk_transfer_survives_loss_reordering_duplication(void)
{
    struct world world;
    world_init_impaired(&world, "loss=3%,dup=2%,reorder=5%,delay=1ms,jitter=1ms,seed=9");
    int client, server;
    connect_pair(&world, 80, &client, &server);
    transfer_and_check(&world, client, server, 2 << 20, false);
    CHECK(usock_stack_counter(world.a, "TcpRetransSegs") > 0);
    CHECK(usock_stack_counter(world.a, "TcpFastRetrans") > 0);
    CHECK(usock_stack_counter(world.b, "TcpOutOfOrderQueued") > 0);
    world_free(&world);
}

static void test_zero_window_is_probed_until_the_reader_drains(void)
{
    struct world world;
    world_init(&world);
    int client, server;
    connect_pair(&world, 80, &client, &server);
    /* The receiver reads nothing for a long while: the window closes, the
     * sender probes, and nothing is lost when reading resumes. */
    transfer_and_check(&world, client, server, 1 << 20, true);
    CHECK(usock_stack_counter(world.a, "TcpPersistProbes") > 0);
    world_free(&world);
}

static void test_listen_backlog_and_accept_queue(void)
{
    struct world world;
    world_init(&world);
    int listener = listener_on(world.b, 90);
    int accept_connection = 1;
    socklen_t length = sizeof(accept_connection);
    CHECK_EQ(usock_getsockopt(world.b, listener, SOL_SOCKET, SO_ACCEPTCONN, &accept_connection,
                              &length), 0);
    CHECK_EQ(accept_connection, 1);
    CHECK_ERRNO(usock_accept(world.b, listener, NULL, NULL), EAGAIN);
    int clients[5];
    struct sockaddr_in to = address_of("198.18.0.2", 90);
    for (int i = 0; i < 5; i++) {
        clients[i] = usock_socket(world.a, AF_INET, SOCK_STREAM, 0);
        CHECK_ERRNO(usock_connect(world.a, clients[i], (struct sockaddr *)&to, sizeof(to)),
                    EINPROGRESS);
    }
    world_run(&world, 5, 1000000);
    struct pollfd entry = {.fd = listener, .events = POLLIN};
    CHECK_EQ(usock_poll(world.b, &entry, 1, 0), 1);
    for (int i = 0; i < 5; i++) {
        struct sockaddr_in peer;
        socklen_t peer_length = sizeof(peer);
        int fd = usock_accept(world.b, listener, (struct sockaddr *)&peer, &peer_length);
        CHECK(fd >= 0);
        CHECK_EQ(peer.sin_addr.s_addr, address_of("198.18.0.1", 0).sin_addr.s_addr);
    }
    CHECK_ERRNO(usock_accept(world.b, listener, NULL, NULL), EAGAIN);
    /* A second listen() only changes the backlog. */
    CHECK_EQ(usock_listen(world.b, listener, 1), 0);
    world_free(&world);
}


static void test_heavy_loss_and_corruption_still_deliver_every_byte(void)
{
    struct world world;
    world_init_impaired(&world, "loss=10%,dup=3%,reorder=10%,corrupt=2%,delay=2ms,jitter=3ms,seed=21");
    int client, server;
    connect_pair(&world, 80, &client, &server);
    transfer_and_check(&world, client, server, 1 << 20, false);
    CHECK(usock_stack_counter(world.a, "TcpTimeouts") + usock_stack_counter(world.a, "TcpFastRetrans") > 0);
    CHECK(usock_stack_counter(world.b, "TcpInCsumErrors") + usock_stack_counter(world.a, "TcpInCsumErrors") +
          usock_stack_counter(world.a, "IpInHdrErrors") + usock_stack_counter(world.b, "IpInHdrErrors") +
          usock_stack_counter(world.a, "EthInNotForUs") + usock_stack_counter(world.b, "EthInNotForUs") > 0);
    world_free(&world);
}

/* Issue 5's loss levels with delay: every byte arrives, in order. */
static void test_one_and_five_percent_loss_with_delay_deliver_every_byte(void)
{
    static const char *const impairments[] = {
        "loss=1%,delay=5ms,seed=31",
        "loss=5%,delay=5ms,jitter=1ms,seed=32",
    };
    for (size_t i = 0; i < sizeof(impairments) / sizeof(impairments[0]); i++) {
        struct world world;
        world_init_impaired(&world, impairments[i]);
        int client, server;
        connect_pair(&world, 80, &client, &server);
        transfer_and_check(&world, client, server, 1 << 20, false);
        CHECK(usock_stack_counter(world.a, "TcpRetransSegs") > 0);
        world_free(&world);
    }
}

static void test_many_connections_transfer_concurrently(void)
{
    struct world world;
    world_init_impaired(&world, "loss=1%,reorder=2%,seed=5");
    int listener = listener_on(world.b, 8000);
    enum { CONNECTIONS = 64, BYTES = 20000 };
    int clients[CONNECTIONS], servers[CONNECTIONS];
    size_t sent[CONNECTIONS] = {0}, received[CONNECTIONS] = {0};
    struct sockaddr_in to = address_of("198.18.0.2", 8000);
    for (int i = 0; i < CONNECTIONS; i++) {
        clients[i] = usock_socket(world.a, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        CHECK_ERRNO(usock_connect(world.a, clients[i], (struct sockaddr *)&to, sizeof(to)),
                    EINPROGRESS);
        servers[i] = -1;
    }
    int accepted = 0;
    for (int round = 0; round < 20000 && accepted < CONNECTIONS; round++) {
        world_step(&world, 1000000);
        int fd;
        while ((fd = usock_accept(world.b, listener, NULL, NULL)) >= 0) {
            /* Match the server end to its client by the client's port. */
            struct sockaddr_in peer;
            socklen_t length = sizeof(peer);
            CHECK_EQ(usock_getpeername(world.b, fd, (struct sockaddr *)&peer, &length), 0);
            for (int i = 0; i < CONNECTIONS; i++) {
                struct sockaddr_in name;
                socklen_t name_length = sizeof(name);
                CHECK_EQ(usock_getsockname(world.a, clients[i], (struct sockaddr *)&name,
                                           &name_length), 0);
                if (name.sin_port == peer.sin_port)
                    servers[i] = fd;
            }
            accepted++;
        }
    }
    CHECK_EQ(accepted, CONNECTIONS);
    uint8_t buffer[4096];
    bool done = false;
    for (int round = 0; round < 200000 && !done; round++) {
        done = true;
        for (int i = 0; i < CONNECTIONS; i++) {
            while (sent[i] < BYTES) {
                for (size_t j = 0; j < sizeof(buffer); j++)
                    buffer[j] = (uint8_t)(i + (int)((sent[i] + j) % 199));
                size_t want = BYTES - sent[i] < sizeof(buffer) ? BYTES - sent[i] : sizeof(buffer);
                ssize_t n = usock_send(world.a, clients[i], buffer, want, 0);
                if (n < 0)
                    break;
                sent[i] += (size_t)n;
            }
            ssize_t n;
            while ((n = usock_recv(world.b, servers[i], buffer, sizeof(buffer), MSG_DONTWAIT)) > 0) {
                for (ssize_t j = 0; j < n; j++)
                    CHECK_EQ(buffer[j], (uint8_t)(i + (int)((received[i] + (size_t)j) % 199)));
                received[i] += (size_t)n;
            }
            if (received[i] < BYTES)
                done = false;
        }
        world_step(&world, 1000000);
    }
    CHECK(done);
    for (int i = 0; i < CONNECTIONS; i++) {
        CHECK_EQ(usock_close(world.a, clients[i]), 0);
        CHECK_EQ(usock_close(world.b, servers[i]), 0);
    }
    CHECK_EQ(usock_close(world.b, listener), 0);
    world_run(&world, 100, 100000000);
    CHECK_EQ(usock_stack_sockets(world.a, NULL, 0), 0);
    CHECK_EQ(usock_stack_sockets(world.b, NULL, 0), 0);
    world_free(&world);
}

static const struct check_test tests[] = {
    CHECK_TEST(test_handshake_data_both_ways_and_orderly_close),
    CHECK_TEST(test_connect_to_closed_port_is_refused),
    CHECK_TEST(test_connect_to_host_that_never_answers_arp_is_unreachable),
    CHECK_TEST(test_connect_to_full_listener_times_out_after_syn_retries),
    CHECK_TEST(test_close_with_unread_data_resets_the_peer),
    CHECK_TEST(test_half_close_lets_the_other_side_keep_sending),
    CHECK_TEST(test_bulk_transfer_arrives_intact),
    CHECK_TEST(test_connect_shares_ephemeral_ports_between_destinations),
    CHECK_TEST(test_socket_limit_gives_emfile_and_room_after_close),
    CHECK_TEST(test_bulk_transfer_uses_segmentation_offload_only_when_both_ends_can),
    CHECK_TEST(test_bulk_transfer_survives_loss_reordering_duplication),
    CHECK_TEST(test_zero_window_is_probed_until_the_reader_drains),
    CHECK_TEST(test_heavy_loss_and_corruption_still_deliver_every_byte),
    CHECK_TEST(test_one_and_five_percent_loss_with_delay_deliver_every_byte),
    CHECK_TEST(test_many_connections_transfer_concurrently),
    CHECK_TEST(test_listen_backlog_and_accept_queue),
};

CHECK_MAIN(tests)
