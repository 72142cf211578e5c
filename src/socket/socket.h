/*
 * socket.h - sockets inside the stack: the descriptor table, the operations
 * table each socket type supplies, and the port tables received packets are
 * looked up in.
 *
 * A socket is reference counted: the descriptor table holds one reference,
 * and every API call in progress holds one while it may sleep.  Closing
 * removes the descriptor at once; the memory goes when the last caller
 * leaves.  Protocol code reports "would block" as -EAGAIN; the API layer
 * (api.c) turns that into a wait on the socket's condition variable in
 * threaded mode, or into EAGAIN for nonblocking sockets and in event mode.
 */
#ifndef USOCK_SOCKET_H
#define USOCK_SOCKET_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/hash_table.h"

struct usock_stack;
struct socket;
struct socket_membership;

/* Operations of one socket type, found by (type, protocol) in a table. */
struct socket_operations {
    int type;      /* SOCK_DGRAM ... */
    int protocol;  /* IPPROTO_UDP ...; also accepted when socket() gets 0 */
    const char *netid; /* "udp", "tcp", "raw": the ss column */
    /* Sets up protocol state.  Returns 0 or -errno. */
    int (*create)(struct usock_stack *stack, struct socket *socket);
    /* Unhashes and frees protocol state (at close). */
    void (*release)(struct usock_stack *stack, struct socket *socket);
    int (*bind)(struct usock_stack *stack, struct socket *socket, uint32_t address,
                uint16_t port);
    /* address NULL: dissolve the association (AF_UNSPEC). */
    int (*connect)(struct usock_stack *stack, struct socket *socket,
                   const struct sockaddr_in *address, uint64_t now);
    /* Return bytes or -errno; -EAGAIN when it would block. */
    ssize_t (*send)(struct usock_stack *stack, struct socket *socket,
                    const struct msghdr *message, int flags, uint64_t now);
    ssize_t (*receive)(struct usock_stack *stack, struct socket *socket, struct msghdr *message,
                       int flags, uint64_t now);
    int (*shutdown)(struct usock_stack *stack, struct socket *socket, int how);
    /* Stream sockets; NULL for datagram ones (EOPNOTSUPP). */
    int (*listen)(struct usock_stack *stack, struct socket *socket, int backlog, uint64_t now);
    /* Takes a ready connection: stores it in *child (no descriptor yet) or
     * answers -EAGAIN. */
    int (*accept)(struct usock_stack *stack, struct socket *socket, struct socket **child);
    /* While a connect is in progress: -EALREADY; then 0 or -errno (which it
     * consumes, as Linux's SO_ERROR does).  NULL: connect never waits. */
    int (*connect_result)(struct usock_stack *stack, struct socket *socket);
    /* Writes a line of protocol details for ss -i (empty when none).  May
     * be NULL. */
    void (*describe)(struct socket *socket, char *out, size_t size);
    /* Protocol-level options (level IPPROTO_TCP ...): 0, or -ENOPROTOOPT
     * when the option is not the protocol's.  May be NULL. */
    int (*setsockopt)(struct usock_stack *stack, struct socket *socket, int level, int name,
                      const void *value, socklen_t length, uint64_t now);
    int (*getsockopt)(struct usock_stack *stack, struct socket *socket, int level, int name,
                      void *value, socklen_t *length);
    /* Whether getpeername() has a peer to show; NULL: socket->connected. */
    bool (*has_peer)(struct socket *socket);
    /* True while close() with SO_LINGER must keep waiting. */
    bool (*linger_pending)(struct socket *socket);
    /* Ready events (POLLIN, POLLOUT, POLLERR, POLLHUP, POLLRDHUP). */
    short (*poll)(struct usock_stack *stack, struct socket *socket);
    /* FIONREAD's answer. */
    int (*readable_bytes)(struct socket *socket);
    /* SIOCATMARK: 1 when the next byte to read is the urgent mark, 0 when
     * not, -errno.  NULL: not a stream socket (ENOTTY). */
    int (*at_urgent_mark)(struct socket *socket);
    size_t (*receive_queue_bytes)(struct socket *socket);
    size_t (*send_queue_bytes)(struct socket *socket);
    /* Bytes a send would take into the socket's buffer at once, as a
     * stream: -1 when a send is not simply that (not connected, shut
     * down, an error pending ...).  NULL: never. */
    long (*send_room)(struct socket *socket);
    const char *(*state_name)(struct socket *socket);
    bool (*is_listening)(struct socket *socket);
};

/* The devices a socket can be bound to (SO_BINDTODEVICE): the stack has
 * loopback ("lo") and its one link (interface.name). */
