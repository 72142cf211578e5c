/*
 * ipv4.c - IPv4 input, routing and output; see ipv4.h.
 *
 * Receive path: ipv4_input validates (counting each failure by reason),
 * trims link padding to the total length, classifies the destination, drops
 * martians (127/8 or broadcast sources from the wire), drops fragments
 * (reassembly is not built yet; counted), then hands the packet to the
 * protocol's entry in ipv4_protocols[].
 *
 * Send path: ipv4_output routes, pushes the header into the buffer's
 * headroom and either queues the packet on the loopback queue (our own
 * addresses; delivered at the end of the API call or next poll, never
 * re-entrantly), or fragments it if needed and hands each piece to the
 * neighbour layer or the IP link.  Broadcasts also loop a copy back, so
 * local sockets see them as on Linux.
 */
#include "net/ipv4.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "net/arp.h"
#include "net/fragment.h"
#include "net/igmp.h"
#include "net/icmp.h"
#include "stack.h"
#include "raw.h"
#include "tcp/tcp.h"
#include "udp.h"
#include "util/siphash.h"
#include "wire/bytes.h"
#include "wire/ethernet.h"
#include "wire/icmp.h"

typedef void (*ipv4_protocol_input_fn)(struct usock_stack *stack,
                                       const struct ipv4_packet *packet, uint64_t now);

/* L3 to L4 dispatch, indexed by protocol number (4.4BSD ip_protox). */
static const ipv4_protocol_input_fn ipv4_protocols[256] = {
    [IPPROTO_ICMP] = icmp_input,
    [IPPROTO_UDP] = udp_input,
    [IPPROTO_TCP] = tcp_input,
    [IPPROTO_IGMP] = igmp_input,
};

enum address_kind ipv4_address_kind(const struct usock_stack *stack, uint32_t address)
{
    const struct interface *interface = &stack->interface;
    uint32_t host = ntohl(address);
    if (host == 0)
        return ADDRESS_ANY;
    if (host == 0xffffffffu)
        return ADDRESS_BROADCAST;
    if ((host >> 28) == 0xe)
        return ADDRESS_MULTICAST;
    if ((host >> 24) == 127)
        return ADDRESS_LOCAL;
    if (interface->address != 0) {
        if (address == interface->address)
            return ADDRESS_LOCAL;
        if (interface->prefix_length < 31 && address == interface->broadcast)
            return ADDRESS_BROADCAST;
    }
    return ADDRESS_OTHER;
}

int ipv4_route(const struct usock_stack *stack, uint32_t destination, struct ipv4_route *out)
{
    const struct interface *interface = &stack->interface;
    enum address_kind kind = ipv4_address_kind(stack, destination);
    memset(out, 0, sizeof(*out));
    out->next_hop = destination;
    if (kind == ADDRESS_LOCAL || kind == ADDRESS_ANY) {
        out->local = true;
        if (kind == ADDRESS_ANY)
            out->next_hop = destination = htonl(INADDR_LOOPBACK);
        /* Linux's lo routes prefer 127.0.0.1 as source. */
        out->source = ipv4_is_loopback(destination) ? htonl(INADDR_LOOPBACK) : interface->address;
        return 0;
    }
    if (!interface->link || interface->address == 0)
        return -ENETUNREACH;
    out->source = interface->address;
    /* As on Linux, 255.255.255.255 is routed by the default route: with no
     * gateway there is no route for it (ENETUNREACH). */
    if (destination == htonl(INADDR_BROADCAST) && interface->gateway == 0)
        return -ENETUNREACH;
    if (kind == ADDRESS_BROADCAST || kind == ADDRESS_MULTICAST) {
        out->broadcast = kind == ADDRESS_BROADCAST;
        return 0;
    }
    if ((destination & interface->netmask) == (interface->address & interface->netmask))
        return 0;
    if (interface->gateway == 0)
        return -ENETUNREACH;
    out->next_hop = interface->gateway;
    return 0;
}

