/*
 * icmp.c - ICMPv4 input and error generation; see icmp.h.
 *
 * Echo requests to our address are answered with the same identifier,
 * sequence and payload (any size the packet carried).  Echo requests to
 * broadcast are ignored, as Linux does by default
 * (icmp_echo_ignore_broadcasts).  Error messages are checked to quote at
 * least an IP header and 8 bytes, then handed to the raw sockets of the
 * quoted protocol and to that protocol through a table indexed by protocol
 * number (ICMP: the ping socket that sent the quoted echo request).  The
 * errno each error becomes is Linux's (icmp_error_errno).
 *
 * icmp_send_error applies RFC 1122 3.2.2: never about an ICMP error, a
 * broadcast or multicast destination, a non-initial fragment, or a source
 * that is not a unicast host; it quotes the IP header and as much of the
 * data as fits in 576 bytes (RFC 1812 4.3.2.3), only bytes we received.
 */
#include "net/icmp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "net/ipv4.h"
#include "raw.h"
#include "stack.h"
#include "tcp/tcp.h"
#include "udp.h"
#include "wire/icmp.h"

#define ICMP_ERROR_QUOTE_LIMIT (576 - IPV4_HEADER_LENGTH - ICMP_HEADER_LENGTH)
#define ICMP_GLOBAL_COST_NS (NS_PER_SECOND / 1000)   /* icmp_msgs_per_sec 1000 */
#define ICMP_GLOBAL_BURST_NS (50 * ICMP_GLOBAL_COST_NS) /* icmp_msgs_burst 50 */
#define ICMP_HOST_COST_NS NS_PER_SECOND                /* icmp_ratelimit 1000 ms */
#define ICMP_HOST_BURST_NS (6 * ICMP_HOST_COST_NS)     /* XRLIM_BURST_FACTOR 6 */

typedef void (*icmp_error_handler_fn)(struct usock_stack *stack, const struct ipv4_error *error,
                                      uint64_t now);

static const icmp_error_handler_fn icmp_error_handlers[256] = {
    [IPPROTO_ICMP] = ping_socket_error,
    [IPPROTO_UDP] = udp_error,
    [IPPROTO_TCP] = tcp_error,
};

/* Destination unreachable codes 0-15 as Linux's icmp_err_convert. */
static const struct {
    int error;
    bool hard;
} icmp_unreachable_errors[16] = {
    [0] = {ENETUNREACH, false},   /* net unreachable */
    [1] = {EHOSTUNREACH, false},  /* host unreachable */
    [2] = {ENOPROTOOPT, true},    /* protocol unreachable */
    [3] = {ECONNREFUSED, true},   /* port unreachable */
    [4] = {EMSGSIZE, false},      /* fragmentation needed */
    [5] = {EOPNOTSUPP, false},    /* source route failed */
    [6] = {ENETUNREACH, true},    /* destination network unknown */
    [7] = {EHOSTDOWN, true},      /* destination host unknown */
    [8] = {ENONET, true},         /* source host isolated */
    [9] = {ENETUNREACH, true},    /* network administratively prohibited */
    [10] = {EHOSTUNREACH, true},  /* host administratively prohibited */
    [11] = {ENETUNREACH, false},  /* network unreachable for TOS */
    [12] = {EHOSTUNREACH, false}, /* host unreachable for TOS */
    [13] = {EHOSTUNREACH, true},  /* communication administratively prohibited */
    [14] = {EHOSTUNREACH, true},  /* host precedence violation */
    [15] = {EHOSTUNREACH, true},  /* precedence cutoff in effect */
};

int icmp_error_errno(uint8_t type, uint8_t code, bool *hard)
{
    *hard = false;
    switch (type) {
    case ICMP_TYPE_DESTINATION_UNREACHABLE:
        if (code >= sizeof(icmp_unreachable_errors) / sizeof(icmp_unreachable_errors[0]))
            return EHOSTUNREACH;
        *hard = icmp_unreachable_errors[code].hard;
        return icmp_unreachable_errors[code].error;
    case ICMP_TYPE_PARAMETER_PROBLEM:
        *hard = true;
        return EPROTO;
    case ICMP_TYPE_SOURCE_QUENCH:
    case ICMP_TYPE_REDIRECT:
        return 0;
    default:
        return EHOSTUNREACH; /* time exceeded */
    }
}

void icmp_rate_limit_init(struct icmp_rate_limit *limit)
{
    memset(limit, 0, sizeof(*limit));
    limit->global_credit_ns = ICMP_GLOBAL_BURST_NS;
    for (int i = 0; i < ICMP_RATE_HOSTS; i++)
        limit->hosts[i].credit_ns = ICMP_HOST_BURST_NS;
}

