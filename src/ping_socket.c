/*
 * ping_socket.c - datagram ICMP sockets: socket(AF_INET, SOCK_DGRAM,
 * IPPROTO_ICMP), the unprivileged "ping socket" Linux offers.
 *
 * The program sends ICMP echo requests (type 8, code 0, at least the 8-byte
 * header); the stack puts the socket's identifier in the header (the
 * socket's "port", chosen at bind or on first send) and computes the
 * checksum.  Echo replies addressed to the stack with that identifier are
 * queued whole (ICMP header and payload, no IP header), with the sender's
 * address.  Sockets are found by identifier in their own port table.
 * ICMP errors quoting one of our echo requests go to the socket of its
 * identifier, with Linux's errno and IP_RECVERR semantics (ping_err: a
 * source quench is reported as EREMOTEIO); the error queue keeps the quote
 * from its ICMP header on.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "net/icmp.h"
#include "net/ipv4.h"
#include "socket/datagram_queue.h"
#include "stack.h"
#include "wire/bytes.h"
#include "wire/checksum.h"
#include "wire/icmp.h"

struct ping_socket {
    struct datagram_queue queue;
};

static struct ping_socket *ping_of(struct socket *socket)
{
    return socket->protocol_state;
}

static int ping_create(struct usock_stack *stack, struct socket *socket)
{
    (void)stack;
    socket->protocol_state = calloc(1, sizeof(struct ping_socket));
    return socket->protocol_state ? 0 : -ENOMEM;
}

static void ping_release(struct usock_stack *stack, struct socket *socket)
{
    if (socket->hashed)
        port_table_remove(&stack->sockets.ping, socket);
    struct ping_socket *ping = ping_of(socket);
    if (!ping)
        return;
    datagram_queue_purge(&ping->queue);
    free(ping);
    socket->protocol_state = NULL;
}

static int ping_hash(struct usock_stack *stack, struct socket *socket, uint32_t address,
                     uint16_t identifier)
{
    struct port_table *table = &stack->sockets.ping;
    if (identifier == 0) {
        identifier = port_table_pick_ephemeral(stack, table, socket, address);
        if (identifier == 0)
            return -EAGAIN;
    } else if (port_table_conflicts(stack, table, socket, address, identifier)) {
        return -EADDRINUSE;
    }
    socket->local_address = address;
    socket->local_port = identifier;
    socket->bind_sequence = ++stack->sockets.bind_sequence;
    port_table_insert(stack, table, socket);
    return 0;
}

static int ping_bind(struct usock_stack *stack, struct socket *socket, uint32_t address,
                     uint16_t port)
{
    if (socket->hashed)
        return -EINVAL;
    enum address_kind kind = ipv4_address_kind(stack, address);
    if (kind != ADDRESS_LOCAL && kind != ADDRESS_ANY)
        return -EADDRNOTAVAIL;
    int error = ping_hash(stack, socket, address, port);
    if (error)
        return error;
    socket->source_address = address;
    socket->address_locked = address != 0;
    socket->port_locked = port != 0;
    return 0;
}

static int ping_connect(struct usock_stack *stack, struct socket *socket,
                        const struct sockaddr_in *address, uint64_t now)
{
    (void)now;
    if (!address) {
        /* Linux __udp_disconnect: the address connect() chose goes too. */
        socket->connected = false;
        if (!socket->address_locked && socket->hashed && socket->local_address != 0) {
            port_table_remove(&stack->sockets.ping, socket);
            socket->local_address = 0;
            socket->source_address = 0;
            port_table_insert(stack, &stack->sockets.ping, socket);
        }
        return 0;
    }
    struct ipv4_route route;
    int error = ipv4_route(stack, address->sin_addr.s_addr, &route);
    if (error)
        return error;
    if (!socket->hashed && (error = ping_hash(stack, socket, 0, 0)) != 0)
        return error;
    /* Linux ip4_datagram_connect: an unbound socket takes the route's
     * source as its local address (replies and errors must come to it). */
    if (socket->local_address == 0) {
        port_table_remove(&stack->sockets.ping, socket);
        socket->local_address = route.source;
        socket->source_address = route.source;
        port_table_insert(stack, &stack->sockets.ping, socket);
    }
    socket->peer_address = address->sin_addr.s_addr ? address->sin_addr.s_addr : route.next_hop;
    socket->peer_port = 0;
    socket->connected = true;
    return 0;
}

