/*
 * test_attach.c - the sockets API served to other processes (usock_attach).
 *
 * Each test makes a temporary directory, forks the client processes first
 * (so they hold nothing of the stack), then runs a stack in threaded mode on
 * an in-memory link in this process and serves the API at DIR/test.api.  A
 * child attaches (retrying until the endpoint answers), does its part and
 * exits 0 when every check held; the parent waits for it and checks the
 * stack's socket table: no descriptor of any client is left.  Children
 * and parent step together through pipes where the order matters.
 *
 * Covered: TCP between two attached sockets and with the stack's own
 * sockets, UDP with addresses and ancillary data, nonblocking accept and
 * connect, a blocking recv woken by data from another thread, usock_poll
 * over several descriptors, options, fcntl and ioctl, EBADF for another
 * client's descriptor, descriptors closed when a client exits and when it
 * is killed blocked in recv, ss's owner column, clients that send
 * garbage, leave replies unread, never speak or open connection after
 * connection (refused past a process's share) while another is served,
 * usock_dup in process and attached, a fork sharing a listener and a
 * connection with the child (REMOTE_FORK), and small sends gathered in
 * shared memory: whole and in order, sent by the stack when the client is
 * killed with them still gathered but never twice what a flush already
 * sent, a failed flush reported by a later send, no gathering on a full
 * socket (EAGAIN), a fork that made no child giving its share back at
 * once, and a signal ending a blocked accept and poll with EINTR (but not
 * an accept when the handler asks for SA_RESTART).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "control.h"
#include "remote/client.h"
#include "remote/protocol.h"
#include "usock.h"

#define STACK_ADDRESS "198.18.0.1"

struct world {
    char directory[64];
    char path[100];
    struct usock_stack *stack;
    struct usock_link *far_end;
    size_t client_socket_limit; /* for the stack's config; 0: its default */
};

static uint64_t now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

static struct sockaddr_in address_of(const char *text, uint16_t port)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, text, &address.sin_addr);
    return address;
}

/* The temporary directory and the endpoint's path, before any fork. */
static void world_prepare(struct world *world)
{
    snprintf(world->directory, sizeof(world->directory), "/tmp/usock-attach.XXXXXX");
    CHECK(mkdtemp(world->directory) != NULL);
    snprintf(world->path, sizeof(world->path), "%s/test.api", world->directory);
    world->client_socket_limit = 0;
}

/* The stack, threaded, serving the API at world->path. */
static void world_start(struct world *world)
{
    struct usock_link *link;
    CHECK_EQ(usock_link_mem_pair(&link, &world->far_end), 0);
    struct usock_stack_config config;
    usock_stack_config_init(&config);
    config.link = link;
    inet_pton(AF_INET, STACK_ADDRESS, &config.address);
    config.prefix_length = 24;
    config.tcp_time_wait_ns = 100000000; /* 100 ms */
    config.client_socket_limit = world->client_socket_limit;
    world->stack = usock_stack_new(&config);
    CHECK(world->stack != NULL);
    CHECK_EQ(usock_stack_serve_api(world->stack, world->path), -EINVAL); /* not started */
    CHECK_EQ(usock_stack_start(world->stack), 0);
    CHECK_EQ(usock_stack_serve_api(world->stack, world->path), 0);
    CHECK_EQ(usock_stack_serve_api(world->stack, world->path), -EALREADY);
}

/* Descriptors attached clients hold in the stack. */
static size_t world_client_sockets(struct world *world, int pid)
{
    struct usock_socket_info rows[64];
    size_t count = usock_stack_sockets(world->stack, rows, 64);
    size_t owned = 0;
    for (size_t i = 0; i < count && i < 64; i++)
        if (rows[i].owner_pid != 0 && (pid == 0 || rows[i].owner_pid == pid))
            owned++;
    return owned;
}

/* Waits up to 5 s for the clients' descriptors to number expected. */
static void world_expect_client_sockets(struct world *world, int pid, size_t expected)
{
    uint64_t deadline = now_ms() + 5000;
    while (world_client_sockets(world, pid) != expected && now_ms() < deadline)
        usleep(10000);
    CHECK_EQ(world_client_sockets(world, pid), expected);
}

/* Stops the stack (no client descriptors may be left) and removes the
 * directory. */
static void world_finish(struct world *world)
{
    world_expect_client_sockets(world, 0, 0);
    usock_stack_free(world->stack);
    usock_link_close(world->far_end);
    struct stat status;
    CHECK(stat(world->path, &status) < 0); /* the endpoint went with the stack */
    CHECK_EQ(rmdir(world->directory), 0);
}

/* A child's attach: retries while the parent is still starting the stack. */
static struct usock_stack *attach_retrying(const char *path)
{
    uint64_t deadline = now_ms() + 5000;
    for (;;) {
        struct usock_stack *stack = usock_attach_path(path);
        if (stack)
            return stack;
        CHECK(errno == ENOENT || errno == ECONNREFUSED);
        CHECK(now_ms() < deadline);
        usleep(5000);
    }
}

/* Forks a child that runs body(path, argument) and exits 0 (a failed
 * CHECK exits 1). */
static pid_t spawn(struct world *world, void (*body)(const char *path, void *argument),
                   void *argument)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(30);
        body(world->path, argument);
        exit(0);
    }
    return pid;
}

