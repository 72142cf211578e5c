/*
 * frame_queue.h - a FIFO of copied frames, and the eventfd signal that goes
 * with it, shared by the in-memory and callback links (private to src/link).
 *
 * A queue owns the frames on it.  It is not locked: the link that embeds it
 * holds its own mutex around every call.  The eventfd helpers keep a
 * descriptor readable exactly while a queue is non-empty: signal on the push
 * that makes the queue non-empty, clear on the pop that empties it.
 */
#ifndef USOCK_LINK_FRAME_QUEUE_H
#define USOCK_LINK_FRAME_QUEUE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "link/link.h"

struct link_frame {
    struct link_frame *next;
    size_t length;
    struct link_frame_info info; /* offloads the frame carries (all zero: none) */
    uint8_t data[];
};

struct link_frame_queue {
    struct link_frame *head;
    struct link_frame *tail;
    size_t count;
    size_t bytes;
};

/* Copies length bytes of data into a new frame; NULL when out of memory. */
static inline struct link_frame *link_frame_new(const uint8_t *data, size_t length)
{
    struct link_frame *frame = malloc(sizeof(*frame) + length);
    if (frame == NULL)
        return NULL;
    frame->next = NULL;
    frame->length = length;
    memset(&frame->info, 0, sizeof(frame->info));
    if (length > 0)
        memcpy(frame->data, data, length);
    return frame;
}

/* Nonzero when one more frame of length bytes would pass either bound. */
static inline int link_frame_queue_full(const struct link_frame_queue *queue, size_t length,
                                        size_t max_frames, size_t max_bytes)
{
    return queue->count >= max_frames || queue->bytes + length > max_bytes;
}

/* Appends frame (the queue takes ownership). */
static inline void link_frame_queue_push(struct link_frame_queue *queue, struct link_frame *frame)
{
    frame->next = NULL;
    if (queue->tail != NULL)
        queue->tail->next = frame;
    else
        queue->head = frame;
    queue->tail = frame;
    queue->count++;
    queue->bytes += frame->length;
}

/* Removes and returns the oldest frame (the caller owns it), or NULL. */
static inline struct link_frame *link_frame_queue_pop(struct link_frame_queue *queue)
{
    struct link_frame *frame = queue->head;
    if (frame == NULL)
        return NULL;
    queue->head = frame->next;
    if (queue->head == NULL)
        queue->tail = NULL;
    queue->count--;
    queue->bytes -= frame->length;
    frame->next = NULL;
    return frame;
}

/* Frees every frame on the queue. */
static inline void link_frame_queue_clear(struct link_frame_queue *queue)
{
    struct link_frame *frame;
    while ((frame = link_frame_queue_pop(queue)) != NULL)
        free(frame);
}

/* Makes a nonblocking eventfd readable.  Cannot fail in practice: the
 * counter only ever holds 0 or 1 here. */
static inline void link_event_signal(int event_fd)
{
    uint64_t one = 1;
    ssize_t written;
    do {
        written = write(event_fd, &one, sizeof(one));
    } while (written < 0 && errno == EINTR);
}

/* Makes a nonblocking eventfd unreadable again by draining its counter. */
static inline void link_event_clear(int event_fd)
{
    uint64_t value;
    ssize_t got;
    do {
        got = read(event_fd, &value, sizeof(value));
    } while (got < 0 && errno == EINTR);
}

#endif /* USOCK_LINK_FRAME_QUEUE_H */
