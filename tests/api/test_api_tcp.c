/*
 * test_api_tcp.c - TCP socket API behaviour, written once and run twice:
 * against the kernel's sockets (the reference) and against usock's, with
 * the same assertions and the same errno values.
 *
 * The two socket-call tables, the two environments and the API_TEST macro
 * are in api_harness.h.  Both ends of every connection are in this process:
 * on the kernel side over the namespace's loopback (or its own interface
 * address 198.18.0.1), on the usock side over the stack's internal loopback.
 *
 * Where values legitimately differ (ephemeral port numbers, the MSS of a
 * loopback connection) the tests assert properties instead.  Sends use
 * MSG_NOSIGNAL wherever the kernel could raise SIGPIPE.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "api_harness.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* Linux's TCP defaults (include/net/tcp.h). */
#define LINUX_TCP_MSS_DEFAULT 536
#define LINUX_TCP_MIN_MSS 88
#define LINUX_TCP_KEEPIDLE 7200
#define LINUX_TCP_KEEPINTVL 75
#define LINUX_TCP_KEEPCNT 9
#define LINUX_MAX_TCP_KEEPIDLE 32767
#define LINUX_MAX_TCP_KEEPINTVL 32767
#define LINUX_MAX_TCP_KEEPCNT 127
/* net.ipv4.tcp_rmem / tcp_wmem defaults of a new namespace. */
#define LINUX_TCP_RMEM_DEFAULT 131072
#define LINUX_TCP_WMEM_DEFAULT 16384

static int tcp_socket(const struct api *api)
{
    int fd = api->socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    return fd;
}

static int tcp_bound(const struct api *api, const char *address, uint16_t port)
{
    int fd = tcp_socket(api);
    struct sockaddr_in local = address_of(address, port);
    CHECK_EQ(api->bind(fd, CSA(local), sizeof(local)), 0);
    return fd;
}

static int tcp_listener(const struct api *api, const char *address, uint16_t port, int backlog)
{
    int fd = tcp_bound(api, address, port);
    CHECK_EQ(api->listen(fd, backlog), 0);
    return fd;
}

/* A blocking connect that must succeed. */
static int tcp_connected(const struct api *api, const char *address, uint16_t port)
{
    int fd = tcp_socket(api);
    struct sockaddr_in peer = address_of(address, port);
    CHECK_EQ(api->connect(fd, CSA(peer), sizeof(peer)), 0);
    return fd;
}

static int accept_one(const struct api *api, int listener)
{
    int fd = api->accept(listener, NULL, NULL);
    CHECK(fd >= 0);
    return fd;
}

/* An established connection: client connected to address:port, server the
 * accepted end.  The listener is closed. */
struct pair {
    int client;
    int server;
};

static struct pair open_pair_on(const struct api *api, const char *address, uint16_t port)
{
    int listener = tcp_listener(api, address, port, 8);
    struct pair pair;
    pair.client = tcp_connected(api, address, port);
    pair.server = accept_one(api, listener);
    CHECK_EQ(api->close(listener), 0);
    return pair;
}

static struct pair open_pair(const struct api *api)
{
    return open_pair_on(api, "127.0.0.1", 5000);
}

static void close_pair(const struct api *api, struct pair pair)
{
    CHECK_EQ(api->close(pair.client), 0);
    CHECK_EQ(api->close(pair.server), 0);
}

/* Polls fd for events, up to timeout_ms; returns revents (0 on timeout). */
static short poll_one(const struct api *api, int fd, short events, int timeout_ms)
{
    struct pollfd entry = {.fd = fd, .events = events};
    int ready = api->poll(&entry, 1, timeout_ms);
    CHECK(ready == 0 || ready == 1);
    return ready ? entry.revents : 0;
}

/* Waits up to 2 s until poll reports something, then returns everything
 * it reports for the usual events. */
static short settled_revents(const struct api *api, int fd, short wait_for)
{
    CHECK(poll_one(api, fd, wait_for, 2000) != 0);
    return poll_one(api, fd, POLLIN | POLLOUT | POLLRDHUP | POLLPRI, 0);
}

/* Receives exactly length bytes (waiting up to 5 s) and compares them. */
static void expect_bytes(const struct api *api, int fd, const void *data, size_t length)
{
    char *buffer = malloc(length + 1);
    CHECK(buffer != NULL);
    size_t got = 0;
    while (got < length) {
        CHECK(poll_one(api, fd, POLLIN, 5000) & POLLIN);
        ssize_t n = api->recv(fd, buffer + got, length - got, MSG_DONTWAIT);
        CHECK(n > 0);
        got += (size_t)n;
    }
    CHECK(memcmp(buffer, data, length) == 0);
    free(buffer);
}

static void send_all(const struct api *api, int fd, const void *data, size_t length)
{
    CHECK_EQ(api->send(fd, data, length, MSG_NOSIGNAL), (ssize_t)length);
}

/* Waits up to 2 s for FIONREAD to reach at least want; returns it. */
static int wait_fionread(const struct api *api, int fd, int want)
{
    uint64_t give_up = monotonic_ms() + 2000;
    int available = -1;
    for (;;) {
        CHECK_EQ(api->ioctl(fd, FIONREAD, &available), 0);
        if (available >= want || monotonic_ms() > give_up)
            return available;
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

/* Writes with MSG_DONTWAIT until the send buffer stays full for 200 ms (the
 * peer is not reading); returns the number of bytes written. */
static size_t fill_send_buffer(const struct api *api, int fd)
{
    static char chunk[16384];
    size_t total = 0;
    for (;;) {
        ssize_t n = api->send(fd, chunk, sizeof(chunk), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        CHECK_EQ(n, -1);
        CHECK_EQ(errno, EAGAIN);
        if (poll_one(api, fd, POLLOUT, 200) == 0)
            return total;
    }
}

/* Reads until end of stream or count bytes; returns the number read. */
static size_t drain(const struct api *api, int fd, size_t count)
{
    static char buffer[65536];
    size_t total = 0;
    while (total < count) {
        size_t want = count - total < sizeof(buffer) ? count - total : sizeof(buffer);
        ssize_t n = api->recv(fd, buffer, want, 0);
        CHECK(n >= 0);
        if (n == 0)
            break;
        total += (size_t)n;
    }
    return total;
}

static void set_timeout(const struct api *api, int fd, int name, int milliseconds)
{
    struct timeval timeout = {.tv_sec = milliseconds / 1000,
                              .tv_usec = (milliseconds % 1000) * 1000};
    CHECK_EQ(api->setsockopt(fd, SOL_SOCKET, name, &timeout, sizeof(timeout)), 0);
}

static void set_nonblocking(const struct api *api, int fd)
{
    int flags = api->fcntl(fd, F_GETFL, 0);
    CHECK(flags >= 0);
    CHECK_EQ(api->fcntl(fd, F_SETFL, flags | O_NONBLOCK), 0);
}

static void sleep_ms(unsigned milliseconds)
{
    struct timespec pause = {.tv_sec = milliseconds / 1000,
                             .tv_nsec = (long)(milliseconds % 1000) * 1000 * 1000};
    nanosleep(&pause, NULL);
}

/* Something another thread does after a pause. */
struct later {
    const struct api *api;
    int fd;
    unsigned delay_ms;
    const char *data; /* send this, when not NULL */
    size_t length;
    bool connect;     /* connect fd to 127.0.0.1:port instead */
    uint16_t port;
    pthread_t thread;
};

static void *later_main(void *argument)
{
    struct later *job = argument;
    sleep_ms(job->delay_ms);
    if (job->connect) {
        struct sockaddr_in to = address_of("127.0.0.1", job->port);
        CHECK_EQ(job->api->connect(job->fd, CSA(to), sizeof(to)), 0);
    } else {
        CHECK_EQ(job->api->send(job->fd, job->data, job->length, MSG_NOSIGNAL),
                 (ssize_t)job->length);
    }
    return NULL;
}

static void later_start(struct later *job)
{
    CHECK_EQ(pthread_create(&job->thread, NULL, later_main, job), 0);
}

static void later_join(struct later *job)
{
    CHECK_EQ(pthread_join(job->thread, NULL), 0);
}

/* ------------------------------------------------------------------ */
/* Socket identity                                                     */
/* ------------------------------------------------------------------ */

API_TEST(so_type_protocol_and_acceptconn)
{
    int fd = tcp_socket(api);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_PROTOCOL), IPPROTO_TCP);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_DOMAIN), AF_INET);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ERROR), 0);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ACCEPTCONN), 0);
    int explicit_tcp = api->socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    CHECK(explicit_tcp >= 0);
    CHECK_EQ(get_int_option(api, explicit_tcp, SOL_SOCKET, SO_PROTOCOL), IPPROTO_TCP);
    CHECK_EQ(api->close(explicit_tcp), 0);
    CHECK_ERRNO(api->socket(AF_INET, SOCK_STREAM, IPPROTO_UDP), EPROTONOSUPPORT);

    struct sockaddr_in local = address_of("127.0.0.1", 5000);
    CHECK_EQ(api->bind(fd, CSA(local), sizeof(local)), 0);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ACCEPTCONN), 0);
    CHECK_EQ(api->listen(fd, 4), 0);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_TYPE), SOCK_STREAM);

    int client = tcp_connected(api, "127.0.0.1", 5000);
    int server = accept_one(api, fd);
    CHECK_EQ(get_int_option(api, client, SOL_SOCKET, SO_ACCEPTCONN), 0);
    CHECK_EQ(get_int_option(api, server, SOL_SOCKET, SO_ACCEPTCONN), 0);
    CHECK_EQ(get_int_option(api, server, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
    CHECK_EQ(get_int_option(api, server, SOL_SOCKET, SO_PROTOCOL), IPPROTO_TCP);
    int value = 1;
    CHECK_ERRNO(api->setsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, sizeof(value)),
                ENOPROTOOPT);
    CHECK_EQ(api->close(client), 0);
    CHECK_EQ(api->close(server), 0);
    CHECK_EQ(api->close(fd), 0);
}

/* ------------------------------------------------------------------ */
/* listen()                                                            */
/* ------------------------------------------------------------------ */

