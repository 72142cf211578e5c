/*
 * stack_bench.c - usock against the Linux kernel on the four workloads of
 * issue 6, each measured in the same run on this machine and printed side
 * by side with a ratio:
 *
 *   1. single-flow TCP throughput (64 KiB writes, every byte checked);
 *   2. connection rate: connect, 1-byte request, 1-byte reply, orderly
 *      close - one at a time, and with many in flight at once;
 *   3. request/response latency: a 1-byte ping-pong over one connection,
 *      mean and 99th percentile round trip;
 *   4. memory per idle established connection.
 *
 * usock: two stacks, 198.18.0.1 (client) and 198.18.0.2 (server), joined
 * by the in-memory wire (Ethernet, MTU 1500), both driven in event mode by
 * ONE thread on the real clock.  The loop polls both stacks and then makes
 * the socket calls of whichever end has work, so every figure includes the
 * work of both ends on one CPU, and nothing ever sleeps or wakes a thread.
 *
 * Kernel: TCP over 127.0.0.1 (MTU 65536) with client and server on two
 * threads of this process - blocking calls for the stream workloads, epoll
 * for the connection rate.  Everything the kernel does happens in a network
 * namespace made at start (unshare(CLONE_NEWNET), lo brought up), so only
 * this process's own loopback is touched and the sysctls written are that
 * namespace's.  That needs root; without it the kernel figures are skipped.
 *
 * Memory: usock's is the change in this process's RSS (/proc/self/statm)
 * over opening N connection pairs, divided by the 2N connections (both ends
 * live in this process).  The kernel's is the change in /proc/meminfo Slab
 * plus TCP socket memory (/proc/net/sockstat, pages) plus the RSS of the
 * two processes that hold the descriptors (the server end is a child
 * process, as the descriptor limit may not fit 2N+1 in one), over the same
 * N loopback pairs, divided by 2N.  Slab is machine-wide, so other jobs
 * add noise; the slabinfo caches a socket lives in are printed as a check.
 * The memory workloads run first, before anything has left freed memory
 * or TIME_WAIT sockets behind.
 *
 * Ratios: > 1 always means usock is better - usock/kernel for throughput
 * and connection rate, kernel/usock for latency and memory.
 *
 * Usage: bench_stack_bench [--quick] [--megabytes N] [--connections N]
 *        [--in-flight N] [--round-trips N] [--pairs N] [--time-wait-ms N]
 *        [--no-kernel] [--json] [--write-size N] [--throughput-only]
 * Exits 0 after printing the figures, 1 if a transfer was not intact or a
 * connection failed, 2 on a bad option.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "usock.h"

#define WRITE_SIZE_DEFAULT 65536  /* bytes per send() in the throughput run */
#define WRITE_SIZE_MAX 262144     /* the most --write-size takes */
#define PATTERN_PERIOD 65521      /* prime, so writes do not line up with it */
#define STALL_SECONDS 30.0        /* no progress this long: something broke */
#define CONNECT_PORTS 4           /* listener ports of the connection-rate run */
#define CONNECT_PORT_FIRST 6000
#define STREAM_PORT 5001          /* throughput and latency */
#define MEMORY_PORT 7000
#define MEMORY_BATCH 256          /* usock connects in flight while filling */
#define LATENCY_WARMUP 1000       /* round trips before the recorded ones */
#define NOTES_MAX 32

static const char usock_client_address[] = "198.18.0.1";
static const char usock_server_address[] = "198.18.0.2";

struct options {
    uint64_t megabytes;       /* throughput: MB (10^6 bytes) moved */
    unsigned connections;     /* connection rate: connections per run */
    unsigned in_flight;       /* connection rate: concurrent connections */
    unsigned round_trips;     /* latency: recorded round trips */
    unsigned pairs;           /* memory: idle connection pairs */
    uint64_t time_wait_ms;    /* usock's TIME_WAIT (2MSL) */
    bool kernel;              /* measure the kernel too */
    bool json;
    bool throughput_only;     /* --throughput-only: workload 1 alone */
};

enum figure_id {
    FIGURE_THROUGHPUT,
    FIGURE_CONNECT_SEQUENTIAL,
    FIGURE_CONNECT_PARALLEL,
    FIGURE_RTT_MEAN,
    FIGURE_RTT_P99,
    FIGURE_MEMORY,
    FIGURE_CPU,
    FIGURE_COUNT
};

struct figure {
    const char *key;          /* JSON name */
    char workload[64];        /* as printed */
    const char *unit;
    bool lower_is_better;     /* the ratio is then kernel / usock */
    double usock;             /* < 0: not measured */
    double kernel;            /* < 0: not measured (or not comparable) */
};

struct report {
    struct figure figures[FIGURE_COUNT];
    char notes[NOTES_MAX][320];
    unsigned note_count;
};

/* The byte stream every throughput run sends: byte i of the stream is
 * pattern[i % PATTERN_PERIOD], and the table runs WRITE_SIZE_MAX bytes
 * past one period so any write or read of up to that many bytes is one
 * slice. */
static uint8_t pattern[PATTERN_PERIOD + WRITE_SIZE_MAX];

/* Bytes per send() and recv() in the throughput runs (--write-size). */
static size_t write_size = WRITE_SIZE_DEFAULT;

/* ------------------------------------------------------------------ */
/* Common                                                              */
/* ------------------------------------------------------------------ */

/* Prints what broke and exits 1: the benchmark fails only on broken
 * transfers and connections, never on figures. */
__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *format, ...)
{
    va_list arguments;
    va_start(arguments, format);
    fprintf(stderr, "bench_stack_bench: ");
    vfprintf(stderr, format, arguments);
    fprintf(stderr, "\n");
    va_end(arguments);
    exit(1);
}

/* Appends a line to the report's notes (dropped past NOTES_MAX). */
__attribute__((format(printf, 2, 3))) static void note(struct report *report,
                                                       const char *format, ...)
{
    if (report->note_count >= NOTES_MAX)
        return;
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(report->notes[report->note_count++], sizeof(report->notes[0]), format, arguments);
    va_end(arguments);
}

/* CLOCK_MONOTONIC in seconds. */
static double seconds_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* CPU time this thread has used, in seconds. */
static double thread_cpu_seconds(void)
{
    struct timespec used;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &used);
    return (double)used.tv_sec + (double)used.tv_nsec / 1e9;
}

/* Dies when nothing has progressed for STALL_SECONDS; *last is the time
 * of the last progress, moved on when progressed. */
static void stall_check(double *last, bool progressed, const char *what)
{
    double now = seconds_now();
    if (progressed)
        *last = now;
    else if (now - *last > STALL_SECONDS)
        die("%s: no progress for %.0f s", what, STALL_SECONDS);
}

/* Fills the pattern table (see pattern). */
static void pattern_init(void)
{
    for (size_t i = 0; i < sizeof(pattern); i++) {
        size_t index = i % PATTERN_PERIOD;
        pattern[i] = (uint8_t)(index * 131 + (index >> 9));
    }
}

/* The pattern from stream offset onward (valid for WRITE_SIZE_MAX bytes). */
static const uint8_t *pattern_at(uint64_t offset)
{
    return pattern + offset % PATTERN_PERIOD;
}

