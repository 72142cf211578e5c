/*
 * tcp_input.c - segment arrival, RFC 9293 3.10.7, in stages:
 *
 *   validate (wire/tcp.c)  ->  find the connection (4-tuple, then a
 *   listener)  ->  per-state handling: CLOSED (reset), LISTEN (make a
 *   child), SYN-SENT, and the synchronized states, which go through the
 *   RFC's steps in order: sequence acceptability and trimming, RST (exact
 *   match resets, in-window draws a challenge ACK, RFC 5961 3.2), SYN
 *   (challenge ACK, RFC 5961 4.2), ACK (send side, congestion control,
 *   state changes of our FIN), text (in order to the receive ring, beyond a
 *   hole to the bounded out-of-order list), FIN.
 *
 * Loss recovery: with SACK (tcp_sack.c), RFC 6675 paced by PRR; without,
 * NewReno (RFC 6582): fast retransmit on the third duplicate ACK and a
 * retransmission on each partial ACK.  How the window grows and shrinks is
 * the connection's congestion control algorithm (tcp_congestion.c).
 * Spurious retransmissions are undone by their timestamps (Eifel).
 *
 * Everything here works on the segment borrowed from the link; payload is
 * copied once, into the receive ring or an out-of-order entry.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stack.h"
#include "tcp/tcp.h"
#include "tcp/tcp_sequence.h"
#include "wire/icmp.h"

/* A received segment after validation, as the handlers see it. */
struct tcp_segment {
    struct tcp_header header;
    const uint8_t *data;
    uint32_t data_length;
    uint32_t sequence;     /* first sequence number (may move when trimmed) */
    uint32_t length;       /* SEG.LEN: data plus SYN and FIN */
    uint8_t flags;
};

static bool has_flag(const struct tcp_segment *segment, uint8_t flag)
{
    return (segment->flags & flag) != 0;
}

/* ---- receiving data ---- */

/* Appends in-order data to the receive ring; returns bytes taken. */
static uint32_t tcp_take_in_order(struct tcp_connection *tcb, const uint8_t *data,
                                  uint32_t length)
{
    uint32_t taken = (uint32_t)ring_write(&tcb->receive_buffer, data, length);
    tcb->rcv_nxt += taken;
    tcb->bytes_received += taken;
    return taken;
}

/* Moves out-of-order segments that now continue the stream into the ring.
 * Returns true when a FIN was reached. */
bool tcp_drain_out_of_order(struct usock_stack *stack, struct tcp_connection *tcb)
{
    bool fin = false;
    while (tcb->out_of_order && seq_leq(tcb->out_of_order->sequence, tcb->rcv_nxt)) {
        struct tcp_out_of_order *entry = tcb->out_of_order;
        uint32_t end = entry->sequence + entry->length;
        if (seq_gt(end, tcb->rcv_nxt)) {
            uint32_t skip = tcb->rcv_nxt - entry->sequence;
            uint32_t wanted = entry->length - skip;
            uint32_t taken = tcp_take_in_order(tcb, entry->data + skip, wanted);
            if (taken < wanted) {
                /* Ring full: keep the rest, trimmed to start at RCV.NXT so
                 * no SACK block straddles the ACK; a read drains it. */
                uint32_t used = skip + taken;
                memmove(entry->data, entry->data + used, entry->length - used);
                entry->sequence += used;
                entry->length -= used;
                tcb->out_of_order_bytes -= used;
                stack->tcp.memory_bytes -= used;
                break;
            }
        }
        if (entry->fin && tcb->rcv_nxt == end)
            fin = true;
        tcb->out_of_order = entry->next;
        tcb->out_of_order_count--;
        tcb->out_of_order_bytes -= entry->length;
        stack->tcp.memory_bytes -= sizeof(*entry) + entry->length;
        free(entry);
        if (fin)
            break;
    }
    return fin;
}

/* Keeps a segment that arrived beyond a hole, in sequence order, trimmed
 * against its neighbours so no byte is held twice.  Bounded by entry count
 * and by the receive window: past either, it is dropped and counted. */
static void tcp_queue_out_of_order(struct usock_stack *stack, struct tcp_connection *tcb,
                                   uint32_t sequence, const uint8_t *data, uint32_t length,
                                   bool fin)
{
    struct tcp_out_of_order **link = &tcb->out_of_order;
    while (*link && seq_lt((*link)->sequence, sequence))
        link = &(*link)->next;
    /* Trim against the previous entry's end. */
    if (link != &tcb->out_of_order) {
        struct tcp_out_of_order *previous = tcb->out_of_order;
        while (previous->next != *link)
            previous = previous->next;
        uint32_t previous_end = previous->sequence + previous->length;
        if (seq_geq(previous_end, sequence + length)) {
            tcp_sack_note_duplicate(tcb, sequence, sequence + length);
            tcp_sack_note_arrival(tcb, sequence);
            return; /* entirely held already */
        }
        if (seq_gt(previous_end, sequence)) {
            uint32_t overlap = previous_end - sequence;
            sequence += overlap;
            data += overlap;
            length -= overlap;
        }
    }
    /* Trim against the next entry's start. */
    if (*link && seq_lt((*link)->sequence, sequence + length)) {
        if ((*link)->sequence == sequence && seq_geq(sequence + (*link)->length, sequence + length)) {
            tcp_sack_note_duplicate(tcb, sequence, sequence + length);
            tcp_sack_note_arrival(tcb, sequence);
            return;
        }
        length = (*link)->sequence - sequence;
        fin = false;
        if (length == 0)
            return;
    }
    if (tcb->out_of_order_count >= TCP_OUT_OF_ORDER_LIMIT ||
        tcb->out_of_order_bytes + length + tcb->receive_buffer.length >
            tcb->receive_buffer.capacity) {
        COUNT(stack, TcpOutOfOrderDrops);
        return;
    }
    if (!tcp_memory_allows(&stack->tcp, sizeof(struct tcp_out_of_order) + length)) {
        COUNT(stack, TcpMemoryDrops);
        return;
    }
    struct tcp_out_of_order *entry = malloc(sizeof(*entry) + length);
    if (!entry) {
        COUNT(stack, TcpOutOfOrderDrops);
        return;
    }
    stack->tcp.memory_bytes += sizeof(*entry) + length;
    entry->sequence = sequence;
    entry->length = length;
    entry->fin = fin;
    memcpy(entry->data, data, length);
    entry->next = *link;
    *link = entry;
    tcb->out_of_order_count++;
    tcb->out_of_order_bytes += length;
    tcp_sack_note_arrival(tcb, sequence);
    COUNT(stack, TcpOutOfOrderQueued);
}

/* ---- the ACK ---- */

/* RFC 5961 7: challenge ACKs are rate-limited, per connection (one per
 * 500 ms, Linux's tcp_invalid_ratelimit, so two stacks cannot ping-pong)
 * and for the whole stack (1000 a second), skipped ones counted. */
