/*
 * tcp_socket.c - TCP's socket operations and the lifecycle of connections.
 *
 * Lifecycle.  A connection block (struct tcp_connection) hangs off its
 * socket.  It is in the stack's connection table (by 4-tuple) from SYN-SENT
 * or SYN-RECEIVED until CLOSED, and on the stack's list of all connections
 * from creation to free.  Who holds the socket:
 *  - a descriptor, for sockets made by socket() or handed out by accept();
 *  - the listener's queues, for children not yet accepted;
 *  - the connection itself once orphaned by close() while the protocol
 *    still has work (FIN exchange, TIME_WAIT).
 * tcp_done() moves a connection to CLOSED and frees it when nobody but the
 * protocol holds it; a socket with a descriptor keeps its closed block (and
 * any unread data) until close().
 *
 * The API layer (socket/api.c) calls these operations with the stack lock
 * held and turns -EAGAIN into waiting when the socket blocks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/ipv4.h"
#include "stack.h"
#include "tcp/tcp.h"
#include "tcp/tcp_sequence.h"
#include "util/siphash.h"

/* ---- the connection table ---- */

struct tcp_four_tuple {
    uint32_t local_address;
    uint32_t remote_address;
    uint16_t local_port;
    uint16_t remote_port;
};

static uint64_t tcp_tuple_hash(const struct usock_stack *stack, uint32_t local_address,
                               uint16_t local_port, uint32_t remote_address, uint16_t remote_port)
{
    struct tcp_four_tuple key = {local_address, remote_address, local_port, remote_port};
    return siphash13(stack->secret, &key, sizeof(key));
}

int tcp_layer_init(struct tcp_layer *layer)
{
    memset(layer, 0, sizeof(*layer));
    ring_pool_init(&layer->spare_buffers, TCP_SPARE_BUFFER_BYTES, &layer->memory_bytes);
    return hash_table_init(&layer->connections, 256);
}

static void tcp_hash_connection(struct usock_stack *stack, struct tcp_connection *tcb)
{
    struct socket *socket = tcb->socket;
    hash_table_insert(&stack->tcp.connections, &tcb->connection_node,
                      tcp_tuple_hash(stack, socket->local_address, socket->local_port,
                                     socket->peer_address, socket->peer_port));
    tcb->in_connection_table = true;
}

static void tcp_unhash_connection(struct usock_stack *stack, struct tcp_connection *tcb)
{
    if (!tcb->in_connection_table)
        return;
    hash_table_remove(&stack->tcp.connections, &tcb->connection_node);
    tcb->in_connection_table = false;
    if (stack->tcp.last_found == tcb)
        stack->tcp.last_found = NULL;
}

struct tcp_connection *tcp_lookup_connection(struct usock_stack *stack, uint32_t local_address,
                                             uint16_t local_port, uint32_t remote_address,
                                             uint16_t remote_port)
{
    /* The connection found last first: a segment's peer usually sent the
     * one before it too. */
    struct tcp_connection *last = stack->tcp.last_found;
    if (last && last->socket->local_port == local_port &&
        last->socket->peer_port == remote_port && last->socket->peer_address == remote_address &&
        last->socket->local_address == local_address)
        return last;
    uint64_t hash = tcp_tuple_hash(stack, local_address, local_port, remote_address, remote_port);
    for (struct hash_node *node = hash_table_bucket(&stack->tcp.connections, hash); node;
         node = node->next) {
        if (node->hash != hash)
            continue;
        struct tcp_connection *tcb = container_of(node, struct tcp_connection, connection_node);
        struct socket *socket = tcb->socket;
        if (socket->local_address == local_address && socket->local_port == local_port &&
            socket->peer_address == remote_address && socket->peer_port == remote_port) {
            stack->tcp.last_found = tcb;
            return tcb;
        }
    }
    return NULL;
}

/* True while every socket on the port got it from connect() (visit of
 * port_table_for_each_on_port). */
static bool port_only_connected(struct socket *other, void *context)
{
    bool *shareable = context;
    if (!other->port_from_connect)
        *shareable = false;
    return *shareable;
}

uint16_t tcp_pick_port_for_connect(struct usock_stack *stack, uint32_t source,
                                   uint32_t destination, uint16_t destination_port)
{
    /* Linux's __inet_hash_connect: a port connect() chose may serve
     * other connections too, as long as each 4-tuple stays unique and no
     * socket bound the port itself.  The walk starts where a hash of the
     * destination and a per-destination step (Linux's table_perturb) say,
     * so repeated connections to one place go on where the last one
     * stopped instead of walking the used ports again. */
    struct port_table *table = &stack->sockets.tcp;
    uint32_t range = EPHEMERAL_PORT_LAST - EPHEMERAL_PORT_FIRST + 1;
    struct {
        uint32_t destination;
        uint16_t destination_port;
    } key = {destination, destination_port};
    uint64_t hash = siphash13(stack->secret, &key, sizeof(key));
    uint32_t *step = &stack->tcp.connect_port_steps[hash % TCP_CONNECT_PORT_STEPS];
    uint32_t start = (uint32_t)(hash >> 32) + *step;
    for (uint32_t i = 0; i < range; i++) {
        uint16_t candidate = (uint16_t)(EPHEMERAL_PORT_FIRST + (start + i) % range);
        bool shareable = true;
        port_table_for_each_on_port(stack, table, candidate, port_only_connected, &shareable);
        if (shareable &&
            !tcp_lookup_connection(stack, source, candidate, destination, destination_port)) {
            /* Plus a small random amount (as Linux since CVE-2022-32296):
             * one port says little of the next one to the same place. */
            *step += i + 1 + (uint32_t)random_below(&stack->random, 8);
            return candidate;
        }
    }
    return 0;
}

struct tcp_connection *tcp_lookup_listener(struct usock_stack *stack, uint32_t local_address,
                                           uint16_t local_port)
{
    uint32_t addresses[2] = {local_address, 0};
    for (int pass = 0; pass < 2; pass++) {
        struct tcp_connection *best = NULL;
        for (struct socket *socket = port_table_first_bound(stack, &stack->sockets.tcp,
                                                            addresses[pass], local_port);
             socket; socket = port_table_next_bound(socket, addresses[pass], local_port)) {
            struct tcp_connection *tcb = tcp_of(socket);
            if (tcb && tcb->state == TCPS_LISTEN &&
                (!best || socket->bind_sequence > best->socket->bind_sequence))
                best = tcb;
        }
        if (best)
            return best;
    }
    return NULL;
}

uint32_t tcp_initial_sequence(struct usock_stack *stack, uint32_t local_address,
                              uint16_t local_port, uint32_t remote_address,
                              uint16_t remote_port, uint64_t now)
{
    /* RFC 6528: ISN = M + F(4-tuple, secret), M a 4-microsecond clock. */
    struct tcp_four_tuple key = {local_address, remote_address, local_port, remote_port};
    uint32_t offset = (uint32_t)siphash24(stack->secret, &key, sizeof(key));
    return offset + (uint32_t)(now / 4000);
}

/* RFC 7323 5.4: each connection's timestamp clock starts at an offset
 * drawn from its 4-tuple and the stack's secret, so TSval reveals neither
 * uptime nor other connections' clocks. */
static uint32_t tcp_timestamp_offset_for(struct usock_stack *stack, uint32_t local_address,
                                         uint16_t local_port, uint32_t peer_address,
                                         uint16_t peer_port)
{
    struct tcp_four_tuple key = {local_address, peer_address, local_port, peer_port};
    uint8_t secret[16];
    memcpy(secret, stack->secret, sizeof(secret));
    secret[0] ^= 0x5a; /* a key of its own, unrelated to the ISN's */
    return (uint32_t)siphash24(secret, &key, sizeof(key));
}

static uint32_t tcp_timestamp_offset(struct usock_stack *stack, const struct socket *socket)
{
    return tcp_timestamp_offset_for(stack, socket->local_address, socket->local_port,
                                    socket->peer_address, socket->peer_port);
}

/* The window scale we announce: the smallest shift that lets the largest
 * receive buffer the connection may have be offered whole (Linux's
 * tcp_select_initial_window): SO_RCVBUF once set, else tcp_rmem[2]. */
static uint8_t tcp_receive_shift_for(const struct socket *socket)
{
    size_t space = socket->receive_buffer_locked ? (size_t)socket->receive_buffer
                                                 : TCP_RECEIVE_BUFFER_MAX;
    uint8_t shift = 0;
    while (shift < TCP_WINDOW_SHIFT_MAX && ((size_t)65535 << shift) < space)
        shift++;
    return shift;
}

/* The MSS we announce: the interface MTU less 40 (65495 to ourselves, as
 * Linux's loopback), or TCP_MAXSEG when smaller. */
