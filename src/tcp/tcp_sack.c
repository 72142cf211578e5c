/*
 * tcp_sack.c - selective acknowledgment (RFC 2018, D-SACK RFC 2883) and
 * SACK-based loss recovery (RFC 6675) with Proportional Rate Reduction
 * (RFC 6937).
 *
 * Receiver side: the out-of-order list already holds what arrived beyond a
 * hole; the SACK blocks of an outgoing ACK are its contiguous runs, the run
 * holding the most recent arrival first and then the runs reported most
 * recently (RFC 2018 4), up to what fits in the header.  A duplicate
 * segment (below rcv_nxt, or already held out of order) is reported once,
 * as a D-SACK block ahead of the others (RFC 2883 4).
 *
 * Sender side: the scoreboard is a sorted array of disjoint SACKed ranges
 * above snd_una, allocated on the first SACK of a connection and bounded at
 * TCP_SCOREBOARD_RANGES: when a hostile receiver fragments it further, the
 * highest ranges are forgotten, which only makes us retransmit more.  Every
 * operation is linear in that bound, so a SACK storm costs a fixed amount
 * per ACK (the "SACK panic" class).  Blocks are checked before use: inside
 * (snd_una, snd_max], left below right; the rest are counted and ignored.
 * A timeout forgets the scoreboard (the receiver may renege, RFC 2018 8).
 *
 * Recovery: entered on the DupThresh-th duplicate ACK or when the
 * scoreboard says the first unacknowledged byte is lost (RFC 6675 IsLost:
 * more than (DupThresh - 1) * SMSS, or DupThresh discontiguous ranges,
 * SACKed above it); DupThresh is the connection's reordering (3).  While
 * in it,
 * each ACK updates the congestion window by PRR from the bytes it
 * delivered, and tcp_output sends NextSeg while pipe (bytes believed in
 * the network) allows: lost holes first, then new data, then the other
 * holes.
 */
#include <stdlib.h>
#include <string.h>

#include "stack.h"
#include "tcp/tcp.h"
#include "tcp/tcp_sequence.h"

/* ---- receiver: the blocks we send ---- */

void tcp_sack_note_arrival(struct tcp_connection *tcb, uint32_t sequence)
{
    /* Most recent first; a repeat of a run already listed moves it to the
     * front when the blocks are built (the runs are matched then). */
    memmove(&tcb->sack_recent[1], &tcb->sack_recent[0],
            sizeof(tcb->sack_recent) - sizeof(tcb->sack_recent[0]));
    tcb->sack_recent[0] = sequence;
    if (tcb->sack_recent_count < TCP_SACK_RECENT)
        tcb->sack_recent_count++;
}

void tcp_sack_note_duplicate(struct tcp_connection *tcb, uint32_t left, uint32_t right)
{
    if (!tcb->sack_permitted || !seq_lt(left, right))
        return;
    tcb->dsack_pending = true;
    tcb->dsack_block.left = left;
    tcb->dsack_block.right = right;
}

/* The contiguous run of out-of-order data holding sequence, if any. */
static bool tcp_out_of_order_run(const struct tcp_connection *tcb, uint32_t sequence,
                                 struct tcp_sack_block *run)
{
    const struct tcp_out_of_order *entry = tcb->out_of_order;
    while (entry) {
        uint32_t left = entry->sequence;
        uint32_t right = entry->sequence + entry->length;
        while (entry->next && entry->next->sequence == right) {
            entry = entry->next;
            right += entry->length;
        }
        if (seq_geq(sequence, left) && seq_lt(sequence, right)) {
            run->left = left;
            run->right = right;
            return true;
        }
        entry = entry->next;
    }
    return false;
}

/* Whether a run starting at left is listed already (a D-SACK block in
 * front, first_run == 1, does not count: RFC 2883 4.1.2 repeats the run). */
static bool tcp_block_listed(const struct tcp_options *options, unsigned first_run,
                             uint32_t left)
{
    for (unsigned i = first_run; i < options->sack_block_count; i++)
        if (options->sack_blocks[i].left == left)
            return true;
    return false;
}

static void tcp_block_add(struct tcp_options *options, unsigned first_run, uint32_t left,
                          uint32_t right)
{
    if (options->sack_block_count >= TCP_SACK_BLOCKS_MAX ||
        tcp_block_listed(options, first_run, left))
        return;
    options->sack_blocks[options->sack_block_count].left = left;
    options->sack_blocks[options->sack_block_count].right = right;
    options->sack_block_count++;
}

