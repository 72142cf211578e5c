/*
 * test_link_impair.c - the impairment link: spec parsing, and each
 * impairment's effect on frames crossing an in-memory wire, with time
 * advanced explicitly.
 *
 * The impaired link is end a of a mem pair; end b is the far side, driven
 * by the test.  Frames carry their number in the first four bytes.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "link/link.h"
#include "usock.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#define MS 1000000ull
#define FRAME_LENGTH 64

static int open_descriptor_count(void)
{
    int count = 0;
    DIR *directory = opendir("/proc/self/fd");
    CHECK(directory != NULL);
    while (readdir(directory) != NULL)
        count++;
    closedir(directory);
    return count;
}

static void check_nothing_leaked(int descriptors_before)
{
    CHECK_EQ(open_descriptor_count(), descriptors_before);
#if defined(__SANITIZE_ADDRESS__)
    CHECK_EQ(__lsan_do_recoverable_leak_check(), 0);
#endif
}

static int close_to(double actual, double expected)
{
    return fabs(actual - expected) < 1e-12;
}

static void make_frame(uint8_t *frame, uint32_t number)
{
    for (size_t i = 0; i < FRAME_LENGTH; i++)
        frame[i] = (uint8_t)(number * 7 + i);
    memcpy(frame, &number, 4);
}

static uint32_t frame_number(const uint8_t *frame)
{
    uint32_t number;
    memcpy(&number, frame, 4);
    return number;
}

/* Makes impaired (wrapping end a) and far (end b) from a spec. */
static void make_impaired_pair(const char *spec, struct usock_link **impaired, struct usock_link **far)
{
    struct usock_impairment impairment;
    char error[128];
    struct usock_link *near;
    CHECK_EQ(usock_impairment_parse(spec, &impairment, error, sizeof(error)), 0);
    CHECK_EQ(usock_link_mem_pair(&near, far), 0);
    CHECK_EQ(usock_link_impair(near, &impairment, impaired), 0);
}

static void send_numbered(struct usock_link *link, uint32_t number, uint64_t now)
{
    uint8_t frame[FRAME_LENGTH];
    make_frame(frame, number);
    CHECK_EQ(usock_link_send(link, frame, sizeof(frame), now), 0);
}

/* Receives one frame and returns its number, or -1 when none waits. */
static long receive_number(struct usock_link *link, uint64_t now)
{
    uint8_t buffer[LINK_FRAME_MAX];
    ssize_t got = usock_link_receive(link, buffer, sizeof(buffer), now);
    if (got == -EAGAIN)
        return -1;
    CHECK_EQ(got, FRAME_LENGTH);
    return frame_number(buffer);
}

static void test_parse_reads_every_item(void)
{
    struct usock_impairment impairment;
    char error[128];
    CHECK_EQ(usock_impairment_parse("loss=2%,dup=1%,reorder=10%,corrupt=0.1%,delay=2ms,jitter=1ms,seed=42",
                                    &impairment, error, sizeof(error)), 0);
    CHECK(close_to(impairment.loss, 0.02));
    CHECK(close_to(impairment.duplicate, 0.01));
    CHECK(close_to(impairment.reorder, 0.10));
    CHECK(close_to(impairment.corrupt, 0.001));
    CHECK_EQ(impairment.delay_ns, 2 * MS);
    CHECK_EQ(impairment.jitter_ns, 1 * MS);
    CHECK_EQ(impairment.seed, 42);
    CHECK_EQ(error[0], '\0');
}

static void test_parse_bare_numbers_and_units(void)
{
    struct usock_impairment impairment;
    CHECK_EQ(usock_impairment_parse("loss=2,delay=3", &impairment, NULL, 0), 0);
    CHECK(close_to(impairment.loss, 0.02));
    CHECK_EQ(impairment.delay_ns, 3 * MS);
    CHECK_EQ(usock_impairment_parse("delay=5us,jitter=1.5ms", &impairment, NULL, 0), 0);
    CHECK_EQ(impairment.delay_ns, 5000);
    CHECK_EQ(impairment.jitter_ns, 1500000);
    CHECK_EQ(usock_impairment_parse("delay=1s, jitter=100ns ,duplicate=100%,loss=0", &impairment,
                                    NULL, 0), 0);
    CHECK_EQ(impairment.delay_ns, 1000000000ull);
    CHECK_EQ(impairment.jitter_ns, 100);
    CHECK(close_to(impairment.duplicate, 1.0));
    CHECK(close_to(impairment.loss, 0.0));
    CHECK_EQ(usock_impairment_parse("seed=0x10,corrupt=100", &impairment, NULL, 0), 0);
    CHECK_EQ(impairment.seed, 16);
    CHECK(close_to(impairment.corrupt, 1.0));
}