static ssize_t ping_send(struct usock_stack *stack, struct socket *socket,
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
    if (socket->error) {
        int error = socket->error;
        socket->error = 0;
        return -error;
    }
    size_t length = 0;
    for (size_t i = 0; i < message->msg_iovlen; i++)
        length += message->msg_iov[i].iov_len;
    if (length < ICMP_HEADER_LENGTH)
        return -EINVAL;
    if (length > IPV4_PACKET_MAX - IPV4_HEADER_LENGTH)
        return -EMSGSIZE;
    struct ipv4_route route;
    int error = ipv4_route(stack, destination, &route);
    if (error)
        return error;
    if (route.broadcast && !socket->broadcast)
        return -EACCES;
    if (destination == 0)
        destination = route.next_hop;
    if (!socket->hashed && (error = ping_hash(stack, socket, 0, 0)) != 0)
        return error;
    struct packet_buffer *buffer = packet_buffer_new(PACKET_HEADROOM, length);
    if (!buffer)
        return -ENOBUFS;
    uint8_t *icmp = packet_buffer_put(buffer, length);
    size_t offset = 0;
    for (size_t i = 0; i < message->msg_iovlen; i++) {
        if (message->msg_iov[i].iov_len == 0)
            continue;
        memcpy(icmp + offset, message->msg_iov[i].iov_base, message->msg_iov[i].iov_len);
        offset += message->msg_iov[i].iov_len;
    }
    /* Linux ping_v4_sendmsg: only echo requests, code 0. */
    if (icmp[0] != ICMP_TYPE_ECHO_REQUEST || icmp[1] != 0) {
        packet_buffer_free(buffer);
        return -EINVAL;
    }
    struct icmp_header header = {
        .type = ICMP_TYPE_ECHO_REQUEST,
        .rest = (uint32_t)socket->local_port << 16 | load_be16(icmp + 6),
    };
    icmp_emit(&header, icmp, length - ICMP_HEADER_LENGTH);
    struct ipv4_send send = {
        .source = socket->source_address ? socket->source_address : route.source,
        .destination = destination,
        .protocol = IPPROTO_ICMP,
        .time_to_live = socket->time_to_live,
        .type_of_service = socket->type_of_service,
    };
    error = ipv4_output(stack, buffer, &send, now);
    return error ? error : (ssize_t)length;
}

static ssize_t ping_receive(struct usock_stack *stack, struct socket *socket,
                            struct msghdr *message, int flags, uint64_t now)
{
    (void)stack;
    (void)now;
    if (socket->error) {
        int error = socket->error;
        socket->error = 0;
        return -error;
    }
    return datagram_queue_receive(&ping_of(socket)->queue, socket, message, flags);
}

static short ping_poll(struct usock_stack *stack, struct socket *socket)
{
    (void)stack;
    short events = POLLOUT | POLLWRNORM;
    if (ping_of(socket)->queue.head)
        events |= POLLIN | POLLRDNORM;
    if (socket->error)
        events |= POLLERR;
    return events;
}

static int ping_readable_bytes(struct socket *socket)
{
    return (int)datagram_queue_first_length(&ping_of(socket)->queue);
}

static size_t ping_receive_queue_bytes(struct socket *socket)
{
    return ping_of(socket)->queue.bytes;
}

