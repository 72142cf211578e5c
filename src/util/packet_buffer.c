/*
 * packet_buffer.c - frames with headroom, and bounded FIFOs of them; see
 * packet_buffer.h.
 *
 * Buffers come in three sizes of allocation: one for headers alone (a
 * segment whose payload the link gathers from the socket's ring, an ACK),
 * one for a frame of ordinary size, one for a 64 KiB super-segment.  A
 * freed buffer of any of them goes onto a short free list of the thread
 * that frees it, and the next buffer of that size the thread asks for
 * comes off it, so the packet path does not call malloc once warm.  Other sizes go to malloc directly.  The
 * lists are per thread so they need no lock; a thread's list is freed when
 * it exits.  Under AddressSanitizer nothing is kept, so its allocator sees
 * every free and still catches a use after free or a leak.
 */
#include "util/packet_buffer.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define KEEP_FREED_BUFFERS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEEP_FREED_BUFFERS 0
#endif
#endif
#ifndef KEEP_FREED_BUFFERS
#define KEEP_FREED_BUFFERS 1
#endif

enum { HEADERS_CLASS, FRAME_CLASS, SUPER_SEGMENT_CLASS, CLASS_COUNT };

/* Whole allocations, header included. */
static const size_t class_bytes[CLASS_COUNT] = {512, 4096, 72 * 1024};
/* How many freed buffers of each size a thread keeps. */
static const unsigned class_keep[CLASS_COUNT] = {KEEP_FREED_BUFFERS ? 128 : 0,
                                                 KEEP_FREED_BUFFERS ? 128 : 0,
                                                 KEEP_FREED_BUFFERS ? 4 : 0};

struct free_lists {
    struct packet_buffer *head[CLASS_COUNT];
    unsigned count[CLASS_COUNT];
    bool registered;
};

static _Thread_local struct free_lists thread_free_lists;
static pthread_key_t free_lists_key;
static pthread_once_t free_lists_once = PTHREAD_ONCE_INIT;

static void free_lists_release(void *lists_pointer)
{
    struct free_lists *lists = lists_pointer;
    for (int size_class = 0; size_class < CLASS_COUNT; size_class++) {
        while (lists->head[size_class]) {
            struct packet_buffer *buffer = lists->head[size_class];
            lists->head[size_class] = buffer->next;
            free(buffer);
        }
        lists->count[size_class] = 0;
    }
}

static void free_lists_make_key(void)
{
    if (pthread_key_create(&free_lists_key, free_lists_release) != 0)
        free_lists_key = (pthread_key_t)-1;
}

/* This thread's lists, registered so they are freed when it exits; NULL
 * when that cannot be arranged (then nothing is kept). */
static struct free_lists *free_lists_of_thread(void)
{
    struct free_lists *lists = &thread_free_lists;
    if (!lists->registered) {
        pthread_once(&free_lists_once, free_lists_make_key);
        if (free_lists_key == (pthread_key_t)-1 ||
            pthread_setspecific(free_lists_key, lists) != 0)
            return NULL;
        lists->registered = true;
    }
    return lists;
}

static int class_of_allocation(size_t bytes)
{
    for (int size_class = 0; size_class < CLASS_COUNT; size_class++)
        if (bytes <= class_bytes[size_class])
            return size_class;
    return -1;
}

struct packet_buffer *packet_buffer_new(size_t headroom, size_t payload)
{
    if (headroom > SIZE_MAX / 4 || payload > SIZE_MAX / 4)
        return NULL;
    size_t bytes = sizeof(struct packet_buffer) + headroom + payload;
    int size_class = class_of_allocation(bytes);
    struct packet_buffer *buffer = NULL;
    if (size_class >= 0) {
        bytes = class_bytes[size_class];
        struct free_lists *lists = &thread_free_lists;
        if (lists->head[size_class]) {
            buffer = lists->head[size_class];
            lists->head[size_class] = buffer->next;
            lists->count[size_class]--;
        }
    }
    if (!buffer)
        buffer = malloc(bytes);
    if (!buffer)
        return NULL;
    buffer->next = NULL;
    buffer->capacity = bytes - sizeof(struct packet_buffer);
    buffer->data = buffer->storage + headroom;
    buffer->length = 0;
    buffer->next_hop = 0;
    buffer->checksum_partial = false;
    buffer->segment_size = 0;
    buffer->transport_header = NULL;
    buffer->payload_ring = NULL;
    buffer->payload_offset = 0;
    buffer->payload_length = 0;
    return buffer;
}

