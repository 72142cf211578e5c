/*
 * multicast.h - a socket's multicast memberships and source filters: the
 * IPPROTO_IP options that take structures (IP_ADD_MEMBERSHIP,
 * IP_DROP_MEMBERSHIP, IP_MULTICAST_IF, IP_ADD_SOURCE_MEMBERSHIP,
 * IP_DROP_SOURCE_MEMBERSHIP, IP_BLOCK_SOURCE, IP_UNBLOCK_SOURCE) and the
 * filter applied when a multicast datagram is delivered to the socket.
 */
#ifndef USOCK_SOCKET_MULTICAST_H
#define USOCK_SOCKET_MULTICAST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct usock_stack;
struct socket;

#define SOCKET_MEMBERSHIPS_MAX 20 /* Linux net.ipv4.igmp_max_memberships */
#define SOCKET_SOURCES_MAX 10     /* Linux net.ipv4.igmp_max_msf */

/* One group a socket joined: its filter mode (an igmp_filter_mode) and
 * source list.  Linux keeps a source list once one was made, and then
 * refuses options of the other mode (EINVAL); source_list_made says so. */
struct socket_membership {
    uint32_t group;            /* network order */
    int mode;                  /* IGMP_MODE_INCLUDE or IGMP_MODE_EXCLUDE */
    bool source_list_made;
    unsigned source_count;
    uint32_t sources[SOCKET_SOURCES_MAX];
};

/* Handles the multicast options above (level IPPROTO_IP; value of length
 * bytes, borrowed).  Returns 0, -errno as Linux gives it, or -ENOPROTOOPT
 * when name is none of them. */
int socket_multicast_setsockopt(struct usock_stack *stack, struct socket *socket, int name,
                                const void *value, socklen_t length, uint64_t now);
/* Whether socket takes a datagram for group from source (network order):
 * by its source filter when it joined group, else yes (Linux's
 * IP_MULTICAST_ALL default).  Non-multicast destinations always pass. */
bool socket_multicast_allows(const struct usock_stack *stack, const struct socket *socket,
                             uint32_t group, uint32_t source);
/* Leaves every group socket joined and frees its membership list (close). */
void socket_multicast_leave_all(struct usock_stack *stack, struct socket *socket, uint64_t now);

#endif
