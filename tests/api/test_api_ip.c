/*
 * test_api_ip.c - IP-level socket API behaviour (IPPROTO_IP options,
 * multicast membership, ancillary data, the error queue and raw sockets),
 * written once and run twice: against the kernel's sockets (the reference)
 * and against usock's, with the same assertions and the same errno values.
 *
 * The two socket-call tables, the two environments and the API_TEST macro
 * are in api_harness.h.
 */
#include <errno.h>
#include <time.h> /* before linux/errqueue.h, which uses struct timespec */
#include <linux/errqueue.h>
#include <linux/icmp.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "api_harness.h"

#ifndef SOL_RAW
#define SOL_RAW 255
#endif

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

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

static struct ip_mreq mreq_of(const char *group, const char *interface)
{
    struct ip_mreq request;
    memset(&request, 0, sizeof(request));
    request.imr_multiaddr.s_addr = ip_of(group);
    request.imr_interface.s_addr = ip_of(interface);
    return request;
}

static uint16_t internet_checksum(const void *data, size_t length)
{
    const uint8_t *bytes = data;
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < length; i += 2)
        sum += (uint32_t)bytes[i] << 8 | bytes[i + 1];
    if (length & 1)
        sum += (uint32_t)bytes[length - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return htons((uint16_t)~sum);
}

/* ------------------------------------------------------------------ */
/* Multicast membership                                                */
/* ------------------------------------------------------------------ */

API_TEST(ip_add_membership_with_ip_mreq_and_ip_mreqn)
{
    int fd = udp_bound(api, "0.0.0.0", 5000);
    struct ip_mreq request = mreq_of("239.1.2.3", "198.18.0.1");
    CHECK_EQ(api->setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &request, sizeof(request)), 0);
    struct ip_mreqn extended;
    memset(&extended, 0, sizeof(extended));
    extended.imr_multiaddr.s_addr = ip_of("239.1.2.4");
    extended.imr_address.s_addr = ip_of("198.18.0.1");
    CHECK_EQ(api->setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &extended, sizeof(extended)),
             0);
    /* Leaving each works once. */
    CHECK_EQ(api->setsockopt(fd, IPPROTO_IP, IP_DROP_MEMBERSHIP, &request, sizeof(request)), 0);
    CHECK_EQ(api->setsockopt(fd, IPPROTO_IP, IP_DROP_MEMBERSHIP, &extended, sizeof(extended)),
             0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(ip_add_membership_twice_is_eaddrinuse)
{
    int fd = udp_socket(api);
    struct ip_mreq request = mreq_of("239.1.2.3", "198.18.0.1");
    CHECK_EQ(api->setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &request, sizeof(request)), 0);
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &request, sizeof(request)),
                EADDRINUSE);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(ip_add_membership_of_non_multicast_address_is_einval)
{
    int fd = udp_socket(api);
    struct ip_mreq request = mreq_of("10.1.2.3", "198.18.0.1");
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &request, sizeof(request)),
                EINVAL);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(ip_drop_membership_of_group_not_joined_is_eaddrnotavail)
{
    int fd = udp_socket(api);
    struct ip_mreq request = mreq_of("239.1.2.3", "198.18.0.1");
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_IP, IP_DROP_MEMBERSHIP, &request, sizeof(request)),
                EADDRNOTAVAIL);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(ip_add_membership_on_tcp_is_eproto)
{
    int fd = api->socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct ip_mreq request = mreq_of("239.1.2.3", "198.18.0.1");
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &request, sizeof(request)),
                EPROTO);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(ip_add_membership_with_short_optlen_is_einval)
{
    int fd = udp_socket(api);
    struct ip_mreq request = mreq_of("239.1.2.3", "198.18.0.1");
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &request,
                                sizeof(request) - 1),
                EINVAL);
    CHECK_EQ(api->close(fd), 0);
}

/* ------------------------------------------------------------------ */
/* Source-specific multicast                                           */
/* ------------------------------------------------------------------ */

/* setsockopt of a source option on 198.18.0.1; returns 0 or errno. */
static int source_option(const struct api *api, int fd, int name, const char *group,
                         const char *source)
{
    struct ip_mreq_source request;
    memset(&request, 0, sizeof(request));
    request.imr_multiaddr.s_addr = ip_of(group);
    request.imr_interface.s_addr = ip_of("198.18.0.1");
    request.imr_sourceaddr.s_addr = ip_of(source);
    return api->setsockopt(fd, IPPROTO_IP, name, &request, sizeof(request)) == 0 ? 0 : errno;
}

static int membership_option(const struct api *api, int fd, int name, const char *group)
{
    struct ip_mreq request = mreq_of(group, "198.18.0.1");
    return api->setsockopt(fd, IPPROTO_IP, name, &request, sizeof(request)) == 0 ? 0 : errno;
}

