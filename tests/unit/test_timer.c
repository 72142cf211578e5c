/*
 * test_timer.c - the timing wheel against a plain list of deadlines: under
 * random arming, re-arming, cancelling and time jumps from nanoseconds to
 * years, every timer fires exactly once, never before its deadline and at
 * the first poll at or after it; next() never names a time later than the
 * earliest deadline, and after a poll it names a time after now, so a
 * stack that sleeps until next() neither oversleeps nor spins.
 */
#include <stdint.h>

#include "check.h"
#include "util/random.h"
#include "util/timer.h"

#define TIMER_COUNT 512
#define NS_PER_MS 1000000ull

static unsigned fired[TIMER_COUNT];

static void count_fire(struct usock_stack *stack, struct timer *timer, uint64_t now)
{
    (void)stack;
    (void)now;
    (void)timer;
}

static void test_fires_exactly_at_the_deadline(void)
{
    struct timer_wheel wheel;
    timer_wheel_init(&wheel);
    struct timer timer;
    timer_init(&timer, count_fire);
    uint64_t start = 5 * NS_PER_MS + 12345;
    CHECK(timer_wheel_pop_due(&wheel, start) == NULL);
    const uint64_t delays[] = {0, 1, 999, NS_PER_MS, 40 * NS_PER_MS + 7, 200 * NS_PER_MS,
                               7000 * NS_PER_MS + 3, 3600000ull * NS_PER_MS,
                               (uint64_t)1 << 57};
    uint64_t now = start;
    for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
        uint64_t deadline = now + delays[i];
        timer_arm(&wheel, &timer, deadline);
        CHECK(timer_is_armed(&timer));
        CHECK(timer_wheel_next(&wheel) <= deadline);
        if (delays[i] > 0) {
            /* Sleeping until next() and polling then never fires early. */
            /* A few wakes to spread coarse slots downwards, and beyond
             * the top level's span one per turn of it. */
            uint64_t wakes_allowed = 16 + (delays[i] >> 46);
            for (uint64_t wakes = 0; now < deadline - 1; wakes++) {
                CHECK(wakes < wakes_allowed);
                uint64_t next = timer_wheel_next(&wheel);
                CHECK(next > now);
                now = next < deadline - 1 ? next : deadline - 1;
                CHECK(timer_wheel_pop_due(&wheel, now) == NULL);
            }
        }
        now = deadline;
        CHECK(timer_wheel_pop_due(&wheel, now) == &timer);
        CHECK(!timer_is_armed(&timer));
        CHECK(timer_wheel_pop_due(&wheel, now) == NULL);
        CHECK_EQ(timer_wheel_next(&wheel), UINT64_MAX);
    }
    timer_wheel_destroy(&wheel);
}

/* A random delay whose size ranges from nanoseconds to about a year. */
static uint64_t random_delay(struct random_state *random)
{
    unsigned bits = (unsigned)random_below(random, 55);
    return random_below(random, ((uint64_t)1 << bits) + 1);
}

