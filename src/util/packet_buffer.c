/*
 * packet_buffer.c - frames with headroom, and bounded FIFOs of them; see
 * packet_buffer.h.
 */
#include "util/packet_buffer.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct packet_buffer *packet_buffer_new(size_t headroom, size_t payload)
{
    if (headroom > SIZE_MAX / 2 || payload > SIZE_MAX / 2)
        return NULL;
    struct packet_buffer *buffer = malloc(sizeof(*buffer) + headroom + payload);
    if (!buffer)
        return NULL;
    buffer->next = NULL;
    buffer->capacity = headroom + payload;
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