/* Hands one finished IP packet (buffer consumed) to the link. */
static void ipv4_transmit(struct usock_stack *stack, struct packet_buffer *buffer,
                          uint32_t next_hop, uint64_t now)
{
    if (!stack->interface.ethernet) {
        stack_link_send(stack, buffer, now);
        packet_buffer_free(buffer);
        return;
    }
    enum address_kind kind = ipv4_address_kind(stack, next_hop);
    if (kind == ADDRESS_BROADCAST) {
        static const uint8_t broadcast_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        ethernet_output(stack, buffer, broadcast_mac, ETHERTYPE_IPV4, now);
        return;
    }
    if (kind == ADDRESS_MULTICAST) {
        /* RFC 1112 6.4: 01:00:5e and the low 23 bits of the group. */
        const uint8_t *group = (const uint8_t *)&next_hop;
        uint8_t mac[6] = {0x01, 0x00, 0x5e, (uint8_t)(group[1] & 0x7f), group[2], group[3]};
        ethernet_output(stack, buffer, mac, ETHERTYPE_IPV4, now);
        return;
    }
    if (arp_resolve_and_send(stack, buffer, next_hop, now) != 0)
        COUNT(stack, IpOutDiscards);
}

static void ipv4_loop_back(struct usock_stack *stack, struct packet_buffer *buffer)
{
    if (packet_queue_push(&stack->loopback, buffer) != 0)
        COUNT(stack, IpLoopbackOverflows);
    else
        stack_kick(stack);
}

/* Splits the packet in buffer (IP header of 20 bytes first) into fragments
 * of at most mtu bytes and transmits them (RFC 791 3.2).  Consumes buffer. */
static int ipv4_fragment(struct usock_stack *stack, struct packet_buffer *buffer,
                         const struct ipv4_header *header, uint32_t next_hop, uint64_t now)
{
    size_t payload_length = buffer->length - IPV4_HEADER_LENGTH;
    size_t piece = ((stack->interface.mtu - IPV4_HEADER_LENGTH) / 8) * 8;
    if (piece < 8) {
        packet_buffer_free(buffer);
        COUNT(stack, IpFragFails);
        return -EMSGSIZE;
    }
    const uint8_t *payload = buffer->data + IPV4_HEADER_LENGTH;
    for (size_t offset = 0; offset < payload_length; offset += piece) {
        size_t length = payload_length - offset < piece ? payload_length - offset : piece;
        struct packet_buffer *fragment = packet_buffer_new(PACKET_HEADROOM, length);
        if (!fragment) {
            packet_buffer_free(buffer);
            COUNT(stack, IpFragFails);
            return -ENOBUFS;
        }
        memcpy(packet_buffer_put(fragment, length), payload + offset, length);
        struct ipv4_header fragment_header = *header;
        fragment_header.total_length = (uint16_t)(IPV4_HEADER_LENGTH + length);
        fragment_header.fragment_offset = (uint16_t)offset;
        fragment_header.more_fragments = offset + length < payload_length;
        ipv4_emit(&fragment_header, packet_buffer_push(fragment, IPV4_HEADER_LENGTH));
        COUNT(stack, IpFragCreates);
        ipv4_transmit(stack, fragment, next_hop, now);
    }
    packet_buffer_free(buffer);
    COUNT(stack, IpFragOKs);
    return 0;
}

uint16_t ipv4_next_identification(struct usock_stack *stack, uint32_t source,
                                  uint32_t destination, uint8_t protocol)
{
    _Static_assert(IPV4_IDENTIFICATION_BUCKETS <= 256, "a bucket fits in a byte");
    struct ipv4_identification_cache *last = &stack->ip_identification_last;
    if (!last->valid || last->source != source || last->destination != destination ||
        last->protocol != protocol) {
        struct {
            uint32_t source, destination;
            uint8_t protocol;
            uint8_t padding[3];
        } key = {source, destination, protocol, {0, 0, 0}};
        uint64_t hash = siphash13(stack->secret, &key, sizeof(key));
        last->source = source;
        last->destination = destination;
        last->protocol = protocol;
        last->bucket = (uint8_t)(hash % IPV4_IDENTIFICATION_BUCKETS);
        last->valid = true;
    }
    return stack->ip_identifications[last->bucket]++;
}