/* This process's resident set in bytes, from /proc/self/statm. */
static int64_t process_rss_bytes(void)
{
    FILE *file = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (!file)
        die("cannot open /proc/self/statm: %s", strerror(errno));
    if (fscanf(file, "%ld %ld", &size, &resident) != 2)
        die("cannot read /proc/self/statm");
    fclose(file);
    return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

/* Bytes malloc has handed out and not had back (heap and mmapped chunks). */
static int64_t malloc_in_use_bytes(void)
{
    struct mallinfo2 info = mallinfo2();
    return (int64_t)(info.uordblks + info.hblkhd);
}

/* qsort order of uint64_t values, smallest first. */
static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Mean and 99th percentile of samples (nanoseconds, sorted in place), in
 * microseconds. */
static void samples_summarize(uint64_t *samples, size_t count, double *mean_us, double *p99_us)
{
    double sum = 0;
    for (size_t i = 0; i < count; i++)
        sum += (double)samples[i];
    qsort(samples, count, sizeof(samples[0]), compare_u64);
    size_t rank = (size_t)ceil(0.99 * (double)count);
    *mean_us = sum / (double)count / 1000.0;
    *p99_us = (double)samples[rank ? rank - 1 : 0] / 1000.0;
}

/* ------------------------------------------------------------------ */
/* usock: two stacks on the in-memory wire, one thread                 */
/* ------------------------------------------------------------------ */

struct pair {
    struct usock_stack *client; /* 198.18.0.1 */
    struct usock_stack *server; /* 198.18.0.2 */
};

/* Makes a stack at address on link (taking the link), on the real clock,
 * with TIME_WAIT time_wait_ns. */
static struct usock_stack *pair_stack_new(struct usock_link *link, const char *address,
                                          uint64_t seed, uint64_t time_wait_ns)
{
    struct usock_stack_config config;
    usock_stack_config_init(&config);
    config.link = link;
    inet_pton(AF_INET, address, &config.address);
    config.prefix_length = 24;
    config.seed = seed;
    config.tcp_time_wait_ns = time_wait_ns;
    struct usock_stack *stack = usock_stack_new(&config);
    if (!stack)
        die("usock: cannot make a stack: %s", strerror(errno));
    return stack;
}

/* Makes the client and server stacks on a fresh in-memory wire. */
static void pair_open(struct pair *pair, uint64_t time_wait_ns)
{
    struct usock_link *a, *b;
    int error = usock_link_mem_pair(&a, &b);
    if (error != 0)
        die("usock: cannot make a wire: %s", strerror(-error));
    pair->client = pair_stack_new(a, usock_client_address, 11, time_wait_ns);
    pair->server = pair_stack_new(b, usock_server_address, 12, time_wait_ns);
}

/* Frees both stacks, with whatever sockets are left on them. */
static void pair_close(struct pair *pair)
{
    usock_stack_free(pair->client);
    usock_stack_free(pair->server);
}

/* One turn of the event loop: both stacks take their frames and run their
 * timers at the current time.  The deadlines are not needed: the caller
 * spins. */
static void pair_poll(struct pair *pair)
{
    uint64_t now = usock_monotonic_ns(NULL);
    usock_stack_poll(pair->client, now);
    usock_stack_poll(pair->server, now);
}

/* A listening socket on port of stack (all addresses). */
static int usock_listener_on(struct usock_stack *stack, uint16_t port, int backlog)
{
    int fd = usock_socket(stack, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (fd < 0 || usock_bind(stack, fd, (struct sockaddr *)&local, sizeof(local)) != 0 ||
        usock_listen(stack, fd, backlog) != 0)
        die("usock: cannot listen on port %u: %s", port, strerror(errno));
    return fd;
}

/* Starts a connection from the client stack to the server's port; returns
 * the client's descriptor (the handshake completes in later polls). */
static int usock_connect_start(struct pair *pair, uint16_t port)
{
    int fd = usock_socket(pair->client, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        die("usock: cannot make a socket: %s", strerror(errno));
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, usock_server_address, &to.sin_addr);
    if (usock_connect(pair->client, fd, (struct sockaddr *)&to, sizeof(to)) != 0 &&
        errno != EINPROGRESS)
        die("usock: connect to port %u: %s", port, strerror(errno));
    return fd;
}

/* Opens one connection to port and returns both ends, established, with
 * TCP_NODELAY set on both. */
static void usock_connection_open(struct pair *pair, uint16_t port, int *client, int *server)
{
    int listener = usock_listener_on(pair->server, port, 4);
    *client = usock_connect_start(pair, port);
    *server = -1;
    double last = seconds_now();
    for (;;) {
        pair_poll(pair);
        if (*server < 0)
            *server = usock_accept(pair->server, listener, NULL, NULL);
        struct pollfd ready = {.fd = *client, .events = POLLOUT};
        if (*server >= 0 && usock_poll(pair->client, &ready, 1, 0) == 1) {
            if (ready.revents & (POLLERR | POLLHUP))
                die("usock: the connection to port %u failed", port);
            break;
        }
        stall_check(&last, false, "usock: opening a connection");
    }
    usock_close(pair->server, listener);
    int one = 1;
    if (usock_setsockopt(pair->client, *client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ||
        usock_setsockopt(pair->server, *server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
        die("usock: TCP_NODELAY: %s", strerror(errno));
}

/* Workload 1, usock: moves bytes from client to server in write_size
 * writes, checking each byte read.  Returns MB/s; stores in *cpu_seconds
 * the CPU time this thread (both stacks, both programs) spent on it. */
static double usock_throughput(uint64_t bytes, struct report *report, double *cpu_seconds)
{
    struct pair pair;
    pair_open(&pair, 0);
    int client, server;
    usock_connection_open(&pair, STREAM_PORT, &client, &server);
    uint8_t *buffer = malloc(write_size);
    if (!buffer)
        die("out of memory");

    uint64_t sent = 0, got = 0;
    double started = seconds_now(), last = started;
    double cpu_started = thread_cpu_seconds();
    while (got < bytes) {
        bool progressed = false;
        while (sent < bytes) {
            size_t length = bytes - sent < write_size ? (size_t)(bytes - sent) : write_size;
            ssize_t n = usock_send(pair.client, client, pattern_at(sent), length, 0);
            if (n < 0 && errno != EAGAIN)
                die("usock throughput: send: %s", strerror(errno));
            if (n <= 0)
                break;
            sent += (uint64_t)n;
            progressed = true;
        }
        pair_poll(&pair);
        for (;;) {
            ssize_t n = usock_recv(pair.server, server, buffer, write_size, 0);
            if (n < 0 && errno == EAGAIN)
                break;
            if (n <= 0)
                die("usock throughput: recv after %llu bytes: %s", (unsigned long long)got,
                    n == 0 ? "end of stream" : strerror(errno));
            if (memcmp(buffer, pattern_at(got), (size_t)n) != 0)
                die("usock throughput: data not intact in bytes %llu..%llu",
                    (unsigned long long)got, (unsigned long long)(got + (uint64_t)n));
            got += (uint64_t)n;
            progressed = true;
        }
        stall_check(&last, progressed, "usock throughput");
    }
    double seconds = seconds_now() - started;
    *cpu_seconds = thread_cpu_seconds() - cpu_started;
    note(report, "usock throughput: %llu segments sent, %llu ACKs back, %llu retransmitted, "
         "%llu frames the wire refused (queue full), %llu delayed ACKs",
         (unsigned long long)usock_stack_counter(pair.client, "TcpOutSegs"),
         (unsigned long long)usock_stack_counter(pair.server, "TcpOutSegs"),
         (unsigned long long)usock_stack_counter(pair.client, "TcpRetransSegs"),
         (unsigned long long)(usock_stack_counter(pair.client, "LinkOutErrors") +
                              usock_stack_counter(pair.server, "LinkOutErrors")),
         (unsigned long long)usock_stack_counter(pair.server, "TcpDelayedAcks"));
    free(buffer);
    usock_close(pair.client, client);
    usock_close(pair.server, server);
    pair_close(&pair);
    return (double)bytes / 1e6 / seconds;
}

/* Polls the pair until one byte can be read from fd on stack. */
static void usock_wait_byte(struct pair *pair, struct usock_stack *stack, int fd)
{
    uint8_t byte;
    double last = 0;
    for (unsigned turns = 0;; turns++) {
        ssize_t n = usock_recv(stack, fd, &byte, 1, 0);
        if (n == 1)
            return;
        if (n == 0 || errno != EAGAIN)
            die("usock latency: recv: %s", n == 0 ? "end of stream" : strerror(errno));
        pair_poll(pair);
        if (turns == 1000)
            last = seconds_now();
        if (turns > 1000 && (turns & 1023) == 0)
            stall_check(&last, false, "usock latency");
    }
}

/* Workload 3, usock: 1-byte ping-pong; stores the mean and p99 round trip
 * in microseconds. */
static void usock_latency(unsigned round_trips, double *mean_us, double *p99_us)
{
    struct pair pair;
    pair_open(&pair, 0);
    int client, server;
    usock_connection_open(&pair, STREAM_PORT, &client, &server);
    uint64_t *samples = malloc(sizeof(*samples) * round_trips);
    if (!samples)
        die("out of memory");
    for (unsigned i = 0; i < LATENCY_WARMUP + round_trips; i++) {
        uint64_t started = usock_monotonic_ns(NULL);
        if (usock_send(pair.client, client, "q", 1, 0) != 1)
            die("usock latency: send: %s", strerror(errno));
        usock_wait_byte(&pair, pair.server, server);
        if (usock_send(pair.server, server, "r", 1, 0) != 1)
            die("usock latency: send: %s", strerror(errno));
        usock_wait_byte(&pair, pair.client, client);
        if (i >= LATENCY_WARMUP)
            samples[i - LATENCY_WARMUP] = usock_monotonic_ns(NULL) - started;
    }
    samples_summarize(samples, round_trips, mean_us, p99_us);
    free(samples);
    usock_close(pair.client, client);
    usock_close(pair.server, server);
    pair_close(&pair);
}

enum client_state { CLIENT_IDLE, CLIENT_CONNECTING, CLIENT_WAIT_REPLY };

struct usock_client_slot {
    int fd;
    enum client_state state;
};

struct usock_server_connection {
    int fd;
    bool replied;
};

/* Moves one client connection on: sends the request once the handshake
 * is done, reads the reply and closes.  Returns true when it completed. */
static bool usock_client_step(struct pair *pair, struct usock_client_slot *slot)
{
    if (slot->state == CLIENT_CONNECTING) {
        ssize_t n = usock_send(pair->client, slot->fd, "q", 1, 0);
        if (n < 0 && errno == EAGAIN)
            return false;
        if (n != 1)
            die("usock connection rate: connection failed: %s", strerror(errno));
        slot->state = CLIENT_WAIT_REPLY;
    }
    uint8_t byte;
    ssize_t n = usock_recv(pair->client, slot->fd, &byte, 1, 0);
    if (n < 0 && errno == EAGAIN)
        return false;
    if (n != 1)
        die("usock connection rate: no reply: %s", n == 0 ? "end of stream" : strerror(errno));
    usock_close(pair->client, slot->fd);
    slot->state = CLIENT_IDLE;
    return true;
}

/* Moves one server connection on: answers the request, then closes at the
 * client's FIN.  Returns true when it closed. */
static bool usock_server_step(struct pair *pair, struct usock_server_connection *connection)
{
    for (;;) {
        uint8_t byte;
        ssize_t n = usock_recv(pair->server, connection->fd, &byte, 1, 0);
        if (n < 0 && errno == EAGAIN)
            return false;
        if (n == 1 && !connection->replied) {
            if (usock_send(pair->server, connection->fd, "r", 1, 0) != 1)
                die("usock connection rate: reply: %s", strerror(errno));
            connection->replied = true;
        } else if (n == 0 && connection->replied) {
            usock_close(pair->server, connection->fd);
            return true;
        } else {
            die("usock connection rate: server read %zd: %s", n,
                n < 0 ? strerror(errno) : "unexpected");
        }
    }
}

/* Workload 2, usock: total connections, at most in_flight at once, each
 * connect / request / reply / close, the client closing first.  Returns
 * connections per second. */
static double usock_connection_rate(unsigned total, unsigned in_flight, uint64_t time_wait_ns,
                                    struct report *report)
{
    struct pair pair;
    pair_open(&pair, time_wait_ns);
    int listeners[CONNECT_PORTS];
    for (int i = 0; i < CONNECT_PORTS; i++)
        listeners[i] = usock_listener_on(pair.server, (uint16_t)(CONNECT_PORT_FIRST + i), 4096);
    struct usock_client_slot *slots = calloc(in_flight, sizeof(*slots));
    size_t server_capacity = 2 * (size_t)in_flight + 64, server_count = 0;
    struct usock_server_connection *servers = malloc(server_capacity * sizeof(*servers));
    if (!slots || !servers)
        die("out of memory");

    unsigned issued = 0, completed = 0, closed = 0;
    double started = seconds_now(), last = started;
    while (completed < total || closed < total) {
        bool progressed = false;
        for (unsigned i = 0; i < in_flight && issued < total; i++)
            if (slots[i].state == CLIENT_IDLE) {
                slots[i].fd = usock_connect_start(&pair,
                                                  (uint16_t)(CONNECT_PORT_FIRST + issued % CONNECT_PORTS));
                slots[i].state = CLIENT_CONNECTING;
                issued++;
            }
        pair_poll(&pair);
        for (int i = 0; i < CONNECT_PORTS; i++) {
            int fd;
            while ((fd = usock_accept(pair.server, listeners[i], NULL, NULL)) >= 0) {
                if (server_count == server_capacity) {
                    server_capacity *= 2;
                    servers = realloc(servers, server_capacity * sizeof(*servers));
                    if (!servers)
                        die("out of memory");
                }
                servers[server_count++] = (struct usock_server_connection){.fd = fd};
            }
            if (errno != EAGAIN)
                die("usock connection rate: accept: %s", strerror(errno));
        }
        for (size_t i = 0; i < server_count;) {
            if (usock_server_step(&pair, &servers[i])) {
                servers[i] = servers[--server_count];
                closed++;
                progressed = true;
            } else {
                i++;
            }
        }
        for (unsigned i = 0; i < in_flight; i++)
            if (slots[i].state != CLIENT_IDLE && usock_client_step(&pair, &slots[i])) {
                completed++;
                progressed = true;
            }
        stall_check(&last, progressed, "usock connection rate");
    }
    double seconds = seconds_now() - started;
    uint64_t segments = usock_stack_counter(pair.client, "TcpOutSegs") +
                        usock_stack_counter(pair.server, "TcpOutSegs");
    uint64_t retransmitted = usock_stack_counter(pair.client, "TcpRetransSegs") +
                             usock_stack_counter(pair.server, "TcpRetransSegs");
    uint64_t resets = usock_stack_counter(pair.client, "TcpOutRsts") +
                      usock_stack_counter(pair.server, "TcpOutRsts");
    note(report, "usock connection rate, %u in flight: %.2f segments per connection, %llu "
         "retransmitted, %llu RSTs, %llu TIME_WAIT overflows (closed without TIME_WAIT)",
         in_flight, (double)segments / total, (unsigned long long)retransmitted,
         (unsigned long long)resets,
         (unsigned long long)usock_stack_counter(pair.client, "TcpTimeWaitOverflows"));
    free(slots);
    free(servers);
    for (int i = 0; i < CONNECT_PORTS; i++)
        usock_close(pair.server, listeners[i]);
    pair_close(&pair);
    return total / seconds;
}

/* Workload 4, usock: opens pairs connections and leaves them idle.
 * Returns bytes of RSS per connection (both ends counted: 2 * pairs). */
static double usock_memory(unsigned pairs, struct report *report)
{
    struct pair pair;
    pair_open(&pair, 0);
    int listener = usock_listener_on(pair.server, MEMORY_PORT, 4096);
    int *clients = malloc(sizeof(int) * pairs), *servers = malloc(sizeof(int) * pairs);
    if (!clients || !servers)
        die("out of memory");
    memset(clients, 0xff, sizeof(int) * pairs); /* resident before the first sample */
    memset(servers, 0xff, sizeof(int) * pairs);
    /* One connection first, so ARP and first-use allocations are not counted. */
    int warm_client, warm_server;
    usock_connection_open(&pair, MEMORY_PORT + 1, &warm_client, &warm_server);
    pair_poll(&pair);

    int64_t rss_before = process_rss_bytes(), heap_before = malloc_in_use_bytes();
    unsigned made = 0, accepted = 0;
    double last = seconds_now();
    while (accepted < pairs) {
        while (made < pairs && made - accepted < MEMORY_BATCH)
            clients[made++] = usock_connect_start(&pair, MEMORY_PORT);
        pair_poll(&pair);
        bool progressed = false;
        int fd;
        while ((fd = usock_accept(pair.server, listener, NULL, NULL)) >= 0) {
            servers[accepted++] = fd;
            progressed = true;
        }
        stall_check(&last, progressed, "usock memory: opening connections");
    }
    for (int i = 0; i < 10; i++)
        pair_poll(&pair);
    int64_t rss_after = process_rss_bytes(), heap_after = malloc_in_use_bytes();
    struct pollfd *ready = calloc(pairs, sizeof(*ready));
    if (!ready)
        die("out of memory");
    for (unsigned i = 0; i < pairs; i++)
        ready[i] = (struct pollfd){.fd = clients[i], .events = POLLOUT};
    int writable = usock_poll(pair.client, ready, pairs, 0);
    for (unsigned i = 0; i < pairs; i++)
        if (ready[i].revents & (POLLERR | POLLHUP))
            writable = -1;
    free(ready);
    if (writable != (int)pairs)
        die("usock memory: not every client connection is established");
    double connections = 2.0 * pairs;
    note(report, "usock memory: RSS %+.1f MB over %u pairs; malloc's own count says %.0f B "
         "per connection", (double)(rss_after - rss_before) / 1e6, pairs,
         (double)(heap_after - heap_before) / connections);
    for (unsigned i = 0; i < pairs; i++) {
        usock_close(pair.client, clients[i]);
        usock_close(pair.server, servers[i]);
    }
    usock_close(pair.client, warm_client);
    usock_close(pair.server, warm_server);
    usock_close(pair.server, listener);
    free(clients);
    free(servers);
    pair_close(&pair);
    return (double)(rss_after - rss_before) / connections;
}

/* ------------------------------------------------------------------ */
/* Kernel: loopback in a namespace of our own                          */
/* ------------------------------------------------------------------ */

/* Moves this process (before any thread is made) into a new network
 * namespace and brings its lo up, so every kernel workload stays inside
 * it.  Returns true on success; otherwise writes why into why. */
static bool kernel_namespace_enter(char *why, size_t size)
{
    if (geteuid() != 0) {
        snprintf(why, size, "not root: the kernel figures need a network namespace of their "
                 "own and were skipped");
        return false;
    }
    if (unshare(CLONE_NEWNET) != 0) {
        snprintf(why, size, "unshare(CLONE_NEWNET): %s: kernel figures skipped",
                 strerror(errno));
        return false;
    }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    snprintf(request.ifr_name, sizeof(request.ifr_name), "lo");
    if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &request) != 0) {
        snprintf(why, size, "cannot read lo's flags: %s: kernel figures skipped",
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    request.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &request) != 0) {
        snprintf(why, size, "cannot bring lo up: %s: kernel figures skipped", strerror(errno));
        close(fd);
        return false;
    }
    close(fd);
    return true;
}

/* Writes value to a sysctl of our own namespace (call only after
 * kernel_namespace_enter).  Returns true on success. */
static bool kernel_sysctl_write(const char *path, const char *value)
{
    FILE *file = fopen(path, "w");
    if (!file)
        return false;
    bool written = fputs(value, file) >= 0;
    return fclose(file) == 0 && written;
}

/* Reads the first line of a /proc file (a sysctl of our namespace, the
 * load average) into value, tabs as spaces; "?" when unreadable. */
static void proc_read_line(const char *path, char *value, size_t size)
{
    FILE *file = fopen(path, "r");
    snprintf(value, size, "?");
    if (file) {
        if (fgets(value, (int)size, file))
            value[strcspn(value, "\n")] = '\0';
        fclose(file);
    }
    for (char *c = value; *c; c++)
        if (*c == '\t')
            *c = ' ';
}

/* A listening socket on 127.0.0.1:port, blocking unless nonblocking. */
static int kernel_listener_on(uint16_t port, int backlog, bool nonblocking)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    int one = 1;
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&local, sizeof(local)) != 0 || listen(fd, backlog) != 0)
        die("kernel: cannot listen on 127.0.0.1:%u: %s", port, strerror(errno));
    return fd;
}