static void tcp_send_challenge_ack(struct usock_stack *stack, struct tcp_connection *tcb,
                                   uint64_t now)
{
    if (tcb->last_challenge_time && now - tcb->last_challenge_time < TCP_CHALLENGE_INTERVAL_NS) {
        COUNT(stack, TcpChallengeAcksSkipped);
        return;
    }
    uint64_t second = now / 1000000000ULL;
    if (stack->tcp.challenge_second != second) {
        stack->tcp.challenge_second = second;
        stack->tcp.challenge_count = 0;
    }
    if (stack->tcp.challenge_count >= TCP_CHALLENGE_LIMIT_PER_SECOND) {
        COUNT(stack, TcpChallengeAcksSkipped);
        return;
    }
    stack->tcp.challenge_count++;
    tcb->last_challenge_time = now ? now : 1;
    COUNT(stack, TcpChallengeAcks);
    tcp_send_ack(stack, tcb, now);
}


/* Whether the ACK owed to an unacceptable or PAWS-rejected segment should
 * be skipped (Linux's tcp_oow_rate_limited): for segments without data,
 * at most one such ACK per 500 ms per connection, so two ends that each
 * find the other's ACKs out of window cannot answer each other for ever
 * (an ACK storm).  Skipped ones are counted under counter. */
static bool tcp_out_of_window_ack_limited(struct usock_stack *stack, struct tcp_connection *tcb,
                                          const struct tcp_segment *segment,
                                          enum counter_id counter, uint64_t now)
{
    if (segment->length > 0 && !has_flag(segment, TCP_FLAG_SYN))
        return false; /* data (or a FIN) is not likely part of an ACK loop */
    if (tcb->last_out_of_window_ack_time &&
        now - tcb->last_out_of_window_ack_time < TCP_CHALLENGE_INTERVAL_NS) {
        counter_add(stack, counter, 1);
        return true;
    }
    tcb->last_out_of_window_ack_time = now ? now : 1;
    return false;
}

/* The peer's window in bytes: scaled, except on a SYN (RFC 7323 2.2). */
static uint32_t tcp_segment_window(const struct tcp_connection *tcb,
                                   const struct tcp_segment *segment)
{
    if (has_flag(segment, TCP_FLAG_SYN))
        return segment->header.window;
    return (uint32_t)segment->header.window << tcb->send_window_shift;
}

/* Takes an RTT sample for an ACK that moved snd_una from old_una: from
 * the timed segment when it is covered (Karn's rule kept it clean of
 * retransmissions), else, when the ACK covers retransmitted bytes, from
 * the echoed timestamp (RFC 7323 4), which has no such ambiguity. */
static void tcp_sample_rtt(struct tcp_connection *tcb, const struct tcp_segment *segment,
                           uint32_t old_una, uint64_t now)
{
    uint32_t ack = segment->header.acknowledgment;
    if (tcb->rtt_measuring && seq_geq(ack, tcb->rtt_sequence)) {
        tcp_rtt_sample(tcb, now - tcb->rtt_started);
        tcb->rtt_measuring = false;
        return;
    }
    const struct tcp_options *options = &segment->header.options;
    /* The echo must be of our latest retransmission or later: an older
     * one means the original got there and its ACK waited (lost, delayed,
     * or held by the peer), which would measure the wait, not the path. */
    if (tcb->timestamps && options->has_timestamps && options->timestamp_echo != 0 &&
        seq_lt(old_una, tcb->retransmitted_high) &&
        seq_geq(options->timestamp_echo, tcb->retransmit_timestamp)) {
        uint32_t elapsed_ms = tcp_timestamp_now(tcb, now) - options->timestamp_echo;
        if (elapsed_ms < 0x80000000u)
            tcp_rtt_sample(tcb, (uint64_t)(elapsed_ms ? elapsed_ms : 1) * 1000000);
    }
}

static uint32_t tcp_flight_size(const struct tcp_connection *tcb)
{
    return tcb->snd_max - tcb->snd_una;
}

/* RFC 5681 3.2 and RFC 6582 3.2 step 1-2: the third duplicate ACK. */
static void tcp_enter_fast_recovery(struct usock_stack *stack, struct tcp_connection *tcb,
                                    uint64_t now)
{
    tcp_undo_arm(tcb, false, now);
    tcp_congestion_on_loss(tcb, now);
    tcb->recover = tcb->snd_max;
    tcb->in_recovery = true;
    tcb->cwnd = tcb->ssthresh + 3u * tcb->mss;
    tcb->rtt_measuring = false;
    tcb->total_retransmits++;
    COUNT(stack, TcpFastRetrans);
    COUNT(stack, TcpRecoveries);
    tcp_retransmit_first(stack, tcb, tcb->mss, now);
}

static void tcp_congestion_on_ack(struct usock_stack *stack, struct tcp_connection *tcb,
                                  uint32_t acknowledged, uint32_t ack, uint64_t now)
{
    if (tcb->in_recovery) {
        if (seq_geq(ack, tcb->recover)) {
            /* Full ACK: leave recovery (RFC 6582 3.2 step 3, option 1). */
            uint32_t flight = tcp_flight_size(tcb);
            uint32_t deflated = flight + tcb->mss;
            tcb->cwnd = tcb->ssthresh < deflated ? tcb->ssthresh : deflated;
            tcb->in_recovery = false;
        } else {
            /* Partial ACK: retransmit the next hole, deflate by what was
             * acknowledged, add back one segment. */
            tcp_retransmit_first(stack, tcb, tcb->mss, now);
            tcb->cwnd = tcb->cwnd > acknowledged ? tcb->cwnd - acknowledged : tcb->mss;
            if (acknowledged >= tcb->mss)
                tcb->cwnd += tcb->mss;
            tcp_arm_retransmit(stack, tcb, now);
        }
        return;
    }
    tcp_congestion_grow(tcb, acknowledged, now);
}

/* Eifel detection (RFC 3522): the first ACK to cover the retransmitted
 * segment echoes a timestamp older than the retransmission, so it was the
 * original that arrived: the retransmission was spurious (reordering or
 * delay, not loss).  The response (RFC 4015, Linux's undo): the congestion
 * state from before, no go-back-N after a timeout.  (DupThresh stays 3:
 * raising it with the reordering seen left real losses to the RTO on
 * paths that reorder heavily, without RACK's timer to catch them.) */
