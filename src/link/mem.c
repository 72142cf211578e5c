/*
 * mem.c - the in-memory wire: two links whose frames go to each other.
 *
 * Two ends share one struct mem_wire, which holds a bounded FIFO per
 * direction (frames waiting to be received by end 0, and by end 1) under
 * one mutex, so the two ends may be driven by stacks on different threads.
 * A frame is copied in on send; see Copies below.
 *
 * Each end has an eventfd that is readable exactly while its receive queue
 * is non-empty; that is the end's wait_fd.  The invariant is kept under the
 * mutex: the send that makes a queue non-empty signals, the receive that
 * empties it clears.  It is kept from the first time anyone asks for the
 * descriptor (wait_fd: a stack thread about to sleep, a program polling an
 * event-mode stack): before that nobody can be waiting on it, and a pair
 * of stacks driven by one busy loop pays no system call per frame.
 *
 * Offloads.  The wire is a cable between two usock stacks in one process,
 * so when both ends ask for offloads (enable_offloads) both get checksum
 * offload and TCP segmentation: frames keep their unfinished checksums
 * and TCP super-segments of up to 64 KiB cross as one frame, each with its
 * struct link_frame_info, as veth passes GSO packets between namespaces.
 * An end whose stack never asks (one behind an impairment or pcap wrapper)
 * keeps both ends on plain frames.
 *
 * Copies.  A frame is copied once, on send, into a frame of the wire's;
 * the receiving stack reads it where it lies (receive_borrowed) and the
 * end keeps it until its next receive.  Frames of more than
 * MEM_SMALL_FRAME bytes are recycled through a bounded list of spares, so
 * 64 KiB super-segments do not cost a fresh allocation (and fresh pages)
 * each.
 *
 * Lifetime: each end is destroyed on its own.  Destroying an end discards
 * the frames waiting for it and closes its eventfd; the peer's sends then
 * vanish silently, as on a cable with nobody at the other end.  The wire is
 * freed with the second end.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "link/frame_queue.h"
#include "link/link.h"
#include "link/offload.h"

/* Frames up to this size are allocated to fit; larger ones get
 * LINK_FRAME_MAX bytes and are recycled, up to MEM_SPARE_FRAMES of them. */
#define MEM_SMALL_FRAME 4096
#define MEM_SPARE_FRAMES 64

/* Bounds of each direction's queue: whichever is reached first. */
#define MEM_QUEUE_FRAMES_MAX 4096
#define MEM_QUEUE_BYTES_MAX (16u * 1024 * 1024)

struct mem_direction {
    struct link_frame_queue queue; /* frames waiting for this end */
    int event_fd;                  /* readable while queue is non-empty */
    int open;                      /* this end still exists */
    int wakeups;                   /* someone asked for event_fd: keep it in step */
    unsigned offloads_wanted;      /* what this end's stack asked for */
};

struct mem_link;

struct mem_wire {
    pthread_mutex_t lock;
    unsigned ends_open;
    struct mem_direction toward[2];
    struct mem_link *ends[2];
    struct link_frame *spares;   /* large frames to reuse, linked by next */
    unsigned spare_count;
};

struct mem_link {
    struct usock_link link;
    struct mem_wire *wire;
    int side; /* 0 or 1: receives from toward[side] */
    struct link_frame *borrowed; /* lent out by receive_borrowed until the next receive */
};

/* A frame for length bytes: a spare when large, else a new one.  Called
 * with the wire's lock held.  NULL when out of memory. */
static struct link_frame *mem_frame_take(struct mem_wire *wire, size_t length)
{
    struct link_frame *frame;
    if (length <= MEM_SMALL_FRAME)
        return malloc(sizeof(*frame) + length);
    frame = wire->spares;
    if (frame != NULL) {
        wire->spares = frame->next;
        wire->spare_count--;
        return frame;
    }
    return malloc(sizeof(*frame) + LINK_FRAME_MAX);
}

/* Gives a frame back: large ones to the spares while there is room.
 * Called with the wire's lock held. */
static void mem_frame_give(struct mem_wire *wire, struct link_frame *frame)
{
    if (frame == NULL)
        return;
    if (frame->length > MEM_SMALL_FRAME && wire->spare_count < MEM_SPARE_FRAMES) {
        frame->next = wire->spares;
        wire->spares = frame;
        wire->spare_count++;
        return;
    }
    free(frame);
}

/* Queues a copy of the frame in count parts (length bytes in all), with
 * its info, for the peer.  Returns 0 or -ENOBUFS when out of memory or the
 * peer's queue is full. */
