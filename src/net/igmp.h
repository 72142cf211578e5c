/*
 * igmp.h - multicast group membership on the interface (IGMPv3, RFC 3376,
 * falling back to IGMPv2, RFC 2236, while a v2 querier is heard).
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
/* RFC 3376 8.12/8.13 with the defaults: Older Version Querier Present
 * Timeout = robustness 2 x query interval 125 s + 10 s response. */
#define IGMP_V2_QUERIER_TIMEOUT_NS (260ULL * 1000 * 1000 * 1000)
#define IGMP_UNSOLICITED_INTERVAL_NS (1000ULL * 1000 * 1000)

struct igmp_layer {
    struct igmp_group *groups;
    unsigned count;
    uint64_t v2_querier_until;  /* v2 compatibility mode until this time */
};

/* Adds a user of group (network order); the first sends a report.  Returns
 * 0, -EINVAL (not a multicast address), -ENOBUFS (too many groups). */
int igmp_join(struct usock_stack *stack, uint32_t group, uint64_t now);
/* Drops a user; the last sends a leave. */
void igmp_leave(struct usock_stack *stack, uint32_t group, uint64_t now);
/* Whether the interface receives group (224.0.0.1 always). */
bool igmp_is_member(const struct usock_stack *stack, uint32_t group);
/* Handles an IGMP message. */
void igmp_input(struct usock_stack *stack, const struct ipv4_packet *packet, uint64_t now);
/* Frees every group. */
void igmp_layer_destroy(struct usock_stack *stack);

#endif
