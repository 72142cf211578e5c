/*
 * raw.c - raw IP sockets.
 *
 * A raw socket of protocol P receives a copy of every IP datagram of
 * protocol P addressed to the stack (after reassembly, alongside normal
 * delivery to UDP/TCP/ICMP), with its IP header, as Linux does; bind()
 * filters by destination address, connect() by source, and a multicast
 * membership's source filter by source.  ICMP raw
 * sockets may set ICMP_FILTER (SOL_RAW) to skip ICMP types.  Sockets are
 * kept on one list per protocol number (a table of 256 lists), so delivery
 * walks only the sockets that want that protocol.
 *
 * Sending: without IP_HDRINCL the stack builds the IP header (protocol P,
 * the socket's TTL and TOS) around the caller's bytes, fragmenting if
 * needed.  With IP_HDRINCL (always for IPPROTO_RAW) the caller's bytes are
 * the whole packet; as Linux does, the stack fills in the total length and
 * header checksum always, the identification when zero and the source
 * address when zero, and sends it unfragmented (EMSGSIZE over the MTU).
 * Applications build their own ICMP checksums, as with Linux raw sockets.
 *
 * ICMP errors quoting a packet of protocol P reach the raw sockets of P
 * that could have sent it (raw_error), with Linux's errno and IP_RECVERR
 * semantics (the error queue of socket.c).
 */
#include "raw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/icmp.h>
#include <netinet/ip.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "net/icmp.h"
#include "net/ipv4.h"
#include "socket/datagram_queue.h"
#include "socket/multicast.h"
#include "stack.h"
#include "wire/bytes.h"
#include "wire/checksum.h"
#include "wire/icmp.h"

struct raw_socket {
    struct raw_socket *next;   /* on by_protocol[protocol] */
    struct socket *socket;
    struct datagram_queue queue;
    bool header_included;
    uint32_t icmp_filter;      /* bit t set: drop ICMP type t */
};

static struct raw_socket *raw_of(struct socket *socket)
{
    return socket->protocol_state;
}

static int raw_create(struct usock_stack *stack, struct socket *socket)
{
    struct raw_socket *raw = calloc(1, sizeof(*raw));
    if (!raw)
        return -ENOMEM;
    raw->socket = socket;
    datagram_queue_init(&raw->queue);
    raw->header_included = socket->protocol == IPPROTO_RAW;
    /* getsockname() shows the protocol as the port, as Linux does. */
    socket->local_port = (uint16_t)socket->protocol;
    socket->protocol_state = raw;
    raw->next = stack->raw.by_protocol[socket->protocol];
    stack->raw.by_protocol[socket->protocol] = raw;
    return 0;
}

static void raw_release(struct usock_stack *stack, struct socket *socket)
{
    struct raw_socket *raw = raw_of(socket);
    if (!raw)
        return;
    struct raw_socket **link = &stack->raw.by_protocol[socket->protocol];
    while (*link && *link != raw)
        link = &(*link)->next;
    if (*link)
        *link = raw->next;
    datagram_queue_purge(&raw->queue);
    free(raw);
    socket->protocol_state = NULL;
}

static int raw_bind(struct usock_stack *stack, struct socket *socket, uint32_t address,
                    uint16_t port)
{
    (void)port;
    enum address_kind kind = ipv4_address_kind(stack, address);
    if (kind == ADDRESS_OTHER)
        return -EADDRNOTAVAIL;
    socket->local_address = address;
    socket->source_address = kind == ADDRESS_LOCAL ? address : 0;
    socket->address_locked = address != 0;
    return 0;
}

static int raw_connect(struct usock_stack *stack, struct socket *socket,
                       const struct sockaddr_in *address, uint64_t now)
{
    (void)now;
    if (!address) {
        socket->connected = false;
        socket->peer_address = 0;
        return 0;
    }
    struct ipv4_route route;
    int error = ipv4_route(stack, address->sin_addr.s_addr, &route);
    if (error)
        return error;
    if (route.broadcast && !socket->broadcast)
        return -EACCES;
    socket->peer_address = address->sin_addr.s_addr ? address->sin_addr.s_addr : route.next_hop;
    socket->peer_port = 0;
    socket->connected = true;
    return 0;
}

static size_t message_length(const struct msghdr *message)
{
    size_t total = 0;
    for (size_t i = 0; i < message->msg_iovlen; i++)
        total += message->msg_iov[i].iov_len;
    return total;
}

static void message_gather(const struct msghdr *message, uint8_t *out)
{
    for (size_t i = 0; i < message->msg_iovlen; i++) {
        if (message->msg_iov[i].iov_len == 0)
            continue;
        memcpy(out, message->msg_iov[i].iov_base, message->msg_iov[i].iov_len);
        out += message->msg_iov[i].iov_len;
    }
}