API_TEST(listen_on_unbound_socket_picks_an_ephemeral_port)
{
    int fd = tcp_socket(api);
    CHECK_EQ(api->listen(fd, 4), 0);
    struct sockaddr_in name = local_address(api, fd);
    CHECK_EQ(name.sin_addr.s_addr, htonl(INADDR_ANY));
    CHECK(is_ephemeral(ntohs(name.sin_port)));
    /* Reachable on every local address. */
    int client = tcp_connected(api, "127.0.0.1", ntohs(name.sin_port));
    int server = accept_one(api, fd);
    CHECK_EQ(api->close(client), 0);
    CHECK_EQ(api->close(server), 0);
    client = tcp_connected(api, "198.18.0.1", ntohs(name.sin_port));
    server = accept_one(api, fd);
    CHECK_EQ(local_address(api, server).sin_addr.s_addr, ip_of("198.18.0.1"));
    CHECK_EQ(api->close(client), 0);
    CHECK_EQ(api->close(server), 0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(listen_twice_is_allowed)
{
    int fd = tcp_listener(api, "127.0.0.1", 5000, 1);
    CHECK_EQ(api->listen(fd, 16), 0);
    CHECK_EQ(api->listen(fd, 0), 0);
    CHECK_EQ(api->listen(fd, -1), 0);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
    CHECK_EQ(ntohs(local_address(api, fd).sin_port), 5000);
    struct pair pair;
    pair.client = tcp_connected(api, "127.0.0.1", 5000);
    pair.server = accept_one(api, fd);
    close_pair(api, pair);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(listen_on_connected_socket_is_einval)
{
    struct pair pair = open_pair(api);
    CHECK_ERRNO(api->listen(pair.client, 4), EINVAL);
    CHECK_ERRNO(api->listen(pair.server, 4), EINVAL);
    CHECK_EQ(get_int_option(api, pair.client, SOL_SOCKET, SO_ACCEPTCONN), 0);
    /* Still connected. */
    send_all(api, pair.client, "ok", 2);
    expect_bytes(api, pair.server, "ok", 2);
    close_pair(api, pair);
}

/* ------------------------------------------------------------------ */
/* accept()                                                            */
/* ------------------------------------------------------------------ */

API_TEST(accept_on_non_listening_socket_is_einval)
{
    int fresh = tcp_socket(api);
    struct sockaddr_in from;
    socklen_t length = sizeof(from);
    CHECK_ERRNO(api->accept(fresh, SA(from), &length), EINVAL);
    int bound = tcp_bound(api, "127.0.0.1", 6000);
    CHECK_ERRNO(api->accept(bound, SA(from), &length), EINVAL);
    struct pair pair = open_pair(api);
    CHECK_ERRNO(api->accept(pair.client, SA(from), &length), EINVAL);
    CHECK_ERRNO(api->accept(pair.server, SA(from), &length), EINVAL);
    close_pair(api, pair);
    CHECK_EQ(api->close(fresh), 0);
    CHECK_EQ(api->close(bound), 0);
}

API_TEST(nonblocking_accept_is_eagain)
{
    int listener = tcp_listener(api, "127.0.0.1", 5000, 4);
    set_nonblocking(api, listener);
    struct sockaddr_in from;
    socklen_t length = sizeof(from);
    CHECK_ERRNO(api->accept(listener, SA(from), &length), EAGAIN);
    CHECK_EQ(poll_one(api, listener, POLLIN | POLLOUT, 0), 0);
    /* A pending connection makes it readable and accept succeed. */
    int client = tcp_connected(api, "127.0.0.1", 5000);
    CHECK_EQ(settled_revents(api, listener, POLLIN), POLLIN);
    int server = api->accept(listener, SA(from), &length);
    CHECK(server >= 0);
    /* The accepted socket does not inherit O_NONBLOCK. */
    CHECK_EQ(api->fcntl(server, F_GETFL, 0) & O_NONBLOCK, 0);
    CHECK_ERRNO(api->accept(listener, SA(from), &length), EAGAIN);
    CHECK_EQ(api->close(client), 0);
    CHECK_EQ(api->close(server), 0);
    CHECK_EQ(api->close(listener), 0);
}

API_TEST(blocking_accept_times_out_with_so_rcvtimeo)
{
    int listener = tcp_listener(api, "127.0.0.1", 5000, 4);
    set_timeout(api, listener, SO_RCVTIMEO, 200);
    uint64_t start = monotonic_ms();
    CHECK_ERRNO(api->accept(listener, NULL, NULL), EAGAIN);
    uint64_t waited = monotonic_ms() - start;
    CHECK(waited >= 180);
    CHECK(waited < 1500);
    CHECK_EQ(api->close(listener), 0);
}

API_TEST(blocking_accept_wakes_when_a_client_connects)
{
    int listener = tcp_listener(api, "127.0.0.1", 5000, 4);
    struct later job = {.api = api, .fd = tcp_socket(api), .delay_ms = 100,
                        .connect = true, .port = 5000};
    later_start(&job);
    uint64_t start = monotonic_ms();
    int server = accept_one(api, listener);
    CHECK(monotonic_ms() - start >= 80);
    later_join(&job);
    CHECK_EQ(peer_address(api, server).sin_port, local_address(api, job.fd).sin_port);
    CHECK_EQ(api->close(job.fd), 0);
    CHECK_EQ(api->close(server), 0);
    CHECK_EQ(api->close(listener), 0);
}

API_TEST(accept_returns_the_peer_address)
{
    int listener = tcp_listener(api, "0.0.0.0", 5000, 4);
    int client = tcp_connected(api, "127.0.0.1", 5000);
    struct sockaddr_in client_name = local_address(api, client);
    CHECK_EQ(client_name.sin_addr.s_addr, ip_of("127.0.0.1"));
    CHECK(is_ephemeral(ntohs(client_name.sin_port)));

    struct sockaddr_in from;
    memset(&from, 0xee, sizeof(from));
    socklen_t length = sizeof(from);
    int server = api->accept(listener, SA(from), &length);
    CHECK(server >= 0);
    CHECK_EQ(length, sizeof(from));
    CHECK_EQ(from.sin_family, AF_INET);
    CHECK_EQ(from.sin_addr.s_addr, client_name.sin_addr.s_addr);
    CHECK_EQ(from.sin_port, client_name.sin_port);

    /* A short address buffer: truncated, the full length reported. */
    int second = tcp_connected(api, "127.0.0.1", 5000);
    struct sockaddr_in second_name = local_address(api, second);
    memset(&from, 0xee, sizeof(from));
    length = 4;
    int second_server = api->accept(listener, SA(from), &length);
    CHECK(second_server >= 0);
    CHECK_EQ(length, sizeof(from));
    CHECK_EQ(from.sin_family, AF_INET);
    CHECK_EQ(from.sin_port, second_name.sin_port);
    CHECK_EQ(from.sin_addr.s_addr, 0xeeeeeeeeu);

    CHECK_EQ(api->close(client), 0);
    CHECK_EQ(api->close(server), 0);
    CHECK_EQ(api->close(second), 0);
    CHECK_EQ(api->close(second_server), 0);
    CHECK_EQ(api->close(listener), 0);
}

API_TEST(getsockname_and_getpeername_on_both_ends)
{
    int listener = tcp_listener(api, "0.0.0.0", 5000, 4);
    /* A listener has no peer. */
    struct sockaddr_in name;
    socklen_t length = sizeof(name);
    CHECK_ERRNO(api->getpeername(listener, SA(name), &length), ENOTCONN);
    int client = tcp_connected(api, "198.18.0.1", 5000);
    int server = accept_one(api, listener);
    struct sockaddr_in client_local = local_address(api, client);
    struct sockaddr_in client_peer = peer_address(api, client);
    struct sockaddr_in server_local = local_address(api, server);
    struct sockaddr_in server_peer = peer_address(api, server);
    /* The source address is the route's: the interface address itself. */
    CHECK_EQ(client_local.sin_addr.s_addr, ip_of("198.18.0.1"));
    CHECK(is_ephemeral(ntohs(client_local.sin_port)));
    CHECK_EQ(client_peer.sin_addr.s_addr, ip_of("198.18.0.1"));
    CHECK_EQ(ntohs(client_peer.sin_port), 5000);
    /* The accepted socket's name is the address the client reached. */
    CHECK_EQ(server_local.sin_addr.s_addr, ip_of("198.18.0.1"));
    CHECK_EQ(ntohs(server_local.sin_port), 5000);
    CHECK_EQ(server_peer.sin_addr.s_addr, client_local.sin_addr.s_addr);
    CHECK_EQ(server_peer.sin_port, client_local.sin_port);
    /* The listener keeps its wildcard. */
    CHECK_EQ(local_address(api, listener).sin_addr.s_addr, htonl(INADDR_ANY));

    /* A short buffer: truncated, full length reported. */
    memset(&name, 0xee, sizeof(name));
    length = 4;
    CHECK_EQ(api->getpeername(server, SA(name), &length), 0);
    CHECK_EQ(length, sizeof(name));
    CHECK_EQ(name.sin_port, client_local.sin_port);
    CHECK_EQ(name.sin_addr.s_addr, 0xeeeeeeeeu);
    CHECK_EQ(api->close(client), 0);
    CHECK_EQ(api->close(server), 0);
    CHECK_EQ(api->close(listener), 0);
}

API_TEST(fresh_socket_names)
{
    int fd = tcp_socket(api);
    struct sockaddr_in name = local_address(api, fd);
    CHECK_EQ(name.sin_addr.s_addr, htonl(INADDR_ANY));
    CHECK_EQ(name.sin_port, 0);
    socklen_t length = sizeof(name);
    CHECK_ERRNO(api->getpeername(fd, SA(name), &length), ENOTCONN);
    CHECK_EQ(api->close(fd), 0);
}

/* ------------------------------------------------------------------ */
/* connect()                                                           */
/* ------------------------------------------------------------------ */

API_TEST(connect_to_closed_port_is_econnrefused)
{
    int fd = tcp_socket(api);
    struct sockaddr_in to = address_of("127.0.0.1", 5999);
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to)), ECONNREFUSED);
    /* Reported once, by connect; SO_ERROR is clear afterwards. */
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ERROR), 0);
    socklen_t length = sizeof(to);
    CHECK_ERRNO(api->getpeername(fd, SA(to), &length), ENOTCONN);
    CHECK_EQ(api->close(fd), 0);

    /* The interface address refuses the same way. */
    fd = tcp_socket(api);
    to = address_of("198.18.0.1", 5999);
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to)), ECONNREFUSED);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(refused_socket_may_connect_again)
{
    int fd = tcp_socket(api);
    struct sockaddr_in to = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to)), ECONNREFUSED);
    int listener = tcp_listener(api, "127.0.0.1", 5000, 4);
    CHECK_EQ(api->connect(fd, CSA(to), sizeof(to)), 0);
    int server = accept_one(api, listener);
    send_all(api, fd, "again", 5);
    expect_bytes(api, server, "again", 5);
    CHECK_EQ(api->close(server), 0);
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(listener), 0);
}

API_TEST(nonblocking_connect_to_closed_port_reports_through_poll_and_so_error)
{
    int fd = api->socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(fd >= 0);
    struct sockaddr_in to = address_of("127.0.0.1", 5999);
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to)), EINPROGRESS);
    short revents = settled_revents(api, fd, POLLOUT);
    CHECK_EQ(revents, POLLIN | POLLOUT | POLLERR | POLLHUP | POLLRDHUP);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ERROR), ECONNREFUSED);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ERROR), 0);
    /* With the error taken, still hung up. */
    CHECK_EQ(poll_one(api, fd, POLLIN | POLLOUT | POLLRDHUP, 0),
             POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(nonblocking_connect_error_is_reported_by_the_next_connect)
{
    int fd = api->socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(fd >= 0);
    struct sockaddr_in to = address_of("127.0.0.1", 5999);
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to)), EINPROGRESS);
    CHECK(poll_one(api, fd, POLLOUT, 2000) & POLLERR);
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to)), ECONNREFUSED);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ERROR), 0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(nonblocking_connect_to_listener_completes)
{
    int listener = tcp_listener(api, "127.0.0.1", 5000, 4);
    int fd = api->socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(fd >= 0);
    struct sockaddr_in to = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to)), EINPROGRESS);
    CHECK_EQ(settled_revents(api, fd, POLLOUT), POLLOUT);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ERROR), 0);
    /* The first connect after completion reports success (the socket was
     * still connecting as far as the call knew); the next one EISCONN. */
    CHECK_EQ(api->connect(fd, CSA(to), sizeof(to)), 0);
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to)), EISCONN);
    int server = accept_one(api, listener);
    CHECK_EQ(peer_address(api, fd).sin_port, htons(5000));
    CHECK_EQ(api->close(server), 0);
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(listener), 0);
}

API_TEST(connect_twice_is_eisconn)
{
    int listener = tcp_listener(api, "127.0.0.1", 5000, 4);
    int other = tcp_listener(api, "127.0.0.1", 5001, 4);
    int fd = tcp_connected(api, "127.0.0.1", 5000);
    struct sockaddr_in same = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->connect(fd, CSA(same), sizeof(same)), EISCONN);
    struct sockaddr_in different = address_of("127.0.0.1", 5001);
    CHECK_ERRNO(api->connect(fd, CSA(different), sizeof(different)), EISCONN);
    CHECK_EQ(ntohs(peer_address(api, fd).sin_port), 5000);
    /* The accepted end too. */
    int server = accept_one(api, listener);
    CHECK_ERRNO(api->connect(server, CSA(different), sizeof(different)), EISCONN);
    CHECK_EQ(api->close(server), 0);
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(other), 0);
    CHECK_EQ(api->close(listener), 0);
}

/* 198.18.0.2 is on the interface's subnet but nobody answers there (the
 * kernel's NOARP device drops what it sends; usock's ARP request goes
 * unanswered): a connection to it stays in SYN_SENT. */