API_TEST(source_membership_include_mode_errnos)
{
    int fd = udp_socket(api);
    const char *group = "239.1.1.1";
    /* Source options other than ADD_SOURCE need a prior join. */
    CHECK_EQ(source_option(api, fd, IP_DROP_SOURCE_MEMBERSHIP, group, "198.18.0.5"), EINVAL);
    CHECK_EQ(source_option(api, fd, IP_BLOCK_SOURCE, group, "198.18.0.5"), EINVAL);
    CHECK_EQ(source_option(api, fd, IP_UNBLOCK_SOURCE, group, "198.18.0.5"), EINVAL);
    CHECK_EQ(source_option(api, fd, IP_ADD_SOURCE_MEMBERSHIP, group, "198.18.0.5"), 0);
    CHECK_EQ(source_option(api, fd, IP_ADD_SOURCE_MEMBERSHIP, group, "198.18.0.5"),
             EADDRNOTAVAIL);
    CHECK_EQ(source_option(api, fd, IP_DROP_SOURCE_MEMBERSHIP, group, "198.18.0.6"),
             EADDRNOTAVAIL);
    /* EXCLUDE-mode options on an INCLUDE list, and an any-source join. */
    CHECK_EQ(source_option(api, fd, IP_BLOCK_SOURCE, group, "198.18.0.6"), EINVAL);
    CHECK_EQ(source_option(api, fd, IP_UNBLOCK_SOURCE, group, "198.18.0.5"), EINVAL);
    CHECK_EQ(membership_option(api, fd, IP_ADD_MEMBERSHIP, group), EADDRINUSE);
    /* Dropping the last source leaves the group. */
    CHECK_EQ(source_option(api, fd, IP_DROP_SOURCE_MEMBERSHIP, group, "198.18.0.5"), 0);
    CHECK_EQ(membership_option(api, fd, IP_DROP_MEMBERSHIP, group), EADDRNOTAVAIL);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(source_membership_exclude_mode_errnos)
{
    int fd = udp_socket(api);
    const char *group = "239.1.1.3";
    CHECK_EQ(membership_option(api, fd, IP_ADD_MEMBERSHIP, group), 0);
    CHECK_EQ(source_option(api, fd, IP_BLOCK_SOURCE, group, "198.18.0.5"), 0);
    CHECK_EQ(source_option(api, fd, IP_BLOCK_SOURCE, group, "198.18.0.5"), EADDRNOTAVAIL);
    CHECK_EQ(source_option(api, fd, IP_ADD_SOURCE_MEMBERSHIP, group, "198.18.0.6"), EINVAL);
    CHECK_EQ(source_option(api, fd, IP_DROP_SOURCE_MEMBERSHIP, group, "198.18.0.5"), EINVAL);
    CHECK_EQ(source_option(api, fd, IP_UNBLOCK_SOURCE, group, "198.18.0.5"), 0);
    CHECK_EQ(source_option(api, fd, IP_UNBLOCK_SOURCE, group, "198.18.0.5"), EADDRNOTAVAIL);
    /* The emptied list still fixes the mode. */
    CHECK_EQ(source_option(api, fd, IP_ADD_SOURCE_MEMBERSHIP, group, "198.18.0.6"), EINVAL);
    CHECK_EQ(membership_option(api, fd, IP_DROP_MEMBERSHIP, group), 0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(add_source_membership_after_any_source_join_narrows_it)
{
    int fd = udp_socket(api);
    const char *group = "239.1.1.2";
    CHECK_EQ(membership_option(api, fd, IP_ADD_MEMBERSHIP, group), 0);
    CHECK_EQ(source_option(api, fd, IP_ADD_SOURCE_MEMBERSHIP, group, "198.18.0.5"), 0);
    CHECK_EQ(source_option(api, fd, IP_BLOCK_SOURCE, group, "198.18.0.5"), EINVAL);
    CHECK_EQ(membership_option(api, fd, IP_DROP_MEMBERSHIP, group), 0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(eleventh_source_is_enobufs)
{
    int fd = udp_socket(api);
    char source[32];
    for (int i = 0; i < 10; i++) {
        snprintf(source, sizeof(source), "198.18.0.%d", 10 + i);
        CHECK_EQ(source_option(api, fd, IP_ADD_SOURCE_MEMBERSHIP, "239.1.1.4", source), 0);
    }
    CHECK_EQ(source_option(api, fd, IP_ADD_SOURCE_MEMBERSHIP, "239.1.1.4", "198.18.0.99"),
             ENOBUFS);
    CHECK_EQ(source_option(api, fd, IP_DROP_SOURCE_MEMBERSHIP, "239.1.1.4", "198.18.0.10"), 0);
    CHECK_EQ(source_option(api, fd, IP_ADD_SOURCE_MEMBERSHIP, "239.1.1.4", "198.18.0.99"), 0);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(source_option_bad_arguments)
{
    int fd = udp_socket(api);
    struct ip_mreq_source request;
    memset(&request, 0, sizeof(request));
    request.imr_multiaddr.s_addr = ip_of("239.1.1.5");
    request.imr_interface.s_addr = ip_of("198.18.0.1");
    request.imr_sourceaddr.s_addr = ip_of("198.18.0.5");
    /* The length must be exactly that of struct ip_mreq_source. */
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, &request,
                                sizeof(request) - 1), EINVAL);
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, &request,
                                sizeof(request) + 4), EINVAL);
    request.imr_interface.s_addr = ip_of("10.9.9.9");
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP, &request,
                                sizeof(request)), ENODEV);
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_IP, IP_BLOCK_SOURCE, &request, sizeof(request)),
                ENODEV);
    CHECK_EQ(source_option(api, fd, IP_ADD_SOURCE_MEMBERSHIP, "10.1.1.1", "198.18.0.5"), EINVAL);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(source_options_on_tcp_socket_are_accepted)
{
    int fd = api->socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    CHECK_EQ(source_option(api, fd, IP_ADD_SOURCE_MEMBERSHIP, "239.1.1.7", "198.18.0.5"), 0);
    CHECK_EQ(source_option(api, fd, IP_BLOCK_SOURCE, "239.1.1.7", "198.18.0.5"), EINVAL);
    CHECK_EQ(api->close(fd), 0);
}

/* A sender on 198.18.0.1 whose multicast loops back to this host. */
static int multicast_sender(const struct api *api)
{
    int fd = udp_bound(api, "198.18.0.1", 0);
    struct in_addr interface = {.s_addr = ip_of("198.18.0.1")};
    CHECK_EQ(api->setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &interface, sizeof(interface)),
             0);
    return fd;
}

static void expect_datagram(const struct api *api, int fd)
{
    wait_readable(api, fd);
    char byte[8];
    CHECK_EQ(api->recv(fd, byte, sizeof(byte), MSG_DONTWAIT), 2);
}

API_TEST(include_filter_passes_only_listed_sources)
{
    int receiver = udp_bound(api, "0.0.0.0", 6000);
    int sender = multicast_sender(api);
    const char *group = "239.1.1.8";
    CHECK_EQ(source_option(api, receiver, IP_ADD_SOURCE_MEMBERSHIP, group, "198.18.0.1"), 0);
    CHECK_EQ(send_to(api, sender, "mc", 2, group, 6000), 2);
    expect_datagram(api, receiver);
    /* Listing another source instead: the sender is filtered out. */
    CHECK_EQ(source_option(api, receiver, IP_ADD_SOURCE_MEMBERSHIP, group, "198.18.0.5"), 0);
    CHECK_EQ(source_option(api, receiver, IP_DROP_SOURCE_MEMBERSHIP, group, "198.18.0.1"), 0);
    CHECK_EQ(send_to(api, sender, "mc", 2, group, 6000), 2);
    expect_nothing(api, receiver);
    CHECK_EQ(api->close(sender), 0);
    CHECK_EQ(api->close(receiver), 0);
}

