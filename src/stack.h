/*
 * stack.h - the stack object: everything one usock instance owns.
 *
 * There are no mutable globals: every function takes the stack it works on,
 * so two stacks in one process are independent.  The lock protects the whole
 * stack; the socket API takes it on entry and releases it on exit, and the
 * stack thread (threaded mode) takes it around each poll.  Protocol code
 * never reads a clock: `now` (nanoseconds) is passed down from the poll or
 * from the API call that started the work.
 */
#ifndef USOCK_STACK_H
#define USOCK_STACK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "counters.h"
#include "link/link.h"
#include "net/arp.h"
#include "net/fragment.h"
#include "net/igmp.h"
#include "net/icmp.h"
#include "raw.h"
#include "socket/datagram_queue.h"
#include "socket/socket.h"
#include "tcp/tcp.h"
#include "usock.h"
#include "util/packet_buffer.h"
#include "util/random.h"
#include "util/timer.h"

/* Linux's IFNAMSIZ (net/if.h clashes with linux/if.h, which links use). */
#define INTERFACE_NAME_SIZE 16

#define NS_PER_MS 1000000ULL
#define NS_PER_SECOND 1000000000ULL

/* The one interface a stack has besides loopback. */
struct interface {
    struct usock_link *link;    /* NULL: loopback only */
    bool ethernet;              /* false for IP links (TUN) */
    uint8_t mac[6];
    uint32_t address;           /* network order; 0 when unset */
    uint32_t netmask;           /* network order */
    uint32_t broadcast;         /* directed broadcast, network order */
    uint32_t gateway;           /* network order; 0 for none */
    unsigned prefix_length;
    unsigned mtu;
    char name[INTERFACE_NAME_SIZE]; /* what SO_BINDTODEVICE names the link by */
};

struct usock_stack {
    pthread_mutex_t lock;
    pthread_cond_t poll_condition; /* broadcast whenever any socket changes */
    usock_clock_fn clock;
    void *clock_context;
    char name[64];
    struct interface interface;
    struct neighbour_cache neighbours;
    struct fragment_table fragments;
    struct datagram_memory datagram_memory; /* UDP, raw and ping receive queues */
    struct igmp_layer igmp;
    struct timer_wheel timers;
    struct socket_layer sockets;
    struct tcp_layer tcp;
    struct raw_layer raw;
    struct packet_queue loopback;  /* packets to ourselves, delivered next poll */
    struct icmp_rate_limit icmp_limit;
    uint64_t counters[COUNTER_COUNT];
    struct random_state random;
    uint8_t secret[16];            /* siphash key for tables, IP IDs, ports */
    /* IPv4 identification counters, one per bucket of (source,
     * destination, protocol) hashed under the secret (as Linux's ip_idents),
     * each starting at random: what one peer sees says nothing of what
     * others get. */
    uint16_t ip_identifications[IPV4_IDENTIFICATION_BUCKETS];
    struct ipv4_identification_cache ip_identification_last;
    bool verify_checksums;
    bool input_checksum_verified;  /* the link vouched for the frame being handled */
    uint64_t tcp_time_wait_ns;     /* 2MSL */
    bool draining_loopback;
    uint8_t *receive_frame;        /* LINK_FRAME_MAX bytes for link reads */
    /* threaded mode */
    bool thread_running;
    bool thread_stop;
    pthread_t thread;
    int wake_fd;                   /* eventfd that interrupts the thread's wait */
    uint64_t thread_sleeps_until;  /* the deadline the thread last waits towards */
    unsigned frames_last_round;    /* frames the last poll round took from the link */
    uint64_t busy_poll_ns;         /* the thread polls this long after frames before sleeping */
    /* control endpoint */
    bool control_running;
    pthread_t control_thread;
    int control_fd;
    int control_stop_fd;
    char control_path[108];
    /* sockets API served to other processes (src/remote/server.c) */
    struct api_server *api_server;
    /* Set on a handle made by usock_attach: the stack lives in another
     * process and every call goes to src/remote/client.c; nothing above
     * is initialised then. */
    struct remote_client *remote;
};

static inline void counter_add(struct usock_stack *stack, enum counter_id id, uint64_t amount)
{
    stack->counters[id] += amount;
}

#define COUNT(stack, name) counter_add((stack), COUNTER_##name, 1)
#define COUNT_ADD(stack, name, amount) counter_add((stack), COUNTER_##name, (amount))

/* Wakes the stack thread so it recomputes its deadline (after an API call
 * armed a timer).  Harmless in event mode. */
void stack_kick(struct usock_stack *stack);
/* Hands one frame to the link, gathering a payload still in its ring
 * where the link can (else copying it in first).  Borrowed; counts errors. */
void stack_link_send(struct usock_stack *stack, struct packet_buffer *buffer,
                     uint64_t now);
/* Delivers packets queued to ourselves (loopback), up to a bound per call. */
void stack_drain_loopback(struct usock_stack *stack, uint64_t now);
/* Stops the sockets-API server if it runs (remote/server.c), closing
 * every attached client's sockets. */
void stack_api_stop(struct usock_stack *stack);
/* Stops the control endpoint thread if it runs (control.c). */
void stack_control_stop(struct usock_stack *stack);
/* Arms timer; on allocation failure the timer fires on the next poll. */
void stack_timer_arm(struct usock_stack *stack, struct timer *timer, uint64_t deadline);

#endif
