/*
 * datagram_queue.c - bounded FIFO of received datagrams, and the socket
 * operations message-oriented sockets share; see datagram_queue.h.
 */
#include "socket/datagram_queue.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "socket/socket.h"

struct datagram {
    struct datagram *next;
    struct datagram_origin origin;
    size_t length;
    uint8_t data[];
};

void datagram_queue_init(struct datagram_queue *queue)
{
    memset(queue, 0, sizeof(*queue));
}

void datagram_queue_purge(struct datagram_queue *queue)
{
    if (queue->memory)
        queue->memory->bytes -= queue->charged;
    while (queue->head) {
        struct datagram *next = queue->head->next;
        free(queue->head);
        queue->head = next;
    }
    datagram_queue_init(queue);
}

enum datagram_push_result datagram_queue_push(struct datagram_queue *queue, size_t limit,
                                              struct datagram_memory *memory,
                                              const struct datagram_origin *origin,
                                              const uint8_t *data, size_t length)
{
    size_t charge = length + DATAGRAM_OVERHEAD;
    /* Like Linux, one datagram always fits an empty queue. */
    if (queue->head && queue->charged + charge > limit)
        return DATAGRAM_SOCKET_FULL;
    if (memory->bytes + charge > memory->limit)
        return DATAGRAM_STACK_FULL;
    struct datagram *datagram = malloc(sizeof(*datagram) + length);
    if (!datagram)
        return DATAGRAM_SOCKET_FULL;
    queue->memory = memory;
    memory->bytes += charge;
    datagram->next = NULL;
    datagram->origin = *origin;
    datagram->length = length;
    memcpy(datagram->data, data, length);
    if (queue->tail)
        queue->tail->next = datagram;
    else
        queue->head = datagram;
    queue->tail = datagram;
    queue->count++;
    queue->bytes += length;
    queue->charged += charge;
    return DATAGRAM_QUEUED;
}

/* Appends one control message; false when it does not fit. */
static bool add_control(struct msghdr *message, size_t *used, int level, int type,
                        const void *data, size_t length)
{
    size_t space = CMSG_SPACE(length);
    if (!message->msg_control || *used + space > message->msg_controllen)
        return false;
    struct cmsghdr *header = (struct cmsghdr *)((uint8_t *)message->msg_control + *used);
    memset(header, 0, space);
    header->cmsg_level = level;
    header->cmsg_type = type;
    header->cmsg_len = CMSG_LEN(length);
    memcpy(CMSG_DATA(header), data, length);
    *used += space;
    return true;
}

static void datagram_add_controls(const struct socket *socket, const struct datagram *datagram,
                                  struct msghdr *message)
{
    size_t used = 0;
    bool truncated = false;
    if (socket->receive_packet_info) {
        struct in_pktinfo info = {.ipi_ifindex = 1};
        info.ipi_spec_dst.s_addr = socket->local_address ? socket->local_address
                                                         : datagram->origin.destination;
        info.ipi_addr.s_addr = datagram->origin.destination;
        truncated |= !add_control(message, &used, IPPROTO_IP, IP_PKTINFO, &info, sizeof(info));
    }
    if (socket->receive_ttl) {
        int ttl = datagram->origin.time_to_live;
        truncated |= !add_control(message, &used, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
    }
    if (socket->receive_tos) {
        uint8_t tos = datagram->origin.type_of_service;
        truncated |= !add_control(message, &used, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
    }
    message->msg_controllen = used;
    if (truncated)
        message->msg_flags |= MSG_CTRUNC;
}

ssize_t datagram_queue_receive(struct datagram_queue *queue, const struct socket *socket,
                               struct msghdr *message, int flags)
{
    struct datagram *datagram = queue->head;
    message->msg_flags = 0;
    if (!datagram) {
        message->msg_controllen = 0;
        return -EAGAIN;
    }
    datagram_add_controls(socket, datagram, message);
    size_t copied = 0;
    for (size_t i = 0; i < message->msg_iovlen && copied < datagram->length; i++) {
        size_t room = message->msg_iov[i].iov_len;
        size_t take = datagram->length - copied < room ? datagram->length - copied : room;
        memcpy(message->msg_iov[i].iov_base, datagram->data + copied, take);
        copied += take;
    }
    if (copied < datagram->length)
        message->msg_flags |= MSG_TRUNC;
    if (message->msg_name) {
        socklen_t length = message->msg_namelen;
        socket_copy_address_out(datagram->origin.source, datagram->origin.source_port,
                                message->msg_name, &length);
        message->msg_namelen = length;
    }
    ssize_t result = (ssize_t)((flags & MSG_TRUNC) ? datagram->length : copied);
    if (!(flags & MSG_PEEK)) {
        queue->head = datagram->next;
        if (!queue->head)
            queue->tail = NULL;
        queue->count--;
        queue->bytes -= datagram->length;
        queue->charged -= datagram->length + DATAGRAM_OVERHEAD;
        queue->memory->bytes -= datagram->length + DATAGRAM_OVERHEAD;
        free(datagram);
    }
    return result;
}

size_t datagram_queue_first_length(const struct datagram_queue *queue)
{
    return queue->head ? queue->head->length : 0;
}

int datagram_socket_shutdown(struct usock_stack *stack, struct socket *socket, int how)
{
    socket->shutdown |= how == SHUT_RD   ? SHUTDOWN_RECEIVE
                        : how == SHUT_WR ? SHUTDOWN_SEND
                                         : SHUTDOWN_RECEIVE | SHUTDOWN_SEND;
    socket_wake(stack, socket);
    return socket->connected ? 0 : -ENOTCONN;
}

size_t datagram_socket_send_queue_bytes(struct socket *socket)
{
    (void)socket;
    return 0;
}

const char *datagram_socket_state_name(struct socket *socket)
{
    return socket->connected ? "ESTAB" : "UNCONN";
}

bool datagram_socket_is_listening(struct socket *socket)
{
    return !socket->connected;
}