API_TEST(blocked_source_is_filtered_and_unblocked_passes)
{
    int receiver = udp_bound(api, "0.0.0.0", 6000);
    int sender = multicast_sender(api);
    const char *group = "239.1.1.9";
    CHECK_EQ(membership_option(api, receiver, IP_ADD_MEMBERSHIP, group), 0);
    CHECK_EQ(source_option(api, receiver, IP_BLOCK_SOURCE, group, "198.18.0.1"), 0);
    CHECK_EQ(send_to(api, sender, "mc", 2, group, 6000), 2);
    expect_nothing(api, receiver);
    CHECK_EQ(source_option(api, receiver, IP_UNBLOCK_SOURCE, group, "198.18.0.1"), 0);
    CHECK_EQ(send_to(api, sender, "mc", 2, group, 6000), 2);
    expect_datagram(api, receiver);
    CHECK_EQ(api->close(sender), 0);
    CHECK_EQ(api->close(receiver), 0);
}

API_TEST(drop_source_on_any_source_join_is_eaddrnotavail_and_stops_reception)
{
    int receiver = udp_bound(api, "0.0.0.0", 6000);
    int sender = multicast_sender(api);
    const char *group = "239.1.1.10";
    CHECK_EQ(membership_option(api, receiver, IP_ADD_MEMBERSHIP, group), 0);
    CHECK_EQ(source_option(api, receiver, IP_DROP_SOURCE_MEMBERSHIP, group, "198.18.0.5"),
             EADDRNOTAVAIL);
    /* As Linux: the empty filter switched to INCLUDE{}, which takes nothing. */
    CHECK_EQ(send_to(api, sender, "mc", 2, group, 6000), 2);
    expect_nothing(api, receiver);
    /* An empty list switches mode freely: block one, take the rest. */
    CHECK_EQ(source_option(api, receiver, IP_BLOCK_SOURCE, group, "198.18.0.5"), 0);
    CHECK_EQ(send_to(api, sender, "mc", 2, group, 6000), 2);
    expect_datagram(api, receiver);
    CHECK_EQ(api->close(sender), 0);
    CHECK_EQ(api->close(receiver), 0);
}

API_TEST(socket_without_membership_gets_what_the_interface_accepts)
{
    int member = udp_socket(api);
    int on = 1;
    CHECK_EQ(api->setsockopt(member, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)), 0);
    struct sockaddr_in any = address_of("0.0.0.0", 6000);
    CHECK_EQ(api->bind(member, CSA(any), sizeof(any)), 0);
    int bystander = udp_socket(api);
    CHECK_EQ(api->setsockopt(bystander, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)), 0);
    CHECK_EQ(api->bind(bystander, CSA(any), sizeof(any)), 0);
    int sender = multicast_sender(api);
    const char *group = "239.1.1.11";
    /* The interface takes only 198.18.0.5: neither socket hears us. */
    CHECK_EQ(source_option(api, member, IP_ADD_SOURCE_MEMBERSHIP, group, "198.18.0.5"), 0);
    CHECK_EQ(send_to(api, sender, "mc", 2, group, 6000), 2);
    expect_nothing(api, member);
    expect_nothing(api, bystander);
    /* Now it takes us too; the socket without a membership gets a copy
     * (IP_MULTICAST_ALL), the member's own filter still says no. */
    CHECK_EQ(source_option(api, sender, IP_ADD_SOURCE_MEMBERSHIP, group, "198.18.0.1"), 0);
    CHECK_EQ(send_to(api, sender, "mc", 2, group, 6000), 2);
    expect_datagram(api, bystander);
    expect_nothing(api, member);
    CHECK_EQ(api->close(sender), 0);
    CHECK_EQ(api->close(bystander), 0);
    CHECK_EQ(api->close(member), 0);
}

/* ------------------------------------------------------------------ */
/* Multicast options                                                   */
/* ------------------------------------------------------------------ */

API_TEST(ip_multicast_ttl_default_set_and_limits)
{
    int fd = udp_socket(api);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_MULTICAST_TTL), 1);
    set_int_option(api, fd, IPPROTO_IP, IP_MULTICAST_TTL, 5);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_MULTICAST_TTL), 5);
    set_int_option(api, fd, IPPROTO_IP, IP_MULTICAST_TTL, -1);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_MULTICAST_TTL), 1);
    int value = 256;
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &value, sizeof(value)),
                EINVAL);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_MULTICAST_TTL), 1);
    unsigned char byte = 7;
    CHECK_EQ(api->setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &byte, 1), 0);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_MULTICAST_TTL), 7);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(ip_multicast_loop_defaults_to_one)
{
    int fd = udp_socket(api);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_MULTICAST_LOOP), 1);
    CHECK_EQ(api->close(fd), 0);
}

/* ------------------------------------------------------------------ */
/* IP_TTL, IP_TOS                                                      */
/* ------------------------------------------------------------------ */

API_TEST(ip_ttl_default_zero_and_minus_one)
{
    int fd = udp_socket(api);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_TTL), 64);
    int value = 0;
    CHECK_ERRNO(api->setsockopt(fd, IPPROTO_IP, IP_TTL, &value, sizeof(value)), EINVAL);
    set_int_option(api, fd, IPPROTO_IP, IP_TTL, 20);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_TTL), 20);
    set_int_option(api, fd, IPPROTO_IP, IP_TTL, -1);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_TTL), 64);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(ip_tos_set_and_get)
{
    int fd = udp_socket(api);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_TOS), 0);
    set_int_option(api, fd, IPPROTO_IP, IP_TOS, 0x10);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_TOS), 0x10);
    CHECK_EQ(api->close(fd), 0);
}

/* ------------------------------------------------------------------ */
/* IP_PKTINFO, IP_RECVTTL, IP_RECVTOS                                  */
/* ------------------------------------------------------------------ */