static uint16_t tcp_advertised_mss(const struct usock_stack *stack,
                                   const struct tcp_connection *tcb, uint32_t peer)
{
    uint16_t local_mss = ipv4_address_kind(stack, peer) == ADDRESS_LOCAL
                             ? 65495
                             : (uint16_t)(stack->interface.mtu - 40);
    return tcb->user_mss && tcb->user_mss < local_mss ? tcb->user_mss : local_mss;
}

void tcp_set_send_mss(struct tcp_connection *tcb, uint32_t peer_mss)
{
    uint32_t mss = peer_mss < tcb->advertised_mss ? peer_mss : tcb->advertised_mss;
    if (tcb->user_mss && tcb->user_mss < mss)
        mss = tcb->user_mss; /* TCP_MAXSEG, set after the handshake */
    mss = mss > tcp_fixed_option_bytes(tcb) + 64 ? mss - tcp_fixed_option_bytes(tcb) : 64;
    tcb->mss = (uint16_t)mss;
}

void tcp_negotiate_options(struct tcp_connection *tcb, const struct tcp_header *syn,
                           uint64_t now)
{
    const struct tcp_options *options = &syn->options;
    /* RFC 7323 2.2: scaling only when both SYNs carry the option, each
     * side's shift then applying to the windows it sends; over 14 is
     * taken as 14 (2.3). */
    tcb->window_scaling = options->has_window_scale;
    if (tcb->window_scaling) {
        tcb->send_window_shift = options->window_scale > TCP_WINDOW_SHIFT_MAX
                                     ? TCP_WINDOW_SHIFT_MAX
                                     : options->window_scale;
    } else {
        tcb->send_window_shift = 0;
        tcb->receive_window_shift = 0;
    }
    /* RFC 2018 3: SACK when both SYNs carry SACK-permitted. */
    tcb->sack_permitted = options->sack_permitted;
    /* RFC 7323 3.2: timestamps when both SYNs carry them. */
    tcb->timestamps = options->has_timestamps;
    if (tcb->timestamps) {
        tcb->timestamp_recent = options->timestamp_value;
        tcb->timestamp_recent_time = now;
    }
    tcp_set_send_mss(tcb, options->has_mss && options->mss ? options->mss : TCP_DEFAULT_MSS);
    tcb->cwnd = TCP_INITIAL_WINDOW_SEGMENTS * tcb->mss;
    /* The window of a SYN is never scaled (RFC 7323 2.2). */
    tcb->snd_wnd = syn->window;
    tcb->max_snd_wnd = syn->window;
    tcb->snd_wl1 = syn->sequence;
}

/* ---- connection blocks ---- */

/* The send ring's size: SO_SNDBUF once the program set it; until then a
 * larger automatic size, as Linux grows an unlocked send buffer. */
static size_t tcp_send_capacity(const struct socket *socket)
{
    return socket->send_buffer_locked ? (size_t)socket->send_buffer : TCP_SEND_BUFFER_AUTO;
}

static struct tcp_connection *tcp_connection_new(struct usock_stack *stack, struct socket *socket)
{
    struct tcp_connection *tcb = calloc(1, sizeof(*tcb));
    if (!tcb)
        return NULL;
    tcb->socket = socket;
    tcb->state = TCPS_CLOSED;
    ring_init(&tcb->send_buffer, tcp_send_capacity(socket));
    ring_init(&tcb->receive_buffer, (size_t)socket->receive_buffer);
    tcb->send_buffer.pool = &stack->tcp.spare_buffers;
    tcb->receive_buffer.pool = &stack->tcp.spare_buffers;
    tcb->rto_ns = TCP_RTO_INITIAL_NS;
    tcb->mss = TCP_DEFAULT_MSS;
    tcb->ssthresh = UINT32_MAX;
    tcb->reordering = TCP_REORDERING_INITIAL;
    tcb->congestion = tcp_congestion_default();
    tcb->quickack = TCP_QUICKACK_SEGMENTS;
    tcb->keepalive_idle_ns = TCP_KEEPALIVE_IDLE_NS;
    tcb->keepalive_interval_ns = TCP_KEEPALIVE_INTERVAL_NS;
    tcb->keepalive_count = TCP_KEEPALIVE_PROBES;
    tcp_timers_init(tcb);
    tcb->all_next = stack->tcp.all;
    if (stack->tcp.all)
        stack->tcp.all->all_prev = tcb;
    stack->tcp.all = tcb;
    socket->protocol_state = tcb;
    return tcb;
}

static void tcp_purge_out_of_order(struct tcp_connection *tcb)
{
    while (tcb->out_of_order) {
        struct tcp_out_of_order *next = tcb->out_of_order->next;
        *tcb->receive_buffer.pool->accounting -= sizeof(*tcb->out_of_order) + tcb->out_of_order->length;
        free(tcb->out_of_order);
        tcb->out_of_order = next;
    }
    tcb->out_of_order_count = 0;
    tcb->out_of_order_bytes = 0;
}

/* Frees the block and everything it holds; the socket stays. */
static void tcp_connection_free(struct usock_stack *stack, struct tcp_connection *tcb)
{
    if (tcb->state == TCPS_ESTABLISHED || tcb->state == TCPS_CLOSE_WAIT)
        stack->tcp.established_count--;
    if (tcb->state == TCPS_TIME_WAIT)
        stack->tcp.time_wait_count--;
    tcp_timers_cancel(stack, tcb);
    tcp_unhash_connection(stack, tcb);
    if (tcb->socket->hashed)
        port_table_remove(&stack->sockets.tcp, tcb->socket);
    ring_destroy(&tcb->send_buffer);
    ring_destroy(&tcb->receive_buffer);
    tcp_purge_out_of_order(tcb);
    tcp_sack_forget(tcb);
    if (tcb->all_prev)
        tcb->all_prev->all_next = tcb->all_next;
    else
        stack->tcp.all = tcb->all_next;
    if (tcb->all_next)
        tcb->all_next->all_prev = tcb->all_prev;
    tcb->socket->protocol_state = NULL;
    free(tcb);
}

void tcp_layer_destroy(struct usock_stack *stack)
{
    /* Sockets held only by the protocol (orphans, unaccepted children) go
     * with their blocks; sockets with descriptors are closed afterwards by
     * the socket layer, finding no block. */
    while (stack->tcp.all) {
        struct tcp_connection *tcb = stack->tcp.all;
        struct socket *socket = tcb->socket;
        bool held_by_protocol = tcb->orphaned || (socket->fd < 0);
        tcp_connection_free(stack, tcb);
        if (held_by_protocol)
            socket_put(socket);
    }
    if (stack->tcp.connections.buckets)
        hash_table_destroy(&stack->tcp.connections);
    ring_pool_destroy(&stack->tcp.spare_buffers);
}

void tcp_set_state(struct usock_stack *stack, struct tcp_connection *tcb, enum tcp_state state)
{
    bool was_established = tcb->state == TCPS_ESTABLISHED || tcb->state == TCPS_CLOSE_WAIT;
    bool is_established = state == TCPS_ESTABLISHED || state == TCPS_CLOSE_WAIT;
    if (was_established && !is_established)
        stack->tcp.established_count--;
    if (!was_established && is_established)
        stack->tcp.established_count++;
    if (tcb->state == TCPS_TIME_WAIT)
        stack->tcp.time_wait_count--;
    if (state == TCPS_TIME_WAIT)
        stack->tcp.time_wait_count++;
    tcb->state = state;
    socket_wake(stack, tcb->socket);
    if (tcb->listener)
        socket_wake(stack, tcb->listener->socket);
}

static void tcp_remove_from_accept_queue(struct tcp_connection *tcb)
{
    struct tcp_connection *listener = tcb->listener;
    struct tcp_connection **link = &listener->accept_head;
    struct tcp_connection *previous = NULL;
    while (*link && *link != tcb) {
        previous = *link;
        link = &(*link)->queue_next;
    }
    if (!*link)
        return;
    *link = tcb->queue_next;
    if (listener->accept_tail == tcb)
        listener->accept_tail = previous;
    tcb->queue_next = NULL;
    tcb->on_accept_queue = false;
    listener->accept_queue_length--;
}

bool tcp_done(struct usock_stack *stack, struct tcp_connection *tcb, int error)
{
    struct socket *socket = tcb->socket;
    bool was_connecting = tcb->state == TCPS_SYN_SENT || tcb->state == TCPS_SYN_RECEIVED;
    if (was_connecting && !tcb->listener)
        COUNT(stack, TcpAttemptFails);
    tcp_set_state(stack, tcb, TCPS_CLOSED);
    tcp_timers_cancel(stack, tcb);
    tcp_unhash_connection(stack, tcb);
    if (error)
        socket->error = error;
    socket->shutdown = SHUTDOWN_RECEIVE | SHUTDOWN_SEND;
    socket_wake(stack, socket);

    if (tcb->orphaned) {
        tcp_connection_free(stack, tcb);
        socket_put(socket);
        return true;
    }
    if (tcb->listener && socket->fd < 0) {
        if (tcb->on_accept_queue)
            return false; /* accept() hands it out; the reader sees the error */
        tcb->listener->syn_queue_length--;
        tcp_connection_free(stack, tcb);
        socket_put(socket);
        return true;
    }
    /* A descriptor holds it: keep the block (unread data, the error) until
     * close(), but give the port back unless bind() named it. */
    if (!socket->port_locked && socket->hashed)
        port_table_remove(&stack->sockets.tcp, socket);
    return false;
}