static void tcp_check_spurious(struct usock_stack *stack, struct tcp_connection *tcb,
                               const struct tcp_segment *segment)
{
    if (!tcb->undo_armed)
        return;
    tcb->undo_armed = false;
    const struct tcp_options *options = &segment->header.options;
    if (!options->has_timestamps || options->timestamp_echo == 0 ||
        !seq_lt(options->timestamp_echo, tcb->undo_timestamp))
        return;
    if (tcb->cwnd < tcb->prior_cwnd)
        tcb->cwnd = tcb->prior_cwnd;
    if (tcb->ssthresh < tcb->prior_ssthresh)
        tcb->ssthresh = tcb->prior_ssthresh;
    tcb->cubic_w_max = tcb->prior_cubic_w_max;
    tcb->cubic_epoch_start = 0;
    tcb->in_recovery = false;
    tcb->recover = tcb->snd_una;
    tcb->high_rxt = tcb->snd_una;
    if (tcb->undo_after_timeout) {
        COUNT(stack, TcpSpuriousRtoUndo);
        tcb->retransmits = 0;
        if (seq_lt(tcb->snd_nxt, tcb->snd_max))
            tcb->snd_nxt = tcb->snd_max; /* what was sent is not lost */
        return;
    }
    COUNT(stack, TcpSpuriousRecoveryUndo);
}

/* What a processing step left behind. */
enum tcp_step {
    TCP_STEP_CONTINUE, /* go on with the segment */
    TCP_STEP_DROP,     /* stop; the connection lives */
    TCP_STEP_GONE,     /* stop; the connection was freed */
};

/* Processes SEG.ACK in a synchronized state. */
static enum tcp_step tcp_process_ack(struct usock_stack *stack, struct tcp_connection *tcb,
                            const struct tcp_segment *segment, uint64_t now)
{
    uint32_t ack = segment->header.acknowledgment;
    uint32_t base = tcp_send_base(tcb);
    uint32_t data_end = base + (uint32_t)tcb->send_buffer.length; /* where a FIN sits */
    if (tcb->state == TCPS_SYN_RECEIVED) {
        /* The caller checked snd_una < ack <= snd_max.  RFC 6298 5.7: after a
         * retransmitted SYN-ACK and no RTT sample, data starts at 3 s. */
        if (tcb->retransmits > 0 && tcb->srtt_ns == 0)
            tcb->rto_ns = 3 * TCP_RTO_INITIAL_NS;
        tcb->retransmits = 0;
        tcp_set_state(stack, tcb, TCPS_ESTABLISHED);
        tcb->snd_wnd = tcp_segment_window(tcb, segment);
        tcb->max_snd_wnd = tcb->snd_wnd;
        tcb->snd_wl1 = segment->sequence;
        tcb->snd_wl2 = ack;
        tcp_keepalive_reset(stack, tcb, now);
        if (tcb->listener)
            tcp_child_established(stack, tcb);
    }
    if (seq_gt(ack, tcb->snd_max)) {
        /* It acknowledges something not yet sent: ACK and drop. */
        COUNT(stack, TcpInAckTooNew);
        tcb->ack_now = true;
        return TCP_STEP_DROP;
    }
    if (seq_lt(ack, tcb->snd_una - tcb->max_snd_wnd) && tcb->state != TCPS_SYN_RECEIVED) {
        /* RFC 5961 5.2: older than any window the peer could have seen: a
         * blind injection, not an old duplicate.  Challenge and drop. */
        COUNT(stack, TcpInAckTooOld);
        tcp_send_challenge_ack(stack, tcb, now);
        return TCP_STEP_DROP;
    }
    uint32_t sacked_before = tcp_sack_sacked_bytes(tcb);
    uint32_t newly_sacked = tcp_sack_update(stack, tcb, &segment->header.options,
                                            seq_gt(ack, tcb->snd_una) ? ack : tcb->snd_una);
    bool sack_recovery = tcb->sack_permitted;
    if (seq_gt(ack, tcb->snd_una)) {
        uint32_t acknowledged = ack - tcb->snd_una;
        tcb->syn_acknowledged = true; /* anything new acknowledges the SYN first */
        if (seq_gt(ack, base)) {
            uint32_t data = ack - base;
            if (data > tcb->send_buffer.length)
                data = (uint32_t)tcb->send_buffer.length; /* the FIN's number is no byte */
            ring_discard(&tcb->send_buffer, data);
            tcb->bytes_acked += data;
        }
        tcp_sample_rtt(tcb, segment, tcb->snd_una, now);
        tcb->probe_outstanding = false;
        tcb->snd_una = ack;
        if (tcb->send_urgent && seq_geq(ack, tcb->snd_up))
            tcb->send_urgent = false; /* urgent mode ends */
        if (seq_lt(tcb->snd_nxt, tcb->snd_una))
            tcb->snd_nxt = tcb->snd_una;
        tcb->retransmits = 0;
        tcb->duplicate_acks = 0;
        tcp_check_spurious(stack, tcb, segment);
        if (sack_recovery && tcb->in_recovery) {
            if (seq_geq(ack, tcb->recover)) {
                tcb->in_recovery = false; /* RFC 6937: cwnd = ssthresh at the end */
                tcb->cwnd = tcb->ssthresh;
            } else {
                /* Bytes delivered: cumulatively acknowledged plus the
                 * change in SACKed bytes (which may fall as ranges fold
                 * into the cumulative ACK). */
                uint32_t sacked_now = tcp_sack_sacked_bytes(tcb);
                uint32_t delivered = acknowledged + sacked_now - sacked_before;
                if (seq_lt(tcb->high_rxt, ack))
                    tcb->high_rxt = ack;
                tcp_sack_check_lost_retransmits(stack, tcb);
                tcp_sack_on_ack(tcb, delivered);
            }
        } else if (sack_recovery && tcp_sack_first_lost(tcb) && seq_gt(ack, tcb->recover)) {
            /* A partial view even after the ACK: the scoreboard says the
             * new first hole is lost already. */
            tcp_congestion_on_ack(stack, tcb, acknowledged, ack, now);
            tcp_sack_enter_recovery(stack, tcb, now);
        } else {
            tcp_congestion_on_ack(stack, tcb, acknowledged, ack, now);
        }
        if (tcb->cwnd > tcb->send_buffer.capacity / 2)
            tcp_autotune_send(stack, tcb);
        if (tcb->snd_una == tcb->snd_max) {
            timer_cancel(&stack->timers, &tcb->retransmit_timer);
            tcp_sack_forget(tcb); /* nothing left to track: give the memory back */
        }
        else if (!tcb->in_recovery || sack_recovery)
            tcp_arm_retransmit(stack, tcb, now); /* RFC 6298 5.3 (NewReno re-arms its own) */
        socket_wake(stack, tcb->socket);
    } else if (sack_recovery && ack == tcb->snd_una && tcb->snd_max != tcb->snd_una &&
               segment->data_length == 0 && newly_sacked > 0) {
        /* RFC 6675 2: with SACK, a duplicate ACK is one that SACKs new
         * data. */
        tcb->duplicate_acks++;
        if (tcb->in_recovery) {
            tcp_sack_check_lost_retransmits(stack, tcb);
            tcp_sack_on_ack(tcb, newly_sacked);
        }
        else if ((tcb->duplicate_acks >= tcb->reordering || tcp_sack_first_lost(tcb)) &&
                 seq_gt(ack, tcb->recover))
            tcp_sack_enter_recovery(stack, tcb, now);
    } else if (!sack_recovery && ack == tcb->snd_una && segment->data_length == 0 &&
               !has_flag(segment, TCP_FLAG_SYN | TCP_FLAG_FIN) &&
               tcp_segment_window(tcb, segment) == tcb->snd_wnd && tcb->snd_wnd != 0 &&
               tcb->snd_max != tcb->snd_una) {
        /* RFC 5681 2: a duplicate ACK. */
        tcb->duplicate_acks++;
        if (tcb->in_recovery) {
            tcb->cwnd += tcb->mss;
        } else if (tcb->duplicate_acks == 3 && seq_gt(ack, tcb->recover)) {
            tcp_enter_fast_recovery(stack, tcb, now);
        }
    }
    /* RFC 9293 3.10.7.4: update the send window from newer segments. */
    if (seq_lt(tcb->snd_wl1, segment->sequence) ||
        (tcb->snd_wl1 == segment->sequence && seq_leq(tcb->snd_wl2, ack))) {
        bool was_closed = tcb->snd_wnd == 0;
        tcb->snd_wnd = tcp_segment_window(tcb, segment);
        tcb->snd_wl1 = segment->sequence;
        tcb->snd_wl2 = ack;
        if (tcb->snd_wnd > tcb->max_snd_wnd)
            tcb->max_snd_wnd = tcb->snd_wnd;
        if (was_closed && tcb->snd_wnd > 0) {
            /* The window opened: stop probing and resume at once from the
             * first unacknowledged byte (a refused probe byte included). */
            tcb->snd_nxt = tcb->snd_una;
            tcb->retransmits = 0;
            timer_cancel(&stack->timers, &tcb->retransmit_timer);
            if (tcb->snd_una != tcb->snd_max)
                tcp_arm_retransmit(stack, tcb, now);
        }
    }

    /* Our FIN, if sent, is acknowledged once snd_una passes it. */
    bool fin_acknowledged = tcb->fin_queued && seq_gt(tcb->snd_una, data_end);
    switch (tcb->state) {
    case TCPS_FIN_WAIT_1:
        if (fin_acknowledged) {
            tcp_set_state(stack, tcb, TCPS_FIN_WAIT_2);
            if (tcb->orphaned)
                stack_timer_arm(stack, &tcb->keepalive_timer, now + TCP_FIN_TIMEOUT_NS);
        }
        break;
    case TCPS_CLOSING:
        if (fin_acknowledged)
            return tcp_enter_time_wait(stack, tcb, now) ? TCP_STEP_DROP : TCP_STEP_GONE;
        break;
    case TCPS_LAST_ACK:
        if (fin_acknowledged)
            return tcp_done(stack, tcb, 0) ? TCP_STEP_GONE : TCP_STEP_DROP;
        break;
    default:
        break;
    }
    return TCP_STEP_CONTINUE;
}

