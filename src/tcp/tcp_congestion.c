/*
 * tcp_congestion.c - pluggable congestion control: Reno (RFC 5681) and
 * CUBIC (RFC 9438, the default, as on Linux), chosen per socket with
 * TCP_CONGESTION.
 *
 * The common code (tcp_input.c, tcp_sack.c, tcp_timer.c) keeps slow start,
 * fast recovery with PRR or NewReno, and the timeout's collapse to one
 * segment; an algorithm supplies two things: how the window grows in
 * congestion avoidance (cwnd >= ssthresh), and what ssthresh becomes on a
 * congestion event.  CUBIC's state is a handful of numbers in the
 * connection block; it computes in segments and seconds with doubles (the
 * cube root once per congestion event, a few multiplications per ACK).
 */
#include <math.h>
#include <string.h>

#include "tcp/tcp.h"

/* ---- Reno ---- */

static void reno_avoid_congestion(struct tcp_connection *tcb, uint32_t acknowledged,
                                  uint64_t now)
{
    (void)now;
    (void)acknowledged;
    /* About one segment per window of ACKs (RFC 5681 3.1 eq. 3). */
    uint32_t increment = (uint32_t)((uint64_t)tcb->mss * tcb->mss / tcb->cwnd);
    tcb->cwnd += increment ? increment : 1;
}

static uint32_t reno_loss(struct tcp_connection *tcb, uint64_t now)
{
    (void)now;
    /* RFC 5681 3.1 eq. 4: half the flight, at least two segments. */
    uint32_t half = (tcb->snd_max - tcb->snd_una) / 2;
    return half > 2u * tcb->mss ? half : 2u * tcb->mss;
}

/* ---- CUBIC (RFC 9438) ---- */

#define CUBIC_C 0.4    /* segments per second cubed (4.1) */
#define CUBIC_BETA 0.7 /* multiplicative decrease (4.6) */

static void cubic_start_epoch(struct tcp_connection *tcb, uint64_t now)
{
    double mss = tcb->mss;
    double cwnd = tcb->cwnd / mss;
    tcb->cubic_epoch_start = now ? now : 1;
    if (tcb->cubic_w_max < cwnd) {
        /* Above the last maximum already: the plateau is behind us. */
        tcb->cubic_k = 0;
        tcb->cubic_origin = cwnd;
    } else {
        tcb->cubic_k = cbrt((tcb->cubic_w_max - cwnd) / CUBIC_C); /* eq. 2 */
        tcb->cubic_origin = tcb->cubic_w_max;
    }
    tcb->cubic_reno_estimate = cwnd;
}

static void cubic_avoid_congestion(struct tcp_connection *tcb, uint32_t acknowledged,
                                   uint64_t now)
{
    double mss = tcb->mss;
    if (tcb->cubic_epoch_start == 0)
        cubic_start_epoch(tcb, now);
    double cwnd = tcb->cwnd / mss;
    double rtt = tcb->srtt_ns ? (double)tcb->srtt_ns / 1e9 : 0.1;
    double t = (double)(now - tcb->cubic_epoch_start) / 1e9;
    /* 4.2: the window one RTT ahead on the cubic curve, clamped to
     * [cwnd, 1.5 cwnd]. */
    double offset = t + rtt - tcb->cubic_k;
    double target = tcb->cubic_origin + CUBIC_C * offset * offset * offset;
    if (target < cwnd)
        target = cwnd;
    if (target > 1.5 * cwnd)
        target = 1.5 * cwnd;
    /* 4.3: the Reno-friendly estimate, alpha = 3 (1 - beta) / (1 + beta)
     * segments per window (1 once past the old maximum). */
    double alpha = tcb->cubic_reno_estimate >= tcb->cubic_w_max
                       ? 1.0
                       : 3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA);
    double segments_acked = acknowledged / mss;
    tcb->cubic_reno_estimate += alpha * segments_acked / cwnd;
    double next;
    if (tcb->cubic_reno_estimate > target) {
        next = tcb->cubic_reno_estimate; /* Reno-friendly region */
    } else {
        /* 4.4/4.5: concave and convex regions: (target - cwnd) / cwnd per
         * segment acknowledged. */
        next = cwnd + (target - cwnd) * segments_acked / cwnd;
    }
    double bytes = next * mss;
    if (bytes > (double)(1u << 30))
        bytes = (double)(1u << 30);
    if ((uint32_t)bytes > tcb->cwnd)
        tcb->cwnd = (uint32_t)bytes;
}

