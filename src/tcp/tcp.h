/*
 * tcp.h - TCP (RFC 9293): the connection block and the functions the TCP
 * files share.
 *
 * A TCP socket's protocol_state is a struct tcp_connection.  Connections
 * are found for incoming segments by their 4-tuple in a hash table (every
 * state but LISTEN and CLOSED); listening sockets are found in the TCP port
 * table, exact address first, then the wildcard.  A connection whose
 * descriptor was closed lives on (orphaned) until the state machine reaches
 * CLOSED (after FIN_WAIT, LAST_ACK or TIME_WAIT), holding its own
 * reference on the socket.  Connections a listener created live on its SYN
 * queue (SYN-RECEIVED) and then its accept queue (ESTABLISHED) until
 * accept() gives them a descriptor.
 *
 * Send side: the send ring holds every byte from the first unacknowledged
 * one onward.  The sequence number of the ring's first byte is send_base:
 * iss + 1 before the SYN is acknowledged's, snd_una after.  A FIN, once
 * queued, takes the sequence number just past the ring's last byte.
 * Receive side: in-order bytes wait in the receive ring; segments beyond a
 * hole wait on a bounded out-of-order list.
 */
#ifndef USOCK_TCP_H
#define USOCK_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/ipv4.h"
#include "util/hash_table.h"
#include "util/ring.h"
#include "util/timer.h"
#include "wire/tcp.h"

struct usock_stack;
struct socket;

/* Ordered so range tests read naturally (4.4BSD TCPS_HAVERCVDSYN style). */
enum tcp_state {
    TCPS_CLOSED,
    TCPS_LISTEN,
    TCPS_SYN_SENT,
    TCPS_SYN_RECEIVED,
    TCPS_ESTABLISHED,
    TCPS_CLOSE_WAIT,
    TCPS_FIN_WAIT_1,
    TCPS_CLOSING,
    TCPS_LAST_ACK,
    TCPS_FIN_WAIT_2,
    TCPS_TIME_WAIT,
    TCPS_STATE_COUNT
};

/* Tunables, Linux's defaults where Linux has one. */
#define TCP_DEFAULT_MSS 536                  /* RFC 9293 3.7.1 when none is sent */
#define TCP_INITIAL_WINDOW_SEGMENTS 10       /* RFC 6928 */
#define TCP_RTO_INITIAL_NS (1000ULL * 1000 * 1000)
#define TCP_RTO_MIN_NS (200ULL * 1000 * 1000)  /* Linux TCP_RTO_MIN */
#define TCP_RTO_MAX_NS (120ULL * 1000 * 1000 * 1000)
#define TCP_SYN_RETRIES 6                    /* net.ipv4.tcp_syn_retries */
#define TCP_SYNACK_RETRIES 5                 /* net.ipv4.tcp_synack_retries */
#define TCP_RETRIES 15                       /* net.ipv4.tcp_retries2 */
#define TCP_DELAYED_ACK_NS (40ULL * 1000 * 1000)  /* Linux TCP_DELACK_MIN */
#define TCP_QUICKACK_SEGMENTS 16
#define TCP_FIN_TIMEOUT_NS (60ULL * 1000 * 1000 * 1000)
#define TCP_TIME_WAIT_NS (60ULL * 1000 * 1000 * 1000)  /* 2MSL as Linux: 60 s */
#define TCP_TIME_WAIT_LIMIT 4096
#define TCP_RECEIVE_BUFFER_DEFAULT 131072    /* tcp_rmem[1] */
#define TCP_RECEIVE_BUFFER_MAX (6 * 1024 * 1024) /* tcp_rmem[2]: sizes the window scale */
/* The shortest round trip receive auto-tuning measures over: over a TAP's
 * tens of microseconds, twice what the reader takes would be a window of
 * a few 64 KiB super-segments. */