static void check_ancillary_data(const struct api *api, const char *destination)
{
    int receiver = udp_bound(api, "0.0.0.0", 5000);
    set_int_option(api, receiver, IPPROTO_IP, IP_PKTINFO, 1);
    set_int_option(api, receiver, IPPROTO_IP, IP_RECVTTL, 1);
    set_int_option(api, receiver, IPPROTO_IP, IP_RECVTOS, 1);
    int sender = udp_socket(api);
    set_int_option(api, sender, IPPROTO_IP, IP_TTL, 33);
    set_int_option(api, sender, IPPROTO_IP, IP_TOS, 0x10);
    CHECK_EQ(send_to(api, sender, "hello", 5, destination, 5000), 5);
    wait_readable(api, receiver);

    char data[16];
    struct iovec vector = {.iov_base = data, .iov_len = sizeof(data)};
    union {
        struct cmsghdr align;
        char bytes[256];
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr message;
    memset(&message, 0, sizeof(message));
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control.bytes;
    message.msg_controllen = sizeof(control.bytes);
    CHECK_EQ(api->recvmsg(receiver, &message, MSG_DONTWAIT), 5);
    CHECK(memcmp(data, "hello", 5) == 0);
    CHECK_EQ(message.msg_flags & MSG_CTRUNC, 0);

    bool pktinfo = false, ttl = false, tos = false;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c != NULL; c = CMSG_NXTHDR(&message, c)) {
        CHECK_EQ(c->cmsg_level, SOL_IP);
        if (c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo info;
            CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(info)));
            memcpy(&info, CMSG_DATA(c), sizeof(info));
            CHECK_EQ(info.ipi_addr.s_addr, ip_of(destination));
            pktinfo = true;
        } else if (c->cmsg_type == IP_TTL) {
            int value;
            CHECK_EQ(c->cmsg_len, CMSG_LEN(sizeof(value)));
            memcpy(&value, CMSG_DATA(c), sizeof(value));
            /* The kernel's loopback keeps the TTL as sent. */
            CHECK_EQ(value, 33);
            ttl = true;
        } else if (c->cmsg_type == IP_TOS) {
            CHECK_EQ(c->cmsg_len, CMSG_LEN(1));
            CHECK_EQ(*(unsigned char *)CMSG_DATA(c), 0x10);
            tos = true;
        } else {
            CHECK(false);
        }
    }
    CHECK(pktinfo);
    CHECK(ttl);
    CHECK(tos);
    CHECK_EQ(api->close(sender), 0);
    CHECK_EQ(api->close(receiver), 0);
}

API_TEST(pktinfo_ttl_and_tos_cmsgs_on_loopback)
{
    check_ancillary_data(api, "127.0.0.1");
}

API_TEST(pktinfo_ttl_and_tos_cmsgs_on_interface_address)
{
    check_ancillary_data(api, "198.18.0.1");
}

API_TEST(small_control_buffer_sets_msg_ctrunc)
{
    int receiver = udp_bound(api, "127.0.0.1", 5000);
    set_int_option(api, receiver, IPPROTO_IP, IP_PKTINFO, 1);
    set_int_option(api, receiver, IPPROTO_IP, IP_RECVTTL, 1);
    int sender = udp_socket(api);
    CHECK_EQ(send_to(api, sender, "hello", 5, "127.0.0.1", 5000), 5);
    wait_readable(api, receiver);
    char data[16];
    struct iovec vector = {.iov_base = data, .iov_len = sizeof(data)};
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(struct in_pktinfo))];
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr message;
    memset(&message, 0, sizeof(message));
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control.bytes;
    message.msg_controllen = sizeof(control.bytes);
    CHECK_EQ(api->recvmsg(receiver, &message, MSG_DONTWAIT), 5);
    CHECK(message.msg_flags & MSG_CTRUNC);
    /* What fitted (the IP_PKTINFO, which comes first) was delivered. */
    CHECK_EQ(message.msg_controllen, CMSG_SPACE(sizeof(struct in_pktinfo)));
    struct cmsghdr *first = CMSG_FIRSTHDR(&message);
    CHECK(first != NULL);
    CHECK_EQ(first->cmsg_level, SOL_IP);
    CHECK_EQ(first->cmsg_type, IP_PKTINFO);
    CHECK_EQ(api->close(sender), 0);
    CHECK_EQ(api->close(receiver), 0);
}

/* ------------------------------------------------------------------ */
/* IP_RECVERR                                                          */
/* ------------------------------------------------------------------ */

API_TEST(ip_recverr_queues_port_unreachable_on_unconnected_socket)
{
    int fd = udp_bound(api, "127.0.0.1", 5000);
    set_int_option(api, fd, IPPROTO_IP, IP_RECVERR, 1);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_RECVERR), 1);
    CHECK_EQ(send_to(api, fd, "probe", 5, "127.0.0.1", 5001), 5);

    struct pollfd entry = {.fd = fd, .events = POLLIN};
    CHECK_EQ(api->poll(&entry, 1, 2000), 1);
    CHECK(entry.revents & POLLERR);

    char data[16];
    struct iovec vector = {.iov_base = data, .iov_len = sizeof(data)};
    union {
        struct cmsghdr align;
        char bytes[512];
    } control;
    memset(&control, 0, sizeof(control));
    struct sockaddr_in from;
    struct msghdr message;
    memset(&message, 0, sizeof(message));
    message.msg_name = &from;
    message.msg_namelen = sizeof(from);
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control.bytes;
    message.msg_controllen = sizeof(control.bytes);
    CHECK_EQ(api->recvmsg(fd, &message, MSG_ERRQUEUE), 5);
    CHECK(memcmp(data, "probe", 5) == 0);
    CHECK(message.msg_flags & MSG_ERRQUEUE);
    CHECK_EQ(message.msg_namelen, sizeof(from));
    CHECK_EQ(from.sin_addr.s_addr, ip_of("127.0.0.1"));
    CHECK_EQ(ntohs(from.sin_port), 5001);

    bool found = false;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c != NULL; c = CMSG_NXTHDR(&message, c)) {
        if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) {
            struct sock_extended_err error;
            memcpy(&error, CMSG_DATA(c), sizeof(error));
            CHECK_EQ(error.ee_errno, ECONNREFUSED);
            CHECK_EQ(error.ee_origin, SO_EE_ORIGIN_ICMP);
            CHECK_EQ(error.ee_type, 3);
            CHECK_EQ(error.ee_code, 3);
            found = true;
        }
    }
    CHECK(found);
    CHECK_ERRNO(api->recvmsg(fd, &message, MSG_ERRQUEUE), EAGAIN);
    CHECK_EQ(api->close(fd), 0);
}

/* IP_RECVERR on raw and ping sockets */

/* Waits up to 2 s for fd to have an error pending (POLLERR). */
static void wait_error(const struct api *api, int fd)
{
    struct pollfd entry = {.fd = fd, .events = 0};
    CHECK_EQ(api->poll(&entry, 1, 2000), 1);
    CHECK(entry.revents & POLLERR);
}

struct error_report {
    ssize_t length;                 /* quoted bytes returned */
    uint8_t data[256];
    struct sockaddr_in name;        /* msg_name: where the quoted packet went */
    struct sock_extended_err error;
    struct sockaddr_in offender;    /* SO_EE_OFFENDER */
};

