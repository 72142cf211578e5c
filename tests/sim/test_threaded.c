/*
 * test_threaded.c - threaded mode: each stack runs on its own thread and the
 * socket calls block like POSIX calls.  Two stacks on the in-memory wire;
 * blocking receive woken by a datagram, SO_RCVTIMEO expiring with EAGAIN,
 * O_NONBLOCK and MSG_DONTWAIT, a blocking usock_poll woken by input, and a
 * close from another thread waking a blocked reader with EBADF.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "usock.h"

struct pair {
    struct usock_stack *a, *b;
};

static struct usock_stack *make_stack(struct usock_link *link, const char *address)
{
    struct usock_stack_config config;
    usock_stack_config_init(&config);
    config.link = link;
    inet_pton(AF_INET, address, &config.address);
    config.prefix_length = 24;
    struct usock_stack *stack = usock_stack_new(&config);
    CHECK(stack != NULL);
    CHECK_EQ(usock_stack_start(stack), 0);
    return stack;
}

static void pair_init(struct pair *pair)
{
    struct usock_link *a, *b;
    CHECK_EQ(usock_link_mem_pair(&a, &b), 0);
    pair->a = make_stack(a, "198.18.0.1");
    pair->b = make_stack(b, "198.18.0.2");
}

static void pair_free(struct pair *pair)
{
    usock_stack_free(pair->a);
    usock_stack_free(pair->b);
}

static struct sockaddr_in address_of(const char *text, uint16_t port)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, text, &address.sin_addr);
    return address;
}

static int bound_socket(struct usock_stack *stack, const char *address, uint16_t port)
{
    int fd = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in local = address_of(address, port);
    CHECK_EQ(usock_bind(stack, fd, (struct sockaddr *)&local, sizeof(local)), 0);
    return fd;
}

static uint64_t elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)((now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000);
}

struct delayed_send {
    struct usock_stack *stack;
    int fd;
    struct sockaddr_in to;
};

static void *send_after_delay(void *argument)
{
    struct delayed_send *send = argument;
    usleep(100000);
    CHECK_EQ(usock_sendto(send->stack, send->fd, "late", 4, 0, (struct sockaddr *)&send->to,
                          sizeof(send->to)), 4);
    return NULL;
}

static void test_blocking_receive_is_woken_by_a_datagram(void)
{
    struct pair pair;
    pair_init(&pair);
    int server = bound_socket(pair.b, "0.0.0.0", 7);
    int client = bound_socket(pair.a, "0.0.0.0", 0);
    struct delayed_send send = {pair.a, client, address_of("198.18.0.2", 7)};
    pthread_t thread;
    pthread_create(&thread, NULL, send_after_delay, &send);
    char buffer[16];
    CHECK_EQ(usock_recv(pair.b, server, buffer, sizeof(buffer), 0), 4);
    CHECK(memcmp(buffer, "late", 4) == 0);
    pthread_join(thread, NULL);
    pair_free(&pair);
}

static void test_receive_timeout_expires_with_eagain(void)
{
    struct pair pair;
    pair_init(&pair);
    int server = bound_socket(pair.b, "0.0.0.0", 7);
    struct timeval timeout = {.tv_sec = 0, .tv_usec = 150000};
    CHECK_EQ(usock_setsockopt(pair.b, server, SOL_SOCKET, SO_RCVTIMEO, &timeout,
                              sizeof(timeout)), 0);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    char buffer[16];
    CHECK_ERRNO(usock_recv(pair.b, server, buffer, sizeof(buffer), 0), EAGAIN);
    uint64_t waited = elapsed_ms(&start);
    CHECK(waited >= 140);
    CHECK(waited < 5000);
    pair_free(&pair);
}

static void test_nonblocking_and_dontwait_do_not_wait(void)
{
    struct pair pair;
    pair_init(&pair);
    int server = bound_socket(pair.b, "0.0.0.0", 7);
    char buffer[16];
    CHECK_ERRNO(usock_recv(pair.b, server, buffer, sizeof(buffer), MSG_DONTWAIT), EAGAIN);
    CHECK_EQ(usock_fcntl(pair.b, server, F_SETFL, O_NONBLOCK), 0);
    CHECK(usock_fcntl(pair.b, server, F_GETFL, 0) & O_NONBLOCK);
    CHECK_ERRNO(usock_recv(pair.b, server, buffer, sizeof(buffer), 0), EAGAIN);
    pair_free(&pair);
}

static void test_blocking_poll_is_woken_by_input(void)
{
    struct pair pair;
    pair_init(&pair);
    int server = bound_socket(pair.b, "0.0.0.0", 7);
    int client = bound_socket(pair.a, "0.0.0.0", 0);
    struct pollfd entry = {.fd = server, .events = POLLIN};
    CHECK_EQ(usock_poll(pair.b, &entry, 1, 50), 0);
    struct delayed_send send = {pair.a, client, address_of("198.18.0.2", 7)};
    pthread_t thread;
    pthread_create(&thread, NULL, send_after_delay, &send);
    CHECK_EQ(usock_poll(pair.b, &entry, 1, 5000), 1);
    CHECK(entry.revents & POLLIN);
    int queued = 0;
    CHECK_EQ(usock_ioctl(pair.b, server, FIONREAD, &queued), 0);
    CHECK_EQ(queued, 4);
    pthread_join(thread, NULL);
    pair_free(&pair);
}

struct blocked_reader {
    struct usock_stack *stack;
    int fd;
    int result;
    int error;
};

static void *read_until_closed(void *argument)
{
    struct blocked_reader *reader = argument;
    char buffer[16];
    reader->result = (int)usock_recv(reader->stack, reader->fd, buffer, sizeof(buffer), 0);
    reader->error = errno;
    return NULL;
}

static void test_close_wakes_a_blocked_reader_with_ebadf(void)
{
    struct pair pair;
    pair_init(&pair);
    int server = bound_socket(pair.b, "0.0.0.0", 7);
    struct blocked_reader reader = {pair.b, server, 0, 0};
    pthread_t thread;
    pthread_create(&thread, NULL, read_until_closed, &reader);
    usleep(100000);
    CHECK_EQ(usock_close(pair.b, server), 0);
    pthread_join(thread, NULL);
    CHECK_EQ(reader.result, -1);
    CHECK_EQ(reader.error, EBADF);
    char buffer[4];
    CHECK_ERRNO(usock_recv(pair.b, server, buffer, sizeof(buffer), 0), EBADF);
    pair_free(&pair);
}

static void test_many_datagrams_cross_between_threads(void)
{
    struct pair pair;
    pair_init(&pair);
    int server = bound_socket(pair.b, "0.0.0.0", 7);
    int client = bound_socket(pair.a, "0.0.0.0", 0);
    struct sockaddr_in to = address_of("198.18.0.2", 7);
    int received = 0;
    for (int i = 0; i < 1000; i++) {
        char message[32];
        int length = snprintf(message, sizeof(message), "datagram %d", i);
        CHECK_EQ(usock_sendto(pair.a, client, message, (size_t)length, 0, (struct sockaddr *)&to,
                              sizeof(to)), length);
        char buffer[32];
        CHECK_EQ(usock_recv(pair.b, server, buffer, sizeof(buffer), 0), length);
        CHECK(memcmp(buffer, message, (size_t)length) == 0);
        received++;
    }
    CHECK_EQ(received, 1000);
    pair_free(&pair);
}


struct tcp_server {
    struct usock_stack *stack;
    int listener;
    size_t echoed;
};

/* Accepts one connection and echoes it until EOF with blocking calls. */
static void *tcp_echo_once(void *argument)
{
    struct tcp_server *server = argument;
    int fd = usock_accept(server->stack, server->listener, NULL, NULL);
    CHECK(fd >= 0);
    static char buffer[65536];
    for (;;) {
        ssize_t n = usock_recv(server->stack, fd, buffer, sizeof(buffer), 0);
        CHECK(n >= 0);
        if (n == 0)
            break;
        CHECK_EQ(usock_send(server->stack, fd, buffer, (size_t)n, 0), n);
        server->echoed += (size_t)n;
    }
    CHECK_EQ(usock_close(server->stack, fd), 0);
    return NULL;
}

