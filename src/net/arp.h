/*
 * arp.h - ARP and the neighbour cache (RFC 826, with the timeouts of RFC
 * 1122 2.3.2.1).
 *
 * Each neighbour entry maps an on-link IPv4 address to a hardware address
 * and moves through INCOMPLETE (a request is out; packets wait in a small
 * bounded queue), REACHABLE (confirmed by a packet from the neighbour),
 * STALE (still used, unconfirmed for a while) and PROBE (re-asking while
 * still sending).  Each entry has one timer.  The cache is a hash table
 * keyed by siphash of the address, bounded in entries; when full, new
 * resolutions fail and are counted.
 */
#ifndef USOCK_NET_ARP_H
#define USOCK_NET_ARP_H

#include <stddef.h>
#include <stdint.h>

#include "util/hash_table.h"
#include "util/packet_buffer.h"
#include "util/timer.h"

struct usock_stack;

#define NEIGHBOUR_LIMIT 1024
#define NEIGHBOUR_PENDING_LIMIT 1024   /* packets held per unresolved entry */
#define NEIGHBOUR_PENDING_BYTES 212992 /* and bytes (Linux unres_qlen_bytes) */
#define ARP_REQUEST_TRIES 3
#define ARP_RETRY_INTERVAL_NS (1000ULL * 1000 * 1000)
#define NEIGHBOUR_REACHABLE_NS (30ULL * 1000 * 1000 * 1000)
#define NEIGHBOUR_STALE_LIFETIME_NS (60ULL * 1000 * 1000 * 1000)

enum neighbour_state {
    NEIGHBOUR_INCOMPLETE,
    NEIGHBOUR_REACHABLE,
    NEIGHBOUR_STALE,
    NEIGHBOUR_PROBE,
};

struct neighbour {
    struct hash_node node;
    uint32_t address; /* network order */
    uint8_t mac[6];
    enum neighbour_state state;
    unsigned requests_sent;
    struct timer timer;
    struct packet_queue pending;
    size_t pending_bytes;
};

struct neighbour_cache {
    struct hash_table table;
    size_t count;
    size_t limit;
    struct neighbour *last_found; /* the entry found last (most packets go to
                                   * one next hop); NULL when freed */
};

int neighbour_cache_init(struct neighbour_cache *cache);
/* Frees every entry and its pending packets. */
void neighbour_cache_destroy(struct usock_stack *stack, struct neighbour_cache *cache);

/* Handles an ARP packet (the Ethernet payload, borrowed). */
void arp_input(struct usock_stack *stack, const uint8_t *packet, size_t length, uint64_t now);

/* Sends an IPv4 packet (buffer consumed, data starting at the IP header) to
 * next_hop on the Ethernet link: at once when the neighbour is known,
 * otherwise after resolution (queued, bounded).  Returns 0, or -errno when
 * the packet was dropped (-ENOBUFS queue full or cache full, -ENOMEM). */
int arp_resolve_and_send(struct usock_stack *stack, struct packet_buffer *buffer,
                         uint32_t next_hop, uint64_t now);

/* Broadcasts a gratuitous ARP announcing the interface address. */
void arp_announce(struct usock_stack *stack, uint64_t now);

/* Looks up a neighbour's state for tests and tools; NULL when absent. */
const struct neighbour *arp_lookup(struct usock_stack *stack, uint32_t address);

#endif
