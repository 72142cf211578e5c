/*
 * igmp.h - multicast group membership on the interface (IGMPv3, RFC 3376,
 * with source filters; falling back to IGMPv2, RFC 2236, while a v2
 * querier is heard).
 */
#ifndef USOCK_NET_IGMP_H
#define USOCK_NET_IGMP_H

#include <stdbool.h>
#include <stdint.h>

#include "util/timer.h"

struct usock_stack;
struct ipv4_packet;
struct igmp_group;

#define IGMP_GROUP_LIMIT 256
/* Distinct sources the interface keeps per group (the union of what its
 * sockets list); a socket filter change that needs more is refused with
 * ENOBUFS.  Keeps every report within one 576-byte datagram. */
#define IGMP_GROUP_SOURCES_MAX 64
/* RFC 3376 8.12/8.13 with the defaults: Older Version Querier Present
 * Timeout = robustness 2 x query interval 125 s + 10 s response. */
#define IGMP_V2_QUERIER_TIMEOUT_NS (260ULL * 1000 * 1000 * 1000)
#define IGMP_UNSOLICITED_INTERVAL_NS (1000ULL * 1000 * 1000)

/* Filter modes (RFC 3376 3.1). */
enum igmp_filter_mode {
    IGMP_MODE_INCLUDE,  /* receive only the listed sources */
    IGMP_MODE_EXCLUDE,  /* receive all but the listed sources */
};

/* What one socket asks of a group: a mode and its source list (network
 * order; borrowed).  EXCLUDE with no sources is a plain join. */
struct igmp_socket_filter {
    enum igmp_filter_mode mode;
    const uint32_t *sources;
    unsigned source_count;
};

struct igmp_layer {
    struct igmp_group *groups;
    unsigned count;
    uint64_t v2_querier_until;  /* v2 compatibility mode until this time */
};

/* Replaces one socket's filter for group (network order): from is what the
 * socket asked before (NULL: it was not a member), to what it asks now
 * (NULL: it leaves).  Recomputes the interface's state for the group (RFC
 * 3376 3.2) and reports any change.  Returns 0, -EINVAL (not a multicast
 * address), -ENOBUFS (too many groups, or more than IGMP_GROUP_SOURCES_MAX
 * sources) or -ENOMEM; on error nothing changed. */
int igmp_change_socket_filter(struct usock_stack *stack, uint32_t group,
                              const struct igmp_socket_filter *from,
                              const struct igmp_socket_filter *to, uint64_t now);
/* Whether the interface receives datagrams of group from source (network
 * order): by its merged source filter, always for 224.0.0.1. */
bool igmp_accepts(const struct usock_stack *stack, uint32_t group, uint32_t source);
/* Whether the interface has any state for group (IGMP messages about a
 * group are received while it does). */
bool igmp_is_member(const struct usock_stack *stack, uint32_t group);
/* Handles an IGMP message. */
void igmp_input(struct usock_stack *stack, const struct ipv4_packet *packet, uint64_t now);
/* Frees every group. */
void igmp_layer_destroy(struct usock_stack *stack);

#endif