enum socket_device {
    SOCKET_DEVICE_ANY,
    SOCKET_DEVICE_LINK,
    SOCKET_DEVICE_LOOPBACK,
};

#define SHUTDOWN_RECEIVE 1
#define SHUTDOWN_SEND 2

struct socket {
    /* A descriptor for it (the lowest-numbered one it first had, or another
     * of its descriptors once that one is closed); -1 while it has none. */
    int fd;
    /* Descriptors standing for it: more than one after usock_dup, or when
     * attached processes share it (a fork).  The table holds one reference
     * for all of them; the socket is released when the last one closes. */
    unsigned descriptor_count;
    unsigned references;
    int type;
    int protocol;
    const struct socket_operations *ops;

    /* Addresses in network order, ports in host order. */
    uint32_t local_address;   /* bound (receive) address; 0 = wildcard */
    uint32_t source_address;  /* address to send from; 0 = pick by route */
    uint16_t local_port;      /* 0 = not bound */
    uint16_t peer_port;
    uint32_t peer_address;
    uint64_t bind_sequence;   /* later binds win unicast ties (as Linux) */

    int error;                /* pending error for SO_ERROR, 0 = none */
    unsigned shutdown;        /* SHUTDOWN_RECEIVE | SHUTDOWN_SEND */
    int linger_seconds;
    int receive_buffer;       /* SO_RCVBUF as Linux reports it (doubled) */
    int send_buffer;
    unsigned membership_count; /* entries in memberships, below */
    uint64_t receive_timeout_ns; /* 0 = wait forever */
    uint64_t send_timeout_ns;
    uint8_t time_to_live;
    uint8_t type_of_service;
    uint8_t multicast_ttl;    /* IP_MULTICAST_TTL, default 1 */
    uint32_t multicast_interface; /* IP_MULTICAST_IF address, 0 = default */
    int path_mtu_discovery;   /* IP_MTU_DISCOVER: IP_PMTUDISC_* (default WANT) */
    int receive_low_water;    /* SO_RCVLOWAT, default 1 */
    struct socket_error_entry *error_queue; /* oldest first, bounded */
    unsigned error_queue_length;
    enum socket_device bound_device; /* SO_BINDTODEVICE */
    struct socket_membership *memberships; /* groups joined (socket/multicast.c) */

    struct hash_node address_port_node;
    struct hash_node port_node;
    pthread_cond_t *condition; /* signalled when the socket's state changes;
                                * made by the first thread to block on it */
    void *protocol_state;

    /* flags, packed together as bit fields */
    bool wake_held : 1;       /* on the stack's held wakes (socket_hold_wakes) */
    bool port_from_connect : 1; /* connect() chose the port (others may share it) */
    bool closed : 1;
    bool connected : 1;
    bool address_locked : 1;      /* bind() named an address */
    bool port_locked : 1;         /* bind() named a port */
    bool hashed : 1;              /* in its protocol's port table */
    bool nonblocking : 1;
    bool close_on_exec : 1;
    bool reuse_address : 1;
    bool reuse_port : 1;
    bool broadcast : 1;
    bool listening : 1;           /* a TCP listener: SO_REUSEADDR cannot share its port */
    bool keepalive : 1;           /* SO_KEEPALIVE */
    bool urgent_inline : 1;       /* SO_OOBINLINE: urgent data stays in the stream */
    bool linger : 1;              /* SO_LINGER on */
    bool send_buffer_locked : 1;  /* SO_SNDBUF was set (Linux SOCK_SNDBUF_LOCK) */
    bool receive_buffer_locked : 1; /* SO_RCVBUF was set (Linux SOCK_RCVBUF_LOCK) */
    bool multicast_loop : 1;      /* IP_MULTICAST_LOOP, default on */
    bool receive_errors : 1;      /* IP_RECVERR */
    bool receive_packet_info : 1; /* IP_PKTINFO */
    bool receive_ttl : 1;         /* IP_RECVTTL */
    bool receive_tos : 1;         /* IP_RECVTOS */
};

/* Sockets bound to ports, for one protocol: indexed by (address, port) for
 * unicast lookups and by port for conflict checks and broadcast delivery. */
struct port_table {
    struct hash_table by_address_port;
    struct hash_table by_port;
};

struct owner_count {
    uint32_t owner;
    uint32_t count;
};

