/*
 * datagram_queue.h - the receive queue of a message-oriented socket (UDP,
 * raw): whole datagrams with their source address, in arrival order,
 * bounded by the socket's SO_RCVBUF.  Each datagram is charged its length
 * plus a fixed overhead, like Linux's truesize, so a flood of tiny
 * datagrams is bounded too.
 */
#ifndef USOCK_DATAGRAM_QUEUE_H
#define USOCK_DATAGRAM_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DATAGRAM_OVERHEAD 256

struct datagram;
struct socket;
struct usock_stack;

/* Where a datagram came from and how it arrived, for recvfrom() and the
 * ancillary data of recvmsg() (IP_PKTINFO, IP_RECVTTL, IP_RECVTOS). */
struct datagram_origin {
    uint32_t source;         /* network order */
    uint16_t source_port;
    uint32_t destination;    /* the address it was sent to */
    uint8_t time_to_live;
    uint8_t type_of_service;
};

/* What every message-oriented socket of a stack holds in its queue, and
 * the most they may hold together (Linux's udp_mem, here for raw and ping
 * sockets too). */
struct datagram_memory {
    size_t bytes;
    size_t limit;
};

struct datagram_queue {
    struct datagram *head, *tail;
    size_t count;
    size_t bytes;          /* payload bytes */
    size_t charged;        /* payload plus overhead, against the limit */
    struct datagram_memory *memory; /* charged too; set by the first push */
};

enum datagram_push_result {
    DATAGRAM_QUEUED,
    DATAGRAM_SOCKET_FULL, /* the socket's receive buffer, or malloc */
    DATAGRAM_STACK_FULL,  /* the stack's datagram memory */
};

void datagram_queue_init(struct datagram_queue *queue);
void datagram_queue_purge(struct datagram_queue *queue);
/* Appends a copy of length bytes from source:port, charged to the queue
 * and to memory.  Keeps nothing and says why when limit would be passed
 * with something already queued, or memory's limit, or malloc fails. */
enum datagram_push_result datagram_queue_push(struct datagram_queue *queue, size_t limit,
                                              struct datagram_memory *memory,
                                              const struct datagram_origin *origin,
                                              const uint8_t *data, size_t length);
/* Copies the first datagram into message (iovecs, msg_name, MSG_TRUNC in
 * msg_flags; the control messages socket asked for, MSG_CTRUNC when they do
 * not fit), consuming it unless MSG_PEEK.  Returns its length with
 * MSG_TRUNC in flags, else the bytes copied; -EAGAIN when empty. */
ssize_t datagram_queue_receive(struct datagram_queue *queue, const struct socket *socket,
                               struct msghdr *message, int flags);
/* Length of the first datagram, 0 when empty. */
size_t datagram_queue_first_length(const struct datagram_queue *queue);

/* Operations every message-oriented socket (UDP, raw, ping) shares. */
/* shutdown(): marks the socket shut and wakes it; like Linux, ENOTCONN
 * when it is not connected (the flags are set all the same). */
int datagram_socket_shutdown(struct usock_stack *stack, struct socket *socket, int how);
/* Nothing waits to be sent: datagrams go out at once. */
size_t datagram_socket_send_queue_bytes(struct socket *socket);
/* "ESTAB" when connected, else "UNCONN", as ss shows them. */
const char *datagram_socket_state_name(struct socket *socket);
/* Unconnected message sockets count as listening for ss -l. */
bool datagram_socket_is_listening(struct socket *socket);

#endif
