/*
 * tcp_rr.c - 1-byte TCP request/response latency with the kernel's own
 * sockets, for measuring a peer over a real link (bench/run.sh runs it
 * inside network namespaces against usock's tcp-echo service on a TAP, and
 * against its own server mode across a veth pair).
 *
 *   bench_tcp_rr server PORT          echo every byte back, one connection
 *                                     at a time, until killed
 *   bench_tcp_rr client HOST PORT N   connect, then N times: send one byte,
 *                                     wait for one byte; print the mean and
 *                                     99th percentile round trip in us
 *
 * The client sets TCP_NODELAY, warms up with 1000 round trips first, and
 * times each round trip with CLOCK_MONOTONIC.  With --json the client
 * prints {"mean_us": ..., "p99_us": ...}.  Exits 1 on any socket error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WARMUP 1000

static void die(const char *what)
{
    fprintf(stderr, "bench_tcp_rr: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static _Noreturn void serve(uint16_t port)
{
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (listener < 0 || bind(listener, (struct sockaddr *)&local, sizeof(local)) != 0 ||
        listen(listener, 16) != 0)
        die("listen");
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0)
            die("accept");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        char buffer[4096];
        for (;;) {
            ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
            if (n <= 0 || send(fd, buffer, (size_t)n, MSG_NOSIGNAL) != n)
                break;
        }
        close(fd);
    }
}

static int client(const char *host, uint16_t port, unsigned count, int json)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (fd < 0 || inet_pton(AF_INET, host, &to.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0)
        die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    uint64_t *samples = malloc(sizeof(*samples) * (count ? count : 1));
    if (!samples)
        die("malloc");
    for (unsigned i = 0; i < WARMUP + count; i++) {
        char byte = 'q';
        uint64_t started = now_ns();
        if (send(fd, &byte, 1, 0) != 1 || recv(fd, &byte, 1, MSG_WAITALL) != 1)
            die("round trip");
        if (i >= WARMUP)
            samples[i - WARMUP] = now_ns() - started;
    }
    close(fd);
    qsort(samples, count, sizeof(*samples), compare_u64);
    double sum = 0;
    for (unsigned i = 0; i < count; i++)
        sum += (double)samples[i];
    double mean_us = count ? sum / count / 1000 : 0;
    double p99_us = count ? (double)samples[(size_t)((count - 1) * 0.99)] / 1000 : 0;
    if (json)
        printf("{\"round_trips\": %u, \"mean_us\": %.2f, \"p99_us\": %.2f}\n", count, mean_us,
               p99_us);
    else
        printf("%u round trips: mean %.2f us, p99 %.2f us\n", count, mean_us, p99_us);
    free(samples);
    return 0;
}

int main(int argc, char **argv)
{
    int json = argc > 1 && strcmp(argv[argc - 1], "--json") == 0;
    if (json)
        argc--;
    if (argc == 3 && strcmp(argv[1], "server") == 0)
        serve((uint16_t)atoi(argv[2]));
    if (argc == 5 && strcmp(argv[1], "client") == 0)
        return client(argv[2], (uint16_t)atoi(argv[3]), (unsigned)atoi(argv[4]), json);
    fprintf(stderr, "usage: bench_tcp_rr server PORT | client HOST PORT COUNT [--json]\n");
    return 2;
}