#define TCP_AUTOTUNE_ROUND_TRIP_MIN_NS 1000000
#define TCP_WINDOW_SHIFT_MAX 14              /* RFC 7323 2.3 */
#define TCP_TIMESTAMPS_LENGTH 12             /* NOP, NOP, kind 8 option */
#define TCP_PAWS_IDLE_NS (24ULL * 24 * 3600 * 1000 * 1000 * 1000) /* RFC 7323 5.5 */
#define TCP_SEND_BUFFER_DEFAULT 16384        /* tcp_wmem[1], as reported */
#define TCP_SEND_BUFFER_AUTO (256 * 1024)    /* the least used until SO_SNDBUF is set */
#define TCP_SEND_BUFFER_MAX (4 * 1024 * 1024) /* tcp_wmem[2] */
#define TCP_OUT_OF_ORDER_LIMIT 256           /* segments */
#define TCP_SCOREBOARD_RANGES 32             /* SACKed ranges remembered */
#define TCP_SACK_RECENT 4                    /* recent arrivals, for block order */
#define TCP_PROBE_MIN_NS (10ULL * 1000 * 1000) /* tail loss probe floor (Linux: 2 jiffies) */
#define TCP_PROBE_DELAYED_ACK_NS (200ULL * 1000 * 1000) /* RFC 8985 WCDelAckT */
#define TCP_CHALLENGE_INTERVAL_NS (500ULL * 1000 * 1000) /* tcp_invalid_ratelimit */
#define TCP_CHALLENGE_LIMIT_PER_SECOND 1000  /* stack-wide (RFC 5961 7) */
#define TCP_CONGESTION_NAME_MAX 16           /* TCP_CA_NAME_MAX */
#define TCP_REORDERING_INITIAL 3             /* DupThresh, net.ipv4.tcp_reordering */
#define TCP_BACKLOG_MAX 4096                 /* SOMAXCONN */
#define TCP_KEEPALIVE_IDLE_NS (7200ULL * 1000 * 1000 * 1000)
#define TCP_KEEPALIVE_INTERVAL_NS (75ULL * 1000 * 1000 * 1000)
#define TCP_KEEPALIVE_PROBES 9

struct tcp_out_of_order {
    struct tcp_out_of_order *next;
    uint32_t sequence;
    uint32_t length;
    bool fin;
    uint8_t data[];
};

struct tcp_connection;

/* The peer's urgent byte (Linux's tp->urg_data states). */
enum tcp_urgent_state {
    TCP_URGENT_NONE,    /* no urgent pointer, or the reader passed it */
    TCP_URGENT_PENDING, /* pointer seen, byte not yet arrived */
    TCP_URGENT_VALID,   /* byte held, not yet read with MSG_OOB */
    TCP_URGENT_READ,    /* read with MSG_OOB; the mark stays until passed */
};

/* A congestion control algorithm (tcp_congestion.c).  Slow start, fast
 * recovery and timeouts are common code; an algorithm says how cwnd grows
 * at or above ssthresh and what ssthresh becomes on a congestion event. */
struct tcp_congestion_ops {
    const char *name;  /* as TCP_CONGESTION takes it */
    void (*avoid_congestion)(struct tcp_connection *tcb, uint32_t acknowledged, uint64_t now);
    uint32_t (*loss)(struct tcp_connection *tcb, uint64_t now);
};

/* What the peer has SACKed above snd_una: disjoint ranges in order. */
struct tcp_scoreboard {
    unsigned count;
    uint32_t sacked_bytes;
    struct tcp_sack_block ranges[TCP_SCOREBOARD_RANGES];
};

struct tcp_connection {
    struct socket *socket;
    enum tcp_state state;
    struct hash_node connection_node;
    struct tcp_connection *all_next, *all_prev; /* every connection of the stack */

    /* listening */
    int backlog;
    unsigned syn_queue_length;
    unsigned accept_queue_length;
    struct tcp_connection *accept_head, *accept_tail;  /* ESTABLISHED children */
    struct tcp_connection *listener;    /* for children: who made us */
    struct tcp_connection *queue_next;  /* link in the listener's accept queue */