/* Starts a connection to 127.0.0.1:port; blocking connects return once
 * established, nonblocking ones usually with EINPROGRESS. */
static int kernel_connect(uint16_t port, bool nonblocking)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        die("kernel: socket: %s", strerror(errno));
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0 &&
        !(nonblocking && errno == EINPROGRESS))
        die("kernel: connect to 127.0.0.1:%u: %s", port, strerror(errno));
    return fd;
}

/* Opens one blocking loopback connection and returns both ends, with
 * TCP_NODELAY on both. */
static void kernel_connection_open(uint16_t port, int *client, int *server)
{
    int listener = kernel_listener_on(port, 4, false);
    *client = kernel_connect(port, false);
    *server = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (*server < 0)
        die("kernel: accept: %s", strerror(errno));
    close(listener);
    int one = 1;
    if (setsockopt(*client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        setsockopt(*server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        die("kernel: TCP_NODELAY: %s", strerror(errno));
}

struct kernel_sender {
    int fd;
    uint64_t bytes;
};

/* Sender thread of the kernel throughput run: bytes of the pattern in
 * write_size writes. */
static void *kernel_sender_main(void *argument)
{
    struct kernel_sender *sender = argument;
    for (uint64_t sent = 0; sent < sender->bytes;) {
        size_t length = sender->bytes - sent < write_size ? (size_t)(sender->bytes - sent)
                                                         : write_size;
        ssize_t n = send(sender->fd, pattern_at(sent), length, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("kernel throughput: send: %s", strerror(errno));
        sent += (uint64_t)n;
    }
    return NULL;
}

/* Workload 1, kernel: a sender thread writes, this thread reads and
 * checks.  Returns MB/s. */
static double kernel_throughput(uint64_t bytes)
{
    int client, server;
    kernel_connection_open(STREAM_PORT, &client, &server);
    uint8_t *buffer = malloc(write_size);
    if (!buffer)
        die("out of memory");
    struct kernel_sender sender = {.fd = client, .bytes = bytes};
    pthread_t thread;
    double started = seconds_now();
    if (pthread_create(&thread, NULL, kernel_sender_main, &sender) != 0)
        die("cannot start a thread");
    for (uint64_t got = 0; got < bytes;) {
        ssize_t n = recv(server, buffer, write_size, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("kernel throughput: recv after %llu bytes: %s", (unsigned long long)got,
                n == 0 ? "end of stream" : strerror(errno));
        if (memcmp(buffer, pattern_at(got), (size_t)n) != 0)
            die("kernel throughput: data not intact at byte %llu", (unsigned long long)got);
        got += (uint64_t)n;
    }
    double seconds = seconds_now() - started;
    pthread_join(thread, NULL);
    free(buffer);
    close(client);
    close(server);
    return (double)bytes / 1e6 / seconds;
}

/* Echo thread of the kernel latency run: answers each byte until EOF. */
static void *kernel_echo_main(void *argument)
{
    int fd = *(int *)argument;
    uint8_t byte;
    for (;;) {
        ssize_t n = recv(fd, &byte, 1, 0);
        if (n == 0)
            return NULL;
        if (n != 1 || send(fd, "r", 1, MSG_NOSIGNAL) != 1)
            die("kernel latency: echo: %s", strerror(errno));
    }
}

/* Workload 3, kernel: 1-byte ping-pong with an echo thread; stores the
 * mean and p99 round trip in microseconds. */
static void kernel_latency(unsigned round_trips, double *mean_us, double *p99_us)
{
    int client, server;
    kernel_connection_open(STREAM_PORT, &client, &server);
    uint64_t *samples = malloc(sizeof(*samples) * round_trips);
    if (!samples)
        die("out of memory");
    pthread_t thread;
    if (pthread_create(&thread, NULL, kernel_echo_main, &server) != 0)
        die("cannot start a thread");
    for (unsigned i = 0; i < LATENCY_WARMUP + round_trips; i++) {
        uint64_t started = usock_monotonic_ns(NULL);
        uint8_t byte;
        if (send(client, "q", 1, MSG_NOSIGNAL) != 1 || recv(client, &byte, 1, 0) != 1)
            die("kernel latency: %s", strerror(errno));
        if (i >= LATENCY_WARMUP)
            samples[i - LATENCY_WARMUP] = usock_monotonic_ns(NULL) - started;
    }
    shutdown(client, SHUT_WR);
    pthread_join(thread, NULL);
    samples_summarize(samples, round_trips, mean_us, p99_us);
    free(samples);
    close(client);
    close(server);
}

/* The soft descriptor limit, raised to the hard one. */
static size_t kernel_fd_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
        die("getrlimit: %s", strerror(errno));
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
        getrlimit(RLIMIT_NOFILE, &limit);
    }
    return limit.rlim_cur == RLIM_INFINITY ? 1u << 20 : (size_t)limit.rlim_cur;
}

enum kernel_connection_state { KERNEL_FREE, KERNEL_LISTENER, KERNEL_CONNECTING,
                               KERNEL_WAIT_REPLY, KERNEL_WAIT_REQUEST, KERNEL_WAIT_EOF };

struct kernel_server {
    int listeners[CONNECT_PORTS];
    unsigned total;           /* connections to serve before returning */
    size_t fd_limit;
};

/* Serves one readable server connection: answers the request, closes at
 * the client's FIN.  Returns true when it closed. */
static bool kernel_server_step(int fd, uint8_t *state)
{
    for (;;) {
        uint8_t byte;
        ssize_t n = recv(fd, &byte, 1, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return false;
        if (n == 1 && state[fd] == KERNEL_WAIT_REQUEST) {
            if (send(fd, "r", 1, MSG_NOSIGNAL) != 1)
                die("kernel connection rate: reply: %s", strerror(errno));
            state[fd] = KERNEL_WAIT_EOF;
        } else if (n == 0 && state[fd] == KERNEL_WAIT_EOF) {
            state[fd] = KERNEL_FREE;
            close(fd);
            return true;
        } else {
            die("kernel connection rate: server read %zd: %s", n,
                n < 0 ? strerror(errno) : "unexpected");
        }
    }
}

/* Server thread of the kernel connection-rate run (epoll): accepts on
 * every listener, answers each request, closes at each FIN, and returns
 * once total connections have closed. */
static void *kernel_server_main(void *argument)
{
    struct kernel_server *server = argument;
    uint8_t *state = calloc(server->fd_limit, 1);
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    if (!state || epoll < 0)
        die("kernel connection rate: server setup: %s", strerror(errno));
    for (int i = 0; i < CONNECT_PORTS; i++) {
        struct epoll_event event = {.events = EPOLLIN, .data.fd = server->listeners[i]};
        state[server->listeners[i]] = KERNEL_LISTENER;
        if (epoll_ctl(epoll, EPOLL_CTL_ADD, server->listeners[i], &event) != 0)
            die("kernel: epoll_ctl: %s", strerror(errno));
    }
    unsigned closed = 0;
    double last = seconds_now();
    struct epoll_event events[256];
    while (closed < server->total) {
        int count = epoll_wait(epoll, events, 256, 100);
        if (count < 0 && errno != EINTR)
            die("kernel: epoll_wait: %s", strerror(errno));
        bool progressed = false;
        for (int i = 0; i < count; i++) {
            int fd = events[i].data.fd;
            if (state[fd] != KERNEL_LISTENER) {
                if (kernel_server_step(fd, state)) {
                    closed++;
                    progressed = true;
                }
                continue;
            }
            int connection;
            while ((connection = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                if ((size_t)connection >= server->fd_limit)
                    die("kernel: descriptor %d past the limit", connection);
                state[connection] = KERNEL_WAIT_REQUEST;
                struct epoll_event event = {.events = EPOLLIN, .data.fd = connection};
                if (epoll_ctl(epoll, EPOLL_CTL_ADD, connection, &event) != 0)
                    die("kernel: epoll_ctl: %s", strerror(errno));
                progressed = true;
            }
            if (errno != EAGAIN && errno != EINTR)
                die("kernel connection rate: accept: %s", strerror(errno));
        }
        stall_check(&last, progressed, "kernel connection rate (server)");
    }
    close(epoll);
    free(state);
    return NULL;
}

/* Moves one client connection on from an epoll event: sends the request
 * once connected, reads the reply and closes.  Returns true when it
 * completed. */
static bool kernel_client_step(int epoll, int fd, uint8_t *state)
{
    if (state[fd] == KERNEL_CONNECTING) {
        int error = 0;
        socklen_t length = sizeof(error);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0)
            die("kernel connection rate: connect: %s", strerror(error ? error : errno));
        if (send(fd, "q", 1, MSG_NOSIGNAL) != 1)
            die("kernel connection rate: request: %s", strerror(errno));
        state[fd] = KERNEL_WAIT_REPLY;
        struct epoll_event event = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event) != 0)
            die("kernel: epoll_ctl: %s", strerror(errno));
        return false;
    }
    uint8_t byte;
    ssize_t n = recv(fd, &byte, 1, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return false;
    if (n != 1)
        die("kernel connection rate: no reply: %s", n == 0 ? "end of stream" : strerror(errno));
    state[fd] = KERNEL_FREE;
    close(fd);
    return true;
}

/* A Tcp field of our namespace's /proc/net/snmp (OutSegs, RetransSegs,
 * OutRsts ...); 0 when there is none. */
static uint64_t kernel_tcp_counter(const char *field)
{
    FILE *file = fopen("/proc/net/snmp", "r");
    char names[1024], values[1024];
    uint64_t value = 0;
    if (!file)
        return 0;
    while (fgets(names, sizeof(names), file)) {
        if (strncmp(names, "Tcp:", 4) != 0 || !fgets(values, sizeof(values), file))
            continue;
        char *name_state, *value_state;
        char *name = strtok_r(names, " \n", &name_state);
        char *number = strtok_r(values, " \n", &value_state);
        while (name && number) {
            if (strcmp(name, field) == 0)
                value = strtoull(number, NULL, 10);
            name = strtok_r(NULL, " \n", &name_state);
            number = strtok_r(NULL, " \n", &value_state);
        }
        break;
    }
    fclose(file);
    return value;
}

/* Workload 2, kernel: as usock_connection_rate, the client on this thread
 * and the server on another, both on epoll.  Returns connections per
 * second (until the server has closed its last connection). */
static double kernel_connection_rate(unsigned total, unsigned in_flight, struct report *report)
{
    uint64_t segments = kernel_tcp_counter("OutSegs");
    uint64_t retransmitted = kernel_tcp_counter("RetransSegs");
    uint64_t resets = kernel_tcp_counter("OutRsts");
    struct kernel_server server = {.total = total, .fd_limit = kernel_fd_limit()};
    for (int i = 0; i < CONNECT_PORTS; i++)
        server.listeners[i] = kernel_listener_on((uint16_t)(CONNECT_PORT_FIRST + i), 4096, true);
    uint8_t *state = calloc(server.fd_limit, 1);
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    if (!state || epoll < 0)
        die("kernel connection rate: setup: %s", strerror(errno));
    pthread_t thread;
    double started = seconds_now(), last = started;
    if (pthread_create(&thread, NULL, kernel_server_main, &server) != 0)
        die("cannot start a thread");
    unsigned issued = 0, completed = 0, active = 0;
    struct epoll_event events[256];
    while (completed < total) {
        while (active < in_flight && issued < total) {
            int fd = kernel_connect((uint16_t)(CONNECT_PORT_FIRST + issued % CONNECT_PORTS), true);
            if ((size_t)fd >= server.fd_limit)
                die("kernel: descriptor %d past the limit", fd);
            state[fd] = KERNEL_CONNECTING;
            struct epoll_event event = {.events = EPOLLOUT, .data.fd = fd};
            if (epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) != 0)
                die("kernel: epoll_ctl: %s", strerror(errno));
            active++;
            issued++;
        }
        int count = epoll_wait(epoll, events, 256, 100);
        if (count < 0 && errno != EINTR)
            die("kernel: epoll_wait: %s", strerror(errno));
        bool progressed = false;
        for (int i = 0; i < count; i++)
            if (kernel_client_step(epoll, events[i].data.fd, state)) {
                active--;
                completed++;
                progressed = true;
            }
        stall_check(&last, progressed, "kernel connection rate (client)");
    }
    pthread_join(thread, NULL);
    double seconds = seconds_now() - started;
    close(epoll);
    free(state);
    for (int i = 0; i < CONNECT_PORTS; i++)
        close(server.listeners[i]);
    note(report, "kernel connection rate, %u in flight: %.2f segments per connection, %llu "
         "retransmitted, %llu RSTs (/proc/net/snmp of our namespace)", in_flight,
         (double)(kernel_tcp_counter("OutSegs") - segments) / total,
         (unsigned long long)(kernel_tcp_counter("RetransSegs") - retransmitted),
         (unsigned long long)(kernel_tcp_counter("OutRsts") - resets));
    return total / seconds;
}

/* A /proc/meminfo field in bytes (it is given in kB). */
static int64_t meminfo_bytes(const char *field)
{
    FILE *file = fopen("/proc/meminfo", "r");
    char line[256];
    size_t length = strlen(field);
    int64_t value = -1;
    if (!file)
        die("cannot open /proc/meminfo: %s", strerror(errno));
    while (fgets(line, sizeof(line), file))
        if (strncmp(line, field, length) == 0 && line[length] == ':') {
            value = strtoll(line + length + 1, NULL, 10) * 1024;
            break;
        }
    fclose(file);
    if (value < 0)
        die("no %s in /proc/meminfo", field);
    return value;
}

/* TCP socket buffer memory in bytes: the "mem" pages of the TCP line of
 * /proc/net/sockstat (machine-wide); 0 when unreadable. */
static int64_t sockstat_tcp_bytes(void)
{
    FILE *file = fopen("/proc/net/sockstat", "r");
    char line[256];
    int64_t pages = 0;
    if (!file)
        return 0;
    while (fgets(line, sizeof(line), file)) {
        const char *mem = strstr(line, " mem ");
        if (strncmp(line, "TCP:", 4) == 0 && mem)
            pages = strtoll(mem + 5, NULL, 10);
    }
    fclose(file);
    return pages * sysconf(_SC_PAGESIZE);
}

/* Bytes in use in the slab caches a loopback TCP socket lives in (its
 * tcp_sock, socket inode, file and dentry), from /proc/slabinfo:
 * active objects times object size.  -1 when unreadable. */
static int64_t slabinfo_socket_bytes(void)
{
    static const char *const caches[] = {"TCP", "sock_inode_cache", "filp", "dentry"};
    FILE *file = fopen("/proc/slabinfo", "r");
    char line[512];
    int64_t total = 0;
    if (!file)
        return -1;
    while (fgets(line, sizeof(line), file)) {
        char name[64];
        long long active, objects, size;
        if (sscanf(line, "%63s %lld %lld %lld", name, &active, &objects, &size) != 4)
            continue;
        for (size_t i = 0; i < sizeof(caches) / sizeof(caches[0]); i++)
            if (strcmp(name, caches[i]) == 0)
                total += active * size;
    }
    fclose(file);
    return total;
}

/* Server child of the kernel memory run: accepts pairs connections on
 * listener, reports its RSS growth on report_fd, holds the connections
 * until done_fd is readable (or closed), then exits. */
static void kernel_memory_child(int listener, unsigned pairs, int report_fd, int done_fd)
{
    int *fds = malloc(sizeof(int) * pairs);
    if (!fds)
        _exit(1);
    memset(fds, 0xff, sizeof(int) * pairs);
    int64_t before = process_rss_bytes();
    for (unsigned i = 0; i < pairs; i++) {
        fds[i] = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (fds[i] < 0) {
            fprintf(stderr, "bench_stack_bench: kernel memory: accept: %s\n", strerror(errno));
            _exit(1);
        }
    }
    int64_t growth = process_rss_bytes() - before;
    if (write(report_fd, &growth, sizeof(growth)) != (ssize_t)sizeof(growth))
        _exit(1);
    char byte;
    while (read(done_fd, &byte, 1) < 0 && errno == EINTR)
        continue;
    _exit(0);
}

/* Workload 4, kernel: pairs idle loopback connections, the client ends in
 * this process and the server ends in a child.  Returns bytes per
 * connection (ΔSlab + ΔTCP socket memory + ΔRSS of both processes, over
 * 2 * pairs), or -1 when it could not run. */
static double kernel_memory(unsigned pairs, struct report *report)
{
    size_t limit = kernel_fd_limit();
    if (limit < (size_t)pairs + 64) {
        note(report, "kernel memory: the descriptor limit (%zu) allows only %zu pairs",
             limit, limit - 64);
        pairs = (unsigned)(limit - 64);
    }
    /* Our namespace's accept queue limit, so the child may fall behind. */
    char backlog[32];
    snprintf(backlog, sizeof(backlog), "%u", pairs > 4096 ? pairs : 4096);
    kernel_sysctl_write("/proc/sys/net/core/somaxconn", backlog);
    int listener = kernel_listener_on(MEMORY_PORT, (int)(pairs > 4096 ? pairs : 4096), false);
    int *fds = malloc(sizeof(int) * pairs);
    int report_pipe[2], done_pipe[2];
    if (!fds || pipe2(report_pipe, O_CLOEXEC) != 0 || pipe2(done_pipe, O_CLOEXEC) != 0)
        die("kernel memory: setup: %s", strerror(errno));
    memset(fds, 0xff, sizeof(int) * pairs);
    fflush(NULL);
    pid_t parent = getpid(), child = fork();
    if (child < 0)
        die("fork: %s", strerror(errno));
    if (child == 0) {
        /* Never outlive a parent that died (it would block in accept). */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(1);
        close(report_pipe[0]);
        close(done_pipe[1]);
        kernel_memory_child(listener, pairs, report_pipe[1], done_pipe[0]);
    }
    close(report_pipe[1]);
    close(done_pipe[0]);
    close(listener);

    int64_t slab_before = meminfo_bytes("Slab"), socket_before = sockstat_tcp_bytes();
    int64_t caches_before = slabinfo_socket_bytes(), rss_before = process_rss_bytes();
    for (unsigned i = 0; i < pairs; i++)
        fds[i] = kernel_connect(MEMORY_PORT, false);
    int64_t child_growth;
    ssize_t n;
    while ((n = read(report_pipe[0], &child_growth, sizeof(child_growth))) < 0 && errno == EINTR)
        continue;
    if (n != (ssize_t)sizeof(child_growth))
        die("kernel memory: the server process failed");
    int64_t slab = meminfo_bytes("Slab") - slab_before;
    int64_t sockets = sockstat_tcp_bytes() - socket_before;
    int64_t caches = slabinfo_socket_bytes() - caches_before;
    int64_t rss = process_rss_bytes() - rss_before + child_growth;
    close(done_pipe[1]);
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        continue;
    for (unsigned i = 0; i < pairs; i++)
        close(fds[i]);
    free(fds);
    close(report_pipe[0]);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("kernel memory: the server process failed");

    double connections = 2.0 * pairs;
    note(report, "kernel memory over %u pairs: Slab %+.1f MB, TCP socket memory %+.1f MB, "
         "RSS of both processes %+.1f MB (the figure is their sum / %u connections)",
         pairs, (double)slab / 1e6, (double)sockets / 1e6, (double)rss / 1e6, 2 * pairs);
    if (caches >= 0)
        note(report, "kernel memory check: slabinfo TCP + sock_inode_cache + filp + dentry "
             "grew %.0f B per connection (Slab is machine-wide; other jobs add noise)",
             (double)caches / connections);
    return (double)(slab + sockets + rss) / connections;
}

/* ------------------------------------------------------------------ */
/* Report                                                              */
/* ------------------------------------------------------------------ */

/* The ratio of a figure, > 1 when usock is better; NAN when either side
 * is missing. */
static double figure_ratio(const struct figure *figure)
{
    if (figure->kernel < 0 || figure->usock <= 0)
        return NAN;
    return figure->lower_is_better ? figure->kernel / figure->usock
                                   : figure->usock / figure->kernel;
}

/* Prints a figure's value the way its unit reads best. */
static void format_value(char *out, size_t size, const struct figure *figure, double value)
{
    if (value < 0)
        snprintf(out, size, "-");
    else if (strcmp(figure->unit, "us") == 0)
        snprintf(out, size, "%.2f", value);
    else if (strcmp(figure->unit, "MB/s") == 0)
        snprintf(out, size, "%.1f", value);
    else
        snprintf(out, size, "%.0f", value);
}

/* Prints text as a JSON string. */
static void json_string(const char *text)
{
    putchar('"');
    for (const char *c = text; *c; c++) {
        if (*c == '"' || *c == '\\')
            printf("\\%c", *c);
        else if ((unsigned char)*c < 0x20)
            printf("\\u%04x", *c);
        else
            putchar(*c);
    }
    putchar('"');
}

static const char ratio_meaning[] =
    "ratio > 1 means usock is better: usock/kernel for throughput and connection rate, "
    "kernel/usock for latency and memory";

/* Prints the report as a table. */
static void report_print_table(const struct report *report, double seconds)
{
    printf("usock (two stacks, in-memory wire, one thread, event mode) against the Linux "
           "kernel (127.0.0.1, two threads)\n%s\n\n", ratio_meaning);
    printf("%-60s %12s %12s %8s\n", "workload", "usock", "kernel", "ratio");
    for (int i = 0; i < FIGURE_COUNT; i++) {
        const struct figure *figure = &report->figures[i];
        char name[96], usock[32], kernel[32], ratio[32];
        snprintf(name, sizeof(name), "%s (%s)", figure->workload, figure->unit);
        format_value(usock, sizeof(usock), figure, figure->usock);
        format_value(kernel, sizeof(kernel), figure, figure->kernel);
        double value = figure_ratio(figure);
        if (isnan(value))
            snprintf(ratio, sizeof(ratio), "-");
        else
            snprintf(ratio, sizeof(ratio), "%.2f", value);
        printf("%-60s %12s %12s %8s\n", name, usock, kernel, ratio);
    }
    printf("\nnotes:\n");
    for (unsigned i = 0; i < report->note_count; i++)
        printf(" - %s\n", report->notes[i]);
    printf(" - the run took %.1f s\n", seconds);
}

/* Prints the report as one JSON object. */
static void report_print_json(const struct report *report, double seconds)
{
    printf("{\"ratio_meaning\": ");
    json_string(ratio_meaning);
    printf(", \"seconds\": %.3f, \"workloads\": [", seconds);
    for (int i = 0; i < FIGURE_COUNT; i++) {
        const struct figure *figure = &report->figures[i];
        double ratio = figure_ratio(figure);
        printf("%s{\"key\": \"%s\", \"workload\": ", i ? ", " : "", figure->key);
        json_string(figure->workload);
        printf(", \"unit\": \"%s\", \"usock\": ", figure->unit);
        if (figure->usock < 0)
            printf("null");
        else
            printf("%.6g", figure->usock);
        printf(", \"kernel\": ");
        if (figure->kernel < 0)
            printf("null");
        else
            printf("%.6g", figure->kernel);
        printf(", \"ratio\": ");
        if (isnan(ratio))
            printf("null");
        else
            printf("%.4f", ratio);
        printf(", \"ratio_is\": \"%s\"}", figure->lower_is_better ? "kernel/usock"
                                                                : "usock/kernel");
    }
    printf("], \"notes\": [");
    for (unsigned i = 0; i < report->note_count; i++) {
        printf("%s", i ? ", " : "");
        json_string(report->notes[i]);
    }
    printf("]}\n");
}

/* Prints the usage and exits 2. */
static void usage(void)
{
    fprintf(stderr,
            "usage: bench_stack_bench [--quick] [--megabytes N] [--connections N] "
            "[--in-flight N]\n"
            "                         [--round-trips N] [--pairs N] [--time-wait-ms N] "
            "[--no-kernel] [--json]\n"
            "                         [--write-size N (1..262144, default 65536)] "
            "[--throughput-only]\n"
            "  --quick  a run of a few seconds: 100 MB, 2000 connections, 10000 round "
            "trips, 2000 pairs\n");
    exit(2);
}

/* Reads the count (1..10^8) that follows option argv[*i] and steps *i past
 * it; a missing or bad count is a usage error. */
static uint64_t option_count(int argc, char **argv, int *i)
{
    char *end = NULL;
    unsigned long long value = *i + 1 < argc ? strtoull(argv[*i + 1], &end, 10) : 0;
    if (!end || *end != '\0' || value == 0 || value > 100000000ULL) {
        fprintf(stderr, "bench_stack_bench: %s wants a count from 1\n", argv[*i]);
        usage();
    }
    (*i)++;
    return value;
}

/* Parses the options, enters the namespace, runs the workloads (memory
 * first) and prints the report. */

int main(int argc, char **argv)
{
    struct options options = {.megabytes = 1000, .connections = 20000, .in_flight = 100,
                              .round_trips = 100000, .pairs = 10000, .time_wait_ms = 20,
                              .kernel = true};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            options.megabytes = 100;
            options.connections = 2000;
            options.round_trips = 10000;
            options.pairs = 2000;
        } else if (strcmp(argv[i], "--megabytes") == 0) {
            options.megabytes = option_count(argc, argv, &i);
        } else if (strcmp(argv[i], "--connections") == 0) {
            options.connections = (unsigned)option_count(argc, argv, &i);
        } else if (strcmp(argv[i], "--in-flight") == 0) {
            options.in_flight = (unsigned)option_count(argc, argv, &i);
        } else if (strcmp(argv[i], "--round-trips") == 0) {
            options.round_trips = (unsigned)option_count(argc, argv, &i);
        } else if (strcmp(argv[i], "--pairs") == 0) {
            options.pairs = (unsigned)option_count(argc, argv, &i);
        } else if (strcmp(argv[i], "--time-wait-ms") == 0) {
            options.time_wait_ms = option_count(argc, argv, &i);
        } else if (strcmp(argv[i], "--no-kernel") == 0) {
            options.kernel = false;
        } else if (strcmp(argv[i], "--throughput-only") == 0) {
            options.throughput_only = true;
        } else if (strcmp(argv[i], "--write-size") == 0) {
            uint64_t size = option_count(argc, argv, &i);
            if (size == 0 || size > WRITE_SIZE_MAX)
                usage();
            write_size = (size_t)size;
        } else if (strcmp(argv[i], "--json") == 0) {
            options.json = true;
        } else {
            usage();
        }
    }
    if (options.pairs > 25000) {
        fprintf(stderr, "bench_stack_bench: --pairs: at most 25000 (usock's ephemeral ports "
                        "are 32768..60999)\n");
        usage();
    }
    signal(SIGPIPE, SIG_IGN);
    pattern_init();
    double started = seconds_now();

    struct report report = {
        .figures = {
            [FIGURE_THROUGHPUT] = {.key = "throughput", .unit = "MB/s"},
            [FIGURE_CONNECT_SEQUENTIAL] = {.key = "connections_sequential", .unit = "conn/s"},
            [FIGURE_CONNECT_PARALLEL] = {.key = "connections_in_flight", .unit = "conn/s"},
            [FIGURE_RTT_MEAN] = {.key = "round_trip_mean", .unit = "us",
                                 .lower_is_better = true},
            [FIGURE_RTT_P99] = {.key = "round_trip_p99", .unit = "us",
                                .lower_is_better = true},
            [FIGURE_MEMORY] = {.key = "memory_per_connection", .unit = "B",
                               .lower_is_better = true},
            [FIGURE_CPU] = {.key = "bytes_per_cpu_second", .unit = "MB/CPU-s"},
        },
    };
    struct figure *figures = report.figures;
    snprintf(figures[FIGURE_THROUGHPUT].workload, sizeof(figures[0].workload),
             "TCP throughput, 1 flow, %llu MB, %zu B writes", (unsigned long long)options.megabytes,
             write_size);
    snprintf(figures[FIGURE_CONNECT_SEQUENTIAL].workload, sizeof(figures[0].workload),
             "connections, 1 at a time, %u", options.connections);
    snprintf(figures[FIGURE_CONNECT_PARALLEL].workload, sizeof(figures[0].workload),
             "connections, %u in flight, %u", options.in_flight, options.connections);
    snprintf(figures[FIGURE_RTT_MEAN].workload, sizeof(figures[0].workload),
             "1-byte round trip, mean of %u", options.round_trips);
    snprintf(figures[FIGURE_RTT_P99].workload, sizeof(figures[0].workload),
             "1-byte round trip, p99");
    snprintf(figures[FIGURE_MEMORY].workload, sizeof(figures[0].workload),
             "memory per idle connection, %u pairs", options.pairs);
    snprintf(figures[FIGURE_CPU].workload, sizeof(figures[0].workload),
             "throughput run: bytes moved per CPU-second");
    for (int i = 0; i < FIGURE_COUNT; i++) {
        figures[i].usock = -1;
        figures[i].kernel = -1;
    }

    /* The namespace first: the kernel threads made later inherit it. */
    bool kernel = false;
    if (options.kernel) {
        char why[160];
        kernel = kernel_namespace_enter(why, sizeof(why));
        if (!kernel)
            note(&report, "%s", why);
    } else {
        note(&report, "--no-kernel: kernel figures skipped");
    }
    if (kernel) {
        /* Our namespace's ephemeral range, widened: each client port then
         * serves 4 listener ports x 64512 ports of 4-tuples while its
         * TIME_WAIT (60 s) lasts; tcp_tw_reuse is left as it is. */
        bool widened = kernel_sysctl_write("/proc/sys/net/ipv4/ip_local_port_range",
                                           "1024 65535");
        char range[64], reuse[16];
        proc_read_line("/proc/sys/net/ipv4/ip_local_port_range", range, sizeof(range));
        proc_read_line("/proc/sys/net/ipv4/tcp_tw_reuse", reuse, sizeof(reuse));
        note(&report, "kernel: own network namespace, lo up, 127.0.0.1 only; loopback MTU "
             "65536 (usock's wire: 1500)");
        note(&report, "kernel connection rate: both ends close in order (FIN) as usock's do; "
             "the client closes first and keeps TIME_WAIT (60 s): %s ephemeral range %s, "
             "%d listener ports, tcp_tw_reuse=%s", widened ? "widened the namespace's" : "kept the",
             range, CONNECT_PORTS, reuse);
        note(&report, "usock: one thread drives both stacks (no wakeups); kernel: client and "
             "server threads, so each round trip wakes a thread twice");
    }
    note(&report, "usock connection rate: the client closes first; usock's TIME_WAIT set to "
         "%llu ms (tcp_time_wait_ns) so its ephemeral ports (32768-60999) and "
         "TIME_WAIT table (4096) last; %d listener ports",
         (unsigned long long)options.time_wait_ms, CONNECT_PORTS);

    /* Memory first: nothing freed or in TIME_WAIT yet to blur the deltas. */
    if (!options.throughput_only) {
        figures[FIGURE_MEMORY].usock = usock_memory(options.pairs, &report);
        if (kernel)
            figures[FIGURE_MEMORY].kernel = kernel_memory(options.pairs, &report);
    }

    uint64_t bytes = options.megabytes * 1000000ULL;
    double cpu_seconds = 0;
    figures[FIGURE_THROUGHPUT].usock = usock_throughput(bytes, &report, &cpu_seconds);
    if (cpu_seconds > 0)
        figures[FIGURE_CPU].usock = (double)bytes / 1e6 / cpu_seconds;
    note(&report, "CPU cost: usock's throughput run used %.3f CPU-seconds of one thread "
         "(both stacks and both programs); the kernel's CPU is spent in two threads and in "
         "softirqs no process is charged for, so no kernel figure is printed", cpu_seconds);
    if (kernel)
        figures[FIGURE_THROUGHPUT].kernel = kernel_throughput(bytes);
    if (options.throughput_only)
        goto print;

    uint64_t time_wait_ns = options.time_wait_ms * 1000000ULL;
    figures[FIGURE_CONNECT_SEQUENTIAL].usock =
        usock_connection_rate(options.connections, 1, time_wait_ns, &report);
    figures[FIGURE_CONNECT_PARALLEL].usock =
        usock_connection_rate(options.connections, options.in_flight, time_wait_ns, &report);
    if (kernel) {
        figures[FIGURE_CONNECT_SEQUENTIAL].kernel =
            kernel_connection_rate(options.connections, 1, &report);
        figures[FIGURE_CONNECT_PARALLEL].kernel =
            kernel_connection_rate(options.connections, options.in_flight, &report);
    }

    usock_latency(options.round_trips, &figures[FIGURE_RTT_MEAN].usock,
                  &figures[FIGURE_RTT_P99].usock);
    if (kernel)
        kernel_latency(options.round_trips, &figures[FIGURE_RTT_MEAN].kernel,
                       &figures[FIGURE_RTT_P99].kernel);

print:;
    char load[64];
    proc_read_line("/proc/loadavg", load, sizeof(load));
    note(&report, "this machine: %ld CPUs, load average at the end %.14s; other jobs share "
         "it, so the figures are noisy", sysconf(_SC_NPROCESSORS_ONLN), load);
    double seconds = seconds_now() - started;
    if (options.json)
        report_print_json(&report, seconds);
    else
        report_print_table(&report, seconds);
    return 0;
}
