/*
 * fuzz_parsers.c - libFuzzer target: every wire parser of src/wire/ (and
 * the impairment spec parser of src/link/impair.c) fed the input directly.
 *
 * The first byte picks the parser (enum parser_choice in fuzz_world.h).
 * Each parser's input is copied to a buffer of exactly its length, so
 * AddressSanitizer catches a read one byte past it.  Where a parse
 * succeeds the result must hold what the header promises (lengths within
 * the bytes given), and writing it back with the matching emit function
 * and parsing that again, checksum verified, must give the same fields: a
 * parser and an emitter that disagree abort.  The checksum is checked for
 * the property every other parser leans on: a sum over a buffer cut in two
 * at an even offset equals the sum over the whole, and a buffer holding its
 * own checksum sums to zero.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_world.h"
#include "wire/arp.h"
#include "wire/bytes.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/icmp.h"
#include "wire/igmp.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"
#include "wire/udp.h"

#define EXPECT(condition)                                                                 \
    do {                                                                                  \
        if (!(condition)) {                                                               \
            fprintf(stderr, "fuzz_parsers: %s:%d: expected %s\n", __FILE__, __LINE__,     \
                    #condition);                                                          \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* The pseudo-header addresses UDP and TCP take from the input. */
struct addresses {
    uint32_t source;
    uint32_t destination;
};

static void parse_ethernet(const uint8_t *frame, size_t length)
{
    struct ethernet_header header;
    if (ethernet_parse(frame, length, &header) != 0) {
        EXPECT(length < ETHERNET_HEADER_LENGTH);
        return;
    }
    uint8_t written[ETHERNET_HEADER_LENGTH];
    ethernet_emit(&header, written);
    EXPECT(memcmp(written, frame, ETHERNET_HEADER_LENGTH) == 0);
}

static void parse_arp(const uint8_t *packet, size_t length)
{
    struct arp_packet parsed, again;
    if (arp_parse(packet, length, &parsed) != ARP_PARSE_OK)
        return;
    EXPECT(length >= ARP_PACKET_LENGTH);
    uint8_t written[ARP_PACKET_LENGTH];
    arp_emit(&parsed, written);
    EXPECT(arp_parse(written, sizeof(written), &again) == ARP_PARSE_OK);
    EXPECT(again.operation == parsed.operation);
    EXPECT(memcmp(again.sender_mac, parsed.sender_mac, 6) == 0);
    EXPECT(memcmp(again.target_mac, parsed.target_mac, 6) == 0);
    EXPECT(again.sender_address == parsed.sender_address);
    EXPECT(again.target_address == parsed.target_address);
}

static void parse_ipv4(const uint8_t *packet, size_t length)
{
    struct ipv4_header parsed, again;
    enum ipv4_parse_result verified = ipv4_parse(packet, length, true, &parsed);
    if (ipv4_parse(packet, length, false, &parsed) != IPV4_PARSE_OK) {
        EXPECT(verified != IPV4_PARSE_OK);
        return;
    }
    EXPECT(parsed.header_length >= IPV4_HEADER_LENGTH && parsed.header_length <= IPV4_HEADER_MAX);
    EXPECT(parsed.header_length % 4 == 0);
    EXPECT(parsed.total_length >= parsed.header_length && parsed.total_length <= length);
    uint8_t written[IPV4_HEADER_MAX];
    size_t options_length = parsed.header_length - IPV4_HEADER_LENGTH;
    size_t written_length = ipv4_emit_with_options(&parsed, packet + IPV4_HEADER_LENGTH,
                                                   options_length, written);
    EXPECT(written_length == parsed.header_length);
    /* The header alone, with the total length it names beyond it: parse
     * wants the bytes, so hand it the rest of the packet. */
    uint8_t *whole = malloc(parsed.total_length);
    if (!whole)
        abort();
    memcpy(whole, packet, parsed.total_length);
    memcpy(whole, written, written_length);
    EXPECT(ipv4_parse(whole, parsed.total_length, true, &again) == IPV4_PARSE_OK);
    free(whole);
    EXPECT(again.header_length == parsed.header_length);
    EXPECT(again.type_of_service == parsed.type_of_service);
    EXPECT(again.total_length == parsed.total_length);
    EXPECT(again.identification == parsed.identification);
    EXPECT(again.dont_fragment == parsed.dont_fragment);
    EXPECT(again.more_fragments == parsed.more_fragments);
    EXPECT(again.fragment_offset == parsed.fragment_offset);
    EXPECT(again.time_to_live == parsed.time_to_live);
    EXPECT(again.protocol == parsed.protocol);
    EXPECT(again.source == parsed.source && again.destination == parsed.destination);
}