    /* send sequence space (RFC 9293 3.3.1) */
    uint32_t iss;
    uint32_t snd_una;
    uint32_t snd_nxt;
    uint32_t snd_max;      /* highest sequence number sent + 1 */
    uint32_t snd_wnd;      /* peer's window, bytes */
    uint32_t snd_wl1, snd_wl2;
    uint32_t max_snd_wnd;  /* largest window the peer offered (sender SWS) */
    uint16_t mss;          /* what we send per segment */
    uint16_t advertised_mss;
    uint16_t user_mss;     /* TCP_MAXSEG; 0 = none */
    struct ring send_buffer;

    /* receive sequence space */
    uint32_t irs;
    uint32_t rcv_nxt;
    uint32_t rcv_adv;      /* right edge of the window we advertised */
    struct ring receive_buffer;
    struct tcp_out_of_order *out_of_order;
    unsigned out_of_order_count;
    unsigned keepalive_count;       /* TCP_KEEPCNT (socket options, below) */
    size_t out_of_order_bytes;

    /* negotiated on the SYNs (RFC 7323); while SYN-SENT, what we offer */
    bool window_scaling;         /* both sides sent a window scale option */
    uint8_t send_window_shift;   /* the peer's: applied to windows it sends */
    uint8_t receive_window_shift; /* ours: applied to windows we send */
    bool timestamps;             /* both sides sent timestamps */
    uint32_t timestamp_offset;   /* added to our millisecond clock (RFC 7323 5.4) */
    uint32_t timestamp_recent;   /* TS.Recent: the peer's value we echo */
    uint64_t timestamp_recent_time; /* when TS.Recent was recorded (PAWS idle rule) */
    uint32_t last_ack_sent;      /* Last.ACK.sent (RFC 7323 4.3) */
    bool sack_permitted;         /* both SYNs carried SACK-permitted */
    uint8_t urgent_byte;         /* the peer's urgent byte, once here (urgent data, below) */

    /* SACK, receiving (RFC 2018, RFC 2883) */
    uint32_t sack_recent[TCP_SACK_RECENT]; /* latest out-of-order arrivals */
    unsigned sack_recent_count;
    struct tcp_sack_block dsack_block;

    /* SACK, sending (RFC 6675) and PRR (RFC 6937) */
    struct tcp_scoreboard *scoreboard; /* NULL until the first SACK */
    uint32_t high_rxt;           /* HighRxt: end of the last hole retransmitted */
    uint32_t prr_delivered, prr_out, recover_flight;
    uint32_t retransmit_round_end; /* snd_max when this round of hole resends began */
    unsigned reordering;         /* DupThresh */

    /* Undoing a spurious retransmission (Eifel detection, RFC 3522, with
     * timestamps; response as RFC 4015) */
    uint32_t undo_timestamp;     /* our TSval on the first retransmission */
    uint32_t prior_cwnd, prior_ssthresh;

    /* urgent data (RFC 9293 3.8.5 with RFC 6093: one byte, as Linux) */
    uint32_t snd_up;             /* one past our urgent byte */
    enum tcp_urgent_state urgent_state;
    uint32_t urgent_sequence;    /* sequence number of the peer's urgent byte */

    /* round-trip time (RFC 6298) */
    uint64_t srtt_ns, rttvar_ns, rto_ns;
    uint32_t rtt_sequence;
    uint32_t flight_window_end;  /* snd_max when flight_max began measuring */
    uint64_t rtt_started;
    uint32_t retransmitted_high; /* end of the highest retransmitted byte */
    uint32_t retransmit_timestamp; /* our TSval when we last retransmitted */
    unsigned retransmits;  /* consecutive timeouts (backoff) */
    unsigned total_retransmits;
    uint64_t bytes_acked;  /* data the peer acknowledged (tcpi_bytes_acked) */
    uint64_t bytes_received; /* data taken in order (tcpi_bytes_received) */

