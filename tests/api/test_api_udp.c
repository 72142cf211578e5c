/*
 * test_api_udp.c - UDP socket API behaviour, written once and run twice:
 * against the kernel's sockets (the reference) and against usock's, with
 * the same assertions and the same errno values.
 *
 * The two socket-call tables, the two environments and the API_TEST macro
 * are in api_harness.h.
 *
 * Where values legitimately differ (ephemeral port numbers) the tests assert
 * properties: in 32768..60999, distinct.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
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

#define UDP_MAX_PAYLOAD 65507

static int udp_socket(const struct api *api)
{
    int fd = api->socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    return fd;
}

static int udp_bound(const struct api *api, const char *address, uint16_t port)
{
    int fd = udp_socket(api);
    struct sockaddr_in local = address_of(address, port);
    CHECK_EQ(api->bind(fd, CSA(local), sizeof(local)), 0);
    return fd;
}

static int udp_connected(const struct api *api, const char *address, uint16_t port)
{
    int fd = udp_socket(api);
    struct sockaddr_in peer = address_of(address, port);
    CHECK_EQ(api->connect(fd, CSA(peer), sizeof(peer)), 0);
    return fd;
}

/* Receives one datagram (waiting for it) and checks its bytes. */
static void expect_datagram(const struct api *api, int fd, const char *text)
{
    char buffer[256];
    wait_readable(api, fd);
    ssize_t length = (ssize_t)strlen(text);
    CHECK_EQ(api->recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT), length);
    CHECK(memcmp(buffer, text, (size_t)length) == 0);
}

/* ------------------------------------------------------------------ */
/* socket()                                                            */
/* ------------------------------------------------------------------ */

API_TEST(socket_rejects_bad_domain_type_and_protocol)
{
    CHECK_ERRNO(api->socket(12345, SOCK_DGRAM, 0), EAFNOSUPPORT);
    CHECK_ERRNO(api->socket(-1, SOCK_DGRAM, 0), EAFNOSUPPORT);
    /* Type beyond SOCK_MAX, and unknown flag bits: EINVAL. */
    CHECK_ERRNO(api->socket(AF_INET, 11, 0), EINVAL);
    CHECK_ERRNO(api->socket(AF_INET, -1, 0), EINVAL);
    CHECK_ERRNO(api->socket(AF_INET, SOCK_DGRAM | 0x100, 0), EINVAL);
    /* A type IPv4 does not offer. */
    CHECK_ERRNO(api->socket(AF_INET, SOCK_RDM, 0), ESOCKTNOSUPPORT);
    CHECK_ERRNO(api->socket(AF_INET, 0, 0), ESOCKTNOSUPPORT);
    /* A protocol SOCK_DGRAM does not carry; out of range protocols. */
    CHECK_ERRNO(api->socket(AF_INET, SOCK_DGRAM, IPPROTO_TCP), EPROTONOSUPPORT);
    CHECK_ERRNO(api->socket(AF_INET, SOCK_DGRAM, -1), EINVAL);
    CHECK_ERRNO(api->socket(AF_INET, SOCK_DGRAM, 300), EINVAL);
    /* The good ones. */
    int a = api->socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    CHECK(a >= 0);
    int b = api->socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(b >= 0);
    CHECK(a != b);
    CHECK_EQ(api->close(a), 0);
    CHECK_EQ(api->close(b), 0);
}

API_TEST(so_type_protocol_and_domain_describe_the_socket)
{
    int fd = udp_socket(api);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_PROTOCOL), IPPROTO_UDP);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_DOMAIN), AF_INET);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ERROR), 0);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ACCEPTCONN), 0);
    int value = SOCK_STREAM;
    CHECK_ERRNO(api->setsockopt(fd, SOL_SOCKET, SO_TYPE, &value, sizeof(value)), ENOPROTOOPT);
    CHECK_ERRNO(api->setsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &value, sizeof(value)),
                ENOPROTOOPT);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(listen_and_accept_on_udp_are_eopnotsupp)
{
    int fd = udp_bound(api, "127.0.0.1", 5000);
    CHECK_ERRNO(api->listen(fd, 5), EOPNOTSUPP);
    struct sockaddr_in from;
    socklen_t length = sizeof(from);
    CHECK_ERRNO(api->accept(fd, SA(from), &length), EOPNOTSUPP);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(closed_descriptor_is_ebadf)
{
    int fd = udp_bound(api, "127.0.0.1", 5000);
    CHECK_EQ(api->close(fd), 0);
    char buffer[4];
    struct sockaddr_in to = address_of("127.0.0.1", 5001);
    CHECK_ERRNO(api->send(fd, "x", 1, 0), EBADF);
    CHECK_ERRNO(api->sendto(fd, "x", 1, 0, CSA(to), sizeof(to)), EBADF);
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT), EBADF);
    CHECK_ERRNO(api->bind(fd, CSA(to), sizeof(to)), EBADF);
    CHECK_ERRNO(api->connect(fd, CSA(to), sizeof(to)), EBADF);
    struct sockaddr_in name;
    socklen_t length = sizeof(name);
    CHECK_ERRNO(api->getsockname(fd, SA(name), &length), EBADF);
    int value = 1;
    CHECK_ERRNO(api->setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &value, sizeof(value)), EBADF);
    CHECK_ERRNO(api->fcntl(fd, F_GETFL, 0), EBADF);
    CHECK_ERRNO(api->ioctl(fd, FIONREAD, &value), EBADF);
    CHECK_ERRNO(api->shutdown(fd, SHUT_RDWR), EBADF);
    CHECK_ERRNO(api->close(fd), EBADF);
    CHECK_ERRNO(api->close(-1), EBADF);
    /* poll answers POLLNVAL for it instead of failing. */
    struct pollfd entry = {.fd = fd, .events = POLLIN};
    CHECK_EQ(api->poll(&entry, 1, 0), 1);
    CHECK_EQ(entry.revents, POLLNVAL);
    /* A negative descriptor in poll is ignored. */
    entry.fd = -1;
    CHECK_EQ(api->poll(&entry, 1, 0), 0);
    CHECK_EQ(entry.revents, 0);
}

/* ------------------------------------------------------------------ */
/* bind()                                                              */
/* ------------------------------------------------------------------ */

API_TEST(bind_same_address_and_port_twice_is_eaddrinuse)
{
    int a = udp_bound(api, "127.0.0.1", 5000);
    int b = udp_socket(api);
    struct sockaddr_in same = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->bind(b, CSA(same), sizeof(same)), EADDRINUSE);
    /* The failed bind left b unbound: it can bind elsewhere. */
    CHECK_EQ(local_address(api, b).sin_port, 0);
    struct sockaddr_in other = address_of("127.0.0.1", 5001);
    CHECK_EQ(api->bind(b, CSA(other), sizeof(other)), 0);
    /* Closing a frees the port at once. */
    CHECK_EQ(api->close(a), 0);
    int c = udp_bound(api, "127.0.0.1", 5000);
    CHECK_EQ(api->close(b), 0);
    CHECK_EQ(api->close(c), 0);
}

API_TEST(bind_wildcard_and_specific_on_one_port_conflict)
{
    int wildcard = udp_bound(api, "0.0.0.0", 5000);
    int fd = udp_socket(api);
    struct sockaddr_in specific = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->bind(fd, CSA(specific), sizeof(specific)), EADDRINUSE);
    specific = address_of("198.18.0.1", 5000);
    CHECK_ERRNO(api->bind(fd, CSA(specific), sizeof(specific)), EADDRINUSE);
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(wildcard), 0);

    /* The other order conflicts too. */
    int first = udp_bound(api, "198.18.0.1", 6000);
    fd = udp_socket(api);
    struct sockaddr_in any = address_of("0.0.0.0", 6000);
    CHECK_ERRNO(api->bind(fd, CSA(any), sizeof(any)), EADDRINUSE);
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(first), 0);
}

API_TEST(bind_different_specific_addresses_share_a_port)
{
    int loopback = udp_bound(api, "127.0.0.1", 5000);
    int interface = udp_bound(api, "198.18.0.1", 5000);
    int other_loopback = udp_bound(api, "127.0.0.2", 5000);
    int sender = udp_socket(api);
    CHECK_EQ(send_to(api, sender, "lo", 2, "127.0.0.1", 5000), 2);
    CHECK_EQ(send_to(api, sender, "if", 2, "198.18.0.1", 5000), 2);
    expect_datagram(api, loopback, "lo");
    expect_datagram(api, interface, "if");
    expect_nothing(api, loopback);
    expect_nothing(api, other_loopback);
    CHECK_EQ(api->close(loopback), 0);
    CHECK_EQ(api->close(interface), 0);
    CHECK_EQ(api->close(other_loopback), 0);
    CHECK_EQ(api->close(sender), 0);
}

