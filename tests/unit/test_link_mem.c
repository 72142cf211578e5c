/*
 * test_link_mem.c - the in-memory wire, callback links, and link spec
 * parsing: frames cross in both directions, queues are bounded, the wait
 * descriptor is readable exactly while a frame waits, and ends close
 * independently without leaking.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sched.h>
#include <string.h>

#include "check.h"
#include "link/link.h"
#include "usock.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

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

/* Every test ends here: no descriptor and (under ASan) no memory left. */
static void check_nothing_leaked(int descriptors_before)
{
    CHECK_EQ(open_descriptor_count(), descriptors_before);
#if defined(__SANITIZE_ADDRESS__)
    CHECK_EQ(__lsan_do_recoverable_leak_check(), 0);
#endif
}

static int readable(int fd)
{
    struct pollfd entry = { .fd = fd, .events = POLLIN };
    int ready = poll(&entry, 1, 0);
    CHECK(ready >= 0);
    return ready == 1 && (entry.revents & POLLIN);
}

static void make_frame(uint8_t *frame, size_t length, uint32_t number)
{
    for (size_t i = 0; i < length; i++)
        frame[i] = (uint8_t)(number * 31 + i);
    if (length >= 4)
        memcpy(frame, &number, 4);
}

static void test_mem_pair_carries_frames_both_ways(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *a, *b;
    CHECK_EQ(usock_link_mem_pair(&a, &b), 0);
    uint8_t frame[1514], buffer[LINK_FRAME_MAX];

    make_frame(frame, 60, 1);
    CHECK_EQ(usock_link_send(a, frame, 60, 0), 0);
    make_frame(frame, 1514, 2);
    CHECK_EQ(usock_link_send(a, frame, 1514, 0), 0);
    make_frame(frame, 100, 3);
    CHECK_EQ(usock_link_send(b, frame, 100, 0), 0);

    CHECK_EQ(usock_link_receive(b, buffer, sizeof(buffer), 0), 60);
    make_frame(frame, 60, 1);
    CHECK(memcmp(buffer, frame, 60) == 0);
    CHECK_EQ(usock_link_receive(b, buffer, sizeof(buffer), 0), 1514);
    make_frame(frame, 1514, 2);
    CHECK(memcmp(buffer, frame, 1514) == 0);
    CHECK_EQ(usock_link_receive(b, buffer, sizeof(buffer), 0), -EAGAIN);

    CHECK_EQ(usock_link_receive(a, buffer, sizeof(buffer), 0), 100);
    make_frame(frame, 100, 3);
    CHECK(memcmp(buffer, frame, 100) == 0);
    CHECK_EQ(usock_link_receive(a, buffer, sizeof(buffer), 0), -EAGAIN);

    usock_link_close(a);
    usock_link_close(b);
    check_nothing_leaked(descriptors);
}

static void test_mem_receive_truncates_to_capacity(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *a, *b;
    CHECK_EQ(usock_link_mem_pair(&a, &b), 0);
    uint8_t frame[200], buffer[50];
    make_frame(frame, sizeof(frame), 9);
    CHECK_EQ(usock_link_send(a, frame, sizeof(frame), 0), 0);
    CHECK_EQ(usock_link_receive(b, buffer, sizeof(buffer), 0), 50);
    CHECK(memcmp(buffer, frame, 50) == 0);
    usock_link_close(a);
    usock_link_close(b);
    check_nothing_leaked(descriptors);
}

static void test_mem_link_properties(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *a, *b;
    uint8_t mac[6];
    CHECK_EQ(usock_link_mem_pair(&a, &b), 0);
    CHECK_EQ(usock_link_mtu(a), 1500);
    CHECK_EQ(usock_link_carries_ip(a), 0);
    CHECK_EQ(usock_link_mac(a, mac), -ENOENT);
    CHECK_EQ(usock_link_deadline(a, 123), USOCK_NEVER);
    CHECK(usock_link_wait_fd(a) >= 0);
    CHECK(usock_link_wait_fd(b) >= 0);
    CHECK(usock_link_wait_fd(a) != usock_link_wait_fd(b));
    usock_link_close(a);
    usock_link_close(b);
    check_nothing_leaked(descriptors);
}

/* Frames sent before anyone asked for the receiving end's descriptor do
 * not go unnoticed: the first usock_link_wait_fd finds it readable. */