API_TEST(nonblocking_connect_in_progress)
{
    int fd = api->socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(fd >= 0);
    struct sockaddr_in to = address_of("198.18.0.2", 5000);
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to)), EINPROGRESS);
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to)), EALREADY);
    /* Another destination while connecting: also EALREADY. */
    struct sockaddr_in other = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->connect(fd, CSA(other), sizeof(other)), EALREADY);
    CHECK_EQ(poll_one(api, fd, POLLIN | POLLOUT | POLLRDHUP, 50), 0);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ERROR), 0);
    /* Named already; no peer yet. */
    struct sockaddr_in name = local_address(api, fd);
    CHECK_EQ(name.sin_addr.s_addr, ip_of("198.18.0.1"));
    CHECK(is_ephemeral(ntohs(name.sin_port)));
    socklen_t length = sizeof(name);
    CHECK_ERRNO(api->getpeername(fd, SA(name), &length), ENOTCONN);
    /* Data calls wait for the connection: EAGAIN when not waiting. */
    char buffer[4];
    CHECK_ERRNO(api->send(fd, "x", 1, MSG_NOSIGNAL), EAGAIN);
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), 0), EAGAIN);
    CHECK_ERRNO(api->listen(fd, 4), EINVAL);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(blocking_connect_with_so_sndtimeo_is_einprogress)
{
    int fd = tcp_socket(api);
    set_timeout(api, fd, SO_SNDTIMEO, 200);
    struct sockaddr_in to = address_of("198.18.0.2", 5000);
    uint64_t start = monotonic_ms();
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to)), EINPROGRESS);
    uint64_t waited = monotonic_ms() - start;
    CHECK(waited >= 180);
    CHECK(waited < 1500);
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to)), EALREADY);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(connect_checks_address)
{
    int fd = tcp_socket(api);
    struct sockaddr_in to = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to) - 1), EINVAL);
    to.sin_family = AF_INET6;
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to)), EAFNOSUPPORT);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(connect_af_unspec_disconnects)
{
    int listener = tcp_listener(api, "127.0.0.1", 5000, 4);
    int fd = tcp_connected(api, "127.0.0.1", 5000);
    int server = accept_one(api, listener);
    struct sockaddr_in old_name = local_address(api, fd);
    struct sockaddr_in unspec;
    memset(&unspec, 0, sizeof(unspec));
    unspec.sin_family = AF_UNSPEC;
    CHECK_EQ(api->connect(fd, CSA(unspec), sizeof(unspec)), 0);
    /* An abort: the peer is reset. */
    char buffer[8];
    CHECK(poll_one(api, server, POLLIN, 2000) & POLLIN);
    CHECK_ERRNO(api->recv(server, buffer, sizeof(buffer), 0), ECONNRESET);
    CHECK_EQ(api->recv(server, buffer, sizeof(buffer), 0), 0);
    /* The socket is back to closed: no peer, no local address (the port is
     * given back too, but Linux goes on reporting the old number). */
    socklen_t length = sizeof(unspec);
    CHECK_ERRNO(api->getpeername(fd, SA(unspec), &length), ENOTCONN);
    struct sockaddr_in name = local_address(api, fd);
    CHECK_EQ(name.sin_addr.s_addr, htonl(INADDR_ANY));
    CHECK_EQ(name.sin_port, old_name.sin_port);
    /* The abort leaves ECONNRESET pending on the socket itself. */
    CHECK_EQ(poll_one(api, fd, POLLIN | POLLOUT | POLLRDHUP, 0), POLLOUT | POLLERR | POLLHUP);
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), 0), ECONNRESET);
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), 0), ENOTCONN);
    CHECK_ERRNO(api->send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_EQ(poll_one(api, fd, POLLIN | POLLOUT | POLLRDHUP, 0), POLLOUT | POLLHUP);
    /* Disconnecting a closed socket is fine too. */
    memset(&unspec, 0, sizeof(unspec));
    unspec.sin_family = AF_UNSPEC;
    CHECK_EQ(api->connect(fd, CSA(unspec), sizeof(unspec)), 0);
    /* And it can connect again. */
    struct sockaddr_in to = address_of("127.0.0.1", 5000);
    CHECK_EQ(api->connect(fd, CSA(to), sizeof(to)), 0);
    int second = accept_one(api, listener);
    send_all(api, fd, "again", 5);
    expect_bytes(api, second, "again", 5);
    CHECK_EQ(api->close(second), 0);
    CHECK_EQ(api->close(server), 0);
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(listener), 0);
}

API_TEST(connect_af_unspec_on_listener_stops_listening)
{
    int listener = tcp_listener(api, "127.0.0.1", 5000, 4);
    struct sockaddr_in unspec;
    memset(&unspec, 0, sizeof(unspec));
    unspec.sin_family = AF_UNSPEC;
    CHECK_EQ(api->connect(listener, CSA(unspec), sizeof(unspec)), 0);
    CHECK_EQ(get_int_option(api, listener, SOL_SOCKET, SO_ACCEPTCONN), 0);
    CHECK_ERRNO(api->accept(listener, NULL, NULL), EINVAL);
    int fd = tcp_socket(api);
    struct sockaddr_in to = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to)), ECONNREFUSED);
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(listener), 0);
}

/* ------------------------------------------------------------------ */
/* bind()                                                              */
/* ------------------------------------------------------------------ */

API_TEST(bind_same_port_twice_is_eaddrinuse)
{
    int a = tcp_bound(api, "127.0.0.1", 5000);
    int b = tcp_socket(api);
    struct sockaddr_in same = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->bind(b, CSA(same), sizeof(same)), EADDRINUSE);
    struct sockaddr_in any = address_of("0.0.0.0", 5000);
    CHECK_ERRNO(api->bind(b, CSA(any), sizeof(any)), EADDRINUSE);
    /* Another local address on the same port is fine. */
    struct sockaddr_in other = address_of("198.18.0.1", 5000);
    CHECK_EQ(api->bind(b, CSA(other), sizeof(other)), 0);
    /* Binding twice: EINVAL. */
    struct sockaddr_in elsewhere = address_of("127.0.0.1", 5001);
    CHECK_ERRNO(api->bind(b, CSA(elsewhere), sizeof(elsewhere)), EINVAL);
    /* A listener holds its port against a new socket too. */
    CHECK_EQ(api->listen(a, 4), 0);
    int c = tcp_socket(api);
    CHECK_ERRNO(api->bind(c, CSA(same), sizeof(same)), EADDRINUSE);
    CHECK_EQ(api->close(a), 0);
    /* Closing a listener frees its port at once. */
    CHECK_EQ(api->bind(c, CSA(same), sizeof(same)), 0);
    CHECK_EQ(api->close(b), 0);
    CHECK_EQ(api->close(c), 0);
}

API_TEST(so_reuseaddr_allows_bind_but_not_two_listeners)
{
    int a = tcp_socket(api);
    int b = tcp_socket(api);
    set_int_option(api, a, SOL_SOCKET, SO_REUSEADDR, 1);
    set_int_option(api, b, SOL_SOCKET, SO_REUSEADDR, 1);
    CHECK_EQ(get_int_option(api, a, SOL_SOCKET, SO_REUSEADDR), 1);
    struct sockaddr_in local = address_of("127.0.0.1", 5000);
    CHECK_EQ(api->bind(a, CSA(local), sizeof(local)), 0);
    CHECK_EQ(api->bind(b, CSA(local), sizeof(local)), 0);
    CHECK_EQ(api->listen(a, 4), 0);
    CHECK_ERRNO(api->listen(b, 4), EADDRINUSE);
    CHECK_EQ(get_int_option(api, b, SOL_SOCKET, SO_ACCEPTCONN), 0);
    /* With a listener there, even SO_REUSEADDR cannot bind the port. */
    int c = tcp_socket(api);
    set_int_option(api, c, SOL_SOCKET, SO_REUSEADDR, 1);
    CHECK_ERRNO(api->bind(c, CSA(local), sizeof(local)), EADDRINUSE);
    /* Once the listener goes, b may listen. */
    CHECK_EQ(api->close(a), 0);
    CHECK_EQ(api->listen(b, 4), 0);
    int client = tcp_connected(api, "127.0.0.1", 5000);
    int server = accept_one(api, b);
    CHECK_EQ(api->close(client), 0);
    CHECK_EQ(api->close(server), 0);
    CHECK_EQ(api->close(b), 0);
    CHECK_EQ(api->close(c), 0);
}

API_TEST(so_reuseaddr_on_one_socket_only_is_eaddrinuse)
{
    int a = tcp_bound(api, "127.0.0.1", 5000);
    int b = tcp_socket(api);
    set_int_option(api, b, SOL_SOCKET, SO_REUSEADDR, 1);
    struct sockaddr_in local = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->bind(b, CSA(local), sizeof(local)), EADDRINUSE);
    CHECK_EQ(api->close(a), 0);
    CHECK_EQ(api->close(b), 0);
}

API_TEST(port_of_a_connection_still_closing_is_bindable_with_so_reuseaddr)
{
    /* The client closes first, so its end (port 6000) goes to TIME_WAIT.
     * Rebinding needs SO_REUSEADDR on both the old and the new socket. */
    int listener = tcp_listener(api, "127.0.0.1", 5000, 4);
    int client = tcp_socket(api);
    set_int_option(api, client, SOL_SOCKET, SO_REUSEADDR, 1);
    struct sockaddr_in client_name = address_of("127.0.0.1", 6000);
    CHECK_EQ(api->bind(client, CSA(client_name), sizeof(client_name)), 0);
    struct sockaddr_in to = address_of("127.0.0.1", 5000);
    CHECK_EQ(api->connect(client, CSA(to), sizeof(to)), 0);
    int server = accept_one(api, listener);
    CHECK_EQ(api->close(client), 0);
    char byte;
    CHECK(poll_one(api, server, POLLIN, 2000) & POLLIN);
    CHECK_EQ(api->recv(server, &byte, 1, 0), 0);
    CHECK_EQ(api->close(server), 0);
    sleep_ms(50);
    int fd = tcp_socket(api);
    struct sockaddr_in local = address_of("127.0.0.1", 6000);
    CHECK_ERRNO(api->bind(fd, CSA(local), sizeof(local)), EADDRINUSE);
    set_int_option(api, fd, SOL_SOCKET, SO_REUSEADDR, 1);
    CHECK_EQ(api->bind(fd, CSA(local), sizeof(local)), 0);
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(listener), 0);
}

/* ------------------------------------------------------------------ */
/* Calls on sockets that are not connected                             */
/* ------------------------------------------------------------------ */