int ipv4_output(struct usock_stack *stack, struct packet_buffer *buffer,
                const struct ipv4_send *send, uint64_t now)
{
    struct ipv4_route route;
    int error = ipv4_route(stack, send->destination, &route);
    if (error) {
        COUNT(stack, IpOutNoRoutes);
        packet_buffer_free(buffer);
        return error;
    }
    static const uint8_t router_alert[4] = {0x94, 0x04, 0x00, 0x00};
    size_t header_length = IPV4_HEADER_LENGTH + (send->router_alert ? sizeof(router_alert) : 0);
    size_t total = buffer->length + buffer->payload_length + header_length;
    if (total > IPV4_PACKET_MAX) {
        packet_buffer_free(buffer);
        return -EMSGSIZE;
    }
    COUNT(stack, IpOutRequests);
    struct ipv4_header header = {
        .type_of_service = send->type_of_service,
        .total_length = (uint16_t)total,
        .identification = ipv4_next_identification(
            stack, send->source ? send->source : route.source, send->destination, send->protocol),
        .dont_fragment = send->dont_fragment,
        .time_to_live = send->time_to_live,
        .protocol = send->protocol,
        .source = send->source ? send->source : route.source,
        .destination = send->destination,
    };
    if (route.local && header.destination == 0)
        header.destination = route.next_hop;
    if (send->router_alert)
        ipv4_emit_with_options(&header, router_alert, sizeof(router_alert),
                               packet_buffer_push(buffer, header_length));
    else
        ipv4_emit(&header, packet_buffer_push(buffer, IPV4_HEADER_LENGTH));
    if (route.local) {
        buffer = packet_buffer_linearize(buffer);
        if (!buffer)
            return -ENOBUFS;
        ipv4_loop_back(stack, buffer);
        return 0;
    }
    bool multicast = ipv4_address_kind(stack, header.destination) == ADDRESS_MULTICAST;
    if ((route.broadcast || (multicast && send->multicast_loop &&
                             igmp_accepts(stack, header.destination, header.source)))) {
        buffer = packet_buffer_linearize(buffer);
        if (!buffer)
            return -ENOBUFS;
        struct packet_buffer *copy = packet_buffer_copy(buffer->data, buffer->length);
        if (copy)
            ipv4_loop_back(stack, copy);
    }
    /* A TCP super-segment is cut by the link, never fragmented. */
    if (total > stack->interface.mtu && buffer->segment_size == 0) {
        if (send->dont_fragment || header_length != IPV4_HEADER_LENGTH) {
            packet_buffer_free(buffer);
            COUNT(stack, IpFragFails);
            return -EMSGSIZE;
        }
        buffer = packet_buffer_linearize(buffer);
        if (!buffer)
            return -ENOBUFS;
        return ipv4_fragment(stack, buffer, &header, route.next_hop, now);
    }
    ipv4_transmit(stack, buffer, route.next_hop, now);
    return 0;
}

int ipv4_output_prebuilt(struct usock_stack *stack, struct packet_buffer *buffer,
                         uint32_t route_destination, uint64_t now)
{
    struct ipv4_route route;
    int error = ipv4_route(stack, route_destination, &route);
    if (error) {
        COUNT(stack, IpOutNoRoutes);
        packet_buffer_free(buffer);
        return error;
    }
    COUNT(stack, IpOutRequests);
    if (route.local) {
        ipv4_loop_back(stack, buffer);
        return 0;
    }
    if (buffer->length > stack->interface.mtu) {
        /* A caller-built header is sent as it is, never fragmented. */
        packet_buffer_free(buffer);
        COUNT(stack, IpFragFails);
        return -EMSGSIZE;
    }
    if (route.broadcast) {
        struct packet_buffer *copy = packet_buffer_copy(buffer->data, buffer->length);
        if (copy)
            ipv4_loop_back(stack, copy);
    }
    ipv4_transmit(stack, buffer, route.next_hop, now);
    return 0;
}

static void ipv4_count_parse_failure(struct usock_stack *stack, enum ipv4_parse_result result)
{
    switch (result) {
    case IPV4_PARSE_TRUNCATED: COUNT(stack, IpInTruncated); break;
    case IPV4_PARSE_BAD_VERSION: COUNT(stack, IpInBadVersion); break;
    case IPV4_PARSE_BAD_HEADER_LENGTH: COUNT(stack, IpInBadHeaderLength); break;
    case IPV4_PARSE_BAD_TOTAL_LENGTH: COUNT(stack, IpInBadTotalLength); break;
    case IPV4_PARSE_BAD_CHECKSUM: COUNT(stack, IpInCsumErrors); break;
    case IPV4_PARSE_BAD_OPTIONS: COUNT(stack, IpInBadOptions); break;
    case IPV4_PARSE_OK: return;
    }
    /* The reason counters above say why; IpInHdrErrors counts them all. */
    COUNT(stack, IpInHdrErrors);
}

