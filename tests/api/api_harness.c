/*
 * api_harness.c - the two socket-call tables and environments of the API
 * behaviour tests, and their helpers; see api_harness.h.
 */
#include "api_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define API_LEAK_CHECK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define API_LEAK_CHECK 1
#endif
#endif
#ifdef API_LEAK_CHECK
#include <sanitizer/lsan_interface.h>
#endif

/* The kernel's calls.  Wrapped because glibc declares some with transparent
 * unions or variadic arguments. */
static int kernel_socket(int domain, int type, int protocol)
{
    return socket(domain, type, protocol);
}
static int kernel_bind(int fd, const struct sockaddr *address, socklen_t length)
{
    return bind(fd, address, length);
}
static int kernel_connect(int fd, const struct sockaddr *address, socklen_t length)
{
    return connect(fd, address, length);
}
static int kernel_listen(int fd, int backlog)
{
    return listen(fd, backlog);
}
static int kernel_accept(int fd, struct sockaddr *address, socklen_t *length)
{
    return accept(fd, address, length);
}
static ssize_t kernel_sendto(int fd, const void *buffer, size_t length, int flags,
                             const struct sockaddr *address, socklen_t address_length)
{
    return sendto(fd, buffer, length, flags, address, address_length);
}
static ssize_t kernel_recvfrom(int fd, void *buffer, size_t length, int flags,
                               struct sockaddr *address, socklen_t *address_length)
{
    return recvfrom(fd, buffer, length, flags, address, address_length);
}
static ssize_t kernel_recvmsg(int fd, struct msghdr *message, int flags)
{
    return recvmsg(fd, message, flags);
}
static ssize_t kernel_send(int fd, const void *buffer, size_t length, int flags)
{
    return send(fd, buffer, length, flags);
}
static ssize_t kernel_recv(int fd, void *buffer, size_t length, int flags)
{
    return recv(fd, buffer, length, flags);
}
static int kernel_getsockname(int fd, struct sockaddr *address, socklen_t *length)
{
    return getsockname(fd, address, length);
}
static int kernel_getpeername(int fd, struct sockaddr *address, socklen_t *length)
{
    return getpeername(fd, address, length);
}
static int kernel_setsockopt(int fd, int level, int name, const void *value, socklen_t length)
{
    return setsockopt(fd, level, name, value, length);
}
static int kernel_getsockopt(int fd, int level, int name, void *value, socklen_t *length)
{
    return getsockopt(fd, level, name, value, length);
}
static int kernel_shutdown(int fd, int how)
{
    return shutdown(fd, how);
}
static int kernel_close(int fd)
{
    return close(fd);
}
static int kernel_fcntl(int fd, int command, int argument)
{
    return fcntl(fd, command, argument);
}
static int kernel_ioctl(int fd, unsigned long request, void *argument)
{
    return ioctl(fd, request, argument);
}
static int kernel_poll(struct pollfd *fds, nfds_t count, int timeout_ms)
{
    return poll(fds, count, timeout_ms);
}

const struct api kernel_api = {
    .name = "kernel",
    .socket = kernel_socket,
    .bind = kernel_bind,
    .connect = kernel_connect,
    .listen = kernel_listen,
    .accept = kernel_accept,
    .sendto = kernel_sendto,
    .recvfrom = kernel_recvfrom,
    .recvmsg = kernel_recvmsg,
    .send = kernel_send,
    .recv = kernel_recv,
    .getsockname = kernel_getsockname,
    .getpeername = kernel_getpeername,
    .setsockopt = kernel_setsockopt,
    .getsockopt = kernel_getsockopt,
    .shutdown = kernel_shutdown,
    .close = kernel_close,
    .fcntl = kernel_fcntl,
    .ioctl = kernel_ioctl,
    .poll = kernel_poll,
};

/* usock's calls, on the stack of this test process. */
struct usock_stack *usock_current;
uint64_t api_usock_time_wait_ns;
static struct usock_link *usock_other_end;

