/*
 * pcap.c - a link that passes frames to and from the link inside it and
 * writes each one to a pcap file on the way, for tcpdump and tshark.
 *
 * The file is classic pcap with nanosecond timestamps (magic 0xa1b23c4d,
 * version 2.4, our own byte order, snaplen 262144), link type ETHERNET or
 * RAW (bare IPv4/IPv6) after the inner link's layer.  A frame is written
 * when the inner link took it (send returned 0) or gave it (receive).
 *
 * Record times are the wall clock (CLOCK_REALTIME), not the `now` passed
 * in: that may be a simulated clock starting near zero, and a capture is
 * read beside other captures and logs in real time.
 *
 * Writes go through a buffered FILE.  So that a process killed without
 * closing its link still leaves a readable file, the buffer is flushed when
 * the link goes idle (receive finds nothing, or deadline is asked for,
 * which a stack does before it sleeps) and at least every
 * PCAP_FLUSH_INTERVAL_NS of wall time while busy, and on destroy.  A write
 * error stops the capture; the link itself keeps working.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "link/link.h"

#define PCAP_MAGIC_NANOSECONDS 0xa1b23c4du
#define PCAP_VERSION_MAJOR 2
#define PCAP_VERSION_MINOR 4
#define PCAP_SNAPLEN 262144u
#define PCAP_LINKTYPE_ETHERNET 1u
#define PCAP_LINKTYPE_RAW 101u
#define PCAP_FLUSH_INTERVAL_NS 100000000ull
#define PCAP_BUFFER_SIZE (256u * 1024)

struct pcap_file_header {
    uint32_t magic;
    uint16_t version_major;
    uint16_t version_minor;
    int32_t this_zone;
    uint32_t sigfigs;
    uint32_t snaplen;
    uint32_t linktype;
};

struct pcap_record_header {
    uint32_t seconds;
    uint32_t nanoseconds;
    uint32_t captured_length;
    uint32_t original_length;
};

_Static_assert(sizeof(struct pcap_file_header) == 24, "pcap file header is 24 bytes");
_Static_assert(sizeof(struct pcap_record_header) == 16, "pcap record header is 16 bytes");

struct pcap_link {
    struct usock_link link;
    struct usock_link *inner;
    FILE *file;               /* NULL once a write failed */
    int dirty;                /* records written since the last flush */
    uint64_t last_flush_ns;   /* CLOCK_MONOTONIC of the last flush */
};

static uint64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

/* Gives up on the capture after a write error, keeping the link. */
static void pcap_fail(struct pcap_link *pcap)
{
    fclose(pcap->file);
    pcap->file = NULL;
    pcap->dirty = 0;
}

static void pcap_flush(struct pcap_link *pcap)
{
    if (pcap->file == NULL || !pcap->dirty)
        return;
    if (fflush(pcap->file) != 0) {
        pcap_fail(pcap);
        return;
    }
    pcap->dirty = 0;
    pcap->last_flush_ns = monotonic_ns();
}

/* Appends one record for frame (borrowed), stamped with the wall clock. */
static void pcap_write_record(struct pcap_link *pcap, const uint8_t *frame, size_t length)
{
    if (pcap->file == NULL)
        return;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    size_t captured = length < PCAP_SNAPLEN ? length : PCAP_SNAPLEN;
    struct pcap_record_header record = {
        .seconds = (uint32_t)wall.tv_sec,
        .nanoseconds = (uint32_t)wall.tv_nsec,
        .captured_length = (uint32_t)captured,
        .original_length = (uint32_t)length,
    };
    if (fwrite(&record, sizeof(record), 1, pcap->file) != 1 ||
        (captured > 0 && fwrite(frame, captured, 1, pcap->file) != 1)) {
        pcap_fail(pcap);
        return;
    }
    pcap->dirty = 1;
    if (monotonic_ns() - pcap->last_flush_ns >= PCAP_FLUSH_INTERVAL_NS)
        pcap_flush(pcap);
}

static int pcap_send(struct usock_link *link, const uint8_t *frame, size_t length, uint64_t now)
{
    struct pcap_link *pcap = (struct pcap_link *)link;
    int result = pcap->inner->ops->send(pcap->inner, frame, length, now);
    if (result == 0)
        pcap_write_record(pcap, frame, length);
    return result;
}