static int mem_send_frame(struct mem_link *end, const struct iovec *parts, int count,
                          size_t length, const struct link_frame_info *info)
{
    struct mem_wire *wire = end->wire;
    struct mem_direction *peer = &wire->toward[1 - end->side];
    int result = 0;
    if (length > LINK_FRAME_MAX)
        return -EMSGSIZE;

    pthread_mutex_lock(&wire->lock);
    struct link_frame *copy = mem_frame_take(wire, length);
    pthread_mutex_unlock(&wire->lock);
    if (copy == NULL)
        return -ENOBUFS;
    copy->next = NULL;
    copy->length = length;
    memset(&copy->info, 0, sizeof(copy->info));
    if (info != NULL) {
        copy->info = *info;
        /* What the receiver learns: nothing left to check. */
        copy->info.checksum_verified = info->checksum_partial;
        copy->info.checksum_partial = false;
    }
    link_parts_copy(copy->data, parts, count);

    pthread_mutex_lock(&wire->lock);
    if (!peer->open) {
        mem_frame_give(wire, copy);
    } else if (link_frame_queue_full(&peer->queue, length, MEM_QUEUE_FRAMES_MAX,
                                     MEM_QUEUE_BYTES_MAX)) {
        mem_frame_give(wire, copy);
        result = -ENOBUFS;
    } else {
        link_frame_queue_push(&peer->queue, copy);
        if (peer->queue.count == 1 && peer->wakeups)
            link_event_signal(peer->event_fd);
    }
    pthread_mutex_unlock(&wire->lock);
    return result;
}

static int mem_send(struct usock_link *link, const uint8_t *frame, size_t length, uint64_t now)
{
    struct iovec part = {(void *)frame, length};
    (void)now;
    return mem_send_frame((struct mem_link *)link, &part, 1, length, NULL);
}

static int mem_send_offloaded(struct usock_link *link, const uint8_t *frame, size_t length,
                              const struct link_frame_info *info, uint64_t now)
{
    struct iovec part = {(void *)frame, length};
    (void)now;
    return mem_send_frame((struct mem_link *)link, &part, 1, length, info);
}

static int mem_send_gather(struct usock_link *link, const struct iovec *parts, int count,
                           size_t length, const struct link_frame_info *info, uint64_t now)
{
    (void)now;
    return mem_send_frame((struct mem_link *)link, parts, count, length, info);
}

static ssize_t mem_receive_borrowed(struct usock_link *link, const uint8_t **data,
                                    struct link_frame_info *info, uint64_t now)
{
    struct mem_link *end = (struct mem_link *)link;
    struct mem_wire *wire = end->wire;
    struct mem_direction *mine = &wire->toward[end->side];
    (void)now;

    pthread_mutex_lock(&wire->lock);
    mem_frame_give(wire, end->borrowed);
    end->borrowed = NULL;
    struct link_frame *frame = link_frame_queue_pop(&mine->queue);
    if (frame != NULL && mine->queue.count == 0 && mine->wakeups)
        link_event_clear(mine->event_fd);
    pthread_mutex_unlock(&wire->lock);

    if (frame == NULL)
        return -EAGAIN;
    end->borrowed = frame;
    *data = frame->data;
    if (info != NULL)
        *info = frame->info;
    return (ssize_t)frame->length;
}

static ssize_t mem_receive_offloaded(struct usock_link *link, uint8_t *buffer, size_t capacity,
                                     struct link_frame_info *info, uint64_t now)
{
    const uint8_t *data;
    ssize_t length = mem_receive_borrowed(link, &data, info, now);
    if (length < 0)
        return length;
    size_t stored = (size_t)length < capacity ? (size_t)length : capacity;
    memcpy(buffer, data, stored);
    return (ssize_t)stored;
}

static ssize_t mem_receive(struct usock_link *link, uint8_t *buffer, size_t capacity,
                           uint64_t now)
{
    /* Offloaded frames only ever travel when both ends asked for them, so
     * a plain receive never meets one. */
    return mem_receive_offloaded(link, buffer, capacity, NULL, now);
}

/* Both ends' stacks must ask before either gets offloads; the second to
 * ask turns them on for both. */