void tcp_sack_fill_blocks(struct usock_stack *stack, struct tcp_connection *tcb,
                          struct tcp_options *options)
{
    options->sack_block_count = 0;
    if (!tcb->sack_permitted)
        return;
    unsigned first_run = 0;
    if (tcb->dsack_pending) {
        tcp_block_add(options, 0, tcb->dsack_block.left, tcb->dsack_block.right);
        first_run = 1;
        tcb->dsack_pending = false;
        COUNT(stack, TcpDsackSent);
    }
    if (!tcb->out_of_order)
        return;
    for (unsigned i = 0; i < tcb->sack_recent_count; i++) {
        struct tcp_sack_block run;
        if (tcp_out_of_order_run(tcb, tcb->sack_recent[i], &run))
            tcp_block_add(options, first_run, run.left, run.right);
    }
    /* Then any run not recently reported, in sequence order. */
    const struct tcp_out_of_order *entry = tcb->out_of_order;
    while (entry && options->sack_block_count < TCP_SACK_BLOCKS_MAX) {
        uint32_t left = entry->sequence;
        uint32_t right = entry->sequence + entry->length;
        while (entry->next && entry->next->sequence == right) {
            entry = entry->next;
            right += entry->length;
        }
        tcp_block_add(options, first_run, left, right);
        entry = entry->next;
    }
    if (options->sack_block_count)
        COUNT(stack, TcpSackBlocksSent);
}

uint32_t tcp_sack_option_bytes(const struct tcp_connection *tcb)
{
    if (!tcb->sack_permitted || (!tcb->out_of_order && !tcb->dsack_pending))
        return 0;
    /* At most what fits beside the timestamps: 3 blocks, or 4 without. */
    uint32_t room = 40 - tcp_fixed_option_bytes(tcb);
    uint32_t blocks = (room - 4) / 8;
    if (blocks > TCP_SACK_BLOCKS_MAX)
        blocks = TCP_SACK_BLOCKS_MAX;
    return 4 + 8 * blocks;
}

/* ---- sender: the scoreboard ---- */

void tcp_sack_forget(struct tcp_connection *tcb)
{
    free(tcb->scoreboard);
    tcb->scoreboard = NULL;
}

uint32_t tcp_sack_sacked_bytes(const struct tcp_connection *tcb)
{
    return tcb->scoreboard ? tcb->scoreboard->sacked_bytes : 0;
}

/* Drops what snd_una has passed. */
static void tcp_scoreboard_advance(struct tcp_scoreboard *board, uint32_t snd_una)
{
    unsigned kept = 0;
    board->sacked_bytes = 0;
    for (unsigned i = 0; i < board->count; i++) {
        struct tcp_sack_block range = board->ranges[i];
        if (seq_leq(range.right, snd_una))
            continue;
        if (seq_lt(range.left, snd_una))
            range.left = snd_una;
        board->ranges[kept++] = range;
        board->sacked_bytes += range.right - range.left;
    }
    board->count = kept;
}

/* Merges [left, right) in; returns the bytes newly SACKed. */
static uint32_t tcp_scoreboard_insert(struct tcp_scoreboard *board, uint32_t left, uint32_t right)
{
    uint32_t before = board->sacked_bytes;
    /* Absorb every range that overlaps or touches the new one. */
    unsigned kept = 0;
    uint32_t sacked = 0;
    for (unsigned i = 0; i < board->count; i++) {
        struct tcp_sack_block range = board->ranges[i];
        if (seq_leq(range.left, right) && seq_geq(range.right, left)) {
            if (seq_lt(range.left, left))
                left = range.left;
            if (seq_gt(range.right, right))
                right = range.right;
            continue;
        }
        board->ranges[kept++] = range;
        sacked += range.right - range.left;
    }
    board->count = kept;
    /* Insert in order; when full, the highest range gives way. */
    unsigned position = 0;
    while (position < board->count && seq_lt(board->ranges[position].left, left))
        position++;
    if (board->count == TCP_SCOREBOARD_RANGES) {
        if (position == board->count) {
            board->sacked_bytes = sacked;
            return 0;
        }
        board->count--;
        sacked -= board->ranges[board->count].right - board->ranges[board->count].left;
    }
    memmove(&board->ranges[position + 1], &board->ranges[position],
            (board->count - position) * sizeof(board->ranges[0]));
    board->ranges[position].left = left;
    board->ranges[position].right = right;
    board->count++;
    board->sacked_bytes = sacked + (right - left);
    return board->sacked_bytes > before ? board->sacked_bytes - before : 0;
}