/* Sends a RST if the state calls for one, then ends the connection. */
static void tcp_abort(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now,
                      int error)
{
    if (tcb->state >= TCPS_SYN_RECEIVED && tcb->state != TCPS_TIME_WAIT)
        tcp_send_reset(stack, tcb, now);
    tcp_done(stack, tcb, error);
}

/* ---- passive open ---- */

/* A new connection block for a listener's child, addressed from packet
 * and counted on the SYN queue (tcp_child_established moves it on); NULL
 * when memory is short (counted). */
static struct tcp_connection *tcp_child_new(struct usock_stack *stack,
                                            struct tcp_connection *listener,
                                            const struct ipv4_packet *packet,
                                            const struct tcp_header *header)
{
    struct socket *socket = socket_new_child(stack, listener->socket);
    if (!socket) {
        COUNT(stack, TcpListenDrops);
        return NULL;
    }
    struct tcp_connection *tcb = tcp_connection_new(stack, socket);
    if (!tcb) {
        socket_put(socket);
        COUNT(stack, TcpListenDrops);
        return NULL;
    }
    struct tcp_connection *parent = listener;
    tcb->nodelay = parent->nodelay;
    tcb->corked = parent->corked;
    tcb->user_mss = parent->user_mss;
    tcb->keepalive = parent->keepalive;
    tcb->keepalive_idle_ns = parent->keepalive_idle_ns;
    tcb->keepalive_interval_ns = parent->keepalive_interval_ns;
    tcb->keepalive_count = parent->keepalive_count;
    tcb->user_timeout_ns = parent->user_timeout_ns;
    tcb->congestion = parent->congestion;
    socket->keepalive = listener->socket->keepalive;
    socket->local_address = packet->header.destination;
    socket->source_address = packet->header.destination;
    socket->local_port = header->destination_port;
    socket->peer_address = packet->header.source;
    socket->peer_port = header->source_port;
    socket->connected = true;
    tcb->listener = listener;
    listener->syn_queue_length++;
    tcb->advertised_mss = tcp_advertised_mss(stack, tcb, socket->peer_address);
    tcb->receive_window_shift = tcp_receive_shift_for(socket);
    tcb->timestamp_offset = tcp_timestamp_offset(stack, socket);
    return tcb;
}

struct tcp_connection *tcp_create_child(struct usock_stack *stack, struct tcp_connection *listener,
                                        const struct ipv4_packet *packet,
                                        const struct tcp_header *header, uint64_t now)
{
    if (listener->accept_queue_length > (unsigned)listener->backlog) {
        COUNT(stack, TcpListenOverflows);
        COUNT(stack, TcpListenDrops);
        return NULL;
    }
    unsigned syn_limit = listener->backlog < 128 ? 128 : (unsigned)listener->backlog;
    if (listener->syn_queue_length >= syn_limit) {
        /* A full SYN queue (a flood, or a storm of real clients): answer
         * with a cookie and keep nothing (RFC 4987 3.6). */
        tcp_send_syn_cookie(stack, listener, packet, header, now);
        return NULL;
    }
    struct tcp_connection *tcb = tcp_child_new(stack, listener, packet, header);
    if (!tcb)
        return NULL;
    tcb->irs = header->sequence;
    tcb->rcv_nxt = header->sequence + 1;
    tcb->rcv_adv = tcb->rcv_nxt;
    tcb->iss = tcp_initial_sequence(stack, tcb->socket->local_address, tcb->socket->local_port,
                                    tcb->socket->peer_address, tcb->socket->peer_port, now);
    tcb->snd_una = tcb->snd_nxt = tcb->snd_max = tcb->iss;
    tcb->recover = tcb->iss;
    tcb->flight_window_end = tcb->iss;
    tcb->snd_wl2 = tcb->iss;
    tcp_negotiate_options(tcb, header, now);
    tcp_set_state(stack, tcb, TCPS_SYN_RECEIVED);
    tcp_hash_connection(stack, tcb);
    COUNT(stack, TcpPassiveOpens);
    tcb->last_received = now;
    tcp_output(stack, tcb, now);
    return tcb;
}

void tcp_send_syn_cookie(struct usock_stack *stack, struct tcp_connection *listener,
                         const struct ipv4_packet *packet, const struct tcp_header *syn,
                         uint64_t now)
{
    const struct tcp_options *options = &syn->options;
    uint16_t peer_mss = options->has_mss && options->mss ? options->mss : TCP_DEFAULT_MSS;
    struct tcp_header reply = {
        .source_port = syn->destination_port,
        .destination_port = syn->source_port,
        .acknowledgment = syn->sequence + 1,
        .flags = TCP_FLAG_SYN | TCP_FLAG_ACK,
        .sequence = tcp_syncookie_make(stack, packet->header.destination, syn->destination_port,
                                       packet->header.source, syn->source_port, syn->sequence,
                                       peer_mss, now),
    };
    /* What a SYN-RECEIVED child would have said (tcp_child_new): a child
     * copies the listener's socket options. */
    struct tcp_connection shape = {.user_mss = listener->user_mss};
    reply.options.has_mss = true;
    reply.options.mss = tcp_advertised_mss(stack, &shape, packet->header.source);
    size_t window = (size_t)listener->socket->receive_buffer;
    reply.window = (uint16_t)(window > 65535 ? 65535 : window);
    if (options->has_window_scale) {
        reply.options.has_window_scale = true;
        reply.options.window_scale = tcp_receive_shift_for(listener->socket);
    }
    if (options->has_timestamps) {
        /* Without timestamps there is nowhere to keep window scaling and
         * SACK: the connection goes without them (Linux does the same). */
        reply.options.has_timestamps = true;
        reply.options.sack_permitted = options->sack_permitted;
        uint32_t clock_value =
            (uint32_t)(now / 1000000) +
            tcp_timestamp_offset_for(stack, packet->header.destination, syn->destination_port,
                                     packet->header.source, syn->source_port);
        reply.options.timestamp_value = tcp_syncookie_timestamp(clock_value, options);
        reply.options.timestamp_echo = options->timestamp_value;
    } else {
        reply.options.has_window_scale = false;
    }
    COUNT(stack, TcpSynCookiesSent);
    tcp_send_stateless(stack, packet->header.destination, packet->header.source, &reply, now);
}

struct tcp_connection *tcp_create_child_from_cookie(struct usock_stack *stack,
                                                    struct tcp_connection *listener,
                                                    const struct ipv4_packet *packet,
                                                    const struct tcp_header *ack,
                                                    uint16_t peer_mss, uint64_t now)
{
    if (listener->accept_queue_length > (unsigned)listener->backlog) {
        COUNT(stack, TcpListenOverflows);
        COUNT(stack, TcpListenDrops);
        return NULL;
    }
    struct tcp_connection *tcb = tcp_child_new(stack, listener, packet, ack);
    if (!tcb)
        return NULL;
    const struct tcp_options *options = &ack->options;
    tcb->irs = ack->sequence - 1;
    tcb->rcv_nxt = ack->sequence;
    size_t window = (size_t)tcb->socket->receive_buffer;
    tcb->rcv_adv = tcb->rcv_nxt + (uint32_t)(window > 65535 ? 65535 : window);
    tcb->iss = ack->acknowledgment - 1;
    tcb->snd_una = tcb->snd_nxt = tcb->snd_max = ack->acknowledgment;
    tcb->syn_acknowledged = true;
    tcb->recover = tcb->iss;
    tcb->flight_window_end = tcb->iss;
    tcb->timestamps = options->has_timestamps;
    tcb->window_scaling = false;
    tcb->sack_permitted = false;
    if (tcb->timestamps) {
        tcp_syncookie_options(options->timestamp_echo, &tcb->window_scaling,
                              &tcb->send_window_shift, &tcb->sack_permitted);
        tcb->timestamp_recent = options->timestamp_value;
        tcb->timestamp_recent_time = now;
    }
    if (!tcb->window_scaling)
        tcb->receive_window_shift = 0;
    tcp_set_send_mss(tcb, peer_mss);
    tcb->cwnd = TCP_INITIAL_WINDOW_SEGMENTS * tcb->mss;
    tcb->snd_wnd = (uint32_t)ack->window << tcb->send_window_shift;
    tcb->max_snd_wnd = tcb->snd_wnd;
    tcb->snd_wl1 = ack->sequence;
    tcb->snd_wl2 = ack->acknowledgment;
    tcb->last_received = now;
    tcp_set_state(stack, tcb, TCPS_ESTABLISHED);
    tcp_hash_connection(stack, tcb);
    COUNT(stack, TcpPassiveOpens);
    tcp_keepalive_reset(stack, tcb, now);
    tcp_child_established(stack, tcb);
    return tcb;
}

