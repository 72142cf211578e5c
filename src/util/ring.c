/*
 * ring.c - bounded byte FIFO; see ring.h.  The buffer is allocated at full
 * capacity on first write and released when the ring empties.
 */
#include "util/ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void ring_init(struct ring *ring, size_t capacity)
{
    ring->data = NULL;
    ring->capacity = capacity;
    ring->head = 0;
    ring->length = 0;
    ring->allocated = 0;
    ring->accounting = NULL;
}

/* Records a change of the storage held. */
static void ring_account(struct ring *ring, size_t allocated)
{
    if (ring->accounting)
        *ring->accounting = *ring->accounting - ring->allocated + allocated;
    ring->allocated = allocated;
}

void ring_destroy(struct ring *ring)
{
    free(ring->data);
    ring->data = NULL;
    ring->head = 0;
    ring->length = 0;
    ring_account(ring, 0);
}

int ring_set_capacity(struct ring *ring, size_t capacity)
{
    if (ring->length > capacity)
        return -EBUSY;
    if (ring->data) {
        uint8_t *data = malloc(capacity ? capacity : 1);
        if (!data)
            return -ENOMEM;
        ring_peek(ring, 0, data, ring->length);
        free(ring->data);
        ring->data = data;
        ring->head = 0;
        ring_account(ring, capacity ? capacity : 1);
    }
    ring->capacity = capacity;
    return 0;
}

size_t ring_write(struct ring *ring, const void *data, size_t length)
{
    size_t room = ring_free_space(ring);
    if (length > room)
        length = room;
    if (length == 0)
        return 0;
    if (!ring->data) {
        ring->data = malloc(ring->capacity);
        if (!ring->data)
            return 0;
        ring->head = 0;
        ring_account(ring, ring->capacity);
    }
    size_t tail = (ring->head + ring->length) % ring->capacity;
    size_t first = ring->capacity - tail < length ? ring->capacity - tail : length;
    memcpy(ring->data + tail, data, first);
    memcpy(ring->data, (const uint8_t *)data + first, length - first);
    ring->length += length;
    return length;
}

size_t ring_peek(const struct ring *ring, size_t offset, void *out, size_t length)
{
    if (offset >= ring->length)
        return 0;
    if (length > ring->length - offset)
        length = ring->length - offset;
    size_t start = (ring->head + offset) % ring->capacity;
    size_t first = ring->capacity - start < length ? ring->capacity - start : length;
    memcpy(out, ring->data + start, first);
    memcpy((uint8_t *)out + first, ring->data, length - first);
    return length;
}

size_t ring_discard(struct ring *ring, size_t length)
{
    if (length > ring->length)
        length = ring->length;
    ring->length -= length;
    ring->head = ring->length ? (ring->head + length) % ring->capacity : 0;
    if (ring->length == 0) {
        free(ring->data);
        ring->data = NULL;
        ring_account(ring, 0);
    }
    return length;
}
