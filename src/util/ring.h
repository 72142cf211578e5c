/*
 * ring.h - a bounded byte FIFO over one circular buffer: a TCP socket's
 * send buffer (bytes from the oldest unacknowledged onward) and receive
 * buffer (bytes in order, not yet read).  Data can be read at an offset
 * without consuming it (peek), which is how segments are built from the
 * send buffer and retransmitted.  The storage is allocated on first write,
 * grows by doubling up to the capacity as data backs up, and is freed when
 * the ring drains, so idle connections cost little.
 */
#ifndef USOCK_RING_H
#define USOCK_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Storage of drained rings kept for the next ring that needs some, so a
 * connection that drains and refills (bulk transfer, request and reply)
 * does not have the kernel map fresh pages each time.  Only blocks of
 * RING_POOL_BLOCK_MIN bytes or more are kept; at most RING_POOL_BLOCKS of
 * them and limit bytes in all. */
#define RING_POOL_BLOCKS 8
#define RING_POOL_BLOCK_MIN 32768
struct ring_pool {
    size_t *accounting; /* when set, storage rings hold is added here (and
                         * taken off when given back): a memory budget
                         * shared by the rings of the pool */
    uint8_t *blocks[RING_POOL_BLOCKS];
    size_t sizes[RING_POOL_BLOCKS];
    unsigned count;
    size_t bytes;
    size_t limit;
};

void ring_pool_init(struct ring_pool *pool, size_t limit, size_t *accounting);
/* Frees every block kept. */
void ring_pool_destroy(struct ring_pool *pool);

struct ring {
    uint8_t *data;     /* NULL until the first write */
    size_t capacity;   /* the bound, in bytes */
    size_t head;       /* index of the oldest byte */
    size_t length;     /* bytes held */
    size_t allocated;  /* bytes of storage held now (0 when data is NULL) */
    struct ring_pool *pool; /* when set, storage comes from and goes back to
                             * it, and is counted in its accounting */
};

void ring_init(struct ring *ring, size_t capacity);
void ring_destroy(struct ring *ring);
/* Changes the bound; fails with -EBUSY if length exceeds it (no data is
 * ever dropped).  Returns 0. */
int ring_set_capacity(struct ring *ring, size_t capacity);
static inline size_t ring_free_space(const struct ring *ring)
{
    return ring->capacity - ring->length;
}
/* Appends up to length bytes; returns how many fit (0 also when memory
 * runs out). */
size_t ring_write(struct ring *ring, const void *data, size_t length);
/* Copies up to length bytes starting offset bytes past the head into out,
 * without consuming; returns bytes copied. */
size_t ring_peek(const struct ring *ring, size_t offset, void *out, size_t length);
/* Points parts at the up to length bytes starting offset bytes past the
 * head, where they lie (one part, or two where the ring wraps), without
 * copying; returns how many parts (0 when nothing is there). */
int ring_parts(const struct ring *ring, size_t offset, size_t length, struct iovec parts[2]);
/* Drops up to length bytes from the head; returns bytes dropped. */
size_t ring_discard(struct ring *ring, size_t length);

#endif
