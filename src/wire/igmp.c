/*
 * igmp.c - IGMP parse and emit; see igmp.h.
 */
#include "wire/igmp.h"

#include "wire/bytes.h"
#include "wire/checksum.h"

enum igmp_parse_result igmp_parse(const uint8_t *message, size_t length, bool verify_checksum,
                                  struct igmp_message *out)
{
    if (length < IGMP_V2_LENGTH)
        return IGMP_PARSE_TRUNCATED;
    if (verify_checksum && checksum_finish(checksum_add(0, message, length)) != 0)
        return IGMP_PARSE_BAD_CHECKSUM;
    out->type = message[0];
    out->max_response_code = message[1];
    out->group = load_address(message + 4);
    out->is_v3_query = out->type == IGMP_TYPE_QUERY && length >= IGMP_V3_QUERY_MINIMUM;
    out->source_count = 0;
    if (out->is_v3_query) {
        out->source_count = load_be16(message + 10);
        if (IGMP_V3_QUERY_MINIMUM + (size_t)out->source_count * 4 > length)
            return IGMP_PARSE_TRUNCATED;
    }
    return IGMP_PARSE_OK;
}

uint64_t igmp_max_response_ns(const struct igmp_message *query)
{
    uint64_t tenths = query->max_response_code;
    if (query->is_v3_query && query->max_response_code >= 128) {
        /* RFC 3376 4.1.1: floating point, mant 4 bits, exp 3 bits. */
        uint64_t mantissa = query->max_response_code & 0x0f;
        uint64_t exponent = (query->max_response_code >> 4) & 0x07;
        tenths = (mantissa | 0x10) << (exponent + 3);
    }
    if (tenths == 0)
        tenths = 100; /* an IGMPv1 query: 10 s */
    return tenths * 100000000ULL;
}

size_t igmp_emit_v2(uint8_t type, uint32_t group, uint8_t *out)
{
    out[0] = type;
    out[1] = 0;
    store_be16(out + 2, 0);
    store_address(out + 4, group);
    store_be16(out + 2, checksum_finish(checksum_add(0, out, IGMP_V2_LENGTH)));
    return IGMP_V2_LENGTH;
}

size_t igmp_emit_v3_report(uint8_t record_type, uint32_t group, uint8_t *out)
{
    out[0] = IGMP_TYPE_V3_REPORT;
    out[1] = 0;
    store_be16(out + 2, 0);
    store_be16(out + 4, 0);
    store_be16(out + 6, 1);      /* one group record */
    out[8] = record_type;
    out[9] = 0;                  /* no auxiliary data */
    store_be16(out + 10, 0);     /* no sources */
    store_address(out + 12, group);
    store_be16(out + 2, checksum_finish(checksum_add(0, out, 16)));
    return 16;
}