static void parse_icmp(const uint8_t *message, size_t length)
{
    struct icmp_header parsed, again;
    if (icmp_parse(message, length, false, &parsed) != ICMP_PARSE_OK)
        return;
    EXPECT(length >= ICMP_HEADER_LENGTH);
    uint8_t *written = malloc(length);
    if (!written)
        abort();
    memcpy(written, message, length);
    icmp_emit(&parsed, written, length - ICMP_HEADER_LENGTH);
    EXPECT(icmp_parse(written, length, true, &again) == ICMP_PARSE_OK);
    EXPECT(again.type == parsed.type && again.code == parsed.code && again.rest == parsed.rest);
    free(written);
}

static void parse_udp(const struct addresses *addresses, const uint8_t *datagram, size_t length)
{
    struct udp_header parsed, again;
    enum udp_parse_result verified =
        udp_parse(datagram, length, addresses->source, addresses->destination, true, &parsed);
    if (udp_parse(datagram, length, addresses->source, addresses->destination, false, &parsed) !=
        UDP_PARSE_OK) {
        EXPECT(verified != UDP_PARSE_OK);
        return;
    }
    EXPECT(parsed.length >= UDP_HEADER_LENGTH && parsed.length <= length);
    uint8_t *written = malloc(parsed.length);
    if (!written)
        abort();
    memcpy(written, datagram, parsed.length);
    udp_emit(&parsed, addresses->source, addresses->destination, written);
    EXPECT(udp_parse(written, parsed.length, addresses->source, addresses->destination, true,
                     &again) == UDP_PARSE_OK);
    EXPECT(again.source_port == parsed.source_port);
    EXPECT(again.destination_port == parsed.destination_port);
    EXPECT(again.length == parsed.length);
    free(written);
}

