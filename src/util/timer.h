/*
 * timer.h - the stack's one timer structure: a binary min-heap of deadlines.
 *
 * Every object that needs attention later (a neighbour entry waiting for an
 * ARP reply, later TCP retransmission and TIME_WAIT) embeds a struct timer
 * and arms it with a deadline.  The stack pops due timers in its poll and
 * calls each one's fire function; the earliest deadline is the stack's next
 * deadline.  Arm, cancel and re-arm are O(log n); the heap owns no timers,
 * only an array of pointers to them.
 */
#ifndef USOCK_TIMER_H
#define USOCK_TIMER_H

#include <stddef.h>
#include <stdint.h>

struct usock_stack;
struct timer;

typedef void (*timer_fire_fn)(struct usock_stack *stack, struct timer *timer, uint64_t now);

struct timer {
    uint64_t deadline;
    size_t heap_index; /* TIMER_IDLE when not armed */
    timer_fire_fn fire;
};

#define TIMER_IDLE ((size_t)-1)

struct timer_heap {
    struct timer **entries;
    size_t count;
    size_t capacity;
};

void timer_init(struct timer *timer, timer_fire_fn fire);
static inline int timer_is_armed(const struct timer *timer)
{
    return timer->heap_index != TIMER_IDLE;
}

void timer_heap_init(struct timer_heap *heap);
void timer_heap_destroy(struct timer_heap *heap);
/* Arms (or re-arms) timer for deadline.  Returns 0 or -ENOMEM. */
int timer_arm(struct timer_heap *heap, struct timer *timer, uint64_t deadline);
/* Disarms timer if armed. */
void timer_cancel(struct timer_heap *heap, struct timer *timer);
/* Earliest deadline, or UINT64_MAX when empty. */
uint64_t timer_heap_next(const struct timer_heap *heap);
/* Removes and returns a timer whose deadline is <= now, or NULL. */
struct timer *timer_heap_pop_due(struct timer_heap *heap, uint64_t now);

#endif
