/*
 * tuntap.h - the code TAP and TUN links share (private to src/link).
 */
#ifndef USOCK_LINK_TUNTAP_H
#define USOCK_LINK_TUNTAP_H

#include "link/link.h"

/*
 * link_tuntap_open - opens /dev/net/tun and creates or attaches device_name
 * with tun_flags (IFF_TAP or IFF_TUN; IFF_NO_PI is added), brings the
 * interface up and reads its MTU.  The link carries layer frames and is
 * named prefix + the kernel's name for the device.  Returns 0 and stores the
 * link, or a negative errno.
 */
int link_tuntap_open(const char *device_name, int tun_flags, enum link_layer layer,
                     const char *prefix, struct usock_link **link_out);

/*
 * link_interface_mtu - the MTU of the interface called name, read with
 * SIOCGIFMTU on socket_fd (any socket will do); fallback if it cannot be read.
 */
unsigned link_interface_mtu(int socket_fd, const char *name, unsigned fallback);

#endif /* USOCK_LINK_TUNTAP_H */