API_TEST(data_calls_on_unconnected_socket)
{
    int fd = tcp_socket(api);
    char buffer[8];
    CHECK_ERRNO(api->send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), 0), ENOTCONN);
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT), ENOTCONN);
    /* sendto with an address does not connect a TCP socket. */
    struct sockaddr_in to = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->sendto(fd, "x", 1, MSG_NOSIGNAL, CSA(to), sizeof(to)), EPIPE);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ERROR), 0);
    int available = -1;
    CHECK_EQ(api->ioctl(fd, FIONREAD, &available), 0);
    CHECK_EQ(available, 0);
    /* A bound one is no different. */
    int bound = tcp_bound(api, "127.0.0.1", 6000);
    CHECK_ERRNO(api->send(bound, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_ERRNO(api->recv(bound, buffer, sizeof(buffer), 0), ENOTCONN);
    CHECK_EQ(api->close(bound), 0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(data_calls_on_listening_socket)
{
    int listener = tcp_listener(api, "127.0.0.1", 5000, 4);
    char buffer[8];
    CHECK_ERRNO(api->send(listener, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_ERRNO(api->recv(listener, buffer, sizeof(buffer), 0), ENOTCONN);
    int available = -1;
    CHECK_ERRNO(api->ioctl(listener, FIONREAD, &available), EINVAL);
    CHECK_EQ(api->close(listener), 0);
}

API_TEST(shutdown_of_unconnected_socket_is_enotconn)
{
    int fd = tcp_socket(api);
    CHECK_ERRNO(api->shutdown(fd, SHUT_RD), ENOTCONN);
    CHECK_ERRNO(api->shutdown(fd, SHUT_WR), ENOTCONN);
    CHECK_ERRNO(api->shutdown(fd, SHUT_RDWR), ENOTCONN);
    CHECK_ERRNO(api->shutdown(fd, 7), EINVAL);
    CHECK_ERRNO(api->shutdown(fd, -1), EINVAL);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(shutdown_of_unconnected_socket_still_shuts_it)
{
    int fd = tcp_socket(api);
    CHECK_ERRNO(api->shutdown(fd, SHUT_RDWR), ENOTCONN);
    /* Both halves are marked shut all the same. */
    CHECK_EQ(poll_one(api, fd, POLLIN | POLLOUT | POLLRDHUP, 0),
             POLLIN | POLLOUT | POLLRDHUP | POLLHUP);
    char buffer[4];
    CHECK_EQ(api->recv(fd, buffer, sizeof(buffer), 0), 0);
    CHECK_ERRNO(api->send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(shutdown_of_listener_stops_listening)
{
    int listener = tcp_listener(api, "127.0.0.1", 5000, 4);
    /* SHUT_WR alone leaves a listener as it is. */
    CHECK_EQ(api->shutdown(listener, SHUT_WR), 0);
    CHECK_EQ(get_int_option(api, listener, SOL_SOCKET, SO_ACCEPTCONN), 1);
    CHECK_EQ(api->shutdown(listener, SHUT_RD), 0);
    CHECK_EQ(get_int_option(api, listener, SOL_SOCKET, SO_ACCEPTCONN), 0);
    CHECK_ERRNO(api->accept(listener, NULL, NULL), EINVAL);
    int fd = tcp_socket(api);
    struct sockaddr_in to = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to)), ECONNREFUSED);
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(listener), 0);
}

struct blocked_accept {
    const struct api *api;
    int listener;
    int result;
    int error;
    pthread_t thread;
};

static void *accept_in_thread(void *argument)
{
    struct blocked_accept *job = argument;
    errno = 0;
    job->result = job->api->accept(job->listener, NULL, NULL);
    job->error = errno;
    return NULL;
}

API_TEST(shutdown_of_listener_wakes_blocked_accept)
{
    int listener = tcp_listener(api, "127.0.0.1", 5000, 4);
    struct blocked_accept job = {.api = api, .listener = listener};
    CHECK_EQ(pthread_create(&job.thread, NULL, accept_in_thread, &job), 0);
    sleep_ms(100);
    CHECK_EQ(api->shutdown(listener, SHUT_RDWR), 0);
    CHECK_EQ(pthread_join(job.thread, NULL), 0);
    CHECK_EQ(job.result, -1);
    CHECK_EQ(job.error, EINVAL);
    /* A shut listener is simply closed again; accept fails at once. */
    CHECK_EQ(poll_one(api, listener, POLLIN | POLLOUT | POLLRDHUP, 0), POLLOUT | POLLHUP);
    CHECK_ERRNO(api->accept(listener, NULL, NULL), EINVAL);
    CHECK_EQ(api->close(listener), 0);
}

/* ------------------------------------------------------------------ */
/* Data                                                                */
/* ------------------------------------------------------------------ */

API_TEST(data_round_trip)
{
    struct pair pair = open_pair(api);
    send_all(api, pair.client, "hello", 5);
    expect_bytes(api, pair.server, "hello", 5);
    send_all(api, pair.server, "world!", 6);
    expect_bytes(api, pair.client, "world!", 6);
    /* A stream: two sends may be read as one. */
    send_all(api, pair.client, "ab", 2);
    send_all(api, pair.client, "cd", 2);
    CHECK_EQ(wait_fionread(api, pair.server, 4), 4);
    char buffer[16];
    CHECK_EQ(api->recv(pair.server, buffer, sizeof(buffer), 0), 4);
    CHECK(memcmp(buffer, "abcd", 4) == 0);
    /* Reads may be smaller than what was sent. */
    send_all(api, pair.client, "0123456789", 10);
    CHECK_EQ(wait_fionread(api, pair.server, 10), 10);
    CHECK_EQ(api->recv(pair.server, buffer, 3, 0), 3);
    CHECK(memcmp(buffer, "012", 3) == 0);
    CHECK_EQ(api->recv(pair.server, buffer, sizeof(buffer), 0), 7);
    CHECK(memcmp(buffer, "3456789", 7) == 0);
    /* recvfrom reports no address for a stream (length 0). */
    send_all(api, pair.client, "f", 1);
    CHECK(poll_one(api, pair.server, POLLIN, 2000) & POLLIN);
    struct sockaddr_in from;
    memset(&from, 0xee, sizeof(from));
    socklen_t length = sizeof(from);
    CHECK_EQ(api->recvfrom(pair.server, buffer, sizeof(buffer), 0, SA(from), &length), 1);
    CHECK_EQ(length, 0);
    /* Zero-length send and receive.  A zero-length receive still waits for
     * data (Linux's low-water mark is at least 1 byte). */
    CHECK_EQ(api->send(pair.client, "", 0, MSG_NOSIGNAL), 0);
    CHECK_ERRNO(api->recv(pair.server, buffer, 0, MSG_DONTWAIT), EAGAIN);
    CHECK_ERRNO(api->recv(pair.server, buffer, sizeof(buffer), MSG_DONTWAIT), EAGAIN);
    send_all(api, pair.client, "z", 1);
    CHECK_EQ(wait_fionread(api, pair.server, 1), 1);
    CHECK_EQ(api->recv(pair.server, buffer, 0, 0), 0);
    CHECK_EQ(api->recv(pair.server, buffer, sizeof(buffer), 0), 1);
    CHECK_EQ(buffer[0], 'z');
    close_pair(api, pair);
}

API_TEST(sendto_with_address_on_connected_socket_ignores_it)
{
    struct pair pair = open_pair(api);
    struct sockaddr_in elsewhere = address_of("127.0.0.1", 7777);
    CHECK_EQ(api->sendto(pair.client, "x", 1, MSG_NOSIGNAL, CSA(elsewhere), sizeof(elsewhere)),
             1);
    expect_bytes(api, pair.server, "x", 1);
    close_pair(api, pair);
}

API_TEST(msg_peek_leaves_data_queued)
{
    struct pair pair = open_pair(api);
    send_all(api, pair.client, "peekaboo", 8);
    CHECK_EQ(wait_fionread(api, pair.server, 8), 8);
    char buffer[16];
    CHECK_EQ(api->recv(pair.server, buffer, 4, MSG_PEEK), 4);
    CHECK(memcmp(buffer, "peek", 4) == 0);
    CHECK_EQ(api->recv(pair.server, buffer, sizeof(buffer), MSG_PEEK), 8);
    CHECK(memcmp(buffer, "peekaboo", 8) == 0);
    int available = -1;
    CHECK_EQ(api->ioctl(pair.server, FIONREAD, &available), 0);
    CHECK_EQ(available, 8);
    CHECK_EQ(api->recv(pair.server, buffer, 2, 0), 2);
    CHECK_EQ(api->recv(pair.server, buffer, sizeof(buffer), MSG_PEEK | MSG_DONTWAIT), 6);
    CHECK(memcmp(buffer, "ekaboo", 6) == 0);
    CHECK_EQ(api->recv(pair.server, buffer, sizeof(buffer), 0), 6);
    CHECK(memcmp(buffer, "ekaboo", 6) == 0);
    CHECK_ERRNO(api->recv(pair.server, buffer, sizeof(buffer), MSG_PEEK | MSG_DONTWAIT),
                EAGAIN);
    close_pair(api, pair);
}

API_TEST(msg_waitall_waits_for_the_full_amount)
{
    struct pair pair = open_pair(api);
    send_all(api, pair.client, "abc", 3);
    struct later job = {.api = api, .fd = pair.client, .delay_ms = 150, .data = "defgh",
                        .length = 5};
    later_start(&job);
    char buffer[16];
    uint64_t start = monotonic_ms();
    CHECK_EQ(api->recv(pair.server, buffer, 8, MSG_WAITALL), 8);
    CHECK(monotonic_ms() - start >= 120);
    CHECK(memcmp(buffer, "abcdefgh", 8) == 0);
    later_join(&job);
    /* End of stream ends the wait early with what there is. */
    send_all(api, pair.client, "xy", 2);
    CHECK_EQ(api->shutdown(pair.client, SHUT_WR), 0);
    CHECK_EQ(api->recv(pair.server, buffer, 8, MSG_WAITALL), 2);
    CHECK(memcmp(buffer, "xy", 2) == 0);
    CHECK_EQ(api->recv(pair.server, buffer, 8, MSG_WAITALL), 0);
    close_pair(api, pair);
}

API_TEST(msg_waitall_with_so_rcvtimeo_returns_what_arrived)
{
    struct pair pair = open_pair(api);
    set_timeout(api, pair.server, SO_RCVTIMEO, 200);
    send_all(api, pair.client, "abc", 3);
    CHECK_EQ(wait_fionread(api, pair.server, 3), 3);
    char buffer[16];
    uint64_t start = monotonic_ms();
    CHECK_EQ(api->recv(pair.server, buffer, 8, MSG_WAITALL), 3);
    CHECK(monotonic_ms() - start >= 180);
    CHECK(memcmp(buffer, "abc", 3) == 0);
    close_pair(api, pair);
}

API_TEST(msg_dontwait_and_o_nonblock_are_eagain)
{
    struct pair pair = open_pair(api);
    char buffer[8];
    CHECK_ERRNO(api->recv(pair.server, buffer, sizeof(buffer), MSG_DONTWAIT), EAGAIN);
    set_nonblocking(api, pair.server);
    CHECK_ERRNO(api->recv(pair.server, buffer, sizeof(buffer), 0), EAGAIN);
    send_all(api, pair.client, "x", 1);
    CHECK(poll_one(api, pair.server, POLLIN, 2000) & POLLIN);
    CHECK_EQ(api->recv(pair.server, buffer, sizeof(buffer), 0), 1);
    CHECK_ERRNO(api->recv(pair.server, buffer, sizeof(buffer), 0), EAGAIN);
    close_pair(api, pair);
}

API_TEST(so_rcvtimeo_on_connected_socket_times_out)
{
    struct pair pair = open_pair(api);
    set_timeout(api, pair.server, SO_RCVTIMEO, 200);
    char buffer[8];
    uint64_t start = monotonic_ms();
    CHECK_ERRNO(api->recv(pair.server, buffer, sizeof(buffer), 0), EAGAIN);
    uint64_t waited = monotonic_ms() - start;
    CHECK(waited >= 180);
    CHECK(waited < 1500);
    close_pair(api, pair);
}

API_TEST(blocking_recv_wakes_when_data_arrives)
{
    struct pair pair = open_pair(api);
    struct later job = {.api = api, .fd = pair.client, .delay_ms = 100, .data = "late",
                        .length = 4};
    later_start(&job);
    char buffer[8];
    uint64_t start = monotonic_ms();
    CHECK_EQ(api->recv(pair.server, buffer, sizeof(buffer), 0), 4);
    CHECK(monotonic_ms() - start >= 80);
    CHECK(memcmp(buffer, "late", 4) == 0);
    later_join(&job);
    close_pair(api, pair);
}

API_TEST(fionread_counts_queued_bytes)
{
    struct pair pair = open_pair(api);
    int available = -1;
    CHECK_EQ(api->ioctl(pair.server, FIONREAD, &available), 0);
    CHECK_EQ(available, 0);
    send_all(api, pair.client, "abc", 3);
    send_all(api, pair.client, "defg", 4);
    CHECK_EQ(wait_fionread(api, pair.server, 7), 7);
    char buffer[8];
    CHECK_EQ(api->recv(pair.server, buffer, 5, 0), 5);
    CHECK_EQ(api->ioctl(pair.server, FIONREAD, &available), 0);
    CHECK_EQ(available, 2);
    /* FIN does not count. */
    CHECK_EQ(api->shutdown(pair.client, SHUT_WR), 0);
    CHECK(poll_one(api, pair.server, POLLRDHUP, 2000) & POLLRDHUP);
    CHECK_EQ(api->ioctl(pair.server, FIONREAD, &available), 0);
    CHECK_EQ(available, 2);
    close_pair(api, pair);
}

/* ------------------------------------------------------------------ */
/* Shutdown and close                                                  */
/* ------------------------------------------------------------------ */

API_TEST(recv_returns_zero_after_peer_shutdown_wr)
{
    struct pair pair = open_pair(api);
    send_all(api, pair.client, "last", 4);
    CHECK_EQ(api->shutdown(pair.client, SHUT_WR), 0);
    /* Queued data first, then end of stream, again and again. */
    expect_bytes(api, pair.server, "last", 4);
    char buffer[8];
    CHECK_EQ(api->recv(pair.server, buffer, sizeof(buffer), 0), 0);
    CHECK_EQ(api->recv(pair.server, buffer, sizeof(buffer), 0), 0);
    CHECK_EQ(api->recv(pair.server, buffer, sizeof(buffer), MSG_DONTWAIT), 0);
    /* The other direction still works. */
    send_all(api, pair.server, "reply", 5);
    expect_bytes(api, pair.client, "reply", 5);
    CHECK_EQ(poll_one(api, pair.server, POLLIN | POLLOUT | POLLRDHUP, 0),
             POLLIN | POLLOUT | POLLRDHUP);
    /* The half-closed side may still read; it is not hung up. */
    CHECK_EQ(poll_one(api, pair.client, POLLIN | POLLOUT | POLLRDHUP, 0), POLLOUT);
    close_pair(api, pair);
}

API_TEST(send_after_own_shutdown_wr_is_epipe)
{
    struct pair pair = open_pair(api);
    CHECK_EQ(api->shutdown(pair.client, SHUT_WR), 0);
    CHECK_ERRNO(api->send(pair.client, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_ERRNO(api->send(pair.client, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT), EPIPE);
    CHECK_EQ(get_int_option(api, pair.client, SOL_SOCKET, SO_ERROR), 0);
    /* Shutting down again is fine. */
    CHECK_EQ(api->shutdown(pair.client, SHUT_WR), 0);
    /* Writable still (a send does not block: it fails). */
    CHECK_EQ(poll_one(api, pair.client, POLLIN | POLLOUT | POLLRDHUP, 0), POLLOUT);
    close_pair(api, pair);
}

API_TEST(shutdown_rdwr_of_both_ends_hangs_up)
{
    struct pair pair = open_pair(api);
    CHECK_EQ(api->shutdown(pair.client, SHUT_WR), 0);
    CHECK(poll_one(api, pair.server, POLLRDHUP, 2000) & POLLRDHUP);
    CHECK_EQ(api->shutdown(pair.server, SHUT_WR), 0);
    CHECK_EQ(settled_revents(api, pair.client, POLLRDHUP),
             POLLIN | POLLOUT | POLLRDHUP | POLLHUP);
    CHECK_EQ(poll_one(api, pair.server, POLLIN | POLLOUT | POLLRDHUP, 100),
             POLLIN | POLLOUT | POLLRDHUP | POLLHUP);
    char buffer[4];
    CHECK_EQ(api->recv(pair.client, buffer, sizeof(buffer), 0), 0);
    CHECK_EQ(api->recv(pair.server, buffer, sizeof(buffer), 0), 0);
    /* Both ends are closed now (the client in TIME_WAIT, which is no longer
     * the socket's): no peer. */
    struct sockaddr_in name;
    socklen_t length = sizeof(name);
    CHECK_ERRNO(api->getpeername(pair.client, SA(name), &length), ENOTCONN);
    CHECK_ERRNO(api->getpeername(pair.server, SA(name), &length), ENOTCONN);
    CHECK_ERRNO(api->send(pair.client, "x", 1, MSG_NOSIGNAL), EPIPE);
    close_pair(api, pair);
}

API_TEST(shutdown_rd_makes_recv_return_zero)
{
    struct pair pair = open_pair(api);
    CHECK_EQ(api->shutdown(pair.server, SHUT_RD), 0);
    char buffer[8];
    uint64_t start = monotonic_ms();
    CHECK_EQ(api->recv(pair.server, buffer, sizeof(buffer), 0), 0);
    CHECK(monotonic_ms() - start < 500);
    CHECK_EQ(poll_one(api, pair.server, POLLIN | POLLOUT | POLLRDHUP, 0),
             POLLIN | POLLOUT | POLLRDHUP);
    /* Sending still works. */
    send_all(api, pair.server, "out", 3);
    expect_bytes(api, pair.client, "out", 3);
    close_pair(api, pair);
}

API_TEST(close_with_unread_data_resets_the_peer)
{
    struct pair pair = open_pair(api);
    send_all(api, pair.client, "unread", 6);
    CHECK_EQ(wait_fionread(api, pair.server, 6), 6);
    CHECK_EQ(api->close(pair.server), 0);
    /* The client sees the reset: everything at once. */
    CHECK_EQ(settled_revents(api, pair.client, POLLIN),
             POLLIN | POLLOUT | POLLERR | POLLHUP | POLLRDHUP);
    char buffer[8];
    CHECK_ERRNO(api->recv(pair.client, buffer, sizeof(buffer), 0), ECONNRESET);
    /* Reported once; then end of stream, and sending is a broken pipe. */
    CHECK_EQ(api->recv(pair.client, buffer, sizeof(buffer), 0), 0);
    CHECK_EQ(api->recv(pair.client, buffer, sizeof(buffer), 0), 0);
    CHECK_ERRNO(api->send(pair.client, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_EQ(get_int_option(api, pair.client, SOL_SOCKET, SO_ERROR), 0);
    CHECK_EQ(poll_one(api, pair.client, POLLIN | POLLOUT | POLLRDHUP, 0),
             POLLIN | POLLOUT | POLLHUP | POLLRDHUP);
    /* No peer any more. */
    struct sockaddr_in name;
    socklen_t length = sizeof(name);
    CHECK_ERRNO(api->getpeername(pair.client, SA(name), &length), ENOTCONN);
    CHECK_EQ(api->close(pair.client), 0);
}

API_TEST(send_after_peer_reset_reports_econnreset_then_epipe)
{
    struct pair pair = open_pair(api);
    send_all(api, pair.client, "unread", 6);
    CHECK_EQ(wait_fionread(api, pair.server, 6), 6);
    CHECK_EQ(api->close(pair.server), 0);
    CHECK(poll_one(api, pair.client, POLLIN, 2000) & POLLERR);
    /* The first call to see the error reports it, whichever it is. */
    CHECK_ERRNO(api->send(pair.client, "x", 1, MSG_NOSIGNAL), ECONNRESET);
    CHECK_ERRNO(api->send(pair.client, "x", 1, MSG_NOSIGNAL), EPIPE);
    char buffer[8];
    CHECK_EQ(api->recv(pair.client, buffer, sizeof(buffer), 0), 0);
    CHECK_EQ(api->close(pair.client), 0);
}

API_TEST(so_error_takes_the_reset)
{
    struct pair pair = open_pair(api);
    send_all(api, pair.client, "unread", 6);
    CHECK_EQ(wait_fionread(api, pair.server, 6), 6);
    CHECK_EQ(api->close(pair.server), 0);
    CHECK(poll_one(api, pair.client, POLLIN, 2000) & POLLERR);
    CHECK_EQ(get_int_option(api, pair.client, SOL_SOCKET, SO_ERROR), ECONNRESET);
    CHECK_EQ(get_int_option(api, pair.client, SOL_SOCKET, SO_ERROR), 0);
    char buffer[8];
    CHECK_EQ(api->recv(pair.client, buffer, sizeof(buffer), 0), 0);
    CHECK_EQ(api->close(pair.client), 0);
}

API_TEST(orderly_close_gives_end_of_stream_then_epipe)
{
    struct pair pair = open_pair(api);
    send_all(api, pair.server, "bye", 3);
    CHECK_EQ(api->close(pair.server), 0);
    expect_bytes(api, pair.client, "bye", 3);
    char buffer[8];
    CHECK_EQ(api->recv(pair.client, buffer, sizeof(buffer), 0), 0);
    CHECK_EQ(poll_one(api, pair.client, POLLIN | POLLOUT | POLLRDHUP, 0),
             POLLIN | POLLOUT | POLLRDHUP);
    /* The first send after the peer closed goes out and is answered with a
     * reset.  A reset in CLOSE_WAIT is a broken pipe, not ECONNRESET. */
    CHECK_EQ(api->send(pair.client, "x", 1, MSG_NOSIGNAL), 1);
    CHECK(poll_one(api, pair.client, POLLIN, 2000) & POLLERR);
    CHECK_EQ(poll_one(api, pair.client, POLLIN | POLLOUT | POLLRDHUP, 0),
             POLLIN | POLLOUT | POLLERR | POLLHUP | POLLRDHUP);
    CHECK_EQ(get_int_option(api, pair.client, SOL_SOCKET, SO_ERROR), EPIPE);
    CHECK_ERRNO(api->send(pair.client, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_EQ(api->recv(pair.client, buffer, sizeof(buffer), 0), 0);
    CHECK_EQ(api->close(pair.client), 0);
}

API_TEST(so_linger_zero_close_resets_the_peer)
{
    struct pair pair = open_pair(api);
    struct linger linger = {.l_onoff = 1, .l_linger = 0};
    CHECK_EQ(api->setsockopt(pair.server, SOL_SOCKET, SO_LINGER, &linger, sizeof(linger)), 0);
    struct linger read_back = {.l_onoff = 99, .l_linger = 99};
    socklen_t length = sizeof(read_back);
    CHECK_EQ(api->getsockopt(pair.server, SOL_SOCKET, SO_LINGER, &read_back, &length), 0);
    CHECK_EQ(length, sizeof(read_back));
    CHECK_EQ(read_back.l_onoff, 1);
    CHECK_EQ(read_back.l_linger, 0);
    CHECK_EQ(api->close(pair.server), 0);
    CHECK(poll_one(api, pair.client, POLLIN, 2000) & POLLERR);
    char buffer[8];
    CHECK_ERRNO(api->recv(pair.client, buffer, sizeof(buffer), 0), ECONNRESET);
    CHECK_EQ(api->recv(pair.client, buffer, sizeof(buffer), 0), 0);
    CHECK_EQ(api->close(pair.client), 0);
}

API_TEST(so_linger_option_values)
{
    int fd = tcp_socket(api);
    struct linger read_back = {.l_onoff = 99, .l_linger = 99};
    socklen_t length = sizeof(read_back);
    CHECK_EQ(api->getsockopt(fd, SOL_SOCKET, SO_LINGER, &read_back, &length), 0);
    CHECK_EQ(length, sizeof(read_back));
    CHECK_EQ(read_back.l_onoff, 0);
    CHECK_EQ(read_back.l_linger, 0);
    struct linger linger = {.l_onoff = 5, .l_linger = 3};
    CHECK_EQ(api->setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof(linger)), 0);
    length = sizeof(read_back);
    CHECK_EQ(api->getsockopt(fd, SOL_SOCKET, SO_LINGER, &read_back, &length), 0);
    CHECK_EQ(read_back.l_onoff, 1);
    CHECK_EQ(read_back.l_linger, 3);
    /* Too short a value. */
    CHECK_ERRNO(api->setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof(int)), EINVAL);
    linger.l_onoff = 0;
    CHECK_EQ(api->setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof(linger)), 0);
    length = sizeof(read_back);
    CHECK_EQ(api->getsockopt(fd, SOL_SOCKET, SO_LINGER, &read_back, &length), 0);
    CHECK_EQ(read_back.l_onoff, 0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(closing_listener_resets_connections_not_yet_accepted)
{
    int listener = tcp_listener(api, "127.0.0.1", 5000, 4);
    int client = tcp_connected(api, "127.0.0.1", 5000);
    CHECK_EQ(settled_revents(api, listener, POLLIN), POLLIN);
    CHECK_EQ(api->close(listener), 0);
    CHECK(poll_one(api, client, POLLIN, 2000) & POLLERR);
    char buffer[4];
    CHECK_ERRNO(api->recv(client, buffer, sizeof(buffer), 0), ECONNRESET);
    CHECK_EQ(api->close(client), 0);
}

/* ------------------------------------------------------------------ */
/* poll()                                                              */
/* ------------------------------------------------------------------ */

API_TEST(poll_reports_stream_readiness)
{
    /* A fresh socket is writable and hung up (it is closed). */
    int fresh = tcp_socket(api);
    CHECK_EQ(poll_one(api, fresh, POLLIN | POLLOUT | POLLRDHUP, 0), POLLOUT | POLLHUP);
    CHECK_EQ(poll_one(api, fresh, 0, 0), POLLHUP);
    /* Bound: the same. */
    struct sockaddr_in local = address_of("127.0.0.1", 6000);
    CHECK_EQ(api->bind(fresh, CSA(local), sizeof(local)), 0);
    CHECK_EQ(poll_one(api, fresh, POLLIN | POLLOUT | POLLRDHUP, 0), POLLOUT | POLLHUP);
    CHECK_EQ(api->close(fresh), 0);

    /* A listener with nothing pending: nothing. */
    int listener = tcp_listener(api, "127.0.0.1", 5000, 4);
    CHECK_EQ(poll_one(api, listener, POLLIN | POLLOUT | POLLRDHUP, 0), 0);
    int client = tcp_connected(api, "127.0.0.1", 5000);
    CHECK_EQ(settled_revents(api, listener, POLLIN), POLLIN);
    int server = accept_one(api, listener);
    CHECK_EQ(poll_one(api, listener, POLLIN | POLLOUT | POLLRDHUP, 0), 0);

    /* Connected, idle: writable only. */
    CHECK_EQ(poll_one(api, client, POLLIN | POLLOUT | POLLRDHUP, 0), POLLOUT);
    CHECK_EQ(poll_one(api, server, POLLIN | POLLOUT | POLLRDHUP, 0), POLLOUT);
    CHECK_EQ(poll_one(api, server, POLLIN, 0), 0);
    /* Data: readable. */
    send_all(api, client, "x", 1);
    CHECK_EQ(settled_revents(api, server, POLLIN), POLLIN | POLLOUT);
    char byte;
    CHECK_EQ(api->recv(server, &byte, 1, 0), 1);
    CHECK_EQ(poll_one(api, server, POLLIN | POLLOUT | POLLRDHUP, 0), POLLOUT);
    /* FIN: readable and read-hung-up (POLLRDHUP only when asked). */
    CHECK_EQ(api->shutdown(client, SHUT_WR), 0);
    CHECK_EQ(settled_revents(api, server, POLLRDHUP), POLLIN | POLLOUT | POLLRDHUP);
    CHECK_EQ(poll_one(api, server, POLLIN, 0), POLLIN);
    CHECK_EQ(api->close(client), 0);
    CHECK_EQ(api->close(server), 0);
    CHECK_EQ(api->close(listener), 0);
}

API_TEST(poll_waits_for_data)
{
    struct pair pair = open_pair(api);
    struct later job = {.api = api, .fd = pair.client, .delay_ms = 100, .data = "x",
                        .length = 1};
    later_start(&job);
    struct pollfd entry = {.fd = pair.server, .events = POLLIN};
    uint64_t start = monotonic_ms();
    CHECK_EQ(api->poll(&entry, 1, 2000), 1);
    CHECK(monotonic_ms() - start >= 80);
    CHECK_EQ(entry.revents, POLLIN);
    later_join(&job);
    close_pair(api, pair);
}

API_TEST(full_send_buffer_is_not_writable)
{
    struct pair pair = open_pair(api);
    size_t written = fill_send_buffer(api, pair.client);
    CHECK(written > 0);
    CHECK_EQ(poll_one(api, pair.client, POLLOUT, 0), 0);
    /* A blocking send with SO_SNDTIMEO gives up: with what it wrote, or
     * EAGAIN when that was nothing. */
    set_timeout(api, pair.client, SO_SNDTIMEO, 200);
    static char more[1 << 20];
    uint64_t start = monotonic_ms();
    errno = 0;
    ssize_t sent = api->send(pair.client, more, sizeof(more), MSG_NOSIGNAL);
    CHECK(monotonic_ms() - start >= 180);
    CHECK((sent == -1 && errno == EAGAIN) || (sent >= 0 && (size_t)sent < sizeof(more)));
    if (sent > 0)
        written += (size_t)sent;
    /* Reading everything makes room again; every byte written arrives. */
    CHECK_EQ(api->shutdown(pair.client, SHUT_WR), 0);
    CHECK_EQ(drain(api, pair.server, written + 1), written);
    close_pair(api, pair);
}

/* ------------------------------------------------------------------ */
/* TCP options                                                         */
/* ------------------------------------------------------------------ */

API_TEST(tcp_nodelay)
{
    int fd = tcp_socket(api);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_NODELAY), 0);
    set_int_option(api, fd, IPPROTO_TCP, TCP_NODELAY, 1);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_NODELAY), 1);
    set_int_option(api, fd, IPPROTO_TCP, TCP_NODELAY, 7);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_NODELAY), 1);
    set_int_option(api, fd, IPPROTO_TCP, TCP_NODELAY, 0);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_NODELAY), 0);
    short small = 1;
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &small, sizeof(small)), EINVAL);
    CHECK_EQ(api->close(fd), 0);

    /* On a connection too. */
    struct pair pair = open_pair(api);
    set_int_option(api, pair.client, IPPROTO_TCP, TCP_NODELAY, 1);
    CHECK_EQ(get_int_option(api, pair.client, IPPROTO_TCP, TCP_NODELAY), 1);
    send_all(api, pair.client, "nd", 2);
    expect_bytes(api, pair.server, "nd", 2);
    close_pair(api, pair);
}

