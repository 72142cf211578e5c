/*
 * usock.h - the public interface of usock, a TCP/IP stack in user space.
 *
 * A program makes a stack (usock_stack_new) with a link (a TAP or TUN device,
 * AF_PACKET on an interface, an in-memory wire, or a link of its own), then
 * uses Berkeley-style socket calls on it.  Every socket call takes the stack
 * as its first argument and otherwise matches the POSIX call of the same name:
 * it returns -1 and sets errno on failure, with the errno Linux gives.
 *
 * Two ways to drive a stack:
 *  - event mode: the program calls usock_stack_poll(stack, now) whenever the
 *    link's descriptor is readable or the returned deadline passes.  Socket
 *    calls never block in event mode; where POSIX would block they fail with
 *    EAGAIN, as on a nonblocking socket.
 *  - threaded mode: usock_stack_start() runs the stack on its own thread;
 *    socket calls are thread-safe and block like POSIX calls (O_NONBLOCK,
 *    SO_RCVTIMEO and SO_SNDTIMEO are honoured).
 *
 * Addresses use the system's struct sockaddr_in; options, flags and errno
 * values are the system's own (SOL_SOCKET, SO_*, MSG_*, POLL*).
 */
#ifndef USOCK_H
#define USOCK_H

#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct usock_stack;
struct usock_link;

/* ------------------------------------------------------------------ */
/* Time                                                                */
/* ------------------------------------------------------------------ */

/* A clock returns the current time in nanoseconds from any fixed origin.
 * It must never go backwards. */
typedef uint64_t (*usock_clock_fn)(void *context);

/* Deadline value meaning "nothing is due". */
#define USOCK_NEVER UINT64_MAX

/* CLOCK_MONOTONIC in nanoseconds; the default clock. */
uint64_t usock_monotonic_ns(void *unused);

/* ------------------------------------------------------------------ */
/* Links                                                               */
/* ------------------------------------------------------------------ */

/* Opens a link from a text spec:
 *   tap:NAME     create or attach TAP device NAME (Ethernet frames)
 *   tun:NAME     create or attach TUN device NAME (IP packets, no Ethernet)
 *   packet:IF    AF_PACKET on existing interface IF (e.g. one end of a veth)
 * On success stores a new link in *link_out (owned by the caller until handed
 * to a stack) and returns 0; returns a negative errno otherwise (-EINVAL for a
 * spec that does not parse, -EPERM/-EACCES without permission, -ENODEV ...). */
int usock_link_open(const char *spec, struct usock_link **link_out);

/* Makes two links joined by an in-memory wire: a frame sent on one is
 * received on the other.  Each end may be given to a different stack, or one
 * end driven by a test.  Returns 0 or a negative errno. */
int usock_link_mem_pair(struct usock_link **end_a, struct usock_link **end_b);

/* A link supplied by the program.  send is called for each frame (or IP
 * packet when carries_ip is nonzero) the stack transmits; the frame is
 * borrowed for the duration of the call.  The program hands received frames in
 * with usock_link_callback_input.  Returns 0 or a negative errno. */
typedef void (*usock_link_send_fn)(void *context, const uint8_t *frame, size_t length);
int usock_link_callback_new(usock_link_send_fn send, void *context, int carries_ip,
                            struct usock_link **link_out);

/* Queues one received frame on a callback link; the frame is copied.  Safe to
 * call from any thread.  Returns 0, or -ENOBUFS when the link's bounded input
 * queue is full (the frame is dropped and counted), -EINVAL when link is not a
 * callback link or length is 0 or over 65535. */
int usock_link_callback_input(struct usock_link *link, const uint8_t *frame, size_t length);

/* Impairments applied to frames in both directions of a link. */
struct usock_impairment {
    double loss;      /* probability 0..1 that a frame is dropped */
    double duplicate; /* probability a frame is sent twice */
    double reorder;   /* probability a frame is held back behind the next */
    double corrupt;   /* probability one byte of a frame is flipped */
    uint64_t delay_ns;  /* fixed one-way delay */
    uint64_t jitter_ns; /* uniform extra delay 0..jitter */
    uint64_t seed;      /* seed of the impairment's random numbers */
};

/* Parses "loss=2%,dup=1%,reorder=10%,corrupt=0.1%,delay=2ms,jitter=1ms,seed=N"
 * (each item optional, any order; times take ns/us/ms/s) into *out.  Returns
 * 0, or -EINVAL with a message naming the bad item in error (when error is not
 * NULL and error_size > 0). */
int usock_impairment_parse(const char *spec, struct usock_impairment *out, char *error,
                           size_t error_size);

/* Wraps inner in a link that applies impairment to frames in both
 * directions.  Takes ownership of inner (also on failure, when it is closed).
 * Returns 0 or a negative errno. */