API_TEST(wildcard_socket_receives_for_every_local_address)
{
    int wildcard = udp_bound(api, "0.0.0.0", 5000);
    int sender = udp_socket(api);
    CHECK_EQ(send_to(api, sender, "a", 1, "127.0.0.1", 5000), 1);
    CHECK_EQ(send_to(api, sender, "b", 1, "198.18.0.1", 5000), 1);
    CHECK_EQ(send_to(api, sender, "c", 1, "127.1.2.3", 5000), 1);
    char buffer[8];
    struct sockaddr_in from;
    socklen_t length = sizeof(from);
    wait_readable(api, wildcard);
    CHECK_EQ(api->recvfrom(wildcard, buffer, sizeof(buffer), 0, SA(from), &length), 1);
    CHECK_EQ(buffer[0], 'a');
    CHECK_EQ(from.sin_addr.s_addr, ip_of("127.0.0.1"));
    wait_readable(api, wildcard);
    CHECK_EQ(api->recvfrom(wildcard, buffer, sizeof(buffer), 0, SA(from), &length), 1);
    CHECK_EQ(buffer[0], 'b');
    CHECK_EQ(from.sin_addr.s_addr, ip_of("198.18.0.1"));
    wait_readable(api, wildcard);
    CHECK_EQ(api->recvfrom(wildcard, buffer, sizeof(buffer), 0, SA(from), &length), 1);
    CHECK_EQ(buffer[0], 'c');
    /* An unbound sender's source is the route's: 127.0.0.1 for all of 127/8. */
    CHECK_EQ(from.sin_addr.s_addr, ip_of("127.0.0.1"));
    /* The sender was bound once, to the wildcard and one ephemeral port. */
    struct sockaddr_in sender_name = local_address(api, sender);
    CHECK_EQ(sender_name.sin_addr.s_addr, htonl(INADDR_ANY));
    CHECK_EQ(from.sin_port, sender_name.sin_port);
    CHECK_EQ(api->close(wildcard), 0);
    CHECK_EQ(api->close(sender), 0);
}

API_TEST(specific_bind_wins_over_wildcard_with_so_reuseaddr)
{
    int wildcard = udp_socket(api);
    set_int_option(api, wildcard, SOL_SOCKET, SO_REUSEADDR, 1);
    struct sockaddr_in any = address_of("0.0.0.0", 5000);
    CHECK_EQ(api->bind(wildcard, CSA(any), sizeof(any)), 0);
    int specific = udp_socket(api);
    set_int_option(api, specific, SOL_SOCKET, SO_REUSEADDR, 1);
    struct sockaddr_in loopback = address_of("127.0.0.1", 5000);
    CHECK_EQ(api->bind(specific, CSA(loopback), sizeof(loopback)), 0);
    int sender = udp_socket(api);
    CHECK_EQ(send_to(api, sender, "s", 1, "127.0.0.1", 5000), 1);
    CHECK_EQ(send_to(api, sender, "w", 1, "198.18.0.1", 5000), 1);
    expect_datagram(api, specific, "s");
    expect_datagram(api, wildcard, "w");
    expect_nothing(api, specific);
    expect_nothing(api, wildcard);
    CHECK_EQ(api->close(wildcard), 0);
    CHECK_EQ(api->close(specific), 0);
    CHECK_EQ(api->close(sender), 0);
}

API_TEST(bind_port_zero_picks_distinct_ephemeral_ports)
{
    enum { COUNT = 8 };
    int fds[COUNT];
    uint16_t ports[COUNT];
    for (int i = 0; i < COUNT; i++) {
        fds[i] = udp_bound(api, i % 2 ? "127.0.0.1" : "0.0.0.0", 0);
        struct sockaddr_in name = local_address(api, fds[i]);
        CHECK_EQ(name.sin_addr.s_addr, i % 2 ? ip_of("127.0.0.1") : htonl(INADDR_ANY));
        ports[i] = ntohs(name.sin_port);
        CHECK(is_ephemeral(ports[i]));
        for (int j = 0; j < i; j++)
            CHECK(ports[i] != ports[j]);
    }
    for (int i = 0; i < COUNT; i++)
        CHECK_EQ(api->close(fds[i]), 0);
}

API_TEST(getsockname_of_fresh_socket_is_any_address_port_zero)
{
    int fd = udp_socket(api);
    struct sockaddr_in name = local_address(api, fd);
    CHECK_EQ(name.sin_addr.s_addr, htonl(INADDR_ANY));
    CHECK_EQ(name.sin_port, 0);
    /* A short buffer gets a truncated address and the full length. */
    unsigned char small[4];
    memset(small, 0xee, sizeof(small));
    socklen_t length = sizeof(small);
    CHECK_EQ(api->getsockname(fd, (struct sockaddr *)small, &length), 0);
    CHECK_EQ(length, sizeof(struct sockaddr_in));
    sa_family_t family;
    memcpy(&family, small, sizeof(family));
    CHECK_EQ(family, AF_INET);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(sendto_on_unbound_socket_autobinds_an_ephemeral_port)
{
    int receiver = udp_bound(api, "127.0.0.1", 5000);
    int sender = udp_socket(api);
    CHECK_EQ(send_to(api, sender, "hi", 2, "127.0.0.1", 5000), 2);
    struct sockaddr_in name = local_address(api, sender);
    CHECK_EQ(name.sin_addr.s_addr, htonl(INADDR_ANY));
    CHECK(is_ephemeral(ntohs(name.sin_port)));
    char buffer[8];
    struct sockaddr_in from;
    socklen_t length = sizeof(from);
    wait_readable(api, receiver);
    CHECK_EQ(api->recvfrom(receiver, buffer, sizeof(buffer), 0, SA(from), &length), 2);
    CHECK_EQ(from.sin_port, name.sin_port);
    CHECK_EQ(from.sin_addr.s_addr, ip_of("127.0.0.1"));
    /* Sending again keeps the port. */
    CHECK_EQ(send_to(api, sender, "hi", 2, "198.18.0.1", 5001), 2);
    CHECK_EQ(local_address(api, sender).sin_port, name.sin_port);
    CHECK_EQ(api->close(receiver), 0);
    CHECK_EQ(api->close(sender), 0);
}

API_TEST(bind_twice_is_einval)
{
    int fd = udp_bound(api, "127.0.0.1", 5000);
    struct sockaddr_in again = address_of("127.0.0.1", 5001);
    CHECK_ERRNO(api->bind(fd, CSA(again), sizeof(again)), EINVAL);
    again = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->bind(fd, CSA(again), sizeof(again)), EINVAL);
    CHECK_EQ(ntohs(local_address(api, fd).sin_port), 5000);
    /* Autobinding counts as bound too. */
    int sender = udp_socket(api);
    CHECK_EQ(send_to(api, sender, "x", 1, "127.0.0.1", 5000), 1);
    struct sockaddr_in any = address_of("0.0.0.0", 0);
    CHECK_ERRNO(api->bind(sender, CSA(any), sizeof(any)), EINVAL);
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(sender), 0);
}

API_TEST(bind_to_non_local_address_is_eaddrnotavail)
{
    int fd = udp_socket(api);
    struct sockaddr_in address = address_of("192.0.2.1", 5000);
    CHECK_ERRNO(api->bind(fd, CSA(address), sizeof(address)), EADDRNOTAVAIL);
    address = address_of("198.18.0.2", 5000); /* on the subnet, not ours */
    CHECK_ERRNO(api->bind(fd, CSA(address), sizeof(address)), EADDRNOTAVAIL);
    /* Still unbound. */
    CHECK_EQ(local_address(api, fd).sin_port, 0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(bind_to_loopback_net_and_broadcast_addresses_is_allowed)
{
    /* All of 127/8 is local, and so are the interface's broadcast addresses. */
    int loopback = udp_bound(api, "127.0.0.2", 5000);
    int directed = udp_bound(api, "198.18.0.255", 5000);
    int limited = udp_bound(api, "255.255.255.255", 5000);
    CHECK_EQ(local_address(api, directed).sin_addr.s_addr, ip_of("198.18.0.255"));
    CHECK_EQ(api->close(loopback), 0);
    CHECK_EQ(api->close(directed), 0);
    CHECK_EQ(api->close(limited), 0);
}

API_TEST(bind_checks_address_length_and_family)
{
    int fd = udp_socket(api);
    struct sockaddr_in address = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->bind(fd, CSA(address), sizeof(address) - 1), EINVAL);
    CHECK_ERRNO(api->bind(fd, CSA(address), 0), EINVAL);
    CHECK_ERRNO(api->bind(fd, NULL, 0), EINVAL);
    CHECK_ERRNO(api->bind(fd, NULL, sizeof(address)), EFAULT);
    address.sin_family = AF_INET6;
    CHECK_ERRNO(api->bind(fd, CSA(address), sizeof(address)), EAFNOSUPPORT);
    /* AF_UNSPEC is taken for AF_INET with INADDR_ANY only. */
    address.sin_family = AF_UNSPEC;
    CHECK_ERRNO(api->bind(fd, CSA(address), sizeof(address)), EAFNOSUPPORT);
    CHECK_EQ(local_address(api, fd).sin_port, 0);
    struct sockaddr_in any = address_of("0.0.0.0", 5000);
    any.sin_family = AF_UNSPEC;
    CHECK_EQ(api->bind(fd, CSA(any), sizeof(any)), 0);
    CHECK_EQ(ntohs(local_address(api, fd).sin_port), 5000);
    /* A longer buffer than sockaddr_in is fine. */
    int other = udp_socket(api);
    struct sockaddr_storage storage;
    memset(&storage, 0, sizeof(storage));
    struct sockaddr_in long_address = address_of("127.0.0.1", 5001);
    memcpy(&storage, &long_address, sizeof(long_address));
    CHECK_EQ(api->bind(other, (struct sockaddr *)&storage, sizeof(storage)), 0);
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(other), 0);
}

