/*
 * multicast.c - a socket's multicast memberships and source filters; see
 * multicast.h.
 *
 * Each socket keeps the groups it joined (at most SOCKET_MEMBERSHIPS_MAX)
 * with a filter mode and up to SOCKET_SOURCES_MAX sources, as Linux's
 * ip_mc_socklist does.  Every change is handed to the interface layer
 * (net/igmp.c) as "this socket's filter was F and is now G", which merges
 * all sockets' filters and reports to routers.
 *
 * The option semantics are Linux's (net/ipv4/igmp.c ip_mc_source), checked
 * against the kernel by tests/api/test_api_ip.c:
 *  - IP_ADD_MEMBERSHIP joins in EXCLUDE mode with no sources (any-source);
 *    IP_ADD_SOURCE_MEMBERSHIP joins in INCLUDE mode if not yet joined.
 *  - A source option on a group not joined is EINVAL (but ADD_SOURCE joins).
 *  - While the source list is empty and was never made, a source option of
 *    the other mode switches the mode (so IP_ADD_SOURCE_MEMBERSHIP after
 *    IP_ADD_MEMBERSHIP narrows the join to that source); once a list was
 *    made, the other mode's options are EINVAL.
 *  - Adding a source already listed, or removing one not listed, is
 *    EADDRNOTAVAIL; an eleventh source is ENOBUFS.
 *  - Dropping the last INCLUDE source leaves the group.
 */
#include "socket/multicast.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "net/igmp.h"
#include "net/ipv4.h"
#include "socket/socket.h"
#include "stack.h"

static struct socket_membership *membership_find(const struct socket *socket, uint32_t group)
{
    for (unsigned i = 0; i < socket->membership_count; i++)
        if (socket->memberships[i].group == group)
            return &socket->memberships[i];
    return NULL;
}

static struct igmp_socket_filter filter_of(const struct socket_membership *membership)
{
    return (struct igmp_socket_filter){
        .mode = (enum igmp_filter_mode)membership->mode,
        .sources = membership->sources,
        .source_count = membership->source_count,
    };
}

static int source_index(const struct socket_membership *membership, uint32_t source)
{
    for (unsigned i = 0; i < membership->source_count; i++)
        if (membership->sources[i] == source)
            return (int)i;
    return -1;
}

/* Appends a membership (the caller checked the limit); NULL when out of
 * memory. */
static struct socket_membership *membership_append(struct socket *socket,
                                                   const struct socket_membership *membership)
{
    struct socket_membership *grown =
        realloc(socket->memberships, (socket->membership_count + 1) * sizeof(*grown));
    if (!grown)
        return NULL;
    socket->memberships = grown;
    grown[socket->membership_count] = *membership;
    return &grown[socket->membership_count++];
}

static void membership_remove(struct socket *socket, struct socket_membership *membership)
{
    *membership = socket->memberships[--socket->membership_count];
    if (socket->membership_count == 0) {
        free(socket->memberships);
        socket->memberships = NULL;
    }
}

/* The interface an option names: 0 (any) or the link's address; -ENODEV
 * for any other, as Linux's ip_mc_find_dev. */
static int check_interface(const struct usock_stack *stack, uint32_t interface)
{
    return (interface != 0 && interface != stack->interface.address) ? -ENODEV : 0;
}

/* IP_ADD_MEMBERSHIP, IP_DROP_MEMBERSHIP and IP_MULTICAST_IF, which take an
 * ip_mreqn, an ip_mreq or (IP_MULTICAST_IF) an in_addr. */
static int socket_membership_option(struct usock_stack *stack, struct socket *socket, int name,
                                    const void *value, socklen_t length, uint64_t now)
{
    if (socket->type == SOCK_STREAM && name != IP_MULTICAST_IF)
        return -EPROTO; /* as Linux for connection sockets */
    struct ip_mreqn request = {0};
    if (!value)
        return -EFAULT;
    if (length >= sizeof(struct ip_mreqn)) {
        memcpy(&request, value, sizeof(request));
    } else if (length >= sizeof(struct ip_mreq)) {
        struct ip_mreq old;
        memcpy(&old, value, sizeof(old));
        request.imr_multiaddr = old.imr_multiaddr;
        request.imr_address = old.imr_interface;
    } else if (name == IP_MULTICAST_IF && length >= sizeof(struct in_addr)) {
        memcpy(&request.imr_address, value, sizeof(struct in_addr));
    } else {
        return -EINVAL;
    }
    uint32_t interface = request.imr_address.s_addr;
    if (name == IP_MULTICAST_IF) {
        if (check_interface(stack, interface))
            return -EADDRNOTAVAIL;
        socket->multicast_interface = interface;
        return 0;
    }
    if (check_interface(stack, interface))
        return -ENODEV;
    uint32_t group = request.imr_multiaddr.s_addr;
    if (ipv4_address_kind(stack, group) != ADDRESS_MULTICAST)
        return -EINVAL;
    struct socket_membership *membership = membership_find(socket, group);
    if (name == IP_ADD_MEMBERSHIP) {
        if (membership)
            return -EADDRINUSE;
        if (socket->membership_count >= SOCKET_MEMBERSHIPS_MAX)
            return -ENOBUFS;
        struct socket_membership joined = {.group = group, .mode = IGMP_MODE_EXCLUDE};
        struct igmp_socket_filter to = filter_of(&joined);
        int error = igmp_change_socket_filter(stack, group, NULL, &to, now);
        if (error)
            return error;
        if (!membership_append(socket, &joined)) {
            igmp_change_socket_filter(stack, group, &to, NULL, now);
            return -ENOMEM;
        }
        return 0;
    }
    if (!membership)
        return -EADDRNOTAVAIL;
    struct igmp_socket_filter from = filter_of(membership);
    igmp_change_socket_filter(stack, group, &from, NULL, now);
    membership_remove(socket, membership);
    return 0;
}