static void expect_exit_zero(pid_t pid)
{
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

/* A pipe to say "go" across processes: one byte each time. */
static void signal_pipe(int fd, int value)
{
    CHECK_EQ(write(fd, &value, sizeof(value)), (ssize_t)sizeof(value));
}

static int wait_pipe(int fd)
{
    int value = -1;
    CHECK_EQ(read(fd, &value, sizeof(value)), (ssize_t)sizeof(value));
    return value;
}

/* A TCP listener on port of the stack's address (any address). */
static int listener_on(struct usock_stack *stack, uint16_t port)
{
    int fd = usock_socket(stack, AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    int one = 1;
    CHECK_EQ(usock_setsockopt(stack, fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
    struct sockaddr_in local = address_of("0.0.0.0", port);
    CHECK_EQ(usock_bind(stack, fd, (struct sockaddr *)&local, sizeof(local)), 0);
    CHECK_EQ(usock_listen(stack, fd, 16), 0);
    return fd;
}

/* A connection to port of the stack's address.  Refused, it is tried
 * again for up to 5 s: a child may attach before the parent has made the
 * listener it connects to. */
static int connected_to(struct usock_stack *stack, uint16_t port)
{
    uint64_t deadline = now_ms() + 5000;
    for (;;) {
        int fd = usock_socket(stack, AF_INET, SOCK_STREAM, 0);
        CHECK(fd >= 0);
        struct sockaddr_in peer = address_of(STACK_ADDRESS, port);
        if (usock_connect(stack, fd, (struct sockaddr *)&peer, sizeof(peer)) == 0)
            return fd;
        CHECK(errno == ECONNREFUSED && now_ms() < deadline);
        CHECK_EQ(usock_close(stack, fd), 0);
        usleep(10000);
    }
}

/* ---- TCP between two attached sockets ------------------------------- */

struct bulk_send {
    struct usock_stack *stack;
    int fd;
    const uint8_t *data;
    size_t length;
};

static void *bulk_sender(void *argument)
{
    struct bulk_send *send = argument;
    CHECK_EQ(usock_send(send->stack, send->fd, send->data, send->length, 0),
             (ssize_t)send->length);
    return NULL;
}

static void tcp_between_attached_body(const char *path, void *argument)
{
    (void)argument;
    struct usock_stack *stack = attach_retrying(path);
    int listener = listener_on(stack, 7000);
    struct sockaddr_in peer;
    socklen_t length = sizeof(peer);
    CHECK_EQ(usock_fcntl(stack, listener, F_SETFL, O_NONBLOCK), 0);
    CHECK_ERRNO(usock_accept(stack, listener, (struct sockaddr *)&peer, &length), EAGAIN);
    CHECK_EQ(usock_fcntl(stack, listener, F_SETFL, 0), 0);
    int client = connected_to(stack, 7000);
    length = sizeof(peer);
    int server = usock_accept(stack, listener, (struct sockaddr *)&peer, &length);
    CHECK(server >= 0);
    CHECK_EQ(length, sizeof(peer));
    struct sockaddr_in name;
    socklen_t name_length = sizeof(name);
    CHECK_EQ(usock_getsockname(stack, client, (struct sockaddr *)&name, &name_length), 0);
    CHECK_EQ(name.sin_port, peer.sin_port);
    name_length = sizeof(name);
    CHECK_EQ(usock_getpeername(stack, client, (struct sockaddr *)&name, &name_length), 0);
    CHECK_EQ(ntohs(name.sin_port), 7000);
    /* A short name buffer is filled as far as it goes; the length says all. */
    name_length = 4;
    memset(&name, 0, sizeof(name));
    CHECK_EQ(usock_getpeername(stack, client, (struct sockaddr *)&name, &name_length), 0);
    CHECK_EQ(name_length, sizeof(name));
    CHECK_EQ(name.sin_port, htons(7000));
    CHECK_EQ(name.sin_addr.s_addr, 0);

    CHECK_EQ(usock_send(stack, client, "hello", 5, 0), 5);
    char small[16];
    CHECK_EQ(usock_recv(stack, server, small, sizeof(small), 0), 5);
    CHECK(memcmp(small, "hello", 5) == 0);

    /* writev of three pieces, read back with readv across other boundaries */
    struct iovec pieces[3] = {{"ab", 2}, {"cde", 3}, {"fghij", 5}};
    CHECK_EQ(usock_writev(stack, client, pieces, 3), 10);
    char first[4], second[6];
    struct iovec into[2] = {{first, 4}, {second, 6}};
    uint64_t deadline = now_ms() + 2000;
    int queued = 0;
    while (queued < 10 && now_ms() < deadline)
        CHECK_EQ(usock_ioctl(stack, server, FIONREAD, &queued), 0);
    CHECK_EQ(queued, 10);
    CHECK_EQ(usock_readv(stack, server, into, 2), 10);
    CHECK(memcmp(first, "abcd", 4) == 0 && memcmp(second, "efghij", 6) == 0);

    /* 3 MB one way while this thread reads it back with MSG_WAITALL: the
     * sender blocks in send (its connection busy) while the reader uses
     * another. */
    size_t total = 3 << 20;
    uint8_t *data = malloc(total), *back = malloc(total);
    CHECK(data && back);
    for (size_t i = 0; i < total; i++)
        data[i] = (uint8_t)(i * 7 + (i >> 16));
    struct bulk_send send = {stack, client, data, total};
    pthread_t thread;
    CHECK_EQ(pthread_create(&thread, NULL, bulk_sender, &send), 0);
    CHECK_EQ(usock_recv(stack, server, back, total, MSG_WAITALL), (ssize_t)total);
    CHECK_EQ(pthread_join(thread, NULL), 0);
    CHECK(memcmp(data, back, total) == 0);
    free(data);
    free(back);

    /* MSG_PEEK leaves the bytes; shutdown gives EOF */
    CHECK_EQ(usock_send(stack, server, "xyz", 3, 0), 3);
    CHECK_EQ(usock_recv(stack, client, small, 3, MSG_PEEK | MSG_WAITALL), 3);
    CHECK_EQ(usock_recv(stack, client, small, sizeof(small), 0), 3);
    CHECK(memcmp(small, "xyz", 3) == 0);
    CHECK_EQ(usock_shutdown(stack, server, SHUT_WR), 0);
    CHECK_EQ(usock_recv(stack, client, small, sizeof(small), 0), 0);
    CHECK_ERRNO(usock_shutdown(stack, server, 7), EINVAL);

    CHECK_EQ(usock_close(stack, client), 0);
    CHECK_EQ(usock_close(stack, server), 0);
    CHECK_EQ(usock_close(stack, listener), 0);
    CHECK_ERRNO(usock_close(stack, listener), EBADF);
    usock_stack_free(stack);
}

static void test_tcp_between_two_attached_sockets(void)
{
    struct world world;
    world_prepare(&world);
    pid_t child = spawn(&world, tcp_between_attached_body, NULL);
    world_start(&world);
    expect_exit_zero(child);
    world_finish(&world);
}

/* ---- TCP with the stack's own sockets ------------------------------- */

struct echo_service {
    struct usock_stack *stack;
    int listener;
};

static void *echo_once(void *argument)
{
    struct echo_service *echo = argument;
    int fd = usock_accept(echo->stack, echo->listener, NULL, NULL);
    CHECK(fd >= 0);
    char buffer[4096];
    for (;;) {
        ssize_t got = usock_recv(echo->stack, fd, buffer, sizeof(buffer), 0);
        CHECK(got >= 0);
        if (got == 0)
            break;
        CHECK_EQ(usock_send(echo->stack, fd, buffer, (size_t)got, 0), got);
    }
    usock_close(echo->stack, fd);
    return NULL;
}

static void against_in_process_body(const char *path, void *argument)
{
    int *pipes = argument;
    struct usock_stack *stack = attach_retrying(path);
    /* to the in-process echo on 7, with a nonblocking connect (tried again
     * while refused: the parent makes the echo after serving the API) */
    uint64_t deadline = now_ms() + 5000;
    int fd, error;
    do {
        fd = usock_socket(stack, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        CHECK(fd >= 0);
        struct sockaddr_in echo = address_of(STACK_ADDRESS, 7);
        int result = usock_connect(stack, fd, (struct sockaddr *)&echo, sizeof(echo));
        CHECK(result == 0 || errno == EINPROGRESS);
        struct pollfd entry = {.fd = fd, .events = POLLOUT};
        CHECK_EQ(usock_poll(stack, &entry, 1, 5000), 1);
        CHECK(entry.revents & POLLOUT);
        error = -1;
        socklen_t length = sizeof(error);
        CHECK_EQ(usock_getsockopt(stack, fd, SOL_SOCKET, SO_ERROR, &error, &length), 0);
        if (error == ECONNREFUSED) {
            CHECK_EQ(usock_close(stack, fd), 0);
            usleep(10000);
        }
    } while (error == ECONNREFUSED && now_ms() < deadline);
    CHECK_EQ(error, 0);
    CHECK_EQ(usock_fcntl(stack, fd, F_SETFL, 0), 0);
    CHECK_EQ(usock_send(stack, fd, "ping", 4, 0), 4);
    char buffer[8];
    CHECK_EQ(usock_recv(stack, fd, buffer, 4, MSG_WAITALL), 4);
    CHECK(memcmp(buffer, "ping", 4) == 0);
    CHECK_EQ(usock_shutdown(stack, fd, SHUT_WR), 0);
    CHECK_EQ(usock_recv(stack, fd, buffer, sizeof(buffer), 0), 0);
    CHECK_EQ(usock_close(stack, fd), 0);

    /* and the other way: the stack's own program connects to us */
    int listener = listener_on(stack, 7001);
    signal_pipe(pipes[1], 1);
    int server = usock_accept(stack, listener, NULL, NULL);
    CHECK(server >= 0);
    CHECK_EQ(usock_recv(stack, server, buffer, 5, MSG_WAITALL), 5);
    CHECK(memcmp(buffer, "local", 5) == 0);
    CHECK_EQ(usock_send(stack, server, "remote", 6, 0), 6);
    CHECK_EQ(usock_close(stack, server), 0);
    CHECK_EQ(usock_close(stack, listener), 0);
    usock_stack_free(stack);
}

static void test_tcp_with_the_stacks_own_sockets(void)
{
    struct world world;
    world_prepare(&world);
    int pipes[2];
    CHECK_EQ(pipe(pipes), 0);
    pid_t child = spawn(&world, against_in_process_body, pipes);
    world_start(&world);
    struct echo_service echo = {world.stack, listener_on(world.stack, 7)};
    pthread_t thread;
    CHECK_EQ(pthread_create(&thread, NULL, echo_once, &echo), 0);
    CHECK_EQ(wait_pipe(pipes[0]), 1);
    int fd = connected_to(world.stack, 7001);
    CHECK_EQ(usock_send(world.stack, fd, "local", 5, 0), 5);
    char buffer[8];
    CHECK_EQ(usock_recv(world.stack, fd, buffer, 6, MSG_WAITALL), 6);
    CHECK(memcmp(buffer, "remote", 6) == 0);
    CHECK_EQ(usock_close(world.stack, fd), 0);
    CHECK_EQ(pthread_join(thread, NULL), 0);
    expect_exit_zero(child);
    CHECK_EQ(usock_close(world.stack, echo.listener), 0);
    close(pipes[0]);
    close(pipes[1]);
    world_finish(&world);
}

/* ---- UDP ----------------------------------------------------------- */

static void udp_body(const char *path, void *argument)
{
    (void)argument;
    struct usock_stack *stack = attach_retrying(path);
    int a = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    int b = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    CHECK(a >= 0 && b >= 0);
    struct sockaddr_in at_a = address_of(STACK_ADDRESS, 5001), at_b = address_of(STACK_ADDRESS, 5002);
    CHECK_EQ(usock_bind(stack, a, (struct sockaddr *)&at_a, sizeof(at_a)), 0);
    CHECK_EQ(usock_bind(stack, b, (struct sockaddr *)&at_b, sizeof(at_b)), 0);
    char buffer[64];
    CHECK_ERRNO(usock_recv(stack, b, buffer, sizeof(buffer), MSG_DONTWAIT), EAGAIN);
    int one = 1;
    CHECK_EQ(usock_setsockopt(stack, b, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)), 0);
    CHECK_EQ(usock_setsockopt(stack, b, IPPROTO_IP, IP_RECVTTL, &one, sizeof(one)), 0);
    CHECK_EQ(usock_sendto(stack, a, "datagram one", 12, 0, (struct sockaddr *)&at_b, sizeof(at_b)),
             12);
    /* recvfrom names the sender */
    struct sockaddr_in from;
    socklen_t from_length = sizeof(from);
    CHECK_EQ(usock_recvfrom(stack, b, buffer, sizeof(buffer), MSG_PEEK, (struct sockaddr *)&from,
                            &from_length), 12);
    CHECK_EQ(from_length, sizeof(from));
    CHECK_EQ(ntohs(from.sin_port), 5001);
    /* recvmsg with a short buffer: MSG_TRUNC, the whole length with the
     * flag, and the ancillary data */
    union {
        struct cmsghdr align;
        char bytes[256];
    } control;
    struct iovec vector = {buffer, 8};
    struct msghdr message = {.msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &vector,
                             .msg_iovlen = 1, .msg_control = control.bytes,
                             .msg_controllen = sizeof(control.bytes)};
    CHECK_EQ(usock_recvmsg(stack, b, &message, MSG_TRUNC), 12);
    CHECK(message.msg_flags & MSG_TRUNC);
    CHECK(memcmp(buffer, "datagram", 8) == 0);
    bool saw_packet_info = false, saw_ttl = false;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo info;
            memcpy(&info, CMSG_DATA(c), sizeof(info));
            CHECK_EQ(info.ipi_addr.s_addr, at_b.sin_addr.s_addr);
            saw_packet_info = true;
        }
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL)
            saw_ttl = true;
    }
    CHECK(saw_packet_info && saw_ttl);
    /* a connected socket, send and recv; a datagram too large is EMSGSIZE */
    CHECK_EQ(usock_connect(stack, a, (struct sockaddr *)&at_b, sizeof(at_b)), 0);
    CHECK_EQ(usock_send(stack, a, "two", 3, 0), 3);
    CHECK_EQ(usock_recv(stack, b, buffer, sizeof(buffer), 0), 3);
    size_t huge_length = 70000;
    char *huge = calloc(1, huge_length);
    CHECK(huge);
    CHECK_ERRNO(usock_send(stack, a, huge, huge_length, 0), EMSGSIZE);
    free(huge);
    CHECK_ERRNO(usock_sendto(stack, a, "x", 1, 0, (struct sockaddr *)&at_b, 200), EINVAL);
    CHECK_ERRNO(usock_socket(stack, AF_INET6, SOCK_DGRAM, 0), EAFNOSUPPORT);
    CHECK_EQ(usock_close(stack, a), 0);
    CHECK_EQ(usock_close(stack, b), 0);
    usock_stack_free(stack);
}

static void test_udp_sendto_recvfrom_and_ancillary_data(void)
{
    struct world world;
    world_prepare(&world);
    pid_t child = spawn(&world, udp_body, NULL);
    world_start(&world);
    expect_exit_zero(child);
    world_finish(&world);
}

/* ---- blocking recv and poll ----------------------------------------- */

struct delayed {
    struct usock_stack *stack;
    int fd;
    struct sockaddr_in to;
};

static void *send_later(void *argument)
{
    struct delayed *later = argument;
    usleep(200000);
    CHECK_EQ(usock_sendto(later->stack, later->fd, "late", 4, 0, (struct sockaddr *)&later->to,
                          sizeof(later->to)), 4);
    return NULL;
}

static void blocking_and_poll_body(const char *path, void *argument)
{
    (void)argument;
    struct usock_stack *stack = attach_retrying(path);
    int fds[3];
    struct sockaddr_in at[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
        CHECK(fds[i] >= 0);
        at[i] = address_of(STACK_ADDRESS, (uint16_t)(6000 + i));
        CHECK_EQ(usock_bind(stack, fds[i], (struct sockaddr *)&at[i], sizeof(at[i])), 0);
    }
    /* a blocking recv is woken by data another thread sends meanwhile */
    struct delayed later = {stack, fds[0], at[1]};
    pthread_t thread;
    CHECK_EQ(pthread_create(&thread, NULL, send_later, &later), 0);
    char buffer[16];
    uint64_t started = now_ms();
    CHECK_EQ(usock_recv(stack, fds[1], buffer, sizeof(buffer), 0), 4);
    CHECK(now_ms() - started >= 150);
    CHECK_EQ(pthread_join(thread, NULL), 0);

    /* poll over three: nothing within 150 ms, then two readable */
    struct pollfd entries[4] = {{.fd = fds[0], .events = POLLIN},
                                {.fd = fds[1], .events = POLLIN},
                                {.fd = fds[2], .events = POLLIN | POLLOUT},
                                {.fd = -1, .events = POLLIN}};
    entries[2].events = POLLIN;
    started = now_ms();
    CHECK_EQ(usock_poll(stack, entries, 4, 150), 0);
    CHECK(now_ms() - started >= 140);
    later = (struct delayed){stack, fds[0], at[2]};
    CHECK_EQ(pthread_create(&thread, NULL, send_later, &later), 0);
    CHECK_EQ(usock_poll(stack, entries, 4, 5000), 1);
    CHECK_EQ(entries[2].revents, POLLIN);
    CHECK_EQ(entries[0].revents, 0);
    CHECK_EQ(entries[3].revents, 0);
    CHECK_EQ(pthread_join(thread, NULL), 0);
    CHECK_EQ(usock_sendto(stack, fds[2], "x", 1, 0, (struct sockaddr *)&at[0], sizeof(at[0])), 1);
    CHECK_EQ(usock_poll(stack, entries, 4, -1), 2);
    CHECK(entries[0].revents & POLLIN);
    /* SO_RCVTIMEO, O_NONBLOCK, FIONBIO */
    struct timeval timeout = {.tv_usec = 100000};
    CHECK_EQ(usock_setsockopt(stack, fds[1], SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)), 0);
    started = now_ms();
    CHECK_ERRNO(usock_recv(stack, fds[1], buffer, sizeof(buffer), 0), EAGAIN);
    CHECK(now_ms() - started >= 90);
    struct timeval back;
    socklen_t length = sizeof(back);
    CHECK_EQ(usock_getsockopt(stack, fds[1], SOL_SOCKET, SO_RCVTIMEO, &back, &length), 0);
    CHECK_EQ(length, sizeof(back));
    CHECK_EQ(back.tv_usec, 100000);
    int on = 1;
    CHECK_EQ(usock_ioctl(stack, fds[2], FIONBIO, &on), 0);
    CHECK(usock_fcntl(stack, fds[2], F_GETFL, 0) & O_NONBLOCK);
    CHECK_EQ(usock_recv(stack, fds[2], buffer, sizeof(buffer), 0), 4);
    CHECK_ERRNO(usock_recv(stack, fds[2], buffer, sizeof(buffer), 0), EAGAIN);
    CHECK_ERRNO(usock_ioctl(stack, fds[2], 0x12345, &on), ENOTTY);
    CHECK_ERRNO(usock_getsockopt(stack, fds[2], SOL_SOCKET, SO_TYPE, NULL, &length), EFAULT);
    int small = 0;
    length = 2; /* a short value buffer: filled as far as it goes */
    CHECK_EQ(usock_getsockopt(stack, fds[2], SOL_SOCKET, SO_TYPE, &small, &length), 0);
    CHECK_EQ(length, 2);
    CHECK_EQ(small, SOCK_DGRAM);
    CHECK_ERRNO(usock_setsockopt(stack, fds[2], SOL_SOCKET, 9999, &on, sizeof(on)), ENOPROTOOPT);
    /* the stack-level calls refuse an attached handle */
    CHECK_EQ(usock_stack_start(stack), -EINVAL);
    CHECK_EQ(usock_stack_serve_control(stack, "/tmp/nowhere.sock"), -EINVAL);
    CHECK_EQ(usock_stack_serve_api(stack, "/tmp/nowhere.api"), -EINVAL);
    errno = 0;
    CHECK_EQ(usock_stack_poll(stack, 0), USOCK_NEVER);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(usock_stack_wait_fd(stack), -1);
    CHECK_EQ(usock_stack_sockets(stack, NULL, 0), 0);
    usock_stack_stop(stack);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(usock_close(stack, fds[i]), 0);
    usock_stack_free(stack);
}

