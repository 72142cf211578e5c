/*
 * packet.c - AF_PACKET links: raw Ethernet frames on an existing interface
 * (typically one end of a veth pair).
 *
 * The socket is made with protocol 0, so that it sees nothing until it is
 * bound to the one interface with ETH_P_ALL.  The interface is put in
 * promiscuous mode (a PACKET_MR_PROMISC membership, dropped with the
 * socket), because the stack answers to a MAC address of its own, not the
 * interface's.  Frames the host itself transmits on the interface, ours
 * included, are skipped: PACKET_IGNORE_OUTGOING where the kernel has it, and
 * a check of sll_pkttype always.
 *
 * Offloads.  A veth peer in the kernel advertises checksum offload and TSO,
 * so frames the kernel sends towards us may carry an unfinished checksum
 * (CHECKSUM_PARTIAL) or be one TCP "super-segment" of up to 64 KiB.  With
 * PACKET_VNET_HDR each frame arrives behind a struct virtio_net_hdr that
 * says so; this link finishes such checksums and cuts TCP super-segments
 * into MSS-sized segments, one per receive call, so the stack only ever sees
 * ordinary frames.  Other GSO kinds (UDP fragmentation offload) are dropped.
 * Frames we send carry a zero header: no offload asked for.
 *
 * State: the socket, a spill buffer for frames longer than the caller's
 * buffer, and at most one super-segment being cut up.  deadline() returns
 * now while segments of it remain, since the socket may stay unreadable.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "link/link.h"
#include "link/offload.h"
#include "link/tuntap.h"
#include "wire/checksum.h"

/* Frames skipped (our own, or malformed) before receive gives up for now. */
#define PACKET_SKIP_MAX 64

struct packet_link {
    struct usock_link link;
    int fd;
    int vnet_header;          /* frames travel behind a struct virtio_net_hdr */

    /* A TCP super-segment being cut up: frame bytes, and where it stands. */
    int gso_pending;
    int gso_ipv6;
    size_t gso_length;
    size_t gso_network_offset;
    size_t gso_transport_offset;
    size_t gso_header_length; /* Ethernet + IP + TCP headers, copied to each segment */
    size_t gso_segment_size;  /* payload bytes per segment (the MSS) */
    size_t gso_next;          /* payload offset of the next segment */
    unsigned gso_index;
    uint8_t gso_frame[LINK_FRAME_MAX];

    uint8_t spill[LINK_FRAME_MAX];
};

static uint16_t bytes_get16(const uint8_t *bytes)
{
    return (uint16_t)(bytes[0] << 8 | bytes[1]);
}

static void bytes_put16(uint8_t *bytes, uint16_t value)
{
    bytes[0] = (uint8_t)(value >> 8);
    bytes[1] = (uint8_t)value;
}

/*
 * packet_gso_begin - checks a TCP super-segment of length bytes in
 * packet->gso_frame and records how to cut it.  transport_offset is the
 * header's csum_start.  Returns 0, or -EINVAL when it cannot be cut (the
 * caller drops it).
 */
static int packet_gso_begin(struct packet_link *packet, size_t length, int ipv6,
                            size_t transport_offset, size_t segment_size)
{
    const uint8_t *frame = packet->gso_frame;
    size_t network_offset = ETH_HLEN;
    if (length < ETH_HLEN || segment_size == 0)
        return -EINVAL;
    uint16_t ether_type = bytes_get16(frame + 12);
    while ((ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD) &&
           network_offset + 4 <= length) {
        ether_type = bytes_get16(frame + network_offset + 2);
        network_offset += 4;
    }
    if (ether_type != (ipv6 ? ETH_P_IPV6 : ETH_P_IP))
        return -EINVAL;
    size_t network_minimum = ipv6 ? 40 : 20;
    if (transport_offset < network_offset + network_minimum || transport_offset + 20 > length)
        return -EINVAL;
    if (!ipv6) {
        size_t ip_header_length = (size_t)(frame[network_offset] & 0x0f) * 4;
        if (ip_header_length < 20 || network_offset + ip_header_length > transport_offset)
            return -EINVAL;
    }
    size_t tcp_header_length = (size_t)(frame[transport_offset + 12] >> 4) * 4;
    if (tcp_header_length < 20 || transport_offset + tcp_header_length > length)
        return -EINVAL;

    packet->gso_pending = 1;
    packet->gso_ipv6 = ipv6;
    packet->gso_length = length;
    packet->gso_network_offset = network_offset;
    packet->gso_transport_offset = transport_offset;
    packet->gso_header_length = transport_offset + tcp_header_length;
    packet->gso_segment_size = segment_size;
    packet->gso_next = 0;
    packet->gso_index = 0;
    return 0;
}

/*
 * packet_gso_next - writes the next segment of the pending super-segment
 * into buffer and returns its length (truncated to capacity, in which case
 * its headers are not fixed up).  Segment i gets the IP length of its own
 * size, IPv4 ID + i, sequence number + its payload offset, FIN and PSH only
 * if last, CWR only if first, and fresh checksums, as the kernel's
 * tcp_gso_segment would give.
 */
