/*
 * offload.c - finishing offloaded frames in software, and putting gathered
 * frames together; see offload.h.
 */
#include "link/offload.h"

#include <string.h>

#include "wire/checksum.h"

void link_frame_complete_checksum(uint8_t *frame, size_t length, size_t start, size_t offset)
{
    if (start >= length || offset + 2 > length - start)
        return;
    uint16_t checksum = checksum_finish(checksum_add(0, frame + start, length - start));
    /* RFC 768: a computed zero is sent as all ones; for TCP both mean zero. */
    if (checksum == 0)
        checksum = 0xffff;
    frame[start + offset] = (uint8_t)(checksum >> 8);
    frame[start + offset + 1] = (uint8_t)checksum;
}

size_t link_parts_copy(uint8_t *out, const struct iovec *parts, int count)
{
    size_t at = 0;
    for (int i = 0; i < count; i++) {
        memcpy(out + at, parts[i].iov_base, parts[i].iov_len);
        at += parts[i].iov_len;
    }
    return at;
}