static void test_parse_empty_spec_is_no_impairment(void)
{
    struct usock_impairment impairment;
    memset(&impairment, 0xab, sizeof(impairment));
    CHECK_EQ(usock_impairment_parse("", &impairment, NULL, 0), 0);
    CHECK(impairment.loss == 0 && impairment.duplicate == 0 && impairment.reorder == 0 &&
          impairment.corrupt == 0);
    CHECK_EQ(impairment.delay_ns, 0);
    CHECK_EQ(impairment.jitter_ns, 0);
    CHECK_EQ(impairment.seed, 0);
    memset(&impairment, 0xab, sizeof(impairment));
    CHECK_EQ(usock_impairment_parse(NULL, &impairment, NULL, 0), 0);
    CHECK_EQ(impairment.delay_ns, 0);
}

static void test_parse_rejects_bad_items(void)
{
    static const char *const bad[] = {
        "foo=1", "loss=101%", "loss=-1", "loss=abc", "loss=", "loss", "loss=2%%",
        "delay=5parsecs", "delay=-1ms", "delay=ms", "jitter=2h", "seed=-3", "seed=12x",
        "seed=", "loss=nan", "delay=inf", "delay=4000s", "=5",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct usock_impairment impairment;
        char error[128];
        memset(&impairment, 0x5a, sizeof(impairment));
        int result = usock_impairment_parse(bad[i], &impairment, error, sizeof(error));
        if (result != -EINVAL)
            fprintf(stderr, "spec '%s' gave %d\n", bad[i], result);
        CHECK_EQ(result, -EINVAL);
        char expected[160];
        snprintf(expected, sizeof(expected), "bad impairment item '%s'", bad[i]);
        CHECK(strcmp(error, expected) == 0);
        /* Unchanged on failure. */
        CHECK_EQ(impairment.seed, 0x5a5a5a5a5a5a5a5aull);
    }
    /* The message names the bad item, not its neighbours. */
    char error[128];
    struct usock_impairment impairment;
    CHECK_EQ(usock_impairment_parse("loss=1%,bogus=2,dup=1", &impairment, error, sizeof(error)),
             -EINVAL);
    CHECK(strcmp(error, "bad impairment item 'bogus=2'") == 0);
    /* A short message buffer is still terminated. */
    CHECK_EQ(usock_impairment_parse("foo=1", &impairment, error, 8), -EINVAL);
    CHECK_EQ(strlen(error), 7);
}

static void test_no_impairment_passes_frames_through(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *impaired, *far;
    make_impaired_pair("", &impaired, &far);
    CHECK_EQ(usock_link_mtu(impaired), 1500);
    CHECK_EQ(usock_link_carries_ip(impaired), 0);
    CHECK(usock_link_wait_fd(impaired) >= 0);
    for (uint32_t i = 0; i < 10; i++)
        send_numbered(impaired, i, 0);
    for (uint32_t i = 0; i < 10; i++)
        CHECK_EQ(receive_number(far, 0), i);
    send_numbered(far, 77, 0);
    CHECK_EQ(receive_number(impaired, 0), 77);
    CHECK_EQ(receive_number(impaired, 0), -1);
    CHECK_EQ(usock_link_deadline(impaired, 0), USOCK_NEVER);
    usock_link_close(impaired);
    usock_link_close(far);
    check_nothing_leaked(descriptors);
}

static void test_loss_100_percent_drops_everything(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *impaired, *far;
    make_impaired_pair("loss=100%", &impaired, &far);
    for (uint32_t i = 0; i < 100; i++) {
        send_numbered(impaired, i, i * MS);
        send_numbered(far, i, i * MS);
    }
    CHECK_EQ(receive_number(far, 200 * MS), -1);
    CHECK_EQ(receive_number(impaired, 200 * MS), -1);
    CHECK_EQ(usock_link_deadline(impaired, 200 * MS), USOCK_NEVER);
    usock_link_close(impaired);
    usock_link_close(far);
    check_nothing_leaked(descriptors);
}

static void test_loss_half_drops_about_half(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *impaired, *far;
    make_impaired_pair("loss=50,seed=3", &impaired, &far);
    int arrived = 0;
    for (uint32_t i = 0; i < 2000; i++) {
        send_numbered(impaired, i, 0);
        if (receive_number(far, 0) >= 0)
            arrived++;
    }
    CHECK(arrived > 850 && arrived < 1150);
    usock_link_close(impaired);
    usock_link_close(far);
    check_nothing_leaked(descriptors);
}