struct socket_layer {
    struct socket **descriptors;
    /* owners[fd]: the attached client (src/remote/server.c) whose
     * descriptor fd is, 0 for the stack's own process.  Only calls made for
     * that owner find the socket by it (api.c).  pids[fd]: that client's
     * process id, which ss -p shows (0: none). */
    uint32_t *owners;
    int32_t *pids;
    /* Descriptors each attached client (owner not 0) holds, at most
     * client_limit (a short list: clients are few). */
    struct owner_count *owner_counts;
    size_t owner_count_used, owner_count_capacity;
    size_t client_limit;
    size_t capacity;
    size_t open_count;
    size_t lowest_free;       /* no free descriptor below this one */
    size_t limit;
    uint64_t bind_sequence;
    /* Wakes held back while the stack thread works through a batch of
     * frames (each socket once, with a reference), given at its end. */
    bool holding_wakes;
    struct socket **held_wakes;
    size_t held_wake_count, held_wake_capacity;
    struct port_table udp;
    struct port_table tcp;
    struct port_table ping;   /* datagram ICMP sockets, by identifier */
};

/* Linux's defaults and limits (net.core.rmem_default/rmem_max). */
#define SOCKET_BUFFER_DEFAULT 212992
#define SOCKET_BUFFER_MAX 212992
#define SOCKET_RECEIVE_BUFFER_MIN 2304 /* SOCK_MIN_RCVBUF */
#define SOCKET_SEND_BUFFER_MIN 4608    /* SOCK_MIN_SNDBUF */
#define SOCKET_DESCRIPTOR_LIMIT 65536      /* default of config.socket_limit */
#define SOCKET_DESCRIPTOR_CEILING (1 << 24) /* the most config.socket_limit may give */
#define EPHEMERAL_PORT_FIRST 32768
#define EPHEMERAL_PORT_LAST 60999

int socket_layer_init(struct socket_layer *layer);
/* Closes every socket and frees the layer. */
void socket_layer_destroy(struct usock_stack *stack, struct socket_layer *layer);

/* The socket with descriptor fd, or NULL. */
struct socket *socket_from_descriptor(struct usock_stack *stack, int fd);
/* Wakes everything waiting on socket (readers, writers, poll); between
 * socket_hold_wakes and socket_release_wakes, once at the release. */
void socket_wake(struct usock_stack *stack, struct socket *socket);
/* The stack thread's batch of frames begins: a reader woken for the first
 * frame would only wait for the stack lock the batch holds, so wakes wait
 * for socket_release_wakes, which gives each socket one. */
void socket_hold_wakes(struct usock_stack *stack);
void socket_release_wakes(struct usock_stack *stack);
/* The condition variable a thread blocking on socket waits on (stack lock
 * held): the socket's own, made on first use, or the stack's poll
 * condition when memory runs out (socket_wake broadcasts both). */
pthread_cond_t *socket_condition(struct usock_stack *stack, struct socket *socket);
/* Makes a socket of ops with one reference and no descriptor (fd -1) or
 * protocol state yet.  NULL when out of memory. */
struct socket *socket_new(const struct socket_operations *ops, int type);
/* Makes a socket with no descriptor (a connection accept() will hand out)
 * of the same type as parent, with one reference.  NULL when out of memory. */
struct socket *socket_new_child(struct usock_stack *stack, const struct socket *parent);
/* True when socket_attach_descriptor would find a descriptor for owner
 * under the limits (the stack's, and an attached client's own). */
bool socket_descriptor_available(const struct usock_stack *stack, uint32_t owner);
/* Gives socket the lowest free descriptor (one more, when it has some),
 * owned by owner of process pid; returns it or -EMFILE/-ENOMEM. */
int socket_attach_descriptor(struct usock_stack *stack, struct socket *socket, uint32_t owner,
                             int32_t pid);
/* Takes descriptor fd (of socket) out of the table.  Returns how many
 * descriptors the socket still has; at 0 the caller releases it. */
unsigned socket_detach_descriptor(struct usock_stack *stack, struct socket *socket, int fd);
/* Drops a reference; the last one frees the socket (protocol state must be
 * released already). */
void socket_put(struct socket *socket);

int port_table_init(struct port_table *table);
void port_table_destroy(struct port_table *table);
/* Adds socket under its local address and port (both already set). */
void port_table_insert(struct usock_stack *stack, struct port_table *table,
                       struct socket *socket);
void port_table_remove(struct port_table *table, struct socket *socket);
/* Calls visit for each socket bound to port (any address) until it returns
 * false. */
void port_table_for_each_on_port(struct usock_stack *stack, struct port_table *table,
                                 uint16_t port,
                                 bool (*visit)(struct socket *socket, void *context),
                                 void *context);
/* The first node of the bucket for (address, port); walk with
 * port_table_next_bound. */
struct socket *port_table_first_bound(struct usock_stack *stack, struct port_table *table,
                                      uint32_t address, uint16_t port);