/* ---- states ---- */

static void tcp_input_synchronized(struct usock_stack *stack, struct tcp_connection *tcb,
                                   const struct ipv4_packet *packet,
                                   struct tcp_segment *segment, uint64_t now);

static void tcp_input_listen(struct usock_stack *stack, struct tcp_connection *listener,
                             const struct ipv4_packet *packet, struct tcp_segment *segment,
                             uint64_t now)
{
    if (has_flag(segment, TCP_FLAG_RST))
        return;
    if (has_flag(segment, TCP_FLAG_ACK)) {
        /* The answer to a SYN cookie?  Then the connection starts here. */
        uint16_t peer_mss;
        if (!has_flag(segment, TCP_FLAG_SYN) && stack->tcp.cookies_sent) {
            if (tcp_syncookie_check(stack, packet->header.destination,
                                    segment->header.destination_port, packet->header.source,
                                    segment->header.source_port, segment->sequence - 1,
                                    segment->header.acknowledgment - 1, now, &peer_mss)) {
                COUNT(stack, TcpSynCookiesRecv);
                struct tcp_connection *child = tcp_create_child_from_cookie(
                    stack, listener, packet, &segment->header, peer_mss, now);
                if (child)
                    tcp_input_synchronized(stack, child, packet, segment, now);
                return;
            }
            COUNT(stack, TcpSynCookiesFailed);
        }
        tcp_reply_reset(stack, packet, &segment->header, now);
        return;
    }
    if (!has_flag(segment, TCP_FLAG_SYN))
        return;
    /* Data on the SYN is not kept (no Fast Open); the peer resends it. */
    tcp_create_child(stack, listener, packet, &segment->header, now);
}

static void tcp_established_from_syn_sent(struct usock_stack *stack, struct tcp_connection *tcb,
                                          const struct tcp_segment *segment, uint64_t now)
{
    tcp_negotiate_options(tcb, &segment->header, now);
    tcb->snd_wl2 = segment->header.acknowledgment;
    if (tcb->retransmits == 0 && tcb->rtt_measuring)
        tcp_rtt_sample(tcb, now - tcb->rtt_started);
    else if (tcb->retransmits > 0 && tcb->srtt_ns == 0)
        tcb->rto_ns = 3 * TCP_RTO_INITIAL_NS; /* RFC 6298 5.7 */
    tcb->rtt_measuring = false;
    tcb->retransmits = 0;
    timer_cancel(&stack->timers, &tcb->retransmit_timer);
    tcp_set_state(stack, tcb, TCPS_ESTABLISHED);
    tcp_keepalive_reset(stack, tcb, now);
    tcb->ack_now = true;
}

static void tcp_input_syn_sent(struct usock_stack *stack, struct tcp_connection *tcb,
                               const struct ipv4_packet *packet, struct tcp_segment *segment,
                               uint64_t now)
{
    uint32_t ack = segment->header.acknowledgment;
    bool ack_acceptable = false;
    if (has_flag(segment, TCP_FLAG_ACK)) {
        if (seq_leq(ack, tcb->iss) || seq_gt(ack, tcb->snd_max)) {
            tcp_reply_reset(stack, packet, &segment->header, now);
            return;
        }
        ack_acceptable = true;
    }
    if (has_flag(segment, TCP_FLAG_RST)) {
        if (ack_acceptable) {
            COUNT(stack, TcpRstsReceived);
            tcp_done(stack, tcb, ECONNREFUSED);
        }
        return;
    }
    if (!has_flag(segment, TCP_FLAG_SYN))
        return;
    tcb->irs = segment->sequence;
    tcb->rcv_nxt = segment->sequence + 1;
    tcb->rcv_adv = tcb->rcv_nxt;
    if (ack_acceptable) {
        tcb->snd_una = ack;
        tcb->syn_acknowledged = true;
        if (seq_lt(tcb->snd_nxt, tcb->snd_una))
            tcb->snd_nxt = tcb->snd_una;
        tcp_established_from_syn_sent(stack, tcb, segment, now);
        tcp_output(stack, tcb, now);
        return;
    }
    /* Simultaneous open (RFC 9293 3.5 figure 8): answer with SYN-ACK. */
    tcp_negotiate_options(tcb, &segment->header, now);
    tcp_set_state(stack, tcb, TCPS_SYN_RECEIVED);
    tcb->snd_nxt = tcb->iss;
    tcp_output(stack, tcb, now);
}