static void test_dup_100_percent_doubles_every_frame(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *impaired, *far;
    make_impaired_pair("dup=100%", &impaired, &far);
    for (uint32_t i = 0; i < 5; i++)
        send_numbered(impaired, i, 0);
    for (uint32_t i = 0; i < 5; i++) {
        CHECK_EQ(receive_number(far, 0), i);
        CHECK_EQ(receive_number(far, 0), i);
    }
    CHECK_EQ(receive_number(far, 0), -1);
    /* And on the way in. */
    for (uint32_t i = 0; i < 3; i++)
        send_numbered(far, i, 0);
    for (uint32_t i = 0; i < 3; i++) {
        CHECK_EQ(receive_number(impaired, 0), i);
        CHECK_EQ(receive_number(impaired, 0), i);
    }
    CHECK_EQ(receive_number(impaired, 0), -1);
    usock_link_close(impaired);
    usock_link_close(far);
    check_nothing_leaked(descriptors);
}

static void test_delay_holds_outgoing_frames_until_due(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *impaired, *far;
    make_impaired_pair("delay=5ms", &impaired, &far);
    send_numbered(impaired, 1, 10 * MS);
    send_numbered(impaired, 2, 11 * MS);
    CHECK_EQ(receive_number(far, 0), -1);
    CHECK_EQ(usock_link_deadline(impaired, 11 * MS), 15 * MS);
    CHECK_EQ(usock_link_deadline(impaired, 15 * MS - 1), 15 * MS);
    CHECK_EQ(receive_number(far, 0), -1);
    /* Asking for the deadline at the due time releases the frame. */
    CHECK_EQ(usock_link_deadline(impaired, 15 * MS), 16 * MS);
    CHECK_EQ(receive_number(far, 0), 1);
    CHECK_EQ(receive_number(far, 0), -1);
    /* So does any other operation: a receive with nothing incoming. */
    CHECK_EQ(receive_number(impaired, 16 * MS), -1);
    CHECK_EQ(receive_number(far, 0), 2);
    CHECK_EQ(usock_link_deadline(impaired, 16 * MS), USOCK_NEVER);
    usock_link_close(impaired);
    usock_link_close(far);
    check_nothing_leaked(descriptors);
}

static void test_delay_holds_incoming_frames_until_due(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *impaired, *far;
    make_impaired_pair("delay=2ms", &impaired, &far);
    send_numbered(far, 1, 0);
    send_numbered(far, 2, 0);
    CHECK_EQ(receive_number(impaired, 100 * MS), -1);
    CHECK_EQ(usock_link_deadline(impaired, 100 * MS), 102 * MS);
    CHECK_EQ(receive_number(impaired, 102 * MS - 1), -1);
    CHECK_EQ(receive_number(impaired, 102 * MS), 1);
    CHECK_EQ(receive_number(impaired, 102 * MS), 2);
    CHECK_EQ(receive_number(impaired, 102 * MS), -1);
    CHECK_EQ(usock_link_deadline(impaired, 102 * MS), USOCK_NEVER);
    usock_link_close(impaired);
    usock_link_close(far);
    check_nothing_leaked(descriptors);
}

static void test_jitter_keeps_delay_within_bounds(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *impaired, *far;
    make_impaired_pair("delay=2ms,jitter=1ms,seed=9", &impaired, &far);
    enum { COUNT = 200 };
    uint64_t sent_at[COUNT];
    int seen[COUNT] = { 0 }, arrived = 0, out_of_order = 0;
    long last = -1;
    uint32_t next = 0;
    /* One clock: a frame goes out every 100 us, the far end looks every 10 us. */
    for (uint64_t t = 0; t <= COUNT * 100000ull + 4 * MS; t += 10000) {
        if (next < COUNT && t == next * 100000ull) {
            sent_at[next] = t;
            send_numbered(impaired, next, t);
            next++;
        }
        usock_link_deadline(impaired, t);
        long number;
        while ((number = receive_number(far, t)) >= 0) {
            CHECK(number < COUNT && !seen[number]);
            seen[number] = 1;
            arrived++;
            uint64_t delay = t - sent_at[number];
            CHECK(delay >= 2 * MS && delay < 3 * MS + 10000);
            if (number < last)
                out_of_order++;
            last = number;
        }
    }
    CHECK_EQ(arrived, COUNT);
    CHECK(out_of_order > 0); /* jitter of 1 ms over 100 us gaps reorders */
    usock_link_close(impaired);
    usock_link_close(far);
    check_nothing_leaked(descriptors);
}