API_TEST(tcp_cork)
{
    int fd = tcp_socket(api);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_CORK), 0);
    set_int_option(api, fd, IPPROTO_TCP, TCP_CORK, 5);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_CORK), 1);
    CHECK_EQ(api->close(fd), 0);

    /* Corked, a partial segment waits (nothing in flight, where Nagle
     * would have sent it); uncorking sends it. */
    struct pair pair = open_pair(api);
    set_int_option(api, pair.client, IPPROTO_TCP, TCP_CORK, 1);
    send_all(api, pair.client, "head", 4);
    send_all(api, pair.client, "er", 2);
    sleep_ms(50);
    char buffer[16];
    CHECK_ERRNO(api->recv(pair.server, buffer, sizeof(buffer), MSG_DONTWAIT), EAGAIN);
    set_int_option(api, pair.client, IPPROTO_TCP, TCP_CORK, 0);
    expect_bytes(api, pair.server, "header", 6);
    /* A FIN takes corked data along. */
    set_int_option(api, pair.client, IPPROTO_TCP, TCP_CORK, 1);
    send_all(api, pair.client, "tail", 4);
    CHECK_EQ(api->shutdown(pair.client, SHUT_WR), 0);
    expect_bytes(api, pair.server, "tail", 4);
    close_pair(api, pair);
}

