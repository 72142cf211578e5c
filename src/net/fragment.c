/*
 * fragment.c - IPv4 reassembly (RFC 791 3.2, RFC 815 for the hole logic).
 *
 * A datagram being reassembled is found by (source, destination, protocol,
 * identification) in a siphash-keyed table.  Its fragments are kept in a
 * list sorted by offset; the datagram is complete when the last fragment
 * (MF clear) has fixed the total length and the fragments cover every byte
 * before it with no hole.  Then one buffer is built (the first fragment's
 * header with its options, then the payload) and delivered as if it had
 * arrived whole.
 *
 * Policy for hostile input (every case dropped and counted):
 *  - a fragment whose offset + length passes 65535 - header: the whole
 *    datagram (the "ping of death");
 *  - any overlap that is not an exact duplicate: the whole datagram (as
 *    RFC 5722 does for IPv6; overlaps serve only evasion);
 *  - an exact duplicate: that fragment only;
 *  - a fragment other than the last whose length is not a multiple of 8,
 *    or an empty one: the whole datagram;
 *  - a first fragment too short for its transport header (RFC 1858 tiny
 *    fragments): the whole datagram;
 *  - a second "last" fragment that disagrees on the total length, or a
 *    last fragment ending before a piece already held: the whole datagram;
 *  - more than FRAGMENTS_PER_DATAGRAM pieces, more than REASSEMBLY_LIMIT
 *    datagrams at once, or more than REASSEMBLY_MEMORY bytes held: new
 *    fragments are refused (the oldest work is not evicted, so a flood
 *    cannot flush legitimate datagrams faster than they would time out).
 * A datagram not complete after 30 s is dropped; if its first fragment
 * had arrived, an ICMP time exceeded (fragment reassembly) quotes it.
 */
#include "net/fragment.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "net/icmp.h"
#include "net/ipv4.h"
#include "stack.h"
#include "util/siphash.h"
#include "wire/icmp.h"

struct fragment_piece {
    struct fragment_piece *next;
    uint16_t offset;   /* bytes into the payload */
    uint16_t length;
    uint8_t data[];
};

struct reassembly {
    struct hash_node node;
    struct reassembly *older, *newer;
    uint32_t source, destination;
    uint16_t identification;
    uint8_t protocol;
    struct fragment_piece *pieces;
    unsigned piece_count;
    size_t bytes;             /* payload bytes held */
    int total_length;         /* payload length once the last piece came; -1 before */
    uint8_t *first_header;    /* the offset-0 fragment's IP header, when seen */
    size_t first_header_length;
    uint8_t *first_quote;     /* the offset-0 fragment as received, for ICMP */
    size_t first_quote_length;
    struct timer timer;
};

struct reassembly_key {
    uint32_t source, destination;
    uint16_t identification;
    uint8_t protocol;
    uint8_t zero;
};

static uint64_t reassembly_hash(const struct usock_stack *stack, uint32_t source,
                                uint32_t destination, uint16_t identification, uint8_t protocol)
{
    struct reassembly_key key = {source, destination, identification, protocol, 0};
    return siphash13(stack->secret, &key, sizeof(key));
}

int fragment_table_init(struct fragment_table *table)
{
    memset(table, 0, sizeof(*table));
    table->memory_limit = REASSEMBLY_MEMORY;
    return hash_table_init(&table->datagrams, 64);
}

static void reassembly_free(struct usock_stack *stack, struct reassembly *entry)
{
    struct fragment_table *table = &stack->fragments;
    timer_cancel(&stack->timers, &entry->timer);
    hash_table_remove(&table->datagrams, &entry->node);
    table->count--;
    table->bytes -= entry->bytes + entry->first_quote_length + entry->first_header_length;
    while (entry->pieces) {
        struct fragment_piece *next = entry->pieces->next;
        free(entry->pieces);
        entry->pieces = next;
    }
    free(entry->first_header);
    free(entry->first_quote);
    free(entry);
}

void fragment_table_destroy(struct usock_stack *stack)
{
    struct fragment_table *table = &stack->fragments;
    if (!table->datagrams.buckets)
        return;
    for (size_t i = 0; i < table->datagrams.bucket_count; i++)
        while (table->datagrams.buckets[i])
            reassembly_free(stack,
                            container_of(table->datagrams.buckets[i], struct reassembly, node));
    hash_table_destroy(&table->datagrams);
}

