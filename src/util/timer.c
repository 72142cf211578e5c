/*
 * timer.c - hierarchical timing wheel; see timer.h.
 *
 * Level L has 64 slots of 64^L ticks.  A timer whose deadline is d ticks
 * ahead of current_tick sits at the lowest level whose span covers d, in
 * the slot for its deadline; beyond the top level's span it waits in the
 * top level's furthest slot and is placed again when that slot comes
 * round.  The invariant that makes next() cheap: a timer at level L >= 1
 * lies 1 to 64 level-L slots ahead of current_tick's slot, so the first
 * occupied slot after the current one (one rotate and count-trailing-zeros
 * on the level's bitmap) is the earliest at that level.  Advancing jumps
 * straight to the next tick where something happens (a level-0 slot with
 * timers, or a higher slot to spread downwards), so an idle hour costs no
 * more than an idle millisecond.
 */
#include "util/timer.h"

#define SLOT_BITS 6
#define SLOT_MASK ((uint64_t)TIMER_WHEEL_SLOTS - 1)

void timer_init(struct timer *timer, timer_fire_fn fire)
{
    timer->deadline = UINT64_MAX;
    timer->next = NULL;
    timer->link = NULL;
    timer->fire = fire;
}

void timer_wheel_init(struct timer_wheel *wheel)
{
    for (int level = 0; level < TIMER_WHEEL_LEVELS; level++) {
        for (int slot = 0; slot < TIMER_WHEEL_SLOTS; slot++)
            wheel->slots[level][slot] = NULL;
        wheel->occupied[level] = 0;
    }
    wheel->current_tick = 0;
    wheel->count = 0;
    wheel->next_deadline_valid = false;
}

void timer_wheel_destroy(struct timer_wheel *wheel)
{
    for (int level = 0; level < TIMER_WHEEL_LEVELS; level++) {
        for (int slot = 0; slot < TIMER_WHEEL_SLOTS; slot++) {
            struct timer *timer = wheel->slots[level][slot];
            while (timer) {
                struct timer *next = timer->next;
                timer->next = NULL;
                timer->link = NULL;
                timer = next;
            }
        }
    }
    timer_wheel_init(wheel);
}

static uint64_t tick_of(uint64_t deadline)
{
    return deadline >> TIMER_WHEEL_TICK_SHIFT;
}

/* Links timer into the slot its deadline belongs to, relative to now. */
static void place(struct timer_wheel *wheel, struct timer *timer)
{
    uint64_t tick = tick_of(timer->deadline);
    uint64_t current = wheel->current_tick;
    int level = 0;
    uint64_t slot;
    if (tick <= current) {
        slot = current & SLOT_MASK;
    } else {
        uint64_t ahead = tick - current;
        while (level < TIMER_WHEEL_LEVELS - 1 &&
               ahead >= (uint64_t)1 << (SLOT_BITS * (level + 1)))
            level++;
        unsigned shift = SLOT_BITS * (unsigned)level;
        uint64_t slots_ahead = (tick >> shift) - (current >> shift);
        if (slots_ahead > TIMER_WHEEL_SLOTS)
            slots_ahead = TIMER_WHEEL_SLOTS; /* beyond the top level's span */
        slot = ((current >> shift) + slots_ahead) & SLOT_MASK;
    }
    struct timer **head = &wheel->slots[level][slot];
    timer->next = *head;
    if (*head)
        (*head)->link = &timer->next;
    *head = timer;
    timer->link = head;
    wheel->occupied[level] |= (uint64_t)1 << slot;
}

/* Unlinks timer; clears its slot's bit when it was the last one there. */
static void unlink_timer(struct timer_wheel *wheel, struct timer *timer)
{
    struct timer **link = timer->link;
    *link = timer->next;
    if (timer->next)
        timer->next->link = link;
    timer->next = NULL;
    timer->link = NULL;
    struct timer **first = &wheel->slots[0][0];
    struct timer **end = first + TIMER_WHEEL_LEVELS * TIMER_WHEEL_SLOTS;
    if (link >= first && link < end && *link == NULL) {
        size_t index = (size_t)(link - first);
        wheel->occupied[index / TIMER_WHEEL_SLOTS] &= ~((uint64_t)1 << (index % TIMER_WHEEL_SLOTS));
    }
}

void timer_arm(struct timer_wheel *wheel, struct timer *timer, uint64_t deadline)
{
    if (timer_is_armed(timer))
        timer_cancel(wheel, timer);
    timer->deadline = deadline;
    place(wheel, timer);
    if (wheel->count++ == 0) {
        /* Alone in the wheel: its deadline is the next, whatever an
         * earlier answer said. */
        wheel->next_deadline = deadline;
        wheel->next_deadline_valid = true;
    } else if (wheel->next_deadline_valid && deadline < wheel->next_deadline) {
        wheel->next_deadline = deadline;
    }
}

