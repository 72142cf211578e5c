/*
 * tcp_timer.c - TCP's timers and round-trip estimate.
 *
 * Each connection has three timers in the stack's heap:
 *  - retransmit: the RTO (RFC 6298) for data and FIN, SYN and SYN-ACK
 *    retries, and, while the peer's window is zero, the persist timer
 *    (zero-window probes, which never give up while answered); on SACK
 *    connections first a tail loss probe (RFC 8985 7) at 2 SRTT;
 *  - delayed ACK: at most TCP_DELAYED_ACK_NS after an unacknowledged
 *    segment (RFC 9293 3.8.6.3 allows up to 500 ms; Linux uses 40 ms);
 *  - keepalive: keepalive probes (RFC 9293 3.8.4), and the end of
 *    TIME_WAIT and of an orphaned FIN_WAIT_2.
 */
#include <errno.h>

#include "stack.h"
#include "tcp/tcp.h"
#include "tcp/tcp_sequence.h"

static void tcp_retransmit_fire(struct usock_stack *stack, struct timer *timer, uint64_t now);
static void tcp_delayed_ack_fire(struct usock_stack *stack, struct timer *timer, uint64_t now);
static void tcp_keepalive_fire(struct usock_stack *stack, struct timer *timer, uint64_t now);

void tcp_timers_init(struct tcp_connection *tcb)
{
    timer_init(&tcb->retransmit_timer, tcp_retransmit_fire);
    timer_init(&tcb->delayed_ack_timer, tcp_delayed_ack_fire);
    timer_init(&tcb->keepalive_timer, tcp_keepalive_fire);
}

void tcp_timers_cancel(struct usock_stack *stack, struct tcp_connection *tcb)
{
    timer_cancel(&stack->timers, &tcb->retransmit_timer);
    timer_cancel(&stack->timers, &tcb->delayed_ack_timer);
    timer_cancel(&stack->timers, &tcb->keepalive_timer);
    tcb->delayed_ack_pending = false;
}

/* RFC 8985 7.2: whether the next expiry should be a tail loss probe: data
 * in flight on a SACK connection, an RTT known, not in recovery, no
 * timeout or probe since the last new acknowledgment. */
static bool tcp_probe_eligible(const struct tcp_connection *tcb)
{
    return (tcb->state == TCPS_ESTABLISHED || tcb->state == TCPS_CLOSE_WAIT) &&
           tcb->sack_permitted && !tcb->in_recovery && tcb->retransmits == 0 &&
           !tcb->probe_outstanding && tcb->srtt_ns > 0 && tcb->snd_wnd > 0 &&
           tcb->snd_max != tcb->snd_una;
}

void tcp_arm_retransmit(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now)
{
    tcb->probe_armed = false;
    if (tcp_probe_eligible(tcb)) {
        /* PTO = 2 SRTT, plus the peer's delayed ACK when one segment is
         * out; never past the RTO. */
        uint64_t probe = 2 * tcb->srtt_ns;
        if (tcb->snd_max - tcb->snd_una <= tcb->mss)
            probe += TCP_PROBE_DELAYED_ACK_NS;
        if (probe < TCP_PROBE_MIN_NS)
            probe = TCP_PROBE_MIN_NS;
        if (probe < tcb->rto_ns) {
            tcb->probe_armed = true;
            stack_timer_arm(stack, &tcb->retransmit_timer, now + probe);
            return;
        }
    }
    uint64_t timeout = tcb->rto_ns;
    for (unsigned i = 0; i < tcb->retransmits && timeout < TCP_RTO_MAX_NS; i++)
        timeout *= 2;
    if (timeout > TCP_RTO_MAX_NS)
        timeout = TCP_RTO_MAX_NS;
    if (tcb->user_timeout_ns && tcb->retransmits > 0) {
        /* Wake when TCP_USER_TIMEOUT runs out, not a backoff later
         * (Linux's tcp_clamp_rto_to_user_timeout). */
        uint64_t deadline = tcb->first_retransmit_time + tcb->user_timeout_ns;
        uint64_t left = deadline > now ? deadline - now : 1;
        if (left < timeout)
            timeout = left;
    }
    stack_timer_arm(stack, &tcb->retransmit_timer, now + timeout);
}