    /* receive buffer auto-tuning (Linux's tcp_rcv_space_adjust) */
    uint64_t autotune_time;      /* start of the current measurement */
    size_t autotune_copied;      /* bytes the program read since then */
    size_t autotune_space;       /* the most read in one round trip */

    /* congestion control (RFC 5681, NewReno RFC 6582) */
    const struct tcp_congestion_ops *congestion;
    uint32_t cwnd, ssthresh;
    uint64_t last_data_sent;     /* for the restart window after idle */
    /* CUBIC (RFC 9438), in segments and seconds */
    uint64_t cubic_epoch_start;  /* 0: a new epoch starts with the next growth */
    double cubic_w_max, cubic_k, cubic_origin, cubic_reno_estimate;
    double prior_cubic_w_max;
    unsigned duplicate_acks;
    uint32_t recover;

    /* acknowledgment */
    unsigned segments_unacked;  /* full segments received since our last ACK */
    unsigned quickack;          /* segments still to ACK at once */

    /* timers */
    struct timer retransmit_timer;  /* RTO, SYN retries, persist */
    struct timer delayed_ack_timer;
    struct timer keepalive_timer;   /* keepalive; FIN_WAIT_2 and TIME_WAIT expiry */
    uint64_t last_received;         /* when the peer last sent anything */
    unsigned keepalive_probes_sent;
    uint32_t flight_max;         /* most bytes in flight since flight_window_end's window began */

    /* socket options */
    uint64_t keepalive_idle_ns, keepalive_interval_ns;
    uint64_t user_timeout_ns;       /* TCP_USER_TIMEOUT; 0 = none */
    uint64_t first_retransmit_time; /* when the current run of timeouts began */
    uint64_t last_challenge_time;   /* our last challenge ACK (0: none) */
    uint64_t last_out_of_window_ack_time; /* our last ACK to an unacceptable segment (0: none) */
    int soft_error;                 /* reported on timeout, as Linux does */

    /* flags, packed together as bit fields (an idle connection's size
     * counts: issue 6 wants at most 1 KiB) */
    bool in_connection_table : 1;
    bool orphaned : 1;        /* its descriptor is closed */
    bool on_accept_queue : 1;
    bool fin_queued : 1;       /* shutdown(SHUT_WR) or close: FIN follows the data */
    bool syn_acknowledged : 1; /* the peer has acknowledged our SYN */
    bool fin_received : 1;
    bool dsack_pending : 1;
    bool undo_armed : 1;
    bool undo_after_timeout : 1;
    bool send_urgent : 1;            /* urgent mode: snd_una has not reached snd_up */
    bool rtt_measuring : 1;
    bool probe_armed : 1;      /* the retransmit timer holds a tail loss probe */
    bool probe_outstanding : 1; /* a probe went and nothing new was acknowledged since */
    bool in_recovery : 1;
    bool ack_now : 1;
    bool delayed_ack_pending : 1;
    bool nodelay : 1;
    bool corked : 1;          /* TCP_CORK: partial segments wait for uncork */
    bool keepalive : 1;
    bool reset_received : 1;
    bool connect_unreported : 1;        /* connect() has not yet said success */
};

/* Per-destination offsets of the connect() port walk (Linux: 256). */
#define TCP_CONNECT_PORT_STEPS 256

/* The most storage of drained rings kept for reuse (outside memory_bytes). */
#define TCP_SPARE_BUFFER_BYTES (16u << 20)