static void ipv4_deliver(struct usock_stack *stack, const struct ipv4_packet *packet_in,
                         uint64_t now);

void ipv4_input(struct usock_stack *stack, const uint8_t *packet, size_t length,
                bool from_loopback, uint64_t now)
{
    struct ipv4_packet in;
    COUNT(stack, IpInReceives);
    enum ipv4_parse_result result =
        ipv4_parse(packet, length, stack->verify_checksums && !from_loopback, &in.header);
    if (result != IPV4_PARSE_OK) {
        ipv4_count_parse_failure(stack, result);
        return;
    }
    /* RFC 1122 3.3.5 / 1812 5.2.2: ignore link padding past the total length. */
    in.packet = packet;
    in.length = in.header.total_length;
    in.payload = packet + in.header.header_length;
    in.payload_length = in.length - in.header.header_length;
    in.from_loopback = from_loopback;
    in.destination_kind = ipv4_address_kind(stack, in.header.destination);

    enum address_kind source_kind = ipv4_address_kind(stack, in.header.source);
    /* Martians: a source no host may use, or our own address coming back
     * from the wire (RFC 1122 3.2.1.3, Linux's martian source checks). */
    if (!from_loopback &&
        (source_kind == ADDRESS_BROADCAST || source_kind == ADDRESS_MULTICAST ||
         source_kind == ADDRESS_LOCAL || ipv4_is_loopback(in.header.destination) ||
         (source_kind == ADDRESS_ANY && in.header.protocol != IPPROTO_UDP))) {
        COUNT(stack, IpInMartians);
        COUNT(stack, IpInAddrErrors);
        return;
    }
    if (in.destination_kind != ADDRESS_LOCAL && in.destination_kind != ADDRESS_BROADCAST &&
        in.destination_kind != ADDRESS_MULTICAST) {
        COUNT(stack, IpInAddrErrors);
        return;
    }
    /* The interface's multicast filter: IGMP about any group it is in,
     * else only the sources its sockets want (RFC 3376 3.2). */
    if (in.destination_kind == ADDRESS_MULTICAST &&
        !(in.header.protocol == IPPROTO_IGMP ? igmp_is_member(stack, in.header.destination)
                                             : igmp_accepts(stack, in.header.destination,
                                                            in.header.source))) {
        COUNT(stack, IpInMulticastFiltered);
        return;
    }
    if (ipv4_is_fragment(&in.header)) {
        fragment_input(stack, &in.header, packet, in.length, from_loopback, now);
        return;
    }
    ipv4_deliver(stack, &in, now);
}

void ipv4_deliver_reassembled(struct usock_stack *stack, const uint8_t *packet, size_t length,
                              bool from_loopback, uint64_t now)
{
    struct ipv4_packet in;
    /* What the link vouched for was the last fragment, not the whole. */
    stack->input_checksum_verified = false;
    if (ipv4_parse(packet, length, false, &in.header) != IPV4_PARSE_OK)
        return;
    in.packet = packet;
    in.length = in.header.total_length;
    in.payload = packet + in.header.header_length;
    in.payload_length = in.length - in.header.header_length;
    in.from_loopback = from_loopback;
    in.destination_kind = ipv4_address_kind(stack, in.header.destination);
    ipv4_deliver(stack, &in, now);
}

/* Hands a whole datagram to raw sockets and to its protocol. */
static void ipv4_deliver(struct usock_stack *stack, const struct ipv4_packet *packet_in,
                         uint64_t now)
{
    const struct ipv4_packet in = *packet_in;
    const uint8_t *packet = in.packet;
    bool raw_took_it = raw_deliver(stack, &in);
    ipv4_protocol_input_fn handler = ipv4_protocols[in.header.protocol];
    if (!handler) {
        if (raw_took_it) {
            COUNT(stack, IpInDelivers);
            return;
        }
        COUNT(stack, IpInUnknownProtos);
        if (in.destination_kind == ADDRESS_LOCAL)
            icmp_send_error(stack, packet, in.length, ICMP_TYPE_DESTINATION_UNREACHABLE,
                            ICMP_CODE_PROTOCOL_UNREACHABLE, 0, now);
        return;
    }
    COUNT(stack, IpInDelivers);
    handler(stack, &in, now);
}
