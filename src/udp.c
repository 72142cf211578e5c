/*
 * udp.c - UDP datagram sockets.
 *
 * Each socket keeps a FIFO of received datagrams, bounded by SO_RCVBUF
 * (each datagram charged its length plus a fixed overhead, like Linux's
 * truesize); datagrams that do not fit are dropped and counted
 * (UdpRcvbufErrors).  Sending builds the datagram in one buffer with
 * headroom and hands it to IPv4 at once; nothing waits in a send queue.
 *
 * Lookup of a received unicast datagram goes through the port table:
 * sockets bound to (destination, port), then to (0.0.0.0, port); among those,
 * a connected socket must match the source, and the best match (connected
 * beats unconnected, the latest bind wins ties, SO_REUSEPORT groups spread by
 * a hash of the source) takes it.  Broadcast and multicast datagrams go to
 * every socket on the port bound to the wildcard or to that destination
 * (multicast ones only where the socket's source filter lets them).
 *
 * Binding follows Linux: conflicts unless both sockets set SO_REUSEADDR, or
 * both SO_REUSEPORT; port 0 picks an ephemeral port; connect() binds an
 * unbound socket and fixes its local address, and connect(AF_UNSPEC) undoes
 * what connect did (but not what bind did).
 */
#include "udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "net/icmp.h"
#include "net/ipv4.h"
#include "socket/datagram_queue.h"
#include "socket/multicast.h"
#include "stack.h"
#include "util/siphash.h"
#include "wire/icmp.h"
#include "wire/udp.h"

struct udp_socket {
    struct datagram_queue queue;
};

static struct udp_socket *udp_of(struct socket *socket)
{
    return socket->protocol_state;
}

static int udp_create(struct usock_stack *stack, struct socket *socket)
{
    (void)stack;
    socket->protocol_state = calloc(1, sizeof(struct udp_socket));
    return socket->protocol_state ? 0 : -ENOMEM;
}

static void udp_release(struct usock_stack *stack, struct socket *socket)
{
    (void)stack;
    if (socket->hashed)
        port_table_remove(&stack->sockets.udp, socket);
    struct udp_socket *udp = udp_of(socket);
    if (!udp)
        return;
    datagram_queue_purge(&udp->queue);
    free(udp);
    socket->protocol_state = NULL;
}

/* Puts socket in the port table under (address, port); port 0 picks one. */
static int udp_hash_at(struct usock_stack *stack, struct socket *socket, uint32_t address,
                       uint16_t port)
{
    struct port_table *table = &stack->sockets.udp;
    if (port == 0) {
        port = port_table_pick_ephemeral(stack, table, socket, address);
        if (port == 0)
            return -EADDRINUSE;
    } else if (port_table_conflicts(stack, table, socket, address, port)) {
        return -EADDRINUSE;
    }
    socket->local_address = address;
    socket->local_port = port;
    socket->bind_sequence = ++stack->sockets.bind_sequence;
    port_table_insert(stack, table, socket);
    return 0;
}

static int udp_bind(struct usock_stack *stack, struct socket *socket, uint32_t address,
                    uint16_t port)
{
    if (socket->hashed)
        return -EINVAL;
    enum address_kind kind = ipv4_address_kind(stack, address);
    if (kind == ADDRESS_OTHER)
        return -EADDRNOTAVAIL;
    int error = udp_hash_at(stack, socket, address, port);
    if (error)
        return error;
    /* Linux: a socket bound to a broadcast or multicast address sends from
     * the route's source address. */
    socket->source_address = (kind == ADDRESS_LOCAL) ? address : 0;
    socket->address_locked = address != 0;
    socket->port_locked = port != 0;
    return 0;
}

/* Moves a hashed socket to a new local address (after connect). */
static void udp_rehash(struct usock_stack *stack, struct socket *socket, uint32_t address)
{
    port_table_remove(&stack->sockets.udp, socket);
    socket->local_address = address;
    port_table_insert(stack, &stack->sockets.udp, socket);
}

