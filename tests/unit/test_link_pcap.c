/*
 * test_link_pcap.c - the pcap tee: a capture over an in-memory wire is read
 * back and its header, records, lengths, bytes and times are checked.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

static void check_nothing_leaked(int descriptors_before)
{
    CHECK_EQ(open_descriptor_count(), descriptors_before);
#if defined(__SANITIZE_ADDRESS__)
    CHECK_EQ(__lsan_do_recoverable_leak_check(), 0);
#endif
}

/* A fresh path for a capture; the file is removed by the caller. */
static void temporary_path(char *path, size_t size)
{
    const char *directory = getenv("TMPDIR");
    snprintf(path, size, "%s/usock-test-pcap-XXXXXX", directory ? directory : "/tmp");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
}

static void make_frame(uint8_t *frame, size_t length, unsigned number)
{
    for (size_t i = 0; i < length; i++)
        frame[i] = (uint8_t)(number * 13 + i * 3);
}

struct capture {
    uint8_t *bytes;
    size_t length;
    size_t offset; /* of the next record */
};

static void capture_read(struct capture *capture, const char *path)
{
    FILE *file = fopen(path, "rb");
    CHECK(file != NULL);
    static uint8_t bytes[1 << 20];
    capture->bytes = bytes;
    capture->length = fread(bytes, 1, sizeof(bytes), file);
    capture->offset = 24;
    fclose(file);
}

static uint32_t get32(const uint8_t *bytes)
{
    uint32_t value;
    memcpy(&value, bytes, 4); /* the file is in our byte order */
    return value;
}

static uint16_t get16(const uint8_t *bytes)
{
    uint16_t value;
    memcpy(&value, bytes, 2);
    return value;
}

static void check_file_header(const struct capture *capture, uint32_t linktype)
{
    CHECK(capture->length >= 24);
    CHECK_EQ(get32(capture->bytes), 0xa1b23c4d);
    CHECK_EQ(get16(capture->bytes + 4), 2);
    CHECK_EQ(get16(capture->bytes + 6), 4);
    CHECK_EQ(get32(capture->bytes + 8), 0);
    CHECK_EQ(get32(capture->bytes + 12), 0);
    CHECK_EQ(get32(capture->bytes + 16), 262144);
    CHECK_EQ(get32(capture->bytes + 20), linktype);
}

/* Checks the next record holds frame; its time is the wall clock. */
static void check_record(struct capture *capture, const uint8_t *frame, size_t length)
{
    CHECK(capture->offset + 16 <= capture->length);
    const uint8_t *record = capture->bytes + capture->offset;
    time_t wall = time(NULL);
    CHECK(get32(record) + 60 >= (uint32_t)wall && get32(record) <= (uint32_t)wall + 1);
    CHECK(get32(record + 4) < 1000000000u);
    CHECK_EQ(get32(record + 8), length);
    CHECK_EQ(get32(record + 12), length);
    CHECK(capture->offset + 16 + length <= capture->length);
    CHECK(memcmp(record + 16, frame, length) == 0);
    capture->offset += 16 + length;
}

static void test_pcap_records_frames_sent_and_received(void)
{
    int descriptors = open_descriptor_count();
    char path[256];
    temporary_path(path, sizeof(path));
    struct usock_link *near, *far, *captured;
    CHECK_EQ(usock_link_mem_pair(&near, &far), 0);
    CHECK_EQ(usock_link_pcap(near, path, &captured), 0);
    CHECK_EQ(usock_link_mtu(captured), 1500);
    CHECK_EQ(usock_link_carries_ip(captured), 0);
    CHECK_EQ(usock_link_wait_fd(captured), usock_link_wait_fd(near));

    static const size_t sent_lengths[] = { 60, 1514, 100 };
    static const size_t received_lengths[] = { 70, 80 };
    uint8_t frame[1514], buffer[LINK_FRAME_MAX];
    for (unsigned i = 0; i < 3; i++) {
        make_frame(frame, sent_lengths[i], i);
        CHECK_EQ(usock_link_send(captured, frame, sent_lengths[i], 1000 * i), 0);
    }
    for (unsigned i = 0; i < 2; i++) {
        make_frame(frame, received_lengths[i], 10 + i);
        CHECK_EQ(usock_link_send(far, frame, received_lengths[i], 0), 0);
    }
    for (unsigned i = 0; i < 2; i++)
        CHECK_EQ(usock_link_receive(captured, buffer, sizeof(buffer), 5000), received_lengths[i]);
    CHECK_EQ(usock_link_receive(captured, buffer, sizeof(buffer), 5000), -EAGAIN);
    /* The frames still reached the far end. */
    for (unsigned i = 0; i < 3; i++)
        CHECK_EQ(usock_link_receive(far, buffer, sizeof(buffer), 0), sent_lengths[i]);
    usock_link_close(captured);
    usock_link_close(far);

    struct capture capture;
    capture_read(&capture, path);
    check_file_header(&capture, 1);
    for (unsigned i = 0; i < 3; i++) {
        make_frame(frame, sent_lengths[i], i);
        check_record(&capture, frame, sent_lengths[i]);
    }
    for (unsigned i = 0; i < 2; i++) {
        make_frame(frame, received_lengths[i], 10 + i);
        check_record(&capture, frame, received_lengths[i]);
    }
    CHECK_EQ(capture.offset, capture.length);
    unlink(path);
    check_nothing_leaked(descriptors);
}