/* IP_ADD_SOURCE_MEMBERSHIP, IP_DROP_SOURCE_MEMBERSHIP, IP_BLOCK_SOURCE and
 * IP_UNBLOCK_SOURCE (struct ip_mreq_source), as Linux's ip_mc_source. */
static int socket_source_option(struct usock_stack *stack, struct socket *socket, int name,
                                const void *value, socklen_t length, uint64_t now)
{
    struct ip_mreq_source request;
    if (length != sizeof(request))
        return -EINVAL;
    if (!value)
        return -EFAULT;
    memcpy(&request, value, sizeof(request));
    uint32_t group = request.imr_multiaddr.s_addr;
    uint32_t source = request.imr_sourceaddr.s_addr;
    if (ipv4_address_kind(stack, group) != ADDRESS_MULTICAST)
        return -EINVAL;
    if (check_interface(stack, request.imr_interface.s_addr))
        return -ENODEV;
    bool exclude = name == IP_BLOCK_SOURCE || name == IP_UNBLOCK_SOURCE;
    bool adding = name == IP_BLOCK_SOURCE || name == IP_ADD_SOURCE_MEMBERSHIP;
    int mode = exclude ? IGMP_MODE_EXCLUDE : IGMP_MODE_INCLUDE;

    struct socket_membership *membership = membership_find(socket, group);
    if (!membership) {
        /* Only IP_ADD_SOURCE_MEMBERSHIP joins; the others need a join. */
        if (name != IP_ADD_SOURCE_MEMBERSHIP)
            return -EINVAL;
        if (socket->membership_count >= SOCKET_MEMBERSHIPS_MAX)
            return -ENOBUFS;
        struct socket_membership joined = {
            .group = group,
            .mode = IGMP_MODE_INCLUDE,
            .source_list_made = true,
            .source_count = 1,
            .sources = {source},
        };
        struct igmp_socket_filter to = filter_of(&joined);
        int error = igmp_change_socket_filter(stack, group, NULL, &to, now);
        if (error)
            return error;
        if (!membership_append(socket, &joined)) {
            igmp_change_socket_filter(stack, group, &to, NULL, now);
            return -ENOMEM;
        }
        return 0;
    }
    if (membership->mode != mode && membership->source_list_made)
        return -EINVAL;
    struct socket_membership changed = *membership;
    changed.mode = mode; /* an empty, never made list switches mode */
    int result = 0;
    bool leaves = false;
    int index = source_index(&changed, source);
    if (!adding) {
        if (index < 0) {
            result = -EADDRNOTAVAIL;
        } else if (mode == IGMP_MODE_INCLUDE && changed.source_count == 1) {
            leaves = true; /* INCLUDE{} is leaving the group */
        } else {
            changed.sources[index] = changed.sources[--changed.source_count];
        }
    } else if (changed.source_count >= SOCKET_SOURCES_MAX) {
        return -ENOBUFS;
    } else if (index >= 0) {
        return -EADDRNOTAVAIL;
    } else {
        changed.sources[changed.source_count++] = source;
        changed.source_list_made = true;
    }
    struct igmp_socket_filter from = filter_of(membership);
    if (leaves) {
        igmp_change_socket_filter(stack, group, &from, NULL, now);
        membership_remove(socket, membership);
        return 0;
    }
    if (changed.mode == membership->mode && changed.source_count == membership->source_count)
        return result; /* nothing changed */
    struct igmp_socket_filter to = filter_of(&changed);
    int error = igmp_change_socket_filter(stack, group, &from, &to, now);
    if (error)
        return error;
    *membership = changed;
    return result;
}

int socket_multicast_setsockopt(struct usock_stack *stack, struct socket *socket, int name,
                                const void *value, socklen_t length, uint64_t now)
{
    switch (name) {
    case IP_ADD_MEMBERSHIP:
    case IP_DROP_MEMBERSHIP:
    case IP_MULTICAST_IF:
        return socket_membership_option(stack, socket, name, value, length, now);
    case IP_ADD_SOURCE_MEMBERSHIP:
    case IP_DROP_SOURCE_MEMBERSHIP:
    case IP_BLOCK_SOURCE:
    case IP_UNBLOCK_SOURCE:
        /* Linux takes these on stream sockets too. */
        return socket_source_option(stack, socket, name, value, length, now);
    default:
        return -ENOPROTOOPT;
    }
}

bool socket_multicast_allows(const struct usock_stack *stack, const struct socket *socket,
                             uint32_t group, uint32_t source)
{
    if (socket->membership_count == 0 ||
        ipv4_address_kind(stack, group) != ADDRESS_MULTICAST)
        return true;
    const struct socket_membership *membership = membership_find(socket, group);
    if (!membership)
        return true; /* IP_MULTICAST_ALL */
    bool listed = source_index(membership, source) >= 0;
    return membership->mode == IGMP_MODE_INCLUDE ? listed : !listed;
}

void socket_multicast_leave_all(struct usock_stack *stack, struct socket *socket, uint64_t now)
{
    while (socket->membership_count > 0) {
        struct socket_membership *membership = &socket->memberships[socket->membership_count - 1];
        struct igmp_socket_filter from = filter_of(membership);
        igmp_change_socket_filter(stack, membership->group, &from, NULL, now);
        membership_remove(socket, membership);
    }
}