struct packet_buffer *packet_buffer_copy(const uint8_t *data, size_t length)
{
    struct packet_buffer *buffer = packet_buffer_new(PACKET_HEADROOM, length);
    if (!buffer)
        return NULL;
    memcpy(packet_buffer_put(buffer, length), data, length);
    return buffer;
}

void packet_buffer_free(struct packet_buffer *buffer)
{
    if (!buffer)
        return;
    size_t bytes = sizeof(struct packet_buffer) + buffer->capacity;
    int size_class = class_of_allocation(bytes);
    if (size_class >= 0 && class_bytes[size_class] == bytes) {
        struct free_lists *lists = free_lists_of_thread();
        if (lists && lists->count[size_class] < class_keep[size_class]) {
            buffer->next = lists->head[size_class];
            lists->head[size_class] = buffer;
            lists->count[size_class]++;
            return;
        }
    }
    free(buffer);
}

struct packet_buffer *packet_buffer_linearize(struct packet_buffer *buffer)
{
    if (!buffer->payload_ring)
        return buffer;
    if (packet_buffer_tailroom(buffer) < buffer->payload_length) {
        size_t headroom = packet_buffer_headroom(buffer);
        struct packet_buffer *larger =
            packet_buffer_new(headroom, buffer->length + buffer->payload_length);
        if (!larger) {
            packet_buffer_free(buffer);
            return NULL;
        }
        memcpy(packet_buffer_put(larger, buffer->length), buffer->data, buffer->length);
        larger->next_hop = buffer->next_hop;
        larger->checksum_partial = buffer->checksum_partial;
        larger->checksum_offset = buffer->checksum_offset;
        larger->segment_size = buffer->segment_size;
        if (buffer->transport_header)
            larger->transport_header = larger->data + (buffer->transport_header - buffer->data);
        larger->payload_ring = buffer->payload_ring;
        larger->payload_offset = buffer->payload_offset;
        larger->payload_length = buffer->payload_length;
        packet_buffer_free(buffer);
        buffer = larger;
    }
    ring_peek(buffer->payload_ring, buffer->payload_offset,
              packet_buffer_put(buffer, buffer->payload_length), buffer->payload_length);
    buffer->payload_ring = NULL;
    buffer->payload_offset = 0;
    buffer->payload_length = 0;
    return buffer;
}

size_t packet_buffer_headroom(const struct packet_buffer *buffer)
{
    return (size_t)(buffer->data - buffer->storage);
}

size_t packet_buffer_tailroom(const struct packet_buffer *buffer)
{
    return buffer->capacity - packet_buffer_headroom(buffer) - buffer->length;
}

uint8_t *packet_buffer_push(struct packet_buffer *buffer, size_t bytes)
{
    assert(bytes <= packet_buffer_headroom(buffer));
    buffer->data -= bytes;
    buffer->length += bytes;
    return buffer->data;
}

uint8_t *packet_buffer_put(struct packet_buffer *buffer, size_t bytes)
{
    assert(bytes <= packet_buffer_tailroom(buffer));
    uint8_t *end = buffer->data + buffer->length;
    buffer->length += bytes;
    return end;
}

void packet_queue_init(struct packet_queue *queue, size_t limit)
{
    queue->head = queue->tail = NULL;
    queue->count = 0;
    queue->limit = limit;
}

int packet_queue_push(struct packet_queue *queue, struct packet_buffer *buffer)
{
    if (queue->count >= queue->limit) {
        packet_buffer_free(buffer);
        return -ENOBUFS;
    }
    buffer->next = NULL;
    if (queue->tail)
        queue->tail->next = buffer;
    else
        queue->head = buffer;
    queue->tail = buffer;
    queue->count++;
    return 0;
}

struct packet_buffer *packet_queue_pop(struct packet_queue *queue)
{
    struct packet_buffer *buffer = queue->head;
    if (!buffer)
        return NULL;
    queue->head = buffer->next;
    if (!queue->head)
        queue->tail = NULL;
    buffer->next = NULL;
    queue->count--;
    return buffer;
}

void packet_queue_purge(struct packet_queue *queue)
{
    struct packet_buffer *buffer;
    while ((buffer = packet_queue_pop(queue)))
        packet_buffer_free(buffer);
}