void tcp_child_established(struct usock_stack *stack, struct tcp_connection *tcb)
{
    struct tcp_connection *listener = tcb->listener;
    listener->syn_queue_length--;
    tcb->on_accept_queue = true;
    tcb->queue_next = NULL;
    if (listener->accept_tail)
        listener->accept_tail->queue_next = tcb;
    else
        listener->accept_head = tcb;
    listener->accept_tail = tcb;
    listener->accept_queue_length++;
    socket_wake(stack, listener->socket);
}

/* ---- socket operations ---- */

static int tcp_create(struct usock_stack *stack, struct socket *socket)
{
    /* What Linux reports for a new TCP socket (tcp_rmem[1], tcp_wmem[1]). */
    socket->receive_buffer = TCP_RECEIVE_BUFFER_DEFAULT;
    socket->send_buffer = TCP_SEND_BUFFER_DEFAULT;
    return tcp_connection_new(stack, socket) ? 0 : -ENOMEM;
}

/* Resets and frees every child of a listener that is closing. */
static void tcp_drop_children(struct usock_stack *stack, struct tcp_connection *listener,
                              uint64_t now)
{
    struct tcp_connection *tcb = stack->tcp.all;
    while (tcb) {
        struct tcp_connection *next = tcb->all_next;
        if (tcb->listener == listener && tcb->socket->fd < 0) {
            if (tcb->on_accept_queue)
                tcp_remove_from_accept_queue(tcb);
            else
                listener->syn_queue_length--;
            if (tcb->state >= TCPS_SYN_RECEIVED && tcb->state != TCPS_TIME_WAIT &&
                tcb->state != TCPS_CLOSED)
                tcp_send_reset(stack, tcb, now);
            struct socket *socket = tcb->socket;
            tcp_connection_free(stack, tcb);
            socket_put(socket);
            /* Freeing may have unlinked next's neighbours, never next. */
        } else if (tcb->listener == listener) {
            tcb->listener = NULL; /* accepted: no longer the listener's */
        }
        tcb = next;
    }
}

static void tcp_release(struct usock_stack *stack, struct socket *socket)
{
    struct tcp_connection *tcb = tcp_of(socket);
    if (!tcb)
        return;
    uint64_t now = usock_stack_now(stack);
    if (tcb->listener && tcb->socket->fd >= 0)
        tcb->listener = NULL;
    switch (tcb->state) {
    case TCPS_LISTEN:
        tcp_drop_children(stack, tcb, now);
        socket->listening = false;
        tcp_connection_free(stack, tcb);
        return;
    case TCPS_CLOSED:
    case TCPS_SYN_SENT:
        tcp_connection_free(stack, tcb);
        return;
    default:
        break;
    }
    /* RFC 9293 3.10.4 and RFC 2525 2.17: closing with unread data aborts;
     * SO_LINGER with a zero time aborts too. */
    if (tcb->receive_buffer.length > 0 || (socket->linger && socket->linger_seconds == 0)) {
        if (tcb->receive_buffer.length > 0)
            COUNT(stack, TcpAbortOnClose);
        else
            COUNT(stack, TcpAbortOnLinger);
        if (tcb->state != TCPS_TIME_WAIT)
            tcp_send_reset(stack, tcb, now);
        tcp_connection_free(stack, tcb);
        return;
    }
    tcb->orphaned = true;
    socket->references++; /* the protocol's hold until CLOSED */
    socket->shutdown |= SHUTDOWN_RECEIVE | SHUTDOWN_SEND;
    switch (tcb->state) {
    case TCPS_SYN_RECEIVED:
    case TCPS_ESTABLISHED:
        tcb->fin_queued = true;
        tcp_set_state(stack, tcb, TCPS_FIN_WAIT_1);
        tcp_output(stack, tcb, now);
        break;
    case TCPS_CLOSE_WAIT:
        tcb->fin_queued = true;
        tcp_set_state(stack, tcb, TCPS_LAST_ACK);
        tcp_output(stack, tcb, now);
        break;
    case TCPS_FIN_WAIT_2:
        /* Linux tcp_fin_timeout: an orphan does not wait for ever. */
        stack_timer_arm(stack, &tcb->keepalive_timer, now + TCP_FIN_TIMEOUT_NS);
        break;
    default:
        break; /* FIN_WAIT_1, CLOSING, LAST_ACK, TIME_WAIT carry on */
    }
}

static int tcp_bind(struct usock_stack *stack, struct socket *socket, uint32_t address,
                    uint16_t port)
{
    struct tcp_connection *tcb = tcp_of(socket);
    if (socket->hashed || !tcb || tcb->state != TCPS_CLOSED)
        return -EINVAL;
    enum address_kind kind = ipv4_address_kind(stack, address);
    if (kind != ADDRESS_LOCAL && kind != ADDRESS_ANY)
        return -EADDRNOTAVAIL;
    struct port_table *table = &stack->sockets.tcp;
    if (port == 0) {
        port = port_table_pick_ephemeral(stack, table, socket, address);
        if (port == 0)
            return -EADDRINUSE;
    } else if (port_table_conflicts(stack, table, socket, address, port)) {
        return -EADDRINUSE;
    }
    socket->local_address = address;
    socket->source_address = address;
    socket->local_port = port;
    socket->address_locked = address != 0;
    socket->port_locked = port != 0;
    socket->bind_sequence = ++stack->sockets.bind_sequence;
    port_table_insert(stack, table, socket);
    return 0;
}


static int tcp_connect(struct usock_stack *stack, struct socket *socket,
                       const struct sockaddr_in *address, uint64_t now)
{
    struct tcp_connection *tcb = tcp_of(socket);
    if (!tcb)
        return -EBADF;
    if (!address) {
        /* connect(AF_UNSPEC): Linux's tcp_disconnect, an abort. */
        if (tcb->state == TCPS_LISTEN) {
            tcp_drop_children(stack, tcb, now);
            socket->listening = false;
            tcp_set_state(stack, tcb, TCPS_CLOSED);
        } else if (tcb->state != TCPS_CLOSED) {
            /* Linux tcp_disconnect: the socket itself reports ECONNRESET. */
            bool synchronized = tcb->state >= TCPS_SYN_RECEIVED;
            tcp_abort(stack, tcb, now, synchronized ? ECONNRESET : 0);
        }
        socket->connected = false;
        socket->shutdown = 0;
        if (!socket->address_locked) {
            if (socket->hashed && socket->local_address != 0) {
                port_table_remove(&stack->sockets.tcp, socket);
                socket->local_address = 0;
                port_table_insert(stack, &stack->sockets.tcp, socket);
            }
            socket->local_address = 0;
            socket->source_address = 0;
        }
        /* The port goes back unless bind() named it; getsockname() goes on
         * showing it, as Linux's does. */
        if (!socket->port_locked && socket->hashed)
            port_table_remove(&stack->sockets.tcp, socket);
        return 0;
    }
    switch (tcb->state) {
    case TCPS_CLOSED:
        break;
    case TCPS_SYN_SENT:
    case TCPS_SYN_RECEIVED:
        return -EALREADY;
    default:
        /* Linux: the first connect() after a nonblocking one completed
         * says success; later ones EISCONN. */
        if (tcb->connect_unreported) {
            tcb->connect_unreported = false;
            return 0;
        }
        return -EISCONN;
    }
    if (socket->error) {
        /* A failed earlier attempt: report it first, as SO_ERROR would. */
        int error = socket->error;
        socket->error = 0;
        return -error;
    }
    uint32_t destination = address->sin_addr.s_addr;
    uint16_t destination_port = ntohs(address->sin_port);
    struct ipv4_route route;
    int error = ipv4_route(stack, destination, &route);
    if (error)
        return error;
    if (route.broadcast || ipv4_address_kind(stack, destination) == ADDRESS_MULTICAST)
        return -ENETUNREACH;
    if (destination == 0)
        destination = route.next_hop;
    uint32_t source = socket->source_address ? socket->source_address : route.source;
    if (!socket->hashed) {
        struct port_table *table = &stack->sockets.tcp;
        uint16_t port = tcp_pick_port_for_connect(stack, source, destination, destination_port);
        if (port == 0)
            return -EADDRNOTAVAIL;
        socket->local_port = port;
        socket->port_from_connect = true;
        socket->bind_sequence = ++stack->sockets.bind_sequence;
        socket->local_address = 0;
        port_table_insert(stack, table, socket);
    }
    if (tcp_lookup_connection(stack, source, socket->local_port, destination, destination_port))
        return -EADDRNOTAVAIL;
    if (socket->local_address == 0) {
        port_table_remove(&stack->sockets.tcp, socket);
        socket->local_address = source;
        port_table_insert(stack, &stack->sockets.tcp, socket);
    }
    socket->source_address = source;
    socket->peer_address = destination;
    socket->peer_port = destination_port;
    socket->connected = true;
    socket->shutdown = 0;
    ring_set_capacity(&tcb->send_buffer, tcp_send_capacity(socket));
    ring_set_capacity(&tcb->receive_buffer, (size_t)socket->receive_buffer);
    tcb->advertised_mss = tcp_advertised_mss(stack, tcb, destination);
    tcb->mss = TCP_DEFAULT_MSS < tcb->advertised_mss ? TCP_DEFAULT_MSS : tcb->advertised_mss;
    /* Offer window scaling and timestamps; the SYN-ACK says what stays. */
    tcb->window_scaling = true;
    tcb->timestamps = true;
    tcb->sack_permitted = true;
    tcb->receive_window_shift = tcp_receive_shift_for(socket);
    tcb->send_window_shift = 0;
    tcb->timestamp_recent = 0;
    tcb->iss = tcp_initial_sequence(stack, source, socket->local_port, destination,
                                    destination_port, now);
    tcb->timestamp_offset = tcp_timestamp_offset(stack, socket);
    tcb->snd_una = tcb->snd_nxt = tcb->snd_max = tcb->iss;
    tcb->recover = tcb->iss;
    tcb->flight_window_end = tcb->iss;
    tcb->rto_ns = TCP_RTO_INITIAL_NS;
    tcb->retransmits = 0;
    tcb->reset_received = false;
    tcb->soft_error = 0;
    tcb->fin_queued = false;
    tcb->fin_received = false;
    tcb->syn_acknowledged = false;
    tcb->last_received = now;
    tcp_set_state(stack, tcb, TCPS_SYN_SENT);
    tcp_hash_connection(stack, tcb);
    tcb->connect_unreported = true;
    COUNT(stack, TcpActiveOpens);
    tcp_output(stack, tcb, now);
    return -EINPROGRESS;
}

