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
 * No offloads are negotiated (no TUNSETOFFLOAD, no IFF_VNET_HDR), so the
 * kernel segments and checksums everything it hands us.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "link/link.h"
#include "link/tuntap.h"

struct tuntap_link {
    struct usock_link link;
    int fd;
};

static int tuntap_send(struct usock_link *link, const uint8_t *frame, size_t length, uint64_t now)
{
    struct tuntap_link *tuntap = (struct tuntap_link *)link;
    (void)now;
    for (;;) {
        ssize_t written = write(tuntap->fd, frame, length);
        if (written >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            return -ENOBUFS;
        return -errno;
    }
}

static ssize_t tuntap_receive(struct usock_link *link, uint8_t *buffer, size_t capacity,
                              uint64_t now)
{
    struct tuntap_link *tuntap = (struct tuntap_link *)link;
    (void)now;
    for (;;) {
        ssize_t got = read(tuntap->fd, buffer, capacity);
        if (got >= 0)
            return got > (ssize_t)capacity ? (ssize_t)capacity : got;
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK)
            return -EAGAIN;
        return -errno;
    }
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
    request.ifr_flags = (short)(tun_flags | IFF_NO_PI);
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
