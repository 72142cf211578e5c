/*
 * tap.c - TAP links (Ethernet frames through /dev/net/tun), and the TUN/TAP
 * machinery that tun.c shares.
 *
 * Opening attaches to the device of the given name, creating it if it does
 * not exist (TUNSETIFF), with IFF_NO_PI so that each read or write is exactly
 * one frame.  The descriptor is nonblocking: a read with nothing queued fails
 * with EAGAIN, which is the link's "nothing waiting".  The interface is
 * brought up so that the kernel side can use it at once.
 *
 * The stack does not adopt the kernel interface's MAC address: the kernel
 * owns that address for its own end of the wire, and the stack is a separate
 * host behind it, so has_mac stays 0 and the stack picks its own.
 *
 * Offloads.  A TAP is opened with IFF_VNET_HDR, so every frame each way
 * travels behind a struct virtio_net_hdr (read and written with readv and
 * writev, no copy).  Until the stack asks (enable_offloads, which sets
 * TUNSETOFFLOAD) the headers are zero and the kernel finishes every
 * checksum and segment it hands us.  Once asked, the kernel may hand us TCP
 * super-segments of up to 64 KiB and frames whose checksum it never
 * computed (data that never left this machine's memory), and takes the
 * same from us: one write for up to 64 KiB of TCP payload instead of 45,
 * and no checksum summed on either side.  TUN links keep plain frames.
 */
#include <errno.h>
#include <fcntl.h>
#include <endian.h>
#include <linux/if_tun.h>
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

struct tuntap_link {
    struct usock_link link;
    int fd;
    bool vnet_header; /* frames travel behind a struct virtio_net_hdr (TAP) */
};

/* Writes header (when the link uses one) and the frame, in count parts,
 * as one frame. */
static int tuntap_write(struct tuntap_link *tuntap, const struct virtio_net_hdr *header,
                        const struct iovec *parts, int count)
{
    struct iovec vectors[4];
    int used = 0;
    if (tuntap->vnet_header)
        vectors[used++] = (struct iovec){ (void *)header, sizeof(*header) };
    for (int i = 0; i < count && used < 4; i++)
        vectors[used++] = parts[i];
    for (;;) {
        ssize_t written = writev(tuntap->fd, vectors, used);
        if (written >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            return -ENOBUFS;
        return -errno;
    }
}

/* Reads one frame into buffer and its virtio header (zero without one).
 * Returns the frame's length (truncated to capacity) or -errno. */
static ssize_t tuntap_read(struct tuntap_link *tuntap, uint8_t *buffer, size_t capacity,
                           struct virtio_net_hdr *header)
{
    struct iovec vectors[2];
    int count = 0;
    memset(header, 0, sizeof(*header));
    if (tuntap->vnet_header)
        vectors[count++] = (struct iovec){ header, sizeof(*header) };
    vectors[count++] = (struct iovec){ buffer, capacity };
    size_t header_size = tuntap->vnet_header ? sizeof(*header) : 0;
    for (;;) {
        ssize_t got = readv(tuntap->fd, vectors, count);
        if (got >= (ssize_t)header_size) {
            size_t length = (size_t)got - header_size;
            return (ssize_t)(length < capacity ? length : capacity);
        }
        if (got >= 0)
            return -EAGAIN; /* shorter than its own header: nothing usable */
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK)
            return -EAGAIN;
        return -errno;
    }
}

static int tuntap_send(struct usock_link *link, const uint8_t *frame, size_t length, uint64_t now)
{
    struct virtio_net_hdr header;
    (void)now;
    memset(&header, 0, sizeof(header));
    struct iovec part = {(void *)frame, length};
    return tuntap_write((struct tuntap_link *)link, &header, &part, 1);
}

