/*
 * tcp_loss_goodput.c - TCP goodput between two usock stacks on the
 * in-memory wire at 0%, 1%, 5% and 10% loss (each way) with a one-way
 * delay, in simulated time.
 *
 * Each run builds two stacks on a fresh wire whose impairment (loss,
 * delay, seed) applies in both directions, connects, sends MEGABYTES of a
 * pattern from one stack to the other, checks every byte, and prints the
 * goodput: bytes delivered over simulated seconds.  The clock jumps from
 * one deadline to the next, so the figure is the protocol's, not this
 * machine's; the wall-clock time is printed beside it.  The Linux kernel
 * has no comparable in-memory impaired path, so no ratio is printed.
 *
 * Usage: bench_tcp_loss_goodput [--megabytes N] [--delay-ms D]
 *        [--algorithm cubic|reno] [--json]
 */
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "usock.h"

struct world {
    uint64_t now;
    struct usock_stack *sender, *receiver;
};

struct result {
    unsigned loss_percent;
    double simulated_seconds;
    double wall_seconds;
    uint64_t retransmitted, timeouts, recoveries;
    bool intact;
};

static uint64_t world_clock(void *context)
{
    return ((struct world *)context)->now;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_tcp_loss_goodput: %s\n", what);
    exit(1);
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
    if (!stack)
        die("cannot make a stack");
    return stack;
}

/* Polls both stacks and moves the clock to the earlier deadline (at most
 * 10 ms ahead, at least 1 µs). */
static void world_step(struct world *world)
{
    uint64_t first = usock_stack_poll(world->sender, world->now);
    uint64_t second = usock_stack_poll(world->receiver, world->now);
    uint64_t third = usock_stack_poll(world->sender, world->now);
    uint64_t next = first < second ? first : second;
    if (third < next)
        next = third;
    uint64_t limit = world->now + 10000000ULL;
    if (next > limit)
        next = limit;
    if (next <= world->now)
        next = world->now + 1000;
    world->now = next;
}

static uint8_t pattern_byte(uint64_t index)
{
    return (uint8_t)(index * 131 + (index >> 11));
}