/* A duplicate ACK overtaken by a newer segment (Linux's
 * tcp_disordered_ack): no data, nothing new acknowledged, no window
 * change, and a timestamp at most one RTO older than TS.Recent.  PAWS lets
 * it through, or reordering would eat the duplicate ACKs fast retransmit
 * counts. */
static bool tcp_disordered_ack(const struct tcp_connection *tcb,
                               const struct tcp_segment *segment)
{
    uint32_t age_ms = tcb->timestamp_recent - segment->header.options.timestamp_value;
    return has_flag(segment, TCP_FLAG_ACK) && segment->length == 0 &&
           segment->sequence == tcb->rcv_nxt &&
           segment->header.acknowledgment == tcb->snd_una &&
           tcp_segment_window(tcb, segment) == tcb->snd_wnd &&
           age_ms <= tcb->rto_ns / 1000000;
}

/* RFC 7323 5.3 R1, PAWS: a segment (not a RST) whose timestamp is older
 * than TS.Recent is an old duplicate.  As Linux, a value one tick older
 * still passes (TCP_PAWS_WINDOW), and so does a disordered duplicate ACK.
 * After 24 days without an update TS.Recent is no longer trusted, and the
 * segment's value replaces it (RFC 7323 5.5). */
static bool tcp_paws_rejects(struct tcp_connection *tcb, const struct tcp_segment *segment,
                             uint64_t now)
{
    const struct tcp_options *options = &segment->header.options;
    if (!tcb->timestamps || !options->has_timestamps || has_flag(segment, TCP_FLAG_RST))
        return false;
    if (!seq_lt(options->timestamp_value + 1, tcb->timestamp_recent))
        return false;
    if (now - tcb->timestamp_recent_time > TCP_PAWS_IDLE_NS) {
        tcb->timestamp_recent = options->timestamp_value;
        tcb->timestamp_recent_time = now;
        return false;
    }
    return !tcp_disordered_ack(tcb, segment);
}

/* RFC 7323 5.3 R3 (4.3): an acceptable segment at or left of what we last
 * acknowledged brings the timestamp we echo from now on. */
static void tcp_update_timestamp_recent(struct tcp_connection *tcb,
                                        const struct tcp_segment *segment, uint64_t now)
{
    const struct tcp_options *options = &segment->header.options;
    if (tcb->timestamps && options->has_timestamps &&
        seq_geq(options->timestamp_value, tcb->timestamp_recent) &&
        seq_leq(segment->header.sequence, tcb->last_ack_sent)) {
        tcb->timestamp_recent = options->timestamp_value;
        tcb->timestamp_recent_time = now;
    }
}

/* RFC 9293 3.10.7.4 first check: is the segment acceptable?  Trims it to
 * the window.  Returns false when it is not. */
static bool tcp_segment_acceptable(struct tcp_connection *tcb, struct tcp_segment *segment)
{
    uint32_t window = seq_gt(tcb->rcv_adv, tcb->rcv_nxt) ? tcb->rcv_adv - tcb->rcv_nxt : 0;
    uint32_t window_now = tcp_receive_window(tcb);
    if (window_now > window)
        window = window_now;
    uint32_t sequence = segment->sequence;
    uint32_t length = segment->length;
    bool acceptable;
    if (length == 0)
        acceptable = window == 0 ? sequence == tcb->rcv_nxt
                                 : seq_in_window(sequence, tcb->rcv_nxt, tcb->rcv_nxt + window);
    else if (window == 0)
        /* Special allowance: still process the ACK of an in-sequence
         * segment; its data is trimmed away below. */
        acceptable = sequence == tcb->rcv_nxt;
    else
        acceptable = seq_in_window(sequence, tcb->rcv_nxt, tcb->rcv_nxt + window) ||
                     seq_in_window(sequence + length - 1, tcb->rcv_nxt, tcb->rcv_nxt + window);
    if (segment->data_length > 0 && seq_lt(sequence, tcb->rcv_nxt)) {
        /* Data we already have: report it as a D-SACK (RFC 2883 4). */
        uint32_t data_start = sequence + (has_flag(segment, TCP_FLAG_SYN) ? 1 : 0);
        uint32_t data_end = data_start + segment->data_length;
        tcp_sack_note_duplicate(tcb, data_start,
                                seq_lt(data_end, tcb->rcv_nxt) ? data_end : tcb->rcv_nxt);
    }
    if (!acceptable)
        return false;
    /* Trim what lies before rcv_nxt. */
    if (seq_lt(segment->sequence, tcb->rcv_nxt)) {
        uint32_t excess = tcb->rcv_nxt - segment->sequence;
        if (has_flag(segment, TCP_FLAG_SYN)) {
            segment->flags &= (uint8_t)~TCP_FLAG_SYN;
            segment->sequence++;
            segment->length--;
            excess--;
        }
        if (excess > segment->data_length)
            excess = segment->data_length;
        segment->data += excess;
        segment->data_length -= excess;
        segment->sequence += excess;
        segment->length -= excess;
    }
    /* Trim what lies beyond the window. */
    uint32_t right = tcb->rcv_nxt + window;
    if (seq_gt(segment->sequence + segment->data_length, right)) {
        uint32_t keep = seq_gt(right, segment->sequence) ? right - segment->sequence : 0;
        segment->data_length = keep;
        segment->flags &= (uint8_t)~TCP_FLAG_FIN;
        segment->length = keep + (has_flag(segment, TCP_FLAG_SYN) ? 1 : 0);
    }
    return true;
}