static uint32_t cubic_loss(struct tcp_connection *tcb, uint64_t now)
{
    (void)now;
    double mss = tcb->mss;
    double cwnd = tcb->cwnd / mss;
    /* 4.7 fast convergence: a maximum lower than the last one releases
     * bandwidth for newer flows. */
    if (cwnd < tcb->cubic_w_max)
        tcb->cubic_w_max = cwnd * (1.0 + CUBIC_BETA) / 2.0;
    else
        tcb->cubic_w_max = cwnd;
    tcb->cubic_epoch_start = 0; /* a new epoch starts with the next growth */
    /* 4.6: ssthresh = cwnd * beta (the flight when that is smaller, since
     * an application-limited cwnd says little), at least two segments. */
    uint32_t flight = tcb->snd_max - tcb->snd_una;
    uint32_t basis = flight < tcb->cwnd ? flight : tcb->cwnd;
    uint32_t reduced = (uint32_t)(basis * CUBIC_BETA);
    return reduced > 2u * tcb->mss ? reduced : 2u * tcb->mss;
}

static const struct tcp_congestion_ops tcp_congestion_algorithms[] = {
    {.name = "cubic", .avoid_congestion = cubic_avoid_congestion, .loss = cubic_loss},
    {.name = "reno", .avoid_congestion = reno_avoid_congestion, .loss = reno_loss},
};

const struct tcp_congestion_ops *tcp_congestion_default(void)
{
    return &tcp_congestion_algorithms[0];
}

const struct tcp_congestion_ops *tcp_congestion_find(const char *name)
{
    for (size_t i = 0; i < sizeof(tcp_congestion_algorithms) / sizeof(tcp_congestion_algorithms[0]);
         i++)
        if (strcmp(tcp_congestion_algorithms[i].name, name) == 0)
            return &tcp_congestion_algorithms[i];
    return NULL;
}

void tcp_congestion_on_loss(struct tcp_connection *tcb, uint64_t now)
{
    tcb->ssthresh = tcb->congestion->loss(tcb, now);
}

/* Whether the window is what limits the sender (RFC 7661's validated
 * window, as Linux's tcp_is_cwnd_limited): in slow start while less than
 * twice the most sent in flight over the last window, after it while that
 * reached the window.  A sender held back by the peer's window or by its
 * program would otherwise grow a window it never tests, and with it the
 * send buffer, which auto-tuning sizes from the window. */
static bool tcp_window_limits_sender(const struct tcp_connection *tcb)
{
    if (tcb->cwnd < tcb->ssthresh)
        return tcb->cwnd < 2 * tcb->flight_max;
    return tcb->flight_max + tcb->mss > tcb->cwnd;
}

void tcp_congestion_grow(struct tcp_connection *tcb, uint32_t acknowledged, uint64_t now)
{
    if (!tcp_window_limits_sender(tcb))
        return;
    if (tcb->cwnd < tcb->ssthresh) {
        /* Slow start with appropriate byte counting, L = 1 SMSS (RFC 5681
         * 3.1, RFC 3465). */
        tcb->cwnd += acknowledged < tcb->mss ? acknowledged : tcb->mss;
    } else {
        tcb->congestion->avoid_congestion(tcb, acknowledged, now);
    }
    if (tcb->cwnd > (1u << 30))
        tcb->cwnd = 1u << 30;
}