static void udp_disconnect(struct usock_stack *stack, struct socket *socket)
{
    socket->connected = false;
    socket->peer_address = 0;
    socket->peer_port = 0;
    if (!socket->address_locked) {
        socket->source_address = 0;
        if (socket->hashed && socket->local_address != 0)
            udp_rehash(stack, socket, 0);
    }
    if (!socket->port_locked && socket->hashed) {
        port_table_remove(&stack->sockets.udp, socket);
        socket->local_port = 0;
        socket->local_address = socket->address_locked ? socket->local_address : 0;
    }
}

/* Routes socket's traffic to *destination (0.0.0.0 becomes loopback, as
 * Linux does), checks broadcast permission, binds an unbound socket to an
 * ephemeral port, and picks the source address.  Returns 0 or -errno. */
static int udp_prepare_path(struct usock_stack *stack, struct socket *socket,
                            uint32_t *destination, uint32_t *source)
{
    struct ipv4_route route;
    int error = ipv4_route(stack, *destination, &route);
    if (error)
        return error;
    if (route.broadcast && !socket->broadcast)
        return -EACCES;
    if (*destination == 0)
        *destination = route.next_hop;
    if (!socket->hashed) {
        error = udp_hash_at(stack, socket, 0, 0);
        if (error)
            return error;
    }
    *source = socket->source_address ? socket->source_address : route.source;
    return 0;
}

static int udp_connect(struct usock_stack *stack, struct socket *socket,
                       const struct sockaddr_in *address, uint64_t now)
{
    (void)now;
    if (!address) {
        udp_disconnect(stack, socket);
        return 0;
    }
    uint32_t destination = address->sin_addr.s_addr, source;
    int error = udp_prepare_path(stack, socket, &destination, &source);
    if (error)
        return error;
    if (socket->local_address == 0) {
        udp_rehash(stack, socket, source);
        socket->source_address = source;
    }
    socket->peer_address = destination;
    socket->peer_port = ntohs(address->sin_port);
    socket->connected = true;
    return 0;
}

static size_t udp_payload_length(const struct msghdr *message)
{
    size_t total = 0;
    for (size_t i = 0; i < message->msg_iovlen; i++) {
        if (message->msg_iov[i].iov_len > SIZE_MAX - total)
            return SIZE_MAX;
        total += message->msg_iov[i].iov_len;
    }
    return total;
}

static int udp_take_error(struct socket *socket)
{
    int error = socket->error;
    socket->error = 0;
    return error;
}