static void tcp_input_reset(struct usock_stack *stack, struct tcp_connection *tcb,
                            const struct tcp_segment *segment, uint64_t now)
{
    /* RFC 5961 3.2: only an exact match resets; in-window ones are
     * challenged (the acceptability check already dropped the rest). */
    if (segment->sequence != tcb->rcv_nxt) {
        COUNT(stack, TcpInWindowRstsIgnored);
        tcp_send_challenge_ack(stack, tcb, now);
        return;
    }
    if (tcb->state == TCPS_TIME_WAIT) {
        /* RFC 1337: a RST must not cut TIME_WAIT short (old duplicates
         * could then reach a new incarnation); it is dropped. */
        COUNT(stack, TcpTimeWaitRstsIgnored);
        return;
    }
    COUNT(stack, TcpRstsReceived);
    tcb->reset_received = true;
    switch (tcb->state) {
    case TCPS_SYN_RECEIVED:
        tcp_done(stack, tcb, tcb->listener ? 0 : ECONNREFUSED);
        return;
    case TCPS_ESTABLISHED:
    case TCPS_FIN_WAIT_1:
    case TCPS_FIN_WAIT_2:
    case TCPS_CLOSE_WAIT:
        COUNT(stack, TcpEstabResets);
        /* RFC 9293: queued sends are flushed; what was received stays
         * readable before the error (as Linux). */
        ring_destroy(&tcb->send_buffer);
        tcp_done(stack, tcb, tcb->state == TCPS_CLOSE_WAIT ? EPIPE : ECONNRESET);
        return;
    default:
        tcp_done(stack, tcb, 0);
        return;
    }
}

/* Decides how to acknowledge in-order data just taken. */
static void tcp_acknowledge_data(struct usock_stack *stack, struct tcp_connection *tcb,
                                 uint32_t length, uint64_t now)
{
    /* A super-segment from an offloading link counts as the full segments
     * it holds, so one of two or more is acknowledged at once. */
    uint32_t full_size = tcb->advertised_mss < tcb->mss ? tcb->advertised_mss : tcb->mss;
    if (full_size > 0 && length >= full_size) {
        uint32_t full_segments = length / full_size;
        tcb->segments_unacked += full_segments < 2 ? full_segments : 2;
    }
    if (tcb->quickack > 0) {
        tcb->quickack--;
        tcb->ack_now = true;
    } else if (tcb->segments_unacked >= 2) {
        tcb->ack_now = true; /* RFC 9293 3.8.6.3: at least every second full segment */
    } else {
        tcp_schedule_delayed_ack(stack, tcb, now);
    }
}

void tcp_urgent_arrived(struct usock_stack *stack, struct tcp_connection *tcb)
{
    if (tcb->urgent_state != TCP_URGENT_PENDING)
        return;
    uint32_t offset = tcb->urgent_sequence - tcp_read_sequence(tcb);
    if (offset >= tcb->receive_buffer.length)
        return; /* not here yet */
    ring_peek(&tcb->receive_buffer, offset, &tcb->urgent_byte, 1);
    tcb->urgent_state = TCP_URGENT_VALID;
    socket_wake(stack, tcb->socket); /* POLLPRI */
}

/* RFC 9293 3.10.7.4 sixth, the URG bit, read as RFC 6093 and Linux do: the
 * pointer points one past the urgent byte (0 is taken as the first byte).
 * A pointer that is not beyond the current one, points at data already
 * read, or lies beyond what the window could ever bring is ignored and
 * counted; nothing is read through it until the byte is in the ring. */
static void tcp_input_urgent(struct usock_stack *stack, struct tcp_connection *tcb,
                             const struct tcp_segment *segment)
{
    if (!has_flag(segment, TCP_FLAG_URG) || tcb->fin_received)
        return;
    uint16_t pointer = segment->header.urgent_pointer;
    uint32_t urgent = segment->header.sequence + (pointer ? pointer - 1u : 0);
    uint32_t read = tcp_read_sequence(tcb);
    uint32_t window_end = tcb->rcv_nxt + ((uint32_t)65535 << tcb->receive_window_shift);
    if (seq_lt(urgent, read) || !seq_lt(urgent, window_end) ||
        (tcb->urgent_state != TCP_URGENT_NONE && !seq_gt(urgent, tcb->urgent_sequence))) {
        if (tcb->urgent_state == TCP_URGENT_NONE || urgent != tcb->urgent_sequence)
            COUNT(stack, TcpUrgentPointersIgnored);
        return;
    }
    tcb->urgent_sequence = urgent;
    tcb->urgent_state = TCP_URGENT_PENDING;
    tcp_urgent_arrived(stack, tcb);
}

/* Returns false when the connection was freed (TIME_WAIT refused). */
static bool tcp_input_text(struct usock_stack *stack, struct tcp_connection *tcb,
                           struct tcp_segment *segment, uint64_t now)
{
    bool fin = has_flag(segment, TCP_FLAG_FIN);
    if (segment->data_length == 0 && !fin)
        return true;
    if (segment->sequence == tcb->rcv_nxt && segment->data_length > 0 &&
        !tcb->receive_buffer.data &&
        !tcp_memory_allows(&stack->tcp, tcb->receive_buffer.capacity)) {
        /* Past tcp_mem, no new receive buffer: drop, say what we have,
         * and let the peer send it again. */
        COUNT(stack, TcpMemoryDrops);
        tcb->ack_now = true;
        return true;
    }
    if (segment->sequence == tcb->rcv_nxt) {
        uint32_t taken = tcp_take_in_order(tcb, segment->data, segment->data_length);
        if (taken < segment->data_length)
            fin = false; /* the ring was full: the rest comes again */
        bool filled_hole = tcb->out_of_order != NULL;
        if (filled_hole && tcp_drain_out_of_order(stack, tcb))
            fin = true;
        if (taken) {
            tcp_urgent_arrived(stack, tcb);
            socket_wake(stack, tcb->socket);
        }
        /* A FIN alone is acknowledged as tcp_process_fin decides. */
        if (filled_hole)
            tcb->ack_now = true;
        else if (taken)
            tcp_acknowledge_data(stack, tcb, taken, now);
        else if (!fin)
            tcb->ack_now = true;
    } else {
        /* Beyond a hole: keep it, and say at once what we miss (a
         * duplicate ACK drives the sender's fast retransmit). */
        tcp_queue_out_of_order(stack, tcb, segment->sequence, segment->data,
                               segment->data_length, fin);
        tcb->ack_now = true;
        fin = false;
    }
    if (!fin)
        return true;
    return tcp_process_fin(stack, tcb, now);
}

bool tcp_process_fin(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now)
{
    /* RFC 9293 3.10.7.4 eighth: the FIN. */
    tcb->rcv_nxt++;
    tcb->fin_received = true;
    tcb->socket->shutdown |= SHUTDOWN_RECEIVE; /* as Linux's sk_shutdown */
    socket_wake(stack, tcb->socket);
    switch (tcb->state) {
    case TCPS_SYN_RECEIVED:
    case TCPS_ESTABLISHED:
        /* As Linux (tcp_fin: pingpong mode): the ACK waits the delayed-ACK
         * time, so a program that closes at once sends it on its own FIN
         * (a request/reply exchange costs 10 segments, not 11). */
        tcp_set_state(stack, tcb, TCPS_CLOSE_WAIT);
        tcb->quickack = 0;
        tcp_schedule_delayed_ack(stack, tcb, now);
        break;
    case TCPS_FIN_WAIT_1:
        tcb->ack_now = true;
        tcp_set_state(stack, tcb, TCPS_CLOSING);
        break;
    case TCPS_FIN_WAIT_2:
        tcp_send_ack(stack, tcb, now);
        return tcp_enter_time_wait(stack, tcb, now);
    default:
        tcb->ack_now = true;
        break;
    }
    return true;
}