static uint64_t refill(uint64_t credit, uint64_t *updated, uint64_t now, uint64_t burst)
{
    if (now > *updated) {
        uint64_t elapsed = now - *updated;
        credit = elapsed > burst - credit ? burst : credit + elapsed;
    }
    *updated = now;
    return credit;
}

/* Token buckets: global, then per destination (hosts sharing a slot share
 * a bucket, which only ever limits more). */
static bool icmp_rate_allows(struct usock_stack *stack, uint32_t destination, uint64_t now)
{
    struct icmp_rate_limit *limit = &stack->icmp_limit;
    limit->global_credit_ns =
        refill(limit->global_credit_ns, &limit->global_updated, now, ICMP_GLOBAL_BURST_NS);
    if (limit->global_credit_ns < ICMP_GLOBAL_COST_NS)
        return false;
    uint32_t slot = (uint32_t)(destination * 2654435761u) % ICMP_RATE_HOSTS;
    if (limit->hosts[slot].address != destination) {
        limit->hosts[slot].address = destination;
        limit->hosts[slot].credit_ns = ICMP_HOST_BURST_NS;
        limit->hosts[slot].updated = now;
    }
    limit->hosts[slot].credit_ns = refill(limit->hosts[slot].credit_ns, &limit->hosts[slot].updated,
                                          now, ICMP_HOST_BURST_NS);
    if (limit->hosts[slot].credit_ns < ICMP_HOST_COST_NS)
        return false;
    limit->hosts[slot].credit_ns -= ICMP_HOST_COST_NS;
    limit->global_credit_ns -= ICMP_GLOBAL_COST_NS;
    return true;
}

/* Sends an ICMP message: header plus body (copied), to destination. */
static void icmp_send(struct usock_stack *stack, const struct icmp_header *header,
                      const uint8_t *body, size_t body_length, uint32_t source,
                      uint32_t destination, uint64_t now)
{
    struct packet_buffer *buffer =
        packet_buffer_new(PACKET_HEADROOM, ICMP_HEADER_LENGTH + body_length);
    if (!buffer) {
        /* RFC 2011: IcmpOutErrors counts messages not sent for want of
         * resources inside ICMP. */
        COUNT(stack, IcmpOutErrors);
        return;
    }
    uint8_t *message = packet_buffer_put(buffer, ICMP_HEADER_LENGTH + body_length);
    memcpy(message + ICMP_HEADER_LENGTH, body, body_length);
    icmp_emit(header, message, body_length);
    struct ipv4_send send = {
        .source = source,
        .destination = destination,
        .protocol = IPPROTO_ICMP,
        .time_to_live = IPV4_DEFAULT_TTL,
    };
    COUNT(stack, IcmpOutMsgs);
    ipv4_output(stack, buffer, &send, now);
}

/* Hands an error about the packet quoted (our own, as far as we can tell)
 * to the transport that sent it. */
static void icmp_deliver_error(struct usock_stack *stack, const uint8_t *quoted,
                               size_t quoted_length, uint8_t type, uint8_t code, uint32_t info,
                               uint32_t reporter, uint64_t now)
{
    struct ipv4_error error = {.type = type, .code = code, .info = info, .reporter = reporter};
    /* The quote is a fragment of our packet: its checksum and total length
     * need not hold, so validate only what we read. */
    if (quoted_length < IPV4_HEADER_LENGTH ||
        ipv4_parse(quoted, quoted_length, false, &error.quoted) == IPV4_PARSE_TRUNCATED) {
        COUNT(stack, IcmpInTruncated);
        COUNT(stack, IcmpInErrors);
        return;
    }
    size_t header_length = (size_t)(quoted[0] & 0x0f) * 4;
    if ((quoted[0] >> 4) != 4 || header_length < IPV4_HEADER_LENGTH ||
        quoted_length < header_length + 8) {
        COUNT(stack, IcmpInTruncated);
        COUNT(stack, IcmpInErrors);
        return;
    }
    if (error.quoted.header_length == 0) {
        /* ipv4_parse refused the quote (e.g. its total length is larger
         * than the quote); fill what the handlers need by hand. */
        error.quoted.header_length = (uint8_t)header_length;
        error.quoted.protocol = quoted[9];
        memcpy(&error.quoted.source, quoted + 12, 4);
        memcpy(&error.quoted.destination, quoted + 16, 4);
    }
    error.quoted_packet = quoted;
    error.quoted_length = quoted_length;
    error.quoted_payload = quoted + header_length;
    error.quoted_payload_length = quoted_length - header_length;
    /* Raw sockets of the quoted protocol hear of it too, as on Linux. */
    bool raw_took_it = raw_error(stack, &error);
    icmp_error_handler_fn handler = icmp_error_handlers[error.quoted.protocol];
    if (handler)
        handler(stack, &error, now);
    else if (!raw_took_it)
        COUNT(stack, IcmpInErrorsNoSocket);
}