struct tcp_layer {
    struct hash_table connections;  /* by 4-tuple */
    struct tcp_connection *all;     /* list of every connection */
    unsigned time_wait_count;
    unsigned established_count;
    size_t memory_bytes;            /* held by TCP buffers (rings, out of order) */
    size_t memory_limit;            /* tcp_mem: hard limit; 3/4 is pressure */
    struct ring_pool spare_buffers; /* storage of drained rings, for reuse */
    struct tcp_connection *last_found; /* by tcp_lookup_connection; NULL once unhashed */
    uint32_t connect_port_steps[TCP_CONNECT_PORT_STEPS]; /* tcp_pick_port_for_connect */
    uint64_t challenge_second;      /* the second challenge_count counts in */
    unsigned challenge_count;       /* challenge ACKs sent in it */
    bool cookies_sent;              /* SYN cookies went out ... */
    uint32_t last_cookie_period;    /* ... last in this one-minute period */
};

int tcp_layer_init(struct tcp_layer *layer);
/* Frees every connection, orphans included. */
void tcp_layer_destroy(struct usock_stack *stack);

/* A local port for connect() from source to destination:destination_port
 * (0 when none is left): one that nothing holds, or that only other
 * connect()ed sockets hold, and whose 4-tuple is unused: Linux shares
 * such ports between destinations. */
uint16_t tcp_pick_port_for_connect(struct usock_stack *stack, uint32_t source,
                                   uint32_t destination, uint16_t destination_port);

/* tcp_input.c */
void tcp_input(struct usock_stack *stack, const struct ipv4_packet *packet, uint64_t now);
void tcp_error(struct usock_stack *stack, const struct ipv4_error *error, uint64_t now);

/* tcp_output.c */
/* Sends whatever the windows, Nagle and the state allow, then an ACK if
 * one is due. */
void tcp_output(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now);
/* Retransmits up to limit bytes from snd_una (and the FIN if it follows). */
void tcp_retransmit_first(struct usock_stack *stack, struct tcp_connection *tcb,
                          uint32_t limit, uint64_t now);
/* Retransmits up to limit bytes from sequence (below snd_max); returns the
 * sequence space sent. */
uint32_t tcp_retransmit_at(struct usock_stack *stack, struct tcp_connection *tcb,
                           uint32_t sequence, uint32_t limit, uint64_t now);
/* A tail loss probe's new data: one segment from snd_nxt if the peer's
 * window takes it (cwnd aside).  Returns whether one went. */
bool tcp_send_probe_new_data(struct usock_stack *stack, struct tcp_connection *tcb,
                             uint64_t now);
/* Sends a bare ACK now (window update, duplicate ACK, challenge ACK). */
void tcp_send_ack(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now);
/* Sends a keepalive probe: an ACK one below the sequence we are at. */
void tcp_send_keepalive_probe(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now);
/* Sends a RST for the connection (abort). */
void tcp_send_reset(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now);
/* Sends a segment that belongs to no connection (a reset, a cookie
 * SYN-ACK) from source to destination (network order). */
void tcp_send_stateless(struct usock_stack *stack, uint32_t source, uint32_t destination,
                        const struct tcp_header *header, uint64_t now);
/* Answers a segment that has no connection with a RST (RFC 9293 3.10.7.1). */
void tcp_reply_reset(struct usock_stack *stack, const struct ipv4_packet *packet,
                     const struct tcp_header *header, uint64_t now);
/* The window we offer now (free receive space, minus what out-of-order
 * data holds), before SWS avoidance. */
uint32_t tcp_receive_window(const struct tcp_connection *tcb);
/* Sequence number of the send ring's first byte. */
uint32_t tcp_send_base(const struct tcp_connection *tcb);

/* Our TSval now: a millisecond clock plus the connection's offset. */
static inline uint32_t tcp_timestamp_now(const struct tcp_connection *tcb, uint64_t now)
{
    return (uint32_t)(now / 1000000) + tcb->timestamp_offset;
}

/* Bytes of options every non-SYN segment of the connection carries. */
static inline uint32_t tcp_fixed_option_bytes(const struct tcp_connection *tcb)
{
    return tcb->timestamps ? TCP_TIMESTAMPS_LENGTH : 0;
}