int usock_link_impair(struct usock_link *inner, const struct usock_impairment *impairment,
                      struct usock_link **link_out);

/* Wraps inner in a link that also writes every frame sent and received to a
 * pcap file at path (LINKTYPE_ETHERNET, or LINKTYPE_RAW for IP links).  Takes
 * ownership of inner (also on failure).  The file is flushed when the link is
 * closed.  Returns 0 or a negative errno. */
int usock_link_pcap(struct usock_link *inner, const char *path, struct usock_link **link_out);

/* Closes a link that was not handed to a stack. */
void usock_link_close(struct usock_link *link);

/* Link-level access, for tools (the relay) that move frames themselves.
 * usock_link_send sends one frame (copied before return): 0 or -errno.
 * usock_link_receive reads one frame into buffer: its length, or -EAGAIN
 * when none is waiting.  usock_link_wait_fd gives a descriptor that becomes
 * readable when a frame may be waiting (-1 if none), usock_link_deadline the
 * time a held-back frame is due (USOCK_NEVER if none). */
int usock_link_send(struct usock_link *link, const uint8_t *frame, size_t length, uint64_t now);
ssize_t usock_link_receive(struct usock_link *link, uint8_t *buffer, size_t capacity,
                           uint64_t now);
int usock_link_wait_fd(const struct usock_link *link);
uint64_t usock_link_deadline(struct usock_link *link, uint64_t now);
/* Nonzero when the link carries bare IP packets (TUN) rather than Ethernet. */
int usock_link_carries_ip(const struct usock_link *link);
/* The link's MTU (largest IP packet), and its hardware address when it has
 * one (returns 0 and fills mac) or -ENOENT. */
unsigned usock_link_mtu(const struct usock_link *link);
int usock_link_mac(const struct usock_link *link, uint8_t mac[6]);

/* ------------------------------------------------------------------ */
/* Stacks                                                              */
/* ------------------------------------------------------------------ */

struct usock_stack_config {
    struct usock_link *link;  /* owned by the stack once created; NULL: loopback only */
    struct in_addr address;   /* interface address (network byte order) */
    unsigned prefix_length;   /* 0..32 */
    struct in_addr gateway;   /* default gateway; INADDR_ANY for none */
    uint8_t mac[6];           /* all zero: the link's own, or a random local one */
    unsigned mtu;             /* 0: the link's MTU */
    usock_clock_fn clock;     /* NULL: usock_monotonic_ns */
    void *clock_context;
    uint64_t seed;            /* 0: from getrandom(); fixed for reproducible tests */
    const char *name;         /* stack name, shown by tools; NULL: "usock" */
    const char *interface_name; /* the link's interface name for SO_BINDTODEVICE
                                 * (1..15 characters); NULL: the device of a
                                 * tap:/tun:/packet: link, else "usock0" */
    int no_offloads;          /* nonzero: plain frames only, even on a link that could
                               * take checksums and TCP segmentation off the stack
                               * (TAP: checksum offload, TSO and super-segments in) */
    uint64_t tcp_time_wait_ns; /* TCP TIME_WAIT (2MSL); 0: 60 s as Linux */
    size_t socket_limit;      /* most descriptors open at once (socket() and accept()
                               * then fail with EMFILE); 0: 65536 */
    size_t client_socket_limit; /* most descriptors one attached program
                               * (usock_attach, usock run) holds, as a process's
                               * RLIMIT_NOFILE: past it its socket() and accept()
                               * fail EMFILE, and the others keep their room;
                               * 0: half of socket_limit */
    unsigned busy_poll_us;    /* threaded mode: after frames arrive and the link is
                               * empty, the stack thread keeps polling it this long
                               * before it sleeps (a reply then costs no wakeup, but
                               * the CPU is busy meanwhile); 0: never */
    size_t tcp_memory_limit;  /* bytes all TCP buffers may hold (Linux's
                               * tcp_mem): past 3/4 of it buffers stop
                               * growing, past it new data is dropped and
                               * send() answers ENOBUFS; 0: 1/16 of RAM */
    size_t datagram_memory_limit; /* bytes all UDP, raw and ping receive queues may
                                   * hold together (Linux's udp_mem): past it a
                                   * datagram is dropped and counted (UdpMemErrors);
                                   * 0: 1/32 of RAM */
    size_t reassembly_memory_limit; /* bytes IP reassembly may hold (Linux's
                                     * ipfrag_high_thresh): past it fragments are
                                     * dropped and counted; 0: 4 MiB */
    size_t neighbour_limit;   /* most neighbour (ARP) entries (Linux's gc_thresh3):
                               * past it a new neighbour is refused, and what is
                               * sent to it dropped and counted (ArpCacheFull,
                               * IpOutDiscards; send() succeeds, as Linux's does
                               * for a drop below the socket); 0: 1024 */
};