static void parse_tcp(const struct addresses *addresses, const uint8_t *segment, size_t length)
{
    struct tcp_header parsed, again;
    enum tcp_parse_result verified =
        tcp_parse(segment, length, addresses->source, addresses->destination, true, &parsed);
    if (tcp_parse(segment, length, addresses->source, addresses->destination, false, &parsed) !=
        TCP_PARSE_OK) {
        EXPECT(verified != TCP_PARSE_OK);
        return;
    }
    EXPECT(parsed.header_length >= TCP_HEADER_LENGTH && parsed.header_length <= length);
    EXPECT(parsed.header_length <= TCP_HEADER_MAX);
    EXPECT(parsed.options.sack_block_count <= TCP_SACK_BLOCKS_MAX);
    size_t options_length = tcp_options_length(&parsed.options);
    EXPECT(options_length <= TCP_HEADER_MAX - TCP_HEADER_LENGTH && options_length % 4 == 0);
    /* Written back with the same payload, the segment parses (checksum
     * verified) to the same fields; SACK blocks that do not fit beside the
     * other options are dropped from the end. */
    size_t payload_length = length - parsed.header_length;
    size_t written_length = TCP_HEADER_LENGTH + options_length + payload_length;
    uint8_t *written = malloc(written_length);
    if (!written)
        abort();
    memcpy(written + TCP_HEADER_LENGTH + options_length, segment + parsed.header_length,
           payload_length);
    size_t header_length = tcp_emit(&parsed, addresses->source, addresses->destination, written,
                                    payload_length);
    EXPECT(header_length == TCP_HEADER_LENGTH + options_length);
    EXPECT(tcp_parse(written, written_length, addresses->source, addresses->destination, true,
                     &again) == TCP_PARSE_OK);
    free(written);
    EXPECT(again.source_port == parsed.source_port);
    EXPECT(again.destination_port == parsed.destination_port);
    EXPECT(again.sequence == parsed.sequence && again.acknowledgment == parsed.acknowledgment);
    /* The reserved bits of byte 12 are not kept; the flags are. */
    EXPECT(again.flags == parsed.flags && again.window == parsed.window);
    EXPECT(again.urgent_pointer == parsed.urgent_pointer);
    const struct tcp_options *before = &parsed.options, *after = &again.options;
    EXPECT(after->has_mss == before->has_mss && (!before->has_mss || after->mss == before->mss));
    EXPECT(after->has_window_scale == before->has_window_scale &&
           (!before->has_window_scale || after->window_scale == before->window_scale));
    EXPECT(after->sack_permitted == before->sack_permitted);
    EXPECT(after->has_timestamps == before->has_timestamps);
    if (before->has_timestamps)
        EXPECT(after->timestamp_value == before->timestamp_value &&
               after->timestamp_echo == before->timestamp_echo);
    EXPECT(after->sack_block_count <= before->sack_block_count);
    for (unsigned i = 0; i < after->sack_block_count; i++)
        EXPECT(after->sack_blocks[i].left == before->sack_blocks[i].left &&
               after->sack_blocks[i].right == before->sack_blocks[i].right);
}

#define IGMP_RECORDS_MAX 4
#define IGMP_SOURCES_MAX 16

static void parse_igmp(const uint8_t *message, size_t length)
{
    struct igmp_message parsed;
    if (igmp_parse(message, length, false, &parsed) == IGMP_PARSE_OK) {
        EXPECT(length >= IGMP_V2_LENGTH);
        uint32_t sum = 0;
        for (unsigned i = 0; i < parsed.source_count; i++)
            sum += igmp_query_source(&parsed, i);
        (void)sum;
        EXPECT(igmp_max_response_ns(&parsed) > 0);
    }
    /* A report built from the input's bytes parses back, checksum and all. */
    struct igmp_record records[IGMP_RECORDS_MAX];
    uint32_t sources[IGMP_RECORDS_MAX][IGMP_SOURCES_MAX];
    unsigned count = 0;
    size_t offset = 0;
    while (count < IGMP_RECORDS_MAX && offset + 6 <= length) {
        struct igmp_record *record = &records[count];
        record->type = message[offset];
        record->source_count = message[offset + 1] % (IGMP_SOURCES_MAX + 1);
        memcpy(&record->group, message + offset + 2, 4);
        for (unsigned i = 0; i < record->source_count; i++)
            sources[count][i] = record->group + i;
        record->sources = sources[count];
        offset += 6;
        count++;
    }
    size_t report_length = igmp_v3_report_length(records, count);
    uint8_t *report = malloc(report_length);
    if (!report)
        abort();
    EXPECT(igmp_emit_v3_report(records, count, report) == report_length);
    struct igmp_message again;
    EXPECT(igmp_parse(report, report_length, true, &again) == IGMP_PARSE_OK);
    EXPECT(again.type == IGMP_TYPE_V3_REPORT && load_be16(report + 6) == count);
    free(report);
}

static void parse_checksum(const uint8_t *data, size_t length)
{
    uint32_t whole = checksum_add(0, data, length);
    size_t cut = length > 0 ? (data[0] * 2u) % (length + 1) : 0;
    cut &= ~(size_t)1;
    uint32_t halves = checksum_add(checksum_add(0, data, cut), data + cut, length - cut);
    EXPECT(checksum_finish(whole) == checksum_finish(halves));
    /* Append the checksum (an even length keeps it on a word boundary). */
    size_t even = length & ~(size_t)1;
    uint8_t *with_sum = malloc(even + 2);
    if (!with_sum)
        abort();
    memcpy(with_sum, data, even);
    store_be16(with_sum + even, checksum_finish(checksum_add(0, data, even)));
    EXPECT(checksum_finish(checksum_add(0, with_sum, even + 2)) == 0);
    free(with_sum);
}