static int tcp_connect_result(struct usock_stack *stack, struct socket *socket)
{
    (void)stack;
    struct tcp_connection *tcb = tcp_of(socket);
    if (!tcb)
        return -EBADF;
    if (tcb->state == TCPS_SYN_SENT || tcb->state == TCPS_SYN_RECEIVED)
        return -EALREADY;
    tcb->connect_unreported = false;
    if (tcb->state == TCPS_CLOSED) {
        int error = socket->error ? socket->error : ECONNREFUSED;
        socket->error = 0;
        return -error;
    }
    return 0;
}

static int tcp_listen(struct usock_stack *stack, struct socket *socket, int backlog,
                      uint64_t now)
{
    (void)now;
    struct tcp_connection *tcb = tcp_of(socket);
    if (!tcb)
        return -EBADF;
    /* Linux clamps to somaxconn, comparing as unsigned. */
    if ((unsigned)backlog > TCP_BACKLOG_MAX)
        backlog = TCP_BACKLOG_MAX;
    if (tcb->state == TCPS_LISTEN) {
        tcb->backlog = backlog;
        return 0;
    }
    if (tcb->state != TCPS_CLOSED || socket->connected)
        return -EINVAL;
    struct port_table *table = &stack->sockets.tcp;
    socket->listening = true;
    if (!socket->hashed) {
        uint16_t port = port_table_pick_ephemeral(stack, table, socket, 0);
        if (port == 0) {
            socket->listening = false;
            return -EADDRINUSE;
        }
        socket->local_port = port;
        socket->bind_sequence = ++stack->sockets.bind_sequence;
        port_table_insert(stack, table, socket);
    } else if (port_table_conflicts(stack, table, socket, socket->local_address,
                                    socket->local_port)) {
        socket->listening = false;
        return -EADDRINUSE;
    }
    tcb->backlog = backlog;
    tcp_set_state(stack, tcb, TCPS_LISTEN);
    return 0;
}

static int tcp_accept(struct usock_stack *stack, struct socket *socket, struct socket **child)
{
    (void)stack;
    struct tcp_connection *tcb = tcp_of(socket);
    if (!tcb || tcb->state != TCPS_LISTEN)
        return -EINVAL;
    struct tcp_connection *ready = tcb->accept_head;
    if (!ready)
        return -EAGAIN;
    tcp_remove_from_accept_queue(ready);
    ready->listener = NULL;
    *child = ready->socket;
    return 0;
}

/* What recv() sees once the queue is empty: EOF, an error, or wait. */
static ssize_t tcp_receive_empty(struct socket *socket, struct tcp_connection *tcb)
{
    if (socket->error) {
        int error = socket->error;
        socket->error = 0;
        return -error;
    }
    if (tcb->fin_received || (socket->shutdown & SHUTDOWN_RECEIVE))
        return 0;
    if (tcb->state == TCPS_CLOSED)
        return socket->connected ? 0 : -ENOTCONN;
    if (tcb->state == TCPS_LISTEN)
        return -ENOTCONN;
    return -EAGAIN;
}

/* recv(MSG_OOB), Linux's tcp_recv_urg: the one urgent byte, once. */
static ssize_t tcp_receive_urgent(struct socket *socket, struct tcp_connection *tcb,
                                  struct msghdr *message, int flags)
{
    if (tcb->state == TCPS_LISTEN)
        return -ENOTCONN;
    if (socket->urgent_inline || tcb->urgent_state == TCP_URGENT_NONE ||
        tcb->urgent_state == TCP_URGENT_READ)
        return -EINVAL;
    message->msg_namelen = 0;
    if (tcb->urgent_state == TCP_URGENT_VALID) {
        size_t room = 0;
        for (size_t i = 0; i < message->msg_iovlen; i++)
            room += message->msg_iov[i].iov_len;
        message->msg_flags |= MSG_OOB;
        if (room == 0) {
            message->msg_flags |= MSG_TRUNC;
            return 0;
        }
        for (size_t i = 0; i < message->msg_iovlen; i++) {
            if (message->msg_iov[i].iov_len) {
                *(uint8_t *)message->msg_iov[i].iov_base = tcb->urgent_byte;
                break;
            }
        }
        if (!(flags & MSG_PEEK))
            tcb->urgent_state = TCP_URGENT_READ;
        return 1;
    }
    if (tcb->state == TCPS_CLOSED || tcb->fin_received || (socket->shutdown & SHUTDOWN_RECEIVE))
        return 0;
    return -EAGAIN; /* the pointer came, the byte has not */
}

void tcp_autotune_receive(struct usock_stack *stack, struct tcp_connection *tcb, size_t copied,
                          uint64_t now)
{
    /* Dynamic right-sizing: measure what the program reads per round
     * trip; when a round trip's reading beat the best so far, make room
     * for twice it, so the window never limits a sender the reader can
     * keep up with.  The round trip: srtt, or 1 ms when none is known. */
    uint64_t round_trip = tcb->srtt_ns > 0 ? tcb->srtt_ns : 1000000;
    if (round_trip < TCP_AUTOTUNE_ROUND_TRIP_MIN_NS)
        round_trip = TCP_AUTOTUNE_ROUND_TRIP_MIN_NS;
    tcb->autotune_copied += copied;
    if (tcb->autotune_time == 0) {
        tcb->autotune_time = now;
        return;
    }
    if (now - tcb->autotune_time < round_trip)
        return;
    size_t measured = tcb->autotune_copied;
    tcb->autotune_copied = 0;
    tcb->autotune_time = now;
    if (measured <= tcb->autotune_space)
        return;
    tcb->autotune_space = measured;
    size_t wanted = 2 * measured + 16 * (size_t)tcb->advertised_mss;
    if (wanted > TCP_RECEIVE_BUFFER_MAX)
        wanted = TCP_RECEIVE_BUFFER_MAX;
    if (wanted <= tcb->receive_buffer.capacity)
        return;
    if (tcp_memory_pressure(&stack->tcp)) {
        COUNT(stack, TcpMemoryPressures); /* tcp_mem pressure: no growth */
        return;
    }
    ring_set_capacity(&tcb->receive_buffer, wanted); /* on failure, stays */
}

void tcp_autotune_send(struct usock_stack *stack, struct tcp_connection *tcb)
{
    if (tcb->socket->send_buffer_locked)
        return;
    if (tcp_memory_pressure(&stack->tcp)) {
        COUNT(stack, TcpMemoryPressures);
        return;
    }
    /* Doubling at least, so a window growing segment by segment costs a
     * handful of reallocations, not one per ACK. */
    size_t wanted = 2 * (size_t)tcb->cwnd;
    if (wanted < 2 * tcb->send_buffer.capacity)
        wanted = 2 * tcb->send_buffer.capacity;
    if (wanted > TCP_SEND_BUFFER_MAX)
        wanted = TCP_SEND_BUFFER_MAX;
    if (wanted > tcb->send_buffer.capacity)
        ring_set_capacity(&tcb->send_buffer, wanted);
}