/* Fills config with defaults (everything zero, clock monotonic). */
void usock_stack_config_init(struct usock_stack_config *config);

/* Creates a stack.  Returns NULL with errno set (EINVAL for a bad config,
 * ENOMEM).  On failure the link in config is closed. */
struct usock_stack *usock_stack_new(const struct usock_stack_config *config);

/* Stops the stack's thread if running, closes all sockets and the link, and
 * frees everything.  On a handle from usock_attach: detaches, which closes
 * every descriptor made through the handle in the remote stack. */
void usock_stack_free(struct usock_stack *stack);

/* Attaches to the stack a running `usock up --name NAME` serves (at
 * $USOCK_RUNDIR/NAME.api, $USOCK_RUNDIR defaulting to /run/usock).  The
 * handle returned takes every socket call of this header (usock_socket ...
 * usock_poll) with the semantics and errno values of the same call in the
 * stack's own process; descriptors are the remote stack's, private to this
 * handle.  Calls are thread-safe: each thread in a call holds a connection
 * of its own (at most 128 in calls at once; more wait), so one blocked in
 * recv() does not hold up another's send().  Ancillary data (IP_PKTINFO,
 * IP_RECVTTL, IP_RECVTOS, MSG_ERRQUEUE) travels both ways, up to 512 bytes;
 * option values up to 1024 bytes.  If the stack goes away, calls fail with
 * EIO.  After fork() the child must not use the parent's handle; it
 * attaches anew (`usock run` shares the parent's sockets with the child
 * as the kernel does; see preload/fork_calls.c).  Stack-level calls make no sense on a handle and fail:
 * usock_stack_poll (USOCK_NEVER, errno EINVAL), usock_stack_start,
 * usock_stack_serve_control and usock_stack_serve_api (-EINVAL);
 * usock_stack_stop does nothing, usock_stack_wait_fd gives -1, and
 * usock_stack_sockets and the counters read as empty (use `usock ss` and
 * `usock stats`).  Free the handle with usock_stack_free.
 * Returns NULL with errno set on failure: ENOENT (no stack of that name),
 * ECONNREFUSED (its socket file is left over, nothing answers), EAGAIN
 * (the stack serves as many clients as it will), EINVAL (a name that is
 * empty, over 64 bytes or holds '/'), ENAMETOOLONG, EMFILE, ENOMEM. */
struct usock_stack *usock_attach(const char *name);

/* usock_attach with the endpoint's path given in full. */
struct usock_stack *usock_attach_path(const char *path);

/* The stack's clock, as configured. */
uint64_t usock_stack_now(struct usock_stack *stack);

/* Event mode: processes frames waiting on the link, runs due timers, sends
 * what is ready, and returns the next deadline (USOCK_NEVER when none; the
 * link's descriptor becoming readable also calls for a poll). */
uint64_t usock_stack_poll(struct usock_stack *stack, uint64_t now);

/* Descriptor that becomes readable when the stack should be polled (the
 * link's), or -1. */
int usock_stack_wait_fd(struct usock_stack *stack);

/* Threaded mode: runs the stack on its own thread until usock_stack_stop.
 * Returns 0 or a negative errno. */
int usock_stack_start(struct usock_stack *stack);
void usock_stack_stop(struct usock_stack *stack);

/* Serves the control endpoint (a Unix stream socket at path) on its own
 * thread, for `usock ss` and `usock stats`.  Returns 0 or a negative errno. */
int usock_stack_serve_control(struct usock_stack *stack, const char *path);

/* Serves the sockets API (usock_attach) on a Unix SOCK_SEQPACKET socket at
 * path (`usock up` uses $USOCK_RUNDIR/NAME.api), each client connection on
 * a thread of its own, at most 1024 at once and 128 from one process.  A
 * client reaches only the descriptors it made or accepted (others are
 * EBADF); when it detaches,
 * exits or dies they are all closed, also while it is blocked in a call.
 * The stack must run in threaded mode (usock_stack_start first; else
 * -EINVAL).  usock_stack_free stops the service.  Returns 0 or a negative
 * errno (-EALREADY when already serving). */
int usock_stack_serve_api(struct usock_stack *stack, const char *path);

/* Counters.  usock_stack_counter_count is the number of counters; entry i
 * has a MIB-style name (static string) and a value. */
size_t usock_stack_counter_count(void);
const char *usock_stack_counter_name(size_t index);
uint64_t usock_stack_counter_value(struct usock_stack *stack, size_t index);
/* Value of a counter by name, or 0 when there is none of that name. */
uint64_t usock_stack_counter(struct usock_stack *stack, const char *name);

