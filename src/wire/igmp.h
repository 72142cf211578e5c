/*
 * igmp.h - IGMP message view: IGMPv2 (RFC 2236) queries, reports and leaves,
 * and IGMPv3 (RFC 3376) queries and membership reports.
 */
#ifndef USOCK_WIRE_IGMP_H
#define USOCK_WIRE_IGMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IGMP_TYPE_QUERY 0x11
#define IGMP_TYPE_V1_REPORT 0x12
#define IGMP_TYPE_V2_REPORT 0x16
#define IGMP_TYPE_V2_LEAVE 0x17
#define IGMP_TYPE_V3_REPORT 0x22

#define IGMP_V2_LENGTH 8
#define IGMP_V3_QUERY_MINIMUM 12

/* IGMPv3 group record types (RFC 3376 4.2.12): current state, filter
 * mode change, source list change. */
#define IGMP_RECORD_MODE_IS_INCLUDE 1
#define IGMP_RECORD_MODE_IS_EXCLUDE 2
#define IGMP_RECORD_CHANGE_TO_INCLUDE 3
#define IGMP_RECORD_CHANGE_TO_EXCLUDE 4
#define IGMP_RECORD_ALLOW_NEW_SOURCES 5
#define IGMP_RECORD_BLOCK_OLD_SOURCES 6

#define IGMP_V3_REPORT_HEADER_LENGTH 8
#define IGMP_V3_RECORD_HEADER_LENGTH 8

struct igmp_message {
    uint8_t type;
    uint8_t max_response_code; /* tenths of a second (v2), or v3's encoding */
    uint32_t group;            /* network order */
    bool is_v3_query;          /* a query of 12 bytes or more */
    uint16_t source_count;     /* v3 query: sources listed */
    const uint8_t *sources;    /* v3 query: the list (borrowed); see igmp_query_source */
};

/* One group record of an IGMPv3 report: its type, group and sources
 * (network order; borrowed). */
struct igmp_record {
    uint8_t type;
    uint32_t group;
    const uint32_t *sources;
    unsigned source_count;
};

enum igmp_parse_result {
    IGMP_PARSE_OK = 0,
    IGMP_PARSE_TRUNCATED,
    IGMP_PARSE_BAD_CHECKSUM,
};

/* Parses the message (the IP payload, length bytes); checks the checksum
 * over all of it and, for v3 queries, that the listed sources fit. */
enum igmp_parse_result igmp_parse(const uint8_t *message, size_t length, bool verify_checksum,
                                  struct igmp_message *out);
/* Source index (below source_count) of a parsed v3 query, network order. */
uint32_t igmp_query_source(const struct igmp_message *query, unsigned index);
/* Max response time in nanoseconds from the query's code and version. */
uint64_t igmp_max_response_ns(const struct igmp_message *query);
/* Writes an 8-byte IGMPv2 report or leave for group.  Returns 8. */
size_t igmp_emit_v2(uint8_t type, uint32_t group, uint8_t *out);
/* Bytes an IGMPv3 report with these records takes. */
size_t igmp_v3_report_length(const struct igmp_record *records, unsigned count);
/* Writes an IGMPv3 report (RFC 3376 4.2) carrying count records into out,
 * which must hold igmp_v3_report_length bytes.  Returns that length. */
size_t igmp_emit_v3_report(const struct igmp_record *records, unsigned count, uint8_t *out);

#endif