API_TEST(tcp_maxseg)
{
    int fd = tcp_socket(api);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_MAXSEG), LINUX_TCP_MSS_DEFAULT);
    int value = 10;
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &value, sizeof(value)), EINVAL);
    value = LINUX_TCP_MIN_MSS - 1;
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &value, sizeof(value)), EINVAL);
    value = 65536;
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &value, sizeof(value)), EINVAL);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_MAXSEG), LINUX_TCP_MSS_DEFAULT);
    set_int_option(api, fd, IPPROTO_TCP, TCP_MAXSEG, LINUX_TCP_MIN_MSS);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_MAXSEG), LINUX_TCP_MIN_MSS);
    set_int_option(api, fd, IPPROTO_TCP, TCP_MAXSEG, 1000);
    /* Before connecting, what was set reads back. */
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_MAXSEG), 1000);
    /* 0 takes the setting away. */
    set_int_option(api, fd, IPPROTO_TCP, TCP_MAXSEG, 0);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_MAXSEG), LINUX_TCP_MSS_DEFAULT);
    set_int_option(api, fd, IPPROTO_TCP, TCP_MAXSEG, 1000);

    /* A connection uses at most what was set (less any options it carries). */
    int listener = tcp_listener(api, "127.0.0.1", 5000, 4);
    struct sockaddr_in to = address_of("127.0.0.1", 5000);
    CHECK_EQ(api->connect(fd, CSA(to), sizeof(to)), 0);
    int server = accept_one(api, listener);
    int mss = get_int_option(api, fd, IPPROTO_TCP, TCP_MAXSEG);
    CHECK(mss <= 1000 && mss >= 1000 - 40);
    /* The peer was told: its segments are no larger either. */
    int server_mss = get_int_option(api, server, IPPROTO_TCP, TCP_MAXSEG);
    CHECK(server_mss <= 1000 && server_mss >= 1000 - 40);
    /* Data goes through in pieces of that size. */
    static char data[10000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 7);
    send_all(api, fd, data, sizeof(data));
    expect_bytes(api, server, data, sizeof(data));
    CHECK_EQ(api->close(server), 0);
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(listener), 0);
}

API_TEST(tcp_maxseg_of_unrestricted_loopback_connection_is_large)
{
    struct pair pair = open_pair(api);
    /* Loopback's MTU is large (65536 on Linux); no 536 fallback. */
    CHECK(get_int_option(api, pair.client, IPPROTO_TCP, TCP_MAXSEG) > 1460);
    CHECK(get_int_option(api, pair.server, IPPROTO_TCP, TCP_MAXSEG) > 1460);
    close_pair(api, pair);
}

API_TEST(so_keepalive_and_tcp_keepalive_parameters)
{
    int fd = tcp_socket(api);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_KEEPALIVE), 0);
    set_int_option(api, fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    set_int_option(api, fd, SOL_SOCKET, SO_KEEPALIVE, 5);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    set_int_option(api, fd, SOL_SOCKET, SO_KEEPALIVE, 0);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_KEEPALIVE), 0);

    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_KEEPIDLE), LINUX_TCP_KEEPIDLE);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_KEEPINTVL), LINUX_TCP_KEEPINTVL);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_KEEPCNT), LINUX_TCP_KEEPCNT);
    set_int_option(api, fd, IPPROTO_TCP, TCP_KEEPIDLE, 30);
    set_int_option(api, fd, IPPROTO_TCP, TCP_KEEPINTVL, 5);
    set_int_option(api, fd, IPPROTO_TCP, TCP_KEEPCNT, 3);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_KEEPIDLE), 30);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_KEEPINTVL), 5);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
    /* The limits are accepted; one past them, and 0, are not. */
    set_int_option(api, fd, IPPROTO_TCP, TCP_KEEPIDLE, LINUX_MAX_TCP_KEEPIDLE);
    set_int_option(api, fd, IPPROTO_TCP, TCP_KEEPINTVL, LINUX_MAX_TCP_KEEPINTVL);
    set_int_option(api, fd, IPPROTO_TCP, TCP_KEEPCNT, LINUX_MAX_TCP_KEEPCNT);
    set_int_option(api, fd, IPPROTO_TCP, TCP_KEEPIDLE, 1);
    set_int_option(api, fd, IPPROTO_TCP, TCP_KEEPINTVL, 1);
    set_int_option(api, fd, IPPROTO_TCP, TCP_KEEPCNT, 1);
    int value = 0;
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &value, sizeof(value)), EINVAL);
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &value, sizeof(value)), EINVAL);
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &value, sizeof(value)), EINVAL);
    value = -1;
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &value, sizeof(value)), EINVAL);
    value = LINUX_MAX_TCP_KEEPIDLE + 1;
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &value, sizeof(value)), EINVAL);
    value = LINUX_MAX_TCP_KEEPINTVL + 1;
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &value, sizeof(value)), EINVAL);
    value = LINUX_MAX_TCP_KEEPCNT + 1;
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &value, sizeof(value)), EINVAL);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_KEEPIDLE), 1);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_KEEPINTVL), 1);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_TCP, TCP_KEEPCNT), 1);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(keepalive_probes_keep_an_idle_connection_open)
{
    struct pair pair = open_pair(api);
    set_int_option(api, pair.client, SOL_SOCKET, SO_KEEPALIVE, 1);
    set_int_option(api, pair.client, IPPROTO_TCP, TCP_KEEPIDLE, 1);
    set_int_option(api, pair.client, IPPROTO_TCP, TCP_KEEPINTVL, 1);
    set_int_option(api, pair.client, IPPROTO_TCP, TCP_KEEPCNT, 2);
    /* The peer answers the probes: nothing happens to the connection. */
    sleep_ms(2500);
    CHECK_EQ(poll_one(api, pair.client, POLLIN | POLLOUT | POLLRDHUP, 0), POLLOUT);
    CHECK_EQ(get_int_option(api, pair.client, SOL_SOCKET, SO_ERROR), 0);
    send_all(api, pair.client, "alive", 5);
    expect_bytes(api, pair.server, "alive", 5);
    close_pair(api, pair);
}