/* recvmsg(MSG_ERRQUEUE) into *out, checking the flags and that exactly one
 * IP_RECVERR control message came with it. */
static void receive_error_report(const struct api *api, int fd, struct error_report *out)
{
    memset(out, 0, sizeof(*out));
    struct iovec vector = {.iov_base = out->data, .iov_len = sizeof(out->data)};
    union {
        struct cmsghdr align;
        char bytes[512];
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr message;
    memset(&message, 0, sizeof(message));
    message.msg_name = &out->name;
    message.msg_namelen = sizeof(out->name);
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control.bytes;
    message.msg_controllen = sizeof(control.bytes);
    out->length = api->recvmsg(fd, &message, MSG_ERRQUEUE);
    CHECK(out->length >= 0);
    CHECK(message.msg_flags & MSG_ERRQUEUE);
    CHECK_EQ(message.msg_namelen, sizeof(out->name));
    unsigned reports = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c != NULL; c = CMSG_NXTHDR(&message, c)) {
        CHECK_EQ(c->cmsg_level, SOL_IP);
        CHECK_EQ(c->cmsg_type, IP_RECVERR);
        CHECK(c->cmsg_len >= CMSG_LEN(sizeof(out->error) + sizeof(out->offender)));
        memcpy(&out->error, CMSG_DATA(c), sizeof(out->error));
        const struct sock_extended_err *in_place = (const void *)CMSG_DATA(c);
        memcpy(&out->offender, SO_EE_OFFENDER(in_place), sizeof(out->offender));
        reports++;
    }
    CHECK_EQ(reports, 1);
}

/* A UDP header (source port 4444, to port, checksum none) and "probe". */
static size_t udp_probe(uint8_t *out, uint16_t port)
{
    struct udphdr_bytes {
        uint16_t source, destination, length, checksum;
    } header = {htons(4444), htons(port), htons(8 + 5), 0};
    memcpy(out, &header, 8);
    memcpy(out + 8, "probe", 5);
    return 13;
}

API_TEST(raw_socket_ip_recverr_queues_port_unreachable_with_transport_header)
{
    int fd = api->socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
    CHECK(fd >= 0);
    set_int_option(api, fd, IPPROTO_IP, IP_RECVERR, 1);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_RECVERR), 1);
    uint8_t probe[13];
    CHECK_EQ(send_to(api, fd, probe, udp_probe(probe, 5001), "127.0.0.1", 0), 13);
    wait_error(api, fd);
    struct error_report report;
    receive_error_report(api, fd, &report);
    /* The quote from the UDP header on, as Linux's raw_err gives it. */
    CHECK_EQ(report.length, 13);
    CHECK(memcmp(report.data, probe, 13) == 0);
    CHECK_EQ(report.name.sin_addr.s_addr, ip_of("127.0.0.1"));
    CHECK_EQ(report.name.sin_port, 0);
    CHECK_EQ(report.error.ee_errno, ECONNREFUSED);
    CHECK_EQ(report.error.ee_origin, SO_EE_ORIGIN_ICMP);
    CHECK_EQ(report.error.ee_type, ICMP_DEST_UNREACH);
    CHECK_EQ(report.error.ee_code, ICMP_PORT_UNREACH);
    CHECK_EQ(report.offender.sin_family, AF_INET);
    CHECK_EQ(report.offender.sin_addr.s_addr, ip_of("127.0.0.1"));
    struct msghdr empty;
    memset(&empty, 0, sizeof(empty));
    CHECK_ERRNO(api->recvmsg(fd, &empty, MSG_ERRQUEUE), EAGAIN);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(raw_socket_with_ip_hdrincl_gets_the_whole_quoted_packet)
{
    int fd = api->socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
    CHECK(fd >= 0);
    set_int_option(api, fd, IPPROTO_IP, IP_RECVERR, 1);
    set_int_option(api, fd, IPPROTO_IP, IP_HDRINCL, 1);
    uint8_t packet[20 + 13];
    memset(packet, 0, sizeof(packet));
    packet[0] = 0x45;
    packet[8] = 64;
    packet[9] = IPPROTO_UDP;
    uint32_t loopback = ip_of("127.0.0.1");
    memcpy(packet + 12, &loopback, 4);
    memcpy(packet + 16, &loopback, 4);
    udp_probe(packet + 20, 5001);
    CHECK_EQ(send_to(api, fd, packet, sizeof(packet), "127.0.0.1", 0), (ssize_t)sizeof(packet));
    wait_error(api, fd);
    struct error_report report;
    receive_error_report(api, fd, &report);
    CHECK_EQ(report.length, (ssize_t)sizeof(packet));
    CHECK_EQ(report.data[0], 0x45);
    CHECK_EQ(report.data[9], IPPROTO_UDP);
    CHECK(memcmp(report.data + 20, packet + 20, 13) == 0);
    CHECK_EQ(report.error.ee_errno, ECONNREFUSED);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(connected_raw_socket_without_ip_recverr_gets_hard_error_on_recv)
{
    int fd = api->socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
    CHECK(fd >= 0);
    struct sockaddr_in peer = address_of("127.0.0.1", 0);
    CHECK_EQ(api->connect(fd, CSA(peer), sizeof(peer)), 0);
    uint8_t probe[13];
    CHECK_EQ(api->send(fd, probe, udp_probe(probe, 5001), 0), 13);
    wait_error(api, fd);
    char buffer[64];
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT), ECONNREFUSED);
    /* Nothing was queued for MSG_ERRQUEUE. */
    struct msghdr empty;
    memset(&empty, 0, sizeof(empty));
    CHECK_ERRNO(api->recvmsg(fd, &empty, MSG_ERRQUEUE), EAGAIN);
    CHECK_EQ(api->close(fd), 0);
}

/* Lets this namespace's root open ping sockets (a per-namespace sysctl the
 * kernel defaults to off); usock always allows them. */
static void allow_ping_sockets(const struct api *api)
{
    if (api != &kernel_api)
        return;
    FILE *file = fopen("/proc/sys/net/ipv4/ping_group_range", "w");
    CHECK(file != NULL);
    CHECK(fprintf(file, "0 2147483647\n") > 0);
    CHECK_EQ(fclose(file), 0);
}

/* Sends, from a raw socket, an ICMP error of type/code from local to local
 * quoting an echo request with identifier from local to quoted_destination. */