static void test_blocking_recv_and_poll_over_several_descriptors(void)
{
    struct world world;
    world_prepare(&world);
    pid_t child = spawn(&world, blocking_and_poll_body, NULL);
    world_start(&world);
    expect_exit_zero(child);
    world_finish(&world);
}

/* ---- isolation ----------------------------------------------------- */

struct two_clients {
    int to_second[2]; /* first -> second: the descriptor */
    int to_first[2];  /* second -> first: done trying */
};

static void owner_body(const char *path, void *argument)
{
    struct two_clients *pipes = argument;
    struct usock_stack *stack = attach_retrying(path);
    int fd = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in local = address_of(STACK_ADDRESS, 5300);
    CHECK_EQ(usock_bind(stack, fd, (struct sockaddr *)&local, sizeof(local)), 0);
    signal_pipe(pipes->to_second[1], fd);
    CHECK_EQ(wait_pipe(pipes->to_first[0]), 0);
    /* untouched by the other client's attempts */
    struct sockaddr_in name;
    socklen_t length = sizeof(name);
    CHECK_EQ(usock_getsockname(stack, fd, (struct sockaddr *)&name, &length), 0);
    CHECK_EQ(ntohs(name.sin_port), 5300);
    CHECK_EQ(usock_close(stack, fd), 0);
    usock_stack_free(stack);
}

