/*
 * offload.h - finishing in software what an offloading peer left undone
 * (private to src/link): the links that read frames behind a virtio header
 * (TAP, AF_PACKET) use it for frames the stack did not ask to take as they
 * are.
 */
#ifndef USOCK_LINK_OFFLOAD_H
#define USOCK_LINK_OFFLOAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/*
 * link_frame_complete_checksum - finishes an unfinished ("partial")
 * transport checksum in frame (length bytes) as the kernel's
 * skb_checksum_help would: the 16-bit field at start + offset holds the
 * pseudo-header sum, so the complement of the sum from start to the end is
 * the checksum.  A frame whose offsets do not fit is left as it is.
 */
void link_frame_complete_checksum(uint8_t *frame, size_t length, size_t start, size_t offset);

/* Copies the count parts one after another into out (which has room for
 * them all); returns the bytes copied.  Puts together a frame gathered
 * from a header and a ring's payload. */
size_t link_parts_copy(uint8_t *out, const struct iovec *parts, int count);

#endif /* USOCK_LINK_OFFLOAD_H */
