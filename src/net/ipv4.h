/*
 * ipv4.h - IPv4 input, output and routing.
 *
 * Input validates the header (wire/ipv4.c), trims link padding, checks the
 * destination is ours (the interface address, 127.0.0.0/8 via loopback, the
 * limited or directed broadcast), and dispatches through a table indexed by
 * protocol number.  Output picks a route (loopback for our own addresses,
 * on-link for the interface's subnet, else the default gateway), fills the
 * header, fragments when the packet exceeds the MTU and DF is clear, and
 * hands the packet to the neighbour layer (Ethernet) or the link (TUN).
 */
#ifndef USOCK_NET_IPV4_H
#define USOCK_NET_IPV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/packet_buffer.h"
#include "wire/ipv4.h"

struct usock_stack;

#define IPV4_DEFAULT_TTL 64
#define LOOPBACK_QUEUE_LIMIT 4096
#define IPV4_IDENTIFICATION_BUCKETS 256

/* The last flow ipv4_next_identification hashed, and its bucket: a run of
 * datagrams to one place (a TCP transfer) hashes once, not per packet. */
struct ipv4_identification_cache {
    uint32_t source, destination;
    uint8_t protocol;
    bool valid;
    uint8_t bucket; /* < IPV4_IDENTIFICATION_BUCKETS */
};

enum address_kind {
    ADDRESS_OTHER,       /* not ours */
    ADDRESS_LOCAL,       /* the interface address or 127.0.0.0/8 */
    ADDRESS_BROADCAST,   /* 255.255.255.255 or the directed broadcast */
    ADDRESS_MULTICAST,   /* 224.0.0.0/4 */
    ADDRESS_ANY,         /* 0.0.0.0 */
};

/* Classifies address (network order) as seen from this stack. */
enum address_kind ipv4_address_kind(const struct usock_stack *stack, uint32_t address);

static inline bool ipv4_is_loopback(uint32_t address)
{
    return (((const uint8_t *)&address)[0]) == 127;
}

struct ipv4_route {
    uint32_t source;    /* the address to send from */
    uint32_t next_hop;  /* whom to hand the frame to */
    bool local;         /* delivered inside the stack */
    bool broadcast;     /* a broadcast destination */
};

/* Finds the route to destination.  Returns 0, or -ENETUNREACH. */
int ipv4_route(const struct usock_stack *stack, uint32_t destination, struct ipv4_route *out);

struct ipv4_send {
    uint32_t source;       /* 0: take the route's */
    uint32_t destination;
    uint8_t protocol;
    uint8_t time_to_live;
    uint8_t type_of_service;
    bool dont_fragment;
    bool router_alert;       /* add the Router Alert option (RFC 2113), for IGMP */
    bool multicast_loop;     /* loop a multicast copy to ourselves when a member */
};

/* Sends the transport packet in buffer (consumed; data starts at the
 * transport header; PACKET_HEADROOM in front).  Returns 0 or -errno
 * (-ENETUNREACH, -EMSGSIZE when DF is set and it does not fit, -ENOBUFS). */
/* The identification field for a datagram from source to destination
 * carrying protocol: the next value of that flow's counter (one of
 * IPV4_IDENTIFICATION_BUCKETS, chosen by a keyed hash). */
uint16_t ipv4_next_identification(struct usock_stack *stack, uint32_t source,
                                  uint32_t destination, uint8_t protocol);
int ipv4_output(struct usock_stack *stack, struct packet_buffer *buffer,
                const struct ipv4_send *send, uint64_t now);

/* A received packet as the transports see it (everything borrowed). */
struct ipv4_packet {
    struct ipv4_header header;
    const uint8_t *packet;        /* the IP header onward */
    size_t length;                /* header.total_length */
    const uint8_t *payload;       /* the transport header onward */
    size_t payload_length;
    enum address_kind destination_kind;
    bool from_loopback;
};

/* An ICMP error as handed to the transport whose packet it quotes. */
struct ipv4_error {
    uint8_t type;
    uint8_t code;
    uint32_t info;                /* e.g. next-hop MTU */
    uint32_t reporter;            /* who sent the ICMP message (network order) */
    struct ipv4_header quoted;    /* the header of our packet */
    const uint8_t *quoted_packet; /* the quote from its IP header on */
    size_t quoted_length;
    const uint8_t *quoted_payload;/* at least 8 bytes of its transport header */
    size_t quoted_payload_length;
};

/* Sends a packet whose IP header the caller built (buffer consumed; data
 * starts at the header), routed towards route_destination.  Returns 0 or
 * -errno (-EMSGSIZE when over the MTU: such packets are not fragmented). */
int ipv4_output_prebuilt(struct usock_stack *stack, struct packet_buffer *buffer,
                         uint32_t route_destination, uint64_t now);

/* Handles one received IP packet (borrowed).  from_loopback marks packets
 * the stack sent to itself. */
void ipv4_input(struct usock_stack *stack, const uint8_t *packet, size_t length,
                bool from_loopback, uint64_t now);

/* Delivers a datagram reassembly completed (borrowed; its header already
 * describes the whole datagram). */
void ipv4_deliver_reassembled(struct usock_stack *stack, const uint8_t *packet, size_t length,
                              bool from_loopback, uint64_t now);

/* Ethernet input: one frame (borrowed) from the link. */
void ethernet_input(struct usock_stack *stack, const uint8_t *frame, size_t length,
                    uint64_t now);
/* Pushes an Ethernet header for destination_mac onto buffer and sends it
 * (buffer consumed). */
void ethernet_output(struct usock_stack *stack, struct packet_buffer *buffer,
                     const uint8_t destination_mac[6], uint16_t ethertype, uint64_t now);

#endif