static void inject_icmp_error(const struct api *api, const char *local, uint8_t type,
                              uint8_t code, uint16_t identifier, const char *quoted_destination)
{
    int raw = api->socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    CHECK(raw >= 0);
    uint8_t packet[20 + 8 + 20 + 8];
    memset(packet, 0, sizeof(packet));
    uint32_t loopback = ip_of(local), destination = ip_of(quoted_destination);
    /* outer IP header */
    packet[0] = 0x45;
    packet[8] = 64;
    packet[9] = IPPROTO_ICMP;
    memcpy(packet + 12, &loopback, 4);
    memcpy(packet + 16, &loopback, 4);
    /* the ICMP error */
    uint8_t *icmp = packet + 20;
    icmp[0] = type;
    icmp[1] = code;
    /* the quoted packet: our echo request */
    uint8_t *quoted = icmp + 8;
    quoted[0] = 0x45;
    quoted[3] = 28;
    quoted[8] = 64;
    quoted[9] = IPPROTO_ICMP;
    memcpy(quoted + 12, &loopback, 4);
    memcpy(quoted + 16, &destination, 4);
    uint16_t sum = internet_checksum(quoted, 20);
    memcpy(quoted + 10, &sum, 2);
    uint8_t *echo = quoted + 20;
    echo[0] = ICMP_ECHO;
    uint16_t id = htons(identifier), sequence = htons(1);
    memcpy(echo + 4, &id, 2);
    memcpy(echo + 6, &sequence, 2);
    sum = internet_checksum(echo, 8);
    memcpy(echo + 2, &sum, 2);
    sum = internet_checksum(icmp, sizeof(packet) - 20);
    memcpy(icmp + 2, &sum, 2);
    CHECK_EQ(send_to(api, raw, packet, sizeof(packet), local, 0), (ssize_t)sizeof(packet));
    CHECK_EQ(api->close(raw), 0);
}

/* A ping socket that has sent one echo request to 127.0.0.1 (and read the
 * reply); returns it and its identifier. */
static int ping_socket_after_echo(const struct api *api, uint16_t *identifier)
{
    allow_ping_sockets(api);
    int fd = api->socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    CHECK(fd >= 0);
    struct icmphdr request;
    memset(&request, 0, sizeof(request));
    request.type = ICMP_ECHO;
    request.un.echo.sequence = htons(1);
    CHECK_EQ(send_to(api, fd, &request, sizeof(request), "127.0.0.1", 0),
             (ssize_t)sizeof(request));
    wait_readable(api, fd);
    char reply[64];
    CHECK_EQ(api->recv(fd, reply, sizeof(reply), MSG_DONTWAIT), (ssize_t)sizeof(request));
    *identifier = ntohs(local_address(api, fd).sin_port);
    return fd;
}

API_TEST(ping_socket_ip_recverr_queues_error_quoting_its_echo_request)
{
    uint16_t identifier;
    int fd = ping_socket_after_echo(api, &identifier);
    set_int_option(api, fd, IPPROTO_IP, IP_RECVERR, 1);
    inject_icmp_error(api, "127.0.0.1", ICMP_DEST_UNREACH, ICMP_HOST_UNREACH, identifier,
                      "198.18.0.77");
    wait_error(api, fd);
    struct error_report report;
    receive_error_report(api, fd, &report);
    /* The quote from the ICMP header on, as Linux's ping_err gives it. */
    CHECK_EQ(report.length, 8);
    CHECK_EQ(report.data[0], ICMP_ECHO);
    CHECK_EQ(report.name.sin_addr.s_addr, ip_of("198.18.0.77"));
    CHECK_EQ(report.name.sin_port, 0);
    CHECK_EQ(report.error.ee_errno, EHOSTUNREACH);
    CHECK_EQ(report.error.ee_origin, SO_EE_ORIGIN_ICMP);
    CHECK_EQ(report.error.ee_type, ICMP_DEST_UNREACH);
    CHECK_EQ(report.error.ee_code, ICMP_HOST_UNREACH);
    CHECK_EQ(report.offender.sin_addr.s_addr, ip_of("127.0.0.1"));
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(ping_socket_without_ip_recverr_ignores_soft_error_and_keeps_hard_one)
{
    uint16_t identifier;
    int fd = ping_socket_after_echo(api, &identifier);
    struct sockaddr_in peer = address_of("198.18.0.77", 0);
    CHECK_EQ(api->connect(fd, CSA(peer), sizeof(peer)), 0);
    /* connect() fixed the local address, as for UDP. */
    CHECK_EQ(local_address(api, fd).sin_addr.s_addr, ip_of("198.18.0.1"));
    /* Host unreachable is soft: nothing pending. */
    inject_icmp_error(api, "198.18.0.1", ICMP_DEST_UNREACH, ICMP_HOST_UNREACH, identifier,
                      "198.18.0.77");
    expect_nothing(api, fd);
    /* Host administratively prohibited is hard: pending on the connected socket. */
    inject_icmp_error(api, "198.18.0.1", ICMP_DEST_UNREACH, ICMP_HOST_ANO, identifier,
                      "198.18.0.77");
    wait_error(api, fd);
    char buffer[64];
    CHECK_ERRNO(api->recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT), EHOSTUNREACH);
    CHECK_EQ(api->close(fd), 0);
}

/* ------------------------------------------------------------------ */
/* IP_MTU_DISCOVER, IP_MTU, SO_RCVLOWAT                                */
/* ------------------------------------------------------------------ */

API_TEST(ip_mtu_discover_default_and_set)
{
    int fd = udp_socket(api);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_MTU_DISCOVER), IP_PMTUDISC_WANT);
    set_int_option(api, fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO);
    CHECK_EQ(get_int_option(api, fd, IPPROTO_IP, IP_MTU_DISCOVER), IP_PMTUDISC_DO);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(ip_mtu_of_unconnected_socket_is_enotconn)
{
    int fd = udp_socket(api);
    int value = 0;
    socklen_t length = sizeof(value);
    CHECK_ERRNO(api->getsockopt(fd, IPPROTO_IP, IP_MTU, &value, &length), ENOTCONN);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(so_rcvlowat_default_and_set)
{
    int fd = udp_socket(api);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_RCVLOWAT), 1);
    set_int_option(api, fd, SOL_SOCKET, SO_RCVLOWAT, 10);
    CHECK_EQ(get_int_option(api, fd, SOL_SOCKET, SO_RCVLOWAT), 10);
    CHECK_EQ(api->close(fd), 0);
}

