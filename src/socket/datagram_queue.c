/*
 * datagram_queue.c - bounded FIFO of received datagrams; see
 * datagram_queue.h.
 */
#include "socket/datagram_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "socket/socket.h"

struct datagram {
    struct datagram *next;
    uint32_t source;
    uint16_t source_port;
    size_t length;
    uint8_t data[];
};

void datagram_queue_init(struct datagram_queue *queue)
{
    memset(queue, 0, sizeof(*queue));
}

void datagram_queue_purge(struct datagram_queue *queue)
{
    while (queue->head) {
        struct datagram *next = queue->head->next;
        free(queue->head);
        queue->head = next;
    }
    datagram_queue_init(queue);
}

bool datagram_queue_push(struct datagram_queue *queue, size_t limit, uint32_t source,
                         uint16_t source_port, const uint8_t *data, size_t length)
{
    size_t charge = length + DATAGRAM_OVERHEAD;
    /* Like Linux, one datagram always fits an empty queue. */
    if (queue->head && queue->charged + charge > limit)
        return false;
    struct datagram *datagram = malloc(sizeof(*datagram) + length);
    if (!datagram)
        return false;
    datagram->next = NULL;
    datagram->source = source;
    datagram->source_port = source_port;
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
    return true;
}

ssize_t datagram_queue_receive(struct datagram_queue *queue, struct msghdr *message, int flags)
{
    struct datagram *datagram = queue->head;
    message->msg_flags = 0;
    message->msg_controllen = 0;
    if (!datagram)
        return -EAGAIN;
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
        socket_copy_address_out(datagram->source, datagram->source_port, message->msg_name,
                                &length);
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
        free(datagram);
    }
    return result;
}

size_t datagram_queue_first_length(const struct datagram_queue *queue)
{
    return queue->head ? queue->head->length : 0;
}