/* Sequence number of the receive ring's first byte (the next to read). */
static inline uint32_t tcp_read_sequence(const struct tcp_connection *tcb)
{
    return tcb->rcv_nxt - (uint32_t)tcb->receive_buffer.length - (tcb->fin_received ? 1 : 0);
}

/* The global TCP memory budget (Linux's tcp_mem): whether more bytes may
 * be taken, and whether buffers should stop growing (pressure). */
static inline bool tcp_memory_allows(const struct tcp_layer *layer, size_t more)
{
    return layer->memory_bytes + more <= layer->memory_limit;
}
static inline bool tcp_memory_pressure(const struct tcp_layer *layer)
{
    return layer->memory_bytes > layer->memory_limit / 4 * 3;
}

/* Buffer auto-tuning (tcp_socket.c): after a read of copied bytes, grows
 * the receive buffer to twice what the program reads per round trip; after
 * the congestion window grew, the send buffer to twice the window.  Never
 * past tcp_rmem[2]/tcp_wmem[2], never when SO_RCVBUF/SO_SNDBUF was set. */
void tcp_autotune_receive(struct usock_stack *stack, struct tcp_connection *tcb, size_t copied,
                          uint64_t now);
void tcp_autotune_send(struct usock_stack *stack, struct tcp_connection *tcb);

/* tcp_input.c: moves out-of-order data that now continues the stream into
 * the receive ring (as far as it has room); true when that reached a FIN
 * (which the caller must then process). */
bool tcp_drain_out_of_order(struct usock_stack *stack, struct tcp_connection *tcb);
/* tcp_input.c: the peer's FIN reached RCV.NXT (RFC 9293 3.10.7.4 eighth).
 * Returns false when the connection was freed (TIME_WAIT refused). */
bool tcp_process_fin(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now);
/* tcp_input.c: takes the urgent byte out of the ring once it arrived. */
void tcp_urgent_arrived(struct usock_stack *stack, struct tcp_connection *tcb);

/* tcp_syncookie.c */
/* The ISN of a cookie SYN-ACK for this 4-tuple (addresses network order,
 * ports host order), the peer's ISN and MSS; notes that cookies are out. */
uint32_t tcp_syncookie_make(struct usock_stack *stack, uint32_t local_address, uint16_t local_port,
                            uint32_t peer_address, uint16_t peer_port, uint32_t peer_isn,
                            uint16_t peer_mss, uint64_t now);
/* Whether cookie (SEG.ACK - 1 of an ACK to a listener) is one we made
 * recently for this 4-tuple and peer ISN (SEG.SEQ - 1); stores the MSS it
 * encodes. */
bool tcp_syncookie_check(const struct usock_stack *stack, uint32_t local_address,
                         uint16_t local_port, uint32_t peer_address, uint16_t peer_port,
                         uint32_t peer_isn, uint32_t cookie, uint64_t now, uint16_t *peer_mss);
/* Our TSval for a cookie SYN-ACK: clock_value with the SYN's window scale
 * and SACK-permitted in its low 6 bits (never ahead of clock_value). */
uint32_t tcp_syncookie_timestamp(uint32_t clock_value, const struct tcp_options *syn_options);
/* Reads those bits back from the TSecr of the answering ACK. */
void tcp_syncookie_options(uint32_t echoed, bool *window_scaling, uint8_t *window_shift,
                           bool *sack_permitted);
/* tcp_socket.c: answers a SYN to a listener whose SYN queue is full with a
 * cookie SYN-ACK, keeping nothing. */
void tcp_send_syn_cookie(struct usock_stack *stack, struct tcp_connection *listener,
                         const struct ipv4_packet *packet, const struct tcp_header *syn,
                         uint64_t now);
/* tcp_socket.c: makes an ESTABLISHED child on the accept queue from the
 * ACK that returned a valid cookie; NULL when the accept queue is full or
 * memory is short. */