struct tcp_reader {
    struct usock_stack *stack;
    int fd;
    size_t expected;
    size_t got;
};

static void *read_all(void *argument)
{
    struct tcp_reader *reader = argument;
    static char buffer[65536];
    while (reader->got < reader->expected) {
        ssize_t n = usock_recv(reader->stack, reader->fd, buffer, sizeof(buffer), 0);
        CHECK(n > 0);
        for (ssize_t i = 0; i < n; i++)
            CHECK_EQ((uint8_t)buffer[i], (uint8_t)((reader->got + (size_t)i) % 251));
        reader->got += (size_t)n;
    }
    return NULL;
}

static void test_blocking_tcp_connect_accept_and_echo(void)
{
    struct pair pair;
    pair_init(&pair);
    struct tcp_server server = {.stack = pair.b};
    server.listener = usock_socket(pair.b, AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in local = address_of("0.0.0.0", 7);
    CHECK_EQ(usock_bind(pair.b, server.listener, (struct sockaddr *)&local, sizeof(local)), 0);
    CHECK_EQ(usock_listen(pair.b, server.listener, 8), 0);
    pthread_t server_thread;
    pthread_create(&server_thread, NULL, tcp_echo_once, &server);

    int client = usock_socket(pair.a, AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = address_of("198.18.0.2", 7);
    CHECK_EQ(usock_connect(pair.a, client, (struct sockaddr *)&to, sizeof(to)), 0);
    size_t total = 8 << 20;
    struct tcp_reader reader = {pair.a, client, total, 0};
    pthread_t reader_thread;
    pthread_create(&reader_thread, NULL, read_all, &reader);
    static uint8_t data[1 << 20];
    for (size_t sent = 0; sent < total; sent += sizeof(data)) {
        for (size_t i = 0; i < sizeof(data); i++)
            data[i] = (uint8_t)((sent + i) % 251);
        /* A blocking send on a stream socket writes everything. */
        CHECK_EQ(usock_send(pair.a, client, data, sizeof(data), 0), (ssize_t)sizeof(data));
    }
    pthread_join(reader_thread, NULL);
    CHECK_EQ(reader.got, total);
    CHECK_EQ(usock_shutdown(pair.a, client, SHUT_WR), 0);
    pthread_join(server_thread, NULL);
    CHECK_EQ(server.echoed, total);
    char byte;
    CHECK_EQ(usock_recv(pair.a, client, &byte, 1, 0), 0);
    CHECK_EQ(usock_close(pair.a, client), 0);
    CHECK_EQ(usock_close(pair.b, server.listener), 0);
    pair_free(&pair);
}

static void test_blocking_connect_to_closed_port_is_refused(void)
{
    struct pair pair;
    pair_init(&pair);
    int client = usock_socket(pair.a, AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = address_of("198.18.0.2", 9);
    CHECK_ERRNO(usock_connect(pair.a, client, (struct sockaddr *)&to, sizeof(to)), ECONNREFUSED);
    pair_free(&pair);
}

static const struct check_test tests[] = {
    CHECK_TEST(test_blocking_receive_is_woken_by_a_datagram),
    CHECK_TEST(test_receive_timeout_expires_with_eagain),
    CHECK_TEST(test_nonblocking_and_dontwait_do_not_wait),
    CHECK_TEST(test_blocking_poll_is_woken_by_input),
    CHECK_TEST(test_close_wakes_a_blocked_reader_with_ebadf),
    CHECK_TEST(test_many_datagrams_cross_between_threads),
    CHECK_TEST(test_blocking_tcp_connect_accept_and_echo),
    CHECK_TEST(test_blocking_connect_to_closed_port_is_refused),
};

CHECK_MAIN(tests)
