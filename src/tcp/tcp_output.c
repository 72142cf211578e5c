/*
 * tcp_output.c - building and sending TCP segments.
 *
 * tcp_output decides what to send from the connection's state: a SYN or
 * SYN-ACK while synchronizing; otherwise data from the send ring, segmented
 * by the MSS, limited by the smaller of the peer's window and the
 * congestion window, held back by Nagle's algorithm (RFC 9293 3.7.4) and
 * sender-side silly window avoidance (RFC 9293 3.8.6.2.1); then the FIN
 * once every byte before it has gone; then a bare ACK if one is owed and
 * nothing else carried it.  snd_nxt may have been pulled back to snd_una by
 * a timeout, in which case the same code retransmits.
 *
 * Every segment but the first SYN carries an ACK and the window we offer;
 * the window never shrinks (RFC 9293 3.8.6.2.2: the right edge stays put)
 * and only opens in steps of at least min(MSS, half the buffer) (receiver
 * silly window avoidance).  Window scaling and timestamps (RFC 7323) are
 * offered on our SYN and used when both sides offered them: the window
 * field is then shifted, and every segment carries TSval and TSecr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "stack.h"
#include "tcp/tcp.h"
#include "tcp/tcp_sequence.h"

uint32_t tcp_send_base(const struct tcp_connection *tcb)
{
    /* Until the SYN is acknowledged it sits at snd_una, before the data
     * (a close in SYN-RECEIVED can queue a FIN before that happens). */
    return tcb->snd_una + (tcb->syn_acknowledged ? 0 : 1);
}

uint32_t tcp_receive_window(const struct tcp_connection *tcb)
{
    /* Out-of-order data lies inside this window and moves into the ring
     * when the hole fills, so only the ring's free space counts. */
    size_t room = ring_free_space(&tcb->receive_buffer);
    size_t largest = (size_t)65535 << tcb->receive_window_shift;
    return (uint32_t)(room < largest ? room : largest);
}

/* The window field of the next segment, updating rcv_adv (the right edge
 * the peer now knows).  The edge never lies beyond what the receive ring
 * can take, so every byte the peer may send is kept (a peer whose data we
 * dropped would run ahead of RCV.NXT, and with our window closed its ACKs
 * would no longer be acceptable to us).  It never moves left (RFC 9293
 * 3.8.6.2.2) except by less than one unit of the window scale, which
 * rounding down to a unit requires (RFC 7323 2.4), and it opens only in
 * steps of min(MSS, half the buffer) (receiver silly window avoidance). */
static uint16_t tcp_window_to_advertise(struct tcp_connection *tcb, bool syn)
{
    uint8_t shift = syn ? 0 : tcb->receive_window_shift; /* SYNs: never scaled */
    uint32_t offered = tcp_receive_window(tcb);
    uint32_t current = seq_gt(tcb->rcv_adv, tcb->rcv_nxt) ? tcb->rcv_adv - tcb->rcv_nxt : 0;
    uint32_t step = tcb->advertised_mss;
    if (tcb->receive_buffer.capacity / 2 < step)
        step = (uint32_t)(tcb->receive_buffer.capacity / 2);
    /* Keep the right edge where it is unless it can open by a step (the
     * edge never exceeds the free space, so current <= offered but for a
     * buffer shrunk under it, where the smaller offer wins). */
    uint32_t target = offered;
    if (current <= offered && offered - current < step && offered < tcb->receive_buffer.capacity)
        target = current;
    uint32_t units = target >> shift;
    if (units > 65535)
        units = 65535;
    tcb->rcv_adv = tcb->rcv_nxt + (units << shift);
    return (uint16_t)units;
}

/* Whether segments of this connection go out on a link that finishes
 * their checksums (and, when segmentation is offloaded too, cuts
 * super-segments): everything but traffic to our own addresses. */
static unsigned tcp_link_offloads(const struct usock_stack *stack,
                                  const struct tcp_connection *tcb)
{
    const struct usock_link *link = stack->interface.link;
    if (!link || link->offloads == 0 ||
        ipv4_address_kind(stack, tcb->socket->peer_address) != ADDRESS_OTHER)
        return 0;
    return link->offloads;
}

/* Payload bytes in each segment: the MSS less what SACK blocks take. */
static uint32_t tcp_segment_payload(const struct tcp_connection *tcb)
{
    return tcb->mss - tcp_sack_option_bytes(tcb);
}

