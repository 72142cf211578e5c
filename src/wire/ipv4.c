/*
 * ipv4.c - IPv4 header parse (validate, then read) and emit; see ipv4.h.
 */
#include "wire/ipv4.h"

#include <string.h>

#include "wire/bytes.h"
#include "wire/checksum.h"

/* Options are type-length-value, except End of List (0) and No Operation
 * (1) which are single bytes.  Each length must cover its own two bytes and
 * stay inside the header (the class of bug AMNESIA:33 and Ripple20 found). */
static bool ipv4_options_well_formed(const uint8_t *options, size_t length)
{
    size_t offset = 0;
    while (offset < length) {
        uint8_t type = options[offset];
        if (type == 0)
            return true;
        if (type == 1) {
            offset++;
            continue;
        }
        if (offset + 1 >= length)
            return false;
        uint8_t option_length = options[offset + 1];
        if (option_length < 2 || option_length > length - offset)
            return false;
        offset += option_length;
    }
    return true;
}

enum ipv4_parse_result ipv4_parse(const uint8_t *packet, size_t length, bool verify_checksum,
                                  struct ipv4_header *out)
{
    if (length < IPV4_HEADER_LENGTH)
        return IPV4_PARSE_TRUNCATED;
    if ((packet[0] >> 4) != 4)
        return IPV4_PARSE_BAD_VERSION;
    size_t header_length = (size_t)(packet[0] & 0x0f) * 4;
    if (header_length < IPV4_HEADER_LENGTH || header_length > length)
        return IPV4_PARSE_BAD_HEADER_LENGTH;
    uint16_t total_length = load_be16(packet + 2);
    if (total_length > length || total_length < header_length)
        return IPV4_PARSE_BAD_TOTAL_LENGTH;
    if (verify_checksum && checksum_finish(checksum_add(0, packet, header_length)) != 0)
        return IPV4_PARSE_BAD_CHECKSUM;
    if (header_length > IPV4_HEADER_LENGTH &&
        !ipv4_options_well_formed(packet + IPV4_HEADER_LENGTH, header_length - IPV4_HEADER_LENGTH))
        return IPV4_PARSE_BAD_OPTIONS;
    uint16_t fragment = load_be16(packet + 6);
    out->header_length = (uint8_t)header_length;
    out->type_of_service = packet[1];
    out->total_length = total_length;
    out->identification = load_be16(packet + 4);
    out->dont_fragment = (fragment & 0x4000) != 0;
    out->more_fragments = (fragment & 0x2000) != 0;
    out->fragment_offset = (uint16_t)((fragment & 0x1fff) * 8);
    out->time_to_live = packet[8];
    out->protocol = packet[9];
    out->checksum = load_be16(packet + 10);
    out->source = load_address(packet + 12);
    out->destination = load_address(packet + 16);
    return IPV4_PARSE_OK;
}

size_t ipv4_emit_with_options(const struct ipv4_header *header, const uint8_t *options,
                              size_t options_length, uint8_t *out)
{
    ipv4_emit(header, out);
    size_t header_length = IPV4_HEADER_LENGTH + options_length;
    memcpy(out + IPV4_HEADER_LENGTH, options, options_length);
    out[0] = (uint8_t)(0x40 | (header_length / 4));
    store_be16(out + 10, 0);
    store_be16(out + 10, checksum_finish(checksum_add(0, out, header_length)));
    return header_length;
}

size_t ipv4_emit(const struct ipv4_header *header, uint8_t *out)
{
    out[0] = 0x45;
    out[1] = header->type_of_service;
    store_be16(out + 2, header->total_length);
    store_be16(out + 4, header->identification);
    uint16_t fragment = (uint16_t)((header->fragment_offset / 8) & 0x1fff);
    if (header->dont_fragment)
        fragment |= 0x4000;
    if (header->more_fragments)
        fragment |= 0x2000;
    store_be16(out + 6, fragment);
    out[8] = header->time_to_live;
    out[9] = header->protocol;
    store_be16(out + 10, 0);
    store_address(out + 12, header->source);
    store_address(out + 16, header->destination);
    store_be16(out + 10, checksum_finish(checksum_add(0, out, IPV4_HEADER_LENGTH)));
    return IPV4_HEADER_LENGTH;
}