/* ------------------------------------------------------------------ */
/* SO_BINDTODEVICE                                                     */
/* ------------------------------------------------------------------ */

/* getsockopt(SO_BINDTODEVICE) into name (64 bytes); returns the length. */
static socklen_t bound_device(const struct api *api, int fd, char *name)
{
    memset(name, 'x', 64);
    socklen_t length = 64;
    CHECK_EQ(api->getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, &length), 0);
    return length;
}

API_TEST(so_bindtodevice_names_unbinding_and_getsockopt)
{
    int fd = udp_socket(api);
    char name[64];
    CHECK_EQ(bound_device(api, fd, name), 0);
    CHECK_ERRNO(api->setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "nope", 4), ENODEV);
    CHECK_EQ(api->setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "usock-api0", 10), 0);
    CHECK_EQ(bound_device(api, fd, name), 11);
    CHECK_EQ(strcmp(name, "usock-api0"), 0);
    /* Bound, a buffer shorter than IFNAMSIZ is EINVAL. */
    socklen_t length = 4;
    CHECK_ERRNO(api->getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, &length), EINVAL);
    CHECK_EQ(api->setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3), 0);
    CHECK_EQ(bound_device(api, fd, name), 3);
    CHECK_EQ(strcmp(name, "lo"), 0);
    /* "" unbinds, and so does a length of 0. */
    CHECK_EQ(api->setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "", 1), 0);
    CHECK_EQ(bound_device(api, fd, name), 0);
    CHECK_EQ(api->setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "lo", 2), 0);
    CHECK_EQ(api->setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, NULL, 0), 0);
    CHECK_EQ(bound_device(api, fd, name), 0);
    /* The name ends at a NUL or after IFNAMSIZ - 1 bytes. */
    CHECK_EQ(api->setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "lo\0junk", 7), 0);
    CHECK_ERRNO(api->setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, "usock-api0-and-more", 19),
                ENODEV);
    CHECK_EQ(bound_device(api, fd, name), 3);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(so_bindtodevice_filters_by_arrival_device)
{
    int receiver = udp_bound(api, "0.0.0.0", 6000);
    int sender = udp_socket(api);
    CHECK_EQ(api->setsockopt(receiver, SOL_SOCKET, SO_BINDTODEVICE, "usock-api0", 11), 0);
    /* Traffic to our own interface address arrives on the interface ... */
    CHECK_EQ(send_to(api, sender, "mc", 2, "198.18.0.1", 6000), 2);
    expect_datagram(api, receiver);
    /* ... traffic to 127.0.0.1 on lo. */
    CHECK_EQ(send_to(api, sender, "mc", 2, "127.0.0.1", 6000), 2);
    expect_nothing(api, receiver);
    CHECK_EQ(api->setsockopt(receiver, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3), 0);
    CHECK_EQ(send_to(api, sender, "mc", 2, "198.18.0.1", 6000), 2);
    expect_nothing(api, receiver);
    CHECK_EQ(send_to(api, sender, "mc", 2, "127.0.0.1", 6000), 2);
    expect_datagram(api, receiver);
    CHECK_EQ(api->close(sender), 0);
    CHECK_EQ(api->close(receiver), 0);
}

API_TEST(so_bindtodevice_sockets_on_different_devices_share_a_port)
{
    int on_link = udp_socket(api);
    int on_loopback = udp_socket(api);
    int also_on_link = udp_socket(api);
    CHECK_EQ(api->setsockopt(on_link, SOL_SOCKET, SO_BINDTODEVICE, "usock-api0", 11), 0);
    CHECK_EQ(api->setsockopt(on_loopback, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3), 0);
    CHECK_EQ(api->setsockopt(also_on_link, SOL_SOCKET, SO_BINDTODEVICE, "usock-api0", 11), 0);
    struct sockaddr_in any = address_of("0.0.0.0", 7000);
    CHECK_EQ(api->bind(on_link, CSA(any), sizeof(any)), 0);
    CHECK_EQ(api->bind(on_loopback, CSA(any), sizeof(any)), 0);
    CHECK_ERRNO(api->bind(also_on_link, CSA(any), sizeof(any)), EADDRINUSE);
    CHECK_EQ(api->close(also_on_link), 0);
    CHECK_EQ(api->close(on_loopback), 0);
    CHECK_EQ(api->close(on_link), 0);
}

/* ------------------------------------------------------------------ */
/* Raw sockets                                                         */
/* ------------------------------------------------------------------ */

API_TEST(raw_socket_with_protocol_zero_is_eprotonosupport)
{
    CHECK_ERRNO(api->socket(AF_INET, SOCK_RAW, 0), EPROTONOSUPPORT);
}

API_TEST(raw_icmp_socket_name_port_is_the_protocol)
{
    int fd = api->socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    CHECK(fd >= 0);
    CHECK_EQ(ntohs(local_address(api, fd).sin_port), IPPROTO_ICMP);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(ip_hdrincl_default_by_protocol)
{
    int icmp = api->socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    CHECK(icmp >= 0);
    CHECK_EQ(get_int_option(api, icmp, IPPROTO_IP, IP_HDRINCL), 0);
    int raw = api->socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    CHECK(raw >= 0);
    CHECK_EQ(get_int_option(api, raw, IPPROTO_IP, IP_HDRINCL), 1);
    CHECK_EQ(api->close(icmp), 0);
    CHECK_EQ(api->close(raw), 0);
}

API_TEST(icmp_filter_on_icmp_and_udp_raw_sockets)
{
    int fd = api->socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    CHECK(fd >= 0);
    struct icmp_filter filter = {.data = 0xdeadbeef};
    socklen_t length = sizeof(filter);
    CHECK_EQ(api->getsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, &length), 0);
    CHECK_EQ(length, sizeof(filter));
    CHECK_EQ(filter.data, 0);
    filter.data = 1u << ICMP_ECHO;
    CHECK_EQ(api->setsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, sizeof(filter)), 0);
    filter.data = 0;
    length = sizeof(filter);
    CHECK_EQ(api->getsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, &length), 0);
    CHECK_EQ(filter.data, 1u << ICMP_ECHO);
    CHECK_EQ(api->close(fd), 0);

    int udp = api->socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
    CHECK(udp >= 0);
    length = sizeof(filter);
    CHECK_ERRNO(api->getsockopt(udp, SOL_RAW, ICMP_FILTER, &filter, &length), EOPNOTSUPP);
    CHECK_ERRNO(api->setsockopt(udp, SOL_RAW, ICMP_FILTER, &filter, sizeof(filter)),
                EOPNOTSUPP);
    CHECK_EQ(api->close(udp), 0);
}