static void tcp_input_synchronized(struct usock_stack *stack, struct tcp_connection *tcb,
                                   const struct ipv4_packet *packet,
                                   struct tcp_segment *segment, uint64_t now)
{
    /* A retransmitted SYN for a connection still in SYN-RECEIVED: answer
     * with the SYN-ACK again (Linux's tcp_check_req). */
    if (tcb->state == TCPS_SYN_RECEIVED && has_flag(segment, TCP_FLAG_SYN) &&
        !has_flag(segment, TCP_FLAG_ACK | TCP_FLAG_RST) && segment->sequence == tcb->irs) {
        tcb->snd_nxt = tcb->iss;
        tcp_output(stack, tcb, now);
        return;
    }
    if (tcb->state == TCPS_TIME_WAIT && has_flag(segment, TCP_FLAG_FIN) &&
        !has_flag(segment, TCP_FLAG_RST) && segment->sequence + segment->length == tcb->rcv_nxt) {
        /* The peer did not hear our ACK of its FIN: again, and restart 2MSL. */
        tcp_send_ack(stack, tcb, now);
        stack_timer_arm(stack, &tcb->keepalive_timer, now + stack->tcp_time_wait_ns);
        return;
    }
    if (tcp_paws_rejects(tcb, segment, now)) {
        COUNT(stack, TcpPawsEstabRejected);
        if (!tcp_out_of_window_ack_limited(stack, tcb, segment, COUNTER_TcpAckSkippedPaws, now))
            tcp_send_ack(stack, tcb, now);
        return;
    }
    if (!tcp_segment_acceptable(tcb, segment)) {
        COUNT(stack, TcpInUnacceptable);
        if (has_flag(segment, TCP_FLAG_RST))
            return;
        if (has_flag(segment, TCP_FLAG_SYN))
            tcp_send_challenge_ack(stack, tcb, now); /* RFC 5961 4.2, wherever it lies */
        else if (!tcp_out_of_window_ack_limited(stack, tcb, segment, COUNTER_TcpAckSkippedSeq,
                                                now))
            tcp_send_ack(stack, tcb, now);
        return;
    }
    tcp_update_timestamp_recent(tcb, segment, now);
    if (has_flag(segment, TCP_FLAG_RST)) {
        tcp_input_reset(stack, tcb, segment, now);
        return;
    }
    if (has_flag(segment, TCP_FLAG_SYN)) {
        /* RFC 5961 4.2: a SYN in a synchronized state is challenged. */
        tcp_send_challenge_ack(stack, tcb, now);
        return;
    }
    if (!has_flag(segment, TCP_FLAG_ACK))
        return;
    tcb->last_received = now;
    tcb->keepalive_probes_sent = 0;
    if (tcb->state == TCPS_SYN_RECEIVED) {
        uint32_t ack = segment->header.acknowledgment;
        if (!seq_gt(ack, tcb->snd_una) || seq_gt(ack, tcb->snd_max)) {
            tcp_reply_reset(stack, packet, &segment->header, now);
            return;
        }
    }
    switch (tcp_process_ack(stack, tcb, segment, now)) {
    case TCP_STEP_GONE:
        return;
    case TCP_STEP_DROP:
        if (tcb->state != TCPS_CLOSED && tcb->ack_now)
            tcp_send_ack(stack, tcb, now);
        return;
    case TCP_STEP_CONTINUE:
        break;
    }
    if (tcb->state == TCPS_ESTABLISHED || tcb->state == TCPS_FIN_WAIT_1 ||
        tcb->state == TCPS_FIN_WAIT_2) {
        if (tcb->orphaned && segment->data_length > 0) {
            /* Nobody will read it: Linux resets (TCPAbortOnData). */
            COUNT(stack, TcpAbortOnData);
            tcp_send_reset(stack, tcb, now);
            tcp_done(stack, tcb, 0);
            return;
        }
        tcp_input_urgent(stack, tcb, segment);
        if (!tcp_input_text(stack, tcb, segment, now))
            return;
        if (tcb->state == TCPS_CLOSED || tcb->state == TCPS_TIME_WAIT)
            return;
    } else if (segment->data_length > 0 || has_flag(segment, TCP_FLAG_FIN)) {
        /* CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT: the peer already sent
         * its FIN; a retransmission of it just needs our ACK again. */
        tcb->ack_now = true;
    }
    tcp_output(stack, tcb, now);
}

/* Header prediction (Van Jacobson's, as Linux's tcp_rcv_established fast
 * path): in ESTABLISHED, the common segment carries the flags ACK (and
 * maybe PSH) and nothing else, begins at RCV.NXT, fits in the window we
 * advertised, carries no SACK blocks and no older timestamp, and
 * acknowledges nothing outside what we sent.  Such a segment needs none of
 * the checks for resets, SYNs, PAWS, window trimming, D-SACK or urgent
 * data, and its data goes straight to the ring. */
static bool tcp_header_predicted(const struct tcp_connection *tcb,
                                 const struct tcp_segment *segment)
{
    const uint8_t unusual = TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST | TCP_FLAG_URG;
    const struct tcp_options *options = &segment->header.options;
    uint32_t ack = segment->header.acknowledgment;
    if (tcb->state != TCPS_ESTABLISHED || tcb->orphaned || (segment->flags & unusual) ||
        !(segment->flags & TCP_FLAG_ACK) || segment->sequence != tcb->rcv_nxt ||
        options->sack_block_count != 0 || options->has_timestamps != tcb->timestamps)
        return false;
    if (tcb->timestamps && seq_lt(options->timestamp_value, tcb->timestamp_recent))
        return false;
    if (segment->data_length > 0 && (!seq_gt(tcb->rcv_adv, tcb->rcv_nxt) ||
                                     segment->data_length > tcb->rcv_adv - tcb->rcv_nxt))
        return false;
    return seq_geq(ack, tcb->snd_una) && seq_leq(ack, tcb->snd_max);
}

/* What tcp_input_synchronized does for a predicted segment, without the
 * checks that cannot fire. */