static void intruder_body(const char *path, void *argument)
{
    struct two_clients *pipes = argument;
    struct usock_stack *stack = attach_retrying(path);
    int theirs = wait_pipe(pipes->to_second[0]);
    char buffer[8];
    struct sockaddr_in peer = address_of(STACK_ADDRESS, 9);
    socklen_t length = sizeof(peer);
    CHECK_ERRNO(usock_send(stack, theirs, "x", 1, 0), EBADF);
    CHECK_ERRNO(usock_recv(stack, theirs, buffer, sizeof(buffer), MSG_DONTWAIT), EBADF);
    CHECK_ERRNO(usock_connect(stack, theirs, (struct sockaddr *)&peer, sizeof(peer)), EBADF);
    CHECK_ERRNO(usock_getsockname(stack, theirs, (struct sockaddr *)&peer, &length), EBADF);
    CHECK_ERRNO(usock_fcntl(stack, theirs, F_SETFL, O_NONBLOCK), EBADF);
    CHECK_ERRNO(usock_close(stack, theirs), EBADF);
    struct pollfd entry = {.fd = theirs, .events = POLLIN};
    CHECK_EQ(usock_poll(stack, &entry, 1, 0), 1);
    CHECK_EQ(entry.revents, POLLNVAL);
    signal_pipe(pipes->to_first[1], 0);
    usock_stack_free(stack);
}

static void test_another_clients_descriptor_is_ebadf(void)
{
    struct world world;
    world_prepare(&world);
    struct two_clients pipes;
    CHECK_EQ(pipe(pipes.to_second), 0);
    CHECK_EQ(pipe(pipes.to_first), 0);
    pid_t owner = spawn(&world, owner_body, &pipes);
    pid_t intruder = spawn(&world, intruder_body, &pipes);
    world_start(&world);
    expect_exit_zero(intruder);
    expect_exit_zero(owner);
    world_finish(&world);
    for (int i = 0; i < 2; i++) {
        close(pipes.to_second[i]);
        close(pipes.to_first[i]);
    }
}

/* ---- a client's end ------------------------------------------------ */

/* Makes three descriptors (a listener, a connection, a UDP socket), says
 * so, then either exits without detaching or blocks in recv. */
static void holder_body(const char *path, void *argument)
{
    int *pipes = argument;
    struct usock_stack *stack = attach_retrying(path);
    int listener = listener_on(stack, 7100);
    int client = connected_to(stack, 7100);
    int udp = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    CHECK(listener >= 0 && client >= 0 && udp >= 0);
    struct sockaddr_in local = address_of(STACK_ADDRESS, 5400);
    CHECK_EQ(usock_bind(stack, udp, (struct sockaddr *)&local, sizeof(local)), 0);
    bool block = pipes[2] != 0;
    signal_pipe(pipes[1], 3);
    if (!block)
        _exit(0); /* as a process that never detaches */
    char buffer[8];
    usock_recv(stack, udp, buffer, sizeof(buffer), 0); /* killed in here */
    _exit(3);
}

static void client_end(bool killed_in_recv)
{
    struct world world;
    world_prepare(&world);
    int pipes[3];
    CHECK_EQ(pipe(pipes), 0);
    pipes[2] = killed_in_recv;
    pid_t child = spawn(&world, holder_body, pipes);
    world_start(&world);
    CHECK_EQ(wait_pipe(pipes[0]), 3);
    if (killed_in_recv) {
        /* the listener, the connection, the UDP socket (the connection's
         * other end waits on the listener, nobody's yet) */
        world_expect_client_sockets(&world, child, 3);
        /* the stack's own program cannot reach them either */
        struct usock_socket_info rows[16];
        size_t count = usock_stack_sockets(world.stack, rows, 16);
        for (size_t i = 0; i < count && i < 16; i++) {
            if (rows[i].owner_pid != child)
                continue;
            struct sockaddr_in name;
            socklen_t name_length = sizeof(name);
            CHECK_ERRNO(usock_getsockname(world.stack, rows[i].fd, (struct sockaddr *)&name,
                                          &name_length), EBADF);
        }
        /* ss shows the owner: control's "ss" lines end in its pid */
        size_t length;
        char *reply = control_reply(world.stack, "ss\n", 3, &length);
        CHECK(reply != NULL);
        char tail[32];
        snprintf(tail, sizeof(tail), "\t%d\n", (int)child);
        size_t lines_with_pid = 0;
        for (char *line = reply; (line = strstr(line, tail)); line++)
            lines_with_pid++;
        CHECK_EQ(lines_with_pid, 3);
        free(reply);
        usleep(100000); /* let it settle in recv */
        CHECK_EQ(kill(child, SIGKILL), 0);
        int status;
        CHECK_EQ(waitpid(child, &status, 0), child);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    } else {
        expect_exit_zero(child);
    }
    world_expect_client_sockets(&world, 0, 0);
    close(pipes[0]);
    close(pipes[1]);
    world_finish(&world);
}

static void test_sockets_closed_when_client_exits(void)
{
    client_end(false);
}

static void test_sockets_closed_when_client_killed_blocked_in_recv(void)
{
    client_end(true);
}

/* ---- misbehaving clients ------------------------------------------- */

static int raw_connection(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%s", path);
    CHECK_EQ(connect(fd, (struct sockaddr *)&address, sizeof(address)), 0);
    return fd;
}

/* Sends length bytes and returns the reply's result (or 1 on EOF). */
static int64_t raw_exchange(int fd, const void *bytes, size_t length)
{
    CHECK_EQ(send(fd, bytes, length, MSG_NOSIGNAL), (ssize_t)length);
    struct remote_reply reply;
    ssize_t got = recv(fd, &reply, sizeof(reply), 0);
    if (got <= 0)
        return 1;
    CHECK(got >= (ssize_t)sizeof(reply) - 0);
    return reply.result;
}

static void served_promptly_body(const char *path, void *argument)
{
    int *pipes = argument;
    CHECK_EQ(wait_pipe(pipes[0]), 1); /* the misbehaving ones are in place */
    uint64_t started = now_ms();
    struct usock_stack *stack = attach_retrying(path);
    int listener = listener_on(stack, 7200);
    int client = connected_to(stack, 7200);
    int server = usock_accept(stack, listener, NULL, NULL);
    CHECK(server >= 0);
    CHECK_EQ(usock_send(stack, client, "fine", 4, 0), 4);
    char buffer[4];
    CHECK_EQ(usock_recv(stack, server, buffer, 4, MSG_WAITALL), 4);
    CHECK(now_ms() - started < 2000);
    usock_close(stack, client);
    usock_close(stack, server);
    usock_close(stack, listener);
    usock_stack_free(stack);
}

