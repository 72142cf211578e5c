/*
 * ethernet.c - Ethernet II header parse and emit; see ethernet.h.
 */
#include "wire/ethernet.h"

#include <errno.h>
#include <string.h>

#include "wire/bytes.h"

int ethernet_parse(const uint8_t *frame, size_t length, struct ethernet_header *out)
{
    if (length < ETHERNET_HEADER_LENGTH)
        return -EINVAL;
    memcpy(out->destination, frame, 6);
    memcpy(out->source, frame + 6, 6);
    out->ethertype = load_be16(frame + 12);
    return 0;
}

void ethernet_emit(const struct ethernet_header *header, uint8_t *out)
{
    memcpy(out, header->destination, 6);
    memcpy(out + 6, header->source, 6);
    store_be16(out + 12, header->ethertype);
}