API_TEST(so_reuseaddr_on_both_sockets_allows_sharing_a_port)
{
    int a = udp_socket(api);
    int b = udp_socket(api);
    int c = udp_socket(api);
    CHECK_EQ(get_int_option(api, a, SOL_SOCKET, SO_REUSEADDR), 0);
    set_int_option(api, a, SOL_SOCKET, SO_REUSEADDR, 1);
    CHECK(get_int_option(api, a, SOL_SOCKET, SO_REUSEADDR) != 0);
    set_int_option(api, b, SOL_SOCKET, SO_REUSEADDR, 1);
    struct sockaddr_in address = address_of("127.0.0.1", 5000);
    CHECK_EQ(api->bind(a, CSA(address), sizeof(address)), 0);
    CHECK_EQ(api->bind(b, CSA(address), sizeof(address)), 0);
    /* Without the option on the newcomer: refused. */
    CHECK_ERRNO(api->bind(c, CSA(address), sizeof(address)), EADDRINUSE);
    CHECK_EQ(api->close(a), 0);
    CHECK_EQ(api->close(b), 0);
    CHECK_EQ(api->close(c), 0);

    /* With the option only on the newcomer: refused too. */
    a = udp_bound(api, "127.0.0.1", 6000);
    b = udp_socket(api);
    set_int_option(api, b, SOL_SOCKET, SO_REUSEADDR, 1);
    address = address_of("127.0.0.1", 6000);
    CHECK_ERRNO(api->bind(b, CSA(address), sizeof(address)), EADDRINUSE);
    CHECK_EQ(api->close(a), 0);
    CHECK_EQ(api->close(b), 0);
}

API_TEST(so_reuseport_on_both_sockets_allows_sharing_a_port)
{
    int a = udp_socket(api);
    int b = udp_socket(api);
    int c = udp_socket(api);
    CHECK_EQ(get_int_option(api, a, SOL_SOCKET, SO_REUSEPORT), 0);
    set_int_option(api, a, SOL_SOCKET, SO_REUSEPORT, 1);
    CHECK(get_int_option(api, a, SOL_SOCKET, SO_REUSEPORT) != 0);
    set_int_option(api, b, SOL_SOCKET, SO_REUSEPORT, 1);
    struct sockaddr_in address = address_of("0.0.0.0", 5000);
    CHECK_EQ(api->bind(a, CSA(address), sizeof(address)), 0);
    CHECK_EQ(api->bind(b, CSA(address), sizeof(address)), 0);
    CHECK_ERRNO(api->bind(c, CSA(address), sizeof(address)), EADDRINUSE);
    /* Every datagram goes to exactly one of the group. */
    int sender = udp_socket(api);
    CHECK_EQ(send_to(api, sender, "x", 1, "127.0.0.1", 5000), 1);
    struct pollfd entries[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    CHECK_EQ(api->poll(entries, 2, 2000), 1);
    CHECK_EQ(api->close(a), 0);
    CHECK_EQ(api->close(b), 0);
    CHECK_EQ(api->close(c), 0);
    CHECK_EQ(api->close(sender), 0);
}

/* ------------------------------------------------------------------ */
/* connect() and disconnect                                            */
/* ------------------------------------------------------------------ */

API_TEST(connect_sets_peer_and_picks_source_address)
{
    int fd = udp_connected(api, "127.0.0.1", 5000);
    struct sockaddr_in peer = peer_address(api, fd);
    CHECK_EQ(peer.sin_addr.s_addr, ip_of("127.0.0.1"));
    CHECK_EQ(ntohs(peer.sin_port), 5000);
    struct sockaddr_in name = local_address(api, fd);
    CHECK_EQ(name.sin_addr.s_addr, ip_of("127.0.0.1"));
    CHECK(is_ephemeral(ntohs(name.sin_port)));

    int other = udp_connected(api, "198.18.0.1", 5000);
    CHECK_EQ(local_address(api, other).sin_addr.s_addr, ip_of("198.18.0.1"));
    /* Off-link on the interface's subnet: the interface's address. */
    int remote = udp_connected(api, "198.18.0.7", 5000);
    CHECK_EQ(local_address(api, remote).sin_addr.s_addr, ip_of("198.18.0.1"));
    /* Connecting again moves the association; the port stays. */
    struct sockaddr_in again = address_of("127.0.0.1", 5001);
    CHECK_EQ(api->connect(fd, CSA(again), sizeof(again)), 0);
    CHECK_EQ(ntohs(peer_address(api, fd).sin_port), 5001);
    CHECK_EQ(local_address(api, fd).sin_port, name.sin_port);
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(other), 0);
    CHECK_EQ(api->close(remote), 0);
}

API_TEST(connect_with_no_route_is_enetunreach)
{
    int fd = udp_socket(api);
    struct sockaddr_in far = address_of("192.0.2.1", 5000);
    CHECK_ERRNO(api->connect(fd, CSA(far), sizeof(far)), ENETUNREACH);
    CHECK_ERRNO(api->sendto(fd, "x", 1, 0, CSA(far), sizeof(far)), ENETUNREACH);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(getpeername_of_unconnected_socket_is_enotconn)
{
    int fd = udp_bound(api, "127.0.0.1", 5000);
    struct sockaddr_in peer;
    socklen_t length = sizeof(peer);
    CHECK_ERRNO(api->getpeername(fd, SA(peer), &length), ENOTCONN);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(connect_checks_address_length_and_family)
{
    int fd = udp_socket(api);
    struct sockaddr_in address = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->connect(fd, CSA(address), sizeof(address) - 1), EINVAL);
    CHECK_ERRNO(api->connect(fd, CSA(address), 1), EINVAL);
    CHECK_ERRNO(api->connect(fd, NULL, 0), EINVAL);
    address.sin_family = AF_INET6;
    CHECK_ERRNO(api->connect(fd, CSA(address), sizeof(address)), EAFNOSUPPORT);
    /* The length is checked before the family. */
    CHECK_ERRNO(api->connect(fd, CSA(address), 8), EINVAL);
    struct sockaddr_in peer;
    socklen_t length = sizeof(peer);
    CHECK_ERRNO(api->getpeername(fd, SA(peer), &length), ENOTCONN);
    /* AF_UNSPEC on a socket never connected is a harmless disconnect. */
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    CHECK_EQ(api->connect(fd, &unspec, sizeof(unspec)), 0);
    CHECK_EQ(api->connect(fd, &unspec, sizeof(sa_family_t)), 0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(connected_socket_receives_only_from_its_peer)
{
    int peer = udp_bound(api, "127.0.0.1", 5000);
    int stranger = udp_bound(api, "127.0.0.1", 5001);
    int fd = udp_bound(api, "127.0.0.1", 6000);
    struct sockaddr_in to = address_of("127.0.0.1", 5000);
    CHECK_EQ(api->connect(fd, CSA(to), sizeof(to)), 0);
    CHECK_EQ(send_to(api, stranger, "no", 2, "127.0.0.1", 6000), 2);
    CHECK_EQ(send_to(api, peer, "yes", 3, "127.0.0.1", 6000), 3);
    expect_datagram(api, fd, "yes");
    expect_nothing(api, fd);
    /* send() goes to the peer. */
    CHECK_EQ(api->send(fd, "to-peer", 7, 0), 7);
    expect_datagram(api, peer, "to-peer");
    CHECK_EQ(api->close(peer), 0);
    CHECK_EQ(api->close(stranger), 0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(connected_socket_may_sendto_another_address)
{
    int peer = udp_bound(api, "127.0.0.1", 5000);
    int other = udp_bound(api, "127.0.0.1", 5001);
    int fd = udp_connected(api, "127.0.0.1", 5000);
    CHECK_EQ(send_to(api, fd, "other", 5, "127.0.0.1", 5001), 5);
    expect_datagram(api, other, "other");
    expect_nothing(api, peer);
    /* An address of NULL with sendto uses the peer. */
    CHECK_EQ(api->sendto(fd, "peer", 4, 0, NULL, 0), 4);
    expect_datagram(api, peer, "peer");
    CHECK_EQ(api->close(peer), 0);
    CHECK_EQ(api->close(other), 0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(disconnect_with_af_unspec_forgets_the_peer)
{
    /* Autobound by connect: disconnecting gives back address and port. */
    int fd = udp_connected(api, "127.0.0.1", 5000);
    CHECK(is_ephemeral(ntohs(local_address(api, fd).sin_port)));
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    CHECK_EQ(api->connect(fd, &unspec, sizeof(unspec)), 0);
    struct sockaddr_in peer;
    socklen_t length = sizeof(peer);
    CHECK_ERRNO(api->getpeername(fd, SA(peer), &length), ENOTCONN);
    struct sockaddr_in name = local_address(api, fd);
    CHECK_EQ(name.sin_addr.s_addr, htonl(INADDR_ANY));
    CHECK_EQ(name.sin_port, 0);
    CHECK_ERRNO(api->send(fd, "x", 1, 0), EDESTADDRREQ);

    /* Bound to a port by the program: the port stays, the address chosen
     * by connect goes. */
    int bound = udp_bound(api, "0.0.0.0", 6000);
    struct sockaddr_in to = address_of("127.0.0.1", 5000);
    CHECK_EQ(api->connect(bound, CSA(to), sizeof(to)), 0);
    CHECK_EQ(local_address(api, bound).sin_addr.s_addr, ip_of("127.0.0.1"));
    CHECK_EQ(api->connect(bound, &unspec, sizeof(unspec)), 0);
    name = local_address(api, bound);
    CHECK_EQ(name.sin_addr.s_addr, htonl(INADDR_ANY));
    CHECK_EQ(ntohs(name.sin_port), 6000);

    /* Bound to an address by the program: both stay. */
    int specific = udp_bound(api, "127.0.0.1", 6001);
    CHECK_EQ(api->connect(specific, CSA(to), sizeof(to)), 0);
    CHECK_EQ(api->connect(specific, &unspec, sizeof(unspec)), 0);
    name = local_address(api, specific);
    CHECK_EQ(name.sin_addr.s_addr, ip_of("127.0.0.1"));
    CHECK_EQ(ntohs(name.sin_port), 6001);

    /* Unconnected again, it hears from anyone. */
    int stranger = udp_socket(api);
    CHECK_EQ(send_to(api, stranger, "any", 3, "127.0.0.1", 6000), 3);
    expect_datagram(api, bound, "any");
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(bound), 0);
    CHECK_EQ(api->close(specific), 0);
    CHECK_EQ(api->close(stranger), 0);
}

API_TEST(send_without_destination_is_edestaddrreq)
{
    int fd = udp_bound(api, "127.0.0.1", 5000);
    CHECK_ERRNO(api->send(fd, "x", 1, 0), EDESTADDRREQ);
    CHECK_ERRNO(api->sendto(fd, "x", 1, 0, NULL, 0), EDESTADDRREQ);
    /* On an unbound socket the failed send still binds an ephemeral port
     * (Linux autobinds before the protocol looks at the destination). */
    int fresh = udp_socket(api);
    CHECK_ERRNO(api->send(fresh, "x", 1, 0), EDESTADDRREQ);
    struct sockaddr_in name = local_address(api, fresh);
    CHECK_EQ(name.sin_addr.s_addr, htonl(INADDR_ANY));
    CHECK(is_ephemeral(ntohs(name.sin_port)));
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(fresh), 0);
}

API_TEST(sendto_checks_address_length_family_and_port)
{
    int receiver = udp_bound(api, "127.0.0.1", 5000);
    int fd = udp_socket(api);
    struct sockaddr_in to = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->sendto(fd, "x", 1, 0, CSA(to), sizeof(to) - 1), EINVAL);
    to.sin_family = AF_INET6;
    CHECK_ERRNO(api->sendto(fd, "x", 1, 0, CSA(to), sizeof(to)), EAFNOSUPPORT);
    /* Longer than any sockaddr: refused before the family is looked at. */
    struct sockaddr_storage big[2];
    memset(big, 0, sizeof(big));
    to.sin_family = AF_INET;
    memcpy(big, &to, sizeof(to));
    CHECK_ERRNO(api->sendto(fd, "x", 1, 0, (struct sockaddr *)big, sizeof(big)), EINVAL);
    /* Destination port 0. */
    struct sockaddr_in zero = address_of("127.0.0.1", 0);
    CHECK_ERRNO(api->sendto(fd, "x", 1, 0, CSA(zero), sizeof(zero)), EINVAL);
    /* AF_UNSPEC is taken as AF_INET. */
    to.sin_family = AF_UNSPEC;
    CHECK_EQ(api->sendto(fd, "u", 1, 0, CSA(to), sizeof(to)), 1);
    expect_datagram(api, receiver, "u");
    CHECK_EQ(api->close(receiver), 0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(sendto_any_address_goes_to_loopback)
{
    int receiver = udp_bound(api, "127.0.0.1", 5000);
    int fd = udp_socket(api);
    CHECK_EQ(send_to(api, fd, "zero", 4, "0.0.0.0", 5000), 4);
    char buffer[8];
    struct sockaddr_in from;
    socklen_t length = sizeof(from);
    wait_readable(api, receiver);
    CHECK_EQ(api->recvfrom(receiver, buffer, sizeof(buffer), 0, SA(from), &length), 4);
    CHECK_EQ(from.sin_addr.s_addr, ip_of("127.0.0.1"));
    CHECK_EQ(api->close(receiver), 0);
    CHECK_EQ(api->close(fd), 0);
}

/* ------------------------------------------------------------------ */
/* Port unreachable                                                    */
/* ------------------------------------------------------------------ */

API_TEST(connected_socket_gets_econnrefused_from_closed_loopback_port)
{
    int fd = udp_connected(api, "127.0.0.1", 9999);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ERROR), 0);
    CHECK_EQ(api->send(fd, "x", 1, 0), 1);
    struct pollfd entry = {.fd = fd, .events = POLLIN};
    CHECK_EQ(api->poll(&entry, 1, 2000), 1);
    CHECK_EQ(entry.revents, POLLERR);
    char buffer[8];
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), 0), ECONNREFUSED);
    /* Reported once. */
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT), EAGAIN);
    CHECK_EQ(api->poll(&entry, 1, 0), 0);

    /* Again, collected with SO_ERROR this time. */
    CHECK_EQ(api->send(fd, "x", 1, 0), 1);
    entry.events = 0; /* POLLERR is reported even when not asked for */
    CHECK_EQ(api->poll(&entry, 1, 2000), 1);
    CHECK_EQ(entry.revents, POLLERR);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ERROR), ECONNREFUSED);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ERROR), 0);

    /* A pending error fails the next send, and is cleared by it. */
    CHECK_EQ(api->send(fd, "x", 1, 0), 1);
    CHECK_EQ(api->poll(&entry, 1, 2000), 1);
    CHECK_ERRNO(api->send(fd, "x", 1, 0), ECONNREFUSED);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ERROR), 0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(connected_socket_gets_econnrefused_from_own_interface_address)
{
    int fd = udp_connected(api, "198.18.0.1", 9999);
    CHECK_EQ(api->send(fd, "x", 1, 0), 1);
    struct pollfd entry = {.fd = fd, .events = POLLIN};
    CHECK_EQ(api->poll(&entry, 1, 2000), 1);
    char buffer[8];
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), 0), ECONNREFUSED);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(unconnected_socket_ignores_port_unreachable)
{
    int fd = udp_bound(api, "0.0.0.0", 5000);
    CHECK_EQ(send_to(api, fd, "x", 1, "127.0.0.1", 9999), 1);
    expect_nothing(api, fd);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_ERROR), 0);
    CHECK_EQ(send_to(api, fd, "x", 1, "127.0.0.1", 9999), 1);
    CHECK_EQ(api->close(fd), 0);
}