static ssize_t tuntap_receive(struct usock_link *link, uint8_t *buffer, size_t capacity,
                              uint64_t now)
{
    struct tuntap_link *tuntap = (struct tuntap_link *)link;
    (void)now;
    for (int attempt = 0; attempt < 64; attempt++) {
        struct virtio_net_hdr header;
        ssize_t length = tuntap_read(tuntap, buffer, capacity, &header);
        if (length < 0)
            return length;
        /* Without TUNSETOFFLOAD the kernel sends neither of these; should
         * one come, finish the checksum, and skip a super-segment. */
        if (header.gso_type != VIRTIO_NET_HDR_GSO_NONE)
            continue;
        if (header.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
            link_frame_complete_checksum(buffer, (size_t)length, le16toh(header.csum_start),
                                         le16toh(header.csum_offset));
        return length;
    }
    return -EAGAIN;
}

/* The virtio header that asks the kernel to finish what info says: the
 * checksum from checksum_start, and segmentation when the frame holds more
 * than one segment of payload.  headers_end is where the TCP header ends
 * (checksum_start plus its data offset), read from the frame's first part. */
static void tap_offload_header(const struct link_frame_info *info, const struct iovec *first,
                               size_t length, struct virtio_net_hdr *header)
{
    memset(header, 0, sizeof(*header));
    if (info == NULL || !info->checksum_partial)
        return;
    header->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    header->csum_start = htole16(info->checksum_start);
    header->csum_offset = htole16(info->checksum_offset);
    size_t transport = info->checksum_start;
    if (info->segment_size == 0 || transport + 20 > first->iov_len)
        return;
    const uint8_t *bytes = first->iov_base;
    size_t headers = transport + (size_t)(bytes[transport + 12] >> 4) * 4;
    if (length > headers + info->segment_size) {
        header->gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
        header->gso_size = htole16(info->segment_size);
        header->hdr_len = htole16((uint16_t)headers);
    }
}

static int tap_send_offloaded(struct usock_link *link, const uint8_t *frame, size_t length,
                              const struct link_frame_info *info, uint64_t now)
{
    struct virtio_net_hdr header;
    struct iovec part = {(void *)frame, length};
    (void)now;
    tap_offload_header(info, &part, length, &header);
    return tuntap_write((struct tuntap_link *)link, &header, &part, 1);
}

static int tap_send_gather(struct usock_link *link, const struct iovec *parts, int count,
                           size_t length, const struct link_frame_info *info, uint64_t now)
{
    struct virtio_net_hdr header;
    (void)now;
    if (count < 1 || count > 3)
        return -EINVAL;
    tap_offload_header(info, &parts[0], length, &header);
    return tuntap_write((struct tuntap_link *)link, &header, parts, count);
}

static ssize_t tap_receive_offloaded(struct usock_link *link, uint8_t *buffer, size_t capacity,
                                     struct link_frame_info *info, uint64_t now)
{
    struct tuntap_link *tuntap = (struct tuntap_link *)link;
    struct virtio_net_hdr header;
    (void)now;
    ssize_t length = tuntap_read(tuntap, buffer, capacity, &header);
    memset(info, 0, sizeof(*info));
    if (length < 0)
        return length;
    /* NEEDS_CSUM: the kernel left the checksum to whoever delivers the
     * frame - this machine's memory held it all along, so nothing to
     * check.  DATA_VALID: the kernel checked it. */
    info->checksum_verified =
        (header.flags & (VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID)) != 0;
    uint8_t gso_type = header.gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
    if (gso_type == VIRTIO_NET_HDR_GSO_TCPV4)
        info->segment_size = le16toh(header.gso_size);
    return length;
}

static int tap_enable_offloads(struct usock_link *link, unsigned wanted)
{
    struct tuntap_link *tuntap = (struct tuntap_link *)link;
    link->offloads = 0;
    if (!tuntap->vnet_header || !(wanted & LINK_OFFLOAD_CHECKSUM))
        return 0;
    unsigned features = TUN_F_CSUM;
    unsigned offloads = LINK_OFFLOAD_CHECKSUM;
    if (wanted & LINK_OFFLOAD_TCP_SEGMENTATION) {
        features |= TUN_F_TSO4;
        offloads |= LINK_OFFLOAD_TCP_SEGMENTATION;
    }
    if (ioctl(tuntap->fd, TUNSETOFFLOAD, (unsigned long)features) < 0)
        return -errno;
    link->offloads = offloads;
    return 0;
}

static int tuntap_wait_fd(const struct usock_link *link)
{
    return ((const struct tuntap_link *)link)->fd;
}

static void tuntap_destroy(struct usock_link *link)
{
    struct tuntap_link *tuntap = (struct tuntap_link *)link;
    close(tuntap->fd);
    free(tuntap);
}

static const struct link_ops tap_ops = {
    .kind = "tap",
    .send = tuntap_send,
    .receive = tuntap_receive,
    .wait_fd = tuntap_wait_fd,
    .deadline = NULL,
    .destroy = tuntap_destroy,
    .enable_offloads = tap_enable_offloads,
    .send_offloaded = tap_send_offloaded,
    .receive_offloaded = tap_receive_offloaded,
    .send_gather = tap_send_gather,
};

static const struct link_ops tun_ops = {
    .kind = "tun",
    .send = tuntap_send,
    .receive = tuntap_receive,
    .wait_fd = tuntap_wait_fd,
    .deadline = NULL,
    .destroy = tuntap_destroy,
};

unsigned link_interface_mtu(int socket_fd, const char *name, unsigned fallback)
{
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    snprintf(request.ifr_name, sizeof(request.ifr_name), "%s", name);
    if (ioctl(socket_fd, SIOCGIFMTU, &request) < 0 || request.ifr_mtu <= 0)
        return fallback;
    return (unsigned)request.ifr_mtu;
}

/*
 * interface_bring_up - sets IFF_UP on the interface called name (unless it
 * is up already) and reads its MTU into *mtu_out.  Returns 0 or -errno.
 */
static int interface_bring_up(const char *name, unsigned *mtu_out)
{
    int result = 0;
    int control_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (control_fd < 0)
        return -errno;

    struct ifreq request;
    memset(&request, 0, sizeof(request));
    snprintf(request.ifr_name, sizeof(request.ifr_name), "%s", name);
    if (ioctl(control_fd, SIOCGIFFLAGS, &request) < 0) {
        result = -errno;
        goto out_close;
    }
    if (!(request.ifr_flags & IFF_UP)) {
        request.ifr_flags |= IFF_UP;
        if (ioctl(control_fd, SIOCSIFFLAGS, &request) < 0) {
            result = -errno;
            goto out_close;
        }
    }
    *mtu_out = link_interface_mtu(control_fd, name, 1500);

out_close:
    close(control_fd);
    return result;
}

int link_tuntap_open(const char *device_name, int tun_flags, enum link_layer layer,
                     const char *prefix, struct usock_link **link_out)
{
    int result;
    if (device_name == NULL || link_out == NULL)
        return -EINVAL;
    *link_out = NULL;
    size_t name_length = strlen(device_name);
    if (name_length == 0 || name_length >= IFNAMSIZ)
        return -EINVAL;

    struct tuntap_link *tuntap = calloc(1, sizeof(*tuntap));
    if (tuntap == NULL)
        return -ENOMEM;

    tuntap->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (tuntap->fd < 0) {
        result = -errno;
        goto fail_free_link;
    }

    struct ifreq request;
    memset(&request, 0, sizeof(request));
    memcpy(request.ifr_name, device_name, name_length);
    tuntap->vnet_header = (tun_flags & IFF_TAP) != 0;
    request.ifr_flags = (short)(tun_flags | IFF_NO_PI | (tuntap->vnet_header ? IFF_VNET_HDR : 0));
    if (ioctl(tuntap->fd, TUNSETIFF, &request) < 0) {
        result = -errno;
        goto fail_close_fd;
    }
    /* The kernel may have expanded a template such as "tap%d". */
    request.ifr_name[IFNAMSIZ - 1] = '\0';

    unsigned mtu = 1500;
    result = interface_bring_up(request.ifr_name, &mtu);
    if (result < 0)
        goto fail_close_fd;

    tuntap->link.ops = (tun_flags & IFF_TUN) ? &tun_ops : &tap_ops;
    tuntap->link.layer = layer;
    tuntap->link.mtu = mtu;
    tuntap->link.has_mac = 0;
    snprintf(tuntap->link.name, sizeof(tuntap->link.name), "%s%s", prefix, request.ifr_name);
    *link_out = &tuntap->link;
    return 0;

fail_close_fd:
    close(tuntap->fd);
fail_free_link:
    free(tuntap);
    return result;
}

/*
 * link_tap_open - creates or attaches TAP device device_name (Ethernet
 * frames).  Returns 0 and stores the link, or -EPERM without CAP_NET_ADMIN,
 * -EINVAL for a bad name, or another negative errno.
 */
int link_tap_open(const char *device_name, struct usock_link **link_out)
{
    return link_tuntap_open(device_name, IFF_TAP, LINK_LAYER_ETHERNET, "tap:", link_out);
}