/* The most new data one tcp_send_new may send at once: one segment, or
 * with segmentation offloaded as many whole segments as a 64 KiB IP
 * packet holds (the link cuts them; Linux's TSO/GSO size goal). */
static uint32_t tcp_send_size_goal(const struct usock_stack *stack,
                                   const struct tcp_connection *tcb, uint32_t segment_size)
{
    if (!(tcp_link_offloads(stack, tcb) & LINK_OFFLOAD_TCP_SEGMENTATION))
        return segment_size;
    /* Room for the IP header and the largest TCP header with options. */
    uint32_t room = IPV4_PACKET_MAX - IPV4_HEADER_LENGTH - 60;
    uint32_t segments = room / segment_size;
    return segments > 1 ? segments * segment_size : segment_size;
}

/* Sends one segment: sequence, flags, and length bytes of the send ring
 * from offset.  Longer than one segment's payload makes a super-segment
 * for a link that offloads segmentation.  Returns 0 or -errno from IPv4. */
static int tcp_send_segment(struct usock_stack *stack, struct tcp_connection *tcb,
                            uint32_t sequence, uint8_t flags, size_t offset, size_t length,
                            uint64_t now)
{
    struct socket *socket = tcb->socket;
    struct tcp_header header = {
        .source_port = socket->local_port,
        .destination_port = socket->peer_port,
        .sequence = sequence,
        .flags = flags,
    };
    if (flags & TCP_FLAG_SYN) {
        header.options.has_mss = true;
        header.options.mss = tcb->advertised_mss;
        /* While SYN-SENT these say what we offer; in a SYN-ACK, what the
         * peer's SYN offered too. */
        if (tcb->window_scaling) {
            header.options.has_window_scale = true;
            header.options.window_scale = tcb->receive_window_shift;
        }
        header.options.sack_permitted = tcb->sack_permitted;
    } else if ((flags & TCP_FLAG_ACK) && !(flags & TCP_FLAG_RST)) {
        tcp_sack_fill_blocks(stack, tcb, &header.options);
    }
    if (tcb->timestamps) {
        header.options.has_timestamps = true;
        header.options.timestamp_value = tcp_timestamp_now(tcb, now);
        /* RFC 7323 3.2: TSecr is zero unless ACK is set. */
        header.options.timestamp_echo = (flags & TCP_FLAG_ACK) ? tcb->timestamp_recent : 0;
    }
    if (tcb->send_urgent && !(flags & TCP_FLAG_SYN) && seq_lt(sequence, tcb->snd_up)) {
        /* Urgent mode: point one past the urgent byte, or as far as 16
         * bits reach (Linux's 0xffff) when it lies further. */
        uint32_t distance = tcb->snd_up - sequence;
        header.flags |= TCP_FLAG_URG;
        header.urgent_pointer = (uint16_t)(distance < 0x10000 ? distance : 0xffff);
    }
    if (flags & TCP_FLAG_ACK) {
        header.acknowledgment = tcb->rcv_nxt;
        header.window = tcp_window_to_advertise(tcb, (flags & TCP_FLAG_SYN) != 0);
        tcb->last_ack_sent = tcb->rcv_nxt;
    } else if (flags & TCP_FLAG_SYN) {
        header.window = tcp_window_to_advertise(tcb, true);
    }
    size_t options_length = tcp_options_length(&header.options);
    unsigned offloads = tcp_link_offloads(stack, tcb);
    bool gather = length && offloads != 0 && stack->interface.link->ops->send_gather;
    struct packet_buffer *buffer = packet_buffer_new(
        PACKET_HEADROOM + TCP_HEADER_LENGTH + options_length, gather ? 0 : length);
    if (!buffer)
        return -ENOBUFS;
    if (gather) {
        /* The link gathers the payload from the ring as it sends: with the
         * checksum offloaded, nothing here reads it. */
        buffer->payload_ring = &tcb->send_buffer;
        buffer->payload_offset = offset;
        buffer->payload_length = length;
    } else if (length) {
        ring_peek(&tcb->send_buffer, offset, packet_buffer_put(buffer, length), length);
    }
    uint8_t *segment = packet_buffer_push(buffer, TCP_HEADER_LENGTH + options_length);
    uint32_t segment_payload = tcp_segment_payload(tcb);
    unsigned segments = 1;
    if (offloads != 0) {
        tcp_emit_checksum_partial(&header, socket->local_address, socket->peer_address, segment,
                                  length);
        buffer->checksum_partial = true;
        buffer->transport_header = segment;
        buffer->checksum_offset = 16;
        if (length > segment_payload) {
            buffer->segment_size = (uint16_t)segment_payload;
            segments = (unsigned)((length + segment_payload - 1) / segment_payload);
        }
    } else {
        tcp_emit(&header, socket->local_address, socket->peer_address, segment, length);
    }
    struct ipv4_send send = {
        .source = socket->local_address,
        .destination = socket->peer_address,
        .protocol = IPPROTO_TCP,
        .time_to_live = socket->time_to_live,
        .type_of_service = socket->type_of_service,
        .dont_fragment = true,
    };
    COUNT_ADD(stack, TcpOutSegs, segments);
    if (seq_lt(sequence, tcb->snd_max) && (length || (flags & (TCP_FLAG_SYN | TCP_FLAG_FIN))))
        COUNT_ADD(stack, TcpRetransSegs, segments);
    if (flags & TCP_FLAG_RST)
        COUNT(stack, TcpOutRsts);
    if (flags & TCP_FLAG_ACK) {
        tcb->ack_now = false;
        tcb->segments_unacked = 0;
        if (tcb->delayed_ack_pending) {
            tcb->delayed_ack_pending = false;
            timer_cancel(&stack->timers, &tcb->delayed_ack_timer);
        }
    }
    return ipv4_output(stack, buffer, &send, now);
}

