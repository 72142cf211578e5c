/*
 * protocol.h - the wire format of the sockets API a running stack serves to
 * other processes (usock_stack_serve_api, usock_attach).
 *
 * Transport: a Unix SOCK_SEQPACKET socket at $USOCK_RUNDIR/NAME.api, next
 * to the control endpoint NAME.sock.  Each message is one request or one
 * reply, whole (the kernel keeps the boundaries), in host byte order (both
 * ends run on one machine).  A connection is strictly request, reply,
 * request ...: the client never has two requests outstanding on one
 * connection, so a reply always has room in the client's queue.
 *
 * A request is struct remote_request followed by a payload: for
 * REMOTE_SEND the ancillary bytes (value_length) then the data
 * (data_length); for REMOTE_SETSOCKOPT the option value; for REMOTE_POLL
 * `count` struct remote_pollfd; for REMOTE_HELLO joining a session, the
 * session's token.  A reply is struct remote_reply followed by the value
 * (option value, ancillary data, or the new session's token), padded to
 * the room the request named when it asked for ancillary data, then the
 * data (received bytes, or the polled entries back with revents).
 *
 * Sessions: the first connection of a process says REMOTE_HELLO with no
 * token and gets a session (its number as the result, a random token as
 * the value).  More connections of the same process (one per thread
 * blocked in a call at once) say REMOTE_HELLO with that token and must come
 * from the same process id (SO_PEERCRED).  Descriptors belong to the
 * session; when any of its connections hangs up they are all closed.
 *
 * Fork: before fork() a client says REMOTE_FORK.  The server makes a new
 * session holding a descriptor of its own for each of the client's, the
 * same sockets shared (usock_dup), and answers with that session's token
 * (value) and the pairs "parent's descriptor, child's descriptor" (data,
 * int32 each; the result is their number).  The child's first connection
 * says REMOTE_HELLO with arguments[1] = REMOTE_HELLO_FORKED and that token,
 * from any process id, once: the session becomes the child's.  Unclaimed
 * for REMOTE_FORK_CLAIM_S, its descriptors are closed; at once when the
 * client says REMOTE_FORK_ABANDON with the token (fork or exec failed).
 *
 * Signals: a hello's reply names the connection (flags).  When a signal
 * handler interrupts a client thread waiting for the reply to a blocking
 * call, the client may send REMOTE_CANCEL naming that connection on
 * another one of the session: the call, if still in progress, ends with
 * EINTR as the kernel's would (its reply says so, or gives the result it
 * reached first).
 *
 * Gathering: a client may give the server a shared memory region
 * (REMOTE_GATHER_SETUP, a sealed memfd of REMOTE_GATHER_REGION bytes that
 * cannot shrink) of REMOTE_GATHER_SLOTS slots.  It copies small sends on a
 * stream into a slot (the fd, the bytes, then the length, stored last with
 * release ordering) as long as the stack said it has room for them (a
 * send's reply: send_room), answers the caller at once, and later has the
 * server send them with one REMOTE_FLUSH.  When the client dies, the
 * server sends whatever its slots still hold before it closes the
 * client's descriptors, so bytes a send accepted are not lost with it.
 *
 * Every length here is bounded by the constants below; the server checks
 * each against what arrived before reading a byte of the payload.
 */
#ifndef USOCK_REMOTE_PROTOCOL_H
#define USOCK_REMOTE_PROTOCOL_H

#include <assert.h>
#include <stdint.h>

#define REMOTE_PROTOCOL_VERSION 2
/* Most data bytes one message carries each way.  A larger stream send or
 * MSG_WAITALL receive takes several; no datagram is this large (UDP's
 * largest payload is 65507 bytes, a raw socket's packet 65535), so a
 * datagram always fits one message. */
#define REMOTE_DATA_MAX 65536
/* Most ancillary (msg_control) bytes carried each way. */
#define REMOTE_CONTROL_MAX 512
/* Most option value bytes for setsockopt/getsockopt. */
#define REMOTE_OPTION_MAX 1024
/* Most descriptors in one poll. */
#define REMOTE_POLL_MAX 4096
/* Size of a socket address field (struct sockaddr_storage). */
#define REMOTE_ADDRESS_MAX 128
#define REMOTE_TOKEN_SIZE 16
/* REMOTE_HELLO's arguments[1]: join a session (value: its token) ... */
#define REMOTE_HELLO_JOIN 0
/* ... or claim, from a forked child, the session REMOTE_FORK made. */
#define REMOTE_HELLO_FORKED 1
/* How long a session REMOTE_FORK made waits for its child's hello before
 * its descriptors are closed (a child that died or exec'd first). */