/* Drops a whole datagram for reason (a counter), counting the failure. */
static void reassembly_fail(struct usock_stack *stack, struct reassembly *entry,
                            enum counter_id reason)
{
    counter_add(stack, reason, 1);
    COUNT(stack, IpReasmFails);
    reassembly_free(stack, entry);
}

static void reassembly_timeout(struct usock_stack *stack, struct timer *timer, uint64_t now)
{
    struct reassembly *entry = container_of(timer, struct reassembly, timer);
    /* RFC 792: time exceeded, code 1, only if the first fragment came. */
    if (entry->first_quote)
        icmp_send_error(stack, entry->first_quote, entry->first_quote_length,
                        ICMP_TYPE_TIME_EXCEEDED, 1, 0, now);
    reassembly_fail(stack, entry, COUNTER_IpReasmTimeout);
}

static struct reassembly *reassembly_find(struct usock_stack *stack,
                                          const struct ipv4_header *header)
{
    uint64_t hash = reassembly_hash(stack, header->source, header->destination,
                                    header->identification, header->protocol);
    for (struct hash_node *node = hash_table_bucket(&stack->fragments.datagrams, hash); node;
         node = node->next) {
        struct reassembly *entry = container_of(node, struct reassembly, node);
        if (node->hash == hash && entry->source == header->source &&
            entry->destination == header->destination &&
            entry->identification == header->identification &&
            entry->protocol == header->protocol)
            return entry;
    }
    return NULL;
}

/* Smallest transport header a first fragment must carry (RFC 1858). */
static size_t transport_header_minimum(uint8_t protocol)
{
    switch (protocol) {
    case IPPROTO_TCP: return 20;
    case IPPROTO_UDP: return 8;
    case IPPROTO_ICMP: return 8;
    default: return 0;
    }
}

/* Builds the whole datagram and delivers it; frees the entry. */
static void reassembly_complete(struct usock_stack *stack, struct reassembly *entry,
                                bool from_loopback, uint64_t now)
{
    size_t header_length = entry->first_header_length;
    size_t total = header_length + (size_t)entry->total_length;
    if (total > IPV4_PACKET_MAX) {
        /* The first fragment's options made the whole too long, though
         * each piece fitted with its own header. */
        reassembly_fail(stack, entry, COUNTER_IpReasmOversize);
        return;
    }
    uint8_t *datagram = malloc(total);
    if (!datagram) {
        reassembly_fail(stack, entry, COUNTER_IpReasmMemoryDrops);
        return;
    }
    memcpy(datagram, entry->first_header, header_length);
    for (struct fragment_piece *piece = entry->pieces; piece; piece = piece->next)
        memcpy(datagram + header_length + piece->offset, piece->data, piece->length);
    /* The header now describes the whole datagram: no fragment fields. */
    datagram[2] = (uint8_t)(total >> 8);
    datagram[3] = (uint8_t)total;
    datagram[6] &= 0x40; /* keep DF, clear MF and the offset */
    datagram[7] = 0;
    reassembly_free(stack, entry);
    COUNT(stack, IpReasmOKs);
    ipv4_deliver_reassembled(stack, datagram, total, from_loopback, now);
    free(datagram);
}

static bool reassembly_is_complete(const struct reassembly *entry)
{
    if (entry->total_length < 0 || !entry->first_header)
        return false;
    int covered = 0;
    for (const struct fragment_piece *piece = entry->pieces; piece; piece = piece->next) {
        if (piece->offset > covered)
            return false;
        covered = piece->offset + piece->length;
    }
    return covered == entry->total_length;
}

