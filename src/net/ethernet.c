/*
 * ethernet.c - Ethernet II input and output.
 *
 * Input accepts frames addressed to our MAC, to broadcast, or to a
 * multicast group address, and dispatches by EtherType (IPv4, ARP; one
 * 802.1Q tag is skipped).  Everything else is dropped and counted.  Output
 * prepends the 14-byte header into the buffer's headroom and writes the
 * frame to the link.
 */
#include <string.h>

#include "net/arp.h"
#include "net/ipv4.h"
#include "stack.h"
#include "wire/bytes.h"
#include "wire/ethernet.h"

void ethernet_input(struct usock_stack *stack, const uint8_t *frame, size_t length,
                    uint64_t now)
{
    struct ethernet_header header;
    if (ethernet_parse(frame, length, &header) != 0) {
        COUNT(stack, EthInRunts);
        return;
    }
    if (memcmp(header.destination, stack->interface.mac, 6) != 0 &&
        !ethernet_is_broadcast(header.destination) && !ethernet_is_multicast(header.destination)) {
        COUNT(stack, EthInNotForUs);
        return;
    }
    const uint8_t *payload = frame + ETHERNET_HEADER_LENGTH;
    size_t payload_length = length - ETHERNET_HEADER_LENGTH;
    uint16_t ethertype = header.ethertype;
    if (ethertype == ETHERTYPE_VLAN) {
        if (payload_length < 4) {
            COUNT(stack, EthInRunts);
            return;
        }
        ethertype = load_be16(payload + 2);
        payload += 4;
        payload_length -= 4;
    }
    switch (ethertype) {
    case ETHERTYPE_IPV4:
        ipv4_input(stack, payload, payload_length, false, now);
        break;
    case ETHERTYPE_ARP:
        arp_input(stack, payload, payload_length, now);
        break;
    default:
        COUNT(stack, EthInUnknownTypes);
        break;
    }
}

void ethernet_output(struct usock_stack *stack, struct packet_buffer *buffer,
                     const uint8_t destination_mac[6], uint16_t ethertype, uint64_t now)
{
    struct ethernet_header header;
    memcpy(header.destination, destination_mac, 6);
    memcpy(header.source, stack->interface.mac, 6);
    header.ethertype = ethertype;
    ethernet_emit(&header, packet_buffer_push(buffer, ETHERNET_HEADER_LENGTH));
    stack_link_send(stack, buffer, now);
    packet_buffer_free(buffer);
}