void tcp_rtt_sample(struct tcp_connection *tcb, uint64_t sample_ns)
{
    /* RFC 6298 2.2-2.3, with alpha 1/8 and beta 1/4; clock granularity is
     * below a microsecond, so the G term vanishes. */
    if (sample_ns == 0)
        sample_ns = 1; /* srtt 0 means "no sample yet" */
    if (tcb->srtt_ns == 0) {
        tcb->srtt_ns = sample_ns;
        tcb->rttvar_ns = sample_ns / 2;
    } else {
        uint64_t difference = tcb->srtt_ns > sample_ns ? tcb->srtt_ns - sample_ns
                                                       : sample_ns - tcb->srtt_ns;
        tcb->rttvar_ns = (3 * tcb->rttvar_ns + difference) / 4;
        tcb->srtt_ns = (7 * tcb->srtt_ns + sample_ns) / 8;
    }
    uint64_t rto = tcb->srtt_ns + 4 * tcb->rttvar_ns;
    /* RFC 6298 2.4 says 1 s minimum; Linux uses 200 ms, and so do we. */
    if (rto < TCP_RTO_MIN_NS)
        rto = TCP_RTO_MIN_NS;
    if (rto > TCP_RTO_MAX_NS)
        rto = TCP_RTO_MAX_NS;
    tcb->rto_ns = rto;
}

static uint32_t tcp_flight_size(const struct tcp_connection *tcb)
{
    return tcb->snd_max - tcb->snd_una;
}

static void tcp_retransmit_fire(struct usock_stack *stack, struct timer *timer, uint64_t now)
{
    struct tcp_connection *tcb = container_of(timer, struct tcp_connection, retransmit_timer);
    switch (tcb->state) {
    case TCPS_SYN_SENT:
    case TCPS_SYN_RECEIVED: {
        unsigned limit = tcb->state == TCPS_SYN_SENT ? TCP_SYN_RETRIES : TCP_SYNACK_RETRIES;
        if (tcb->retransmits >= limit) {
            COUNT(stack, TcpAbortOnTimeout);
            tcp_done(stack, tcb, tcb->soft_error ? tcb->soft_error : ETIMEDOUT);
            return;
        }
        tcb->retransmits++;
        tcb->rtt_measuring = false;
        COUNT(stack, TcpSynRetrans);
        tcb->snd_nxt = tcb->iss;
        tcp_output(stack, tcb, now);
        tcp_arm_retransmit(stack, tcb, now);
        return;
    }
    case TCPS_ESTABLISHED:
    case TCPS_CLOSE_WAIT:
    case TCPS_FIN_WAIT_1:
    case TCPS_CLOSING:
    case TCPS_LAST_ACK:
        break;
    default:
        return;
    }
    if (tcb->probe_armed) {
        /* RFC 8985 7.3: a tail loss probe - new data if the peer's window
         * takes it, else the last segment again - so a loss at the tail
         * draws SACKs and fast recovery instead of waiting for the RTO. */
        tcb->probe_armed = false;
        tcb->probe_outstanding = true;
        COUNT(stack, TcpLossProbes);
        if (!tcp_send_probe_new_data(stack, tcb, now)) {
            uint32_t flight = tcp_flight_size(tcb);
            uint32_t length = flight < tcb->mss ? flight : tcb->mss;
            tcp_retransmit_at(stack, tcb, tcb->snd_max - length, length, now);
        }
        tcp_arm_retransmit(stack, tcb, now);
        return;
    }
    if (tcb->snd_wnd == 0 && tcp_flight_size(tcb) > 0 &&
        now - tcb->last_received > TCP_RTO_MAX_NS) {
        /* A closed window and a silent peer: give up (Linux does so after
         * TCP_RTO_MAX without a word from the peer). */
        COUNT(stack, TcpAbortOnTimeout);
        tcp_done(stack, tcb, tcb->soft_error ? tcb->soft_error : ETIMEDOUT);
        return;
    }
    if (tcp_flight_size(tcb) == 0 || tcb->snd_wnd == 0) {
        /* Persist (RFC 9293 3.8.6.1), which is also the override timer of
         * sender SWS avoidance (RFC 1122 4.2.3.4): data waits with nothing
         * in flight.  A zero window gets a one-byte probe; a small one gets
         * what fits.  A peer that answers keeps us probing for ever. */
        uint32_t base = tcp_send_base(tcb);
        bool data_waiting = seq_lt(tcb->snd_una, base + (uint32_t)tcb->send_buffer.length) ||
                            (tcb->fin_queued && tcb->snd_una == base + tcb->send_buffer.length);
        if (!data_waiting)
            return;
        COUNT(stack, TcpPersistProbes);
        if (tcb->retransmits < 16)
            tcb->retransmits++;
        uint32_t limit = tcb->snd_wnd == 0 ? 1 : tcb->snd_wnd < tcb->mss ? tcb->snd_wnd : tcb->mss;
        tcp_retransmit_first(stack, tcb, limit, now);
        tcp_arm_retransmit(stack, tcb, now);
        return;
    }
    if (tcb->retransmits == 0)
        tcb->first_retransmit_time = now;
    bool user_timeout_over = tcb->user_timeout_ns && tcb->retransmits > 0 &&
                             now - tcb->first_retransmit_time >= tcb->user_timeout_ns;
    if (tcb->retransmits >= TCP_RETRIES || user_timeout_over) {
        COUNT(stack, TcpAbortOnTimeout);
        tcp_send_reset(stack, tcb, now);
        tcp_done(stack, tcb, tcb->soft_error ? tcb->soft_error : ETIMEDOUT);
        return;
    }
    /* RFC 5681 3.1 eq. 4 and RFC 6298 5.5-5.6: collapse to one segment,
     * back off, go back to the first unacknowledged byte. */
    COUNT(stack, TcpTimeouts);
    tcp_undo_arm(tcb, true, now);
    tcp_congestion_on_loss(tcb, now);
    tcb->cwnd = tcb->mss;
    tcb->in_recovery = false;
    tcb->duplicate_acks = 0;
    tcb->recover = tcb->snd_max;
    tcb->retransmits++;
    tcb->total_retransmits++;
    tcb->rtt_measuring = false;
    tcb->snd_nxt = tcb->snd_una;
    /* The receiver may have reneged on what it SACKed (RFC 2018 8): start
     * over from snd_una with a clean scoreboard. */
    tcp_sack_forget(tcb);
    tcb->high_rxt = tcb->snd_una;
    tcp_output(stack, tcb, now);
    tcp_arm_retransmit(stack, tcb, now);
}