/* Most processes a socket table row names. */
#define USOCK_SOCKET_OWNERS_MAX 8

/* One row of the socket table. */
struct usock_socket_info {
    int fd;
    int type;                 /* SOCK_DGRAM, SOCK_STREAM, SOCK_RAW */
    int protocol;             /* IPPROTO_UDP ... */
    const char *state;        /* "UNCONN", "ESTAB", "LISTEN" ... */
    int listening;            /* counts as listening for ss -l (UNCONN UDP, LISTEN TCP) */
    size_t receive_queue;     /* bytes waiting to be read */
    size_t send_queue;        /* bytes waiting to be sent */
    struct sockaddr_in local;
    struct sockaddr_in peer;  /* sin_port 0 and INADDR_ANY when not connected */
    char details[256];        /* TCP: what ss -i shows (wscale, rto, rtt, cwnd ...) */
    int owner_pid;            /* process id of the attached program holding the
                               * descriptor (usock_attach); 0: the stack's own */
    /* Every attached process holding a descriptor for it (after fork or
     * usock_dup there may be several), owner_pid first, each once. */
    int owner_pids[USOCK_SOCKET_OWNERS_MAX];
    int owner_pid_count;
};

/* Fills up to max rows; returns the number of sockets (which may exceed max). */
size_t usock_stack_sockets(struct usock_stack *stack, struct usock_socket_info *rows, size_t max);

/* ------------------------------------------------------------------ */
/* Sockets                                                             */
/* ------------------------------------------------------------------ */

int usock_socket(struct usock_stack *stack, int domain, int type, int protocol);
int usock_close(struct usock_stack *stack, int fd);
/* dup(2): a new descriptor (the lowest free) for the socket behind fd,
 * sharing it as the kernel's dup does: one socket, its options and file
 * status flags (O_NONBLOCK) seen through either, released when the last
 * descriptor is closed.  Returns the new descriptor, or -1 with errno
 * (EBADF, EMFILE). */
int usock_dup(struct usock_stack *stack, int fd);
int usock_bind(struct usock_stack *stack, int fd, const struct sockaddr *address,
               socklen_t length);
int usock_connect(struct usock_stack *stack, int fd, const struct sockaddr *address,
                  socklen_t length);
int usock_listen(struct usock_stack *stack, int fd, int backlog);
int usock_accept(struct usock_stack *stack, int fd, struct sockaddr *address,
                 socklen_t *length);
int usock_shutdown(struct usock_stack *stack, int fd, int how);
ssize_t usock_send(struct usock_stack *stack, int fd, const void *buffer, size_t length,
                   int flags);
ssize_t usock_sendto(struct usock_stack *stack, int fd, const void *buffer, size_t length,
                     int flags, const struct sockaddr *address, socklen_t address_length);
ssize_t usock_sendmsg(struct usock_stack *stack, int fd, const struct msghdr *message,
                      int flags);
ssize_t usock_recv(struct usock_stack *stack, int fd, void *buffer, size_t length, int flags);
ssize_t usock_recvfrom(struct usock_stack *stack, int fd, void *buffer, size_t length,
                       int flags, struct sockaddr *address, socklen_t *address_length);
ssize_t usock_recvmsg(struct usock_stack *stack, int fd, struct msghdr *message, int flags);
/* readv(2)/writev(2) on a socket: recvmsg/sendmsg with these iovecs and
 * no flags.  count must be 0..IOV_MAX (else EINVAL). */
ssize_t usock_readv(struct usock_stack *stack, int fd, const struct iovec *vectors, int count);
ssize_t usock_writev(struct usock_stack *stack, int fd, const struct iovec *vectors, int count);
int usock_getsockname(struct usock_stack *stack, int fd, struct sockaddr *address,
                      socklen_t *length);
int usock_getpeername(struct usock_stack *stack, int fd, struct sockaddr *address,
                      socklen_t *length);
int usock_setsockopt(struct usock_stack *stack, int fd, int level, int name,
                     const void *value, socklen_t length);
int usock_getsockopt(struct usock_stack *stack, int fd, int level, int name, void *value,
                     socklen_t *length);
/* F_GETFL, F_SETFL (O_NONBLOCK), F_GETFD, F_SETFD. */
int usock_fcntl(struct usock_stack *stack, int fd, int command, int argument);
/* FIONREAD (int *), FIONBIO (int *). */
int usock_ioctl(struct usock_stack *stack, int fd, unsigned long request, void *argument);
/* struct pollfd semantics over usock descriptors; timeout in ms, -1 forever.
 * In event mode the timeout is treated as 0. */
int usock_poll(struct usock_stack *stack, struct pollfd *fds, nfds_t count, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* USOCK_H */