/* Bookkeeping after sending [sequence, sequence + consumed). */
static void tcp_sent(struct usock_stack *stack, struct tcp_connection *tcb, uint32_t sequence,
                     uint32_t consumed, uint64_t now)
{
    uint32_t end = sequence + consumed;
    if (seq_lt(sequence, tcb->snd_max)) {
        /* A retransmission (timeout, fast recovery, loss probe, persist):
         * Karn's rule, no timing across it; RTT from these bytes only by
         * timestamps echoing this or a later transmission. */
        tcb->rtt_measuring = false;
        tcb->retransmit_timestamp = tcp_timestamp_now(tcb, now);
        if (seq_gt(end, tcb->retransmitted_high))
            tcb->retransmitted_high = end;
    }
    if (seq_gt(end, tcb->snd_nxt))
        tcb->snd_nxt = end;
    if (seq_gt(end, tcb->snd_max)) {
        /* New data: time it if nothing is being timed (Karn: never a
         * retransmission, since those stay below snd_max). */
        if (!tcb->rtt_measuring && seq_geq(sequence, tcb->snd_max)) {
            tcb->rtt_measuring = true;
            tcb->rtt_sequence = end;
            tcb->rtt_started = now;
        }
        tcb->snd_max = end;
        /* The most in flight over the last window of data, for
         * tcp_congestion_grow (Linux's max_packets_out). */
        uint32_t flight = tcb->snd_max - tcb->snd_una;
        if (seq_geq(tcb->snd_una, tcb->flight_window_end)) {
            tcb->flight_max = flight;
            tcb->flight_window_end = tcb->snd_max;
        } else if (flight > tcb->flight_max) {
            tcb->flight_max = flight;
        }
    }
    if (!timer_is_armed(&tcb->retransmit_timer))
        tcp_arm_retransmit(stack, tcb, now);
}

/* The sequence number of a segment without data (Linux's
 * tcp_acceptable_seq): the highest we sent, not snd_nxt, which a timeout
 * pulls back to snd_una while the peer may already hold more; where the
 * peer's window has shrunk below it, the window's right edge. */
static uint32_t tcp_acceptable_sequence(const struct tcp_connection *tcb)
{
    uint32_t window_end = tcb->snd_una + tcb->snd_wnd;
    if (seq_gt(tcb->snd_max, window_end) && seq_geq(window_end, tcb->snd_nxt))
        return window_end;
    return seq_gt(tcb->snd_max, tcb->snd_nxt) ? tcb->snd_max : tcb->snd_nxt;
}

void tcp_send_ack(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now)
{
    tcp_send_segment(stack, tcb, tcp_acceptable_sequence(tcb), TCP_FLAG_ACK, 0, 0, now);
}

void tcp_send_keepalive_probe(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now)
{
    /* RFC 9293 3.8.4: SEG.SEQ = SND.NXT - 1 with no data draws an ACK. */
    tcp_send_segment(stack, tcb, tcp_acceptable_sequence(tcb) - 1, TCP_FLAG_ACK, 0, 0, now);
}