static ssize_t raw_send_header_included(struct usock_stack *stack, struct socket *socket,
                                        const struct msghdr *message, uint32_t destination,
                                        const struct ipv4_route *route, uint64_t now)
{
    size_t length = message_length(message);
    if (length < IPV4_HEADER_LENGTH || length > IPV4_PACKET_MAX)
        return length > IPV4_PACKET_MAX ? -EMSGSIZE : -EINVAL;
    struct packet_buffer *buffer = packet_buffer_new(PACKET_HEADROOM, length);
    if (!buffer)
        return -ENOBUFS;
    uint8_t *packet = packet_buffer_put(buffer, length);
    message_gather(message, packet);
    size_t header_length = (size_t)(packet[0] & 0x0f) * 4;
    if (header_length < IPV4_HEADER_LENGTH || header_length > length) {
        packet_buffer_free(buffer);
        return -EINVAL;
    }
    /* Linux raw_send_hdrinc: total length and checksum always; the ID and
     * source address when the caller left them zero. */
    store_be16(packet + 2, (uint16_t)length);
    if (load_address(packet + 12) == 0)
        store_address(packet + 12, socket->source_address ? socket->source_address
                                                          : route->source);
    if (load_be16(packet + 4) == 0)
        store_be16(packet + 4, ipv4_next_identification(stack, load_address(packet + 12),
                                                        destination, packet[9]));
    store_be16(packet + 10, 0);
    store_be16(packet + 10, checksum_finish(checksum_add(0, packet, header_length)));
    int error = ipv4_output_prebuilt(stack, buffer, destination, now);
    return error ? error : (ssize_t)length;
}

static ssize_t raw_send(struct usock_stack *stack, struct socket *socket,
                        const struct msghdr *message, int flags, uint64_t now)
{
    (void)flags;
    uint32_t destination;
    if (message->msg_name) {
        const struct sockaddr_in *to = message->msg_name;
        if (message->msg_namelen < sizeof(struct sockaddr_in))
            return -EINVAL;
        if (to->sin_family != AF_INET && to->sin_family != AF_UNSPEC)
            return -EAFNOSUPPORT;
        destination = to->sin_addr.s_addr;
    } else {
        if (!socket->connected)
            return -EDESTADDRREQ;
        destination = socket->peer_address;
    }
    if (socket->shutdown & SHUTDOWN_SEND)
        return -EPIPE;
    if (socket->error) {
        int error = socket->error;
        socket->error = 0;
        return -error;
    }
    struct ipv4_route route;
    int error = ipv4_route(stack, destination, &route);
    if (error)
        return error;
    if (route.broadcast && !socket->broadcast)
        return -EACCES;
    if (destination == 0)
        destination = route.next_hop;
    if (raw_of(socket)->header_included)
        return raw_send_header_included(stack, socket, message, destination, &route, now);
    size_t length = message_length(message);
    if (length > IPV4_PACKET_MAX - IPV4_HEADER_LENGTH)
        return -EMSGSIZE;
    struct packet_buffer *buffer = packet_buffer_new(PACKET_HEADROOM, length);
    if (!buffer)
        return -ENOBUFS;
    message_gather(message, packet_buffer_put(buffer, length));
    struct ipv4_send send = {
        .source = socket->source_address ? socket->source_address : route.source,
        .destination = destination,
        .protocol = (uint8_t)socket->protocol,
        .time_to_live = socket->time_to_live,
        .type_of_service = socket->type_of_service,
    };
    error = ipv4_output(stack, buffer, &send, now);
    return error ? error : (ssize_t)length;
}

static ssize_t raw_receive(struct usock_stack *stack, struct socket *socket,
                           struct msghdr *message, int flags, uint64_t now)
{
    (void)stack;
    (void)now;
    if (socket->error) {
        int error = socket->error;
        socket->error = 0;
        return -error;
    }
    return datagram_queue_receive(&raw_of(socket)->queue, socket, message, flags);
}

static short raw_poll(struct usock_stack *stack, struct socket *socket)
{
    (void)stack;
    short events = POLLOUT | POLLWRNORM;
    if (raw_of(socket)->queue.head)
        events |= POLLIN | POLLRDNORM;
    if (socket->error)
        events |= POLLERR;
    if (socket->shutdown & SHUTDOWN_RECEIVE)
        events |= POLLIN | POLLRDNORM | POLLRDHUP;
    if (socket->shutdown == (SHUTDOWN_RECEIVE | SHUTDOWN_SEND))
        events |= POLLHUP;
    return events;
}

static int raw_setsockopt(struct usock_stack *stack, struct socket *socket, int level, int name,
                          const void *value, socklen_t length, uint64_t now)
{
    (void)stack;
    (void)now;
    struct raw_socket *raw = raw_of(socket);
    if (level == IPPROTO_IP && name == IP_HDRINCL) {
        int integer;
        if (!value || length < sizeof(int))
            return -EINVAL;
        memcpy(&integer, value, sizeof(int));
        if (socket->protocol == IPPROTO_RAW)
            return 0; /* always on */
        raw->header_included = integer != 0;
        return 0;
    }
    if (level == SOL_RAW && name == ICMP_FILTER) {
        if (socket->protocol != IPPROTO_ICMP)
            return -EOPNOTSUPP;
        if (!value || length < sizeof(uint32_t))
            return -EINVAL;
        memcpy(&raw->icmp_filter, value, sizeof(uint32_t));
        return 0;
    }
    return -ENOPROTOOPT;
}