static void test_random_operations_agree_with_a_list(void)
{
    static struct timer timers[TIMER_COUNT];
    static uint64_t deadline[TIMER_COUNT];
    static int armed[TIMER_COUNT];
    struct random_state random;
    random_seed(&random, 20261207);
    struct timer_wheel wheel;
    timer_wheel_init(&wheel);
    for (int i = 0; i < TIMER_COUNT; i++) {
        timer_init(&timers[i], count_fire);
        armed[i] = 0;
        fired[i] = 0;
    }
    uint64_t now = random_below(&random, (uint64_t)1 << 50);
    size_t fires = 0;
    for (int round = 0; round < 200000; round++) {
        unsigned action = (unsigned)random_below(&random, 10);
        int index = (int)random_below(&random, TIMER_COUNT);
        if (action < 5) {
            deadline[index] = now + random_delay(&random);
            timer_arm(&wheel, &timers[index], deadline[index]);
            armed[index] = 1;
        } else if (action < 7) {
            timer_cancel(&wheel, &timers[index]);
            armed[index] = 0;
        } else {
            uint64_t next = timer_wheel_next(&wheel);
            uint64_t earliest = UINT64_MAX;
            for (int i = 0; i < TIMER_COUNT; i++)
                if (armed[i] && deadline[i] < earliest)
                    earliest = deadline[i];
            CHECK(next <= earliest);
            /* Jump to next(), or by a random amount, or to the earliest. */
            if (action == 7 && next != UINT64_MAX)
                now = next > now ? next : now;
            else if (action == 8)
                now += random_delay(&random);
            else if (earliest != UINT64_MAX)
                now = earliest > now ? earliest : now;
            struct timer *timer;
            while ((timer = timer_wheel_pop_due(&wheel, now))) {
                int i = (int)(timer - timers);
                CHECK(i >= 0 && i < TIMER_COUNT);
                CHECK(armed[i]);
                CHECK(deadline[i] <= now);
                CHECK(!timer_is_armed(timer));
                armed[i] = 0;
                fired[i]++;
                fires++;
            }
            for (int i = 0; i < TIMER_COUNT; i++) {
                CHECK_EQ(timer_is_armed(&timers[i]), armed[i]);
                if (armed[i])
                    CHECK(deadline[i] > now);
            }
            CHECK(timer_wheel_next(&wheel) > now);
        }
    }
    CHECK(fires > 10000);
    timer_wheel_destroy(&wheel);
    for (int i = 0; i < TIMER_COUNT; i++)
        CHECK(!timer_is_armed(&timers[i]));
}

static void test_many_timers_in_one_slot_fire_in_any_order_but_all(void)
{
    static struct timer timers[TIMER_COUNT];
    struct timer_wheel wheel;
    timer_wheel_init(&wheel);
    uint64_t base = 10 * NS_PER_MS;
    for (int i = 0; i < TIMER_COUNT; i++) {
        timer_init(&timers[i], count_fire);
        timer_arm(&wheel, &timers[i], base + (uint64_t)(i * 997) % 1000);
    }
    CHECK(timer_wheel_next(&wheel) <= base);
    size_t popped = 0;
    for (uint64_t now = base; now < base + 1000; now++) {
        struct timer *timer;
        while ((timer = timer_wheel_pop_due(&wheel, now))) {
            CHECK(timer->deadline == now);
            popped++;
        }
    }
    CHECK_EQ(popped, TIMER_COUNT);
    CHECK_EQ(timer_wheel_next(&wheel), UINT64_MAX);
}

/* Found by fuzz_frames: next() had cached a coarse slot's start as a lower
 * bound; the timer behind it was cancelled, time moved on over an empty
 * wheel, and a later timer kept the stale answer, so next() named a time
 * in the past for ever (a stack thread would spin). */
static void test_next_is_never_stale_after_the_wheel_empties(void)
{
    struct timer_wheel wheel;
    timer_wheel_init(&wheel);
    struct timer far, later;
    timer_init(&far, count_fire);
    timer_init(&later, count_fire);
    uint64_t now = 1000;
    timer_arm(&wheel, &far, now + 10 * NS_PER_MS * 1000); /* 10 s: a coarse level */
    uint64_t bound = timer_wheel_next(&wheel);
    CHECK(bound <= now + 10 * NS_PER_MS * 1000);
    timer_cancel(&wheel, &far);
    now += 20 * NS_PER_MS * 1000;
    CHECK(timer_wheel_pop_due(&wheel, now) == NULL);
    timer_arm(&wheel, &later, now + 5 * NS_PER_MS);
    CHECK(timer_wheel_next(&wheel) > now);
    CHECK(timer_wheel_next(&wheel) <= now + 5 * NS_PER_MS);
    /* The same when the wheel empties by cancelling, without a poll. */
    timer_cancel(&wheel, &later);
    timer_arm(&wheel, &far, now + 10 * NS_PER_MS * 1000);
    CHECK(timer_wheel_next(&wheel) > now);
    timer_wheel_destroy(&wheel);
}

static const struct check_test tests[] = {
    CHECK_TEST(test_next_is_never_stale_after_the_wheel_empties),
    CHECK_TEST(test_fires_exactly_at_the_deadline),
    CHECK_TEST(test_random_operations_agree_with_a_list),
    CHECK_TEST(test_many_timers_in_one_slot_fire_in_any_order_but_all),
};

CHECK_MAIN(tests)