void tcp_schedule_delayed_ack(struct usock_stack *stack, struct tcp_connection *tcb,
                              uint64_t now)
{
    if (tcb->delayed_ack_pending)
        return;
    tcb->delayed_ack_pending = true;
    stack_timer_arm(stack, &tcb->delayed_ack_timer, now + TCP_DELAYED_ACK_NS);
}

static void tcp_delayed_ack_fire(struct usock_stack *stack, struct timer *timer, uint64_t now)
{
    struct tcp_connection *tcb = container_of(timer, struct tcp_connection, delayed_ack_timer);
    if (!tcb->delayed_ack_pending)
        return;
    tcb->delayed_ack_pending = false;
    COUNT(stack, TcpDelayedAcks);
    tcp_send_ack(stack, tcb, now);
}

bool tcp_enter_time_wait(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now)
{
    timer_cancel(&stack->timers, &tcb->retransmit_timer);
    if (stack->tcp.time_wait_count >= TCP_TIME_WAIT_LIMIT) {
        COUNT(stack, TcpTimeWaitOverflows);
        return !tcp_done(stack, tcb, 0);
    }
    tcp_set_state(stack, tcb, TCPS_TIME_WAIT);
    stack_timer_arm(stack, &tcb->keepalive_timer, now + stack->tcp_time_wait_ns);
    return true;
}

void tcp_keepalive_reset(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now)
{
    tcb->keepalive_probes_sent = 0;
    if (tcb->keepalive && tcb->state >= TCPS_ESTABLISHED && tcb->state != TCPS_TIME_WAIT)
        stack_timer_arm(stack, &tcb->keepalive_timer, now + tcb->keepalive_idle_ns);
    else if (tcb->state != TCPS_TIME_WAIT && tcb->state != TCPS_FIN_WAIT_2)
        timer_cancel(&stack->timers, &tcb->keepalive_timer);
}

static void tcp_keepalive_fire(struct usock_stack *stack, struct timer *timer, uint64_t now)
{
    struct tcp_connection *tcb = container_of(timer, struct tcp_connection, keepalive_timer);
    if (tcb->state == TCPS_TIME_WAIT) {
        tcp_done(stack, tcb, 0);
        return;
    }
    if (tcb->state == TCPS_FIN_WAIT_2 && tcb->orphaned) {
        tcp_send_reset(stack, tcb, now);
        tcp_done(stack, tcb, 0);
        return;
    }
    if (!tcb->keepalive || tcb->state < TCPS_ESTABLISHED)
        return;
    uint64_t idle = now - tcb->last_received;
    if (tcb->keepalive_probes_sent == 0 && idle < tcb->keepalive_idle_ns) {
        stack_timer_arm(stack, &tcb->keepalive_timer,
                        tcb->last_received + tcb->keepalive_idle_ns);
        return;
    }
    /* TCP_USER_TIMEOUT, when set, replaces the probe count (as Linux):
     * give up once a probe went and the peer was silent that long. */
    bool given_up = tcb->user_timeout_ns
                        ? tcb->keepalive_probes_sent > 0 && idle >= tcb->user_timeout_ns
                        : tcb->keepalive_probes_sent >= tcb->keepalive_count;
    if (given_up) {
        COUNT(stack, TcpAbortOnTimeout);
        tcp_send_reset(stack, tcb, now);
        tcp_done(stack, tcb, ETIMEDOUT);
        return;
    }
    COUNT(stack, TcpKeepaliveProbes);
    tcb->keepalive_probes_sent++;
    tcp_send_keepalive_probe(stack, tcb, now);
    stack_timer_arm(stack, &tcb->keepalive_timer, now + tcb->keepalive_interval_ns);
}