uint32_t tcp_sack_update(struct usock_stack *stack, struct tcp_connection *tcb,
                         const struct tcp_options *options, uint32_t ack)
{
    uint32_t newly_sacked = 0;
    if (tcb->scoreboard)
        tcp_scoreboard_advance(tcb->scoreboard, ack);
    if (!tcb->sack_permitted)
        return 0;
    for (unsigned i = 0; i < options->sack_block_count; i++) {
        uint32_t left = options->sack_blocks[i].left;
        uint32_t right = options->sack_blocks[i].right;
        if (!seq_lt(left, right) || seq_gt(right, tcb->snd_max) ||
            right - left > (1u << 30)) {
            COUNT(stack, TcpSackDiscard);
            continue;
        }
        if (seq_leq(right, ack)) {
            /* RFC 2883: a block below the ACK reports a duplicate. */
            COUNT(stack, TcpDsackReceived);
            continue;
        }
        if (i == 0 && options->sack_block_count > 1 &&
            seq_geq(left, options->sack_blocks[1].left) &&
            seq_leq(right, options->sack_blocks[1].right)) {
            COUNT(stack, TcpDsackReceived); /* inside the second: a D-SACK */
            continue;
        }
        if (seq_lt(left, ack))
            left = ack;
        if (!tcb->scoreboard) {
            tcb->scoreboard = calloc(1, sizeof(*tcb->scoreboard));
            if (!tcb->scoreboard)
                return newly_sacked;
        }
        newly_sacked += tcp_scoreboard_insert(tcb->scoreboard, left, right);
    }
    return newly_sacked;
}

/* RFC 6675 IsLost for the hole ending at hole_end, given the ranges above
 * it: more than (DupThresh - 1) * SMSS bytes, or DupThresh ranges. */
static bool tcp_hole_lost(const struct tcp_connection *tcb, uint32_t sacked_above,
                          unsigned ranges_above)
{
    return sacked_above > (tcb->reordering - 1) * (uint32_t)tcb->mss ||
           ranges_above >= tcb->reordering;
}

bool tcp_sack_first_lost(const struct tcp_connection *tcb)
{
    const struct tcp_scoreboard *board = tcb->scoreboard;
    if (!board || board->count == 0)
        return false;
    return tcp_hole_lost(tcb, board->sacked_bytes, board->count);
}

uint32_t tcp_sack_pipe(const struct tcp_connection *tcb)
{
    /* RFC 6675 SetPipe, per hole: a hole not lost counts once; the part of
     * it retransmitted (below high_rxt) counts again. */
    const struct tcp_scoreboard *board = tcb->scoreboard;
    uint32_t pipe = 0;
    uint32_t hole_end = tcb->snd_max;
    uint32_t sacked_above = 0;
    unsigned ranges_above = 0;
    unsigned index = board ? board->count : 0;
    for (;;) {
        uint32_t hole_start = index > 0 ? board->ranges[index - 1].right : tcb->snd_una;
        if (seq_lt(hole_start, tcb->snd_una))
            hole_start = tcb->snd_una;
        if (seq_lt(hole_start, hole_end)) {
            if (!tcp_hole_lost(tcb, sacked_above, ranges_above))
                pipe += hole_end - hole_start;
            if (seq_gt(tcb->high_rxt, hole_start)) {
                uint32_t retransmitted_end = seq_lt(tcb->high_rxt, hole_end) ? tcb->high_rxt
                                                                             : hole_end;
                pipe += retransmitted_end - hole_start;
            }
        }
        if (index == 0)
            break;
        index--;
        sacked_above += board->ranges[index].right - board->ranges[index].left;
        ranges_above++;
        hole_end = board->ranges[index].left;
    }
    return pipe;
}

bool tcp_sack_next_hole(const struct tcp_connection *tcb, bool lost_only, uint32_t *sequence,
                        uint32_t *length)
{
    /* RFC 6675 NextSeg rules 1 and 3: the lowest unSACKed byte at or above
     * high_rxt and below the highest SACKed one (lost ones only for 1). */
    const struct tcp_scoreboard *board = tcb->scoreboard;
    if (!board || board->count == 0)
        return false;
    uint32_t sacked_above = board->sacked_bytes;
    uint32_t hole_start = tcb->snd_una;
    for (unsigned i = 0; i < board->count; i++) {
        uint32_t hole_end = board->ranges[i].left;
        unsigned ranges_above = board->count - i;
        uint32_t start = seq_gt(tcb->high_rxt, hole_start) ? tcb->high_rxt : hole_start;
        if (seq_lt(start, hole_end) &&
            (!lost_only || tcp_hole_lost(tcb, sacked_above, ranges_above))) {
            *sequence = start;
            *length = hole_end - start;
            return true;
        }
        sacked_above -= board->ranges[i].right - board->ranges[i].left;
        hole_start = board->ranges[i].right;
    }
    return false;
}