static void test_mem_wait_fd_asked_late_is_readable_for_frames_already_waiting(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *a, *b;
    CHECK_EQ(usock_link_mem_pair(&a, &b), 0);
    uint8_t frame[64] = { 0 }, buffer[64];
    CHECK_EQ(usock_link_send(a, frame, sizeof(frame), 0), 0);
    int fd = usock_link_wait_fd(b);
    CHECK(readable(fd));
    CHECK_EQ(usock_link_receive(b, buffer, sizeof(buffer), 0), 64);
    CHECK(!readable(fd));
    CHECK_EQ(usock_link_send(a, frame, sizeof(frame), 0), 0);
    CHECK(readable(fd));
    CHECK_EQ(usock_link_receive(b, buffer, sizeof(buffer), 0), 64);
    usock_link_close(a);
    usock_link_close(b);
    check_nothing_leaked(descriptors);
}

static void test_mem_wait_fd_readable_while_frames_wait(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *a, *b;
    CHECK_EQ(usock_link_mem_pair(&a, &b), 0);
    uint8_t frame[64] = { 0 }, buffer[64];
    int fd = usock_link_wait_fd(b);

    CHECK(!readable(fd));
    CHECK_EQ(usock_link_send(a, frame, sizeof(frame), 0), 0);
    CHECK(readable(fd));
    CHECK(!readable(usock_link_wait_fd(a)));
    CHECK_EQ(usock_link_send(a, frame, sizeof(frame), 0), 0);
    CHECK(readable(fd));
    CHECK_EQ(usock_link_receive(b, buffer, sizeof(buffer), 0), 64);
    CHECK(readable(fd)); /* one still waits */
    CHECK_EQ(usock_link_receive(b, buffer, sizeof(buffer), 0), 64);
    CHECK(!readable(fd));
    CHECK_EQ(usock_link_receive(b, buffer, sizeof(buffer), 0), -EAGAIN);
    CHECK(!readable(fd));
    CHECK_EQ(usock_link_send(a, frame, sizeof(frame), 0), 0);
    CHECK(readable(fd));

    usock_link_close(a);
    usock_link_close(b);
    check_nothing_leaked(descriptors);
}

static void test_mem_queue_bounded_by_frames(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *a, *b;
    CHECK_EQ(usock_link_mem_pair(&a, &b), 0);
    uint8_t frame[60], buffer[64];
    int sent = 0;
    for (uint32_t i = 0; i < 5000; i++) {
        make_frame(frame, sizeof(frame), i);
        int result = usock_link_send(a, frame, sizeof(frame), 0);
        if (result == 0)
            sent++;
        else
            CHECK_EQ(result, -ENOBUFS);
    }
    CHECK_EQ(sent, 4096);
    /* The frames kept are the first ones, in order. */
    for (uint32_t i = 0; i < 4096; i++) {
        CHECK_EQ(usock_link_receive(b, buffer, sizeof(buffer), 0), 60);
        uint32_t number;
        memcpy(&number, buffer, 4);
        CHECK_EQ(number, i);
    }
    CHECK_EQ(usock_link_receive(b, buffer, sizeof(buffer), 0), -EAGAIN);
    /* Room again once drained. */
    CHECK_EQ(usock_link_send(a, frame, sizeof(frame), 0), 0);
    usock_link_close(a);
    usock_link_close(b);
    check_nothing_leaked(descriptors);
}

static void test_mem_queue_bounded_by_bytes(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *a, *b;
    CHECK_EQ(usock_link_mem_pair(&a, &b), 0);
    static uint8_t frame[65535];
    int sent = 0, result;
    while ((result = usock_link_send(a, frame, sizeof(frame), 0)) == 0)
        sent++;
    CHECK_EQ(result, -ENOBUFS);
    CHECK_EQ(sent, (16 * 1024 * 1024) / 65535);
    /* A small frame still fits in what is left. */
    CHECK_EQ(usock_link_send(a, frame, 60, 0), 0);
    usock_link_close(a);
    usock_link_close(b);
    check_nothing_leaked(descriptors);
}

static void test_mem_close_one_end_then_the_other(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *a, *b;
    CHECK_EQ(usock_link_mem_pair(&a, &b), 0);
    uint8_t frame[60] = { 0 }, buffer[64];
    /* Frames waiting for the closing end are freed with it. */
    CHECK_EQ(usock_link_send(b, frame, sizeof(frame), 0), 0);
    CHECK_EQ(usock_link_send(a, frame, sizeof(frame), 0), 0);
    usock_link_close(a);
    /* Frames already waiting for b survive; new sends vanish silently. */
    CHECK_EQ(usock_link_receive(b, buffer, sizeof(buffer), 0), 60);
    CHECK_EQ(usock_link_send(b, frame, sizeof(frame), 0), 0);
    CHECK_EQ(usock_link_receive(b, buffer, sizeof(buffer), 0), -EAGAIN);
    usock_link_close(b);
    check_nothing_leaked(descriptors);

    /* And the other order. */
    CHECK_EQ(usock_link_mem_pair(&a, &b), 0);
    CHECK_EQ(usock_link_send(a, frame, sizeof(frame), 0), 0);
    usock_link_close(b);
    CHECK_EQ(usock_link_send(a, frame, sizeof(frame), 0), 0);
    usock_link_close(a);
    check_nothing_leaked(descriptors);
}

