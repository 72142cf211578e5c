/*
 * arp.h - ARP packet view for Ethernet/IPv4 (RFC 826): hardware type 1,
 * protocol type 0x0800, address lengths 6 and 4.  Other combinations are
 * reported as unsupported so the caller can count them.
 */
#ifndef USOCK_WIRE_ARP_H
#define USOCK_WIRE_ARP_H

#include <stddef.h>
#include <stdint.h>

#define ARP_PACKET_LENGTH 28
#define ARP_OPERATION_REQUEST 1
#define ARP_OPERATION_REPLY 2

struct arp_packet {
    uint16_t operation;
    uint8_t sender_mac[6];
    uint32_t sender_address; /* network order */
    uint8_t target_mac[6];
    uint32_t target_address; /* network order */
};

enum arp_parse_result {
    ARP_PARSE_OK = 0,
    ARP_PARSE_TRUNCATED,
    ARP_PARSE_UNSUPPORTED, /* not Ethernet/IPv4, or an unknown operation */
};

/* Parses an ARP packet (the bytes after the Ethernet header). */
enum arp_parse_result arp_parse(const uint8_t *packet, size_t length, struct arp_packet *out);
/* Writes the 28-byte packet to out. */
void arp_emit(const struct arp_packet *packet, uint8_t *out);

#endif
