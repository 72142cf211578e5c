/*
 * fragment.h - IPv4 reassembly; see fragment.c for the policy.
 */
#ifndef USOCK_NET_FRAGMENT_H
#define USOCK_NET_FRAGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/hash_table.h"
#include "wire/ipv4.h"

struct usock_stack;

#define REASSEMBLY_TIMEOUT_NS (30ULL * 1000 * 1000 * 1000)  /* Linux ipfrag_time */
#define REASSEMBLY_LIMIT 1024              /* datagrams in reassembly at once */
#define REASSEMBLY_MEMORY (4u << 20)       /* bytes held (Linux ipfrag_high_thresh) */
#define FRAGMENTS_PER_DATAGRAM 128

struct fragment_table {
    struct hash_table datagrams;
    size_t count;
    size_t bytes;
    size_t memory_limit; /* most bytes held (REASSEMBLY_MEMORY unless configured) */
};

int fragment_table_init(struct fragment_table *table);
void fragment_table_destroy(struct usock_stack *stack);

/* Takes one fragment addressed to us (packet borrowed, validated, trimmed
 * to its total length).  Delivers the datagram when it completes. */
void fragment_input(struct usock_stack *stack, const struct ipv4_header *header,
                    const uint8_t *packet, size_t length, bool from_loopback, uint64_t now);

#endif
