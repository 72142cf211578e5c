/*
 * ring.c - bounded byte FIFO; see ring.h.  The storage is allocated on
 * first write, just big enough (RING_FIRST_ALLOCATION, doubling until the
 * bytes fit), grows by doubling up to the capacity as data backs up (moving
 * what it holds to the front of the new storage), and is released when the
 * ring empties.  A request and its reply so cost a small heap block each,
 * not a bound-sized one the kernel must map in page by page; a bulk
 * transfer reaches full size after a few doublings, whose copies add up to
 * less than one pass over the data.
 */
#include "util/ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The first storage for a ring: small enough for malloc's per-thread
 * cache (glibc's tcache takes up to 1032 bytes), doubled as needed. */
#define RING_FIRST_ALLOCATION 1024

void ring_pool_init(struct ring_pool *pool, size_t limit, size_t *accounting)
{
    memset(pool, 0, sizeof(*pool));
    pool->limit = limit;
    pool->accounting = accounting;
}

void ring_pool_destroy(struct ring_pool *pool)
{
    for (unsigned i = 0; i < pool->count; i++)
        free(pool->blocks[i]);
    pool->count = 0;
    pool->bytes = 0;
}

/* Storage for ring of at least minimum bytes and at most its capacity:
 * the largest such block the pool keeps, else a new one of preferred
 * bytes.  Stores its size in *size; NULL when out of memory. */
static uint8_t *ring_storage_take(struct ring *ring, size_t minimum, size_t preferred,
                                  size_t *size)
{
    struct ring_pool *pool = ring->pool;
    if (pool && preferred >= RING_POOL_BLOCK_MIN) {
        int best = -1;
        for (unsigned i = 0; i < pool->count; i++)
            if (pool->sizes[i] >= minimum && pool->sizes[i] <= ring->capacity &&
                (best < 0 || pool->sizes[i] > pool->sizes[best]))
                best = (int)i;
        if (best >= 0) {
            uint8_t *block = pool->blocks[best];
            *size = pool->sizes[best];
            pool->bytes -= *size;
            pool->count--;
            pool->blocks[best] = pool->blocks[pool->count];
            pool->sizes[best] = pool->sizes[pool->count];
            return block;
        }
    }
    *size = preferred;
    return malloc(preferred ? preferred : 1);
}

/* Gives storage of size bytes back: to the pool when it has room. */
static void ring_storage_give(struct ring *ring, uint8_t *block, size_t size)
{
    struct ring_pool *pool = ring->pool;
    if (block && pool && size >= RING_POOL_BLOCK_MIN && pool->count < RING_POOL_BLOCKS &&
        pool->bytes + size <= pool->limit) {
        pool->blocks[pool->count] = block;
        pool->sizes[pool->count] = size;
        pool->count++;
        pool->bytes += size;
        return;
    }
    free(block);
}

void ring_init(struct ring *ring, size_t capacity)
{
    ring->data = NULL;
    ring->capacity = capacity;
    ring->head = 0;
    ring->length = 0;
    ring->allocated = 0;
    ring->pool = NULL;
}

/* Records a change of the storage held. */
static void ring_account(struct ring *ring, size_t allocated)
{
    if (ring->pool && ring->pool->accounting)
        *ring->pool->accounting = *ring->pool->accounting - ring->allocated + allocated;
    ring->allocated = allocated;
}

void ring_destroy(struct ring *ring)
{
    ring_storage_give(ring, ring->data, ring->allocated);
    ring->data = NULL;
    ring->head = 0;
    ring->length = 0;
    ring_account(ring, 0);
}

/* Moves the contents into new storage of at least minimum bytes (at least
 * length), preferably size.  Returns 0 or -ENOMEM. */
static int ring_reallocate(struct ring *ring, size_t minimum, size_t size)
{
    size_t got;
    uint8_t *data = ring_storage_take(ring, minimum, size, &got);
    if (!data)
        return -ENOMEM;
    if (ring->data)
        ring_peek(ring, 0, data, ring->length);
    ring_storage_give(ring, ring->data, ring->allocated);
    ring->data = data;
    ring->head = 0;
    ring_account(ring, got ? got : 1);
    return 0;
}

int ring_set_capacity(struct ring *ring, size_t capacity)
{
    if (ring->length > capacity)
        return -EBUSY;
    if (ring->data && ring->allocated > capacity &&
        ring_reallocate(ring, ring->length, capacity) != 0)
        return -ENOMEM;
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
    size_t needed = ring->length + length;
    if (!ring->data || needed > ring->allocated) {
        size_t size = ring->data ? ring->allocated : RING_FIRST_ALLOCATION;
        while (size < needed)
            size *= 2;
        if (size > ring->capacity)
            size = ring->capacity;
        if (ring_reallocate(ring, needed, size) != 0) {
            /* No memory to grow: take what the present storage holds. */
            if (!ring->data || ring->allocated <= ring->length)
                return 0;
            length = ring->allocated - ring->length;
        }
    }
    size_t size = ring->allocated;
    size_t tail = (ring->head + ring->length) % size;
    size_t first = size - tail < length ? size - tail : length;
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
    size_t start = (ring->head + offset) % ring->allocated;
    size_t first = ring->allocated - start < length ? ring->allocated - start : length;
    memcpy(out, ring->data + start, first);
    memcpy((uint8_t *)out + first, ring->data, length - first);
    return length;
}

int ring_parts(const struct ring *ring, size_t offset, size_t length, struct iovec parts[2])
{
    if (offset >= ring->length || length == 0)
        return 0;
    if (length > ring->length - offset)
        length = ring->length - offset;
    size_t start = (ring->head + offset) % ring->allocated;
    size_t first = ring->allocated - start < length ? ring->allocated - start : length;
    parts[0] = (struct iovec){ ring->data + start, first };
    if (first == length)
        return 1;
    parts[1] = (struct iovec){ ring->data, length - first };
    return 2;
}

size_t ring_discard(struct ring *ring, size_t length)
{
    if (length > ring->length)
        length = ring->length;
    ring->length -= length;
    ring->head = ring->length ? (ring->head + length) % ring->allocated : 0;
    if (ring->length == 0) {
        ring_storage_give(ring, ring->data, ring->allocated);
        ring->data = NULL;
        ring_account(ring, 0);
    }
    return length;
}