static int raw_getsockopt(struct usock_stack *stack, struct socket *socket, int level, int name,
                          void *value, socklen_t *length)
{
    (void)stack;
    struct raw_socket *raw = raw_of(socket);
    if (level == IPPROTO_IP && name == IP_HDRINCL) {
        int integer = raw->header_included;
        size_t copy = *length < sizeof(int) ? *length : sizeof(int);
        memcpy(value, &integer, copy);
        *length = (socklen_t)copy;
        return 0;
    }
    if (level == SOL_RAW && name == ICMP_FILTER) {
        if (socket->protocol != IPPROTO_ICMP)
            return -EOPNOTSUPP;
        size_t copy = *length < sizeof(uint32_t) ? *length : sizeof(uint32_t);
        memcpy(value, &raw->icmp_filter, copy);
        *length = (socklen_t)copy;
        return 0;
    }
    return -ENOPROTOOPT;
}

static int raw_readable_bytes(struct socket *socket)
{
    return (int)datagram_queue_first_length(&raw_of(socket)->queue);
}

static size_t raw_receive_queue_bytes(struct socket *socket)
{
    return raw_of(socket)->queue.bytes;
}

const struct socket_operations raw_operations = {
    .type = SOCK_RAW,
    .protocol = IPPROTO_RAW, /* any protocol 1..255; see usock_socket */
    .netid = "raw",
    .create = raw_create,
    .release = raw_release,
    .bind = raw_bind,
    .connect = raw_connect,
    .send = raw_send,
    .receive = raw_receive,
    .shutdown = datagram_socket_shutdown,
    .setsockopt = raw_setsockopt,
    .getsockopt = raw_getsockopt,
    .poll = raw_poll,
    .readable_bytes = raw_readable_bytes,
    .receive_queue_bytes = raw_receive_queue_bytes,
    .send_queue_bytes = datagram_socket_send_queue_bytes,
    .state_name = datagram_socket_state_name,
    .is_listening = datagram_socket_is_listening,
};

bool raw_deliver(struct usock_stack *stack, const struct ipv4_packet *packet)
{
    bool delivered = false;
    const struct ipv4_header *header = &packet->header;
    for (struct raw_socket *raw = stack->raw.by_protocol[header->protocol]; raw; raw = raw->next) {
        struct socket *socket = raw->socket;
        if (socket->local_address && socket->local_address != header->destination)
            continue;
        if (socket->connected && socket->peer_address != header->source)
            continue;
        if (!socket_device_accepts(socket, header->destination))
            continue;
        if (!socket_multicast_allows(stack, socket, header->destination, header->source))
            continue;
        if (header->protocol == IPPROTO_ICMP && packet->payload_length >= 1 &&
            packet->payload[0] < 32 && (raw->icmp_filter & (1u << packet->payload[0])))
            continue;
        delivered = true;
        const struct datagram_origin origin = {
            .source = header->source,
            .destination = header->destination,
            .time_to_live = header->time_to_live,
            .type_of_service = header->type_of_service,
        };
        switch (datagram_queue_push(&raw->queue, (size_t)socket->receive_buffer,
                                    &stack->datagram_memory, &origin, packet->packet,
                                    packet->length)) {
        case DATAGRAM_QUEUED:
            socket_wake(stack, socket);
            break;
        case DATAGRAM_SOCKET_FULL:
            COUNT(stack, RawRcvbufErrors);
            break;
        case DATAGRAM_STACK_FULL:
            COUNT(stack, RawMemErrors);
            break;
        }
    }
    return delivered;
}

bool raw_error(struct usock_stack *stack, const struct ipv4_error *error)
{
    bool matched = false;
    const struct ipv4_header *quoted = &error->quoted;
    for (struct raw_socket *raw = stack->raw.by_protocol[quoted->protocol]; raw; raw = raw->next) {
        struct socket *socket = raw->socket;
        if (socket->local_address && socket->local_address != quoted->source)
            continue;
        if (socket->connected && socket->peer_address != quoted->destination)
            continue;
        matched = true;
        bool hard;
        int code = icmp_error_errno(error->type, error->code, &hard);
        /* Linux raw_err: "fragmentation needed" is hard unless PMTUDISC_DONT. */
        if (error->type == ICMP_TYPE_DESTINATION_UNREACHABLE &&
            error->code == ICMP_CODE_FRAGMENTATION_NEEDED)
            hard = socket->path_mtu_discovery != IP_PMTUDISC_DONT;
        if (!code)
            continue;
        const uint8_t *payload = raw->header_included ? error->quoted_packet
                                                      : error->quoted_payload;
        size_t length = raw->header_included ? error->quoted_length
                                             : error->quoted_payload_length;
        socket_report_icmp_error(stack, socket, code, hard, error->type, error->code,
                                 error->info, error->reporter, quoted->destination, 0, payload,
                                 length);
    }
    return matched;
}