void tcp_send_reset(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now)
{
    tcp_send_segment(stack, tcb, tcp_acceptable_sequence(tcb), TCP_FLAG_RST | TCP_FLAG_ACK, 0, 0,
                     now);
}

void tcp_reply_reset(struct usock_stack *stack, const struct ipv4_packet *packet,
                     const struct tcp_header *header, uint64_t now)
{
    /* RFC 9293 3.10.7.1: never answer a RST; take the sequence number from
     * the ACK if there is one, else acknowledge what the segment occupied. */
    if (header->flags & TCP_FLAG_RST)
        return;
    struct tcp_header reply = {
        .source_port = header->destination_port,
        .destination_port = header->source_port,
    };
    if (header->flags & TCP_FLAG_ACK) {
        reply.sequence = header->acknowledgment;
        reply.flags = TCP_FLAG_RST;
    } else {
        size_t data = packet->payload_length - header->header_length;
        reply.acknowledgment = header->sequence + (uint32_t)data +
                               ((header->flags & TCP_FLAG_SYN) ? 1 : 0) +
                               ((header->flags & TCP_FLAG_FIN) ? 1 : 0);
        reply.flags = TCP_FLAG_RST | TCP_FLAG_ACK;
    }
    COUNT(stack, TcpOutRsts);
    tcp_send_stateless(stack, packet->header.destination, packet->header.source, &reply, now);
}

void tcp_send_stateless(struct usock_stack *stack, uint32_t source, uint32_t destination,
                        const struct tcp_header *header, uint64_t now)
{
    size_t header_length = TCP_HEADER_LENGTH + tcp_options_length(&header->options);
    struct packet_buffer *buffer = packet_buffer_new(PACKET_HEADROOM + header_length, 0);
    if (!buffer)
        return;
    uint8_t *segment = packet_buffer_push(buffer, header_length);
    tcp_emit(header, source, destination, segment, 0);
    struct ipv4_send send = {
        .source = source,
        .destination = destination,
        .protocol = IPPROTO_TCP,
        .time_to_live = IPV4_DEFAULT_TTL,
        .dont_fragment = true,
    };
    COUNT(stack, TcpOutSegs);
    ipv4_output(stack, buffer, &send, now);
}

/* Sends SYN (active) or SYN-ACK (passive, or simultaneous open). */
static void tcp_output_syn(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now)
{
    if (tcb->snd_nxt != tcb->iss)
        return; /* sent and not yet timed out */
    uint8_t flags = TCP_FLAG_SYN;
    if (tcb->state != TCPS_SYN_SENT)
        flags |= TCP_FLAG_ACK;
    tcp_send_segment(stack, tcb, tcb->iss, flags, 0, 0, now);
    tcp_sent(stack, tcb, tcb->iss, 1, now);
}

static bool tcp_state_sends_data(enum tcp_state state)
{
    return state == TCPS_ESTABLISHED || state == TCPS_CLOSE_WAIT || state == TCPS_FIN_WAIT_1 ||
           state == TCPS_CLOSING || state == TCPS_LAST_ACK;
}

/* Sends the next segment of new data (or the FIN) from snd_nxt, if the
 * window up to window_end, sender SWS avoidance and Nagle allow.  Returns
 * the sequence space sent, 0 when nothing went. */