/* ------------------------------------------------------------------ */
/* Receiving                                                           */
/* ------------------------------------------------------------------ */

API_TEST(datagram_boundaries_are_kept)
{
    int receiver = udp_bound(api, "127.0.0.1", 5000);
    int sender = udp_socket(api);
    CHECK_EQ(send_to(api, sender, "one", 3, "127.0.0.1", 5000), 3);
    CHECK_EQ(send_to(api, sender, "two!", 4, "127.0.0.1", 5000), 4);
    expect_datagram(api, receiver, "one");
    expect_datagram(api, receiver, "two!");
    expect_nothing(api, receiver);
    CHECK_EQ(api->close(receiver), 0);
    CHECK_EQ(api->close(sender), 0);
}

API_TEST(recvfrom_reports_source_and_truncates_a_short_address_buffer)
{
    int receiver = udp_bound(api, "0.0.0.0", 5000);
    int sender = udp_bound(api, "198.18.0.1", 6000);
    CHECK_EQ(send_to(api, sender, "a", 1, "198.18.0.1", 5000), 1);
    CHECK_EQ(send_to(api, sender, "b", 1, "198.18.0.1", 5000), 1);
    CHECK_EQ(send_to(api, sender, "c", 1, "198.18.0.1", 5000), 1);
    char buffer[8];
    struct sockaddr_in from;
    memset(&from, 0xee, sizeof(from));
    socklen_t length = sizeof(from);
    wait_readable(api, receiver);
    CHECK_EQ(api->recvfrom(receiver, buffer, sizeof(buffer), 0, SA(from), &length), 1);
    CHECK_EQ(length, sizeof(from));
    CHECK_EQ(from.sin_family, AF_INET);
    CHECK_EQ(from.sin_addr.s_addr, ip_of("198.18.0.1"));
    CHECK_EQ(ntohs(from.sin_port), 6000);
    /* Four bytes of room: family and port only, and the full length. */
    memset(&from, 0xee, sizeof(from));
    length = 4;
    wait_readable(api, receiver);
    CHECK_EQ(api->recvfrom(receiver, buffer, sizeof(buffer), 0, SA(from), &length), 1);
    CHECK_EQ(length, sizeof(from));
    CHECK_EQ(from.sin_family, AF_INET);
    CHECK_EQ(ntohs(from.sin_port), 6000);
    CHECK_EQ(from.sin_addr.s_addr, 0xeeeeeeeeu);
    /* A length but no buffer: nothing written. */
    length = sizeof(from);
    wait_readable(api, receiver);
    CHECK_EQ(api->recvfrom(receiver, buffer, sizeof(buffer), 0, NULL, &length), 1);
    CHECK_EQ(api->close(receiver), 0);
    CHECK_EQ(api->close(sender), 0);
}

API_TEST(msg_peek_leaves_the_datagram_queued)
{
    int receiver = udp_bound(api, "127.0.0.1", 5000);
    int sender = udp_bound(api, "127.0.0.1", 6000);
    CHECK_EQ(send_to(api, sender, "peekaboo", 8, "127.0.0.1", 5000), 8);
    CHECK_EQ(send_to(api, sender, "next", 4, "127.0.0.1", 5000), 4);
    wait_readable(api, receiver);
    char buffer[16];
    struct sockaddr_in from;
    socklen_t length = sizeof(from);
    CHECK_EQ(api->recvfrom(receiver, buffer, sizeof(buffer), MSG_PEEK, SA(from), &length), 8);
    CHECK(memcmp(buffer, "peekaboo", 8) == 0);
    CHECK_EQ(ntohs(from.sin_port), 6000);
    /* A short peek is truncated, still without consuming. */
    memset(buffer, 0, sizeof(buffer));
    CHECK_EQ(api->recv(receiver, buffer, 4, MSG_PEEK), 4);
    CHECK(memcmp(buffer, "peek", 4) == 0);
    /* MSG_PEEK | MSG_TRUNC gives the whole length. */
    CHECK_EQ(api->recv(receiver, buffer, 1, MSG_PEEK | MSG_TRUNC), 8);
    int pending = -1;
    CHECK_EQ(api->ioctl(receiver, FIONREAD, &pending), 0);
    CHECK_EQ(pending, 8);
    expect_datagram(api, receiver, "peekaboo");
    expect_datagram(api, receiver, "next");
    CHECK_EQ(api->close(receiver), 0);
    CHECK_EQ(api->close(sender), 0);
}