API_TEST(listen_on_raw_socket_is_eopnotsupp)
{
    int fd = api->socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    CHECK(fd >= 0);
    CHECK_ERRNO(api->listen(fd, 5), EOPNOTSUPP);
    CHECK_EQ(api->close(fd), 0);
}

API_TEST(raw_icmp_socket_receives_echo_reply_with_ip_header)
{
    int fd = api->socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    CHECK(fd >= 0);
    uint8_t request[8 + 4];
    memset(request, 0, sizeof(request));
    struct icmphdr header;
    memset(&header, 0, sizeof(header));
    header.type = ICMP_ECHO;
    header.un.echo.id = htons(0x1234);
    header.un.echo.sequence = htons(7);
    memcpy(request, &header, sizeof(header));
    memcpy(request + 8, "ping", 4);
    header.checksum = internet_checksum(request, sizeof(request));
    memcpy(request, &header, sizeof(header));
    CHECK_EQ(send_to(api, fd, request, sizeof(request), "127.0.0.1", 0),
             (ssize_t)sizeof(request));

    /* The socket may see its own request too; look for the reply. */
    bool replied = false;
    uint64_t give_up = monotonic_ms() + 2000;
    while (!replied && monotonic_ms() < give_up) {
        wait_readable(api, fd);
        uint8_t packet[256];
        struct sockaddr_in from;
        socklen_t from_length = sizeof(from);
        ssize_t length = api->recvfrom(fd, packet, sizeof(packet), MSG_DONTWAIT, SA(from),
                                       &from_length);
        CHECK(length >= 20 + (ssize_t)sizeof(request));
        CHECK_EQ(from.sin_addr.s_addr, ip_of("127.0.0.1"));
        struct iphdr ip;
        memcpy(&ip, packet, sizeof(ip));
        CHECK_EQ(ip.version, 4);
        CHECK_EQ(ip.protocol, IPPROTO_ICMP);
        size_t header_length = (size_t)ip.ihl * 4;
        CHECK_EQ((size_t)length, header_length + sizeof(request));
        struct icmphdr reply;
        memcpy(&reply, packet + header_length, sizeof(reply));
        if (reply.type != ICMP_ECHOREPLY)
            continue;
        CHECK_EQ(reply.code, 0);
        CHECK_EQ(ntohs(reply.un.echo.id), 0x1234);
        CHECK_EQ(ntohs(reply.un.echo.sequence), 7);
        CHECK(memcmp(packet + header_length + 8, "ping", 4) == 0);
        CHECK_EQ(internet_checksum(packet + header_length, sizeof(request)), 0);
        replied = true;
    }
    CHECK(replied);
    CHECK_EQ(api->close(fd), 0);
}

static const struct check_test tests[] = {
    API_ENTRIES(ip_add_membership_with_ip_mreq_and_ip_mreqn),
    API_ENTRIES(ip_add_membership_twice_is_eaddrinuse),
    API_ENTRIES(ip_add_membership_of_non_multicast_address_is_einval),
    API_ENTRIES(ip_drop_membership_of_group_not_joined_is_eaddrnotavail),
    API_ENTRIES(ip_add_membership_on_tcp_is_eproto),
    API_ENTRIES(ip_add_membership_with_short_optlen_is_einval),
    API_ENTRIES(source_membership_include_mode_errnos),
    API_ENTRIES(source_membership_exclude_mode_errnos),
    API_ENTRIES(add_source_membership_after_any_source_join_narrows_it),
    API_ENTRIES(eleventh_source_is_enobufs),
    API_ENTRIES(source_option_bad_arguments),
    API_ENTRIES(source_options_on_tcp_socket_are_accepted),
    API_ENTRIES(include_filter_passes_only_listed_sources),
    API_ENTRIES(blocked_source_is_filtered_and_unblocked_passes),
    API_ENTRIES(drop_source_on_any_source_join_is_eaddrnotavail_and_stops_reception),
    API_ENTRIES(socket_without_membership_gets_what_the_interface_accepts),
    API_ENTRIES(ip_multicast_ttl_default_set_and_limits),
    API_ENTRIES(ip_multicast_loop_defaults_to_one),
    API_ENTRIES(ip_ttl_default_zero_and_minus_one),
    API_ENTRIES(ip_tos_set_and_get),
    API_ENTRIES(pktinfo_ttl_and_tos_cmsgs_on_loopback),
    API_ENTRIES(pktinfo_ttl_and_tos_cmsgs_on_interface_address),
    API_ENTRIES(small_control_buffer_sets_msg_ctrunc),
    API_ENTRIES(ip_recverr_queues_port_unreachable_on_unconnected_socket),
    API_ENTRIES(raw_socket_ip_recverr_queues_port_unreachable_with_transport_header),
    API_ENTRIES(raw_socket_with_ip_hdrincl_gets_the_whole_quoted_packet),
    API_ENTRIES(connected_raw_socket_without_ip_recverr_gets_hard_error_on_recv),
    API_ENTRIES(ping_socket_ip_recverr_queues_error_quoting_its_echo_request),
    API_ENTRIES(ping_socket_without_ip_recverr_ignores_soft_error_and_keeps_hard_one),
    API_ENTRIES(ip_mtu_discover_default_and_set),
    API_ENTRIES(ip_mtu_of_unconnected_socket_is_enotconn),
    API_ENTRIES(so_rcvlowat_default_and_set),
    API_ENTRIES(so_bindtodevice_names_unbinding_and_getsockopt),
    API_ENTRIES(so_bindtodevice_filters_by_arrival_device),
    API_ENTRIES(so_bindtodevice_sockets_on_different_devices_share_a_port),
    API_ENTRIES(raw_socket_with_protocol_zero_is_eprotonosupport),
    API_ENTRIES(raw_icmp_socket_name_port_is_the_protocol),
    API_ENTRIES(ip_hdrincl_default_by_protocol),
    API_ENTRIES(icmp_filter_on_icmp_and_udp_raw_sockets),
    API_ENTRIES(listen_on_raw_socket_is_eopnotsupp),
    API_ENTRIES(raw_icmp_socket_receives_echo_reply_with_ip_header),
};

CHECK_MAIN(tests)