static ssize_t udp_send(struct usock_stack *stack, struct socket *socket,
                        const struct msghdr *message, int flags, uint64_t now)
{
    (void)flags;
    uint32_t destination;
    uint16_t destination_port;
    /* Linux binds an unbound socket before looking at the destination
     * (inet_send_prepare), so even a failing send leaves it bound. */
    if (!socket->hashed) {
        int error = udp_hash_at(stack, socket, 0, 0);
        if (error)
            return error;
    }
    if (message->msg_name) {
        const struct sockaddr_in *to = message->msg_name;
        if (message->msg_namelen < sizeof(struct sockaddr_in))
            return -EINVAL;
        if (to->sin_family != AF_INET && to->sin_family != AF_UNSPEC)
            return -EAFNOSUPPORT;
        destination = to->sin_addr.s_addr;
        destination_port = ntohs(to->sin_port);
        if (destination_port == 0)
            return -EINVAL;
    } else {
        if (!socket->connected)
            return -EDESTADDRREQ;
        destination = socket->peer_address;
        destination_port = socket->peer_port;
    }
    if (socket->shutdown & SHUTDOWN_SEND)
        return -EPIPE;
    if (socket->error)
        return -udp_take_error(socket);
    size_t length = udp_payload_length(message);
    if (length > UDP_PAYLOAD_MAX)
        return -EMSGSIZE;
    uint32_t source;
    int error = udp_prepare_path(stack, socket, &destination, &source);
    if (error)
        return error;

    struct packet_buffer *buffer = packet_buffer_new(PACKET_HEADROOM, UDP_HEADER_LENGTH + length);
    if (!buffer) {
        COUNT(stack, UdpSndbufErrors);
        return -ENOBUFS;
    }
    uint8_t *datagram = packet_buffer_put(buffer, UDP_HEADER_LENGTH + length);
    size_t offset = UDP_HEADER_LENGTH;
    for (size_t i = 0; i < message->msg_iovlen; i++) {
        if (message->msg_iov[i].iov_len == 0)
            continue;
        memcpy(datagram + offset, message->msg_iov[i].iov_base, message->msg_iov[i].iov_len);
        offset += message->msg_iov[i].iov_len;
    }
    struct udp_header header = {
        .source_port = socket->local_port,
        .destination_port = destination_port,
        .length = (uint16_t)(UDP_HEADER_LENGTH + length),
    };
    udp_emit(&header, source, destination, datagram);
    bool multicast = ipv4_address_kind(stack, destination) == ADDRESS_MULTICAST;
    /* IP_MTU_DISCOVER: DO and PROBE set DF (so too big is EMSGSIZE); WANT
     * sets it when the datagram fits and fragments otherwise, as Linux. */
    bool fits = UDP_HEADER_LENGTH + length + IPV4_HEADER_LENGTH <= stack->interface.mtu;
    int discovery = socket->path_mtu_discovery;
    bool dont_fragment = discovery == IP_PMTUDISC_DO || discovery == IP_PMTUDISC_PROBE ||
                         (discovery == IP_PMTUDISC_WANT && fits);
    struct ipv4_send send = {
        .source = source,
        .destination = destination,
        .protocol = IPPROTO_UDP,
        .time_to_live = multicast ? socket->multicast_ttl : socket->time_to_live,
        .type_of_service = socket->type_of_service,
        .multicast_loop = socket->multicast_loop,
        .dont_fragment = dont_fragment,
    };
    error = ipv4_output(stack, buffer, &send, now);
    if (error) {
        COUNT(stack, UdpOutErrors);
        return error;
    }
    COUNT(stack, UdpOutDatagrams);
    return (ssize_t)length;
}

static ssize_t udp_receive(struct usock_stack *stack, struct socket *socket,
                           struct msghdr *message, int flags, uint64_t now)
{
    (void)stack;
    (void)now;
    message->msg_flags = 0;
    if (socket->error)
        return -udp_take_error(socket);
    return datagram_queue_receive(&udp_of(socket)->queue, socket, message, flags);
}

static short udp_poll(struct usock_stack *stack, struct socket *socket)
{
    (void)stack;
    short events = 0;
    if (udp_of(socket)->queue.head)
        events |= POLLIN | POLLRDNORM;
    if (socket->error)
        events |= POLLERR;
    if (socket->shutdown & SHUTDOWN_RECEIVE)
        events |= POLLIN | POLLRDNORM | POLLRDHUP;
    if (socket->shutdown == (SHUTDOWN_RECEIVE | SHUTDOWN_SEND))
        events |= POLLHUP;
    events |= POLLOUT | POLLWRNORM;
    return events;
}

static int udp_readable_bytes(struct socket *socket)
{
    /* Linux answers FIONREAD with the size of the first datagram. */
    return (int)datagram_queue_first_length(&udp_of(socket)->queue);
}

static size_t udp_receive_queue_bytes(struct socket *socket)
{
    return udp_of(socket)->queue.bytes;
}

const struct socket_operations udp_operations = {
    .type = SOCK_DGRAM,
    .protocol = IPPROTO_UDP,
    .netid = "udp",
    .create = udp_create,
    .release = udp_release,
    .bind = udp_bind,
    .connect = udp_connect,
    .send = udp_send,
    .receive = udp_receive,
    .shutdown = datagram_socket_shutdown,
    .poll = udp_poll,
    .readable_bytes = udp_readable_bytes,
    .receive_queue_bytes = udp_receive_queue_bytes,
    .send_queue_bytes = datagram_socket_send_queue_bytes,
    .state_name = datagram_socket_state_name,
    .is_listening = datagram_socket_is_listening,
};