static uint32_t tcp_send_new(struct usock_stack *stack, struct tcp_connection *tcb,
                             uint32_t window_end, uint64_t now)
{
    uint32_t base = tcp_send_base(tcb);
    uint32_t data_end = base + (uint32_t)tcb->send_buffer.length;
    if (seq_lt(tcb->snd_nxt, data_end)) {
        /* A segment carrying SACK blocks has that much less room. */
        uint32_t segment_size = tcp_segment_payload(tcb);
        uint32_t goal = tcp_send_size_goal(stack, tcb, segment_size);
        uint32_t available = data_end - tcb->snd_nxt;
        uint32_t length = available < goal ? available : goal;
        uint32_t usable = seq_gt(window_end, tcb->snd_nxt) ? window_end - tcb->snd_nxt : 0;
        if (length > usable) {
            if (usable >= segment_size) {
                length = usable - usable % segment_size; /* whole segments only */
            } else {
                /* Sender SWS avoidance: a partial segment of new data
                 * only when it is at least half the largest window
                 * offered.  Data sent before (a retransmission after a
                 * timeout) goes again in whatever window there is. */
                bool resending = seq_lt(tcb->snd_nxt, tcb->snd_max);
                if (usable == 0 || (usable < tcb->max_snd_wnd / 2 && !resending))
                    return 0;
                length = usable;
            }
        }
        bool in_flight = tcb->snd_nxt != tcb->snd_una;
        /* Nagle: a small segment waits while data is unacknowledged,
         * unless TCP_NODELAY, or it carries the FIN along. */
        bool urgent = tcb->send_urgent && seq_lt(tcb->snd_nxt, tcb->snd_up);
        bool fin_along = length == available && tcb->fin_queued;
        bool nagle = in_flight && !tcb->nodelay && !urgent && !fin_along;
        /* TCP_CORK: only whole segments, until uncorked or the FIN. */
        bool hold_partial = nagle || (tcb->corked && !urgent && !fin_along);
        if (length > segment_size && length % segment_size != 0 && hold_partial)
            length -= length % segment_size; /* the small tail waits, as its own segment would */
        bool last = length == available;
        if (length < segment_size && hold_partial)
            return 0;
        bool with_fin = last && tcb->fin_queued;
        uint8_t flags = TCP_FLAG_ACK | (last ? TCP_FLAG_PSH : 0) | (with_fin ? TCP_FLAG_FIN : 0);
        uint32_t sequence = tcb->snd_nxt;
        if (tcp_send_segment(stack, tcb, sequence, flags, sequence - base, length, now) != 0)
            return 0;
        tcp_sent(stack, tcb, sequence, length + (with_fin ? 1 : 0), now);
        tcb->last_data_sent = now;
        return length + (with_fin ? 1 : 0);
    }
    if (tcb->fin_queued && tcb->snd_nxt == data_end) {
        tcp_send_segment(stack, tcb, data_end, TCP_FLAG_FIN | TCP_FLAG_ACK, 0, 0, now);
        tcp_sent(stack, tcb, data_end, 1, now);
        return 1;
    }
    return 0;
}

bool tcp_send_probe_new_data(struct usock_stack *stack, struct tcp_connection *tcb,
                             uint64_t now)
{
    return tcp_send_new(stack, tcb, tcb->snd_una + tcb->snd_wnd, now) > 0;
}

/* RFC 5681 4.1: after an idle RTO the network may have changed; start
 * again from the restart window (Linux's tcp_slow_start_after_idle),
 * remembering three quarters of the old window in ssthresh. */
static void tcp_restart_after_idle(struct tcp_connection *tcb, uint64_t now)
{
    if (tcb->snd_una != tcb->snd_max || !tcb->last_data_sent ||
        now - tcb->last_data_sent <= tcb->rto_ns)
        return;
    uint32_t restart = TCP_INITIAL_WINDOW_SEGMENTS * (uint32_t)tcb->mss;
    if (tcb->cwnd > restart) {
        if (tcb->ssthresh < tcb->cwnd / 4 * 3)
            tcb->ssthresh = tcb->cwnd / 4 * 3;
        tcb->cwnd = restart;
        tcb->cubic_epoch_start = 0;
    }
    tcb->last_data_sent = now;
}

/* SACK loss recovery (RFC 6675 5 step C): while the congestion window
 * (set by PRR on each ACK) exceeds pipe, send NextSeg: a lost hole, else
 * new data, else another hole. */
static void tcp_output_sack_recovery(struct usock_stack *stack, struct tcp_connection *tcb,
                                     uint64_t now)
{
    for (unsigned guard = 0; guard < 1024; guard++) {
        uint32_t pipe = tcp_sack_pipe(tcb);
        if (pipe >= tcb->cwnd)
            return;
        uint32_t budget = tcb->cwnd - pipe;
        uint32_t sequence, length;
        bool hole = tcp_sack_next_hole(tcb, true, &sequence, &length);
        if (!hole) {
            uint32_t window_end = tcb->snd_una + tcb->snd_wnd;
            if (seq_lt(tcb->snd_nxt + budget, window_end))
                window_end = tcb->snd_nxt + budget;
            uint32_t sent = tcp_send_new(stack, tcb, window_end, now);
            if (sent) {
                tcb->prr_out += sent;
                continue;
            }
            hole = tcp_sack_next_hole(tcb, false, &sequence, &length);
        }
        if (!hole)
            return;
        if (length > tcb->mss)
            length = tcb->mss;
        if (length > budget)
            return; /* wait for the next ACK to add to the budget */
        uint32_t sent = tcp_retransmit_at(stack, tcb, sequence, length, now);
        if (sent == 0)
            return;
        tcb->high_rxt = sequence + sent;
        tcb->prr_out += sent;
    }
}