static void ignore_frame(void *context, const uint8_t *frame, size_t length)
{
    (void)context;
    (void)frame;
    (void)length;
}

static void test_pcap_ip_link_uses_linktype_raw(void)
{
    int descriptors = open_descriptor_count();
    char path[256];
    temporary_path(path, sizeof(path));
    struct usock_link *inner, *captured;
    CHECK_EQ(usock_link_callback_new(ignore_frame, NULL, 1, &inner), 0);
    CHECK_EQ(usock_link_pcap(inner, path, &captured), 0);
    CHECK_EQ(usock_link_carries_ip(captured), 1);
    uint8_t packet[28];
    make_frame(packet, sizeof(packet), 1);
    packet[0] = 0x45;
    CHECK_EQ(usock_link_send(captured, packet, sizeof(packet), 0), 0);
    usock_link_close(captured);

    struct capture capture;
    capture_read(&capture, path);
    check_file_header(&capture, 101);
    check_record(&capture, packet, sizeof(packet));
    CHECK_EQ(capture.offset, capture.length);
    unlink(path);
    check_nothing_leaked(descriptors);
}

static off_t file_size(const char *path)
{
    struct stat status;
    CHECK_EQ(stat(path, &status), 0);
    return status.st_size;
}

static void test_pcap_is_flushed_when_the_link_goes_idle(void)
{
    int descriptors = open_descriptor_count();
    char path[256];
    temporary_path(path, sizeof(path));
    struct usock_link *near, *far, *captured;
    uint8_t frame[100] = { 0 }, buffer[200];
    CHECK_EQ(usock_link_mem_pair(&near, &far), 0);
    CHECK_EQ(usock_link_pcap(near, path, &captured), 0);
    CHECK_EQ(file_size(path), 24); /* the header is there at once */

    CHECK_EQ(usock_link_send(captured, frame, sizeof(frame), 0), 0);
    /* A stack asks for the deadline before it sleeps. */
    CHECK_EQ(usock_link_deadline(captured, 0), USOCK_NEVER);
    CHECK_EQ(file_size(path), 24 + 16 + 100);

    CHECK_EQ(usock_link_send(far, frame, 50, 0), 0);
    CHECK_EQ(usock_link_receive(captured, buffer, sizeof(buffer), 0), 50);
    /* Draining the link to -EAGAIN also flushes. */
    CHECK_EQ(usock_link_receive(captured, buffer, sizeof(buffer), 0), -EAGAIN);
    CHECK_EQ(file_size(path), 24 + 16 + 100 + 16 + 50);

    usock_link_close(captured);
    usock_link_close(far);
    unlink(path);
    check_nothing_leaked(descriptors);
}

static void test_pcap_does_not_record_refused_frames(void)
{
    int descriptors = open_descriptor_count();
    char path[256];
    temporary_path(path, sizeof(path));
    struct usock_link *near, *far, *captured;
    uint8_t frame[60] = { 0 };
    CHECK_EQ(usock_link_mem_pair(&near, &far), 0);
    CHECK_EQ(usock_link_pcap(near, path, &captured), 0);
    int sent = 0, result;
    while ((result = usock_link_send(captured, frame, sizeof(frame), 0)) == 0)
        sent++;
    CHECK_EQ(result, -ENOBUFS);
    usock_link_close(captured);
    usock_link_close(far);
    CHECK_EQ(file_size(path), 24 + (off_t)sent * (16 + 60));
    unlink(path);
    check_nothing_leaked(descriptors);
}

static void test_pcap_bad_path_fails_and_closes_inner(void)
{
    int descriptors = open_descriptor_count();
    struct usock_link *near, *far, *captured = (struct usock_link *)&near;
    CHECK_EQ(usock_link_mem_pair(&near, &far), 0);
    CHECK_EQ(usock_link_pcap(near, "/nonexistent-usock-dir/capture.pcap", &captured), -ENOENT);
    CHECK(captured == NULL);
    CHECK_EQ(usock_link_pcap(far, "", &captured), -EINVAL);
    check_nothing_leaked(descriptors);
}

static const struct check_test tests[] = {
    CHECK_TEST(test_pcap_records_frames_sent_and_received),
    CHECK_TEST(test_pcap_ip_link_uses_linktype_raw),
    CHECK_TEST(test_pcap_is_flushed_when_the_link_goes_idle),
    CHECK_TEST(test_pcap_does_not_record_refused_frames),
    CHECK_TEST(test_pcap_bad_path_fails_and_closes_inner),
};

CHECK_MAIN(tests)
