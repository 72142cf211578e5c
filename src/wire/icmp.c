/*
 * icmp.c - ICMPv4 header parse and emit; see icmp.h.
 */
#include "wire/icmp.h"

#include "wire/bytes.h"
#include "wire/checksum.h"

enum icmp_parse_result icmp_parse(const uint8_t *message, size_t length, bool verify_checksum,
                                  struct icmp_header *out)
{
    if (length < ICMP_HEADER_LENGTH)
        return ICMP_PARSE_TRUNCATED;
    if (verify_checksum && checksum_finish(checksum_add(0, message, length)) != 0)
        return ICMP_PARSE_BAD_CHECKSUM;
    out->type = message[0];
    out->code = message[1];
    out->checksum = load_be16(message + 2);
    out->rest = load_be32(message + 4);
    return ICMP_PARSE_OK;
}

size_t icmp_emit(const struct icmp_header *header, uint8_t *out, size_t body_length)
{
    out[0] = header->type;
    out[1] = header->code;
    store_be16(out + 2, 0);
    store_be32(out + 4, header->rest);
    uint16_t checksum = checksum_finish(checksum_add(0, out, ICMP_HEADER_LENGTH + body_length));
    store_be16(out + 2, checksum);
    return ICMP_HEADER_LENGTH;
}