static int mem_enable_offloads(struct usock_link *link, unsigned wanted)
{
    struct mem_link *end = (struct mem_link *)link;
    struct mem_wire *wire = end->wire;
    pthread_mutex_lock(&wire->lock);
    wire->toward[end->side].offloads_wanted =
        wanted & (LINK_OFFLOAD_CHECKSUM | LINK_OFFLOAD_TCP_SEGMENTATION);
    unsigned both = wire->toward[0].offloads_wanted & wire->toward[1].offloads_wanted;
    if (!(both & LINK_OFFLOAD_CHECKSUM))
        both = 0;
    for (int side = 0; side < 2; side++)
        if (wire->ends[side] != NULL && wire->toward[side].open)
            wire->ends[side]->link.offloads = both;
    pthread_mutex_unlock(&wire->lock);
    return 0;
}

static int mem_wait_fd(const struct usock_link *link)
{
    const struct mem_link *end = (const struct mem_link *)link;
    struct mem_wire *wire = end->wire;
    struct mem_direction *mine = &wire->toward[end->side];
    pthread_mutex_lock(&wire->lock);
    if (!mine->wakeups) {
        mine->wakeups = 1;
        if (mine->queue.count > 0)
            link_event_signal(mine->event_fd);
    }
    int fd = mine->event_fd;
    pthread_mutex_unlock(&wire->lock);
    return fd;
}

static void mem_destroy(struct usock_link *link)
{
    struct mem_link *end = (struct mem_link *)link;
    struct mem_wire *wire = end->wire;
    struct mem_direction *mine = &wire->toward[end->side];

    pthread_mutex_lock(&wire->lock);
    mine->open = 0;
    wire->ends[end->side] = NULL;
    link_frame_queue_clear(&mine->queue);
    mem_frame_give(wire, end->borrowed);
    end->borrowed = NULL;
    close(mine->event_fd);
    mine->event_fd = -1;
    int last = --wire->ends_open == 0;
    pthread_mutex_unlock(&wire->lock);

    if (last) {
        while (wire->spares != NULL) {
            struct link_frame *spare = wire->spares;
            wire->spares = spare->next;
            free(spare);
        }
        pthread_mutex_destroy(&wire->lock);
        free(wire);
    }
    free(end);
}

static const struct link_ops mem_ops = {
    .kind = "mem",
    .send = mem_send,
    .receive = mem_receive,
    .wait_fd = mem_wait_fd,
    .deadline = NULL,
    .destroy = mem_destroy,
    .enable_offloads = mem_enable_offloads,
    .send_offloaded = mem_send_offloaded,
    .receive_offloaded = mem_receive_offloaded,
    .receive_borrowed = mem_receive_borrowed,
    .send_gather = mem_send_gather,
};

/*
 * usock_link_mem_pair - makes two Ethernet links joined by an in-memory wire
 * (MTU 1500, no hardware address of their own).  Each end is owned by the
 * caller and closed on its own.  Returns 0, or -ENOMEM / -EMFILE ...
 */
int usock_link_mem_pair(struct usock_link **end_a, struct usock_link **end_b)
{
    int result;
    if (end_a == NULL || end_b == NULL)
        return -EINVAL;
    *end_a = NULL;
    *end_b = NULL;

    struct mem_wire *wire = calloc(1, sizeof(*wire));
    if (wire == NULL)
        return -ENOMEM;
    result = -pthread_mutex_init(&wire->lock, NULL);
    if (result < 0)
        goto fail_free_wire;

    struct mem_link *ends[2] = { NULL, NULL };
    wire->toward[0].event_fd = -1;
    wire->toward[1].event_fd = -1;
    for (int side = 0; side < 2; side++) {
        wire->toward[side].event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wire->toward[side].event_fd < 0) {
            result = -errno;
            goto fail_free_ends;
        }
        ends[side] = calloc(1, sizeof(*ends[side]));
        if (ends[side] == NULL) {
            result = -ENOMEM;
            goto fail_free_ends;
        }
        ends[side]->link.ops = &mem_ops;
        ends[side]->link.layer = LINK_LAYER_ETHERNET;
        ends[side]->link.mtu = 1500;
        ends[side]->link.has_mac = 0;
        snprintf(ends[side]->link.name, sizeof(ends[side]->link.name), "mem:%c", 'a' + side);
        ends[side]->wire = wire;
        ends[side]->side = side;
        wire->ends[side] = ends[side];
        wire->toward[side].open = 1;
    }
    wire->ends_open = 2;
    *end_a = &ends[0]->link;
    *end_b = &ends[1]->link;
    return 0;

fail_free_ends:
    for (int side = 0; side < 2; side++) {
        if (wire->toward[side].event_fd >= 0)
            close(wire->toward[side].event_fd);
        free(ends[side]);
    }
    pthread_mutex_destroy(&wire->lock);
fail_free_wire:
    free(wire);
    return result;
}
