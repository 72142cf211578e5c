/*
 * tcp_syncookie.c - SYN cookies (RFC 4987 3.6), as Linux sends them: only
 * when a listener's SYN queue is full, so a SYN flood costs no memory.
 *
 * The SYN-ACK's initial sequence number carries the state a SYN-RECEIVED
 * connection would have held:
 *
 *   bits 31..27  a counter of one-minute periods (mod 32)
 *   bits 26..24  the peer's MSS, as an index into a table of common values
 *   bits 23..0   a SipHash, keyed by a secret of the stack, of the 4-tuple,
 *                the peer's ISN, the counter and the MSS index
 *
 * With timestamps, the low 6 bits of our TSval carry the peer's window
 * scale (0xf: none) and SACK-permitted, and come back in TSecr.  Without
 * them a cookie connection has neither, as on Linux.  An ACK to a listener
 * is taken as a cookie's answer only while cookies were sent in the last
 * two periods; it must echo a cookie of this period or the two before, and
 * the hash must match.  The checks cost a hash, nothing is stored.
 */
#include <string.h>

#include "stack.h"
#include "tcp/tcp.h"
#include "tcp/tcp_sequence.h"
#include "util/siphash.h"

#define COOKIE_PERIOD_NS (60ULL * 1000 * 1000 * 1000)
#define COOKIE_MAX_AGE 2 /* periods a cookie stays valid after its own */
#define COOKIE_OPTION_BITS 6
#define COOKIE_OPTION_MASK ((1u << COOKIE_OPTION_BITS) - 1)
#define COOKIE_NO_WINDOW_SCALE 0xf
#define COOKIE_SACK_BIT 0x10

/* The MSS a cookie can say: the largest entry not above the peer's. */
static const uint16_t cookie_mss_table[8] = {536, 1024, 1220, 1300, 1440, 1460, 8960, 65495};

struct cookie_input {
    uint32_t local_address, peer_address;
    uint16_t local_port, peer_port;
    uint32_t peer_isn;
    uint32_t period;
    uint32_t mss_index;
};

static uint32_t cookie_hash(const struct usock_stack *stack, const struct cookie_input *input)
{
    uint8_t key[16];
    memcpy(key, stack->secret, sizeof(key));
    key[15] ^= 0xc0; /* a key of its own, unrelated to ISNs and ports */
    return (uint32_t)siphash24(key, input, sizeof(*input)) & 0xffffff;
}

uint32_t tcp_syncookie_make(struct usock_stack *stack, uint32_t local_address, uint16_t local_port,
                            uint32_t peer_address, uint16_t peer_port, uint32_t peer_isn,
                            uint16_t peer_mss, uint64_t now)
{
    uint32_t mss_index = 0;
    for (uint32_t i = 0; i < 8; i++)
        if (cookie_mss_table[i] <= peer_mss)
            mss_index = i;
    struct cookie_input input = {
        .local_address = local_address, .peer_address = peer_address,
        .local_port = local_port,       .peer_port = peer_port,
        .peer_isn = peer_isn,           .period = (uint32_t)(now / COOKIE_PERIOD_NS),
        .mss_index = mss_index,
    };
    stack->tcp.last_cookie_period = input.period;
    stack->tcp.cookies_sent = true;
    return (input.period & 31) << 27 | mss_index << 24 | cookie_hash(stack, &input);
}

bool tcp_syncookie_check(const struct usock_stack *stack, uint32_t local_address,
                         uint16_t local_port, uint32_t peer_address, uint16_t peer_port,
                         uint32_t peer_isn, uint32_t cookie, uint64_t now, uint16_t *peer_mss)
{
    if (!stack->tcp.cookies_sent)
        return false;
    uint32_t period_now = (uint32_t)(now / COOKIE_PERIOD_NS);
    if (period_now - stack->tcp.last_cookie_period > COOKIE_MAX_AGE)
        return false;
    struct cookie_input input = {
        .local_address = local_address, .peer_address = peer_address,
        .local_port = local_port,       .peer_port = peer_port,
        .peer_isn = peer_isn,           .mss_index = cookie >> 24 & 7,
    };
    for (uint32_t age = 0; age <= COOKIE_MAX_AGE && age <= period_now; age++) {
        input.period = period_now - age;
        if ((input.period & 31) != cookie >> 27)
            continue;
        if (cookie_hash(stack, &input) == (cookie & 0xffffff)) {
            *peer_mss = cookie_mss_table[input.mss_index];
            return true;
        }
    }
    return false;
}

uint32_t tcp_syncookie_timestamp(uint32_t clock_value, const struct tcp_options *syn_options)
{
    uint32_t options = syn_options->has_window_scale
                           ? (syn_options->window_scale > TCP_WINDOW_SHIFT_MAX
                                  ? TCP_WINDOW_SHIFT_MAX
                                  : syn_options->window_scale)
                           : COOKIE_NO_WINDOW_SCALE;
    if (syn_options->sack_permitted)
        options |= COOKIE_SACK_BIT;
    uint32_t value = (clock_value & ~COOKIE_OPTION_MASK) | options;
    /* Never ahead of our clock, or the peer's PAWS would later refuse
     * our real timestamps for a few milliseconds. */
    if (seq_gt(value, clock_value))
        value -= 1u << COOKIE_OPTION_BITS;
    return value;
}

void tcp_syncookie_options(uint32_t echoed, bool *window_scaling, uint8_t *window_shift,
                           bool *sack_permitted)
{
    uint32_t scale = echoed & COOKIE_NO_WINDOW_SCALE;
    *window_scaling = scale != COOKIE_NO_WINDOW_SCALE;
    *window_shift = *window_scaling ? (uint8_t)scale : 0;
    *sack_permitted = (echoed & COOKIE_SACK_BIT) != 0;
}
