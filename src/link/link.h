/*
 * link.h - the internal shape of a link.
 *
 * A link moves whole frames (Ethernet frames, or bare IP packets for TUN and
 * IP callback links) between the stack and something outside it.  Each kind
 * of link embeds struct usock_link as its first member and supplies a table
 * of operations.  Wrappers (impairment, pcap tee) are links that hold an
 * inner link, so they compose: pcap(impair(tap)).
 *
 * Links never block: receive returns -EAGAIN when nothing is waiting, and a
 * link that cannot take a frame right now drops it and returns -ENOBUFS.
 * Time is passed in (now, nanoseconds) so that links holding frames back
 * (delay, reordering) stay deterministic under a simulated clock.
 */
#ifndef USOCK_LINK_H
#define USOCK_LINK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "usock.h"

enum link_layer {
    LINK_LAYER_ETHERNET,
    LINK_LAYER_IP,
};

/* Largest frame any link hands over: a 64 KiB IP packet plus an Ethernet
 * header and a VLAN tag. */
#define LINK_FRAME_MAX (65535 + 18)

struct link_ops {
    const char *kind;
    /* Sends one frame, which is borrowed for the call.  Returns 0 or -errno. */
    int (*send)(struct usock_link *link, const uint8_t *frame, size_t length, uint64_t now);
    /* Copies one waiting frame into buffer (truncating to capacity) and
     * returns its length, or -EAGAIN when none is waiting, or -errno. */
    ssize_t (*receive)(struct usock_link *link, uint8_t *buffer, size_t capacity,
                       uint64_t now);
    /* Descriptor readable when a frame may be waiting, or -1. */
    int (*wait_fd)(const struct usock_link *link);
    /* When a held-back frame becomes due; USOCK_NEVER if none.  May be NULL. */
    uint64_t (*deadline)(struct usock_link *link, uint64_t now);
    /* Releases everything the link owns, including the link itself. */
    void (*destroy)(struct usock_link *link);
};

struct usock_link {
    const struct link_ops *ops;
    enum link_layer layer;
    unsigned mtu;        /* largest IP packet the link carries */
    uint8_t mac[6];      /* hardware address, when has_mac */
    int has_mac;
    char name[32];       /* e.g. "tap:tap0", for messages */
};

/* Constructors of each kind; each returns 0 or -errno and stores the link. */
int link_tap_open(const char *device_name, struct usock_link **link_out);
int link_tun_open(const char *device_name, struct usock_link **link_out);
int link_packet_open(const char *interface_name, struct usock_link **link_out);

#endif /* USOCK_LINK_H */