static void parse_impairment(const uint8_t *text, size_t length)
{
    char *spec = malloc(length + 1);
    if (!spec)
        abort();
    memcpy(spec, text, length);
    spec[length] = '\0';
    struct usock_impairment impairment;
    char error[64];
    if (usock_impairment_parse(spec, &impairment, error, sizeof(error)) == 0) {
        EXPECT(impairment.loss >= 0 && impairment.loss <= 1);
        EXPECT(impairment.duplicate >= 0 && impairment.duplicate <= 1);
        EXPECT(impairment.reorder >= 0 && impairment.reorder <= 1);
        EXPECT(impairment.corrupt >= 0 && impairment.corrupt <= 1);
    } else {
        EXPECT(memchr(error, '\0', sizeof(error)) != NULL);
    }
    free(spec);
}

/* A whole frame, each layer handed to the next as the stack would. */
static void parse_frame(const uint8_t *frame, size_t length)
{
    struct ethernet_header ethernet;
    if (ethernet_parse(frame, length, &ethernet) != 0)
        return;
    const uint8_t *packet = frame + ETHERNET_HEADER_LENGTH;
    size_t packet_length = length - ETHERNET_HEADER_LENGTH;
    if (ethernet.ethertype == ETHERTYPE_ARP) {
        parse_arp(packet, packet_length);
        return;
    }
    struct ipv4_header ip;
    if (ipv4_parse(packet, packet_length, false, &ip) != IPV4_PARSE_OK)
        return;
    parse_ipv4(packet, packet_length);
    const uint8_t *payload = packet + ip.header_length;
    size_t payload_length = ip.total_length - ip.header_length;
    struct addresses addresses = {ip.source, ip.destination};
    switch (ip.protocol) {
    case IPPROTO_ICMP:
        parse_icmp(payload, payload_length);
        break;
    case IPPROTO_IGMP:
        parse_igmp(payload, payload_length);
        break;
    case IPPROTO_UDP:
        parse_udp(&addresses, payload, payload_length);
        break;
    case IPPROTO_TCP:
        parse_tcp(&addresses, payload, payload_length);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    enum parser_choice choice = data[0] % PARSER_COUNT;
    struct addresses addresses = {0, 0};
    size_t skip = 1;
    if ((choice == PARSER_UDP || choice == PARSER_TCP) && size >= 9) {
        memcpy(&addresses.source, data + 1, 4);
        memcpy(&addresses.destination, data + 5, 4);
        skip = 9;
    }
    if (skip > size)
        skip = size;
    /* Exactly the bytes given, so a read past them is caught. */
    size_t length = size - skip;
    uint8_t *bytes = malloc(length ? length : 1);
    if (!bytes)
        abort();
    memcpy(bytes, data + skip, length);
    switch (choice) {
    case PARSER_ETHERNET: parse_ethernet(bytes, length); break;
    case PARSER_ARP: parse_arp(bytes, length); break;
    case PARSER_IPV4: parse_ipv4(bytes, length); break;
    case PARSER_ICMP: parse_icmp(bytes, length); break;
    case PARSER_UDP: parse_udp(&addresses, bytes, length); break;
    case PARSER_TCP: parse_tcp(&addresses, bytes, length); break;
    case PARSER_IGMP: parse_igmp(bytes, length); break;
    case PARSER_CHECKSUM: parse_checksum(bytes, length); break;
    case PARSER_IMPAIRMENT: parse_impairment(bytes, length); break;
    default: parse_frame(bytes, length); break;
    }
    free(bytes);
    return 0;
}