struct sender_job {
    struct usock_link *link;
    uint32_t count;
};

/* Sends count numbered frames, retrying while the wire is full. */
static void *sender_thread(void *argument)
{
    struct sender_job *job = argument;
    uint8_t frame[100];
    for (uint32_t i = 0; i < job->count; i++) {
        make_frame(frame, sizeof(frame), i);
        while (usock_link_send(job->link, frame, sizeof(frame), 0) == -ENOBUFS)
            sched_yield();
    }
    return NULL;
}

static void test_mem_threads_send_both_ways_in_order(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *a, *b;
    CHECK_EQ(usock_link_mem_pair(&a, &b), 0);
    enum { COUNT = 20000 };
    struct sender_job job_a = { a, COUNT }, job_b = { b, COUNT };
    pthread_t thread_a, thread_b;
    CHECK_EQ(pthread_create(&thread_a, NULL, sender_thread, &job_a), 0);
    CHECK_EQ(pthread_create(&thread_b, NULL, sender_thread, &job_b), 0);

    uint32_t next[2] = { 0, 0 };
    struct usock_link *receivers[2] = { b, a };
    uint8_t buffer[128];
    while (next[0] < COUNT || next[1] < COUNT) {
        struct pollfd entries[2] = {
            { .fd = usock_link_wait_fd(b), .events = POLLIN },
            { .fd = usock_link_wait_fd(a), .events = POLLIN },
        };
        CHECK(poll(entries, 2, 5000) > 0);
        for (int side = 0; side < 2; side++) {
            ssize_t got;
            while ((got = usock_link_receive(receivers[side], buffer, sizeof(buffer), 0)) > 0) {
                CHECK_EQ(got, 100);
                uint32_t number;
                memcpy(&number, buffer, 4);
                CHECK_EQ(number, next[side]);
                next[side]++;
            }
            CHECK_EQ(got, -EAGAIN);
        }
    }
    CHECK_EQ(pthread_join(thread_a, NULL), 0);
    CHECK_EQ(pthread_join(thread_b, NULL), 0);
    usock_link_close(a);
    usock_link_close(b);
    check_nothing_leaked(descriptors);
}

struct captured {
    int calls;
    size_t length;
    uint8_t frame[2048];
};

static void capture_frame(void *context, const uint8_t *frame, size_t length)
{
    struct captured *captured = context;
    captured->calls++;
    captured->length = length;
    memcpy(captured->frame, frame, length < sizeof(captured->frame) ? length : sizeof(captured->frame));
}

static void test_callback_send_calls_the_program(void)
{
    int descriptors = open_descriptor_count();
    struct captured captured = { 0 };
    struct usock_link *link;
    CHECK_EQ(usock_link_callback_new(capture_frame, &captured, 0, &link), 0);
    CHECK_EQ(usock_link_carries_ip(link), 0);
    CHECK_EQ(usock_link_mtu(link), 1500);
    uint8_t frame[80];
    make_frame(frame, sizeof(frame), 5);
    CHECK_EQ(usock_link_send(link, frame, sizeof(frame), 0), 0);
    CHECK_EQ(captured.calls, 1);
    CHECK_EQ(captured.length, 80);
    CHECK(memcmp(captured.frame, frame, 80) == 0);
    usock_link_close(link);
    check_nothing_leaked(descriptors);
}

static void test_callback_input_is_received_in_order(void)
{
    int descriptors = open_descriptor_count();
    struct captured captured = { 0 };
    struct usock_link *link;
    CHECK_EQ(usock_link_callback_new(capture_frame, &captured, 1, &link), 0);
    CHECK_EQ(usock_link_carries_ip(link), 1);
    int fd = usock_link_wait_fd(link);
    uint8_t frame[40], buffer[100];
    CHECK(!readable(fd));
    CHECK_EQ(usock_link_receive(link, buffer, sizeof(buffer), 0), -EAGAIN);
    for (uint32_t i = 0; i < 3; i++) {
        make_frame(frame, sizeof(frame), i);
        CHECK_EQ(usock_link_callback_input(link, frame, sizeof(frame)), 0);
    }
    /* The frame was copied: changing ours does not change theirs. */
    memset(frame, 0xff, sizeof(frame));
    CHECK(readable(fd));
    for (uint32_t i = 0; i < 3; i++) {
        CHECK_EQ(usock_link_receive(link, buffer, sizeof(buffer), 0), 40);
        make_frame(frame, sizeof(frame), i);
        CHECK(memcmp(buffer, frame, 40) == 0);
    }
    CHECK(!readable(fd));
    CHECK_EQ(usock_link_receive(link, buffer, sizeof(buffer), 0), -EAGAIN);
    CHECK_EQ(captured.calls, 0);
    usock_link_close(link);
    check_nothing_leaked(descriptors);
}