static void icmp_input_error(struct usock_stack *stack, const struct ipv4_packet *packet,
                             const struct icmp_header *header, uint64_t now)
{
    icmp_deliver_error(stack, packet->payload + ICMP_HEADER_LENGTH,
                       packet->payload_length - ICMP_HEADER_LENGTH, header->type, header->code,
                       header->rest, packet->header.source, now);
}

void icmp_report_local_error(struct usock_stack *stack, const uint8_t *packet, size_t length,
                             uint8_t type, uint8_t code, uint64_t now)
{
    icmp_deliver_error(stack, packet, length, type, code, 0, stack->interface.address, now);
}

void icmp_input(struct usock_stack *stack, const struct ipv4_packet *packet, uint64_t now)
{
    struct icmp_header header;
    COUNT(stack, IcmpInMsgs);
    switch (icmp_parse(packet->payload, packet->payload_length,
                       stack->verify_checksums && !packet->from_loopback, &header)) {
    case ICMP_PARSE_TRUNCATED:
        COUNT(stack, IcmpInTruncated);
        COUNT(stack, IcmpInErrors);
        return;
    case ICMP_PARSE_BAD_CHECKSUM:
        COUNT(stack, IcmpInCsumErrors);
        COUNT(stack, IcmpInErrors);
        return;
    case ICMP_PARSE_OK:
        break;
    }
    switch (header.type) {
    case ICMP_TYPE_ECHO_REQUEST: {
        COUNT(stack, IcmpInEchos);
        if (packet->destination_kind != ADDRESS_LOCAL)
            return; /* icmp_echo_ignore_broadcasts */
        struct icmp_header reply = {.type = ICMP_TYPE_ECHO_REPLY, .rest = header.rest};
        COUNT(stack, IcmpOutEchoReps);
        icmp_send(stack, &reply, packet->payload + ICMP_HEADER_LENGTH,
                  packet->payload_length - ICMP_HEADER_LENGTH, packet->header.destination,
                  packet->header.source, now);
        return;
    }
    case ICMP_TYPE_ECHO_REPLY:
        COUNT(stack, IcmpInEchoReps);
        ping_socket_deliver_reply(stack, packet, (uint16_t)(header.rest >> 16));
        return;
    case ICMP_TYPE_DESTINATION_UNREACHABLE:
        COUNT(stack, IcmpInDestUnreachs);
        icmp_input_error(stack, packet, &header, now);
        return;
    case ICMP_TYPE_TIME_EXCEEDED:
        COUNT(stack, IcmpInTimeExcds);
        icmp_input_error(stack, packet, &header, now);
        return;
    case ICMP_TYPE_PARAMETER_PROBLEM:
    case ICMP_TYPE_SOURCE_QUENCH:
        icmp_input_error(stack, packet, &header, now);
        return;
    default:
        COUNT(stack, IcmpInOther);
        return;
    }
}

void icmp_send_error(struct usock_stack *stack, const uint8_t *original, size_t original_length,
                     uint8_t type, uint8_t code, uint32_t info, uint64_t now)
{
    struct ipv4_header header;
    /* The caller validated this header; parse again for the fields. */
    if (ipv4_parse(original, original_length, false, &header) != IPV4_PARSE_OK)
        return;
    enum address_kind destination_kind = ipv4_address_kind(stack, header.destination);
    enum address_kind source_kind = ipv4_address_kind(stack, header.source);
    bool about_icmp_error = false;
    if (header.protocol == IPPROTO_ICMP) {
        size_t offset = header.header_length;
        /* An ICMP packet too short to tell its type is treated as an error. */
        about_icmp_error = original_length < offset + 1 || icmp_type_is_error(original[offset]);
    }
    if (about_icmp_error || header.fragment_offset != 0 ||
        destination_kind == ADDRESS_BROADCAST || destination_kind == ADDRESS_MULTICAST ||
        source_kind == ADDRESS_BROADCAST || source_kind == ADDRESS_MULTICAST ||
        source_kind == ADDRESS_ANY) {
        COUNT(stack, IcmpOutSuppressed);
        return;
    }
    if (source_kind != ADDRESS_LOCAL && !icmp_rate_allows(stack, header.source, now)) {
        COUNT(stack, IcmpOutRateLimited);
        return;
    }
    size_t quote = original_length < ICMP_ERROR_QUOTE_LIMIT ? original_length : ICMP_ERROR_QUOTE_LIMIT;
    struct icmp_header error = {.type = type, .code = code, .rest = info};
    if (type == ICMP_TYPE_DESTINATION_UNREACHABLE)
        COUNT(stack, IcmpOutDestUnreachs);
    /* Reply from the address the packet was sent to when it is ours. */
    uint32_t source = destination_kind == ADDRESS_LOCAL ? header.destination : 0;
    icmp_send(stack, &error, original, quote, source, header.source, now);
}