void fragment_input(struct usock_stack *stack, const struct ipv4_header *header,
                    const uint8_t *packet, size_t length, bool from_loopback, uint64_t now)
{
    struct fragment_table *table = &stack->fragments;
    COUNT(stack, IpReasmReqds);
    size_t header_length = header->header_length;
    size_t payload_length = length - header_length;
    size_t offset = header->fragment_offset;
    const uint8_t *payload = packet + header_length;

    struct reassembly *entry = reassembly_find(stack, header);
    /* The datagram will carry the first fragment's header, once known. */
    size_t datagram_header_length =
        entry && entry->first_header ? entry->first_header_length : header_length;
    if (offset + payload_length + datagram_header_length > IPV4_PACKET_MAX) {
        /* Offset plus length past the largest datagram. */
        if (entry)
            reassembly_fail(stack, entry, COUNTER_IpReasmOversize);
        else {
            COUNT(stack, IpReasmOversize);
            COUNT(stack, IpReasmFails);
        }
        return;
    }
    if (!entry) {
        if (table->count >= REASSEMBLY_LIMIT) {
            COUNT(stack, IpReasmMemoryDrops);
            COUNT(stack, IpReasmFails);
            return;
        }
        entry = calloc(1, sizeof(*entry));
        if (!entry) {
            COUNT(stack, IpReasmMemoryDrops);
            COUNT(stack, IpReasmFails);
            return;
        }
        entry->source = header->source;
        entry->destination = header->destination;
        entry->identification = header->identification;
        entry->protocol = header->protocol;
        entry->total_length = -1;
        timer_init(&entry->timer, reassembly_timeout);
        hash_table_insert(&table->datagrams, &entry->node,
                          reassembly_hash(stack, header->source, header->destination,
                                          header->identification, header->protocol));
        table->count++;
        stack_timer_arm(stack, &entry->timer, now + REASSEMBLY_TIMEOUT_NS);
    }
    bool last = !header->more_fragments;
    if (payload_length == 0 || (!last && payload_length % 8 != 0)) {
        reassembly_fail(stack, entry, COUNTER_IpReasmMalformed);
        return;
    }
    if (offset == 0 && payload_length < transport_header_minimum(header->protocol)) {
        reassembly_fail(stack, entry, COUNTER_IpReasmTinyFirst);
        return;
    }
    if (last) {
        int total = (int)(offset + payload_length);
        if (entry->total_length >= 0 && entry->total_length != total) {
            reassembly_fail(stack, entry, COUNTER_IpReasmMalformed);
            return;
        }
        /* A piece already held past this end: the datagram contradicts
         * itself. */
        for (struct fragment_piece *piece = entry->pieces; piece; piece = piece->next) {
            if (piece->offset + piece->length > total) {
                reassembly_fail(stack, entry, COUNTER_IpReasmMalformed);
                return;
            }
        }
        entry->total_length = total;
    }
    if (entry->total_length >= 0 && (int)(offset + payload_length) > entry->total_length) {
        reassembly_fail(stack, entry, COUNTER_IpReasmMalformed);
        return;
    }
    /* Find the place; refuse overlaps, ignore exact duplicates. */
    struct fragment_piece **link = &entry->pieces;
    while (*link && (*link)->offset < offset)
        link = &(*link)->next;
    struct fragment_piece *next = *link;
    if (next && next->offset == offset && next->length == payload_length) {
        COUNT(stack, IpReasmDuplicates);
        return;
    }
    struct fragment_piece *previous = NULL;
    for (struct fragment_piece *piece = entry->pieces; piece != next; piece = piece->next)
        previous = piece;
    if ((previous && previous->offset + previous->length > offset) ||
        (next && offset + payload_length > next->offset)) {
        reassembly_fail(stack, entry, COUNTER_IpReasmOverlaps);
        return;
    }
    if (entry->piece_count >= FRAGMENTS_PER_DATAGRAM ||
        table->bytes + payload_length + length > table->memory_limit) {
        reassembly_fail(stack, entry, COUNTER_IpReasmMemoryDrops);
        return;
    }
    struct fragment_piece *piece = malloc(sizeof(*piece) + payload_length);
    if (!piece) {
        reassembly_fail(stack, entry, COUNTER_IpReasmMemoryDrops);
        return;
    }
    piece->offset = (uint16_t)offset;
    piece->length = (uint16_t)payload_length;
    memcpy(piece->data, payload, payload_length);
    piece->next = next;
    *link = piece;
    entry->piece_count++;
    entry->bytes += payload_length;
    table->bytes += payload_length;
    if (offset == 0) {
        entry->first_header = malloc(header_length);
        entry->first_quote = malloc(length);
        if (!entry->first_header || !entry->first_quote) {
            reassembly_fail(stack, entry, COUNTER_IpReasmMemoryDrops);
            return;
        }
        memcpy(entry->first_header, packet, header_length);
        entry->first_header_length = header_length;
        memcpy(entry->first_quote, packet, length);
        entry->first_quote_length = length;
        table->bytes += header_length + length;
    }
    if (reassembly_is_complete(entry))
        reassembly_complete(stack, entry, from_loopback, now);
}