/* Queues a copy of the payload on socket.  Returns false when it was
 * dropped for want of buffer space. */
static bool udp_queue(struct usock_stack *stack, struct socket *socket,
                      const struct datagram_origin *origin, const uint8_t *payload,
                      size_t length)
{
    switch (datagram_queue_push(&udp_of(socket)->queue, (size_t)socket->receive_buffer,
                                &stack->datagram_memory, origin, payload, length)) {
    case DATAGRAM_QUEUED:
        break;
    case DATAGRAM_SOCKET_FULL:
        COUNT(stack, UdpRcvbufErrors);
        COUNT(stack, UdpInErrors);
        return false;
    case DATAGRAM_STACK_FULL:
        COUNT(stack, UdpMemErrors);
        COUNT(stack, UdpInErrors);
        return false;
    }
    COUNT(stack, UdpInDatagrams);
    socket_wake(stack, socket);
    return true;
}

/* How well socket matches a datagram from (source, source_port) to
 * destination; -1 when it must not receive it.  Connected sockets must
 * match their peer, device-bound ones the device it arrived on. */
static int udp_match_score(const struct socket *socket, uint32_t source, uint16_t source_port,
                           uint32_t destination)
{
    if (!socket_device_accepts(socket, destination))
        return -1;
    if (!socket->connected)
        return 1;
    if (socket->peer_address != source || socket->peer_port != source_port)
        return -1;
    return 2;
}

static struct socket *udp_lookup_unicast(struct usock_stack *stack, uint32_t destination,
                                         uint16_t port, uint32_t source, uint16_t source_port)
{
    struct port_table *table = &stack->sockets.udp;
    uint32_t addresses[2] = {destination, 0};
    for (int pass = 0; pass < 2; pass++) {
        struct socket *best = NULL;
        int best_score = 0;
        unsigned reuseport_group = 0;
        for (struct socket *candidate = port_table_first_bound(stack, table, addresses[pass], port);
             candidate; candidate = port_table_next_bound(candidate, addresses[pass], port)) {
            int score = udp_match_score(candidate, source, source_port, destination);
            if (score < 0)
                continue;
            if (score > best_score ||
                (score == best_score && candidate->bind_sequence > best->bind_sequence)) {
                best = candidate;
                best_score = score;
            }
            if (score == 1 && candidate->reuse_port)
                reuseport_group++;
        }
        if (best && best_score == 1 && best->reuse_port && reuseport_group > 1) {
            /* Spread the SO_REUSEPORT group by a hash of the source. */
            uint32_t key[2] = {source, source_port};
            uint64_t pick = siphash24(stack->secret, key, sizeof(key)) % reuseport_group;
            for (struct socket *candidate = port_table_first_bound(stack, table, addresses[pass], port);
                 candidate; candidate = port_table_next_bound(candidate, addresses[pass], port)) {
                if (!candidate->connected && candidate->reuse_port && pick-- == 0) {
                    best = candidate;
                    break;
                }
            }
        }
        if (best)
            return best;
    }
    return NULL;
}

struct udp_broadcast_delivery {
    struct usock_stack *stack;
    struct datagram_origin origin;
    const uint8_t *payload;
    size_t length;
    unsigned delivered;
};

static bool udp_deliver_broadcast_to(struct socket *socket, void *context)
{
    struct udp_broadcast_delivery *delivery = context;
    if (socket->local_address != 0 && socket->local_address != delivery->origin.destination)
        return true;
    if (udp_match_score(socket, delivery->origin.source, delivery->origin.source_port,
                        delivery->origin.destination) < 0)
        return true;
    if (!socket_multicast_allows(delivery->stack, socket, delivery->origin.destination,
                                 delivery->origin.source))
        return true;
    udp_queue(delivery->stack, socket, &delivery->origin, delivery->payload, delivery->length);
    delivery->delivered++;
    return true;
}