static int tcp_at_urgent_mark(struct socket *socket)
{
    struct tcp_connection *tcb = tcp_of(socket);
    if (!tcb || tcb->state == TCPS_LISTEN)
        return -EINVAL; /* Linux tcp_ioctl */
    return tcb->urgent_state != TCP_URGENT_NONE &&
           tcb->urgent_sequence == tcp_read_sequence(tcb);
}

static ssize_t tcp_receive(struct usock_stack *stack, struct socket *socket,
                           struct msghdr *message, int flags, uint64_t now)
{
    struct tcp_connection *tcb = tcp_of(socket);
    message->msg_flags = 0;
    message->msg_controllen = 0;
    if (!tcb)
        return -ENOTCONN;
    if (flags & MSG_OOB)
        return tcp_receive_urgent(socket, tcb, message, flags);
    /* Out-of-line urgent data: a read stops at the mark, and one that
     * starts there steps over the urgent byte (Linux tcp_recvmsg). */
    size_t skip = 0, limit = tcb->receive_buffer.length;
    if (tcb->urgent_state != TCP_URGENT_NONE) {
        uint32_t offset = tcb->urgent_sequence - tcp_read_sequence(tcb);
        if (offset == 0 && !socket->urgent_inline && tcb->urgent_state != TCP_URGENT_PENDING)
            skip = 1;
        else if (offset > 0 && offset < limit)
            limit = offset;
    }
    if (limit <= skip)
        return tcp_receive_empty(socket, tcb);
    size_t copied = 0;
    for (size_t i = 0; i < message->msg_iovlen && skip + copied < limit; i++) {
        size_t wanted = message->msg_iov[i].iov_len;
        if (wanted > limit - skip - copied)
            wanted = limit - skip - copied;
        size_t got = ring_peek(&tcb->receive_buffer, skip + copied, message->msg_iov[i].iov_base,
                               wanted);
        copied += got;
        if (got < message->msg_iov[i].iov_len)
            break;
    }
    message->msg_namelen = 0; /* stream sockets give no source address */
    if (flags & MSG_PEEK)
        return (ssize_t)copied;
    ring_discard(&tcb->receive_buffer, skip + copied);
    if (tcb->urgent_state != TCP_URGENT_PENDING && tcb->urgent_state != TCP_URGENT_NONE &&
        seq_gt(tcp_read_sequence(tcb), tcb->urgent_sequence))
        tcb->urgent_state = TCP_URGENT_NONE; /* the reader passed the mark */
    if (!socket->receive_buffer_locked)
        tcp_autotune_receive(stack, tcb, copied, now);
    if (tcb->out_of_order && seq_leq(tcb->out_of_order->sequence, tcb->rcv_nxt) &&
        !tcb->fin_received) {
        /* Out-of-order data the full ring could not take: room now. */
        if (tcp_drain_out_of_order(stack, tcb) && !tcp_process_fin(stack, tcb, now))
            return (ssize_t)copied;
        tcb->ack_now = true;
        tcp_output(stack, tcb, now);
    }
    /* RFC 9293 3.8.6.2.2 and Linux's tcp_cleanup_rbuf: when the window the
     * peer last heard of is at most half the buffer and reading at least
     * doubled it (by a segment or half the buffer at least: receiver SWS
     * avoidance), say so now instead of waiting for the next segment. */
    uint32_t advertised = seq_gt(tcb->rcv_adv, tcb->rcv_nxt) ? tcb->rcv_adv - tcb->rcv_nxt : 0;
    uint32_t window_now = tcp_receive_window(tcb);
    uint32_t threshold = tcb->advertised_mss;
    if (tcb->receive_buffer.capacity / 2 < threshold)
        threshold = (uint32_t)(tcb->receive_buffer.capacity / 2);
    if (tcb->state >= TCPS_ESTABLISHED && tcb->state != TCPS_TIME_WAIT && !tcb->fin_received &&
        2 * (size_t)advertised <= tcb->receive_buffer.capacity && window_now >= 2 * advertised &&
        window_now - advertised >= threshold)
        tcp_send_ack(stack, tcb, now);
    return (ssize_t)copied;
}

static ssize_t tcp_send(struct usock_stack *stack, struct socket *socket,
                        const struct msghdr *message, int flags, uint64_t now)
{
    struct tcp_connection *tcb = tcp_of(socket);
    if (!tcb)
        return -EPIPE;
    if (socket->error) {
        int error = socket->error;
        socket->error = 0;
        return -error;
    }
    if ((socket->shutdown & SHUTDOWN_SEND) || tcb->fin_queued)
        return -EPIPE;
    switch (tcb->state) {
    case TCPS_CLOSED:
    case TCPS_LISTEN:
        return -EPIPE; /* Linux sk_stream_wait_connect */
    case TCPS_SYN_SENT:
    case TCPS_SYN_RECEIVED:
        return -EAGAIN; /* wait for the handshake (Linux sk_stream_wait_connect) */
    case TCPS_ESTABLISHED:
    case TCPS_CLOSE_WAIT:
        break;
    default:
        return -EPIPE;
    }
    if (!tcb->send_buffer.data && !tcp_memory_allows(&stack->tcp, tcb->send_buffer.capacity)) {
        COUNT(stack, TcpMemoryDrops);
        return -ENOBUFS; /* past tcp_mem: no new buffer */
    }
    size_t written = 0;
    for (size_t i = 0; i < message->msg_iovlen; i++) {
        size_t put = ring_write(&tcb->send_buffer, message->msg_iov[i].iov_base,
                                message->msg_iov[i].iov_len);
        written += put;
        if (put < message->msg_iov[i].iov_len)
            break;
    }
    size_t total = 0;
    for (size_t i = 0; i < message->msg_iovlen; i++)
        total += message->msg_iov[i].iov_len;
    if (total == 0)
        return 0;
    if (written == 0)
        return -EAGAIN;
    if (flags & MSG_OOB) {
        /* The last byte written is urgent; segments before it say so until
         * it is acknowledged (urgent mode, RFC 9293 3.8.5). */
        tcb->snd_up = tcp_send_base(tcb) + (uint32_t)tcb->send_buffer.length;
        tcb->send_urgent = true;
    }
    tcp_output(stack, tcb, now);
    return (ssize_t)written;
}

static int tcp_shutdown(struct usock_stack *stack, struct socket *socket, int how)
{
    struct tcp_connection *tcb = tcp_of(socket);
    if (!tcb)
        return -ENOTCONN;
    uint64_t now = usock_stack_now(stack);
    switch (tcb->state) {
    case TCPS_CLOSED:
        /* Linux answers ENOTCONN but still marks the socket shut. */
        if (how == SHUT_RD || how == SHUT_RDWR)
            socket->shutdown |= SHUTDOWN_RECEIVE;
        if (how == SHUT_WR || how == SHUT_RDWR)
            socket->shutdown |= SHUTDOWN_SEND;
        socket_wake(stack, socket);
        return -ENOTCONN;
    case TCPS_LISTEN:
        if (how == SHUT_WR)
            return 0;
        /* Linux: shutting a listener for reading stops it listening. */
        tcp_drop_children(stack, tcb, now);
        socket->listening = false;
        tcp_set_state(stack, tcb, TCPS_CLOSED);
        return 0;
    case TCPS_SYN_SENT:
        tcp_done(stack, tcb, 0);
        return 0;
    default:
        break;
    }
    if (how == SHUT_RD || how == SHUT_RDWR)
        socket->shutdown |= SHUTDOWN_RECEIVE;
    if (how == SHUT_WR || how == SHUT_RDWR) {
        socket->shutdown |= SHUTDOWN_SEND;
        if (!tcb->fin_queued) {
            if (tcb->state == TCPS_ESTABLISHED || tcb->state == TCPS_SYN_RECEIVED) {
                tcb->fin_queued = true;
                tcp_set_state(stack, tcb, TCPS_FIN_WAIT_1);
            } else if (tcb->state == TCPS_CLOSE_WAIT) {
                tcb->fin_queued = true;
                tcp_set_state(stack, tcb, TCPS_LAST_ACK);
            }
            tcp_output(stack, tcb, now);
        }
    }
    socket_wake(stack, socket);
    return 0;
}