struct socket *port_table_next_bound(struct socket *socket, uint32_t address, uint16_t port);

/* True when binding candidate to (address, port) would conflict with a
 * socket already in table, by Linux's rules for SO_REUSEADDR/SO_REUSEPORT. */
bool port_table_conflicts(struct usock_stack *stack, struct port_table *table,
                          const struct socket *candidate, uint32_t address, uint16_t port);
/* Picks a free ephemeral port for candidate bound to address (RFC 6056
 * algorithm 1: random start, linear walk).  Returns the port or 0 when
 * none is free. */
uint16_t port_table_pick_ephemeral(struct usock_stack *stack, struct port_table *table,
                                   const struct socket *candidate, uint32_t address);

/* IP_RECVERR: an ICMP error kept for recvmsg(MSG_ERRQUEUE). */
#define SOCKET_ERROR_QUEUE_LIMIT 32
struct socket_error_entry {
    struct socket_error_entry *next;
    int error;                    /* errno */
    uint8_t type, code;           /* ICMP */
    uint32_t info;
    uint32_t reporter;            /* ICMP sender, network order */
    uint32_t destination;         /* where our datagram was going */
    uint16_t destination_port;
    size_t length;                /* quoted payload bytes kept */
    uint8_t data[];
};

/* Queues an error report on socket (bounded; the oldest is dropped when
 * full) and sets the pending error, as Linux's ip_icmp_error. */
void socket_queue_error(struct usock_stack *stack, struct socket *socket, int error,
                        uint8_t type, uint8_t code, uint32_t info, uint32_t reporter,
                        uint32_t destination, uint16_t destination_port,
                        const uint8_t *payload, size_t length);
/* Reports an ICMP error (errno error, hard or not) to socket as Linux's
 * UDP, raw and ping sockets do (RFC 1122 4.1.3.3): with IP_RECVERR it is
 * queued with the quoted payload (borrowed) and becomes the pending error;
 * without, only a hard error on a connected socket becomes pending. */
void socket_report_icmp_error(struct usock_stack *stack, struct socket *socket, int error,
                              bool hard, uint8_t type, uint8_t code, uint32_t info,
                              uint32_t reporter, uint32_t destination, uint16_t destination_port,
                              const uint8_t *payload, size_t length);
/* recvmsg(MSG_ERRQUEUE): the oldest report with an IP_RECVERR control
 * message, or -EAGAIN. */
ssize_t socket_receive_error(struct socket *socket, struct msghdr *message);
/* Frees the error queue. */
void socket_purge_errors(struct socket *socket);

/* Whether socket, by its SO_BINDTODEVICE, takes a packet addressed to
 * destination (network order).  As on Linux, packets to 127.0.0.0/8 arrive
 * on lo and every other packet (also to our own address) on the link. */
bool socket_device_accepts(const struct socket *socket, uint32_t destination);
/* SO_BINDTODEVICE: binds socket to the device named in value (length
 * bytes, borrowed; at most INTERFACE_NAME_SIZE - 1 are read, as Linux), or unbinds it
 * for "" or length 0.  Returns 0, -EFAULT, or -ENODEV for an unknown name. */
int socket_bind_to_device(struct usock_stack *stack, struct socket *socket, const void *value,
                          socklen_t length);
/* getsockopt(SO_BINDTODEVICE): the bound name with its NUL, or nothing
 * (length 0) when unbound; -EINVAL when bound and *length < INTERFACE_NAME_SIZE. */
int socket_bound_device_name(const struct usock_stack *stack, const struct socket *socket,
                             void *value, socklen_t *length);

/* Copies src into the caller's sockaddr of *length bytes, truncating as the
 * kernel does, and sets *length to the full size. */
void socket_copy_address_out(uint32_t address, uint16_t port, struct sockaddr *out,
                             socklen_t *length);

extern const struct socket_operations udp_operations;
extern const struct socket_operations tcp_operations;
extern const struct socket_operations raw_operations;
extern const struct socket_operations ping_operations;

struct ipv4_packet;
struct ipv4_error;
/* Queues an echo reply for the ping socket with that identifier; false
 * when there is none. */
bool ping_socket_deliver_reply(struct usock_stack *stack, const struct ipv4_packet *packet,
                               uint16_t identifier);
/* Reports an ICMP error quoting an echo request to the ping socket whose
 * identifier it carries (Linux's ping_err).  Counts IcmpInErrorsNoSocket
 * when there is none. */
void ping_socket_error(struct usock_stack *stack, const struct ipv4_error *error, uint64_t now);

#endif