static ssize_t pcap_receive(struct usock_link *link, uint8_t *buffer, size_t capacity,
                            uint64_t now)
{
    struct pcap_link *pcap = (struct pcap_link *)link;
    ssize_t got = pcap->inner->ops->receive(pcap->inner, buffer, capacity, now);
    if (got >= 0)
        pcap_write_record(pcap, buffer, (size_t)got);
    else if (got == -EAGAIN)
        pcap_flush(pcap);
    return got;
}

static int pcap_wait_fd(const struct usock_link *link)
{
    const struct pcap_link *pcap = (const struct pcap_link *)link;
    return pcap->inner->ops->wait_fd(pcap->inner);
}

static uint64_t pcap_deadline(struct usock_link *link, uint64_t now)
{
    struct pcap_link *pcap = (struct pcap_link *)link;
    pcap_flush(pcap);
    return usock_link_deadline(pcap->inner, now);
}

static void pcap_destroy(struct usock_link *link)
{
    struct pcap_link *pcap = (struct pcap_link *)link;
    if (pcap->file != NULL)
        fclose(pcap->file);
    usock_link_close(pcap->inner);
    free(pcap);
}

static const struct link_ops pcap_ops = {
    .kind = "pcap",
    .send = pcap_send,
    .receive = pcap_receive,
    .wait_fd = pcap_wait_fd,
    .deadline = pcap_deadline,
    .destroy = pcap_destroy,
};

/*
 * usock_link_pcap - wraps inner (owned from now on, closed on failure) in a
 * link that records every frame to a new pcap file at path (truncated if it
 * exists).  The wrapper has inner's layer, MTU, address and name.  Returns 0
 * and stores the link, or -EINVAL, -ENOMEM, or the errno of creating the
 * file.
 */
int usock_link_pcap(struct usock_link *inner, const char *path, struct usock_link **link_out)
{
    int result;
    if (link_out != NULL)
        *link_out = NULL;
    if (inner == NULL)
        return -EINVAL;
    if (path == NULL || *path == '\0' || link_out == NULL) {
        result = -EINVAL;
        goto fail_close_inner;
    }

    struct pcap_link *pcap = calloc(1, sizeof(*pcap));
    if (pcap == NULL) {
        result = -ENOMEM;
        goto fail_close_inner;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        result = -errno;
        goto fail_free_link;
    }
    pcap->file = fdopen(fd, "wb");
    if (pcap->file == NULL) {
        result = -errno;
        close(fd);
        goto fail_free_link;
    }
    /* Best effort: a bigger buffer only saves write calls. */
    (void)setvbuf(pcap->file, NULL, _IOFBF, PCAP_BUFFER_SIZE);

    struct pcap_file_header header = {
        .magic = PCAP_MAGIC_NANOSECONDS,
        .version_major = PCAP_VERSION_MAJOR,
        .version_minor = PCAP_VERSION_MINOR,
        .this_zone = 0,
        .sigfigs = 0,
        .snaplen = PCAP_SNAPLEN,
        .linktype = inner->layer == LINK_LAYER_IP ? PCAP_LINKTYPE_RAW : PCAP_LINKTYPE_ETHERNET,
    };
    errno = 0;
    if (fwrite(&header, sizeof(header), 1, pcap->file) != 1 || fflush(pcap->file) != 0) {
        result = errno ? -errno : -EIO;
        goto fail_close_file;
    }
    pcap->last_flush_ns = monotonic_ns();

    pcap->inner = inner;
    pcap->link.ops = &pcap_ops;
    pcap->link.layer = inner->layer;
    pcap->link.mtu = inner->mtu;
    pcap->link.has_mac = inner->has_mac;
    memcpy(pcap->link.mac, inner->mac, sizeof(pcap->link.mac));
    memcpy(pcap->link.name, inner->name, sizeof(pcap->link.name));
    *link_out = &pcap->link;
    return 0;

fail_close_file:
    fclose(pcap->file);
fail_free_link:
    free(pcap);
fail_close_inner:
    usock_link_close(inner);
    return result;
}
