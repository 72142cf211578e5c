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
    out->sources = NULL;
    if (out->is_v3_query) {
        out->source_count = load_be16(message + 10);
        out->sources = message + IGMP_V3_QUERY_MINIMUM;
        if (IGMP_V3_QUERY_MINIMUM + (size_t)out->source_count * 4 > length)
            return IGMP_PARSE_TRUNCATED;
    }
    return IGMP_PARSE_OK;
}

uint32_t igmp_query_source(const struct igmp_message *query, unsigned index)
{
    /* igmp_parse checked that source_count addresses fit. */
    return load_address(query->sources + (size_t)index * 4);
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

size_t igmp_v3_report_length(const struct igmp_record *records, unsigned count)
{
    size_t length = IGMP_V3_REPORT_HEADER_LENGTH;
    for (unsigned i = 0; i < count; i++)
        length += IGMP_V3_RECORD_HEADER_LENGTH + (size_t)records[i].source_count * 4;
    return length;
}

size_t igmp_emit_v3_report(const struct igmp_record *records, unsigned count, uint8_t *out)
{
    out[0] = IGMP_TYPE_V3_REPORT;
    out[1] = 0;
    store_be16(out + 2, 0);
    store_be16(out + 4, 0);
    store_be16(out + 6, (uint16_t)count);
    size_t offset = IGMP_V3_REPORT_HEADER_LENGTH;
    for (unsigned i = 0; i < count; i++) {
        out[offset] = records[i].type;
        out[offset + 1] = 0;     /* no auxiliary data */
        store_be16(out + offset + 2, (uint16_t)records[i].source_count);
        store_address(out + offset + 4, records[i].group);
        offset += IGMP_V3_RECORD_HEADER_LENGTH;
        for (unsigned j = 0; j < records[i].source_count; j++, offset += 4)
            store_address(out + offset, records[i].sources[j]);
    }
    store_be16(out + 2, checksum_finish(checksum_add(0, out, offset)));
    return offset;
}