#define REMOTE_FORK_CLAIM_S 10
/* Most descriptors a REMOTE_FORK shares: a pair of int32 each in the data. */
#define REMOTE_FORK_MAX (REMOTE_DATA_MAX / 8)
/* The gather region: slots of bytes gathered for one descriptor each. */
#define REMOTE_GATHER_SLOTS 64
#define REMOTE_GATHER_BYTES 32768

enum remote_operation {
    REMOTE_HELLO = 1,      /* arguments[0] version; value: token to join */
    REMOTE_SOCKET,         /* arguments: domain, type, protocol */
    REMOTE_CLOSE,
    REMOTE_BIND,           /* address */
    REMOTE_CONNECT,        /* address */
    REMOTE_LISTEN,         /* arguments[0] backlog */
    REMOTE_ACCEPT,         /* address_length: room for the peer's address */
    REMOTE_SHUTDOWN,       /* arguments[0] how */
    REMOTE_SEND,           /* arguments[0] flags; address; value: control; data */
    REMOTE_RECEIVE,        /* arguments[0] flags; address_length, value_length,
                            * data_length: room for each */
    REMOTE_GETSOCKNAME,    /* address_length: room */
    REMOTE_GETPEERNAME,
    REMOTE_SETSOCKOPT,     /* arguments: level, name, length; value */
    REMOTE_GETSOCKOPT,     /* arguments: level, name, length (room) */
    REMOTE_FCNTL,          /* arguments: command, argument */
    REMOTE_IOCTL,          /* arguments: request, the int argument (FIONBIO) */
    REMOTE_POLL,           /* arguments: count, timeout_ms; data: entries */
    REMOTE_DUP,            /* fd */
    REMOTE_FORK,           /* value out: the child's token; data out: pairs */
    REMOTE_GATHER_SETUP,   /* the gather region's memfd rides along (SCM_RIGHTS) */
    REMOTE_FLUSH,          /* fd; arguments[0] slot: send what the slot gathered */
    REMOTE_CANCEL,         /* arguments[0]: the connection whose call ends (EINTR) */
    REMOTE_FORK_ABANDON,   /* value: the token of a REMOTE_FORK no child will claim */
    REMOTE_OPERATION_COUNT,
};

struct remote_request {
    uint32_t operation;       /* enum remote_operation */
    int32_t fd;
    int32_t arguments[4];     /* per operation, above */
    uint32_t address_present; /* the caller gave an address (or its room); 0: NULL */
    uint32_t address_length;  /* bytes of address, or room for one */
    uint32_t value_present;   /* the caller gave an option value / argument pointer */
    uint32_t value_length;    /* payload value bytes, or room for them */
    uint32_t data_length;     /* payload data bytes, or room for them */
    uint32_t total_length;    /* REMOTE_SEND: the whole send; more than data_length
                               * only for a stream send split over messages */
    uint8_t address[REMOTE_ADDRESS_MAX];
};

struct remote_reply {
    int64_t result;           /* what the call returned, or -errno */
    int32_t flags;            /* REMOTE_RECEIVE: msg_flags */
    int32_t send_room;        /* REMOTE_SEND on a stream only this client can
                               * send on: bytes a send would take at once
                               * now (the client may gather that much); -1
                               * otherwise */
    uint32_t address_length;  /* the address's whole length (socklen_t out) */
    uint32_t value_length;    /* meaningful value bytes (the payload may be padded) */
    uint32_t data_length;     /* data bytes after the value */
    uint8_t address[REMOTE_ADDRESS_MAX];
};

struct remote_pollfd {
    int32_t fd;
    int16_t events;
    int16_t revents;
};

/* One slot of the gather region, written by the client only. */
struct remote_gather_slot {
    int32_t fd;               /* the descriptor its bytes are for */
    uint32_t length;          /* bytes gathered, at most REMOTE_GATHER_BYTES */
    uint8_t data[REMOTE_GATHER_BYTES];
};

#define REMOTE_GATHER_REGION (REMOTE_GATHER_SLOTS * sizeof(struct remote_gather_slot))

static_assert(sizeof(struct remote_pollfd) == 8, "poll entries are packed");
static_assert(REMOTE_POLL_MAX * sizeof(struct remote_pollfd) <= REMOTE_DATA_MAX,
              "a full poll fits the data area");
static_assert(REMOTE_OPTION_MAX >= REMOTE_CONTROL_MAX, "the value area holds either");

/* The largest message each way. */
#define REMOTE_REQUEST_MAX (sizeof(struct remote_request) + REMOTE_OPTION_MAX + REMOTE_DATA_MAX)
#define REMOTE_REPLY_MAX (sizeof(struct remote_reply) + REMOTE_OPTION_MAX + REMOTE_DATA_MAX)

#endif