static short tcp_poll(struct usock_stack *stack, struct socket *socket)
{
    (void)stack;
    struct tcp_connection *tcb = tcp_of(socket);
    if (!tcb)
        return POLLHUP;
    if (tcb->state == TCPS_LISTEN)
        return tcb->accept_head ? (POLLIN | POLLRDNORM) : 0;
    short events = 0;
    /* Linux tcp_poll, event by event. */
    if (socket->shutdown == (SHUTDOWN_RECEIVE | SHUTDOWN_SEND) || tcb->state == TCPS_CLOSED)
        events |= POLLHUP;
    if ((socket->shutdown & SHUTDOWN_RECEIVE) || tcb->fin_received)
        events |= POLLIN | POLLRDNORM | POLLRDHUP;
    if (tcb->state != TCPS_SYN_SENT && tcb->state != TCPS_SYN_RECEIVED) {
        /* SO_RCVLOWAT: readable once that much is waiting. */
        if (tcb->receive_buffer.length > 0 &&
            tcb->receive_buffer.length >= (size_t)socket->receive_low_water)
            events |= POLLIN | POLLRDNORM;
        if (!(socket->shutdown & SHUTDOWN_SEND)) {
            size_t used = tcb->send_buffer.length;
            size_t free_space = ring_free_space(&tcb->send_buffer);
            if (free_space > 0 && free_space >= used / 2)
                events |= POLLOUT | POLLWRNORM;
        } else {
            events |= POLLOUT | POLLWRNORM;
        }
    }
    if (tcb->urgent_state == TCP_URGENT_VALID)
        events |= POLLPRI; /* inline too, as Linux's tcp_poll */
    if (socket->error)
        events |= POLLERR;
    return events;
}

static int tcp_readable_bytes(struct socket *socket)
{
    struct tcp_connection *tcb = tcp_of(socket);
    if (tcb && tcb->state == TCPS_LISTEN)
        return -EINVAL; /* Linux tcp_ioctl */
    return tcb ? (int)tcb->receive_buffer.length : 0;
}

static size_t tcp_receive_queue_bytes(struct socket *socket)
{
    struct tcp_connection *tcb = tcp_of(socket);
    if (!tcb)
        return 0;
    /* ss shows a listener's accept queue in Recv-Q, as Linux does. */
    return tcb->state == TCPS_LISTEN ? tcb->accept_queue_length : tcb->receive_buffer.length;
}

static size_t tcp_send_queue_bytes(struct socket *socket)
{
    struct tcp_connection *tcb = tcp_of(socket);
    if (!tcb)
        return 0;
    return tcb->state == TCPS_LISTEN ? (size_t)tcb->backlog : tcb->send_buffer.length;
}

static long tcp_send_room(struct socket *socket)
{
    struct tcp_connection *tcb = tcp_of(socket);
    if (!tcb || socket->error || (socket->shutdown & SHUTDOWN_SEND) || tcb->fin_queued ||
        (tcb->state != TCPS_ESTABLISHED && tcb->state != TCPS_CLOSE_WAIT))
        return -1;
    return (long)(tcb->send_buffer.capacity - tcb->send_buffer.length);
}

static void tcp_describe_socket(struct socket *socket, char *out, size_t size)
{
    struct tcp_connection *tcb = tcp_of(socket);
    out[0] = '\0';
    if (tcb && tcb->state != TCPS_LISTEN && tcb->state != TCPS_CLOSED)
        tcp_describe(tcb, out, size);
}

static const char *tcp_state_name(struct socket *socket)
{
    struct tcp_connection *tcb = tcp_of(socket);
    return tcb ? tcp_state_names[tcb->state] : "CLOSE";
}

static bool tcp_is_listening(struct socket *socket)
{
    struct tcp_connection *tcb = tcp_of(socket);
    return tcb && (tcb->state == TCPS_LISTEN || tcb->state == TCPS_CLOSED);
}

static bool tcp_has_peer(struct socket *socket)
{
    /* Linux inet_getname: no peer while CLOSE or SYN-SENT. */
    struct tcp_connection *tcb = tcp_of(socket);
    /* A connection in TIME_WAIT is no longer the socket's on Linux (a
     * separate time-wait entry takes over), so it has no peer either. */
    return tcb && socket->connected && tcb->state != TCPS_CLOSED && tcb->state != TCPS_SYN_SENT &&
           tcb->state != TCPS_LISTEN && tcb->state != TCPS_TIME_WAIT;
}

static bool tcp_linger_pending(struct socket *socket)
{
    struct tcp_connection *tcb = tcp_of(socket);
    if (!tcb)
        return false;
    /* Done once our FIN is acknowledged (or the connection is gone). */
    return tcb->state == TCPS_FIN_WAIT_1 || tcb->state == TCPS_CLOSING ||
           tcb->state == TCPS_LAST_ACK;
}

static int copy_int_option(int value, void *out, socklen_t *length)
{
    size_t copy = *length < sizeof(int) ? *length : sizeof(int);
    memcpy(out, &value, copy);
    *length = (socklen_t)copy;
    return 0;
}

static int tcp_setsockopt(struct usock_stack *stack, struct socket *socket, int level, int name,
                          const void *value, socklen_t length, uint64_t now)
{
    struct tcp_connection *tcb = tcp_of(socket);
    if (!tcb)
        return -EINVAL;
    if (level == SOL_SOCKET && name == SO_KEEPALIVE) {
        tcb->keepalive = socket->keepalive;
        if (tcb->state >= TCPS_ESTABLISHED)
            tcp_keepalive_reset(stack, tcb, now);
        return 0;
    }
    if (level != IPPROTO_TCP)
        return -ENOPROTOOPT;
    if (name == TCP_CONGESTION) {
        /* A name of at most 15 bytes, not necessarily terminated (Linux:
         * EINVAL below one byte, ENOENT for an unknown algorithm). */
        char wanted[TCP_CONGESTION_NAME_MAX] = {0};
        if (!value || length < 1)
            return -EINVAL;
        memcpy(wanted, value, length < sizeof(wanted) - 1 ? length : sizeof(wanted) - 1);
        const struct tcp_congestion_ops *ops = tcp_congestion_find(wanted);
        if (!ops)
            return -ENOENT;
        tcb->congestion = ops;
        tcb->cubic_epoch_start = 0;
        return 0;
    }
    int integer;
    if (!value || length < sizeof(int))
        return -EINVAL;
    memcpy(&integer, value, sizeof(int));
    switch (name) {
    case TCP_NODELAY:
        tcb->nodelay = integer != 0;
        if (tcb->nodelay)
            tcp_output(stack, tcb, now);
        return 0;
    case TCP_CORK:
        /* Linux: held until uncorked (or a FIN); uncorking sends what
         * waited. */
        tcb->corked = integer != 0;
        if (!tcb->corked)
            tcp_output(stack, tcb, now);
        return 0;
    case TCP_MAXSEG:
        /* Linux: 88..65535 (TCP_MIN_MSS), or 0 for none. */
        if (integer != 0 && (integer < 88 || integer > 65535))
            return -EINVAL;
        tcb->user_mss = (uint16_t)integer;
        if (integer && tcb->state >= TCPS_ESTABLISHED)
            tcp_set_send_mss(tcb, tcb->mss + tcp_fixed_option_bytes(tcb));
        return 0;
    case TCP_KEEPIDLE:
    case TCP_KEEPINTVL:
        if (integer < 1 || integer > 32767)
            return -EINVAL;
        if (name == TCP_KEEPIDLE)
            tcb->keepalive_idle_ns = (uint64_t)integer * NS_PER_SECOND;
        else
            tcb->keepalive_interval_ns = (uint64_t)integer * NS_PER_SECOND;
        if (tcb->keepalive && tcb->state >= TCPS_ESTABLISHED)
            tcp_keepalive_reset(stack, tcb, now);
        return 0;
    case TCP_KEEPCNT:
        if (integer < 1 || integer > 127)
            return -EINVAL;
        tcb->keepalive_count = (unsigned)integer;
        return 0;
    case TCP_USER_TIMEOUT:
        if (integer < 0)
            return -EINVAL;
        tcb->user_timeout_ns = (uint64_t)integer * 1000000;
        return 0;
    case TCP_QUICKACK:
        tcb->quickack = integer ? TCP_QUICKACK_SEGMENTS : 0;
        return 0;
    default:
        return -ENOPROTOOPT;
    }
}

