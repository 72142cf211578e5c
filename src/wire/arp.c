/*
 * arp.c - ARP packet parse and emit for Ethernet/IPv4; see arp.h.
 */
#include "wire/arp.h"

#include <string.h>

#include "wire/bytes.h"

enum arp_parse_result arp_parse(const uint8_t *packet, size_t length, struct arp_packet *out)
{
    if (length < ARP_PACKET_LENGTH)
        return ARP_PARSE_TRUNCATED;
    if (load_be16(packet) != 1 || load_be16(packet + 2) != 0x0800 || packet[4] != 6 ||
        packet[5] != 4)
        return ARP_PARSE_UNSUPPORTED;
    out->operation = load_be16(packet + 6);
    if (out->operation != ARP_OPERATION_REQUEST && out->operation != ARP_OPERATION_REPLY)
        return ARP_PARSE_UNSUPPORTED;
    memcpy(out->sender_mac, packet + 8, 6);
    out->sender_address = load_address(packet + 14);
    memcpy(out->target_mac, packet + 18, 6);
    out->target_address = load_address(packet + 24);
    return ARP_PARSE_OK;
}

void arp_emit(const struct arp_packet *packet, uint8_t *out)
{
    store_be16(out, 1);
    store_be16(out + 2, 0x0800);
    out[4] = 6;
    out[5] = 4;
    store_be16(out + 6, packet->operation);
    memcpy(out + 8, packet->sender_mac, 6);
    store_address(out + 14, packet->sender_address);
    memcpy(out + 18, packet->target_mac, 6);
    store_address(out + 24, packet->target_address);
}