static void test_reorder_swaps_each_frame_with_the_next(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *impaired, *far;
    make_impaired_pair("reorder=100%", &impaired, &far);
    for (uint32_t i = 1; i <= 4; i++)
        send_numbered(impaired, i, 0);
    CHECK_EQ(receive_number(far, 0), 2);
    CHECK_EQ(receive_number(far, 0), 1);
    CHECK_EQ(receive_number(far, 0), 4);
    CHECK_EQ(receive_number(far, 0), 3);
    CHECK_EQ(receive_number(far, 0), -1);
    CHECK_EQ(usock_link_deadline(impaired, 0), USOCK_NEVER);

    /* A frame with no successor goes after a short timeout. */
    send_numbered(impaired, 5, 10 * MS);
    CHECK_EQ(receive_number(far, 0), -1);
    uint64_t deadline = usock_link_deadline(impaired, 10 * MS);
    CHECK(deadline > 10 * MS && deadline <= 20 * MS);
    CHECK_EQ(usock_link_deadline(impaired, deadline - 1), deadline);
    CHECK_EQ(receive_number(far, 0), -1);
    CHECK_EQ(usock_link_deadline(impaired, deadline), USOCK_NEVER);
    CHECK_EQ(receive_number(far, 0), 5);

    /* On the way in, too. */
    for (uint32_t i = 1; i <= 4; i++)
        send_numbered(far, i, 0);
    CHECK_EQ(receive_number(impaired, 30 * MS), 2);
    CHECK_EQ(receive_number(impaired, 30 * MS), 1);
    CHECK_EQ(receive_number(impaired, 30 * MS), 4);
    CHECK_EQ(receive_number(impaired, 30 * MS), 3);
    CHECK_EQ(receive_number(impaired, 30 * MS), -1);
    send_numbered(far, 5, 0);
    CHECK_EQ(receive_number(impaired, 40 * MS), -1);
    deadline = usock_link_deadline(impaired, 40 * MS);
    CHECK(deadline > 40 * MS && deadline <= 50 * MS);
    CHECK_EQ(receive_number(impaired, deadline), 5);
    usock_link_close(impaired);
    usock_link_close(far);
    check_nothing_leaked(descriptors);
}

static int bits_set(uint8_t byte)
{
    int count = 0;
    for (; byte; byte &= (uint8_t)(byte - 1))
        count++;
    return count;
}

static void test_corrupt_flips_exactly_one_bit(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *impaired, *far;
    make_impaired_pair("corrupt=100%,seed=5", &impaired, &far);
    uint8_t frame[FRAME_LENGTH], buffer[LINK_FRAME_MAX];
    int positions_seen[FRAME_LENGTH] = { 0 };
    for (uint32_t i = 0; i < 500; i++) {
        make_frame(frame, i);
        CHECK_EQ(usock_link_send(impaired, frame, sizeof(frame), 0), 0);
        CHECK_EQ(usock_link_receive(far, buffer, sizeof(buffer), 0), FRAME_LENGTH);
        int flipped = 0;
        for (size_t j = 0; j < FRAME_LENGTH; j++) {
            flipped += bits_set(frame[j] ^ buffer[j]);
            if (frame[j] != buffer[j])
                positions_seen[j] = 1;
        }
        CHECK_EQ(flipped, 1);
    }
    int positions = 0;
    for (size_t j = 0; j < FRAME_LENGTH; j++)
        positions += positions_seen[j];
    CHECK(positions > FRAME_LENGTH / 2); /* spread over the frame */
    /* The sender's frame is borrowed, never written. */
    make_frame(buffer, 499);
    CHECK(memcmp(frame, buffer, FRAME_LENGTH) == 0);
    usock_link_close(impaired);
    usock_link_close(far);
    check_nothing_leaked(descriptors);
}

/* Runs a fixed exchange through spec; writes a digest of what arrived. */
static uint64_t run_digest(const char *spec)
{
    struct usock_link *impaired, *far;
    make_impaired_pair(spec, &impaired, &far);
    uint64_t digest = 1469598103934665603ull;
    uint8_t buffer[LINK_FRAME_MAX];
    for (uint32_t i = 0; i < 3000; i++) {
        uint64_t now = i * 200000ull;
        send_numbered(impaired, i, now);
        send_numbered(far, i, now);
        for (int side = 0; side < 2; side++) {
            struct usock_link *receiver = side ? impaired : far;
            ssize_t got;
            while ((got = usock_link_receive(receiver, buffer, sizeof(buffer), now)) > 0) {
                for (ssize_t j = 0; j < got; j++)
                    digest = (digest ^ buffer[j]) * 1099511628211ull;
                digest = (digest ^ now ^ (uint64_t)side) * 1099511628211ull;
            }
        }
        usock_link_deadline(impaired, now);
    }
    usock_link_close(impaired);
    usock_link_close(far);
    return digest;
}