static ssize_t packet_gso_next(struct packet_link *packet, uint8_t *buffer, size_t capacity)
{
    const uint8_t *frame = packet->gso_frame;
    size_t header_length = packet->gso_header_length;
    size_t payload_total = packet->gso_length - header_length;
    size_t payload = payload_total - packet->gso_next;
    if (payload > packet->gso_segment_size)
        payload = packet->gso_segment_size;
    int first = packet->gso_index == 0;
    int last = packet->gso_next + payload == payload_total;
    size_t segment_length = header_length + payload;
    size_t payload_offset = packet->gso_next;

    packet->gso_next += payload;
    packet->gso_index++;
    if (last)
        packet->gso_pending = 0;

    if (capacity < segment_length) {
        size_t head = capacity < header_length ? capacity : header_length;
        memcpy(buffer, frame, head);
        if (capacity > head)
            memcpy(buffer + head, frame + header_length + payload_offset, capacity - head);
        return (ssize_t)capacity;
    }
    memcpy(buffer, frame, header_length);
    memcpy(buffer + header_length, frame + header_length + payload_offset, payload);

    uint8_t *ip = buffer + packet->gso_network_offset;
    uint8_t *tcp = buffer + packet->gso_transport_offset;
    size_t tcp_length = segment_length - packet->gso_transport_offset;
    uint32_t sum;
    if (packet->gso_ipv6) {
        bytes_put16(ip + 4, (uint16_t)(segment_length - packet->gso_network_offset - 40));
        sum = checksum_add(0, ip + 8, 32);
    } else {
        size_t ip_header_length = (size_t)(ip[0] & 0x0f) * 4;
        bytes_put16(ip + 2, (uint16_t)(segment_length - packet->gso_network_offset));
        bytes_put16(ip + 4, (uint16_t)(bytes_get16(ip + 4) + packet->gso_index - 1));
        bytes_put16(ip + 10, 0);
        bytes_put16(ip + 10, checksum_finish(checksum_add(0, ip, ip_header_length)));
        sum = checksum_add(0, ip + 12, 8);
    }
    uint32_t sequence = (uint32_t)tcp[4] << 24 | (uint32_t)tcp[5] << 16 |
                        (uint32_t)tcp[6] << 8 | tcp[7];
    sequence += (uint32_t)payload_offset;
    tcp[4] = (uint8_t)(sequence >> 24);
    tcp[5] = (uint8_t)(sequence >> 16);
    tcp[6] = (uint8_t)(sequence >> 8);
    tcp[7] = (uint8_t)sequence;
    if (!last)
        tcp[13] &= (uint8_t)~(0x01 | 0x08); /* FIN, PSH */
    if (!first)
        tcp[13] &= (uint8_t)~0x80;          /* CWR */
    sum += IPPROTO_TCP;
    sum += (uint32_t)tcp_length;
    bytes_put16(tcp + 16, 0);
    bytes_put16(tcp + 16, checksum_finish(checksum_add(sum, tcp, tcp_length)));
    return (ssize_t)segment_length;
}

