/*
 * packet_buffer.h - a frame being built or queued, with headroom.
 *
 * A buffer is allocated with room in front for every header below the layer
 * that fills it (Ethernet + IPv4 with options + the transport header), and
 * each layer prepends its header with packet_buffer_push (lwIP pbuf_header,
 * Linux skb_push).  Data lives in [data, data + length).  Whoever holds the
 * pointer owns the buffer: functions that take one say whether they consume
 * it.  Buffers queue on singly linked lists through next.
 */
#ifndef USOCK_PACKET_BUFFER_H
#define USOCK_PACKET_BUFFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/ring.h"

/* Ethernet (14) + VLAN (4) + IPv4 with options (60) + TCP with options (60),
 * rounded up. */
#define PACKET_HEADROOM 160

struct packet_buffer {
    struct packet_buffer *next;
    uint8_t *data;
    size_t length;
    size_t capacity; /* bytes of storage */
    uint32_t next_hop; /* set by IPv4 output for neighbour resolution (network order) */
    /* Offloads asked of the link (see LINK_OFFLOAD_* in link/link.h): the
     * transport checksum holds only the pseudo-header sum, to be finished
     * from transport_header; segment_size > 0 makes a TCP super-segment
     * cut into segments of that much payload. */
    bool checksum_partial;
    uint16_t checksum_offset;  /* from transport_header to the checksum field */
    uint16_t segment_size;
    uint8_t *transport_header; /* inside storage, when checksum_partial */
    /* Payload not copied in yet: payload_length bytes from payload_offset
     * of payload_ring belong after data + length (the room is reserved).
     * The link gathers them from the ring as it sends, or
     * packet_buffer_linearize copies them in first; either must happen
     * before the ring changes, so such a buffer is sent at once or
     * linearized before it waits anywhere. */
    const struct ring *payload_ring;
    size_t payload_offset;
    size_t payload_length;
    uint8_t storage[];
};

/* A buffer with headroom bytes in front and room for payload bytes after;
 * length starts at 0.  Returns NULL when out of memory. */
struct packet_buffer *packet_buffer_new(size_t headroom, size_t payload);
/* A copy of length bytes of data with PACKET_HEADROOM in front. */
struct packet_buffer *packet_buffer_copy(const uint8_t *data, size_t length);
void packet_buffer_free(struct packet_buffer *buffer);
/* Extends the data at the front by bytes (the caller checked the headroom
 * with packet_buffer_headroom) and returns the new front. */
uint8_t *packet_buffer_push(struct packet_buffer *buffer, size_t bytes);
/* Extends the data at the end by bytes and returns where they start. */
uint8_t *packet_buffer_put(struct packet_buffer *buffer, size_t bytes);
size_t packet_buffer_headroom(const struct packet_buffer *buffer);
/* Copies a payload still in its ring (payload_ring) into the buffer, moving
 * the buffer to a larger one when its tailroom is short.  Returns the
 * buffer (the same or its replacement), or NULL when out of memory (then
 * it has been freed). */
struct packet_buffer *packet_buffer_linearize(struct packet_buffer *buffer);
size_t packet_buffer_tailroom(const struct packet_buffer *buffer);

/* A FIFO of buffers with a bound on how many it holds. */
struct packet_queue {
    struct packet_buffer *head, *tail;
    size_t count;
    size_t limit;
};

void packet_queue_init(struct packet_queue *queue, size_t limit);
/* Appends buffer (consumed).  Returns 0, or -ENOBUFS when full: then the
 * buffer is freed. */
int packet_queue_push(struct packet_queue *queue, struct packet_buffer *buffer);
/* Removes and returns the oldest buffer, or NULL. */
struct packet_buffer *packet_queue_pop(struct packet_queue *queue);
/* Frees every buffer in the queue. */
void packet_queue_purge(struct packet_queue *queue);

#endif