struct tcp_connection *tcp_create_child_from_cookie(struct usock_stack *stack,
                                                    struct tcp_connection *listener,
                                                    const struct ipv4_packet *packet,
                                                    const struct tcp_header *ack,
                                                    uint16_t peer_mss, uint64_t now);

/* tcp_congestion.c */
const struct tcp_congestion_ops *tcp_congestion_default(void);
/* The algorithm called name, or NULL. */
const struct tcp_congestion_ops *tcp_congestion_find(const char *name);
/* A congestion event (fast retransmit or timeout): sets ssthresh. */
void tcp_congestion_on_loss(struct tcp_connection *tcb, uint64_t now);
/* Grows cwnd for acknowledged new bytes outside recovery. */
void tcp_congestion_grow(struct tcp_connection *tcb, uint32_t acknowledged, uint64_t now);

/* tcp_sack.c */
/* Receiver: remembers the latest out-of-order arrival (its run is the
 * first SACK block) and a duplicate to report once as a D-SACK block. */
void tcp_sack_note_arrival(struct tcp_connection *tcb, uint32_t sequence);
void tcp_sack_note_duplicate(struct tcp_connection *tcb, uint32_t left, uint32_t right);
/* Fills options->sack_blocks for an outgoing ACK (none when SACK is off
 * or nothing is held out of order); clears the pending D-SACK. */
void tcp_sack_fill_blocks(struct usock_stack *stack, struct tcp_connection *tcb,
                          struct tcp_options *options);
/* Bytes the SACK option of the next segment may take (0 when none). */
uint32_t tcp_sack_option_bytes(const struct tcp_connection *tcb);
/* Sender: prunes the scoreboard below ack and merges the segment's valid
 * blocks in.  Returns the bytes newly SACKed. */
uint32_t tcp_sack_update(struct usock_stack *stack, struct tcp_connection *tcb,
                         const struct tcp_options *options, uint32_t ack);
uint32_t tcp_sack_sacked_bytes(const struct tcp_connection *tcb);
/* Frees the scoreboard (timeout, or the connection's end). */
void tcp_sack_forget(struct tcp_connection *tcb);
/* RFC 6675 IsLost(snd_una). */
bool tcp_sack_first_lost(const struct tcp_connection *tcb);
/* RFC 6675 SetPipe: bytes believed to be in the network. */
uint32_t tcp_sack_pipe(const struct tcp_connection *tcb);
/* RFC 6675 NextSeg rules 1 (lost_only) and 3: the next hole to resend,
 * from high_rxt on, below the highest SACKed byte. */
bool tcp_sack_next_hole(const struct tcp_connection *tcb, bool lost_only, uint32_t *sequence,
                        uint32_t *length);
/* Enters SACK recovery and resends the first unacknowledged segment. */
void tcp_sack_enter_recovery(struct usock_stack *stack, struct tcp_connection *tcb,
                             uint64_t now);
/* In recovery: starts a new round of hole resends when SACKs show that
 * resends of the last round were lost. */
void tcp_sack_check_lost_retransmits(struct usock_stack *stack, struct tcp_connection *tcb);
/* Remembers the congestion state before a fast retransmission or a
 * timeout, so a spurious one can be undone. */
void tcp_undo_arm(struct tcp_connection *tcb, bool after_timeout, uint64_t now);
/* PRR: the congestion window after an ACK in recovery that delivered
 * delivered bytes (newly acknowledged plus newly SACKed). */
void tcp_sack_on_ack(struct tcp_connection *tcb, uint32_t delivered);

/* tcp_timer.c */
void tcp_timers_init(struct tcp_connection *tcb);
void tcp_timers_cancel(struct usock_stack *stack, struct tcp_connection *tcb);
void tcp_arm_retransmit(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now);
void tcp_rtt_sample(struct tcp_connection *tcb, uint64_t sample_ns);
/* Returns false when the connection was freed instead (over the limit). */
bool tcp_enter_time_wait(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now);
void tcp_schedule_delayed_ack(struct usock_stack *stack, struct tcp_connection *tcb,
                              uint64_t now);