void timer_cancel(struct timer_wheel *wheel, struct timer *timer)
{
    if (!timer_is_armed(timer))
        return;
    unlink_timer(wheel, timer);
    wheel->count--;
    if (timer->deadline <= wheel->next_deadline)
        wheel->next_deadline_valid = false;
}

static uint64_t rotate_right(uint64_t bits, unsigned count)
{
    count &= 63;
    return count ? (bits >> count) | (bits << (64 - count)) : bits;
}

/* The first tick at or after current_tick where level holds timers: for
 * level 0 the tick of its first occupied slot, above it the start of the
 * first occupied slot's span.  UINT64_MAX when the level is empty. */
static uint64_t level_next_tick(const struct timer_wheel *wheel, int level)
{
    uint64_t bits = wheel->occupied[level];
    if (!bits)
        return UINT64_MAX;
    uint64_t current = wheel->current_tick;
    if (level == 0) {
        unsigned ahead = (unsigned)__builtin_ctzll(rotate_right(bits, (unsigned)(current & SLOT_MASK)));
        return current + ahead;
    }
    unsigned shift = SLOT_BITS * (unsigned)level;
    uint64_t current_slot = current >> shift;
    unsigned first = (unsigned)((current_slot + 1) & SLOT_MASK);
    uint64_t ahead = 1 + (uint64_t)__builtin_ctzll(rotate_right(bits, first));
    uint64_t slot_number = current_slot + ahead;
    if (slot_number > (UINT64_MAX >> shift))
        return UINT64_MAX;
    return slot_number << shift;
}

static uint64_t next_event_tick(const struct timer_wheel *wheel)
{
    uint64_t earliest = UINT64_MAX;
    for (int level = 0; level < TIMER_WHEEL_LEVELS; level++) {
        uint64_t tick = level_next_tick(wheel, level);
        if (tick < earliest)
            earliest = tick;
    }
    return earliest;
}

uint64_t timer_wheel_next(struct timer_wheel *wheel)
{
    if (wheel->count == 0)
        return UINT64_MAX;
    if (wheel->next_deadline_valid)
        return wheel->next_deadline;
    uint64_t next = UINT64_MAX;
    uint64_t tick = level_next_tick(wheel, 0);
    if (tick != UINT64_MAX) {
        for (const struct timer *timer = wheel->slots[0][tick & SLOT_MASK]; timer; timer = timer->next)
            if (timer->deadline < next)
                next = timer->deadline;
    }
    for (int level = 1; level < TIMER_WHEEL_LEVELS; level++) {
        tick = level_next_tick(wheel, level);
        if (tick == UINT64_MAX)
            continue;
        uint64_t start = tick > (UINT64_MAX >> TIMER_WHEEL_TICK_SHIFT)
                             ? UINT64_MAX
                             : tick << TIMER_WHEEL_TICK_SHIFT;
        if (start < next)
            next = start;
    }
    wheel->next_deadline = next;
    wheel->next_deadline_valid = true;
    return next;
}

/* Time has reached tick: every higher-level slot whose span starts here is
 * placed again, one level down or further. */
static void cascade(struct timer_wheel *wheel, uint64_t tick)
{
    for (int level = TIMER_WHEEL_LEVELS - 1; level >= 1; level--) {
        unsigned shift = SLOT_BITS * (unsigned)level;
        if (tick & (((uint64_t)1 << shift) - 1))
            continue;
        uint64_t slot = (tick >> shift) & SLOT_MASK;
        struct timer *timer = wheel->slots[level][slot];
        if (!timer)
            continue;
        wheel->slots[level][slot] = NULL;
        wheel->occupied[level] &= ~((uint64_t)1 << slot);
        while (timer) {
            struct timer *next = timer->next;
            place(wheel, timer);
            timer = next;
        }
    }
}

struct timer *timer_wheel_pop_due(struct timer_wheel *wheel, uint64_t now)
{
    uint64_t target = tick_of(now);
    for (;;) {
        if (wheel->count == 0) {
            if (target > wheel->current_tick)
                wheel->current_tick = target;
            wheel->next_deadline_valid = false;
            return NULL;
        }
        for (struct timer *timer = wheel->slots[0][wheel->current_tick & SLOT_MASK]; timer;
             timer = timer->next) {
            if (timer->deadline <= now) {
                timer_cancel(wheel, timer);
                return timer;
            }
        }
        if (wheel->current_tick >= target)
            return NULL;
        /* The current slot is empty (everything in it was due), so move
         * to the next tick where something happens, or to now. */
        uint64_t next = next_event_tick(wheel);
        if (next <= wheel->current_tick)
            next = wheel->current_tick + 1;
        if (next > target)
            next = target;
        wheel->current_tick = next;
        wheel->next_deadline_valid = false;
        cascade(wheel, next);
    }
}
