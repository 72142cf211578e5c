/*
 * api_harness.h - what the API behaviour tests share: a table of socket
 * calls (struct api) with one implementation on the kernel's sockets and one
 * on a usock stack, the two environments they run in, and small helpers.
 *
 * A behaviour is written once as a function of a struct api.  API_TEST(name)
 * makes the two tests test_NAME_kernel and test_NAME_usock; check_run runs
 * each in its own forked child.
 *
 * Both sides see the same addresses: loopback 127.0.0.1/8 and an interface
 * 198.18.0.1/24 with broadcast 198.18.0.255.
 *  - kernel: the child moves into a new network namespace (needs root; the
 *    host's is never touched) with lo up and a dummy interface usock-api0
 *    carrying 198.18.0.1/24 (an ifb device where the kernel has no dummy
 *    driver: both are NOARP devices that drop what they transmit).  The
 *    namespace goes with the process.
 *  - usock: a threaded stack (usock_stack_start) at 198.18.0.1/24 on one end
 *    of an in-memory wire (its interface named usock-api0 like the kernel's) whose other end is kept open and never read; the
 *    stack must have no sockets left at the end of the test (connections
 *    still closing are given a few seconds to go); it is then freed (and,
 *    under AddressSanitizer, the leak checker runs).
 */
#ifndef USOCK_TEST_API_HARNESS_H
#define USOCK_TEST_API_HARNESS_H

#include <arpa/inet.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "check.h"
#include "usock.h"

/* The socket calls, minus the stack. */
struct api {
    const char *name;
    int (*socket)(int domain, int type, int protocol);
    int (*bind)(int fd, const struct sockaddr *address, socklen_t length);
    int (*connect)(int fd, const struct sockaddr *address, socklen_t length);
    int (*listen)(int fd, int backlog);
    int (*accept)(int fd, struct sockaddr *address, socklen_t *length);
    ssize_t (*sendto)(int fd, const void *buffer, size_t length, int flags,
                      const struct sockaddr *address, socklen_t address_length);
    ssize_t (*recvfrom)(int fd, void *buffer, size_t length, int flags,
                        struct sockaddr *address, socklen_t *address_length);
    ssize_t (*recvmsg)(int fd, struct msghdr *message, int flags);
    ssize_t (*send)(int fd, const void *buffer, size_t length, int flags);
    ssize_t (*recv)(int fd, void *buffer, size_t length, int flags);
    int (*getsockname)(int fd, struct sockaddr *address, socklen_t *length);
    int (*getpeername)(int fd, struct sockaddr *address, socklen_t *length);
    int (*setsockopt)(int fd, int level, int name, const void *value, socklen_t length);
    int (*getsockopt)(int fd, int level, int name, void *value, socklen_t *length);
    int (*shutdown)(int fd, int how);
    int (*close)(int fd);
    int (*fcntl)(int fd, int command, int argument);
    int (*ioctl)(int fd, unsigned long request, void *argument);
    int (*poll)(struct pollfd *fds, nfds_t count, int timeout_ms);
};

extern const struct api kernel_api;
extern const struct api usock_api;

/* The stack of the usock variant while one runs. */
extern struct usock_stack *usock_current;

/* TCP TIME_WAIT of the usock variant's stack (config.tcp_time_wait_ns; 0 is
 * the stack's default).  A test program sets it before check_run. */
extern uint64_t api_usock_time_wait_ns;

/* Moves this (child) process into a network namespace of its own with
 * loopback and 198.18.0.1/24.  Returns false, after saying so, when not
 * root: only then do the kernel variants pass without running. */
bool kernel_setup(void);
void usock_setup(void);
void usock_teardown(void);

#define API_TEST(name)                                                                 \
    static void behaviour_##name(const struct api *api);                               \
    static void test_##name##_kernel(void)                                             \
    {                                                                                  \
        if (kernel_setup())                                                            \
            behaviour_##name(&kernel_api);                                             \
    }                                                                                  \
    static void test_##name##_usock(void)                                              \
    {                                                                                  \
        usock_setup();                                                                 \
        behaviour_##name(&usock_api);                                                  \
        usock_teardown();                                                              \
    }                                                                                  \
    static void behaviour_##name(const struct api *api)

#define API_ENTRIES(name) CHECK_TEST(test_##name##_kernel), CHECK_TEST(test_##name##_usock)

/* Helpers. */

#define EPHEMERAL_FIRST 32768
#define EPHEMERAL_LAST 60999

#define SA(address) ((struct sockaddr *)&(address))
#define CSA(address) ((const struct sockaddr *)&(address))

struct sockaddr_in address_of(const char *text, uint16_t port);
uint32_t ip_of(const char *text);
void set_int_option(const struct api *api, int fd, int level, int name, int value);
int get_int_option(const struct api *api, int fd, int level, int name);
/* getsockname / getpeername, checked to succeed with an AF_INET address. */
struct sockaddr_in local_address(const struct api *api, int fd);
struct sockaddr_in peer_address(const struct api *api, int fd);
bool is_ephemeral(uint16_t port);
ssize_t send_to(const struct api *api, int fd, const void *data, size_t length,
                const char *address, uint16_t port);
/* Waits up to 2 s for fd to be readable (the kernel's loopback delivers
 * through a softirq; usock's before the sending call returns). */
void wait_readable(const struct api *api, int fd);
/* Asserts that nothing arrives on fd within 50 ms. */
void expect_nothing(const struct api *api, int fd);
uint64_t monotonic_ms(void);
/* A sysctl of the host, as an integer (these are not per namespace). */
long read_sysctl(const char *path);

#endif