static int usock_api_socket(int domain, int type, int protocol)
{
    return usock_socket(usock_current, domain, type, protocol);
}
static int usock_api_bind(int fd, const struct sockaddr *address, socklen_t length)
{
    return usock_bind(usock_current, fd, address, length);
}
static int usock_api_connect(int fd, const struct sockaddr *address, socklen_t length)
{
    return usock_connect(usock_current, fd, address, length);
}
static int usock_api_listen(int fd, int backlog)
{
    return usock_listen(usock_current, fd, backlog);
}
static int usock_api_accept(int fd, struct sockaddr *address, socklen_t *length)
{
    return usock_accept(usock_current, fd, address, length);
}
static ssize_t usock_api_sendto(int fd, const void *buffer, size_t length, int flags,
                                const struct sockaddr *address, socklen_t address_length)
{
    return usock_sendto(usock_current, fd, buffer, length, flags, address, address_length);
}
static ssize_t usock_api_recvfrom(int fd, void *buffer, size_t length, int flags,
                                  struct sockaddr *address, socklen_t *address_length)
{
    return usock_recvfrom(usock_current, fd, buffer, length, flags, address, address_length);
}
static ssize_t usock_api_recvmsg(int fd, struct msghdr *message, int flags)
{
    return usock_recvmsg(usock_current, fd, message, flags);
}
static ssize_t usock_api_send(int fd, const void *buffer, size_t length, int flags)
{
    return usock_send(usock_current, fd, buffer, length, flags);
}
static ssize_t usock_api_recv(int fd, void *buffer, size_t length, int flags)
{
    return usock_recv(usock_current, fd, buffer, length, flags);
}
static int usock_api_getsockname(int fd, struct sockaddr *address, socklen_t *length)
{
    return usock_getsockname(usock_current, fd, address, length);
}
static int usock_api_getpeername(int fd, struct sockaddr *address, socklen_t *length)
{
    return usock_getpeername(usock_current, fd, address, length);
}
static int usock_api_setsockopt(int fd, int level, int name, const void *value,
                                socklen_t length)
{
    return usock_setsockopt(usock_current, fd, level, name, value, length);
}
static int usock_api_getsockopt(int fd, int level, int name, void *value, socklen_t *length)
{
    return usock_getsockopt(usock_current, fd, level, name, value, length);
}
static int usock_api_shutdown(int fd, int how)
{
    return usock_shutdown(usock_current, fd, how);
}
static int usock_api_close(int fd)
{
    return usock_close(usock_current, fd);
}
static int usock_api_fcntl(int fd, int command, int argument)
{
    return usock_fcntl(usock_current, fd, command, argument);
}
static int usock_api_ioctl(int fd, unsigned long request, void *argument)
{
    return usock_ioctl(usock_current, fd, request, argument);
}
static int usock_api_poll(struct pollfd *fds, nfds_t count, int timeout_ms)
{
    return usock_poll(usock_current, fds, count, timeout_ms);
}

const struct api usock_api = {
    .name = "usock",
    .socket = usock_api_socket,
    .bind = usock_api_bind,
    .connect = usock_api_connect,
    .listen = usock_api_listen,
    .accept = usock_api_accept,
    .sendto = usock_api_sendto,
    .recvfrom = usock_api_recvfrom,
    .recvmsg = usock_api_recvmsg,
    .send = usock_api_send,
    .recv = usock_api_recv,
    .getsockname = usock_api_getsockname,
    .getpeername = usock_api_getpeername,
    .setsockopt = usock_api_setsockopt,
    .getsockopt = usock_api_getsockopt,
    .shutdown = usock_api_shutdown,
    .close = usock_api_close,
    .fcntl = usock_api_fcntl,
    .ioctl = usock_api_ioctl,
    .poll = usock_api_poll,
};

/* ------------------------------------------------------------------ */
/* The two environments                                                */
/* ------------------------------------------------------------------ */

static void run_command(const char *command)
{
    int status = system(command);
    if (status != 0) {
        fprintf(stderr, "command failed (status %d): %s\n", status, command);
        exit(1);
    }
}

bool kernel_setup(void)
{
    if (geteuid() != 0) {
        printf("skipped: needs root\n");
        return false;
    }
    CHECK_EQ(unshare(CLONE_NEWNET), 0);
    run_command("ip link set lo up");
    if (system("ip link add usock-api0 type dummy 2>/dev/null") != 0)
        run_command("ip link add usock-api0 type ifb");
    run_command("ip addr add 198.18.0.1/24 brd 198.18.0.255 dev usock-api0");
    run_command("ip link set usock-api0 up");
    return true;
}

