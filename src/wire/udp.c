/*
 * udp.c - UDP header parse and emit; see udp.h.
 */
#include "wire/udp.h"

#include "wire/bytes.h"
#include "wire/checksum.h"

enum udp_parse_result udp_parse(const uint8_t *datagram, size_t length, uint32_t source,
                                uint32_t destination, bool verify_checksum,
                                struct udp_header *out)
{
    if (length < UDP_HEADER_LENGTH)
        return UDP_PARSE_TRUNCATED;
    uint16_t udp_length = load_be16(datagram + 4);
    if (udp_length < UDP_HEADER_LENGTH || udp_length > length)
        return UDP_PARSE_BAD_LENGTH;
    uint16_t checksum = load_be16(datagram + 6);
    if (verify_checksum && checksum != 0) {
        uint32_t sum = checksum_pseudo_header(source, destination, 17, udp_length);
        if (checksum_finish(checksum_add(sum, datagram, udp_length)) != 0)
            return UDP_PARSE_BAD_CHECKSUM;
    }
    out->source_port = load_be16(datagram);
    out->destination_port = load_be16(datagram + 2);
    out->length = udp_length;
    out->checksum = checksum;
    return UDP_PARSE_OK;
}

size_t udp_emit(const struct udp_header *header, uint32_t source, uint32_t destination,
                uint8_t *out)
{
    store_be16(out, header->source_port);
    store_be16(out + 2, header->destination_port);
    store_be16(out + 4, header->length);
    store_be16(out + 6, 0);
    uint32_t sum = checksum_pseudo_header(source, destination, 17, header->length);
    uint16_t checksum = checksum_finish(checksum_add(sum, out, header->length));
    store_be16(out + 6, checksum ? checksum : 0xffff);
    return UDP_HEADER_LENGTH;
}