const struct socket_operations ping_operations = {
    .type = SOCK_DGRAM,
    .protocol = IPPROTO_ICMP,
    .netid = "icmp",
    .create = ping_create,
    .release = ping_release,
    .bind = ping_bind,
    .connect = ping_connect,
    .send = ping_send,
    .receive = ping_receive,
    .shutdown = datagram_socket_shutdown,
    .poll = ping_poll,
    .readable_bytes = ping_readable_bytes,
    .receive_queue_bytes = ping_receive_queue_bytes,
    .send_queue_bytes = datagram_socket_send_queue_bytes,
    .state_name = datagram_socket_state_name,
    .is_listening = datagram_socket_is_listening,
};

/* The ping socket with identifier bound to local_address or the wildcard
 * (the exact address first); with peer nonzero, a connected socket must be
 * connected to it.  NULL when there is none. */
static struct socket *ping_lookup(struct usock_stack *stack, uint32_t local_address,
                                  uint16_t identifier, uint32_t peer)
{
    struct port_table *table = &stack->sockets.ping;
    uint32_t addresses[2] = {local_address, 0};
    for (int pass = 0; pass < 2; pass++) {
        for (struct socket *socket = port_table_first_bound(stack, table, addresses[pass],
                                                           identifier);
             socket; socket = port_table_next_bound(socket, addresses[pass], identifier)) {
            if (peer && socket->connected && socket->peer_address != peer)
                continue;
            if (!socket_device_accepts(socket, local_address))
                continue;
            return socket;
        }
    }
    return NULL;
}

bool ping_socket_deliver_reply(struct usock_stack *stack, const struct ipv4_packet *packet,
                               uint16_t identifier)
{
    struct socket *socket =
        ping_lookup(stack, packet->header.destination, identifier, packet->header.source);
    if (!socket)
        return false;
    const struct datagram_origin origin = {
        .source = packet->header.source,
        .destination = packet->header.destination,
        .time_to_live = packet->header.time_to_live,
        .type_of_service = packet->header.type_of_service,
    };
    switch (datagram_queue_push(&ping_of(socket)->queue, (size_t)socket->receive_buffer,
                                &stack->datagram_memory, &origin, packet->payload,
                                packet->payload_length)) {
    case DATAGRAM_QUEUED:
        socket_wake(stack, socket);
        break;
    case DATAGRAM_SOCKET_FULL:
        COUNT(stack, PingRcvbufErrors);
        break;
    case DATAGRAM_STACK_FULL:
        COUNT(stack, PingMemErrors);
        break;
    }
    return true;
}

void ping_socket_error(struct usock_stack *stack, const struct ipv4_error *error, uint64_t now)
{
    (void)now;
    const uint8_t *echo = error->quoted_payload;
    /* icmp.c guarantees 8 quoted bytes: the echo header. */
    if (echo[0] != ICMP_TYPE_ECHO_REQUEST) {
        COUNT(stack, IcmpInErrorsNoSocket);
        return;
    }
    struct socket *socket = ping_lookup(stack, error->quoted.source, load_be16(echo + 4), 0);
    if (!socket) {
        COUNT(stack, IcmpInErrorsNoSocket);
        return;
    }
    bool hard;
    int code = icmp_error_errno(error->type, error->code, &hard);
    if (error->type == ICMP_TYPE_SOURCE_QUENCH || error->type == ICMP_TYPE_REDIRECT)
        code = EREMOTEIO; /* "not a real error, but ping wants to see it" (Linux) */
    if (error->type == ICMP_TYPE_DESTINATION_UNREACHABLE &&
        error->code == ICMP_CODE_FRAGMENTATION_NEEDED) {
        if (socket->path_mtu_discovery == IP_PMTUDISC_DONT)
            return;
        hard = true;
    }
    socket_report_icmp_error(stack, socket, code, hard, error->type, error->code, error->info,
                             error->reporter, error->quoted.destination, 0, echo,
                             error->quoted_payload_length);
}