static void test_garbage_and_stalled_clients_do_not_stall_others(void)
{
    struct world world;
    world_prepare(&world);
    int pipes[2];
    CHECK_EQ(pipe(pipes), 0);
    pid_t child = spawn(&world, served_promptly_body, pipes);
    world_start(&world);

    /* never says hello: holds only its own connection */
    int silent = raw_connection(world.path);
    /* garbage before hello, then a hello, then bad requests */
    int garbage = raw_connection(world.path);
    CHECK_EQ(raw_exchange(garbage, "\x01\x02", 2), -EINVAL); /* shorter than a header */
    garbage = (close(garbage), raw_connection(world.path));
    struct remote_request request = {.operation = REMOTE_SOCKET, .arguments = {AF_INET, SOCK_DGRAM}};
    CHECK_EQ(raw_exchange(garbage, &request, sizeof(request)), -EINVAL); /* hello first */
    close(garbage);
    garbage = raw_connection(world.path);
    request = (struct remote_request){.operation = REMOTE_HELLO, .arguments = {99}};
    CHECK_EQ(raw_exchange(garbage, &request, sizeof(request)), -EPROTONOSUPPORT);
    close(garbage);
    garbage = raw_connection(world.path);
    uint8_t token[REMOTE_TOKEN_SIZE] = {0};
    uint8_t joining[sizeof(request) + sizeof(token)];
    request = (struct remote_request){.operation = REMOTE_HELLO,
                                      .arguments = {REMOTE_PROTOCOL_VERSION},
                                      .value_length = sizeof(token)};
    memcpy(joining, &request, sizeof(request));
    memcpy(joining + sizeof(request), token, sizeof(token));
    CHECK_EQ(raw_exchange(garbage, joining, sizeof(joining)), -EACCES); /* no such session */
    close(garbage);
    garbage = raw_connection(world.path);
    request = (struct remote_request){.operation = REMOTE_HELLO,
                                      .arguments = {REMOTE_PROTOCOL_VERSION}};
    CHECK(raw_exchange(garbage, &request, sizeof(request)) > 0);
    static const uint32_t bad_operations[] = {0, REMOTE_OPERATION_COUNT, 0xffffffffu};
    for (size_t i = 0; i < sizeof(bad_operations) / sizeof(bad_operations[0]); i++) {
        request = (struct remote_request){.operation = bad_operations[i]};
        CHECK_EQ(raw_exchange(garbage, &request, sizeof(request)), -EINVAL);
    }
    request = (struct remote_request){.operation = REMOTE_SEND, .fd = 0, .data_length = 100,
                                      .total_length = 100};
    CHECK_EQ(raw_exchange(garbage, &request, sizeof(request)), -EINVAL); /* data missing */
    request = (struct remote_request){.operation = REMOTE_BIND, .address_present = 1,
                                      .address_length = 4000};
    CHECK_EQ(raw_exchange(garbage, &request, sizeof(request)), -EINVAL);
    request = (struct remote_request){.operation = REMOTE_POLL, .arguments = {-5}};
    CHECK_EQ(raw_exchange(garbage, &request, sizeof(request)), -EINVAL);
    request = (struct remote_request){.operation = REMOTE_CLOSE, .fd = -7};
    CHECK_EQ(raw_exchange(garbage, &request, sizeof(request)), -EBADF);
    request = (struct remote_request){.operation = REMOTE_CLOSE, .fd = 1 << 30};
    CHECK_EQ(raw_exchange(garbage, &request, sizeof(request)), -EBADF);
    size_t oversized_length = REMOTE_REQUEST_MAX + 4096;
    uint8_t *oversized = calloc(1, oversized_length);
    CHECK(oversized);
    ssize_t sent = send(garbage, oversized, oversized_length, MSG_NOSIGNAL);
    if (sent == (ssize_t)oversized_length) {
        struct remote_reply reply;
        CHECK(recv(garbage, &reply, sizeof(reply), 0) > 0);
        CHECK_EQ(reply.result, -EMSGSIZE);
    }
    free(oversized);
    /* a client that sends requests and never reads the replies */
    int deaf = raw_connection(world.path);
    request = (struct remote_request){.operation = REMOTE_HELLO,
                                      .arguments = {REMOTE_PROTOCOL_VERSION}};
    CHECK(raw_exchange(deaf, &request, sizeof(request)) > 0);
    request = (struct remote_request){.operation = REMOTE_SOCKET,
                                      .arguments = {AF_INET, SOCK_DGRAM}};
    for (int i = 0; i < 40; i++)
        if (send(deaf, &request, sizeof(request), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            break;
    /* a process opening connection after connection: past its share (128,
     * three of which it holds already) the server answers EAGAIN and
     * closes, and the other process is still served */
    enum { FLOOD = 140 };
    int flood[FLOOD];
    for (int i = 0; i < FLOOD; i++)
        flood[i] = raw_connection(world.path);
    usleep(300000);
    int refused = 0;
    for (int i = 0; i < FLOOD; i++) {
        struct remote_reply reply;
        if (recv(flood[i], &reply, sizeof(reply), MSG_DONTWAIT) == (ssize_t)sizeof(reply) &&
            reply.result == -EAGAIN)
            refused++;
    }
    CHECK(refused >= 10 && refused <= FLOOD + 3 - 128);
    signal_pipe(pipes[1], 1);
    expect_exit_zero(child);
    for (int i = 0; i < FLOOD; i++)
        close(flood[i]);
    close(deaf);
    close(garbage);
    close(silent);
    close(pipes[0]);
    close(pipes[1]);
    world_finish(&world);
}

/* ---- attach errors -------------------------------------------------- */

/* ---- dup and fork: one socket, several descriptors ------------------- */

/* dup on stack (the stack's own or an attached handle): the copy works
 * after the original is closed, and the socket goes with the last one. */
static void dup_checks(struct usock_stack *stack, uint16_t port)
{
    int listener = listener_on(stack, port);
    int client = connected_to(stack, port);
    int server = usock_accept(stack, listener, NULL, NULL);
    CHECK(server >= 0);
    int copy = usock_dup(stack, server);
    CHECK(copy >= 0 && copy != server);
    CHECK_ERRNO(usock_dup(stack, 9999), EBADF);
    /* file status flags are the socket's, seen through either */
    CHECK_EQ(usock_fcntl(stack, copy, F_SETFL, O_NONBLOCK), 0);
    CHECK(usock_fcntl(stack, server, F_GETFL, 0) & O_NONBLOCK);
    CHECK_EQ(usock_fcntl(stack, server, F_SETFL, 0), 0);
    CHECK_EQ(usock_close(stack, server), 0);
    CHECK_ERRNO(usock_send(stack, server, "x", 1, 0), EBADF);
    CHECK_EQ(usock_send(stack, client, "hello", 5, 0), 5);
    char buffer[16];
    CHECK_EQ(usock_recv(stack, copy, buffer, sizeof(buffer), 0), 5);
    CHECK_EQ(usock_send(stack, copy, "back", 4, 0), 4);
    CHECK_EQ(usock_recv(stack, client, buffer, sizeof(buffer), 0), 4);
    CHECK(memcmp(buffer, "back", 4) == 0);
    /* the last descriptor closed: the peer reads EOF */
    CHECK_EQ(usock_close(stack, copy), 0);
    CHECK_EQ(usock_recv(stack, client, buffer, sizeof(buffer), 0), 0);
    CHECK_EQ(usock_close(stack, client), 0);
    CHECK_EQ(usock_close(stack, listener), 0);
}

static void dup_body(const char *path, void *argument)
{
    (void)argument;
    struct usock_stack *stack = attach_retrying(path);
    dup_checks(stack, 7300);
    usock_stack_free(stack);
}

static void test_dup_in_process_and_attached(void)
{
    struct world world;
    world_prepare(&world);
    pid_t child = spawn(&world, dup_body, NULL);
    world_start(&world);
    dup_checks(world.stack, 7310);
    expect_exit_zero(child);
    world_finish(&world);
}

/* The forked child's part: the listener and the accepted connection are
 * its too.  It answers on the connection its parent accepted (and closed),
 * accepts the parent's next connection on the shared listener, then
 * blocks in accept again until killed. */
static void forked_child(const char *path, struct remote_fork_ticket *ticket, int listener,
                         int server, int to_parent)
{
    int my_listener = -1, my_server = -1;
    for (size_t i = 0; i < ticket->count; i++) {
        if (ticket->pairs[2 * i] == listener)
            my_listener = ticket->pairs[2 * i + 1];
        if (ticket->pairs[2 * i] == server)
            my_server = ticket->pairs[2 * i + 1];
    }
    CHECK(my_listener >= 0 && my_server >= 0);
    struct usock_stack *stack = remote_attach_forked(path, ticket->token);
    CHECK(stack != NULL);
    /* the ticket is spent */
    CHECK(remote_attach_forked(path, ticket->token) == NULL);
    CHECK_EQ(errno, EACCES);
    char buffer[16];
    CHECK_EQ(usock_recv(stack, my_server, buffer, sizeof(buffer), 0), 4);
    CHECK(memcmp(buffer, "ping", 4) == 0);
    CHECK_EQ(usock_send(stack, my_server, "pong", 4, 0), 4);
    int second = usock_accept(stack, my_listener, NULL, NULL);
    CHECK(second >= 0);
    CHECK_EQ(usock_send(stack, second, "hi", 2, 0), 2);
    signal_pipe(to_parent, 1);
    usock_accept(stack, my_listener, NULL, NULL); /* killed in here */
    _exit(3);
}

static void fork_body(const char *path, void *argument)
{
    (void)argument;
    struct usock_stack *stack = attach_retrying(path);
    int listener = listener_on(stack, 7400);
    int client = connected_to(stack, 7400);
    int server = usock_accept(stack, listener, NULL, NULL);
    CHECK(server >= 0);
    struct remote_fork_ticket ticket;
    CHECK_EQ(remote_fork_prepare(stack, &ticket), 0);
    CHECK_EQ(ticket.count, 3);
    int pipes[2];
    CHECK_EQ(pipe(pipes), 0);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        alarm(30);
        remote_stack_abandon(stack);
        forked_child(path, &ticket, listener, server, pipes[1]);
    }
    remote_fork_done(stack, &ticket, true);
    /* the parent closes its copy; the child's keeps the connection */
    CHECK_EQ(usock_close(stack, server), 0);
    CHECK_EQ(usock_send(stack, client, "ping", 4, 0), 4);
    char buffer[16];
    CHECK_EQ(usock_recv(stack, client, buffer, sizeof(buffer), 0), 4);
    CHECK(memcmp(buffer, "pong", 4) == 0);
    /* the child accepts this one on the listener they share */
    int second = connected_to(stack, 7400);
    CHECK_EQ(usock_recv(stack, second, buffer, sizeof(buffer), 0), 2);
    CHECK_EQ(wait_pipe(pipes[0]), 1);
    /* killed while blocked in accept: its copies close, and its accept
     * must not take the next connection, which is the parent's */
    usleep(50000);
    CHECK_EQ(kill(child, SIGKILL), 0);
    int status;
    CHECK_EQ(waitpid(child, &status, 0), child);
    /* the child's was the last descriptor of the first connection: EOF */
    CHECK_EQ(usock_recv(stack, client, buffer, sizeof(buffer), 0), 0);
    CHECK_EQ(usock_recv(stack, second, buffer, sizeof(buffer), 0), 0);
    int third = connected_to(stack, 7400);
    int accepted = usock_accept(stack, listener, NULL, NULL);
    CHECK(accepted >= 0);
    CHECK_EQ(usock_send(stack, third, "mine", 4, 0), 4);
    CHECK_EQ(usock_recv(stack, accepted, buffer, sizeof(buffer), 0), 4);
    /* A fork that made no child: its share is closed at once, not after
     * the wait for a child, so closing this copy ends the connection (the
     * peer reads EOF well within 2 s). */
    CHECK_EQ(remote_fork_prepare(stack, &ticket), 0);
    remote_fork_done(stack, &ticket, false);
    CHECK_EQ(usock_close(stack, accepted), 0);
    struct timeval two_seconds = {.tv_sec = 2};
    CHECK_EQ(usock_setsockopt(stack, third, SOL_SOCKET, SO_RCVTIMEO, &two_seconds,
                              sizeof(two_seconds)), 0);
    CHECK_EQ(usock_recv(stack, third, buffer, sizeof(buffer), 0), 0);
    usock_stack_free(stack);
}

static void test_fork_shares_sockets_with_the_child(void)
{
    struct world world;
    world_prepare(&world);
    pid_t child = spawn(&world, fork_body, NULL);
    world_start(&world);
    expect_exit_zero(child);
    world_finish(&world);
}

/* ---- gathered small sends ------------------------------------------ */

/* The byte at position i of the gathered-sends stream. */
static uint8_t stream_byte(size_t i)
{
    return (uint8_t)(i * 131 + (i >> 9));
}

/* Sends messages of sizes 1..300 (and now and then one of 20000, past
 * what is gathered) to port, then either shuts down (die false) or kills
 * itself at once, leaving what was gathered to the stack. */
struct gathered_plan {
    uint16_t port;
    bool die;
    int to_parent;
};

static void gathered_sender_body(const char *path, void *argument)
{
    const struct gathered_plan *plan = argument;
    struct usock_stack *stack = attach_retrying(path);
    int fd = connected_to(stack, plan->port);
    size_t total = plan->die ? 50000 : 3000000, position = 0;
    uint8_t *message = malloc(20000);
    CHECK(message != NULL);
    for (unsigned n = 0; position < total; n++) {
        size_t size = n % 97 == 96 ? 20000 : 1 + (n * 37) % 300;
        if (size > total - position)
            size = total - position;
        for (size_t i = 0; i < size; i++)
            message[i] = stream_byte(position + i);
        CHECK_EQ(usock_send(stack, fd, message, size, 0), (ssize_t)size);
        position += size;
    }
    free(message);
    if (plan->die) {
        /* Nothing more is said: what is gathered is left in the region. */
        signal_pipe(plan->to_parent, 1);
        kill(getpid(), SIGKILL);
    }
    CHECK_EQ(usock_shutdown(stack, fd, SHUT_WR), 0);
    CHECK_EQ(usock_close(stack, fd), 0);
    usock_stack_free(stack);
}

/* The stack's own side: accepts one connection on listener and reads it
 * to EOF, checking every byte.  Returns how many came. */
static size_t read_stream(struct usock_stack *stack, int listener)
{
    int fd = usock_accept(stack, listener, NULL, NULL);
    CHECK(fd >= 0);
    uint8_t buffer[65536];
    size_t position = 0;
    for (;;) {
        ssize_t got = usock_recv(stack, fd, buffer, sizeof(buffer), 0);
        CHECK(got >= 0);
        if (got == 0)
            break;
        for (ssize_t i = 0; i < got; i++)
            CHECK_EQ(buffer[i], stream_byte(position + (size_t)i));
        position += (size_t)got;
    }
    CHECK_EQ(usock_close(stack, fd), 0);
    return position;
}

static void test_gathered_small_sends_arrive_whole_and_in_order(void)
{
    struct world world;
    world_prepare(&world);
    struct gathered_plan plan = {.port = 7500, .die = false};
    pid_t child = spawn(&world, gathered_sender_body, &plan);
    world_start(&world);
    int listener = listener_on(world.stack, 7500);
    CHECK_EQ(read_stream(world.stack, listener), 3000000);
    expect_exit_zero(child);
    CHECK_EQ(usock_close(world.stack, listener), 0);
    world_finish(&world);
}

static void test_gathered_sends_of_a_killed_client_still_go(void)
{
    struct world world;
    world_prepare(&world);
    int pipes[2];
    CHECK_EQ(pipe(pipes), 0);
    struct gathered_plan plan = {.port = 7600, .die = true, .to_parent = pipes[1]};
    pid_t child = spawn(&world, gathered_sender_body, &plan);
    world_start(&world);
    int listener = listener_on(world.stack, 7600);
    /* Every byte a send accepted arrives, then EOF: the stack sent what
     * the dead client had gathered before closing its socket. */
    CHECK_EQ(read_stream(world.stack, listener), 50000);
    CHECK_EQ(wait_pipe(pipes[0]), 1);
    int status;
    CHECK_EQ(waitpid(child, &status, 0), child);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    CHECK_EQ(usock_close(world.stack, listener), 0);
    close(pipes[0]);
    close(pipes[1]);
    world_finish(&world);
}

/* A send the stack took only part of leaves no room to gather on: the
 * next small send on a full socket is EAGAIN, as the kernel says, and a
 * poll after it answers at once. */
static void full_socket_body(const char *path, void *argument)
{
    int *pipes = argument; /* [1]: to the parent, when done */
    struct usock_stack *stack = attach_retrying(path);
    int fd = connected_to(stack, 7950);
    CHECK_EQ(usock_send(stack, fd, "first", 5, 0), 5); /* the stack says it has room */
    CHECK_EQ(usock_fcntl(stack, fd, F_SETFL, O_NONBLOCK), 0);
    static uint8_t chunk[65536];
    for (int i = 0; i < 1000; i++) {
        if (usock_send(stack, fd, chunk, sizeof(chunk), 0) < 0) {
            CHECK_EQ(errno, EAGAIN);
            break;
        }
    }
    CHECK_ERRNO(usock_send(stack, fd, chunk, 100, MSG_DONTWAIT), EAGAIN);
    struct pollfd entry = {.fd = fd, .events = POLLIN};
    uint64_t started = now_ms();
    CHECK_EQ(usock_poll(stack, &entry, 1, 0), 0);
    CHECK(now_ms() - started < 1000);
    signal_pipe(pipes[1], 1);
    usock_stack_free(stack);
}

static void test_full_socket_is_eagain_not_gathered(void)
{
    struct world world;
    world_prepare(&world);
    int pipes[2];
    CHECK_EQ(pipe(pipes), 0);
    pid_t child = spawn(&world, full_socket_body, pipes);
    world_start(&world);
    int listener = listener_on(world.stack, 7950);
    int fd = usock_accept(world.stack, listener, NULL, NULL); /* and never reads */
    CHECK(fd >= 0);
    CHECK_EQ(wait_pipe(pipes[0]), 1);
    expect_exit_zero(child);
    CHECK_EQ(usock_close(world.stack, fd), 0);
    CHECK_EQ(usock_close(world.stack, listener), 0);
    close(pipes[0]);
    close(pipes[1]);
    world_finish(&world);
}

/* One attached client holds at most its share of descriptors (EMFILE past
 * it, as a process's RLIMIT_NOFILE); the others keep theirs. */
static void greedy_body(const char *path, void *argument)
{
    int *pipes = argument; /* [1]: to the parent; [2]: from it */
    struct usock_stack *stack = attach_retrying(path);
    int held[16], count = 0;
    for (;;) {
        int fd = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
        if (fd < 0) {
            CHECK_EQ(errno, EMFILE);
            break;
        }
        CHECK(count < 16);
        held[count++] = fd;
    }
    CHECK_EQ(count, 8);
    CHECK_ERRNO(usock_dup(stack, held[0]), EMFILE);
    CHECK_EQ(usock_close(stack, held[0]), 0);
    int again = usock_socket(stack, AF_INET, SOCK_DGRAM, 0);
    CHECK(again >= 0);
    signal_pipe(pipes[1], 1);
    CHECK_EQ(wait_pipe(pipes[2]), 1); /* the other client made its sockets */
    usock_stack_free(stack);
}

static void modest_body(const char *path, void *argument)
{
    int *pipes = argument; /* [0]: from the greedy one's parent; [3]: to it */
    CHECK_EQ(wait_pipe(pipes[0]), 1);
    struct usock_stack *stack = attach_retrying(path);
    for (int i = 0; i < 4; i++)
        CHECK(usock_socket(stack, AF_INET, SOCK_DGRAM, 0) >= 0);
    signal_pipe(pipes[3], 1);
    usock_stack_free(stack);
}

static void test_client_socket_limit(void)
{
    struct world world;
    world_prepare(&world);
    world.client_socket_limit = 8;
    int greedy_pipes[4], modest_pipes[4];
    CHECK_EQ(pipe(greedy_pipes), 0);     /* [1]: greedy -> parent */
    CHECK_EQ(pipe(greedy_pipes + 2), 0); /* [3]: parent -> greedy ([2]) */
    CHECK_EQ(pipe(modest_pipes), 0);     /* [1]: parent -> modest ([0]) */
    CHECK_EQ(pipe(modest_pipes + 2), 0); /* [3]: modest -> parent ([2]) */
    int greedy_ends[4] = {-1, greedy_pipes[1], greedy_pipes[2], -1};
    int modest_ends[4] = {modest_pipes[0], -1, -1, modest_pipes[3]};
    pid_t greedy = spawn(&world, greedy_body, greedy_ends);
    pid_t modest = spawn(&world, modest_body, modest_ends);
    world_start(&world);
    CHECK_EQ(wait_pipe(greedy_pipes[0]), 1); /* it holds its full share */
    signal_pipe(modest_pipes[1], 1);
    CHECK_EQ(wait_pipe(modest_pipes[2]), 1); /* and the other got its sockets */
    signal_pipe(greedy_pipes[3], 1);
    expect_exit_zero(modest);
    expect_exit_zero(greedy);
    world_finish(&world);
    for (int i = 0; i < 4; i++) {
        close(greedy_pipes[i]);
        close(modest_pipes[i]);
    }
}

/* What a flush sent is not sent again when the client dies after it (the
 * server takes it out of the slot itself), spoken in the raw protocol. */
static int64_t raw_call(int fd, struct remote_request *request, int descriptor)
{
    union {
        struct cmsghdr header;
        uint8_t bytes[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof(control));
    struct iovec out = {request, sizeof(*request)};
    struct msghdr message = {.msg_iov = &out, .msg_iovlen = 1};
    if (descriptor >= 0) {
        message.msg_control = &control;
        message.msg_controllen = sizeof(control);
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(header), &descriptor, sizeof(int));
    }
    CHECK_EQ(sendmsg(fd, &message, MSG_NOSIGNAL), (ssize_t)sizeof(*request));
    uint8_t reply[sizeof(struct remote_reply) + REMOTE_TOKEN_SIZE];
    CHECK(recv(fd, reply, sizeof(reply), 0) >= (ssize_t)sizeof(struct remote_reply));
    struct remote_reply header;
    memcpy(&header, reply, sizeof(header));
    return header.result;
}

static void test_flushed_bytes_are_not_sent_again_when_the_client_dies(void)
{
    struct world world;
    world_prepare(&world);
    world_start(&world);
    int listener = listener_on(world.stack, 7900);
    int raw = raw_connection(world.path);
    struct remote_request request = {.operation = REMOTE_HELLO,
                                     .arguments = {REMOTE_PROTOCOL_VERSION}};
    CHECK(raw_call(raw, &request, -1) > 0);
    request = (struct remote_request){.operation = REMOTE_SOCKET,
                                      .arguments = {AF_INET, SOCK_STREAM}};
    int fd = (int)raw_call(raw, &request, -1);
    CHECK(fd >= 0);
    struct sockaddr_in peer = address_of(STACK_ADDRESS, 7900);
    request = (struct remote_request){.operation = REMOTE_CONNECT, .fd = fd,
                                      .address_present = 1, .address_length = sizeof(peer)};
    memcpy(request.address, &peer, sizeof(peer));
    CHECK_EQ(raw_call(raw, &request, -1), 0);
    int accepted = usock_accept(world.stack, listener, NULL, NULL);
    CHECK(accepted >= 0);
    int memory = memfd_create("test-gather", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    CHECK(memory >= 0);
    CHECK_EQ(ftruncate(memory, (off_t)REMOTE_GATHER_REGION), 0);
    CHECK_EQ(fcntl(memory, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    struct remote_gather_slot *slots =
        mmap(NULL, REMOTE_GATHER_REGION, PROT_READ | PROT_WRITE, MAP_SHARED, memory, 0);
    CHECK(slots != MAP_FAILED);
    request = (struct remote_request){.operation = REMOTE_GATHER_SETUP};
    CHECK_EQ(raw_call(raw, &request, memory), 0);
    slots[3].fd = fd;
    memcpy(slots[3].data, "ABCDEFGH", 8);
    __atomic_store_n(&slots[3].length, 8, __ATOMIC_RELEASE);
    request = (struct remote_request){.operation = REMOTE_FLUSH, .fd = fd, .arguments = {3}};
    CHECK_EQ(raw_call(raw, &request, -1), 8);
    CHECK_EQ(slots[3].length, 0); /* the server took them out */
    close(raw); /* dies before it could say anything more */
    char buffer[32];
    size_t got = 0;
    for (;;) {
        ssize_t now = usock_recv(world.stack, accepted, buffer + got, sizeof(buffer) - got, 0);
        CHECK(now >= 0);
        if (now == 0)
            break;
        got += (size_t)now;
    }
    CHECK_EQ(got, 8);
    CHECK(memcmp(buffer, "ABCDEFGH", 8) == 0);
    munmap(slots, REMOTE_GATHER_REGION);
    close(memory);
    CHECK_EQ(usock_close(world.stack, accepted), 0);
    CHECK_EQ(usock_close(world.stack, listener), 0);
    world_finish(&world);
}

/* Gathered sends to a connection the other end reset: the failure is
 * reported by a later send, not lost. */
static void reset_sender_body(const char *path, void *argument)
{
    int *pipes = argument; /* [0] from the parent, [3] to it */
    struct usock_stack *stack = attach_retrying(path);
    int fd = connected_to(stack, 7700);
    CHECK_EQ(usock_send(stack, fd, "first", 5, 0), 5); /* the stack says it has room */
    signal_pipe(pipes[3], 1);
    CHECK_EQ(wait_pipe(pipes[0]), 1);                  /* the other end reset it */
    usleep(100000);
    int error = 0;
    for (int i = 0; i < 1000 && !error; i++) {
        if (usock_send(stack, fd, "more", 4, 0) < 0)
            error = errno;
        usleep(1000);
    }
    CHECK(error == ECONNRESET || error == EPIPE);
    usock_stack_free(stack);
}

static void test_gathered_send_failure_is_reported(void)
{
    struct world world;
    world_prepare(&world);
    int pipes[4];
    CHECK_EQ(pipe(pipes), 0);
    CHECK_EQ(pipe(pipes + 2), 0);
    pid_t child = spawn(&world, reset_sender_body, pipes);
    world_start(&world);
    int listener = listener_on(world.stack, 7700);
    int fd = usock_accept(world.stack, listener, NULL, NULL);
    CHECK(fd >= 0);
    CHECK_EQ(wait_pipe(pipes[2]), 1);
    struct linger abort_now = {.l_onoff = 1, .l_linger = 0};
    CHECK_EQ(usock_setsockopt(world.stack, fd, SOL_SOCKET, SO_LINGER, &abort_now,
                              sizeof(abort_now)), 0);
    CHECK_EQ(usock_close(world.stack, fd), 0); /* RST */
    signal_pipe(pipes[1], 1);
    expect_exit_zero(child);
    CHECK_EQ(usock_close(world.stack, listener), 0);
    for (int i = 0; i < 4; i++)
        close(pipes[i]);
    world_finish(&world);
}

/* ---- signals -------------------------------------------------------- */

static volatile sig_atomic_t handled;
static atomic_bool call_returned;
static int signal_report_fd = -1; /* each handled signal writes a byte here */

static void count_signal(int number)
{
    (void)number;
    handled++;
    if (signal_report_fd >= 0) {
        ssize_t written = write(signal_report_fd, "s", 1);
        (void)written;
    }
}

/* Raises SIGUSR1 in the process every 200 ms until call_returned, from
 * another thread (the process's main thread, blocked in the call, is the
 * one it goes to; repeated, in case the first came before it blocked). */
static void *signal_later(void *argument)
{
    (void)argument;
    while (!atomic_load(&call_returned)) {
        usleep(200000);
        if (!atomic_load(&call_returned))
            kill(getpid(), SIGUSR1);
    }
    return NULL;
}

/* Starts signal_later for one blocking call. */
static void signal_while_blocked(pthread_t *thread)
{
    atomic_store(&call_returned, false);
    CHECK_EQ(pthread_create(thread, NULL, signal_later, NULL), 0);
}

static void signalling_done(pthread_t thread)
{
    atomic_store(&call_returned, true);
    CHECK_EQ(pthread_join(thread, NULL), 0);
}

/* Blocked in accept and in poll, a handler without SA_RESTART ends the
 * call with EINTR, as in the kernel; with SA_RESTART accept goes on and
 * takes the connection that comes later. */
static void signal_body(const char *path, void *argument)
{
    int *pipes = argument; /* [1]: to the parent; [3]: handled signals, to it */
    struct usock_stack *stack = attach_retrying(path);
    int listener = listener_on(stack, 7800);
    struct sigaction action = {.sa_handler = count_signal};
    sigemptyset(&action.sa_mask);
    CHECK_EQ(sigaction(SIGUSR1, &action, NULL), 0);
    pthread_t thread;
    signal_while_blocked(&thread);
    CHECK_ERRNO(usock_accept(stack, listener, NULL, NULL), EINTR);
    signalling_done(thread);
    CHECK(handled >= 1);
    int before = handled;
    struct pollfd entry = {.fd = listener, .events = POLLIN};
    signal_while_blocked(&thread);
    CHECK_ERRNO(usock_poll(stack, &entry, 1, -1), EINTR);
    signalling_done(thread);
    CHECK(handled > before);
    before = handled;
    /* SA_RESTART: the accept is not ended by the signals that come while
     * it waits; the parent connects after the first, and that connection
     * is what it returns. */
    action.sa_flags = SA_RESTART;
    CHECK_EQ(sigaction(SIGUSR1, &action, NULL), 0);
    signal_report_fd = pipes[3];
    signal_while_blocked(&thread);
    signal_pipe(pipes[1], 1);
    int accepted = usock_accept(stack, listener, NULL, NULL);
    CHECK(accepted >= 0);
    signalling_done(thread);
    CHECK(handled > before);
    char buffer[8];
    CHECK_EQ(usock_recv(stack, accepted, buffer, sizeof(buffer), 0), 5);
    usock_stack_free(stack);
}

static void test_signal_ends_blocked_call_unless_sa_restart(void)
{
    struct world world;
    world_prepare(&world);
    int pipes[4];
    CHECK_EQ(pipe(pipes), 0);
    CHECK_EQ(pipe(pipes + 2), 0);
    pid_t child = spawn(&world, signal_body, pipes);
    world_start(&world);
    CHECK_EQ(wait_pipe(pipes[0]), 1);
    /* Two signals handled after it went into accept (200 ms apart), then
     * this connects. */
    char reports[2];
    CHECK_EQ(read(pipes[2], reports, 1), 1);
    CHECK_EQ(read(pipes[2], reports + 1, 1), 1);
    int fd = connected_to(world.stack, 7800);
    CHECK_EQ(usock_send(world.stack, fd, "after", 5, 0), 5);
    expect_exit_zero(child);
    CHECK_EQ(usock_close(world.stack, fd), 0);
    for (int i = 0; i < 4; i++)
        close(pipes[i]);
    world_finish(&world);
}

static void test_attach_errors(void)
{
    errno = 0;
    CHECK(usock_attach_path("/tmp/usock-no-such-stack.api") == NULL);
    CHECK_EQ(errno, ENOENT);
    setenv("USOCK_RUNDIR", "/tmp/usock-no-such-rundir", 1);
    CHECK(usock_attach("nothing") == NULL);
    CHECK_EQ(errno, ENOENT);
    CHECK(usock_attach("a/b") == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(usock_attach("") == NULL);
    CHECK_EQ(errno, EINVAL);
    /* a socket file nobody answers on, left over from a crash */
    struct world world;
    world_prepare(&world);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%s", world.path);
    CHECK_EQ(bind(fd, (struct sockaddr *)&address, sizeof(address)), 0);
    close(fd);
    CHECK(usock_attach_path(world.path) == NULL);
    CHECK_EQ(errno, ECONNREFUSED);
    unlink(world.path);
    CHECK_EQ(rmdir(world.directory), 0);
}

static const struct check_test tests[] = {
    CHECK_TEST(test_tcp_between_two_attached_sockets),
    CHECK_TEST(test_tcp_with_the_stacks_own_sockets),
    CHECK_TEST(test_udp_sendto_recvfrom_and_ancillary_data),
    CHECK_TEST(test_blocking_recv_and_poll_over_several_descriptors),
    CHECK_TEST(test_another_clients_descriptor_is_ebadf),
    CHECK_TEST(test_sockets_closed_when_client_exits),
    CHECK_TEST(test_sockets_closed_when_client_killed_blocked_in_recv),
    CHECK_TEST(test_garbage_and_stalled_clients_do_not_stall_others),
    CHECK_TEST(test_dup_in_process_and_attached),
    CHECK_TEST(test_fork_shares_sockets_with_the_child),
    CHECK_TEST(test_gathered_small_sends_arrive_whole_and_in_order),
    CHECK_TEST(test_gathered_sends_of_a_killed_client_still_go),
    CHECK_TEST(test_gathered_send_failure_is_reported),
    CHECK_TEST(test_flushed_bytes_are_not_sent_again_when_the_client_dies),
    CHECK_TEST(test_full_socket_is_eagain_not_gathered),
    CHECK_TEST(test_client_socket_limit),
    CHECK_TEST(test_signal_ends_blocked_call_unless_sa_restart),
    CHECK_TEST(test_attach_errors),
};

CHECK_MAIN(tests)