void udp_input(struct usock_stack *stack, const struct ipv4_packet *packet, uint64_t now)
{
    struct udp_header header;
    const struct ipv4_header *ip = &packet->header;
    switch (udp_parse(packet->payload, packet->payload_length, ip->source, ip->destination,
                      stack->verify_checksums && !packet->from_loopback &&
                          !stack->input_checksum_verified, &header)) {
    case UDP_PARSE_TRUNCATED:
        COUNT(stack, UdpInTruncated);
        COUNT(stack, UdpInErrors);
        return;
    case UDP_PARSE_BAD_LENGTH:
        COUNT(stack, UdpInBadLength);
        COUNT(stack, UdpInErrors);
        return;
    case UDP_PARSE_BAD_CHECKSUM:
        COUNT(stack, UdpInCsumErrors);
        COUNT(stack, UdpInErrors);
        return;
    case UDP_PARSE_OK:
        break;
    }
    const uint8_t *payload = packet->payload + UDP_HEADER_LENGTH;
    size_t length = header.length - UDP_HEADER_LENGTH;
    const struct datagram_origin origin = {
        .source = ip->source,
        .source_port = header.source_port,
        .destination = ip->destination,
        .time_to_live = ip->time_to_live,
        .type_of_service = ip->type_of_service,
    };
    if (packet->destination_kind == ADDRESS_BROADCAST ||
        packet->destination_kind == ADDRESS_MULTICAST) {
        struct udp_broadcast_delivery delivery = {
            .stack = stack,
            .origin = origin,
            .payload = payload,
            .length = length,
        };
        port_table_for_each_on_port(stack, &stack->sockets.udp, header.destination_port,
                                    udp_deliver_broadcast_to, &delivery);
        if (delivery.delivered == 0)
            COUNT(stack, UdpNoPorts); /* no ICMP error about a broadcast */
        return;
    }
    struct socket *socket = udp_lookup_unicast(stack, ip->destination, header.destination_port,
                                               ip->source, header.source_port);
    if (!socket) {
        COUNT(stack, UdpNoPorts);
        icmp_send_error(stack, packet->packet, packet->length, ICMP_TYPE_DESTINATION_UNREACHABLE,
                        ICMP_CODE_PORT_UNREACHABLE, 0, now);
        return;
    }
    udp_queue(stack, socket, &origin, payload, length);
}

void udp_error(struct usock_stack *stack, const struct ipv4_error *error, uint64_t now)
{
    (void)now;
    struct udp_header header;
    if (error->quoted_payload_length < UDP_HEADER_LENGTH)
        return;
    /* Only the ports matter; the quoted length may exceed the quote. */
    header.source_port = (uint16_t)(error->quoted_payload[0] << 8 | error->quoted_payload[1]);
    header.destination_port = (uint16_t)(error->quoted_payload[2] << 8 | error->quoted_payload[3]);
    struct socket *socket =
        udp_lookup_unicast(stack, error->quoted.source, header.source_port,
                           error->quoted.destination, header.destination_port);
    if (!socket) {
        COUNT(stack, IcmpInErrorsNoSocket);
        return;
    }
    bool hard;
    int code = icmp_error_errno(error->type, error->code, &hard);
    if (error->type == ICMP_TYPE_DESTINATION_UNREACHABLE &&
        error->code == ICMP_CODE_FRAGMENTATION_NEEDED) {
        /* Linux __udp4_lib_err: ignored under IP_PMTUDISC_DONT, else hard. */
        if (socket->path_mtu_discovery == IP_PMTUDISC_DONT)
            return;
        hard = true;
    }
    if (!code)
        return;
    socket_report_icmp_error(stack, socket, code, hard, error->type, error->code, error->info,
                             error->reporter, error->quoted.destination, header.destination_port,
                             error->quoted_payload + UDP_HEADER_LENGTH,
                             error->quoted_payload_length - UDP_HEADER_LENGTH);
}