static ssize_t packet_receive(struct usock_link *link, uint8_t *buffer, size_t capacity,
                              uint64_t now)
{
    struct packet_link *packet = (struct packet_link *)link;
    (void)now;
    if (packet->gso_pending)
        return packet_gso_next(packet, buffer, capacity);

    for (int skipped = 0; skipped < PACKET_SKIP_MAX; skipped++) {
        struct virtio_net_hdr header;
        struct iovec vectors[3];
        int vector_count = 0;
        memset(&header, 0, sizeof(header));
        if (packet->vnet_header)
            vectors[vector_count++] = (struct iovec){ &header, sizeof(header) };
        vectors[vector_count++] = (struct iovec){ buffer, capacity };
        vectors[vector_count++] = (struct iovec){ packet->spill, sizeof(packet->spill) };
        struct sockaddr_ll from;
        memset(&from, 0, sizeof(from));
        struct msghdr message = {
            .msg_name = &from,
            .msg_namelen = sizeof(from),
            .msg_iov = vectors,
            .msg_iovlen = (size_t)vector_count,
        };
        ssize_t got = recvmsg(packet->fd, &message, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return -EAGAIN;
            return -errno;
        }
        if (from.sll_pkttype == PACKET_OUTGOING || (message.msg_flags & MSG_TRUNC))
            continue;
        size_t header_size = packet->vnet_header ? sizeof(header) : 0;
        if ((size_t)got < header_size)
            continue;
        size_t length = (size_t)got - header_size;
        size_t stored = length < capacity ? length : capacity;
        if (!packet->vnet_header)
            return (ssize_t)stored;

        uint8_t gso_type = header.gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
        if (gso_type != VIRTIO_NET_HDR_GSO_NONE) {
            if ((gso_type != VIRTIO_NET_HDR_GSO_TCPV4 && gso_type != VIRTIO_NET_HDR_GSO_TCPV6) ||
                length > sizeof(packet->gso_frame) || !(header.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
                continue;
            memcpy(packet->gso_frame, buffer, stored);
            if (length > stored)
                memcpy(packet->gso_frame + stored, packet->spill, length - stored);
            if (packet_gso_begin(packet, length, gso_type == VIRTIO_NET_HDR_GSO_TCPV6,
                                 le16toh(header.csum_start), le16toh(header.gso_size)) < 0)
                continue;
            return packet_gso_next(packet, buffer, capacity);
        }
        if ((header.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && length <= capacity)
            link_frame_complete_checksum(buffer, length, le16toh(header.csum_start),
                                    le16toh(header.csum_offset));
        return (ssize_t)stored;
    }
    return -EAGAIN;
}

static int packet_send(struct usock_link *link, const uint8_t *frame, size_t length, uint64_t now)
{
    struct packet_link *packet = (struct packet_link *)link;
    struct virtio_net_hdr header;
    struct iovec vectors[2];
    int vector_count = 0;
    (void)now;
    memset(&header, 0, sizeof(header));
    if (packet->vnet_header)
        vectors[vector_count++] = (struct iovec){ &header, sizeof(header) };
    vectors[vector_count++] = (struct iovec){ (void *)frame, length };
    struct msghdr message = { .msg_iov = vectors, .msg_iovlen = (size_t)vector_count };
    for (;;) {
        if (sendmsg(packet->fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            return -ENOBUFS;
        return -errno;
    }
}

static int packet_wait_fd(const struct usock_link *link)
{
    return ((const struct packet_link *)link)->fd;
}

static uint64_t packet_deadline(struct usock_link *link, uint64_t now)
{
    return ((struct packet_link *)link)->gso_pending ? now : USOCK_NEVER;
}

static void packet_destroy(struct usock_link *link)
{
    struct packet_link *packet = (struct packet_link *)link;
    close(packet->fd);
    free(packet);
}

static const struct link_ops packet_ops = {
    .kind = "packet",
    .send = packet_send,
    .receive = packet_receive,
    .wait_fd = packet_wait_fd,
    .deadline = packet_deadline,
    .destroy = packet_destroy,
};

/*
 * link_packet_open - opens an AF_PACKET link on the existing interface
 * interface_name.  Returns 0 and stores the link, or -ENODEV when there is
 * no such interface, -EPERM without CAP_NET_RAW, or another negative errno.
 */
int link_packet_open(const char *interface_name, struct usock_link **link_out)
{
    int result;
    if (interface_name == NULL || link_out == NULL)
        return -EINVAL;
    *link_out = NULL;
    size_t name_length = strlen(interface_name);
    if (name_length == 0 || name_length >= IFNAMSIZ)
        return -EINVAL;

    struct packet_link *packet = calloc(1, sizeof(*packet));
    if (packet == NULL)
        return -ENOMEM;

    /* Protocol 0: no frames at all until bound to the one interface. */
    packet->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (packet->fd < 0) {
        result = -errno;
        goto fail_free_link;
    }

    struct ifreq request;
    memset(&request, 0, sizeof(request));
    memcpy(request.ifr_name, interface_name, name_length);
    if (ioctl(packet->fd, SIOCGIFINDEX, &request) < 0) {
        result = errno == ENODEV || errno == ENXIO ? -ENODEV : -errno;
        goto fail_close_socket;
    }
    int interface_index = request.ifr_ifindex;

    int on = 1;
    /* Optional: without it we see offloaded frames raw (older kernels). */
    if (setsockopt(packet->fd, SOL_PACKET, PACKET_VNET_HDR, &on, sizeof(on)) == 0)
        packet->vnet_header = 1;
#ifdef PACKET_IGNORE_OUTGOING
    /* Optional: receive also skips PACKET_OUTGOING frames itself. */
    (void)setsockopt(packet->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &on, sizeof(on));
#endif

    struct sockaddr_ll address;
    memset(&address, 0, sizeof(address));
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = interface_index;
    if (bind(packet->fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
        result = -errno;
        goto fail_close_socket;
    }

    struct packet_mreq membership;
    memset(&membership, 0, sizeof(membership));
    membership.mr_ifindex = interface_index;
    membership.mr_type = PACKET_MR_PROMISC;
    if (setsockopt(packet->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &membership,
                   sizeof(membership)) < 0) {
        result = -errno;
        goto fail_close_socket;
    }

    packet->link.ops = &packet_ops;
    packet->link.layer = LINK_LAYER_ETHERNET;
    packet->link.mtu = link_interface_mtu(packet->fd, interface_name, 1500);
    packet->link.has_mac = 0;
    snprintf(packet->link.name, sizeof(packet->link.name), "packet:%s", interface_name);
    *link_out = &packet->link;
    return 0;

fail_close_socket:
    close(packet->fd);
fail_free_link:
    free(packet);
    return result;
}