void tcp_fill_info(const struct tcp_connection *tcb, struct tcp_info *info)
{
    /* Linux's state numbers (include/net/tcp_states.h). */
    static const uint8_t linux_states[TCPS_STATE_COUNT] = {
        [TCPS_CLOSED] = 7,     [TCPS_LISTEN] = 10,    [TCPS_SYN_SENT] = 2,
        [TCPS_SYN_RECEIVED] = 3, [TCPS_ESTABLISHED] = 1, [TCPS_CLOSE_WAIT] = 8,
        [TCPS_FIN_WAIT_1] = 4, [TCPS_CLOSING] = 11,   [TCPS_LAST_ACK] = 9,
        [TCPS_FIN_WAIT_2] = 5, [TCPS_TIME_WAIT] = 6,
    };
    memset(info, 0, sizeof(*info));
    info->tcpi_state = linux_states[tcb->state];
    /* TCP_CA_Open 0, TCP_CA_Recovery 3, TCP_CA_Loss 4 */
    info->tcpi_ca_state = tcb->in_recovery ? 3 : tcb->retransmits > 0 ? 4 : 0;
    info->tcpi_retransmits = (uint8_t)(tcb->retransmits > 255 ? 255 : tcb->retransmits);
    info->tcpi_backoff = info->tcpi_retransmits;
    if (tcb->timestamps)
        info->tcpi_options |= TCPI_OPT_TIMESTAMPS;
    if (tcb->sack_permitted)
        info->tcpi_options |= TCPI_OPT_SACK;
    if (tcb->window_scaling) {
        info->tcpi_options |= TCPI_OPT_WSCALE;
        info->tcpi_snd_wscale = tcb->send_window_shift & 0xf;
        info->tcpi_rcv_wscale = tcb->receive_window_shift & 0xf;
    }
    info->tcpi_rto = (uint32_t)(tcb->rto_ns / 1000);
    info->tcpi_ato = (uint32_t)(TCP_DELAYED_ACK_NS / 1000);
    info->tcpi_snd_mss = tcb->mss;
    info->tcpi_rcv_mss = tcb->advertised_mss - tcp_fixed_option_bytes(tcb);
    uint32_t in_flight = tcb->snd_max - tcb->snd_una;
    info->tcpi_unacked = tcb->state >= TCPS_ESTABLISHED && tcb->mss
                             ? (in_flight + tcb->mss - 1) / tcb->mss
                             : 0;
    info->tcpi_sacked = tcb->mss ? tcp_sack_sacked_bytes(tcb) / tcb->mss : 0;
    info->tcpi_retrans = tcb->in_recovery && seq_gt(tcb->high_rxt, tcb->snd_una) && tcb->mss
                             ? (tcb->high_rxt - tcb->snd_una + tcb->mss - 1) / tcb->mss
                             : 0;
    info->tcpi_pmtu = (uint32_t)tcb->mss + 40 + tcp_fixed_option_bytes(tcb);
    info->tcpi_rcv_ssthresh = tcp_receive_window(tcb);
    info->tcpi_rtt = (uint32_t)(tcb->srtt_ns / 1000);
    info->tcpi_rttvar = (uint32_t)(tcb->rttvar_ns / 1000);
    info->tcpi_snd_ssthresh = tcb->ssthresh == UINT32_MAX || !tcb->mss
                                  ? 0x7fffffff /* TCP_INFINITE_SSTHRESH */
                                  : tcb->ssthresh / tcb->mss;
    info->tcpi_snd_cwnd = tcb->mss ? tcb->cwnd / tcb->mss : 0;
    info->tcpi_advmss = tcb->advertised_mss;
    info->tcpi_reordering = tcb->reordering;
    info->tcpi_rcv_space = (uint32_t)tcb->receive_buffer.capacity;
    info->tcpi_total_retrans = tcb->total_retransmits;
}

void tcp_describe(const struct tcp_connection *tcb, char *out, size_t size)
{
    /* The fields of iproute2's ss -i that usock keeps, in its order and
     * units: times in milliseconds, rtt as srtt/rttvar. */
    size_t used = 0;
#define DESCRIBE(...)                                                                    \
    do {                                                                                 \
        if (used < size)                                                                 \
            used += (size_t)snprintf(out + used, size - used, __VA_ARGS__);              \
    } while (0)
    out[0] = '\0';
    if (tcb->timestamps)
        DESCRIBE("ts ");
    if (tcb->sack_permitted)
        DESCRIBE("sack ");
    DESCRIBE("%s ", tcb->congestion->name);
    if (tcb->window_scaling)
        DESCRIBE("wscale:%u,%u ", tcb->send_window_shift, tcb->receive_window_shift);
    DESCRIBE("rto:%llu ", (unsigned long long)(tcb->rto_ns / 1000000));
    if (tcb->srtt_ns)
        DESCRIBE("rtt:%.3f/%.3f ", (double)tcb->srtt_ns / 1e6, (double)tcb->rttvar_ns / 1e6);
    DESCRIBE("mss:%u ", tcb->mss);
    DESCRIBE("cwnd:%u ", tcb->mss ? tcb->cwnd / tcb->mss : 0);
    if (tcb->ssthresh != UINT32_MAX && tcb->mss)
        DESCRIBE("ssthresh:%u ", tcb->ssthresh / tcb->mss);
    DESCRIBE("bytes_acked:%llu bytes_received:%llu ", (unsigned long long)tcb->bytes_acked,
             (unsigned long long)tcb->bytes_received);
    if (tcb->total_retransmits || tcb->retransmits)
        DESCRIBE("retrans:%u/%u ", tcb->retransmits, tcb->total_retransmits);
    if (tcb->reordering != TCP_REORDERING_INITIAL)
        DESCRIBE("reordering:%u ", tcb->reordering);
    if (tcb->srtt_ns && tcb->mss)
        DESCRIBE("send %.0fbps ", (double)tcb->cwnd * 8 * 1e9 / (double)tcb->srtt_ns);
    if (tcb->state >= TCPS_ESTABLISHED)
        DESCRIBE("rcv_space:%zu", tcb->receive_buffer.capacity);
#undef DESCRIBE
    /* No trailing space. */
    size_t length = strlen(out);
    while (length > 0 && out[length - 1] == ' ')
        out[--length] = '\0';
}

static int tcp_getsockopt(struct usock_stack *stack, struct socket *socket, int level, int name,
                          void *value, socklen_t *length)
{
    (void)stack;
    struct tcp_connection *tcb = tcp_of(socket);
    if (!tcb)
        return -EINVAL;
    if (level == IPPROTO_IP)
        return -ENOPROTOOPT; /* the common IP options */
    if (level != IPPROTO_TCP)
        return -EOPNOTSUPP;
    switch (name) {
    case TCP_NODELAY:
        return copy_int_option(tcb->nodelay, value, length);
    case TCP_CORK:
        return copy_int_option(tcb->corked, value, length);
    case TCP_MAXSEG:
        /* Linux: the current MSS once connected, else the user's or 536. */
        return copy_int_option(tcb->state >= TCPS_ESTABLISHED ? tcb->mss
                               : tcb->user_mss          ? tcb->user_mss
                                                        : TCP_DEFAULT_MSS,
                               value, length);
    case TCP_KEEPIDLE:
        return copy_int_option((int)(tcb->keepalive_idle_ns / NS_PER_SECOND), value, length);
    case TCP_KEEPINTVL:
        return copy_int_option((int)(tcb->keepalive_interval_ns / NS_PER_SECOND), value, length);
    case TCP_KEEPCNT:
        return copy_int_option((int)tcb->keepalive_count, value, length);
    case TCP_QUICKACK:
        return copy_int_option(tcb->quickack > 0, value, length);
    case TCP_USER_TIMEOUT:
        return copy_int_option((int)(tcb->user_timeout_ns / 1000000), value, length);
    case TCP_CONGESTION: {
        /* Linux copies min(optlen, 16) bytes of the zero-padded name. */
        char name_field[TCP_CONGESTION_NAME_MAX] = {0};
        strncpy(name_field, tcb->congestion->name, sizeof(name_field) - 1);
        size_t copied = *length < sizeof(name_field) ? *length : sizeof(name_field);
        memcpy(value, name_field, copied);
        *length = (socklen_t)copied;
        return 0;
    }
    case TCP_INFO: {
        /* Linux copies min(optlen, sizeof info) and says how much. */
        struct tcp_info info;
        tcp_fill_info(tcb, &info);
        size_t copied = *length < sizeof(info) ? *length : sizeof(info);
        memcpy(value, &info, copied);
        *length = (socklen_t)copied;
        return 0;
    }
    default:
        return -ENOPROTOOPT;
    }
}

const struct socket_operations tcp_operations = {
    .type = SOCK_STREAM,
    .protocol = IPPROTO_TCP,
    .netid = "tcp",
    .create = tcp_create,
    .release = tcp_release,
    .bind = tcp_bind,
    .connect = tcp_connect,
    .send = tcp_send,
    .receive = tcp_receive,
    .shutdown = tcp_shutdown,
    .listen = tcp_listen,
    .accept = tcp_accept,
    .connect_result = tcp_connect_result,
    .setsockopt = tcp_setsockopt,
    .getsockopt = tcp_getsockopt,
    .linger_pending = tcp_linger_pending,
    .has_peer = tcp_has_peer,
    .poll = tcp_poll,
    .readable_bytes = tcp_readable_bytes,
    .receive_queue_bytes = tcp_receive_queue_bytes,
    .send_queue_bytes = tcp_send_queue_bytes,
    .send_room = tcp_send_room,
    .state_name = tcp_state_name,
    .describe = tcp_describe_socket,
    .at_urgent_mark = tcp_at_urgent_mark,
    .is_listening = tcp_is_listening,
};