static void test_callback_input_rejects_bad_arguments(void)
{
    int descriptors = open_descriptor_count();
    struct captured captured = { 0 };
    struct usock_link *link, *a, *b;
    static uint8_t frame[65536];
    CHECK_EQ(usock_link_callback_new(NULL, NULL, 0, &link), -EINVAL);
    CHECK_EQ(usock_link_callback_new(capture_frame, &captured, 0, &link), 0);
    CHECK_EQ(usock_link_callback_input(link, frame, 0), -EINVAL);
    CHECK_EQ(usock_link_callback_input(link, frame, 65536), -EINVAL);
    CHECK_EQ(usock_link_callback_input(link, frame, 65535), 0);
    CHECK_EQ(usock_link_callback_input(NULL, frame, 10), -EINVAL);
    CHECK_EQ(usock_link_mem_pair(&a, &b), 0);
    CHECK_EQ(usock_link_callback_input(a, frame, 10), -EINVAL);
    usock_link_close(a);
    usock_link_close(b);
    usock_link_close(link);
    check_nothing_leaked(descriptors);
}

static void test_callback_input_queue_is_bounded(void)
{
    int descriptors = open_descriptor_count();
    struct captured captured = { 0 };
    struct usock_link *link;
    CHECK_EQ(usock_link_callback_new(capture_frame, &captured, 0, &link), 0);
    uint8_t frame[60] = { 1 }, buffer[64];
    int accepted = 0, result;
    while ((result = usock_link_callback_input(link, frame, sizeof(frame))) == 0)
        accepted++;
    CHECK_EQ(result, -ENOBUFS);
    CHECK_EQ(accepted, 1024);
    CHECK_EQ(usock_link_receive(link, buffer, sizeof(buffer), 0), 60);
    CHECK_EQ(usock_link_callback_input(link, frame, sizeof(frame)), 0);
    /* Closed with frames still queued: they are freed. */
    usock_link_close(link);
    check_nothing_leaked(descriptors);
}

static void test_link_open_rejects_bad_specs(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *link = (struct usock_link *)&link;
    CHECK_EQ(usock_link_open("", &link), -EINVAL);
    CHECK(link == NULL);
    CHECK_EQ(usock_link_open("tap", &link), -EINVAL);
    CHECK_EQ(usock_link_open("tap:", &link), -EINVAL);
    CHECK_EQ(usock_link_open("tun:", &link), -EINVAL);
    CHECK_EQ(usock_link_open("packet:", &link), -EINVAL);
    CHECK_EQ(usock_link_open("veth:x", &link), -EINVAL);
    CHECK_EQ(usock_link_open("tap:abcdefghijklmnop", &link), -EINVAL);
    CHECK_EQ(usock_link_open("tap:a/b", &link), -EINVAL);
    CHECK_EQ(usock_link_open(NULL, &link), -EINVAL);
    CHECK_EQ(usock_link_open("tap:tap0", NULL), -EINVAL);
    /* No such interface; without CAP_NET_RAW the socket itself is refused. */
    int result = usock_link_open("packet:usock-no-such", &link);
    CHECK(result == -ENODEV || result == -EPERM);
    check_nothing_leaked(descriptors);
}

static const struct check_test tests[] = {
    CHECK_TEST(test_mem_pair_carries_frames_both_ways),
    CHECK_TEST(test_mem_receive_truncates_to_capacity),
    CHECK_TEST(test_mem_link_properties),
    CHECK_TEST(test_mem_wait_fd_readable_while_frames_wait),
    CHECK_TEST(test_mem_wait_fd_asked_late_is_readable_for_frames_already_waiting),
    CHECK_TEST(test_mem_queue_bounded_by_frames),
    CHECK_TEST(test_mem_queue_bounded_by_bytes),
    CHECK_TEST(test_mem_close_one_end_then_the_other),
    CHECK_TEST(test_mem_threads_send_both_ways_in_order),
    CHECK_TEST(test_callback_send_calls_the_program),
    CHECK_TEST(test_callback_input_is_received_in_order),
    CHECK_TEST(test_callback_input_rejects_bad_arguments),
    CHECK_TEST(test_callback_input_queue_is_bounded),
    CHECK_TEST(test_link_open_rejects_bad_specs),
};

CHECK_MAIN(tests)
