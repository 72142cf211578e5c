/*
 * arp.c - ARP and the neighbour cache; see arp.h for the states.
 *
 * Input follows RFC 826's merge rule: if the sender is in the cache, update
 * it; if the packet is for our address, create the entry (when there is
 * room) and answer requests.  Senders with a broadcast/multicast/zero MAC or
 * claiming our own address are dropped and counted.  Output resolves the
 * next hop: known entries send at once; unknown ones get an entry in
 * INCOMPLETE, a broadcast request, and a bounded queue of waiting packets,
 * flushed on the reply or dropped (counted) after ARP_REQUEST_TRIES.
 */
#include "net/arp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/icmp.h"
#include "net/ipv4.h"
#include "wire/icmp.h"
#include "stack.h"
#include "util/siphash.h"
#include "wire/arp.h"
#include "wire/ethernet.h"

static const uint8_t broadcast_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static uint64_t neighbour_hash(const struct usock_stack *stack, uint32_t address)
{
    return siphash13(stack->secret, &address, sizeof(address));
}

int neighbour_cache_init(struct neighbour_cache *cache)
{
    cache->count = 0;
    cache->limit = NEIGHBOUR_LIMIT;
    cache->last_found = NULL;
    return hash_table_init(&cache->table, 64);
}

static struct neighbour *neighbour_find(struct usock_stack *stack, uint32_t address)
{
    struct neighbour *last = stack->neighbours.last_found;
    if (last && last->address == address)
        return last;
    uint64_t hash = neighbour_hash(stack, address);
    for (struct hash_node *node = hash_table_bucket(&stack->neighbours.table, hash); node;
         node = node->next) {
        struct neighbour *entry = container_of(node, struct neighbour, node);
        if (node->hash == hash && entry->address == address) {
            stack->neighbours.last_found = entry;
            return entry;
        }
    }
    return NULL;
}

const struct neighbour *arp_lookup(struct usock_stack *stack, uint32_t address)
{
    return neighbour_find(stack, address);
}

static void neighbour_free(struct usock_stack *stack, struct neighbour *entry)
{
    if (stack->neighbours.last_found == entry)
        stack->neighbours.last_found = NULL;
    timer_cancel(&stack->timers, &entry->timer);
    hash_table_remove(&stack->neighbours.table, &entry->node);
    stack->neighbours.count--;
    packet_queue_purge(&entry->pending);
    free(entry);
}

void neighbour_cache_destroy(struct usock_stack *stack, struct neighbour_cache *cache)
{
    if (!cache->table.buckets)
        return;
    for (size_t i = 0; i < cache->table.bucket_count; i++) {
        while (cache->table.buckets[i]) {
            struct neighbour *entry = container_of(cache->table.buckets[i], struct neighbour, node);
            neighbour_free(stack, entry);
        }
    }
    hash_table_destroy(&cache->table);
}

static void arp_send(struct usock_stack *stack, uint16_t operation, const uint8_t target_mac[6],
                     uint32_t target_address, const uint8_t destination_mac[6], uint64_t now)
{
    struct packet_buffer *buffer = packet_buffer_new(PACKET_HEADROOM, ARP_PACKET_LENGTH);
    if (!buffer)
        return;
    struct arp_packet packet = {
        .operation = operation,
        .sender_address = stack->interface.address,
        .target_address = target_address,
    };
    memcpy(packet.sender_mac, stack->interface.mac, 6);
    memcpy(packet.target_mac, target_mac, 6);
    arp_emit(&packet, packet_buffer_put(buffer, ARP_PACKET_LENGTH));
    ethernet_output(stack, buffer, destination_mac, ETHERTYPE_ARP, now);
}

static void arp_send_request(struct usock_stack *stack, struct neighbour *entry, uint64_t now)
{
    static const uint8_t unknown_mac[6] = {0};
    /* RFC 1122 2.3.2.1: a PROBE for a known entry may go unicast. */
    const uint8_t *destination = entry->state == NEIGHBOUR_PROBE ? entry->mac : broadcast_mac;
    arp_send(stack, ARP_OPERATION_REQUEST, unknown_mac, entry->address, destination, now);
    entry->requests_sent++;
    COUNT(stack, ArpOutRequests);
}