API_TEST(msg_trunc_reports_the_full_length_and_the_rest_is_discarded)
{
    int receiver = udp_bound(api, "127.0.0.1", 5000);
    int sender = udp_socket(api);
    CHECK_EQ(send_to(api, sender, "0123456789", 10, "127.0.0.1", 5000), 10);
    CHECK_EQ(send_to(api, sender, "abcdefghij", 10, "127.0.0.1", 5000), 10);
    CHECK_EQ(send_to(api, sender, "ABCDEFGHIJ", 10, "127.0.0.1", 5000), 10);
    char buffer[16];
    memset(buffer, 0, sizeof(buffer));
    wait_readable(api, receiver);
    /* Without MSG_TRUNC: the buffer's worth, the rest is gone. */
    CHECK_EQ(api->recv(receiver, buffer, 4, 0), 4);
    CHECK(memcmp(buffer, "0123", 4) == 0);
    CHECK_EQ(buffer[4], 0);
    /* With MSG_TRUNC: the datagram's real length. */
    wait_readable(api, receiver);
    CHECK_EQ(api->recv(receiver, buffer, 4, MSG_TRUNC), 10);
    CHECK(memcmp(buffer, "abcd", 4) == 0);
    /* A zero-length read consumes a datagram too. */
    wait_readable(api, receiver);
    CHECK_EQ(api->recv(receiver, buffer, 0, 0), 0);
    expect_nothing(api, receiver);
    CHECK_EQ(api->close(receiver), 0);
    CHECK_EQ(api->close(sender), 0);
}

API_TEST(recvmsg_sets_msg_trunc_in_msg_flags)
{
    int receiver = udp_bound(api, "127.0.0.1", 5000);
    int sender = udp_bound(api, "127.0.0.1", 6000);
    CHECK_EQ(send_to(api, sender, "0123456789", 10, "127.0.0.1", 5000), 10);
    CHECK_EQ(send_to(api, sender, "short", 5, "127.0.0.1", 5000), 5);
    char first[4], second[4];
    struct iovec vectors[2] = {{.iov_base = first, .iov_len = sizeof(first)},
                               {.iov_base = second, .iov_len = sizeof(second)}};
    struct sockaddr_in from;
    struct msghdr message;
    memset(&message, 0, sizeof(message));
    message.msg_name = &from;
    message.msg_namelen = sizeof(from);
    message.msg_iov = vectors;
    message.msg_iovlen = 2;
    message.msg_flags = -1;
    wait_readable(api, receiver);
    CHECK_EQ(api->recvmsg(receiver, &message, 0), 8);
    CHECK(memcmp(first, "0123", 4) == 0);
    CHECK(memcmp(second, "4567", 4) == 0);
    CHECK_EQ(message.msg_flags, MSG_TRUNC);
    CHECK_EQ(message.msg_namelen, sizeof(from));
    CHECK_EQ(ntohs(from.sin_port), 6000);
    CHECK_EQ(message.msg_controllen, 0);
    /* A datagram that fits: flags cleared. */
    message.msg_namelen = sizeof(from);
    message.msg_flags = MSG_TRUNC;
    wait_readable(api, receiver);
    CHECK_EQ(api->recvmsg(receiver, &message, 0), 5);
    CHECK_EQ(message.msg_flags, 0);
    CHECK(memcmp(first, "shor", 4) == 0);
    CHECK_EQ(second[0], 't');
    CHECK_EQ(api->close(receiver), 0);
    CHECK_EQ(api->close(sender), 0);
}

API_TEST(zero_length_datagrams_are_delivered)
{
    int receiver = udp_bound(api, "127.0.0.1", 5000);
    int sender = udp_bound(api, "127.0.0.1", 6000);
    CHECK_EQ(send_to(api, sender, "", 0, "127.0.0.1", 5000), 0);
    CHECK_EQ(send_to(api, sender, NULL, 0, "127.0.0.1", 5000), 0);
    wait_readable(api, receiver);
    int pending = -1;
    CHECK_EQ(api->ioctl(receiver, FIONREAD, &pending), 0);
    CHECK_EQ(pending, 0);
    char buffer[8];
    struct sockaddr_in from;
    socklen_t length = sizeof(from);
    CHECK_EQ(api->recvfrom(receiver, buffer, sizeof(buffer), 0, SA(from), &length), 0);
    CHECK_EQ(ntohs(from.sin_port), 6000);
    wait_readable(api, receiver);
    CHECK_EQ(api->recv(receiver, buffer, sizeof(buffer), 0), 0);
    expect_nothing(api, receiver);
    CHECK_EQ(api->close(receiver), 0);
    CHECK_EQ(api->close(sender), 0);
}

API_TEST(fionread_is_the_size_of_the_first_datagram)
{
    int receiver = udp_bound(api, "127.0.0.1", 5000);
    int sender = udp_socket(api);
    int pending = -1;
    CHECK_EQ(api->ioctl(receiver, FIONREAD, &pending), 0);
    CHECK_EQ(pending, 0);
    CHECK_EQ(send_to(api, sender, "12345", 5, "127.0.0.1", 5000), 5);
    CHECK_EQ(send_to(api, sender, "123456789", 9, "127.0.0.1", 5000), 9);
    wait_readable(api, receiver);
    CHECK_EQ(api->ioctl(receiver, FIONREAD, &pending), 0);
    CHECK_EQ(pending, 5);
    expect_datagram(api, receiver, "12345");
    wait_readable(api, receiver);
    CHECK_EQ(api->ioctl(receiver, FIONREAD, &pending), 0);
    CHECK_EQ(pending, 9);
    expect_datagram(api, receiver, "123456789");
    CHECK_EQ(api->ioctl(receiver, FIONREAD, &pending), 0);
    CHECK_EQ(pending, 0);
    /* Not a socket ioctl at all. */
    CHECK_ERRNO(api->ioctl(receiver, 0x5401 /* TCGETS */, &pending), ENOTTY);
    CHECK_EQ(api->close(receiver), 0);
    CHECK_EQ(api->close(sender), 0);
}

API_TEST(sendto_over_65507_bytes_is_emsgsize)
{
    int receiver = udp_bound(api, "127.0.0.1", 5000);
    int sender = udp_socket(api);
    char *big = calloc(1, UDP_MAX_PAYLOAD + 2);
    CHECK(big != NULL);
    big[0] = 'f';
    big[UDP_MAX_PAYLOAD - 1] = 'l';
    CHECK_ERRNO(send_to(api, sender, big, UDP_MAX_PAYLOAD + 1, "127.0.0.1", 5000), EMSGSIZE);
    CHECK_ERRNO(send_to(api, sender, big, 70000, "198.18.0.1", 5000), EMSGSIZE);
    CHECK_EQ(send_to(api, sender, big, UDP_MAX_PAYLOAD, "127.0.0.1", 5000), UDP_MAX_PAYLOAD);
    memset(big, 0, UDP_MAX_PAYLOAD + 2);
    wait_readable(api, receiver);
    CHECK_EQ(api->recv(receiver, big, UDP_MAX_PAYLOAD + 2, 0), UDP_MAX_PAYLOAD);
    CHECK_EQ(big[0], 'f');
    CHECK_EQ(big[UDP_MAX_PAYLOAD - 1], 'l');
    /* Connected, the same limit. */
    int connected = udp_connected(api, "127.0.0.1", 5000);
    CHECK_ERRNO(api->send(connected, big, UDP_MAX_PAYLOAD + 1, 0), EMSGSIZE);
    free(big);
    CHECK_EQ(api->close(receiver), 0);
    CHECK_EQ(api->close(sender), 0);
    CHECK_EQ(api->close(connected), 0);
}

/* ------------------------------------------------------------------ */
/* Broadcast                                                           */
/* ------------------------------------------------------------------ */

API_TEST(broadcast_needs_so_broadcast)
{
    int listener = udp_bound(api, "0.0.0.0", 5000);
    int unicast_bound = udp_bound(api, "198.18.0.1", 5001);
    int sender = udp_socket(api);
    CHECK_EQ(get_int_option(api, sender, SOL_SOCKET, SO_BROADCAST), 0);
    CHECK_ERRNO(send_to(api, sender, "b", 1, "198.18.0.255", 5000), EACCES);
    /* 255.255.255.255 needs a route, and there is no default route: the
     * route lookup fails before the permission is looked at. */
    CHECK_ERRNO(send_to(api, sender, "b", 1, "255.255.255.255", 5000), ENETUNREACH);
    set_int_option(api, sender, SOL_SOCKET, SO_BROADCAST, 1);
    CHECK(get_int_option(api, sender, SOL_SOCKET, SO_BROADCAST) != 0);
    CHECK_EQ(send_to(api, sender, "d", 1, "198.18.0.255", 5000), 1);
    CHECK_ERRNO(send_to(api, sender, "l", 1, "255.255.255.255", 5000), ENETUNREACH);
    /* The kernel loops a broadcast back to local sockets bound to the
     * wildcard; a socket bound to a unicast address does not get it. */
    expect_datagram(api, listener, "d");
    expect_nothing(api, listener);
    CHECK_EQ(send_to(api, sender, "u", 1, "198.18.0.255", 5001), 1);
    expect_nothing(api, unicast_bound);
    set_int_option(api, sender, SOL_SOCKET, SO_BROADCAST, 0);
    CHECK_ERRNO(send_to(api, sender, "b", 1, "198.18.0.255", 5000), EACCES);
    CHECK_EQ(api->close(listener), 0);
    CHECK_EQ(api->close(unicast_bound), 0);
    CHECK_EQ(api->close(sender), 0);
}

