/*
 * tun.c - TUN links: bare IP packets through /dev/net/tun.
 *
 * Everything but the device flags and the layer is shared with TAP (see
 * tap.c): the device is created or attached with IFF_TUN | IFF_NO_PI, so a
 * read or write is exactly one IPv4 or IPv6 packet, and the kernel tells the
 * two apart by the version nibble.  A TUN link has no hardware address and
 * no ARP; the stack sends IP packets straight to it.
 */
#include <linux/if_tun.h>

#include "link/link.h"
#include "link/tuntap.h"

/*
 * link_tun_open - creates or attaches TUN device device_name (IP packets).
 * Returns 0 and stores the link, or a negative errno.
 */
int link_tun_open(const char *device_name, struct usock_link **link_out)
{
    return link_tuntap_open(device_name, IFF_TUN, LINK_LAYER_IP, "tun:", link_out);
}