void arp_announce(struct usock_stack *stack, uint64_t now)
{
    static const uint8_t unknown_mac[6] = {0};
    if (!stack->interface.ethernet || stack->interface.address == 0)
        return;
    /* A request for our own address (RFC 5227 announcement). */
    arp_send(stack, ARP_OPERATION_REQUEST, unknown_mac, stack->interface.address, broadcast_mac,
             now);
    COUNT(stack, ArpOutGratuitous);
}

static void neighbour_timer_fire(struct usock_stack *stack, struct timer *timer, uint64_t now)
{
    struct neighbour *entry = container_of(timer, struct neighbour, timer);
    switch (entry->state) {
    case NEIGHBOUR_INCOMPLETE:
    case NEIGHBOUR_PROBE:
        if (entry->requests_sent < ARP_REQUEST_TRIES) {
            arp_send_request(stack, entry, now);
            stack_timer_arm(stack, &entry->timer, now + ARP_RETRY_INTERVAL_NS);
            return;
        }
        COUNT(stack, ArpResolveFailed);
        counter_add(stack, COUNTER_IpOutDiscards, entry->pending.count);
        /* Linux reports these to their sockets as host unreachable. */
        struct packet_buffer *buffer;
        while ((buffer = packet_queue_pop(&entry->pending))) {
            icmp_report_local_error(stack, buffer->data, buffer->length,
                                    ICMP_TYPE_DESTINATION_UNREACHABLE, ICMP_CODE_HOST_UNREACHABLE,
                                    now);
            packet_buffer_free(buffer);
        }
        neighbour_free(stack, entry);
        return;
    case NEIGHBOUR_REACHABLE:
        entry->state = NEIGHBOUR_STALE;
        stack_timer_arm(stack, &entry->timer, now + NEIGHBOUR_STALE_LIFETIME_NS);
        return;
    case NEIGHBOUR_STALE:
        neighbour_free(stack, entry);
        return;
    }
}

static struct neighbour *neighbour_create(struct usock_stack *stack, uint32_t address)
{
    if (stack->neighbours.count >= stack->neighbours.limit) {
        COUNT(stack, ArpCacheFull);
        return NULL;
    }
    struct neighbour *entry = calloc(1, sizeof(*entry));
    if (!entry)
        return NULL;
    entry->address = address;
    entry->state = NEIGHBOUR_INCOMPLETE;
    timer_init(&entry->timer, neighbour_timer_fire);
    packet_queue_init(&entry->pending, NEIGHBOUR_PENDING_LIMIT);
    hash_table_insert(&stack->neighbours.table, &entry->node, neighbour_hash(stack, address));
    stack->neighbours.count++;
    return entry;
}

/* Marks entry confirmed with mac and sends what waited for it. */
static void neighbour_confirm(struct usock_stack *stack, struct neighbour *entry,
                              const uint8_t mac[6], uint64_t now)
{
    memcpy(entry->mac, mac, 6);
    entry->state = NEIGHBOUR_REACHABLE;
    entry->requests_sent = 0;
    stack_timer_arm(stack, &entry->timer, now + NEIGHBOUR_REACHABLE_NS);
    struct packet_buffer *buffer;
    while ((buffer = packet_queue_pop(&entry->pending)))
        ethernet_output(stack, buffer, entry->mac, ETHERTYPE_IPV4, now);
    entry->pending_bytes = 0;
}