API_TEST(unknown_tcp_options)
{
    int fd = tcp_socket(api);
    int value = 0;
    socklen_t length = sizeof(value);
    CHECK_ERRNO(api->getsockopt(fd, IPPROTO_TCP, 12345, &value, &length), ENOPROTOOPT);
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_TCP, 12345, &value, sizeof(value)), ENOPROTOOPT);
    /* Other protocols' levels go to IP, which does not know them. */
    CHECK_ERRNO(api->getsockopt(fd, IPPROTO_UDP, 1, &value, &length), EOPNOTSUPP);
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_UDP, 1, &value, sizeof(value)), ENOPROTOOPT);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(accepted_socket_inherits_listener_options)
{
    int listener = tcp_socket(api);
    set_int_option(api, listener, IPPROTO_TCP, TCP_NODELAY, 1);
    set_int_option(api, listener, SOL_SOCKET, SO_KEEPALIVE, 1);
    set_int_option(api, listener, IPPROTO_TCP, TCP_KEEPIDLE, 77);
    set_int_option(api, listener, SOL_SOCKET, SO_RCVBUF, 50000);
    set_int_option(api, listener, SOL_SOCKET, SO_SNDBUF, 60000);
    struct sockaddr_in local = address_of("127.0.0.1", 5000);
    CHECK_EQ(api->bind(listener, CSA(local), sizeof(local)), 0);
    CHECK_EQ(api->listen(listener, 4), 0);
    int client = tcp_connected(api, "127.0.0.1", 5000);
    int server = accept_one(api, listener);
    CHECK_EQ(get_int_option(api, server, IPPROTO_TCP, TCP_NODELAY), 1);
    CHECK_EQ(get_int_option(api, server, SOL_SOCKET, SO_KEEPALIVE), 1);
    CHECK_EQ(get_int_option(api, server, IPPROTO_TCP, TCP_KEEPIDLE), 77);
    CHECK_EQ(get_int_option(api, server, SOL_SOCKET, SO_RCVBUF), 100000);
    CHECK_EQ(get_int_option(api, server, SOL_SOCKET, SO_SNDBUF), 120000);
    /* The client's are its own. */
    CHECK_EQ(get_int_option(api, client, IPPROTO_TCP, TCP_NODELAY), 0);
    CHECK_EQ(get_int_option(api, client, SOL_SOCKET, SO_KEEPALIVE), 0);
    CHECK_EQ(api->close(client), 0);
    CHECK_EQ(api->close(server), 0);
    CHECK_EQ(api->close(listener), 0);
}

/* ------------------------------------------------------------------ */
/* Buffer sizes                                                        */
/* ------------------------------------------------------------------ */

/* net.core.rmem_max is global, not per namespace: the exact clamp is
 * asserted only where the host has Linux's default. */
#define LINUX_DEFAULT_MEM_MAX 212992

API_TEST(so_rcvbuf_and_so_sndbuf_are_doubled_and_clamped)
{
    int fd = tcp_socket(api);
    set_int_option(api, fd, SOL_SOCKET, SO_RCVBUF, 10000);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_RCVBUF), 20000);
    set_int_option(api, fd, SOL_SOCKET, SO_SNDBUF, 10000);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_SNDBUF), 20000);
    set_int_option(api, fd, SOL_SOCKET, SO_RCVBUF, 1);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_RCVBUF), 2304);
    set_int_option(api, fd, SOL_SOCKET, SO_SNDBUF, 1);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_SNDBUF), 4608);
    set_int_option(api, fd, SOL_SOCKET, SO_RCVBUF, 1 << 30);
    int receive_clamp = get_int_option(api, fd, SOL_SOCKET, SO_RCVBUF);
    CHECK(receive_clamp >= 2 * LINUX_DEFAULT_MEM_MAX && receive_clamp < 1 << 30);
    if (read_sysctl("/proc/sys/net/core/rmem_max") == LINUX_DEFAULT_MEM_MAX)
        CHECK_EQ(receive_clamp, 2 * LINUX_DEFAULT_MEM_MAX);
    CHECK_EQ(api->close(fd), 0);

    /* Small buffers still carry a connection's data. */
    int listener = tcp_socket(api);
    set_int_option(api, listener, SOL_SOCKET, SO_RCVBUF, 4096);
    struct sockaddr_in local = address_of("127.0.0.1", 5000);
    CHECK_EQ(api->bind(listener, CSA(local), sizeof(local)), 0);
    CHECK_EQ(api->listen(listener, 4), 0);
    int client = tcp_socket(api);
    set_int_option(api, client, SOL_SOCKET, SO_SNDBUF, 4096);
    CHECK_EQ(api->connect(client, CSA(local), sizeof(local)), 0);
    int server = accept_one(api, listener);
    static char data[200000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i % 251);
    struct later job = {.api = api, .fd = client, .delay_ms = 0, .data = data,
                        .length = sizeof(data)};
    later_start(&job);
    expect_bytes(api, server, data, sizeof(data));
    later_join(&job);
    CHECK_EQ(api->close(client), 0);
    CHECK_EQ(api->close(server), 0);
    CHECK_EQ(api->close(listener), 0);
}

API_TEST(default_buffer_sizes_are_linux_tcp_defaults)
{
    /* net.ipv4.tcp_rmem[1] and tcp_wmem[1] of a new namespace. */
    int fd = tcp_socket(api);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_RCVBUF), LINUX_TCP_RMEM_DEFAULT);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_SNDBUF), LINUX_TCP_WMEM_DEFAULT);
    CHECK_EQ(api->close(fd), 0);
}

/* ------------------------------------------------------------------ */
/* Volume                                                              */
/* ------------------------------------------------------------------ */

#define LARGE_TRANSFER (8u << 20)

static void *send_large(void *argument)
{
    struct later *job = argument;
    /* One blocking send writes everything. */
    CHECK_EQ(job->api->send(job->fd, job->data, job->length, MSG_NOSIGNAL),
             (ssize_t)job->length);
    CHECK_EQ(job->api->shutdown(job->fd, SHUT_WR), 0);
    return NULL;
}

API_TEST(large_transfer_through_loopback_is_intact)
{
    struct pair pair = open_pair(api);
    unsigned char *data = malloc(LARGE_TRANSFER);
    unsigned char *received = malloc(LARGE_TRANSFER);
    CHECK(data != NULL && received != NULL);
    uint32_t state = 12345;
    for (size_t i = 0; i < LARGE_TRANSFER; i++) {
        state = state * 1103515245u + 12345u;
        data[i] = (unsigned char)(state >> 16);
    }
    struct later job = {.api = api, .fd = pair.client, .data = (const char *)data,
                        .length = LARGE_TRANSFER};
    CHECK_EQ(pthread_create(&job.thread, NULL, send_large, &job), 0);
    size_t total = 0;
    for (;;) {
        ssize_t n = api->recv(pair.server, received + total, LARGE_TRANSFER - total + 1 > 65536
                                                                 ? 65536
                                                                 : LARGE_TRANSFER - total + 1,
                              0);
        CHECK(n >= 0);
        if (n == 0)
            break;
        total += (size_t)n;
        CHECK(total <= LARGE_TRANSFER);
    }
    later_join(&job);
    CHECK_EQ(total, LARGE_TRANSFER);
    CHECK(memcmp(data, received, LARGE_TRANSFER) == 0);
    free(data);
    free(received);
    close_pair(api, pair);
}

API_TEST(tcp_congestion_selects_by_name)
{
    int fd = api->socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    /* The default differs between kernels (cubic, bbr ...); the calls do
     * not.  reno and cubic exist on both. */
    CHECK_EQ(api->setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "reno", 4), 0);
    char name[32];
    memset(name, 'x', sizeof(name));
    socklen_t length = sizeof(name);
    CHECK_EQ(api->getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &length), 0);
    CHECK_EQ(length, 16); /* TCP_CA_NAME_MAX, zero-padded */
    CHECK(strcmp(name, "reno") == 0);
    /* A short buffer gets that many bytes. */
    memset(name, 'x', sizeof(name));
    length = 2;
    CHECK_EQ(api->getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &length), 0);
    CHECK_EQ(length, 2);
    CHECK(memcmp(name, "rex", 3) == 0);
    CHECK_EQ(api->setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "cubic", 6), 0);
    length = sizeof(name);
    CHECK_EQ(api->getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &length), 0);
    CHECK(strcmp(name, "cubic") == 0);
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "no-such-algorithm", 17),
                ENOENT);
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "reno", 0), EINVAL);
    length = sizeof(name);
    CHECK_EQ(api->getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &length), 0);
    CHECK(strcmp(name, "cubic") == 0);
    /* An accepted connection keeps its listener's algorithm. */
    int listener = tcp_listener(api, "127.0.0.1", 5002, 4);
    CHECK_EQ(api->setsockopt(listener, IPPROTO_TCP, TCP_CONGESTION, "reno", 4), 0);
    int client = tcp_connected(api, "127.0.0.1", 5002);
    int server = api->accept(listener, NULL, NULL);
    CHECK(server >= 0);
    length = sizeof(name);
    CHECK_EQ(api->getsockopt(server, IPPROTO_TCP, TCP_CONGESTION, name, &length), 0);
    CHECK(strcmp(name, "reno") == 0);
    api->close(server);
    api->close(client);
    api->close(listener);
    api->close(fd);
}

API_TEST(tcp_info_of_an_established_connection)
{
    struct pair pair = open_pair(api);
    struct tcp_info info;
    socklen_t length = sizeof(info);
    CHECK_EQ(api->getsockopt(pair.client, IPPROTO_TCP, TCP_INFO, &info, &length), 0);
    CHECK(length > 0 && length <= sizeof(info));
    CHECK_EQ(info.tcpi_state, TCP_ESTABLISHED);
    /* Loopback offers and accepts timestamps, SACK and window scaling. */
    CHECK_EQ(info.tcpi_options & (TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE),
             TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE);
    CHECK_EQ(info.tcpi_snd_wscale, info.tcpi_rcv_wscale);
    CHECK(info.tcpi_rto >= 200000);
    CHECK_EQ(info.tcpi_unacked, 0);
    /* A short optlen: that many bytes (the state first). */
    unsigned char first[1] = {0};
    length = 1;
    CHECK_EQ(api->getsockopt(pair.client, IPPROTO_TCP, TCP_INFO, first, &length), 0);
    CHECK_EQ(length, 1);
    CHECK_EQ(first[0], TCP_ESTABLISHED);
    close_pair(api, pair);
}

/* Waits until fd reports events (POLLPRI ...) or 5 s pass. */
static short wait_for_events(const struct api *api, int fd, short events)
{
    struct pollfd entry = {.fd = fd, .events = events};
    CHECK_EQ(api->poll(&entry, 1, 5000), 1);
    return entry.revents;
}

