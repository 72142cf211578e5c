/*
 * ethernet.h - Ethernet II header view.
 */
#ifndef USOCK_WIRE_ETHERNET_H
#define USOCK_WIRE_ETHERNET_H

#include <stddef.h>
#include <stdint.h>

#define ETHERNET_HEADER_LENGTH 14
#define ETHERNET_ADDRESS_LENGTH 6
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806
#define ETHERTYPE_VLAN 0x8100

struct ethernet_header {
    uint8_t destination[ETHERNET_ADDRESS_LENGTH];
    uint8_t source[ETHERNET_ADDRESS_LENGTH];
    uint16_t ethertype;
};

/* Parses the header of a frame of length bytes.  Returns 0, or -EINVAL when
 * the frame is shorter than a header. */
int ethernet_parse(const uint8_t *frame, size_t length, struct ethernet_header *out);
/* Writes the 14-byte header to out. */
void ethernet_emit(const struct ethernet_header *header, uint8_t *out);

static inline int ethernet_is_broadcast(const uint8_t address[6])
{
    return (address[0] & address[1] & address[2] & address[3] & address[4] & address[5]) == 0xff;
}

static inline int ethernet_is_multicast(const uint8_t address[6])
{
    return address[0] & 1;
}

#endif