int arp_resolve_and_send(struct usock_stack *stack, struct packet_buffer *buffer,
                         uint32_t next_hop, uint64_t now)
{
    struct neighbour *entry = neighbour_find(stack, next_hop);
    if (entry && entry->state != NEIGHBOUR_INCOMPLETE) {
        if (entry->state == NEIGHBOUR_STALE) {
            /* Keep sending; confirm in the background. */
            entry->state = NEIGHBOUR_PROBE;
            entry->requests_sent = 0;
            arp_send_request(stack, entry, now);
            stack_timer_arm(stack, &entry->timer, now + ARP_RETRY_INTERVAL_NS);
        }
        ethernet_output(stack, buffer, entry->mac, ETHERTYPE_IPV4, now);
        return 0;
    }
    if (!entry) {
        entry = neighbour_create(stack, next_hop);
        if (!entry) {
            packet_buffer_free(buffer);
            return -ENOBUFS;
        }
        arp_send_request(stack, entry, now);
        stack_timer_arm(stack, &entry->timer, now + ARP_RETRY_INTERVAL_NS);
    }
    /* It waits: the payload must leave its ring now. */
    buffer = packet_buffer_linearize(buffer);
    if (!buffer)
        return -ENOBUFS;
    /* Bounded in bytes: the oldest packets make room, as on Linux, so a
     * datagram fragmented into many pieces is held whole. */
    while (entry->pending.head &&
           (entry->pending_bytes + buffer->length > NEIGHBOUR_PENDING_BYTES ||
            entry->pending.count >= entry->pending.limit)) {
        struct packet_buffer *oldest = packet_queue_pop(&entry->pending);
        entry->pending_bytes -= oldest->length;
        packet_buffer_free(oldest);
        COUNT(stack, ArpQueueOverflows);
    }
    entry->pending_bytes += buffer->length;
    if (packet_queue_push(&entry->pending, buffer) != 0) {
        COUNT(stack, ArpQueueOverflows);
        return -ENOBUFS;
    }
    return 0;
}

void arp_input(struct usock_stack *stack, const uint8_t *packet_bytes, size_t length,
               uint64_t now)
{
    struct arp_packet packet;
    switch (arp_parse(packet_bytes, length, &packet)) {
    case ARP_PARSE_TRUNCATED:
        COUNT(stack, ArpInTruncated);
        return;
    case ARP_PARSE_UNSUPPORTED:
        COUNT(stack, ArpInUnsupported);
        return;
    case ARP_PARSE_OK:
        break;
    }
    if (packet.operation == ARP_OPERATION_REQUEST)
        COUNT(stack, ArpInRequests);
    else
        COUNT(stack, ArpInReplies);
    static const uint8_t zero_mac[6] = {0};
    enum address_kind sender_kind = ipv4_address_kind(stack, packet.sender_address);
    if (ethernet_is_multicast(packet.sender_mac) || memcmp(packet.sender_mac, zero_mac, 6) == 0 ||
        sender_kind == ADDRESS_BROADCAST || sender_kind == ADDRESS_MULTICAST ||
        ipv4_is_loopback(packet.sender_address) ||
        (packet.sender_address == stack->interface.address &&
         memcmp(packet.sender_mac, stack->interface.mac, 6) != 0)) {
        COUNT(stack, ArpInBadSender);
        return;
    }
    if (packet.sender_address == stack->interface.address)
        return; /* our own announcement looped back */
    bool for_us = stack->interface.address != 0 && packet.target_address == stack->interface.address;
    struct neighbour *entry = packet.sender_address ? neighbour_find(stack, packet.sender_address)
                                                    : NULL;
    if (entry)
        neighbour_confirm(stack, entry, packet.sender_mac, now);
    else if (for_us && packet.sender_address != 0) {
        entry = neighbour_create(stack, packet.sender_address);
        if (entry)
            neighbour_confirm(stack, entry, packet.sender_mac, now);
    }
    if (!for_us) {
        COUNT(stack, ArpInNotForUs);
        return;
    }
    if (packet.operation == ARP_OPERATION_REQUEST) {
        arp_send(stack, ARP_OPERATION_REPLY, packet.sender_mac, packet.sender_address,
                 packet.sender_mac, now);
        COUNT(stack, ArpOutReplies);
    }
}