static void test_same_seed_gives_the_same_run(void)
{
    int descriptors = open_descriptor_count();
    const char *spec = "loss=10%,dup=10%,reorder=20%,corrupt=5%,delay=1ms,jitter=2ms,seed=7";
    uint64_t first = run_digest(spec);
    CHECK_EQ(run_digest(spec), first);
    CHECK(run_digest("loss=10%,dup=10%,reorder=20%,corrupt=5%,delay=1ms,jitter=2ms,seed=8") != first);
    check_nothing_leaked(descriptors);
}

static void test_held_frames_are_bounded(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *impaired, *far;
    make_impaired_pair("delay=1s", &impaired, &far);
    for (uint32_t i = 0; i < 10050; i++)
        send_numbered(impaired, i, 0);
    CHECK_EQ(receive_number(far, 0), -1);
    CHECK_EQ(usock_link_deadline(impaired, 1000 * MS), USOCK_NEVER);
    /* The first 10000 were kept (the far end's queue holds 4096 of them). */
    for (uint32_t i = 0; i < 4096; i++)
        CHECK_EQ(receive_number(far, 0), i);
    CHECK_EQ(receive_number(far, 0), -1);
    /* Closing with frames still held frees them. */
    for (uint32_t i = 0; i < 100; i++)
        send_numbered(impaired, i, 2000 * MS);
    usock_link_close(impaired);
    usock_link_close(far);
    check_nothing_leaked(descriptors);
}

static void test_impair_rejects_bad_probability_and_closes_inner(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *near, *far, *impaired = (struct usock_link *)&near;
    struct usock_impairment impairment = { .loss = 1.5 };
    CHECK_EQ(usock_link_mem_pair(&near, &far), 0);
    CHECK_EQ(usock_link_impair(near, &impairment, &impaired), -EINVAL);
    CHECK(impaired == NULL);
    impairment.loss = NAN;
    CHECK_EQ(usock_link_impair(far, &impairment, &impaired), -EINVAL);
    check_nothing_leaked(descriptors);
}

static void test_impair_wrapper_composes(void)
{
    int descriptors = open_descriptor_count();
    struct usock_impairment impairment = { .delay_ns = 1 * MS };
    struct usock_link *near, *far, *once, *twice;
    CHECK_EQ(usock_link_mem_pair(&near, &far), 0);
    CHECK_EQ(usock_link_impair(near, &impairment, &once), 0);
    CHECK_EQ(usock_link_impair(once, &impairment, &twice), 0);
    send_numbered(twice, 1, 0);
    CHECK_EQ(usock_link_deadline(twice, 0), 1 * MS);
    CHECK_EQ(usock_link_deadline(twice, 1 * MS), 2 * MS); /* now held by the inner one */
    CHECK_EQ(receive_number(far, 0), -1);
    CHECK_EQ(usock_link_deadline(twice, 2 * MS), USOCK_NEVER);
    CHECK_EQ(receive_number(far, 0), 1);
    usock_link_close(twice);
    usock_link_close(far);
    check_nothing_leaked(descriptors);
}

static const struct check_test tests[] = {
    CHECK_TEST(test_parse_reads_every_item),
    CHECK_TEST(test_parse_bare_numbers_and_units),
    CHECK_TEST(test_parse_empty_spec_is_no_impairment),
    CHECK_TEST(test_parse_rejects_bad_items),
    CHECK_TEST(test_no_impairment_passes_frames_through),
    CHECK_TEST(test_loss_100_percent_drops_everything),
    CHECK_TEST(test_loss_half_drops_about_half),
    CHECK_TEST(test_dup_100_percent_doubles_every_frame),
    CHECK_TEST(test_delay_holds_outgoing_frames_until_due),
    CHECK_TEST(test_delay_holds_incoming_frames_until_due),
    CHECK_TEST(test_jitter_keeps_delay_within_bounds),
    CHECK_TEST(test_reorder_swaps_each_frame_with_the_next),
    CHECK_TEST(test_corrupt_flips_exactly_one_bit),
    CHECK_TEST(test_same_seed_gives_the_same_run),
    CHECK_TEST(test_held_frames_are_bounded),
    CHECK_TEST(test_impair_rejects_bad_probability_and_closes_inner),
    CHECK_TEST(test_impair_wrapper_composes),
};

CHECK_MAIN(tests)