/* ---- recovery ---- */

void tcp_undo_arm(struct tcp_connection *tcb, bool after_timeout, uint64_t now)
{
    if (tcb->undo_armed)
        return; /* the episode's first retransmission is what counts */
    tcb->undo_armed = tcb->timestamps;
    tcb->undo_after_timeout = after_timeout;
    tcb->undo_timestamp = tcp_timestamp_now(tcb, now);
    tcb->prior_cwnd = tcb->cwnd;
    tcb->prior_ssthresh = tcb->ssthresh;
    tcb->prior_cubic_w_max = tcb->cubic_w_max;
}

void tcp_sack_enter_recovery(struct usock_stack *stack, struct tcp_connection *tcb,
                             uint64_t now)
{
    tcp_undo_arm(tcb, false, now);
    /* RFC 6675 5 step 4 with RFC 6937: ssthresh from the flight, PRR from
     * here on. */
    uint32_t flight = tcb->snd_max - tcb->snd_una;
    tcp_congestion_on_loss(tcb, now);
    tcb->recover = tcb->snd_max;
    tcb->in_recovery = true;
    tcb->high_rxt = tcb->snd_una;
    tcb->retransmit_round_end = tcb->snd_max;
    tcb->prr_delivered = 0;
    tcb->prr_out = 0;
    tcb->recover_flight = flight ? flight : 1;
    tcb->rtt_measuring = false;
    tcb->total_retransmits++;
    COUNT(stack, TcpFastRetrans);
    COUNT(stack, TcpSackRecoveries);
    tcb->cwnd = tcb->ssthresh;
    /* The first unacknowledged segment is presumed lost whatever the
     * scoreboard says (RFC 6675 5 step 4.3): resend it now. */
    uint32_t limit = tcb->mss;
    if (tcb->scoreboard && tcb->scoreboard->count > 0 &&
        tcb->scoreboard->ranges[0].left - tcb->snd_una < limit)
        limit = tcb->scoreboard->ranges[0].left - tcb->snd_una;
    uint32_t sent = tcp_retransmit_at(stack, tcb, tcb->snd_una, limit, now);
    tcb->high_rxt = tcb->snd_una + sent;
    tcb->prr_out += sent;
}

void tcp_sack_check_lost_retransmits(struct usock_stack *stack, struct tcp_connection *tcb)
{
    /* Data first sent after this round of resends began is SACKed, more
     * than DupThresh segments of it, yet snd_una still sits in a hole we
     * resent: that resend was lost too (Linux's lost-retransmit marking,
     * RACK's idea without per-segment times).  Start a new round from
     * snd_una; IsLost picks the holes again. */
    const struct tcp_scoreboard *board = tcb->scoreboard;
    if (!tcb->in_recovery || !board || board->count == 0 || !seq_gt(tcb->high_rxt, tcb->snd_una))
        return;
    uint32_t highest_sacked = board->ranges[board->count - 1].right;
    uint32_t margin = (tcb->reordering - 1) * (uint32_t)tcb->mss;
    if (!seq_gt(highest_sacked, tcb->retransmit_round_end + margin))
        return;
    COUNT(stack, TcpLostRetransmit);
    tcb->high_rxt = tcb->snd_una;
    tcb->retransmit_round_end = tcb->snd_max;
}

void tcp_sack_on_ack(struct tcp_connection *tcb, uint32_t delivered)
{
    /* RFC 6937 3: PRR, with the slow-start reduction bound (PRR-SSRB). */
    tcb->prr_delivered += delivered;
    uint32_t pipe = tcp_sack_pipe(tcb);
    uint64_t send_count;
    if (pipe > tcb->ssthresh) {
        uint64_t target = ((uint64_t)tcb->prr_delivered * tcb->ssthresh + tcb->recover_flight - 1) /
                          tcb->recover_flight;
        send_count = target > tcb->prr_out ? target - tcb->prr_out : 0;
    } else {
        uint64_t limit = tcb->prr_delivered > tcb->prr_out ? tcb->prr_delivered - tcb->prr_out : 0;
        if (limit < delivered)
            limit = delivered;
        limit += tcb->mss;
        uint64_t room = tcb->ssthresh - pipe;
        send_count = room < limit ? room : limit;
    }
    tcb->cwnd = pipe + (uint32_t)send_count;
    if (tcb->cwnd < tcb->mss && pipe == 0)
        tcb->cwnd = tcb->mss; /* never stall with nothing in flight */
}