API_TEST(connect_to_broadcast_needs_so_broadcast)
{
    int fd = udp_socket(api);
    struct sockaddr_in directed = address_of("198.18.0.255", 5000);
    struct sockaddr_in limited = address_of("255.255.255.255", 5000);
    CHECK_ERRNO(api->connect(fd, CSA(directed), sizeof(directed)), EACCES);
    /* No default route: no route to 255.255.255.255 either. */
    CHECK_ERRNO(api->connect(fd, CSA(limited), sizeof(limited)), ENETUNREACH);
    struct sockaddr_in peer;
    socklen_t length = sizeof(peer);
    CHECK_ERRNO(api->getpeername(fd, SA(peer), &length), ENOTCONN);
    set_int_option(api, fd, SOL_SOCKET, SO_BROADCAST, 1);
    CHECK_EQ(api->connect(fd, CSA(directed), sizeof(directed)), 0);
    CHECK_EQ(peer_address(api, fd).sin_addr.s_addr, ip_of("198.18.0.255"));
    CHECK_EQ(api->send(fd, "b", 1, 0), 1);
    CHECK_EQ(api->close(fd), 0);
}

/* ------------------------------------------------------------------ */
/* Blocking and not                                                    */
/* ------------------------------------------------------------------ */

API_TEST(nonblocking_socket_recv_is_eagain)
{
    char buffer[8];
    int flagged = api->socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    CHECK(flagged >= 0);
    CHECK_ERRNO(api->recv(flagged, buffer, sizeof(buffer), 0), EAGAIN);
    CHECK_EQ(api->close(flagged), 0);

    int by_ioctl = udp_bound(api, "127.0.0.1", 5000);
    int on = 1;
    CHECK_EQ(api->ioctl(by_ioctl, FIONBIO, &on), 0);
    CHECK(api->fcntl(by_ioctl, F_GETFL, 0) & O_NONBLOCK);
    CHECK_ERRNO(api->recv(by_ioctl, buffer, sizeof(buffer), 0), EAGAIN);
    int off = 0;
    CHECK_EQ(api->ioctl(by_ioctl, FIONBIO, &off), 0);
    CHECK(!(api->fcntl(by_ioctl, F_GETFL, 0) & O_NONBLOCK));
    CHECK_EQ(api->close(by_ioctl), 0);
}

API_TEST(fcntl_sets_and_reports_o_nonblock)
{
    int fd = udp_bound(api, "127.0.0.1", 5000);
    CHECK_EQ(api->fcntl(fd, F_GETFL, 0), O_RDWR);
    CHECK_EQ(api->fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    CHECK_EQ(api->fcntl(fd, F_GETFL, 0), O_RDWR | O_NONBLOCK);
    char buffer[8];
    uint64_t start = monotonic_ms();
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), 0), EAGAIN);
    CHECK(monotonic_ms() - start < 500);
    CHECK_EQ(api->fcntl(fd, F_SETFL, 0), 0);
    CHECK_EQ(api->fcntl(fd, F_GETFL, 0), O_RDWR);

    int flagged = api->socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(flagged >= 0);
    CHECK_EQ(api->fcntl(flagged, F_GETFL, 0), O_RDWR | O_NONBLOCK);
    CHECK_EQ(api->fcntl(flagged, F_GETFD, 0), FD_CLOEXEC);
    CHECK_EQ(api->fcntl(flagged, F_SETFD, 0), 0);
    CHECK_EQ(api->fcntl(flagged, F_GETFD, 0), 0);
    CHECK_EQ(api->fcntl(fd, F_GETFD, 0), 0);
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(flagged), 0);
}

API_TEST(msg_dontwait_on_a_blocking_socket_is_eagain)
{
    int fd = udp_bound(api, "127.0.0.1", 5000);
    char buffer[8];
    uint64_t start = monotonic_ms();
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT), EAGAIN);
    struct msghdr message;
    struct iovec vector = {.iov_base = buffer, .iov_len = sizeof(buffer)};
    memset(&message, 0, sizeof(message));
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    CHECK_ERRNO(api->recvmsg(fd, &message, MSG_DONTWAIT), EAGAIN);
    CHECK(monotonic_ms() - start < 500);
    /* The socket itself is still blocking. */
    CHECK(!(api->fcntl(fd, F_GETFL, 0) & O_NONBLOCK));
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(so_rcvtimeo_times_out_with_eagain)
{
    int fd = udp_bound(api, "127.0.0.1", 5000);
    struct timeval timeout = {.tv_sec = 0, .tv_usec = 200000};
    CHECK_EQ(api->setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)), 0);
    struct timeval read_back;
    memset(&read_back, 0, sizeof(read_back));
    socklen_t length = sizeof(read_back);
    CHECK_EQ(api->getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &read_back, &length), 0);
    CHECK_EQ(length, sizeof(read_back));
    CHECK_EQ(read_back.tv_sec, 0);
    CHECK_EQ(read_back.tv_usec, 200000);
    char buffer[8];
    uint64_t start = monotonic_ms();
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), 0), EAGAIN);
    uint64_t elapsed = monotonic_ms() - start;
    CHECK(elapsed >= 180);
    CHECK(elapsed < 2000);
    /* A bad timeval. */
    timeout.tv_usec = 1000000;
    CHECK_ERRNO(api->setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)), EDOM);
    CHECK_ERRNO(api->setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, 4), EINVAL);
    CHECK_EQ(api->close(fd), 0);
}

struct delayed_send {
    const struct api *api;
    int fd;
};

static void *send_after_100ms(void *argument)
{
    struct delayed_send *job = argument;
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
    CHECK_EQ(send_to(job->api, job->fd, "late", 4, "127.0.0.1", 5000), 4);
    return NULL;
}

API_TEST(blocking_recv_and_poll_wake_when_a_datagram_arrives)
{
    int receiver = udp_bound(api, "127.0.0.1", 5000);
    int sender = udp_socket(api);
    struct delayed_send job = {.api = api, .fd = sender};
    pthread_t thread;
    CHECK_EQ(pthread_create(&thread, NULL, send_after_100ms, &job), 0);
    char buffer[8];
    uint64_t start = monotonic_ms();
    CHECK_EQ(api->recv(receiver, buffer, sizeof(buffer), 0), 4);
    CHECK(monotonic_ms() - start >= 80);
    CHECK(memcmp(buffer, "late", 4) == 0);
    CHECK_EQ(pthread_join(thread, NULL), 0);

    CHECK_EQ(pthread_create(&thread, NULL, send_after_100ms, &job), 0);
    struct pollfd entry = {.fd = receiver, .events = POLLIN};
    start = monotonic_ms();
    CHECK_EQ(api->poll(&entry, 1, -1), 1);
    CHECK(monotonic_ms() - start >= 80);
    CHECK_EQ(entry.revents, POLLIN);
    CHECK_EQ(pthread_join(thread, NULL), 0);
    CHECK_EQ(api->close(receiver), 0);
    CHECK_EQ(api->close(sender), 0);
}

API_TEST(poll_reports_readiness)
{
    int receiver = udp_bound(api, "127.0.0.1", 5000);
    int sender = udp_socket(api);
    struct pollfd entry = {.fd = receiver, .events = POLLIN | POLLOUT};
    CHECK_EQ(api->poll(&entry, 1, 0), 1);
    CHECK_EQ(entry.revents, POLLOUT);
    entry.events = POLLIN;
    uint64_t start = monotonic_ms();
    CHECK_EQ(api->poll(&entry, 1, 100), 0);
    CHECK_EQ(entry.revents, 0);
    CHECK(monotonic_ms() - start >= 90);
    CHECK_EQ(send_to(api, sender, "x", 1, "127.0.0.1", 5000), 1);
    entry.events = POLLIN | POLLOUT;
    CHECK_EQ(api->poll(&entry, 1, 2000), 1);
    CHECK_EQ(entry.revents, POLLIN | POLLOUT);
    /* Only what was asked for is reported. */
    entry.events = POLLIN;
    CHECK_EQ(api->poll(&entry, 1, 0), 1);
    CHECK_EQ(entry.revents, POLLIN);
    char buffer[4];
    CHECK_EQ(api->recv(receiver, buffer, sizeof(buffer), 0), 1);
    entry.events = POLLIN | POLLOUT;
    CHECK_EQ(api->poll(&entry, 1, 0), 1);
    CHECK_EQ(entry.revents, POLLOUT);
    /* Several entries: the count is of entries with events. */
    struct pollfd entries[2] = {{.fd = receiver, .events = POLLIN},
                                {.fd = sender, .events = POLLOUT}};
    CHECK_EQ(api->poll(entries, 2, 0), 1);
    CHECK_EQ(entries[0].revents, 0);
    CHECK_EQ(entries[1].revents, POLLOUT);
    CHECK_EQ(api->close(receiver), 0);
    CHECK_EQ(api->close(sender), 0);
}

/* ------------------------------------------------------------------ */
/* shutdown()                                                          */
/* ------------------------------------------------------------------ */