static void tcp_input_predicted(struct usock_stack *stack, struct tcp_connection *tcb,
                                struct tcp_segment *segment, uint64_t now)
{
    tcp_update_timestamp_recent(tcb, segment, now);
    tcb->last_received = now;
    tcb->keepalive_probes_sent = 0;
    uint32_t ack = segment->header.acknowledgment;
    if (segment->data_length == 0 || ack != tcb->snd_una ||
        tcp_segment_window(tcb, segment) != tcb->snd_wnd) {
        if (segment->data_length == 0)
            COUNT(stack, TcpHeaderPredictedAcks);
        if (tcp_process_ack(stack, tcb, segment, now) != TCP_STEP_CONTINUE) {
            if (tcb->state != TCPS_CLOSED && tcb->ack_now)
                tcp_send_ack(stack, tcb, now);
            return;
        }
    } else if (seq_lt(tcb->snd_wl1, segment->sequence) ||
               (tcb->snd_wl1 == segment->sequence && seq_leq(tcb->snd_wl2, ack))) {
        /* Nothing new acknowledged and the same window: only the record
         * of which segment last set it moves on. */
        tcb->snd_wl1 = segment->sequence;
        tcb->snd_wl2 = ack;
    }
    if (segment->data_length > 0) {
        COUNT(stack, TcpHeaderPredictedData);
        tcp_input_text(stack, tcb, segment, now);
    }
    tcp_output(stack, tcb, now);
}

void tcp_input(struct usock_stack *stack, const struct ipv4_packet *packet, uint64_t now)
{
    struct tcp_segment segment;
    const struct ipv4_header *ip = &packet->header;
    if (packet->destination_kind != ADDRESS_LOCAL) {
        COUNT(stack, TcpInNotUnicast);
        return;
    }
    switch (tcp_parse(packet->payload, packet->payload_length, ip->source, ip->destination,
                      stack->verify_checksums && !packet->from_loopback &&
                          !stack->input_checksum_verified, &segment.header)) {
    case TCP_PARSE_OK:
        break;
    case TCP_PARSE_TRUNCATED:
        COUNT(stack, TcpInTruncated);
        COUNT(stack, TcpInErrs);
        return;
    case TCP_PARSE_BAD_HEADER_LENGTH:
        COUNT(stack, TcpInBadHeaderLength);
        COUNT(stack, TcpInErrs);
        return;
    case TCP_PARSE_BAD_CHECKSUM:
        COUNT(stack, TcpInCsumErrors);
        COUNT(stack, TcpInErrs);
        return;
    case TCP_PARSE_BAD_OPTIONS:
        COUNT(stack, TcpInBadOptions);
        COUNT(stack, TcpInErrs);
        return;
    }
    COUNT(stack, TcpInSegs);
    segment.flags = segment.header.flags;
    segment.data = packet->payload + segment.header.header_length;
    segment.data_length = (uint32_t)(packet->payload_length - segment.header.header_length);
    segment.sequence = segment.header.sequence;
    segment.length = segment.data_length + (has_flag(&segment, TCP_FLAG_SYN) ? 1 : 0) +
                     (has_flag(&segment, TCP_FLAG_FIN) ? 1 : 0);

    struct tcp_connection *tcb =
        tcp_lookup_connection(stack, ip->destination, segment.header.destination_port,
                              ip->source, segment.header.source_port);
    if (tcb && tcb->state == TCPS_TIME_WAIT && has_flag(&segment, TCP_FLAG_SYN) &&
        !has_flag(&segment, TCP_FLAG_ACK | TCP_FLAG_RST) && seq_gt(segment.sequence, tcb->rcv_nxt)) {
        /* A new incarnation of a connection in TIME_WAIT (RFC 9293 3.6.1
         * allows it when its sequence numbers are beyond the old ones). */
        struct tcp_connection *listener =
            tcp_lookup_listener(stack, ip->destination, segment.header.destination_port);
        if (listener) {
            tcp_done(stack, tcb, 0);
            tcp_input_listen(stack, listener, packet, &segment, now);
            return;
        }
    }
    if (!tcb) {
        struct tcp_connection *listener =
            tcp_lookup_listener(stack, ip->destination, segment.header.destination_port);
        if (listener) {
            tcp_input_listen(stack, listener, packet, &segment, now);
            return;
        }
        COUNT(stack, TcpInNoSocket);
        tcp_reply_reset(stack, packet, &segment.header, now);
        return;
    }
    if (tcb->state == TCPS_SYN_SENT) {
        tcp_input_syn_sent(stack, tcb, packet, &segment, now);
        return;
    }
    if (tcp_header_predicted(tcb, &segment)) {
        tcp_input_predicted(stack, tcb, &segment, now);
        return;
    }
    tcp_input_synchronized(stack, tcb, packet, &segment, now);
}

/* ---- ICMP errors ---- */

void tcp_error(struct usock_stack *stack, const struct ipv4_error *error, uint64_t now)
{
    if (error->quoted_payload_length < 8)
        return;
    const uint8_t *quoted = error->quoted_payload;
    uint16_t source_port = (uint16_t)(quoted[0] << 8 | quoted[1]);
    uint16_t destination_port = (uint16_t)(quoted[2] << 8 | quoted[3]);
    uint32_t sequence = (uint32_t)quoted[4] << 24 | (uint32_t)quoted[5] << 16 |
                        (uint32_t)quoted[6] << 8 | quoted[7];
    struct tcp_connection *tcb =
        tcp_lookup_connection(stack, error->quoted.source, source_port,
                              error->quoted.destination, destination_port);
    if (!tcb) {
        COUNT(stack, IcmpInErrorsNoSocket);
        return;
    }
    /* RFC 5927: believe only errors quoting a sequence number in flight. */
    if (!seq_in_window(sequence, tcb->snd_una, tcb->snd_max + 1))
        return;
    if (error->type != ICMP_TYPE_DESTINATION_UNREACHABLE)
        return;
    if (error->code == ICMP_CODE_FRAGMENTATION_NEEDED) {
        /* RFC 1191: shrink the MSS to the next-hop MTU and resend. */
        uint32_t mtu = error->info & 0xffff;
        uint32_t path_mss = mtu - 40 - tcp_fixed_option_bytes(tcb);
        if (mtu >= 68 && path_mss < tcb->mss && tcb->state >= TCPS_ESTABLISHED) {
            tcb->mss = (uint16_t)(path_mss < 88 ? 88 : path_mss);
            tcb->snd_nxt = tcb->snd_una;
            tcp_output(stack, tcb, now);
        }
        return;
    }
    int code;
    switch (error->code) {
    case ICMP_CODE_NET_UNREACHABLE: code = ENETUNREACH; break;
    case ICMP_CODE_HOST_UNREACHABLE: code = EHOSTUNREACH; break;
    case ICMP_CODE_PROTOCOL_UNREACHABLE: code = ENOPROTOOPT; break;
    case ICMP_CODE_PORT_UNREACHABLE: code = ECONNREFUSED; break;
    case 9: case 10: case 13: code = EACCES; break;
    default: code = EHOSTUNREACH; break;
    }
    /* Linux tcp_v4_err: while connecting, errors end the attempt; once
     * established they are soft, reported only if the connection times out. */
    if (tcb->state == TCPS_SYN_SENT || (tcb->state == TCPS_SYN_RECEIVED && !tcb->listener)) {
        tcp_done(stack, tcb, code);
        return;
    }
    tcb->soft_error = code;
}