void usock_setup(void)
{
    struct usock_link *end;
    CHECK_EQ(usock_link_mem_pair(&end, &usock_other_end), 0);
    struct usock_stack_config config;
    usock_stack_config_init(&config);
    config.link = end;
    CHECK_EQ(inet_pton(AF_INET, "198.18.0.1", &config.address), 1);
    config.prefix_length = 24;
    config.name = "api";
    config.interface_name = "usock-api0"; /* the kernel side's device */
    config.tcp_time_wait_ns = api_usock_time_wait_ns;
    usock_current = usock_stack_new(&config);
    CHECK(usock_current != NULL);
    CHECK_EQ(usock_stack_start(usock_current), 0);
}

void usock_teardown(void)
{
    /* Every behaviour closes what it opened: no socket may be left once
     * connections still closing (FIN exchange, TIME_WAIT) have finished. */
    uint64_t give_up = monotonic_ms() + 5000;
    while (usock_stack_sockets(usock_current, NULL, 0) != 0 && monotonic_ms() < give_up) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    CHECK_EQ(usock_stack_sockets(usock_current, NULL, 0), 0);
    usock_stack_free(usock_current);
    usock_current = NULL;
    usock_link_close(usock_other_end);
    usock_other_end = NULL;
#ifdef API_LEAK_CHECK
    /* Checked here too, so that a leak is tied to this test's stack. */
    __lsan_do_leak_check();
#endif
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

struct sockaddr_in address_of(const char *text, uint16_t port)
{
    struct sockaddr_in address;
    memset(&address, 0, sizeof(address));
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    CHECK_EQ(inet_pton(AF_INET, text, &address.sin_addr), 1);
    return address;
}

uint32_t ip_of(const char *text)
{
    return address_of(text, 0).sin_addr.s_addr;
}

void set_int_option(const struct api *api, int fd, int level, int name, int value)
{
    CHECK_EQ(api->setsockopt(fd, level, name, &value, sizeof(value)), 0);
}

int get_int_option(const struct api *api, int fd, int level, int name)
{
    int value = -12345;
    socklen_t length = sizeof(value);
    CHECK_EQ(api->getsockopt(fd, level, name, &value, &length), 0);
    CHECK_EQ(length, sizeof(int));
    return value;
}

struct sockaddr_in local_address(const struct api *api, int fd)
{
    struct sockaddr_in address;
    memset(&address, 0xee, sizeof(address));
    socklen_t length = sizeof(address);
    CHECK_EQ(api->getsockname(fd, SA(address), &length), 0);
    CHECK_EQ(length, sizeof(address));
    CHECK_EQ(address.sin_family, AF_INET);
    return address;
}

struct sockaddr_in peer_address(const struct api *api, int fd)
{
    struct sockaddr_in address;
    memset(&address, 0xee, sizeof(address));
    socklen_t length = sizeof(address);
    CHECK_EQ(api->getpeername(fd, SA(address), &length), 0);
    CHECK_EQ(length, sizeof(address));
    CHECK_EQ(address.sin_family, AF_INET);
    return address;
}

bool is_ephemeral(uint16_t port)
{
    return port >= EPHEMERAL_FIRST && port <= EPHEMERAL_LAST;
}

ssize_t send_to(const struct api *api, int fd, const void *data, size_t length,
                const char *address, uint16_t port)
{
    struct sockaddr_in to = address_of(address, port);
    return api->sendto(fd, data, length, 0, CSA(to), sizeof(to));
}

void wait_readable(const struct api *api, int fd)
{
    struct pollfd entry = {.fd = fd, .events = POLLIN};
    CHECK_EQ(api->poll(&entry, 1, 2000), 1);
    CHECK(entry.revents & (POLLIN | POLLERR));
}

void expect_nothing(const struct api *api, int fd)
{
    struct pollfd entry = {.fd = fd, .events = POLLIN};
    CHECK_EQ(api->poll(&entry, 1, 50), 0);
    char byte;
    CHECK_ERRNO(api->recv(fd, &byte, 1, MSG_DONTWAIT), EAGAIN);
}

uint64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

long read_sysctl(const char *path)
{
    FILE *file = fopen(path, "r");
    CHECK(file != NULL);
    long value = -1;
    CHECK_EQ(fscanf(file, "%ld", &value), 1);
    fclose(file);
    return value;
}