void tcp_keepalive_reset(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now);

/* tcp_socket.c */
void tcp_set_state(struct usock_stack *stack, struct tcp_connection *tcb, enum tcp_state state);
/* Ends the connection: CLOSED, unhashed, error reported.  Returns true
 * when the block was freed (an orphan, or a child nobody accepted). */
bool tcp_done(struct usock_stack *stack, struct tcp_connection *tcb, int error);
/* Finds the connection for a 4-tuple (addresses network order, ports host). */
struct tcp_connection *tcp_lookup_connection(struct usock_stack *stack, uint32_t local_address,
                                             uint16_t local_port, uint32_t remote_address,
                                             uint16_t remote_port);
struct tcp_connection *tcp_lookup_listener(struct usock_stack *stack, uint32_t local_address,
                                           uint16_t local_port);
/* Makes a SYN-RECEIVED child of listener for a SYN; NULL when queues are
 * full or memory is short (counted). */
struct tcp_connection *tcp_create_child(struct usock_stack *stack, struct tcp_connection *listener,
                                        const struct ipv4_packet *packet,
                                        const struct tcp_header *header, uint64_t now);
/* A child reached ESTABLISHED: move it to the accept queue. */
void tcp_child_established(struct usock_stack *stack, struct tcp_connection *tcb);
/* Takes the options of the peer's SYN (or SYN-ACK): window scaling and
 * timestamps when offered on both sides, the MSS, TS.Recent, and the
 * initial congestion window that follows from the MSS. */
void tcp_negotiate_options(struct tcp_connection *tcb, const struct tcp_header *syn,
                           uint64_t now);
/* Sets the sending MSS from the peer's announced one (or the path's),
 * clamped by ours and TCP_MAXSEG, less the options each segment carries;
 * at least 64. */
void tcp_set_send_mss(struct tcp_connection *tcb, uint32_t peer_mss);
/* Fills Linux's struct tcp_info (netinet/tcp.h) for the connection. */
struct tcp_info;
void tcp_fill_info(const struct tcp_connection *tcb, struct tcp_info *info);
/* One line of per-connection details as `ss -ti` prints them. */
void tcp_describe(const struct tcp_connection *tcb, char *out, size_t size);
/* RFC 6528 initial sequence number. */
uint32_t tcp_initial_sequence(struct usock_stack *stack, uint32_t local_address,
                              uint16_t local_port, uint32_t remote_address,
                              uint16_t remote_port, uint64_t now);
static inline struct tcp_connection *tcp_of(struct socket *socket);

static const char *const tcp_state_names[TCPS_STATE_COUNT] = {
    [TCPS_CLOSED] = "CLOSE",       [TCPS_LISTEN] = "LISTEN",
    [TCPS_SYN_SENT] = "SYN-SENT",  [TCPS_SYN_RECEIVED] = "SYN-RECV",
    [TCPS_ESTABLISHED] = "ESTAB",  [TCPS_CLOSE_WAIT] = "CLOSE-WAIT",
    [TCPS_FIN_WAIT_1] = "FIN-WAIT-1", [TCPS_CLOSING] = "CLOSING",
    [TCPS_LAST_ACK] = "LAST-ACK",  [TCPS_FIN_WAIT_2] = "FIN-WAIT-2",
    [TCPS_TIME_WAIT] = "TIME-WAIT",
};
_Static_assert(sizeof(tcp_state_names) / sizeof(tcp_state_names[0]) == TCPS_STATE_COUNT,
               "a name for every TCP state");

#include "socket/socket.h"

static inline struct tcp_connection *tcp_of(struct socket *socket)
{
    return socket->protocol_state;
}

#endif