void tcp_output(struct usock_stack *stack, struct tcp_connection *tcb, uint64_t now)
{
    if (tcb->state == TCPS_SYN_SENT || tcb->state == TCPS_SYN_RECEIVED) {
        tcp_output_syn(stack, tcb, now);
        return;
    }
    /* Closed while still in SYN-RECEIVED: the SYN-ACK goes (again) first,
     * then the FIN after it. */
    if (!tcb->syn_acknowledged && tcp_state_sends_data(tcb->state))
        tcp_output_syn(stack, tcb, now);
    if (tcp_state_sends_data(tcb->state)) {
        tcp_restart_after_idle(tcb, now);
        if (tcb->in_recovery && tcb->sack_permitted) {
            tcp_output_sack_recovery(stack, tcb, now);
        } else {
            /* RFC 3042 limited transmit: the first two duplicate ACKs each
             * let one new segment go beyond cwnd (never beyond the peer's
             * window). */
            uint32_t congestion_window = tcb->cwnd;
            if (!tcb->in_recovery && tcb->duplicate_acks > 0 && tcb->duplicate_acks < 3)
                congestion_window += tcb->duplicate_acks * (uint32_t)tcb->mss;
            uint32_t window = tcb->snd_wnd < congestion_window ? tcb->snd_wnd : congestion_window;
            while (tcp_send_new(stack, tcb, tcb->snd_una + window, now))
                ;
        }
        /* Data waiting with nothing in flight (a closed or too small
         * window): the retransmission timer doubles as the persist timer. */
        uint32_t data_end = tcp_send_base(tcb) + (uint32_t)tcb->send_buffer.length;
        if (tcb->snd_nxt == tcb->snd_una && tcb->snd_una == tcb->snd_max &&
            (seq_lt(tcb->snd_nxt, data_end) || (tcb->fin_queued && tcb->snd_nxt == data_end)) &&
            !timer_is_armed(&tcb->retransmit_timer))
            tcp_arm_retransmit(stack, tcb, now);
    }
    if (tcb->ack_now && tcb->state != TCPS_CLOSED && tcb->state != TCPS_LISTEN)
        tcp_send_ack(stack, tcb, now);
}

uint32_t tcp_retransmit_at(struct usock_stack *stack, struct tcp_connection *tcb,
                           uint32_t sequence, uint32_t limit, uint64_t now)
{
    uint32_t base = tcp_send_base(tcb);
    uint32_t data_end = base + (uint32_t)tcb->send_buffer.length;
    if (seq_lt(sequence, base))
        return 0;
    if (seq_lt(sequence, data_end)) {
        uint32_t length = data_end - sequence;
        uint32_t segment_size = tcb->mss - tcp_sack_option_bytes(tcb);
        if (length > limit)
            length = limit;
        if (length > segment_size)
            length = segment_size;
        bool with_fin = tcb->fin_queued && sequence + length == data_end &&
                        seq_gt(tcb->snd_max, data_end);
        uint8_t flags = TCP_FLAG_ACK | TCP_FLAG_PSH | (with_fin ? TCP_FLAG_FIN : 0);
        tcp_send_segment(stack, tcb, sequence, flags, sequence - base, length, now);
        tcp_sent(stack, tcb, sequence, length + (with_fin ? 1 : 0), now);
        return length + (with_fin ? 1 : 0);
    }
    if (tcb->fin_queued && sequence == data_end) {
        tcp_send_segment(stack, tcb, data_end, TCP_FLAG_FIN | TCP_FLAG_ACK, 0, 0, now);
        tcp_sent(stack, tcb, data_end, 1, now);
        return 1;
    }
    return 0;
}

/* Retransmits the first unacknowledged segment (fast retransmit, partial
 * ACKs in NewReno recovery, zero-window probes of one byte). */
void tcp_retransmit_first(struct usock_stack *stack, struct tcp_connection *tcb,
                          uint32_t limit, uint64_t now)
{
    if (!tcb->syn_acknowledged) {
        tcb->snd_nxt = tcb->iss;
        tcp_output(stack, tcb, now);
        return;
    }
    tcp_retransmit_at(stack, tcb, tcb->snd_una, limit, now);
}
