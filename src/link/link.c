/*
 * link.c - the public face of links: opening one from a text spec, and thin
 * wrappers that call through a link's operation table.
 *
 * Every link kind embeds struct usock_link first and supplies a const
 * struct link_ops (see link.h); nothing here knows any kind's insides.  The
 * wrappers check their arguments so that tools driving a link by hand get
 * -EINVAL rather than a crash; the stack may call the ops directly.
 */
#include "link/link.h"

#include <errno.h>
#include <net/if.h>
#include <string.h>

#include "usock.h"

struct link_kind {
    const char *prefix;
    int (*open)(const char *name, struct usock_link **link_out);
};

static const struct link_kind link_kinds[] = {
    { "tap:", link_tap_open },
    { "tun:", link_tun_open },
    { "packet:", link_packet_open },
};

/*
 * usock_link_open - opens "tap:NAME", "tun:NAME" or "packet:IFNAME".
 * The name must be 1..IFNAMSIZ-1 characters without '/' or whitespace.
 * Returns 0 and stores the link in *link_out, or a negative errno.
 */
int usock_link_open(const char *spec, struct usock_link **link_out)
{
    if (spec == NULL || link_out == NULL)
        return -EINVAL;
    *link_out = NULL;
    for (size_t i = 0; i < sizeof(link_kinds) / sizeof(link_kinds[0]); i++) {
        size_t prefix_length = strlen(link_kinds[i].prefix);
        if (strncmp(spec, link_kinds[i].prefix, prefix_length) != 0)
            continue;
        const char *name = spec + prefix_length;
        size_t name_length = strlen(name);
        if (name_length == 0 || name_length >= IFNAMSIZ)
            return -EINVAL;
        if (strpbrk(name, "/ \t\n:") != NULL)
            return -EINVAL;
        return link_kinds[i].open(name, link_out);
    }
    return -EINVAL;
}

/* usock_link_close - destroys a link not handed to a stack; NULL is ignored. */
void usock_link_close(struct usock_link *link)
{
    if (link != NULL)
        link->ops->destroy(link);
}

/*
 * usock_link_send - sends one frame, borrowed for the call.  Returns 0, or
 * -ENOBUFS when the link dropped it, or another negative errno.
 */
int usock_link_send(struct usock_link *link, const uint8_t *frame, size_t length, uint64_t now)
{
    if (link == NULL || (frame == NULL && length > 0))
        return -EINVAL;
    return link->ops->send(link, frame, length, now);
}

/*
 * usock_link_receive - copies one waiting frame into buffer (truncated to
 * capacity) and returns the bytes stored, or -EAGAIN when none is waiting.
 */
ssize_t usock_link_receive(struct usock_link *link, uint8_t *buffer, size_t capacity,
                           uint64_t now)
{
    if (link == NULL || buffer == NULL)
        return -EINVAL;
    return link->ops->receive(link, buffer, capacity, now);
}

/* usock_link_wait_fd - descriptor readable when a frame may be waiting, or -1. */
int usock_link_wait_fd(const struct usock_link *link)
{
    if (link == NULL)
        return -1;
    return link->ops->wait_fd(link);
}

/*
 * usock_link_deadline - when the link next needs a call although its
 * descriptor may stay quiet (a held-back frame falls due); USOCK_NEVER if
 * nothing is held.  May release frames that are already due.
 */
uint64_t usock_link_deadline(struct usock_link *link, uint64_t now)
{
    if (link == NULL || link->ops->deadline == NULL)
        return USOCK_NEVER;
    return link->ops->deadline(link, now);
}

/* usock_link_carries_ip - nonzero for links of bare IP packets (TUN). */
int usock_link_carries_ip(const struct usock_link *link)
{
    return link != NULL && link->layer == LINK_LAYER_IP;
}

/* usock_link_mtu - the largest IP packet the link carries. */
unsigned usock_link_mtu(const struct usock_link *link)
{
    return link != NULL ? link->mtu : 0;
}

/* usock_link_mac - copies the link's hardware address; -ENOENT if it has none. */
int usock_link_mac(const struct usock_link *link, uint8_t mac[6])
{
    if (link == NULL || mac == NULL)
        return -EINVAL;
    if (!link->has_mac)
        return -ENOENT;
    memcpy(mac, link->mac, 6);
    return 0;
}
