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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "usock.h"

enum link_layer {
    LINK_LAYER_ETHERNET,
    LINK_LAYER_IP,
};

/* Largest frame any link hands over: a 64 KiB IP packet plus an Ethernet
 * header and a VLAN tag. */
#define LINK_FRAME_MAX (65535 + 18)

/*
 * Offloads.  A link that can take work off the stack says so in
 * usock_link.offloads once the stack has asked for them (enable_offloads);
 * links that wrap another (impairment, pcap) offer none, so the stack then
 * sends and receives plain frames only.
 *
 *   LINK_OFFLOAD_CHECKSUM  frames sent may carry an unfinished transport
 *                          checksum (the pseudo-header sum only, to be
 *                          finished from checksum_start by whoever delivers
 *                          it, as a NIC or the kernel does); frames received
 *                          may say their transport checksum needs no check.
 *   LINK_OFFLOAD_TCP_SEGMENTATION  frames sent may be TCP "super-segments"
 *                          of up to 64 KiB of IP packet, cut into segments
 *                          of segment_size payload bytes further on; frames
 *                          received may be such super-segments too.
 */
#define LINK_OFFLOAD_CHECKSUM 0x1u
#define LINK_OFFLOAD_TCP_SEGMENTATION 0x2u

/* What travels with one frame besides its bytes on an offloading link. */
struct link_frame_info {
    bool checksum_partial;    /* send: finish the checksum at checksum_start */
    bool checksum_verified;   /* receive: the transport checksum is known good */
    uint16_t checksum_start;  /* from the frame's first byte to the transport header */
    uint16_t checksum_offset; /* from checksum_start to the checksum field */
    uint16_t segment_size;    /* TCP payload bytes per segment; 0: not a super-segment */
};

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
    /* Optional, for links with offloads.  enable_offloads turns on those of
     * wanted (LINK_OFFLOAD_*) the link can do and stores them in
     * link->offloads; returns 0 or -errno (then none are on).  From then on
     * the stack receives through receive_offloaded, which is receive plus
     * the frame's info, and may send through send_offloaded. */
    int (*enable_offloads)(struct usock_link *link, unsigned wanted);
    int (*send_offloaded)(struct usock_link *link, const uint8_t *frame, size_t length,
                          const struct link_frame_info *info, uint64_t now);
    ssize_t (*receive_offloaded)(struct usock_link *link, uint8_t *buffer, size_t capacity,
                                 struct link_frame_info *info, uint64_t now);
    /* Optional: send_offloaded of a frame in count parts (length bytes in
     * all), gathered by the link as it sends (the parts are borrowed). */
    int (*send_gather)(struct usock_link *link, const struct iovec *parts, int count,
                       size_t length, const struct link_frame_info *info, uint64_t now);
    /* Optional: receive_offloaded without the copy.  Stores in *frame a
     * pointer to the waiting frame, which stays the link's and stays valid
     * until the next receive of any kind on the link or its destruction;
     * returns the length, or -EAGAIN / -errno as receive. */
    ssize_t (*receive_borrowed)(struct usock_link *link, const uint8_t **frame,
                                struct link_frame_info *info, uint64_t now);
};

struct usock_link {
    const struct link_ops *ops;
    enum link_layer layer;
    unsigned mtu;        /* largest IP packet the link carries */
    uint8_t mac[6];      /* hardware address, when has_mac */
    int has_mac;
    char name[32];       /* e.g. "tap:tap0", for messages */
    unsigned offloads;   /* LINK_OFFLOAD_* turned on by enable_offloads */
};

/* Constructors of each kind; each returns 0 or -errno and stores the link. */
int link_tap_open(const char *device_name, struct usock_link **link_out);
int link_tun_open(const char *device_name, struct usock_link **link_out);
int link_packet_open(const char *interface_name, struct usock_link **link_out);

#endif /* USOCK_LINK_H */