API_TEST(urgent_byte_out_of_line_stops_reads_at_the_mark)
{
    struct pair pair = open_pair(api);
    char buffer[16];
    int mark = -1;
    /* Nothing urgent yet: MSG_OOB is EINVAL, and we are not at a mark. */
    CHECK_ERRNO(api->recv(pair.server, buffer, sizeof(buffer), MSG_OOB | MSG_DONTWAIT), EINVAL);
    CHECK_EQ(api->ioctl(pair.server, SIOCATMARK, &mark), 0);
    CHECK_EQ(mark, 0);
    CHECK_EQ(api->send(pair.client, "ab", 2, 0), 2);
    CHECK_EQ(api->send(pair.client, "c", 1, MSG_OOB), 1);
    CHECK_EQ(api->send(pair.client, "de", 2, 0), 2);
    CHECK(wait_for_events(api, pair.server, POLLPRI) & POLLPRI);
    /* The read stops at the mark. */
    CHECK_EQ(api->recv(pair.server, buffer, sizeof(buffer), 0), 2);
    CHECK(memcmp(buffer, "ab", 2) == 0);
    CHECK_EQ(api->ioctl(pair.server, SIOCATMARK, &mark), 0);
    CHECK_EQ(mark, 1);
    /* The urgent byte, once (a peek leaves it). */
    CHECK_EQ(api->recv(pair.server, buffer, sizeof(buffer), MSG_OOB | MSG_PEEK), 1);
    CHECK_EQ(buffer[0], 'c');
    CHECK_EQ(api->recv(pair.server, buffer, sizeof(buffer), MSG_OOB), 1);
    CHECK_EQ(buffer[0], 'c');
    CHECK_ERRNO(api->recv(pair.server, buffer, sizeof(buffer), MSG_OOB), EINVAL);
    /* The stream goes on without it. */
    size_t got = 0;
    while (got < 2) {
        ssize_t n = api->recv(pair.server, buffer + got, sizeof(buffer) - got, 0);
        CHECK(n > 0);
        got += (size_t)n;
    }
    CHECK_EQ(got, 2);
    CHECK(memcmp(buffer, "de", 2) == 0);
    CHECK_EQ(api->ioctl(pair.server, SIOCATMARK, &mark), 0);
    CHECK_EQ(mark, 0);
    close_pair(api, pair);
}

API_TEST(urgent_byte_inline_stays_in_the_stream)
{
    struct pair pair = open_pair(api);
    int on = 1;
    CHECK_EQ(api->setsockopt(pair.server, SOL_SOCKET, SO_OOBINLINE, &on, sizeof(on)), 0);
    int value = 0;
    socklen_t length = sizeof(value);
    CHECK_EQ(api->getsockopt(pair.server, SOL_SOCKET, SO_OOBINLINE, &value, &length), 0);
    CHECK_EQ(value, 1);
    CHECK_EQ(api->send(pair.client, "ab", 2, 0), 2);
    CHECK_EQ(api->send(pair.client, "c", 1, MSG_OOB), 1);
    CHECK_EQ(api->send(pair.client, "de", 2, 0), 2);
    char buffer[16];
    /* Readable; inline, the stream still pauses at the mark. */
    wait_for_events(api, pair.server, POLLIN);
    size_t got = 0;
    while (got < 2) {
        ssize_t n = api->recv(pair.server, buffer + got, sizeof(buffer) - got, 0);
        CHECK(n > 0);
        got += (size_t)n;
    }
    CHECK_EQ(got, 2);
    CHECK(memcmp(buffer, "ab", 2) == 0);
    int mark = 0;
    CHECK_EQ(api->ioctl(pair.server, SIOCATMARK, &mark), 0);
    CHECK_EQ(mark, 1);
    CHECK_ERRNO(api->recv(pair.server, buffer, sizeof(buffer), MSG_OOB), EINVAL);
    got = 0;
    while (got < 3) {
        ssize_t n = api->recv(pair.server, buffer + got, sizeof(buffer) - got, 0);
        CHECK(n > 0);
        got += (size_t)n;
    }
    CHECK_EQ(got, 3);
    CHECK(memcmp(buffer, "cde", 3) == 0);
    close_pair(api, pair);
}

API_TEST(msg_oob_is_for_tcp_only)
{
    int fd = api->socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_ERRNO(api->sendto(fd, "x", 1, MSG_OOB, SA(to), sizeof(to)), EOPNOTSUPP);
    int mark = 0;
    CHECK_ERRNO(api->ioctl(fd, SIOCATMARK, &mark), ENOTTY);
    api->close(fd);
}

#define MANY_CONNECTIONS 200

API_TEST(many_connections_to_one_listener)
{
    int listener = tcp_listener(api, "127.0.0.1", 5000, MANY_CONNECTIONS + 16);
    static int clients[MANY_CONNECTIONS];
    static int servers[MANY_CONNECTIONS];
    for (int i = 0; i < MANY_CONNECTIONS; i++)
        clients[i] = tcp_connected(api, "127.0.0.1", 5000);
    for (int i = 0; i < MANY_CONNECTIONS; i++) {
        struct sockaddr_in from;
        socklen_t length = sizeof(from);
        servers[i] = api->accept(listener, SA(from), &length);
        CHECK(servers[i] >= 0);
        /* Accepted in the order they connected. */
        CHECK_EQ(from.sin_port, local_address(api, clients[i]).sin_port);
    }
    set_nonblocking(api, listener);
    CHECK_ERRNO(api->accept(listener, NULL, NULL), EAGAIN);
    /* Each client says its number; its server echoes it. */
    for (int i = 0; i < MANY_CONNECTIONS; i++) {
        char message[16];
        int length = snprintf(message, sizeof(message), "n%d", i);
        send_all(api, clients[i], message, (size_t)length);
    }
    for (int i = 0; i < MANY_CONNECTIONS; i++) {
        char message[16];
        int length = snprintf(message, sizeof(message), "n%d", i);
        char buffer[16];
        CHECK(poll_one(api, servers[i], POLLIN, 2000) & POLLIN);
        CHECK_EQ(wait_fionread(api, servers[i], length), length);
        CHECK_EQ(api->recv(servers[i], buffer, sizeof(buffer), 0), length);
        CHECK(memcmp(buffer, message, (size_t)length) == 0);
        send_all(api, servers[i], buffer, (size_t)length);
    }
    for (int i = 0; i < MANY_CONNECTIONS; i++) {
        char message[16];
        int length = snprintf(message, sizeof(message), "n%d", i);
        expect_bytes(api, clients[i], message, (size_t)length);
    }
    for (int i = 0; i < MANY_CONNECTIONS; i++) {
        CHECK_EQ(api->close(clients[i]), 0);
        CHECK_EQ(api->close(servers[i]), 0);
    }
    CHECK_EQ(api->close(listener), 0);
}

static const struct check_test tests[] = {
    API_ENTRIES(so_type_protocol_and_acceptconn),
    API_ENTRIES(listen_on_unbound_socket_picks_an_ephemeral_port),
    API_ENTRIES(listen_twice_is_allowed),
    API_ENTRIES(listen_on_connected_socket_is_einval),
    API_ENTRIES(accept_on_non_listening_socket_is_einval),
    API_ENTRIES(nonblocking_accept_is_eagain),
    API_ENTRIES(blocking_accept_times_out_with_so_rcvtimeo),
    API_ENTRIES(blocking_accept_wakes_when_a_client_connects),
    API_ENTRIES(accept_returns_the_peer_address),
    API_ENTRIES(getsockname_and_getpeername_on_both_ends),
    API_ENTRIES(fresh_socket_names),
    API_ENTRIES(connect_to_closed_port_is_econnrefused),
    API_ENTRIES(refused_socket_may_connect_again),
    API_ENTRIES(nonblocking_connect_to_closed_port_reports_through_poll_and_so_error),
    API_ENTRIES(nonblocking_connect_error_is_reported_by_the_next_connect),
    API_ENTRIES(nonblocking_connect_to_listener_completes),
    API_ENTRIES(connect_twice_is_eisconn),
    API_ENTRIES(nonblocking_connect_in_progress),
    API_ENTRIES(blocking_connect_with_so_sndtimeo_is_einprogress),
    API_ENTRIES(connect_checks_address),
    API_ENTRIES(connect_af_unspec_disconnects),
    API_ENTRIES(connect_af_unspec_on_listener_stops_listening),
    API_ENTRIES(bind_same_port_twice_is_eaddrinuse),
    API_ENTRIES(so_reuseaddr_allows_bind_but_not_two_listeners),
    API_ENTRIES(so_reuseaddr_on_one_socket_only_is_eaddrinuse),
    API_ENTRIES(port_of_a_connection_still_closing_is_bindable_with_so_reuseaddr),
    API_ENTRIES(data_calls_on_unconnected_socket),
    API_ENTRIES(data_calls_on_listening_socket),
    API_ENTRIES(shutdown_of_unconnected_socket_is_enotconn),
    API_ENTRIES(shutdown_of_unconnected_socket_still_shuts_it),
    API_ENTRIES(shutdown_of_listener_stops_listening),
    API_ENTRIES(shutdown_of_listener_wakes_blocked_accept),
    API_ENTRIES(data_round_trip),
    API_ENTRIES(sendto_with_address_on_connected_socket_ignores_it),
    API_ENTRIES(msg_peek_leaves_data_queued),
    API_ENTRIES(msg_waitall_waits_for_the_full_amount),
    API_ENTRIES(msg_waitall_with_so_rcvtimeo_returns_what_arrived),
    API_ENTRIES(msg_dontwait_and_o_nonblock_are_eagain),
    API_ENTRIES(so_rcvtimeo_on_connected_socket_times_out),
    API_ENTRIES(blocking_recv_wakes_when_data_arrives),
    API_ENTRIES(fionread_counts_queued_bytes),
    API_ENTRIES(recv_returns_zero_after_peer_shutdown_wr),
    API_ENTRIES(send_after_own_shutdown_wr_is_epipe),
    API_ENTRIES(shutdown_rdwr_of_both_ends_hangs_up),
    API_ENTRIES(shutdown_rd_makes_recv_return_zero),
    API_ENTRIES(close_with_unread_data_resets_the_peer),
    API_ENTRIES(send_after_peer_reset_reports_econnreset_then_epipe),
    API_ENTRIES(so_error_takes_the_reset),
    API_ENTRIES(tcp_congestion_selects_by_name),
    API_ENTRIES(urgent_byte_out_of_line_stops_reads_at_the_mark),
    API_ENTRIES(urgent_byte_inline_stays_in_the_stream),
    API_ENTRIES(msg_oob_is_for_tcp_only),
    API_ENTRIES(tcp_info_of_an_established_connection),
    API_ENTRIES(orderly_close_gives_end_of_stream_then_epipe),
    API_ENTRIES(so_linger_zero_close_resets_the_peer),
    API_ENTRIES(so_linger_option_values),
    API_ENTRIES(closing_listener_resets_connections_not_yet_accepted),
    API_ENTRIES(poll_reports_stream_readiness),
    API_ENTRIES(poll_waits_for_data),
    API_ENTRIES(full_send_buffer_is_not_writable),
    API_ENTRIES(tcp_nodelay),
    API_ENTRIES(tcp_cork),
    API_ENTRIES(tcp_maxseg),
    API_ENTRIES(tcp_maxseg_of_unrestricted_loopback_connection_is_large),
    API_ENTRIES(so_keepalive_and_tcp_keepalive_parameters),
    API_ENTRIES(keepalive_probes_keep_an_idle_connection_open),
    API_ENTRIES(unknown_tcp_options),
    API_ENTRIES(accepted_socket_inherits_listener_options),
    API_ENTRIES(so_rcvbuf_and_so_sndbuf_are_doubled_and_clamped),
    API_ENTRIES(default_buffer_sizes_are_linux_tcp_defaults),
    API_ENTRIES(large_transfer_through_loopback_is_intact),
    API_ENTRIES(many_connections_to_one_listener),
};

int main(int argc, char **argv)
{
    /* Connections closed by a test leave TIME_WAIT behind; the usock
     * variant's teardown waits for them to go. */
    api_usock_time_wait_ns = 100u * 1000 * 1000;
    /* A stray SIGPIPE would end a test without saying why. */
    signal(SIGPIPE, SIG_IGN);
    return check_run(tests, sizeof(tests) / sizeof(tests[0]), 60, argc, argv);
}