static double seconds_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static struct result run(unsigned loss_percent, unsigned delay_ms, uint64_t bytes,
                         const char *algorithm)
{
    struct result result = {.loss_percent = loss_percent};
    struct world world = {.now = 1000000000ULL};
    struct usock_link *a, *b;
    if (usock_link_mem_pair(&a, &b) != 0)
        die("cannot make a wire");
    char spec_text[128];
    snprintf(spec_text, sizeof(spec_text), "loss=%u%%,delay=%ums,seed=%u", loss_percent,
             delay_ms, 7 + loss_percent);
    struct usock_impairment spec;
    if (usock_impairment_parse(spec_text, &spec, NULL, 0) != 0 ||
        usock_link_impair(a, &spec, &a) != 0)
        die("cannot impair the wire");
    world.sender = make_stack(&world, a, "198.18.0.1", 11);
    world.receiver = make_stack(&world, b, "198.18.0.2", 12);

    int listener = usock_socket(world.receiver, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(5001)};
    if (listener < 0 || usock_bind(world.receiver, listener, (struct sockaddr *)&address,
                                   sizeof(address)) != 0 ||
        usock_listen(world.receiver, listener, 4) != 0)
        die("cannot listen");
    int client = usock_socket(world.sender, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (client < 0)
        die("cannot make a socket");
    if (algorithm && usock_setsockopt(world.sender, client, IPPROTO_TCP, TCP_CONGESTION,
                                      algorithm, (socklen_t)strlen(algorithm)) != 0)
        die("unknown congestion control algorithm");
    inet_pton(AF_INET, "198.18.0.2", &address.sin_addr);
    usock_connect(world.sender, client, (struct sockaddr *)&address, sizeof(address));
    int server = -1;
    for (int i = 0; i < 100000 && server < 0; i++) {
        world_step(&world);
        server = usock_accept(world.receiver, listener, NULL, NULL);
    }
    if (server < 0)
        die("the connection did not open");

    static uint8_t chunk[65536], received[65536];
    uint64_t sent = 0, got = 0;
    result.intact = true;
    uint64_t started = world.now;
    double wall_started = seconds_now();
    while (got < bytes) {
        while (sent < bytes) {
            size_t length = bytes - sent < sizeof(chunk) ? (size_t)(bytes - sent) : sizeof(chunk);
            for (size_t i = 0; i < length; i++)
                chunk[i] = pattern_byte(sent + i);
            ssize_t n = usock_send(world.sender, client, chunk, length, 0);
            if (n <= 0)
                break;
            sent += (uint64_t)n;
        }
        for (;;) {
            ssize_t n = usock_recv(world.receiver, server, received, sizeof(received), 0);
            if (n <= 0)
                break;
            for (ssize_t i = 0; i < n; i++)
                if (received[i] != pattern_byte(got + (uint64_t)i))
                    result.intact = false;
            got += (uint64_t)n;
        }
        world_step(&world);
        if (world.now - started > 3600ULL * 1000000000ULL)
            die("no progress in an hour of simulated time");
    }
    result.simulated_seconds = (double)(world.now - started) / 1e9;
    result.wall_seconds = seconds_now() - wall_started;
    result.retransmitted = usock_stack_counter(world.sender, "TcpRetransSegs");
    result.timeouts = usock_stack_counter(world.sender, "TcpTimeouts");
    result.recoveries = usock_stack_counter(world.sender, "TcpSackRecoveries") +
                        usock_stack_counter(world.sender, "TcpRecoveries");
    usock_close(world.sender, client);
    usock_close(world.receiver, server);
    usock_close(world.receiver, listener);
    usock_stack_free(world.sender);
    usock_stack_free(world.receiver);
    return result;
}

int main(int argc, char **argv)
{
    unsigned megabytes = 20, delay_ms = 5;
    const char *algorithm = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--megabytes") == 0 && i + 1 < argc)
            megabytes = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--delay-ms") == 0 && i + 1 < argc)
            delay_ms = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--algorithm") == 0 && i + 1 < argc)
            algorithm = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else {
            fprintf(stderr, "usage: bench_tcp_loss_goodput [--megabytes N] [--delay-ms D] "
                            "[--algorithm cubic|reno] [--json]\n");
            return 2;
        }
    }
    if (megabytes == 0)
        megabytes = 1;
    static const unsigned losses[] = {0, 1, 5, 10};
    struct result results[4];
    for (int i = 0; i < 4; i++)
        results[i] = run(losses[i], delay_ms, (uint64_t)megabytes * 1000000, algorithm);
    bool intact = true;
    if (json) {
        printf("{\"megabytes\": %u, \"one_way_delay_ms\": %u, \"algorithm\": \"%s\", \"runs\": [",
               megabytes, delay_ms, algorithm ? algorithm : "cubic");
        for (int i = 0; i < 4; i++)
            printf("%s{\"loss_percent\": %u, \"simulated_seconds\": %.3f, "
                   "\"goodput_mbytes_per_second\": %.3f, \"wall_seconds\": %.3f, "
                   "\"retransmitted_segments\": %llu, \"timeouts\": %llu, "
                   "\"recoveries\": %llu, \"intact\": %s}",
                   i ? ", " : "", results[i].loss_percent, results[i].simulated_seconds,
                   megabytes / results[i].simulated_seconds, results[i].wall_seconds,
                   (unsigned long long)results[i].retransmitted,
                   (unsigned long long)results[i].timeouts,
                   (unsigned long long)results[i].recoveries,
                   results[i].intact ? "true" : "false");
        printf("]}\n");
    } else {
        printf("TCP goodput between two usock stacks in memory, %u MB, %u ms each way, %s\n",
               megabytes, delay_ms, algorithm ? algorithm : "cubic");
        printf("%-6s %12s %14s %10s %9s %9s %11s %7s\n", "loss", "simulated s", "goodput MB/s",
               "wall s", "retrans", "timeouts", "recoveries", "intact");
        for (int i = 0; i < 4; i++)
            printf("%5u%% %12.2f %14.3f %10.2f %9llu %9llu %11llu %7s\n",
                   results[i].loss_percent, results[i].simulated_seconds,
                   megabytes / results[i].simulated_seconds, results[i].wall_seconds,
                   (unsigned long long)results[i].retransmitted,
                   (unsigned long long)results[i].timeouts,
                   (unsigned long long)results[i].recoveries,
                   results[i].intact ? "yes" : "NO");
    }
    for (int i = 0; i < 4; i++)
        intact = intact && results[i].intact;
    return intact ? 0 : 1;
}