API_TEST(shutdown_of_unconnected_socket_is_enotconn)
{
    int fd = udp_bound(api, "127.0.0.1", 5000);
    CHECK_ERRNO(api->shutdown(fd, SHUT_RD), ENOTCONN);
    CHECK_ERRNO(api->shutdown(fd, SHUT_WR), ENOTCONN);
    CHECK_ERRNO(api->shutdown(fd, SHUT_RDWR), ENOTCONN);
    int fresh = udp_socket(api);
    CHECK_ERRNO(api->shutdown(fresh, SHUT_RDWR), ENOTCONN);
    /* A bad how is EINVAL, checked first. */
    CHECK_ERRNO(api->shutdown(fresh, 3), EINVAL);
    CHECK_ERRNO(api->shutdown(fresh, -1), EINVAL);
    CHECK_EQ(api->close(fd), 0);
    CHECK_EQ(api->close(fresh), 0);
}

API_TEST(shutdown_of_unconnected_socket_still_shuts_it)
{
    /* Linux answers ENOTCONN but records the shutdown anyway. */
    int fd = udp_bound(api, "127.0.0.1", 5000);
    CHECK_ERRNO(api->shutdown(fd, SHUT_RDWR), ENOTCONN);
    char buffer[4];
    CHECK_EQ(api->recv(fd, buffer, sizeof(buffer), 0), 0);
    CHECK_ERRNO(api->sendto(fd, "x", 1, MSG_NOSIGNAL, NULL, 0), EDESTADDRREQ);
    CHECK_ERRNO(send_to(api, fd, "x", 1, "127.0.0.1", 5000), EPIPE);
    struct pollfd entry = {.fd = fd, .events = POLLIN | POLLOUT | POLLRDHUP};
    CHECK_EQ(api->poll(&entry, 1, 0), 1);
    CHECK_EQ(entry.revents, POLLIN | POLLOUT | POLLRDHUP | POLLHUP);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(shutdown_wr_makes_send_epipe)
{
    int peer = udp_bound(api, "127.0.0.1", 5000);
    int fd = udp_connected(api, "127.0.0.1", 5000);
    CHECK_EQ(api->shutdown(fd, SHUT_WR), 0);
    CHECK_ERRNO(api->send(fd, "x", 1, MSG_NOSIGNAL), EPIPE);
    CHECK_ERRNO(send_to(api, fd, "x", 1, "127.0.0.1", 5000), EPIPE);
    expect_nothing(api, peer);
    /* Receiving still works. */
    struct sockaddr_in name = local_address(api, fd);
    CHECK_EQ(api->sendto(peer, "in", 2, 0, CSA(name), sizeof(name)), 2);
    expect_datagram(api, fd, "in");
    /* Shutting down again is fine. */
    CHECK_EQ(api->shutdown(fd, SHUT_WR), 0);
    struct pollfd entry = {.fd = fd, .events = POLLIN | POLLOUT | POLLRDHUP};
    CHECK_EQ(api->poll(&entry, 1, 0), 1);
    CHECK_EQ(entry.revents, POLLOUT);
    CHECK_EQ(api->close(peer), 0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(shutdown_rd_makes_recv_return_zero)
{
    int peer = udp_bound(api, "127.0.0.1", 5000);
    int fd = udp_connected(api, "127.0.0.1", 5000);
    CHECK_EQ(api->shutdown(fd, SHUT_RD), 0);
    char buffer[8];
    /* Blocking, and nothing queued: 0 at once. */
    uint64_t start = monotonic_ms();
    CHECK_EQ(api->recv(fd, buffer, sizeof(buffer), 0), 0);
    CHECK(monotonic_ms() - start < 500);
    /* Not waiting, Linux does not get as far as looking at the shutdown. */
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT), EAGAIN);
    struct pollfd entry = {.fd = fd, .events = POLLIN | POLLOUT | POLLRDHUP};
    CHECK_EQ(api->poll(&entry, 1, 0), 1);
    CHECK_EQ(entry.revents, POLLIN | POLLOUT | POLLRDHUP);
    /* Sending still works. */
    CHECK_EQ(api->send(fd, "out", 3, 0), 3);
    expect_datagram(api, peer, "out");
    /* Both halves: POLLHUP as well. */
    CHECK_EQ(api->shutdown(fd, SHUT_WR), 0);
    CHECK_EQ(api->poll(&entry, 1, 0), 1);
    CHECK_EQ(entry.revents, POLLIN | POLLOUT | POLLRDHUP | POLLHUP);
    CHECK_EQ(api->close(peer), 0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(shutdown_rd_still_delivers_queued_and_later_datagrams)
{
    int peer = udp_bound(api, "127.0.0.1", 5000);
    int fd = udp_connected(api, "127.0.0.1", 5000);
    struct sockaddr_in name = local_address(api, fd);
    CHECK_EQ(api->sendto(peer, "before", 6, 0, CSA(name), sizeof(name)), 6);
    wait_readable(api, fd);
    CHECK_EQ(api->shutdown(fd, SHUT_RD), 0);
    expect_datagram(api, fd, "before");
    CHECK_EQ(api->sendto(peer, "after", 5, 0, CSA(name), sizeof(name)), 5);
    struct pollfd entry = {.fd = fd, .events = POLLIN};
    CHECK_EQ(api->poll(&entry, 1, 0), 1);
    char buffer[8];
    CHECK_EQ(api->recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT), 5);
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT), EAGAIN);
    CHECK_EQ(api->recv(fd, buffer, sizeof(buffer), 0), 0);
    CHECK_EQ(api->close(peer), 0);
    CHECK_EQ(api->close(fd), 0);
}


