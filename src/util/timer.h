/*
 * timer.h - the stack's one timer structure: a hierarchical timing wheel.
 *
 * Every object that needs attention later (a neighbour entry waiting for an
 * ARP reply, a TCP retransmission, TIME_WAIT) embeds a struct timer and
 * arms it with a deadline in nanoseconds.  The stack pops due timers in its
 * poll and calls each one's fire function; the wheel's next deadline is the
 * stack's next deadline.
 *
 * Arm, cancel and re-arm are O(1): a timer is linked into one slot of one
 * level, chosen by how far ahead its deadline is (level 0 slots are one
 * tick of 2^16 ns, each level above is 64 times coarser, the top one
 * 52 days).  Timers move down
 * a level when time reaches their slot (cascading), so each timer moves at
 * most once per level.  Timers fire exactly: never before their deadline,
 * and a poll at or after the deadline fires them; the wheel owns no timers.
 */
#ifndef USOCK_TIMER_H
#define USOCK_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct usock_stack;
struct timer;

typedef void (*timer_fire_fn)(struct usock_stack *stack, struct timer *timer, uint64_t now);

struct timer {
    uint64_t deadline;
    struct timer *next;   /* in the slot's list */
    struct timer **link;  /* what points at this timer; NULL when not armed */
    timer_fire_fn fire;
};

#define TIMER_WHEEL_LEVELS 6
#define TIMER_WHEEL_SLOTS 64
#define TIMER_WHEEL_TICK_SHIFT 16 /* a level-0 slot is 2^16 ns, about 66 us */

struct timer_wheel {
    struct timer *slots[TIMER_WHEEL_LEVELS][TIMER_WHEEL_SLOTS];
    uint64_t occupied[TIMER_WHEEL_LEVELS]; /* bit per slot with timers */
    uint64_t current_tick;                 /* everything before it has fired */
    size_t count;
    uint64_t next_deadline; /* cached timer_wheel_next() when valid */
    bool next_deadline_valid;
};

void timer_init(struct timer *timer, timer_fire_fn fire);
static inline bool timer_is_armed(const struct timer *timer)
{
    return timer->link != NULL;
}

void timer_wheel_init(struct timer_wheel *wheel);
/* Disarms every timer still in the wheel (their owners keep them). */
void timer_wheel_destroy(struct timer_wheel *wheel);
/* Arms (or re-arms) timer for deadline; never allocates. */
void timer_arm(struct timer_wheel *wheel, struct timer *timer, uint64_t deadline);
/* Disarms timer if armed. */
void timer_cancel(struct timer_wheel *wheel, struct timer *timer);
/* When the wheel next needs a poll: the earliest deadline, or the start of
 * a coarse slot that must be spread out before it (never later than the
 * earliest deadline); UINT64_MAX when empty. */
uint64_t timer_wheel_next(struct timer_wheel *wheel);
/* Removes and returns a timer whose deadline is <= now, or NULL. */
struct timer *timer_wheel_pop_due(struct timer_wheel *wheel, uint64_t now);

#endif