API_TEST(so_rcvtimeo_negative_means_do_not_wait)
{
    int fd = udp_bound(api, "127.0.0.1", 5000);
    struct timeval timeout = {.tv_sec = -1, .tv_usec = 0};
    CHECK_EQ(api->setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)), 0);
    struct timeval read_back = {.tv_sec = 99, .tv_usec = 99};
    socklen_t length = sizeof(read_back);
    CHECK_EQ(api->getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &read_back, &length), 0);
    CHECK_EQ(read_back.tv_sec, 0);
    CHECK_EQ(read_back.tv_usec, 0);
    char buffer[8];
    uint64_t start = monotonic_ms();
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), 0), EAGAIN);
    CHECK(monotonic_ms() - start < 500);
    /* SO_SNDTIMEO reads back what was set. */
    struct timeval send_timeout = {.tv_sec = 3, .tv_usec = 500000};
    CHECK_EQ(api->setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout)),
             0);
    length = sizeof(read_back);
    CHECK_EQ(api->getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &read_back, &length), 0);
    CHECK_EQ(read_back.tv_sec, 3);
    CHECK_EQ(read_back.tv_usec, 500000);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(ip_ttl_and_unknown_options)
{
    int fd = udp_socket(api);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_TTL), 64);
    set_int_option(api, fd, IPPROTO_IP, IP_TTL, 7);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_TTL), 7);
    int value = 0;
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_IP, IP_TTL, &value, sizeof(value)), EINVAL);
    value = 256;
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_IP, IP_TTL, &value, sizeof(value)), EINVAL);
    set_int_option(api, fd, IPPROTO_IP, IP_TTL, -1);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_TTL), 64);
    /* Unknown names at known levels. */
    socklen_t length = sizeof(value);
    CHECK_ERRNO(api->getsockopt(fd, SOL_SOCKET, 12345, &value, &length), ENOPROTOOPT);
    CHECK_ERRNO(api->setsockopt(fd, SOL_SOCKET, 12345, &value, sizeof(value)), ENOPROTOOPT);
    CHECK_ERRNO(api->getsockopt(fd, IPPROTO_IP, 12345, &value, &length), ENOPROTOOPT);
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_IP, 12345, &value, sizeof(value)), ENOPROTOOPT);
    CHECK_ERRNO(api->getsockopt(fd, IPPROTO_UDP, 12345, &value, &length), ENOPROTOOPT);
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_UDP, 12345, &value, sizeof(value)), ENOPROTOOPT);
    /* An unknown level. */
    CHECK_ERRNO(api->getsockopt(fd, 9999, 1, &value, &length), EOPNOTSUPP);
    CHECK_ERRNO(api->setsockopt(fd, 9999, 1, &value, sizeof(value)), ENOPROTOOPT);
    /* Negative length. */
    length = (socklen_t)-1;
    CHECK_ERRNO(api->getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &length), EINVAL);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(msg_oob_and_msg_errqueue_on_udp)
{
    int fd = udp_bound(api, "127.0.0.1", 5000);
    char buffer[8];
    /* UDP's receive ignores MSG_OOB (a blocking one would wait); its send
     * refuses it. */
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), MSG_OOB | MSG_DONTWAIT), EAGAIN);
    CHECK_ERRNO(api->send(fd, "x", 1, MSG_OOB), EOPNOTSUPP);
    struct sockaddr_in to = address_of("127.0.0.1", 5000);
    CHECK_ERRNO(api->sendto(fd, "x", 1, MSG_OOB, CSA(to), sizeof(to)), EOPNOTSUPP);
    /* Nothing in the error queue. */
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), MSG_ERRQUEUE), EAGAIN);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(connect_to_any_address_connects_to_loopback)
{
    int receiver = udp_bound(api, "127.0.0.1", 5000);
    int fd = udp_connected(api, "0.0.0.0", 5000);
    struct sockaddr_in peer = peer_address(api, fd);
    CHECK_EQ(peer.sin_addr.s_addr, ip_of("127.0.0.1"));
    CHECK_EQ(ntohs(peer.sin_port), 5000);
    CHECK_EQ(local_address(api, fd).sin_addr.s_addr, ip_of("127.0.0.1"));
    CHECK_EQ(api->send(fd, "any", 3, 0), 3);
    expect_datagram(api, receiver, "any");
    CHECK_EQ(api->close(receiver), 0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(broadcast_reaches_a_socket_bound_to_the_broadcast_address)
{
    int bound = udp_bound(api, "198.18.0.255", 5000);
    int sender = udp_socket(api);
    set_int_option(api, sender, SOL_SOCKET, SO_BROADCAST, 1);
    CHECK_EQ(send_to(api, sender, "b", 1, "198.18.0.255", 5000), 1);
    char buffer[4];
    struct sockaddr_in from;
    socklen_t length = sizeof(from);
    wait_readable(api, bound);
    CHECK_EQ(api->recvfrom(bound, buffer, sizeof(buffer), 0, SA(from), &length), 1);
    CHECK_EQ(from.sin_addr.s_addr, ip_of("198.18.0.1"));
    CHECK_EQ(from.sin_port, local_address(api, sender).sin_port);
    /* A connected broadcast socket hears no port unreachable from nobody. */
    int connected = udp_socket(api);
    set_int_option(api, connected, SOL_SOCKET, SO_BROADCAST, 1);
    struct sockaddr_in directed = address_of("198.18.0.255", 9999);
    CHECK_EQ(api->connect(connected, CSA(directed), sizeof(directed)), 0);
    CHECK_EQ(api->send(connected, "x", 1, 0), 1);
    expect_nothing(api, connected);
    CHECK_EQ(api->close(bound), 0);
    CHECK_EQ(api->close(sender), 0);
    CHECK_EQ(api->close(connected), 0);
}

/* ------------------------------------------------------------------ */
/* Buffer sizes                                                        */
/* ------------------------------------------------------------------ */

/* net.core.rmem_max and friends are global, not per namespace: the exact
 * clamps are asserted only where the host has Linux's defaults. */
#define LINUX_DEFAULT_MEM_MAX 212992

API_TEST(so_rcvbuf_and_so_sndbuf_are_doubled_and_clamped)
{
    int fd = udp_socket(api);
    long rmem_default = read_sysctl("/proc/sys/net/core/rmem_default");
    long wmem_default = read_sysctl("/proc/sys/net/core/wmem_default");
    long rmem_max = read_sysctl("/proc/sys/net/core/rmem_max");
    long wmem_max = read_sysctl("/proc/sys/net/core/wmem_max");
    if (rmem_default == LINUX_DEFAULT_MEM_MAX)
        CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_RCVBUF), LINUX_DEFAULT_MEM_MAX);
    if (wmem_default == LINUX_DEFAULT_MEM_MAX)
        CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_SNDBUF), LINUX_DEFAULT_MEM_MAX);

    /* Doubled (room for bookkeeping). */
    set_int_option(api, fd, SOL_SOCKET, SO_RCVBUF, 10000);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_RCVBUF), 20000);
    set_int_option(api, fd, SOL_SOCKET, SO_SNDBUF, 10000);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_SNDBUF), 20000);

    /* Raised to a floor. */
    set_int_option(api, fd, SOL_SOCKET, SO_RCVBUF, 1);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_RCVBUF), 2304);
    set_int_option(api, fd, SOL_SOCKET, SO_SNDBUF, 1);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_SNDBUF), 4608);
    set_int_option(api, fd, SOL_SOCKET, SO_RCVBUF, 0);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_RCVBUF), 2304);

    /* Clamped to twice the maximum. */
    set_int_option(api, fd, SOL_SOCKET, SO_RCVBUF, 1 << 30);
    int receive_clamp = get_int_option(api, fd, SOL_SOCKET, SO_RCVBUF);
    set_int_option(api, fd, SOL_SOCKET, SO_SNDBUF, 1 << 30);
    int send_clamp = get_int_option(api, fd, SOL_SOCKET, SO_SNDBUF);
    CHECK(receive_clamp >= 2 * LINUX_DEFAULT_MEM_MAX && receive_clamp < 1 << 30);
    CHECK(send_clamp >= 2 * LINUX_DEFAULT_MEM_MAX && send_clamp < 1 << 30);
    if (rmem_max == LINUX_DEFAULT_MEM_MAX)
        CHECK_EQ(receive_clamp, 2 * LINUX_DEFAULT_MEM_MAX);
    if (wmem_max == LINUX_DEFAULT_MEM_MAX)
        CHECK_EQ(send_clamp, 2 * LINUX_DEFAULT_MEM_MAX);
    /* A negative size is taken as unsigned: clamped, not floored. */
    set_int_option(api, fd, SOL_SOCKET, SO_RCVBUF, -1);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_RCVBUF), receive_clamp);

    /* A short option value. */
    short small = 100;
    CHECK_ERRNO(api->setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), EINVAL);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_RCVBUF), receive_clamp);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(so_rcvbufforce_passes_the_maximum)
{
    /* Root (CAP_NET_ADMIN) may go past net.core.rmem_max. */
    int fd = udp_socket(api);
    set_int_option(api, fd, SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_RCVBUF), 16 << 20);
    set_int_option(api, fd, SOL_SOCKET, SO_SNDBUFFORCE, 8 << 20);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_SNDBUF), 16 << 20);
    CHECK_EQ(api->close(fd), 0);
}

static const struct check_test tests[] = {
    API_ENTRIES(socket_rejects_bad_domain_type_and_protocol),
    API_ENTRIES(so_type_protocol_and_domain_describe_the_socket),
    API_ENTRIES(listen_and_accept_on_udp_are_eopnotsupp),
    API_ENTRIES(closed_descriptor_is_ebadf),
    API_ENTRIES(bind_same_address_and_port_twice_is_eaddrinuse),
    API_ENTRIES(bind_wildcard_and_specific_on_one_port_conflict),
    API_ENTRIES(bind_different_specific_addresses_share_a_port),
    API_ENTRIES(wildcard_socket_receives_for_every_local_address),
    API_ENTRIES(specific_bind_wins_over_wildcard_with_so_reuseaddr),
    API_ENTRIES(bind_port_zero_picks_distinct_ephemeral_ports),
    API_ENTRIES(getsockname_of_fresh_socket_is_any_address_port_zero),
    API_ENTRIES(sendto_on_unbound_socket_autobinds_an_ephemeral_port),
    API_ENTRIES(bind_twice_is_einval),
    API_ENTRIES(bind_to_non_local_address_is_eaddrnotavail),
    API_ENTRIES(bind_to_loopback_net_and_broadcast_addresses_is_allowed),
    API_ENTRIES(bind_checks_address_length_and_family),
    API_ENTRIES(so_reuseaddr_on_both_sockets_allows_sharing_a_port),
    API_ENTRIES(so_reuseport_on_both_sockets_allows_sharing_a_port),
    API_ENTRIES(connect_sets_peer_and_picks_source_address),
    API_ENTRIES(connect_with_no_route_is_enetunreach),
    API_ENTRIES(getpeername_of_unconnected_socket_is_enotconn),
    API_ENTRIES(connect_checks_address_length_and_family),
    API_ENTRIES(connected_socket_receives_only_from_its_peer),
    API_ENTRIES(connected_socket_may_sendto_another_address),
    API_ENTRIES(disconnect_with_af_unspec_forgets_the_peer),
    API_ENTRIES(send_without_destination_is_edestaddrreq),
    API_ENTRIES(sendto_checks_address_length_family_and_port),
    API_ENTRIES(sendto_any_address_goes_to_loopback),
    API_ENTRIES(connected_socket_gets_econnrefused_from_closed_loopback_port),
    API_ENTRIES(connected_socket_gets_econnrefused_from_own_interface_address),
    API_ENTRIES(unconnected_socket_ignores_port_unreachable),
    API_ENTRIES(datagram_boundaries_are_kept),
    API_ENTRIES(recvfrom_reports_source_and_truncates_a_short_address_buffer),
    API_ENTRIES(msg_peek_leaves_the_datagram_queued),
    API_ENTRIES(msg_trunc_reports_the_full_length_and_the_rest_is_discarded),
    API_ENTRIES(recvmsg_sets_msg_trunc_in_msg_flags),
    API_ENTRIES(zero_length_datagrams_are_delivered),
    API_ENTRIES(fionread_is_the_size_of_the_first_datagram),
    API_ENTRIES(sendto_over_65507_bytes_is_emsgsize),
    API_ENTRIES(broadcast_needs_so_broadcast),
    API_ENTRIES(connect_to_broadcast_needs_so_broadcast),
    API_ENTRIES(nonblocking_socket_recv_is_eagain),
    API_ENTRIES(fcntl_sets_and_reports_o_nonblock),
    API_ENTRIES(msg_dontwait_on_a_blocking_socket_is_eagain),
    API_ENTRIES(so_rcvtimeo_times_out_with_eagain),
    API_ENTRIES(blocking_recv_and_poll_wake_when_a_datagram_arrives),
    API_ENTRIES(poll_reports_readiness),
    API_ENTRIES(shutdown_of_unconnected_socket_is_enotconn),
    API_ENTRIES(shutdown_of_unconnected_socket_still_shuts_it),
    API_ENTRIES(shutdown_wr_makes_send_epipe),
    API_ENTRIES(shutdown_rd_makes_recv_return_zero),
    API_ENTRIES(shutdown_rd_still_delivers_queued_and_later_datagrams),
    API_ENTRIES(so_rcvbuf_and_so_sndbuf_are_doubled_and_clamped),
    API_ENTRIES(so_rcvbufforce_passes_the_maximum),
    API_ENTRIES(so_rcvtimeo_negative_means_do_not_wait),
    API_ENTRIES(ip_ttl_and_unknown_options),
    API_ENTRIES(msg_oob_and_msg_errqueue_on_udp),
    API_ENTRIES(connect_to_any_address_connects_to_loopback),
    API_ENTRIES(broadcast_reaches_a_socket_bound_to_the_broadcast_address),
};

CHECK_MAIN(tests)
